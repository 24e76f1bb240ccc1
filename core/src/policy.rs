//! Trip policies: what decides, in the closed state, that the breaker opens.

use crate::config::ConfigError;
use crate::time::Instant;

/// One counted outcome, as a [`TripPolicy`] sees it. Ignored outcomes and
/// stale reports never reach a policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct CallRecord {
    /// The call failed.
    pub failed: bool,
    /// The call took the slow-call threshold or longer (whatever its outcome).
    pub slow: bool,
    /// When the outcome was reported. Read from the clock only if the policy
    /// [`needs_time`](TripPolicy::needs_time) or slow calls are tracked; otherwise
    /// it may be the call's admission time or [`Instant::ZERO`].
    pub at: Instant,
}

/// The calls a policy's window holds now: the basis of the failure and slow
/// rates in [`Metrics`](crate::Metrics).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct WindowCounts {
    /// Counted calls in the window.
    pub calls: u32,
    /// Failed calls among them.
    pub failures: u32,
    /// Slow calls among them.
    pub slow: u32,
    /// The calls the window needs before its rates mean anything.
    pub minimum_calls: u32,
}

/// Which rule of a policy tripped the breaker: carried in
/// [`TransitionReason::Tripped`](crate::TransitionReason::Tripped), so a log
/// line or a dashboard tells "5 failures in a row" from "50 % of the last
/// 100 calls failed" (as resilience4j tells failure rate from slow-call rate).
///
/// ```
/// use breakerbox_core::TripRule;
///
/// assert_eq!(TripRule::SlowCallRate.to_string(), "slow-call rate");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum TripRule {
    /// [`ConsecutiveFailures`]: that many failures in a row.
    ConsecutiveFailures,
    /// A window's [`failure_count`](crate::Thresholds::failure_count): that
    /// many failures in the window, whatever the calls.
    FailureCount,
    /// A window's [`failure_rate`](crate::Thresholds::failure_rate).
    FailureRate,
    /// A window's [`slow_rate`](crate::Thresholds::slow_rate).
    SlowCallRate,
    /// A policy that does not say ([`ReadyToTrip`], or your own without
    /// [`TripPolicy::tripped_by`]).
    Custom,
}

impl TripRule {
    /// The rule in a few words, for logs and labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            TripRule::ConsecutiveFailures => "consecutive failures",
            TripRule::FailureCount => "failure count",
            TripRule::FailureRate => "failure rate",
            TripRule::SlowCallRate => "slow-call rate",
            TripRule::Custom => "custom rule",
        }
    }
}

impl core::fmt::Display for TripRule {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Decides from the outcomes recorded in the closed state when the breaker
/// trips. The breaker asks after **every** counted outcome, successes too.
///
/// Implementations must be allocation-free, constant-cost per record and
/// must never panic: they run in the breaker's hot path, possibly in an
/// interrupt handler.
///
/// The trait is dyn-compatible: with the `alloc` feature (on in the std
/// adapter) a `Box<dyn TripPolicy + Send>` is a policy too, so breakers with
/// different policies can share one type (as in a registry).
///
/// ```
/// use breakerbox_core::{CallRecord, Instant, TripPolicy};
///
/// /// Trips on the first slow call.
/// struct FirstSlowCall;
/// impl TripPolicy for FirstSlowCall {
///     fn record(&mut self, call: CallRecord) -> bool {
///         call.slow
///     }
///     fn reset(&mut self, _now: Instant) {}
/// }
/// ```
pub trait TripPolicy {
    /// Whether [`record`](Self::record) needs a real [`CallRecord::at`]. When
    /// `false` (and slow calls are off), the closed state never reads the
    /// clock. The answer must not change over the policy's life.
    fn needs_time(&self) -> bool {
        false
    }

    /// Takes one outcome; `true` trips the breaker (in the closed state).
    fn record(&mut self, call: CallRecord) -> bool;

    /// The rule the outcomes recorded so far break, if any: asked when
    /// [`record`](Self::record) trips, to say why. `None` (the default) is
    /// reported as [`TripRule::Custom`]. Where several rules break at once,
    /// the shipped policies name the first of failure count, failure rate
    /// and slow-call rate, and a pair names its first policy's rule.
    fn tripped_by(&self) -> Option<TripRule> {
        None
    }

    /// Forgets everything: called whenever the breaker enters the closed or
    /// metrics-only state, and on reset.
    fn reset(&mut self, now: Instant);

    /// The calls in the policy's window, if it has one. Policies without a
    /// window (such as [`ConsecutiveFailures`]) report no rates.
    fn window(&self, now: Instant) -> Option<WindowCounts> {
        let _ = now;
        None
    }

    /// Whether recording a success that is not slow would change nothing
    /// that can be observed (its rates, counts and every later decision) and
    /// could not trip. Breakers then skip the record, and shared breakers
    /// count such successes without taking their lock; `false` (the default)
    /// is always safe.
    fn success_is_noop(&self) -> bool {
        false
    }
}

/// A boxed policy is a policy: breakers with different policies share one
/// type, `Box<dyn TripPolicy + Send>`. One indirect call per recorded
/// outcome; the closed path's lock-free admissions and no-op successes do
/// not call it.
///
/// ```
/// use breakerbox_core::{
///     Breaker, Config, ConsecutiveFailures, CountWindow, NoClock, Ratio, Thresholds, TripPolicy,
/// };
///
/// let half = Thresholds::new().failure_rate(Ratio::percent(50));
/// let policies: [Box<dyn TripPolicy + Send>; 2] = [
///     Box::new(ConsecutiveFailures::new(5).unwrap()),
///     Box::new(CountWindow::<20>::new(half).unwrap()),
/// ];
/// let breakers = policies.map(|policy| Breaker::new(Config::DEFAULT, policy, NoClock));
/// # let _ = breakers;
/// ```
#[cfg(feature = "alloc")]
#[cfg_attr(docsrs, doc(cfg(feature = "alloc")))]
impl<P: TripPolicy + ?Sized> TripPolicy for alloc::boxed::Box<P> {
    fn needs_time(&self) -> bool {
        (**self).needs_time()
    }

    fn record(&mut self, call: CallRecord) -> bool {
        (**self).record(call)
    }

    fn tripped_by(&self) -> Option<TripRule> {
        (**self).tripped_by()
    }

    fn reset(&mut self, now: Instant) {
        (**self).reset(now);
    }

    fn window(&self, now: Instant) -> Option<WindowCounts> {
        (**self).window(now)
    }

    fn success_is_noop(&self) -> bool {
        (**self).success_is_noop()
    }
}

/// Trips after `failure_threshold` failures in a row: the classic circuit
/// breaker's rule and the default. A success resets the run.
///
/// ```
/// use breakerbox_core::{CallRecord, ConsecutiveFailures, Instant, TripPolicy};
///
/// let mut policy = ConsecutiveFailures::new(2).unwrap();
/// let fail = CallRecord { failed: true, slow: false, at: Instant::ZERO };
/// assert!(!policy.record(fail));
/// assert!(policy.record(fail));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ConsecutiveFailures {
    threshold: u32,
    run: u32,
}

impl ConsecutiveFailures {
    /// Trips at `failure_threshold` consecutive failures.
    ///
    /// # Errors
    /// [`ConfigError::FailureThreshold`] for a threshold of zero.
    pub const fn new(failure_threshold: u32) -> Result<Self, ConfigError> {
        if failure_threshold == 0 {
            return Err(ConfigError::FailureThreshold);
        }
        Ok(ConsecutiveFailures {
            threshold: failure_threshold,
            run: 0,
        })
    }

    /// The failures in a row that trip.
    pub const fn failure_threshold(&self) -> u32 {
        self.threshold
    }

    /// The current run of failures.
    pub const fn consecutive_failures(&self) -> u32 {
        self.run
    }

    /// Trips at `failure_threshold` from now on, keeping the run so far: a
    /// run that already reaches it trips at the next failure.
    ///
    /// ```
    /// use breakerbox_core::{CallRecord, ConsecutiveFailures, Instant, TripPolicy};
    ///
    /// let mut policy = ConsecutiveFailures::new(5).unwrap();
    /// let fail = CallRecord { failed: true, slow: false, at: Instant::ZERO };
    /// assert!(!policy.record(fail));
    /// assert!(!policy.record(fail));
    /// policy.set_failure_threshold(3).unwrap();
    /// assert!(policy.record(fail)); // the third in a row
    /// assert!(policy.set_failure_threshold(0).is_err());
    /// assert_eq!(policy.failure_threshold(), 3, "a refused value changes nothing");
    /// ```
    ///
    /// # Errors
    /// [`ConfigError::FailureThreshold`] for zero, changing nothing.
    pub fn set_failure_threshold(&mut self, failure_threshold: u32) -> Result<(), ConfigError> {
        *self = ConsecutiveFailures {
            run: self.run,
            ..ConsecutiveFailures::new(failure_threshold)?
        };
        Ok(())
    }
}

impl Default for ConsecutiveFailures {
    /// Five failures in a row.
    fn default() -> Self {
        ConsecutiveFailures {
            threshold: 5,
            run: 0,
        }
    }
}

impl TripPolicy for ConsecutiveFailures {
    #[inline]
    fn record(&mut self, call: CallRecord) -> bool {
        if call.failed {
            self.run = self.run.saturating_add(1);
            self.run >= self.threshold
        } else {
            // Only write when there is something to reset: keeps the common
            // success path free of stores.
            if self.run != 0 {
                self.run = 0;
            }
            false
        }
    }

    fn tripped_by(&self) -> Option<TripRule> {
        (self.run >= self.threshold).then_some(TripRule::ConsecutiveFailures)
    }

    fn reset(&mut self, _now: Instant) {
        self.run = 0;
    }

    fn success_is_noop(&self) -> bool {
        self.run == 0
    }
}

/// Running counts since the breaker last closed, handed to a
/// [`ReadyToTrip`] decision function (as gobreaker's `Counts`).
/// Every count saturates at `u32::MAX`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct RunCounts {
    /// Counted calls.
    pub calls: u32,
    /// Successful calls.
    pub successes: u32,
    /// Failed calls.
    pub failures: u32,
    /// Slow calls (of either outcome).
    pub slow: u32,
    /// Successes since the last failure.
    pub consecutive_successes: u32,
    /// Failures since the last success.
    pub consecutive_failures: u32,
}

impl RunCounts {
    fn add(&mut self, call: CallRecord) {
        self.calls = self.calls.saturating_add(1);
        if call.slow {
            self.slow = self.slow.saturating_add(1);
        }
        if call.failed {
            self.failures = self.failures.saturating_add(1);
            self.consecutive_failures = self.consecutive_failures.saturating_add(1);
            self.consecutive_successes = 0;
        } else {
            self.successes = self.successes.saturating_add(1);
            self.consecutive_successes = self.consecutive_successes.saturating_add(1);
            self.consecutive_failures = 0;
        }
    }
}

/// A policy decided by your own function over [`RunCounts`], like
/// gobreaker's `ReadyToTrip`; asked after every counted outcome.
///
/// ```
/// use breakerbox_core::{CallRecord, Instant, ReadyToTrip, RunCounts, TripPolicy};
///
/// // Trip when at least 10 calls were made and 60 % or more failed.
/// let mut policy = ReadyToTrip::new(|c: &RunCounts| c.calls >= 10 && c.failures * 10 >= c.calls * 6);
/// let fail = CallRecord { failed: true, slow: false, at: Instant::ZERO };
/// let tripped = (0..10).map(|_| policy.record(fail)).last();
/// assert_eq!(tripped, Some(true));
/// assert_eq!(policy.counts().failures, 10);
/// ```
#[derive(Clone, Copy)]
pub struct ReadyToTrip<F> {
    decide: F,
    counts: RunCounts,
}

impl<F: Fn(&RunCounts) -> bool> ReadyToTrip<F> {
    /// A policy that trips when `decide` says so.
    pub const fn new(decide: F) -> Self {
        ReadyToTrip {
            decide,
            counts: RunCounts {
                calls: 0,
                successes: 0,
                failures: 0,
                slow: 0,
                consecutive_successes: 0,
                consecutive_failures: 0,
            },
        }
    }

    /// The counts so far.
    pub const fn counts(&self) -> RunCounts {
        self.counts
    }
}

impl<F: Fn(&RunCounts) -> bool> TripPolicy for ReadyToTrip<F> {
    fn record(&mut self, call: CallRecord) -> bool {
        self.counts.add(call);
        (self.decide)(&self.counts)
    }

    fn tripped_by(&self) -> Option<TripRule> {
        (self.decide)(&self.counts).then_some(TripRule::Custom)
    }

    fn reset(&mut self, _now: Instant) {
        self.counts = RunCounts::default();
    }

    fn window(&self, _now: Instant) -> Option<WindowCounts> {
        Some(WindowCounts {
            calls: self.counts.calls,
            failures: self.counts.failures,
            slow: self.counts.slow,
            minimum_calls: 1,
        })
    }
}

impl<F> core::fmt::Debug for ReadyToTrip<F> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ReadyToTrip")
            .field("counts", &self.counts)
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "defmt")]
impl<F> defmt::Format for ReadyToTrip<F> {
    fn format(&self, f: defmt::Formatter) {
        defmt::write!(f, "ReadyToTrip {{ counts: {} }}", self.counts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAIL: CallRecord = CallRecord {
        failed: true,
        slow: false,
        at: Instant::ZERO,
    };
    const OK: CallRecord = CallRecord {
        failed: false,
        slow: false,
        at: Instant::ZERO,
    };

    #[test]
    fn consecutive_failures_rejects_zero() {
        assert_eq!(
            ConsecutiveFailures::new(0),
            Err(ConfigError::FailureThreshold)
        );
    }

    #[test]
    fn consecutive_failures_trips_exactly_at_threshold_and_success_resets() {
        let mut p = ConsecutiveFailures::new(3).unwrap();
        assert!(!p.record(FAIL));
        assert!(!p.record(FAIL));
        assert!(!p.record(OK));
        assert_eq!(p.consecutive_failures(), 0);
        assert!(!p.record(FAIL));
        assert!(!p.record(FAIL));
        assert!(p.record(FAIL));
        assert!(!p.success_is_noop(), "a success would end the run");
        p.reset(Instant::ZERO);
        assert_eq!(p.consecutive_failures(), 0);
        assert!(p.success_is_noop());
        assert_eq!(p.window(Instant::ZERO), None);
    }

    #[test]
    fn consecutive_failures_saturates() {
        let mut p = ConsecutiveFailures::new(u32::MAX).unwrap();
        p.run = u32::MAX - 1;
        assert!(p.record(FAIL));
        assert!(p.record(FAIL));
        assert_eq!(p.consecutive_failures(), u32::MAX);
        assert_eq!(ConsecutiveFailures::default().failure_threshold(), 5);
    }

    #[test]
    fn ready_to_trip_sees_every_outcome_and_resets() {
        let mut p = ReadyToTrip::new(|c: &RunCounts| c.successes >= 2);
        assert!(!p.record(OK));
        assert!(p.record(OK), "a success can trip too");
        let slow_fail = CallRecord { slow: true, ..FAIL };
        p.record(slow_fail);
        let c = p.counts();
        assert_eq!(
            (c.calls, c.failures, c.slow, c.consecutive_failures),
            (3, 1, 1, 1)
        );
        assert_eq!(c.consecutive_successes, 0);
        let w = p.window(Instant::ZERO).unwrap();
        assert_eq!((w.calls, w.failures, w.slow), (3, 1, 1));
        p.reset(Instant::ZERO);
        assert_eq!(p.counts(), RunCounts::default());
    }
}
