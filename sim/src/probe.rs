//! The simulated system probe: CPU load, idleness and power change at random times.

use semantica_core::{SplitMix64, SystemState};

/// Longest time between two changes of the simulated machine.
const CHANGE_INTERVAL_MS_MAX: u64 = 120_000;

#[derive(Clone, Debug)]
pub struct SimProbe {
    rng: SplitMix64,
    state: SystemState,
    next_change_at_ms: u64,
    frozen: bool,
}

impl SimProbe {
    pub fn new(seed: u64, now_ms: u64) -> SimProbe {
        let mut rng = SplitMix64::new(seed);
        let state = draw_state(&mut rng);
        let next_change_at_ms = now_ms + 1 + rng.below(CHANGE_INTERVAL_MS_MAX);
        SimProbe { rng, state, next_change_at_ms, frozen: false }
    }

    pub fn state(&self) -> SystemState {
        self.state
    }

    /// When the machine changes next; `None` once frozen.
    pub fn next_change_at_ms(&self) -> Option<u64> {
        (!self.frozen).then_some(self.next_change_at_ms)
    }

    /// The new state if a change is due at `now_ms`.
    pub fn poll_change(&mut self, now_ms: u64) -> Option<SystemState> {
        if self.frozen || now_ms < self.next_change_at_ms {
            return None;
        }
        self.state = draw_state(&mut self.rng);
        self.next_change_at_ms = now_ms + 1 + self.rng.below(CHANGE_INTERVAL_MS_MAX);
        Some(self.state)
    }

    /// The liveness phase: idle, charging, no load, and no more changes.
    pub fn freeze_idle(&mut self) -> SystemState {
        self.frozen = true;
        self.state = SystemState { cpu_load_percent: 0, is_idle: true, is_charging: true };
        self.state
    }
}

fn draw_state(rng: &mut SplitMix64) -> SystemState {
    SystemState { cpu_load_percent: rng.below(101) as u32, is_idle: rng.chance(1, 2), is_charging: rng.chance(2, 3) }
}
