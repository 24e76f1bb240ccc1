#![doc = include_str!("../README.md")]
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod breaker;
mod config;
mod policy;
mod rng;
mod time;

pub use breaker::{
    Admission, Breaker, CallError, Counts, Metrics, Outcome, Permit, Phase, Probes, RejectReason,
    Rejected, Report, ReportStatus, State, Transition, TransitionReason,
};
pub use config::{Backoff, Config, ConfigBuilder, ConfigError, Jitter, Ratio};
pub use policy::{
    CallRecord, ConsecutiveFailures, ReadyToTrip, RunCounts, TripPolicy, WindowCounts,
};
pub use time::{Clock, Duration, Instant, ManualClock, TickClock, TickExtender};
