//! The harness of the end-to-end tests: the real `semantica` binary on a temp
//! `SEMANTICA_HOME` and port 0, found through `daemon.json`.

#![allow(dead_code)] // each test file uses its own part

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub use semantica_client::Error as ClientError;
use serde_json::{json, Map, Value};

pub const BIN: &str = env!("CARGO_BIN_EXE_semantica");

pub struct Daemon {
    child: Option<Child>,
    pub rpc_addr: String,
    pub token: String,
}

pub fn spawn(home: &Path, env: &[(&str, &str)]) -> Child {
    spawn_logging_to(home, env, Stdio::null())
}

/// `spawn`, with the daemon's log (stderr) going to `stderr`.
pub fn spawn_logging_to(home: &Path, env: &[(&str, &str)], stderr: Stdio) -> Child {
    Command::new(BIN)
        .arg("serve")
        .env("SEMANTICA_HOME", home)
        .env("SEMANTICA_RPC_ADDR", "127.0.0.1:0")
        .env("SEMANTICA_WORKERS", "2")
        .env_remove("SEMANTICA_TOKEN")
        .env_remove("SEMANTICA_DB_PATH")
        .env_remove("SEMANTICA_SOCKET")
        .env_remove("SEMANTICA_STORE_URL")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("start semantica serve")
}

impl Daemon {
    pub fn start(home: &Path) -> Daemon {
        Daemon::start_with(home, &[])
    }

    /// Starts with extra environment variables (e.g. `SEMANTICA_WORKERS`).
    pub fn start_with(home: &Path, env: &[(&str, &str)]) -> Daemon {
        Daemon::start_logging_to(home, env, Stdio::null())
    }

    /// Starts with its log (stderr) going to `stderr`, e.g. a file the test reads.
    pub fn start_logging_to(home: &Path, env: &[(&str, &str)], stderr: Stdio) -> Daemon {
        let _ = std::fs::remove_file(home.join("daemon.json"));
        let mut child = spawn_logging_to(home, env, stderr);
        let started = Instant::now();
        loop {
            if let Ok(text) = std::fs::read_to_string(home.join("daemon.json")) {
                let info: Value = serde_json::from_str(&text).expect("daemon.json is JSON");
                assert_eq!(info["pid"].as_u64(), Some(u64::from(child.id())));
                let token = std::fs::read_to_string(home.join("token")).unwrap().trim().to_owned();
                let rpc_addr = info["rpc_addr"].as_str().unwrap().to_owned();
                return Daemon { child: Some(child), rpc_addr, token };
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!("the daemon exited early: {status}");
            }
            assert!(started.elapsed() < Duration::from_secs(30), "no daemon.json after 30 s");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn client(&self) -> Client {
        Client::tcp(&self.rpc_addr, &self.token)
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("the daemon runs").id() as i32
    }

    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), signal).unwrap();
    }

    /// The daemon's exit status, if it has exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut().expect("the daemon was started").try_wait().unwrap()
    }

    /// SIGKILL: nothing gets to clean up.
    pub fn crash(&mut self) {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM)
            .unwrap();
        child.wait().unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The tests' calls, through the Rust client over TCP with the token; answers as JSON.
/// A THROTTLED answer is returned, not waited out.
#[derive(Clone)]
pub struct Client(semantica_client::Client);

impl Client {
    pub fn tcp(rpc_addr: &str, token: &str) -> Client {
        let config = semantica_client::Config {
            timeout: Duration::from_secs(60),
            throttle_retries_max: 0,
            ..Default::default()
        };
        Client(semantica_client::Client::with_url(rpc_addr, Some(token)).config(config))
    }

    pub async fn call(&self, method: &str, params: Map<String, Value>) -> Result<Value, ClientError> {
        self.0.call(method, &params).await
    }
}

pub fn params(value: Value) -> Map<String, Value> {
    value.as_object().expect("params are an object").clone()
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap()
}

/// Raw HTTP/1.1 over any stream: the status code and the body.
pub fn raw_http(mut stream: impl Read + Write, request: &str) -> (u16, String) {
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let response = String::from_utf8_lossy(&response).into_owned();
    let status = response.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

pub fn post(body: &str, token: Option<&str>) -> String {
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    format!(
        "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n{auth}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

pub fn rpc_code(error: ClientError) -> (i32, Value) {
    match error {
        ClientError::Rpc(error) => (error.code, error.data),
        other => panic!("expected a JSON-RPC error, got {other}"),
    }
}

pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat[stat.rfind(')').unwrap() + 1..].trim_start().starts_with('Z'),
        Err(_) => false,
    }
}

pub async fn wait_until(client: &Client, id: &Value, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let job = client.call("dev.get.v1", params(json!({"job_id": id}))).await.unwrap();
        if check(&job) {
            return job;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "waited 30 s for {what}: {job}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Polls `dev.recurring.list.v1` until the recurring job `name` has enqueued a job (at
/// most 75 s: a minute slot and some), and returns that job's id.
pub async fn wait_for_slot(client: &Client, name: &str) -> String {
    let started = Instant::now();
    loop {
        let list = client.call("dev.recurring.list.v1", params(json!({}))).await.unwrap();
        let item = list["items"].as_array().and_then(|items| items.iter().find(|item| item["name"] == name));
        if let Some(id) = item.and_then(|item| item["last_enqueued_job_id"].as_str()) {
            return id.to_owned();
        }
        assert!(started.elapsed() < Duration::from_secs(75), "no slot of {name:?} fired: {list}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The test cluster's URL (`source .ci/postgres.sh`), or a failure that says how to get one:
/// a test that needs Postgres never passes without it.
pub fn test_pg_url() -> String {
    std::env::var("SEMANTICA_TEST_PG_URL").ok().filter(|url| !url.is_empty()).unwrap_or_else(|| {
        panic!(
            "SEMANTICA_TEST_PG_URL is not set: this test needs a Postgres server. Run `source .ci/postgres.sh` \
             (it starts a throwaway cluster and exports the URL), then the tests from that shell."
        )
    })
}

/// A schema of its own on the test cluster (created and migrated here), dropped when the
/// guard goes.
pub struct Schema {
    pub url: String,
    pub name: String,
}

impl Schema {
    pub fn new(label: &str) -> Schema {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let schema = Schema { url: test_pg_url(), name: format!("t_{label}_{}_{nanos}", std::process::id()) };
        drop(schema.open());
        schema
    }

    /// A store on the schema.
    pub fn open(&self) -> semantica_adapters::PgStore {
        let options = semantica_adapters::PgOptions { schema: Some(self.name.clone()) };
        semantica_adapters::PgStore::open(&self.url, &options).unwrap()
    }

    /// The URL a daemon gets: the schema first on the connection's search path.
    pub fn daemon_url(&self) -> String {
        let separator = if self.url.contains('?') { '&' } else { '?' };
        format!("{}{separator}options=-csearch_path%3D{}", self.url, self.name)
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let _ = semantica_adapters::PgStore::drop_schema(&self.url, &self.name);
    }
}
