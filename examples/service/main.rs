//! A real HTTP service on loopback that fails in phases (healthy, outage,
//! slow, recovered), and client threads calling two of its endpoints with a
//! real blocking HTTP client, each through its own breaker. The breakers
//! come from `examples/service/service.toml` into a registry; one listener
//! tells every transition with the breaker's name; the metrics are scraped
//! at the end, and a picture of every call and each breaker's state is
//! written to `target/service.svg` (or the path given). About 17 seconds.
//!
//! `cargo run --example service --features serde,metrics [-- picture.svg]`

mod timeline;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use breakerbox::{BreakersFile, CallError, Outcome, Registry};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use timeline::{CallMark, Ending, Timeline};

/// The service's phases: name, length, and how it answers.
const PHASES: [Phase; 4] = [
    Phase {
        name: "healthy",
        mark: '-',
        secs: 4,
        status: 200,
        delay_ms: 5,
    },
    Phase {
        name: "outage",
        mark: 'O',
        secs: 5,
        status: 503,
        delay_ms: 40,
    },
    Phase {
        name: "slow",
        mark: 's',
        secs: 4,
        status: 200,
        delay_ms: 200,
    },
    Phase {
        name: "recovered",
        mark: '+',
        secs: 4,
        status: 200,
        delay_ms: 5,
    },
];
const ENDPOINTS: [&str; 2] = ["inventory", "pricing"];
const CLIENTS: usize = 4;
const CLIENT_TIMEOUT: Duration = Duration::from_millis(250);
const SLOW: Duration = Duration::from_millis(150);
const PAUSE_BETWEEN_CALLS: Duration = Duration::from_millis(20);

struct Phase {
    name: &'static str,
    /// The phase in the strip at the end.
    mark: char,
    secs: u64,
    status: u16,
    delay_ms: u64,
}

impl Phase {
    /// Whether the service answers well in this phase.
    fn healthy(&self) -> bool {
        self.status == 200 && Duration::from_millis(self.delay_ms) < SLOW
    }
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

/// Per-phase tallies of what the clients saw, each call in the phase it
/// started in.
#[derive(Default)]
struct Tally {
    calls: AtomicU64,
    rejected: AtomicU64,
    failed: AtomicU64,
    slow: AtomicU64,
    succeeded: AtomicU64,
    failed_micros: AtomicU64,
}

fn main() {
    let picture = std::env::args_os()
        .nth(1)
        .map_or_else(|| PathBuf::from("target/service.svg"), PathBuf::from);

    // Metrics first: each breaker registers its series when it is built.
    let recorder = DebuggingRecorder::new();
    let scrape = recorder.snapshotter();
    recorder.install().expect("the only recorder");

    let start = Instant::now();
    let total = Duration::from_secs(PHASES.iter().map(|p| p.secs).sum());
    let tallies: Arc<[Tally; 4]> = Arc::default();
    let timeline = Arc::new(Timeline::default());

    // The service: a real HTTP server on an ephemeral loopback port.
    let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("a loopback port"));
    let port = server.server_addr().to_ip().expect("an IP address").port();
    let handlers: Vec<_> = (0..CLIENTS * 2)
        .map(|_| {
            let server = server.clone();
            thread::spawn(move || {
                while let Ok(request) = server.recv() {
                    let p = &PHASES[phase_at(start.elapsed())];
                    thread::sleep(Duration::from_millis(p.delay_ms));
                    let body = if p.status == 200 { "ok" } else { "overloaded" };
                    let response =
                        tiny_http::Response::from_string(body).with_status_code(p.status);
                    let _ = request.respond(response); // the client may have given up
                }
            })
        })
        .collect();

    // The breakers, from the file, each told to one listener that prints
    // its name with every transition.
    let file: BreakersFile = toml::from_str(include_str!("service.toml"))
        .expect("examples/service/service.toml is valid");
    let live = std::io::stdout().is_terminal();
    let heard = timeline.clone();
    let registry = Arc::new(Registry::new(move |name| {
        let endpoint = ENDPOINTS.iter().position(|e| *e == name);
        let heard = heard.clone();
        file.spec(name)
            .builder()
            .name(name)
            .on_transition(move |event| {
                let at = start.elapsed().as_secs_f64();
                if let Some(endpoint) = endpoint {
                    heard.transition(endpoint, at, event.transition.to);
                }
                let line = format!("{at:6.2}s  >> {event}");
                if live {
                    print!("\r\x1b[2K{line}\n");
                } else {
                    println!("{line}");
                }
            })
            .build()
    }));

    println!(
        "breakerbox: {CLIENTS} clients calling http://127.0.0.1:{port}/{{{}}} for {}s, \
         a breaker per endpoint\n",
        ENDPOINTS.join(","),
        total.as_secs()
    );
    println!(
        "phases: {}\n",
        PHASES.map(|p| format!("{} {}s", p.name, p.secs)).join(", ")
    );

    let done = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let (registry, tallies, done) = (registry.clone(), tallies.clone(), done.clone());
            let timeline = timeline.clone();
            thread::spawn(move || {
                let agent: ureq::Agent = ureq::Agent::config_builder()
                    .timeout_global(Some(CLIENT_TIMEOUT))
                    .http_status_as_error(true)
                    .build()
                    .into();
                let mut n = client;
                while !done.load(Ordering::Relaxed) {
                    n += 1;
                    let index = n % ENDPOINTS.len();
                    let endpoint = ENDPOINTS[index];
                    let url = format!("http://127.0.0.1:{port}/{endpoint}");
                    let began = Instant::now();
                    let tally = &tallies[phase_at(began - start)];
                    tally.calls.fetch_add(1, Ordering::Relaxed);
                    let result = registry.get(endpoint).call_classified(
                        || agent.get(&url).call().map(|_| ()),
                        |result| match result {
                            Ok(()) => Outcome::Success,
                            Err(_) => Outcome::Failure, // 5xx, timeouts, refused connections
                        },
                    );
                    let took = began.elapsed();
                    let ending = match result {
                        Ok(()) => Ending::Succeeded,
                        Err(CallError::Inner(_)) => Ending::Failed,
                        Err(_) => Ending::Rejected,
                    };
                    let counter = match ending {
                        Ending::Succeeded => &tally.succeeded,
                        Ending::Failed => &tally.failed,
                        Ending::Rejected => &tally.rejected,
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                    if ending == Ending::Failed {
                        let micros = took.as_micros() as u64;
                        tally.failed_micros.fetch_add(micros, Ordering::Relaxed);
                    }
                    let slow = took >= SLOW && ending != Ending::Rejected;
                    if slow {
                        tally.slow.fetch_add(1, Ordering::Relaxed);
                    }
                    timeline.call(CallMark {
                        endpoint: index,
                        at: (began - start).as_secs_f64(),
                        took_ms: took.as_secs_f64() * 1e3,
                        ending,
                        slow,
                    });
                    thread::sleep(PAUSE_BETWEEN_CALLS);
                }
            })
        })
        .collect();

    // Every 100 ms, the stale reports the breakers counted since the last
    // look go to the phase they arrived in, and the live status line (a
    // line a second when not on a terminal) shows the service's phase
    // against each breaker's state.
    let stale_total = || -> u64 {
        ENDPOINTS
            .iter()
            .map(|name| registry.get(*name).metrics().counts.stale)
            .sum()
    };
    let mut stale = [0u64; 4];
    let mut stale_seen = 0;
    let mut last_print = Duration::ZERO;
    while start.elapsed() < total {
        thread::sleep(Duration::from_millis(100));
        let elapsed = start.elapsed();
        let now = stale_total();
        stale[phase_at(elapsed)] += now - stale_seen;
        stale_seen = now;
        if !live && elapsed - last_print < Duration::from_secs(1) {
            continue;
        }
        last_print = elapsed;
        let states: Vec<String> = ENDPOINTS
            .iter()
            .map(|name| format!("{name} {:<9}", registry.get(*name).state().to_string()))
            .collect();
        let line = format!(
            "{:6.2}s  service {:<9}  {}",
            elapsed.as_secs_f64(),
            PHASES[phase_at(elapsed)].name,
            states.join("  ")
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
    stale[PHASES.len() - 1] += stale_total() - stale_seen;
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
    // The service's phase against each breaker's state, 200 ms a mark,
    // drawn from every transition the listeners heard.
    const STEP: Duration = Duration::from_millis(200);
    let end = total.as_secs_f64();
    println!("\none mark per 200 ms:");
    let service: String = (0..total.as_millis() / STEP.as_millis())
        .map(|i| PHASES[phase_at(STEP * i as u32)].mark)
        .collect();
    println!("  {:<9} {service}", "service");
    for (endpoint, name) in ENDPOINTS.iter().enumerate() {
        let strip = timeline.strip(endpoint, STEP.as_secs_f64(), end);
        println!("  {name:<9} {strip}");
    }
    println!(
        "  service: {}; breakers: . closed, X open at some time in the 200 ms, h half-open at some time",
        PHASES.map(|p| format!("{} {}", p.mark, p.name)).join(", ")
    );
    summary(&tallies, &stale);

    if let Some(dir) = picture.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let phases = PHASES.map(|p| (p.name, p.secs as f64));
    let slow_ms = SLOW.as_secs_f64() * 1e3;
    match timeline.draw(&picture, &ENDPOINTS, &phases, slow_ms, end) {
        Ok(()) => println!(
            "\nevery call and each breaker's state: {}",
            picture.display()
        ),
        Err(e) => eprintln!("\nno picture written to {}: {e}", picture.display()),
    }

    // What a dashboard scraping the breakers would show now.
    registry.export_metrics();
    println!("\nmetrics, as scraped at the end:");
    let mut series: Vec<String> = scrape
        .snapshot()
        .into_vec()
        .into_iter()
        .filter_map(|(key, _, _, value)| {
            let key = key.key();
            let labels: Vec<String> = key
                .labels()
                .map(|l| format!("{}=\"{}\"", l.key(), l.value()))
                .collect();
            let value = match value {
                DebugValue::Counter(0) => return None, // transitions that never happened
                DebugValue::Counter(n) => n.to_string(),
                DebugValue::Gauge(g) => g.0.to_string(),
                DebugValue::Histogram(_) => return None,
            };
            Some(format!("  {}{{{}}} {value}", key.name(), labels.join(",")))
        })
        .collect();
    series.sort();
    println!("{}", series.join("\n"));
}

fn summary(tallies: &[Tally; 4], stale: &[u64; 4]) {
    let get = |t: &Tally, f: fn(&Tally) -> &AtomicU64| f(t).load(Ordering::Relaxed);
    println!(
        "\n| phase     | calls | reached service | failures | slow | successes | rejected | stale |"
    );
    println!(
        "|-----------|------:|----------------:|---------:|-----:|----------:|---------:|------:|"
    );
    let mut totals = [0u64; 7];
    let (mut failed_micros, mut failed_calls) = (0u64, 0u64);
    let (mut rejected_failing, mut rejected_healthy) = (0u64, 0u64);
    for ((phase, t), &stale) in PHASES.iter().zip(tallies.iter()).zip(stale) {
        let row = [
            get(t, |t| &t.calls),
            // Let through by the breaker, in the phase the call started in
            // (the service may answer it a phase later).
            get(t, |t| &t.failed) + get(t, |t| &t.succeeded),
            get(t, |t| &t.failed),
            get(t, |t| &t.slow),
            get(t, |t| &t.succeeded),
            get(t, |t| &t.rejected),
            stale,
        ];
        failed_micros += get(t, |t| &t.failed_micros);
        failed_calls += row[2];
        if phase.healthy() {
            rejected_healthy += row[5];
        } else {
            rejected_failing += row[5];
        }
        for (sum, v) in totals.iter_mut().zip(row) {
            *sum += v;
        }
        println!(
            "| {:<9} | {:>5} | {:>15} | {:>8} | {:>4} | {:>9} | {:>8} | {:>5} |",
            phase.name, row[0], row[1], row[2], row[3], row[4], row[5], row[6]
        );
    }
    println!(
        "| **total** | {:>5} | {:>15} | {:>8} | {:>4} | {:>9} | {:>8} | {:>5} |",
        totals[0], totals[1], totals[2], totals[3], totals[4], totals[5], totals[6]
    );
    // Only a rejection while the service was failing spared a caller a
    // failing call; one after it recovered is the price of the backoff.
    let mean_failure = failed_micros.checked_div(failed_calls).unwrap_or(0);
    let saved = Duration::from_micros(mean_failure.saturating_mul(rejected_failing));
    println!(
        "\n{rejected_failing} calls were turned away while the service was failing (outage, \
         slow), each sparing its caller about {} ms of a failing call: {:.1} s in all. \
         {rejected_healthy} were turned away while it was healthy: the backoff's price, \
         paid until probes showed it had recovered.",
        mean_failure / 1_000,
        saved.as_secs_f64()
    );
    println!(
        "Slow counts calls of {} ms or more that reached the service; a call counts in the \
         phase it started in. Stale counts reports, in the phase they arrived in, of calls \
         admitted before a transition and ended after it: they change no count and no state, \
         so the breakers' own counts below (breakerbox_failures_total and the rest) leave \
         them out, and their sum is the stale column's.",
        SLOW.as_millis()
    );
}
