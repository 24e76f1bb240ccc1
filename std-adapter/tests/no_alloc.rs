//! No heap allocation per call after construction, proven with a counting
//! global allocator. It counts only the threads that take part (the test
//! harness's own thread allocates now and then while it waits), and this
//! is the only test in the binary.
#![cfg(not(loom))]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use breakerbox_std::{
    AnyPolicy, Config, ConsecutiveFailures, CountWindow, Duration, Outcome, Ratio, Registry,
    SharedManualClock, State, StdBreaker, Thresholds,
};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    // No destructor: readable from the allocator at any time.
    static TAKES_PART: Cell<bool> = const { Cell::new(false) };
}

/// Counts this thread's allocations from now on.
fn take_part() {
    TAKES_PART.with(|t| t.set(true));
}

fn count() {
    if TAKES_PART.try_with(Cell::get).unwrap_or(false) {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
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
    take_part();
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
    // A registry of boxed policies, its breakers looked up on every call.
    let c = clock.clone();
    let registry = Registry::new(move |name| {
        StdBreaker::builder(Config::DEFAULT, ConsecutiveFailures::new(3).unwrap())
            .boxed()
            .clock(c.clone())
            .name(name)
            .on_transition(|_| {})
            .build()
    });
    let looked_up = |registry: &Registry<String, AnyPolicy, SharedManualClock>| {
        for _ in 0..if cfg!(miri) { 20 } else { 1_000 } {
            assert_eq!(registry.get("db").call(|| Ok::<_, ()>(1)), Ok(1));
            assert_eq!(registry.with("db", |db| db.call(|| Ok::<_, ()>(2))), Ok(2));
        }
        exercise(&registry.get("db"), &clock);
    };

    // Warm up: first uses may set up lazily (thread-locals of the test harness).
    exercise(&consecutive, &clock);
    exercise(&windowed, &clock);
    looked_up(&registry);

    let before = ALLOCATIONS.load(Ordering::SeqCst);
    for _ in 0..10 {
        exercise(&consecutive, &clock);
        exercise(&windowed, &clock);
        looked_up(&registry);
    }
    let allocations = ALLOCATIONS.load(Ordering::SeqCst) - before;
    assert_eq!(allocations, 0, "allocations during 53,000+ calls");
    assert!(
        transitions.load(Ordering::Relaxed) > 40,
        "listeners ran all along"
    );

    // In the same test, as nothing else may allocate meanwhile.
    a_burst_of_transitions_behind_a_slow_listener_allocates_nothing();
    a_breaker_nobody_listens_to_allocates_nothing_for_its_transitions();
}

/// With no listener (and no log, tracing or metrics feature), a transition
/// has nobody to be delivered to: no queue is made, from the first on.
fn a_breaker_nobody_listens_to_allocates_nothing_for_its_transitions() {
    let breaker = StdBreaker::builder(Config::DEFAULT, ConsecutiveFailures::new(3).unwrap())
        .clock(SharedManualClock::new())
        .build();
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    for _ in 0..10 {
        breaker.force_open();
        breaker.release();
    }
    let allocations = ALLOCATIONS.load(Ordering::SeqCst) - before;
    if cfg!(not(any(
        feature = "log",
        feature = "tracing",
        feature = "metrics"
    ))) {
        assert_eq!(
            allocations, 0,
            "allocations for 20 transitions nobody hears"
        );
    }
    assert_eq!(breaker.metrics().generation, 20);
}

/// One thread's listener stalls while another thread makes 200
/// transitions: they wait in a queue whose room was reserved, and the
/// thread making them waits for the listener rather than grow it.
fn a_burst_of_transitions_behind_a_slow_listener_allocates_nothing() {
    let stall = Arc::new(AtomicBool::new(false));
    let stalled = Arc::new(AtomicBool::new(false));
    let made = Arc::new(AtomicU64::new(0));
    let heard = Arc::new(AtomicU64::new(0));
    let (s, entered, m, h) = (stall.clone(), stalled.clone(), made.clone(), heard.clone());
    let breaker = StdBreaker::builder(Config::DEFAULT, ConsecutiveFailures::new(3).unwrap())
        .clock(SharedManualClock::new())
        .on_transition(move |_| {
            h.fetch_add(1, Ordering::SeqCst);
            if s.swap(false, Ordering::SeqCst) {
                entered.store(true, Ordering::SeqCst);
                // A listener far slower than the breaker: it stalls until
                // every transition is made, or 200 ms (the breaker makes the
                // thread wait once 16 are queued).
                let stalled_at = std::time::Instant::now();
                while m.load(Ordering::SeqCst) < 100
                    && stalled_at.elapsed() < std::time::Duration::from_millis(200)
                {
                    std::thread::yield_now();
                }
            }
        })
        .build();
    breaker.force_open();
    breaker.release(); // the queue is made at the first transition
    stall.store(true, Ordering::SeqCst);
    let slow = {
        let b = breaker.clone();
        std::thread::spawn(move || {
            take_part();
            b.force_open()
        })
    };
    while !stalled.load(Ordering::SeqCst) {
        std::thread::yield_now();
    }
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    for _ in 0..100 {
        made.fetch_add(1, Ordering::SeqCst);
        breaker.release();
        breaker.force_open();
    }
    let allocations = ALLOCATIONS.load(Ordering::SeqCst) - before;
    slow.join().unwrap();
    assert_eq!(
        allocations, 0,
        "allocations during a burst of 200 transitions"
    );
    assert_eq!(heard.load(Ordering::SeqCst), 2 + 1 + 200, "every one heard");
    assert_eq!(breaker.dropped_transitions(), 0);
}
