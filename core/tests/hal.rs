//! The embedded-hal wrappers on the host, against embedded-hal-mock.
#![cfg(feature = "embedded-hal")]

use breakerbox_core::hal::{i2c_outcome, spi_outcome, BreakerI2c, BreakerSpi, Gate, HalError};
use breakerbox_core::{
    valid, Breaker, Config, ConsecutiveFailures, Instant, ManualClock, Outcome, RejectReason,
    SharedBreaker, State, TripRule,
};
use embedded_hal::i2c::{self, ErrorKind, I2c, NoAcknowledgeSource};

/// A clock that stands still: the tests' time never moves.
#[derive(Clone, Copy, Debug, Default)]
struct Frozen;
impl breakerbox_core::Clock for Frozen {
    fn now(&self) -> breakerbox_core::Instant {
        breakerbox_core::Instant::ZERO
    }
}
use embedded_hal::spi::{self, SpiDevice};
use embedded_hal_mock::eh1::i2c::{Mock as I2cMock, Transaction as I2cTransaction};
use embedded_hal_mock::eh1::spi::{Mock as SpiMock, Transaction as SpiTransaction};

const SENSOR: u8 = 0x48;
const NACK: ErrorKind = ErrorKind::NoAcknowledge(NoAcknowledgeSource::Address);

fn breaker(clock: &ManualClock, threshold: u32) -> Breaker<ConsecutiveFailures, &ManualClock> {
    Breaker::new(
        Config::DEFAULT,
        ConsecutiveFailures::new(threshold).unwrap(),
        clock,
    )
}

#[test]
fn i2c_trips_on_nacks_fails_fast_and_recovers() {
    let clock = ManualClock::new();
    // The bus sees exactly these: two NACKed reads, then (after the open
    // state) one good read. The rejected read never reaches it.
    let expectations = [
        I2cTransaction::read(SENSOR, vec![0, 0]).with_error(NACK),
        I2cTransaction::read(SENSOR, vec![0, 0]).with_error(NACK),
        I2cTransaction::write_read(SENSOR, vec![0x01], vec![0x12, 0x34]),
    ];
    let mut bus = BreakerI2c::new(I2cMock::new(&expectations), breaker(&clock, 2));
    let mut buf = [0u8; 2];
    for _ in 0..2 {
        let err = bus.read(SENSOR, &mut buf).unwrap_err();
        assert!(matches!(err, HalError::Bus(_)));
        assert_eq!(
            i2c::Error::kind(&err),
            NACK,
            "the bus's own kind comes through"
        );
    }
    let err = bus.read(SENSOR, &mut buf).unwrap_err();
    let HalError::Rejected(rejected) = err else {
        panic!("expected a rejection, got {err:?}")
    };
    assert_eq!(rejected.reason, RejectReason::Open);
    assert_eq!(i2c::Error::kind(&err), ErrorKind::Other);
    assert!(err.to_string().contains("rejected"));

    clock.advance(breakerbox_core::Duration::from_secs(5));
    bus.write_read(SENSOR, &[0x01], &mut buf).unwrap();
    assert_eq!(buf, [0x12, 0x34]);
    let (mut mock, breaker) = bus.into_inner();
    assert_eq!(breaker.state(), State::Closed);
    mock.done();
}

#[test]
fn i2c_arbitration_loss_is_ignored_by_default_and_classifiers_decide() {
    assert_eq!(i2c_outcome(ErrorKind::ArbitrationLoss), Outcome::Ignored);
    assert_eq!(i2c_outcome(ErrorKind::Bus), Outcome::Failure);
    assert_eq!(i2c_outcome(NACK), Outcome::Failure);
    let clock = ManualClock::new();
    let lost = [
        I2cTransaction::write(SENSOR, vec![1]).with_error(ErrorKind::ArbitrationLoss),
        I2cTransaction::write(SENSOR, vec![1]).with_error(ErrorKind::ArbitrationLoss),
    ];
    let mut bus = BreakerI2c::new(I2cMock::new(&lost), breaker(&clock, 1));
    assert!(bus.write(SENSOR, &[1]).is_err());
    assert!(bus.write(SENSOR, &[1]).is_err());
    let (mut mock, b) = bus.into_inner();
    assert_eq!((b.state(), b.counts().ignored), (State::Closed, 2));
    mock.done();

    // A classifier that treats a NACK as "device asleep": ignored.
    let nacks = [I2cTransaction::write(SENSOR, vec![1]).with_error(NACK)];
    let asleep = |kind| match kind {
        ErrorKind::NoAcknowledge(_) => Outcome::Ignored,
        other => i2c_outcome(other),
    };
    let mut bus = BreakerI2c::with_classifier(I2cMock::new(&nacks), breaker(&clock, 1), asleep);
    assert!(bus.write(SENSOR, &[1]).is_err());
    assert_eq!(bus.gate().state(), State::Closed);
    bus.inner_mut().done();
}

#[test]
fn i2c_transaction_goes_through_whole() {
    let clock = ManualClock::new();
    let expectations = [
        I2cTransaction::transaction_start(SENSOR),
        I2cTransaction::write(SENSOR, vec![0x0F]),
        I2cTransaction::read(SENSOR, vec![0xAA]),
        I2cTransaction::transaction_end(SENSOR),
    ];
    let mut bus = BreakerI2c::new(I2cMock::new(&expectations), breaker(&clock, 1));
    let mut read = [0u8];
    let mut ops = [
        i2c::Operation::Write(&[0x0F]),
        i2c::Operation::Read(&mut read),
    ];
    bus.transaction(SENSOR, &mut ops).unwrap();
    assert_eq!(read, [0xAA]);
    assert_eq!(bus.gate().counts().successes, 1);
    let (mut mock, _) = bus.into_inner();
    mock.done();
}

#[test]
fn i2c_through_a_shared_breaker() {
    static SHARED: SharedBreaker<ConsecutiveFailures, Frozen> =
        SharedBreaker::new(Config::DEFAULT, valid!(ConsecutiveFailures::new(1)), Frozen);
    let expectations = [I2cTransaction::write(SENSOR, vec![7]).with_error(ErrorKind::Bus)];
    let mut bus = BreakerI2c::new(I2cMock::new(&expectations), &SHARED);
    assert!(matches!(bus.write(SENSOR, &[7]), Err(HalError::Bus(_))));
    assert!(matches!(
        bus.write(SENSOR, &[7]),
        Err(HalError::Rejected(_))
    ));
    assert_eq!(SHARED.state(), State::Open);
    bus.inner_mut().done();
    let _ = SHARED.try_acquire_at(Instant::ZERO);
}

/// An SPI device that fails every transaction with `kind`.
struct FailingDevice(spi::ErrorKind, u32);

impl spi::ErrorType for FailingDevice {
    type Error = spi::ErrorKind;
}

impl SpiDevice for FailingDevice {
    fn transaction(&mut self, _: &mut [spi::Operation<'_, u8>]) -> Result<(), spi::ErrorKind> {
        self.1 += 1;
        Err(self.0)
    }
}

#[test]
fn spi_passes_transactions_and_fails_fast_when_open() {
    let clock = ManualClock::new();
    let expectations = [
        SpiTransaction::transaction_start(),
        SpiTransaction::write_vec(vec![0x9F]),
        SpiTransaction::read_vec(vec![0xEF, 0x40]),
        SpiTransaction::transaction_end(),
    ];
    let mut flash = BreakerSpi::new(SpiMock::new(&expectations), breaker(&clock, 2));
    let mut id = [0u8; 2];
    flash
        .transaction(&mut [
            spi::Operation::Write(&[0x9F]),
            spi::Operation::Read(&mut id),
        ])
        .unwrap();
    assert_eq!(id, [0xEF, 0x40]);
    flash.inner_mut().done();

    assert_eq!(spi_outcome(spi::ErrorKind::ModeFault), Outcome::Failure);
    let mut dead = BreakerSpi::new(
        FailingDevice(spi::ErrorKind::ChipSelectFault, 0),
        breaker(&clock, 2),
    );
    for _ in 0..2 {
        let err = dead.write(&[1]).unwrap_err();
        assert_eq!(spi::Error::kind(&err), spi::ErrorKind::ChipSelectFault);
    }
    let err = dead.write(&[1]).unwrap_err();
    assert!(matches!(err, HalError::Rejected(_)));
    assert_eq!(spi::Error::kind(&err), spi::ErrorKind::Other);
    assert_eq!(
        dead.inner().1,
        2,
        "the rejected write never reached the device"
    );
    let ignore_all = |_| Outcome::Ignored;
    let mut tolerant = BreakerSpi::with_classifier(
        FailingDevice(spi::ErrorKind::Overrun, 0),
        breaker(&clock, 1),
        ignore_all,
    );
    let _ = tolerant.write(&[1]);
    let _ = tolerant.write(&[1]);
    assert_eq!(tolerant.inner().1, 2);
    let (_, b) = tolerant.into_inner();
    assert_eq!(b.state(), State::Closed);
}

#[test]
fn gates_of_every_kind() {
    fn admit_and_fail(mut gate: impl Gate) {
        let permit = gate.admit().result.unwrap();
        let report = gate.report(permit, Outcome::Failure);
        assert_eq!(report.transition.map(|t| t.to), Some(State::Open));
    }
    let clock = ManualClock::new();
    let mut owned = breaker(&clock, 1);
    admit_and_fail(&mut owned);
    assert_eq!(owned.state(), State::Open);
    let shared = SharedBreaker::<ConsecutiveFailures, &ManualClock>::new(
        Config::DEFAULT,
        ConsecutiveFailures::new(1).unwrap(),
        &clock,
    );
    admit_and_fail(&shared);
    assert_eq!(shared.state(), State::Open);
    admit_and_fail(breaker(&clock, 1));
}

#[test]
fn every_transition_a_transaction_causes_reaches_the_hook() {
    use std::cell::RefCell;
    let clock = ManualClock::new();
    let heard = RefCell::new(Vec::new());
    let expectations = [
        I2cTransaction::write(SENSOR, vec![1]).with_error(NACK),
        I2cTransaction::write(SENSOR, vec![1]).with_error(NACK),
        I2cTransaction::write(SENSOR, vec![1]),
    ];
    let mut bus = BreakerI2c::new(I2cMock::new(&expectations), breaker(&clock, 1))
        .on_transition(|t| heard.borrow_mut().push((t.from, t.to, t.reason)));
    let _ = bus.write(SENSOR, &[1]); // trips at its report
    let _ = bus.write(SENSOR, &[1]); // rejected: nothing changes
    clock.advance(breakerbox_core::Duration::from_secs(5));
    let _ = bus.write(SENSOR, &[1]); // half-open at its admission, open again at its report
    clock.advance(breakerbox_core::Duration::from_secs(10));
    bus.write(SENSOR, &[1]).unwrap(); // half-open, then closed
    use breakerbox_core::TransitionReason::*;
    assert_eq!(
        *heard.borrow(),
        [
            (
                State::Closed,
                State::Open,
                Tripped(TripRule::ConsecutiveFailures)
            ),
            (State::Open, State::HalfOpen, OpenElapsed),
            (State::HalfOpen, State::Open, ProbeFailed),
            (State::Open, State::HalfOpen, OpenElapsed),
            (State::HalfOpen, State::Closed, ProbesSucceeded),
        ]
    );
    bus.inner_mut().done();

    let spi_heard = RefCell::new(0);
    let mut dead = BreakerSpi::new(
        FailingDevice(spi::ErrorKind::Overrun, 0),
        breaker(&clock, 1),
    )
    .on_transition(|_| *spi_heard.borrow_mut() += 1);
    let _ = dead.write(&[1]);
    assert_eq!(*spi_heard.borrow(), 1);
    assert_eq!(dead.gate().state(), State::Open);
}
