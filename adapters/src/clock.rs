//! The engine's clock: time that really elapses, on a timeline that starts at the wall
//! clock.
//!
//! The engine's timers are mostly durations (delays, timeouts, TTLs, back-offs). A wall
//! clock that is stepped (NTP, a user, a VM restored) must neither freeze them (stepped
//! back) nor fire them early (stepped forward), so engine time advances with
//! `CLOCK_BOOTTIME`, which counts the time a machine was suspended and is never stepped.
//! It starts at the wall clock; [`SystemClock::offset_ms`] says how far the wall clock
//! has moved from it since, and the daemon's edge converts what clients see and give as
//! wall-clock times (job views, `schedule.at`, `deadline`) with that offset.
//!
//! Across a restart the timeline goes on from [`ClockState`], saved by the daemon: the
//! engine time last seen plus the wall-clock time that passed while no daemon ran.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use semantica_core::Clock;

/// Where the engine's timeline stood at a wall-clock time, to go on from after a restart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockState {
    pub engine_ms: u64,
    pub wall_ms: u64,
}

/// The two readings engine time is made of.
pub trait TimeSource: Send + Sync {
    /// Epoch ms of the wall clock (may jump).
    fn wall_ms(&self) -> u64;
    /// Ms that really elapsed since some fixed point (never jumps, counts suspend).
    fn elapsed_ms(&self) -> u64;
}

/// `CLOCK_REALTIME` and `CLOCK_BOOTTIME`.
#[derive(Debug, Default)]
pub struct OsTime;

impl TimeSource for OsTime {
    fn wall_ms(&self) -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
    }

    fn elapsed_ms(&self) -> u64 {
        let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME).expect("CLOCK_BOOTTIME is readable");
        (now.tv_sec() as u64) * 1000 + (now.tv_nsec() as u64) / 1_000_000
    }
}

pub struct SystemClock<S: TimeSource = OsTime> {
    source: S,
    /// Engine time at `anchor_elapsed_ms`.
    anchor_engine_ms: u64,
    anchor_elapsed_ms: u64,
    /// The engine asserts that time never goes backwards; a source that did is held.
    last_ms: AtomicU64,
    /// The offset last reported, kept until the wall clock moves by more than
    /// [`OFFSET_STEP_MIN_MS`]: reading two clocks one after the other differs by a
    /// millisecond or so, and views must not wobble with it.
    offset_ms: AtomicI64,
}

/// A wall clock that moved less than this against engine time has not been stepped.
pub const OFFSET_STEP_MIN_MS: i64 = 1_000;

impl SystemClock<OsTime> {
    /// A timeline that starts at the wall clock now.
    pub fn new() -> SystemClock<OsTime> {
        SystemClock::resume(OsTime, None)
    }
}

impl Default for SystemClock<OsTime> {
    fn default() -> SystemClock<OsTime> {
        SystemClock::new()
    }
}

impl<S: TimeSource> SystemClock<S> {
    /// Goes on from `saved`: its engine time plus the wall-clock time since it was saved
    /// (the only measure of a time no process of ours saw; never negative). Without a
    /// saved state, the timeline starts at the wall clock.
    pub fn resume(source: S, saved: Option<ClockState>) -> SystemClock<S> {
        let wall_ms = source.wall_ms();
        let anchor_engine_ms = match saved {
            Some(saved) => saved.engine_ms.saturating_add(wall_ms.saturating_sub(saved.wall_ms)),
            None => wall_ms,
        };
        let anchor_elapsed_ms = source.elapsed_ms();
        let offset_ms = AtomicI64::new(wall_ms as i64 - anchor_engine_ms as i64);
        SystemClock {
            source,
            anchor_engine_ms,
            anchor_elapsed_ms,
            last_ms: AtomicU64::new(anchor_engine_ms),
            offset_ms,
        }
    }

    /// How far the wall clock is ahead of engine time (negative: behind), now; changes
    /// only when the wall clock was stepped by at least [`OFFSET_STEP_MIN_MS`].
    pub fn offset_ms(&self) -> i64 {
        let engine_ms = self.now_ms();
        let raw_ms = self.source.wall_ms() as i64 - engine_ms as i64;
        let kept_ms = self.offset_ms.load(Ordering::Acquire);
        if (raw_ms - kept_ms).abs() < OFFSET_STEP_MIN_MS {
            return kept_ms;
        }
        self.offset_ms.store(raw_ms, Ordering::Release);
        raw_ms
    }

    /// What to save to go on from after a restart.
    pub fn state(&self) -> ClockState {
        ClockState { engine_ms: self.now_ms(), wall_ms: self.source.wall_ms() }
    }
}

impl<S: TimeSource> Clock for SystemClock<S> {
    fn now_ms(&self) -> u64 {
        let elapsed_ms = self.source.elapsed_ms().saturating_sub(self.anchor_elapsed_ms);
        let engine_ms = self.anchor_engine_ms.saturating_add(elapsed_ms);
        // fetch_max returns the previous maximum; the answer is the larger of the two.
        self.last_ms.fetch_max(engine_ms, Ordering::AcqRel).max(engine_ms)
    }
}

/// A wall-clock time as engine time, at `offset_ms` (from [`SystemClock::offset_ms`]).
pub fn wall_to_engine_ms(wall_ms: u64, offset_ms: i64) -> u64 {
    (i128::from(wall_ms) - i128::from(offset_ms)).clamp(0, i128::from(u64::MAX)) as u64
}

/// An engine time as wall-clock time, at `offset_ms`.
pub fn engine_to_wall_ms(engine_ms: u64, offset_ms: i64) -> u64 {
    (i128::from(engine_ms) + i128::from(offset_ms)).clamp(0, i128::from(u64::MAX)) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicI64;
    use std::sync::Arc;

    /// A wall clock the test steps and an elapsed clock it advances.
    #[derive(Clone, Default)]
    struct FakeTime {
        wall_ms: Arc<AtomicI64>,
        elapsed_ms: Arc<AtomicU64>,
    }

    impl FakeTime {
        fn at(wall_ms: i64) -> FakeTime {
            let time = FakeTime::default();
            time.wall_ms.store(wall_ms, Ordering::SeqCst);
            time.elapsed_ms.store(5_000, Ordering::SeqCst);
            time
        }
        fn pass(&self, ms: u64) {
            self.elapsed_ms.fetch_add(ms, Ordering::SeqCst);
            self.wall_ms.fetch_add(ms as i64, Ordering::SeqCst);
        }
        fn step(&self, ms: i64) {
            self.wall_ms.fetch_add(ms, Ordering::SeqCst);
        }
    }

    impl TimeSource for FakeTime {
        fn wall_ms(&self) -> u64 {
            self.wall_ms.load(Ordering::SeqCst) as u64
        }
        fn elapsed_ms(&self) -> u64 {
            self.elapsed_ms.load(Ordering::SeqCst)
        }
    }

    const HOUR_MS: i64 = 3_600_000;

    #[test]
    fn engine_time_counts_what_elapsed_whatever_the_wall_clock_does() {
        let time = FakeTime::at(1_000_000_000);
        let clock = SystemClock::resume(time.clone(), None);
        assert_eq!((clock.now_ms(), clock.offset_ms()), (1_000_000_000, 0));
        time.step(-HOUR_MS);
        time.pass(3_000);
        assert_eq!(clock.now_ms(), 1_000_003_000, "a step back freezes nothing");
        assert_eq!(clock.offset_ms(), -HOUR_MS);
        time.step(2 * HOUR_MS);
        time.pass(1_000);
        assert_eq!(clock.now_ms(), 1_000_004_000, "a step forward fires nothing early");
        assert_eq!(clock.offset_ms(), HOUR_MS);
        assert_eq!(engine_to_wall_ms(clock.now_ms(), clock.offset_ms()), time.wall_ms());
        assert_eq!(wall_to_engine_ms(time.wall_ms() + 10, clock.offset_ms()), clock.now_ms() + 10);
        // The far ends stay far ends (a filter of u64::MAX matches nothing, still).
        assert_eq!(wall_to_engine_ms(u64::MAX, HOUR_MS), u64::MAX - HOUR_MS as u64);
        assert_eq!(wall_to_engine_ms(u64::MAX, -HOUR_MS), u64::MAX);
        assert_eq!(engine_to_wall_ms(5, -HOUR_MS), 0);
        // Two clocks read one after the other differ a little: that is no step.
        time.wall_ms.fetch_add(3, Ordering::SeqCst);
        assert_eq!(clock.offset_ms(), HOUR_MS, "a few ms of reading noise leave the offset alone");
    }

    #[test]
    fn a_restart_goes_on_from_the_saved_state_plus_the_wall_time_that_passed() {
        let time = FakeTime::at(2_000_000_000);
        let clock = SystemClock::resume(time.clone(), None);
        time.step(-HOUR_MS); // engine time is now an hour ahead of the wall clock
        time.pass(500);
        let saved = clock.state();
        assert_eq!(saved, ClockState { engine_ms: 2_000_000_500, wall_ms: 2_000_000_500 - HOUR_MS as u64 });
        // Down for a minute of wall time; a new process with its own elapsed clock.
        time.pass(60_000);
        time.elapsed_ms.store(7, Ordering::SeqCst);
        let clock = SystemClock::resume(time.clone(), Some(saved));
        assert_eq!(clock.now_ms(), 2_000_060_500, "durations set before the restart keep their length");
        assert_eq!(clock.offset_ms(), -HOUR_MS);
        // A wall clock set back below the saved state counts no downtime, never less.
        let clock = SystemClock::resume(FakeTime::at(10), Some(saved));
        assert_eq!(clock.now_ms(), saved.engine_ms);
    }

    #[test]
    fn the_os_clock_starts_at_the_wall_clock_and_never_goes_back() {
        let clock = SystemClock::new();
        let wall_ms = OsTime.wall_ms();
        let first = clock.now_ms();
        assert!(first.abs_diff(wall_ms) < 60_000, "{first} vs {wall_ms}");
        assert!(clock.offset_ms().abs() < 60_000);
        clock.last_ms.store(first + 10_000, Ordering::Release);
        assert_eq!(clock.now_ms(), first + 10_000, "a source that went back is held");
    }
}
