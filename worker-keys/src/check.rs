//! The declared values of one worker and the one check of them: every value against its key,
//! then the rules that involve several keys. The attribute, the builder, the configuration
//! file and the environment all end here, so they refuse the same values with the same words.

use std::fmt;
use std::time::{Duration, SystemTime};

use crate::parse::{Value, validate};
#[cfg(feature = "cron")]
use crate::table::DEFAULT_TIME_ZONE;
use crate::table::{self, Applies, DEFAULT_BACKOFF, DEFAULT_BACKOFF_MAX, Key};

/// A value refused: the key, the value as written, and what was expected.
///
/// Its `Display` is the one wording every entry point uses; each adds where the value came
/// from (a span, `worker `x`: `, a file path or an environment variable).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Refusal {
    /// The key refused; `trigger` when no trigger is given.
    pub key: &'static str,
    /// The value as written; `None` when the key is missing.
    pub value: Option<String>,
    /// What was expected, the words after "expected".
    pub expected: String,
}

impl Refusal {
    /// A refused value.
    pub fn new(key: &'static str, value: impl fmt::Display, expected: impl Into<String>) -> Self {
        Self {
            key,
            value: Some(value.to_string()),
            expected: expected.into(),
        }
    }

    /// No trigger at all.
    #[must_use]
    pub fn missing_trigger() -> Self {
        Self {
            key: "trigger",
            value: None,
            expected: "a trigger, one of `every`, `fixed_delay`, `cron`, `once` or `queue`, \
                       such as `every = \"10s\"` or `queue = \"emails\"`"
                .to_owned(),
        }
    }

    /// A second trigger, `key` = `value`, given where `first` (a key, or where it came from)
    /// already set one.
    pub fn second_trigger(key: &'static str, value: impl fmt::Display, first: &str) -> Self {
        Self::new(
            key,
            value,
            format!(
                "a single trigger, and {first} sets one already: {}",
                one_trigger()
            ),
        )
    }
}

fn one_trigger() -> String {
    "a worker has exactly one of `every`, `fixed_delay`, `cron`, `once` or `queue`".to_owned()
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(value) => write!(
                f,
                "invalid `{}` = {value}: expected {}",
                self.key, self.expected
            ),
            None => write!(f, "missing {}: expected {}", self.key, self.expected),
        }
    }
}

impl std::error::Error for Refusal {}

/// The values given for one worker, by key; a key not given has its default.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    values: Vec<(&'static Key, Value)>,
}

impl Settings {
    /// No values.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `key`: a schedule replaces any other schedule (a `queue` stays, and the check
    /// refuses the pair).
    pub fn set(&mut self, key: &'static Key, value: Value) {
        self.values
            .retain(|(k, _)| k.name != key.name && !(key.is_schedule() && k.is_schedule()));
        self.values.push((key, value));
    }

    /// Keeps only the values `keep` says yes to.
    pub fn retain(&mut self, mut keep: impl FnMut(&'static Key, &Value) -> bool) {
        self.values.retain(|(k, v)| keep(k, v));
    }

    /// Sets the key named `name`, which must be one.
    ///
    /// # Panics
    ///
    /// When `name` is not a key: a mistake in the code that calls it.
    #[must_use]
    pub fn with(mut self, name: &str, value: Value) -> Self {
        self.put(name, value);
        self
    }

    /// Sets the key named `name`, which must be one.
    ///
    /// # Panics
    ///
    /// When `name` is not a key: a mistake in the code that calls it.
    pub fn put(&mut self, name: &str, value: Value) {
        let key = table::key(name).unwrap_or_else(|| panic!("`{name}` is not a key"));
        self.set(key, value);
    }

    /// Forgets `name`, so it has its default again.
    pub fn remove(&mut self, name: &str) {
        self.values.retain(|(k, _)| k.name != name);
    }

    /// The value given for `name`.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.values
            .iter()
            .find(|(k, _)| k.name == name)
            .map(|(_, v)| v)
    }

    /// The values given, in the order they were set.
    pub fn iter(&self) -> impl Iterator<Item = (&'static Key, &Value)> {
        self.values.iter().map(|(k, v)| (*k, v))
    }

    /// The trigger key given, if any.
    #[must_use]
    pub fn trigger(&self) -> Option<(&'static Key, &Value)> {
        self.iter().find(|(k, _)| k.is_trigger())
    }

    fn duration(&self, name: &str) -> Option<Duration> {
        match self.get(name) {
            Some(Value::Duration(d)) => Some(*d),
            _ => None,
        }
    }

    /// Checks every value against its key, then what involves several keys: one trigger,
    /// each key only on the workers it applies to (`time_zone` only with `cron`, `concurrency`
    /// only with `queue`, `missed` only on a schedule, ...), a `cron` that fires after `now`, `jitter` shorter than
    /// `every`, `backoff` no longer than `backoff_max`. The first refusal is returned.
    #[cfg_attr(
        not(feature = "cron"),
        allow(unused_variables, reason = "only a cron schedule reads the time")
    )]
    pub fn check(&self, now: SystemTime) -> Result<(), Refusal> {
        for (key, value) in self.iter() {
            validate(key, value)?;
        }
        let Some((trigger, _)) = self.trigger() else {
            return Err(Refusal::missing_trigger());
        };
        if self.get("queue").is_some()
            && let Some((schedule, value)) = self.iter().find(|(k, _)| k.is_schedule())
        {
            return Err(Refusal::second_trigger(schedule.name, value, "`queue`"));
        }
        let durable = self.get("durable").is_some();
        let singleton = self.get("singleton").is_some();
        for (key, value) in self.iter() {
            let applies = match key.applies {
                Applies::Any => true,
                // At its default, a schedule key on a queue worker changes nothing.
                Applies::Schedule => {
                    trigger.is_schedule() || key.default_value().as_ref() == Some(value)
                }
                Applies::Cron => trigger.name == "cron",
                Applies::Queue => trigger.name == "queue",
                Applies::InProcess => trigger.name == "queue" && !durable,
                Applies::Durable => durable,
                Applies::Repeating => matches!(trigger.name, "every" | "cron"),
                Applies::Singleton => singleton,
                Applies::Leased => durable || singleton,
            };
            if !applies {
                let runs = match self.get("queue") {
                    Some(queue) if durable => format!("consumes the durable queue {queue}"),
                    Some(queue) => format!("consumes the queue {queue}"),
                    None if singleton && key.name != "singleton" => {
                        format!("is a singleton on `{}`", trigger.name)
                    }
                    None => format!("runs on `{}`", trigger.name),
                };
                return Err(Refusal::new(
                    key.name,
                    value,
                    format!(
                        "no `{}`: it only applies to {}, and this worker {runs}",
                        key.name,
                        key.applies.describe()
                    ),
                ));
            }
        }
        if singleton && let Some(missed @ Value::Choice("delay")) = self.get("missed") {
            return Err(Refusal::new(
                "missed",
                missed,
                "`skip` or `burst`: a singleton's ticks stay on the grid every replica shares, \
                 which `delay` would move",
            ));
        }
        #[cfg(feature = "cron")]
        if let Some(Value::Text(expression)) = self.get("cron") {
            let zone = match self.get("time_zone") {
                Some(Value::Text(zone)) => zone.parse().unwrap_or(chrono_tz::UTC),
                _ => DEFAULT_TIME_ZONE.parse().unwrap_or(chrono_tz::UTC),
            };
            if let Ok(cron) = crate::parse::cron(expression)
                && let Some(expected) = crate::never_fires(&cron, expression, zone, now)
            {
                return Err(Refusal::new("cron", format!("{expression:?}"), expected));
            }
        }
        if let (Some(jitter), Some(every)) = (self.duration("jitter"), self.duration("every"))
            && jitter >= every
        {
            return Err(Refusal::new(
                "jitter",
                Value::Duration(jitter),
                format!(
                    "a duration shorter than `every` ({}): each tick is delayed by up to \
                     `jitter`, which has to end before the next tick is due",
                    Value::Duration(every)
                ),
            ));
        }
        self.check_backoff()
    }

    /// `backoff <= backoff_max`, blaming the key that was moved off its default.
    fn check_backoff(&self) -> Result<(), Refusal> {
        let backoff = self.duration("backoff").unwrap_or(DEFAULT_BACKOFF);
        let max = self.duration("backoff_max").unwrap_or(DEFAULT_BACKOFF_MAX);
        if backoff <= max {
            return Ok(());
        }
        let (backoff, max) = (Value::Duration(backoff), Value::Duration(max));
        let refusal = if backoff == Value::Duration(DEFAULT_BACKOFF) {
            Refusal::new(
                "backoff_max",
                max,
                format!(
                    "a duration no shorter than `backoff` ({backoff}, its default): lower \
                     `backoff` too"
                ),
            )
        } else if max == Value::Duration(DEFAULT_BACKOFF_MAX) {
            Refusal::new(
                "backoff",
                backoff,
                format!(
                    "a duration no longer than `backoff_max` ({max}, its default): raise \
                     `backoff_max` too"
                ),
            )
        } else {
            Refusal::new(
                "backoff",
                backoff,
                format!(
                    "a duration no longer than `backoff_max` ({max}): the first retry waits \
                     `backoff`, later ones grow up to `backoff_max`"
                ),
            )
        };
        Err(refusal)
    }
}
