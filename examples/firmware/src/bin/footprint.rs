//! The smallest program that reads an I2C sensor, with and without a
//! breaker: `footprint.py` builds its variants and subtracts their sizes to
//! tell what the breaker costs in flash and RAM. It runs too (and exits at
//! once under QEMU), so the variants are real programs, not dead code.
#![no_std]
#![no_main]

use core::hint::black_box;
use core::sync::atomic::{AtomicU32, Ordering};

use cortex_m_rt::entry;
use cortex_m_semihosting::debug;
use embedded_hal::i2c::{ErrorKind, ErrorType, I2c, NoAcknowledgeSource, Operation};

/// A sensor that answers every other transaction.
struct Sensor(u32);

impl ErrorType for Sensor {
    type Error = ErrorKind;
}

impl I2c for Sensor {
    fn transaction(&mut self, _: u8, operations: &mut [Operation<'_>]) -> Result<(), ErrorKind> {
        self.0 += 1;
        if black_box(self.0).is_multiple_of(2) {
            return Err(ErrorKind::NoAcknowledge(NoAcknowledgeSource::Address));
        }
        for op in operations {
            if let Operation::Read(buf) = op {
                buf.fill(0x19);
            }
        }
        Ok(())
    }
}

/// A free-running microsecond counter (a timer register on real hardware).
static MICROS: AtomicU32 = AtomicU32::new(0);

#[cfg(feature = "breaker")]
mod guarded {
    use super::*;
    use breakerbox_core::Config;
    #[cfg(not(feature = "tick-clock"))]
    use breakerbox_core::{Clock, Instant};
    #[allow(unused_imports)] // by the variants that configure a duration
    use core::time::Duration;

    /// The clock: the 64-bit microsecond timer, or a 16-bit counter at
    /// 32 kHz extended by a `SharedTickClock`.
    #[cfg(not(feature = "tick-clock"))]
    pub struct Timer;
    #[cfg(not(feature = "tick-clock"))]
    impl Clock for Timer {
        fn now(&self) -> Instant {
            Instant::from_micros(MICROS.load(Ordering::Relaxed) as u64)
        }
    }
    #[cfg(not(feature = "tick-clock"))]
    pub type Time = Timer;
    #[cfg(not(feature = "tick-clock"))]
    pub const fn time() -> Time {
        Timer
    }

    #[cfg(feature = "tick-clock")]
    fn read_counter() -> u32 {
        MICROS.load(Ordering::Relaxed) / 32
    }
    #[cfg(feature = "tick-clock")]
    static TICKS: breakerbox_core::SharedTickClock<fn() -> u32> = breakerbox_core::valid!(
        breakerbox_core::SharedTickClock::new(read_counter as fn() -> u32, 16, 32_768)
    );
    #[cfg(feature = "tick-clock")]
    pub type Time = &'static breakerbox_core::SharedTickClock<fn() -> u32>;
    #[cfg(feature = "tick-clock")]
    pub const fn time() -> Time {
        &TICKS
    }

    /// The configuration: the defaults, plus the one feature a `fixed-*`
    /// variant adds back.
    pub const CONFIG: Config = {
        let b = Config::builder();
        #[cfg(feature = "fixed-exponential")]
        let b = b.exponential_backoff(Duration::from_secs(5), Duration::from_secs(60), 2, 1);
        #[cfg(feature = "fixed-jitter")]
        let b = b.jitter(breakerbox_core::Jitter::Full).jitter_seed(0x5eed);
        #[cfg(feature = "fixed-rates")]
        let b = b.half_open_verdict(breakerbox_core::HalfOpenVerdict::Rates {
            failure_rate: breakerbox_core::Ratio::percent(50),
            slow_rate: None,
        });
        #[cfg(feature = "fixed-slow")]
        let b = b.slow_call_threshold(Duration::from_millis(50));
        breakerbox_core::valid!(b.build())
    };

    /// The same configuration, fixed at compile time: no counts or time in
    /// state unless `fixed-metrics` adds them back.
    #[cfg(feature = "fixed")]
    pub struct Fixed;
    #[cfg(feature = "fixed")]
    impl breakerbox_core::FixedConfig for Fixed {
        const CONFIG: Config = CONFIG;
        const METRICS: bool = cfg!(feature = "fixed-metrics");
    }

    /// How many transitions the breaker keeps.
    pub const HISTORY: usize = if cfg!(feature = "fixed-history") {
        4
    } else if cfg!(feature = "fixed") {
        0
    } else {
        1
    };

    /// The breaker of a variant.
    #[cfg(all(not(feature = "fixed"), not(feature = "shared")))]
    pub type Guarded = breakerbox_core::Breaker<Policy, Time, HISTORY>;
    #[cfg(all(not(feature = "fixed"), not(feature = "shared")))]
    pub const fn breaker() -> Guarded {
        breakerbox_core::Breaker::with_history(CONFIG, policy(), time())
    }
    #[cfg(all(feature = "fixed", not(feature = "shared")))]
    pub type Guarded =
        breakerbox_core::Breaker<Policy, Time, HISTORY, breakerbox_core::Fixed<Fixed>>;
    #[cfg(all(feature = "fixed", not(feature = "shared")))]
    pub const fn breaker() -> Guarded {
        breakerbox_core::Breaker::fixed(policy(), time())
    }

    /// The shared breaker of a variant.
    #[cfg(all(not(feature = "fixed"), feature = "shared"))]
    pub type Shared = breakerbox_core::SharedBreaker<Policy, Time, HISTORY>;
    #[cfg(all(not(feature = "fixed"), feature = "shared"))]
    pub const fn shared() -> Shared {
        breakerbox_core::SharedBreaker::new(CONFIG, policy(), time())
    }
    #[cfg(all(feature = "fixed", feature = "shared"))]
    pub type Shared = breakerbox_core::SharedBreaker<
        Policy,
        Time,
        HISTORY,
        breakerbox_core::CriticalSection,
        breakerbox_core::Fixed<Fixed>,
    >;
    #[cfg(all(feature = "fixed", feature = "shared"))]
    pub const fn shared() -> Shared {
        breakerbox_core::SharedBreaker::fixed(policy(), time())
    }

    #[cfg(not(any(feature = "count-window", feature = "time-window")))]
    pub type Policy = breakerbox_core::ConsecutiveFailures;
    #[cfg(not(any(feature = "count-window", feature = "time-window")))]
    pub const fn policy() -> Policy {
        breakerbox_core::valid!(breakerbox_core::ConsecutiveFailures::new(5))
    }

    #[cfg(feature = "count-window")]
    pub type Policy = breakerbox_core::CountWindow<16>;
    #[cfg(feature = "count-window")]
    pub const fn policy() -> Policy {
        let t =
            breakerbox_core::Thresholds::new().failure_rate(breakerbox_core::Ratio::percent(50));
        breakerbox_core::valid!(breakerbox_core::CountWindow::new(t))
    }

    #[cfg(feature = "time-window")]
    pub type Policy = breakerbox_core::TimeWindow<8>;
    #[cfg(feature = "time-window")]
    pub const fn policy() -> Policy {
        let t =
            breakerbox_core::Thresholds::new().failure_rate(breakerbox_core::Ratio::percent(50));
        breakerbox_core::valid!(breakerbox_core::TimeWindow::new(
            core::time::Duration::from_millis(125),
            t
        ))
    }
}

#[entry]
fn main() -> ! {
    // Initialised at compile time, in RAM: its size shows in the image, its
    // initial value in flash. (`entry` makes it a `&'static mut`.)
    #[cfg(all(feature = "breaker", not(feature = "shared")))]
    static mut BREAKER: guarded::Guarded = guarded::breaker();

    let mut reading = [0u8; 2];
    let rounds = black_box(16);
    let mut good = 0u32;

    #[cfg(not(feature = "breaker"))]
    let mut bus = Sensor(0);

    // Through a reference the compiler cannot see through, as a driver
    // holds its breaker (not an address folded into every access).
    #[cfg(all(feature = "breaker", not(feature = "shared")))]
    let mut bus = breakerbox_core::hal::BreakerI2c::new(Sensor(0), black_box(BREAKER));

    #[cfg(feature = "shared")]
    static BREAKER: guarded::Shared = guarded::shared();
    #[cfg(feature = "shared")]
    let mut bus = breakerbox_core::hal::BreakerI2c::new(Sensor(0), &BREAKER);

    for _ in 0..rounds {
        MICROS.store(
            MICROS.load(Ordering::Relaxed).wrapping_add(1_000),
            Ordering::Relaxed,
        );
        if bus.write_read(0x48, &[0x00], &mut reading).is_ok() {
            good += 1;
        }
    }
    black_box(good);
    debug::exit(debug::EXIT_SUCCESS);
    loop {
        cortex_m::asm::wfi();
    }
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    debug::exit(debug::EXIT_FAILURE);
    loop {
        cortex_m::asm::wfi();
    }
}
