//! How transitions reach listeners: a slow listener holds back no other
//! thread until its backlog is long, and a listener that makes more
//! transitions than the queue holds loses the oldest, counted.
#![cfg(not(loom))]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration as StdDuration;

use breakerbox_std::{Config, ConsecutiveFailures, SharedManualClock, StdBreaker};

/// The adapter's backlog: a thread that makes a transition while another
/// delivers waits for the listeners only once more than this many wait.
const BACKLOG: u64 = 16;
/// The transitions the queue holds.
const ROOM: u64 = 64;

#[test]
fn a_slow_listener_holds_back_no_other_thread_while_its_backlog_is_short() {
    let (release, released) = mpsc::channel::<()>();
    let released = Mutex::new(released);
    let (entered_tx, entered) = mpsc::channel::<()>();
    let entered_tx = Mutex::new(entered_tx);
    let stall = Arc::new(AtomicBool::new(true));
    let heard = Arc::new(AtomicU64::new(0));
    let timed_out = Arc::new(AtomicBool::new(false));
    let (s, h, t) = (stall.clone(), heard.clone(), timed_out.clone());
    let breaker = StdBreaker::builder(Config::DEFAULT, ConsecutiveFailures::new(1).unwrap())
        .clock(SharedManualClock::new())
        .on_transition(move |_| {
            h.fetch_add(1, Ordering::SeqCst);
            if s.swap(false, Ordering::SeqCst) {
                entered_tx.lock().unwrap().send(()).unwrap();
                // Stalls until the test lets it go: the other thread's
                // transitions must not wait for it. (The timeout only ends a
                // run in which they did.)
                let answer = released
                    .lock()
                    .unwrap()
                    .recv_timeout(StdDuration::from_secs(60));
                t.store(answer.is_err(), Ordering::SeqCst);
            }
        })
        .build();
    let delivering = {
        let b = breaker.clone();
        thread::spawn(move || b.force_open())
    };
    entered.recv().unwrap();
    // Exactly the backlog: queued behind the stalled listener, none waits.
    for _ in 0..BACKLOG / 2 {
        breaker.release();
        breaker.force_open();
    }
    release.send(()).unwrap();
    delivering.join().unwrap();
    assert!(
        !timed_out.load(Ordering::SeqCst),
        "a transition of this thread waited for the stalled listener"
    );
    assert_eq!(heard.load(Ordering::SeqCst), 1 + BACKLOG, "every one heard");
    assert_eq!(breaker.dropped_transitions(), 0);
}

#[test]
fn transitions_beyond_the_queue_made_by_a_listener_are_dropped_and_counted() {
    let burst = Arc::new(AtomicBool::new(true));
    let heard = Arc::new(AtomicU64::new(0));
    let (b, h) = (burst.clone(), heard.clone());
    let own: Arc<Mutex<Option<StdBreaker<ConsecutiveFailures, SharedManualClock>>>> =
        Arc::new(Mutex::new(None));
    let inner = own.clone();
    let breaker = StdBreaker::builder(Config::DEFAULT, ConsecutiveFailures::new(1).unwrap())
        .clock(SharedManualClock::new())
        .on_transition(move |_| {
            h.fetch_add(1, Ordering::SeqCst);
            if b.swap(false, Ordering::SeqCst) {
                // A listener that makes transitions itself: they queue
                // behind the one it is hearing, on this thread.
                let me = inner.lock().unwrap().clone().unwrap();
                for _ in 0..(ROOM + 16) / 2 {
                    me.release();
                    me.force_open();
                }
            }
        })
        .build();
    *own.lock().unwrap() = Some(breaker.clone());
    breaker.force_open();
    assert_eq!(
        breaker.dropped_transitions(),
        16,
        "the oldest beyond the room"
    );
    assert_eq!(
        heard.load(Ordering::SeqCst),
        1 + ROOM,
        "the rest heard, in order"
    );
    own.lock().unwrap().take(); // the listener's handle, or the breaker lives on
}
