//! Model-based property tests: random configurations (every policy) and
//! random sequences of acquires, reports (success, failure, ignored, slow
//! through the clock), lost permits, clock moves (forward, zero, backwards,
//! to the end of time), manual states and resets, driven against `Breaker`,
//! `SharedBreaker` and the std adapter's `StdBreaker`, and compared with the
//! reference model after every step. Named invariants are checked on every
//! step too.
//!
//! `PROPTEST_CASES=10000 cargo test --test model_check --release` for a
//! longer run.

mod model;

use std::sync::{Arc, Mutex};

use breakerbox::{
    Breaker, Config, ConsecutiveFailures, CountWindow, Duration, HalfOpenVerdict, Instant, Jitter,
    Metrics, Outcome, Permit, Ratio, ReadyToTrip, Rejected, ReportStatus, RunCounts, SharedBreaker,
    SharedManualClock, State, StdBreaker, Thresholds, TimeWindow, Transition, TransitionReason,
    TripPolicy,
};
use model::{Admit, Backoff, Change, Model, ModelPermit, Phase, Policy, Rules, Settings};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

/// Cases per property: 2048 by default (each runs up to 120 steps on three
/// breakers); `PROPTEST_CASES` overrides it.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2048)
}

// ---------------------------------------------------------------- subjects

/// One breaker under test, driven at explicit times.
trait Subject {
    type Ticket;
    /// Dropping a ticket reports it as ignored (the std adapter's guard).
    const DROP_IS_IGNORED: bool;
    fn acquire(&mut self, now: u64) -> (Result<Self::Ticket, Rejected>, Vec<Transition>);
    fn ticket_state(ticket: &Self::Ticket) -> State;
    fn report(
        &mut self,
        ticket: Self::Ticket,
        outcome: Outcome,
        now: u64,
    ) -> (ReportStatus, Vec<Transition>);
    fn lose(&mut self, ticket: Self::Ticket, now: u64) -> Vec<Transition>;
    fn manual(&mut self, to: State, now: u64) -> Vec<Transition>;
    fn reset(&mut self, now: u64) -> Vec<Transition>;
    fn metrics(&mut self, now: u64) -> Metrics;
}

fn at(now: u64) -> Instant {
    Instant::from_micros(now)
}

/// What `Breaker` and `SharedBreaker` answer alike: their `*_at` forms take
/// and give the same values.
macro_rules! core_subject {
    () => {
        type Ticket = Permit;
        const DROP_IS_IGNORED: bool = false;
        fn acquire(&mut self, now: u64) -> (Result<Permit, Rejected>, Vec<Transition>) {
            let a = self.try_acquire_at(at(now));
            (a.result, a.transition.into_iter().collect())
        }
        fn ticket_state(ticket: &Permit) -> State {
            ticket.state()
        }
        fn report(
            &mut self,
            ticket: Permit,
            outcome: Outcome,
            now: u64,
        ) -> (ReportStatus, Vec<Transition>) {
            let r = self.record_at(ticket, outcome, at(now));
            (r.status, r.transition.into_iter().collect())
        }
        fn lose(&mut self, ticket: Permit, _now: u64) -> Vec<Transition> {
            drop(ticket);
            Vec::new()
        }
    };
}

impl<P: TripPolicy> Subject for Breaker<P, (), 4> {
    core_subject!();
    fn manual(&mut self, to: State, now: u64) -> Vec<Transition> {
        let t = match to {
            State::ForcedOpen => self.force_open_at(at(now)),
            State::Disabled => self.disable_at(at(now)),
            State::MetricsOnly => self.metrics_only_at(at(now)),
            _ => self.release_at(at(now)),
        };
        t.into_iter().collect()
    }
    fn reset(&mut self, now: u64) -> Vec<Transition> {
        vec![self.reset_at(at(now))]
    }
    fn metrics(&mut self, now: u64) -> Metrics {
        self.metrics_at(at(now))
    }
}

impl<P: TripPolicy> Subject for SharedBreaker<P, (), 4> {
    core_subject!();
    fn manual(&mut self, to: State, now: u64) -> Vec<Transition> {
        let t = self.with_breaker(|b| match to {
            State::ForcedOpen => b.force_open_at(at(now)),
            State::Disabled => b.disable_at(at(now)),
            State::MetricsOnly => b.metrics_only_at(at(now)),
            _ => b.release_at(at(now)),
        });
        t.flatten().into_iter().collect()
    }
    fn reset(&mut self, now: u64) -> Vec<Transition> {
        self.with_breaker(|b| b.reset_at(at(now)))
            .into_iter()
            .collect()
    }
    fn metrics(&mut self, now: u64) -> Metrics {
        self.metrics_at(at(now))
    }
}

/// The std adapter, on a shared manual clock, with transitions collected
/// by a listener.
struct StdSubject<'a, P: TripPolicy> {
    breaker: &'a StdBreaker<P, SharedManualClock>,
    clock: SharedManualClock,
    heard: Arc<Mutex<Vec<Transition>>>,
}

impl<P: TripPolicy> StdSubject<'_, P> {
    fn heard(&self) -> Vec<Transition> {
        std::mem::take(&mut *self.heard.lock().unwrap())
    }
}

impl<'a, P: TripPolicy> Subject for StdSubject<'a, P> {
    type Ticket = breakerbox::Guard<'a, P, SharedManualClock, 4>;
    const DROP_IS_IGNORED: bool = true;
    fn acquire(&mut self, now: u64) -> (Result<Self::Ticket, Rejected>, Vec<Transition>) {
        self.clock.set(at(now));
        let r = self.breaker.try_acquire();
        (r, self.heard())
    }
    fn ticket_state(ticket: &Self::Ticket) -> State {
        ticket.permit().unwrap().state()
    }
    fn report(
        &mut self,
        ticket: Self::Ticket,
        outcome: Outcome,
        now: u64,
    ) -> (ReportStatus, Vec<Transition>) {
        self.clock.set(at(now));
        let status = ticket.record(outcome);
        (status, self.heard())
    }
    fn lose(&mut self, ticket: Self::Ticket, now: u64) -> Vec<Transition> {
        self.clock.set(at(now));
        drop(ticket);
        self.heard()
    }
    fn manual(&mut self, to: State, now: u64) -> Vec<Transition> {
        self.clock.set(at(now));
        let _ = match to {
            State::ForcedOpen => self.breaker.force_open(),
            State::Disabled => self.breaker.disable(),
            State::MetricsOnly => self.breaker.metrics_only(),
            _ => self.breaker.release(),
        };
        self.heard()
    }
    fn reset(&mut self, now: u64) -> Vec<Transition> {
        self.clock.set(at(now));
        let _ = self.breaker.reset();
        self.heard()
    }
    fn metrics(&mut self, now: u64) -> Metrics {
        self.clock.set(at(now));
        self.breaker.metrics()
    }
}

// ---------------------------------------------------------- configurations

#[derive(Clone, Debug)]
struct Setup {
    initial: u64,
    max_factor: u64,
    multiplier: (u32, u32),
    exponential: bool,
    jitter: u8,
    seed: u64,
    max_probes: u32,
    successes_to_close: u32,
    lease: u64,
    slow: Option<u64>,
    rate_verdict: Option<(u32, Option<u32>)>,
    policy: PolicySetup,
}

#[derive(Clone, Copy, Debug)]
enum PolicySetup {
    Consecutive(u32),
    /// failure %, slow %, failure count, minimum calls (window of 8).
    Count(Option<u32>, Option<u32>, Option<u32>, u32),
    /// The same, over 4 buckets of the given length.
    Time(Option<u32>, Option<u32>, Option<u32>, u32, u64),
    /// Consecutive failures or a count window, whichever trips first.
    Either(u32, Option<u32>, Option<u32>, u32),
    /// `ReadyToTrip` with a function of the run's counts.
    ReadyToTrip,
}

/// The decision given to `ReadyToTrip` (the model's `half_failed`).
fn half_failed(counts: &RunCounts) -> bool {
    model::half_failed(counts.calls as u64, counts.failures as u64)
}

fn thresholds(fr: Option<u32>, sr: Option<u32>, fc: Option<u32>, min: u32) -> (Thresholds, Rules) {
    let mut t = Thresholds::new().minimum_calls(min);
    if let Some(p) = fr {
        t = t.failure_rate(Ratio::percent(p));
    }
    if let Some(p) = sr {
        t = t.slow_rate(Ratio::percent(p));
    }
    if let Some(c) = fc {
        t = t.failure_count(c);
    }
    let rules = Rules {
        failure_rate: fr.map(|p| (p as u64, 100)),
        slow_rate: sr.map(|p| (p as u64, 100)),
        failure_count: fc.map(u64::from),
        minimum_calls: min as u64,
    };
    (t, rules)
}

fn setups() -> impl Strategy<Value = Setup> {
    let rate = prop::option::of(1u32..=100);
    let count = prop::option::of(1u32..=6);
    let policy = prop_oneof![
        (1u32..=5).prop_map(PolicySetup::Consecutive),
        (1u32..=5, rate.clone(), rate.clone(), 1u32..=8)
            .prop_map(|(t, a, b, m)| PolicySetup::Either(t, a, b, m)),
        Just(PolicySetup::ReadyToTrip),
        (rate.clone(), rate.clone(), count.clone(), 1u32..=8)
            .prop_map(|(a, b, c, m)| PolicySetup::Count(a, b, c, m)),
        (rate.clone(), rate, count, 1u32..=8, 1_000u64..=20_000)
            .prop_map(|(a, b, c, m, len)| PolicySetup::Time(a, b, c, m, len)),
    ]
    // A window needs at least one threshold.
    .prop_map(|p| match p {
        PolicySetup::Count(None, None, None, m) => PolicySetup::Count(Some(50), None, None, m),
        PolicySetup::Either(t, None, None, m) => PolicySetup::Either(t, Some(50), None, m),
        PolicySetup::Time(None, None, None, m, len) => {
            PolicySetup::Time(Some(50), None, None, m, len)
        }
        other => other,
    });
    (
        (
            1_000u64..=50_000,
            1u64..=8,
            (1u32..=4, 1u32..=3),
            any::<bool>(),
            0u8..=2,
            any::<u64>(),
        ),
        (
            1u32..=3,
            1u32..=3,
            1_000u64..=100_000,
            prop::option::of(1u64..=20_000),
        ),
        prop::option::of((1u32..=100, prop::option::of(1u32..=100))),
        policy,
    )
        .prop_map(
            |(
                (initial, max_factor, (num, den), exponential, jitter, seed),
                (mp, stc, lease, slow),
                rv,
                policy,
            )| {
                Setup {
                    initial,
                    max_factor,
                    multiplier: (num.max(den), den),
                    exponential,
                    jitter,
                    seed,
                    max_probes: mp,
                    successes_to_close: stc,
                    lease,
                    slow,
                    rate_verdict: rv,
                    policy,
                }
            },
        )
}

impl Setup {
    fn config(&self) -> Config {
        let d = core::time::Duration::from_micros;
        let mut b = Config::builder()
            .max_probes(self.max_probes)
            .successes_to_close(self.successes_to_close)
            .probe_lease(d(self.lease));
        b = if self.exponential {
            b.exponential_backoff(
                d(self.initial),
                d(self.initial * self.max_factor),
                self.multiplier.0,
                self.multiplier.1,
            )
        } else {
            b.open_duration(d(self.initial))
        };
        let jitter = [Jitter::None, Jitter::Full, Jitter::Equal][self.jitter as usize];
        b = b.jitter(jitter, self.seed);
        if let Some(s) = self.slow {
            b = b.slow_call_threshold(d(s));
        }
        if let Some((fr, sr)) = self.rate_verdict {
            b = b.half_open_verdict(HalfOpenVerdict::Rates {
                failure_rate: Ratio::percent(fr),
                slow_rate: sr.map(Ratio::percent),
            });
        }
        b.build().expect("a valid configuration")
    }

    fn model(&self, shared: bool) -> Model {
        let backoff = Backoff {
            initial: self.initial,
            max: if self.exponential {
                self.initial * self.max_factor
            } else {
                self.initial
            },
            multiplier: if self.exponential {
                (self.multiplier.0 as u64, self.multiplier.1 as u64)
            } else {
                (1, 1)
            },
            jitter: self.jitter,
        };
        let policy = match self.policy {
            PolicySetup::Consecutive(t) => Policy::Consecutive {
                threshold: t as u64,
                run: 0,
            },
            PolicySetup::Count(fr, sr, fc, min) => Policy::CountWindow {
                size: 8,
                rules: thresholds(fr, sr, fc, min).1,
                events: Vec::new(),
            },
            PolicySetup::Either(t, fr, sr, min) => Policy::Either(
                Box::new(Policy::Consecutive {
                    threshold: t as u64,
                    run: 0,
                }),
                Box::new(Policy::CountWindow {
                    size: 8,
                    rules: thresholds(fr, sr, None, min).1,
                    events: Vec::new(),
                }),
            ),
            PolicySetup::ReadyToTrip => Policy::Counts { events: Vec::new() },
            PolicySetup::Time(fr, sr, fc, min, len) => Policy::TimeWindow {
                buckets: 4,
                length: len,
                rules: thresholds(fr, sr, fc, min).1,
                newest: 0,
                events: Vec::new(),
            },
        };
        let rate_verdict = self
            .rate_verdict
            .map(|(fr, sr)| ((fr as u64, 100), sr.map(|p| (p as u64, 100))));
        let settings = Settings {
            backoff,
            max_probes: self.max_probes as u64,
            successes_to_close: self.successes_to_close as u64,
            lease: self.lease,
            slow_threshold: self.slow,
            rate_verdict,
        };
        Model::new(settings, policy, shared)
    }
}

// --------------------------------------------------------------- operations

#[derive(Clone, Debug)]
enum Op {
    Acquire,
    Report { index: usize, outcome: u8 },
    Lose { index: usize },
    Forward(u64),
    Back(u64),
    ToTheEndOfTime,
    Manual(State),
    Reset,
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    let op = prop_oneof![
        8 => Just(Op::Acquire),
        8 => (any::<usize>(), 0u8..3).prop_map(|(index, outcome)| Op::Report { index, outcome }),
        1 => any::<usize>().prop_map(|index| Op::Lose { index }),
        5 => (0u64..6_000).prop_map(Op::Forward),
        1 => (0u64..2_000_000).prop_map(Op::Forward),
        1 => (0u64..50_000).prop_map(Op::Back),
        1 => Just(Op::ToTheEndOfTime),
        1 => prop_oneof![
            Just(State::ForcedOpen),
            Just(State::Disabled),
            Just(State::MetricsOnly),
            Just(State::Closed)
        ]
        .prop_map(Op::Manual),
        1 => Just(Op::Reset),
    ];
    prop::collection::vec(op, 1..120)
}

// ------------------------------------------------------------------- runner

fn change(t: &Transition) -> Change {
    Change {
        from: t.from,
        to: t.to,
        reason: t.reason,
        generation: t.generation,
    }
}

macro_rules! invariant {
    ($name:literal, $ok:expr, $($fmt:tt)*) => {
        if !$ok {
            return Err(TestCaseError::fail(format!("invariant {} broken: {}", $name, format!($($fmt)*))));
        }
    };
}

fn compare_transitions(
    step: usize,
    op: &Op,
    got: &[Transition],
    want: Option<Change>,
) -> Result<(), TestCaseError> {
    let got: Vec<Change> = got.iter().map(change).collect();
    let want: Vec<Change> = want.into_iter().collect();
    prop_assert_eq!(got, want, "step {} ({:?}): transitions", step, op);
    Ok(())
}

fn run<S: Subject>(mut subject: S, mut model: Model, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut now: u64 = 0;
    let mut outstanding: Vec<(S::Ticket, ModelPermit)> = Vec::new();
    let mut transitions_seen: u64 = 0;
    let mut countable_reports: u64 = 0;
    let mut last_generation: u64 = 0;
    for (step, op) in ops.iter().enumerate() {
        let before = subject.metrics(now);
        let mut heard: Vec<Transition> = Vec::new();
        match op {
            Op::Acquire => {
                let was_open_until = match model.phase {
                    Phase::Open { until } => Some(until),
                    _ => None,
                };
                let (got, transitions) = subject.acquire(now);
                let (want, permit, want_change) = model.acquire(now);
                let got_admit = match &got {
                    Ok(t) => Admit::Admitted(S::ticket_state(t)),
                    Err(r) => Admit::Rejected(r.reason, r.retry_after.map(Duration::as_micros)),
                };
                match (model.pending_jitter, got_admit, want) {
                    // A lease ended and the breaker reopened with a jittered
                    // deadline: the rejection says when, within the bounds.
                    (
                        Some(_),
                        Admit::Rejected(got_reason, Some(wait)),
                        Admit::Rejected(want_reason, Some(_)),
                    ) => {
                        prop_assert_eq!(got_reason, want_reason, "step {}: rejection", step);
                        model
                            .adopt_deadline(now.saturating_add(wait))
                            .map_err(|e| {
                                TestCaseError::fail(format!(
                                    "invariant open durations stay within their bounds broken: {e}"
                                ))
                            })?;
                    }
                    _ => prop_assert_eq!(
                        got_admit,
                        want,
                        "step {} ({:?}) at {}: admission",
                        step,
                        op,
                        now
                    ),
                }
                compare_transitions(step, op, &transitions, want_change)?;
                invariant!(
                    "an acquire only opens a probe or ends a lease",
                    transitions.iter().all(|t| matches!(
                        t.reason,
                        TransitionReason::OpenElapsed | TransitionReason::ProbeLeaseExpired
                    )),
                    "step {step}: {transitions:?}"
                );
                if let Some(until) = was_open_until {
                    invariant!(
                        "open rejects everything before its deadline and admits at it",
                        (now < until) == got.is_err(),
                        "step {step}: now {now}, deadline {until}, got {got_admit:?}"
                    );
                }
                if let (Ok(ticket), Some(permit)) = (got, permit) {
                    outstanding.push((ticket, permit));
                }
                heard = transitions;
            }
            Op::Report { index, outcome } if !outstanding.is_empty() => {
                let (ticket, permit) = outstanding.remove(index % outstanding.len());
                let outcome_value =
                    [Outcome::Success, Outcome::Failure, Outcome::Ignored][*outcome as usize];
                let disabled = model.phase == Phase::Disabled;
                let (status, transitions) = subject.report(ticket, outcome_value, now);
                let (stale, want_change) = model.record(permit, *outcome, now);
                prop_assert_eq!(
                    status == ReportStatus::Stale,
                    stale,
                    "step {} ({:?}): stale",
                    step,
                    op
                );
                compare_transitions(step, op, &transitions, want_change)?;
                if !disabled || stale {
                    countable_reports += 1;
                }
                let after = subject.metrics(now);
                if stale && transitions.is_empty() {
                    invariant!(
                        "stale reports change nothing",
                        after.state == before.state
                            && after.generation == before.generation
                            && after.counts.successes == before.counts.successes
                            && after.counts.failures == before.counts.failures
                            && after.counts.stale == before.counts.stale + 1,
                        "step {step}: {before:?} -> {after:?}"
                    );
                }
                if *outcome == 2 && !stale {
                    invariant!(
                        "ignored outcomes change no rate",
                        after.failure_rate == before.failure_rate
                            && after.slow_rate == before.slow_rate,
                        "step {step}"
                    );
                }
                if matches!(
                    before.state,
                    State::ForcedOpen | State::Disabled | State::MetricsOnly
                ) {
                    invariant!(
                        "forced, disabled and metrics-only ignore thresholds",
                        transitions.is_empty(),
                        "step {step}: {transitions:?}"
                    );
                }
                if let Some(t) = transitions
                    .iter()
                    .find(|t| t.reason == TransitionReason::Tripped)
                {
                    // The window with this outcome in it (rate windows only: a
                    // consecutive-failures or user policy has its own rule).
                    let rate_window = matches!(
                        model.policy,
                        Policy::CountWindow { .. } | Policy::TimeWindow { .. }
                    );
                    if let Some((calls, failures, _, minimum)) =
                        model.window(now).filter(|_| rate_window)
                    {
                        let by_count = matches!(model.policy, Policy::CountWindow { rules, .. } | Policy::TimeWindow { rules, .. }
                            if rules.failure_count.is_some_and(|c| failures >= c));
                        invariant!(
                            "no trip below the minimum number of calls",
                            by_count || calls >= minimum,
                            "step {step}: {t:?} with {calls} calls, minimum {minimum}"
                        );
                    }
                }
                heard = transitions;
            }
            Op::Report { .. } => {}
            Op::Lose { index } if !outstanding.is_empty() => {
                let (ticket, permit) = outstanding.remove(index % outstanding.len());
                let transitions = subject.lose(ticket, now);
                let want_change = if S::DROP_IS_IGNORED {
                    let disabled = model.phase == Phase::Disabled;
                    let (stale, change) = model.record(permit, 2, now);
                    if !disabled || stale {
                        countable_reports += 1;
                    }
                    change
                } else {
                    None
                };
                compare_transitions(step, op, &transitions, want_change)?;
                heard = transitions;
            }
            Op::Lose { .. } => {}
            Op::Forward(d) => now = now.saturating_add(*d),
            Op::Back(d) => now = now.saturating_sub(*d),
            Op::ToTheEndOfTime => now = u64::MAX,
            Op::Manual(to) => {
                let transitions = subject.manual(*to, now);
                compare_transitions(step, op, &transitions, model.manual(*to, now))?;
                heard = transitions;
            }
            Op::Reset => {
                let transitions = subject.reset(now);
                compare_transitions(step, op, &transitions, Some(model.reset(now)))?;
                countable_reports = 0;
                let m = subject.metrics(now);
                invariant!(
                    "reset gives closed, empty windows and a new generation",
                    m.state == State::Closed
                        && m.generation == before.generation + 1
                        && m.failure_rate.is_none()
                        && m.counts.successes + m.counts.failures + m.counts.stale == 0,
                    "step {step}: {m:?}"
                );
                heard = transitions;
            }
        }

        // Jittered deadlines: check the bounds, then follow the breaker.
        let metrics = subject.metrics(now);
        if model.pending_jitter.is_some() {
            let until = metrics.next_probe_at.map(Instant::as_micros).unwrap_or(0);
            model.adopt_deadline(until).map_err(|e| {
                TestCaseError::fail(format!(
                    "invariant open durations stay within their bounds broken: {e}"
                ))
            })?;
        }
        for t in &heard {
            invariant!(
                "the generation strictly increases, one per transition",
                t.generation == last_generation + 1,
                "step {step}: {t:?} after generation {last_generation}"
            );
            last_generation = t.generation;
            if t.to == State::Open {
                if let Some(until) = metrics
                    .next_probe_at
                    .filter(|_| metrics.state == State::Open)
                {
                    let open_for = until.saturating_duration_since(t.at).as_micros();
                    let base = model.open_base;
                    let (lo, hi) = model.settings.backoff.bounds(base);
                    invariant!(
                        "open durations stay within their bounds",
                        base <= model
                            .settings
                            .backoff
                            .max
                            .max(model.settings.backoff.initial)
                            && (open_for >= lo || t.at.as_micros().saturating_add(lo) == u64::MAX)
                            && open_for <= hi,
                        "step {step}: open for {open_for} µs, bounds [{lo}, {hi}]"
                    );
                }
            }
        }
        transitions_seen += heard.len() as u64;

        // The whole state, compared with the model.
        prop_assert_eq!(
            metrics.state,
            model.phase.state(),
            "step {} ({:?}) at {}: state",
            step,
            op,
            now
        );
        prop_assert_eq!(
            metrics.generation,
            model.generation,
            "step {} ({:?}): generation",
            step,
            op
        );
        prop_assert_eq!(
            metrics.counts,
            model.counts,
            "step {} ({:?}): counts",
            step,
            op
        );
        let rate = |part: fn(&(u64, u64, u64, u64)) -> u64| {
            model
                .window(now)
                .filter(|w| w.0 > 0 && w.0 >= w.3)
                .map(|w| (part(&w), w.0))
        };
        let ratio = |r: Option<Ratio>| r.map(|r| (r.numerator() as u64, r.denominator() as u64));
        prop_assert_eq!(
            ratio(metrics.failure_rate),
            rate(|w| w.1),
            "step {} ({:?}): failure rate",
            step,
            op
        );
        prop_assert_eq!(
            ratio(metrics.slow_rate),
            rate(|w| w.2),
            "step {} ({:?}): slow rate",
            step,
            op
        );
        prop_assert_eq!(
            metrics.time_in_state.as_micros(),
            model.time_in_state(now),
            "step {}: time in state",
            step
        );
        prop_assert_eq!(
            metrics.next_probe_at.map(Instant::as_micros),
            model.next_probe_at(now),
            "step {} ({:?}): next probe",
            step,
            op
        );
        prop_assert_eq!(
            metrics.probes_in_flight as u64,
            model.probes_in_flight(),
            "step {}: probes",
            step
        );
        invariant!(
            "probes in flight never exceed max_probes",
            model.probes_in_flight() <= model.settings.max_probes,
            "step {step}"
        );
        invariant!(
            "exactly one transition event per transition",
            transitions_seen == metrics.generation,
            "step {step}: {transitions_seen} events, generation {}",
            metrics.generation
        );
        let c = metrics.counts;
        invariant!(
            "recorded + ignored + stale equals the reports",
            c.successes + c.failures + c.ignored + c.stale == countable_reports,
            "step {step}: {c:?}, {countable_reports} reports"
        );
        // A lease that ended must end half-open at the next acquire.
        if let Phase::HalfOpen {
            in_flight,
            lease_until,
            ..
        } = model.phase
        {
            invariant!(
                "half-open always ends once the probe lease passes",
                in_flight == 0 || now < lease_until || model.clone().acquire(now).2.is_some(),
                "step {step}"
            );
        }
    }
    Ok(())
}

fn check_all(setup: &Setup, ops: &[Op]) -> Result<(), TestCaseError> {
    macro_rules! with_policy {
        (|$policy:ident| $body:expr) => {
            match setup.policy {
                PolicySetup::Consecutive(t) => {
                    let $policy = ConsecutiveFailures::new(t).unwrap();
                    $body
                }
                PolicySetup::Count(fr, sr, fc, min) => {
                    let $policy = CountWindow::<8>::new(thresholds(fr, sr, fc, min).0).unwrap();
                    $body
                }
                PolicySetup::Time(fr, sr, fc, min, len) => {
                    let length = core::time::Duration::from_micros(len);
                    let $policy =
                        TimeWindow::<4>::new(length, thresholds(fr, sr, fc, min).0).unwrap();
                    $body
                }
                PolicySetup::Either(t, fr, sr, min) => {
                    let $policy = (
                        ConsecutiveFailures::new(t).unwrap(),
                        CountWindow::<8>::new(thresholds(fr, sr, None, min).0).unwrap(),
                    );
                    $body
                }
                PolicySetup::ReadyToTrip => {
                    let $policy = ReadyToTrip::new(half_failed as fn(&RunCounts) -> bool);
                    $body
                }
            }
        };
    }
    let config = setup.config();
    with_policy!(|policy| run(
        Breaker::<_, (), 4>::new(config, policy, ()),
        setup.model(false),
        ops
    ))?;
    with_policy!(|policy| run(
        SharedBreaker::<_, (), 4>::new(config, policy, ()),
        setup.model(true),
        ops
    ))?;
    with_policy!(|policy| {
        let clock = SharedManualClock::new();
        let heard = Arc::new(Mutex::new(Vec::new()));
        let listener = heard.clone();
        let breaker = StdBreaker::builder(config, policy)
            .clock(clock.clone())
            .on_transition(move |t| listener.lock().unwrap().push(*t))
            .build();
        run(
            StdSubject {
                breaker: &breaker,
                clock,
                heard,
            },
            setup.model(true),
            ops,
        )
    })?;
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn every_breaker_matches_the_model(setup in setups(), ops in ops()) {
        check_all(&setup, &ops)?;
    }
}
