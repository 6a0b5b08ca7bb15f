//! Where each key of the table lives in a [`Spec`]: one line per key, from which the shared
//! check reads the declared values (`Spec::settings`) and a configuration override writes
//! its value (`Spec::set`).
//!
//! A new key is its row in `worker_keys::KEYS`, its field in [`Spec`], its `WorkerBuilder`
//! method, and its line in [`PLACES`]; a test fails while a row has no line.

use std::sync::Arc;
use std::time::Duration;

#[cfg(feature = "config")]
use worker_keys::Key;
use worker_keys::{Settings, Value};

use crate::queue::OnPanic;
use crate::run::retry::BackoffKind;
use crate::run::span::SpanLevel;
use crate::schedule::{Missed, Overlap};
use crate::supervise::Escalation;
use crate::worker::spec::{DeclaredSchedule, Spec};

/// One key's place in a [`Spec`].
pub(crate) struct Place {
    pub(crate) key: &'static str,
    /// The declared value; `None`: not given, so the key has its default.
    get: fn(&Spec) -> Option<Value>,
    /// Writes a parsed value; does nothing for the keys a configuration cannot set.
    #[cfg_attr(
        not(feature = "config"),
        expect(dead_code, reason = "only overrides write")
    )]
    set: fn(&mut Spec, &Value),
}

/// A field's value as the key table writes it, and back.
trait Field: Sized {
    /// `None`: not given (an `Option` field at `None`), so the key has its default.
    fn value(&self) -> Option<Value>;
    /// The field's value from a parsed one; `None` for a value of another kind, which the
    /// shared parser never makes for the key.
    fn from_value(value: &Value) -> Option<Self>;
}

/// The line of a key: a schedule, kept in the one `trigger` field (`schedule`); a key kept in a
/// field of its own (`field`), in a field of the circuit breaker, which a first `circuit_*`
/// key turns on (`circuit.field`), in a boolean given or not (`flag field`), or read only: a
/// key a configuration cannot set (`read field`).
macro_rules! place {
    ($key:literal => schedule) => {
        Place {
            key: $key,
            get: |spec| {
                schedule(spec)
                    .filter(|(key, _)| *key == $key)
                    .map(|(_, v)| v)
            },
            set: |spec, value| set_schedule(spec, $key, value),
        }
    };
    ($key:literal => $field:ident) => {
        Place {
            key: $key,
            get: |spec| Field::value(&spec.$field),
            set: |spec, value| {
                if let Some(field) = Field::from_value(value) {
                    spec.$field = field;
                }
            },
        }
    };
    ($key:literal => circuit.$field:ident) => {
        Place {
            key: $key,
            get: |spec| spec.circuit.as_ref().and_then(|c| c.$field.value()),
            set: |spec, value| {
                if let Some(field) = Field::from_value(value) {
                    spec.circuit_mut().$field = field;
                }
            },
        }
    };
    ($key:literal => flag $field:ident) => {
        Place {
            key: $key,
            get: |spec| spec.$field.then_some(Value::Flag),
            set: |_, _| {},
        }
    };
    ($key:literal => read $field:ident) => {
        Place {
            key: $key,
            get: |spec| Field::value(&spec.$field),
            set: |_, _| {},
        }
    };
}

/// Every key's place, in the table's order.
pub(crate) const PLACES: &[Place] = &[
    place!("every" => schedule),
    place!("fixed_delay" => schedule),
    place!("cron" => schedule),
    place!("once" => schedule),
    place!("queue" => read queue),
    place!("time_zone" => time_zone),
    place!("after" => after),
    place!("jitter" => jitter),
    place!("missed" => missed),
    place!("overlap" => overlap),
    place!("enabled" => enabled),
    place!("retry" => retry),
    place!("backoff_kind" => backoff_kind),
    place!("backoff" => backoff),
    place!("backoff_max" => backoff_max),
    place!("timeout" => timeout),
    place!("circuit_failure_ratio" => circuit.failure_ratio),
    place!("circuit_min_throughput" => circuit.min_throughput),
    place!("circuit_window" => circuit.window),
    place!("circuit_break" => circuit.break_for),
    place!("restart_backoff" => restart_backoff),
    place!("max_restarts" => max_restarts),
    place!("restart_window" => restart_window),
    place!("escalate" => escalate),
    place!("stop_budget" => stop_budget),
    place!("stale_after" => stale_after),
    place!("gates_readiness" => gates_readiness),
    place!("gates_liveness" => gates_liveness),
    place!("concurrency" => concurrency),
    place!("durable" => flag durable),
    place!("lease" => lease),
    place!("singleton" => flag singleton),
    place!("catch_up" => catch_up),
    place!("capacity" => capacity),
    place!("on_panic" => on_panic),
    place!("span_level" => span_level),
    place!("name" => read name),
];

impl Spec {
    /// The declared values, for the shared check.
    pub(crate) fn settings(&self) -> Settings {
        let mut settings = Settings::new();
        for place in PLACES {
            if let Some(value) = (place.get)(self) {
                settings.put(place.key, value);
            }
        }
        settings
    }

    /// Sets one key from a parsed value (a configuration override): the inverse of
    /// [`settings`](Self::settings). A value of another kind than the key's is ignored; the
    /// shared parser never makes one.
    #[cfg(feature = "config")]
    pub(crate) fn set(&mut self, key: &'static Key, value: &Value) {
        if let Some(place) = PLACES.iter().find(|place| place.key == key.name) {
            (place.set)(self, value);
        }
    }
}

/// The declared schedule as its key and value.
fn schedule(spec: &Spec) -> Option<(&'static str, Value)> {
    Some(match spec.trigger.as_ref()? {
        DeclaredSchedule::Every(d) => ("every", Value::Duration(*d)),
        DeclaredSchedule::FixedDelay(d) => ("fixed_delay", Value::Duration(*d)),
        #[cfg(feature = "cron")]
        DeclaredSchedule::Cron(expression) => ("cron", Value::Text(expression.clone())),
        DeclaredSchedule::Once => ("once", Value::Flag),
    })
}

/// Replaces the declared schedule by `key`'s (one schedule replaces another).
fn set_schedule(spec: &mut Spec, key: &str, value: &Value) {
    let schedule = match (key, value) {
        ("every", Value::Duration(d)) => DeclaredSchedule::Every(*d),
        ("fixed_delay", Value::Duration(d)) => DeclaredSchedule::FixedDelay(*d),
        #[cfg(feature = "cron")]
        ("cron", Value::Text(expression)) => DeclaredSchedule::Cron(expression.clone()),
        ("once", _) => DeclaredSchedule::Once,
        _ => return,
    };
    spec.trigger = Some(schedule);
}

impl<T: Field> Field for Option<T> {
    fn value(&self) -> Option<Value> {
        self.as_ref()?.value()
    }

    fn from_value(value: &Value) -> Option<Self> {
        T::from_value(value).map(Some)
    }
}

/// `Field` for a type that is one variant of `Value`.
macro_rules! plain {
    ($($ty:ty => $variant:ident),* $(,)?) => {$(
        impl Field for $ty {
            fn value(&self) -> Option<Value> {
                Some(Value::$variant(self.clone().into()))
            }

            fn from_value(value: &Value) -> Option<Self> {
                match value {
                    Value::$variant(v) => Some(v.clone().into()),
                    _ => None,
                }
            }
        }
    )*};
}

plain! {
    Duration => Duration,
    u32 => Count,
    f64 => Ratio,
    bool => Bool,
    String => Text,
}

/// A name: written as text, never parsed back (`name` and `queue` are not overridable).
impl Field for Arc<str> {
    fn value(&self) -> Option<Value> {
        Some(Value::Text(self.to_string()))
    }

    fn from_value(_: &Value) -> Option<Self> {
        None
    }
}

/// `Field` for an enum whose variants are the options of a `Choice` key, named by `as_str`.
macro_rules! choice {
    ($($ty:ident: [$($variant:ident),+]),* $(,)?) => {$(
        impl Field for $ty {
            fn value(&self) -> Option<Value> {
                Some(Value::Choice(self.as_str()))
            }

            fn from_value(value: &Value) -> Option<Self> {
                let Value::Choice(option) = value else {
                    return None;
                };
                [$($ty::$variant),+].into_iter().find(|o| o.as_str() == *option)
            }
        }
    )*};
}

choice! {
    Missed: [Skip, Burst, Delay],
    BackoffKind: [Constant, Linear, Exponential],
    Escalation: [StopWorker, StopHost],
    OnPanic: [Retry, Discard],
    SpanLevel: [Info, Debug, Trace],
}

/// `skip`, `queue` or `allow(n)`.
impl Field for Overlap {
    fn value(&self) -> Option<Value> {
        Some(match self {
            Self::Skip => Value::Choice("skip"),
            Self::Queue => Value::Choice("queue"),
            Self::Allow(n) => Value::Allow(*n),
        })
    }

    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Choice("skip") => Some(Self::Skip),
            Value::Choice("queue") => Some(Self::Queue),
            Value::Allow(n) => Some(Self::Allow(*n)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::PLACES;

    /// Every row of the key table has its line, in the table's order, and no line is of
    /// another key.
    #[test]
    fn every_key_has_its_place() {
        let places: Vec<&str> = PLACES.iter().map(|place| place.key).collect();
        let keys: Vec<&str> = worker_keys::KEYS.iter().map(|key| key.name).collect();
        assert_eq!(places, keys);
    }
}
