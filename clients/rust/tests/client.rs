//! The client against the real daemon: discovery, every method, typed errors, streams.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::Daemon;
use futures_util::StreamExt;
use semantica_client::types::*;
use semantica_client::{Client, Config, Discovery, Error, ErrorKind, METHODS};
use serde_json::json;

fn socket_client(daemon: &Daemon) -> Client {
    Client::with_discovery(Discovery { home: Some(daemon.home.clone()), ..Default::default() }).unwrap()
}

fn shell(subject: &str, script: &str) -> EnqueueParams {
    let mut job = EnqueueParams::new("sh", "default", subject);
    job.exec = Some(Exec { command: "sh".into(), args: vec!["-c".into(), script.into()], ..Default::default() });
    job
}

async fn ended(client: &Client, job_id: &str) -> JobView {
    match client.wait(job_id, Duration::from_secs(30)).await.unwrap() {
        WaitResult::Ended(job) => *job,
        WaitResult::TimedOut(timed_out) => panic!("job {job_id} did not end in 30 s: {:?}", timed_out.job),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn discovery_finds_the_socket_through_the_data_directory() {
    let home = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(home.path());
    // No token anywhere: only the socket can answer.
    let client = socket_client(&daemon);
    let job = client.enqueue(&EnqueueParams::new("noop", "default", "socket")).await.unwrap();
    assert_eq!(ended(&client, &job.job_id).await.state, JobState::Done);
    assert_eq!(Client::with_socket(&daemon.socket).get(&job.job_id).await.unwrap().id, job.job_id);
}

#[tokio::test(flavor = "multi_thread")]
async fn discovery_by_url_takes_the_token_given_or_the_token_file() {
    let home = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(home.path());
    let from_file = Client::with_discovery(Discovery {
        home: Some(daemon.home.clone()),
        url: Some(format!("http://{}", daemon.rpc_addr)),
        token: None,
    })
    .unwrap();
    assert_eq!(from_file.stats().await.unwrap().system.version, env!("CARGO_PKG_VERSION"));
    let given = Client::with_url(&daemon.rpc_addr, Some(&daemon.token));
    assert!(given.stats().await.is_ok());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_token_is_unauthorized() {
    let home = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(home.path());
    for token in [Some("wrong"), None] {
        let client = Client::with_url(&format!("http://{}/", daemon.rpc_addr), token);
        let error = client.stats().await.unwrap_err();
        assert_eq!((error.kind(), error.code()), (ErrorKind::Unauthorized, Some(4010)), "{error}");
        let follow = client.follow("67e55044-10b1-426f-9247-bb680e5fe0c8", 0).await.err().expect("refused");
        assert_eq!(follow.kind(), ErrorKind::Unauthorized, "{follow}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn no_daemon_says_to_start_semantica_serve() {
    let home = tempfile::tempdir().unwrap();
    let error =
        Client::with_discovery(Discovery { home: Some(home.path().to_owned()), ..Default::default() }).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::DaemonNotRunning);
    assert!(error.to_string().contains("semantica serve"), "{error}");
    // A daemon that has stopped: its files are left, nothing listens.
    let stale = {
        let daemon = Daemon::start(home.path());
        (daemon.rpc_addr.clone(), daemon.socket.clone())
    };
    let by_socket = socket_client_of(home.path()).stats().await.unwrap_err();
    assert_eq!(by_socket.kind(), ErrorKind::DaemonNotRunning, "{by_socket}");
    let by_url = Client::with_url(&stale.0, Some("t")).stats().await.unwrap_err();
    assert_eq!(by_url.kind(), ErrorKind::DaemonNotRunning, "{by_url}");
    assert!(by_url.to_string().contains("start one with `semantica serve`"), "{by_url}");
    let follow = Client::with_socket(&stale.1).follow("x", 0).await.err().expect("no daemon");
    assert_eq!(follow.kind(), ErrorKind::DaemonNotRunning, "{follow}");
}

fn socket_client_of(home: &std::path::Path) -> Client {
    Client::with_discovery(Discovery { home: Some(home.to_owned()), ..Default::default() }).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_are_typed_with_code_kind_and_field() {
    let home = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(home.path());
    let client = socket_client(&daemon);
    let mut bad = EnqueueParams::new("noop", "default", "s");
    bad.max_attempts = Some(0);
    let error = client.enqueue(&bad).await.unwrap_err();
    assert_eq!(
        (error.kind(), error.code(), error.field().as_deref()),
        (ErrorKind::Validation, Some(4000), Some("max_attempts"))
    );
    let batch = vec![EnqueueParams::new("noop", "default", "a"), EnqueueParams::new("no such type", "default", "b")];
    let error = client.enqueue_batch(batch).await.unwrap_err();
    assert_eq!((error.kind(), error.index()), (ErrorKind::Validation, Some(1)), "{error}");
    let error = client.get("67e55044-10b1-426f-9247-bb680e5fe0c8").await.unwrap_err();
    assert_eq!((error.kind(), error.data_kind().as_deref()), (ErrorKind::NotFound, Some("not_found")));
    let done = client.enqueue(&EnqueueParams::new("noop", "default", "done")).await.unwrap();
    ended(&client, &done.job_id).await;
    let error = client.cancel(&CancelParams { job_id: Some(done.job_id), ..Default::default() }).await.unwrap_err();
    assert_eq!((error.kind(), error.state()), (ErrorKind::Conflict, Some(JobState::Done)));
    let error = client.call::<_, serde_json::Value>("dev.nothing.v1", &json!({})).await.unwrap_err();
    assert_eq!((error.kind(), error.code()), (ErrorKind::Protocol, Some(-32601)));
}

#[tokio::test(flavor = "multi_thread")]
async fn jobs_stream_follows_the_cursor_across_pages() {
    let home = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(home.path());
    let client = socket_client(&daemon);
    let jobs = (0..7).map(|i| EnqueueParams::new("noop", "paged", format!("page-{i}"))).collect();
    let enqueued: BTreeSet<String> = client.enqueue_batch(jobs).await.unwrap().into_iter().map(|r| r.job_id).collect();
    let query = QueryJobsParams {
        filter: Some(JobFilter { queue: Some(vec!["paged".into()]), ..Default::default() }),
        limit: Some(2),
        ..Default::default()
    };
    assert!(client.jobs_page(&query).await.unwrap().next_cursor.is_some(), "more than one page");
    let listed: Vec<String> = client.jobs(query).map(|job| job.unwrap().id).collect().await;
    assert_eq!(listed.len(), 7, "{listed:?}");
    assert_eq!(listed.into_iter().collect::<BTreeSet<_>>(), enqueued);
}

#[tokio::test(flavor = "multi_thread")]
async fn follow_streams_the_log_and_ends_when_the_job_ends() {
    let home = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(home.path());
    let tcp = Client::with_url(&daemon.rpc_addr, Some(&daemon.token));
    for (name, client) in [("tcp", tcp), ("socket", socket_client(&daemon))] {
        let job = client.enqueue(&shell(name, "for i in 1 2 3; do echo line-$i; sleep 0.1; done")).await.unwrap();
        let follow = client.follow(&job.job_id, 0).await.unwrap();
        let text: Vec<String> =
            tokio::time::timeout(Duration::from_secs(30), follow.map(|chunk| chunk.unwrap()).collect())
                .await
                .expect("the stream ends once the job has ended");
        assert_eq!(text.concat(), "line-1\nline-2\nline-3\n", "over {name}");
        assert_eq!(client.get(&job.job_id).await.unwrap().state, JobState::Done);
    }
}

/// Every method of the client against the real daemon; every entry of [`METHODS`] is
/// called here.
#[tokio::test(flavor = "multi_thread")]
async fn every_method_answers_typed() {
    let home = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(home.path());
    let client = socket_client(&daemon).config(Config { throttle_retries_max: 2, ..Config::default() });
    let mut called = BTreeSet::new();
    let mut note = |name: &str| called.insert(name.to_owned());

    let mut job = shell("every", "echo hello");
    job.tag = Some("every".into());
    let echo = client.enqueue(&job).await.unwrap();
    note("enqueue");
    let batch = client.enqueue_batch(vec![EnqueueParams::new("fail", "default", "failing")]).await.unwrap();
    note("enqueue_batch");
    assert_eq!(ended(&client, &echo.job_id).await.state, JobState::Done);
    note("wait");
    let view = client.get(&echo.job_id).await.unwrap();
    assert_eq!((view.execution_mode, view.tag.as_deref()), (ExecutionMode::Subprocess, Some("every")));
    note("get");
    let chunk = client.logs(&echo.job_id, 0, None).await.unwrap();
    assert_eq!((chunk.chunk.as_str(), chunk.eof), ("hello\n", true));
    note("logs");
    let text: Vec<String> = client.follow(&echo.job_id, 0).await.unwrap().map(|c| c.unwrap()).collect().await;
    assert_eq!(text.concat(), "hello\n");
    note("follow");
    let all: Vec<JobView> = client.jobs(QueryJobsParams::default()).map(|j| j.unwrap()).collect().await;
    assert_eq!(all.len(), 2);
    note("jobs");

    let mut waiting = EnqueueParams::new("noop", "default", "waiting");
    waiting.conditions = Some(Conditions { wait_for_event: Some("go".into()), ..Default::default() });
    waiting.schedule = Some(Schedule { delay_ms: Some(600_000), at: None });
    let waiting = client.enqueue(&waiting).await.unwrap();
    assert_eq!(client.event("nobody").await.unwrap(), 0);
    note("event");
    let timed_out = client.wait(&waiting.job_id, Duration::from_millis(10)).await.unwrap();
    assert!(matches!(timed_out, WaitResult::TimedOut(_)));
    assert_eq!(
        client.cancel(&CancelParams { job_id: Some(waiting.job_id.clone()), ..Default::default() }).await.unwrap(),
        1
    );
    note("cancel");
    ended(&client, &batch[0].job_id).await;
    let retried = client
        .retry(&RetryParams {
            filter: Some(JobFilter { state: Some(vec![JobState::Failed]), ..Default::default() }),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(retried.len(), 1);
    note("retry");

    assert!(client.pause("held").await.unwrap().paused);
    note("pause");
    let stats = client.stats().await.unwrap();
    assert!(stats.queues.iter().any(|q| q.name == "held" && q.paused));
    note("stats");
    assert!(!client.resume("held").await.unwrap().paused);
    note("resume");
    let maintenance = client.maintenance(true).await.unwrap();
    assert!(maintenance.vacuumed);
    note("maintenance");

    let set = RecurringSetParams {
        name: "hourly".into(),
        cron: "0 * * * *".into(),
        timezone: None,
        job: EnqueueParams::new("noop", "cron", "hourly"),
    };
    assert!(client.recurring_set(&set).await.unwrap().next_at.is_some());
    note("recurring_set");
    let list = client.recurring_list().await.unwrap();
    assert_eq!((list.len(), list[0].timezone.as_str()), (1, "UTC"));
    note("recurring_list");
    assert!(client.recurring_delete("hourly").await.unwrap());
    note("recurring_delete");
    assert!(client.reload().await.unwrap().reloaded);
    note("reload");
    let login = client.ui_login().await.unwrap();
    assert!(login.url.contains("/ui/login?code="), "{}", login.url);
    note("ui_login");
    let document = client.discover().await.unwrap();
    assert_eq!(document["info"]["version"], env!("CARGO_PKG_VERSION"));
    note("discover");

    let table: BTreeSet<String> = METHODS.iter().map(|(_, method)| method.to_string()).collect();
    assert_eq!(called, table, "every client method of the table is called here");
}

/// A throttled call (4003) is tried again after `retry_after_ms`, a bounded number of
/// times. The daemon throttles only under load, so a fake answers here.
#[tokio::test(flavor = "multi_thread")]
async fn a_throttled_call_is_tried_again_after_retry_after_ms() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let server = tokio::spawn(async move {
        for index in 0.. {
            let (mut socket, _) = listener.accept().await.unwrap();
            read_request(&mut socket).await;
            // Two refusals, then an answer; again for the next call.
            let throttled = index % 3 < 2;
            let body = if throttled {
                json!({"jsonrpc": "2.0", "id": 1, "error": {"code": 4003, "message": "throttled", "data": {"kind": "throttled", "details": "x", "retry_after_ms": 20}}})
            } else {
                json!({"jsonrpc": "2.0", "id": 1, "result": {"released_count": 7}})
            };
            let status = if throttled { "429 Too Many Requests" } else { "200 OK" };
            let body = body.to_string();
            let response = format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            tokio::io::AsyncWriteExt::write_all(&mut socket, response.as_bytes()).await.unwrap();
        }
    });
    let config = |retries| Config { throttle_retries_max: retries, ..Config::default() };
    let started = std::time::Instant::now();
    assert_eq!(Client::with_url(&addr, Some("t")).config(config(2)).event("e").await.unwrap(), 7);
    assert!(started.elapsed() >= Duration::from_millis(40), "waited retry_after_ms twice");
    // One retry is not enough for the next two refusals.
    let error = Client::with_url(&addr, Some("t")).config(config(1)).event("e").await;
    let error: Error = error.unwrap_err();
    assert_eq!((error.kind(), error.retry_after_ms()), (ErrorKind::Throttled, Some(20)));
    server.abort();
}

async fn read_request(socket: &mut tokio::net::TcpStream) {
    use tokio::io::AsyncReadExt;
    let mut seen = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let n = socket.read(&mut buffer).await.unwrap();
        seen.extend_from_slice(&buffer[..n]);
        let text = String::from_utf8_lossy(&seen).to_lowercase();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text
                .lines()
                .find_map(|line| line.strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().unwrap()))
                .unwrap_or(0);
            if seen.len() >= end + 4 + length {
                return;
            }
        }
        assert!(n > 0, "the request ended early");
    }
}

/// Relays every connection accepted by `listener` to what `connect` opens, counting them.
fn counting_relay<L, S, F, Fut>(mut accept: L, connect: F) -> Arc<AtomicUsize>
where
    L: FnMut() -> std::pin::Pin<Box<dyn std::future::Future<Output = S> + Send>> + Send + 'static,
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = S> + Send + 'static,
{
    let count = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&count);
    let connect = Arc::new(connect);
    tokio::spawn(async move {
        loop {
            let mut inbound = accept().await;
            counted.fetch_add(1, Ordering::SeqCst);
            let connect = Arc::clone(&connect);
            tokio::spawn(async move {
                let mut outbound = connect().await;
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            });
        }
    });
    count
}

/// Sequential calls travel on one keep-alive connection, on TCP and on the Unix socket;
/// a clone shares its connections.
#[tokio::test(flavor = "multi_thread")]
async fn sequential_calls_reuse_one_connection() {
    let home = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(home.path());

    let listener = Arc::new(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap());
    let relay_addr = listener.local_addr().unwrap().to_string();
    let target = daemon.rpc_addr.clone();
    let tcp_count = counting_relay(
        move || {
            let listener = Arc::clone(&listener);
            Box::pin(async move { listener.accept().await.unwrap().0 })
        },
        move || {
            let target = target.clone();
            async move { tokio::net::TcpStream::connect(target).await.unwrap() }
        },
    );
    let relay_socket = home.path().join("relay.sock");
    let unix_listener = Arc::new(tokio::net::UnixListener::bind(&relay_socket).unwrap());
    let daemon_socket = daemon.socket.clone();
    let unix_count = counting_relay(
        move || {
            let listener = Arc::clone(&unix_listener);
            Box::pin(async move { listener.accept().await.unwrap().0 })
        },
        move || {
            let socket = daemon_socket.clone();
            async move { tokio::net::UnixStream::connect(socket).await.unwrap() }
        },
    );

    for (client, count) in [
        (Client::with_url(&relay_addr, Some(&daemon.token)), &tcp_count),
        (Client::with_socket(&relay_socket), &unix_count),
    ] {
        for index in 0..100 {
            let caller = if index % 2 == 0 { client.clone() } else { client.clone().config(Config::default()) };
            let job = caller.enqueue(&EnqueueParams::new("noop", "default", format!("keep-{index}"))).await.unwrap();
            assert_eq!(caller.get(&job.job_id).await.unwrap().id, job.job_id);
        }
        assert_eq!(count.load(Ordering::SeqCst), 1, "200 sequential calls took more than one connection");
    }
}

/// `ensure_daemon` starts `semantica serve` on a data directory where none runs, returns a
/// client of it, and starts no second one when called again.
#[tokio::test(flavor = "multi_thread")]
async fn ensure_daemon_starts_one_only_when_none_answers() {
    let home = tempfile::tempdir().unwrap();
    let discovery = Discovery { home: Some(home.path().to_owned()), ..Default::default() };
    let serve = || {
        let mut serve = std::process::Command::new(common::binary());
        serve.arg("serve").env("SEMANTICA_RPC_ADDR", "127.0.0.1:0").env("SEMANTICA_WORKERS", "2");
        serve.env_remove("SEMANTICA_TOKEN").env_remove("SEMANTICA_DB_PATH").env_remove("SEMANTICA_SOCKET");
        serve
    };
    let client = Client::ensure_daemon_with(discovery.clone(), serve()).await.unwrap();
    let pid = semantica_client::DaemonInfo::read(home.path()).unwrap().pid;
    let stop = StopOnDrop(pid);
    let job = client.enqueue(&EnqueueParams::new("noop", "default", "ensured")).await.unwrap();
    assert_eq!(ended(&client, &job.job_id).await.state, JobState::Done);

    let again = Client::ensure_daemon_with(discovery, serve()).await.unwrap();
    assert_eq!(again.get(&job.job_id).await.unwrap().state, JobState::Done);
    assert_eq!(semantica_client::DaemonInfo::read(home.path()).unwrap().pid, pid, "a second daemon was started");
    drop(stop);

    // A binary that is not there: the "not running" error, saying what failed.
    let empty = tempfile::tempdir().unwrap();
    let nowhere = Discovery { home: Some(empty.path().to_owned()), ..Default::default() };
    let error = Client::ensure_daemon_with(nowhere, std::process::Command::new("/nonexistent/semantica")).await;
    let error = error.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::DaemonNotRunning, "{error}");
    assert!(error.to_string().contains("semantica serve"), "{error}");
}

/// SIGTERM to a daemon the test started, and a wait for it to go.
struct StopOnDrop(u32);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill").arg(self.0.to_string()).status();
        for _ in 0..200 {
            if !std::path::Path::new(&format!("/proc/{}", self.0)).exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
