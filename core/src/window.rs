//! Windowed trip policies: failure rate, slow-call rate and failure count
//! over the last N calls or the last B time buckets. Fixed size, no
//! allocation, no floats, constant cost per record.

use crate::config::{ConfigError, Ratio};
use crate::policy::{CallRecord, TripPolicy, TripRule, WindowCounts};
use crate::time::{Duration, Instant};

/// When a window policy trips. Built with `const fn`s and checked by the
/// policy's constructor.
///
/// The rule, with every comparison `>=`: the policy trips when
/// - the window holds at least `minimum_calls` calls **and** its failure rate
///   reaches `failure_rate` or its slow-call rate reaches `slow_rate`; or
/// - the window holds at least `failure_count` failures (whatever the number
///   of calls: the minimum gates rates only).
///
/// ```
/// use breakerbox_core::{Ratio, Thresholds};
///
/// // resilience4j's defaults: 50 % failures, 100 % slow calls, over at least 100 calls.
/// let t = Thresholds::new()
///     .failure_rate(Ratio::percent(50))
///     .slow_rate(Ratio::percent(100))
///     .minimum_calls(100);
/// assert_eq!(t.minimum(), Some(100));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields, default))]
#[must_use]
pub struct Thresholds {
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    failure_rate: Option<Ratio>,
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    slow_rate: Option<Ratio>,
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    failure_count: Option<u32>,
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    minimum_calls: Option<u32>,
}

impl Thresholds {
    /// No thresholds yet (a policy refuses that: it could never trip).
    pub const fn new() -> Self {
        Thresholds {
            failure_rate: None,
            slow_rate: None,
            failure_count: None,
            minimum_calls: None,
        }
    }

    /// Trip when failures over calls reach `rate` (above 0, at most 100 %).
    pub const fn failure_rate(mut self, rate: Ratio) -> Self {
        self.failure_rate = Some(rate);
        self
    }

    /// Trip when slow calls over calls reach `rate` (above 0, at most 100 %).
    pub const fn slow_rate(mut self, rate: Ratio) -> Self {
        self.slow_rate = Some(rate);
        self
    }

    /// Trip when the window holds `count` failures.
    pub const fn failure_count(mut self, count: u32) -> Self {
        self.failure_count = Some(count);
        self
    }

    /// Judge no rate before the window holds `calls` calls. Defaults to the
    /// window's size for [`CountWindow`] (the window must fill) and to 100
    /// (resilience4j's default) for [`TimeWindow`].
    pub const fn minimum_calls(mut self, calls: u32) -> Self {
        self.minimum_calls = Some(calls);
        self
    }

    /// The minimum number of calls, if set.
    pub const fn minimum(&self) -> Option<u32> {
        self.minimum_calls
    }

    /// The failure rate that trips, if set.
    pub const fn failure_rate_threshold(&self) -> Option<Ratio> {
        self.failure_rate
    }

    /// The slow-call rate that trips, if set.
    pub const fn slow_rate_threshold(&self) -> Option<Ratio> {
        self.slow_rate
    }

    /// The failure count that trips, if set.
    pub const fn failure_count_threshold(&self) -> Option<u32> {
        self.failure_count
    }

    /// Checks the thresholds for a window of `capacity` calls (`u32::MAX`
    /// for a time window) and fills in the minimum.
    const fn validated(self, default_minimum: u32, capacity: u32) -> Result<Rules, ConfigError> {
        if self.failure_rate.is_none() && self.slow_rate.is_none() && self.failure_count.is_none() {
            return Err(ConfigError::NoThreshold);
        }
        if let Some(rate) = self.failure_rate {
            if !rate.is_valid_rate() {
                return Err(ConfigError::FailureRate);
            }
        }
        if let Some(rate) = self.slow_rate {
            if !rate.is_valid_rate() {
                return Err(ConfigError::SlowRate);
            }
        }
        if let Some(0) = self.failure_count {
            return Err(ConfigError::FailureCount);
        }
        let minimum_calls = match self.minimum_calls {
            Some(m) => m,
            None => default_minimum,
        };
        if minimum_calls == 0 || minimum_calls > capacity {
            return Err(ConfigError::MinimumCalls);
        }
        Ok(Rules {
            failure_rate: self.failure_rate,
            slow_rate: self.slow_rate,
            failure_count: self.failure_count,
            minimum_calls,
        })
    }
}

/// Validated thresholds: the trip rule of [`Thresholds`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
struct Rules {
    failure_rate: Option<Ratio>,
    slow_rate: Option<Ratio>,
    failure_count: Option<u32>,
    minimum_calls: u32,
}

impl Rules {
    /// The thresholds these rules were validated from, the minimum filled in.
    const fn thresholds(&self) -> Thresholds {
        Thresholds {
            failure_rate: self.failure_rate,
            slow_rate: self.slow_rate,
            failure_count: self.failure_count,
            minimum_calls: Some(self.minimum_calls),
        }
    }

    fn trips(&self, t: Totals) -> bool {
        self.broken_by(t).is_some()
    }

    /// The first rule `t` breaks: failure count, failure rate, slow rate.
    fn broken_by(&self, t: Totals) -> Option<TripRule> {
        if let Some(count) = self.failure_count {
            if t.failures >= count {
                return Some(TripRule::FailureCount);
            }
        }
        if t.calls < self.minimum_calls {
            return None;
        }
        let reached = |rate: Option<Ratio>, part: u32| match rate {
            Some(r) => r.is_reached_by(part as u64, t.calls as u64),
            None => false,
        };
        if reached(self.failure_rate, t.failures) {
            Some(TripRule::FailureRate)
        } else if reached(self.slow_rate, t.slow) {
            Some(TripRule::SlowCallRate)
        } else {
            None
        }
    }

    fn window(&self, t: Totals) -> WindowCounts {
        WindowCounts {
            calls: t.calls,
            failures: t.failures,
            slow: t.slow,
            minimum_calls: self.minimum_calls,
        }
    }
}

/// Calls, failures and slow calls of a window or a bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
struct Totals {
    calls: u32,
    failures: u32,
    slow: u32,
}

impl Totals {
    const EMPTY: Totals = Totals {
        calls: 0,
        failures: 0,
        slow: 0,
    };

    fn add(&mut self, call: CallRecord) {
        self.calls = self.calls.saturating_add(1);
        self.failures = self.failures.saturating_add(call.failed as u32);
        self.slow = self.slow.saturating_add(call.slow as u32);
    }

    fn remove(&mut self, other: Totals) {
        self.calls = self.calls.saturating_sub(other.calls);
        self.failures = self.failures.saturating_sub(other.failures);
        self.slow = self.slow.saturating_sub(other.slow);
    }
}

const FAILED: u8 = 1;
const SLOW: u8 = 2;

/// Failure rate, slow-call rate and failure count over the last `N` calls
/// (resilience4j's count-based sliding window, Polly's and Hystrix's rate
/// rule on a call count).
///
/// A ring of `N` bytes, one per call: recording is O(1) whatever `N`, and
/// the policy takes `N` bytes plus a few words (see the README's table).
///
/// ```
/// use breakerbox_core::{CallRecord, CountWindow, Instant, Ratio, Thresholds, TripPolicy};
///
/// // Trip at 50 % failures over the last 4 calls, once 4 calls are in.
/// let mut window = CountWindow::<4>::new(Thresholds::new().failure_rate(Ratio::percent(50))).unwrap();
/// let call = |failed| CallRecord { failed, slow: false, at: Instant::ZERO };
/// assert!(!window.record(call(true)));
/// assert!(!window.record(call(false)));
/// assert!(!window.record(call(true))); // 2 of 3, but 4 calls are needed
/// assert!(window.record(call(false))); // 2 of 4: trips, on a success
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct CountWindow<const N: usize> {
    rules: Rules,
    totals: Totals,
    /// Where the next call goes.
    next: u32,
    /// The calls the window holds: `N`, or fewer when chosen at run time.
    size: u32,
    /// Each call's `FAILED | SLOW` flags; only the first `totals.calls` slots
    /// (in ring order) of the first `size` are live.
    ring: [u8; N],
}

impl<const N: usize> CountWindow<N> {
    /// A window of the last `N` calls with these thresholds; `minimum_calls`
    /// defaults to `N`.
    ///
    /// # Errors
    /// [`ConfigError::WindowSize`] for `N` of 0 or above `u32::MAX`, and the
    /// threshold errors of [`Thresholds`].
    pub const fn new(thresholds: Thresholds) -> Result<Self, ConfigError> {
        if N == 0 || N > u32::MAX as usize {
            return Err(ConfigError::WindowSize);
        }
        Self::sized(N as u32, thresholds)
    }

    /// A window of the last `calls` calls, from 1 to `N`, kept in a ring of
    /// `N`: for a size chosen at run time (from a file, say) within a
    /// capacity chosen at compile time. `minimum_calls` defaults to `calls`.
    ///
    /// ```
    /// use breakerbox_core::{CountWindow, Ratio, Thresholds};
    ///
    /// let half = Thresholds::new().failure_rate(Ratio::percent(50));
    /// let window = CountWindow::<128>::sized(100, half).unwrap();
    /// assert_eq!(window.size(), 100);
    /// assert!(CountWindow::<128>::sized(129, half).is_err());
    /// ```
    ///
    /// # Errors
    /// [`ConfigError::WindowSize`] for `calls` of 0 or above `N`, and the
    /// threshold errors of [`Thresholds`].
    pub const fn sized(calls: u32, thresholds: Thresholds) -> Result<Self, ConfigError> {
        if calls == 0 || calls as usize > N {
            return Err(ConfigError::WindowSize);
        }
        match thresholds.validated(calls, calls) {
            Ok(rules) => Ok(CountWindow {
                rules,
                totals: Totals::EMPTY,
                next: 0,
                size: calls,
                ring: [0; N],
            }),
            Err(e) => Err(e),
        }
    }

    /// The thresholds it trips by (the minimum filled in).
    pub const fn thresholds(&self) -> Thresholds {
        self.rules.thresholds()
    }

    /// The calls the window holds.
    pub const fn size(&self) -> u32 {
        self.size
    }

    /// Trips by `thresholds` from now on, keeping the calls in the window:
    /// the next recorded outcome is judged by them.
    ///
    /// # Errors
    /// The threshold errors of [`Thresholds`] for this window's size,
    /// changing nothing.
    pub fn set_thresholds(&mut self, thresholds: Thresholds) -> Result<(), ConfigError> {
        self.rules = thresholds.validated(self.size, self.size)?;
        Ok(())
    }

    /// The calls, failures and slow calls in the window now.
    pub fn counts(&self) -> WindowCounts {
        self.rules.window(self.totals)
    }
}

impl<const N: usize> TripPolicy for CountWindow<N> {
    fn record(&mut self, call: CallRecord) -> bool {
        let slot = self.next as usize;
        // `next` is always below N; `get_mut` keeps this panic-free regardless.
        if let Some(flags) = self.ring.get_mut(slot) {
            if self.totals.calls >= self.size {
                // The window is full: the oldest call leaves.
                let old = *flags;
                self.totals.calls -= 1;
                self.totals.failures = self.totals.failures.saturating_sub((old & FAILED) as u32);
                self.totals.slow = self.totals.slow.saturating_sub(((old & SLOW) >> 1) as u32);
            }
            *flags = (call.failed as u8 * FAILED) | (call.slow as u8 * SLOW);
        }
        self.totals.add(call);
        self.next = if self.next + 1 >= self.size {
            0
        } else {
            self.next + 1
        };
        self.rules.trips(self.totals)
    }

    fn tripped_by(&self) -> Option<TripRule> {
        self.rules.broken_by(self.totals)
    }

    /// A full window of plain successes stays one whatever the ring's
    /// cursor: every slot holds the same flags, so skipping the record is
    /// exact. The healthy steady state costs no ring write at all.
    fn success_is_noop(&self) -> bool {
        self.totals.calls == self.size && self.totals.failures == 0 && self.totals.slow == 0
    }

    fn reset(&mut self, _now: Instant) {
        // The ring's stale flags are never read: only `totals.calls` slots count.
        self.totals = Totals::EMPTY;
        self.next = 0;
    }

    fn window(&self, _now: Instant) -> Option<WindowCounts> {
        Some(self.counts())
    }
}

/// One bucket of a [`TimeWindow`]: the calls of one bucket-length of time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
struct Bucket {
    /// Which bucket-length since the clock's epoch this bucket holds.
    epoch: u64,
    totals: Totals,
}

/// Failure rate, slow-call rate and failure count over the last `B`
/// buckets of `bucket_length` each (resilience4j's time-based sliding
/// window, Hystrix's rolling statistical window).
///
/// Buckets roll on access from the time of each record: nothing runs in the
/// background. A record costs O(1), plus clearing the buckets that time has
/// rolled past (at most `B`, and only once per bucket-length that passed).
/// After an idle gap of a whole window (`B × bucket_length`) the window is
/// empty. A clock that steps backwards records into the newest bucket: it
/// never rewrites an older one.
///
/// ```
/// use core::time::Duration;
/// use breakerbox_core::{CallRecord, Instant, Thresholds, TimeWindow, TripPolicy};
///
/// // Five failures within 10 s (10 buckets of 1 s) trip it.
/// let mut window =
///     TimeWindow::<10>::new(Duration::from_secs(1), Thresholds::new().failure_count(5)).unwrap();
/// let fail = |s| CallRecord { failed: true, slow: false, at: Instant::from_secs(s) };
/// for s in 0..4 {
///     assert!(!window.record(fail(s))); // failures at 0, 1, 2 and 3 s
/// }
/// // At 12 s the window spans 3 s to 13 s: the failures at 0, 1 and 2 s left it.
/// assert!(!window.record(fail(12)));
/// assert!(!window.record(fail(12)));
/// assert!(!window.record(fail(12)));
/// assert!(window.record(fail(12))); // five: one at 3 s, four at 12 s
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct TimeWindow<const B: usize> {
    rules: Rules,
    bucket_length: Duration,
    totals: Totals,
    /// The newest bucket's epoch.
    head: u64,
    buckets: [Bucket; B],
}

impl<const B: usize> TimeWindow<B> {
    /// A window of `B` buckets of `bucket_length` each, with these
    /// thresholds; `minimum_calls` defaults to 100.
    ///
    /// # Errors
    /// [`ConfigError::Buckets`] for `B` of 0 or above `u32::MAX`,
    /// [`ConfigError::BucketLength`] for a length below one microsecond, and
    /// the threshold errors of [`Thresholds`].
    pub const fn new(
        bucket_length: core::time::Duration,
        thresholds: Thresholds,
    ) -> Result<Self, ConfigError> {
        if B == 0 || B > u32::MAX as usize {
            return Err(ConfigError::Buckets);
        }
        let bucket_length = Duration::from_core(bucket_length);
        if bucket_length.is_zero() {
            return Err(ConfigError::BucketLength);
        }
        match thresholds.validated(100, u32::MAX) {
            Ok(rules) => Ok(TimeWindow {
                rules,
                bucket_length,
                totals: Totals::EMPTY,
                head: 0,
                buckets: [Bucket {
                    epoch: 0,
                    totals: Totals::EMPTY,
                }; B],
            }),
            Err(e) => Err(e),
        }
    }

    /// The thresholds it trips by (the minimum filled in).
    pub const fn thresholds(&self) -> Thresholds {
        self.rules.thresholds()
    }

    /// Trips by `thresholds` from now on, keeping the calls in the window:
    /// the next recorded outcome is judged by them.
    ///
    /// # Errors
    /// The threshold errors of [`Thresholds`], changing nothing.
    pub fn set_thresholds(&mut self, thresholds: Thresholds) -> Result<(), ConfigError> {
        self.rules = thresholds.validated(100, u32::MAX)?;
        Ok(())
    }

    /// The length of one bucket.
    pub const fn bucket_length(&self) -> core::time::Duration {
        self.bucket_length.to_core()
    }

    /// The length of the whole window, `B × bucket_length` (saturating at
    /// the longest duration the crate's microseconds hold).
    pub const fn length(&self) -> core::time::Duration {
        self.bucket_length.saturating_mul(B as u64).to_core()
    }

    fn epoch(&self, now: Instant) -> u64 {
        now.as_micros() / self.bucket_length.as_micros()
    }

    fn slot(epoch: u64) -> usize {
        (epoch % B as u64) as usize
    }

    /// Moves the window forward to `now`'s bucket, dropping what left it.
    fn roll(&mut self, now: Instant) {
        let epoch = self.epoch(now);
        if epoch <= self.head {
            return; // the same bucket, or a clock that stepped backwards
        }
        let gap = epoch - self.head;
        if gap >= B as u64 {
            // Everything left; stale buckets are recognised by their epoch.
            self.totals = Totals::EMPTY;
        } else {
            for e in self.head + 1..=epoch {
                let bucket = self.buckets[Self::slot(e)];
                // The bucket B epochs back leaves the window now; older
                // contents were dropped from the totals already.
                if Some(bucket.epoch) == e.checked_sub(B as u64) {
                    self.totals.remove(bucket.totals);
                }
            }
        }
        self.head = epoch;
    }

    /// The totals as of `now`, without changing anything (O(B)).
    fn totals_at(&self, now: Instant) -> Totals {
        let newest = self.epoch(now).max(self.head);
        if newest == self.head {
            return self.totals;
        }
        let mut totals = Totals::EMPTY;
        for bucket in &self.buckets {
            let live = bucket.epoch <= self.head && newest - bucket.epoch < B as u64;
            if live {
                totals.calls = totals.calls.saturating_add(bucket.totals.calls);
                totals.failures = totals.failures.saturating_add(bucket.totals.failures);
                totals.slow = totals.slow.saturating_add(bucket.totals.slow);
            }
        }
        totals
    }

    /// The calls, failures and slow calls in the window as of `now`.
    pub fn counts(&self, now: Instant) -> WindowCounts {
        self.rules.window(self.totals_at(now))
    }
}

impl<const B: usize> TripPolicy for TimeWindow<B> {
    fn needs_time(&self) -> bool {
        true
    }

    fn record(&mut self, call: CallRecord) -> bool {
        self.roll(call.at);
        let head = self.head;
        let bucket = &mut self.buckets[Self::slot(head)];
        if bucket.epoch != head {
            *bucket = Bucket {
                epoch: head,
                totals: Totals::EMPTY,
            };
        }
        bucket.totals.add(call);
        self.totals.add(call);
        self.rules.trips(self.totals)
    }

    fn tripped_by(&self) -> Option<TripRule> {
        self.rules.broken_by(self.totals)
    }

    fn reset(&mut self, now: Instant) {
        self.totals = Totals::EMPTY;
        // The head never moves back, even for a clock that did.
        self.head = self.head.max(self.epoch(now));
        // Mark every bucket as outside the window: nothing of it counts again.
        for bucket in &mut self.buckets {
            bucket.totals = Totals::EMPTY;
        }
    }

    fn window(&self, now: Instant) -> Option<WindowCounts> {
        Some(self.counts(now))
    }
}

/// Either of two policies: trips when either would. Both see every outcome
/// (no short-circuit), so both windows stay whole. Nest for more.
///
/// The window reported in [`Metrics`](crate::Metrics) is the first policy's
/// (or the second's, if the first has none).
///
/// ```
/// use breakerbox_core::{ConsecutiveFailures, CountWindow, Ratio, Thresholds, TripPolicy};
///
/// // Five failures in a row, or 50 % of the last 100 calls.
/// let policy = (
///     ConsecutiveFailures::new(5).unwrap(),
///     CountWindow::<100>::new(Thresholds::new().failure_rate(Ratio::percent(50))).unwrap(),
/// );
/// assert!(!policy.needs_time()); // neither reads the clock
/// # let _ = policy;
/// ```
impl<A: TripPolicy, B: TripPolicy> TripPolicy for (A, B) {
    fn needs_time(&self) -> bool {
        self.0.needs_time() || self.1.needs_time()
    }

    fn record(&mut self, call: CallRecord) -> bool {
        let a = self.0.record(call);
        let b = self.1.record(call);
        a || b
    }

    fn tripped_by(&self) -> Option<TripRule> {
        self.0.tripped_by().or_else(|| self.1.tripped_by())
    }

    fn reset(&mut self, now: Instant) {
        self.0.reset(now);
        self.1.reset(now);
    }

    fn window(&self, now: Instant) -> Option<WindowCounts> {
        self.0.window(now).or_else(|| self.1.window(now))
    }

    fn success_is_noop(&self) -> bool {
        self.0.success_is_noop() && self.1.success_is_noop()
    }
}

#[cfg(test)]
mod tests;
