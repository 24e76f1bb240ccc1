//! The std adapter's behaviour through its public API.
#![cfg(not(loom))]

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::Duration as StdDuration;

use breakerbox_std::{
    CallError, Config, ConsecutiveFailures, CountWindow, Duration, Instant, Jitter, MonotonicClock,
    Outcome, Ratio, Registry, RejectReason, ReportStatus, SharedManualClock, State, StdBreaker,
    Thresholds, TransitionReason,
};

fn manual(
    threshold: u32,
    config: Config,
) -> (
    StdBreaker<ConsecutiveFailures, SharedManualClock>,
    SharedManualClock,
) {
    let clock = SharedManualClock::new();
    let breaker = StdBreaker::builder(config, ConsecutiveFailures::new(threshold).unwrap())
        .clock(clock.clone())
        .build();
    (breaker, clock)
}

fn fail() -> Result<(), &'static str> {
    Err("down")
}

#[test]
fn shares_one_breaker_across_clones_and_threads() {
    let (breaker, _clock) = manual(4, Config::DEFAULT);
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let b = breaker.clone();
            thread::spawn(move || b.call(fail).unwrap_err())
        })
        .collect();
    for h in handles {
        assert!(matches!(h.join().unwrap(), CallError::Inner("down")));
    }
    assert_eq!(breaker.state(), State::Open);
    let r = breaker.call(|| Ok::<_, ()>(())).unwrap_err();
    assert!(r.is_rejected());
}

#[test]
fn fast_paths_keep_counts_and_semantics() {
    let (breaker, clock) = manual(2, Config::DEFAULT);
    for _ in 0..10 {
        assert_eq!(breaker.call(|| Ok::<_, ()>(1)), Ok(1));
    }
    let _ = breaker.call(fail);
    assert_eq!(
        breaker.call(|| Ok::<_, ()>(2)),
        Ok(2),
        "this success resets the run, under the lock"
    );
    let _ = breaker.call(fail);
    assert_eq!(breaker.state(), State::Closed, "one failure in a row");
    let _ = breaker.call(fail);
    assert_eq!(breaker.state(), State::Open);
    clock.advance(Duration::from_secs(1));
    let r = breaker.try_acquire().unwrap_err();
    assert_eq!(r.reason, RejectReason::Open);
    assert_eq!(r.retry_after(), Some(std::time::Duration::from_secs(4)));
    let m = breaker.metrics();
    assert_eq!(
        (
            m.counts.calls,
            m.counts.successes,
            m.counts.failures,
            m.counts.rejected
        ),
        (14, 11, 3, 1)
    );
    breaker.reset();
    let m = breaker.metrics();
    assert_eq!(
        (m.counts.calls, m.counts.successes, m.counts.rejected),
        (0, 0, 0)
    );
}

#[test]
fn a_permit_from_before_the_trip_is_stale() {
    let (breaker, _clock) = manual(1, Config::DEFAULT);
    let early = breaker.try_acquire().unwrap();
    let _ = breaker.call(fail);
    assert_eq!(early.success(), ReportStatus::Stale);
    assert_eq!(breaker.metrics().counts.stale, 1);
}

#[test]
fn a_panicking_operation_counts_as_a_failure_and_the_panic_goes_on() {
    let (breaker, clock) = manual(1, Config::DEFAULT);
    let _ = breaker.call(fail);
    clock.advance(Duration::from_secs(5));
    let result = catch_unwind(AssertUnwindSafe(|| {
        let _ = breaker.call(|| -> Result<(), ()> { panic!("probe blew up") });
    }));
    assert!(result.is_err(), "the panic continued");
    assert_eq!(
        breaker.state(),
        State::Open,
        "the panicking probe reopened it"
    );
    let last = breaker.history().last().copied().unwrap();
    assert_eq!(last.reason, TransitionReason::ProbeFailed);
}

#[test]
fn a_dropped_guard_gives_its_probe_slot_back() {
    let (breaker, clock) = manual(1, Config::DEFAULT);
    let _ = breaker.call(fail);
    clock.advance(Duration::from_secs(5));
    let guard = breaker.try_acquire().unwrap();
    assert_eq!(
        breaker.try_acquire().unwrap_err().reason,
        RejectReason::HalfOpenFull
    );
    drop(guard);
    assert_eq!(breaker.state(), State::HalfOpen);
    assert_eq!(breaker.metrics().counts.ignored, 1);
    assert_eq!(
        breaker.try_acquire().unwrap().success(),
        ReportStatus::Recorded
    );
    assert_eq!(breaker.state(), State::Closed);
}

#[test]
fn call_errors_chain_to_their_source() {
    use std::error::Error;
    let (breaker, _clock) = manual(1, Config::DEFAULT);
    let io = || Err::<(), _>(std::io::Error::other("connection reset"));
    // Each message once, as anyhow's `{:#}` prints the chain.
    let err = breaker.call(io).unwrap_err();
    assert_eq!(err.to_string(), "the call failed");
    assert_eq!(err.source().unwrap().to_string(), "connection reset");
    let rejected = breaker.call(io).unwrap_err();
    assert!(rejected.to_string().contains("open"));
    assert!(rejected.source().is_none());
}

#[test]
fn listeners_hear_every_transition_in_order_and_every_rejection() {
    let transitions = Arc::new(Mutex::new(Vec::new()));
    let rejections = Arc::new(Mutex::new(Vec::new()));
    let clock = SharedManualClock::new();
    let (t, r) = (transitions.clone(), rejections.clone());
    let breaker = StdBreaker::builder(Config::DEFAULT, ConsecutiveFailures::new(1).unwrap())
        .clock(clock.clone())
        .name("orders")
        .on_transition(move |tr| {
            t.lock().unwrap().push((
                tr.transition.from,
                tr.transition.to,
                tr.transition.generation,
            ))
        })
        .on_rejection(move |rej| r.lock().unwrap().push(rej.rejected.reason))
        .build();
    assert_eq!(breaker.name(), "orders");
    let _ = breaker.call(fail);
    let _ = breaker.call(fail);
    clock.advance(Duration::from_secs(5));
    let _ = breaker.call(|| Ok::<_, ()>(()));
    breaker.force_open();
    let _ = breaker.call(fail);
    breaker.release();
    let seen = transitions.lock().unwrap().clone();
    assert_eq!(
        seen,
        [
            (State::Closed, State::Open, 1),
            (State::Open, State::HalfOpen, 2),
            (State::HalfOpen, State::Closed, 3),
            (State::Closed, State::ForcedOpen, 4),
            (State::ForcedOpen, State::Closed, 5),
        ]
    );
    assert_eq!(
        *rejections.lock().unwrap(),
        [RejectReason::Open, RejectReason::ForcedOpen]
    );
}

/// One listener for two breakers tells them apart by the name each event
/// carries, and hears each opening's length as a duration.
#[test]
fn events_name_their_breaker_and_say_how_long_it_stays_open() {
    type Heard = Arc<Mutex<Vec<(String, State, Option<StdDuration>)>>>;
    let heard: Heard = Arc::new(Mutex::new(Vec::new()));
    let rejected = Arc::new(Mutex::new(Vec::new()));
    let clock = SharedManualClock::new();
    let config = Config::builder()
        .exponential_backoff(StdDuration::from_secs(2), StdDuration::from_secs(60), 3, 1)
        .build()
        .unwrap();
    let build = |name: &str| {
        let (h, r) = (heard.clone(), rejected.clone());
        StdBreaker::builder(config, ConsecutiveFailures::new(1).unwrap())
            .clock(clock.clone())
            .name(name)
            .on_transition(move |e| {
                let entry = (e.breaker.to_owned(), e.transition.to, e.open_for);
                h.lock().unwrap().push(entry);
            })
            .on_rejection(move |e| r.lock().unwrap().push(e.breaker.to_owned()))
            .build()
    };
    let (db, cache) = (build("db"), build("cache"));
    let _ = db.call(fail); // db opens for 2 s
    let _ = cache.call(fail); // cache opens for 2 s
    let _ = cache.call(fail); // rejected
    clock.advance(Duration::from_secs(2));
    let _ = db.call(fail); // db probes, fails, reopens for 6 s
    let secs = |s| Some(StdDuration::from_secs(s));
    assert_eq!(
        *heard.lock().unwrap(),
        [
            ("db".to_owned(), State::Open, secs(2)),
            ("cache".to_owned(), State::Open, secs(2)),
            ("db".to_owned(), State::HalfOpen, None),
            ("db".to_owned(), State::Open, secs(6)),
        ]
    );
    assert_eq!(*rejected.lock().unwrap(), ["cache"]);
}

#[test]
fn listeners_from_many_threads_arrive_in_generation_order() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let breaker = StdBreaker::builder(Config::DEFAULT, ConsecutiveFailures::new(1).unwrap())
        .clock(SharedManualClock::new())
        .on_transition(move |t| s.lock().unwrap().push(t.transition.generation))
        .build();
    let barrier = Arc::new(Barrier::new(4));
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let (b, barrier) = (breaker.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                for _ in 0..if cfg!(miri) { 20 } else { 200 } {
                    b.force_open();
                    b.release();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let seen = seen.lock().unwrap();
    assert!(!seen.is_empty());
    assert!(
        seen.windows(2).all(|w| w[1] == w[0] + 1),
        "in order, none lost"
    );
    assert_eq!(*seen.last().unwrap(), breaker.metrics().generation);
}

#[test]
fn a_listener_may_call_the_breaker() {
    let slot: Arc<Mutex<Option<StdBreaker<ConsecutiveFailures, SharedManualClock>>>> =
        Arc::new(Mutex::new(None));
    let inner = slot.clone();
    let breaker = StdBreaker::builder(Config::DEFAULT, ConsecutiveFailures::new(1).unwrap())
        .clock(SharedManualClock::new())
        .on_transition(move |t| {
            if t.transition.to == State::Open {
                let b = inner.lock().unwrap().clone().unwrap();
                b.force_open(); // a nested transition: delivered after this one
            }
        })
        .build();
    *slot.lock().unwrap() = Some(breaker.clone());
    let _ = breaker.call(fail);
    assert_eq!(breaker.state(), State::ForcedOpen);
    *slot.lock().unwrap() = None;
}

#[test]
fn registry_makes_each_name_once_under_concurrent_first_use() {
    let made = Arc::new(Mutex::new(Vec::new()));
    let m = made.clone();
    let registry = Arc::new(Registry::new(move |name| {
        m.lock().unwrap().push(name.to_owned());
        StdBreaker::builder(Config::DEFAULT, ConsecutiveFailures::new(1).unwrap())
            .name(name)
            .build()
    }));
    assert!(registry.is_empty(), "nothing made before the first use");
    let barrier = Arc::new(Barrier::new(8));
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let (registry, barrier) = (registry.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                let b = registry.get(if i % 2 == 0 { "db" } else { "cache" });
                let _ = b.call(|| Err::<(), _>(i)); // trips the one shared breaker
                b
            })
        })
        .collect();
    let breakers: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let mut names = made.lock().unwrap().clone();
    names.sort();
    assert_eq!(names, ["cache", "db"], "each made once");
    assert_eq!(registry.names(), ["cache", "db"]);
    assert_eq!(registry.len(), 2);
    assert!(!registry.is_empty());
    for b in &breakers {
        assert_eq!(
            b.state(),
            State::Open,
            "every thread got the shared breaker"
        );
    }
    assert!(registry.existing("db").is_some());
    assert!(registry.existing("nope").is_none());
}

fn real_time(
    open_ms: u64,
    config: impl FnOnce(breakerbox_std::ConfigBuilder) -> breakerbox_std::ConfigBuilder,
) -> StdBreaker {
    let config = config(Config::builder().open_duration(StdDuration::from_millis(open_ms)))
        .build()
        .unwrap();
    StdBreaker::new(config, ConsecutiveFailures::new(1).unwrap())
}

#[test]
fn waiting_call_wakes_when_the_breaker_opens_its_door() {
    let breaker = real_time(100, |c| c);
    let _ = breaker.call(fail);
    let start = std::time::Instant::now();
    let r = breaker.call_waiting(StdDuration::from_secs(5), || Ok::<_, ()>("through"));
    let waited = start.elapsed();
    assert_eq!(r, Ok("through"));
    // Admitted, so woken by the deadline and not by its timeout (which
    // would have rejected it): no upper bound on the time, which a loaded
    // machine could stretch.
    assert!(
        waited >= StdDuration::from_millis(95),
        "waited for the deadline: {waited:?}"
    );
    assert_eq!(breaker.state(), State::Closed);
}

#[test]
fn waiting_call_gives_up_on_timeout() {
    let breaker = real_time(10_000, |c| c);
    let _ = breaker.call(fail);
    let start = std::time::Instant::now();
    let r = breaker.call_waiting(StdDuration::from_millis(60), || Ok::<_, ()>(()));
    let waited = start.elapsed();
    let Err(CallError::Rejected(rejected)) = r else {
        panic!("expected a rejection, got {r:?}")
    };
    assert_eq!(rejected.reason, RejectReason::Open);
    // Rejected, with the deadline still ahead: it gave up at its timeout.
    assert!(rejected.retry_after().unwrap() > std::time::Duration::from_secs(9));
    assert!(waited >= StdDuration::from_millis(60), "{waited:?}");
}

#[test]
fn waiting_call_wakes_when_a_probe_slot_frees() {
    let breaker = real_time(1, |c| c);
    let _ = breaker.call(fail);
    thread::sleep(StdDuration::from_millis(5));
    let probe = breaker.try_acquire().unwrap();
    assert_eq!(breaker.state(), State::HalfOpen);
    let waiter = {
        let b = breaker.clone();
        thread::spawn(move || {
            let start = std::time::Instant::now();
            let r = b.call_waiting(StdDuration::from_secs(5), || Ok::<_, ()>(()));
            (r, start.elapsed())
        })
    };
    thread::sleep(StdDuration::from_millis(100));
    probe.ignore(); // frees the slot
    let (r, waited) = waiter.join().unwrap();
    // Admitted (its timeout would have rejected it), and not before the
    // slot was freed.
    assert_eq!(r, Ok(()));
    assert!(waited >= StdDuration::from_millis(90), "{waited:?}");
}

#[test]
fn waiting_call_wakes_on_release() {
    let breaker = real_time(100, |c| c);
    breaker.force_open();
    let waiter = {
        let b = breaker.clone();
        thread::spawn(move || b.call_waiting(StdDuration::from_secs(5), || Ok::<_, ()>(7)))
    };
    thread::sleep(StdDuration::from_millis(50));
    breaker.release();
    assert_eq!(waiter.join().unwrap(), Ok(7));
}

#[test]
fn window_policies_record_under_the_lock() {
    let policy = CountWindow::<4>::new(Thresholds::new().failure_rate(Ratio::percent(50))).unwrap();
    let breaker = StdBreaker::builder(Config::DEFAULT, policy)
        .clock(SharedManualClock::new())
        .build();
    let _ = breaker.call(fail);
    let _ = breaker.call(fail);
    let _ = breaker.call(|| Ok::<_, ()>(()));
    assert_eq!(breaker.state(), State::Closed);
    let _ = breaker.call(|| Ok::<_, ()>(()));
    assert_eq!(breaker.state(), State::Open, "filled on a success at 50 %");
    assert_eq!(breaker.metrics().failure_rate, Some(Ratio::new(2, 4)));
}

#[test]
fn slow_calls_are_measured_on_the_breaker_clock() {
    let clock = SharedManualClock::new();
    let config = Config::builder()
        .slow_call_threshold(StdDuration::from_millis(100))
        .build()
        .unwrap();
    let breaker = StdBreaker::builder(config, ConsecutiveFailures::new(3).unwrap())
        .clock(clock.clone())
        .build();
    let _ = breaker.call(|| {
        clock.advance(Duration::from_millis(150));
        Ok::<_, ()>(())
    });
    let _ = breaker.call(|| Ok::<_, ()>(()));
    assert_eq!(breaker.metrics().counts.slow, 1);
    assert_eq!(breaker.metrics().counts.successes, 2);
}

#[test]
fn monotonic_clock_is_the_default() {
    let breaker = StdBreaker::new(Config::DEFAULT, ConsecutiveFailures::default());
    let _: &MonotonicClock = breaker.clock();
    let seed = breaker.config().jitter_seed().expect("drawn at build");
    assert_eq!(breaker.config(), Config::DEFAULT.with_jitter_seed(seed));
    let guard = breaker.try_acquire().unwrap();
    assert_eq!(
        guard.permit().unwrap().started(),
        Instant::ZERO,
        "closed admission read no clock"
    );
    assert_eq!(guard.record(Outcome::Success), ReportStatus::Recorded);
}

#[test]
fn poll_at_gives_the_time_the_answer_changes_by_itself() {
    let (breaker, clock) = manual(1, Config::DEFAULT);
    assert_eq!(breaker.poll_at(), None, "closed: nothing changes by itself");
    clock.advance(Duration::from_secs(1));
    let _ = breaker.call(fail);
    assert_eq!(
        breaker.poll_at(),
        Some(Instant::from_secs(6)),
        "the open deadline"
    );
}

#[test]
fn config_gives_back_the_configuration() {
    let config = Config::builder()
        .open_duration(StdDuration::from_millis(1_234))
        .max_probes(2)
        .build()
        .unwrap();
    let (breaker, _clock) = manual(1, config);
    let seed = breaker.config().jitter_seed().expect("drawn at build");
    assert_eq!(breaker.config(), config.with_jitter_seed(seed));
    let seeded = config.with_jitter_seed(7);
    let (breaker, _clock) = manual(1, seeded);
    assert_eq!(breaker.config(), seeded, "a seed given is kept");
}

/// Replicas left on defaults must not probe in step: each breaker draws its
/// own jitter seed, unless it was given one.
#[test]
fn default_breakers_jitter_apart_and_seeded_ones_alike() {
    let config = Config::builder().jitter(Jitter::Full).build().unwrap();
    let opened_for = |config: Config| {
        let (breaker, _clock) = manual(1, config);
        let _ = breaker.call(fail);
        breaker.poll_at().expect("open")
    };
    // Two draws from 5 s of microseconds: equal once in five million.
    assert_ne!(opened_for(config), opened_for(config));
    let seeded = Config::builder()
        .jitter(Jitter::Full)
        .jitter_seed(42)
        .build()
        .unwrap();
    assert_eq!(opened_for(seeded), opened_for(seeded));
}

#[test]
fn unnamed_breakers_get_names_of_their_own() {
    let (a, _) = manual(1, Config::DEFAULT);
    let (b, _) = manual(1, Config::DEFAULT);
    assert!(a.name().starts_with("breaker-"), "{}", a.name());
    assert!(b.name().starts_with("breaker-"), "{}", b.name());
    assert_ne!(a.name(), b.name());
}

#[cfg(feature = "quanta")]
#[test]
fn coarse_clock_errors_say_what_went_wrong() {
    use std::error::Error;
    let elsewhere = breakerbox_std::CoarseClockError::UpkeepRunElsewhere;
    assert!(!elsewhere.to_string().is_empty());
    assert!(elsewhere.to_string().contains("upkeep"), "{elsewhere}");
    assert!(elsewhere.source().is_none());
}

#[test]
fn debug_shows_the_name_the_metrics_and_the_configuration() {
    let (breaker, _clock) = manual(1, Config::DEFAULT);
    let _ = breaker.call(fail);
    let shown = format!("{breaker:?}");
    for part in [
        "name: \"breaker-",
        "state: Open",
        "generation: 1",
        "failures: 1",
        "backoff: Fixed(5s)",
        "probe_lease: 30s",
    ] {
        assert!(shown.contains(part), "{part} in {shown}");
    }
}

/// A `StdBreaker` crosses `catch_unwind` without `AssertUnwindSafe`: it is
/// used again after a panic it caught (this fails to compile if it is not
/// `RefUnwindSafe`).
#[test]
fn a_breaker_crosses_catch_unwind_and_works_after_the_panic() {
    let (breaker, _clock) = manual(1, Config::DEFAULT);
    let caught = std::panic::catch_unwind(|| breaker.call(|| -> Result<(), ()> { panic!("boom") }));
    assert!(caught.is_err());
    assert_eq!(
        breaker.state(),
        State::Open,
        "the panic counted as a failure"
    );
}

#[test]
fn a_registrys_debug_lists_its_breakers_sorted() {
    let registry = Registry::new(|name| {
        StdBreaker::builder(Config::DEFAULT, ConsecutiveFailures::new(1).unwrap())
            .name(name)
            .build()
    });
    let _ = (registry.get("db"), registry.get("cache"));
    assert_eq!(
        format!("{registry:?}"),
        "Registry { breakers: [\"cache\", \"db\"], .. }"
    );
}

/// A running breaker takes a new configuration: an opening under way is
/// cut (its lock-free rejections see the new deadline at once), counts and
/// history stay, and a half-open probe out is judged by the new rules.
#[test]
fn reconfiguring_an_open_and_a_half_open_breaker() {
    let open_for = |s| {
        Config::builder()
            .open_duration(StdDuration::from_secs(s))
            .successes_to_close(2)
            .build()
            .unwrap()
    };
    let (breaker, clock) = manual(1, open_for(60));
    let _ = breaker.call(fail);
    let rejected = |b: &StdBreaker<ConsecutiveFailures, SharedManualClock>| match b
        .call(|| Ok::<_, &str>(()))
    {
        Err(CallError::Rejected(r)) => r.retry_after(),
        other => panic!("expected a rejection, got {other:?}"),
    };
    assert_eq!(rejected(&breaker), Some(StdDuration::from_secs(60)));
    clock.advance(Duration::from_secs(1));
    breaker.reconfigure(open_for(5));
    assert_eq!(rejected(&breaker), Some(StdDuration::from_secs(5)));
    breaker.reconfigure(open_for(600));
    assert_eq!(
        rejected(&breaker),
        Some(StdDuration::from_secs(5)),
        "not lengthened"
    );
    let m = breaker.metrics();
    assert_eq!(
        (m.generation, m.counts.failures, m.counts.rejected),
        (1, 1, 3)
    );

    clock.advance(Duration::from_secs(5));
    let probe = breaker.try_acquire().unwrap();
    assert_eq!(breaker.state(), State::HalfOpen);
    breaker.reconfigure(
        Config::builder()
            .open_duration(StdDuration::from_secs(600))
            .successes_to_close(1)
            .build()
            .unwrap(),
    );
    assert_eq!(probe.record(Outcome::Success), ReportStatus::Recorded);
    assert_eq!(breaker.state(), State::Closed, "one success closes now");
    assert_eq!(breaker.metrics().generation, 3);
}
