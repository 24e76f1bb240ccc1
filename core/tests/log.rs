//! `log_transition` under a capturing logger: the target, the level and the
//! words a person reads.
#![cfg(feature = "log")]

use std::sync::Mutex;

use breakerbox_core::{
    log_transition, Breaker, Config, ConsecutiveFailures, Instant, NoClock, Outcome,
};

/// Every record logged: (target, level, message).
static RECORDS: Mutex<Vec<(String, log::Level, String)>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        RECORDS.lock().unwrap().push((
            record.target().to_owned(),
            record.level(),
            record.args().to_string(),
        ));
    }
    fn flush(&self) {}
}

#[test]
fn transitions_are_logged_under_breakerbox_trips_at_info() {
    log::set_logger(&Capture).unwrap();
    log::set_max_level(log::LevelFilter::Trace);

    let mut breaker = Breaker::new(
        Config::DEFAULT,
        ConsecutiveFailures::new(1).unwrap(),
        NoClock,
    );
    let permit = breaker.try_acquire_at(Instant::ZERO).result.unwrap();
    let trip = breaker
        .record_at(permit, Outcome::Failure, Instant::ZERO)
        .transition
        .unwrap();
    log_transition(&trip);
    let probe = breaker.try_acquire_at(Instant::from_secs(5));
    log_transition(&probe.transition.unwrap());

    let records = RECORDS.lock().unwrap();
    assert_eq!(
        *records,
        [
            (
                "breakerbox".to_owned(),
                log::Level::Info,
                "closed -> open (tripped by consecutive failures) at t=0s, generation 1".to_owned()
            ),
            (
                "breakerbox".to_owned(),
                log::Level::Debug,
                "open -> half-open (open duration elapsed) at t=5s, generation 2".to_owned()
            ),
        ]
    );
}
