//! The fuzz target for hostile database contents: a daemon that opens a damaged or
//! malicious SQLite file must answer with an error ([`OpenError`], `StoreError::Corrupt`
//! or `Unavailable`), and never panic, hang or loop. This file is compiled twice: into
//! `semantica-fuzz` (libFuzzer) and, by `#[path]`, into `adapters/tests/fuzz_harness.rs`
//! (proptest on stable, in CI). Keep it to `semantica-core`, `semantica-adapters`,
//! `rusqlite` and `std`.
//!
//! The first byte of an input chooses how the rest damages a database:
//!
//! - **raw file**: the rest is the whole database file;
//! - **patched file**: byte patches and a truncation of a real database (the template: a
//!   migrated store holding five jobs, on 512-byte pages so that a patch at any offset
//!   lands in some page that matters);
//! - **values**: SQL edits of the template: any value in any column of `jobs`,
//!   `counters`, `subjects` and `schema_version` (CHECK constraints off), copied and
//!   deleted rows, and hostile schema changes (triggers, a view, dropped tables, a
//!   rewritten `sqlite_schema`);
//! - **loose values**: the same edits on a copy of the template whose tables have no
//!   types and no constraints (no STRICT, no unique id), so that they can hold what a
//!   STRICT table refuses.
//!
//! Then the store is opened, every read of the `Store` port is asked, and the writes an
//! engine would make next (an update one version up, an insert above `max_seq`, a delete)
//! are committed.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use rusqlite::types::Value;
use rusqlite::Connection;
use semantica_adapters::{SqliteOptions, SqliteStore};

use crate::bytes::Bytes;
use semantica_core::{
    Artifact, Conditions, ErrorKind, ExecSpec, Job, JobError, JobId, JobQuery, JobState, Store, StoreError,
    StoreResult, Write, WriteSet,
};

/// Edits one input applies; longer inputs are cut.
const EDITS_MAX: usize = 32;
/// Bytes one patch of the file overwrites.
const PATCH_BYTES_MAX: usize = 16;
/// Bytes of one text or blob written into a cell.
const VALUE_BYTES_MAX: usize = 64;
/// Bytes of a long text: enough to spill onto overflow pages.
const LONG_VALUE_BYTES_MAX: usize = 4096;
/// The `limit` of the list reads: above the template's five jobs.
const LIST_LIMIT: usize = 8;
/// Jobs kept from the reads for the writes and the second `get`.
const SEEN_JOBS_MAX: usize = 64;
/// Page size of the template: a small file, so that random offsets hit every kind of page.
const TEMPLATE_PAGE_BYTES: u32 = 512;
/// What an SQL store can keep of an ordered u64 (core's promise to the store).
const ORDERED_MAX: u64 = i64::MAX as u64;

const MODES: u8 = 4;
const QUEUES: [&str; 3] = ["default", "other", ""];
const SUBJECTS: [&str; 4] = ["subject-a", "subject-b", "subject-c", ""];

/// Arbitrary bytes as a damaged database: opened, read through every `Store` method and
/// written to. Any answer is fine as long as it is an answer.
pub fn hostile_database(data: &[u8]) {
    let mut input = Bytes::new(data);
    let mode = input.u8() % MODES;
    let scratch = Scratch::new("input");
    let path = scratch.0.as_path();
    match mode {
        0 => std::fs::write(path, input.rest()).expect("write the scratch database"),
        1 => std::fs::write(path, patched(template(false), &mut input)).expect("write the scratch database"),
        _ => {
            std::fs::write(path, template(mode == 3)).expect("write the scratch database");
            edit(path, &mut input);
        }
    }
    open_read_and_write(path);
}

/// A file of the thread's own (libFuzzer runs one input at a time per process; a test
/// harness may run several threads).
fn scratch_path(role: &str) -> PathBuf {
    let thread = format!("{:?}", std::thread::current().id()).replace(|c: char| !c.is_ascii_alphanumeric(), "");
    std::env::temp_dir().join(format!("semantica-fuzz-hostile-db-{}-{thread}-{role}.db", std::process::id()))
}

/// A scratch database, removed when it is dropped: at the end of a run, or by a panic
/// that unwinds (the proptest harness goes on with the next case).
struct Scratch(PathBuf);

impl Scratch {
    /// Also removes what an aborted run of this thread left behind.
    fn new(role: &str) -> Scratch {
        let path = scratch_path(role);
        remove_database(&path);
        Scratch(path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        remove_database(&self.0);
    }
}

/// The database and every file SQLite keeps beside it.
fn remove_database(path: &Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(name));
    }
}

fn template_id(n: u64) -> JobId {
    JobId::from_u128(0x5e3a_0000_0000_4000_8000_0000_0000_0000 + u128::from(n))
}

/// One job of each kind the reads pick out: queued with exec and labels, running, a
/// scheduled child waiting for an event, done with artifacts, failed and being reaped.
fn template_jobs() -> Vec<Job> {
    let queued = Job {
        seq: 1,
        subject_key: "subject-a".into(),
        priority: 5,
        payload_json: r#"{"path":"/tmp/a","n":[1,2.5,null]}"#.into(),
        exec: Some(ExecSpec {
            command: "/bin/echo".into(),
            args: vec!["a".into(), "b c".into()],
            env: [("K".to_owned(), "V".to_owned())].into(),
            cwd: Some("/tmp".into()),
        }),
        ttl_ms: Some(89_000),
        tag: Some("t".into()),
        chain_group_id: Some("g".into()),
        trace_id: "trace-1".into(),
        created_at_ms: 1_000,
        due_at_ms: 1_000,
        wake_at_ms: Some(90_000),
        ..Job::blank(template_id(1))
    };
    let running = Job {
        seq: 2,
        subject_key: "subject-b".into(),
        state: JobState::Running,
        attempts: 1,
        timeout_ms: Some(60_000),
        tag: Some("t".into()),
        started_at_ms: Some(2_000),
        wake_at_ms: Some(62_000),
        pid: Some(4242),
        pid_started_at: Some(u64::MAX),
        ..Job::blank(template_id(2))
    };
    let scheduled = Job {
        seq: 3,
        queue: "other".into(),
        subject_key: "subject-c".into(),
        generation: 2,
        state: JobState::Scheduled,
        deadline_ms: Some(100_000),
        conditions: Conditions { wait_for_idle: true, require_charging: false, wait_for_event: Some("e".into()) },
        parent_job_id: Some(template_id(1)),
        parent_pending: true,
        chain_group_id: Some("g".into()),
        due_at_ms: 50_000,
        wake_at_ms: Some(50_000),
        ..Job::blank(template_id(3))
    };
    let done = Job {
        seq: 4,
        queue: "other".into(),
        subject_key: "subject-a".into(),
        generation: 0,
        state: JobState::Done,
        attempts: 1,
        started_at_ms: Some(3_000),
        finished_at_ms: Some(4_000),
        exit_code: Some(0),
        result_summary_json: Some(r#"{"ok":true}"#.into()),
        artifacts: vec![Artifact { name: "out.txt".into(), bytes: 12 }],
        ..Job::blank(template_id(4))
    };
    let failed = Job {
        seq: 5,
        subject_key: "subject-b".into(),
        state: JobState::Failed,
        attempts: 3,
        max_attempts: 3,
        started_at_ms: Some(5_000),
        finished_at_ms: Some(6_000),
        pid: Some(77),
        reap_pending: true,
        exit_code: Some(-9),
        error: Some(JobError::new(ErrorKind::Signal, "killed by signal 9")),
        ..Job::blank(template_id(5))
    };
    vec![queued, running, scheduled, done, failed]
}

/// The template's file, built once per process. `loose`: its tables copied without
/// types or constraints (the indexes are kept, so that the reads use them).
fn template(loose: bool) -> &'static [u8] {
    static STRICT: OnceLock<Vec<u8>> = OnceLock::new();
    static LOOSE: OnceLock<Vec<u8>> = OnceLock::new();
    let cell = if loose { &LOOSE } else { &STRICT };
    cell.get_or_init(|| build_template(loose))
}

fn build_template(loose: bool) -> Vec<u8> {
    let scratch = Scratch::new(if loose { "template-loose" } else { "template" });
    let path = scratch.0.as_path();
    let mut store = SqliteStore::open(path, &SqliteOptions::default()).expect("open the template");
    let writes = WriteSet { writes: template_jobs().into_iter().map(Write::Insert).collect() };
    store.commit(&writes).expect("fill the template");
    drop(store);
    let conn = Connection::open(path).expect("reopen the template");
    conn.execute_batch(&format!("PRAGMA journal_mode = DELETE; PRAGMA page_size = {TEMPLATE_PAGE_BYTES}; VACUUM;"))
        .expect("shrink the template's pages");
    if loose {
        let indexes: Vec<String> = conn
            .prepare("SELECT sql FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'jobs' AND sql IS NOT NULL")
            .and_then(|mut s| s.query_map([], |row| row.get(0))?.collect())
            .expect("read the template's indexes");
        let mut sql = String::from("BEGIN;");
        for table in ["jobs", "subjects", "counters", "schema_version"] {
            sql += &format!(
                "CREATE TABLE loose_{table} AS SELECT * FROM {table}; DROP TABLE {table};
                 ALTER TABLE loose_{table} RENAME TO {table};"
            );
        }
        for index in indexes {
            sql += &format!("{index};");
        }
        sql += "COMMIT; VACUUM;";
        conn.execute_batch(&sql).expect("loosen the template");
    }
    // Back to WAL as the store left it: its open then changes nothing, and costs no fsync.
    conn.execute_batch("PRAGMA journal_mode = WAL").expect("the template in WAL mode");
    drop(conn);
    std::fs::read(path).expect("read the template")
}

/// The template with byte patches and maybe a truncation: op byte (low 3 bits 0 =
/// truncate, else patch; the high bits choose the patch's length), a u16 offset, bytes.
fn patched(template: &[u8], input: &mut Bytes) -> Vec<u8> {
    let mut file = template.to_vec();
    for _ in 0..EDITS_MAX {
        if input.is_empty() {
            break;
        }
        let op = input.u8();
        let offset = usize::from(input.u16()) % file.len().max(1);
        if op % 8 == 0 {
            file.truncate(offset);
            continue;
        }
        let len = usize::from(op >> 3) % PATCH_BYTES_MAX + 1;
        for index in offset..offset + len {
            let byte = input.u8();
            if let Some(slot) = file.get_mut(index) {
                *slot = byte;
            }
        }
    }
    file
}

const INTEGERS: [i64; 16] = [
    0,
    1,
    -1,
    2,
    36,
    i64::MAX,
    i64::MIN,
    i64::MAX - 1,
    i32::MAX as i64 + 1,
    i32::MIN as i64 - 1,
    u32::MAX as i64,
    u32::MAX as i64 + 1,
    253_402_300_799_999,
    1 << 53,
    -(1 << 53),
    5,
];

const REALS: [f64; 14] = [
    0.0,
    -0.0,
    0.5,
    1.0,
    2.0,
    100.0,
    1e300,
    -1e300,
    f64::INFINITY,
    f64::NEG_INFINITY,
    f64::NAN,
    f64::MIN_POSITIVE,
    i64::MAX as f64,
    u64::MAX as f64,
];

/// Texts that are almost right: near-miss state names, broken and wrong-shaped JSON for
/// the JSON columns, ids that are 36 characters but no canonical UUID, numbers as text.
const TEXTS: [&str; 49] = [
    "QUEUED",
    "SCHEDULED",
    "RUNNING",
    "DONE",
    "FAILED",
    "CANCELLED",
    "SUPERSEDED",
    "SKIPPED_TTL",
    "SKIPPED_DEADLINE",
    "queued",
    "QUEUED ",
    "",
    "null",
    "{",
    "[",
    "[]",
    "{}",
    "[1]",
    r#"["a","b"]"#,
    r#"{"K":"V"}"#,
    r#"{"K":1}"#,
    r#"[["a",1]]"#,
    r#"[["a",-1]]"#,
    r#"[["a",18446744073709551616]]"#,
    r#"[["a"]]"#,
    "[[1,1]]",
    "5e3a0000-0000-4000-8000-000000000001",
    "5e3a0000-0000-4000-8000-000000000002",
    "5E3A0000-0000-4000-8000-000000000001",
    "{5e3a0000-0000-4000-8000-00000000001}",
    "5e3a0000000040008000000000000001xxxx",
    "00000000-0000-0000-0000-000000000000",
    "exit_code",
    "signal",
    "meteor",
    "default",
    "DEFAULT",
    "other",
    "subject-a",
    "subject-b",
    "t",
    "g",
    "e",
    "1",
    "-1",
    "9223372036854775808",
    "1.5",
    "\u{0}",
    "é",
];

/// Statements a malicious file may have run before it reached the daemon. None makes
/// SQLite itself loop (a recursive view or trigger would: that is a different hazard).
const HOSTILE_SQL: [&str; 27] = [
    "DELETE FROM counters",
    "INSERT INTO counters (singleton, max_seq) VALUES (2, 3)",
    "DROP TABLE counters",
    "DELETE FROM subjects",
    "DROP TABLE subjects",
    "DELETE FROM schema_version",
    "DROP TABLE schema_version",
    "INSERT INTO schema_version (version, name) VALUES (2, '0002_future.sql')",
    "DROP INDEX jobs_queued",
    "DROP INDEX jobs_occupying",
    "ALTER TABLE jobs DROP COLUMN exit_code",
    "ALTER TABLE jobs RENAME COLUMN state TO status",
    "ALTER TABLE jobs ADD COLUMN extra TEXT DEFAULT 'x'",
    "ALTER TABLE jobs RENAME TO jobs_moved",
    "CREATE TABLE jobs_copy AS SELECT * FROM jobs; DROP TABLE jobs;
     CREATE VIEW jobs AS SELECT * FROM jobs_copy UNION ALL SELECT * FROM jobs_copy",
    "CREATE TRIGGER hostile_update BEFORE UPDATE ON jobs BEGIN SELECT raise(IGNORE); END",
    "CREATE TRIGGER hostile_insert BEFORE INSERT ON jobs BEGIN SELECT raise(IGNORE); END",
    "CREATE TRIGGER hostile_delete BEFORE DELETE ON jobs BEGIN SELECT raise(IGNORE); END",
    "CREATE TRIGGER hostile_abort BEFORE UPDATE ON jobs BEGIN SELECT raise(ABORT, 'hostile'); END",
    "CREATE TRIGGER hostile_counter AFTER INSERT ON jobs BEGIN UPDATE counters SET max_seq = -1; END",
    "CREATE TRIGGER hostile_copy AFTER UPDATE ON jobs BEGIN
         DELETE FROM subjects; INSERT INTO jobs SELECT * FROM jobs WHERE rowid = new.rowid; END",
    "PRAGMA writable_schema = ON;
     UPDATE sqlite_schema SET sql = replace(sql, 'state = ''QUEUED''', 'state = ''RUNNING''')
     WHERE name = 'jobs_queued'",
    "PRAGMA writable_schema = ON;
     UPDATE sqlite_schema SET sql = replace(replace(replace(sql, 'job_type ', 'swap_tmp '), 'queue ', 'job_type '),
                                            'swap_tmp ', 'queue ')
     WHERE name = 'jobs'",
    "PRAGMA writable_schema = ON;
     UPDATE sqlite_schema
     SET sql = replace(sql, 'queue                 TEXT    NOT NULL', 'queue TEXT NOT NULL COLLATE NOCASE')
     WHERE name = 'jobs'",
    "PRAGMA writable_schema = ON; UPDATE sqlite_schema SET rootpage = rootpage + 1 WHERE name = 'jobs'",
    "PRAGMA writable_schema = ON; DELETE FROM sqlite_schema WHERE name = 'jobs_active_subject'",
    "PRAGMA user_version = -1; REINDEX",
];

/// A value for parameter `?{n}`, as the SQL expression that binds it: any storage class,
/// numbers at the edges, texts that almost decode, and bytes as TEXT (also not UTF-8).
fn cell(input: &mut Bytes, n: usize) -> (String, Value) {
    let parameter = format!("?{n}");
    let as_text = format!("CAST(?{n} AS TEXT)");
    let len = usize::from(input.u8()) % (VALUE_BYTES_MAX + 1);
    match input.u8() % 8 {
        0 => (parameter, Value::Null),
        1 => (parameter, Value::Integer(INTEGERS[usize::from(input.u8()) % INTEGERS.len()])),
        2 => (parameter, Value::Integer(input.u64() as i64)),
        3 => (parameter, Value::Real(REALS[usize::from(input.u8()) % REALS.len()])),
        4 => (parameter, Value::Real(f64::from_bits(input.u64()))),
        5 => (parameter, Value::Text(TEXTS[usize::from(input.u8()) % TEXTS.len()].to_owned())),
        6 if len % 2 == 0 => (as_text, Value::Blob(input.bytes(len))),
        6 => (parameter, Value::Blob(input.bytes(len))),
        _ => {
            let long = usize::from(input.u16()) % (LONG_VALUE_BYTES_MAX + 1);
            (as_text, Value::Blob(vec![input.u8(); long]))
        }
    }
}

/// The `jobs` row the input names (by position, so that copies and deletions count).
const NTH_ROW: &str = "(SELECT rowid FROM jobs ORDER BY rowid LIMIT 1 OFFSET ?2)";

/// Applies the input's edits to the file through SQL, with CHECK constraints off. An edit
/// SQLite refuses (a type a STRICT column rejects, a statement after a dropped table) is
/// skipped: the file keeps whatever the edits before it left.
fn edit(path: &Path, input: &mut Bytes) {
    let conn = Connection::open(path).expect("open the scratch database");
    // No fsync per edit: it would cost more than the rest of the run.
    conn.execute_batch("PRAGMA ignore_check_constraints = ON; PRAGMA synchronous = OFF").expect("checks off");
    // Asked of the file, not copied from the store's codec: the edits follow the schema.
    let columns: Vec<String> = conn
        .prepare("SELECT name FROM pragma_table_info('jobs') ORDER BY cid")
        .and_then(|mut s| s.query_map([], |row| row.get(0))?.collect())
        .expect("read the template's columns");
    assert!(columns.iter().any(|name| name == "seq"), "the template has jobs.seq");
    for _ in 0..EDITS_MAX {
        if input.is_empty() {
            break;
        }
        let op = input.u8();
        let row = i64::from(input.u8() % 8);
        let column = columns[usize::from(input.u8()) % columns.len()].as_str();
        let (value_sql, value) = cell(input, 1);
        let _ = match op % 7 {
            0 => conn.execute(&format!("UPDATE jobs SET {column} = {value_sql} WHERE rowid = {NTH_ROW}"), (value, row)),
            1 => conn.execute(&format!("UPDATE counters SET max_seq = {value_sql}"), [value]),
            2 => {
                let subject = SUBJECTS[usize::from(op >> 3) % SUBJECTS.len()];
                conn.execute(
                    &format!("INSERT OR REPLACE INTO subjects (subject_key, max_generation) VALUES (?2, {value_sql})"),
                    (value, subject),
                )
            }
            3 if op & 8 == 0 => conn.execute(&format!("UPDATE schema_version SET version = {value_sql}"), [value]),
            3 => conn.execute(&format!("UPDATE schema_version SET name = {value_sql}"), [value]),
            4 => {
                // A copy of a row with a new seq and one cell changed: with the id changed,
                // a second job; else a duplicate id, which only the loose table takes.
                let list = columns.join(", ");
                let select: Vec<String> = columns
                    .iter()
                    .map(|name| match name.as_str() {
                        name if name == column => value_sql.clone(),
                        "seq" => "(SELECT max(seq) + 1 FROM jobs)".to_owned(),
                        name => name.to_owned(),
                    })
                    .collect();
                let sql =
                    format!("INSERT INTO jobs ({list}) SELECT {} FROM jobs WHERE rowid = {NTH_ROW}", select.join(", "));
                conn.execute(&sql, (value, row))
            }
            5 => conn.execute(&format!("DELETE FROM jobs WHERE rowid = {NTH_ROW}"), [Value::Null, Value::Integer(row)]),
            _ => conn.execute_batch(HOSTILE_SQL[usize::from(op >> 3) % HOSTILE_SQL.len()]).map(|()| 0),
        };
    }
}

/// Opens the file as the daemon does, asks every read, and commits what an engine would.
fn open_read_and_write(path: &Path) {
    // No waiting: nothing else holds the file, and a wait would only slow the fuzzer.
    let options = SqliteOptions { busy_timeout_ms: 0, ..SqliteOptions::default() };
    let mut store = match SqliteStore::open(path, &options) {
        Ok(store) => store,
        Err(error) => {
            assert!(!error.to_string().is_empty(), "an open error says why");
            return;
        }
    };
    // Durability is not under test, and the fsyncs of the commits and of the checkpoint at
    // close would cost more than the rest of the run.
    let _ = store.connection().pragma_update(None, "synchronous", "OFF");
    let seen = read_everything(&store);
    write_as_an_engine_would(&mut store, &seen);
    let _ = answer("schema_version", store.schema_version());
    let _ = answer("integrity_check", store.integrity_check());
}

/// A read's answer: a value, or an error that tells the caller the store is broken. A
/// read never conflicts.
fn answer<T>(what: &str, result: StoreResult<T>) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(StoreError::Conflict { job_id, detail }) => panic!("{what} answered a conflict on {job_id}: {detail}"),
        Err(StoreError::Corrupt(detail) | StoreError::Unavailable(detail)) => {
            assert!(!detail.is_empty(), "{what}: an error says why");
            None
        }
    }
}

/// A job that came back is one the store could write again: every ordered number fits a
/// signed 64-bit column and no real is NaN (`codec::encode` asserts both).
fn check_job(what: &str, job: &Job) {
    let ordered = [
        ("seq", Some(job.seq)),
        ("version", Some(job.version)),
        ("generation", Some(job.generation)),
        ("backoff.base_ms", Some(job.backoff.base_ms)),
        ("backoff.max_ms", Some(job.backoff.max_ms)),
        ("timeout_ms", job.timeout_ms),
        ("ttl_ms", job.ttl_ms),
        ("deadline_ms", job.deadline_ms),
        ("created_at_ms", Some(job.created_at_ms)),
        ("due_at_ms", Some(job.due_at_ms)),
        ("started_at_ms", job.started_at_ms),
        ("finished_at_ms", job.finished_at_ms),
        ("wake_at_ms", job.wake_at_ms),
    ];
    for (field, value) in ordered {
        assert!(value.is_none_or(|v| v <= ORDERED_MAX), "{what}: job {} has {field} = {value:?}", job.id);
    }
    assert!(!job.backoff.factor.is_nan() && !job.backoff.jitter.is_nan(), "{what}: job {} has a NaN", job.id);
    assert_eq!(job.id.to_string().parse::<JobId>(), Ok(job.id), "{what}: the id round-trips");
}

/// Checks a list read's jobs and keeps them.
fn list(what: &str, result: StoreResult<Vec<Job>>, limit: usize, seen: &mut Vec<Job>) {
    let Some(jobs) = answer(what, result) else { return };
    assert!(jobs.len() <= limit, "{what}: {} jobs above the limit {limit}", jobs.len());
    for job in jobs {
        check_job(what, &job);
        if seen.len() < SEEN_JOBS_MAX {
            seen.push(job);
        }
    }
}

/// Every read of the port, with the arguments that pick out the template's jobs and some
/// that pick out none. Returns the jobs that came back.
fn read_everything(store: &SqliteStore) -> Vec<Job> {
    let mut seen = Vec::new();
    for id in (0..=6).map(template_id) {
        if let Some(Some(job)) = answer("get", store.get(id)) {
            check_job("get", &job);
            assert_eq!(job.id, id, "get answered another job");
        }
    }
    let _ = answer("max_seq", store.max_seq());
    for subject in SUBJECTS {
        let _ = answer("max_generation", store.max_generation(subject));
        list("active_jobs_of_subject", store.active_jobs_of_subject(subject), usize::MAX, &mut seen);
    }
    for queue in QUEUES {
        list("claim_candidates", store.claim_candidates(queue, None, None, LIST_LIMIT), LIST_LIMIT, &mut seen);
        list("claim_candidates", store.claim_candidates(queue, Some(i32::MAX), Some((i32::MAX, 0)), 1), 1, &mut seen);
        let _ = answer("process_count", store.process_count(Some(queue)));
    }
    let _ = answer("process_count", store.process_count(None));
    let _ = answer("ready_queues", store.ready_queues());
    for now_ms in [0, 60_000, u64::MAX] {
        list("due_jobs", store.due_jobs(now_ms, LIST_LIMIT), LIST_LIMIT, &mut seen);
        list("purgeable", store.purgeable(now_ms, LIST_LIMIT), LIST_LIMIT, &mut seen);
    }
    for (tag, group) in [(Some("t"), None), (None, Some("g")), (Some("t"), Some("g")), (None, None)] {
        list("labelled_jobs", store.labelled_jobs(tag, group, LIST_LIMIT), LIST_LIMIT, &mut seen);
    }
    list("waiting_children", store.waiting_children(template_id(1), LIST_LIMIT), LIST_LIMIT, &mut seen);
    list("event_waiters", store.event_waiters("e", LIST_LIMIT), LIST_LIMIT, &mut seen);
    list("system_waiters", store.system_waiters(LIST_LIMIT), LIST_LIMIT, &mut seen);
    list("process_holders", store.process_holders(LIST_LIMIT), LIST_LIMIT, &mut seen);
    let queries = [
        JobQuery { limit: JobQuery::LIMIT_MAX, ..JobQuery::default() },
        JobQuery { descending: true, after_seq: Some(u64::MAX), limit: 2, ..JobQuery::default() },
        JobQuery {
            states: vec![JobState::Queued, JobState::Done, JobState::Failed],
            queues: vec!["default".into(), "other".into()],
            subject_key_prefix: Some("subject".into()),
            created_after_ms: Some(0),
            after_seq: Some(0),
            limit: 3,
            ..JobQuery::default()
        },
        JobQuery { tag: Some("t".into()), chain_group_id: Some("g".into()), limit: 1, ..JobQuery::default() },
    ];
    for query in &queries {
        if let Some(page) = answer("query", store.query(query)) {
            if let Some(after) = page.next_after_seq {
                assert_eq!(page.items.last().map(|job| job.seq), Some(after), "the cursor is the last item's seq");
            }
            list("query", Ok(page.items), query.limit, &mut seen);
        }
    }
    if let Some(stats) = answer("queue_stats", store.queue_stats()) {
        assert!(stats.windows(2).all(|w| w[0].queue < w[1].queue), "queue_stats sorted by name, once each");
    }
    for job in seen.clone().iter().take(LIST_LIMIT) {
        if let Some(Some(again)) = answer("get", store.get(job.id)) {
            check_job("get", &again);
            assert_eq!(again.id, job.id, "get answered another job");
        }
    }
    seen
}

/// The writes an engine makes next, each in a set of its own: a job it read, one version
/// up; a new job above `max_seq`; the deletion of a job it read. Any answer but a panic.
fn write_as_an_engine_would(store: &mut SqliteStore, seen: &[Job]) {
    let mut sets = Vec::new();
    if let Some(job) = seen.first() {
        let mut next = job.clone();
        next.version += 1;
        next.attempts = next.attempts.saturating_add(1);
        sets.push(Write::Update(next));
    }
    if let Some(max_seq) = answer("max_seq", store.max_seq()) {
        let id = JobId::from_u128(u128::MAX - u128::from(max_seq));
        sets.push(Write::Insert(Job { seq: max_seq + 1, subject_key: "subject-a".into(), ..Job::blank(id) }));
    }
    if let Some(job) = seen.last() {
        sets.push(Write::Delete { id: job.id, version: job.version });
    }
    for write in sets {
        match store.commit(&WriteSet { writes: vec![write] }) {
            Ok(()) | Err(StoreError::Conflict { .. }) => {}
            Err(StoreError::Corrupt(detail) | StoreError::Unavailable(detail)) => {
                assert!(!detail.is_empty(), "a failed commit says why");
            }
        }
    }
    let _ = answer("max_seq", store.max_seq());
}
