//! loom model checks of the shared breaker's lock-free paths, on the
//! core's own counters: every interleaving of the threads below is
//! explored (each test also checks that loom explored more than one). Run
//! with `RUSTFLAGS="--cfg loom" cargo test -p breakerbox-core --test loom --release`.
#![cfg(loom)]

mod loom_support;

use breakerbox_core::{
    Clock, Config, ConsecutiveFailures, Instant, Outcome, RejectReason, ReportStatus,
    SharedBreaker, State,
};
use loom::sync::Arc;
use loom::thread;
use loom_support::{explore, go};

/// A clock that stands at zero: these tests give the time to the `*_at`
/// methods, and the manual controls read this.
struct Still;
impl Clock for Still {
    fn now(&self) -> Instant {
        Instant::ZERO
    }
}

type Shared = SharedBreaker<ConsecutiveFailures, Still>;

fn shared(threshold: u32) -> Arc<Shared> {
    Arc::new(SharedBreaker::new(
        Config::DEFAULT,
        ConsecutiveFailures::new(threshold).unwrap(),
        Still,
    ))
}

const T0: Instant = Instant::ZERO;

/// Publishes "successes are free" with one success of generation 0.
fn with_free_successes(b: &Shared) {
    let p = b.try_acquire_at(T0).result.unwrap();
    let _ = b.record_at(p, Outcome::Success, T0);
}

/// A lock-free success races a failure that trips: the breaker ends open
/// when the failure counted, and both reports are accounted for once.
#[test]
fn lock_free_success_races_a_trip() {
    explore(|| {
        let b = shared(1);
        with_free_successes(&b);
        let other = b.clone();
        let succeeding = thread::spawn(move || {
            go();
            other.try_acquire_at(T0).result.ok().map(|p| {
                // Admitted only while closed, before the trip: generation 0.
                assert_eq!(p.generation(), 0, "admitted by an open breaker");
                other.record_at(p, Outcome::Success, T0).status
            })
        });
        go();
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

/// A lock-free success races a reset: it was counted before the reset
/// (and zeroed with the rest) or reported after it (stale); it never shows
/// as a success of the new generation.
#[test]
fn lock_free_success_races_a_reset() {
    explore(|| {
        let b = shared(3);
        with_free_successes(&b);
        let permit = b.try_acquire_at(T0).result.unwrap();
        let other = b.clone();
        let resetting = thread::spawn(move || {
            go();
            other.reset().unwrap()
        });
        go();
        let status = b.record_at(permit, Outcome::Success, T0).status;
        let reset = resetting.join().unwrap();
        let m = b.metrics_at(T0);
        assert_eq!(m.generation, reset.generation);
        assert_eq!(m.counts.successes, 0, "an old call in the zeroed counts");
        assert_eq!(m.counts.stale, (status == ReportStatus::Stale) as u64);
    });
}

/// A lock-free rejection races a reset: counted before it (and zeroed), or
/// the call comes after it and is admitted by the closed breaker.
#[test]
fn lock_free_rejection_races_a_reset() {
    explore(|| {
        let b = shared(1);
        let p = b.try_acquire_at(T0).result.unwrap();
        let _ = b.record_at(p, Outcome::Failure, T0); // open until 5 s
        let other = b.clone();
        let resetting = thread::spawn(move || {
            go();
            let _ = other.reset();
        });
        go();
        let admitted = b.try_acquire_at(Instant::from_secs(1)).result.is_ok();
        resetting.join().unwrap();
        let m = b.metrics_at(T0);
        assert_eq!(m.counts.rejected, 0, "a rejection in the zeroed counts");
        assert_eq!(m.state, State::Closed);
        let _ = admitted;
    });
}

/// A lock-free rejection races the acquire that ends the open state: the
/// late one is the probe, the early one a counted rejection.
#[test]
fn lock_free_rejection_races_the_end_of_the_open_state() {
    explore(|| {
        let b = shared(1);
        let p = b.try_acquire_at(T0).result.unwrap();
        let _ = b.record_at(p, Outcome::Failure, T0); // open until 5 s
        let other = b.clone();
        let probing = thread::spawn(move || {
            go();
            other.try_acquire_at(Instant::from_secs(5)).result.map(drop)
        });
        go();
        let early = b.try_acquire_at(Instant::from_secs(4)).result.map(drop);
        let probe = probing.join().unwrap();
        assert!(probe.is_ok(), "the deadline admits a probe");
        // Before the probe the early call is rejected as open; after it,
        // half-open is full.
        let reason = early.unwrap_err().reason;
        assert!(matches!(
            reason,
            RejectReason::Open | RejectReason::HalfOpenFull
        ));
        let m = b.metrics_at(Instant::from_secs(5));
        assert_eq!((m.counts.rejected, m.state), (1, State::HalfOpen));
    });
}

/// Two contexts race for the one probe slot: exactly one gets it.
#[test]
fn one_probe_slot_one_winner() {
    explore(|| {
        let b = shared(1);
        let p = b.try_acquire_at(T0).result.unwrap();
        let _ = b.record_at(p, Outcome::Failure, T0);
        let at = Instant::from_secs(5);
        let other = b.clone();
        let t = thread::spawn(move || {
            go();
            other
                .try_acquire_at(at)
                .result
                .map(drop)
                .map_err(|r| r.reason)
        });
        go();
        let mine = b.try_acquire_at(at).result.map(drop).map_err(|r| r.reason);
        let theirs = t.join().unwrap();
        assert_eq!([mine, theirs].iter().filter(|r| r.is_ok()).count(), 1);
        assert!([mine, theirs].contains(&Err(RejectReason::HalfOpenFull)));
    });
}

/// A lock-free admission races a trip: a permit it gets carries the
/// generation before the trip, in the closed state, and its report is
/// then stale; it never sees a half-published generation.
#[test]
fn admission_never_sees_a_torn_snapshot() {
    explore(|| {
        let b = shared(1);
        let other = b.clone();
        let t = thread::spawn(move || {
            go();
            let p = other.try_acquire_at(T0).result.unwrap();
            let _ = other.record_at(p, Outcome::Failure, T0); // trips: generation 1
        });
        go();
        if let Ok(p) = b.try_acquire_at(T0).result {
            assert_eq!(p.generation(), 0, "only the closed generation admits");
            assert_eq!(p.state(), State::Closed);
            let _ = b.record_at(p, Outcome::Success, T0);
        }
        t.join().unwrap();
        assert_eq!(b.generation(), 1);
    });
}

/// A call admitted under the lock while the breaker closes (its view said
/// half-open) was counted then; its success must not be counted again on
/// the lock-free path.
#[test]
fn a_closed_permit_admitted_under_the_lock_is_counted_once() {
    explore(|| {
        let b = shared(1);
        let p = b.try_acquire_at(T0).result.unwrap();
        let _ = b.record_at(p, Outcome::Failure, T0); // open until 5 s
        let at = Instant::from_secs(5);
        let probe = b.try_acquire_at(at).result.unwrap();
        let other = b.clone();
        let closing = thread::spawn(move || {
            go();
            other.record_at(probe, Outcome::Success, at).status
        });
        go();
        let admitted = match b.try_acquire_at(at).result {
            Ok(p) => {
                let _ = b.record_at(p, Outcome::Success, at);
                true
            }
            Err(_) => false,
        };
        assert_eq!(closing.join().unwrap(), ReportStatus::Recorded);
        let m = b.metrics_at(at);
        assert_eq!(m.state, State::Closed);
        assert_eq!(
            m.counts.calls,
            2 + admitted as u64,
            "each call counted once"
        );
    });
}
