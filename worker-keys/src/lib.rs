//! The valid range of every duration and number a worker or a host is configured with, and the
//! check of a cron schedule that can never fire, shared by the `#[worker]` attribute (at compile
//! time) and by `worker-core` (when a host is built, for the builder, the configuration file and
//! the environment), so that each entry point accepts the same values and refuses the others
//! with the same words.
//!
//! Not meant to be used directly: depend on `worker-core`.
#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub
)]
#![forbid(unsafe_code)]

use std::fmt;
use std::time::{Duration, SystemTime};

/// The longest duration any key accepts: 365 days. Every sum of an instant and a configured
/// duration the runtime makes stays far from where time arithmetic could overflow.
pub const MAX_DURATION: Duration = Duration::from_hours(365 * 24);

/// The shortest period, delay or limit that must be greater than zero: 1 ms, the resolution of
/// tokio's timer.
pub const MIN_PERIOD: Duration = Duration::from_millis(1);

/// The valid values of one key.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Range {
    /// A duration from `min` to `max`, both included.
    Duration {
        /// The shortest valid value.
        min: Duration,
        /// The longest valid value.
        max: Duration,
    },
    /// A whole number from `min` to `max`, both included.
    Count {
        /// The smallest valid value.
        min: u32,
        /// The largest valid value.
        max: u32,
    },
    /// A number greater than 0 and at most 1.
    Ratio,
}

/// A duration that may be zero (`after`, `jitter`, `backoff`, `restart_backoff`, ...).
const DELAY: Range = Range::Duration {
    min: Duration::ZERO,
    max: MAX_DURATION,
};

/// A duration that must be at least [`MIN_PERIOD`] (`every`, `timeout`, `circuit_break`, ...).
const PERIOD: Range = Range::Duration {
    min: MIN_PERIOD,
    max: MAX_DURATION,
};

/// Every key with a range, and its range. Keys of other kinds (choices, flags, names, cron
/// expressions) have no entry.
pub const RANGES: &[(&str, Range)] = &[
    ("every", PERIOD),
    ("fixed_delay", PERIOD),
    ("after", DELAY),
    ("jitter", DELAY),
    (
        "retry",
        Range::Count {
            min: 0,
            max: 10_000,
        },
    ),
    ("backoff", DELAY),
    ("backoff_max", PERIOD),
    ("timeout", PERIOD),
    ("circuit_failure_ratio", Range::Ratio),
    (
        "circuit_min_throughput",
        Range::Count {
            min: 1,
            max: 10_000,
        },
    ),
    ("circuit_window", PERIOD),
    ("circuit_break", PERIOD),
    ("restart_backoff", DELAY),
    ("max_restarts", Range::Count { min: 0, max: 1_000 }),
    ("restart_window", PERIOD),
    ("stop_budget", PERIOD),
    ("stale_after", PERIOD),
    // `overlap = allow(n)`: how many runs of one worker may be in progress at once.
    (
        "overlap",
        Range::Count {
            min: 1,
            max: 10_000,
        },
    ),
    // Host settings.
    ("shutdown_timeout", DELAY),
    (
        "http_max_connections",
        Range::Count {
            min: 1,
            max: 65_536,
        },
    ),
    ("http_header_timeout", PERIOD),
    ("http_idle_timeout", PERIOD),
];

/// The range of `key`, if it has one.
#[must_use]
pub fn range(key: &str) -> Option<Range> {
    RANGES
        .iter()
        .find(|(name, _)| *name == key)
        .map(|(_, range)| *range)
}

impl Range {
    /// Whether `value` is in the range; `false` for a range of another kind.
    #[must_use]
    pub fn contains_duration(self, value: Duration) -> bool {
        matches!(self, Self::Duration { min, max } if (min..=max).contains(&value))
    }

    /// Whether `value` is in the range; `false` for a range of another kind.
    #[must_use]
    pub fn contains_count(self, value: u64) -> bool {
        matches!(self, Self::Count { min, max } if (u64::from(min)..=u64::from(max)).contains(&value))
    }

    /// Whether `value` is in the range; `false` for a range of another kind.
    #[must_use]
    pub fn contains_ratio(self, value: f64) -> bool {
        matches!(self, Self::Ratio if value > 0.0 && value <= 1.0)
    }

    /// What the range accepts, as every error message says it after "expected":
    /// `a duration from 1ms to 365d`.
    #[must_use]
    pub fn expected(self) -> Expected {
        Expected(self)
    }
}

/// The words for a [`Range`], made by [`Range::expected`].
#[derive(Debug, Clone, Copy)]
pub struct Expected(Range);

impl fmt::Display for Expected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Range::Duration { min, max } => write!(
                f,
                "a duration from {} to {}",
                ShortDuration(min),
                ShortDuration(max)
            ),
            Range::Count { min, max } => write!(f, "a whole number from {min} to {max}"),
            Range::Ratio => f.write_str("a number greater than 0 and at most 1, such as 0.5"),
        }
    }
}

/// A bound written the way the keys are: `0s`, `1ms`, `365d`.
struct ShortDuration(Duration);

impl fmt::Display for ShortDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const DAY: u64 = 24 * 60 * 60;
        let d = self.0;
        if d.is_zero() {
            f.write_str("0s")
        } else if d.subsec_nanos() != 0 {
            write!(f, "{}ms", d.as_millis())
        } else if d.as_secs().is_multiple_of(DAY) {
            write!(f, "{}d", d.as_secs() / DAY)
        } else {
            write!(f, "{}s", d.as_secs())
        }
    }
}

/// How far ahead [`never_fires`] looks for a fire time.
pub const CRON_HORIZON_YEARS: u32 = 10;

/// Why a parsed cron schedule can never be used, or `None` when it fires within
/// [`CRON_HORIZON_YEARS`] years of `now`: the words that follow "expected" in an error, such
/// as `an expression that fires: "0 0 30 2 *" has no fire time in the next 10 years`.
#[must_use]
pub fn never_fires(
    cron: &croner::Cron,
    expression: &str,
    zone: chrono_tz::Tz,
    now: SystemTime,
) -> Option<String> {
    // A time chrono cannot represent (a start time set far off) is not refused here.
    let now = utc(now)?.with_timezone(&zone);
    let horizon = now.checked_add_signed(chrono::Duration::days(
        365 * i64::from(CRON_HORIZON_YEARS) + 3,
    ));
    match cron.find_next_occurrence(&now, false) {
        Ok(next) if horizon.is_none_or(|horizon| next <= horizon) => None,
        _ => Some(format!(
            "an expression that fires: {expression:?} has no fire time in the next \
             {CRON_HORIZON_YEARS} years"
        )),
    }
}

/// `at` as a UTC date and time, when chrono can represent it.
#[must_use]
pub fn utc(at: SystemTime) -> Option<chrono::DateTime<chrono::Utc>> {
    let since = at.duration_since(SystemTime::UNIX_EPOCH).ok()?;
    chrono::DateTime::from_timestamp(i64::try_from(since.as_secs()).ok()?, since.subsec_nanos())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_listed_once() {
        for (i, (key, _)) in RANGES.iter().enumerate() {
            assert!(
                RANGES[i + 1..].iter().all(|(other, _)| other != key),
                "{key}"
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
        let parse = |expression| {
            croner::parser::CronParser::builder()
                .seconds(croner::parser::Seconds::Optional)
                .build()
                .parse(expression)
                .unwrap()
        };
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
}
