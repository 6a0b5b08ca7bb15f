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
use croner::Cron;
use croner::parser::{CronParser, Seconds};

/// A parsed cron expression and the time zone it is read in.
#[derive(Clone)]
pub struct CronSchedule {
    expression: String,
    zone: Tz,
    cron: Cron,
}

impl CronSchedule {
    /// Parses `expression` (5 fields, or 6 with seconds first) in the IANA time zone `zone`
    /// (`"UTC"`, `"Europe/Berlin"`, ...).
    ///
    /// The error is a sentence saying what is wrong, for messages that name the key.
    pub fn parse(expression: &str, zone: &str) -> Result<Self, String> {
        let cron = parser()
            .parse(expression)
            .map_err(|err| format!("invalid cron expression `{expression}`: {err}"))?;
        let zone = parse_zone(zone)?;
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
        let next = self.cron.find_next_occurrence(&local, false).ok()?;
        Some(next.with_timezone(&Utc).into())
    }

    /// Why this schedule can never be used (it has no fire time in the next few years after
    /// `now`), as the words after "expected" in an error; `None` when it fires.
    pub(crate) fn never_fires(&self, now: SystemTime) -> Option<String> {
        worker_keys::never_fires(&self.cron, &self.expression, self.zone, now)
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

fn parser() -> CronParser {
    CronParser::builder().seconds(Seconds::Optional).build()
}

fn parse_zone(zone: &str) -> Result<Tz, String> {
    zone.parse::<Tz>().map_err(|_| {
        format!(
            "unknown time zone `{zone}`: expected an IANA name such as `UTC` or `Europe/Berlin`"
        )
    })
}

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
        assert!(CronSchedule::parse("61 * * * * *", "UTC").is_err());
        assert!(CronSchedule::parse("* * * * *", "Mars/Olympus").is_err());
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
