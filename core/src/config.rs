//! Configuration: a `Copy` value built and validated by `const fn`s, so a
//! static firmware configuration is checked when the program is compiled.

use core::fmt;
use core::marker::PhantomData;

use crate::time::Duration;

/// Where a core breaker's jitter starts when no seed was given.
const DEFAULT_JITTER_SEED: u64 = 0x853c_49e6_748f_ea9b;

/// An exact fraction `numerator / denominator` of two `u32`s: the crate's
/// integer stand-in for rates, thresholds and multipliers (no floats).
///
/// ```
/// use breakerbox_core::Ratio;
///
/// let half = Ratio::percent(50);
/// assert!(half.is_reached_by(5, 10)); // 5 of 10 is 50 %: reached (>=)
/// assert!(!half.is_reached_by(4, 10));
/// assert_eq!(Ratio::new(3, 2).as_per_mille(), Some(1_500));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Ratio {
    numerator: u32,
    denominator: u32,
}

impl Ratio {
    /// `numerator / denominator`. A zero denominator is kept as given and
    /// refused where the ratio is validated (it names the field there).
    pub const fn new(numerator: u32, denominator: u32) -> Self {
        Ratio {
            numerator,
            denominator,
        }
    }

    /// `percent / 100`.
    pub const fn percent(percent: u32) -> Self {
        Ratio::new(percent, 100)
    }

    /// `per_mille / 1000`.
    pub const fn per_mille(per_mille: u32) -> Self {
        Ratio::new(per_mille, 1_000)
    }

    /// The numerator.
    pub const fn numerator(self) -> u32 {
        self.numerator
    }

    /// The denominator.
    pub const fn denominator(self) -> u32 {
        self.denominator
    }

    /// The ratio in thousandths, rounded down; `None` for a zero denominator.
    pub const fn as_per_mille(self) -> Option<u64> {
        if self.denominator == 0 {
            None
        } else {
            Some(self.numerator as u64 * 1_000 / self.denominator as u64)
        }
    }

    /// Whether `part / whole >= self`, computed exactly. An empty `whole`
    /// reaches nothing.
    pub const fn is_reached_by(self, part: u64, whole: u64) -> bool {
        whole != 0
            && part as u128 * self.denominator as u128 >= self.numerator as u128 * whole as u128
    }

    /// Whether the ratio is a usable rate threshold: above 0 and at most 1
    /// (`0 < numerator <= denominator`).
    pub const fn is_valid_rate(self) -> bool {
        self.numerator != 0 && self.numerator <= self.denominator
    }

    /// Whether the ratio is at least one (`numerator >= denominator > 0`).
    pub const fn is_at_least_one(self) -> bool {
        self.denominator != 0 && self.numerator >= self.denominator
    }

    /// Multiplies `d` by this ratio exactly, rounding down and saturating at
    /// [`Duration::MAX`]. A zero denominator gives [`Duration::MAX`].
    pub const fn scale(self, d: Duration) -> Duration {
        if self.denominator == 0 {
            return Duration::MAX;
        }
        let num = self.numerator as u64;
        // Split so no product can overflow: (remainder * num) < 2^64.
        let (quotient, remainder) = div_rem(d.as_micros(), self.denominator);
        let whole = quotient.saturating_mul(num);
        let (rest, _) = div_rem(remainder * num, self.denominator);
        Duration::from_micros(whole.saturating_add(rest))
    }
}

/// `n / d` and `n % d` by shift-and-subtract. Slower than the hardware's
/// division but it runs only when the breaker reopens, and it keeps the
/// 64-bit division routines (about 1 KiB on Cortex-M) out of firmware.
/// `d` must not be zero.
pub(crate) const fn div_rem(n: u64, d: u32) -> (u64, u64) {
    let d = d as u64;
    let mut quotient = 0u64;
    let mut remainder = 0u64;
    let mut bit = 64;
    while bit > 0 {
        bit -= 1;
        // remainder < d < 2^32 before the shift, so it cannot overflow.
        remainder = (remainder << 1) | ((n >> bit) & 1);
        if remainder >= d {
            remainder -= d;
            quotient |= 1 << bit;
        }
    }
    (quotient, remainder)
}

impl fmt::Display for Ratio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.numerator, self.denominator)
    }
}

/// How long the breaker stays open before it lets a probe through: what
/// [`Config::backoff`] reports, in [`core::time::Duration`]s.
///
/// ```
/// use breakerbox_core::{Backoff, Config};
/// use core::time::Duration;
///
/// let config = Config::builder()
///     .exponential_backoff(Duration::from_secs(1), Duration::from_secs(10), 3, 2)
///     .build()
///     .unwrap();
/// let backoff = config.backoff();
/// assert_eq!(backoff.initial(), Duration::from_secs(1));
/// assert_eq!(backoff.next(Duration::from_secs(8)), Duration::from_secs(10)); // 12 s, capped
/// assert!(matches!(backoff, Backoff::Exponential { .. }));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Backoff {
    /// The same duration every time.
    Fixed(core::time::Duration),
    /// `initial` after a trip, multiplied by `multiplier` each time a probe
    /// fails and the breaker reopens, never above `max`. Back to `initial`
    /// when the breaker closes.
    Exponential {
        /// The first open duration.
        initial: core::time::Duration,
        /// The cap.
        max: core::time::Duration,
        /// The growth factor per reopening, at least 1.
        multiplier: Ratio,
    },
}

impl Backoff {
    /// The first open duration after a trip.
    pub const fn initial(self) -> core::time::Duration {
        match self {
            Backoff::Fixed(d) => d,
            Backoff::Exponential { initial, .. } => initial,
        }
    }

    /// The open duration that follows `current` when a probe fails (to the
    /// microsecond, as the breaker computes it).
    pub const fn next(self, current: core::time::Duration) -> core::time::Duration {
        self.schedule().next(Duration::from_core(current)).to_core()
    }

    /// The longest open duration this backoff can give (before jitter).
    pub const fn max(self) -> core::time::Duration {
        match self {
            Backoff::Fixed(d) => d,
            Backoff::Exponential { max, .. } => max,
        }
    }

    const fn schedule(self) -> Schedule {
        match self {
            Backoff::Fixed(d) => Schedule::Fixed(Duration::from_core(d)),
            Backoff::Exponential {
                initial,
                max,
                multiplier,
            } => Schedule::Exponential {
                initial: Duration::from_core(initial),
                max: Duration::from_core(max),
                multiplier,
            },
        }
    }
}

/// [`Backoff`] as the breaker keeps it: in microseconds, so a trip costs no
/// conversion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub(crate) enum Schedule {
    /// The same duration every time.
    Fixed(Duration),
    /// `initial` after a trip, multiplied by `multiplier` each time a probe
    /// fails and the breaker reopens, never above `max`. Back to `initial`
    /// when the breaker closes.
    Exponential {
        /// The first open duration.
        initial: Duration,
        /// The cap.
        max: Duration,
        /// The growth factor per reopening, at least 1.
        multiplier: Ratio,
    },
}

impl Schedule {
    /// The first open duration after a trip.
    pub(crate) const fn initial(self) -> Duration {
        match self {
            Schedule::Fixed(d) => d,
            Schedule::Exponential { initial, .. } => initial,
        }
    }

    /// The open duration that follows `current` when a probe fails.
    pub(crate) const fn next(self, current: Duration) -> Duration {
        match self {
            Schedule::Fixed(d) => d,
            Schedule::Exponential {
                max, multiplier, ..
            } => multiplier.scale(current).min(max),
        }
    }

    /// The longest open duration this backoff can give (before jitter).
    pub(crate) const fn max(self) -> Duration {
        match self {
            Schedule::Fixed(d) => d,
            Schedule::Exponential { max, .. } => max,
        }
    }
}

/// Randomness added to each open duration `d`, so that many breakers that
/// tripped together do not probe together.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Jitter {
    /// Exactly `d`.
    #[default]
    None,
    /// Uniform in `[0, d]`.
    Full,
    /// `d/2` plus uniform in `[0, d - d/2]`, so within `[d/2, d]`.
    Equal,
}

/// How half-open judges its probes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum HalfOpenVerdict {
    /// Any failed probe reopens the breaker; `successes_to_close` successful
    /// probes close it. The default, and the classic circuit breaker's rule.
    #[default]
    AnyFailure,
    /// resilience4j's rule: once `successes_to_close` probe results are in
    /// (successes and failures alike), reopen if their failure rate reaches
    /// `failure_rate` or their slow-call rate reaches `slow_rate` (`>=`), and
    /// close otherwise.
    Rates {
        /// The failure rate of the probes that reopens.
        failure_rate: Ratio,
        /// The slow-call rate of the probes that reopens, if slow calls count.
        #[cfg_attr(
            feature = "serde",
            serde(default, skip_serializing_if = "Option::is_none")
        )]
        slow_rate: Option<Ratio>,
    },
}

/// Everything that is wrong with a configuration value, each naming its field.
///
/// ```
/// use breakerbox_core::{Config, ConfigError};
///
/// let err = Config::builder().max_probes(0).build().unwrap_err();
/// assert_eq!(err, ConfigError::MaxProbes);
/// assert_eq!(err.field(), "max_probes");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum ConfigError {
    /// `open_duration` (or the backoff's `initial`) is zero.
    OpenDuration,
    /// The backoff `multiplier` is below 1 or has a zero denominator.
    BackoffMultiplier,
    /// The backoff cap `max` is below its `initial` duration.
    BackoffMax,
    /// `max_probes` is zero: half-open could never admit a probe.
    MaxProbes,
    /// `successes_to_close` is zero: half-open would close on nothing.
    SuccessesToClose,
    /// `probe_lease` is zero: every probe would expire at once.
    ProbeLease,
    /// `slow_call_threshold` is zero: every call would be slow.
    SlowCallThreshold,
    /// A trip policy's `failure_threshold` is zero: it would trip on nothing.
    FailureThreshold,
    /// A tick counter's width is outside 1..=32 bits.
    CounterWidth,
    /// A tick counter's rate is zero, or (for a `fugit` timer) not a whole
    /// number of ticks a second.
    TickRate,
    /// A count window holds no calls, or more than `u32::MAX`.
    WindowSize,
    /// A time window has no buckets, or more than `u32::MAX`.
    Buckets,
    /// A time window's `bucket_length` is zero.
    BucketLength,
    /// `minimum_calls` is zero, or above the number of calls the window holds.
    MinimumCalls,
    /// A `failure_rate` threshold is zero, above 100 % or has a zero denominator.
    FailureRate,
    /// A `slow_rate` threshold is zero, above 100 % or has a zero denominator.
    SlowRate,
    /// A `failure_count` threshold is zero.
    FailureCount,
    /// A window policy has no threshold at all, so it could never trip.
    NoThreshold,
}

/// The value of a validating constructor, for a `const` or a `static`: an
/// invalid value fails the build with the field's message. Every
/// constructor that validates (the configuration builder, the trip
/// policies, the tick clocks) returns `Result<_, ConfigError>`, so a
/// firmware's configuration is one expression each. (A macro, not a
/// `const fn`: a generic `const fn` cannot take a `Result` apart on stable
/// Rust unless the value is `Copy`, and windows and clocks are not.)
///
/// ```
/// use breakerbox_core::{valid, Config, ConsecutiveFailures, CountWindow, Ratio, Thresholds};
///
/// const CONFIG: Config = valid!(Config::builder()
///     .open_duration(core::time::Duration::from_millis(250))
///     .build());
/// const POLICY: ConsecutiveFailures = valid!(ConsecutiveFailures::new(3));
/// static WINDOW: CountWindow<16> =
///     valid!(CountWindow::new(Thresholds::new().failure_rate(Ratio::percent(50))));
/// # assert_eq!(POLICY.failure_threshold(), 3);
/// # let _ = (CONFIG, &WINDOW);
/// ```
///
/// An invalid value does not compile ("max_probes must be at least 1"):
///
/// ```compile_fail,E0080
/// use breakerbox_core::{valid, Config};
///
/// static NO_PROBES: Config = valid!(Config::builder().max_probes(0).build());
/// ```
///
/// At run time it panics with the same message: match on the `Result` there.
#[macro_export]
macro_rules! valid {
    ($checked:expr) => {
        match $checked {
            ::core::result::Result::Ok(value) => value,
            ::core::result::Result::Err(e) => {
                let e: $crate::ConfigError = e;
                ::core::panic!("{}", e.as_str())
            }
        }
    };
}

impl ConfigError {
    /// The name of the offending field.
    pub const fn field(self) -> &'static str {
        match self {
            ConfigError::OpenDuration => "open_duration",
            ConfigError::BackoffMultiplier => "multiplier",
            ConfigError::BackoffMax => "max",
            ConfigError::MaxProbes => "max_probes",
            ConfigError::SuccessesToClose => "successes_to_close",
            ConfigError::ProbeLease => "probe_lease",
            ConfigError::SlowCallThreshold => "slow_call_threshold",
            ConfigError::FailureThreshold => "failure_threshold",
            ConfigError::CounterWidth => "bits",
            ConfigError::TickRate => "hz",
            ConfigError::WindowSize => "N",
            ConfigError::Buckets => "B",
            ConfigError::BucketLength => "bucket_length",
            ConfigError::MinimumCalls => "minimum_calls",
            ConfigError::FailureRate => "failure_rate",
            ConfigError::SlowRate => "slow_rate",
            ConfigError::FailureCount => "failure_count",
            ConfigError::NoThreshold => "thresholds",
        }
    }

    /// What is wrong, in words; `const` so a `const` configuration can
    /// `panic!("{}", err.as_str())` and fail the build with it (as
    /// [`valid!`](crate::valid!) does).
    pub const fn as_str(self) -> &'static str {
        match self {
            ConfigError::OpenDuration => "open_duration must be longer than zero",
            ConfigError::BackoffMultiplier => {
                "backoff multiplier must be at least 1 with a non-zero denominator"
            }
            ConfigError::BackoffMax => "backoff max must not be below its initial duration",
            ConfigError::MaxProbes => "max_probes must be at least 1",
            ConfigError::SuccessesToClose => "successes_to_close must be at least 1",
            ConfigError::ProbeLease => "probe_lease must be longer than zero",
            ConfigError::SlowCallThreshold => "slow_call_threshold must be longer than zero",
            ConfigError::FailureThreshold => "failure_threshold must be at least 1",
            ConfigError::CounterWidth => "a tick counter must be 1 to 32 bits wide",
            ConfigError::TickRate => {
                "a tick counter's rate must be a whole number of ticks a second, above zero"
            }
            ConfigError::WindowSize => "a count window must hold from 1 call up to its capacity N (at most u32::MAX)",
            ConfigError::Buckets => "a time window must have 1 to u32::MAX buckets",
            ConfigError::BucketLength => "a time window's bucket_length must be longer than zero",
            ConfigError::MinimumCalls => {
                "minimum_calls must be at least 1 and no more than the window holds"
            }
            ConfigError::FailureRate => "a failure_rate threshold must be above 0 and at most 100 %",
            ConfigError::SlowRate => "a slow_rate threshold must be above 0 and at most 100 %",
            ConfigError::FailureCount => "a failure_count threshold must be at least 1",
            ConfigError::NoThreshold => {
                "a window policy needs at least one of failure_rate, slow_rate, failure_count (thresholds)"
            }
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid breaker configuration, field `{}`: {}",
            self.field(),
            self.as_str()
        )
    }
}

impl core::error::Error for ConfigError {}

/// The breaker's configuration: open duration, half-open probing and slow
/// calls. (When to trip is the [`TripPolicy`](crate::TripPolicy)'s business.)
///
/// Build it with [`Config::builder`]; every value is checked there, so a
/// `Config` you hold is always valid.
///
/// ```
/// use core::time::Duration;
/// use breakerbox_core::{Config, Jitter};
///
/// const CONFIG: Config = match Config::builder()
///     .exponential_backoff(Duration::from_secs(1), Duration::from_secs(60), 2, 1)
///     .jitter(Jitter::Equal)
///     .jitter_seed(0x5eed)
///     .max_probes(3)
///     .successes_to_close(3)
///     .build()
/// {
///     Ok(config) => config,
///     Err(e) => panic!("{}", e.as_str()),
/// };
/// assert_eq!(CONFIG.max_probes(), 3);
/// ```
///
/// An invalid `const` configuration does not compile:
///
/// ```compile_fail,E0080
/// use breakerbox_core::Config;
///
/// const CONFIG: Config = match Config::builder().max_probes(0).build() {
///     Ok(config) => config,
///     Err(e) => panic!("{}", e.as_str()), // error[E0080]: max_probes must be at least 1
/// };
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Config {
    pub(crate) schedule: Schedule,
    jitter: Jitter,
    jitter_seed: u64,
    /// Whether `jitter_seed` was given (apart, so the seed costs no more
    /// room than a `u64`).
    jitter_seeded: bool,
    max_probes: u32,
    successes_to_close: u32,
    pub(crate) probe_lease: Duration,
    pub(crate) slow_call_threshold: Option<Duration>,
    half_open_verdict: HalfOpenVerdict,
}

impl Config {
    /// The defaults: open for 5 s (fixed, as in Polly), one probe
    /// at a time, one success to close, a 30 s probe lease, no slow calls.
    pub const DEFAULT: Config = match ConfigBuilder::new().build() {
        Ok(config) => config,
        Err(e) => panic!("{}", e.as_str()),
    };

    /// A builder starting from the defaults.
    pub const fn builder() -> ConfigBuilder {
        ConfigBuilder::new()
    }

    /// How long the breaker stays open.
    pub const fn backoff(&self) -> Backoff {
        match self.schedule {
            Schedule::Fixed(d) => Backoff::Fixed(d.to_core()),
            Schedule::Exponential {
                initial,
                max,
                multiplier,
            } => Backoff::Exponential {
                initial: initial.to_core(),
                max: max.to_core(),
                multiplier,
            },
        }
    }

    /// The jitter on each open duration.
    pub const fn jitter(&self) -> Jitter {
        self.jitter
    }

    /// The seed of the jitter's random sequence, if one was given. Without
    /// one, a core breaker starts from a fixed seed (firmware has no random
    /// source to ask) and a `StdBreaker` draws one of its own from the
    /// process's random source, so replicas left on defaults jitter apart.
    pub const fn jitter_seed(&self) -> Option<u64> {
        if self.jitter_seeded {
            Some(self.jitter_seed)
        } else {
            None
        }
    }

    /// This configuration with the jitter seeded by `seed` (any value is a
    /// valid seed).
    ///
    /// ```
    /// use breakerbox_core::Config;
    ///
    /// assert_eq!(Config::DEFAULT.jitter_seed(), None);
    /// assert_eq!(Config::DEFAULT.with_jitter_seed(7).jitter_seed(), Some(7));
    /// ```
    #[must_use]
    pub const fn with_jitter_seed(mut self, seed: u64) -> Config {
        self.jitter_seed = seed;
        self.jitter_seeded = true;
        self
    }

    /// The seed the breaker's generator starts from.
    pub(crate) const fn seed_or_default(&self) -> u64 {
        self.jitter_seed
    }

    /// The most probes half-open lets run at once.
    pub const fn max_probes(&self) -> u32 {
        self.max_probes
    }

    /// The successful probes that close the breaker.
    pub const fn successes_to_close(&self) -> u32 {
        self.successes_to_close
    }

    /// How long probes may stay out before they count as failed.
    pub const fn probe_lease(&self) -> core::time::Duration {
        self.probe_lease.to_core()
    }

    /// The duration from which a call is slow, if slow calls are tracked.
    pub const fn slow_call_threshold(&self) -> Option<core::time::Duration> {
        match self.slow_call_threshold {
            Some(d) => Some(d.to_core()),
            None => None,
        }
    }

    /// How half-open judges its probes.
    pub const fn half_open_verdict(&self) -> HalfOpenVerdict {
        self.half_open_verdict
    }
}

/// Shows what the getters give, durations with their units.
impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("backoff", &self.backoff())
            .field("jitter", &self.jitter)
            .field("jitter_seed", &self.jitter_seed())
            .field("max_probes", &self.max_probes)
            .field("successes_to_close", &self.successes_to_close)
            .field("probe_lease", &self.probe_lease())
            .field("slow_call_threshold", &self.slow_call_threshold())
            .field("half_open_verdict", &self.half_open_verdict)
            .finish()
    }
}

impl Default for Config {
    fn default() -> Self {
        Config::DEFAULT
    }
}

/// Builds a [`Config`]; every setter is a `const fn` and
/// [`build`](Self::build) validates the whole.
///
/// Durations are [`core::time::Duration`]s, kept to the microsecond.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[must_use]
pub struct ConfigBuilder {
    config: Config,
}

impl ConfigBuilder {
    /// A builder holding the [`Config::DEFAULT`] values.
    pub const fn new() -> Self {
        ConfigBuilder {
            config: Config {
                schedule: Schedule::Fixed(Duration::from_secs(5)),
                jitter: Jitter::None,
                jitter_seed: DEFAULT_JITTER_SEED,
                jitter_seeded: false,
                max_probes: 1,
                successes_to_close: 1,
                probe_lease: Duration::from_secs(30),
                slow_call_threshold: None,
                half_open_verdict: HalfOpenVerdict::AnyFailure,
            },
        }
    }

    /// Stay open for `d` every time.
    pub const fn open_duration(mut self, d: core::time::Duration) -> Self {
        self.config.schedule = Schedule::Fixed(Duration::from_core(d));
        self
    }

    /// Stay open for `initial` after a trip, multiplied by
    /// `multiplier_numerator / multiplier_denominator` (at least 1) after each
    /// failed probe, never above `max`.
    pub const fn exponential_backoff(
        mut self,
        initial: core::time::Duration,
        max: core::time::Duration,
        multiplier_numerator: u32,
        multiplier_denominator: u32,
    ) -> Self {
        self.config.schedule = Schedule::Exponential {
            initial: Duration::from_core(initial),
            max: Duration::from_core(max),
            multiplier: Ratio::new(multiplier_numerator, multiplier_denominator),
        };
        self
    }

    /// Add `jitter` to every open duration, drawn from a small random
    /// generator: seeded per breaker in a `StdBreaker`, from
    /// [`jitter_seed`](Self::jitter_seed) or a fixed seed in a core breaker.
    pub const fn jitter(mut self, jitter: Jitter) -> Self {
        self.config.jitter = jitter;
        self
    }

    /// Start the jitter's generator from `seed`: the same seed, the same
    /// open durations. On firmware give each breaker its own (an id, a
    /// hardware random number), or breakers that trip together still probe
    /// together.
    pub const fn jitter_seed(mut self, seed: u64) -> Self {
        self.config = self.config.with_jitter_seed(seed);
        self
    }

    /// Let at most `n` probes run at once in half-open.
    pub const fn max_probes(mut self, n: u32) -> Self {
        self.config.max_probes = n;
        self
    }

    /// Close after `n` successful probes.
    pub const fn successes_to_close(mut self, n: u32) -> Self {
        self.config.successes_to_close = n;
        self
    }

    /// Count probes still out after `lease` as failed (see
    /// [`Breaker`](crate::Breaker) for exactly how the lease runs).
    pub const fn probe_lease(mut self, lease: core::time::Duration) -> Self {
        self.config.probe_lease = Duration::from_core(lease);
        self
    }

    /// Count a call as slow when it takes `threshold` or longer, whatever its
    /// outcome. Off by default; when on, admission reads the clock.
    pub const fn slow_call_threshold(mut self, threshold: core::time::Duration) -> Self {
        self.config.slow_call_threshold = Some(Duration::from_core(threshold));
        self
    }

    /// Judge half-open's probes by `verdict` (any failure reopens, by default).
    pub const fn half_open_verdict(mut self, verdict: HalfOpenVerdict) -> Self {
        self.config.half_open_verdict = verdict;
        self
    }

    /// Checks every value and gives the configuration.
    ///
    /// # Errors
    /// The first invalid field, as a [`ConfigError`].
    pub const fn build(self) -> Result<Config, ConfigError> {
        let c = self.config;
        match c.schedule {
            Schedule::Fixed(d) => {
                if d.is_zero() {
                    return Err(ConfigError::OpenDuration);
                }
            }
            Schedule::Exponential {
                initial,
                max,
                multiplier,
            } => {
                if initial.is_zero() {
                    return Err(ConfigError::OpenDuration);
                }
                if !multiplier.is_at_least_one() {
                    return Err(ConfigError::BackoffMultiplier);
                }
                if max.as_micros() < initial.as_micros() {
                    return Err(ConfigError::BackoffMax);
                }
            }
        }
        if c.max_probes == 0 {
            return Err(ConfigError::MaxProbes);
        }
        if c.successes_to_close == 0 {
            return Err(ConfigError::SuccessesToClose);
        }
        if c.probe_lease.is_zero() {
            return Err(ConfigError::ProbeLease);
        }
        if let Some(t) = c.slow_call_threshold {
            if t.is_zero() {
                return Err(ConfigError::SlowCallThreshold);
            }
        }
        if let HalfOpenVerdict::Rates {
            failure_rate,
            slow_rate,
        } = c.half_open_verdict
        {
            if !failure_rate.is_valid_rate() {
                return Err(ConfigError::FailureRate);
            }
            if let Some(slow) = slow_rate {
                if !slow.is_valid_rate() {
                    return Err(ConfigError::SlowRate);
                }
            }
        }
        Ok(c)
    }
}

impl Default for ConfigBuilder {
    fn default() -> Self {
        ConfigBuilder::new()
    }
}

/// Where a breaker's [`Config`] comes from: a value chosen at run time (a
/// [`Config`] is its own settings), or a constant fixed at compile time
/// ([`Fixed`]), so that the compiler removes the code of every feature the
/// constant leaves off.
pub trait Settings {
    /// Whether the breaker keeps what its [`Metrics`](crate::Metrics) tell
    /// beyond the state: `true` for a [`Config`]; a [`FixedConfig`] may
    /// leave it off ([`FixedConfig::METRICS`]).
    const METRICS: bool = true;

    /// The configuration.
    fn config(&self) -> &Config;
}

impl Settings for Config {
    #[inline(always)]
    fn config(&self) -> &Config {
        self
    }
}

/// A configuration fixed at compile time, for [`Fixed`]: a type (usually a
/// unit struct named for the peripheral it guards) that names a `const`
/// [`Config`]. Built with the `const fn` builder, an invalid value is a
/// compile error.
pub trait FixedConfig {
    /// The configuration.
    const CONFIG: Config;

    /// Whether the breaker keeps its [`Counts`](crate::Counts) and the time
    /// it entered its state, for its [`Metrics`](crate::Metrics). `false`
    /// removes their code: the counts and the time in state then read zero,
    /// and nothing else changes.
    const METRICS: bool = true;
}

/// The [`Settings`] of a breaker configured at compile time by `K`, for
/// firmware: the machine reads `K::CONFIG`, a constant, so a feature it
/// leaves off (exponential backoff, jitter, the rate verdict over probes,
/// slow calls) costs no flash. Holds nothing. Made by
/// [`Breaker::fixed`](crate::Breaker::fixed).
pub struct Fixed<K>(PhantomData<K>);

impl<K> Fixed<K> {
    /// The settings of `K`.
    pub const fn new() -> Self {
        Fixed(PhantomData)
    }
}

impl<K: FixedConfig> Settings for Fixed<K> {
    const METRICS: bool = K::METRICS;

    #[inline(always)]
    fn config(&self) -> &Config {
        &K::CONFIG
    }
}

impl<K> Clone for Fixed<K> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<K> Copy for Fixed<K> {}

impl<K> Default for Fixed<K> {
    fn default() -> Self {
        Fixed::new()
    }
}

impl<K: FixedConfig> fmt::Debug for Fixed<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Fixed").field(&K::CONFIG).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::time::Duration as StdDuration;

    #[test]
    fn defaults_are_valid_and_documented() {
        let c = Config::default();
        assert_eq!(c.backoff(), Backoff::Fixed(StdDuration::from_secs(5)));
        assert_eq!(c.max_probes(), 1);
        assert_eq!(c.successes_to_close(), 1);
        assert_eq!(c.probe_lease(), StdDuration::from_secs(30));
        assert_eq!(c.slow_call_threshold(), None);
        assert_eq!(c.jitter(), Jitter::None);
    }

    #[test]
    fn every_invalid_field_is_named() {
        let b = Config::builder;
        let cases = [
            (
                b().open_duration(StdDuration::ZERO),
                ConfigError::OpenDuration,
            ),
            (
                b().open_duration(StdDuration::from_nanos(999)),
                ConfigError::OpenDuration,
            ),
            (
                b().exponential_backoff(StdDuration::ZERO, StdDuration::from_secs(1), 2, 1),
                ConfigError::OpenDuration,
            ),
            (
                b().exponential_backoff(StdDuration::from_secs(1), StdDuration::from_secs(9), 1, 2),
                ConfigError::BackoffMultiplier,
            ),
            (
                b().exponential_backoff(StdDuration::from_secs(1), StdDuration::from_secs(9), 2, 0),
                ConfigError::BackoffMultiplier,
            ),
            (
                b().exponential_backoff(StdDuration::from_secs(2), StdDuration::from_secs(1), 2, 1),
                ConfigError::BackoffMax,
            ),
            (b().max_probes(0), ConfigError::MaxProbes),
            (b().successes_to_close(0), ConfigError::SuccessesToClose),
            (b().probe_lease(StdDuration::ZERO), ConfigError::ProbeLease),
            (
                b().slow_call_threshold(StdDuration::ZERO),
                ConfigError::SlowCallThreshold,
            ),
        ];
        for (builder, expected) in cases {
            assert_eq!(builder.build(), Err(expected));
        }
    }

    #[test]
    fn every_error_has_a_field_and_a_message() {
        extern crate std;
        use std::string::ToString;
        let all = [
            ConfigError::OpenDuration,
            ConfigError::BackoffMultiplier,
            ConfigError::BackoffMax,
            ConfigError::MaxProbes,
            ConfigError::SuccessesToClose,
            ConfigError::ProbeLease,
            ConfigError::SlowCallThreshold,
            ConfigError::FailureThreshold,
            ConfigError::CounterWidth,
            ConfigError::TickRate,
            ConfigError::WindowSize,
            ConfigError::Buckets,
            ConfigError::BucketLength,
            ConfigError::MinimumCalls,
            ConfigError::FailureRate,
            ConfigError::SlowRate,
            ConfigError::FailureCount,
            ConfigError::NoThreshold,
        ];
        for e in all {
            let text = e.to_string();
            assert!(text.contains(e.field()), "{text} should name {}", e.field());
        }
    }

    #[test]
    fn multiplier_of_exactly_one_and_equal_bounds_are_valid() {
        let c = Config::builder()
            .exponential_backoff(StdDuration::from_secs(1), StdDuration::from_secs(1), 7, 7)
            .build()
            .unwrap();
        let b = c.backoff();
        assert_eq!(b.next(b.initial()), StdDuration::from_secs(1));
    }

    #[test]
    fn backoff_grows_by_the_ratio_up_to_the_cap() {
        let b = Backoff::Exponential {
            initial: StdDuration::from_secs(1),
            max: StdDuration::from_secs(10),
            multiplier: Ratio::new(3, 2),
        };
        let mut d = b.initial();
        let mut seen = [StdDuration::ZERO; 8];
        for slot in &mut seen {
            *slot = d;
            d = b.next(d);
        }
        let millis = seen.map(|d| d.as_millis());
        assert_eq!(
            millis,
            [1_000, 1_500, 2_250, 3_375, 5_062, 7_593, 10_000, 10_000]
        );
        assert_eq!(b.max(), StdDuration::from_secs(10));
    }

    #[test]
    fn scaling_never_overflows() {
        let huge = Ratio::new(u32::MAX, 1);
        assert_eq!(huge.scale(Duration::MAX), Duration::MAX);
        let odd = Ratio::new(u32::MAX, u32::MAX - 1);
        assert!(odd.scale(Duration::MAX) == Duration::MAX);
        assert_eq!(
            Ratio::new(1, 0).scale(Duration::from_secs(1)),
            Duration::MAX
        );
        assert_eq!(
            Ratio::new(5, 4).scale(Duration::from_micros(7)),
            Duration::from_micros(8)
        );
    }

    #[test]
    fn ratios_show_their_parts() {
        extern crate std;
        use std::string::ToString;
        let r = Ratio::new(3, 7);
        assert_eq!((r.numerator(), r.denominator()), (3, 7));
        assert_eq!(r.to_string(), "3/7");
    }

    #[test]
    fn errors_name_their_fields_exactly() {
        assert_eq!(ConfigError::MaxProbes.field(), "max_probes");
        assert_eq!(ConfigError::ProbeLease.field(), "probe_lease");
        assert_eq!(
            ConfigError::MaxProbes.as_str(),
            "max_probes must be at least 1"
        );
        assert_eq!(ConfigError::MinimumCalls.field(), "minimum_calls");
    }

    #[test]
    fn long_division_matches_the_hardware() {
        let cases = [
            (0u64, 1u32),
            (u64::MAX, 1),
            (u64::MAX, u32::MAX),
            (u64::MAX - 1, 3),
            (1 << 40, 7),
            (123_456_789_012, 1_000),
            (5, 9),
        ];
        for (n, d) in cases {
            assert_eq!(div_rem(n, d), (n / d as u64, n % d as u64), "{n} / {d}");
        }
    }

    #[test]
    fn ratio_comparison_is_exact_at_the_threshold() {
        let r = Ratio::per_mille(333);
        assert!(r.is_reached_by(333, 1_000));
        assert!(!r.is_reached_by(332, 1_000));
        assert!(!r.is_reached_by(0, 0));
        assert!(Ratio::percent(0).is_reached_by(0, 1));
        assert!(Ratio::percent(100).is_reached_by(u64::MAX, u64::MAX));
        assert_eq!(Ratio::new(1, 0).as_per_mille(), None);
        assert_eq!(Ratio::percent(50).as_per_mille(), Some(500));
    }
}
