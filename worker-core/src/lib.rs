//! Declare background workers with one attribute.
//!
//! ```no_run
//! use worker_core::{Ctx, Host, State, worker};
//!
//! struct Db;
//! impl Db {
//!     async fn pending(&self) -> std::io::Result<Vec<u64>> { Ok(vec![]) }
//! }
//!
//! /// Ships pending orders every ten seconds; retried up to three times.
//! #[worker(every = "10s", retry = 3, timeout = "30s")]
//! async fn sync_orders(db: State<Db>, ctx: Ctx) -> std::io::Result<()> {
//!     for order in db.pending().await? {
//!         if ctx.is_cancelled() {
//!             break; // shutdown was requested
//!         }
//!         tracing::info!(order, "shipped");
//!     }
//!     Ok(())
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), worker_core::Error> {
//!     Host::builder()
//!         .state(Db)
//!         .worker(sync_orders)
//!         .serve("127.0.0.1:9464")
//!         .run()
//!         .await
//! }
//! ```
//!
//! The attribute checks its keys at compile time and expands to a [`Worker::builder`] call; the
//! [`Host`] runs each worker in a supervisor loop: a drift-free schedule, retries with backoff, a
//! per-attempt timeout, panics caught and counted, cancellation passed to the body, a graceful
//! shutdown with a deadline, a `worker.run` span per attempt, and Prometheus metrics for every
//! worker from the first second.
//!
//! # Queue consumers
//!
//! `#[worker(queue = "emails", concurrency = 8)]` on an `async fn` taking a [`Job<T>`] makes a
//! consumer of the in-process queue `emails`: producers send with a [`Queue<T>`] (from
//! [`HostHandle::queue`], or as a worker argument), which waits while the queue is full and hands
//! the value back in a [`SendError`] when it refuses it. Each job's attempts run under the same
//! machinery as a scheduled run; a failed attempt waits out its backoff back in the queue,
//! freeing its slot; a job whose retries ran out is dead ([`DeadJob`], [`DeadJobRecord`]); at
//! shutdown, every job that never got a slot goes to `on_leftovers` or is counted as dropped.
//!
//! # Health, HTTP and admin actions
//!
//! [`HostBuilder::serve`] serves `/metrics`, `/healthz` (liveness), `/readyz` (readiness),
//! `/workers` (JSON), a dashboard at `/`, and the admin actions (run now, pause, resume), which
//! need [`HostBuilder::admin_token`]; [`HostHandle::router`] gives the same routes as an axum
//! router to mount in your own app, and [`HostHandle`] has the same actions as methods. A worker's
//! [`Health`] follows its [`WorkerState`]: see [`WorkerStatus`].
//!
//! # Signals, the shutdown deadline and panics
//!
//! [`Host::run`] acts on SIGTERM, SIGINT and SIGHUP from a thread of its own, exits at once on a
//! second SIGTERM or SIGINT, and its watchdog ([`HostBuilder::watchdog`]) ends a process whose
//! shutdown overran its timeout by [`Host::SHUTDOWN_GRACE`], with [`Host::EXIT_FORCED`], whatever the
//! bodies do. A panic caught in a run is logged once, through `tracing`, not by the panic hook;
//! a worker's identical failures are logged at most once every 10 seconds.
//!
//! # Testing
//!
//! [`testing`] drives workers on tokio's paused clock: [`testing::TestHost`] and
//! [`testing::run_once`].
//!
//! # Metrics
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `worker_runs_total` | counter | `worker`, `result` (`success`, `failure`, `panic`, `timeout`, `cancelled`) |
//! | `worker_run_duration_seconds` | histogram, 5 ms to 1 h | `worker`, `result` |
//! | `worker_run_retries_total` | counter: attempts after the first, counted when they start | `worker` |
//! | `worker_runs_skipped_total` | counter | `worker`, `reason` (`overlap`, `missed`, `circuit_open`, `restarting`, `paused`, `shutting_down`) |
//! | `worker_schedule_lag_seconds` | histogram | `worker` |
//! | `worker_run_active` | gauge: runs in progress | `worker` |
//! | `worker_last_success_timestamp_seconds` | gauge | `worker` |
//! | `worker_next_run_timestamp_seconds` | gauge | `worker` |
//! | `worker_restarts_total` | counter | `worker`, `reason` (`panic`, `crash`) |
//! | `worker_state` | gauge, one series per state | `worker`, `state` (`starting`, `idle`, `running`, `backoff`, `paused`, `stale`, `failed`, `stopped`) |
//! | `worker_circuit_state` | gauge, one series per state | `worker`, `state` (`closed`, `open`, `half_open`) |
//! | `worker_info` | gauge, always 1 | `worker`, `schedule` |
//! | `worker_admin_actions_total` | counter | `worker`, `action` (`run`, `pause`, `resume`, `requeue`) |
//! | `worker_admin_refused_total` | counter | `reason` (`disabled`, `unauthorized`) |
//! | `worker_queue_depth`, `worker_queue_in_flight` | gauge (queue workers) | `worker` |
//! | `worker_queue_wait_seconds` | histogram, 1 ms to 1 h (queue workers) | `worker` |
//! | `worker_queue_rejected_total` | counter (queue workers) | `worker`, `reason` (`full`, `closed`) |
//! | `worker_jobs_enqueued_total`, `worker_jobs_dead_total`, `worker_jobs_left_over_total` | counter (queue workers) | `worker` |
//! | `worker_jobs_dropped_total` | counter (queue workers) | `worker`, `reason` (`shutdown`) |
//!
//! Every series exists, at zero, as soon as the host is built. The host keeps them itself, in one
//! block of atomics per worker, and serves them with [`HostBuilder::serve`] or renders them with
//! [`HostHandle::render_metrics`]; metrics your own code records through the `metrics` facade are
//! served on the same page with [`HostBuilder::install_recorder`] or
//! [`HostBuilder::prometheus`]. The host installs no recorder unless asked.
//!
//! Every series also reaches the recorder the application installed through the `metrics`
//! facade (its own Prometheus exporter, `StatsD`, OpenTelemetry), with the same names and labels:
//! counters and gauges published every second, histograms sample by sample (see
//! [`HostBuilder::metrics_facade_every`] and [`worker_buckets`]).
#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub
)]

#[cfg(feature = "config")]
pub mod config;
pub mod durable;
mod error;
mod host;
#[cfg(feature = "http")]
mod http;
mod observe;
mod queue;
mod run;
mod schedule;
mod supervise;
pub mod testing;
mod worker;

pub use crate::error::{BoxError, Error};
pub use crate::host::actions::RunRequest;
pub use crate::host::handle::HostHandle;
#[cfg(feature = "prometheus")]
pub use crate::host::recorder::worker_buckets;
pub use crate::host::{Host, HostBuilder};
#[cfg(feature = "http")]
pub use crate::http::limits::HttpLimits;
pub use crate::observe::health::{Health, Probe, ProbeStatus, ProbeWorker};
pub use crate::observe::metrics::{RUN_DURATION_BUCKETS, SCHEDULE_LAG_BUCKETS};
pub use crate::observe::outcome::Outcome;
pub use crate::observe::skip::SkipReason;
pub use crate::observe::state::WorkerState;
pub use crate::observe::status::{
    HostState, LastError, LeaseStatus, QueueStatus, Recent, RunRecord, Trigger, WorkerStatus,
};
pub use crate::queue::{
    DeadJob, DeadJobRecord, Job, OnPanic, QUEUE_WAIT_BUCKETS, Queue, SendError,
};
pub use crate::run::circuit::{CircuitBreaker, CircuitState};
pub use crate::run::retry::{BackoffKind, Permanent};
pub use crate::run::span::SpanLevel;
#[cfg(feature = "cron")]
pub use crate::schedule::cron;
pub use crate::schedule::{Missed, Overlap};
pub use crate::supervise::Escalation;
pub use crate::supervise::Requested;
pub use crate::worker::extract::{FromScope, IntoRunResult, Scoped, State};
pub use crate::worker::finish::ScopedMut;
pub use crate::worker::handler::{Handler, Requirement};
pub use crate::worker::registry::Registry;
pub use crate::worker::scope::{Ctx, Scope};
pub use crate::worker::{IntoWorker, Worker, WorkerBuilder};

#[cfg(feature = "macros")]
pub use worker_macros::worker;

/// What code generated by `#[worker]` refers to. Not public API.
#[doc(hidden)]
pub mod __private {
    pub use core::time::Duration;
    pub use std::boxed::Box;
    pub use std::format;
    pub use std::future::Future;
    pub use std::ops::Deref;
    pub use std::pin::Pin;
    pub use std::result::Result;
    #[cfg(feature = "macros")]
    pub use worker_macros::__items as items;

    use crate::{BoxError, FromScope, Scope, Worker, WorkerBuilder};

    /// The worker's body has an argument `argument` extracted as a `T`.
    pub fn require<T: FromScope>(builder: WorkerBuilder, argument: String) -> WorkerBuilder {
        builder.require::<T>(argument)
    }

    /// A queue worker's payload, from its `Job<T>` argument, with its `Debug` text for dead
    /// jobs when it has one.
    pub fn queue<T: Clone + Send + Sync + 'static>(
        builder: WorkerBuilder,
        name: &str,
        describe: Option<fn(&T) -> String>,
    ) -> WorkerBuilder {
        builder.queue::<T>(name).describe_by_default(describe)
    }

    /// A durable queue worker's payload, from its `Job<T>` argument: stored as JSON.
    pub fn durable_queue<T: DurablePayload>(
        builder: WorkerBuilder,
        name: &str,
        describe: Option<fn(&T) -> String>,
    ) -> WorkerBuilder {
        builder
            .durable_queue::<T>(name)
            .describe_by_default(describe)
    }

    /// What a durable queue's payload needs: to be stored as JSON and read back.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` cannot be the payload of a durable queue",
        label = "a durable job is stored as JSON: its payload needs `serde::Serialize` and `serde::Deserialize`",
        note = "derive them, `#[derive(serde::Serialize, serde::Deserialize)]`, or drop `durable` to keep the queue in process"
    )]
    pub trait DurablePayload:
        serde::Serialize + serde::de::DeserializeOwned + Clone + Send + Sync + 'static
    {
    }

    impl<T> DurablePayload for T where
        T: serde::Serialize + serde::de::DeserializeOwned + Clone + Send + Sync + 'static
    {
    }

    /// Picks `Debug` for the payload when it has one (autoref specialization: the method of
    /// [`ViaDebug`] is found first, on `&Payload<T>`, when `T: Debug`).
    #[derive(Debug)]
    pub struct Payload<T>(pub core::marker::PhantomData<T>);

    /// See [`Payload`].
    pub trait ViaDebug<T> {
        /// `Debug`.
        fn describer(&self) -> Option<fn(&T) -> String>;
    }

    impl<T: core::fmt::Debug> ViaDebug<T> for Payload<T> {
        fn describer(&self) -> Option<fn(&T) -> String> {
            Some(|value| format!("{value:?}"))
        }
    }

    /// See [`Payload`].
    pub trait ViaNothing<T> {
        /// Nothing.
        fn describer(&self) -> Option<fn(&T) -> String>;
    }

    impl<T> ViaNothing<T> for &Payload<T> {
        fn describer(&self) -> Option<fn(&T) -> String> {
            None
        }
    }

    /// The worker, with the body `#[worker]` generated.
    pub fn finish<F, Fut>(builder: WorkerBuilder, body: F) -> Worker
    where
        F: Fn(Scope) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), BoxError>> + Send,
    {
        builder.body(body)
    }
}
