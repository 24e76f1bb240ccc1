//! loom model checks of the lock-free paths: every interleaving of the
//! threads below is explored. Run with
//! `RUSTFLAGS="--cfg loom" cargo test -p breakerbox-std --test loom --release`.
#![cfg(loom)]

use breakerbox_std::{
    Config, ConsecutiveFailures, Duration, Outcome, RejectReason, ReportStatus, SharedManualClock,
    State, StdBreaker,
};
use loom::thread;

fn breaker(
    threshold: u32,
    config: Config,
) -> (
    StdBreaker<ConsecutiveFailures, SharedManualClock>,
    SharedManualClock,
) {
    let clock = SharedManualClock::new();
    let b = StdBreaker::builder(config, ConsecutiveFailures::new(threshold).unwrap())
        .clock(clock.clone())
        .build();
    (b, clock)
}

/// A lock-free success races a failure that trips the breaker: whatever the
/// order, the breaker ends open and both reports are accounted for once.
#[test]
fn fast_success_races_a_tripping_failure() {
    loom::model(|| {
        let (b, _clock) = breaker(1, Config::DEFAULT);
        let other = b.clone();
        let succeeding = thread::spawn(move || match other.try_acquire() {
            Ok(guard) => Some(guard.record(Outcome::Success)),
            Err(_) => None,
        });
        let failed = b.try_acquire().map(|g| g.record(Outcome::Failure));
        let succeeded = succeeding.join().unwrap();
        let m = b.metrics();
        let admitted = failed.is_ok() as u64 + succeeded.is_some() as u64;
        assert_eq!(m.counts.calls, admitted);
        let stale = [failed.ok(), succeeded]
            .iter()
            .flatten()
            .filter(|s| **s == ReportStatus::Stale)
            .count();
        assert_eq!(
            m.counts.successes + m.counts.failures + m.counts.stale,
            admitted
        );
        assert_eq!(m.counts.stale, stale as u64);
        if failed == Ok(ReportStatus::Recorded) {
            assert_eq!(m.state, State::Open);
        }
    });
}

/// Two threads race for the single probe slot of half-open: exactly one
/// gets it, the other is told the slot is taken.
#[test]
fn one_probe_slot_goes_to_exactly_one_thread() {
    loom::model(|| {
        let (b, clock) = breaker(1, Config::DEFAULT);
        let _ = b.call(|| Err::<(), _>(()));
        clock.advance(Duration::from_secs(5));
        let other = b.clone();
        let t = thread::spawn(move || {
            other
                .try_acquire()
                .map(std::mem::forget)
                .map_err(|r| r.reason)
        });
        let mine = b.try_acquire().map(std::mem::forget).map_err(|r| r.reason);
        let theirs = t.join().unwrap();
        let admitted = [mine, theirs].iter().filter(|r| r.is_ok()).count();
        assert_eq!(admitted, 1);
        assert!([mine, theirs].contains(&Err(RejectReason::HalfOpenFull)));
        assert_eq!(b.state(), State::HalfOpen);
    });
}

/// A success racing a failure while a run of failures is open must reset
/// the run under the lock, never be counted lock-free: in either order the
/// run ends at most 1, so one more failure cannot trip a threshold of 3.
#[test]
fn success_after_a_failure_resets_the_run_under_the_lock() {
    loom::model(|| {
        let (b, _clock) = breaker(3, Config::DEFAULT);
        let _ = b.call(|| Err::<(), _>(())); // a run of one failure
        let other = b.clone();
        let t = thread::spawn(move || other.call(|| Ok::<_, ()>(())));
        let _ = b.call(|| Err::<(), _>(()));
        t.join().unwrap().ok();
        // Success then failure: run 1. Failure then success: run 0.
        let _ = b.call(|| Err::<(), _>(()));
        assert_eq!(b.state(), State::Closed);
    });
}
