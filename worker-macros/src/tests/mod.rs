//! The attribute's parser on its own, and the property test that drives the shared validator
//! through every entry point.

mod agree;

use worker_keys::{Applies, KEYS, TRIGGERS, Value};

use crate::args::Args;

fn parse(attribute: &str) -> syn::Result<Args> {
    syn::parse_str::<Args>(attribute)
}

/// The example of every key, as messages show it, is accepted.
#[test]
fn every_example_parses() {
    for key in KEYS {
        let attribute = match key.name {
            trigger if TRIGGERS.contains(&trigger) => format!("{trigger} = {}", key.example),
            "time_zone" => format!("cron = \"@daily\", time_zone = {}", key.example),
            other if matches!(key.applies, Applies::Queue | Applies::InProcess) => {
                format!("queue = \"q\", {other} = {}", key.example)
            }
            other if matches!(key.applies, Applies::Durable | Applies::Leased) => {
                format!("queue = \"q\", durable, {other} = {}", key.example)
            }
            "singleton" => format!("every = \"1h\", singleton = {}", key.example),
            other if key.applies == Applies::Singleton => {
                format!("every = \"1h\", singleton, {other} = {}", key.example)
            }
            other => format!("every = \"1h\", {other} = {}", key.example),
        };
        let args = parse(&attribute).unwrap_or_else(|err| panic!("{attribute}: {err}"));
        assert!(
            args.settings().iter().any(|s| s.key.name == key.name),
            "{attribute}"
        );
    }
}

#[test]
fn overlap_and_flags() {
    let args = parse("once, overlap = allow(3)").unwrap();
    assert!(matches!(args.settings()[0].value, Value::Flag));
    assert_eq!(args.settings()[1].value, Value::Allow(3));
    let err = parse("every = \"1s\", overlap = allow()").err().unwrap();
    assert!(
        err.to_string().contains("such as `overlap = allow(2)`"),
        "{err}"
    );
}

#[test]
fn ratio_accepts_an_integer_one() {
    let args = parse("every = \"1s\", circuit_failure_ratio = 1").unwrap();
    assert_eq!(args.settings()[1].value, Value::Ratio(1.0));
}

#[test]
fn refusals_are_the_shared_wording_with_the_value_as_written() {
    let err = |attribute| parse(attribute).err().unwrap().to_string();
    assert_eq!(
        err("every = \"0s\""),
        "invalid `every` = \"0s\": expected a duration from 1ms to 365d"
    );
    assert_eq!(
        err("every = \"1h\", retry = 10001"),
        "invalid `retry` = 10001: expected a whole number from 0 to 10000"
    );
    assert!(err("retry = 3").starts_with("missing trigger: expected"));
}

/// `crate = ".."` puts the given path wherever the expansion names worker-core, so a crate
/// that re-exports it (and whose users do not depend on worker-core) can carry the attribute.
#[test]
fn the_crate_key_replaces_every_path_to_worker_core() {
    let item: syn::ItemFn = syn::parse_quote! {
        async fn sync_orders(job: Job<u32>, ctx: Ctx) -> Result<(), BoxError> { Ok(()) }
    };
    let arguments = crate::input::check(&item).expect("a valid worker");
    let payload = syn::parse_quote!(u32);
    let expanded = |attribute: &str| {
        let args = parse(attribute).expect("valid keys");
        crate::expand::expand(&args, item.clone(), &arguments, Some(&payload)).to_string()
    };
    let keys = r#"queue = "orders", overlap = skip, backoff = "2s""#;
    let default = expanded(keys);
    assert!(
        default.contains(":: worker_core :: IntoWorker"),
        "{default}"
    );
    let moved = expanded(&format!(r#"{keys}, crate = "platform::jobs""#));
    assert!(!moved.contains("worker_core"), "{moved}");
    for used in [
        "IntoWorker",
        "FromScope",
        "__private :: queue",
        "__private :: Duration",
    ] {
        assert!(
            moved.contains(&format!("platform :: jobs :: {used}")),
            "{used}: {moved}"
        );
    }

    for (attribute, refused) in [
        (r#"every = "1s", crate = platform"#, "as a path in a string"),
        (
            r#"every = "1s", crate = "not a path""#,
            "as a path in a string",
        ),
        (r#"every = "1s", crate"#, "as a path in a string"),
        (
            r#"every = "1s", crate = "a", crate = "b""#,
            "duplicate key `crate`",
        ),
    ] {
        let message = parse(attribute)
            .err()
            .map(|err| err.to_string())
            .unwrap_or_default();
        assert!(message.contains(refused), "{attribute}: {message}");
    }
}
