//! The SQLite store: core's [`Store`] port on one SQLite file.
//!
//! **Promises.** Every read answers exactly as core's reference `MemStore` does (same
//! jobs, same order, same limits); the differential tests in `adapters/tests/` hold it to
//! that. A `commit` is one SQLite transaction: all writes or none, every update and
//! delete checked against the version it was decided on. Once `commit` returns `Ok`, the
//! writes survive a crash of the process (WAL; with [`Synchronous::Full`] also a power
//! loss).
//!
//! **Never.** No rule of the engine lives here, and nothing SQLite-specific leaks through
//! the trait: errors come back as [`StoreError`]. The schema comes only from the numbered
//! files of `migrations/`.

mod cache;
mod codec;
mod occupants;
mod page_cache;
pub(crate) mod recurring;
pub mod schema;
mod seen;
pub mod writer;

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use crate::queue_counts::{CountDeltas, Counted};
use rusqlite::types::Value;
use rusqlite::{params_from_iter, Connection, ErrorCode, OpenFlags, OptionalExtension};
use semantica_core::{
    Job, JobId, JobPage, JobQuery, JobState, QueueStats, Recurring, Store, StoreError, StoreResult, Write, WriteSet,
};

pub use page_cache::{
    installed as page_cache_installed, truncations_passed_on as page_cache_truncations_passed_on,
    truncations_skipped as page_cache_truncations_skipped,
};
pub use schema::{Migration, MigrationError, MIGRATIONS};
pub use writer::{
    Control, GroupCommitStore, Pending, Reader, WriteError, Writer, WriterHandle, WriterOptions, WriterStats,
};

/// Prepared statements kept per connection; above the number of distinct statements.
const STATEMENT_CACHE_CAPACITY: usize = 128;

/// How hard a commit waits for the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Synchronous {
    /// WAL with `synchronous=NORMAL`: a commit survives a crash of the process; the last
    /// commits before a power loss may be lost (the database stays consistent).
    #[default]
    Normal,
    /// `synchronous=FULL`: every commit is on the disk before `commit` returns.
    Full,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SqliteOptions {
    pub synchronous: Synchronous,
    /// How long a statement waits for another connection's lock before it fails with
    /// [`StoreError::Unavailable`].
    pub busy_timeout_ms: u64,
    /// The database file stops growing at about this size (`PRAGMA max_page_count`): a
    /// commit that needs more fails with [`StoreError::Unavailable`], as on a full disk,
    /// and writes go on once space is freed (purge) or the limit raised. `None`: no limit.
    pub max_bytes: Option<u64>,
}

impl Default for SqliteOptions {
    fn default() -> SqliteOptions {
        SqliteOptions { synchronous: Synchronous::Normal, busy_timeout_ms: 5_000, max_bytes: None }
    }
}

/// Why [`SqliteStore::open`] failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenError {
    /// The file could not be opened or configured.
    Unavailable(String),
    /// The schema could not be brought up to date; see [`MigrationError`].
    Schema(MigrationError),
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::Unavailable(detail) => write!(f, "cannot open the database: {detail}"),
            OpenError::Schema(error) => write!(f, "{error}"),
        }
    }
}

impl std::error::Error for OpenError {}

impl From<MigrationError> for OpenError {
    fn from(error: MigrationError) -> OpenError {
        OpenError::Schema(error)
    }
}

/// One connection to the database file, answering core's [`Store`] questions.
///
/// Several may be open on one file (one per thread): SQLite serialises their commits
/// and the version checks of [`Store::commit`] catch decisions made on stale reads.
pub struct SqliteStore {
    conn: Connection,
    path: PathBuf,
    /// Off unless [`SqliteStore::enable_cache`]: only the file's one writer may keep one.
    cache: RefCell<Option<Box<cache::JobCache>>>,
    /// Every answer the cache gives is checked against the file (tests).
    verify_cache: bool,
    /// The subjects the file has held, and the parents of its live jobs; kept with the
    /// cache (by the file's one writer).
    subjects: Option<Arc<seen::SeenFilter>>,
    parents: Option<Arc<seen::SeenFilter>>,
    /// The text of each UPDATE by the mask of the columns it sets (`update_sql`).
    update_statements: RefCell<HashMap<u32, Arc<str>>>,
}

/// Non-terminal jobs. core sets `finished_at_ms` exactly when a job ends (asserted in
/// its tx.rs), and the partial indexes of live and active jobs say it this way
/// (migration 0008: a claim, which changes `state`, then leaves those indexes alone). A
/// query must name the predicate as the index does for SQLite to use the index.
const LIVE: &str = "finished_at_ms IS NULL";
/// Non-terminal or `reap_pending`: core's "active".
const ACTIVE: &str = "(finished_at_ms IS NULL OR reap_pending = 1)";
/// A process of the job may be alive.
const OCCUPYING: &str = "(state = 'RUNNING' OR reap_pending = 1)";
const WAITING: &str = "state IN ('QUEUED', 'SCHEDULED')";
const TERMINAL: &str = "finished_at_ms IS NOT NULL";

/// A `LIMIT` clause for SQL text (`usize::MAX`: no limit). Written as a literal, never
/// a bound parameter: SQLite plans with a bound LIMIT's value and then marks the
/// statement to be prepared again whenever that parameter is rebound, so a cached
/// statement with `LIMIT ?` was compiled anew on every use (15% of the writer's time on
/// the claim path). Each distinct limit is its own cached statement; core uses a few.
fn limit_clause(limit: usize) -> String {
    format!("LIMIT {}", i64::try_from(limit).unwrap_or(i64::MAX))
}

/// SQLite's process-wide settings, once, before the first connection: no memory
/// statistics (with them on, every allocation SQLite makes takes a global mutex: an
/// eighth of the writer's time in a profile of the claim and report path), and the page
/// cache wrapper of `page_cache.rs` (a commit no longer scans the whole cache).
fn configure_sqlite() {
    static CONFIGURED: std::sync::Once = std::sync::Once::new();
    CONFIGURED.call_once(|| {
        // SAFETY: sqlite3_config may only be called while SQLite is not initialized and
        // no other thread uses it; `Once` runs this before this crate opens any
        // connection. Should another part of the process have initialized SQLite
        // already, SQLite refuses with SQLITE_MISUSE and nothing changes: the setting is
        // an optimisation, never needed for correctness.
        let _ = unsafe { rusqlite::ffi::sqlite3_config(rusqlite::ffi::SQLITE_CONFIG_MEMSTATUS, 0) };
        page_cache::install();
    });
}

/// A bound given by a caller, compared with columns that core keeps below 2^63.
fn sql_bound(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Maps SQLite's failures onto the port's two kinds: data that does not decode is
/// `Corrupt`; everything else (I/O, full disk, locks, misuse) is `Unavailable`, which
/// tells the caller nothing was written.
pub(crate) fn store_error(error: rusqlite::Error) -> StoreError {
    match &error {
        rusqlite::Error::SqliteFailure(failure, _) => match failure.code {
            ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase => StoreError::Corrupt(error.to_string()),
            _ => StoreError::Unavailable(error.to_string()),
        },
        rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::IntegralValueOutOfRange(..)
        | rusqlite::Error::InvalidColumnType(..)
        | rusqlite::Error::Utf8Error(..) => StoreError::Corrupt(error.to_string()),
        _ => StoreError::Unavailable(error.to_string()),
    }
}

fn conflict(job_id: JobId, detail: &str) -> StoreError {
    StoreError::Conflict { job_id, detail: detail.to_owned() }
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`, refuses one written by a newer
    /// binary without touching it, applies pending migrations in one transaction, and
    /// sets WAL, the chosen `synchronous`, foreign keys and the busy timeout.
    pub fn open(path: impl AsRef<Path>, options: &SqliteOptions) -> Result<SqliteStore, OpenError> {
        configure_sqlite();
        let path = path.as_ref().to_path_buf();
        let unavailable = |e: rusqlite::Error| OpenError::Unavailable(format!("{}: {e}", path.display()));
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut conn = Connection::open_with_flags(&path, flags).map_err(unavailable)?;
        conn.busy_timeout(Duration::from_millis(options.busy_timeout_ms)).map_err(unavailable)?;
        // Every statement the store runs stays prepared: rusqlite's default cache holds 16,
        // fewer than the store has, and re-preparing cost a fifth of its time.
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE_CAPACITY);
        // Before anything writes (switching to WAL rewrites the header): a database from a
        // newer binary is left exactly as it was.
        schema::check_not_newer(&conn, MIGRATIONS)?;
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0)).map_err(unavailable)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(OpenError::Unavailable(format!("{}: journal_mode is {mode}, not wal", path.display())));
        }
        let synchronous = match options.synchronous {
            Synchronous::Normal => "NORMAL",
            Synchronous::Full => "FULL",
        };
        conn.pragma_update(None, "synchronous", synchronous).map_err(unavailable)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(unavailable)?;
        conn.pragma_update(None, "cache_size", -32_768).map_err(unavailable)?;
        // Statement journals (a multi-row INSERT that may fail part way) and savepoints
        // copy the pages they change; in a temp file that was a file opened, written and
        // closed per statement.
        conn.pragma_update(None, "temp_store", "MEMORY").map_err(unavailable)?;
        schema::migrate(&mut conn, MIGRATIONS)?;
        schema::check_schema(&conn, MIGRATIONS)?;
        if let Some(max_bytes) = options.max_bytes {
            let page_size: i64 = conn.query_row("PRAGMA page_size", [], |row| row.get(0)).map_err(unavailable)?;
            let pages = (max_bytes / page_size.max(1) as u64).clamp(1, i64::MAX as u64);
            // SQLite never lowers the limit below the pages in use: an over-full file opens
            // and can still be read, purged and vacuumed.
            let _: i64 = conn
                .query_row(&format!("PRAGMA max_page_count = {pages}"), [], |row| row.get(0))
                .map_err(unavailable)?;
        }
        Ok(SqliteStore {
            conn,
            path,
            cache: RefCell::new(None),
            verify_cache: false,
            subjects: None,
            parents: None,
            update_statements: RefCell::default(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Keeps up to `bytes_max` bytes of committed jobs in memory, so that the engine's
    /// reads of jobs it has seen need no decoding (see `cache.rs`). Only for the one
    /// connection that writes the file: another writer's commits would not be seen. A
    /// caller that runs its own transactions through [`SqliteStore::connection`] tells
    /// the store how each ended with [`SqliteStore::transaction_ended`] (one it is not
    /// told of counts as rolled back: nothing wrong is kept, only less).
    /// It also keeps filters of the subjects the file has held and of the parents of its
    /// live jobs (`seen.rs`), each filled by a thread of its own, so that a new subject's
    /// enqueue and the end of a job without children ask the file nothing; and the jobs
    /// that hold a worker slot (`occupants.rs`), which every claim asks about.
    pub fn enable_cache(&mut self, bytes_max: usize) {
        let mut cache = cache::JobCache::new(bytes_max);
        // Without them (the scan failed) every question about occupants goes to the file.
        cache.set_occupants(occupants::Occupants::load(&self.conn).ok());
        *self.cache.get_mut() = Some(Box::new(cache));
        let filled = |scan| {
            let filter = seen::SeenFilter::new(scan);
            filter.fill_in_background(&self.path);
            Some(filter)
        };
        self.subjects = filled(seen::SUBJECTS);
        self.parents = filled(seen::PARENTS);
    }

    /// Waits up to `timeout` for the filters of subjects and parents to be filled from
    /// the file; `true` once they answer (tests wait for them, to check every answer
    /// they give).
    pub fn wait_for_filters(&self, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let filled = |filter: &Option<Arc<seen::SeenFilter>>| filter.as_ref().is_some_and(|f| f.filled());
            if filled(&self.subjects) && filled(&self.parents) {
                return true;
            }
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// `true`: the file has never held `subject_key`, so it has no row in `subjects` and
    /// no job (checked against the file when verifying).
    fn subject_unseen(&self, subject_key: &str) -> bool {
        self.subjects.as_ref().is_some_and(|filter| !filter.may_hold(subject_key))
    }

    /// `true`: no live job of the file has `parent` for its parent (checked against the
    /// file when verifying).
    fn parent_unseen(&self, parent: JobId) -> bool {
        self.parents.as_ref().is_some_and(|filter| !filter.may_hold(&parent.to_string()))
    }

    /// Checks every job the cache answers with against the file, and panics on a
    /// difference: for the differential tests.
    pub fn verify_cache(&mut self, on: bool) {
        self.verify_cache = on;
    }

    /// The transaction the caller began on [`SqliteStore::connection`] has committed
    /// (`true`) or rolled back.
    pub fn transaction_ended(&self, committed: bool) {
        if let Some(cache) = self.cache.borrow_mut().as_mut() {
            if committed {
                cache.committed();
            } else {
                cache.rolled_back();
            }
        }
    }

    /// Drops every cached job (after writes the cache did not see).
    pub fn clear_cache(&self) {
        if let Some(cache) = self.cache.borrow_mut().as_mut() {
            cache.clear();
        }
    }

    /// A transaction that wrote through the cache is over and nobody said how: count it
    /// as rolled back.
    fn settle_cache(&self) {
        if self.conn.is_autocommit() {
            if let Some(cache) = self.cache.borrow_mut().as_mut().filter(|cache| cache.in_transaction()) {
                cache.rolled_back();
            }
        }
    }

    /// An answer from the occupants the writer keeps, if it keeps them.
    fn with_occupants<T>(&self, answer: impl FnOnce(&occupants::Occupants) -> T) -> Option<T> {
        self.cache.borrow().as_ref().and_then(|cache| cache.occupants().map(answer))
    }

    /// The cached job, checked against `decoded` (the file's) in verify mode.
    fn cached(&self, id: JobId) -> Option<Job> {
        self.cache.borrow().as_ref().and_then(|cache| cache.get(id).cloned())
    }

    /// The schema version the database is at.
    pub fn schema_version(&self) -> StoreResult<u32> {
        schema::current_version(&self.conn).map_err(|e| StoreError::Unavailable(e.to_string()))
    }

    /// `PRAGMA integrity_check`: `["ok"]` for a sound file, else SQLite's findings.
    pub fn integrity_check(&self) -> StoreResult<Vec<String>> {
        let mut statement = self.conn.prepare("PRAGMA integrity_check").map_err(store_error)?;
        let rows = statement.query_map([], |row| row.get::<_, String>(0)).map_err(store_error)?;
        rows.collect::<Result<Vec<String>, _>>().map_err(store_error)
    }

    /// The connection, for the writer's transactions and for tests that simulate faults.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    fn jobs(&self, sql: &str, params: impl rusqlite::Params) -> StoreResult<Vec<Job>> {
        self.settle_cache();
        let caching = self.cache.borrow().is_some();
        let mut statement = self.conn.prepare_cached(sql).map_err(store_error)?;
        let mut rows = statement.query(params).map_err(store_error)?;
        let mut jobs = Vec::new();
        while let Some(row) = rows.next().map_err(store_error)? {
            if !caching {
                jobs.push(codec::decode(row)?);
                continue;
            }
            // The id alone first: a job the cache holds is not decoded again.
            let cached = codec::row_id(row).ok().and_then(|id| self.cached(id));
            let job = match cached {
                Some(job) if !self.verify_cache => job,
                Some(job) => {
                    let decoded = codec::decode(row)?;
                    assert_eq!(job, decoded, "the cache differs from the file");
                    job
                }
                None => {
                    let job = codec::decode(row)?;
                    if let Some(cache) = self.cache.borrow_mut().as_mut() {
                        cache.read(&job);
                    }
                    job
                }
            };
            jobs.push(job);
        }
        Ok(jobs)
    }

    fn select(where_order: &str) -> String {
        format!("SELECT {} FROM {} WHERE {where_order}", codec::select_list(), codec::JOBS_FROM)
    }

    /// The highest `seq` ever stored: that of the last job row, or `counters.max_seq` if
    /// higher. The counter is written only before a delete (`keep_max_seq`), so that an
    /// insert's transaction does not write the counter's page besides the job's own.
    ///
    /// The writer's cache keeps it once read, raised by the inserts it sees committed; in
    /// verify mode every answer is checked against the file.
    fn stored_max_seq(&self) -> StoreResult<u64> {
        self.settle_cache();
        let kept = self.cache.borrow().as_ref().and_then(|cache| cache.max_seq());
        if let (Some(kept), false) = (kept, self.verify_cache) {
            return Ok(kept);
        }
        let max_seq = self.file_max_seq()?;
        match kept {
            Some(kept) => assert_eq!(kept, max_seq, "the cache's highest seq is not the file's"),
            None => {
                if let Some(cache) = self.cache.borrow_mut().as_mut() {
                    cache.know_max_seq(max_seq);
                }
            }
        }
        Ok(max_seq)
    }

    /// [`SqliteStore::stored_max_seq`] as the file answers it.
    fn file_max_seq(&self) -> StoreResult<u64> {
        let max_seq: i64 = self
            .conn
            .prepare_cached(
                "SELECT max((SELECT max_seq FROM counters WHERE singleton = 1), \
                            coalesce((SELECT max(seq) FROM jobs), 0))",
            )
            .and_then(|mut s| s.query_row([], |row| row.get(0)))
            .map_err(store_error)?;
        match u64::try_from(max_seq) {
            Ok(max_seq) if max_seq <= codec::COUNTER_MAX => Ok(max_seq),
            _ => Err(StoreError::Corrupt(format!("counters.max_seq is {max_seq}"))),
        }
    }

    fn insert(&self, job: &Job, max_seq_before: u64) -> StoreResult<()> {
        static SQL: LazyLock<InsertSql> = LazyLock::new(|| insert_sql(1));
        let row = codec::encode(job);
        for (sql, positions) in SQL.iter() {
            let inserted = self
                .conn
                .prepare_cached(sql)
                .and_then(|mut s| s.execute(params_from_iter(positions.iter().map(|&n| &row[n]))))
                .map_err(|e| write_error(job.id, e))
                .map_err(|error| self.insert_conflict(job.id, error))?;
            if inserted != 1 {
                // Only a schema that is not ours (a trigger, a damaged file) does this.
                return Err(StoreError::Corrupt(format!("inserting job {} changed {inserted} rows", job.id)));
            }
        }
        self.inserted(job, max_seq_before)
    }

    /// What follows a job's rows: the check of its `seq` and the subject's generation.
    fn inserted(&self, job: &Job, max_seq_before: u64) -> StoreResult<()> {
        self.check_inserted(job, max_seq_before)?;
        self.raise_generation(job)
    }

    /// The check of an inserted job's `seq` (and the parent filter's note of its parent).
    fn check_inserted(&self, job: &Job, max_seq_before: u64) -> StoreResult<()> {
        if let (Some(filter), Some(parent)) = (&self.parents, job.parent_job_id) {
            filter.insert(&parent.to_string());
        }
        // Judged after the INSERT, whose UNIQUE constraint catches a taken id without a read
        // first (`write_error`); a refused set is undone whole by the caller.
        if job.seq <= max_seq_before {
            return Err(conflict(job.id, "sequence not above the highest"));
        }
        Ok(())
    }

    /// Jobs inserted in order: in multi-row statements of [`INSERT_ROWS`] rows where they
    /// fill one (each statement has fixed costs: a cursor on the table and each index, a
    /// statement journal, a trip through the statement cache), one by one for the rest.
    /// A multi-row statement that SQLite refuses wrote nothing; its jobs are then inserted
    /// one by one, so that an error names the job and the cause that
    /// [`SqliteStore::insert`] names.
    fn insert_all(&self, jobs: &[&Job], max_seq_before: u64) -> StoreResult<()> {
        let mut rest = jobs;
        for rows in INSERT_ROWS {
            while rest.len() >= rows {
                let (chunk, after) = rest.split_at(rows);
                match self.insert_rows(chunk) {
                    Ok(()) => {
                        chunk.iter().try_for_each(|job| self.check_inserted(job, max_seq_before))?;
                        self.raise_generations(chunk)?;
                    }
                    Err(_) => chunk.iter().try_for_each(|job| self.insert(job, max_seq_before))?,
                }
                rest = after;
            }
        }
        for job in rest {
            self.insert(job, max_seq_before)?;
        }
        Ok(())
    }

    /// One multi-row INSERT into `jobs` and one into `job_specs` for `jobs`.
    fn insert_rows(&self, jobs: &[&Job]) -> rusqlite::Result<()> {
        static SQL: LazyLock<Vec<InsertSql>> =
            LazyLock::new(|| INSERT_ROWS.iter().map(|&rows| insert_sql(rows)).collect());
        let index = INSERT_ROWS.iter().position(|&rows| rows == jobs.len()).expect("a size of INSERT_ROWS");
        let encoded: Vec<Vec<codec::Cell>> = jobs.iter().map(|job| codec::encode(job)).collect();
        for (sql, positions) in SQL[index].iter() {
            let values = encoded.iter().flat_map(|row| positions.iter().map(move |&n| &row[n]));
            let inserted = self.conn.prepare_cached(sql)?.execute(params_from_iter(values))?;
            // Only a schema that is not ours (a trigger, a damaged file) does otherwise.
            assert_eq!(inserted, jobs.len(), "a multi-row insert of {} jobs changed {inserted} rows", jobs.len());
        }
        Ok(())
    }

    /// A refused insert, named as `MemStore` names it: a taken id before a taken seq. Read
    /// only on this error path, so the insert itself needs no read first.
    fn insert_conflict(&self, id: JobId, error: StoreError) -> StoreError {
        if !matches!(error, StoreError::Conflict { .. }) {
            return error;
        }
        let exists = self
            .conn
            .prepare_cached("SELECT 1 FROM jobs WHERE id = ?1")
            .and_then(|mut s| s.query_row([id.to_string()], |row| row.get::<_, i64>(0)).optional());
        match exists {
            Ok(Some(_)) => conflict(id, "id exists"),
            Ok(None) => error,
            Err(read_error) => store_error(read_error),
        }
    }

    /// What the job's row counted for at the version the engine read.
    fn counted_before(&self, job: &Job) -> StoreResult<Option<Counted>> {
        self.conn
            .prepare_cached(
                "SELECT queue, state, started_at_ms, due_at_ms FROM jobs WHERE seq = ?1 AND id = ?2 AND version = ?3",
            )
            .and_then(|mut s| {
                s.query_row(
                    (codec::ordered(job.seq, "seq"), job.id.to_string(), codec::ordered(job.version - 1, "version")),
                    |row| Ok(read_counted(row)),
                )
                .optional()
            })
            .map_err(store_error)?
            .transpose()
    }

    fn update(&self, job: &Job, counts: &mut CountDeltas) -> StoreResult<()> {
        assert!(job.version >= 2, "an update of job {} carries version {}", job.id, job.version);
        // The version read, from the cache when it holds it: what the row counted for
        // before, and which columns the update changes. Else a rowid lookup of the page
        // the UPDATE writes, and every mutable column set.
        let cached = self.cached(job.id).filter(|cached| cached.version + 1 == job.version);
        let (before, changed) = match cached {
            Some(cached) if !self.verify_cache => (Some(Counted::of(&cached)), codec::changed_columns(&cached, job)),
            cached => {
                let before = self.counted_before(job)?;
                if let Some(cached) = &cached {
                    assert_eq!(Some(Counted::of(cached)), before, "the cache differs from the file on job {}", job.id);
                }
                (before, cached.map_or(codec::ALL_MUTABLE, |cached| codec::changed_columns(&cached, job)))
            }
        };
        let values = codec::encode_mutable(job);
        let mut params: Vec<codec::Cell> = Vec::with_capacity(values.len() + 3);
        params.push(codec::Cell::from(codec::ordered(job.seq, "seq")));
        params.push(codec::Cell::from(job.id.to_string()));
        params.push(codec::Cell::from(codec::ordered(job.version - 1, "version")));
        params.extend(values.into_iter().enumerate().filter(|(i, _)| changed & 1 << i != 0).map(|(_, value)| value));
        let sql = self.update_sql(changed);
        let updated = self
            .conn
            .prepare_cached(&sql)
            .and_then(|mut s| s.execute(params_from_iter(params)))
            .map_err(|e| write_error(job.id, e))?;
        if updated == 0 {
            let stored: Option<(i64, i64)> = self
                .conn
                .prepare_cached("SELECT version, seq FROM jobs WHERE id = ?1")
                .and_then(|mut s| s.query_row([job.id.to_string()], |row| Ok((row.get(0)?, row.get(1)?))).optional())
                .map_err(store_error)?;
            return match stored {
                None => Err(conflict(job.id, "job no longer exists")),
                Some((version, _)) if version as u64 + 1 != job.version => {
                    Err(conflict(job.id, "version changed since it was read"))
                }
                // core never moves a job's seq: the file is not what the store wrote.
                Some((_, seq)) => {
                    Err(StoreError::Corrupt(format!("job {} is stored at seq {seq}, not {} as read", job.id, job.seq)))
                }
            };
        }
        if updated != 1 {
            return Err(StoreError::Corrupt(format!("updating job {} changed {updated} rows", job.id)));
        }
        let before = before
            .ok_or_else(|| StoreError::Corrupt(format!("job {} was updated but not there to count before", job.id)))?;
        counts.add(&before, -1);
        counts.add(&Counted::of(job), 1);
        // No raise of the subject's generation: a job's subject and generation are fixed
        // when it is inserted (the differential test against MemStore compares
        // max_generation after every step, so a core that changed them would show).
        Ok(())
    }

    /// `UPDATE jobs SET <the columns of mask> WHERE seq = ?1 AND id = ?2 AND version = ?3`,
    /// made once per mask (a step's moves use a handful).
    fn update_sql(&self, changed: u32) -> Arc<str> {
        let mut statements = self.update_statements.borrow_mut();
        let sql = statements.entry(changed).or_insert_with(|| {
            let set = codec::MUTABLE_COLUMNS
                .iter()
                .enumerate()
                .filter(|(i, _)| changed & 1 << i != 0)
                .enumerate()
                .map(|(n, (_, column))| format!("{column} = ?{}", n + 4))
                .collect::<Vec<_>>()
                .join(", ");
            format!("UPDATE jobs SET {set} WHERE seq = ?1 AND id = ?2 AND version = ?3").into()
        });
        Arc::clone(sql)
    }

    fn delete(&self, id: JobId, version: u64, counts: &mut CountDeltas) -> StoreResult<()> {
        let mut statement = self
            .conn
            .prepare_cached(
                "DELETE FROM jobs WHERE id = ?1 AND version = ?2 RETURNING queue, state, started_at_ms, due_at_ms, seq",
            )
            .map_err(store_error)?;
        let mut rows = statement.query((id.to_string(), codec::ordered(version, "version"))).map_err(store_error)?;
        let mut deleted = Vec::new();
        while let Some(row) = rows.next().map_err(store_error)? {
            let counted = read_counted(row)?;
            counts.add(&counted, -1);
            deleted.push(row.get::<_, i64>(4).map_err(store_error)?);
        }
        drop(rows);
        drop(statement);
        match deleted[..] {
            [] => Err(conflict(id, "version changed since it was read")),
            [seq] => {
                self.conn
                    .prepare_cached("DELETE FROM job_specs WHERE seq = ?1")
                    .and_then(|mut s| s.execute([seq]))
                    .map_err(store_error)?;
                Ok(())
            }
            // The primary key says this cannot happen; a damaged file can still say it.
            _ => Err(StoreError::Corrupt(format!("jobs.id {id} was on {} rows", deleted.len()))),
        }
    }

    fn raise_generation(&self, job: &Job) -> StoreResult<()> {
        self.raise_generations(&[job])
    }

    /// [`SqliteStore::raise_generation`] for jobs of one multi-row insert: one statement
    /// (rows of one subject are taken in order, each raising what the one before left).
    fn raise_generations(&self, jobs: &[&Job]) -> StoreResult<()> {
        static SQL: LazyLock<Vec<String>> = LazyLock::new(|| {
            let sizes = std::iter::once(1).chain(INSERT_ROWS);
            sizes
                .map(|rows| {
                    format!(
                        "INSERT INTO subjects (subject_key, max_generation) VALUES {} ON CONFLICT (subject_key) \
                         DO UPDATE SET max_generation = max(max_generation, excluded.max_generation)",
                        vec!["(?,?)"; rows].join(",")
                    )
                })
                .collect()
        });
        let index = std::iter::once(1)
            .chain(INSERT_ROWS)
            .position(|rows| rows == jobs.len())
            .expect("one job, or a size of INSERT_ROWS");
        if let Some(filter) = &self.subjects {
            for job in jobs {
                filter.insert(&job.subject_key);
            }
        }
        let generations: Vec<i64> = jobs.iter().map(|job| codec::ordered(job.generation, "generation")).collect();
        let values = jobs.iter().zip(&generations).flat_map(|(job, generation)| {
            [&job.subject_key as &dyn rusqlite::ToSql, generation as &dyn rusqlite::ToSql]
        });
        self.conn
            .prepare_cached(&SQL[index])
            .and_then(|mut s| s.execute(params_from_iter(values)))
            .map_err(store_error)?;
        Ok(())
    }

    /// Adds one write set's changes to `queue_counts`: one statement per queue and state
    /// the set changed, as a rule.
    fn write_counts(&self, counts: CountDeltas) -> StoreResult<()> {
        for ((queue, state), delta) in counts.changes() {
            let (jobs, wait_sum_ms, started) = delta;
            let values = (queue.as_str(), state.as_str(), jobs, wait_sum_ms, started);
            // The row is nearly always there already: one UPDATE (no RETURNING, which
            // costs SQLite a temporary table), and an INSERT only when it is not.
            let updated = self
                .conn
                .prepare_cached(
                    "UPDATE queue_counts SET jobs = jobs + ?3, wait_sum_ms = wait_sum_ms + ?4, started = started + ?5
                     WHERE queue = ?1 AND state = ?2",
                )
                .and_then(|mut s| s.execute(values))
                .map_err(store_error)?;
            if updated == 0 {
                self.conn
                    .prepare_cached(
                        "INSERT INTO queue_counts (queue, state, jobs, wait_sum_ms, started) VALUES (?1, ?2, ?3, ?4, ?5)",
                    )
                    .and_then(|mut s| s.execute(values))
                    .map_err(store_error)?;
            }
            // Readers skip rows that count nothing. Such a row goes only when the last of
            // its ended jobs was purged: a queue keeps its rows of waiting and running
            // jobs (three at most), which the next enqueue or claim changes again.
            if jobs < 0 && state.is_terminal() {
                self.conn
                    .prepare_cached("DELETE FROM queue_counts WHERE queue = ?1 AND state = ?2 AND jobs = 0")
                    .and_then(|mut s| s.execute((queue.as_str(), state.as_str())))
                    .map_err(store_error)?;
            }
        }
        Ok(())
    }

    fn execute_cached(&self, sql: &str) -> StoreResult<()> {
        self.conn.prepare_cached(sql).and_then(|mut statement| statement.execute([])).map_err(store_error)?;
        Ok(())
    }

    /// The writes of one set, inside a transaction the caller holds: no savepoint of its
    /// own, and on an error the caller undoes what was written (the writer rolls the
    /// transaction back and writes the steps before this one again).
    pub(crate) fn apply_within(&self, writes: &WriteSet) -> StoreResult<()> {
        assert!(!self.conn.is_autocommit(), "apply_within outside a transaction");
        self.apply(writes)
    }

    fn apply(&self, writes: &WriteSet) -> StoreResult<()> {
        self.settle_cache();
        let mark = self.cache.borrow().as_ref().map(|cache| cache.mark());
        let result = self.apply_uncached(writes);
        if let Some(cache) = self.cache.borrow_mut().as_mut() {
            match &result {
                Ok(()) => {
                    for write in &writes.writes {
                        match write {
                            Write::Insert(job) | Write::Update(job) => cache.written(job.id, Some(job)),
                            Write::Delete { id, .. } => cache.written(*id, None),
                            _ => {}
                        }
                    }
                }
                Err(_) => cache.undo_to(mark.unwrap_or_default()),
            }
        }
        result
    }

    fn apply_uncached(&self, writes: &WriteSet) -> StoreResult<()> {
        // Inserts are judged against the store as it was before the set, as MemStore does;
        // a set without one (a claim, a report) need not read it.
        let has_insert = writes.writes.iter().any(|write| matches!(write, Write::Insert(_)));
        let max_seq_before = if has_insert { self.stored_max_seq()? } else { 0 };
        if writes.writes.iter().any(|write| matches!(write, Write::Delete { .. })) {
            self.keep_max_seq()?;
        }
        let mut inserted = std::collections::BTreeSet::new();
        let mut counts = CountDeltas::default();
        let mut run: Vec<&Job> = Vec::new();
        for (index, write) in writes.writes.iter().enumerate() {
            if let Write::Insert(job) = write {
                assert!(inserted.insert(job.id), "job {} inserted twice in one write set", job.id);
                assert_eq!(job.version, 1, "job {} inserted at version {}", job.id, job.version);
                counts.add(&Counted::of(job), 1);
                // Consecutive inserts (a batch's jobs) go in together.
                run.push(job);
                if !matches!(writes.writes.get(index + 1), Some(Write::Insert(_))) {
                    self.insert_all(&run, max_seq_before)?;
                    run.clear();
                }
                continue;
            }
            match write {
                Write::Insert(_) => unreachable!("inserted above"),
                Write::Update(job) => self.update(job, &mut counts)?,
                Write::Delete { id, version } => self.delete(*id, *version, &mut counts)?,
                Write::QueuePaused { queue, paused } => recurring::set_paused(&self.conn, queue, *paused)?,
                Write::PutRecurring(item) => recurring::put(&self.conn, item)?,
                Write::DeleteRecurring { name } => recurring::delete(&self.conn, name)?,
                Write::NodeLeaseExpired { .. } => {} // one daemon per file: no leases
            }
        }
        self.write_counts(counts)?;
        Ok(())
    }

    /// Before a set deletes jobs: the counter takes the highest `seq` of the rows, so
    /// that deleting the last job does not lower `stored_max_seq` (a `seq` is never given
    /// twice).
    fn keep_max_seq(&self) -> StoreResult<()> {
        self.conn
            .prepare_cached(
                "UPDATE counters SET max_seq = (SELECT max(seq) FROM jobs) \
                 WHERE singleton = 1 AND max_seq < (SELECT max(seq) FROM jobs)",
            )
            .and_then(|mut s| s.execute([]))
            .map_err(store_error)?;
        Ok(())
    }
}

/// The sizes of multi-row inserts, largest first: a batch of 1,000 jobs is 15 statements
/// of 64 rows, 2 of 16 and 2 of 4 (per table). A few fixed sizes keep the statement cache
/// small; 64 rows of `jobs` bind about 2,300 values, far below SQLite's limit of 32,766.
const INSERT_ROWS: [usize; 3] = [64, 16, 4];

/// The INSERTs of `rows` jobs into `jobs` and into `job_specs`, each with the positions in
/// [`codec::COLUMNS`] of the values it binds per row.
type InsertSql = [(String, Vec<usize>); 2];

/// The [`InsertSql`] of `rows` jobs.
fn insert_sql(rows: usize) -> InsertSql {
    let statement = |table: &str, spec: bool| {
        let positions: Vec<usize> = (0..codec::COLUMNS.len())
            .filter(|&n| codec::COLUMNS[n] == "seq" || codec::SPEC_COLUMNS.contains(&codec::COLUMNS[n]) == spec)
            .collect();
        let names: Vec<&str> = positions.iter().map(|&n| codec::COLUMNS[n]).collect();
        let width = names.len();
        // Anonymous parameters, numbered in the order they are bound: a statement's text is
        // hashed and compared each time the statement cache hands it out, and numbered
        // ones (`?1234, `) made a 64-row INSERT more than twice as long.
        let row = format!("({})", vec!["?"; width].join(","));
        let sql = format!("INSERT INTO {table} ({}) VALUES {}", names.join(", "), vec![row; rows].join(","));
        (sql, positions)
    };
    [statement("jobs", false), statement("job_specs", true)]
}

/// From a row's `queue, state, started_at_ms, due_at_ms`.
fn read_counted(row: &rusqlite::Row) -> StoreResult<Counted> {
    let queue: String = row.get(0).map_err(store_error)?;
    let state: String = row.get(1).map_err(store_error)?;
    Counted::stored(queue, &state, row.get(2).map_err(store_error)?, row.get(3).map_err(store_error)?)
}

/// A write that SQLite refused. A UNIQUE clash on `seq` is a conflict (another writer
/// took the sequence number); a CHECK failure means the job breaks the schema's rules.
fn write_error(job_id: JobId, error: rusqlite::Error) -> StoreError {
    if let rusqlite::Error::SqliteFailure(failure, _) = &error {
        if failure.code == ErrorCode::ConstraintViolation {
            if failure.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                || failure.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
            {
                return conflict(job_id, "sequence not above the highest");
            }
            return StoreError::Corrupt(format!("job {job_id} breaks the schema: {error}"));
        }
    }
    store_error(error)
}

impl Store for SqliteStore {
    fn get(&self, id: JobId) -> StoreResult<Option<Job>> {
        self.settle_cache();
        if !self.verify_cache {
            if let Some(job) = self.cached(id) {
                return Ok(Some(job));
            }
        }
        static SQL: LazyLock<String> = LazyLock::new(|| SqliteStore::select("id = ?1"));
        let mut jobs = self.jobs(&SQL, [id.to_string()])?;
        if jobs.len() > 1 {
            // The primary key says this cannot happen; a damaged file can still say it.
            return Err(StoreError::Corrupt(format!("jobs.id {id} is on {} rows", jobs.len())));
        }
        Ok(jobs.pop())
    }

    fn max_generation(&self, subject_key: &str) -> StoreResult<Option<u64>> {
        let unseen = self.subject_unseen(subject_key);
        if unseen && !self.verify_cache {
            return Ok(None);
        }
        let max: Option<i64> = self
            .conn
            .prepare_cached("SELECT max_generation FROM subjects WHERE subject_key = ?1")
            .and_then(|mut s| s.query_row([subject_key], |row| row.get(0)).optional())
            .map_err(store_error)?;
        assert!(!unseen || max.is_none(), "the subject filter lost {subject_key:?}");
        max.map(|m| u64::try_from(m).map_err(|_| StoreError::Corrupt(format!("subjects.max_generation is {m}"))))
            .transpose()
    }

    fn max_seq(&self) -> StoreResult<u64> {
        self.stored_max_seq()
    }

    fn active_jobs_of_subject(&self, subject_key: &str) -> StoreResult<Vec<Job>> {
        let unseen = self.subject_unseen(subject_key);
        if unseen && !self.verify_cache {
            return Ok(Vec::new());
        }
        static SQL: LazyLock<String> =
            LazyLock::new(|| SqliteStore::select(&format!("subject_key = ?1 AND {ACTIVE} ORDER BY seq")));
        let jobs = self.jobs(&SQL, [subject_key])?;
        assert!(!unseen || jobs.is_empty(), "the subject filter lost {subject_key:?}");
        Ok(jobs)
    }

    fn occupying_job_ids(&self, subject_key: &str) -> StoreResult<Vec<JobId>> {
        self.settle_cache();
        let kept = self.with_occupants(|occupants| occupants.of_subject(subject_key));
        if let (Some(kept), false) = (&kept, self.verify_cache) {
            return Ok(kept.clone());
        }
        let unseen = self.subject_unseen(subject_key);
        if unseen && !self.verify_cache {
            return Ok(Vec::new());
        }
        let mut statement = self
            .conn
            .prepare_cached(&format!("SELECT id FROM jobs WHERE subject_key = ?1 AND {ACTIVE} AND {OCCUPYING}"))
            .map_err(store_error)?;
        let ids = statement.query_map([subject_key], |row| row.get::<_, String>(0)).map_err(store_error)?;
        let ids: Vec<JobId> = ids
            .map(|id| {
                let id = id.map_err(store_error)?;
                id.parse::<JobId>().map_err(|e| StoreError::Corrupt(format!("jobs.id: {e}")))
            })
            .collect::<StoreResult<_>>()?;
        assert!(!unseen || ids.is_empty(), "the subject filter lost {subject_key:?}");
        if let Some(kept) = kept {
            let mut sorted = ids.clone();
            sorted.sort_unstable();
            let mut kept_sorted = kept;
            kept_sorted.sort_unstable();
            assert_eq!(kept_sorted, sorted, "the occupants kept differ from the file on subject {subject_key:?}");
        }
        Ok(ids)
    }

    fn claim_candidates(
        &self,
        queue: &str,
        min_priority: Option<i32>,
        after: Option<(i32, u64)>,
        limit: usize,
    ) -> StoreResult<Vec<Job>> {
        // `range` narrows the priorities; each form is a range of the `jobs_queued` index.
        let sql = |range: &str, limit: usize| {
            Self::select(&format!(
                "state = 'QUEUED' AND queue = ?1 AND priority >= ?2 {range}
                 AND NOT EXISTS (SELECT 1 FROM jobs AS other
                                 WHERE other.subject_key = jobs.subject_key
                                   AND (other.finished_at_ms IS NULL OR other.reap_pending = 1)
                                   AND (other.state = 'RUNNING' OR other.reap_pending = 1))
                 ORDER BY priority DESC, seq {}",
                limit_clause(limit)
            ))
        };
        let floor = i64::from(min_priority.unwrap_or(i32::MIN));
        let Some((priority, seq)) = after else {
            return self.jobs(&sql("", limit), (queue, floor));
        };
        // Continued: the rest of the last job's priority after its seq, then the lower
        // priorities (one OR of both would not seek the index).
        let seq = i64::try_from(seq).map_err(|_| StoreError::Corrupt(format!("seq {seq} out of range")))?;
        let mut jobs = self.jobs(&sql("AND priority = ?3 AND seq > ?4", limit), (queue, floor, priority, seq))?;
        if jobs.len() < limit {
            let rest = limit - jobs.len();
            jobs.extend(self.jobs(&sql("AND priority < ?3", rest), (queue, floor, priority))?);
        }
        Ok(jobs)
    }

    fn ready_queues(&self) -> StoreResult<Vec<String>> {
        let mut statement = self
            .conn
            // From the per-queue counts the store keeps with every write set: a claim asks
            // this each time, and the backlog may hold a million jobs (a recursive seek
            // over the jobs' index cost a temporary table per call).
            .prepare_cached("SELECT queue FROM queue_counts WHERE state = 'QUEUED' AND jobs > 0 ORDER BY queue")
            .map_err(store_error)?;
        let rows = statement.query_map([], |row| row.get::<_, String>(0)).map_err(store_error)?;
        rows.collect::<Result<Vec<String>, _>>().map_err(store_error)
    }

    fn process_count(&self, queue: Option<&str>) -> StoreResult<usize> {
        self.settle_cache();
        let kept = self.with_occupants(|occupants| occupants.count(queue));
        if let (Some(kept), false) = (kept, self.verify_cache) {
            return Ok(kept);
        }
        let count: i64 = match queue {
            Some(queue) => self
                .conn
                .prepare_cached(
                    "SELECT count(*) FROM jobs WHERE (state = 'RUNNING' OR reap_pending = 1) AND queue = ?1",
                )
                .and_then(|mut s| s.query_row([queue], |row| row.get(0))),
            None => self
                .conn
                .prepare_cached("SELECT count(*) FROM jobs WHERE state = 'RUNNING' OR reap_pending = 1")
                .and_then(|mut s| s.query_row([], |row| row.get(0))),
        }
        .map_err(store_error)?;
        let count = usize::try_from(count).map_err(|_| StoreError::Corrupt(format!("count {count}")))?;
        if let Some(kept) = kept {
            assert_eq!(kept, count, "the occupants kept differ from the file in queue {queue:?}");
        }
        Ok(count)
    }

    fn due_jobs(&self, now_ms: u64, limit: usize) -> StoreResult<Vec<Job>> {
        let sql = Self::select(&format!(
            "wake_at_ms IS NOT NULL AND wake_at_ms <= ?1 AND {ACTIVE} ORDER BY wake_at_ms, seq {}",
            limit_clause(limit)
        ));
        self.jobs(&sql, [sql_bound(now_ms)])
    }

    fn wall_timed_jobs(&self, offset_ms: i64, limit: usize) -> StoreResult<Vec<Job>> {
        let sql = Self::select(&format!(
            "wall_offset_ms IS NOT NULL AND wall_offset_ms <> ?1 ORDER BY seq {}",
            limit_clause(limit)
        ));
        self.jobs(&sql, [offset_ms])
    }

    fn labelled_jobs(&self, tag: Option<&str>, chain_group_id: Option<&str>, limit: usize) -> StoreResult<Vec<Job>> {
        // One statement per shape, so that each can use its index.
        let limit = limit_clause(limit);
        match (tag, chain_group_id) {
            (Some(tag), Some(group)) => self.jobs(
                &Self::select(&format!("tag = ?1 AND chain_group_id = ?2 AND {LIVE} ORDER BY seq {limit}")),
                (tag, group),
            ),
            (Some(tag), None) => self.jobs(&Self::select(&format!("tag = ?1 AND {LIVE} ORDER BY seq {limit}")), [tag]),
            (None, Some(group)) => {
                self.jobs(&Self::select(&format!("chain_group_id = ?1 AND {LIVE} ORDER BY seq {limit}")), [group])
            }
            (None, None) => self.jobs(&Self::select(&format!("{LIVE} ORDER BY seq {limit}")), []),
        }
    }

    fn waiting_children(&self, parent: JobId, limit: usize) -> StoreResult<Vec<Job>> {
        let unseen = self.parent_unseen(parent);
        if unseen && !self.verify_cache {
            return Ok(Vec::new());
        }
        let sql = Self::select(&format!("parent_job_id = ?1 AND {LIVE} ORDER BY seq {}", limit_clause(limit)));
        let children = self.jobs(&sql, [parent.to_string()])?;
        assert!(!unseen || children.is_empty(), "the parent filter lost {parent}");
        Ok(children)
    }

    fn event_waiters(&self, name: &str, limit: usize) -> StoreResult<Vec<Job>> {
        let sql = Self::select(&format!(
            "wait_for_event = ?1 AND {WAITING} AND wait_for_event IS NOT NULL AND event_released = 0
             ORDER BY seq {}",
            limit_clause(limit)
        ));
        self.jobs(&sql, [name])
    }

    fn system_waiters(&self, limit: usize) -> StoreResult<Vec<Job>> {
        let sql = Self::select(&format!(
            "{WAITING} AND (wait_for_idle = 1 OR require_charging = 1) ORDER BY seq {}",
            limit_clause(limit)
        ));
        self.jobs(&sql, [])
    }

    fn process_holders(&self, limit: usize) -> StoreResult<Vec<Job>> {
        // Named: without statistics the planner would rather scan every job in seq order
        // than sort the few that hold a process (restart recovery with a million waiting).
        let sql = format!(
            "SELECT {} FROM jobs INDEXED BY jobs_processes LEFT JOIN job_specs USING (seq) WHERE {OCCUPYING} ORDER BY seq {}",
            codec::select_list(),
            limit_clause(limit)
        );
        self.jobs(&sql, [])
    }

    fn purgeable(&self, finished_before_ms: u64, limit: usize) -> StoreResult<Vec<Job>> {
        let sql = Self::select(&format!(
            "{TERMINAL} AND reap_pending = 0 AND finished_at_ms < ?1
             ORDER BY seq {}",
            limit_clause(limit)
        ));
        self.jobs(&sql, [sql_bound(finished_before_ms)])
    }

    fn query(&self, query: &JobQuery) -> StoreResult<JobPage> {
        assert!((1..=JobQuery::LIMIT_MAX).contains(&query.limit));
        let mut conditions: Vec<String> = Vec::new();
        let mut params: Vec<Value> = Vec::new();
        fn param(value: Value, params: &mut Vec<Value>) -> String {
            params.push(value);
            format!("?{}", params.len())
        }
        if !query.states.is_empty() {
            let list: Vec<String> =
                query.states.iter().map(|s| param(Value::Text(s.as_str().to_owned()), &mut params)).collect();
            conditions.push(format!("state IN ({})", list.join(", ")));
        }
        if !query.queues.is_empty() {
            let list: Vec<String> = query.queues.iter().map(|q| param(Value::Text(q.clone()), &mut params)).collect();
            conditions.push(format!("queue IN ({})", list.join(", ")));
        }
        if let Some(job_type) = &query.job_type {
            conditions.push(format!("job_type = {}", param(Value::Text(job_type.clone()), &mut params)));
        }
        if let Some(tag) = &query.tag {
            conditions.push(format!("tag = {}", param(Value::Text(tag.clone()), &mut params)));
        }
        if let Some(group) = &query.chain_group_id {
            conditions.push(format!("chain_group_id = {}", param(Value::Text(group.clone()), &mut params)));
        }
        if let Some(prefix) = &query.subject_key_prefix {
            // Bytes, not characters, and no LIKE: a prefix may hold '%', '_' or any byte.
            let p = param(Value::Blob(prefix.as_bytes().to_vec()), &mut params);
            conditions.push(format!("substr(CAST(subject_key AS BLOB), 1, length({p})) = {p}"));
        }
        if let Some(after) = query.created_after_ms {
            conditions.push(format!("created_at_ms > {}", param(Value::Integer(sql_bound(after)), &mut params)));
        }
        if let Some(after) = query.after_seq {
            let op = if query.descending { "<" } else { ">" };
            conditions.push(format!("seq {op} {}", param(Value::Integer(sql_bound(after)), &mut params)));
        }
        let filter = if conditions.is_empty() { "1".to_owned() } else { conditions.join(" AND ") };
        let direction = if query.descending { "DESC" } else { "ASC" };
        // One more than asked: whether it exists decides `next_after_seq`.
        let limit = limit_clause(query.limit + 1);
        let sql = Self::select(&format!("{filter} ORDER BY seq {direction} {limit}"));
        // Row by row, so that a page of large jobs stops at `bytes_max` without decoding
        // the rest: memory follows the bound, not the jobs' total size.
        let mut statement = self.conn.prepare_cached(&sql).map_err(store_error)?;
        let mut rows = statement.query(params_from_iter(params)).map_err(store_error)?;
        let mut items: Vec<Job> = Vec::new();
        let mut bytes = 0;
        let mut more = false;
        while let Some(row) = rows.next().map_err(store_error)? {
            if items.len() == query.limit || query.full_by_bytes(items.len(), bytes) {
                more = true;
                break;
            }
            let job = codec::decode(row)?;
            if !query.matches(&job) {
                // The schema check at open makes this a damaged file, not a bug to crash on.
                return Err(StoreError::Corrupt(format!("the query returned job {} that does not match it", job.id)));
            }
            bytes += job.data_bytes();
            items.push(job);
        }
        let next_after_seq = if more { items.last().map(|job| job.seq) } else { None };
        Ok(JobPage { items, next_after_seq })
    }

    fn queue_stats(&self) -> StoreResult<Vec<QueueStats>> {
        // The counts every write set keeps up to date (`write_counts`, table from migration
        // 0002): a few rows per queue, never a scan.
        let mut statement = self
            .conn
            .prepare_cached(
                "SELECT queue, state, jobs, wait_sum_ms, started FROM queue_counts WHERE jobs <> 0 ORDER BY queue",
            )
            .map_err(store_error)?;
        let mut rows = statement.query([]).map_err(store_error)?;
        // queue -> (stats, wait sum, started count), kept in name order as SQL gave it.
        let mut stats: Vec<(QueueStats, u64, u64)> = Vec::new();
        while let Some(row) = rows.next().map_err(store_error)? {
            let queue: String = row.get(0).map_err(store_error)?;
            let state: String = row.get(1).map_err(store_error)?;
            let state = state
                .parse::<JobState>()
                .map_err(|e| StoreError::Corrupt(format!("queue_counts.state: unknown state {:?}", e.0)))?;
            let nonnegative = |index: usize| -> StoreResult<u64> {
                let value: i64 = row.get(index).map_err(store_error)?;
                u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("queue_counts column {index} is {value}")))
            };
            let (count, wait_sum, started) = (nonnegative(2)?, nonnegative(3)?, nonnegative(4)?);
            if stats.last().is_none_or(|(last, _, _)| last.queue != queue) {
                stats.push((QueueStats { queue, ..QueueStats::default() }, 0, 0));
            }
            let entry = stats.last_mut().expect("pushed");
            // Saturating: sums of a damaged file's counts must not overflow the daemon.
            entry.0.counts[state as usize] = entry.0.counts[state as usize].saturating_add(count);
            entry.1 = entry.1.saturating_add(wait_sum);
            entry.2 = entry.2.saturating_add(started);
        }
        stats
            .into_iter()
            .map(|(mut queue, wait_sum, started)| {
                queue.avg_wait_ms = (started > 0).then(|| wait_sum / started);
                if queue.count(JobState::Queued) > 0 {
                    queue.oldest_queued_due_ms = recurring::oldest_queued_due(&self.conn, &queue.queue)?;
                }
                Ok(queue)
            })
            .collect()
    }

    fn paused_queues(&self) -> StoreResult<Vec<String>> {
        recurring::paused(&self.conn)
    }

    fn recurring(&self, name: &str) -> StoreResult<Option<Recurring>> {
        recurring::get(&self.conn, name)
    }

    fn recurring_list(&self) -> StoreResult<Vec<Recurring>> {
        recurring::all(&self.conn)
    }

    fn recurring_due(&self, now_ms: u64, limit: usize) -> StoreResult<Vec<Recurring>> {
        recurring::due(&self.conn, now_ms, limit)
    }

    fn commit(&mut self, writes: &WriteSet) -> StoreResult<()> {
        if writes.is_empty() {
            return Ok(());
        }
        // Inside a transaction the writer keeps open (group commit), a savepoint makes
        // this set all-or-nothing on its own; otherwise a transaction of its own, taking
        // the write lock at once so the version checks read what they write over.
        let outermost = self.conn.is_autocommit();
        let (begin, end, undo) = if outermost {
            ("BEGIN IMMEDIATE", "COMMIT", "ROLLBACK")
        } else {
            ("SAVEPOINT write_set", "RELEASE write_set", "ROLLBACK TO write_set; RELEASE write_set")
        };
        self.execute_cached(begin)?;
        let mark = self.cache.borrow().as_ref().map(|cache| cache.mark());
        let result = self.apply(writes).and_then(|()| self.execute_cached(end));
        if result.is_err() && !self.conn.is_autocommit() {
            // Best effort: SQLite may have rolled back already (full disk, I/O error).
            let _ = self.conn.execute_batch(undo);
        }
        if let Some(cache) = self.cache.borrow_mut().as_mut() {
            match (&result, outermost) {
                (Ok(()), true) => cache.committed(),
                (Ok(()), false) => {}
                // Undone to the savepoint, or the whole transaction gone: either way the
                // set's writes are not in the file.
                (Err(_), _) if outermost || self.conn.is_autocommit() => cache.rolled_back(),
                (Err(_), _) => cache.undo_to(mark.unwrap_or_default()),
            }
        }
        result
    }
}
