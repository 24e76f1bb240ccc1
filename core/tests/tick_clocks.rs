//! Breakers on tick clocks whose counters glitch and wrap, as real timers do.

use core::cell::Cell;

use breakerbox_core::{
    Breaker, Config, ConsecutiveFailures, RejectReason, SharedTickClock, State, TickClock,
};

fn five_second_breaker<C: breakerbox_core::Clock>(clock: C) -> Breaker<ConsecutiveFailures, C> {
    let config = Config::builder()
        .open_duration(core::time::Duration::from_secs(5))
        .build()
        .unwrap();
    Breaker::new(config, ConsecutiveFailures::new(1).unwrap(), clock)
}

fn trip<C: breakerbox_core::Clock>(breaker: &mut Breaker<ConsecutiveFailures, C>) {
    let _ = breaker.call(|| Err::<(), ()>(()));
    assert_eq!(breaker.state(), State::Open);
}

fn rejected_as_open<C: breakerbox_core::Clock>(breaker: &mut Breaker<ConsecutiveFailures, C>) {
    let rejected = breaker.try_acquire().into_result().unwrap_err();
    assert_eq!(rejected.reason, RejectReason::Open);
}

#[test]
fn a_one_tick_glitch_of_a_32_bit_counter_does_not_end_the_open_state() {
    // A 32 kHz RTC: a wrap would be 131,072 s.
    const HZ: u32 = 32_768;
    let counter = Cell::new(10 * HZ);
    let clock = TickClock::new(|| counter.get(), 32, HZ).unwrap();
    let mut breaker = five_second_breaker(&clock);
    trip(&mut breaker);
    counter.set(11 * HZ);
    rejected_as_open(&mut breaker);
    counter.set(11 * HZ - 1); // the register read one tick early
    rejected_as_open(&mut breaker);
    counter.set(14 * HZ);
    rejected_as_open(&mut breaker);
    counter.set(15 * HZ);
    assert!(
        breaker.try_acquire().into_result().is_ok(),
        "the probe at 5 s"
    );
}

#[test]
fn a_clock_ticked_by_a_timer_sees_every_wrap_while_the_breaker_is_open() {
    // A 16-bit counter at 1 kHz wraps every 65.536 s. The breaker trips at
    // 1 s and does not read its clock again until 67.5 s; a timer interrupt
    // ticks the clock every 10 s meanwhile.
    static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1_000);
    fn read() -> u32 {
        COUNTER.load(std::sync::atomic::Ordering::Relaxed)
    }
    static CLOCK: SharedTickClock<fn() -> u32> =
        match SharedTickClock::new(read as fn() -> u32, 16, 1_000) {
            Ok(clock) => clock,
            Err(_) => panic!("a valid clock"),
        };
    let mut breaker = five_second_breaker(&CLOCK);
    trip(&mut breaker);
    for ms in (11_000..=61_000).step_by(10_000) {
        COUNTER.store(ms, std::sync::atomic::Ordering::Relaxed);
        CLOCK.tick();
    }
    COUNTER.store(67_500, std::sync::atomic::Ordering::Relaxed);
    let admission = breaker.try_acquire();
    assert!(admission.into_result().is_ok(), "66.5 s after the trip");
    assert_eq!(breaker.state(), State::HalfOpen);
}
