//! The breaker: states, permits, generations, transitions and metrics.

use core::fmt;

use crate::config::{
    Config, Fixed, FixedConfig, HalfOpenVerdict, Jitter, Ratio, Schedule, Settings,
};
use crate::history::History;
use crate::policy::{CallRecord, ConsecutiveFailures, TripPolicy, TripRule};
use crate::rng::Rng;
use crate::time::{Clock, Duration, Instant, NoClock};

/// The breaker's state, without its data (see [`Phase`] for that).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum State {
    /// Calls flow; outcomes feed the trip policy.
    Closed,
    /// Calls are rejected until the open deadline.
    Open,
    /// A few probe calls test whether the dependency recovered.
    HalfOpen,
    /// Manual: every call is rejected until released.
    ForcedOpen,
    /// Manual: every call is permitted and nothing is recorded.
    Disabled,
    /// Manual: every call is permitted and recorded, but the breaker never trips.
    MetricsOnly,
}

impl State {
    /// The state's name, as in the docs (`"half-open"`).
    pub const fn as_str(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half-open",
            State::ForcedOpen => "forced-open",
            State::Disabled => "disabled",
            State::MetricsOnly => "metrics-only",
        }
    }
}

impl fmt::Display for State {
    /// The name, honouring width and alignment (`{:>9}`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// The probes of the half-open state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct Probes {
    /// Probes admitted and not yet reported.
    pub in_flight: u32,
    /// Successful probes so far.
    pub successes: u32,
    /// Failed probes so far (only counted by [`HalfOpenVerdict::Rates`]).
    pub failures: u32,
    /// Slow probes so far (only counted by [`HalfOpenVerdict::Rates`]).
    pub slow: u32,
    /// When the probes in flight count as failed (meaningful while
    /// `in_flight > 0`).
    pub lease_until: Instant,
}

/// The breaker's state with its data: the state machine's own view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
// A one-byte tag: matched on every call, so a 32-bit target should not
// compare a wider one.
#[repr(u8)]
#[non_exhaustive]
pub enum Phase {
    /// See [`State::Closed`].
    Closed,
    /// See [`State::Open`]: rejects everything before `until`.
    Open {
        /// The first instant at which a probe is admitted.
        until: Instant,
    },
    /// See [`State::HalfOpen`].
    HalfOpen(Probes),
    /// See [`State::ForcedOpen`].
    ForcedOpen,
    /// See [`State::Disabled`].
    Disabled,
    /// See [`State::MetricsOnly`].
    MetricsOnly,
}

impl Phase {
    /// The state without its data.
    pub const fn state(&self) -> State {
        match self {
            Phase::Closed => State::Closed,
            Phase::Open { .. } => State::Open,
            Phase::HalfOpen(_) => State::HalfOpen,
            Phase::ForcedOpen => State::ForcedOpen,
            Phase::Disabled => State::Disabled,
            Phase::MetricsOnly => State::MetricsOnly,
        }
    }
}

/// What a call came to, as reported with [`Breaker::record`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Outcome {
    /// The call succeeded.
    Success,
    /// The call failed.
    Failure,
    /// The call says nothing about the dependency's health (a cancelled call,
    /// a client-side error): counts nothing, and gives a probe's slot back.
    Ignored,
}

/// Why a call was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum RejectReason {
    /// The breaker is open.
    Open,
    /// The breaker is half-open and all its probe slots are taken.
    HalfOpenFull,
    /// The breaker was forced open.
    ForcedOpen,
    /// Only from a [`SharedBreaker`](crate::SharedBreaker): the call needed
    /// the breaker's lock while the code it interrupted held it (a call from
    /// an NMI or HardFault handler, which no critical section masks, or from
    /// inside the breaker's own lock). Refused at once rather than waiting
    /// for a writer that cannot run until this call returns.
    Busy,
}

/// A rejected call: the reason, and how long until a retry can be admitted.
///
/// ```
/// use breakerbox_core::{Breaker, Config, ConsecutiveFailures, Duration, Instant, NoClock, Outcome, RejectReason};
///
/// let mut breaker = Breaker::new(Config::DEFAULT, ConsecutiveFailures::new(1).unwrap(), NoClock);
/// let permit = breaker.try_acquire_at(Instant::ZERO).result.unwrap();
/// breaker.record_at(permit, Outcome::Failure, Instant::ZERO);
/// let rejected = breaker.try_acquire_at(Instant::from_secs(2)).result.unwrap_err();
/// assert_eq!(rejected.reason, RejectReason::Open);
/// assert_eq!(rejected.retry_after(), Some(core::time::Duration::from_secs(3))); // 5 s open, 2 s gone
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Rejected {
    /// Why.
    pub reason: RejectReason,
    /// See [`retry_after`](Self::retry_after): kept in the core's
    /// microseconds, converted only when asked (a rejection is a hot path).
    wait: Option<Duration>,
}

impl Rejected {
    /// A rejection for `reason`, retryable after `retry_after` when that is
    /// known: for adapters and tests that answer as a breaker would.
    ///
    /// ```
    /// use core::time::Duration;
    /// use breakerbox_core::{RejectReason, Rejected};
    ///
    /// let r = Rejected::new(RejectReason::Open, Some(Duration::from_millis(250)));
    /// assert_eq!(r.retry_after(), Some(Duration::from_millis(250)));
    /// ```
    pub const fn new(reason: RejectReason, retry_after: Option<core::time::Duration>) -> Self {
        let wait = match retry_after {
            Some(d) => Some(Duration::from_core(d)),
            None => None,
        };
        Rejected { reason, wait }
    }

    /// A rejection from the state machine, its wait in the core's units.
    pub(crate) const fn waiting(reason: RejectReason, wait: Option<Duration>) -> Self {
        Rejected { reason, wait }
    }

    /// Exactly how long until the breaker admits a probe, when that is
    /// known: `Some` when open, `None` when half-open is full (a slot frees
    /// when a probe reports) or when forced open (until released). A
    /// `core::time::Duration` (`std::time::Duration`): sleep on it as it is.
    pub fn retry_after(&self) -> Option<core::time::Duration> {
        self.wait.map(Duration::to_core)
    }

    /// [`retry_after`](Self::retry_after) in the core's microsecond
    /// [`Duration`], with no conversion (for firmware).
    pub const fn retry_after_micros(&self) -> Option<Duration> {
        self.wait
    }
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let why = match self.reason {
            RejectReason::Open => "the circuit breaker is open",
            RejectReason::HalfOpenFull => {
                "the circuit breaker is half-open and its probes are busy"
            }
            RejectReason::ForcedOpen => "the circuit breaker is forced open",
            RejectReason::Busy => "the circuit breaker is busy in the code this call interrupted",
        };
        f.write_str(why)?;
        if let Some(d) = self.wait {
            write!(f, "; retry after {d}")?;
        }
        Ok(())
    }
}

impl core::error::Error for Rejected {}

/// Leave to make one call: hand it back to [`Breaker::record`] with the
/// outcome. It cannot be copied, so each admission is reported at most once.
///
/// A permit dropped without a report counts nothing; in half-open its slot
/// stays taken until the probe lease ends.
///
/// Only a breaker makes one: a permit cannot be forged, nor counts be added
/// to a breaker from outside.
///
/// ```compile_fail,E0451
/// let forged = breakerbox_core::Permit { generation: 0, started: breakerbox_core::Instant::ZERO,
///     state: breakerbox_core::State::Closed, counted: true, epoch: 0 };
/// ```
///
/// ```compile_fail,E0624
/// use breakerbox_core::{Breaker, Config, ConsecutiveFailures, Instant, NoClock, State};
///
/// let forged = breakerbox_core::Permit::uncounted(0, Instant::ZERO, State::Closed, 0);
/// ```
///
/// ```compile_fail,E0624
/// use breakerbox_core::{Breaker, Config, ConsecutiveFailures, NoClock};
///
/// let mut b = Breaker::new(Config::DEFAULT, ConsecutiveFailures::new(1).unwrap(), NoClock);
/// b.add_lock_free_counts(1_000, 0);
/// ```
#[derive(Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[must_use = "report the call's outcome with `Breaker::record`"]
pub struct Permit {
    generation: u64,
    started: Instant,
    state: State,
    /// Whether the breaker counted the admission; a wrapper's lock-free
    /// admissions are counted when reported instead.
    counted: bool,
    /// The breaker's epoch (its resets, see [`epoch_of`]) at admission: a
    /// lock-free admission reported after a reset counts no call.
    epoch: u32,
}

/// The epoch of a breaker reset `resets` times: its low 24 bits (what the
/// shared breaker publishes beside its flags).
pub(crate) const fn epoch_of(resets: u32) -> u32 {
    resets & 0x00ff_ffff
}

impl Permit {
    /// A permit for a call admitted without counting it (the closed path of
    /// `Breaker::call`, the shared breaker's lock-free admission): the call
    /// is counted in [`Counts::calls`] when it is reported.
    pub(crate) const fn uncounted(
        generation: u64,
        started: Instant,
        state: State,
        epoch: u32,
    ) -> Permit {
        Permit {
            generation,
            started,
            state,
            counted: false,
            epoch,
        }
    }

    /// The same permit again, for a report made on its owner's behalf (a
    /// failure recorded while the call unwinds). Crate-private: a permit is
    /// reported once.
    pub(crate) const fn duplicate(&self) -> Permit {
        Permit {
            generation: self.generation,
            started: self.started,
            state: self.state,
            counted: self.counted,
            epoch: self.epoch,
        }
    }

    /// The breaker generation that admitted the call.
    pub const fn generation(&self) -> u64 {
        self.generation
    }

    /// When the call was admitted. Only read from the clock when the breaker
    /// needs it (slow calls tracked, a time-based policy, half-open, or a
    /// `*_at` method given the time); otherwise [`Instant::ZERO`].
    pub const fn started(&self) -> Instant {
        self.started
    }

    /// The state that admitted the call.
    pub const fn state(&self) -> State {
        self.state
    }

    /// Whether the call was counted in [`Counts::calls`] when admitted
    /// (`false` for one admitted lock-free, counted when reported).
    pub(crate) const fn is_counted(&self) -> bool {
        self.counted
    }
}

/// Whether a report counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ReportStatus {
    /// The report belongs to the current generation and was taken.
    Recorded,
    /// The permit is from an earlier generation: the report changed nothing.
    Stale,
}

/// The answer to [`Breaker::record`]: whether it counted, and the transition
/// it caused, if any.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[must_use]
pub struct Report {
    /// Whether the report counted.
    pub status: ReportStatus,
    /// The transition this report caused.
    pub transition: Option<Transition>,
}

impl Report {
    /// Whether the report was stale.
    pub const fn is_stale(&self) -> bool {
        matches!(self.status, ReportStatus::Stale)
    }
}

/// The answer to [`Breaker::try_acquire`]: a permit or a rejection, and the
/// transition the attempt caused, if any.
///
/// The core breakers have no listeners, so every operation hands back the
/// transition it made ([`Report`] does the same for reports). A
/// `StdBreaker` tells its listeners instead and returns the plain
/// `Result<Guard, Rejected>`; [`into_result`](Self::into_result) (or `into()`)
/// gives the core's answer that same shape.
///
/// ```
/// use breakerbox_core::{Breaker, Config, ConsecutiveFailures, Instant, NoClock, Permit, Rejected};
///
/// let mut breaker = Breaker::new(Config::DEFAULT, ConsecutiveFailures::default(), NoClock);
/// let admission = breaker.try_acquire_at(Instant::ZERO);
/// assert!(admission.transition.is_none()); // closed admits without a change
/// let permit: Result<Permit, Rejected> = admission.into();
/// assert!(permit.is_ok());
/// ```
#[derive(Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[must_use]
pub struct Admission {
    /// The permit, or why there is none.
    pub result: Result<Permit, Rejected>,
    /// The transition this attempt caused (open to half-open, or half-open
    /// back to open when the probe lease ran out).
    pub transition: Option<Transition>,
}

impl Admission {
    /// The permit or the rejection, dropping the transition.
    pub fn into_result(self) -> Result<Permit, Rejected> {
        self.result
    }
}

impl From<Admission> for Result<Permit, Rejected> {
    fn from(admission: Admission) -> Self {
        admission.result
    }
}

/// Why the breaker changed state. More reasons may come with new policies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum TransitionReason {
    /// Closed to open: the trip policy said so, by this rule.
    Tripped(TripRule),
    /// Open to half-open: the open deadline passed.
    OpenElapsed,
    /// Half-open to closed: enough probes succeeded.
    ProbesSucceeded,
    /// Half-open to open: a probe failed.
    ProbeFailed,
    /// Half-open to open: the probes' failure rate
    /// ([`TripRule::FailureRate`]) or slow-call rate
    /// ([`TripRule::SlowCallRate`]) reached its threshold
    /// ([`HalfOpenVerdict::Rates`]); the failure rate is named when both did.
    ProbeRateExceeded(TripRule),
    /// Half-open to open: probes stayed out past the probe lease.
    ProbeLeaseExpired,
    /// Manual: [`Breaker::force_open`].
    ForcedOpen,
    /// Manual: [`Breaker::disable`].
    Disabled,
    /// Manual: [`Breaker::measure_only`].
    MetricsOnly,
    /// Manual: [`Breaker::release`] back to closed.
    Released,
    /// Manual: [`Breaker::reset`].
    Reset,
}

/// One state change, given to the caller whose operation caused it and kept
/// in the breaker's history.
///
/// More may be told of a transition in later versions, so it is
/// `#[non_exhaustive]`; [`Transition::new`] makes one (for a listener's
/// tests, say).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct Transition {
    /// The state left.
    pub from: State,
    /// The state entered.
    pub to: State,
    /// When (the time of the operation that caused it).
    pub at: Instant,
    /// Why.
    pub reason: TransitionReason,
    /// The generation the breaker entered: one more than before.
    pub generation: u64,
}

impl Transition {
    /// A transition from `from` to `to` at `at`, for `reason`, into
    /// `generation`.
    ///
    /// ```
    /// use breakerbox_core::{Instant, State, Transition, TransitionReason, TripRule};
    ///
    /// let tripped = TransitionReason::Tripped(TripRule::FailureRate);
    /// let t = Transition::new(State::Closed, State::Open, Instant::ZERO, tripped, 1);
    /// assert_eq!(t.to_string(), "closed -> open (tripped by failure rate) at t=0s, generation 1");
    /// ```
    pub const fn new(
        from: State,
        to: State,
        at: Instant,
        reason: TransitionReason,
        generation: u64,
    ) -> Self {
        Transition {
            from,
            to,
            at,
            reason,
            generation,
        }
    }
}

impl TransitionReason {
    /// The reason in a few words, for logs and labels.
    ///
    /// ```
    /// use breakerbox_core::{TransitionReason, TripRule};
    ///
    /// assert_eq!(TransitionReason::ProbeLeaseExpired.as_str(), "probe lease expired");
    /// // Display names the rule where there is one.
    /// let slow = TransitionReason::ProbeRateExceeded(TripRule::SlowCallRate);
    /// assert_eq!(slow.to_string(), "probes' slow-call rate reached");
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            TransitionReason::Tripped(_) => "tripped",
            TransitionReason::OpenElapsed => "open duration elapsed",
            TransitionReason::ProbesSucceeded => "probes succeeded",
            TransitionReason::ProbeFailed => "a probe failed",
            TransitionReason::ProbeRateExceeded(_) => "probes' rate reached",
            TransitionReason::ProbeLeaseExpired => "probe lease expired",
            TransitionReason::ForcedOpen => "forced open",
            TransitionReason::Disabled => "disabled",
            TransitionReason::MetricsOnly => "measure only",
            TransitionReason::Released => "released",
            TransitionReason::Reset => "reset",
        }
    }
}

impl fmt::Display for TransitionReason {
    /// [`as_str`](Self::as_str), and for a trip or the probes' rates the
    /// rule that fired: `tripped by failure rate`, `probes' slow-call rate
    /// reached`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransitionReason::Tripped(rule) => write!(f, "tripped by {rule}"),
            TransitionReason::ProbeRateExceeded(rule) => write!(f, "probes' {rule} reached"),
            reason => f.write_str(reason.as_str()),
        }
    }
}

impl fmt::Display for Transition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} -> {} ({}) at {}, generation {}",
            self.from, self.to, self.reason, self.at, self.generation
        )
    }
}

/// Logs `transition` through the `log` facade, at `info` for a trip or a
/// reopening and `debug` otherwise, under the target `breakerbox`: a hook
/// for the bus wrappers' [`on_transition`](crate::hal::BreakerI2c::on_transition),
/// or for the transitions a breaker's answers carry. No allocation; no_std.
///
/// ```
/// use breakerbox_core::{log_transition, Breaker, Config, ConsecutiveFailures, Instant, NoClock, Outcome};
///
/// let mut breaker = Breaker::new(Config::DEFAULT, ConsecutiveFailures::new(1).unwrap(), NoClock);
/// let permit = breaker.try_acquire_at(Instant::ZERO).result.unwrap();
/// if let Some(t) = breaker.record_at(permit, Outcome::Failure, Instant::ZERO).transition {
///     log_transition(&t); // "closed -> open (tripped by consecutive failures) at t=0s, generation 1"
/// }
/// ```
#[cfg(feature = "log")]
pub fn log_transition(transition: &Transition) {
    let level = if transition.to == State::Open {
        log::Level::Info
    } else {
        log::Level::Debug
    };
    log::log!(target: "breakerbox", level, "{transition}");
}

/// Counters since the breaker was made or last reset; each saturates at
/// `u64::MAX`. Nothing is counted while [`State::Disabled`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct Counts {
    /// Calls admitted. (A shared breaker's lock-free closed-state admissions
    /// are counted when they are reported: admitting writes nothing.)
    pub calls: u64,
    /// Successes recorded.
    pub successes: u64,
    /// Failures recorded.
    pub failures: u64,
    /// Slow calls recorded (successes or failures).
    pub slow: u64,
    /// Reports with [`Outcome::Ignored`].
    pub ignored: u64,
    /// Calls rejected.
    pub rejected: u64,
    /// Stale reports.
    pub stale: u64,
}

impl Counts {
    /// Field by field sum, each saturating at `u64::MAX`.
    ///
    /// ```
    /// use breakerbox_core::Counts;
    ///
    /// let (mut a, mut b) = (Counts::default(), Counts::default());
    /// (a.calls, a.successes) = (2, 2);
    /// (b.calls, b.rejected) = (u64::MAX, 1);
    /// let sum = a.saturating_add(b);
    /// assert_eq!((sum.calls, sum.successes, sum.rejected), (u64::MAX, 2, 1));
    /// ```
    pub const fn saturating_add(self, other: Counts) -> Counts {
        Counts {
            calls: self.calls.saturating_add(other.calls),
            successes: self.successes.saturating_add(other.successes),
            failures: self.failures.saturating_add(other.failures),
            slow: self.slow.saturating_add(other.slow),
            ignored: self.ignored.saturating_add(other.ignored),
            rejected: self.rejected.saturating_add(other.rejected),
            stale: self.stale.saturating_add(other.stale),
        }
    }
}

/// A snapshot of the breaker for dashboards and logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct Metrics {
    /// The current state.
    pub state: State,
    /// The current generation.
    pub generation: u64,
    /// The counters.
    pub counts: Counts,
    /// Failures over calls in the policy's window; `None` below its minimum
    /// number of calls or for a policy without a window.
    pub failure_rate: Option<Ratio>,
    /// Slow calls over calls in the policy's window, known as `failure_rate` is.
    pub slow_rate: Option<Ratio>,
    /// How long the breaker has been in this state.
    pub time_in_state: core::time::Duration,
    /// When the next probe can be admitted: the open deadline when open; now
    /// when half-open with a free slot (and its lease not over); `None`
    /// otherwise (closed states need no probe, forced open admits none, and a
    /// full half-open waits for a report).
    pub next_probe_at: Option<Instant>,
    /// Probes admitted in half-open and not yet reported.
    pub probes_in_flight: u32,
}

impl Default for Metrics {
    /// The metrics of a breaker just made: closed, generation 0, nothing
    /// counted, no rates, no time in state, no probe to wait for.
    fn default() -> Self {
        Metrics {
            state: State::Closed,
            generation: 0,
            counts: Counts::default(),
            failure_rate: None,
            slow_rate: None,
            time_in_state: core::time::Duration::ZERO,
            next_probe_at: None,
            probes_in_flight: 0,
        }
    }
}

/// The error of a call made through the breaker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum CallError<E> {
    /// The breaker did not let the call through.
    Rejected(Rejected),
    /// The call ran and returned this error.
    Inner(E),
}

impl<E> CallError<E> {
    /// The operation's own error, if it ran and failed.
    pub fn into_inner(self) -> Option<E> {
        match self {
            CallError::Inner(e) => Some(e),
            CallError::Rejected(_) => None,
        }
    }

    /// Whether the breaker rejected the call.
    pub const fn is_rejected(&self) -> bool {
        matches!(self, CallError::Rejected(_))
    }
}

/// Each message is said once in an error chain (`{:#}` with anyhow, or a
/// walk of [`source`](core::error::Error::source)): a rejection prints
/// itself and has no source; a failed call says so and gives the
/// operation's error as its source.
///
/// ```
/// use breakerbox_core::{CallError, RejectReason, Rejected};
///
/// let failed: CallError<core::fmt::Error> = CallError::Inner(core::fmt::Error);
/// assert_eq!(failed.to_string(), "the call failed");
/// let cause = core::error::Error::source(&failed).unwrap();
/// assert_eq!(cause.to_string(), "an error occurred when formatting an argument");
///
/// let rejected: CallError<core::fmt::Error> =
///     CallError::Rejected(Rejected::new(RejectReason::ForcedOpen, None));
/// assert_eq!(rejected.to_string(), "the circuit breaker is forced open");
/// assert!(core::error::Error::source(&rejected).is_none());
/// ```
impl<E> fmt::Display for CallError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Rejected(r) => fmt::Display::fmt(r, f),
            CallError::Inner(_) => f.write_str("the call failed"),
        }
    }
}

impl<E: core::error::Error + 'static> core::error::Error for CallError<E> {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            CallError::Rejected(_) => None,
            CallError::Inner(e) => Some(e),
        }
    }
}

/// The time of one operation, read from the clock at most once and only if
/// needed: the closed hot path often needs no time at all.
struct Now<F> {
    read: F,
    known: Option<Instant>,
}

impl<F: FnMut() -> Instant> Now<F> {
    fn get(&mut self) -> Instant {
        match self.known {
            Some(t) => t,
            None => {
                let t = (self.read)();
                self.known = Some(t);
                t
            }
        }
    }

    /// The time if `needed` or already known, else `fallback`.
    fn get_if(&mut self, needed: bool, fallback: Instant) -> Instant {
        match self.known {
            Some(t) => t,
            None if needed => self.get(),
            None => fallback,
        }
    }
}

fn given(now: Instant) -> Now<impl FnMut() -> Instant> {
    Now {
        read: move || now,
        known: Some(now),
    }
}

/// Everything but the clock, so the clock can be read lazily while the
/// state machine is borrowed mutably.
#[derive(Clone, Debug)]
struct Machine<P, const H: usize, S> {
    phase: Phase,
    generation: u64,
    entered_at: Instant,
    /// The current open duration before jitter; grows with each failed probe.
    open_base: Duration,
    rng: Rng,
    counts: Counts,
    /// Successes `call` counted inline: each is one call and one success,
    /// added to `counts` when read (one counter on the hot path, not two).
    noop_successes: u64,
    /// Resets so far, wrapping.
    resets: u32,
    settings: S,
    policy: P,
    history: History<H>,
}

impl<P, const H: usize, S> Machine<P, H, S> {
    /// A closed machine: time in the first closed state counts from the
    /// clock's epoch. `config` is what `settings` gives.
    const fn new(config: &Config, settings: S, policy: P) -> Self {
        Machine {
            phase: Phase::Closed,
            generation: 0,
            entered_at: Instant::ZERO,
            open_base: config.schedule.initial(),
            rng: Rng::new(config.seed_or_default()),
            counts: Counts {
                calls: 0,
                successes: 0,
                failures: 0,
                slow: 0,
                ignored: 0,
                rejected: 0,
                stale: 0,
            },
            noop_successes: 0,
            resets: 0,
            settings,
            policy,
            history: History::new(),
        }
    }

    /// Every count, the inline successes included.
    fn counts(&self) -> Counts {
        let n = self.noop_successes;
        Counts {
            calls: self.counts.calls.saturating_add(n),
            successes: self.counts.successes.saturating_add(n),
            ..self.counts
        }
    }
}

impl<P: TripPolicy, const H: usize, S: Settings> Machine<P, H, S> {
    fn closed_needs_time(&self) -> bool {
        self.policy.needs_time() || self.settings.config().slow_call_threshold.is_some()
    }

    /// How long an open machine still rejects at `t`; `None` once its
    /// deadline has come. The deadline is pulled back (and kept) to at most
    /// the longest open duration from `t`: a clock that once read far ahead
    /// (up to `Instant::MAX`) cannot keep the breaker open once it reads
    /// right again.
    fn open_wait(&mut self, t: Instant) -> Option<Duration> {
        let longest = t.saturating_add(self.settings.config().schedule.max());
        match &mut self.phase {
            Phase::Open { until } if t < *until => {
                if *until > longest {
                    *until = longest;
                }
                Some(until.saturating_duration_since(t))
            }
            _ => None,
        }
    }

    /// Whether half-open's probes in flight are past their lease now. A
    /// lease still running is pulled back (and kept) to at most one lease
    /// from now, as the open deadline is. Reads the clock only if
    /// half-open.
    fn lease_ended(&mut self, now: &mut Now<impl FnMut() -> Instant>) -> bool {
        if !matches!(self.phase, Phase::HalfOpen(_)) {
            return false;
        }
        // Read with no probe in flight too: a probe's verdict needs the time.
        let t = now.get();
        self.lease_ended_at(t, self.lease_from(t))
    }

    /// [`lease_ended`](Self::lease_ended) at `t`, given the end of a lease
    /// that starts at `t`.
    #[inline(always)]
    fn lease_ended_at(&mut self, t: Instant, lease_from_t: Instant) -> bool {
        match &mut self.phase {
            Phase::HalfOpen(p) if p.in_flight > 0 => {
                p.lease_until = p.lease_until.min(lease_from_t);
                t >= p.lease_until
            }
            _ => false,
        }
    }

    /// The end of a probe lease that starts at `t`.
    fn lease_from(&self, t: Instant) -> Instant {
        t.saturating_add(self.settings.config().probe_lease)
    }

    fn poll_at(&self, now: Instant) -> Option<Instant> {
        match self.phase {
            Phase::Open { until } => {
                Some(until.min(now.saturating_add(self.settings.config().schedule.max())))
            }
            Phase::HalfOpen(p) if p.in_flight > 0 => Some(
                p.lease_until
                    .min(now.saturating_add(self.settings.config().probe_lease)),
            ),
            _ => None,
        }
    }

    fn acquire(&mut self, now: &mut Now<impl FnMut() -> Instant>) -> Admission {
        match self.phase {
            Phase::Closed | Phase::MetricsOnly => {
                self.tally(|c| &mut c.calls);
                let started = now.get_if(self.closed_needs_time(), Instant::ZERO);
                self.admit(started, None)
            }
            Phase::Disabled => {
                let started = now.get_if(false, Instant::ZERO);
                self.admit(started, None)
            }
            Phase::ForcedOpen => self.reject(RejectReason::ForcedOpen, None, None),
            Phase::Open { .. } => {
                let t = now.get();
                if let Some(wait) = self.open_wait(t) {
                    return self.reject(RejectReason::Open, Some(wait), None);
                }
                let probes = Probes {
                    in_flight: 1,
                    successes: 0,
                    failures: 0,
                    slow: 0,
                    lease_until: self.lease_from(t),
                };
                let transition =
                    self.enter(Phase::HalfOpen(probes), TransitionReason::OpenElapsed, t);
                self.tally(|c| &mut c.calls);
                self.admit(t, Some(transition))
            }
            Phase::HalfOpen(_) => {
                let t = now.get();
                let lease_until = self.lease_from(t);
                if self.lease_ended_at(t, lease_until) {
                    let transition = self.reopen(TransitionReason::ProbeLeaseExpired, t);
                    let retry_after = match self.phase {
                        Phase::Open { until } => Some(until.saturating_duration_since(t)),
                        _ => None,
                    };
                    return self.reject(RejectReason::Open, retry_after, Some(transition));
                }
                let max_probes = self.settings.config().max_probes();
                if let Phase::HalfOpen(p) = &mut self.phase {
                    if p.in_flight >= max_probes {
                        return self.reject(RejectReason::HalfOpenFull, None, None);
                    }
                    if p.in_flight == 0 {
                        p.lease_until = lease_until;
                    }
                    p.in_flight += 1;
                }
                self.tally(|c| &mut c.calls);
                self.admit(t, None)
            }
        }
    }

    /// The rejection of an open breaker (deadline `until`) at `now`, if
    /// `now` is before the deadline: counted, as `acquire` would.
    /// `None` too for a deadline further ahead than the longest open
    /// duration, for [`acquire`](Self::acquire) to pull back.
    #[inline]
    fn reject_before(&mut self, now: Instant, until: Instant) -> Option<Rejected> {
        let wait = until.saturating_duration_since(now);
        if wait.is_zero() || wait > self.settings.config().schedule.max() {
            return None;
        }
        self.tally(|c| &mut c.rejected);
        Some(Rejected::waiting(
            RejectReason::Open,
            Some(until.saturating_duration_since(now)),
        ))
    }

    /// Closed, and neither admission nor a report needs the time: the
    /// state `call` handles inline.
    #[inline]
    fn closed_without_time(&self) -> bool {
        matches!(self.phase, Phase::Closed) && !self.closed_needs_time()
    }

    /// Counts a call of the current closed generation whose success changes
    /// nothing else (see [`TripPolicy::success_is_noop`]); `false`, having
    /// done nothing, for every other outcome. Only for callers that know
    /// the breaker is still [`closed_without_time`](Self::closed_without_time)
    /// in the generation the call was admitted in.
    #[inline]
    fn count_noop_success(&mut self, outcome: Outcome) -> bool {
        let noop = outcome == Outcome::Success && self.policy.success_is_noop();
        if noop && S::METRICS {
            // Wrapping, not saturating: one increment per call cannot reach
            // 2^64 (585 years at a call a nanosecond), and a conditional move
            // would lengthen the hot path's chain through this counter.
            self.noop_successes = self.noop_successes.wrapping_add(1);
        }
        noop
    }

    fn admit(&self, started: Instant, transition: Option<Transition>) -> Admission {
        Admission {
            result: Ok(Permit {
                generation: self.generation,
                started,
                state: self.phase.state(),
                counted: true,
                epoch: epoch_of(self.resets),
            }),
            transition,
        }
    }

    fn reject(
        &mut self,
        reason: RejectReason,
        retry_after: Option<Duration>,
        transition: Option<Transition>,
    ) -> Admission {
        self.tally(|c| &mut c.rejected);
        Admission {
            result: Err(Rejected::waiting(reason, retry_after)),
            transition,
        }
    }

    fn record(
        &mut self,
        permit: Permit,
        outcome: Outcome,
        now: &mut Now<impl FnMut() -> Instant>,
    ) -> Report {
        // While disabled nothing is counted: neither a call admitted then
        // nor any report made then, stale or not.
        let counting = permit.state != State::Disabled && !matches!(self.phase, Phase::Disabled);
        // A lock-free admission is counted now, unless a reset has zeroed
        // the counts it belonged to.
        if counting && !permit.counted && permit.epoch == epoch_of(self.resets) {
            self.tally(|c| &mut c.calls);
        }
        // Probes past their lease have failed, whatever arrives now.
        if self.lease_ended(now) {
            let transition = self.reopen(TransitionReason::ProbeLeaseExpired, now.get());
            return self.stale(counting, Some(transition));
        }
        if permit.generation != self.generation {
            return self.stale(counting, None);
        }
        let failed = match outcome {
            Outcome::Success => false,
            Outcome::Failure => true,
            Outcome::Ignored => {
                if !matches!(self.phase, Phase::Disabled) {
                    self.tally(|c| &mut c.ignored);
                }
                if let Phase::HalfOpen(p) = &mut self.phase {
                    p.in_flight = p.in_flight.saturating_sub(1);
                }
                return Report {
                    status: ReportStatus::Recorded,
                    transition: None,
                };
            }
        };
        let transition = match self.phase {
            Phase::Disabled => None,
            Phase::Closed | Phase::MetricsOnly => {
                let slow = self.is_slow(&permit, now);
                let at = now.get_if(self.policy.needs_time(), permit.started);
                self.count(failed, slow);
                let trip = self.policy.record(CallRecord { failed, slow, at });
                if trip && matches!(self.phase, Phase::Closed) {
                    let t = now.get();
                    let rule = self.policy.tripped_by().unwrap_or(TripRule::Custom);
                    Some(self.trip(rule, t))
                } else {
                    None
                }
            }
            Phase::HalfOpen(_) => {
                let slow = self.is_slow(&permit, now);
                self.count(failed, slow);
                let t = now.get();
                self.judge_probe(failed, slow, t)
            }
            // No permit of the current generation exists in these states:
            // every transition into them bumps the generation.
            Phase::Open { .. } | Phase::ForcedOpen => return self.stale(counting, None),
        };
        Report {
            status: ReportStatus::Recorded,
            transition,
        }
    }

    /// Half-open's verdict after one more probe result.
    fn judge_probe(&mut self, failed: bool, slow: bool, t: Instant) -> Option<Transition> {
        let Phase::HalfOpen(probes) = &mut self.phase else {
            return None;
        };
        // Written back only if half-open stays: a transition replaces the
        // probes, and a store it replaces is code for nothing.
        let in_flight = probes.in_flight.saturating_sub(1);
        let needed = self.settings.config().successes_to_close();
        match self.settings.config().half_open_verdict() {
            HalfOpenVerdict::AnyFailure => {
                if failed {
                    return Some(self.reopen(TransitionReason::ProbeFailed, t));
                }
                let successes = probes.successes.saturating_add(1);
                if successes >= needed {
                    return Some(self.close(TransitionReason::ProbesSucceeded, t));
                }
                probes.in_flight = in_flight;
                probes.successes = successes;
                None
            }
            HalfOpenVerdict::Rates {
                failure_rate,
                slow_rate,
            } => {
                probes.in_flight = in_flight;
                if failed {
                    probes.failures = probes.failures.saturating_add(1);
                } else {
                    probes.successes = probes.successes.saturating_add(1);
                }
                if slow {
                    probes.slow = probes.slow.saturating_add(1);
                }
                let probes = *probes;
                let results = probes.successes as u64 + probes.failures as u64;
                if results < needed as u64 {
                    return None;
                }
                let too_many_failures = failure_rate.is_reached_by(probes.failures as u64, results);
                let too_slow = match slow_rate {
                    Some(rate) => rate.is_reached_by(probes.slow as u64, results),
                    None => false,
                };
                let rule = if too_many_failures {
                    Some(TripRule::FailureRate)
                } else if too_slow {
                    Some(TripRule::SlowCallRate)
                } else {
                    None
                };
                if let Some(rule) = rule {
                    Some(self.reopen(TransitionReason::ProbeRateExceeded(rule), t))
                } else {
                    Some(self.close(TransitionReason::ProbesSucceeded, t))
                }
            }
        }
    }

    fn is_slow(&self, permit: &Permit, now: &mut Now<impl FnMut() -> Instant>) -> bool {
        match self.settings.config().slow_call_threshold {
            Some(threshold) => now.get().saturating_duration_since(permit.started) >= threshold,
            None => false,
        }
    }

    fn count(&mut self, failed: bool, slow: bool) {
        if failed {
            self.tally(|c| &mut c.failures);
        } else {
            self.tally(|c| &mut c.successes);
        }
        if slow {
            self.tally(|c| &mut c.slow);
        }
    }

    /// Adds one to a count, if the breaker keeps counts ([`Settings::METRICS`]).
    #[inline(always)]
    fn tally(&mut self, count: impl FnOnce(&mut Counts) -> &mut u64) {
        if S::METRICS {
            let n = count(&mut self.counts);
            *n = n.saturating_add(1);
        }
    }

    fn stale(&mut self, counting: bool, transition: Option<Transition>) -> Report {
        if counting {
            self.tally(|c| &mut c.stale);
        }
        Report {
            status: ReportStatus::Stale,
            transition,
        }
    }

    fn enter(&mut self, phase: Phase, reason: TransitionReason, at: Instant) -> Transition {
        let from = self.phase.state();
        self.switch(phase, at);
        self.announce(from, reason, at)
    }

    /// Moves to `phase` at `at`, in a new generation.
    #[inline(always)]
    fn switch(&mut self, phase: Phase, at: Instant) {
        self.phase = phase;
        self.next_generation(at);
    }

    /// A new generation, entered at `at`. Out of line: 64-bit arithmetic is
    /// long on a 32-bit core, and every transition makes one.
    #[inline(never)]
    fn next_generation(&mut self, at: Instant) {
        // Cannot wrap in practice (2^64 transitions); wrapping keeps it panic-free.
        self.generation = self.generation.wrapping_add(1);
        if S::METRICS {
            self.entered_at = at;
        }
    }

    /// The transition from `from` to where the machine is now, kept in the
    /// history. Made apart from the switch, so that a caller that drops it
    /// (most firmware) compiles no code for it.
    #[inline(always)]
    fn announce(&mut self, from: State, reason: TransitionReason, at: Instant) -> Transition {
        let transition = Transition {
            from,
            to: self.phase.state(),
            at,
            reason,
            generation: self.generation,
        };
        self.history.write(&transition);
        transition
    }

    fn open_deadline(&mut self, at: Instant) -> Instant {
        let d = match self.settings.config().schedule {
            // A constant when the configuration is (no field to read).
            Schedule::Fixed(d) => d,
            Schedule::Exponential { .. } => self.open_base,
        };
        let jittered = match self.settings.config().jitter() {
            Jitter::None => d,
            Jitter::Full => Duration::from_micros(self.rng.up_to(d.as_micros())),
            Jitter::Equal => {
                let half = d.as_micros() / 2;
                Duration::from_micros(half + self.rng.up_to(d.as_micros() - half))
            }
        };
        at.saturating_add(jittered)
    }

    fn trip(&mut self, rule: TripRule, at: Instant) -> Transition {
        self.switch_to_open(at);
        self.announce(State::Closed, TransitionReason::Tripped(rule), at)
    }

    fn reopen(&mut self, reason: TransitionReason, at: Instant) -> Transition {
        let from = self.phase.state();
        let backoff = self.settings.config().schedule;
        if let Schedule::Exponential { .. } = backoff {
            self.open_base = backoff.next(self.open_base);
        }
        self.switch_to_open(at);
        self.announce(from, reason, at)
    }

    /// Open at `at` for the current open duration. Out of line: four places
    /// open the breaker.
    #[inline(never)]
    fn switch_to_open(&mut self, at: Instant) {
        let until = self.open_deadline(at);
        self.switch(Phase::Open { until }, at);
    }

    fn close(&mut self, reason: TransitionReason, at: Instant) -> Transition {
        let backoff = self.settings.config().schedule;
        if let Schedule::Exponential { .. } = backoff {
            self.open_base = backoff.initial();
        }
        self.policy.reset(at);
        self.enter(Phase::Closed, reason, at)
    }

    fn enter_manual(
        &mut self,
        phase: Phase,
        reason: TransitionReason,
        at: Instant,
    ) -> Option<Transition> {
        if self.phase.state() == phase.state() {
            return None;
        }
        if matches!(phase, Phase::MetricsOnly) {
            self.policy.reset(at);
        }
        Some(self.enter(phase, reason, at))
    }

    fn release(&mut self, at: Instant) -> Option<Transition> {
        match self.phase {
            Phase::ForcedOpen | Phase::Disabled | Phase::MetricsOnly => {
                Some(self.close(TransitionReason::Released, at))
            }
            _ => None,
        }
    }

    fn reset(&mut self, at: Instant) -> Transition {
        self.counts = Counts::default();
        self.noop_successes = 0;
        self.resets = self.resets.wrapping_add(1);
        self.close(TransitionReason::Reset, at)
    }

    fn metrics(&self, now: Instant) -> Metrics {
        let window = self.policy.window(now);
        let rate = |part: fn(&crate::WindowCounts) -> u32| {
            window
                .filter(|w| w.calls > 0 && w.calls >= w.minimum_calls)
                .map(|w| Ratio::new(part(&w), w.calls))
        };
        let (next_probe_at, probes_in_flight) = match self.phase {
            Phase::Open { .. } => (self.poll_at(now), 0),
            Phase::HalfOpen(p) => {
                let lease_ended = p.in_flight > 0 && now >= p.lease_until;
                let free = p.in_flight < self.settings.config().max_probes() && !lease_ended;
                (if free { Some(now) } else { None }, p.in_flight)
            }
            _ => (None, 0),
        };
        Metrics {
            state: self.phase.state(),
            generation: self.generation,
            counts: self.counts(),
            failure_rate: rate(|w| w.failures),
            slow_rate: rate(|w| w.slow),
            time_in_state: if S::METRICS {
                now.saturating_duration_since(self.entered_at).to_core()
            } else {
                core::time::Duration::ZERO
            },
            next_probe_at,
            probes_in_flight,
        }
    }
}

/// A circuit breaker for one thread of control: a main loop, an RTIC
/// resource, one thread. `&mut self` throughout.
///
/// - `P` decides when to trip ([`ConsecutiveFailures`] by default);
/// - `C` tells the time ([`Clock`]); with [`NoClock`] (the default) the
///   breaker is the pure state machine: it has only the `*_at` methods,
///   which take the time as an argument;
/// - `H` is how many transitions the history keeps (4 by default; 0 keeps
///   none and compiles none of its code);
/// - `S` is where the configuration comes from: a [`Config`] value, or
///   [`Fixed`] for one fixed at compile time ([`Breaker::fixed`]).
///
/// # Half-open and the probe lease
///
/// Half-open admits at most `max_probes` calls at once. `successes_to_close`
/// successes close the breaker; any failure reopens it; an `Ignored` outcome
/// gives the slot back. ([`HalfOpenVerdict::Rates`] judges the probes by
/// their failure and slow-call rates instead.) The probe lease starts when a probe is admitted while
/// none is in flight and is not extended by later probes: if probes are still
/// in flight when it ends, they count as failed and the breaker reopens. So
/// every probe is reported within the lease or counts as failed, and
/// half-open can never wedge, even if every permit is lost. (With
/// `max_probes = 1`, the default, the lease is exactly per probe.)
///
/// Every transition bumps the generation; a report with a permit from an
/// earlier generation is [`ReportStatus::Stale`] and changes nothing.
///
/// ```
/// use breakerbox_core::{Breaker, Config, ConsecutiveFailures, Duration, ManualClock, Outcome, State};
///
/// let clock = ManualClock::new();
/// let mut breaker: Breaker<_, _> =
///     Breaker::new(Config::DEFAULT, ConsecutiveFailures::new(2).unwrap(), &clock);
///
/// for _ in 0..2 {
///     let permit = breaker.try_acquire().result.unwrap();
///     let _ = breaker.record(permit, Outcome::Failure);
/// }
/// assert_eq!(breaker.state(), State::Open);
/// assert!(breaker.try_acquire().result.is_err());
///
/// clock.advance(Duration::from_secs(5));
/// let probe = breaker.try_acquire();
/// assert_eq!(breaker.state(), State::HalfOpen);
/// let report = breaker.record(probe.result.unwrap(), Outcome::Success);
/// assert_eq!(report.transition.map(|t| t.to), Some(State::Closed));
/// ```
pub struct Breaker<P = ConsecutiveFailures, C = NoClock, const H: usize = 4, S = Config> {
    machine: Machine<P, H, S>,
    clock: C,
}

impl<P: TripPolicy, C> Breaker<P, C> {
    /// A closed breaker that keeps its last 4 transitions. Time in the
    /// first closed state counts from the clock's epoch (`const`, so it can
    /// initialise a `static`).
    ///
    /// ```
    /// use breakerbox_core::{Breaker, Config, ConsecutiveFailures, ManualClock};
    ///
    /// let clock = ManualClock::new();
    /// let breaker = Breaker::new(Config::DEFAULT, ConsecutiveFailures::new(5).unwrap(), &clock);
    /// assert_eq!(breaker.history().count(), 0);
    /// ```
    pub const fn new(config: Config, policy: P, clock: C) -> Self {
        Breaker::with_history(config, policy, clock)
    }
}

impl<P, const H: usize> Machine<P, H, Config> {
    /// Takes `config` at `now`, keeping state, generation, counts, history,
    /// the policy and the permits out (see [`Breaker::reconfigure_at`]).
    fn reconfigure(&mut self, config: Config, now: Instant) {
        let old_seed = self.settings.jitter_seed();
        // A configuration without a seed keeps the breaker's own.
        let config = match (config.jitter_seed(), old_seed) {
            (None, Some(own)) => config.with_jitter_seed(own),
            _ => config,
        };
        self.settings = config;
        let (shortest, longest) = (config.schedule.initial(), config.schedule.max());
        self.open_base = self.open_base.clamp(shortest, longest);
        if let Some(seed) = config.jitter_seed() {
            if old_seed != Some(seed) {
                self.rng = Rng::new(seed);
            }
        }
        match &mut self.phase {
            Phase::Open { until } => *until = (*until).min(now.saturating_add(longest)),
            Phase::HalfOpen(probes) => {
                let lease_end = now.saturating_add(config.probe_lease);
                probes.lease_until = probes.lease_until.min(lease_end);
            }
            _ => {}
        }
    }
}

impl<P: TripPolicy, C, const H: usize> Breaker<P, C, H> {
    /// A closed breaker that keeps its last `H` transitions, `H` given by
    /// the type (none for `H = 0`); otherwise as [`new`](Breaker::new).
    ///
    /// ```
    /// use breakerbox_core::{Breaker, Config, ConsecutiveFailures, NoClock};
    ///
    /// let breaker: Breaker<_, _, 16> =
    ///     Breaker::with_history(Config::DEFAULT, ConsecutiveFailures::new(5).unwrap(), NoClock);
    /// # let _ = breaker;
    /// ```
    pub const fn with_history(config: Config, policy: P, clock: C) -> Self {
        Breaker {
            machine: Machine::new(&config, config, policy),
            clock,
        }
    }
}

impl<P: TripPolicy, C, const H: usize, K: FixedConfig> Breaker<P, C, H, Fixed<K>> {
    /// A closed breaker whose configuration is `K::CONFIG`, fixed at compile
    /// time: the compiler removes the code of every feature it leaves off
    /// (see [`Fixed`]). Otherwise the same breaker as [`new`](Self::new)
    /// makes; `const`, so it can initialise a `static`.
    ///
    /// ```
    /// use breakerbox_core::{valid, Breaker, Config, ConsecutiveFailures, Fixed, FixedConfig, Instant, NoClock, Outcome, State};
    ///
    /// struct SensorBreaker;
    /// impl FixedConfig for SensorBreaker {
    ///     const CONFIG: Config = valid!(Config::builder()
    ///         .open_duration(core::time::Duration::from_secs(2))
    ///         .build()
    ///);
    /// }
    ///
    /// let mut breaker: Breaker<ConsecutiveFailures, NoClock, 4, Fixed<SensorBreaker>> =
    ///     Breaker::fixed(ConsecutiveFailures::new(1).unwrap(), NoClock);
    /// let permit = breaker.try_acquire_at(Instant::ZERO).result.unwrap();
    /// let _ = breaker.record_at(permit, Outcome::Failure, Instant::ZERO);
    /// assert_eq!(breaker.state(), State::Open);
    /// assert!(breaker.try_acquire_at(Instant::from_secs(2)).result.is_ok());
    /// ```
    pub const fn fixed(policy: P, clock: C) -> Self {
        Breaker {
            machine: Machine::new(&K::CONFIG, Fixed::new(), policy),
            clock,
        }
    }
}

impl<P: TripPolicy, C, const H: usize> Breaker<P, C, H> {
    /// Gives the running breaker a new configuration at `now`, without a
    /// transition: its state, generation, counts, history, policy and the
    /// permits out all stay. What is under way follows these rules (also in
    /// `docs/semantics.md`):
    ///
    /// - **open**: the deadline stays, but never lies further than the new
    ///   longest open duration from `now` (a shorter open duration cuts the
    ///   current opening; a longer one waits for the next);
    /// - **half-open**: the probes out keep their slots and are judged by
    ///   the new rules when they report; a lower `max_probes` admits no
    ///   more until fewer are out; their lease ends no later than the new
    ///   `probe_lease` from `now`;
    /// - **backoff**: the next opening uses the new backoff, its current
    ///   step held within the new bounds;
    /// - **jitter**: a new seed restarts the sequence; the same seed or none
    ///   keeps it (and a configuration without one keeps the breaker's seed);
    /// - **slow calls**: judged by the new threshold from the next report.
    ///
    /// ```
    /// use std::time::Duration;
    /// use breakerbox_core::{Breaker, Config, ConsecutiveFailures, Instant, NoClock, Outcome};
    ///
    /// let slow = Config::builder().open_duration(Duration::from_secs(60)).build().unwrap();
    /// let mut breaker = Breaker::new(slow, ConsecutiveFailures::new(1).unwrap(), NoClock);
    /// let permit = breaker.try_acquire_at(Instant::ZERO).result.unwrap();
    /// let _ = breaker.record_at(permit, Outcome::Failure, Instant::ZERO); // open for 60 s
    ///
    /// let fast = Config::builder().open_duration(Duration::from_secs(5)).build().unwrap();
    /// breaker.reconfigure_at(fast, Instant::from_secs(1));
    /// assert_eq!(breaker.poll_at(Instant::from_secs(1)), Some(Instant::from_secs(6)));
    /// assert_eq!(breaker.generation(), 1, "no transition");
    /// ```
    pub fn reconfigure_at(&mut self, config: Config, now: Instant) {
        self.machine.reconfigure(config, now);
    }
}

impl<P: TripPolicy, C: Clock, const H: usize> Breaker<P, C, H> {
    /// [`reconfigure_at`](Self::reconfigure_at) now.
    pub fn reconfigure(&mut self, config: Config) {
        let now = self.clock.now();
        self.reconfigure_at(config, now);
    }
}

impl<P: TripPolicy, C, const H: usize, S: Settings> Breaker<P, C, H, S> {
    /// Asks to make a call at `now` (the pure form: the clock is not read).
    pub fn try_acquire_at(&mut self, now: Instant) -> Admission {
        self.machine.acquire(&mut given(now))
    }

    /// Reports at `now` how the call admitted by `permit` went (pure form).
    pub fn record_at(&mut self, permit: Permit, outcome: Outcome, now: Instant) -> Report {
        self.machine.record(permit, outcome, &mut given(now))
    }

    /// [`force_open`](Self::force_open) at `now`.
    pub fn force_open_at(&mut self, now: Instant) -> Option<Transition> {
        self.machine
            .enter_manual(Phase::ForcedOpen, TransitionReason::ForcedOpen, now)
    }

    /// [`disable`](Self::disable) at `now`.
    pub fn disable_at(&mut self, now: Instant) -> Option<Transition> {
        self.machine
            .enter_manual(Phase::Disabled, TransitionReason::Disabled, now)
    }

    /// [`measure_only`](Self::measure_only) at `now`.
    pub fn measure_only_at(&mut self, now: Instant) -> Option<Transition> {
        self.machine
            .enter_manual(Phase::MetricsOnly, TransitionReason::MetricsOnly, now)
    }

    /// [`release`](Self::release) at `now`.
    pub fn release_at(&mut self, now: Instant) -> Option<Transition> {
        self.machine.release(now)
    }

    /// [`reset`](Self::reset) at `now`.
    pub fn reset_at(&mut self, now: Instant) -> Option<Transition> {
        Some(self.machine.reset(now))
    }

    /// The current state. Transitions happen lazily, in operations: an open
    /// breaker past its deadline reports `Open` until the next acquire.
    pub fn state(&self) -> State {
        self.machine.phase.state()
    }

    /// The current state with its data.
    pub fn phase(&self) -> Phase {
        self.machine.phase
    }

    /// The current generation.
    pub fn generation(&self) -> u64 {
        self.machine.generation
    }

    /// The counters.
    pub fn counts(&self) -> Counts {
        self.machine.counts()
    }

    /// Adds what a shared breaker's lock-free paths counted: each success
    /// one call and one success, and the rejections.
    pub(crate) fn add_lock_free_counts(&mut self, successes: u64, rejected: u64) {
        let c = &mut self.machine.counts;
        c.calls = c.calls.saturating_add(successes);
        c.successes = c.successes.saturating_add(successes);
        c.rejected = c.rejected.saturating_add(rejected);
    }

    /// How many times the breaker was reset (wrapping): counts kept outside
    /// it under an older number were zeroed by a reset.
    pub(crate) fn resets(&self) -> u32 {
        self.machine.resets
    }

    /// When the breaker's answer will change by itself, with no call made:
    /// the open deadline when open, the end of the probe lease when
    /// half-open with probes in flight; `None` in every other state, which
    /// only a call or a manual control changes. A device can sleep until
    /// then; a waiting caller can retry then.
    ///
    /// ```
    /// use breakerbox_core::{Breaker, Config, ConsecutiveFailures, Instant, NoClock, Outcome};
    ///
    /// let mut breaker = Breaker::new(Config::DEFAULT, ConsecutiveFailures::new(1).unwrap(), NoClock);
    /// assert_eq!(breaker.poll_at(Instant::ZERO), None);
    /// let permit = breaker.try_acquire_at(Instant::ZERO).result.unwrap();
    /// let _ = breaker.record_at(permit, Outcome::Failure, Instant::ZERO);
    /// assert_eq!(breaker.poll_at(Instant::from_secs(1)), Some(Instant::from_secs(5)));
    /// ```
    pub fn poll_at(&self, now: Instant) -> Option<Instant> {
        self.machine.poll_at(now)
    }

    /// A snapshot of everything at `now`.
    pub fn metrics_at(&self, now: Instant) -> Metrics {
        self.machine.metrics(now)
    }

    /// The last `H` transitions, oldest first.
    pub fn history(&self) -> impl Iterator<Item = &Transition> + '_ {
        self.machine.history.oldest_first()
    }

    /// The latest transition, if any.
    pub fn last_transition(&self) -> Option<&Transition> {
        self.machine.history.recent()
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        self.machine.settings.config()
    }

    /// The trip policy.
    pub fn policy(&self) -> &P {
        &self.machine.policy
    }

    /// The trip policy, to change its thresholds in place where its type
    /// allows (such as [`ConsecutiveFailures::set_failure_threshold`]): its
    /// run or window stays, and the next recorded outcome is judged by the
    /// new thresholds.
    pub fn policy_mut(&mut self) -> &mut P {
        &mut self.machine.policy
    }

    /// The clock.
    pub fn clock(&self) -> &C {
        &self.clock
    }
}

/// The methods that read the breaker's clock: a breaker on [`NoClock`] has
/// only their `*_at` forms.
impl<P: TripPolicy, C: Clock, const H: usize, S: Settings> Breaker<P, C, H, S> {
    /// Asks to make a call now. In the closed states this reads the clock
    /// only if the policy or slow-call tracking needs the time.
    #[inline]
    pub fn try_acquire(&mut self) -> Admission {
        let clock = &self.clock;
        self.machine.acquire(&mut Now {
            read: || clock.now(),
            known: None,
        })
    }

    /// Reports how the call admitted by `permit` went.
    #[inline]
    pub fn record(&mut self, permit: Permit, outcome: Outcome) -> Report {
        let clock = &self.clock;
        self.machine.record(
            permit,
            outcome,
            &mut Now {
                read: || clock.now(),
                known: None,
            },
        )
    }

    /// Runs `op` through the breaker: `Ok` is a success, `Err` a failure.
    ///
    /// The transitions it causes are kept in [`history`](Self::history);
    /// use [`try_acquire`](Self::try_acquire) and [`record`](Self::record)
    /// to receive them.
    ///
    /// ```
    /// use breakerbox_core::{Breaker, CallError, Config, ConsecutiveFailures, ManualClock};
    ///
    /// let clock = ManualClock::new();
    /// let mut breaker = Breaker::new(Config::DEFAULT, ConsecutiveFailures::new(1).unwrap(), &clock);
    /// assert_eq!(breaker.call(|| Err::<(), _>("timeout")), Err(CallError::Inner("timeout")));
    /// assert!(breaker.call(|| Ok::<_, ()>(1)).unwrap_err().is_rejected());
    /// ```
    ///
    /// # Errors
    /// [`CallError::Rejected`] without running `op` when the breaker says no;
    /// [`CallError::Inner`] with `op`'s error.
    #[inline]
    pub fn call<T, E>(&mut self, op: impl FnOnce() -> Result<T, E>) -> Result<T, CallError<E>> {
        self.call_classified(op, |result| match result {
            Ok(_) => Outcome::Success,
            Err(_) => Outcome::Failure,
        })
    }

    /// Runs `op` through the breaker, with `classify` deciding what its
    /// result counts as (an `Err` for "not found" may be a success, a
    /// cancelled call may be ignored).
    ///
    /// ```
    /// use breakerbox_core::{Breaker, Config, ConsecutiveFailures, ManualClock, Outcome};
    ///
    /// let clock = ManualClock::new();
    /// let mut breaker = Breaker::new(Config::DEFAULT, ConsecutiveFailures::new(1).unwrap(), &clock);
    /// let not_found = breaker.call_classified(
    ///     || Err::<(), u16>(404),
    ///     |r| match r {
    ///         Err(404) => Outcome::Success,
    ///         Err(_) => Outcome::Failure,
    ///         Ok(_) => Outcome::Success,
    ///     },
    /// );
    /// assert!(not_found.is_err());
    /// assert_eq!(breaker.state(), breakerbox_core::State::Closed);
    /// ```
    ///
    /// # Errors
    /// As [`call`](Self::call).
    #[inline]
    pub fn call_classified<T, E>(
        &mut self,
        op: impl FnOnce() -> Result<T, E>,
        classify: impl FnOnce(&Result<T, E>) -> Outcome,
    ) -> Result<T, CallError<E>> {
        if self.machine.closed_without_time() {
            // Inline and in registers: moving `Admission` and `Report`
            // through the stack would cost more than the breaker itself.
            // `op` has no access to the breaker, so it is still closed in
            // this generation when `op` returns; the call is counted then,
            // with its outcome (a call whose `op` panics is not counted).
            let generation = self.machine.generation;
            let result = op();
            let outcome = classify(&result);
            if !self.machine.count_noop_success(outcome) {
                let epoch = epoch_of(self.machine.resets);
                let permit = Permit::uncounted(generation, Instant::ZERO, State::Closed, epoch);
                let _ = self.record(permit, outcome);
            }
            return result.map_err(CallError::Inner);
        }
        let mut known = None;
        if let Phase::Open { until } = self.machine.phase {
            // Rejected before the deadline inline too, reading the clock once.
            let now = self.clock.now();
            if let Some(rejected) = self.machine.reject_before(now, until) {
                return Err(CallError::Rejected(rejected));
            }
            known = Some(now);
        }
        self.call_slow(known, op, classify)
    }

    /// `call_classified` in the other states, out of line, at `known` if
    /// the clock has been read.
    #[inline(never)]
    fn call_slow<T, E>(
        &mut self,
        known: Option<Instant>,
        op: impl FnOnce() -> Result<T, E>,
        classify: impl FnOnce(&Result<T, E>) -> Outcome,
    ) -> Result<T, CallError<E>> {
        let admission = match known {
            Some(now) => self.try_acquire_at(now),
            None => self.try_acquire(),
        };
        let permit = admission.result.map_err(CallError::Rejected)?;
        let result = op();
        let _ = self.record(permit, classify(&result));
        result.map_err(CallError::Inner)
    }

    /// Rejects every call until [`release`](Self::release); `None` if
    /// already forced open.
    pub fn force_open(&mut self) -> Option<Transition> {
        self.force_open_at(self.clock.now())
    }

    /// Permits every call and records nothing until [`release`](Self::release);
    /// `None` if already disabled.
    pub fn disable(&mut self) -> Option<Transition> {
        self.disable_at(self.clock.now())
    }

    /// Enters [`State::MetricsOnly`]: permits every call and records
    /// outcomes (the policy starts afresh), but never trips, until
    /// [`release`](Self::release); `None` if already metrics-only. (An
    /// action, named as one beside the getter [`metrics`](Self::metrics).)
    pub fn measure_only(&mut self) -> Option<Transition> {
        self.measure_only_at(self.clock.now())
    }

    /// Leaves a manual state (forced open, disabled, metrics-only) for
    /// closed; `None` in any other state.
    pub fn release(&mut self) -> Option<Transition> {
        self.release_at(self.clock.now())
    }

    /// Back to closed from any state, with an empty policy, the first open
    /// duration, zeroed counters and a new generation (so every permit out
    /// becomes stale). The history is kept.
    ///
    /// Like every manual control it returns the transition it made as an
    /// `Option`, the same on all three breakers; here it is always `Some`
    /// (a [`SharedBreaker`](crate::SharedBreaker) asked from inside its own
    /// lock gives `None`).
    pub fn reset(&mut self) -> Option<Transition> {
        self.reset_at(self.clock.now())
    }

    /// A snapshot of everything, reading the clock once.
    pub fn metrics(&self) -> Metrics {
        self.metrics_at(self.clock.now())
    }
}

impl<P: fmt::Debug, C: fmt::Debug, const H: usize, S: Settings> fmt::Debug for Breaker<P, C, H, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = &self.machine;
        f.debug_struct("Breaker")
            .field("phase", &m.phase)
            .field("generation", &m.generation)
            .field("counts", &m.counts())
            .field("config", m.settings.config())
            .field("policy", &m.policy)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "defmt")]
impl<P, C, const H: usize, S> defmt::Format for Breaker<P, C, H, S> {
    fn format(&self, f: defmt::Formatter) {
        defmt::write!(
            f,
            "Breaker {{ phase: {}, generation: {}, counts: {} }}",
            self.machine.phase,
            self.machine.generation,
            self.machine.counts()
        )
    }
}

#[cfg(test)]
mod tests;
