//! What listeners, logs and traces hear: each event names its breaker.

use std::fmt;
use std::time::Duration;

use breakerbox_core::{Rejected, State, Transition};

/// A transition as a [`StdBreaker`](crate::StdBreaker)'s listeners hear
/// it: which breaker, what changed, and for a trip, how long it stays open.
/// Borrowed, so telling it allocates nothing.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use breakerbox_std::{Config, ConsecutiveFailures, StdBreaker};
///
/// let heard = Arc::new(Mutex::new(Vec::new()));
/// let log = heard.clone();
/// let breaker = StdBreaker::builder(Config::DEFAULT, ConsecutiveFailures::new(1).unwrap())
///     .name("db")
///     .on_transition(move |event| log.lock().unwrap().push(event.to_string()))
///     .build();
/// let _ = breaker.call(|| Err::<(), _>("refused"));
/// assert_eq!(heard.lock().unwrap()[0], "breaker db: closed -> open (tripped by consecutive failures), probes again in 5s");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TransitionEvent<'a> {
    /// The breaker's name.
    pub breaker: &'a str,
    /// What changed.
    pub transition: Transition,
    /// For a transition into [`State::Open`]: how long from the transition
    /// until the breaker lets a probe through. `None` for every other
    /// transition, and for one a later transition had already replaced by
    /// the time it was told.
    pub open_for: Option<Duration>,
}

impl fmt::Display for TransitionEvent<'_> {
    /// `breaker db: closed -> open (tripped by consecutive failures), probes again in 5s`: the
    /// breaker, the change and its reason, and the open time as a duration.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = &self.transition;
        write!(
            f,
            "breaker {}: {} -> {} ({})",
            self.breaker, t.from, t.to, t.reason
        )?;
        match self.open_for {
            Some(wait) if t.to == State::Open => write!(f, ", probes again in {wait:?}"),
            _ => Ok(()),
        }
    }
}

/// A rejected call as a [`StdBreaker`](crate::StdBreaker)'s rejection
/// listeners hear it: which breaker, and why.
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
/// use breakerbox_std::{Config, ConsecutiveFailures, RejectReason, StdBreaker};
///
/// let rejected = Arc::new(AtomicUsize::new(0));
/// let count = rejected.clone();
/// let breaker = StdBreaker::builder(Config::DEFAULT, ConsecutiveFailures::new(1).unwrap())
///     .name("db")
///     .on_rejection(move |event| {
///         assert_eq!((event.breaker, event.rejected.reason), ("db", RejectReason::Open));
///         count.fetch_add(1, Ordering::Relaxed);
///     })
///     .build();
/// let _ = breaker.call(|| Err::<(), _>("refused"));
/// let _ = breaker.call(|| Ok::<_, ()>(()));
/// assert_eq!(rejected.load(Ordering::Relaxed), 1);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RejectionEvent<'a> {
    /// The breaker's name.
    pub breaker: &'a str,
    /// Why, and when a retry can be admitted.
    pub rejected: Rejected,
}

impl fmt::Display for RejectionEvent<'_> {
    /// `breaker db: rejected: …`, the rejection as it displays.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "breaker {}: {}", self.breaker, self.rejected)
    }
}
