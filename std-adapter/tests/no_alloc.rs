//! No heap allocation per call after construction, proven with a counting
//! global allocator (the only test in this binary, so nothing else counts).
#![cfg(not(loom))]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use breakerbox_std::{
    Config, ConsecutiveFailures, CountWindow, Duration, Outcome, Ratio, SharedManualClock, State,
    StdBreaker, Thresholds,
};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// One round of every path: closed successes (lock-free), failures that trip,
/// rejections (lock-free), half-open probes, closing, manual states, and a
/// window policy's locked record.
fn exercise<P: breakerbox_std::TripPolicy>(
    b: &StdBreaker<P, SharedManualClock>,
    clock: &SharedManualClock,
) {
    for _ in 0..if cfg!(miri) { 20 } else { 1_000 } {
        assert_eq!(b.call(|| Ok::<_, ()>(1)), Ok(1));
    }
    while b.state() == State::Closed {
        let _ = b.call(|| Err::<(), _>(()));
    }
    for _ in 0..100 {
        assert!(b.call(|| Ok::<_, ()>(())).is_err());
    }
    clock.advance(Duration::from_secs(5));
    let probe = b.try_acquire().unwrap();
    assert!(b.try_acquire().is_err());
    probe.record(Outcome::Success);
    assert_eq!(b.state(), State::Closed);
    b.force_open();
    b.release();
    let _ = b.metrics();
}

#[test]
fn no_allocation_per_call_after_construction() {
    let transitions = Arc::new(AtomicU64::new(0));
    let heard = transitions.clone();
    let clock = SharedManualClock::new();
    let consecutive = StdBreaker::builder(Config::DEFAULT, ConsecutiveFailures::new(3).unwrap())
        .clock(clock.clone())
        .on_transition(move |_| {
            heard.fetch_add(1, Ordering::Relaxed);
        })
        .on_rejection(|_| {})
        .build();
    let window = CountWindow::<100>::new(
        Thresholds::new()
            .failure_rate(Ratio::percent(50))
            .minimum_calls(10),
    )
    .unwrap();
    let windowed = StdBreaker::builder(Config::DEFAULT, window)
        .clock(clock.clone())
        .build();

    // Warm up: first uses may set up lazily (thread-locals of the test harness).
    exercise(&consecutive, &clock);
    exercise(&windowed, &clock);

    let before = ALLOCATIONS.load(Ordering::SeqCst);
    for _ in 0..10 {
        exercise(&consecutive, &clock);
        exercise(&windowed, &clock);
    }
    let allocations = ALLOCATIONS.load(Ordering::SeqCst) - before;
    assert_eq!(allocations, 0, "allocations during 22,000+ calls");
    assert!(
        transitions.load(Ordering::Relaxed) > 40,
        "listeners ran all along"
    );
}
