//! The table, the parser and the check, on their own; `worker-macros` has the property test
//! that drives them through every entry point.

use std::time::{Duration, SystemTime};

use super::*;

#[test]
fn every_key_is_listed_once() {
    for (i, key) in KEYS.iter().enumerate() {
        assert!(
            KEYS[i + 1..].iter().all(|other| other.name != key.name),
            "{}",
            key.name
        );
    }
    for (name, _) in HOST_RANGES {
        assert!(
            key(name).is_none(),
            "{name} is a worker key and a host setting"
        );
    }
}

#[test]
fn bounds_are_included_and_worded_as_keys_are_written() {
    let every = range("every").unwrap();
    assert!(every.contains_duration(MIN_PERIOD));
    assert!(every.contains_duration(MAX_DURATION));
    assert!(!every.contains_duration(Duration::ZERO));
    assert!(!every.contains_duration(MAX_DURATION + Duration::from_nanos(1)));
    assert_eq!(every.expected().to_string(), "a duration from 1ms to 365d");
    assert_eq!(
        range("after").unwrap().expected().to_string(),
        "a duration from 0s to 365d"
    );
    let retry = range("retry").unwrap();
    assert!(retry.contains_count(0) && retry.contains_count(10_000));
    assert!(!retry.contains_count(10_001));
    assert!(!retry.contains_duration(Duration::ZERO), "another kind");
    assert!(range("circuit_failure_ratio").unwrap().contains_ratio(1.0));
    assert!(!range("circuit_failure_ratio").unwrap().contains_ratio(0.0));
}

#[test]
fn a_schedule_that_never_fires_is_named() {
    let parse = |expression| crate::cron(expression).unwrap();
    #[allow(
        clippy::duration_suboptimal_units,
        reason = "a Unix timestamp reads in seconds"
    )]
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let utc = chrono_tz::UTC;
    assert!(never_fires(&parse("0 0 30 2 *"), "0 0 30 2 *", utc, now).is_some());
    assert!(never_fires(&parse("0 0 31 4 *"), "0 0 31 4 *", utc, now).is_some());
    assert_eq!(never_fires(&parse("0 0 29 2 *"), "", utc, now), None);
    assert_eq!(never_fires(&parse("*/10 * * * * *"), "", utc, now), None);
    let far = SystemTime::UNIX_EPOCH + Duration::from_secs(u64::MAX / 4);
    assert_eq!(
        never_fires(&parse("0 0 30 2 *"), "", utc, far),
        None,
        "no panic"
    );
}

/// The row's example, written as the attribute writes it, parses: strings lose their quotes.
#[test]
fn every_example_and_default_parses() {
    for key in KEYS {
        let text = key.example.trim_matches('"');
        parse(key, text).unwrap_or_else(|err| panic!("{}: {err}", key.name));
        let default = match key.default {
            DefaultValue::Duration(d) => Some(Value::Duration(d)),
            DefaultValue::Count(n) => Some(Value::Count(n)),
            DefaultValue::Ratio(x) => Some(Value::Ratio(x)),
            DefaultValue::Text(text) => Some(Value::Text(text.to_owned())),
            _ => None,
        };
        if let Some(default) = default {
            validate(key, &default).unwrap_or_else(|err| panic!("{}: {err}", key.name));
        }
    }
}

#[test]
fn values_parse_from_text() {
    let key = |name| key(name).unwrap();
    assert_eq!(
        parse(key("every"), " 1h 30m "),
        Ok(Value::Duration(Duration::from_mins(90)))
    );
    assert_eq!(parse(key("retry"), "5"), Ok(Value::Count(5)));
    assert_eq!(parse(key("overlap"), "allow( 3 )"), Ok(Value::Allow(3)));
    assert_eq!(parse(key("overlap"), "queue"), Ok(Value::Choice("queue")));
    assert_eq!(parse(key("missed"), "burst"), Ok(Value::Choice("burst")));
    assert_eq!(parse(key("once"), "true"), Ok(Value::Flag));
    let refused = |name, text| parse(key(name), text).unwrap_err().to_string();
    assert_eq!(
        refused("retry", "-1"),
        "invalid `retry` = \"-1\": expected a whole number from 0 to 10000"
    );
    assert_eq!(
        refused("retry", "99999999999"),
        "invalid `retry` = \"99999999999\": expected a whole number from 0 to 10000"
    );
    assert_eq!(
        refused("after", "100000000000000000000s"),
        "invalid `after` = \"100000000000000000000s\": expected a duration from 0s to 365d"
    );
    assert!(refused("every", "10 parsecs").contains("(unknown unit `parsecs`)"));
    assert!(refused("every", "-5s").contains("cannot be negative"));
    assert_eq!(
        refused("overlap", "allow(0)"),
        "invalid `overlap` = \"allow(0)\": expected one of `skip`, `queue` or `allow(n)`, \
         with n a whole number from 1 to 10000"
    );
    assert!(refused("circuit_failure_ratio", "NaN").contains("greater than 0 and at most 1"));
    assert!(refused("time_zone", "Mars/Olympus").contains("an IANA time zone name"));
    assert!(refused("cron", "61 * * * * *").contains("(number out of bounds)"));
    assert!(refused("name", "  ").contains("a non-empty name"));
}

fn now() -> SystemTime {
    #[allow(
        clippy::duration_suboptimal_units,
        reason = "a Unix timestamp reads in seconds"
    )]
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    now
}

fn secs(n: u64) -> Value {
    Value::Duration(Duration::from_secs(n))
}

#[test]
fn the_rules_over_several_keys() {
    let every = Settings::new().with("every", secs(10));
    assert_eq!(every.check(now()), Ok(()));
    let refusal = Settings::new().check(now()).unwrap_err();
    assert_eq!(refusal.key, "trigger");
    assert!(refusal.to_string().starts_with("missing trigger: expected"));

    let refusal = every
        .clone()
        .with("jitter", secs(10))
        .check(now())
        .unwrap_err();
    assert_eq!(refusal.key, "jitter");
    assert!(refusal.expected.contains("shorter than `every` (\"10s\")"));

    let zone = Value::Text("Europe/Berlin".to_owned());
    let refusal = every
        .clone()
        .with("time_zone", zone.clone())
        .check(now())
        .unwrap_err();
    assert_eq!(refusal.key, "time_zone");
    assert!(
        refusal.expected.contains("only applies to `cron`"),
        "{refusal}"
    );
    let cron = Settings::new().with("cron", Value::Text("0 0 3 * * *".to_owned()));
    assert_eq!(cron.clone().with("time_zone", zone).check(now()), Ok(()));
    let mars = Value::Text("Mars/Olympus".to_owned());
    assert_eq!(
        cron.with("time_zone", mars.clone())
            .check(now())
            .unwrap_err()
            .key,
        "time_zone"
    );
    assert_eq!(
        every
            .clone()
            .with("time_zone", mars)
            .check(now())
            .unwrap_err()
            .key,
        "time_zone"
    );

    // `backoff_max` is a period: zero is refused, with `backoff` zero too.
    let zero = Value::Duration(Duration::ZERO);
    let refusal = every
        .clone()
        .with("backoff", zero.clone())
        .with("backoff_max", zero)
        .check(now())
        .unwrap_err();
    assert_eq!(refusal.key, "backoff_max");
    assert_eq!(refusal.expected, "a duration from 1ms to 365d");
    // The key moved off its default is the one blamed.
    let blamed = |settings: Settings| settings.check(now()).unwrap_err().key;
    assert_eq!(blamed(every.clone().with("backoff", secs(120))), "backoff");
    assert_eq!(
        blamed(
            every
                .clone()
                .with("backoff_max", Value::Duration(Duration::from_millis(500)))
        ),
        "backoff_max"
    );
    assert_eq!(
        blamed(
            every
                .with("backoff", secs(120))
                .with("backoff_max", secs(30))
        ),
        "backoff"
    );
}

#[test]
fn a_trigger_replaces_another() {
    let settings = Settings::new()
        .with("every", secs(1))
        .with("once", Value::Flag);
    assert_eq!(settings.trigger().map(|(k, _)| k.name), Some("once"));
    assert_eq!(settings.get("every"), None);
}
