//! Configuration overrides: a TOML file and `WORKER__<NAME>__<KEY>` variables override what the
//! attribute declared (attribute < file < environment), and every bad override stops the build
//! with an error naming where the value came from, the value and what was expected.
//!
//! The environment is always given with `config_env(..)`: tests run in parallel and must not
//! change the process environment.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::common::{Metrics, Runs, Unused, run_for, secs};
use worker_core::{Ctx, Error, Host, HostBuilder, State, Worker, worker};

#[worker(every = "10s")]
async fn sync_orders(runs: State<Arc<Runs>>, ctx: Ctx) {
    let _run = runs.enter(&ctx);
}

#[worker(every = "1m", retry = 2)]
async fn cleanup() {}

#[worker(queue = "invoices", durable)]
async fn invoices(job: worker_core::Job<u64>) {
    let _ = job;
}

#[worker(every = "1h", singleton)]
async fn rollup() {}

#[worker(queue = "mail")]
async fn mailer(job: worker_core::Job<u64>) {
    let _ = job;
}

/// A TOML file under the temporary directory with a name no other test uses; removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(contents: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "worker-config-test-{}-{}.toml",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, contents).expect("cannot write the temporary configuration file");
        Self(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn shown(&self) -> String {
        self.0.display().to_string()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A host with both workers and no variables from the process environment.
fn host() -> HostBuilder {
    Host::builder()
        .state(Runs::new())
        .worker(sync_orders)
        .worker(cleanup)
        .worker(invoices)
        .worker(rollup)
        .worker(mailer)
        .backend(Unused)
        .config_env(Vec::<(String, String)>::new())
}

/// The `schedule` label of `worker_info` of each worker, from a host built with `builder`.
fn schedules(builder: HostBuilder) -> BTreeMap<String, String> {
    let metrics = Metrics::new();
    metrics.build(builder).expect("the host should build");
    let mut schedules = BTreeMap::new();
    for series in metrics.snapshot().series() {
        if series.name == "worker_info" {
            let previous = schedules.insert(
                series.labels["worker"].clone(),
                series.labels["schedule"].clone(),
            );
            assert!(previous.is_none(), "two worker_info series: {series}");
        }
    }
    schedules
}

/// The `schedule` label of `worker_info` for `worker`, from a host built with `builder`.
fn schedule_of(builder: HostBuilder, worker: &str) -> String {
    schedules(builder)
        .remove(worker)
        .unwrap_or_else(|| panic!("no worker_info series for `{worker}`"))
}

fn build_err(builder: HostBuilder) -> Error {
    match builder.build() {
        Ok(host) => panic!("built a host that should have been refused: {host:?}"),
        Err(err) => err,
    }
}

/// Builds, expects a configuration error whose message contains every part, and prints it.
#[track_caller]
fn refused(builder: HostBuilder, parts: &[&str]) -> Error {
    let err = build_err(builder);
    let message = err.to_string();
    println!("{message}");
    assert!(err.is_config(), "not a configuration error: {message}");
    assert!(
        message.starts_with("configuration: "),
        "does not say it is about configuration: {message}"
    );
    for part in parts {
        assert!(message.contains(part), "{part:?} not in: {message}");
    }
    err
}

fn file_host(contents: &str) -> (TempFile, HostBuilder) {
    let file = TempFile::new(contents);
    let builder = host().config_file(file.path());
    (file, builder)
}

#[test]
fn without_overrides_the_attribute_stands() {
    assert_eq!(schedule_of(host(), "sync_orders"), "every 10s");
}

#[test]
fn a_file_overrides_the_attribute() {
    let (_file, builder) = file_host(
        r#"
        [workers.sync_orders]
        every = "30s"
        "#,
    );
    assert_eq!(schedule_of(builder, "sync_orders"), "every 30s");
}

#[test]
fn a_file_can_replace_the_kind_of_trigger() {
    let (_file, builder) = file_host(
        r#"
        [workers.sync_orders]
        fixed_delay = "5m"

        [workers.cleanup]
        once = true
        "#,
    );
    let schedules = schedules(builder);
    assert_eq!(schedules["sync_orders"], "fixed_delay 5m");
    assert_eq!(schedules["cleanup"], "once");
}

#[test]
fn an_environment_variable_overrides_the_attribute() {
    let builder = host().config_env([("WORKER__SYNC_ORDERS__EVERY", "45s")]);
    assert_eq!(schedule_of(builder, "sync_orders"), "every 45s");
}

#[test]
fn the_environment_overrides_the_file_which_overrides_the_attribute() {
    let (_file, builder) = file_host(
        r#"
        [workers.sync_orders]
        every = "30s"

        [workers.cleanup]
        every = "2m"
        "#,
    );
    // The variable wins for `sync_orders`; the file still wins for `cleanup`.
    let builder = builder.config_env([("WORKER__SYNC_ORDERS__EVERY", "45s")]);
    let schedules = schedules(builder);
    assert_eq!(schedules["sync_orders"], "every 45s");
    assert_eq!(schedules["cleanup"], "every 2m");
}

#[test]
fn a_variable_replaces_a_trigger_of_another_kind_from_the_file() {
    let (_file, builder) = file_host(
        r#"
        [workers.sync_orders]
        cron = "0 0 3 * * *"
        "#,
    );
    let builder = builder.config_env([("WORKER__SYNC_ORDERS__EVERY", "45s")]);
    assert_eq!(schedule_of(builder, "sync_orders"), "every 45s");
}

#[test]
fn the_file_is_named_by_worker_config_when_config_file_is_not_called() {
    let file = TempFile::new("[workers.sync_orders]\nevery = \"20s\"\n");
    let builder = host().config_env([("WORKER_CONFIG", file.shown())]);
    assert_eq!(schedule_of(builder, "sync_orders"), "every 20s");

    // `config_file` takes precedence over the variable.
    let other = TempFile::new("[workers.sync_orders]\nevery = \"25s\"\n");
    let builder = host()
        .config_env([("WORKER_CONFIG", file.shown())])
        .config_file(other.path());
    assert_eq!(schedule_of(builder, "sync_orders"), "every 25s");
}

#[test]
fn env_overrides_false_ignores_the_variables() {
    let builder = host()
        .config_env([
            ("WORKER__SYNC_ORDERS__EVERY", "ten"),
            ("WORKER__NOBODY__EVERY", "1s"),
        ])
        .env_overrides(false);
    assert_eq!(schedule_of(builder, "sync_orders"), "every 10s");
}

#[test]
fn every_key_can_be_set_from_a_file_and_from_the_environment() {
    let (_file, builder) = file_host(
        r#"
        [workers.sync_orders]
        every = "30s"
        after = "1s"
        jitter = "2s"
        missed = "burst"
        overlap = "allow(2)"
        enabled = true
        retry = 5
        backoff_kind = "linear"
        backoff = "250ms"
        backoff_max = "10s"
        timeout = "20s"
        circuit_failure_ratio = 0.5
        circuit_min_throughput = 3
        circuit_window = "5m"
        circuit_break = "1m"
        restart_backoff = "1s"
        max_restarts = 4
        restart_window = "10m"
        escalate = "stop_host"
        stop_budget = "5s"
        stale_after = "10m"
        gates_readiness = true
        gates_liveness = true
        span_level = "info"

        [workers.cleanup]
        cron = "0 0 3 * * *"
        time_zone = "Europe/Paris"

        [workers.invoices]
        lease = "10s"

        [workers.rollup]
        catch_up = 3

        [workers.mailer]
        concurrency = 4
        capacity = "16"
        on_panic = "discard"
        "#,
    );
    let metrics = Metrics::new();
    let built = metrics
        .build(builder)
        .expect("every key in the file is valid");
    let queue = |host: &worker_core::Host| {
        let status = host.handle().workers().pop().unwrap().queue.unwrap();
        (status.concurrency, status.capacity)
    };
    assert_eq!(queue(&built), (4, 16));

    let env = [
        ("WORKER__SYNC_ORDERS__FIXED_DELAY", "30s"),
        ("WORKER__SYNC_ORDERS__AFTER", "1s"),
        ("WORKER__SYNC_ORDERS__JITTER", "0s"),
        ("WORKER__SYNC_ORDERS__MISSED", "delay"),
        ("WORKER__SYNC_ORDERS__OVERLAP", "queue"),
        ("WORKER__SYNC_ORDERS__ENABLED", "true"),
        ("WORKER__SYNC_ORDERS__RETRY", "5"),
        ("WORKER__SYNC_ORDERS__BACKOFF_KIND", "constant"),
        ("WORKER__SYNC_ORDERS__BACKOFF", "1s"),
        ("WORKER__SYNC_ORDERS__BACKOFF_MAX", "1m"),
        ("WORKER__SYNC_ORDERS__TIMEOUT", "20s"),
        ("WORKER__SYNC_ORDERS__CIRCUIT_FAILURE_RATIO", "0.75"),
        ("WORKER__SYNC_ORDERS__CIRCUIT_MIN_THROUGHPUT", "3"),
        ("WORKER__SYNC_ORDERS__CIRCUIT_WINDOW", "5m"),
        ("WORKER__SYNC_ORDERS__CIRCUIT_BREAK", "1m"),
        ("WORKER__SYNC_ORDERS__RESTART_BACKOFF", "1s"),
        ("WORKER__SYNC_ORDERS__MAX_RESTARTS", "4"),
        ("WORKER__SYNC_ORDERS__RESTART_WINDOW", "10m"),
        ("WORKER__SYNC_ORDERS__ESCALATE", "stop_worker"),
        ("WORKER__SYNC_ORDERS__STOP_BUDGET", "5s"),
        ("WORKER__SYNC_ORDERS__STALE_AFTER", "2m"),
        ("WORKER__SYNC_ORDERS__GATES_READINESS", "false"),
        ("WORKER__SYNC_ORDERS__GATES_LIVENESS", "false"),
        ("WORKER__SYNC_ORDERS__SPAN_LEVEL", "trace"),
        ("WORKER__CLEANUP__CRON", "0 */5 * * * *"),
        ("WORKER__CLEANUP__TIME_ZONE", "UTC"),
        ("WORKER__INVOICES__LEASE", "1m"),
        ("WORKER__ROLLUP__CATCH_UP", "0"),
        ("WORKER__MAILER__CONCURRENCY", "2"),
        ("WORKER__MAILER__CAPACITY", "8"),
        ("WORKER__MAILER__ON_PANIC", "retry"),
        ("WORKER__CLEANUP__ONCE", "true"),
    ];
    // Two triggers for `cleanup` from one source conflict; drop `once` for the first build.
    let builder = host().config_env(env[..env.len() - 1].iter().copied());
    assert_eq!(queue(&builder.build().unwrap()), (2, 8));
    let builder = host().config_env(env[..env.len() - 1].iter().copied());
    assert_eq!(schedule_of(builder, "sync_orders"), "fixed_delay 30s");
    assert_eq!(
        worker_core::config::keys().count(),
        33,
        "the test sets every key"
    );

    refused(
        host().config_env(env.iter().copied()),
        &[
            "environment variable WORKER__CLEANUP__ONCE = \"true\"",
            "expected a single trigger, and environment variable WORKER__CLEANUP__CRON sets one already",
        ],
    );
}

#[tokio::test(start_paused = true)]
async fn an_overridden_period_drives_the_schedule() {
    let runs = Runs::new();
    let builder = Host::builder()
        .state(runs.clone())
        .worker(sync_orders)
        .config_env([("WORKER__SYNC_ORDERS__EVERY", "1m")]);
    let stopped = run_for(
        builder.build().unwrap(),
        secs(300) + Duration::from_millis(500),
    )
    .await;
    stopped.result.unwrap();
    // At 0, 60, ..., 300 s rather than every 10 s.
    assert_eq!(
        runs.starts(),
        (0..=5).map(|n| secs(60 * n)).collect::<Vec<_>>()
    );
}

#[tokio::test(start_paused = true)]
async fn enabled_false_from_the_file_means_the_worker_never_runs() {
    let file = TempFile::new("[workers.sync_orders]\nenabled = false\n");
    let runs = Runs::new();
    let builder = Host::builder()
        .state(runs.clone())
        .worker(sync_orders)
        .config_env(Vec::<(String, String)>::new())
        .config_file(file.path());
    let stopped = run_for(builder.build().unwrap(), secs(60)).await;
    stopped.result.unwrap();
    assert_eq!(runs.len(), 0, "a disabled worker ran");

    // The same file with `enabled = true` from the environment: it runs.
    let runs = Runs::new();
    let builder = Host::builder()
        .state(runs.clone())
        .worker(sync_orders)
        .config_env([("WORKER__SYNC_ORDERS__ENABLED", "true")])
        .config_file(file.path());
    run_for(builder.build().unwrap(), secs(60))
        .await
        .result
        .unwrap();
    assert!(
        runs.len() > 0,
        "the environment did not re-enable the worker"
    );
}

#[test]
fn a_bad_duration_in_the_file_names_file_key_value_and_expectation() {
    let (file, builder) = file_host("[workers.sync_orders]\nevery = \"ten\"\n");
    let err = refused(
        builder,
        &[&format!(
            "configuration: {}: workers.sync_orders.every = \"ten\": expected a duration such as \"250ms\", \"10s\", \"5m\" or \"1h\"",
            file.shown()
        )],
    );
    assert_eq!(err.worker(), Some("sync_orders"));
}

#[test]
fn a_bad_duration_in_the_environment_names_the_variable() {
    refused(
        host().config_env([("WORKER__SYNC_ORDERS__TIMEOUT", "soon")]),
        &[
            "configuration: environment variable WORKER__SYNC_ORDERS__TIMEOUT = \"soon\": expected a duration",
        ],
    );
}

#[test]
fn a_bad_integer_is_refused() {
    refused(
        host().config_env([("WORKER__CLEANUP__RETRY", "-1")]),
        &[
            "environment variable WORKER__CLEANUP__RETRY = \"-1\"",
            "expected a whole number",
        ],
    );
    let (file, builder) = file_host("[workers.cleanup]\nretry = 2.5\n");
    refused(
        builder,
        &[
            &format!("{}: workers.cleanup.retry = 2.5", file.shown()),
            "expected a whole number",
        ],
    );
}

#[test]
fn a_bad_float_is_refused() {
    refused(
        host().config_env([("WORKER__CLEANUP__CIRCUIT_FAILURE_RATIO", "half")]),
        &[
            "WORKER__CLEANUP__CIRCUIT_FAILURE_RATIO = \"half\"",
            "expected a number greater than 0 and at most 1, such as 0.5",
        ],
    );
}

#[test]
fn a_bad_bool_is_refused() {
    let (file, builder) = file_host("[workers.cleanup]\nenabled = \"nope\"\n");
    refused(
        builder,
        &[
            &format!("{}: workers.cleanup.enabled = \"nope\"", file.shown()),
            "expected `true` or `false`",
        ],
    );
    refused(
        host().config_env([("WORKER__CLEANUP__ENABLED", "yes")]),
        &[
            "WORKER__CLEANUP__ENABLED = \"yes\"",
            "expected `true` or `false`",
        ],
    );
}

#[test]
fn numbers_and_booleans_may_be_strings_in_the_file() {
    let (_file, builder) = file_host(
        "[workers.cleanup]\nretry = \"4\"\nenabled = \"false\"\ncircuit_failure_ratio = \"0.5\"\n",
    );
    builder
        .build()
        .expect("strings are accepted for numbers and booleans");
}

#[test]
fn a_bad_enum_is_refused() {
    let (file, builder) = file_host("[workers.cleanup]\nmissed = \"later\"\n");
    refused(
        builder,
        &[
            &format!("{}: workers.cleanup.missed = \"later\"", file.shown()),
            "expected one of `skip`, `burst` or `delay`",
        ],
    );
    refused(
        host().config_env([("WORKER__CLEANUP__BACKOFF_KIND", "quadratic")]),
        &[
            "WORKER__CLEANUP__BACKOFF_KIND = \"quadratic\"",
            "expected one of `constant`, `linear` or `exponential`",
        ],
    );
    refused(
        host().config_env([("WORKER__CLEANUP__ESCALATE", "panic")]),
        &["expected one of `stop_worker` or `stop_host`"],
    );
}

#[test]
fn a_bad_overlap_is_refused() {
    let (file, builder) = file_host("[workers.cleanup]\noverlap = \"allow(two)\"\n");
    refused(
        builder,
        &[
            &format!("{}: workers.cleanup.overlap = \"allow(two)\"", file.shown()),
            "expected one of `skip`, `queue` or `allow(n)`, with n a whole number from 1 to 10000",
        ],
    );
    // Parses, but the host's check refuses it; the error still names the source.
    refused(
        host().config_env([("WORKER__CLEANUP__OVERLAP", "allow(0)")]),
        &[
            "environment variable WORKER__CLEANUP__OVERLAP = \"allow(0)\"",
            "expected one of `skip`, `queue` or `allow(n)`, with n a whole number from 1 to 10000",
        ],
    );
}

#[test]
fn an_unknown_key_is_refused_with_the_valid_keys() {
    let (file, builder) = file_host("[workers.cleanup]\nevry = \"1s\"\n");
    let err = refused(
        builder,
        &[
            &format!("{}: workers.cleanup.evry = \"1s\"", file.shown()),
            "unknown key `evry`",
            "expected one of every, fixed_delay, cron, once, time_zone, after, jitter",
            "escalate, stop_budget",
        ],
    );
    assert_eq!(err.worker(), Some("cleanup"));
    let (_file, builder) = file_host("[workers.cleanup]\nname = \"other\"\n");
    refused(builder, &["unknown key `name`", "cannot be overridden"]);
    refused(
        host().config_env([("WORKER__CLEANUP__RETRIES", "3")]),
        &[
            "environment variable WORKER__CLEANUP__RETRIES = \"3\"",
            "unknown key `RETRIES`",
            "EVERY, FIXED_DELAY",
            "STOP_BUDGET",
        ],
    );
}

#[test]
fn an_unknown_worker_is_refused_with_the_registered_names() {
    let (file, builder) = file_host("[workers.sync_order]\nevery = \"1s\"\n");
    refused(
        builder,
        &[
            &format!("configuration: {}: [workers.sync_order]", file.shown()),
            "no worker is named `sync_order`",
            "the registered workers are `sync_orders`, `cleanup`",
        ],
    );
    refused(
        host().config_env([("WORKER__SYNC_ORDER__EVERY", "1s")]),
        &[
            "environment variable WORKER__SYNC_ORDER__EVERY = \"1s\"",
            "no worker's name gives `SYNC_ORDER`",
            "`sync_orders` (WORKER__SYNC_ORDERS__<KEY>)",
            "`cleanup` (WORKER__CLEANUP__<KEY>)",
        ],
    );
    refused(
        host().config_env([("WORKER__SYNC_ORDERS", "1s")]),
        &[
            "environment variable WORKER__SYNC_ORDERS = \"1s\"",
            "WORKER__<NAME>__<KEY>",
        ],
    );
}

#[test]
fn two_workers_with_the_same_variable_name_cannot_be_overridden() {
    let worker = |name: &str| Worker::builder(name).every(secs(1)).handler(|| async {});
    let builder = || {
        Host::builder()
            .worker(worker("reindex-eu"))
            .worker(worker("reindex.eu"))
    };
    refused(
        builder().config_env([("WORKER__REINDEX_EU__RETRY", "1")]),
        &[
            "WORKER__REINDEX_EU__RETRY",
            "`REINDEX_EU` names several workers: `reindex-eu`, `reindex.eu`",
        ],
    );
    // Without such a variable they build, and the file tells them apart.
    let file = TempFile::new("[workers.\"reindex.eu\"]\nevery = \"7s\"\n");
    let built = builder()
        .config_env(Vec::<(String, String)>::new())
        .config_file(file.path());
    assert_eq!(schedule_of(built, "reindex.eu"), "every 7s");
}

#[test]
fn unparsable_toml_names_the_file_line_and_column() {
    let (file, builder) = file_host("[workers.cleanup]\nevery = 10s\n");
    refused(
        builder,
        &[
            &format!(
                "configuration: {}: cannot parse the configuration file",
                file.shown()
            ),
            "line 2, column 9",
        ],
    );
    // Valid TOML of the wrong shape.
    let (_file, builder) = file_host("[worker.cleanup]\nevery = \"10s\"\n");
    refused(builder, &["cannot parse", "unknown field `worker`"]);
}

#[test]
fn a_missing_file_names_the_path() {
    let path = std::env::temp_dir().join(format!(
        "worker-config-test-{}-missing.toml",
        std::process::id()
    ));
    refused(
        host().config_file(&path),
        &[&format!(
            "configuration: {}: cannot read the configuration file",
            path.display()
        )],
    );
    refused(
        host().config_env([("WORKER_CONFIG", path.display().to_string())]),
        &[
            &format!("{} (named by WORKER_CONFIG)", path.display()),
            "cannot read",
        ],
    );
}

#[test]
fn a_value_the_host_refuses_names_the_source() {
    let (file, builder) = file_host("[workers.sync_orders]\nevery = \"0s\"\n");
    refused(
        builder,
        &[&format!(
            "configuration: {}: workers.sync_orders.every = \"0s\": expected a duration from 1ms to 365d",
            file.shown()
        )],
    );
    refused(
        host().config_env([("WORKER__CLEANUP__CIRCUIT_FAILURE_RATIO", "1.5")]),
        &[
            "environment variable WORKER__CLEANUP__CIRCUIT_FAILURE_RATIO = \"1.5\"",
            "expected a number greater than 0 and at most 1",
        ],
    );
    refused(
        host().config_env([("WORKER__CLEANUP__CRON", "every tuesday")]),
        &["WORKER__CLEANUP__CRON = \"every tuesday\""],
    );
    let (file, builder) =
        file_host("[workers.cleanup]\ncron = \"0 0 3 * * *\"\ntime_zone = \"Mars/Olympus\"\n");
    refused(
        builder,
        &[&format!(
            "{}: workers.cleanup.time_zone = \"Mars/Olympus\"",
            file.shown()
        )],
    );
}

#[test]
fn a_check_on_a_declared_value_names_the_override_it_was_compared_with() {
    let worker = Worker::builder("jittery")
        .every(secs(10))
        .jitter(secs(5))
        .handler(|| async {});
    let err = build_err(
        Host::builder()
            .worker(worker)
            .config_env([("WORKER__JITTERY__EVERY", "2s")]),
    );
    let message = err.to_string();
    println!("{message}");
    assert!(err.is_config());
    for part in [
        "worker `jittery`: invalid `jitter` = \"5s\"",
        "expected a duration shorter than `every` (\"2s\")",
        "`every` = \"2s\" comes from environment variable WORKER__JITTERY__EVERY",
    ] {
        assert!(message.contains(part), "{part:?} not in: {message}");
    }
}

/// Two hosts in one process, each with its own prefix: each reads its own variables and file
/// and none of the other's, which it would refuse as naming a worker it does not have.
#[test]
fn hosts_with_their_own_env_prefix_read_only_their_own_variables() {
    let file = TempFile::new("[workers.cleanup]\nevery = \"7m\"\n");
    let shared = [
        ("WORKER__SYNC_ORDERS__EVERY", "45s".to_owned()),
        ("BILLING__CLEANUP__EVERY", "3m".to_owned()),
        ("BILLING__CLEANUP__RETRY", "5".to_owned()),
        ("REPORTS_CONFIG", file.shown()),
    ];
    let env = || shared.iter().map(|(k, v)| (*k, v.clone()));
    let orders = Host::builder()
        .state(Runs::new())
        .worker(sync_orders)
        .config_env(env());
    let billing = Host::builder()
        .env_prefix("BILLING")
        .worker(cleanup)
        .config_env(env());
    let reports = Host::builder()
        .env_prefix("REPORTS")
        .worker(cleanup)
        .config_env(env());
    // The default host refuses the variables of another prefix only when they start with its
    // own: `BILLING__*` is not `WORKER__*`.
    assert_eq!(schedule_of(orders, "sync_orders"), "every 45s");
    assert_eq!(schedule_of(billing, "cleanup"), "every 3m");
    assert_eq!(schedule_of(reports, "cleanup"), "every 7m");

    // Without a prefix of its own, a host refuses another host's worker, naming the variable.
    let mixed = Host::builder()
        .worker(cleanup)
        .config_env([("WORKER__SYNC_ORDERS__EVERY", "45s")]);
    refused(
        mixed,
        &[
            "environment variable WORKER__SYNC_ORDERS__EVERY",
            "no worker's name gives `SYNC_ORDERS`",
        ],
    );
    // An error under a prefix names the prefix.
    let typo = Host::builder()
        .env_prefix("BILLING")
        .worker(cleanup)
        .config_env([("BILLING__CLEANUP__EVERYY", "3m")]);
    refused(typo, &["environment variable BILLING__CLEANUP__EVERYY"]);
}

#[test]
fn an_env_prefix_that_cannot_name_variables_stops_the_build() {
    for stem in ["", "billing", "BILLING_", "9LIVES", "BILL-ING"] {
        let builder = Host::builder()
            .env_prefix(stem)
            .worker(cleanup)
            .config_env(Vec::<(String, String)>::new());
        refused(
            builder,
            &[
                "the host's env_prefix",
                &format!("{stem:?}"),
                "expected capital letters",
            ],
        );
    }
}
