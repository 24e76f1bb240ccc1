//! A reference model of the breaker, written from the contract in
//! `docs/semantics.md` rather than from the core's code: plain `u64`
//! arithmetic, `Vec`s of events, no cleverness. The breaker is modelled as
//! its history (every event with the answer it got), and every state, count
//! and deadline is a question asked of that history. The model tests drive
//! the real breakers and this model with the same operations and compare
//! them after each one.

#![allow(dead_code)] // each test binary uses its own part

use breakerbox::{
    Counts, Instant, Metrics, Outcome, Ratio, RejectReason, State, Transition, TransitionReason,
    TripRule,
};

/// Thresholds of a window policy, as plain numbers: `(numerator, denominator)`.
#[derive(Clone, Copy, Debug)]
pub struct Rules {
    pub failure_rate: Option<(u64, u64)>,
    pub slow_rate: Option<(u64, u64)>,
    pub failure_count: Option<u64>,
    pub minimum_calls: u64,
}

impl Rules {
    fn reached(rate: Option<(u64, u64)>, part: u64, whole: u64) -> bool {
        match rate {
            Some((num, den)) => whole > 0 && part * den >= num * whole,
            None => false,
        }
    }

    /// The trip rule of the brief: a failure count, or a rate once the
    /// minimum number of calls is in.
    /// The rule it names is the first one reached, in that order.
    pub fn trips(&self, calls: u64, failures: u64, slow: u64) -> Option<TripRule> {
        if self.failure_count.is_some_and(|c| failures >= c) {
            return Some(TripRule::FailureCount);
        }
        if calls < self.minimum_calls {
            None
        } else if Self::reached(self.failure_rate, failures, calls) {
            Some(TripRule::FailureRate)
        } else if Self::reached(self.slow_rate, slow, calls) {
            Some(TripRule::SlowCallRate)
        } else {
            None
        }
    }
}

/// The trip policies the model knows.
#[derive(Clone, Debug)]
pub enum Policy {
    Consecutive {
        threshold: u64,
        run: u64,
    },
    /// The last `size` calls.
    CountWindow {
        size: usize,
        rules: Rules,
        events: Vec<(bool, bool)>,
    },
    /// The last `buckets` buckets of `length` µs; each event remembers the
    /// bucket it landed in (never earlier than the newest seen).
    TimeWindow {
        buckets: u64,
        length: u64,
        rules: Rules,
        newest: u64,
        events: Vec<(u64, bool, bool)>,
    },
    /// Trips when either does; both see everything; the first one's window.
    Either(Box<Policy>, Box<Policy>),
    /// A user's decision over the counts since the last reset: here, at
    /// least two failures making up half the calls or more.
    Counts {
        events: Vec<(bool, bool)>,
    },
}

/// The decision the `Counts` policy models (and the tests give `ReadyToTrip`).
pub fn half_failed(calls: u64, failures: u64) -> bool {
    failures >= 2 && failures * 2 >= calls
}

impl Policy {
    fn window(&self, now: u64) -> Option<(u64, u64, u64, u64)> {
        match self {
            Policy::Consecutive { .. } => None,
            Policy::Either(a, b) => a.window(now).or_else(|| b.window(now)),
            Policy::Counts { events } => {
                let failures = events.iter().filter(|e| e.0).count() as u64;
                let slow = events.iter().filter(|e| e.1).count() as u64;
                Some((events.len() as u64, failures, slow, 1))
            }
            Policy::CountWindow {
                size,
                rules,
                events,
            } => {
                let live = &events[events.len().saturating_sub(*size)..];
                let failures = live.iter().filter(|e| e.0).count() as u64;
                let slow = live.iter().filter(|e| e.1).count() as u64;
                Some((live.len() as u64, failures, slow, rules.minimum_calls))
            }
            Policy::TimeWindow {
                buckets,
                length,
                rules,
                newest,
                events,
            } => {
                let head = (*newest).max(now / length);
                let live: Vec<_> = events.iter().filter(|e| head - e.0 < *buckets).collect();
                let failures = live.iter().filter(|e| e.1).count() as u64;
                let slow = live.iter().filter(|e| e.2).count() as u64;
                Some((live.len() as u64, failures, slow, rules.minimum_calls))
            }
        }
    }

    /// Whether it trips, and by which rule: for a pair, the first's if
    /// it breaks one.
    fn record(&mut self, failed: bool, slow: bool, now: u64) -> Option<TripRule> {
        match self {
            Policy::Either(a, b) => {
                let first = a.record(failed, slow, now);
                let second = b.record(failed, slow, now);
                first.or(second)
            }
            Policy::Counts { events } => {
                events.push((failed, slow));
                let failures = events.iter().filter(|e| e.0).count() as u64;
                half_failed(events.len() as u64, failures).then_some(TripRule::Custom)
            }
            Policy::Consecutive { threshold, run } => {
                *run = if failed { *run + 1 } else { 0 };
                (*run >= *threshold).then_some(TripRule::ConsecutiveFailures)
            }
            Policy::CountWindow { rules, events, .. } => {
                events.push((failed, slow));
                let rules = *rules;
                let (calls, failures, slow, _) = self.window(now).expect("a window");
                rules.trips(calls, failures, slow)
            }
            Policy::TimeWindow {
                length,
                rules,
                newest,
                events,
                ..
            } => {
                *newest = (*newest).max(now / *length);
                events.push((*newest, failed, slow));
                let rules = *rules;
                let (calls, failures, slow, _) = self.window(now).expect("a window");
                rules.trips(calls, failures, slow)
            }
        }
    }

    fn reset(&mut self, now: u64) {
        match self {
            Policy::Either(a, b) => {
                a.reset(now);
                b.reset(now);
            }
            Policy::Counts { events } => events.clear(),
            Policy::Consecutive { run, .. } => *run = 0,
            Policy::CountWindow { events, .. } => events.clear(),
            Policy::TimeWindow {
                length,
                newest,
                events,
                ..
            } => {
                events.clear();
                *newest = (*newest).max(now / *length);
            }
        }
    }
}

// ===================================================================== //
// The breaker, as a history.
//
// The model never keeps a state that it updates. It keeps what the user did
// (`Event`s, in order) and, next to each event, the answer the contract
// gives to it (`Fact`s). Everything else (the state, the generation, every
// count, the open deadline, the probes in flight, the lease, the base open
// duration, the jitter's draws, the policy's window) is a question asked of
// that log whenever it is needed: "how many transitions so far?", "what did
// the events since the last reset add to the counts?", "which probes of
// this generation are still out?". The answer to a new event is worked out
// from those questions and the tables of `docs/semantics.md`, then appended.
// ===================================================================== //

/// The open-duration settings.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    /// `false`: a fixed backoff (`initial` every time).
    pub exponential: bool,
    /// The first open duration, µs.
    pub initial: u64,
    /// The longest base open duration, µs (for a fixed backoff, `initial`).
    pub max: u64,
    /// The exponential growth per reopening, `(numerator, denominator)`.
    pub multiplier: (u64, u64),
    /// 0: none, 1: full, 2: equal.
    pub jitter: u8,
    /// The jitter generator's seed.
    pub seed: u64,
}

/// A rate as `(numerator, denominator)`.
pub type Rate = (u64, u64);

/// The configuration, as plain numbers (µs for durations).
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    pub backoff: Backoff,
    pub max_probes: u64,
    pub successes_to_close: u64,
    pub lease: u64,
    pub slow_threshold: Option<u64>,
    /// `HalfOpenVerdict::Rates { failure_rate, slow_rate }`; `None` is `AnyFailure`.
    pub rate_verdict: Option<(Rate, Option<Rate>)>,
}

/// One thing done to the breaker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    Acquire {
        at: u64,
    },
    /// `permit` is the index (in the history) of the acquire that admitted
    /// the call.
    Report {
        permit: usize,
        outcome: Outcome,
        at: u64,
    },
    /// `force_open` (`ForcedOpen`), `disable` (`Disabled`), `measure_only`
    /// (`MetricsOnly`) or `release` (`Closed`).
    Control {
        to: State,
        at: u64,
    },
    Reset {
        at: u64,
    },
}

impl Event {
    pub fn at(&self) -> u64 {
        match *self {
            Event::Acquire { at }
            | Event::Report { at, .. }
            | Event::Control { at, .. }
            | Event::Reset { at } => at,
        }
    }

    /// Acquires and reports pull a too-distant probe lease back; controls
    /// and resets do not.
    fn pulls_back(&self) -> bool {
        matches!(self, Event::Acquire { .. } | Event::Report { .. })
    }

    /// Only acquires pull a too-distant open deadline back: a report met
    /// in `Open` is stale and changes no state.
    fn pulls_back_open_deadline(&self) -> bool {
        matches!(self, Event::Acquire { .. })
    }
}

/// What the caller got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// A permit: its admitting state and generation.
    Admitted { state: State, generation: u64 },
    /// `retry_after` in µs.
    Rejected {
        reason: RejectReason,
        retry_after: Option<u64>,
    },
    /// `ReportStatus::Stale` or `Recorded`.
    Reported { stale: bool },
    /// A manual control or a reset.
    Controlled,
}

/// An event with everything the contract says it caused.
#[derive(Clone, Copy, Debug)]
pub struct Fact {
    pub event: Event,
    pub answer: Answer,
    pub transition: Option<Transition>,
    /// For a transition into `Open`: the deadline it set, µs.
    opened_until: Option<u64>,
    /// For an admission into half-open while no probe was in flight: the
    /// lease starts here.
    starts_lease: bool,
    /// For a report: whether the call was slow.
    slow: bool,
    /// What the event adds to the counts.
    counted: Counts,
    /// What the trip policy was told, `(failed, slow)`.
    policy_saw: Option<(bool, bool)>,
}

impl Fact {
    fn new(event: Event, answer: Answer) -> Fact {
        Fact {
            event,
            answer,
            transition: None,
            opened_until: None,
            starts_lease: false,
            slow: false,
            counted: Counts::default(),
            policy_saw: None,
        }
    }

    fn is_transition_to(&self, state: State) -> bool {
        self.transition.is_some_and(|t| t.to == state)
    }
}

/// The reference model: a configuration, a fresh trip policy and the log.
#[derive(Clone, Debug)]
pub struct Model {
    pub settings: Settings,
    /// The policy as made: replayed from the log whenever it is asked.
    fresh_policy: Policy,
    /// `SharedBreaker` and `StdBreaker`: closed and metrics-only admissions
    /// are lock-free and counted in `calls` when reported.
    shared: bool,
    facts: Vec<Fact>,
}

/// What the log says about the present (asked afresh for every event).
#[derive(Clone, Copy, Debug)]
struct Now {
    state: State,
    generation: u64,
    /// When the current state was entered.
    entered: u64,
    /// The index of the fact that started the current generation (0 if
    /// none did).
    since: usize,
    /// `Open`: the deadline, pulled back by the events since the opening
    /// (not yet by the one being decided).
    until: u64,
    /// `HalfOpen`: probes admitted in this generation and not reported.
    in_flight: u64,
    /// `HalfOpen`: this generation's probe results.
    probe_successes: u64,
    probe_failures: u64,
    probe_slow: u64,
    /// `HalfOpen` with probes in flight: the lease end, pulled back by the
    /// events since it started.
    lease_end: u64,
}

const GOLDEN_GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// Output number `k` (0 first) of SplitMix64 started at `seed`: the state
/// after `k + 1` steps is `seed + (k + 1) × gamma`, then mixed.
pub fn splitmix64(seed: u64, k: u64) -> u64 {
    let s = seed.wrapping_add(GOLDEN_GAMMA.wrapping_mul(k.wrapping_add(1)));
    let mut z = s;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Uniform in `[0, m]` from the 64-bit output `r`.
pub fn draw(r: u64, m: u64) -> u64 {
    if m == u64::MAX {
        r
    } else {
        ((r as u128 * (m as u128 + 1)) >> 64) as u64
    }
}

fn add(a: u64, b: u64) -> u64 {
    a.saturating_add(b)
}

fn sum(a: Counts, b: Counts) -> Counts {
    let mut c = Counts::default();
    c.calls = add(a.calls, b.calls);
    c.successes = add(a.successes, b.successes);
    c.failures = add(a.failures, b.failures);
    c.slow = add(a.slow, b.slow);
    c.ignored = add(a.ignored, b.ignored);
    c.rejected = add(a.rejected, b.rejected);
    c.stale = add(a.stale, b.stale);
    c
}

fn one_of(field: fn(&mut Counts) -> &mut u64) -> Counts {
    let mut c = Counts::default();
    *field(&mut c) = 1;
    c
}

fn reached(rate: Rate, part: u64, whole: u64) -> bool {
    whole > 0 && part * rate.1 >= rate.0 * whole
}

fn is_reopening(reason: TransitionReason) -> bool {
    matches!(
        reason,
        TransitionReason::ProbeFailed
            | TransitionReason::ProbeRateExceeded(_)
            | TransitionReason::ProbeLeaseExpired
    )
}

impl Backoff {
    /// The base open duration after `reopenings` reopenings since the last
    /// closing.
    pub fn base(&self, reopenings: u64) -> u64 {
        let mut base = self.initial;
        for _ in 0..reopenings {
            if self.exponential {
                let grown = base as u128 * self.multiplier.0 as u128 / self.multiplier.1 as u128;
                base = grown.min(u64::MAX as u128) as u64;
                base = base.min(self.max);
            }
        }
        base
    }

    /// The jittered open duration for base `d`, with the generator's output
    /// number `k`.
    pub fn jittered(&self, d: u64, k: u64) -> u64 {
        match self.jitter {
            0 => d,
            1 => draw(splitmix64(self.seed, k), d),
            _ => d / 2 + draw(splitmix64(self.seed, k), d - d / 2),
        }
    }

    /// The open durations a base `d` can give: `[low, high]`.
    pub fn bounds(&self, d: u64) -> (u64, u64) {
        match self.jitter {
            0 => (d, d),
            1 => (0, d),
            _ => (d / 2, d),
        }
    }
}

impl Model {
    pub fn new(settings: Settings, policy: Policy, shared: bool) -> Model {
        Model {
            settings,
            fresh_policy: policy,
            shared,
            facts: Vec::new(),
        }
    }

    /// The whole log.
    pub fn facts(&self) -> &[Fact] {
        &self.facts
    }

    // ----------------------------------------------------- questions

    fn transitions(&self) -> impl Iterator<Item = &Transition> + '_ {
        self.facts.iter().filter_map(|f| f.transition.as_ref())
    }

    /// Whether the call admitted at `permit` was slow when reported at `at`.
    fn is_slow(&self, permit: usize, at: u64) -> bool {
        let started = self.facts[permit].event.at();
        self.settings
            .slow_threshold
            .is_some_and(|t| at.saturating_sub(started) >= t)
    }

    /// The index of the last fact that satisfies `p`.
    fn last(&self, p: impl Fn(&Fact) -> bool) -> Option<usize> {
        self.facts.iter().rposition(p)
    }

    /// The counts: what the events since the last reset added.
    fn counts(&self) -> Counts {
        let from = self
            .last(|f| matches!(f.event, Event::Reset { .. }))
            .map_or(0, |i| i + 1);
        self.facts[from..]
            .iter()
            .fold(Counts::default(), |c, f| sum(c, f.counted))
    }

    /// The trip policy as the log left it: every record it was told and
    /// every emptying (each entry into closed or metrics-only), replayed on
    /// a fresh one.
    fn policy(&self) -> Policy {
        let mut policy = self.fresh_policy.clone();
        for f in &self.facts {
            if let Some((failed, slow)) = f.policy_saw {
                policy.record(failed, slow, f.event.at());
            }
            if let Some(t) = f.transition {
                if matches!(t.to, State::Closed | State::MetricsOnly) {
                    policy.reset(t.at.as_micros());
                }
            }
        }
        policy
    }

    /// The open duration of the next opening at `now` (`reopening`: a failed
    /// probe, a probe rate exceeded or a lease ended) and the deadline.
    fn open_until(&self, now: u64, reopening: bool) -> u64 {
        let after_closing = self
            .last(|f| f.is_transition_to(State::Closed))
            .map_or(0, |i| i + 1);
        let reopenings = self.facts[after_closing..]
            .iter()
            .filter(|f| f.transition.is_some_and(|t| is_reopening(t.reason)))
            .count() as u64
            + u64::from(reopening);
        let earlier_openings = self
            .facts
            .iter()
            .filter(|f| f.is_transition_to(State::Open))
            .count() as u64;
        let backoff = self.settings.backoff;
        let d = backoff.jittered(backoff.base(reopenings), earlier_openings);
        add(now, d)
    }

    /// The present, from the log.
    fn present(&self) -> Now {
        let s = &self.settings;
        let generation = self.transitions().fold(0u64, |g, _| g.wrapping_add(1));
        let start = self.last(|f| f.transition.is_some());
        let (state, entered, since) = match start {
            Some(i) => {
                let t = self.facts[i].transition.expect("a transition");
                (t.to, t.at.as_micros(), i)
            }
            None => (State::Closed, 0, 0),
        };
        let here = &self.facts[since..];
        let mut now = Now {
            state,
            generation,
            entered,
            since,
            until: 0,
            in_flight: 0,
            probe_successes: 0,
            probe_failures: 0,
            probe_slow: 0,
            lease_end: 0,
        };
        if state == State::Open {
            let opened = self.facts[since].opened_until.expect("an opening deadline");
            now.until = here
                .iter()
                .filter(|f| f.event.pulls_back_open_deadline())
                .map(|f| add(f.event.at(), s.backoff.max))
                .fold(opened, u64::min);
        }
        if state == State::HalfOpen {
            let probe = |i: usize| {
                matches!(self.facts[i].answer,
                    Answer::Admitted { state: State::HalfOpen, generation: g } if g == generation)
            };
            let admitted = (since..self.facts.len()).filter(|&i| probe(i)).count() as u64;
            let results: Vec<(Outcome, bool)> = here
                .iter()
                .filter_map(|f| match (f.event, f.answer) {
                    (
                        Event::Report {
                            permit, outcome, ..
                        },
                        Answer::Reported { stale: false },
                    ) if probe(permit) => Some((outcome, f.slow)),
                    _ => None,
                })
                .collect();
            now.in_flight = admitted - results.len() as u64;
            now.probe_successes = results.iter().filter(|r| r.0 == Outcome::Success).count() as u64;
            now.probe_failures = results.iter().filter(|r| r.0 == Outcome::Failure).count() as u64;
            now.probe_slow = results
                .iter()
                .filter(|r| r.0 != Outcome::Ignored && r.1)
                .count() as u64;
            if let Some(j) = (since..self.facts.len())
                .rev()
                .find(|&i| probe(i) && self.facts[i].starts_lease)
            {
                now.lease_end = self.facts[j..]
                    .iter()
                    .filter(|f| f.event.pulls_back())
                    .map(|f| add(f.event.at(), s.lease))
                    .fold(u64::MAX, u64::min);
            }
        }
        now
    }

    fn transition(&self, p: &Now, to: State, reason: TransitionReason, at: u64) -> Transition {
        Transition::new(
            p.state,
            to,
            Instant::from_micros(at),
            reason,
            p.generation.wrapping_add(1),
        )
    }

    /// Makes `fact` a transition into `Open` at `at`, with its deadline.
    fn open(&self, fact: &mut Fact, p: &Now, reason: TransitionReason, at: u64) -> u64 {
        let until = self.open_until(at, is_reopening(reason));
        fact.transition = Some(self.transition(p, State::Open, reason, at));
        fact.opened_until = Some(until);
        until
    }

    fn push(&mut self, fact: Fact) -> Fact {
        self.facts.push(fact);
        fact
    }

    // ------------------------------------------------------- events

    /// `try_acquire` at `now`. The permit, if any, is `self.facts().len() - 1`.
    pub fn acquire(&mut self, now: u64) -> Fact {
        let s = self.settings;
        let p = self.present();
        let event = Event::Acquire { at: now };
        let admit = |state, generation| Answer::Admitted { state, generation };
        let rejected = one_of(|c| &mut c.rejected);
        let call = one_of(|c| &mut c.calls);
        let fact = match p.state {
            State::Closed | State::MetricsOnly => {
                let mut f = Fact::new(event, admit(p.state, p.generation));
                // Lock-free admissions are counted when reported.
                if !self.shared {
                    f.counted = call;
                }
                f
            }
            State::Disabled => Fact::new(event, admit(State::Disabled, p.generation)),
            State::ForcedOpen => {
                let mut f = Fact::new(
                    event,
                    Answer::Rejected {
                        reason: RejectReason::ForcedOpen,
                        retry_after: None,
                    },
                );
                f.counted = rejected;
                f
            }
            State::Open => {
                let until = p.until.min(add(now, s.backoff.max));
                if now < until {
                    let mut f = Fact::new(
                        event,
                        Answer::Rejected {
                            reason: RejectReason::Open,
                            retry_after: Some(until - now),
                        },
                    );
                    f.counted = rejected;
                    f
                } else {
                    let mut f =
                        Fact::new(event, admit(State::HalfOpen, p.generation.wrapping_add(1)));
                    f.transition = Some(self.transition(
                        &p,
                        State::HalfOpen,
                        TransitionReason::OpenElapsed,
                        now,
                    ));
                    f.starts_lease = true;
                    f.counted = call;
                    f
                }
            }
            State::HalfOpen => {
                let lease_end = p.lease_end.min(add(now, s.lease));
                if p.in_flight > 0 && now >= lease_end {
                    let mut f = Fact::new(
                        event,
                        Answer::Rejected {
                            reason: RejectReason::Open,
                            retry_after: None,
                        },
                    );
                    let until = self.open(&mut f, &p, TransitionReason::ProbeLeaseExpired, now);
                    f.answer = Answer::Rejected {
                        reason: RejectReason::Open,
                        retry_after: Some(until - now),
                    };
                    f.counted = rejected;
                    f
                } else if p.in_flight >= s.max_probes {
                    let mut f = Fact::new(
                        event,
                        Answer::Rejected {
                            reason: RejectReason::HalfOpenFull,
                            retry_after: None,
                        },
                    );
                    f.counted = rejected;
                    f
                } else {
                    let mut f = Fact::new(event, admit(State::HalfOpen, p.generation));
                    f.starts_lease = p.in_flight == 0;
                    f.counted = call;
                    f
                }
            }
            other => unreachable!("the semantics table has no state {other:?}"),
        };
        self.push(fact)
    }

    /// `record(permit, outcome)` at `now`, `permit` being the index of the
    /// acquire that admitted the call.
    pub fn report(&mut self, permit: usize, outcome: Outcome, now: u64) -> Fact {
        let s = self.settings;
        let p = self.present();
        let (admitted_in, permit_generation) = match self.facts[permit].answer {
            Answer::Admitted { state, generation } => (state, generation),
            other => panic!("report of a permit never given: {other:?}"),
        };
        let event = Event::Report {
            permit,
            outcome,
            at: now,
        };
        // "While Disabled, nothing is counted."
        let counts_nothing = p.state == State::Disabled || admitted_in == State::Disabled;
        // A lock-free admission is counted in `calls` when reported, unless
        // a reset zeroed the counts it belonged to.
        let reset_since = self.facts[permit..]
            .iter()
            .any(|f| matches!(f.event, Event::Reset { .. }));
        let late_call = self.shared
            && matches!(admitted_in, State::Closed | State::MetricsOnly)
            && !reset_since
            && !counts_nothing;
        let mut counted = if late_call {
            one_of(|c| &mut c.calls)
        } else {
            Counts::default()
        };
        let stale_count = sum(
            counted,
            if counts_nothing {
                Counts::default()
            } else {
                one_of(|c| &mut c.stale)
            },
        );

        // 1. A lease that ended.
        if p.state == State::HalfOpen
            && p.in_flight > 0
            && now >= p.lease_end.min(add(now, s.lease))
        {
            let mut f = Fact::new(event, Answer::Reported { stale: true });
            self.open(&mut f, &p, TransitionReason::ProbeLeaseExpired, now);
            f.counted = stale_count;
            return self.push(f);
        }
        // 2. A stale permit.
        if permit_generation != p.generation {
            let mut f = Fact::new(event, Answer::Reported { stale: true });
            f.counted = stale_count;
            return self.push(f);
        }
        let mut f = Fact::new(event, Answer::Reported { stale: false });
        // 3. Ignored.
        if outcome == Outcome::Ignored {
            if !counts_nothing {
                counted = sum(counted, one_of(|c| &mut c.ignored));
            }
            f.counted = counted;
            return self.push(f);
        }
        // 4. Disabled.
        if p.state == State::Disabled {
            return self.push(f);
        }
        // 5 and 6: a success or a failure.
        let failed = outcome == Outcome::Failure;
        let slow = self.is_slow(permit, now);
        f.slow = slow;
        counted = sum(
            counted,
            if failed {
                one_of(|c| &mut c.failures)
            } else {
                one_of(|c| &mut c.successes)
            },
        );
        if slow {
            counted = sum(counted, one_of(|c| &mut c.slow));
        }
        f.counted = counted;
        match p.state {
            State::Closed | State::MetricsOnly => {
                f.policy_saw = Some((failed, slow));
                let trips = self.policy().record(failed, slow, now);
                if let (Some(rule), State::Closed) = (trips, p.state) {
                    self.open(&mut f, &p, TransitionReason::Tripped(rule), now);
                }
            }
            State::HalfOpen => {
                let successes = p.probe_successes + u64::from(!failed);
                let failures = p.probe_failures + u64::from(failed);
                let slow_probes = p.probe_slow + u64::from(slow);
                let close = |model: &Model, f: &mut Fact| {
                    f.transition = Some(model.transition(
                        &p,
                        State::Closed,
                        TransitionReason::ProbesSucceeded,
                        now,
                    ));
                };
                match s.rate_verdict {
                    None => {
                        if failed {
                            self.open(&mut f, &p, TransitionReason::ProbeFailed, now);
                        } else if successes >= s.successes_to_close {
                            close(self, &mut f);
                        }
                    }
                    Some((failure_rate, slow_rate)) => {
                        let results = successes + failures;
                        if results >= s.successes_to_close {
                            // The failure rate is named first when both are reached.
                            let rule = if reached(failure_rate, failures, results) {
                                Some(TripRule::FailureRate)
                            } else if slow_rate.is_some_and(|r| reached(r, slow_probes, results)) {
                                Some(TripRule::SlowCallRate)
                            } else {
                                None
                            };
                            if let Some(rule) = rule {
                                let reason = TransitionReason::ProbeRateExceeded(rule);
                                self.open(&mut f, &p, reason, now);
                            } else {
                                close(self, &mut f);
                            }
                        }
                    }
                }
            }
            other => panic!("a current permit met {other:?}"),
        }
        self.push(f)
    }

    /// `force_open` (`ForcedOpen`), `disable` (`Disabled`), `measure_only`
    /// (`MetricsOnly`) or `release` (`Closed`) at `now`.
    pub fn control(&mut self, to: State, now: u64) -> Fact {
        let p = self.present();
        let mut f = Fact::new(Event::Control { to, at: now }, Answer::Controlled);
        let moves = match to {
            State::Closed => matches!(
                p.state,
                State::ForcedOpen | State::Disabled | State::MetricsOnly
            ),
            manual => p.state != manual,
        };
        if moves {
            let reason = match to {
                State::ForcedOpen => TransitionReason::ForcedOpen,
                State::Disabled => TransitionReason::Disabled,
                State::MetricsOnly => TransitionReason::MetricsOnly,
                _ => TransitionReason::Released,
            };
            f.transition = Some(self.transition(&p, to, reason, now));
        }
        self.push(f)
    }

    /// `reset` at `now`.
    pub fn reset(&mut self, now: u64) -> Fact {
        let p = self.present();
        let mut f = Fact::new(Event::Reset { at: now }, Answer::Controlled);
        f.transition = Some(self.transition(&p, State::Closed, TransitionReason::Reset, now));
        self.push(f)
    }

    // ------------------------------------------------------ reading

    /// The window `(calls, failures, slow, minimum)` at `now`, if the policy
    /// has one.
    pub fn window(&self, now: u64) -> Option<(u64, u64, u64, u64)> {
        self.policy().window(now)
    }

    pub fn state(&self) -> State {
        self.present().state
    }

    /// In `Open`: the deadline as the events so far left it (before the
    /// pull-back of the next one).
    pub fn open_deadline(&self) -> Option<u64> {
        let p = self.present();
        (p.state == State::Open).then_some(p.until)
    }

    /// `metrics_at(now)`.
    pub fn metrics(&self, now: u64) -> Metrics {
        let s = &self.settings;
        let p = self.present();
        let window = self.window(now).filter(|w| w.0 > 0 && w.0 >= w.3);
        let rate = |part: u64, whole: u64| Ratio::new(part as u32, whole as u32);
        let next_probe_at = match p.state {
            State::Open => Some(p.until.min(add(now, s.backoff.max))),
            State::HalfOpen => {
                let lease_over = p.in_flight > 0 && now >= p.lease_end.min(add(now, s.lease));
                (p.in_flight < s.max_probes && !lease_over).then_some(now)
            }
            _ => None,
        };
        let mut m = Metrics::default();
        m.state = p.state;
        m.generation = p.generation;
        m.counts = self.counts();
        m.failure_rate = window.map(|w| rate(w.1, w.0));
        m.slow_rate = window.map(|w| rate(w.2, w.0));
        m.time_in_state = std::time::Duration::from_micros(now.saturating_sub(p.entered));
        m.next_probe_at = next_probe_at.map(Instant::from_micros);
        m.probes_in_flight = if p.state == State::HalfOpen {
            p.in_flight as u32
        } else {
            0
        };
        m
    }
}
