//! Properties over random sequences of operations. Every step of every sequence is judged
//! by the harness's checker (pop order, supersede, exclusivity, limits, terminal states,
//! TTL/deadline, schedules, conditions, parents); each property below also checks the
//! rule it is named for in its own terms.

mod harness;
#[path = "support/ops.rs"]
mod ops;

use harness::{config, request, World};
use ops::{ops, pick, queue_name, Mix, Op, Spec, ALL};
use proptest::prelude::*;
use semantica_core::{
    backoff, Backoff, BackoffRequest, CancelRequest, Conditions, EnqueueRequest, ErrorKind, Input, Job, JobId,
    JobQuery, JobState, Outcome, Rejection, Reply, Report, RetryRequest, ScheduleRequest, SplitMix64, Store,
    SystemState, Throttle,
};

fn to_request(world: &World, spec: &Spec, known: &[JobId]) -> EnqueueRequest {
    let mut request = request(&format!("subject-{}", spec.subject));
    if spec.instant {
        request.job_type = Some("noop".into());
    }
    request.queue = Some(queue_name(spec.queue).into());
    request.generation = spec.generation.map(i64::from);
    request.priority = Some(spec.priority.into());
    request.schedule = spec.delay_ms.map(|d| ScheduleRequest { at_ms: None, delay_ms: Some(d.into()) });
    request.ttl_ms = spec.ttl_ms.map(i64::from);
    request.deadline_ms = spec.deadline_ms.map(|d| (world.now_ms + u64::from(d)) as i64);
    request.timeout_ms = spec.timeout_ms.map(i64::from);
    request.max_attempts = Some(spec.max_attempts.into());
    request.backoff = Some(BackoffRequest {
        base_ms: Some(50),
        factor: Some(2.0),
        max_ms: Some(400),
        jitter: Some(f64::from(spec.jitter_percent) / 100.0),
    });
    request.parent_job_id =
        spec.parent.filter(|_| !known.is_empty()).map(|p| known[p as usize % known.len()].to_string());
    request.tag = Some(format!("tag-{}", spec.tag));
    request.chain_group_id = Some(format!("group-{}", spec.subject % 3));
    request.conditions = Some(Conditions {
        wait_for_idle: spec.idle,
        require_charging: spec.charging,
        wait_for_event: spec.event.map(|e| format!("event-{e}")),
    });
    request
}

/// Runs a sequence; the checker in the harness judges every step.
fn play(world: &mut World, ops: &[Op]) -> Vec<JobId> {
    let mut known: Vec<JobId> = Vec::new();
    for op in ops {
        play_op(world, op, &mut known);
    }
    known
}

/// Plays one op; `known` holds the ids of the jobs enqueued so far.
fn play_op(world: &mut World, op: &Op, known: &mut Vec<JobId>) {
    match op {
        Op::Enqueue(spec) => {
            let request = to_request(world, spec, known);
            if let Reply::Enqueued(enqueued) = world.enqueue(request) {
                known.push(enqueued.job_id);
            }
        }
        Op::Batch(specs, bad) => {
            let mut requests: Vec<EnqueueRequest> = specs.iter().map(|s| to_request(world, s, known)).collect();
            if let Some(bad) = bad {
                let index = bad % requests.len();
                requests[index].queue = Some("Not A Queue".into());
            }
            let before = world.store.len();
            match world.step(Input::EnqueueBatch(requests)).reply {
                Reply::EnqueuedBatch(results) => known.extend(results.iter().map(|r| r.job_id)),
                Reply::Rejected(_) => assert_eq!(world.store.len(), before, "a refused batch wrote jobs"),
                other => panic!("batch answered {other:?}"),
            }
        }
        Op::Claim(None) => {
            world.claim();
        }
        Op::Claim(Some(queue)) => {
            let reply = world.step(Input::Claim { queue: Some(queue_name(*queue).into()) }).reply;
            assert!(matches!(reply, Reply::Claimed(_)), "a claim answered {reply:?}");
        }
        Op::ClaimBatch(queue, extra) => {
            let max = 1 + usize::from(*extra);
            let queue = queue.map(|queue| queue_name(queue).to_owned());
            match world.step(Input::ClaimBatch { queue, max }).reply {
                Reply::ClaimedBatch(claimed) => assert!(claimed.len() <= max),
                other => panic!("a claim batch answered {other:?}"),
            }
        }
        Op::Started(index) => {
            let runs: Vec<_> = world.runs.iter().cloned().collect();
            if let Some(run) = pick(&runs, *index) {
                world.next_pid += 1;
                let pid = world.next_pid;
                world.report(Report::Started {
                    job_id: run.job_id,
                    attempt: run.attempt,
                    pid: Some(pid),
                    pid_started_at: Some(9),
                });
            }
        }
        Op::Finish(index, outcome) => {
            let runs: Vec<_> = world.runs.iter().cloned().collect();
            if let Some(run) = pick(&runs, *index) {
                let reply = world.report(finished(&run, *outcome));
                assert!(matches!(reply, Reply::Accepted | Reply::Ignored));
            }
        }
        Op::FinishBatch(ends) => {
            let runs: Vec<_> = world.runs.iter().cloned().collect();
            // Duplicates stay: a second report of one attempt is Ignored, as alone.
            let reports: Vec<Report> = ends
                .iter()
                .filter_map(|(index, outcome)| pick(&runs, *index).map(|run| finished(&run, *outcome)))
                .collect();
            if !reports.is_empty() {
                let count = reports.len();
                let replies = world.report_batch(reports);
                assert_eq!(replies.len(), count);
                assert!(replies.iter().all(|reply| matches!(reply, Reply::Accepted | Reply::Ignored)));
            }
        }
        Op::DuplicateReport => {
            if let Some(report) = world.last_report.clone() {
                let job_before = report_job(&report).and_then(|id| world.store.get(id).unwrap());
                let reply = world.step(Input::Report(report.clone())).reply;
                if let Report::Finished { .. } = report {
                    // A second report of the same end changes nothing.
                    assert_eq!(reply, Reply::Ignored);
                    let job_after = report_job(&report).and_then(|id| world.store.get(id).unwrap());
                    assert_eq!(job_before, job_after);
                }
            }
        }
        Op::StaleReport(index) => {
            if let Some(id) = pick(known, *index) {
                let job = world.job(id);
                if job.attempts > 1 {
                    let before = job.clone();
                    let outcome =
                        Outcome::Succeeded { exit_code: Some(0), result_summary_json: None, artifacts: vec![] };
                    let reply = world
                        .step(Input::Report(Report::Finished { job_id: id, attempt: job.attempts - 1, outcome }))
                        .reply;
                    assert_eq!(reply, Reply::Ignored, "a report of an earlier attempt must not count");
                    assert_eq!(world.job(id), before);
                }
            }
        }
        Op::Cancel(index) => {
            if let Some(id) = pick(known, *index) {
                let before = world.job(id);
                let reply =
                    world.step(Input::Cancel(CancelRequest { job_id: Some(id), ..CancelRequest::default() })).reply;
                let after = world.job(id);
                if before.state.is_terminal() {
                    assert_eq!(
                        reply,
                        Reply::Rejected(semantica_core::Rejection::Conflict { job_id: id, state: before.state })
                    );
                } else {
                    // Cancel lands at once, also on a running job.
                    assert_eq!(reply, Reply::Cancelled { count: 1, more: false });
                    assert_eq!(after.state, JobState::Cancelled);
                    assert_eq!(after.reap_pending, before.state == JobState::Running || before.reap_pending);
                }
            }
        }
        Op::CancelTag(tag) => {
            let tag = format!("tag-{tag}");
            let live = world.jobs().iter().filter(|j| !j.state.is_terminal() && j.tag.as_deref() == Some(&tag)).count();
            let reply =
                world.step(Input::Cancel(CancelRequest { tag: Some(tag.clone()), ..CancelRequest::default() })).reply;
            let Reply::Cancelled { count, .. } = reply else { panic!("cancel by tag answered {reply:?}") };
            assert!(count <= live);
            assert!(world.jobs().iter().all(|j| j.state.is_terminal() || j.tag.as_deref() != Some(&tag)));
        }
        Op::CancelGroup(group) => {
            let group = format!("group-{group}");
            world
                .step(Input::Cancel(CancelRequest { chain_group_id: Some(group.clone()), ..CancelRequest::default() }));
            assert!(world.jobs().iter().all(|j| j.state.is_terminal() || j.chain_group_id.as_deref() != Some(&group)));
        }
        Op::Advance(ms) => {
            world.advance(u64::from(*ms));
        }
        Op::Event(name) => {
            let name = format!("event-{name}");
            let waiting = world
                .jobs()
                .iter()
                .filter(|j| {
                    j.state.is_waiting() && !j.event_released && j.conditions.wait_for_event.as_deref() == Some(&name)
                })
                .count();
            let reply = world.step(Input::Event { name: name.clone() }).reply;
            assert_eq!(reply, Reply::Released { count: waiting });
            assert!(world.jobs().iter().all(|j| !j.state.is_waiting()
                || j.event_released
                || j.conditions.wait_for_event.as_deref() != Some(&name)));
        }
        Op::System(cpu, idle, charging) => {
            world.step(Input::SystemChanged(SystemState {
                cpu_load_percent: u32::from(*cpu),
                is_idle: *idle,
                is_charging: *charging,
            }));
        }
        Op::Restart => {
            let before = world.store.clone();
            world.restart();
            check_recovery(&before, world);
        }
        Op::Purge(age_ms, limit) => {
            let finished_before_ms = world.now_ms - u64::from(*age_ms);
            match world.step(Input::Purge { finished_before_ms, limit: usize::from(*limit) }).reply {
                Reply::Purged { job_ids } => assert!(job_ids.len() <= usize::from(*limit)),
                other => panic!("a purge answered {other:?}"),
            }
        }
        Op::Pause(queue, paused) => {
            let queue = queue_name(*queue).to_owned();
            let reply = world.step(Input::PauseQueue { queue: queue.clone(), paused: *paused }).reply;
            assert_eq!(reply, Reply::QueuePaused { queue: queue.clone(), paused: *paused });
            assert_eq!(world.store.paused_queues().unwrap().contains(&queue), *paused, "the pause is stored");
        }
        Op::Retry(index) => {
            let Some(id) = pick(known, *index) else { return };
            let old = world.job(id);
            let request = RetryRequest { job_id: Some(id), ..RetryRequest::default() };
            match world.step(Input::Retry(Box::new(request))).reply {
                Reply::Retried(results) => {
                    assert!(old.state.is_retryable(), "job {id} retried from {}", old.state);
                    check_retried(world, &[old], &results);
                    known.extend(results.iter().map(|r| r.job_id));
                }
                Reply::Rejected(Rejection::Conflict { job_id, state }) => {
                    assert_eq!((job_id, state), (id, old.state));
                    assert!(!old.state.is_retryable(), "job {id} in {} was not retried", old.state);
                }
                other => panic!("a retry answered {other:?}"),
            }
        }
        Op::RetryQueue(queue, limit) => {
            let filter = JobQuery { queues: vec![queue_name(*queue).to_owned()], ..JobQuery::default() };
            let mut olds: Vec<Job> =
                world.jobs().into_iter().filter(|job| job.state.is_retryable() && filter.matches(job)).collect();
            olds.sort_by_key(|job| job.seq);
            olds.truncate(usize::from(*limit));
            let request = RetryRequest { filter: Some(filter), limit: Some(i64::from(*limit)), job_id: None };
            match world.step(Input::Retry(Box::new(request))).reply {
                Reply::Retried(results) => {
                    check_retried(world, &olds, &results);
                    known.extend(results.iter().map(|r| r.job_id));
                }
                other => panic!("a retry by filter answered {other:?}"),
            }
        }
    }
}

/// Each retried job came back as a new job of the same subject and spec, enqueued as the
/// next generation (so the harness's supersede checks judged it as any enqueue), naming
/// the job it retries; the old job did not change.
fn check_retried(world: &World, olds: &[Job], results: &[semantica_core::Enqueued]) {
    assert_eq!(olds.len(), results.len(), "one result per retried job, in enqueue order");
    for (old, result) in olds.iter().zip(results) {
        assert_eq!(world.job(old.id), *old, "retry changed the old job {}", old.id);
        let new = world.job(result.job_id);
        assert_eq!(new.retry_of, Some(old.id));
        assert!(!result.deduplicated && new.id != old.id);
        assert_eq!((&new.subject_key, &new.queue, &new.job_type), (&old.subject_key, &old.queue, &old.job_type));
        assert_eq!((&new.payload_json, &new.exec, new.priority), (&old.payload_json, &old.exec, old.priority));
        assert!(new.generation > old.generation, "a retry is a newer generation of its subject");
    }
}

/// The end of a run: a killed run ends by signal; otherwise `outcome` picks success,
/// failure or timeout.
fn finished(run: &harness::Run, outcome: u8) -> Report {
    let outcome = match (run.killed, outcome) {
        (true, _) => Outcome::Failed { kind: ErrorKind::Signal, exit_code: None, message: "killed".into() },
        (false, 0 | 1) => Outcome::Succeeded { exit_code: Some(0), result_summary_json: None, artifacts: vec![] },
        (false, 2) => Outcome::Failed { kind: ErrorKind::ExitCode, exit_code: Some(3), message: "exit 3".into() },
        (false, _) => Outcome::TimedOut,
    };
    Report::Finished { job_id: run.job_id, attempt: run.attempt, outcome }
}

/// One claim; a `noop` job it starts is reported a success at once. False when it
/// started nothing.
fn claim_reporting_noop(world: &mut World, queue: Option<String>) -> bool {
    let job = match world.step(Input::Claim { queue }).reply {
        Reply::Claimed(job) => job,
        other => panic!("a claim answered {other:?}"),
    };
    let Some(job) = job else { return false };
    if job.job_type == "noop" {
        let outcome = Outcome::Succeeded { exit_code: None, result_summary_json: None, artifacts: vec![] };
        let reply = world.report(Report::Finished { job_id: job.id, attempt: job.attempts, outcome });
        assert_eq!(reply, Reply::Accepted, "the success of noop job {}", job.id);
    }
    true
}

/// The body of `a_batched_claim_starts_what_single_claims_would`, callable with a case.
fn batched_claim_matches_single_claims(
    seed: u64,
    ops: &[Op],
    max: usize,
    queue: Option<u8>,
) -> Result<(), TestCaseError> {
    let queue = queue.map(|q| ["default", "serial", "bulk"][usize::from(q)].to_owned());
    let (mut batched, mut single) = (World::new(config(), seed), World::new(config(), seed));
    play(&mut batched, ops);
    play(&mut single, ops);
    prop_assert_eq!(batched.jobs(), single.jobs(), "the same ops must leave the same store");
    let Reply::ClaimedBatch(claimed) = batched.step(Input::ClaimBatch { queue: queue.clone(), max }).reply else {
        panic!("a claim batch answers ClaimedBatch");
    };
    let mut singles = Vec::new();
    let mut found_nothing = false;
    for _ in 0..max {
        match single.step(Input::Claim { queue: queue.clone() }).reply {
            Reply::Claimed(Some(job)) => {
                prop_assert!(!found_nothing, "a single claim started {} after one that found nothing", job.id);
                singles.push(*job);
            }
            Reply::Claimed(None) => found_nothing = true,
            other => panic!("a claim answered {other:?}"),
        }
    }
    // Versions count a job's writes, and one step writes a job once however often it
    // moves in it: a parent ending at its instant claim releases its child, which the
    // same batch then starts (one write), where two single claims write it twice.
    prop_assert_eq!(unversioned(claimed), unversioned(singles));
    prop_assert_eq!(unversioned(batched.jobs()), unversioned(single.jobs()));
    // The round-robin position moved on alike: the next claims start the same job.
    let next_batched = batched.step(Input::Claim { queue: None }).reply;
    let next_single = single.step(Input::Claim { queue: None }).reply;
    prop_assert_eq!(next_batched, next_single);
    Ok(())
}

/// Jobs with their versions left out.
fn unversioned(jobs: Vec<Job>) -> Vec<Job> {
    jobs.into_iter().map(|job| Job { version: 0, ..job }).collect()
}

fn report_job(report: &Report) -> Option<JobId> {
    match report {
        Report::Started { job_id, .. } | Report::Finished { job_id, .. } => Some(*job_id),
    }
}

/// Guarantee 8, judged on the store before and after a restart.
fn check_recovery(before: &semantica_core::MemStore, world: &World) {
    for old in before.jobs() {
        let new = world.job(old.id);
        if old.state == JobState::Running {
            assert_ne!(new.state, JobState::Running, "job {} still RUNNING after recovery", old.id);
            assert_eq!(new.attempts, old.attempts, "recovery must not add an attempt");
            assert_eq!(new.error.as_ref().map(|e| e.kind), Some(ErrorKind::DaemonRestart), "job {}", old.id);
            let newer = before.jobs().any(|j| j.subject_key == old.subject_key && j.generation > old.generation);
            let retry = old.attempts < old.max_attempts && !newer;
            if retry {
                assert!(
                    new.state.is_waiting()
                        || new.state.is_terminal()
                            && matches!(new.state, JobState::SkippedDeadline | JobState::SkippedTtl)
                );
            } else {
                assert!(
                    matches!(new.state, JobState::Failed | JobState::Superseded),
                    "job {} ended {}",
                    old.id,
                    new.state
                );
            }
            assert!(!new.reap_pending);
        } else {
            // QUEUED and SCHEDULED jobs are kept as they were, unless recovery ended their
            // parent; terminal ones too.
            let parent_failed = new.error.as_ref().is_some_and(|e| e.kind == ErrorKind::ParentFailed);
            if !(old.state.is_waiting() && new.state == JobState::Cancelled && parent_failed) {
                assert_eq!(new.state, old.state, "job {} changed from {} in recovery", old.id, old.state);
            }
            assert!(!new.reap_pending);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, failure_persistence: None, ..ProptestConfig::default() })]

    /// One `ReportBatch` of n reports decides exactly what n single reports one after
    /// another would: the same replies in order, the same store, the same claims after.
    #[test]
    fn a_batch_of_reports_does_what_single_reports_would(
        seed: u64,
        ops in ops(ALL),
        ends in prop::collection::vec((any::<u8>(), 0u8..4), 1..8),
    ) {
        let (mut batched, mut single) = (World::new(config(), seed), World::new(config(), seed));
        play(&mut batched, &ops);
        play(&mut single, &ops);
        let runs: Vec<_> = batched.runs.iter().cloned().collect();
        let reports: Vec<Report> =
            ends.iter().filter_map(|(index, outcome)| pick(&runs, *index).map(|run| finished(&run, *outcome))).collect();
        prop_assume!(!reports.is_empty());
        let replies = batched.report_batch(reports.clone());
        let singles: Vec<Reply> = reports.into_iter().map(|report| single.report(report)).collect();
        prop_assert_eq!(replies, singles);
        prop_assert_eq!(batched.jobs(), single.jobs());
        let next_batched = batched.step(Input::ClaimBatch { queue: None, max: 3 }).reply;
        let next_single = single.step(Input::ClaimBatch { queue: None, max: 3 }).reply;
        prop_assert_eq!(next_batched, next_single);
    }

    /// An instant job (`noop`) does in its claim step what a claim of it followed at once by
    /// a success report would. Two worlds from one seed play the same ops: one engine runs
    /// `noop` at once; the other spawns it, and its executor reports each `noop` run a
    /// success as soon as it starts (at the same time), claim by claim. After every op both
    /// hold the same jobs, but for the versions, which count the writes.
    #[test]
    fn an_instant_job_ends_as_a_run_reported_at_once_would(seed: u64, ops in ops(ALL)) {
        let mut spawning = config();
        spawning.instant_job_types.clear();
        let (mut instant, mut reported) = (World::new(config(), seed), World::new(spawning, seed));
        let (mut known_instant, mut known_reported) = (Vec::new(), Vec::new());
        for op in &ops {
            play_op(&mut instant, op, &mut known_instant);
            match op {
                Op::Claim(queue) => {
                    claim_reporting_noop(&mut reported, queue.map(|q| queue_name(q).to_owned()));
                }
                Op::ClaimBatch(queue, extra) => {
                    for _ in 0..=*extra {
                        if !claim_reporting_noop(&mut reported, queue.map(|q| queue_name(q).to_owned())) {
                            break;
                        }
                    }
                }
                _ => play_op(&mut reported, op, &mut known_reported),
            }
            prop_assert_eq!(unversioned(instant.jobs()), unversioned(reported.jobs()), "after {:?}", op);
        }
    }

    /// One `ClaimBatch { max: n }` starts exactly the jobs that n single claims one after
    /// another would, in the same order, leaves the same store behind, and stops only where
    /// the single claims find nothing more. Two worlds from one seed play the same ops.
    #[test]
    fn a_batched_claim_starts_what_single_claims_would(
        seed: u64,
        ops in ops(ALL),
        max in 1usize..8,
        queue in prop::option::of(0u8..3),
    ) {
        batched_claim_matches_single_claims(seed, &ops, max, queue)?;
    }

    /// Guarantee 1: the checker compares every start with the first eligible job of its
    /// queue; priorities, queues and many subjects, no timing noise.
    #[test]
    fn pop_order_is_priority_then_enqueue_order(seed: u64, ops in ops(Mix { subjects: 40, timing: false, conditions: false, parents: false, restarts: false, store: false })) {
        let mut world = World::new(config(), seed);
        play(&mut world, &ops);
    }

    /// Guarantees 2–5 on a few hot subjects: lower, equal, higher, absent, stale and
    /// duplicate generations, with claims and completions in between.
    #[test]
    fn supersede_keeps_only_the_newest_generation(seed: u64, ops in ops(Mix { subjects: 2, timing: false, conditions: false, parents: false, restarts: false, store: false })) {
        let mut world = World::new(config(), seed);
        for op in &ops {
            if let Op::Enqueue(spec) = op {
                let subject = format!("subject-{}", spec.subject);
                let live_same = spec.generation.and_then(|g| {
                    world.jobs().into_iter().find(|j| j.subject_key == subject && j.generation == u64::from(g) && !j.state.is_terminal())
                });
                let waiting_before: Vec<_> = world.jobs().into_iter().filter(|j| j.subject_key == subject && j.state.is_waiting()).collect();
                let request = to_request(&world, spec, &[]);
                let max = world.jobs().iter().filter(|j| j.subject_key == subject).map(|j| j.generation).max();
                let enqueued = world.enqueue_ok(request);
                let expected_generation = spec.generation.map(u64::from).unwrap_or(max.map_or(1, |m| m + 1));
                prop_assert_eq!(enqueued.generation, expected_generation);
                if let Some(existing) = live_same {
                    prop_assert!(enqueued.deduplicated);
                    prop_assert_eq!(enqueued.job_id, existing.id);
                } else if max.is_some_and(|m| expected_generation < m) {
                    prop_assert!(!enqueued.deduplicated);
                    prop_assert_eq!(enqueued.state, JobState::Superseded, "a stale generation is born superseded");
                } else {
                    prop_assert!(!enqueued.deduplicated);
                    for older in waiting_before.iter().filter(|j| j.generation < expected_generation) {
                        prop_assert_eq!(world.job(older.id).state, JobState::Superseded);
                    }
                }
            } else {
                play(&mut world, std::slice::from_ref(op));
            }
        }
    }

    /// Guarantee 6 and the cancel/timeout/completion races: the checker asserts one live
    /// process per subject and that the first terminal state sticks.
    #[test]
    fn races_keep_the_first_terminal_state(seed: u64, ops in ops(Mix { subjects: 3, timing: true, conditions: false, parents: false, restarts: true, store: false })) {
        let mut world = World::new(config(), seed);
        play(&mut world, &ops);
    }

    /// Everything at once: timing, conditions, parents, restarts.
    #[test]
    fn every_rule_holds_under_a_mixed_workload(seed: u64, ops in ops(ALL)) {
        let mut world = World::new(config(), seed);
        play(&mut world, &ops);
    }

    /// Schedules, TTLs and deadlines: the checker asserts that no job starts early or late
    /// and that a tick leaves nothing due behind.
    #[test]
    fn time_rules_hold(seed: u64, ops in ops(Mix { subjects: 8, timing: true, conditions: false, parents: false, restarts: false, store: false })) {
        let mut world = World::new(config(), seed);
        play(&mut world, &ops);
    }

    /// Conditions and parents, with throttling on.
    #[test]
    fn conditions_parents_and_throttle_hold(seed: u64, ops in ops(Mix { subjects: 8, timing: false, conditions: true, parents: true, restarts: false, store: false })) {
        let mut cfg = config();
        cfg.throttle = Some(Throttle { cpu_limit_percent: 50, priority_floor: 1 });
        let mut world = World::new(cfg, seed);
        play(&mut world, &ops);
    }

    /// Guarantee 8 after every kind of history: `check_recovery` runs at every restart, and
    /// one more restart closes every sequence.
    #[test]
    fn restart_recovery_fails_running_attempts_and_keeps_the_rest(seed: u64, ops in ops(Mix { subjects: 4, timing: true, conditions: true, parents: true, restarts: true, store: false })) {
        let mut world = World::new(config(), seed);
        play(&mut world, &ops);
        play(&mut world, &[Op::Restart]);
    }

    /// Back-off stays within [d·(1-j), d·(1+j)], capped at max_ms, for every attempt.
    #[test]
    fn retry_backoff_is_bounded(seed: u64, base_ms in 0i64..5_000, factor in 1.0f64..5.0, max_ms in 0i64..60_000, jitter in 0.0f64..=1.0, attempts in 2i64..8) {
        let mut world = World::new(config(), seed);
        let mut request = request("retry");
        request.max_attempts = Some(attempts);
        request.backoff = Some(BackoffRequest { base_ms: Some(base_ms), factor: Some(factor), max_ms: Some(max_ms), jitter: Some(jitter) });
        let id = world.enqueue_ok(request).job_id;
        let policy = Backoff { base_ms: base_ms as u64, factor, max_ms: max_ms as u64, jitter };
        for attempt in 1..=attempts as u32 {
            world.advance(world.job(id).due_at_ms.saturating_sub(world.now_ms));
            let claimed = world.claim().expect("the retry is due");
            prop_assert_eq!(claimed.id, id);
            prop_assert_eq!(claimed.attempts, attempt);
            world.fail(id);
            let job = world.job(id);
            if attempt == attempts as u32 {
                prop_assert_eq!(job.state, JobState::Failed);
                break;
            }
            let delay = job.due_at_ms - world.now_ms;
            let nominal = backoff::nominal_delay_ms(&policy, attempt) as f64;
            let expected = (base_ms as f64 * factor.powi(attempt as i32 - 1)).min(max_ms as f64);
            prop_assert!((nominal - expected).abs() <= 1.0 + expected * 1e-9, "nominal {} vs {}", nominal, expected);
            prop_assert!(delay as f64 >= (nominal * (1.0 - jitter)).floor() - 1.0, "delay {} below {}", delay, nominal * (1.0 - jitter));
            prop_assert!(delay as f64 <= (nominal * (1.0 + jitter)).ceil() + 1.0, "delay {} above {}", delay, nominal * (1.0 + jitter));
            prop_assert!(delay <= max_ms as u64, "delay {} over max {}", delay, max_ms);
        }
    }

    /// The same seed gives the same delays; the jitter comes from the injected generator.
    #[test]
    fn retry_timing_is_determined_by_the_seed(seed: u64, failures in 1u32..20) {
        let policy = Backoff { base_ms: 1_000, factor: 2.0, max_ms: 300_000, jitter: 0.5 };
        let draw = |seed| {
            let mut rng = SplitMix64::new(seed);
            (1..=failures).map(|n| backoff::delay_ms(&policy, n, &mut rng)).collect::<Vec<_>>()
        };
        prop_assert_eq!(draw(seed), draw(seed));
        let run = |seed| {
            let mut world = World::new(config(), seed);
            let mut request = request("retry");
            request.max_attempts = Some(3);
            let id = world.enqueue_ok(request).job_id;
            world.claim();
            world.fail(id);
            world.job(id).due_at_ms
        };
        prop_assert_eq!(run(seed), run(seed));
    }

    /// Parent/child: a child waits for DONE; any other end cancels it (`parent_failed`),
    /// down the whole chain.
    #[test]
    fn children_follow_their_parents_end(seed: u64, depth in 1usize..5, end in 0u8..4) {
        let mut world = World::new(config(), seed);
        let root = world.enqueue_ok(request("root")).job_id;
        let mut chain = vec![root];
        for level in 0..depth {
            let mut child = request(&format!("child-{level}"));
            child.parent_job_id = Some(chain.last().unwrap().to_string());
            let enqueued = world.enqueue_ok(child);
            prop_assert_eq!(enqueued.state, JobState::Scheduled);
            chain.push(enqueued.job_id);
        }
        prop_assert_eq!(world.claim().map(|j| j.id), Some(root));
        prop_assert_eq!(world.claim(), None, "no child starts before its parent is DONE");
        match end {
            0 => { world.succeed(root); }
            1 => { world.fail(root); }
            2 => { world.step(Input::Cancel(CancelRequest { job_id: Some(root), ..CancelRequest::default() })); }
            _ => { world.finish(root, Outcome::TimedOut); }
        }
        if end == 0 {
            prop_assert_eq!(world.job(chain[1]).state, JobState::Queued);
            for child in &chain[2..] {
                prop_assert_eq!(world.job(*child).state, JobState::Scheduled);
            }
        } else {
            for child in &chain[1..] {
                let job = world.job(*child);
                prop_assert_eq!(job.state, JobState::Cancelled);
                prop_assert_eq!(job.error.map(|e| e.kind), Some(ErrorKind::ParentFailed));
            }
        }
    }
}

#[test]
fn a_tick_past_the_batch_limit_asks_to_be_woken_at_once() {
    let mut world = World::new(config(), 7);
    let mut requests = Vec::new();
    for n in 0..semantica_core::limits::TICK_JOBS_MAX + 5 {
        let mut request = request(&format!("s{n}"));
        request.schedule = Some(ScheduleRequest { at_ms: None, delay_ms: Some(10) });
        requests.push(request);
        if requests.len() == semantica_core::limits::BATCH_JOBS_MAX {
            world.step(Input::EnqueueBatch(std::mem::take(&mut requests)));
        }
    }
    world.step(Input::EnqueueBatch(requests));
    let first = world.advance(10);
    assert_eq!(first.wake_at_ms, Some(world.now_ms), "more was due than one tick handles");
    let second = world.step(Input::Tick);
    assert_eq!(second.wake_at_ms, None);
    assert!(world.jobs().iter().all(|j| j.state == JobState::Queued));
}
