//! `semantica serve`: the data directory, its lock, the token, the listeners,
//! `daemon.json`, a graceful stop on SIGTERM or SIGINT, and a config reload on SIGHUP.

use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use nix::fcntl::{Flock, FlockArg};
use serde_json::json;
use tokio::net::{TcpListener, UnixListener};
use tracing::{info, warn};

use crate::config::DaemonConfig;
use crate::rpc;
use crate::service::{ReloadError, Service};

/// Why `serve` could not start, and the process exit code for it.
#[derive(Debug)]
pub struct StartError {
    pub exit_code: u8,
    pub message: String,
}

fn fail(message: impl Into<String>) -> StartError {
    StartError { exit_code: 1, message: message.into() }
}

/// Holds `daemon.lock` for the life of the daemon: one daemon per data directory.
fn lock_home(config: &DaemonConfig) -> Result<Flock<File>, StartError> {
    let path = config.lock_path();
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| fail(format!("{}: {e}", path.display())))?;
    Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|_| StartError {
        exit_code: 2,
        message: format!(
            "another semantica daemon is already running on {} (it holds {})",
            config.home.display(),
            path.display()
        ),
    })
}

/// The token from `SEMANTICA_TOKEN`, or the token file (created with 32 random bytes,
/// mode 0600, on first start). A token file others can read is refused.
fn token(config: &DaemonConfig) -> Result<String, StartError> {
    if let Some(token) = &config.token_override {
        return Ok(token.clone());
    }
    let path = config.token_path();
    match fs::metadata(&path) {
        Ok(metadata) => {
            if metadata.permissions().mode() & 0o077 != 0 {
                return Err(fail(format!(
                    "{} is readable by other users; run `chmod 600 {}` and start again",
                    path.display(),
                    path.display()
                )));
            }
            let token = fs::read_to_string(&path).map_err(|e| fail(format!("{}: {e}", path.display())))?;
            Ok(token.trim().to_owned())
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let random = [uuid_bytes(), uuid_bytes()].concat();
            let token: String = random.iter().map(|b| format!("{b:02x}")).collect();
            let mut file = OpenOptions::new()
                .create_new(true)
                .write(true)
                .mode(0o600)
                .open(&path)
                .map_err(|e| fail(format!("{}: {e}", path.display())))?;
            file.write_all(token.as_bytes()).map_err(|e| fail(format!("{}: {e}", path.display())))?;
            Ok(token)
        }
        Err(error) => Err(fail(format!("{}: {e}", path.display(), e = error))),
    }
}

/// 16 bytes from the operating system's random source (a v4 UUID's).
fn uuid_bytes() -> Vec<u8> {
    semantica_adapters::random_bytes().to_vec()
}

fn bind_socket(path: &Path) -> Result<UnixListener, StartError> {
    // We hold the directory's lock: a socket file left here is a dead daemon's.
    let _ = fs::remove_file(path);
    let listener = UnixListener::bind(path).map_err(|e| fail(format!("{}: {e}", path.display())))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))
        .map_err(|e| fail(format!("{}: {e}", path.display())))?;
    Ok(listener)
}

/// Allocations of 4 MiB and more (pages of answers, up to 8 MiB) are mapped on their own
/// and handed back to the OS when freed, and at most four malloc arenas serve the
/// runtime's threads. glibc's defaults raise the mapping threshold as large blocks come
/// and go (up to 32 MiB) and keep an arena per thread, so freed megabytes stayed in the
/// heaps: `semantica bench --scenario big_payloads` (100 jobs of 1 MiB enqueued, paged
/// through, run) peaked at 215 MiB, and 95 MiB with these settings. A threshold of 128 KiB
/// kept it at 76 MiB but halved the enqueue rate of 1 MiB jobs (every copy a fresh mapping).
/// Call before any thread starts.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes glibc's tuning; called from main before other threads
    // exist. A refusal (return 0) leaves the defaults, which are correct, only larger.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 * 1024 * 1024);
        libc::mallopt(libc::M_ARENA_MAX, 4);
    }
}

/// Runs the daemon until SIGTERM or SIGINT.
pub async fn serve(config: DaemonConfig) -> Result<(), StartError> {
    // Before anything that takes time: from here on SIGHUP no longer ends the process,
    // and SIGTERM waits for the start to finish, then stops cleanly.
    let signals = Signals::install();
    // Payloads, environments and job output live here: directories the daemon creates
    // are the user's alone, and so is the database.
    for dir in [&config.home, &config.logs_dir(), &config.runs_dir()] {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| fail(format!("{}: {e}", dir.display())))?;
    }
    let _lock = lock_home(&config)?;
    let token = token(&config)?;
    if !config.rpc_addr.ip().is_loopback() {
        warn!(addr = %config.rpc_addr, "listening beyond loopback as configured: anyone who can reach it needs only the token");
    }
    let tcp = TcpListener::bind(config.rpc_addr).await.map_err(|e| fail(format!("{}: {e}", config.rpc_addr)))?;
    let rpc_addr = tcp.local_addr().map_err(|e| fail(e.to_string()))?;
    let unix = bind_socket(&config.socket_path)?;
    let rate_per_second = config.file.rate_limit_per_second();
    let socket_path = config.socket_path.clone();
    let daemon_json = config.daemon_json_path();
    let db_path = config.db_path.clone();
    let service = Service::start(config).await.map_err(fail)?;
    for suffix in ["", "-wal", "-shm"] {
        let path = std::path::PathBuf::from(format!("{}{suffix}", db_path.display()));
        if path.exists() {
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600))
                .map_err(|e| fail(format!("{}: {e}", path.display())))?;
        }
    }
    let listeners = rpc::Listeners { tcp, unix };
    let api = rpc::methods(std::sync::Arc::clone(&service));
    let handle = rpc::start(listeners, api, token, rate_per_second, std::sync::Arc::clone(&service.ui));
    let info = json!({
        "pid": std::process::id(),
        "rpc_addr": rpc_addr.to_string(),
        "socket": socket_path,
        "version": env!("CARGO_PKG_VERSION"),
    });
    // Written whole, then renamed: a reader never sees half a file.
    let partial = daemon_json.with_extension("json.partial");
    fs::write(&partial, info.to_string())
        .and_then(|_| fs::rename(&partial, &daemon_json))
        .map_err(|e| fail(format!("{}: {e}", daemon_json.display())))?;
    info!(%rpc_addr, socket = %socket_path.display(), "semantica is serving");

    signals.serve(&service).await;
    // Read now: a reload may have changed it.
    let shutdown_grace = service.file_config().shutdown_grace();
    info!("stopping: no new work; running jobs get {} s", shutdown_grace.as_secs());
    let _ = handle.stop();
    service.shutdown(shutdown_grace).await;
    crate::otel::shutdown().await;
    let _ = fs::remove_file(&daemon_json);
    let _ = fs::remove_file(&socket_path);
    info!("stopped");
    Ok(())
}

struct Signals {
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
    hangup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Signals {
        use tokio::signal::unix::{signal, SignalKind};
        Signals {
            terminate: signal(SignalKind::terminate()).expect("install SIGTERM handler"),
            interrupt: signal(SignalKind::interrupt()).expect("install SIGINT handler"),
            hangup: signal(SignalKind::hangup()).expect("install SIGHUP handler"),
        }
    }

    /// Until SIGTERM or SIGINT: SIGHUP reloads `config.toml` (a closed terminal must not
    /// end the daemon, and an edited file takes effect without a restart).
    async fn serve(mut self, service: &std::sync::Arc<Service>) {
        loop {
            tokio::select! {
                _ = self.terminate.recv() => return,
                _ = self.interrupt.recv() => return,
                _ = self.hangup.recv() => match service.reload().await {
                    Ok(changes) => rpc::log_reloaded(&changes),
                    Err(ReloadError::Invalid(error)) => rpc::log_not_reloaded(&error),
                    Err(ReloadError::EngineGone) => return,
                },
            }
        }
    }
}
