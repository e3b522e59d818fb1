//! The SQLite store on its own: each `Store` method, version conflicts, atomicity,
//! migrations, decoding failures, a full disk, and the indexes the queries rely on.

use semantica_adapters::sqlite::schema::{self, Migration, MigrationError, MIGRATIONS};
use semantica_adapters::{OpenError, SqliteOptions, SqliteStore, Synchronous};
use semantica_core::{
    Artifact, Backoff, Conditions, ErrorKind, ExecSpec, Job, JobError, JobId, JobQuery, JobState, MemStore, Store,
    StoreError, Write, WriteSet,
};

fn open(dir: &tempfile::TempDir) -> SqliteStore {
    SqliteStore::open(dir.path().join("jobs.db"), &SqliteOptions::default()).unwrap()
}

/// A job with every optional field set, distinct per `n`.
fn full_job(n: u64) -> Job {
    Job {
        id: JobId::from_u128(0xABCD_0000_0000_0000_0000_0000_0000_0000 + u128::from(n)),
        seq: n,
        version: 1,
        queue: "default".into(),
        job_type: "work".into(),
        subject_key: format!("subject-{}", n % 3),
        generation: n,
        state: JobState::Queued,
        priority: -5,
        payload_json: "{\"a\":[1,2,{\"b\":null}],\"s\":\"\\u0000é\"}".into(),
        exec: Some(ExecSpec {
            command: "/usr/bin/env".into(),
            args: vec!["-i".into(), "x y".into(), "\0".into(), String::new()],
            env: [("PATH".to_owned(), "/bin".to_owned()), ("Ü".to_owned(), "\"q\"".to_owned())].into(),
            cwd: Some("/tmp/ä".into()),
        }),
        attempts: 2,
        max_attempts: 100,
        backoff: Backoff { base_ms: 7, factor: 1.000_000_000_000_000_2, max_ms: 604_800_000, jitter: -0.0 },
        timeout_ms: Some(1),
        ttl_ms: Some(0),
        deadline_ms: Some(253_402_300_799_999),
        conditions: Conditions { wait_for_idle: true, require_charging: true, wait_for_event: Some("e".into()) },
        event_released: true,
        parent_job_id: Some(JobId::from_u128(u128::MAX)),
        parent_pending: true,
        tag: Some("t".into()),
        chain_group_id: Some("g".into()),
        trace_id: "trace".into(),
        created_at_ms: 1_000 + n,
        due_at_ms: 2_000 + n,
        started_at_ms: Some(3_000),
        finished_at_ms: None,
        wake_at_ms: Some(4_000 + n),
        pid: Some(u32::MAX),
        pid_started_at: Some(u64::MAX),
        reap_pending: false,
        exit_code: Some(i32::MIN),
        error: Some(JobError::new(ErrorKind::DaemonRestart, "line\nbreak")),
        result_summary_json: Some("{}".into()),
        artifacts: vec![Artifact { name: "a".into(), bytes: u64::MAX }, Artifact { name: "b".into(), bytes: 0 }],
        retry_of: Some(JobId::from_u128(7)),
        deadline_wall_ms: Some(9_000 + n),
        at_wall_ms: Some(1_500 + n),
        wall_offset_ms: Some(-3_600_000),
        node: Some("host-ü:/home/x".into()),
    }
}

/// A plain job: no options at all.
fn bare_job(n: u64) -> Job {
    Job {
        exec: None,
        timeout_ms: None,
        ttl_ms: None,
        deadline_ms: None,
        conditions: Conditions::default(),
        event_released: false,
        parent_job_id: None,
        parent_pending: false,
        tag: None,
        chain_group_id: None,
        started_at_ms: None,
        wake_at_ms: None,
        pid: None,
        pid_started_at: None,
        exit_code: None,
        error: None,
        result_summary_json: None,
        artifacts: Vec::new(),
        backoff: Backoff::DEFAULT,
        retry_of: None,
        deadline_wall_ms: None,
        at_wall_ms: None,
        wall_offset_ms: None,
        node: None,
        ..full_job(n)
    }
}

fn set(writes: Vec<Write>) -> WriteSet {
    WriteSet { writes }
}

/// Commits `writes` to both stores and checks they agree on the result and on the jobs.
fn check(mem: &mut MemStore, sql: &mut SqliteStore, writes: Vec<Write>) -> Result<(), StoreError> {
    let writes = set(writes);
    let expected = mem.commit(&writes);
    let got = sql.commit(&writes);
    assert_eq!(expected, got, "commit of {writes:?}");
    let all = JobQuery { limit: JobQuery::LIMIT_MAX, ..JobQuery::default() };
    assert_eq!(mem.query(&all).unwrap(), sql.query(&all).unwrap());
    assert_eq!(mem.max_seq().unwrap(), sql.max_seq().unwrap());
    got
}

#[test]
fn every_field_round_trips_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(&dir);
    let jobs = [full_job(1), bare_job(2)];
    store.commit(&set(jobs.iter().cloned().map(Write::Insert).collect())).unwrap();
    drop(store);
    let store = open(&dir);
    for job in &jobs {
        let read = store.get(job.id).unwrap().expect("stored");
        assert_eq!(&read, job);
        assert_eq!(read.backoff.factor.to_bits(), job.backoff.factor.to_bits());
        assert_eq!(read.backoff.jitter.to_bits(), job.backoff.jitter.to_bits(), "the sign of -0.0 is kept");
    }
    assert_eq!(store.get(JobId::from_u128(7)).unwrap(), None);
}

#[test]
fn a_stale_update_or_delete_is_a_conflict_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (mut mem, mut sql) = (MemStore::new(), open(&dir));
    let job = full_job(1);
    check(&mut mem, &mut sql, vec![Write::Insert(job.clone())]).unwrap();
    let v2 = Job { version: 2, state: JobState::Running, ..job.clone() };
    check(&mut mem, &mut sql, vec![Write::Update(v2.clone())]).unwrap();
    // Decided on version 1 again: refused.
    let stale = Job { version: 2, state: JobState::Cancelled, ..job.clone() };
    let error = check(&mut mem, &mut sql, vec![Write::Update(stale)]).unwrap_err();
    assert!(matches!(error, StoreError::Conflict { job_id, .. } if job_id == job.id), "{error:?}");
    // Skipping a version is refused too.
    let ahead = Job { version: 4, ..v2.clone() };
    check(&mut mem, &mut sql, vec![Write::Update(ahead)]).unwrap_err();
    check(&mut mem, &mut sql, vec![Write::Delete { id: job.id, version: 1 }]).unwrap_err();
    assert_eq!(sql.get(job.id).unwrap(), Some(v2));
    // Updates and deletes of a job that is not there.
    let ghost = Job { version: 2, ..full_job(9) };
    check(&mut mem, &mut sql, vec![Write::Update(ghost)]).unwrap_err();
    check(&mut mem, &mut sql, vec![Write::Delete { id: full_job(9).id, version: 1 }]).unwrap_err();
    // An insert over an existing id, or at a used sequence number.
    check(&mut mem, &mut sql, vec![Write::Insert(full_job(1))]).unwrap_err();
    let reused_seq = Job { id: JobId::from_u128(55), ..full_job(1) };
    check(&mut mem, &mut sql, vec![Write::Insert(reused_seq)]).unwrap_err();
    check(&mut mem, &mut sql, vec![Write::Delete { id: job.id, version: 2 }]).unwrap();
    assert_eq!(sql.get(job.id).unwrap(), None);
}

#[test]
fn a_write_set_with_one_bad_write_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (mut mem, mut sql) = (MemStore::new(), open(&dir));
    let first = vec![Write::Insert(full_job(1)), Write::Insert(bare_job(2)), Write::Insert(bare_job(3))];
    check(&mut mem, &mut sql, first).unwrap();
    let before = sql.query(&JobQuery { limit: 200, ..JobQuery::default() }).unwrap();
    let fresh = Job { subject_key: "brand-new".into(), generation: 40, ..full_job(4) };
    let good_update = Job { version: 2, state: JobState::Done, finished_at_ms: Some(9), ..full_job(1) };
    let stale_update = Job { version: 3, ..bare_job(2) };
    let error = check(
        &mut mem,
        &mut sql,
        vec![
            Write::Insert(fresh.clone()),
            Write::Update(good_update),
            Write::Delete { id: bare_job(3).id, version: 1 },
            Write::Update(stale_update),
        ],
    )
    .unwrap_err();
    assert!(matches!(error, StoreError::Conflict { .. }));
    assert_eq!(sql.query(&JobQuery { limit: 200, ..JobQuery::default() }).unwrap(), before);
    assert_eq!(sql.max_seq().unwrap(), 3, "the refused insert did not raise max_seq");
    assert_eq!(sql.max_generation("brand-new").unwrap(), None, "nor the subject's generation");
    assert_eq!(sql.get(fresh.id).unwrap(), None);
}

/// A batch's inserts go in as multi-row statements of 64, 16 and 4 rows and singly for the
/// rest. 87 jobs use every size; a refused one inside a multi-row statement is named as
/// the reference store names it, and its set leaves nothing.
#[test]
fn a_run_of_inserts_matches_the_reference_store_whole_and_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (mut mem, mut sql) = (MemStore::new(), open(&dir));
    // Generations out of order within a subject: the highest counts, not the last.
    let job = |n: u64| Job {
        subject_key: format!("subject-{}", n % 5),
        generation: n * 7 % 11,
        ..if n % 2 == 0 { full_job(n) } else { bare_job(n) }
    };
    check(&mut mem, &mut sql, (1..=87).map(|n| Write::Insert(job(n))).collect()).unwrap();
    for subject in 0..5 {
        let key = format!("subject-{subject}");
        assert_eq!(sql.max_generation(&key).unwrap(), mem.max_generation(&key).unwrap(), "{key}");
    }
    let before = sql.query(&JobQuery { limit: 200, ..JobQuery::default() }).unwrap();
    // A taken id as the 11th of a run of 70 (inside the first 64-row statement).
    let taken_id = (88..158).map(|n| Job { id: if n == 98 { job(3).id } else { job(n).id }, ..job(n) });
    let error = check(&mut mem, &mut sql, taken_id.map(Write::Insert).collect()).unwrap_err();
    assert!(matches!(&error, StoreError::Conflict { job_id, .. } if *job_id == job(3).id), "{error:?}");
    // A sequence number at or below the highest as the 21st: SQLite takes the row; the
    // store refuses the set for it.
    let low_seq = (88..158).map(|n| Job { seq: if n == 108 { 2 } else { n }, ..job(n) });
    let low_seq: Vec<Write> =
        low_seq.map(|job| Write::Insert(Job { id: JobId::from_u128(u128::from(job.seq) << 64 | 1), ..job })).collect();
    let error = check(&mut mem, &mut sql, low_seq).unwrap_err();
    assert!(matches!(&error, StoreError::Conflict { .. }), "{error:?}");
    assert_eq!(sql.query(&JobQuery { limit: 200, ..JobQuery::default() }).unwrap(), before);
    assert_eq!(sql.max_seq().unwrap(), 87);
    assert_eq!(sql.max_generation("subject-0").unwrap(), mem.max_generation("subject-0").unwrap());
}

#[test]
fn count_rows_of_ended_jobs_go_with_their_last_job_and_waiting_rows_stay() {
    let dir = tempfile::tempdir().unwrap();
    let (mut mem, mut sql) = (MemStore::new(), open(&dir));
    let queued = bare_job(1);
    check(&mut mem, &mut sql, vec![Write::Insert(queued.clone())]).unwrap();
    let done = Job { state: JobState::Done, finished_at_ms: Some(5_000), version: 2, ..queued.clone() };
    check(&mut mem, &mut sql, vec![Write::Update(done.clone())]).unwrap();
    check(&mut mem, &mut sql, vec![Write::Delete { id: done.id, version: 2 }]).unwrap();
    let rows: Vec<(String, i64)> = {
        let mut statement = sql.connection().prepare("SELECT state, jobs FROM queue_counts ORDER BY state").unwrap();
        let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?))).unwrap();
        rows.map(Result::unwrap).collect()
    };
    // The QUEUED row stays at zero (the next enqueue uses it again); the DONE row went.
    assert_eq!(rows, [("QUEUED".to_owned(), 0)]);
    assert!(sql.queue_stats().unwrap().is_empty(), "a row counting nothing is no queue");
    assert_eq!(sql.queue_stats().unwrap(), mem.queue_stats().unwrap());
}

#[test]
fn max_generation_and_max_seq_survive_purge() {
    let dir = tempfile::tempdir().unwrap();
    let (mut mem, mut sql) = (MemStore::new(), open(&dir));
    assert_eq!(sql.max_seq().unwrap(), 0);
    let job = Job { generation: 77, ..bare_job(5) };
    check(&mut mem, &mut sql, vec![Write::Insert(job.clone())]).unwrap();
    check(&mut mem, &mut sql, vec![Write::Delete { id: job.id, version: 1 }]).unwrap();
    assert_eq!(sql.max_generation(&job.subject_key).unwrap(), Some(77));
    assert_eq!(sql.max_seq().unwrap(), 5);
    // A lower generation never lowers the mark; a sequence at or below it is refused.
    check(&mut mem, &mut sql, vec![Write::Insert(Job { generation: 3, ..bare_job(6) })]).unwrap();
    assert_eq!(sql.max_generation(&job.subject_key).unwrap(), Some(77));
    check(&mut mem, &mut sql, vec![Write::Insert(bare_job(4))]).unwrap_err();
    // The highest seq stays in the file once its job is gone: an insert does not write
    // the counter, so the delete must have.
    check(&mut mem, &mut sql, vec![Write::Delete { id: bare_job(6).id, version: 1 }]).unwrap();
    drop(sql);
    let mut sql = open(&dir);
    assert_eq!(sql.max_seq().unwrap(), 6);
    let reused = Job { id: JobId::from_u128(99), subject_key: "other".into(), ..bare_job(6) };
    check(&mut mem, &mut sql, vec![Write::Insert(reused)]).unwrap_err();
}

#[test]
fn reads_follow_the_reference_store_on_hand_made_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let (mut mem, mut sql) = (MemStore::new(), open(&dir));
    let running = Job { state: JobState::Running, subject_key: "s".into(), ..bare_job(1) };
    let blocked = Job { subject_key: "s".into(), priority: 9, ..bare_job(2) };
    let reaping = Job {
        state: JobState::Cancelled,
        reap_pending: true,
        finished_at_ms: Some(10),
        subject_key: "r".into(),
        queue: "other".into(),
        ..bare_job(3)
    };
    let free_low = Job { subject_key: "f".into(), priority: 1, ..bare_job(4) };
    let free_high = Job { subject_key: "g".into(), priority: 3, wake_at_ms: Some(50), ..bare_job(5) };
    let done = Job { state: JobState::Done, finished_at_ms: Some(20), ..bare_job(6) };
    let child = Job { parent_job_id: Some(done.id), state: JobState::Scheduled, ..full_job(7) };
    let jobs = [running, blocked, reaping, free_low, free_high, done.clone(), child];
    check(&mut mem, &mut sql, jobs.iter().cloned().map(Write::Insert).collect()).unwrap();
    let ids = |jobs: Vec<Job>| jobs.into_iter().map(|j| j.seq).collect::<Vec<_>>();
    assert_eq!(ids(sql.claim_candidates("default", None, None, 10).unwrap()), vec![5, 4]);
    assert_eq!(ids(sql.claim_candidates("default", Some(2), None, 10).unwrap()), vec![5]);
    assert_eq!(ids(sql.claim_candidates("default", None, None, 1).unwrap()), vec![5]);
    assert_eq!(sql.ready_queues().unwrap(), vec!["default".to_owned()]);
    // The running job and the one whose process is being stopped both hold a slot.
    assert_eq!(sql.process_count(None).unwrap(), 2);
    assert_eq!(sql.process_count(Some("other")).unwrap(), 1);
    assert_eq!(sql.process_count(Some("nowhere")).unwrap(), 0);
    assert_eq!(ids(sql.process_holders(10).unwrap()), vec![1, 3]);
    assert_eq!(ids(sql.active_jobs_of_subject("r").unwrap()), vec![3]);
    assert_eq!(ids(sql.due_jobs(60, 10).unwrap()), vec![5]);
    assert_eq!(ids(sql.purgeable(21, 10).unwrap()), vec![6]);
    assert_eq!(ids(sql.purgeable(20, 10).unwrap()), Vec::<u64>::new());
    assert_eq!(ids(sql.waiting_children(done.id, 10).unwrap()), vec![7]);
    assert_eq!(ids(sql.labelled_jobs(Some("t"), Some("g"), 10).unwrap()), vec![7]);
    assert_eq!(ids(sql.event_waiters("e", 10).unwrap()), Vec::<u64>::new(), "already released");
    assert_eq!(ids(sql.system_waiters(10).unwrap()), vec![7]);
    assert_eq!(sql.queue_stats().unwrap(), mem.queue_stats().unwrap());
    let stats = sql.queue_stats().unwrap();
    assert_eq!(stats.iter().map(|q| q.queue.as_str()).collect::<Vec<_>>(), ["default", "other"]);
    assert_eq!(stats[0].count(JobState::Queued), 3);
    for (method, mem_jobs, sql_jobs) in [
        ("due", mem.due_jobs(u64::MAX, usize::MAX).unwrap(), sql.due_jobs(u64::MAX, usize::MAX).unwrap()),
        ("purgeable", mem.purgeable(u64::MAX, usize::MAX).unwrap(), sql.purgeable(u64::MAX, usize::MAX).unwrap()),
        ("labelled", mem.labelled_jobs(None, None, 2).unwrap(), sql.labelled_jobs(None, None, 2).unwrap()),
    ] {
        assert_eq!(mem_jobs, sql_jobs, "{method}");
    }
}

#[test]
fn query_pages_through_every_match_once() {
    let dir = tempfile::tempdir().unwrap();
    let (mut mem, mut sql) = (MemStore::new(), open(&dir));
    check(&mut mem, &mut sql, (1..=25).map(|n| Write::Insert(bare_job(n))).collect()).unwrap();
    for descending in [false, true] {
        let mut query = JobQuery { limit: 4, descending, ..JobQuery::default() };
        let mut seen = Vec::new();
        loop {
            let page = sql.query(&query).unwrap();
            assert_eq!(page, mem.query(&query).unwrap());
            seen.extend(page.items.iter().map(|j| j.seq));
            match page.next_after_seq {
                Some(after) => query.after_seq = Some(after),
                None => break,
            }
        }
        let mut expected: Vec<u64> = (1..=25).collect();
        if descending {
            expected.reverse();
        }
        assert_eq!(seen, expected);
    }
}

/// A database of schema 1 with jobs in every state is brought up to date in place: the
/// per-queue counts start from the jobs already there, and the store keeps them as the
/// reference store counts from then on.
#[test]
fn a_version_1_database_gets_its_queue_counts_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let mut mem = MemStore::new();
    let jobs: Vec<Job> = (1..=30)
        .map(|n| Job {
            queue: ["default", "build", "io"][n as usize % 3].into(),
            state: JobState::ALL[n as usize % JobState::ALL.len()],
            started_at_ms: (n % 2 == 0).then_some(2001 + n * 7),
            finished_at_ms: JobState::ALL[n as usize % JobState::ALL.len()].is_terminal().then_some(9000),
            wake_at_ms: None,
            ..bare_job(n)
        })
        .collect();
    let source = tempfile::tempdir().unwrap();
    {
        let mut sql = open(&source);
        check(&mut mem, &mut sql, jobs.iter().cloned().map(Write::Insert).collect()).unwrap();
    }
    // What a binary of schema 1 left behind, with the same jobs.
    database_at(1, &dir.path().join("jobs.db"), &source.path().join("jobs.db"));
    let mut sql = open(&dir);
    assert_eq!(sql.schema_version().unwrap(), MIGRATIONS.last().unwrap().version);
    assert_eq!(sql.queue_stats().unwrap(), mem.queue_stats().unwrap());
    assert!(sql.queue_stats().unwrap().len() == 3, "three queues counted");
    // Kept from then on: a state change, a start and a purge.
    let moved = Job {
        version: 2,
        state: JobState::Running,
        started_at_ms: Some(2500),
        ..sql.get(jobs[0].id).unwrap().unwrap()
    };
    check(&mut mem, &mut sql, vec![Write::Update(moved)]).unwrap();
    let finished = jobs.iter().find(|job| job.state == JobState::Done).unwrap();
    check(&mut mem, &mut sql, vec![Write::Delete { id: finished.id, version: 1 }]).unwrap();
    assert_eq!(sql.queue_stats().unwrap(), mem.queue_stats().unwrap());
}

#[test]
fn a_database_from_a_newer_binary_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jobs.db");
    {
        let store = SqliteStore::open(&path, &SqliteOptions::default()).unwrap();
        assert_eq!(store.schema_version().unwrap(), MIGRATIONS.last().unwrap().version);
        store
            .connection()
            .execute("INSERT INTO schema_version (version, name) VALUES (999, 'future.sql')", [])
            .unwrap();
        store.connection().execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
    }
    let before = std::fs::read(&path).unwrap();
    let error = SqliteStore::open(&path, &SqliteOptions::default()).err().expect("refused");
    let known = MIGRATIONS.last().unwrap().version;
    assert_eq!(error, OpenError::Schema(MigrationError::TooNew { found: 999, known }));
    assert!(error.to_string().contains("newer"), "{error}");
    assert_eq!(std::fs::read(&path).unwrap(), before, "the file was not changed");
}

/// The store trusts its schema, so it accepts only its own: a view, trigger, extra table
/// or a column redefined (here a collation that makes `queue` match case-blind) is refused
/// at open, naming what differs, and the file is left as it was.
#[test]
fn a_schema_that_is_not_the_stores_own_is_refused_at_open() {
    for (change, names) in [
        ("CREATE VIEW jobs_view AS SELECT * FROM jobs", "view jobs_view"),
        ("CREATE TRIGGER jobs_trigger AFTER INSERT ON jobs BEGIN DELETE FROM jobs; END", "trigger jobs_trigger"),
        ("CREATE TABLE extra (x INTEGER)", "table extra"),
        ("DROP INDEX jobs_queued", "index jobs_queued"),
        (
            "PRAGMA writable_schema = ON;
             UPDATE sqlite_schema SET sql = replace(sql, 'TEXT    NOT NULL,', 'TEXT COLLATE NOCASE NOT NULL,') WHERE name = 'jobs';",
            "table jobs",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jobs.db");
        drop(open(&dir));
        rusqlite::Connection::open(&path).unwrap().execute_batch(change).unwrap();
        let before = std::fs::read(&path).unwrap();
        let error = SqliteStore::open(&path, &SqliteOptions::default()).err().expect("refused");
        assert!(matches!(&error, OpenError::Schema(MigrationError::Foreign { .. })), "{change}: {error:?}");
        assert!(error.to_string().contains(names), "{change}: {error}");
        assert_eq!(std::fs::read(&path).unwrap(), before, "{change}: the file was changed");
    }
}

#[test]
fn a_failed_migration_rolls_back_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jobs.db");
    let mut conn = rusqlite::Connection::open(&path).unwrap();
    let broken = [
        MIGRATIONS[0],
        Migration { version: 2, name: "0002_good.sql", sql: "CREATE TABLE extra (x INTEGER);" },
        Migration { version: 3, name: "0003_bad.sql", sql: "CREATE TABLE nope (;" },
    ];
    let error = schema::migrate(&mut conn, &broken).unwrap_err();
    assert!(matches!(error, MigrationError::Failed { migration: "0003_bad.sql", at_version: 0, .. }), "{error}");
    assert_eq!(schema::current_version(&conn).unwrap(), 0);
    let tables: i64 = conn.query_row("SELECT count(*) FROM sqlite_master", [], |row| row.get(0)).unwrap();
    assert_eq!(tables, 0, "nothing of 0001 or 0002 is left");
    // The good ones apply, and a second run has nothing to do.
    assert_eq!(schema::migrate(&mut conn, &broken[..2]).unwrap(), 2);
    assert_eq!(schema::migrate(&mut conn, &broken[..2]).unwrap(), 2);
    drop(conn);
    // The store's own list is older than this file now: refused.
    assert!(SqliteStore::open(&path, &SqliteOptions::default()).is_err());
}

#[test]
fn a_row_that_does_not_decode_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(&dir);
    store.commit(&set(vec![Write::Insert(full_job(1))])).unwrap();
    store
        .connection()
        .execute_batch("PRAGMA ignore_check_constraints = ON; UPDATE jobs SET error_kind = 'meteor';")
        .unwrap();
    let error = store.get(full_job(1).id).unwrap_err();
    assert!(matches!(&error, StoreError::Corrupt(detail) if detail.contains("error_kind")), "{error:?}");
}

#[test]
fn a_full_disk_is_unavailable_writes_nothing_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(&dir);
    store.commit(&set(vec![Write::Insert(bare_job(1))])).unwrap();
    let pages: i64 = store.connection().query_row("PRAGMA page_count", [], |row| row.get(0)).unwrap();
    store.connection().execute_batch(&format!("PRAGMA max_page_count = {pages}")).unwrap();
    let big = |n: u64| Job { payload_json: format!("\"{}\"", "x".repeat(64 * 1024)), ..bare_job(n) };
    let error = store.commit(&set(vec![Write::Insert(bare_job(2)), Write::Insert(big(3))])).unwrap_err();
    assert!(matches!(&error, StoreError::Unavailable(_)), "{error:?}");
    assert_eq!(store.get(bare_job(2).id).unwrap(), None, "nothing of the failed set");
    assert_eq!(store.max_seq().unwrap(), 1);
    store.connection().execute_batch("PRAGMA max_page_count = 1073741823").unwrap();
    store.commit(&set(vec![Write::Insert(bare_job(2)), Write::Insert(big(3))])).unwrap();
    assert_eq!(store.get(big(3).id).unwrap(), Some(big(3)));
    assert_eq!(store.integrity_check().unwrap(), vec!["ok".to_owned()]);
}

#[test]
fn synchronous_full_is_an_option() {
    let dir = tempfile::tempdir().unwrap();
    let options = SqliteOptions { synchronous: Synchronous::Full, ..SqliteOptions::default() };
    let store = SqliteStore::open(dir.path().join("jobs.db"), &options).unwrap();
    let level: i64 = store.connection().query_row("PRAGMA synchronous", [], |row| row.get(0)).unwrap();
    assert_eq!(level, 2);
    let mode: String = store.connection().query_row("PRAGMA journal_mode", [], |row| row.get(0)).unwrap();
    assert_eq!(mode, "wal");
    let keys: i64 = store.connection().query_row("PRAGMA foreign_keys", [], |row| row.get(0)).unwrap();
    assert_eq!(keys, 1);
    let default = open(&tempfile::tempdir().unwrap());
    let level: i64 = default.connection().query_row("PRAGMA synchronous", [], |row| row.get(0)).unwrap();
    assert_eq!(level, 1, "NORMAL by default");
}

/// The engine's hot questions are answered from their partial indexes, never a scan of
/// every job.
#[test]
fn hot_queries_use_their_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let plan = |sql: &str| -> String {
        let mut statement = store.connection().prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let rows = statement.query_map([], |row| row.get::<_, String>(3)).unwrap();
        rows.collect::<Result<Vec<_>, _>>().unwrap().join(" | ")
    };
    let cases = [
        (
            "SELECT * FROM jobs WHERE state = 'QUEUED' AND queue = 'q' AND priority >= 0 AND NOT EXISTS \
             (SELECT 1 FROM jobs AS other WHERE other.subject_key = jobs.subject_key \
              AND (other.finished_at_ms IS NULL OR other.reap_pending = 1) \
              AND (other.state = 'RUNNING' OR other.reap_pending = 1)) ORDER BY priority DESC, seq LIMIT 5",
            vec!["jobs_queued", "jobs_active_subject"],
        ),
        (
            "SELECT * FROM jobs WHERE wake_at_ms IS NOT NULL AND wake_at_ms <= 5 AND \
             (finished_at_ms IS NULL OR reap_pending = 1) ORDER BY wake_at_ms, seq LIMIT 5",
            vec!["jobs_wake"],
        ),
        (
            "SELECT * FROM jobs WHERE subject_key = 's' AND \
             (finished_at_ms IS NULL OR reap_pending = 1) ORDER BY seq",
            vec!["jobs_active_subject"],
        ),
        (
            "SELECT * FROM jobs WHERE tag = 't' AND finished_at_ms IS NULL ORDER BY seq LIMIT 5",
            vec!["jobs_live_tag"],
        ),
        (
            "SELECT * FROM jobs WHERE parent_job_id = 'p' AND finished_at_ms IS NULL \
             ORDER BY seq LIMIT 5",
            vec!["jobs_live_parent"],
        ),
        (
            "SELECT * FROM jobs WHERE wait_for_event = 'e' AND state IN ('QUEUED', 'SCHEDULED') \
             AND wait_for_event IS NOT NULL AND event_released = 0 ORDER BY seq LIMIT 5",
            vec!["jobs_event_waiters"],
        ),
        (
            "SELECT * FROM jobs WHERE chain_group_id = 'g' AND finished_at_ms IS NULL \
             ORDER BY seq LIMIT 5",
            vec!["jobs_live_group"],
        ),
        (
            "SELECT * FROM jobs WHERE state IN ('QUEUED', 'SCHEDULED') AND (wait_for_idle = 1 OR require_charging = 1) \
             ORDER BY seq LIMIT 5",
            vec!["jobs_system_waiters"],
        ),
        (
            "SELECT * FROM jobs WHERE finished_at_ms IS NOT NULL AND reap_pending = 0 AND finished_at_ms < 5 \
             ORDER BY seq LIMIT 5",
            vec!["jobs_finished"],
        ),
        ("SELECT DISTINCT queue FROM jobs WHERE state = 'QUEUED' ORDER BY queue", vec!["jobs_queued"]),
        // process_holders (restart recovery): never a scan of every job.
        (
            "SELECT * FROM jobs INDEXED BY jobs_processes WHERE (state = 'RUNNING' OR reap_pending = 1) \
             ORDER BY seq LIMIT 5",
            vec!["jobs_processes"],
        ),
        (
            "SELECT count(*) FROM jobs WHERE (state = 'RUNNING' OR reap_pending = 1) AND queue = 'q'",
            vec!["jobs_processes"],
        ),
        // Whether a subject is occupied (a claim, before it starts a job).
        (
            "SELECT id FROM jobs WHERE subject_key = 's' AND \
             (finished_at_ms IS NULL OR reap_pending = 1) \
             AND (state = 'RUNNING' OR reap_pending = 1)",
            vec!["jobs_active_subject"],
        ),
        // Jobs to move after a wall-clock step.
        (
            "SELECT * FROM jobs WHERE wall_offset_ms IS NOT NULL AND wall_offset_ms <> 5 ORDER BY seq LIMIT 5",
            vec!["jobs_wall_timed"],
        ),
        // oldest_wait_ms of admin.stats.v1.
        ("SELECT MIN(due_at_ms) FROM jobs WHERE queue = 'q' AND state = 'QUEUED'", vec!["jobs_queued_due"]),
    ];
    let mut used = std::collections::BTreeSet::new();
    for (sql, indexes) in cases {
        let plan = plan(sql);
        for index in indexes {
            assert!(plan.contains(index), "{sql}\n  plan: {plan}\n  expected {index}");
            used.insert(index.to_owned());
        }
    }
    // Every index costs each write that touches it: the schema keeps only those a plan
    // above uses (SQLite's own autoindexes of UNIQUE columns aside).
    let mut statement = store
        .connection()
        .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'jobs' AND sql IS NOT NULL")
        .unwrap();
    let indexes: std::collections::BTreeSet<String> =
        statement.query_map([], |row| row.get(0)).unwrap().collect::<Result<_, _>>().unwrap();
    assert_eq!(indexes, used, "indexes of jobs vs indexes a hot query uses");
}

/// A job an event has released leaves the event's index, though it still waits (its
/// queue paused, or no worker free yet): an event of a million jobs is released in rounds
/// of a few thousand, and each round used to step over every job released before it (a
/// million-job release took 63 s, and 19 s once released jobs left the index).
#[test]
fn released_jobs_leave_the_event_waiters_index() {
    let dir = tempfile::tempdir().unwrap();
    let (mut mem, mut sql) = (MemStore::new(), open(&dir));
    let waiting = |n: u64, released: bool| Job {
        conditions: Conditions { wait_for_event: Some("e".into()), ..Conditions::default() },
        event_released: released,
        subject_key: format!("s{n}"),
        ..bare_job(n)
    };
    let released = 2_000;
    let jobs: Vec<Job> =
        (1..=released).map(|n| waiting(n, true)).chain((1..=3).map(|n| waiting(released + n, false))).collect();
    check(&mut mem, &mut sql, jobs.into_iter().map(Write::Insert).collect()).unwrap();
    let seqs = |jobs: Vec<Job>| jobs.into_iter().map(|j| j.seq).collect::<Vec<_>>();
    assert_eq!(seqs(sql.event_waiters("e", 10).unwrap()), seqs(mem.event_waiters("e", 10).unwrap()));
    assert_eq!(seqs(sql.event_waiters("e", 10).unwrap()), vec![released + 1, released + 2, released + 3]);
    assert_event_query_skips_released(&sql);

    // A database of schema 9, whose index still holds the released jobs, is brought up
    // to date in place.
    let target = tempfile::tempdir().unwrap();
    let path = target.path().join("jobs.db");
    database_at(9, &path, &dir.path().join("jobs.db"));
    let migrated = SqliteStore::open(&path, &SqliteOptions::default()).unwrap();
    assert_eq!(migrated.schema_version().unwrap(), 10);
    assert_eq!(seqs(migrated.event_waiters("e", 10).unwrap()), vec![released + 1, released + 2, released + 3]);
    assert_event_query_skips_released(&migrated);
}

/// The store's event query, word for word, takes few steps for the 3 waiting jobs of
/// `e`, however many it released before (with them in the index: over 8,000 steps).
fn assert_event_query_skips_released(store: &SqliteStore) {
    let mut statement = store
        .connection()
        .prepare(
            "SELECT id FROM jobs WHERE wait_for_event = ?1 AND state IN ('QUEUED', 'SCHEDULED') \
             AND wait_for_event IS NOT NULL AND event_released = 0 ORDER BY seq LIMIT 10",
        )
        .unwrap();
    let rows = statement.query_map(["e"], |row| row.get::<_, String>(0)).unwrap().count();
    assert_eq!(rows, 3);
    let steps = statement.get_status(rusqlite::StatementStatus::VmStep);
    assert!(steps < 200, "the event's query took {steps} steps for 3 waiting jobs");
}

/// Paused queues and recurring jobs read back from the file exactly as written (every
/// field of the stored request), across a reopen, and as MemStore holds them.
#[test]
fn paused_queues_and_recurring_jobs_read_back_as_written() {
    use semantica_core::{BackoffRequest, EnqueueRequest, ExecRequest, Recurring, ScheduleRequest};
    let dir = tempfile::tempdir().unwrap();
    let mut mem = MemStore::new();
    let job = EnqueueRequest {
        job_type: Some("sh".into()),
        queue: Some("q".into()),
        subject_key: Some("s\u{e9}".into()),
        generation: None,
        payload_json: Some("{\"a\":[1,null]}".into()),
        priority: Some(-4),
        exec: Some(ExecRequest {
            command: Some("sh".into()),
            args: vec!["-c".into(), "".into()],
            env: [("A".to_owned(), "b".to_owned())].into(),
            cwd: Some("/tmp".into()),
        }),
        max_attempts: Some(3),
        backoff: Some(BackoffRequest { base_ms: Some(1), factor: Some(1.5), max_ms: None, jitter: Some(0.0) }),
        timeout_ms: Some(5),
        ttl_ms: Some(6),
        deadline_ms: Some(7),
        schedule: Some(ScheduleRequest { at_ms: None, delay_ms: Some(9) }),
        conditions: Some(Conditions { wait_for_idle: true, require_charging: false, wait_for_event: Some("e".into()) }),
        parent_job_id: Some("p".into()),
        tag: Some("t".into()),
        chain_group_id: Some("g".into()),
        trace_id: Some("x".into()),
    };
    let recurring = |name: &str, next_at_ms: Option<u64>| Recurring {
        name: name.into(),
        cron: "*/5 * * * *".into(),
        timezone: "Europe/Berlin".into(),
        job: job.clone(),
        next_at_ms,
        last_slot_ms: next_at_ms.map(|at| at - 300_000),
        last_enqueued_job_id: Some(JobId::from_u128(42)),
    };
    {
        let mut sql = open(&dir);
        let writes = vec![
            Write::QueuePaused { queue: "held".into(), paused: true },
            Write::QueuePaused { queue: "other".into(), paused: true },
            Write::PutRecurring(recurring("b", Some(2_000_000))),
            Write::PutRecurring(recurring("a", Some(3_000_000))),
            Write::PutRecurring(recurring("none", None)),
        ];
        check(&mut mem, &mut sql, writes).unwrap();
        let writes = vec![
            Write::QueuePaused { queue: "other".into(), paused: false },
            Write::DeleteRecurring { name: "gone".into() },
        ];
        check(&mut mem, &mut sql, writes).unwrap();
    }
    let sql = open(&dir);
    assert_eq!(sql.paused_queues().unwrap(), ["held"]);
    assert_eq!(sql.recurring_list().unwrap(), mem.recurring_list().unwrap());
    assert_eq!(sql.recurring("a").unwrap(), Some(recurring("a", Some(3_000_000))));
    let due: Vec<String> = sql.recurring_due(3_000_000, 10).unwrap().into_iter().map(|r| r.name).collect();
    assert_eq!(due, ["b", "a"], "by next_at, and never one without a slot");
    assert_eq!(sql.recurring_due(2_999_999, 10).unwrap().len(), 1);
    assert_eq!(sql.recurring_due(u64::MAX, 1).unwrap(), mem.recurring_due(u64::MAX, 1).unwrap());
}

/// SQLite evaluates `x IN (a, b, c)` (three or more) through a temporary table, and it
/// evaluates every partial index's predicate for the old and new row of each write: a
/// predicate with such a list cost the writer a fifth of its instructions (migration
/// 0006). Lists of two are compared in place.
#[test]
fn partial_index_predicates_build_no_temporary_tables() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let mut statement = store
        .connection()
        .prepare("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")
        .unwrap();
    let indexes: Vec<(String, String)> =
        statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?))).unwrap().map(Result::unwrap).collect();
    assert!(indexes.len() >= 10, "{indexes:?}");
    for (name, sql) in indexes {
        let Some(start) = sql.find(" IN (") else { continue };
        let list = &sql[start..sql[start..].find(')').map_or(sql.len(), |end| start + end)];
        assert!(list.matches(',').count() < 2, "index {name} tests a list of three or more: {sql}");
    }
}

/// Every statement the store writes a job with, explained: none opens a temporary table.
/// SQLite builds one for `x IN (a, b, c)` (three or more) in a CHECK or a partial index
/// predicate, for every row written (migrations 0006 and 0007).
#[test]
fn writing_a_job_builds_no_temporary_table() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let conn = store.connection();
    let columns_of = |table: &str| -> Vec<String> {
        conn.prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let (columns, spec_columns) = (columns_of("jobs"), columns_of("job_specs"));
    assert!(columns.len() > 30 && spec_columns.len() > 10, "{columns:?} {spec_columns:?}");
    let insert = |table: &str, columns: &[String]| {
        format!("INSERT INTO {table} ({}) VALUES ({})", columns.join(", "), vec!["?"; columns.len()].join(", "))
    };
    let set = columns.iter().filter(|c| *c != "seq").map(|c| format!("{c} = ?")).collect::<Vec<_>>().join(", ");
    for sql in [
        insert("jobs", &columns),
        insert("job_specs", &spec_columns),
        format!("UPDATE jobs SET {set} WHERE seq = ? AND id = ? AND version = ?"),
        "DELETE FROM jobs WHERE id = ?1 AND version = ?2".to_owned(),
        "DELETE FROM job_specs WHERE seq = ?1".to_owned(),
    ] {
        let mut explain = conn.prepare(&format!("EXPLAIN {sql}")).unwrap();
        let nulls = vec![rusqlite::types::Value::Null; explain.parameter_count()];
        let opcodes: Vec<String> = explain
            .query_map(rusqlite::params_from_iter(nulls), |row| row.get(1))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert!(!opcodes.is_empty());
        assert!(!opcodes.iter().any(|op| op == "OpenEphemeral"), "{sql} opens a temporary table: {opcodes:?}");
    }
}

/// A claim's UPDATE (the columns a start changes, as the store sets only what changed)
/// and a queued job's next attempt open no cursor on the indexes of live jobs by subject,
/// tag, group or parent, nor on the finished index: their predicates name
/// `finished_at_ms`, which neither changes (migration 0008). With the state in their
/// predicates (schema 7) SQLite rewrote each of those entries in place at every claim.
#[test]
fn a_claim_leaves_the_indexes_of_live_jobs_alone() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let conn = store.connection();
    let root = |index: &str| -> i64 {
        conn.query_row("SELECT rootpage FROM sqlite_master WHERE name = ?1", [index], |row| row.get(0)).unwrap()
    };
    let untouched = ["jobs_active_subject", "jobs_live_tag", "jobs_live_group", "jobs_live_parent", "jobs_finished"];
    let touched = ["jobs_queued", "jobs_processes"];
    let claim = "UPDATE jobs SET version = ?4, state = ?5, attempts = ?6, started_at_ms = ?7 \
                 WHERE seq = ?1 AND id = ?2 AND version = ?3";
    let mut explain = conn.prepare(&format!("EXPLAIN {claim}")).unwrap();
    let nulls = vec![rusqlite::types::Value::Null; explain.parameter_count()];
    let opened: std::collections::BTreeSet<i64> = explain
        .query_map(rusqlite::params_from_iter(nulls), |row| Ok((row.get::<_, String>(1)?, row.get::<_, i64>(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .filter(|(opcode, _)| opcode == "OpenWrite" || opcode == "OpenRead")
        .map(|(_, page)| page)
        .collect();
    for index in untouched {
        assert!(!opened.contains(&root(index)), "a claim opens {index}");
    }
    // The check sees cursors at all: the claim does move the job between these two.
    for index in touched {
        assert!(opened.contains(&root(index)), "a claim does not open {index}: {opened:?}");
    }
}

/// A database of schema 6 (one row per job, the state CHECK as an IN list) is rebuilt in
/// place by 0007 into hot rows and specs: every job, subject, count and the sequence come
/// through unchanged.
#[test]
fn a_version_6_database_is_rebuilt_in_place() {
    let source = tempfile::tempdir().unwrap();
    let mut mem = MemStore::new();
    let jobs: Vec<Job> = (1..=40)
        .map(|n| {
            let state = JobState::ALL[n as usize % JobState::ALL.len()];
            // No node: schema 6 has no column for it, and 0008 adds it as NULL.
            let finished_at_ms = state.is_terminal().then_some(9000);
            Job { state, finished_at_ms, wake_at_ms: None, node: None, ..full_job(n) }
        })
        .collect();
    {
        let mut sql = open(&source);
        check(&mut mem, &mut sql, jobs.iter().cloned().map(Write::Insert).collect()).unwrap();
    }
    let target = tempfile::tempdir().unwrap();
    let path = target.path().join("jobs.db");
    database_at(6, &path, &source.path().join("jobs.db"));
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        let table: String =
            conn.query_row("SELECT sql FROM sqlite_master WHERE name = 'jobs'", [], |row| row.get(0)).unwrap();
        assert!(table.contains("state IN ("), "schema 6 as released: {table}");
    }
    let mut sql = SqliteStore::open(&path, &SqliteOptions::default()).unwrap();
    assert_eq!(sql.schema_version().unwrap(), MIGRATIONS.last().unwrap().version);
    let table: String =
        sql.connection().query_row("SELECT sql FROM sqlite_master WHERE name = 'jobs'", [], |row| row.get(0)).unwrap();
    assert!(!table.contains("state IN ("), "{table}");
    assert!(!table.contains("payload_json"), "the payload is no longer in the hot row: {table}");
    let specs: i64 = sql.connection().query_row("SELECT count(*) FROM job_specs", [], |row| row.get(0)).unwrap();
    assert_eq!(specs, 40);
    for job in &jobs {
        assert_eq!(sql.get(job.id).unwrap().as_ref(), Some(job));
    }
    assert_eq!(sql.queue_stats().unwrap(), mem.queue_stats().unwrap());
    assert_eq!(sql.max_seq().unwrap(), 40);
    for n in 0..3 {
        let subject = format!("subject-{n}");
        assert_eq!(sql.max_generation(&subject).unwrap(), mem.max_generation(&subject).unwrap());
    }
    // The rebuilt table still refuses what the old one refused, and takes new jobs.
    let bad = sql.connection().execute("UPDATE jobs SET state = 'LOST' WHERE seq = 1", []);
    assert!(bad.is_err(), "a state outside the nine is refused");
    check(&mut mem, &mut sql, vec![Write::Insert(full_job(41))]).unwrap();
}

/// Makes a database at schema `version` (the migrations up to it, as a binary of that
/// schema made it) at `path`, holding the jobs, subjects, counts and sequence of the
/// current store at `source`: one row per job before 0007, so the two halves joined.
fn database_at(version: u32, path: &std::path::Path, source: &std::path::Path) {
    let mut conn = rusqlite::Connection::open(path).unwrap();
    assert_eq!(schema::migrate(&mut conn, &MIGRATIONS[..version as usize]).unwrap(), version);
    conn.execute("ATTACH DATABASE ?1 AS source", [source.to_str().unwrap()]).unwrap();
    let columns: Vec<String> = conn
        .prepare("SELECT name FROM pragma_table_info('jobs')")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let columns = columns.join(", ");
    let from = if version < 7 { "source.jobs LEFT JOIN source.job_specs USING (seq)" } else { "source.jobs" };
    conn.execute_batch(&format!(
        "INSERT INTO jobs ({columns}) SELECT {columns} FROM {from};
         INSERT INTO subjects SELECT * FROM source.subjects;
         UPDATE counters SET max_seq = (SELECT max_seq FROM source.counters);"
    ))
    .unwrap();
    if version >= 2 {
        conn.execute_batch("DELETE FROM queue_counts; INSERT INTO queue_counts SELECT * FROM source.queue_counts;")
            .unwrap();
    }
    if version >= 7 {
        conn.execute_batch("INSERT INTO job_specs SELECT * FROM source.job_specs").unwrap();
    }
    conn.execute_batch("DETACH DATABASE source").unwrap();
}
