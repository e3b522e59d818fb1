//! Rough throughput of the SQLite store under the real engine, printed, never asserted
//! (timings on a shared machine prove nothing): enqueues one transaction each, enqueues
//! many per transaction (what a group-committing writer would do; each step still
//! commits under its own savepoint), and claims.
//!
//! `cargo test -p semantica-adapters --release --test rates -- --nocapture` shows them.

use std::time::Instant;

use semantica_adapters::{SqliteOptions, SqliteStore, Synchronous};
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
