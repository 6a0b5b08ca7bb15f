//! One property: the attribute, the builder, the configuration file and the environment accept
//! exactly the same values of every key, and refuse the others naming the same key with the
//! same "expected ..." words. Each entry point adds its own location (a span, `worker `w`: `,
//! the file's path and table, the variable's name), which is not compared.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use proptest::prelude::*;
use worker_core::durable::{Attempt, Backend, BoxFuture, Claimed, Maintained};
use worker_core::{
    BackoffKind, BoxError, Escalation, Host, Job, Missed, OnPanic, Overlap, SpanLevel, Worker,
    WorkerBuilder,
};
use worker_keys::{KEYS, Key, Kind, Range, Value};

use crate::args::Args;
use crate::literal;

/// Accepted, or refused naming this key with these words after "expected".
type Outcome = Result<(), (String, String)>;

/// What the worker declares besides the key under test.
#[derive(Debug, Clone, Copy)]
enum Base {
    Every,
    Cron,
    Queue,
    Durable,
    Singleton,
}

impl Base {
    const ALL: [Base; 5] = [
        Base::Every,
        Base::Cron,
        Base::Queue,
        Base::Durable,
        Base::Singleton,
    ];

    fn attribute(self, key: &Key) -> &'static str {
        match self {
            // A schedule given to a queue worker is refused, everywhere.
            Self::Queue => "queue = \"q\", ",
            Self::Durable => "queue = \"q\", durable, ",
            Self::Singleton if key.is_trigger() => "singleton, ",
            Self::Singleton => "every = \"1h\", singleton, ",
            _ if key.is_trigger() => "",
            Self::Every => "every = \"1h\", ",
            Self::Cron => "cron = \"0 0 3 * * *\", ",
        }
    }

    fn builder(self) -> WorkerBuilder {
        match self {
            Self::Every => Worker::builder("w").every(Duration::from_hours(1)),
            Self::Cron => Worker::builder("w").cron("0 0 3 * * *"),
            Self::Queue => Worker::builder("w").queue::<u64>("q"),
            Self::Durable => Worker::builder("w").durable_queue::<u64>("q"),
            Self::Singleton => Worker::builder("w")
                .every(Duration::from_hours(1))
                .singleton(),
        }
    }

    /// The worker, finished with a body that fits its trigger.
    fn worker(self, builder: WorkerBuilder) -> Worker {
        match self {
            Self::Queue | Self::Durable => builder.handler(|_: Job<u64>| async {}),
            _ => builder.handler(|| async {}),
        }
    }
}

/// The key and the words after the last "expected" of a message; `configuration: ` messages
/// are about the key overridden.
fn outcome(message: &str, overridden: &str) -> (String, String) {
    let expected = message
        .rsplit_once(": expected ")
        .map_or(message, |(_, expected)| expected)
        .to_owned();
    let key = if message.starts_with("configuration: ") {
        overridden.to_owned()
    } else {
        message
            .split_once("invalid `")
            .or_else(|| message.split_once("missing "))
            .and_then(|(_, rest)| rest.split(['`', ':']).next())
            .unwrap_or(message)
            .to_owned()
    };
    (key, expected)
}

/// The attribute, when `text` can be written as a literal of the key's form.
fn attribute(base: Base, key: &'static Key, text: &str) -> Option<Outcome> {
    let literal = match key.kind {
        Kind::Duration(_) | Kind::Cron | Kind::TimeZone | Kind::Name => format!("{text:?}"),
        _ => {
            let expr = syn::parse_str::<syn::Expr>(text).ok()?;
            literal::text(key, &expr).ok()?;
            text.to_owned()
        }
    };
    let attribute = format!("{}{} = {literal}", base.attribute(key), key.name);
    Some(match syn::parse_str::<Args>(&attribute) {
        Ok(_) => Ok(()),
        Err(err) => Err(outcome(&err.to_string(), key.name)),
    })
}

/// The builder, when `text` parses (the builder takes typed values, so there is nothing to
/// compare for text that does not).
fn builder(base: Base, key: &'static Key, text: &str) -> Option<Outcome> {
    let value = worker_keys::parse(key, text).ok()?;
    let b = base.builder();
    let d = |v: &Value| match v {
        Value::Duration(d) => *d,
        _ => unreachable!(),
    };
    let n = |v: &Value| match v {
        Value::Count(n) => *n,
        _ => unreachable!(),
    };
    let on = |v: &Value| matches!(v, Value::Bool(true));
    let option = |v: &Value| match v {
        Value::Choice(option) => *option,
        _ => "",
    };
    let b = match key.name {
        "every" => b.every(d(&value)),
        "fixed_delay" => b.fixed_delay(d(&value)),
        "cron" | "time_zone" => match &value {
            Value::Text(text) if key.name == "cron" => b.cron(text),
            Value::Text(text) => b.time_zone(text),
            _ => unreachable!(),
        },
        "once" => b.once(),
        "after" => b.after(d(&value)),
        "jitter" => b.jitter(d(&value)),
        "missed" => b.missed(match option(&value) {
            "burst" => Missed::Burst,
            "delay" => Missed::Delay,
            _ => Missed::Skip,
        }),
        "overlap" => b.overlap(match value {
            Value::Allow(n) => Overlap::Allow(n),
            Value::Choice("queue") => Overlap::Queue,
            _ => Overlap::Skip,
        }),
        "enabled" => b.enabled(on(&value)),
        "retry" => b.retry(n(&value)),
        "backoff_kind" => b.backoff_kind(match option(&value) {
            "constant" => BackoffKind::Constant,
            "linear" => BackoffKind::Linear,
            _ => BackoffKind::Exponential,
        }),
        "backoff" => b.backoff(d(&value)),
        "backoff_max" => b.backoff_max(d(&value)),
        "timeout" => b.timeout(d(&value)),
        "circuit_failure_ratio" => match value {
            Value::Ratio(x) => b.circuit_failure_ratio(x),
            _ => unreachable!(),
        },
        "circuit_min_throughput" => b.circuit_min_throughput(n(&value)),
        "circuit_window" => b.circuit_window(d(&value)),
        "circuit_break" => b.circuit_break(d(&value)),
        "restart_backoff" => b.restart_backoff(d(&value)),
        "max_restarts" => b.max_restarts(n(&value)),
        "restart_window" => b.restart_window(d(&value)),
        "escalate" => b.escalate(match option(&value) {
            "stop_host" => Escalation::StopHost,
            _ => Escalation::StopWorker,
        }),
        "stop_budget" => b.stop_budget(d(&value)),
        "stale_after" => b.stale_after(d(&value)),
        "gates_readiness" => b.gates_readiness(on(&value)),
        "gates_liveness" => b.gates_liveness(on(&value)),
        "concurrency" => b.concurrency(n(&value)),
        "capacity" => b.capacity(n(&value)),
        "lease" => b.lease(d(&value)),
        "catch_up" => b.catch_up(n(&value)),
        "on_panic" => b.on_panic(match option(&value) {
            "discard" => OnPanic::Discard,
            _ => OnPanic::Retry,
        }),
        "span_level" => b.span_level(match option(&value) {
            "info" => SpanLevel::Info,
            "trace" => SpanLevel::Trace,
            _ => SpanLevel::Debug,
        }),
        other => panic!("no builder method for `{other}`: add it here"),
    };
    let host = Host::builder().worker(base.worker(b)).env_overrides(false);
    Some(built(host, key))
}

/// A backend for durable workers whose hosts are only built, never run.
#[derive(Debug)]
struct Unused;

impl Backend for Unused {
    fn claim<'a>(
        &'a self,
        _: &'a str,
        _: u32,
        _: Duration,
        _: &'a str,
        _: u32,
    ) -> BoxFuture<'a, Result<Vec<Claimed>, BoxError>> {
        unreachable!("never run")
    }
    fn complete(&self, _: Vec<Attempt>) -> BoxFuture<'_, Result<Vec<u64>, BoxError>> {
        unreachable!("never run")
    }
    fn fail(
        &self,
        _: Attempt,
        _: Option<Duration>,
        _: String,
    ) -> BoxFuture<'_, Result<bool, BoxError>> {
        unreachable!("never run")
    }
    fn heartbeat(
        &self,
        _: Vec<Attempt>,
        _: Duration,
    ) -> BoxFuture<'_, Result<Vec<(u64, bool)>, BoxError>> {
        unreachable!("never run")
    }
    fn release(&self, _: Vec<(Attempt, bool)>) -> BoxFuture<'_, Result<u64, BoxError>> {
        unreachable!("never run")
    }
    fn maintain(&self) -> BoxFuture<'_, Result<Maintained, BoxError>> {
        unreachable!("never run")
    }

    fn keeps_leases(&self) -> bool {
        true
    }
}

fn built(host: worker_core::HostBuilder, key: &Key) -> Outcome {
    match host.backend(Unused).build() {
        Ok(_) => Ok(()),
        Err(err) => Err(outcome(&err.to_string(), key.name)),
    }
}

/// The environment: `WORKER__W__<KEY>=text` on the declared worker.
fn environment(base: Base, key: &'static Key, text: &str) -> Outcome {
    let var = worker_core::config::env_var("w", key.name);
    let host = Host::builder()
        .worker(base.worker(base.builder()))
        .config_env(vec![(var, text.to_owned())]);
    built(host, key)
}

/// The file: `[workers.w] <key> = "text"` on the declared worker.
fn file(base: Base, key: &'static Key, text: &str) -> Outcome {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let path: PathBuf = std::env::temp_dir().join(format!(
        "worker-keys-agree-{}-{}.toml",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let contents = format!(
        "[workers.w]\n{} = {}\n",
        key.name,
        toml::Value::String(text.to_owned())
    );
    std::fs::write(&path, contents).unwrap();
    let host = Host::builder()
        .worker(base.worker(base.builder()))
        .config_env(Vec::<(String, String)>::new())
        .config_file(&path);
    let outcome = built(host, key);
    let _ = std::fs::remove_file(&path);
    outcome
}

/// How many entry points compared equal, and what they said.
#[derive(Debug, Default)]
struct Tally {
    attribute: usize,
    builder: usize,
    accepted: usize,
    refused: usize,
}

/// Every entry point agrees on `key = text`.
fn agree(
    base: Base,
    key: &'static Key,
    text: &str,
    tally: &mut Tally,
) -> Result<(), TestCaseError> {
    let env = environment(base, key, text);
    let from_file = file(base, key, text);
    prop_assert_eq!(
        &from_file,
        &env,
        "file vs environment: {} = {:?}",
        key.name,
        text
    );
    if let Some(attribute) = attribute(base, key, text) {
        prop_assert_eq!(
            &attribute,
            &env,
            "attribute vs environment: {} = {:?}",
            key.name,
            text
        );
        tally.attribute += 1;
    }
    if let Some(built) = builder(base, key, text) {
        prop_assert_eq!(
            &built,
            &env,
            "builder vs environment: {} = {:?}",
            key.name,
            text
        );
        tally.builder += 1;
    }
    if env.is_ok() {
        tally.accepted += 1;
    } else {
        tally.refused += 1;
    }
    Ok(())
}

/// Valid, boundary and just-beyond values of a key's range, and its options.
fn boundaries(key: &Key) -> Vec<String> {
    let mut values: Vec<String> = vec![key.example.trim_matches('"').to_owned(), String::new()];
    let more: &[&str] = match key.kind {
        Kind::Duration(_) => &[
            "0s",
            "1ns",
            "999us",
            "1ms",
            "59s",
            "1m",
            "61s",
            "1h",
            "2h",
            "365d",
            "366d",
            "-1s",
            "10 parsecs",
            "5",
            "99999999999999999999s",
        ],
        Kind::Count(Range::Count { min, max }) => {
            values.extend([min, max, max + 1].map(|n| n.to_string()));
            values.extend(min.checked_sub(1).map(|n| n.to_string()));
            &["-1", "4294967296", "1_000", "0x10", "2.5"]
        }
        Kind::Ratio => &["0", "1", "0.5", "1.5", "-0.5", "1e-9", "NaN", "inf", "1."],
        Kind::Bool | Kind::Flag => &["true", "false", "yes"],
        Kind::Choice(choice) => {
            values.extend(choice.options.iter().map(|(o, _)| (*o).to_owned()));
            &["Skip", "other"]
        }
        Kind::Overlap(_) => &[
            "skip",
            "queue",
            "allow",
            "allow(0)",
            "allow(1)",
            "allow(10000)",
            "allow(10001)",
            "allow(x)",
            "allow(-1)",
        ],
        Kind::Cron => &[
            "0 0 3 * * *",
            "@daily",
            "0 0 30 2 *",
            "61 * * * * *",
            "* * *",
        ],
        Kind::TimeZone => &["UTC", "Europe/Berlin", "Mars/Olympus", "europe/berlin"],
        _ => &[],
    };
    values.extend(more.iter().map(|s| (*s).to_owned()));
    values
}

fn keys() -> impl Strategy<Value = &'static Key> {
    proptest::sample::select(
        KEYS.iter()
            .filter(|k| k.is_overridable())
            .collect::<Vec<_>>(),
    )
}

fn bases() -> impl Strategy<Value = Base> {
    prop_oneof![
        Just(Base::Every),
        Just(Base::Cron),
        Just(Base::Queue),
        Just(Base::Durable),
        Just(Base::Singleton)
    ]
}

/// Every key, every boundary value, both bases: not sampled, all of them.
#[test]
fn every_entry_point_agrees_on_every_boundary_value() {
    let mut tally = Tally::default();
    for key in KEYS.iter().filter(|k| k.is_overridable()) {
        for text in boundaries(key) {
            for base in Base::ALL {
                agree(base, key, &text, &mut tally).unwrap();
            }
        }
    }
    // Not vacuous: most cases went through the attribute and the builder too, and both
    // outcomes are common.
    println!("{tally:?}");
    assert!(tally.attribute > 250 && tally.builder > 200, "{tally:?}");
    assert!(tally.accepted > 100 && tally.refused > 100, "{tally:?}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Arbitrary text, of the characters values are made of and of any character.
    #[test]
    fn every_entry_point_agrees_on_arbitrary_text(
        key in keys(),
        base in bases(),
        text in prop_oneof![
            "[0-9a-z()@*/ .,_-]{0,14}",
            "[0-9]{1,6}(ns|us|ms|s|m|h|d|w)?",
            "\\PC{0,10}",
        ],
    ) {
        agree(base, key, &text, &mut Tally::default())?;
    }
}

/// The values on which the entry points once disagreed, each through every entry point.
#[test]
fn the_known_divergences_agree() {
    let key = |name| worker_keys::key(name).unwrap();
    // `backoff = "0s"` with `backoff_max = "0s"`: `backoff_max` is a period, everywhere.
    let attr = syn::parse_str::<Args>("every = \"1h\", backoff = \"0s\", backoff_max = \"0s\"");
    let message = attr.err().unwrap().to_string();
    assert_eq!(
        message,
        "invalid `backoff_max` = \"0s\": expected a duration from 1ms to 365d"
    );
    let built = Host::builder()
        .worker(
            Base::Every
                .builder()
                .backoff(Duration::ZERO)
                .backoff_max(Duration::ZERO)
                .handler(|| async {}),
        )
        .env_overrides(false)
        .build()
        .unwrap_err()
        .to_string();
    assert!(built.ends_with(&message), "{built}");
    agree(Base::Every, key("backoff_max"), "0s", &mut Tally::default()).unwrap();
    assert!(environment(Base::Every, key("backoff_max"), "0s").is_err());
    // `time_zone` without `cron`, valid or not, is refused everywhere with the same words.
    for zone in ["Europe/Berlin", "Mars/Olympus"] {
        agree(Base::Every, key("time_zone"), zone, &mut Tally::default()).unwrap();
        let refused = environment(Base::Every, key("time_zone"), zone).unwrap_err();
        assert_eq!(refused.0, "time_zone");
        agree(Base::Cron, key("time_zone"), zone, &mut Tally::default()).unwrap();
    }
    assert_eq!(
        environment(Base::Every, key("time_zone"), "Europe/Berlin")
            .unwrap_err()
            .1,
        "no `time_zone`: it only applies to `cron`, and this worker runs on `every`"
    );
    assert!(environment(Base::Cron, key("time_zone"), "Europe/Berlin").is_ok());
}
