//! `GET /metrics` end to end (API.md "Metrics"): the real binary on a temp home and port
//! 0, a known workload, and the scrape read back through a real Prometheus parser (the
//! Python `prometheus_client` parser; `.ci/run` installs Debian's
//! `python3-prometheus-client`). A missing parser fails the test: it is never skipped.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

/// Reads exposition text with `prometheus_client.parser.text_string_to_metric_families`
/// and prints every family's type and samples as JSON.
const PARSER: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
families = {}
for family in text_string_to_metric_families(sys.stdin.read()):
    families[family.name] = {
        "type": family.type,
        "samples": [{"name": s.name, "labels": s.labels, "value": s.value} for s in family.samples],
    }
print(json.dumps(families))
"#;

/// Families by name (as the parser names them: counters without `_total`), each with its
/// type and samples.
fn parse(text: &str) -> Value {
    // Debian's interpreter, where `python3-prometheus-client` installs (not a pyenv or venv
    // python that may be first on PATH).
    let mut child = Command::new("/usr/bin/python3")
        .args(["-c", PARSER])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 is needed to parse /metrics (install python3 and python3-prometheus-client)");
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "the Prometheus parser refused the scrape or is missing (apt-get install python3-prometheus-client): {}\n{text}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The value of the sample `name` whose labels are exactly `labels` (0 when absent, as
/// Prometheus reads a series that does not exist yet).
fn value(families: &Value, family: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let wanted: BTreeMap<String, String> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let samples = families[family]["samples"].as_array().unwrap_or_else(|| panic!("no family {family}: {families}"));
    samples
        .iter()
        .find(|sample| {
            sample["name"] == name
                && serde_json::from_value::<BTreeMap<String, String>>(sample["labels"].clone()).unwrap() == wanted
        })
        .map_or(0.0, |sample| sample["value"].as_f64().unwrap())
}

fn get_metrics(stream: impl std::io::Read + Write, token: Option<&str>) -> (u16, String) {
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    raw_http(stream, &format!("GET /metrics HTTP/1.1\r\nHost: localhost\r\n{auth}Connection: close\r\n\r\n"))
}

/// After N enqueued, k failed, m cancelled while waiting, one cancelled while running,
/// one timed out and one queue paused, every counter and gauge of the scrape is exactly
/// what that workload makes, and the text parses as Prometheus text.
#[test]
fn a_known_workload_scrapes_exactly_and_parses_as_prometheus_text() {
    let home = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(home.path());
    let client = daemon.client();
    let rt = runtime();
    rt.block_on(async {
        let enqueue = |job: Value| {
            let client = &client;
            async move { client.call("dev.enqueue.v1", params(job)).await.unwrap()["job_id"].clone() }
        };
        let wait = |id: Value| {
            let client = &client;
            async move {
                let job = client.call("dev.wait.v1", params(json!({"job_id": id, "timeout_ms": 30_000}))).await.unwrap();
                assert!(job.get("timed_out").is_none(), "{job}");
                job
            }
        };
        client.call("admin.queue.pause.v1", params(json!({"queue": "held"}))).await.unwrap();
        // N = 5 that succeed, k = 2 that fail.
        let mut ids = Vec::new();
        for n in 0..5 {
            ids.push(enqueue(json!({"job_type": "noop", "queue": "work", "subject_key": format!("ok-{n}")})).await);
        }
        for n in 0..2 {
            ids.push(enqueue(json!({"job_type": "fail", "queue": "work", "subject_key": format!("bad-{n}")})).await);
        }
        // One that times out.
        ids.push(
            enqueue(json!({"job_type": "sleep", "queue": "work", "subject_key": "slow", "payload": {"ms": 60_000}, "timeout_ms": 200}))
                .await,
        );
        for id in ids {
            wait(id).await;
        }
        // One cancelled while it runs.
        let running =
            enqueue(json!({"job_type": "sleep", "queue": "work", "subject_key": "long", "payload": {"ms": 60_000}})).await;
        wait_until(&client, &running, "RUNNING", |job| job["state"] == "RUNNING").await;
        client.call("dev.cancel.v1", params(json!({"job_id": running}))).await.unwrap();
        // m = 3 cancelled while they wait in the paused queue, one left waiting there.
        for n in 0..3 {
            let id = enqueue(json!({"job_type": "noop", "queue": "held", "subject_key": format!("h-{n}")})).await;
            client.call("dev.cancel.v1", params(json!({"job_id": id}))).await.unwrap();
        }
        enqueue(json!({"job_type": "noop", "queue": "held", "subject_key": "left"})).await;
        // One refused enqueue (4000).
        let refused = client.call("dev.enqueue.v1", params(json!({"job_type": "noop", "queue": "BAD"}))).await;
        assert_eq!(rpc_code(refused.unwrap_err()).0, 4000);
        // Let the cancelled process be reaped.
        tokio::time::sleep(Duration::from_millis(300)).await;
    });

    let (status, text) = get_metrics(TcpStream::connect(&daemon.rpc_addr).unwrap(), Some(&daemon.token));
    assert_eq!(status, 200, "{text}");
    let families = parse(&text);
    for (family, kind) in [
        ("semantica_jobs_enqueued", "counter"),
        ("semantica_jobs_finished", "counter"),
        ("semantica_job_attempts", "counter"),
        ("semantica_jobs", "gauge"),
        ("semantica_queue_paused", "gauge"),
        ("semantica_queue_oldest_wait_seconds", "gauge"),
        ("semantica_job_wait_seconds", "histogram"),
        ("semantica_job_run_seconds", "histogram"),
        ("semantica_workers", "gauge"),
        ("semantica_workers_busy", "gauge"),
        ("semantica_rpc_requests", "counter"),
        ("semantica_rpc_request_seconds", "histogram"),
        ("semantica_store_commit_seconds", "histogram"),
        ("semantica_db_size_bytes", "gauge"),
        ("semantica_build_info", "gauge"),
    ] {
        assert_eq!(families[family]["type"], kind, "{family} in\n{text}");
    }
    let v = |family: &str, name: &str, labels: &[(&str, &str)]| value(&families, family, name, labels);
    let enqueued = |queue| v("semantica_jobs_enqueued", "semantica_jobs_enqueued_total", &[("queue", queue)]);
    assert_eq!((enqueued("work"), enqueued("held")), (9.0, 4.0), "{text}");
    let finished = |queue, state| {
        v("semantica_jobs_finished", "semantica_jobs_finished_total", &[("queue", queue), ("state", state)])
    };
    assert_eq!(finished("work", "DONE"), 5.0, "{text}");
    assert_eq!(finished("work", "FAILED"), 3.0, "{text}");
    assert_eq!(finished("work", "CANCELLED"), 1.0, "{text}");
    assert_eq!(finished("held", "CANCELLED"), 3.0, "{text}");
    assert_eq!(finished("held", "DONE"), 0.0, "{text}");
    let attempts = |outcome| {
        v("semantica_job_attempts", "semantica_job_attempts_total", &[("queue", "work"), ("outcome", outcome)])
    };
    assert_eq!(
        (attempts("succeeded"), attempts("failed"), attempts("timed_out"), attempts("cancelled")),
        (5.0, 2.0, 1.0, 1.0),
        "{text}"
    );
    let jobs = |queue, state| v("semantica_jobs", "semantica_jobs", &[("queue", queue), ("state", state)]);
    assert_eq!((jobs("held", "QUEUED"), jobs("held", "RUNNING"), jobs("work", "QUEUED")), (1.0, 0.0, 0.0), "{text}");
    let paused = |queue| v("semantica_queue_paused", "semantica_queue_paused", &[("queue", queue)]);
    assert_eq!((paused("held"), paused("work")), (1.0, 0.0), "{text}");
    assert!(
        v("semantica_queue_oldest_wait_seconds", "semantica_queue_oldest_wait_seconds", &[("queue", "held")]) > 0.0
    );
    let count = |family: &str, labels: &[(&str, &str)]| v(family, &format!("{family}_count"), labels);
    assert_eq!(count("semantica_job_wait_seconds", &[("queue", "work")]), 9.0, "every start: {text}");
    assert_eq!(count("semantica_job_run_seconds", &[("queue", "work")]), 9.0, "every attempt: {text}");
    assert_eq!(count("semantica_job_wait_seconds", &[("queue", "held")]), 0.0, "{text}");
    let run_over =
        |le| v("semantica_job_run_seconds", "semantica_job_run_seconds_bucket", &[("queue", "work"), ("le", le)]);
    assert_eq!(run_over("+Inf"), 9.0, "{text}");
    assert!(run_over("0.1") <= 8.0, "the timed-out attempt ran 200 ms: {text}");
    assert_eq!(v("semantica_workers", "semantica_workers", &[]), 2.0);
    assert_eq!(v("semantica_workers_busy", "semantica_workers_busy", &[]), 0.0);
    let requests = |method, code| {
        v("semantica_rpc_requests", "semantica_rpc_requests_total", &[("method", method), ("code", code)])
    };
    assert_eq!((requests("dev.enqueue.v1", "0"), requests("dev.enqueue.v1", "4000")), (13.0, 1.0), "{text}");
    assert_eq!(requests("dev.cancel.v1", "0"), 4.0, "{text}");
    assert_eq!(count("semantica_rpc_request_seconds", &[("method", "dev.enqueue.v1")]), 14.0, "{text}");
    assert!(count("semantica_store_commit_seconds", &[]) > 0.0, "{text}");
    assert!(v("semantica_db_size_bytes", "semantica_db_size_bytes", &[]) > 0.0);
    assert_eq!(v("semantica_build_info", "semantica_build_info", &[("version", env!("CARGO_PKG_VERSION"))]), 1.0);
    assert!(!text.contains("subject") && !text.contains("job_id"), "no high-cardinality label: {text}");
}

/// The Unix socket serves `/metrics` without a token; TCP refuses it without one (401),
/// and answers it with one, as the Prometheus text format's content type.
#[test]
fn metrics_need_the_token_on_tcp_and_nothing_on_the_socket() {
    let home = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(home.path());
    let (status, body) = get_metrics(TcpStream::connect(&daemon.rpc_addr).unwrap(), None);
    assert_eq!(status, 401, "{body}");
    let (status, body) = get_metrics(TcpStream::connect(&daemon.rpc_addr).unwrap(), Some("wrong"));
    assert_eq!(status, 401, "{body}");
    let (status, body) = get_metrics(UnixStream::connect(home.path().join("semantica.sock")).unwrap(), None);
    assert_eq!(status, 200, "{body}");
    let families = parse(&body);
    assert_eq!(value(&families, "semantica_workers", "semantica_workers", &[]), 2.0, "{body}");

    let mut stream = TcpStream::connect(&daemon.rpc_addr).unwrap();
    let request = format!(
        "GET /metrics HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
        daemon.token
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    std::io::Read::read_to_string(&mut stream, &mut response).unwrap();
    let head = response.split("\r\n\r\n").next().unwrap().to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("content-type: text/plain; version=0.0.4"), "{head}");
}
