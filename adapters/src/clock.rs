//! The wall clock.

use std::time::{SystemTime, UNIX_EPOCH};

use semantica_core::Clock;

/// Epoch milliseconds from the system clock, never going backwards: the engine asserts
/// that time is monotonic, and a wall clock stepped back by NTP must not trip that.
#[derive(Debug, Default)]
pub struct SystemClock {
    last_ms: std::sync::atomic::AtomicU64,
}

impl SystemClock {
    pub fn new() -> SystemClock {
        SystemClock::default()
    }
}

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        use std::sync::atomic::Ordering;
        let wall_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        // fetch_max returns the previous maximum; the answer is the larger of the two.
        let previous = self.last_ms.fetch_max(wall_ms, Ordering::AcqRel);
        previous.max(wall_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_clock_is_near_the_wall_clock_and_never_goes_back() {
        let clock = SystemClock::new();
        let wall_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
        let first = clock.now_ms();
        assert!(first.abs_diff(wall_ms) < 60_000, "{first} vs {wall_ms}");
        // Pretend the clock had already seen a later time: it must hold that time.
        clock.last_ms.store(first + 10_000, std::sync::atomic::Ordering::Release);
        assert_eq!(clock.now_ms(), first + 10_000);
    }
}
