//! The real SQLite store as a simulator backend, on a file in a temporary directory.
//!
//! **Promises.** The store only stores: ids, sequence numbers and times all come from the
//! engine and the simulated clock, so a run on SQLite has the same trace, byte for byte,
//! as the same seed on `MemStore`. A simulated crash ([`Backend::reopen`]) leaves the
//! files exactly as a killed process would (the database and its write-ahead log, no
//! clean close, no checkpoint, no shared-memory index), and the store reopens from them
//! through SQLite's own recovery: only committed transactions may come back.
//!
//! **Never.** Nothing of the file system reaches the trace: the temporary directory's
//! name is random, so it must not appear in anything the simulator records. The
//! directory and everything in it are removed when the backend is dropped (also after a
//! panic of the run, which `run` catches).

use std::path::{Path, PathBuf};

use semantica_adapters::{SqliteOptions, SqliteStore};
use semantica_core::{Job, JobId, JobPage, JobQuery, QueueStats, Recurring, Store, StoreError, StoreResult, WriteSet};

use crate::backend::Backend;

const DATABASE_FILE: &str = "sim.db";
/// SQLite's companions of the database file in WAL mode.
const WAL_SUFFIX: &str = "-wal";
const SHM_SUFFIX: &str = "-shm";
/// Where the crash image is put together before it replaces the files.
const CRASH_DIRECTORY: &str = "crash";

/// A [`SqliteStore`] that a simulated crash can kill and reopen.
pub struct SqliteBackend {
    /// `None` only inside [`Backend::reopen`].
    store: Option<SqliteStore>,
    path: PathBuf,
    options: SqliteOptions,
    reopens: u64,
    /// Declared last: the directory goes only after the connection has closed.
    directory: tempfile::TempDir,
}

impl SqliteBackend {
    /// A fresh, empty database in a new temporary directory (under `TMPDIR`).
    pub fn create() -> Result<SqliteBackend, String> {
        let directory = tempfile::Builder::new()
            .prefix("semantica-sim-")
            .tempdir()
            .map_err(|error| format!("cannot create a temporary directory: {error}"))?;
        let path = directory.path().join(DATABASE_FILE);
        // The default (WAL, synchronous NORMAL) is what the daemon runs: a commit that
        // returned survives a crash of the process, which is the crash simulated here.
        let options = SqliteOptions::default();
        let mut store = SqliteStore::open(&path, &options).map_err(|error| error.to_string())?;
        checked_cache(&mut store);
        Ok(SqliteBackend { store: Some(store), path, options, reopens: 0, directory })
    }

    /// The database file, for tests.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Simulated crashes survived so far.
    pub fn reopens(&self) -> u64 {
        self.reopens
    }

    fn store(&self) -> &SqliteStore {
        self.store.as_ref().expect("the SQLite store is open between reopens")
    }

    fn store_mut(&mut self) -> &mut SqliteStore {
        self.store.as_mut().expect("the SQLite store is open between reopens")
    }

    fn companion(&self, suffix: &str) -> PathBuf {
        let mut name = self.path.clone().into_os_string();
        name.push(suffix);
        PathBuf::from(name)
    }

    /// Copies the database and its WAL as they are on disk now, while the connection is
    /// still open: what `kill -9` at this moment would leave. No transaction is open
    /// (the simulator is single-threaded and every commit has returned), so every byte
    /// SQLite wrote is in the files, and the page cache is shared with the copy.
    fn take_crash_image(&self) -> std::io::Result<PathBuf> {
        let image = self.directory.path().join(CRASH_DIRECTORY);
        std::fs::create_dir_all(&image)?;
        assert!(self.store().connection().is_autocommit(), "a crash image taken inside a transaction");
        std::fs::copy(&self.path, image.join(DATABASE_FILE))?;
        let wal = self.companion(WAL_SUFFIX);
        let wal_image = image.join(format!("{DATABASE_FILE}{WAL_SUFFIX}"));
        if wal.exists() {
            std::fs::copy(&wal, &wal_image)?;
        } else if wal_image.exists() {
            std::fs::remove_file(&wal_image)?;
        }
        Ok(image)
    }

    /// Puts the crash image in place of the files the closed connection left behind. The
    /// shared-memory index is dropped, as after a reboot: SQLite rebuilds it from the WAL.
    fn restore_crash_image(&self, image: &Path) -> std::io::Result<()> {
        let wal = self.companion(WAL_SUFFIX);
        for stale in [self.path.clone(), wal.clone(), self.companion(SHM_SUFFIX)] {
            if stale.exists() {
                std::fs::remove_file(&stale)?;
            }
        }
        std::fs::rename(image.join(DATABASE_FILE), &self.path)?;
        let wal_image = image.join(format!("{DATABASE_FILE}{WAL_SUFFIX}"));
        if wal_image.exists() {
            std::fs::rename(wal_image, wal)?;
        }
        Ok(())
    }
}

/// The simulator's factory: a fresh SQLite backend. A temporary directory that cannot be
/// created is a broken machine, not a failure of the seed: it panics.
pub fn sqlite() -> Box<dyn Backend> {
    match SqliteBackend::create() {
        Ok(backend) => Box::new(backend),
        Err(error) => panic!("the SQLite backend cannot start: {error}"),
    }
}

impl Backend for SqliteBackend {
    fn name(&self) -> &'static str {
        "sqlite"
    }

    fn reopen(&mut self) -> StoreResult<()> {
        let io = |error: std::io::Error| StoreError::Unavailable(format!("simulated crash: {error}"));
        let image = self.take_crash_image().map_err(io)?;
        // The clean close checkpoints the WAL into the database file; the crash image
        // then replaces what it wrote, so the reopen sees only what a crash leaves.
        drop(self.store.take());
        self.restore_crash_image(&image).map_err(io)?;
        let mut store = SqliteStore::open(&self.path, &self.options)
            .map_err(|error| StoreError::Unavailable(format!("reopen after a simulated crash: {error}")))?;
        checked_cache(&mut store);
        let integrity = store.integrity_check()?;
        if integrity != ["ok"] {
            return Err(StoreError::Corrupt(format!("integrity_check after a simulated crash: {integrity:?}")));
        }
        self.store = Some(store);
        self.reopens += 1;
        Ok(())
    }
}

impl Store for SqliteBackend {
    fn get(&self, id: JobId) -> StoreResult<Option<Job>> {
        self.store().get(id)
    }
    fn max_generation(&self, subject_key: &str) -> StoreResult<Option<u64>> {
        self.store().max_generation(subject_key)
    }
    fn max_seq(&self) -> StoreResult<u64> {
        self.store().max_seq()
    }
    fn active_jobs_of_subject(&self, subject_key: &str) -> StoreResult<Vec<Job>> {
        self.store().active_jobs_of_subject(subject_key)
    }
    fn occupying_job_ids(&self, subject_key: &str) -> StoreResult<Vec<JobId>> {
        self.store().occupying_job_ids(subject_key)
    }
    fn claim_candidates(
        &self,
        queue: &str,
        min_priority: Option<i32>,
        after: Option<(i32, u64)>,
        limit: usize,
    ) -> StoreResult<Vec<Job>> {
        self.store().claim_candidates(queue, min_priority, after, limit)
    }
    fn ready_queues(&self) -> StoreResult<Vec<String>> {
        self.store().ready_queues()
    }
    fn process_count(&self, queue: Option<&str>) -> StoreResult<usize> {
        self.store().process_count(queue)
    }
    fn due_jobs(&self, now_ms: u64, limit: usize) -> StoreResult<Vec<Job>> {
        self.store().due_jobs(now_ms, limit)
    }
    fn wall_timed_jobs(&self, offset_ms: i64, limit: usize) -> StoreResult<Vec<Job>> {
        self.store().wall_timed_jobs(offset_ms, limit)
    }
    fn labelled_jobs(&self, tag: Option<&str>, chain_group_id: Option<&str>, limit: usize) -> StoreResult<Vec<Job>> {
        self.store().labelled_jobs(tag, chain_group_id, limit)
    }
    fn waiting_children(&self, parent: JobId, limit: usize) -> StoreResult<Vec<Job>> {
        self.store().waiting_children(parent, limit)
    }
    fn event_waiters(&self, name: &str, limit: usize) -> StoreResult<Vec<Job>> {
        self.store().event_waiters(name, limit)
    }
    fn system_waiters(&self, limit: usize) -> StoreResult<Vec<Job>> {
        self.store().system_waiters(limit)
    }
    fn process_holders(&self, limit: usize) -> StoreResult<Vec<Job>> {
        self.store().process_holders(limit)
    }
    fn purgeable(&self, finished_before_ms: u64, limit: usize) -> StoreResult<Vec<Job>> {
        self.store().purgeable(finished_before_ms, limit)
    }
    fn query(&self, query: &JobQuery) -> StoreResult<JobPage> {
        self.store().query(query)
    }
    fn queue_stats(&self) -> StoreResult<Vec<QueueStats>> {
        self.store().queue_stats()
    }
    fn paused_queues(&self) -> StoreResult<Vec<String>> {
        self.store().paused_queues()
    }
    fn recurring(&self, name: &str) -> StoreResult<Option<Recurring>> {
        self.store().recurring(name)
    }
    fn recurring_list(&self) -> StoreResult<Vec<Recurring>> {
        self.store().recurring_list()
    }
    fn recurring_due(&self, now_ms: u64, limit: usize) -> StoreResult<Vec<Recurring>> {
        self.store().recurring_due(now_ms, limit)
    }
    fn commit(&mut self, writes: &WriteSet) -> StoreResult<()> {
        self.store_mut().commit(writes)
    }
}

/// The writer's cache of committed jobs, as the daemon runs it but small (so that it
/// evicts), with every answer it gives checked against the file.
fn checked_cache(store: &mut SqliteStore) {
    store.enable_cache(64 << 10);
    store.verify_cache(true);
    // The filters of subjects and parents, filled (a few milliseconds), so that its answers are checked too.
    assert!(store.wait_for_filters(std::time::Duration::from_secs(10)), "filters never filled");
}
