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
    static TICKS: breakerbox_core::SharedTickClock<fn() -> u32> =
        match breakerbox_core::SharedTickClock::new(read_counter as fn() -> u32, 16, 32_768) {
            Ok(clock) => clock,
            Err(_) => panic!(),
        };
    #[cfg(feature = "tick-clock")]
    pub type Time = &'static breakerbox_core::SharedTickClock<fn() -> u32>;
    #[cfg(feature = "tick-clock")]
    pub const fn time() -> Time {
        &TICKS
    }

    pub const CONFIG: Config = match Config::builder().build() {
        Ok(c) => c,
        Err(_) => panic!(),
    };

    /// The same configuration, fixed at compile time.
    #[cfg(feature = "fixed")]
    pub struct Fixed;
    #[cfg(feature = "fixed")]
    impl breakerbox_core::FixedConfig for Fixed {
        const CONFIG: Config = CONFIG;
        const METRICS: bool = false;
    }

    /// The breaker of a variant.
    #[cfg(not(feature = "fixed"))]
    pub type Guarded = breakerbox_core::Breaker<Policy, Time, 1>;
    #[cfg(not(feature = "fixed"))]
    pub const fn breaker() -> Guarded {
        breakerbox_core::Breaker::new(CONFIG, policy(), time())
    }
    #[cfg(feature = "fixed")]
    pub type Guarded = breakerbox_core::Breaker<Policy, Time, 0, breakerbox_core::Fixed<Fixed>>;
    #[cfg(feature = "fixed")]
    pub const fn breaker() -> Guarded {
        breakerbox_core::Breaker::fixed(policy(), time())
    }

    #[cfg(not(any(feature = "count-window", feature = "time-window")))]
    pub type Policy = breakerbox_core::ConsecutiveFailures;
    #[cfg(not(any(feature = "count-window", feature = "time-window")))]
    pub const fn policy() -> Policy {
        match breakerbox_core::ConsecutiveFailures::new(5) {
            Ok(p) => p,
            Err(_) => panic!(),
        }
    }

    #[cfg(feature = "count-window")]
    pub type Policy = breakerbox_core::CountWindow<16>;
    #[cfg(feature = "count-window")]
    pub const fn policy() -> Policy {
        let t =
            breakerbox_core::Thresholds::new().failure_rate(breakerbox_core::Ratio::percent(50));
        match breakerbox_core::CountWindow::new(t) {
            Ok(p) => p,
            Err(_) => panic!(),
        }
    }

    #[cfg(feature = "time-window")]
    pub type Policy = breakerbox_core::TimeWindow<8>;
    #[cfg(feature = "time-window")]
    pub const fn policy() -> Policy {
        let t =
            breakerbox_core::Thresholds::new().failure_rate(breakerbox_core::Ratio::percent(50));
        match breakerbox_core::TimeWindow::new(core::time::Duration::from_millis(125), t) {
            Ok(p) => p,
            Err(_) => panic!(),
        }
    }
}


#[cfg(feature = "hand")]
mod hand {
    use super::*;
    const D: u64 = 5_000_000;
    const LEASE: u64 = 5_000_000;
    const N: u32 = 5;
    #[derive(Clone, Copy)]
    #[repr(u8)]
    enum St {
        Closed,
        Open { until: u64 },
        Half { lease: u64, busy: bool },
    }
    pub struct B {
        st: St,
        gen: u64,
        fails: u32,
    }
    pub static mut X: B = B { st: St::Closed, gen: 0, fails: 0 };
    #[derive(Debug)]
    pub enum E {
        Rej(Option<u64>),
        Bus(ErrorKind),
    }
    impl embedded_hal::i2c::Error for E {
        fn kind(&self) -> ErrorKind {
            match self {
                E::Rej(_) => ErrorKind::Other,
                E::Bus(e) => *e,
            }
        }
    }
    fn now() -> u64 {
        MICROS.load(Ordering::Relaxed) as u64
    }
    impl B {
        fn reopen(&mut self, t: u64) {
            self.st = St::Open { until: t.saturating_add(D) };
            self.gen = self.gen.wrapping_add(1);
        }
        fn acquire(&mut self) -> Result<u64, E> {
            match &mut self.st {
                St::Closed => Ok(self.gen),
                St::Open { until } => {
                    let t = now();
                    *until = (*until).min(t.saturating_add(D));
                    if t < *until {
                        return Err(E::Rej(Some(*until - t)));
                    }
                    self.st = St::Half { lease: t.saturating_add(LEASE), busy: true };
                    self.gen = self.gen.wrapping_add(1);
                    Ok(self.gen)
                }
                St::Half { lease, busy } => {
                    let t = now();
                    if *busy {
                        *lease = (*lease).min(t.saturating_add(LEASE));
                        if t >= *lease {
                            self.reopen(t);
                            return Err(E::Rej(Some(D)));
                        }
                        return Err(E::Rej(None));
                    }
                    *busy = true;
                    *lease = t.saturating_add(LEASE);
                    Ok(self.gen)
                }
            }
        }
        fn record(&mut self, gen: u64, outcome: u8) {
            if let St::Half { lease, busy: true } = &mut self.st {
                let t = now();
                *lease = (*lease).min(t.saturating_add(LEASE));
                if t >= *lease {
                    self.reopen(t);
                    return;
                }
            }
            if gen != self.gen {
                return;
            }
            match (&mut self.st, outcome) {
                (St::Half { busy, .. }, 2) => *busy = false,
                (_, 2) => {}
                (St::Closed, 0) => self.fails = 0,
                (St::Closed, _) => {
                    self.fails = self.fails.saturating_add(1);
                    if self.fails >= N {
                        self.fails = 0;
                        self.reopen(now());
                    }
                }
                (St::Half { .. }, 0) => {
                    self.st = St::Closed;
                    self.gen = self.gen.wrapping_add(1);
                }
                (St::Half { .. }, _) => self.reopen(now()),
                _ => {}
            }
        }
    }
    pub struct Bus<'a>(pub Sensor, pub &'a mut B);
    impl ErrorType for Bus<'_> {
        type Error = E;
    }
    impl I2c for Bus<'_> {
        fn transaction(&mut self, a: u8, ops: &mut [Operation<'_>]) -> Result<(), E> {
            let gen = self.1.acquire()?;
            let r = self.0.transaction(a, ops);
            let outcome = match &r {
                Ok(_) => 0,
                Err(ErrorKind::ArbitrationLoss) => 2,
                Err(_) => 1,
            };
            self.1.record(gen, outcome);
            r.map_err(E::Bus)
        }
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

    #[cfg(all(not(feature = "breaker"), not(feature = "hand")))]
    let mut bus = Sensor(0);
    #[cfg(feature = "hand")]
    #[allow(static_mut_refs)]
    let mut bus = hand::Bus(Sensor(0), black_box(unsafe { &mut hand::X }));

    #[cfg(all(feature = "breaker", not(feature = "shared")))]
    let mut bus = breakerbox_core::hal::BreakerI2c::new(Sensor(0), black_box(BREAKER));

    #[cfg(feature = "shared")]
    static BREAKER: breakerbox_core::SharedBreaker<guarded::Policy, guarded::Time, 1> =
        breakerbox_core::SharedBreaker::new(guarded::CONFIG, guarded::policy(), guarded::time());
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
