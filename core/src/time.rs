//! Time: the breaker's own [`Instant`] and [`Duration`], the [`Clock`] trait
//! and the clocks the core ships.
//!
//! Both types count **microseconds** in a `u64`, so they span about
//! 584,942 years. Their arithmetic is `checked_*` or `saturating_*` only:
//! nothing in this module can panic or wrap.

use core::cell::Cell;
use core::fmt;

use crate::config::ConfigError;

const MICROS_PER_MILLI: u64 = 1_000;
const MICROS_PER_SEC: u64 = 1_000_000;

/// A point in time, in microseconds since an epoch chosen by the [`Clock`].
///
/// Only differences between instants of one clock mean anything.
///
/// ```
/// use breakerbox_core::{Duration, Instant};
///
/// let start = Instant::from_millis(1_500);
/// let later = start.saturating_add(Duration::from_millis(250));
/// assert_eq!(later.as_micros(), 1_750_000);
/// assert_eq!(later.saturating_duration_since(start), Duration::from_millis(250));
/// // A clock that stepped backwards gives zero, not a panic.
/// assert_eq!(start.saturating_duration_since(later), Duration::ZERO);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Instant(u64);

/// A span of time in microseconds; converts from and to [`core::time::Duration`].
///
/// ```
/// use breakerbox_core::Duration;
///
/// let d = Duration::from(core::time::Duration::from_millis(5));
/// assert_eq!(d, Duration::from_micros(5_000));
/// assert_eq!(d.saturating_mul(3), Duration::from_millis(15));
/// assert_eq!(Duration::MAX.checked_add(d), None);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Duration(u64);

impl Instant {
    /// The clock's epoch.
    pub const ZERO: Instant = Instant(0);
    /// The last representable instant; saturating arithmetic stops here.
    pub const MAX: Instant = Instant(u64::MAX);

    /// An instant `micros` microseconds after the epoch.
    pub const fn from_micros(micros: u64) -> Self {
        Instant(micros)
    }

    /// An instant `millis` milliseconds after the epoch, saturating at [`Instant::MAX`].
    pub const fn from_millis(millis: u64) -> Self {
        Instant(millis.saturating_mul(MICROS_PER_MILLI))
    }

    /// An instant `secs` seconds after the epoch, saturating at [`Instant::MAX`].
    pub const fn from_secs(secs: u64) -> Self {
        Instant(secs.saturating_mul(MICROS_PER_SEC))
    }

    /// Microseconds since the epoch.
    pub const fn as_micros(self) -> u64 {
        self.0
    }

    /// `self + d`, or `None` past [`Instant::MAX`].
    pub const fn checked_add(self, d: Duration) -> Option<Instant> {
        match self.0.checked_add(d.0) {
            Some(t) => Some(Instant(t)),
            None => None,
        }
    }

    /// `self - d`, or `None` before the epoch.
    pub const fn checked_sub(self, d: Duration) -> Option<Instant> {
        match self.0.checked_sub(d.0) {
            Some(t) => Some(Instant(t)),
            None => None,
        }
    }

    /// `self + d`, stopping at [`Instant::MAX`].
    pub const fn saturating_add(self, d: Duration) -> Instant {
        Instant(self.0.saturating_add(d.0))
    }

    /// `self - d`, stopping at [`Instant::ZERO`].
    pub const fn saturating_sub(self, d: Duration) -> Instant {
        Instant(self.0.saturating_sub(d.0))
    }

    /// The time from `earlier` to `self`, or `None` if `earlier` is later.
    pub const fn checked_duration_since(self, earlier: Instant) -> Option<Duration> {
        match self.0.checked_sub(earlier.0) {
            Some(d) => Some(Duration(d)),
            None => None,
        }
    }

    /// The time from `earlier` to `self`, or zero if `earlier` is later
    /// (a clock that stepped backwards).
    pub const fn saturating_duration_since(self, earlier: Instant) -> Duration {
        Duration(self.0.saturating_sub(earlier.0))
    }
}

impl Duration {
    /// No time at all.
    pub const ZERO: Duration = Duration(0);
    /// The longest representable span, about 584,942 years.
    pub const MAX: Duration = Duration(u64::MAX);

    /// `micros` microseconds.
    pub const fn from_micros(micros: u64) -> Self {
        Duration(micros)
    }

    /// `millis` milliseconds, saturating at [`Duration::MAX`].
    pub const fn from_millis(millis: u64) -> Self {
        Duration(millis.saturating_mul(MICROS_PER_MILLI))
    }

    /// `secs` seconds, saturating at [`Duration::MAX`].
    pub const fn from_secs(secs: u64) -> Self {
        Duration(secs.saturating_mul(MICROS_PER_SEC))
    }

    /// Converts a [`core::time::Duration`], dropping sub-microsecond parts
    /// and saturating at [`Duration::MAX`].
    pub const fn from_core(d: core::time::Duration) -> Self {
        let micros = d.as_micros();
        if micros > u64::MAX as u128 {
            Duration::MAX
        } else {
            Duration(micros as u64)
        }
    }

    /// Converts to a [`core::time::Duration`] (always exact).
    pub const fn to_core(self) -> core::time::Duration {
        #[cfg(target_pointer_width = "64")]
        {
            core::time::Duration::from_micros(self.0)
        }
        // On a 32-bit core a 64-bit division is a library routine of some
        // hundred bytes; the shift-and-subtract one the backoff uses will do.
        #[cfg(not(target_pointer_width = "64"))]
        {
            let (secs, micros) = crate::config::div_rem(self.0, MICROS_PER_SEC as u32);
            core::time::Duration::new(secs, micros as u32 * 1_000)
        }
    }

    /// The span in microseconds.
    pub const fn as_micros(self) -> u64 {
        self.0
    }

    /// The span in whole milliseconds.
    pub const fn as_millis(self) -> u64 {
        self.0 / MICROS_PER_MILLI
    }

    /// Whether this is zero.
    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// `self + other`, or `None` on overflow.
    pub const fn checked_add(self, other: Duration) -> Option<Duration> {
        match self.0.checked_add(other.0) {
            Some(d) => Some(Duration(d)),
            None => None,
        }
    }

    /// `self - other`, or `None` if `other` is longer.
    pub const fn checked_sub(self, other: Duration) -> Option<Duration> {
        match self.0.checked_sub(other.0) {
            Some(d) => Some(Duration(d)),
            None => None,
        }
    }

    /// `self * factor`, or `None` on overflow.
    pub const fn checked_mul(self, factor: u64) -> Option<Duration> {
        match self.0.checked_mul(factor) {
            Some(d) => Some(Duration(d)),
            None => None,
        }
    }

    /// `self + other`, stopping at [`Duration::MAX`].
    pub const fn saturating_add(self, other: Duration) -> Duration {
        Duration(self.0.saturating_add(other.0))
    }

    /// `self - other`, stopping at zero.
    pub const fn saturating_sub(self, other: Duration) -> Duration {
        Duration(self.0.saturating_sub(other.0))
    }

    /// `self * factor`, stopping at [`Duration::MAX`].
    pub const fn saturating_mul(self, factor: u64) -> Duration {
        Duration(self.0.saturating_mul(factor))
    }

    /// The shorter of two spans (`const` form of [`Ord::min`]).
    pub const fn min(self, other: Duration) -> Duration {
        if self.0 <= other.0 {
            self
        } else {
            other
        }
    }
}

impl From<core::time::Duration> for Duration {
    fn from(d: core::time::Duration) -> Self {
        Duration::from_core(d)
    }
}

impl From<Duration> for core::time::Duration {
    fn from(d: Duration) -> Self {
        d.to_core()
    }
}

impl fmt::Display for Duration {
    /// Seconds with microsecond precision, trailing zeros trimmed: `1.5s`, `0.00025s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_seconds(f, self.0)?;
        f.write_str("s")
    }
}

impl fmt::Display for Instant {
    /// Seconds since the clock's epoch: `t=12.5s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("t=")?;
        write_seconds(f, self.0)?;
        f.write_str("s")
    }
}

impl fmt::Debug for Duration {
    /// With its unit, as `Display` writes it: `Duration(1.5s)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Duration({self})")
    }
}

impl fmt::Debug for Instant {
    /// With its unit, as `Display` writes it: `Instant(t=12.5s)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Instant({self})")
    }
}

fn write_seconds(f: &mut fmt::Formatter<'_>, micros: u64) -> fmt::Result {
    let secs = micros / MICROS_PER_SEC;
    let mut frac = micros % MICROS_PER_SEC;
    if frac == 0 {
        return write!(f, "{secs}");
    }
    let mut digits = 6;
    while frac.is_multiple_of(10) {
        frac /= 10;
        digits -= 1;
    }
    write!(f, "{secs}.{frac:0digits$}")
}

/// A source of [`Instant`]s for the breaker.
///
/// # Contract
///
/// - **Monotonic**: `now()` never returns an instant earlier than a previous
///   one of the same clock.
/// - **64 bits** of microseconds: extend narrower hardware counters with
///   [`TickExtender`] or [`TickClock`] so they do not wrap.
/// - **Cheap**: the breaker may read it on every call.
/// - **Interrupt-safe**: callable from an interrupt handler without blocking
///   (no locks another context may hold).
///
/// # A clock that breaks the contract
///
/// The breaker's arithmetic saturates, so a broken clock cannot make it panic,
/// overflow or wedge, and can never by itself trip or close it:
/// - a clock that steps **backwards** only delays things — an open breaker
///   stays open longer, a probe lease runs longer, a call looks shorter
///   (never slow);
/// - a clock that jumps to [`Instant::MAX`] ends every deadline at once, but a
///   probe lease that starts there also ends at once, so the breaker cycles
///   between open and half-open and never closes until the clock recovers.
///
/// ```
/// use breakerbox_core::{Clock, Instant};
///
/// /// A clock reading a free-running 64-bit microsecond timer.
/// struct Timer;
/// impl Clock for Timer {
///     fn now(&self) -> Instant {
///         Instant::from_micros(42) // read the hardware register here
///     }
/// }
/// assert_eq!((&Timer).now(), Instant::from_micros(42));
/// ```
pub trait Clock {
    /// The current time.
    fn now(&self) -> Instant;
}

impl<C: Clock + ?Sized> Clock for &C {
    #[inline]
    fn now(&self) -> Instant {
        (**self).now()
    }
}

/// No clock: the clock of a breaker driven only through its `*_at(now)`
/// methods, which take the time as an argument (the pure state machine).
/// It is not a [`Clock`], so the methods that would read one (`try_acquire`,
/// `record`, `call`, `metrics`, …) do not exist on such a breaker: it never
/// reads a time that does not move.
///
/// ```
/// use breakerbox_core::{Breaker, Config, ConsecutiveFailures, Instant, NoClock};
///
/// let mut breaker: Breaker = Breaker::new(Config::DEFAULT, ConsecutiveFailures::new(1).unwrap(), NoClock);
/// assert!(breaker.try_acquire_at(Instant::ZERO).result.is_ok());
/// ```
///
/// ```compile_fail,E0599
/// use breakerbox_core::{Breaker, Config, ConsecutiveFailures, NoClock};
///
/// let mut breaker: Breaker = Breaker::new(Config::DEFAULT, ConsecutiveFailures::new(1).unwrap(), NoClock);
/// let _ = breaker.try_acquire(); // no clock to read
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct NoClock;

/// A clock that stands at [`Instant::ZERO`]: for the crate's tests whose
/// time never moves.
#[cfg(test)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Frozen;

#[cfg(test)]
impl Clock for Frozen {
    fn now(&self) -> Instant {
        Instant::ZERO
    }
}

/// A clock that moves only when told to: for tests, simulations and host
/// programs that drive time themselves.
///
/// Not `Sync` (it uses a [`Cell`]); share it by reference within one thread.
///
/// ```
/// use breakerbox_core::{Clock, Duration, Instant, ManualClock};
///
/// let clock = ManualClock::new();
/// clock.advance(Duration::from_secs(2));
/// assert_eq!(clock.now(), Instant::from_secs(2));
/// clock.set(Instant::from_millis(500)); // may even go backwards
/// assert_eq!(clock.now(), Instant::from_millis(500));
/// ```
#[derive(Debug, Default, Clone)]
pub struct ManualClock {
    now: Cell<Instant>,
}

impl ManualClock {
    /// A clock standing at [`Instant::ZERO`].
    pub const fn new() -> Self {
        Self::starting_at(Instant::ZERO)
    }

    /// A clock standing at `start`.
    pub const fn starting_at(start: Instant) -> Self {
        ManualClock {
            now: Cell::new(start),
        }
    }

    /// Moves the clock to `t`, forwards or backwards.
    pub fn set(&self, t: Instant) {
        self.now.set(t);
    }

    /// Moves the clock forwards by `d` (a `core::time::Duration` or the
    /// crate's [`Duration`]), stopping at [`Instant::MAX`].
    pub fn advance(&self, d: impl Into<Duration>) {
        self.now.set(self.now.get().saturating_add(d.into()));
    }
}

impl Clock for ManualClock {
    #[inline]
    fn now(&self) -> Instant {
        self.now.get()
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for ManualClock {
    fn format(&self, f: defmt::Formatter) {
        defmt::write!(f, "ManualClock({})", self.now.get())
    }
}

/// Extends a wrapping hardware counter of 1 to 32 bits (an RTC, a timer
/// peripheral, SysTick) into a monotonic 64-bit tick count.
///
/// **The rule.** Between two readings the counter either moved forward or
/// wrapped; a reading that went back by less than half the counter's range
/// is a glitch (a torn or early read of the register), not a wrap: the
/// count holds still until the counter passes its last good reading. A step
/// back of half the range or more is a wrap. So the counter must be read
/// more often than every half wrap period (`2^bits / 2` ticks), or a wrap is
/// taken for a glitch and the time it covered is lost; readings closer
/// together cost nothing. A reading too high moves the count forward, and
/// the count then holds until the counter catches up: it never goes back.
///
/// **Down-counters** (SysTick counts down from its reload value): give the
/// extender the bitwise complement of the reading, `!raw`. Bits above the
/// width are ignored, so for a full-range 24-bit down-counter `!raw` counts
/// up by one per tick. A down-counter with a shorter reload is not a free
/// running counter: count its interrupts instead.
///
/// ```
/// use breakerbox_core::TickExtender;
///
/// let mut ticks = TickExtender::new(16).unwrap();
/// assert_eq!(ticks.extend(65_000), 65_000);
/// assert_eq!(ticks.extend(100), 65_536 + 100); // the counter wrapped once
/// assert_eq!(ticks.extend(99), 65_536 + 100); // a glitch: the count holds
/// assert_eq!(ticks.extend(200), 65_536 + 200);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct TickExtender {
    mask: u32,
    last: u32,
    ticks: u64,
}

impl TickExtender {
    /// An extender for a counter `bits` wide (1 to 32), starting at zero.
    ///
    /// # Errors
    /// [`ConfigError::CounterWidth`] for a width of 0 or above 32.
    pub const fn new(bits: u32) -> Result<Self, ConfigError> {
        if bits == 0 || bits > 32 {
            return Err(ConfigError::CounterWidth);
        }
        Ok(TickExtender {
            mask: u32::MAX >> (32 - bits),
            last: 0,
            ticks: 0,
        })
    }

    /// Takes a raw counter reading and gives the ticks it moved on since the
    /// last good reading: 0 for a glitch (see the rule above). Bits above
    /// the counter's width are ignored.
    pub fn advance(&mut self, raw: u32) -> u32 {
        let raw = raw & self.mask;
        // How far the counter moved forward, counting a wrap; a step back of
        // `back` shows as `range - back`, above half the range when `back`
        // is under it.
        let forward = raw.wrapping_sub(self.last) & self.mask;
        let glitch = raw < self.last && forward > self.mask / 2 + 1;
        if glitch {
            return 0;
        }
        self.last = raw;
        self.ticks = self.ticks.saturating_add(forward as u64);
        forward
    }

    /// Takes a raw counter reading and gives the 64-bit tick count.
    /// Bits above the counter's width are ignored. Saturates at `u64::MAX`.
    pub fn extend(&mut self, raw: u32) -> u64 {
        self.advance(raw);
        self.ticks
    }
}

/// An extended tick count kept as whole seconds and the ticks since, so
/// that reading it as microseconds needs no 64-bit division (which links a
/// slow library routine on 32-bit targets).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
struct TickCount {
    extender: TickExtender,
    secs: u64,
    /// Ticks into the current second: always below `hz`.
    sub: u32,
}

impl TickCount {
    const fn new(extender: TickExtender) -> Self {
        TickCount {
            extender,
            secs: 0,
            sub: 0,
        }
    }

    /// Takes a raw counter reading of a counter ticking at `hz` (not 0).
    fn advance(&mut self, raw: u32, hz: u32) {
        let forward = self.extender.advance(raw);
        // 32-bit division only: the step is a `u32`.
        let mut secs = self.secs.saturating_add((forward / hz) as u64);
        let mut sub = self.sub as u64 + (forward % hz) as u64;
        if sub >= hz as u64 {
            sub -= hz as u64;
            secs = secs.saturating_add(1);
        }
        self.secs = secs;
        self.sub = sub as u32;
    }

    /// Advances the count in `shared` by a reading taken inside the
    /// critical section, so that readings from several contexts are taken
    /// and counted in one order.
    fn advance_shared(
        shared: &critical_section::Mutex<Cell<TickCount>>,
        read: impl FnOnce() -> u32,
        hz: u32,
    ) -> TickCount {
        critical_section::with(|cs| {
            let cell = shared.borrow(cs);
            let mut count = cell.get();
            count.advance(read(), hz);
            cell.set(count);
            count
        })
    }

    /// The count as microseconds, saturating, rounded down.
    fn micros(&self, hz: u32) -> u64 {
        (self.secs)
            .saturating_mul(MICROS_PER_SEC)
            .saturating_add(sub_second_micros(self.sub, hz))
    }
}

/// `sub * 10^6 / hz`, rounded down, for `sub < hz`, by binary long
/// division: the quotient is below 10^6 < 2^20, so twenty steps of a
/// compare and a subtract give it exactly, with no division instruction.
const fn sub_second_micros(sub: u32, hz: u32) -> u64 {
    let mut rest = sub as u64 * MICROS_PER_SEC;
    let mut micros = 0;
    let mut bit = 20;
    while bit > 0 {
        bit -= 1;
        let step = (hz as u64) << bit;
        if rest >= step {
            rest -= step;
            micros |= 1 << bit;
        }
    }
    micros
}

/// A [`Clock`] on a wrapping hardware tick counter: reads the counter with a
/// function, extends it with a [`TickExtender`] and converts ticks at `hz`
/// to microseconds.
///
/// Not `Sync`: for a clock shared with interrupt handlers use
/// [`SharedTickClock`]. The conversion is exact, cannot overflow and uses
/// no 64-bit division.
///
/// **Who reads it how often.** The extender's rule (see [`TickExtender`])
/// needs a reading more often than every half wrap period of the counter.
/// A breaker reads its clock only when its state needs the time (open,
/// half-open, a time-window policy), so a closed breaker on a consecutive
/// or count-window policy may not read it for hours. Unless your code reads
/// [`now`](Clock::now) often enough anyway, call [`tick`](Self::tick) that
/// often, from the main loop or a periodic timer interrupt: for a 16-bit
/// counter at 1 kHz, more often than every 32 s; for a 24-bit one at
/// 32 kHz, every 256 s.
///
/// ```
/// use core::cell::Cell;
/// use breakerbox_core::{Clock, Instant, TickClock};
///
/// let counter = Cell::new(0u32); // stands in for a 32 kHz RTC register
/// let clock = TickClock::new(|| counter.get(), 24, 32_768).unwrap();
/// counter.set(32_768);
/// assert_eq!(clock.now(), Instant::from_secs(1));
/// ```
pub struct TickClock<F> {
    read: F,
    count: Cell<TickCount>,
    hz: u32,
}

impl<F: Fn() -> u32> TickClock<F> {
    /// A clock reading a `bits`-wide counter that ticks `hz` times a second.
    ///
    /// # Errors
    /// [`ConfigError::CounterWidth`] for a width outside 1..=32,
    /// [`ConfigError::TickRate`] for a rate of zero.
    pub fn new(read: F, bits: u32, hz: u32) -> Result<Self, ConfigError> {
        if hz == 0 {
            return Err(ConfigError::TickRate);
        }
        match TickExtender::new(bits) {
            Ok(extender) => Ok(TickClock {
                read,
                count: Cell::new(TickCount::new(extender)),
                hz,
            }),
            Err(e) => Err(e),
        }
    }

    /// The counter's rate in ticks per second.
    pub fn hz(&self) -> u32 {
        self.hz
    }

    /// Reads the counter and keeps its count, without converting it: what
    /// a periodic interrupt or the main loop calls so that no wrap is
    /// missed while nothing else reads the clock.
    pub fn tick(&self) {
        self.read_count();
    }

    fn read_count(&self) -> TickCount {
        let mut count = self.count.get();
        count.advance((self.read)(), self.hz);
        self.count.set(count);
        count
    }
}

impl<F: Fn() -> u32> Clock for TickClock<F> {
    fn now(&self) -> Instant {
        Instant::from_micros(self.read_count().micros(self.hz))
    }
}

impl<F> fmt::Debug for TickClock<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TickClock")
            .field("extender", &self.count.get().extender)
            .field("hz", &self.hz)
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "defmt")]
impl<F> defmt::Format for TickClock<F> {
    fn format(&self, f: defmt::Formatter) {
        defmt::write!(
            f,
            "TickClock {{ extender: {}, hz: {} }}",
            self.count.get().extender,
            self.hz
        )
    }
}

/// Ticks of `NOM / DENOM` seconds to microseconds, saturating.
#[cfg(feature = "fugit")]
const fn fugit_micros<const NOM: u32, const DENOM: u32>(ticks: u64) -> u64 {
    let micros = ticks as u128 * NOM as u128 * MICROS_PER_SEC as u128 / DENOM as u128;
    if micros > u64::MAX as u128 {
        u64::MAX
    } else {
        micros as u64
    }
}

/// A `fugit` instant (RTIC monotonics, many HALs' timers) as an [`Instant`],
/// to the microsecond, saturating.
///
/// ```
/// use breakerbox_core::{Clock, Instant};
///
/// /// A clock on a HAL's 32 kHz monotonic timer.
/// struct Monotonic;
/// impl Clock for Monotonic {
///     fn now(&self) -> Instant {
///         let now = fugit::Instant::<u64, 1, 32_768>::from_ticks(65_536); // the timer's now()
///         now.into()
///     }
/// }
/// assert_eq!(Monotonic.now(), Instant::from_secs(2));
/// ```
#[cfg(feature = "fugit")]
impl<const NOM: u32, const DENOM: u32> From<fugit::Instant<u64, NOM, DENOM>> for Instant {
    fn from(t: fugit::Instant<u64, NOM, DENOM>) -> Self {
        Instant::from_micros(fugit_micros::<NOM, DENOM>(t.ticks()))
    }
}

/// A `fugit` duration as a [`Duration`], to the microsecond, saturating.
#[cfg(feature = "fugit")]
impl<const NOM: u32, const DENOM: u32> From<fugit::Duration<u64, NOM, DENOM>> for Duration {
    fn from(d: fugit::Duration<u64, NOM, DENOM>) -> Self {
        Duration::from_micros(fugit_micros::<NOM, DENOM>(d.ticks()))
    }
}

/// A [`Clock`] on a wrapping hardware tick counter that is `Sync`: the
/// extender's state sits in a critical section, so the main loop and
/// interrupt handlers can read one clock (and share a
/// [`SharedBreaker`](crate::SharedBreaker) that uses it).
///
/// ```
/// use core::sync::atomic::{AtomicU32, Ordering};
/// use breakerbox_core::{valid, Clock, Instant, SharedTickClock};
///
/// // A 16-bit 1 kHz counter (a timer peripheral, or ticks counted in an ISR).
/// static COUNTER: AtomicU32 = AtomicU32::new(0);
/// fn read_counter() -> u32 {
///     COUNTER.load(Ordering::Relaxed)
/// }
/// static CLOCK: SharedTickClock<fn() -> u32> =
///     valid!(SharedTickClock::new(read_counter as fn() -> u32, 16, 1_000));
/// COUNTER.store(65_000, Ordering::Relaxed);
/// assert_eq!(CLOCK.now(), Instant::from_millis(65_000));
/// COUNTER.store(70_000, Ordering::Relaxed); // read as 70_000 mod 65_536: a wrap
/// assert_eq!(CLOCK.now(), Instant::from_millis(70_000));
/// ```
pub struct SharedTickClock<F> {
    read: F,
    count: critical_section::Mutex<Cell<TickCount>>,
    hz: u32,
}

impl<F: Fn() -> u32> SharedTickClock<F> {
    /// A clock reading a `bits`-wide counter that ticks `hz` times a second;
    /// `const`, so it can be a `static`.
    ///
    /// # Errors
    /// As [`TickClock::new`].
    pub const fn new(read: F, bits: u32, hz: u32) -> Result<Self, ConfigError> {
        if hz == 0 {
            // A `const fn` cannot run `read`'s destructor; it is not needed.
            core::mem::forget(read);
            return Err(ConfigError::TickRate);
        }
        match TickExtender::new(bits) {
            Ok(extender) => Ok(SharedTickClock {
                read,
                count: critical_section::Mutex::new(Cell::new(TickCount::new(extender))),
                hz,
            }),
            Err(e) => {
                core::mem::forget(read);
                Err(e)
            }
        }
    }

    /// The counter's rate in ticks per second.
    pub fn hz(&self) -> u32 {
        self.hz
    }

    /// Reads the counter and keeps its count, without converting it: call
    /// it from a periodic timer interrupt (or the main loop) more often
    /// than every half wrap period of the counter, so that no wrap is
    /// missed while the breaker does not read its clock (see
    /// [`TickClock`] for who reads how often). Safe from any interrupt the
    /// critical section masks.
    pub fn tick(&self) {
        self.read_count();
    }

    fn read_count(&self) -> TickCount {
        TickCount::advance_shared(&self.count, &self.read, self.hz)
    }
}

impl<F: Fn() -> u32> Clock for SharedTickClock<F> {
    fn now(&self) -> Instant {
        Instant::from_micros(self.read_count().micros(self.hz))
    }
}

impl<F> fmt::Debug for SharedTickClock<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedTickClock")
            .field("hz", &self.hz)
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "defmt")]
impl<F> defmt::Format for SharedTickClock<F> {
    fn format(&self, f: defmt::Formatter) {
        defmt::write!(f, "SharedTickClock {{ hz: {} }}", self.hz)
    }
}

/// The Embassy time driver's clock (feature `embassy-time`):
/// `embassy_time::Instant::now()`, to the microsecond. The driver's count is
/// 64 bits and monotonic, so nothing needs to tick it; callable from any
/// context the driver allows (every embassy driver allows interrupts).
///
/// ```
/// use breakerbox_core::{Breaker, Config, ConsecutiveFailures, EmbassyClock, Instant};
///
/// let breaker: Breaker<ConsecutiveFailures, EmbassyClock> =
///     Breaker::new(Config::DEFAULT, ConsecutiveFailures::new(3).unwrap(), EmbassyClock);
/// let from_embassy: Instant = embassy_time::Instant::from_millis(1_500).into();
/// assert_eq!(from_embassy, Instant::from_millis(1_500));
/// ```
#[cfg(feature = "embassy-time")]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct EmbassyClock;

#[cfg(feature = "embassy-time")]
impl Clock for EmbassyClock {
    #[inline]
    fn now(&self) -> Instant {
        embassy_time::Instant::now().into()
    }
}

/// An Embassy instant as an [`Instant`], to the microsecond (rounded down).
#[cfg(feature = "embassy-time")]
impl From<embassy_time::Instant> for Instant {
    fn from(t: embassy_time::Instant) -> Self {
        Instant::from_micros(t.as_micros())
    }
}

/// An Embassy duration as a [`Duration`], to the microsecond (rounded down).
#[cfg(feature = "embassy-time")]
impl From<embassy_time::Duration> for Duration {
    fn from(d: embassy_time::Duration) -> Self {
        Duration::from_micros(d.as_micros())
    }
}

/// A [`Clock`] on a 32-bit `fugit` timer: RTIC monotonics
/// (`fugit::Instant<u32, 1, 1_000>` and the like) and HAL timers whose
/// `now()` wraps. Extended past the wrap as [`TickExtender`] says, so
/// something must read it more often than every half wrap: call
/// [`tick`](Self::tick) from a periodic task or interrupt if the breaker may
/// not read it that often (see [`TickClock`]). `Sync`, like
/// [`SharedTickClock`]: its count sits in a critical section.
///
/// ```
/// use core::sync::atomic::{AtomicU32, Ordering};
/// use breakerbox_core::{valid, Clock, FugitClock, Instant};
///
/// type Millis = fugit::Instant<u32, 1, 1_000>;
/// static NOW: AtomicU32 = AtomicU32::new(0); // stands in for the monotonic
/// fn mono_now() -> Millis {
///     Millis::from_ticks(NOW.load(Ordering::Relaxed))
/// }
/// static CLOCK: FugitClock<1, 1_000> = valid!(FugitClock::new(mono_now as fn() -> Millis));
/// NOW.store(u32::MAX, Ordering::Relaxed);
/// assert_eq!(CLOCK.now(), Instant::from_millis(u32::MAX as u64));
/// NOW.store(5, Ordering::Relaxed); // the 32-bit millisecond count wrapped
/// assert_eq!(CLOCK.now(), Instant::from_millis((1 << 32) + 5));
/// ```
#[cfg(feature = "fugit")]
pub struct FugitClock<const NOM: u32, const DENOM: u32, F = fn() -> fugit::Instant<u32, NOM, DENOM>>
{
    read: F,
    count: critical_section::Mutex<Cell<TickCount>>,
    hz: u32,
}

#[cfg(feature = "fugit")]
impl<const NOM: u32, const DENOM: u32, F: Fn() -> fugit::Instant<u32, NOM, DENOM>>
    FugitClock<NOM, DENOM, F>
{
    /// A clock reading `read`; `const`, so it can be a `static`.
    ///
    /// # Errors
    /// [`ConfigError::TickRate`] unless a tick is a whole fraction of a
    /// second (`DENOM` a multiple of `NOM`, as for every rate `1 / HZ`).
    pub const fn new(read: F) -> Result<Self, ConfigError> {
        if NOM == 0 || DENOM < NOM || !DENOM.is_multiple_of(NOM) {
            // A `const fn` cannot run `read`'s destructor; it is not needed.
            core::mem::forget(read);
            return Err(ConfigError::TickRate);
        }
        let extender = match TickExtender::new(32) {
            Ok(extender) => extender,
            Err(_) => unreachable!(),
        };
        Ok(FugitClock {
            read,
            count: critical_section::Mutex::new(Cell::new(TickCount::new(extender))),
            hz: DENOM / NOM,
        })
    }

    /// Reads the timer and keeps its count, without converting it (see
    /// [`SharedTickClock::tick`]).
    pub fn tick(&self) {
        self.read_count();
    }

    fn read_count(&self) -> TickCount {
        TickCount::advance_shared(&self.count, || (self.read)().ticks(), self.hz)
    }
}

#[cfg(feature = "fugit")]
impl<const NOM: u32, const DENOM: u32, F: Fn() -> fugit::Instant<u32, NOM, DENOM>> Clock
    for FugitClock<NOM, DENOM, F>
{
    fn now(&self) -> Instant {
        Instant::from_micros(self.read_count().micros(self.hz))
    }
}

#[cfg(feature = "fugit")]
impl<const NOM: u32, const DENOM: u32, F> fmt::Debug for FugitClock<NOM, DENOM, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FugitClock")
            .field("hz", &self.hz)
            .finish_non_exhaustive()
    }
}

#[cfg(all(feature = "fugit", feature = "defmt"))]
impl<const NOM: u32, const DENOM: u32, F> defmt::Format for FugitClock<NOM, DENOM, F> {
    fn format(&self, f: defmt::Formatter) {
        defmt::write!(f, "FugitClock {{ hz: {} }}", self.hz)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_the_unit() {
        extern crate std;
        assert_eq!(
            std::format!("{:?}", Duration::from_millis(1_500)),
            "Duration(1.5s)"
        );
        assert_eq!(
            std::format!("{:?}", Instant::from_micros(250)),
            "Instant(t=0.00025s)"
        );
    }

    #[test]
    fn instant_arithmetic_saturates_and_checks() {
        assert_eq!(Instant::MAX.checked_add(Duration::from_micros(1)), None);
        assert_eq!(Instant::MAX.saturating_add(Duration::MAX), Instant::MAX);
        assert_eq!(Instant::ZERO.checked_sub(Duration::from_micros(1)), None);
        assert_eq!(Instant::ZERO.saturating_sub(Duration::MAX), Instant::ZERO);
        let a = Instant::from_secs(3);
        let b = Instant::from_secs(5);
        assert_eq!(b.checked_duration_since(a), Some(Duration::from_secs(2)));
        assert_eq!(a.checked_duration_since(b), None);
        assert_eq!(a.saturating_duration_since(b), Duration::ZERO);
        assert_eq!(Instant::from_secs(u64::MAX), Instant::MAX);
        assert_eq!(Instant::from_millis(u64::MAX), Instant::MAX);
    }

    #[test]
    fn checked_arithmetic_gives_the_value_when_it_fits() {
        let t = Instant::from_secs(5);
        let d = Duration::from_secs(2);
        assert_eq!(t.checked_add(d), Some(Instant::from_secs(7)));
        assert_eq!(t.checked_sub(d), Some(Instant::from_secs(3)));
        assert_eq!(d.checked_add(d), Some(Duration::from_secs(4)));
        assert_eq!(
            d.checked_sub(Duration::from_secs(1)),
            Some(Duration::from_secs(1))
        );
        assert_eq!(d.checked_mul(3), Some(Duration::from_secs(6)));
        // The largest convertible duration converts exactly.
        let largest = core::time::Duration::from_micros(u64::MAX);
        assert_eq!(Duration::from(largest), Duration::MAX);
        let almost = core::time::Duration::from_micros(u64::MAX - 1);
        assert_eq!(Duration::from(almost), Duration::from_micros(u64::MAX - 1));
    }

    #[test]
    fn duration_conversions_are_exact_or_saturate() {
        let huge = core::time::Duration::from_secs(u64::MAX);
        assert_eq!(Duration::from(huge), Duration::MAX);
        let fine = core::time::Duration::from_nanos(1_999);
        assert_eq!(Duration::from(fine), Duration::from_micros(1));
        let back: core::time::Duration = Duration::from_millis(7).into();
        assert_eq!(back, core::time::Duration::from_millis(7));
        assert_eq!(Duration::MAX.saturating_mul(2), Duration::MAX);
        assert_eq!(Duration::MAX.checked_mul(2), None);
        assert_eq!(Duration::ZERO.checked_sub(Duration::from_micros(1)), None);
        assert_eq!(Duration::from_secs(2).as_millis(), 2_000);
    }

    #[test]
    fn display_trims_trailing_zeros() {
        extern crate std;
        use std::string::ToString;
        assert_eq!(Duration::from_millis(1_500).to_string(), "1.5s");
        assert_eq!(Duration::from_micros(250).to_string(), "0.00025s");
        assert_eq!(Duration::from_secs(5).to_string(), "5s");
        assert_eq!(Instant::from_millis(12_050).to_string(), "t=12.05s");
    }

    #[test]
    fn manual_clock_moves_both_ways_and_saturates() {
        let clock = ManualClock::starting_at(Instant::from_secs(10));
        clock.advance(Duration::from_secs(1));
        assert_eq!(clock.now(), Instant::from_secs(11));
        clock.set(Instant::from_secs(1));
        assert_eq!(Clock::now(&&clock), Instant::from_secs(1));
        clock.set(Instant::MAX);
        clock.advance(Duration::MAX);
        assert_eq!(clock.now(), Instant::MAX);
    }

    #[test]
    fn tick_extender_counts_wraps() {
        assert_eq!(TickExtender::new(0), Err(ConfigError::CounterWidth));
        assert_eq!(TickExtender::new(33), Err(ConfigError::CounterWidth));
        let mut t = TickExtender::new(32).unwrap();
        assert_eq!(t.extend(u32::MAX), u32::MAX as u64);
        assert_eq!(t.extend(0), 1 << 32);
        assert_eq!(t.extend(5), (1 << 32) + 5);
        assert_eq!(t.extend(1 << 31), (1 << 32) + (1 << 31));
        assert_eq!(t.extend(0), 2 << 32, "a step back of half the range");
        assert_eq!(t.extend(1), (2 << 32) + 1);
        // Bits above the width are masked off.
        let mut narrow = TickExtender::new(4).unwrap();
        assert_eq!(narrow.extend(0xF3), 3);
        assert_eq!(narrow.extend(12), 12);
        assert_eq!(narrow.extend(2), 16 + 2);
        // A one-bit counter still works.
        let mut one = TickExtender::new(1).unwrap();
        assert_eq!(one.extend(1), 1);
        assert_eq!(one.extend(0), 2);
    }

    #[test]
    fn a_step_back_under_half_the_range_is_a_glitch_not_a_wrap() {
        // A 32-bit counter at 32 kHz: a wrap would be 131,072 s.
        let mut t = TickExtender::new(32).unwrap();
        assert_eq!(t.extend(1_000), 1_000);
        assert_eq!(t.advance(999), 0, "one tick back");
        assert_eq!(t.extend(999), 1_000, "the count holds");
        assert_eq!(
            t.extend(1_001),
            1_001,
            "and goes on once the counter passes"
        );
        let mut t = TickExtender::new(16).unwrap();
        assert_eq!(t.extend(40_000), 40_000);
        assert_eq!(
            t.extend(40_000 - 32_767),
            40_000,
            "just under half: a glitch"
        );
        assert_eq!(
            t.extend(40_000 - 32_768),
            65_536 + 40_000 - 32_768,
            "half the range back: a wrap"
        );
        assert_eq!(t.extend(39_999), 65_536 + 39_999);
    }

    #[test]
    fn the_same_reading_twice_moves_nothing() {
        let mut t = TickExtender::new(16).unwrap();
        assert_eq!(t.extend(500), 500);
        assert_eq!(t.advance(500), 0);
        assert_eq!(t.extend(500), 500);
    }

    #[test]
    fn a_down_counter_complemented_counts_up() {
        // A full-range 24-bit down-counter (SysTick with its reload at
        // 0xFF_FFFF), read as `!raw`.
        let mut t = TickExtender::new(24).unwrap();
        let down = [0xFF_FFFFu32, 0xFF_FFF0, 0x00_0010, 0xFF_FFF0];
        let ticks: [u64; 4] = down.map(|raw| t.extend(!raw));
        assert_eq!(ticks, [0, 15, 0xFF_FFEF, (1 << 24) + 15]);
    }

    #[test]
    fn tick_extender_saturates_instead_of_overflowing() {
        let mut t = TickExtender::new(32).unwrap();
        t.ticks = u64::MAX - 3;
        t.last = 10;
        assert_eq!(t.extend(20), u64::MAX);
        assert_eq!(t.extend(1 << 31), u64::MAX);
    }

    #[test]
    fn sub_second_micros_is_the_exact_quotient() {
        for hz in [1, 3, 7, 1_000, 32_768, 1_000_000, 48_000_000, u32::MAX] {
            for sub in [0, 1, hz / 3, hz / 2, hz - 1] {
                let exact = sub as u64 * MICROS_PER_SEC / hz as u64;
                assert_eq!(sub_second_micros(sub, hz), exact, "{sub}/{hz}");
            }
        }
    }

    #[test]
    fn tick_counts_saturate() {
        let mut count = TickCount::new(TickExtender::new(32).unwrap());
        count.secs = u64::MAX;
        count.sub = 999;
        // A whole second and one tick: both the seconds and the carry add.
        count.advance(1_001, 1_000);
        assert_eq!(count.secs, u64::MAX);
        assert_eq!(count.micros(1_000), u64::MAX);
    }

    #[test]
    fn shared_tick_clock_extends_across_threads() {
        extern crate std;
        use core::sync::atomic::{AtomicU32, Ordering};
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let clock = SharedTickClock::new(|| COUNTER.load(Ordering::SeqCst), 8, 100).unwrap();
        assert!(SharedTickClock::new(|| 0, 8, 0).is_err());
        assert!(SharedTickClock::new(|| 0, 40, 1).is_err());
        assert_eq!(clock.hz(), 100);
        std::thread::scope(|s| {
            s.spawn(|| {
                COUNTER.store(250, Ordering::SeqCst);
                assert_eq!(clock.now(), Instant::from_millis(2_500));
            });
        });
        COUNTER.store(10, Ordering::SeqCst); // wrapped past 255
        assert_eq!(clock.now(), Instant::from_millis(2_660));
    }

    #[cfg(feature = "fugit")]
    #[test]
    fn fugit_times_convert_exactly_and_saturate() {
        let ms = fugit::Instant::<u64, 1, 1_000>::from_ticks(1_500);
        assert_eq!(Instant::from(ms), Instant::from_millis(1_500));
        let rtc = fugit::Duration::<u64, 1, 32_768>::from_ticks(3);
        assert_eq!(Duration::from(rtc), Duration::from_micros(91));
        let slow = fugit::Instant::<u64, 1_000, 1>::from_ticks(u64::MAX);
        assert_eq!(Instant::from(slow), Instant::MAX);
        let us = fugit::Duration::<u64, 1, 1_000_000>::from_ticks(42);
        assert_eq!(Duration::from(us), Duration::from_micros(42));
        let two_seconds = fugit::Duration::<u64, 2, 1>::from_ticks(3);
        assert_eq!(Duration::from(two_seconds), Duration::from_secs(6));
    }

    #[cfg(feature = "fugit")]
    #[test]
    fn a_32_bit_fugit_timer_is_extended_past_its_wrap() {
        extern crate std;
        use std::cell::Cell as StdCell;
        type Rtc = fugit::Instant<u32, 1, 32_768>;
        std::thread_local!(static NOW: StdCell<u32> = const { StdCell::new(0) });
        fn now() -> Rtc {
            Rtc::from_ticks(NOW.with(StdCell::get))
        }
        let set = |ticks: u32| NOW.with(|n| n.set(ticks));
        let clock: FugitClock<1, 32_768> = FugitClock::new(now as fn() -> Rtc).unwrap();
        set(3 * 32_768 + 3);
        assert_eq!(clock.now(), Instant::from_micros(3_000_091));
        set(u32::MAX / 2 + 1_000);
        clock.tick();
        set(1 << 31);
        clock.tick();
        set(5); // wrapped: 2^32 + 5 ticks
        let micros = ((1u64 << 32) + 5) * 1_000_000 / 32_768;
        assert_eq!(clock.now(), Instant::from_micros(micros));
        set(4); // one tick back: a glitch, the clock holds
        assert_eq!(clock.now(), Instant::from_micros(micros));
        // A tick of 1/3 s is a whole fraction; 2/3 s is not.
        let thirds = FugitClock::<1, 3, fn() -> fugit::Instant<u32, 1, 3>>::new(|| {
            fugit::Instant::<u32, 1, 3>::from_ticks(4)
        });
        assert_eq!(thirds.unwrap().now(), Instant::from_micros(1_333_333));
        let uneven = FugitClock::<2, 3, fn() -> fugit::Instant<u32, 2, 3>>::new(|| {
            fugit::Instant::<u32, 2, 3>::from_ticks(0)
        });
        assert_eq!(uneven.err(), Some(ConfigError::TickRate));
        let slow = FugitClock::<5, 1, fn() -> fugit::Instant<u32, 5, 1>>::new(|| {
            fugit::Instant::<u32, 5, 1>::from_ticks(0)
        });
        assert_eq!(slow.err(), Some(ConfigError::TickRate), "a tick of 5 s");
    }

    #[test]
    fn tick_clock_converts_exactly() {
        let counter = Cell::new(0u32);
        assert!(TickClock::new(|| counter.get(), 16, 0).is_err());
        assert!(TickClock::new(|| counter.get(), 0, 1).is_err());
        let clock = TickClock::new(|| counter.get(), 16, 1_000).unwrap();
        assert_eq!(clock.hz(), 1_000);
        counter.set(30_000);
        assert_eq!(clock.now(), Instant::from_millis(30_000));
        counter.set(60_000);
        clock.tick();
        counter.set(1);
        assert_eq!(clock.now(), Instant::from_millis(65_537));
        // 3 ticks at 32 kHz: 91.55 µs, rounded down.
        let rtc = TickClock::new(|| counter.get(), 32, 32_768).unwrap();
        counter.set(3);
        assert_eq!(rtc.now(), Instant::from_micros(91));
        counter.set(32_768 * 3 + 3);
        assert_eq!(rtc.now(), Instant::from_micros(3_000_091));
        let fastest = TickClock::new(|| counter.get(), 32, u32::MAX).unwrap();
        counter.set(u32::MAX - 1);
        assert_eq!(fastest.now(), Instant::from_micros(999_999));
        counter.set(u32::MAX);
        assert_eq!(fastest.now(), Instant::from_secs(1));
    }

    #[test]
    fn ticking_keeps_every_wrap_while_nothing_reads_the_clock() {
        // A 16-bit counter at 1 kHz wraps every 65.536 s; a timer interrupt
        // ticks the clock every 20 s, and the clock is read after 10 wraps.
        let counter = Cell::new(0u32);
        let clock = TickClock::new(|| counter.get(), 16, 1_000).unwrap();
        for ms in (20_000..=640_000).step_by(20_000) {
            counter.set(ms);
            clock.tick();
        }
        counter.set(655_360 + 5);
        assert_eq!(clock.now(), Instant::from_millis(655_365));
    }
}
