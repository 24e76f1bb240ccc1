//! The same scenarios against `Breaker` and `SharedBreaker`: one semantics.

use core::time::Duration as StdDuration;

use super::*;
use crate::time::Frozen;
use crate::{ConfigBuilder, CountWindow, Ratio, Thresholds, TransitionReason, TripRule};

extern crate std;
use std::vec::Vec;

/// The operations both breakers offer, at a given time.
trait Subject {
    /// Closed-state admissions are counted when reported (lock-free).
    const COUNTS_CALLS_AT_REPORT: bool;
    fn make(config: Config, threshold: u32) -> Self;
    fn acquire(&mut self, t: Instant) -> Admission;
    fn report(&mut self, permit: Permit, outcome: Outcome, t: Instant) -> Report;
    fn force_open(&mut self, t: Instant) -> Option<Transition>;
    fn disable(&mut self, t: Instant) -> Option<Transition>;
    fn release(&mut self, t: Instant) -> Option<Transition>;
    fn reset(&mut self, t: Instant) -> Transition;
    fn metrics(&mut self, t: Instant) -> Metrics;
}

impl Subject for Breaker<ConsecutiveFailures, Frozen, 4> {
    const COUNTS_CALLS_AT_REPORT: bool = false;
    fn make(config: Config, threshold: u32) -> Self {
        Breaker::new(config, ConsecutiveFailures::new(threshold).unwrap(), Frozen)
    }
    fn acquire(&mut self, t: Instant) -> Admission {
        self.try_acquire_at(t)
    }
    fn report(&mut self, permit: Permit, outcome: Outcome, t: Instant) -> Report {
        self.record_at(permit, outcome, t)
    }
    fn force_open(&mut self, t: Instant) -> Option<Transition> {
        self.force_open_at(t)
    }
    fn disable(&mut self, t: Instant) -> Option<Transition> {
        self.disable_at(t)
    }
    fn release(&mut self, t: Instant) -> Option<Transition> {
        self.release_at(t)
    }
    fn reset(&mut self, t: Instant) -> Transition {
        self.reset_at(t).unwrap()
    }
    fn metrics(&mut self, t: Instant) -> Metrics {
        self.metrics_at(t)
    }
}

impl Subject for SharedBreaker<ConsecutiveFailures, Frozen, 4> {
    const COUNTS_CALLS_AT_REPORT: bool = true;
    fn make(config: Config, threshold: u32) -> Self {
        SharedBreaker::new(config, ConsecutiveFailures::new(threshold).unwrap(), Frozen)
    }
    fn acquire(&mut self, t: Instant) -> Admission {
        self.try_acquire_at(t)
    }
    fn report(&mut self, permit: Permit, outcome: Outcome, t: Instant) -> Report {
        self.record_at(permit, outcome, t)
    }
    fn force_open(&mut self, t: Instant) -> Option<Transition> {
        self.with_breaker(|m| m.force_open_at(t)).flatten()
    }
    fn disable(&mut self, t: Instant) -> Option<Transition> {
        self.with_breaker(|m| m.disable_at(t)).flatten()
    }
    fn release(&mut self, t: Instant) -> Option<Transition> {
        self.with_breaker(|m| m.release_at(t)).flatten()
    }
    fn reset(&mut self, t: Instant) -> Transition {
        self.with_breaker(|m| m.reset_at(t)).flatten().unwrap()
    }
    fn metrics(&mut self, t: Instant) -> Metrics {
        self.metrics_at(t)
    }
}

fn secs(s: u64) -> Instant {
    Instant::from_secs(s)
}

fn config(f: impl FnOnce(ConfigBuilder) -> ConfigBuilder) -> Config {
    f(Config::builder()).build().unwrap()
}

fn run<S: Subject>(b: &mut S, outcome: Outcome, t: Instant) -> Report {
    let permit = b.acquire(t).result.expect("admitted");
    b.report(permit, outcome, t)
}

fn trips_at_threshold_then_rejects_then_probes<S: Subject>() {
    let mut b = S::make(Config::DEFAULT, 3);
    for _ in 0..5 {
        assert_eq!(
            run(&mut b, Outcome::Success, secs(0)).status,
            ReportStatus::Recorded
        );
    }
    assert!(run(&mut b, Outcome::Failure, secs(1)).transition.is_none());
    assert!(run(&mut b, Outcome::Failure, secs(1)).transition.is_none());
    let t = run(&mut b, Outcome::Failure, secs(2)).transition.unwrap();
    assert_eq!(
        (t.from, t.to, t.reason, t.generation),
        (
            State::Closed,
            State::Open,
            TransitionReason::Tripped(TripRule::ConsecutiveFailures),
            1
        )
    );
    let r = b.acquire(secs(4)).result.unwrap_err();
    assert_eq!(
        r,
        Rejected::new(RejectReason::Open, Some(StdDuration::from_secs(3)))
    );
    let a = b.acquire(secs(7));
    assert_eq!(a.transition.unwrap().to, State::HalfOpen);
    let probe = a.result.unwrap();
    assert_eq!(
        b.acquire(secs(7)).result.unwrap_err().reason,
        RejectReason::HalfOpenFull
    );
    let t = b
        .report(probe, Outcome::Success, secs(8))
        .transition
        .unwrap();
    assert_eq!(t.to, State::Closed);
    let m = b.metrics(secs(9));
    assert_eq!(
        (
            m.counts.calls,
            m.counts.successes,
            m.counts.failures,
            m.counts.rejected
        ),
        (9, 6, 3, 2)
    );
    assert_eq!(m.generation, 3);
}

fn stale_permits_change_nothing<S: Subject>() {
    let mut b = S::make(Config::DEFAULT, 1);
    let early = b.acquire(secs(0)).result.unwrap();
    let _ = run(&mut b, Outcome::Failure, secs(0));
    assert!(b.report(early, Outcome::Success, secs(1)).is_stale());
    let m = b.metrics(secs(1));
    assert_eq!(
        (m.state, m.counts.stale, m.counts.successes),
        (State::Open, 1, 0)
    );
}

fn probe_lease_expires<S: Subject>() {
    let mut b = S::make(config(|c| c.probe_lease(StdDuration::from_secs(10))), 1);
    let _ = run(&mut b, Outcome::Failure, secs(0));
    let lost = b.acquire(secs(5)).result.unwrap();
    let a = b.acquire(secs(15));
    assert_eq!(
        a.transition.unwrap().reason,
        TransitionReason::ProbeLeaseExpired
    );
    assert_eq!(
        a.result.unwrap_err().retry_after(),
        Some(StdDuration::from_secs(5))
    );
    assert!(b.report(lost, Outcome::Success, secs(16)).is_stale());
}

fn manual_states_and_reset<S: Subject>() {
    let mut b = S::make(Config::DEFAULT, 1);
    assert!(b.force_open(secs(1)).is_some());
    assert_eq!(
        b.acquire(secs(2)).result.unwrap_err().reason,
        RejectReason::ForcedOpen
    );
    assert_eq!(b.release(secs(3)).unwrap().to, State::Closed);
    let _ = run(&mut b, Outcome::Success, secs(3));
    let t = b.reset(secs(4));
    assert_eq!((t.reason, t.generation), (TransitionReason::Reset, 3));
    let m = b.metrics(secs(4));
    assert_eq!(m.counts, Counts::default());
    assert!(run(&mut b, Outcome::Failure, secs(5)).transition.is_some());
}

fn ignored_and_success_after_failure<S: Subject>() {
    let mut b = S::make(Config::DEFAULT, 2);
    let _ = run(&mut b, Outcome::Failure, secs(0));
    let _ = run(&mut b, Outcome::Ignored, secs(0));
    let _ = run(&mut b, Outcome::Success, secs(0)); // must reset the run
    let _ = run(&mut b, Outcome::Failure, secs(0));
    let m = b.metrics(secs(0));
    assert_eq!(m.state, State::Closed);
    assert_eq!(
        (m.counts.calls, m.counts.ignored, m.counts.failures),
        (4, 1, 2)
    );
}

macro_rules! both {
    ($($scenario:ident),* $(,)?) => {
        mod on_breaker {
            $(#[test] fn $scenario() { super::$scenario::<crate::Breaker<crate::ConsecutiveFailures, crate::time::Frozen, 4>>(); })*
        }
        mod on_shared_breaker {
            $(#[test] fn $scenario() { super::$scenario::<crate::SharedBreaker<crate::ConsecutiveFailures, crate::time::Frozen, 4>>(); })*
        }
    };
}

both!(
    trips_at_threshold_then_rejects_then_probes,
    stale_permits_change_nothing,
    probe_lease_expires,
    manual_states_and_reset,
    ignored_and_success_after_failure,
    nothing_is_counted_while_disabled,
);

#[test]
fn closed_admission_and_noop_successes_take_no_lock() {
    let b: SharedBreaker<ConsecutiveFailures, Frozen> = SharedBreaker::new(
        Config::DEFAULT,
        ConsecutiveFailures::new(2).unwrap(),
        Frozen,
    );
    let _ = run_shared(&b, Outcome::Success); // publishes that successes are free
                                              // Hold the lock's RefCell borrowed: any locked path would now be refused.
    b.machine.with(|_| {
        for _ in 0..100 {
            let permit = b
                .try_acquire_at(secs(0))
                .result
                .expect("admitted without the lock");
            let report = b.record_at(permit, Outcome::Success, secs(0));
            assert_eq!(
                report.status,
                ReportStatus::Recorded,
                "counted without the lock"
            );
        }
        // A failure needs the lock: refused (re-entrant), never a panic.
        let permit = b.try_acquire_at(secs(0)).result.unwrap();
        assert!(b.record_at(permit, Outcome::Failure, secs(0)).is_stale());
    });
    let m = b.metrics_at(secs(0));
    assert_eq!((m.counts.calls, m.counts.successes), (101, 101));
}

#[test]
fn a_closed_call_settles_its_success_without_the_lock() {
    let b: SharedBreaker<ConsecutiveFailures, Frozen> = SharedBreaker::new(
        Config::DEFAULT,
        ConsecutiveFailures::new(2).unwrap(),
        Frozen,
    );
    let _ = run_shared(&b, Outcome::Success); // publishes that successes are free
    b.machine.with(|_| {
        for _ in 0..100 {
            assert_eq!(b.call(|| Ok::<_, ()>(7)), Ok(7));
        }
        // A failure needs the lock: held here, so the report is lost.
        assert!(b.call(|| Err::<(), _>(())).is_err());
    });
    let m = b.metrics_at(secs(0));
    assert_eq!((m.counts.calls, m.counts.successes), (101, 101));
    assert_eq!(m.counts.failures, 0);
}

#[test]
fn an_open_breaker_rejects_a_call_without_the_lock() {
    let clock = crate::ManualClock::new();
    let b: SharedBreaker<ConsecutiveFailures, &crate::ManualClock> = SharedBreaker::new(
        Config::DEFAULT,
        ConsecutiveFailures::new(1).unwrap(),
        &clock,
    );
    assert!(b.call(|| Err::<(), _>(())).is_err()); // trips at 0 s
    clock.set(secs(1));
    b.machine.with(|_| {
        let Err(CallError::Rejected(r)) = b.call(|| Ok::<_, ()>(())) else {
            panic!("an open breaker rejects")
        };
        assert_eq!(
            (r.reason, r.retry_after()),
            (RejectReason::Open, Some(StdDuration::from_secs(4)))
        );
    });
    assert_eq!(b.metrics().counts.rejected, 1);
}

#[test]
fn open_rejections_take_no_lock() {
    let b: SharedBreaker<ConsecutiveFailures, Frozen> = SharedBreaker::new(
        Config::DEFAULT,
        ConsecutiveFailures::new(1).unwrap(),
        Frozen,
    );
    let _ = run_shared(&b, Outcome::Failure);
    b.machine.with(|_| {
        // The whole open duration ahead (as far as a deadline may lie).
        let r = b.try_acquire_at(secs(0)).result.unwrap_err();
        assert_eq!(r.retry_after(), Some(StdDuration::from_secs(5)));
        let r = b.try_acquire_at(secs(1)).result.unwrap_err();
        assert_eq!(r.retry_after(), Some(StdDuration::from_secs(4)));
        // At the deadline the lock is needed: refused while re-entered.
        assert_eq!(
            b.try_acquire_at(secs(5)).result.unwrap_err().reason,
            RejectReason::Busy
        );
    });
    assert_eq!(b.metrics_at(secs(1)).counts.rejected, 3);
    assert!(b.try_acquire_at(secs(5)).result.is_ok());
}

fn run_shared(b: &SharedBreaker<ConsecutiveFailures, Frozen>, outcome: Outcome) -> Report {
    let permit = b.try_acquire_at(secs(0)).result.unwrap();
    b.record_at(permit, outcome, secs(0))
}

#[test]
fn full_lock_free_counters_move_into_the_breaker() {
    let b: SharedBreaker<ConsecutiveFailures, Frozen> = SharedBreaker::new(
        Config::DEFAULT,
        ConsecutiveFailures::new(2).unwrap(),
        Frozen,
    );
    let _ = run_shared(&b, Outcome::Success);
    b.counters.successes.store(COUNT_MASK, Ordering::Relaxed); // full, epoch 0
    let _ = run_shared(&b, Outcome::Success);
    assert_eq!(
        b.counters.successes.load(Ordering::Relaxed),
        1,
        "taken into the breaker, then counted afresh"
    );
    let m = b.metrics_at(secs(0));
    assert_eq!(m.counts.successes, COUNT_MASK as u64 + 2);
}

#[test]
fn the_snapshot_carries_64_bit_values() {
    let b: SharedBreaker<ConsecutiveFailures, Frozen> = SharedBreaker::new(
        Config::DEFAULT,
        ConsecutiveFailures::new(1).unwrap(),
        Frozen,
    );
    let big = (7u64 << 32) | 5;
    b.snapshot
        .write(big, OPEN, Instant::from_micros(u64::MAX - 1));
    let v = b.snapshot.read();
    assert_eq!(
        (v.generation, v.flags, v.until),
        (big, OPEN, Instant::from_micros(u64::MAX - 1))
    );
    assert_eq!(b.generation(), big);
}

#[test]
fn windowed_policies_and_slow_calls_go_through_the_lock() {
    let policy = CountWindow::<4>::new(Thresholds::new().failure_rate(Ratio::percent(50))).unwrap();
    let config = config(|c| c.slow_call_threshold(StdDuration::from_secs(1)));
    let b: SharedBreaker<_, Frozen, 4> = SharedBreaker::new(config, policy, Frozen);
    let mut outcomes = Vec::new();
    for (outcome, took) in [
        (Outcome::Failure, 0),
        (Outcome::Success, 2),
        (Outcome::Failure, 0),
        (Outcome::Success, 0),
    ] {
        let p = b.try_acquire_at(secs(10)).result.unwrap();
        assert_eq!(p.started(), secs(10), "slow calls need the admission time");
        outcomes.push(
            b.record_at(p, outcome, secs(10 + took))
                .transition
                .map(|t| t.to),
        );
    }
    assert_eq!(outcomes, [None, None, None, Some(State::Open)]);
    assert_eq!(b.metrics_at(secs(12)).counts.slow, 1);
}

/// Calls per thread (fewer under Miri, which runs about 1,000× slower).
const CALLS: u32 = if cfg!(miri) { 100 } else { 5_000 };

#[test]
fn shared_across_threads() {
    use std::sync::Arc;
    let b: Arc<SharedBreaker<ConsecutiveFailures, Frozen>> = Arc::new(SharedBreaker::new(
        Config::DEFAULT,
        ConsecutiveFailures::new(1_000_000).unwrap(),
        Frozen,
    ));
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let b = b.clone();
            std::thread::spawn(move || {
                for n in 0..CALLS {
                    let outcome = if (n + i) % 10 == 0 {
                        Outcome::Failure
                    } else {
                        Outcome::Success
                    };
                    let _ = b.call_classified(|| Ok::<_, ()>(()), |_| outcome);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let m = b.metrics_at(secs(0));
    assert_eq!(m.counts.calls, 4 * CALLS as u64);
    assert_eq!(
        (m.counts.successes, m.counts.failures),
        (36 * CALLS as u64 / 10, 4 * CALLS as u64 / 10)
    );
}

// Written against mutants that survived `cargo mutants`.

#[test]
fn thin_manual_controls_and_accessors() {
    let clock = crate::ManualClock::starting_at(secs(2));
    let custom = config(|c| c.max_probes(3));
    let b: SharedBreaker<ConsecutiveFailures, &crate::ManualClock> =
        SharedBreaker::new(custom, ConsecutiveFailures::new(1).unwrap(), &clock);
    assert_eq!(
        b.force_open().map(|t| (t.to, t.at)),
        Some((State::ForcedOpen, secs(2)))
    );
    assert_eq!(
        b.last_transition().map(|t| t.reason),
        Some(TransitionReason::ForcedOpen)
    );
    assert_eq!(b.release().map(|t| t.to), Some(State::Closed));
    assert_eq!(b.disable().map(|t| t.to), Some(State::Disabled));
    assert_eq!(b.measure_only().map(|t| t.to), Some(State::MetricsOnly));
    let t = b.reset().unwrap();
    assert_eq!((t.reason, t.generation), (TransitionReason::Reset, 5));
    assert_eq!(b.config(), custom);
    assert_eq!(b.clock().now(), secs(2));
    assert_eq!(b.metrics().generation, 5);
}

#[test]
fn lock_free_counts_stay_lock_free_until_full() {
    let b: SharedBreaker<ConsecutiveFailures, Frozen> = SharedBreaker::new(
        Config::DEFAULT,
        ConsecutiveFailures::new(2).unwrap(),
        Frozen,
    );
    let _ = run_shared(&b, Outcome::Success);
    let _ = run_shared(&b, Outcome::Success);
    assert_eq!(
        b.counters.read(0).successes,
        1,
        "counted lock-free, not moved into the breaker yet"
    );
}

#[test]
fn a_policy_that_does_not_say_successes_are_free_sees_every_success() {
    use crate::{ReadyToTrip, RunCounts};
    let policy = ReadyToTrip::new(|c: &RunCounts| c.successes >= 3);
    let b: SharedBreaker<_, Frozen, 4> = SharedBreaker::new(Config::DEFAULT, policy, Frozen);
    for _ in 0..3 {
        let p = b.try_acquire_at(secs(0)).result.unwrap();
        let _ = b.record_at(p, Outcome::Success, secs(0));
    }
    assert_eq!(
        b.state(),
        State::Open,
        "the third success tripped it: the policy saw all three"
    );
}

#[test]
fn a_closed_permit_admitted_under_the_lock_is_counted_once() {
    // The race the stress test found: a call admitted by the state machine
    // (counted then) whose success arrives when successes are free.
    let breaker = SharedBreaker::<ConsecutiveFailures, Frozen>::new(
        Config::DEFAULT,
        ConsecutiveFailures::new(3).unwrap(),
        Frozen,
    );
    // Publish "successes are free".
    let first = breaker.try_acquire_at(Instant::ZERO).result.unwrap();
    let _ = breaker.record_at(first, Outcome::Success, Instant::ZERO);
    let counted = breaker
        .with_breaker(|m| m.try_acquire_at(Instant::ZERO).result.unwrap())
        .unwrap();
    assert!(counted.is_counted());
    let _ = breaker.record_at(counted, Outcome::Success, Instant::ZERO);
    let counts = breaker.metrics_at(Instant::ZERO).counts;
    assert_eq!((counts.calls, counts.successes), (2, 2));
}

#[test]
fn disabled_and_metrics_only_admit_and_report_without_the_lock() {
    let b: SharedBreaker<ConsecutiveFailures, Frozen> = SharedBreaker::new(
        Config::DEFAULT,
        ConsecutiveFailures::new(2).unwrap(),
        Frozen,
    );
    let _ = b.with_breaker(|m| m.disable_at(secs(0)));
    // Hold the lock: any locked path would now be refused.
    b.machine.with(|_| {
        for outcome in [Outcome::Success, Outcome::Failure, Outcome::Ignored] {
            let permit = b
                .try_acquire_at(secs(0))
                .result
                .expect("admitted lock-free");
            assert_eq!(permit.state(), State::Disabled);
            let report = b.record_at(permit, outcome, secs(0));
            assert_eq!(
                report.status,
                ReportStatus::Recorded,
                "{outcome:?} lock-free"
            );
        }
    });
    assert_eq!(
        b.metrics_at(secs(0)).counts,
        Counts::default(),
        "disabled counts nothing"
    );

    let _ = b.with_breaker(|m| m.measure_only_at(secs(0)));
    let _ = run_shared(&b, Outcome::Success); // publishes that successes are free
    b.machine.with(|_| {
        let permit = b
            .try_acquire_at(secs(0))
            .result
            .expect("admitted lock-free");
        assert_eq!(permit.state(), State::MetricsOnly);
        let report = b.record_at(permit, Outcome::Success, secs(0));
        assert_eq!(report.status, ReportStatus::Recorded, "counted lock-free");
    });
    let m = b.metrics_at(secs(0));
    assert_eq!(
        (m.state, m.counts.calls, m.counts.successes),
        (State::MetricsOnly, 2, 2)
    );
}

#[test]
fn a_stale_permit_of_a_disabled_breaker_counts_no_call() {
    let b: SharedBreaker<ConsecutiveFailures, Frozen> = SharedBreaker::new(
        Config::DEFAULT,
        ConsecutiveFailures::new(2).unwrap(),
        Frozen,
    );
    let _ = b.with_breaker(|m| m.disable_at(secs(0)));
    let permit = b.try_acquire_at(secs(0)).result.unwrap();
    let _ = b.with_breaker(|m| m.release_at(secs(0)));
    assert!(b.record_at(permit, Outcome::Success, secs(0)).is_stale());
    let c = b.metrics_at(secs(0)).counts;
    assert_eq!(
        (c.calls, c.stale),
        (0, 0),
        "a disabled call counts nothing, ever"
    );
}

/// docs/semantics.md: while Disabled nothing is counted, stale reports
/// included.
fn nothing_is_counted_while_disabled<S: Subject>() {
    let mut b = S::make(Config::DEFAULT, 2);
    let before = b.acquire(secs(0)).result.unwrap();
    assert!(b.force_open(secs(0)).is_some());
    let _ = b.release(secs(0));
    assert!(b.disable(secs(0)).is_some());
    assert!(b.report(before, Outcome::Success, secs(1)).is_stale());
    let c = b.metrics(secs(1)).counts;
    // `Breaker` counted the call when it admitted it; the shared breaker
    // would have counted it at its report, made while disabled.
    let calls = u64::from(!S::COUNTS_CALLS_AT_REPORT);
    assert_eq!((c.calls, c.stale, c.successes), (calls, 0, 0));
}

#[test]
fn one_clock_reading_of_instant_max_cannot_keep_the_shared_breaker_open() {
    let b: SharedBreaker<ConsecutiveFailures, Frozen> = SharedBreaker::new(
        Config::DEFAULT,
        ConsecutiveFailures::new(1).unwrap(),
        Frozen,
    );
    let p = b.try_acquire_at(Instant::MAX).result.unwrap();
    let _ = b.record_at(p, Outcome::Failure, Instant::MAX);
    // The deadline published is `Instant::MAX`: the lock-free path must not
    // reject on it, the lock pulls it back to one open duration from now.
    let r = b.try_acquire_at(secs(10)).result.unwrap_err();
    assert_eq!(r.retry_after(), Some(StdDuration::from_secs(5)));
    let r = b.try_acquire_at(secs(11)).result.unwrap_err();
    assert_eq!(
        r.retry_after(),
        Some(StdDuration::from_secs(4)),
        "now lock-free"
    );
    assert_eq!(b.poll_at(secs(11)), Some(secs(15)));
    assert!(b.try_acquire_at(secs(15)).result.is_ok());
}

#[test]
fn a_lock_free_count_that_raced_a_reset_is_not_read_back() {
    let b: SharedBreaker<ConsecutiveFailures, Frozen> = SharedBreaker::new(
        Config::DEFAULT,
        ConsecutiveFailures::new(2).unwrap(),
        Frozen,
    );
    let _ = run_shared(&b, Outcome::Success);
    let _ = run_shared(&b, Outcome::Success); // one lock-free success, epoch 0
    let _ = b.reset();
    // A success that read the snapshot before the reset and counts after
    // it is refused (the reset moved the counters to the new epoch), so the
    // caller goes to the lock, which finds its permit stale.
    assert!(!b.counters.add(LockFreeEvent::Success, 0));
    assert!(!b.counters.add(LockFreeEvent::Rejection, 0));
    let c = b.metrics_at(secs(0)).counts;
    assert_eq!((c.calls, c.successes, c.rejected), (0, 0, 0));
    // The new epoch counts.
    let _ = run_shared(&b, Outcome::Success);
    let _ = run_shared(&b, Outcome::Success);
    assert_eq!(b.metrics_at(secs(0)).counts.successes, 2);
    assert!(!b.counters.add(LockFreeEvent::Success, 0));
}

#[test]
fn a_reader_that_keeps_meeting_a_write_asks_under_the_lock_instead_of_spinning() {
    let b: SharedBreaker<ConsecutiveFailures, Frozen> = SharedBreaker::new(
        Config::DEFAULT,
        ConsecutiveFailures::new(2).unwrap(),
        Frozen,
    );
    let _ = run_shared(&b, Outcome::Success); // successes are free
    b.machine.with(|_| {
        // A writer preempted mid-write: the sequence number stays odd.
        b.snapshot.seq.fetch_add(1, Ordering::Relaxed);
        assert!(b.snapshot.try_read().is_none());
        // The lock is held (re-entered here, as by an NMI that interrupted
        // the writer): refused with its own reason, not a spin for ever.
        let r = b.try_acquire_at(secs(0)).result.unwrap_err();
        assert_eq!(r.reason, RejectReason::Busy);
        assert_eq!(r.retry_after(), None);
        assert_eq!(b.generation(), 0, "the getters answer too");
        b.snapshot.seq.fetch_add(1, Ordering::Relaxed);
    });
    assert!(b.try_acquire_at(secs(0)).result.is_ok());
}

#[test]
fn a_call_whose_breaker_changed_while_it_ran_is_not_settled_as_a_free_success() {
    // `call` admits with successes free; a failure inside the operation
    // starts a failure run. The call's success must end that run (under
    // the lock), not pass as a free success: one failure after it does not
    // trip a breaker that trips at two.
    let b: SharedBreaker<ConsecutiveFailures, Frozen> = SharedBreaker::new(
        Config::DEFAULT,
        ConsecutiveFailures::new(2).unwrap(),
        Frozen,
    );
    let _ = b.call(|| Ok::<_, ()>(())); // publishes that successes are free
    let _ = b.call(|| {
        let _ = b.call(|| Err::<(), _>(()));
        Ok::<_, ()>(())
    });
    let _ = b.call(|| Err::<(), _>(()));
    assert_eq!(b.state(), State::Closed);
    // Reset while the call runs: its success is stale, not counted.
    let _ = b.call(|| {
        let _ = b.reset();
        Ok::<_, ()>(())
    });
    let c = b.metrics_at(secs(0)).counts;
    assert_eq!((c.successes, c.stale), (0, 1));
}

#[test]
fn a_lock_free_call_reported_stale_counts_as_a_call_unless_a_reset_came_between() {
    // docs/semantics.md, "Lock-free admissions": counted as `Breaker`
    // counts every admission; a reset zeroed the counts it belonged to.
    let b: SharedBreaker<ConsecutiveFailures, Frozen> = SharedBreaker::new(
        Config::DEFAULT,
        ConsecutiveFailures::new(1).unwrap(),
        Frozen,
    );
    let before_trip = b.try_acquire_at(secs(0)).result.unwrap();
    let _ = run_shared(&b, Outcome::Failure); // trips
    assert!(b
        .record_at(before_trip, Outcome::Success, secs(0))
        .is_stale());
    let c = b.metrics_at(secs(0)).counts;
    assert_eq!((c.calls, c.failures, c.stale), (2, 1, 1));

    let _ = b.reset();
    let before_reset = b.try_acquire_at(secs(0)).result.unwrap();
    let _ = b.reset();
    assert!(b
        .record_at(before_reset, Outcome::Success, secs(0))
        .is_stale());
    let c = b.metrics_at(secs(0)).counts;
    assert_eq!((c.calls, c.stale), (0, 1));
}

#[test]
fn a_lock_free_count_never_comes_back_when_the_epoch_tag_wraps() {
    // The counters tag their counts with 8 bits of the reset count: 256
    // resets later the tag is the same. Found by the `ops` fuzz target.
    let b: SharedBreaker<ConsecutiveFailures, Frozen> = SharedBreaker::new(
        Config::DEFAULT,
        ConsecutiveFailures::new(2).unwrap(),
        Frozen,
    );
    let _ = run_shared(&b, Outcome::Success);
    let _ = run_shared(&b, Outcome::Success); // counted lock-free
    for _ in 0..256 {
        let _ = b.reset();
    }
    assert_eq!(b.metrics_at(secs(0)).counts, Counts::default());
}

#[test]
fn debug_shows_the_published_state() {
    extern crate std;
    use std::format;
    let b: SharedBreaker<ConsecutiveFailures, Frozen> = SharedBreaker::new(
        Config::DEFAULT,
        ConsecutiveFailures::new(1).unwrap(),
        Frozen,
    );
    assert!(format!("{b:?}").contains("\"closed\""), "{b:?}");
    let _ = b.call(|| Err::<(), ()>(()));
    assert!(format!("{b:?}").contains("\"open\""), "{b:?}");
    b.force_open();
    assert!(
        format!("{b:?}").contains("half-open or forced-open"),
        "{b:?}"
    );
    b.disable();
    assert!(format!("{b:?}").contains("\"disabled\""), "{b:?}");
    assert!(format!("{b:?}").contains("generation: 3"), "{b:?}");
}
