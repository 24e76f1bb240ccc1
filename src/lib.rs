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
    AnyPolicy, Guard, MonotonicClock, Registry, RejectionEvent, RejectionListener,
    SharedManualClock, StdBreaker, StdBreakerBuilder, TransitionEvent, TransitionListener,
};

#[cfg(feature = "quanta")]
pub use breakerbox_std::{CoarseClock, CoarseClockError, QuantaClock};

#[cfg(all(feature = "serde", feature = "std"))]
pub use breakerbox_std::{BreakerSpec, BreakersFile, PolicySpec};

/// The pages under `docs/`, compiled as doctests: every code block in the
/// documentation compiles and runs.
#[cfg(doctest)]
mod docs {
    #[doc = include_str!("../docs/design.md")]
    struct Design;
    #[doc = include_str!("../docs/firmware.md")]
    struct Firmware;
    #[doc = include_str!("../docs/performance.md")]
    struct Performance;
    #[doc = include_str!("../docs/policies.md")]
    struct Policies;
    #[doc = include_str!("../docs/semantics.md")]
    struct Semantics;
    #[doc = include_str!("../docs/sizes.md")]
    struct Sizes;
    #[doc = include_str!("../docs/testing.md")]
    struct Testing;
}
