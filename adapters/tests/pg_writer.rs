//! The group-commit writer on the Postgres store: acknowledged steps are committed, many
//! per transaction, and a step that the database refuses because another daemon's
//! transaction took its subject first is rolled back alone and decided again on fresh
//! reads, while the writer goes on; two daemons ending one lost node's attempts at once
//! end each attempt once. Needs
//! `SEMANTICA_TEST_PG_URL` (`source .ci/postgres.sh`).

#[path = "support/pg.rs"]
mod pg;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use semantica_adapters::sqlite::{Control, GroupCommitStore, Pending, WriteError, Writer, WriterHandle, WriterOptions};
use semantica_core::{
    Clock, Config, Engine, EnqueueRequest, Input, Job, JobId, JobQuery, JobState, Outcome, Reply, Report, SeededIds,
    SplitMix64, Step, Store, Write, WriteSet,
};

/// A clock that moves one millisecond every time it is read.
struct TickingClock {
    next_ms: AtomicU64,
}

impl Clock for TickingClock {
    fn now_ms(&self) -> u64 {
        self.next_ms.fetch_add(1, Ordering::Relaxed)
    }
}

fn engine(workers: usize) -> Engine {
    Engine::new(Config::new(workers, ["work"]), Box::new(SeededIds::new(7)), Box::new(SplitMix64::new(7)))
}

fn clock() -> Arc<TickingClock> {
    Arc::new(TickingClock { next_ms: AtomicU64::new(1_700_000_000_000) })
}

/// A writer on the schema, recovered.
fn spawn(schema: &pg::TestSchema, workers: usize, options: WriterOptions) -> WriterHandle {
    let writer = Writer::spawn(schema.open(), engine(workers), clock(), options).unwrap();
    let step = writer.submit(Input::Recover).unwrap();
    assert!(matches!(step.reply, Reply::Recovered { .. }), "{:?}", step.reply);
    writer
}

fn enqueue(subject: &str) -> Input {
    Input::Enqueue(Box::new(EnqueueRequest {
        job_type: Some("work".into()),
        queue: Some("default".into()),
        subject_key: Some(subject.into()),
        ..EnqueueRequest::default()
    }))
}

fn enqueued_id(answer: &Result<Step, WriteError>) -> JobId {
    match answer {
        Ok(Step { reply: Reply::Enqueued(enqueued), .. }) => enqueued.job_id,
        other => panic!("expected an enqueue, got {other:?}"),
    }
}

fn claimed(answer: Result<Step, WriteError>) -> Option<Job> {
    match answer {
        Ok(Step { reply: Reply::Claimed(job), .. }) => job.map(|job| *job),
        other => panic!("expected a claim, got {other:?}"),
    }
}

#[test]
fn group_commit_on_postgres_commits_every_acknowledged_step() {
    let schema = pg::TestSchema::new("writer_batch");
    // Six inputs per transaction, and the writer waits for the sixth: recovery and five
    // enqueues share the first, six claims the second.
    let batch = 6;
    let options = WriterOptions {
        batch_max: batch,
        wait_max: Duration::from_secs(10),
        queue_max: 64,
        ..WriterOptions::default()
    };
    let writer = Writer::spawn(schema.open(), engine(3), clock(), options).unwrap();
    let together = |inputs: Vec<Input>| -> Vec<Result<Step, WriteError>> {
        let pending: Vec<Pending> = inputs.into_iter().map(|input| writer.try_submit(input).unwrap()).collect();
        pending.into_iter().map(Pending::wait).collect()
    };
    let mut first = vec![Input::Recover];
    first.extend((0..batch - 1).map(|n| enqueue(&format!("s{n}"))));
    let answers = together(first);
    assert!(matches!(&answers[0], Ok(Step { reply: Reply::Recovered { .. }, .. })), "{:?}", answers[0]);
    let ids: Vec<JobId> = answers[1..].iter().map(enqueued_id).collect();
    let claims = together((0..batch).map(|_| Input::Claim { queue: None }).collect());
    let started: Vec<JobId> = claims.into_iter().filter_map(claimed).map(|job| job.id).collect();
    assert_eq!(started, ids[..3].to_vec(), "three workers: the first three in pop order");
    let stats = writer.stats();
    assert_eq!((stats.batches, stats.steps), (2, 2 * batch as u64), "six steps per transaction");
    writer.shutdown();
    let reader = schema.open();
    let page = reader.query(&JobQuery { limit: 200, ..JobQuery::default() }).unwrap();
    let states: Vec<JobState> = page.items.iter().map(|job| job.state).collect();
    assert_eq!(states, [[JobState::Running; 3].as_slice(), &[JobState::Queued; 2]].concat());
}

#[test]
fn a_claim_that_another_daemon_overtook_is_decided_again_on_fresh_reads() {
    let schema = pg::TestSchema::new("writer_race");
    let writer = spawn(&schema, 2, WriterOptions::default());
    let queued = enqueued_id(&writer.submit(enqueue("hot")));
    // Another daemon starts a job of the same subject and has not committed yet: this
    // writer's engine reads the subject as free.
    let other = schema.open();
    let theirs = Job {
        seq: 1_000,
        subject_key: "hot".into(),
        // A newer generation: only subject exclusivity stands between the two.
        generation: 2,
        state: JobState::Running,
        attempts: 1,
        started_at_ms: Some(1),
        ..Job::blank(JobId::from_u128(0xB0B))
    };
    other.control(Control::Begin).unwrap();
    other.apply_within(&WriteSet { writes: vec![Write::Insert(theirs.clone())] }).unwrap();
    let claim = {
        let writer = writer.clone();
        std::thread::spawn(move || writer.submit(Input::Claim { queue: None }))
    };
    // The claim waits for the other transaction at its constraint check, loses, and is
    // decided again on fresh reads: the subject is taken, so it starts nothing (instead of
    // answering the caller with a store error).
    std::thread::sleep(Duration::from_millis(300));
    assert!(!claim.is_finished(), "the claim must wait for the other daemon's transaction");
    other.control(Control::Commit).unwrap();
    let retried = claim.join().unwrap();
    assert_eq!(claimed(retried), None, "the retried claim saw the subject taken");
    assert_eq!(writer.stats().conflict_retries, 1);
    // Nothing of the refused step stayed; the next claim reads the subject as taken.
    assert_eq!(other.get(queued).unwrap().unwrap().state, JobState::Queued);
    assert_eq!(claimed(writer.submit(Input::Claim { queue: None })), None);
    assert_eq!(other.occupying_job_ids("hot").unwrap(), vec![theirs.id]);
    // The writer goes on with other work.
    let cold = enqueued_id(&writer.submit(enqueue("cold")));
    assert_eq!(claimed(writer.submit(Input::Claim { queue: None })).map(|job| job.id), Some(cold));
}

fn node_writer(schema: &pg::TestSchema, node: &str, seed: u64) -> WriterHandle {
    node_writer_at(schema, node, seed, 1_700_000_000_000)
}

/// A daemon's writer on a shared store whose clock starts at `start_ms`.
fn node_writer_at(schema: &pg::TestSchema, node: &str, seed: u64, start_ms: u64) -> WriterHandle {
    let mut config = Config::new(8, ["work"]);
    config.node = Some(node.to_owned());
    config.shared_store = true;
    let engine = Engine::new(config, Box::new(SeededIds::new(seed)), Box::new(SplitMix64::new(seed)));
    let clock = Arc::new(TickingClock { next_ms: AtomicU64::new(start_ms) });
    let writer = Writer::spawn(schema.open(), engine, clock, WriterOptions::default()).unwrap();
    let step = writer.submit(Input::Recover).unwrap();
    assert!(matches!(step.reply, Reply::Recovered { .. }), "{:?}", step.reply);
    writer
}

/// A duty two daemons do at once: both end the attempts of one lost node. Each attempt is
/// ended once (one write per job, one `node_lost` failure), whichever daemon got it.
#[test]
fn two_daemons_ending_one_lost_node_at_once_end_each_attempt_once() {
    let schema = pg::TestSchema::new("writer_lost");
    let lost = node_writer(&schema, "x", 1);
    let ids: Vec<JobId> = (0..6).map(|n| enqueued_id(&lost.submit(enqueue(&format!("s{n}"))))).collect();
    let step = lost.submit(Input::ClaimBatch { queue: None, max: 6 }).unwrap();
    assert!(matches!(&step.reply, Reply::ClaimedBatch(jobs) if jobs.len() == 6), "{:?}", step.reply);
    lost.shutdown();
    let store = schema.open();
    let running: Vec<Job> = ids.iter().map(|id| store.get(*id).unwrap().unwrap()).collect();
    store.register_node("x", 1).unwrap();
    std::thread::sleep(Duration::from_millis(30));
    let judges = [node_writer(&schema, "a", 2), node_writer(&schema, "b", 3)];
    let barrier = Arc::new(std::sync::Barrier::new(2));
    let ended: Vec<usize> = judges
        .iter()
        .map(|judge| {
            let (judge, barrier) = (judge.clone(), Arc::clone(&barrier));
            std::thread::spawn(move || {
                barrier.wait();
                let mut ended = 0;
                loop {
                    match judge.submit(Input::NodeLost { node: "x".into() }).unwrap().reply {
                        Reply::NodeLost { failed_attempts, more } => {
                            ended += failed_attempts;
                            if !more {
                                return ended;
                            }
                        }
                        other => panic!("{other:?}"),
                    }
                }
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|thread| thread.join().unwrap())
        .collect();
    assert_eq!(ended.iter().sum::<usize>(), 6, "each attempt ended once: {ended:?}");
    for before in running {
        let after = store.get(before.id).unwrap().unwrap();
        assert_eq!((after.state, after.version), (JobState::Failed, before.version + 1), "{after:?}");
        assert_eq!(after.error.map(|e| e.kind), Some(semantica_core::ErrorKind::NodeLost));
    }
}

/// Another duty two daemons do at once: both tick when a recurring slot has come. The
/// slot fires once: one job, whichever daemon enqueued it (five races, one recurring job
/// each).
#[test]
fn two_daemons_ticking_one_recurring_slot_at_once_enqueue_it_once() {
    let schema = pg::TestSchema::new("writer_slot");
    // A minute boundary: the slot of `* * * * *`.
    let slot_ms: u64 = 1_700_000_040_000;
    assert_eq!(slot_ms % 60_000, 0);
    let rounds = 5u64;
    for round in 0..rounds {
        let setter = node_writer_at(&schema, "s", 100 + round, slot_ms - 5_000);
        let request = semantica_core::RecurringRequest {
            name: format!("every-minute-{round}"),
            cron: "* * * * *".into(),
            timezone: None,
            job: EnqueueRequest {
                job_type: Some("work".into()),
                queue: Some("default".into()),
                subject_key: Some(format!("minutely-{round}")),
                ..EnqueueRequest::default()
            },
        };
        let step = setter.submit(Input::SetRecurring(Box::new(request))).unwrap();
        assert!(matches!(step.reply, Reply::RecurringSet { next_at_ms: Some(at), .. } if at == slot_ms));
        setter.shutdown();
        let judges = [
            node_writer_at(&schema, "a", 200 + round, slot_ms + 10),
            node_writer_at(&schema, "b", 300 + round, slot_ms + 10),
        ];
        let barrier = Arc::new(std::sync::Barrier::new(2));
        let threads: Vec<_> = judges
            .iter()
            .map(|judge| {
                let (judge, barrier) = (judge.clone(), Arc::clone(&barrier));
                std::thread::spawn(move || {
                    barrier.wait();
                    judge.submit(Input::Tick).unwrap().reply
                })
            })
            .collect();
        for thread in threads {
            assert_eq!(thread.join().unwrap(), Reply::Accepted);
        }
        for judge in &judges {
            judge.shutdown();
        }
    }
    let store = schema.open();
    let jobs = store.query(&JobQuery { limit: 200, ..JobQuery::default() }).unwrap().items;
    assert_eq!(jobs.len() as u64, rounds, "a slot fired more or less than once: {jobs:?}");
    for round in 0..rounds {
        let recurring = store.recurring(&format!("every-minute-{round}")).unwrap().unwrap();
        let job = jobs.iter().find(|job| job.subject_key == format!("minutely-{round}")).unwrap();
        assert_eq!(job.generation, slot_ms / 1000);
        assert_eq!((recurring.last_slot_ms, recurring.last_enqueued_job_id), (Some(slot_ms), Some(job.id)));
    }
}

/// The stats of every queue counted from the jobs themselves: the scan that `queue_stats`
/// read before migration 0004 kept counts as it wrote.
fn counted_from_jobs(schema: &pg::TestSchema) -> Vec<semantica_core::QueueStats> {
    let mut client = schema.client();
    let rows = client
        .query(
            "SELECT queue, state, count(*), coalesce(sum(greatest(started_at_ms - due_at_ms, 0)), 0)::bigint,
                    count(started_at_ms), min(due_at_ms) FILTER (WHERE state = 'QUEUED')
             FROM jobs GROUP BY queue, state ORDER BY queue",
            &[],
        )
        .unwrap();
    let mut stats: Vec<(semantica_core::QueueStats, i64, i64)> = Vec::new();
    for row in &rows {
        let queue: String = row.get(0);
        let state: JobState = row.get::<_, String>(1).parse().unwrap();
        if stats.last().is_none_or(|(last, _, _)| last.queue != queue) {
            stats.push((semantica_core::QueueStats { queue, ..Default::default() }, 0, 0));
        }
        let entry = stats.last_mut().unwrap();
        entry.0.counts[state as usize] = row.get::<_, i64>(2) as u64;
        entry.1 += row.get::<_, i64>(3);
        entry.2 += row.get::<_, i64>(4);
        if let Some(oldest) = row.get::<_, Option<i64>>(5) {
            entry.0.oldest_queued_due_ms = Some(oldest as u64);
        }
    }
    stats
        .into_iter()
        .map(|(mut queue, wait_sum, started)| {
            queue.avg_wait_ms = (started > 0).then(|| (wait_sum / started) as u64);
            queue
        })
        .collect()
}

/// Three daemons enqueue (over shared subjects, so some jobs are superseded), claim,
/// finish, cancel and purge at once: the counts each of them adds to its own stripe of
/// `queue_counts` sum to what a count of the jobs gives, after every round.
#[test]
fn counts_kept_by_three_daemons_at_once_equal_a_count_of_the_jobs() {
    let schema = pg::TestSchema::new("writer_counts");
    let writers = [node_writer(&schema, "a", 11), node_writer(&schema, "b", 12), node_writer(&schema, "c", 13)];
    let store = schema.open();
    for round in 0..4u64 {
        let threads: Vec<_> = writers
            .iter()
            .enumerate()
            .map(|(n, writer)| {
                let writer = writer.clone();
                std::thread::spawn(move || {
                    for i in 0..15u64 {
                        let subject = format!("s{}", (i * 7 + n as u64 + round) % 9);
                        let enqueued = enqueued_id(&writer.submit(enqueue(&subject)));
                        let step = writer.submit(Input::ClaimBatch { queue: None, max: 3 }).unwrap();
                        let Reply::ClaimedBatch(jobs) = step.reply else { panic!("not a claim") };
                        for (k, job) in jobs.iter().enumerate() {
                            let outcome = if k % 2 == 0 {
                                Outcome::Succeeded { exit_code: Some(0), result_summary_json: None, artifacts: vec![] }
                            } else {
                                Outcome::Failed {
                                    kind: semantica_core::ErrorKind::ExitCode,
                                    exit_code: Some(1),
                                    message: "no".into(),
                                }
                            };
                            let report = Report::Finished { job_id: job.id, attempt: job.attempts, outcome };
                            // Ignored when another daemon cancelled the job meanwhile.
                            let reply = writer.submit(Input::Report(report)).unwrap().reply;
                            assert!(matches!(reply, Reply::Accepted | Reply::Ignored), "{reply:?}");
                        }
                        if i % 5 == 4 {
                            let cancel = semantica_core::CancelRequest {
                                job_id: Some(enqueued),
                                tag: None,
                                chain_group_id: None,
                            };
                            let step = writer.submit(Input::Cancel(cancel)).unwrap();
                            // A job that has ended already is not cancelled.
                            assert!(
                                matches!(step.reply, Reply::Cancelled { .. } | Reply::Rejected(_)),
                                "{:?}",
                                step.reply
                            );
                        }
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        if round == 2 {
            let step = writers[0].submit(Input::Purge { finished_before_ms: u64::MAX, limit: 1_000 }).unwrap();
            assert!(matches!(step.reply, Reply::Purged { ref job_ids } if !job_ids.is_empty()), "{:?}", step.reply);
        }
        let counted = counted_from_jobs(&schema);
        assert!(round == 2 || !counted.is_empty(), "round {round}: no jobs counted");
        assert_eq!(store.queue_stats().unwrap(), counted, "round {round}");
    }
}
