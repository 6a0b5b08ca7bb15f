//! Durations written as the keys are: in days, hours, minutes, seconds and their fractions,
//! never in months or years, whose length varies (`"366d"`, not `"1year 18h"`).

use std::fmt;
use std::time::Duration;

/// `duration` as a key's value is written: `"366d"`, `"1h 30m"`, `"250ms"`, `"0s"`; what
/// [`parse`](crate::parse) reads back as the same duration.
#[must_use]
pub fn show(duration: Duration) -> Shown {
    Shown(duration)
}

/// A duration shown as the keys write it; see [`show`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shown(Duration);

impl fmt::Display for Shown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seconds = self.0.as_secs();
        let nanos = self.0.subsec_nanos();
        if seconds == 0 && nanos == 0 {
            return f.write_str("0s");
        }
        let parts = [
            (seconds / 86_400, "d"),
            (seconds / 3_600 % 24, "h"),
            (seconds / 60 % 60, "m"),
            (seconds % 60, "s"),
            (u64::from(nanos / 1_000_000), "ms"),
            (u64::from(nanos / 1_000 % 1_000), "us"),
            (u64::from(nanos % 1_000), "ns"),
        ];
        let mut first = true;
        for (value, unit) in parts {
            if value > 0 {
                if !first {
                    f.write_str(" ")?;
                }
                write!(f, "{value}{unit}")?;
                first = false;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_days_and_smaller_units_only_and_reads_back() {
        let cases = [
            (Duration::ZERO, "0s"),
            (Duration::from_hours(366 * 24), "366d"),
            (Duration::from_mins(90), "1h 30m"),
            (Duration::from_millis(250), "250ms"),
            (Duration::new(90_061, 1_002_003), "1d 1h 1m 1s 1ms 2us 3ns"),
        ];
        for (duration, text) in cases {
            assert_eq!(show(duration).to_string(), text);
            assert_eq!(humantime::parse_duration(text).unwrap(), duration, "{text}");
        }
    }
}
