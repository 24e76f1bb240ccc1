//! The logic of the fuzz targets, shared with an ordinary `cargo test` that
//! replays the committed seed corpus (`tests/fuzz_corpus.rs` at the root).
//!
//! - `ops`: a configuration and an operation stream decoded from the bytes,
//!   run against `Breaker` and `SharedBreaker` in lockstep: they must agree
//!   on every answer, and the invariants hold after every step.
//! - `config`: configurations, policies, clocks and conversions from raw
//!   values: never a panic; invalid values give a `ConfigError`.
//! - `clock`: anomalous clocks (backwards, frozen, jumping to the end of
//!   time): never a panic, and a clock step alone never trips or closes.

use arbitrary::{Arbitrary, Unstructured};
use breakerbox_core::{
    Breaker, Clock, Config, ConfigError, ConsecutiveFailures, CountWindow, Counts, Duration, Fixed,
    FixedConfig, HalfOpenVerdict, Instant, Jitter, NoClock, Outcome, Permit, Ratio, ReportStatus,
    SharedBreaker, State, Thresholds, TickExtender, TimeWindow, Transition, TransitionReason,
    TripPolicy,
};

/// A ratio as two raw numbers.
type RawRatio = (u32, u32);

/// Raw threshold values: failure rate, slow rate, failure count, minimum calls.
type RawThresholds = (Option<RawRatio>, Option<RawRatio>, Option<u32>, Option<u32>);

/// A configuration from raw values, valid or not.
#[derive(Arbitrary, Debug)]
pub struct RawConfig {
    open_us: u64,
    max_us: u64,
    multiplier: (u32, u32),
    exponential: bool,
    jitter: u8,
    seed: u64,
    max_probes: u32,
    successes_to_close: u32,
    lease_us: u64,
    slow_us: Option<u64>,
    rate_verdict: Option<(RawRatio, Option<RawRatio>)>,
}

impl RawConfig {
    /// Keeps the numbers small enough that a stream of a few hundred
    /// operations crosses many transitions.
    fn tame(mut self) -> Self {
        self.open_us %= 100_000;
        self.max_us %= 1_000_000;
        self.lease_us %= 100_000;
        self.max_probes %= 5;
        self.successes_to_close %= 5;
        self.slow_us = self.slow_us.map(|s| s % 50_000);
        self
    }

    pub fn build(&self) -> Result<Config, ConfigError> {
        let d = core::time::Duration::from_micros;
        let mut b = Config::builder()
            .max_probes(self.max_probes)
            .successes_to_close(self.successes_to_close)
            .probe_lease(d(self.lease_us))
            .jitter([Jitter::None, Jitter::Full, Jitter::Equal][self.jitter as usize % 3])
            .jitter_seed(self.seed);
        b = if self.exponential {
            b.exponential_backoff(
                d(self.open_us),
                d(self.max_us),
                self.multiplier.0,
                self.multiplier.1,
            )
        } else {
            b.open_duration(d(self.open_us))
        };
        if let Some(s) = self.slow_us {
            b = b.slow_call_threshold(d(s));
        }
        if let Some((failure, slow)) = self.rate_verdict {
            b = b.half_open_verdict(HalfOpenVerdict::Rates {
                failure_rate: Ratio::new(failure.0, failure.1),
                slow_rate: slow.map(|s| Ratio::new(s.0, s.1)),
            });
        }
        b.build()
    }
}

/// One operation of a stream.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub enum Op {
    Acquire,
    Report { index: u8, outcome: u8 },
    Lose { index: u8 },
    Forward(u16),
    FarForward(u32),
    Back(u16),
    EndOfTime,
    ForceOpen,
    Disable,
    MetricsOnly,
    Release,
    Reset,
}

fn outcome(raw: u8) -> Outcome {
    [Outcome::Success, Outcome::Failure, Outcome::Ignored][raw as usize % 3]
}

/// Checks one transition against the generation seen so far.
fn follow(generation: &mut u64, transitions: impl IntoIterator<Item = Transition>) {
    for t in transitions {
        assert_eq!(
            t.generation,
            *generation + 1,
            "one generation per transition: {t:?}"
        );
        *generation = t.generation;
    }
}

/// `ops`: `Breaker` and `SharedBreaker` in lockstep, with invariants.
pub fn ops(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(raw) = RawConfig::arbitrary(&mut u) else {
        return;
    };
    let Ok(config) = raw.tame().build() else {
        return;
    };
    let threshold = u.int_in_range(1..=6).unwrap_or(1);
    let policy = ConsecutiveFailures::new(threshold).expect("non-zero");
    let mut single: Breaker<ConsecutiveFailures, NoClock, 4> =
        Breaker::new(config, policy, NoClock);
    let shared: SharedBreaker<ConsecutiveFailures, NoClock, 4> =
        SharedBreaker::new(config, policy, NoClock);
    let mut permits: Vec<(Permit, Permit)> = Vec::new();
    let mut now = Instant::ZERO;
    let mut generation = 0;
    let mut reports = 0u64;

    // `arbitrary` keeps answering with defaults once the bytes run out: stop there.
    let mut ops = Vec::new();
    while ops.len() < 2_000 && !u.is_empty() {
        let Ok(op) = Op::arbitrary(&mut u) else { break };
        ops.push(op);
    }
    fixed_matches_runtime::<Rich, 4>(policy, &ops);
    fixed_matches_runtime::<Lean, 0>(policy, &ops);
    for &op in &ops {
        let before = single.metrics_at(now);
        match op {
            Op::Acquire => {
                let (a, b) = (single.try_acquire_at(now), shared.try_acquire_at(now));
                assert_eq!(a.transition, b.transition, "{op:?}");
                follow(&mut generation, a.transition);
                match (a.result, b.result) {
                    (Ok(p), Ok(q)) => {
                        assert_eq!((p.state(), p.generation()), (q.state(), q.generation()));
                        permits.push((p, q));
                    }
                    (Err(r), Err(s)) => {
                        assert_eq!(r, s);
                        if before.state == State::Open {
                            assert!(
                                before.next_probe_at.is_some_and(|until| now < until)
                                    || a.transition.is_some()
                            );
                        }
                    }
                    (x, y) => panic!("the breakers disagree: {x:?} / {y:?}"),
                }
            }
            Op::Report {
                index,
                outcome: raw,
            } if !permits.is_empty() => {
                let (p, q) = permits.remove(index as usize % permits.len());
                // While disabled nothing is counted (docs/semantics.md).
                let countable = before.state != State::Disabled && p.state() != State::Disabled;
                let (a, b) = (
                    single.record_at(p, outcome(raw), now),
                    shared.record_at(q, outcome(raw), now),
                );
                assert_eq!(a, b, "{op:?}");
                follow(&mut generation, a.transition);
                if countable {
                    reports += 1;
                }
                if a.status == ReportStatus::Stale && a.transition.is_none() {
                    let after = single.metrics_at(now);
                    assert_eq!(
                        (after.state, after.generation),
                        (before.state, before.generation)
                    );
                    assert_eq!(
                        after.counts.failures + after.counts.successes,
                        before.counts.failures + before.counts.successes
                    );
                }
                if matches!(
                    before.state,
                    State::ForcedOpen | State::Disabled | State::MetricsOnly
                ) {
                    assert_eq!(a.transition, None, "manual states ignore thresholds");
                }
            }
            Op::Lose { index } if !permits.is_empty() => {
                drop(permits.remove(index as usize % permits.len())); // lost: never reported
            }
            Op::Report { .. } | Op::Lose { .. } => {}
            Op::Forward(d) => now = now.saturating_add(Duration::from_micros(d as u64)),
            Op::FarForward(d) => now = now.saturating_add(Duration::from_micros(d as u64)),
            Op::Back(d) => now = now.saturating_sub(Duration::from_micros(d as u64)),
            Op::EndOfTime => now = Instant::MAX,
            Op::ForceOpen | Op::Disable | Op::MetricsOnly | Op::Release => {
                let a = match op {
                    Op::ForceOpen => single.force_open_at(now),
                    Op::Disable => single.disable_at(now),
                    Op::MetricsOnly => single.measure_only_at(now),
                    _ => single.release_at(now),
                };
                let b = shared
                    .with_breaker(|m| match op {
                        Op::ForceOpen => m.force_open_at(now),
                        Op::Disable => m.disable_at(now),
                        Op::MetricsOnly => m.measure_only_at(now),
                        _ => m.release_at(now),
                    })
                    .flatten();
                assert_eq!(a, b);
                follow(&mut generation, a);
            }
            Op::Reset => {
                let a = single.reset_at(now);
                let b = shared
                    .with_breaker(|m| m.reset_at(now))
                    .expect("not re-entered");
                assert_eq!(a, b);
                follow(&mut generation, a);
                reports = 0;
                assert_eq!(single.state(), State::Closed);
            }
        }
        let (m, n) = (single.metrics_at(now), shared.metrics_at(now));
        assert_eq!(
            (m.state, m.generation, m.next_probe_at),
            (n.state, n.generation, n.next_probe_at)
        );
        assert_eq!(m.generation, generation, "every transition was handed out");
        assert!(m.probes_in_flight <= config.max_probes(), "{m:?}");
        let c = m.counts;
        assert_eq!(
            c.successes + c.failures + c.ignored + c.stale,
            reports,
            "every report accounted for"
        );
        let d = n.counts;
        assert_eq!(
            (c.successes, c.failures, c.ignored, c.stale, c.rejected),
            (d.successes, d.failures, d.ignored, d.stale, d.rejected)
        );
        if m.state == State::Open {
            let until = m.next_probe_at.expect("open has a deadline");
            let longest = config.backoff().max();
            let since = single.last_transition().expect("opened by a transition").at;
            assert!(
                until.saturating_duration_since(since).to_core() <= longest,
                "open longer than the backoff allows"
            );
        }
    }
}

/// Every feature a configuration can turn on, fixed at compile time.
struct Rich;
impl FixedConfig for Rich {
    const CONFIG: Config = match Config::builder()
        .exponential_backoff(
            core::time::Duration::from_millis(2),
            core::time::Duration::from_millis(16),
            3,
            2,
        )
        .jitter(Jitter::Equal)
        .jitter_seed(0x5eed)
        .max_probes(3)
        .successes_to_close(2)
        .probe_lease(core::time::Duration::from_millis(4))
        .slow_call_threshold(core::time::Duration::from_micros(1_500))
        .half_open_verdict(HalfOpenVerdict::Rates {
            failure_rate: Ratio::percent(50),
            slow_rate: None,
        })
        .build()
    {
        Ok(config) => config,
        Err(_) => panic!("a valid configuration"),
    };
}

/// A firmware's configuration, fixed at compile time, keeping no counts
/// (and, with `H = 0`, no history).
struct Lean;
impl FixedConfig for Lean {
    const CONFIG: Config = match Config::builder()
        .open_duration(core::time::Duration::from_millis(5))
        .probe_lease(core::time::Duration::from_millis(3))
        .build()
    {
        Ok(config) => config,
        Err(_) => panic!("a valid configuration"),
    };
    const METRICS: bool = false;
}

/// `Breaker::fixed` and `Breaker::new` on the same configuration answer
/// every operation alike: fixing it at compile time changes nothing else
/// (but the counts and time in state a breaker without `METRICS` leaves
/// off, and the history of one with `H = 0`).
fn fixed_matches_runtime<K: FixedConfig, const H: usize>(policy: ConsecutiveFailures, ops: &[Op]) {
    let mut fixed: Breaker<_, NoClock, H, Fixed<K>> = Breaker::fixed(policy, NoClock);
    let mut runtime: Breaker<_, NoClock, 4> = Breaker::new(K::CONFIG, policy, NoClock);
    let mut permits: Vec<(Permit, Permit)> = Vec::new();
    let mut now = Instant::ZERO;
    for &op in ops {
        match op {
            Op::Acquire => {
                let (a, b) = (fixed.try_acquire_at(now), runtime.try_acquire_at(now));
                assert_eq!(a.transition, b.transition, "{op:?}");
                match (a.result, b.result) {
                    (Ok(p), Ok(q)) => permits.push((p, q)),
                    (Err(r), Err(s)) => assert_eq!(r, s),
                    (x, y) => panic!("fixed and runtime disagree: {x:?} / {y:?}"),
                }
            }
            Op::Report {
                index,
                outcome: raw,
            } if !permits.is_empty() => {
                let (p, q) = permits.remove(index as usize % permits.len());
                let slow = Duration::from_micros(u64::from(raw) * 20);
                let at = now.saturating_add(slow);
                let (a, b) = (
                    fixed.record_at(p, outcome(raw), at),
                    runtime.record_at(q, outcome(raw), at),
                );
                assert_eq!(a, b, "{op:?}");
            }
            Op::Lose { index } if !permits.is_empty() => {
                drop(permits.remove(index as usize % permits.len()));
            }
            Op::Report { .. } | Op::Lose { .. } => {}
            Op::Forward(d) => now = now.saturating_add(Duration::from_micros(d as u64)),
            Op::FarForward(d) => now = now.saturating_add(Duration::from_micros(d as u64)),
            Op::Back(d) => now = now.saturating_sub(Duration::from_micros(d as u64)),
            Op::EndOfTime => now = Instant::MAX,
            Op::ForceOpen => assert_eq!(fixed.force_open_at(now), runtime.force_open_at(now)),
            Op::Disable => assert_eq!(fixed.disable_at(now), runtime.disable_at(now)),
            Op::MetricsOnly => {
                assert_eq!(fixed.measure_only_at(now), runtime.measure_only_at(now))
            }
            Op::Release => assert_eq!(fixed.release_at(now), runtime.release_at(now)),
            Op::Reset => assert_eq!(fixed.reset_at(now), runtime.reset_at(now)),
        }
        let mut want = runtime.metrics_at(now);
        if !K::METRICS {
            want.counts = Counts::default();
            want.time_in_state = std::time::Duration::ZERO;
        }
        assert_eq!(fixed.metrics_at(now), want, "{op:?}");
        if H == 0 {
            assert_eq!(fixed.last_transition(), None);
        } else {
            assert_eq!(fixed.last_transition(), runtime.last_transition());
        }
    }
}

/// `config`: raw values never panic; invalid ones are a `ConfigError`.
pub fn config(data: &[u8]) {
    let mut u = Unstructured::new(data);
    if let Ok(raw) = RawConfig::arbitrary(&mut u) {
        match raw.build() {
            Ok(config) => {
                assert!(config.max_probes() >= 1 && config.successes_to_close() >= 1);
                assert!(!config.probe_lease().is_zero() && !config.backoff().initial().is_zero());
                assert!(config.backoff().max() >= config.backoff().initial());
                // A valid configuration runs.
                let mut b: Breaker = Breaker::new(config, ConsecutiveFailures::default(), NoClock);
                for t in [0, 1, u64::MAX / 2, u64::MAX] {
                    if let Ok(p) = b.try_acquire_at(Instant::from_micros(t)).result {
                        let _ = b.record_at(p, Outcome::Failure, Instant::from_micros(t));
                    }
                }
            }
            Err(e) => {
                assert!(!e.field().is_empty() && !e.as_str().is_empty());
            }
        }
    }
    let raw_thresholds: Result<RawThresholds, _> = Arbitrary::arbitrary(&mut u);
    if let Ok((fr, sr, fc, min)) = raw_thresholds {
        let mut t = Thresholds::new();
        if let Some((n, d)) = fr {
            t = t.failure_rate(Ratio::new(n, d));
        }
        if let Some((n, d)) = sr {
            t = t.slow_rate(Ratio::new(n, d));
        }
        if let Some(c) = fc {
            t = t.failure_count(c);
        }
        if let Some(m) = min {
            t = t.minimum_calls(m);
        }
        let bucket = core::time::Duration::from_micros(u.arbitrary::<u64>().unwrap_or(0));
        exercise(CountWindow::<8>::new(t));
        exercise(TimeWindow::<4>::new(bucket, t));
    }
    if let Ok(threshold) = u.arbitrary::<u32>() {
        assert_eq!(ConsecutiveFailures::new(threshold).is_err(), threshold == 0);
    }
    if let Ok((bits, raw)) = u.arbitrary::<(u32, u32)>() {
        match TickExtender::new(bits) {
            Ok(mut e) => {
                assert!((1..=32).contains(&bits));
                let _ = e.extend(raw);
            }
            Err(e) => assert_eq!(e, ConfigError::CounterWidth),
        }
    }
    if let Ok((micros, n, d)) = u.arbitrary::<(u64, u32, u32)>() {
        let scaled = Ratio::new(n, d).scale(Duration::from_micros(micros));
        if d != 0 && n >= d {
            assert!(
                scaled >= Duration::from_micros(micros),
                "a multiplier of at least 1 never shrinks"
            );
        }
    }
    if let Ok((secs, nanos)) = u.arbitrary::<(u64, u32)>() {
        let std = core::time::Duration::new(secs, nanos % 1_000_000_000);
        let ours = Duration::from(std);
        assert!(ours == Duration::MAX || ours.to_core() <= std);
    }
}

fn exercise<P: TripPolicy>(policy: Result<P, ConfigError>) {
    if let Ok(policy) = policy {
        let mut b: Breaker<P> = Breaker::new(Config::DEFAULT, policy, NoClock);
        for i in 0..20u64 {
            let t = Instant::from_micros(i.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            if let Ok(p) = b.try_acquire_at(t).result {
                let _ = b.record_at(
                    p,
                    if i % 3 == 0 {
                        Outcome::Success
                    } else {
                        Outcome::Failure
                    },
                    t,
                );
            }
            let _ = b.metrics_at(t);
        }
    }
}

/// A clock that answers whatever the fuzzer says.
struct Scripted<'a> {
    times: core::cell::RefCell<Unstructured<'a>>,
}

impl Clock for Scripted<'_> {
    fn now(&self) -> Instant {
        let mut u = self.times.borrow_mut();
        let raw: u8 = u.arbitrary().unwrap_or(0);
        match raw % 8 {
            0 => Instant::MAX,
            1 => Instant::ZERO,
            _ => Instant::from_micros(u.arbitrary::<u32>().unwrap_or(0) as u64 * 100),
        }
    }
}

/// `clock`: anomalous clocks never panic, and no clock step alone trips or
/// closes the breaker.
pub fn clock(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(raw) = RawConfig::arbitrary(&mut u) else {
        return;
    };
    let Ok(config) = raw.tame().build() else {
        return;
    };
    let Ok(choices) = u.bytes(u.len() / 2) else {
        return;
    };
    let clock = Scripted {
        times: core::cell::RefCell::new(Unstructured::new(u.take_rest())),
    };
    let window = TimeWindow::<4>::new(
        core::time::Duration::from_millis(1),
        Thresholds::new()
            .failure_rate(Ratio::percent(50))
            .minimum_calls(2),
    )
    .expect("valid");
    let mut b: Breaker<_, _> = Breaker::new(
        config,
        (ConsecutiveFailures::new(3).expect("non-zero"), window),
        &clock,
    );
    let mut permits = Vec::new();
    for &choice in choices {
        match choice % 4 {
            0 | 1 => {
                let admission = b.try_acquire();
                if let Some(t) = admission.transition {
                    assert!(
                        matches!(
                            t.reason,
                            TransitionReason::OpenElapsed | TransitionReason::ProbeLeaseExpired
                        ),
                        "an acquire opened a probe or ended a lease, nothing else: {t:?}"
                    );
                }
                if let Ok(p) = admission.result {
                    permits.push(p);
                }
            }
            _ if !permits.is_empty() => {
                let p = permits.swap_remove(choice as usize % permits.len());
                let outcome = outcome(choice / 4);
                let report = b.record(p, outcome);
                if let Some(t) = report.transition {
                    // By rate, a failure may close and a success may reopen.
                    let by_rate =
                        matches!(config.half_open_verdict(), HalfOpenVerdict::Rates { .. });
                    let allowed = match t.reason {
                        TransitionReason::Tripped(_) => outcome != Outcome::Ignored,
                        TransitionReason::ProbesSucceeded => outcome == Outcome::Success || by_rate,
                        TransitionReason::ProbeFailed => outcome == Outcome::Failure,
                        TransitionReason::ProbeRateExceeded(_) => {
                            by_rate && outcome != Outcome::Ignored
                        }
                        TransitionReason::ProbeLeaseExpired => true,
                        _ => false,
                    };
                    assert!(allowed, "{outcome:?} caused {t:?}");
                }
            }
            _ => {}
        }
        let m = b.metrics();
        assert!(m.probes_in_flight <= config.max_probes());
        if let Some(w) = b.policy().1.window(Instant::ZERO) {
            assert!(w.failures <= w.calls && w.slow <= w.calls);
        }
    }
    // A wrapping counter read at any values never goes backwards once extended.
    let mut extender = TickExtender::new(16).expect("valid");
    let mut last = 0;
    for &raw in choices {
        let now = extender.extend(raw as u32 * 257);
        assert!(now >= last, "extended ticks went backwards");
        last = now;
    }
}
