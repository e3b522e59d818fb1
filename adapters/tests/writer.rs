//! The group-commit writer on a real SQLite file: every acknowledged step is committed,
//! claims never hand one job out twice and follow pop order, one failed step leaves its
//! batch alone, a failed COMMIT fails its whole batch (engine memory included), and the
//! queue's limit pushes back.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use semantica_adapters::sqlite::{Pending, Reader, WriteError, Writer, WriterHandle, WriterOptions, WriterStats};
use semantica_adapters::{SqliteOptions, SqliteStore};
use semantica_core::{
    CancelRequest, Clock, Config, Engine, EnqueueRequest, Input, Job, JobId, JobQuery, JobState, Rejection, Reply,
    SeededIds, SplitMix64, Step, Store, StoreError,
};

const START_MS: u64 = 1_700_000_000_000;

/// A clock that moves one millisecond every time it is read: each step of the writer gets
/// its own time, so `started_at_ms` tells the order claims were decided in.
struct TickingClock {
    next_ms: AtomicU64,
}

impl Clock for TickingClock {
    fn now_ms(&self) -> u64 {
        self.next_ms.fetch_add(1, Ordering::Relaxed)
    }
}

fn clock() -> Arc<TickingClock> {
    Arc::new(TickingClock { next_ms: AtomicU64::new(START_MS) })
}

fn engine(workers: usize) -> Engine {
    Engine::new(Config::new(workers, ["work"]), Box::new(SeededIds::new(7)), Box::new(SplitMix64::new(7)))
}

fn open(dir: &tempfile::TempDir) -> SqliteStore {
    SqliteStore::open(dir.path().join("jobs.db"), &SqliteOptions::default()).unwrap()
}

/// A reader of the test's database. Tests that plant tables or triggers of their own
/// (faults) open it first: a store refuses a schema that is not its own.
fn reader(dir: &tempfile::TempDir) -> Reader {
    Reader::open(dir.path().join("jobs.db"), &SqliteOptions::default()).unwrap()
}

fn spawn_on(store: SqliteStore, workers: usize, options: WriterOptions) -> WriterHandle {
    Writer::spawn(store, engine(workers), clock(), options).unwrap()
}

/// A writer on a new database, already recovered.
fn spawn(dir: &tempfile::TempDir, workers: usize, options: WriterOptions) -> WriterHandle {
    let writer = spawn_on(open(dir), workers, options);
    recover(&writer);
    writer
}

fn recover(writer: &WriterHandle) {
    let step = writer.submit(Input::Recover).unwrap();
    assert!(matches!(step.reply, Reply::Recovered { .. }), "{:?}", step.reply);
}

fn request(subject: &str, priority: i64) -> EnqueueRequest {
    EnqueueRequest {
        job_type: Some("work".into()),
        queue: Some("default".into()),
        subject_key: Some(subject.into()),
        priority: Some(priority),
        ..EnqueueRequest::default()
    }
}

fn enqueue(subject: &str) -> Input {
    Input::Enqueue(Box::new(request(subject, 0)))
}

/// Inputs queued together so that they share one transaction: `batch_max` equals their
/// number and `wait_max` is long, so the writer commits exactly when the last one is in.
fn batch_options(size: usize) -> WriterOptions {
    WriterOptions { batch_max: size, wait_max: Duration::from_secs(10), queue_max: 64, ..WriterOptions::default() }
}

fn submit_together(writer: &WriterHandle, inputs: Vec<Input>) -> Vec<Result<Step, WriteError>> {
    let pending: Vec<Pending> = inputs.into_iter().map(|input| writer.try_submit(input).unwrap()).collect();
    pending.into_iter().map(Pending::wait).collect()
}

fn enqueued_id(answer: &Result<Step, WriteError>) -> JobId {
    match answer {
        Ok(Step { reply: Reply::Enqueued(enqueued), .. }) => enqueued.job_id,
        other => panic!("expected an enqueue, got {other:?}"),
    }
}

fn assert_enqueued(answer: &Result<Step, WriteError>) {
    let _ = enqueued_id(answer);
}

fn all_jobs(store: &SqliteStore) -> Vec<Job> {
    let mut jobs = Vec::new();
    let mut after_seq = None;
    loop {
        let page = store.query(&JobQuery { limit: JobQuery::LIMIT_MAX, after_seq, ..JobQuery::default() }).unwrap();
        jobs.extend(page.items);
        match page.next_after_seq {
            Some(seq) => after_seq = Some(seq),
            None => return jobs,
        }
    }
}

fn store_error(answer: &Result<Step, WriteError>) -> &StoreError {
    match answer {
        Err(WriteError::Store(error)) => error,
        other => panic!("expected a store error, got {other:?}"),
    }
}

#[test]
fn every_acknowledged_enqueue_from_many_threads_is_there_after_reopening() {
    const THREADS: usize = 16;
    const PER_THREAD: usize = 100;
    let dir = tempfile::tempdir().unwrap();
    let options =
        WriterOptions { batch_max: 64, wait_max: Duration::from_millis(1), queue_max: 32, ..WriterOptions::default() };
    let writer = spawn(&dir, 1, options);
    let acknowledged: Vec<JobId> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..THREADS)
            .map(|t| {
                let writer = writer.clone();
                scope.spawn(move || {
                    (0..PER_THREAD)
                        .map(|n| enqueued_id(&writer.submit(enqueue(&format!("s-{t}-{n}")))))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        threads.into_iter().flat_map(|thread| thread.join().unwrap()).collect()
    });
    let stats = writer.stats();
    assert_eq!(stats.steps, 1 + (THREADS * PER_THREAD) as u64, "Recover and every enqueue");
    assert_eq!(stats.batches_failed, 0);
    writer.shutdown();

    let store = open(&dir);
    let stored: BTreeSet<JobId> = all_jobs(&store).iter().map(|job| job.id).collect();
    let acknowledged: BTreeSet<JobId> = acknowledged.into_iter().collect();
    assert_eq!(acknowledged.len(), THREADS * PER_THREAD, "no id given twice");
    assert_eq!(stored, acknowledged, "every acknowledged job, and nothing else");
    assert_eq!(store.integrity_check().unwrap(), vec!["ok".to_owned()]);
}

#[test]
fn inputs_queued_together_commit_in_one_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let writer = spawn_on(open(&dir), 1, batch_options(8));
    let inputs = std::iter::once(Input::Recover).chain((1..8).map(|n| enqueue(&format!("s-{n}")))).collect();
    let answers = submit_together(&writer, inputs);
    answers.iter().skip(1).for_each(assert_enqueued);
    assert_eq!(
        writer.stats(),
        WriterStats { batches: 1, steps: 8, batches_failed: 0, conflict_retries: 0, rewrites: 0 }
    );
    writer.shutdown();
}

#[test]
fn claims_from_many_threads_hand_out_each_job_once_in_pop_order() {
    const JOBS: usize = 300;
    const THREADS: usize = 4;
    let dir = tempfile::tempdir().unwrap();
    let options =
        WriterOptions { batch_max: 16, wait_max: Duration::from_millis(1), queue_max: 16, ..WriterOptions::default() };
    let writer = spawn(&dir, JOBS, options);
    // Priorities out of enqueue order, with ties that must break on the sequence.
    let requests: Vec<EnqueueRequest> =
        (0..JOBS).map(|n| request(&format!("s-{n}"), ((n * 7) % 5) as i64 - 2)).collect();
    let step = writer.submit(Input::EnqueueBatch(requests)).unwrap();
    assert!(matches!(&step.reply, Reply::EnqueuedBatch(results) if results.len() == JOBS), "{:?}", step.reply);

    let claimed: Vec<Job> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..THREADS)
            .map(|_| {
                let writer = writer.clone();
                scope.spawn(move || {
                    let mut mine = Vec::new();
                    // Bounded: there are only JOBS jobs to claim.
                    for _ in 0..=JOBS {
                        match writer.submit(Input::Claim { queue: None }).unwrap().reply {
                            Reply::Claimed(Some(job)) => mine.push(*job),
                            Reply::Claimed(None) => return mine,
                            other => panic!("{other:?}"),
                        }
                    }
                    panic!("more claims succeeded than there are jobs");
                })
            })
            .collect();
        threads.into_iter().flat_map(|thread| thread.join().unwrap()).collect()
    });
    let ids: BTreeSet<JobId> = claimed.iter().map(|job| job.id).collect();
    assert_eq!(claimed.len(), JOBS, "every job claimed");
    assert_eq!(ids.len(), JOBS, "no job handed out twice");

    // Each step read the clock once and the clock ticks per read: start times are the
    // order the writer decided the claims in.
    let mut by_start = claimed.clone();
    by_start.sort_by_key(|job| job.started_at_ms.unwrap());
    assert!(by_start.windows(2).all(|w| w[0].started_at_ms < w[1].started_at_ms));
    let reader = writer.open_reader(&SqliteOptions::default()).unwrap();
    let mut pop_order = all_jobs(&reader);
    pop_order.sort_by_key(|job| (std::cmp::Reverse(job.priority), job.seq));
    let decided: Vec<JobId> = by_start.iter().map(|job| job.id).collect();
    let expected: Vec<JobId> = pop_order.iter().map(|job| job.id).collect();
    assert_eq!(decided, expected, "claims follow pop order");
    assert!(all_jobs(&reader).iter().all(|job| job.state == JobState::Running && job.attempts == 1));
    writer.shutdown();
}

#[test]
fn a_failed_read_and_a_rejection_leave_the_rest_of_their_batch() {
    let dir = tempfile::tempdir().unwrap();
    // Another connection writes below, which a writer's cache of committed jobs is not
    // made for (the daemon's writer is its file's only writer): without one, the writer
    // reads the broken row.
    let writer = spawn_on(open(&dir), 1, WriterOptions { cache_bytes: 0, ..batch_options(4) });
    let answers = submit_together(&writer, vec![Input::Recover, enqueue("broken"), enqueue("b"), enqueue("c")]);
    let broken = enqueued_id(&answers[1]);
    // Another connection breaks the row, so that reading it fails to decode.
    let other = open(&dir);
    other.connection().execute_batch("PRAGMA ignore_check_constraints = ON").unwrap();
    other
        .connection()
        .execute("UPDATE jobs SET error_kind = 'meteor', error_message = 'm' WHERE id = ?1", [broken.to_string()])
        .unwrap();

    let before = writer.stats();
    let invalid = EnqueueRequest { job_type: None, ..request("nope", 0) };
    let answers = submit_together(
        &writer,
        vec![
            enqueue("good-1"),
            Input::Cancel(CancelRequest { job_id: Some(broken), ..CancelRequest::default() }),
            Input::Enqueue(Box::new(invalid)),
            enqueue("good-2"),
        ],
    );
    let after = writer.stats();
    assert_eq!(after.batches - before.batches, 1, "one transaction");
    assert!(matches!(store_error(&answers[1]), StoreError::Corrupt(_)), "{:?}", answers[1]);
    assert!(
        matches!(&answers[2], Ok(Step { reply: Reply::Rejected(Rejection::Validation(_)), persist, .. }) if persist.is_empty()),
        "{:?}",
        answers[2]
    );
    let reader = writer.open_reader(&SqliteOptions::default()).unwrap();
    for answer in [&answers[0], &answers[3]] {
        let job = reader.get(enqueued_id(answer)).unwrap().expect("committed");
        assert_eq!(job.state, JobState::Queued);
    }
    writer.shutdown();
}

#[test]
fn a_step_whose_writes_fail_leaves_nothing_and_the_rest_of_its_batch_commits() {
    let dir = tempfile::tempdir().unwrap();
    let writer = spawn_on(open(&dir), 1, batch_options(4));
    let answers = submit_together(&writer, vec![Input::Recover, enqueue("x-1"), enqueue("x-2"), enqueue("x-3")]);
    assert!(answers.iter().all(Result::is_ok), "{answers:?}");
    // Refuses the last statement of an enqueue of a subject "doomed…" (the subject's row),
    // after its job rows are written: those must go too.
    let other = open(&dir);
    other
        .connection()
        .execute_batch(
            "CREATE TRIGGER doomed BEFORE INSERT ON subjects WHEN NEW.subject_key LIKE 'doomed%'
             BEGIN SELECT RAISE(ABORT, 'doomed'); END;",
        )
        .unwrap();
    // The failing step first, between others, last, and twice. The SQLite writer keeps no
    // savepoint per step: each failure rolls the transaction back and writes the steps
    // before it again. `c` is enqueued twice around a failure: the second enqueue must
    // see the first, written again, and supersede it.
    let batches = [
        vec![enqueue("doomed"), enqueue("a-1"), enqueue("a-2"), enqueue("a-3")],
        vec![enqueue("b-1"), enqueue("doomed"), enqueue("b-2"), enqueue("b-3")],
        vec![enqueue("c"), enqueue("c-1"), enqueue("doomed"), enqueue("c")],
        vec![enqueue("d-1"), enqueue("d-2"), enqueue("d-3"), enqueue("doomed")],
        vec![enqueue("e-1"), enqueue("doomed-1"), enqueue("e-2"), enqueue("doomed-2")],
    ];
    for batch in batches {
        let before = writer.stats();
        let answers = submit_together(&writer, batch);
        let after = writer.stats();
        assert_eq!(after.batches - before.batches, 1, "one transaction");
        let failed: Vec<usize> = (0..answers.len()).filter(|&n| answers[n].is_err()).collect();
        assert!(!failed.is_empty(), "the doomed enqueues fail: {answers:?}");
        assert_eq!(after.rewrites - before.rewrites, failed.len() as u64, "one rewrite per failed step");
        for &n in &failed {
            assert!(store_error(&answers[n]).to_string().contains("doomed"), "{:?}", answers[n]);
        }
        for (n, answer) in answers.iter().enumerate().filter(|(n, _)| !failed.contains(n)) {
            assert!(answer.is_ok(), "step {n}: {answer:?}");
        }
    }
    writer.shutdown();
    other.connection().execute_batch("DROP TRIGGER doomed").unwrap();
    let jobs = all_jobs(&other);
    let mut subjects: Vec<&str> = jobs.iter().map(|job| job.subject_key.as_str()).collect();
    subjects.sort_unstable();
    let expected = [
        "a-1", "a-2", "a-3", "b-1", "b-2", "b-3", "c", "c", "c-1", "d-1", "d-2", "d-3", "e-1", "e-2", "x-1", "x-2",
        "x-3",
    ];
    assert_eq!(subjects, expected);
    let specs: i64 = other.connection().query_row("SELECT count(*) FROM job_specs", [], |row| row.get(0)).unwrap();
    assert_eq!(specs, expected.len() as i64, "no job_specs row of a doomed enqueue is left");
    let c: Vec<(u64, JobState)> =
        jobs.iter().filter(|job| job.subject_key == "c").map(|job| (job.generation, job.state)).collect();
    assert_eq!(c, [(1, JobState::Superseded), (2, JobState::Queued)], "the second enqueue of c saw the first");
    assert_eq!(other.integrity_check().unwrap(), vec!["ok".to_owned()]);
}

#[test]
fn a_full_disk_fails_the_whole_batch_and_the_writer_goes_on_once_space_returns() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    // Opened before the test adds tables of its own, which a store refuses at open.
    let reader = reader(&dir);
    // Room for small steps on the free list, none for a big one; `filler` holds what
    // another connection will give back.
    store
        .connection()
        .execute_batch(
            "CREATE TABLE filler (bytes BLOB);
             INSERT INTO filler VALUES (zeroblob(2000000));
             CREATE TABLE spare (bytes BLOB);
             INSERT INTO spare VALUES (zeroblob(100000));
             DROP TABLE spare;",
        )
        .unwrap();
    let pages: i64 = store.connection().query_row("PRAGMA page_count", [], |row| row.get(0)).unwrap();
    store.connection().execute_batch(&format!("PRAGMA max_page_count = {pages}")).unwrap();
    let writer = spawn_on(store, 1, batch_options(3));
    let big = |subject: &str| {
        Input::Enqueue(Box::new(EnqueueRequest {
            payload_json: Some(format!("\"{}\"", "x".repeat(400_000))),
            ..request(subject, 0)
        }))
    };
    let answers = submit_together(&writer, vec![Input::Recover, enqueue("small"), big("big")]);
    // SQLite rolls the whole transaction back on a full disk, not just the statement:
    // the small enqueue and the recovery are lost with the big one.
    for answer in &answers {
        assert!(
            matches!(store_error(answer), StoreError::Unavailable(detail) if detail.contains("full")),
            "{answer:?}"
        );
    }
    assert_eq!(writer.stats().batches_failed, 1);
    assert!(all_jobs(&reader).is_empty(), "nothing of the batch");
    // The recovery is lost too: the engine refuses everything else until it commits.
    let answers = submit_together(&writer, vec![enqueue("small"), enqueue("small"), enqueue("small")]);
    assert!(answers.iter().all(|answer| *answer == Err(WriteError::NotRecovered)), "{answers:?}");

    // Space comes back through another connection (the writer's own limit stays).
    rusqlite::Connection::open(dir.path().join("jobs.db")).unwrap().execute_batch("DELETE FROM filler").unwrap();
    let answers = submit_together(&writer, vec![Input::Recover, enqueue("small"), big("big")]);
    assert!(matches!(&answers[0], Ok(Step { reply: Reply::Recovered { .. }, .. })), "{:?}", answers[0]);
    for answer in &answers[1..] {
        assert!(reader.get(enqueued_id(answer)).unwrap().is_some());
    }
    assert_eq!(reader.integrity_check().unwrap(), vec!["ok".to_owned()]);
    writer.shutdown();
}

/// Makes the COMMIT of any transaction that inserted a job with subject `poison` fail: a
/// deferred foreign key is checked only at COMMIT, and SQLite then keeps the transaction
/// open for the writer to roll back.
fn poison_commits(store: &SqliteStore) {
    store
        .connection()
        .execute_batch(
            "CREATE TABLE poison_parent (id INTEGER PRIMARY KEY);
             CREATE TABLE poison (parent INTEGER REFERENCES poison_parent (id) DEFERRABLE INITIALLY DEFERRED);
             CREATE TRIGGER poison_jobs AFTER INSERT ON jobs WHEN NEW.subject_key = 'poison'
             BEGIN INSERT INTO poison VALUES (1); END;",
        )
        .unwrap();
}

#[test]
fn a_failed_commit_fails_every_step_of_its_batch_and_shows_nothing_of_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let reader = reader(&dir);
    poison_commits(&store);
    let writer = spawn_on(store, 1, batch_options(4));
    let answers = submit_together(&writer, vec![Input::Recover, enqueue("a"), enqueue("b"), enqueue("c")]);
    answers.iter().skip(1).for_each(assert_enqueued);
    let a = enqueued_id(&answers[1]);
    let seq_before = reader.max_seq().unwrap();
    let before = writer.stats();

    // The cancel of `a` is written in the batch, then undone with it: the writer must not
    // remember `a` as cancelled (its cache of committed jobs keeps nothing of the batch).
    let cancel_a = || Input::Cancel(CancelRequest { job_id: Some(a), ..CancelRequest::default() });
    let answers = submit_together(
        &writer,
        vec![enqueue("d"), cancel_a(), enqueue("poison"), Input::Enqueue(Box::new(request("", 0)))],
    );
    for answer in &answers {
        assert!(matches!(answer, Err(WriteError::Store(_))), "every caller of the batch: {answer:?}");
    }
    let after = writer.stats();
    assert_eq!((after.batches_failed - before.batches_failed, after.steps - before.steps), (1, 0));
    assert_eq!(reader.max_seq().unwrap(), seq_before, "nothing of the batch");
    assert_eq!(all_jobs(&reader).len(), 3);
    assert!(reader.active_jobs_of_subject("d").unwrap().is_empty());

    assert_eq!(reader.get(a).unwrap().unwrap().state, JobState::Queued);

    // The writer goes on, and a batch without the poison commits.
    let answers = submit_together(&writer, vec![enqueue("d"), enqueue("e"), enqueue("f"), enqueue("g")]);
    answers.iter().for_each(assert_enqueued);
    assert_eq!(all_jobs(&reader).len(), 7);
    let cancelled = writer.submit(cancel_a()).unwrap();
    assert!(!cancelled.persist.is_empty(), "the cancel is written: {:?}", cancelled.reply);
    assert_eq!(reader.get(a).unwrap().unwrap().state, JobState::Cancelled, "cancelled now, for good");
    writer.shutdown();
}

#[test]
fn a_recover_in_a_failed_batch_must_be_submitted_again() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    poison_commits(&store);
    let writer = spawn_on(store, 1, batch_options(2));
    // Within the batch, the enqueue ran after Recover (it would have been refused
    // otherwise); the COMMIT fails, so the engine must forget that it recovered.
    let answers = submit_together(&writer, vec![Input::Recover, enqueue("poison")]);
    assert!(answers.iter().all(|answer| matches!(answer, Err(WriteError::Store(_)))), "{answers:?}");

    let answers = submit_together(&writer, vec![enqueue("a"), Input::Recover]);
    assert_eq!(answers[0], Err(WriteError::NotRecovered), "no recovery committed yet");
    assert!(matches!(&answers[1], Ok(Step { reply: Reply::Recovered { .. }, .. })), "{:?}", answers[1]);
    let answers = submit_together(&writer, vec![enqueue("a"), enqueue("b")]);
    answers.iter().for_each(assert_enqueued);
    writer.shutdown();
}

#[test]
fn a_full_queue_refuses_try_submit_and_a_locked_database_fails_only_while_locked() {
    let dir = tempfile::tempdir().unwrap();
    let options = SqliteOptions { busy_timeout_ms: 300, ..SqliteOptions::default() };
    let store = SqliteStore::open(dir.path().join("jobs.db"), &options).unwrap();
    let writer = spawn_on(
        store,
        1,
        WriterOptions { batch_max: 1, wait_max: Duration::ZERO, queue_max: 1, ..WriterOptions::default() },
    );
    recover(&writer);
    // Another connection holds the write lock: the writer's BEGIN waits for it.
    let locker = open(&dir);
    locker.connection().execute_batch("BEGIN IMMEDIATE").unwrap();
    let mut pending = Vec::new();
    let refused = (0..3).find_map(|n| match writer.try_submit(enqueue(&format!("s-{n}"))) {
        Ok(one) => {
            pending.push(one);
            None
        }
        Err(error) => Some(error),
    });
    assert_eq!(refused, Some(WriteError::QueueFull), "one in the writer's hands at most, one queued");
    assert!((1..=2).contains(&pending.len()), "{}", pending.len());
    // The first waits longer than the busy timeout.
    let first = pending.remove(0).wait();
    assert!(matches!(store_error(&first), StoreError::Unavailable(detail) if detail.contains("locked")), "{first:?}");
    locker.connection().execute_batch("COMMIT").unwrap();
    for one in pending {
        assert_enqueued(&one.wait());
    }
    assert_enqueued(&writer.submit(enqueue("after")));
    writer.shutdown();
}

#[test]
fn shutdown_finishes_what_was_queued_and_closes_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let writer = spawn(&dir, 1, WriterOptions::default());
    let pending: Vec<Pending> = (0..50).map(|n| writer.try_submit(enqueue(&format!("s-{n}"))).unwrap()).collect();
    writer.shutdown();
    for one in pending {
        assert_enqueued(&one.wait());
    }
    assert_eq!(writer.submit(enqueue("late")), Err(WriteError::Closed));
    assert!(matches!(writer.try_submit(enqueue("late")), Err(WriteError::Closed)));
    writer.shutdown(); // a second call has nothing left to do
    assert_eq!(all_jobs(&open(&dir)).len(), 50);
}

#[test]
fn dropping_every_handle_still_answers_what_was_queued() {
    let dir = tempfile::tempdir().unwrap();
    let writer = spawn(&dir, 1, WriterOptions::default());
    let pending: Vec<Pending> = (0..50).map(|n| writer.try_submit(enqueue(&format!("s-{n}"))).unwrap()).collect();
    drop(writer);
    for one in pending {
        assert_enqueued(&one.wait());
    }
    assert_eq!(all_jobs(&open(&dir)).len(), 50);
}

#[test]
fn a_reader_sees_committed_steps_and_cannot_write() {
    let dir = tempfile::tempdir().unwrap();
    let writer = spawn(&dir, 1, WriterOptions::default());
    let reader = writer.open_reader(&SqliteOptions::default()).unwrap();
    let id = enqueued_id(&writer.submit(enqueue("a")));
    assert_eq!(reader.get(id).unwrap().map(|job| job.state), Some(JobState::Queued));
    let error = reader.connection().execute_batch("DELETE FROM jobs").unwrap_err();
    assert!(error.to_string().contains("readonly"), "{error}");
    writer.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_callers_get_their_steps() {
    let dir = tempfile::tempdir().unwrap();
    let writer = spawn_on(open(&dir), 1, WriterOptions::default());
    let step = writer.submit_async(Input::Recover).await.unwrap();
    assert!(matches!(step.reply, Reply::Recovered { .. }));
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let writer = writer.clone();
            tokio::spawn(async move {
                let mut ids = Vec::new();
                for n in 0..20 {
                    ids.push(enqueued_id(&writer.submit_async(enqueue(&format!("s-{t}-{n}"))).await));
                }
                ids
            })
        })
        .collect();
    let mut ids = BTreeSet::new();
    for task in tasks {
        ids.extend(task.await.unwrap());
    }
    assert_eq!(ids.len(), 160);
    let pending = writer.try_submit(enqueue("last")).unwrap();
    assert_enqueued(&pending.wait_async().await);
    tokio::task::spawn_blocking(move || writer.shutdown()).await.unwrap();
}

#[test]
fn a_reconfigure_applies_to_the_inputs_queued_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new(4, ["work"]);
    config.queue_concurrency.insert("default".into(), 1);
    let engine = Engine::new(config.clone(), Box::new(SeededIds::new(7)), Box::new(SplitMix64::new(7)));
    let writer = Writer::spawn(open(&dir), engine, clock(), WriterOptions::default()).unwrap();
    recover(&writer);
    for subject in ["a", "b", "c"] {
        assert_enqueued(&writer.submit(enqueue(subject)));
    }
    let claimed = |writer: &WriterHandle| match writer.submit(Input::Claim { queue: None }).unwrap().reply {
        Reply::Claimed(job) => job.is_some(),
        other => panic!("a claim answered {other:?}"),
    };
    assert!(claimed(&writer));
    assert!(!claimed(&writer), "the queue's limit is 1");
    config.queue_concurrency.insert("default".into(), 2);
    writer.reconfigure(config).unwrap();
    assert!(claimed(&writer), "the raised limit lets a second job start");
    assert!(!claimed(&writer), "and no third");
    writer.shutdown();
    assert!(writer.reconfigure(Config::new(4, ["work"])).is_err(), "a stopped writer takes no config");
}
