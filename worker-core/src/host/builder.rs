//! [`HostBuilder`]: what a host is made of, checked all at once by [`HostBuilder::build`].

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use crate::durable::Backend;
use crate::error::{BoxError, Error};
use crate::host::checks::{check_host, check_requirements, check_workers, prepare};
use crate::host::roster::{Checks, Roster};
#[cfg(feature = "http")]
use crate::host::serving::Serving;
use crate::host::signals::Target;
use crate::host::{Host, Prepared, service_watchdog, signals};
use crate::observe::board::Board;
use crate::worker::registry::Registry;
use crate::worker::scope::Ctx;
use crate::worker::{IntoWorker, Worker};

/// Collects state, resource factories and workers; [`HostBuilder::build`] checks them all.
#[must_use = "a host builder does nothing until it is built and run"]
pub struct HostBuilder {
    registry: Registry,
    workers: Vec<Worker>,
    shutdown_timeout: Duration,
    start_time: Option<SystemTime>,
    /// Where configuration overrides come from.
    #[cfg(feature = "config")]
    pub(crate) config: crate::config::Sources,
    /// What `serve`, `admin_token` and `http_limits` asked for.
    #[cfg(feature = "http")]
    pub(super) serving: Serving,
    /// `None`: on with [`run`](Self::run), off with [`Host::run_until`].
    watchdog: Option<bool>,
    /// The host's shutdown token, made with the builder so a signal received while the host is
    /// built already stops it.
    shutdown: CancellationToken,
    /// Runs each worker keeps for `/workers`; every run under the test harness.
    pub(crate) keep_runs: usize,
    /// Where durable queues keep their jobs.
    backend: Option<Arc<dyn Backend>>,
    /// How often the bridge publishes to the `metrics` facade; `None`: it does not run.
    facade: Option<Duration>,
    /// The recorder of the application's own metrics, served on `/metrics`.
    #[cfg(feature = "prometheus")]
    pub(super) user_metrics: Option<crate::host::recorder::UserMetrics>,
}

impl HostBuilder {
    /// How long [`Host::run`] waits for in-flight runs after asking them to stop, unless
    /// [`HostBuilder::shutdown_timeout`] says otherwise.
    pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

    pub(super) fn new() -> Self {
        Self {
            registry: Registry::new(),
            workers: Vec::new(),
            shutdown_timeout: Self::DEFAULT_SHUTDOWN_TIMEOUT,
            start_time: None,
            #[cfg(feature = "config")]
            config: crate::config::Sources::default(),
            #[cfg(feature = "http")]
            serving: Serving::default(),
            watchdog: None,
            shutdown: CancellationToken::new(),
            keep_runs: crate::observe::tracked::RECENT_RUNS,
            backend: None,
            facade: None,
            #[cfg(feature = "prometheus")]
            user_metrics: None,
        }
    }

    /// Publishes every `worker_*` series to the `metrics` facade as well, so the recorder the
    /// application installed (its own Prometheus exporter, `StatsD`, OpenTelemetry) sees them
    /// with the names, labels and help texts of the host's page: counters and gauges every
    /// second while the host runs and once more after its workers stopped, histograms sample by
    /// sample. Install the recorder before the host runs: the bridge fetches its handles when
    /// the host starts, as `metrics` code does. Give a Prometheus recorder the page's buckets
    /// with [`worker_buckets`](crate::worker_buckets).
    ///
    /// Off by default: it costs CPU on every run and every second (the README's figures). The
    /// bridge waits at least twenty times as long as its last publication took, so it never
    /// takes more than a twentieth of one core.
    pub fn metrics_facade(self) -> Self {
        self.metrics_facade_every(crate::observe::facade::DEFAULT_EVERY)
    }

    /// [`metrics_facade`](Self::metrics_facade), publishing counters and gauges every `every`
    /// (from 1 ms to 365 days) rather than every second.
    pub fn metrics_facade_every(mut self, every: Duration) -> Self {
        self.facade = Some(every);
        self
    }

    /// Keeps the jobs of durable queue workers (`#[worker(queue = "..", durable)]`) in
    /// `backend`: `worker_postgres::Postgres` for PostgreSQL. A host with a durable worker and
    /// no backend refuses to build.
    pub fn backend(mut self, backend: impl Backend) -> Self {
        self.backend = Some(Arc::new(backend));
        self
    }

    /// Registers shared state, extracted by workers as [`State<T>`](crate::State). One value
    /// per type; a second value of the same type replaces the first.
    pub fn state<T: Send + Sync + 'static>(mut self, value: T) -> Self {
        self.registry.insert_state(Arc::new(value));
        self
    }

    /// Registers shared state the application already holds in an `Arc`, extracted as
    /// [`State<T>`](crate::State) without a second `Arc`; `T` may be a trait object, so
    /// workers depend on a trait and tests hand them a fake. One value per type, as with
    /// [`state`](Self::state).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use worker_core::{Host, State, worker};
    ///
    /// trait Mailer: Send + Sync {
    ///     fn send(&self, to: &str);
    /// }
    ///
    /// struct Smtp;
    /// impl Mailer for Smtp {
    ///     fn send(&self, _to: &str) {}
    /// }
    ///
    /// #[worker(every = "1h")]
    /// async fn digest(mailer: State<dyn Mailer>) {
    ///     mailer.send("team@example.com");
    /// }
    ///
    /// let mailer: Arc<dyn Mailer> = Arc::new(Smtp);
    /// let host = Host::builder().state_arc(mailer).worker(digest).build()?;
    /// # Ok::<(), worker_core::Error>(())
    /// ```
    pub fn state_arc<T: ?Sized + Send + Sync + 'static>(mut self, value: Arc<T>) -> Self {
        self.registry.insert_state(value);
        self
    }

    /// Registers an async factory for a scoped resource, extracted by workers as
    /// [`Scoped<T>`](crate::Scoped): built on first use within an attempt, dropped when the
    /// attempt ends, whatever the outcome. A factory error fails the attempt.
    ///
    /// ```
    /// use worker_core::{BoxError, Ctx, Host};
    ///
    /// struct Conn { run_id: u64 }
    ///
    /// let builder = Host::builder().scoped(|ctx: Ctx| async move {
    ///     Ok::<_, BoxError>(Conn { run_id: ctx.run_id() })
    /// });
    /// ```
    pub fn scoped<T, F, Fut, E>(mut self, factory: F) -> Self
    where
        T: Send + Sync + 'static,
        F: Fn(Ctx) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        E: Into<BoxError>,
    {
        self.registry.insert_factory(factory);
        self
    }

    /// Registers an async factory and an async finish step for a resource that one attempt's
    /// body holds alone, extracted as [`ScopedMut<T>`](crate::ScopedMut): built on first use
    /// within an attempt, and handed to `finish` with the attempt's [`Outcome`](crate::Outcome)
    /// when the attempt ends, whatever it was. A per-run transaction is the model case:
    ///
    /// ```
    /// # struct Tx;
    /// # impl Tx { async fn commit(self) -> Result<(), std::io::Error> { Ok(()) }
    /// #           async fn rollback(self) -> Result<(), std::io::Error> { Ok(()) } }
    /// # async fn begin() -> Result<Tx, std::io::Error> { Ok(Tx) }
    /// use worker_core::{Ctx, Host, Outcome};
    ///
    /// let builder = Host::builder().scoped_mut(
    ///     |_ctx: Ctx| begin(),
    ///     |tx: Tx, outcome: Outcome| async move {
    ///         match outcome {
    ///             Outcome::Success => tx.commit().await,
    ///             _ => tx.rollback().await,
    ///         }
    ///     },
    /// );
    /// ```
    ///
    /// The finish step runs in the attempt's `worker.run` span, within the worker's `timeout`
    /// again when it has one. After a successful body, a finish step that fails, panics or
    /// times out makes the attempt a failure, panic or timeout, retried like any other (the
    /// commit is part of the attempt); after any other outcome its failure is logged. Several
    /// resources finish newest first. A body that takes the value with
    /// [`ScopedMut::into_inner`](crate::ScopedMut::into_inner) finishes it itself; a handle moved
    /// into a task that outlives the attempt is not finished (see [`ScopedMut`](crate::ScopedMut)).
    pub fn scoped_mut<T, C, CFut, CE, F, FFut, FE>(mut self, create: C, finish: F) -> Self
    where
        T: Send + 'static,
        C: Fn(Ctx) -> CFut + Send + Sync + 'static,
        CFut: Future<Output = Result<T, CE>> + Send + 'static,
        CE: Into<BoxError>,
        F: Fn(T, crate::Outcome) -> FFut + Send + Sync + 'static,
        FFut: Future<Output = Result<(), FE>> + Send + 'static,
        FE: Into<BoxError>,
    {
        self.registry
            .insert_finishing(crate::worker::finish::Factory::new(create, finish));
        self
    }

    /// Registers a worker: the name of a `#[worker]` function, or a [`Worker`].
    pub fn worker(mut self, worker: impl IntoWorker) -> Self {
        self.workers.push(worker.into_worker());
        self
    }

    /// Registers several workers, for example one per shard made with [`Worker::builder`].
    pub fn workers<W: IntoWorker>(mut self, workers: impl IntoIterator<Item = W>) -> Self {
        self.workers
            .extend(workers.into_iter().map(IntoWorker::into_worker));
        self
    }

    /// How long shutdown waits for in-flight runs before aborting them; default 30 s, from 0 s
    /// to 365 days. With [`Host::run`], the process ends at the latest
    /// [`SHUTDOWN_GRACE`](Host::SHUTDOWN_GRACE) after it (see [`watchdog`](Self::watchdog)).
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// Whether a watchdog ends the process when a shutdown overruns its timeout plus
    /// [`SHUTDOWN_GRACE`](Host::SHUTDOWN_GRACE), whatever the workers' bodies do: a thread of
    /// its own, outside the runtime, logs the workers still running and exits with
    /// [`EXIT_FORCED`](Host::EXIT_FORCED).
    ///
    /// On by default with [`Host::run`] (a service's `main`); off by default with
    /// [`Host::run_until`], which embedders and tests use, whose process may have more to do.
    /// A body that blocks its thread (`std::thread::sleep`, a spin, a blocking call) cannot be
    /// aborted by the runtime, and dropping the runtime waits for it: only the watchdog ends such
    /// a process on time.
    pub fn watchdog(mut self, enabled: bool) -> Self {
        self.watchdog = Some(enabled);
        self
    }

    /// The wall-clock time the host's clock starts at; default: the real time when it starts.
    ///
    /// Schedules run on tokio's clock; cron expressions are read against this wall clock moved
    /// along with it. Meant for tests on paused time (a cron worker across a daylight-saving
    /// transition, say).
    pub fn start_time(mut self, wall: SystemTime) -> Self {
        self.start_time = Some(wall);
        self
    }

    /// Checks every worker and builds the host; binds the metrics listener if one was asked for.
    ///
    /// Applies the configuration overrides first (see [`config_file`](Self::config_file)).
    ///
    /// Fails on an invalid declaration or configuration, two workers with one name, an argument
    /// that needs state or a factory that was never registered, or an address that cannot be
    /// bound; the error names the worker and what is wrong.
    pub fn build(self) -> Result<Host, Error> {
        self.build_unless_stopped(false)
            .map(|host| host.unwrap_or_else(|| unreachable!("only an interruptible build stops")))
    }

    /// Builds the host; `None` when `interruptible` and a stop was asked for meanwhile.
    fn build_unless_stopped(self, interruptible: bool) -> Result<Option<Host>, Error> {
        let Self {
            registry,
            workers,
            shutdown_timeout,
            start_time,
            #[cfg(feature = "config")]
            config,
            #[cfg(feature = "http")]
            serving,
            watchdog,
            shutdown,
            keep_runs,
            backend,
            facade,
            #[cfg(feature = "prometheus")]
            user_metrics,
        } = self;
        let now = start_time.unwrap_or_else(SystemTime::now);
        check_host("shutdown_timeout", shutdown_timeout)?;
        if let Some(every) = facade {
            check_host("metrics_facade_every", every)?;
        }
        crate::run::panics::install();
        #[cfg(feature = "http")]
        serving.limits.check()?;
        #[cfg(feature = "config")]
        let workers = config.apply(workers, now)?;
        let mut registry = registry;
        let Some(checked) = check_workers(
            workers,
            now,
            &mut registry,
            interruptible.then_some(&shutdown),
            backend.as_ref(),
        )?
        else {
            return Ok(None);
        };
        // Once every queue is known: a `Queue<T>` argument needs one.
        let registry = Arc::new(registry);
        let checked_with_registries = check_requirements(checked, &registry)?;
        #[cfg(feature = "http")]
        let crate::host::serving::Bound {
            listener,
            admin_token,
        } = serving.bind()?;
        #[cfg(not(feature = "http"))]
        let admin_token = None;
        #[cfg(feature = "prometheus")]
        let recorder = user_metrics
            .map(crate::host::recorder::UserMetrics::resolve)
            .transpose()?;
        #[cfg(not(feature = "prometheus"))]
        let recorder = None;
        let workers: Vec<Prepared> = checked_with_registries
            .into_iter()
            .map(|(checked, launch, queue, lease, own)| {
                prepare(checked, launch, queue, lease, own, keep_runs, now)
            })
            .collect();
        let board = Arc::new(Board::new(
            workers.iter().map(|w| w.tracked.clone()).collect(),
            recorder,
            admin_token,
        ));
        let roster = Arc::new(Roster::new(Checks {
            registry,
            backend,
            keep_runs,
            facade: facade.is_some(),
        }));
        Ok(Some(Host {
            workers,
            board,
            roster: crate::host::roster::Ended(roster),
            shutdown_timeout,
            #[cfg(feature = "http")]
            listener,
            start_time,
            watchdog,
            shutdown,
            facade,
        }))
    }

    /// Builds the host and runs it until SIGTERM, SIGINT or SIGHUP; see [`Host::run`].
    ///
    /// The signal handlers are in place before the host is built, so a signal received while
    /// thousands of workers are being checked stops the host as soon as it is built (and the
    /// watchdog's deadline counts from the signal).
    pub async fn run(self) -> Result<(), Error> {
        let watchdog = service_watchdog(self.watchdog, self.shutdown_timeout);
        let subscription = signals::subscribe(Target {
            shutdown: self.shutdown.clone(),
            watchdog: watchdog.clone(),
        })?;
        tracing::info!(workers = self.workers.len(), "building the host");
        let Some(host) = self.build_unless_stopped(true)? else {
            watchdog.disarm();
            let signal = subscription.received().unwrap_or("a signal");
            tracing::info!("{signal} arrived while the host was being built: no worker started");
            return Ok(());
        };
        host.run_watched(Some(subscription), watchdog, true).await
    }
}

impl fmt::Debug for HostBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostBuilder")
            .field("registry", &self.registry)
            .field("workers", &self.workers)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .finish_non_exhaustive()
    }
}
