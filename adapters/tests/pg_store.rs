//! The Postgres store on its own: a job round-trips bit for bit, migrations (twice, a
//! newer database, a failed one, concurrent openers under the advisory lock), and the
//! rules the database keeps when two stores (two daemons) decide on the same reads:
//! stale versions, subject exclusivity, one live job per (subject, generation), and
//! sequence numbers; node leases (renewal, expiry, forgetting, one daemon per node id),
//! the guard that commits a `NodeLost` step only while the lease is expired, and claims
//! that skip the rows another daemon's open claim holds. Needs `SEMANTICA_TEST_PG_URL` (`source .ci/postgres.sh`).

#[path = "support/pg.rs"]
mod pg;

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use pg::TestSchema;
use semantica_adapters::postgres::schema::{self, PG_MIGRATIONS};
use semantica_adapters::sqlite::{Migration, MigrationError};
use semantica_adapters::{OpenError, PgStore};
use semantica_core::{
    Artifact, Backoff, Conditions, ErrorKind, ExecSpec, Job, JobError, JobId, JobState, Store, StoreError, Write,
    WriteSet,
};

/// A job with every optional field set, with the bytes Postgres TEXT cannot hold (NUL)
/// where a client or a process may put them.
fn full_job(n: u64) -> Job {
    Job {
        id: JobId::from_u128(0xABCD_0000_0000_0000_0000_0000_0000_0000 + u128::from(n)),
        seq: n,
        version: 1,
        queue: "default".into(),
        job_type: "work".into(),
        subject_key: format!("sübject-{}", n % 3),
        generation: n,
        state: JobState::Scheduled,
        priority: -5,
        payload_json: "{\"a\":[1,2,{\"b\":null}],\"s\":\"\\u0000é\"}\0raw".into(),
        exec: Some(ExecSpec {
            command: "/usr/bin/env".into(),
            args: vec!["-i".into(), "x y".into(), "\0".into(), String::new()],
            env: [("PATH".to_owned(), "/bin".to_owned()), ("Ü".to_owned(), "\"q\"".to_owned())].into(),
            cwd: Some("/tmp/ä".into()),
        }),
        attempts: u32::MAX,
        max_attempts: u32::MAX,
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
        error: Some(JobError::new(ErrorKind::DaemonRestart, "line\nbreak\0nul")),
        result_summary_json: Some("{\"x\":\"\0\"}".into()),
        artifacts: vec![Artifact { name: "a".into(), bytes: u64::MAX }, Artifact { name: "b".into(), bytes: 0 }],
        retry_of: Some(JobId::from_u128(7)),
        deadline_wall_ms: Some(9_000 + n),
        at_wall_ms: Some(1_500 + n),
        wall_offset_ms: Some(-3_600_000),
        node: Some("host-ü:/home/x".into()),
    }
}

/// A queued job of `subject` at `generation`.
fn queued(n: u64, subject: &str, generation: u64) -> Job {
    Job { seq: n, subject_key: subject.into(), generation, ..Job::blank(JobId::from_u128(u128::from(n))) }
}

fn set(writes: Vec<Write>) -> WriteSet {
    WriteSet { writes }
}

/// `job` moved on by one write, as the engine hands it over.
fn next(job: &Job, change: impl FnOnce(&mut Job)) -> Job {
    let mut moved = job.clone();
    moved.version += 1;
    change(&mut moved);
    moved
}

fn running(job: &Job) -> Job {
    next(job, |j| {
        j.state = JobState::Running;
        j.attempts += 1;
        j.started_at_ms = Some(10);
    })
}

fn is_conflict(result: Result<(), StoreError>) -> bool {
    matches!(result, Err(StoreError::Conflict { .. }))
}

/// A job an event has released leaves the event's index (migration 0005): the query of
/// the jobs still waiting on the event reads no released row to throw it away.
#[test]
fn released_jobs_leave_the_event_waiters_index() {
    let schema = TestSchema::new("released");
    let mut store = schema.open();
    let waiting = |n: u64, released: bool| Job {
        conditions: Conditions { wait_for_event: Some("e".into()), ..Conditions::default() },
        event_released: released,
        ..queued(n, &format!("s{n}"), 1)
    };
    let jobs = (1..=500).map(|n| waiting(n, true)).chain((501..=503).map(|n| waiting(n, false)));
    store.commit(&set(jobs.map(Write::Insert).collect())).unwrap();
    let seqs: Vec<u64> = store.event_waiters("e", 10).unwrap().into_iter().map(|job| job.seq).collect();
    assert_eq!(seqs, vec![501, 502, 503]);
    let mut client = schema.client();
    client.batch_execute("ANALYZE jobs; SET enable_seqscan = off").unwrap();
    let plan: Vec<String> = client
        .query(
            "EXPLAIN (ANALYZE, COSTS OFF) SELECT seq FROM jobs WHERE wait_for_event = 'e' \
             AND (state = 'QUEUED' OR state = 'SCHEDULED') AND wait_for_event IS NOT NULL AND NOT event_released \
             ORDER BY seq LIMIT 10",
            &[],
        )
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    let plan = plan.join("\n");
    assert!(plan.contains("jobs_event_waiters"), "{plan}");
    assert!(!plan.contains("Rows Removed by Filter"), "released rows read and thrown away:\n{plan}");
}

#[test]
fn a_job_round_trips_bit_for_bit() {
    let schema = TestSchema::new("roundtrip");
    let mut store = schema.open();
    let job = full_job(1);
    store.commit(&set(vec![Write::Insert(job.clone())])).unwrap();
    let read = store.get(job.id).unwrap().unwrap();
    assert_eq!(read, job);
    assert!(read.backoff.jitter.is_sign_negative(), "-0.0 keeps its sign");
    assert_eq!(store.max_seq().unwrap(), 1);
    assert_eq!(store.max_generation("sübject-1").unwrap(), Some(1));
    // A second connection reads the same.
    assert_eq!(schema.open().get(job.id).unwrap(), Some(job));
}

#[test]
fn opening_twice_applies_each_migration_once() {
    let schema = TestSchema::new("mig_twice");
    let first = schema.open();
    assert_eq!(first.schema_version().unwrap(), PG_MIGRATIONS.last().unwrap().version);
    let second = schema.open();
    assert_eq!(second.schema_version().unwrap(), first.schema_version().unwrap());
    let rows: i64 = schema.client().query_one("SELECT count(*) FROM schema_version", &[]).unwrap().get(0);
    assert_eq!(rows, PG_MIGRATIONS.len() as i64);
}

/// Migration 0004 fills the counts from the jobs a database already holds: the stats
/// of a database migrated from version 3 are those of the same jobs in MemStore.
#[test]
fn a_database_from_before_the_kept_counts_is_counted_when_migrated() {
    let schema = TestSchema::new("mig_counts");
    let mut store = schema.open();
    let mut mem = semantica_core::MemStore::new();
    let other_queue = Job { queue: "other".into(), ..queued(4, "d", 1) };
    let sets = [
        set(vec![Write::Insert(queued(1, "a", 1)), Write::Insert(queued(2, "b", 1)), Write::Insert(queued(3, "c", 1))]),
        set(vec![Write::Insert(other_queue), Write::Update(running(&queued(2, "b", 1)))]),
        set(vec![Write::Update(next(&running(&queued(2, "b", 1)), |j| {
            j.state = JobState::Done;
            j.finished_at_ms = Some(20);
        }))]),
    ];
    for writes in &sets {
        store.commit(writes).unwrap();
        mem.commit(writes).unwrap();
    }
    assert_eq!(store.queue_stats().unwrap(), mem.queue_stats().unwrap());
    drop(store);
    // The database as version 3 left it: jobs, and no counts.
    // Versions from 4 on are forgotten; 0005 only rebuilds an index, and runs again.
    schema.client().batch_execute("DROP TABLE queue_counts; DELETE FROM schema_version WHERE version >= 4").unwrap();
    let store = schema.open();
    assert_eq!(store.schema_version().unwrap(), PG_MIGRATIONS.last().unwrap().version);
    let stats = store.queue_stats().unwrap();
    assert_eq!(stats, mem.queue_stats().unwrap());
    assert_eq!(stats[0].count(JobState::Queued), 2, "{stats:?}");
    assert_eq!(stats[0].count(JobState::Done), 1, "{stats:?}");
}

#[test]
fn concurrent_openers_migrate_once_and_all_succeed() {
    let schema = Arc::new(TestSchema::new("mig_race"));
    let openers = 6;
    let barrier = Arc::new(Barrier::new(openers));
    let threads: Vec<_> = (0..openers)
        .map(|_| {
            let (schema, barrier) = (Arc::clone(&schema), Arc::clone(&barrier));
            std::thread::spawn(move || {
                barrier.wait();
                PgStore::open(&schema.url, &schema.options()).map(|store| store.schema_version().unwrap())
            })
        })
        .collect();
    for thread in threads {
        assert_eq!(thread.join().unwrap().unwrap(), PG_MIGRATIONS.last().unwrap().version);
    }
    let rows: i64 = schema.client().query_one("SELECT count(*) FROM schema_version", &[]).unwrap().get(0);
    assert_eq!(rows, PG_MIGRATIONS.len() as i64, "each migration recorded once");
}

#[test]
fn an_opener_waits_for_the_migration_lock() {
    let schema = TestSchema::new("mig_lock");
    // Someone else (another daemon mid-migration) holds this schema's migration lock.
    let mut holder = schema.client();
    holder.batch_execute(&format!("CREATE SCHEMA \"{}\"", schema.name)).unwrap();
    holder
        .execute("SELECT pg_advisory_lock(hashtextextended('semantica.migrate:' || current_schema(), 0))", &[])
        .unwrap();
    let (url, options) = (schema.url.clone(), schema.options());
    let started = Instant::now();
    let opener = std::thread::spawn(move || PgStore::open(&url, &options).map(|_| Instant::now()));
    std::thread::sleep(Duration::from_millis(400));
    assert!(!opener.is_finished(), "the opener must wait while the lock is held");
    let released = Instant::now();
    holder
        .execute("SELECT pg_advisory_unlock(hashtextextended('semantica.migrate:' || current_schema(), 0))", &[])
        .unwrap();
    let opened = opener.join().unwrap().unwrap();
    assert!(opened >= released && opened - started >= Duration::from_millis(400));
}

#[test]
fn a_newer_database_is_refused_untouched() {
    let schema = TestSchema::new("mig_new");
    drop(schema.open());
    schema.client().execute("INSERT INTO schema_version (version, name) VALUES (999, 'future.sql')", &[]).unwrap();
    match PgStore::open(&schema.url, &schema.options()) {
        Err(OpenError::Schema(MigrationError::TooNew { found: 999, .. })) => {}
        Err(other) => panic!("expected TooNew, got {other}"),
        Ok(_) => panic!("expected TooNew, the store opened"),
    }
}

#[test]
fn a_failed_migration_rolls_back_whole() {
    let schema = TestSchema::new("mig_fail");
    let mut client = schema.client();
    client.batch_execute(&format!("CREATE SCHEMA \"{}\"", schema.name)).unwrap();
    let broken =
        [PG_MIGRATIONS[0], Migration { version: 2, name: "0002_broken.sql", sql: "SELECT no_such_function()" }];
    match schema::migrate(&mut client, &broken) {
        Err(MigrationError::Failed { migration: "0002_broken.sql", at_version: 0, .. }) => {}
        other => panic!("expected the second migration to fail, got {other:?}"),
    }
    assert_eq!(schema::current_version(&mut client).unwrap(), 0, "the first migration was rolled back too");
    let jobs: bool = client.query_one("SELECT to_regclass('jobs') IS NOT NULL", &[]).unwrap().get(0);
    assert!(!jobs);
    // The lock was released: a normal open goes through.
    assert_eq!(schema.open().schema_version().unwrap(), PG_MIGRATIONS.last().unwrap().version);
}

#[test]
fn a_stale_update_refuses_the_whole_set() {
    let schema = TestSchema::new("stale");
    let (mut daemon_a, mut daemon_b) = (schema.open(), schema.open());
    let job = queued(1, "s", 1);
    daemon_a.commit(&set(vec![Write::Insert(job.clone())])).unwrap();
    // Both read version 1; A's write lands first.
    daemon_a.commit(&set(vec![Write::Update(running(&job))])).unwrap();
    let other = queued(2, "other", 1);
    let cancelled = next(&job, |j| j.state = JobState::Cancelled);
    let refused = daemon_b.commit(&set(vec![Write::Insert(other.clone()), Write::Update(cancelled)]));
    assert!(
        matches!(&refused, Err(StoreError::Conflict { job_id, .. }) if *job_id == job.id),
        "expected a conflict on the stale job, got {refused:?}"
    );
    assert_eq!(daemon_b.get(other.id).unwrap(), None, "nothing of the refused set was written");
    assert_eq!(daemon_b.max_seq().unwrap(), 1);
    assert_eq!(daemon_b.get(job.id).unwrap().unwrap().state, JobState::Running);
    // A delete decided on the old version is refused too.
    assert!(is_conflict(daemon_b.commit(&set(vec![Write::Delete { id: job.id, version: 1 }]))));
    assert!(is_conflict(daemon_b.commit(&set(vec![Write::Update(next(&queued(9, "x", 1), |_| {}))]))));
}

#[test]
fn two_daemons_cannot_both_start_a_job_of_one_subject() {
    let schema = TestSchema::new("exclusive");
    let (mut daemon_a, mut daemon_b) = (schema.open(), schema.open());
    let (first, second) = (queued(1, "hot", 1), queued(2, "hot", 2));
    daemon_a.commit(&set(vec![Write::Insert(first.clone()), Write::Insert(second.clone())])).unwrap();
    // Each daemon reads the subject as free and claims a different job of it.
    assert_eq!(daemon_a.occupying_job_ids("hot").unwrap(), vec![]);
    assert_eq!(daemon_b.occupying_job_ids("hot").unwrap(), vec![]);
    daemon_a.commit(&set(vec![Write::Update(running(&first))])).unwrap();
    let refused = daemon_b.commit(&set(vec![Write::Update(running(&second))]));
    assert!(
        matches!(&refused, Err(StoreError::Conflict { job_id, .. }) if *job_id == second.id),
        "expected a conflict, got {refused:?}"
    );
    assert_eq!(daemon_b.occupying_job_ids("hot").unwrap(), vec![first.id]);
    // A reaped-pending job occupies its subject as well.
    let cancelled = next(&running(&first), |j| {
        j.state = JobState::Cancelled;
        j.reap_pending = true;
    });
    daemon_a.commit(&set(vec![Write::Update(cancelled.clone())])).unwrap();
    assert!(is_conflict(daemon_b.commit(&set(vec![Write::Update(running(&second))]))));
    // One set may release the subject and take it again, in either order.
    let reaped = next(&cancelled, |j| j.reap_pending = false);
    daemon_b.commit(&set(vec![Write::Update(running(&second)), Write::Update(reaped)])).unwrap();
    assert_eq!(daemon_a.occupying_job_ids("hot").unwrap(), vec![second.id]);
}

#[test]
fn two_daemons_cannot_both_enqueue_one_live_generation() {
    let schema = TestSchema::new("generation");
    let (mut daemon_a, mut daemon_b) = (schema.open(), schema.open());
    daemon_a.commit(&set(vec![Write::Insert(queued(1, "s", 5))])).unwrap();
    let refused = daemon_b.commit(&set(vec![Write::Insert(queued(2, "s", 5))]));
    assert!(is_conflict(refused.clone()), "expected a conflict, got {refused:?}");
    assert_eq!(daemon_b.max_seq().unwrap(), 1);
    // Once the first has ended, the generation may be enqueued again (dev.retry.v1).
    let done = next(&queued(1, "s", 5), |j| j.state = JobState::Done);
    daemon_a.commit(&set(vec![Write::Update(done)])).unwrap();
    daemon_b.commit(&set(vec![Write::Insert(queued(2, "s", 5))])).unwrap();
}

#[test]
fn two_daemons_cannot_insert_at_one_sequence_number() {
    let schema = TestSchema::new("sequence");
    let (mut daemon_a, mut daemon_b) = (schema.open(), schema.open());
    daemon_a.commit(&set(vec![Write::Insert(queued(1, "a", 1))])).unwrap();
    // B decided on max_seq = 0 as well.
    let same_seq = Job { seq: 1, ..queued(2, "b", 1) };
    match daemon_b.commit(&set(vec![Write::Insert(same_seq)])) {
        Err(StoreError::Conflict { detail, .. }) => assert_eq!(detail, "sequence not above the highest"),
        other => panic!("expected a conflict, got {other:?}"),
    }
    match daemon_b.commit(&set(vec![Write::Insert(Job { seq: 5, ..queued(1, "c", 1) })])) {
        Err(StoreError::Conflict { detail, .. }) => assert_eq!(detail, "id exists"),
        other => panic!("expected a conflict, got {other:?}"),
    }
}

#[test]
fn an_unreachable_server_is_unavailable_not_a_panic() {
    // A port nothing listens on (bound and closed at once).
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("postgres://nobody@127.0.0.1:{port}/nothing?connect_timeout=2");
    match PgStore::open(&url, &Default::default()) {
        Err(OpenError::Unavailable(detail)) => assert!(!detail.is_empty()),
        Err(other) => panic!("expected Unavailable, got {other}"),
        Ok(_) => panic!("opened a store on a closed port"),
    }
}

fn node_set(node: &str, writes: Vec<Write>) -> WriteSet {
    let mut all = vec![Write::NodeLeaseExpired { node: node.into() }];
    all.extend(writes);
    set(all)
}

#[test]
fn a_lease_renews_until_it_expires_and_then_only_a_new_registration_brings_it_back() {
    let schema = TestSchema::new("lease");
    let store = schema.open();
    store.register_node("a", 60_000).unwrap();
    store.register_node("b", 1).unwrap();
    std::thread::sleep(Duration::from_millis(30));
    assert!(store.renew_node("a", 60_000).unwrap());
    assert!(!store.renew_node("b", 60_000).unwrap(), "an expired lease is not renewed");
    assert_eq!(store.expired_nodes("a", 10).unwrap(), ["b"]);
    assert!(store.expired_nodes("b", 10).unwrap().is_empty(), "a node never judges itself");
    let nodes = store.nodes().unwrap();
    assert_eq!(nodes.iter().map(|n| n.id.as_str()).collect::<Vec<_>>(), ["a", "b"]);
    assert!(nodes[0].lease_expires_at_ms > nodes[1].lease_expires_at_ms);
    store.register_node("b", 60_000).unwrap();
    assert!(store.renew_node("b", 60_000).unwrap());
    assert!(store.expired_nodes("a", 10).unwrap().is_empty());
}

#[test]
fn an_expired_node_is_forgotten_only_once_none_of_its_jobs_runs() {
    let schema = TestSchema::new("forget");
    let mut store = schema.open();
    let job = queued(1, "s", 1);
    let run = Job { node: Some("gone".into()), ..running(&job) };
    store.commit(&set(vec![Write::Insert(job)])).unwrap();
    store.commit(&set(vec![Write::Update(run.clone())])).unwrap();
    store.register_node("gone", 1).unwrap();
    std::thread::sleep(Duration::from_millis(30));
    assert_eq!(store.nodes().unwrap()[0].running, 1);
    assert_eq!(store.jobs_of_node("gone", 10).unwrap(), std::slice::from_ref(&run));
    assert_eq!(store.node_process_count(None, "gone").unwrap(), 1);
    assert_eq!(store.node_process_count(Some("default"), "other").unwrap(), 0);
    assert!(!store.forget_node("gone").unwrap(), "forgotten while its job runs");
    let ended = next(&run, |j| j.state = JobState::Failed);
    store.commit(&node_set("gone", vec![Write::Update(ended)])).unwrap();
    assert!(store.forget_node("gone").unwrap());
    assert!(store.nodes().unwrap().is_empty());
}

#[test]
fn a_node_lost_step_commits_only_while_the_lease_is_expired() {
    let schema = TestSchema::new("guard");
    let mut store = schema.open();
    let job = queued(1, "s", 1);
    let run = Job { node: Some("n".into()), ..running(&job) };
    store.commit(&set(vec![Write::Insert(job)])).unwrap();
    store.commit(&set(vec![Write::Update(run.clone())])).unwrap();
    let lost = next(&run, |j| j.state = JobState::Scheduled);
    // A live lease: the step is refused whole and the job keeps running.
    store.register_node("n", 60_000).unwrap();
    assert!(is_conflict(store.commit(&node_set("n", vec![Write::Update(lost.clone())]))));
    assert_eq!(store.get(run.id).unwrap().unwrap().state, JobState::Running);
    // Expired: it commits.
    store.register_node("n", 1).unwrap();
    std::thread::sleep(Duration::from_millis(30));
    store.commit(&node_set("n", vec![Write::Update(lost)])).unwrap();
    assert_eq!(store.get(run.id).unwrap().unwrap().state, JobState::Scheduled);
}

#[test]
fn a_registration_waits_for_a_node_lost_step_that_holds_the_lease_row() {
    use semantica_adapters::sqlite::{Control, GroupCommitStore};
    let schema = TestSchema::new("guard_wait");
    let mut setup = schema.open();
    let job = queued(1, "s", 1);
    let run = Job { node: Some("n".into()), ..running(&job) };
    setup.commit(&set(vec![Write::Insert(job)])).unwrap();
    setup.commit(&set(vec![Write::Update(run.clone())])).unwrap();
    setup.register_node("n", 1).unwrap();
    std::thread::sleep(Duration::from_millis(30));
    let judge = schema.open();
    judge.control(Control::Begin).unwrap();
    judge.apply_within(&node_set("n", vec![Write::Update(next(&run, |j| j.state = JobState::Failed))])).unwrap();
    let url = (schema.url.clone(), schema.options());
    let registering = std::thread::spawn(move || {
        let node = PgStore::open(&url.0, &url.1).unwrap();
        let started = Instant::now();
        node.register_node("n", 60_000).unwrap();
        started.elapsed()
    });
    std::thread::sleep(Duration::from_millis(400));
    judge.control(Control::Commit).unwrap();
    let waited = registering.join().unwrap();
    assert!(waited >= Duration::from_millis(300), "registered while the lost node's step was open ({waited:?})");
    assert_eq!(setup.get(run.id).unwrap().unwrap().state, JobState::Failed);
    assert!(setup.renew_node("n", 60_000).unwrap());
}

#[test]
fn one_node_id_is_held_by_one_connection_at_a_time() {
    let schema = TestSchema::new("node_lock");
    let first = schema.open();
    first.hold_node_lock("twin").unwrap();
    let second = schema.open();
    let refused = second.hold_node_lock("twin").unwrap_err();
    assert!(refused.contains("node id \"twin\""), "{refused}");
    second.hold_node_lock("other").unwrap();
    drop(first);
    // The server lets go of a closed session's locks as soon as it has seen it close.
    let deadline = Instant::now() + Duration::from_secs(5);
    while second.hold_node_lock("twin").is_err() {
        assert!(Instant::now() < deadline, "the node id stayed taken after its connection closed");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn two_daemons_claiming_at_once_are_offered_different_jobs() {
    use semantica_adapters::sqlite::{Control, GroupCommitStore};
    let schema = TestSchema::new("skip_locked");
    let mut setup = schema.open();
    setup.commit(&set((1..=4).map(|n| Write::Insert(queued(n, &format!("s{n}"), 1))).collect())).unwrap();
    let a = schema.open();
    let b = schema.open();
    a.control(Control::Begin).unwrap();
    b.control(Control::Begin).unwrap();
    let seqs = |jobs: Vec<Job>| jobs.iter().map(|job| job.seq).collect::<Vec<_>>();
    assert_eq!(seqs(a.claim_candidates("default", None, None, 2).unwrap()), [1, 2]);
    // Not waited for: B is offered the next ones at once.
    let started = Instant::now();
    assert_eq!(seqs(b.claim_candidates("default", None, None, 2).unwrap()), [3, 4]);
    assert!(started.elapsed() < Duration::from_secs(2));
    a.control(Control::Rollback).unwrap();
    assert_eq!(seqs(b.claim_candidates("default", None, None, 4).unwrap()), [1, 2, 3, 4]);
    b.control(Control::Rollback).unwrap();
}
