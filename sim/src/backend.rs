//! The store seam: which [`Store`] the simulator runs the engine on, and the fault
//! injection around it.
//!
//! A backend survives a simulated crash: only what it committed is there after
//! [`Backend::reopen`]. [`MemStore`] is the reference backend; the real SQLite store is
//! the other ([`crate::sqlite`]: reopen = the files a killed process leaves, opened
//! again), and differential mode runs the two side by side on the same inputs.

use std::cell::Cell;

use semantica_core::{
    Job, JobId, JobPage, JobQuery, MemStore, QueueStats, Recurring, Store, StoreError, StoreResult, WriteSet,
};

/// A store the simulator can crash and reopen.
pub trait Backend: Store {
    fn name(&self) -> &'static str;

    /// A simulated crash: drop everything not committed and open the store again.
    fn reopen(&mut self) -> StoreResult<()>;
}

impl Backend for MemStore {
    fn name(&self) -> &'static str {
        "memstore"
    }

    fn reopen(&mut self) -> StoreResult<()> {
        // MemStore holds only committed state: nothing to drop.
        Ok(())
    }
}

/// Builds a fresh, empty backend for a run.
pub type BackendFactory = fn() -> Box<dyn Backend>;

pub fn memstore() -> Box<dyn Backend> {
    Box::new(MemStore::new())
}

/// The stores the command line chooses from (`--backend memory|sqlite|postgres`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum BackendKind {
    /// [`MemStore`], the reference.
    Memory,
    /// The real [`semantica_adapters::SqliteStore`] on a temporary file.
    Sqlite,
    /// The real [`semantica_adapters::PgStore`] in a schema of its own on the server
    /// that `SEMANTICA_TEST_PG_URL` names.
    Postgres,
}

impl BackendKind {
    pub fn parse(name: &str) -> Option<BackendKind> {
        match name {
            "memory" => Some(BackendKind::Memory),
            "sqlite" => Some(BackendKind::Sqlite),
            "postgres" => Some(BackendKind::Postgres),
            _ => None,
        }
    }

    /// The name `--backend` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Memory => "memory",
            BackendKind::Sqlite => "sqlite",
            BackendKind::Postgres => "postgres",
        }
    }

    pub fn factory(self) -> BackendFactory {
        match self {
            BackendKind::Memory => memstore,
            BackendKind::Sqlite => crate::sqlite::sqlite,
            BackendKind::Postgres => crate::postgres::postgres,
        }
    }

    /// The store differential mode compares this one with: the reference against the real
    /// store, whichever of the two is primary.
    pub fn counterpart(self) -> BackendKind {
        match self {
            BackendKind::Memory => BackendKind::Sqlite,
            BackendKind::Sqlite | BackendKind::Postgres => BackendKind::Memory,
        }
    }
}

/// Every job in `store`, in `seq` order, read through the public query port.
pub fn all_jobs(store: &dyn Store) -> StoreResult<Vec<Job>> {
    let mut jobs = Vec::new();
    let mut after_seq = None;
    // A page is at most LIMIT_MAX jobs; the loop ends when the store says nothing follows.
    loop {
        let query = JobQuery { limit: JobQuery::LIMIT_MAX, after_seq, ..JobQuery::default() };
        let page = store.query(&query)?;
        jobs.extend(page.items);
        match page.next_after_seq {
            Some(seq) => {
                assert!(after_seq.is_none_or(|last| seq > last), "query paging went backwards");
                after_seq = Some(seq);
            }
            None => return Ok(jobs),
        }
    }
}

/// Wraps a backend and fails what the driver arms it to fail: the next commit, or the
/// n-th read from now. Decisions come from the driver so that two stores in differential
/// mode fail at exactly the same points.
pub struct FaultyStore {
    inner: Box<dyn Backend>,
    fail_commit: bool,
    /// Reads left before one fails; `None` = no read fault armed.
    reads_until_fault: Cell<Option<u32>>,
}

impl FaultyStore {
    pub fn new(inner: Box<dyn Backend>) -> FaultyStore {
        FaultyStore { inner, fail_commit: false, reads_until_fault: Cell::new(None) }
    }

    /// Arms the faults of one step.
    pub fn arm(&mut self, fail_commit: bool, reads_until_fault: Option<u32>) {
        self.fail_commit = fail_commit;
        self.reads_until_fault.set(reads_until_fault);
    }

    pub fn disarm(&mut self) {
        self.arm(false, None);
    }

    /// The backend without faults, for the checker.
    pub fn inner(&self) -> &dyn Backend {
        self.inner.as_ref()
    }

    pub fn inner_mut(&mut self) -> &mut dyn Backend {
        self.inner.as_mut()
    }

    fn read(&self) -> StoreResult<()> {
        match self.reads_until_fault.get() {
            Some(0) => {
                self.reads_until_fault.set(None);
                Err(StoreError::Unavailable("injected read fault".to_owned()))
            }
            Some(n) => {
                self.reads_until_fault.set(Some(n - 1));
                Ok(())
            }
            None => Ok(()),
        }
    }
}

impl Store for FaultyStore {
    fn get(&self, id: JobId) -> StoreResult<Option<Job>> {
        self.read()?;
        self.inner.get(id)
    }

    fn max_generation(&self, subject_key: &str) -> StoreResult<Option<u64>> {
        self.read()?;
        self.inner.max_generation(subject_key)
    }

    fn max_seq(&self) -> StoreResult<u64> {
        self.read()?;
        self.inner.max_seq()
    }

    fn active_jobs_of_subject(&self, subject_key: &str) -> StoreResult<Vec<Job>> {
        self.read()?;
        self.inner.active_jobs_of_subject(subject_key)
    }

    fn occupying_job_ids(&self, subject_key: &str) -> StoreResult<Vec<JobId>> {
        self.read()?;
        self.inner.occupying_job_ids(subject_key)
    }
    fn claim_candidates(
        &self,
        queue: &str,
        min_priority: Option<i32>,
        after: Option<(i32, u64)>,
        limit: usize,
    ) -> StoreResult<Vec<Job>> {
        self.read()?;
        self.inner.claim_candidates(queue, min_priority, after, limit)
    }

    fn ready_queues(&self) -> StoreResult<Vec<String>> {
        self.read()?;
        self.inner.ready_queues()
    }

    fn process_count(&self, queue: Option<&str>) -> StoreResult<usize> {
        self.read()?;
        self.inner.process_count(queue)
    }

    fn due_jobs(&self, now_ms: u64, limit: usize) -> StoreResult<Vec<Job>> {
        self.read()?;
        self.inner.due_jobs(now_ms, limit)
    }

    fn wall_timed_jobs(&self, offset_ms: i64, limit: usize) -> StoreResult<Vec<Job>> {
        self.read()?;
        self.inner.wall_timed_jobs(offset_ms, limit)
    }

    fn labelled_jobs(&self, tag: Option<&str>, chain_group_id: Option<&str>, limit: usize) -> StoreResult<Vec<Job>> {
        self.read()?;
        self.inner.labelled_jobs(tag, chain_group_id, limit)
    }

    fn waiting_children(&self, parent: JobId, limit: usize) -> StoreResult<Vec<Job>> {
        self.read()?;
        self.inner.waiting_children(parent, limit)
    }

    fn event_waiters(&self, name: &str, limit: usize) -> StoreResult<Vec<Job>> {
        self.read()?;
        self.inner.event_waiters(name, limit)
    }

    fn system_waiters(&self, limit: usize) -> StoreResult<Vec<Job>> {
        self.read()?;
        self.inner.system_waiters(limit)
    }

    fn process_holders(&self, limit: usize) -> StoreResult<Vec<Job>> {
        self.read()?;
        self.inner.process_holders(limit)
    }

    fn purgeable(&self, finished_before_ms: u64, limit: usize) -> StoreResult<Vec<Job>> {
        self.read()?;
        self.inner.purgeable(finished_before_ms, limit)
    }

    fn query(&self, query: &JobQuery) -> StoreResult<JobPage> {
        self.read()?;
        self.inner.query(query)
    }

    fn queue_stats(&self) -> StoreResult<Vec<QueueStats>> {
        self.read()?;
        self.inner.queue_stats()
    }

    fn paused_queues(&self) -> StoreResult<Vec<String>> {
        self.read()?;
        self.inner.paused_queues()
    }

    fn recurring(&self, name: &str) -> StoreResult<Option<Recurring>> {
        self.read()?;
        self.inner.recurring(name)
    }

    fn recurring_list(&self) -> StoreResult<Vec<Recurring>> {
        self.read()?;
        self.inner.recurring_list()
    }

    fn recurring_due(&self, now_ms: u64, limit: usize) -> StoreResult<Vec<Recurring>> {
        self.read()?;
        self.inner.recurring_due(now_ms, limit)
    }

    fn commit(&mut self, writes: &WriteSet) -> StoreResult<()> {
        if std::mem::take(&mut self.fail_commit) {
            return Err(StoreError::Unavailable("injected commit fault".to_owned()));
        }
        self.inner.commit(writes)
    }
}
