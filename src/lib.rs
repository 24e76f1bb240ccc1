#![doc = include_str!("../README.md")]
#![cfg_attr(not(feature = "std"), no_std)]
#![forbid(unsafe_code)]
// docs.rs: each feature-gated item shows the feature it needs.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]

pub use breakerbox_core::*;
/// `core::time::Duration` (std's `Duration`), which every API a service
/// meets takes and returns. The core's own microsecond duration, for the
/// `*_at` forms and the clocks, is [`time::Duration`].
pub use core::time::Duration;

#[cfg(feature = "std")]
pub use breakerbox_std::{
    Guard, MonotonicClock, Registry, RejectionListener, SharedManualClock, StdBreaker,
    StdBreakerBuilder, TransitionListener,
};

#[cfg(feature = "quanta")]
pub use breakerbox_std::{CoarseClock, CoarseClockError, QuantaClock};
