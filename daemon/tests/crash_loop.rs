//! `kill -9` of the daemon under load, again and again: clients enqueueing, jobs running.
//! After every cycle, every acknowledged enqueue is there exactly once, no job is left
//! RUNNING with a live process from an earlier life, and the database is intact.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use semantica_core::SplitMix64;
use serde_json::{json, Value};

/// Bounded for CI (each cycle takes about a second); `SEMANTICA_CRASH_CYCLES=50` for a
/// longer local run.
fn cycles() -> usize {
    std::env::var("SEMANTICA_CRASH_CYCLES").ok().and_then(|n| n.parse().ok()).unwrap_or(6)
}
const CLIENTS: usize = 4;

fn alive_pids(pids: &BTreeSet<u64>) -> Vec<u64> {
    pids.iter().copied().filter(|pid| alive(*pid as i32)).collect()
}

/// Every job in the store, by id (paged through dev.query_jobs.v1).
async fn all_jobs(client: &Client) -> Vec<Value> {
    let mut jobs = Vec::new();
    let mut cursor = Value::Null;
    loop {
        let page = client.call("dev.query_jobs.v1", params(json!({"limit": 200, "cursor": cursor}))).await.unwrap();
        jobs.extend(page["items"].as_array().unwrap().iter().cloned());
        cursor = page["next_cursor"].clone();
        if cursor.is_null() {
            return jobs;
        }
    }
}

#[test]
fn kill_9_under_load_loses_nothing_acknowledged() {
    let home = tempfile::tempdir().unwrap();
    let acknowledged: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let mut pids_seen: BTreeSet<u64> = BTreeSet::new();
    let mut rng = SplitMix64::new(0xC0FFEE);
    let rt = runtime();
    let cycles = cycles();
    for cycle in 0..cycles {
        let mut daemon = Daemon::start_with(home.path(), &[("SEMANTICA_WORKERS", "2")]);
        let stop = Arc::new(AtomicBool::new(false));
        let mut clients = Vec::new();
        for client_index in 0..CLIENTS {
            let client = daemon.client();
            let stop = Arc::clone(&stop);
            let acknowledged = Arc::clone(&acknowledged);
            clients.push(rt.spawn(async move {
                let mut n = 0u64;
                while !stop.load(Ordering::Acquire) {
                    n += 1;
                    // Half subprocess jobs that take a while, half instant in-process ones.
                    let job = if n % 2 == 0 {
                        json!({"job_type": "sh", "queue": "default", "subject_key": format!("c{cycle}-{client_index}-{n}"),
                               "exec": {"command": "sleep", "args": ["0.2"]}})
                    } else {
                        json!({"job_type": "noop", "queue": "default", "subject_key": format!("c{cycle}-{client_index}-{n}")})
                    };
                    match client.call("dev.enqueue.v1", params(job)).await {
                        Ok(answer) => {
                            acknowledged.lock().unwrap().insert(answer["job_id"].as_str().unwrap().to_owned());
                        }
                        // The daemon died under us: unacknowledged, so it may or may not exist.
                        Err(_) => return,
                    }
                }
            }));
        }
        std::thread::sleep(Duration::from_millis(300 + rng.below(700)));
        // Note the processes running right now: none may outlive the next recovery.
        rt.block_on(async {
            let client = daemon.client();
            if let Ok(page) =
                client.call("dev.query_jobs.v1", params(json!({"filter": {"state": ["RUNNING"]}, "limit": 200}))).await
            {
                for job in page["items"].as_array().unwrap() {
                    if let Some(pid) = job["pid"].as_u64() {
                        pids_seen.insert(pid);
                    }
                }
            }
        });
        daemon.crash();
        stop.store(true, Ordering::Release);
        for client in clients {
            let _ = rt.block_on(client);
        }
    }

    // A last life: recovery runs, then everything is checked over the wire.
    let last_life_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    let mut daemon = Daemon::start(home.path());
    let client = daemon.client();
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(
        acknowledged.len() > cycles * 10,
        "only {} enqueues were acknowledged: the load proves little",
        acknowledged.len()
    );
    rt.block_on(async {
        let jobs = all_jobs(&client).await;
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for job in &jobs {
            *counts.entry(job["id"].as_str().unwrap().to_owned()).or_default() += 1;
            // RUNNING now means started in this life; a run of an earlier life must have
            // been turned into a failed attempt by recovery.
            if job["state"] == "RUNNING" {
                assert!(job["started_at"].as_u64().unwrap() >= last_life_ms, "recovery left a job RUNNING: {job}");
            }
        }
        for id in &acknowledged {
            assert_eq!(counts.get(id), Some(&1), "acknowledged job {id} is not present exactly once");
        }
        assert!(counts.values().all(|count| *count == 1));
    });
    let started = Instant::now();
    while !alive_pids(&pids_seen).is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "processes of killed daemons survive: {:?}",
            alive_pids(&pids_seen)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = daemon.stop();
    assert!(status.success());
    let store = semantica_adapters::SqliteStore::open(home.path().join("jobs.db"), &Default::default()).unwrap();
    assert_eq!(store.integrity_check().unwrap(), vec!["ok".to_owned()]);
    println!(
        "{cycles} kill -9 cycles, {} acknowledged enqueues, {} processes checked",
        acknowledged.len(),
        pids_seen.len()
    );
}
