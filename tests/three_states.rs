//! The classic three-state scenario through the public API: threshold 3
//! failures, 5 s timeout; every state along the way is asserted.

use breakerbox::{
    Breaker, CallError, Config, ConsecutiveFailures, Duration, Instant, ManualClock, RejectReason,
    State, TransitionReason, TripRule,
};

fn classic_breaker(clock: &ManualClock) -> Breaker<ConsecutiveFailures, &ManualClock> {
    let config = Config::builder()
        .open_duration(core::time::Duration::from_millis(5_000))
        .build()
        .unwrap();
    Breaker::new(config, ConsecutiveFailures::new(3).unwrap(), clock)
}

fn ok() -> Result<&'static str, &'static str> {
    Ok("data")
}

fn fail() -> Result<&'static str, &'static str> {
    Err("HTTP error! status: 503")
}

#[test]
fn classic_scenario_threshold_3_timeout_5s() {
    let clock = ManualClock::new();
    let mut breaker = classic_breaker(&clock);

    // Closed: requests flow; failures are counted.
    assert_eq!(breaker.call(ok), Ok("data"));
    assert_eq!(breaker.state(), State::Closed);
    for n in 1..=2 {
        clock.advance(Duration::from_secs(1));
        assert_eq!(
            breaker.call(fail),
            Err(CallError::Inner("HTTP error! status: 503"))
        );
        assert_eq!(breaker.state(), State::Closed, "after {n} failures");
    }

    // The third failure trips it.
    clock.advance(Duration::from_secs(1));
    assert!(breaker.call(fail).is_err());
    assert_eq!(breaker.state(), State::Open);
    let trip = *breaker.last_transition().unwrap();
    assert_eq!(
        (trip.reason, trip.at),
        (
            TransitionReason::Tripped(TripRule::ConsecutiveFailures),
            Instant::from_secs(3)
        )
    );

    // Open: rejected immediately, without calling the service, for 5 s.
    for wait_ms in [0, 1_000, 3_999] {
        clock.set(
            Instant::from_secs(3).saturating_add(breakerbox::time::Duration::from_millis(wait_ms)),
        );
        let mut called = false;
        let result = breaker.call(|| {
            called = true;
            ok()
        });
        let Err(CallError::Rejected(rejected)) = result else {
            panic!("expected a rejection at +{wait_ms} ms, got {result:?}")
        };
        assert!(!called);
        assert_eq!(rejected.reason, RejectReason::Open);
        assert_eq!(
            rejected.retry_after(),
            Some(std::time::Duration::from_millis(5_000 - wait_ms))
        );
        assert_eq!(breaker.state(), State::Open);
    }

    // After the timeout: half-open lets a request through; it fails, so open again.
    clock.set(Instant::from_secs(8));
    let probe = breaker.try_acquire();
    assert_eq!(probe.transition.unwrap().to, State::HalfOpen);
    assert_eq!(breaker.state(), State::HalfOpen);
    let report = breaker.record(probe.result.unwrap(), breakerbox::Outcome::Failure);
    assert_eq!(
        report.transition.unwrap().reason,
        TransitionReason::ProbeFailed
    );
    assert_eq!(breaker.state(), State::Open);

    // The timeout restarted: still open 4.999 s later.
    clock.set(Instant::from_micros(12_999_999));
    assert!(breaker.call(ok).unwrap_err().is_rejected());

    // A successful probe closes it and resets the failure count.
    clock.set(Instant::from_secs(13));
    assert_eq!(breaker.call(ok), Ok("data"));
    assert_eq!(breaker.state(), State::Closed);
    assert_eq!(breaker.policy().consecutive_failures(), 0);
    for _ in 0..2 {
        let _ = breaker.call(fail);
    }
    assert_eq!(
        breaker.state(),
        State::Closed,
        "two failures after closing do not trip"
    );

    let counts = breaker.metrics().counts;
    assert_eq!(
        (
            counts.calls,
            counts.failures,
            counts.successes,
            counts.rejected
        ),
        (8, 6, 2, 4)
    );
    let path: Vec<(State, State)> = breaker.history().map(|t| (t.from, t.to)).collect();
    assert_eq!(
        path,
        [
            (State::Open, State::HalfOpen),
            (State::HalfOpen, State::Open),
            (State::Open, State::HalfOpen),
            (State::HalfOpen, State::Closed)
        ],
        "the last four of five transitions"
    );
    assert_eq!(breaker.generation(), 5);
}
