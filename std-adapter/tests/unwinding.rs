//! Transitions made while a thread unwinds (a panicking operation counts as
//! a failure), alone in this binary: it silences the panics it makes.
#![cfg(not(loom))]

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;

use breakerbox_std::{Config, ConsecutiveFailures, SharedManualClock, StdBreaker};

const ROUNDS: usize = if cfg!(miri) { 10 } else { 300 };

#[test]
fn listeners_never_run_concurrently_even_when_drained_during_unwinding() {
    // Silence the panics this test makes on purpose, and only those.
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if info.payload().downcast_ref::<&str>() != Some(&"the operation panicked") {
            report(info);
        }
    }));
    let inside = Arc::new(AtomicBool::new(false));
    let overlaps = Arc::new(AtomicU64::new(0));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (i, o, s) = (inside.clone(), overlaps.clone(), seen.clone());
    let breaker = StdBreaker::builder(Config::DEFAULT, ConsecutiveFailures::new(1).unwrap())
        .clock(SharedManualClock::new())
        .on_transition(move |t| {
            if i.swap(true, Ordering::SeqCst) {
                o.fetch_add(1, Ordering::SeqCst);
            }
            s.lock().unwrap().push(t.transition.generation);
            thread::yield_now(); // let another drainer in, if one can get in
            i.store(false, Ordering::SeqCst);
        })
        .build();
    let barrier = Arc::new(Barrier::new(4));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (b, barrier) = (breaker.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                for _ in 0..ROUNDS {
                    // The failure is recorded, and the breaker trips, while
                    // this thread unwinds: it may drain the listeners then.
                    // (Another thread may have tripped it first: rejected.)
                    let _ = catch_unwind(AssertUnwindSafe(|| {
                        b.call(|| -> Result<(), ()> { panic!("the operation panicked") })
                    }));
                    b.reset();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(overlaps.load(Ordering::SeqCst), 0, "listeners ran at once");
    assert!(
        breaker.metrics().generation >= 4 * ROUNDS as u64,
        "every reset is a transition"
    );
    let seen = seen.lock().unwrap();
    assert!(
        seen.windows(2).all(|w| w[1] == w[0] + 1),
        "every transition, in order"
    );
    assert_eq!(*seen.last().unwrap(), breaker.metrics().generation);
}
