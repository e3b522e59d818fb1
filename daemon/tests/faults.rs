//! Faults from outside the wire, end to end: a full database, and jobs that misbehave
//! with their output (print without end, close it early, leave it open behind them).
//! The real `semantica` binary on a temp `SEMANTICA_HOME`, spoken to as any client.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Map, Value};

fn write_config(home: &Path, text: &str) {
    std::fs::create_dir_all(home).unwrap();
    std::fs::write(home.join("config.toml"), text).unwrap();
}

/// The daemon's peak resident memory (`VmHWM`), in KiB.
fn peak_rss_kib(home: &Path) -> u64 {
    let info: Value = serde_json::from_str(&std::fs::read_to_string(home.join("daemon.json")).unwrap()).unwrap();
    let status = std::fs::read_to_string(format!("/proc/{}/status", info["pid"])).unwrap();
    let line = status.lines().find(|line| line.starts_with("VmHWM:")).expect("VmHWM in /proc/<pid>/status");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

async fn enqueue(client: &Client, params_: Value) -> Result<Value, (i32, Value)> {
    client.call("dev.enqueue.v1", params(params_)).await.map_err(|error| match error {
        ClientError::Rpc(error) => (error.code, error.data),
        other => panic!("enqueue failed off the contract: {other}"),
    })
}

async fn wait_end(client: &Client, id: &Value) -> Value {
    let job = client.call("dev.wait.v1", params(json!({"job_id": id, "timeout_ms": 60_000}))).await.unwrap();
    assert!(job.get("timed_out").is_none(), "the job did not end: {job}");
    job
}

/// A database at its size limit answers writes with 5001 and keeps serving; nothing it
/// acknowledged is lost; once space is freed (finished jobs purged) writes go on.
#[test]
fn a_full_database_answers_5001_loses_nothing_and_recovers_when_space_returns() {
    let home = tempfile::tempdir().unwrap();
    // retention 0: maintenance may purge every finished job, which is how space returns.
    write_config(home.path(), "db_max_bytes = 1048576\nretention_days = 0\n");
    let daemon = Daemon::start(home.path());
    let client = daemon.client();
    runtime().block_on(async {
        let padding = "x".repeat(4096);
        let mut kept = BTreeSet::new();
        let mut refused = 0;
        // Fillers run to DONE (and can be purged later); kept jobs wait an hour, so each
        // must be found exactly as acknowledged at the end.
        for n in 0..2_000 {
            let filler = enqueue(
                &client,
                json!({"job_type": "noop", "queue": "default", "subject_key": format!("filler-{n}"), "payload": padding}),
            )
            .await;
            let keep = enqueue(
                &client,
                json!({"job_type": "noop", "queue": "default", "subject_key": format!("kept-{n}"), "tag": "kept",
                       "payload": {"n": n}, "schedule": {"delay_ms": 3_600_000}}),
            )
            .await;
            for answer in [filler, keep.clone()] {
                if let Err((code, data)) = answer {
                    assert_eq!(code, 5001, "a full database is a DB_ERROR: {data}");
                    refused += 1;
                }
            }
            if let Ok(result) = keep {
                kept.insert(result["job_id"].as_str().unwrap().to_owned());
            }
            if refused >= 20 {
                break;
            }
        }
        assert!(refused >= 20, "the database never filled up ({} kept jobs acknowledged)", kept.len());
        assert!(!kept.is_empty());
        // Still serving: reads, and health.
        let stats = client.call("admin.stats.v1", Map::new()).await.unwrap();
        assert!(stats["queues"].is_array(), "{stats}");
        // Space returns: the fillers finish and are purged. Until then writes may still
        // be refused; they must be 5001, never anything else.
        let started = Instant::now();
        let after = loop {
            let _ = client.call("admin.maintenance.v1", Map::new()).await;
            match enqueue(&client, json!({"job_type": "noop", "queue": "default", "subject_key": "after"})).await {
                Ok(result) => break result,
                Err((code, data)) => assert_eq!(code, 5001, "{data}"),
            }
            assert!(started.elapsed() < Duration::from_secs(60), "writes never came back after purging");
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert_eq!(wait_end(&client, &after["job_id"]).await["state"], "DONE");
        // Every acknowledged kept job is there once, as acknowledged.
        for id in &kept {
            let job = client.call("dev.get.v1", params(json!({"job_id": id}))).await.unwrap();
            assert_eq!(job["state"], "SCHEDULED", "{job}");
        }
        let mut listed = BTreeSet::new();
        let mut cursor = Value::Null;
        loop {
            let page = client
                .call(
                    "dev.query_jobs.v1",
                    params(json!({"filter": {"tag": "kept"}, "limit": 200, "cursor": cursor})),
                )
                .await
                .unwrap();
            for item in page["items"].as_array().unwrap() {
                assert!(listed.insert(item["id"].as_str().unwrap().to_owned()), "listed twice: {item}");
            }
            cursor = page["next_cursor"].clone();
            if cursor.is_null() {
                break;
            }
        }
        // A refused enqueue may not be listed; an acknowledged one must be.
        assert!(kept.is_subset(&listed), "acknowledged jobs missing: {:?}", kept.difference(&listed).collect::<Vec<_>>());
    });
}

/// A job printing 1 GiB ends DONE; its log stops at `log_max_bytes` with a note, and the
/// daemon's memory stays small while it reads the output.
#[test]
fn a_job_printing_a_gibibyte_is_capped_in_its_log_and_in_daemon_memory() {
    let home = tempfile::tempdir().unwrap();
    write_config(home.path(), "log_max_bytes = 1048576\n");
    let daemon = Daemon::start(home.path());
    let client = daemon.client();
    runtime().block_on(async {
        let exec =
            json!({"command": "sh", "args": ["-c", "echo first line; head -c 1073741824 /dev/zero; echo done >&2"]});
        let enqueued =
            enqueue(&client, json!({"job_type": "exec", "queue": "default", "subject_key": "loud", "exec": exec}))
                .await
                .unwrap();
        let job = wait_end(&client, &enqueued["job_id"]).await;
        assert_eq!(job["state"], "DONE", "{job}");
        let log_path = home.path().join("logs").join(format!("{}.log", enqueued["job_id"].as_str().unwrap()));
        let log = std::fs::read(&log_path).unwrap();
        assert!(log.len() <= 1_048_576 + 256, "the log grew past its cap: {} bytes", log.len());
        assert!(log.starts_with(b"first line\n"), "the start of the output is kept");
        let text = String::from_utf8_lossy(&log[log.len().saturating_sub(256)..]).into_owned();
        assert!(text.contains("further output dropped"), "no note about the cap: {text:?}");
        assert!(text.contains("bytes of output dropped"), "no count of dropped bytes: {text:?}");
        let peak_mib = peak_rss_kib(home.path()) / 1024;
        assert!(peak_mib <= 150, "the daemon's peak RSS reached {peak_mib} MiB");
        // The daemon still serves.
        let echo =
            enqueue(&client, json!({"job_type": "echo", "queue": "default", "subject_key": "after", "payload": 1}))
                .await
                .unwrap();
        assert_eq!(wait_end(&client, &echo["job_id"]).await["state"], "DONE");
    });
}

/// Closing stdout and stderr early is no failure: the job ends as its exit says.
#[test]
fn a_job_that_closes_its_output_early_ends_by_its_exit_status() {
    let home = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(home.path());
    let client = daemon.client();
    runtime().block_on(async {
        for (script, state) in
            [("echo before; exec >&- 2>&-; sleep 0.3; exit 0", "DONE"), ("exec >&- 2>&-; sleep 0.3; exit 3", "FAILED")]
        {
            let exec = json!({"command": "sh", "args": ["-c", script]});
            let enqueued =
                enqueue(&client, json!({"job_type": "exec", "queue": "default", "subject_key": script, "exec": exec}))
                    .await
                    .unwrap();
            let job = wait_end(&client, &enqueued["job_id"]).await;
            assert_eq!(job["state"], state, "{script}: {job}");
            if state == "FAILED" {
                assert_eq!(job["exit_code"], 3, "{job}");
            } else {
                let tail = client
                    .call("logs.tail.v1", params(json!({"job_id": enqueued["job_id"], "offset": 0})))
                    .await
                    .unwrap();
                assert_eq!(tail["chunk"], "before\n", "{tail}");
            }
        }
    });
}

/// A process that leaves the job's process group (setsid) keeping the output open does
/// not keep the job RUNNING: the end is reported within the drain bound, and the log says
/// the output was abandoned. (Such a process escapes the group kill; see SECURITY.md.)
#[test]
fn output_held_open_by_an_escaped_process_does_not_hold_the_job() {
    let home = tempfile::tempdir().unwrap();
    let pid_file = home.path().join("escaped.pid");
    let daemon = Daemon::start(home.path());
    let client = daemon.client();
    runtime().block_on(async {
        // The leader waits until the escaped process has left the group (it writes its pid
        // after setsid), or the group kill at the leader's exit could catch it first.
        let script = format!(
            "setsid sh -c 'echo $$ > {pid}.tmp; mv {pid}.tmp {pid}; exec sleep 30' & \
             while [ ! -s {pid} ]; do sleep 0.01; done; echo leader done",
            pid = pid_file.display()
        );
        let exec = json!({"command": "sh", "args": ["-c", script]});
        let enqueued =
            enqueue(&client, json!({"job_type": "exec", "queue": "default", "subject_key": "escape", "exec": exec}))
                .await
                .unwrap();
        let started = Instant::now();
        let job = wait_end(&client, &enqueued["job_id"]).await;
        let took = started.elapsed();
        let escaped: i32 = std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(escaped), nix::sys::signal::Signal::SIGKILL);
        assert_eq!(job["state"], "DONE", "{job}");
        assert!(took < Duration::from_secs(20), "the job waited {took:?} for output it would never get");
        let tail =
            client.call("logs.tail.v1", params(json!({"job_id": enqueued["job_id"], "offset": 0}))).await.unwrap();
        let chunk = tail["chunk"].as_str().unwrap();
        assert!(chunk.starts_with("leader done\n"), "{chunk:?}");
        assert!(chunk.contains("no longer read"), "{chunk:?}");
    });
}
