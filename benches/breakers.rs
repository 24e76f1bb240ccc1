//! breakerbox against the floor and against its peers, in one run.
//!
//! `bash benches/run.sh` runs them three times and turns criterion's output
//! into the README's tables (`benches/report.py`); `cargo bench` runs them once.
//!
//! Fairness: every subject makes the same trivial call ([`op`]) and its
//! result is consumed the same way (`is_ok()`, handed to criterion's
//! `black_box`); the two-thread runs pin their threads to distinct CPUs.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant as StdInstant};

use breakerbox::{
    Breaker, Clock, Config, ConsecutiveFailures, CountWindow, Instant, ManualClock, MonotonicClock,
    Ratio, Registry, SharedBreaker, SharedManualClock, StdBreaker, Thresholds, TimeWindow,
    TripPolicy,
};
use breakerbox_std::{CoarseClock, QuantaClock};
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion};
use failsafe::CircuitBreaker as _;

/// The protected call: trivial, successful, opaque to the optimiser.
#[inline(always)]
fn op() -> Result<u64, ()> {
    Ok(black_box(1))
}

/// The protected call, failing.
fn failing() -> Result<u64, ()> {
    black_box(Err(()))
}

/// The clock of the closed-path and recording benchmarks: it stands at
/// zero, and a closed breaker whose policy needs no time never reads it.
struct Unread;
impl Clock for Unread {
    fn now(&self) -> Instant {
        Instant::ZERO
    }
}

/// The core breakers with their default history (4 transitions).
fn core_breaker<P: TripPolicy, C: Clock>(config: Config, policy: P, clock: C) -> Breaker<P, C> {
    Breaker::new(config, policy, clock)
}

fn shared_breaker<P: TripPolicy, C: Clock>(
    config: Config,
    policy: P,
    clock: C,
) -> SharedBreaker<P, C> {
    SharedBreaker::new(config, policy, clock)
}

const LONG: Duration = Duration::from_secs(3600);

fn consecutive() -> ConsecutiveFailures {
    ConsecutiveFailures::new(5).unwrap()
}

/// recloser's default policy: a failure rate of 50 % over the last 100 calls.
fn window100() -> CountWindow<100> {
    CountWindow::new(Thresholds::new().failure_rate(Ratio::percent(50))).unwrap()
}

fn open_config() -> Config {
    Config::builder().open_duration(LONG).build().unwrap()
}

fn failsafe_consecutive() -> impl failsafe::CircuitBreaker + Sync {
    let backoff = failsafe::backoff::constant(Duration::from_secs(5));
    failsafe::Config::new()
        .failure_policy(failsafe::failure_policy::consecutive_failures(5, backoff))
        .build()
}

fn failsafe_default() -> impl failsafe::CircuitBreaker + Sync {
    failsafe::Config::new().build()
}

fn recloser_default() -> recloser::Recloser {
    recloser::Recloser::custom().build()
}

/// The same configuration for the lock-free breakers, windowed or not.
macro_rules! closed_subjects {
    ($g:expr, $policy:expr) => {{
        let mut core = core_breaker(Config::DEFAULT, $policy, Unread);
        $g.bench_function("core_breaker", |b| b.iter(|| core.call(op).is_ok()));
        let shared = shared_breaker(Config::DEFAULT, $policy, Unread);
        $g.bench_function("core_shared", |b| b.iter(|| shared.call(op).is_ok()));
        let std = StdBreaker::new(Config::DEFAULT, $policy);
        $g.bench_function("std_breaker", |b| b.iter(|| std.call(op).is_ok()));
    }};
}

fn closed(c: &mut Criterion) {
    let mut g = c.benchmark_group("closed_consecutive");
    floors(&mut g);
    closed_subjects!(g, consecutive());
    let failsafe = failsafe_consecutive();
    g.bench_function("failsafe", |b| b.iter(|| failsafe.call(op).is_ok()));
    g.finish();

    let mut g = c.benchmark_group("closed_window100");
    floors(&mut g);
    closed_subjects!(g, window100());
    let failsafe = failsafe_default();
    g.bench_function("failsafe_default", |b| b.iter(|| failsafe.call(op).is_ok()));
    let recloser = recloser_default();
    g.bench_function("recloser", |b| b.iter(|| recloser.call(op).is_ok()));
    g.finish();
}

/// A bare call, and a call behind one atomic load: what no breaker can beat.
fn floors(g: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    g.bench_function("bare_call", |b| b.iter(|| op().is_ok()));
    let admit = AtomicBool::new(true);
    g.bench_function("atomic_load", |b| {
        b.iter(|| {
            let r = if admit.load(Ordering::Acquire) {
                op()
            } else {
                Err(())
            };
            r.is_ok()
        })
    });
}

fn open(c: &mut Criterion) {
    let mut g = c.benchmark_group("open");
    g.bench_function("clock_monotonic", |b| b.iter(|| MonotonicClock.now()));
    let quanta = QuantaClock::new();
    g.bench_function("clock_quanta", |b| b.iter(|| quanta.now()));
    let coarse = CoarseClock::new().expect("quanta's upkeep thread");
    g.bench_function("clock_coarse", |b| b.iter(|| coarse.now()));

    let trip = ConsecutiveFailures::new(1).unwrap();
    let mut core = core_breaker(open_config(), trip, MonotonicClock);
    let _ = core.call(failing);
    g.bench_function("core_breaker", |b| b.iter(|| core.call(op).is_ok()));
    let shared = shared_breaker(open_config(), trip, MonotonicClock);
    let _ = shared.call(failing);
    g.bench_function("core_shared", |b| b.iter(|| shared.call(op).is_ok()));
    let std = StdBreaker::new(open_config(), trip);
    let _ = std.call(failing);
    g.bench_function("std_breaker", |b| b.iter(|| std.call(op).is_ok()));
    let std_quanta = StdBreaker::builder(open_config(), trip)
        .clock(quanta.clone())
        .build();
    let _ = std_quanta.call(failing);
    g.bench_function("std_breaker_quanta", |b| {
        b.iter(|| std_quanta.call(op).is_ok())
    });

    let std_coarse = StdBreaker::builder(open_config(), trip)
        .clock(coarse.clone())
        .build();
    let _ = std_coarse.call(failing);
    g.bench_function("std_breaker_coarse", |b| {
        b.iter(|| std_coarse.call(op).is_ok())
    });

    let failsafe = failsafe::Config::new()
        .failure_policy(failsafe::failure_policy::consecutive_failures(
            1,
            failsafe::backoff::constant(LONG),
        ))
        .build();
    let _ = failsafe.call(failing);
    g.bench_function("failsafe", |b| b.iter(|| failsafe.call(op).is_ok()));
    let recloser = recloser::Recloser::custom()
        .closed_len(1)
        .open_wait(LONG)
        .build();
    let _ = recloser.call(failing);
    let _ = recloser.call(failing);
    g.bench_function("recloser", |b| b.iter(|| recloser.call(op).is_ok()));
    for rejected in [
        core.call(op).is_err(),
        shared.call(op).is_err(),
        std.call(op).is_err(),
        std_quanta.call(op).is_err(),
        std_coarse.call(op).is_err(),
        failsafe.call(op).is_err(),
        recloser.call(op).is_err(),
    ] {
        assert!(rejected, "every subject must be open");
    }
    g.finish();
}

/// A probe admitted and recorded, over and over, in a half-open state that
/// never closes (it would need `u32::MAX` successes).
fn half_open(c: &mut Criterion) {
    let mut g = c.benchmark_group("half_open");
    let config = Config::builder()
        .open_duration(Duration::from_secs(1))
        .successes_to_close(u32::MAX)
        .build()
        .unwrap();
    let trip = ConsecutiveFailures::new(1).unwrap();
    let later = Instant::from_secs(2);

    let clock = ManualClock::new();
    let mut core = core_breaker(config, trip, &clock);
    let _ = core.call(failing);
    clock.set(later);
    assert!(core.call(op).is_ok(), "a probe");
    assert_eq!(core.state(), breakerbox::State::HalfOpen);
    g.bench_function("core_breaker", |b| b.iter(|| core.call(op).is_ok()));

    let clock = SharedManualClock::new();
    let shared = shared_breaker(config, trip, clock.clone());
    let _ = shared.call(failing);
    clock.set(later);
    assert!(shared.call(op).is_ok(), "a probe");
    assert_eq!(shared.state(), breakerbox::State::HalfOpen);
    g.bench_function("core_shared", |b| b.iter(|| shared.call(op).is_ok()));

    let clock = SharedManualClock::new();
    let std = StdBreaker::builder(config, trip)
        .clock(clock.clone())
        .build();
    let _ = std.call(failing);
    clock.set(later);
    assert!(std.call(op).is_ok(), "a probe");
    assert_eq!(std.state(), breakerbox::State::HalfOpen);
    g.bench_function("std_breaker", |b| b.iter(|| std.call(op).is_ok()));
    g.finish();
}

/// One failure in four: never trips a 50 % rate, never a no-op success.
fn pattern(i: &mut u32) -> Result<u64, ()> {
    *i = i.wrapping_add(1);
    if i.is_multiple_of(4) {
        failing()
    } else {
        op()
    }
}

fn rate_50() -> Thresholds {
    Thresholds::new().failure_rate(Ratio::percent(50))
}

/// Recording into windows of growing size: the cost must stay flat.
fn record(c: &mut Criterion) {
    fn count<const N: usize>(g: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>) {
        let mut breaker = core_breaker(
            Config::DEFAULT,
            CountWindow::<N>::new(rate_50()).unwrap(),
            Unread,
        );
        let mut i = 0;
        g.bench_function(format!("count_{N}"), |b| {
            b.iter(|| breaker.call(|| pattern(&mut i)).is_ok())
        });
        assert_eq!(breaker.state(), breakerbox::State::Closed);
    }
    fn time<const B: usize>(g: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>) {
        let clock = ManualClock::new();
        let window =
            TimeWindow::<B>::new(Duration::from_millis(100), rate_50().minimum_calls(1)).unwrap();
        let mut breaker = core_breaker(Config::DEFAULT, window, &clock);
        let mut i = 0;
        // A new bucket every 64 calls: rolling is part of the cost.
        g.bench_function(format!("time_{B}"), |b| {
            b.iter(|| {
                if i % 64 == 0 {
                    clock.advance(breakerbox::Duration::from_millis(100));
                }
                breaker.call(|| pattern(&mut i)).is_ok()
            })
        });
        assert_eq!(breaker.state(), breakerbox::State::Closed);
    }
    let mut g = c.benchmark_group("record");
    count::<16>(&mut g);
    count::<128>(&mut g);
    count::<1024>(&mut g);
    time::<10>(&mut g);
    time::<100>(&mut g);
    g.finish();
}

/// Runs `call` on two threads pinned to distinct CPUs, `iters` times each,
/// and gives the wall time per call in aggregate (both threads' calls).
fn two_threads(iters: u64, call: &(impl Fn() -> bool + Sync)) -> Duration {
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let start = Barrier::new(2);
    let spans: Vec<(StdInstant, StdInstant)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..2)
            .map(|t| {
                let core = cores.get(t % cores.len().max(1)).copied();
                let start = &start;
                s.spawn(move || {
                    if let Some(core) = core {
                        core_affinity::set_for_current(core);
                    }
                    start.wait();
                    let began = StdInstant::now();
                    for _ in 0..iters {
                        black_box(call());
                    }
                    (began, StdInstant::now())
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let began = spans.iter().map(|s| s.0).min().unwrap();
    let ended = spans.iter().map(|s| s.1).max().unwrap();
    // Per call in aggregate: criterion divides by `iters`, we ran twice that.
    ended.duration_since(began) / 2
}

macro_rules! two_thread_subject {
    ($g:expr, $name:expr, $call:expr) => {
        $g.bench_function($name, |b| b.iter_custom(|iters| two_threads(iters, &$call)));
    };
}

fn shared_by_two(c: &mut Criterion) {
    let mut g = c.benchmark_group("two_threads_consecutive");
    let admit = AtomicBool::new(true);
    two_thread_subject!(g, "atomic_load", || {
        let r = if admit.load(Ordering::Acquire) {
            op()
        } else {
            Err(())
        };
        r.is_ok()
    });
    let mutex = Mutex::new(core_breaker(Config::DEFAULT, consecutive(), Unread));
    two_thread_subject!(g, "core_breaker_mutex", || mutex
        .lock()
        .unwrap()
        .call(op)
        .is_ok());
    let shared = shared_breaker(Config::DEFAULT, consecutive(), Unread);
    two_thread_subject!(g, "core_shared", || shared.call(op).is_ok());
    let std = StdBreaker::new(Config::DEFAULT, consecutive());
    two_thread_subject!(g, "std_breaker", || std.call(op).is_ok());
    let failsafe = failsafe_consecutive();
    two_thread_subject!(g, "failsafe", || failsafe.call(op).is_ok());
    g.finish();

    let mut g = c.benchmark_group("two_threads_window100");
    let mutex = Mutex::new(core_breaker(Config::DEFAULT, window100(), Unread));
    two_thread_subject!(g, "core_breaker_mutex", || mutex
        .lock()
        .unwrap()
        .call(op)
        .is_ok());
    let shared = shared_breaker(Config::DEFAULT, window100(), Unread);
    two_thread_subject!(g, "core_shared", || shared.call(op).is_ok());
    let std = StdBreaker::new(Config::DEFAULT, window100());
    two_thread_subject!(g, "std_breaker", || std.call(op).is_ok());
    let failsafe = failsafe_default();
    two_thread_subject!(g, "failsafe_default", || failsafe.call(op).is_ok());
    let recloser = recloser_default();
    two_thread_subject!(g, "recloser", || recloser.call(op).is_ok());
    g.finish();
}

/// Breakers in the registry of the lookup benchmarks.
const REGISTERED: usize = 10_000;

/// The next index of this thread's walk over the registry's names: a
/// stride prime to their count, so each thread visits every breaker.
fn next_index() -> usize {
    thread_local! {
        static AT: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }
    AT.with(|at| {
        let i = at.get();
        at.set((i + 7_919) % REGISTERED);
        i
    })
}

/// A closed call on each of 10,000 breakers in turn: built directly, kept
/// as handles from a registry, or looked up in the registry per call.
fn registry(c: &mut Criterion) {
    let names: Vec<String> = (0..REGISTERED).map(|i| format!("host-{i}")).collect();
    let registry = Registry::new(|name| {
        StdBreaker::builder(Config::DEFAULT, consecutive())
            .name(name)
            .build()
    });
    let handles: Vec<_> = names.iter().map(|n| registry.get(n.as_str())).collect();
    // The same breakers built one by one, never in a registry.
    let built: Vec<_> = names
        .iter()
        .map(|n| {
            StdBreaker::builder(Config::DEFAULT, consecutive())
                .name(n)
                .build()
        })
        .collect();
    let direct = || built[next_index()].call(op).is_ok();
    let held = || handles[next_index()].call(op).is_ok();
    let lookup = || registry.get(names[next_index()].as_str()).call(op).is_ok();
    let lent = || registry.with(names[next_index()].as_str(), |b| b.call(op).is_ok());

    let mut g = c.benchmark_group("registry_10000");
    g.bench_function("direct", |b| b.iter(direct));
    g.bench_function("held", |b| b.iter(held));
    g.bench_function("lookup", |b| b.iter(lookup));
    g.bench_function("lent", |b| b.iter(lent));
    g.finish();
    let mut g = c.benchmark_group("two_threads_registry_10000");
    two_thread_subject!(g, "direct", direct);
    two_thread_subject!(g, "held", held);
    two_thread_subject!(g, "lookup", lookup);
    two_thread_subject!(g, "lent", lent);
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_millis(1500));
    targets = closed, open, half_open, record, shared_by_two, registry
}
criterion_main!(benches);
