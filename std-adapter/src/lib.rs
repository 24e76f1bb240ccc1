#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
// docs.rs: each feature-gated item shows the feature it needs.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]

mod breaker;
mod clock;
mod counters;
mod events;
#[cfg(feature = "serde")]
mod files;
mod observe;
mod registry;
mod sync;

pub use breaker::{Guard, RejectionListener, StdBreaker, StdBreakerBuilder, TransitionListener};
pub use breakerbox_core::*;
#[cfg(feature = "quanta")]
pub use clock::{CoarseClock, CoarseClockError, QuantaClock};
pub use clock::{MonotonicClock, SharedManualClock};
/// `core::time::Duration` (std's `Duration`), which every API a service
/// meets takes and returns. The core's own microsecond duration, for the
/// `*_at` forms and the clocks, is [`time::Duration`].
///
/// ```
/// use std::time::Duration;
/// use breakerbox_std::{CallError, Config, ConsecutiveFailures, StdBreaker};
///
/// let config = Config::builder().open_duration(Duration::from_millis(10)).build().unwrap();
/// let breaker = StdBreaker::new(config, ConsecutiveFailures::new(1).unwrap());
/// let _ = breaker.call(|| Err::<(), _>("down"));
/// if let Err(CallError::Rejected(rejected)) = breaker.call(|| Ok::<_, ()>(())) {
///     std::thread::sleep(rejected.retry_after().unwrap()); // std's Duration, as it is
/// }
/// ```
///
/// The core's microsecond type is never handed out under std's name:
///
/// ```compile_fail,E0308
/// let d: breakerbox_std::Duration = breakerbox_std::time::Duration::from_secs(1);
/// ```
pub use core::time::Duration;
pub use events::{RejectionEvent, TransitionEvent};
#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
pub use files::{BreakerSpec, BreakersFile, PolicySpec};
pub use registry::{AnyPolicy, Registry};
