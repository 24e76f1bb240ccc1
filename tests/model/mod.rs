//! A reference model of the breaker, written from the contract in the
//! design brief rather than from the core's code: plain `u64` arithmetic,
//! `Vec`s of events, no cleverness. The model tests drive the real breakers
//! and this model with the same operations and compare them after each one.

#![allow(dead_code)] // each test binary uses its own part

use breakerbox::{Counts, Instant, RejectReason, State, TransitionReason};

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
    pub fn trips(&self, calls: u64, failures: u64, slow: u64) -> bool {
        if self.failure_count.is_some_and(|c| failures >= c) {
            return true;
        }
        calls >= self.minimum_calls
            && (Self::reached(self.failure_rate, failures, calls)
                || Self::reached(self.slow_rate, slow, calls))
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

    fn record(&mut self, failed: bool, slow: bool, now: u64) -> bool {
        match self {
            Policy::Either(a, b) => {
                let first = a.record(failed, slow, now);
                let second = b.record(failed, slow, now);
                first || second
            }
            Policy::Counts { events } => {
                events.push((failed, slow));
                let failures = events.iter().filter(|e| e.0).count() as u64;
                half_failed(events.len() as u64, failures)
            }
            Policy::Consecutive { threshold, run } => {
                *run = if failed { *run + 1 } else { 0 };
                *run >= *threshold
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

/// The open-duration settings.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    pub initial: u64,
    pub max: u64,
    pub multiplier: (u64, u64),
    /// 0 none, 1 full, 2 equal.
    pub jitter: u8,
}

impl Backoff {
    fn next(&self, current: u64) -> u64 {
        let grown = current as u128 * self.multiplier.0 as u128 / self.multiplier.1 as u128;
        grown.min(self.max as u128) as u64
    }

    /// The shortest and longest open time for a base duration `d`.
    pub fn bounds(&self, d: u64) -> (u64, u64) {
        match self.jitter {
            1 => (0, d),
            2 => (d / 2, d),
            _ => (d, d),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Closed,
    Open {
        until: u64,
    },
    HalfOpen {
        in_flight: u64,
        successes: u64,
        failures: u64,
        slow: u64,
        lease_until: u64,
    },
    ForcedOpen,
    Disabled,
    MetricsOnly,
}

impl Phase {
    pub fn state(&self) -> State {
        match self {
            Phase::Closed => State::Closed,
            Phase::Open { .. } => State::Open,
            Phase::HalfOpen { .. } => State::HalfOpen,
            Phase::ForcedOpen => State::ForcedOpen,
            Phase::Disabled => State::Disabled,
            Phase::MetricsOnly => State::MetricsOnly,
        }
    }
}

/// A permit as the model knows it.
#[derive(Clone, Copy, Debug)]
pub struct ModelPermit {
    pub generation: u64,
    pub started: u64,
    pub state: State,
    /// Counted when reported (a shared breaker's lock-free admission).
    pub counted_at_report: bool,
}

/// What an operation did, to compare with the breaker's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Change {
    pub from: State,
    pub to: State,
    pub reason: TransitionReason,
    pub generation: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admit {
    Admitted(State),
    Rejected(RejectReason, Option<u64>),
}

/// Half-open's rate verdict: the failure rate and maybe the slow-call rate.
pub type RateVerdict = ((u64, u64), Option<(u64, u64)>);

/// The configuration, as plain numbers (µs for times).
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    pub backoff: Backoff,
    pub max_probes: u64,
    pub successes_to_close: u64,
    pub lease: u64,
    pub slow_threshold: Option<u64>,
    pub rate_verdict: Option<RateVerdict>,
}

/// The model breaker.
#[derive(Clone, Debug)]
pub struct Model {
    pub settings: Settings,
    pub policy: Policy,
    /// Closed-state admissions are counted when reported (shared breakers).
    pub shared: bool,
    pub phase: Phase,
    pub generation: u64,
    pub entered_at: u64,
    pub open_base: u64,
    pub counts: Counts,
    /// The open deadline's bounds when jitter is on: the breaker's own
    /// deadline is checked against them and adopted.
    pub pending_jitter: Option<(u64, u64)>,
}

impl Model {
    pub fn new(settings: Settings, policy: Policy, shared: bool) -> Self {
        Model {
            settings,
            policy,
            shared,
            phase: Phase::Closed,
            generation: 0,
            entered_at: 0,
            open_base: settings.backoff.initial,
            counts: Counts::default(),
            pending_jitter: None,
        }
    }

    fn enter(&mut self, phase: Phase, reason: TransitionReason, now: u64) -> Change {
        let from = self.phase.state();
        self.phase = phase;
        self.generation += 1;
        self.entered_at = now;
        Change {
            from,
            to: phase.state(),
            reason,
            generation: self.generation,
        }
    }

    fn open(&mut self, reason: TransitionReason, now: u64) -> Change {
        let (lo, hi) = self.settings.backoff.bounds(self.open_base);
        let until = now.saturating_add(hi);
        if lo != hi {
            self.pending_jitter = Some((now.saturating_add(lo), until));
        }
        self.enter(Phase::Open { until }, reason, now)
    }

    fn reopen(&mut self, reason: TransitionReason, now: u64) -> Change {
        self.open_base = self.settings.backoff.next(self.open_base);
        self.open(reason, now)
    }

    fn close(&mut self, reason: TransitionReason, now: u64) -> Change {
        self.open_base = self.settings.backoff.initial;
        self.policy.reset(now);
        self.enter(Phase::Closed, reason, now)
    }

    /// Adopts the breaker's jittered deadline after checking its bounds.
    pub fn adopt_deadline(&mut self, actual: u64) -> Result<(), String> {
        if let (Some((lo, hi)), Phase::Open { until }) =
            (self.pending_jitter.take(), &mut self.phase)
        {
            if actual < lo || actual > hi {
                return Err(format!(
                    "open deadline {actual} outside its bounds [{lo}, {hi}]"
                ));
            }
            *until = actual;
        }
        Ok(())
    }

    /// The contract for clocks that jump: no open deadline lies further
    /// ahead of `now` than the longest open duration, no lease further than
    /// one lease.
    fn bound_deadlines(&mut self, now: u64) {
        let longest = self.settings.backoff.max;
        let lease = self.settings.lease;
        match &mut self.phase {
            Phase::Open { until } => *until = (*until).min(now.saturating_add(longest)),
            Phase::HalfOpen {
                in_flight,
                lease_until,
                ..
            } if *in_flight > 0 => *lease_until = (*lease_until).min(now.saturating_add(lease)),
            _ => {}
        }
    }

    pub fn acquire(&mut self, now: u64) -> (Admit, Option<ModelPermit>, Option<Change>) {
        self.bound_deadlines(now);
        let admitted = |m: &Model, state: State, counted_at_report: bool| {
            Some(ModelPermit {
                generation: m.generation,
                started: now,
                state,
                counted_at_report,
            })
        };
        match self.phase {
            Phase::Closed | Phase::MetricsOnly => {
                let state = self.phase.state();
                let deferred = self.shared;
                if !deferred {
                    self.counts.calls += 1;
                }
                (
                    Admit::Admitted(state),
                    admitted(self, state, deferred),
                    None,
                )
            }
            Phase::Disabled => (
                Admit::Admitted(State::Disabled),
                admitted(self, State::Disabled, false),
                None,
            ),
            Phase::Open { until } => {
                if now < until {
                    self.counts.rejected += 1;
                    return (
                        Admit::Rejected(RejectReason::Open, Some(until - now)),
                        None,
                        None,
                    );
                }
                let probes = Phase::HalfOpen {
                    in_flight: 1,
                    successes: 0,
                    failures: 0,
                    slow: 0,
                    lease_until: now.saturating_add(self.settings.lease),
                };
                let change = self.enter(probes, TransitionReason::OpenElapsed, now);
                self.counts.calls += 1;
                (
                    Admit::Admitted(State::HalfOpen),
                    admitted(self, State::HalfOpen, false),
                    Some(change),
                )
            }
            Phase::HalfOpen {
                in_flight,
                successes,
                failures,
                slow,
                lease_until,
            } => {
                if in_flight > 0 && now >= lease_until {
                    let change = self.reopen(TransitionReason::ProbeLeaseExpired, now);
                    self.counts.rejected += 1;
                    let Phase::Open { until } = self.phase else {
                        unreachable!()
                    };
                    return (
                        Admit::Rejected(RejectReason::Open, Some(until.saturating_sub(now))),
                        None,
                        Some(change),
                    );
                }
                if in_flight >= self.settings.max_probes {
                    self.counts.rejected += 1;
                    return (
                        Admit::Rejected(RejectReason::HalfOpenFull, None),
                        None,
                        None,
                    );
                }
                let lease_until = if in_flight == 0 {
                    now.saturating_add(self.settings.lease)
                } else {
                    lease_until
                };
                self.phase = Phase::HalfOpen {
                    in_flight: in_flight + 1,
                    successes,
                    failures,
                    slow,
                    lease_until,
                };
                self.counts.calls += 1;
                (
                    Admit::Admitted(State::HalfOpen),
                    admitted(self, State::HalfOpen, false),
                    None,
                )
            }
            Phase::ForcedOpen => {
                self.counts.rejected += 1;
                (Admit::Rejected(RejectReason::ForcedOpen, None), None, None)
            }
        }
    }

    /// Reports `outcome` (0 success, 1 failure, 2 ignored); `true` if stale.
    pub fn record(&mut self, permit: ModelPermit, outcome: u8, now: u64) -> (bool, Option<Change>) {
        if permit.counted_at_report {
            self.counts.calls += 1;
        }
        if matches!(self.phase, Phase::HalfOpen { .. }) {
            self.bound_deadlines(now);
        }
        if let Phase::HalfOpen {
            in_flight,
            lease_until,
            ..
        } = self.phase
        {
            if in_flight > 0 && now >= lease_until {
                let change = self.reopen(TransitionReason::ProbeLeaseExpired, now);
                self.counts.stale += 1;
                return (true, Some(change));
            }
        }
        if permit.generation != self.generation
            || matches!(self.phase, Phase::Open { .. } | Phase::ForcedOpen)
        {
            self.counts.stale += 1;
            return (true, None);
        }
        if outcome == 2 {
            if self.phase != Phase::Disabled {
                self.counts.ignored += 1;
            }
            if let Phase::HalfOpen { in_flight, .. } = &mut self.phase {
                *in_flight = in_flight.saturating_sub(1);
            }
            return (false, None);
        }
        if self.phase == Phase::Disabled {
            return (false, None);
        }
        let failed = outcome == 1;
        let slow = self
            .settings
            .slow_threshold
            .is_some_and(|t| now.saturating_sub(permit.started) >= t);
        if failed {
            self.counts.failures += 1;
        } else {
            self.counts.successes += 1;
        }
        if slow {
            self.counts.slow += 1;
        }
        match self.phase {
            Phase::Closed | Phase::MetricsOnly => {
                let trip = self.policy.record(failed, slow, now);
                if trip && self.phase == Phase::Closed {
                    return (false, Some(self.open(TransitionReason::Tripped, now)));
                }
                (false, None)
            }
            Phase::HalfOpen {
                in_flight,
                successes,
                failures,
                slow: slow_probes,
                lease_until,
            } => {
                let in_flight = in_flight.saturating_sub(1);
                match self.settings.rate_verdict {
                    None => {
                        if failed {
                            return (false, Some(self.reopen(TransitionReason::ProbeFailed, now)));
                        }
                        let successes = successes + 1;
                        self.phase = Phase::HalfOpen {
                            in_flight,
                            successes,
                            failures,
                            slow: slow_probes,
                            lease_until,
                        };
                        if successes >= self.settings.successes_to_close {
                            return (
                                false,
                                Some(self.close(TransitionReason::ProbesSucceeded, now)),
                            );
                        }
                        (false, None)
                    }
                    Some((failure_rate, slow_rate)) => {
                        let (successes, failures) = if failed {
                            (successes, failures + 1)
                        } else {
                            (successes + 1, failures)
                        };
                        let slow_probes = slow_probes + slow as u64;
                        self.phase = Phase::HalfOpen {
                            in_flight,
                            successes,
                            failures,
                            slow: slow_probes,
                            lease_until,
                        };
                        let results = successes + failures;
                        if results < self.settings.successes_to_close {
                            return (false, None);
                        }
                        let bad = Rules::reached(Some(failure_rate), failures, results)
                            || Rules::reached(slow_rate, slow_probes, results);
                        let change = if bad {
                            self.reopen(TransitionReason::ProbeRateExceeded, now)
                        } else {
                            self.close(TransitionReason::ProbesSucceeded, now)
                        };
                        (false, Some(change))
                    }
                }
            }
            _ => unreachable!("handled above"),
        }
    }

    pub fn manual(&mut self, to: State, now: u64) -> Option<Change> {
        match to {
            State::ForcedOpen | State::Disabled | State::MetricsOnly => {
                if self.phase.state() == to {
                    return None;
                }
                let (phase, reason) = match to {
                    State::ForcedOpen => (Phase::ForcedOpen, TransitionReason::ForcedOpen),
                    State::Disabled => (Phase::Disabled, TransitionReason::Disabled),
                    _ => (Phase::MetricsOnly, TransitionReason::MetricsOnly),
                };
                if to == State::MetricsOnly {
                    self.policy.reset(now);
                }
                Some(self.enter(phase, reason, now))
            }
            // Release.
            _ => match self.phase {
                Phase::ForcedOpen | Phase::Disabled | Phase::MetricsOnly => {
                    Some(self.close(TransitionReason::Released, now))
                }
                _ => None,
            },
        }
    }

    pub fn reset(&mut self, now: u64) -> Change {
        self.counts = Counts::default();
        self.close(TransitionReason::Reset, now)
    }

    /// (calls, failures, slow, minimum) of the policy's window, if any.
    pub fn window(&self, now: u64) -> Option<(u64, u64, u64, u64)> {
        self.policy.window(now)
    }

    pub fn next_probe_at(&self, now: u64) -> Option<u64> {
        match self.phase {
            Phase::Open { until } => Some(until.min(now.saturating_add(self.settings.backoff.max))),
            Phase::HalfOpen {
                in_flight,
                lease_until,
                ..
            } => {
                let lease_ended = in_flight > 0 && now >= lease_until;
                (in_flight < self.settings.max_probes && !lease_ended).then_some(now)
            }
            _ => None,
        }
    }

    pub fn probes_in_flight(&self) -> u64 {
        match self.phase {
            Phase::HalfOpen { in_flight, .. } => in_flight,
            _ => 0,
        }
    }

    pub fn time_in_state(&self, now: u64) -> u64 {
        now.saturating_sub(self.entered_at)
    }
}

/// An instant of the model's time.
pub fn at(now: u64) -> Instant {
    Instant::from_micros(now)
}
