use core::time::Duration as StdDuration;

use super::*;
use crate::time::Frozen;
use crate::{
    Breaker, Config, ConsecutiveFailures, HalfOpenVerdict, Outcome, State, Transition,
    TransitionReason, TripRule,
};

extern crate std;
use std::vec::Vec;

fn call(failed: bool, slow: bool, at_ms: u64) -> CallRecord {
    CallRecord {
        failed,
        slow,
        at: Instant::from_millis(at_ms),
    }
}

const FAIL: CallRecord = CallRecord {
    failed: true,
    slow: false,
    at: Instant::ZERO,
};
const OK: CallRecord = CallRecord {
    failed: false,
    slow: false,
    at: Instant::ZERO,
};
const SLOW_OK: CallRecord = CallRecord {
    failed: false,
    slow: true,
    at: Instant::ZERO,
};

fn rate(percent: u32) -> Thresholds {
    Thresholds::new().failure_rate(Ratio::percent(percent))
}

fn time_window<const B: usize>(bucket_ms: u64, t: Thresholds) -> TimeWindow<B> {
    TimeWindow::new(StdDuration::from_millis(bucket_ms), t).unwrap()
}

#[test]
fn invalid_thresholds_are_named() {
    let cases = [
        (Thresholds::new(), ConfigError::NoThreshold),
        (rate(0), ConfigError::FailureRate),
        (rate(101), ConfigError::FailureRate),
        (
            Thresholds::new().failure_rate(Ratio::new(1, 0)),
            ConfigError::FailureRate,
        ),
        (
            Thresholds::new().slow_rate(Ratio::per_mille(1_001)),
            ConfigError::SlowRate,
        ),
        (
            Thresholds::new().failure_count(0),
            ConfigError::FailureCount,
        ),
        (rate(50).minimum_calls(0), ConfigError::MinimumCalls),
        (rate(50).minimum_calls(11), ConfigError::MinimumCalls),
    ];
    for (t, expected) in cases {
        assert_eq!(CountWindow::<10>::new(t).unwrap_err(), expected, "{t:?}");
    }
    assert_eq!(
        CountWindow::<0>::new(rate(50)).unwrap_err(),
        ConfigError::WindowSize
    );
    assert!(CountWindow::<10>::new(rate(100).minimum_calls(10)).is_ok());
    assert!(CountWindow::<10>::new(Thresholds::new().failure_count(1)).is_ok());
    let ms = StdDuration::from_millis;
    assert_eq!(
        TimeWindow::<0>::new(ms(1), rate(50)).unwrap_err(),
        ConfigError::Buckets
    );
    assert_eq!(
        TimeWindow::<4>::new(ms(0), rate(50)).unwrap_err(),
        ConfigError::BucketLength
    );
    assert_eq!(
        TimeWindow::<4>::new(StdDuration::from_nanos(999), rate(50)).unwrap_err(),
        ConfigError::BucketLength
    );
    assert_eq!(
        TimeWindow::<4>::new(ms(1), rate(50).minimum_calls(0)).unwrap_err(),
        ConfigError::MinimumCalls
    );
    assert_eq!(
        TimeWindow::<4>::new(ms(1), Thresholds::new()).unwrap_err(),
        ConfigError::NoThreshold
    );
}

#[test]
fn count_window_trips_exactly_at_the_threshold() {
    // 3 of 10 is 30 %: reached. 2 of 10 is not.
    let mut w = CountWindow::<10>::new(rate(30)).unwrap();
    for _ in 0..8 {
        assert!(!w.record(OK));
    }
    assert!(!w.record(FAIL));
    assert!(!w.record(FAIL), "2/10 = 20 % < 30 %");
    assert!(
        w.record(FAIL),
        "the oldest success leaves: 3/10 = 30 % >= 30 %"
    );
}

#[test]
fn count_window_waits_for_the_minimum_calls() {
    let mut w = CountWindow::<10>::new(rate(50).minimum_calls(5)).unwrap();
    for _ in 0..4 {
        assert!(!w.record(FAIL), "100 % failures but below the minimum");
    }
    assert_eq!(w.counts().calls, 4);
    assert!(w.record(FAIL), "the fifth call reaches the minimum");
}

#[test]
fn count_window_trips_when_it_fills_on_a_success() {
    let mut w = CountWindow::<4>::new(rate(50)).unwrap();
    assert!(!w.record(FAIL));
    assert!(!w.record(FAIL));
    assert!(!w.record(OK));
    assert!(w.record(OK), "filled on a success at 2/4 = 50 %");
}

#[test]
fn count_window_slides_and_counts_slow_calls() {
    let mut w = CountWindow::<3>::new(Thresholds::new().slow_rate(Ratio::new(2, 3))).unwrap();
    assert!(!w.record(SLOW_OK));
    assert!(!w.record(OK));
    assert!(!w.record(OK));
    assert!(!w.record(SLOW_OK), "the first slow call left: 1/3");
    assert!(w.record(CallRecord { slow: true, ..FAIL }), "2/3 slow");
    let c = w.counts();
    assert_eq!((c.calls, c.failures, c.slow, c.minimum_calls), (3, 1, 2, 3));
}

#[test]
fn failure_count_ignores_the_minimum() {
    let mut w = CountWindow::<100>::new(
        Thresholds::new()
            .failure_count(3)
            .failure_rate(Ratio::percent(90)),
    )
    .unwrap();
    assert!(!w.record(FAIL));
    assert!(!w.record(OK));
    assert!(!w.record(FAIL));
    assert!(
        w.record(FAIL),
        "3 failures in the window, with 4 of 100 calls"
    );
}

#[test]
fn count_window_reset_empties_it() {
    let mut w = CountWindow::<3>::new(rate(100).minimum_calls(1)).unwrap();
    assert!(w.record(FAIL));
    w.reset(Instant::ZERO);
    assert_eq!(w.counts().calls, 0);
    assert!(!w.record(OK));
    assert!(!w.record(OK));
    assert!(!w.record(OK));
    assert!(
        !w.record(OK),
        "stale flags from before the reset never count"
    );
    assert_eq!(w.counts().failures, 0);
}

#[test]
fn count_window_of_one() {
    let mut w = CountWindow::<1>::new(rate(100)).unwrap();
    assert!(w.record(FAIL));
    assert!(!w.record(OK));
    assert!(w.record(FAIL));
}

#[test]
fn time_window_drops_buckets_as_time_passes() {
    // 4 buckets of 100 ms: a window of 400 ms.
    let mut w = time_window::<4>(100, Thresholds::new().failure_count(100));
    w.record(call(true, false, 0));
    w.record(call(true, false, 150));
    w.record(call(false, true, 250));
    w.record(call(true, false, 399));
    assert_eq!(w.counts(Instant::from_millis(399)).calls, 4);
    assert_eq!(
        w.counts(Instant::from_millis(400)).calls,
        3,
        "bucket 0 left"
    );
    assert_eq!(
        w.counts(Instant::from_millis(650)).calls,
        1,
        "only bucket 3 is left"
    );
    w.record(call(false, false, 650));
    let c = w.counts(Instant::from_millis(650));
    assert_eq!((c.calls, c.failures, c.slow), (2, 1, 0));
}

#[test]
fn time_window_is_empty_after_an_idle_gap_of_exactly_one_window() {
    let mut w = time_window::<4>(100, Thresholds::new().failure_count(100));
    w.record(call(true, false, 1_000));
    w.record(call(true, false, 1_099));
    assert_eq!(
        w.counts(Instant::from_millis(1_399)).calls,
        2,
        "one bucket short of a window"
    );
    assert_eq!(
        w.counts(Instant::from_millis(1_400)).calls,
        0,
        "a whole window later"
    );
    w.record(call(false, false, 1_400));
    assert_eq!(w.counts(Instant::from_millis(1_400)).calls, 1);
    // The slot reused for epoch 14 held epoch 10: only the new call counts.
    w.record(call(false, false, 1_799));
    assert_eq!(w.counts(Instant::from_millis(1_799)).calls, 2);
}

#[test]
fn time_window_with_a_backwards_clock_never_corrupts_a_bucket() {
    let mut w = time_window::<4>(100, Thresholds::new().failure_count(100));
    w.record(call(true, false, 350));
    w.record(call(true, false, 50)); // 300 ms back: counted in the newest bucket
    assert_eq!(w.counts(Instant::from_millis(350)).calls, 2);
    // Both leave together, when the newest bucket leaves.
    assert_eq!(w.counts(Instant::from_millis(699)).calls, 2);
    assert_eq!(w.counts(Instant::from_millis(700)).calls, 0);
    w.record(call(false, false, 700));
    assert_eq!(w.counts(Instant::from_millis(700)).failures, 0);
}

#[test]
fn time_window_rates_need_the_minimum_and_trip_at_the_threshold() {
    let mut w = time_window::<10>(1_000, rate(50).minimum_calls(4));
    assert!(!w.record(call(true, false, 0)));
    assert!(!w.record(call(true, false, 10)));
    assert!(!w.record(call(true, false, 20)), "3 calls, minimum 4");
    assert!(
        w.record(call(false, false, 30)),
        "3/4 >= 50 %, reached on a success"
    );
    w.reset(Instant::from_millis(40));
    assert_eq!(w.counts(Instant::from_millis(40)).calls, 0);
    assert!(!w.record(call(false, false, 50)));
    assert!(!w.record(call(true, false, 60)));
    assert!(!w.record(call(false, false, 70)));
    assert!(w.record(call(true, false, 80)), "2/4 = 50 %");
}

#[test]
fn time_window_at_the_end_of_time() {
    let mut w = time_window::<3>(1, Thresholds::new().failure_count(2));
    assert!(!w.record(CallRecord {
        at: Instant::MAX,
        ..FAIL
    }));
    assert!(w.record(CallRecord {
        at: Instant::MAX,
        ..FAIL
    }));
    assert_eq!(w.counts(Instant::MAX).failures, 2);
    assert_eq!(w.length(), core::time::Duration::from_millis(3));
    let huge = TimeWindow::<4>::new(StdDuration::MAX, rate(50)).unwrap();
    assert_eq!(huge.length(), Duration::MAX.to_core());
}

#[test]
fn counters_at_their_limits_saturate() {
    let mut w = CountWindow::<2>::new(Thresholds::new().failure_count(u32::MAX)).unwrap();
    w.totals = Totals {
        calls: 1,
        failures: u32::MAX,
        slow: u32::MAX,
    };
    w.ring = [FAILED | SLOW, 0];
    w.next = 1;
    assert!(w.record(CallRecord { slow: true, ..FAIL }));
    let mut t = time_window::<2>(1, Thresholds::new().failure_count(u32::MAX));
    t.totals = Totals {
        calls: u32::MAX,
        failures: u32::MAX - 1,
        slow: 0,
    };
    t.buckets[0].totals = t.totals;
    assert!(t.record(FAIL));
    assert_eq!(t.counts(Instant::ZERO).calls, u32::MAX);
}

#[test]
fn either_policy_trips_and_both_see_every_outcome() {
    let mut p = (
        ConsecutiveFailures::new(3).unwrap(),
        CountWindow::<4>::new(rate(50)).unwrap(),
    );
    assert!(!p.record(FAIL));
    assert!(!p.record(OK));
    assert!(!p.record(FAIL));
    assert!(
        p.record(OK),
        "the rate trips though the run of failures is 0"
    );
    assert_eq!(p.1.counts().calls, 4);
    p.reset(Instant::ZERO);
    assert_eq!(
        p.window(Instant::ZERO).unwrap().calls,
        0,
        "the window of the rate policy"
    );
    let mut q = (
        ConsecutiveFailures::new(2).unwrap(),
        CountWindow::<100>::new(rate(50)).unwrap(),
    );
    assert!(!q.record(FAIL));
    assert!(
        q.record(FAIL),
        "consecutive failures trip below the minimum calls"
    );
    let either = (
        ConsecutiveFailures::new(1).unwrap(),
        TimeWindow::<2>::new(
            core::time::Duration::from_secs(1),
            Thresholds::new().failure_rate(Ratio::percent(50)),
        )
        .unwrap(),
    );
    assert!(either.needs_time());
}

#[test]
fn breaker_reports_window_rates_only_from_the_minimum() {
    let policy = CountWindow::<10>::new(rate(80).minimum_calls(4)).unwrap();
    let mut b: Breaker<_, Frozen, 4> = Breaker::new(Config::DEFAULT, policy, Frozen);
    let t = Instant::ZERO;
    let mut outcomes = Vec::new();
    for outcome in [
        Outcome::Failure,
        Outcome::Success,
        Outcome::Ignored,
        Outcome::Success,
    ] {
        let p = b.try_acquire_at(t).result.unwrap();
        let _ = b.record_at(p, outcome, t);
        outcomes.push(b.metrics_at(t).failure_rate);
    }
    assert_eq!(
        outcomes,
        [None, None, None, None],
        "3 counted calls, minimum 4"
    );
    let p = b.try_acquire_at(t).result.unwrap();
    let _ = b.record_at(p, Outcome::Failure, t);
    assert_eq!(b.metrics_at(t).failure_rate, Some(Ratio::new(2, 4)));
    assert_eq!(b.metrics_at(t).slow_rate, Some(Ratio::new(0, 4)));
}

#[test]
fn breaker_with_a_time_window_trips_on_a_success_and_empties_on_close() {
    let policy =
        TimeWindow::<10>::new(StdDuration::from_secs(1), rate(50).minimum_calls(2)).unwrap();
    let mut b: Breaker<_, Frozen, 4> = Breaker::new(Config::DEFAULT, policy, Frozen);
    let step = |b: &mut Breaker<_, Frozen, 4>, outcome, s| {
        let p = b.try_acquire_at(Instant::from_secs(s)).result.unwrap();
        b.record_at(p, outcome, Instant::from_secs(s)).transition
    };
    assert!(step(&mut b, Outcome::Failure, 1).is_none());
    let t = step(&mut b, Outcome::Success, 2).unwrap();
    assert_eq!(t.reason, TransitionReason::Tripped(TripRule::FailureRate));
    let t = step(&mut b, Outcome::Success, 7).unwrap();
    assert_eq!(t.to, State::Closed);
    assert_eq!(
        b.metrics_at(Instant::from_secs(7)).failure_rate,
        None,
        "empty after closing"
    );
}

fn rate_verdict_breaker(
    failure: u32,
    slow: Option<u32>,
) -> Breaker<ConsecutiveFailures, Frozen, 4> {
    let config = Config::builder()
        .max_probes(4)
        .successes_to_close(4)
        .slow_call_threshold(StdDuration::from_secs(1))
        .half_open_verdict(HalfOpenVerdict::Rates {
            failure_rate: Ratio::percent(failure),
            slow_rate: slow.map(Ratio::percent),
        })
        .build()
        .unwrap();
    let mut b = Breaker::new(config, ConsecutiveFailures::new(1).unwrap(), Frozen);
    let p = b.try_acquire_at(Instant::ZERO).result.unwrap();
    let _ = b.record_at(p, Outcome::Failure, Instant::ZERO);
    b
}

/// Runs four probes at 5 s with the given outcomes and durations (s);
/// returns the transitions they caused.
fn probe(
    b: &mut Breaker<ConsecutiveFailures, Frozen, 4>,
    probes: [(Outcome, u64); 4],
) -> Vec<Transition> {
    let start = Instant::from_secs(5);
    let permits: Vec<_> = probes
        .iter()
        .map(|_| b.try_acquire_at(start).result.unwrap())
        .collect();
    let mut transitions = Vec::new();
    for (permit, (outcome, took)) in permits.into_iter().zip(probes) {
        let at = start.saturating_add(Duration::from_secs(took));
        transitions.extend(b.record_at(permit, outcome, at).transition);
    }
    transitions
}

#[test]
fn rate_verdict_judges_once_enough_probe_results_are_in() {
    use Outcome::{Failure as F, Success as S};
    // One failure of four is 25 %, below 50 %: closes, where "any failure" would reopen.
    let mut b = rate_verdict_breaker(50, None);
    let t = probe(&mut b, [(F, 0), (S, 0), (S, 0), (S, 0)]);
    assert_eq!(t.len(), 1);
    assert_eq!(
        (t[0].to, t[0].reason),
        (State::Closed, TransitionReason::ProbesSucceeded)
    );
    // Two of four is 50 %: reopens, and only when the fourth result is in.
    let mut b = rate_verdict_breaker(50, None);
    let t = probe(&mut b, [(F, 0), (F, 0), (S, 0), (S, 0)]);
    assert_eq!(t.len(), 1);
    assert_eq!(
        (t[0].to, t[0].reason),
        (
            State::Open,
            TransitionReason::ProbeRateExceeded(TripRule::FailureRate)
        )
    );
    // Slow probes reopen by the slow-call rate, and say so.
    let mut b = rate_verdict_breaker(50, Some(75));
    let t = probe(&mut b, [(S, 1), (S, 2), (S, 1), (S, 0)]);
    assert_eq!(
        t[0].reason,
        TransitionReason::ProbeRateExceeded(TripRule::SlowCallRate)
    );
    // Both rates reached: the failure rate is named.
    let mut b = rate_verdict_breaker(50, Some(50));
    let t = probe(&mut b, [(F, 1), (F, 1), (S, 0), (S, 0)]);
    assert_eq!(
        t[0].reason,
        TransitionReason::ProbeRateExceeded(TripRule::FailureRate)
    );
    let mut b = rate_verdict_breaker(50, Some(75));
    let t = probe(&mut b, [(S, 1), (S, 2), (S, 0), (S, 0)]);
    assert_eq!(t[0].to, State::Closed);
}

#[test]
fn rate_verdict_ignored_probes_count_nothing() {
    let mut b = rate_verdict_breaker(50, None);
    let t = probe(
        &mut b,
        [
            (Outcome::Ignored, 0),
            (Outcome::Success, 0),
            (Outcome::Success, 0),
            (Outcome::Success, 0),
        ],
    );
    assert!(t.is_empty(), "three results of four");
    assert_eq!(b.state(), State::HalfOpen);
    let p = b.try_acquire_at(Instant::from_secs(6)).result.unwrap();
    let t = b
        .record_at(p, Outcome::Failure, Instant::from_secs(6))
        .transition
        .unwrap();
    assert_eq!(t.to, State::Closed, "1 failure of 4 = 25 %");
}

// Written against mutants that survived `cargo mutants`.

#[test]
fn slow_calls_leave_a_full_count_window_one_at_a_time() {
    let mut w = CountWindow::<2>::new(Thresholds::new().slow_rate(Ratio::percent(100))).unwrap();
    assert!(!w.record(SLOW_OK));
    assert!(w.record(SLOW_OK), "2 of 2 slow");
    assert!(!w.record(OK), "the first slow call left: 1 of 2");
    assert_eq!(w.counts().slow, 1);
    assert!(!w.record(OK));
    assert_eq!(w.counts().slow, 0);
}

#[test]
fn thresholds_report_their_minimum() {
    assert_eq!(rate(50).minimum(), None);
    assert_eq!(rate(50).minimum_calls(7).minimum(), Some(7));
}

#[test]
fn a_time_windows_counts_reach_the_metrics() {
    let policy =
        TimeWindow::<4>::new(StdDuration::from_secs(1), rate(90).minimum_calls(2)).unwrap();
    let mut b: Breaker<_, Frozen, 4> = Breaker::new(Config::DEFAULT, policy, Frozen);
    for outcome in [Outcome::Failure, Outcome::Success] {
        let p = b.try_acquire_at(Instant::from_secs(1)).result.unwrap();
        let _ = b.record_at(p, outcome, Instant::from_secs(1));
    }
    assert_eq!(
        b.metrics_at(Instant::from_secs(1)).failure_rate,
        Some(Ratio::new(1, 2))
    );
    let w = b.policy().window(Instant::from_secs(1)).unwrap();
    assert_eq!((w.calls, w.failures, w.minimum_calls), (2, 1, 2));
}

#[test]
fn either_of_two_reports_the_first_window_and_frees_successes_only_if_both_do() {
    let consecutive = ConsecutiveFailures::new(3).unwrap();
    let mut p = (CountWindow::<4>::new(rate(90)).unwrap(), consecutive);
    assert!(
        !p.success_is_noop(),
        "a window not yet full counts a success"
    );
    p.record(FAIL);
    assert_eq!(p.window(Instant::ZERO).map(|w| w.failures), Some(1));
    let mut q = (consecutive, consecutive);
    assert!(q.success_is_noop());
    q.record(FAIL);
    assert!(!q.success_is_noop(), "a run of failures to reset");
    assert_eq!(q.window(Instant::ZERO), None);
}

#[test]
fn a_full_count_window_of_successes_is_the_only_one_that_skips_a_success() {
    let mut w = CountWindow::<3>::new(rate(50)).unwrap();
    for _ in 0..2 {
        w.record(OK);
        assert!(!w.success_is_noop(), "not full yet: the call count moves");
    }
    w.record(OK);
    assert!(w.success_is_noop());
    w.record(FAIL);
    assert!(
        !w.success_is_noop(),
        "a success would push out a success, keep the failure"
    );
    for _ in 0..2 {
        w.record(OK);
        assert!(!w.success_is_noop(), "the failure is still in the window");
    }
    w.record(OK);
    assert!(w.success_is_noop(), "the failure has left");
    let slow = CallRecord {
        failed: false,
        slow: true,
        at: Instant::ZERO,
    };
    w.record(slow);
    assert!(!w.success_is_noop(), "a slow call is in the window");
    let time = TimeWindow::<2>::new(core::time::Duration::from_secs(1), rate(50)).unwrap();
    assert!(
        !time.success_is_noop(),
        "a time window always counts a success"
    );
}

/// A window sized at run time within a larger ring is the window of that
/// size: the same trips and counts, call by call.
#[test]
fn a_sized_window_is_the_window_of_its_size() {
    let t = Thresholds::new()
        .failure_rate(Ratio::percent(50))
        .slow_rate(Ratio::percent(75))
        .minimum_calls(3);
    let mut exact = CountWindow::<5>::new(t).unwrap();
    let mut sized = CountWindow::<64>::sized(5, t).unwrap();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for i in 0..500 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let call = CallRecord {
            failed: seed & 3 == 0,
            slow: seed & 12 == 0,
            at: Instant::ZERO,
        };
        if i % 97 == 0 {
            exact.reset(Instant::ZERO);
            sized.reset(Instant::ZERO);
        }
        assert_eq!(exact.record(call), sized.record(call), "call {i}");
        assert_eq!(exact.counts(), sized.counts(), "call {i}");
        assert_eq!(exact.success_is_noop(), sized.success_is_noop(), "call {i}");
    }
    assert_eq!(CountWindow::<4>::sized(0, t), Err(ConfigError::WindowSize));
    assert_eq!(CountWindow::<4>::sized(5, t), Err(ConfigError::WindowSize));
    assert_eq!(
        CountWindow::<4>::sized(2, t),
        Err(ConfigError::MinimumCalls)
    );
}
