use super::*;

extern crate std;
use std::string::ToString;

use crate::{Breaker, NoClock, Outcome};

fn micros(text: &str) -> Result<u64, DurationError> {
    parse_duration(text).map(Duration::as_micros)
}

#[test]
fn durations_read_as_people_write_them() {
    for (text, expected) in [
        ("5s", 5_000_000),
        ("250ms", 250_000),
        ("100us", 100),
        ("100µs", 100),
        ("1m30s", 90_000_000),
        ("2min", 120_000_000),
        ("1h", 3_600_000_000),
        ("1.5s", 1_500_000),
        ("0.25ms", 250),
        (" 10s ", 10_000_000),
        ("0s", 0),
    ] {
        assert_eq!(micros(text), Ok(expected), "{text}");
    }
    for bad in ["", "5", "s", "5 s", "5sec", "1.s", ".5s", "-1s", "5s5"] {
        assert_eq!(micros(bad), Err(DurationError::Form), "{bad:?}");
    }
    assert_eq!(micros("0.0000001s"), Err(DurationError::Fine));
    assert_eq!(micros("0.5us"), Err(DurationError::Fine));
    assert_eq!(micros("99999999999999999999s"), Err(DurationError::Long));
    assert_eq!(micros("18446744073709551615us"), Ok(u64::MAX));
    assert_eq!(
        micros("18446744073709551615us1us"),
        Err(DurationError::Long)
    );
}

#[test]
fn durations_are_written_in_the_largest_exact_unit_and_read_back() {
    for (micros, text) in [
        (0, "0s"),
        (5_000_000, "5s"),
        (250_000, "250ms"),
        (90_000_000, "90s"),
        (120_000_000, "2m"),
        (7_200_000_000, "2h"),
        (1_500, "1500us"),
        (u64::MAX, "18446744073709551615us"),
    ] {
        let shown = HumanDuration(Duration::from_micros(micros)).to_string();
        assert_eq!(shown, text);
        assert_eq!(parse_duration(&shown), Ok(Duration::from_micros(micros)));
    }
}

#[test]
fn ratios_read_as_percentages_fractions_and_numbers() {
    let read = |text: &str| parse_ratio(text).map(|r| (r.numerator(), r.denominator()));
    assert_eq!(read("50%"), Some((50, 100)));
    assert_eq!(read("12.5%"), Some((125, 1000)));
    assert_eq!(read("3/2"), Some((3, 2)));
    assert_eq!(read("2"), Some((2, 1)));
    assert_eq!(read("1.5"), Some((15, 10)));
    for bad in ["", "%", "1/0", "a", "-1", "1.2.3", "0.1234567"] {
        assert_eq!(read(bad), None, "{bad:?}");
    }
}

/// Every field of a configuration survives a file, both backoffs and both
/// verdicts.
#[test]
fn configurations_round_trip_through_toml_and_json() {
    let configs = [
        Config::DEFAULT,
        Config::builder()
            .exponential_backoff(
                core::time::Duration::from_millis(250),
                core::time::Duration::from_secs(90),
                3,
                2,
            )
            .jitter(Jitter::Equal)
            .jitter_seed(42)
            .max_probes(3)
            .successes_to_close(2)
            .probe_lease(core::time::Duration::from_secs(10))
            .slow_call_threshold(core::time::Duration::from_micros(1_500))
            .half_open_verdict(HalfOpenVerdict::Rates {
                failure_rate: Ratio::percent(50),
                slow_rate: Some(Ratio::new(2, 3)),
            })
            .build()
            .unwrap(),
    ];
    for config in configs {
        let text = toml::to_string(&config).unwrap();
        assert_eq!(toml::from_str::<Config>(&text).unwrap(), config, "{text}");
        let json = serde_json::to_string(&config).unwrap();
        assert_eq!(
            serde_json::from_str::<Config>(&json).unwrap(),
            config,
            "{json}"
        );
    }
    let text = toml::to_string(&configs[1]).unwrap();
    for part in [
        "initial = \"250ms\"",
        "max = \"90s\"",
        "multiplier = \"3/2\"",
        "jitter = \"equal\"",
        "slow_call_threshold = \"1500us\"",
        "failure_rate = \"50%\"",
    ] {
        assert!(text.contains(part), "{part} in {text}");
    }
}

/// What a bad file says: the field and what is wrong, and nothing loaded.
#[test]
fn a_bad_file_is_an_error_naming_its_field() {
    let error = |text: &str| toml::from_str::<Config>(text).unwrap_err().to_string();
    for (text, says) in [
        ("max_probes = 0", "max_probes must be at least 1"),
        ("successes_to_close = 0", "successes_to_close must be at least 1"),
        ("open_duration = \"0s\"", "open_duration must be longer than zero"),
        ("probe_lease = \"0ms\"", "probe_lease must be longer than zero"),
        ("open_duration = \"5 parsecs\"", "a duration is numbers with units"),
        ("open_duration = \"5 parsecs\"", "open_duration"),
        ("open_duration = 5", "a duration with its unit"),
        ("max_probes = -1", "max_probes"),
        ("max_probe = 2", "unknown field `max_probe`"),
        ("jitter = \"some\"", "unknown variant `some`"),
        (
            "open_duration = \"1s\"\nexponential_backoff = { initial = \"1s\", max = \"2s\", multiplier = 2 }",
            "give open_duration or exponential_backoff, not both",
        ),
        (
            "exponential_backoff = { initial = \"5s\", max = \"1s\", multiplier = 2 }",
            "backoff max must not be below its initial duration",
        ),
        (
            "exponential_backoff = { initial = \"1s\", max = \"5s\", multiplier = \"1/2\" }",
            "multiplier",
        ),
        (
            "half_open_verdict = { rates = { failure_rate = \"150%\" } }",
            "failure_rate",
        ),
    ] {
        let shown = error(text);
        assert!(shown.contains(says), "{text:?} says {shown:?}, not {says:?}");
    }
}

#[test]
fn policies_round_trip_and_validate() {
    let consecutive: ConsecutiveFailures = toml::from_str("failure_threshold = 5").unwrap();
    assert_eq!(consecutive.failure_threshold(), 5);
    assert_eq!(
        toml::from_str::<ConsecutiveFailures>(&toml::to_string(&consecutive).unwrap()).unwrap(),
        consecutive
    );
    let zero = toml::from_str::<ConsecutiveFailures>("failure_threshold = 0").unwrap_err();
    assert!(
        zero.to_string()
            .contains("failure_threshold must be at least 1"),
        "{zero}"
    );

    let window: CountWindow<20> =
        toml::from_str("failure_rate = \"50%\"\nminimum_calls = 10").unwrap();
    let again: CountWindow<20> = toml::from_str(&toml::to_string(&window).unwrap()).unwrap();
    assert_eq!(again, window);
    assert_eq!(window.thresholds().minimum(), Some(10));
    let too_many = toml::from_str::<CountWindow<20>>("failure_rate = \"50%\"\nminimum_calls = 21");
    assert!(too_many.unwrap_err().to_string().contains("minimum_calls"));
    let none = toml::from_str::<CountWindow<20>>("").unwrap_err();
    assert!(none.to_string().contains("thresholds"), "{none}");

    let timed: TimeWindow<10> =
        toml::from_str("bucket_length = \"1s\"\nslow_rate = \"80%\"\nfailure_count = 7").unwrap();
    let text = toml::to_string(&timed).unwrap();
    assert!(text.contains("bucket_length = \"1s\""), "{text}");
    let again: TimeWindow<10> = toml::from_str(&text).unwrap();
    assert_eq!(again, timed);
    let zero = toml::from_str::<TimeWindow<10>>("bucket_length = \"0s\"\nfailure_count = 1");
    assert!(zero.unwrap_err().to_string().contains("bucket_length"));
}

/// A configuration read from a file runs as the builder's would.
#[test]
fn a_loaded_configuration_runs() {
    let config: Config = toml::from_str("open_duration = \"2s\"").unwrap();
    let policy: ConsecutiveFailures = toml::from_str("failure_threshold = 1").unwrap();
    let mut breaker = Breaker::new(config, policy, NoClock);
    let permit = breaker.try_acquire_at(crate::Instant::ZERO).result.unwrap();
    let _ = breaker.record_at(permit, Outcome::Failure, crate::Instant::ZERO);
    let rejected = breaker
        .try_acquire_at(crate::Instant::ZERO)
        .result
        .unwrap_err();
    assert_eq!(
        rejected.retry_after(),
        Some(core::time::Duration::from_secs(2))
    );
}
