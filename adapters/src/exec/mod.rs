//! Executors: run a job's attempt and report how it went.
//!
//! [`TokioExecutor`] implements core's `Executor` port on a tokio runtime. A job with
//! `exec` runs as a subprocess ([`subprocess`]); any other job runs the in-process
//! [`Handler`] registered for its type ([`handlers`]). Either way exactly one
//! `Report::Finished` follows every spawn, also after a kill, and is sent on the channel
//! the executor was built with; the daemon feeds it back to the engine. A subprocess's
//! `Report::Started` (its pid) comes before; in-process handlers send none.

pub mod handlers;
pub mod subprocess;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use semantica_core::{Executor, Job, JobId, KillOrder, Report};
use tokio::sync::{mpsc, watch};

pub use handlers::{Handler, HandlerContext, Handlers};

/// Where an executor keeps its files and how it treats processes.
#[derive(Clone, Debug)]
pub struct ExecConfig {
    /// `<logs_dir>/<job_id>.log`: every attempt's output, appended.
    pub logs_dir: PathBuf,
    /// `<runs_dir>/<job_id>/<attempt>/`: result file and artifact directory.
    pub runs_dir: PathBuf,
    /// Variables of the daemon's environment a subprocess may see.
    pub env_allowlist: Vec<String>,
    /// Between SIGTERM and SIGKILL when a run is stopped.
    pub kill_grace: Duration,
    /// Most bytes a job's log file grows to; output past it is read and dropped (the
    /// process is not stopped), and one note in the log says so.
    pub log_max_bytes: u64,
}

impl ExecConfig {
    pub const DEFAULT_ENV_ALLOWLIST: [&'static str; 5] = ["PATH", "HOME", "LANG", "TZ", "TMPDIR"];
    pub const DEFAULT_LOG_MAX_BYTES: u64 = 64 * 1024 * 1024;

    pub fn new(logs_dir: impl Into<PathBuf>, runs_dir: impl Into<PathBuf>) -> ExecConfig {
        ExecConfig {
            logs_dir: logs_dir.into(),
            runs_dir: runs_dir.into(),
            env_allowlist: ExecConfig::DEFAULT_ENV_ALLOWLIST.iter().map(|s| s.to_string()).collect(),
            kill_grace: Duration::from_secs(5),
            log_max_bytes: ExecConfig::DEFAULT_LOG_MAX_BYTES,
        }
    }

    pub fn log_path(&self, job_id: JobId) -> PathBuf {
        // A JobId prints as a UUID: no separator, no `..`, so the path cannot escape.
        self.logs_dir.join(format!("{job_id}.log"))
    }

    pub fn run_dir(&self, job_id: JobId, attempt: u32) -> PathBuf {
        self.runs_dir.join(job_id.to_string()).join(attempt.to_string())
    }
}

/// A stop request for one running attempt.
type StopSignal = watch::Sender<bool>;

/// Runs attempts as tokio tasks and reports on `reports`.
pub struct TokioExecutor {
    runtime: tokio::runtime::Handle,
    config: Arc<ExecConfig>,
    handlers: Arc<Handlers>,
    reports: mpsc::UnboundedSender<Report>,
    running: Arc<Mutex<BTreeMap<(JobId, u32), StopSignal>>>,
}

impl TokioExecutor {
    pub fn new(
        runtime: tokio::runtime::Handle,
        config: ExecConfig,
        handlers: Handlers,
        reports: mpsc::UnboundedSender<Report>,
    ) -> TokioExecutor {
        TokioExecutor {
            runtime,
            config: Arc::new(config),
            handlers: Arc::new(handlers),
            reports,
            running: Arc::new(Mutex::new(BTreeMap::new())),
        }
    }

    /// The config of the attempts started from now on (a reloaded config file); those
    /// already running keep the one they started with. The directories cannot change:
    /// the daemon finds logs and results there.
    pub fn reconfigure(&mut self, config: ExecConfig) {
        assert_eq!(config.logs_dir, self.config.logs_dir, "the logs directory cannot change at run time");
        assert_eq!(config.runs_dir, self.config.runs_dir, "the runs directory cannot change at run time");
        self.config = Arc::new(config);
    }

    pub fn config(&self) -> &ExecConfig {
        &self.config
    }

    /// Attempts started and not yet finished.
    pub fn running_count(&self) -> usize {
        self.running.lock().expect("executor lock").len()
    }

    /// The attempts running now, as (job, attempt).
    pub fn running_attempts(&self) -> Vec<(semantica_core::JobId, u32)> {
        self.running.lock().expect("executor lock").keys().copied().collect()
    }

    /// Asks every running attempt to stop (shutdown): subprocess groups get SIGTERM, then
    /// SIGKILL after the grace period; handlers are told they are cancelled.
    pub fn stop_all(&self) {
        for stop in self.running.lock().expect("executor lock").values() {
            stop.send_replace(true);
        }
    }
}

impl Executor for TokioExecutor {
    fn spawn(&mut self, job: &Job) {
        let key = (job.id, job.attempts);
        let (stop_sender, stop) = watch::channel(false);
        self.running.lock().expect("executor lock").insert(key, stop_sender);
        let job = job.clone();
        let config = Arc::clone(&self.config);
        let handlers = Arc::clone(&self.handlers);
        let reports = self.reports.clone();
        let running = Arc::clone(&self.running);
        self.runtime.spawn(async move {
            let started = reports.clone();
            let on_started = move |pid: Option<u32>, pid_started_at: Option<u64>| {
                // Without a pid (an in-process handler) there is nothing to record: the job
                // is RUNNING since its claim, and the report would cost a write per job.
                if pid.is_some() {
                    let _ =
                        started.send(Report::Started { job_id: job.id, attempt: job.attempts, pid, pid_started_at });
                }
            };
            let outcome = match &job.exec {
                Some(_) => subprocess::run(&job, &config, stop, on_started).await,
                None => handlers::run(&job, &config, &handlers, stop, on_started).await,
            };
            running.lock().expect("executor lock").remove(&key);
            // The receiver is gone only when the daemon is shutting down.
            let _ = reports.send(Report::Finished { job_id: job.id, attempt: job.attempts, outcome });
        });
    }

    fn kill(&mut self, order: &KillOrder) {
        let stopped = match self.running.lock().expect("executor lock").get(&(order.job_id, order.attempt)) {
            Some(stop) => {
                stop.send_replace(true);
                true
            }
            None => false,
        };
        match stopped {
            true => {}
            // Not ours in this life of the daemon: a leftover from before a restart.
            false => {
                if let (Some(pid), Some(started_at)) = (order.pid, order.pid_started_at) {
                    subprocess::kill_leftover(pid, started_at);
                }
            }
        }
    }
}
