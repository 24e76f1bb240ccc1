//! Regression tests, each named after the fault it reproduces; each failed
//! on the std adapter that kept its own copy of the shared breaker.
#![cfg(not(loom))]

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::Duration as StdDuration;

use breakerbox_std::{
    Config, ConsecutiveFailures, Duration, Instant, MonotonicClock, Outcome, Registry,
    RejectReason, SharedManualClock, State, StdBreaker,
};

/// A breaker on a manual clock that trips at the first failure, counting
/// the rejections its listener hears.
fn counted(
    config: Config,
) -> (
    StdBreaker<ConsecutiveFailures, SharedManualClock>,
    SharedManualClock,
    Arc<AtomicU64>,
) {
    let clock = SharedManualClock::new();
    let heard = Arc::new(AtomicU64::new(0));
    let h = heard.clone();
    let breaker = StdBreaker::builder(config, ConsecutiveFailures::new(1).unwrap())
        .clock(clock.clone())
        .on_rejection(move |_| {
            h.fetch_add(1, Ordering::Relaxed);
        })
        .build();
    (breaker, clock, heard)
}

/// Rejections a call makes while it waits `wait` on a breaker that will
/// not change: one when it starts, one when it gives up, at most one more
/// for a spurious wake-up; a spinning wait makes millions.
fn assert_waits_without_spinning(
    breaker: &StdBreaker<ConsecutiveFailures, SharedManualClock>,
    heard: &AtomicU64,
    reason: RejectReason,
) {
    let before = breaker.metrics().counts.rejected;
    let heard_before = heard.load(Ordering::Relaxed);
    let rejected = breaker
        .acquire_waiting(StdDuration::from_millis(300))
        .unwrap_err();
    assert_eq!(rejected.reason, reason);
    let rejections = breaker.metrics().counts.rejected - before;
    let listened = heard.load(Ordering::Relaxed) - heard_before;
    assert!(
        (2..=3).contains(&rejections),
        "{rejections} rejections while one call waited 300 ms"
    );
    assert_eq!(listened, rejections, "the listener heard each, no more");
}

#[test]
fn a_waiting_call_on_a_forced_open_breaker_sleeps_instead_of_spinning() {
    let (breaker, _clock, heard) = counted(Config::DEFAULT);
    breaker.force_open();
    assert_waits_without_spinning(&breaker, &heard, RejectReason::ForcedOpen);
}

#[test]
fn a_waiting_call_on_a_full_half_open_sleeps_instead_of_spinning() {
    let (breaker, clock, heard) = counted(Config::DEFAULT);
    let _ = breaker.call(|| Err::<(), _>("down"));
    clock.advance(Duration::from_secs(5));
    let probe = breaker.try_acquire().unwrap();
    assert_waits_without_spinning(&breaker, &heard, RejectReason::HalfOpenFull);
    probe.success();
}

#[test]
fn a_waiting_call_is_admitted_once_the_probe_lease_ends() {
    // Real time: 50 ms open, a 50 ms lease, and a probe that never reports.
    let config = Config::builder()
        .open_duration(StdDuration::from_millis(50))
        .probe_lease(StdDuration::from_millis(50))
        .build()
        .unwrap();
    let breaker = StdBreaker::new(config, ConsecutiveFailures::new(1).unwrap());
    let _ = breaker.call(|| Err::<(), _>("down"));
    thread::sleep(StdDuration::from_millis(60));
    let lost = breaker.try_acquire().expect("the first probe");
    // Half-open is full until the lease ends, then open 50 ms, then a probe.
    let waited = breaker.acquire_waiting(StdDuration::from_secs(10));
    let guard = waited.expect("admitted after the lease and one open duration");
    assert_eq!(guard.permit().unwrap().state(), State::HalfOpen);
    guard.success();
    drop(lost);
}

/// Transitions heard by a listener registered after one that always
/// panics.
type Heard = Arc<Mutex<Vec<(State, State)>>>;

fn behind_a_panicking_listener(
    clock: SharedManualClock,
) -> (StdBreaker<ConsecutiveFailures, SharedManualClock>, Heard) {
    let heard: Heard = Arc::default();
    let h = heard.clone();
    let breaker = StdBreaker::builder(Config::DEFAULT, ConsecutiveFailures::new(1).unwrap())
        .clock(clock)
        .on_transition(|_| panic!("a listener's own bug"))
        .on_transition(move |t| h.lock().unwrap().push((t.transition.from, t.transition.to)))
        .build();
    (breaker, heard)
}

#[test]
fn a_panicking_transition_listener_stops_no_delivery_and_strands_no_waiter() {
    let (breaker, heard) = behind_a_panicking_listener(SharedManualClock::new());
    breaker.force_open(); // the panic stays with the listener
    let waiter = {
        let b = breaker.clone();
        thread::spawn(move || b.acquire_waiting(StdDuration::from_secs(30)).is_ok())
    };
    while breaker.metrics().counts.rejected == 0 {
        thread::yield_now(); // until the waiter has been refused once
    }
    let start = std::time::Instant::now();
    breaker.release();
    assert!(waiter.join().unwrap(), "the waiter was admitted");
    assert!(
        start.elapsed() < StdDuration::from_secs(30),
        "woken by the release, not by its timeout"
    );
    assert_eq!(
        *heard.lock().unwrap(),
        [
            (State::Closed, State::ForcedOpen),
            (State::ForcedOpen, State::Closed)
        ],
        "the next listener heard every transition, in order"
    );
}

#[test]
fn a_listener_that_panics_while_a_guard_records_during_unwinding_does_not_abort() {
    let clock = SharedManualClock::new();
    let (breaker, heard) = behind_a_panicking_listener(clock.clone());
    let _ = breaker.call(|| Err::<(), _>("down"));
    clock.advance(Duration::from_secs(5));
    let unwound = catch_unwind(AssertUnwindSafe(|| {
        let _probe = breaker.try_acquire().unwrap();
        panic!("the operation failed by panicking");
    }));
    assert!(unwound.is_err());
    assert_eq!(breaker.state(), State::Open, "the probe counted as failed");
    assert_eq!(
        heard.lock().unwrap().last(),
        Some(&(State::HalfOpen, State::Open))
    );
}

#[test]
fn one_clock_reading_of_instant_max_cannot_keep_the_breaker_open() {
    let clock = SharedManualClock::new();
    let breaker = StdBreaker::builder(Config::DEFAULT, ConsecutiveFailures::new(1).unwrap())
        .clock(clock.clone())
        .build();
    clock.set(Instant::MAX);
    let _ = breaker.call(|| Err::<(), _>("down"));
    assert_eq!(breaker.state(), State::Open);
    clock.set(Instant::from_secs(10)); // the clock reads right again
    let rejected = breaker.try_acquire().unwrap_err();
    assert_eq!(
        rejected.retry_after(),
        Some(std::time::Duration::from_secs(5))
    );
    clock.advance(Duration::from_secs(5));
    assert!(breaker.call(|| Ok::<_, ()>(())).is_ok());
    assert_eq!(breaker.state(), State::Closed);
}

type Breakers = Registry<String, ConsecutiveFailures, MonotonicClock>;

fn named(name: &str) -> StdBreaker {
    StdBreaker::builder(Config::DEFAULT, ConsecutiveFailures::new(1).unwrap())
        .name(name)
        .build()
}

/// `f` on another thread, or `None` if it has not finished in 10 s (a
/// deadlock, say).
fn within_10_s<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(StdDuration::from_secs(10)).ok()
}

#[test]
fn a_registry_factory_may_use_the_registry() {
    static REGISTRY: OnceLock<Breakers> = OnceLock::new();
    let registry = REGISTRY.get_or_init(|| {
        Registry::new(|name| {
            if name == "orders" {
                // A breaker that shares its dependency's: made re-entrantly.
                let _ = REGISTRY.get().unwrap().get("database");
            }
            named(name)
        })
    });
    let made = within_10_s(|| REGISTRY.get().unwrap().get("orders").name().to_owned());
    assert_eq!(made.as_deref(), Some("orders"), "no deadlock");
    assert_eq!(registry.names(), ["database", "orders"]);
}

#[test]
fn a_slow_registry_factory_blocks_no_lookup_of_another_name() {
    let (release, gate) = mpsc::channel::<()>();
    let gate = Mutex::new(gate);
    let registry: Arc<Breakers> = Arc::new(Registry::new(move |name| {
        if name == "slow" {
            let _ = gate.lock().unwrap().recv(); // until the test lets it go
        }
        named(name)
    }));
    let _ = registry.get("fast");
    let maker = {
        let r = registry.clone();
        thread::spawn(move || r.get("slow").name().to_owned())
    };
    let looked_up = {
        let r = registry.clone();
        within_10_s(move || r.get("fast").name().to_owned())
    };
    assert_eq!(
        looked_up.as_deref(),
        Some("fast"),
        "looked up while the slow factory ran"
    );
    release.send(()).unwrap();
    assert_eq!(maker.join().unwrap(), "slow");
}

#[test]
fn a_success_counted_lock_free_before_a_reset_is_zeroed_with_the_rest() {
    let breaker = StdBreaker::builder(Config::DEFAULT, ConsecutiveFailures::new(3).unwrap())
        .clock(SharedManualClock::new())
        .build();
    for _ in 0..5 {
        let _ = breaker.call(|| Ok::<_, ()>(()));
    }
    // A permit of the old generation, reported after the reset: stale, and
    // nothing of it shows in the zeroed counts.
    let old = breaker.try_acquire().unwrap();
    breaker.reset();
    assert!(old.record(Outcome::Success) == breakerbox_std::ReportStatus::Stale);
    let c = breaker.metrics().counts;
    assert_eq!((c.successes, c.stale), (0, 1));
}

#[test]
fn a_call_whose_breaker_changed_while_it_ran_is_not_settled_as_a_free_success() {
    let breaker = StdBreaker::builder(Config::DEFAULT, ConsecutiveFailures::new(2).unwrap())
        .clock(SharedManualClock::new())
        .build();
    let _ = breaker.call(|| Ok::<_, ()>(())); // publishes that successes are free
                                              // A failure inside the call starts a run; the call's success ends it.
    let _ = breaker.call(|| {
        let _ = breaker.call(|| Err::<(), _>(()));
        Ok::<_, ()>(())
    });
    let _ = breaker.call(|| Err::<(), _>(()));
    assert_eq!(breaker.state(), State::Closed);
    // Reset while the call runs: its success is stale, not counted.
    let _ = breaker.call(|| {
        breaker.reset();
        Ok::<_, ()>(())
    });
    let c = breaker.metrics().counts;
    assert_eq!((c.successes, c.stale), (0, 1));
}
