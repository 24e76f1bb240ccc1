#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
// docs.rs: each feature-gated item shows the feature it needs.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]

mod breaker;
mod clock;
mod counters;
mod observe;
mod registry;
mod sync;

pub use breaker::{Guard, RejectionListener, StdBreaker, StdBreakerBuilder, TransitionListener};
pub use breakerbox_core::*;
#[cfg(feature = "quanta")]
pub use clock::{CoarseClock, CoarseClockError, QuantaClock};
pub use clock::{MonotonicClock, SharedManualClock};
pub use registry::Registry;
