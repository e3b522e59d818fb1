//! Durability under `kill -9`: this test re-runs its own binary as a child that enqueues
//! jobs through the real engine and prints each job id only after its commit returned;
//! the parent SIGKILLs the child at random moments, many times over, then reopens the
//! file and checks that every acknowledged job is there, intact, and that SQLite finds
//! the file sound.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use semantica_adapters::{random_seed, SqliteOptions, SqliteStore, SystemClock};
use semantica_core::{
    Clock, Config, Engine, EnqueueRequest, Input, JobId, JobState, Reply, SeededIds, SplitMix64, Store,
};

const CHILD_ENV: &str = "SEMANTICA_CRASH_CHILD_DB";
const KILLS: usize = 40;
const ACK: &str = "ACK ";

/// In the child: enqueue forever, printing `ACK <id> <subject>` after each commit.
/// In the parent (no env var): nothing; the parent is the test below.
#[test]
fn crash_child_entry() {
    let Ok(path) = std::env::var(CHILD_ENV) else { return };
    let mut store = SqliteStore::open(&path, &SqliteOptions::default()).expect("child opens the store");
    let seed = random_seed();
    let mut engine =
        Engine::new(Config::new(2, ["work"]), Box::new(SeededIds::new(seed)), Box::new(SplitMix64::new(seed)));
    let clock = SystemClock::new();
    let _recovered = engine.run(clock.now_ms(), Input::Recover, &mut store).expect("recover");
    let stdout = std::io::stdout();
    for n in 0u64.. {
        let subject = format!("crash-{seed:016x}-{n}");
        let request = EnqueueRequest {
            job_type: Some("work".into()),
            queue: Some("default".into()),
            subject_key: Some(subject.clone()),
            payload_json: Some(format!("{{\"n\":{n}}}")),
            ..EnqueueRequest::default()
        };
        let input = if n % 7 == 0 {
            // Now and then a batch, to kill in the middle of bigger transactions too.
            let mut second = request.clone();
            second.subject_key = Some(format!("{subject}-b"));
            Input::EnqueueBatch(vec![request, second])
        } else {
            Input::Enqueue(Box::new(request))
        };
        let step = engine.run(clock.now_ms(), input, &mut store).expect("enqueue commits");
        let acked: Vec<JobId> = match step.reply {
            Reply::Enqueued(one) => vec![one.job_id],
            Reply::EnqueuedBatch(all) => all.iter().map(|e| e.job_id).collect(),
            other => panic!("enqueue answered {other:?}"),
        };
        let mut out = stdout.lock();
        for id in acked {
            std::io::Write::write_all(&mut out, format!("{ACK}{id}\n").as_bytes()).unwrap();
        }
        std::io::Write::flush(&mut out).unwrap();
    }
}

#[test]
fn every_acknowledged_job_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.db");
    let exe = std::env::current_exe().unwrap();
    let mut rng = SplitMix64::new(random_seed());
    let mut acknowledged: Vec<JobId> = Vec::new();
    for round in 0..KILLS {
        let mut child = Command::new(&exe)
            .args(["--exact", "crash_child_entry", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        // Read on a thread so the parent kills at its own chosen moment.
        let reader = std::thread::spawn(move || {
            let mut ids = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let line = line.unwrap();
                if let Some(id) = line.strip_prefix(ACK) {
                    ids.push(id.parse::<JobId>().unwrap());
                }
            }
            ids
        });
        let wait = Duration::from_millis(30 + rng.below(150));
        let started = Instant::now();
        while started.elapsed() < wait {
            if child.try_wait().unwrap().is_some() {
                panic!("round {round}: the child ended on its own");
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
        let ids = reader.join().unwrap();
        acknowledged.extend(ids);
    }
    assert!(acknowledged.len() > KILLS, "the children acknowledged only {} jobs", acknowledged.len());
    let store = SqliteStore::open(&path, &SqliteOptions::default()).unwrap();
    assert_eq!(store.integrity_check().unwrap(), vec!["ok".to_owned()]);
    for id in &acknowledged {
        let job = store.get(*id).unwrap().unwrap_or_else(|| panic!("acknowledged job {id} was lost"));
        assert_eq!(job.state, JobState::Queued, "job {id}");
        assert!(job.subject_key.starts_with("crash-"));
        assert_eq!(store.max_generation(&job.subject_key).unwrap(), Some(job.generation));
    }
    println!("{KILLS} kills, {} acknowledged jobs, all present", acknowledged.len());
}
