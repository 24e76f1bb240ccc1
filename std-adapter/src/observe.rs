//! What the optional `log`, `tracing` and `metrics` features do with
//! transitions; without them, nothing. Metric handles are registered once,
//! when the breaker is built, so reporting a transition allocates nothing.

use crate::events::TransitionEvent;
#[cfg(feature = "metrics")]
use breakerbox_core::{Metrics, State};

/// Every state, in the order of [`state_code`].
#[cfg(feature = "metrics")]
const STATES: [State; 6] = [
    State::Closed,
    State::Open,
    State::HalfOpen,
    State::ForcedOpen,
    State::Disabled,
    State::MetricsOnly,
];

/// The `breakerbox_state` gauge's value for each state.
#[cfg(feature = "metrics")]
fn state_code(state: State) -> usize {
    match state {
        State::Closed => 0,
        State::Open => 1,
        State::HalfOpen => 2,
        State::ForcedOpen => 3,
        State::Disabled => 4,
        State::MetricsOnly => 5,
        // A state the core gains before this table does.
        _ => STATES.len(),
    }
}

/// The reporting side of one breaker.
pub(crate) struct Observer {
    name: Box<str>,
    #[cfg(feature = "metrics")]
    state: metrics::Gauge,
    #[cfg(feature = "metrics")]
    transitions: [metrics::Counter; 6],
    #[cfg(feature = "metrics")]
    counts: [metrics::Counter; 7],
    #[cfg(feature = "metrics")]
    rates: [metrics::Gauge; 2],
}

// As the listeners (see `Listeners`): the breaker only hands values to its
// metric handles and log macros, never reads them back, so a breaker that
// caught a panic may be used again.
impl std::panic::UnwindSafe for Observer {}
impl std::panic::RefUnwindSafe for Observer {}

impl Observer {
    pub(crate) fn new(name: String) -> Self {
        #[cfg(feature = "metrics")]
        let labels = [("breaker", name.clone())];
        Observer {
            #[cfg(feature = "metrics")]
            state: metrics::gauge!("breakerbox_state", &labels),
            #[cfg(feature = "metrics")]
            transitions: STATES.map(|to| {
                let labels = [("breaker", name.clone()), ("to", to.as_str().to_owned())];
                metrics::counter!("breakerbox_transitions_total", &labels)
            }),
            #[cfg(feature = "metrics")]
            counts: [
                "breakerbox_calls_total",
                "breakerbox_successes_total",
                "breakerbox_failures_total",
                "breakerbox_slow_calls_total",
                "breakerbox_ignored_total",
                "breakerbox_rejected_total",
                "breakerbox_stale_total",
            ]
            .map(|metric| metrics::counter!(metric, &labels)),
            #[cfg(feature = "metrics")]
            rates: ["breakerbox_failure_rate", "breakerbox_slow_rate"]
                .map(|metric| metrics::gauge!(metric, &labels)),
            name: name.into_boxed_str(),
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Whether transitions are reported anywhere without listeners.
    pub(crate) const ENABLED: bool = cfg!(any(
        feature = "log",
        feature = "tracing",
        feature = "metrics"
    ));

    /// Logs, traces and counts one transition, under the target
    /// `breakerbox`: a trip or a reopening at `warn`, the rest at `info`.
    #[allow(unused_variables)] // all uses are behind features
    pub(crate) fn transition(&self, event: &TransitionEvent<'_>) {
        let t = &event.transition;
        #[cfg(feature = "log")]
        {
            let level = match t.to {
                breakerbox_core::State::Open | breakerbox_core::State::ForcedOpen => {
                    log::Level::Warn
                }
                _ => log::Level::Info,
            };
            log::log!(target: "breakerbox", level, "{event}");
        }
        #[cfg(feature = "tracing")]
        {
            let open_for = event.open_for.map(tracing::field::debug);
            let rule = match t.reason {
                breakerbox_core::TransitionReason::Tripped(rule) => Some(rule.as_str()),
                _ => None,
            };
            match t.to {
                breakerbox_core::State::Open | breakerbox_core::State::ForcedOpen => {
                    tracing::warn!(
                        target: "breakerbox",
                        breaker = event.breaker,
                        from = t.from.as_str(),
                        to = t.to.as_str(),
                        reason = t.reason.as_str(),
                        rule,
                        open_for,
                        generation = t.generation,
                        "circuit breaker transition"
                    );
                }
                _ => tracing::info!(
                    target: "breakerbox",
                    breaker = event.breaker,
                    from = t.from.as_str(),
                    to = t.to.as_str(),
                    reason = t.reason.as_str(),
                    generation = t.generation,
                    "circuit breaker transition"
                ),
            }
        }
        #[cfg(feature = "metrics")]
        {
            self.state.set(state_code(t.to) as f64);
            self.transitions[state_code(t.to)].increment(1);
        }
    }

    /// Publishes a snapshot: the state gauge, the counts as counters and
    /// the rates as gauges (`-1` where there is no rate).
    #[cfg(feature = "metrics")]
    pub(crate) fn export(&self, m: &Metrics) {
        self.state.set(state_code(m.state) as f64);
        let c = m.counts;
        let values = [
            c.calls,
            c.successes,
            c.failures,
            c.slow,
            c.ignored,
            c.rejected,
            c.stale,
        ];
        for (counter, value) in self.counts.iter().zip(values) {
            counter.absolute(value);
        }
        for (gauge, rate) in self.rates.iter().zip([m.failure_rate, m.slow_rate]) {
            gauge.set(rate.map_or(-1.0, |r| {
                f64::from(r.numerator()) / f64::from(r.denominator())
            }));
        }
    }
}
