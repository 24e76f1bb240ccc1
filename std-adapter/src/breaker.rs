//! The thread-safe breaker: the core's [`SharedBreaker`] behind an `Arc`,
//! shared the std way ([`StdSharing`]): a mutex, per-thread counters,
//! listeners and waiting calls.

use std::collections::VecDeque;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::thread::{self, ThreadId};

use breakerbox_core::{
    CallError, Clock, Config, ConsecutiveFailures, Instant, Lock, Metrics, Outcome, Permit,
    Rejected, ReportStatus, SharedBreaker, Sharing, State, Transition, TripPolicy,
};

use crate::clock::MonotonicClock;
use crate::counters::ThreadCounters;
use crate::events::{RejectionEvent, TransitionEvent};
use crate::observe::Observer;
use crate::sync::{lock, Arc, AtomicU64, AtomicUsize, Condvar, Mutex, OnceLock, Ordering};

/// A transition listener.
pub type TransitionListener = Box<dyn Fn(&TransitionEvent<'_>) + Send + Sync>;
/// A rejection listener.
pub type RejectionListener = Box<dyn Fn(&RejectionEvent<'_>) + Send + Sync>;

/// Room for transitions waiting for the listeners, reserved once.
const QUEUE_ROOM: usize = 64;
/// Past this many waiting, a thread that made a transition waits for the
/// listeners to catch up: so the queue stays within its room (unless more
/// threads than that make transitions at the very same moment, when the
/// oldest is dropped, and counted, rather than the queue grown).
const QUEUE_BACKLOG: usize = 16;

/// The std mutex as the core's [`Lock`], carrying on past poisoning.
pub(crate) struct StdLock<T>(Mutex<T>);

impl<T> Lock<T> for StdLock<T> {
    fn new(value: T) -> Self {
        StdLock(Mutex::new(value))
    }

    fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> Option<R> {
        Some(f(&mut lock(&self.0)))
    }
}

/// Transitions waiting for their listeners, delivered in order by one
/// thread at a time, with no lock held while a listener runs.
struct Dispatch {
    queue: VecDeque<Told>,
    /// The thread delivering, if any.
    drainer: Option<ThreadId>,
    dropped: u64,
}

/// A transition waiting for its listeners, with its open deadline if it
/// entered the open state the breaker was in when it was queued.
struct Told {
    transition: Transition,
    open_until: Option<Instant>,
}

/// The queue and what threads held back by a backlog wait on.
struct Delivery {
    dispatch: Mutex<Dispatch>,
    caught_up: Condvar,
}

/// What waiting calls sleep on.
struct Waiting {
    /// Bumped whenever a refused call may now be admitted.
    changes: AtomicU64,
    waiters: AtomicUsize,
    wake: Mutex<()>,
    woken: Condvar,
}

/// The listeners of one breaker.
struct Listeners {
    on_transition: Box<[TransitionListener]>,
    on_rejection: Box<[RejectionListener]>,
}

// A breaker can be used again after a panic it caught, so a `StdBreaker`
// may cross `catch_unwind`: every listener runs inside `catch_unwind`, and
// the breaker never reads a listener's state, only calls it again. (What a
// listener that panicked keeps in its own captures is its own affair, as
// for any callback.)
impl std::panic::UnwindSafe for Listeners {}
impl std::panic::RefUnwindSafe for Listeners {}

/// How a [`StdBreaker`] shares its [`SharedBreaker`] between threads. Each
/// part is made when first needed, so a breaker nobody listens to, waits
/// on or counts on from many threads stays small.
pub(crate) struct StdSharing {
    observer: Observer,
    listeners: Option<Box<Listeners>>,
    /// Made at the first transition anything listens to, or the first wait.
    coordination: OnceLock<Box<Coordination>>,
}

/// What threads coordinate on beyond the breaker itself.
struct Coordination {
    delivery: Delivery,
    waiting: Waiting,
}

impl Sharing for StdSharing {
    type Lock<T> = StdLock<T>;
    type Counters = ThreadCounters;

    fn transitioned(&self, transition: &Transition, open_until: Option<Instant>) {
        if self.transition_listeners().is_empty() && !Observer::ENABLED {
            return;
        }
        let mut d = lock(&self.coordination().delivery.dispatch);
        if d.queue.capacity() == 0 {
            d.queue.reserve_exact(QUEUE_ROOM); // once, at the first transition
        }
        if d.queue.len() == d.queue.capacity() {
            d.queue.pop_front();
            d.dropped = d.dropped.saturating_add(1);
        }
        d.queue.push_back(Told {
            transition: *transition,
            open_until,
        });
    }

    fn changed(&self) {
        // Waiters first: nothing a listener does can keep them asleep.
        self.wake_waiters();
        self.drain();
    }

    /// Tells the rejection listeners, on the rejected thread; a panicking
    /// one is caught as a transition listener is.
    #[inline(always)]
    fn rejected(&self, rejection: &Rejected) {
        if let Some(listeners) = &self.listeners {
            // A copy, made only here: the hot path keeps its rejection in
            // registers.
            tell_rejected(listeners, self.observer.name(), *rejection);
        }
    }
}

#[inline(never)]
fn tell_rejected(listeners: &Listeners, breaker: &str, rejected: Rejected) {
    let event = RejectionEvent { breaker, rejected };
    for listener in listeners.on_rejection.iter() {
        let _ = catch_unwind(AssertUnwindSafe(|| listener(&event)));
    }
}

impl StdSharing {
    fn transition_listeners(&self) -> &[TransitionListener] {
        self.listeners.as_ref().map_or(&[], |l| &l.on_transition)
    }

    fn coordination(&self) -> &Coordination {
        self.coordination.get_or_init(|| {
            Box::new(Coordination {
                delivery: Delivery {
                    dispatch: Mutex::new(Dispatch {
                        queue: VecDeque::new(),
                        drainer: None,
                        dropped: 0,
                    }),
                    caught_up: Condvar::new(),
                },
                waiting: Waiting {
                    changes: AtomicU64::new(0),
                    waiters: AtomicUsize::new(0),
                    wake: Mutex::new(()),
                    woken: Condvar::new(),
                },
            })
        })
    }

    fn wake_waiters(&self) {
        let Some(Coordination { waiting: w, .. }) = self.coordination.get().map(|c| &**c) else {
            return; // nobody ever waited or listened
        };
        w.changes.fetch_add(1, Ordering::SeqCst);
        if w.waiters.load(Ordering::SeqCst) > 0 {
            let _held = lock(&w.wake);
            w.woken.notify_all();
        }
    }

    /// Delivers the queued transitions, unless another thread is at it;
    /// then, if the listeners are far behind, waits for them to catch up.
    /// A panicking listener is caught (the panic hook has reported it):
    /// the listeners after it still hear the transition, and delivery goes
    /// on.
    fn drain(&self) {
        let Some(Coordination { delivery, .. }) = self.coordination.get().map(|c| &**c) else {
            return;
        };
        let me = thread::current().id();
        {
            let mut d = lock(&delivery.dispatch);
            match d.drainer {
                // A listener's own call made this transition: the loop
                // below, further up this thread's stack, delivers it.
                Some(drainer) if drainer == me => return,
                Some(_) => {
                    while d.drainer.is_some() && d.queue.len() > QUEUE_BACKLOG {
                        d = delivery
                            .caught_up
                            .wait(d)
                            .unwrap_or_else(|p| p.into_inner());
                    }
                    return;
                }
                None if d.queue.is_empty() => return,
                None => d.drainer = Some(me),
            }
        }
        loop {
            let next = {
                let mut d = lock(&delivery.dispatch);
                let next = d.queue.pop_front();
                if next.is_none() {
                    d.drainer = None;
                }
                if next.is_none() || d.queue.len() == QUEUE_BACKLOG {
                    delivery.caught_up.notify_all();
                }
                next
            };
            let Some(told) = next else { return };
            let t = told.transition;
            let event = TransitionEvent {
                breaker: self.observer.name(),
                transition: t,
                open_for: told
                    .open_until
                    .map(|until| until.saturating_duration_since(t.at).to_core()),
            };
            let _ = catch_unwind(AssertUnwindSafe(|| self.observer.transition(&event)));
            for listener in self.transition_listeners() {
                let _ = catch_unwind(AssertUnwindSafe(|| listener(&event)));
            }
        }
    }
}

type Front<P, C, const H: usize> = SharedBreaker<P, C, H, StdSharing>;

/// A circuit breaker for blocking threads: `Send + Sync`, cheap to clone
/// (clones share one breaker), with the core's exact semantics. It is the
/// core's [`SharedBreaker`] with a std mutex, per-thread counters,
/// listeners and waiting calls.
///
/// - Admission in the closed state (and metrics-only, and disabled) takes
///   no lock: a few atomic loads (plus the clock, if slow calls are tracked
///   or the policy needs time).
/// - A success in the closed state that changes nothing (no failure run to
///   reset, a count window full of successes) takes no lock either and
///   writes only a counter of the calling thread's own; so does any report
///   while disabled. Every other report takes the mutex around the core
///   [`Breaker`](breakerbox_core::Breaker), briefly. No lock is ever held
///   while the protected operation or a listener runs.
/// - An open breaker rejects without the lock until its deadline, reading
///   the clock once and counting on the thread's own counter.
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
    shared: Arc<Front<P, C, H>>,
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
pub struct StdBreakerBuilder<P, C, const H: usize = 4> {
    config: Config,
    policy: P,
    clock: C,
    name: String,
    on_transition: Vec<TransitionListener>,
    on_rejection: Vec<RejectionListener>,
}

impl<P: TripPolicy, C: Clock, const H: usize> StdBreakerBuilder<P, C, H> {
    /// Reads time from `clock` instead (a [`SharedManualClock`](crate::SharedManualClock)
    /// in tests, say).
    pub fn clock<C2: Clock>(self, clock: C2) -> StdBreakerBuilder<P, C2, H> {
        StdBreakerBuilder {
            config: self.config,
            policy: self.policy,
            clock,
            name: self.name,
            on_transition: self.on_transition,
            on_rejection: self.on_rejection,
        }
    }

    /// Keeps the last `H2` transitions instead of 4: at least one, since
    /// the listeners hear the transitions the history keeps.
    ///
    /// ```compile_fail,E0080
    /// use breakerbox_std::{Config, ConsecutiveFailures, StdBreaker};
    ///
    /// let none = StdBreaker::builder(Config::DEFAULT, ConsecutiveFailures::new(1).unwrap())
    ///     .history::<0>()
    ///     .build();
    /// ```
    pub fn history<const H2: usize>(self) -> StdBreakerBuilder<P, C, H2> {
        StdBreakerBuilder {
            config: self.config,
            policy: self.policy,
            clock: self.clock,
            name: self.name,
            on_transition: self.on_transition,
            on_rejection: self.on_rejection,
        }
    }

    /// Boxes the policy as an [`AnyPolicy`](crate::AnyPolicy): breakers that
    /// trip by different rules then have one type, as a
    /// [`Registry`](crate::Registry) wants.
    ///
    /// ```
    /// use breakerbox_std::{AnyPolicy, Config, ConsecutiveFailures, CountWindow, Ratio, StdBreaker, Thresholds};
    ///
    /// let half = Thresholds::new().failure_rate(Ratio::percent(50));
    /// let breakers: [StdBreaker<AnyPolicy>; 2] = [
    ///     StdBreaker::builder(Config::DEFAULT, ConsecutiveFailures::new(5).unwrap()).boxed().build(),
    ///     StdBreaker::builder(Config::DEFAULT, CountWindow::<100>::new(half).unwrap()).boxed().build(),
    /// ];
    /// # let _ = breakers;
    /// ```
    pub fn boxed(self) -> StdBreakerBuilder<crate::AnyPolicy, C, H>
    where
        P: Send + 'static,
    {
        StdBreakerBuilder {
            config: self.config,
            policy: Box::new(self.policy),
            clock: self.clock,
            name: self.name,
            on_transition: self.on_transition,
            on_rejection: self.on_rejection,
        }
    }

    /// Names the breaker (in events, logs, traces and metrics labels).
    /// Unnamed, it is called `breaker-N`, N counting the breakers the
    /// process has made, so no two share a metrics series.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Calls `listener` with every transition, in order, outside any lock.
    /// It may run on another thread than the one whose call caused the
    /// transition, shortly after that call returned. A listener that
    /// panics is caught: the others still hear every transition. A slow
    /// listener holds back the callers that make transitions: once 16 wait
    /// to be heard, a thread that made another waits until they are
    /// delivered, so the queue never grows past the room it was given.
    pub fn on_transition(
        mut self,
        listener: impl Fn(&TransitionEvent<'_>) + Send + Sync + 'static,
    ) -> Self {
        self.on_transition.push(Box::new(listener));
        self
    }

    /// Calls `listener` with every rejection, on the rejected thread,
    /// outside any lock (a panic in it is caught).
    pub fn on_rejection(
        mut self,
        listener: impl Fn(&RejectionEvent<'_>) + Send + Sync + 'static,
    ) -> Self {
        self.on_rejection.push(Box::new(listener));
        self
    }

    /// The breaker.
    pub fn build(self) -> StdBreaker<P, C, H> {
        let listeners =
            (!self.on_transition.is_empty() || !self.on_rejection.is_empty()).then(|| {
                Box::new(Listeners {
                    on_transition: self.on_transition.into_boxed_slice(),
                    on_rejection: self.on_rejection.into_boxed_slice(),
                })
            });
        // Listeners, logs and metrics hear the transitions the history
        // keeps: a breaker that keeps none would tell them nothing.
        const { assert!(H > 0, "a StdBreaker keeps at least one transition") };
        let config = match self.config.jitter_seed() {
            Some(_) => self.config,
            None => self.config.with_jitter_seed(random_seed()),
        };
        let name = if self.name.is_empty() {
            unique_name()
        } else {
            self.name
        };
        let sharing = StdSharing {
            observer: Observer::new(name),
            listeners,
            coordination: OnceLock::new(),
        };
        StdBreaker {
            shared: Arc::new(SharedBreaker::with_sharing(
                config,
                self.policy,
                self.clock,
                sharing,
            )),
        }
    }
}

/// A seed for a breaker's jitter that no other breaker, in this process or
/// another, is likely to draw: std's process-random hash keys, which differ
/// per process and per call.
fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
}

/// `breaker-1`, `breaker-2`, …: the names of unnamed breakers.
fn unique_name() -> String {
    static UNNAMED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    use std::fmt::Write;
    let n = UNNAMED.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
    // Exactly as long as the name, so keeping it as a `Box<str>` moves
    // nothing.
    let digits = n.ilog10() as usize + 1;
    let mut name = String::with_capacity("breaker-".len() + digits);
    let _ = write!(name, "breaker-{n}");
    name
}

impl<P: TripPolicy> StdBreaker<P> {
    /// A breaker on the [`MonotonicClock`].
    pub fn new(config: Config, policy: P) -> Self {
        Self::builder(config, policy).build()
    }

    /// A builder, on the [`MonotonicClock`] until told otherwise.
    pub fn builder(config: Config, policy: P) -> StdBreakerBuilder<P, MonotonicClock> {
        StdBreakerBuilder {
            config,
            policy,
            clock: MonotonicClock,
            name: String::new(),
            on_transition: Vec::new(),
            on_rejection: Vec::new(),
        }
    }
}

impl<P: TripPolicy, C: Clock, const H: usize> StdBreaker<P, C, H> {
    fn sharing(&self) -> &StdSharing {
        self.shared.sharing()
    }

    /// Asks to make a call. The guard reports its outcome; dropped without
    /// one, it gives its slot back (or, during a panic, counts a failure).
    ///
    /// # Errors
    /// [`Rejected`] when the breaker says no.
    #[inline]
    pub fn try_acquire(&self) -> Result<Guard<'_, P, C, H>, Rejected> {
        let permit = self.shared.try_acquire().result?;
        Ok(Guard::new(self, permit))
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
        self.shared.call_classified(op, classify)
    }

    /// Like [`call`](Self::call), but when the breaker rejects, waits up to
    /// `timeout` for the moment a call can be admitted (the open deadline,
    /// the end of a probe lease, a probe slot freed, a release) instead of
    /// failing at once. It sleeps, never spins: it tries again only when
    /// the breaker changed or one of those moments came.
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
        self.call_waiting_classified(timeout, op, |result| match result {
            Ok(_) => Outcome::Success,
            Err(_) => Outcome::Failure,
        })
    }

    /// [`call_waiting`](Self::call_waiting) with `classify` deciding what
    /// the result counts as, as [`call_classified`](Self::call_classified)
    /// does.
    ///
    /// ```
    /// use std::time::Duration;
    /// use breakerbox_std::{Config, ConsecutiveFailures, Outcome, StdBreaker};
    ///
    /// let breaker = StdBreaker::new(Config::DEFAULT, ConsecutiveFailures::new(1).unwrap());
    /// let not_found = breaker.call_waiting_classified(
    ///     Duration::from_secs(1),
    ///     || Err::<(), u16>(404),
    ///     |r| if matches!(r, Err(404)) { Outcome::Success } else { Outcome::Failure },
    /// );
    /// assert!(not_found.is_err()); // the 404 itself
    /// assert_eq!(breaker.metrics().counts.successes, 1);
    /// ```
    ///
    /// # Errors
    /// As [`call_waiting`](Self::call_waiting).
    pub fn call_waiting_classified<T, E>(
        &self,
        timeout: std::time::Duration,
        op: impl FnOnce() -> Result<T, E>,
        classify: impl FnOnce(&Result<T, E>) -> Outcome,
    ) -> Result<T, CallError<E>> {
        let guard = self.acquire_waiting(timeout).map_err(CallError::Rejected)?;
        let result = op();
        guard.record(classify(&result));
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
        let w = &self.sharing().coordination().waiting;
        let deadline = std::time::Instant::now().checked_add(timeout);
        loop {
            let seen = w.changes.load(Ordering::SeqCst);
            let rejected = match self.try_acquire() {
                Ok(guard) => return Ok(guard),
                Err(rejected) => rejected,
            };
            let now = std::time::Instant::now();
            let mut wait = match deadline {
                Some(d) if d <= now => return Err(rejected),
                Some(d) => d - now,
                None => timeout,
            };
            // The moment the answer changes by itself: the open deadline,
            // or the end of the probe lease while half-open is full.
            let at = self.shared.clock().now();
            let until = match rejected.retry_after() {
                Some(retry) => Some(retry),
                None => self
                    .shared
                    .poll_at(at)
                    .map(|t| t.saturating_duration_since(at).to_core()),
            };
            if let Some(until) = until {
                wait = wait.min(until);
            }
            w.waiters.fetch_add(1, Ordering::SeqCst);
            {
                let held = lock(&w.wake);
                if w.changes.load(Ordering::SeqCst) == seen {
                    let _ = w.woken.wait_timeout(held, wait);
                }
            }
            w.waiters.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Rejects every call until [`release`](Self::release).
    pub fn force_open(&self) -> Option<Transition> {
        self.shared.force_open()
    }

    /// Permits every call and records nothing until [`release`](Self::release).
    pub fn disable(&self) -> Option<Transition> {
        self.shared.disable()
    }

    /// Enters [`State::MetricsOnly`]: permits and records every call, never
    /// trips, until [`release`](Self::release).
    pub fn measure_only(&self) -> Option<Transition> {
        self.shared.measure_only()
    }

    /// Back to closed from a manual state.
    pub fn release(&self) -> Option<Transition> {
        self.shared.release()
    }

    /// Back to closed from any state: empty policy, zeroed counts, a new
    /// generation. Always `Some` here: an `Option` like every other manual
    /// control, the same on all three breakers.
    pub fn reset(&self) -> Option<Transition> {
        self.shared.reset()
    }

    /// Gives the running breaker a new configuration: its state, counts,
    /// history and the calls under way all stay, by the rules of
    /// [`Breaker::reconfigure_at`](breakerbox_core::Breaker::reconfigure_at)
    /// (an opening under way is cut to the new longest open duration, never
    /// lengthened; probes out are judged by the new rules). A configuration
    /// without a jitter seed keeps the breaker's own. Waiting calls are
    /// woken.
    ///
    /// ```
    /// use std::time::Duration;
    /// use breakerbox_std::{Config, ConsecutiveFailures, StdBreaker};
    ///
    /// let breaker = StdBreaker::new(Config::DEFAULT, ConsecutiveFailures::new(5).unwrap());
    /// let _ = breaker.call(|| Err::<(), _>("refused"));
    /// let patient = Config::builder().open_duration(Duration::from_secs(30)).build().unwrap();
    /// breaker.reconfigure(patient);
    /// assert_eq!(breaker.config().backoff().initial(), Duration::from_secs(30));
    /// assert_eq!(breaker.metrics().counts.failures, 1, "counts kept");
    /// breaker.update_policy(|p| p.set_failure_threshold(2)).unwrap();
    /// let _ = breaker.call(|| Err::<(), _>("refused"));
    /// assert_eq!(breaker.state(), breakerbox_std::State::Open, "2 in a row now trips");
    /// ```
    pub fn reconfigure(&self, config: Config) {
        self.shared.reconfigure(config);
    }

    /// Changes the trip policy's thresholds in place (where its type
    /// allows, such as
    /// [`ConsecutiveFailures::set_failure_threshold`](breakerbox_core::ConsecutiveFailures::set_failure_threshold)),
    /// keeping its run or window; the next recorded outcome is judged by
    /// them.
    pub fn update_policy<R>(&self, f: impl FnOnce(&mut P) -> R) -> R {
        self.shared
            .update_policy(f)
            .expect("the std lock blocks rather than refuse")
    }

    /// The current state (transitions happen lazily, in calls).
    pub fn state(&self) -> State {
        self.shared.state()
    }

    /// When the breaker's answer will change by itself (see
    /// [`Breaker::poll_at`](breakerbox_core::Breaker::poll_at)), on its clock.
    pub fn poll_at(&self) -> Option<Instant> {
        self.shared.poll_at(self.shared.clock().now())
    }

    /// A snapshot: the core's metrics with the lock-free paths' counts
    /// folded in.
    pub fn metrics(&self) -> Metrics {
        self.shared.metrics()
    }

    /// The last `H` transitions, oldest first.
    pub fn history(&self) -> Vec<Transition> {
        self.shared
            .with_breaker(|m| m.history().copied().collect())
            .unwrap_or_default()
    }

    /// Transitions the listeners never heard: only if more than 48 threads
    /// made transitions at the same moment while a listener was behind
    /// (the queue's room is 64; the oldest is dropped rather than the
    /// queue grown).
    pub fn dropped_transitions(&self) -> u64 {
        self.sharing()
            .coordination
            .get()
            .map_or(0, |c| lock(&c.delivery.dispatch).dropped)
    }

    /// The breaker's name.
    pub fn name(&self) -> &str {
        self.sharing().observer.name()
    }

    /// The configuration.
    pub fn config(&self) -> Config {
        self.shared.config()
    }

    /// The clock.
    pub fn clock(&self) -> &C {
        self.shared.clock()
    }

    /// Publishes state and counts through the `metrics` facade as gauges and
    /// absolute counters labelled with the breaker's name.
    #[cfg(feature = "metrics")]
    pub fn export_metrics(&self) {
        self.sharing().observer.export(&self.metrics());
    }
}

/// The name, the metrics (state, generation, counts, rates, time in state)
/// and the configuration: it takes the breaker's lock for a moment, as
/// [`metrics`](StdBreaker::metrics) does.
impl<P: TripPolicy, C: Clock, const H: usize> fmt::Debug for StdBreaker<P, C, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StdBreaker")
            .field("name", &self.name())
            .field("metrics", &self.metrics())
            .field("config", &self.config())
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
pub struct Guard<'a, P: TripPolicy, C: Clock, const H: usize = 4> {
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
            Some(permit) => self.breaker.shared.record(permit, outcome).status,
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
