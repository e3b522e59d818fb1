//! The blocking client against the real daemon, over the Unix socket and TCP.

mod common;

use std::time::Duration;

use common::Daemon;
use semantica_client::types::*;
use semantica_client::{blocking, Discovery, ErrorKind};

#[test]
fn the_blocking_client_enqueues_follows_waits_and_pages() {
    let home = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(home.path());
    let client =
        blocking::Client::with_discovery(Discovery { home: Some(daemon.home.clone()), ..Default::default() }).unwrap();

    let mut job = EnqueueParams::new("sh", "default", "blocking");
    job.exec =
        Some(Exec { command: "sh".into(), args: vec!["-c".into(), "echo one; echo two".into()], ..Default::default() });
    let job_id = client.enqueue(&job).unwrap().job_id;
    let log: String = client.follow(&job_id, 0).unwrap().collect::<Result<_, _>>().unwrap();
    assert_eq!(log, "one\ntwo\n");
    assert_eq!(client.wait(&job_id, Duration::from_secs(30)).unwrap().job().state, JobState::Done);

    let jobs = (0..5).map(|index| EnqueueParams::new("noop", "paged", format!("p-{index}"))).collect();
    assert_eq!(client.enqueue_batch(jobs).unwrap().len(), 5);
    let query = QueryJobsParams {
        filter: Some(JobFilter { queue: Some(vec!["paged".into()]), ..Default::default() }),
        limit: Some(2),
        ..Default::default()
    };
    assert_eq!(client.jobs(query).collect::<Result<Vec<_>, _>>().unwrap().len(), 5, "every page");

    let missing = client.get("67e55044-10b1-426f-9247-bb680e5fe0c8").unwrap_err();
    assert_eq!(missing.kind(), ErrorKind::NotFound);

    // TCP with the token, and without the right one.
    let tcp = blocking::Client::with_url(&daemon.rpc_addr, Some(&daemon.token)).unwrap();
    assert!(tcp.stats().unwrap().queues.iter().any(|queue| queue.name == "paged"));
    let wrong = blocking::Client::with_url(&daemon.rpc_addr, Some("wrong")).unwrap();
    assert_eq!(wrong.stats().unwrap_err().kind(), ErrorKind::Unauthorized);
}
