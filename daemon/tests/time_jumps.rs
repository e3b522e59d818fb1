//! API.md "Time that jumps", tried as a user would: the daemon runs under libfaketime
//! (Debian's `faketime`), which steps `CLOCK_REALTIME` only, from a file the test
//! rewrites while the daemon runs. Durations must count the time that really elapsed;
//! job views show wall-clock times.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;
use serde_json::json;

const HOUR_MS: i64 = 3_600_000;

/// libfaketime, from Debian's `faketime` package (`.ci/run` installs it). Missing is a
/// failure, not a skip.
fn libfaketime() -> PathBuf {
    let found = ["x86_64-linux-gnu", "aarch64-linux-gnu"]
        .iter()
        .map(|arch| PathBuf::from(format!("/usr/lib/{arch}/faketime/libfaketime.so.1")))
        .find(|path| path.exists());
    found.expect("libfaketime is missing: apt-get install faketime (run .ci/run)")
}

/// A daemon whose `CLOCK_REALTIME` is the real one shifted by what the returned file
/// says (`+0` at first); the test rewrites it to step the wall clock.
fn daemon_on_a_fake_wall_clock(home: &std::path::Path) -> (Daemon, PathBuf) {
    let offset_file = home.join("faketime");
    std::fs::write(&offset_file, "+0").unwrap();
    let preload = libfaketime();
    let daemon = Daemon::start_with(
        home,
        &[
            ("LD_PRELOAD", preload.to_str().unwrap()),
            ("FAKETIME_TIMESTAMP_FILE", offset_file.to_str().unwrap()),
            ("FAKETIME_NO_CACHE", "1"),
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
        ],
    );
    (daemon, offset_file)
}

fn real_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

#[test]
fn durations_count_real_time_when_the_wall_clock_is_stepped_back_or_forward() {
    let home = tempfile::tempdir().unwrap();
    let (daemon, offset_file) = daemon_on_a_fake_wall_clock(home.path());
    let client = daemon.client();
    runtime().block_on(async {
        // Stepped back an hour: a 3 s delay and a 2 s timeout still take about that long.
        let delayed =
            json!({"job_type": "noop", "queue": "t", "subject_key": "delayed", "schedule": {"delay_ms": 3000}});
        let delayed = client.call("dev.enqueue.v1", params(delayed)).await.unwrap();
        let stuck = json!({"job_type": "sh", "queue": "t", "subject_key": "stuck", "timeout_ms": 2000,
                           "exec": {"command": "sleep", "args": ["30"]}});
        let stuck = client.call("dev.enqueue.v1", params(stuck)).await.unwrap();
        std::fs::write(&offset_file, "-1h").unwrap();
        let stepped = Instant::now();
        let done = client
            .call("dev.wait.v1", params(json!({"job_id": delayed["job_id"], "timeout_ms": 20_000})))
            .await
            .unwrap();
        assert_eq!(done["state"], "DONE", "{done}");
        let failed =
            client.call("dev.wait.v1", params(json!({"job_id": stuck["job_id"], "timeout_ms": 20_000}))).await.unwrap();
        assert_eq!(
            (failed["state"].as_str(), failed["error"]["kind"].as_str()),
            (Some("FAILED"), Some("timeout")),
            "{failed}"
        );
        assert!(stepped.elapsed() < Duration::from_secs(10), "timers froze for {:?}", stepped.elapsed());
        // Views show the wall clock the daemon sees: an hour behind the real one.
        let view = client.call("dev.get.v1", params(json!({"job_id": stuck["job_id"]}))).await.unwrap();
        let shown = view["finished_at"].as_i64().unwrap();
        assert!((shown - (real_ms() - HOUR_MS)).abs() < 15_000, "finished_at {shown} is not on the stepped wall clock");

        // Stepped forward (an hour ahead of the real clock): a 3 s job with a 10 s timeout
        // is not killed early.
        std::fs::write(&offset_file, "+1h").unwrap();
        let short = json!({"job_type": "sh", "queue": "t", "subject_key": "short", "timeout_ms": 10_000,
                           "exec": {"command": "sleep", "args": ["3"]}});
        let short = client.call("dev.enqueue.v1", params(short)).await.unwrap();
        let ended =
            client.call("dev.wait.v1", params(json!({"job_id": short["job_id"], "timeout_ms": 30_000}))).await.unwrap();
        assert_eq!(ended["state"], "DONE", "{ended}");
        let created = ended["created_at"].as_i64().unwrap();
        assert!(
            (created - (real_ms() + HOUR_MS)).abs() < 15_000,
            "created_at {created} is not on the stepped wall clock"
        );
        // A schedule.at given on that wall clock, 5 s ahead, is due 5 s from now.
        let at = created + 5_000;
        let timed = json!({"job_type": "noop", "queue": "t", "subject_key": "at", "schedule": {"at": at}});
        let timed = client.call("dev.enqueue.v1", params(timed)).await.unwrap();
        let view = client.call("dev.get.v1", params(json!({"job_id": timed["job_id"]}))).await.unwrap();
        assert_eq!(view["scheduled_at"].as_i64(), Some(at), "schedule.at reads back as given");
        let ran =
            client.call("dev.wait.v1", params(json!({"job_id": timed["job_id"], "timeout_ms": 20_000}))).await.unwrap();
        assert_eq!(ran["state"], "DONE", "{ran}");

        // Cron slots follow the wall clock: stepped to 30 s past a real minute, a minute
        // slot is on the stepped clock's minute, and fires when that clock reaches it.
        std::fs::write(&offset_file, "+3630").unwrap();
        tokio::time::sleep(Duration::from_millis(2_500)).await; // the scheduler notices within a second
        let job = json!({"job_type": "noop", "queue": "t", "subject_key": "minutely"});
        let set = json!({"name": "m", "cron": "* * * * *", "job": job});
        let set = client.call("dev.recurring.set.v1", params(set)).await.unwrap();
        let next_at = set["next_at"].as_i64().unwrap();
        assert_eq!(next_at % 60_000, 0, "a minute of the wall clock: {set}");
        let stepped_now = real_ms() + HOUR_MS + 30_000;
        assert!(next_at > stepped_now - 5_000 && next_at <= stepped_now + 60_000, "{next_at} vs {stepped_now}");
        let fired = wait_for_slot(&client, "m").await;
        let view = client.call("dev.get.v1", params(json!({"job_id": fired}))).await.unwrap();
        assert_eq!(view["generation"].as_i64(), Some(next_at / 1000), "{view}");
        let created = view["created_at"].as_i64().unwrap();
        assert!((created - next_at).abs() < 3_000, "fired at {created}, the slot is {next_at}");
    });
}

#[test]
fn absolute_times_given_before_a_step_follow_the_wall_clock() {
    let home = tempfile::tempdir().unwrap();
    let (daemon, offset_file) = daemon_on_a_fake_wall_clock(home.path());
    let client = daemon.client();
    runtime().block_on(async {
        let enqueue = |job: serde_json::Value| {
            let client = &client;
            async move { client.call("dev.enqueue.v1", params(job)).await.unwrap()["job_id"].clone() }
        };
        let state = |job_id: serde_json::Value| {
            let client = &client;
            async move {
                let view = client.call("dev.get.v1", params(json!({"job_id": job_id}))).await.unwrap();
                view["state"].as_str().unwrap().to_owned()
            }
        };
        const MINUTE_MS: i64 = 60_000;
        let now = real_ms();
        let soon = enqueue(json!({"job_type": "noop", "queue": "t", "subject_key": "soon",
                                  "schedule": {"at": now + 4_000}}))
        .await;
        let later = enqueue(json!({"job_type": "noop", "queue": "t", "subject_key": "later",
                                   "schedule": {"at": now + 30 * MINUTE_MS}}))
        .await;
        let running = enqueue(json!({"job_type": "sh", "queue": "t", "subject_key": "running",
                                     "deadline": now + 20 * MINUTE_MS,
                                     "exec": {"command": "sleep", "args": ["60"]}}))
        .await;
        let waiting = enqueue(json!({"job_type": "noop", "queue": "t", "subject_key": "waiting",
                                     "schedule": {"at": now + 20 * MINUTE_MS}, "deadline": now + 25 * MINUTE_MS}))
        .await;
        // Set back an hour: 4 s from now on the old wall clock is an hour and 4 s away.
        std::fs::write(&offset_file, "-1h").unwrap();
        tokio::time::sleep(Duration::from_secs(7)).await;
        assert_eq!(state(soon.clone()).await, "SCHEDULED", "schedule.at follows the wall clock back");
        assert_eq!(state(running.clone()).await, "RUNNING");
        // Then an hour ahead of the real clock: every absolute time given above has passed.
        std::fs::write(&offset_file, "+1h").unwrap();
        let stepped = Instant::now();
        let wait = |job_id: serde_json::Value| {
            let client = &client;
            async move {
                client.call("dev.wait.v1", params(json!({"job_id": job_id, "timeout_ms": 20_000}))).await.unwrap()
            }
        };
        assert_eq!(wait(soon).await["state"], "DONE");
        assert_eq!(wait(later).await["state"], "DONE", "a schedule.at half an hour ahead has come");
        let failed = wait(running).await;
        assert_eq!(
            (failed["state"].as_str(), failed["error"]["kind"].as_str()),
            (Some("FAILED"), Some("deadline_exceeded")),
            "{failed}"
        );
        assert_eq!(wait(waiting).await["state"], "SKIPPED_DEADLINE");
        assert!(stepped.elapsed() < Duration::from_secs(10), "took {:?} after the step", stepped.elapsed());
    });
}
