//! [`HostHandle`]: reaching a host from anywhere, before and while it runs: stop it, act on its
//! workers, read their status, health and metrics.

use crate::durable::{JobActed, JobAction};
use std::any::{TypeId, type_name};
use std::fmt;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::error::{Error, Kind};
use crate::host::roster::Roster;
use crate::observe::board::Board;
use crate::observe::health::{self, Probe};
use crate::observe::metrics::Action;
use crate::observe::status::{HostState, RunRecord, WorkerStatus};
use crate::observe::tracked::Tracked;
use crate::observe::{SkipReason, WorkerState};
use crate::queue::Queue;
use crate::supervise::Requested;
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

/// Who asked for an admin action, for its log line.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Origin {
    Handle,
    #[cfg_attr(
        not(feature = "http"),
        allow(dead_code, reason = "only the routes act over HTTP")
    )]
    Http,
}

impl Origin {
    fn as_str(self) -> &'static str {
        match self {
            Self::Handle => "handle",
            Self::Http => "http",
        }
    }
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

    /// Starts a run of `name` now, whatever its schedule, even while it is paused, waiting out
    /// a restart backoff, or its circuit is open. The request is a trigger like any other for
    /// the worker's `overlap` policy: with a free run slot it starts at once; with `queue` and
    /// nothing kept yet it is kept for when the current run ends; otherwise it is skipped and
    /// counted (`overlap`). Asked before the host starts, it is answered when the worker starts.
    /// The run's spans say `trigger = "manual"`.
    ///
    /// Await the returned [`RunRequest`] for the answer ([`Requested`]), or drop it.
    ///
    /// # Errors
    ///
    /// When the host has no worker named `name`
    /// ([`is_unknown_worker`](Error::is_unknown_worker)), or it cannot run: it failed or
    /// stopped, or the host is stopping ([`is_not_running`](Error::is_not_running)).
    pub fn run_now(&self, name: &str) -> Result<RunRequest, Error> {
        self.act(name, Action::Run, Origin::Handle)
            .map(|request| request.unwrap_or_else(|| unreachable!("a run request answers")))
    }

    /// Pauses `name`: its triggers are skipped (counted as `paused`) until it is resumed; a run
    /// in progress goes on. Pausing a paused worker changes nothing.
    ///
    /// # Errors
    ///
    /// When the host has no worker named `name`.
    pub fn pause(&self, name: &str) -> Result<(), Error> {
        self.act(name, Action::Pause, Origin::Handle).map(drop)
    }

    /// Resumes a paused worker: its next trigger runs again.
    ///
    /// # Errors
    ///
    /// When the host has no worker named `name`.
    pub fn resume(&self, name: &str) -> Result<(), Error> {
        self.act(name, Action::Resume, Origin::Handle).map(drop)
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

    /// Sends the dead job `job` of the queue worker `worker` to its queue again, as a new job
    /// (with its attempts from zero); returns the new job's id. It leaves the dead list.
    ///
    /// # Errors
    ///
    /// When the host has no worker `worker`, or it is no queue worker, or the job is not (or
    /// no longer) among its dead jobs, or the queue is full or closed.
    pub fn requeue(&self, worker: &str, job: u64) -> Result<u64, Error> {
        self.requeue_from(worker, job, Origin::Handle)
    }

    pub(crate) fn requeue_from(
        &self,
        worker: &str,
        job: u64,
        origin: Origin,
    ) -> Result<u64, Error> {
        let refused = |why: String| {
            Error::new(Kind::Requeue {
                worker: worker.to_owned(),
                job,
                why,
            })
        };
        let tracked = self.tracked(worker)?;
        let Some(channel) = &tracked.queue else {
            return Err(refused("it is no queue worker".to_owned()));
        };
        if channel.durable.is_some() {
            return Err(refused(
                "its queue is durable: its dead jobs are kept (discarded) in the backend, \
                 which retries them"
                    .to_owned(),
            ));
        }
        let Some((record, payload)) = channel.dead.take(job) else {
            return Err(refused("no such job among its dead jobs".to_owned()));
        };
        match channel.requeue(payload.clone()) {
            Ok(id) => {
                tracked.metrics.admin(Action::Requeue);
                let log = {
                    let worker = worker.to_owned();
                    move || {
                        tracing::info!(
                            worker,
                            action = "requeue",
                            dead_job = job,
                            job_id = id,
                            origin = origin.as_str(),
                            "admin action"
                        );
                    }
                };
                match origin {
                    Origin::Handle => log(),
                    Origin::Http => crate::observe::message::log_aside(log),
                }
                Ok(id)
            }
            Err(reason) => {
                channel.dead.restore(record, payload);
                Err(refused(format!("the queue is {}", reason.as_str())))
            }
        }
    }

    /// An admin action on the job `job` of the durable queue that `worker` consumes: retry a
    /// discarded or cancelled job (as a new job), discard a waiting one, or cancel one. Also
    /// `POST /workers/{worker}/jobs/{job}/{retry|discard|cancel}`.
    ///
    /// # Errors
    ///
    /// When the host has no worker `worker`, or it consumes no durable queue, or the queue has
    /// no job `job`, or the job's state does not allow the action, or the backend failed.
    pub async fn act_on_job(
        &self,
        worker: &str,
        job: u64,
        action: JobAction,
    ) -> Result<JobActed, Error> {
        self.act_on_job_from(worker, job, action, Origin::Handle)
            .await
    }

    pub(crate) async fn act_on_job_from(
        &self,
        worker: &str,
        job: u64,
        action: JobAction,
        origin: Origin,
    ) -> Result<JobActed, Error> {
        let refused = |why: String| {
            Error::new(Kind::JobAction {
                worker: worker.to_owned(),
                job,
                action: action.as_str(),
                why,
            })
        };
        let tracked = self.tracked(worker)?;
        let Some((channel, durable)) = tracked
            .queue
            .as_ref()
            .and_then(|channel| Some((channel, channel.durable.as_ref()?)))
        else {
            return Err(refused("it consumes no durable queue".to_owned()));
        };
        let acted = durable
            .backend
            .act_on_job(&channel.name, job, action)
            .await
            .map_err(|err| refused(crate::error::Chain(&*err).to_string()))?;
        match &acted {
            JobActed::NotFound => {
                return Err(refused(format!(
                    "the queue `{}` has no such job",
                    channel.name
                )));
            }
            JobActed::Refused(state) => {
                return Err(refused(format!("it is {state}")));
            }
            _ => {}
        }
        tracked.metrics.admin(Action::of(action));
        // `/workers` shows the change at once.
        crate::durable::refresh(&*durable.backend, channel, worker).await;
        let log = {
            let (worker, result) = (worker.to_owned(), format!("{acted:?}"));
            move || {
                tracing::info!(
                    worker,
                    action = action.as_str(),
                    job,
                    result,
                    origin = origin.as_str(),
                    "admin action"
                );
            }
        };
        match origin {
            Origin::Handle => log(),
            Origin::Http => crate::observe::message::log_aside(log),
        }
        Ok(acted)
    }

    /// Carries out an admin action; a run request comes back to be awaited.
    pub(crate) fn act(
        &self,
        name: &str,
        action: Action,
        origin: Origin,
    ) -> Result<Option<RunRequest>, Error> {
        let worker = self.tracked(name)?;
        let mut request = None;
        match action {
            Action::Run if worker.queue.is_some() => {
                return Err(Error::new(Kind::NotRunning {
                    worker: name.to_owned(),
                    why: "it runs the jobs of its queue: send it a job instead".to_owned(),
                }));
            }
            Action::Requeue | Action::Retry | Action::Discard | Action::Cancel => {
                unreachable!("job actions go through `requeue` and `act_on_job`")
            }
            Action::Run => {
                let host = self.board.state();
                let state = worker.metrics.state();
                let why = match (host, state) {
                    (HostState::Stopping | HostState::Stopped, _) => {
                        Some(format!("the host is {}", host.as_str()))
                    }
                    (_, WorkerState::Failed | WorkerState::Stopped) => {
                        Some(format!("it is {state}"))
                    }
                    _ => None,
                };
                if let Some(why) = why {
                    return Err(Error::new(Kind::NotRunning {
                        worker: name.to_owned(),
                        why,
                    }));
                }
                request = Some(RunRequest {
                    answer: worker.control.request_run(&worker.replies),
                });
            }
            Action::Pause => {
                worker.control.set_paused(true);
            }
            Action::Resume => {
                if worker.control.set_paused(false) {
                    // Staleness counts from the resume, not from before the pause.
                    worker.resumed(self.board.now());
                }
            }
        }
        worker.metrics.admin(action);
        let log = {
            let name = name.to_owned();
            move || {
                tracing::info!(
                    worker = name,
                    action = action.as_str(),
                    origin = origin.as_str(),
                    "admin action"
                );
            }
        };
        match origin {
            Origin::Handle => log(),
            Origin::Http => crate::observe::message::log_aside(log),
        }
        Ok(request)
    }

    fn tracked(&self, name: &str) -> Result<Arc<Tracked>, Error> {
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

/// The answer to a run-now request, made by [`HostHandle::run_now`]: await it to learn whether
/// a run started (and its id), was queued or was skipped; drop it not to wait.
///
/// Awaiting it is cancellation safe. A request the worker never answered (the host stopped
/// first) comes to [`Requested::Skipped`] with [`SkipReason::ShuttingDown`].
#[derive(Debug)]
pub struct RunRequest {
    answer: tokio::sync::oneshot::Receiver<Requested>,
}

impl std::future::Future for RunRequest {
    type Output = Requested;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Requested> {
        std::pin::Pin::new(&mut self.answer)
            .poll(cx)
            .map(|answer| answer.unwrap_or(Requested::Skipped(SkipReason::ShuttingDown)))
    }
}

/// Why a durable queue has no in-process producer.
pub(crate) fn durable_producer(queue: &str) -> String {
    format!(
        "the queue `{queue}` is durable: producers enqueue through its backend \
         (`worker_postgres::DurableQueue`, from `Postgres::queue`), not an in-process `Queue<T>`"
    )
}
