//! Reading a key's value from text, the one parser every entry point uses: the attribute turns
//! its literal into text (the digits of an integer, the identifier of a choice, `allow(3)`), a
//! TOML scalar is its text, and an environment variable is text already.

use std::fmt;
use std::time::Duration;

use crate::check::Refusal;
use crate::range::Range;
use crate::table::{Choice, Key, Kind, OVERLAP};

/// A parsed value of a key.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Value {
    /// Of a [`Kind::Duration`] key.
    Duration(Duration),
    /// Of a [`Kind::Count`] key.
    Count(u32),
    /// Of a [`Kind::Ratio`] key.
    Ratio(f64),
    /// Of a [`Kind::Bool`] key.
    Bool(bool),
    /// Of a [`Kind::Flag`] key: it is set.
    Flag,
    /// One option of a [`Kind::Choice`] key, or `skip`/`queue` of `overlap`.
    Choice(&'static str),
    /// `overlap = allow(n)`.
    Allow(u32),
    /// Of a name, a cron expression or a time zone.
    Text(String),
}

impl fmt::Display for Value {
    /// The value as the keys are written: `"1m 30s"`, `3`, `skip`, `allow(2)`, `"UTC"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Duration(d) => write!(f, "\"{}\"", crate::show(*d)),
            Self::Count(n) => write!(f, "{n}"),
            Self::Ratio(x) => write!(f, "{x}"),
            Self::Bool(b) => write!(f, "{b}"),
            Self::Flag => f.write_str("true"),
            Self::Choice(option) => f.write_str(option),
            Self::Allow(n) => write!(f, "allow({n})"),
            Self::Text(text) => write!(f, "{text:?}"),
        }
    }
}

impl Key {
    /// The key's default as a value, for the kinds whose default is one.
    #[must_use]
    pub fn default_value(&self) -> Option<Value> {
        use crate::table::DefaultValue as D;
        match self.default {
            D::Duration(d) => Some(Value::Duration(d)),
            D::Count(n) => Some(Value::Count(n)),
            D::Ratio(x) => Some(Value::Ratio(x)),
            D::Bool(b) => Some(Value::Bool(b)),
            D::Choice(option) => Some(Value::Choice(option)),
            D::Text(text) => Some(Value::Text(text.to_owned())),
            D::None(_) => None,
        }
    }
}

/// How a duration is written, after "expected".
pub const DURATION_FORMS: &str = "a duration such as \"250ms\", \"10s\", \"5m\" or \"1h\"";

/// How a cron expression is written, after "expected".
pub const CRON_FORMS: &str = "a cron expression of 5 fields (minute, hour, day of month, month, \
                              day of week) as in Unix cron, 6 with seconds first as in Spring, \
                              7 with a year last as in Quartz, or a nickname such as `@daily`";

/// How a time zone is written, after "expected".
pub const ZONE_FORMS: &str = "an IANA time zone name such as `UTC` or `Europe/Berlin` (names are \
                              case-sensitive)";

/// What `key` accepts, as every refusal says it after "expected".
#[must_use]
pub fn expected(key: &Key) -> String {
    match key.kind {
        Kind::Duration(range) | Kind::Count(range) => range.expected().to_string(),
        Kind::Ratio => Range::Ratio.expected().to_string(),
        Kind::Bool => "`true` or `false`".to_owned(),
        Kind::Flag => format!(
            "`true` (leave `{}` out to run on `every`, `fixed_delay` or `cron`)",
            key.name
        ),
        Kind::Choice(choice) => format!("one of {}", options(choice, None)),
        Kind::Overlap(range) => format!(
            "one of {}, with n {}",
            options(&OVERLAP, Some("`allow(n)`")),
            range.expected()
        ),
        Kind::Name => "a non-empty name".to_owned(),
        Kind::Cron => CRON_FORMS.to_owned(),
        Kind::TimeZone => ZONE_FORMS.to_owned(),
    }
}

/// "`a`, `b` or `c`".
fn options(choice: &Choice, more: Option<&str>) -> String {
    let mut forms: Vec<String> = choice
        .options
        .iter()
        .map(|(option, _)| format!("`{option}`"))
        .collect();
    forms.extend(more.map(str::to_owned));
    match forms.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => forms.concat(),
    }
}

/// Parses `text` as a value of `key` and checks it against the key's range: what the
/// attribute, the configuration file and the environment all call.
pub fn parse(key: &'static Key, text: &str) -> Result<Value, Refusal> {
    let refuse = |expected: String| Refusal::new(key.name, format!("{text:?}"), expected);
    let trimmed = text.trim();
    let value = match key.kind {
        Kind::Duration(range) => match duration(trimmed) {
            Ok(d) => Value::Duration(d),
            Err(Some(reason)) => return Err(refuse(format!("{DURATION_FORMS} ({reason})"))),
            // Too large to represent: beyond any range.
            Err(None) => return Err(refuse(range.expected().to_string())),
        },
        Kind::Count(_) => match trimmed.parse::<u64>() {
            Ok(n) => Value::Count(u32::try_from(n).unwrap_or(u32::MAX)),
            Err(_) => return Err(refuse(expected(key))),
        },
        Kind::Ratio => match trimmed.parse::<f64>() {
            Ok(x) if x.is_finite() => Value::Ratio(x),
            _ => return Err(refuse(expected(key))),
        },
        Kind::Bool => match trimmed {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => return Err(refuse(expected(key))),
        },
        Kind::Flag if trimmed == "true" => Value::Flag,
        Kind::Choice(choice) => match option(choice, trimmed) {
            Some(option) => Value::Choice(option),
            None => return Err(refuse(expected(key))),
        },
        Kind::Overlap(_) => match (option(&OVERLAP, trimmed), allow(trimmed)) {
            (Some(option), _) => Value::Choice(option),
            (None, Some(n)) => Value::Allow(n),
            (None, None) => return Err(refuse(expected(key))),
        },
        Kind::Name | Kind::Cron | Kind::TimeZone => Value::Text(text.to_owned()),
        Kind::Flag => return Err(refuse(expected(key))),
    };
    validate(key, &value).map_err(|mut refusal| {
        refusal.value = Some(format!("{text:?}"));
        refusal
    })?;
    Ok(value)
}

/// Checks a value against what `key` accepts (its range, a cron expression that parses, a
/// known time zone, a name that is not empty): [`parse`] calls it, and so does
/// [`Settings::check`](crate::Settings::check) for values given in code.
pub fn validate(key: &'static Key, value: &Value) -> Result<(), Refusal> {
    let fits = match (key.kind, value) {
        (Kind::Duration(range), Value::Duration(d)) => range.contains_duration(*d),
        (Kind::Count(range), Value::Count(n)) | (Kind::Overlap(range), Value::Allow(n)) => {
            range.contains_count(u64::from(*n))
        }
        (Kind::Ratio, Value::Ratio(x)) => Range::Ratio.contains_ratio(*x),
        (Kind::Name, Value::Text(name)) => !name.trim().is_empty(),
        #[cfg(feature = "cron")]
        (Kind::Cron, Value::Text(expression)) => {
            return cron(expression).map(drop).map_err(|reason| {
                Refusal::new(key.name, value, format!("{CRON_FORMS} ({reason})"))
            });
        }
        #[cfg(feature = "cron")]
        (Kind::TimeZone, Value::Text(zone)) => zone.parse::<chrono_tz::Tz>().is_ok(),
        #[cfg(not(feature = "cron"))]
        (Kind::Cron | Kind::TimeZone, _) => {
            return Err(Refusal::new(key.name, value, NO_CRON));
        }
        _ => true,
    };
    if fits {
        Ok(())
    } else {
        Err(Refusal::new(key.name, value, expected(key)))
    }
}

fn option(choice: &Choice, text: &str) -> Option<&'static str> {
    choice
        .options
        .iter()
        .find(|(option, _)| *option == text)
        .map(|(option, _)| *option)
}

/// `allow(n)`, spaces allowed inside the parentheses.
fn allow(text: &str) -> Option<u32> {
    let n = text.strip_prefix("allow")?.trim_start().strip_prefix('(')?;
    let n: u64 = n.strip_suffix(')')?.trim().parse().ok()?;
    Some(u32::try_from(n).unwrap_or(u32::MAX))
}

/// A duration; `Err(None)` for one too large to represent, `Err(Some(reason))` otherwise.
fn duration(text: &str) -> Result<Duration, Option<String>> {
    if text.starts_with('-') {
        return Err(Some("a duration cannot be negative".to_owned()));
    }
    humantime::parse_duration(text).map_err(|err| match err {
        humantime::DurationError::NumberOverflow => None,
        humantime::DurationError::Empty => Some("the duration is empty".to_owned()),
        humantime::DurationError::UnknownUnit { unit, .. } if unit.is_empty() => {
            Some("a number needs a unit, such as `s`".to_owned())
        }
        humantime::DurationError::UnknownUnit { unit, .. } => {
            Some(format!("unknown unit `{unit}`"))
        }
        _ => Some("not a number and a unit".to_owned()),
    })
}

/// What a `cron` or `time_zone` value gets without the `cron` feature.
#[cfg(not(feature = "cron"))]
pub const NO_CRON: &str = "no cron schedule: this build of worker-core has its `cron` feature \
                           off; turn it on, or use `every` or `fixed_delay`";

/// Parses a cron expression in its dialect (see [`Cron`](crate::Cron)); the error is a
/// rustc-style clause.
#[cfg(feature = "cron")]
pub fn cron(expression: &str) -> Result<crate::cron::Cron, String> {
    crate::cron::Cron::parse(expression)
}
