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
//! lists them):
//!
//! | keys | value |
//! |---|---|
//! | `every`, `fixed_delay`, `after`, `jitter`, `backoff`, `backoff_max`, `timeout`, `circuit_window`, `circuit_break`, `restart_backoff`, `restart_window`, `stop_budget`, `stale_after` | a duration string: `"250ms"`, `"10s"`, `"5m"`, `"1h"`, `"1h 30m"` |
//! | `retry`, `circuit_min_throughput`, `max_restarts` | a whole number (`5`) |
//! | `circuit_failure_ratio` | a number (`0.5`) |
//! | `enabled`, `gates_readiness`, `gates_liveness` | `true` or `false` |
//! | `once` | `true` |
//! | `cron`, `time_zone` | a string (`"0 */5 * * * *"`, `"Europe/Paris"`) |
//! | `missed` | `"skip"`, `"burst"` or `"delay"` |
//! | `overlap` | `"skip"`, `"queue"` or `"allow(N)"` |
//! | `backoff_kind` | `"constant"`, `"linear"` or `"exponential"` |
//! | `escalate` | `"stop_worker"` or `"stop_host"` |
//!
//! Numbers and booleans may also be written as strings (`retry = "5"`), as they are in
//! environment variables. Every duration and number must be within its key's range, the same
//! as the attribute's (see the *Valid ranges* of `#[worker]`): 1 ms to 365 days for periods and
//! limits, 0 s to 365 days for delays, `retry` up to 10000, `max_restarts` up to 1000.
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
//! configuration: workers.toml: workers.sync_orders.every = "ten": expected a duration such as "250ms", "10s", "5m" or "1h"
//! configuration: environment variable WORKER__SYNC_ORDERS__RETRY = "-1": expected a whole number
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

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Deserialize;

use crate::error::{Error, Kind};
use crate::run::retry::BackoffKind;
use crate::schedule::{Missed, Overlap};
use crate::supervise::Escalation;
use crate::worker::Worker;
use crate::worker::spec::{Spec, TriggerSpec};

/// The environment variable naming the configuration file when
/// [`HostBuilder::config_file`](crate::HostBuilder::config_file) is not called.
pub const CONFIG_FILE_VAR: &str = "WORKER_CONFIG";

/// The prefix of the environment variables that override one key of one worker:
/// `WORKER__<NAME>__<KEY>`.
pub const ENV_PREFIX: &str = "WORKER__";

/// The keys a configuration file or environment variable may set, in the order the
/// [`WorkerBuilder`](crate::WorkerBuilder) documents them.
pub fn keys() -> impl Iterator<Item = &'static str> {
    KEYS.iter().map(|key| key.name)
}

/// The environment variable that overrides `key` of the worker named `worker`:
/// `env_var("sync-orders", "every")` is `WORKER__SYNC_ORDERS__EVERY`.
#[must_use]
pub fn env_var(worker: &str, key: &str) -> String {
    format!(
        "{ENV_PREFIX}{}__{}",
        env_name(worker),
        key.to_ascii_uppercase()
    )
}

/// A worker's name as it appears in environment variables.
fn env_name(worker: &str) -> String {
    worker
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
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
}

/// A value as a source wrote it.
#[derive(Debug, Clone, Copy)]
enum Raw<'a> {
    Toml(&'a toml::Value),
    Env(&'a str),
}

impl<'a> Raw<'a> {
    /// The text of a string value (every environment value is one), trimmed.
    fn text(self) -> Option<&'a str> {
        match self {
            Self::Toml(toml::Value::String(text)) => Some(text.trim()),
            Self::Env(text) => Some(text.trim()),
            Self::Toml(_) => None,
        }
    }

    /// The value as written, for messages: TOML syntax, or a quoted string.
    fn shown(self) -> String {
        match self {
            Self::Toml(value) => value.to_string(),
            Self::Env(text) => format!("{text:?}"),
        }
    }
}

/// What a value failed to be.
type Expected = &'static str;

/// One key: its name and how a value sets it on a [`Spec`] (or what was expected instead).
struct Key {
    name: &'static str,
    trigger: bool,
    set: fn(&mut Spec, Raw<'_>) -> Result<(), Expected>,
}

const fn key(name: &'static str, set: fn(&mut Spec, Raw<'_>) -> Result<(), Expected>) -> Key {
    Key {
        name,
        trigger: false,
        set,
    }
}

const fn trigger(name: &'static str, set: fn(&mut Spec, Raw<'_>) -> Result<(), Expected>) -> Key {
    Key {
        name,
        trigger: true,
        set,
    }
}

/// Every key, the one table both the file and the environment go through.
const KEYS: [Key; 27] = [
    trigger("every", |s, v| {
        duration(v).map(|d| s.trigger = Some(TriggerSpec::Every(d)))
    }),
    trigger("fixed_delay", |s, v| {
        duration(v).map(|d| s.trigger = Some(TriggerSpec::FixedDelay(d)))
    }),
    trigger("cron", |s, v| {
        text(v, CRON).map(|c| s.trigger = Some(TriggerSpec::Cron(c)))
    }),
    key("time_zone", |s, v| text(v, ZONE).map(|z| s.time_zone = z)),
    trigger("once", |s, v| match flag(v) {
        Ok(true) => {
            s.trigger = Some(TriggerSpec::Once);
            Ok(())
        }
        _ => Err(ONCE),
    }),
    key("after", |s, v| duration(v).map(|d| s.after = d)),
    key("jitter", |s, v| duration(v).map(|d| s.jitter = d)),
    key("missed", |s, v| {
        choice(
            v,
            &[Missed::Skip, Missed::Burst, Missed::Delay],
            Missed::as_str,
        )
        .map(|m| s.missed = m)
        .ok_or(MISSED)
    }),
    key("overlap", |s, v| overlap(v).map(|o| s.overlap = o)),
    key("enabled", |s, v| flag(v).map(|b| s.enabled = b)),
    key("retry", |s, v| count(v).map(|n| s.retry = n)),
    key("backoff_kind", |s, v| {
        choice(
            v,
            &[
                BackoffKind::Constant,
                BackoffKind::Linear,
                BackoffKind::Exponential,
            ],
            BackoffKind::as_str,
        )
        .map(|k| s.backoff_kind = k)
        .ok_or(BACKOFF_KIND)
    }),
    key("backoff", |s, v| duration(v).map(|d| s.backoff = d)),
    key("backoff_max", |s, v| duration(v).map(|d| s.backoff_max = d)),
    key("timeout", |s, v| duration(v).map(|d| s.timeout = Some(d))),
    key("circuit_failure_ratio", |s, v| {
        ratio(v).map(|r| s.circuit_mut().failure_ratio = r)
    }),
    key("circuit_min_throughput", |s, v| {
        count(v).map(|n| s.circuit_mut().min_throughput = n)
    }),
    key("circuit_window", |s, v| {
        duration(v).map(|d| s.circuit_mut().window = d)
    }),
    key("circuit_break", |s, v| {
        duration(v).map(|d| s.circuit_mut().break_for = d)
    }),
    key("restart_backoff", |s, v| {
        duration(v).map(|d| s.restart_backoff = d)
    }),
    key("max_restarts", |s, v| {
        count(v).map(|n| s.max_restarts = Some(n))
    }),
    key("restart_window", |s, v| {
        duration(v).map(|d| s.restart_window = d)
    }),
    key("escalate", |s, v| {
        choice(
            v,
            &[Escalation::StopWorker, Escalation::StopHost],
            Escalation::as_str,
        )
        .map(|e| s.escalate = e)
        .ok_or(ESCALATE)
    }),
    key("stop_budget", |s, v| {
        duration(v).map(|d| s.stop_budget = Some(d))
    }),
    key("stale_after", |s, v| {
        duration(v).map(|d| s.stale_after = Some(d))
    }),
    key("gates_readiness", |s, v| {
        flag(v).map(|b| s.gates_readiness = b)
    }),
    key("gates_liveness", |s, v| {
        flag(v).map(|b| s.gates_liveness = b)
    }),
];

const DURATION: Expected = "a duration such as \"250ms\", \"10s\", \"5m\" or \"1h\"";
const COUNT: Expected = "a whole number";
const RATIO: Expected = "a number such as 0.5";
const FLAG: Expected = "`true` or `false`";
const ONCE: Expected =
    "`true` (to run on a schedule instead, set `every`, `fixed_delay` or `cron`)";
const CRON: Expected = "a cron expression in a string, such as \"0 */5 * * * *\"";
const ZONE: Expected = "an IANA time zone name in a string, such as \"Europe/Paris\"";
const MISSED: Expected = "one of \"skip\", \"burst\" or \"delay\"";
const OVERLAP: Expected = "one of \"skip\", \"queue\" or \"allow(N)\" with N at least 1";
const BACKOFF_KIND: Expected = "one of \"constant\", \"linear\" or \"exponential\"";
const ESCALATE: Expected = "one of \"stop_worker\" or \"stop_host\"";

/// A duration; one too large to represent becomes [`Duration::MAX`], which the key's range
/// then refuses with the same words as any other value beyond it.
fn duration(value: Raw<'_>) -> Result<Duration, Expected> {
    match humantime::parse_duration(value.text().ok_or(DURATION)?) {
        Ok(duration) => Ok(duration),
        Err(humantime::DurationError::NumberOverflow) => Ok(Duration::MAX),
        Err(_) => Err(DURATION),
    }
}

/// A whole number; one beyond `u32` becomes `u32::MAX`, which the key's range refuses.
fn count(value: Raw<'_>) -> Result<u32, Expected> {
    match value {
        Raw::Toml(toml::Value::Integer(n)) => u64::try_from(*n).ok(),
        _ => value.text().and_then(|text| text.parse::<u64>().ok()),
    }
    .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
    .ok_or(COUNT)
}

fn ratio(value: Raw<'_>) -> Result<f64, Expected> {
    match value {
        Raw::Toml(toml::Value::Float(x)) => Some(*x),
        Raw::Toml(toml::Value::Integer(n)) => i32::try_from(*n).ok().map(f64::from),
        _ => value.text().and_then(|text| text.parse().ok()),
    }
    .filter(|x: &f64| x.is_finite())
    .ok_or(RATIO)
}

fn flag(value: Raw<'_>) -> Result<bool, Expected> {
    match value {
        Raw::Toml(toml::Value::Boolean(b)) => Some(*b),
        _ => value.text().and_then(|text| match text {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        }),
    }
    .ok_or(FLAG)
}

fn text(value: Raw<'_>, expected: Expected) -> Result<String, Expected> {
    value.text().map(str::to_owned).ok_or(expected)
}

/// The option whose name is the value.
fn choice<T: Copy>(value: Raw<'_>, options: &[T], name: fn(T) -> &'static str) -> Option<T> {
    let text = value.text()?;
    options.iter().copied().find(|option| name(*option) == text)
}

fn overlap(value: Raw<'_>) -> Result<Overlap, Expected> {
    let text = value.text().ok_or(OVERLAP)?;
    match text {
        "skip" => Ok(Overlap::Skip),
        "queue" => Ok(Overlap::Queue),
        _ => text
            .strip_prefix("allow(")
            .and_then(|rest| rest.strip_suffix(')'))
            .and_then(|n| n.trim().parse().ok())
            .map(Overlap::Allow)
            .ok_or(OVERLAP),
    }
}

/// The file's shape; values are checked key by key against [`KEYS`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    workers: BTreeMap<String, toml::Table>,
}

/// One value for one key of one worker, and where it came from.
struct Override<'a> {
    /// Index of the worker in registration order.
    worker: usize,
    key: &'static Key,
    value: Raw<'a>,
    /// `path: workers.name.key` or `environment variable WORKER__NAME__KEY`.
    location: String,
    /// 0 for the file, 1 for the environment.
    source: u8,
}

/// The registered workers, looked up by name.
struct Names<'w> {
    /// Distinct names in registration order, with the index of the first worker of each.
    names: Vec<(&'w str, usize)>,
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

    fn find(&self, name: &str) -> Option<usize> {
        self.names.iter().find(|(n, _)| *n == name).map(|(_, i)| *i)
    }

    /// "the registered workers are `a`, `b`", with `shown` spelling each name.
    fn listed(&self, shown: impl Fn(&str) -> String) -> String {
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
        let vars = self.override_vars()?;
        let file = match self.file_path() {
            Some((path, label)) => Some((read_file(&path, &label)?, label)),
            None => None,
        };
        if vars.is_empty() && file.is_none() {
            return Ok(workers);
        }
        let names = Names::new(&workers);
        let mut overrides = Vec::new();
        if let Some((file, label)) = &file {
            collect_file(file, label, &names, &mut overrides)?;
        }
        collect_env(&vars, &names, &mut overrides)?;
        for (index, worker) in workers.iter_mut().enumerate() {
            let mine: Vec<&Override<'_>> = overrides.iter().filter(|o| o.worker == index).collect();
            if !mine.is_empty() {
                apply_to(&mut worker.spec, &mine, now)?;
            }
        }
        Ok(workers)
    }

    /// The configuration file and how errors name it.
    fn file_path(&self) -> Option<(PathBuf, String)> {
        if let Some(path) = &self.file {
            return Some((path.clone(), path.display().to_string()));
        }
        let path = match &self.env {
            Some(vars) => vars
                .iter()
                .rev()
                .find(|(name, _)| name == CONFIG_FILE_VAR)
                .map(|(_, value)| PathBuf::from(value)),
            None => std::env::var_os(CONFIG_FILE_VAR).map(PathBuf::from),
        }?;
        if path.as_os_str().is_empty() {
            return None;
        }
        let label = format!("{} (named by {CONFIG_FILE_VAR})", path.display());
        Some((path, label))
    }

    /// The `WORKER__*` variables, sorted by name; none when they are turned off.
    fn override_vars(&self) -> Result<Vec<(String, String)>, Error> {
        if self.env_off {
            return Ok(Vec::new());
        }
        let mut vars = if let Some(vars) = &self.env {
            vars.iter()
                .filter(|(name, _)| name.starts_with(ENV_PREFIX))
                .cloned()
                .collect()
        } else {
            process_vars()?
        };
        vars.sort();
        Ok(vars)
    }
}

/// The process's `WORKER__*` variables.
fn process_vars() -> Result<Vec<(String, String)>, Error> {
    let mut vars = Vec::new();
    for (name, value) in std::env::vars_os() {
        let Some(name) = name.to_str().filter(|n| n.starts_with(ENV_PREFIX)) else {
            continue;
        };
        let value = value.into_string().map_err(|value| {
            Error::overridden(
                None,
                format!("environment variable {name}"),
                Some(format!("{:?}", value.to_string_lossy())),
                "expected valid UTF-8",
            )
        })?;
        vars.push((name.to_owned(), value));
    }
    Ok(vars)
}

/// The largest configuration file read: 1 MiB.
pub const MAX_FILE_BYTES: u64 = 1 << 20;

fn read_file(path: &Path, label: &str) -> Result<File, Error> {
    let refuse = |message: String| Error::overridden(None, label.to_owned(), None, message);
    let text = read_regular(path).map_err(refuse)?;
    toml::from_str(&text).map_err(|err| {
        refuse(format!(
            "cannot parse the configuration file: {}",
            err.to_string().trim_end()
        ))
    })
}

/// The text of the regular file at `path`, of at most [`MAX_FILE_BYTES`]. A FIFO, a device
/// (`/dev/zero`) or a directory is refused without reading it, so a build never blocks on the
/// file nor reads without end.
fn read_regular(path: &Path) -> Result<String, String> {
    let cannot = |err: std::io::Error| format!("cannot read the configuration file: {err}");
    let not_regular = || {
        "cannot read the configuration file: it is not a regular file (a FIFO, a device or a \
         directory); expected a TOML file"
            .to_owned()
    };
    // Checked before opening: opening a FIFO for reading waits for a writer.
    if !std::fs::metadata(path).map_err(cannot)?.is_file() {
        return Err(not_regular());
    }
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        // Should the path have become a FIFO since, opening it does not wait.
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options.open(path).map_err(cannot)?;
    if !file.metadata().map_err(cannot)?.is_file() {
        return Err(not_regular());
    }
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(format!(
            "the configuration file is larger than {} KiB; expected a TOML file of workers' \
             settings",
            MAX_FILE_BYTES >> 10
        ));
    }
    String::from_utf8(bytes)
        .map_err(|_| "cannot read the configuration file: it is not valid UTF-8".to_owned())
}

/// A key of a TOML table, quoted when it is not a bare key.
fn toml_key(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if bare {
        key.to_owned()
    } else {
        toml::Value::String(key.to_owned()).to_string()
    }
}

fn collect_file<'a>(
    file: &'a File,
    label: &str,
    names: &Names<'_>,
    overrides: &mut Vec<Override<'a>>,
) -> Result<(), Error> {
    for (name, table) in &file.workers {
        let table_path = format!("workers.{}", toml_key(name));
        let Some(worker) = names.find(name) else {
            return Err(Error::overridden(
                None,
                format!("{label}: [{table_path}]"),
                None,
                format!(
                    "no worker is named `{name}`; {}",
                    names.listed(|n| format!("`{n}`"))
                ),
            ));
        };
        for (key, value) in table {
            let location = format!("{label}: {table_path}.{}", toml_key(key));
            let value = Raw::Toml(value);
            let Some(key) = KEYS.iter().find(|k| k.name == key) else {
                return Err(unknown_key(name, location, value, key, ToOwned::to_owned));
            };
            push(
                overrides,
                Override {
                    worker,
                    key,
                    value,
                    location,
                    source: 0,
                },
            )?;
        }
    }
    Ok(())
}

fn collect_env<'a>(
    vars: &'a [(String, String)],
    names: &Names<'_>,
    overrides: &mut Vec<Override<'a>>,
) -> Result<(), Error> {
    if vars.is_empty() {
        return Ok(());
    }
    let mut by_env_name: HashMap<String, Vec<(&str, usize)>> = HashMap::new();
    for &(name, index) in &names.names {
        by_env_name
            .entry(env_name(name))
            .or_default()
            .push((name, index));
    }
    for (var, text) in vars {
        let location = format!("environment variable {var}");
        let value = Raw::Env(text);
        let Some((name, key)) = var
            .strip_prefix(ENV_PREFIX)
            .and_then(|rest| rest.rsplit_once("__"))
        else {
            return Err(Error::overridden(
                None,
                location,
                Some(value.shown()),
                format!(
                    "expected a variable named {ENV_PREFIX}<NAME>__<KEY>, such as {ENV_PREFIX}SYNC_ORDERS__EVERY"
                ),
            ));
        };
        let worker = match by_env_name.get(name).map(Vec::as_slice) {
            Some(&[(_, index)]) => index,
            Some(several) => {
                let listed: Vec<String> = several.iter().map(|(n, _)| format!("`{n}`")).collect();
                return Err(Error::overridden(
                    None,
                    location,
                    Some(value.shown()),
                    format!(
                        "`{name}` names several workers: {}; rename one of them to override it",
                        listed.join(", ")
                    ),
                ));
            }
            None => {
                return Err(Error::overridden(
                    None,
                    location,
                    Some(value.shown()),
                    format!(
                        "no worker's name gives `{name}`; {}",
                        names.listed(|n| format!("`{n}` ({ENV_PREFIX}{}__<KEY>)", env_name(n)))
                    ),
                ));
            }
        };
        let Some(key) = KEYS.iter().find(|k| k.name.to_ascii_uppercase() == key) else {
            let worker_name = names
                .names
                .iter()
                .find(|(_, i)| *i == worker)
                .map_or("", |(n, _)| n);
            return Err(unknown_key(
                worker_name,
                location,
                value,
                key,
                str::to_ascii_uppercase,
            ));
        };
        push(
            overrides,
            Override {
                worker,
                key,
                value,
                location,
                source: 1,
            },
        )?;
    }
    Ok(())
}

fn unknown_key(
    worker: &str,
    location: String,
    value: Raw<'_>,
    key: &str,
    spell: impl Fn(&str) -> String,
) -> Error {
    let valid: Vec<String> = keys().map(spell).collect();
    let name = if key.eq_ignore_ascii_case("name") {
        " (a worker's name cannot be overridden)"
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
fn push<'a>(overrides: &mut Vec<Override<'a>>, new: Override<'a>) -> Result<(), Error> {
    if new.key.trigger
        && let Some(other) = overrides
            .iter()
            .find(|o| o.worker == new.worker && o.source == new.source && o.key.trigger)
    {
        return Err(Error::overridden(
            None,
            new.location,
            Some(new.value.shown()),
            format!(
                "conflicts with {}: a worker has one trigger, so set only one of `every`, \
                 `fixed_delay`, `cron` or `once`",
                other.location
            ),
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
fn apply_to(spec: &mut Spec, overrides: &[&Override<'_>], now: SystemTime) -> Result<(), Error> {
    let mut applied: Vec<Applied<'_>> = Vec::with_capacity(overrides.len());
    for o in overrides {
        (o.key.set)(spec, o.value).map_err(|expected| {
            Error::overridden(
                Some(&spec.name),
                o.location.clone(),
                Some(o.value.shown()),
                format!("expected {expected}"),
            )
        })?;
        applied.retain(|a| a.key != o.key.name && !(o.key.trigger && is_trigger(a.key)));
        applied.push(Applied {
            key: o.key.name,
            location: &o.location,
            shown: o.value.shown(),
        });
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
    KEYS.iter().any(|k| k.trigger && k.name == name)
}

/// Names the source of a value the spec's check refused, when an override set it (or set the
/// key it was compared with).
fn explain(err: Error, worker: &str, applied: &[Applied<'_>]) -> Error {
    let Kind::Config {
        key,
        value,
        expected,
        ..
    } = err.kind()
    else {
        return err;
    };
    if let Some(a) = applied.iter().find(|a| a.key == *key) {
        return Error::overridden(
            Some(worker),
            a.location.to_owned(),
            Some(a.shown.clone()),
            format!("expected {expected}"),
        );
    }
    let related: &[&str] = match *key {
        "jitter" => &["every"],
        "backoff" => &["backoff_max"],
        "cron" => &["time_zone"],
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
    Error::config(
        worker,
        key,
        value,
        format!("{expected} ({})", notes.join("; ")),
    )
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
        assert_eq!(env_name("café"), "CAF_");
    }

    #[test]
    fn the_key_table_has_every_key_once_and_not_name() {
        let mut names: Vec<&str> = keys().collect();
        assert_eq!(names.len(), 27);
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), 27);
        assert!(!names.contains(&"name"));
    }

    #[test]
    fn values_parse_from_toml_and_from_strings() {
        let five = toml::Value::Integer(5);
        assert_eq!(count(Raw::Toml(&five)), Ok(5));
        assert_eq!(count(Raw::Env(" 5 ")), Ok(5));
        assert_eq!(count(Raw::Env("-1")), Err(COUNT));
        assert_eq!(
            count(Raw::Env("99999999999")),
            Ok(u32::MAX),
            "refused by its range"
        );
        assert_eq!(
            duration(Raw::Env("100000000000000000000s")),
            Ok(Duration::MAX),
            "refused by its range"
        );
        let minus = toml::Value::Integer(-1);
        assert_eq!(count(Raw::Toml(&minus)), Err(COUNT));
        assert_eq!(ratio(Raw::Toml(&five)), Ok(5.0));
        assert_eq!(ratio(Raw::Env("0.25")), Ok(0.25));
        assert_eq!(ratio(Raw::Env("NaN")), Err(RATIO));
        assert_eq!(flag(Raw::Env("false")), Ok(false));
        assert_eq!(flag(Raw::Env("no")), Err(FLAG));
        assert_eq!(duration(Raw::Env("1h 30m")), Ok(Duration::from_mins(90)));
        assert_eq!(duration(Raw::Toml(&five)), Err(DURATION));
        assert_eq!(overlap(Raw::Env("allow( 3 )")), Ok(Overlap::Allow(3)));
        assert_eq!(overlap(Raw::Env("queue")), Ok(Overlap::Queue));
        assert_eq!(overlap(Raw::Env("allow(-1)")), Err(OVERLAP));
        assert_eq!(
            choice(
                Raw::Env("burst"),
                &[Missed::Skip, Missed::Burst],
                Missed::as_str
            ),
            Some(Missed::Burst)
        );
    }

    #[test]
    fn toml_keys_are_quoted_only_when_needed() {
        assert_eq!(toml_key("sync_orders"), "sync_orders");
        assert_eq!(toml_key("reindex-0"), "reindex-0");
        assert_eq!(toml_key("a.b"), "\"a.b\"");
    }
}
