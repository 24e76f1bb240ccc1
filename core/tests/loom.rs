//! loom model checks of the shared breaker's lock-free paths. Run with
//! `RUSTFLAGS="--cfg loom" cargo test -p breakerbox-core --test loom --release`.
#![cfg(loom)]

use breakerbox_core::{
    Config, ConsecutiveFailures, Instant, Outcome, RejectReason, ReportStatus, SharedBreaker, State,
};
use loom::sync::Arc;
use loom::thread;

fn shared(threshold: u32) -> Arc<SharedBreaker> {
    Arc::new(SharedBreaker::new(
        Config::DEFAULT,
        ConsecutiveFailures::new(threshold).unwrap(),
        (),
    ))
}

const T0: Instant = Instant::ZERO;

/// A lock-free success races a failure that trips: the breaker ends open
/// when the failure counted, and both reports are accounted for once.
#[test]
fn lock_free_success_races_a_trip() {
    loom::model(|| {
        let b = shared(1);
        // One success first, so successes are published as free.
        let p = b.try_acquire_at(T0).result.unwrap();
        let _ = b.record_at(p, Outcome::Success, T0);
        let other = b.clone();
        let succeeding = thread::spawn(move || {
            other.try_acquire_at(T0).result.ok().map(|p| {
                // Admitted only while closed, before the trip: generation 0.
                assert_eq!(p.generation(), 0, "admitted by an open breaker");
                other.record_at(p, Outcome::Success, T0).status
            })
        });
        let failed = b
            .try_acquire_at(T0)
            .result
            .ok()
            .map(|p| b.record_at(p, Outcome::Failure, T0).status);
        let succeeded = succeeding.join().unwrap();
        let m = b.metrics_at(T0);
        let admitted = 1 + failed.is_some() as u64 + succeeded.is_some() as u64;
        assert_eq!(m.counts.calls, admitted);
        assert_eq!(
            m.counts.successes + m.counts.failures + m.counts.stale,
            admitted
        );
        if failed == Some(ReportStatus::Recorded) {
            assert_eq!(m.state, State::Open);
        }
    });
}

/// Two contexts race for the one probe slot: exactly one gets it.
#[test]
fn one_probe_slot_one_winner() {
    loom::model(|| {
        let b = shared(1);
        let p = b.try_acquire_at(T0).result.unwrap();
        let _ = b.record_at(p, Outcome::Failure, T0);
        let at = Instant::from_secs(5);
        let other = b.clone();
        let t = thread::spawn(move || {
            other
                .try_acquire_at(at)
                .result
                .map(drop)
                .map_err(|r| r.reason)
        });
        let mine = b.try_acquire_at(at).result.map(drop).map_err(|r| r.reason);
        let theirs = t.join().unwrap();
        assert_eq!([mine, theirs].iter().filter(|r| r.is_ok()).count(), 1);
        assert!([mine, theirs].contains(&Err(RejectReason::HalfOpenFull)));
    });
}

/// A lock-free admission races a trip: a permit it gets carries either the
/// generation before the trip (and its report is stale) or none at all; it
/// never sees a half-published generation.
#[test]
fn admission_never_sees_a_torn_snapshot() {
    loom::model(|| {
        let b = shared(1);
        let other = b.clone();
        let t = thread::spawn(move || {
            let p = other.try_acquire_at(T0).result.unwrap();
            let _ = other.record_at(p, Outcome::Failure, T0); // trips: generation 1
        });
        if let Ok(p) = b.try_acquire_at(T0).result {
            assert!(p.generation() <= 1, "a real generation: {}", p.generation());
            assert_eq!(p.state(), State::Closed);
        }
        t.join().unwrap();
        assert_eq!(b.generation(), 1);
    });
}
