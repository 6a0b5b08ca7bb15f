//! The host: builds and validates every worker, runs them, and stops them gracefully.

pub(crate) mod handle;
pub(crate) mod signals;
pub(crate) mod watchdog;

use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config;
use crate::error::{BoxError, Error, Kind};
use crate::host::handle::HostHandle;
use crate::host::signals::Target;
use crate::host::watchdog::{SHUTDOWN_GRACE, Watchdog};
use crate::http::serve::HttpLimits;
use crate::observe::SkipReason;
use crate::observe::board::Board;
use crate::observe::status::HostState;
use crate::observe::tracked::{Declared, Tracked};
use crate::schedule::clock::Clock;
use crate::supervise::{HostLink, Launch, Report};
use crate::worker::scope::{Ctx, Registry, WorkerEnv};
use crate::worker::spec::Checked;
use crate::worker::{IntoWorker, Spawn, Worker};

/// How long [`Host::run`] waits for in-flight runs after asking them to stop, unless
/// [`HostBuilder::shutdown_timeout`] says otherwise.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

/// Collects state, resource factories and workers; [`HostBuilder::build`] checks them all.
#[must_use = "a host builder does nothing until it is built and run"]
pub struct HostBuilder {
    registry: Registry,
    workers: Vec<Worker>,
    shutdown_timeout: Duration,
    serve: Option<Result<(String, Vec<SocketAddr>), Error>>,
    start_time: Option<SystemTime>,
    config: config::Sources,
    admin_token: Option<String>,
    http: HttpLimits,
    /// `None`: on with [`run`](Self::run), off with [`Host::run_until`].
    watchdog: Option<bool>,
    /// The host's shutdown token, made with the builder so a signal received while the host is
    /// built already stops it.
    shutdown: CancellationToken,
    /// Runs each worker keeps for `/workers`; every run under the test harness.
    pub(crate) keep_runs: usize,
}

impl HostBuilder {
    /// Registers shared state, extracted by workers as [`State<T>`](crate::State). One value
    /// per type; a second value of the same type replaces the first.
    pub fn state<T: Send + Sync + 'static>(mut self, value: T) -> Self {
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
    /// [`SHUTDOWN_GRACE`](crate::SHUTDOWN_GRACE) after it (see [`watchdog`](Self::watchdog)).
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// Whether a watchdog ends the process when a shutdown overruns its timeout plus
    /// [`SHUTDOWN_GRACE`](crate::SHUTDOWN_GRACE), whatever the workers' bodies do: a thread of
    /// its own, outside the runtime, logs the workers still running and exits with
    /// [`EXIT_FORCED`](crate::EXIT_FORCED).
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

    /// Limits of the listener [`serve`](Self::serve) starts; see [`HttpLimits`] for the
    /// defaults.
    pub fn http_limits(mut self, limits: HttpLimits) -> Self {
        self.http = limits;
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

    /// Overrides the workers' declared configuration from the TOML file at `path`, read when
    /// the host is built; without this call, the file named by the `WORKER_CONFIG` environment
    /// variable is read, if it is set.
    ///
    /// The file sets keys per worker (`[workers.sync_orders]` then `every = "30s"`); environment
    /// variables override the file. See the [`config`](crate::config) module for the format,
    /// the keys and the precedence. A file that is missing or invalid, a bad value, an unknown
    /// key or an unknown worker makes [`build`](Self::build) fail, naming the file and the key.
    ///
    /// ```no_run
    /// # use worker_core::Host;
    /// let host = Host::builder().config_file("/etc/my-service/workers.toml").build()?;
    /// # Ok::<(), worker_core::Error>(())
    /// ```
    pub fn config_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.config.file = Some(path.into());
        self
    }

    /// Whether `WORKER__<NAME>__<KEY>` environment variables override the workers'
    /// configuration (`WORKER__SYNC_ORDERS__EVERY=30s`); default true. See the
    /// [`config`](crate::config) module. Turning them off does not affect `WORKER_CONFIG`.
    pub fn env_overrides(mut self, enabled: bool) -> Self {
        self.config.env_off = !enabled;
        self
    }

    /// Reads the configuration variables (`WORKER__<NAME>__<KEY>` and `WORKER_CONFIG`) from
    /// `vars` instead of the process environment; meant for tests, which should not change the
    /// environment of a process whose tests run in parallel.
    ///
    /// ```
    /// # use worker_core::{Host, Worker};
    /// # use std::time::Duration;
    /// let worker = Worker::builder("sync_orders")
    ///     .every(Duration::from_secs(10))
    ///     .handler(|| async {});
    /// let host = Host::builder()
    ///     .worker(worker)
    ///     .config_env([("WORKER__SYNC_ORDERS__EVERY", "30s")])
    ///     .build()?;
    /// # Ok::<(), worker_core::Error>(())
    /// ```
    pub fn config_env<K, V>(mut self, vars: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<String>,
        V: Into<String>,
    {
        self.config.env = Some(
            vars.into_iter()
                .map(|(name, value)| (name.into(), value.into()))
                .collect(),
        );
        self
    }

    /// Serves the host's HTTP surface on `addr`; use a loopback address such as
    /// `"127.0.0.1:9464"` unless something in front of it controls access:
    ///
    /// | route | answers |
    /// |---|---|
    /// | `GET /metrics` | the Prometheus text format |
    /// | `GET /healthz` | liveness: 200, or 503 when the host stopped or a worker's loop is gone; JSON |
    /// | `GET /readyz` | readiness: 200, or 503 while starting or stopping, or while a worker that gates readiness is failed or stale; JSON |
    /// | `GET /workers` | every worker's state, health, last run, last success, next run, recent outcomes and last error; JSON |
    /// | `GET /` | the dashboard: one row per worker, refreshing itself |
    /// | `POST /workers/{name}/run`, `/pause`, `/resume` | admin actions, off unless [`admin_token`](Self::admin_token) is set |
    ///
    /// To mount the same routes in your own axum app instead, use
    /// [`HostHandle::router`](crate::HostHandle::router).
    ///
    /// The listener runs on a thread and a runtime of its own, so probes and scrapes are
    /// answered while the workers' threads are busy or blocked; it limits its connections,
    /// how long a client may take to send a request's headers and how long a connection may
    /// stay idle (see [`http_limits`](Self::http_limits)).
    ///
    /// [`build`](Self::build) then installs a Prometheus recorder as the process's global
    /// `metrics` recorder, so metrics your own code records with `metrics::counter!` and friends
    /// appear on the same page, after the workers' series; describe them once the host is built.
    /// When another global recorder is installed already, the page has the workers' series only.
    pub fn serve(mut self, addr: impl ToSocketAddrs + fmt::Display) -> Self {
        let shown = addr.to_string();
        self.serve = Some(
            addr.to_socket_addrs()
                .map(|addrs| (shown.clone(), addrs.collect()))
                .map_err(|source| {
                    Error::new(Kind::Bind {
                        addr: shown,
                        source,
                    })
                }),
        );
        self
    }

    /// Enables the admin actions over HTTP (`POST /workers/{name}/run`, `/pause`, `/resume`):
    /// each request must carry `Authorization: Bearer <token>`. Without a token they answer 403;
    /// with a missing or wrong one, 401. Every action, accepted or refused, is logged and
    /// counted (`worker_admin_actions_total`, `worker_admin_refused_total`).
    ///
    /// Read the token from your secret store or environment; surrounding whitespace is trimmed,
    /// and an empty token leaves the actions off.
    pub fn admin_token(mut self, token: impl Into<String>) -> Self {
        // A token read from a file often ends with a newline, which no header can carry.
        let token = token.into().trim().to_owned();
        self.admin_token = (!token.is_empty()).then_some(token);
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
            serve,
            start_time,
            config,
            admin_token,
            http,
            watchdog,
            shutdown,
            keep_runs,
        } = self;
        let now = start_time.unwrap_or_else(SystemTime::now);
        check_host("shutdown_timeout", shutdown_timeout)?;
        crate::run::panics::install();
        http.check()?;
        let workers = config.apply(workers, now)?;
        let mut names = HashSet::new();
        let mut checked = Vec::with_capacity(workers.len());
        for (i, worker) in workers.into_iter().enumerate() {
            if interruptible && i % 256 == 0 && shutdown.is_cancelled() {
                return Ok(None);
            }
            let Worker {
                spec,
                requirements,
                launch,
            } = worker;
            let spec = spec.check(now)?;
            if !names.insert(spec.spec.name.clone()) {
                return Err(Error::new(Kind::DuplicateName(spec.spec.name.to_string())));
            }
            for requirement in &requirements {
                (requirement.check)(&registry).map_err(|message| {
                    Error::new(Kind::Missing {
                        worker: spec.spec.name.to_string(),
                        argument: requirement.argument.clone(),
                        message,
                    })
                })?;
            }
            checked.push((spec, launch));
        }
        let (listener, prometheus) = match serve {
            None => (None, None),
            Some(addr) => {
                let (shown, addrs) = addr?;
                let listener = std::net::TcpListener::bind(&*addrs)
                    .and_then(|listener| listener.set_nonblocking(true).map(|()| listener))
                    .map_err(|source| {
                        Error::new(Kind::Bind {
                            addr: shown,
                            source,
                        })
                    })?;
                (Some(listener), install_prometheus())
            }
        };
        let registry = Arc::new(registry);
        let workers: Vec<Prepared> = checked
            .into_iter()
            .map(|(checked, launch)| {
                let tracked = Arc::new(Tracked::new(Declared {
                    name: &checked.spec.name,
                    schedule: checked.trigger.to_string(),
                    gates_readiness: checked.spec.gates_readiness,
                    gates_liveness: checked.spec.gates_liveness,
                    stale_after: checked.stale_after(now),
                    keep: keep_runs,
                }));
                Prepared {
                    env: Arc::new(WorkerEnv {
                        name: checked.spec.name.clone(),
                        registry: registry.clone(),
                        tracked: tracked.clone(),
                    }),
                    tracked,
                    checked,
                    launch,
                }
            })
            .collect();
        let board = Arc::new(Board::new(
            workers.iter().map(|w| w.tracked.clone()).collect(),
            prometheus,
            admin_token,
        ));
        Ok(Some(Host {
            workers,
            board,
            shutdown_timeout,
            listener,
            http,
            start_time,
            watchdog,
            shutdown,
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
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Installs a Prometheus recorder as the global `metrics` recorder, so metrics that user code
/// records are served next to the workers'; a recorder that is already installed is left alone.
fn install_prometheus() -> Option<PrometheusHandle> {
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    if ::metrics::set_global_recorder(recorder).is_ok() {
        Some(handle)
    } else {
        tracing::info!(
            "a global metrics recorder is already installed; /metrics serves the workers' \
             series only"
        );
        None
    }
}

struct Prepared {
    checked: Checked,
    launch: Spawn,
    env: Arc<WorkerEnv>,
    tracked: Arc<Tracked>,
}

/// Runs workers until shutdown. Made by [`Host::builder`].
pub struct Host {
    workers: Vec<Prepared>,
    board: Arc<Board>,
    shutdown_timeout: Duration,
    listener: Option<std::net::TcpListener>,
    http: HttpLimits,
    start_time: Option<SystemTime>,
    watchdog: Option<bool>,
    shutdown: CancellationToken,
}

/// The watchdog of a service's `run`: on unless the builder turned it off.
fn service_watchdog(setting: Option<bool>, shutdown_timeout: Duration) -> Watchdog {
    Watchdog::new(
        setting.unwrap_or(true),
        shutdown_timeout.saturating_add(SHUTDOWN_GRACE),
    )
}

/// Checks a host setting against its range.
fn check_host(key: &'static str, value: Duration) -> Result<(), Error> {
    let range = worker_keys::range(key).unwrap_or_else(|| unreachable!("`{key}` has a range"));
    if range.contains_duration(value) {
        Ok(())
    } else {
        Err(Error::new(Kind::Host {
            key,
            value: format!("\"{}\"", humantime::format_duration(value)),
            expected: range.expected().to_string(),
        }))
    }
}

impl Host {
    /// Starts declaring a host.
    pub fn builder() -> HostBuilder {
        HostBuilder {
            registry: Registry::new(),
            workers: Vec::new(),
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            serve: None,
            start_time: None,
            config: config::Sources::default(),
            admin_token: None,
            http: HttpLimits::default(),
            watchdog: None,
            shutdown: CancellationToken::new(),
            keep_runs: crate::observe::status::RECENT_RUNS,
        }
    }

    /// A handle to this host that works from anywhere, before and while it runs: stop it, read
    /// its metrics. Cloning is cheap.
    #[must_use]
    pub fn handle(&self) -> HostHandle {
        HostHandle::new(self.shutdown.clone(), self.board.clone())
    }

    /// The address `/metrics` is served on, once bound (useful with port 0).
    #[must_use]
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.listener.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The names of the registered workers, in registration order.
    pub fn worker_names(&self) -> impl Iterator<Item = &str> {
        self.workers.iter().map(|p| &*p.env.name)
    }

    /// Runs every worker until SIGTERM, SIGINT (Ctrl+C) or SIGHUP, or until a [`HostHandle`] is
    /// used, then stops gracefully; see [`Host::run_until`].
    ///
    /// Signals are received on a thread of their own, so they are acted on even when every
    /// runtime thread is blocked by a worker's body:
    ///
    /// - the first SIGTERM, SIGINT or SIGHUP stops the host gracefully;
    /// - a second SIGTERM or SIGINT while it stops exits the process at once with code
    ///   128 + the signal's number (143, 130), logging the workers still running;
    /// - the watchdog (see [`HostBuilder::watchdog`]) ends the process, with
    ///   [`EXIT_FORCED`](crate::EXIT_FORCED), if it is still alive
    ///   [`SHUTDOWN_GRACE`](crate::SHUTDOWN_GRACE) after the shutdown timeout.
    ///
    /// Use [`HostBuilder::run`] to have the handlers in place while the host is built.
    pub async fn run(self) -> Result<(), Error> {
        let watchdog = service_watchdog(self.watchdog, self.shutdown_timeout);
        let subscription = signals::subscribe(Target {
            shutdown: self.shutdown.clone(),
            watchdog: watchdog.clone(),
        })?;
        self.run_watched(Some(subscription), watchdog, true).await
    }

    /// Runs every worker until `signal` completes or a [`HostHandle`] is used, then stops:
    /// no new runs start, every in-flight run's cancellation token is cancelled, and the host
    /// waits up to the shutdown timeout for them to end.
    ///
    /// Returns `Ok(())` after a clean stop. When runs were still going at the deadline, they are
    /// aborted, the workers are logged, and an error that answers
    /// [`is_shutdown_timeout`](Error::is_shutdown_timeout) is returned, so `main` exits non-zero.
    /// The watchdog is off unless [`HostBuilder::watchdog`] turned it on.
    pub async fn run_until(self, signal: impl Future<Output = ()> + Send) -> Result<(), Error> {
        let watchdog = Watchdog::new(
            self.watchdog.unwrap_or(false),
            self.shutdown_timeout.saturating_add(SHUTDOWN_GRACE),
        );
        let stop = self.shutdown.clone();
        let host = self.run_watched(None, watchdog, false);
        // Never completes: after asking the host to stop, it leaves the host to finish.
        let stopper = async move {
            signal.await;
            stop.cancel();
            std::future::pending::<()>().await;
        };
        tokio::select! {
            result = host => result,
            () = stopper => unreachable!("the stopper never completes"),
        }
    }

    async fn run_watched(
        self,
        subscription: Option<signals::Subscription>,
        watchdog: Watchdog,
        service: bool,
    ) -> Result<(), Error> {
        let Self {
            workers,
            board,
            shutdown_timeout,
            listener,
            http,
            start_time,
            watchdog: _,
            shutdown,
        } = self;
        watchdog.watch(board.clone());
        // Armed by whatever asks for the stop: a signal, the handle, an escalation.
        board.set_watchdog(watchdog.clone());
        let handle = HostHandle::new(shutdown.clone(), board.clone());
        let server = match listener {
            Some(listener) => Some(crate::http::serve::start(listener, &handle, http)?),
            None => None,
        };
        let started = Instant::now();
        let clock = Clock::starting_at(start_time.unwrap_or_else(SystemTime::now));
        board.start_clock(clock);
        let link = HostLink {
            shutdown: shutdown.clone(),
            report: Arc::default(),
            watchdog: Some(watchdog.clone()),
        };
        let tracker = TaskTracker::new();
        let running = start_workers(workers, &tracker, &link, started, clock, &shutdown);
        tracker.close();
        board.set_state(HostState::Running);
        tracing::info!(workers = running.len(), "host started");

        shutdown.cancelled().await;
        if let Some(signal) = subscription
            .as_ref()
            .and_then(signals::Subscription::received)
        {
            tracing::info!("shutdown requested by {signal}");
        } else {
            tracing::info!("shutdown requested");
        }
        // Already armed by whoever asked, unless the stop came from `run_until`'s future.
        watchdog.arm();
        tracing::info!(
            timeout = %humantime::format_duration(shutdown_timeout),
            "stopping: no new runs start, in-flight runs are cancelled"
        );
        board.set_state(HostState::Stopping);
        for worker in board.workers() {
            worker.control.stop();
        }
        let stopped = tokio::time::timeout(shutdown_timeout, tracker.wait()).await;
        let report = std::mem::take(
            &mut *link
                .report
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        let (result, stuck) = outcome(report, stopped.is_ok(), running, shutdown_timeout).await;
        board.set_state(HostState::Stopped);
        if let Some(server) = server {
            server.stop().await;
        }
        if stuck {
            // A body holds a runtime thread: dropping the runtime will wait for it, so the
            // watchdog stays armed (and the signals directed here) until the process ends.
            tracing::error!(
                "a worker's body does not yield: the runtime cannot drop it and will wait for \
                 it when it shuts down"
            );
            std::mem::forget(subscription);
        } else if service {
            // A service's `main` drops its runtime next, which also waits for blocking tasks
            // the bodies spawned: the deadline holds to the end of the process.
        } else {
            watchdog.disarm();
        }
        result
    }
}

/// Spawns every worker's loop on `tracker`; once a stop was asked for, the rest are accounted
/// for as never started. Returns the loops started.
fn start_workers(
    workers: Vec<Prepared>,
    tracker: &TaskTracker,
    link: &HostLink,
    started: Instant,
    clock: Clock,
    shutdown: &CancellationToken,
) -> Vec<(Arc<str>, JoinHandle<()>)> {
    let mut running: Vec<(Arc<str>, JoinHandle<()>)> = Vec::with_capacity(workers.len());
    let mut not_started = 0_usize;
    for (i, prepared) in workers.into_iter().enumerate() {
        // A stop asked for while thousands of workers start stops the start.
        if (not_started > 0 || i % 256 == 0) && shutdown.is_cancelled() {
            never_started(&prepared);
            not_started += 1;
            continue;
        }
        let Prepared {
            checked,
            launch: spawn,
            env,
            tracked,
        } = prepared;
        log_worker(&checked);
        let name = env.name.clone();
        let launch = Launch {
            env,
            checked,
            tracked,
            started,
            clock,
            host: link.clone(),
        };
        running.push((name, spawn(launch, tracker)));
    }
    if not_started > 0 {
        tracing::info!(
            workers = not_started,
            "shutdown was requested during start-up: these workers were never started"
        );
    }
    running
}

/// Accounts for a worker the host stopped before starting it: it shows `stopped`, and its first
/// trigger, when that was due at start-up, is a `shutting_down` skip.
fn never_started(prepared: &Prepared) {
    let spec = &prepared.checked.spec;
    let due_at_start = spec.enabled
        && spec.after.is_zero()
        && !matches!(
            prepared.checked.trigger,
            crate::worker::spec::Trigger::Cron(_)
        );
    let metrics = &prepared.tracked.metrics;
    let unanswered = prepared.tracked.replies.close();
    metrics.skipped(
        SkipReason::ShuttingDown,
        u64::from(due_at_start) + unanswered,
    );
    metrics.set_state(crate::observe::WorkerState::Stopped);
}

/// What `run_until` returns once the workers were asked to stop: an escalation, a clean stop,
/// or a timeout, after aborting the workers still running when `drained` is false.
async fn outcome(
    report: Report,
    drained: bool,
    running: Vec<(Arc<str>, JoinHandle<()>)>,
    shutdown_timeout: Duration,
) -> (Result<(), Error>, bool) {
    if !report.escalated.is_empty() && drained {
        (Err(Error::new(Kind::Escalated(report.escalated))), false)
    } else if drained && report.forced.is_empty() {
        tracing::info!("all workers stopped");
        (Ok(()), false)
    } else if drained {
        let error = Error::new(Kind::ShutdownTimeout {
            timeout: shutdown_timeout,
            overran: report.forced,
        });
        (Err(error), false)
    } else {
        let mut overran = report.forced;
        let mut aborted = Vec::new();
        for (name, handle) in running {
            if !handle.is_finished() {
                handle.abort();
                overran.push(name.to_string());
                aborted.push(handle);
            }
        }
        // An aborted task is dropped (its scopes torn down, its run counted) the next time
        // the runtime polls it; wait for that briefly so it happens before `run_until`
        // returns, but never hang on a body that blocks its thread.
        let stuck = tokio::time::timeout(ABORT_WAIT, futures_util::future::join_all(aborted))
            .await
            .is_err();
        tracing::error!(
            workers = %overran.join(", "),
            "shutdown timed out; aborted the workers still running"
        );
        let error = if report.escalated.is_empty() {
            Error::new(Kind::ShutdownTimeout {
                timeout: shutdown_timeout,
                overran,
            })
        } else {
            Error::new(Kind::Escalated(report.escalated))
        };
        (Err(error), stuck)
    }
}

/// How long the host waits for the runs it aborted at the deadline to be dropped: well within
/// [`SHUTDOWN_GRACE`].
const ABORT_WAIT: Duration = Duration::from_millis(500);

impl fmt::Debug for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Host")
            .field("workers", &self.worker_names().collect::<Vec<_>>())
            .field("shutdown_timeout", &self.shutdown_timeout)
            .field("metrics_addr", &self.metrics_addr())
            .finish_non_exhaustive()
    }
}

/// Logs the effective configuration of a worker, once, at start-up.
fn log_worker(Checked { spec, trigger }: &Checked) {
    let show = |d: Duration| humantime::format_duration(d).to_string();
    let circuit = spec.circuit.map_or_else(
        || "off".to_owned(),
        |c| {
            format!(
                "ratio {} over {} (min {} runs), break {}",
                c.failure_ratio,
                show(c.window),
                c.min_throughput,
                show(c.break_for)
            )
        },
    );
    let restarts = spec.max_restarts.map_or_else(
        || "unlimited".to_owned(),
        |n| format!("{n} in {}", show(spec.restart_window)),
    );
    tracing::info!(
        worker = %spec.name,
        schedule = %trigger,
        enabled = spec.enabled,
        after = %show(spec.after),
        jitter = %show(spec.jitter),
        missed = spec.missed.as_str(),
        overlap = %spec.overlap,
        retry = spec.retry,
        backoff = %format_args!(
            "{} {}..{}",
            spec.backoff_kind.as_str(),
            show(spec.backoff),
            show(spec.backoff_max)
        ),
        timeout = %spec.timeout.map_or_else(|| "none".to_owned(), show),
        circuit = %circuit,
        max_restarts = %restarts,
        escalate = spec.escalate.as_str(),
        stop_budget = %spec.stop_budget.map_or_else(|| "host".to_owned(), show),
        "worker configured"
    );
}
