//! The declared spec against the key table: the same defaults, every key settable.

use super::*;
use worker_keys::Value;

/// What `Spec::new` and `CircuitBreaker::default` use is what the table says, and so are
/// a queue worker's defaults.
#[test]
fn the_defaults_are_the_table_s() {
    let mut spec = Spec::new("w".to_owned());
    spec.circuit = Some(CircuitBreaker::default());
    let settings = spec.settings();
    let queue = |name: &str| worker_keys::key(name).unwrap().default_value().unwrap();
    assert_eq!(
        queue("concurrency"),
        Value::Count(u32::try_from(spec.concurrency()).unwrap())
    );
    assert_eq!(
        queue("capacity"),
        Value::Count(u32::try_from(spec.capacity()).unwrap())
    );
    assert_eq!(queue("lease"), Value::Duration(spec.lease()));
    assert_eq!(queue("catch_up"), Value::Count(spec.catch_up()));
    assert_eq!(
        queue("on_panic"),
        Value::Choice(OnPanic::default().as_str())
    );
    for key in worker_keys::KEYS.iter().filter(|k| {
        use worker_keys::Applies;
        k.name != "name"
            && !matches!(
                k.applies,
                Applies::Queue
                    | Applies::InProcess
                    | Applies::Durable
                    | Applies::Leased
                    | Applies::Singleton
            )
    }) {
        let default = match key.default {
            worker_keys::DefaultValue::Duration(d) => Value::Duration(d),
            worker_keys::DefaultValue::Count(n) => Value::Count(n),
            worker_keys::DefaultValue::Ratio(x) => Value::Ratio(x),
            worker_keys::DefaultValue::Bool(b) => Value::Bool(b),
            worker_keys::DefaultValue::Choice(option) => Value::Choice(option),
            _ => {
                assert_eq!(settings.get(key.name), None, "{}", key.name);
                continue;
            }
        };
        assert_eq!(settings.get(key.name), Some(&default), "{}", key.name);
    }
}

/// `set` is the inverse of `settings`: every key a configuration may set lands.
#[cfg(all(feature = "config", feature = "cron"))]
#[test]
fn every_overridable_key_can_be_set() {
    let mut spec = Spec::new("w".to_owned());
    for key in worker_keys::KEYS.iter().filter(|k| k.is_overridable()) {
        let value = worker_keys::parse(key, key.example.trim_matches('"')).unwrap();
        let mut one = spec.clone();
        one.set(key, &value);
        let got = one.settings();
        let got = if key.name == "cron"
            || key.name == "every"
            || key.name == "fixed_delay"
            || key.name == "once"
        {
            got.trigger().map(|(_, v)| v.clone())
        } else {
            got.get(key.name).cloned()
        };
        assert_eq!(got, Some(value.clone()), "{}", key.name);
        spec.set(key, &value);
    }
}
