//! Breakers from configuration files (the `serde` feature): a policy as a
//! file names it, and a file of named breakers loaded into a [`Registry`].

use std::collections::BTreeMap;

use breakerbox_core::{Clock, Config, ConsecutiveFailures, CountWindow, TimeWindow};
use serde::de::{self, Deserializer};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};

use crate::breaker::{StdBreaker, StdBreakerBuilder};
use crate::clock::MonotonicClock;
use crate::registry::{AnyPolicy, Registry};

/// The buckets of a file's time window.
const TIME_BUCKETS: usize = 10;

/// A count window sized by a file: in a ring of 128 calls, or of 1,024 for
/// a larger window.
#[derive(Clone, Debug, PartialEq, Eq)]
enum FileCountWindow {
    Small(CountWindow<128>),
    Large(Box<CountWindow<1024>>),
}

/// A trip policy as a configuration file writes it: any of three rules,
/// tripping when any one does (resilience4j's failure-rate and slow-rate
/// rules over a count or a time window, and gobreaker's consecutive
/// failures). Checked when it is read; [`policy`](Self::policy) makes it.
///
/// ```toml
/// consecutive_failures = 5                                      # 5 in a row, or
/// count_window = { calls = 100, failure_rate = "50%" }          # half of the last 100, or
/// time_window = { bucket_length = "1s", slow_rate = "80%", minimum_calls = 20 }
/// ```
///
/// A count window holds 1 to 1,024 calls; a time window is 10 buckets of
/// `bucket_length` each (the one above covers the last 10 s).
///
/// ```
/// use breakerbox_std::{Config, PolicySpec, StdBreaker};
///
/// let spec: PolicySpec = toml::from_str(r#"
///     consecutive_failures = 5
///     count_window = { calls = 100, failure_rate = "50%" }
/// "#).unwrap();
/// let breaker = StdBreaker::builder(Config::DEFAULT, spec.policy()).build();
/// # let _ = breaker;
/// let none = toml::from_str::<PolicySpec>("").unwrap_err();
/// assert!(none.to_string().contains("give at least one of"), "{none}");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicySpec {
    consecutive: Option<ConsecutiveFailures>,
    count: Option<FileCountWindow>,
    time: Option<TimeWindow<TIME_BUCKETS>>,
}

impl PolicySpec {
    /// The policy: the rules the spec gives, any of which trips.
    pub fn policy(&self) -> AnyPolicy {
        let mut rules: Vec<AnyPolicy> = Vec::new();
        if let Some(p) = self.consecutive {
            rules.push(Box::new(p));
        }
        match &self.count {
            Some(FileCountWindow::Small(w)) => rules.push(Box::new(w.clone())),
            Some(FileCountWindow::Large(w)) => rules.push(w.clone()),
            None => {}
        }
        if let Some(w) = &self.time {
            rules.push(Box::new(w.clone()));
        }
        // A pair is a policy that trips when either does.
        rules
            .into_iter()
            .reduce(|either, next| Box::new((either, next)))
            .unwrap_or_else(|| Box::new(ConsecutiveFailures::default()))
    }
}

/// A policy's fields in a file: each rule in its own type's format.
#[derive(Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    consecutive_failures: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    count_window: Option<Box<CountWindow<1024>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    time_window: Option<TimeWindow<TIME_BUCKETS>>,
}

impl PolicyFile {
    fn build(self) -> Result<PolicySpec, String> {
        let consecutive = self
            .consecutive_failures
            .map(ConsecutiveFailures::new)
            .transpose()
            .map_err(|e| format!("consecutive_failures: {e}"))?;
        let count = self.count_window.map(|w| {
            // A small window in a small ring.
            match CountWindow::<128>::sized(w.size(), w.thresholds()) {
                Ok(small) => FileCountWindow::Small(small),
                Err(_) => FileCountWindow::Large(w),
            }
        });
        if consecutive.is_none() && count.is_none() && self.time_window.is_none() {
            return Err(
                "give at least one of consecutive_failures, count_window, time_window".into(),
            );
        }
        Ok(PolicySpec {
            consecutive,
            count,
            time: self.time_window,
        })
    }
}

impl From<&PolicySpec> for PolicyFile {
    fn from(spec: &PolicySpec) -> Self {
        PolicyFile {
            consecutive_failures: spec.consecutive.map(|p| p.failure_threshold()),
            count_window: spec.count.as_ref().map(|w| match w {
                FileCountWindow::Small(w) => Box::new(
                    CountWindow::sized(w.size(), w.thresholds())
                        .expect("a window of 128 fits in 1,024"),
                ),
                FileCountWindow::Large(w) => w.clone(),
            }),
            time_window: spec.time.clone(),
        }
    }
}

impl Serialize for PolicySpec {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        PolicyFile::from(self).serialize(serializer)
    }
}

/// Unknown fields refused, each rule checked as its constructor checks it:
/// an invalid one is an error naming the rule and the field.
impl<'de> Deserialize<'de> for PolicySpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        PolicyFile::deserialize(deserializer)?
            .build()
            .map_err(de::Error::custom)
    }
}

/// One named breaker in a file: its configuration (every field optional,
/// as [`Config`] reads) and its policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakerSpec {
    /// How it opens and recovers.
    #[serde(default)]
    pub config: Config,
    /// When it trips.
    pub policy: PolicySpec,
}

impl BreakerSpec {
    /// A builder for this breaker, to name it and add listeners or a clock.
    pub fn builder(&self) -> StdBreakerBuilder<AnyPolicy, MonotonicClock> {
        StdBreaker::builder(self.config, self.policy.policy())
    }

    /// The breaker, named `name`, on `clock`.
    pub fn build<C: Clock>(&self, name: &str, clock: C) -> StdBreaker<AnyPolicy, C> {
        self.builder().clock(clock).name(name).build()
    }
}

/// The spec of a name a file without a default does not list.
static DEFAULT_SPEC: BreakerSpec = BreakerSpec {
    config: Config::DEFAULT,
    policy: PolicySpec {
        consecutive: Some(breakerbox_core::valid!(ConsecutiveFailures::new(5))),
        count: None,
        time: None,
    },
};

/// A file of named breakers, and the one for names it does not list.
///
/// ```
/// use breakerbox_std::{BreakersFile, State};
///
/// let file: BreakersFile = toml::from_str(r#"
///     [default]
///     policy = { consecutive_failures = 5 }
///
///     [breakers.payments]
///     config = { open_duration = "30s", max_probes = 2 }
///     policy = { consecutive_failures = 3, count_window = { calls = 100, failure_rate = "50%" } }
///
///     [breakers.search]
///     policy = { time_window = { bucket_length = "1s", slow_rate = "80%" } }
/// "#).unwrap();
/// let registry = file.into_registry();
/// assert_eq!(registry.names(), ["payments", "search"]); // made at load
/// assert_eq!(registry.get("payments").config().max_probes(), 2);
/// assert_eq!(registry.get("ledger").state(), State::Closed); // from [default]
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakersFile {
    /// For names the file does not list; without it, [`Config::DEFAULT`]
    /// and five consecutive failures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<BreakerSpec>,
    /// The named breakers.
    #[serde(default)]
    pub breakers: BTreeMap<String, BreakerSpec>,
}

impl BreakersFile {
    /// The spec for `name`: its own, or the file's default (itself
    /// [`Config::DEFAULT`] and five consecutive failures if the file has
    /// none). For a registry of your own factory:
    ///
    /// ```
    /// use breakerbox_std::{BreakersFile, Registry};
    ///
    /// let file: BreakersFile = toml::from_str(r#"
    ///     [breakers.db]
    ///     policy = { consecutive_failures = 3 }
    /// "#).unwrap();
    /// let registry = Registry::new(move |name| {
    ///     file.spec(name).builder().name(name).on_transition(|e| eprintln!("{e}")).build()
    /// });
    /// assert_eq!(registry.get("db").name(), "db");
    /// ```
    pub fn spec(&self, name: &str) -> &BreakerSpec {
        self.breakers
            .get(name)
            .or(self.default.as_ref())
            .unwrap_or(&DEFAULT_SPEC)
    }

    /// A registry on the [`MonotonicClock`] holding every named breaker of
    /// the file, made now, and making others from `default`.
    pub fn into_registry(self) -> Registry<String, AnyPolicy, MonotonicClock> {
        self.into_registry_on(MonotonicClock)
    }

    /// [`into_registry`](Self::into_registry) on `clock` (a
    /// [`SharedManualClock`](crate::SharedManualClock) in tests).
    pub fn into_registry_on<C: Clock + Clone + Send + Sync + 'static>(
        self,
        clock: C,
    ) -> Registry<String, AnyPolicy, C> {
        let names: Vec<String> = self.breakers.keys().cloned().collect();
        let registry = Registry::new(move |name| self.spec(name).build(name, clock.clone()));
        for name in &names {
            let _ = registry.get(name.as_str());
        }
        registry
    }
}

#[cfg(test)]
mod tests;
