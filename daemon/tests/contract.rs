//! The guarantees of API.md that can be seen from outside, one test each, over the wire
//! against the real binary.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

async fn enqueue(client: &Client, job: Value) -> Value {
    client.call("dev.enqueue.v1", params(job)).await.unwrap()
}

async fn wait(client: &Client, id: &Value) -> Value {
    let job = client.call("dev.wait.v1", params(json!({"job_id": id, "timeout_ms": 30_000}))).await.unwrap();
    assert!(job.get("timed_out").is_none(), "job {id} did not end in 30 s: {job}");
    job
}

async fn get(client: &Client, id: &Value) -> Value {
    client.call("dev.get.v1", params(json!({"job_id": id}))).await.unwrap()
}

fn sleep_job(subject: &str, ms: u64) -> Value {
    json!({"job_type": "sleep", "queue": "default", "subject_key": subject, "payload": {"ms": ms}})
}

#[test]
fn higher_priority_starts_first_then_enqueue_order() {
    let home = tempfile::tempdir().unwrap();
    let daemon = Daemon::start_with(home.path(), &[("SEMANTICA_WORKERS", "1")]);
    let client = daemon.client();
    runtime().block_on(async {
        let blocker = enqueue(&client, sleep_job("blocker", 300)).await;
        wait_until(&client, &blocker["job_id"], "the blocker to run", |job| job["state"] == "RUNNING").await;
        let mut ids = Vec::new();
        for (subject, priority) in [("low-1", 0), ("high", 5), ("low-2", 0), ("mid", 2)] {
            let mut job = sleep_job(subject, 1);
            job["priority"] = json!(priority);
            ids.push((subject, enqueue(&client, job).await["job_id"].clone()));
        }
        let mut started = Vec::new();
        for (subject, id) in &ids {
            let job = wait(&client, id).await;
            started.push((job["started_at"].as_u64().unwrap(), job["finished_at"].as_u64().unwrap(), *subject));
        }
        started.sort();
        let order: Vec<&str> = started.iter().map(|(_, _, subject)| *subject).collect();
        assert_eq!(order, ["high", "mid", "low-1", "low-2"]);
        for pair in started.windows(2) {
            assert!(pair[0].1 <= pair[1].0, "one worker: each starts after the previous ended: {started:?}");
        }
    });
}

#[test]
fn newer_generations_supersede_and_duplicates_are_deduplicated() {
    let home = tempfile::tempdir().unwrap();
    let daemon = Daemon::start_with(home.path(), &[("SEMANTICA_WORKERS", "1")]);
    let client = daemon.client();
    runtime().block_on(async {
        let blocker = enqueue(&client, sleep_job("blocker", 400)).await;
        wait_until(&client, &blocker["job_id"], "the blocker to run", |job| job["state"] == "RUNNING").await;
        let first = enqueue(&client, json!({"job_type": "noop", "queue": "default", "subject_key": "file.rs"})).await;
        let second = enqueue(&client, json!({"job_type": "noop", "queue": "default", "subject_key": "file.rs"})).await;
        assert_eq!((first["generation"].as_u64(), second["generation"].as_u64()), (Some(1), Some(2)));
        assert_eq!(get(&client, &first["job_id"]).await["state"], "SUPERSEDED");
        let again = enqueue(
            &client,
            json!({"job_type": "noop", "queue": "default", "subject_key": "file.rs", "generation": 2}),
        )
        .await;
        assert_eq!((again["job_id"].clone(), again["deduplicated"].clone()), (second["job_id"].clone(), json!(true)));
        let stale = enqueue(
            &client,
            json!({"job_type": "noop", "queue": "default", "subject_key": "file.rs", "generation": 1}),
        )
        .await;
        assert_eq!((stale["state"].as_str(), stale["deduplicated"].as_bool()), (Some("SUPERSEDED"), Some(false)));
        assert_eq!(wait(&client, &second["job_id"]).await["state"], "DONE");
    });
}

#[test]
fn a_newer_generation_waits_for_the_running_one() {
    let home = tempfile::tempdir().unwrap();
    let daemon = Daemon::start_with(home.path(), &[("SEMANTICA_WORKERS", "4")]);
    let client = daemon.client();
    runtime().block_on(async {
        let old = enqueue(&client, sleep_job("same", 300)).await;
        wait_until(&client, &old["job_id"], "gen 1 to run", |job| job["state"] == "RUNNING").await;
        let new = enqueue(&client, sleep_job("same", 1)).await;
        assert_eq!(get(&client, &old["job_id"]).await["state"], "RUNNING", "a running generation is left to finish");
        let old = wait(&client, &old["job_id"]).await;
        let new = wait(&client, &new["job_id"]).await;
        assert_eq!((old["state"].as_str(), new["state"].as_str()), (Some("DONE"), Some("DONE")));
        assert!(
            new["started_at"].as_u64() >= old["finished_at"].as_u64(),
            "two runs of one subject overlapped: {old} {new}"
        );
    });
}

#[test]
fn failed_attempts_retry_and_timeouts_fail() {
    let home = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(home.path());
    let client = daemon.client();
    runtime().block_on(async {
        let flaky = enqueue(
            &client,
            json!({"job_type": "fail", "queue": "default", "subject_key": "flaky", "payload": {"times": 2}, "max_attempts": 3, "backoff": {"base_ms": 20, "jitter": 0.0}}),
        )
        .await;
        let job = wait(&client, &flaky["job_id"]).await;
        assert_eq!((job["state"].as_str(), job["attempts"].as_u64()), (Some("DONE"), Some(3)), "{job}");

        let hopeless = enqueue(&client, json!({"job_type": "fail", "queue": "default", "subject_key": "hopeless", "max_attempts": 2, "backoff": {"base_ms": 10}})).await;
        let job = wait(&client, &hopeless["job_id"]).await;
        assert_eq!((job["state"].as_str(), job["attempts"].as_u64(), job["error"]["kind"].as_str()), (Some("FAILED"), Some(2), Some("handler_error")));

        let mut slow = sleep_job("slow", 10_000);
        slow["timeout_ms"] = json!(200);
        let slow = enqueue(&client, slow).await;
        let job = wait(&client, &slow["job_id"]).await;
        assert_eq!((job["state"].as_str(), job["error"]["kind"].as_str()), (Some("FAILED"), Some("timeout")), "{job}");
    });
}

#[test]
fn schedules_events_and_parents_hold_jobs_back() {
    let home = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(home.path());
    let client = daemon.client();
    runtime().block_on(async {
        let later = enqueue(&client, json!({"job_type": "noop", "queue": "default", "subject_key": "later", "schedule": {"delay_ms": 400}})).await;
        assert_eq!(later["state"], "SCHEDULED");
        let job = wait(&client, &later["job_id"]).await;
        assert!(job["started_at"].as_u64().unwrap() >= job["created_at"].as_u64().unwrap() + 400, "{job}");

        let waiting = enqueue(&client, json!({"job_type": "noop", "queue": "default", "subject_key": "ev", "conditions": {"wait_for_event": "saved"}})).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(get(&client, &waiting["job_id"]).await["state"], "SCHEDULED");
        let released = client.call("dev.event.v1", params(json!({"name": "saved"}))).await.unwrap();
        assert_eq!(released["released_count"], 1);
        assert_eq!(wait(&client, &waiting["job_id"]).await["state"], "DONE");

        let parent = enqueue(&client, sleep_job("parent", 200)).await;
        let child = enqueue(&client, json!({"job_type": "noop", "queue": "default", "subject_key": "child", "parent_job_id": parent["job_id"]})).await;
        assert_eq!(child["state"], "SCHEDULED");
        let parent = wait(&client, &parent["job_id"]).await;
        let child = wait(&client, &child["job_id"]).await;
        assert_eq!(child["state"], "DONE");
        assert!(child["started_at"].as_u64() >= parent["finished_at"].as_u64());

        let doomed = enqueue(&client, json!({"job_type": "fail", "queue": "default", "subject_key": "doomed"})).await;
        let orphan = enqueue(&client, json!({"job_type": "noop", "queue": "default", "subject_key": "orphan", "parent_job_id": doomed["job_id"]})).await;
        let orphan = wait(&client, &orphan["job_id"]).await;
        assert_eq!((orphan["state"].as_str(), orphan["error"]["kind"].as_str()), (Some("CANCELLED"), Some("parent_failed")));
    });
}

#[test]
fn cancel_by_tag_query_paging_and_maintenance() {
    let home = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(home.path());
    let client = daemon.client();
    runtime().block_on(async {
        let mut jobs = Vec::new();
        for n in 0..7 {
            jobs.push(json!({"job_type": "noop", "queue": "bulk", "subject_key": format!("s{n}"), "tag": "batch-1", "schedule": {"delay_ms": 3_600_000}}));
        }
        let results = client.call("dev.enqueue_batch.v1", params(json!({"jobs": jobs}))).await.unwrap();
        assert_eq!(results["results"].as_array().unwrap().len(), 7);
        // Paging while jobs are added never repeats or skips.
        let mut seen = Vec::new();
        let mut cursor = Value::Null;
        loop {
            let page = client.call("dev.query_jobs.v1", params(json!({"filter": {"queue": ["bulk"]}, "limit": 3, "cursor": cursor}))).await.unwrap();
            for item in page["items"].as_array().unwrap() {
                seen.push(item["id"].as_str().unwrap().to_owned());
            }
            if seen.len() == 3 {
                enqueue(&client, json!({"job_type": "noop", "queue": "bulk", "subject_key": "late", "tag": "batch-1", "schedule": {"delay_ms": 3_600_000}})).await;
            }
            cursor = page["next_cursor"].clone();
            if cursor.is_null() {
                break;
            }
        }
        let mut unique = seen.clone();
        unique.sort();
        unique.dedup();
        assert_eq!((seen.len(), unique.len()), (8, 8), "{seen:?}");
        let first = results["results"][0]["job_id"].clone();
        let waited = client.call("dev.wait.v1", params(json!({"job_id": first, "timeout_ms": 100}))).await.unwrap();
        assert_eq!((waited["timed_out"].as_bool(), waited["job"]["state"].as_str()), (Some(true), Some("SCHEDULED")));
        let too_long = client.call("dev.wait.v1", params(json!({"job_id": first, "timeout_ms": 300_001}))).await.unwrap_err();
        assert_eq!(rpc_code(too_long).0, 4000);
        let cancelled = client.call("dev.cancel.v1", params(json!({"tag": "batch-1"}))).await.unwrap();
        assert_eq!(cancelled["cancelled_count"], 8);
        let page = client.call("dev.query_jobs.v1", params(json!({"filter": {"state": ["CANCELLED"]}, "sort": "DESC", "limit": 200}))).await.unwrap();
        assert_eq!(page["items"].as_array().unwrap().len(), 8);
        assert_eq!(page["items"][0]["subject_key"], "late");
        let report = client.call("admin.maintenance.v1", params(json!({"force_vacuum": true}))).await.unwrap();
        assert_eq!((report["deleted_jobs"].as_u64(), report["vacuumed"].as_bool()), (Some(0), Some(true)), "retention keeps fresh jobs");
        assert!(report["db_size_after"].as_u64().unwrap() > 0);
    });
}

#[test]
fn acknowledged_jobs_survive_kill_9() {
    let home = tempfile::tempdir().unwrap();
    let mut daemon = Daemon::start(home.path());
    let client = daemon.client();
    let rt = runtime();
    let acknowledged: Vec<Value> = rt.block_on(async {
        let mut ids = Vec::new();
        for n in 0..50 {
            let job = enqueue(&client, json!({"job_type": "noop", "queue": "default", "subject_key": format!("k{n}"), "schedule": {"delay_ms": 3_600_000}})).await;
            ids.push(job["job_id"].clone());
        }
        ids
    });
    daemon.crash();
    let daemon = Daemon::start(home.path());
    let client = daemon.client();
    rt.block_on(async {
        for id in &acknowledged {
            assert_eq!(get(&client, id).await["state"], "SCHEDULED");
        }
    });
}

#[test]
fn logs_follow_streams_until_the_job_ends() {
    use jsonrpsee::core::client::SubscriptionClientT;
    use jsonrpsee_ws_client::{HeaderMap, HeaderValue, WsClientBuilder};
    let home = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(home.path());
    let client = daemon.client();
    runtime().block_on(async {
        let script = "for i in 1 2 3; do echo line-$i; sleep 0.1; done";
        let job = enqueue(&client, json!({"job_type": "sh", "queue": "default", "subject_key": "f", "exec": {"command": "sh", "args": ["-c", script]}})).await;
        let mut headers = HeaderMap::new();
        headers.insert("authorization", HeaderValue::from_str(&format!("Bearer {}", daemon.token)).unwrap());
        let mut follow_params = jsonrpsee::core::params::ObjectParams::new();
        follow_params.insert("job_id", job["job_id"].clone()).unwrap();
        follow_params.insert("offset", 0).unwrap();
        let ws = WsClientBuilder::default().set_headers(headers).build(format!("ws://{}", daemon.rpc_addr)).await.unwrap();
        let mut follow = ws
            .subscribe::<Value, _>("logs.follow.v1", follow_params, "logs.unfollow.v1")
            .await
            .unwrap();
        let mut text = String::new();
        let started = Instant::now();
        loop {
            let chunk = tokio::time::timeout(Duration::from_secs(20), follow.next()).await.expect("a chunk or the end");
            let chunk = chunk.expect("the stream ends with eof, not silently").unwrap();
            text.push_str(chunk["chunk"].as_str().unwrap());
            if chunk["eof"] == true {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(20));
        }
        assert_eq!(text, "line-1\nline-2\nline-3\n");
    });
}
