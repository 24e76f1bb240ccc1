//! The Embassy clock adapter on the host, on embassy-time's mock driver
//! (one driver per test binary, so this file holds every test that moves it).
#![cfg(feature = "embassy-time")]

use breakerbox_core::{
    Breaker, Clock, Config, ConsecutiveFailures, Duration, EmbassyClock, Instant, RejectReason,
    State,
};
use embassy_time::MockDriver;

#[test]
fn a_breaker_on_embassy_time_opens_and_recovers_as_the_driver_moves() {
    let driver = MockDriver::get();
    let start = EmbassyClock.now();
    assert_eq!(start, embassy_time::Instant::now().into());
    let mut breaker: Breaker<_, _> = Breaker::new(
        Config::DEFAULT,
        ConsecutiveFailures::new(1).unwrap(),
        EmbassyClock,
    );
    let _ = breaker.call(|| Err::<(), ()>(()));
    assert_eq!(breaker.state(), State::Open);

    driver.advance(embassy_time::Duration::from_millis(4_999));
    let rejected = breaker.try_acquire().into_result().unwrap_err();
    assert_eq!(rejected.reason, RejectReason::Open);
    assert_eq!(
        rejected.retry_after(),
        Some(core::time::Duration::from_millis(1))
    );

    driver.advance(embassy_time::Duration::from_millis(1));
    assert_eq!(
        EmbassyClock.now(),
        start.saturating_add(Duration::from_secs(5))
    );
    assert!(breaker.call(|| Ok::<_, ()>(())).is_ok(), "the probe at 5 s");
    assert_eq!(breaker.state(), State::Closed);

    let d: Duration = embassy_time::Duration::from_micros(1_234_567).into();
    assert_eq!(d, Duration::from_micros(1_234_567));
    assert_eq!(
        Instant::from(embassy_time::Instant::from_secs(2)),
        Instant::from_secs(2)
    );
}
