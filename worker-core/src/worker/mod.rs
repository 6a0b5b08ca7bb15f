//! Declaring a worker in code: [`Worker::builder`]. `#[worker]` expands to the same builder.

pub(crate) mod extract;
pub(crate) mod finish;
pub(crate) mod handler;
mod places;
mod queue;
pub(crate) mod registry;
pub(crate) mod scope;
pub(crate) mod spec;

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::task::TaskTracker;

use crate::error::BoxError;
use crate::queue::consume;
use crate::run::circuit::CircuitBreaker;
use crate::run::retry::BackoffKind;
use crate::run::span::SpanLevel;
use crate::schedule::{Missed, Overlap};
use crate::supervise::{self, Escalation, Launch};
use crate::worker::extract::FromScope;
use crate::worker::handler::{Body, Handler, HandlerBody, RawBody, Requirement};
use crate::worker::registry::StateMap;
use crate::worker::scope::Scope;
use crate::worker::spec::{DeclaredSchedule, Spec};

pub(crate) use self::queue::QueueBinding;

/// Spawns a worker's loop on the host's task tracker. The loop is spawned as its concrete type,
/// in the task's own allocation: a boxed loop would cost every wake-up one more pointer to
/// follow, to memory of its own.
pub(crate) type Spawn = Box<dyn FnOnce(Launch, &TaskTracker) -> JoinHandle<()> + Send>;

/// A worker ready to be registered with [`HostBuilder::worker`](crate::HostBuilder::worker).
///
/// Made by [`Worker::builder`] or by `#[worker]`.
pub struct Worker {
    pub(crate) spec: Spec,
    pub(crate) requirements: Vec<Requirement>,
    pub(crate) launch: Spawn,
    /// A queue worker's payload type and hooks.
    pub(crate) queue: QueueBinding,
    /// The worker's own state, given to its builder.
    pub(crate) states: StateMap,
}

impl Worker {
    /// Starts declaring a worker named `name` in code, for workers known only at run time (one
    /// per tenant, N shards, a period read from a database).
    ///
    /// ```
    /// use std::time::Duration;
    /// use worker_core::{BoxError, Ctx, Host, Worker};
    ///
    /// let shards = (0..4).map(|shard| {
    ///     Worker::builder(format!("reindex-{shard}"))
    ///         .every(Duration::from_secs(30))
    ///         .retry(2)
    ///         .handler(move |ctx: Ctx| async move {
    ///             tracing::info!(shard, run = ctx.run_id(), "reindexing");
    ///             Ok::<(), BoxError>(())
    ///         })
    /// });
    /// let host = Host::builder().workers(shards).build().unwrap();
    /// ```
    pub fn builder(name: impl Into<String>) -> WorkerBuilder {
        WorkerBuilder {
            spec: Spec::new(name.into()),
            requirements: Vec::new(),
            queue: QueueBinding::default(),
            states: StateMap::new(),
        }
    }

    /// The worker's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.spec.name
    }
}

impl fmt::Debug for Worker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Worker")
            .field("spec", &self.spec)
            .finish_non_exhaustive()
    }
}

/// Declares a worker in code; finish with [`WorkerBuilder::handler`].
///
/// Set one trigger: [`every`](Self::every), [`fixed_delay`](Self::fixed_delay),
/// [`cron`](Self::cron), [`once`](Self::once) (the last schedule set wins) or
/// [`queue`](Self::queue) (a queue and a schedule together are refused when the host is built).
///
/// Every method matches a key of `#[worker(...)]`.
#[derive(Debug, Clone)]
#[must_use = "a worker builder does nothing until `.handler(..)` makes a `Worker` and it is registered"]
pub struct WorkerBuilder {
    spec: Spec,
    requirements: Vec<Requirement>,
    queue: QueueBinding,
    states: StateMap,
}

impl WorkerBuilder {
    /// Gives this worker its own value of type `T`, extracted as [`State<T>`](crate::State) by
    /// this worker only; it comes before a value of the same type registered on the host. One
    /// value per type: a second replaces the first.
    ///
    /// Data that differs between workers declared in code (a tenant, a shard) goes here rather
    /// than into the worker's name.
    ///
    /// ```
    /// use std::time::Duration;
    /// use worker_core::{Host, State, Worker};
    ///
    /// struct Tenant { id: u32, region: &'static str }
    ///
    /// let tenants = [(1, "eu"), (2, "us")].map(|(id, region)| {
    ///     Worker::builder(format!("sync-tenant-{id}"))
    ///         .every(Duration::from_secs(60))
    ///         .state(Tenant { id, region })
    ///         .handler(|tenant: State<Tenant>| async move {
    ///             tracing::info!(tenant = tenant.id, region = tenant.region, "syncing");
    ///         })
    /// });
    /// let host = Host::builder().workers(tenants).build()?;
    /// # Ok::<(), worker_core::Error>(())
    /// ```
    pub fn state<T: Send + Sync + 'static>(self, value: T) -> Self {
        self.state_arc(Arc::new(value))
    }

    /// Gives this worker an `Arc` it shares with the application, or a trait object, as its own
    /// [`State<T>`](crate::State); see [`state`](Self::state).
    pub fn state_arc<T: ?Sized + Send + Sync + 'static>(mut self, value: Arc<T>) -> Self {
        crate::worker::registry::insert_state(&mut self.states, value);
        self
    }

    /// Runs every `period`, on a fixed grid: a slow run does not shift later runs (`every`).
    pub fn every(mut self, period: Duration) -> Self {
        self.spec.trigger = Some(DeclaredSchedule::Every(period));
        self
    }

    /// Starts each run `delay` after the previous one ended (`fixed_delay`).
    pub fn fixed_delay(mut self, delay: Duration) -> Self {
        self.spec.trigger = Some(DeclaredSchedule::FixedDelay(delay));
        self
    }

    #[cfg(feature = "cron")]
    /// Runs at the fire times of a cron expression (`cron`): 5 fields, or 6 with seconds first,
    /// read in [`time_zone`](Self::time_zone). Checked when the host is built.
    pub fn cron(mut self, expression: impl Into<String>) -> Self {
        self.spec.trigger = Some(DeclaredSchedule::Cron(expression.into()));
        self
    }

    #[cfg(feature = "cron")]
    /// The IANA time zone the [`cron`](Self::cron) expression is read in (`time_zone`);
    /// default `UTC`. Only `cron` reads it: with another trigger, the host refuses it.
    pub fn time_zone(mut self, zone: impl Into<String>) -> Self {
        self.spec.time_zone = Some(zone.into());
        self
    }

    /// Runs once, at start-up (after [`after`](Self::after)), and never again (`once`).
    pub fn once(mut self) -> Self {
        self.spec.trigger = Some(DeclaredSchedule::Once);
        self
    }

    /// Runs each tick on one replica only (`singleton`): the replica that holds the worker's
    /// lease in the host's [`Backend`](crate::durable::Backend) (`worker_postgres::Postgres`).
    /// Only for `every` and `cron`, whose ticks are instants every replica agrees on: an
    /// `every` grid starts at the Unix epoch, by the database's clock. Each tick is claimed in
    /// the database before it runs, so no instant runs twice; a replica that takes the lease
    /// over applies [`missed`](Self::missed) to the instants nobody ran (replaying at most
    /// [`catch_up`](Self::catch_up) with `burst`). The other replicas show the state
    /// `follower`. A host with a singleton and no backend refuses to build.
    pub fn singleton(mut self) -> Self {
        self.spec.singleton = true;
        self
    }

    /// The most ticks nobody ran that a new holder of a singleton's lease replays with
    /// `missed = "burst"` (`catch_up`), from 0 to 1000; default 10. Older ones are skipped, and
    /// counted as `missed`.
    pub fn catch_up(mut self, ticks: u32) -> Self {
        self.spec.catch_up = Some(ticks);
        self
    }

    /// Waits `delay` after the host starts before the first run; default: run at once (`after`).
    pub fn after(mut self, delay: Duration) -> Self {
        self.spec.after = delay;
        self
    }

    /// Delays each tick by a random duration up to `jitter`, so replicas and neighbours do not
    /// fire in lockstep (`jitter`); the grid itself does not move. Default: none.
    pub fn jitter(mut self, jitter: Duration) -> Self {
        self.spec.jitter = jitter;
        self
    }

    /// What to do with ticks the host woke up too late for (`missed`); default [`Missed::Skip`].
    pub fn missed(mut self, policy: Missed) -> Self {
        self.spec.missed = policy;
        self
    }

    /// What a tick does while a run is still going (`overlap`); default [`Overlap::Skip`].
    pub fn overlap(mut self, policy: Overlap) -> Self {
        self.spec.overlap = policy;
        self
    }

    /// Whether the worker runs at all (`enabled`); default true. Meant for configuration: a
    /// disabled worker is registered, shows `stopped`, and never runs.
    pub fn enabled(mut self, enabled: bool) -> Self {
        self.spec.enabled = enabled;
        self
    }

    /// Retries a failed or timed-out attempt up to `retries` times, so a run makes at most
    /// `retries + 1` attempts (`retry`); default 0. Panics and [`Permanent`](crate::Permanent)
    /// errors are never retried.
    pub fn retry(mut self, retries: u32) -> Self {
        self.spec.retry = retries;
        self
    }

    /// How the delay grows between retries (`backoff_kind`); default
    /// [`BackoffKind::Exponential`].
    pub fn backoff_kind(mut self, kind: BackoffKind) -> Self {
        self.spec.backoff_kind = kind;
        self
    }

    /// The delay before the first retry (`backoff`); default 1 s. Later delays grow by
    /// [`backoff_kind`](Self::backoff_kind) up to [`backoff_max`](Self::backoff_max), and each
    /// is drawn at random from the upper half of its nominal value.
    pub fn backoff(mut self, base: Duration) -> Self {
        self.spec.backoff = base;
        self
    }

    /// The longest delay between two attempts (`backoff_max`); default 1 min.
    pub fn backoff_max(mut self, max: Duration) -> Self {
        self.spec.backoff_max = max;
        self
    }

    /// Fails an attempt that takes longer than `limit` (`timeout`); a timed-out attempt is
    /// retried like a failed one. Default: no limit.
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.spec.timeout = Some(limit);
        self
    }

    /// Opens the circuit when at least this share of the runs in the window failed
    /// (`circuit_failure_ratio`, in `(0, 1]`). Setting any `circuit_*` key turns the breaker on,
    /// with [`CircuitBreaker::default`] for the others.
    pub fn circuit_failure_ratio(mut self, ratio: f64) -> Self {
        self.spec.circuit_mut().failure_ratio = ratio;
        self
    }

    /// The fewest runs in the window before the circuit may open (`circuit_min_throughput`).
    pub fn circuit_min_throughput(mut self, runs: u32) -> Self {
        self.spec.circuit_mut().min_throughput = runs;
        self
    }

    /// How far back runs count towards the failure ratio (`circuit_window`).
    pub fn circuit_window(mut self, window: Duration) -> Self {
        self.spec.circuit_mut().window = window;
        self
    }

    /// How long the circuit stays open before a single probe run (`circuit_break`).
    pub fn circuit_break(mut self, duration: Duration) -> Self {
        self.spec.circuit_mut().break_for = duration;
        self
    }

    /// Sets every circuit-breaker setting at once.
    pub fn circuit_breaker(mut self, breaker: CircuitBreaker) -> Self {
        self.spec.circuit = Some(breaker);
        self
    }

    /// After a run panics, skips triggers for this long, doubling with each panic within the
    /// restart window (`restart_backoff`); default 0: the schedule goes on at once.
    pub fn restart_backoff(mut self, delay: Duration) -> Self {
        self.spec.restart_backoff = delay;
        self
    }

    /// Escalates when the worker panics more than `max` times within
    /// [`restart_window`](Self::restart_window) (`max_restarts`); default: never.
    pub fn max_restarts(mut self, max: u32) -> Self {
        self.spec.max_restarts = Some(max);
        self
    }

    /// The period `max_restarts` is counted in (`restart_window`); default 1 min.
    pub fn restart_window(mut self, window: Duration) -> Self {
        self.spec.restart_window = window;
        self
    }

    /// What to do beyond `max_restarts` (`escalate`); default [`Escalation::StopWorker`].
    pub fn escalate(mut self, escalation: Escalation) -> Self {
        self.spec.escalate = escalation;
        self
    }

    /// How long this worker's runs get to end after shutdown is requested, within the host's
    /// shutdown timeout (`stop_budget`); runs still going then are aborted. Default: the host's
    /// timeout.
    pub fn stop_budget(mut self, budget: Duration) -> Self {
        self.spec.stop_budget = Some(budget);
        self
    }

    /// How long without a successful run makes the worker `stale`, and unhealthy
    /// (`stale_after`). Default: three periods of its trigger (for cron, of the longest gap
    /// between its next 64 fires; for `fixed_delay`, of the delay: set it when runs are long),
    /// at least a minute; a `once` worker never goes stale. Staleness counts from the last
    /// success, the first due time, or the last resume, whichever is latest.
    pub fn stale_after(mut self, after: Duration) -> Self {
        self.spec.stale_after = Some(after);
        self
    }

    /// Whether the host's readiness (`/readyz`) depends on this worker (`gates_readiness`):
    /// while it is failed or stale, the host reports not ready. Default false.
    pub fn gates_readiness(mut self, gates: bool) -> Self {
        self.spec.gates_readiness = gates;
        self
    }

    /// Whether the host's liveness (`/healthz`) depends on this worker (`gates_liveness`):
    /// while it is stale with a run in progress (a hung run, not an idle worker), `/healthz`
    /// answers 503, so an orchestrator restarts the process. Default false.
    pub fn gates_liveness(mut self, gates: bool) -> Self {
        self.spec.gates_liveness = gates;
        self
    }

    /// The level of each attempt's `worker.run` span (`span_level`); default
    /// [`SpanLevel::Debug`], so a subscriber at INFO records no span per run. See
    /// [`SpanLevel`].
    pub fn span_level(mut self, level: SpanLevel) -> Self {
        self.spec.span_level = level;
        self
    }

    /// Finishes the worker with its body: an async fn or closure whose arguments are
    /// extractors ([`FromScope`]) and whose output is `()` or `Result<(), E>`.
    pub fn handler<H, Args>(mut self, handler: H) -> Worker
    where
        H: Handler<Args>,
        Args: 'static,
    {
        self.requirements = H::requirements();
        self.finish(HandlerBody(handler, PhantomData))
    }

    /// Records that the body's argument `argument` is extracted as a `T`, so the host checks
    /// at build time that what `T` needs was registered.
    pub(crate) fn require<T: FromScope>(mut self, argument: String) -> Self {
        self.requirements.push(Requirement::of::<T>(argument));
        self
    }

    /// Finishes the worker with a body that extracts its own arguments from the run's scope.
    pub(crate) fn body<F, Fut>(self, body: F) -> Worker
    where
        F: Fn(Scope) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), BoxError>> + Send,
    {
        self.finish(RawBody(body))
    }

    fn finish<B: Body>(self, body: B) -> Worker {
        Worker {
            spec: self.spec,
            requirements: self.requirements,
            queue: self.queue,
            states: self.states,
            launch: Box::new(move |launch, tracker| match launch.queue.clone() {
                Some(channel) if channel.durable.is_some() => {
                    tracker.spawn(crate::durable::consume::run(body, launch, channel))
                }
                Some(channel) => tracker.spawn(consume::run(body, launch, channel)),
                None => tracker.spawn(supervise::run(body, launch)),
            }),
        }
    }
}

/// Anything [`HostBuilder::worker`](crate::HostBuilder::worker) accepts: a [`Worker`], or the
/// name of a function annotated with `#[worker]`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a worker",
    label = "not a worker",
    note = "pass the name of an `async fn` annotated with `#[worker(...)]`, or a `Worker` made with `Worker::builder(..)`"
)]
pub trait IntoWorker {
    /// Makes the worker.
    fn into_worker(self) -> Worker;
}

impl IntoWorker for Worker {
    fn into_worker(self) -> Worker {
        self
    }
}
