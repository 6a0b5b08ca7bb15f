//! Cron expressions in the dialects users arrive with, read by croner:
//!
//! - **5 fields** (minute, hour, day of month, month, day of week) mean what they mean in Unix
//!   cron: when both days are restricted, a day matching either runs (`0 0 13 * 5` is every
//!   13th and every Friday).
//! - **6 fields** (seconds first) mean what they mean in Spring's `CronExpression`, and **7**
//!   (a year last) what they mean in Quartz: every field must match, so `0 0 0 13 * FRI` is
//!   Friday the 13th only; `N/step` counts from `N` to the field's end (`0/30` seconds is `0,30`,
//!   `1/3` months is January, April, July, October); a day-of-week range that starts at `7`
//!   starts on Sunday (`7-5` is Sunday to Friday); `L-n` in the day of month is the `n`th day
//!   before the last one (`L-3`); `L` alone in the day of week names no day and is refused
//!   (Spring: "No day-of-week before 'L'").
//! - Nicknames: `@yearly` (`@annually`), `@monthly`, `@weekly`, `@daily` (`@midnight`),
//!   `@hourly`.
//!
//! Both forms: `*`, `?` (any, in the two day fields), lists `a,b`, ranges `a-b`, steps
//! `*/n` and `a-b/n`, names `JAN`-`DEC` and `SUN`-`SAT` (0 and 7 are Sunday), `L` (the last day
//! of the month), `LW` (its last weekday), `nW` (the weekday nearest the `n`th), `nL` or `FRIL`
//! (the last Friday of the month) and `n#k` (the `k`th such day of the month).

use chrono::{DateTime, Datelike as _, Duration, NaiveTime, TimeZone};
use croner::parser::{CronParser, Seconds};

/// A parsed cron expression, in the dialect its number of fields says: 5 read as Unix cron,
/// 6 (seconds first) as Spring's `CronExpression`, 7 (a year last) as Quartz.
#[derive(Debug, Clone)]
pub struct Cron {
    croner: croner::Cron,
    /// `L-n` in the day of month: croner finds the other fields' times, which are kept on the
    /// `n`th day before the last of their month only.
    before_last_day: Option<u32>,
}

/// The largest value of each of the six fields Spring's `N/step` counts up to.
const FIELD_MAX: [&str; 6] = ["59", "59", "23", "31", "12", "7"];
/// Day-of-month and day-of-week, in the six fields.
const DAY_OF_MONTH: usize = 3;
const DAY_OF_WEEK: usize = 5;

impl Cron {
    /// Parses `expression`; the error is a clause such as `` `L` alone in the day-of-week field
    /// names no day: write `5L` or `FRIL` for the last Friday of the month ``.
    pub fn parse(expression: &str) -> Result<Self, String> {
        let trimmed = expression.trim();
        let nickname = match trimmed {
            "@midnight" => Some("@daily"),
            "@annually" => Some("@yearly"),
            _ => None,
        };
        let fields: Vec<&str> = trimmed.split_whitespace().collect();
        if nickname.is_some() || fields.len() < 6 {
            // Unix cron, or a nickname: croner's own reading.
            let croner = CronParser::builder()
                .seconds(Seconds::Optional)
                .build()
                .parse(nickname.unwrap_or(trimmed))
                .map_err(reason)?;
            return Ok(Self {
                croner,
                before_last_day: None,
            });
        }
        let mut before_last_day = None;
        let mut rewritten = Vec::with_capacity(fields.len());
        for (index, field) in fields.iter().enumerate() {
            if index == DAY_OF_MONTH
                && let Some(offset) = field.strip_prefix("L-")
            {
                let offset = offset
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=30).contains(n))
                    .ok_or_else(|| {
                        format!("`{field}` in the day-of-month field: `L-n` takes n from 1 to 30")
                    })?;
                before_last_day = Some(offset);
                rewritten.push("*".to_owned());
                continue;
            }
            if index == DAY_OF_WEEK && *field == "L" {
                return Err(
                    "`L` alone in the day-of-week field names no day: write `5L` or \
                            `FRIL` for the last Friday of the month"
                        .to_owned(),
                );
            }
            let parts: Vec<String> = field
                .split(',')
                .map(|part| spring_part(part, index))
                .collect();
            rewritten.push(parts.join(","));
        }
        let croner = CronParser::builder()
            .seconds(Seconds::Required)
            .dom_and_dow(true)
            .build()
            .parse(&rewritten.join(" "))
            .map_err(reason)?;
        Ok(Self {
            croner,
            before_last_day,
        })
    }

    /// The first fire time strictly after `after`, in `after`'s time zone; `None` when there is
    /// none within croner's search limit (about five years).
    pub fn next_after<Tz: TimeZone>(&self, after: &DateTime<Tz>) -> Option<DateTime<Tz>> {
        let mut from = after.clone();
        // One candidate day per turn: about 31 a month for ten years at most.
        for _ in 0..4000 {
            let next = self.croner.find_next_occurrence(&from, false).ok()?;
            let Some(offset) = self.before_last_day else {
                return Some(next);
            };
            let last = last_day_of_month(next.year(), next.month())?;
            if last > offset && next.day() == last - offset {
                return Some(next);
            }
            // No time of that day is kept: go on from its last second.
            let end = next
                .date_naive()
                .and_time(NaiveTime::from_hms_opt(23, 59, 59)?);
            from = match next.timezone().from_local_datetime(&end).latest() {
                Some(end) if end > next => end,
                _ => next + Duration::hours(1),
            };
        }
        None
    }
}

/// One comma-separated part of field `index` of a six- or seven-field expression, in croner's
/// syntax: `N/step` becomes `N-<end>/step`, and a day-of-week range from 7 starts at 0.
fn spring_part(part: &str, index: usize) -> String {
    let part = match index {
        DAY_OF_WEEK => match part.strip_prefix("7-") {
            Some(rest) => format!("0-{rest}"),
            None => part.to_owned(),
        },
        _ => part.to_owned(),
    };
    match (part.split_once('/'), FIELD_MAX.get(index)) {
        (Some((start, step)), Some(end)) if start != "*" && !start.contains('-') => {
            format!("{start}-{end}/{step}")
        }
        _ => part,
    }
}

fn last_day_of_month(year: i32, month: u32) -> Option<u32> {
    let (year, month) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    Some(
        chrono::NaiveDate::from_ymd_opt(year, month, 1)?
            .pred_opt()?
            .day(),
    )
}

/// croner's reason, as a rustc-style clause: its messages are sentences under a category
/// ("Component error: Number out of bounds."), and call the expression a `CronPattern`.
fn reason(err: croner::errors::CronError) -> String {
    use croner::errors::CronError;

    let reason = match err {
        CronError::InvalidPattern(reason)
        | CronError::IllegalCharacters(reason)
        | CronError::ComponentError(reason) => reason,
        other => other.to_string(),
    };
    let reason = reason
        .trim()
        .trim_end_matches('.')
        .replace("CronPattern", "the expression");
    let mut chars = reason.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => reason,
    }
}
