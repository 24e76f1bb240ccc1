//! loom model checks of `StdBreaker`'s lock-free paths with its real
//! per-thread counters: every interleaving of the threads below is
//! explored (each test also checks that loom explored more than one). Run
//! with `RUSTFLAGS="--cfg loom" cargo test -p breakerbox-std --test loom --release`.
#![cfg(loom)]

#[path = "../../core/tests/loom_support/mod.rs"]
mod loom_support;

use breakerbox_std::{
    Config, ConsecutiveFailures, Duration, Outcome, RejectReason, ReportStatus, SharedManualClock,
    State, StdBreaker,
};
use loom::thread;
use loom_support::{explore, go};

type Breaker = StdBreaker<ConsecutiveFailures, SharedManualClock>;

fn breaker(threshold: u32) -> (Breaker, SharedManualClock) {
    let clock = SharedManualClock::new();
    let b = StdBreaker::builder(
        Config::DEFAULT,
        ConsecutiveFailures::new(threshold).unwrap(),
    )
    .clock(clock.clone())
    .build();
    (b, clock)
}

/// Publishes "successes are free" with one success of generation 0.
fn with_free_successes(b: &Breaker) {
    assert!(b.call(|| Ok::<_, ()>(())).is_ok());
}

/// A lock-free success races a failure that trips the breaker: whatever the
/// order, both reports are accounted for once, and the failure trips it.
#[test]
fn lock_free_success_races_a_trip() {
    explore(|| {
        let (b, _clock) = breaker(1);
        with_free_successes(&b);
        let other = b.clone();
        let succeeding = thread::spawn(move || {
            go();
            match other.try_acquire() {
                Ok(guard) => Some(guard.record(Outcome::Success)),
                Err(_) => None,
            }
        });
        go();
        let failed = b.try_acquire().map(|g| g.record(Outcome::Failure));
        let succeeded = succeeding.join().unwrap();
        let m = b.metrics();
        let admitted = 1 + failed.is_ok() as u64 + succeeded.is_some() as u64;
        assert_eq!(m.counts.calls, admitted);
        assert_eq!(
            m.counts.successes + m.counts.failures + m.counts.stale,
            admitted
        );
        if failed == Ok(ReportStatus::Recorded) {
            assert_eq!(m.state, State::Open);
        }
    });
}

/// A lock-free success races a reset: counted before it (and zeroed with
/// the rest) or reported after it (stale); never a success of the new
/// generation.
#[test]
fn lock_free_success_races_a_reset() {
    explore(|| {
        let (b, _clock) = breaker(3);
        with_free_successes(&b);
        let guard = b.try_acquire().unwrap();
        let other = b.clone();
        let resetting = thread::spawn(move || {
            go();
            other
                .reset()
                .expect("the std lock blocks rather than refuse")
        });
        go();
        let status = guard.record(Outcome::Success);
        let reset = resetting.join().unwrap();
        let m = b.metrics();
        assert_eq!(m.generation, reset.generation);
        assert_eq!(m.counts.successes, 0, "an old call in the zeroed counts");
        assert_eq!(m.counts.stale, (status == ReportStatus::Stale) as u64);
    });
}

/// A lock-free rejection races a reset: counted before it (and zeroed), or
/// the call comes after it and the closed breaker admits it.
#[test]
fn lock_free_rejection_races_a_reset() {
    explore(|| {
        let (b, _clock) = breaker(1);
        let _ = b.call(|| Err::<(), _>(())); // open for 5 s
        let other = b.clone();
        let resetting = thread::spawn(move || {
            go();
            let _ = other.reset();
        });
        go();
        let _ = b.try_acquire().map(|g| g.success());
        resetting.join().unwrap();
        let m = b.metrics();
        assert_eq!(m.counts.rejected, 0, "a rejection in the zeroed counts");
        assert_eq!(m.state, State::Closed);
    });
}

/// A lock-free rejection races the acquire that ends the open state.
#[test]
fn lock_free_rejection_races_the_end_of_the_open_state() {
    explore(|| {
        let (b, clock) = breaker(1);
        let _ = b.call(|| Err::<(), _>(())); // open until 5 s
        clock.advance(Duration::from_secs(5));
        let other = b.clone();
        let probing = thread::spawn(move || {
            go();
            other
                .try_acquire()
                .map(std::mem::forget)
                .map_err(|r| r.reason)
        });
        go();
        let mine = b.try_acquire().map(std::mem::forget).map_err(|r| r.reason);
        let theirs = probing.join().unwrap();
        let admitted = [mine, theirs].iter().filter(|r| r.is_ok()).count();
        assert_eq!(admitted, 1, "one probe");
        assert!([mine, theirs].contains(&Err(RejectReason::HalfOpenFull)));
        let m = b.metrics();
        assert_eq!((m.counts.rejected, m.state), (1, State::HalfOpen));
    });
}

/// A success racing a failure while a run of failures is open must reset
/// the run under the lock, never be counted lock-free: in either order the
/// run ends at most 1, so one more failure cannot trip a threshold of 3.
#[test]
fn success_after_a_failure_resets_the_run_under_the_lock() {
    explore(|| {
        let (b, _clock) = breaker(3);
        let _ = b.call(|| Err::<(), _>(())); // a run of one failure
        let other = b.clone();
        let t = thread::spawn(move || {
            go();
            other.call(|| Ok::<_, ()>(()))
        });
        go();
        let _ = b.call(|| Err::<(), _>(()));
        t.join().unwrap().ok();
        // Success then failure: run 1. Failure then success: run 0.
        let _ = b.call(|| Err::<(), _>(()));
        assert_eq!(b.state(), State::Closed);
    });
}

/// Two threads count lock-free successes on their own slots while a third
/// reads the metrics: every count lands once, none is torn.
#[test]
fn per_thread_counts_add_up() {
    explore(|| {
        let (b, _clock) = breaker(3);
        with_free_successes(&b);
        let other = b.clone();
        let t = thread::spawn(move || {
            go();
            let _ = other.call(|| Ok::<_, ()>(()));
        });
        go();
        let seen = b.metrics().counts.successes;
        assert!((1..=2).contains(&seen), "{seen}");
        t.join().unwrap();
        let _ = b.call(|| Ok::<_, ()>(()));
        let m = b.metrics();
        assert_eq!((m.counts.calls, m.counts.successes), (3, 3));
    });
}

/// Two calls race into half-open: one is the probe, whose success closes
/// the breaker; the other is refused, or admitted under the lock as a
/// closed call (counted then: its success must not count again lock-free),
/// or admitted lock-free once the breaker closed.
#[test]
fn a_closed_permit_admitted_under_the_lock_is_counted_once() {
    explore(|| {
        let (b, clock) = breaker(1);
        let _ = b.call(|| Err::<(), _>(())); // one call, open for 5 s
        clock.advance(Duration::from_secs(5));
        let other = b.clone();
        let call = |b: &Breaker| b.try_acquire().map(|g| g.success()).is_ok();
        let theirs = thread::spawn(move || {
            go();
            call(&other)
        });
        go();
        let mine = call(&b);
        let theirs = theirs.join().unwrap();
        let m = b.metrics();
        assert_eq!(m.state, State::Closed);
        let admitted = mine as u64 + theirs as u64;
        assert_eq!(m.counts.calls, 1 + admitted, "each call counted once");
    });
}
