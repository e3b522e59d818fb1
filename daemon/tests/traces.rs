//! W3C trace context end to end (API.md "Trace context"): `traceparent` on enqueue names
//! the job's trace, a malformed one is refused, a subprocess job gets `TRACEPARENT`
//! naming its attempt's span in that trace, and with the OTLP variables set the daemon
//! exports `enqueue` and `run` spans to a collector (here a receiver in the test, on
//! loopback) without an unreachable one slowing jobs or holding up shutdown.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::Span;
use serde_json::{json, Value};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_SPAN_ID: &str = "00f067aa0ba902b7";

/// Runs `echo "$TRACEPARENT"` as a subprocess job with `extra` params and returns the
/// job's view and what it printed.
async fn echo_traceparent(client: &Client, subject: &str, extra: Value) -> (Value, String) {
    let mut job = json!({
        "job_type": "sh", "queue": "traced", "subject_key": subject,
        "exec": {"command": "sh", "args": ["-c", "echo \"$TRACEPARENT\""]}
    });
    job.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    let enqueued = client.call("dev.enqueue.v1", params(job)).await.unwrap();
    let id = enqueued["job_id"].clone();
    let done = client.call("dev.wait.v1", params(json!({"job_id": id, "timeout_ms": 30_000}))).await.unwrap();
    assert_eq!(done["state"], "DONE", "{done}");
    let log = client.call("logs.tail.v1", params(json!({"job_id": id, "offset": 0}))).await.unwrap();
    (done, log["chunk"].as_str().unwrap().trim().to_owned())
}

fn split(traceparent: &str) -> (String, String, String, String) {
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(parts.len(), 4, "{traceparent:?}");
    (parts[0].to_owned(), parts[1].to_owned(), parts[2].to_owned(), parts[3].to_owned())
}

#[test]
fn a_subprocess_job_sees_traceparent_in_the_trace_it_was_enqueued_with() {
    let home = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(home.path());
    let client = daemon.client();
    runtime().block_on(async {
        let traceparent = format!("00-{TRACE_ID}-{PARENT_SPAN_ID}-01");
        let (job, printed) = echo_traceparent(&client, "with", json!({"traceparent": traceparent})).await;
        assert_eq!(job["trace_id"], TRACE_ID, "{job}");
        let (version, trace_id, span_id, flags) = split(&printed);
        assert_eq!((version.as_str(), trace_id.as_str(), flags.as_str()), ("00", TRACE_ID, "01"), "{printed}");
        assert_eq!(span_id.len(), 16, "{printed}");
        assert!(span_id.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()), "{printed}");
        assert_ne!(span_id, PARENT_SPAN_ID, "the attempt has a span of its own: {printed}");

        // Without traceparent, TRACEPARENT names the job's own (generated) trace id.
        let (job, printed) = echo_traceparent(&client, "without", json!({})).await;
        let (_, trace_id, _, _) = split(&printed);
        assert_eq!(job["trace_id"].as_str(), Some(trace_id.as_str()), "{job} {printed}");
    });
}

#[test]
fn a_malformed_traceparent_is_refused_with_its_field() {
    let home = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(home.path());
    let client = daemon.client();
    runtime().block_on(async {
        let job = |traceparent: Value| json!({"job_type": "noop", "queue": "q", "subject_key": "s", "traceparent": traceparent});
        for bad in [
            json!("00-xyz-00f067aa0ba902b7-01"),
            json!(format!("00-{}-{PARENT_SPAN_ID}-01", "0".repeat(32))),
            json!(format!("00-{TRACE_ID}-{}-01", "0".repeat(16))),
            json!(format!("00-{}-{PARENT_SPAN_ID}-01", TRACE_ID.to_uppercase())),
            json!(12),
        ] {
            let error = client.call("dev.enqueue.v1", params(job(bad.clone()))).await.unwrap_err();
            let (code, data) = rpc_code(error);
            assert_eq!((code, data["field"].as_str()), (4000, Some("traceparent")), "{bad}: {data}");
        }
        let batch = json!({"jobs": [job(json!(format!("00-{TRACE_ID}-{PARENT_SPAN_ID}-01"))), job(json!("nope"))]});
        let (code, data) = rpc_code(client.call("dev.enqueue_batch.v1", params(batch)).await.unwrap_err());
        assert_eq!((code, data["index"].as_u64(), data["field"].as_str()), (4000, Some(1), Some("traceparent")), "{data}");
        // A trace_id that names another trace than traceparent's is refused too.
        let mut both = job(json!(format!("00-{TRACE_ID}-{PARENT_SPAN_ID}-01")));
        both["trace_id"] = json!("11111111111111111111111111111111");
        let (code, data) = rpc_code(client.call("dev.enqueue.v1", params(both)).await.unwrap_err());
        assert_eq!((code, data["field"].as_str()), (4000, Some("trace_id")), "{data}");
    });
}

// ---- OTLP/HTTP export ------------------------------------------------------------------

/// A span as the receiver got it, with its resource's `service.name`.
#[derive(Clone, Debug)]
struct Received {
    service_name: String,
    span: Span,
}

/// An OTLP/HTTP receiver on loopback: every `POST /v1/traces` body decoded and kept.
struct Receiver {
    addr: SocketAddr,
    spans: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let spans = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&spans);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let kept = Arc::clone(&kept);
                let service = hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                    let kept = Arc::clone(&kept);
                    async move { Ok::<_, std::convert::Infallible>(receive(request, &kept).await) }
                });
                tokio::spawn(async move {
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
                });
            }
        });
        Receiver { addr, spans }
    }

    fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn spans(&self) -> Vec<Received> {
        self.spans.lock().unwrap().clone()
    }

    /// The spans of trace `trace_id` once there are at least `count` (30 s at most).
    async fn wait_for(&self, trace_id: &str, count: usize) -> Vec<Received> {
        let started = Instant::now();
        loop {
            let found: Vec<Received> = self.spans().into_iter().filter(|r| hex(&r.span.trace_id) == trace_id).collect();
            if found.len() >= count {
                return found;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{} of {count} spans of {trace_id} after 30 s",
                found.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn receive(
    request: hyper::Request<hyper::body::Incoming>,
    kept: &Mutex<Vec<Received>>,
) -> hyper::Response<http_body_util::Full<bytes::Bytes>> {
    use http_body_util::BodyExt as _;
    use prost::Message as _;
    let path = request.uri().path().to_owned();
    let content_type = request.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let body = request.into_body().collect().await.unwrap().to_bytes();
    assert_eq!((path.as_str(), content_type.as_str()), ("/v1/traces", "application/x-protobuf"));
    let export = ExportTraceServiceRequest::decode(body).expect("an OTLP/protobuf trace export");
    let mut kept = kept.lock().unwrap();
    for resource_spans in export.resource_spans {
        let attributes = resource_spans.resource.map(|r| r.attributes).unwrap_or_default();
        let service_name = string_attribute(&attributes, "service.name").unwrap_or_default();
        for scope_spans in resource_spans.scope_spans {
            for span in scope_spans.spans {
                kept.push(Received { service_name: service_name.clone(), span });
            }
        }
    }
    hyper::Response::builder()
        .header("content-type", "application/x-protobuf")
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a any_value::Value> {
    attributes.iter().find(|kv| kv.key == key)?.value.as_ref()?.value.as_ref()
}

fn string_attribute(attributes: &[KeyValue], key: &str) -> Option<String> {
    match attribute(attributes, key)? {
        any_value::Value::StringValue(text) => Some(text.clone()),
        _ => None,
    }
}

fn int_attribute(attributes: &[KeyValue], key: &str) -> Option<i64> {
    match attribute(attributes, key)? {
        any_value::Value::IntValue(value) => Some(*value),
        _ => None,
    }
}

/// The daemon's environment for export to `endpoint`, batches sent every 100 ms.
fn export_env(endpoint: &str) -> Vec<(&'static str, String)> {
    vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.to_owned()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100".to_owned()),
        ("OTEL_SERVICE_NAME", String::new()),
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", String::new()),
        ("OTEL_SDK_DISABLED", String::new()),
    ]
}

fn start_exporting(home: &std::path::Path, env: &[(&'static str, String)]) -> Daemon {
    let env: Vec<(&str, &str)> = env.iter().map(|(key, value)| (*key, value.as_str())).collect();
    Daemon::start_with(home, &env)
}

/// Whether the daemon runs the batch span processor's thread (its name, cut to 15 bytes).
fn has_export_thread(pid: i32) -> bool {
    std::fs::read_dir(format!("/proc/{pid}/task")).unwrap().any(|task| {
        let comm = std::fs::read_to_string(task.unwrap().path().join("comm")).unwrap_or_default();
        comm.starts_with("OpenTelemetry")
    })
}

/// SIGTERM, and the time until the daemon exited (60 s at most).
fn stop_within(daemon: &mut Daemon) -> Duration {
    let started = Instant::now();
    daemon.signal(nix::sys::signal::Signal::SIGTERM);
    while daemon.exited().is_none() {
        assert!(started.elapsed() < Duration::from_secs(60), "the daemon did not stop within 60 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
    started.elapsed()
}

fn only<'a>(spans: &'a [Received], name: &str) -> &'a Received {
    let named: Vec<&Received> = spans.iter().filter(|r| r.span.name == name).collect();
    assert_eq!(named.len(), 1, "one {name:?} span in {spans:#?}");
    named[0]
}

#[test]
fn a_job_enqueued_with_traceparent_exports_its_enqueue_and_run_spans_in_that_trace() {
    let home = tempfile::tempdir().unwrap();
    let runtime = runtime();
    let receiver = runtime.block_on(Receiver::start());
    let mut daemon = start_exporting(home.path(), &export_env(&receiver.endpoint()));
    assert!(has_export_thread(daemon.pid()));
    let client = daemon.client();
    let (job, printed, untraced) = runtime.block_on(async {
        let traceparent = format!("00-{TRACE_ID}-{PARENT_SPAN_ID}-01");
        let (job, printed) = echo_traceparent(&client, "exported", json!({"traceparent": traceparent})).await;
        let (untraced, _) = echo_traceparent(&client, "untraced", json!({})).await;
        (job, printed, untraced)
    });
    let spans = runtime.block_on(receiver.wait_for(TRACE_ID, 2));
    let enqueue = only(&spans, "enqueue traced");
    let run = only(&spans, "run sh");
    let job_id = job["id"].as_str().unwrap();

    assert_eq!(enqueue.service_name, "semantica");
    assert_eq!(enqueue.span.kind, SpanKind::Producer as i32);
    assert_eq!(hex(&enqueue.span.parent_span_id), PARENT_SPAN_ID, "enqueue's parent is the caller's span");
    let attributes = &enqueue.span.attributes;
    assert_eq!(string_attribute(attributes, "messaging.system").as_deref(), Some("semantica"));
    assert_eq!(string_attribute(attributes, "messaging.destination.name").as_deref(), Some("traced"));
    assert_eq!(string_attribute(attributes, "messaging.message.id").as_deref(), Some(job_id));
    assert_eq!(int_attribute(attributes, "semantica.job.attempt"), Some(0));
    assert_eq!(string_attribute(attributes, "semantica.job.subject_key").as_deref(), Some("exported"));
    assert!(enqueue.span.end_time_unix_nano >= enqueue.span.start_time_unix_nano);

    assert_eq!(run.service_name, "semantica");
    assert_eq!(run.span.kind, SpanKind::Consumer as i32);
    assert_eq!(run.span.parent_span_id, enqueue.span.span_id, "run's parent is the job's enqueue span");
    let (_, printed_trace_id, printed_span_id, _) = split(&printed);
    assert_eq!(printed_trace_id, TRACE_ID);
    assert_eq!(hex(&run.span.span_id), printed_span_id, "TRACEPARENT names the exported run span");
    let attributes = &run.span.attributes;
    assert_eq!(string_attribute(attributes, "messaging.system").as_deref(), Some("semantica"));
    assert_eq!(string_attribute(attributes, "messaging.destination.name").as_deref(), Some("traced"));
    assert_eq!(string_attribute(attributes, "messaging.message.id").as_deref(), Some(job_id));
    assert_eq!(int_attribute(attributes, "semantica.job.attempt"), Some(1));
    assert_eq!(string_attribute(attributes, "semantica.job.subject_key").as_deref(), Some("exported"));
    assert_eq!(string_attribute(attributes, "semantica.job.state").as_deref(), Some("DONE"));
    assert!(run.span.start_time_unix_nano >= enqueue.span.start_time_unix_nano);

    // Without traceparent: the job's own trace, and an enqueue span with no parent.
    let untraced_trace_id = untraced["trace_id"].as_str().unwrap();
    let spans = runtime.block_on(receiver.wait_for(untraced_trace_id, 2));
    let enqueue = only(&spans, "enqueue traced");
    assert!(enqueue.span.parent_span_id.is_empty(), "a root span: {enqueue:?}");
    assert_eq!(only(&spans, "run sh").span.parent_span_id, enqueue.span.span_id);

    // Nothing else was exported for these jobs, nor twice, once shutdown has flushed.
    assert!(stop_within(&mut daemon) < Duration::from_secs(30));
    let all = receiver.spans();
    assert_eq!(all.iter().filter(|r| hex(&r.span.trace_id) == TRACE_ID).count(), 2, "{all:#?}");
    assert_eq!(all.iter().filter(|r| hex(&r.span.trace_id) == untraced_trace_id).count(), 2, "{all:#?}");
}

#[test]
fn a_batch_exports_one_span_per_accepted_job_and_none_for_a_deduplicated_or_refused_one() {
    let home = tempfile::tempdir().unwrap();
    let runtime = runtime();
    let receiver = runtime.block_on(Receiver::start());
    let mut daemon = start_exporting(home.path(), &export_env(&receiver.endpoint()));
    let client = daemon.client();
    let traceparent = format!("00-{TRACE_ID}-{PARENT_SPAN_ID}-01");
    runtime.block_on(async {
        // A job that waits, so that the same subject enqueued again is deduplicated.
        let job = |subject: &str| {
            json!({"job_type": "noop", "queue": "batched", "subject_key": subject, "generation": 1,
                   "traceparent": traceparent, "schedule": {"delay_ms": 3_600_000}})
        };
        let batch = json!({"jobs": [job("a"), job("b")]});
        client.call("dev.enqueue_batch.v1", params(batch)).await.unwrap();
        let again = client.call("dev.enqueue.v1", params(job("a"))).await.unwrap();
        assert_eq!(again["deduplicated"], true, "{again}");
        // Refused after its span was opened (no subject_key): not exported either.
        let refused = json!({"job_type": "noop", "queue": "batched", "traceparent": traceparent});
        client.call("dev.enqueue.v1", params(refused)).await.unwrap_err();
    });
    runtime.block_on(receiver.wait_for(TRACE_ID, 2));
    assert!(stop_within(&mut daemon) < Duration::from_secs(30));
    let spans: Vec<Received> = receiver.spans().into_iter().filter(|r| hex(&r.span.trace_id) == TRACE_ID).collect();
    let subjects: Vec<String> = spans
        .iter()
        .map(|r| {
            assert_eq!(r.span.name, "enqueue batched");
            assert_eq!(hex(&r.span.parent_span_id), PARENT_SPAN_ID);
            string_attribute(&r.span.attributes, "semantica.job.subject_key").unwrap()
        })
        .collect();
    assert_eq!(subjects.len(), 2, "{spans:#?}");
    assert!(subjects.contains(&"a".to_owned()) && subjects.contains(&"b".to_owned()), "{subjects:?}");
}

#[test]
fn every_attempt_exports_a_run_span_with_the_state_it_left_the_job_in() {
    let home = tempfile::tempdir().unwrap();
    let runtime = runtime();
    let receiver = runtime.block_on(Receiver::start());
    let mut env = export_env(&receiver.endpoint());
    // The log filter does not reach the export: the bench and many services run so.
    env.push(("RUST_LOG", "warn".to_owned()));
    let mut daemon = start_exporting(home.path(), &env);
    let client = daemon.client();
    let traceparent = format!("00-{TRACE_ID}-{PARENT_SPAN_ID}-01");
    runtime.block_on(async {
        let job = json!({"job_type": "fail", "queue": "flaky", "subject_key": "f", "traceparent": traceparent,
                         "max_attempts": 2, "backoff": {"base_ms": 10, "jitter": 0.0}});
        let id = client.call("dev.enqueue.v1", params(job)).await.unwrap()["job_id"].clone();
        let done = client.call("dev.wait.v1", params(json!({"job_id": id, "timeout_ms": 30_000}))).await.unwrap();
        assert_eq!(done["state"], "FAILED", "{done}");
        // A `noop` starts and ends in its claim step, with no executor: its run has a span too.
        let instant = json!({"job_type": "noop", "queue": "instant", "subject_key": "n", "traceparent": traceparent});
        let id = client.call("dev.enqueue.v1", params(instant)).await.unwrap()["job_id"].clone();
        let done = client.call("dev.wait.v1", params(json!({"job_id": id, "timeout_ms": 30_000}))).await.unwrap();
        assert_eq!(done["state"], "DONE", "{done}");
    });
    runtime.block_on(receiver.wait_for(TRACE_ID, 5));
    assert!(stop_within(&mut daemon) < Duration::from_secs(30));
    let spans: Vec<Received> = receiver.spans().into_iter().filter(|r| hex(&r.span.trace_id) == TRACE_ID).collect();
    let enqueue = only(&spans, "enqueue flaky");
    let mut runs: Vec<(i64, String, i32, Vec<u8>)> = spans
        .iter()
        .filter(|r| r.span.name == "run fail")
        .map(|r| {
            assert_eq!(r.span.parent_span_id, enqueue.span.span_id, "every attempt's parent is the enqueue span");
            let attributes = &r.span.attributes;
            let status = r.span.status.as_ref().map_or(0, |status| status.code);
            (
                int_attribute(attributes, "semantica.job.attempt").unwrap(),
                string_attribute(attributes, "semantica.job.state").unwrap(),
                status,
                r.span.span_id.clone(),
            )
        })
        .collect();
    runs.sort();
    assert_eq!(runs.len(), 2, "{spans:#?}");
    assert_eq!((runs[0].0, runs[1].0), (1, 2));
    assert_ne!(runs[0].1, "FAILED", "the first attempt left the job to be retried: {runs:?}");
    assert_eq!(runs[1].1, "FAILED");
    // Status code 2 is ERROR in OTLP.
    assert_eq!((runs[0].2, runs[1].2), (2, 2), "{runs:?}");
    assert_ne!(runs[0].3, runs[1].3, "each attempt has a span of its own");
    let noop = only(&spans, "run noop");
    assert_eq!(noop.span.parent_span_id, only(&spans, "enqueue instant").span.span_id);
    assert_eq!(string_attribute(&noop.span.attributes, "semantica.job.state").as_deref(), Some("DONE"));
    assert_eq!(int_attribute(&noop.span.attributes, "semantica.job.attempt"), Some(1));
}

#[test]
fn an_unreachable_collector_slows_no_job_drops_spans_countably_and_holds_up_no_shutdown() {
    // A loopback port nobody listens on: every export is refused.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let home = tempfile::tempdir().unwrap();
    let mut env = export_env(&endpoint);
    // A short queue, so that the test's few hundred spans overflow it.
    env.push(("OTEL_BSP_MAX_QUEUE_SIZE", "16".to_owned()));
    let mut daemon = start_exporting(home.path(), &env);
    assert!(has_export_thread(daemon.pid()));
    let client = daemon.client();
    const SINGLE_JOBS: usize = 100;
    const BATCH_JOBS: usize = 400;
    runtime().block_on(async {
        let started = Instant::now();
        let mut slowest = Duration::ZERO;
        let mut ids = Vec::new();
        for index in 0..SINGLE_JOBS {
            let call = Instant::now();
            let job = json!({"job_type": "noop", "queue": "unreachable", "subject_key": format!("s{index}")});
            let enqueued = client.call("dev.enqueue.v1", params(job)).await.unwrap();
            slowest = slowest.max(call.elapsed());
            ids.push(enqueued["job_id"].clone());
        }
        let jobs: Vec<Value> = (0..BATCH_JOBS)
            .map(|index| json!({"job_type": "noop", "queue": "unreachable", "subject_key": format!("b{index}")}))
            .collect();
        let enqueued = client.call("dev.enqueue_batch.v1", params(json!({"jobs": jobs}))).await.unwrap();
        ids.extend(enqueued["results"].as_array().unwrap().iter().map(|r| r["job_id"].clone()));
        for id in &ids {
            let done = client.call("dev.wait.v1", params(json!({"job_id": id, "timeout_ms": 60_000}))).await.unwrap();
            assert_eq!(done["state"], "DONE", "{done}");
        }
        // Generous bounds: an enqueue that waited on the exporter would take its 10 s
        // request timeout, and jobs behind a blocked exporter would not finish at all.
        assert!(slowest < Duration::from_secs(5), "slowest enqueue {slowest:?}");
        assert!(started.elapsed() < Duration::from_secs(120), "{} jobs took {:?}", ids.len(), started.elapsed());
    });
    let metrics = scrape_metrics(&daemon);
    let dropped: f64 = metrics
        .lines()
        .find_map(|line| line.strip_prefix("semantica_trace_spans_dropped_total "))
        .unwrap_or_else(|| panic!("no dropped-span counter in\n{metrics}"))
        .parse()
        .unwrap();
    assert!(dropped > 0.0, "{} spans through a queue of 16 to nowhere, none dropped", 2 * (SINGLE_JOBS + BATCH_JOBS));
    // Shutdown gives the last export 3 s, then goes.
    let stopped = stop_within(&mut daemon);
    assert!(stopped < Duration::from_secs(20), "shutdown took {stopped:?}");
}

#[test]
fn a_collector_that_never_answers_holds_up_neither_jobs_nor_shutdown() {
    // Bound but never accepting: the kernel completes connections, nobody answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", silent.local_addr().unwrap());
    let home = tempfile::tempdir().unwrap();
    let mut daemon = start_exporting(home.path(), &export_env(&endpoint));
    let client = daemon.client();
    runtime().block_on(async {
        for index in 0..20 {
            let call = Instant::now();
            let job = json!({"job_type": "noop", "queue": "silent", "subject_key": format!("s{index}")});
            let id = client.call("dev.enqueue.v1", params(job)).await.unwrap()["job_id"].clone();
            assert!(call.elapsed() < Duration::from_secs(5), "enqueue took {:?}", call.elapsed());
            let done = client.call("dev.wait.v1", params(json!({"job_id": id, "timeout_ms": 30_000}))).await.unwrap();
            assert_eq!(done["state"], "DONE", "{done}");
        }
        // Give the export thread time to be stuck in a request (it sends every 100 ms).
        tokio::time::sleep(Duration::from_millis(500)).await;
    });
    // The export request would wait 10 s for an answer; shutdown gives it 3.
    let stopped = stop_within(&mut daemon);
    assert!(stopped < Duration::from_secs(15), "shutdown took {stopped:?}");
    drop(silent);
}

#[test]
fn without_the_otlp_variables_nothing_is_exported_or_started() {
    let home = tempfile::tempdir().unwrap();
    let env = [("OTEL_EXPORTER_OTLP_ENDPOINT", ""), ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")];
    let daemon = Daemon::start_with(home.path(), &env);
    let client = daemon.client();
    runtime().block_on(async {
        let job = json!({"job_type": "noop", "queue": "q", "subject_key": "s"});
        let id = client.call("dev.enqueue.v1", params(job)).await.unwrap()["job_id"].clone();
        let done = client.call("dev.wait.v1", params(json!({"job_id": id, "timeout_ms": 30_000}))).await.unwrap();
        assert_eq!(done["state"], "DONE");
    });
    assert!(!has_export_thread(daemon.pid()), "no export thread without an endpoint");
    assert!(!scrape_metrics(&daemon).contains("semantica_trace_spans_dropped_total"));
}

fn scrape_metrics(daemon: &Daemon) -> String {
    let stream = std::net::TcpStream::connect(&daemon.rpc_addr).unwrap();
    let request = format!(
        "GET /metrics HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
        daemon.rpc_addr, daemon.token
    );
    let (status, body) = raw_http(stream, &request);
    assert_eq!(status, 200, "{body}");
    body
}
