//! A real HTTP service on loopback that fails in phases (healthy, outage,
//! slow, recovered), and client threads calling it through one breaker with
//! a real blocking HTTP client. Prints the breaker's timeline as it happens
//! and a summary at the end. About 17 seconds, no arguments.
//!
//! `cargo run --example service`

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use breakerbox::{
    CallError, Config, ConsecutiveFailures, HalfOpenVerdict, Outcome, Ratio, State, StdBreaker,
    Thresholds, TimeWindow,
};

/// The service's phases: name, length, and how it answers.
const PHASES: [Phase; 4] = [
    Phase {
        name: "healthy",
        secs: 4,
        status: 200,
        delay_ms: 5,
    },
    Phase {
        name: "outage",
        secs: 5,
        status: 503,
        delay_ms: 40,
    },
    Phase {
        name: "slow",
        secs: 4,
        status: 200,
        delay_ms: 200,
    },
    Phase {
        name: "recovered",
        secs: 4,
        status: 200,
        delay_ms: 5,
    },
];
const CLIENTS: usize = 4;
const CLIENT_TIMEOUT: Duration = Duration::from_millis(250);
const PAUSE_BETWEEN_CALLS: Duration = Duration::from_millis(20);

struct Phase {
    name: &'static str,
    secs: u64,
    status: u16,
    delay_ms: u64,
}

/// Which phase `elapsed` falls in (the last one past the end).
fn phase_at(elapsed: Duration) -> usize {
    let mut end = 0;
    for (i, phase) in PHASES.iter().enumerate() {
        end += phase.secs;
        if elapsed < Duration::from_secs(end) {
            return i;
        }
    }
    PHASES.len() - 1
}

/// Per-phase tallies of what the clients saw.
#[derive(Default)]
struct Tally {
    calls: AtomicU64,
    reached: AtomicU64,
    rejected: AtomicU64,
    failed: AtomicU64,
    succeeded: AtomicU64,
    failed_micros: AtomicU64,
}

fn main() {
    let start = Instant::now();
    let total = Duration::from_secs(PHASES.iter().map(|p| p.secs).sum());
    let tallies: Arc<[Tally; 4]> = Arc::default();

    // The service: a real HTTP server on an ephemeral loopback port.
    let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("a loopback port"));
    let port = server.server_addr().to_ip().expect("an IP address").port();
    let url = format!("http://127.0.0.1:{port}/inventory");
    let handlers: Vec<_> = (0..CLIENTS * 2)
        .map(|_| {
            let (server, tallies) = (server.clone(), tallies.clone());
            thread::spawn(move || {
                while let Ok(request) = server.recv() {
                    let phase = phase_at(start.elapsed());
                    tallies[phase].reached.fetch_add(1, Ordering::Relaxed);
                    let p = &PHASES[phase];
                    thread::sleep(Duration::from_millis(p.delay_ms));
                    let body = if p.status == 200 {
                        "in stock"
                    } else {
                        "overloaded"
                    };
                    let response =
                        tiny_http::Response::from_string(body).with_status_code(p.status);
                    let _ = request.respond(response); // the client may have given up
                }
            })
        })
        .collect();

    // The breaker: 5 failures in a row, or 50 % failures or 60 % slow calls
    // (150 ms or more) over the last 5 s, trip it. It stays open 1 s,
    // doubling to 4 s while probes fail; 3 probes judged by the same rates
    // close or reopen it.
    let config = Config::builder()
        .exponential_backoff(Duration::from_secs(1), Duration::from_secs(4), 2, 1)
        .max_probes(2)
        .successes_to_close(3)
        .probe_lease(Duration::from_secs(2))
        .slow_call_threshold(Duration::from_millis(150))
        .half_open_verdict(HalfOpenVerdict::Rates {
            failure_rate: Ratio::percent(50),
            slow_rate: Some(Ratio::percent(60)),
        })
        .build()
        .expect("a valid configuration");
    let window = TimeWindow::<5>::new(
        Duration::from_secs(1),
        Thresholds::new()
            .failure_rate(Ratio::percent(50))
            .slow_rate(Ratio::percent(60))
            .minimum_calls(10),
    )
    .expect("valid thresholds");
    let policy = (ConsecutiveFailures::new(5).expect("a threshold"), window);
    let live = std::io::stdout().is_terminal();
    let breaker = StdBreaker::builder(config, policy)
        .name("inventory")
        .on_transition(move |event| {
            let at = start.elapsed().as_secs_f64();
            let line = format!("{at:6.2}s  >> {event}");
            if live {
                print!("\r\x1b[2K{line}\n");
            } else {
                println!("{line}");
            }
        })
        .build();

    println!(
        "breakerbox: {CLIENTS} clients calling {url} through one breaker for {}s\n",
        total.as_secs()
    );
    println!(
        "phases: {}\n",
        PHASES.map(|p| format!("{} {}s", p.name, p.secs)).join(", ")
    );

    let done = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (breaker, tallies, done, url) =
                (breaker.clone(), tallies.clone(), done.clone(), url.clone());
            thread::spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .timeout_global(Some(CLIENT_TIMEOUT))
                    .http_status_as_error(true)
                    .build()
                    .into();
                while !done.load(Ordering::Relaxed) {
                    let tally = &tallies[phase_at(start.elapsed())];
                    tally.calls.fetch_add(1, Ordering::Relaxed);
                    let began = Instant::now();
                    let result = breaker.call_classified(
                        || agent.get(&url).call().map(|_| ()),
                        |result| match result {
                            Ok(()) => Outcome::Success,
                            Err(_) => Outcome::Failure, // 5xx, timeouts, refused connections
                        },
                    );
                    match result {
                        Ok(()) => {
                            tally.succeeded.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(CallError::Rejected(_)) => {
                            tally.rejected.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(CallError::Inner(_)) => {
                            tally.failed.fetch_add(1, Ordering::Relaxed);
                            let micros = began.elapsed().as_micros() as u64;
                            tally.failed_micros.fetch_add(micros, Ordering::Relaxed);
                        }
                    }
                    thread::sleep(PAUSE_BETWEEN_CALLS);
                }
            })
        })
        .collect();

    // The live status line (a line a second when not on a terminal).
    let mut last_print = Duration::ZERO;
    while start.elapsed() < total {
        thread::sleep(Duration::from_millis(100));
        let elapsed = start.elapsed();
        if !live && elapsed - last_print < Duration::from_secs(1) {
            continue;
        }
        last_print = elapsed;
        let m = breaker.metrics();
        let line = format!(
            "{:6.2}s  service {:<9}  breaker {:<9}  calls {:>5}  rejected {:>5}  failed {:>4}",
            elapsed.as_secs_f64(),
            PHASES[phase_at(elapsed)].name,
            m.state,
            m.counts.calls + m.counts.rejected,
            m.counts.rejected,
            m.counts.failures,
        );
        if live {
            print!("\r\x1b[2K{line}");
            let _ = std::io::stdout().flush();
        } else {
            println!("{line}");
        }
    }
    done.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().expect("a client thread");
    }
    server.unblock();
    for _ in 0..handlers.len() {
        server.unblock();
    }
    for h in handlers {
        h.join().expect("a handler thread");
    }
    if live {
        println!();
    }
    summary(&tallies, breaker.state());
}

fn summary(tallies: &[Tally; 4], end_state: State) {
    let get = |t: &Tally, f: fn(&Tally) -> &AtomicU64| f(t).load(Ordering::Relaxed);
    println!("\n| phase     | calls | reached service | fast rejections | failures | successes | time saved |");
    println!("|-----------|------:|----------------:|----------------:|---------:|----------:|-----------:|");
    let mut totals = [0u64; 6];
    let (mut failed_micros, mut failed_calls) = (0u64, 0u64);
    for (phase, t) in PHASES.iter().zip(tallies.iter()) {
        let row = [
            get(t, |t| &t.calls),
            get(t, |t| &t.reached),
            get(t, |t| &t.rejected),
            get(t, |t| &t.failed),
            get(t, |t| &t.succeeded),
        ];
        failed_micros += get(t, |t| &t.failed_micros);
        failed_calls += row[3];
        for (sum, v) in totals.iter_mut().zip(row) {
            *sum += v;
        }
        println!(
            "| {:<9} | {:>5} | {:>15} | {:>15} | {:>8} | {:>9} | {:>10} |",
            phase.name, row[0], row[1], row[2], row[3], row[4], ""
        );
    }
    // Each rejected call would have spent about as long as a failed one did.
    let mean_failure = failed_micros.checked_div(failed_calls).unwrap_or(0);
    let saved = Duration::from_micros(mean_failure.saturating_mul(totals[2]));
    println!(
        "| **total** | {:>5} | {:>15} | {:>15} | {:>8} | {:>9} | {:>9.1}s |",
        totals[0],
        totals[1],
        totals[2],
        totals[3],
        totals[4],
        saved.as_secs_f64()
    );
    println!(
        "\nThe breaker ended {end_state}. It turned away {} calls without touching the service, each \
         saving about {} ms of waiting on a failing call.",
        totals[2],
        mean_failure / 1_000
    );
}
