//! The engine: every rule of the job queue, as one deterministic state machine.
//!
//! [`Engine::handle`] takes the time, one [`Input`] and a read-only [`Store`], and answers
//! with a [`Step`]: the writes to commit, the reply, the processes to start or stop, and
//! when to be woken next. It performs no I/O and reads no clock; the same inputs over the
//! same store give the same step, byte for byte.
//!
//! The order a driver must follow (see [`Engine::run`]): commit `step.persist` as one
//! unit; only if that succeeded, carry out `step.actions` in order and deliver
//! `step.reply`. A failed commit means the step never happened: the caller gets a store
//! error and nothing was acknowledged.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::backoff;
use crate::cron::{Schedule as CronSchedule, ScheduleError};
use crate::id::JobId;
use crate::job::{Artifact, ErrorKind, Job, JobError, JobState};
use crate::limits;
use crate::ports::{IdGen, KillOrder, Rng, SystemState};
use crate::request::{
    valid_queue, valid_recurring_name, EnqueueRequest, Schedule, ValidEnqueue, ValidationError, ValidationKind,
};
use crate::store::{JobQuery, Recurring, Store, StoreResult, WriteSet};
use crate::tx::Tx;

/// What the engine is told. One closed set: everything that can change a job comes in
/// through here.
#[derive(Clone, PartialEq, Debug)]
pub enum Input {
    /// Restart recovery. Must be the first input of every engine instance; the driver
    /// follows it with `SystemChanged` from a fresh probe sample, since a new engine knows
    /// nothing of the machine yet.
    Recover,
    Enqueue(Box<EnqueueRequest>),
    /// All or nothing: one invalid job refuses the batch.
    EnqueueBatch(Vec<EnqueueRequest>),
    Cancel(CancelRequest),
    /// Start the next job of `queue`, or of any queue (fairly, round-robin) when `None`.
    Claim {
        queue: Option<String>,
    },
    /// Up to `max` claims in one step (1..=`limits::CLAIM_BATCH_MAX`): starts exactly the
    /// jobs that `max` `Claim`s one after another would, in the same order, and stops at
    /// the first that would start nothing.
    ClaimBatch {
        queue: Option<String>,
        max: usize,
    },
    Report(Report),
    /// Several executor reports in one step (1..=`limits::REPORT_BATCH_MAX`): each is
    /// decided exactly as a `Report` of its own would be after the ones before it.
    ReportBatch(Vec<Report>),
    /// Time has passed: schedules, back-offs, TTLs, deadlines and timeouts that are due.
    Tick,
    /// Releases up to `limits::EVENT_ROUND_JOBS_MAX` jobs waiting for the event `name`;
    /// a reply of exactly that many means more may wait: send it again.
    Event {
        name: String,
    },
    SystemChanged(SystemState),
    /// Remove finished jobs (retention).
    Purge {
        finished_before_ms: u64,
        limit: usize,
    },
    /// Pause (`paused: true`) or resume a queue: a paused queue starts nothing.
    PauseQueue {
        queue: String,
        paused: bool,
    },
    /// `dev.retry.v1`: enqueue ended jobs again as the next generation of their subject.
    Retry(Box<RetryRequest>),
    /// `dev.recurring.set.v1`: create or replace a recurring job.
    SetRecurring(Box<RecurringRequest>),
    DeleteRecurring {
        name: String,
    },
    /// The wall clock is `offset_ms` ahead of `now_ms` (negative: behind). `now_ms` counts
    /// the time that really elapsed; recurring slots follow the wall clock, so a change of
    /// the offset (a stepped wall clock) moves every recurring job's next slot. The driver
    /// sends it after `Recover` and whenever the offset changes; until then it is 0.
    WallClock {
        offset_ms: i64,
    },
    /// The daemon `node` lost its lease (several engines on one store; the driver may
    /// send its own node once it has stopped every process of it): each of its
    /// attempts that still holds a worker is over. A `RUNNING` one is a failed attempt
    /// (`node_lost`) and the retry policy decides what follows; a `reap_pending` one frees
    /// its subject (the node's processes are its own business). Up to
    /// `limits::NODE_LOST_ROUND_JOBS_MAX` jobs a step; `more` in the reply: send it again.
    NodeLost {
        node: String,
    },
}

/// `dev.retry.v1`: one job by id, or up to `limit` jobs that match `filter` (its
/// `limit`, `after_seq` and `bytes_max` are ignored; only retryable states count).
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct RetryRequest {
    pub job_id: Option<JobId>,
    pub filter: Option<JobQuery>,
    /// 1..=`limits::RETRY_JOBS_MAX`; `None` = `limits::RETRY_JOBS_DEFAULT`.
    pub limit: Option<i64>,
}

/// `dev.recurring.set.v1`.
#[derive(Clone, PartialEq, Debug, Default)]
pub struct RecurringRequest {
    pub name: String,
    pub cron: String,
    /// `None` = `UTC`.
    pub timezone: Option<String>,
    pub job: EnqueueRequest,
}

/// `dev.cancel.v1`: every given selector must match.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct CancelRequest {
    pub job_id: Option<JobId>,
    pub tag: Option<String>,
    pub chain_group_id: Option<String>,
}

/// An executor's word about one attempt of a job.
#[derive(Clone, PartialEq, Debug)]
pub enum Report {
    Started { job_id: JobId, attempt: u32, pid: Option<u32>, pid_started_at: Option<u64> },
    Finished { job_id: JobId, attempt: u32, outcome: Outcome },
}

/// How an attempt ended, as the executor saw it.
#[derive(Clone, PartialEq, Debug)]
pub enum Outcome {
    Succeeded {
        exit_code: Option<i32>,
        result_summary_json: Option<String>,
        artifacts: Vec<Artifact>,
    },
    /// `kind` is one of `exit_code`, `signal`, `handler_error`, `spawn_failed`.
    Failed {
        kind: ErrorKind,
        exit_code: Option<i32>,
        message: String,
    },
    /// The executor enforced the timeout itself.
    TimedOut,
}

/// Work for the executor, to be carried out after the step's writes are committed.
#[derive(Clone, PartialEq, Debug)]
pub enum Action {
    Spawn(Box<Job>),
    Kill(KillOrder),
}

/// The outcome of one enqueue.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Enqueued {
    pub job_id: JobId,
    pub queue: String,
    pub state: JobState,
    pub generation: u64,
    pub deduplicated: bool,
}

/// A refusal: nothing was written.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Rejection {
    /// Code 4000.
    Validation(ValidationError),
    /// Code 4001.
    NotFound(JobId),
    /// Code 4002: the job's state does not allow it.
    Conflict { job_id: JobId, state: JobState },
}

#[derive(Clone, PartialEq, Debug)]
pub enum Reply {
    Enqueued(Enqueued),
    EnqueuedBatch(Vec<Enqueued>),
    /// `more`: the step ended `CANCEL_ROUND_JOBS_MAX` matching jobs, and more may match.
    Cancelled {
        count: usize,
        more: bool,
    },
    Claimed(Option<Box<Job>>),
    /// The jobs a `ClaimBatch` started, in the order they were claimed.
    ClaimedBatch(Vec<Job>),
    /// One reply per report of a `ReportBatch` (`Accepted` or `Ignored`), in order.
    ReportedBatch(Vec<Reply>),
    Released {
        count: usize,
    },
    Recovered {
        failed_attempts: usize,
        processes_killed: usize,
    },
    /// `more`: the round was full and the node may hold more jobs.
    NodeLost {
        failed_attempts: usize,
        more: bool,
    },
    Purged {
        job_ids: Vec<JobId>,
    },
    QueuePaused {
        queue: String,
        paused: bool,
    },
    /// One result per retried job, in enqueue order of the old jobs.
    Retried(Vec<Enqueued>),
    RecurringSet {
        name: String,
        next_at_ms: Option<u64>,
    },
    RecurringDeleted {
        deleted: bool,
    },
    /// Taken into account (reports, ticks, system changes).
    Accepted,
    /// A report about an attempt that is no longer current, or a second report about one:
    /// the job is not changed (the first transition to a terminal state wins).
    Ignored,
    Rejected(Rejection),
}

/// What one input leads to.
#[must_use = "a step's writes must be committed and its actions carried out"]
#[derive(Clone, PartialEq, Debug)]
pub struct Step {
    pub persist: WriteSet,
    pub reply: Reply,
    pub actions: Vec<Action>,
    /// Call `Tick` at this time. After `Tick` and `Recover` it is the store's earliest
    /// wake-up; after other inputs, the earliest of the jobs this step wrote.
    pub wake_at_ms: Option<u64>,
    /// A job became eligible or a slot or subject was freed: a claim may now succeed.
    pub may_claim: bool,
    /// For each job of [`Step::written`], in the same order, its state before this step
    /// (`None`: the step inserted it), so that observers (metrics) see transitions, not
    /// only states.
    pub written_from: Vec<Option<JobState>>,
    /// The engine's memory once this step is committed (see [`Engine::committed`]).
    pub memory: Memory,
}

impl Step {
    /// Every job as this step writes it (its inserts and updates, in write order), for
    /// observers: logs, metrics, the simulator's checker. One per entry of `written_from`.
    pub fn written(&self) -> impl Iterator<Item = &Job> + '_ {
        self.persist.jobs()
    }

    /// Whether `job`, written by a step from state `from` (its entry of `written_from`),
    /// ran its whole attempt within the step: only the claim of an instant job moves a
    /// waiting job straight to `DONE`.
    pub fn ran_instantly(job: &Job, from: Option<JobState>) -> bool {
        job.state == JobState::Done && from.is_some_and(JobState::is_waiting)
    }
}

/// `format!("{value:032x}")` without the formatting machinery, for the trace id of each
/// enqueue: `format!` cost about 3% of the writer's instructions on a batch.
fn hex_32(value: u128) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let digits: Vec<u8> = (0..32).rev().map(|nibble| DIGITS[(value >> (4 * nibble)) as usize & 0xf]).collect();
    String::from_utf8(digits).expect("hex digits are ASCII")
}

/// Start a job only while the CPU is not over `cpu_limit_percent`, unless its priority
/// is at least `priority_floor`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Throttle {
    pub cpu_limit_percent: u32,
    pub priority_floor: i32,
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Config {
    /// Jobs running at once over all queues.
    pub workers: usize,
    /// Jobs running at once in a queue; queues not named here are limited by `workers`.
    pub queue_concurrency: BTreeMap<String, usize>,
    pub throttle: Option<Throttle>,
    /// In-process job types; a job without `exec` must name one.
    pub job_types: BTreeSet<String>,
    /// In-process job types (some of `job_types`) whose handler does nothing outside the
    /// engine and succeeds at once (`noop`). A claim starts and ends such a job in one
    /// step: it holds its worker slot only within the step, and nothing is spawned.
    pub instant_job_types: BTreeSet<String>,
    /// This engine's node (daemon) id, recorded on every job it starts (`Job::node`).
    pub node: Option<String>,
    /// Other engines (other nodes) share the store: `Recover` fails only this node's
    /// attempts (and those with no node), never another live node's; theirs end only by
    /// `Input::NodeLost`. Worker limits (`workers`, `queue_concurrency`) then count only this
    /// node's jobs.
    pub shared_store: bool,
}

impl Config {
    pub fn new(workers: usize, job_types: impl IntoIterator<Item = impl Into<String>>) -> Config {
        assert!(workers >= 1);
        Config {
            workers,
            queue_concurrency: BTreeMap::new(),
            throttle: None,
            job_types: job_types.into_iter().map(Into::into).collect(),
            instant_job_types: BTreeSet::new(),
            node: None,
            shared_store: false,
        }
    }

    fn queue_limit(&self, queue: &str) -> usize {
        self.queue_concurrency.get(queue).copied().unwrap_or(self.workers)
    }
}

pub struct Engine {
    config: Config,
    ids: Box<dyn IdGen + Send>,
    rng: Box<dyn Rng + Send>,
    last_now_ms: u64,
    memory: Memory,
}

/// What the engine remembers between steps besides the store. A step works on a copy;
/// the copy replaces it only once the step's writes are committed, so that a step that
/// failed leaves the engine as it was.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Memory {
    system: SystemState,
    recovered: bool,
    last_claimed_queue: Option<String>,
    /// The paused queues, as stored (read at recovery, kept by every pause and resume).
    paused: BTreeSet<String>,
    /// How far the wall clock is ahead of `now_ms` (`Input::WallClock`); `None` until
    /// this engine is told, when it takes 0.
    wall_offset_ms: Option<i64>,
    /// Jobs may still hold absolute times placed with another offset: ticks go on moving
    /// them, a round at a time, until none is left.
    wall_retime_pending: bool,
}

impl Default for Memory {
    /// A new engine's: not recovered, the system unknown.
    fn default() -> Memory {
        Memory {
            system: SystemState::UNKNOWN,
            recovered: false,
            last_claimed_queue: None,
            paused: BTreeSet::new(),
            wall_offset_ms: None,
            wall_retime_pending: false,
        }
    }
}

impl Memory {
    pub fn paused(&self) -> &BTreeSet<String> {
        &self.paused
    }
}

type Answer<T> = StoreResult<Result<T, Rejection>>;

impl Engine {
    pub fn new(config: Config, ids: Box<dyn IdGen + Send>, rng: Box<dyn Rng + Send>) -> Engine {
        assert!(config.instant_job_types.is_subset(&config.job_types), "an instant job type must be a job type");
        Engine { config, ids, rng, last_now_ms: 0, memory: Memory::default() }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Replaces the limits and the throttle between steps (a reloaded config file). What
    /// runs keeps running; the next claim obeys the new limits, so the driver should claim
    /// again at once. The job types cannot change: jobs already accepted were validated
    /// against them.
    pub fn reconfigure(&mut self, config: Config) {
        assert!(config.workers >= 1, "workers must be at least 1");
        assert_eq!(config.job_types, self.config.job_types, "job types cannot change at run time");
        assert_eq!(config.instant_job_types, self.config.instant_job_types, "job types cannot change at run time");
        self.config = config;
    }

    pub fn system(&self) -> SystemState {
        self.memory.system
    }

    /// Decides what `input` does at `now_ms`, reading `store`. Writes nothing: the
    /// returned step says what to write. A store read that fails fails the step. The
    /// engine's own memory moves on only when the step is committed: through
    /// [`Engine::run`], or by calling [`Engine::committed`] after committing it yourself.
    pub fn handle(&mut self, now_ms: u64, input: Input, store: &dyn Store) -> StoreResult<Step> {
        assert!(now_ms >= self.last_now_ms, "time went backwards: {now_ms} < {}", self.last_now_ms);
        assert!(self.memory.recovered || input == Input::Recover, "restart recovery must come first");
        self.last_now_ms = now_ms;
        let before = self.memory.clone();
        let step = self.decide(now_ms, input, store);
        let after = std::mem::replace(&mut self.memory, before);
        step.map(|step| Step { memory: after, ..step })
    }

    /// Takes on the memory of a step whose writes are committed.
    pub fn committed(&mut self, step: &Step) {
        self.memory = step.memory.clone();
    }

    fn decide(&mut self, now_ms: u64, input: Input, store: &dyn Store) -> StoreResult<Step> {
        let mut tx = Tx::new(store, now_ms);
        let mut wake_override = None;
        let mut wake_also: Option<u64> = None;
        let reply = match input {
            Input::Recover => {
                self.memory.recovered = true;
                self.memory.paused = tx.stored_paused_queues()?.into_iter().collect();
                let reply = self.recover(&mut tx)?;
                wake_override = Some(tx.next_wake_at()?);
                reply
            }
            Input::Enqueue(request) => match self.enqueue(&mut tx, *request)? {
                Ok(enqueued) => Reply::Enqueued(enqueued),
                Err(rejection) => Reply::Rejected(rejection),
            },
            Input::EnqueueBatch(requests) => match self.enqueue_batch(&mut tx, requests)? {
                Ok(results) => Reply::EnqueuedBatch(results),
                Err(rejection) => Reply::Rejected(rejection),
            },
            Input::Cancel(request) => match self.cancel(&mut tx, request)? {
                Ok((count, more)) => Reply::Cancelled { count, more },
                Err(rejection) => Reply::Rejected(rejection),
            },
            Input::Claim { queue } => Reply::Claimed(self.claim(&mut tx, queue, 1)?.map(Box::new)),
            Input::ClaimBatch { queue, max } => {
                assert!((1..=limits::CLAIM_BATCH_MAX).contains(&max), "a claim batch of {max}");
                let mut claimed = Vec::new();
                while claimed.len() < max {
                    match self.claim(&mut tx, queue.clone(), max - claimed.len())? {
                        Some(job) => claimed.push(job),
                        None => break,
                    }
                }
                Reply::ClaimedBatch(claimed)
            }
            Input::Report(report) => self.report(&mut tx, report)?,
            Input::ReportBatch(reports) => {
                assert!((1..=limits::REPORT_BATCH_MAX).contains(&reports.len()), "{} reports", reports.len());
                let mut replies = Vec::with_capacity(reports.len());
                for report in reports {
                    replies.push(self.report(&mut tx, report)?);
                }
                Reply::ReportedBatch(replies)
            }
            Input::Tick => {
                let (reply, more) = self.tick(&mut tx)?;
                wake_override = Some(if more { Some(now_ms) } else { tx.next_wake_at()? });
                reply
            }
            Input::Event { name } => Reply::Released { count: self.event(&mut tx, &name)? },
            Input::SystemChanged(system) => {
                self.system_changed(&mut tx, system)?;
                Reply::Accepted
            }
            Input::Purge { finished_before_ms, limit } => {
                let jobs = tx.purgeable(finished_before_ms, limit)?;
                for job in &jobs {
                    tx.delete(job);
                }
                Reply::Purged { job_ids: jobs.iter().map(|job| job.id).collect() }
            }
            Input::PauseQueue { queue, paused } => match self.pause(&mut tx, &queue, paused) {
                Ok(()) => Reply::QueuePaused { queue, paused },
                Err(rejection) => Reply::Rejected(rejection),
            },
            Input::Retry(request) => match self.retry(&mut tx, *request)? {
                Ok(results) => Reply::Retried(results),
                Err(rejection) => Reply::Rejected(rejection),
            },
            Input::SetRecurring(request) => match self.set_recurring(&mut tx, *request)? {
                Ok((name, next_at_ms)) => {
                    // As after other inputs: the earliest time this step wrote.
                    wake_override = Some(next_at_ms);
                    Reply::RecurringSet { name, next_at_ms }
                }
                Err(rejection) => Reply::Rejected(rejection),
            },
            Input::WallClock { offset_ms } => {
                let (earliest_slot_ms, more) = self.wall_clock(&mut tx, offset_ms)?;
                wake_also = if more { Some(now_ms) } else { earliest_slot_ms };
                Reply::Accepted
            }
            Input::NodeLost { node } => {
                let (failed_attempts, more) = self.node_lost(&mut tx, &node)?;
                Reply::NodeLost { failed_attempts, more }
            }
            Input::DeleteRecurring { name } => {
                let deleted = tx.recurring(&name)?.is_some();
                if deleted {
                    tx.delete_recurring(&name);
                }
                Reply::RecurringDeleted { deleted }
            }
        };
        if matches!(reply, Reply::Rejected(_)) {
            tx.rollback();
        }
        let (persist, actions, may_claim, written_from) = tx.into_parts();
        let wake_at_ms = match wake_override {
            Some(wake) => wake,
            None => persist.jobs().filter_map(|job| job.wake_at_ms).chain(wake_also).min(),
        };
        let memory = self.memory.clone();
        Ok(Step { persist, reply, actions, wake_at_ms, may_claim, written_from, memory })
    }

    /// `handle`, then commit the step's writes to `store`. On a commit error nothing of the
    /// step happened: its actions must not be carried out and its reply not given.
    pub fn run(&mut self, now_ms: u64, input: Input, store: &mut dyn Store) -> StoreResult<Step> {
        let step = self.handle(now_ms, input, store)?;
        if !step.persist.is_empty() {
            store.commit(&step.persist)?;
        }
        self.committed(&step);
        Ok(step)
    }

    // ---- enqueue -------------------------------------------------------------------

    fn enqueue(&mut self, tx: &mut Tx, request: EnqueueRequest) -> Answer<Enqueued> {
        let valid = match request.validate(&self.config.job_types) {
            Ok(valid) => valid,
            Err(error) => return Ok(Err(Rejection::Validation(error))),
        };
        self.enqueue_valid(tx, valid)
    }

    fn enqueue_batch(&mut self, tx: &mut Tx, requests: Vec<EnqueueRequest>) -> Answer<Vec<Enqueued>> {
        if requests.is_empty() || requests.len() > limits::BATCH_JOBS_MAX {
            let error = ValidationError::new(
                "jobs",
                ValidationKind::OutOfRange,
                format!("a batch holds 1 to {} jobs", limits::BATCH_JOBS_MAX),
            );
            return Ok(Err(Rejection::Validation(error)));
        }
        // Validate everything before deciding anything: a refused batch writes nothing.
        let mut valid = Vec::with_capacity(requests.len());
        for (index, request) in requests.iter().enumerate() {
            match request.validate(&self.config.job_types) {
                Ok(job) => valid.push(job),
                Err(error) => return Ok(Err(Rejection::Validation(error.at_index(index)))),
            }
        }
        let mut results = Vec::with_capacity(valid.len());
        for (index, job) in valid.into_iter().enumerate() {
            match self.enqueue_valid(tx, job)? {
                Ok(enqueued) => results.push(enqueued),
                Err(Rejection::Validation(error)) => return Ok(Err(Rejection::Validation(error.at_index(index)))),
                Err(other) => return Ok(Err(other)),
            }
        }
        Ok(Ok(results))
    }

    fn enqueue_valid(&mut self, tx: &mut Tx, valid: ValidEnqueue) -> Answer<Enqueued> {
        // A request that names no existing parent is invalid, duplicate or not.
        if let Some(parent_id) = valid.parent_job_id {
            if tx.get(parent_id)?.is_none() {
                let error =
                    ValidationError::new("parent_job_id", ValidationKind::UnknownParent, format!("no job {parent_id}"));
                return Ok(Err(Rejection::Validation(error)));
            }
        }
        let subject_jobs = tx.active_jobs_of_subject(&valid.subject_key)?;
        let max_generation = tx.max_generation(&valid.subject_key)?;
        let generation = match (valid.generation, max_generation) {
            (Some(generation), _) => generation,
            (None, None) => 1,
            (None, Some(max)) if max >= limits::GENERATION_MAX => {
                let error = ValidationError::new(
                    "generation",
                    ValidationKind::OutOfRange,
                    "the subject has reached the highest generation",
                );
                return Ok(Err(Rejection::Validation(error)));
            }
            (None, Some(max)) => max + 1,
        };
        // Guarantee 4: the same (subject, generation) while that job is not terminal.
        if let Some(existing) = subject_jobs.iter().find(|job| job.generation == generation && !job.state.is_terminal())
        {
            return Ok(Ok(Enqueued {
                job_id: existing.id,
                queue: existing.queue.clone(),
                state: existing.state,
                generation,
                deduplicated: true,
            }));
        }
        let stale = max_generation.is_some_and(|max| generation < max);
        if !stale {
            // Guarantee 2: a newer generation supersedes every waiting older one at once.
            for older in subject_jobs.iter().filter(|job| job.generation < generation) {
                // Read again: an earlier supersede of this loop may have moved it (a child).
                let older = tx.get(older.id)?.expect("listed in this step");
                if older.state.is_waiting() {
                    self.terminate(tx, older, JobState::Superseded, None)?;
                }
            }
        }
        // Read the parent only now: the supersede above may have ended it.
        let parent = match valid.parent_job_id {
            Some(parent_id) => Some(tx.get(parent_id)?.expect("checked above")),
            None => None,
        };
        let job = self.new_job(tx, valid, generation)?;
        let id = job.id;
        if stale {
            // Guarantee 3: created directly as SUPERSEDED; it never runs.
            tx.insert(job.clone());
            self.terminate(tx, job, JobState::Superseded, None)?;
        } else {
            match parent {
                Some(parent) if parent.state == JobState::Done => self.insert_settled(tx, job)?,
                Some(parent) if parent.state.is_terminal() => {
                    let error =
                        JobError::new(ErrorKind::ParentFailed, format!("parent {} ended {}", parent.id, parent.state));
                    tx.insert(job.clone());
                    self.terminate(tx, job, JobState::Cancelled, Some(error))?;
                }
                Some(_) => {
                    let mut job = job;
                    job.parent_pending = true;
                    self.insert_settled(tx, job)?;
                }
                None => self.insert_settled(tx, job)?,
            }
        }
        let job = tx.written(id).expect("inserted in this step");
        Ok(Ok(Enqueued { job_id: id, queue: job.queue.clone(), state: job.state, generation, deduplicated: false }))
    }

    fn new_job(&mut self, tx: &mut Tx, valid: ValidEnqueue, generation: u64) -> StoreResult<Job> {
        let now_ms = tx.now_ms;
        let (due_at_ms, at_wall_ms) = match valid.schedule {
            Schedule::Now => (now_ms, None),
            Schedule::At { at_ms } => (self.engine_ms(at_ms), Some(at_ms)),
            Schedule::Delay { delay_ms } => (now_ms.saturating_add(delay_ms), None),
        };
        let follows_wall = at_wall_ms.is_some() || valid.deadline_ms.is_some();
        let id = self.ids.next_id();
        let trace_id = match valid.trace_id {
            Some(trace_id) => trace_id,
            None => hex_32(self.ids.next_id().as_u128()),
        };
        Ok(Job {
            id,
            seq: tx.max_seq()? + 1,
            version: 1,
            queue: valid.queue,
            job_type: valid.job_type,
            subject_key: valid.subject_key,
            generation,
            state: JobState::Scheduled,
            priority: valid.priority,
            payload_json: valid.payload_json,
            exec: valid.exec,
            attempts: 0,
            max_attempts: valid.max_attempts,
            backoff: valid.backoff,
            timeout_ms: valid.timeout_ms,
            ttl_ms: valid.ttl_ms,
            deadline_ms: valid.deadline_ms.map(|wall_ms| self.engine_ms(wall_ms)),
            deadline_wall_ms: valid.deadline_ms,
            at_wall_ms,
            wall_offset_ms: follows_wall.then(|| self.offset_ms()),
            conditions: valid.conditions,
            event_released: false,
            parent_job_id: valid.parent_job_id,
            parent_pending: false,
            tag: valid.tag,
            chain_group_id: valid.chain_group_id,
            trace_id,
            created_at_ms: now_ms,
            due_at_ms,
            started_at_ms: None,
            finished_at_ms: None,
            wake_at_ms: None,
            pid: None,
            pid_started_at: None,
            reap_pending: false,
            exit_code: None,
            error: None,
            result_summary_json: None,
            artifacts: Vec::new(),
            retry_of: valid.retry_of,
            node: None,
        })
    }

    // ---- cancel --------------------------------------------------------------------

    fn cancel(&mut self, tx: &mut Tx, request: CancelRequest) -> Answer<(usize, bool)> {
        let CancelRequest { job_id, tag, chain_group_id } = request;
        let jobs = match job_id {
            Some(id) => {
                let Some(job) = tx.get(id)? else { return Ok(Err(Rejection::NotFound(id))) };
                if job.state.is_terminal() {
                    return Ok(Err(Rejection::Conflict { job_id: id, state: job.state }));
                }
                let matches = tag.as_ref().is_none_or(|t| job.tag.as_ref() == Some(t))
                    && chain_group_id.as_ref().is_none_or(|g| job.chain_group_id.as_ref() == Some(g));
                if matches {
                    vec![job]
                } else {
                    Vec::new()
                }
            }
            None if tag.is_none() && chain_group_id.is_none() => {
                let error =
                    ValidationError::new("job_id", ValidationKind::Missing, "give job_id, tag or chain_group_id");
                return Ok(Err(Rejection::Validation(error)));
            }
            None => tx.labelled_jobs(tag.as_deref(), chain_group_id.as_deref(), limits::CANCEL_ROUND_JOBS_MAX)?,
        };
        let more = job_id.is_none() && jobs.len() == limits::CANCEL_ROUND_JOBS_MAX;
        let mut count = 0;
        for job in jobs {
            // An earlier cancel of this loop may have ended it already (a parent's child).
            let job = tx.get(job.id)?.expect("listed in this step");
            if job.state.is_terminal() {
                continue;
            }
            let error = JobError::new(ErrorKind::Cancelled, "cancelled by request");
            self.terminate(tx, job, JobState::Cancelled, Some(error))?;
            count += 1;
        }
        Ok(Ok((count, more)))
    }

    // ---- queue controls, retry, recurring jobs --------------------------------------

    fn pause(&mut self, tx: &mut Tx, queue: &str, paused: bool) -> Result<(), Rejection> {
        let queue = valid_queue("queue", queue).map_err(Rejection::Validation)?;
        let changed = if paused { self.memory.paused.insert(queue.clone()) } else { self.memory.paused.remove(&queue) };
        if changed {
            tx.set_paused(&queue, paused);
            tx.may_claim |= !paused;
        }
        Ok(())
    }

    fn retry(&mut self, tx: &mut Tx, request: RetryRequest) -> Answer<Vec<Enqueued>> {
        let RetryRequest { job_id, filter, limit } = request;
        let olds = match (job_id, filter) {
            (Some(id), None) => {
                let Some(job) = tx.get(id)? else { return Ok(Err(Rejection::NotFound(id))) };
                if !job.state.is_retryable() {
                    return Ok(Err(Rejection::Conflict { job_id: id, state: job.state }));
                }
                vec![job]
            }
            (None, Some(filter)) => {
                let limit = match limit {
                    None => limits::RETRY_JOBS_DEFAULT,
                    Some(n) if (1..=limits::RETRY_JOBS_MAX as i64).contains(&n) => n as usize,
                    Some(_) => {
                        let error = ValidationError::new(
                            "limit",
                            ValidationKind::OutOfRange,
                            format!("1 to {}", limits::RETRY_JOBS_MAX),
                        );
                        return Ok(Err(Rejection::Validation(error)));
                    }
                };
                self.retryable_matches(tx, filter, limit)?
            }
            (None, None) => {
                let error = ValidationError::new("job_id", ValidationKind::Missing, "give job_id or filter");
                return Ok(Err(Rejection::Validation(error)));
            }
            (Some(_), Some(_)) => {
                let error =
                    ValidationError::new("filter", ValidationKind::Conflicting, "give job_id or filter, not both");
                return Ok(Err(Rejection::Validation(error)));
            }
        };
        let mut results = Vec::with_capacity(olds.len());
        for old in olds {
            if old.exec.is_none() && !self.config.job_types.contains(&old.job_type) {
                let error = ValidationError::new(
                    "job_id",
                    ValidationKind::UnknownJobType,
                    format!("job {} has type {:?}, which this daemon does not run", old.id, old.job_type),
                );
                return Ok(Err(Rejection::Validation(error)));
            }
            match self.enqueue_valid(tx, retry_spec(&old))? {
                Ok(enqueued) => results.push(enqueued),
                Err(rejection) => return Ok(Err(rejection)),
            }
        }
        Ok(Ok(results))
    }

    /// Up to `limit` jobs in a retryable end that match `filter`, in enqueue order.
    fn retryable_matches(&self, tx: &Tx, filter: JobQuery, limit: usize) -> StoreResult<Vec<Job>> {
        let retryable: Vec<JobState> = JobState::ALL.into_iter().filter(|state| state.is_retryable()).collect();
        let states = if filter.states.is_empty() {
            retryable
        } else {
            filter.states.iter().copied().filter(|state| state.is_retryable()).collect()
        };
        if states.is_empty() {
            return Ok(Vec::new());
        }
        let mut query = JobQuery { states, descending: false, after_seq: None, bytes_max: None, ..filter };
        let mut jobs = Vec::new();
        // Each page holds only retryable jobs, so this ends after limit / LIMIT_MAX pages.
        for _ in 0..=limit.div_ceil(JobQuery::LIMIT_MAX) {
            query.limit = JobQuery::LIMIT_MAX.min(limit - jobs.len());
            let page = tx.query(&query)?;
            jobs.extend(page.items);
            match page.next_after_seq {
                Some(after) if jobs.len() < limit => query.after_seq = Some(after),
                _ => break,
            }
        }
        assert!(jobs.len() <= limit && jobs.iter().all(|job| job.state.is_retryable()));
        Ok(jobs)
    }

    fn set_recurring(&mut self, tx: &mut Tx, request: RecurringRequest) -> Answer<(String, Option<u64>)> {
        let RecurringRequest { name, cron, timezone, job } = request;
        let name = match valid_recurring_name("name", &name) {
            Ok(name) => name,
            Err(error) => return Ok(Err(Rejection::Validation(error))),
        };
        let timezone = timezone.unwrap_or_else(|| "UTC".to_owned());
        let schedule = match CronSchedule::parse(&cron, &timezone) {
            Ok(schedule) => schedule,
            Err(ScheduleError::Cron(message)) => {
                let error = ValidationError::new("cron", ValidationKind::InvalidFormat, message);
                return Ok(Err(Rejection::Validation(error)));
            }
            Err(ScheduleError::TimeZone(message)) => {
                let error = ValidationError::new("timezone", ValidationKind::UnknownTimeZone, message);
                return Ok(Err(Rejection::Validation(error)));
            }
        };
        if let Err(error) = recurring_job_check(&job, &self.config) {
            return Ok(Err(Rejection::Validation(error)));
        }
        let existing = tx.recurring(&name)?;
        if existing.is_none() && tx.recurring_count()? >= limits::RECURRING_MAX {
            let error = ValidationError::new(
                "name",
                ValidationKind::TooMany,
                format!("at most {} recurring jobs; delete one first", limits::RECURRING_MAX),
            );
            return Ok(Err(Rejection::Validation(error)));
        }
        let (last_slot_ms, last_enqueued_job_id) =
            existing.map_or((None, None), |old| (old.last_slot_ms, old.last_enqueued_job_id));
        let next_at_ms = self.next_slot_at(&schedule, tx.now_ms, last_slot_ms);
        tx.put_recurring(Recurring {
            name: name.clone(),
            cron,
            timezone,
            job,
            next_at_ms,
            last_slot_ms,
            last_enqueued_job_id,
        });
        Ok(Ok((name, next_at_ms)))
    }

    /// Enqueues the latest due slot of each recurring job whose next slot has come (slots
    /// missed while no engine ran collapse into that one), with the slot's epoch second
    /// as generation: the enqueue and the recurring job's move to its next slot commit
    /// together, so a slot fires at most once. Returns how many fired.
    fn fire_recurring(&mut self, tx: &mut Tx) -> StoreResult<usize> {
        let now_ms = tx.now_ms;
        let wall_now_ms = self.wall_ms(now_ms);
        let due = tx.recurring_due(limits::TICK_RECURRING_MAX)?;
        let fired = due.len();
        for mut recurring in due {
            let schedule = stored_schedule(&recurring);
            assert!(recurring.next_at_ms.is_some_and(|at| at <= now_ms), "recurring {:?} listed early", recurring.name);
            // Slots are wall-clock times; `last_slot_ms` too. A job that was due when the
            // wall clock was stepped back (or when a new engine had not been told the
            // offset yet) may find its latest slot at or before the last one fired: that
            // slot never fires again, and the job moves on to the next one.
            let slot_ms = schedule.latest_at_or_before(wall_now_ms);
            if let Some(slot_ms) = slot_ms.filter(|slot| recurring.last_slot_ms.is_none_or(|last| last < *slot)) {
                let mut request = recurring.job.clone();
                request.generation = Some((slot_ms / 1000) as i64);
                // A job type that is no longer registered makes the slot enqueue nothing;
                // the recurring job still moves on (last_enqueued_job_id = None says so).
                recurring.last_enqueued_job_id = match request.validate(&self.config.job_types) {
                    Ok(valid) => match self.enqueue_valid(tx, valid)? {
                        Ok(enqueued) => Some(enqueued.job_id),
                        Err(_) => None,
                    },
                    Err(_) => None,
                };
                recurring.last_slot_ms = Some(slot_ms);
            }
            recurring.next_at_ms = self.next_slot_at(&schedule, now_ms, recurring.last_slot_ms);
            assert!(recurring.next_at_ms.is_none_or(|at| at > now_ms), "recurring {:?} left due", recurring.name);
            tx.put_recurring(recurring);
        }
        Ok(fired)
    }

    /// The wall clock's time at `now_ms`.
    fn wall_ms(&self, now_ms: u64) -> u64 {
        now_ms.saturating_add_signed(self.offset_ms())
    }

    /// How far the wall clock is ahead of engine time, as this engine was last told.
    fn offset_ms(&self) -> i64 {
        self.memory.wall_offset_ms.unwrap_or(0)
    }

    /// A wall-clock time on the engine's timeline (0 if it falls before it began).
    fn engine_ms(&self, wall_ms: u64) -> u64 {
        wall_ms.saturating_add_signed(-self.offset_ms())
    }

    /// When (in `now_ms` time) the first slot after the wall clock's now, and after the
    /// last slot fired, comes; `None` when the expression has no slot left.
    fn next_slot_at(&self, schedule: &CronSchedule, now_ms: u64, last_slot_ms: Option<u64>) -> Option<u64> {
        let after_ms = self.wall_ms(now_ms).max(last_slot_ms.unwrap_or(0));
        let slot_ms = schedule.next_after(after_ms)?;
        Some(self.engine_ms(slot_ms).max(now_ms + 1))
    }

    /// A new offset of the wall clock: every recurring job's next slot moves with it,
    /// except for the jobs already due, whose slot the next tick fires; and jobs' absolute
    /// times (`schedule.at` not yet come, `deadline`) move with it, a round now and the
    /// rest in the next ticks. Returns the earliest slot, and whether jobs are left to move.
    /// The first offset an engine is told always moves jobs: they may have been placed by
    /// an engine before a restart, with another.
    fn wall_clock(&mut self, tx: &mut Tx, offset_ms: i64) -> StoreResult<(Option<u64>, bool)> {
        if self.memory.wall_offset_ms == Some(offset_ms) {
            return Ok((None, false));
        }
        let slots_move = self.offset_ms() != offset_ms;
        self.memory.wall_offset_ms = Some(offset_ms);
        self.memory.wall_retime_pending = true;
        let more = self.retime_round(tx)?;
        if !slots_move {
            return Ok((None, more));
        }
        let now_ms = tx.now_ms;
        let mut earliest: Option<u64> = None;
        for mut recurring in tx.recurring_all()? {
            if let Some(due_ms) = recurring.next_at_ms.filter(|at| *at <= now_ms) {
                // Due already (slots missed while no engine ran, or not ticked yet): the
                // next tick fires its latest slot on the new wall clock.
                earliest = Some(earliest.map_or(due_ms, |e| e.min(due_ms)));
                continue;
            }
            let schedule = stored_schedule(&recurring);
            recurring.next_at_ms = self.next_slot_at(&schedule, now_ms, recurring.last_slot_ms);
            earliest = [earliest, recurring.next_at_ms].into_iter().flatten().min();
            tx.put_recurring(recurring);
        }
        Ok((earliest, more))
    }

    /// Moves up to a round of jobs whose absolute times were placed with another offset of
    /// the wall clock. Returns whether more are left.
    fn retime_round(&mut self, tx: &mut Tx) -> StoreResult<bool> {
        if !self.memory.wall_retime_pending {
            return Ok(false);
        }
        let stale = tx.wall_timed_jobs(self.offset_ms(), limits::RETIME_ROUND_JOBS_MAX)?;
        let more = stale.len() == limits::RETIME_ROUND_JOBS_MAX;
        for job in stale {
            let mut job = tx.get(job.id)?.expect("listed in this step");
            if job.wall_offset_ms.is_none_or(|offset| offset == self.offset_ms()) {
                continue; // moved by an earlier job of this round (a parent's end)
            }
            self.follow_wall_clock(tx.now_ms, &mut job);
            if job.state.is_waiting() {
                self.settle(tx, job)?;
            } else {
                // Running: a deadline that has now passed wakes the next tick.
                job.wake_at_ms = running_wake_at(&job);
                tx.update(job)?;
            }
        }
        self.memory.wall_retime_pending = more;
        Ok(more)
    }

    /// Places the job's absolute times on the engine's timeline with the wall clock's
    /// current offset: its deadline always, its `schedule.at` until that has come (a job
    /// that became due stays due when the wall clock is stepped back). Then records what
    /// still follows the wall clock.
    fn follow_wall_clock(&self, now_ms: u64, job: &mut Job) {
        if job.state.is_terminal() {
            job.wall_offset_ms = None;
            return;
        }
        // Until this engine is told the wall clock (just after a restart), a job keeps
        // where the engine before it placed it.
        let Some(offset_ms) = self.memory.wall_offset_ms else { return };
        if job.wall_offset_ms.is_none_or(|placed_ms| placed_ms == offset_ms) {
            return;
        }
        let at_pending = job.attempts == 0 && job.state.is_waiting() && job.due_at_ms > now_ms;
        if let Some(at_wall_ms) = job.at_wall_ms.filter(|_| at_pending) {
            job.due_at_ms = self.engine_ms(at_wall_ms);
        }
        if let Some(deadline_wall_ms) = job.deadline_wall_ms {
            job.deadline_ms = Some(self.engine_ms(deadline_wall_ms));
        }
        job.wall_offset_ms = Some(offset_ms);
        self.stop_following_what_came(now_ms, job);
    }

    /// `wall_offset_ms` is kept only while something of the job follows the wall clock:
    /// ticks then find the jobs to move by it.
    fn stop_following_what_came(&self, now_ms: u64, job: &mut Job) {
        let at_pending =
            job.at_wall_ms.is_some() && job.attempts == 0 && job.state.is_waiting() && job.due_at_ms > now_ms;
        let follows = !job.state.is_terminal() && (at_pending || job.deadline_wall_ms.is_some());
        if !follows {
            job.wall_offset_ms = None;
        }
    }

    // ---- claim ---------------------------------------------------------------------

    /// Starts one job, of `queue` or of any ready queue; `wanted` is how many this step
    /// means to start in all (counting this one), so that the first claim lists enough
    /// candidates for the rest.
    fn claim(&mut self, tx: &mut Tx, queue: Option<String>, wanted: usize) -> StoreResult<Option<Job>> {
        let running = tx.process_count(None, self.worker_node())?;
        if running >= self.config.workers {
            return Ok(None);
        }
        // The first list is no longer than the free slots (its jobs may be large); when
        // instant jobs free their slots again, `Tx::claim_candidates` goes on listing.
        let wanted = wanted.min(self.config.workers - running);
        let queues = match queue {
            Some(queue) if self.memory.paused.contains(&queue) => return Ok(None),
            Some(queue) => vec![queue],
            None => {
                // Round-robin: start after the queue served last, so that one busy queue
                // does not starve the others.
                let mut queues = tx.ready_queues()?;
                queues.retain(|queue| !self.memory.paused.contains(queue));
                if let Some(last) = &self.memory.last_claimed_queue {
                    let split = queues.partition_point(|queue| queue <= last);
                    queues.rotate_left(split);
                }
                queues
            }
        };
        for queue in queues {
            let running = tx.process_count(Some(&queue), self.worker_node())?;
            let limit = self.config.queue_limit(&queue);
            if running >= limit {
                continue;
            }
            if let Some(job) = self.claim_in(tx, &queue, wanted.min(limit - running))? {
                self.memory.last_claimed_queue = Some(queue);
                return Ok(Some(job));
            }
        }
        Ok(None)
    }

    fn claim_in(&mut self, tx: &mut Tx, queue: &str, wanted: usize) -> StoreResult<Option<Job>> {
        let min_priority = match self.config.throttle {
            Some(throttle) if self.memory.system.cpu_load_percent > throttle.cpu_limit_percent => {
                Some(throttle.priority_floor)
            }
            _ => None,
        };
        // Nearly always the first candidate starts: look at a few, and at a full page only
        // when the few were all held back. The store is asked once for as many as the
        // step means to start; the step keeps that list for its next claims.
        let prefetch = wanted.min(limits::CLAIM_SCAN_MAX);
        for limit in [limits::CLAIM_SCAN_FIRST, limits::CLAIM_SCAN_MAX] {
            let (candidates, exhausted) = tx.claim_candidates(queue, min_priority, limit, prefetch)?;
            if let Some(job) = self.claim_first(tx, queue, min_priority, candidates)? {
                return Ok(Some(job));
            }
            if exhausted {
                break;
            }
        }
        Ok(None)
    }

    /// Starts the first of `candidates` that may start now; moves on the ones whose time
    /// or generation has passed.
    fn claim_first(
        &mut self,
        tx: &mut Tx,
        queue: &str,
        min_priority: Option<i32>,
        candidates: Vec<JobId>,
    ) -> StoreResult<Option<Job>> {
        for id in candidates {
            // As the step sees it now: settling an earlier candidate may have moved this
            // one (a child).
            let mut job = tx.get(id)?.expect("listed in this step");
            if job.state != JobState::Queued {
                continue;
            }
            // A wall-clock step whose round has not reached this job yet moves it now.
            self.follow_wall_clock(tx.now_ms, &mut job);
            assert_eq!(job.queue, queue);
            assert!(min_priority.is_none_or(|floor| job.priority >= floor));
            if !self.ready(tx.now_ms, &job) || self.expired(tx.now_ms, &job).is_some() {
                // Its time or the system moved on before a Tick or a probe told us.
                self.settle(tx, job)?;
                continue;
            }
            // Guarantee 5: never start while a higher generation of the subject exists.
            if tx.max_generation(&job.subject_key)?.is_some_and(|max| max > job.generation) {
                self.terminate(tx, job, JobState::Superseded, None)?;
                continue;
            }
            // Guarantee 6: one process per subject at a time.
            if tx.subject_occupied(&job.subject_key)? {
                continue;
            }
            return Ok(Some(self.start(tx, job)?));
        }
        Ok(None)
    }

    fn start(&mut self, tx: &mut Tx, mut job: Job) -> StoreResult<Job> {
        let now_ms = tx.now_ms;
        let read_version = job.version;
        assert!(job.attempts < job.max_attempts, "job {} would exceed max_attempts", job.id);
        assert!(!job.reap_pending, "job {} started while its last process may live", job.id);
        job.state = JobState::Running;
        job.attempts += 1;
        job.node.clone_from(&self.config.node);
        job.started_at_ms = Some(now_ms);
        job.pid = None;
        job.pid_started_at = None;
        job.exit_code = None;
        job.wake_at_ms = running_wake_at(&job);
        self.stop_following_what_came(now_ms, &mut job);
        if job.exec.is_none() && self.config.instant_job_types.contains(&job.job_type) {
            // Its run is over as it starts: the same step records it as a success, and the
            // slot it took is free again for the step's next claim.
            let id = job.id;
            tx.update(job)?;
            let mut job = tx.get(id)?.expect("written in this step");
            job.exit_code = None;
            job.result_summary_json = None;
            job.artifacts = Vec::new();
            job.error = None;
            self.finish_run(tx, job, JobState::Done, None)?;
            // As for a job that runs: the reply carries the version the claim read.
            let mut ended = tx.get(id)?.expect("written in this step");
            ended.version = read_version;
            return Ok(ended);
        }
        tx.update(job.clone())?;
        tx.spawn(&job);
        Ok(job)
    }

    // ---- reports -------------------------------------------------------------------

    fn report(&mut self, tx: &mut Tx, report: Report) -> StoreResult<Reply> {
        match report {
            Report::Started { job_id, attempt, pid, pid_started_at } => {
                let Some(mut job) = tx.get(job_id)? else { return Ok(Reply::Ignored) };
                let alive = job.state == JobState::Running || job.reap_pending;
                if job.attempts != attempt || !alive || job.pid.is_some() {
                    return Ok(Reply::Ignored);
                }
                job.pid = pid;
                job.pid_started_at = pid_started_at;
                tx.update(job.clone())?;
                if job.state != JobState::Running {
                    // Cancelled (or timed out) before its pid was known: stop it by pid too,
                    // now that a restart could find it.
                    tx.kill(&job);
                }
                Ok(Reply::Accepted)
            }
            Report::Finished { job_id, attempt, outcome } => {
                let Some(mut job) = tx.get(job_id)? else { return Ok(Reply::Ignored) };
                if job.attempts != attempt {
                    return Ok(Reply::Ignored);
                }
                if job.state != JobState::Running {
                    if !job.reap_pending {
                        return Ok(Reply::Ignored);
                    }
                    // The first terminal transition already won (cancel, timeout, deadline):
                    // the run's outcome changes nothing but frees the subject.
                    job.reap_pending = false;
                    tx.update(job)?;
                    return Ok(Reply::Ignored);
                }
                match outcome {
                    Outcome::Succeeded { exit_code, result_summary_json, artifacts } => {
                        job.exit_code = exit_code;
                        job.result_summary_json = result_summary_json;
                        job.artifacts = artifacts;
                        job.error = None;
                        self.finish_run(tx, job, JobState::Done, None)?;
                    }
                    Outcome::Failed { kind, exit_code, message } => {
                        job.exit_code = exit_code;
                        self.fail_attempt(tx, job, JobError::new(kind, message), Process::Ended)?;
                    }
                    Outcome::TimedOut => {
                        let error = JobError::new(ErrorKind::Timeout, "the attempt ran past timeout_ms");
                        self.fail_attempt(tx, job, error, Process::Ended)?;
                    }
                }
                Ok(Reply::Accepted)
            }
        }
    }

    // ---- time ----------------------------------------------------------------------

    /// Moves every job whose time has come. Returns whether more were due than one tick
    /// may handle.
    fn tick(&mut self, tx: &mut Tx) -> StoreResult<(Reply, bool)> {
        let now_ms = tx.now_ms;
        // Jobs still placed with an earlier offset of the wall clock move first, so that
        // nothing below fires by where the old wall clock put it.
        let more_to_retime = self.retime_round(tx)?;
        let due = tx.due_jobs(limits::TICK_JOBS_MAX)?;
        let more = more_to_retime || due.len() == limits::TICK_JOBS_MAX;
        for job in due {
            let mut job = tx.get(job.id)?.expect("listed in this step");
            if job.state.is_terminal() || job.wake_at_ms.is_none_or(|wake| wake > now_ms) {
                continue; // moved by an earlier job of this tick (a parent's end)
            }
            if job.wall_offset_ms.is_some_and(|offset| offset != self.offset_ms()) {
                // Beyond this tick's round of a wall-clock step: move it before judging it.
                self.follow_wall_clock(now_ms, &mut job);
                if job.state == JobState::Running {
                    job.wake_at_ms = running_wake_at(&job);
                    if job.wake_at_ms.is_none_or(|wake| wake > now_ms) {
                        tx.update(job)?;
                        continue;
                    }
                }
            }
            if job.state == JobState::Running {
                if job.deadline_ms.is_some_and(|deadline| deadline <= now_ms) {
                    let error = JobError::new(ErrorKind::DeadlineExceeded, "still running at its deadline");
                    self.terminate(tx, job, JobState::Failed, Some(error))?;
                } else if running_timeout_at(&job).is_some_and(|at| at <= now_ms) {
                    let error = JobError::new(ErrorKind::Timeout, "the attempt ran past timeout_ms");
                    self.fail_attempt(tx, job, error, Process::Alive)?;
                } else {
                    unreachable!("job {} woke with nothing due", job.id);
                }
            } else {
                self.settle(tx, job)?;
            }
        }
        let fired = self.fire_recurring(tx)?;
        Ok((Reply::Accepted, more || fired == limits::TICK_RECURRING_MAX))
    }

    // ---- events and the system -----------------------------------------------------

    fn event(&mut self, tx: &mut Tx, name: &str) -> StoreResult<usize> {
        let waiters = tx.event_waiters(name, limits::EVENT_ROUND_JOBS_MAX)?;
        let count = waiters.len();
        for job in waiters {
            let mut job = tx.get(job.id)?.expect("listed in this step");
            if !job.state.is_waiting() {
                continue;
            }
            job.event_released = true;
            self.settle(tx, job)?;
        }
        Ok(count)
    }

    fn system_changed(&mut self, tx: &mut Tx, system: SystemState) -> StoreResult<()> {
        let throttle_eased = self.memory.system.cpu_load_percent > system.cpu_load_percent;
        self.memory.system = system;
        tx.may_claim |= throttle_eased;
        for job in tx.system_waiters(limits::FAN_OUT_JOBS_MAX)? {
            let job = tx.get(job.id)?.expect("listed in this step");
            if job.state.is_waiting() {
                self.settle(tx, job)?;
            }
        }
        Ok(())
    }

    // ---- restart recovery ----------------------------------------------------------

    /// Guarantee 8: a job left RUNNING by an earlier daemon is a failed attempt
    /// (`daemon_restart`); a process that may still be alive is killed (if still ours).
    fn recover(&mut self, tx: &mut Tx) -> StoreResult<Reply> {
        let mut failed_attempts = 0;
        let mut processes_killed = 0;
        for job in tx.process_holders(usize::MAX)? {
            if !self.owns_attempt(&job) {
                continue; // another live node's: only `NodeLost` ends it
            }
            let mut job = tx.get(job.id)?.expect("listed in this step");
            if job.pid.is_some() {
                tx.kill(&job);
                processes_killed += 1;
            }
            if job.state == JobState::Running {
                let error = JobError::new(ErrorKind::DaemonRestart, "the daemon stopped while the job ran");
                self.fail_attempt(tx, job, error, Process::Ended)?;
                failed_attempts += 1;
            } else {
                job.reap_pending = false;
                if job.state.is_waiting() {
                    // Its state was decided under the last daemon's view of the system;
                    // this engine may see another (found by the fuzz harness, regression
                    // in core/tests/fuzz_harness.proptest-regressions).
                    self.settle(tx, job)?;
                } else {
                    tx.update(job)?;
                }
            }
        }
        Ok(Reply::Recovered { failed_attempts, processes_killed })
    }

    /// The node whose jobs count against this engine's worker limits: its own when the
    /// store is shared, every job's otherwise.
    fn worker_node(&self) -> Option<&str> {
        if self.config.shared_store {
            self.config.node.as_deref()
        } else {
            None
        }
    }

    /// Whether this engine's recovery may treat the job's attempt as its own crashed one.
    fn owns_attempt(&self, job: &Job) -> bool {
        !self.config.shared_store || job.node.is_none() || job.node == self.config.node
    }

    /// A round of `Input::NodeLost`. The lost node's processes cannot be reached from
    /// here; a node that could not renew its lease stops them itself before the lease
    /// runs out (the driver's duty), so the attempt counts as ended.
    fn node_lost(&mut self, tx: &mut Tx, node: &str) -> StoreResult<(usize, bool)> {
        let jobs = tx.jobs_of_node(node, limits::NODE_LOST_ROUND_JOBS_MAX)?;
        let more = jobs.len() == limits::NODE_LOST_ROUND_JOBS_MAX;
        tx.guard_node_lost(node);
        let mut failed_attempts = 0;
        for job in jobs {
            let mut job = tx.get(job.id)?.expect("listed in this step");
            assert_eq!(job.node.as_deref(), Some(node), "job {} listed for another node", job.id);
            if job.state == JobState::Running {
                let error = JobError::new(ErrorKind::NodeLost, format!("the daemon {node} lost its lease"));
                self.fail_attempt(tx, job, error, Process::Ended)?;
                failed_attempts += 1;
            } else {
                assert!(job.reap_pending, "job {} holds no worker", job.id);
                job.reap_pending = false;
                tx.update(job)?;
                tx.may_claim = true;
            }
        }
        Ok((failed_attempts, more))
    }

    // ---- transitions ---------------------------------------------------------------

    /// Ends an attempt that failed: retry after a back-off if attempts remain, otherwise
    /// `FAILED`. A job that can no longer run (a newer generation exists) is `SUPERSEDED`.
    fn fail_attempt(&mut self, tx: &mut Tx, mut job: Job, error: JobError, process: Process) -> StoreResult<()> {
        assert_eq!(job.state, JobState::Running);
        let newer_exists = tx.max_generation(&job.subject_key)?.is_some_and(|max| max > job.generation);
        if job.attempts >= job.max_attempts || newer_exists {
            let state =
                if newer_exists && job.attempts < job.max_attempts { JobState::Superseded } else { JobState::Failed };
            return self.finish_run_with(tx, job, state, Some(error), process);
        }
        if process == Process::Alive {
            job.reap_pending = true;
            tx.kill(&job);
        }
        let delay_ms = backoff::delay_ms(&job.backoff, job.attempts, self.rng.as_mut());
        job.state = JobState::Scheduled;
        job.error = Some(error);
        job.due_at_ms = tx.now_ms.saturating_add(delay_ms);
        self.settle(tx, job)
    }

    /// Ends a run whose process has ended.
    fn finish_run(&mut self, tx: &mut Tx, job: Job, state: JobState, error: Option<JobError>) -> StoreResult<()> {
        self.finish_run_with(tx, job, state, error, Process::Ended)
    }

    fn finish_run_with(
        &mut self,
        tx: &mut Tx,
        mut job: Job,
        state: JobState,
        error: Option<JobError>,
        process: Process,
    ) -> StoreResult<()> {
        assert_eq!(job.state, JobState::Running);
        if process == Process::Ended {
            // Let `terminate` see a job whose process is gone.
            job.state = JobState::Scheduled;
        }
        self.terminate(tx, job, state, error)
    }

    /// Moves a job to a terminal state; a running process is killed and the subject
    /// stays occupied until it is reaped. Then the job's children follow.
    fn terminate(&mut self, tx: &mut Tx, mut job: Job, state: JobState, error: Option<JobError>) -> StoreResult<()> {
        assert!(state.is_terminal());
        assert!(!job.state.is_terminal(), "job {}: terminal state {} must never change", job.id, job.state);
        if job.state == JobState::Running {
            job.reap_pending = true;
            tx.kill(&job);
        }
        job.state = state;
        job.finished_at_ms = Some(tx.now_ms);
        job.wake_at_ms = None;
        job.wall_offset_ms = None;
        if error.is_some() {
            job.error = error;
        }
        let (id, state) = (job.id, job.state);
        tx.update(job)?;
        self.resolve_children(tx, id, state)
    }

    /// A parent's end decides its waiting children: `DONE` releases them; any other end
    /// cancels them (`parent_failed`), and so on down the chain.
    fn resolve_children(&mut self, tx: &mut Tx, parent_id: JobId, parent_state: JobState) -> StoreResult<()> {
        // Only the id and end state of each parent in the chain are needed.
        let mut parents = VecDeque::from([(parent_id, parent_state)]);
        let mut resolved = 0usize;
        while let Some((parent_id, parent_state)) = parents.pop_front() {
            for child in tx.waiting_children(parent_id, limits::FAN_OUT_JOBS_MAX)? {
                resolved += 1;
                assert!(resolved <= limits::FAN_OUT_JOBS_MAX, "parent chain fan-out over its limit");
                let mut child = tx.get(child.id)?.expect("listed in this step");
                assert!(
                    child.parent_pending && child.state.is_waiting(),
                    "child {} ran before its parent {} ended",
                    child.id,
                    parent_id
                );
                if parent_state == JobState::Done {
                    child.parent_pending = false;
                    self.settle(tx, child)?;
                } else {
                    let error =
                        JobError::new(ErrorKind::ParentFailed, format!("parent {parent_id} ended {parent_state}"));
                    child.finished_at_ms = Some(tx.now_ms);
                    child.wake_at_ms = None;
                    child.wall_offset_ms = None;
                    child.state = JobState::Cancelled;
                    child.error = Some(error);
                    parents.push_back((child.id, child.state));
                    tx.update(child)?;
                }
            }
        }
        Ok(())
    }

    /// Puts a waiting job where it belongs now: skipped if its TTL or deadline has passed,
    /// `QUEUED` if nothing holds it back, `SCHEDULED` otherwise; and sets its wake-up.
    fn settle(&mut self, tx: &mut Tx, mut job: Job) -> StoreResult<()> {
        match self.settled(tx.now_ms, &mut job) {
            Some((state, error)) => self.terminate(tx, job, state, Some(error)),
            None => tx.update(job),
        }
    }

    /// A new job as [`Engine::settle`] leaves it, written once: inserted waiting where it
    /// waits, instead of inserted `SCHEDULED` and then updated (a copy of the job and an
    /// update less per enqueue). One that may no longer start is inserted, then ended.
    fn insert_settled(&mut self, tx: &mut Tx, mut job: Job) -> StoreResult<()> {
        match self.settled(tx.now_ms, &mut job) {
            Some((state, error)) => {
                tx.insert(job.clone());
                self.terminate(tx, job, state, Some(error))
            }
            None => {
                tx.insert(job);
                Ok(())
            }
        }
    }

    /// Moves a waiting job to where it waits at `now_ms` (`QUEUED` or `SCHEDULED`, and its
    /// wake time), or says how it ends if it may no longer start.
    fn settled(&self, now_ms: u64, job: &mut Job) -> Option<(JobState, JobError)> {
        assert!(job.state.is_waiting(), "job {} settled while {}", job.id, job.state);
        self.follow_wall_clock(now_ms, job);
        if let Some(end) = self.expired(now_ms, job) {
            return Some(end);
        }
        job.state = if self.ready(now_ms, job) { JobState::Queued } else { JobState::Scheduled };
        job.wake_at_ms = waiting_wake_at(now_ms, job);
        self.stop_following_what_came(now_ms, job);
        None
    }

    /// `SKIPPED_DEADLINE` or `SKIPPED_TTL` if a waiting job may no longer start.
    fn expired(&self, now_ms: u64, job: &Job) -> Option<(JobState, JobError)> {
        if job.deadline_ms.is_some_and(|deadline| deadline <= now_ms) {
            return Some((
                JobState::SkippedDeadline,
                JobError::new(ErrorKind::DeadlineExceeded, "not started by its deadline"),
            ));
        }
        if ttl_expires_at(job).is_some_and(|at| at <= now_ms) {
            return Some((
                JobState::SkippedTtl,
                JobError::new(ErrorKind::TtlExpired, "not started within ttl_ms of becoming due"),
            ));
        }
        None
    }

    /// Nothing but a worker, its subject or the throttle holds the job back.
    fn ready(&self, now_ms: u64, job: &Job) -> bool {
        let conditions = &job.conditions;
        job.due_at_ms <= now_ms
            && !job.parent_pending
            && (conditions.wait_for_event.is_none() || job.event_released)
            && (!conditions.wait_for_idle || self.memory.system.is_idle)
            && (!conditions.require_charging || self.memory.system.is_charging)
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Process {
    /// Still running: kill it and keep the subject occupied until it is reaped.
    Alive,
    /// Already gone (its report came in, or a restart killed it).
    Ended,
}

fn ttl_expires_at(job: &Job) -> Option<u64> {
    job.ttl_ms.map(|ttl| job.due_at_ms.saturating_add(ttl))
}

fn running_timeout_at(job: &Job) -> Option<u64> {
    let started = job.started_at_ms.expect("a running job has started");
    job.timeout_ms.map(|timeout| started.saturating_add(timeout))
}

fn running_wake_at(job: &Job) -> Option<u64> {
    [running_timeout_at(job), job.deadline_ms].into_iter().flatten().min()
}

fn waiting_wake_at(now_ms: u64, job: &Job) -> Option<u64> {
    let schedule = (job.due_at_ms > now_ms).then_some(job.due_at_ms);
    [schedule, ttl_expires_at(job), job.deadline_ms].into_iter().flatten().min()
}

/// What a retry enqueues: the old job's type, queue, subject, payload, command, priority,
/// attempts, back-off, timeout, TTL, system conditions and labels, due now, as the next
/// generation of its subject. Not carried over: its schedule, deadline (an absolute time
/// that has usually passed), parent (which has ended) and event wait (signalled or not,
/// the event belonged to the old run), and its trace id.
fn retry_spec(old: &Job) -> ValidEnqueue {
    assert!(old.state.is_retryable(), "job {} retried from {}", old.id, old.state);
    ValidEnqueue {
        job_type: old.job_type.clone(),
        queue: old.queue.clone(),
        subject_key: old.subject_key.clone(),
        generation: None,
        payload_json: old.payload_json.clone(),
        priority: old.priority,
        exec: old.exec.clone(),
        max_attempts: old.max_attempts,
        backoff: old.backoff,
        timeout_ms: old.timeout_ms,
        ttl_ms: old.ttl_ms,
        deadline_ms: None,
        schedule: Schedule::Now,
        conditions: crate::job::Conditions { wait_for_event: None, ..old.conditions.clone() },
        parent_job_id: None,
        tag: old.tag.clone(),
        chain_group_id: old.chain_group_id.clone(),
        trace_id: None,
        retry_of: Some(old.id),
    }
}

/// A recurring job's `job`: valid as an enqueue, without `generation` (each slot brings
/// its own) or `schedule` (the cron is the schedule). Fields are named under `job.`.
fn recurring_job_check(job: &EnqueueRequest, config: &Config) -> Result<(), ValidationError> {
    if job.generation.is_some() {
        return Err(ValidationError::new(
            "job.generation",
            ValidationKind::Conflicting,
            "each slot sets the generation",
        ));
    }
    if job.schedule.is_some() {
        return Err(ValidationError::new(
            "job.schedule",
            ValidationKind::Conflicting,
            "the cron expression is the schedule",
        ));
    }
    job.validate(&config.job_types).map(|_| ()).map_err(|error| error.within("job"))
}

fn stored_schedule(recurring: &Recurring) -> CronSchedule {
    CronSchedule::parse(&recurring.cron, &recurring.timezone)
        .unwrap_or_else(|error| panic!("recurring {:?} was stored invalid: {error:?}", recurring.name))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn hex_32_writes_what_format_writes(value: u128) {
            prop_assert_eq!(super::hex_32(value), format!("{value:032x}"));
        }
    }
}
