//! The declared configuration of one worker: what `#[worker(...)]`, [`WorkerBuilder`] and
//! configuration overrides all write to, and the checks the host runs on it before start-up.
//!
//! [`WorkerBuilder`]: crate::WorkerBuilder

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use worker_keys::Range;

use crate::error::Error;
use crate::run::circuit::CircuitBreaker;
use crate::run::retry::BackoffKind;
use crate::schedule::cron::CronSchedule;
use crate::schedule::{Missed, Overlap};
use crate::supervise::Escalation;

/// Default base delay before the first retry.
pub const DEFAULT_BACKOFF: Duration = Duration::from_secs(1);
/// Default upper bound of the delay between retries.
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_mins(1);
/// Default period within which `max_restarts` is counted.
pub const DEFAULT_RESTART_WINDOW: Duration = Duration::from_mins(1);
/// Default time zone of cron schedules.
pub const DEFAULT_TIME_ZONE: &str = "UTC";

/// What starts a run, as declared (a cron expression is parsed when the host is built).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TriggerSpec {
    Every(Duration),
    FixedDelay(Duration),
    Cron(String),
    Once,
}

/// What starts a run, checked.
#[derive(Debug, Clone)]
pub(crate) enum Trigger {
    /// Fixed rate on a drift-free grid.
    Every(Duration),
    /// The next run starts this long after the previous one ended.
    FixedDelay(Duration),
    /// Cron fire times in a zone.
    Cron(Box<CronSchedule>),
    /// One run at start-up (after `after`).
    Once,
}

impl std::fmt::Display for Trigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Every(period) => write!(f, "every {}", humantime::format_duration(*period)),
            Self::FixedDelay(delay) => {
                write!(f, "fixed_delay {}", humantime::format_duration(*delay))
            }
            Self::Cron(cron) => write!(f, "{cron}"),
            Self::Once => f.write_str("once"),
        }
    }
}

/// The declared configuration of one worker.
#[derive(Debug, Clone)]
pub(crate) struct Spec {
    pub(crate) name: Arc<str>,
    pub(crate) trigger: Option<TriggerSpec>,
    pub(crate) time_zone: String,
    pub(crate) after: Duration,
    pub(crate) jitter: Duration,
    pub(crate) missed: Missed,
    pub(crate) overlap: Overlap,
    pub(crate) enabled: bool,
    pub(crate) retry: u32,
    pub(crate) backoff_kind: BackoffKind,
    pub(crate) backoff: Duration,
    pub(crate) backoff_max: Duration,
    pub(crate) timeout: Option<Duration>,
    pub(crate) circuit: Option<CircuitBreaker>,
    pub(crate) restart_backoff: Duration,
    pub(crate) max_restarts: Option<u32>,
    pub(crate) restart_window: Duration,
    pub(crate) escalate: Escalation,
    pub(crate) stop_budget: Option<Duration>,
    /// `None`: the default, from the trigger (see [`Checked::stale_after`]).
    pub(crate) stale_after: Option<Duration>,
    pub(crate) gates_readiness: bool,
    pub(crate) gates_liveness: bool,
}

/// A checked [`Spec`]: what the supervisor runs.
#[derive(Debug, Clone)]
pub(crate) struct Checked {
    pub(crate) spec: Spec,
    pub(crate) trigger: Trigger,
}

/// How many periods without a success make a worker stale, unless `stale_after` says otherwise.
pub const DEFAULT_STALE_PERIODS: u32 = 3;
/// The shortest default `stale_after`.
pub const MIN_DEFAULT_STALE_AFTER: Duration = Duration::from_mins(1);

impl Checked {
    /// How long without a success makes the worker stale: `stale_after` if set; otherwise
    /// [`DEFAULT_STALE_PERIODS`] periods of its trigger (for cron, the longest gap between its
    /// next 64 fires; for `fixed_delay`, the delay, run time not included), at least
    /// [`MIN_DEFAULT_STALE_AFTER`]; never for `once`.
    pub(crate) fn stale_after(&self, now: std::time::SystemTime) -> Option<Duration> {
        if let Some(after) = self.spec.stale_after {
            return Some(after);
        }
        let period = match &self.trigger {
            Trigger::Every(period) | Trigger::FixedDelay(period) => *period,
            Trigger::Cron(cron) => {
                // The longest gap between fires over the next 64: `0 0 9,10 * * *` fires an
                // hour apart, then 23 hours apart.
                let mut at = cron.next_after(now)?;
                let mut longest = Duration::ZERO;
                for _ in 0..64 {
                    let Some(next) = cron.next_after(at) else {
                        break;
                    };
                    longest = longest.max(next.duration_since(at).unwrap_or_default());
                    at = next;
                }
                longest
            }
            Trigger::Once => return None,
        };
        Some(
            period
                .saturating_mul(DEFAULT_STALE_PERIODS)
                .max(MIN_DEFAULT_STALE_AFTER),
        )
    }
}

impl Spec {
    pub(crate) fn new(name: String) -> Self {
        Self {
            name: name.into(),
            trigger: None,
            time_zone: DEFAULT_TIME_ZONE.to_owned(),
            after: Duration::ZERO,
            jitter: Duration::ZERO,
            missed: Missed::Skip,
            overlap: Overlap::Skip,
            enabled: true,
            retry: 0,
            backoff_kind: BackoffKind::Exponential,
            backoff: DEFAULT_BACKOFF,
            backoff_max: DEFAULT_BACKOFF_MAX,
            timeout: None,
            circuit: None,
            restart_backoff: Duration::ZERO,
            max_restarts: None,
            restart_window: DEFAULT_RESTART_WINDOW,
            escalate: Escalation::StopWorker,
            stop_budget: None,
            stale_after: None,
            gates_readiness: false,
            gates_liveness: false,
        }
    }

    /// The circuit breaker, created with its defaults when a first `circuit_*` key is set.
    pub(crate) fn circuit_mut(&mut self) -> &mut CircuitBreaker {
        self.circuit.get_or_insert_with(CircuitBreaker::default)
    }

    /// Checks what the type system cannot; the builder and configuration paths have no
    /// compile-time checks. Every duration and number is checked against its range in
    /// `worker_keys::RANGES`, the table `#[worker]` checks at compile time, so both refuse the
    /// same values with the same words. Errors name the worker, the key, the value and what was
    /// expected. `now` is when the host starts: a cron schedule must fire after it.
    #[allow(
        clippy::too_many_lines,
        reason = "a flat list of independent checks reads best in one place"
    )]
    pub(crate) fn check(self, now: SystemTime) -> Result<Checked, Error> {
        let name = &*self.name;
        let fail =
            |key, value: String, expected: &str| Err(Error::config(name, key, value, expected));
        if name.trim().is_empty() {
            return fail("name", format!("{name:?}"), "a non-empty name");
        }
        let trigger = match &self.trigger {
            None => {
                return fail(
                    "every",
                    "nothing".to_owned(),
                    "a trigger: one of `every`, `fixed_delay`, `cron` or `once`",
                );
            }
            Some(TriggerSpec::Every(period)) => {
                within(name, "every", *period)?;
                Trigger::Every(*period)
            }
            Some(TriggerSpec::FixedDelay(delay)) => {
                within(name, "fixed_delay", *delay)?;
                Trigger::FixedDelay(*delay)
            }
            Some(TriggerSpec::Cron(expression)) => {
                match CronSchedule::parse(expression, &self.time_zone) {
                    Ok(cron) => {
                        if let Some(expected) = cron.never_fires(now) {
                            return fail("cron", format!("{expression:?}"), &expected);
                        }
                        Trigger::Cron(Box::new(cron))
                    }
                    Err(reason) if reason.starts_with("unknown time zone") => {
                        return fail(
                            "time_zone",
                            format!("{:?}", self.time_zone),
                            "an IANA time zone name such as `UTC` or `Europe/Berlin`",
                        );
                    }
                    Err(reason) => {
                        // `reason` reads "invalid cron expression `..`: <croner's reason>".
                        let why = reason.split_once(": ").map_or(&*reason, |(_, why)| why);
                        return fail(
                            "cron",
                            format!("{expression:?}"),
                            &format!(
                                "a cron expression of 5 fields, or 6 with seconds first ({why})"
                            ),
                        );
                    }
                }
            }
            Some(TriggerSpec::Once) => Trigger::Once,
        };
        let durations = [
            ("after", Some(self.after)),
            ("jitter", Some(self.jitter)),
            ("backoff", Some(self.backoff)),
            ("backoff_max", Some(self.backoff_max)),
            ("timeout", self.timeout),
            ("restart_backoff", Some(self.restart_backoff)),
            ("restart_window", Some(self.restart_window)),
            ("stop_budget", self.stop_budget),
            ("stale_after", self.stale_after),
        ];
        for (key, value) in durations {
            if let Some(value) = value {
                within(name, key, value)?;
            }
        }
        count(name, "retry", self.retry)?;
        if let Some(max) = self.max_restarts {
            count(name, "max_restarts", max)?;
        }
        if let Overlap::Allow(n) = self.overlap {
            let range = range("overlap");
            if !range.contains_count(u64::from(n)) {
                return fail(
                    "overlap",
                    format!("allow({n})"),
                    &format!("`allow(n)` with n {}", range.expected()),
                );
            }
        }
        if let Trigger::Every(period) = trigger
            && self.jitter >= period
        {
            return fail(
                "jitter",
                show(self.jitter),
                &format!("less than the period ({})", show(period)),
            );
        }
        if self.backoff > self.backoff_max {
            return fail(
                "backoff",
                show(self.backoff),
                &format!("at most `backoff_max` ({})", show(self.backoff_max)),
            );
        }
        if let Some(circuit) = &self.circuit {
            let ratio = range("circuit_failure_ratio");
            if !ratio.contains_ratio(circuit.failure_ratio) {
                return fail(
                    "circuit_failure_ratio",
                    circuit.failure_ratio.to_string(),
                    &ratio.expected().to_string(),
                );
            }
            count(name, "circuit_min_throughput", circuit.min_throughput)?;
            within(name, "circuit_window", circuit.window)?;
            within(name, "circuit_break", circuit.break_for)?;
        }
        Ok(Checked {
            spec: self,
            trigger,
        })
    }
}

/// The range of `key` in the shared table.
fn range(key: &str) -> Range {
    worker_keys::range(key).unwrap_or_else(|| unreachable!("`{key}` has a range"))
}

/// A duration as keys are written, quoted: `"1m 30s"`.
fn show(d: Duration) -> String {
    format!("\"{}\"", humantime::format_duration(d))
}

/// Checks a duration against the range of `key`.
pub(crate) fn within(worker: &str, key: &'static str, value: Duration) -> Result<(), Error> {
    let range = range(key);
    if range.contains_duration(value) {
        Ok(())
    } else {
        Err(Error::config(
            worker,
            key,
            show(value),
            range.expected().to_string(),
        ))
    }
}

/// Checks a number against the range of `key`.
fn count(worker: &str, key: &'static str, value: u32) -> Result<(), Error> {
    let range = range(key);
    if range.contains_count(u64::from(value)) {
        Ok(())
    } else {
        Err(Error::config(
            worker,
            key,
            value,
            range.expected().to_string(),
        ))
    }
}
