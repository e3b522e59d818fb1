//! Retry back-off: how long a failed job waits before its next attempt.

use crate::job::Backoff;
use crate::ports::Rng;

/// The nominal delay before attempt `failed_attempts + 1`, before jitter:
/// `min(base·factorⁿ⁻¹, max)` where n = `failed_attempts` (≥ 1).
pub fn nominal_delay_ms(policy: &Backoff, failed_attempts: u32) -> u64 {
    assert!(failed_attempts >= 1, "a back-off follows a failed attempt");
    let cap = policy.max_ms as f64;
    let mut delay = policy.base_ms as f64;
    // Repeated multiplication (bounded by max_attempts ≤ 100) rather than powf: the same
    // result on every platform, and the cap stops growth long before f64 overflows.
    for _ in 1..failed_attempts {
        if delay >= cap {
            break;
        }
        delay *= policy.factor;
    }
    delay.min(cap) as u64
}

/// The delay actually used: the nominal delay scaled by a factor drawn uniformly from
/// `[1 - jitter, 1 + jitter]`, then capped at `max_ms`.
pub fn delay_ms(policy: &Backoff, failed_attempts: u32, rng: &mut dyn Rng) -> u64 {
    let nominal = nominal_delay_ms(policy, failed_attempts);
    let unit = rng.next_f64(); // [0, 1)
    let scale = 1.0 + policy.jitter * (2.0 * unit - 1.0);
    let jittered = (nominal as f64 * scale).round() as u64;
    let delay = jittered.min(policy.max_ms);
    assert!(delay <= policy.max_ms);
    delay
}
