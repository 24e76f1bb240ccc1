//! Property tests: after any sequence of outcomes and clock moves, each
//! window's totals equal a naive recount of the events still inside it.

use breakerbox::{
    CallRecord, CountWindow, Instant, Ratio, Thresholds, TimeWindow, TripPolicy, WindowCounts,
};
use proptest::prelude::*;

/// An event: an outcome at a time step, or a reset.
#[derive(Clone, Debug)]
enum Event {
    Record {
        failed: bool,
        slow: bool,
        step_ms: i64,
    },
    Reset {
        step_ms: i64,
    },
}

fn events() -> impl Strategy<Value = Vec<Event>> {
    let step = prop_oneof![
        6 => 0i64..50,            // forwards, within a bucket or two
        2 => 0i64..2_000,         // forwards, across many buckets
        1 => -300i64..0,          // backwards
        1 => Just(i64::MAX / 2),  // a huge jump
    ];
    let event = prop_oneof![
        20 => (any::<bool>(), any::<bool>(), step.clone())
            .prop_map(|(failed, slow, step_ms)| Event::Record { failed, slow, step_ms }),
        1 => step.prop_map(|step_ms| Event::Reset { step_ms }),
    ];
    prop::collection::vec(event, 0..300)
}

fn advance(now_us: u64, step_ms: i64) -> u64 {
    let step_us = step_ms.saturating_mul(1_000);
    if step_us >= 0 {
        now_us.saturating_add(step_us as u64)
    } else {
        now_us.saturating_sub(step_us.unsigned_abs())
    }
}

fn totals(events: &[(bool, bool)]) -> (u32, u32, u32) {
    let failures = events.iter().filter(|e| e.0).count() as u32;
    let slow = events.iter().filter(|e| e.1).count() as u32;
    (events.len() as u32, failures, slow)
}

fn triple(w: WindowCounts) -> (u32, u32, u32) {
    (w.calls, w.failures, w.slow)
}

const N: usize = 16;
const B: usize = 5;
const BUCKET_MS: u64 = 100;

fn thresholds() -> Thresholds {
    // High enough never to matter; the test is about the counts.
    Thresholds::new()
        .failure_count(u32::MAX)
        .failure_rate(Ratio::percent(100))
        .minimum_calls(1)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn count_window_matches_a_recount(events in events()) {
        let mut window = CountWindow::<N>::new(thresholds()).unwrap();
        let mut model: Vec<(bool, bool)> = Vec::new();
        for event in events {
            match event {
                Event::Record { failed, slow, .. } => {
                    window.record(CallRecord { failed, slow, at: Instant::ZERO });
                    model.push((failed, slow));
                }
                Event::Reset { .. } => {
                    window.reset(Instant::ZERO);
                    model.clear();
                }
            }
            let start = model.len().saturating_sub(N);
            prop_assert_eq!(triple(window.counts()), totals(&model[start..]));
        }
    }

    #[test]
    fn time_window_matches_a_recount(events in events(), query_ms in prop::collection::vec(0u64..1_500, 3)) {
        let mut window = TimeWindow::<B>::new(core::time::Duration::from_millis(BUCKET_MS), thresholds()).unwrap();
        let bucket_us = BUCKET_MS * 1_000;
        // The model: every event with the bucket it landed in. A backwards
        // clock lands in the newest bucket so far; a reset drops everything.
        let mut model: Vec<(u64, bool, bool)> = Vec::new();
        let mut newest = 0u64;
        let mut now_us = 0u64;
        for event in events {
            match event {
                Event::Record { failed, slow, step_ms } => {
                    now_us = advance(now_us, step_ms);
                    let at = Instant::from_micros(now_us);
                    window.record(CallRecord { failed, slow, at });
                    newest = newest.max(now_us / bucket_us);
                    model.push((newest, failed, slow));
                }
                Event::Reset { step_ms } => {
                    now_us = advance(now_us, step_ms);
                    window.reset(Instant::from_micros(now_us));
                    newest = newest.max(now_us / bucket_us);
                    model.clear();
                }
            }
            // As of now (the totals kept on each record) and a little later
            // (a recount of the buckets), the window holds the model's events
            // of the last B buckets.
            let later = query_ms.iter().map(|ms| now_us.saturating_add(ms * 1_000));
            for at_us in core::iter::once(now_us).chain(later) {
                let head = newest.max(at_us / bucket_us);
                let live: Vec<(bool, bool)> = model
                    .iter()
                    .filter(|(bucket, _, _)| head - bucket < B as u64)
                    .map(|&(_, failed, slow)| (failed, slow))
                    .collect();
                prop_assert_eq!(
                    triple(window.counts(Instant::from_micros(at_us))),
                    totals(&live),
                    "at {} us", at_us
                );
            }
        }
    }
}
