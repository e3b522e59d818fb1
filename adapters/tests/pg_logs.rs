//! What daemons on one Postgres share besides the jobs: job logs in `job_log_chunks`
//! (appended in pieces, read back in chunks as a file is read, gone with the purged job)
//! and wake-ups (a commit that makes a job ready notifies every listener, and only a
//! commit does). Needs `SEMANTICA_TEST_PG_URL` (`source .ci/postgres.sh`).

#[path = "support/pg.rs"]
mod pg;

use std::time::{Duration, Instant};

use pg::TestSchema;
use semantica_adapters::logs::read_chunk;
use semantica_adapters::postgres::{AppendError, LogAppend, PgListener, PgLogs};
use semantica_core::{Job, JobId, JobState, Store, Write, WriteSet};

fn job(n: u64, queue: &str, state: JobState) -> Job {
    Job { seq: n, queue: queue.into(), state, subject_key: format!("s{n}"), ..Job::blank(JobId::from_u128(n.into())) }
}

fn set(writes: Vec<Write>) -> WriteSet {
    WriteSet { writes }
}

/// Appends `bytes` in pieces of `piece` bytes, as a copier that looked often would.
fn append_in_pieces(logs: &mut PgLogs, id: JobId, bytes: &[u8], piece: usize) {
    let mut offset = logs.end(id).unwrap();
    for part in bytes.chunks(piece) {
        logs.append_all(&[LogAppend { job_id: id, start_offset: offset, bytes: part.to_vec() }]).unwrap();
        offset += part.len() as u64;
    }
}

/// Reads the whole log chunk by chunk, from the database and from a file holding the same
/// bytes: both must give the same chunks.
fn check_reads_like_a_file(logs: &mut PgLogs, id: JobId, bytes: &[u8], limit: u64) {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), bytes).unwrap();
    let mut offset = 0;
    for _ in 0..10_000 {
        let from_db = logs.read(id, offset, limit).unwrap();
        let from_file = read_chunk(file.path(), offset, limit).unwrap();
        assert_eq!(from_db, from_file, "offset {offset}, limit {limit}");
        if from_db.at_end {
            return;
        }
        offset = from_db.next_offset;
    }
    panic!("the log never ended");
}

#[test]
fn a_log_appended_in_pieces_reads_back_as_a_file_does() {
    let schema = TestSchema::new("logs_read");
    let mut store = schema.open();
    let id = JobId::from_u128(1);
    store.commit(&set(vec![Write::Insert(job(1, "default", JobState::Queued))])).unwrap();
    let mut logs = PgLogs::open(&schema.url, &schema.options()).unwrap();
    assert_eq!(logs.end(id).unwrap(), 0);
    let empty = logs.read(id, 0, 64).unwrap();
    assert_eq!((empty.text.as_str(), empty.next_offset, empty.at_end), ("", 0, true));
    // Characters of 1 to 4 bytes, and invalid bytes, cut anywhere by the pieces.
    let mut bytes = "aé€😀\n".repeat(40).into_bytes();
    bytes.extend_from_slice(b"\xFF\xFEtail\xE2\x82");
    append_in_pieces(&mut logs, id, &bytes, 7);
    assert_eq!(logs.end(id).unwrap(), bytes.len() as u64);
    for limit in [1, 2, 3, 5, 64, 65_536] {
        check_reads_like_a_file(&mut logs, id, &bytes, limit);
    }
    // A second copier appending at an offset already taken is refused, not interleaved.
    let overlap = logs.append_all(&[LogAppend { job_id: id, start_offset: 0, bytes: b"x".to_vec() }]);
    assert!(matches!(overlap, Err(AppendError::Overlap)), "{overlap:?}");
    // An attempt is sealed once recorded whole; a job that is not in the database gets
    // no seal (and no error).
    assert!(!logs.sealed(id, 1).unwrap());
    logs.seal_all(&[(id, 1)]).unwrap();
    assert!(logs.sealed(id, 1).unwrap());
    let end: i64 = schema.client().query_one("SELECT end_offset FROM job_log_ends", &[]).unwrap().get(0);
    assert_eq!(end, bytes.len() as i64, "sealed at the log's end as the database held it");
    assert!(!logs.sealed(id, 2).unwrap(), "a seal is the attempt's, not the job's");
    logs.seal_all(&[(JobId::from_u128(98), 1)]).unwrap();
    assert!(!logs.sealed(JobId::from_u128(98), 1).unwrap());
    // A job that is not in the database gets no log.
    let missing = JobId::from_u128(99);
    let gone = logs.append_all(&[LogAppend { job_id: missing, start_offset: 0, bytes: b"x".to_vec() }]);
    assert!(matches!(gone, Err(AppendError::JobGone)), "{gone:?}");
    assert_eq!(logs.end(missing).unwrap(), 0);
}

#[test]
fn a_purged_job_takes_its_log_chunks_with_it() {
    let schema = TestSchema::new("logs_purge");
    let mut store = schema.open();
    let mut done = job(1, "default", JobState::Done);
    done.finished_at_ms = Some(5);
    let kept = job(2, "default", JobState::Done);
    store.commit(&set(vec![Write::Insert(done.clone()), Write::Insert(kept.clone())])).unwrap();
    let mut logs = PgLogs::open(&schema.url, &schema.options()).unwrap();
    append_in_pieces(&mut logs, done.id, b"first job's output\n", 5);
    append_in_pieces(&mut logs, kept.id, b"second\n", 100);
    logs.seal_all(&[(done.id, 1)]).unwrap();
    store.commit(&set(vec![Write::Delete { id: done.id, version: done.version }])).unwrap();
    assert_eq!(logs.end(done.id).unwrap(), 0);
    let rows: i64 = schema.client().query_one("SELECT count(*) FROM job_log_chunks", &[]).unwrap().get(0);
    assert_eq!(rows, 1, "only the kept job's chunk is left");
    assert!(!logs.sealed(done.id, 1).unwrap(), "the seal went with the job");
    assert_eq!(logs.read(kept.id, 0, 64).unwrap().text, "second\n");
}

#[test]
fn a_commit_that_makes_a_job_ready_wakes_every_listener_and_a_rollback_wakes_none() {
    let schema = TestSchema::new("logs_notify");
    let mut store = schema.open();
    let mut listeners: Vec<PgListener> =
        (0..2).map(|_| PgListener::open(&schema.url, &schema.options()).unwrap()).collect();
    // Nothing was committed yet: nothing arrives.
    assert!(!listeners[0].wait(Duration::from_millis(50), None).unwrap());

    // A waiting job wakes nobody; a queued one wakes every listener, once per transaction
    // however many jobs it makes ready.
    store.commit(&set(vec![Write::Insert(job(1, "later", JobState::Scheduled))])).unwrap();
    store
        .commit(&set(vec![
            Write::Insert(job(2, "fast", JobState::Queued)),
            Write::Insert(job(3, "fast", JobState::Queued)),
        ]))
        .unwrap();
    for listener in &mut listeners {
        assert!(listener.wait(Duration::from_secs(5), None).unwrap());
        assert!(!listener.wait(Duration::from_millis(50), None).unwrap());
    }

    // A release (SCHEDULED → QUEUED) wakes too.
    let scheduled = store.get(JobId::from_u128(1)).unwrap().unwrap();
    let mut released = scheduled.clone();
    released.version += 1;
    released.state = JobState::Queued;
    store.commit(&set(vec![Write::Update(released)])).unwrap();
    assert!(listeners[0].wait(Duration::from_secs(5), None).unwrap());

    // A commit refused whole (a stale version) notifies nothing.
    let stale = job(4, "refused", JobState::Queued);
    let mut wrong = scheduled;
    wrong.version += 1;
    let refused = store.commit(&set(vec![Write::Insert(stale), Write::Update(wrong)]));
    assert!(refused.is_err());
    assert!(listeners[1].wait(Duration::from_millis(50), None).unwrap());
    assert!(!listeners[1].wait(Duration::from_millis(100), None).unwrap());
    assert!(!listeners[0].wait(Duration::from_millis(100), None).unwrap());

    // A daemon leaves out its own writer's notifications (its scheduler already knows).
    store.commit(&set(vec![Write::Insert(job(5, "own", JobState::Queued))])).unwrap();
    assert!(!listeners[0].wait(Duration::from_millis(200), Some(store.backend_pid())).unwrap());
    assert!(listeners[1].wait(Duration::from_secs(5), None).unwrap());
}

/// How long a notification takes from a commit on one connection to a listener on
/// another: printed (a measurement, like `semantica bench`), with a loose bound that only
/// a wake-up lost to polling would break.
#[test]
fn wake_up_latency_from_commit_to_listener() {
    let schema = TestSchema::new("logs_latency");
    let mut store = schema.open();
    let mut listener = PgListener::open(&schema.url, &schema.options()).unwrap();
    let mut latencies_us: Vec<u128> = Vec::new();
    for n in 1..=50u64 {
        let started = Instant::now();
        store.commit(&set(vec![Write::Insert(job(n, "default", JobState::Queued))])).unwrap();
        let committed = started.elapsed();
        assert!(listener.wait(Duration::from_secs(5), None).unwrap(), "no wake-up within 5 s");
        latencies_us.push((started.elapsed() - committed).as_micros());
    }
    latencies_us.sort_unstable();
    let at = |q: f64| latencies_us[((latencies_us.len() - 1) as f64 * q) as usize];
    println!(
        "wake-up after commit (50 commits): p50 {} µs, p90 {} µs, max {} µs",
        at(0.5),
        at(0.9),
        latencies_us[latencies_us.len() - 1]
    );
    // A poll would take up to the scheduler's second; a notification arrives with the
    // commit. The bound is loose so that a loaded machine does not fail it.
    assert!(at(0.5) < 1_000_000, "the median wake-up took {} µs", at(0.5));
}

/// A listener whose connection the server ends says so (the daemon then connects again
/// and looks at every queue once), and a new listener hears the next commit.
#[test]
fn a_listener_whose_connection_ends_says_so_and_a_new_one_hears_again() {
    let schema = TestSchema::new("logs_relisten");
    let mut store = schema.open();
    let mut listener = PgListener::open(&schema.url, &schema.options()).unwrap();
    let ended: bool = schema
        .client()
        .query_one(
            // This test's listener only: its channel holds the schema's name.
            "SELECT bool_and(pg_terminate_backend(pid)) FROM pg_stat_activity
             WHERE query LIKE 'LISTEN %' AND strpos(query, $1) > 0 AND pid <> pg_backend_pid()",
            &[&schema.name],
        )
        .unwrap()
        .get(0);
    assert!(ended, "the listener's server process was found and ended");
    let started = Instant::now();
    let lost = loop {
        match listener.wait(Duration::from_millis(100), None) {
            Err(error) => break error,
            Ok(woke) => assert!(!woke, "woken, though nothing was committed"),
        }
        assert!(started.elapsed() < Duration::from_secs(10), "the listener never noticed its connection ended");
    };
    assert!(!lost.is_empty());
    let mut again = PgListener::open(&schema.url, &schema.options()).unwrap();
    store.commit(&set(vec![Write::Insert(job(1, "default", JobState::Queued))])).unwrap();
    assert!(again.wait(Duration::from_secs(5), None).unwrap());
}
