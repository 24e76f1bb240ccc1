use super::*;
use crate::{SharedManualClock, State};

fn error<T: for<'de> Deserialize<'de> + std::fmt::Debug>(text: &str) -> String {
    toml::from_str::<T>(text).unwrap_err().to_string()
}

#[test]
fn policy_specs_round_trip() {
    for text in [
        "consecutive_failures = 5\n",
        "[count_window]\ncalls = 100\nfailure_rate = \"50%\"\nminimum_calls = 20\n",
        "[count_window]\ncalls = 1000\nslow_rate = \"80%\"\nminimum_calls = 1000\n",
        "[count_window]\ncalls = 128\nfailure_count = 3\nminimum_calls = 128\n",
        "[time_window]\nbucket_length = \"1s\"\nfailure_count = 7\nminimum_calls = 100\n",
    ] {
        let spec: PolicySpec = toml::from_str(text).unwrap();
        let again = toml::to_string(&spec).unwrap();
        assert_eq!(again, text);
        assert_eq!(toml::from_str::<PolicySpec>(&again).unwrap(), spec);
    }
}

#[test]
fn a_bad_policy_says_which_rule_and_what_is_wrong() {
    for (text, says) in [
        (
            "",
            "give at least one of consecutive_failures, count_window, time_window",
        ),
        (
            "consecutive_failures = 0",
            "consecutive_failures: invalid breaker configuration, field `failure_threshold`",
        ),
        (
            "count_window = { calls = 2000, failure_rate = \"50%\" }",
            "calls must be 1 to 1024, not 2000",
        ),
        (
            "count_window = { calls = 0, failure_rate = \"50%\" }",
            "calls must be 1 to 1024, not 0",
        ),
        (
            "count_window = { calls = 10 }",
            "needs at least one of failure_rate, slow_rate, failure_count",
        ),
        (
            "count_window = { calls = 10, failure_rate = \"50%\", minimum_calls = 11 }",
            "minimum_calls",
        ),
        (
            "count_window = { calls = 10, failure_rate = \"50%\", size = 3 }",
            "unknown field `size`",
        ),
        (
            "count_window = { calls = 10, bucket_length = \"1s\", failure_count = 1 }",
            "bucket_length is a time window's",
        ),
        (
            "time_window = { bucket_length = \"0s\", failure_count = 1 }",
            "field `bucket_length`",
        ),
        (
            "time_window = { failure_count = 1 }",
            "missing field `bucket_length`",
        ),
        (
            "time_window = { bucket_length = \"soon\", failure_count = 1 }",
            "a duration is numbers with units",
        ),
        ("bulkhead = 3", "unknown field `bulkhead`"),
    ] {
        let shown = error::<PolicySpec>(text);
        assert!(
            shown.contains(says),
            "{text:?} says {shown:?}, not {says:?}"
        );
    }
}

/// The spec's rules, any of which trips: 3 in a row, or half of the last 4.
#[test]
fn a_spec_trips_by_any_of_its_rules() {
    let spec: PolicySpec = toml::from_str(
        "consecutive_failures = 3\ncount_window = { calls = 4, failure_rate = \"50%\" }",
    )
    .unwrap();
    let clock = SharedManualClock::new();
    let run = |outcomes: &[bool]| {
        let breaker = StdBreaker::builder(Config::DEFAULT, spec.policy())
            .clock(clock.clone())
            .build();
        for &ok in outcomes {
            let _ = breaker.call(|| if ok { Ok(()) } else { Err(()) });
        }
        breaker.state()
    };
    assert_eq!(run(&[true, false, true, false]), State::Open, "2 of 4");
    assert_eq!(run(&[true, true, false, false]), State::Open, "2 of 4");
    assert_eq!(
        run(&[true, true, true, false, true]),
        State::Closed,
        "1 of 4"
    );
    let only_run: PolicySpec = toml::from_str("consecutive_failures = 3").unwrap();
    let breaker = StdBreaker::builder(Config::DEFAULT, only_run.policy())
        .clock(clock.clone())
        .build();
    for _ in 0..3 {
        let _ = breaker.call(|| Err::<(), _>(()));
    }
    assert_eq!(breaker.state(), State::Open);
}

const FILE: &str = r#"
[default]
policy = { consecutive_failures = 2 }

[breakers.payments]
config = { open_duration = "30s", max_probes = 2 }
policy = { consecutive_failures = 3, count_window = { calls = 100, failure_rate = "50%" } }

[breakers.search]
config = { exponential_backoff = { initial = "1s", max = "1m", multiplier = 2 } }
policy = { time_window = { bucket_length = "1s", slow_rate = "80%", minimum_calls = 5 } }
"#;

#[test]
fn a_file_of_breakers_loads_into_a_registry() {
    let file: BreakersFile = toml::from_str(FILE).unwrap();
    let clock = SharedManualClock::new();
    let registry = file.clone().into_registry_on(clock.clone());
    assert_eq!(registry.names(), ["payments", "search"]);
    let payments = registry.get("payments");
    assert_eq!(payments.config().max_probes(), 2);
    assert_eq!(
        payments.config().backoff().initial(),
        std::time::Duration::from_secs(30)
    );
    for _ in 0..3 {
        let _ = payments.call(|| Err::<(), _>(()));
    }
    assert_eq!(payments.state(), State::Open);
    // An unlisted name trips by the default's rule: 2 in a row.
    let ledger = registry.get("ledger");
    for _ in 0..2 {
        let _ = ledger.call(|| Err::<(), _>(()));
    }
    assert_eq!(ledger.state(), State::Open);
    assert_eq!(ledger.name(), "ledger");
    // And the file round-trips.
    let text = toml::to_string(&file).unwrap();
    assert_eq!(
        toml::from_str::<BreakersFile>(&text).unwrap(),
        file,
        "{text}"
    );
}

#[test]
fn a_bad_file_names_the_breaker_field_and_problem() {
    let shown = error::<BreakersFile>(
        "[breakers.payments]\nconfig = { max_probes = 0 }\npolicy = { consecutive_failures = 3 }",
    );
    assert!(shown.contains("max_probes must be at least 1"), "{shown}");
    assert!(
        shown.contains("line 2"),
        "the breaker's line is shown: {shown}"
    );
    let shown = error::<BreakersFile>("[breakers.payments]\nconfig = { max_probes = 2 }");
    assert!(shown.contains("missing field `policy`"), "{shown}");
    let shown = error::<BreakersFile>("[breaker.payments]\npolicy = { consecutive_failures = 3 }");
    assert!(shown.contains("unknown field `breaker`"), "{shown}");
}
