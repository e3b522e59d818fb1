//! Every JSON-RPC method of the daemon, called with arbitrary params through the real
//! method tables (`semantica_daemon::rpc::methods`, answering as a single HTTP call is
//! answered) on a real service: a temp `SEMANTICA_HOME`, the SQLite store, the writer and
//! the executors. This file is compiled twice: into `semantica-fuzz` (libFuzzer) and, by
//! `#[path]`, into `daemon/tests/fuzz_harness.rs` (proptest on stable, in CI).
//!
//! The first byte picks the method, so that random bytes reach every method; the rest,
//! if it is JSON, is the params. The answer must be a JSON-RPC response whose error, if
//! any, is one of the contract's codes and never INTERNAL_ERROR (5000) or -32603.

use std::sync::OnceLock;

use semantica_daemon::config::{DaemonConfig, FileConfig};
use semantica_daemon::rpc;
use semantica_daemon::service::Service;

pub const METHODS: [&str; 13] = [
    "dev.enqueue.v1",
    "dev.enqueue_batch.v1",
    "dev.cancel.v1",
    "dev.get.v1",
    "dev.wait.v1",
    "dev.query_jobs.v1",
    "dev.event.v1",
    "logs.tail.v1",
    "logs.follow.v1",
    "admin.stats.v1",
    "admin.maintenance.v1",
    "no.such.method.v1",
    // Last, so that the seed corpus's first bytes still pick the methods they did.
    "admin.reload.v1",
];

/// Codes a call may answer with (API.md), besides success.
const CONTRACT_CODES: [i64; 11] = [-32700, -32600, -32601, -32602, 4000, 4001, 4002, 4003, 4010, 5001, 5002];

struct Daemon {
    runtime: tokio::runtime::Runtime,
    api: rpc::Api,
    _home: std::path::PathBuf,
}

/// One service per process, kept for every input (as a daemon serves every client).
fn daemon() -> &'static Daemon {
    static DAEMON: OnceLock<Daemon> = OnceLock::new();
    DAEMON.get_or_init(|| {
        let home = std::env::temp_dir().join(format!("semantica-fuzz-rpc-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&home);
        std::fs::create_dir_all(&home).expect("create the fuzz home");
        let config = DaemonConfig {
            db_path: home.join("jobs.db"),
            store_url: None,
            socket_path: home.join("semantica.sock"),
            rpc_addr: "127.0.0.1:0".parse().expect("an address"),
            token_override: None,
            workers: 1,
            log_json: false,
            file: FileConfig::default(),
            node_id: "fuzz".to_owned(),
            node_lease_ms: 15_000,
            home: home.clone(),
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let service = runtime.block_on(Service::start(config)).expect("the service starts");
        Daemon { runtime, api: rpc::methods(service), _home: home }
    })
}

/// What a fuzz input may not do to the machine it runs on: a subprocess job runs `true`
/// whatever command it names (its args, env and cwd are kept), and a wait lasts 50 ms at
/// most. Everything else reaches the method as the input says.
fn defuse(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            if let Some(serde_json::Value::Object(exec)) = map.get_mut("exec") {
                if exec.get("command").is_some_and(serde_json::Value::is_string) {
                    exec.insert("command".into(), serde_json::Value::from("true"));
                }
            }
            if map.get("timeout_ms").is_some_and(|t| t.as_u64().is_none_or(|ms| ms > 50)) && map.contains_key("job_id")
            {
                if let Some(timeout) = map.get_mut("timeout_ms") {
                    if timeout.is_number() {
                        *timeout = serde_json::Value::from(50);
                    }
                }
            }
            map.values_mut().for_each(defuse);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(defuse),
        _ => {}
    }
}

/// The answer to one call of `method`; `None` if neither table takes it as a call (a
/// method only jsonrpsee has, with params neither an object nor an array).
pub fn call(method: &str, params: Option<serde_json::Value>) -> Option<serde_json::Value> {
    let mut request = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": method});
    if let Some(params) = params {
        request["params"] = params;
    }
    let daemon = daemon();
    let response = daemon.runtime.block_on(daemon.api.answer(&request.to_string()))?;
    Some(serde_json::from_str(&response).expect("the answer is JSON"))
}

pub fn rpc_call(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else { return };
    let method = METHODS[usize::from(pick) % METHODS.len()];
    let params = if rest.is_empty() {
        None
    } else {
        match serde_json::from_slice::<serde_json::Value>(rest) {
            Ok(mut params) => {
                defuse(&mut params);
                Some(params)
            }
            Err(_) => return,
        }
    };
    let Some(response) = call(method, params) else { return };
    assert_eq!(response["jsonrpc"], "2.0", "{response}");
    if let Some(error) = response.get("error") {
        let code = error["code"].as_i64().expect("an error has a code");
        assert!(CONTRACT_CODES.contains(&code), "{method}: code {code} is not the contract's: {response}");
        if code == 4000 {
            assert!(error["data"]["kind"].is_string(), "{method}: a 4000 without data.kind: {response}");
        }
    } else {
        assert!(response.get("result").is_some(), "{method}: neither result nor error: {response}");
    }
}
