//! A small client of the daemon: it finds it through `$SEMANTICA_HOME/daemon.json` and
//! the token file, and calls methods over HTTP on TCP, or on the Unix socket without a
//! token ([`call_socket`], through `semantica_client`). The CLI, the bench and the
//! end-to-end tests use it. FIXME: the TCP side keeps jsonrpsee's pooled HTTP client
//! (the bench measures through it); `semantica_client::Client` opens a connection per call.

use std::path::{Path, PathBuf};
use std::time::Duration;

use jsonrpsee::core::client::ClientT;
use jsonrpsee::core::params::ObjectParams;
use jsonrpsee_http_client::{HeaderMap, HeaderValue, HttpClient, HttpClientBuilder};
use serde_json::{Map, Value};

/// Where a daemon listens, as it wrote in `daemon.json`.
#[derive(Clone, Debug)]
pub struct DaemonInfo {
    pub pid: u32,
    pub rpc_addr: String,
    pub socket: PathBuf,
}

#[derive(Debug)]
pub enum ClientError {
    /// No daemon runs on this data directory (or it cannot be reached).
    NoDaemon(String),
    /// The daemon answered with a JSON-RPC error.
    Rpc {
        code: i32,
        message: String,
        data: Option<Value>,
    },
    Other(String),
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::NoDaemon(detail) => {
                write!(f, "no semantica daemon is running ({detail}); start one with `semantica serve`")
            }
            ClientError::Rpc { code, message, .. } => write!(f, "error {code}: {message}"),
            ClientError::Other(detail) => f.write_str(detail),
        }
    }
}

impl std::error::Error for ClientError {}

pub fn read_daemon_info(home: &Path) -> Result<DaemonInfo, ClientError> {
    let path = home.join("daemon.json");
    let text = std::fs::read_to_string(&path).map_err(|e| ClientError::NoDaemon(format!("{}: {e}", path.display())))?;
    let value: Value =
        serde_json::from_str(&text).map_err(|e| ClientError::NoDaemon(format!("{}: {e}", path.display())))?;
    let field = |name: &str| {
        value.get(name).cloned().ok_or_else(|| ClientError::NoDaemon(format!("{} has no {name}", path.display())))
    };
    Ok(DaemonInfo {
        pid: field("pid")?.as_u64().unwrap_or(0) as u32,
        rpc_addr: field("rpc_addr")?.as_str().unwrap_or_default().to_owned(),
        socket: PathBuf::from(field("socket")?.as_str().unwrap_or_default()),
    })
}

pub struct Client {
    http: HttpClient,
}

impl Client {
    /// Connects to the daemon of `home`, with `SEMANTICA_TOKEN` or the token file.
    pub fn connect(home: &Path, timeout: Duration) -> Result<Client, ClientError> {
        let info = read_daemon_info(home)?;
        let token = match std::env::var("SEMANTICA_TOKEN").ok().filter(|t| !t.is_empty()) {
            Some(token) => token,
            None => std::fs::read_to_string(home.join("token"))
                .map_err(|e| ClientError::Other(format!("cannot read the token: {e}")))?
                .trim()
                .to_owned(),
        };
        Client::with_token(&info.rpc_addr, &token, timeout)
    }

    pub fn with_token(rpc_addr: &str, token: &str, timeout: Duration) -> Result<Client, ClientError> {
        let mut headers = HeaderMap::new();
        let bearer =
            HeaderValue::from_str(&format!("Bearer {token}")).map_err(|e| ClientError::Other(e.to_string()))?;
        headers.insert("authorization", bearer);
        let http = HttpClientBuilder::default()
            .set_headers(headers)
            .request_timeout(timeout)
            .max_request_size(4 * 1024 * 1024)
            .max_response_size(256 * 1024 * 1024)
            .build(format!("http://{rpc_addr}"))
            .map_err(|e| ClientError::Other(e.to_string()))?;
        Ok(Client { http })
    }

    /// Calls `method` with named params.
    pub async fn call(&self, method: &str, params: Map<String, Value>) -> Result<Value, ClientError> {
        let mut object = ObjectParams::new();
        for (key, value) in params {
            object.insert(&key, value).map_err(|e| ClientError::Other(e.to_string()))?;
        }
        self.http.request(method, object).await.map_err(|error| match error {
            jsonrpsee::core::ClientError::Call(error) => ClientError::Rpc {
                code: error.code(),
                message: error.message().to_owned(),
                data: error.data().and_then(|raw| serde_json::from_str(raw.get()).ok()),
            },
            jsonrpsee::core::ClientError::Transport(error) => ClientError::NoDaemon(error.to_string()),
            other => ClientError::Other(other.to_string()),
        })
    }
}

/// Calls `method` over the daemon's Unix socket (the file's mode is the access check: no
/// token), through `semantica_client`'s transport; a throttled call is not tried again.
pub async fn call_socket(
    socket: &Path,
    method: &str,
    params: Map<String, Value>,
    timeout: Duration,
) -> Result<Value, ClientError> {
    let config = semantica_client::Config { timeout, throttle_retries_max: 0, ..Default::default() };
    let client = semantica_client::Client::with_socket(socket).config(config);
    client.call(method, &params).await.map_err(|error| match error {
        semantica_client::Error::Rpc(error) => ClientError::Rpc {
            code: error.code,
            message: error.message,
            data: Some(error.data).filter(|data| !data.is_null()),
        },
        semantica_client::Error::DaemonNotRunning(detail) => ClientError::NoDaemon(detail),
        semantica_client::Error::Transport(detail) => ClientError::Other(detail),
    })
}
