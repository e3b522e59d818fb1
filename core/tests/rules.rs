//! Example tests, one per rule or race, named for the behaviour they pin down. The
//! harness's checker judges every step of these too.

mod harness;

use harness::{config, request, World};
use semantica_core::{
    Action, CancelRequest, Conditions, Config, ErrorKind, Input, JobState, KillOrder, Outcome, Reply, Report,
    ScheduleRequest, SystemState, Throttle,
};

fn cancel(world: &mut World, id: semantica_core::JobId) -> Reply {
    world.step(Input::Cancel(CancelRequest { job_id: Some(id), ..CancelRequest::default() })).reply
}

fn with_timeout(subject: &str, timeout_ms: i64, max_attempts: i64) -> semantica_core::EnqueueRequest {
    let mut r = request(subject);
    r.timeout_ms = Some(timeout_ms);
    r.max_attempts = Some(max_attempts);
    r
}

#[test]
fn cancel_wins_over_completion() {
    let mut world = World::new(config(), 1);
    let id = world.enqueue_ok(request("a")).job_id;
    world.claim().unwrap();
    world.started(id);
    assert_eq!(cancel(&mut world, id), Reply::Cancelled { count: 1, more: false });
    let job = world.job(id);
    assert_eq!((job.state, job.reap_pending), (JobState::Cancelled, true));
    // The run's own success arrives later: recorded nowhere in the state.
    assert_eq!(world.succeed(id), Reply::Ignored);
    let job = world.job(id);
    assert_eq!((job.state, job.reap_pending), (JobState::Cancelled, false));
    assert_eq!(job.error.map(|e| e.kind), Some(ErrorKind::Cancelled));
}

#[test]
fn completion_wins_over_a_later_cancel() {
    let mut world = World::new(config(), 1);
    let id = world.enqueue_ok(request("a")).job_id;
    world.claim().unwrap();
    assert_eq!(world.succeed(id), Reply::Accepted);
    assert_eq!(world.job(id).state, JobState::Done);
    assert_eq!(
        cancel(&mut world, id),
        Reply::Rejected(semantica_core::Rejection::Conflict { job_id: id, state: JobState::Done })
    );
}

#[test]
fn cancel_of_an_unknown_job_is_not_found() {
    let mut world = World::new(config(), 1);
    let id = semantica_core::JobId::from_u128(42);
    assert_eq!(cancel(&mut world, id), Reply::Rejected(semantica_core::Rejection::NotFound(id)));
}

#[test]
fn timeout_wins_over_a_late_completion_and_retries_after_the_reap() {
    let mut world = World::new(config(), 1);
    let id = world.enqueue_ok(with_timeout("a", 100, 2)).job_id;
    world.claim().unwrap();
    world.started(id);
    let seen = world.advance(100);
    assert_eq!(seen.reply, Reply::Accepted);
    let job = world.job(id);
    assert_eq!((job.state, job.reap_pending), (JobState::Scheduled, true));
    assert_eq!(job.error.as_ref().map(|e| e.kind), Some(ErrorKind::Timeout));
    // The back-off passes, but the killed process has not been reaped: no second process.
    world.advance(10_000);
    assert_eq!(world.claim(), None);
    // The dying run reports success: too late, it only frees the subject.
    assert_eq!(world.succeed(id), Reply::Ignored);
    let claimed = world.claim().expect("the retry starts once the old run is gone");
    assert_eq!((claimed.id, claimed.attempts), (id, 2));
}

#[test]
fn deadline_kills_a_running_job_without_retry() {
    let mut world = World::new(config(), 1);
    let mut r = request("a");
    r.deadline_ms = Some((world.now_ms + 50) as i64);
    r.max_attempts = Some(5);
    let id = world.enqueue_ok(r).job_id;
    world.claim().unwrap();
    world.advance(50);
    let job = world.job(id);
    assert_eq!(job.state, JobState::Failed);
    assert_eq!(job.error.map(|e| e.kind), Some(ErrorKind::DeadlineExceeded));
    assert!(job.reap_pending);
}

#[test]
fn deadline_wins_over_a_pending_retry() {
    let mut world = World::new(config(), 1);
    let mut r = request("a");
    r.deadline_ms = Some((world.now_ms + 500) as i64);
    r.max_attempts = Some(5);
    r.backoff = Some(semantica_core::BackoffRequest { base_ms: Some(1_000), jitter: Some(0.0), ..Default::default() });
    let id = world.enqueue_ok(r).job_id;
    world.claim().unwrap();
    world.fail(id);
    assert_eq!(world.job(id).state, JobState::Scheduled);
    world.advance(500);
    assert_eq!(world.job(id).state, JobState::SkippedDeadline);
}

#[test]
fn ttl_skips_a_job_not_started_in_time() {
    let mut world = World::new(config(), 1);
    let blocker = world.enqueue_ok(request("a")).job_id;
    world.claim().unwrap();
    let mut r = request("a");
    r.ttl_ms = Some(100);
    let id = world.enqueue_ok(r).job_id;
    world.advance(99);
    assert_eq!(world.job(id).state, JobState::Queued);
    world.advance(1);
    assert_eq!(world.job(id).state, JobState::SkippedTtl);
    world.succeed(blocker);
}

#[test]
fn a_scheduled_job_becomes_queued_when_due() {
    let mut world = World::new(config(), 1);
    let mut r = request("a");
    r.schedule = Some(ScheduleRequest { at_ms: None, delay_ms: Some(1_000) });
    let enqueued = world.enqueue_ok(r);
    assert_eq!(enqueued.state, JobState::Scheduled);
    assert_eq!(world.claim(), None);
    let seen = world.advance(999);
    assert_eq!(seen.wake_at_ms, Some(world.now_ms + 1));
    assert_eq!(world.job(enqueued.job_id).state, JobState::Scheduled);
    world.advance(1);
    assert_eq!(world.job(enqueued.job_id).state, JobState::Queued);
    assert_eq!(world.claim().map(|j| j.id), Some(enqueued.job_id));
}

#[test]
fn supersede_leaves_the_running_generation_and_the_newest_waits() {
    let mut world = World::new(config(), 1);
    let first = world.enqueue_ok(request("file")).job_id;
    world.claim().unwrap();
    let second = world.enqueue_ok(request("file"));
    let third = world.enqueue_ok(request("file"));
    assert_eq!((second.generation, third.generation), (2, 3));
    assert_eq!(world.job(first).state, JobState::Running);
    assert_eq!(world.job(second.job_id).state, JobState::Superseded);
    assert_eq!(world.claim(), None, "the subject runs");
    world.succeed(first);
    assert_eq!(world.claim().map(|j| j.id), Some(third.job_id));
}

#[test]
fn a_failed_attempt_under_a_newer_generation_is_superseded_not_retried() {
    let mut world = World::new(config(), 1);
    let mut r = request("file");
    r.max_attempts = Some(3);
    let first = world.enqueue_ok(r).job_id;
    world.claim().unwrap();
    world.enqueue_ok(request("file"));
    world.fail(first);
    assert_eq!(world.job(first).state, JobState::Superseded);
}

#[test]
fn stale_and_duplicate_generations() {
    let mut world = World::new(config(), 1);
    let mut r = request("file");
    r.generation = Some(5);
    let five = world.enqueue_ok(r.clone());
    let again = world.enqueue_ok(r.clone());
    assert_eq!((again.job_id, again.deduplicated), (five.job_id, true));
    r.generation = Some(4);
    let stale = world.enqueue_ok(r);
    assert_eq!((stale.state, stale.deduplicated), (JobState::Superseded, false));
    let next = world.enqueue_ok(request("file"));
    assert_eq!(next.generation, 6);
}

#[test]
fn restart_recovery_fails_the_running_attempt_and_kills_its_process() {
    let mut world = World::new(config(), 1);
    let mut r = request("a");
    r.max_attempts = Some(2);
    let id = world.enqueue_ok(r).job_id;
    let waiting = world.enqueue_ok(request("b")).job_id;
    world.claim().unwrap();
    world.started(id);
    let job = world.job(id);
    let seen = world.restart();
    assert_eq!(seen.reply, Reply::Recovered { failed_attempts: 1, processes_killed: 1 });
    let after = world.job(id);
    assert_eq!(after.state, JobState::Scheduled);
    assert_eq!(after.error.map(|e| e.kind), Some(ErrorKind::DaemonRestart));
    assert_eq!(after.attempts, 1);
    assert!(!job.reap_pending && job.pid.is_some());
    assert_eq!(world.job(waiting).state, JobState::Queued);
}

#[test]
fn restart_kills_the_process_of_a_job_cancelled_just_before_the_crash() {
    let mut world = World::new(config(), 1);
    let id = world.enqueue_ok(request("a")).job_id;
    world.claim().unwrap();
    world.started(id);
    cancel(&mut world, id);
    let job = world.job(id);
    // The crash comes before the kill was carried out: the new engine must do it.
    let step = {
        let config = world.engine.config().clone();
        let mut engine = semantica_core::Engine::new(
            config,
            Box::new(semantica_core::SeededIds::new(9)),
            Box::new(semantica_core::SplitMix64::new(9)),
        );
        engine.run(world.now_ms, Input::Recover, &mut world.store).unwrap()
    };
    let order = KillOrder { job_id: id, attempt: 1, pid: job.pid, pid_started_at: job.pid_started_at };
    assert_eq!(step.actions, vec![Action::Kill(order)]);
    let after = world.job(id);
    assert_eq!((after.state, after.reap_pending), (JobState::Cancelled, false));
}

#[test]
fn reports_of_an_earlier_attempt_or_repeated_are_ignored() {
    let mut world = World::new(config(), 1);
    let mut r = request("a");
    r.max_attempts = Some(3);
    r.backoff = Some(semantica_core::BackoffRequest { base_ms: Some(0), ..Default::default() });
    let id = world.enqueue_ok(r).job_id;
    world.claim().unwrap();
    world.fail(id);
    world.claim().unwrap();
    let late = Report::Finished {
        job_id: id,
        attempt: 1,
        outcome: Outcome::Succeeded { exit_code: Some(0), result_summary_json: None, artifacts: vec![] },
    };
    assert_eq!(world.step(Input::Report(late)).reply, Reply::Ignored);
    assert_eq!(world.job(id).state, JobState::Running);
    assert_eq!(world.succeed(id), Reply::Accepted);
    assert_eq!(world.succeed(id), Reply::Ignored);
    assert_eq!(world.job(id).state, JobState::Done);
}

#[test]
fn a_child_of_a_failed_parent_is_cancelled_with_parent_failed() {
    let mut world = World::new(config(), 1);
    let parent = world.enqueue_ok(request("p")).job_id;
    let mut r = request("c");
    r.parent_job_id = Some(parent.to_string());
    let child = world.enqueue_ok(r.clone()).job_id;
    world.claim().unwrap();
    world.fail(parent);
    let job = world.job(child);
    assert_eq!(job.state, JobState::Cancelled);
    assert_eq!(job.error.map(|e| e.kind), Some(ErrorKind::ParentFailed));
    // Enqueued after the parent failed: cancelled at once.
    r.subject_key = Some("c2".into());
    assert_eq!(world.enqueue_ok(r).state, JobState::Cancelled);
}

#[test]
fn throttle_floor_holds_low_priority_jobs_while_the_cpu_is_busy() {
    let mut cfg = config();
    cfg.throttle = Some(Throttle { cpu_limit_percent: 80, priority_floor: 5 });
    let mut world = World::new(cfg, 1);
    let low = world.enqueue_ok(request("low")).job_id;
    let mut r = request("high");
    r.priority = Some(5);
    let high = world.enqueue_ok(r).job_id;
    world.step(Input::SystemChanged(SystemState { cpu_load_percent: 95, is_idle: false, is_charging: true }));
    assert_eq!(world.claim().map(|j| j.id), Some(high));
    assert_eq!(world.claim(), None);
    world.step(Input::SystemChanged(SystemState { cpu_load_percent: 80, is_idle: false, is_charging: true }));
    assert_eq!(world.claim().map(|j| j.id), Some(low));
}

#[test]
fn per_queue_and_global_limits_hold_and_queues_take_turns() {
    let mut cfg = Config::new(3, ["work"]);
    cfg.queue_concurrency.insert("serial".into(), 1);
    let mut world = World::new(cfg, 1);
    let mut ids = Vec::new();
    for (n, queue) in ["serial", "serial", "bulk", "bulk", "other"].iter().enumerate() {
        let mut r = request(&format!("s{n}"));
        r.queue = Some((*queue).into());
        ids.push(world.enqueue_ok(r).job_id);
    }
    let started: Vec<String> = (0..4).filter_map(|_| world.claim()).map(|j| j.queue).collect();
    assert_eq!(started, ["bulk", "other", "serial"], "one per queue in turn, serial capped at 1, 3 workers");
}

#[test]
fn conditions_hold_a_job_until_idle_charging_and_its_event() {
    let mut world = World::new(config(), 1);
    let mut r = request("a");
    r.conditions =
        Some(Conditions { wait_for_idle: true, require_charging: true, wait_for_event: Some("saved".into()) });
    let id = world.enqueue_ok(r).job_id;
    assert_eq!(world.job(id).state, JobState::Scheduled);
    assert_eq!(world.step(Input::Event { name: "saved".into() }).reply, Reply::Released { count: 1 });
    assert_eq!(world.step(Input::Event { name: "saved".into() }).reply, Reply::Released { count: 0 });
    assert_eq!(world.job(id).state, JobState::Scheduled, "not idle yet");
    world.step(Input::SystemChanged(SystemState { cpu_load_percent: 1, is_idle: true, is_charging: false }));
    assert_eq!(world.job(id).state, JobState::Scheduled, "on battery");
    world.step(Input::SystemChanged(SystemState { cpu_load_percent: 1, is_idle: true, is_charging: true }));
    assert_eq!(world.job(id).state, JobState::Queued);
    world.step(Input::SystemChanged(SystemState { cpu_load_percent: 1, is_idle: false, is_charging: true }));
    assert_eq!(world.job(id).state, JobState::Scheduled, "no longer idle");
}

#[test]
fn cancel_by_tag_and_group_must_match_both() {
    let mut world = World::new(config(), 1);
    let mut ids = Vec::new();
    for (n, (tag, group)) in [("x", "g1"), ("x", "g2"), ("y", "g1")].iter().enumerate() {
        let mut r = request(&n.to_string());
        r.tag = Some((*tag).into());
        r.chain_group_id = Some((*group).into());
        ids.push(world.enqueue_ok(r).job_id);
    }
    let both = CancelRequest { tag: Some("x".into()), chain_group_id: Some("g1".into()), job_id: None };
    assert_eq!(world.step(Input::Cancel(both)).reply, Reply::Cancelled { count: 1, more: false });
    let states: Vec<JobState> = ids.iter().map(|id| world.job(*id).state).collect();
    assert_eq!(states, [JobState::Cancelled, JobState::Queued, JobState::Queued]);
    let group = CancelRequest { chain_group_id: Some("g1".into()), ..CancelRequest::default() };
    assert_eq!(world.step(Input::Cancel(group)).reply, Reply::Cancelled { count: 1, more: false });
}

#[test]
fn purge_removes_only_finished_jobs_past_retention() {
    let mut world = World::new(config(), 1);
    let done = world.enqueue_ok(request("a")).job_id;
    let waiting = world.enqueue_ok(request("b")).job_id;
    world.claim().unwrap();
    world.succeed(done);
    world.advance(1_000);
    let cutoff = world.now_ms;
    let reply = world.step(Input::Purge { finished_before_ms: cutoff, limit: 10 }).reply;
    assert_eq!(reply, Reply::Purged { job_ids: vec![done] });
    assert!(world.store.get_job(done).is_none());
    assert_eq!(world.job(waiting).state, JobState::Queued);
    // The subject's generation survives the purge: a stale enqueue is still stale.
    let mut r = request("a");
    r.generation = Some(0);
    assert_eq!(world.enqueue_ok(r).state, JobState::Superseded);
}

trait GetJob {
    fn get_job(&self, id: semantica_core::JobId) -> Option<semantica_core::Job>;
}

impl GetJob for semantica_core::MemStore {
    fn get_job(&self, id: semantica_core::JobId) -> Option<semantica_core::Job> {
        semantica_core::Store::get(self, id).unwrap()
    }
}

#[test]
fn pop_time_supersede_guards_against_a_stale_queued_job() {
    // Insert-time supersede normally leaves no waiting job under a newer generation; the
    // claim checks again in case a store holds one anyway (an older daemon's data, a second
    // daemon's race). Plant such a job by hand and claim.
    let mut world = World::new(config(), 1);
    let old = world.enqueue_ok(request("file")).job_id;
    let new = world.enqueue_ok(request("file")).job_id;
    let mut planted = world.job(old);
    let running_new = world.claim().expect("the newest generation starts");
    assert_eq!(running_new.id, new);
    planted.state = JobState::Queued;
    planted.finished_at_ms = None;
    planted.error = None;
    planted.version += 1;
    semantica_core::Store::commit(
        &mut world.store,
        &semantica_core::WriteSet { writes: vec![semantica_core::Write::Update(planted)] },
    )
    .unwrap();
    // The harness's checker would (rightly) refuse this state, so drive the engine directly.
    let now_ms = world.now_ms;
    let outcome = Outcome::Succeeded { exit_code: Some(0), result_summary_json: None, artifacts: vec![] };
    let finished = Input::Report(Report::Finished { job_id: new, attempt: 1, outcome });
    let _ = world.engine.run(now_ms, finished, &mut world.store).unwrap();
    let claim = world.engine.run(now_ms, Input::Claim { queue: None }, &mut world.store).unwrap();
    assert_eq!(claim.reply, Reply::Claimed(None), "the older generation must not start");
    assert!(claim.actions.is_empty());
    assert_eq!(world.job(old).state, JobState::Superseded);
}

#[test]
fn an_unknown_parent_is_refused_even_for_a_duplicate() {
    let mut world = World::new(config(), 1);
    let mut r = request("file");
    r.generation = Some(1);
    world.enqueue_ok(r.clone());
    r.parent_job_id = Some("67e55044-10b1-426f-9247-bb680e5fe0c8".into());
    assert!(matches!(
        world.enqueue(r),
        Reply::Rejected(semantica_core::Rejection::Validation(ref e)) if e.kind == semantica_core::ValidationKind::UnknownParent
    ));
}

#[test]
fn a_process_being_stopped_keeps_its_worker_slot() {
    let mut world = World::new(Config::new(1, ["work"]), 1);
    let first = world.enqueue_ok(request("a")).job_id;
    let second = world.enqueue_ok(request("b")).job_id;
    world.claim().unwrap();
    cancel(&mut world, first);
    assert_eq!(world.claim(), None, "the one worker still stops the cancelled process");
    world.finish(first, Outcome::Failed { kind: ErrorKind::Signal, exit_code: None, message: "SIGTERM".into() });
    assert_eq!(world.claim().map(|j| j.id), Some(second));
}

#[test]
fn a_claim_reads_past_a_first_page_of_candidates_that_cannot_start() {
    let mut world = World::new(config(), 1);
    let page = semantica_core::limits::CLAIM_SCAN_FIRST;
    let mut stale = Vec::new();
    for n in 0..page + 2 {
        let mut r = request(&format!("short-{n}"));
        r.priority = Some(10);
        r.ttl_ms = Some(50);
        stale.push(world.enqueue_ok(r).job_id);
    }
    let good = world.enqueue_ok(request("good")).job_id;
    // Time passes with no tick: the first candidates are past their TTL when claimed.
    world.now_ms += 100;
    assert_eq!(world.claim().map(|j| j.id), Some(good));
    for id in stale {
        assert_eq!(world.job(id).state, JobState::SkippedTtl);
    }
}

/// An event with more waiters than one step may release frees them over several steps:
/// at most `EVENT_ROUND_JOBS_MAX` each, every waiter once, and a short round at the end.
#[test]
fn an_event_with_many_waiters_is_released_in_rounds() {
    let round = semantica_core::limits::EVENT_ROUND_JOBS_MAX;
    let mut world = World::new(config(), 1);
    let waiting = |n: usize| {
        let mut r = request(&format!("s{n}"));
        r.conditions = Some(Conditions { wait_for_event: Some("go".into()), ..Conditions::default() });
        r
    };
    let total = round + 1;
    for start in (0..total).step_by(1000) {
        let batch = (start..total.min(start + 1000)).map(waiting).collect();
        assert!(matches!(world.step(Input::EnqueueBatch(batch)).reply, Reply::EnqueuedBatch(_)));
    }
    let mut counts = Vec::new();
    loop {
        let Reply::Released { count } = world.step(Input::Event { name: "go".into() }).reply else { panic!() };
        counts.push(count);
        if count < round {
            break;
        }
    }
    assert_eq!(counts, [round, 1], "a full round, then the rest");
    let released = world.jobs().iter().filter(|job| job.event_released).count();
    assert_eq!(released, total, "every waiter released once");
}

/// A cancel by tag that matches more live jobs than one step may touch ends them over
/// several steps: at most `CANCEL_ROUND_JOBS_MAX` each, with `more` set while a step was
/// full, every match cancelled once, and jobs of other tags left alone.
#[test]
fn a_cancel_by_tag_with_many_matches_is_done_in_rounds() {
    let round = semantica_core::limits::CANCEL_ROUND_JOBS_MAX;
    let mut world = World::new(config(), 1);
    let tagged = |n: usize, tag: &str| {
        let mut r = request(&format!("{tag}{n}"));
        r.tag = Some(tag.into());
        r.conditions = Some(Conditions { wait_for_event: Some("never".into()), ..Conditions::default() });
        r
    };
    let total = round + 7;
    for start in (0..total).step_by(1000) {
        let batch = (start..total.min(start + 1000)).map(|n| tagged(n, "bulk")).collect();
        assert!(matches!(world.step(Input::EnqueueBatch(batch)).reply, Reply::EnqueuedBatch(_)));
    }
    assert!(matches!(world.step(Input::EnqueueBatch(vec![tagged(0, "other")])).reply, Reply::EnqueuedBatch(_)));
    let by_tag = || Input::Cancel(CancelRequest { tag: Some("bulk".into()), ..CancelRequest::default() });
    let mut rounds = Vec::new();
    loop {
        let Reply::Cancelled { count, more } = world.step(by_tag()).reply else { panic!() };
        rounds.push((count, more));
        if !more {
            break;
        }
    }
    assert_eq!(rounds, [(round, true), (7, false)], "a full round, then the rest");
    let states = |tag: &str| {
        world.jobs().iter().filter(|job| job.tag.as_deref() == Some(tag)).map(|job| job.state).collect::<Vec<_>>()
    };
    assert!(states("bulk").iter().all(|state| *state == JobState::Cancelled));
    assert_eq!(states("bulk").len(), total);
    assert_eq!(states("other"), [JobState::Scheduled]);
    assert_eq!(world.step(by_tag()).reply, Reply::Cancelled { count: 0, more: false });
}

/// An instant parent ends within the claim that starts it and releases its child; the
/// child's queue held nothing else, so the same claim batch finds that queue ready (from
/// the jobs the step itself made `QUEUED`) and starts the child.
#[test]
fn a_child_an_instant_parent_releases_starts_in_the_same_batch_from_an_empty_queue() {
    let mut world = World::new(config(), 1);
    let mut parent = request("p");
    parent.job_type = Some("noop".into());
    parent.queue = Some("first".into());
    let parent = world.enqueue_ok(parent).job_id;
    let mut child = request("c");
    child.queue = Some("second".into());
    child.parent_job_id = Some(parent.to_string());
    let child = world.enqueue_ok(child).job_id;
    assert_eq!(world.job(child).state, JobState::Scheduled, "waits for its parent");
    world.step(Input::ClaimBatch { queue: None, max: 2 });
    assert_eq!(world.job(parent).state, JobState::Done);
    assert_eq!(world.job(child).state, JobState::Running, "started by the same batch");
}
