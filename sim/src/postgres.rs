//! The real Postgres store as a simulator backend, in a schema of its own on the server
//! that `SEMANTICA_TEST_PG_URL` names (`source .ci/postgres.sh` starts one).
//!
//! **Promises.** As on SQLite, the store only stores: ids, sequence numbers and times
//! come from the engine and the simulated clock, so a run on Postgres has the same trace,
//! byte for byte, as the same seed on `MemStore`. A simulated crash
//! ([`Backend::reopen`]) closes the connection without a word and opens a new one: the
//! simulator is single-threaded and every commit has returned, so no transaction is open
//! and only what was committed comes back.
//!
//! **Never.** Nothing of the server reaches the trace: the schema's name holds the
//! process id and a counter, and it must not appear in anything the simulator records.
//! The schema and everything in it are dropped when the backend is dropped (also after a
//! panic of the run, which `run` catches).

use std::sync::atomic::{AtomicU64, Ordering};

use semantica_adapters::{PgOptions, PgStore};
use semantica_core::{Job, JobId, JobPage, JobQuery, QueueStats, Recurring, Store, StoreError, StoreResult, WriteSet};

use crate::backend::Backend;

/// The variable that names the server.
pub const URL_VARIABLE: &str = "SEMANTICA_TEST_PG_URL";

/// A [`PgStore`] in a schema of its own, which a simulated crash can disconnect.
pub struct PostgresBackend {
    /// `None` only inside [`Backend::reopen`].
    store: Option<PgStore>,
    url: String,
    options: PgOptions,
    reopens: u64,
}

impl PostgresBackend {
    /// A fresh, empty schema on the server at `url`.
    pub fn create(url: &str) -> Result<PostgresBackend, String> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let schema = format!("sim_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let options = PgOptions { schema: Some(schema) };
        // A schema left by an earlier process with the same id: start from nothing.
        PgStore::drop_schema(url, options.schema.as_deref().expect("set above"))?;
        let store = PgStore::open(url, &options).map_err(|error| error.to_string())?;
        Ok(PostgresBackend { store: Some(store), url: url.to_owned(), options, reopens: 0 })
    }

    /// Simulated crashes survived so far.
    pub fn reopens(&self) -> u64 {
        self.reopens
    }

    fn store(&self) -> &PgStore {
        self.store.as_ref().expect("the Postgres store is open between reopens")
    }

    fn store_mut(&mut self) -> &mut PgStore {
        self.store.as_mut().expect("the Postgres store is open between reopens")
    }
}

impl Drop for PostgresBackend {
    fn drop(&mut self) {
        drop(self.store.take());
        if let Some(schema) = &self.options.schema {
            // Best effort: a server that went away has nothing left to tidy.
            let _ = PgStore::drop_schema(&self.url, schema);
        }
    }
}

/// The simulator's factory: a fresh Postgres backend. No server named is a broken setup,
/// not a failure of the seed: it panics with the command that provides one.
pub fn postgres() -> Box<dyn Backend> {
    let url = match std::env::var(URL_VARIABLE) {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "--backend postgres needs {URL_VARIABLE}: run `source .ci/postgres.sh` first (it starts a throwaway \
             cluster and exports the URL)"
        ),
    };
    match PostgresBackend::create(&url) {
        Ok(backend) => Box::new(backend),
        Err(error) => panic!("the Postgres backend cannot start: {error}"),
    }
}

impl Backend for PostgresBackend {
    fn name(&self) -> &'static str {
        "postgres"
    }

    fn reopen(&mut self) -> StoreResult<()> {
        drop(self.store.take());
        let store = PgStore::open(&self.url, &self.options)
            .map_err(|error| StoreError::Unavailable(format!("reopen after a simulated crash: {error}")))?;
        self.store = Some(store);
        self.reopens += 1;
        Ok(())
    }
}

impl Store for PostgresBackend {
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
