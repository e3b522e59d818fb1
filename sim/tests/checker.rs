//! The checker itself is tested: for each invariant, a hand-made history that breaks it
//! must be caught, by name. Histories are built from steps as the engine would report
//! them; none of them goes through the engine.

use semantica_core::{
    Action, CancelRequest, Config, EnqueueRequest, Enqueued, Input, Job, JobId, JobState, KillOrder, MemStore,
    Recurring, Reply, RetryRequest, Step, Store, SystemState, Throttle, Write, WriteSet,
};
use semantica_sim::checker::{Checker, LiveProcess, Observation};

const NOW_MS: u64 = 1_700_000_000_000;

fn job(n: u128, subject_key: &str, generation: u64, state: JobState) -> Job {
    Job {
        seq: n as u64,
        subject_key: subject_key.to_owned(),
        generation,
        state,
        attempts: u32::from(state == JobState::Running),
        max_attempts: 3,
        trace_id: format!("trace-{n}"),
        created_at_ms: NOW_MS,
        due_at_ms: NOW_MS,
        started_at_ms: (state == JobState::Running).then_some(NOW_MS),
        finished_at_ms: state.is_terminal().then_some(NOW_MS),
        ..Job::blank(JobId::from_u128(n))
    }
}

/// The same job one write later, in another state.
fn moved(old: &Job, state: JobState) -> Job {
    let mut job = old.clone();
    job.version += 1;
    if state == JobState::Running && old.state != JobState::Running {
        job.attempts += 1;
        job.started_at_ms = Some(NOW_MS);
    }
    job.state = state;
    job.finished_at_ms = state.is_terminal().then_some(NOW_MS);
    job
}

fn step(writes: Vec<Write>, reply: Reply, actions: Vec<Action>) -> Step {
    Step {
        persist: WriteSet { writes },
        reply,
        actions,
        wake_at_ms: None,
        may_claim: false,
        written_from: Vec::new(),
        memory: Default::default(),
    }
}

fn config() -> Config {
    let mut config = Config::new(2, ["noop"]);
    config.queue_concurrency.insert("build".to_owned(), 1);
    config
}

/// Feeds `input`/`step` to the checker; returns the violated invariant's name, if any.
fn check(checker: &mut Checker, input: Input, step: Step) -> Option<&'static str> {
    check_with(checker, input, step, SystemState::UNKNOWN)
}

fn check_with(checker: &mut Checker, input: Input, step: Step, system: SystemState) -> Option<&'static str> {
    let observation = Observation { now_ms: NOW_MS, input: &input, step: &step, system, acknowledged: true };
    checker.observe(&observation).err().map(|violation| violation.invariant)
}

fn enqueued(job: &Job) -> Reply {
    Reply::Enqueued(Enqueued {
        job_id: job.id,
        queue: job.queue.clone(),
        state: job.state,
        generation: job.generation,
        deduplicated: false,
    })
}

/// Starts the checker from a store that holds `jobs`.
fn seed(checker: &mut Checker, jobs: &[Job]) {
    checker.assume_stored(jobs.iter().cloned());
}

fn claim(job: &Job) -> (Input, Step) {
    let running = moved(job, JobState::Running);
    let step = step(
        vec![Write::Update(running.clone())],
        Reply::Claimed(Some(Box::new(running.clone()))),
        vec![Action::Spawn(Box::new(running))],
    );
    (Input::Claim { queue: None }, step)
}

#[test]
fn a_lawful_history_passes() {
    let mut checker = Checker::new(&config());
    let a = job(1, "s", 1, JobState::Queued);
    assert_eq!(check(&mut checker, Input::Tick, step(vec![Write::Insert(a.clone())], enqueued(&a), Vec::new())), None);
    let (input, claimed) = claim(&a);
    assert_eq!(check(&mut checker, input, claimed), None);
    let running = checker.job(a.id).unwrap().clone();
    let done = moved(&running, JobState::Done);
    assert_eq!(check(&mut checker, Input::Tick, step(vec![Write::Update(done)], Reply::Accepted, Vec::new())), None);
    assert_eq!(checker.check_quiescent(), Ok(()));
}

#[test]
fn checker_catches_a_lost_acknowledged_job() {
    let mut checker = Checker::new(&config());
    let a = job(1, "s", 1, JobState::Queued);
    assert_eq!(check(&mut checker, Input::Tick, step(vec![Write::Insert(a.clone())], enqueued(&a), Vec::new())), None);
    let empty = MemStore::new();
    assert_eq!(checker.check_store(&empty).unwrap_err().invariant, "acked_job_lost");
}

#[test]
fn checker_catches_an_acknowledged_terminal_state_regressing_in_the_store() {
    let mut checker = Checker::new(&config());
    let a = job(1, "s", 1, JobState::Queued);
    let mut store = MemStore::new();
    store.commit(&WriteSet { writes: vec![Write::Insert(a.clone())] }).unwrap();
    assert_eq!(check(&mut checker, Input::Tick, step(vec![Write::Insert(a.clone())], enqueued(&a), Vec::new())), None);
    let cancelled = moved(&a, JobState::Cancelled);
    let cancel = Input::Cancel(CancelRequest { job_id: Some(a.id), ..CancelRequest::default() });
    assert_eq!(
        check(
            &mut checker,
            cancel,
            step(vec![Write::Update(cancelled)], Reply::Cancelled { count: 1, more: false }, Vec::new())
        ),
        None
    );
    // The store never got the cancel: the acknowledged CANCELLED is lost.
    assert_eq!(checker.check_store(&store).unwrap_err().invariant, "acked_job_lost");
}

#[test]
fn checker_catches_a_store_that_differs_from_its_commits() {
    let mut checker = Checker::new(&config());
    let a = job(1, "s", 1, JobState::Queued);
    seed(&mut checker, std::slice::from_ref(&a));
    let mut store = MemStore::new();
    let mut other = a.clone();
    other.priority = 7;
    store.commit(&WriteSet { writes: vec![Write::Insert(other)] }).unwrap();
    assert_eq!(checker.check_store(&store).unwrap_err().invariant, "store_diverged");
}

#[test]
fn checker_catches_a_terminal_state_changing() {
    let mut checker = Checker::new(&config());
    let a = job(1, "s", 1, JobState::Failed);
    seed(&mut checker, std::slice::from_ref(&a));
    let back = moved(&a, JobState::Queued);
    assert_eq!(
        check(&mut checker, Input::Tick, step(vec![Write::Update(back)], Reply::Accepted, Vec::new())),
        Some("terminal_changed")
    );
}

#[test]
fn checker_catches_a_cancelled_job_becoming_done() {
    let mut checker = Checker::new(&config());
    let a = job(1, "s", 1, JobState::Cancelled);
    seed(&mut checker, std::slice::from_ref(&a));
    let done = moved(&a, JobState::Done);
    assert_eq!(
        check(&mut checker, Input::Tick, step(vec![Write::Update(done)], Reply::Accepted, Vec::new())),
        Some("cancelled_became_done")
    );
}

#[test]
fn checker_catches_a_start_while_a_newer_generation_exists() {
    let mut checker = Checker::new(&config());
    let old = job(1, "s", 1, JobState::Queued);
    let new = job(2, "s", 2, JobState::Scheduled);
    seed(&mut checker, &[old.clone(), new]);
    let (input, claimed) = claim(&old);
    assert_eq!(check(&mut checker, input, claimed), Some("started_while_newer_generation"));
}

#[test]
fn checker_catches_a_start_without_spawn() {
    let mut checker = Checker::new(&config());
    let a = job(1, "s", 1, JobState::Queued);
    seed(&mut checker, std::slice::from_ref(&a));
    let (input, mut claimed) = claim(&a);
    claimed.actions.clear();
    assert_eq!(check(&mut checker, input, claimed), Some("start_without_spawn"));
}

#[test]
fn checker_catches_two_runs_of_one_subject() {
    let mut checker = Checker::new(&config());
    let a = job(1, "s", 1, JobState::Running);
    let b = job(2, "s", 1, JobState::Queued);
    seed(&mut checker, &[a, b.clone()]);
    let (input, claimed) = claim(&b);
    assert_eq!(check(&mut checker, input, claimed), Some("subject_run_twice"));
}

#[test]
fn checker_counts_a_process_being_reaped_as_holding_its_subject() {
    let mut checker = Checker::new(&config());
    let mut a = job(1, "s", 1, JobState::Cancelled);
    a.reap_pending = true;
    let b = job(2, "s", 2, JobState::Queued);
    seed(&mut checker, &[a, b.clone()]);
    let (input, claimed) = claim(&b);
    assert_eq!(check(&mut checker, input, claimed), Some("subject_run_twice"));
}

#[test]
fn checker_catches_two_processes_of_one_subject() {
    let checker = Checker::new(&config());
    let processes = [
        LiveProcess { job_id: JobId::from_u128(1), subject_key: "s".to_owned() },
        LiveProcess { job_id: JobId::from_u128(2), subject_key: "s".to_owned() },
    ];
    assert_eq!(checker.check_processes(&processes).unwrap_err().invariant, "subject_processes_overlap");
}

#[test]
fn checker_catches_a_claim_out_of_pop_order() {
    let mut checker = Checker::new(&config());
    let mut high = job(1, "s1", 1, JobState::Queued);
    high.priority = 5;
    let low = job(2, "s2", 1, JobState::Queued);
    seed(&mut checker, &[high, low.clone()]);
    let (input, claimed) = claim(&low);
    assert_eq!(check(&mut checker, input, claimed), Some("pop_order"));
}

#[test]
fn checker_catches_a_claim_that_skips_an_earlier_job_of_equal_priority() {
    let mut checker = Checker::new(&config());
    let first = job(1, "s1", 1, JobState::Queued);
    let second = job(2, "s2", 1, JobState::Queued);
    seed(&mut checker, &[first, second.clone()]);
    let (input, claimed) = claim(&second);
    assert_eq!(check(&mut checker, input, claimed), Some("pop_order"));
}

#[test]
fn checker_allows_passing_a_job_held_back_by_the_throttle() {
    let mut config = config();
    config.throttle = Some(Throttle { cpu_limit_percent: 50, priority_floor: 3 });
    let mut checker = Checker::new(&config);
    let mut low_first = job(1, "s1", 1, JobState::Queued);
    low_first.priority = 1;
    let mut high_later = job(2, "s2", 1, JobState::Queued);
    high_later.priority = 3;
    seed(&mut checker, &[low_first, high_later.clone()]);
    let busy = SystemState { cpu_load_percent: 90, is_idle: false, is_charging: true };
    let (input, claimed) = claim(&high_later);
    assert_eq!(check_with(&mut checker, input, claimed, busy), None);
}

#[test]
fn checker_catches_a_start_below_the_throttle_floor() {
    let mut config = config();
    config.throttle = Some(Throttle { cpu_limit_percent: 50, priority_floor: 3 });
    let mut checker = Checker::new(&config);
    let mut low = job(1, "s1", 1, JobState::Queued);
    low.priority = 1;
    seed(&mut checker, &[low.clone()]);
    let busy = SystemState { cpu_load_percent: 90, is_idle: false, is_charging: true };
    let (input, claimed) = claim(&low);
    assert_eq!(check_with(&mut checker, input, claimed, busy), Some("started_below_throttle_floor"));
}

#[test]
fn checker_catches_a_queue_over_its_concurrency() {
    let mut checker = Checker::new(&config());
    let mut a = job(1, "s1", 1, JobState::Running);
    a.queue = "build".to_owned();
    let mut b = job(2, "s2", 1, JobState::Queued);
    b.queue = "build".to_owned();
    seed(&mut checker, &[a, b.clone()]);
    let (input, claimed) = claim(&b);
    assert_eq!(check(&mut checker, input, claimed), Some("queue_concurrency"));
}

#[test]
fn checker_catches_more_runs_than_workers() {
    let mut checker = Checker::new(&config());
    let a = job(1, "s1", 1, JobState::Running);
    let b = job(2, "s2", 1, JobState::Running);
    let c = job(3, "s3", 1, JobState::Queued);
    seed(&mut checker, &[a, b, c.clone()]);
    let (input, claimed) = claim(&c);
    assert_eq!(check(&mut checker, input, claimed), Some("workers_exceeded"));
}

#[test]
fn checker_catches_attempts_over_max_attempts() {
    let mut checker = Checker::new(&config());
    let mut a = job(1, "s", 1, JobState::Queued);
    a.attempts = 3;
    a.max_attempts = 3;
    seed(&mut checker, &[]);
    let mut seeded = a.clone();
    seeded.attempts = 0;
    seed(&mut checker, std::slice::from_ref(&seeded));
    let mut running = moved(&seeded, JobState::Running);
    running.attempts = 4;
    let step = step(
        vec![Write::Update(running.clone())],
        Reply::Claimed(Some(Box::new(running.clone()))),
        vec![Action::Spawn(Box::new(running))],
    );
    assert_eq!(check(&mut checker, Input::Claim { queue: None }, step), Some("attempts_exceeded"));
}

#[test]
fn checker_catches_a_cancel_that_did_not_take_effect() {
    let mut checker = Checker::new(&config());
    let a = job(1, "s", 1, JobState::Running);
    seed(&mut checker, std::slice::from_ref(&a));
    let cancel = Input::Cancel(CancelRequest { job_id: Some(a.id), ..CancelRequest::default() });
    // Answered "cancelled" but only sent a kill; the job stays RUNNING.
    let kill = Action::Kill(KillOrder { job_id: a.id, attempt: 1, pid: None, pid_started_at: None });
    assert_eq!(
        check(&mut checker, cancel, step(Vec::new(), Reply::Cancelled { count: 1, more: false }, vec![kill])),
        Some("cancel_not_immediate")
    );
}

#[test]
fn checker_catches_recovery_that_leaves_a_job_running() {
    let mut checker = Checker::new(&config());
    let a = job(1, "s", 1, JobState::Running);
    seed(&mut checker, std::slice::from_ref(&a));
    let reply = Reply::Recovered { failed_attempts: 0, processes_killed: 0 };
    assert_eq!(check(&mut checker, Input::Recover, step(Vec::new(), reply, Vec::new())), Some("recovery_left_running"));
}

#[test]
fn checker_catches_a_deadline_that_passed_without_effect() {
    let mut checker = Checker::new(&config());
    let mut a = job(1, "s", 1, JobState::Scheduled);
    a.deadline_ms = Some(NOW_MS - 1);
    seed(&mut checker, std::slice::from_ref(&a));
    assert_eq!(
        check(&mut checker, Input::Tick, step(Vec::new(), Reply::Accepted, Vec::new())),
        Some("timer_not_fired")
    );
}

#[test]
fn checker_catches_a_timeout_that_passed_without_effect() {
    let mut checker = Checker::new(&config());
    let mut a = job(1, "s", 1, JobState::Running);
    a.timeout_ms = Some(10);
    a.started_at_ms = Some(NOW_MS - 10);
    seed(&mut checker, std::slice::from_ref(&a));
    assert_eq!(
        check(&mut checker, Input::Tick, step(Vec::new(), Reply::Accepted, Vec::new())),
        Some("timer_not_fired")
    );
}

#[test]
fn checker_catches_a_claim_that_returns_nothing_while_a_job_is_eligible() {
    let mut checker = Checker::new(&config());
    let a = job(1, "s", 1, JobState::Queued);
    seed(&mut checker, std::slice::from_ref(&a));
    let claim = Input::Claim { queue: None };
    assert_eq!(
        check(&mut checker, claim, step(Vec::new(), Reply::Claimed(None), Vec::new())),
        Some("claim_missed_eligible_job")
    );
}

#[test]
fn checker_catches_an_older_generation_left_waiting() {
    let mut checker = Checker::new(&config());
    let old = job(1, "s", 1, JobState::Queued);
    seed(&mut checker, std::slice::from_ref(&old));
    let new = job(2, "s", 2, JobState::Queued);
    let step = step(vec![Write::Insert(new.clone())], enqueued(&new), Vec::new());
    assert_eq!(check(&mut checker, Input::Tick, step), Some("older_generation_left_waiting"));
}

#[test]
fn checker_catches_a_stale_enqueue_that_may_run() {
    let mut checker = Checker::new(&config());
    let new = job(1, "s", 5, JobState::Queued);
    seed(&mut checker, std::slice::from_ref(&new));
    let stale = job(2, "s", 3, JobState::Queued);
    let step = step(vec![Write::Insert(stale.clone())], enqueued(&stale), Vec::new());
    assert_eq!(check(&mut checker, Input::Tick, step), Some("stale_enqueue_not_superseded"));
}

#[test]
fn checker_catches_a_refusal_that_wrote() {
    let mut checker = Checker::new(&config());
    let a = job(1, "s", 1, JobState::Queued);
    let reply = Reply::Rejected(semantica_core::Rejection::NotFound(JobId::from_u128(9)));
    assert_eq!(
        check(&mut checker, Input::Tick, step(vec![Write::Insert(a)], reply, Vec::new())),
        Some("rejected_but_written")
    );
}

#[test]
fn checker_catches_a_job_left_unfinished_by_the_liveness_phase() {
    let mut checker = Checker::new(&config());
    seed(&mut checker, &[job(1, "s", 1, JobState::Scheduled)]);
    assert_eq!(checker.check_quiescent().unwrap_err().invariant, "liveness");
}

#[test]
fn checker_catches_a_purge_of_an_active_job() {
    let mut checker = Checker::new(&config());
    let a = job(1, "s", 1, JobState::Queued);
    seed(&mut checker, std::slice::from_ref(&a));
    let purge = Input::Purge { finished_before_ms: NOW_MS, limit: 10 };
    let step = step(vec![Write::Delete { id: a.id, version: 1 }], Reply::Purged { job_ids: vec![a.id] }, Vec::new());
    assert_eq!(check(&mut checker, purge, step), Some("purged_active_job"));
}

fn pause(checker: &mut Checker, queue: &str, paused: bool) -> Option<&'static str> {
    let write = Write::QueuePaused { queue: queue.to_owned(), paused };
    let reply = Reply::QueuePaused { queue: queue.to_owned(), paused };
    check(checker, Input::PauseQueue { queue: queue.to_owned(), paused }, step(vec![write], reply, Vec::new()))
}

#[test]
fn checker_catches_a_start_in_a_paused_queue() {
    let mut checker = Checker::new(&config());
    let a = job(1, "s", 1, JobState::Queued);
    seed(&mut checker, std::slice::from_ref(&a));
    assert_eq!(pause(&mut checker, "default", true), None);
    let (input, claimed) = claim(&a);
    assert_eq!(check(&mut checker, input, claimed), Some("started_while_paused"));
}

#[test]
fn checker_allows_a_start_once_the_queue_is_resumed_and_nothing_while_paused() {
    let mut checker = Checker::new(&config());
    let a = job(1, "s", 1, JobState::Queued);
    seed(&mut checker, std::slice::from_ref(&a));
    assert_eq!(pause(&mut checker, "default", true), None);
    // A claim that finds nothing while the only job waits in a paused queue missed nothing.
    let nothing = step(Vec::new(), Reply::Claimed(None), Vec::new());
    assert_eq!(check(&mut checker, Input::Claim { queue: None }, nothing), None);
    assert_eq!(pause(&mut checker, "default", false), None);
    let (input, claimed) = claim(&a);
    assert_eq!(check(&mut checker, input, claimed), None);
}

#[test]
fn checker_catches_a_pause_the_store_does_not_hold() {
    let mut checker = Checker::new(&config());
    assert_eq!(pause(&mut checker, "io", true), None);
    assert_eq!(checker.check_store(&MemStore::new()).unwrap_err().invariant, "store_diverged");
}

const MINUTE_MS: u64 = 60_000;

fn recurring(next_at_ms: Option<u64>, last_slot_ms: Option<u64>, last: Option<JobId>) -> Recurring {
    Recurring {
        name: "nightly".to_owned(),
        cron: "* * * * *".to_owned(),
        timezone: "UTC".to_owned(),
        job: EnqueueRequest {
            job_type: Some("noop".to_owned()),
            subject_key: Some("cron".to_owned()),
            ..EnqueueRequest::default()
        },
        next_at_ms,
        last_slot_ms,
        last_enqueued_job_id: last,
    }
}

/// A checker that holds the recurring job "nightly", due at the minute before `NOW_MS`.
fn checker_with_due_recurring() -> (Checker, u64) {
    let mut checker = Checker::new(&config());
    let slot = NOW_MS / MINUTE_MS * MINUTE_MS;
    checker.assume_stored_recurring([recurring(Some(slot), None, None)]);
    (checker, slot)
}

/// A checker that knows one minutely recurring job whose next slot, the next minute,
/// has not come yet; and the minute before it.
fn checker_with_waiting_recurring() -> (Checker, u64) {
    let mut checker = Checker::new(&config());
    let slot = NOW_MS / MINUTE_MS * MINUTE_MS;
    checker.assume_stored_recurring([recurring(Some(slot + MINUTE_MS), None, None)]);
    (checker, slot)
}

/// The Tick that fires `slot`: enqueues job `n` of generation `generation` and moves the
/// recurring job to `next_at_ms`.
fn firing(n: u128, slot: u64, generation: u64, next_at_ms: Option<u64>) -> Step {
    let job = job(n, "cron", generation, JobState::Queued);
    let put = Write::PutRecurring(recurring(next_at_ms, Some(slot), Some(job.id)));
    let mut step = step(vec![Write::Insert(job), put], Reply::Accepted, Vec::new());
    step.wake_at_ms = next_at_ms;
    step
}

#[test]
fn checker_allows_a_slot_that_fires_once() {
    let (mut checker, slot) = checker_with_due_recurring();
    let fired = firing(1, slot, slot / 1000, Some(slot + MINUTE_MS));
    assert_eq!(check(&mut checker, Input::Tick, fired), None);
}

#[test]
fn checker_catches_a_slot_fired_twice() {
    let (mut checker, slot) = checker_with_due_recurring();
    // Fired, but left due: the next tick fires the same slot again.
    let fired = firing(1, slot, slot / 1000, Some(slot));
    assert_eq!(check(&mut checker, Input::Tick, fired), Some("recurring_slot_fired_twice"));
}

#[test]
fn checker_catches_a_slot_whose_job_has_another_generation() {
    let (mut checker, slot) = checker_with_due_recurring();
    let fired = firing(1, slot, 7, Some(slot + MINUTE_MS));
    assert_eq!(check(&mut checker, Input::Tick, fired), Some("recurring_slot_fired_twice"));
}

#[test]
fn checker_catches_a_slot_left_due_after_a_tick() {
    let (mut checker, _) = checker_with_due_recurring();
    let mut quiet = step(Vec::new(), Reply::Accepted, Vec::new());
    quiet.wake_at_ms = Some(NOW_MS + MINUTE_MS);
    assert_eq!(check(&mut checker, Input::Tick, quiet), Some("recurring_slot_missed"));
    let mut store = MemStore::new();
    let (_, slot) = checker_with_due_recurring();
    store.commit(&WriteSet { writes: vec![Write::PutRecurring(recurring(Some(slot), None, None))] }).unwrap();
    assert_eq!(checker.check_recurring_caught_up(&store, NOW_MS).unwrap_err().invariant, "recurring_slot_missed");
}

#[test]
fn checker_catches_a_retry_without_retry_of() {
    let mut checker = Checker::new(&config());
    let old = job(1, "s", 1, JobState::Failed);
    seed(&mut checker, std::slice::from_ref(&old));
    let mut new = job(2, "s", 2, JobState::Queued);
    let retry = || Input::Retry(Box::new(RetryRequest { job_id: Some(old.id), ..RetryRequest::default() }));
    let reply = |job: &Job| match enqueued(job) {
        Reply::Enqueued(enqueued) => Reply::Retried(vec![enqueued]),
        _ => unreachable!(),
    };
    let bad = step(vec![Write::Insert(new.clone())], reply(&new), Vec::new());
    assert_eq!(check(&mut checker.clone(), retry(), bad), Some("retry_wrong"));
    new.retry_of = Some(old.id);
    let good = step(vec![Write::Insert(new.clone())], reply(&new), Vec::new());
    assert_eq!(check(&mut checker, retry(), good), None);
}

/// The engine's acknowledgement of a wall-clock step that moved "nightly" to `next_at_ms`.
fn wall_clock_step(next_at_ms: Option<u64>, last_slot_ms: Option<u64>) -> Step {
    let put = Write::PutRecurring(recurring(next_at_ms, last_slot_ms, None));
    step(vec![put], Reply::Accepted, Vec::new())
}

fn check_at(checker: &mut Checker, now_ms: u64, input: Input, step: Step) -> Option<&'static str> {
    let observation =
        Observation { now_ms, input: &input, step: &step, system: SystemState::UNKNOWN, acknowledged: true };
    checker.observe(&observation).err().map(|violation| violation.invariant)
}

#[test]
fn checker_catches_a_slot_fired_on_engine_time_instead_of_the_wall_clock() {
    for (fired_slot, invariant) in [(0, Some("recurring_slot_off_wall_clock")), (60 * MINUTE_MS, None)] {
        let (mut checker, slot) = checker_with_waiting_recurring();
        // The wall clock is an hour ahead; the next slot comes at the next minute.
        let stepped = wall_clock_step(Some(slot + MINUTE_MS), None);
        assert_eq!(check(&mut checker, Input::WallClock { offset_ms: 3_600_000 }, stepped), None);
        // Then the engine must fire the wall clock's latest slot, an hour after engine time's.
        let now_ms = slot + MINUTE_MS;
        let fired_slot = now_ms + fired_slot;
        let fired = firing(1, fired_slot, fired_slot / 1000, Some(slot + 2 * MINUTE_MS));
        assert_eq!(check_at(&mut checker, now_ms, Input::Tick, fired), invariant);
    }
}

#[test]
fn checker_catches_a_wall_clock_step_that_leaves_a_next_slot_where_it_was() {
    let (mut checker, slot) = checker_with_waiting_recurring();
    // Stepped forward 30 s, the next minute comes 30 s sooner in engine time; left where
    // it was, the next slot is off the wall clock.
    let stepped = wall_clock_step(Some(slot + MINUTE_MS), None);
    assert_eq!(
        check(&mut checker, Input::WallClock { offset_ms: 30_000 }, stepped),
        Some("recurring_slot_off_wall_clock")
    );
}

/// A slot that is due when the offset changes stays due (the next tick fires the latest
/// slot on the new wall clock): moving it on is a missed slot.
#[test]
fn checker_keeps_a_due_slot_due_across_a_wall_clock_step() {
    let (mut checker, slot) = checker_with_due_recurring();
    let kept = wall_clock_step(Some(slot), None);
    assert_eq!(check(&mut checker, Input::WallClock { offset_ms: 3_600_000 }, kept), None);
    let (mut checker, slot) = checker_with_due_recurring();
    let moved_on = wall_clock_step(Some(slot + MINUTE_MS), None);
    assert_eq!(check(&mut checker, Input::WallClock { offset_ms: 3_600_000 }, moved_on), Some("recurring_slot_missed"));
}

#[test]
fn checker_catches_a_slot_fired_again_after_the_wall_clock_stepped_back() {
    let (mut checker, slot) = checker_with_due_recurring();
    let fired = firing(1, slot, slot / 1000, Some(slot + MINUTE_MS));
    assert_eq!(check(&mut checker, Input::Tick, fired), None);
    // Back ten minutes: the next slot stays after the one fired, ten minutes further off.
    let stepped = wall_clock_step(Some(slot + 11 * MINUTE_MS), Some(slot));
    assert_eq!(check(&mut checker, Input::WallClock { offset_ms: -600_000 }, stepped), None);
    // An engine that fires the wall clock's latest slot again anyway.
    let again = firing(2, slot, slot / 1000, Some(slot + 11 * MINUTE_MS));
    assert_eq!(check(&mut checker, Input::Tick, again), Some("recurring_slot_fired_twice"));
}

#[test]
fn checker_catches_a_wall_clock_step_that_moves_a_job() {
    let mut checker = Checker::new(&config());
    let a = job(1, "s", 1, JobState::Scheduled);
    seed(&mut checker, std::slice::from_ref(&a));
    let mut moved_sooner = moved(&a, JobState::Queued);
    moved_sooner.due_at_ms = NOW_MS - 3_600_000;
    let stepped = step(vec![Write::Update(moved_sooner)], Reply::Accepted, Vec::new());
    assert_eq!(
        check(&mut checker, Input::WallClock { offset_ms: 3_600_000 }, stepped),
        Some("timer_moved_by_wall_clock")
    );
}

#[test]
fn checker_catches_a_start_before_the_job_is_due() {
    let mut checker = Checker::new(&config());
    let mut a = job(1, "s", 1, JobState::Queued);
    a.due_at_ms = NOW_MS + 1;
    seed(&mut checker, std::slice::from_ref(&a));
    let (input, step) = claim(&a);
    assert_eq!(check(&mut checker, input, step), Some("started_before_due"));
}
