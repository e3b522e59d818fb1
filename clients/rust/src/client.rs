//! The async client: finds the local daemon by itself, calls every method of API.md with
//! typed params and results, follows pages and logs as streams, and waits out throttling.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures_util::Stream;
use http_body_util::BodyExt as _;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

use crate::error::{Error, ErrorKind, RpcError};
use crate::types::*;

/// Every method of `docs/openrpc.json` and the [`Client`] method that calls it. A test
/// fails when the document has a method this table lacks.
pub const METHODS: [(&str, &str); 20] = [
    ("dev.enqueue.v1", "enqueue"),
    ("dev.enqueue_batch.v1", "enqueue_batch"),
    ("dev.cancel.v1", "cancel"),
    ("dev.get.v1", "get"),
    ("dev.wait.v1", "wait"),
    ("dev.query_jobs.v1", "jobs"),
    ("dev.event.v1", "event"),
    ("logs.tail.v1", "logs"),
    ("logs.follow.v1", "follow"),
    ("admin.stats.v1", "stats"),
    ("admin.maintenance.v1", "maintenance"),
    ("admin.queue.pause.v1", "pause"),
    ("admin.queue.resume.v1", "resume"),
    ("dev.retry.v1", "retry"),
    ("dev.recurring.set.v1", "recurring_set"),
    ("dev.recurring.delete.v1", "recurring_delete"),
    ("dev.recurring.list.v1", "recurring_list"),
    ("admin.reload.v1", "reload"),
    ("admin.ui_login.v1", "ui_login"),
    ("rpc.discover", "discover"),
];

/// How a client behaves.
#[derive(Clone, Debug)]
pub struct Config {
    /// Longest wait for one answer (a `wait` call adds its own timeout to this).
    pub timeout: Duration,
    /// How many times a throttled call (4003) is tried again, after `retry_after_ms`.
    pub throttle_retries_max: u32,
    /// The longest single wait before trying a throttled call again.
    pub throttle_wait_max: Duration,
}

impl Default for Config {
    fn default() -> Config {
        Config { timeout: Duration::from_secs(60), throttle_retries_max: 5, throttle_wait_max: Duration::from_secs(5) }
    }
}

/// Where to look for the daemon. [`Discovery::from_env`] reads `SEMANTICA_HOME`,
/// `SEMANTICA_URL` and `SEMANTICA_TOKEN`.
#[derive(Clone, Debug, Default)]
pub struct Discovery {
    /// The data directory (default `~/.semantica`).
    pub home: Option<PathBuf>,
    /// `http://host:port` (or `host:port`): TCP with a bearer token instead of the socket.
    pub url: Option<String>,
    /// The token for `url`; absent: `$SEMANTICA_HOME/token`.
    pub token: Option<String>,
}

impl Discovery {
    pub fn from_env() -> Discovery {
        let var = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
        Discovery {
            home: var("SEMANTICA_HOME").map(PathBuf::from),
            url: var("SEMANTICA_URL"),
            token: var("SEMANTICA_TOKEN"),
        }
    }

    fn home(&self) -> PathBuf {
        self.home.clone().unwrap_or_else(|| {
            std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(".")).join(".semantica")
        })
    }
}

/// Where a running daemon listens, as it wrote in `$SEMANTICA_HOME/daemon.json`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DaemonInfo {
    pub pid: u32,
    /// `host:port` of JSON-RPC over TCP (with the bearer token).
    pub rpc_addr: String,
    /// The Unix socket (no token).
    pub socket: PathBuf,
}

impl DaemonInfo {
    /// Reads `home/daemon.json`; [`Error::DaemonNotRunning`] when it is missing or unreadable.
    pub fn read(home: &Path) -> Result<DaemonInfo, Error> {
        let path = home.join("daemon.json");
        let not_running = |detail: String| Error::DaemonNotRunning(format!("{}: {detail}", path.display()));
        let text = std::fs::read_to_string(&path).map_err(|e| not_running(e.to_string()))?;
        let value: Value = serde_json::from_str(&text).map_err(|e| not_running(e.to_string()))?;
        let text_of =
            |name: &str| value[name].as_str().map(str::to_owned).ok_or_else(|| not_running(format!("no {name}")));
        Ok(DaemonInfo {
            pid: value["pid"]
                .as_u64()
                .and_then(|pid| u32::try_from(pid).ok())
                .ok_or_else(|| not_running("no pid".into()))?,
            rpc_addr: text_of("rpc_addr")?,
            socket: PathBuf::from(text_of("socket")?),
        })
    }
}

#[derive(Clone, Debug)]
enum Endpoint {
    /// The Unix socket: its file mode is the access check, no token.
    Socket(PathBuf),
    /// `host:port`, with the bearer token if one was found.
    Tcp { addr: String, token: Option<String> },
}

type Body = http_body_util::Full<bytes::Bytes>;
type Sender = hyper::client::conn::http1::SendRequest<Body>;

/// The idle keep-alive connections of one client, shared by its clones. A call takes one
/// (or opens one) and gives it back as soon as its answer is read, before it returns: so
/// sequential calls travel on one connection, and calls at the same time each get their
/// own. (hyper-util's pooled client gives a connection back later, from a spawned task,
/// so a quick next call often opened a second connection.)
#[derive(Clone, Debug, Default)]
struct Pool(Arc<std::sync::Mutex<Vec<Sender>>>);

impl Pool {
    fn take(&self) -> Option<Sender> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).pop()
    }

    fn give_back(&self, sender: Sender) {
        if !sender.is_closed() {
            self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(sender);
        }
    }
}

/// A client of one daemon. Cheap to clone; clones share one pool of keep-alive
/// connections, so sequential calls travel on one connection.
#[derive(Clone, Debug)]
pub struct Client {
    endpoint: Endpoint,
    config: Config,
    pool: Pool,
}

impl Client {
    /// Finds the local daemon: `SEMANTICA_URL` (TCP, token from `SEMANTICA_TOKEN` or
    /// `$SEMANTICA_HOME/token`), else `$SEMANTICA_HOME/daemon.json`'s Unix socket.
    pub fn new() -> Result<Client, Error> {
        Client::with_discovery(Discovery::from_env())
    }

    pub fn with_discovery(discovery: Discovery) -> Result<Client, Error> {
        let home = discovery.home();
        if let Some(url) = &discovery.url {
            let token = discovery.token.clone().or_else(|| read_token(&home));
            return Ok(Client::with_url(url, token.as_deref()));
        }
        Ok(Client::with_socket(DaemonInfo::read(&home)?.socket))
    }

    /// The local daemon's client, after starting `semantica serve` in the background when
    /// none answers: the binary is `SEMANTICA_BIN`, else `semantica` on `PATH`. See
    /// [`Client::ensure_daemon_with`].
    pub async fn ensure_daemon() -> Result<Client, Error> {
        let bin = std::env::var_os("SEMANTICA_BIN").filter(|bin| !bin.is_empty()).unwrap_or_else(|| "semantica".into());
        let mut serve = std::process::Command::new(bin);
        serve.arg("serve");
        Client::ensure_daemon_with(Discovery::from_env(), serve).await
    }

    /// The client `discovery` finds, once its daemon answers a call. When none answers and
    /// `discovery` names no URL (a remote daemon is not ours to start), runs `serve` (its
    /// `SEMANTICA_HOME` set to the discovery's data directory, no terminal, in a process
    /// group of its own so that it outlives the caller) and waits up to
    /// [`ENSURE_DAEMON_WAIT`] for its `daemon.json` and a first answer.
    pub async fn ensure_daemon_with(discovery: Discovery, mut serve: std::process::Command) -> Result<Client, Error> {
        let first = match answering(&discovery).await {
            Ok(client) => return Ok(client),
            Err(error) if discovery.url.is_none() && is_absent(&error) => error,
            Err(error) => return Err(error),
        };
        use std::os::unix::process::CommandExt as _;
        let mut child = serve
            .env("SEMANTICA_HOME", discovery.home())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|e| Error::DaemonNotRunning(format!("{first}; starting {serve:?} failed: {e}")))?;
        let started = std::time::Instant::now();
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            match answering(&discovery).await {
                Ok(client) => {
                    // Reaped when it ends, so that it leaves no zombie while we run.
                    std::thread::spawn(move || child.wait());
                    return Ok(client);
                }
                Err(error) if !is_absent(&error) => return Err(error),
                Err(error) => {
                    // Exit code 2 with another daemon on the home: that one answers soon.
                    let exited = child.try_wait().ok().flatten().filter(|status| status.code() != Some(2));
                    if let Some(status) = exited {
                        return Err(Error::DaemonNotRunning(format!("`semantica serve` exited ({status}): {error}")));
                    }
                    if started.elapsed() > ENSURE_DAEMON_WAIT {
                        let _ = child.kill();
                        let _ = child.wait();
                        return Err(Error::DaemonNotRunning(format!(
                            "`semantica serve` did not answer within {ENSURE_DAEMON_WAIT:?}: {error}"
                        )));
                    }
                }
            }
        }
    }

    /// TCP to `url` (`http://host:port` or `host:port`) with `token`.
    pub fn with_url(url: &str, token: Option<&str>) -> Client {
        let addr = url.trim_start_matches("http://").trim_end_matches('/').to_owned();
        Client::with_endpoint(Endpoint::Tcp { addr, token: token.map(str::to_owned) })
    }

    /// The Unix socket at `path`.
    pub fn with_socket(path: impl AsRef<Path>) -> Client {
        Client::with_endpoint(Endpoint::Socket(path.as_ref().to_owned()))
    }

    fn with_endpoint(endpoint: Endpoint) -> Client {
        Client { endpoint, config: Config::default(), pool: Pool::default() }
    }

    pub fn config(mut self, config: Config) -> Client {
        self.config = config;
        self
    }

    /// Calls `method` with `params`, trying a throttled call again after the daemon's
    /// `retry_after_ms`, at most [`Config::throttle_retries_max`] times.
    pub async fn call<P: Serialize, R: DeserializeOwned>(&self, method: &str, params: &P) -> Result<R, Error> {
        self.call_within(method, params, self.config.timeout).await
    }

    async fn call_within<P: Serialize, R: DeserializeOwned>(
        &self,
        method: &str,
        params: &P,
        timeout: Duration,
    ) -> Result<R, Error> {
        /// The request as it goes out, its params written straight from the caller's value.
        #[derive(Serialize)]
        struct Request<'a, P> {
            jsonrpc: &'static str,
            id: u64,
            method: &'a str,
            params: &'a P,
        }
        let body = serde_json::to_string(&Request { jsonrpc: "2.0", id: 1, method, params })
            .map_err(|e| Error::Transport(e.to_string()))?;
        let mut retries = 0;
        let result = loop {
            let answer = tokio::time::timeout(timeout, self.post(body.clone()))
                .await
                .map_err(|_| Error::Transport(format!("no answer to {method} within {timeout:?}")))?;
            match answer {
                Err(error) if error.kind() == ErrorKind::Throttled && retries < self.config.throttle_retries_max => {
                    retries += 1;
                    let wait = Duration::from_millis(error.retry_after_ms().unwrap_or(100));
                    tokio::time::sleep(wait.min(self.config.throttle_wait_max)).await;
                }
                other => break other?,
            }
        };
        serde_json::from_value(result)
            .map_err(|e| Error::Transport(format!("{method}: an answer out of contract: {e}")))
    }

    /// One request on a kept connection (or a new one): the answer's `result`, or its
    /// `error`. A request that a kept connection could not send (the daemon closed it
    /// while idle) goes on the next one; one that was sent is never sent again.
    async fn post(&self, body: String) -> Result<Value, Error> {
        let host = match &self.endpoint {
            Endpoint::Socket(_) => "localhost",
            Endpoint::Tcp { addr, .. } => addr.as_str(),
        };
        let mut request = http::Request::post("/")
            .header(http::header::HOST, host)
            .header(http::header::CONTENT_TYPE, "application/json");
        if let Endpoint::Tcp { token: Some(token), .. } = &self.endpoint {
            request = request.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let mut request =
            request.body(Body::new(bytes::Bytes::from(body))).map_err(|e| Error::Transport(e.to_string()))?;
        loop {
            let (mut sender, kept) = match self.pool.take() {
                Some(sender) => (sender, true),
                None => (self.connect().await?, false),
            };
            // Waits until the connection has finished its previous exchange.
            if let Err(error) = sender.ready().await {
                if kept {
                    continue;
                }
                return Err(Error::Transport(format!("{}: {error}", self.place())));
            }
            match sender.try_send_request(request).await {
                Ok(response) => {
                    let status = response.status();
                    let body = response.into_body().collect().await;
                    let body = body.map_err(|e| Error::Transport(format!("{}: {e}", self.place())))?.to_bytes();
                    self.pool.give_back(sender);
                    return answer_of(status, &body);
                }
                Err(mut error) => match error.take_message() {
                    Some(unsent) if kept => request = unsent,
                    _ => return Err(Error::Transport(format!("{}: {}", self.place(), error.error()))),
                },
            }
        }
    }

    /// A new HTTP/1.1 connection; its I/O runs on a task of its own until the daemon or
    /// the last of this client's clones lets go of it.
    async fn connect(&self) -> Result<Sender, Error> {
        async fn handshake<S>(stream: S) -> Result<Sender, Error>
        where
            S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
        {
            let (sender, connection) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|e| Error::Transport(e.to_string()))?;
            tokio::spawn(async move {
                let _ = connection.await;
            });
            Ok(sender)
        }
        let not_running = |error: std::io::Error| Error::DaemonNotRunning(format!("{}: {error}", self.place()));
        match &self.endpoint {
            Endpoint::Socket(path) => {
                handshake(tokio::net::UnixStream::connect(path).await.map_err(not_running)?).await
            }
            Endpoint::Tcp { addr, .. } => {
                let stream = tokio::net::TcpStream::connect(addr.as_str()).await.map_err(not_running)?;
                // Small requests and answers: no waiting for Nagle.
                stream.set_nodelay(true).map_err(|e| Error::Transport(e.to_string()))?;
                handshake(stream).await
            }
        }
    }

    /// The daemon's address, for messages.
    fn place(&self) -> String {
        match &self.endpoint {
            Endpoint::Socket(path) => path.display().to_string(),
            Endpoint::Tcp { addr, .. } => addr.clone(),
        }
    }

    pub async fn enqueue(&self, job: &EnqueueParams) -> Result<EnqueueResult, Error> {
        self.call("dev.enqueue.v1", job).await
    }

    /// 1–1000 jobs, all or nothing; results in order.
    pub async fn enqueue_batch(&self, jobs: Vec<EnqueueParams>) -> Result<Vec<EnqueueResult>, Error> {
        let results: EnqueueResults = self.call("dev.enqueue_batch.v1", &EnqueueBatchParams { jobs }).await?;
        Ok(results.results)
    }

    /// The number of jobs cancelled.
    pub async fn cancel(&self, selector: &CancelParams) -> Result<u64, Error> {
        let result: CancelResult = self.call("dev.cancel.v1", selector).await?;
        Ok(result.cancelled_count)
    }

    pub async fn get(&self, job_id: &str) -> Result<JobView, Error> {
        self.call("dev.get.v1", &JobIdParams { job_id: job_id.to_owned() }).await
    }

    /// The job once terminal, or as it is after `timeout` (at most 300 s).
    pub async fn wait(&self, job_id: &str, timeout: Duration) -> Result<WaitResult, Error> {
        let params = WaitParams { job_id: job_id.to_owned(), timeout_ms: timeout.as_millis() as u64 };
        self.call_within("dev.wait.v1", &params, self.config.timeout + timeout).await
    }

    /// One page of `dev.query_jobs.v1`.
    pub async fn jobs_page(&self, query: &QueryJobsParams) -> Result<JobPage, Error> {
        self.call("dev.query_jobs.v1", query).await
    }

    /// Every job matching `query`, page after page (from `query.cursor` if given). The
    /// stream ends after the first error.
    pub fn jobs(&self, query: QueryJobsParams) -> impl Stream<Item = Result<JobView, Error>> + Send + 'static {
        let state = (self.clone(), query, VecDeque::new(), false);
        futures_util::stream::try_unfold(state, |(client, mut query, mut buffer, mut last)| async move {
            loop {
                if let Some(job) = buffer.pop_front() {
                    return Ok(Some((job, (client, query, buffer, last))));
                }
                if last {
                    return Ok(None);
                }
                let page = client.jobs_page(&query).await?;
                // A page is never empty when more follow; should one be, stop rather than spin.
                last = page.next_cursor.is_none() || page.items.is_empty();
                query.cursor = page.next_cursor;
                buffer.extend(page.items);
            }
        })
    }

    /// Releases the jobs waiting for `name`; the number released.
    pub async fn event(&self, name: &str) -> Result<u64, Error> {
        let result: EventResult = self.call("dev.event.v1", &NameParams { name: name.to_owned() }).await?;
        Ok(result.released_count)
    }

    /// One chunk of a job's log from `offset` (`limit` bytes, default 64 KiB).
    pub async fn logs(&self, job_id: &str, offset: u64, limit: Option<u64>) -> Result<LogChunk, Error> {
        self.call("logs.tail.v1", &LogsTailParams { job_id: job_id.to_owned(), offset, limit }).await
    }

    /// The job's log text from `offset` as it is written, ending once the job is terminal
    /// and its log drained (WebSocket, on TCP or on the Unix socket).
    pub async fn follow(
        &self,
        job_id: &str,
        offset: u64,
    ) -> Result<impl Stream<Item = Result<String, Error>> + Send + 'static, Error> {
        use jsonrpsee::core::client::SubscriptionClientT;
        use jsonrpsee_ws_client::{HeaderMap, HeaderValue, WsClientBuilder};
        let builder = WsClientBuilder::default().request_timeout(self.config.timeout);
        let ws = match &self.endpoint {
            Endpoint::Tcp { addr, token } => {
                let mut headers = HeaderMap::new();
                if let Some(token) = token {
                    let bearer = HeaderValue::from_str(&format!("Bearer {token}"))
                        .map_err(|e| Error::Transport(e.to_string()))?;
                    headers.insert("authorization", bearer);
                }
                let stream = tokio::net::TcpStream::connect(addr.as_str())
                    .await
                    .map_err(|e| Error::DaemonNotRunning(format!("{addr}: {e}")))?;
                builder.set_headers(headers).build_with_stream(format!("ws://{addr}"), stream).await
            }
            Endpoint::Socket(path) => {
                let stream = tokio::net::UnixStream::connect(path)
                    .await
                    .map_err(|e| Error::DaemonNotRunning(format!("{}: {e}", path.display())))?;
                builder.build_with_stream("ws://localhost", stream).await
            }
        }
        .map_err(from_jsonrpsee)?;
        let mut params = jsonrpsee::core::params::ObjectParams::new();
        params.insert("job_id", job_id).map_err(|e| Error::Transport(e.to_string()))?;
        params.insert("offset", offset).map_err(|e| Error::Transport(e.to_string()))?;
        let subscription = ws
            .subscribe::<FollowChunk, _>("logs.follow.v1", params, crate::openrpc::FOLLOW_UNSUBSCRIBE)
            .await
            .map_err(from_jsonrpsee)?;
        Ok(futures_util::stream::unfold((ws, subscription, false), |(ws, mut subscription, ended)| async move {
            if ended {
                return None;
            }
            loop {
                match subscription.next().await {
                    None => {
                        let error = Error::Transport("the daemon ended the follow before the job ended".into());
                        return Some((Err(error), (ws, subscription, true)));
                    }
                    Some(Err(error)) => {
                        return Some((Err(Error::Transport(error.to_string())), (ws, subscription, true)))
                    }
                    Some(Ok(chunk)) => {
                        let eof = chunk.eof == Some(true);
                        if chunk.chunk.is_empty() {
                            if eof {
                                return None;
                            }
                            continue;
                        }
                        return Some((Ok(chunk.chunk), (ws, subscription, eof)));
                    }
                }
            }
        }))
    }

    pub async fn stats(&self) -> Result<Stats, Error> {
        self.call("admin.stats.v1", &NoParams {}).await
    }

    pub async fn maintenance(&self, force_vacuum: bool) -> Result<MaintenanceResult, Error> {
        self.call("admin.maintenance.v1", &MaintenanceParams { force_vacuum: Some(force_vacuum) }).await
    }

    /// Enqueues ended jobs again (by `job_id`, or by `filter` up to `limit`).
    pub async fn retry(&self, selector: &RetryParams) -> Result<Vec<EnqueueResult>, Error> {
        let results: EnqueueResults = self.call("dev.retry.v1", selector).await?;
        Ok(results.results)
    }

    pub async fn pause(&self, queue: &str) -> Result<QueuePaused, Error> {
        self.call("admin.queue.pause.v1", &QueueParams { queue: queue.to_owned() }).await
    }

    pub async fn resume(&self, queue: &str) -> Result<QueuePaused, Error> {
        self.call("admin.queue.resume.v1", &QueueParams { queue: queue.to_owned() }).await
    }

    pub async fn recurring_set(&self, recurring: &RecurringSetParams) -> Result<RecurringSetResult, Error> {
        self.call("dev.recurring.set.v1", recurring).await
    }

    pub async fn recurring_list(&self) -> Result<Vec<RecurringJob>, Error> {
        let list: RecurringList = self.call("dev.recurring.list.v1", &NoParams {}).await?;
        Ok(list.items)
    }

    /// Whether a recurring job of that name existed.
    pub async fn recurring_delete(&self, name: &str) -> Result<bool, Error> {
        let result: RecurringDeleteResult =
            self.call("dev.recurring.delete.v1", &NameParams { name: name.to_owned() }).await?;
        Ok(result.deleted)
    }

    /// Reads `config.toml` again (`admin.reload.v1`, a daemon extra).
    pub async fn reload(&self) -> Result<ReloadResult, Error> {
        self.call("admin.reload.v1", &NoParams {}).await
    }

    /// A one-time sign-in link to the web dashboard (`admin.ui_login.v1`).
    pub async fn ui_login(&self) -> Result<UiLogin, Error> {
        self.call("admin.ui_login.v1", &NoParams {}).await
    }

    /// The daemon's OpenRPC document (`rpc.discover`).
    pub async fn discover(&self) -> Result<Value, Error> {
        self.call("rpc.discover", &NoParams {}).await
    }
}

/// How long [`Client::ensure_daemon`] waits for a daemon it started.
pub const ENSURE_DAEMON_WAIT: Duration = Duration::from_secs(30);

/// The client `discovery` finds, if its daemon answers `admin.stats.v1`.
async fn answering(discovery: &Discovery) -> Result<Client, Error> {
    let client = Client::with_discovery(discovery.clone())?;
    let short = Config { timeout: Duration::from_secs(10), throttle_retries_max: 0, ..client.config.clone() };
    match client.clone().config(short).call::<_, Value>("admin.stats.v1", &NoParams {}).await {
        // Any answer, an error too, means a daemon is there.
        Ok(_) | Err(Error::Rpc(_)) => Ok(client),
        Err(error) => Err(error),
    }
}

/// No daemon there, or one still starting (a socket that refuses or hangs up).
fn is_absent(error: &Error) -> bool {
    matches!(error, Error::DaemonNotRunning(_) | Error::Transport(_))
}

fn read_token(home: &Path) -> Option<String> {
    std::fs::read_to_string(home.join("token")).ok().map(|token| token.trim().to_owned())
}

fn from_jsonrpsee(error: jsonrpsee::core::ClientError) -> Error {
    match error {
        jsonrpsee::core::ClientError::Call(error) => Error::Rpc(RpcError {
            code: error.code(),
            message: error.message().to_owned(),
            data: error.data().and_then(|raw| serde_json::from_str(raw.get()).ok()).unwrap_or(Value::Null),
        }),
        jsonrpsee::core::ClientError::Transport(error) => {
            let text = error.to_string();
            // The WebSocket handshake refused with 401: no token, or the wrong one.
            if text.contains("401") {
                return Error::Rpc(RpcError {
                    code: codes::UNAUTHORIZED,
                    message: "missing or wrong bearer token".into(),
                    data: json!({"kind": "unauthorized", "details": text}),
                });
            }
            Error::Transport(text)
        }
        other => Error::Transport(other.to_string()),
    }
}

/// The JSON-RPC answer's `result` or `error`, whatever the HTTP status (the daemon's 401,
/// 413 and 429 carry JSON-RPC errors).
fn answer_of(status: http::StatusCode, body: &[u8]) -> Result<Value, Error> {
    let mut answer: Value = serde_json::from_slice(body).map_err(|_| {
        Error::Transport(format!("HTTP {status}: not a JSON-RPC answer: {}", String::from_utf8_lossy(body)))
    })?;
    // Taken out of the answer, not copied: a batch's result is a thousand entries.
    let mut take = |key: &str| answer.as_object_mut().and_then(|fields| fields.remove(key));
    match take("error") {
        Some(mut error) => Err(Error::Rpc(RpcError {
            code: error["code"].as_i64().and_then(|code| i32::try_from(code).ok()).unwrap_or(0),
            message: error["message"].as_str().unwrap_or_default().to_owned(),
            data: error.get_mut("data").map(Value::take).unwrap_or(Value::Null),
        })),
        None => {
            take("result").ok_or_else(|| Error::Transport(format!("HTTP {status}: an answer without result or error")))
        }
    }
}
