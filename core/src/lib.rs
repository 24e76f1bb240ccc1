#![doc = include_str!("../README.md")]
#![no_std]
#![forbid(unsafe_code)]
// docs.rs: each feature-gated item shows the feature it needs.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]

#[cfg(feature = "alloc")]
extern crate alloc;

mod breaker;
mod config;
#[cfg(feature = "serde")]
mod files;
#[cfg(feature = "embedded-hal")]
pub mod hal;
mod history;
mod policy;
mod rng;
mod shared;
mod sync;
pub mod time;
mod window;

#[cfg(feature = "log")]
pub use breaker::log_transition;
pub use breaker::{
    Admission, Breaker, CallError, Counts, Metrics, Outcome, Permit, Phase, Probes, RejectReason,
    Rejected, Report, ReportStatus, State, Transition, TransitionReason,
};
pub use config::{
    Backoff, Config, ConfigBuilder, ConfigError, Fixed, FixedConfig, HalfOpenVerdict, Jitter,
    Ratio, Settings,
};
#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
pub use files::human_duration;
pub use policy::{
    CallRecord, ConsecutiveFailures, ReadyToTrip, RunCounts, TripPolicy, TripRule, WindowCounts,
};
pub use shared::{
    AtomicCounters, CriticalSection, CriticalSectionLock, Lock, LockFreeCounters, LockFreeCounts,
    LockFreeEvent, SharedBreaker, Sharing,
};
#[cfg(feature = "embassy-time")]
pub use time::EmbassyClock;
#[cfg(feature = "fugit")]
pub use time::FugitClock;
pub use time::{
    Clock, Duration, Instant, ManualClock, NoClock, SharedTickClock, TickClock, TickExtender,
};
pub use window::{CountWindow, Thresholds, TimeWindow};

/// Every public type implements `defmt::Format` with the `defmt` feature:
/// checked when the core is built with it (CI does, for thumbv7em).
#[cfg(feature = "defmt")]
#[allow(dead_code)]
fn all_public_types_implement_defmt_format() {
    fn format<T: defmt::Format + ?Sized>() {}
    format::<Admission>();
    format::<Backoff>();
    format::<Breaker<ConsecutiveFailures, ManualClock>>();
    format::<CallError<u8>>();
    format::<CallRecord>();
    format::<CountWindow<8>>();
    format::<HalfOpenVerdict>();
    format::<Thresholds>();
    format::<TimeWindow<4>>();
    format::<Config>();
    format::<ConfigBuilder>();
    format::<ConfigError>();
    format::<ConsecutiveFailures>();
    format::<Counts>();
    format::<Duration>();
    format::<Instant>();
    format::<Jitter>();
    format::<ManualClock>();
    format::<Metrics>();
    format::<NoClock>();
    format::<Outcome>();
    format::<Permit>();
    format::<Phase>();
    format::<Probes>();
    format::<Ratio>();
    format::<ReadyToTrip<fn(&RunCounts) -> bool>>();
    format::<RejectReason>();
    format::<Rejected>();
    format::<Report>();
    format::<ReportStatus>();
    format::<RunCounts>();
    format::<SharedBreaker<ConsecutiveFailures, NoClock>>();
    format::<CriticalSection>();
    format::<LockFreeCounts>();
    format::<LockFreeEvent>();
    format::<SharedTickClock<fn() -> u32>>();
    format::<State>();
    format::<TickClock<fn() -> u32>>();
    format::<TickExtender>();
    #[cfg(feature = "fugit")]
    format::<FugitClock<1, 1_000>>();
    #[cfg(feature = "embassy-time")]
    format::<EmbassyClock>();
    format::<Transition>();
    format::<TransitionReason>();
    format::<WindowCounts>();
}
