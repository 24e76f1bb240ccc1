//! Clocks for threads: the monotonic system clock and a shared manual clock.

use std::sync::OnceLock;

use breakerbox_core::{Clock, Duration, Instant};

use crate::sync::{Arc, AtomicU64, Ordering};

/// The system's monotonic clock (`std::time::Instant`), in microseconds
/// since the first time any `MonotonicClock` was read in this process.
/// Zero-sized; every instance agrees with every other.
///
/// ```
/// use breakerbox_std::{Clock, MonotonicClock};
///
/// let clock = MonotonicClock;
/// let a = clock.now();
/// let b = clock.now();
/// assert!(b >= a);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MonotonicClock;

fn origin() -> std::time::Instant {
    static ORIGIN: OnceLock<std::time::Instant> = OnceLock::new();
    *ORIGIN.get_or_init(std::time::Instant::now)
}

impl Clock for MonotonicClock {
    #[inline]
    fn now(&self) -> Instant {
        let elapsed = origin().elapsed();
        Instant::from_micros(Duration::from_core(elapsed).as_micros())
    }
}

/// A manual clock whose clones share one time: for tests that drive
/// breakers on several threads. Thread-safe and lock-free.
///
/// ```
/// use breakerbox_std::{Clock, Duration, Instant, SharedManualClock};
///
/// let clock = SharedManualClock::new();
/// let other = clock.clone();
/// other.advance(Duration::from_secs(3));
/// assert_eq!(clock.now(), Instant::from_secs(3));
/// ```
#[derive(Clone, Debug, Default)]
pub struct SharedManualClock {
    micros: Arc<AtomicU64>,
}

impl SharedManualClock {
    /// A clock at [`Instant::ZERO`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves every clone to `t`, forwards or backwards.
    pub fn set(&self, t: Instant) {
        self.micros.store(t.as_micros(), Ordering::SeqCst);
    }

    /// Moves every clone forwards by `d` (a `std::time::Duration` or the
    /// core's `Duration`), stopping at [`Instant::MAX`].
    pub fn advance(&self, d: impl Into<Duration>) {
        let d: Duration = d.into();
        let _ = self
            .micros
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |t| {
                Some(t.saturating_add(d.as_micros()))
            });
    }
}

impl Clock for SharedManualClock {
    fn now(&self) -> Instant {
        Instant::from_micros(self.micros.load(Ordering::SeqCst))
    }
}

/// A clock on the CPU's time-stamp counter through the `quanta` crate: a
/// few nanoseconds per read where `std::time::Instant::now()` costs tens on
/// some virtual machines. For policies that need the time on every call
/// (time windows, slow-call tracking) and for cheaper open-state rejections.
/// Falls back to the system's monotonic clock where there is no usable
/// counter. Microseconds since the clock was made; clones share the origin.
///
/// ```
/// use breakerbox_std::{Clock, Config, ConsecutiveFailures, QuantaClock, StdBreaker};
///
/// let clock = QuantaClock::new();
/// let a = clock.now();
/// assert!(clock.now() >= a);
/// let breaker = StdBreaker::builder(Config::DEFAULT, ConsecutiveFailures::default())
///     .clock(clock)
///     .build();
/// assert!(breaker.call(|| Ok::<_, ()>(1)).is_ok());
/// ```
#[cfg(feature = "quanta")]
#[derive(Clone, Debug)]
pub struct QuantaClock {
    clock: quanta::Clock,
    origin: u64,
}

#[cfg(feature = "quanta")]
impl QuantaClock {
    /// A clock reading zero now. The first one made in a process calibrates
    /// the counter against the system clock (a few milliseconds).
    pub fn new() -> Self {
        let clock = quanta::Clock::new();
        let origin = clock.raw();
        QuantaClock { clock, origin }
    }
}

#[cfg(feature = "quanta")]
impl Default for QuantaClock {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(feature = "quanta")]
impl Clock for QuantaClock {
    #[inline]
    fn now(&self) -> Instant {
        // `delta_as_nanos` gives 0 for a counter read behind the origin.
        Instant::from_micros(self.clock.delta_as_nanos(self.origin, self.clock.raw()) / 1_000)
    }
}

/// quanta's "recent" time: the time as of the last tick of a background
/// thread that reads the clock every millisecond, so a read is one atomic
/// load, however slow the machine's clock. For breakers that can live with
/// a millisecond of resolution (open durations, probe leases and slow-call
/// thresholds of several milliseconds) and want the cheapest rejections.
/// Microseconds since the clock was made; clones share the origin.
///
/// ```
/// use breakerbox_std::{Clock, CoarseClock, Config, ConsecutiveFailures, StdBreaker};
///
/// let clock = CoarseClock::new().expect("the upkeep thread runs");
/// let breaker = StdBreaker::builder(Config::DEFAULT, ConsecutiveFailures::default())
///     .clock(clock)
///     .build();
/// assert!(breaker.call(|| Ok::<_, ()>(1)).is_ok());
/// ```
#[cfg(feature = "quanta")]
#[derive(Clone, Debug)]
pub struct CoarseClock {
    clock: quanta::Clock,
    origin: quanta::Instant,
}

/// Why a [`CoarseClock`] could not be made.
#[cfg(feature = "quanta")]
#[derive(Debug)]
pub enum CoarseClockError {
    /// Another part of the process runs quanta's upkeep thread: it could
    /// stop it at any time and freeze this clock, so it is not relied on.
    UpkeepRunElsewhere,
    /// The upkeep thread could not be spawned.
    Spawn(std::io::Error),
}

#[cfg(feature = "quanta")]
impl std::fmt::Display for CoarseClockError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CoarseClockError::UpkeepRunElsewhere => {
                f.write_str("quanta's upkeep thread is run by another part of the process")
            }
            // The cause is the source, not repeated here.
            CoarseClockError::Spawn(_) => f.write_str("cannot spawn quanta's upkeep thread"),
        }
    }
}

#[cfg(feature = "quanta")]
impl std::error::Error for CoarseClockError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CoarseClockError::Spawn(e) => Some(e),
            CoarseClockError::UpkeepRunElsewhere => None,
        }
    }
}

#[cfg(feature = "quanta")]
impl CoarseClock {
    /// How often the upkeep thread reads the clock.
    pub const RESOLUTION: core::time::Duration = core::time::Duration::from_millis(1);

    /// A clock reading zero now. The first one made in a process starts
    /// quanta's upkeep thread, which then runs as long as the process.
    ///
    /// # Errors
    /// When the upkeep thread is someone else's or cannot be spawned.
    pub fn new() -> Result<Self, CoarseClockError> {
        // Ours for the life of the process: never dropped, never stopped.
        static UPKEEP: std::sync::Mutex<Option<quanta::Handle>> = std::sync::Mutex::new(None);
        let mut upkeep = UPKEEP.lock().unwrap_or_else(|p| p.into_inner());
        if upkeep.is_none() {
            match quanta::Upkeep::new(Self::RESOLUTION).start() {
                Ok(handle) => *upkeep = Some(handle),
                Err(quanta::Error::UpkeepRunning) => {
                    return Err(CoarseClockError::UpkeepRunElsewhere)
                }
                Err(quanta::Error::FailedToSpawnUpkeepThread(e)) => {
                    return Err(CoarseClockError::Spawn(e))
                }
            }
        }
        let clock = quanta::Clock::new();
        let origin = clock.recent();
        Ok(CoarseClock { clock, origin })
    }
}

#[cfg(feature = "quanta")]
impl Clock for CoarseClock {
    #[inline]
    fn now(&self) -> Instant {
        let elapsed = self.clock.recent().saturating_duration_since(self.origin);
        Instant::from_micros(Duration::from_core(elapsed).as_micros())
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn monotonic_clock_moves_forward() {
        let a = MonotonicClock.now();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = MonotonicClock.now();
        assert!(b.saturating_duration_since(a) >= Duration::from_millis(2));
    }

    #[test]
    fn shared_manual_clock_is_shared_across_threads_and_saturates() {
        let clock = SharedManualClock::new();
        let other = clock.clone();
        std::thread::spawn(move || other.advance(Duration::from_secs(7)))
            .join()
            .unwrap();
        assert_eq!(clock.now(), Instant::from_secs(7));
        clock.set(Instant::MAX);
        clock.advance(Duration::from_secs(1));
        assert_eq!(clock.now(), Instant::MAX);
        clock.set(Instant::from_secs(1));
        assert_eq!(clock.now(), Instant::from_secs(1));
    }

    #[cfg(feature = "quanta")]
    #[test]
    fn quanta_clock_keeps_pace_with_the_system_clock() {
        let clock = QuantaClock::new();
        let copy = clock.clone();
        let started = std::time::Instant::now();
        let a = clock.now();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let b = copy.now();
        let real = Duration::from_core(started.elapsed());
        let seen = b.saturating_duration_since(a);
        assert!(seen >= Duration::from_millis(19), "{seen:?}");
        assert!(
            seen <= real.saturating_add(Duration::from_millis(2)),
            "{seen:?} > {real:?}"
        );
    }

    #[cfg(feature = "quanta")]
    #[test]
    fn coarse_clock_moves_forward_and_never_back() {
        let clock = CoarseClock::new().unwrap();
        let again = CoarseClock::new().unwrap(); // the upkeep thread is ours already
        let first = clock.now();
        // However loaded the machine, the upkeep thread runs at last: wait
        // for it (a bound only for a clock that never moves), checking that
        // no reading goes back.
        let mut last = first;
        for _ in 0..60_000 {
            let now = clock.now();
            assert!(now >= last, "{now:?} after {last:?}");
            last = now;
            if now > first {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert!(last > first, "the coarse clock never moved");
        assert!(again.now() >= first, "one upkeep thread, one time");
    }
}
