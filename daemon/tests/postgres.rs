//! End to end on the Postgres store: the real `semantica serve` with
//! `SEMANTICA_STORE_URL` naming a fresh schema of the test cluster runs jobs to their
//! ends, keeps them in Postgres (not in a SQLite file), and finds them again after a
//! restart. Needs `SEMANTICA_TEST_PG_URL` (`source .ci/postgres.sh`).

mod common;

use std::time::Duration;

use common::*;
use semantica_core::{JobQuery, JobState, Store};
use serde_json::{json, Value};

#[test]
fn serve_on_postgres_runs_jobs_and_keeps_them_across_a_restart() {
    let schema = Schema::new("daemon");
    drop(schema.open());
    let url = schema.daemon_url();
    let home = tempfile::tempdir().unwrap();
    let mut daemon = Daemon::start_with(home.path(), &[("SEMANTICA_STORE_URL", url.as_str())]);
    let client = daemon.client();
    let ids: Vec<Value> = runtime().block_on(async {
        let mut ids = Vec::new();
        for n in 0..12 {
            let enqueued = client
                .call(
                    "dev.enqueue.v1",
                    params(json!({"job_type": "echo", "queue": "default", "subject_key": format!("s{}", n % 4), "payload": {"n": n}})),
                )
                .await
                .unwrap();
            ids.push(enqueued["job_id"].clone());
        }
        // A newer generation of a subject whose older one may still wait supersedes it;
        // a deduplicated enqueue answers with the live job.
        let first = client
            .call(
                "dev.enqueue.v1",
                params(json!({"job_type": "sleep", "queue": "default", "subject_key": "hot", "generation": 5,
                                                     "payload": {"ms": 300}})),
            )
            .await
            .unwrap();
        let again = client
            .call(
                "dev.enqueue.v1",
                params(json!({"job_type": "sleep", "queue": "default", "subject_key": "hot", "generation": 5,
                                                     "payload": {"ms": 300}})),
            )
            .await
            .unwrap();
        assert_eq!(again["deduplicated"], true, "{again}");
        assert_eq!(again["job_id"], first["job_id"]);
        ids.push(first["job_id"].clone());
        for id in &ids {
            let job = client.call("dev.wait.v1", params(json!({"job_id": id, "timeout_ms": 20_000}))).await.unwrap();
            assert_eq!(job["state"], "DONE", "{job}");
        }
        let stats = client.call("admin.stats.v1", serde_json::Map::new()).await.unwrap();
        assert_eq!(stats["queues"][0]["done"], 13, "{stats}");
        // VACUUM is SQLite's: on Postgres maintenance purges and leaves vacuuming to the server.
        let maintained =
            client.call("admin.maintenance.v1", params(json!({"force_vacuum": true}))).await.unwrap();
        assert_eq!(maintained["vacuumed"], false, "{maintained}");
        ids
    });
    // The jobs are in Postgres, and no SQLite file was made.
    let store = schema.open();
    let page = store.query(&JobQuery { limit: 200, ..JobQuery::default() }).unwrap();
    assert_eq!(page.items.len(), 13);
    assert!(page.items.iter().all(|job| job.state == JobState::Done));
    assert!(!home.path().join("jobs.db").exists(), "a SQLite file was created beside a Postgres store");
    assert!(daemon.stop().success());

    // A restart finds every job, and runs new ones.
    let daemon = Daemon::start_with(home.path(), &[("SEMANTICA_STORE_URL", url.as_str())]);
    let client = daemon.client();
    runtime().block_on(async {
        for id in &ids {
            let job = client.call("dev.get.v1", params(json!({"job_id": id}))).await.unwrap();
            assert_eq!(job["state"], "DONE", "{job}");
        }
        echo_runs_to_done(&client, "after").await;
    });
    assert_eq!(schema.open().max_seq().unwrap(), 14);
    std::thread::sleep(Duration::from_millis(10));
}

#[test]
fn serve_refuses_a_store_url_that_is_not_postgres() {
    let home = tempfile::tempdir().unwrap();
    let mut child = spawn_logging_to(
        home.path(),
        &[("SEMANTICA_STORE_URL", "mysql://localhost/jobs")],
        std::process::Stdio::piped(),
    );
    let status = child.wait().unwrap();
    assert!(!status.success());
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(stderr.contains("postgres://"), "{stderr}");
}

#[test]
fn serve_refuses_a_lease_too_short_to_renew() {
    let home = tempfile::tempdir().unwrap();
    let mut child = spawn_logging_to(home.path(), &[("SEMANTICA_NODE_LEASE_MS", "10")], std::process::Stdio::piped());
    let status = child.wait().unwrap();
    assert!(!status.success());
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(stderr.contains("node_lease_ms = 10: want 300 to 600000 milliseconds"), "{stderr}");
}

/// Two daemons under one node id would each take the other's running jobs for their own
/// crashed ones: a second daemon with the id of a live one refuses to start, and the
/// first goes on.
#[test]
fn a_second_daemon_with_the_same_node_id_refuses_to_start() {
    let schema = Schema::new("daemon");
    drop(schema.open());
    let url = schema.daemon_url();
    let env = [("SEMANTICA_STORE_URL", url.as_str()), ("SEMANTICA_NODE_ID", "twin")];
    let first_home = tempfile::tempdir().unwrap();
    let mut first = Daemon::start_with(first_home.path(), &env);
    let second_home = tempfile::tempdir().unwrap();
    let mut second = spawn_logging_to(second_home.path(), &env, std::process::Stdio::piped());
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = second.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = second.kill();
            let _ = second.wait();
            panic!("a second daemon started under the node id of a live one");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!status.success());
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut second.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(stderr.contains("another semantica daemon with node id \"twin\""), "{stderr}");
    let client = first.client();
    runtime().block_on(echo_runs_to_done(&client, "s"));
    let job = runtime().block_on(client.call("dev.query_jobs.v1", params(json!({"limit": 1})))).unwrap();
    assert_eq!(job["items"][0]["node"], "twin", "{job}");
    assert!(first.stop().success());
}

/// Enqueues an `echo` job on `subject` and waits for it to end `DONE`.
async fn echo_runs_to_done(client: &Client, subject: &str) {
    let enqueued = client
        .call(
            "dev.enqueue.v1",
            params(json!({"job_type": "echo", "queue": "default", "subject_key": subject, "payload": 1})),
        )
        .await
        .unwrap();
    let job =
        client.call("dev.wait.v1", params(json!({"job_id": enqueued["job_id"], "timeout_ms": 20_000}))).await.unwrap();
    assert_eq!(job["state"], "DONE", "{job}");
}
