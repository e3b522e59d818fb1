//! The Postgres store: core's [`Store`] port on one Postgres database, which several
//! engines (daemons) may share.
//!
//! **Promises.** Every read answers exactly as core's reference `MemStore` does (same
//! jobs, same order, same limits); `adapters/tests/pg_differential.rs` holds it to that.
//! A `commit` is one transaction: all writes or none, every update and delete checked
//! against the version it was decided on, so a decision made on a read that another
//! engine has since overtaken is refused whole with [`StoreError::Conflict`]. The rules
//! that must hold across engines and that a stale read could break are kept by the
//! database itself (migration `0001_init.sql`): at most one job per subject holds a
//! process, at most one non-terminal job per (subject, generation), and inserts are
//! ordered on the locked `counters` row. Once `commit` returns `Ok`, the writes are
//! committed.
//!
//! **Never.** No rule of the engine lives here, and nothing Postgres-specific leaks
//! through the trait: errors come back as [`StoreError`]. The schema comes only from the
//! numbered files of `migrations/postgres/`.

mod codec;
pub mod logs;
pub mod schema;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use postgres::error::SqlState;
use postgres::types::ToSql;
use postgres::{Client, GenericClient, NoTls, Statement};
use semantica_core::{
    Job, JobId, JobPage, JobQuery, JobState, QueueStats, Recurring, Store, StoreError, StoreResult, Write, WriteSet,
};

use crate::queue_counts::{CountDeltas, Counted};
use crate::sqlite::recurring::{decode_request, encode_request};
use crate::sqlite::{Control, GroupCommitStore, OpenError};
use codec::{bound, ordered, Param};
pub use logs::{AppendError, LogAppend, PgLogs, LOG_CHUNK_BYTES_MAX};
pub use schema::PG_MIGRATIONS;

/// Non-terminal jobs.
const LIVE: &str = "(state = 'QUEUED' OR state = 'SCHEDULED' OR state = 'RUNNING')";
/// Non-terminal or `reap_pending`: core's "active".
const ACTIVE: &str = "(state = 'QUEUED' OR state = 'SCHEDULED' OR state = 'RUNNING' OR reap_pending)";
/// A process of the job may be alive.
const OCCUPYING: &str = "(state = 'RUNNING' OR reap_pending)";
/// How many rows of `queue_counts` each queue and state is spread over (migration 0004).
const COUNT_STRIPES: i32 = 16;
const WAITING: &str = "(state = 'QUEUED' OR state = 'SCHEDULED')";
const TERMINAL: &str = "state NOT IN ('QUEUED', 'SCHEDULED', 'RUNNING')";

/// The channel of the wake-ups: one per schema, so that daemons of other schemas on the
/// same database are not woken.
const WAKE_CHANNEL: &str = "'semantica.wake:' || current_schema()";

/// Wake-ups one `PgListener::wait` takes at most beyond the first.
const WAKE_DRAIN_MAX: usize = 1024;

/// Whether a committed write may let another daemon start a job: a job became `QUEUED`,
/// or one stopped holding its subject (and maybe a worker).
fn wakes(write: &Write) -> bool {
    match write {
        Write::Insert(job) => job.state == JobState::Queued,
        Write::Update(job) => job.state == JobState::Queued || !job.occupies_subject(),
        Write::QueuePaused { paused: false, .. } => true,
        _ => false,
    }
}

/// A connection that waits for the wake-ups of other daemons' commits (`LISTEN`): a
/// set that [`wakes`] sends `NOTIFY`, delivered at its COMMIT, so that an idle daemon
/// claims at once instead of at its next poll.
pub struct PgListener {
    client: Client,
}

impl PgListener {
    pub fn open(url: &str, options: &PgOptions) -> Result<PgListener, OpenError> {
        let mut client = PgStore::open(url, options)?.client.into_inner();
        let unavailable = |e: postgres::Error| OpenError::Unavailable(describe(&e));
        let channel: String = client.query_one(&format!("SELECT {WAKE_CHANNEL}"), &[]).map_err(unavailable)?.get(0);
        client.batch_execute(&format!("LISTEN \"{}\"", channel.replace('"', "\"\""))).map_err(unavailable)?;
        Ok(PgListener { client })
    }

    /// Waits up to `timeout` for wake-ups and takes all that came. `Ok(true)`: at least
    /// one from another server process than `own_pid` (the daemon's own writer, whose
    /// commits already poke its scheduler). An error: the connection is gone (open a new
    /// one; wake-ups may have been lost).
    pub fn wait(&mut self, timeout: std::time::Duration, own_pid: Option<i32>) -> Result<bool, String> {
        if self.client.is_closed() {
            return Err("the listening connection closed".into());
        }
        use postgres::fallible_iterator::FallibleIterator;
        let others = |notification: &postgres::Notification| Some(notification.process_id()) != own_pid;
        let mut notifications = self.client.notifications();
        let first = notifications.timeout_iter(timeout).next().map_err(|e| describe(&e))?;
        let mut woke = first.as_ref().is_some_and(others);
        // The ones already here, at most a bounded number: a wake-up is a wake-up.
        let mut pending = notifications.iter();
        for _ in 0..WAKE_DRAIN_MAX {
            match pending.next().map_err(|e| describe(&e))? {
                Some(notification) => woke |= others(&notification),
                None => break,
            }
        }
        Ok(woke)
    }
}

/// One daemon's lease, as `nodes` holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeLease {
    pub id: String,
    /// Epoch ms, by the database's clock.
    pub lease_expires_at_ms: u64,
    /// Its jobs that hold a worker (`RUNNING` or `reap_pending`).
    pub running: u64,
}

/// Where the store keeps its tables.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PgOptions {
    /// A schema of the database to keep every table in, created if missing (lower-case
    /// letters, digits and `_`, at most 63). `None`: the connection's `search_path`, as
    /// the URL sets it (by default `public`).
    pub schema: Option<String>,
}

/// One connection to the database, answering core's [`Store`] questions.
pub struct PgStore {
    client: RefCell<Client>,
    /// Statements prepared on this connection, by their text (looked up, never iterated).
    statements: RefCell<HashMap<String, Statement>>,
    /// The group-commit writer's transaction ([`GroupCommitStore`]), when one is open.
    writer_tx: Cell<WriterTx>,
    /// The server process of this connection: names the sender of its notifications.
    backend_pid: i32,
}

/// Where the writer's transaction stands. Postgres aborts a transaction whose statement
/// failed, and then refuses everything but a rollback (and answers `COMMIT` with a
/// silent rollback): the store remembers it, so that the writer never takes an aborted
/// transaction for a committed one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct WriterTx {
    open: bool,
    savepoint: bool,
    aborted: bool,
}

fn store_error(error: postgres::Error) -> StoreError {
    match error.code() {
        // Two daemons' transactions waited for each other's rows (or overtook one
        // another): this statement lost and its step may be decided again on fresh reads.
        Some(code) if *code == SqlState::T_R_DEADLOCK_DETECTED || *code == SqlState::T_R_SERIALIZATION_FAILURE => {
            StoreError::Conflict { job_id: JobId::from_u128(0), detail: describe(&error) }
        }
        Some(code) if code.code().starts_with("22") => StoreError::Corrupt(error.to_string()),
        _ => StoreError::Unavailable(describe(&error)),
    }
}

/// The error with the server's message (postgres' Display says only "db error").
fn describe(error: &postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{error}: {db}"),
        None => error.to_string(),
    }
}

fn conflict(job_id: JobId, detail: &str) -> StoreError {
    StoreError::Conflict { job_id, detail: detail.to_owned() }
}

/// A commit that the database refused: which rule, on which job.
fn commit_error(writes: &WriteSet, error: postgres::Error) -> StoreError {
    let Some(db) = error.as_db_error() else { return store_error(error) };
    let constraint = db.constraint().unwrap_or("");
    let first_job = || {
        writes.writes.iter().find_map(|write| match write {
            Write::Insert(job) | Write::Update(job) => Some(job.id),
            Write::Delete { id, .. } => Some(*id),
            _ => None,
        })
    };
    // The job the refused rule is about: the first one of the set that the rule covers.
    let named = |covers: &dyn Fn(&Job) -> bool| {
        writes
            .writes
            .iter()
            .find_map(|write| match write {
                Write::Insert(job) | Write::Update(job) if covers(job) => Some(job.id),
                _ => None,
            })
            .or_else(first_job)
            .unwrap_or(JobId::from_u128(0))
    };
    let code = db.code();
    if *code == SqlState::EXCLUSION_VIOLATION && constraint == "jobs_one_occupying_per_subject" {
        return conflict(named(&Job::occupies_subject), "another job of the subject holds a process");
    }
    if *code == SqlState::EXCLUSION_VIOLATION && constraint == "jobs_one_live_per_generation" {
        return conflict(named(&|job| !job.state.is_terminal()), "the subject has a live job of that generation");
    }
    if *code == SqlState::T_R_SERIALIZATION_FAILURE || *code == SqlState::T_R_DEADLOCK_DETECTED {
        return conflict(first_job().unwrap_or(JobId::from_u128(0)), "another writer overtook this one");
    }
    store_error(error)
}

/// A write that the database refused at once (not at commit).
fn write_error(job_id: JobId, error: postgres::Error) -> StoreError {
    let Some(db) = error.as_db_error() else { return store_error(error) };
    match (db.code(), db.constraint()) {
        (code, Some("jobs_id_key")) if *code == SqlState::UNIQUE_VIOLATION => conflict(job_id, "id exists"),
        (code, Some("jobs_pkey")) if *code == SqlState::UNIQUE_VIOLATION => {
            conflict(job_id, "sequence not above the highest")
        }
        (code, _) if *code == SqlState::CHECK_VIOLATION || *code == SqlState::NOT_NULL_VIOLATION => {
            StoreError::Corrupt(format!("job {job_id} breaks the schema: {}", describe(&error)))
        }
        _ => store_error(error),
    }
}

/// A connection for the store's short statements. JIT compilation is off: it pays only
/// for long analytic queries, and a plan whose estimate crossed `jit_above_cost` (the
/// `nodes` listing of `admin.stats.v1`, on a table never analyzed) spent some 20 ms
/// compiling a query that runs in a fraction of one.
pub(crate) fn connect(url: &str) -> Result<Client, postgres::Error> {
    let mut client = Client::connect(url, NoTls)?;
    client.batch_execute("SET jit = off")?;
    Ok(client)
}

fn valid_schema_name(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit()
}

/// The statement for `sql`, prepared once per connection.
fn statement(
    statements: &RefCell<HashMap<String, Statement>>,
    client: &mut impl GenericClient,
    sql: &str,
) -> Result<Statement, postgres::Error> {
    if let Some(statement) = statements.borrow().get(sql) {
        return Ok(statement.clone());
    }
    let statement = client.prepare(sql)?;
    statements.borrow_mut().insert(sql.to_owned(), statement.clone());
    Ok(statement)
}

fn refs(params: &[Param]) -> Vec<&(dyn ToSql + Sync)> {
    params.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)).collect()
}

fn select(where_order: &str) -> String {
    format!("SELECT {} FROM jobs WHERE {where_order}", codec::select_list())
}

fn nonnegative(value: i64, what: &str) -> StoreResult<u64> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("{what} is {value}")))
}

impl PgStore {
    /// Connects to `url` (`postgres://user:password@host:port/database`, or any form the
    /// `postgres` crate takes), chooses the schema of `options`, and brings it up to
    /// [`PG_MIGRATIONS`] under the migration lock (see [`schema`]).
    pub fn open(url: &str, options: &PgOptions) -> Result<PgStore, OpenError> {
        let unavailable = |e: postgres::Error| OpenError::Unavailable(describe(&e));
        let mut client = connect(url).map_err(unavailable)?;
        if let Some(name) = &options.schema {
            if !valid_schema_name(name) {
                return Err(OpenError::Unavailable(format!(
                    "schema {name:?}: use 1..=63 lower-case letters, digits and _, not starting with a digit"
                )));
            }
            // Under a lock of its own: two openers creating the same schema at once would
            // otherwise race on the catalog's unique index.
            let mut tx = client.transaction().map_err(unavailable)?;
            tx.execute("SELECT pg_advisory_xact_lock(hashtextextended('semantica.schema:' || $1, 0))", &[name])
                .map_err(unavailable)?;
            tx.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS \"{name}\"")).map_err(unavailable)?;
            tx.commit().map_err(unavailable)?;
            client.batch_execute(&format!("SET search_path TO \"{name}\"")).map_err(unavailable)?;
        }
        schema::migrate(&mut client, PG_MIGRATIONS)?;
        let backend_pid: i32 =
            client.query_one("SELECT pg_backend_pid()", &[]).and_then(|row| row.try_get(0)).map_err(unavailable)?;
        Ok(PgStore {
            client: RefCell::new(client),
            statements: RefCell::new(HashMap::new()),
            writer_tx: Cell::new(WriterTx::default()),
            backend_pid,
        })
    }

    /// The rows of `queue_counts` this connection's write sets add to (migration 0004):
    /// connections of different daemons mostly add to different rows.
    fn count_stripe(&self) -> i16 {
        (self.backend_pid.rem_euclid(COUNT_STRIPES)) as i16
    }

    /// The server process of this connection, as a listener sees it in the notifications
    /// this store's commits send (so that a daemon can leave out its own).
    pub fn backend_pid(&self) -> i32 {
        self.backend_pid
    }

    /// Takes the node id `node` for as long as this connection lives (a session advisory
    /// lock per schema and id), or says that another live daemon holds it: two daemons
    /// under one id would each take the other's running jobs for their own crashed ones.
    pub fn hold_node_lock(&self, node: &str) -> Result<(), String> {
        let taken: bool = self
            .client
            .borrow_mut()
            .query_one(
                "SELECT pg_try_advisory_lock(hashtextextended('semantica.node:' || current_schema() || ':' || $1::text, 0))",
                &[&node],
            )
            .and_then(|row| row.try_get(0))
            .map_err(|e| describe(&e))?;
        if taken {
            Ok(())
        } else {
            Err(format!(
                "another semantica daemon with node id {node:?} runs on this database; give each daemon its own \
                 SEMANTICA_NODE_ID"
            ))
        }
    }

    /// Registers `node` with a lease of `lease_ms` from the database's `now()`, or takes
    /// its row again (a restart, or a node that lost its lease and has ended its attempts).
    /// Waits for a set that holds the row (`Write::NodeLeaseExpired`) to commit.
    pub fn register_node(&self, node: &str, lease_ms: u64) -> StoreResult<()> {
        self.rows(
            "INSERT INTO nodes (id, lease_expires_at) VALUES ($1, now() + $2::bigint * interval '1 millisecond')
             ON CONFLICT (id) DO UPDATE SET lease_expires_at = EXCLUDED.lease_expires_at,
                                            registered_at = now(), term = nodes.term + 1",
            &[&node, &bound(lease_ms)],
        )?;
        Ok(())
    }

    /// Moves `node`'s lease to `lease_ms` from now, if it has not expired. `false`: it
    /// expired (or the node was forgotten); the others may be ending its attempts, and the
    /// node must stop its processes, end what is left of its attempts and register again.
    pub fn renew_node(&self, node: &str, lease_ms: u64) -> StoreResult<bool> {
        let rows = self.rows(
            "UPDATE nodes SET lease_expires_at = now() + $2::bigint * interval '1 millisecond'
             WHERE id = $1 AND lease_expires_at > now() RETURNING id",
            &[&node, &bound(lease_ms)],
        )?;
        Ok(!rows.is_empty())
    }

    /// Nodes other than `except` whose lease has expired, oldest expiry first.
    pub fn expired_nodes(&self, except: &str, limit: usize) -> StoreResult<Vec<String>> {
        let rows = self.rows(
            "SELECT id FROM nodes WHERE lease_expires_at < now() AND id <> $1 ORDER BY lease_expires_at, id LIMIT $2",
            &[&except, &bound(limit as u64)],
        )?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    /// Deletes an expired node's row once none of its jobs holds a worker. `true`: gone.
    pub fn forget_node(&self, node: &str) -> StoreResult<bool> {
        let rows = self.rows(
            &format!(
                "DELETE FROM nodes WHERE id = $1 AND lease_expires_at < now()
                 AND NOT EXISTS (SELECT 1 FROM jobs WHERE node = $1 AND {OCCUPYING}) RETURNING id"
            ),
            &[&node],
        )?;
        Ok(!rows.is_empty())
    }

    /// Every registered node with its lease (epoch ms by the database's clock) and the
    /// jobs it holds a worker for, by id.
    pub fn nodes(&self) -> StoreResult<Vec<NodeLease>> {
        let rows = self.rows(
            &format!(
                "SELECT id, (extract(epoch FROM lease_expires_at) * 1000)::bigint,
                        (SELECT count(*) FROM jobs WHERE jobs.node = nodes.id AND {OCCUPYING})
                 FROM nodes ORDER BY id"
            ),
            &[],
        )?;
        rows.iter()
            .map(|row| {
                Ok(NodeLease {
                    id: row.get(0),
                    lease_expires_at_ms: nonnegative(row.get(1), "nodes.lease_expires_at")?,
                    running: nonnegative(row.get(2), "a count")?,
                })
            })
            .collect()
    }

    /// Drops `schema` and everything in it: for throwaway schemas (tests, the simulator),
    /// never called by the daemon.
    pub fn drop_schema(url: &str, schema: &str) -> Result<(), String> {
        if !valid_schema_name(schema) {
            return Err(format!("schema {schema:?} is not a name PgStore makes"));
        }
        let mut client = Client::connect(url, NoTls).map_err(|e| describe(&e))?;
        client.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE")).map_err(|e| describe(&e))
    }

    /// The schema version the database is at.
    pub fn schema_version(&self) -> StoreResult<u32> {
        schema::current_version(&mut self.client.borrow_mut()).map_err(|e| StoreError::Unavailable(e.to_string()))
    }

    fn rows(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> StoreResult<Vec<postgres::Row>> {
        let mut client = self.client.borrow_mut();
        let rows =
            statement(&self.statements, &mut *client, sql).and_then(|statement| client.query(&statement, params));
        if rows.is_err() {
            self.mark_aborted();
        }
        rows.map_err(store_error)
    }

    fn mark_aborted(&self) {
        let mut tx = self.writer_tx.get();
        if tx.open {
            tx.aborted = true;
            self.writer_tx.set(tx);
        }
    }

    fn jobs(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> StoreResult<Vec<Job>> {
        self.rows(sql, params)?.iter().map(codec::decode).collect()
    }

    fn recurrings(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> StoreResult<Vec<Recurring>> {
        self.rows(sql, params)?.iter().map(decode_recurring).collect()
    }

    fn count(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> StoreResult<u64> {
        let rows = self.rows(sql, params)?;
        let value: i64 = rows.first().ok_or_else(|| StoreError::Corrupt("a count without a row".into()))?.get(0);
        nonnegative(value, "a count")
    }
}

const RECURRING_COLUMNS: &str = "name, cron, timezone, job_json, next_at_ms, last_slot_ms, last_enqueued_job_id";

fn decode_recurring(row: &postgres::Row) -> StoreResult<Recurring> {
    let cell = |e: postgres::Error| StoreError::Corrupt(format!("recurring: {e}"));
    let time = |index: usize, column: &str| -> StoreResult<Option<u64>> {
        let value: Option<i64> = row.try_get(index).map_err(cell)?;
        value.map(|v| nonnegative(v, &format!("recurring.{column}"))).transpose()
    };
    let job_json: String = row.try_get(3).map_err(cell)?;
    let last_enqueued: Option<String> = row.try_get(6).map_err(cell)?;
    let last_enqueued_job_id = last_enqueued
        .map(|text| {
            text.parse::<JobId>().map_err(|e| StoreError::Corrupt(format!("recurring.last_enqueued_job_id: {e}")))
        })
        .transpose()?;
    Ok(Recurring {
        name: row.try_get(0).map_err(cell)?,
        cron: row.try_get(1).map_err(cell)?,
        timezone: row.try_get(2).map_err(cell)?,
        job: decode_request(&job_json)?,
        next_at_ms: time(4, "next_at_ms")?,
        last_slot_ms: time(5, "last_slot_ms")?,
        last_enqueued_job_id,
    })
}

/// One write set inside the transaction that `tx` holds open.
struct Apply<'a, C: GenericClient> {
    tx: &'a mut C,
    statements: &'a RefCell<HashMap<String, Statement>>,
    /// This connection's rows of `queue_counts`.
    stripe: i16,
}

impl<C: GenericClient> Apply<'_, C> {
    fn execute(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, postgres::Error> {
        let statement = statement(self.statements, self.tx, sql)?;
        self.tx.execute(&statement, params)
    }

    fn query(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<postgres::Row>, postgres::Error> {
        let statement = statement(self.statements, self.tx, sql)?;
        self.tx.query(&statement, params)
    }

    fn all(&mut self, writes: &WriteSet) -> StoreResult<()> {
        // Inserts are judged against the store as it was before the set, as MemStore does.
        // The counters row is locked first: engines inserting at once take turns here, and
        // the second finds the first's sequence numbers.
        let has_insert = writes.writes.iter().any(|write| matches!(write, Write::Insert(_)));
        let max_seq_before = if has_insert {
            let rows =
                self.query("SELECT max_seq FROM counters WHERE singleton = 1 FOR UPDATE", &[]).map_err(store_error)?;
            let value: i64 = rows.first().ok_or_else(|| StoreError::Corrupt("counters has no row".into()))?.get(0);
            nonnegative(value, "counters.max_seq")?
        } else {
            0
        };
        let mut max_seq = max_seq_before;
        let mut touched = std::collections::BTreeSet::new();
        let mut counts = CountDeltas::default();
        for write in &writes.writes {
            match write {
                Write::Insert(job) => {
                    assert!(touched.insert(job.id), "job {} written twice in one write set", job.id);
                    assert_eq!(job.version, 1, "job {} inserted at version {}", job.id, job.version);
                    self.insert(job, max_seq_before)?;
                    counts.add(&Counted::of(job), 1);
                    max_seq = max_seq.max(job.seq);
                }
                Write::Update(job) => {
                    assert!(touched.insert(job.id), "job {} written twice in one write set", job.id);
                    let before = self.update(job)?;
                    counts.add(&before, -1);
                    counts.add(&Counted::of(job), 1);
                }
                Write::Delete { id, version } => {
                    assert!(touched.insert(*id), "job {id} written twice in one write set");
                    let deleted = self
                        .query(
                            "DELETE FROM jobs WHERE id = $1 AND version = $2
                             RETURNING queue, state, started_at_ms, due_at_ms",
                            &[&id.to_string(), &ordered(*version, "version")],
                        )
                        .map_err(store_error)?;
                    let [row] = &deleted[..] else {
                        return Err(conflict(*id, "version changed since it was read"));
                    };
                    counts.add(&Counted::stored(row.get(0), row.get(1), row.get(2), row.get(3))?, -1);
                }
                Write::QueuePaused { queue, paused: true } => {
                    self.execute("INSERT INTO paused_queues (queue) VALUES ($1) ON CONFLICT DO NOTHING", &[queue])
                        .map_err(store_error)?;
                }
                Write::QueuePaused { queue, paused: false } => {
                    self.execute("DELETE FROM paused_queues WHERE queue = $1", &[queue]).map_err(store_error)?;
                }
                Write::PutRecurring(item) => self.put_recurring(item)?,
                Write::DeleteRecurring { name } => {
                    self.execute("DELETE FROM recurring WHERE name = $1", &[name]).map_err(store_error)?;
                }
                Write::NodeLeaseExpired { node } => {
                    // Holds the lease row to COMMIT: the node cannot renew or register
                    // again until this set is in, and no job it claims afterwards is ours.
                    // (`now()` is the transaction's start: older, so a lease looks live a
                    // little longer here than to the node, the safe side.) A node without a
                    // row was forgotten: it registers anew before it claims anything.
                    let rows = self
                        .query("SELECT lease_expires_at >= now() FROM nodes WHERE id = $1 FOR UPDATE", &[node])
                        .map_err(store_error)?;
                    if rows.first().is_some_and(|row| row.get::<_, bool>(0)) {
                        return Err(conflict(JobId::from_u128(0), &format!("node {node} renewed its lease")));
                    }
                }
            }
        }
        // Last, in (queue, state) order: a count row stays locked to COMMIT. Writers add to
        // their own stripes; two whose stripes coincide take one set's rows in one order,
        // though a group commit's later sets may still take others, and a deadlock
        // between them is refused and decided again like any other conflict.
        let stripe = self.stripe;
        for ((queue, state), (jobs, wait_sum_ms, started)) in counts.changes() {
            self.execute(
                "INSERT INTO queue_counts (stripe, queue, state, jobs, wait_sum_ms, started)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (queue, state, stripe) DO UPDATE SET jobs = queue_counts.jobs + excluded.jobs,
                     wait_sum_ms = queue_counts.wait_sum_ms + excluded.wait_sum_ms,
                     started = queue_counts.started + excluded.started",
                &[&stripe, &queue, &state.as_str(), &jobs, &wait_sum_ms, &started],
            )
            .map_err(store_error)?;
        }
        if max_seq > max_seq_before {
            self.execute("UPDATE counters SET max_seq = $1 WHERE singleton = 1", &[&ordered(max_seq, "seq")])
                .map_err(store_error)?;
        }
        if writes.writes.iter().any(wakes) {
            // Sent at COMMIT, and only then; Postgres folds a transaction's equal ones.
            self.execute(&format!("SELECT pg_notify({WAKE_CHANNEL}, '')"), &[]).map_err(store_error)?;
        }
        Ok(())
    }

    fn insert(&mut self, job: &Job, max_seq_before: u64) -> StoreResult<()> {
        static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
            format!(
                "INSERT INTO jobs ({}) VALUES ({})",
                codec::select_list(),
                (1..=codec::COLUMNS.len()).map(|n| format!("${n}")).collect::<Vec<_>>().join(", ")
            )
        });
        let values = codec::encode(job);
        self.execute(&SQL, &refs(&values)).map_err(|e| write_error(job.id, e))?;
        // Judged after the INSERT, so that a taken id is named first, as MemStore names it.
        if job.seq <= max_seq_before {
            return Err(conflict(job.id, "sequence not above the highest"));
        }
        self.execute(
            "INSERT INTO subjects (subject_key, max_generation) VALUES ($1, $2)
             ON CONFLICT (subject_key) DO UPDATE
             SET max_generation = greatest(subjects.max_generation, excluded.max_generation)",
            &[&job.subject_key, &ordered(job.generation, "generation")],
        )
        .map_err(store_error)?;
        Ok(())
    }

    /// Returns what the row counted for at the version read.
    fn update(&mut self, job: &Job) -> StoreResult<Counted> {
        assert!(job.version >= 2, "an update of job {} carries version {}", job.id, job.version);
        // Only the mutable columns are set ($1..), then seq, id and the version read.
        // Under READ COMMITTED an UPDATE that waited for another transaction's write to
        // the row re-reads it: a version that moved meanwhile matches nothing, so the
        // check holds across engines too. `old` is the row as the statement's snapshot
        // has it: when the version still matches, that is the version read (versions only
        // grow), whose state and start the counts take out.
        static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
            let set = codec::MUTABLE_COLUMNS
                .iter()
                .enumerate()
                .map(|(n, column)| format!("{column} = ${}", n + 1))
                .collect::<Vec<_>>()
                .join(", ");
            let n = codec::MUTABLE_COLUMNS.len();
            format!(
                "UPDATE jobs SET {set} FROM jobs AS old
                 WHERE jobs.seq = ${} AND jobs.id = ${} AND jobs.version = ${} AND old.seq = jobs.seq
                 RETURNING old.state, old.started_at_ms, old.due_at_ms",
                n + 1,
                n + 2,
                n + 3
            )
        });
        let mut row: Vec<Option<Param>> = codec::encode(job).into_iter().map(Some).collect();
        let mut take = |column: &str| {
            let index = codec::COLUMNS.iter().position(|c| *c == column).expect("a column of jobs");
            row[index].take().expect("each column taken once")
        };
        let mut values: Vec<Param> = codec::MUTABLE_COLUMNS.iter().map(|column| take(column)).collect();
        values.push(take("seq"));
        values.push(take("id"));
        values.push(Box::new(ordered(job.version - 1, "version")));
        let updated = self.query(&SQL, &refs(&values)).map_err(|e| write_error(job.id, e))?;
        if let [row] = &updated[..] {
            return Counted::stored(job.queue.clone(), row.get(0), row.get(1), row.get(2));
        }
        let stored =
            self.query("SELECT version, seq FROM jobs WHERE id = $1", &[&job.id.to_string()]).map_err(store_error)?;
        match stored.first().map(|row| (row.get::<_, i64>(0), row.get::<_, i64>(1))) {
            None => Err(conflict(job.id, "job no longer exists")),
            Some((version, _)) if version as u64 + 1 != job.version => {
                Err(conflict(job.id, "version changed since it was read"))
            }
            Some((_, seq)) => {
                Err(StoreError::Corrupt(format!("job {} is stored at seq {seq}, not {} as read", job.id, job.seq)))
            }
        }
    }

    fn put_recurring(&mut self, recurring: &Recurring) -> StoreResult<()> {
        let time = |value: Option<u64>, column: &str| value.map(|v| ordered(v, column));
        self.execute(
            &format!(
                "INSERT INTO recurring ({RECURRING_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (name) DO UPDATE SET cron = excluded.cron, timezone = excluded.timezone,
                     job_json = excluded.job_json, next_at_ms = excluded.next_at_ms,
                     last_slot_ms = excluded.last_slot_ms, last_enqueued_job_id = excluded.last_enqueued_job_id"
            ),
            &[
                &recurring.name,
                &recurring.cron,
                &recurring.timezone,
                &encode_request(&recurring.job),
                &time(recurring.next_at_ms, "next_at_ms"),
                &time(recurring.last_slot_ms, "last_slot_ms"),
                &recurring.last_enqueued_job_id.map(|id| id.to_string()),
            ],
        )
        .map_err(store_error)?;
        Ok(())
    }
}

impl Store for PgStore {
    fn get(&self, id: JobId) -> StoreResult<Option<Job>> {
        static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| select("id = $1"));
        let mut jobs = self.jobs(&SQL, &[&id.to_string()])?;
        if jobs.len() > 1 {
            return Err(StoreError::Corrupt(format!("jobs.id {id} is on {} rows", jobs.len())));
        }
        Ok(jobs.pop())
    }

    fn max_generation(&self, subject_key: &str) -> StoreResult<Option<u64>> {
        let rows = self.rows("SELECT max_generation FROM subjects WHERE subject_key = $1", &[&subject_key])?;
        rows.first().map(|row| nonnegative(row.get(0), "subjects.max_generation")).transpose()
    }

    fn max_seq(&self) -> StoreResult<u64> {
        // The engine numbers a new job from this read. Inside the writer's transaction the
        // row is locked here, not only at the insert: the read then stays current until
        // COMMIT (other daemons' inserts wait for it), so an insert cannot lose the race
        // for the next seq. Read unlocked, three daemons enqueueing at once lost it over
        // and over, and a step ran out of its Conflict retries (5001).
        if self.writer_tx.get().open {
            self.count("SELECT max_seq FROM counters WHERE singleton = 1 FOR UPDATE", &[])
        } else {
            self.count("SELECT max_seq FROM counters WHERE singleton = 1", &[])
        }
    }

    fn active_jobs_of_subject(&self, subject_key: &str) -> StoreResult<Vec<Job>> {
        static SQL: std::sync::LazyLock<String> =
            std::sync::LazyLock::new(|| select(&format!("subject_key = $1 AND {ACTIVE} ORDER BY seq")));
        self.jobs(&SQL, &[&subject_key])
    }

    fn occupying_job_ids(&self, subject_key: &str) -> StoreResult<Vec<JobId>> {
        let rows = self.rows(
            &format!("SELECT id FROM jobs WHERE subject_key = $1 AND {OCCUPYING} ORDER BY seq"),
            &[&subject_key],
        )?;
        rows.iter()
            .map(|row| {
                let id: String = row.get(0);
                id.parse::<JobId>().map_err(|e| StoreError::Corrupt(format!("jobs.id: {e}")))
            })
            .collect()
    }

    fn claim_candidates(
        &self,
        queue: &str,
        min_priority: Option<i32>,
        after: Option<(i32, u64)>,
        limit: usize,
    ) -> StoreResult<Vec<Job>> {
        // Rows another daemon's open claim holds are skipped, not waited for (SKIP LOCKED),
        // and the candidates this one lists stay locked to its COMMIT, so two daemons
        // claiming at once take different jobs. MATERIALIZED: the LIMIT applies before
        // any join, so no more rows are locked than asked for. The exclusion constraints
        // stay the guard; this only keeps daemons from racing for the same rows.
        static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
            format!(
                "WITH candidates AS MATERIALIZED (
                     SELECT seq FROM jobs
                     WHERE state = 'QUEUED' AND queue = $1 AND priority >= $2
                       AND (priority < $4 OR (priority = $4 AND seq > $5))
                       AND NOT EXISTS (SELECT 1 FROM jobs AS other
                                       WHERE other.subject_key = jobs.subject_key
                                         AND (other.state = 'RUNNING' OR other.reap_pending))
                     ORDER BY priority DESC, seq LIMIT $3
                     FOR UPDATE SKIP LOCKED)
                 SELECT {} FROM jobs WHERE seq IN (SELECT seq FROM candidates) ORDER BY priority DESC, seq",
                codec::select_list()
            )
        });
        let floor = min_priority.unwrap_or(i32::MIN);
        // No `after`: from the very first (every seq is above -1).
        let (after_priority, after_seq) = match after {
            Some((priority, seq)) => (priority, i64::try_from(seq).unwrap_or(i64::MAX)),
            None => (i32::MAX, -1),
        };
        self.jobs(&SQL, &[&queue, &floor, &bound(limit as u64), &after_priority, &after_seq])
    }

    fn ready_queues(&self) -> StoreResult<Vec<String>> {
        // From the kept counts (migration 0004), which every write set changes in its own
        // transaction, so they agree with the jobs this statement sees. A seek into the
        // queued jobs' index instead (asked at every claim) stepped over the entries of
        // every job claimed since the last vacuum: 7,000 heap fetches, 2 ms, in a drain.
        let rows = self.rows(
            "SELECT queue FROM queue_counts WHERE state = 'QUEUED' GROUP BY queue HAVING sum(jobs) > 0 ORDER BY queue",
            &[],
        )?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    fn process_count(&self, queue: Option<&str>) -> StoreResult<usize> {
        let count = match queue {
            Some(queue) => {
                self.count(&format!("SELECT count(*) FROM jobs WHERE {OCCUPYING} AND queue = $1"), &[&queue])
            }
            None => self.count(&format!("SELECT count(*) FROM jobs WHERE {OCCUPYING}"), &[]),
        }?;
        usize::try_from(count).map_err(|_| StoreError::Corrupt(format!("count {count}")))
    }

    fn due_jobs(&self, now_ms: u64, limit: usize) -> StoreResult<Vec<Job>> {
        static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
            select(&format!(
                "wake_at_ms IS NOT NULL AND wake_at_ms <= $1 AND {ACTIVE} ORDER BY wake_at_ms, seq LIMIT $2"
            ))
        });
        self.jobs(&SQL, &[&bound(now_ms), &bound(limit as u64)])
    }

    fn wall_timed_jobs(&self, offset_ms: i64, limit: usize) -> StoreResult<Vec<Job>> {
        static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
            select(&format!("wall_offset_ms IS NOT NULL AND wall_offset_ms <> $1 AND {ACTIVE} ORDER BY seq LIMIT $2"))
        });
        self.jobs(&SQL, &[&offset_ms, &bound(limit as u64)])
    }

    fn labelled_jobs(&self, tag: Option<&str>, chain_group_id: Option<&str>, limit: usize) -> StoreResult<Vec<Job>> {
        let limit = bound(limit as u64);
        match (tag, chain_group_id) {
            (Some(tag), Some(group)) => self.jobs(
                &select(&format!("tag = $1 AND chain_group_id = $2 AND {LIVE} ORDER BY seq LIMIT $3")),
                &[&tag, &group, &limit],
            ),
            (Some(tag), None) => {
                self.jobs(&select(&format!("tag = $1 AND {LIVE} ORDER BY seq LIMIT $2")), &[&tag, &limit])
            }
            (None, Some(group)) => {
                self.jobs(&select(&format!("chain_group_id = $1 AND {LIVE} ORDER BY seq LIMIT $2")), &[&group, &limit])
            }
            (None, None) => self.jobs(&select(&format!("{LIVE} ORDER BY seq LIMIT $1")), &[&limit]),
        }
    }

    fn waiting_children(&self, parent: JobId, limit: usize) -> StoreResult<Vec<Job>> {
        self.jobs(
            &select(&format!("parent_job_id = $1 AND {LIVE} ORDER BY seq LIMIT $2")),
            &[&parent.to_string(), &bound(limit as u64)],
        )
    }

    fn event_waiters(&self, name: &str, limit: usize) -> StoreResult<Vec<Job>> {
        self.jobs(
            &select(&format!(
                "wait_for_event = $1 AND {WAITING} AND wait_for_event IS NOT NULL AND NOT event_released
                 ORDER BY seq LIMIT $2"
            )),
            &[&name, &bound(limit as u64)],
        )
    }

    fn system_waiters(&self, limit: usize) -> StoreResult<Vec<Job>> {
        self.jobs(
            &select(&format!("{WAITING} AND (wait_for_idle OR require_charging) ORDER BY seq LIMIT $1")),
            &[&bound(limit as u64)],
        )
    }

    fn process_holders(&self, limit: usize) -> StoreResult<Vec<Job>> {
        self.jobs(&select(&format!("{OCCUPYING} ORDER BY seq LIMIT $1")), &[&bound(limit as u64)])
    }

    fn jobs_of_node(&self, node: &str, limit: usize) -> StoreResult<Vec<Job>> {
        static SQL: std::sync::LazyLock<String> =
            std::sync::LazyLock::new(|| select(&format!("node = $1 AND {OCCUPYING} ORDER BY seq LIMIT $2")));
        self.jobs(&SQL, &[&node, &bound(limit as u64)])
    }

    fn node_process_count(&self, queue: Option<&str>, node: &str) -> StoreResult<usize> {
        let count = match queue {
            Some(queue) => self.count(
                &format!("SELECT count(*) FROM jobs WHERE {OCCUPYING} AND node = $1 AND queue = $2"),
                &[&node, &queue],
            ),
            None => self.count(&format!("SELECT count(*) FROM jobs WHERE {OCCUPYING} AND node = $1"), &[&node]),
        }?;
        usize::try_from(count).map_err(|_| StoreError::Corrupt(format!("count {count}")))
    }

    fn purgeable(&self, finished_before_ms: u64, limit: usize) -> StoreResult<Vec<Job>> {
        self.jobs(
            &select(&format!(
                "{TERMINAL} AND NOT reap_pending AND finished_at_ms IS NOT NULL AND finished_at_ms < $1
                 ORDER BY seq LIMIT $2"
            )),
            &[&bound(finished_before_ms), &bound(limit as u64)],
        )
    }

    fn query(&self, query: &JobQuery) -> StoreResult<JobPage> {
        assert!((1..=JobQuery::LIMIT_MAX).contains(&query.limit));
        let mut conditions: Vec<String> = Vec::new();
        let mut params: Vec<Param> = Vec::new();
        fn param(value: Param, params: &mut Vec<Param>) -> String {
            params.push(value);
            format!("${}", params.len())
        }
        if !query.states.is_empty() {
            let states: Vec<String> = query.states.iter().map(|s| s.as_str().to_owned()).collect();
            conditions.push(format!("state = ANY({})", param(Box::new(states), &mut params)));
        }
        if !query.queues.is_empty() {
            conditions.push(format!("queue = ANY({})", param(Box::new(query.queues.clone()), &mut params)));
        }
        if let Some(job_type) = &query.job_type {
            conditions.push(format!("job_type = {}", param(Box::new(job_type.clone()), &mut params)));
        }
        if let Some(tag) = &query.tag {
            conditions.push(format!("tag = {}", param(Box::new(tag.clone()), &mut params)));
        }
        if let Some(group) = &query.chain_group_id {
            conditions.push(format!("chain_group_id = {}", param(Box::new(group.clone()), &mut params)));
        }
        if let Some(prefix) = &query.subject_key_prefix {
            // No LIKE: a prefix may hold '%' or '_'.
            conditions.push(format!("starts_with(subject_key, {})", param(Box::new(prefix.clone()), &mut params)));
        }
        if let Some(after) = query.created_after_ms {
            conditions.push(format!("created_at_ms > {}", param(Box::new(bound(after)), &mut params)));
        }
        if let Some(after) = query.after_seq {
            let op = if query.descending { "<" } else { ">" };
            conditions.push(format!("seq {op} {}", param(Box::new(bound(after)), &mut params)));
        }
        let filter = if conditions.is_empty() { "true".to_owned() } else { conditions.join(" AND ") };
        let direction = if query.descending { "DESC" } else { "ASC" };
        // One more than asked: whether it exists decides `next_after_seq`.
        let limit = param(Box::new((query.limit + 1) as i64), &mut params);
        let sql = select(&format!("{filter} ORDER BY seq {direction} LIMIT {limit}"));
        // Row by row as the server sends them (not every row of the LIMIT at once), so that
        // a page of large jobs stops at `bytes_max`: memory follows the bound, as on SQLite.
        use postgres::fallible_iterator::FallibleIterator;
        let mut client = self.client.borrow_mut();
        let params = refs(&params);
        let mut rows = statement(&self.statements, &mut *client, &sql)
            .and_then(|statement| client.query_raw(&statement, params.iter().copied()))
            .inspect_err(|_| self.mark_aborted())
            .map_err(store_error)?;
        let mut items: Vec<Job> = Vec::new();
        let mut bytes = 0;
        let mut more = false;
        while let Some(row) = rows.next().inspect_err(|_| self.mark_aborted()).map_err(store_error)? {
            if items.len() == query.limit || query.full_by_bytes(items.len(), bytes) {
                more = true;
                break;
            }
            let job = codec::decode(&row)?;
            if !query.matches(&job) {
                return Err(StoreError::Corrupt(format!("the query returned job {} that does not match it", job.id)));
            }
            bytes += job.data_bytes();
            items.push(job);
        }
        let next_after_seq = if more { items.last().map(|job| job.seq) } else { None };
        Ok(JobPage { items, next_after_seq })
    }

    fn queue_stats(&self) -> StoreResult<Vec<QueueStats>> {
        // The counts every write set keeps up to date (migration 0004), summed over the
        // stripes: a few rows per queue, never a scan of the jobs. The oldest queued job of
        // a queue is one seek of `jobs_queued_due`.
        let rows = self.rows(
            "SELECT queue, state, jobs, wait_sum_ms, started,
                    CASE WHEN state = 'QUEUED' THEN
                        (SELECT min(due_at_ms) FROM jobs WHERE jobs.state = 'QUEUED' AND jobs.queue = counts.queue)
                    END
             FROM (SELECT queue, state, sum(jobs)::bigint AS jobs, sum(wait_sum_ms)::bigint AS wait_sum_ms,
                          sum(started)::bigint AS started
                   FROM queue_counts GROUP BY queue, state) AS counts
             WHERE jobs <> 0 ORDER BY queue, state",
            &[],
        )?;
        // queue -> (stats, wait sum, started count), in name order as SQL gave it.
        let mut stats: Vec<(QueueStats, u64, u64)> = Vec::new();
        for row in &rows {
            let queue: String = row.get(0);
            let state: String = row.get(1);
            let state = state
                .parse::<JobState>()
                .map_err(|e| StoreError::Corrupt(format!("queue_counts.state: unknown state {:?}", e.0)))?;
            let count = nonnegative(row.get(2), "a count")?;
            let wait_sum = nonnegative(row.get(3), "a wait sum")?;
            let started = nonnegative(row.get(4), "a count")?;
            let oldest: Option<i64> = row.get(5);
            if stats.last().is_none_or(|(last, _, _)| last.queue != queue) {
                stats.push((QueueStats { queue, ..QueueStats::default() }, 0, 0));
            }
            let entry = stats.last_mut().expect("pushed");
            entry.0.counts[state as usize] += count;
            entry.1 = entry.1.saturating_add(wait_sum);
            entry.2 = entry.2.saturating_add(started);
            if let Some(oldest) = oldest {
                entry.0.oldest_queued_due_ms = Some(nonnegative(oldest, "jobs.due_at_ms")?);
            }
        }
        Ok(stats
            .into_iter()
            .map(|(mut queue, wait_sum, started)| {
                queue.avg_wait_ms = (started > 0).then(|| wait_sum / started);
                queue
            })
            .collect())
    }

    fn paused_queues(&self) -> StoreResult<Vec<String>> {
        let rows = self.rows("SELECT queue FROM paused_queues ORDER BY queue", &[])?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    fn recurring(&self, name: &str) -> StoreResult<Option<Recurring>> {
        let mut found =
            self.recurrings(&format!("SELECT {RECURRING_COLUMNS} FROM recurring WHERE name = $1"), &[&name])?;
        Ok(found.pop())
    }

    fn recurring_list(&self) -> StoreResult<Vec<Recurring>> {
        self.recurrings(&format!("SELECT {RECURRING_COLUMNS} FROM recurring ORDER BY name"), &[])
    }

    fn recurring_due(&self, now_ms: u64, limit: usize) -> StoreResult<Vec<Recurring>> {
        self.recurrings(
            &format!(
                "SELECT {RECURRING_COLUMNS} FROM recurring
                 WHERE next_at_ms IS NOT NULL AND next_at_ms <= $1 ORDER BY next_at_ms, name LIMIT $2"
            ),
            &[&bound(now_ms), &bound(limit as u64)],
        )
    }

    fn commit(&mut self, writes: &WriteSet) -> StoreResult<()> {
        if writes.is_empty() {
            return Ok(());
        }
        let stripe = self.count_stripe();
        let client = self.client.get_mut();
        let mut tx = client.transaction().map_err(store_error)?;
        let applied = Apply { tx: &mut tx, statements: &self.statements, stripe }.all(writes);
        match applied {
            // Dropping `tx` rolls the set back whole.
            Err(error) => Err(error),
            // The deferred constraints are checked here.
            Ok(()) => tx.commit().map_err(|error| commit_error(writes, error)),
        }
    }
}

/// The group-commit writer on Postgres: one transaction per batch, a savepoint per step.
/// The deferred constraints are checked at the end of each step (`SET CONSTRAINTS ALL
/// IMMEDIATE`), so a step that breaks one fails alone, under its savepoint, instead of
/// taking the whole batch with it at `COMMIT`.
impl GroupCommitStore for PgStore {
    fn in_transaction(&self) -> bool {
        let tx = self.writer_tx.get();
        tx.open && (!tx.aborted || tx.savepoint) && !self.client.borrow().is_closed()
    }

    fn control(&self, control: Control) -> Result<(), StoreError> {
        let mut tx = self.writer_tx.get();
        let sql = match control {
            Control::Begin => "BEGIN",
            Control::Savepoint => "SAVEPOINT step",
            Control::Release => "RELEASE step",
            Control::RollbackToSavepoint => "ROLLBACK TO step",
            Control::Commit if tx.aborted => {
                let _ = self.client.borrow_mut().batch_execute("ROLLBACK");
                self.writer_tx.set(WriterTx::default());
                return Err(StoreError::Unavailable("the transaction was aborted by a failed statement".into()));
            }
            Control::Commit => "COMMIT",
            Control::Rollback if !tx.open => return Ok(()),
            Control::Rollback => "ROLLBACK",
        };
        let result = self.client.borrow_mut().batch_execute(sql);
        match control {
            Control::Begin => tx = WriterTx { open: result.is_ok(), ..WriterTx::default() },
            // Whatever COMMIT or ROLLBACK answered, the transaction has ended.
            Control::Commit | Control::Rollback => tx = WriterTx::default(),
            Control::Savepoint => tx.savepoint = result.is_ok(),
            Control::Release => tx.savepoint = false,
            Control::RollbackToSavepoint => tx.aborted = result.is_err(),
        }
        if result.is_err() && tx.open {
            tx.aborted = true;
        }
        self.writer_tx.set(tx);
        result.map_err(store_error)
    }

    fn apply_within(&self, writes: &WriteSet) -> Result<(), StoreError> {
        assert!(self.writer_tx.get().open, "apply_within outside a transaction");
        let stripe = self.count_stripe();
        let result = {
            let mut client = self.client.borrow_mut();
            Apply { tx: &mut *client, statements: &self.statements, stripe }.all(writes).and_then(|()| {
                client
                    .batch_execute("SET CONSTRAINTS ALL IMMEDIATE; SET CONSTRAINTS ALL DEFERRED")
                    .map_err(|error| commit_error(writes, error))
            })
        };
        if result.is_err() {
            // The writer rolls back to the step's savepoint, which clears it.
            self.mark_aborted();
        }
        result
    }

    fn start_companion(&self) -> std::io::Result<Box<dyn Send>> {
        Ok(Box::new(()))
    }

    fn shared(&self) -> bool {
        true
    }

    fn file(&self) -> Option<std::path::PathBuf> {
        None
    }
}
