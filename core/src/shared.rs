//! The shared breaker: `&self` throughout, one implementation for every
//! home. It is generic over how it shares itself ([`Sharing`]: its lock,
//! its lock-free counters and what it tells of changes), the way `lock_api`
//! keeps a lock's logic apart from the raw lock: the core's
//! [`CriticalSection`] makes it safe from interrupt handlers; the std
//! adapter gives it a mutex, per-thread counters, listeners and waiting.

use core::fmt;

use crate::breaker::{epoch_of, Counts, Phase, RejectReason, Rejected, State, Transition};
use crate::breaker::{
    Admission, Breaker, CallError, Metrics, Outcome, Permit, Report, ReportStatus,
};
use crate::config::{Config, Fixed, FixedConfig, Settings};
use crate::policy::{ConsecutiveFailures, TripPolicy};
use crate::sync::{fence, spin, update, AtomicSeq, AtomicU32, Ordering, Seq, Word64};
use crate::time::{Clock, Duration, Instant, NoClock};

/// A lock around a value, as a [`SharedBreaker`] needs one: exclusive
/// access for the length of a closure.
///
/// ```
/// use breakerbox_core::{CriticalSectionLock, Lock};
///
/// let lock = CriticalSectionLock::new(1);
/// assert_eq!(lock.with(|n| { *n += 1; *n }), Some(2));
/// ```
pub trait Lock<T> {
    /// A lock holding `value`.
    fn new(value: T) -> Self
    where
        Self: Sized;

    /// Runs `f` with the value locked. `None`, without running `f`, if the
    /// lock cannot be had without a deadlock (this same context holds it:
    /// a policy calling back into its own breaker); never a panic.
    fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> Option<R>;
}

/// The core's lock: a critical section (the `critical-section` crate: on a
/// single core, interrupts masked for a few hundred cycles), safe to take
/// from interrupt handlers. Re-entering it from the same context gives
/// `None`, not a panic.
pub struct CriticalSectionLock<T> {
    #[cfg(not(loom))]
    inner: critical_section::Mutex<core::cell::RefCell<T>>,
    #[cfg(loom)]
    inner: loom::sync::Mutex<T>,
}

impl<T> CriticalSectionLock<T> {
    /// A lock holding `value`; `const`, so it can be in a `static`.
    #[cfg(not(loom))]
    pub const fn new(value: T) -> Self {
        CriticalSectionLock {
            inner: critical_section::Mutex::new(core::cell::RefCell::new(value)),
        }
    }

    /// A lock holding `value`.
    #[cfg(loom)]
    pub fn new(value: T) -> Self {
        CriticalSectionLock {
            inner: loom::sync::Mutex::new(value),
        }
    }
}

impl<T> Lock<T> for CriticalSectionLock<T> {
    fn new(value: T) -> Self {
        CriticalSectionLock::new(value)
    }

    #[cfg(not(loom))]
    fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> Option<R> {
        critical_section::with(|cs| {
            let mut value = self.inner.borrow(cs).try_borrow_mut().ok()?;
            Some(f(&mut value))
        })
    }

    #[cfg(loom)]
    fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> Option<R> {
        let mut value = self.inner.lock().ok()?;
        Some(f(&mut value))
    }
}

/// What a [`SharedBreaker`]'s lock-free paths count.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum LockFreeEvent {
    /// A success that changed nothing but the counts: one call, one success.
    Success,
    /// A rejection of an open breaker before its deadline.
    Rejection,
}

/// Lock-free counts read back from [`LockFreeCounters`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct LockFreeCounts {
    /// Successes counted lock-free (each also one call).
    pub successes: u64,
    /// Rejections counted lock-free.
    pub rejected: u64,
}

/// Where a [`SharedBreaker`] counts the events its lock-free paths handle.
///
/// Every count carries an *epoch*: the low 24 bits of the number of times
/// the breaker was reset. A reset zeroes the counts by moving to the next
/// epoch; a count made with an older epoch (a call that raced the reset)
/// must never be read back under a newer one. That makes "counted, then
/// zeroed" and "counted after the reset" one atomic question: a lock-free
/// count cannot leak into the counts of a later reset.
pub trait LockFreeCounters {
    /// No counts, at epoch 0.
    fn new() -> Self
    where
        Self: Sized;

    /// Counts `event` under `epoch`. `false`, counting nothing, if it
    /// cannot: the counter is full, or holds another epoch. The
    /// breaker then takes its lock, calls [`take`](Self::take) and asks
    /// once more, and failing that counts the event under the lock.
    fn add(&self, event: LockFreeEvent, epoch: u32) -> bool;

    /// Everything counted under `epoch` (called with the breaker's lock
    /// held; `epoch` is then the current one).
    fn read(&self, epoch: u32) -> LockFreeCounts;

    /// Moves everything counted under `epoch` out, leaving zero (called
    /// with the lock held, after `add` said `false`). Counters that are
    /// never full may return nothing and keep their counts.
    fn take(&self, epoch: u32) -> LockFreeCounts;
}

/// How a [`SharedBreaker`] shares itself: the lock around its state
/// machine, its lock-free counters, and what it tells its owner of changes.
/// [`CriticalSection`] is the core's; the std adapter has its own.
pub trait Sharing {
    /// The lock around the state machine.
    type Lock<T>: Lock<T>;
    /// The lock-free paths' counters.
    type Counters: LockFreeCounters;

    /// Called with the lock held, once per transition, in the order the
    /// breaker made them: keep it short (queue the transition, say). It is
    /// told the transitions the breaker's history keeps, so a breaker with
    /// `H = 0` tells it none. `open_until` is the open deadline when
    /// `transition` entered the open state the breaker is still in (for a
    /// log to say when it probes again), `None` otherwise.
    fn transitioned(&self, transition: &Transition, open_until: Option<Instant>) {
        let _ = (transition, open_until);
    }

    /// Called after the lock is released, when a transition happened or a
    /// probe slot was freed: a call that was refused may now be admitted.
    fn changed(&self) {}

    /// Called with every rejection, on the rejected caller's context, with
    /// no lock held.
    fn rejected(&self, rejection: &Rejected) {
        let _ = rejection;
    }
}

/// The core's [`Sharing`]: a critical section around the state machine and
/// two atomic counters; usable from interrupt handlers and across cores.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct CriticalSection;

impl Sharing for CriticalSection {
    type Lock<T> = CriticalSectionLock<T>;
    type Counters = AtomicCounters;
}

/// Two 32-bit atomic counters, each an 8-bit epoch tag and a 24-bit count:
/// safe from any context, with only 32-bit atomics (an add is a
/// compare-and-swap loop: `portable-atomic`'s, whose fallback you choose
/// where the target has no compare-and-swap). Full every 16 million events, when
/// the breaker moves them into its `u64` counts under the lock.
pub struct AtomicCounters {
    successes: AtomicU32,
    rejected: AtomicU32,
}

const TAG_SHIFT: u32 = 24;
const COUNT_MASK: u32 = (1 << TAG_SHIFT) - 1;

impl AtomicCounters {
    /// No counts; `const`, for a `static` breaker.
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        AtomicCounters {
            successes: AtomicU32::new(0),
            rejected: AtomicU32::new(0),
        }
    }

    /// No counts.
    #[cfg(loom)]
    pub fn new() -> Self {
        AtomicCounters {
            successes: AtomicU32::new(0),
            rejected: AtomicU32::new(0),
        }
    }

    fn counter(&self, event: LockFreeEvent) -> &AtomicU32 {
        match event {
            LockFreeEvent::Success => &self.successes,
            LockFreeEvent::Rejection => &self.rejected,
        }
    }
}

impl Default for AtomicCounters {
    fn default() -> Self {
        AtomicCounters::new()
    }
}

/// The count a tagged word holds for `epoch`: zero if it holds another.
fn count_for(word: u32, epoch: u32) -> u64 {
    if word >> TAG_SHIFT == epoch & 0xff {
        (word & COUNT_MASK) as u64
    } else {
        0
    }
}

impl LockFreeCounters for AtomicCounters {
    fn new() -> Self {
        AtomicCounters::new()
    }

    fn add(&self, event: LockFreeEvent, epoch: u32) -> bool {
        // A reset moves the counters to its new epoch (`take`) before it
        // publishes that epoch, so a word tagged otherwise belongs to an
        // admission from before a reset: not counted here.
        let tag = epoch & 0xff;
        let mut counted = false;
        let _ = update(self.counter(event), |word| {
            counted = word >> TAG_SHIFT == tag && word & COUNT_MASK != COUNT_MASK;
            counted.then_some(word + 1)
        });
        counted
    }

    fn read(&self, epoch: u32) -> LockFreeCounts {
        LockFreeCounts {
            successes: count_for(self.successes.load(Ordering::Relaxed), epoch),
            rejected: count_for(self.rejected.load(Ordering::Relaxed), epoch),
        }
    }

    fn take(&self, epoch: u32) -> LockFreeCounts {
        let empty = (epoch & 0xff) << TAG_SHIFT;
        LockFreeCounts {
            successes: count_for(update(&self.successes, |_| Some(empty)), epoch),
            rejected: count_for(update(&self.rejected, |_| Some(empty)), epoch),
        }
    }
}

// The published flags word: state bits below, the reset epoch above.
/// Admit without the lock (closed, metrics-only or disabled).
const ADMIT: u32 = 1;
/// A success would change nothing but the counts: count it without the lock.
const SUCCESS_IS_NOOP: u32 = 2;
/// Open: the snapshot's deadline is valid; reject before it without the lock.
const OPEN: u32 = 4;
/// Disabled: every report of this generation changes nothing at all.
const REPORTS_ARE_NOOP: u32 = 8;
/// The admitting state, in two bits.
const STATE_SHIFT: u32 = 4;
const METRICS_ONLY: u32 = 1 << STATE_SHIFT;
const DISABLED: u32 = 2 << STATE_SHIFT;
const STATE_MASK: u32 = 3 << STATE_SHIFT;
/// A lock-free admission reads the clock (slow calls or a timed policy).
const NEEDS_TIME: u32 = 1 << 6;
const EPOCH_SHIFT: u32 = 8;

/// The lock-free admitting state the flags name.
#[inline(always)]
fn admitting_state(flags: u32) -> State {
    // A table, not a match: one load on the hot path.
    const STATES: [State; 4] = [
        State::Closed,
        State::MetricsOnly,
        State::Disabled,
        State::Closed,
    ];
    STATES[((flags & STATE_MASK) >> STATE_SHIFT) as usize]
}

/// What the lock-free paths read: generation, flags (with the epoch) and
/// open deadline, published under the lock and read with a sequence lock,
/// so 64-bit values need only 32-bit atomic loads (native even on a
/// Cortex-M0). A call's report checks the sequence number it was admitted
/// under: if nothing was published since, its view still holds.
struct Snapshot {
    seq: AtomicSeq,
    generation: Word64,
    flags: AtomicU32,
    until: Word64,
}

#[derive(Clone, Copy)]
struct View {
    generation: u64,
    flags: u32,
    until: Instant,
    /// The sequence number the view was read at (even). Read back only
    /// where it is 64 bits (see [`Snapshot::unchanged_since`]).
    #[cfg_attr(not(any(loom, target_has_atomic = "64")), allow(dead_code))]
    seq: Seq,
}

impl View {
    #[inline(always)]
    fn epoch(&self) -> u32 {
        self.flags >> EPOCH_SHIFT
    }
}

/// Reads of the snapshot a reader tries before it asks under the lock.
const READ_TRIES: u32 = 64;

macro_rules! new_snapshot {
    ($needs_time:expr) => {
        Snapshot {
            seq: AtomicSeq::new(0),
            generation: Word64::new(),
            // Closed at generation 0, epoch 0; the first success takes the
            // lock and publishes whether successes are free.
            flags: AtomicU32::new(if $needs_time {
                ADMIT | NEEDS_TIME
            } else {
                ADMIT
            }),
            until: Word64::new(),
        }
    };
}

impl Snapshot {
    /// Only ever called with the breaker's lock held: one writer at a time.
    fn write(&self, generation: u64, flags: u32, until: Instant) {
        let seq: Seq = self.seq.load(Ordering::Relaxed);
        self.seq.store(seq.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        self.generation.store(generation);
        self.flags.store(flags, Ordering::Relaxed);
        self.until.store(until.as_micros());
        self.seq.store(seq.wrapping_add(2), Ordering::Release);
    }

    /// One read of everything; `None` if it overlapped a write.
    #[inline(always)]
    fn read_once(&self) -> Option<View> {
        self.read_once_with(|s| Instant::from_micros(s.until.load()))
    }

    /// One read, with the deadline as `until` reads it (the report path
    /// skips it).
    #[inline(always)]
    fn read_once_with(&self, until: impl FnOnce(&Self) -> Instant) -> Option<View> {
        let before = self.seq.load(Ordering::Acquire);
        let view = View {
            generation: self.generation.load(),
            flags: self.flags.load(Ordering::Relaxed),
            until: until(self),
            seq: before,
        };
        fence(Ordering::Acquire);
        (before & 1 == 0 && self.seq.load(Ordering::Relaxed) == before).then_some(view)
    }

    /// Generation and flags, for a report (whose fast path is for calls
    /// admitted by a closed, metrics-only or disabled breaker, which has no
    /// deadline): `None` if the read overlapped a write.
    #[inline(always)]
    fn read_for_report(&self) -> Option<View> {
        self.read_once_with(|_| Instant::ZERO)
    }

    /// A consistent view, or `None` after [`READ_TRIES`] reads that each
    /// overlapped a write (its writer was preempted mid-write): the caller
    /// then asks under the lock, which waits for the writer rather than
    /// spin. On one core a reader never sees a write half done (the writer
    /// masks interrupts).
    #[inline(always)]
    fn try_read(&self) -> Option<View> {
        match self.read_once() {
            Some(view) => Some(view),
            None => self.read_retrying(),
        }
    }

    #[cold]
    #[inline(never)]
    fn read_retrying(&self) -> Option<View> {
        (1..READ_TRIES).find_map(|_| {
            spin();
            self.read_once()
        })
    }

    /// [`try_read`](Self::try_read), or a view that sends every fast path
    /// to the lock.
    #[inline(always)]
    fn read(&self) -> View {
        self.try_read().unwrap_or(View {
            generation: 0,
            flags: 0,
            until: Instant::ZERO,
            seq: 1,
        })
    }

    /// Whether nothing has been published since `view` was read (so it
    /// still holds). Where the sequence number is 64 bits, one load: it
    /// cannot wrap. A 32-bit one could, in 2^31 writes during one call, so
    /// there the generation and flags are read again and compared.
    #[inline(always)]
    fn unchanged_since(&self, view: &View) -> bool {
        #[cfg(any(loom, target_has_atomic = "64"))]
        {
            self.seq.load(Ordering::Acquire) == view.seq
        }
        #[cfg(not(any(loom, target_has_atomic = "64")))]
        {
            self.read_for_report()
                .is_some_and(|now| now.generation == view.generation && now.flags == view.flags)
        }
    }
}

/// A circuit breaker shared by reference (`&self`): between a main loop and
/// interrupt handlers, between cores, or (through the std adapter's
/// `StdBreaker`) between threads. The same state machine as [`Breaker`],
/// behind a lock, with lock-free fast paths:
///
/// - **admission** while closed, metrics-only or disabled reads a few
///   atomic words and writes nothing: no lock, no critical section, even on
///   a Cortex-M0;
/// - a **success that changes nothing** but the counts (no failure run to
///   reset), and any report while disabled, take no lock;
/// - an **open breaker rejects** before its deadline without the lock.
///
/// Everything else takes the lock around the core [`Breaker`], briefly. `S`
/// says how ([`Sharing`]); the default, [`CriticalSection`], takes a
/// critical section from the `critical-section` crate (your HAL or
/// `cortex-m`'s `critical-section-single-core` provides it). Admission needs
/// only 32-bit atomic loads, which every target has; the lock-free counts
/// need compare-and-swap, which `portable-atomic` provides: on targets
/// without it, through the fallback you pick (this crate's
/// `portable-atomic-critical-section` feature, or
/// `--cfg portable_atomic_unsafe_assume_single_core`).
///
/// A call through [`call`](Self::call) whose operation panics is recorded
/// as a failure before the panic goes on.
///
/// **Contexts the critical section does not mask** (an NMI or HardFault
/// handler, or every interrupt above a BASEPRI-style critical section's
/// priority) may call every method: none waits without bound. A read of the
/// snapshot that keeps overlapping a write gives up after a few tries and
/// asks under the lock; if the code the handler interrupted holds the lock,
/// the handler's acquire is refused with [`RejectReason::Busy`], its report
/// is [`ReportStatus::Stale`] (nothing counted; a probe's slot comes back
/// when its lease ends), and the getters answer as they document for a
/// call from inside the lock. One limit: on a target without
/// compare-and-swap, portable-atomic's fallbacks mask interrupts, which an
/// NMI ignores, so a count an NMI makes while it interrupts another count
/// may be lost (a count, never a state).
///
/// The one difference from [`Breaker`]: closed-state calls admitted on the
/// lock-free path are counted in [`Counts::calls`] when they are reported
/// (stale reports too, unless a reset zeroed the counts since the call was
/// admitted). `docs/semantics.md` in the repository has the whole contract.
///
/// ```
/// use breakerbox_core::{valid, Config, ConsecutiveFailures, Instant, NoClock, Outcome, SharedBreaker, State};
///
/// static BREAKER: SharedBreaker = SharedBreaker::new(
///     Config::DEFAULT,
///     valid!(ConsecutiveFailures::new(2)),
///     NoClock,
/// );
///
/// // From the main loop or an interrupt handler alike:
/// for _ in 0..2 {
///     let permit = BREAKER.try_acquire_at(Instant::ZERO).result.unwrap();
///     let _ = BREAKER.record_at(permit, Outcome::Failure, Instant::ZERO);
/// }
/// assert_eq!(BREAKER.state(), State::Open);
/// ```
pub struct SharedBreaker<
    P = ConsecutiveFailures,
    C = NoClock,
    const H: usize = 4,
    S: Sharing = CriticalSection,
    Cfg = Config,
> {
    snapshot: Snapshot,
    counters: S::Counters,
    /// No lock-free rejection waits longer than this: the configuration's
    /// longest open duration, in µs. Outside the snapshot, as only a
    /// reconfiguration changes it: a read that meets that change sees one
    /// of the two bounds (or, on a 32-bit target, a mix of their halves,
    /// for that one call), and the lock decides what the bound turns away.
    longest_open: Word64,
    machine: S::Lock<Breaker<P, NoClock, H, Cfg>>,
    clock: C,
    sharing: S,
}

impl<P: TripPolicy, C, const H: usize> SharedBreaker<P, C, H, CriticalSection> {
    /// A closed breaker; `const`, so it can be a `static`.
    #[cfg(not(loom))]
    pub const fn new(config: Config, policy: P, clock: C) -> Self {
        SharedBreaker::around(
            &config,
            Breaker::with_history(config, policy, NoClock),
            clock,
        )
    }

    /// A closed breaker.
    #[cfg(loom)]
    pub fn new(config: Config, policy: P, clock: C) -> Self {
        Self::with_sharing(config, policy, clock, CriticalSection)
    }
}

impl<P: TripPolicy, C, const H: usize, K: FixedConfig>
    SharedBreaker<P, C, H, CriticalSection, Fixed<K>>
{
    /// A closed breaker whose configuration is `K::CONFIG`, fixed at compile
    /// time, as [`Breaker::fixed`] makes one; `const`, so it can be a
    /// `static`.
    ///
    /// ```
    /// use breakerbox_core::{valid, Config, ConsecutiveFailures, CriticalSection, Fixed, FixedConfig, NoClock, SharedBreaker, State};
    ///
    /// struct Sensor;
    /// impl FixedConfig for Sensor {
    ///     const CONFIG: Config = Config::DEFAULT;
    /// }
    /// static BREAKER: SharedBreaker<ConsecutiveFailures, NoClock, 0, CriticalSection, Fixed<Sensor>> =
    ///     SharedBreaker::fixed(
    ///         valid!(ConsecutiveFailures::new(5)),
    ///         NoClock,
    ///     );
    /// assert_eq!(BREAKER.state(), State::Closed);
    /// ```
    #[cfg(not(loom))]
    pub const fn fixed(policy: P, clock: C) -> Self {
        SharedBreaker::around(&K::CONFIG, Breaker::fixed(policy, NoClock), clock)
    }
}

impl<P: TripPolicy, C, const H: usize, Cfg> SharedBreaker<P, C, H, CriticalSection, Cfg> {
    /// The shared front around `machine`, closed, whose configuration is
    /// `config`: what both `const` constructors make.
    #[cfg(not(loom))]
    const fn around(config: &Config, machine: Breaker<P, NoClock, H, Cfg>, clock: C) -> Self {
        SharedBreaker {
            // A `const fn` cannot ask the policy whether it needs the time,
            // so admissions read the clock until the first report publishes
            // the answer (always correct, at most a clock read too many).
            snapshot: new_snapshot!(true),
            counters: AtomicCounters::new(),
            longest_open: Word64::holding(config.schedule.max().as_micros()),
            machine: CriticalSectionLock::new(machine),
            clock,
            sharing: CriticalSection,
        }
    }
}

/// Records a failure if dropped: armed around an operation and forgotten
/// after it, so it acts only if the operation panics.
struct FailOnUnwind<'a, P: TripPolicy, C: Clock, const H: usize, S: Sharing, Cfg: Settings> {
    breaker: &'a SharedBreaker<P, C, H, S, Cfg>,
    held: Held,
}

impl<P: TripPolicy, C: Clock, const H: usize, S: Sharing, Cfg: Settings> Drop
    for FailOnUnwind<'_, P, C, H, S, Cfg>
{
    #[cold]
    fn drop(&mut self) {
        let _ = self.breaker.record(self.held.permit(), Outcome::Failure);
    }
}

/// A call admitted lock-free, as the inline call path holds it: the view
/// that admitted it, in registers. A [`Permit`] is made only if the report
/// goes to the lock.
#[derive(Clone, Copy)]
struct Ticket {
    view: View,
    started: Instant,
}

impl Ticket {
    /// Admitted by `view` (which admits), reading the clock only if the
    /// view says admissions need the time.
    #[inline(always)]
    fn new(view: View, now: impl FnOnce() -> Instant) -> Ticket {
        let started = if view.flags & NEEDS_TIME != 0 {
            now()
        } else {
            Instant::ZERO
        };
        Ticket { view, started }
    }

    fn permit(&self) -> Permit {
        lock_free_permit(self.view.generation, self.view.flags, self.started)
    }
}

/// The permit of a call admitted lock-free by a view of `generation` and
/// `flags`, started at `started`: counted when it is reported.
fn lock_free_permit(generation: u64, flags: u32, started: Instant) -> Permit {
    let epoch = flags >> EPOCH_SHIFT;
    Permit::uncounted(generation, started, admitting_state(flags), epoch)
}

/// The admission a running call holds.
enum Held {
    LockFree(Ticket),
    Locked(Permit),
}

impl Held {
    fn permit(&self) -> Permit {
        match self {
            Held::LockFree(ticket) => ticket.permit(),
            Held::Locked(permit) => permit.duplicate(),
        }
    }

    #[inline(always)]
    fn duplicate(&self) -> Held {
        match self {
            Held::LockFree(ticket) => Held::LockFree(*ticket),
            Held::Locked(permit) => Held::Locked(permit.duplicate()),
        }
    }
}

impl<P: TripPolicy, C, const H: usize, S: Sharing> SharedBreaker<P, C, H, S> {
    /// A closed breaker shared as `sharing` says (the std adapter makes
    /// its `StdBreaker` this way).
    pub fn with_sharing(config: Config, policy: P, clock: C, sharing: S) -> Self {
        SharedBreaker {
            snapshot: new_snapshot!(policy.needs_time() || config.slow_call_threshold.is_some()),
            counters: S::Counters::new(),
            longest_open: Word64::holding(config.schedule.max().as_micros()),
            machine: S::Lock::new(Breaker::with_history(config, policy, NoClock)),
            clock,
            sharing,
        }
    }
}

impl<P: TripPolicy, C, const H: usize, S: Sharing, Cfg: Settings> SharedBreaker<P, C, H, S, Cfg> {
    /// Runs `f` on the state machine under the lock, publishes the result
    /// to the lock-free paths and tells the [`Sharing`] of any transition.
    /// `None` only if the lock was re-entered.
    fn locked<R>(&self, f: impl FnOnce(&mut Breaker<P, NoClock, H, Cfg>) -> R) -> Option<R> {
        let mut changed = false;
        let result = self.machine.with(|m| {
            let generation = m.generation();
            let in_flight = probes_in_flight(m.phase());
            let resets = m.resets();
            let result = f(m);
            if m.resets() != resets {
                // Zeroed with the rest: the counters now hold the new
                // epoch, so an epoch tag that wraps never brings an old
                // count back.
                let _ = self.counters.take(epoch_of(m.resets()));
            }
            let transitions = m.generation().wrapping_sub(generation);
            if transitions > 0 {
                // Each transition is in the history; more than it keeps
                // (only from `with_breaker`) and the oldest go untold.
                let kept = m.history().count();
                let skip = kept.saturating_sub(usize::try_from(transitions).unwrap_or(kept));
                let open_until = match m.phase() {
                    Phase::Open { until } => Some(until),
                    _ => None,
                };
                let latest = m.generation();
                for t in m.history().skip(skip) {
                    let open_until = open_until.filter(|_| t.generation == latest);
                    self.sharing.transitioned(t, open_until);
                }
                changed = true;
            } else if probes_in_flight(m.phase()) < in_flight {
                changed = true;
            }
            self.publish(m);
            result
        });
        if changed {
            self.sharing.changed();
        }
        result
    }

    /// Mirrors the machine into the snapshot the lock-free paths read.
    fn publish(&self, m: &Breaker<P, NoClock, H, Cfg>) {
        let noop = if m.policy().success_is_noop() && m.config().slow_call_threshold.is_none() {
            SUCCESS_IS_NOOP
        } else {
            0
        };
        let time = if m.policy().needs_time() || m.config().slow_call_threshold.is_some() {
            NEEDS_TIME
        } else {
            0
        };
        let (flags, until) = match m.phase() {
            Phase::Closed => (ADMIT | noop | time, Instant::ZERO),
            Phase::MetricsOnly => (ADMIT | METRICS_ONLY | noop | time, Instant::ZERO),
            Phase::Disabled => (ADMIT | DISABLED | REPORTS_ARE_NOOP, Instant::ZERO),
            Phase::Open { until } => (OPEN, until),
            Phase::HalfOpen(_) | Phase::ForcedOpen => (0, Instant::ZERO),
        };
        let epoch = epoch_of(m.resets()) << EPOCH_SHIFT;
        self.snapshot.write(m.generation(), flags | epoch, until);
    }

    /// Counts `event` lock-free; `false` if it must be decided under the
    /// lock instead.
    #[inline(always)]
    fn count_lock_free(&self, event: LockFreeEvent, epoch: u32) -> bool {
        if !Cfg::METRICS {
            return true; // a breaker that keeps no counts
        }
        self.counters.add(event, epoch) || self.count_after_taking(event, epoch)
    }

    /// The counter was full (or of another epoch): move its counts into
    /// the breaker's `u64`s under the lock, then ask once more.
    #[cold]
    fn count_after_taking(&self, event: LockFreeEvent, epoch: u32) -> bool {
        let taken = self.locked(|m| {
            let t = self.counters.take(epoch_of(m.resets()));
            m.add_lock_free_counts(t.successes, t.rejected);
        });
        taken.is_some() && self.counters.add(event, epoch)
    }

    /// A permit for a call admitted by the published `view` (which admits),
    /// writing nothing: the call is counted when it is reported.
    #[inline(always)]
    fn admit_lock_free(&self, view: &View, now: impl FnOnce() -> Instant) -> Permit {
        Ticket::new(*view, now).permit()
    }

    /// The lock-free rejection of an open `view` at `now`, if its deadline
    /// has not come (and is no further than the longest open duration:
    /// the lock pulls back one a wild clock pushed out).
    #[inline(always)]
    fn reject_lock_free(&self, view: &View, now: Instant) -> Option<Rejected> {
        let wait = view.until.saturating_duration_since(now);
        if wait.is_zero()
            || wait > Duration::from_micros(self.longest_open.load())
            || !self.count_lock_free(LockFreeEvent::Rejection, view.epoch())
        {
            return None;
        }
        let rejected = Rejected::waiting(RejectReason::Open, Some(wait));
        self.sharing.rejected(&rejected);
        Some(rejected)
    }

    fn acquire(&self, mut now: impl FnMut() -> Instant) -> Admission {
        let view = self.snapshot.read();
        if view.flags & ADMIT != 0 {
            return Admission {
                result: Ok(self.admit_lock_free(&view, &mut now)),
                transition: None,
            };
        }
        let mut known = None;
        if view.flags & OPEN != 0 {
            let t = now();
            known = Some(t);
            if let Some(rejected) = self.reject_lock_free(&view, t) {
                return Admission {
                    result: Err(rejected),
                    transition: None,
                };
            }
        }
        self.acquire_locked(known.unwrap_or_else(now))
    }

    #[inline(never)]
    fn acquire_locked(&self, now: Instant) -> Admission {
        let admission = self
            .locked(|m| m.try_acquire_at(now))
            .unwrap_or_else(|| self.refused_reentrant());
        if let Err(rejected) = &admission.result {
            self.sharing.rejected(rejected);
        }
        admission
    }

    /// The answer to an acquire that re-entered the lock: refused, counted
    /// as a rejection.
    fn refused_reentrant(&self) -> Admission {
        let _ = self
            .counters
            .add(LockFreeEvent::Rejection, self.snapshot.read().epoch());
        Admission {
            result: Err(Rejected::waiting(RejectReason::Busy, None)),
            transition: None,
        }
    }

    /// Asks to make a call at `now` (the pure form).
    pub fn try_acquire_at(&self, now: Instant) -> Admission {
        self.acquire(|| now)
    }

    /// Whether a report of `permit` as `outcome` changes nothing but the
    /// lock-free counts, and has been counted there.
    #[inline(always)]
    fn record_lock_free(&self, permit: &Permit, outcome: Outcome) -> bool {
        // Only a permit the lock-free path minted: one admitted under the
        // lock has been counted as a call already.
        if permit.is_counted() {
            return false;
        }
        // One read; if it met a write, the lock decides.
        let Some(view) = self.snapshot.read_for_report() else {
            return false;
        };
        if view.flags & ADMIT == 0
            || view.generation != permit.generation()
            || admitting_state(view.flags) != permit.state()
        {
            return false;
        }
        if view.flags & REPORTS_ARE_NOOP != 0 {
            return true;
        }
        outcome == Outcome::Success
            && view.flags & SUCCESS_IS_NOOP != 0
            && self.count_lock_free(LockFreeEvent::Success, view.epoch())
    }

    #[inline(always)]
    fn report(&self, permit: Permit, outcome: Outcome, now: impl FnOnce() -> Instant) -> Report {
        if self.record_lock_free(&permit, outcome) {
            return Report {
                status: ReportStatus::Recorded,
                transition: None,
            };
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

    /// Reports at `now` how the call admitted by `permit` went (pure form).
    pub fn record_at(&self, permit: Permit, outcome: Outcome, now: Instant) -> Report {
        self.report(permit, outcome, || now)
    }

    /// Whether the report of `ticket`'s call as `outcome` changes nothing
    /// but the lock-free counts, and has been counted there: the view that
    /// admitted it still holds and says so.
    #[inline(always)]
    fn settled_lock_free(&self, ticket: &Ticket, outcome: Outcome) -> bool {
        let flags = ticket.view.flags;
        if !self.snapshot.unchanged_since(&ticket.view) {
            return false;
        }
        if flags & REPORTS_ARE_NOOP != 0 {
            return true;
        }
        outcome == Outcome::Success
            && flags & SUCCESS_IS_NOOP != 0
            && self.count_lock_free(LockFreeEvent::Success, ticket.view.epoch())
    }

    /// Runs `f` on the state machine under the lock: for the `*_at` forms of
    /// the manual controls, or anything else [`Breaker`] offers. Its counts
    /// leave out what the lock-free paths counted (see
    /// [`metrics`](Self::metrics) for all of them). `None` if called
    /// re-entrantly from inside the lock.
    pub fn with_breaker<R>(
        &self,
        f: impl FnOnce(&mut Breaker<P, NoClock, H, Cfg>) -> R,
    ) -> Option<R> {
        self.locked(f)
    }

    /// The current state (`Closed` if asked re-entrantly from inside the
    /// breaker's own lock, by a policy calling back into it).
    pub fn state(&self) -> State {
        self.locked(|m| m.state()).unwrap_or(State::Closed)
    }

    /// The current generation (lock-free, unless a write of the snapshot
    /// is under way).
    pub fn generation(&self) -> u64 {
        match self.snapshot.try_read() {
            Some(view) => view.generation,
            None => self.locked(|m| m.generation()).unwrap_or(0),
        }
    }

    /// A snapshot of everything at `now`, the lock-free counts included.
    pub fn metrics_at(&self, now: Instant) -> Metrics {
        self.locked(|m| {
            let mut metrics = m.metrics_at(now);
            let extra = self.counters.read(epoch_of(m.resets()));
            metrics.counts = with_lock_free(metrics.counts, extra);
            metrics
        })
        .unwrap_or_else(|| metrics_unavailable(now))
    }

    /// When the breaker's answer will change by itself (see
    /// [`Breaker::poll_at`]); `None` also if asked from inside its lock.
    pub fn poll_at(&self, now: Instant) -> Option<Instant> {
        self.locked(|m| m.poll_at(now)).flatten()
    }

    /// The latest transition, if any.
    pub fn last_transition(&self) -> Option<Transition> {
        self.locked(|m| m.last_transition().copied()).flatten()
    }

    /// The configuration.
    pub fn config(&self) -> Config {
        self.locked(|m| *m.config()).unwrap_or_default()
    }
}

impl<P: TripPolicy, C, const H: usize, S: Sharing> SharedBreaker<P, C, H, S> {
    /// [`Breaker::reconfigure_at`] under the lock: a new configuration,
    /// state, counts and history kept, by the same rules. Callers waiting
    /// on the breaker are woken (a shorter opening may admit them sooner).
    /// `false`, changing nothing, only if called from inside the lock.
    pub fn reconfigure_at(&self, config: Config, now: Instant) -> bool {
        let done = self
            .locked(|m| {
                m.reconfigure_at(config, now);
                self.longest_open.store(config.schedule.max().as_micros());
            })
            .is_some();
        self.sharing.changed();
        done
    }

    /// Changes the trip policy's thresholds in place, under the lock (see
    /// [`Breaker::policy_mut`]); `None` only if called from inside the lock.
    pub fn update_policy<R>(&self, f: impl FnOnce(&mut P) -> R) -> Option<R> {
        self.locked(|m| f(m.policy_mut()))
    }
}

impl<P: TripPolicy, C: Clock, const H: usize, S: Sharing> SharedBreaker<P, C, H, S> {
    /// [`reconfigure_at`](Self::reconfigure_at) now.
    pub fn reconfigure(&self, config: Config) -> bool {
        self.reconfigure_at(config, self.clock.now())
    }
}

/// The methods that read the breaker's clock: a breaker on [`NoClock`] has
/// only the `*_at` forms.
impl<P: TripPolicy, C: Clock, const H: usize, S: Sharing, Cfg: Settings>
    SharedBreaker<P, C, H, S, Cfg>
{
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

    /// Rejects every call until [`release`](Self::release); `None` if
    /// already forced open.
    pub fn force_open(&self) -> Option<Transition> {
        self.manual(|m, now| m.force_open_at(now))
    }

    /// Permits every call and records nothing until [`release`](Self::release).
    pub fn disable(&self) -> Option<Transition> {
        self.manual(|m, now| m.disable_at(now))
    }

    /// Enters [`State::MetricsOnly`]: permits and records every call, never
    /// trips, until [`release`](Self::release).
    pub fn measure_only(&self) -> Option<Transition> {
        self.manual(|m, now| m.measure_only_at(now))
    }

    /// Back to closed from a manual state.
    pub fn release(&self) -> Option<Transition> {
        self.manual(|m, now| m.release_at(now))
    }

    /// Back to closed from any state: empty policy, zeroed counts (the
    /// lock-free ones too), a new generation. `None` only if called from
    /// inside the breaker's own lock.
    pub fn reset(&self) -> Option<Transition> {
        self.manual(|m, now| m.reset_at(now))
    }

    /// Asks to make a call now.
    #[inline]
    pub fn try_acquire(&self) -> Admission {
        self.acquire(|| self.clock.now())
    }

    /// Reports how the call admitted by `permit` went.
    #[inline(always)]
    pub fn record(&self, permit: Permit, outcome: Outcome) -> Report {
        self.report(permit, outcome, || self.clock.now())
    }

    /// Runs `op` through the breaker, with `classify` deciding what its
    /// result counts as; a panic in either is a failure.
    ///
    /// # Errors
    /// As [`call`](Self::call).
    #[inline(always)]
    pub fn call_classified<T, E>(
        &self,
        op: impl FnOnce() -> Result<T, E>,
        classify: impl FnOnce(&Result<T, E>) -> Outcome,
    ) -> Result<T, CallError<E>> {
        let view = self.snapshot.read();
        if view.flags & ADMIT != 0 {
            // Inline, the admission in registers: moving `Admission` and
            // `Report` through memory costs more than the breaker.
            let ticket = Ticket::new(view, || self.clock.now());
            return self.run(Held::LockFree(ticket), op, classify);
        }
        let mut known = None;
        if view.flags & OPEN != 0 {
            // Rejected before the deadline inline too, reading the clock once.
            let now = self.clock.now();
            if let Some(rejected) = self.reject_lock_free(&view, now) {
                return Err(CallError::Rejected(rejected));
            }
            known = Some(now);
        }
        self.call_locked(known, op, classify)
    }

    /// `call_classified` when the lock decides, out of line, at `known` if
    /// the clock has been read.
    #[inline(never)]
    fn call_locked<T, E>(
        &self,
        known: Option<Instant>,
        op: impl FnOnce() -> Result<T, E>,
        classify: impl FnOnce(&Result<T, E>) -> Outcome,
    ) -> Result<T, CallError<E>> {
        let now = known.unwrap_or_else(|| self.clock.now());
        let permit = self
            .acquire_locked(now)
            .result
            .map_err(CallError::Rejected)?;
        self.run(Held::Locked(permit), op, classify)
    }

    fn manual(
        &self,
        f: impl FnOnce(&mut Breaker<P, NoClock, H, Cfg>, Instant) -> Option<Transition>,
    ) -> Option<Transition> {
        self.locked(|m| f(m, self.clock.now())).flatten()
    }

    /// A snapshot of everything, reading the clock once.
    pub fn metrics(&self) -> Metrics {
        self.metrics_at(self.clock.now())
    }

    /// Runs `op` under `held` and reports it; a panic reports a failure.
    #[inline(always)]
    fn run<T, E>(
        &self,
        held: Held,
        op: impl FnOnce() -> Result<T, E>,
        classify: impl FnOnce(&Result<T, E>) -> Outcome,
    ) -> Result<T, CallError<E>> {
        let on_unwind = FailOnUnwind {
            breaker: self,
            held,
        };
        let result = op();
        let outcome = classify(&result);
        let held = on_unwind.held.duplicate();
        core::mem::forget(on_unwind);
        match held {
            Held::LockFree(ticket) => {
                if !self.settled_lock_free(&ticket, outcome) {
                    // The fields, not the ticket: passed in registers.
                    let view = ticket.view;
                    self.record_admitted(view.generation, view.flags, ticket.started, outcome);
                }
            }
            Held::Locked(permit) => self.record_locked_permit(permit, outcome),
        }
        result.map_err(CallError::Inner)
    }

    /// The report of a lock-free admission the inline path could not
    /// settle (the snapshot changed, or the outcome changes the machine).
    #[inline(never)]
    fn record_admitted(&self, generation: u64, flags: u32, started: Instant, outcome: Outcome) {
        let _ = self.record(lock_free_permit(generation, flags, started), outcome);
    }

    /// The report of a call the lock admitted.
    #[inline(never)]
    fn record_locked_permit(&self, permit: Permit, outcome: Outcome) {
        let _ = self.record(permit, outcome);
    }
}

impl<P, C, const H: usize, S: Sharing, Cfg> SharedBreaker<P, C, H, S, Cfg> {
    /// The clock.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// How the breaker is shared.
    pub fn sharing(&self) -> &S {
        &self.sharing
    }
}

/// Probes in flight in `phase` (zero outside half-open).
fn probes_in_flight(phase: Phase) -> u32 {
    match phase {
        Phase::HalfOpen(p) => p.in_flight,
        _ => 0,
    }
}

/// `counts` with the lock-free ones added, each saturating.
fn with_lock_free(counts: Counts, extra: LockFreeCounts) -> Counts {
    Counts {
        calls: counts.calls.saturating_add(extra.successes),
        successes: counts.successes.saturating_add(extra.successes),
        rejected: counts.rejected.saturating_add(extra.rejected),
        ..counts
    }
}

/// What `metrics` says if asked from inside its own lock (a policy calling
/// back into its breaker): nothing known, rather than a panic.
fn metrics_unavailable(now: Instant) -> Metrics {
    Metrics {
        next_probe_at: Some(now),
        ..Metrics::default()
    }
}

/// The state the published flags show, as far as they tell it.
fn published_state(flags: u32) -> &'static str {
    if flags & ADMIT != 0 {
        admitting_state(flags).as_str()
    } else if flags & OPEN != 0 {
        State::Open.as_str()
    } else {
        "half-open or forced-open"
    }
}

impl<P, C, const H: usize, S: Sharing, Cfg> fmt::Debug for SharedBreaker<P, C, H, S, Cfg> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let view = self.snapshot.read();
        f.debug_struct("SharedBreaker")
            .field("state", &published_state(view.flags))
            .field("generation", &view.generation)
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "defmt")]
impl<P, C, const H: usize, S: Sharing, Cfg> defmt::Format for SharedBreaker<P, C, H, S, Cfg> {
    fn format(&self, f: defmt::Formatter) {
        let view = self.snapshot.read();
        defmt::write!(
            f,
            "SharedBreaker {{ state: {}, generation: {} }}",
            published_state(view.flags),
            view.generation
        )
    }
}

impl fmt::Debug for AtomicCounters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AtomicCounters").finish_non_exhaustive()
    }
}

impl<T> fmt::Debug for CriticalSectionLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CriticalSectionLock")
            .finish_non_exhaustive()
    }
}

#[cfg(all(test, not(loom)))]
mod tests;
