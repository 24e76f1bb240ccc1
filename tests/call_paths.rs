//! `call` takes inline fast paths (closed, open) that `try_acquire` and
//! `record` do not: for any sequence of calls, clock moves and manual
//! controls, a breaker driven through `call_classified` must end every step
//! exactly where a twin driven through `try_acquire` + `record` ends, for
//! the core `Breaker`, `SharedBreaker` and `StdBreaker` alike.

use breakerbox::{
    Breaker, CallError, Config, ConsecutiveFailures, CountWindow, Duration, ManualClock, Metrics,
    Outcome, Ratio, SharedBreaker, SharedManualClock, StdBreaker, Thresholds, TimeWindow,
    TripPolicy,
};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Step {
    Call(Outcome),
    Advance(u64),
    ForceOpen,
    Release,
    Reset,
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    let outcome = prop_oneof![
        6 => Just(Outcome::Success),
        3 => Just(Outcome::Failure),
        1 => Just(Outcome::Ignored),
    ];
    let step = prop_oneof![
        12 => outcome.prop_map(Step::Call),
        4 => (0u64..3_000_000).prop_map(Step::Advance),
        1 => Just(Step::ForceOpen),
        1 => Just(Step::Release),
        1 => Just(Step::Reset),
    ];
    prop::collection::vec(step, 1..150)
}

fn config(slow: bool) -> Config {
    let mut b = Config::builder()
        .open_duration(core::time::Duration::from_secs(1))
        .successes_to_close(2);
    if slow {
        b = b.slow_call_threshold(core::time::Duration::from_millis(1));
    }
    b.build().unwrap()
}

/// What both paths are asked to do, on some breaker.
trait Subject {
    fn call(&mut self, outcome: Outcome) -> bool;
    fn acquire_and_record(&mut self, outcome: Outcome) -> bool;
    fn advance(&mut self, micros: u64);
    fn force_open(&mut self);
    fn release(&mut self);
    fn reset(&mut self);
    fn metrics(&self) -> Metrics;
}

/// The classified call every subject makes: admitted when `Ok`.
fn admitted<E>(r: Result<(), CallError<E>>) -> bool {
    !matches!(r, Err(CallError::Rejected(_)))
}

struct Core<P>(Breaker<P, &'static ManualClock>);
struct Shared<P>(SharedBreaker<P, SharedManualClock>);
struct Std<P>(StdBreaker<P, SharedManualClock>);

/// The three breakers answer alike but for how a permit is taken and
/// reported: `$report` turns `self.0` and the outcome into "admitted".
macro_rules! subject {
    ($subject:ident, |$breaker:ident, $outcome:ident| $report:expr) => {
        impl<P: TripPolicy> Subject for $subject<P> {
            fn call(&mut self, outcome: Outcome) -> bool {
                admitted(self.0.call_classified(|| Ok::<(), ()>(()), |_| outcome))
            }
            fn acquire_and_record(&mut self, $outcome: Outcome) -> bool {
                let $breaker = &mut self.0;
                $report
            }
            fn advance(&mut self, micros: u64) {
                self.0.clock().advance(Duration::from_micros(micros));
            }
            fn force_open(&mut self) {
                let _ = self.0.force_open();
            }
            fn release(&mut self) {
                let _ = self.0.release();
            }
            fn reset(&mut self) {
                let _ = self.0.reset();
            }
            fn metrics(&self) -> Metrics {
                self.0.metrics()
            }
        }
    };
}

subject!(Core, |b, outcome| match b.try_acquire().result {
    Ok(permit) => {
        let _ = b.record(permit, outcome);
        true
    }
    Err(_) => false,
});
subject!(Shared, |b, outcome| match b.try_acquire().result {
    Ok(permit) => {
        let _ = b.record(permit, outcome);
        true
    }
    Err(_) => false,
});
subject!(Std, |b, outcome| match b.try_acquire() {
    Ok(guard) => {
        let _ = guard.record(outcome);
        true
    }
    Err(_) => false,
});

fn run(mut by_call: impl Subject, mut by_permit: impl Subject, steps: &[Step]) {
    for (i, step) in steps.iter().enumerate() {
        match step {
            Step::Call(outcome) => {
                let a = by_call.call(*outcome);
                let b = by_permit.acquire_and_record(*outcome);
                assert_eq!(a, b, "step {i} ({step:?}): admitted");
            }
            Step::Advance(micros) => {
                by_call.advance(*micros);
                by_permit.advance(*micros);
            }
            Step::ForceOpen => {
                by_call.force_open();
                by_permit.force_open();
            }
            Step::Release => {
                by_call.release();
                by_permit.release();
            }
            Step::Reset => {
                by_call.reset();
                by_permit.reset();
            }
        }
        assert_eq!(
            by_call.metrics(),
            by_permit.metrics(),
            "step {i} ({step:?})"
        );
    }
}

fn leaked_clock() -> &'static ManualClock {
    Box::leak(Box::new(ManualClock::new()))
}

fn rate() -> Thresholds {
    Thresholds::new().failure_rate(Ratio::percent(50))
}

/// The same test on each breaker and each policy.
macro_rules! both_paths {
    ($steps:expr, $slow:expr, $policy:expr) => {{
        let (config, steps) = (config($slow), &$steps);
        run(
            Core(Breaker::new(config, $policy, leaked_clock())),
            Core(Breaker::new(config, $policy, leaked_clock())),
            steps,
        );
        run(
            Shared(SharedBreaker::new(
                config,
                $policy,
                SharedManualClock::new(),
            )),
            Shared(SharedBreaker::new(
                config,
                $policy,
                SharedManualClock::new(),
            )),
            steps,
        );
        let std = |policy| {
            StdBreaker::builder(config, policy)
                .clock(SharedManualClock::new())
                .build()
        };
        run(Std(std($policy)), Std(std($policy)), steps);
    }};
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn call_and_permits_agree(steps in steps(), slow in any::<bool>()) {
        both_paths!(steps, slow, ConsecutiveFailures::new(3).unwrap());
        both_paths!(steps, slow, CountWindow::<4>::new(rate()).unwrap());
        let time = || {
            TimeWindow::<4>::new(core::time::Duration::from_millis(500), rate().minimum_calls(3))
                .unwrap()
        };
        both_paths!(steps, slow, time());
        both_paths!(
            steps,
            slow,
            (ConsecutiveFailures::new(2).unwrap(), CountWindow::<3>::new(rate()).unwrap())
        );
    }
}

#[test]
fn a_full_window_of_successes_counts_every_call_through_the_fast_path() {
    let clock = leaked_clock();
    let mut b: Breaker<_, _> =
        Breaker::new(config(false), CountWindow::<4>::new(rate()).unwrap(), clock);
    for _ in 0..10 {
        assert!(b.call(|| Ok::<_, ()>(())).is_ok());
    }
    assert!(b.policy().success_is_noop());
    let m = b.metrics();
    assert_eq!((m.counts.calls, m.counts.successes), (10, 10));
    let _ = b.reset();
    assert_eq!(
        b.metrics().counts.calls,
        0,
        "reset forgets the inline successes too"
    );
}
