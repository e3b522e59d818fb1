//! Ports: everything the engine needs from the world, as traits the adapters implement.
//!
//! core calls none of the world directly. Time arrives as the `now_ms` argument of every
//! engine call (read from a [`Clock`] by the driver); ids and randomness come from
//! [`IdGen`] and [`Rng`] handed to the engine once; the store is [`crate::store::Store`].

use crate::id::JobId;
use crate::job::Job;

/// Wall-clock time in epoch milliseconds. Drivers read it and pass it into the engine;
/// the engine asserts it never goes backwards.
pub trait Clock {
    fn now_ms(&self) -> u64;
}

/// Source of job ids and trace ids.
pub trait IdGen {
    fn next_id(&mut self) -> JobId;
}

/// Source of randomness (back-off jitter). Seeded in tests and the simulator.
pub trait Rng {
    fn next_u64(&mut self) -> u64;

    /// Uniform in `[0, 1)`.
    fn next_f64(&mut self) -> f64 {
        // 53 random bits: every value exactly representable.
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// SplitMix64: a small seeded generator whose output is fixed by this code forever, so a
/// seed replays the same run on any machine and any version of any dependency.
#[derive(Clone, Debug)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64 { state: seed }
    }

    /// Uniform in `0..bound` (bound > 0); the tiny modulo bias is irrelevant to tests.
    pub fn below(&mut self, bound: u64) -> u64 {
        assert!(bound > 0);
        self.next_u64() % bound
    }

    /// True with probability `numerator / denominator`.
    pub fn chance(&mut self, numerator: u64, denominator: u64) -> bool {
        self.below(denominator) < numerator
    }
}

impl Rng for SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// Ids drawn from a seeded generator: deterministic ids for tests and the simulator.
#[derive(Clone, Debug)]
pub struct SeededIds {
    rng: SplitMix64,
}

impl SeededIds {
    pub fn new(seed: u64) -> SeededIds {
        SeededIds { rng: SplitMix64::new(seed ^ 0x05EE_D1D5) }
    }
}

impl IdGen for SeededIds {
    fn next_id(&mut self) -> JobId {
        let high = u128::from(self.rng.next_u64());
        let low = u128::from(self.rng.next_u64());
        JobId::from_u128(high << 64 | low)
    }
}

/// What the machine is doing now, as the engine needs it for throttling and conditions.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct SystemState {
    /// CPU load over all cores, in percent (0–100).
    pub cpu_load_percent: u32,
    pub is_idle: bool,
    /// On mains power (or charging). A machine without a battery is on mains.
    pub is_charging: bool,
}

impl SystemState {
    /// Until a probe says otherwise: not idle, on mains, not loaded.
    pub const UNKNOWN: SystemState = SystemState { cpu_load_percent: 0, is_idle: false, is_charging: true };
}

/// Reads the machine's state; the daemon feeds changes to the engine as
/// [`crate::engine::Input::SystemChanged`].
pub trait SystemProbe {
    fn sample(&mut self) -> SystemState;
}

/// How the engine wants a process (or handler) stopped.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct KillOrder {
    pub job_id: JobId,
    pub attempt: u32,
    pub pid: Option<u32>,
    /// Kill `pid` only if the process with that pid started at this time: never a stranger
    /// that inherited a recycled pid.
    pub pid_started_at: Option<u64>,
}

/// Runs jobs. Every `spawn` is answered later by exactly one final report
/// ([`crate::engine::Report`]), also when the run was killed, unless the daemon dies first;
/// restart recovery covers that case.
pub trait Executor {
    fn spawn(&mut self, job: &Job);
    fn kill(&mut self, order: &KillOrder);
}
