//! Several real daemons (`semantica serve`) on one Postgres database with a short lease
//! (API.md, "Several daemons on one Postgres"): a daemon killed with SIGKILL has its
//! attempts ended (`node_lost`) once its lease expires and retried elsewhere; a daemon
//! stopped with SIGSTOP past its lease changes nothing with its late reports and claims
//! again once it rejoins; enqueues of one subject on every daemon at once keep supersede
//! and never run two jobs of the subject at the same time; two of three daemons killed at
//! random under load lose nothing and leave no job open; a job enqueued on a busy daemon
//! starts on an idle one at once (LISTEN/NOTIFY); a daemon whose renewals hang stops its
//! runs by its own clock. Needs `SEMANTICA_TEST_PG_URL`
//! (`source .ci/postgres.sh`).

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;
use semantica_adapters::{PgOptions, PgStore};
use serde_json::{json, Value};

/// Short, so that the tests wait little for expiry; not shorter, so that a loaded CI
/// machine (two cores, three daemons, Postgres) renews in time.
const LEASE_MS: u64 = 2_000;

/// `count` daemons on the schema, named `n0`, `n1`, …, each with its own home.
struct Cluster {
    daemons: Vec<Daemon>,
    homes: Vec<tempfile::TempDir>,
    schema: Schema,
}

impl Cluster {
    fn start(tag: &str, count: usize) -> Cluster {
        let schema = Schema::new(&format!("multi_{tag}"));
        let homes: Vec<tempfile::TempDir> = (0..count).map(|_| tempfile::tempdir().unwrap()).collect();
        let daemons = (0..count).map(|n| Self::start_one(&schema, &homes[n], n)).collect();
        Cluster { daemons, homes, schema }
    }

    fn start_one(schema: &Schema, home: &tempfile::TempDir, n: usize) -> Daemon {
        let (url, node, lease) = (schema.daemon_url(), format!("n{n}"), LEASE_MS.to_string());
        let env = [
            ("SEMANTICA_STORE_URL", url.as_str()),
            ("SEMANTICA_NODE_ID", node.as_str()),
            ("SEMANTICA_NODE_LEASE_MS", lease.as_str()),
        ];
        Daemon::start_with(home.path(), &env)
    }

    /// Starts daemon `n` again, on its home and node id.
    fn restart(&mut self, n: usize) {
        self.daemons[n] = Self::start_one(&self.schema, &self.homes[n], n);
    }

    fn client(&self, n: usize) -> Client {
        self.daemons[n].client()
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

async fn enqueue(client: &Client, spec: Value) -> Value {
    let enqueued = client.call("dev.enqueue.v1", params(spec)).await.unwrap();
    enqueued["job_id"].clone()
}

/// Every job in the database, by id (any daemon answers for all of them).
async fn all_jobs(client: &Client) -> BTreeMap<String, Value> {
    let mut jobs = BTreeMap::new();
    let mut cursor = Value::Null;
    loop {
        let page = client.call("dev.query_jobs.v1", params(json!({"limit": 200, "cursor": cursor}))).await.unwrap();
        for job in page["items"].as_array().unwrap() {
            jobs.insert(job["id"].as_str().unwrap().to_owned(), job.clone());
        }
        cursor = page["next_cursor"].clone();
        if cursor.is_null() {
            return jobs;
        }
    }
}

fn terminal(job: &Value) -> bool {
    !matches!(job["state"].as_str(), Some("QUEUED" | "SCHEDULED" | "RUNNING"))
}

/// Waits until every job is terminal (at most `limit`), and returns them.
async fn all_ended(client: &Client, limit: Duration) -> BTreeMap<String, Value> {
    let started = Instant::now();
    loop {
        let jobs = all_jobs(client).await;
        if jobs.values().all(terminal) {
            return jobs;
        }
        let open: Vec<&Value> = jobs.values().filter(|job| !terminal(job)).collect();
        assert!(started.elapsed() < limit, "jobs still open after {limit:?}: {open:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The jobs `node` runs, once it runs any (an empty list if it runs none within `limit`).
async fn running_now(client: &Client, node: &str, limit: Duration) -> Vec<String> {
    let started = Instant::now();
    loop {
        let filter = json!({"filter": {"state": ["RUNNING"]}, "limit": 200});
        let page = client.call("dev.query_jobs.v1", params(filter)).await.unwrap();
        let ids: Vec<String> = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|job| job["node"] == node)
            .map(|job| job["id"].as_str().unwrap().to_owned())
            .collect();
        if !ids.is_empty() || started.elapsed() >= limit {
            return ids;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits until `node` runs at least `count` jobs, and returns their ids.
async fn running_on(client: &Client, node: &str, count: usize) -> Vec<String> {
    let started = Instant::now();
    loop {
        let jobs = all_jobs(client).await;
        let ids: Vec<String> = jobs
            .values()
            .filter(|job| job["state"] == "RUNNING" && job["node"] == node)
            .map(|job| job["id"].as_str().unwrap().to_owned())
            .collect();
        if ids.len() >= count {
            return ids;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{node} never ran {count} jobs: {jobs:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn sleep_job(subject: &str, ms: u64, max_attempts: u32) -> Value {
    json!({"job_type": "sleep", "queue": "default", "subject_key": subject, "payload": {"ms": ms},
           "max_attempts": max_attempts,
           "backoff": {"base_ms": 50, "factor": 1.0, "max_ms": 50, "jitter": 0.0}})
}

#[test]
fn a_killed_daemons_attempts_end_once_its_lease_expires_and_each_job_ends_once() {
    let mut cluster = Cluster::start("kill", 3);
    let client = cluster.client(0);
    runtime().block_on(async {
        // Half of the jobs may be tried again, half may not: a lost attempt of the first
        // kind runs again elsewhere, of the second kind ends FAILED with `node_lost`.
        let mut acknowledged = Vec::new();
        for n in 0..12 {
            let daemon = n % 3;
            acknowledged
                .push(enqueue(&cluster.client(daemon), sleep_job(&format!("s{n}"), 2_000, 1 + n as u32 % 2 * 2)).await);
        }
        let victims = running_on(&client, "n1", 2).await;
        let crashed_ms = now_ms();
        cluster.daemons[1].crash();
        let jobs = all_ended(&client, Duration::from_secs(40)).await;
        assert_eq!(jobs.len(), acknowledged.len(), "every acknowledged job is in the store once");
        for id in &acknowledged {
            let job = &jobs[id.as_str().unwrap()];
            let victim = victims.iter().any(|v| v == id.as_str().unwrap());
            match (victim, job["max_attempts"].as_u64().unwrap()) {
                (false, _) => assert_eq!(job["state"], "DONE", "{job}"),
                (true, 1) => {
                    assert_eq!(
                        (&job["state"], &job["error"]["kind"], &job["node"]),
                        (&json!("FAILED"), &json!("node_lost"), &json!("n1")),
                        "{job}"
                    );
                    // Not before the lease could have run out (renewed at most a third of
                    // a lease before the crash).
                    let ended_ms = job["finished_at"].as_u64().unwrap();
                    assert!(
                        ended_ms >= crashed_ms + LEASE_MS * 2 / 3 - 100,
                        "ended {} ms after the crash",
                        ended_ms as i64 - crashed_ms as i64
                    );
                }
                (true, _) => {
                    assert_eq!((&job["state"], &job["attempts"]), (&json!("DONE"), &json!(2)), "{job}");
                    assert_ne!(job["node"], "n1", "retried on a live daemon: {job}");
                }
            }
        }
        // The lost node is forgotten once none of its jobs holds a worker.
        let started = Instant::now();
        loop {
            let stats = client.call("admin.stats.v1", params(json!({}))).await.unwrap();
            let ids: Vec<&str> = stats["nodes"].as_array().unwrap().iter().map(|n| n["id"].as_str().unwrap()).collect();
            if ids == ["n0", "n2"] {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(10), "nodes: {stats}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    for n in [0, 2] {
        assert!(cluster.daemons[n].stop().success());
    }
}

#[test]
fn a_stopped_daemons_late_reports_change_nothing_and_it_rejoins() {
    let mut cluster = Cluster::start("stop", 2);
    let client = cluster.client(0);
    runtime().block_on(async {
        for n in 0..6 {
            enqueue(&cluster.client(n % 2), sleep_job(&format!("s{n}"), 1_500, 2)).await;
        }
        let victims = running_on(&client, "n1", 1).await;
        cluster.daemons[1].signal(nix::sys::signal::Signal::SIGSTOP);
        // Past its lease: the other daemon ends its attempts and runs them again.
        let jobs = all_ended(&client, Duration::from_secs(30)).await;
        for id in &victims {
            let job = &jobs[id];
            assert_eq!((&job["state"], &job["attempts"]), (&json!("DONE"), &json!(2)), "{job}");
            assert_eq!(job["node"], "n0", "{job}");
        }
        cluster.daemons[1].signal(nix::sys::signal::Signal::SIGCONT);
        // Its sleeps ended while it was stopped: their reports arrive now, late, and
        // change nothing.
        tokio::time::sleep(Duration::from_millis(LEASE_MS * 2)).await;
        assert_eq!(all_jobs(&client).await, jobs, "a late report of a lost attempt changed a job");
        // It rejoined: alone on the database it claims and runs jobs again.
        assert!(cluster.daemons[0].stop().success());
        let mine = cluster.client(1);
        let id = enqueue(&mine, sleep_job("after", 10, 1)).await;
        let job = mine.call("dev.wait.v1", params(json!({"job_id": id, "timeout_ms": 20_000}))).await.unwrap();
        assert_eq!((&job["state"], &job["node"]), (&json!("DONE"), &json!("n1")), "{job}");
    });
    assert!(cluster.daemons[1].stop().success());
}

#[test]
fn enqueues_of_one_subject_on_every_daemon_keep_supersede_and_never_overlap() {
    let mut cluster = Cluster::start("hot", 3);
    let rounds = 20;
    runtime().block_on(async {
        let mut tasks = Vec::new();
        for n in 0..3 {
            let client = cluster.client(n);
            tasks.push(tokio::spawn(async move {
                let mut answers = Vec::new();
                for _ in 0..rounds {
                    let spec = sleep_job("hot", 40, 1);
                    answers.push(
                        client.call("dev.enqueue.v1", params(spec)).await.expect("every enqueue is acknowledged"),
                    );
                    // Some rounds let a job start before the next generation comes.
                    tokio::time::sleep(Duration::from_millis(50 * (n as u64 + 1))).await;
                }
                answers
            }));
        }
        let mut answers = Vec::new();
        for task in tasks {
            answers.extend(task.await.unwrap());
        }
        let jobs = all_ended(&cluster.client(0), Duration::from_secs(60)).await;
        let newest = jobs.values().map(|job| job["generation"].as_u64().unwrap()).max().unwrap();
        for answer in &answers {
            assert!(jobs.contains_key(answer["job_id"].as_str().unwrap()), "acknowledged {answer} is stored");
        }
        let mut runs: Vec<(u64, u64, &Value)> = Vec::new();
        for job in jobs.values() {
            let generation = job["generation"].as_u64().unwrap();
            match job["state"].as_str().unwrap() {
                "DONE" => runs.push((job["started_at"].as_u64().unwrap(), job["finished_at"].as_u64().unwrap(), job)),
                "SUPERSEDED" => assert!(generation < newest && job["started_at"].is_null(), "{job}"),
                other => panic!("a job of the hot subject ended {other}: {job}"),
            }
            if generation == newest {
                assert_eq!(job["state"], "DONE", "the newest generation runs: {job}");
            }
        }
        // One live job per (subject, generation): generations are unique.
        let generations: std::collections::BTreeSet<u64> =
            jobs.values().map(|job| job["generation"].as_u64().unwrap()).collect();
        assert_eq!(generations.len(), jobs.len(), "two live jobs of one generation");
        runs.sort_by_key(|run| run.0);
        for pair in runs.windows(2) {
            let ((_, first_end, first), (second_start, _, second)) = (&pair[0], &pair[1]);
            // The daemons' clocks are the one machine's; engines read them a few ms apart.
            assert!(*second_start + 5 >= *first_end, "two jobs of the subject ran at once:\n{first}\n{second}");
        }
        let nodes: std::collections::BTreeSet<&str> = runs.iter().map(|run| run.2["node"].as_str().unwrap()).collect();
        assert!(runs.len() >= 3, "too few ran to judge: {}", runs.len());
        assert!(nodes.len() >= 2, "every run on one daemon: the test judged nothing across daemons");
        eprintln!("{} jobs, {} ran, on nodes {nodes:?}", jobs.len(), runs.len());
    });
    for daemon in &mut cluster.daemons {
        assert!(daemon.stop().success());
    }
}

/// Two of three daemons killed with SIGKILL at random moments under load, some started
/// again at once (their restart recovery ends their attempts, `daemon_restart`), some
/// only after their lease ran out (the others end them, `node_lost`). Every acknowledged
/// job ends exactly once, and no two runs of a subject overlap.
#[test]
fn a_crash_loop_of_two_daemons_loses_nothing_and_ends_every_job() {
    let mut cluster = Cluster::start("loop", 3);
    let mut rng = semantica_core::SplitMix64::new(0x5EED_0015);
    let cycles = std::env::var("SEMANTICA_CRASH_CYCLES").ok().and_then(|n| n.parse().ok()).unwrap_or(6);
    let rt = runtime();
    let stable = cluster.client(0);
    let acknowledged = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let producer = {
        let (client, acknowledged, stop) = (stable.clone(), acknowledged.clone(), stop.clone());
        rt.spawn(async move {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Acquire) {
                n += 1;
                // Shared hot subjects, and every fourth job a subject of its own (a lost
                // attempt of a hot subject usually ends SUPERSEDED by a newer generation).
                let subject = if n % 4 == 0 { format!("u{n}") } else { format!("s{}", n % 8) };
                let spec = sleep_job(&subject, 50 + n % 5 * 50, 3);
                let id = enqueue(&client, spec).await;
                acknowledged.lock().unwrap().push(id.as_str().unwrap().to_owned());
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    // The jobs each victim was running just before it was killed.
    let mut hit: Vec<String> = Vec::new();
    for _ in 0..cycles {
        std::thread::sleep(Duration::from_millis(300 + semantica_core::Rng::next_u64(&mut rng) % 700));
        let victim = 1 + (semantica_core::Rng::next_u64(&mut rng) % 2) as usize;
        // Killed while it runs something, so that every cycle ends an attempt (a kill
        // between two jobs would test only the restart).
        hit.extend(rt.block_on(running_now(&stable, &format!("n{victim}"), Duration::from_secs(5))));
        cluster.daemons[victim].crash();
        if semantica_core::Rng::next_u64(&mut rng) % 2 == 0 {
            // Past its lease: the others end its attempts before it comes back.
            std::thread::sleep(Duration::from_millis(LEASE_MS * 2));
        }
        cluster.restart(victim);
    }
    stop.store(true, std::sync::atomic::Ordering::Release);
    rt.block_on(producer).unwrap();
    let acknowledged = acknowledged.lock().unwrap().clone();
    rt.block_on(async {
        let jobs = all_ended(&stable, Duration::from_secs(60)).await;
        assert_eq!(jobs.len(), acknowledged.len(), "every acknowledged job is stored once, nothing else");
        let mut runs: BTreeMap<&str, Vec<(u64, u64)>> = BTreeMap::new();
        for id in &acknowledged {
            let job = &jobs[id];
            match job["state"].as_str().unwrap() {
                "DONE" => runs
                    .entry(job["subject_key"].as_str().unwrap())
                    .or_default()
                    .push((job["started_at"].as_u64().unwrap(), job["finished_at"].as_u64().unwrap())),
                "SUPERSEDED" => {}
                "FAILED" => {
                    let kind = job["error"]["kind"].as_str().unwrap();
                    assert!(matches!(kind, "daemon_restart" | "node_lost"), "{job}");
                }
                other => panic!("job ended {other}: {job}"),
            }
        }
        for (subject, runs) in &mut runs {
            runs.sort();
            for pair in runs.windows(2) {
                assert!(pair[1].0 + 5 >= pair[0].1, "two runs of {subject} overlap: {pair:?}");
            }
        }
        let retried = jobs.values().filter(|job| job["attempts"].as_u64().unwrap() > 1).count();
        // A job seen running on a victim that still ended DONE in its first attempt had
        // finished between the look and the kill; any other end means the kill took it.
        let first_attempt_done = |id: &&String| jobs[id.as_str()]["state"] == "DONE" && jobs[id.as_str()]["attempts"] == 1;
        let lost = hit.iter().filter(|id| !first_attempt_done(id)).count();
        eprintln!(
            "{} jobs acknowledged over {cycles} crashes, {} running at a kill, {lost} of them lost, {retried} run again",
            acknowledged.len(),
            hit.len()
        );
        assert!(lost > 0, "no crash ended an attempt: the loop tested nothing");
    });
    for daemon in &mut cluster.daemons {
        assert!(daemon.stop().success());
    }
}

/// Wake-ups through LISTEN/NOTIFY: a job enqueued on a daemon whose workers are all busy
/// starts on the idle other one at once, not at that one's next poll (a second).
#[test]
fn a_job_enqueued_on_a_busy_daemon_starts_on_an_idle_one_at_once() {
    let mut cluster = Cluster::start("wake", 2);
    let busy = cluster.client(0);
    let mut latencies_ms = Vec::new();
    runtime().block_on(async {
        for round in 0..4 {
            // Two workers per daemon: the first two fill n0, the other two wait for n1.
            let mut ids = Vec::new();
            for n in 0..4 {
                ids.push(enqueue(&busy, sleep_job(&format!("r{round}-{n}"), 300, 1)).await);
            }
            let jobs = all_ended(&busy, Duration::from_secs(20)).await;
            for id in &ids {
                let job = &jobs[id.as_str().unwrap()];
                assert_eq!(job["state"], "DONE", "{job}");
                if job["node"] == "n1" {
                    latencies_ms.push(job["started_at"].as_u64().unwrap() - job["created_at"].as_u64().unwrap());
                }
            }
        }
    });
    eprintln!("enqueued on n0, started on n1 after {latencies_ms:?} ms");
    assert!(latencies_ms.len() >= 4, "n1 took too few jobs to judge: {latencies_ms:?}");
    // A poll would take up to a second; CI machines are slow, so the bound has slack.
    assert!(latencies_ms.iter().all(|ms| *ms < 250), "not woken at once: {latencies_ms:?}");
    for daemon in &mut cluster.daemons {
        assert!(daemon.stop().success());
    }
}

/// A daemon whose renewals hang (its lease row held by another transaction, as a
/// database that stops answering would) stops its runs once its own clock says the lease
/// may have run out, without waiting for the database.
#[test]
fn a_daemon_that_cannot_renew_stops_its_runs_by_its_own_clock() {
    let mut cluster = Cluster::start("hang", 2);
    let client = cluster.client(0);
    runtime().block_on(async {
        for n in 0..4 {
            enqueue(&cluster.client(n % 2), sleep_job(&format!("long{n}"), 20_000, 1)).await;
        }
        let victims = running_on(&client, "n1", 1).await;
        // A transaction that holds n1's lease row, as a `NodeLost` step does (its guard
        // refuses, the live lease being live, but the row stays locked to the rollback).
        let (url, name) = (cluster.schema.url.clone(), cluster.schema.name.clone());
        let blocker = tokio::task::spawn_blocking(move || {
            use semantica_adapters::sqlite::{Control, GroupCommitStore};
            let blocker = PgStore::open(&url, &PgOptions { schema: Some(name) }).unwrap();
            blocker.control(Control::Begin).unwrap();
            let guard = semantica_core::Write::NodeLeaseExpired { node: "n1".into() };
            let refused = blocker.apply_within(&semantica_core::WriteSet { writes: vec![guard] });
            assert!(matches!(refused, Err(semantica_core::StoreError::Conflict { .. })), "{refused:?}");
            std::thread::sleep(Duration::from_millis(LEASE_MS * 3));
            blocker.control(Control::Rollback).unwrap();
        });
        let started = Instant::now();
        let stopped = loop {
            let job = client.call("dev.get.v1", params(json!({"job_id": victims[0]}))).await.unwrap();
            if terminal(&job) {
                break job;
            }
            assert!(started.elapsed() < Duration::from_millis(LEASE_MS * 3), "still running: {job}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        // Ended by its own daemon (the others' `node_lost` waits for the row as well).
        assert_eq!(stopped["state"], "FAILED", "{stopped}");
        assert_ne!(stopped["error"]["kind"], "node_lost", "{stopped}");
        assert!(started.elapsed() < Duration::from_millis(LEASE_MS * 2), "stopped late: {:?}", started.elapsed());
        blocker.await.unwrap();
        // Then it renews or rejoins, and every job ends.
        all_ended(&client, Duration::from_secs(40)).await;
    });
    for daemon in &mut cluster.daemons {
        assert!(daemon.stop().success());
    }
}
