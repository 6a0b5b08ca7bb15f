//! THE table of worker keys: one [`Key`] row per key of `#[worker(...)]`, of
//! `WorkerBuilder` and of the configuration file and environment variables.
//!
//! Adding a key is adding its row here, and in `worker_core` the field that keeps it, its
//! builder method and its line in `worker/places.rs` (a test there fails without it): the
//! attribute, the builder's check, the file and the environment all look keys up in [`KEYS`],
//! parse their values with [`parse`](crate::parse) and check them with
//! [`Settings::check`](crate::Settings::check).

use std::time::Duration;

use crate::range::{MAX_DURATION, MIN_PERIOD, Range};

/// One key.
#[derive(Debug)]
#[non_exhaustive]
pub struct Key {
    /// The key as written in the attribute and the file (upper-cased in environment variables).
    pub name: &'static str,
    /// Which workers the key applies to; given to another, it is refused.
    pub applies: Applies,
    /// How a value is written and what it may be.
    pub kind: Kind,
    /// What the runtime uses when the key is not given.
    pub default: DefaultValue,
    /// A valid value as written in the attribute, for messages: `"10s"`, `3`, `skip`.
    pub example: &'static str,
    /// What the key means, in one line, for docs and messages.
    pub doc: &'static str,
}

/// How a key's value is written, and what it may be.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Kind {
    /// A duration (`"250ms"`, `"1h 30m"`) within a range.
    Duration(Range),
    /// A whole number within a range.
    Count(Range),
    /// A number greater than 0 and at most 1.
    Ratio,
    /// `true` or `false`.
    Bool,
    /// `true` only: a key that is given or not (`once`).
    Flag,
    /// One name out of a closed set, each standing for a variant of a `worker_core` enum.
    Choice(&'static Choice),
    /// `skip`, `queue` or `allow(n)` with `n` in a range.
    Overlap(Range),
    /// A worker's name: not empty.
    Name,
    /// A cron expression (checked with the parser `worker_core::cron` uses).
    Cron,
    /// An IANA time zone name.
    TimeZone,
}

/// A closed set of names, each standing for a variant of a `worker_core` enum.
#[derive(Debug)]
#[non_exhaustive]
pub struct Choice {
    /// The `worker_core` enum: `Missed`.
    pub ty: &'static str,
    /// Each accepted name and the variant it stands for: `("skip", "Skip")`.
    pub options: &'static [(&'static str, &'static str)],
}

/// Which workers a key applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Applies {
    /// Every worker.
    Any,
    /// Workers on a schedule (`every`, `fixed_delay`, `cron`, `once`), not queue consumers.
    Schedule,
    /// Workers on `cron`.
    Cron,
    /// Queue consumers (`queue`).
    Queue,
    /// Consumers of in-process queues (`queue` without `durable`).
    InProcess,
    /// Consumers of durable queues (`queue` with `durable`).
    Durable,
    /// Workers on `every` or `cron`: the schedules a shared grid of instants can describe.
    Repeating,
    /// Singleton schedules (`singleton`).
    Singleton,
    /// What holds a lease in the backend: durable queue workers and singleton schedules.
    Leased,
}

impl Applies {
    /// What the key applies to, as messages say it after "it only applies to".
    #[must_use]
    pub fn describe(self) -> &'static str {
        match self {
            Self::Any => "every worker",
            Self::Schedule => "workers on a schedule",
            Self::Cron => "`cron`",
            Self::Queue => "queue workers (`queue = \"name\"`)",
            Self::InProcess => "in-process queue workers (`queue = \"name\"` without `durable`)",
            Self::Durable => "durable queue workers (`queue = \"name\", durable`)",
            Self::Repeating => "workers on `every` or `cron`",
            Self::Singleton => "singleton schedules (`singleton`)",
            Self::Leased => "durable queue workers and singleton schedules",
        }
    }
}

/// What the runtime uses when a key is not given.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum DefaultValue {
    /// This duration.
    Duration(Duration),
    /// This number.
    Count(u32),
    /// This ratio.
    Ratio(f64),
    /// This boolean.
    Bool(bool),
    /// This option of a [`Choice`] (or of `overlap`).
    Choice(&'static str),
    /// This text (a time zone).
    Text(&'static str),
    /// No value: what that means.
    None(&'static str),
}

/// The base delay before the first retry (`backoff`).
pub const DEFAULT_BACKOFF: Duration = Duration::from_secs(1);
/// The cap of the delay between retries (`backoff_max`).
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_mins(1);
/// The period within which `max_restarts` is counted (`restart_window`).
pub const DEFAULT_RESTART_WINDOW: Duration = Duration::from_mins(1);
/// The time zone cron expressions are read in (`time_zone`).
pub const DEFAULT_TIME_ZONE: &str = "UTC";
/// How many periods without a success make a worker stale, unless `stale_after` says otherwise.
pub const DEFAULT_STALE_PERIODS: u32 = 3;
/// The shortest default `stale_after`.
pub const MIN_DEFAULT_STALE_AFTER: Duration = Duration::from_mins(1);
/// The defaults of the circuit breaker once a `circuit_*` key turns it on.
pub const DEFAULT_CIRCUIT_FAILURE_RATIO: f64 = 0.5;
/// See [`DEFAULT_CIRCUIT_FAILURE_RATIO`].
pub const DEFAULT_CIRCUIT_MIN_THROUGHPUT: u32 = 5;
/// See [`DEFAULT_CIRCUIT_FAILURE_RATIO`].
pub const DEFAULT_CIRCUIT_WINDOW: Duration = Duration::from_mins(1);
/// See [`DEFAULT_CIRCUIT_FAILURE_RATIO`].
pub const DEFAULT_CIRCUIT_BREAK: Duration = Duration::from_secs(30);

/// A duration that may be zero (`after`, `jitter`, `backoff`, `restart_backoff`).
pub const DELAY: Range = Range::Duration {
    min: Duration::ZERO,
    max: MAX_DURATION,
};

/// A duration that must be at least [`MIN_PERIOD`] (`every`, `timeout`, `backoff_max`, ...).
/// `backoff_max` is one: a cap of zero is no cap; retrying at once is `backoff = "0s"`.
pub const PERIOD: Range = Range::Duration {
    min: MIN_PERIOD,
    max: MAX_DURATION,
};

/// A lease: at least 2 s (its heartbeat comes every third of it, and a holder stops trusting
/// it a second before it ends), at most a day.
pub const LEASE: Range = Range::Duration {
    min: Duration::from_secs(2),
    max: Duration::from_hours(24),
};

/// The choices of `missed`.
pub const MISSED: Choice = Choice {
    ty: "Missed",
    options: &[("skip", "Skip"), ("burst", "Burst"), ("delay", "Delay")],
};

/// The choices of `overlap` besides `allow(n)`.
pub const OVERLAP: Choice = Choice {
    ty: "Overlap",
    options: &[("skip", "Skip"), ("queue", "Queue")],
};

/// The choices of `backoff_kind`.
pub const BACKOFF_KIND: Choice = Choice {
    ty: "BackoffKind",
    options: &[
        ("constant", "Constant"),
        ("linear", "Linear"),
        ("exponential", "Exponential"),
    ],
};

/// The choices of `on_panic`.
pub const ON_PANIC: Choice = Choice {
    ty: "OnPanic",
    options: &[("retry", "Retry"), ("discard", "Discard")],
};

/// The choices of `span_level`.
pub const SPAN_LEVEL: Choice = Choice {
    ty: "SpanLevel",
    options: &[("info", "Info"), ("debug", "Debug"), ("trace", "Trace")],
};

/// Jobs a queue worker runs at once unless `concurrency` says otherwise.
pub const DEFAULT_CONCURRENCY: u32 = 1;
/// Jobs a queue buffers before `send` waits, unless `capacity` says otherwise.
pub const DEFAULT_CAPACITY: u32 = 1024;
/// How long a durable job's claim lasts without a heartbeat, unless `lease` says otherwise.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);
/// The most missed ticks a new holder of a singleton's lease replays with `missed = "burst"`,
/// unless `catch_up` says otherwise.
pub const DEFAULT_CATCH_UP: u32 = 10;

/// The choices of `escalate`.
pub const ESCALATE: Choice = Choice {
    ty: "Escalation",
    options: &[("stop_worker", "StopWorker"), ("stop_host", "StopHost")],
};

const fn count(min: u32, max: u32) -> Range {
    Range::Count { min, max }
}

const fn row(
    name: &'static str,
    applies: Applies,
    kind: Kind,
    default: DefaultValue,
    example: &'static str,
    doc: &'static str,
) -> Key {
    Key {
        name,
        applies,
        kind,
        default,
        example,
        doc,
    }
}

use Applies as A;
use DefaultValue as D;

/// Every key, in the order the docs list them (and messages name them).
// One row per line reads as the table it is.
#[rustfmt::skip]
pub const KEYS: &[Key] = &[
    row("every", A::Any, Kind::Duration(PERIOD), D::None("no trigger"), "\"10s\"", "runs on a fixed-rate grid of this period"),
    row("fixed_delay", A::Any, Kind::Duration(PERIOD), D::None("no trigger"), "\"10s\"", "starts each run this long after the previous one ended"),
    row("cron", A::Any, Kind::Cron, D::None("no trigger"), "\"0 */5 * * * *\"", "runs at the fire times of a cron expression"),
    row("once", A::Any, Kind::Flag, D::None("no trigger"), "true", "runs once at start-up"),
    row("queue", A::Any, Kind::Name, D::None("no trigger"), "\"emails\"", "consumes the jobs sent to the in-process queue of this name; cannot be overridden"),
    row("time_zone", A::Cron, Kind::TimeZone, D::Text(DEFAULT_TIME_ZONE), "\"Europe/Berlin\"", "the IANA time zone `cron` is read in; only with `cron`"),
    row("after", A::Schedule, Kind::Duration(DELAY), D::Duration(Duration::ZERO), "\"5s\"", "delays the first run"),
    row("jitter", A::Schedule, Kind::Duration(DELAY), D::Duration(Duration::ZERO), "\"2s\"", "delays each tick by a random duration up to this; shorter than `every`"),
    row("missed", A::Schedule, Kind::Choice(&MISSED), D::Choice("skip"), "skip", "what to do with ticks that could not run on time"),
    row("overlap", A::Schedule, Kind::Overlap(count(1, 10_000)), D::Choice("skip"), "queue", "what a trigger does while a run is still going"),
    row("enabled", A::Any, Kind::Bool, D::Bool(true), "false", "whether the worker runs at all"),
    row("retry", A::Any, Kind::Count(count(0, 10_000)), D::Count(0), "3", "retries after the first attempt"),
    row("backoff_kind", A::Any, Kind::Choice(&BACKOFF_KIND), D::Choice("exponential"), "linear", "how the delay grows between retries"),
    row("backoff", A::Any, Kind::Duration(DELAY), D::Duration(DEFAULT_BACKOFF), "\"1s\"", "the delay before the first retry; at most `backoff_max`"),
    row("backoff_max", A::Any, Kind::Duration(PERIOD), D::Duration(DEFAULT_BACKOFF_MAX), "\"1m\"", "the cap of the delay between retries"),
    row("timeout", A::Any, Kind::Duration(PERIOD), D::None("no limit"), "\"30s\"", "fails an attempt that takes longer"),
    row("circuit_failure_ratio", A::Schedule, Kind::Ratio, D::Ratio(DEFAULT_CIRCUIT_FAILURE_RATIO), "0.5", "the share of failed runs in `circuit_window` that opens the circuit"),
    row("circuit_min_throughput", A::Schedule, Kind::Count(count(1, 10_000)), D::Count(DEFAULT_CIRCUIT_MIN_THROUGHPUT), "10", "the fewest runs in `circuit_window` before the circuit may open"),
    row("circuit_window", A::Schedule, Kind::Duration(PERIOD), D::Duration(DEFAULT_CIRCUIT_WINDOW), "\"1m\"", "how far back runs count towards the failure ratio"),
    row("circuit_break", A::Schedule, Kind::Duration(PERIOD), D::Duration(DEFAULT_CIRCUIT_BREAK), "\"30s\"", "how long the circuit stays open before a probe"),
    row("restart_backoff", A::Schedule, Kind::Duration(DELAY), D::Duration(Duration::ZERO), "\"1s\"", "skips triggers this long after a panic, doubling with each"),
    row("max_restarts", A::Schedule, Kind::Count(count(0, 1_000)), D::None("never escalate"), "5", "the panics allowed within `restart_window` before escalating"),
    row("restart_window", A::Schedule, Kind::Duration(PERIOD), D::Duration(DEFAULT_RESTART_WINDOW), "\"1m\"", "the period `max_restarts` is counted in"),
    row("escalate", A::Schedule, Kind::Choice(&ESCALATE), D::Choice("stop_worker"), "stop_host", "what to do beyond `max_restarts`"),
    row("stop_budget", A::Any, Kind::Duration(PERIOD), D::None("the host's shutdown timeout"), "\"10s\"", "how long runs get to end after shutdown is requested"),
    row("stale_after", A::Any, Kind::Duration(PERIOD), D::None("three periods of the trigger, at least 1m; never for `once`; for `queue`, 1m of waiting"), "\"5m\"", "how long without a success makes the worker stale"),
    row("gates_readiness", A::Any, Kind::Bool, D::Bool(false), "true", "whether `/readyz` depends on this worker"),
    row("gates_liveness", A::Any, Kind::Bool, D::Bool(false), "true", "whether `/healthz` depends on this worker"),
    row("concurrency", A::Queue, Kind::Count(count(1, 10_000)), D::Count(DEFAULT_CONCURRENCY), "8", "how many jobs of the queue run at once"),
    row("durable", A::Queue, Kind::Flag, D::None("in process"), "true", "keeps the queue's jobs in the database backend (worker-postgres), so they survive a crash and are shared by replicas; cannot be overridden"),
    row("lease", A::Leased, Kind::Duration(LEASE), D::Duration(DEFAULT_LEASE), "\"30s\"", "how long a claimed job, or a singleton's lease, stays held without a renewal before another replica may take it; renewed every third of it"),
    row("singleton", A::Repeating, Kind::Flag, D::None("every replica runs it"), "true", "runs each tick on one replica only, the holder of the worker's lease in the database backend (worker-postgres); cannot be overridden"),
    row("catch_up", A::Singleton, Kind::Count(count(0, 1_000)), D::Count(DEFAULT_CATCH_UP), "10", "the most ticks nobody ran that a new holder of the lease replays with `missed = \"burst\"`; older ones are skipped as missed"),
    row("capacity", A::InProcess, Kind::Count(count(1, 10_000_000)), D::Count(DEFAULT_CAPACITY), "1024", "how many jobs wait (buffered or in retry backoff) before `send` waits"),
    row("on_panic", A::Queue, Kind::Choice(&ON_PANIC), D::Choice("retry"), "discard", "what a job whose attempt panicked does: retried like a failure, or dead at once"),
    row("span_level", A::Any, Kind::Choice(&SPAN_LEVEL), D::Choice("debug"), "info", "the level of each attempt's `worker.run` span: a subscriber records it when its filter enables that level"),
    row("name", A::Any, Kind::Name, D::None("the function's name"), "\"sync-orders\"", "the worker's name, its `worker` metric label; cannot be overridden"),
];

/// The keys that say what starts a run; a worker has exactly one.
pub const TRIGGERS: [&str; 5] = ["every", "fixed_delay", "cron", "once", "queue"];

/// The triggers that are schedules: a configuration override of one replaces another.
pub const SCHEDULES: [&str; 4] = ["every", "fixed_delay", "cron", "once"];

/// The row of `name`, if it is a key.
#[must_use]
pub fn key(name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|key| key.name == name)
}

impl Key {
    /// Whether the key is a trigger (`every`, `fixed_delay`, `cron`, `once`, `queue`).
    #[must_use]
    pub fn is_trigger(&self) -> bool {
        TRIGGERS.contains(&self.name)
    }

    /// Whether the key is a schedule (a trigger other than `queue`).
    #[must_use]
    pub fn is_schedule(&self) -> bool {
        SCHEDULES.contains(&self.name)
    }

    /// Whether a configuration file or environment variable may set it: every key but `name`,
    /// `queue` (producers find a queue by its name, and its consumer takes its jobs) and
    /// `durable` (the payload's type must be stored, which the code decides) and `singleton`
    /// (whether replicas share a worker is the code's decision, as its writes depend on it).
    #[must_use]
    pub fn is_overridable(&self) -> bool {
        !matches!(self.name, "name" | "queue" | "durable" | "singleton")
    }

    /// The key's range, for the kinds that have one.
    #[must_use]
    pub fn range(&self) -> Option<Range> {
        match self.kind {
            Kind::Duration(range) | Kind::Count(range) | Kind::Overlap(range) => Some(range),
            Kind::Ratio => Some(Range::Ratio),
            _ => None,
        }
    }
}
