//! End to end: the real `semantica` binary on a temp `SEMANTICA_HOME` and port 0, found
//! through `daemon.json`, spoken to over the wire like any client.

mod common;

use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Map, Value};

#[test]
fn serve_answers_health_and_runs_jobs_to_done() {
    let home = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(home.path());
    let (status, body) = raw_http(
        TcpStream::connect(&daemon.rpc_addr).unwrap(),
        "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 200);
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["status"], "ok");
    let client = daemon.client();
    runtime().block_on(async {
        let enqueued = client
            .call(
                "dev.enqueue.v1",
                params(json!({"job_type": "echo", "queue": "default", "subject_key": "a", "payload": {"n": 1}})),
            )
            .await
            .unwrap();
        assert_eq!(enqueued["generation"], 1);
        assert_eq!(enqueued["deduplicated"], false);
        let id = enqueued["job_id"].clone();
        let job = client.call("dev.wait.v1", params(json!({"job_id": id, "timeout_ms": 20_000}))).await.unwrap();
        assert_eq!(job["state"], "DONE", "{job}");
        assert_eq!(job["result_summary"], json!({"n": 1}));
        assert_eq!(job["execution_mode"], "IN_PROCESS");
        let log = client.call("logs.tail.v1", params(json!({"job_id": id, "offset": 0}))).await.unwrap();
        assert_eq!(log["chunk"], "{\"n\":1}\n");
        assert_eq!(log["eof"], true);
        let stats = client.call("admin.stats.v1", Map::new()).await.unwrap();
        assert_eq!(stats["queues"][0]["done"], 1);
    });
}

#[test]
fn tcp_needs_the_token_and_the_socket_does_not() {
    let home = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(home.path());
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"admin.stats.v1","params":{}}"#;
    let (status, answer) = raw_http(TcpStream::connect(&daemon.rpc_addr).unwrap(), &post(body, None));
    assert_eq!(status, 401);
    assert_eq!(serde_json::from_str::<Value>(&answer).unwrap()["error"]["code"], 4010);
    let (status, _) = raw_http(TcpStream::connect(&daemon.rpc_addr).unwrap(), &post(body, Some("wrong")));
    assert_eq!(status, 401);
    let (status, answer) = raw_http(TcpStream::connect(&daemon.rpc_addr).unwrap(), &post(body, Some(&daemon.token)));
    assert_eq!(status, 200, "{answer}");
    let socket = home.path().join("semantica.sock");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::metadata(home.path().join("token")).unwrap().permissions().mode() & 0o777, 0o600);
    let (status, answer) = raw_http(UnixStream::connect(&socket).unwrap(), &post(body, None));
    assert_eq!(status, 200, "{answer}");
    assert!(serde_json::from_str::<Value>(&answer).unwrap()["result"]["queues"].is_array());
    // Over 2 MiB: 413 with the contract's error, and nothing else happens.
    let big = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"admin.stats.v1","params":{{"x":"{}"}}}}"#,
        "x".repeat(2 * 1024 * 1024)
    );
    let (status, answer) = raw_http(TcpStream::connect(&daemon.rpc_addr).unwrap(), &post(&big, Some(&daemon.token)));
    assert_eq!(status, 413);
    let error = serde_json::from_str::<Value>(&answer).unwrap()["error"].clone();
    assert_eq!((error["code"].as_i64(), error["data"]["kind"].as_str()), (Some(4000), Some("request_too_large")));
}

#[test]
fn errors_carry_the_contract_codes() {
    let home = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(home.path());
    let client = daemon.client();
    runtime().block_on(async {
        let bad = client.call("dev.enqueue.v1", params(json!({"job_type": "noop", "queue": "Bad Queue", "subject_key": "s"}))).await.unwrap_err();
        let (code, data) = rpc_code(bad);
        assert_eq!((code, data["field"].as_str(), data["kind"].as_str()), (4000, Some("queue"), Some("invalid_characters")));
        let typed = client.call("dev.enqueue.v1", params(json!({"job_type": "noop", "queue": "q", "subject_key": "s", "priority": "high"}))).await.unwrap_err();
        assert_eq!(rpc_code(typed).1["field"], "priority");
        let batch = client
            .call("dev.enqueue_batch.v1", params(json!({"jobs": [{"job_type": "noop", "queue": "q", "subject_key": "a"}, {"job_type": "nope", "queue": "q", "subject_key": "b"}]})))
            .await
            .unwrap_err();
        let (code, data) = rpc_code(batch);
        assert_eq!((code, data["index"].as_u64(), data["kind"].as_str()), (4000, Some(1), Some("unknown_job_type")));
        let missing = client.call("dev.get.v1", params(json!({"job_id": "67e55044-10b1-426f-9247-bb680e5fe0c8"}))).await.unwrap_err();
        assert_eq!(rpc_code(missing).0, 4001);
        let done = client.call("dev.enqueue.v1", params(json!({"job_type": "noop", "queue": "q", "subject_key": "n"}))).await.unwrap();
        client.call("dev.wait.v1", params(json!({"job_id": done["job_id"], "timeout_ms": 20_000}))).await.unwrap();
        let conflict = client.call("dev.cancel.v1", params(json!({"job_id": done["job_id"]}))).await.unwrap_err();
        let (code, data) = rpc_code(conflict);
        assert_eq!((code, data["state"].as_str()), (4002, Some("DONE")));
        let unknown = client.call("dev.nothing.v1", Map::new()).await.unwrap_err();
        assert_eq!(rpc_code(unknown).0, -32601);
        let page = client.call("dev.query_jobs.v1", params(json!({"filter": {"state": ["DONE"]}, "limit": 1}))).await.unwrap();
        assert_eq!(page["items"].as_array().unwrap().len(), 1);
    });
}

#[test]
fn subprocess_jobs_report_results_and_cancel_kills_them() {
    let home = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(home.path());
    let client = daemon.client();
    runtime().block_on(async {
        let script = r#"echo to-log; printf '{"answer":42}' > "$SEMANTICA_RESULT_PATH"; printf abc > "$SEMANTICA_ARTIFACT_DIR/out.txt"; exit 0"#;
        let job = client.call("dev.enqueue.v1", params(json!({"job_type": "sh", "queue": "default", "subject_key": "p", "exec": {"command": "sh", "args": ["-c", script]}}))).await.unwrap();
        let done = client.call("dev.wait.v1", params(json!({"job_id": job["job_id"], "timeout_ms": 20_000}))).await.unwrap();
        assert_eq!(done["state"], "DONE", "{done}");
        assert_eq!(done["exit_code"], 0);
        assert_eq!(done["result_summary"], json!({"answer": 42}));
        assert_eq!(done["artifacts"], json!([{"name": "out.txt", "bytes": 3}]));
        assert_eq!(done["execution_mode"], "SUBPROCESS");
        let log = client.call("logs.tail.v1", params(json!({"job_id": job["job_id"], "offset": 0}))).await.unwrap();
        assert!(log["chunk"].as_str().unwrap().contains("to-log"));

        let failing = client.call("dev.enqueue.v1", params(json!({"job_type": "sh", "queue": "default", "subject_key": "f", "exec": {"command": "sh", "args": ["-c", "exit 7"]}}))).await.unwrap();
        let failed = client.call("dev.wait.v1", params(json!({"job_id": failing["job_id"], "timeout_ms": 20_000}))).await.unwrap();
        assert_eq!((failed["state"].as_str(), failed["exit_code"].as_i64(), failed["error"]["kind"].as_str()), (Some("FAILED"), Some(7), Some("exit_code")));

        let long = client.call("dev.enqueue.v1", params(json!({"job_type": "sh", "queue": "default", "subject_key": "l", "exec": {"command": "sleep", "args": ["30"]}}))).await.unwrap();
        let running = wait_until(&client, &long["job_id"], "a pid", |job| job["state"] == "RUNNING" && job["pid"].is_u64()).await;
        let pid = running["pid"].as_u64().unwrap() as i32;
        assert!(alive(pid));
        let cancelled = client.call("dev.cancel.v1", params(json!({"job_id": long["job_id"]}))).await.unwrap();
        assert_eq!(cancelled["cancelled_count"], 1);
        let job = client.call("dev.get.v1", params(json!({"job_id": long["job_id"]}))).await.unwrap();
        assert_eq!(job["state"], "CANCELLED", "cancel lands at once");
        let started = Instant::now();
        while alive(pid) {
            assert!(started.elapsed() < Duration::from_secs(10), "process {pid} survived its cancel");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
}

#[test]
fn a_second_daemon_on_the_same_home_exits_with_code_2() {
    let home = tempfile::tempdir().unwrap();
    let _daemon = Daemon::start(home.path());
    let output = Command::new(BIN)
        .arg("serve")
        .env("SEMANTICA_HOME", home.path())
        .env("SEMANTICA_RPC_ADDR", "127.0.0.1:0")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("already running"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn after_kill_9_a_running_job_is_a_failed_attempt_and_its_process_is_killed() {
    let home = tempfile::tempdir().unwrap();
    let mut daemon = Daemon::start(home.path());
    let client = daemon.client();
    let rt = runtime();
    let (id, pid, queued) = rt.block_on(async {
        let long = client
            .call("dev.enqueue.v1", params(json!({"job_type": "sh", "queue": "default", "subject_key": "r", "max_attempts": 2, "backoff": {"base_ms": 60_000, "jitter": 0.0}, "exec": {"command": "sleep", "args": ["60"]}})))
            .await
            .unwrap();
        let waiting = client.call("dev.enqueue.v1", params(json!({"job_type": "noop", "queue": "default", "subject_key": "w", "schedule": {"delay_ms": 3_600_000}}))).await.unwrap();
        let running = wait_until(&client, &long["job_id"], "a pid", |job| job["state"] == "RUNNING" && job["pid"].is_u64()).await;
        (long["job_id"].clone(), running["pid"].as_u64().unwrap() as i32, waiting["job_id"].clone())
    });
    assert!(alive(pid));
    daemon.crash();
    // The job's process outlives the daemon (own process group) until the new daemon.
    let daemon = Daemon::start(home.path());
    let client = daemon.client();
    rt.block_on(async {
        let job = client.call("dev.get.v1", params(json!({"job_id": id}))).await.unwrap();
        assert_eq!(job["state"], "SCHEDULED", "{job}");
        assert_eq!(job["error"]["kind"], "daemon_restart");
        assert_eq!(job["attempts"], 1);
        let kept = client.call("dev.get.v1", params(json!({"job_id": queued}))).await.unwrap();
        assert_eq!(kept["state"], "SCHEDULED");
    });
    let started = Instant::now();
    while alive(pid) {
        assert!(started.elapsed() < Duration::from_secs(10), "the leftover process {pid} was not killed");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigterm_stops_cleanly_and_removes_daemon_json() {
    let home = tempfile::tempdir().unwrap();
    let mut daemon = Daemon::start(home.path());
    let status = daemon.stop();
    assert!(status.success(), "{status}");
    assert!(!home.path().join("daemon.json").exists());
    assert!(!home.path().join("semantica.sock").exists());
}

#[test]
fn the_cli_enqueues_waits_and_says_when_no_daemon_runs() {
    let home = tempfile::tempdir().unwrap();
    let cli = |args: &[&str]| {
        Command::new(BIN).args(args).env("SEMANTICA_HOME", home.path()).env_remove("SEMANTICA_TOKEN").output().unwrap()
    };
    let none = cli(&["status"]);
    assert!(!none.status.success());
    assert!(String::from_utf8_lossy(&none.stderr).contains("no semantica daemon is running"));
    let daemon = Daemon::start(home.path());
    let ran = cli(&["enqueue", "--subject", "c", "--wait", "--", "sh", "-c", "echo hi"]);
    assert!(ran.status.success(), "{}", String::from_utf8_lossy(&ran.stderr));
    assert!(String::from_utf8_lossy(&ran.stdout).contains("DONE"));
    let failed = cli(&[
        "enqueue",
        "--subject",
        "d",
        "--max-attempts",
        "2",
        "--backoff",
        r#"{"base_ms": 10}"#,
        "--wait",
        "--",
        "sh",
        "-c",
        "exit 1",
    ]);
    assert_eq!(failed.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&failed.stdout).contains("attempts 2/2"),
        "{}",
        String::from_utf8_lossy(&failed.stdout)
    );
    let listed = cli(&["jobs", "--json"]);
    let page: Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    let bad = cli(&["get", "not-an-id"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("4000"));
    drop(daemon);
}

#[test]
fn a_connection_over_its_rate_limit_gets_4003_with_retry_after_ms() {
    use std::io::{BufRead, BufReader, Read, Write};
    let home = tempfile::tempdir().unwrap();
    std::fs::write(home.path().join("config.toml"), "rate_limit_per_second = 5\n").unwrap();
    let daemon = Daemon::start(home.path());
    let stream = TcpStream::connect(&daemon.rpc_addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"admin.stats.v1","params":{}}"#;
    let request = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        daemon.token,
        body.len()
    );
    // One keep-alive connection: read each response (status line, headers, body) in turn.
    let mut call = || -> (u16, Value) {
        writer.write_all(request.as_bytes()).unwrap();
        let mut status = String::new();
        reader.read_line(&mut status).unwrap();
        let mut length = 0usize;
        loop {
            let mut header = String::new();
            reader.read_line(&mut header).unwrap();
            if header == "\r\n" {
                break;
            }
            if let Some(value) = header.to_ascii_lowercase().strip_prefix("content-length:") {
                length = value.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        (status.split_whitespace().nth(1).unwrap().parse().unwrap(), serde_json::from_slice(&body).unwrap())
    };
    let answers: Vec<(u16, Value)> = (0..30).map(|_| call()).collect();
    let refused: Vec<&(u16, Value)> = answers.iter().filter(|(status, _)| *status == 429).collect();
    assert!(answers.iter().filter(|(status, _)| *status == 200).count() >= 10, "the burst (2 × 5) is allowed");
    assert!(!refused.is_empty(), "30 calls at once exceed 5 a second");
    let error = &refused[0].1["error"];
    assert_eq!((error["code"].as_i64(), error["data"]["kind"].as_str()), (Some(4003), Some("throttled")));
    let retry_after_ms = error["data"]["retry_after_ms"].as_u64().unwrap();
    assert!((1..=1000).contains(&retry_after_ms), "{retry_after_ms}");
    // The same connection, after waiting as told, is served again.
    std::thread::sleep(Duration::from_millis(retry_after_ms + 50));
    assert_eq!(call().0, 200);
}

/// API.md "Bounded answers": a page of large jobs stops at 8 MiB of JSON with at least one
/// item, and the cursor goes on after the last item given, so paging sees every job once
/// (no -32008 "Response is too big", whatever the jobs' total size).
#[test]
fn a_page_of_large_jobs_stops_at_8_mib_and_the_cursor_goes_on() {
    const PAGE_BYTES_MAX: usize = 8 * 1024 * 1024;
    let home = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(home.path());
    let client = daemon.client();
    runtime().block_on(async {
        let big = "x".repeat(1000 * 1024);
        let mut enqueued = std::collections::BTreeSet::new();
        for n in 0..20 {
            let job = json!({"job_type": "echo", "queue": "big", "subject_key": format!("s{n}"),
                             "payload": {"text": big}, "schedule": {"delay_ms": 86_400_000}});
            let answer = client.call("dev.enqueue.v1", params(job)).await.unwrap();
            enqueued.insert(answer["job_id"].as_str().unwrap().to_owned());
        }
        let (mut seen, mut pages, mut cursor) = (Vec::new(), 0, Value::Null);
        loop {
            let mut query = json!({"filter": {"queue": ["big"]}, "limit": 200});
            if !cursor.is_null() {
                query["cursor"] = cursor.clone();
            }
            let page = client.call("dev.query_jobs.v1", params(query)).await.unwrap();
            let items = page["items"].as_array().unwrap();
            assert!(!items.is_empty(), "a page holds at least one item");
            let bytes: usize = items.iter().map(|item| serde_json::to_vec(item).unwrap().len()).sum();
            assert!(bytes <= PAGE_BYTES_MAX, "page {pages} holds {bytes} bytes of items");
            seen.extend(items.iter().map(|item| item["id"].as_str().unwrap().to_owned()));
            pages += 1;
            cursor = page["next_cursor"].clone();
            if cursor.is_null() {
                break;
            }
        }
        assert!(pages >= 3, "20 jobs of 1 MiB cannot fit in {pages} pages of 8 MiB");
        assert_eq!(seen.len(), enqueued.len(), "every job once");
        assert_eq!(seen.into_iter().collect::<std::collections::BTreeSet<_>>(), enqueued);
    });
}

/// A cancel by tag that matches more jobs than one engine step ends (1,000) is done in
/// rounds inside one call: the answer counts every match, and every match is CANCELLED.
#[test]
fn one_cancel_by_tag_ends_every_match_even_past_one_round() {
    let home = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(home.path());
    let client = daemon.client();
    runtime().block_on(async {
        let total = 2_500;
        for start in (0..total).step_by(1000) {
            let jobs: Vec<Value> = (start..(start + 1000).min(total))
                .map(|n| {
                    json!({"job_type": "noop", "queue": "bulk", "subject_key": format!("s{n}"), "tag": "bulk",
                                "schedule": {"delay_ms": 86_400_000}})
                })
                .collect();
            client.call("dev.enqueue_batch.v1", params(json!({"jobs": jobs}))).await.unwrap();
        }
        let kept = json!({"job_type": "noop", "queue": "bulk", "subject_key": "other", "tag": "other",
                          "schedule": {"delay_ms": 86_400_000}});
        client.call("dev.enqueue.v1", params(kept)).await.unwrap();
        let answer = client.call("dev.cancel.v1", params(json!({"tag": "bulk"}))).await.unwrap();
        assert_eq!(answer["cancelled_count"], total);
        let stats = client.call("admin.stats.v1", params(json!({}))).await.unwrap();
        let bulk = stats["queues"].as_array().unwrap().iter().find(|q| q["name"] == "bulk").unwrap().clone();
        assert_eq!((bulk["cancelled"].as_u64(), bulk["scheduled"].as_u64()), (Some(total), Some(1)), "{bulk}");
        let again = client.call("dev.cancel.v1", params(json!({"tag": "bulk"}))).await.unwrap();
        assert_eq!(again["cancelled_count"], 0);
    });
}
