//! The valid range of every duration and number, and the words that say it.

use std::fmt;
use std::time::Duration;

use crate::table::{DELAY, Key, PERIOD};

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

/// The host settings with a range (the keys of workers have theirs in [`KEYS`](crate::KEYS)).
pub const HOST_RANGES: &[(&str, Range)] = &[
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
    ("metrics_facade_every", PERIOD),
];

/// The range of `key`, a worker key or a host setting, if it has one.
#[must_use]
pub fn range(key: &str) -> Option<Range> {
    crate::table::key(key).and_then(Key::range).or_else(|| {
        HOST_RANGES
            .iter()
            .find(|(name, _)| *name == key)
            .map(|(_, range)| *range)
    })
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
pub(crate) struct ShortDuration(pub(crate) Duration);

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
