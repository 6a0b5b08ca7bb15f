//! The declared configuration of one worker: what `#[worker(...)]`, [`WorkerBuilder`] and
//! configuration overrides all write to, and the checks the host runs on it before start-up.
//!
//! [`WorkerBuilder`]: crate::WorkerBuilder

use std::sync::Arc;
use std::time::{Duration, SystemTime};

#[cfg(feature = "cron")]
use worker_keys::DEFAULT_TIME_ZONE;
use worker_keys::{
    DEFAULT_BACKOFF, DEFAULT_BACKOFF_MAX, DEFAULT_CAPACITY, DEFAULT_CATCH_UP, DEFAULT_CONCURRENCY,
    DEFAULT_LEASE, DEFAULT_RESTART_WINDOW, DEFAULT_STALE_PERIODS, MIN_DEFAULT_STALE_AFTER, Refusal,
};

use crate::error::Error;
use crate::queue::OnPanic;
use crate::run::circuit::CircuitBreaker;
use crate::run::retry::BackoffKind;
use crate::run::span::SpanLevel;
#[cfg(feature = "cron")]
use crate::schedule::cron::CronSchedule;
use crate::schedule::{Missed, Overlap};
use crate::supervise::Escalation;

/// What starts a run, as declared (a cron expression is parsed when the host is built).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DeclaredSchedule {
    Every(Duration),
    FixedDelay(Duration),
    #[cfg(feature = "cron")]
    Cron(String),
    Once,
}

/// What starts a run, checked.
#[derive(Debug, Clone)]
pub(crate) enum Schedule {
    /// Fixed rate on a drift-free grid.
    Every(Duration),
    /// The next run starts this long after the previous one ended.
    FixedDelay(Duration),
    /// Cron fire times in a zone.
    #[cfg(feature = "cron")]
    Cron(Box<CronSchedule>),
    /// One run at start-up (after `after`).
    Once,
    /// A run per job of the named queue.
    Queue(Arc<str>),
}

impl std::fmt::Display for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Every(period) => write!(f, "every {}", worker_keys::show(*period)),
            Self::FixedDelay(delay) => {
                write!(f, "fixed_delay {}", worker_keys::show(*delay))
            }
            #[cfg(feature = "cron")]
            Self::Cron(cron) => write!(f, "{cron}"),
            Self::Once => f.write_str("once"),
            Self::Queue(name) => write!(f, "queue {name}"),
        }
    }
}

/// The declared configuration of one worker.
#[derive(Debug, Clone)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "one field per key, and four keys are booleans"
)]
pub(crate) struct Spec {
    pub(crate) name: Arc<str>,
    pub(crate) trigger: Option<DeclaredSchedule>,
    /// `None`: not given, so [`DEFAULT_TIME_ZONE`] (only `cron` reads it).
    pub(crate) time_zone: Option<String>,
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
    /// The queue a queue worker consumes.
    pub(crate) queue: Option<Arc<str>>,
    /// `None`: not given, so [`DEFAULT_CONCURRENCY`] (only a queue worker reads it).
    pub(crate) concurrency: Option<u32>,
    /// `None`: not given, so [`DEFAULT_CAPACITY`].
    pub(crate) capacity: Option<u32>,
    /// `None`: not given, so [`OnPanic::Retry`].
    pub(crate) on_panic: Option<OnPanic>,
    pub(crate) span_level: SpanLevel,
    /// The queue's jobs live in the host's durable backend (`durable`).
    pub(crate) durable: bool,
    /// `None`: not given, so [`DEFAULT_LEASE`] (durable queue workers and singletons read it).
    pub(crate) lease: Option<Duration>,
    /// One replica runs each tick, the holder of the worker's lease (`singleton`).
    pub(crate) singleton: bool,
    /// `None`: not given, so [`DEFAULT_CATCH_UP`].
    pub(crate) catch_up: Option<u32>,
}

/// A checked [`Spec`]: what the supervisor runs.
#[derive(Debug, Clone)]
pub(crate) struct Checked {
    pub(crate) spec: Spec,
    pub(crate) trigger: Schedule,
}

impl Checked {
    /// How long without a success makes the worker stale: `stale_after` if set; otherwise
    /// [`DEFAULT_STALE_PERIODS`] periods of its trigger (for cron, the longest gap between its
    /// next 64 fires; for `fixed_delay`, the delay, run time not included), at least
    /// [`MIN_DEFAULT_STALE_AFTER`]; never for `once`.
    #[cfg_attr(
        not(feature = "cron"),
        allow(unused_variables, reason = "only a cron schedule reads the time")
    )]
    pub(crate) fn stale_after(&self, now: std::time::SystemTime) -> Option<Duration> {
        if let Some(after) = self.spec.stale_after {
            return Some(after);
        }
        let period = match &self.trigger {
            Schedule::Every(period) | Schedule::FixedDelay(period) => *period,
            #[cfg(feature = "cron")]
            Schedule::Cron(cron) => {
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
            Schedule::Once => return None,
            // The oldest waiting job's wait, not the time since a success.
            Schedule::Queue(_) => return Some(MIN_DEFAULT_STALE_AFTER),
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
            time_zone: None,
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
            queue: None,
            concurrency: None,
            capacity: None,
            on_panic: None,
            span_level: SpanLevel::default(),
            durable: false,
            lease: None,
            singleton: false,
            catch_up: None,
        }
    }

    /// How long a durable job's claim lasts without a heartbeat.
    pub(crate) fn lease(&self) -> Duration {
        self.lease.unwrap_or(DEFAULT_LEASE)
    }

    /// The most missed ticks a new holder of a singleton's lease replays.
    pub(crate) fn catch_up(&self) -> u32 {
        self.catch_up.unwrap_or(DEFAULT_CATCH_UP)
    }

    /// Jobs in flight at once, for a queue worker.
    pub(crate) fn concurrency(&self) -> usize {
        self.concurrency.unwrap_or(DEFAULT_CONCURRENCY) as usize
    }

    /// Jobs waiting before sends wait, for a queue worker.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity.unwrap_or(DEFAULT_CAPACITY) as usize
    }

    /// The circuit breaker, created with its defaults when a first `circuit_*` key is set.
    pub(crate) fn circuit_mut(&mut self) -> &mut CircuitBreaker {
        self.circuit.get_or_insert_with(CircuitBreaker::default)
    }

    /// Checks the declaration with the shared check of `worker_keys`, the one `#[worker]`
    /// runs at compile time and the configuration overrides go through, so every entry point
    /// refuses the same values with the same words. `now` is when the host starts: a cron
    /// schedule must fire after it.
    pub(crate) fn check(self, now: SystemTime) -> Result<Checked, Error> {
        let refused = |refusal: Refusal| Error::refused(&self.name, refusal);
        self.settings().check(now).map_err(refused)?;
        let trigger = match &self.trigger {
            // Checked above: a queue and a schedule are refused together.
            _ if self.queue.is_some() => {
                Schedule::Queue(self.queue.clone().unwrap_or_else(|| unreachable!()))
            }
            None => return Err(refused(Refusal::missing_trigger())),
            Some(DeclaredSchedule::Every(period)) => Schedule::Every(*period),
            Some(DeclaredSchedule::FixedDelay(delay)) => Schedule::FixedDelay(*delay),
            #[cfg(feature = "cron")]
            Some(DeclaredSchedule::Cron(expression)) => {
                let zone = self.time_zone.as_deref().unwrap_or(DEFAULT_TIME_ZONE);
                // Checked above, with the same parser.
                let cron = CronSchedule::parse(expression, zone).map_err(|err| {
                    refused(Refusal::new(
                        "cron",
                        format!("{expression:?}"),
                        err.to_string(),
                    ))
                })?;
                Schedule::Cron(Box::new(cron))
            }
            Some(DeclaredSchedule::Once) => Schedule::Once,
        };
        Ok(Checked {
            spec: self,
            trigger,
        })
    }
}

#[cfg(test)]
#[path = "spec_tests.rs"]
mod tests;
