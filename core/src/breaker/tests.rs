use core::cell::Cell;
use core::time::Duration as StdDuration;

use super::*;
use crate::time::Frozen;
use crate::{ConfigBuilder, ReadyToTrip, RunCounts, TripRule};

extern crate std;
use std::vec::Vec;

type Test<P = ConsecutiveFailures> = Breaker<P, Frozen, 8>;

fn secs(s: u64) -> Instant {
    Instant::from_secs(s)
}

fn config(f: impl FnOnce(ConfigBuilder) -> ConfigBuilder) -> Config {
    f(Config::builder()).build().unwrap()
}

fn breaker(threshold: u32, config: Config) -> Test {
    Breaker::with_history(config, ConsecutiveFailures::new(threshold).unwrap(), Frozen)
}

/// Admits a call at `t` and reports `outcome` at `t`.
fn run<P: TripPolicy>(b: &mut Breaker<P, Frozen, 8>, outcome: Outcome, t: Instant) -> Report {
    let permit = b.try_acquire_at(t).result.expect("admitted");
    b.record_at(permit, outcome, t)
}

/// Trips a breaker with the given threshold at `t`.
fn trip<P: TripPolicy>(b: &mut Breaker<P, Frozen, 8>, failures: u32, t: Instant) -> Transition {
    for _ in 1..failures {
        assert_eq!(run(b, Outcome::Failure, t).transition, None);
    }
    run(b, Outcome::Failure, t).transition.expect("trips")
}

fn until(b: &Test) -> Instant {
    match b.phase() {
        Phase::Open { until } => until,
        other => panic!("expected open, got {other:?}"),
    }
}

#[test]
fn closed_trips_exactly_at_the_threshold() {
    let mut b = breaker(3, Config::DEFAULT);
    assert_eq!(run(&mut b, Outcome::Failure, secs(1)).transition, None);
    assert_eq!(run(&mut b, Outcome::Failure, secs(1)).transition, None);
    let t = run(&mut b, Outcome::Failure, secs(2)).transition.unwrap();
    assert_eq!(
        t,
        Transition {
            from: State::Closed,
            to: State::Open,
            at: secs(2),
            reason: TransitionReason::Tripped(TripRule::ConsecutiveFailures),
            generation: 1,
        }
    );
    assert_eq!(b.phase(), Phase::Open { until: secs(7) });
    assert_eq!(b.last_transition(), Some(&t));
}

#[test]
fn success_in_between_restarts_the_count() {
    let mut b = breaker(2, Config::DEFAULT);
    let _ = run(&mut b, Outcome::Failure, secs(0));
    let _ = run(&mut b, Outcome::Success, secs(0));
    let _ = run(&mut b, Outcome::Failure, secs(0));
    assert_eq!(b.state(), State::Closed);
    // Ignored outcomes do not break the run.
    let _ = run(&mut b, Outcome::Ignored, secs(0));
    assert!(run(&mut b, Outcome::Failure, secs(0)).transition.is_some());
}

#[test]
fn open_rejects_with_exact_retry_after_until_the_deadline() {
    let mut b = breaker(1, Config::DEFAULT);
    trip(&mut b, 1, secs(10));
    for (at, left) in [
        (10_000_000, 5_000_000),
        (12_500_000, 2_500_000),
        (14_999_999, 1),
    ] {
        let r = b
            .try_acquire_at(Instant::from_micros(at))
            .result
            .unwrap_err();
        assert_eq!(r.reason, RejectReason::Open);
        assert_eq!(r.retry_after(), Some(StdDuration::from_micros(left)));
    }
    assert_eq!(b.counts().rejected, 3);
    let a = b.try_acquire_at(secs(15));
    let permit = a.result.unwrap();
    assert_eq!(permit.state(), State::HalfOpen);
    assert_eq!(permit.started(), secs(15));
    let t = a.transition.unwrap();
    assert_eq!(
        (t.from, t.to, t.reason, t.at),
        (
            State::Open,
            State::HalfOpen,
            TransitionReason::OpenElapsed,
            secs(15)
        )
    );
}

#[test]
fn half_open_admits_at_most_max_probes() {
    let mut b = breaker(1, config(|c| c.max_probes(3).successes_to_close(5)));
    trip(&mut b, 1, secs(0));
    let permits: Vec<_> = (0..3)
        .map(|_| b.try_acquire_at(secs(5)).result.unwrap())
        .collect();
    let full = b.try_acquire_at(secs(5)).result.unwrap_err();
    assert_eq!(full, Rejected::new(RejectReason::HalfOpenFull, None));
    assert_eq!(b.metrics_at(secs(5)).probes_in_flight, 3);
    assert_eq!(b.metrics_at(secs(5)).next_probe_at, None);
    // A report frees a slot.
    let mut permits = permits.into_iter();
    let _ = b.record_at(permits.next().unwrap(), Outcome::Success, secs(6));
    assert_eq!(b.metrics_at(secs(6)).next_probe_at, Some(secs(6)));
    assert!(b.try_acquire_at(secs(6)).result.is_ok());
    assert!(b.try_acquire_at(secs(6)).result.is_err());
}

#[test]
fn enough_successes_close_and_leave_other_probes_stale() {
    let mut b = breaker(1, config(|c| c.max_probes(3).successes_to_close(2)));
    trip(&mut b, 1, secs(0));
    let p1 = b.try_acquire_at(secs(5)).result.unwrap();
    let p2 = b.try_acquire_at(secs(5)).result.unwrap();
    let p3 = b.try_acquire_at(secs(5)).result.unwrap();
    assert_eq!(b.record_at(p1, Outcome::Success, secs(6)).transition, None);
    let closing = b.record_at(p2, Outcome::Success, secs(6));
    let t = closing.transition.unwrap();
    assert_eq!(
        (t.from, t.to, t.reason),
        (
            State::HalfOpen,
            State::Closed,
            TransitionReason::ProbesSucceeded
        )
    );
    let before = b.counts();
    let late = b.record_at(p3, Outcome::Failure, secs(7));
    assert_eq!(late.status, ReportStatus::Stale);
    assert_eq!(late.transition, None);
    assert_eq!(b.state(), State::Closed);
    assert_eq!(b.counts().failures, before.failures);
    assert_eq!(b.counts().stale, before.stale + 1);
}

#[test]
fn any_probe_failure_reopens() {
    let mut b = breaker(1, config(|c| c.max_probes(2).successes_to_close(2)));
    trip(&mut b, 1, secs(0));
    let p1 = b.try_acquire_at(secs(5)).result.unwrap();
    let p2 = b.try_acquire_at(secs(5)).result.unwrap();
    let _ = b.record_at(p1, Outcome::Success, secs(6));
    let t = b
        .record_at(p2, Outcome::Failure, secs(6))
        .transition
        .unwrap();
    assert_eq!(
        (t.from, t.to, t.reason),
        (State::HalfOpen, State::Open, TransitionReason::ProbeFailed)
    );
    assert_eq!(until(&b), secs(11));
}

#[test]
fn ignored_probe_gives_its_slot_back_and_counts_nothing() {
    let mut b = breaker(1, Config::DEFAULT);
    trip(&mut b, 1, secs(0));
    let p = b.try_acquire_at(secs(5)).result.unwrap();
    assert!(b.try_acquire_at(secs(5)).result.is_err());
    let report = b.record_at(p, Outcome::Ignored, secs(5));
    assert_eq!(
        report,
        Report {
            status: ReportStatus::Recorded,
            transition: None
        }
    );
    assert_eq!(b.state(), State::HalfOpen);
    assert_eq!(b.counts().ignored, 1);
    assert_eq!(b.counts().successes, 0);
    let p = b.try_acquire_at(secs(6)).result.unwrap();
    assert_eq!(
        b.record_at(p, Outcome::Success, secs(6))
            .transition
            .unwrap()
            .to,
        State::Closed
    );
}

#[test]
fn unreported_probe_fails_when_its_lease_ends() {
    let mut b = breaker(1, config(|c| c.probe_lease(StdDuration::from_secs(10))));
    trip(&mut b, 1, secs(0));
    let lost = b.try_acquire_at(secs(5)).result.unwrap();
    // Still within the lease: half-open is full, not expired.
    let r = b
        .try_acquire_at(Instant::from_micros(14_999_999))
        .result
        .unwrap_err();
    assert_eq!(r.reason, RejectReason::HalfOpenFull);
    // At the lease's end the probe counts as failed: reopen, reject with the new deadline.
    let a = b.try_acquire_at(secs(15));
    let t = a.transition.unwrap();
    assert_eq!(
        (t.from, t.to, t.reason),
        (
            State::HalfOpen,
            State::Open,
            TransitionReason::ProbeLeaseExpired
        )
    );
    assert_eq!(
        a.result.unwrap_err(),
        Rejected::new(RejectReason::Open, Some(StdDuration::from_secs(5)))
    );
    // The lost permit, found at last, is stale.
    assert!(b.record_at(lost, Outcome::Success, secs(16)).is_stale());
    assert_eq!(b.state(), State::Open);
}

#[test]
fn late_report_past_the_lease_is_stale_and_reopens() {
    let mut b = breaker(1, config(|c| c.probe_lease(StdDuration::from_secs(10))));
    trip(&mut b, 1, secs(0));
    let p = b.try_acquire_at(secs(5)).result.unwrap();
    let report = b.record_at(p, Outcome::Success, secs(15));
    assert_eq!(report.status, ReportStatus::Stale);
    assert_eq!(
        report.transition.unwrap().reason,
        TransitionReason::ProbeLeaseExpired
    );
    assert_eq!(b.state(), State::Open);
}

#[test]
fn lease_runs_from_the_first_probe_in_flight_and_restarts_when_none_is() {
    let mut b = breaker(
        1,
        config(|c| {
            c.max_probes(2)
                .successes_to_close(9)
                .probe_lease(StdDuration::from_secs(10))
        }),
    );
    trip(&mut b, 1, secs(0));
    let p1 = b.try_acquire_at(secs(5)).result.unwrap();
    let _ = b.record_at(p1, Outcome::Success, secs(6)); // none in flight: lease restarts
    let _p2 = b.try_acquire_at(secs(8)).result.unwrap();
    let _p3 = b.try_acquire_at(secs(12)).result.unwrap(); // does not extend the lease
    assert!(b
        .try_acquire_at(Instant::from_micros(17_999_999))
        .transition
        .is_none());
    let t = b.try_acquire_at(secs(18)).transition.unwrap();
    assert_eq!(t.reason, TransitionReason::ProbeLeaseExpired);
}

#[test]
fn half_open_never_wedges_even_if_every_permit_is_lost() {
    let mut b = breaker(
        1,
        config(|c| c.max_probes(2).probe_lease(StdDuration::from_secs(1))),
    );
    trip(&mut b, 1, secs(0));
    let mut t = secs(5);
    for _ in 0..5 {
        // Acquire everything half-open gives and lose it.
        while let Ok(permit) = b.try_acquire_at(t).result {
            drop(permit); // lost: never reported
        }
        t = t.saturating_add(Duration::from_secs(1));
        let _ = b.try_acquire_at(t); // lease ends: reopen
        assert_eq!(b.state(), State::Open);
        t = until(&b);
    }
    // And it still closes once the dependency answers.
    assert_eq!(
        run(&mut b, Outcome::Success, t).transition.unwrap().to,
        State::Closed
    );
}

#[test]
fn stale_permits_change_nothing() {
    let mut b = breaker(2, Config::DEFAULT);
    let old = b.try_acquire_at(secs(0)).result.unwrap();
    let old2 = b.try_acquire_at(secs(0)).result.unwrap();
    trip(&mut b, 2, secs(0));
    let phase = b.phase();
    let counts = b.counts();
    let report = b.record_at(old, Outcome::Failure, secs(1));
    assert_eq!(
        report,
        Report {
            status: ReportStatus::Stale,
            transition: None
        }
    );
    assert_eq!(b.phase(), phase);
    assert_eq!(
        b.counts(),
        Counts {
            stale: counts.stale + 1,
            ..counts
        }
    );
    // Nor can a closed-era success close a later half-open.
    let _probe = b.try_acquire_at(secs(5)).result.unwrap();
    assert!(b.record_at(old2, Outcome::Success, secs(5)).is_stale());
    assert_eq!(b.state(), State::HalfOpen);
}

#[test]
fn forced_open_rejects_until_released() {
    let mut b = breaker(1, Config::DEFAULT);
    let t = b.force_open_at(secs(1)).unwrap();
    assert_eq!(
        (t.from, t.to, t.reason),
        (
            State::Closed,
            State::ForcedOpen,
            TransitionReason::ForcedOpen
        )
    );
    assert_eq!(b.force_open_at(secs(1)), None);
    for at in [secs(2), secs(1_000_000)] {
        let r = b.try_acquire_at(at).result.unwrap_err();
        assert_eq!(r, Rejected::new(RejectReason::ForcedOpen, None));
    }
    let t = b.release_at(secs(3)).unwrap();
    assert_eq!(
        (t.from, t.to, t.reason),
        (State::ForcedOpen, State::Closed, TransitionReason::Released)
    );
    assert_eq!(b.release_at(secs(3)), None);
}

#[test]
fn disabled_permits_everything_and_records_nothing() {
    let mut b = breaker(1, Config::DEFAULT);
    b.disable_at(secs(0)).unwrap();
    assert_eq!(b.disable_at(secs(0)), None);
    let counts = b.counts();
    for _ in 0..10 {
        let report = run(&mut b, Outcome::Failure, secs(1));
        assert_eq!(report.status, ReportStatus::Recorded);
    }
    let _ = run(&mut b, Outcome::Ignored, secs(1));
    assert_eq!(b.state(), State::Disabled);
    assert_eq!(b.counts(), counts);
    b.release_at(secs(2)).unwrap();
    assert!(run(&mut b, Outcome::Failure, secs(2)).transition.is_some());
}

#[test]
fn metrics_only_records_but_never_trips() {
    let mut b = breaker(1, Config::DEFAULT);
    trip(&mut b, 1, secs(0));
    let t = b.measure_only_at(secs(1)).unwrap();
    assert_eq!((t.from, t.to), (State::Open, State::MetricsOnly));
    for _ in 0..5 {
        assert_eq!(run(&mut b, Outcome::Failure, secs(1)).transition, None);
    }
    assert_eq!(b.state(), State::MetricsOnly);
    assert_eq!(b.counts().failures, 6);
    assert_eq!(b.measure_only_at(secs(1)), None);
    // Released, the policy starts afresh: one failure trips the threshold of 1.
    b.release_at(secs(2)).unwrap();
    assert_eq!(b.policy().consecutive_failures(), 0);
}

#[test]
fn reset_gives_closed_empty_and_a_new_generation_from_any_state() {
    let mut b = breaker(2, Config::DEFAULT);
    let setups: [fn(&mut Test); 5] = [
        |_| {},
        |b| {
            trip(b, 2, secs(0));
        },
        |b| {
            trip(b, 2, secs(0));
            let _ = b.try_acquire_at(secs(5));
        },
        |b| {
            b.force_open_at(secs(0));
        },
        |b| {
            b.disable_at(secs(0));
        },
    ];
    for setup in setups {
        setup(&mut b);
        let out = b.try_acquire_at(secs(9)).result;
        let generation = b.generation();
        let t = b.reset_at(secs(10)).expect("a reset always transitions");
        assert_eq!(
            (t.to, t.reason, t.generation),
            (State::Closed, TransitionReason::Reset, generation + 1)
        );
        assert_eq!(b.state(), State::Closed);
        assert_eq!(b.counts(), Counts::default());
        assert_eq!(b.policy().consecutive_failures(), 0);
        if let Ok(permit) = out {
            assert!(b.record_at(permit, Outcome::Failure, secs(10)).is_stale());
        }
    }
}

#[test]
fn generation_increases_by_one_on_every_transition() {
    let mut b = breaker(1, Config::DEFAULT);
    let mut seen = Vec::new();
    seen.push(trip(&mut b, 1, secs(0)));
    seen.extend(b.try_acquire_at(secs(5)).transition);
    seen.push(b.force_open_at(secs(6)).unwrap());
    seen.push(b.release_at(secs(6)).unwrap());
    seen.push(b.reset_at(secs(6)).unwrap());
    let generations: Vec<u64> = seen.iter().map(|t| t.generation).collect();
    assert_eq!(generations, [1, 2, 3, 4, 5]);
    assert_eq!(b.generation(), 5);
    let history: Vec<Transition> = b.history().copied().collect();
    assert_eq!(history, seen);
}

#[test]
fn history_keeps_the_last_h_oldest_first() {
    let mut b: Breaker<ConsecutiveFailures, Frozen, 2> = Breaker::with_history(
        Config::DEFAULT,
        ConsecutiveFailures::new(1).unwrap(),
        Frozen,
    );
    for i in 0..5 {
        let _ = b.force_open_at(secs(i));
        let _ = b.release_at(secs(i));
    }
    let reasons: Vec<_> = b.history().map(|t| (t.reason, t.at)).collect();
    assert_eq!(
        reasons,
        [
            (TransitionReason::ForcedOpen, secs(4)),
            (TransitionReason::Released, secs(4))
        ]
    );
}

#[test]
fn exponential_backoff_grows_caps_and_resets_on_close() {
    let c = config(|c| {
        c.exponential_backoff(StdDuration::from_secs(1), StdDuration::from_secs(5), 2, 1)
    });
    let mut b = breaker(1, c);
    let mut t = secs(0);
    trip(&mut b, 1, t);
    let mut durations = Vec::new();
    for _ in 0..5 {
        durations.push(until(&b).saturating_duration_since(t).as_micros() / 1_000_000);
        t = until(&b);
        let _ = run(&mut b, Outcome::Failure, t); // the probe fails: reopen
    }
    assert_eq!(durations, [1, 2, 4, 5, 5]);
    t = until(&b);
    let _ = run(&mut b, Outcome::Success, t);
    assert_eq!(b.state(), State::Closed);
    trip(&mut b, 1, t);
    assert_eq!(
        until(&b).saturating_duration_since(t),
        Duration::from_secs(1)
    );
}

/// Jitter samples per test (fewer under Miri).
const SAMPLES: usize = if cfg!(miri) { 60 } else { 500 };

fn open_durations(jitter: Jitter, seed: u64, n: usize) -> Vec<u64> {
    let c = config(|c| {
        c.open_duration(StdDuration::from_secs(10))
            .jitter(jitter)
            .jitter_seed(seed)
    });
    let mut b = breaker(1, c);
    (0..n)
        .map(|_| {
            trip(&mut b, 1, secs(100));
            let d = until(&b).saturating_duration_since(secs(100)).as_micros();
            let _ = b.reset_at(secs(100));
            d
        })
        .collect()
}

#[test]
fn full_jitter_stays_within_zero_and_d() {
    let d = open_durations(Jitter::Full, 1, SAMPLES);
    assert!(d.iter().all(|&x| x <= 10_000_000));
    assert!(
        d.iter().any(|&x| x < 2_000_000) && d.iter().any(|&x| x > 8_000_000),
        "spread"
    );
}

#[test]
fn equal_jitter_stays_within_half_d_and_d() {
    let d = open_durations(Jitter::Equal, 2, SAMPLES);
    assert!(d.iter().all(|&x| (5_000_000..=10_000_000).contains(&x)));
    assert!(
        d.iter().any(|&x| x < 6_000_000) && d.iter().any(|&x| x > 9_000_000),
        "spread"
    );
}

#[test]
fn jitter_is_deterministic_per_seed() {
    assert_eq!(
        open_durations(Jitter::Full, 7, 20),
        open_durations(Jitter::Full, 7, 20)
    );
    assert_ne!(
        open_durations(Jitter::Full, 7, 20),
        open_durations(Jitter::Full, 8, 20)
    );
    assert_eq!(open_durations(Jitter::None, 7, 3), [10_000_000; 3]);
}

#[test]
fn slow_calls_are_counted_from_the_threshold_whatever_the_outcome() {
    let c = config(|c| c.slow_call_threshold(StdDuration::from_millis(100)));
    let mut b = breaker(5, c);
    let cases = [
        (99_999, Outcome::Success, 0),
        (100_000, Outcome::Success, 1),
        (250_000, Outcome::Failure, 2),
    ];
    for (took, outcome, slow) in cases {
        let p = b.try_acquire_at(secs(1)).result.unwrap();
        assert_eq!(p.started(), secs(1));
        let _ = b.record_at(
            p,
            outcome,
            secs(1).saturating_add(Duration::from_micros(took)),
        );
        assert_eq!(b.counts().slow, slow);
    }
    // A clock that stepped back makes a call short, never slow.
    let p = b.try_acquire_at(secs(9)).result.unwrap();
    let _ = b.record_at(p, Outcome::Success, secs(1));
    assert_eq!(b.counts().slow, 2);
}

#[test]
fn backwards_clock_delays_but_never_trips_or_closes() {
    let mut b = breaker(2, Config::DEFAULT);
    let _ = run(&mut b, Outcome::Success, secs(100));
    let _ = run(&mut b, Outcome::Success, secs(3));
    assert_eq!(b.state(), State::Closed);
    trip(&mut b, 2, secs(100));
    // The clock steps back: the probe is delayed, but never by more than
    // one open duration from the new reading, and the rejection says so.
    let r = b.try_acquire_at(secs(50)).result.unwrap_err();
    assert_eq!(r.retry_after(), Some(StdDuration::from_secs(5)));
    assert_eq!(b.state(), State::Open);
    assert!(b.try_acquire_at(secs(54)).result.is_err());
    let probe = b.try_acquire_at(secs(55)).result.unwrap();
    // Back again inside half-open: the lease does not end early.
    assert!(b.try_acquire_at(secs(1)).transition.is_none());
    assert_eq!(b.state(), State::HalfOpen);
    let _ = b.record_at(probe, Outcome::Success, secs(2));
    assert_eq!(
        b.state(),
        State::Closed,
        "the probe's own success closes it"
    );
    assert_eq!(b.metrics_at(secs(0)).time_in_state, StdDuration::ZERO);
}

#[test]
fn clock_at_max_never_panics_and_never_closes() {
    let mut b = breaker(1, Config::DEFAULT);
    let _ = run(&mut b, Outcome::Success, Instant::MAX);
    trip(&mut b, 1, Instant::MAX);
    assert_eq!(until(&b), Instant::MAX);
    for _ in 0..10 {
        if let Ok(p) = b.try_acquire_at(Instant::MAX).result {
            let _ = b.record_at(p, Outcome::Success, Instant::MAX);
        }
        assert_ne!(b.state(), State::Closed);
    }
    let m = b.metrics_at(Instant::MAX);
    assert!(m.counts.calls > 0);
}

#[test]
fn one_clock_reading_of_instant_max_cannot_keep_the_breaker_open() {
    let mut b = breaker(1, Config::DEFAULT);
    trip(&mut b, 1, Instant::MAX);
    assert_eq!(until(&b), Instant::MAX);
    // The clock reads right again: at most one open duration (5 s) to wait.
    let r = b.try_acquire_at(secs(10)).result.unwrap_err();
    assert_eq!(r.retry_after(), Some(StdDuration::from_secs(5)));
    assert_eq!(b.poll_at(secs(10)), Some(secs(15)));
    let probe = b.try_acquire_at(secs(15)).result.expect("a probe, 5 s on");
    let _ = b.record_at(probe, Outcome::Success, secs(15));
    assert_eq!(b.state(), State::Closed);

    // A probe leased at `Instant::MAX` holds its slot one lease at most.
    trip(&mut b, 1, secs(20));
    let probe = b.try_acquire_at(Instant::MAX).result.unwrap();
    let lease = Duration::from_core(Config::DEFAULT.probe_lease());
    let end = secs(30).saturating_add(lease);
    let busy = b.try_acquire_at(secs(30)).result.unwrap_err();
    assert_eq!(busy.reason, RejectReason::HalfOpenFull);
    assert_eq!(
        b.poll_at(secs(30)),
        Some(end),
        "one lease from the first right reading"
    );
    let r = b.try_acquire_at(end).result.unwrap_err();
    assert_eq!(
        r.retry_after(),
        Some(StdDuration::from_secs(5)),
        "lease over: open again"
    );
    assert!(b.record_at(probe, Outcome::Success, end).is_stale());
    assert!(b
        .try_acquire_at(end.saturating_add(Duration::from_secs(5)))
        .result
        .is_ok());
}

#[test]
fn counters_saturate() {
    let mut b = breaker(u32::MAX, Config::DEFAULT);
    b.machine.counts = Counts {
        calls: u64::MAX,
        successes: u64::MAX,
        failures: u64::MAX,
        slow: u64::MAX,
        ignored: u64::MAX,
        rejected: u64::MAX,
        stale: u64::MAX,
    };
    let _ = run(&mut b, Outcome::Success, secs(0));
    let _ = run(&mut b, Outcome::Failure, secs(0));
    let _ = run(&mut b, Outcome::Ignored, secs(0));
    assert_eq!(b.counts().calls, u64::MAX);
    assert_eq!(b.counts().failures, u64::MAX);
    b.machine.generation = u64::MAX;
    assert_eq!(b.force_open_at(secs(0)).unwrap().generation, 0);
}

#[test]
fn metrics_report_state_time_and_next_probe() {
    let mut b = breaker(1, Config::DEFAULT);
    let _ = run(&mut b, Outcome::Success, secs(1));
    let m = b.metrics_at(secs(4));
    assert_eq!(m.state, State::Closed);
    assert_eq!(m.time_in_state, StdDuration::from_secs(4));
    assert_eq!(m.next_probe_at, None);
    assert_eq!(
        (m.failure_rate, m.slow_rate),
        (None, None),
        "no window, no rates"
    );
    trip(&mut b, 1, secs(10));
    let m = b.metrics_at(secs(12));
    assert_eq!((m.state, m.generation), (State::Open, 1));
    assert_eq!(m.time_in_state, StdDuration::from_secs(2));
    assert_eq!(m.next_probe_at, Some(secs(15)));
    assert_eq!(
        (m.counts.calls, m.counts.successes, m.counts.failures),
        (2, 1, 1)
    );
}

#[test]
fn rates_come_from_the_policy_window() {
    let policy = ReadyToTrip::new(|c: &RunCounts| c.calls >= 100);
    let c = config(|c| c.slow_call_threshold(StdDuration::from_secs(1)));
    let mut b: Breaker<_, Frozen, 8> = Breaker::with_history(c, policy, Frozen);
    assert_eq!(
        b.metrics_at(secs(0)).failure_rate,
        None,
        "an empty window has no rate"
    );
    let _ = run(&mut b, Outcome::Failure, secs(0));
    let p = b.try_acquire_at(secs(0)).result.unwrap();
    let _ = b.record_at(p, Outcome::Success, secs(2));
    let m = b.metrics_at(secs(2));
    assert_eq!(m.failure_rate, Some(Ratio::new(1, 2)));
    assert_eq!(m.slow_rate, Some(Ratio::new(1, 2)));
}

/// A clock that counts how often it is read.
struct CountingClock {
    reads: Cell<u32>,
}

impl Clock for CountingClock {
    fn now(&self) -> Instant {
        self.reads.set(self.reads.get() + 1);
        Instant::from_secs(self.reads.get() as u64)
    }
}

#[test]
fn closed_hot_path_never_reads_the_clock_and_rejection_reads_it_once() {
    let clock = CountingClock {
        reads: Cell::new(0),
    };
    let mut b: Breaker<_, _> = Breaker::new(
        Config::DEFAULT,
        ConsecutiveFailures::new(2).unwrap(),
        &clock,
    );
    for _ in 0..100 {
        let p = b.try_acquire().result.unwrap();
        let _ = b.record(p, Outcome::Success);
    }
    let p = b.try_acquire().result.unwrap();
    let _ = b.record(p, Outcome::Failure);
    assert_eq!(clock.reads.get(), 0);
    let p = b.try_acquire().result.unwrap();
    assert!(b.record(p, Outcome::Failure).transition.is_some());
    assert_eq!(clock.reads.get(), 1, "tripping needs the time once");
    let _ = b.try_acquire();
    assert_eq!(clock.reads.get(), 2, "a rejection reads the clock once");
}

#[test]
fn slow_call_tracking_reads_the_clock_on_both_steps() {
    let clock = CountingClock {
        reads: Cell::new(0),
    };
    let c = config(|c| c.slow_call_threshold(StdDuration::from_secs(1)));
    let mut b: Breaker<_, _> = Breaker::new(c, ConsecutiveFailures::new(2).unwrap(), &clock);
    let p = b.try_acquire().result.unwrap();
    assert_eq!(p.started(), secs(1));
    let _ = b.record(p, Outcome::Success);
    assert_eq!(clock.reads.get(), 2);
    assert_eq!(b.counts().slow, 1, "took 1 s by the counting clock");
}

#[test]
fn call_does_not_run_the_operation_when_rejected() {
    let mut b = breaker(1, Config::DEFAULT);
    assert_eq!(b.call(|| Err::<(), _>(7)), Err(CallError::Inner(7)));
    let mut ran = false;
    let r = b.call(|| {
        ran = true;
        Ok::<_, ()>(())
    });
    assert!(!ran);
    assert!(r.unwrap_err().is_rejected());
    assert_eq!(CallError::<u8>::Inner(3).into_inner(), Some(3));
}

#[test]
fn call_classified_can_ignore_and_count_errors_as_success() {
    let mut b = breaker(1, Config::DEFAULT);
    let r = b.call_classified(|| Err::<(), _>("cancelled"), |_| Outcome::Ignored);
    assert_eq!(r, Err(CallError::Inner("cancelled")));
    assert_eq!((b.state(), b.counts().ignored), (State::Closed, 1));
    let r = b.call_classified(|| Ok::<_, ()>(5), |_| Outcome::Failure);
    assert_eq!(r, Ok(5));
    assert_eq!(b.state(), State::Open);
}

#[test]
fn errors_display_and_chain() {
    use std::string::ToString;
    let r = Rejected::new(RejectReason::Open, Some(StdDuration::from_millis(1_500)));
    assert_eq!(
        r.to_string(),
        "the circuit breaker is open; retry after 1.5s"
    );
    let full = Rejected::new(RejectReason::HalfOpenFull, None);
    assert!(full.to_string().contains("half-open"));
    let busy = Rejected::new(RejectReason::Busy, None);
    assert!(busy
        .to_string()
        .contains("busy in the code this call interrupted"));
    let e: CallError<Rejected> = CallError::Inner(full);
    assert_eq!(
        chain(&e),
        "the call failed: the circuit breaker is half-open and its probes are busy"
    );
    let rejected: CallError<Rejected> = CallError::Rejected(r);
    assert_eq!(chain(&rejected), r.to_string());
    assert_eq!(State::HalfOpen.to_string(), "half-open");
    let t = Transition {
        from: State::Closed,
        to: State::Open,
        at: secs(2),
        reason: TransitionReason::Tripped(TripRule::ConsecutiveFailures),
        generation: 1,
    };
    assert_eq!(
        t.to_string(),
        "closed -> open (tripped by consecutive failures) at t=2s, generation 1"
    );
}

#[test]
fn next_probe_is_unknown_once_the_lease_has_ended() {
    let mut b = breaker(
        1,
        config(|c| c.max_probes(2).probe_lease(StdDuration::from_secs(10))),
    );
    trip(&mut b, 1, secs(0));
    let _p = b.try_acquire_at(secs(5)).result.unwrap();
    assert_eq!(b.metrics_at(secs(14)).next_probe_at, Some(secs(14)));
    assert_eq!(b.metrics_at(secs(15)).next_probe_at, None);
    assert_eq!(b.metrics_at(secs(15)).probes_in_flight, 1);
}

// Written against mutants that survived `cargo mutants`.

#[test]
fn an_old_lease_does_not_end_a_half_open_with_no_probe_out() {
    let mut b = breaker(
        1,
        config(|c| {
            c.max_probes(2)
                .successes_to_close(3)
                .probe_lease(StdDuration::from_secs(10))
        }),
    );
    trip(&mut b, 1, secs(0));
    let p = b.try_acquire_at(secs(5)).result.unwrap();
    let _ = b.record_at(p, Outcome::Success, secs(6)); // none out now; the old lease ran to 15 s
    assert_eq!(b.metrics_at(secs(20)).next_probe_at, Some(secs(20)));
    let late = b.try_acquire_at(secs(20));
    assert_eq!(late.transition, None, "no probe was out, so no lease ended");
    let p = late.result.expect("admitted as a probe");
    assert_eq!(
        b.record_at(p, Outcome::Success, secs(21)).status,
        ReportStatus::Recorded
    );
    // And a report with nothing out does not end a lease either.
    let q = b.try_acquire_at(secs(21)).result.unwrap();
    let _ = b.record_at(q, Outcome::Ignored, secs(21));
    let stale_free = b.try_acquire_at(secs(40)).result.unwrap();
    let closing = b.record_at(stale_free, Outcome::Success, secs(40));
    assert_eq!(closing.transition.map(|t| t.to), Some(State::Closed));
}

#[test]
fn thin_methods_read_the_breakers_clock() {
    let clock = crate::ManualClock::starting_at(secs(3));
    let mut b: Breaker<ConsecutiveFailures, &crate::ManualClock> = Breaker::new(
        Config::DEFAULT,
        ConsecutiveFailures::new(1).unwrap(),
        &clock,
    );
    let t = b.force_open().unwrap();
    assert_eq!((t.to, t.at), (State::ForcedOpen, secs(3)));
    clock.advance(Duration::from_secs(1));
    assert_eq!(b.release().unwrap().at, secs(4));
    assert_eq!(b.disable().unwrap().to, State::Disabled);
    assert_eq!(b.measure_only().unwrap().to, State::MetricsOnly);
    assert_eq!(b.reset().unwrap().at, secs(4));
    assert_eq!(b.metrics().time_in_state, StdDuration::ZERO);
    assert_eq!(b.clock().now(), secs(4));
    assert_eq!(b.config(), &Config::DEFAULT);
}

#[test]
fn permits_and_reports_say_what_they_are() {
    let mut b = breaker(1, Config::DEFAULT);
    let _ = b.force_open_at(secs(0));
    let _ = b.release_at(secs(0));
    let p = b.try_acquire_at(secs(0)).result.unwrap();
    assert_eq!(p.generation(), 2);
    let report = b.record_at(p, Outcome::Success, secs(0));
    assert!(!report.is_stale());
    assert!(!CallError::<()>::Inner(()).is_rejected());
    assert_eq!(
        CallError::<()>::Rejected(Rejected::new(RejectReason::Open, None)).into_inner(),
        None
    );
}

/// A policy whose window can be empty with no minimum.
struct EmptyWindow;

impl TripPolicy for EmptyWindow {
    fn record(&mut self, _: CallRecord) -> bool {
        false
    }
    fn reset(&mut self, _: Instant) {}
    fn window(&self, _: Instant) -> Option<crate::WindowCounts> {
        Some(crate::WindowCounts::default())
    }
}

#[test]
fn an_empty_window_has_no_rate_even_without_a_minimum() {
    let b: Breaker<EmptyWindow, Frozen, 4> = Breaker::new(Config::DEFAULT, EmptyWindow, Frozen);
    let m = b.metrics_at(secs(0));
    assert_eq!((m.failure_rate, m.slow_rate), (None, None));
}

#[test]
fn a_stale_report_with_no_probe_out_ends_no_lease() {
    let mut b = breaker(
        1,
        config(|c| {
            c.successes_to_close(2)
                .probe_lease(StdDuration::from_secs(10))
        }),
    );
    let old = b.try_acquire_at(secs(0)).result.unwrap();
    let _ = run(&mut b, Outcome::Failure, secs(0));
    let p = b.try_acquire_at(secs(5)).result.unwrap();
    let _ = b.record_at(p, Outcome::Success, secs(6)); // one of two: still half-open, none out
    let report = b.record_at(old, Outcome::Success, secs(30)); // long past the old lease
    assert_eq!(
        report,
        Report {
            status: ReportStatus::Stale,
            transition: None
        }
    );
    assert_eq!(b.state(), State::HalfOpen);
}

/// An error and its sources, each message once, as anyhow's `{:#}` prints
/// them.
fn chain(e: &dyn core::error::Error) -> std::string::String {
    let mut out = std::format!("{e}");
    let mut next = e.source();
    while let Some(cause) = next {
        out = std::format!("{out}: {cause}");
        next = cause.source();
    }
    out
}

mod reconfiguration {
    use super::*;

    fn open_for(s: u64) -> Config {
        config(|b| b.open_duration(StdDuration::from_secs(s)))
    }

    /// The state, generation, counts and history stay; a shorter opening
    /// cuts the one under way, a longer one waits for the next.
    #[test]
    fn an_open_breaker_keeps_its_state_and_takes_the_new_durations() {
        let mut b = breaker(1, open_for(60));
        let _ = run(&mut b, Outcome::Success, secs(0));
        trip(&mut b, 1, secs(1)); // open until 61 s
        let before = (
            b.generation(),
            b.metrics_at(secs(2)).counts,
            b.history().count(),
        );
        b.reconfigure_at(open_for(5), secs(2));
        assert_eq!(until(&b), secs(7), "cut to 5 s from the change");
        let after = (
            b.generation(),
            b.metrics_at(secs(2)).counts,
            b.history().count(),
        );
        assert_eq!(after, before);
        assert_eq!(b.state(), State::Open);

        b.reconfigure_at(open_for(600), secs(3));
        assert_eq!(until(&b), secs(7), "never lengthened");
        let probe = b.try_acquire_at(secs(7)).result.unwrap();
        let t = b
            .record_at(probe, Outcome::Failure, secs(7))
            .transition
            .unwrap();
        assert_eq!(t.to, State::Open);
        assert_eq!(until(&b), secs(607), "the next opening is the new one");
    }

    /// Probes out keep their slots and are judged by the new rules; a lower
    /// `max_probes` admits no more; the lease ends by the new one.
    #[test]
    fn a_half_open_breaker_keeps_its_probes_and_judges_them_by_the_new_rules() {
        let three = config(|b| b.max_probes(3).successes_to_close(3));
        let mut b = breaker(1, three);
        trip(&mut b, 1, secs(0));
        let p1 = b.try_acquire_at(secs(5)).result.unwrap();
        let p2 = b.try_acquire_at(secs(5)).result.unwrap();
        let _ = b.record_at(p1, Outcome::Success, secs(6));

        let one = config(|b| {
            b.max_probes(1)
                .successes_to_close(2)
                .probe_lease(StdDuration::from_secs(4))
        });
        b.reconfigure_at(one, secs(7));
        assert_eq!(b.state(), State::HalfOpen);
        assert_eq!(
            b.poll_at(secs(9)),
            Some(secs(11)),
            "the lease ends 4 s after the change"
        );
        let full = b.try_acquire_at(secs(7)).result.unwrap_err();
        assert_eq!(full.reason, RejectReason::HalfOpenFull, "1 out, 1 allowed");
        assert_eq!(b.poll_at(secs(7)), Some(secs(11)));
        // The probe admitted before the change counts toward the new
        // `successes_to_close`: two successes close.
        let t = b
            .record_at(p2, Outcome::Success, secs(8))
            .transition
            .unwrap();
        assert_eq!(
            (t.to, t.reason),
            (State::Closed, TransitionReason::ProbesSucceeded)
        );
    }

    #[test]
    fn the_backoff_step_stays_within_the_new_bounds() {
        let grow = config(|b| {
            b.exponential_backoff(
                StdDuration::from_secs(1),
                StdDuration::from_secs(100),
                10,
                1,
            )
        });
        let mut b = breaker(1, grow);
        trip(&mut b, 1, secs(0)); // 1 s
        let probe = b.try_acquire_at(secs(1)).result.unwrap();
        let _ = b.record_at(probe, Outcome::Failure, secs(1)); // 10 s
        let probe = b.try_acquire_at(secs(11)).result.unwrap();
        let _ = b.record_at(probe, Outcome::Failure, secs(11)); // 100 s
        assert_eq!(until(&b), secs(111));
        let capped = config(|b| {
            b.exponential_backoff(StdDuration::from_secs(2), StdDuration::from_secs(20), 2, 1)
        });
        b.reconfigure_at(capped, secs(12));
        assert_eq!(until(&b), secs(32), "cut to the new cap");
        let probe = b.try_acquire_at(secs(32)).result.unwrap();
        let _ = b.record_at(probe, Outcome::Failure, secs(32));
        assert_eq!(
            until(&b),
            secs(52),
            "the step, held at 20 s, grows no further"
        );

        // A step below the new initial duration is raised to it.
        let mut b = breaker(1, grow);
        trip(&mut b, 1, secs(0)); // 1 s, the step at 1 s
        let higher = config(|b| {
            b.exponential_backoff(StdDuration::from_secs(5), StdDuration::from_secs(100), 2, 1)
        });
        b.reconfigure_at(higher, secs(0));
        let probe = b.try_acquire_at(secs(1)).result.unwrap();
        let _ = b.record_at(probe, Outcome::Failure, secs(1));
        assert_eq!(until(&b), secs(11), "twice the step of 5 s");
    }

    #[test]
    fn a_new_seed_restarts_the_jitter_and_the_same_seed_keeps_it() {
        let jittered = |seed| config(|b| b.jitter(Jitter::Full).jitter_seed(seed));
        let draws = |b: &mut Test, changes: &[(u64, Config)]| {
            let mut seen = Vec::new();
            let mut t = 0;
            for round in 0..4 {
                for (at, config) in changes {
                    if *at == round {
                        b.reconfigure_at(*config, secs(t));
                    }
                }
                trip(b, 1, secs(t));
                let end = until(b);
                seen.push(end.saturating_duration_since(secs(t)));
                t = end.as_micros() / 1_000_000 + 1;
                let probe = b.try_acquire_at(secs(t)).result.unwrap();
                let _ = b.record_at(probe, Outcome::Success, secs(t));
            }
            seen
        };
        let plain = draws(&mut breaker(1, jittered(7)), &[]);
        let same = draws(&mut breaker(1, jittered(7)), &[(2, jittered(7))]);
        assert_eq!(same, plain, "the same seed keeps the sequence");
        let restarted = draws(
            &mut breaker(1, jittered(7)),
            &[(2, jittered(7).with_jitter_seed(9))],
        );
        let fresh = draws(&mut breaker(1, jittered(9)), &[]);
        assert_eq!(restarted[..2], plain[..2]);
        assert_eq!(restarted[2..], fresh[..2], "a new seed starts its sequence");
        let mut kept = breaker(1, jittered(7));
        kept.reconfigure_at(config(|b| b.jitter(Jitter::Full)), secs(0));
        assert_eq!(
            kept.config().jitter_seed(),
            Some(7),
            "no seed keeps the breaker's"
        );
    }

    /// A permit admitted before the change still reports.
    #[test]
    fn permits_out_stay_valid() {
        let mut b = breaker(3, Config::DEFAULT);
        let permit = b.try_acquire_at(secs(0)).result.unwrap();
        b.reconfigure_at(open_for(1), secs(0));
        assert_eq!(
            b.record_at(permit, Outcome::Failure, secs(0)).status,
            ReportStatus::Recorded
        );
        b.policy_mut().set_failure_threshold(2).unwrap();
        let t = run(&mut b, Outcome::Failure, secs(0)).transition.unwrap();
        assert_eq!(t.to, State::Open, "the run of 2 meets the new threshold");
        assert_eq!(until(&b), secs(1));
    }
}

/// Each trip names the rule that fired, whatever policy decided it.
mod trip_rules {
    use super::*;
    use crate::{CountWindow, Thresholds};
    use std::string::ToString;

    /// The rule of the transition that `outcomes` (each `(failed, took)`,
    /// reported one second apart) trip `policy` with.
    fn tripped_by<P: TripPolicy>(policy: P, outcomes: &[(bool, u64)]) -> Option<TripRule> {
        let c = config(|c| c.slow_call_threshold(StdDuration::from_secs(1)));
        let mut b: Test<P> = Breaker::with_history(c, policy, Frozen);
        for (i, &(failed, took)) in outcomes.iter().enumerate() {
            let at = secs(10 * i as u64);
            let p = b.try_acquire_at(at).result.ok()?;
            let outcome = if failed {
                Outcome::Failure
            } else {
                Outcome::Success
            };
            let done = at.saturating_add(Duration::from_secs(took));
            if let Some(t) = b.record_at(p, outcome, done).transition {
                assert_eq!(t.to, State::Open);
                return match t.reason {
                    TransitionReason::Tripped(rule) => Some(rule),
                    other => panic!("tripped for {other:?}"),
                };
            }
        }
        None
    }

    const FAIL: (bool, u64) = (true, 0);
    const OK: (bool, u64) = (false, 0);
    const SLOW: (bool, u64) = (false, 2);

    fn window(t: Thresholds) -> CountWindow<4> {
        CountWindow::new(t.minimum_calls(4)).unwrap()
    }

    #[test]
    fn each_shipped_policy_names_its_rule() {
        let half = Ratio::percent(50);
        let cases: [(Option<TripRule>, Option<TripRule>); 5] = [
            (
                tripped_by(
                    ConsecutiveFailures::new(2).unwrap(),
                    &[FAIL, OK, FAIL, FAIL],
                ),
                Some(TripRule::ConsecutiveFailures),
            ),
            (
                tripped_by(
                    window(Thresholds::new().failure_count(2)),
                    &[OK, FAIL, FAIL],
                ),
                Some(TripRule::FailureCount),
            ),
            (
                tripped_by(
                    window(Thresholds::new().failure_rate(half)),
                    &[OK, FAIL, OK, FAIL],
                ),
                Some(TripRule::FailureRate),
            ),
            (
                tripped_by(
                    window(Thresholds::new().failure_rate(half).slow_rate(half)),
                    &[SLOW, OK, SLOW, FAIL],
                ),
                Some(TripRule::SlowCallRate),
            ),
            (
                tripped_by(
                    ReadyToTrip::new(|c: &RunCounts| c.failures >= 2),
                    &[FAIL, FAIL],
                ),
                Some(TripRule::Custom),
            ),
        ];
        for (i, (got, want)) in cases.into_iter().enumerate() {
            assert_eq!(got, want, "case {i}");
        }
    }

    #[test]
    fn when_several_rules_break_at_once_the_first_is_named() {
        let half = Ratio::percent(50);
        // Two slow failures of four: both rates reach 50 % at once.
        let both = Thresholds::new().failure_rate(half).slow_rate(half);
        let slow_failure = (true, 2);
        let outcomes = [OK, slow_failure, OK, slow_failure];
        assert_eq!(
            tripped_by(window(both), &outcomes),
            Some(TripRule::FailureRate)
        );
        // Two failures: the count (2) and the rate (50 %) at once.
        let count_and_rate = Thresholds::new().failure_count(2).failure_rate(half);
        let outcomes = [OK, FAIL, OK, FAIL];
        assert_eq!(
            tripped_by(window(count_and_rate), &outcomes),
            Some(TripRule::FailureCount)
        );
        // A pair names its first policy's rule, or the second's if only it broke.
        let pair = |first: u32| {
            (
                ConsecutiveFailures::new(first).unwrap(),
                window(Thresholds::new().failure_rate(half)),
            )
        };
        assert_eq!(
            tripped_by(pair(2), &[OK, OK, FAIL, FAIL]),
            Some(TripRule::ConsecutiveFailures)
        );
        assert_eq!(
            tripped_by(pair(3), &[OK, OK, FAIL, FAIL]),
            Some(TripRule::FailureRate)
        );
    }

    #[test]
    fn a_policy_that_names_no_rule_trips_as_custom() {
        struct EveryFailure;
        impl TripPolicy for EveryFailure {
            fn record(&mut self, call: CallRecord) -> bool {
                call.failed
            }
            fn reset(&mut self, _now: Instant) {}
        }
        assert_eq!(
            tripped_by(EveryFailure, &[OK, FAIL]),
            Some(TripRule::Custom)
        );
        let t = Transition::new(
            State::Closed,
            State::Open,
            secs(1),
            TransitionReason::Tripped(TripRule::SlowCallRate),
            1,
        );
        assert_eq!(
            t.to_string(),
            "closed -> open (tripped by slow-call rate) at t=1s, generation 1"
        );
        assert_eq!(t.reason.as_str(), "tripped");
    }
}
