//! Operating the daemon, end to end: config reload (SIGHUP and `semantica reload`) and
//! automatic retention. The real `semantica` binary on a temp `SEMANTICA_HOME` and port 0.

mod common;

use std::fs::File;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;
use nix::sys::signal::Signal;
use serde_json::{json, Map, Value};

fn write_config(home: &Path, text: &str) {
    std::fs::write(home.join("config.toml"), text).unwrap();
}

fn cli(home: &Path, args: &[&str]) -> Output {
    Command::new(BIN).args(args).env("SEMANTICA_HOME", home).env_remove("SEMANTICA_TOKEN").output().unwrap()
}

/// A daemon with 4 workers whose log goes to `<home>/daemon.log`.
fn start_logged(home: &Path) -> Daemon {
    let log = File::create(home.join("daemon.log")).unwrap();
    Daemon::start_logging_to(home, &[("SEMANTICA_WORKERS", "4")], Stdio::from(log))
}

fn daemon_log(home: &Path) -> String {
    std::fs::read_to_string(home.join("daemon.log")).unwrap_or_default()
}

/// Waits until the daemon's log has a line containing `needle`, and returns that line.
fn wait_for_log_line(home: &Path, needle: &str) -> String {
    let started = Instant::now();
    loop {
        if let Some(line) = daemon_log(home).lines().find(|line| line.contains(needle)) {
            return line.to_owned();
        }
        assert!(started.elapsed() < Duration::from_secs(30), "no log line with {needle:?}:\n{}", daemon_log(home));
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Jobs of queue `q` that run until cancelled.
async fn enqueue_long_jobs(client: &Client, count: usize) {
    for n in 0..count {
        let job = json!({"job_type": "sleep", "queue": "q", "subject_key": format!("long-{n}"), "payload": {"ms": 120_000}, "tag": "long"});
        client.call("dev.enqueue.v1", params(job)).await.unwrap();
    }
}

async fn running_in_q(client: &Client) -> u64 {
    let stats = client.call("admin.stats.v1", Map::new()).await.unwrap();
    let queues = stats["queues"].as_array().unwrap();
    queues.iter().find(|queue| queue["name"] == "q").map_or(0, |queue| queue["running"].as_u64().unwrap())
}

async fn wait_running_in_q(client: &Client, want: u64) {
    let started = Instant::now();
    loop {
        let running = running_in_q(client).await;
        if running == want {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{running} jobs of q run, want {want}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// `running_in_q` stays at `want` for a while: what a lower limit must hold.
async fn stays_running_in_q(client: &Client, want: u64) {
    for _ in 0..10 {
        assert_eq!(running_in_q(client).await, want);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn sighup_reloads_queue_limits_and_keeps_the_running_config_when_the_file_is_invalid() {
    let home = tempfile::tempdir().unwrap();
    write_config(home.path(), "[queues.q]\nconcurrency = 1\n");
    let mut daemon = start_logged(home.path());
    let client = daemon.client();
    runtime().block_on(async {
        enqueue_long_jobs(&client, 3).await;
        wait_running_in_q(&client, 1).await;
        stays_running_in_q(&client, 1).await;

        write_config(home.path(), "[queues.q]\nconcurrency = 2\n");
        daemon.signal(Signal::SIGHUP);
        wait_running_in_q(&client, 2).await;
        wait_for_log_line(home.path(), "config reloaded");
        stays_running_in_q(&client, 2).await;

        // A broken file: refused with one line naming the file and the error, and the
        // limit of 2 stays (without it, the 4 workers would start the third job).
        write_config(home.path(), "[queues.q]\nconcurrency = \"lots\"\n");
        daemon.signal(Signal::SIGHUP);
        let line = wait_for_log_line(home.path(), "config not reloaded");
        let path = home.path().join("config.toml");
        assert!(line.contains(&path.display().to_string()), "{line}");
        assert!(line.contains("line 2"), "the error says where: {line}");
        stays_running_in_q(&client, 2).await;
        // So that the stop below need not wait out the shutdown grace.
        client.call("dev.cancel.v1", params(json!({"tag": "long"}))).await.unwrap();
    });
    assert!(daemon.exited().is_none(), "SIGHUP must not end the daemon");
    assert!(home.path().join("daemon.json").exists());
    let status = daemon.stop();
    assert!(status.success(), "{status}");
}

#[test]
fn sighup_without_a_config_file_keeps_the_daemon_serving() {
    let home = tempfile::tempdir().unwrap();
    let mut daemon = start_logged(home.path());
    daemon.signal(Signal::SIGHUP);
    wait_for_log_line(home.path(), "config reloaded");
    daemon.signal(Signal::SIGHUP);
    let client = daemon.client();
    runtime().block_on(async {
        let job = client
            .call("dev.enqueue.v1", params(json!({"job_type": "noop", "queue": "default", "subject_key": "s"})))
            .await
            .unwrap();
        let done = client.call("dev.wait.v1", params(json!({"job_id": job["job_id"], "timeout_ms": 20_000}))).await;
        assert_eq!(done.unwrap()["state"], "DONE");
    });
    assert!(daemon.exited().is_none(), "SIGHUP must not end the daemon");
    assert!(daemon.stop().success());
    assert!(!home.path().join("daemon.json").exists());
}

#[test]
fn semantica_reload_applies_the_file_and_refuses_an_invalid_one_with_4000() {
    let home = tempfile::tempdir().unwrap();
    write_config(home.path(), "[queues.q]\nconcurrency = 1\n");
    let daemon = start_logged(home.path());
    let client = daemon.client();
    runtime().block_on(async {
        enqueue_long_jobs(&client, 2).await;
        wait_running_in_q(&client, 1).await;
    });
    write_config(
        home.path(),
        "retention_days = 3\n[queues.q]\nconcurrency = 2\n[throttle]\ncpu_limit_percent = 99\npriority_floor = -5\n",
    );
    let reloaded = cli(home.path(), &["reload", "--json"]);
    assert!(reloaded.status.success(), "{}", String::from_utf8_lossy(&reloaded.stderr));
    let answer: Value = serde_json::from_slice(&reloaded.stdout).unwrap();
    assert_eq!(answer["reloaded"], true, "{answer}");
    let changed: Vec<&str> = answer["changed"].as_array().unwrap().iter().map(|key| key.as_str().unwrap()).collect();
    assert_eq!(changed, ["queues", "retention_days", "throttle"], "{answer}");
    assert_eq!(answer["restart_required"], json!([]), "{answer}");
    runtime().block_on(wait_running_in_q(&client, 2));

    // Keys that need a restart are named as such, and the rest still applies.
    write_config(home.path(), "durable_commits = true\nretention_days = 3\n[queues.q]\nconcurrency = 2\n");
    let human = cli(home.path(), &["reload"]);
    assert!(human.status.success(), "{}", String::from_utf8_lossy(&human.stderr));
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(text.contains("reloaded") && text.contains("durable_commits"), "{text}");
    let again: Value = serde_json::from_slice(&cli(home.path(), &["reload", "--json"]).stdout).unwrap();
    assert_eq!(again["changed"], json!([]), "{again}");
    assert_eq!(again["restart_required"], json!(["durable_commits"]), "still not in effect: {again}");

    write_config(home.path(), "[queues.q\nconcurrency = 3\n");
    let refused = cli(home.path(), &["reload"]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("4000") && stderr.contains("config.toml") && stderr.contains("line 1"), "{stderr}");
    runtime().block_on(async {
        let error = client.call("admin.reload.v1", Map::new()).await.unwrap_err();
        let (code, data) = rpc_code(error);
        assert_eq!((code, data["kind"].as_str()), (4000, Some("invalid_config")), "{data}");
        assert!(data["details"].as_str().unwrap().contains("config.toml"), "{data}");
        let unknown = client.call("admin.reload.v1", params(json!({"now": true}))).await.unwrap_err();
        assert_eq!(rpc_code(unknown).0, 4000);
        stays_running_in_q(&client, 2).await;
    });
}

#[test]
fn finished_jobs_and_their_logs_are_purged_without_any_client_asking() {
    let home = tempfile::tempdir().unwrap();
    write_config(home.path(), "retention_days = 0\nmaintenance_interval_seconds = 1\n");
    let daemon = Daemon::start(home.path());
    let client = daemon.client();
    runtime().block_on(async {
        let waiting = json!({"job_type": "noop", "queue": "default", "subject_key": "later", "schedule": {"delay_ms": 3_600_000}});
        let waiting = client.call("dev.enqueue.v1", params(waiting)).await.unwrap()["job_id"].clone();
        let echo = json!({"job_type": "echo", "queue": "default", "subject_key": "now", "payload": {"n": 1}});
        let done = client.call("dev.enqueue.v1", params(echo)).await.unwrap()["job_id"].clone();
        let log = home.path().join("logs").join(format!("{}.log", done.as_str().unwrap()));
        gone(&client, &done, &log).await;
        let still = client.call("dev.get.v1", params(json!({"job_id": waiting}))).await.unwrap();
        assert_eq!(still["state"], "SCHEDULED", "a job that has not ended is never purged");
    });
}

#[test]
fn a_reload_that_shortens_retention_purges_at_the_new_interval() {
    let home = tempfile::tempdir().unwrap();
    let daemon = start_logged(home.path());
    let client = daemon.client();
    runtime().block_on(async {
        let echo = json!({"job_type": "echo", "queue": "default", "subject_key": "e", "payload": "hello"});
        let id = client.call("dev.enqueue.v1", params(echo)).await.unwrap()["job_id"].clone();
        let job = client.call("dev.wait.v1", params(json!({"job_id": id, "timeout_ms": 20_000}))).await.unwrap();
        assert_eq!(job["state"], "DONE");
        let log = home.path().join("logs").join(format!("{}.log", id.as_str().unwrap()));
        assert!(log.exists(), "the job's log is there while retention keeps it");
        write_config(home.path(), "retention_days = 0\nmaintenance_interval_seconds = 1\n");
        client.call("admin.reload.v1", Map::new()).await.unwrap();
        gone(&client, &id, &log).await;
    });
    wait_for_log_line(home.path(), "retention removed");
}

/// Waits until the job is gone (4001) and so is its log.
async fn gone(client: &Client, id: &Value, log: &Path) {
    let started = Instant::now();
    loop {
        match client.call("dev.get.v1", params(json!({"job_id": id}))).await {
            Err(ClientError::Rpc(error)) if error.code == 4001 && !log.exists() => return,
            Err(ClientError::Rpc(error)) if error.code == 4001 => {}
            Err(other) => panic!("dev.get.v1 failed: {other}"),
            Ok(job) => assert!(
                started.elapsed() < Duration::from_secs(30),
                "after 30 s the job is still there: {job}; its log exists: {}",
                log.exists()
            ),
        }
        assert!(started.elapsed() < Duration::from_secs(30), "the log {} is still there", log.display());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
