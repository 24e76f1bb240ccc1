//! The thread-safe breaker: a lock-free closed path in front of the core's
//! state machine behind a mutex.

use std::collections::VecDeque;
use std::fmt;

use breakerbox_core::{
    Breaker, CallError, Clock, Config, ConsecutiveFailures, Counts, Instant, Metrics, Outcome,
    Permit, RejectReason, Rejected, ReportStatus, State, Transition, TripPolicy,
};

use crate::clock::MonotonicClock;
use crate::observe::Observer;
use crate::sync::{lock, Arc, AtomicU64, AtomicUsize, Condvar, Mutex, Ordering};
use crate::tally::{Count, Tally};

/// A transition listener.
pub type TransitionListener = Box<dyn Fn(&Transition) + Send + Sync>;
/// A rejection listener.
pub type RejectionListener = Box<dyn Fn(&Rejected) + Send + Sync>;

// The published snapshot word: `generation << 3 | flags`.
/// Closed: admit without the lock.
const ADMIT: u64 = 1;
/// Closed, and a success would change nothing: count it without the lock.
const SUCCESS_IS_NOOP: u64 = 2;
/// Open: `open_until` holds the deadline; reject before it without the lock.
const OPEN: u64 = 4;
const FLAG_BITS: u32 = 3;

/// Runs its closure when dropped: armed around a call and forgotten after
/// it, so it runs only if the call panics.
struct OnUnwind<F: FnMut()>(F);

impl<F: FnMut()> Drop for OnUnwind<F> {
    fn drop(&mut self) {
        (self.0)();
    }
}

/// Transitions waiting for their listeners, delivered in order by one
/// thread at a time, with no lock held while a listener runs.
struct Dispatch {
    queue: VecDeque<Transition>,
    draining: bool,
}

struct Shared<P, C, const H: usize> {
    word: AtomicU64,
    open_until: AtomicU64,
    /// What the lock-free paths counted, per thread; merged into [`Metrics`].
    /// A lock-free success is one call and one success: admission itself
    /// writes nothing.
    tally: Tally,
    /// Closed-state admission reads the clock (slow calls or a timed policy).
    admission_needs_time: bool,
    machine: Mutex<Breaker<P, (), H>>,
    clock: C,
    observer: Observer,
    on_transition: Vec<TransitionListener>,
    on_rejection: Vec<RejectionListener>,
    dispatch: Mutex<Dispatch>,
    /// Bumped whenever a waiting call may now succeed.
    changes: AtomicU64,
    waiters: AtomicUsize,
    wake: Mutex<()>,
    woken: Condvar,
}

/// A circuit breaker for blocking threads: `Send + Sync`, cheap to clone
/// (clones share one breaker), with the core's exact semantics.
///
/// - Admission in the closed state takes no lock: one atomic load (plus the
///   clock, if slow calls are tracked or the policy needs time).
/// - A success in the closed state that changes nothing (no failure run to
///   reset, a count window full of successes) takes no lock either and
///   writes only a counter of the calling thread's own (a per-thread slot:
///   no cache line shared with other threads); every other report takes the
///   mutex around the core [`Breaker`], briefly. No lock is ever held while
///   the protected operation or a listener runs.
/// - An open breaker rejects without the lock until its deadline, reading
///   the clock once and counting on the thread's own slot.
///
/// ```
/// use breakerbox_std::{CallError, Config, ConsecutiveFailures, StdBreaker};
///
/// let breaker = StdBreaker::new(Config::DEFAULT, ConsecutiveFailures::new(3).unwrap());
/// let worker = breaker.clone();
/// let answer = std::thread::spawn(move || worker.call(|| Ok::<_, std::io::Error>(42)))
///     .join()
///     .unwrap();
/// assert_eq!(answer.unwrap(), 42);
/// for _ in 0..3 {
///     let _ = breaker.call(|| Err::<(), _>("refused"));
/// }
/// assert!(matches!(breaker.call(|| Ok::<_, ()>(())), Err(CallError::Rejected(_))));
/// ```
pub struct StdBreaker<P = ConsecutiveFailures, C = MonotonicClock, const H: usize = 4> {
    shared: Arc<Shared<P, C, H>>,
}

impl<P, C, const H: usize> Clone for StdBreaker<P, C, H> {
    fn clone(&self) -> Self {
        StdBreaker {
            shared: self.shared.clone(),
        }
    }
}

/// Builds a [`StdBreaker`]: clock, name and listeners.
#[must_use]
pub struct Builder<P, C, const H: usize = 4> {
    config: Config,
    policy: P,
    clock: C,
    name: String,
    on_transition: Vec<TransitionListener>,
    on_rejection: Vec<RejectionListener>,
}

impl<P: TripPolicy, C: Clock, const H: usize> Builder<P, C, H> {
    /// Reads time from `clock` instead (a [`SharedManualClock`](crate::SharedManualClock)
    /// in tests, say).
    pub fn clock<C2: Clock>(self, clock: C2) -> Builder<P, C2, H> {
        Builder {
            config: self.config,
            policy: self.policy,
            clock,
            name: self.name,
            on_transition: self.on_transition,
            on_rejection: self.on_rejection,
        }
    }

    /// Keeps the last `H2` transitions instead of 4.
    pub fn history<const H2: usize>(self) -> Builder<P, C, H2> {
        Builder {
            config: self.config,
            policy: self.policy,
            clock: self.clock,
            name: self.name,
            on_transition: self.on_transition,
            on_rejection: self.on_rejection,
        }
    }

    /// Names the breaker (in logs, traces and metrics labels).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Calls `listener` with every transition, in order, outside any lock.
    /// It may run on another thread than the one whose call caused the
    /// transition, shortly after that call returned.
    pub fn on_transition(mut self, listener: impl Fn(&Transition) + Send + Sync + 'static) -> Self {
        self.on_transition.push(Box::new(listener));
        self
    }

    /// Calls `listener` with every rejection, on the rejected thread,
    /// outside any lock.
    pub fn on_rejection(mut self, listener: impl Fn(&Rejected) + Send + Sync + 'static) -> Self {
        self.on_rejection.push(Box::new(listener));
        self
    }

    /// The breaker.
    pub fn build(self) -> StdBreaker<P, C, H> {
        let admission_needs_time = P::NEEDS_TIME || self.config.slow_call_threshold().is_some();
        let machine = Breaker::new(self.config, self.policy, ());
        let shared = Shared {
            word: AtomicU64::new(0),
            open_until: AtomicU64::new(0),
            tally: Tally::new(),
            admission_needs_time,
            machine: Mutex::new(machine),
            clock: self.clock,
            observer: Observer::new(self.name),
            on_transition: self.on_transition,
            on_rejection: self.on_rejection,
            dispatch: Mutex::new(Dispatch {
                queue: VecDeque::with_capacity(16),
                draining: false,
            }),
            changes: AtomicU64::new(0),
            waiters: AtomicUsize::new(0),
            wake: Mutex::new(()),
            woken: Condvar::new(),
        };
        shared.publish(&lock(&shared.machine));
        StdBreaker {
            shared: Arc::new(shared),
        }
    }
}

impl<P: TripPolicy> StdBreaker<P> {
    /// A breaker on the [`MonotonicClock`].
    pub fn new(config: Config, policy: P) -> Self {
        Self::builder(config, policy).build()
    }

    /// A builder, on the [`MonotonicClock`] until told otherwise.
    pub fn builder(config: Config, policy: P) -> Builder<P, MonotonicClock> {
        Builder {
            config,
            policy,
            clock: MonotonicClock,
            name: String::from("breaker"),
            on_transition: Vec::new(),
            on_rejection: Vec::new(),
        }
    }
}

impl<P: TripPolicy, C: Clock, const H: usize> Shared<P, C, H> {
    /// Mirrors the machine into the atomics the lock-free paths read.
    /// Called with the machine locked, after every change.
    fn publish(&self, m: &Breaker<P, (), H>) {
        let flags = match m.phase() {
            breakerbox_core::Phase::Closed => {
                let noop =
                    m.policy().success_is_noop() && m.config().slow_call_threshold().is_none();
                ADMIT | if noop { SUCCESS_IS_NOOP } else { 0 }
            }
            breakerbox_core::Phase::Open { until } => {
                self.open_until.store(until.as_micros(), Ordering::Relaxed);
                OPEN
            }
            _ => 0,
        };
        self.word
            .store(m.generation() << FLAG_BITS | flags, Ordering::Release);
    }

    /// Runs `f` on the locked machine, then hands any transition to the
    /// listeners and wakes waiting calls, with no lock held.
    fn with_machine<R>(
        &self,
        f: impl FnOnce(&mut Breaker<P, (), H>, Instant) -> (R, Option<Transition>),
    ) -> R {
        self.with_machine_at(None, f)
    }

    /// As [`with_machine`](Self::with_machine), at `known` if the caller has
    /// already read the clock.
    fn with_machine_at<R>(
        &self,
        known: Option<Instant>,
        f: impl FnOnce(&mut Breaker<P, (), H>, Instant) -> (R, Option<Transition>),
    ) -> R {
        let (result, drain) = {
            let mut m = lock(&self.machine);
            let now = known.unwrap_or_else(|| self.clock.now());
            let (result, transition) = f(&mut m, now);
            self.publish(&m);
            // Queue while still holding the machine lock, so listeners see
            // transitions in the order the machine made them.
            let drain = match transition {
                Some(t) if self.observed() => {
                    let mut d = lock(&self.dispatch);
                    d.queue.push_back(t);
                    !std::mem::replace(&mut d.draining, true)
                }
                _ => false,
            };
            (result, drain)
        };
        if drain {
            self.drain();
        }
        self.wake_waiters();
        result
    }

    /// Whether anything wants to hear of transitions.
    fn observed(&self) -> bool {
        !self.on_transition.is_empty() || Observer::ENABLED
    }

    fn drain(&self) {
        /// Lets another thread drain if a listener panics.
        struct Reset<'a>(&'a Mutex<Dispatch>);
        impl Drop for Reset<'_> {
            fn drop(&mut self) {
                if std::thread::panicking() {
                    lock(self.0).draining = false;
                }
            }
        }
        let _reset = Reset(&self.dispatch);
        loop {
            let next = {
                let mut d = lock(&self.dispatch);
                let next = d.queue.pop_front();
                if next.is_none() {
                    d.draining = false;
                }
                next
            };
            let Some(t) = next else { return };
            self.observer.transition(&t);
            for listener in &self.on_transition {
                listener(&t);
            }
        }
    }

    #[inline]
    fn rejected(&self, r: Rejected) -> Rejected {
        for listener in &self.on_rejection {
            listener(&r);
        }
        r
    }

    fn wake_waiters(&self) {
        self.changes.fetch_add(1, Ordering::SeqCst);
        if self.waiters.load(Ordering::SeqCst) > 0 {
            let _held = lock(&self.wake);
            self.woken.notify_all();
        }
    }

    /// Generation and start of a call admitted by the published closed
    /// `word`. Writes nothing: the call is counted when it is reported.
    #[inline]
    fn closed_admission(&self, word: u64) -> (u64, Instant) {
        let started = if self.admission_needs_time {
            self.clock.now()
        } else {
            Instant::ZERO
        };
        (word >> FLAG_BITS, started)
    }

    /// Rejects without the lock if the published `word` is open and its
    /// deadline has not come. Otherwise the time, if it was read (so a
    /// rejection reads the clock at most once), for the lock to decide.
    #[inline]
    fn reject_before_deadline(&self, word: u64) -> Result<Option<Instant>, Rejected> {
        if word & OPEN == 0 {
            return Ok(None);
        }
        let now = self.clock.now();
        let until = Instant::from_micros(self.open_until.load(Ordering::Relaxed));
        if now < until {
            self.tally.add(Count::Rejection);
            return Err(self.rejected(Rejected {
                reason: RejectReason::Open,
                retry_after: Some(until.saturating_duration_since(now)),
            }));
        }
        Ok(Some(now))
    }

    /// A permit for a call admitted by the published closed `word`.
    #[inline]
    fn closed_permit(&self, word: u64) -> Permit {
        let (generation, started) = self.closed_admission(word);
        Permit::from_raw_parts(generation, started, State::Closed)
    }

    #[inline]
    fn record(&self, permit: Permit, outcome: Outcome) -> ReportStatus {
        // Only a permit the fast path minted: one admitted under the lock
        // has been counted as a call already.
        if outcome == Outcome::Success && permit.state() == State::Closed && !permit.is_counted() {
            let word = self.word.load(Ordering::Acquire);
            if word & SUCCESS_IS_NOOP != 0 && word >> FLAG_BITS == permit.generation() {
                self.tally.add(Count::Success);
                return ReportStatus::Recorded;
            }
        }
        self.record_locked(permit, outcome)
    }

    #[inline(never)]
    fn record_locked(&self, permit: Permit, outcome: Outcome) -> ReportStatus {
        self.with_machine(|m, now| {
            let report = m.record_at(permit, outcome, now);
            (report.status, report.transition)
        })
    }
}

impl<P: TripPolicy, C: Clock, const H: usize> StdBreaker<P, C, H> {
    /// Asks to make a call. The guard reports its outcome; dropped without
    /// one, it gives its slot back (or, during a panic, counts a failure).
    ///
    /// # Errors
    /// [`Rejected`] when the breaker says no.
    #[inline]
    pub fn try_acquire(&self) -> Result<Guard<'_, P, C, H>, Rejected> {
        let s = &*self.shared;
        let word = s.word.load(Ordering::Acquire);
        if word & ADMIT != 0 {
            return Ok(Guard::new(self, s.closed_permit(word)));
        }
        let known = s.reject_before_deadline(word)?;
        self.acquire_locked(known)
    }

    #[cold]
    fn acquire_locked(&self, known: Option<Instant>) -> Result<Guard<'_, P, C, H>, Rejected> {
        let s = &*self.shared;
        let result = s.with_machine_at(known, |m, now| {
            let admission = m.try_acquire_at(now);
            (admission.result, admission.transition)
        });
        match result {
            Ok(permit) => Ok(Guard::new(self, permit)),
            Err(rejected) => Err(s.rejected(rejected)),
        }
    }

    /// Runs `op` through the breaker: `Ok` is a success, `Err` a failure, a
    /// panic a failure (and the panic goes on).
    ///
    /// # Errors
    /// [`CallError::Rejected`] without running `op`, or [`CallError::Inner`].
    #[inline(always)]
    pub fn call<T, E>(&self, op: impl FnOnce() -> Result<T, E>) -> Result<T, CallError<E>> {
        self.call_classified(op, |result| match result {
            Ok(_) => Outcome::Success,
            Err(_) => Outcome::Failure,
        })
    }

    /// Runs `op` through the breaker with `classify` deciding what its
    /// result counts as.
    ///
    /// ```
    /// use breakerbox_std::{Config, ConsecutiveFailures, Outcome, State, StdBreaker};
    ///
    /// let breaker = StdBreaker::new(Config::DEFAULT, ConsecutiveFailures::new(1).unwrap());
    /// // A 404 means the service is up: count it as a success.
    /// let r = breaker.call_classified(|| Err::<(), u16>(404), |r| match r {
    ///     Err(status) if *status >= 500 => Outcome::Failure,
    ///     _ => Outcome::Success,
    /// });
    /// assert!(r.is_err());
    /// assert_eq!(breaker.state(), State::Closed);
    /// ```
    ///
    /// # Errors
    /// As [`call`](Self::call).
    #[inline(always)]
    pub fn call_classified<T, E>(
        &self,
        op: impl FnOnce() -> Result<T, E>,
        classify: impl FnOnce(&Result<T, E>) -> Outcome,
    ) -> Result<T, CallError<E>> {
        // A panic in `op` or `classify` records a failure (and unwinds on).
        let s = &*self.shared;
        let word = s.word.load(Ordering::Acquire);
        if word & ADMIT != 0 {
            // The closed path, in registers: a `Guard` handed through memory
            // costs more than the breaker. Permits are not `Clone`, so mint
            // the one this call reports (or its failure, if it panics).
            let (generation, started) = s.closed_admission(word);
            let permit = || Permit::from_raw_parts(generation, started, State::Closed);
            let on_panic = OnUnwind(|| {
                let _ = s.record(permit(), Outcome::Failure);
            });
            let result = op();
            let outcome = classify(&result);
            core::mem::forget(on_panic);
            s.record(permit(), outcome);
            return result.map_err(CallError::Inner);
        }
        let known = s
            .reject_before_deadline(word)
            .map_err(CallError::Rejected)?;
        self.call_locked(known, op, classify)
    }

    /// `call_classified` when the lock decides, out of line.
    #[inline(never)]
    fn call_locked<T, E>(
        &self,
        known: Option<Instant>,
        op: impl FnOnce() -> Result<T, E>,
        classify: impl FnOnce(&Result<T, E>) -> Outcome,
    ) -> Result<T, CallError<E>> {
        let guard = self.acquire_locked(known).map_err(CallError::Rejected)?;
        let result = op();
        guard.record(classify(&result));
        result.map_err(CallError::Inner)
    }

    /// Like [`call`](Self::call), but when the breaker rejects, waits up to
    /// `timeout` for the moment a call can be admitted (the open deadline, a
    /// probe slot freed, a release) instead of failing at once. It sleeps,
    /// never spins, and wakes as soon as the breaker changes.
    ///
    /// Waiting is in real time: use a real clock with it.
    ///
    /// # Errors
    /// The last rejection when `timeout` runs out, or [`CallError::Inner`].
    pub fn call_waiting<T, E>(
        &self,
        timeout: std::time::Duration,
        op: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, CallError<E>> {
        let guard = self.acquire_waiting(timeout).map_err(CallError::Rejected)?;
        let result = op();
        guard.record(match result {
            Ok(_) => Outcome::Success,
            Err(_) => Outcome::Failure,
        });
        result.map_err(CallError::Inner)
    }

    /// Asks to make a call, waiting up to `timeout` as
    /// [`call_waiting`](Self::call_waiting) does.
    ///
    /// # Errors
    /// The last rejection when `timeout` runs out.
    pub fn acquire_waiting(
        &self,
        timeout: std::time::Duration,
    ) -> Result<Guard<'_, P, C, H>, Rejected> {
        let s = &*self.shared;
        let deadline = std::time::Instant::now().checked_add(timeout);
        loop {
            let seen = s.changes.load(Ordering::SeqCst);
            let rejected = match self.try_acquire() {
                Ok(guard) => return Ok(guard),
                Err(rejected) => rejected,
            };
            let now = std::time::Instant::now();
            let left = match deadline {
                Some(d) if d <= now => return Err(rejected),
                Some(d) => d - now,
                None => timeout,
            };
            let wait = match rejected.retry_after {
                Some(retry) => left.min(retry.to_core()),
                None => left,
            };
            s.waiters.fetch_add(1, Ordering::SeqCst);
            {
                let held = lock(&s.wake);
                if s.changes.load(Ordering::SeqCst) == seen {
                    let _ = s.woken.wait_timeout(held, wait);
                }
            }
            s.waiters.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Rejects every call until [`release`](Self::release).
    pub fn force_open(&self) -> Option<Transition> {
        self.manual(|m, now| m.force_open_at(now))
    }

    /// Permits every call and records nothing until [`release`](Self::release).
    pub fn disable(&self) -> Option<Transition> {
        self.manual(|m, now| m.disable_at(now))
    }

    /// Permits and records every call, never trips, until [`release`](Self::release).
    pub fn metrics_only(&self) -> Option<Transition> {
        self.manual(|m, now| m.metrics_only_at(now))
    }

    /// Back to closed from a manual state.
    pub fn release(&self) -> Option<Transition> {
        self.manual(|m, now| m.release_at(now))
    }

    /// Back to closed from any state: empty policy, zeroed counts, a new
    /// generation.
    pub fn reset(&self) -> Transition {
        let s = &*self.shared;
        s.with_machine(|m, now| {
            let t = m.reset_at(now);
            s.tally.reset();
            (t, Some(t))
        })
    }

    fn manual(
        &self,
        f: impl FnOnce(&mut Breaker<P, (), H>, Instant) -> Option<Transition>,
    ) -> Option<Transition> {
        self.shared.with_machine(|m, now| {
            let t = f(m, now);
            (t, t)
        })
    }

    /// The current state (transitions happen lazily, in calls).
    pub fn state(&self) -> State {
        lock(&self.shared.machine).state()
    }

    /// A snapshot: the core's metrics with the lock-free paths' counts
    /// folded in.
    pub fn metrics(&self) -> Metrics {
        let s = &*self.shared;
        let m = lock(&s.machine);
        let mut metrics = m.metrics_at(s.clock.now());
        // Read under the lock, as `reset` moves the tally's baseline.
        let tallied = s.tally.read();
        let fast = Counts {
            calls: tallied.successes,
            successes: tallied.successes,
            rejected: tallied.rejected,
            ..Counts::default()
        };
        metrics.counts = metrics.counts.saturating_add(fast);
        metrics
    }

    /// The last `H` transitions, oldest first.
    pub fn history(&self) -> Vec<Transition> {
        lock(&self.shared.machine).history().copied().collect()
    }

    /// The breaker's name.
    pub fn name(&self) -> &str {
        self.shared.observer.name()
    }

    /// The configuration.
    pub fn config(&self) -> Config {
        *lock(&self.shared.machine).config()
    }

    /// The clock.
    pub fn clock(&self) -> &C {
        &self.shared.clock
    }

    /// Publishes state and counts through the `metrics` facade as gauges and
    /// absolute counters labelled with the breaker's name.
    #[cfg(feature = "metrics")]
    pub fn export_metrics(&self) {
        self.shared.observer.export(&self.metrics());
    }
}

impl<P, C, const H: usize> fmt::Debug for StdBreaker<P, C, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StdBreaker")
            .field("name", &self.shared.observer.name())
            .finish_non_exhaustive()
    }
}

/// Leave to make one call through a [`StdBreaker`]: report its outcome with
/// [`success`](Self::success), [`failure`](Self::failure),
/// [`ignore`](Self::ignore) or [`record`](Self::record).
///
/// Dropped without a report it gives its slot back (`Ignored`); dropped while
/// its thread panics it records a failure, so a panic can never wedge
/// half-open.
///
/// ```
/// use breakerbox_std::{Config, ConsecutiveFailures, StdBreaker};
///
/// let breaker = StdBreaker::new(Config::DEFAULT, ConsecutiveFailures::new(3).unwrap());
/// if let Ok(guard) = breaker.try_acquire() {
///     let healthy = true; // make the call here
///     if healthy { guard.success(); } else { guard.failure(); }
/// };
/// ```
#[must_use = "report the outcome, or the call counts as ignored"]
pub struct Guard<'a, P: TripPolicy, C: Clock, const H: usize> {
    breaker: &'a StdBreaker<P, C, H>,
    permit: Option<Permit>,
}

impl<'a, P: TripPolicy, C: Clock, const H: usize> Guard<'a, P, C, H> {
    #[inline]
    fn new(breaker: &'a StdBreaker<P, C, H>, permit: Permit) -> Self {
        Guard {
            breaker,
            permit: Some(permit),
        }
    }

    /// The permit inside.
    pub fn permit(&self) -> Option<&Permit> {
        self.permit.as_ref()
    }

    /// Reports `outcome`.
    #[inline]
    pub fn record(mut self, outcome: Outcome) -> ReportStatus {
        match self.permit.take() {
            Some(permit) => self.breaker.shared.record(permit, outcome),
            None => ReportStatus::Stale,
        }
    }

    /// Reports a success.
    #[inline]
    pub fn success(self) -> ReportStatus {
        self.record(Outcome::Success)
    }

    /// Reports a failure.
    #[inline]
    pub fn failure(self) -> ReportStatus {
        self.record(Outcome::Failure)
    }

    /// Reports an outcome that says nothing of the dependency's health.
    #[inline]
    pub fn ignore(self) -> ReportStatus {
        self.record(Outcome::Ignored)
    }
}

impl<P: TripPolicy, C: Clock, const H: usize> Drop for Guard<'_, P, C, H> {
    fn drop(&mut self) {
        if let Some(permit) = self.permit.take() {
            let outcome = if std::thread::panicking() {
                Outcome::Failure
            } else {
                Outcome::Ignored
            };
            let _ = self.breaker.shared.record(permit, outcome);
        }
    }
}

impl<P: TripPolicy, C: Clock, const H: usize> fmt::Debug for Guard<'_, P, C, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guard")
            .field("permit", &self.permit)
            .finish()
    }
}
