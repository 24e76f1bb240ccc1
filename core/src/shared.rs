//! The shared breaker: `&self` throughout, safe to use from interrupt
//! handlers and several cores.

use core::fmt;

use crate::breaker::{
    Admission, Breaker, CallError, Counts, Metrics, Outcome, Permit, Report, ReportStatus,
};
use crate::breaker::{Phase, RejectReason, Rejected, State, Transition};
use crate::config::Config;
use crate::policy::{ConsecutiveFailures, TripPolicy};
use crate::sync::{fence, increment, spin, take, AtomicU32, Lock, Ordering};
use crate::time::{Clock, Instant};

/// Closed: admit without the lock.
const ADMIT: u32 = 1;
/// Closed, and a success would change nothing: count it without the lock.
const SUCCESS_IS_NOOP: u32 = 2;
/// Open: the snapshot's deadline is valid; reject before it without the lock.
const OPEN: u32 = 4;
/// The lock-free counters are folded into the breaker's `u64`s past this.
const FOLD_AT: u32 = 1 << 30;

/// What the lock-free paths read: generation, flags and open deadline,
/// published under the lock and read with a sequence lock, so 64-bit values
/// need only 32-bit atomic loads (native even on a Cortex-M0).
struct Snapshot {
    seq: AtomicU32,
    generation: [AtomicU32; 2],
    flags: AtomicU32,
    until: [AtomicU32; 2],
}

#[derive(Clone, Copy)]
struct View {
    generation: u64,
    flags: u32,
    until: Instant,
}

fn split(value: u64) -> (u32, u32) {
    (value as u32, (value >> 32) as u32)
}

fn join(lo: &AtomicU32, hi: &AtomicU32) -> u64 {
    lo.load(Ordering::Relaxed) as u64 | (hi.load(Ordering::Relaxed) as u64) << 32
}

impl Snapshot {
    /// Only ever called with the breaker's lock held: one writer at a time.
    fn write(&self, generation: u64, flags: u32, until: Instant) {
        let seq = self.seq.load(Ordering::Relaxed);
        self.seq.store(seq.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        let (lo, hi) = split(generation);
        self.generation[0].store(lo, Ordering::Relaxed);
        self.generation[1].store(hi, Ordering::Relaxed);
        self.flags.store(flags, Ordering::Relaxed);
        let (lo, hi) = split(until.as_micros());
        self.until[0].store(lo, Ordering::Relaxed);
        self.until[1].store(hi, Ordering::Relaxed);
        self.seq.store(seq.wrapping_add(2), Ordering::Release);
    }

    /// A consistent view. On one core a reader can never see a write half
    /// done (the writer masks interrupts); across cores it retries while a
    /// write is under way.
    #[inline]
    fn read(&self) -> View {
        loop {
            let before = self.seq.load(Ordering::Acquire);
            if before & 1 == 0 {
                let view = View {
                    generation: join(&self.generation[0], &self.generation[1]),
                    flags: self.flags.load(Ordering::Relaxed),
                    until: Instant::from_micros(join(&self.until[0], &self.until[1])),
                };
                fence(Ordering::Acquire);
                if self.seq.load(Ordering::Relaxed) == before {
                    return view;
                }
            }
            spin();
        }
    }
}

/// A circuit breaker shared by reference (`&self`): between a main loop and
/// interrupt handlers, or between cores. The same state machine as
/// [`Breaker`], behind a critical section, with lock-free fast paths:
///
/// - **closed-state admission** reads a few atomic words and writes nothing:
///   no lock, no critical section, even on a Cortex-M0;
/// - a **success that changes nothing** (no failure run to reset) is counted
///   with one atomic add;
/// - an **open breaker rejects** before its deadline with one atomic add.
///
/// Everything else takes a short critical section (the `critical-section`
/// crate: your HAL or `cortex-m`'s `critical-section-single-core` provides
/// it) around the core [`Breaker`]. Only 32-bit atomic loads and stores are
/// needed, which every target has; on targets without compare-and-swap
/// (`thumbv6m`, `riscv32imc`) the two counters' adds take a critical section
/// of a few instructions instead. There is nothing to enable.
///
/// The one difference from [`Breaker`]: closed-state calls admitted on the
/// lock-free path are counted in [`Counts::calls`] when they are reported.
///
/// ```
/// use breakerbox_core::{Config, ConsecutiveFailures, Instant, Outcome, SharedBreaker, State};
///
/// static BREAKER: SharedBreaker = SharedBreaker::new(
///     Config::DEFAULT,
///     match ConsecutiveFailures::new(2) {
///         Ok(policy) => policy,
///         Err(e) => panic!("{}", e.as_str()),
///     },
///     (),
/// );
///
/// // From the main loop or an interrupt handler alike:
/// for _ in 0..2 {
///     let permit = BREAKER.try_acquire_at(Instant::ZERO).result.unwrap();
///     let _ = BREAKER.record_at(permit, Outcome::Failure, Instant::ZERO);
/// }
/// assert_eq!(BREAKER.state(), State::Open);
/// ```
pub struct SharedBreaker<P = ConsecutiveFailures, C = (), const H: usize = 4> {
    snapshot: Snapshot,
    fast_successes: AtomicU32,
    fast_rejections: AtomicU32,
    admission_needs_time: bool,
    machine: Lock<Breaker<P, (), H>>,
    clock: C,
}

macro_rules! new_shared_breaker {
    ($config:expr, $policy:expr, $clock:expr) => {
        SharedBreaker {
            snapshot: Snapshot {
                seq: AtomicU32::new(0),
                generation: [AtomicU32::new(0), AtomicU32::new(0)],
                // Closed at generation 0; the first success takes the lock
                // and publishes whether successes are free.
                flags: AtomicU32::new(ADMIT),
                until: [AtomicU32::new(0), AtomicU32::new(0)],
            },
            fast_successes: AtomicU32::new(0),
            fast_rejections: AtomicU32::new(0),
            admission_needs_time: P::NEEDS_TIME || $config.slow_call_threshold().is_some(),
            machine: Lock::new(Breaker::new($config, $policy, ())),
            clock: $clock,
        }
    };
}

impl<P: TripPolicy, C: Clock, const H: usize> SharedBreaker<P, C, H> {
    /// A closed breaker; `const`, so it can be a `static`.
    #[cfg(not(loom))]
    pub const fn new(config: Config, policy: P, clock: C) -> Self {
        new_shared_breaker!(config, policy, clock)
    }

    /// A closed breaker.
    #[cfg(loom)]
    pub fn new(config: Config, policy: P, clock: C) -> Self {
        new_shared_breaker!(config, policy, clock)
    }

    /// Runs `f` on the state machine under the lock and publishes the result
    /// to the lock-free paths. `None` only if `f`'s context re-entered the
    /// lock (a policy calling back into its own breaker).
    fn locked<R>(&self, f: impl FnOnce(&mut Breaker<P, (), H>) -> R) -> Option<R> {
        self.machine.with(|m| {
            let result = f(m);
            let (flags, until) = match m.phase() {
                Phase::Closed => {
                    let noop =
                        m.policy().success_is_noop() && m.config().slow_call_threshold().is_none();
                    (
                        ADMIT | if noop { SUCCESS_IS_NOOP } else { 0 },
                        Instant::ZERO,
                    )
                }
                Phase::Open { until } => (OPEN, until),
                _ => (0, Instant::ZERO),
            };
            self.snapshot.write(m.generation(), flags, until);
            result
        })
    }

    /// Counts one lock-free event, folding the counter into the breaker's
    /// `u64` counts long before it could wrap.
    fn count_fast(&self, counter: &AtomicU32) {
        if increment(counter) >= FOLD_AT {
            let _ = self.locked(|m| m.absorb_counts(self.take_fast_counts()));
        }
    }

    /// Takes the lock-free counts out (with the lock held).
    fn take_fast_counts(&self) -> Counts {
        let successes = take(&self.fast_successes) as u64;
        let rejected = take(&self.fast_rejections) as u64;
        Counts {
            calls: successes,
            successes,
            rejected,
            ..Counts::default()
        }
    }

    /// The lock-free rejection of an open `view` at `now`, if its deadline
    /// has not come.
    #[inline]
    fn reject_before_deadline(&self, view: &View, now: Instant) -> Option<Rejected> {
        if now >= view.until {
            return None;
        }
        self.count_fast(&self.fast_rejections);
        Some(Rejected {
            reason: RejectReason::Open,
            retry_after: Some(view.until.saturating_duration_since(now)),
        })
    }

    fn acquire(&self, mut now: impl FnMut() -> Instant) -> Admission {
        let view = self.snapshot.read();
        if view.flags & ADMIT != 0 {
            let started = if self.admission_needs_time {
                now()
            } else {
                Instant::ZERO
            };
            return Admission {
                result: Ok(Permit::from_raw_parts(
                    view.generation,
                    started,
                    State::Closed,
                )),
                transition: None,
            };
        }
        let mut known = None;
        if view.flags & OPEN != 0 {
            let t = now();
            known = Some(t);
            if let Some(rejected) = self.reject_before_deadline(&view, t) {
                return Admission {
                    result: Err(rejected),
                    transition: None,
                };
            }
        }
        let refused = Admission {
            result: Err(Rejected {
                reason: RejectReason::HalfOpenFull,
                retry_after: None,
            }),
            transition: None,
        };
        self.locked(|m| m.try_acquire_at(known.unwrap_or_else(&mut now)))
            .unwrap_or_else(|| {
                self.count_fast(&self.fast_rejections);
                refused
            })
    }

    /// Asks to make a call now.
    #[inline]
    pub fn try_acquire(&self) -> Admission {
        self.acquire(|| self.clock.now())
    }

    /// Asks to make a call at `now` (the pure form).
    pub fn try_acquire_at(&self, now: Instant) -> Admission {
        self.acquire(|| now)
    }

    #[inline]
    fn report(&self, permit: Permit, outcome: Outcome, now: impl FnOnce() -> Instant) -> Report {
        // Only a permit the fast path minted: one admitted under the lock
        // has been counted as a call already.
        if outcome == Outcome::Success && permit.state() == State::Closed && !permit.is_counted() {
            let view = self.snapshot.read();
            if view.flags & SUCCESS_IS_NOOP != 0 && view.generation == permit.generation() {
                self.count_fast(&self.fast_successes);
                return Report {
                    status: ReportStatus::Recorded,
                    transition: None,
                };
            }
        }
        self.report_locked(permit, outcome, now)
    }

    #[inline(never)]
    fn report_locked(
        &self,
        permit: Permit,
        outcome: Outcome,
        now: impl FnOnce() -> Instant,
    ) -> Report {
        self.locked(|m| m.record_at(permit, outcome, now()))
            .unwrap_or(Report {
                status: ReportStatus::Stale,
                transition: None,
            })
    }

    /// Reports how the call admitted by `permit` went.
    #[inline]
    pub fn record(&self, permit: Permit, outcome: Outcome) -> Report {
        self.report(permit, outcome, || self.clock.now())
    }

    /// Reports at `now` how the call admitted by `permit` went (pure form).
    pub fn record_at(&self, permit: Permit, outcome: Outcome, now: Instant) -> Report {
        self.report(permit, outcome, || now)
    }

    /// Runs `op` through the breaker: `Ok` is a success, `Err` a failure.
    ///
    /// # Errors
    /// [`CallError::Rejected`] without running `op`, or [`CallError::Inner`].
    #[inline]
    pub fn call<T, E>(&self, op: impl FnOnce() -> Result<T, E>) -> Result<T, CallError<E>> {
        self.call_classified(op, |result| match result {
            Ok(_) => Outcome::Success,
            Err(_) => Outcome::Failure,
        })
    }

    /// Runs `op` through the breaker, with `classify` deciding what its
    /// result counts as.
    ///
    /// # Errors
    /// As [`call`](Self::call).
    #[inline]
    pub fn call_classified<T, E>(
        &self,
        op: impl FnOnce() -> Result<T, E>,
        classify: impl FnOnce(&Result<T, E>) -> Outcome,
    ) -> Result<T, CallError<E>> {
        let view = self.snapshot.read();
        if view.flags & ADMIT != 0 {
            // The closed path inline, the permit in registers: moving
            // `Admission` and `Report` through memory costs more than the
            // breaker.
            let started = if self.admission_needs_time {
                self.clock.now()
            } else {
                Instant::ZERO
            };
            let result = op();
            let outcome = classify(&result);
            let permit = Permit::from_raw_parts(view.generation, started, State::Closed);
            let _ = self.report(permit, outcome, || self.clock.now());
            return result.map_err(CallError::Inner);
        }
        let mut known = None;
        if view.flags & OPEN != 0 {
            // Rejected before the deadline inline too, reading the clock once.
            let now = self.clock.now();
            if let Some(rejected) = self.reject_before_deadline(&view, now) {
                return Err(CallError::Rejected(rejected));
            }
            known = Some(now);
        }
        self.call_locked(known, op, classify)
    }

    /// `call_classified` in the other states, out of line, at `known` if
    /// the clock has been read.
    #[inline(never)]
    fn call_locked<T, E>(
        &self,
        known: Option<Instant>,
        op: impl FnOnce() -> Result<T, E>,
        classify: impl FnOnce(&Result<T, E>) -> Outcome,
    ) -> Result<T, CallError<E>> {
        let admission = self.acquire(|| known.unwrap_or_else(|| self.clock.now()));
        let permit = admission.result.map_err(CallError::Rejected)?;
        let result = op();
        let _ = self.record(permit, classify(&result));
        result.map_err(CallError::Inner)
    }

    fn manual(
        &self,
        f: impl FnOnce(&mut Breaker<P, (), H>, Instant) -> Option<Transition>,
    ) -> Option<Transition> {
        self.locked(|m| f(m, self.clock.now())).flatten()
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
    pub fn reset(&self) -> Option<Transition> {
        self.manual(|m, now| {
            let _ = self.take_fast_counts();
            Some(m.reset_at(now))
        })
    }

    /// Runs `f` on the state machine under the lock: for the `*_at` forms of
    /// the manual controls, or anything else [`Breaker`] offers.
    /// `None` if called re-entrantly from inside the lock.
    pub fn with_breaker<R>(&self, f: impl FnOnce(&mut Breaker<P, (), H>) -> R) -> Option<R> {
        self.locked(|m| {
            m.absorb_counts(self.take_fast_counts());
            f(m)
        })
    }

    /// The current state (`Closed` if asked re-entrantly from inside the
    /// breaker's own lock, by a policy calling back into it).
    pub fn state(&self) -> State {
        self.locked(|m| m.state()).unwrap_or(State::Closed)
    }

    /// The current generation (lock-free).
    pub fn generation(&self) -> u64 {
        self.snapshot.read().generation
    }

    /// A snapshot of everything, reading the clock once.
    pub fn metrics(&self) -> Metrics {
        self.metrics_at(self.clock.now())
    }

    /// A snapshot of everything at `now`.
    pub fn metrics_at(&self, now: Instant) -> Metrics {
        self.with_breaker(|m| m.metrics_at(now))
            .unwrap_or_else(|| metrics_unavailable(now))
    }

    /// The latest transition, if any.
    pub fn last_transition(&self) -> Option<Transition> {
        self.locked(|m| m.last_transition().copied()).flatten()
    }

    /// The configuration.
    pub fn config(&self) -> Config {
        self.locked(|m| *m.config()).unwrap_or_default()
    }

    /// The clock.
    pub fn clock(&self) -> &C {
        &self.clock
    }
}

/// What `metrics` says if asked from inside its own lock (a policy calling
/// back into its breaker): nothing known, rather than a panic.
fn metrics_unavailable(now: Instant) -> Metrics {
    Metrics {
        state: State::Closed,
        generation: 0,
        counts: Counts::default(),
        failure_rate: None,
        slow_rate: None,
        time_in_state: crate::time::Duration::ZERO,
        next_probe_at: Some(now),
        probes_in_flight: 0,
    }
}

impl<P, C, const H: usize> fmt::Debug for SharedBreaker<P, C, H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let view = self.snapshot.read();
        f.debug_struct("SharedBreaker")
            .field("generation", &view.generation)
            .field("flags", &view.flags)
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "defmt")]
impl<P, C, const H: usize> defmt::Format for SharedBreaker<P, C, H> {
    fn format(&self, f: defmt::Formatter) {
        let view = self.snapshot.read();
        defmt::write!(
            f,
            "SharedBreaker {{ generation: {}, flags: {} }}",
            view.generation,
            view.flags
        )
    }
}

#[cfg(all(test, not(loom)))]
mod tests;
