//! Configuration from files (the `serde` feature): durations as people
//! write them (`"5s"`, `"250ms"`, `"1m30s"`), rates as `"50%"` or `"1/2"`,
//! and the builder's validation, so a bad file is an error naming its
//! field, never a panic or a value silently changed.

use core::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};

use crate::config::{Config, ConfigError, HalfOpenVerdict, Jitter, Ratio, Schedule};
use crate::policy::ConsecutiveFailures;
use crate::time::Duration;
use crate::window::{CountWindow, Thresholds, TimeWindow};

/// The units a duration may be written in, longest name first where one
/// name starts another (`ms` before `m`), with their length in µs.
const UNITS: [(&str, u64); 7] = [
    ("us", 1),
    ("µs", 1),
    ("ms", 1_000),
    ("min", 60_000_000),
    ("s", 1_000_000),
    ("m", 60_000_000),
    ("h", 3_600_000_000),
];

/// Why a duration's text is not one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DurationError {
    /// Not numbers with units.
    Form,
    /// Finer than a microsecond.
    Fine,
    /// Longer than the crate's microseconds hold.
    Long,
}

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DurationError::Form => {
                "a duration is numbers with units (h, m or min, s, ms, us), such as \"5s\", \
                 \"250ms\" or \"1m30s\""
            }
            DurationError::Fine => "a duration is kept to the microsecond, no finer",
            DurationError::Long => "a duration must be at most 2^64 - 1 microseconds",
        })
    }
}

/// Reads `"5s"`, `"250ms"`, `"1m30s"`, `"1.5s"`: one or more numbers, each
/// with a unit, added up.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(DurationError::Form);
    }
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(DurationError::Form);
        }
        let whole = parse_u64(&rest[..digits])?;
        rest = &rest[digits..];
        // An optional fraction, of at most 9 digits (so the products below
        // stay within 64 bits).
        let (fraction, scale) = match rest.strip_prefix('.') {
            Some(after) => {
                let digits = after.bytes().take_while(u8::is_ascii_digit).count();
                if digits == 0 || digits > 9 {
                    return Err(DurationError::Form);
                }
                rest = &after[digits..];
                (parse_u64(&after[..digits])?, 10u64.pow(digits as u32))
            }
            None => (0, 1),
        };
        let Some(&(name, micros)) = UNITS.iter().find(|(name, _)| rest.starts_with(name)) else {
            return Err(DurationError::Form);
        };
        rest = &rest[name.len()..];
        let part = fraction * micros;
        if !part.is_multiple_of(scale) {
            return Err(DurationError::Fine);
        }
        total = whole
            .checked_mul(micros)
            .and_then(|w| w.checked_add(part / scale))
            .and_then(|d| total.checked_add(d))
            .ok_or(DurationError::Long)?;
    }
    Ok(Duration::from_micros(total))
}

fn parse_u64(digits: &str) -> Result<u64, DurationError> {
    digits.parse().map_err(|_| DurationError::Long)
}

/// Writes a duration in the largest unit that holds it exactly: `"5s"`,
/// `"250ms"`, `"90s"`, `"2h"`; read back, it is the same duration.
pub(crate) struct HumanDuration(pub(crate) Duration);

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let micros = self.0.as_micros();
        if micros == 0 {
            return f.write_str("0s");
        }
        let (name, unit) = [
            ("h", 3_600_000_000),
            ("m", 60_000_000),
            ("s", 1_000_000),
            ("ms", 1_000),
            ("us", 1),
        ]
        .into_iter()
        .find(|(_, unit)| micros.is_multiple_of(*unit))
        .unwrap_or(("us", 1));
        write!(f, "{}{name}", micros / unit)
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Text;
        impl Visitor<'_> for Text {
            type Value = HumanDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration with its unit, such as \"5s\" or \"250ms\"")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<HumanDuration, E> {
                parse_duration(text)
                    .map(HumanDuration)
                    .map_err(|e| E::custom(format_args!("{e}, not {text:?}")))
            }
        }
        deserializer.deserialize_str(Text)
    }
}

/// `#[serde(with = "breakerbox_core::human_duration")]` for a
/// `core::time::Duration` field of your own configuration: written and read
/// as the breaker's own durations are (`"5s"`, `"250ms"`, `"1m30s"`), to the
/// microsecond.
///
/// ```
/// use std::time::Duration;
///
/// #[derive(serde::Deserialize)]
/// struct Client {
///     #[serde(with = "breakerbox_core::human_duration")]
///     timeout: Duration,
/// }
///
/// let client: Client = toml::from_str(r#"timeout = "1m30s""#).unwrap();
/// assert_eq!(client.timeout, Duration::from_secs(90));
/// ```
pub mod human_duration {
    use serde::{Deserialize, Deserializer, Serializer};

    use super::HumanDuration;
    use crate::time::Duration;

    /// Writes `duration` as text, in the largest unit that holds it exactly
    /// (sub-microsecond parts dropped).
    ///
    /// # Errors
    /// Whatever `serializer` refuses.
    pub fn serialize<S: Serializer>(
        duration: &core::time::Duration,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&HumanDuration(Duration::from_core(*duration)))
    }

    /// Reads a duration's text.
    ///
    /// # Errors
    /// Text that is not numbers with units, finer than a microsecond, or
    /// longer than 2^64 - 1 microseconds.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<core::time::Duration, D::Error> {
        HumanDuration::deserialize(deserializer).map(|d| d.0.to_core())
    }
}

/// Reads `"50%"`, `"12.5%"`, `"1/2"`, `"3/2"`, `"2"`, `"1.5"` or a bare
/// integer.
fn parse_ratio(text: &str) -> Option<Ratio> {
    let text = text.trim();
    if let Some((n, d)) = text.split_once('/') {
        let (n, d) = (n.trim().parse().ok()?, d.trim().parse().ok()?);
        return (d != 0).then(|| Ratio::new(n, d));
    }
    let (number, per) = match text.strip_suffix('%') {
        Some(number) => (number.trim_end(), 100u32),
        None => (text, 1),
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() || fraction.len() > 6 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let scale = 10u32.pow(fraction.len() as u32);
    let whole: u32 = whole.parse().ok()?;
    let fraction: u32 = if fraction.is_empty() {
        0
    } else {
        fraction.parse().ok()?
    };
    let numerator = whole.checked_mul(scale)?.checked_add(fraction)?;
    Some(Ratio::new(numerator, per.checked_mul(scale)?))
}

/// `"50%"` over a hundred, the whole number alone over one, `"n/d"`
/// otherwise: read back, the same ratio.
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
impl Serialize for Ratio {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.denominator() {
            100 => serializer.collect_str(&format_args!("{}%", self.numerator())),
            1 => serializer.collect_str(&format_args!("{}", self.numerator())),
            _ => serializer.collect_str(self),
        }
    }
}

#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
impl<'de> Deserialize<'de> for Ratio {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Text;
        impl Visitor<'_> for Text {
            type Value = Ratio;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a ratio, such as \"50%\", \"1/2\" or 2")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Ratio, E> {
                parse_ratio(text).ok_or_else(|| {
                    E::custom(format_args!(
                        "a ratio is a percentage (\"50%\"), a fraction (\"3/2\") or a number, \
                         not {text:?}"
                    ))
                })
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Ratio, E> {
                u32::try_from(n)
                    .map(|n| Ratio::new(n, 1))
                    .map_err(|_| E::custom("a ratio's parts must fit in 32 bits"))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Ratio, E> {
                u64::try_from(n)
                    .map_err(|_| E::custom("a ratio must not be negative"))
                    .and_then(|n| self.visit_u64(n))
            }
        }
        deserializer.deserialize_any(Text)
    }
}

/// The exponential backoff as a file writes it.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExponentialFile {
    initial: HumanDuration,
    max: HumanDuration,
    multiplier: Ratio,
}

/// A [`Config`] as a file writes it: every field optional, defaults from
/// [`Config::DEFAULT`].
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct ConfigFile {
    #[serde(skip_serializing_if = "Option::is_none")]
    open_duration: Option<HumanDuration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exponential_backoff: Option<ExponentialFile>,
    jitter: Jitter,
    #[serde(skip_serializing_if = "Option::is_none")]
    jitter_seed: Option<u64>,
    max_probes: u32,
    successes_to_close: u32,
    probe_lease: HumanDuration,
    #[serde(skip_serializing_if = "Option::is_none")]
    slow_call_threshold: Option<HumanDuration>,
    half_open_verdict: HalfOpenVerdict,
}

impl Default for ConfigFile {
    fn default() -> Self {
        let mut file = ConfigFile::from(Config::DEFAULT);
        // Absent unless the file says: so a file may give the exponential
        // backoff instead.
        file.open_duration = None;
        file
    }
}

impl From<Config> for ConfigFile {
    fn from(c: Config) -> Self {
        let (open_duration, exponential_backoff) = match c.schedule {
            Schedule::Fixed(d) => (Some(HumanDuration(d)), None),
            Schedule::Exponential {
                initial,
                max,
                multiplier,
            } => (
                None,
                Some(ExponentialFile {
                    initial: HumanDuration(initial),
                    max: HumanDuration(max),
                    multiplier,
                }),
            ),
        };
        ConfigFile {
            open_duration,
            exponential_backoff,
            jitter: c.jitter(),
            jitter_seed: c.jitter_seed(),
            max_probes: c.max_probes(),
            successes_to_close: c.successes_to_close(),
            probe_lease: HumanDuration(c.probe_lease),
            slow_call_threshold: c.slow_call_threshold.map(HumanDuration),
            half_open_verdict: c.half_open_verdict(),
        }
    }
}

/// Why a file's configuration was refused.
enum FileError {
    Invalid(ConfigError),
    BothBackoffs,
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileError::Invalid(e) => e.fmt(f),
            FileError::BothBackoffs => {
                f.write_str("give open_duration or exponential_backoff, not both")
            }
        }
    }
}

impl ConfigFile {
    /// The configuration, checked as the builder checks it.
    fn build(self) -> Result<Config, FileError> {
        let mut b = Config::builder();
        b = match (self.open_duration, self.exponential_backoff) {
            (Some(_), Some(_)) => return Err(FileError::BothBackoffs),
            (Some(d), None) => b.open_duration(d.0.to_core()),
            (None, Some(e)) => b.exponential_backoff(
                e.initial.0.to_core(),
                e.max.0.to_core(),
                e.multiplier.numerator(),
                e.multiplier.denominator(),
            ),
            (None, None) => b,
        };
        b = b
            .jitter(self.jitter)
            .max_probes(self.max_probes)
            .successes_to_close(self.successes_to_close)
            .probe_lease(self.probe_lease.0.to_core())
            .half_open_verdict(self.half_open_verdict);
        if let Some(seed) = self.jitter_seed {
            b = b.jitter_seed(seed);
        }
        if let Some(t) = self.slow_call_threshold {
            b = b.slow_call_threshold(t.0.to_core());
        }
        b.build().map_err(FileError::Invalid)
    }
}

/// Written with its durations as text (`"5s"`) and only the fields that
/// differ from absent; read back, the same configuration.
///
/// ```
/// use breakerbox_core::Config;
///
/// let config: Config = toml::from_str(
///     r#"
///     exponential_backoff = { initial = "1s", max = "1m", multiplier = "3/2" }
///     max_probes = 3
///     slow_call_threshold = "250ms"
///     "#,
/// )
/// .unwrap();
/// assert_eq!(config.max_probes(), 3);
/// assert_eq!(config.backoff().max(), std::time::Duration::from_secs(60));
///
/// let bad = toml::from_str::<Config>("max_probes = 0").unwrap_err();
/// assert!(bad.to_string().contains("max_probes must be at least 1"), "{bad}");
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
impl Serialize for Config {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        ConfigFile::from(*self).serialize(serializer)
    }
}

/// Every field optional (the rest from [`Config::DEFAULT`]), unknown fields
/// refused, and the values checked as [`ConfigBuilder::build`](crate::ConfigBuilder::build)
/// checks them: an invalid one is an error that names its field.
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
impl<'de> Deserialize<'de> for Config {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        ConfigFile::deserialize(deserializer)?
            .build()
            .map_err(de::Error::custom)
    }
}

/// `{ failure_threshold = 5 }`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsecutiveFile {
    failure_threshold: u32,
}

/// `{ failure_threshold = 5 }`; the run of failures so far is state, not
/// configuration, and starts at zero.
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
impl Serialize for ConsecutiveFailures {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        ConsecutiveFile {
            failure_threshold: self.failure_threshold(),
        }
        .serialize(serializer)
    }
}

#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
impl<'de> Deserialize<'de> for ConsecutiveFailures {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let file = ConsecutiveFile::deserialize(deserializer)?;
        ConsecutiveFailures::new(file.failure_threshold).map_err(de::Error::custom)
    }
}

/// A window policy as a file writes it: a count window's `calls` or a time
/// window's `bucket_length`, and the thresholds.
#[derive(Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct WindowFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    calls: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    bucket_length: Option<HumanDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    failure_rate: Option<Ratio>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    slow_rate: Option<Ratio>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    failure_count: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    minimum_calls: Option<u32>,
}

impl WindowFile {
    fn with_thresholds(t: Thresholds) -> Self {
        WindowFile {
            failure_rate: t.failure_rate_threshold(),
            slow_rate: t.slow_rate_threshold(),
            failure_count: t.failure_count_threshold(),
            minimum_calls: t.minimum(),
            ..WindowFile::default()
        }
    }

    fn thresholds(&self) -> Thresholds {
        let mut t = Thresholds::new();
        if let Some(rate) = self.failure_rate {
            t = t.failure_rate(rate);
        }
        if let Some(rate) = self.slow_rate {
            t = t.slow_rate(rate);
        }
        if let Some(count) = self.failure_count {
            t = t.failure_count(count);
        }
        if let Some(calls) = self.minimum_calls {
            t = t.minimum_calls(calls);
        }
        t
    }
}

/// `{ calls = 100, failure_rate = "50%", minimum_calls = 10 }`: `calls`
/// from 1 to `N`, `N` if left out (see [`CountWindow::sized`]); checked as
/// the constructor checks it.
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
impl<const N: usize> Serialize for CountWindow<N> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut file = WindowFile::with_thresholds(self.thresholds());
        file.calls = (self.size() as usize != N).then_some(self.size());
        file.serialize(serializer)
    }
}

#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
impl<'de, const N: usize> Deserialize<'de> for CountWindow<N> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let file = WindowFile::deserialize(deserializer)?;
        if file.bucket_length.is_some() {
            return Err(de::Error::custom(
                "bucket_length is a time window's, not a count window's",
            ));
        }
        let calls = match file.calls {
            None => u32::try_from(N).unwrap_or(u32::MAX),
            Some(calls) if calls == 0 || calls as usize > N => {
                return Err(de::Error::custom(format_args!(
                    "calls must be 1 to {N}, not {calls}"
                )));
            }
            Some(calls) => calls,
        };
        CountWindow::sized(calls, file.thresholds()).map_err(de::Error::custom)
    }
}

/// `{ bucket_length = "1s", failure_rate = "50%" }`: the bucket count `B`
/// is the type's; checked as [`TimeWindow::new`] checks it.
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
impl<const B: usize> Serialize for TimeWindow<B> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut file = WindowFile::with_thresholds(self.thresholds());
        file.bucket_length = Some(HumanDuration(Duration::from_core(self.bucket_length())));
        file.serialize(serializer)
    }
}

#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
impl<'de, const B: usize> Deserialize<'de> for TimeWindow<B> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let file = WindowFile::deserialize(deserializer)?;
        if file.calls.is_some() {
            return Err(de::Error::custom(
                "calls is a count window's, not a time window's",
            ));
        }
        let Some(length) = &file.bucket_length else {
            return Err(de::Error::missing_field("bucket_length"));
        };
        TimeWindow::new(length.0.to_core(), file.thresholds()).map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests;
