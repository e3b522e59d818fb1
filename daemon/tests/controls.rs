//! Queue controls, retry and recurring jobs end to end (API.md "Additions (v1.1)"): the
//! real binary on a temp home and port 0, over the wire.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

fn queue_stats(stats: &Value, queue: &str) -> Value {
    stats["queues"].as_array().unwrap().iter().find(|q| q["name"] == queue).cloned().unwrap_or(Value::Null)
}

/// A paused queue starts nothing while enqueue still works; pausing survives kill -9; a
/// resumed queue runs what waited. Stats show `paused` and how long the oldest waited.
#[test]
fn a_paused_queue_starts_nothing_until_resumed_even_across_kill_9() {
    let home = tempfile::tempdir().unwrap();
    let mut daemon = Daemon::start(home.path());
    let client = daemon.client();
    let rt = runtime();
    let id = rt.block_on(async {
        let paused = client.call("admin.queue.pause.v1", params(json!({"queue": "held"}))).await.unwrap();
        assert_eq!(paused, json!({"queue": "held", "paused": true}));
        // A queue with no job yet shows as paused.
        let stats = client.call("admin.stats.v1", params(json!({}))).await.unwrap();
        assert_eq!(queue_stats(&stats, "held")["paused"], true, "{stats}");
        let job = client
            .call("dev.enqueue.v1", params(json!({"job_type": "noop", "queue": "held", "subject_key": "a"})))
            .await
            .unwrap();
        assert_eq!(job["state"], "QUEUED");
        let other = client
            .call("dev.enqueue.v1", params(json!({"job_type": "noop", "queue": "free", "subject_key": "b"})))
            .await
            .unwrap();
        let done =
            client.call("dev.wait.v1", params(json!({"job_id": other["job_id"], "timeout_ms": 20_000}))).await.unwrap();
        assert_eq!(done["state"], "DONE", "other queues run");
        tokio::time::sleep(Duration::from_millis(300)).await;
        let still = client.call("dev.get.v1", params(json!({"job_id": job["job_id"]}))).await.unwrap();
        assert_eq!(still["state"], "QUEUED", "{still}");
        let stats = client.call("admin.stats.v1", params(json!({}))).await.unwrap();
        let held = queue_stats(&stats, "held");
        assert_eq!((held["paused"].as_bool(), held["queued"].as_u64()), (Some(true), Some(1)), "{held}");
        assert!(held["oldest_wait_ms"].as_u64().unwrap() >= 300, "{held}");
        assert_eq!(queue_stats(&stats, "free")["oldest_wait_ms"], 0);
        job["job_id"].clone()
    });
    daemon.crash();
    let daemon = Daemon::start(home.path());
    let client = daemon.client();
    rt.block_on(async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let still = client.call("dev.get.v1", params(json!({"job_id": id}))).await.unwrap();
        assert_eq!(still["state"], "QUEUED", "the pause survived kill -9: {still}");
        let resumed = client.call("admin.queue.resume.v1", params(json!({"queue": "held"}))).await.unwrap();
        assert_eq!(resumed, json!({"queue": "held", "paused": false}));
        let done = client.call("dev.wait.v1", params(json!({"job_id": id, "timeout_ms": 20_000}))).await.unwrap();
        assert_eq!(done["state"], "DONE", "{done}");
        let bad = client.call("admin.queue.pause.v1", params(json!({"queue": "Bad Queue"}))).await.unwrap_err();
        let (code, data) = rpc_code(bad);
        assert_eq!((code, data["field"].as_str()), (4000, Some("queue")));
        let missing = client.call("admin.queue.resume.v1", params(json!({}))).await.unwrap_err();
        assert_eq!(rpc_code(missing).0, 4000);
    });
}

/// A failed job retried by id runs again as the next generation with `retry_of`; the old
/// job is unchanged; unknown ids are 4001 and jobs that did not end badly 4002. By filter,
/// only jobs in a retryable end are taken, up to `limit`.
#[test]
fn retry_enqueues_ended_jobs_again_as_the_next_generation() {
    let home = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(home.path());
    let client = daemon.client();
    runtime().block_on(async {
        // Fails until the file it needs exists: a user fixes that, then retries.
        let flag = home.path().join("ready");
        let failing = json!({"job_type": "check", "queue": "r", "subject_key": "s", "payload": {"n": 1}, "tag": "t",
                             "exec": {"command": "test", "args": ["-f", flag.to_str().unwrap()]}});
        let first = client.call("dev.enqueue.v1", params(failing)).await.unwrap();
        let failed =
            client.call("dev.wait.v1", params(json!({"job_id": first["job_id"], "timeout_ms": 20_000}))).await.unwrap();
        assert_eq!(failed["state"], "FAILED", "{failed}");
        std::fs::write(&flag, "").unwrap();
        let retried = client.call("dev.retry.v1", params(json!({"job_id": first["job_id"]}))).await.unwrap();
        let result = &retried["results"][0];
        assert_eq!(
            (result["generation"].as_u64(), result["deduplicated"].as_bool()),
            (Some(2), Some(false)),
            "{retried}"
        );
        let again = client
            .call("dev.wait.v1", params(json!({"job_id": result["job_id"], "timeout_ms": 20_000})))
            .await
            .unwrap();
        assert_eq!(again["retry_of"], first["job_id"], "{again}");
        assert_eq!(
            (again["state"].as_str(), again["tag"].as_str(), again["queue"].as_str()),
            (Some("DONE"), Some("t"), Some("r"))
        );
        assert_eq!(again["payload"], json!({"n": 1}));
        assert_eq!(again["execution_mode"], "SUBPROCESS");
        let old = client.call("dev.get.v1", params(json!({"job_id": first["job_id"]}))).await.unwrap();
        assert_eq!(
            (old["state"].as_str(), old["retry_of"].is_null()),
            (Some("FAILED"), true),
            "the old job does not change"
        );

        let done = client.call("dev.retry.v1", params(json!({"job_id": result["job_id"]}))).await.unwrap_err();
        let (code, data) = rpc_code(done);
        assert_eq!((code, data["state"].as_str()), (4002, Some("DONE")));
        let unknown = client
            .call("dev.retry.v1", params(json!({"job_id": "67e55044-10b1-426f-9247-bb680e5fe0c8"})))
            .await
            .unwrap_err();
        assert_eq!(rpc_code(unknown).0, 4001);
        let (code, data) = rpc_code(client.call("dev.retry.v1", params(json!({}))).await.unwrap_err());
        assert_eq!((code, data["kind"].as_str(), data["field"].as_str()), (4000, Some("missing"), Some("job_id")));
        let both = json!({"job_id": result["job_id"], "filter": {"state": ["FAILED"]}});
        let (code, data) = rpc_code(client.call("dev.retry.v1", params(both)).await.unwrap_err());
        assert_eq!((code, data["kind"].as_str(), data["field"].as_str()), (4000, Some("conflicting"), Some("filter")));
        let (code, data) = rpc_code(client.call("admin.stats.v1", params(json!({"queue": "x"}))).await.unwrap_err());
        assert_eq!((code, data["field"].as_str()), (4000, Some("queue")), "stats takes no params");

        for n in 0..3 {
            let job = json!({"job_type": "fail", "queue": "many", "subject_key": format!("m{n}")});
            let job = client.call("dev.enqueue.v1", params(job)).await.unwrap();
            client.call("dev.wait.v1", params(json!({"job_id": job["job_id"], "timeout_ms": 20_000}))).await.unwrap();
        }
        let by_filter = json!({"filter": {"queue": ["many"], "state": ["FAILED", "DONE"]}, "limit": 2});
        let retried = client.call("dev.retry.v1", params(by_filter)).await.unwrap();
        assert_eq!(retried["results"].as_array().unwrap().len(), 2, "{retried}");
        let over = client.call("dev.retry.v1", params(json!({"filter": {}, "limit": 1001}))).await.unwrap_err();
        assert_eq!(rpc_code(over).1["field"], "limit");
    });
}

/// A recurring job is stored, listed, fires at its next minute slot with the slot's epoch
/// second as generation, and is deleted; a bad cron or zone is 4000 naming the field.
#[test]
fn a_recurring_job_fires_at_its_slot_and_can_be_listed_and_deleted() {
    let home = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(home.path());
    let client = daemon.client();
    runtime().block_on(async {
        let job = json!({"job_type": "noop", "queue": "cron", "subject_key": "nightly", "tag": "rec"});
        let set = json!({"name": "every-minute", "cron": "* * * * *", "timezone": "Europe/Berlin", "job": job});
        let answer = client.call("dev.recurring.set.v1", params(set)).await.unwrap();
        let next_at = answer["next_at"].as_u64().unwrap();
        assert_eq!((answer["name"].as_str(), next_at % 60_000), (Some("every-minute"), 0), "{answer}");
        let list = client.call("dev.recurring.list.v1", params(json!({}))).await.unwrap();
        let item = &list["items"][0];
        assert_eq!((item["cron"].as_str(), item["timezone"].as_str()), (Some("* * * * *"), Some("Europe/Berlin")));
        assert_eq!(item["job"], job);
        assert_eq!(item["last_enqueued_job_id"], Value::Null);

        let fired = wait_for_slot(&client, "every-minute").await;
        let view = client.call("dev.wait.v1", params(json!({"job_id": fired, "timeout_ms": 20_000}))).await.unwrap();
        assert_eq!(view["generation"].as_u64(), Some(next_at / 1000), "{view}");
        assert_eq!((view["state"].as_str(), view["subject_key"].as_str()), (Some("DONE"), Some("nightly")));

        for (bad, field) in [
            (json!({"name": "x", "cron": "* * * *", "job": job}), "cron"),
            (json!({"name": "x", "cron": "61 * * * *", "job": job}), "cron"),
            (json!({"name": "x", "cron": "* * * * *", "timezone": "Mars/Olympus", "job": job}), "timezone"),
            (json!({"name": "bad name", "cron": "* * * * *", "job": job}), "name"),
            (json!({"name": "x", "cron": "* * * * *", "job": {"job_type": "noop", "queue": "Q", "subject_key": "s"}}), "job.queue"),
            (json!({"name": "x", "cron": "* * * * *", "job": {"job_type": "noop", "queue": "q", "subject_key": "s", "generation": 3}}), "job.generation"),
        ] {
            let error = client.call("dev.recurring.set.v1", params(bad.clone())).await.unwrap_err();
            let (code, data) = rpc_code(error);
            assert_eq!((code, data["field"].as_str()), (4000, Some(field)), "{bad}");
        }
        let deleted = client.call("dev.recurring.delete.v1", params(json!({"name": "every-minute"}))).await.unwrap();
        assert_eq!(deleted, json!({"deleted": true}));
        let again = client.call("dev.recurring.delete.v1", params(json!({"name": "every-minute"}))).await.unwrap();
        assert_eq!(again, json!({"deleted": false}));
        let list = client.call("dev.recurring.list.v1", params(json!({}))).await.unwrap();
        assert_eq!(list["items"], json!([]));
    });
}

/// The CLI as a new user would try it: pause and resume, retry by filter (asking first
/// unless --yes), recurring set, list and rm.
#[test]
fn the_cli_pauses_retries_and_keeps_recurring_jobs() {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    let home = tempfile::tempdir().unwrap();
    let _daemon = Daemon::start(home.path());
    let cli = |args: &[&str], stdin: &str| {
        let mut child = Command::new(BIN)
            .args(args)
            .env("SEMANTICA_HOME", home.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.code(), text)
    };
    let (code, text) = cli(&["pause", "work"], "");
    assert_eq!((code, text.trim()), (Some(0), "paused work"));
    let (code, text) = cli(&["status"], "");
    assert_eq!(code, Some(0), "{text}");
    assert!(text.lines().any(|line| line.starts_with("work") && line.contains("yes")), "{text}");
    let (_, text) = cli(&["enqueue", "--queue", "work", "--subject", "f", "--", "false"], "");
    let id = text.split_whitespace().next().unwrap().to_owned();
    assert!(text.contains("QUEUED"), "{text}");
    let (code, _) = cli(&["resume", "work"], "");
    assert_eq!(code, Some(0));
    let (code, text) = cli(&["wait", &id], "");
    assert_eq!(code, Some(1), "the job fails: {text}");

    let (code, text) = cli(&["retry", "--state", "FAILED", "--queue", "work"], "n\n");
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("retry 1 job(s)?") && text.contains("nothing retried"), "{text}");
    let (code, text) = cli(&["retry", "--state", "FAILED", "--queue", "work", "--yes"], "");
    assert_eq!(code, Some(0), "{text}");
    assert!(text.starts_with("retried 1"), "{text}");
    let (code, text) = cli(&["retry"], "");
    assert_eq!(code, Some(2), "an id or --state is required: {text}");

    let (code, text) =
        cli(&["recurring", "set", "nightly", "--cron", "0 3 * * *", "--tz", "Europe/Berlin", "--", "true"], "");
    assert_eq!(code, Some(0), "{text}");
    assert!(text.starts_with("nightly: next slot ") && text.contains("T02:00:00Z"), "{text}");
    let (code, text) = cli(&["recurring", "list"], "");
    assert_eq!(code, Some(0), "{text}");
    assert!(text.lines().any(|line| line.starts_with("nightly") && line.contains("Europe/Berlin")), "{text}");
    let (code, text) = cli(&["recurring", "set", "bad", "--cron", "0 3 * *", "--", "true"], "");
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("4000") && text.contains("cron"), "{text}");
    let (code, text) = cli(&["recurring", "rm", "nightly"], "");
    assert_eq!((code, text.trim()), (Some(0), "deleted nightly"));
    let (code, _) = cli(&["recurring", "rm", "nightly"], "");
    assert_eq!(code, Some(1));
}
