//! The classic scenario on a manual clock: three failures trip the breaker,
//! it rejects for five seconds, a probe fails and reopens it, and a later
//! probe closes it. Prints every transition as it happens.
//!
//! `cargo run --example three_states`

use breakerbox::{
    Breaker, Clock, Config, ConsecutiveFailures, Duration, ManualClock, Outcome, Transition,
};

fn main() {
    let clock = ManualClock::new();
    let config = Config::builder()
        .open_duration(core::time::Duration::from_secs(5))
        .build()
        .expect("a valid configuration");
    let policy = ConsecutiveFailures::new(3).expect("a non-zero threshold");
    let mut breaker = Breaker::new(config, policy, &clock);

    // (seconds to wait first, does the service answer?)
    let script = [
        (0, true),
        (1, false),
        (1, false),
        (1, false), // third failure in a row: trips
        (1, true),  // rejected: open for 5 s
        (2, true),  // still rejected
        (2, false), // 5 s passed: a probe goes through, fails, reopens
        (5, true),  // 5 s again: a probe succeeds and closes
        (1, true),
    ];

    println!("breakerbox: three states (3 failures trip, 5 s open)\n");
    for (wait, healthy) in script {
        clock.advance(Duration::from_secs(wait));
        let at = clock.now().to_string();
        // The two-step form hands back every transition it causes.
        let admission = breaker.try_acquire();
        show(admission.transition);
        match admission.result {
            Err(rejected) => println!("{at:>8}  call rejected: {rejected}"),
            Ok(permit) => {
                let outcome = if healthy {
                    Outcome::Success
                } else {
                    Outcome::Failure
                };
                println!(
                    "{at:>8}  call {}",
                    if healthy { "-> data" } else { "-> HTTP 503" }
                );
                show(breaker.record(permit, outcome).transition);
            }
        }
    }
    let m = breaker.metrics();
    println!(
        "\nend: {} after {} calls admitted, {} failures, {} rejected",
        m.state, m.counts.calls, m.counts.failures, m.counts.rejected
    );
}

fn show(transition: Option<Transition>) {
    if let Some(t) = transition {
        println!("{:>8}  breaker {} -> {} ({:?})", "", t.from, t.to, t.reason);
    }
}
