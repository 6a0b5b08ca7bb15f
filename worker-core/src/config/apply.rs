//! One override: its value parsed by the shared parser, set on the worker's declaration, and
//! the result checked by the shared check, with refusals naming where the value came from.

use std::time::SystemTime;

use worker_keys::{Key, Refusal};

use super::keys;
use crate::error::{Error, Kind};
use crate::worker::spec::Spec;

/// A value as a source wrote it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Raw<'a> {
    Toml(&'a toml::Value),
    Env(&'a str),
}

impl Raw<'_> {
    /// The value as text, for the shared parser: a TOML scalar is its text (`5`, `0.5`,
    /// `true`), anything else its TOML syntax, which no key accepts.
    fn text(self) -> String {
        match self {
            Self::Toml(toml::Value::String(text)) => text.clone(),
            Self::Toml(toml::Value::Integer(n)) => n.to_string(),
            Self::Toml(toml::Value::Float(x)) => x.to_string(),
            Self::Toml(toml::Value::Boolean(b)) => b.to_string(),
            Self::Toml(value) => value.to_string(),
            Self::Env(text) => text.to_owned(),
        }
    }

    /// The value as written, for messages: TOML syntax, or a quoted string.
    pub(crate) fn shown(self) -> String {
        match self {
            Self::Toml(value) => value.to_string(),
            Self::Env(text) => format!("{text:?}"),
        }
    }
}

/// One value for one key of one worker, and where it came from.
pub(crate) struct Override<'a> {
    /// Index of the worker in registration order.
    pub(crate) worker: usize,
    pub(crate) key: &'static Key,
    pub(crate) value: Raw<'a>,
    /// `path: workers.name.key` or `environment variable WORKER__NAME__KEY`.
    pub(crate) location: String,
    /// 0 for the file, 1 for the environment.
    pub(crate) source: u8,
}

pub(crate) fn unknown_key(
    worker: &str,
    location: String,
    value: Raw<'_>,
    key: &str,
    spell: impl Fn(&str) -> String,
) -> Error {
    let valid: Vec<String> = keys().map(spell).collect();
    let name = if key.eq_ignore_ascii_case("name") {
        " (a worker's name cannot be overridden)"
    } else if key.eq_ignore_ascii_case("queue") {
        " (a queue's name cannot be overridden: its producers ask for it by name)"
    } else {
        ""
    };
    Error::overridden(
        Some(worker),
        location,
        Some(value.shown()),
        format!(
            "unknown key `{key}`{name}; expected one of {}",
            valid.join(", ")
        ),
    )
}

/// Adds an override, refusing a second trigger for one worker from one source.
pub(crate) fn push<'a>(overrides: &mut Vec<Override<'a>>, new: Override<'a>) -> Result<(), Error> {
    if new.key.is_trigger()
        && let Some(other) = overrides
            .iter()
            .find(|o| o.worker == new.worker && o.source == new.source && o.key.is_trigger())
    {
        let refusal = Refusal::second_trigger(new.key.name, new.value.shown(), &other.location);
        return Err(Error::overridden(
            None,
            new.location,
            Some(new.value.shown()),
            format!("expected {}", refusal.expected),
        ));
    }
    overrides.push(new);
    Ok(())
}

/// An override that took effect: the key, where it came from, and the value as written.
struct Applied<'o> {
    key: &'static str,
    location: &'o str,
    shown: String,
}

/// Applies one worker's overrides (file ones first, so the environment wins), checks the
/// result, and logs what took effect.
pub(crate) fn apply_to(
    spec: &mut Spec,
    overrides: &[&Override<'_>],
    now: SystemTime,
) -> Result<(), Error> {
    let mut applied: Vec<Applied<'_>> = Vec::with_capacity(overrides.len());
    for o in overrides {
        let value = worker_keys::parse(o.key, &o.value.text()).map_err(|refusal| {
            Error::overridden(
                Some(&spec.name),
                o.location.clone(),
                Some(o.value.shown()),
                format!("expected {}", refusal.expected),
            )
        })?;
        spec.set(o.key, &value);
        applied.retain(|a| a.key != o.key.name && !(o.key.is_trigger() && is_trigger(a.key)));
        applied.push(Applied {
            key: o.key.name,
            location: &o.location,
            shown: o.value.shown(),
        });
    }
    // A declared zone belongs to the declared cron: an override that replaces the trigger by
    // another kind drops it, unless it is overridden too (and then refused).
    let new_trigger = applied.iter().any(|a| is_trigger(a.key) && a.key != "cron");
    if new_trigger && !applied.iter().any(|a| a.key == "time_zone") {
        spec.time_zone = None;
    }
    if let Err(err) = spec.clone().check(now) {
        return Err(explain(err, &spec.name, &applied));
    }
    for a in &applied {
        tracing::info!(
            worker = %spec.name,
            key = a.key,
            value = %a.shown,
            source = %a.location,
            "configuration override applied"
        );
    }
    Ok(())
}

fn is_trigger(name: &str) -> bool {
    worker_keys::key(name).is_some_and(Key::is_trigger)
}

/// Names the source of a value the shared check refused, when an override set it (or set the
/// key it was compared with).
fn explain(err: Error, worker: &str, applied: &[Applied<'_>]) -> Error {
    let Kind::Config { refusal, .. } = err.kind() else {
        return err;
    };
    if let Some(a) = applied.iter().find(|a| a.key == refusal.key) {
        return Error::overridden(
            Some(worker),
            a.location.to_owned(),
            Some(a.shown.clone()),
            format!("expected {}", refusal.expected),
        );
    }
    let related: &[&str] = match refusal.key {
        "jitter" => &["every"],
        "backoff" => &["backoff_max"],
        "backoff_max" => &["backoff"],
        "cron" | "time_zone" => &["time_zone", "every", "fixed_delay", "cron", "once"],
        _ => &[],
    };
    let notes: Vec<String> = applied
        .iter()
        .filter(|a| related.contains(&a.key))
        .map(|a| format!("`{}` = {} comes from {}", a.key, a.shown, a.location))
        .collect();
    if notes.is_empty() {
        return err;
    }
    let mut refusal = refusal.clone();
    refusal.expected = format!("{} ({})", refusal.expected, notes.join("; "));
    Error::refused(worker, refusal)
}

#[cfg(test)]
mod tests {
    use super::*;
    use worker_keys::Value;

    #[test]
    fn toml_scalars_become_text() {
        let text = |value: toml::Value| Raw::Toml(&value).text();
        assert_eq!(text(toml::Value::Integer(5)), "5");
        assert_eq!(text(toml::Value::Float(0.25)), "0.25");
        assert_eq!(text(toml::Value::Boolean(false)), "false");
        assert_eq!(text(toml::Value::String(" 1h ".into())), " 1h ");
        let five = toml::Value::Integer(5);
        let retry = worker_keys::key("retry").unwrap();
        assert_eq!(
            worker_keys::parse(retry, &Raw::Toml(&five).text()),
            Ok(Value::Count(5))
        );
    }
}
