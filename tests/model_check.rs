//! Model-based property tests: random configurations (every policy) and
//! random sequences of acquires, reports (success, failure, ignored, slow
//! through the clock), lost permits, clock moves (forward, zero, backwards,
//! to the end of time), manual states and resets, driven against `Breaker`,
//! `SharedBreaker` and the std adapter's `StdBreaker`, and compared with the
//! reference model after every step. Named invariants are checked on every
//! step too, each computed from what the breaker itself answered and
//! reported (never from the model's state).
//!
//! `PROPTEST_CASES=10000 cargo test --test model_check --release` for a
//! longer run.

mod model;

use std::sync::{Arc, Mutex};

use breakerbox::{
    Breaker, Config, ConsecutiveFailures, CountWindow, Counts, Fixed, FixedConfig, HalfOpenVerdict,
    Instant, Jitter, Metrics, NoClock, Outcome, Permit, Ratio, ReadyToTrip, RejectReason, Rejected,
    ReportStatus, RunCounts, SharedBreaker, SharedManualClock, State, StdBreaker, Thresholds,
    TimeWindow, Transition, TransitionReason, TripPolicy,
};
use model::{Answer, Backoff, Model, Policy, Rules, Settings};
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
    fn ticket_generation(ticket: &Self::Ticket) -> u64;
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
        fn ticket_generation(ticket: &Permit) -> u64 {
            ticket.generation()
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

impl<P: TripPolicy, const H: usize, S: breakerbox::Settings> Subject for Breaker<P, NoClock, H, S> {
    core_subject!();
    fn manual(&mut self, to: State, now: u64) -> Vec<Transition> {
        let t = match to {
            State::ForcedOpen => self.force_open_at(at(now)),
            State::Disabled => self.disable_at(at(now)),
            State::MetricsOnly => self.measure_only_at(at(now)),
            _ => self.release_at(at(now)),
        };
        t.into_iter().collect()
    }
    fn reset(&mut self, now: u64) -> Vec<Transition> {
        self.reset_at(at(now)).into_iter().collect()
    }
    fn metrics(&mut self, now: u64) -> Metrics {
        self.metrics_at(at(now))
    }
}

impl<P: TripPolicy> Subject for SharedBreaker<P, NoClock, 4> {
    core_subject!();
    fn manual(&mut self, to: State, now: u64) -> Vec<Transition> {
        let t = self.with_breaker(|b| match to {
            State::ForcedOpen => b.force_open_at(at(now)),
            State::Disabled => b.disable_at(at(now)),
            State::MetricsOnly => b.measure_only_at(at(now)),
            _ => b.release_at(at(now)),
        });
        t.flatten().into_iter().collect()
    }
    fn reset(&mut self, now: u64) -> Vec<Transition> {
        self.with_breaker(|b| b.reset_at(at(now)))
            .flatten()
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
    fn ticket_generation(ticket: &Self::Ticket) -> u64 {
        ticket.permit().unwrap().generation()
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
            State::MetricsOnly => self.breaker.measure_only(),
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
    /// `const`, so a setup can also configure a breaker at compile time.
    const fn config(&self) -> Config {
        const fn d(micros: u64) -> core::time::Duration {
            core::time::Duration::from_micros(micros)
        }
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
        b = b.jitter(jitter).jitter_seed(self.seed);
        if let Some(s) = self.slow {
            b = b.slow_call_threshold(d(s));
        }
        if let Some((fr, sr)) = self.rate_verdict {
            b = b.half_open_verdict(HalfOpenVerdict::Rates {
                failure_rate: Ratio::percent(fr),
                slow_rate: match sr {
                    Some(p) => Some(Ratio::percent(p)),
                    None => None,
                },
            });
        }
        match b.build() {
            Ok(config) => config,
            Err(_) => panic!("a valid configuration"),
        }
    }

    /// The backoff as plain numbers.
    fn backoff(&self) -> Backoff {
        Backoff {
            exponential: self.exponential,
            initial: self.initial,
            max: if self.exponential {
                self.initial * self.max_factor
            } else {
                self.initial
            },
            multiplier: (self.multiplier.0 as u64, self.multiplier.1 as u64),
            jitter: self.jitter,
            seed: self.seed,
        }
    }

    fn model(&self, shared: bool) -> Model {
        let backoff = self.backoff();
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

macro_rules! invariant {
    ($name:literal, $ok:expr, $($fmt:tt)*) => {
        if !$ok {
            return Err(TestCaseError::fail(format!("invariant {} broken: {}", $name, format!($($fmt)*))));
        }
    };
}

/// A permit out: the breaker's ticket, the model's handle for it, and what
/// the breaker said of it.
struct Out<T> {
    ticket: T,
    /// Which acquire gave it (the test's own numbering).
    id: usize,
    /// The model's handle: the index of its acquire in the model's history.
    handle: usize,
    /// The permit's admitting state and generation, as the breaker gave them.
    state: State,
    generation: u64,
}

/// What the breaker has answered and reported so far, kept by the test from
/// the breaker's own outputs (never from the model): the ground of the
/// named invariants.
#[derive(Debug, Default)]
struct Seen {
    /// Transition events heard.
    transitions: u64,
    /// The generation of the last transition heard.
    generation: u64,
    /// Generations started by a `Reset`.
    resets: Vec<u64>,
    /// Reports (and std guards dropped) since the last reset that the
    /// contract counts somewhere: all but those made while disabled or with
    /// a permit of the disabled state.
    reports: u64,
    /// Rejections since the last reset.
    rejections: u64,
    /// Reopenings (failed probe, probe rate, lease ended) since the last
    /// transition into closed.
    reopenings: u64,
    /// Successes and failures recorded in closed and metrics-only since the
    /// policy's window was last emptied (a bound on what the window holds).
    window_calls: u64,
    window_failures: u64,
    /// Half-open permits the breaker gave and that were not reported (lost
    /// ones included): `(id, generation)`.
    probes: Vec<(usize, u64)>,
    /// The end of the probe lease of this generation, from the breaker's
    /// half-open admissions (and pulled back as the contract says).
    lease_end: Option<u64>,
}

/// The answers to one operation, from the breaker and from the model.
#[derive(Default)]
struct Answers {
    got: Option<Answer>,
    want: Option<Answer>,
    want_transition: Option<Transition>,
}

fn admission<T, S: Subject<Ticket = T>>(got: &Result<T, Rejected>) -> Answer {
    match got {
        Ok(t) => Answer::Admitted {
            state: S::ticket_state(t),
            generation: S::ticket_generation(t),
        },
        Err(r) => Answer::Rejected {
            reason: r.reason,
            retry_after: r
                .retry_after()
                .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX)),
        },
    }
}

fn reopening(reason: TransitionReason) -> bool {
    matches!(
        reason,
        TransitionReason::ProbeFailed
            | TransitionReason::ProbeRateExceeded(_)
            | TransitionReason::ProbeLeaseExpired
    )
}

fn run<S: Subject>(
    mut subject: S,
    mut model: Model,
    setup: &Setup,
    shared: bool,
    ops: &[Op],
) -> Result<(), TestCaseError> {
    let lease = setup.lease;
    let max_probes = setup.max_probes;
    let backoff = setup.backoff();
    // A rate window alone (not either-of, consecutive or a user function):
    // its minimum and failure count.
    let rate_window = match setup.policy {
        PolicySetup::Count(_, _, fc, min) | PolicySetup::Time(_, _, fc, min, _) => Some((fc, min)),
        _ => None,
    };
    let mut now: u64 = 0;
    let mut outstanding: Vec<Out<S::Ticket>> = Vec::new();
    let mut seen = Seen::default();
    for (step, op) in ops.iter().enumerate() {
        let before = subject.metrics(now);
        let mut heard: Vec<Transition> = Vec::new();
        let mut answers = Answers::default();
        // Whether this operation started a probe lease (a half-open
        // admission with no probe in flight).
        let mut lease_starts = false;
        // A call into the breaker in half-open with probes in flight pulls
        // the lease back; then, has it passed?
        let lease_check = move |seen: &mut Seen| {
            if before.state == State::HalfOpen && before.probes_in_flight > 0 {
                seen.lease_end = seen.lease_end.map(|e| e.min(now.saturating_add(lease)));
                seen.lease_end.is_some_and(|e| now >= e)
            } else {
                false
            }
        };
        let lease_expiry = [(
            State::HalfOpen,
            State::Open,
            TransitionReason::ProbeLeaseExpired,
        )];
        let shape = |ts: &[Transition]| -> Vec<(State, State, TransitionReason)> {
            ts.iter().map(|t| (t.from, t.to, t.reason)).collect()
        };
        match op {
            Op::Acquire => {
                let lease_passed = lease_check(&mut seen);
                let (got, transitions) = subject.acquire(now);
                let fact = model.acquire(now);
                let got_answer = admission::<_, S>(&got);

                // Catches: an acquire that trips, closes or makes a manual
                // transition (only open → half-open and a lease's end may).
                invariant!(
                    "an acquire only opens a probe or ends a lease",
                    transitions.iter().all(|t| matches!(
                        t.reason,
                        TransitionReason::OpenElapsed | TransitionReason::ProbeLeaseExpired
                    )),
                    "step {step}: {transitions:?}"
                );
                // Catches: a half-open breaker that keeps admitting (or
                // wedges) after its probes' lease ended, or reopens early.
                invariant!(
                    "half-open always ends once the probe lease passes",
                    if lease_passed {
                        got.is_err()
                            && shape(&transitions) == lease_expiry
                            && before.next_probe_at.is_none()
                    } else {
                        !transitions
                            .iter()
                            .any(|t| t.reason == TransitionReason::ProbeLeaseExpired)
                    },
                    "step {step} at {now}: lease end {:?}, {} in flight, got {:?}, {:?}",
                    seen.lease_end,
                    before.probes_in_flight,
                    got_answer,
                    transitions
                );
                if before.state == State::Open {
                    let until = before.next_probe_at.map(Instant::as_micros);
                    // Catches: an open breaker that admits early, rejects at
                    // or after its deadline, or misstates the wait.
                    invariant!(
                        "open rejects everything before its deadline and admits at it",
                        until.is_some_and(|u| match got_answer {
                            Answer::Rejected {
                                reason: RejectReason::Open,
                                retry_after: Some(wait),
                            } => now < u && wait == u - now,
                            Answer::Admitted {
                                state: State::HalfOpen,
                                ..
                            } => now >= u,
                            _ => false,
                        }),
                        "step {step}: now {now}, deadline {until:?}, got {got_answer:?}"
                    );
                }
                if let Ok(ticket) = got {
                    let state = S::ticket_state(&ticket);
                    let generation = S::ticket_generation(&ticket);
                    if state == State::HalfOpen {
                        seen.probes.push((step, generation));
                        lease_starts = before.state == State::Open || before.probes_in_flight == 0;
                    }
                    outstanding.push(Out {
                        ticket,
                        id: step,
                        handle: model.facts().len() - 1,
                        state,
                        generation,
                    });
                } else {
                    seen.rejections += 1;
                }
                answers = Answers {
                    got: Some(got_answer),
                    want: Some(fact.answer),
                    want_transition: fact.transition,
                };
                heard = transitions;
            }
            Op::Report { index, outcome } if !outstanding.is_empty() => {
                let out = outstanding.remove(index % outstanding.len());
                let outcome =
                    [Outcome::Success, Outcome::Failure, Outcome::Ignored][*outcome as usize];
                let lease_passed = lease_check(&mut seen);
                let (permit_state, permit_generation) = (out.state, out.generation);
                let (status, transitions) = subject.report(out.ticket, outcome, now);
                let fact = model.report(out.handle, outcome, now);
                let after = subject.metrics(now);
                let stale = status == ReportStatus::Stale;
                seen.probes.retain(|p| p.0 != out.id);
                let uncounted = before.state == State::Disabled || permit_state == State::Disabled;
                if !uncounted {
                    seen.reports += 1;
                }
                if !stale
                    && outcome != Outcome::Ignored
                    && matches!(permit_state, State::Closed | State::MetricsOnly)
                {
                    seen.window_calls += 1;
                    seen.window_failures += u64::from(outcome == Outcome::Failure);
                }

                // Catches: a probe reported after its lease that is counted
                // as a result (or closes the breaker) instead of reopening it.
                invariant!(
                    "half-open always ends once the probe lease passes",
                    if lease_passed {
                        stale && shape(&transitions) == lease_expiry
                    } else {
                        !transitions
                            .iter()
                            .any(|t| t.reason == TransitionReason::ProbeLeaseExpired)
                    },
                    "step {step} at {now}: lease end {:?}, {} in flight, got {:?}, {:?}",
                    seen.lease_end,
                    before.probes_in_flight,
                    status,
                    transitions
                );
                if stale && transitions.is_empty() {
                    // The one count a stale report adds (none while
                    // disabled), and the late count of a lock-free admission
                    // (unless a reset zeroed the counts it belonged to).
                    let mut want = before;
                    if !uncounted {
                        want.counts.stale += 1;
                        let reset_since = seen.resets.iter().any(|&g| g > permit_generation);
                        if shared
                            && matches!(permit_state, State::Closed | State::MetricsOnly)
                            && !reset_since
                        {
                            want.counts.calls += 1;
                        }
                    }
                    // Catches: a stale report that is counted as a result,
                    // frees a probe slot, moves the state or a window.
                    invariant!(
                        "stale reports change nothing",
                        after == want,
                        "step {step}: permit {:?}/{}: {:?} -> {:?}",
                        permit_state,
                        permit_generation,
                        before,
                        after
                    );
                }
                if outcome == Outcome::Ignored && !stale {
                    // Catches: an ignored outcome that reaches the policy,
                    // counts as a success or failure, or makes a transition.
                    invariant!(
                        "ignored outcomes change no rate",
                        transitions.is_empty()
                            && after.failure_rate == before.failure_rate
                            && after.slow_rate == before.slow_rate
                            && after.counts.successes == before.counts.successes
                            && after.counts.failures == before.counts.failures
                            && after.counts.slow == before.counts.slow,
                        "step {step}: {before:?} -> {after:?}"
                    );
                }
                if let (Some(t), Some((fc, minimum))) = (
                    transitions
                        .iter()
                        .find(|t| matches!(t.reason, TransitionReason::Tripped(_))),
                    rate_window,
                ) {
                    let by_count = fc.is_some_and(|c| seen.window_failures >= u64::from(c));
                    let by_rate = seen.window_calls >= u64::from(minimum)
                        && after
                            .failure_rate
                            .is_some_and(|r| r.denominator() >= minimum);
                    // Catches: a rate window that trips on a rate before it
                    // holds its minimum number of calls.
                    invariant!(
                        "no trip below the minimum number of calls",
                        by_count || by_rate,
                        "step {step}: {t:?} after {} calls ({} failed) since the window \
                         was emptied, minimum {minimum}, rate {:?}",
                        seen.window_calls,
                        seen.window_failures,
                        after.failure_rate
                    );
                }
                answers = Answers {
                    got: Some(Answer::Reported { stale }),
                    want: Some(fact.answer),
                    want_transition: fact.transition,
                };
                heard = transitions;
            }
            Op::Report { .. } => {}
            Op::Lose { index } if !outstanding.is_empty() => {
                let out = outstanding.remove(index % outstanding.len());
                // The std guard's drop is a report of `Ignored`; a core
                // permit dropped is no call into the breaker at all.
                let lease_passed = S::DROP_IS_IGNORED && lease_check(&mut seen);
                let (permit_state, id) = (out.state, out.id);
                let transitions = subject.lose(out.ticket, now);
                if S::DROP_IS_IGNORED {
                    let fact = model.report(out.handle, Outcome::Ignored, now);
                    answers.want_transition = fact.transition;
                    seen.probes.retain(|p| p.0 != id);
                    if !(before.state == State::Disabled || permit_state == State::Disabled) {
                        seen.reports += 1;
                    }
                }
                // Catches: a dropped guard that wedges half-open after the
                // lease, or a lost permit that changes the breaker.
                invariant!(
                    "half-open always ends once the probe lease passes",
                    if lease_passed {
                        shape(&transitions) == lease_expiry
                    } else {
                        !transitions
                            .iter()
                            .any(|t| t.reason == TransitionReason::ProbeLeaseExpired)
                    },
                    "step {step}: lease end {:?}, {transitions:?}",
                    seen.lease_end
                );
                heard = transitions;
            }
            Op::Lose { .. } => {}
            Op::Forward(d) => now = now.saturating_add(*d),
            Op::Back(d) => now = now.saturating_sub(*d),
            Op::ToTheEndOfTime => now = u64::MAX,
            Op::Manual(to) => {
                let transitions = subject.manual(*to, now);
                let fact = model.control(*to, now);
                answers.want_transition = fact.transition;
                heard = transitions;
            }
            Op::Reset => {
                let transitions = subject.reset(now);
                let fact = model.reset(now);
                answers.want_transition = fact.transition;
                seen.reports = 0;
                seen.rejections = 0;
                let m = subject.metrics(now);
                // Catches: a reset that keeps a count, a window, a probe or
                // the old generation, or misreports its transition.
                invariant!(
                    "reset gives closed, empty windows and a new generation",
                    m.state == State::Closed
                        && m.generation == before.generation.wrapping_add(1)
                        && m.failure_rate.is_none()
                        && m.slow_rate.is_none()
                        && m.counts == Counts::default()
                        && m.time_in_state.as_micros() == 0
                        && m.next_probe_at.is_none()
                        && m.probes_in_flight == 0
                        && transitions.len() == 1
                        && transitions[0].from == before.state
                        && transitions[0].to == State::Closed
                        && transitions[0].reason == TransitionReason::Reset
                        && transitions[0].at.as_micros() == now,
                    "step {step}: {before:?} -> {m:?}, {transitions:?}"
                );
                heard = transitions;
            }
        }

        let after = subject.metrics(now);

        // ------------------------------------------ invariants of every step
        let calls_the_breaker = matches!(op, Op::Acquire | Op::Report { .. })
            || (S::DROP_IS_IGNORED && matches!(op, Op::Lose { .. }));
        if calls_the_breaker
            && matches!(
                before.state,
                State::ForcedOpen | State::Disabled | State::MetricsOnly
            )
        {
            // Catches: a manual state that trips, closes or opens by itself.
            invariant!(
                "forced, disabled and metrics-only ignore thresholds",
                heard.is_empty() && after.state == before.state,
                "step {step} ({op:?}): {heard:?}"
            );
        }
        if calls_the_breaker && before.state == State::Disabled {
            // Catches: a disabled breaker that counts calls, results or
            // stale reports.
            invariant!(
                "nothing is counted while disabled",
                after.counts == before.counts,
                "step {step} ({op:?}): {:?} -> {:?}",
                before.counts,
                after.counts
            );
        }
        if matches!(op, Op::Manual(_)) {
            // Catches: a manual control that counts something.
            invariant!(
                "manual controls change no count",
                after.counts == before.counts,
                "step {step} ({op:?}): {:?} -> {:?}",
                before.counts,
                after.counts
            );
        }
        if matches!(op, Op::Forward(_) | Op::Back(_) | Op::ToTheEndOfTime) {
            // Catches: a breaker that moves (trips, opens, closes, counts)
            // when only read, as time passes.
            invariant!(
                "a clock step alone changes no state",
                after.state == before.state
                    && after.generation == before.generation
                    && after.counts == before.counts
                    && after.probes_in_flight == before.probes_in_flight,
                "step {step} ({op:?}): {before:?} -> {after:?}"
            );
        }

        // Catches: a transition without an event, an event without a
        // transition, or two events for one operation.
        invariant!(
            "exactly one transition event per transition",
            heard.len() <= 1
                && after.generation == before.generation.wrapping_add(heard.len() as u64),
            "step {step} ({op:?}): {heard:?}, generation {} -> {}",
            before.generation,
            after.generation
        );
        for t in &heard {
            // Catches: a generation that skips, repeats or goes back, or an
            // event carrying the wrong one.
            invariant!(
                "the generation strictly increases, one per transition",
                t.generation == seen.generation.wrapping_add(1),
                "step {step}: {t:?} after generation {}",
                seen.generation
            );
            seen.generation = t.generation;
            seen.transitions += 1;
            seen.lease_end = None;
            if t.reason == TransitionReason::Reset {
                seen.resets.push(t.generation);
            }
            if reopening(t.reason) {
                seen.reopenings += 1;
            }
            if t.to == State::Closed {
                seen.reopenings = 0;
            }
            if matches!(t.to, State::Closed | State::MetricsOnly) {
                seen.window_calls = 0;
                seen.window_failures = 0;
            }
            if t.to == State::Open {
                let at = t.at.as_micros();
                let base = backoff.base(seen.reopenings);
                let (lo, hi) = backoff.bounds(base);
                let until = after
                    .next_probe_at
                    .filter(|_| after.state == State::Open)
                    .map(Instant::as_micros);
                // Catches: a trip or reopening whose deadline ignores the
                // backoff, its cap, its step or the jitter's range.
                invariant!(
                    "open durations stay within their bounds",
                    until.is_some_and(|u| at.saturating_add(lo) <= u && u <= at.saturating_add(hi)),
                    "step {step}: {t:?}, open until {until:?}, base {base} after {} \
                     reopenings, bounds [{lo}, {hi}]",
                    seen.reopenings
                );
            }
        }
        if lease_starts {
            seen.lease_end = Some(now.saturating_add(lease));
        }
        invariant!(
            "exactly one transition event per transition",
            seen.transitions == after.generation && seen.generation == after.generation,
            "step {step}: {} events, generation {}",
            seen.transitions,
            after.generation
        );
        let c = after.counts;
        // Catches: a report counted twice, in the wrong count, or not at all.
        invariant!(
            "recorded + ignored + stale equals the reports",
            c.successes + c.failures + c.ignored + c.stale == seen.reports,
            "step {step}: {c:?}, {} reports",
            seen.reports
        );
        // Catches: a rejection that is not counted, or counted twice.
        invariant!(
            "every rejection is counted",
            c.rejected == seen.rejections,
            "step {step}: {c:?}, {} rejections",
            seen.rejections
        );
        let live = seen
            .probes
            .iter()
            .filter(|p| p.1 == after.generation)
            .count() as u32;
        // Catches: half-open admitting more probes than `max_probes`, or
        // losing track of the probes it admitted.
        invariant!(
            "probes in flight never exceed max_probes",
            after.probes_in_flight <= max_probes
                && live <= max_probes
                && after.probes_in_flight
                    == if after.state == State::HalfOpen {
                        live
                    } else {
                        0
                    },
            "step {step}: {} in flight, {live} half-open permits of this generation out, \
             max {max_probes}",
            after.probes_in_flight
        );

        // ----------------------------------------- everything, against the model
        if let (Some(got), Some(want)) = (answers.got, answers.want) {
            prop_assert_eq!(got, want, "step {} ({:?}) at {}: answer", step, op, now);
        }
        let want_heard: Vec<Transition> = answers.want_transition.into_iter().collect();
        prop_assert_eq!(
            &heard,
            &want_heard,
            "step {} ({:?}) at {}: transitions",
            step,
            op,
            now
        );
        let want = model.metrics(now);
        prop_assert_eq!(after, want, "step {} ({:?}) at {}: metrics", step, op, now);
    }
    Ok(())
}

/// Says which breaker a failure is about.
fn named(breaker: &str, e: TestCaseError) -> TestCaseError {
    match e {
        TestCaseError::Fail(why) => TestCaseError::fail(format!("{breaker}: {why}")),
        other => other,
    }
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
        Breaker::<_, NoClock, 4>::new(config, policy, NoClock),
        setup.model(false),
        setup,
        false,
        ops
    ))
    .map_err(|e| named("Breaker", e))?;
    with_policy!(|policy| run(
        SharedBreaker::<_, NoClock, 4>::new(config, policy, NoClock),
        setup.model(true),
        setup,
        true,
        ops
    ))
    .map_err(|e| named("SharedBreaker", e))?;
    with_policy!(|policy| {
        let clock = SharedManualClock::new();
        let heard = Arc::new(Mutex::new(Vec::new()));
        let listener = heard.clone();
        let breaker = StdBreaker::builder(config, policy)
            .clock(clock.clone())
            .on_transition(move |e| listener.lock().unwrap().push(e.transition))
            .build();
        run(
            StdSubject {
                breaker: &breaker,
                clock,
                heard,
            },
            setup.model(true),
            setup,
            true,
            ops,
        )
    })
    .map_err(|e| named("StdBreaker", e))?;
    Ok(())
}

// ------------------------------------------- configurations fixed at compile time

/// As plain as a firmware's: consecutive failures, a fixed open duration,
/// one probe.
const PLAIN: Setup = Setup {
    initial: 5_000,
    max_factor: 1,
    multiplier: (1, 1),
    exponential: false,
    jitter: 0,
    seed: 0,
    max_probes: 1,
    successes_to_close: 1,
    lease: 3_000,
    slow: None,
    rate_verdict: None,
    policy: PolicySetup::Consecutive(3),
};

/// Every feature a configuration can turn on.
const RICH: Setup = Setup {
    initial: 2_000,
    max_factor: 8,
    multiplier: (3, 2),
    exponential: true,
    jitter: 1,
    seed: 0x5eed,
    max_probes: 3,
    successes_to_close: 2,
    lease: 4_000,
    slow: Some(1_500),
    rate_verdict: Some((50, Some(50))),
    policy: PolicySetup::Consecutive(2),
};

struct Plain;
impl FixedConfig for Plain {
    const CONFIG: Config = PLAIN.config();
}

struct Rich;
impl FixedConfig for Rich {
    const CONFIG: Config = RICH.config();
}

/// `PLAIN` again, keeping no counts and no time in state.
struct PlainLean;
impl FixedConfig for PlainLean {
    const CONFIG: Config = PLAIN.config();
    const METRICS: bool = false;
}

/// A breaker that keeps no counts and no history (`lean`), driven in step
/// with a twin that keeps both (`full`, which the model checks): every
/// answer must be the same, and the lean one's counts, time in state and
/// history empty.
struct Twins<A, B> {
    full: A,
    lean: B,
}

impl<P: TripPolicy, F: FixedConfig, L: FixedConfig> Subject
    for Twins<Breaker<P, NoClock, 4, Fixed<F>>, Breaker<P, NoClock, 0, Fixed<L>>>
{
    type Ticket = (Permit, Permit);
    const DROP_IS_IGNORED: bool = false;
    fn acquire(&mut self, now: u64) -> (Result<Self::Ticket, Rejected>, Vec<Transition>) {
        let (full, transitions) = Subject::acquire(&mut self.full, now);
        let (lean, lean_transitions) = Subject::acquire(&mut self.lean, now);
        assert_eq!(
            transitions, lean_transitions,
            "the twins' transitions at {now}"
        );
        let got = match (full, lean) {
            (Ok(f), Ok(l)) => {
                assert_eq!(
                    (f.generation(), f.state(), f.started()),
                    (l.generation(), l.state(), l.started()),
                    "the twins' permits at {now}"
                );
                Ok((f, l))
            }
            (Err(f), Err(l)) => {
                assert_eq!(f, l, "the twins' rejections at {now}");
                Err(f)
            }
            (f, l) => panic!("the twins' admissions at {now}: {f:?} and {l:?}"),
        };
        (got, transitions)
    }
    fn ticket_state(ticket: &Self::Ticket) -> State {
        ticket.0.state()
    }
    fn ticket_generation(ticket: &Self::Ticket) -> u64 {
        ticket.0.generation()
    }
    fn report(
        &mut self,
        (full, lean): Self::Ticket,
        outcome: Outcome,
        now: u64,
    ) -> (ReportStatus, Vec<Transition>) {
        let got = Subject::report(&mut self.full, full, outcome, now);
        let lean = Subject::report(&mut self.lean, lean, outcome, now);
        assert_eq!(got, lean, "the twins' reports at {now}");
        got
    }
    fn lose(&mut self, (full, lean): Self::Ticket, now: u64) -> Vec<Transition> {
        drop(lean);
        Subject::lose(&mut self.full, full, now)
    }
    fn manual(&mut self, to: State, now: u64) -> Vec<Transition> {
        let got = Subject::manual(&mut self.full, to, now);
        assert_eq!(
            got,
            Subject::manual(&mut self.lean, to, now),
            "the twins' manual controls at {now}"
        );
        got
    }
    fn reset(&mut self, now: u64) -> Vec<Transition> {
        let got = Subject::reset(&mut self.full, now);
        assert_eq!(
            got,
            Subject::reset(&mut self.lean, now),
            "the twins' resets at {now}"
        );
        got
    }
    fn metrics(&mut self, now: u64) -> Metrics {
        let full = Subject::metrics(&mut self.full, now);
        let lean = self.lean.metrics_at(at(now));
        let mut kept = full;
        kept.counts = Counts::default();
        kept.time_in_state = std::time::Duration::ZERO;
        assert_eq!(lean, kept, "the twins' metrics at {now}");
        assert_eq!(self.lean.history().count(), 0, "a history of none");
        assert_eq!(self.lean.poll_at(at(now)), self.full.poll_at(at(now)));
        full
    }
}

/// `Breaker::fixed` on `setup`, whose configuration `K` fixes.
fn check_fixed<K: FixedConfig>(setup: &Setup, ops: &[Op]) -> Result<(), TestCaseError> {
    let PolicySetup::Consecutive(threshold) = setup.policy else {
        unreachable!("the fixed setups trip on consecutive failures")
    };
    let policy = ConsecutiveFailures::new(threshold).unwrap();
    let breaker: Breaker<_, NoClock, 4, Fixed<K>> = Breaker::fixed(policy, NoClock);
    prop_assert_eq!(*breaker.config(), setup.config());
    run(breaker, setup.model(false), setup, false, ops)
}

/// `Breaker::fixed` on `PLAIN` with no counts and no history, in step with
/// its twin that keeps both.
fn check_lean(ops: &[Op]) -> Result<(), TestCaseError> {
    let policy = || ConsecutiveFailures::new(3).unwrap();
    let twins = Twins {
        full: Breaker::<_, NoClock, 4, Fixed<Plain>>::fixed(policy(), NoClock),
        lean: Breaker::<_, NoClock, 0, Fixed<PlainLean>>::fixed(policy(), NoClock),
    };
    run(twins, PLAIN.model(false), &PLAIN, false, ops)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn every_breaker_matches_the_model(setup in setups(), ops in ops()) {
        check_all(&setup, &ops)?;
    }

    #[test]
    fn breakers_configured_at_compile_time_match_the_model(ops in ops()) {
        check_fixed::<Plain>(&PLAIN, &ops).map_err(|e| named("Breaker<Fixed<Plain>>", e))?;
        check_fixed::<Rich>(&RICH, &ops).map_err(|e| named("Breaker<Fixed<Rich>>", e))?;
        check_lean(&ops).map_err(|e| named("Breaker<_, _, 0, Fixed<PlainLean>>", e))?;
    }
}
