//! The driver: one thread, simulated time, the real engine.
//!
//! Each iteration of the main loop is one simulator step: a crash and restart, one input
//! to the engine (a client request, an executor report, a tick, a system change, a
//! claim), a client read, or a jump of the clock to the next thing that will happen. The
//! clock never sleeps: it jumps to the engine's wake-up, the executor's next report, the
//! probe's next change, or a client's next request. Every random choice comes from the
//! run's seed, so a seed replays the same run.

use std::collections::{BTreeMap, BTreeSet};

use semantica_core::{
    Action, Config, Engine, EnqueueRequest, Enqueued, Input, JobId, JobQuery, Reply, Report, Rng, SeededIds,
    SplitMix64, Step, Store, SystemState, Throttle, ValidationKind,
};

use crate::backend::{all_jobs, BackendFactory, BackendKind, FaultyStore};
use crate::checker::{Checker, LiveProcess, Observation, Violation};
use crate::describe;
use crate::executor::{ExecutorFaults, SimExecutor};
use crate::probe::SimProbe;
use crate::trace::Trace;
use crate::workload::{ClientOp, Expect, Workload, JOB_TYPES};

/// Simulated time starts here (2023-11-14), far from 0 so that saturating arithmetic and
/// "now minus something" never hide a bug.
pub const START_MS: u64 = 1_700_000_000_000;
/// Attempts at restart recovery before the run is declared unable to restart.
const RECOVER_TRIES_MAX: u32 = 100;
/// Ticks in a row that change nothing and ask to be called again at once.
const IDLE_TICKS_MAX: u32 = 3;
/// The liveness phase may take this many simulator steps...
const LIVENESS_STEPS_MAX: u64 = 100_000;
/// ...and this much simulated time after the latest absolute time (`schedule.at`,
/// deadline) a job waits for: a wall clock stepped back days puts those days ahead.
const LIVENESS_TIME_MS_MAX: u64 = 48 * 3_600_000;
/// The checker compares its mirror with every whole store, and differential mode the
/// stores with each other, every this many steps (and after every restart, and at the
/// end): a whole-store read of SQLite costs far more than a step.
const FULL_CHECK_EVERY_STEPS: u64 = 64;
/// Longest pause of the clients.
const THINK_MS_MAX: u64 = 2_000;
/// Longest idle spell of the clients (the clock still stops at every timer on the way):
/// without them a run spans a few minutes of simulated time, and recurring slots, a minute
/// apart at best, would hardly fire under faults.
const IDLE_MS_MAX: u64 = 15 * 60_000;
/// A small step of the wall clock: 1 s to 2 minutes (NTP slewing gave up, a person
/// fixed the time)...
const WALL_STEP_SMALL_MS: (u64, u64) = (1_000, 120_000);
/// ...and a large one: an hour (a time zone or DST mistake) to two days (a dead RTC
/// battery, a VM restored from a snapshot).
const WALL_STEP_LARGE_MS: (u64, u64) = (3_600_000, 2 * 24 * 3_600_000);
/// The wall clock never goes further back than this from the start: simulated dates stay
/// in this century whatever the steps add up to.
const WALL_OFFSET_MS_MIN: i64 = -(30 * 24 * 3_600_000);
/// How long the liveness phase lets recurring jobs fire before it checks that no slot was
/// missed: more than an hour, so that hourly slots come too, in every time zone.
const RECURRING_WINDOW_MS: u64 = 65 * 60_000;

/// What to run.
#[derive(Clone, Copy, Debug)]
pub struct SimOptions {
    pub seed: u64,
    pub steps: u64,
    /// Run a second store side by side on the same inputs and compare every step's
    /// answers, every client read, and (every [`FULL_CHECK_EVERY_STEPS`] steps and after
    /// every restart) the whole stores.
    pub differential: bool,
    pub backend: BackendFactory,
    /// The second store of differential mode (SQLite when `backend` is memory).
    pub secondary: BackendFactory,
    /// Keep every operation for the report (`--trace`), not only the last ones.
    pub keep_trace: bool,
}

impl SimOptions {
    /// On `MemStore`; the second store of differential mode is SQLite.
    pub fn new(seed: u64, steps: u64) -> SimOptions {
        SimOptions::on(BackendKind::Memory, seed, steps)
    }

    /// On `kind`; the second store of differential mode is the other kind.
    pub fn on(kind: BackendKind, seed: u64, steps: u64) -> SimOptions {
        SimOptions {
            seed,
            steps,
            differential: false,
            backend: kind.factory(),
            secondary: kind.counterpart().factory(),
            keep_trace: false,
        }
    }
}

/// Fault rates of one run, drawn from its seed (swarm testing: many seeds run with some
/// faults off entirely).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct FaultRates {
    /// Crash before a step, per mille of steps.
    pub crash_per_mille: u64,
    /// Crash after a step's commit, before its reply and actions, per mille of inputs.
    pub crash_after_commit_per_mille: u64,
    pub commit_fail_per_mille: u64,
    pub read_fail_per_mille: u64,
    pub executor: ExecutorFaults,
    /// A step of the wall clock (back or forward, small or large) before a step, per
    /// mille of steps; engine time runs on untouched.
    pub clock_step_per_mille: u64,
}

impl FaultRates {
    pub fn draw(rng: &mut SplitMix64) -> FaultRates {
        let mut pick = |max: u64| if rng.chance(1, 2) { 0 } else { rng.below(max + 1) };
        FaultRates {
            crash_per_mille: pick(3),
            crash_after_commit_per_mille: pick(3),
            commit_fail_per_mille: pick(100),
            read_fail_per_mille: pick(30),
            executor: ExecutorFaults {
                late_per_mille: pick(200),
                late_ms_max: 1 + pick(10_000),
                duplicate_per_mille: pick(100),
            },
            // Drawn last, so that every other rate of a seed stays as it was.
            clock_step_per_mille: pick(5),
        }
    }
}

impl std::fmt::Display for FaultRates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "crash={}‰ crash_after_commit={}‰ commit_fail={}‰ read_fail={}‰ report_late={}‰(≤{}ms) report_dup={}‰ clock_step={}‰",
            self.crash_per_mille,
            self.crash_after_commit_per_mille,
            self.commit_fail_per_mille,
            self.read_fail_per_mille,
            self.executor.late_per_mille,
            self.executor.late_ms_max,
            self.executor.duplicate_per_mille,
            self.clock_step_per_mille
        )
    }
}

/// The engine configuration of a run, drawn from its seed.
pub fn draw_config(rng: &mut SplitMix64) -> Config {
    let mut config = Config::new(1 + rng.below(4) as usize, JOB_TYPES);
    // Recorded on every claim, so that the stores keep `Job::node` through every fault
    // (drawn from no randomness: a seed replays as before).
    config.node = Some("sim-node".to_owned());
    config.queue_concurrency.insert("build".to_owned(), 1);
    if rng.chance(1, 2) {
        config.queue_concurrency.insert("io".to_owned(), 1 + rng.below(2) as usize);
    }
    if rng.chance(1, 3) {
        config.throttle =
            Some(Throttle { cpu_limit_percent: 40 + rng.below(50) as u32, priority_floor: rng.below(4) as i32 });
    }
    // Half the runs start and end `noop` jobs in their claim step, as the daemon does; the
    // other half hand them to the executor like any job (drawn last: the draws above are
    // as before).
    if rng.chance(1, 2) {
        config.instant_job_types.insert("noop".to_owned());
    }
    config
}

/// Counts of what happened in a run.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Stats {
    pub inputs: u64,
    pub crashes: u64,
    pub store_failures: u64,
    pub enqueued: u64,
    pub rejected: u64,
    pub spawned: u64,
    pub liveness_steps: u64,
    /// Simulated time the main phase spanned.
    pub main_phase_ms: u64,
    /// Recurring slots that fired in the main phase, under faults, and in all.
    pub slots_fired_main: u64,
    pub slots_fired: u64,
    /// Steps of the wall clock.
    pub clock_steps: u64,
}

/// The outcome of one seed.
#[derive(Clone, Debug)]
pub struct RunReport {
    pub seed: u64,
    /// Main-phase steps taken (the `--steps` of the replay).
    pub steps: u64,
    pub steps_requested: u64,
    pub differential: bool,
    /// [`crate::Backend::name`] of the primary store, and of the second one in
    /// differential mode.
    pub backend: &'static str,
    pub secondary: Option<&'static str>,
    pub trace_hash: u64,
    pub faults: FaultRates,
    pub config: Config,
    pub stats: Stats,
    pub violation: Option<Violation>,
    /// The last operations before the end, oldest first.
    pub recent: Vec<String>,
    /// Every operation, with `keep_trace`.
    pub full_trace: Option<Vec<String>>,
    /// How many jobs ended in each state (of those not purged).
    pub final_states: BTreeMap<String, u64>,
}

impl RunReport {
    pub fn passed(&self) -> bool {
        self.violation.is_none()
    }

    /// The first line of a run: the seed and everything it drew.
    pub fn header_line(&self) -> String {
        let config = &self.config;
        format!(
            "SEED={} workers={} queue_concurrency={:?} throttle={:?} faults: {}",
            self.seed, config.workers, config.queue_concurrency, config.throttle, self.faults
        )
    }

    /// The last line of a run.
    pub fn result_line(&self) -> String {
        format!(
            "SEED={} steps={} trace_hash={:016x} result={}",
            self.seed,
            self.steps,
            self.trace_hash,
            if self.passed() { "ok" } else { "fail" }
        )
    }

    pub fn replay_command(&self) -> String {
        // The trace does not name the store, so the replay command must.
        let backend = if self.backend == "memstore" { String::new() } else { format!(" --backend {}", self.backend) };
        let differential = if self.differential { " --differential" } else { "" };
        format!(
            "cargo run --release -p semantica-sim -- --seed {} --steps {}{backend}{differential}",
            self.seed, self.steps_requested
        )
    }

    /// What a failure prints: the invariant, the replay command, the last operations.
    pub fn failure_text(&self) -> Option<String> {
        let violation = self.violation.as_ref()?;
        let mut text =
            format!("SEED={} violated {violation}\nreplay: {}\nlast operations:\n", self.seed, self.replay_command());
        for line in &self.recent {
            text.push_str("  ");
            text.push_str(line);
            text.push('\n');
        }
        Some(text)
    }
}

/// Runs one seed to the end.
pub fn run(options: &SimOptions) -> RunReport {
    let mut sim = Sim::new(options);
    // An assertion of the engine (or of the simulator) is a failure of this seed, reported
    // like any other, not the end of the swarm.
    let result = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sim.run_all())) {
        Ok(result) => result,
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|text| (*text).to_owned()))
                .unwrap_or_else(|| "a panic without a message".to_owned());
            Err(Violation::new("panic", message))
        }
    };
    RunReport {
        seed: options.seed,
        steps: sim.steps,
        steps_requested: options.steps,
        differential: options.differential,
        backend: sim.nodes[0].store.inner().name(),
        secondary: sim.nodes.get(1).map(|node| node.store.inner().name()),
        trace_hash: sim.trace.hash(),
        faults: sim.rates,
        config: sim.config.clone(),
        stats: sim.stats,
        violation: result.err(),
        recent: sim.trace.recent(),
        full_trace: sim.trace.all().map(<[String]>::to_vec),
        final_states: sim.checker.jobs().fold(BTreeMap::new(), |mut counts, job| {
            *counts.entry(job.state.as_str().to_owned()).or_insert(0) += 1;
            counts
        }),
    }
}

/// A sub-seed for one purpose, so that adding draws to one stream leaves the others alone.
fn derive(seed: u64, stream: u64) -> u64 {
    SplitMix64::new(seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15)).next_u64()
}

const STREAM_CONFIG: u64 = 1;
const STREAM_FAULTS: u64 = 2;
const STREAM_WORKLOAD: u64 = 3;
const STREAM_EXECUTOR: u64 = 4;
const STREAM_PROBE: u64 = 5;
const STREAM_DRIVER: u64 = 6;
const STREAM_ENGINE: u64 = 7;

struct Node {
    store: FaultyStore,
    engine: Option<Engine>,
}

enum Exec {
    Done(Box<Step>),
    StoreFailed,
    /// The daemon died after the commit; the step's reply and actions are lost.
    Crashed,
}

struct Sim {
    seed: u64,
    steps_max: u64,
    config: Config,
    rates: FaultRates,
    faults_on: bool,
    /// Engine time: it never goes back and no fault moves it.
    now_ms: u64,
    /// How far the simulated wall clock is ahead of `now_ms` (the clock-step fault moves it).
    wall_offset_ms: i64,
    /// The current engine has not yet taken in `wall_offset_ms`.
    wall_dirty: bool,
    nodes: Vec<Node>,
    executor: SimExecutor,
    probe: SimProbe,
    workload: Workload,
    checker: Checker,
    trace: Trace,
    fault_rng: SplitMix64,
    driver_rng: SplitMix64,
    client_per_mille: u64,
    /// Share of the clients' pauses that are idle spells (up to [`IDLE_MS_MAX`]).
    idle_per_mille: u64,
    incarnation: u64,
    wake_at_ms: Option<u64>,
    /// What the current engine was last told about the machine.
    engine_system: SystemState,
    system_dirty: bool,
    claim_wanted: bool,
    idle_ticks: u32,
    steps: u64,
    stats: Stats,
}

impl Sim {
    fn new(options: &SimOptions) -> Sim {
        let seed = options.seed;
        let config = draw_config(&mut SplitMix64::new(derive(seed, STREAM_CONFIG)));
        let mut fault_rng = SplitMix64::new(derive(seed, STREAM_FAULTS));
        let rates = FaultRates::draw(&mut fault_rng);
        let mut driver_rng = SplitMix64::new(derive(seed, STREAM_DRIVER));
        let client_per_mille = 200 + driver_rng.below(600);
        let idle_per_mille = driver_rng.below(40);
        let mut nodes = vec![Node { store: FaultyStore::new((options.backend)()), engine: None }];
        if options.differential {
            nodes.push(Node { store: FaultyStore::new((options.secondary)()), engine: None });
        }
        Sim {
            seed,
            steps_max: options.steps,
            checker: Checker::new(&config),
            config,
            rates,
            faults_on: true,
            now_ms: START_MS,
            wall_offset_ms: 0,
            wall_dirty: false,
            nodes,
            executor: SimExecutor::new(derive(seed, STREAM_EXECUTOR), rates.executor),
            probe: SimProbe::new(derive(seed, STREAM_PROBE), START_MS),
            workload: Workload::new(derive(seed, STREAM_WORKLOAD)),
            trace: if options.keep_trace { Trace::keeping_all() } else { Trace::new() },
            fault_rng,
            driver_rng,
            client_per_mille,
            idle_per_mille,
            incarnation: 0,
            wake_at_ms: None,
            engine_system: SystemState::UNKNOWN,
            system_dirty: false,
            claim_wanted: false,
            idle_ticks: 0,
            steps: 0,
            stats: Stats::default(),
        }
    }

    fn run_all(&mut self) -> Result<(), Violation> {
        self.trace.record(&format!("seed={} config={:?} faults={:?}", self.seed, self.config, self.rates));
        self.restart()?;
        while self.steps < self.steps_max {
            self.steps += 1;
            self.main_step()?;
            if self.steps % FULL_CHECK_EVERY_STEPS == 0 {
                self.check_whole_stores()?;
            }
        }
        self.liveness()?;
        self.check_whole_stores()
    }

    /// Every store against the checker's mirror of the committed writes, then (in
    /// differential mode) every store against the first, read for read.
    fn check_whole_stores(&self) -> Result<(), Violation> {
        for node in &self.nodes {
            let store = node.store.inner();
            self.checker.check_store(store).map_err(|violation| {
                Violation::new(violation.invariant, format!("{}: {}", store.name(), violation.detail))
            })?;
        }
        self.compare_stores()
    }

    /// Differential mode: the stores hold the same jobs and answer the reads no step
    /// makes (statistics, sequence and generation high-water marks) alike.
    fn compare_stores(&self) -> Result<(), Violation> {
        if self.nodes.len() < 2 {
            return Ok(());
        }
        let first = self.nodes[0].store.inner();
        let read = |store: &dyn crate::Backend| -> Result<StoreImage, Violation> {
            let unreadable = |error| Violation::new("store_diverged", format!("{}: unreadable: {error}", store.name()));
            let jobs = all_jobs(store).map_err(unreadable)?;
            let max_seq = store.max_seq().map_err(unreadable)?;
            let queue_stats = store.queue_stats().map_err(unreadable)?;
            let paused = store.paused_queues().map_err(unreadable)?;
            let recurring = store.recurring_list().map_err(unreadable)?;
            Ok(StoreImage { jobs, max_seq, queue_stats, paused, recurring })
        };
        let mut subjects: BTreeSet<String> = BTreeSet::new();
        let expected = read(first)?;
        subjects.extend(expected.jobs.iter().map(|job| job.subject_key.clone()));
        subjects.extend(self.workload.subjects().cloned());
        for node in &self.nodes[1..] {
            let other = node.store.inner();
            let mismatch = |what: String| {
                Violation::new("differential_mismatch", format!("{} and {} differ: {what}", first.name(), other.name()))
            };
            let actual = read(other)?;
            if let Some(detail) = expected.difference(&actual) {
                return Err(mismatch(detail));
            }
            for subject in &subjects {
                let (a, b) = (first.max_generation(subject), other.max_generation(subject));
                if a != b {
                    return Err(mismatch(format!("max_generation({subject:?}) is {a:?}, then {b:?}")));
                }
            }
        }
        Ok(())
    }

    // ---- the main phase --------------------------------------------------------------

    fn main_step(&mut self) -> Result<(), Violation> {
        if self.rates.crash_per_mille > 0 && self.fault_rng.chance(self.rates.crash_per_mille, 1000) {
            self.trace.record(&format!("t={} CRASH", self.now_ms));
            return self.restart();
        }
        if self.rates.clock_step_per_mille > 0 && self.fault_rng.chance(self.rates.clock_step_per_mille, 1000) {
            self.step_wall_clock();
        }
        // As the daemon does within a second of noticing, before any tick can fire a slot.
        if self.wall_dirty {
            return self.send_wall_clock();
        }
        if self.system_dirty {
            return self.send_system();
        }
        if self.claim_wanted {
            return self.claim(None);
        }
        if self.executor.next_report_at_ms().is_some_and(|at| at <= self.now_ms) && self.driver_rng.chance(3, 4) {
            return self.deliver_report();
        }
        if self.wake_at_ms.is_some_and(|at| at <= self.now_ms) && self.driver_rng.chance(3, 4) {
            return self.tick();
        }
        if let Some(system) = self.probe.poll_change(self.now_ms) {
            self.trace.record(&format!("t={} probe {system:?}", self.now_ms));
            self.system_dirty = true;
            return self.send_system();
        }
        if self.driver_rng.chance(self.client_per_mille, 1000) {
            return self.client_op();
        }
        self.advance_time();
        Ok(())
    }

    fn advance_time(&mut self) {
        let think_ms_max = if self.driver_rng.chance(self.idle_per_mille, 1000) { IDLE_MS_MAX } else { THINK_MS_MAX };
        let think_ms = 1 + self.driver_rng.below(think_ms_max);
        let next = [
            self.executor.next_report_at_ms(),
            self.wake_at_ms,
            self.probe.next_change_at_ms(),
            Some(self.now_ms + think_ms),
        ]
        .into_iter()
        .flatten()
        .min()
        .expect("the clients always have a next time");
        // Something already due was passed over by chance: let a little time go by anyway.
        let next = if next <= self.now_ms { self.now_ms + self.driver_rng.below(20) } else { next };
        self.now_ms = next;
        self.want_claim_if_idle();
    }

    /// Workers are idle while a job waits: a daemon would try to claim.
    fn want_claim_if_idle(&mut self) {
        let running = self.checker.active_jobs().filter(|job| job.state == semantica_core::JobState::Running).count();
        let paused = self.checker.paused_queues();
        let queued = self
            .checker
            .active_jobs()
            .any(|job| job.state == semantica_core::JobState::Queued && !paused.contains(&job.queue));
        self.claim_wanted |= queued && running < self.config.workers;
    }

    /// The clock-step fault: the wall clock jumps back or forward, a little or a lot.
    fn step_wall_clock(&mut self) {
        let (low, high) = if self.fault_rng.chance(1, 2) { WALL_STEP_SMALL_MS } else { WALL_STEP_LARGE_MS };
        let size_ms = (low + self.fault_rng.below(high - low + 1)) as i64;
        let back = self.fault_rng.chance(1, 2);
        let step_ms = if back && self.wall_offset_ms - size_ms >= WALL_OFFSET_MS_MIN { -size_ms } else { size_ms };
        self.wall_offset_ms += step_ms;
        self.wall_dirty = true;
        self.stats.clock_steps += 1;
        self.trace
            .record(&format!("t={} WALL CLOCK stepped {step_ms:+} ms, offset {} ms", self.now_ms, self.wall_offset_ms));
    }

    /// Tells the engine the wall clock's offset; until it has taken it in, it is sent
    /// again before anything else.
    fn send_wall_clock(&mut self) -> Result<(), Violation> {
        if let Exec::Done(_) = self.execute(Input::WallClock { offset_ms: self.wall_offset_ms })? {
            self.wall_dirty = false;
        }
        Ok(())
    }

    fn send_system(&mut self) -> Result<(), Violation> {
        let system = self.probe.state();
        self.engine_system = system;
        if let Exec::Done(_) = self.execute(Input::SystemChanged(system))? {
            self.system_dirty = false;
        }
        Ok(())
    }

    /// The daemon's claims: a single `Claim` or a `ClaimBatch` of a drawn size (the
    /// daemon asks for one per free worker), so that both paths run under faults.
    fn claim(&mut self, queue: Option<String>) -> Result<(), Violation> {
        let wanted_all = queue.is_none();
        let batch = 1 + self.driver_rng.below(self.config.workers as u64 + 1) as usize;
        let input =
            if self.driver_rng.chance(1, 2) { Input::Claim { queue } } else { Input::ClaimBatch { queue, max: batch } };
        if let Exec::Done(step) = self.execute(input)? {
            let exhausted = match &step.reply {
                Reply::Claimed(None) => true,
                Reply::ClaimedBatch(claimed) => claimed.len() < batch,
                _ => false,
            };
            if wanted_all && exhausted {
                self.claim_wanted = false;
            }
        }
        Ok(())
    }

    /// One report, or (as the daemon's report pump does) every report that is due, up to
    /// a drawn count, in one `ReportBatch`.
    fn deliver_report(&mut self) -> Result<(), Violation> {
        let Some(report) = self.executor.poll_report(self.now_ms) else { return Ok(()) };
        let mut reports = vec![report];
        if self.driver_rng.chance(1, 2) {
            let more = self.driver_rng.below(6) as usize;
            while reports.len() <= more {
                match self.executor.poll_report(self.now_ms) {
                    Some(report) => reports.push(report),
                    None => break,
                }
            }
        }
        let input =
            if reports.len() == 1 { Input::Report(reports[0].clone()) } else { Input::ReportBatch(reports.clone()) };
        match self.execute(input)? {
            // A report is the executor's word about a process that is gone: the daemon
            // keeps it until the engine has taken it in.
            Exec::StoreFailed => {
                for report in reports {
                    self.executor.redeliver(self.now_ms, report);
                }
            }
            Exec::Done(_) | Exec::Crashed => {
                if reports.iter().any(|report| matches!(report, Report::Finished { .. })) {
                    self.claim_wanted = true;
                }
            }
        }
        self.check_processes()
    }

    fn tick(&mut self) -> Result<(), Violation> {
        if let Exec::Done(step) = self.execute(Input::Tick)? {
            let asks_again_now = step.wake_at_ms.is_some_and(|at| at <= self.now_ms);
            if step.persist.is_empty() && asks_again_now {
                self.idle_ticks += 1;
                if self.idle_ticks > IDLE_TICKS_MAX {
                    let detail = format!(
                        "{} ticks in a row changed nothing and asked to be called again at once",
                        self.idle_ticks
                    );
                    return Err(Violation::new("tick_spin", detail));
                }
            } else {
                self.idle_ticks = 0;
            }
        }
        Ok(())
    }

    fn client_op(&mut self) -> Result<(), Violation> {
        let wall_ms = self.now_ms.saturating_add_signed(self.wall_offset_ms);
        match self.workload.next_op(self.now_ms, wall_ms) {
            ClientOp::Send { input, expect } => self.client_send(input, expect),
            ClientOp::Query(query) => self.client_query(&query),
            ClientOp::Get(id) => self.client_get(id),
        }
    }

    fn client_send(&mut self, input: Input, expect: Expect) -> Result<(), Violation> {
        let Exec::Done(step) = self.execute(input.clone())? else { return Ok(()) };
        match (&expect, &step.reply) {
            (Expect::Invalid(_), Reply::Rejected(semantica_core::Rejection::Validation(_))) => {}
            (Expect::NotFound, Reply::Rejected(semantica_core::Rejection::NotFound(_))) => {}
            (Expect::NotFound, reply) => {
                return Err(Violation::new("stranger_found", format!("{input:?} answered {reply:?}")));
            }
            (Expect::UnknownParent { .. }, Reply::Rejected(semantica_core::Rejection::Validation(error)))
                if error.kind == ValidationKind::UnknownParent => {}
            (Expect::UnknownParent { index: 0 }, Reply::Enqueued(enqueued)) if enqueued.deduplicated => {}
            (Expect::UnknownParent { index }, Reply::EnqueuedBatch(results))
                if results.get(*index).is_some_and(|enqueued| enqueued.deduplicated) => {}
            (Expect::UnknownParent { .. }, reply) => {
                return Err(Violation::new("invalid_request_accepted", format!("unknown parent: answered {reply:?}")));
            }
            (Expect::Invalid(what), reply) => {
                return Err(Violation::new("invalid_request_accepted", format!("{what}: answered {reply:?}")));
            }
            (Expect::Valid, Reply::Rejected(semantica_core::Rejection::Validation(error))) => {
                let request = match &input {
                    Input::Enqueue(request) => Some(request.as_ref()),
                    Input::EnqueueBatch(requests) => error.index.and_then(|index| requests.get(index)),
                    _ => None,
                };
                let parent = request.and_then(|request| request.parent_job_id.as_ref());
                let purged_parent = error.kind == ValidationKind::UnknownParent
                    && parent.and_then(|text| text.parse::<JobId>().ok()).is_some_and(|id| self.checker.was_purged(id));
                if !purged_parent {
                    return Err(Violation::new("valid_request_rejected", format!("{error:?} for {input:?}")));
                }
            }
            _ => {}
        }
        let requests: Vec<&EnqueueRequest> = match &input {
            Input::Enqueue(request) => vec![request.as_ref()],
            Input::EnqueueBatch(requests) => requests.iter().collect(),
            _ => Vec::new(),
        };
        if let Reply::Retried(results) = &step.reply {
            for enqueued in results {
                self.stats.enqueued += 1;
                self.workload.learn(enqueued.job_id);
            }
        }
        let results: &[Enqueued] = match &step.reply {
            Reply::Enqueued(enqueued) => std::slice::from_ref(enqueued),
            Reply::EnqueuedBatch(results) => results,
            _ => &[],
        };
        for (request, enqueued) in requests.iter().zip(results) {
            self.stats.enqueued += 1;
            self.workload.learn(enqueued.job_id);
            if let Some(subject_key) = &request.subject_key {
                self.workload.learn_generation(subject_key, enqueued.generation);
            }
        }
        if let Reply::Rejected(_) = &step.reply {
            self.stats.rejected += 1;
        }
        Ok(())
    }

    fn client_query(&mut self, query: &JobQuery) -> Result<(), Violation> {
        let page = self.nodes[0].store.inner().query(query);
        self.same_on_every_store(&page, |store| store.query(query), || format!("query {query:?}"))?;
        let page = page.map_err(|error| Violation::new("store_diverged", format!("query failed: {error}")))?;
        self.trace.record(&format!(
            "t={} query {query:?} => {} items, next {:?}",
            self.now_ms,
            page.items.len(),
            page.next_after_seq
        ));
        if page.items.len() > query.limit {
            return Err(Violation::new("query_wrong", format!("{} items for limit {}", page.items.len(), query.limit)));
        }
        let seqs: Vec<u64> = page.items.iter().map(|job| job.seq).collect();
        let ordered = seqs.windows(2).all(|w| if query.descending { w[0] > w[1] } else { w[0] < w[1] });
        if !ordered {
            return Err(Violation::new("query_wrong", format!("items out of order: {seqs:?}")));
        }
        for job in &page.items {
            let matches = (query.states.is_empty() || query.states.contains(&job.state))
                && (query.queues.is_empty() || query.queues.contains(&job.queue))
                && query.tag.as_ref().is_none_or(|tag| job.tag.as_ref() == Some(tag))
                && query.subject_key_prefix.as_ref().is_none_or(|prefix| job.subject_key.starts_with(prefix.as_str()));
            if !matches {
                return Err(Violation::new("query_wrong", format!("job {} does not match {query:?}", job.id)));
            }
            if self.checker.job(job.id) != Some(job) {
                return Err(Violation::new(
                    "store_diverged",
                    format!("query returned job {} unlike its last write", job.id),
                ));
            }
        }
        Ok(())
    }

    fn client_get(&mut self, id: JobId) -> Result<(), Violation> {
        let job = self.nodes[0].store.inner().get(id);
        self.same_on_every_store(&job, |store| store.get(id), || format!("get {id}"))?;
        let job = job.map_err(|error| Violation::new("store_diverged", format!("get failed: {error}")))?;
        self.trace.record(&format!("t={} get {id} => {:?}", self.now_ms, job.as_ref().map(|job| job.state)));
        if job.as_ref() != self.checker.job(id) {
            return Err(Violation::new("store_diverged", format!("get {id} returned {job:?}")));
        }
        if job.is_none() && !self.checker.was_purged(id) {
            return Err(Violation::new("acked_job_lost", format!("get {id}: an acknowledged job is gone")));
        }
        Ok(())
    }

    /// Differential mode: a client read answers alike on every store.
    fn same_on_every_store<T: PartialEq + std::fmt::Debug>(
        &self,
        first: &T,
        read: impl Fn(&dyn crate::Backend) -> T,
        what: impl Fn() -> String,
    ) -> Result<(), Violation> {
        for node in &self.nodes[1..] {
            let other = read(node.store.inner());
            if other != *first {
                let detail = format!(
                    "{}: {} answered {other:?}\n{} answered {first:?}",
                    what(),
                    node.store.inner().name(),
                    self.nodes[0].store.inner().name()
                );
                return Err(Violation::new("differential_mismatch", detail));
            }
        }
        Ok(())
    }

    fn check_processes(&mut self) -> Result<(), Violation> {
        if let Some(anomaly) = self.executor.anomalies.first() {
            return Err(Violation::new("kill_of_stranger", anomaly.clone()));
        }
        let processes: Vec<LiveProcess> = self
            .executor
            .processes()
            .map(|process| LiveProcess { job_id: process.job_id, subject_key: process.subject_key.clone() })
            .collect();
        self.checker.check_processes(&processes)
    }

    // ---- one engine input ------------------------------------------------------------

    /// Hands `input` to every node's engine, commits, checks, and carries out the actions.
    fn execute(&mut self, input: Input) -> Result<Exec, Violation> {
        self.stats.inputs += 1;
        let faults = self.faults_on;
        let rates = self.rates;
        let fail_commit =
            faults && rates.commit_fail_per_mille > 0 && self.fault_rng.chance(rates.commit_fail_per_mille, 1000);
        let read_fault =
            (faults && rates.read_fail_per_mille > 0 && self.fault_rng.chance(rates.read_fail_per_mille, 1000))
                .then(|| self.fault_rng.below(8) as u32);
        let crash_after_commit = faults
            && rates.crash_after_commit_per_mille > 0
            && self.fault_rng.chance(rates.crash_after_commit_per_mille, 1000);
        let now_ms = self.now_ms;
        let mut results = Vec::with_capacity(self.nodes.len());
        for node in &mut self.nodes {
            node.store.arm(fail_commit, read_fault);
            let engine = node.engine.as_mut().expect("an engine runs between restarts");
            let result = engine.handle(now_ms, input.clone(), &node.store).and_then(|step| {
                if !step.persist.is_empty() {
                    node.store.commit(&step.persist)?;
                }
                Ok(step)
            });
            // The engine takes on a step's memory only once its writes are committed.
            if let Ok(step) = &result {
                engine.committed(step);
            }
            node.store.disarm();
            results.push(result);
        }
        let (full, shown) = match &results[0] {
            Ok(step) => (
                format!(
                    "t={now_ms} inc={} {input:?} => {:?} actions={:?} wake={:?} may_claim={}",
                    self.incarnation, step.reply, step.actions, step.wake_at_ms, step.may_claim
                ),
                format!(
                    "t={now_ms} {} => {} [{}]{}",
                    describe::input(&input),
                    describe::reply(&step.reply),
                    describe::actions(&step.actions),
                    if fail_commit || read_fault.is_some() { " (fault armed, missed)" } else { "" }
                ),
            ),
            Err(error) => (
                format!("t={now_ms} inc={} {input:?} => STORE ERROR {error}", self.incarnation),
                format!("t={now_ms} {} => STORE ERROR {error}", describe::input(&input)),
            ),
        };
        self.trace.record_as(&full, &shown);
        if let Some(other) = results.iter().skip(1).find(|other| **other != results[0]) {
            let detail = format!("second store answered {other:?}\nfirst store answered {:?}", results[0]);
            return Err(Violation::new("differential_mismatch", detail));
        }
        let step = match results.swap_remove(0) {
            Ok(step) => step,
            Err(_) => {
                self.stats.store_failures += 1;
                return Ok(Exec::StoreFailed);
            }
        };
        for node in &self.nodes {
            self.checker.check_committed(node.store.inner(), &step)?;
        }
        let crashed = crash_after_commit && !step.persist.is_empty();
        let observation =
            Observation { now_ms, input: &input, step: &step, system: self.engine_system, acknowledged: !crashed };
        self.checker.observe(&observation)?;
        if crashed {
            self.trace.record(&format!("t={now_ms} CRASH after commit"));
            self.restart()?;
            return Ok(Exec::Crashed);
        }
        for action in &step.actions {
            match action {
                Action::Spawn(job) => {
                    self.stats.spawned += 1;
                    self.executor.spawn(now_ms, job);
                }
                Action::Kill(order) => self.executor.kill(now_ms, order),
            }
        }
        self.wake_at_ms = match input {
            // These answer with the store's next wake-up as a whole.
            Input::Tick | Input::Recover => step.wake_at_ms,
            _ => [self.wake_at_ms, step.wake_at_ms].into_iter().flatten().min(),
        };
        self.claim_wanted |= step.may_claim;
        self.check_processes()?;
        Ok(Exec::Done(Box::new(step)))
    }

    // ---- crash and restart -----------------------------------------------------------

    /// Drops the engines and every process; builds new engines over the same stores and
    /// recovers. Only what was committed survives.
    fn restart(&mut self) -> Result<(), Violation> {
        self.stats.crashes += 1;
        self.incarnation += 1;
        self.executor.crash();
        self.wake_at_ms = None;
        self.engine_system = SystemState::UNKNOWN;
        self.idle_ticks = 0;
        let ids_seed = derive(self.seed, STREAM_ENGINE + 2 * self.incarnation);
        let rng_seed = derive(self.seed, STREAM_ENGINE + 2 * self.incarnation + 1);
        for node in &mut self.nodes {
            let store = node.store.inner_mut();
            store.reopen().map_err(|error| {
                Violation::new("reopen_failed", format!("{} did not reopen: {error}", store.name()))
            })?;
            let engine = Engine::new(
                self.config.clone(),
                Box::new(SeededIds::new(ids_seed)),
                Box::new(SplitMix64::new(rng_seed)),
            );
            node.engine = Some(engine);
        }
        // Before the engine touches it: what reopened is exactly what was committed.
        self.check_whole_stores()?;
        for _ in 0..RECOVER_TRIES_MAX {
            match self.execute(Input::Recover)? {
                Exec::Done(_) => {
                    self.system_dirty = true;
                    self.claim_wanted = true;
                    // A new engine knows no offset: the daemon tells it the wall clock's
                    // right after recovery, whatever it is (jobs placed before the
                    // restart may hold another).
                    self.wall_dirty = true;
                    self.send_wall_clock()?;
                    return self.check_whole_stores();
                }
                Exec::StoreFailed => continue,
                // It crashed again after committing; the nested restart has recovered.
                Exec::Crashed => return Ok(()),
            }
        }
        Err(Violation::new("recovery_impossible", format!("{RECOVER_TRIES_MAX} recoveries failed")))
    }

    // ---- liveness --------------------------------------------------------------------

    /// Faults and clients stop, the machine goes idle, every event is emitted, and time
    /// runs: every job must end within the bound.
    ///
    /// Paused queues and recurring jobs would keep the phase from ending (a paused queue
    /// holds its jobs, a recurring job enqueues forever), so the clients step in as a
    /// person would: they resume every paused queue at once, and delete the recurring jobs
    /// only after the engine has ticked through [`RECURRING_WINDOW_MS`] without faults and
    /// every slot that came in it has fired (`recurring_slot_missed`). Deleting them first
    /// would leave that check nothing to look at; checking only at the very end would
    /// require them to be gone. Events are emitted again after the window, for the jobs the
    /// recurring jobs enqueued in it.
    fn liveness(&mut self) -> Result<(), Violation> {
        self.trace.record(&format!("t={} LIVENESS", self.now_ms));
        self.faults_on = false;
        self.executor.set_faults(ExecutorFaults::default());
        self.probe.freeze_idle();
        self.system_dirty = true;
        let started_ms = self.now_ms;
        self.stats.main_phase_ms = started_ms - START_MS;
        self.stats.slots_fired_main = self.checker.fired_slot_count() as u64;
        let mut steps = 0u64;
        let paused: Vec<String> = self.checker.paused_queues().iter().cloned().collect();
        for queue in paused {
            self.execute(Input::PauseQueue { queue, paused: false })?;
        }
        if self.checker.recurring_jobs().next().is_some() {
            self.drive_liveness(started_ms, Some(started_ms + RECURRING_WINDOW_MS), &mut steps)?;
            for node in &self.nodes {
                self.checker.check_recurring_caught_up(node.store.inner(), self.now_ms)?;
            }
            self.trace.record(&format!(
                "t={} recurring window over: slots fired {}",
                self.now_ms,
                self.checker.fired_slot_count()
            ));
            let names: Vec<String> = self.checker.recurring_jobs().map(|recurring| recurring.name.clone()).collect();
            for name in names {
                self.execute(Input::DeleteRecurring { name })?;
            }
        }
        self.drive_liveness(started_ms, None, &mut steps)?;
        self.stats.slots_fired = self.checker.fired_slot_count() as u64;
        Ok(())
    }

    /// The liveness phase's loop: until every job has ended, or with `window_end_ms` until
    /// the clock has reached it and nothing more is due.
    fn drive_liveness(
        &mut self,
        started_ms: u64,
        window_end_ms: Option<u64>,
        steps: &mut u64,
    ) -> Result<(), Violation> {
        let mut events: Vec<String> = self.workload.events_used().cloned().collect();
        let deadline_ms = self.checker.latest_absolute_time_ms().max(started_ms) + LIVENESS_TIME_MS_MAX;
        let mut stuck_claimed = false;
        loop {
            *steps += 1;
            self.stats.liveness_steps = *steps;
            if *steps > LIVENESS_STEPS_MAX || self.now_ms > deadline_ms {
                return Err(self
                    .liveness_violation(format!("not done after {steps} steps and {} ms", self.now_ms - started_ms)));
            }
            if self.wall_dirty {
                self.send_wall_clock()?;
            } else if self.system_dirty {
                self.send_system()?;
            } else if let Some(name) = events.pop() {
                self.execute(Input::Event { name })?;
            } else if self.executor.next_report_at_ms().is_some_and(|at| at <= self.now_ms) {
                self.deliver_report()?;
            } else if self.wake_at_ms.is_some_and(|at| at <= self.now_ms) {
                self.tick()?;
            } else if self.claim_wanted {
                self.claim(None)?;
            } else if window_end_ms.is_none() && self.checker.active_jobs().next().is_none() && self.executor.is_idle()
            {
                return self.checker.check_quiescent();
            } else {
                let next = [self.executor.next_report_at_ms(), self.wake_at_ms].into_iter().flatten().min();
                match (next, window_end_ms) {
                    // Nothing more is due before the window ends.
                    (next, Some(end)) if next.is_none_or(|next| next > end) => {
                        if self.now_ms >= end {
                            return Ok(());
                        }
                        self.now_ms = end;
                        self.want_claim_if_idle();
                    }
                    (Some(next), _) => {
                        stuck_claimed = false;
                        self.now_ms = self.now_ms.max(next);
                        self.want_claim_if_idle();
                    }
                    (None, _) if !stuck_claimed => {
                        stuck_claimed = true;
                        self.claim_wanted = true;
                    }
                    (None, _) => return Err(self.liveness_violation("nothing left to happen".to_owned())),
                }
            }
        }
    }

    fn liveness_violation(&self, why: String) -> Violation {
        let stuck: BTreeSet<String> =
            self.checker.active_jobs().take(5).map(|job| format!("{} {} {job:?}", job.id, job.state)).collect();
        Violation::new("liveness", format!("{why}; jobs not done (first 5): {stuck:#?}"))
    }
}

/// A whole store, as [`Sim::compare_stores`] reads it.
struct StoreImage {
    jobs: Vec<semantica_core::Job>,
    max_seq: u64,
    queue_stats: Vec<semantica_core::QueueStats>,
    paused: Vec<String>,
    recurring: Vec<semantica_core::Recurring>,
}

impl StoreImage {
    /// The first difference, told briefly: the full jobs only for the first one that differs.
    fn difference(&self, other: &StoreImage) -> Option<String> {
        if self.jobs.len() != other.jobs.len() {
            let ids = |image: &StoreImage| image.jobs.iter().map(|job| job.id).collect::<BTreeSet<JobId>>();
            let (a, b) = (ids(self), ids(other));
            let only_first: Vec<&JobId> = a.difference(&b).take(5).collect();
            let only_second: Vec<&JobId> = b.difference(&a).take(5).collect();
            return Some(format!(
                "{} jobs, then {} (only in the first: {only_first:?}; only in the second: {only_second:?})",
                self.jobs.len(),
                other.jobs.len()
            ));
        }
        if let Some((a, b)) = self.jobs.iter().zip(&other.jobs).find(|(a, b)| a != b) {
            return Some(format!("job {}:\n  {a:?}\n  {b:?}", a.id));
        }
        if self.max_seq != other.max_seq {
            return Some(format!("max_seq {} then {}", self.max_seq, other.max_seq));
        }
        if self.queue_stats != other.queue_stats {
            return Some(format!("queue_stats {:?}\n  then {:?}", self.queue_stats, other.queue_stats));
        }
        if self.paused != other.paused {
            return Some(format!("paused queues {:?} then {:?}", self.paused, other.paused));
        }
        if let Some((a, b)) = self.recurring.iter().zip(&other.recurring).find(|(a, b)| a != b) {
            return Some(format!("recurring job {:?}:\n  {a:?}\n  {b:?}", a.name));
        }
        if self.recurring.len() != other.recurring.len() {
            return Some(format!("{} recurring jobs, then {}", self.recurring.len(), other.recurring.len()));
        }
        None
    }
}
