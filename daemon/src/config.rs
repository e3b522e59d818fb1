//! Where the daemon keeps its files and how it is tuned: environment variables of API.md
//! and `$SEMANTICA_HOME/config.toml`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use semantica_core::Throttle;
use serde::Deserialize;

/// Everything `semantica serve` needs to know before it starts.
#[derive(Clone, Debug)]
pub struct DaemonConfig {
    pub home: PathBuf,
    pub db_path: PathBuf,
    /// `SEMANTICA_STORE_URL`, else `store_url` of `config.toml`: a `postgres://` URL puts
    /// the jobs in that database instead of the SQLite file at `db_path`.
    pub store_url: Option<String>,
    pub socket_path: PathBuf,
    pub rpc_addr: SocketAddr,
    /// `SEMANTICA_TOKEN`, when set; otherwise the token file is read or created.
    pub token_override: Option<String>,
    pub workers: usize,
    pub log_json: bool,
    pub file: FileConfig,
    /// `SEMANTICA_NODE_ID`, else `<host name>:<data directory>`: this daemon's name on a
    /// shared database, recorded on every job it starts.
    pub node_id: String,
    /// `SEMANTICA_NODE_LEASE_MS`, else `node_lease_ms` of `config.toml`, else 15000.
    pub node_lease_ms: u64,
}

/// `config.toml`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default)]
    pub queues: BTreeMap<String, QueueConfig>,
    /// Finished jobs older than this are removed, with their logs (default 7; 0: as soon
    /// as they end).
    pub retention_days: Option<u64>,
    /// Seconds between two automatic purges of what retention lets go (default 3600).
    pub maintenance_interval_seconds: Option<u64>,
    /// Variables of the daemon's environment a subprocess may see (default: PATH, HOME,
    /// LANG, TZ, TMPDIR).
    pub env_allowlist: Option<Vec<String>>,
    pub throttle: Option<ThrottleConfig>,
    /// Seconds between SIGTERM and SIGKILL when a job is stopped (default 5).
    pub kill_grace_seconds: Option<u64>,
    /// Seconds running jobs get to finish on shutdown (default 10).
    pub shutdown_grace_seconds: Option<u64>,
    /// Requests one connection may make per second (bursts of twice that); more are
    /// answered 4003 with `retry_after_ms`. Default 20,000.
    pub rate_limit_per_second: Option<u32>,
    /// `synchronous=FULL`: every commit on the disk before it is acknowledged.
    #[serde(default)]
    pub durable_commits: bool,
    /// The database stops growing at about this size; writes that need more are answered
    /// 5001 (as on a full disk) until space is freed. Default: no limit but the disk's.
    pub db_max_bytes: Option<u64>,
    /// Most bytes one job's log file grows to; output past it is dropped and noted in the
    /// log (the job goes on). Default 64 MiB.
    pub log_max_bytes: Option<u64>,
    /// `postgres://…`: the jobs live in that database (API.md, "Several daemons on one
    /// Postgres"); `SEMANTICA_STORE_URL` overrides it. Default: the SQLite file.
    pub store_url: Option<String>,
    /// Milliseconds a daemon's lease on a shared (Postgres) database lasts; it renews it
    /// every third of that. Default 15000.
    pub node_lease_ms: Option<u64>,
}

/// Bounds of `node_lease_ms`: renewals every third of it must fit between database
/// round trips, and a lost daemon's jobs wait at most this long.
pub const NODE_LEASE_MS_MIN: u64 = 300;
pub const NODE_LEASE_MS_MAX: u64 = 600_000;
pub const NODE_LEASE_MS_DEFAULT: u64 = 15_000;

#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    pub concurrency: Option<usize>,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ThrottleConfig {
    pub cpu_limit_percent: u32,
    pub priority_floor: i32,
}

impl FileConfig {
    pub fn retention(&self) -> Duration {
        Duration::from_secs(self.retention_days.unwrap_or(7) * 24 * 3600)
    }

    pub fn maintenance_interval(&self) -> Duration {
        Duration::from_secs(self.maintenance_interval_seconds.unwrap_or(3600).max(1))
    }

    pub fn throttle(&self) -> Option<Throttle> {
        self.throttle.map(|t| Throttle { cpu_limit_percent: t.cpu_limit_percent, priority_floor: t.priority_floor })
    }

    pub fn rate_limit_per_second(&self) -> u32 {
        self.rate_limit_per_second.unwrap_or(20_000).max(1)
    }

    pub fn kill_grace(&self) -> Duration {
        Duration::from_secs(self.kill_grace_seconds.unwrap_or(5))
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_seconds.unwrap_or(10))
    }
}

/// What a reload changes: the keys whose value differs from the running config, and the
/// keys that take effect only at the next start (differing from the config at start).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfigChanges {
    pub changed: Vec<&'static str>,
    pub restart_required: Vec<&'static str>,
}

impl FileConfig {
    /// Keys of `config.toml` that are read once at start: the store's options and the
    /// listeners' rate limit.
    pub const RESTART_REQUIRED: [&'static str; 5] =
        ["db_max_bytes", "durable_commits", "node_lease_ms", "rate_limit_per_second", "store_url"];

    /// The keys whose value differs between `self` (running) and `new`, in name order.
    pub fn changes(&self, new: &FileConfig) -> ConfigChanges {
        // Every key is named below: a key added to the file must be added here too.
        let FileConfig {
            queues: _,
            retention_days: _,
            maintenance_interval_seconds: _,
            env_allowlist: _,
            throttle: _,
            kill_grace_seconds: _,
            shutdown_grace_seconds: _,
            rate_limit_per_second: _,
            durable_commits: _,
            db_max_bytes: _,
            log_max_bytes: _,
            store_url: _,
            node_lease_ms: _,
        } = new;
        let differs = [
            ("db_max_bytes", self.db_max_bytes != new.db_max_bytes),
            ("durable_commits", self.durable_commits != new.durable_commits),
            ("env_allowlist", self.env_allowlist != new.env_allowlist),
            ("kill_grace_seconds", self.kill_grace_seconds != new.kill_grace_seconds),
            ("log_max_bytes", self.log_max_bytes != new.log_max_bytes),
            ("maintenance_interval_seconds", self.maintenance_interval_seconds != new.maintenance_interval_seconds),
            ("node_lease_ms", self.node_lease_ms != new.node_lease_ms),
            ("queues", self.queues != new.queues),
            ("rate_limit_per_second", self.rate_limit_per_second != new.rate_limit_per_second),
            ("retention_days", self.retention_days != new.retention_days),
            ("shutdown_grace_seconds", self.shutdown_grace_seconds != new.shutdown_grace_seconds),
            ("store_url", self.store_url != new.store_url),
            ("throttle", self.throttle != new.throttle),
        ];
        let changed: Vec<&'static str> = differs.iter().filter(|(_, differs)| *differs).map(|(key, _)| *key).collect();
        let restart_required = changed.iter().copied().filter(|key| Self::RESTART_REQUIRED.contains(key)).collect();
        ConfigChanges { changed, restart_required }
    }
}

/// Bytes of a node id: it is stored on every job a daemon starts.
pub const NODE_ID_BYTES_MAX: usize = 256;

pub const DEFAULT_RPC_ADDR: &str = "127.0.0.1:9527";

/// The data directory: `SEMANTICA_HOME`, else `~/.semantica`.
pub fn home_from_env() -> Result<PathBuf, String> {
    if let Some(home) = std::env::var_os("SEMANTICA_HOME") {
        return Ok(PathBuf::from(home));
    }
    let user_home = std::env::var_os("HOME").ok_or("neither SEMANTICA_HOME nor HOME is set")?;
    Ok(Path::new(&user_home).join(".semantica"))
}

impl DaemonConfig {
    /// Reads the environment and `config.toml` (which may be absent).
    pub fn from_env() -> Result<DaemonConfig, String> {
        let home = home_from_env()?;
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let db_path = var("SEMANTICA_DB_PATH").map(PathBuf::from).unwrap_or_else(|| home.join("jobs.db"));
        let socket_path = var("SEMANTICA_SOCKET").map(PathBuf::from).unwrap_or_else(|| home.join("semantica.sock"));
        let rpc_addr_text = var("SEMANTICA_RPC_ADDR").unwrap_or_else(|| DEFAULT_RPC_ADDR.to_owned());
        let rpc_addr: SocketAddr = rpc_addr_text
            .parse()
            .map_err(|error| format!("SEMANTICA_RPC_ADDR={rpc_addr_text:?}: {error} (want host:port)"))?;
        let workers = match var("SEMANTICA_WORKERS") {
            Some(text) => match text.parse::<usize>() {
                Ok(n) if (1..=1024).contains(&n) => n,
                _ => return Err(format!("SEMANTICA_WORKERS={text:?}: want a number from 1 to 1024")),
            },
            None => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2),
        };
        let log_json = var("SEMANTICA_LOG_FORMAT").is_some_and(|format| format.eq_ignore_ascii_case("json"));
        let file = read_file_config(&home.join("config.toml"))?;
        let store_url = var("SEMANTICA_STORE_URL").or_else(|| file.store_url.clone());
        if let Some(url) = &store_url {
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                return Err("SEMANTICA_STORE_URL / store_url: want a postgres:// URL (unset: the SQLite file)".into());
            }
        }
        let node_lease_ms = match var("SEMANTICA_NODE_LEASE_MS") {
            Some(text) => {
                text.parse::<u64>().map_err(|_| format!("SEMANTICA_NODE_LEASE_MS={text:?}: want milliseconds"))?
            }
            None => file.node_lease_ms.unwrap_or(NODE_LEASE_MS_DEFAULT),
        };
        if !(NODE_LEASE_MS_MIN..=NODE_LEASE_MS_MAX).contains(&node_lease_ms) {
            return Err(format!(
                "node_lease_ms = {node_lease_ms}: want {NODE_LEASE_MS_MIN} to {NODE_LEASE_MS_MAX} milliseconds"
            ));
        }
        let node_id = match var("SEMANTICA_NODE_ID") {
            Some(id) => id,
            None => {
                let host = nix::unistd::gethostname().ok().and_then(|name| name.into_string().ok());
                format!("{}:{}", host.as_deref().unwrap_or("localhost"), home.display())
            }
        };
        if node_id.len() > NODE_ID_BYTES_MAX || node_id.chars().any(char::is_control) {
            return Err(format!("SEMANTICA_NODE_ID: at most {NODE_ID_BYTES_MAX} bytes, no control characters"));
        }
        Ok(DaemonConfig {
            node_id,
            node_lease_ms,
            home,
            db_path,
            store_url,
            socket_path,
            rpc_addr,
            token_override: var("SEMANTICA_TOKEN"),
            workers,
            log_json,
            file,
        })
    }

    pub fn logs_dir(&self) -> PathBuf {
        self.home.join("logs")
    }

    pub fn runs_dir(&self) -> PathBuf {
        self.home.join("runs")
    }

    pub fn token_path(&self) -> PathBuf {
        self.home.join("token")
    }

    pub fn daemon_json_path(&self) -> PathBuf {
        self.home.join("daemon.json")
    }

    pub fn lock_path(&self) -> PathBuf {
        self.home.join("daemon.lock")
    }
}

/// `config.toml`, or the defaults when there is none. The error is one line: the path,
/// where in the file, and what is wrong there.
pub fn read_file_config(path: &Path) -> Result<FileConfig, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text).map_err(|error| {
            let at = error.span().map(|span| {
                let before = &text[..span.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
                format!("line {line}, column {column}: ")
            });
            let message = error.message().split_whitespace().collect::<Vec<_>>().join(" ");
            format!("{}: {}{message}", path.display(), at.unwrap_or_default())
        }),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(FileConfig::default()),
        Err(error) => Err(format!("{}: {error}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_toml_sets_queues_retention_and_throttle() {
        let text = r#"
            retention_days = 3
            env_allowlist = ["PATH", "CARGO_HOME"]
            [queues.build]
            concurrency = 1
            [throttle]
            cpu_limit_percent = 80
            priority_floor = 5
        "#;
        let config: FileConfig = toml::from_str(text).unwrap();
        assert_eq!(config.queues["build"].concurrency, Some(1));
        assert_eq!(config.retention(), Duration::from_secs(3 * 24 * 3600));
        assert_eq!(config.throttle(), Some(Throttle { cpu_limit_percent: 80, priority_floor: 5 }));
        assert_eq!(config.env_allowlist.as_deref(), Some(&["PATH".to_owned(), "CARGO_HOME".to_owned()][..]));
    }

    #[test]
    fn a_typo_in_config_toml_is_an_error_not_a_silent_default() {
        let error = toml::from_str::<FileConfig>("[queues.build]\nconcurency = 1\n").unwrap_err();
        assert!(error.to_string().contains("concurency"), "{error}");
    }

    #[test]
    fn a_parse_error_is_one_line_with_the_path_and_the_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "retention_days = 1\n[queues.q]\nconcurrency = \"two\"\n").unwrap();
        let error = read_file_config(&path).unwrap_err();
        assert!(!error.contains('\n'), "{error}");
        assert!(error.starts_with(&format!("{}: line 3, column 15: ", path.display())), "{error}");
        std::fs::write(&path, "[queues.q\n").unwrap();
        let error = read_file_config(&path).unwrap_err();
        assert!(!error.contains('\n') && error.contains("line 1"), "{error}");
    }

    #[test]
    fn changes_name_the_keys_that_differ_and_those_that_need_a_restart() {
        let running: FileConfig = toml::from_str("retention_days = 7\n[queues.q]\nconcurrency = 1\n").unwrap();
        let new: FileConfig =
            toml::from_str("retention_days = 7\ndurable_commits = true\n[queues.q]\nconcurrency = 2\n").unwrap();
        let changes = running.changes(&new);
        assert_eq!(changes.changed, ["durable_commits", "queues"]);
        assert_eq!(changes.restart_required, ["durable_commits"]);
        assert_eq!(new.changes(&new), ConfigChanges::default());
    }

    #[test]
    fn node_lease_ms_is_read_at_start_only() {
        let running = FileConfig::default();
        let new: FileConfig = toml::from_str("node_lease_ms = 3000\n").unwrap();
        assert_eq!(new.node_lease_ms, Some(3000));
        let changes = running.changes(&new);
        assert_eq!(
            (changes.changed.as_slice(), changes.restart_required.as_slice()),
            (["node_lease_ms"].as_slice(), ["node_lease_ms"].as_slice())
        );
    }

    #[test]
    fn a_missing_config_file_means_defaults() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_file_config(&dir.path().join("config.toml")).unwrap(), FileConfig::default());
    }
}
