//! THE table of worker keys, shared by the `#[worker]` attribute (at compile time) and by
//! `worker-core` (when a host is built: for the builder, the configuration file and the
//! environment), so that each entry point accepts the same values and refuses the others with
//! the same words:
//!
//! - [`KEYS`]: one [`Key`] row per key (name, [`Kind`], [`Default`], example, meaning);
//! - [`parse`]: a key's value from text, the one parser of every entry point;
//! - [`Settings::check`]: every value against its key, then the rules over several keys;
//! - [`Refusal`]: what was refused (key, value as written, what was expected), whose `Display`
//!   is the one wording.
//!
//! Not meant to be used directly: depend on `worker-core`.
#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub
)]
#![forbid(unsafe_code)]

mod check;
#[cfg(feature = "cron")]
mod cron;
mod parse;
mod range;
mod show;
mod table;

#[cfg(feature = "cron")]
use std::time::SystemTime;

pub use crate::check::{Refusal, Settings};
#[cfg(feature = "cron")]
pub use crate::cron::Cron;
#[cfg(feature = "cron")]
pub use crate::parse::cron;
pub use crate::parse::{CRON_FORMS, DURATION_FORMS, Value, ZONE_FORMS, expected, parse, validate};
pub use crate::range::{Expected, HOST_RANGES, MAX_DURATION, MIN_PERIOD, Range, range};
pub use crate::show::{Shown, show};
pub use crate::table::{
    Applies, BACKOFF_KIND, Choice, DEFAULT_BACKOFF, DEFAULT_BACKOFF_MAX, DEFAULT_CAPACITY,
    DEFAULT_CATCH_UP, DEFAULT_CIRCUIT_BREAK, DEFAULT_CIRCUIT_FAILURE_RATIO,
    DEFAULT_CIRCUIT_MIN_THROUGHPUT, DEFAULT_CIRCUIT_WINDOW, DEFAULT_CONCURRENCY, DEFAULT_LEASE,
    DEFAULT_RESTART_WINDOW, DEFAULT_STALE_PERIODS, DEFAULT_TIME_ZONE, DELAY, DefaultValue,
    ESCALATE, KEYS, Key, Kind, LEASE, MIN_DEFAULT_STALE_AFTER, MISSED, ON_PANIC, OVERLAP, PERIOD,
    SCHEDULES, SPAN_LEVEL, TRIGGERS, key,
};

#[cfg(not(feature = "cron"))]
pub use crate::parse::NO_CRON;

/// How far ahead [`never_fires`] looks for a fire time.
pub const CRON_HORIZON_YEARS: u32 = 10;

/// Why a parsed cron schedule can never be used, or `None` when it fires within
/// [`CRON_HORIZON_YEARS`] years of `now`: the words that follow "expected" in an error, such
/// as `an expression that fires: "0 0 30 2 *" has no fire time in the next 10 years`.
#[cfg(feature = "cron")]
#[must_use]
pub fn never_fires(
    cron: &Cron,
    expression: &str,
    zone: chrono_tz::Tz,
    now: SystemTime,
) -> Option<String> {
    // A time chrono cannot represent (a start time set far off) is not refused here.
    let now = utc(now)?.with_timezone(&zone);
    let horizon = now.checked_add_signed(chrono::Duration::days(
        365 * i64::from(CRON_HORIZON_YEARS) + 3,
    ));
    match cron.next_after(&now) {
        Some(next) if horizon.is_none_or(|horizon| next <= horizon) => None,
        _ => Some(format!(
            "an expression that fires: {expression:?} has no fire time in the next \
             {CRON_HORIZON_YEARS} years"
        )),
    }
}

/// `at` as a UTC date and time, when chrono can represent it.
#[cfg(feature = "cron")]
#[must_use]
pub fn utc(at: SystemTime) -> Option<chrono::DateTime<chrono::Utc>> {
    let since = at.duration_since(SystemTime::UNIX_EPOCH).ok()?;
    chrono::DateTime::from_timestamp(i64::try_from(since.as_secs()).ok()?, since.subsec_nanos())
}

#[cfg(all(test, feature = "cron"))]
mod tests;
