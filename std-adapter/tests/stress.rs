//! Many threads, hundreds of thousands of calls, a flaky operation and a
//! shared manual clock that every attempt moves forward by a microsecond,
//! so every state is crossed many times. Time is counted in attempts, not
//! read from the machine: no verdict here depends on its speed or load.
#![cfg(not(loom))]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::Duration;

use breakerbox_std::{
    Config, ConsecutiveFailures, CountWindow, Outcome, Ratio, ReportStatus, SharedManualClock,
    State, StdBreaker, Thresholds,
};

const THREADS: u64 = 8;
/// Calls per thread (fewer under Miri, which runs about 1,000× slower).
const CALLS_PER_THREAD: u64 = if cfg!(miri) { 300 } else { 40_000 };
const MAX_PROBES: u32 = 3;

#[derive(Default)]
struct Tally {
    attempts: AtomicU64,
    rejected: AtomicU64,
    admitted: AtomicU64,
    recorded: AtomicU64,
    ignored: AtomicU64,
    stale: AtomicU64,
}

/// A small xorshift per thread: flaky, but reproducible in shape.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn every_attempt_is_accounted_for_exactly_once_and_probes_stay_bounded() {
    let config = Config::builder()
        .open_duration(Duration::from_micros(200))
        .max_probes(MAX_PROBES)
        .successes_to_close(6)
        .probe_lease(Duration::from_millis(2))
        .build()
        .unwrap();
    let policy = (
        ConsecutiveFailures::new(4).unwrap(),
        CountWindow::<32>::new(
            Thresholds::new()
                .failure_rate(Ratio::percent(50))
                .minimum_calls(16),
        )
        .unwrap(),
    );
    let clock = SharedManualClock::new();
    let breaker = StdBreaker::builder(config, policy)
        .clock(clock.clone())
        .build();
    let tally = Arc::new(Tally::default());
    // Probes in flight per half-open generation, as the callers see them.
    let probes: Arc<Mutex<HashMap<u64, u32>>> = Arc::default();
    let worst = Arc::new(AtomicU64::new(0));
    let barrier = Arc::new(Barrier::new(THREADS as usize));

    let handles: Vec<_> = (0..THREADS)
        .map(|seed| {
            let (breaker, clock, tally, probes, worst, barrier) = (
                breaker.clone(),
                clock.clone(),
                tally.clone(),
                probes.clone(),
                worst.clone(),
                barrier.clone(),
            );
            thread::spawn(move || {
                let mut rng = 0x9e37_79b9_7f4a_7c15 ^ (seed + 1);
                barrier.wait();
                for i in 0..CALLS_PER_THREAD {
                    tally.attempts.fetch_add(1, Ordering::Relaxed);
                    clock.advance(breakerbox_std::Duration::from_micros(1));
                    let Ok(guard) = breaker.try_acquire() else {
                        tally.rejected.fetch_add(1, Ordering::Relaxed);
                        continue;
                    };
                    tally.admitted.fetch_add(1, Ordering::Relaxed);
                    let permit = guard.permit().unwrap();
                    let probe = (permit.state() == State::HalfOpen).then_some(permit.generation());
                    if let Some(generation) = probe {
                        let mut p = probes.lock().unwrap();
                        let n = p.entry(generation).or_default();
                        *n += 1;
                        worst.fetch_max(*n as u64, Ordering::Relaxed);
                    }
                    // Phases of health: mostly healthy, then bursts of failure.
                    let failing = (i / 2_000) % 3 == 1;
                    let roll = next(&mut rng) % 100;
                    let outcome = match roll {
                        0..=1 => Outcome::Ignored,
                        _ if failing && roll < 80 => Outcome::Failure,
                        2..=6 => Outcome::Failure,
                        _ => Outcome::Success,
                    };
                    if probe.is_some() || roll % 50 == 7 {
                        thread::yield_now(); // let other threads race this call
                    }
                    if let Some(generation) = probe {
                        *probes.lock().unwrap().get_mut(&generation).unwrap() -= 1;
                    }
                    let counter = match (guard.record(outcome), outcome) {
                        (ReportStatus::Stale, _) => &tally.stale,
                        (ReportStatus::Recorded, Outcome::Ignored) => &tally.ignored,
                        (ReportStatus::Recorded, _) => &tally.recorded,
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }

    let t = |c: &AtomicU64| c.load(Ordering::Relaxed);
    assert_eq!(t(&tally.attempts), THREADS * CALLS_PER_THREAD);
    assert_eq!(
        t(&tally.attempts),
        t(&tally.rejected) + t(&tally.admitted),
        "each attempt admitted or rejected"
    );
    assert_eq!(
        t(&tally.admitted),
        t(&tally.recorded) + t(&tally.ignored) + t(&tally.stale),
        "each admission reported exactly once"
    );
    assert!(
        t(&worst) <= MAX_PROBES as u64,
        "{} probes in flight at once",
        t(&worst)
    );

    let m = breaker.metrics();
    assert_eq!(m.counts.calls, t(&tally.admitted));
    assert_eq!(m.counts.rejected, t(&tally.rejected));
    assert_eq!(m.counts.successes + m.counts.failures, t(&tally.recorded));
    assert_eq!(m.counts.ignored, t(&tally.ignored));
    assert_eq!(m.counts.stale, t(&tally.stale));
    assert!(matches!(
        m.state,
        State::Closed | State::Open | State::HalfOpen
    ));
    assert_eq!(m.probes_in_flight, 0, "every probe was reported");
    // Whatever the interleaving, even one thread after another, each
    // thread's own failure bursts (2,000 attempts, 80 % failures) trip the
    // breaker and each trip stays open 200 attempts: at least 10
    // transitions and some rejections, counted in attempts, not in time.
    // (The short run under Miri has no failure burst.)
    if !cfg!(miri) {
        assert!(
            m.generation >= 10,
            "the run crossed many transitions: {}",
            m.generation
        );
        assert!(t(&tally.rejected) > 0, "rejections happened");
    }
    println!(
        "stress: {} attempts, {} rejected, {} recorded, {} ignored, {} stale, {} transitions, worst probes {}",
        t(&tally.attempts),
        t(&tally.rejected),
        t(&tally.recorded),
        t(&tally.ignored),
        t(&tally.stale),
        m.generation,
        t(&worst)
    );
}
