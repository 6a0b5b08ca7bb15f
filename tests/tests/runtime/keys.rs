//! Where the entry points of a worker's keys once disagreed, they now share one key table
//! (`worker-keys`): the builder, the configuration file and the environment refuse what
//! `#[worker]` refuses at compile time (see `tests/ui/fail/time_zone_without_cron.rs` and
//! `tests/ui/fail/backoff_zero.rs`), with the same words. The property test over every key is
//! `worker-macros/src/tests/agree.rs`.

use std::path::PathBuf;
use std::time::Duration;

use worker_core::{Host, HostBuilder, Worker, WorkerBuilder};

fn every() -> WorkerBuilder {
    Worker::builder("x").every(Duration::from_hours(1))
}

fn host(worker: WorkerBuilder) -> HostBuilder {
    Host::builder()
        .worker(worker.handler(|| async {}))
        .config_env(Vec::<(String, String)>::new())
}

#[track_caller]
fn refused(builder: HostBuilder, parts: &[&str]) {
    let err = builder.build().expect_err("refused");
    let message = err.to_string();
    println!("{message}");
    assert!(err.is_config(), "{message}");
    for part in parts {
        assert!(message.contains(part), "{part:?} not in: {message}");
    }
}

/// A temporary TOML file, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, contents: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "worker-keys-test-{}-{name}.toml",
            std::process::id()
        ));
        std::fs::write(&path, contents).unwrap();
        Self(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

const NOT_CRON: &str =
    "expected no `time_zone`: it only applies to `cron`, and this worker runs on `every`";
const ZONE: &str = "expected an IANA time zone name such as `UTC` or `Europe/Berlin`";
const PERIOD: &str = "expected a duration from 1ms to 365d";

#[test]
fn time_zone_without_cron_is_refused_by_the_builder_the_file_and_the_environment() {
    refused(
        host(every().time_zone("Europe/Berlin")),
        &[
            "worker `x`: invalid `time_zone` = \"Europe/Berlin\"",
            NOT_CRON,
        ],
    );
    refused(
        host(every()).config_env([("WORKER__X__TIME_ZONE", "Europe/Berlin")]),
        &[
            "environment variable WORKER__X__TIME_ZONE = \"Europe/Berlin\"",
            NOT_CRON,
        ],
    );
    let file = TempFile::new("zone", "[workers.x]\ntime_zone = \"Europe/Berlin\"\n");
    refused(
        host(every()).config_file(&file.0),
        &["workers.x.time_zone = \"Europe/Berlin\"", NOT_CRON],
    );
}

#[test]
fn an_unknown_zone_is_refused_whatever_the_trigger() {
    refused(
        host(every()).config_env([("WORKER__X__TIME_ZONE", "Mars/Olympus")]),
        &["WORKER__X__TIME_ZONE = \"Mars/Olympus\"", ZONE],
    );
    refused(
        host(every().time_zone("Mars/Olympus")),
        &["invalid `time_zone` = \"Mars/Olympus\"", ZONE],
    );
    let cron = Worker::builder("x").cron("0 0 3 * * *");
    refused(
        host(cron.clone()).config_env([("WORKER__X__TIME_ZONE", "Mars/Olympus")]),
        &[ZONE],
    );
    host(cron.clone())
        .config_env([("WORKER__X__TIME_ZONE", "Europe/Berlin")])
        .build()
        .expect("a zone for a cron worker");
    // Replacing a declared cron and its zone by another trigger drops the zone with it.
    host(cron.time_zone("Europe/Berlin"))
        .config_env([("WORKER__X__EVERY", "1m")])
        .build()
        .expect("the declared zone goes with the declared cron");
}

#[test]
fn a_zero_backoff_max_is_refused_everywhere_even_with_a_zero_backoff() {
    let zero = every().backoff(Duration::ZERO);
    refused(
        host(zero.clone().backoff_max(Duration::ZERO)),
        &["worker `x`: invalid `backoff_max` = \"0s\"", PERIOD],
    );
    refused(
        host(zero.clone()).config_env([("WORKER__X__BACKOFF_MAX", "0s")]),
        &["WORKER__X__BACKOFF_MAX = \"0s\"", PERIOD],
    );
    let file = TempFile::new(
        "backoff",
        "[workers.x]\nbackoff = \"0s\"\nbackoff_max = \"0s\"\n",
    );
    refused(
        host(every()).config_file(&file.0),
        &["workers.x.backoff_max = \"0s\"", PERIOD],
    );
    // Retrying at once is `backoff = "0s"`, with any cap.
    host(zero.backoff_max(Duration::from_millis(1)))
        .build()
        .expect("a zero backoff");
}

#[test]
fn one_wording_for_a_rule_over_two_keys() {
    let expected = "expected a duration no longer than `backoff_max` (\"1m\", its default)";
    refused(
        host(every().backoff(Duration::from_mins(2))),
        &["worker `x`: invalid `backoff` = \"2m\"", expected],
    );
    refused(
        host(every()).config_env([("WORKER__X__BACKOFF", "2m")]),
        &["WORKER__X__BACKOFF = \"2m\"", expected],
    );
    refused(
        host(Worker::builder("x")),
        &["worker `x`: missing trigger: expected a trigger, one of `every`"],
    );
}
