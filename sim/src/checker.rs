//! The invariant checker: the wire contract's guarantees, restated from scratch.
//!
//! It shares no logic with the engine. It keeps its own mirror of the store, built only
//! from the write sets that were committed, plus the history of what clients were told
//! (acknowledgements), and after every step checks the step against the mirror before
//! and after it. From time to time, and after every restart, it compares the mirror with
//! the store itself, read through the public query port.
//!
//! Each check has a name (`Violation::invariant`) that failure reports and the tests use.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use semantica_core::{
    Action, CancelRequest, Config, Enqueued, Input, Job, JobId, JobQuery, JobState, Recurring, Rejection, Reply,
    RetryRequest, Step, Store, SystemState, Write,
};

use semantica_core::cron::Schedule;

use crate::backend::all_jobs;
use crate::describe;

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Violation {
    pub invariant: &'static str,
    pub detail: String,
}

impl Violation {
    pub fn new(invariant: &'static str, detail: impl Into<String>) -> Violation {
        Violation { invariant, detail: detail.into() }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.invariant, self.detail)
    }
}

pub type Check = Result<(), Violation>;

fn fail(invariant: &'static str, detail: impl Into<String>) -> Check {
    Err(Violation::new(invariant, detail))
}

/// One engine step as the driver saw it.
#[derive(Clone, Copy, Debug)]
pub struct Observation<'a> {
    pub now_ms: u64,
    pub input: &'a Input,
    pub step: &'a Step,
    /// The system state the engine was last told about (it drives the throttle).
    pub system: SystemState,
    /// The reply reached the client. False when the daemon crashed after the commit: the
    /// writes happened but nobody was told.
    pub acknowledged: bool,
}

/// A process the (simulated) executor holds alive.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct LiveProcess {
    pub job_id: JobId,
    pub subject_key: String,
}

#[derive(Clone, Debug)]
pub struct Checker {
    workers: usize,
    queue_concurrency: BTreeMap<String, usize>,
    throttle: Option<semantica_core::Throttle>,
    /// Job types that start and end in one claim step (`Config::instant_job_types`).
    instant_job_types: BTreeSet<String>,
    /// What the store holds, as far as committed write sets say.
    jobs: BTreeMap<JobId, Job>,
    /// Jobs that are not terminal or still hold a process.
    active: BTreeSet<JobId>,
    /// Highest generation ever committed per subject (also of purged jobs).
    max_generation: BTreeMap<String, u64>,
    /// The state each job was last acknowledged in.
    acked: BTreeMap<JobId, JobState>,
    purged: BTreeSet<JobId>,
    /// The paused queues, as committed writes say.
    paused: BTreeSet<String>,
    /// The recurring jobs, as committed writes say.
    recurring: BTreeMap<String, Recurring>,
    /// Every (name, slot) that fired: a slot fires at most once, across crashes too.
    fired_slots: BTreeSet<(String, u64)>,
    /// Every (name, generation) a firing enqueued: a generation is never repeated either.
    fired_generations: BTreeSet<(String, u64)>,
    /// How far the wall clock is ahead of engine time, as far as the current engine was
    /// told (`Input::WallClock` steps it committed; 0 for a fresh engine until told again).
    wall_offset_ms: i64,
    /// The current engine has been told the wall clock's offset (it moves jobs' absolute
    /// times only then).
    wall_told: bool,
    /// Jobs whose `schedule.at` had come when a wall-clock step moved them: they stay due
    /// (a step back does not make them wait again).
    at_reached: BTreeSet<JobId>,
    /// Per recurring job, the wall time at which its next slot was last worked out (a
    /// set, a firing, or a wall-clock step): no slot at or before it, or at or before the
    /// last one fired, is owed; every slot after both is, once its time comes.
    slots_owed_after_ms: BTreeMap<String, u64>,
    /// Recurring jobs that were due when the wall clock's offset changed: the engine
    /// keeps them due and the next tick fires the latest slot on the new wall clock, or,
    /// when that slot is not after the last one fired (a step back), moves on without
    /// firing. Their owed slot is not the one their stored next_at named.
    kept_due: BTreeSet<String>,
    /// Each stored recurring job's schedule, parsed once per put (`None`: it does not
    /// parse, which `recurring_slot_off_wall_clock` reports at its next use).
    schedules: BTreeMap<String, Option<Schedule>>,
}

impl Checker {
    pub fn new(config: &Config) -> Checker {
        Checker {
            workers: config.workers,
            queue_concurrency: config.queue_concurrency.clone(),
            throttle: config.throttle,
            instant_job_types: config.instant_job_types.clone(),
            jobs: BTreeMap::new(),
            active: BTreeSet::new(),
            max_generation: BTreeMap::new(),
            acked: BTreeMap::new(),
            purged: BTreeSet::new(),
            paused: BTreeSet::new(),
            recurring: BTreeMap::new(),
            fired_slots: BTreeSet::new(),
            fired_generations: BTreeSet::new(),
            wall_offset_ms: 0,
            wall_told: false,
            at_reached: BTreeSet::new(),
            slots_owed_after_ms: BTreeMap::new(),
            kept_due: BTreeSet::new(),
            schedules: BTreeMap::new(),
        }
    }

    /// Takes `jobs` as what the store already holds, unchecked: a run that starts on an
    /// existing store, or a test that starts from a hand-made state.
    pub fn assume_stored(&mut self, jobs: impl IntoIterator<Item = Job>) {
        for job in jobs {
            self.apply(&Write::Insert(job));
        }
    }

    /// Takes `recurring` as stored recurring jobs, unchecked, as [`Checker::assume_stored`].
    pub fn assume_stored_recurring(&mut self, recurring: impl IntoIterator<Item = Recurring>) {
        for recurring in recurring {
            self.apply(&Write::PutRecurring(recurring));
        }
    }

    pub fn jobs(&self) -> impl Iterator<Item = &Job> {
        self.jobs.values()
    }

    pub fn active_jobs(&self) -> impl Iterator<Item = &Job> {
        self.active.iter().map(|id| &self.jobs[id])
    }

    pub fn job(&self, id: JobId) -> Option<&Job> {
        self.jobs.get(&id)
    }

    pub fn was_purged(&self, id: JobId) -> bool {
        self.purged.contains(&id)
    }

    pub fn acked(&self) -> &BTreeMap<JobId, JobState> {
        &self.acked
    }

    pub fn paused_queues(&self) -> &BTreeSet<String> {
        &self.paused
    }

    pub fn recurring_jobs(&self) -> impl Iterator<Item = &Recurring> {
        self.recurring.values()
    }

    /// The wall clock's offset the current engine acknowledged.
    pub fn wall_offset_ms(&self) -> i64 {
        self.wall_offset_ms
    }

    /// The wall clock's time at engine time `now_ms`, as the current engine knows it.
    fn wall_ms(&self, now_ms: u64) -> u64 {
        now_ms.saturating_add_signed(self.wall_offset_ms)
    }

    /// The latest engine time at which a live job's `schedule.at` or deadline falls.
    pub fn latest_absolute_time_ms(&self) -> u64 {
        self.active_jobs()
            .filter(|job| !job.state.is_terminal())
            .flat_map(|job| [job.at_wall_ms.map(|_| job.due_at_ms), job.deadline_ms])
            .flatten()
            .max()
            .unwrap_or(0)
    }

    /// How many recurring slots fired so far.
    pub fn fired_slot_count(&self) -> usize {
        self.fired_slots.len()
    }

    fn queue_limit(&self, queue: &str) -> usize {
        self.queue_concurrency.get(queue).copied().unwrap_or(self.workers)
    }

    fn passes_throttle(&self, system: SystemState, job: &Job) -> bool {
        match self.throttle {
            Some(throttle) if system.cpu_load_percent > throttle.cpu_limit_percent => {
                job.priority >= throttle.priority_floor
            }
            _ => true,
        }
    }

    /// Subjects with a job that is RUNNING or whose process may live.
    fn occupied_subjects(&self) -> BTreeSet<&str> {
        self.active_jobs().filter(|job| job.occupies_subject()).map(|job| job.subject_key.as_str()).collect()
    }

    /// Checks one committed step, then takes its writes into the mirror.
    pub fn observe(&mut self, obs: &Observation) -> Check {
        let step = obs.step;
        if obs.input == &Input::Recover {
            // A new engine knows no offset until the driver tells it again.
            self.wall_offset_ms = 0;
            self.wall_told = false;
        }
        // A wall-clock step's own writes are judged against the offset it tells.
        let wall_step = match obs.input {
            Input::WallClock { offset_ms } => {
                let changed = *offset_ms != self.wall_offset_ms;
                self.wall_offset_ms = *offset_ms;
                self.wall_told = true;
                Some((*offset_ms, changed))
            }
            _ => None,
        };
        let pending_pop_order = self.pop_order_obligations(obs);
        for write in &step.persist.writes {
            self.check_write(write)?;
        }
        // A handful of names and queues: cheap to keep as they were before the step.
        let paused_before = self.paused.clone();
        let recurring_before = self.recurring.clone();
        let before: BTreeMap<JobId, Job> = step
            .persist
            .writes
            .iter()
            .filter_map(|write| match write {
                Write::Update(job) => self.jobs.get(&job.id).map(|old| (job.id, old.clone())),
                _ => None,
            })
            .collect();
        for write in &step.persist.writes {
            self.apply(write);
        }
        self.check_wall_times(obs, &before)?;
        self.check_starts(obs, &before, &paused_before)?;
        if let Some((offset_ms, changed)) = wall_step {
            self.check_wall_clock_step(obs, offset_ms, changed, &before, &recurring_before)?;
        }
        self.check_firings(obs, &recurring_before)?;
        self.check_pop_order(&pending_pop_order, obs)?;
        self.check_occupancy()?;
        self.check_reply(obs)?;
        self.check_controls_reply(obs, &recurring_before, &before)?;
        if obs.input == &Input::Tick {
            self.check_timers(obs)?;
        }
        if let (Input::Claim { queue }, Reply::Claimed(None)) = (obs.input, &step.reply) {
            self.check_claim_missed(obs, queue.as_deref())?;
        }
        // A batch that started fewer than it could have stopped where a single claim would
        // have found nothing: the same check holds after it.
        if let (Input::ClaimBatch { queue, max }, Reply::ClaimedBatch(claimed)) = (obs.input, &step.reply) {
            if claimed.len() > *max {
                return fail("claim_batch_over_max", format!("{} jobs started for a batch of {max}", claimed.len()));
            }
            if claimed.len() < *max {
                self.check_claim_missed(obs, queue.as_deref())?;
            }
        }
        if obs.acknowledged {
            self.record_acks(obs)?;
        }
        Ok(())
    }

    /// The write is one the contract allows, judged against the mirror before the step.
    fn check_write(&self, write: &Write) -> Check {
        match write {
            Write::Insert(job) => {
                if self.jobs.contains_key(&job.id) || self.purged.contains(&job.id) {
                    return fail("job_id_reused", format!("job {} inserted twice", job.id));
                }
                if job.attempts != 0 {
                    return fail(
                        "attempts_exceeded",
                        format!("job {} inserted with {} attempts", job.id, job.attempts),
                    );
                }
                check_job_shape(job)
            }
            Write::Update(job) => {
                let Some(old) = self.jobs.get(&job.id) else {
                    return fail("store_diverged", format!("update of job {} that the store does not hold", job.id));
                };
                if old.state == JobState::Cancelled && job.state == JobState::Done {
                    return fail("cancelled_became_done", format!("job {} went CANCELLED -> DONE", job.id));
                }
                if old.state.is_terminal() && old.state != job.state {
                    return fail("terminal_changed", format!("job {} went {} -> {}", job.id, old.state, job.state));
                }
                if old.state.is_terminal() && (old.finished_at_ms != job.finished_at_ms || old.error != job.error) {
                    return fail(
                        "terminal_changed",
                        format!("job {}: the outcome of a {} job changed", job.id, old.state),
                    );
                }
                if job.attempts < old.attempts {
                    return fail(
                        "attempts_exceeded",
                        format!("job {} attempts went {} -> {}", job.id, old.attempts, job.attempts),
                    );
                }
                if job.version != old.version + 1 {
                    return fail(
                        "store_diverged",
                        format!("job {} version {} -> {}", job.id, old.version, job.version),
                    );
                }
                check_job_shape(job)
            }
            Write::Delete { id, .. } => match self.jobs.get(id) {
                None => fail("store_diverged", format!("purge of job {id} that the store does not hold")),
                Some(old) if !old.state.is_terminal() || old.reap_pending => fail(
                    "purged_active_job",
                    format!("job {id} purged while {} (reap_pending {})", old.state, old.reap_pending),
                ),
                Some(_) => Ok(()),
            },
            Write::QueuePaused { .. } | Write::PutRecurring(_) | Write::DeleteRecurring { .. } => Ok(()),
            // The simulator runs one engine, which never loses its own node.
            Write::NodeLeaseExpired { node } => fail("store_diverged", format!("a single engine ended node {node}")),
        }
    }

    fn apply(&mut self, write: &Write) {
        match write {
            Write::Insert(job) | Write::Update(job) => {
                let max = self.max_generation.entry(job.subject_key.clone()).or_insert(job.generation);
                *max = (*max).max(job.generation);
                if !job.state.is_terminal() || job.reap_pending {
                    self.active.insert(job.id);
                } else {
                    self.active.remove(&job.id);
                }
                self.jobs.insert(job.id, job.clone());
            }
            Write::Delete { id, .. } => {
                self.jobs.remove(id);
                self.active.remove(id);
                self.purged.insert(*id);
                // Purged by retention: a committed delete, acknowledged or not.
                self.acked.remove(id);
            }
            Write::QueuePaused { queue, paused: true } => {
                self.paused.insert(queue.clone());
            }
            Write::QueuePaused { queue, paused: false } => {
                self.paused.remove(queue);
            }
            Write::PutRecurring(recurring) => {
                let schedule = Schedule::parse(&recurring.cron, &recurring.timezone).ok();
                self.schedules.insert(recurring.name.clone(), schedule);
                self.recurring.insert(recurring.name.clone(), recurring.clone());
            }
            Write::DeleteRecurring { name } => {
                self.recurring.remove(name);
                self.schedules.remove(name);
                self.slots_owed_after_ms.remove(name);
                self.kept_due.remove(name);
                // A recurring job set again under this name is a new one: the deleted one's
                // slots are forgotten with it (the wall clock stepped back can bring them
                // round again).
                self.fired_slots.retain(|(fired, _)| fired != name);
                self.fired_generations.retain(|(fired, _)| fired != name);
            }
            Write::NodeLeaseExpired { .. } => {}
        }
    }

    /// Every start (a job that became RUNNING for a new attempt) has its Spawn, and every
    /// Spawn is such a start; none starts while a newer generation of its subject exists.
    /// A job of an instant type starts and ends in one step: its new attempt is written
    /// `DONE`, started and finished now, with nothing spawned.
    ///
    /// Nothing of a queue that was paused when the step began starts in it.
    fn check_starts(&self, obs: &Observation, before: &BTreeMap<JobId, Job>, paused: &BTreeSet<String>) -> Check {
        let mut started = BTreeSet::new();
        let mut starts: Vec<&Job> = Vec::new();
        for write in &obs.step.persist.writes {
            let (Write::Insert(job) | Write::Update(job)) = write else { continue };
            let old_attempts = before.get(&job.id).map_or(0, |old| old.attempts);
            if job.attempts <= old_attempts {
                continue;
            }
            let instant = job.exec.is_none() && self.instant_job_types.contains(&job.job_type);
            if instant {
                let ended_now = (job.started_at_ms, job.finished_at_ms) == (Some(obs.now_ms), Some(obs.now_ms));
                if job.state != JobState::Done || !ended_now || job.reap_pending {
                    return fail(
                        "instant_job_not_done_at_once",
                        format!("instant job {} (attempt {}) was written {}", job.id, job.attempts, job.state),
                    );
                }
            }
            if job.state == JobState::Running || instant {
                if paused.contains(&job.queue) {
                    return fail(
                        "started_while_paused",
                        format!("job {} (attempt {}) started in paused queue {:?}", job.id, job.attempts, job.queue),
                    );
                }
                check_start_in_time(obs.now_ms, job)?;
                self.check_start_on_wall_clock(obs.now_ms, job)?;
                if !instant {
                    started.insert((job.id, job.attempts));
                }
                starts.push(job);
            }
        }
        let mut spawned = BTreeSet::new();
        for action in &obs.step.actions {
            let Action::Spawn(job) = action else { continue };
            spawned.insert((job.id, job.attempts));
        }
        for job in starts {
            let max = self.max_generation.get(&job.subject_key).copied().unwrap_or(0);
            if max > job.generation {
                return fail(
                    "started_while_newer_generation",
                    format!(
                        "job {} generation {} of {:?} started; generation {max} exists",
                        job.id, job.generation, job.subject_key
                    ),
                );
            }
            if !self.passes_throttle(obs.system, job) {
                return fail(
                    "started_below_throttle_floor",
                    format!(
                        "job {} (priority {}) started while the cpu was at {}%",
                        job.id, job.priority, obs.system.cpu_load_percent
                    ),
                );
            }
            if job.attempts > job.max_attempts {
                return fail(
                    "attempts_exceeded",
                    format!("job {} started attempt {} of {}", job.id, job.attempts, job.max_attempts),
                );
            }
        }
        if started != spawned {
            return fail("start_without_spawn", format!("jobs that became RUNNING {started:?} vs spawned {spawned:?}"));
        }
        Ok(())
    }

    /// Recurring slots. A firing (a put of a recurring job that a client did not set) fires
    /// the latest wall-clock slot at or before the wall clock's now (engine time plus the
    /// offset the engine was told), once its stored next slot has come in engine time;
    /// that slot lies strictly after the last one fired, and no (name, slot) or (name,
    /// generation) fires twice, across crashes and steps of the wall clock back too. It
    /// enqueues the recurring job's subject at the slot's epoch second as generation, and
    /// moves the job to where the rule puts its next slot (the first wall slot after the
    /// later of the wall clock's now and the last slot fired, in engine time), so that the
    /// slots it collapsed into this one are not left due. A set puts its next slot by the
    /// same rule.
    fn check_firings(&mut self, obs: &Observation, before: &BTreeMap<String, Recurring>) -> Check {
        let now_ms = obs.now_ms;
        let wall_now_ms = self.wall_ms(now_ms);
        let offset_ms = self.wall_offset_ms;
        for write in &obs.step.persist.writes {
            let Write::PutRecurring(new) = write else { continue };
            let name = &new.name;
            let old = before.get(name);
            let old_slot = old.and_then(|old| old.last_slot_ms);
            let schedule = self.schedule(name)?.clone();
            // Only a client's set puts a recurring job without firing it (and keeps its
            // last slot); every other put is a firing.
            if let Input::SetRecurring(_) = obs.input {
                if new.last_slot_ms != old_slot {
                    return fail(
                        "recurring_slot_fired_twice",
                        format!("recurring {name:?}: a set moved the last slot"),
                    );
                }
                self.check_next_at_by_rule(new, &schedule, now_ms, "set")?;
                self.slots_owed_after_ms.insert(name.clone(), wall_now_ms);
                self.kept_due.remove(name);
                continue;
            }
            if let Input::WallClock { .. } = obs.input {
                continue; // judged by check_wall_clock_step
            }
            let kept_due = self.kept_due.remove(name);
            if kept_due && new.last_slot_ms == old_slot {
                // Due across a step back: its latest slot on the new wall clock was not
                // after the last one fired, so it moved on to the next without firing.
                let latest = schedule.latest_at_or_before(wall_now_ms);
                if latest.is_some_and(|latest| old_slot.is_none_or(|last| latest > last)) {
                    return fail(
                        "recurring_slot_missed",
                        format!("recurring {name:?} moved on without firing slot {latest:?} (last {old_slot:?})"),
                    );
                }
                self.check_next_at_by_rule(new, &schedule, now_ms, "tick")?;
                self.slots_owed_after_ms.insert(name.clone(), wall_now_ms);
                continue;
            }
            let twice = |detail: String| fail("recurring_slot_fired_twice", format!("recurring {name:?}: {detail}"));
            let Some(slot) = new.last_slot_ms else {
                return twice(format!("last_slot_ms went {old_slot:?} -> None"));
            };
            if let Some(last) = old_slot.filter(|last| *last >= slot) {
                return twice(format!("last_slot_ms went {last} -> {slot}"));
            }
            if !self.fired_slots.insert((name.clone(), slot)) {
                return twice(format!("slot {slot} fired again"));
            }
            if !self.fired_generations.insert((name.clone(), slot / 1000)) {
                return twice(format!("generation {} (slot {slot}) fired again", slot / 1000));
            }
            let Some(old) = old else {
                return fail("store_diverged", format!("recurring {name:?} fired slot {slot} without being stored"));
            };
            match old.next_at_ms {
                None => return fail("recurring_slot_fired_early", format!("{name:?} had no slot left, fired {slot}")),
                Some(next) if next > now_ms || slot > wall_now_ms => {
                    return fail(
                        "recurring_slot_fired_early",
                        format!(
                            "{name:?} fired slot {slot} at {now_ms} (wall {wall_now_ms}); its next slot was due at {next}"
                        ),
                    );
                }
                Some(_) => {}
            }
            let latest = schedule.latest_at_or_before(wall_now_ms);
            if latest != Some(slot) {
                return fail(
                    "recurring_slot_off_wall_clock",
                    format!(
                        "{name:?} ({:?} in {}) fired slot {slot} at {now_ms}, wall {wall_now_ms} (offset {offset_ms}); the latest slot at or before the wall clock is {latest:?}",
                        new.cron, new.timezone
                    ),
                );
            }
            // The stored next slot, back in wall time, was the first one owed (unless it
            // was kept due across a change of the offset it was worked out at).
            if let Some(next) = old.next_at_ms.filter(|next| !kept_due && slot < next.saturating_add_signed(offset_ms))
            {
                return twice(format!(
                    "fired slot {slot}, which it had passed (next due at {next}, wall {})",
                    next.saturating_add_signed(offset_ms)
                ));
            }
            match new.next_at_ms {
                Some(next) if next.saturating_add_signed(offset_ms) <= slot => {
                    return twice(format!(
                        "next_at_ms {next} (wall {}) is not after the slot {slot} it fired: that slot stays due",
                        next.saturating_add_signed(offset_ms)
                    ));
                }
                Some(next) if next <= now_ms => {
                    return fail(
                        "recurring_slot_missed",
                        format!("{name:?} fired slot {slot} at {now_ms} and left slot {next} due"),
                    );
                }
                _ => {}
            }
            self.check_next_at_by_rule(new, &schedule, now_ms, "firing")?;
            self.slots_owed_after_ms.insert(name.clone(), wall_now_ms);
            let Some(id) = new.last_enqueued_job_id else { continue }; // the enqueue was refused
            let Some(job) = self.jobs.get(&id) else {
                return fail("acked_job_lost", format!("recurring {name:?} slot {slot} enqueued job {id}, not stored"));
            };
            let subject_ok = new.job.subject_key.as_ref().is_none_or(|subject| *subject == job.subject_key);
            if job.generation != slot / 1000 || !subject_ok {
                return twice(format!(
                    "slot {slot} enqueued job {id} generation {} of {:?}, not generation {} of {:?}",
                    job.generation,
                    job.subject_key,
                    slot / 1000,
                    new.job.subject_key
                ));
            }
        }
        Ok(())
    }

    /// A committed `Input::WallClock`: the engine now knows the new offset. It writes only
    /// jobs whose absolute times it moved (and what their end decides: a skipped parent's
    /// children), and starts or kills nothing (delays, timeouts, TTLs and back-offs count
    /// engine time, which a wall-clock step does not move); when the offset changed,
    /// every recurring job's next slot moved to where the rule puts it on the new wall
    /// clock.
    fn check_wall_clock_step(
        &mut self,
        obs: &Observation,
        offset_ms: i64,
        changed: bool,
        before: &BTreeMap<JobId, Job>,
        recurring_before: &BTreeMap<String, Recurring>,
    ) -> Check {
        let step = obs.step;
        let moved = |job: &Job| {
            let old = &before[&job.id];
            let placed_elsewhere = old.wall_offset_ms.is_some_and(|placed_ms| placed_ms != offset_ms);
            let parent_ended = job.error.as_ref().is_some_and(|e| e.kind == semantica_core::ErrorKind::ParentFailed);
            placed_elsewhere || (job.state == JobState::Cancelled && parent_ended && !old.state.is_terminal())
        };
        let job_write = step.persist.writes.iter().find_map(|write| match write {
            Write::Update(job) if moved(job) => None,
            Write::Insert(job) | Write::Update(job) => Some(format!("job {} ({})", job.id, job.state)),
            Write::Delete { id, .. } => Some(format!("a purge of job {id}")),
            Write::QueuePaused { queue, .. } => Some(format!("a pause of queue {queue:?}")),
            Write::PutRecurring(_) | Write::DeleteRecurring { .. } | Write::NodeLeaseExpired { .. } => None,
        });
        if let Some(what) = job_write {
            return fail("timer_moved_by_wall_clock", format!("a wall-clock step to offset {offset_ms} wrote {what}"));
        }
        if !step.actions.is_empty() {
            return fail(
                "timer_moved_by_wall_clock",
                format!("a wall-clock step to offset {offset_ms} acted: {}", describe::actions(&step.actions)),
            );
        }
        if step.persist.writes.iter().any(|write| matches!(write, Write::DeleteRecurring { .. })) {
            return fail("store_diverged", format!("a wall-clock step to offset {offset_ms} deleted a recurring job"));
        }
        if !changed {
            return Ok(());
        }
        let wall_now_ms = self.wall_ms(obs.now_ms);
        let names: Vec<String> = self.recurring.keys().cloned().collect();
        for name in names {
            // A job that was due stays due: the next tick fires its latest slot on the new
            // wall clock (a slot missed while no engine ran must not be lost to the re-sent
            // offset after a restart).
            let was_due = recurring_before.get(&name).and_then(|r| r.next_at_ms).filter(|at| *at <= obs.now_ms);
            if let Some(due_ms) = was_due {
                self.kept_due.insert(name.clone());
                if self.recurring[&name].next_at_ms != Some(due_ms) {
                    return fail(
                        "recurring_slot_missed",
                        format!(
                            "a wall-clock step moved {name:?}, due at {due_ms}, to {:?} before it fired",
                            self.recurring[&name].next_at_ms
                        ),
                    );
                }
                continue;
            }
            let schedule = self.schedule(&name)?;
            self.check_next_at_by_rule(&self.recurring[&name], schedule, obs.now_ms, "wall-clock step")?;
            self.slots_owed_after_ms.insert(name, wall_now_ms);
        }
        Ok(())
    }

    /// Every written job's absolute times sit where the wall clock's offset it records
    /// puts them, and a job placed with another offset than the engine's was moved by the
    /// rule: its deadline always, its `schedule.at` only while that had not come (a job
    /// that was due stays due).
    fn check_wall_times(&mut self, obs: &Observation, before: &BTreeMap<JobId, Job>) -> Check {
        let offset_ms = self.wall_offset_ms;
        let off = |detail: String| fail("timer_off_wall_clock", detail);
        for write in &obs.step.persist.writes {
            let (Write::Insert(job) | Write::Update(job)) = write else { continue };
            if job.state.is_terminal() {
                if job.wall_offset_ms.is_some() {
                    return off(format!("job {} ended {} and still follows the wall clock", job.id, job.state));
                }
                continue;
            }
            if job.at_wall_ms.is_some() && job.attempts == 0 && job.due_at_ms <= obs.now_ms {
                // Its `schedule.at` came (as placed, which the checks below judge).
                self.at_reached.insert(job.id);
            }
            match (job.deadline_wall_ms, job.wall_offset_ms) {
                (Some(wall_ms), Some(placed_ms)) if job.deadline_ms != Some(engine_ms(wall_ms, placed_ms)) => {
                    return off(format!(
                        "job {}: deadline {wall_ms} (wall) placed with offset {placed_ms} at {:?}",
                        job.id, job.deadline_ms
                    ));
                }
                (Some(wall_ms), None) => {
                    return off(format!("job {} (deadline {wall_ms}, wall) follows no offset", job.id));
                }
                _ => {}
            }
            let Some(old) = before.get(&job.id) else {
                // Inserted: placed with the engine's offset.
                if let Some(placed_ms) = job.wall_offset_ms.filter(|placed_ms| *placed_ms != offset_ms) {
                    return off(format!(
                        "job {} inserted with offset {placed_ms}; the engine's is {offset_ms}",
                        job.id
                    ));
                }
                if let Some(at_ms) = job.at_wall_ms.filter(|at_ms| job.due_at_ms != engine_ms(*at_ms, offset_ms)) {
                    return off(format!("job {} inserted due at {} for schedule.at {at_ms}", job.id, job.due_at_ms));
                }
                continue;
            };
            let moved = self.wall_told && old.wall_offset_ms.is_some_and(|placed_ms| placed_ms != offset_ms);
            if !moved {
                if job.wall_offset_ms.is_some() && job.wall_offset_ms != old.wall_offset_ms {
                    return off(format!(
                        "job {} re-placed from offset {:?} to {:?} while the engine's is {offset_ms}",
                        job.id, old.wall_offset_ms, job.wall_offset_ms
                    ));
                }
                continue;
            }
            if job.wall_offset_ms.is_some_and(|placed_ms| placed_ms != offset_ms) {
                return off(format!("job {} moved to offset {:?}, not {offset_ms}", job.id, job.wall_offset_ms));
            }
            if old.attempts != 0 || job.attempts != 0 {
                continue; // `schedule.at` was the first attempt's; a start or back-off sets due_at
            }
            let at_pending = old.state.is_waiting() && old.due_at_ms > obs.now_ms;
            let expected_due_ms = match old.at_wall_ms {
                Some(at_ms) if at_pending => engine_ms(at_ms, offset_ms),
                Some(_) => {
                    self.at_reached.insert(job.id);
                    old.due_at_ms
                }
                None => old.due_at_ms,
            };
            if job.due_at_ms != expected_due_ms {
                return off(format!(
                    "job {} (schedule.at {:?}, due at {} with offset {:?}) moved to due at {}; the rule says {expected_due_ms}",
                    job.id, old.at_wall_ms, old.due_at_ms, old.wall_offset_ms, job.due_at_ms
                ));
            }
        }
        Ok(())
    }

    /// A first attempt starts once the wall clock reached its `schedule.at` (or it was
    /// due before a step back), and no attempt starts once the wall clock reached its
    /// deadline.
    fn check_start_on_wall_clock(&self, now_ms: u64, job: &Job) -> Check {
        let wall_now_ms = self.wall_ms(now_ms);
        if let Some(at_ms) = job.at_wall_ms.filter(|at_ms| job.attempts == 1 && wall_now_ms < *at_ms) {
            if !self.at_reached.contains(&job.id) {
                return fail(
                    "started_before_due",
                    format!("job {} started at wall {wall_now_ms}, before its schedule.at {at_ms}", job.id),
                );
            }
        }
        if let Some(deadline_ms) = job.deadline_wall_ms.filter(|deadline_ms| wall_now_ms >= *deadline_ms) {
            return fail(
                "started_after_expiry",
                format!(
                    "job {} started attempt {} at wall {wall_now_ms}; its deadline was {deadline_ms}",
                    job.id, job.attempts
                ),
            );
        }
        Ok(())
    }

    /// The parsed schedule of a stored recurring job.
    fn schedule(&self, name: &str) -> Result<&Schedule, Violation> {
        match self.schedules.get(name) {
            Some(Some(schedule)) => Ok(schedule),
            _ => {
                let recurring = self.recurring.get(name);
                Err(Violation::new(
                    "recurring_slot_off_wall_clock",
                    format!("recurring {name:?} is stored with a schedule that does not parse: {recurring:?}"),
                ))
            }
        }
    }

    /// `recurring.next_at_ms` is where the rule puts it at `now_ms` on the wall clock the
    /// engine knows: the first slot after the later of the wall clock's now and the last
    /// slot fired, minus the offset, and after now.
    fn check_next_at_by_rule(&self, recurring: &Recurring, schedule: &Schedule, now_ms: u64, after: &str) -> Check {
        let wall_now_ms = self.wall_ms(now_ms);
        let after_ms = wall_now_ms.max(recurring.last_slot_ms.unwrap_or(0));
        let slot_ms = schedule.next_after(after_ms);
        let expected = slot_ms.map(|slot| slot.saturating_add_signed(-self.wall_offset_ms).max(now_ms + 1));
        if recurring.next_at_ms != expected {
            return fail(
                "recurring_slot_off_wall_clock",
                format!(
                    "after a {after} at {now_ms} (wall {wall_now_ms}, offset {}), {:?} ({:?} in {}, last slot {:?}) is due at {:?}; its next wall slot {slot_ms:?} is due at {expected:?}",
                    self.wall_offset_ms,
                    recurring.name,
                    recurring.cron,
                    recurring.timezone,
                    recurring.last_slot_ms,
                    recurring.next_at_ms
                ),
            );
        }
        Ok(())
    }

    /// A slot of `recurring` whose wall-clock time has come and that is owed: after the
    /// last one fired and after the wall time its next slot was last worked out at.
    fn owed_slot(&self, recurring: &Recurring, now_ms: u64) -> Result<Option<u64>, Violation> {
        let schedule = self.schedule(&recurring.name)?;
        let owed_after_ms = self
            .slots_owed_after_ms
            .get(&recurring.name)
            .copied()
            .unwrap_or(0)
            .max(recurring.last_slot_ms.unwrap_or(0));
        Ok(schedule.latest_at_or_before(self.wall_ms(now_ms)).filter(|slot| *slot > owed_after_ms))
    }

    /// Replies to pause, retry and recurring inputs agree with what the step wrote.
    fn check_controls_reply(
        &self,
        obs: &Observation,
        recurring_before: &BTreeMap<String, Recurring>,
        before: &BTreeMap<JobId, Job>,
    ) -> Check {
        let disagree = |detail: String| fail("reply_disagrees_with_store", detail);
        match (obs.input, &obs.step.reply) {
            (_, Reply::QueuePaused { queue, paused }) if self.paused.contains(queue) != *paused => {
                disagree(format!("queue {queue:?} said paused={paused}, the store says otherwise"))
            }
            (Input::SetRecurring(request), Reply::RecurringSet { name, next_at_ms }) => {
                let stored = self.recurring.get(name);
                let timezone = request.timezone.as_deref().unwrap_or("UTC");
                let same = stored.is_some_and(|stored| {
                    stored.next_at_ms == *next_at_ms
                        && stored.cron == request.cron
                        && stored.timezone == timezone
                        && stored.job == request.job
                });
                if !same {
                    return disagree(format!("recurring {name:?} set (next {next_at_ms:?}), stored {stored:?}"));
                }
                if next_at_ms.is_some_and(|next| next <= obs.now_ms) {
                    return disagree(format!(
                        "recurring {name:?} set at {} with a due slot {next_at_ms:?}",
                        obs.now_ms
                    ));
                }
                Ok(())
            }
            (Input::DeleteRecurring { name }, Reply::RecurringDeleted { deleted }) => {
                if *deleted != recurring_before.contains_key(name) || self.recurring.contains_key(name) {
                    return disagree(format!("recurring {name:?}: deleted={deleted}"));
                }
                Ok(())
            }
            (Input::Retry(request), Reply::Retried(results)) => self.check_retry(request, results, before),
            (Input::Retry(request), Reply::Rejected(Rejection::NotFound(id))) => match self.jobs.get(id) {
                Some(job) if request.job_id == Some(*id) => {
                    fail("retry_wrong", format!("retry of job {id} said not found; it is {}", job.state))
                }
                _ => Ok(()),
            },
            (Input::Retry(_), Reply::Rejected(Rejection::Conflict { job_id, state })) => match self.jobs.get(job_id) {
                Some(job) if !is_retryable(job.state) => Ok(()),
                job => fail(
                    "retry_wrong",
                    format!("retry of job {job_id} refused as {state}; the store holds {:?}", job.map(|j| j.state)),
                ),
            },
            _ => Ok(()),
        }
    }

    /// Each job a retry enqueued names an ended, retryable job of its subject in
    /// `retry_of` and obeys the supersede rules of an enqueue; a retry by id retried that
    /// job; a retry by filter retried only matching jobs, at most `limit`, and every one
    /// when it retried fewer.
    fn check_retry(&self, request: &RetryRequest, results: &[Enqueued], before: &BTreeMap<JobId, Job>) -> Check {
        let wrong = |detail: String| fail("retry_wrong", detail);
        let mut retried = BTreeSet::new();
        let mut new_ids = BTreeSet::new();
        for enqueued in results {
            let Some(job) = self.jobs.get(&enqueued.job_id) else {
                return fail(
                    "acked_job_lost",
                    format!("retry acknowledged job {} that is not stored", enqueued.job_id),
                );
            };
            new_ids.insert(job.id);
            if job.generation != enqueued.generation {
                return fail(
                    "reply_disagrees_with_store",
                    format!("retry said gen {}, store holds gen {}", enqueued.generation, job.generation),
                );
            }
            let Some(old_id) = job.retry_of else {
                return wrong(format!("job {} enqueued by a retry has no retry_of", job.id));
            };
            let Some(old) = self.jobs.get(&old_id) else {
                return wrong(format!("job {} retries {old_id}, which is not stored", job.id));
            };
            if !is_retryable(old.state) || old.subject_key != job.subject_key || !retried.insert(old_id) {
                return wrong(format!(
                    "job {} retries {old_id} ({} of {:?}) as {:?}, {} time(s) in one request",
                    job.id,
                    old.state,
                    old.subject_key,
                    job.subject_key,
                    results
                        .iter()
                        .filter(|e| self.jobs.get(&e.job_id).is_some_and(|j| j.retry_of == Some(old_id)))
                        .count()
                ));
            }
            // The supersede rules of an enqueue. A later result of the same request may
            // have superseded an earlier one of the same subject.
            self.check_new_generation(job)?;
        }
        match (request.job_id, &request.filter) {
            (Some(id), _) if retried != BTreeSet::from([id]) => wrong(format!("retry of job {id} retried {retried:?}")),
            (None, Some(filter)) => {
                let limit = request.limit.map_or(100, |limit| limit as usize);
                if results.len() > limit {
                    return wrong(format!("{} jobs retried, limit {limit}", results.len()));
                }
                if let Some(old) =
                    retried.iter().map(|id| &self.jobs[id]).find(|old| !retry_filter_matches(filter, old))
                {
                    return wrong(format!("job {} ({} in {:?}) retried by {filter:?}", old.id, old.state, old.queue));
                }
                if results.len() == limit {
                    return Ok(());
                }
                // Judged as the jobs were when the retry began: one that only came to match
                // in this step (a waiting job of a retried subject that the retry's enqueue
                // ended) was not there to be taken.
                let left = self.jobs.values().find(|job| {
                    let was = before.get(&job.id).unwrap_or(job);
                    !new_ids.contains(&job.id)
                        && !retried.contains(&job.id)
                        && retry_filter_matches(filter, job)
                        && retry_filter_matches(filter, was)
                });
                match left {
                    Some(job) => wrong(format!(
                        "{} of limit {limit} retried by {filter:?}, but job {} ({} in {:?}) matches too",
                        results.len(),
                        job.id,
                        job.state,
                        job.queue
                    )),
                    None => Ok(()),
                }
            }
            _ => Ok(()),
        }
    }

    /// Before a claim step: every QUEUED job of the claimed job's queue that should have
    /// been taken before it (higher priority, or equal priority and enqueued earlier, its
    /// subject free, passing the throttle). The claim step must have moved each of them
    /// out of QUEUED (found it ineligible after all), or it jumped the queue.
    ///
    /// For a batch, each claimed job's obligations leave out the jobs the batch itself
    /// claimed and the subjects it occupied (a job whose subject an earlier claim of the
    /// batch took may stay QUEUED).
    fn pop_order_obligations(&self, obs: &Observation) -> Vec<(JobId, JobId)> {
        let claimed = claimed_jobs(&obs.step.reply);
        let occupied = self.occupied_subjects();
        let claimed_ids: BTreeSet<JobId> = claimed.iter().map(|job| job.id).collect();
        let claimed_subjects: BTreeSet<&str> = claimed.iter().map(|job| job.subject_key.as_str()).collect();
        let mut obligations = Vec::new();
        for claimed in &claimed {
            let above = self.active_jobs().filter(|job| {
                !claimed_ids.contains(&job.id)
                    && job.state == JobState::Queued
                    && job.queue == claimed.queue
                    && (job.priority, std::cmp::Reverse(job.seq)) > (claimed.priority, std::cmp::Reverse(claimed.seq))
                    && !occupied.contains(job.subject_key.as_str())
                    && !claimed_subjects.contains(job.subject_key.as_str())
                    && self.passes_throttle(obs.system, job)
            });
            obligations.extend(above.map(|job| (claimed.id, job.id)));
        }
        obligations
    }

    fn check_pop_order(&self, obligations: &[(JobId, JobId)], obs: &Observation) -> Check {
        let claimed = claimed_jobs(&obs.step.reply);
        for (claimed_id, id) in obligations {
            let claimed = claimed.iter().find(|job| job.id == *claimed_id).expect("obligation of a claimed job");
            let job = &self.jobs[id];
            if job.state == JobState::Queued {
                return fail(
                    "pop_order",
                    format!(
                        "claimed job {} (priority {}, seq {}) in queue {:?} while job {} (priority {}, seq {}) was eligible",
                        claimed.id, claimed.priority, claimed.seq, claimed.queue, job.id, job.priority, job.seq
                    ),
                );
            }
        }
        Ok(())
    }

    /// Subject exclusivity and the concurrency limits, over the mirror after the step.
    fn check_occupancy(&self) -> Check {
        let mut per_subject: BTreeMap<&str, Vec<JobId>> = BTreeMap::new();
        let mut per_queue: BTreeMap<&str, usize> = BTreeMap::new();
        let mut running = 0;
        for job in self.active_jobs() {
            if job.occupies_subject() {
                per_subject.entry(&job.subject_key).or_default().push(job.id);
            }
            // A process being stopped (reap_pending) still holds its worker slot.
            if job.occupies_subject() {
                running += 1;
                *per_queue.entry(&job.queue).or_default() += 1;
            }
        }
        if let Some((subject, ids)) = per_subject.iter().find(|(_, ids)| ids.len() > 1) {
            let ids: Vec<String> = ids.iter().map(|id| describe::id(*id)).collect();
            return fail("subject_run_twice", format!("subject {subject:?} held by jobs {ids:?} at once"));
        }
        if running > self.workers {
            return fail("workers_exceeded", format!("{running} jobs hold a process with {} workers", self.workers));
        }
        for (queue, count) in per_queue {
            if count > self.queue_limit(queue) {
                return fail(
                    "queue_concurrency",
                    format!("{count} jobs hold a process in queue {queue:?}, limit {}", self.queue_limit(queue)),
                );
            }
        }
        Ok(())
    }

    /// The executor's processes: at most one per subject, and only of jobs that hold it.
    pub fn check_processes(&self, processes: &[LiveProcess]) -> Check {
        let mut per_subject: BTreeMap<&str, Vec<JobId>> = BTreeMap::new();
        for process in processes {
            per_subject.entry(&process.subject_key).or_default().push(process.job_id);
        }
        if let Some((subject, ids)) = per_subject.iter().find(|(_, ids)| ids.len() > 1) {
            let ids: Vec<String> = ids.iter().map(|id| describe::id(*id)).collect();
            return fail("subject_processes_overlap", format!("subject {subject:?} has processes of jobs {ids:?}"));
        }
        Ok(())
    }

    /// A refused request writes nothing; an enqueue reply matches what was written; a
    /// cancel by id takes effect at once.
    fn check_reply(&self, obs: &Observation) -> Check {
        let step = obs.step;
        match &step.reply {
            Reply::Rejected(rejection) if !step.persist.is_empty() || !step.actions.is_empty() => {
                return fail("rejected_but_written", format!("{rejection:?} wrote {} jobs", step.persist.len()));
            }
            Reply::Enqueued(enqueued) => {
                let Some(job) = self.jobs.get(&enqueued.job_id) else {
                    return fail(
                        "acked_job_lost",
                        format!("enqueue acknowledged job {} that is not stored", enqueued.job_id),
                    );
                };
                if job.state != enqueued.state || job.generation != enqueued.generation {
                    return fail(
                        "reply_disagrees_with_store",
                        format!(
                            "enqueue said {} gen {}, store holds {} gen {}",
                            enqueued.state, enqueued.generation, job.state, job.generation
                        ),
                    );
                }
                if !enqueued.deduplicated {
                    self.check_new_generation(job)?;
                }
            }
            Reply::EnqueuedBatch(results) => {
                for enqueued in results {
                    if !self.jobs.contains_key(&enqueued.job_id) {
                        return fail(
                            "acked_job_lost",
                            format!("batch acknowledged job {} that is not stored", enqueued.job_id),
                        );
                    }
                }
            }
            Reply::Cancelled { count, .. } => {
                if let Input::Cancel(CancelRequest { job_id: Some(id), .. }) = obs.input {
                    let job = &self.jobs[id];
                    if *count == 1 && job.state != JobState::Cancelled {
                        return fail("cancel_not_immediate", format!("job {id} cancelled but is {}", job.state));
                    }
                }
            }
            Reply::Recovered { .. } => {
                if let Some(job) = self.active_jobs().find(|job| job.state == JobState::Running || job.reap_pending) {
                    return fail(
                        "recovery_left_running",
                        format!("job {} is {} (reap_pending {}) after recovery", job.id, job.state, job.reap_pending),
                    );
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Guarantee 2: after a new generation is enqueued, no older one of its subject waits.
    /// A job that an enqueue (or a retry) inserted: unless born superseded, it superseded
    /// every waiting older generation (guarantee 2); below the subject's highest
    /// generation, it is born superseded (guarantee 3).
    fn check_new_generation(&self, job: &Job) -> Check {
        if job.state != JobState::Superseded {
            self.check_older_generations_superseded(job)?;
        }
        let max = self.max_generation[&job.subject_key];
        if job.generation < max && job.state != JobState::Superseded {
            return fail(
                "stale_enqueue_not_superseded",
                format!(
                    "job {} gen {} of {:?} is {} below generation {max}",
                    job.id, job.generation, job.subject_key, job.state
                ),
            );
        }
        Ok(())
    }

    fn check_older_generations_superseded(&self, new: &Job) -> Check {
        let older = self.active_jobs().find(|job| {
            job.subject_key == new.subject_key && job.generation < new.generation && job.state.is_waiting()
        });
        match older {
            Some(job) => fail(
                "older_generation_left_waiting",
                format!(
                    "job {} gen {} is {} after gen {} of {:?} was enqueued",
                    job.id, job.generation, job.state, new.generation, new.subject_key
                ),
            ),
            None => Ok(()),
        }
    }

    /// After a Tick that says nothing more is due now: nothing whose time has come is left
    /// waiting or running.
    fn check_timers(&self, obs: &Observation) -> Check {
        let now_ms = obs.now_ms;
        if obs.step.wake_at_ms.is_some_and(|wake| wake <= now_ms) {
            return Ok(()); // more was due than one tick moves; the engine asked to be called again
        }
        if let Some(recurring) = self.recurring.values().find(|r| r.next_at_ms.is_some_and(|next| next <= now_ms)) {
            return fail(
                "recurring_slot_missed",
                format!(
                    "recurring {:?} still due at {now_ms} (slot {:?}) after a tick",
                    recurring.name, recurring.next_at_ms
                ),
            );
        }
        for recurring in self.recurring.values() {
            if let Some(slot) = self.owed_slot(recurring, now_ms)? {
                return fail(
                    "recurring_slot_missed",
                    format!(
                        "recurring {:?} owes wall slot {slot} at {now_ms} (wall {}) after a tick; next due at {:?}",
                        recurring.name,
                        self.wall_ms(now_ms),
                        recurring.next_at_ms
                    ),
                );
            }
        }
        for job in self.active_jobs() {
            if job.state.is_terminal() {
                continue;
            }
            if self.wall_told && job.wall_offset_ms.is_some_and(|placed_ms| placed_ms != self.wall_offset_ms) {
                return fail(
                    "timer_off_wall_clock",
                    format!(
                        "job {} is still placed with offset {:?} after a tick; the wall clock's is {}",
                        job.id, job.wall_offset_ms, self.wall_offset_ms
                    ),
                );
            }
            let late = |what: &str, at: u64| {
                fail("timer_not_fired", format!("job {} is {} at {now_ms}, its {what} was at {at}", job.id, job.state))
            };
            if let Some(deadline) = job.deadline_ms.filter(|d| *d <= now_ms) {
                return late("deadline", deadline);
            }
            if job.state == JobState::Running {
                let started = job.started_at_ms.unwrap_or(0);
                if let Some(timeout) = job.timeout_ms.filter(|t| started + t <= now_ms) {
                    return late("timeout", started + timeout);
                }
                continue;
            }
            if let Some(ttl) = job.ttl_ms.filter(|ttl| job.due_at_ms + ttl <= now_ms) {
                return late("ttl", job.due_at_ms + ttl);
            }
            let unconditional = !job.parent_pending
                && job.conditions.wait_for_event.is_none()
                && !job.conditions.wait_for_idle
                && !job.conditions.require_charging;
            if job.state == JobState::Scheduled && job.due_at_ms <= now_ms && unconditional {
                return late("schedule", job.due_at_ms);
            }
        }
        Ok(())
    }

    /// A claim that returned nothing while a job it could have started was QUEUED.
    fn check_claim_missed(&self, obs: &Observation, queue: Option<&str>) -> Check {
        let running: Vec<&Job> = self.active_jobs().filter(|job| job.occupies_subject()).collect();
        if running.len() >= self.workers {
            return Ok(());
        }
        let occupied = self.occupied_subjects();
        let missed = self.active_jobs().find(|job| {
            job.state == JobState::Queued
                && queue.is_none_or(|q| q == job.queue)
                && !self.paused.contains(&job.queue)
                && running.iter().filter(|r| r.queue == job.queue).count() < self.queue_limit(&job.queue)
                && !occupied.contains(job.subject_key.as_str())
                && self.passes_throttle(obs.system, job)
        });
        match missed {
            Some(job) => fail(
                "claim_missed_eligible_job",
                format!(
                    "claim {queue:?} returned nothing while job {} (queue {:?}, priority {}) was eligible",
                    job.id, job.queue, job.priority
                ),
            ),
            None => Ok(()),
        }
    }

    fn record_acks(&mut self, obs: &Observation) -> Check {
        match &obs.step.reply {
            Reply::Enqueued(enqueued) => {
                self.acked.insert(enqueued.job_id, self.jobs[&enqueued.job_id].state);
            }
            Reply::EnqueuedBatch(results) | Reply::Retried(results) => {
                for enqueued in results {
                    self.acked.insert(enqueued.job_id, self.jobs[&enqueued.job_id].state);
                }
            }
            Reply::Cancelled { count: 1, .. } => {
                if let Input::Cancel(CancelRequest { job_id: Some(id), .. }) = obs.input {
                    self.acked.insert(*id, JobState::Cancelled);
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Every write of a committed step reads back from the store as written.
    pub fn check_committed(&self, store: &dyn Store, step: &Step) -> Check {
        for write in &step.persist.writes {
            let (id, expected) = match write {
                Write::Insert(job) | Write::Update(job) => (job.id, Some(job)),
                Write::Delete { id, .. } => (*id, None),
                Write::QueuePaused { .. } | Write::PutRecurring(_) | Write::DeleteRecurring { .. } => {
                    check_control_committed(store, write)?;
                    continue;
                }
                Write::NodeLeaseExpired { .. } => continue,
            };
            match store.get(id) {
                Ok(stored) if stored.as_ref() == expected => {}
                Ok(stored) => {
                    let found = stored.map_or("nothing".to_owned(), |job| format!("{} v{}", job.state, job.version));
                    let wanted = expected.map_or("nothing".to_owned(), |job| format!("{} v{}", job.state, job.version));
                    return fail("store_diverged", format!("job {id}: committed {wanted}, the store holds {found}"));
                }
                Err(error) => return fail("store_diverged", format!("job {id} could not be read back: {error}")),
            }
        }
        Ok(())
    }

    /// Compares the mirror with the store itself and checks every acknowledged job is
    /// there, in the acknowledged state or a later one (guarantee 7).
    pub fn check_store(&self, store: &dyn Store) -> Check {
        let stored = match all_jobs(store) {
            Ok(jobs) => jobs,
            Err(error) => return fail("store_diverged", format!("the store could not be read: {error}")),
        };
        let stored: BTreeMap<JobId, Job> = stored.into_iter().map(|job| (job.id, job)).collect();
        for (id, state) in &self.acked {
            let Some(job) = stored.get(id) else {
                return fail("acked_job_lost", format!("acknowledged job {id} ({state}) is not in the store"));
            };
            if state.is_terminal() && job.state != *state {
                return fail(
                    "acked_job_lost",
                    format!("job {id} was acknowledged {state}, the store holds {}", job.state),
                );
            }
        }
        if stored.len() != self.jobs.len() {
            return fail(
                "store_diverged",
                format!("store holds {} jobs, committed writes say {}", stored.len(), self.jobs.len()),
            );
        }
        for (id, job) in &self.jobs {
            if stored.get(id) != Some(job) {
                return fail("store_diverged", format!("job {id} in the store differs from its last committed write"));
            }
        }
        let unreadable = |error| Violation::new("store_diverged", format!("the store could not be read: {error}"));
        let paused = store.paused_queues().map_err(unreadable)?;
        if !paused.iter().eq(self.paused.iter()) {
            return fail("store_diverged", format!("store pauses {paused:?}, committed writes say {:?}", self.paused));
        }
        let recurring = store.recurring_list().map_err(unreadable)?;
        if !recurring.iter().eq(self.recurring.values()) {
            let names: Vec<&String> = recurring.iter().map(|r| &r.name).collect();
            return fail(
                "store_diverged",
                format!(
                    "store's recurring jobs {names:?} differ from the committed writes' {:?}",
                    self.recurring.keys()
                ),
            );
        }
        Ok(())
    }

    /// After the liveness phase has ticked up to its end: every stored recurring job's
    /// next slot lies ahead in engine time, and no wall-clock slot that came (by the
    /// offset the engine knows) is owed: each fired, or collapsed into one that did.
    pub fn check_recurring_caught_up(&self, store: &dyn Store, now_ms: u64) -> Check {
        let stored = store
            .recurring_list()
            .map_err(|error| Violation::new("store_diverged", format!("the store could not be read: {error}")))?;
        if let Some(recurring) = stored.iter().find(|r| r.next_at_ms.is_some_and(|next| next <= now_ms)) {
            return fail(
                "recurring_slot_missed",
                format!(
                    "recurring {:?} ({:?} in {}) still has slot {:?} due at {now_ms}, its last fired {:?}",
                    recurring.name, recurring.cron, recurring.timezone, recurring.next_at_ms, recurring.last_slot_ms
                ),
            );
        }
        for recurring in &stored {
            if let Some(slot) = self.owed_slot(recurring, now_ms)? {
                return fail(
                    "recurring_slot_missed",
                    format!(
                        "recurring {:?} ({:?} in {}) owes wall slot {slot} at {now_ms} (wall {}), its last fired {:?}",
                        recurring.name,
                        recurring.cron,
                        recurring.timezone,
                        self.wall_ms(now_ms),
                        recurring.last_slot_ms
                    ),
                );
            }
        }
        Ok(())
    }

    /// The liveness phase is over: every job ended and no process is left.
    pub fn check_quiescent(&self) -> Check {
        match self.active_jobs().next() {
            Some(job) => fail(
                "liveness",
                format!(
                    "job {} is still {} (reap_pending {}) after the liveness phase: {job:?}",
                    job.id, job.state, job.reap_pending
                ),
            ),
            None => Ok(()),
        }
    }
}

/// Field rules of a single job that hold in every state.
fn check_job_shape(job: &Job) -> Check {
    if job.attempts > job.max_attempts {
        return fail(
            "attempts_exceeded",
            format!("job {} has {} attempts of {}", job.id, job.attempts, job.max_attempts),
        );
    }
    if job.state.is_terminal() && job.finished_at_ms.is_none() {
        return fail("terminal_without_finish", format!("job {} is {} without finished_at", job.id, job.state));
    }
    Ok(())
}

/// A job that starts an attempt at `now_ms` (engine time) is due and has not expired:
/// delays, back-offs, TTLs and deadlines count engine time, whatever the wall clock does.
/// A wall-clock time on the engine's timeline, with the wall clock `offset_ms` ahead.
fn engine_ms(wall_ms: u64, offset_ms: i64) -> u64 {
    wall_ms.saturating_add_signed(-offset_ms)
}

fn check_start_in_time(now_ms: u64, job: &Job) -> Check {
    if job.due_at_ms > now_ms {
        return fail(
            "started_before_due",
            format!("job {} started attempt {} at {now_ms}, due at {}", job.id, job.attempts, job.due_at_ms),
        );
    }
    let ttl_at_ms = job.ttl_ms.map(|ttl| job.due_at_ms.saturating_add(ttl));
    if let Some(at) = [job.deadline_ms, ttl_at_ms].into_iter().flatten().find(|at| *at <= now_ms) {
        return fail(
            "started_after_expiry",
            format!("job {} started attempt {} at {now_ms}; its deadline or ttl ran out at {at}", job.id, job.attempts),
        );
    }
    Ok(())
}

/// A pause, resume or recurring write reads back from the store as written.
fn check_control_committed(store: &dyn Store, write: &Write) -> Check {
    let diverged = |detail: String| fail("store_diverged", detail);
    let unreadable = |error| Violation::new("store_diverged", format!("the store could not be read: {error}"));
    match write {
        Write::QueuePaused { queue, paused } => {
            let stored = store.paused_queues().map_err(unreadable)?;
            if stored.contains(queue) != *paused {
                return diverged(format!("queue {queue:?}: committed paused={paused}, the store pauses {stored:?}"));
            }
        }
        Write::PutRecurring(recurring) => {
            let stored = store.recurring(&recurring.name).map_err(unreadable)?;
            if stored.as_ref() != Some(recurring) {
                return diverged(format!("recurring {:?}: committed {recurring:?}, stored {stored:?}", recurring.name));
            }
        }
        Write::DeleteRecurring { name } => {
            if let Some(stored) = store.recurring(name).map_err(unreadable)? {
                return diverged(format!("recurring {name:?} deleted, the store still holds {stored:?}"));
            }
        }
        Write::Insert(_) | Write::Update(_) | Write::Delete { .. } | Write::NodeLeaseExpired { .. } => {}
    }
    Ok(())
}

/// The ends `dev.retry.v1` may enqueue again (API.md), restated here, not taken from core.
fn is_retryable(state: JobState) -> bool {
    matches!(state, JobState::Failed | JobState::Cancelled | JobState::SkippedTtl | JobState::SkippedDeadline)
}

/// The jobs a retry by `filter` may take: a retryable end (of the filter's states, when it
/// names any), in one of its queues, with its tag (the only selectors the simulated
/// clients use).
fn retry_filter_matches(filter: &JobQuery, job: &Job) -> bool {
    is_retryable(job.state)
        && (filter.states.is_empty() || filter.states.contains(&job.state))
        && (filter.queues.is_empty() || filter.queues.contains(&job.queue))
        && filter.tag.as_ref().is_none_or(|tag| job.tag.as_ref() == Some(tag))
}

/// The jobs a claim step started, single or batched.
fn claimed_jobs(reply: &Reply) -> Vec<&Job> {
    match reply {
        Reply::Claimed(Some(job)) => vec![job.as_ref()],
        Reply::ClaimedBatch(jobs) => jobs.iter().collect(),
        _ => Vec::new(),
    }
}
