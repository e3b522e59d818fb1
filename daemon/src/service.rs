//! The running daemon: the engine behind the store's group-commit writer (SQLite's file,
//! or Postgres when `store_url` is set), the executor, the
//! scheduler that turns wake-ups and free workers into `Tick` and `Claim`, and the
//! operations the RPC methods call. Every decision is the engine's; this file carries
//! out steps in the order core prescribes: commit, then actions, then the reply.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use semantica_adapters::exec::{ExecConfig, Handlers, TokioExecutor};
use semantica_adapters::probe::ProcProbe;
use semantica_adapters::sqlite::{Pending, Reader, WriteError, Writer, WriterHandle, WriterOptions};
use semantica_adapters::{
    random_seed, PgListener, PgOptions, PgStore, SqliteOptions, SqliteStore, Synchronous, SystemClock, UuidIds,
};
use semantica_core::{
    limits, Action, Clock, Config, Engine, Executor, Input, Job, JobId, Reply, Report, SplitMix64, Step, Store,
    StoreError, SystemProbe, SystemState,
};
use tokio::sync::{broadcast, mpsc, Notify};
use tracing::{info, warn};

use crate::config::{read_file_config, ConfigChanges, DaemonConfig, FileConfig};

mod nodes;

/// How often the system is probed for load, idleness and power.
const PROBE_INTERVAL: Duration = Duration::from_secs(5);
/// The scheduler looks again at least this often, whatever it was told.
const SCHEDULER_IDLE_MAX: Duration = Duration::from_secs(1);
/// Claims in one round before the scheduler lets others in.
const CLAIMS_PER_ROUND_MAX: usize = 1024;
/// Longest pause between two tries of recording an executor's report.
const REPORT_RETRY_MAX: Duration = Duration::from_secs(1);
/// Report batches queued to the writer and not yet settled, at most (`pump_reports`).
const REPORT_BATCHES_IN_FLIGHT: usize = 4;

/// Whether the writer has stopped (a batch could not even be queued or answered).
struct WriterGone(bool);
/// A purge removes at most this many jobs per step (one round), so that other writes
/// queued meanwhile go between two rounds instead of waiting for all of them.
const PURGE_ROUND_MAX: usize = 1000;
/// Rounds in one purge at most; what is left waits for the next.
const PURGE_ROUNDS_MAX: usize = 10_000;

/// What one purge removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Purged {
    pub jobs: u64,
    pub logs: u64,
}

#[derive(Debug)]
pub enum ServiceError {
    /// The store failed (5001).
    Store(StoreError),
    /// The writer is gone (5000); the daemon is stopping or hit a bug.
    EngineGone,
    /// The writer's queue is full (4003): the client should try again shortly.
    Busy,
}

impl std::fmt::Display for ServiceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServiceError::Store(error) => write!(f, "{error}"),
            ServiceError::EngineGone => f.write_str("the engine stopped"),
            ServiceError::Busy => f.write_str("the daemon is busy; try again shortly"),
        }
    }
}

/// Why a reload changed nothing.
#[derive(Debug)]
pub enum ReloadError {
    /// `config.toml` could not be read or parsed: the path, the place and the error.
    Invalid(String),
    /// The writer is gone (the daemon is stopping).
    EngineGone,
}

impl std::fmt::Display for ReloadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReloadError::Invalid(error) => f.write_str(error),
            ReloadError::EngineGone => f.write_str("the engine stopped"),
        }
    }
}

/// The in-process job types of the handlers, and which of them are instant.
struct JobTypes {
    all: BTreeSet<String>,
    instant: BTreeSet<String>,
}

/// The engine's limits and throttle from `config.toml`; workers and the node id come
/// from the environment.
fn engine_config(daemon: &DaemonConfig, job_types: &JobTypes, file: &FileConfig) -> Config {
    let mut config = Config::new(daemon.workers, job_types.all.iter().cloned());
    config.instant_job_types.clone_from(&job_types.instant);
    config.node = Some(daemon.node_id.clone());
    config.shared_store = daemon.store_url.is_some();
    config.throttle = file.throttle();
    for (queue, queue_config) in &file.queues {
        if let Some(limit) = queue_config.concurrency {
            config.queue_concurrency.insert(queue.clone(), limit);
        }
    }
    config
}

/// The executor's settings from `config.toml`; its directories are the data directory's.
fn exec_config(config: &DaemonConfig, file: &FileConfig) -> ExecConfig {
    let mut exec_config = ExecConfig::new(config.logs_dir(), config.runs_dir());
    exec_config.kill_grace = file.kill_grace();
    if let Some(log_max_bytes) = file.log_max_bytes {
        exec_config.log_max_bytes = log_max_bytes;
    }
    if let Some(allowlist) = &file.env_allowlist {
        exec_config.env_allowlist = allowlist.clone();
    }
    exec_config
}

/// The connection reads go through, beside the writer's.
enum StoreReader {
    /// Boxed like the other: the variants differ in size.
    Sqlite(Box<Reader>),
    /// `None` only while it is dropped. Boxed: a client is large, and read once per call.
    Postgres(Option<Box<PgStore>>),
}

impl StoreReader {
    fn store(&self) -> &dyn Store {
        match self {
            StoreReader::Sqlite(reader) => &***reader,
            StoreReader::Postgres(store) => store.as_deref().expect("the reader is open"),
        }
    }
}

impl Drop for StoreReader {
    fn drop(&mut self) {
        // The `postgres` client blocks on its own runtime when it closes, which tokio
        // forbids on the daemon's async threads: it closes on a thread of its own.
        if let StoreReader::Postgres(store) = self {
            if let Some(store) = store.take() {
                let _ = std::thread::Builder::new().name("semantica-pg-close".into()).spawn(move || drop(store));
            }
        }
    }
}

pub struct Service {
    /// As it was at start; `config.toml`'s part that reloads is in `file`.
    pub config: DaemonConfig,
    /// `config.toml` as last loaded (at start or by a reload).
    file: RwLock<FileConfig>,
    /// One reload at a time, so that the engine, the executor and `file` agree.
    reloading: tokio::sync::Mutex<()>,
    /// The in-process job types the engine was started with (they never change).
    job_types: JobTypes,
    /// Wakes the retention task when its interval may have changed.
    maintenance_changed: Notify,
    writer: WriterHandle,
    reader: Mutex<StoreReader>,
    executor: Mutex<TokioExecutor>,
    pub clock: Arc<SystemClock>,
    /// Counters and histograms of `GET /metrics`, recorded with atomics.
    pub metrics: crate::metrics::Metrics,
    /// Earliest time the engine asked to be ticked (`u64::MAX`: none).
    next_wake_ms: AtomicU64,
    poke: Notify,
    finished: broadcast::Sender<JobId>,
    /// The web dashboard's sessions and throughput (`crate::ui`).
    pub ui: Arc<crate::ui::Ui>,
    started: Instant,
    /// On a shared (Postgres) store: this daemon's lease (`nodes`).
    lease: Option<nodes::Lease>,
    system: Mutex<(SystemState, u32)>,
    /// No more claims (shutdown began).
    stopping: AtomicBool,
    /// Reports are no longer recorded (the shutdown grace ran out).
    abandoning: AtomicBool,
    /// The wall clock's offset the engine was last told (`Input::WallClock`); `i64::MIN`
    /// until the first, which is sent whatever the offset: jobs placed by the daemon
    /// before a restart may hold another.
    wall_offset_sent_ms: std::sync::atomic::AtomicI64,
    /// On a Postgres store: job logs copied to and read from the database
    /// (`crate::pg_shared`), so that every daemon of the database answers for every job.
    shared_logs: Option<Arc<crate::pg_shared::SharedLogs>>,
}

impl Service {
    /// Opens the store, recovers, and starts the engine thread, scheduler, report pump and
    /// probe. Must run inside a tokio runtime.
    pub async fn start(config: DaemonConfig) -> Result<Arc<Service>, String> {
        let handlers = Handlers::builtin();
        let job_types = JobTypes {
            all: handlers.job_types().map(str::to_owned).collect(),
            instant: handlers.instant_job_types().map(str::to_owned).collect(),
        };
        let engine_config = engine_config(&config, &job_types, &config.file);
        let started = Instant::now();
        let seed = random_seed();
        info!(seed, workers = config.workers, "engine starting");
        let engine = Engine::new(engine_config, Box::new(UuidIds), Box::new(SplitMix64::new(seed)));
        let clock = Arc::new(crate::clock_state::resume(&config.home));
        let engine_clock = Arc::clone(&clock) as Arc<dyn Clock + Send + Sync>;
        let cannot_start = |e: std::io::Error| format!("cannot start the writer: {e}");
        let mut shared_logs = None;
        // The server process of the writer's connection: the listener leaves out the
        // wake-ups of this daemon's own commits.
        let mut writer_pid = None;
        let (writer, reader, lease, listener) = match &config.store_url {
            // The URL may hold a password: errors name the store, never the URL.
            Some(url) => {
                // The `postgres` client is blocking: opened off the async threads.
                let open_url = url.clone();
                let (node, lease_ms) = (config.node_id.clone(), config.node_lease_ms);
                let (store, reader, lease, listener) = tokio::task::spawn_blocking(move || {
                    let url = open_url;
                    let open =
                        || PgStore::open(&url, &PgOptions::default()).map_err(|e| format!("the Postgres store: {e}"));
                    // The lease first: it takes the node id, so that restart recovery
                    // below ends only this node's attempts, of a daemon that is gone.
                    let lease = nodes::Lease::open(&url, &node, lease_ms, started)?;
                    let listener = PgListener::open(&url, &PgOptions::default())
                        .map_err(|e| format!("the Postgres store: {e}"))?;
                    Ok::<_, String>((open()?, open()?, lease, listener))
                })
                .await
                .map_err(|e| format!("opening the Postgres store: {e}"))??;
                let logs = crate::pg_shared::SharedLogs::start(url)
                    .map_err(|e| format!("cannot start the job log copier: {e}"))?;
                shared_logs = Some(Arc::new(logs));
                writer_pid = Some(store.backend_pid());
                let writer =
                    Writer::spawn(store, engine, engine_clock, WriterOptions::default()).map_err(cannot_start)?;
                (writer, StoreReader::Postgres(Some(Box::new(reader))), Some(lease), Some(listener))
            }
            None => {
                let options = SqliteOptions {
                    synchronous: if config.file.durable_commits { Synchronous::Full } else { Synchronous::Normal },
                    max_bytes: config.file.db_max_bytes,
                    ..SqliteOptions::default()
                };
                let store = SqliteStore::open(&config.db_path, &options)
                    .map_err(|e| format!("{}: {e}", config.db_path.display()))?;
                let writer =
                    Writer::spawn(store, engine, engine_clock, WriterOptions::default()).map_err(cannot_start)?;
                let reader = writer.open_reader(&options).map_err(|e| format!("{}: {e}", config.db_path.display()))?;
                (writer, StoreReader::Sqlite(Box::new(reader)), None, None)
            }
        };
        let exec_config = exec_config(&config, &config.file);
        let (report_sender, reports) = mpsc::unbounded_channel();
        let executor = TokioExecutor::new(tokio::runtime::Handle::current(), exec_config, handlers, report_sender);
        let (finished, _) = broadcast::channel(1024);
        let ui = Arc::new(crate::ui::Ui::new(config.workers));
        let service = Arc::new(Service {
            file: RwLock::new(config.file.clone()),
            reloading: tokio::sync::Mutex::new(()),
            job_types,
            maintenance_changed: Notify::new(),
            config,
            writer,
            reader: Mutex::new(reader),
            executor: Mutex::new(executor),
            clock,
            metrics: crate::metrics::Metrics::default(),
            next_wake_ms: AtomicU64::new(u64::MAX),
            poke: Notify::new(),
            finished,
            ui,
            started,
            lease,
            system: Mutex::new((SystemState::UNKNOWN, 0)),
            stopping: AtomicBool::new(false),
            abandoning: AtomicBool::new(false),
            wall_offset_sent_ms: std::sync::atomic::AtomicI64::new(i64::MIN),
            shared_logs,
        });
        let recovered = service.submit(Input::Recover).await.map_err(|e| format!("restart recovery failed: {e}"))?;
        info!(reply = ?recovered.reply, "recovered");
        service.apply(&recovered);
        service.follow_wall_clock().await;
        service.probe_once(&mut ProcProbe::default()).await;
        tokio::spawn(Arc::clone(&service).schedule());
        tokio::spawn(Arc::clone(&service).pump_reports(reports));
        tokio::spawn(Arc::clone(&service).probe());
        tokio::spawn(crate::clock_state::keep_saving(service.config.home.clone(), Arc::clone(&service.clock)));
        tokio::spawn(Arc::clone(&service).maintain());
        if service.lease.is_some() {
            let keeper = Arc::clone(&service);
            std::thread::Builder::new()
                .name("semantica-lease".into())
                .spawn(move || keeper.keep_lease())
                .map_err(|e| format!("cannot start the lease thread: {e}"))?;
        }
        if let (Some(listener), Some(url)) = (listener, service.config.store_url.clone()) {
            let listening = Arc::clone(&service);
            std::thread::Builder::new()
                .name("semantica-listen".into())
                .spawn(move || listening.listen(url, listener, writer_pid))
                .map_err(|e| format!("cannot start the wake-up listener: {e}"))?;
        }
        Ok(service)
    }

    /// `config.toml` as last loaded.
    pub fn file_config(&self) -> FileConfig {
        self.file.read().expect("config lock").clone()
    }

    /// Reads `config.toml` again and applies what can change while running: queue
    /// limits and throttle (the engine, then the scheduler claims at once), the
    /// subprocess environment, kill grace and log cap (attempts started from now on),
    /// retention and its interval, and the shutdown grace. Keys read only at start are
    /// reported in `restart_required`. A file that does not parse changes nothing: the
    /// error names the file and the place.
    pub async fn reload(self: &Arc<Service>) -> Result<ConfigChanges, ReloadError> {
        let _one_at_a_time = self.reloading.lock().await;
        let path = self.config.home.join("config.toml");
        let file = read_file_config(&path).map_err(ReloadError::Invalid)?;
        let mut changes = self.file_config().changes(&file);
        // Keys read only at start differ from what runs until the next start, however
        // many reloads come between.
        changes.restart_required = self.config.file.changes(&file).restart_required;
        let engine_config = engine_config(&self.config, &self.job_types, &file);
        self.writer.reconfigure_async(engine_config).await.map_err(|_| ReloadError::EngineGone)?;
        self.executor.lock().expect("executor lock").reconfigure(exec_config(&self.config, &file));
        *self.file.write().expect("config lock") = file;
        // A raised limit starts jobs now, not at the scheduler's next round.
        self.poke.notify_one();
        self.maintenance_changed.notify_one();
        Ok(changes)
    }

    /// Removes terminal jobs that ended before the retention period, with their logs and
    /// run directories, in rounds of `PURGE_ROUND_MAX` jobs, each its own step.
    pub async fn purge_expired(self: &Arc<Service>) -> Result<Purged, ServiceError> {
        let retention_ms = self.file_config().retention().as_millis() as u64;
        let cutoff_ms = self.clock.now_ms().saturating_sub(retention_ms);
        let mut purged = Purged::default();
        for _ in 0..PURGE_ROUNDS_MAX {
            let step = self.run(Input::Purge { finished_before_ms: cutoff_ms, limit: PURGE_ROUND_MAX }).await?;
            let Reply::Purged { job_ids } = step.reply else {
                unreachable!("a purge answers Purged, got {:?}", step.reply)
            };
            assert!(job_ids.len() <= PURGE_ROUND_MAX, "a purge round took {} jobs", job_ids.len());
            purged.jobs += job_ids.len() as u64;
            for id in &job_ids {
                if std::fs::remove_file(self.log_path(*id)).is_ok() {
                    purged.logs += 1;
                }
                let _ = std::fs::remove_dir_all(self.config.runs_dir().join(id.to_string()));
            }
            if job_ids.len() < PURGE_ROUND_MAX {
                break;
            }
        }
        Ok(purged)
    }

    /// Automatic retention (API.md): a purge every `maintenance_interval_seconds`, the
    /// first one interval after start. A reload moves the next purge to one new interval
    /// after the last (so that reloads more frequent than the interval do not put it off
    /// for ever).
    async fn maintain(self: Arc<Service>) {
        let mut last_run = tokio::time::Instant::now();
        while !self.stopping.load(Ordering::Acquire) {
            let due = last_run + self.file_config().maintenance_interval();
            tokio::select! {
                _ = tokio::time::sleep_until(due) => {}
                _ = self.maintenance_changed.notified() => continue,
            }
            if self.stopping.load(Ordering::Acquire) {
                return;
            }
            last_run = tokio::time::Instant::now();
            match self.purge_expired().await {
                Ok(purged) if purged.jobs > 0 => {
                    info!(jobs = purged.jobs, logs = purged.logs, "retention removed finished jobs")
                }
                Ok(_) => {}
                Err(error) => warn!(%error, "retention could not purge; trying again next interval"),
            }
        }
    }

    /// Runs one input through the writer: decided and committed, with its group.
    pub async fn submit(&self, input: Input) -> Result<Step, ServiceError> {
        self.writer.submit_async(input).await.map_err(|error| match error {
            WriteError::Store(error) => ServiceError::Store(error),
            _ => ServiceError::EngineGone,
        })
    }

    /// `submit`, then carry out the step's actions. Runs as its own task: a caller that
    /// goes away (a client hanging up) must not drop a committed step's spawns and kills.
    pub async fn run(self: &Arc<Service>, input: Input) -> Result<Step, ServiceError> {
        let service = Arc::clone(self);
        tokio::spawn(async move {
            let step = service.submit(input).await?;
            service.apply(&step);
            Ok(step)
        })
        .await
        .map_err(|_| ServiceError::EngineGone)?
    }

    /// `run` for a client's request: refused with [`ServiceError::Busy`] instead of
    /// waiting when the writer's queue is full, so that back-pressure reaches the client.
    pub async fn run_request(self: &Arc<Service>, input: Input) -> Result<Step, ServiceError> {
        let pending = self.writer.try_submit(input).map_err(|error| match error {
            WriteError::QueueFull => ServiceError::Busy,
            WriteError::Store(error) => ServiceError::Store(error),
            _ => ServiceError::EngineGone,
        })?;
        let service = Arc::clone(self);
        tokio::spawn(async move {
            let step = pending.wait_async().await.map_err(|error| match error {
                WriteError::Store(error) => ServiceError::Store(error),
                _ => ServiceError::EngineGone,
            })?;
            service.apply(&step);
            Ok(step)
        })
        .await
        .map_err(|_| ServiceError::EngineGone)?
    }

    /// Carries out a committed step: actions in order, then wake-ups and notices.
    fn apply(&self, step: &Step) {
        self.apply_then(step, step.may_claim);
    }

    /// `apply`, poking the scheduler to claim only when `claim_more` says so.
    fn apply_then(&self, step: &Step, claim_more: bool) {
        self.metrics.record_step(step, || self.clock.now_ms());
        crate::otel::record_step(step);
        for action in &step.actions {
            match action {
                Action::Spawn(job) => {
                    info!(job_id = %job.id, trace_id = %job.trace_id, attempt = job.attempts, job_type = %job.job_type, "job started");
                    if let Some(logs) = &self.shared_logs {
                        let log_max_bytes =
                            self.file_config().log_max_bytes.unwrap_or(ExecConfig::DEFAULT_LOG_MAX_BYTES);
                        logs.start_copying(job.id, self.log_path(job.id), log_max_bytes);
                    }
                    self.executor.lock().expect("executor lock").spawn(job);
                }
                Action::Kill(order) => {
                    // Another daemon's run: its processes are on its machine, and it stops
                    // them when it sees the attempt ended (`reap_ended_elsewhere`).
                    let elsewhere = step.written().any(|job| {
                        job.id == order.job_id && job.node.as_ref().is_some_and(|node| *node != self.config.node_id)
                    });
                    if elsewhere {
                        info!(job_id = %order.job_id, attempt = order.attempt, "job ended; its daemon stops it");
                        continue;
                    }
                    info!(job_id = %order.job_id, attempt = order.attempt, "stopping job");
                    self.executor.lock().expect("executor lock").kill(order);
                }
            }
        }
        let (mut done, mut failed) = (0, 0);
        for job in step.written().filter(|job| job.state.is_terminal()) {
            info!(job_id = %job.id, trace_id = %job.trace_id, state = %job.state, "job ended");
            let _ = self.finished.send(job.id);
            if job.state == semantica_core::JobState::Done {
                done += 1;
            } else {
                failed += 1;
            }
        }
        self.ui.throughput.record(done, failed);
        if let Some(wake_ms) = step.wake_at_ms {
            if self.next_wake_ms.fetch_min(wake_ms, Ordering::AcqRel) > wake_ms {
                self.poke.notify_one();
            }
        }
        if claim_more {
            self.poke.notify_one();
        }
    }

    /// Tells the engine when the wall clock moved against engine time (recurring slots,
    /// `schedule.at` and deadlines follow the wall clock; see `semantica_adapters::clock`).
    async fn follow_wall_clock(&self) {
        let offset_ms = self.clock.offset_ms();
        if offset_ms == self.wall_offset_sent_ms.load(Ordering::Acquire) {
            return;
        }
        match self.submit(Input::WallClock { offset_ms }).await {
            Ok(step) => {
                info!(offset_ms, "the wall clock moved against engine time");
                self.wall_offset_sent_ms.store(offset_ms, Ordering::Release);
                self.apply(&step);
            }
            Err(error) => warn!(%error, "cannot pass on the wall clock's offset; trying again shortly"),
        }
    }

    /// Turns due wake-ups into `Tick` and free workers into `Claim`, until shutdown.
    async fn schedule(self: Arc<Service>) {
        while !self.stopping.load(Ordering::Acquire) {
            self.follow_wall_clock().await;
            self.claim_all().await;
            let now_ms = self.clock.now_ms();
            let wake_ms = self.next_wake_ms.load(Ordering::Acquire);
            if wake_ms <= now_ms {
                self.next_wake_ms.store(u64::MAX, Ordering::Release);
                match self.run(Input::Tick).await {
                    Ok(_) => continue,
                    Err(error) => warn!(%error, "tick failed; trying again shortly"),
                }
                self.next_wake_ms.fetch_min(now_ms + 100, Ordering::AcqRel);
            }
            let until_wake = Duration::from_millis(wake_ms.saturating_sub(now_ms));
            tokio::select! {
                _ = tokio::time::sleep(until_wake.min(SCHEDULER_IDLE_MAX)) => {}
                _ = self.poke.notified() => {}
            }
        }
    }

    /// Claims until nothing more can start: one `ClaimBatch` step per round starts as
    /// many jobs as it may (the engine stops at the free slots; an instant job frees its
    /// slot in the same step, so a round may start and end up to `CLAIM_BATCH_MAX` of
    /// them), and a round that started fewer than it asked for was the last.
    async fn claim_all(self: &Arc<Service>) {
        let max = limits::CLAIM_BATCH_MAX;
        let mut claims = 0;
        while claims < CLAIMS_PER_ROUND_MAX {
            if self.stopping.load(Ordering::Acquire) || !self.lease_holds() {
                return;
            }
            let step = match self.writer.submit_async(Input::ClaimBatch { queue: None, max }).await {
                Ok(step) => step,
                Err(error) => {
                    warn!(%error, "claim failed");
                    return;
                }
            };
            self.apply(&step);
            let started = match &step.reply {
                Reply::ClaimedBatch(claimed) => claimed.len(),
                _ => 0,
            };
            claims += started.max(1);
            if started < max {
                return;
            }
        }
    }

    /// Feeds executor reports to the engine, as many as are waiting queued back to back
    /// so that they share one transaction. A report must not be lost to a store error (a
    /// full disk may last): a failed one is retried, at most a second apart, until it is
    /// recorded or the daemon stops. Dropping it would leave its job RUNNING and its
    /// worker slot taken until the next restart.
    ///
    /// Reports are queued as they come, while earlier batches are still being committed
    /// (up to `REPORT_BATCHES_IN_FLIGHT` of them): the writer then finds the next batch
    /// waiting when it ends a transaction, and batches that arrive during one commit share
    /// the next. Waiting for each batch's commit before queueing the next left the writer
    /// idle for a hand-off between every two transactions, one job each.
    async fn pump_reports(self: Arc<Service>, mut reports: mpsc::UnboundedReceiver<Report>) {
        let mut batch = Vec::with_capacity(limits::REPORT_BATCH_MAX);
        let mut in_flight = tokio::task::JoinSet::new();
        while reports.recv_many(&mut batch, limits::REPORT_BATCH_MAX).await > 0 {
            if self.abandoning.load(Ordering::Acquire) {
                // Shutting down: runs stopped now stay RUNNING in the store, and restart
                // recovery treats them as the contract says.
                batch.clear();
                continue;
            }
            let ended = batch.iter().filter(|report| matches!(report, Report::Finished { .. })).count();
            if let Some(logs) = &self.shared_logs {
                // Copied whole and sealed soon; readers wait for the seal, not the end.
                logs.ended(
                    batch
                        .iter()
                        .filter_map(|report| match report {
                            Report::Finished { job_id, attempt, .. } => Some((*job_id, *attempt)),
                            _ => None,
                        })
                        .collect(),
                );
            }
            // All of them in one engine step (one savepoint, one write set).
            let reports: Vec<Report> = std::mem::take(&mut batch);
            let input = if reports.len() == 1 {
                Input::Report(reports[0].clone())
            } else {
                Input::ReportBatch(reports.clone())
            };
            let queued = self.writer.queue_async(input).await;
            // A claim for each slot the reports free, in the same transaction: the next
            // job starts without waiting for the scheduler's round (and its own commit).
            let claim_max = ended.min(limits::CLAIM_BATCH_MAX);
            let mut claim = None;
            if ended > 0 && !self.stopping.load(Ordering::Acquire) && self.lease_holds() {
                let input = Input::ClaimBatch { queue: None, max: claim_max };
                claim = self.writer.queue_async(input).await.ok();
            }
            in_flight.spawn(Arc::clone(&self).settle_reports(reports, queued, claim, claim_max));
            while in_flight.len() >= REPORT_BATCHES_IN_FLIGHT {
                if let Some(Ok(WriterGone(true))) = in_flight.join_next().await {
                    return;
                }
            }
            while let Some(done) = in_flight.try_join_next() {
                if let Ok(WriterGone(true)) = done {
                    return;
                }
            }
        }
        while in_flight.join_next().await.is_some() {}
    }

    /// Waits for one batch of `pump_reports` and carries out what it decided: the
    /// reports' step, then the claim queued behind them (whatever happened to the
    /// reports: a claim that committed started a job, and its spawn must be carried out).
    async fn settle_reports(
        self: Arc<Service>,
        reports: Vec<Report>,
        queued: Result<Pending, WriteError>,
        claim: Option<Pending>,
        claim_max: usize,
    ) -> WriterGone {
        let result = match queued {
            Ok(pending) => pending.wait_async().await,
            Err(error) => Err(error),
        };
        let mut gone = false;
        match result {
            // The claim queued behind the reports sees what they freed: the scheduler need
            // not look as well, unless that claim took all it asked for.
            Ok(step) => self.apply_then(&step, step.may_claim && claim.is_none()),
            // Nothing of the batch was written: each is retried on its own.
            Err(WriteError::Store(_)) => {
                for report in reports {
                    self.record_report(report).await;
                }
            }
            Err(_) => gone = true,
        }
        if let Some(pending) = claim {
            // A failed claim is no loss: the scheduler claims again when poked.
            if let Ok(step) = pending.wait_async().await {
                let full = match &step.reply {
                    Reply::ClaimedBatch(claimed) => claimed.len() >= claim_max,
                    _ => true,
                };
                self.apply_then(&step, step.may_claim || full);
            }
        }
        WriterGone(gone)
    }

    /// One report, retried until it is recorded (see `pump_reports`).
    async fn record_report(self: &Arc<Service>, report: Report) {
        let mut attempt = 0u32;
        while !self.abandoning.load(Ordering::Acquire) {
            match self.run(Input::Report(report.clone())).await {
                Ok(_) => return,
                Err(ServiceError::EngineGone) => return,
                Err(error) => {
                    if attempt % 20 == 0 {
                        warn!(%error, attempt, "report not recorded yet; retrying");
                    }
                    attempt += 1;
                    tokio::time::sleep(REPORT_RETRY_MAX.min(Duration::from_millis(50) * attempt)).await;
                }
            }
        }
    }

    async fn probe(self: Arc<Service>) {
        let mut probe = ProcProbe::default();
        while !self.stopping.load(Ordering::Acquire) {
            tokio::time::sleep(PROBE_INTERVAL).await;
            self.probe_once(&mut probe).await;
        }
    }

    async fn probe_once(self: &Arc<Service>, probe: &mut ProcProbe) {
        let sample = probe.sample();
        let changed = {
            let mut system = self.system.lock().expect("system lock");
            let changed = system.0 != sample;
            *system = (sample, probe.memory_used_percent);
            changed
        };
        if changed {
            if let Err(error) = self.run(Input::SystemChanged(sample)).await {
                warn!(%error, "system change not recorded");
                // Forget it, so that the next sample is sent again.
                self.system.lock().expect("system lock").0 = SystemState::UNKNOWN;
            }
        }
    }

    /// A read on the reader connection, off the async threads.
    pub async fn read<T: Send + 'static>(
        self: &Arc<Service>,
        read: impl FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, ServiceError> {
        let service = Arc::clone(self);
        tokio::task::spawn_blocking(move || read(service.reader.lock().expect("reader lock").store()))
            .await
            .map_err(|_| ServiceError::EngineGone)?
            .map_err(ServiceError::Store)
    }

    pub async fn get(self: &Arc<Service>, id: JobId) -> Result<Option<Job>, ServiceError> {
        self.read(move |store| store.get(id)).await
    }

    /// Resolves when `id` may have ended (or after `timeout`); the caller reads it again.
    pub fn subscribe_finished(&self) -> broadcast::Receiver<JobId> {
        self.finished.subscribe()
    }

    pub fn log_path(&self, id: JobId) -> PathBuf {
        self.config.logs_dir().join(format!("{id}.log"))
    }

    /// The chunk of `job`'s log at `offset` (`logs.tail.v1`, `logs.follow.v1`): from the
    /// log file here on SQLite, from the database on Postgres (whichever daemon ran it),
    /// and whether the log is whole once the job is terminal (on Postgres: its last
    /// attempt's log is sealed, or the job ended `SEAL_WAIT_MS` ago).
    pub async fn read_log(
        self: &Arc<Service>,
        job: &Job,
        offset: u64,
        limit_bytes: u64,
    ) -> Result<(semantica_adapters::logs::Chunk, bool), String> {
        let (id, attempts) = (job.id, job.attempts);
        let ended_long_ago =
            job.finished_at_ms.is_some_and(|finished| self.clock.now_ms() > finished + crate::pg_shared::SEAL_WAIT_MS);
        let path = self.log_path(id);
        let shared = self.shared_logs.clone();
        let (chunk, sealed) = tokio::task::spawn_blocking(move || match shared {
            Some(logs) => logs.read(id, attempts, &path, offset, limit_bytes),
            None => semantica_adapters::logs::read_chunk(&path, offset, limit_bytes)
                .map(|chunk| (chunk, true))
                .map_err(|e| e.to_string()),
        })
        .await
        .map_err(|e| e.to_string())??;
        Ok((chunk, sealed || ended_long_ago))
    }

    pub fn system(&self) -> (SystemState, u32) {
        *self.system.lock().expect("system lock")
    }

    /// How long the writer's group commits took (`semantica_store_commit_seconds`).
    pub fn commit_seconds(&self) -> semantica_adapters::histogram::HistogramReading {
        self.writer.commit_seconds()
    }

    /// The nodes sharing the store with their leases (Postgres), or `None` on SQLite.
    pub async fn nodes(self: &Arc<Service>) -> Option<Result<Vec<semantica_adapters::NodeLease>, String>> {
        self.lease.as_ref()?;
        let service = Arc::clone(self);
        let read = tokio::task::spawn_blocking(move || service.lease.as_ref().expect("checked").nodes()).await;
        Some(read.unwrap_or_else(|e| Err(e.to_string())))
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Stops claiming, gives running jobs `grace` to finish, then stops the rest. Their
    /// ends are not recorded: they stay RUNNING and restart recovery decides.
    pub async fn shutdown(&self, grace: Duration) {
        self.stopping.store(true, Ordering::Release);
        crate::clock_state::save(&self.config.home, &self.clock);
        self.poke.notify_one();
        let deadline = Instant::now() + grace;
        while self.executor.lock().expect("executor lock").running_count() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let left = self.executor.lock().expect("executor lock").running_count();
        if left > 0 {
            warn!(left, "stopping jobs still running at shutdown");
            self.abandoning.store(true, Ordering::Release);
            self.executor.lock().expect("executor lock").stop_all();
            let deadline = Instant::now() + self.file_config().kill_grace() + Duration::from_secs(1);
            while self.executor.lock().expect("executor lock").running_count() > 0 && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}
