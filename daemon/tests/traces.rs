//! W3C trace context end to end (API.md "Trace context"): `traceparent` on enqueue names
//! the job's trace, a malformed one is refused, and a subprocess job gets `TRACEPARENT`
//! naming its attempt's span in that trace.

mod common;

use common::*;
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
