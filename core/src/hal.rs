//! embedded-hal 1.0 wrappers: an I2C bus and an SPI device whose every
//! transaction passes through a breaker and fails fast while it is open.
//!
//! ```
//! use breakerbox_core::hal::{BreakerI2c, HalError};
//! use breakerbox_core::{Breaker, Config, ConsecutiveFailures, ManualClock, RejectReason};
//! use embedded_hal::i2c::{ErrorKind, ErrorType, I2c, NoAcknowledgeSource, Operation};
//!
//! /// A sensor that is not there: every transaction is NACKed.
//! struct AbsentSensor;
//! impl ErrorType for AbsentSensor {
//!     type Error = ErrorKind;
//! }
//! impl I2c for AbsentSensor {
//!     fn transaction(&mut self, _: u8, _: &mut [Operation<'_>]) -> Result<(), ErrorKind> {
//!         Err(ErrorKind::NoAcknowledge(NoAcknowledgeSource::Address))
//!     }
//! }
//!
//! let clock = ManualClock::new();
//! let breaker = Breaker::new(Config::DEFAULT, ConsecutiveFailures::new(3).unwrap(), &clock);
//! let mut bus = BreakerI2c::new(AbsentSensor, breaker);
//! let mut reading = [0u8; 2];
//! for _ in 0..3 {
//!     assert!(matches!(bus.read(0x48, &mut reading), Err(HalError::Bus(_))));
//! }
//! // Open: the bus is not touched.
//! assert!(matches!(bus.read(0x48, &mut reading), Err(HalError::Rejected(r)) if r.reason == RejectReason::Open));
//! ```

use core::fmt;

use embedded_hal::i2c::{self, AddressMode, I2c};
use embedded_hal::spi::{self, SpiDevice};

use crate::breaker::{Admission, Breaker, Outcome, Permit, Rejected, Report, Transition};
use crate::config::Settings;
use crate::policy::TripPolicy;
use crate::shared::{SharedBreaker, Sharing};
use crate::time::Clock;

/// What a bus wrapper needs of a breaker: admit a transaction, report how
/// it went, each with the transition it caused. Implemented by an owned or
/// borrowed [`Breaker`] and by a `&`[`SharedBreaker`] (to share one breaker
/// with an interrupt handler).
pub trait Gate {
    /// Asks to run one transaction: the breaker's [`Admission`].
    fn admit(&mut self) -> Admission;

    /// Reports the transaction's outcome: the breaker's [`Report`].
    fn report(&mut self, permit: Permit, outcome: Outcome) -> Report;
}

impl<P: TripPolicy, C: Clock, const H: usize, S: Settings> Gate for Breaker<P, C, H, S> {
    fn admit(&mut self) -> Admission {
        self.try_acquire()
    }
    fn report(&mut self, permit: Permit, outcome: Outcome) -> Report {
        self.record(permit, outcome)
    }
}

impl<P: TripPolicy, C: Clock, const H: usize, S: Settings> Gate for &mut Breaker<P, C, H, S> {
    fn admit(&mut self) -> Admission {
        self.try_acquire()
    }
    fn report(&mut self, permit: Permit, outcome: Outcome) -> Report {
        self.record(permit, outcome)
    }
}

impl<P: TripPolicy, C: Clock, const H: usize, S: Sharing, Cfg: Settings> Gate
    for &SharedBreaker<P, C, H, S, Cfg>
{
    fn admit(&mut self) -> Admission {
        self.try_acquire()
    }
    fn report(&mut self, permit: Permit, outcome: Outcome) -> Report {
        self.record(permit, outcome)
    }
}

/// The transition hook of a wrapper made without one: hears nothing.
fn no_hook(_: &Transition) {}

/// The hook type of a wrapper made without one.
pub type NoHook = fn(&Transition);

/// The error of a wrapped bus: the breaker's rejection, or the bus's own
/// error. Implements the embedded-hal `Error` traits, so drivers written
/// against `I2c`/`SpiDevice` work unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum HalError<E> {
    /// The breaker did not let the transaction through; the bus was not touched.
    Rejected(Rejected),
    /// The bus's error.
    Bus(E),
}

impl<E: fmt::Debug> fmt::Display for HalError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HalError::Rejected(r) => write!(f, "bus transaction rejected: {r}"),
            HalError::Bus(e) => write!(f, "bus error: {e:?}"),
        }
    }
}

impl<E: fmt::Debug> core::error::Error for HalError<E> {}

impl<E: i2c::Error> i2c::Error for HalError<E> {
    /// The bus's kind; `Other` for a rejection (nothing went on the wire).
    fn kind(&self) -> i2c::ErrorKind {
        match self {
            HalError::Rejected(_) => i2c::ErrorKind::Other,
            HalError::Bus(e) => e.kind(),
        }
    }
}

impl<E: spi::Error> spi::Error for HalError<E> {
    /// The device's kind; `Other` for a rejection (nothing went on the wire).
    fn kind(&self) -> spi::ErrorKind {
        match self {
            HalError::Rejected(_) => spi::ErrorKind::Other,
            HalError::Bus(e) => e.kind(),
        }
    }
}

/// The default I2C classifier: a NACK (an absent or hung device), a bus
/// error or an overrun is a failure; a lost arbitration (another master won
/// the bus) says nothing about the device and is ignored.
pub fn i2c_outcome(kind: i2c::ErrorKind) -> Outcome {
    match kind {
        i2c::ErrorKind::ArbitrationLoss => Outcome::Ignored,
        _ => Outcome::Failure,
    }
}

/// The default SPI classifier: every device error is a failure.
pub fn spi_outcome(_kind: spi::ErrorKind) -> Outcome {
    Outcome::Failure
}

/// Runs one bus operation through `gate`, telling `hook` of every
/// transition its admission and its report caused.
fn guarded<B, R, E, K>(
    gate: &mut impl Gate,
    hook: &mut impl FnMut(&Transition),
    bus: &mut B,
    classify: impl FnOnce(K) -> Outcome,
    kind: impl FnOnce(&E) -> K,
    op: impl FnOnce(&mut B) -> Result<R, E>,
) -> Result<R, HalError<E>> {
    let admission = gate.admit();
    if let Some(t) = &admission.transition {
        hook(t);
    }
    let permit = admission.result.map_err(HalError::Rejected)?;
    let result = op(bus);
    let outcome = match &result {
        Ok(_) => Outcome::Success,
        Err(e) => classify(kind(e)),
    };
    if let Some(t) = &gate.report(permit, outcome).transition {
        hook(t);
    }
    result.map_err(HalError::Bus)
}

/// An I2C bus behind a breaker: every `read`, `write`, `write_read` and
/// `transaction` is admitted by the breaker and reported to it, with bus
/// errors classified by `F` (default [`i2c_outcome`]). Every transition a
/// transaction causes (at its admission or its report) goes to the hook
/// `T`, if one was given with [`on_transition`](Self::on_transition).
///
/// ```
/// use core::cell::Cell;
/// use breakerbox_core::hal::BreakerI2c;
/// use breakerbox_core::{Breaker, Config, ConsecutiveFailures, ManualClock, State};
/// use embedded_hal::i2c::{ErrorKind, ErrorType, I2c, NoAcknowledgeSource, Operation};
///
/// struct AbsentSensor;
/// impl ErrorType for AbsentSensor {
///     type Error = ErrorKind;
/// }
/// impl I2c for AbsentSensor {
///     fn transaction(&mut self, _: u8, _: &mut [Operation<'_>]) -> Result<(), ErrorKind> {
///         Err(ErrorKind::NoAcknowledge(NoAcknowledgeSource::Address))
///     }
/// }
///
/// let tripped = Cell::new(false);
/// let clock = ManualClock::new();
/// let breaker = Breaker::new(Config::DEFAULT, ConsecutiveFailures::new(1).unwrap(), &clock);
/// let mut bus = BreakerI2c::new(AbsentSensor, breaker)
///     .on_transition(|t| tripped.set(t.to == State::Open));
/// let _ = bus.write(0x48, &[0x01]);
/// assert!(tripped.get());
/// ```
pub struct BreakerI2c<BUS, G, F = fn(i2c::ErrorKind) -> Outcome, T = NoHook> {
    bus: BUS,
    gate: G,
    classify: F,
    on_transition: T,
}

impl<BUS, G: Gate> BreakerI2c<BUS, G> {
    /// Wraps `bus`, with the default classifier.
    pub fn new(bus: BUS, gate: G) -> Self {
        BreakerI2c::with_classifier(bus, gate, i2c_outcome)
    }
}

impl<BUS, G: Gate, F: Fn(i2c::ErrorKind) -> Outcome> BreakerI2c<BUS, G, F> {
    /// Wraps `bus`, with `classify` deciding what each bus error counts as.
    pub fn with_classifier(bus: BUS, gate: G, classify: F) -> Self {
        BreakerI2c {
            bus,
            gate,
            classify,
            on_transition: no_hook,
        }
    }
}

impl<BUS, G: Gate, F: Fn(i2c::ErrorKind) -> Outcome, T: FnMut(&Transition)>
    BreakerI2c<BUS, G, F, T>
{
    /// The same wrapper, telling `hook` of every transition a transaction
    /// causes, in order, as it happens (no allocation; the hook runs in the
    /// caller's context, after the breaker's lock is released).
    pub fn on_transition<U: FnMut(&Transition)>(self, hook: U) -> BreakerI2c<BUS, G, F, U> {
        BreakerI2c {
            bus: self.bus,
            gate: self.gate,
            classify: self.classify,
            on_transition: hook,
        }
    }

    /// The bus.
    pub fn inner(&self) -> &BUS {
        &self.bus
    }

    /// The bus, mutably (transactions made here bypass the breaker).
    pub fn inner_mut(&mut self) -> &mut BUS {
        &mut self.bus
    }

    /// The breaker (or reference to it).
    pub fn gate(&self) -> &G {
        &self.gate
    }

    /// The bus and the breaker back.
    pub fn into_inner(self) -> (BUS, G) {
        (self.bus, self.gate)
    }
}

impl<BUS: i2c::ErrorType, G, F, T> i2c::ErrorType for BreakerI2c<BUS, G, F, T> {
    type Error = HalError<BUS::Error>;
}

impl<A, BUS, G, F, T> I2c<A> for BreakerI2c<BUS, G, F, T>
where
    A: AddressMode,
    BUS: I2c<A>,
    G: Gate,
    F: Fn(i2c::ErrorKind) -> Outcome,
    T: FnMut(&Transition),
{
    fn read(&mut self, address: A, read: &mut [u8]) -> Result<(), Self::Error> {
        let kind = |e: &BUS::Error| i2c::Error::kind(e);
        let hook = &mut self.on_transition;
        guarded(
            &mut self.gate,
            hook,
            &mut self.bus,
            &self.classify,
            kind,
            |bus| bus.read(address, read),
        )
    }

    fn write(&mut self, address: A, write: &[u8]) -> Result<(), Self::Error> {
        let kind = |e: &BUS::Error| i2c::Error::kind(e);
        let hook = &mut self.on_transition;
        guarded(
            &mut self.gate,
            hook,
            &mut self.bus,
            &self.classify,
            kind,
            |bus| bus.write(address, write),
        )
    }

    fn write_read(&mut self, address: A, write: &[u8], read: &mut [u8]) -> Result<(), Self::Error> {
        let kind = |e: &BUS::Error| i2c::Error::kind(e);
        let hook = &mut self.on_transition;
        guarded(
            &mut self.gate,
            hook,
            &mut self.bus,
            &self.classify,
            kind,
            |bus| bus.write_read(address, write, read),
        )
    }

    fn transaction(
        &mut self,
        address: A,
        operations: &mut [i2c::Operation<'_>],
    ) -> Result<(), Self::Error> {
        let kind = |e: &BUS::Error| i2c::Error::kind(e);
        let hook = &mut self.on_transition;
        guarded(
            &mut self.gate,
            hook,
            &mut self.bus,
            &self.classify,
            kind,
            |bus| bus.transaction(address, operations),
        )
    }
}

/// An SPI device behind a breaker: every transaction is admitted by the
/// breaker and reported to it, with device errors classified by `F`
/// (default [`spi_outcome`]); every transition a transaction causes goes
/// to the hook `T`, as for [`BreakerI2c`].
pub struct BreakerSpi<DEV, G, F = fn(spi::ErrorKind) -> Outcome, T = NoHook> {
    device: DEV,
    gate: G,
    classify: F,
    on_transition: T,
}

impl<DEV, G: Gate> BreakerSpi<DEV, G> {
    /// Wraps `device`, with the default classifier.
    pub fn new(device: DEV, gate: G) -> Self {
        BreakerSpi::with_classifier(device, gate, spi_outcome)
    }
}

impl<DEV, G: Gate, F: Fn(spi::ErrorKind) -> Outcome> BreakerSpi<DEV, G, F> {
    /// Wraps `device`, with `classify` deciding what each error counts as.
    pub fn with_classifier(device: DEV, gate: G, classify: F) -> Self {
        BreakerSpi {
            device,
            gate,
            classify,
            on_transition: no_hook,
        }
    }
}

impl<DEV, G: Gate, F: Fn(spi::ErrorKind) -> Outcome, T: FnMut(&Transition)>
    BreakerSpi<DEV, G, F, T>
{
    /// The same wrapper, telling `hook` of every transition a transaction
    /// causes (see [`BreakerI2c::on_transition`]).
    pub fn on_transition<U: FnMut(&Transition)>(self, hook: U) -> BreakerSpi<DEV, G, F, U> {
        BreakerSpi {
            device: self.device,
            gate: self.gate,
            classify: self.classify,
            on_transition: hook,
        }
    }

    /// The device.
    pub fn inner(&self) -> &DEV {
        &self.device
    }

    /// The device, mutably (transactions made here bypass the breaker).
    pub fn inner_mut(&mut self) -> &mut DEV {
        &mut self.device
    }

    /// The breaker (or reference to it).
    pub fn gate(&self) -> &G {
        &self.gate
    }

    /// The device and the breaker back.
    pub fn into_inner(self) -> (DEV, G) {
        (self.device, self.gate)
    }
}

impl<DEV: spi::ErrorType, G, F, T> spi::ErrorType for BreakerSpi<DEV, G, F, T> {
    type Error = HalError<DEV::Error>;
}

impl<Word, DEV, G, F, T> SpiDevice<Word> for BreakerSpi<DEV, G, F, T>
where
    Word: Copy + 'static,
    DEV: SpiDevice<Word>,
    G: Gate,
    F: Fn(spi::ErrorKind) -> Outcome,
    T: FnMut(&Transition),
{
    fn transaction(
        &mut self,
        operations: &mut [spi::Operation<'_, Word>],
    ) -> Result<(), Self::Error> {
        let kind = |e: &DEV::Error| spi::Error::kind(e);
        guarded(
            &mut self.gate,
            &mut self.on_transition,
            &mut self.device,
            &self.classify,
            kind,
            |device| device.transaction(operations),
        )
    }
}

impl<BUS, G, F, T> fmt::Debug for BreakerI2c<BUS, G, F, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreakerI2c").finish_non_exhaustive()
    }
}

impl<DEV, G, F, T> fmt::Debug for BreakerSpi<DEV, G, F, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BreakerSpi").finish_non_exhaustive()
    }
}

#[cfg(feature = "defmt")]
impl<BUS, G, F, T> defmt::Format for BreakerI2c<BUS, G, F, T> {
    fn format(&self, f: defmt::Formatter) {
        defmt::write!(f, "BreakerI2c")
    }
}

#[cfg(feature = "defmt")]
impl<DEV, G, F, T> defmt::Format for BreakerSpi<DEV, G, F, T> {
    fn format(&self, f: defmt::Formatter) {
        defmt::write!(f, "BreakerSpi")
    }
}
