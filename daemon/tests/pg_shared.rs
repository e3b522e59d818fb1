//! Two real `semantica serve` daemons on one Postgres schema (each its own
//! `SEMANTICA_HOME`, port 0): a job's log is read through either daemon, whichever ran
//! it (`logs.tail.v1`, `logs.follow.v1` over the wire), and a job enqueued on a busy
//! daemon is started by the idle other one, woken by the commit's notification. Needs
//! `SEMANTICA_TEST_PG_URL` (`source .ci/postgres.sh`).

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

/// A daemon on the schema, its log (debug for the wake-ups) in `home/daemon.log`.
fn start(schema: &Schema, home: &Path, workers: &str) -> Daemon {
    let url = schema.daemon_url();
    let log = std::fs::File::create(home.join("daemon.log")).unwrap();
    Daemon::start_logging_to(
        home,
        &[
            ("SEMANTICA_STORE_URL", url.as_str()),
            ("SEMANTICA_WORKERS", workers),
            ("RUST_LOG", "info,semantica_daemon::service::nodes=debug"),
        ],
        Stdio::from(log),
    )
}

/// Two daemons on one new schema, each with a home of its own (`config`, if any, as both
/// homes' `config.toml`). Fields drop in order: the daemons, their homes, the schema.
struct Two {
    a: Daemon,
    b: Daemon,
    home_a: tempfile::TempDir,
    home_b: tempfile::TempDir,
    schema: Schema,
}

fn two_daemons(label: &str, config: Option<&str>) -> Two {
    let schema = Schema::new(label);
    let (home_a, home_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    for home in [&home_a, &home_b] {
        if let Some(config) = config {
            std::fs::write(home.path().join("config.toml"), config).unwrap();
        }
    }
    let a = start(&schema, home_a.path(), "2");
    let b = start(&schema, home_b.path(), "2");
    Two { a, b, home_a, home_b, schema }
}

fn ran_here(home: &Path, id: &Value) -> bool {
    home.join("logs").join(format!("{}.log", id.as_str().unwrap())).exists()
}

/// Every chunk of a `logs.follow.v1` subscription until its `eof` item, concatenated.
async fn follow_to_the_end(daemon: &Daemon, id: &Value) -> String {
    use jsonrpsee::core::client::SubscriptionClientT;
    use jsonrpsee_ws_client::{HeaderMap, HeaderValue, WsClientBuilder};
    let mut headers = HeaderMap::new();
    headers.insert("authorization", HeaderValue::from_str(&format!("Bearer {}", daemon.token)).unwrap());
    let ws = WsClientBuilder::default().set_headers(headers).build(format!("ws://{}", daemon.rpc_addr)).await.unwrap();
    let mut follow_params = jsonrpsee::core::params::ObjectParams::new();
    follow_params.insert("job_id", id.clone()).unwrap();
    follow_params.insert("offset", 0).unwrap();
    let mut follow = ws.subscribe::<Value, _>("logs.follow.v1", follow_params, "logs.unfollow.v1").await.unwrap();
    let mut text = String::new();
    let mut offset = 0;
    loop {
        let item = tokio::time::timeout(Duration::from_secs(30), follow.next()).await.expect("a chunk or the end");
        let item = item.expect("the stream ends with eof, not silently").unwrap();
        text.push_str(item["chunk"].as_str().unwrap());
        offset = item["next_offset"].as_u64().unwrap().max(offset);
        if item["eof"] == true {
            assert_eq!(offset as usize, text.len(), "next_offset of the eof item is the log's end");
            return text;
        }
    }
}

/// The whole log through `logs.tail.v1` in chunks of `limit` bytes, and the offsets.
async fn tail_all(client: &Client, id: &Value, limit: u64) -> (String, Vec<u64>) {
    let mut text = String::new();
    let mut offsets = Vec::new();
    let mut offset = 0;
    for _ in 0..10_000 {
        let chunk =
            client.call("logs.tail.v1", params(json!({"job_id": id, "offset": offset, "limit": limit}))).await.unwrap();
        text.push_str(chunk["chunk"].as_str().unwrap());
        offset = chunk["next_offset"].as_u64().unwrap();
        offsets.push(offset);
        if chunk["eof"] == true {
            return (text, offsets);
        }
    }
    panic!("the log never reached eof");
}

#[test]
fn a_jobs_log_is_tailed_and_followed_through_either_daemon() {
    let two = two_daemons("shared_logs", None);
    let (daemon_a, daemon_b, home_a, home_b) = (&two.a, &two.b, two.home_a.path(), two.home_b.path());
    let (client_a, client_b) = (daemon_a.client(), daemon_b.client());
    // Several characters of 2 to 4 bytes, printed over ~1 s, so that the followers see the
    // log grow and chunks end anywhere.
    let script = "for i in 1 2 3 4 5 6; do printf 'line %s: é€😀\\n' $i; sleep 0.2; done; echo fin >&2";
    let expected: String = (1..=6).map(|i| format!("line {i}: é€😀\n")).collect::<String>() + "fin\n";
    runtime().block_on(async {
        let enqueued = client_a
            .call(
                "dev.enqueue.v1",
                params(json!({"job_type": "sh", "queue": "default", "subject_key": "log",
                              "exec": {"command": "sh", "args": ["-c", script]}})),
            )
            .await
            .unwrap();
        let id = enqueued["job_id"].clone();
        wait_until(&client_b, &id, "the job to start", |job| job["state"] != "QUEUED").await;
        // Both daemons follow it from the start, while it runs.
        let (followed_a, followed_b) = tokio::join!(follow_to_the_end(daemon_a, &id), follow_to_the_end(daemon_b, &id));
        assert_eq!(followed_a, expected);
        assert_eq!(followed_b, expected);
        let job = wait_until(&client_a, &id, "the job to end", |job| job["state"] == "DONE").await;
        assert_eq!(job["state"], "DONE");
        // It ran on one daemon only; the other has no file of it and answers all the same.
        let (ran_a, ran_b) = (ran_here(home_a, &id), ran_here(home_b, &id));
        assert!(ran_a != ran_b, "the log file is in exactly one home (a: {ran_a}, b: {ran_b})");
        for limit in [3, 7, 65_536] {
            let (from_a, offsets_a) = tail_all(&client_a, &id, limit).await;
            let (from_b, offsets_b) = tail_all(&client_b, &id, limit).await;
            assert_eq!(from_a, expected, "limit {limit}");
            assert_eq!((from_b, offsets_b), (from_a, offsets_a), "limit {limit}: both daemons give the same chunks");
        }
        // Past the end: empty, eof.
        let past =
            client_b.call("logs.tail.v1", params(json!({"job_id": id, "offset": expected.len()}))).await.unwrap();
        assert_eq!((past["chunk"].as_str(), past["eof"].as_bool()), (Some(""), Some(true)), "{past}");
    });
}

/// A job printing far more than `log_max_bytes` has its log in the database stop there,
/// with the note, as its file does: read through the daemon that did not run it.
#[test]
fn a_log_in_the_database_stops_at_log_max_bytes() {
    let two = two_daemons("shared_cap", Some("log_max_bytes = 65536\n"));
    let (home_a, home_b) = (two.home_a.path(), two.home_b.path());
    let (client_a, client_b) = (two.a.client(), two.b.client());
    runtime().block_on(async {
        // About 1 MiB of output.
        let script = "i=0; while [ $i -lt 16384 ]; do echo 0123456789012345678901234567890123456789012345678901234567890; i=$((i+1)); done";
        let enqueued = client_a
            .call(
                "dev.enqueue.v1",
                params(json!({"job_type": "sh", "queue": "default", "subject_key": "cap",
                              "exec": {"command": "sh", "args": ["-c", script]}})),
            )
            .await
            .unwrap();
        let id = enqueued["job_id"].clone();
        wait_until(&client_a, &id, "the job to end", |job| job["state"] == "DONE").await;
        let (ran_a, ran_b) = (ran_here(home_a, &id), ran_here(home_b, &id));
        let other = if ran_a { &client_b } else { &client_a };
        assert!(ran_a != ran_b);
        let (text, _) = tail_all(other, &id, 1024 * 1024).await;
        let file = if ran_a { home_a } else { home_b }.join("logs").join(format!("{}.log", id.as_str().unwrap()));
        let local = std::fs::read_to_string(file).unwrap();
        assert_eq!(text, local, "the database holds what the file holds");
        assert!(text.len() < 65536 + 1024, "{} bytes", text.len());
        assert!(text.contains("log_max_bytes"), "the note is there: {}", &text[text.len().saturating_sub(200)..]);
    });
}

/// `dev.wait.v1` on either daemon returns once the job ends, whichever daemon ran it (a
/// daemon hears only of the ends of its own jobs; on a shared store it reads again every
/// 250 ms). Before that, a wait on the daemon that did not run the job lasted its timeout.
#[test]
fn a_wait_on_either_daemon_returns_when_the_job_ends() {
    let two = two_daemons("shared_wait", None);
    let (client_a, client_b) = (two.a.client(), two.b.client());
    runtime().block_on(async {
        for n in 0..4 {
            let job = json!({"job_type": "echo", "queue": "default", "subject_key": format!("wait{n}"), "payload": n});
            let enqueued = client_a.call("dev.enqueue.v1", params(job)).await.unwrap();
            let wait = json!({"job_id": enqueued["job_id"], "timeout_ms": 15_000});
            let started = Instant::now();
            let (on_a, on_b) = tokio::join!(
                client_a.call("dev.wait.v1", params(wait.clone())),
                client_b.call("dev.wait.v1", params(wait)),
            );
            let elapsed = started.elapsed();
            let (on_a, on_b) = (on_a.unwrap(), on_b.unwrap());
            assert_eq!(on_a["state"], "DONE", "{on_a}");
            assert_eq!(on_b["state"], "DONE", "{on_b}");
            assert!(elapsed < Duration::from_secs(8), "the waits took {elapsed:?}");
        }
    });
}

/// Each enqueue on daemon A wakes daemon B at once (its own polling is a second apart),
/// and a daemon is not woken by its own commits: A is woken at most once per job that
/// B ended (an end frees a subject, which wakes the others), never by its own enqueues.
/// (That an idle B starts what a busy A enqueued is `multi_daemon.rs`'s.)
#[test]
fn every_enqueue_on_one_daemon_wakes_the_other_and_not_itself() {
    let two = two_daemons("shared_wake", None);
    let (home_a, home_b) = (two.home_a.path(), two.home_b.path());
    let client_a = two.a.client();
    let woken = |home: &Path| {
        let log = std::fs::read_to_string(home.join("daemon.log")).unwrap();
        (log.matches("woken by another daemon's commit").count(), log)
    };
    let ran_on_b = runtime().block_on(async {
        let (mut waits_ms, mut started_on_b_ms) = (Vec::new(), Vec::new());
        let mut ran_on_b = 0;
        for n in 0..5 {
            let sent = Instant::now();
            let enqueued = client_a
                .call(
                    "dev.enqueue.v1",
                    params(
                        json!({"job_type": "echo", "queue": "default", "subject_key": format!("w{n}"), "payload": n}),
                    ),
                )
                .await
                .unwrap();
            let job = wait_until(&client_a, &enqueued["job_id"], "the job to end", |job| job["state"] == "DONE").await;
            waits_ms.push(sent.elapsed().as_millis());
            if ran_here(home_b, &enqueued["job_id"]) {
                ran_on_b += 1;
                let waited = job["started_at"].as_u64().unwrap().saturating_sub(job["created_at"].as_u64().unwrap());
                started_on_b_ms.push(waited);
            }
            // Apart, so that each enqueue is a wake-up of its own.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // A measurement, not a check: which daemon starts a job is the database's choice.
        println!("enqueue on A → DONE: {waits_ms:?} ms; created → started, of those B ran: {started_on_b_ms:?} ms");
        ran_on_b
    });
    let started = Instant::now();
    while woken(home_b).0 < 5 && started.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let (b_woken, b_log) = woken(home_b);
    assert!(b_woken >= 5, "B was woken {b_woken} times by A's 5 enqueues:\n{b_log}");
    // A leaves out its own notifications; of B's commits only the end of a job B ran (it
    // frees the job's subject) wakes the others.
    let (a_woken, a_log) = woken(home_a);
    assert!(a_woken <= ran_on_b, "A was woken {a_woken} times, B ran {ran_on_b} jobs:\n{a_log}");
}

/// A daemon whose listening connection the server ends connects again (saying so in its
/// log) and is woken by the next enqueue on the other daemon.
#[test]
fn a_daemon_whose_listening_connection_ends_listens_again() {
    let two = two_daemons("shared_relisten", None);
    let client_a = two.a.client();
    let log_b = || std::fs::read_to_string(two.home_b.path().join("daemon.log")).unwrap();
    let mut admin = postgres::Client::connect(&two.schema.url, postgres::NoTls).unwrap();
    let ended: i64 = admin
        .query_one(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity
             WHERE query LIKE 'LISTEN %' AND strpos(query, $1) > 0",
            &[&two.schema.name],
        )
        .unwrap()
        .get(0);
    assert_eq!(ended, 2, "both daemons' listening connections were found and ended");
    let started = Instant::now();
    while !log_b().contains("lost the connection that listens for wake-ups") {
        assert!(started.elapsed() < Duration::from_secs(10), "B never noticed:\n{}", log_b());
        std::thread::sleep(Duration::from_millis(50));
    }
    // Listening again within its back-off (100 ms first); then an enqueue on A wakes it.
    let started = Instant::now();
    loop {
        runtime().block_on(async {
            let enqueued = client_a
                .call("dev.enqueue.v1", params(json!({"job_type": "noop", "queue": "default", "subject_key": "again"})))
                .await
                .unwrap();
            wait_until(&client_a, &enqueued["job_id"], "the job to end", |job| job["state"] == "DONE").await;
        });
        std::thread::sleep(Duration::from_millis(100));
        if log_b().contains("woken by another daemon's commit") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "B was not woken again:\n{}", log_b());
    }
}
