//! breakerbox on a real Cortex-M core under QEMU: a flaky I2C sensor behind
//! `BreakerI2c`, one `SharedBreaker` touched by the main loop and by the
//! SysTick interrupt, time from SysTick ticks extended by `SharedTickClock`,
//! and an absent EEPROM behind a `Breaker` configured at compile time.
//! Runs a sequence of checks, prints `firmware: N passed, M failed` and
//! exits QEMU with the result.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use breakerbox_core::hal::{BreakerI2c, HalError};
use breakerbox_core::{
    valid, Breaker, Clock, Config, ConsecutiveFailures, Duration, Fixed, FixedConfig, Instant,
    Outcome, RejectReason, SharedBreaker, SharedTickClock, State, TransitionReason, TripRule,
};
use cortex_m::peripheral::syst::SystClkSource;
use cortex_m_rt::{entry, exception, ExceptionFrame};
use cortex_m_semihosting::{debug, hprintln};
use embedded_hal::i2c::{ErrorKind, ErrorType, I2c, NoAcknowledgeSource, Operation};

/// SysTick interrupts per second.
const TICK_HZ: u32 = 1_000;
/// The core clock QEMU models for each board.
#[cfg(armv7em)]
const CORE_HZ: u32 = 25_000_000;
#[cfg(not(armv7em))]
const CORE_HZ: u32 = 16_000_000;

/// Milliseconds since boot, counted by SysTick. Starts just below a 16-bit
/// wrap, so the clock's extension is exercised within the first second.
static TICKS: AtomicU32 = AtomicU32::new(65_500);
/// How often the SysTick handler used the breaker.
static ISR_ADMITTED: AtomicU32 = AtomicU32::new(0);
/// Transitions the SysTick handler's own calls caused.
static ISR_TRANSITIONS: AtomicU32 = AtomicU32::new(0);
static ISR_REJECTED: AtomicU32 = AtomicU32::new(0);

/// The hardware counter as a 16-bit timer would show it.
fn read_counter() -> u32 {
    TICKS.load(Ordering::Relaxed) & 0xFFFF
}

static CLOCK: SharedTickClock<fn() -> u32> = valid!(SharedTickClock::new(
    read_counter as fn() -> u32,
    16,
    TICK_HZ
));

const CONFIG: Config = valid!(Config::builder()
    .exponential_backoff(
        core::time::Duration::from_millis(20),
        core::time::Duration::from_millis(80),
        2,
        1,
    )
    .probe_lease(core::time::Duration::from_millis(50))
    .build());

const POLICY: ConsecutiveFailures = valid!(ConsecutiveFailures::new(3));

const POLICY_EEPROM: ConsecutiveFailures = valid!(ConsecutiveFailures::new(2));

static BREAKER: SharedBreaker<ConsecutiveFailures, &SharedTickClock<fn() -> u32>> =
    SharedBreaker::new(CONFIG, POLICY, &CLOCK);

/// Whether the simulated sensor answers.
static SENSOR_PRESENT: AtomicBool = AtomicBool::new(true);

/// A temperature sensor at 0x48 that NACKs while unplugged, and counts the
/// transactions that reached it.
struct FlakySensor {
    transactions: u32,
}

impl ErrorType for FlakySensor {
    type Error = ErrorKind;
}

impl I2c for FlakySensor {
    fn transaction(
        &mut self,
        address: u8,
        operations: &mut [Operation<'_>],
    ) -> Result<(), ErrorKind> {
        self.transactions += 1;
        if address != 0x48 || !SENSOR_PRESENT.load(Ordering::Relaxed) {
            return Err(ErrorKind::NoAcknowledge(NoAcknowledgeSource::Address));
        }
        for op in operations {
            if let Operation::Read(buf) = op {
                buf.fill(0x19); // 25 °C
            }
        }
        Ok(())
    }
}

/// An EEPROM at 0x50 that is not fitted: every transaction is NACKed.
struct AbsentEeprom {
    transactions: u32,
}

impl ErrorType for AbsentEeprom {
    type Error = ErrorKind;
}

impl I2c for AbsentEeprom {
    fn transaction(&mut self, _: u8, _: &mut [Operation<'_>]) -> Result<(), ErrorKind> {
        self.transactions += 1;
        Err(ErrorKind::NoAcknowledge(NoAcknowledgeSource::Address))
    }
}

/// The EEPROM's breaker, configured at compile time: the features this
/// configuration leaves off cost no flash, nor do the counts it does not
/// keep (`METRICS = false`).
struct EepromBreaker;
impl FixedConfig for EepromBreaker {
    const CONFIG: Config = valid!(Config::builder()
        .open_duration(core::time::Duration::from_millis(10))
        .build());
    const METRICS: bool = false;
}

/// The EEPROM's breaker: no history (`H = 0`; the bus wrapper's hook hears
/// each transition), time from the shared clock.
type EepromGate =
    Breaker<ConsecutiveFailures, &'static SharedTickClock<fn() -> u32>, 0, Fixed<EepromBreaker>>;

#[exception]
fn SysTick() {
    TICKS.store(
        TICKS.load(Ordering::Relaxed).wrapping_add(1),
        Ordering::Relaxed,
    );
    // Keep the 16-bit count's wraps even while the breaker, closed, reads
    // no time: the clock must be read more often than every half wrap.
    CLOCK.tick();
    // The interrupt handler uses the same breaker as the main loop: a
    // housekeeping call that reports nothing about the sensor's health.
    let admission = BREAKER.try_acquire();
    let mut caused = u32::from(admission.transition.is_some());
    match admission.result {
        Ok(permit) => {
            caused += u32::from(
                BREAKER
                    .record(permit, Outcome::Ignored)
                    .transition
                    .is_some(),
            );
            ISR_ADMITTED.store(ISR_ADMITTED.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        }
        Err(_) => ISR_REJECTED.store(ISR_REJECTED.load(Ordering::Relaxed) + 1, Ordering::Relaxed),
    }
    ISR_TRANSITIONS.store(
        ISR_TRANSITIONS.load(Ordering::Relaxed) + caused,
        Ordering::Relaxed,
    );
}

#[exception]
unsafe fn HardFault(_frame: &ExceptionFrame) -> ! {
    hprintln!("firmware: hard fault");
    debug::exit(debug::EXIT_FAILURE);
    loop {
        cortex_m::asm::wfi();
    }
}

#[cfg(not(feature = "defmt"))]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    hprintln!("firmware: panic: {}", info);
    debug::exit(debug::EXIT_FAILURE);
    loop {
        cortex_m::asm::wfi();
    }
}

#[cfg(feature = "defmt")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    defmt::error!("firmware: panic");
    debug::exit(debug::EXIT_FAILURE);
    loop {
        cortex_m::asm::wfi();
    }
}

/// Busy-waits until the breaker's clock reaches `t`; false if SysTick seems
/// stuck (the loop gives up rather than hang).
fn wait_until(t: Instant) -> bool {
    for _ in 0..50_000_000u32 {
        if CLOCK.now() >= t {
            return true;
        }
        cortex_m::asm::nop();
    }
    false
}

struct Checks {
    passed: u32,
    failed: u32,
}

impl Checks {
    fn check(&mut self, name: &str, ok: bool) {
        if ok {
            self.passed += 1;
            hprintln!("  ok    {}", name);
        } else {
            self.failed += 1;
            hprintln!("  FAIL  {}", name);
        }
    }
}

/// Transitions the sensor's transactions caused, as its wrapper's hook
/// heard them.
static SENSOR_TRANSITIONS: AtomicU32 = AtomicU32::new(0);

/// The sensor wrapper's transition hook: logs and counts each one.
fn log_transition(t: &breakerbox_core::Transition) {
    SENSOR_TRANSITIONS.store(
        SENSOR_TRANSITIONS.load(Ordering::Relaxed) + 1,
        Ordering::Relaxed,
    );
    #[cfg(feature = "defmt")]
    defmt::info!("breaker {} -> {} ({})", t.from, t.to, t.reason);
    #[cfg(not(feature = "defmt"))]
    hprintln!(
        "        breaker {} -> {} ({:?}) at {}",
        t.from,
        t.to,
        t.reason,
        t.at
    );
}

#[entry]
fn main() -> ! {
    let mut cp = cortex_m::Peripherals::take().expect("first and only take");
    cp.SYST.set_clock_source(SystClkSource::Core);
    cp.SYST.set_reload(CORE_HZ / TICK_HZ - 1);
    cp.SYST.clear_current();
    cp.SYST.enable_interrupt();
    cp.SYST.enable_counter();

    hprintln!(
        "firmware: breakerbox on {}",
        if cfg!(armv7em) {
            "Cortex-M4F (mps2-an386)"
        } else {
            "Cortex-M0 (microbit)"
        }
    );
    hprintln!(
        "firmware: compare-and-swap {}",
        if cfg!(armv7em) {
            "native"
        } else if cfg!(portable_atomic_unsafe_assume_single_core) {
            "by portable-atomic, single core (interrupts masked)"
        } else {
            "by portable-atomic's critical-section fallback"
        }
    );
    let mut checks = Checks {
        passed: 0,
        failed: 0,
    };
    let mut sensor =
        BreakerI2c::new(FlakySensor { transactions: 0 }, &BREAKER).on_transition(log_transition);
    let mut reading = [0u8; 2];
    let start = CLOCK.now();

    // 1. Healthy: reads go through.
    let healthy = (0..10).all(|_| sensor.write_read(0x48, &[0x00], &mut reading).is_ok());
    checks.check(
        "healthy sensor: 10 reads through the breaker",
        healthy && reading == [0x19, 0x19],
    );

    // 2. The interrupt handler shares the breaker.
    let waited = wait_until(start.saturating_add(Duration::from_millis(5)));
    checks.check(
        "SysTick handler used the shared breaker",
        waited && ISR_ADMITTED.load(Ordering::Relaxed) > 0,
    );

    // 3. Unplugged: three NACKs trip it.
    SENSOR_PRESENT.store(false, Ordering::Relaxed);
    let nacks = (0..3)
        .filter(|_| {
            matches!(
                sensor.read(0x48, &mut reading),
                Err(HalError::Bus(ErrorKind::NoAcknowledge(_)))
            )
        })
        .count();
    let tripped = BREAKER.last_transition();
    checks.check(
        "three NACKs trip the breaker",
        nacks == 3
            && BREAKER.state() == State::Open
            && tripped.map(|t| t.reason)
                == Some(TransitionReason::Tripped(TripRule::ConsecutiveFailures)),
    );

    // 4. Open: fail fast, the bus untouched.
    let before = sensor.inner().transactions;
    let fast = sensor.read(0x48, &mut reading);
    let exact = match fast {
        Err(HalError::Rejected(r)) => {
            r.reason == RejectReason::Open
                && r.retry_after()
                    .is_some_and(|d| d <= core::time::Duration::from_millis(20))
        }
        _ => false,
    };
    checks.check(
        "open: rejected at once, bus untouched",
        exact && sensor.inner().transactions == before,
    );

    // 5. Still unplugged at the deadline: the probe fails, the open time doubles.
    let opened = tripped.map_or(start, |t| t.at);
    wait_until(opened.saturating_add(Duration::from_millis(20)));
    let probe = sensor.read(0x48, &mut reading);
    let reopened = BREAKER.last_transition();
    let retry = match sensor.read(0x48, &mut reading) {
        Err(HalError::Rejected(r)) => r.retry_after(),
        _ => None,
    };
    checks.check(
        "failed probe reopens with a doubled open time",
        probe.is_err()
            && reopened.map(|t| t.reason) == Some(TransitionReason::ProbeFailed)
            && retry.is_some_and(|d| {
                d > core::time::Duration::from_millis(20)
                    && d <= core::time::Duration::from_millis(40)
            }),
    );

    // 6. Plugged back in: the next probe closes it.
    SENSOR_PRESENT.store(true, Ordering::Relaxed);
    let reopened_at = reopened.map_or(start, |t| t.at);
    wait_until(reopened_at.saturating_add(Duration::from_millis(40)));
    let recovered = sensor.write_read(0x48, &[0x00], &mut reading).is_ok();
    checks.check(
        "a good probe closes the breaker",
        recovered && BREAKER.state() == State::Closed,
    );

    // 7. A second peripheral on a breaker configured at compile time.
    let eeprom_breaker: EepromGate = Breaker::fixed(POLICY_EEPROM, &CLOCK);
    let tripped = core::cell::Cell::new(None);
    let mut eeprom = BreakerI2c::new(AbsentEeprom { transactions: 0 }, eeprom_breaker)
        .on_transition(|t| {
            if t.to == State::Open {
                tripped.set(Some(t.at));
            }
        });
    let mut byte = [0u8];
    let nacked = (0..2).all(|_| matches!(eeprom.read(0x50, &mut byte), Err(HalError::Bus(_))));
    let fast = matches!(eeprom.read(0x50, &mut byte), Err(HalError::Rejected(r)) if r.reason == RejectReason::Open);
    let untouched = eeprom.inner().transactions == 2;
    let tripped_at = tripped.get().unwrap_or(start);
    wait_until(tripped_at.saturating_add(Duration::from_millis(10)));
    let probed = matches!(eeprom.read(0x50, &mut byte), Err(HalError::Bus(_)));
    checks.check(
        "compile-time breaker: the absent EEPROM trips it, fails fast, is probed at 10 ms",
        nacked
            && fast
            && untouched
            && probed
            && eeprom.inner().transactions == 3
            && tripped.get().is_some(),
    );

    // 8. The 16-bit counter wrapped and the clock kept counting.
    let now = CLOCK.now();
    checks.check(
        "clock extended past the 16-bit wrap",
        now > Instant::from_millis(65_536) && now >= start,
    );

    // 9. The counts add up: main-loop reads and the handler's calls alike
    // (the handler stopped first, so nothing moves while counting).
    cp.SYST.disable_interrupt();
    let m = BREAKER.metrics();
    let isr = ISR_ADMITTED.load(Ordering::Relaxed) as u64;
    checks.check(
        "metrics account for every call",
        m.counts.failures == 4
            && m.counts.successes == 11
            && m.counts.ignored == isr
            && m.counts.calls == 15 + isr,
    );
    if m.counts.calls != 15 + isr {
        hprintln!("        counts {:?}, handler admitted {}", m.counts, isr);
    }
    checks.check("five transitions, five generations", m.generation == 5);
    let by_sensor = SENSOR_TRANSITIONS.load(Ordering::Relaxed);
    let by_handler = ISR_TRANSITIONS.load(Ordering::Relaxed);
    hprintln!(
        "        {} transitions heard by the sensor's hook, {} caused by the handler",
        by_sensor,
        by_handler
    );
    checks.check(
        "every transition heard where it happened",
        by_sensor + by_handler == 5 && by_sensor >= 3,
    );

    hprintln!(
        "firmware: {} passed, {} failed",
        checks.passed,
        checks.failed
    );
    debug::exit(if checks.failed == 0 {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    loop {
        cortex_m::asm::wfi();
    }
}

#[cfg(feature = "defmt")]
use defmt_semihosting as _;
