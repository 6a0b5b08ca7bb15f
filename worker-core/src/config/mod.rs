//! Overriding what `#[worker(...)]` or [`Worker::builder`] declared, without recompiling: from a
//! TOML file and from environment variables, read when the host is built.
//!
//! # Precedence
//!
//! For each worker and each key, the last of these that sets it wins:
//!
//! 1. the attribute (or the [`WorkerBuilder`] call),
//! 2. the configuration file,
//! 3. the environment variable.
//!
//! A trigger key (`every`, `fixed_delay`, `cron`, `once = true`) replaces the declared trigger,
//! whichever kind it was; within one source, a worker may set at most one trigger key.
//!
//! # The file
//!
//! Named by [`HostBuilder::config_file`], or, when that is not called, by the environment
//! variable `WORKER_CONFIG` ([`CONFIG_FILE_VAR`]). One table per worker, under `workers`:
//!
//! ```toml
//! [workers.sync_orders]
//! every = "30s"
//! retry = 5
//! enabled = false
//! overlap = "allow(2)"
//! circuit_failure_ratio = 0.5
//!
//! [workers."reindex-0"]
//! cron = "0 0 3 * * *"
//! time_zone = "Europe/Paris"
//! ```
//!
//! A file that is missing, unreadable or not valid TOML stops the build with an error naming the
//! path (and the parser's line and column).
//!
//! # Environment variables
//!
//! `WORKER__<NAME>__<KEY>=value` ([`ENV_PREFIX`]), where `<NAME>` is the worker's name
//! upper-cased with every character other than an ASCII letter or digit replaced by `_`, and
//! `<KEY>` is the key upper-cased: `WORKER__SYNC_ORDERS__EVERY=30s`,
//! `WORKER__REINDEX_0__ENABLED=false`. [`env_var`] spells them. Two workers whose names give the
//! same `<NAME>` cannot be told apart, so a variable naming them is an error.
//!
//! They are read from the process environment unless [`HostBuilder::env_overrides`] turns them
//! off, or [`HostBuilder::config_env`] gives the variables to read instead (tests use that rather
//! than changing the process environment). `WORKER_CONFIG` is read from the same place.
//!
//! # Keys and values
//!
//! Every key of `#[worker(...)]` but `name`, spelled as the [`WorkerBuilder`] method ([`keys`]
//! lists them, in the order of the one key table the attribute uses too), with the same values:
//! durations (`"250ms"`, `"10s"`, `"1h 30m"`), whole numbers (`5`), `circuit_failure_ratio` as a
//! number (`0.5`), `true`/`false`, `once = true`, `cron` and `time_zone` as strings, and the
//! policies by name: `missed` (`"skip"`, `"burst"`, `"delay"`), `overlap` (`"skip"`, `"queue"`,
//! `"allow(N)"`), `backoff_kind` (`"constant"`, `"linear"`, `"exponential"`), `escalate`
//! (`"stop_worker"`, `"stop_host"`). Every value goes through the parser and the check the
//! attribute uses at compile time, so a value is accepted here exactly when it compiles there,
//! and is refused with the same words (see the *Valid ranges* of `#[worker]`).
//!
//! Numbers and booleans may also be written as strings (`retry = "5"`), as they are in
//! environment variables.
//!
//! `time_zone` only applies to `cron`: a `time_zone` override on a worker whose trigger (after
//! the overrides) is not `cron` is an error, and so is an unknown zone, whatever the trigger. An
//! override that replaces a declared `cron` by another trigger drops the declared `time_zone`
//! with it.
//!
//! The file must be a regular file of at most [`MAX_FILE_BYTES`] (1 MiB): a FIFO, a device or
//! a directory is refused without being read.
//!
//! # Errors
//!
//! [`HostBuilder::build`] fails (with an error that answers
//! [`is_config`](crate::Error::is_config)) on a value that does not parse, an unknown key (the
//! error lists the valid ones), a worker that is not registered (the error lists the registered
//! ones), and on an overridden value that the host's checks refuse (a zero period, a bad cron
//! expression, `jitter` not below the period, ...). The error names where the value came from,
//! the value and what was expected:
//!
//! ```text
//! configuration: workers.toml: workers.sync_orders.every = "ten": expected a duration such as "250ms", "10s", "5m" or "1h" (not a number and a unit)
//! configuration: environment variable WORKER__SYNC_ORDERS__RETRY = "-1": expected a whole number from 0 to 10000
//! configuration: environment variable WORKER__SYNC_ORDERS__AFTER = "400d": expected a duration from 0s to 365d
//! ```
//!
//! The overrides that took effect are logged at `info` level when the host is built.
//!
//! [`Worker::builder`]: crate::Worker::builder
//! [`WorkerBuilder`]: crate::WorkerBuilder
//! [`HostBuilder::config_file`]: crate::HostBuilder::config_file
//! [`HostBuilder::env_overrides`]: crate::HostBuilder::env_overrides
//! [`HostBuilder::config_env`]: crate::HostBuilder::config_env
//! [`HostBuilder::build`]: crate::HostBuilder::build
//!

mod apply;
mod env;
mod file;

mod builder;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::SystemTime;

use crate::error::Error;
use crate::worker::Worker;

pub use self::file::MAX_FILE_BYTES;

/// The environment variable naming the configuration file when
/// [`HostBuilder::config_file`](crate::HostBuilder::config_file) is not called.
pub const CONFIG_FILE_VAR: &str = "WORKER_CONFIG";

/// The prefix of the environment variables that override one key of one worker:
/// `WORKER__<NAME>__<KEY>`.
pub const ENV_PREFIX: &str = "WORKER__";

/// The keys a configuration file or environment variable may set, in the order the
/// [`WorkerBuilder`](crate::WorkerBuilder) documents them.
pub fn keys() -> impl Iterator<Item = &'static str> {
    worker_keys::KEYS
        .iter()
        .filter(|key| key.is_overridable())
        .map(|key| key.name)
}

/// The environment variable that overrides `key` of the worker named `worker`:
/// `env_var("sync-orders", "every")` is `WORKER__SYNC_ORDERS__EVERY`.
#[must_use]
pub fn env_var(worker: &str, key: &str) -> String {
    format!(
        "{ENV_PREFIX}{}__{}",
        env::env_name(worker),
        key.to_ascii_uppercase()
    )
}

/// Where a host's overrides come from; set on the [`HostBuilder`](crate::HostBuilder).
#[derive(Debug, Clone, Default)]
pub(crate) struct Sources {
    /// The file given to `config_file`.
    pub(crate) file: Option<PathBuf>,
    /// The variables given to `config_env`; `None` reads the process environment.
    pub(crate) env: Option<Vec<(String, String)>>,
    /// `env_overrides(false)`: ignore `WORKER__*` variables.
    pub(crate) env_off: bool,
    /// The stem given to `env_prefix`, instead of `WORKER`.
    pub(crate) stem: Option<String>,
}

/// The registered workers, looked up by name.
pub(crate) struct Names<'w> {
    /// Distinct names in registration order, with the index of the first worker of each.
    pub(crate) names: Vec<(&'w str, usize)>,
}

impl<'w> Names<'w> {
    fn new(workers: &'w [Worker]) -> Self {
        let mut names: Vec<(&str, usize)> = Vec::with_capacity(workers.len());
        let mut seen = HashMap::with_capacity(workers.len());
        for (index, worker) in workers.iter().enumerate() {
            if seen.insert(worker.name(), index).is_none() {
                names.push((worker.name(), index));
            }
        }
        Self { names }
    }

    pub(crate) fn find(&self, name: &str) -> Option<usize> {
        self.names.iter().find(|(n, _)| *n == name).map(|(_, i)| *i)
    }

    /// "the registered workers are `a`, `b`", with `shown` spelling each name.
    pub(crate) fn listed(&self, shown: impl Fn(&str) -> String) -> String {
        if self.names.is_empty() {
            return "no workers are registered".to_owned();
        }
        let mut list = String::from("the registered workers are ");
        for (i, (name, _)) in self.names.iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            let _ = write!(list, "{sep}{}", shown(name));
        }
        list
    }
}

impl Sources {
    /// Applies the file and environment overrides onto the workers' specs, and checks every
    /// overridden spec so that a refused value is reported with where it came from.
    pub(crate) fn apply(
        &self,
        mut workers: Vec<Worker>,
        now: SystemTime,
    ) -> Result<Vec<Worker>, Error> {
        let prefix = self.prefix()?;
        let vars = self.override_vars(&prefix)?;
        let file = match self.file_path() {
            Some((path, label)) => Some((file::read_file(&path, &label)?, label)),
            None => None,
        };
        if vars.is_empty() && file.is_none() {
            return Ok(workers);
        }
        let names = Names::new(&workers);
        let mut overrides = Vec::new();
        if let Some((file, label)) = &file {
            file::collect_file(file, label, &names, &mut overrides)?;
        }
        env::collect_env(&prefix, &vars, &names, &mut overrides)?;
        for (index, worker) in workers.iter_mut().enumerate() {
            let mine: Vec<&apply::Override<'_>> =
                overrides.iter().filter(|o| o.worker == index).collect();
            if !mine.is_empty() {
                apply::apply_to(&mut worker.spec, &mine, now)?;
            }
        }
        Ok(workers)
    }

    /// The configuration file and how errors name it.
    fn file_path(&self) -> Option<(PathBuf, String)> {
        if let Some(path) = &self.file {
            return Some((path.clone(), path.display().to_string()));
        }
        let var = match &self.stem {
            Some(stem) => format!("{stem}_CONFIG"),
            None => CONFIG_FILE_VAR.to_owned(),
        };
        let path = match &self.env {
            Some(vars) => vars
                .iter()
                .rev()
                .find(|(name, _)| *name == var)
                .map(|(_, value)| PathBuf::from(value)),
            None => std::env::var_os(&var).map(PathBuf::from),
        }?;
        if path.as_os_str().is_empty() {
            return None;
        }
        let label = format!("{} (named by {var})", path.display());
        Some((path, label))
    }

    /// The prefix of the override variables: `WORKER__`, or the `env_prefix` stem and `__`.
    fn prefix(&self) -> Result<String, Error> {
        let Some(stem) = &self.stem else {
            return Ok(ENV_PREFIX.to_owned());
        };
        let valid = stem.starts_with(|c: char| c.is_ascii_uppercase())
            && !stem.ends_with('_')
            && stem
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
        if !valid {
            return Err(Error::overridden(
                None,
                "the host's env_prefix".to_owned(),
                Some(format!("{stem:?}")),
                "expected capital letters, digits and `_`, starting with a letter and not \
                 ending with `_`, such as \"BILLING_WORKER\"",
            ));
        }
        Ok(format!("{stem}__"))
    }

    /// The override variables, sorted by name; none when they are turned off.
    fn override_vars(&self, prefix: &str) -> Result<Vec<(String, String)>, Error> {
        if self.env_off {
            return Ok(Vec::new());
        }
        let mut vars = if let Some(vars) = &self.env {
            vars.iter()
                .filter(|(name, _)| name.starts_with(prefix))
                .cloned()
                .collect()
        } else {
            env::process_vars(prefix)?
        };
        vars.sort();
        Ok(vars)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_names_replace_everything_but_ascii_letters_and_digits() {
        assert_eq!(
            env_var("sync_orders", "every"),
            "WORKER__SYNC_ORDERS__EVERY"
        );
        assert_eq!(
            env_var("reindex-0.eu", "circuit_failure_ratio"),
            "WORKER__REINDEX_0_EU__CIRCUIT_FAILURE_RATIO"
        );
        assert_eq!(env::env_name("café"), "CAF_");
    }

    #[test]
    fn the_key_table_has_every_key_once_and_not_name() {
        let mut names: Vec<&str> = keys().collect();
        assert_eq!(names.len(), 33);
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), 33);
        for fixed in ["name", "queue", "durable", "singleton"] {
            assert!(!names.contains(&fixed), "{fixed}");
        }
    }

    #[test]
    fn toml_keys_are_quoted_only_when_needed() {
        assert_eq!(file::toml_key("sync_orders"), "sync_orders");
        assert_eq!(file::toml_key("reindex-0"), "reindex-0");
        assert_eq!(file::toml_key("a.b"), "\"a.b\"");
    }
}
