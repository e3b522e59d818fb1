//! A driver for the engine in tests: the reference store, a fake executor that remembers
//! what runs, a test clock, and a checker that judges every step against the rules of
//! API.md without reusing the engine's own code.

#![allow(dead_code)] // each test file uses its own part of the harness

use std::collections::{BTreeMap, BTreeSet};

use semantica_core::{
    Action, Config, Engine, EnqueueRequest, Enqueued, ErrorKind, Input, Job, JobId, JobState, MemStore, Outcome, Reply,
    Report, SeededIds, SplitMix64, Step, Store, SystemState,
};

pub const START_MS: u64 = 1_700_000_000_000;

/// What a test sees of a step the world has already committed and acted on.
#[derive(Clone, Debug)]
pub struct Seen {
    pub reply: Reply,
    pub wake_at_ms: Option<u64>,
}

/// An attempt the fake executor was asked to run and has not reported finished.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Run {
    pub job_id: JobId,
    pub attempt: u32,
    pub killed: bool,
}

pub struct World {
    pub engine: Engine,
    pub store: MemStore,
    pub now_ms: u64,
    pub seed: u64,
    restarts: u64,
    /// In-flight attempts, as the executor sees them.
    pub runs: BTreeSet<Run>,
    /// The first terminal state each job reached.
    pub first_terminal: BTreeMap<JobId, JobState>,
    /// Every job id ever acknowledged, with the state acknowledged.
    pub acknowledged: BTreeMap<JobId, JobState>,
    pub next_pid: u32,
    pub steps: u64,
    /// Last report sent, to replay duplicates.
    pub last_report: Option<Report>,
    /// The system state the engine last knew, restored after a restart.
    engine_system: SystemState,
}

pub fn config() -> Config {
    let mut config = Config::new(3, ["noop", "work"]);
    config.instant_job_types.insert("noop".into());
    config.queue_concurrency.insert("serial".into(), 1);
    config
}

pub fn request(subject: &str) -> EnqueueRequest {
    EnqueueRequest {
        job_type: Some("work".into()),
        queue: Some("default".into()),
        subject_key: Some(subject.into()),
        ..EnqueueRequest::default()
    }
}

impl World {
    pub fn new(config: Config, seed: u64) -> World {
        let engine = Engine::new(config, Box::new(SeededIds::new(seed)), Box::new(SplitMix64::new(seed)));
        let mut world = World {
            engine,
            store: MemStore::new(),
            now_ms: START_MS,
            seed,
            restarts: 0,
            runs: BTreeSet::new(),
            first_terminal: BTreeMap::new(),
            acknowledged: BTreeMap::new(),
            next_pid: 100,
            steps: 0,
            last_report: None,
            engine_system: SystemState::UNKNOWN,
        };
        world.step(Input::Recover);
        world
    }

    /// Runs one input through the engine, commits it, lets the fake executor take the
    /// actions, and checks every rule against the store before and after.
    pub fn step(&mut self, input: Input) -> Seen {
        let before = self.store.clone();
        let system = self.engine.system();
        let step =
            self.engine.run(self.now_ms, input.clone(), &mut self.store).expect("the reference store never fails");
        self.steps += 1;
        check_step(self, &before, system, &input, &step);
        for action in &step.actions {
            match action {
                Action::Spawn(job) => {
                    self.runs.insert(Run { job_id: job.id, attempt: job.attempts, killed: false });
                }
                Action::Kill(order) => {
                    let found = self
                        .runs
                        .iter()
                        .find(|run| run.job_id == order.job_id && run.attempt == order.attempt)
                        .cloned();
                    if let Some(mut run) = found {
                        self.runs.remove(&run);
                        run.killed = true;
                        self.runs.insert(run);
                    }
                }
            }
        }
        self.note_acks(&step);
        Seen { reply: step.reply, wake_at_ms: step.wake_at_ms }
    }

    fn note_acks(&mut self, step: &Step) {
        let acked: Vec<&Enqueued> = match &step.reply {
            Reply::Enqueued(one) => vec![one],
            Reply::EnqueuedBatch(all) => all.iter().collect(),
            _ => Vec::new(),
        };
        for enqueued in acked {
            self.acknowledged.entry(enqueued.job_id).or_insert(enqueued.state);
        }
    }

    pub fn job(&self, id: JobId) -> Job {
        self.store.get(id).unwrap().expect("job exists")
    }

    pub fn enqueue(&mut self, request: EnqueueRequest) -> Reply {
        self.step(Input::Enqueue(Box::new(request))).reply
    }

    pub fn enqueue_ok(&mut self, request: EnqueueRequest) -> Enqueued {
        match self.enqueue(request) {
            Reply::Enqueued(enqueued) => enqueued,
            other => panic!("enqueue refused: {other:?}"),
        }
    }

    pub fn claim(&mut self) -> Option<Job> {
        match self.step(Input::Claim { queue: None }).reply {
            Reply::Claimed(job) => job.map(|job| *job),
            other => panic!("claim answered {other:?}"),
        }
    }

    pub fn report(&mut self, report: Report) -> Reply {
        if let Report::Finished { job_id, attempt, .. } = &report {
            let run = self.runs.iter().find(|run| run.job_id == *job_id && run.attempt == *attempt).cloned();
            if let Some(run) = run {
                self.runs.remove(&run);
            }
        }
        self.last_report = Some(report.clone());
        self.step(Input::Report(report)).reply
    }

    /// Several reports in one `ReportBatch` step; the replies in order.
    pub fn report_batch(&mut self, reports: Vec<Report>) -> Vec<Reply> {
        for report in &reports {
            if let Report::Finished { job_id, attempt, .. } = report {
                let run = self.runs.iter().find(|run| run.job_id == *job_id && run.attempt == *attempt).cloned();
                if let Some(run) = run {
                    self.runs.remove(&run);
                }
            }
        }
        self.last_report = reports.last().cloned();
        match self.step(Input::ReportBatch(reports)).reply {
            Reply::ReportedBatch(replies) => replies,
            other => panic!("a report batch answered {other:?}"),
        }
    }

    pub fn finish(&mut self, job_id: JobId, outcome: Outcome) -> Reply {
        let attempt = self.job(job_id).attempts;
        self.report(Report::Finished { job_id, attempt, outcome })
    }

    pub fn succeed(&mut self, job_id: JobId) -> Reply {
        self.finish(job_id, Outcome::Succeeded { exit_code: Some(0), result_summary_json: None, artifacts: vec![] })
    }

    pub fn fail(&mut self, job_id: JobId) -> Reply {
        self.finish(job_id, Outcome::Failed { kind: ErrorKind::ExitCode, exit_code: Some(1), message: "exit 1".into() })
    }

    pub fn started(&mut self, job_id: JobId) -> Reply {
        let attempt = self.job(job_id).attempts;
        self.next_pid += 1;
        let pid = self.next_pid;
        self.report(Report::Started { job_id, attempt, pid: Some(pid), pid_started_at: Some(u64::from(pid) * 7) })
    }

    /// Lets `ms` pass and ticks once (a tick handles far more jobs than tests make).
    pub fn advance(&mut self, ms: u64) -> Seen {
        self.now_ms += ms;
        self.step(Input::Tick)
    }

    /// A crash: the engine and the executor's memory are gone; the store keeps what was
    /// committed. The new engine recovers first.
    pub fn restart(&mut self) -> Seen {
        self.restarts += 1;
        let seed = self.seed ^ self.restarts.wrapping_mul(0x9E37_79B9);
        let config = self.engine.config().clone();
        self.engine_system = self.engine.system();
        self.engine = Engine::new(config, Box::new(SeededIds::new(seed)), Box::new(SplitMix64::new(seed)));
        self.runs.clear();
        let system = self.engine_system;
        let seen = self.step(Input::Recover);
        // As the daemon does: a fresh probe sample right after recovery.
        self.step(Input::SystemChanged(system));
        seen
    }

    pub fn jobs(&self) -> Vec<Job> {
        let mut jobs: Vec<Job> = self.store.jobs().cloned().collect();
        jobs.sort_by_key(|job| job.seq);
        jobs
    }
}

fn ready(system: SystemState, now_ms: u64, job: &Job) -> bool {
    job.due_at_ms <= now_ms
        && !job.parent_pending
        && (job.conditions.wait_for_event.is_none() || job.event_released)
        && (!job.conditions.wait_for_idle || system.is_idle)
        && (!job.conditions.require_charging || system.is_charging)
}

fn expired(now_ms: u64, job: &Job) -> bool {
    job.deadline_ms.is_some_and(|d| d <= now_ms) || job.ttl_ms.is_some_and(|ttl| job.due_at_ms + ttl <= now_ms)
}

fn occupied_subjects(store: &MemStore) -> BTreeMap<String, usize> {
    let mut occupied = BTreeMap::new();
    for job in store.jobs().filter(|job| job.occupies_subject()) {
        *occupied.entry(job.subject_key.clone()).or_insert(0) += 1;
    }
    occupied
}

fn max_generations(store: &MemStore) -> BTreeMap<String, u64> {
    let mut max = BTreeMap::new();
    for job in store.jobs() {
        let entry = max.entry(job.subject_key.clone()).or_insert(job.generation);
        *entry = (*entry).max(job.generation);
    }
    max
}

/// The rules of API.md, judged from the outside after every step.
fn check_step(world: &mut World, before: &MemStore, system: SystemState, input: &Input, step: &Step) {
    let now_ms = world.now_ms;
    let after = &world.store;
    let config = world.engine.config().clone();
    let context = || format!("seed {} step {} input {input:?}", world.seed, world.steps);

    // A refusal writes nothing.
    if matches!(step.reply, Reply::Rejected(_)) {
        assert!(step.persist.is_empty() && step.actions.is_empty(), "a rejected input wrote: {}", context());
    }

    for job in before.jobs() {
        let now = after.get(job.id).unwrap();
        // Terminal states never change (purge aside).
        if job.state.is_terminal() {
            if let Some(now) = &now {
                assert_eq!(now.state, job.state, "terminal state changed: {}", context());
                assert_eq!(now.finished_at_ms, job.finished_at_ms, "terminal outcome changed: {}", context());
            } else {
                assert!(matches!(input, Input::Purge { .. }), "job {} vanished: {}", job.id, context());
            }
        } else {
            assert!(now.is_some(), "a live job vanished: {}", context());
        }
    }
    for job in after.jobs() {
        if job.state.is_terminal() {
            let first = world.first_terminal.entry(job.id).or_insert(job.state);
            assert_eq!(*first, job.state, "job {} left its first terminal state: {}", job.id, context());
            assert!(job.finished_at_ms.is_some());
            assert_eq!(job.wake_at_ms, None);
        }
        // Attempts never exceed max_attempts.
        assert!(job.attempts <= job.max_attempts, "job {} ran {} attempts: {}", job.id, job.attempts, context());
        // A cancelled job never becomes DONE: covered by the first-terminal rule; a job
        // marked cancelled by error kind must be CANCELLED.
        if job.error.as_ref().is_some_and(|e| e.kind == ErrorKind::Cancelled) && job.state.is_terminal() {
            assert_eq!(job.state, JobState::Cancelled, "{}", context());
        }
    }

    // A job the step made QUEUED (enqueued ready, released, due) asks for a claim, so
    // that the daemon's scheduler tries to start it now rather than at its next tick.
    for job in step.written().filter(|job| job.state == JobState::Queued) {
        let was_queued = before.get(job.id).unwrap().is_some_and(|before| before.state == JobState::Queued);
        assert!(was_queued || step.may_claim, "job {} became QUEUED without may_claim: {}", job.id, context());
    }

    // Guarantee 6: one process per subject.
    for (subject, count) in occupied_subjects(after) {
        assert!(count <= 1, "subject {subject} has {count} live processes: {}", context());
    }
    // Concurrency limits, judged where a job starts: a limit lowered at run time
    // (`Engine::reconfigure`) stops nothing that runs, so more may run than it allows
    // until enough end. A process being stopped (reap_pending) still holds its slot.
    let started: BTreeSet<&str> = step
        .actions
        .iter()
        .filter_map(|action| match action {
            Action::Spawn(job) => Some(job.queue.as_str()),
            _ => None,
        })
        .collect();
    let running: Vec<&Job> = after.jobs().filter(|job| job.occupies_subject()).collect();
    assert!(
        started.is_empty() || running.len() <= config.workers,
        "{} running over {} workers: {}",
        running.len(),
        config.workers,
        context()
    );
    for (queue, limit) in config.queue_concurrency.iter().filter(|(queue, _)| started.contains(queue.as_str())) {
        let count = running.iter().filter(|job| &job.queue == queue).count();
        assert!(count <= *limit, "queue {queue}: {count} running over its limit {limit}: {}", context());
    }
    // Guarantees 2 and 3: a waiting job always holds its subject's highest generation.
    let max_generation = max_generations(after);
    for job in after.jobs().filter(|job| job.state.is_waiting()) {
        assert_eq!(
            job.generation,
            max_generation[&job.subject_key],
            "job {} waits below a newer generation: {}",
            job.id,
            context()
        );
    }
    // Parent chains: a child waits while its parent has not ended, and follows its end.
    for job in after.jobs() {
        let Some(parent_id) = job.parent_job_id else { continue };
        let Some(parent) = after.get(parent_id).unwrap() else { continue };
        if job.state.is_waiting() {
            assert_eq!(
                job.parent_pending,
                parent.state != JobState::Done,
                "child {} out of step with its parent: {}",
                job.id,
                context()
            );
            assert!(
                !parent.state.is_terminal() || parent.state == JobState::Done,
                "child {} waits on a failed parent: {}",
                job.id,
                context()
            );
        }
        if job.state == JobState::Running || job.started_at_ms.is_some() {
            assert_eq!(
                parent.state,
                JobState::Done,
                "child {} started before its parent was DONE: {}",
                job.id,
                context()
            );
        }
    }
    // QUEUED means ready; SCHEDULED means not (once a tick or a change looked at it).
    for job in after.jobs().filter(|job| job.state == JobState::Queued) {
        if step.written().any(|written| written.id == job.id) {
            assert!(ready(world.engine.system(), now_ms, job), "job {} queued while not ready: {}", job.id, context());
        }
    }
    if matches!(input, Input::Tick) && step.wake_at_ms.is_none_or(|wake| wake > now_ms) {
        // After a complete tick nothing due by time alone is left behind.
        for job in after.jobs().filter(|job| !job.state.is_terminal()) {
            assert!(
                job.wake_at_ms.is_none_or(|wake| wake > now_ms),
                "job {} left due after a tick: {}",
                job.id,
                context()
            );
            if job.state.is_waiting() {
                assert!(!expired(now_ms, job), "job {} outlived its TTL or deadline: {}", job.id, context());
            }
            if job.state == JobState::Scheduled && job.due_at_ms <= now_ms {
                assert!(
                    !ready(world.engine.system(), now_ms, job),
                    "job {} due and ready but still SCHEDULED: {} {job:?}",
                    job.id,
                    context()
                );
            }
        }
    }

    // A batched claim starts several: each is judged as the claim after the ones before it.
    // The reply lists them in order; an instant job among them ended in the same step, and
    // only the others are spawned.
    let claimed: Vec<&Job> = match &step.reply {
        Reply::Claimed(job) => job.iter().map(|job| &**job).collect(),
        Reply::ClaimedBatch(claimed) => claimed.iter().collect(),
        _ => Vec::new(),
    };
    let spawned: Vec<JobId> = step
        .actions
        .iter()
        .filter_map(|action| match action {
            Action::Spawn(job) => Some(job.id),
            _ => None,
        })
        .collect();
    let instant = |job: &Job| job.exec.is_none() && config.instant_job_types.contains(&job.job_type);
    let not_instant: Vec<JobId> = claimed.iter().filter(|job| !instant(job)).map(|job| job.id).collect();
    assert_eq!(spawned, not_instant, "a claim spawns every job it started but the instant ones: {}", context());
    // What observers (metrics, traces) take for an instant run is exactly that.
    let ran_instantly: Vec<JobId> = step
        .written()
        .zip(&step.written_from)
        .filter(|(job, from)| Step::ran_instantly(job, **from))
        .map(|(job, _)| job.id)
        .collect();
    let instant_claims: Vec<JobId> = claimed.iter().filter(|job| instant(job)).map(|job| job.id).collect();
    assert_eq!(
        ran_instantly.iter().collect::<BTreeSet<_>>(),
        instant_claims.iter().collect::<BTreeSet<_>>(),
        "the instant runs observers see: {}",
        context()
    );
    let mut earlier: Vec<Job> = Vec::new();
    for job in claimed {
        if instant(job) {
            // Started and ended as a success at once: one attempt more, and no process.
            let was = before.get(job.id).unwrap().expect("a started job existed");
            let stored = after.get(job.id).unwrap().expect("an instant job is kept");
            // The reply carries the version the claim read, as for a job that runs.
            assert_eq!(
                Job { version: job.version, ..stored },
                *job,
                "the reply shows the instant job as stored: {}",
                context()
            );
            assert_eq!(job.state, JobState::Done, "instant job {} did not succeed: {}", job.id, context());
            assert_eq!(job.attempts, was.attempts + 1, "instant job {}: {}", job.id, context());
            assert_eq!((job.started_at_ms, job.finished_at_ms), (Some(now_ms), Some(now_ms)), "{}", context());
            assert!(job.pid.is_none() && job.error.is_none() && !job.reap_pending, "{}", context());
        } else {
            assert_eq!(job.state, JobState::Running, "claimed job {} is not running: {}", job.id, context());
        }
        check_start(before, system, now_ms, job, &earlier, &config, &context());
        earlier.push(job.clone());
    }
    // A claim that found nothing while something could start is a lost wake-up.
    let found_nothing = match (input, &step.reply) {
        (Input::Claim { queue: None }, Reply::Claimed(None)) => true,
        (Input::ClaimBatch { queue: None, .. }, Reply::ClaimedBatch(claimed)) => claimed.is_empty(),
        _ => false,
    };
    if found_nothing && step.persist.is_empty() {
        let running = before.jobs().filter(|job| job.occupies_subject()).count();
        if running < config.workers {
            let occupied = occupied_subjects(before);
            let throttled = throttle_floor(&config, system);
            let paused = before.paused_queues().unwrap();
            let startable = before.jobs().find(|job| {
                job.state == JobState::Queued
                    && !paused.contains(&job.queue)
                    && !occupied.contains_key(&job.subject_key)
                    && throttled.is_none_or(|floor| job.priority >= floor)
                    && ready(system, now_ms, job)
                    && !expired(now_ms, job)
                    && before.jobs().filter(|r| r.occupies_subject() && r.queue == job.queue).count()
                        < config.queue_concurrency.get(&job.queue).copied().unwrap_or(config.workers)
            });
            assert!(
                startable.is_none(),
                "claim found nothing but {:?} could start: {}",
                startable.map(|j| j.id),
                context()
            );
        }
    }
}

fn throttle_floor(config: &Config, system: SystemState) -> Option<i32> {
    config.throttle.filter(|t| system.cpu_load_percent > t.cpu_limit_percent).map(|t| t.priority_floor)
}

fn check_start(
    before: &MemStore,
    system: SystemState,
    now_ms: u64,
    job: &Job,
    earlier: &[Job],
    config: &Config,
    context: &str,
) {
    // An instant job that started earlier in the step has ended too, as a success: its
    // waiting children are released for the claims after it, and its subject is free.
    let as_seen = |j: &Job| {
        let mut j = j.clone();
        let parent_done = |e: &Job| Some(e.id) == j.parent_job_id && e.state == JobState::Done;
        if j.parent_pending && j.state.is_waiting() && earlier.iter().any(parent_done) {
            j.parent_pending = false;
            if ready(system, now_ms, &j) && !expired(now_ms, &j) {
                j.state = JobState::Queued;
            }
        }
        j
    };
    let was = as_seen(&before.get(job.id).unwrap().expect("a started job existed"));
    let started_earlier = |j: &Job| earlier.iter().any(|e| e.id == j.id);
    let subject_taken_earlier =
        |subject: &str| earlier.iter().any(|e| e.subject_key == subject && e.state == JobState::Running);
    assert!(!started_earlier(&was), "job {} started twice in one step: {context}", job.id);
    assert!(!subject_taken_earlier(&was.subject_key), "job {} started beside its subject: {context}", job.id);
    assert_eq!(was.state, JobState::Queued, "job {} started from {}: {context}", job.id, was.state);
    // A paused queue starts nothing, whatever the engine remembers (the store says).
    assert!(
        !before.paused_queues().unwrap().contains(&was.queue),
        "job {} started in paused queue {}: {context}",
        job.id,
        was.queue
    );
    // Schedules, conditions, parents.
    assert!(ready(system, now_ms, &was), "job {} started before it was ready: {context}", job.id);
    // TTL and deadline.
    assert!(!expired(now_ms, &was), "job {} started after its TTL or deadline: {context}", job.id);
    // Guarantee 5.
    let max = before.jobs().filter(|j| j.subject_key == was.subject_key).map(|j| j.generation).max().unwrap();
    assert_eq!(was.generation, max, "job {} started under a newer generation: {context}", job.id);
    // Guarantee 6.
    assert!(
        !occupied_subjects(before).contains_key(&was.subject_key),
        "job {} started while its subject ran: {context}",
        job.id
    );
    // Throttle floor.
    if let Some(floor) = throttle_floor(config, system) {
        assert!(was.priority >= floor, "job {} (priority {}) started while throttled: {context}", job.id, was.priority);
    }
    // Guarantee 1: the first eligible job of its queue in (priority desc, seq) order.
    let occupied = occupied_subjects(before);
    let floor = throttle_floor(config, system);
    let seen: Vec<Job> = before.jobs().map(as_seen).collect();
    let best = seen
        .iter()
        .filter(|j| {
            j.state == JobState::Queued
                && j.queue == was.queue
                && !started_earlier(j)
                && !subject_taken_earlier(&j.subject_key)
                && !occupied.contains_key(&j.subject_key)
                && floor.is_none_or(|f| j.priority >= f)
                && ready(system, now_ms, j)
                && !expired(now_ms, j)
        })
        .min_by_key(|j| (std::cmp::Reverse(j.priority), j.seq))
        .expect("the started job itself is eligible");
    assert_eq!(
        best.id, was.id,
        "pop order: started {} (p{} seq{}) before {} (p{} seq{}): {context}",
        was.id, was.priority, was.seq, best.id, best.priority, best.seq
    );
}
