//! What the `log`, `tracing` and `metrics` features report. Run with
//! `cargo test -p breakerbox-std --all-features`.
#![cfg(not(loom))]
#![allow(dead_code, unused_imports)] // each part is behind its feature

use std::sync::Mutex;

use breakerbox_std::{Config, ConsecutiveFailures, Duration, SharedManualClock, StdBreaker};

/// Trips the breaker named `name`, lets it probe, and closes it: three transitions.
fn cycle(name: &str) -> StdBreaker<ConsecutiveFailures, SharedManualClock> {
    let clock = SharedManualClock::new();
    let breaker = StdBreaker::builder(Config::DEFAULT, ConsecutiveFailures::new(1).unwrap())
        .clock(clock.clone())
        .name(name)
        .build();
    let _ = breaker.call(|| Err::<(), _>(()));
    clock.advance(Duration::from_secs(5));
    let _ = breaker.call(|| Ok::<_, ()>(()));
    breaker
}

/// Serialises these tests: they install process-wide hooks, and tracing
/// caches an event's interest process-wide, so one test's breaker meeting an
/// event with no subscriber must not race the tracing test.
static GLOBAL: Mutex<()> = Mutex::new(());

#[cfg(feature = "log")]
mod log_feature {
    use super::*;

    struct Capture(Mutex<Vec<(log::Level, String, String)>>);

    impl log::Log for Capture {
        fn enabled(&self, _: &log::Metadata) -> bool {
            true
        }
        fn log(&self, record: &log::Record) {
            self.0.lock().unwrap().push((
                record.level(),
                record.target().to_owned(),
                record.args().to_string(),
            ));
        }
        fn flush(&self) {}
    }

    static LOGGER: Capture = Capture(Mutex::new(Vec::new()));

    #[test]
    fn transitions_are_logged() {
        let _g = GLOBAL.lock().unwrap();
        log::set_logger(&LOGGER).unwrap();
        log::set_max_level(log::LevelFilter::Info);
        cycle("payments");
        let lines: Vec<_> = LOGGER
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, _, l)| l.contains("payments"))
            .cloned()
            .collect();
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert!(lines.iter().all(|(_, target, _)| target == "breakerbox"));
        assert_eq!(lines[0].0, log::Level::Warn, "opening is a warning");
        assert_eq!(
            lines[0].2,
            "breaker payments: closed -> open (tripped by consecutive failures), probes again in 5s"
        );
        assert_eq!(
            lines[1].2,
            "breaker payments: open -> half-open (open duration elapsed)"
        );
        assert_eq!(lines[2].0, log::Level::Info);
        assert_eq!(
            lines[2].2,
            "breaker payments: half-open -> closed (probes succeeded)"
        );
    }
}

#[cfg(feature = "tracing")]
mod tracing_feature {
    use super::*;
    use std::sync::Arc;
    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing::{Event, Metadata, Subscriber};

    #[derive(Default, Clone)]
    struct Events(Arc<Mutex<Vec<(String, String)>>>);

    struct Fields(String);
    impl Visit for Fields {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            self.0.push_str(&format!("{}={:?} ", field.name(), value));
        }
    }

    impl Subscriber for Events {
        fn enabled(&self, _: &Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &Attributes<'_>) -> Id {
            Id::from_u64(1)
        }
        fn record(&self, _: &Id, _: &Record<'_>) {}
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, event: &Event<'_>) {
            let mut fields = Fields(String::new());
            event.record(&mut fields);
            let target = event.metadata().target().to_owned();
            self.0.lock().unwrap().push((target, fields.0));
        }
        fn enter(&self, _: &Id) {}
        fn exit(&self, _: &Id) {}
    }

    #[test]
    fn transitions_are_traced() {
        // tracing caches each event's interest process-wide: a test on another
        // thread that meets the event first, with no subscriber, may leave
        // "never" cached while this one runs.
        let _g = GLOBAL.lock().unwrap();
        let events = Events::default();
        tracing::subscriber::with_default(events.clone(), || {
            tracing::callsite::rebuild_interest_cache();
            cycle("search")
        });
        let seen = events.0.lock().unwrap();
        assert_eq!(seen.len(), 3, "{seen:?}");
        assert!(seen.iter().all(|(target, _)| target == "breakerbox"));
        let fields: Vec<&str> = seen.iter().map(|(_, f)| f.as_str()).collect();
        for part in [
            "breaker=\"search\"",
            "to=\"open\"",
            "reason=\"tripped\"",
            "rule=\"consecutive failures\"",
            "open_for=5s",
        ] {
            assert!(fields[0].contains(part), "{part} in {}", fields[0]);
        }
        assert!(fields[2].contains("to=\"closed\""), "{}", fields[2]);
        assert!(!fields[2].contains("open_for"), "{}", fields[2]);
    }
}

#[cfg(feature = "metrics")]
mod metrics_feature {
    use super::*;
    use metrics::{
        Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit,
    };
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    /// Keeps every counter and gauge by name and labels.
    #[derive(Default)]
    struct Values(Mutex<HashMap<String, Arc<AtomicU64>>>);

    impl Values {
        fn slot(&self, key: &Key) -> Arc<AtomicU64> {
            let labels: Vec<String> = key
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            let name = format!("{}{{{}}}", key.name(), labels.join(","));
            self.0.lock().unwrap().entry(name).or_default().clone()
        }
        fn get(&self, name: &str) -> Option<u64> {
            self.0
                .lock()
                .unwrap()
                .get(name)
                .map(|v| v.load(Ordering::SeqCst))
        }
    }

    impl Recorder for Values {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
            Counter::from_arc(self.slot(key))
        }
        fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
            Gauge::from_arc(self.slot(key))
        }
        fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
            Histogram::noop()
        }
    }

    #[test]
    fn state_and_counts_are_exported() {
        // Its breaker's transitions meet the tracing test's callsite too.
        let _g = GLOBAL.lock().unwrap();
        let values = Values::default();
        metrics::with_local_recorder(&values, || {
            let breaker = cycle("stock");
            let state = values
                .get("breakerbox_state{breaker=stock}")
                .map(f64::from_bits);
            assert_eq!(state, Some(0.0), "closed again");
            assert_eq!(
                values.get("breakerbox_transitions_total{breaker=stock,to=open}"),
                Some(1)
            );
            for _ in 0..3 {
                let _ = breaker.call(|| Ok::<_, ()>(()));
            }
            breaker.export_metrics();
            assert_eq!(values.get("breakerbox_calls_total{breaker=stock}"), Some(5));
            assert_eq!(
                values.get("breakerbox_successes_total{breaker=stock}"),
                Some(4)
            );
            assert_eq!(
                values.get("breakerbox_failures_total{breaker=stock}"),
                Some(1)
            );
        });
    }

    /// A scripted run of a registry of two breakers, then one export: every
    /// series holds what the script implies.
    #[test]
    fn a_scripted_run_gives_every_series_its_value() {
        use breakerbox_std::{CountWindow, Ratio, Registry, Thresholds};
        use metrics_util::debugging::{DebugValue, DebuggingRecorder};

        let _g = GLOBAL.lock().unwrap();
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let clock = SharedManualClock::new();
        metrics::with_local_recorder(&recorder, || {
            let c = clock.clone();
            let registry = Registry::new(move |name| {
                let builder = if name == "search" {
                    let quarter = Thresholds::new()
                        .failure_rate(Ratio::percent(50))
                        .slow_rate(Ratio::percent(50))
                        .minimum_calls(4);
                    StdBreaker::builder(Config::DEFAULT, CountWindow::<4>::new(quarter).unwrap())
                        .boxed()
                } else {
                    StdBreaker::builder(Config::DEFAULT, ConsecutiveFailures::new(2).unwrap())
                        .boxed()
                };
                builder.clock(c.clone()).name(name).build()
            });
            let (db, search) = (registry.get("db"), registry.get("search"));
            let ok = || Ok::<_, ()>(());
            let fail = || Err::<(), _>(());
            // db: a success, two failures (trips), a rejection, 5 s, a
            // probe that succeeds (half-open, then closed).
            let _ = db.call(ok);
            let _ = db.call(fail);
            let _ = db.call(fail);
            let _ = db.call(ok);
            clock.advance(Duration::from_secs(5));
            let _ = db.call(ok);
            // search: 3 successes, 1 failure, 1 ignored: 25 % of 4 calls.
            for op in [ok, fail, ok, ok] {
                let _ = search.call(op);
            }
            let _ = search.call_classified(ok, |_| breakerbox_std::Outcome::Ignored);
            registry.export_metrics();
        });
        let mut seen: HashMap<String, String> = HashMap::new();
        for (key, _, _, value) in snapshotter.snapshot().into_vec() {
            let key = key.key();
            let labels: Vec<String> = key
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            let value = match value {
                DebugValue::Counter(n) => n.to_string(),
                DebugValue::Gauge(g) => g.0.to_string(),
                DebugValue::Histogram(h) => format!("{h:?}"),
            };
            seen.insert(format!("{}{{{}}}", key.name(), labels.join(",")), value);
        }
        let expected = [
            ("breakerbox_state{breaker=db}", "0"),
            ("breakerbox_transitions_total{breaker=db,to=open}", "1"),
            ("breakerbox_transitions_total{breaker=db,to=half-open}", "1"),
            ("breakerbox_transitions_total{breaker=db,to=closed}", "1"),
            (
                "breakerbox_transitions_total{breaker=db,to=forced-open}",
                "0",
            ),
            ("breakerbox_calls_total{breaker=db}", "4"),
            ("breakerbox_successes_total{breaker=db}", "2"),
            ("breakerbox_failures_total{breaker=db}", "2"),
            ("breakerbox_slow_calls_total{breaker=db}", "0"),
            ("breakerbox_ignored_total{breaker=db}", "0"),
            ("breakerbox_rejected_total{breaker=db}", "1"),
            ("breakerbox_stale_total{breaker=db}", "0"),
            ("breakerbox_failure_rate{breaker=db}", "-1"),
            ("breakerbox_slow_rate{breaker=db}", "-1"),
            ("breakerbox_state{breaker=search}", "0"),
            ("breakerbox_transitions_total{breaker=search,to=open}", "0"),
            ("breakerbox_calls_total{breaker=search}", "5"),
            ("breakerbox_successes_total{breaker=search}", "3"),
            ("breakerbox_failures_total{breaker=search}", "1"),
            ("breakerbox_ignored_total{breaker=search}", "1"),
            ("breakerbox_rejected_total{breaker=search}", "0"),
            ("breakerbox_failure_rate{breaker=search}", "0.25"),
            ("breakerbox_slow_rate{breaker=search}", "0"),
        ];
        for (series, value) in expected {
            assert_eq!(
                seen.get(series).map(String::as_str),
                Some(value),
                "{series} in {seen:#?}"
            );
        }
        // 16 series per breaker: the state, 6 transition counters, 7
        // counts and 2 rates.
        assert_eq!(seen.len(), 2 * 16, "{seen:#?}");
    }
}
