//! Cron schedules: a cron expression evaluated in an IANA time zone.
//!
//! Daylight-saving transitions follow croner's rules (the Open Cron Pattern Specification):
//! a time-of-day expression whose local time falls in a skipped hour (spring forward) runs at the
//! first instant after the gap, so the day's run is not lost; one whose local time happens twice
//! (fall back) runs once, at the first occurrence. Interval expressions (`*/15` minutes, every
//! hour) keep their interval in real time across both transitions.

use std::fmt;
use std::time::SystemTime;

use chrono::Utc;
use chrono_tz::Tz;

/// A parsed cron expression and the time zone it is read in.
#[derive(Clone)]
pub struct CronSchedule {
    expression: String,
    zone: Tz,
    cron: worker_keys::Cron,
}

impl CronSchedule {
    /// Parses `expression` (5 fields read as Unix cron, 6 with seconds first as Spring's
    /// `CronExpression`, 7 with a year last as Quartz, or a nickname such as `@daily`; the
    /// attribute's manual has the table) in the IANA time zone `zone` (`"UTC"`,
    /// `"Europe/Berlin"`, ...), with the parser `#[worker(cron = ..)]` checks at compile time. Use it to preview
    /// a schedule with [`next_after`](Self::next_after).
    ///
    /// ```
    /// use worker_core::cron::{CronSchedule, ParseErrorKind};
    ///
    /// let nightly = CronSchedule::parse("0 30 2 * * *", "Europe/Berlin").unwrap();
    /// assert_eq!(nightly.zone(), "Europe/Berlin");
    /// let err = CronSchedule::parse("0 30 2 * * *", "Mars/Olympus").unwrap_err();
    /// assert_eq!(err.kind(), &ParseErrorKind::UnknownTimeZone);
    /// ```
    pub fn parse(expression: &str, zone: &str) -> Result<Self, ParseError> {
        let error = |kind| ParseError {
            expression: expression.to_owned(),
            zone: zone.to_owned(),
            kind,
        };
        let cron = worker_keys::cron(expression)
            .map_err(|reason| error(ParseErrorKind::InvalidExpression { reason }))?;
        let zone = zone
            .parse::<Tz>()
            .map_err(|_| error(ParseErrorKind::UnknownTimeZone))?;
        Ok(Self {
            expression: expression.to_owned(),
            zone,
            cron,
        })
    }

    /// The first fire time strictly after `after`, or `None` if the expression never fires
    /// again.
    #[must_use]
    pub fn next_after(&self, after: SystemTime) -> Option<SystemTime> {
        let local = worker_keys::utc(after)?.with_timezone(&self.zone);
        let next = self.cron.next_after(&local)?;
        Some(next.with_timezone(&Utc).into())
    }

    /// The expression as written.
    #[must_use]
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The time zone's IANA name.
    #[must_use]
    pub fn zone(&self) -> &str {
        self.zone.name()
    }
}

impl fmt::Debug for CronSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cron {:?} in {}", self.expression, self.zone.name())
    }
}

impl fmt::Display for CronSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cron \"{}\" {}", self.expression, self.zone.name())
    }
}

/// Why [`CronSchedule::parse`] refused its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    expression: String,
    zone: String,
    kind: ParseErrorKind,
}

/// What [`ParseError`] is about.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseErrorKind {
    /// The expression does not parse; `reason` says why (`number out of bounds`).
    InvalidExpression {
        /// What is wrong with it, as a clause.
        reason: String,
    },
    /// The time zone is not an IANA name (names are case-sensitive).
    UnknownTimeZone,
}

impl ParseError {
    /// What is wrong.
    #[must_use]
    pub fn kind(&self) -> &ParseErrorKind {
        &self.kind
    }

    /// The expression as given.
    #[must_use]
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The time zone as given.
    #[must_use]
    pub fn zone(&self) -> &str {
        &self.zone
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ParseErrorKind::InvalidExpression { reason } => write!(
                f,
                "invalid cron expression {:?}: {reason}; expected {}",
                self.expression,
                worker_keys::CRON_FORMS
            ),
            ParseErrorKind::UnknownTimeZone => write!(
                f,
                "unknown time zone {:?}: expected {}",
                self.zone,
                worker_keys::ZONE_FORMS
            ),
        }
    }
}

impl std::error::Error for ParseError {}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;
    use chrono::TimeZone as _;

    fn berlin(y: i32, m: u32, d: u32, h: u32, min: u32) -> SystemTime {
        chrono_tz::Europe::Berlin
            .with_ymd_and_hms(y, m, d, h, min, 0)
            .earliest()
            .expect("a valid local time")
            .with_timezone(&Utc)
            .into()
    }

    fn local(t: SystemTime) -> String {
        DateTime::<Utc>::from(t)
            .with_timezone(&chrono_tz::Europe::Berlin)
            .format("%m-%d %H:%M %Z")
            .to_string()
    }

    /// The next three fire times of a daily 02:30 Berlin job after `start`, in local time.
    fn daily_at_half_past_two_after(start: SystemTime) -> Vec<String> {
        let daily = CronSchedule::parse("0 30 2 * * *", "Europe/Berlin").unwrap();
        let mut at = start;
        (0..3)
            .map(|_| {
                at = daily.next_after(at).unwrap();
                local(at)
            })
            .collect()
    }

    #[test]
    fn reads_seconds_and_zones() {
        let every_five = CronSchedule::parse("0 */5 * * * *", "Europe/Berlin").unwrap();
        let start = berlin(2026, 6, 1, 12, 1);
        assert_eq!(
            local(every_five.next_after(start).unwrap()),
            "06-01 12:05 CEST"
        );
        let err = CronSchedule::parse("61 * * * * *", "UTC").unwrap_err();
        assert_eq!(
            err.kind(),
            &ParseErrorKind::InvalidExpression {
                reason: "number out of bounds".to_owned()
            }
        );
        assert!(
            err.to_string().starts_with(
                "invalid cron expression \"61 * * * * *\": number out of bounds; expected"
            ),
            "{err}"
        );
        let err = CronSchedule::parse("* * * * *", "Mars/Olympus").unwrap_err();
        assert_eq!(err.kind(), &ParseErrorKind::UnknownTimeZone);
        assert_eq!(err.zone(), "Mars/Olympus");
    }

    #[test]
    fn spring_forward_runs_the_skipped_time_after_the_gap() {
        // 2026-03-29: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist that day.
        assert_eq!(
            daily_at_half_past_two_after(berlin(2026, 3, 28, 12, 0)),
            ["03-29 03:00 CEST", "03-30 02:30 CEST", "03-31 02:30 CEST"]
        );
    }

    #[test]
    fn fall_back_runs_a_repeated_time_once() {
        // 2026-10-25: 03:00 CEST falls back to 02:00 CET; 02:30 happens twice.
        assert_eq!(
            daily_at_half_past_two_after(berlin(2026, 10, 24, 12, 0)),
            ["10-25 02:30 CEST", "10-26 02:30 CET", "10-27 02:30 CET"]
        );
    }
}
