//! What the optional `log`, `tracing` and `metrics` features do with
//! transitions; without them, nothing.

use breakerbox_core::Transition;
#[cfg(feature = "metrics")]
use breakerbox_core::{Metrics, State};

/// Logs, traces and exports one transition of the breaker called `name`.
#[allow(unused_variables)] // all uses are behind features
pub(crate) fn transition(name: &str, t: &Transition) {
    #[cfg(feature = "log")]
    {
        let level = match t.to {
            breakerbox_core::State::Open | breakerbox_core::State::ForcedOpen => log::Level::Warn,
            _ => log::Level::Info,
        };
        log::log!(level, "circuit breaker {name}: {t}");
    }
    #[cfg(feature = "tracing")]
    tracing::info!(
        breaker = name,
        from = t.from.as_str(),
        to = t.to.as_str(),
        reason = ?t.reason,
        generation = t.generation,
        "circuit breaker transition"
    );
    #[cfg(feature = "metrics")]
    {
        let labels = [("breaker", name.to_owned())];
        metrics::gauge!("breakerbox_state", &labels).set(state_code(t.to));
        let to = [
            ("breaker", name.to_owned()),
            ("to", t.to.as_str().to_owned()),
        ];
        metrics::counter!("breakerbox_transitions_total", &to).increment(1);
    }
}

/// The `breakerbox_state` gauge's value for each state.
#[cfg(feature = "metrics")]
pub(crate) fn state_code(state: State) -> f64 {
    match state {
        State::Closed => 0.0,
        State::Open => 1.0,
        State::HalfOpen => 2.0,
        State::ForcedOpen => 3.0,
        State::Disabled => 4.0,
        State::MetricsOnly => 5.0,
    }
}

/// Exports a snapshot through the `metrics` facade.
#[cfg(feature = "metrics")]
pub(crate) fn export(name: &str, m: &Metrics) {
    let labels = [("breaker", name.to_owned())];
    metrics::gauge!("breakerbox_state", &labels).set(state_code(m.state));
    let c = m.counts;
    for (metric, value) in [
        ("breakerbox_calls_total", c.calls),
        ("breakerbox_successes_total", c.successes),
        ("breakerbox_failures_total", c.failures),
        ("breakerbox_slow_calls_total", c.slow),
        ("breakerbox_ignored_total", c.ignored),
        ("breakerbox_rejected_total", c.rejected),
        ("breakerbox_stale_total", c.stale),
    ] {
        metrics::counter!(metric, &labels).absolute(value);
    }
}
