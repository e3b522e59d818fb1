//! Rough throughput of the SQLite store under the real engine, printed, never asserted
//! (timings on a shared machine prove nothing): enqueues one transaction each, enqueues
//! many per transaction (what a group-committing writer would do; each step still
//! commits under its own savepoint), and claims.
//!
//! The same through the group-commit writer: enqueues from 1 and 16 threads, batched
//! enqueues (1000 per input) and claims, for a few `wait_max` values.
//!
//! `cargo test -p semantica-adapters --release --test rates -- --nocapture` shows them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use semantica_adapters::sqlite::{Writer, WriterHandle, WriterOptions};
use semantica_adapters::{SqliteOptions, SqliteStore, Synchronous, SystemClock};
use semantica_core::{Config, Engine, EnqueueRequest, Input, Reply, SeededIds, SplitMix64};

const JOBS: u64 = 1_000;
const GROUP: u64 = 100;

fn request(n: u64) -> EnqueueRequest {
    EnqueueRequest {
        job_type: Some("work".into()),
        queue: Some("default".into()),
        subject_key: Some(format!("subject-{n}")),
        payload_json: Some(format!("{{\"n\":{n}}}")),
        ..EnqueueRequest::default()
    }
}

fn setup(synchronous: Synchronous) -> (tempfile::TempDir, SqliteStore, Engine, u64) {
    let dir = tempfile::tempdir().unwrap();
    let options = SqliteOptions { synchronous, ..SqliteOptions::default() };
    let mut store = SqliteStore::open(dir.path().join("rates.db"), &options).unwrap();
    let mut engine =
        Engine::new(Config::new(JOBS as usize, ["work"]), Box::new(SeededIds::new(1)), Box::new(SplitMix64::new(1)));
    let now_ms = 1_700_000_000_000;
    let _recovered = engine.run(now_ms, Input::Recover, &mut store).unwrap();
    (dir, store, engine, now_ms)
}

fn per_second(count: u64, started: Instant) -> f64 {
    count as f64 / started.elapsed().as_secs_f64()
}

#[test]
fn print_enqueue_and_claim_rates() {
    for synchronous in [Synchronous::Normal, Synchronous::Full] {
        let (_dir, mut store, mut engine, now_ms) = setup(synchronous);
        let started = Instant::now();
        for n in 0..JOBS {
            let step = engine.run(now_ms, Input::Enqueue(Box::new(request(n))), &mut store).unwrap();
            assert!(matches!(step.reply, Reply::Enqueued(_)));
        }
        let single = per_second(JOBS, started);

        let started = Instant::now();
        for group in 0..JOBS / GROUP {
            store.connection().execute_batch("BEGIN IMMEDIATE").unwrap();
            for n in 0..GROUP {
                let step = engine
                    .run(now_ms, Input::Enqueue(Box::new(request(JOBS + group * GROUP + n))), &mut store)
                    .unwrap();
                assert!(matches!(step.reply, Reply::Enqueued(_)));
            }
            store.connection().execute_batch("COMMIT").unwrap();
        }
        let grouped = per_second(JOBS, started);

        let started = Instant::now();
        for _ in 0..JOBS {
            let step = engine.run(now_ms, Input::Claim { queue: None }, &mut store).unwrap();
            assert!(matches!(step.reply, Reply::Claimed(Some(_))));
        }
        let claims = per_second(JOBS, started);
        println!(
            "synchronous={synchronous:?}: enqueue {single:.0}/s one per transaction, {grouped:.0}/s {GROUP} per \
             transaction; claim {claims:.0}/s (one per transaction)"
        );
    }
}

const WRITER_JOBS: u64 = 4_000;
const WRITER_THREADS: u64 = 16;

fn spawn_writer(dir: &tempfile::TempDir, synchronous: Synchronous, wait_max: Duration) -> WriterHandle {
    let options = SqliteOptions { synchronous, ..SqliteOptions::default() };
    let store = SqliteStore::open(dir.path().join("writer.db"), &options).unwrap();
    let engine = Engine::new(
        Config::new(4 * WRITER_JOBS as usize, ["work"]),
        Box::new(SeededIds::new(1)),
        Box::new(SplitMix64::new(1)),
    );
    let options = WriterOptions { wait_max, ..WriterOptions::default() };
    let writer = Writer::spawn(store, engine, Arc::new(SystemClock::new()), options).unwrap();
    assert!(matches!(writer.submit(Input::Recover).unwrap().reply, Reply::Recovered { .. }));
    writer
}

/// `count` inputs from `threads` threads at once; `make(n)` builds input `n`.
fn from_threads(writer: &WriterHandle, threads: u64, count: u64, make: impl Fn(u64) -> Input + Sync) -> f64 {
    let started = Instant::now();
    std::thread::scope(|scope| {
        for t in 0..threads {
            let (writer, make) = (writer.clone(), &make);
            scope.spawn(move || {
                for n in (t..count).step_by(threads as usize) {
                    let step = writer.submit(make(n)).unwrap();
                    assert!(!matches!(step.reply, Reply::Rejected(_) | Reply::Claimed(None)), "{:?}", step.reply);
                }
            });
        }
    });
    per_second(count, started)
}

#[test]
fn print_writer_rates() {
    for synchronous in [Synchronous::Normal, Synchronous::Full] {
        for wait_max in [Duration::ZERO, Duration::from_millis(1)] {
            let dir = tempfile::tempdir().unwrap();
            let writer = spawn_writer(&dir, synchronous, wait_max);
            let enqueue = |n: u64| Input::Enqueue(Box::new(request(n)));
            // One caller waits for each answer: at most one input per batch.
            let single = from_threads(&writer, 1, WRITER_JOBS / 4, enqueue);
            let before = writer.stats();
            let offset = WRITER_JOBS / 4;
            let many = from_threads(&writer, WRITER_THREADS, WRITER_JOBS, |n| enqueue(offset + n));
            let after = writer.stats();
            let steps_per_batch = (after.steps - before.steps) as f64 / (after.batches - before.batches) as f64;

            let started = Instant::now();
            let batches = WRITER_JOBS / 1_000;
            for b in 0..batches {
                let requests = (0..1_000).map(|n| request(2 * WRITER_JOBS + b * 1_000 + n)).collect();
                let step = writer.submit(Input::EnqueueBatch(requests)).unwrap();
                assert!(matches!(step.reply, Reply::EnqueuedBatch(_)), "{:?}", step.reply);
            }
            let batched = per_second(batches * 1_000, started);

            let claim = |_| Input::Claim { queue: None };
            // Claims get slower as RUNNING jobs pile up (each claim counts them): few here.
            let claims_one = from_threads(&writer, 1, WRITER_JOBS / 8, claim);
            let claims_many = from_threads(&writer, WRITER_THREADS, WRITER_JOBS / 8, claim);
            println!(
                "writer synchronous={synchronous:?} wait_max={wait_max:?}: enqueue {single:.0}/s from 1 thread, \
                 {many:.0}/s from {WRITER_THREADS} threads ({steps_per_batch:.1} steps per transaction); \
                 EnqueueBatch of 1000: {batched:.0} jobs/s; claim {claims_one:.0}/s from 1 thread, \
                 {claims_many:.0}/s from {WRITER_THREADS} threads"
            );
            writer.shutdown();
        }
    }
}
