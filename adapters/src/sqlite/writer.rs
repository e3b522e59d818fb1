//! The writer: one thread that owns the write connection and the engine, and commits many
//! engine steps per SQLite transaction (group commit).
//!
//! **Promises.** A caller's [`Step`] comes back only after the transaction holding its
//! writes has committed; a caller that gets an error had nothing written. Steps are
//! decided one after another, in the order the writer took them from its queue, each
//! reading what the steps before it wrote (also within a batch), so a claim is atomic,
//! follows the engine's pop order and never hands one job to two callers. One step that
//! fails (a read error, a write refused) fails alone: its writes are undone and the rest
//! of the batch commits. A batch whose transaction is lost (the `COMMIT` fails, or SQLite
//! rolls the whole transaction back) fails for every caller in it, and the engine's
//! memory goes back to what it was before the batch.
//!
//! **Limits.** At most `batch_max` steps per transaction, at most `wait_max` spent waiting
//! for more after the first, and at most `queue_max` inputs waiting: a full queue makes
//! [`WriterHandle::submit`] wait and [`WriterHandle::try_submit`] refuse.
//!
//! **Never.** No rule of the engine lives here, and nothing else writes through this
//! store while the writer runs; readers use connections of their own ([`Reader`]).
//!
//! The store is any [`GroupCommitStore`]: SQLite's, or Postgres' (`crate::postgres`),
//! whose transactions and savepoints the writer drives the same way.

use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use semantica_core::{Clock, Config, Engine, Input, Memory, Reply, Step, Store, StoreError, SystemState, WriteSet};
use tokio::sync::{mpsc, oneshot};

use crate::histogram::{AtomicHistogram, HistogramReading};

use super::{store_error, OpenError, SqliteOptions, SqliteStore};

/// A statement of the writer's transaction control.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    /// Open the batch's transaction (taking the write lock at once where the store has one).
    Begin,
    /// A savepoint around one step's writes.
    Savepoint,
    Release,
    /// Undo the step's writes; the transaction goes on.
    RollbackToSavepoint,
    Commit,
    Rollback,
}

/// What the writer needs of a store beyond [`Store`]: one connection whose transaction
/// and savepoints it opens and closes itself, and the writes of a step applied inside
/// them.
pub trait GroupCommitStore: Store + Send + 'static {
    /// Whether a transaction is open and can still be committed or rolled back to a
    /// savepoint. `false` after the store has lost it (SQLite rolls back on a full disk;
    /// Postgres aborts a transaction whose statement failed outside a savepoint).
    fn in_transaction(&self) -> bool;

    /// Runs one transaction-control statement.
    fn control(&self, control: Control) -> Result<(), StoreError>;

    /// The writes of one step, inside the transaction and savepoint the writer holds.
    fn apply_within(&self, writes: &WriteSet) -> Result<(), StoreError>;

    /// Work beside the writer for as long as it runs (SQLite's checkpointer); dropped
    /// when the writer ends.
    fn start_companion(&self) -> std::io::Result<Box<dyn Send>>;

    /// The database file, for [`WriterHandle::open_reader`]; `None` for a server.
    fn file(&self) -> Option<PathBuf>;

    /// Other writers (daemons) share the store, so a step's versioned write may be
    /// refused with [`StoreError::Conflict`] by their commits: the writer then decides
    /// the same input again on fresh reads, in a transaction of its own after the batch,
    /// up to [`CONFLICT_RETRIES_MAX`] times.
    fn shared(&self) -> bool {
        false
    }

    /// Told once, before the first step, that the writer is now the only connection that
    /// writes: a store may then keep up to `cache_bytes` of committed jobs in memory
    /// (SQLite's does, see `cache.rs`). A store shared with other writers ignores it.
    fn become_only_writer(&mut self, cache_bytes: usize) {
        let _ = cache_bytes;
    }
}

impl GroupCommitStore for SqliteStore {
    fn in_transaction(&self) -> bool {
        !self.connection().is_autocommit()
    }

    fn control(&self, control: Control) -> Result<(), StoreError> {
        if control == Control::Rollback && self.connection().is_autocommit() {
            // SQLite rolled the transaction back itself (a full disk, an I/O error): the
            // cache forgets its writes all the same, before the next transaction begins.
            self.settle_cache();
            return Ok(());
        }
        let sql = match control {
            Control::Begin => "BEGIN IMMEDIATE",
            Control::Savepoint => "SAVEPOINT step",
            Control::Release => "RELEASE step",
            Control::RollbackToSavepoint => "ROLLBACK TO step",
            Control::Commit => "COMMIT",
            Control::Rollback => "ROLLBACK",
        };
        let done = self.connection().prepare_cached(sql).and_then(|mut statement| statement.execute([]));
        // The cache of committed jobs takes in the transaction's writes only once it has
        // committed (a step undone to its savepoint was forgotten by the store already).
        match control {
            Control::Commit => self.transaction_ended(done.is_ok()),
            Control::Rollback => self.transaction_ended(false),
            _ => {}
        }
        done.map_err(store_error)?;
        Ok(())
    }

    fn apply_within(&self, writes: &WriteSet) -> Result<(), StoreError> {
        SqliteStore::apply_within(self, writes)
    }

    fn start_companion(&self) -> std::io::Result<Box<dyn Send>> {
        Ok(Box::new(Checkpointer::spawn(self.path(), self)?))
    }

    fn file(&self) -> Option<PathBuf> {
        Some(self.path().to_path_buf())
    }

    fn become_only_writer(&mut self, cache_bytes: usize) {
        if cache_bytes > 0 {
            self.enable_cache(cache_bytes);
            // Like a debug assertion: in debug builds (every test of the daemon) each
            // answer of the cache is checked against the file.
            self.verify_cache(cfg!(debug_assertions));
        }
    }
}

/// The writer's limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriterOptions {
    /// Steps committed in one transaction at most.
    pub batch_max: usize,
    /// How long to wait for more inputs once the first of a batch is in. Zero takes only
    /// what is already queued: batches then grow only while a commit is under way.
    pub wait_max: Duration,
    /// Inputs waiting for the writer at most (back-pressure).
    pub queue_max: usize,
    /// Bytes of committed jobs the writer's store may keep decoded (see `cache.rs`); 0:
    /// none.
    pub cache_bytes: usize,
}

impl WriterOptions {
    pub const BATCH_MAX_LIMIT: usize = 10_000;
    pub const QUEUE_MAX_LIMIT: usize = 1_000_000;
    pub const WAIT_MAX_LIMIT: Duration = Duration::from_secs(10);
}

impl Default for WriterOptions {
    fn default() -> WriterOptions {
        WriterOptions { batch_max: 256, wait_max: Duration::ZERO, queue_max: 4_096, cache_bytes: 4 << 20 }
    }
}

/// Why an input got no step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteError {
    /// The store failed; nothing of this input was written. Wire code 5001.
    Store(StoreError),
    /// The writer has stopped (shut down, or it panicked); the input may not have been
    /// taken. Wire code 5000.
    Closed,
    /// [`WriterHandle::try_submit`] found the queue full; nothing was taken. Wire code
    /// 4003 (back-pressure).
    QueueFull,
    /// Restart recovery has not committed yet: `Input::Recover` must come first (again,
    /// if the batch that held it failed). Nothing was taken. Wire code 5000.
    NotRecovered,
}

impl std::fmt::Display for WriteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WriteError::Store(error) => write!(f, "{error}"),
            WriteError::Closed => write!(f, "the writer has stopped"),
            WriteError::QueueFull => write!(f, "the writer's queue is full"),
            WriteError::NotRecovered => write!(f, "restart recovery has not been committed yet"),
        }
    }
}

impl std::error::Error for WriteError {}

/// Counters of what the writer committed, for tests and stats.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Transactions committed.
    pub batches: u64,
    /// Steps answered with `Ok` (committed).
    pub steps: u64,
    /// Transactions lost as a whole (their `COMMIT` failed or SQLite rolled them back).
    pub batches_failed: u64,
    /// Steps decided again after another daemon's commit refused them (`Conflict`).
    pub conflict_retries: u64,
    /// Transactions begun again after a step's writes failed, with the batch's steps
    /// before it written again (a store without savepoints per step: SQLite's).
    pub rewrites: u64,
}

/// Times one step refused with `Conflict` on a shared store is decided again, each time
/// in a new transaction after the one it failed in: 60 enqueues of one subject on three
/// daemons at once needed more than 4 (`daemon/tests/multi_daemon.rs`).
pub const CONFLICT_RETRIES_MAX: u32 = 16;

/// Starts the writer thread.
pub struct Writer;

impl Writer {
    /// Starts one thread that owns `store` (the write connection) and `engine`, which must
    /// be new (it has handled no input): the first input submitted must be
    /// `Input::Recover`. The thread ends once every handle is dropped and the queue is
    /// drained, or at [`WriterHandle::shutdown`].
    pub fn spawn<S: GroupCommitStore>(
        mut store: S,
        engine: Engine,
        clock: Arc<dyn Clock + Send + Sync>,
        options: WriterOptions,
    ) -> std::io::Result<WriterHandle> {
        assert!((1..=WriterOptions::BATCH_MAX_LIMIT).contains(&options.batch_max), "batch_max {}", options.batch_max);
        assert!((1..=WriterOptions::QUEUE_MAX_LIMIT).contains(&options.queue_max), "queue_max {}", options.queue_max);
        assert!(options.wait_max <= WriterOptions::WAIT_MAX_LIMIT, "wait_max {:?}", options.wait_max);
        assert!(!store.in_transaction(), "the writer's store is inside a transaction");
        store.become_only_writer(options.cache_bytes);
        // What can be checked of "new": a used engine has usually seen the system.
        assert_eq!(engine.system(), SystemState::UNKNOWN, "the writer needs an engine that has handled no input");
        // Only for the timed wait of `collect`: tokio's channel serves both blocking and
        // async callers, and its receiver needs a timer to wait with a deadline.
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build()?;
        let (sender, receiver) = mpsc::channel(options.queue_max);
        let stats = Arc::new(Counters::default());
        let path = store.file();
        let companion = store.start_companion()?;
        let thread = WriterThread {
            store,
            engine,
            clock,
            options,
            receiver,
            runtime,
            memory: Memory::default(),
            last_now_ms: 0,
            stats: Arc::clone(&stats),
            _companion: companion,
        };
        let join = std::thread::Builder::new().name("semantica-writer".into()).spawn(move || thread.run())?;
        Ok(WriterHandle { sender, join: Arc::new(Mutex::new(Some(join))), stats, path })
    }
}

/// A way to hand inputs to the writer. Cheap to clone; the writer stops once every clone
/// is dropped (after finishing what was queued).
#[derive(Clone)]
pub struct WriterHandle {
    sender: mpsc::Sender<Message>,
    join: Arc<Mutex<Option<JoinHandle<()>>>>,
    stats: Arc<Counters>,
    /// The database file (`None`: the store is a server).
    path: Option<PathBuf>,
}

impl std::fmt::Debug for WriterHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriterHandle").field("path", &self.path).field("stats", &self.stats()).finish()
    }
}

impl WriterHandle {
    /// Hands `input` to the writer and blocks until its transaction has committed (or
    /// failed). Waits for room while the queue is full. Must not be called from inside
    /// an async runtime (it panics there): use [`WriterHandle::submit_async`].
    pub fn submit(&self, input: Input) -> Result<Step, WriteError> {
        let (op, reply) = Op::new(input);
        self.sender.blocking_send(Message::Op(op)).map_err(|_| WriteError::Closed)?;
        Pending { reply }.wait()
    }

    /// [`WriterHandle::submit`] for async callers. Dropping the future before the writer
    /// takes the input withdraws it; dropping it later loses only the answer, not the step
    /// (a claim then started a job nobody was told about), so do not cancel a claim.
    pub async fn submit_async(&self, input: Input) -> Result<Step, WriteError> {
        let (op, reply) = Op::new(input);
        self.sender.send(Message::Op(op)).await.map_err(|_| WriteError::Closed)?;
        Pending { reply }.wait_async().await
    }

    /// Queues `input`, waiting for room, and returns without waiting for its commit:
    /// inputs queued back to back this way share a transaction (group commit).
    pub async fn queue_async(&self, input: Input) -> Result<Pending, WriteError> {
        let (op, reply) = Op::new(input);
        self.sender.send(Message::Op(op)).await.map_err(|_| WriteError::Closed)?;
        Ok(Pending { reply })
    }

    /// Queues `input` if there is room, else refuses it with [`WriteError::QueueFull`].
    pub fn try_submit(&self, input: Input) -> Result<Pending, WriteError> {
        let (op, reply) = Op::new(input);
        self.sender.try_send(Message::Op(op)).map_err(|error| match error {
            mpsc::error::TrySendError::Full(_) => WriteError::QueueFull,
            mpsc::error::TrySendError::Closed(_) => WriteError::Closed,
        })?;
        Ok(Pending { reply })
    }

    /// Replaces the engine's limits and throttle ([`Engine::reconfigure`]). Inputs queued
    /// before this call are decided under the old config and those queued after it under
    /// the new one; it returns once the engine has it. The job types must not change.
    pub async fn reconfigure_async(&self, config: Config) -> Result<(), WriteError> {
        let (done, answer) = oneshot::channel();
        self.sender.send(Message::Reconfigure(config, done)).await.map_err(|_| WriteError::Closed)?;
        answer.await.map_err(|_| WriteError::Closed)
    }

    /// [`WriterHandle::reconfigure_async`] for blocking callers (not inside a runtime).
    pub fn reconfigure(&self, config: Config) -> Result<(), WriteError> {
        let (done, answer) = oneshot::channel();
        self.sender.blocking_send(Message::Reconfigure(config, done)).map_err(|_| WriteError::Closed)?;
        answer.blocking_recv().map_err(|_| WriteError::Closed)
    }

    /// Opens a read-only connection to the writer's SQLite database. It sees every
    /// committed step and never blocks the writer (WAL).
    pub fn open_reader(&self, options: &SqliteOptions) -> Result<Reader, OpenError> {
        let path = self.path.as_ref().ok_or_else(|| OpenError::Unavailable("the writer's store is no file".into()))?;
        Reader::open(path, options)
    }

    /// The database file (`None`: the store is a server).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    pub fn stats(&self) -> WriterStats {
        self.stats.get()
    }

    /// How long the group commits' `COMMIT` statements took, since the writer started.
    pub fn commit_seconds(&self) -> HistogramReading {
        self.stats.commit_seconds.read()
    }

    /// Lets the writer finish what was queued before this call, stops it and waits for
    /// its thread; inputs queued after it get [`WriteError::Closed`]. Re-raises a panic of
    /// the writer thread. Blocking: from async code call it through `spawn_blocking`.
    pub fn shutdown(&self) {
        // A closed channel means the thread is ending anyway.
        let _ = self.sender.blocking_send(Message::Shutdown);
        let join = self.join.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
        if let Some(join) = join {
            if let Err(panic) = join.join() {
                std::panic::resume_unwind(panic);
            }
        }
    }
}

/// An input the writer has taken into its queue; its answer comes once its batch has
/// committed.
#[derive(Debug)]
pub struct Pending {
    reply: oneshot::Receiver<Result<Step, WriteError>>,
}

impl Pending {
    /// Blocks for the answer. Must not be called from inside an async runtime.
    pub fn wait(self) -> Result<Step, WriteError> {
        self.reply.blocking_recv().unwrap_or(Err(WriteError::Closed))
    }

    pub async fn wait_async(self) -> Result<Step, WriteError> {
        self.reply.await.unwrap_or(Err(WriteError::Closed))
    }
}

/// A read-only connection to the database: core's [`semantica_core::Store`] queries
/// through `Deref`, never a commit (it is not mutable, and SQLite refuses writes on it).
pub struct Reader {
    store: SqliteStore,
}

impl Reader {
    pub fn open(path: impl AsRef<Path>, options: &SqliteOptions) -> Result<Reader, OpenError> {
        let store = SqliteStore::open(path, options)?;
        // SQLite's default page cache (2 MiB) for readers: the writer's larger one is for
        // the claim and commit path, and a reader's scans (stats, queries) would only fill
        // a large one with pages read once.
        store
            .connection()
            .execute_batch("PRAGMA query_only = ON; PRAGMA cache_size = -2000")
            .map_err(|error| OpenError::Unavailable(format!("{}: {error}", store.path().display())))?;
        Ok(Reader { store })
    }
}

impl Deref for Reader {
    type Target = SqliteStore;

    fn deref(&self) -> &SqliteStore {
        &self.store
    }
}

// ---- the thread ------------------------------------------------------------------------

enum Message {
    Op(Op),
    /// Finish what came before, then give the engine this config and answer.
    Reconfigure(Config, oneshot::Sender<()>),
    /// Finish what came before, then stop.
    Shutdown,
}

/// What the writer does after the batch `collect` returned.
enum AfterBatch {
    Continue,
    Reconfigure(Config, oneshot::Sender<()>),
    Stop,
}

struct Op {
    input: Input,
    reply: oneshot::Sender<Result<Step, WriteError>>,
    /// Times this input was refused with `Conflict` and decided again.
    conflicts: u32,
}

impl Op {
    fn new(input: Input) -> (Op, oneshot::Receiver<Result<Step, WriteError>>) {
        let (reply, receiver) = oneshot::channel();
        (Op { input, reply, conflicts: 0 }, receiver)
    }

    fn answer(self, answer: Result<Step, WriteError>) {
        // The caller may have gone; the step (if any) happened all the same.
        let _ = self.reply.send(answer);
    }
}

#[derive(Default)]
struct Counters {
    batches: AtomicU64,
    steps: AtomicU64,
    batches_failed: AtomicU64,
    conflict_retries: AtomicU64,
    rewrites: AtomicU64,
    /// How long each group's `COMMIT` took (atomics only: the writer never waits on a reader).
    commit_seconds: AtomicHistogram,
}

impl Counters {
    fn get(&self) -> WriterStats {
        WriterStats {
            batches: self.batches.load(Ordering::Relaxed),
            steps: self.steps.load(Ordering::Relaxed),
            batches_failed: self.batches_failed.load(Ordering::Relaxed),
            conflict_retries: self.conflict_retries.load(Ordering::Relaxed),
            rewrites: self.rewrites.load(Ordering::Relaxed),
        }
    }
}

/// How one step failed.
enum StepError {
    /// This step alone: it was undone, the transaction goes on.
    Alone(WriteError),
    /// This step alone, but part of its writes may be in the transaction, which no
    /// savepoint marks: the transaction must be begun again with the writes of the
    /// batch's steps before it ([`WriterThread::rewrite`]).
    Rewrite(WriteError),
    /// The transaction is gone (SQLite rolled it back, or it could not be undone to the
    /// step's savepoint): every step of the batch fails.
    Batch(StoreError),
}

struct WriterThread<S: GroupCommitStore> {
    store: S,
    engine: Engine,
    clock: Arc<dyn Clock + Send + Sync>,
    options: WriterOptions,
    receiver: mpsc::Receiver<Message>,
    runtime: tokio::runtime::Runtime,
    /// The engine's memory: as of the last committed step between batches, as of the last
    /// step taken within one (the engine holds the same; `Engine` has no getter).
    memory: Memory,
    last_now_ms: u64,
    stats: Arc<Counters>,
    /// The store's companion (SQLite's checkpoint thread), stopped when the writer ends.
    _companion: Box<dyn Send>,
}

/// Copies the WAL back into the database file on a thread of its own, so that the
/// writer's commits never pay for it (SQLite's automatic checkpoint runs inside the
/// `COMMIT` that crosses the threshold: a tenth of the writer's time on a batch load).
/// The writer keeps SQLite's own checkpoint, at a far higher threshold, as the bound on
/// the WAL's size should this thread fall behind.
struct Checkpointer {
    stop: std::sync::mpsc::Sender<()>,
}

impl Checkpointer {
    /// How often the WAL is checkpointed (passive: it never waits for the writer).
    const INTERVAL: Duration = Duration::from_millis(200);
    /// The writer's own automatic checkpoint, in pages (64 MiB of 4 KiB pages).
    const WRITER_FALLBACK_PAGES: i64 = 16_384;

    fn spawn(path: &Path, store: &SqliteStore) -> std::io::Result<Checkpointer> {
        let io = |error: rusqlite::Error| std::io::Error::other(error.to_string());
        store.connection().pragma_update(None, "wal_autocheckpoint", Self::WRITER_FALLBACK_PAGES).map_err(io)?;
        let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let connection = rusqlite::Connection::open_with_flags(path, flags).map_err(io)?;
        connection.busy_timeout(Duration::from_millis(100)).map_err(io)?;
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        std::thread::Builder::new().name("semantica-checkpoint".into()).spawn(move || {
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(Self::INTERVAL) {
                // Best effort: a busy or failing checkpoint is tried again next round, and
                // the writer's own threshold bounds the WAL meanwhile.
                let _ = connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
            }
        })?;
        Ok(Checkpointer { stop })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        let _ = self.stop.send(());
    }
}

impl<S: GroupCommitStore> WriterThread<S> {
    fn run(mut self) {
        loop {
            let (batch, after) = self.collect();
            if !batch.is_empty() {
                self.write_batch(batch);
            }
            match after {
                AfterBatch::Continue => {}
                // Between batches: no transaction is open and no step is half decided.
                AfterBatch::Reconfigure(config, done) => {
                    self.engine.reconfigure(config);
                    let _ = done.send(());
                }
                AfterBatch::Stop => return,
            }
        }
    }

    /// The next batch: waits for a first input, then takes more until `batch_max` or
    /// `wait_max`, or up to a message that must wait for the batch (stop, reconfigure).
    fn collect(&mut self) -> (Vec<Op>, AfterBatch) {
        let WriterOptions { batch_max, wait_max, .. } = self.options;
        let receiver = &mut self.receiver;
        self.runtime.block_on(async move {
            let mut batch = Vec::new();
            let Some(mut message) = receiver.recv().await else { return (batch, AfterBatch::Stop) };
            let deadline = tokio::time::Instant::now() + wait_max;
            loop {
                match message {
                    Message::Shutdown => return (batch, AfterBatch::Stop),
                    Message::Reconfigure(config, done) => return (batch, AfterBatch::Reconfigure(config, done)),
                    Message::Op(op) => batch.push(op),
                }
                if batch.len() == batch_max {
                    return (batch, AfterBatch::Continue);
                }
                message = match receiver.try_recv() {
                    Ok(message) => message,
                    Err(mpsc::error::TryRecvError::Disconnected) => return (batch, AfterBatch::Stop),
                    Err(mpsc::error::TryRecvError::Empty) if wait_max.is_zero() => {
                        return (batch, AfterBatch::Continue)
                    }
                    Err(mpsc::error::TryRecvError::Empty) => {
                        match tokio::time::timeout_at(deadline, receiver.recv()).await {
                            Ok(Some(message)) => message,
                            Ok(None) => return (batch, AfterBatch::Stop),
                            Err(_elapsed) => return (batch, AfterBatch::Continue),
                        }
                    }
                };
            }
        })
    }

    /// One transaction: every step in order (each under its own savepoint on a shared
    /// store); answers only after `COMMIT`.
    fn write_batch(&mut self, batch: Vec<Op>) {
        assert!(!batch.is_empty() && batch.len() <= self.options.batch_max);
        // A caller that has gone before its input was taken withdrew it.
        let batch: Vec<Op> = batch.into_iter().filter(|op| !op.reply.is_closed()).collect();
        if batch.is_empty() {
            return;
        }
        if let Err(error) = self.begin() {
            for op in batch {
                op.answer(Err(WriteError::Store(error.clone())));
            }
            return;
        }
        let memory_before = self.memory.clone();
        let mut done: Vec<(Op, Step)> = Vec::with_capacity(batch.len());
        let mut lost: Option<StoreError> = None;
        // Steps another daemon's commit refused: decided again in a transaction of their
        // own once this one has ended. Not in this one: its earlier steps may hold the
        // very rows the other daemon waits for (a retry here deadlocks again).
        let mut again: Vec<Op> = Vec::new();
        let retries_max = if self.store.shared() { CONFLICT_RETRIES_MAX } else { 0 };
        for mut op in batch {
            if let Some(error) = &lost {
                op.answer(Err(WriteError::Store(error.clone())));
                continue;
            }
            let input = std::mem::replace(&mut op.input, Input::Tick);
            let retry = (op.conflicts < retries_max).then(|| input.clone());
            match self.write_step(input) {
                Err(StepError::Alone(WriteError::Store(StoreError::Conflict { .. }))) if retry.is_some() => {
                    op.input = retry.expect("checked");
                    op.conflicts += 1;
                    self.stats.conflict_retries.fetch_add(1, Ordering::Relaxed);
                    again.push(op);
                }
                Ok(step) => {
                    // The next step of this batch must see this one's memory (the first
                    // Recover lets everything else in); undone below if the batch fails.
                    self.engine.committed(&step);
                    self.memory = step.memory.clone();
                    done.push((op, step));
                }
                Err(StepError::Alone(error)) => op.answer(Err(error)),
                Err(StepError::Rewrite(error)) => {
                    op.answer(Err(error));
                    if let Err(error) = self.rewrite(&done) {
                        lost = Some(error);
                    }
                }
                Err(StepError::Batch(error)) => {
                    op.answer(Err(WriteError::Store(error.clone())));
                    lost = Some(error);
                }
            }
        }
        let committed = match lost {
            Some(error) => Err(error),
            None => self.commit(),
        };
        match committed {
            Ok(()) => {
                self.stats.batches.fetch_add(1, Ordering::Relaxed);
                self.stats.steps.fetch_add(done.len() as u64, Ordering::Relaxed);
                for (op, step) in done {
                    op.answer(Ok(step));
                }
            }
            Err(error) => {
                self.rollback();
                self.restore_memory(memory_before);
                self.stats.batches_failed.fetch_add(1, Ordering::Relaxed);
                for (op, _) in done {
                    op.answer(Err(WriteError::Store(error.clone())));
                }
            }
        }
        if !again.is_empty() {
            // Bounded: each op comes back at most `CONFLICT_RETRIES_MAX` times.
            self.write_batch(again);
        }
    }

    /// Decides one input and writes its step inside the open transaction.
    fn write_step(&mut self, input: Input) -> Result<Step, StepError> {
        assert!(self.store.in_transaction(), "a step outside the batch's transaction");
        // The engine asserts this; one caller's mistake must not stop the writer for all.
        if !self.recovered() && input != Input::Recover {
            return Err(StepError::Alone(WriteError::NotRecovered));
        }
        let now_ms = self.now_ms();
        let step = self.engine.handle(now_ms, input, &self.store).map_err(|error| self.step_failed(error))?;
        if step.persist.is_empty() {
            return Ok(step);
        }
        if !self.store.shared() {
            // No savepoint, nor SQLite's copy of every page a step changes that one costs
            // (a quarter of the writer's instructions at 16 enqueues per transaction): a
            // step whose writes fail is rare, and then the transaction is begun again
            // with the steps before it.
            // Not on a shared store (Postgres): there a failed statement aborts the whole
            // transaction unless a savepoint holds it, and a conflict must stay a conflict
            // of the step alone (decided again).
            return match self.store.apply_within(&step.persist) {
                Ok(()) => Ok(step),
                Err(error) if !self.store.in_transaction() => Err(StepError::Batch(error)),
                Err(error) => Err(StepError::Rewrite(WriteError::Store(error))),
            };
        }
        self.store.control(Control::Savepoint).map_err(|error| self.step_failed(error))?;
        match self.store.apply_within(&step.persist) {
            Ok(()) => {
                self.store.control(Control::Release).map_err(StepError::Batch)?;
                Ok(step)
            }
            Err(error) => {
                // Nothing of the step may stay in the batch.
                if !self.store.in_transaction() {
                    return Err(StepError::Batch(error));
                }
                self.store.control(Control::RollbackToSavepoint).map_err(StepError::Batch)?;
                self.store.control(Control::Release).map_err(StepError::Batch)?;
                Err(StepError::Alone(WriteError::Store(error)))
            }
        }
    }

    /// A failed read or write fails the step alone, unless SQLite took the whole
    /// transaction with it (it may, on a full disk, an I/O error or out of memory).
    fn step_failed(&self, error: StoreError) -> StepError {
        if !self.store.in_transaction() {
            StepError::Batch(error)
        } else {
            StepError::Alone(WriteError::Store(error))
        }
    }

    /// A new engine's memory is the default one until Recover commits; Recover changes it
    /// for good (and nothing may come before Recover), so "not default" means recovered.
    fn recovered(&self) -> bool {
        self.memory != Memory::default()
    }

    fn now_ms(&mut self) -> u64 {
        // The engine asserts monotonic time; a clock that stepped back must not trip it.
        self.last_now_ms = self.last_now_ms.max(self.clock.now_ms());
        self.last_now_ms
    }

    /// Puts the engine's memory back to what it was before a batch that failed.
    fn restore_memory(&mut self, memory: Memory) {
        let restore = Step {
            persist: WriteSet::default(),
            reply: Reply::Accepted,
            actions: Vec::new(),
            wake_at_ms: None,
            may_claim: false,
            written_from: Vec::new(),
            memory: memory.clone(),
        };
        self.engine.committed(&restore);
        self.memory = memory;
    }

    fn begin(&mut self) -> Result<(), StoreError> {
        // Left open by a rollback that failed (or lost but not ended, on Postgres): try
        // once more before giving up.
        self.rollback();
        self.store.control(Control::Begin)
    }

    /// Undoes a step whose writes failed part way: rolls the transaction back and writes
    /// the steps of the batch decided before it again. They were written on the same
    /// state before, and the store forgets a rolled-back transaction's writes (its cache
    /// of committed jobs included), so they write the same rows again.
    fn rewrite(&mut self, done: &[(Op, Step)]) -> Result<(), StoreError> {
        self.begin()?;
        self.stats.rewrites.fetch_add(1, Ordering::Relaxed);
        done.iter()
            .filter(|(_, step)| !step.persist.is_empty())
            .try_for_each(|(_, step)| self.store.apply_within(&step.persist))
    }

    fn commit(&mut self) -> Result<(), StoreError> {
        let started = std::time::Instant::now();
        self.store.control(Control::Commit)?;
        self.stats.commit_seconds.record(started.elapsed());
        assert!(!self.store.in_transaction(), "COMMIT succeeded but the transaction is open");
        Ok(())
    }

    fn rollback(&mut self) {
        // Best effort: a failed ROLLBACK leaves the transaction open and the next batch's
        // `begin` tries again; nothing of it was acknowledged. Unconditional: a store
        // may hold a transaction it can no longer commit (`in_transaction` is false).
        let _ = self.store.control(Control::Rollback);
    }
}
