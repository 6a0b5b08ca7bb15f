//! [`HostHandle`]: reaching a host from anywhere, before and while it runs: stop it, add and
//! remove workers, read their status, health and metrics. Its admin actions are in `actions.rs`.

use std::any::{TypeId, type_name};
use std::fmt;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::error::{Error, Kind};
use crate::host::roster::Roster;
use crate::observe::board::Board;
use crate::observe::health::{self, Probe};
use crate::observe::status::{HostState, RunRecord, WorkerStatus};
use crate::observe::tracked::Tracked;
use crate::queue::Queue;
use crate::worker::IntoWorker;

/// A handle to a [`Host`](crate::Host), made by [`Host::handle`](crate::Host::handle); cloning is
/// cheap.
///
/// The admin actions ([`run_now`](Self::run_now), [`pause`](Self::pause),
/// [`resume`](Self::resume)) are always available here, to code that holds the handle; over
/// HTTP they need the host's admin token.
#[derive(Clone)]
pub struct HostHandle {
    shutdown: CancellationToken,
    pub(crate) board: Arc<Board>,
    roster: Arc<Roster>,
}

impl HostHandle {
    pub(crate) fn new(shutdown: CancellationToken, board: Arc<Board>, roster: Arc<Roster>) -> Self {
        Self {
            shutdown,
            board,
            roster,
        }
    }

    /// Asks the host to stop gracefully; returns at once.
    pub fn shutdown(&self) {
        self.shutdown.cancel();
        self.board.stop_requested();
    }

    /// Where the host is in its life.
    #[must_use]
    pub fn state(&self) -> HostState {
        self.board.state()
    }

    /// Adds a worker to the running host: a tenant onboarded, a shard more. It is checked as
    /// [`HostBuilder::build`](crate::HostBuilder::build) checks the workers it is given (its
    /// declaration, a unique name, its queue, the state and resources its arguments need), then
    /// started, its schedule counting from now; its series, health checks and dashboard row
    /// appear at once, and `worker_workers_changed_total{change="added"}` counts it.
    ///
    /// Asked before the host runs, it waits for the host to start: await it from a task of its
    /// own, not before calling `run`.
    ///
    /// ```
    /// use worker_core::{Ctx, Host, Worker};
    /// use std::time::Duration;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), worker_core::Error> {
    /// let host = Host::builder().build()?;
    /// let handle = host.handle();
    /// let onboarding = tokio::spawn(async move {
    ///     let tenant = Worker::builder("invoices-acme")
    ///         .every(Duration::from_secs(60))
    ///         .handler(|ctx: Ctx| async move { tracing::info!(run = ctx.run_id(), "invoicing") });
    ///     handle.add_worker(tenant).await?;
    ///     // ... and when the tenant leaves:
    ///     handle.remove_worker("invoices-acme").await?;
    ///     handle.shutdown();
    ///     Ok::<_, worker_core::Error>(())
    /// });
    /// host.run_until(std::future::pending()).await?;
    /// onboarding.await.expect("onboarding ran")?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// Configuration overrides (file and environment) are read when the host is built, for the
    /// workers it is built with: an added worker runs as declared. A `Queue<T>` argument of an
    /// added worker finds the queues of the workers the host was built with.
    ///
    /// # Errors
    ///
    /// What [`build`](crate::HostBuilder::build) refuses: an invalid declaration, a name the
    /// host has already ([`is_duplicate_name`](Error::is_duplicate_name)), a queue another
    /// worker consumes, an argument whose state or factory was never registered, a durable or
    /// singleton worker on a host without a backend. And when the host stopped, or stops,
    /// before the worker could start ([`is_not_running`](Error::is_not_running)).
    pub async fn add_worker(&self, worker: impl IntoWorker) -> Result<(), Error> {
        self.roster.add(worker.into_worker(), &self.board).await
    }

    /// Removes the worker `name` from the running host, as the host's shutdown would stop it:
    /// no new runs start; a scheduled worker's runs see their cancellation token cancelled and
    /// get its `stop_budget` to end; a queue worker drains its queue until its `stop_budget`,
    /// then its runs are cancelled and what is left is handed over (a durable queue's jobs go
    /// back to the database); a singleton gives up its lease; runs still going at the host's
    /// shutdown timeout are aborted. Returns once it stopped; its
    /// series, health checks and dashboard row are gone then, and
    /// `worker_workers_changed_total{change="removed"}` counts it.
    ///
    /// The removal goes on if the returned future is dropped; the host's shutdown waits for it.
    /// Asked before the host runs, it waits for the host to start.
    ///
    /// # Errors
    ///
    /// When the host has no worker `name` ([`is_unknown_worker`](Error::is_unknown_worker)), it
    /// is being removed already, or the host stopped or stops
    /// ([`is_not_running`](Error::is_not_running)); when its runs overran and were aborted
    /// ([`is_shutdown_timeout`](Error::is_shutdown_timeout)), the worker is removed all the
    /// same.
    pub async fn remove_worker(&self, name: &str) -> Result<(), Error> {
        self.roster.remove(name, &self.board).await
    }

    /// The producer's end of the queue `name`, whose jobs carry a `T`.
    ///
    /// ```
    /// use worker_core::{Host, Job, worker};
    ///
    /// #[derive(Debug, Clone)]
    /// struct Email { to: String }
    ///
    /// #[worker(queue = "emails", concurrency = 8)]
    /// async fn send_email(job: Job<Email>) {
    ///     tracing::info!(to = %job.to, "sent");
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let host = Host::builder().worker(send_email).build()?;
    /// let emails = host.handle().queue::<Email>("emails")?;
    /// emails.send(Email { to: "ada@example.com".into() }).await?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// When no worker consumes a queue of that name, or its jobs carry another type
    /// ([`is_unknown_queue`](Error::is_unknown_queue)); the error names both.
    pub fn queue<T: Send + Sync + 'static>(&self, name: &str) -> Result<Queue<T>, Error> {
        let workers = self.board.workers();
        let queues = || workers.iter().filter_map(|w| w.queue.as_ref());
        let Some(channel) = queues().find(|q| &*q.name == name) else {
            return Err(Error::new(Kind::UnknownQueue {
                queue: name.to_owned(),
                known: queues().map(|q| q.name.to_string()).collect(),
            }));
        };
        if channel.durable.is_some() {
            return Err(Error::new(Kind::Queue {
                worker: channel.worker.to_string(),
                message: durable_producer(&channel.name),
            }));
        }
        if channel.payload_type != TypeId::of::<T>() {
            return Err(Error::new(Kind::QueueType {
                queue: name.to_owned(),
                asked: type_name::<T>(),
                carries: channel.payload,
                worker: channel.worker.to_string(),
            }));
        }
        Ok(Queue::new(channel.clone()))
    }

    pub(super) fn tracked(&self, name: &str) -> Result<Arc<Tracked>, Error> {
        self.board
            .worker(name)
            .ok_or_else(|| Error::new(Kind::UnknownWorker(name.to_owned())))
    }

    /// Every worker's status, as `/workers` shows it, in registration order.
    #[must_use]
    pub fn workers(&self) -> Vec<WorkerStatus> {
        self.board.statuses(self.board.now())
    }

    /// The runs `name` keeps (the last 20; every run under [`testing`](crate::testing)), oldest
    /// first.
    ///
    /// # Errors
    ///
    /// When the host has no worker named `name`.
    pub fn runs(&self, name: &str) -> Result<Vec<RunRecord>, Error> {
        Ok(self.tracked(name)?.runs())
    }

    /// Liveness, as `/healthz` answers it.
    #[must_use]
    pub fn liveness(&self) -> Probe {
        health::liveness(&self.board, self.board.now())
    }

    /// Readiness, as `/readyz` answers it.
    #[must_use]
    pub fn readiness(&self) -> Probe {
        health::readiness(&self.board, self.board.now())
    }

    /// The page `/metrics` serves, in the Prometheus text format (version 0.0.4): every
    /// worker's series, after the metrics your code records through the `metrics` facade when
    /// the host has their recorder (see
    /// [`HostBuilder::install_recorder`](crate::HostBuilder::install_recorder)).
    #[must_use]
    pub fn render_metrics(&self) -> String {
        self.board.render_metrics(self.board.now())
    }

    /// The host's HTTP surface as an axum [`Router`](axum::Router): `/metrics`, `/healthz`,
    /// `/readyz`, `/workers`, the dashboard at `/`, and the admin actions. See
    /// [`HostBuilder::serve`](crate::HostBuilder::serve) for what each route answers.
    ///
    /// Its state type is yours, so it nests in an app with a state of its own. To mount it
    /// under a prefix, prefer [`mount`](Self::mount), which also answers the prefix with its
    /// trailing slash.
    #[cfg(feature = "http")]
    #[must_use = "a router does nothing until it is served or mounted"]
    pub fn router<S: Clone + Send + Sync + 'static>(&self) -> axum::Router<S> {
        crate::http::router(self.clone())
    }

    /// Mounts the host's HTTP surface in your axum app under `prefix`: `/ops/metrics`,
    /// `/ops/healthz`, ..., and the dashboard at `/ops` and `/ops/` alike. An empty prefix (or
    /// `/`) merges the routes at the root.
    ///
    /// ```
    /// use axum::{Router, extract::State, routing::get};
    /// # fn app(handle: worker_core::HostHandle) -> Router {
    /// #[derive(Clone)]
    /// struct App { greeting: &'static str }
    ///
    /// let app = Router::new().route("/", get(|State(app): State<App>| async move { app.greeting }));
    /// handle.mount(app, "/ops").with_state(App { greeting: "hello" })
    /// # }
    /// ```
    #[cfg(feature = "http")]
    #[must_use = "a router does nothing until it is served"]
    pub fn mount<S: Clone + Send + Sync + 'static>(
        &self,
        app: axum::Router<S>,
        prefix: &str,
    ) -> axum::Router<S> {
        crate::http::mount(self.clone(), app, prefix)
    }
}

impl fmt::Debug for HostHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostHandle")
            .field("state", &self.board.state())
            .field("shutdown_requested", &self.shutdown.is_cancelled())
            .finish_non_exhaustive()
    }
}

/// Why a durable queue has no in-process producer.
pub(crate) fn durable_producer(queue: &str) -> String {
    format!(
        "the queue `{queue}` is durable: producers enqueue through its backend \
         (`worker_postgres::DurableQueue`, from `Postgres::queue`), not an in-process `Queue<T>`"
    )
}
