//! The host: builds and validates every worker, runs them, and stops them gracefully.

pub(crate) mod actions;
pub(crate) mod builder;
mod checks;
pub(crate) mod handle;
mod log;
#[cfg(feature = "prometheus")]
pub(crate) mod recorder;
pub(crate) mod roster;
#[cfg(feature = "http")]
pub(crate) mod serving;
pub(crate) mod signals;
pub(crate) mod watchdog;

pub use self::builder::HostBuilder;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::error::{Error, Kind};
use crate::host::handle::HostHandle;
use crate::host::signals::Target;
use crate::host::watchdog::{SHUTDOWN_GRACE, Watchdog};
use crate::observe::SkipReason;
use crate::observe::board::Board;
use crate::observe::status::HostState;
use crate::observe::tracked::Tracked;
use crate::queue::channel::Channel;
use crate::schedule::clock::Clock;
use crate::supervise::{HostLink, Launch, Report};
use crate::worker::Spawn;
use crate::worker::scope::WorkerEnv;
use crate::worker::spec::Checked;

use self::log::log_worker;

pub(super) struct Prepared {
    pub(super) checked: Checked,
    pub(super) launch: Spawn,
    pub(super) env: Arc<WorkerEnv>,
    pub(super) tracked: Arc<Tracked>,
    pub(super) queue: Option<Arc<Channel>>,
}

/// Runs workers until shutdown. Made by [`Host::builder`].
pub struct Host {
    pub(super) workers: Vec<Prepared>,
    pub(super) board: Arc<Board>,
    /// Where workers are added and removed once the host runs.
    pub(super) roster: roster::Ended,
    pub(super) shutdown_timeout: Duration,
    #[cfg(feature = "http")]
    pub(super) listener: Option<serving::Listener>,
    pub(super) start_time: Option<SystemTime>,
    pub(super) watchdog: Option<bool>,
    pub(super) shutdown: CancellationToken,
    /// How often the bridge publishes to the `metrics` facade; `None`: never.
    pub(super) facade: Option<Duration>,
}

/// The watchdog of a service's `run`: on unless the builder turned it off.
pub(super) fn service_watchdog(setting: Option<bool>, shutdown_timeout: Duration) -> Watchdog {
    Watchdog::new(
        setting.unwrap_or(true),
        shutdown_timeout.saturating_add(SHUTDOWN_GRACE),
    )
}

impl Host {
    /// How long past its shutdown timeout a host may take to end the process once it was asked
    /// to stop (time for the runs aborted at the deadline to be dropped and for `main` to
    /// return): 2 s. Past it, the watchdog exits the process with [`Host::EXIT_FORCED`].
    pub const SHUTDOWN_GRACE: Duration = watchdog::SHUTDOWN_GRACE;

    /// The exit code of a process ended by the watchdog, 1: shutdown overran its timeout plus
    /// [`Host::SHUTDOWN_GRACE`]. The same code `main` returns with when shutdown timed out.
    pub const EXIT_FORCED: i32 = watchdog::EXIT_FORCED;

    /// Starts declaring a host.
    pub fn builder() -> HostBuilder {
        HostBuilder::new()
    }

    /// A handle to this host that works from anywhere, before and while it runs: stop it, read
    /// its metrics. Cloning is cheap.
    #[must_use]
    pub fn handle(&self) -> HostHandle {
        HostHandle::new(
            self.shutdown.clone(),
            self.board.clone(),
            self.roster.0.clone(),
        )
    }

    #[cfg(feature = "http")]
    /// The address `/metrics` is served on, once bound (useful with port 0).
    #[must_use]
    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.listener
            .as_ref()
            .and_then(|(listener, _)| listener.local_addr().ok())
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
    ///   [`EXIT_FORCED`](Host::EXIT_FORCED), if it is still alive
    ///   [`SHUTDOWN_GRACE`](Host::SHUTDOWN_GRACE) after the shutdown timeout.
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
            roster,
            shutdown_timeout,
            #[cfg(feature = "http")]
            listener,
            start_time,
            watchdog: _,
            shutdown,
            facade,
        } = self;
        watchdog.watch(board.clone());
        // Armed by whatever asks for the stop: a signal, the handle, an escalation.
        board.set_watchdog(watchdog.clone());
        #[cfg(feature = "http")]
        let server = match listener {
            Some((listener, limits)) => {
                let handle = HostHandle::new(shutdown.clone(), board.clone(), roster.0.clone());
                Some(crate::http::serve::start(listener, &handle, limits)?)
            }
            None => None,
        };
        let started = Instant::now();
        let clock = Clock::starting_at(start_time.unwrap_or_else(SystemTime::now));
        board.start_clock(clock);
        let link = HostLink {
            shutdown: shutdown.clone(),
            report: Arc::default(),
            watchdog: Some(watchdog.clone()),
            shutdown_timeout,
        };
        // Before the workers, so their first samples reach the facade's histograms.
        let facade = facade.map(|every| crate::observe::facade::start(board.clone(), every));
        let tracker = TaskTracker::new();
        let running = start_workers(workers, &tracker, &link, started, clock, &shutdown);
        tracker.close();
        let count = running.len();
        roster.0.run(roster::Live {
            tracker: tracker.clone(),
            link: link.clone(),
            clock,
            loops: running,
        });
        board.set_state(HostState::Running);
        tracing::info!(workers = count, "host started");

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
            timeout = %worker_keys::show(shutdown_timeout),
            "stopping: no new runs start, in-flight runs are cancelled"
        );
        board.set_state(HostState::Stopping);
        // No worker comes or goes from now on; those being removed stop on their own.
        let running = roster.0.end();
        for worker in board.workers().iter() {
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
        // The final counts, after the last run ended.
        if let Some(facade) = facade {
            facade.finish(&board);
        }
        board.set_state(HostState::Stopped);
        #[cfg(feature = "http")]
        if let Some(server) = server {
            server.stop().await;
        }
        if subscription.is_some() {
            signals::flush_log();
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
) -> Vec<roster::Loop> {
    let mut running: Vec<roster::Loop> = Vec::with_capacity(workers.len());
    let mut not_started = 0_usize;
    for (i, prepared) in workers.into_iter().enumerate() {
        // A stop asked for while thousands of workers start stops the start.
        if (not_started > 0 || i % 256 == 0) && shutdown.is_cancelled() {
            never_started(&prepared);
            not_started += 1;
            continue;
        }
        running.push(start(prepared, tracker, link, started, clock));
    }
    if not_started > 0 {
        tracing::info!(
            workers = not_started,
            "shutdown was requested during start-up: these workers were never started"
        );
    }
    running
}

/// Spawns a worker's loop on `tracker`, its schedule counting from `started`.
pub(super) fn start(
    prepared: Prepared,
    tracker: &TaskTracker,
    link: &HostLink,
    started: Instant,
    clock: Clock,
) -> roster::Loop {
    let Prepared {
        checked,
        launch: spawn,
        env,
        tracked,
        queue,
    } = prepared;
    log_worker(&checked);
    let name = env.name.clone();
    let launch = Launch {
        env,
        queue,
        checked,
        tracked,
        started,
        clock,
        host: link.clone(),
    };
    (name, spawn(launch, tracker))
}

/// Accounts for a worker the host stopped before starting it: it shows `stopped`, and its first
/// trigger, when that was due at start-up, is a `shutting_down` skip.
fn never_started(prepared: &Prepared) {
    let spec = &prepared.checked.spec;
    #[cfg(feature = "cron")]
    let cron = matches!(
        prepared.checked.trigger,
        crate::worker::spec::Schedule::Cron(_)
    );
    #[cfg(not(feature = "cron"))]
    let cron = false;
    let due_at_start = spec.enabled && spec.after.is_zero() && !cron && prepared.queue.is_none();
    let metrics = &prepared.tracked.metrics;
    if let Some(channel) = &prepared.queue {
        // Sends are refused from now on; what was sent before start-up is left over.
        crate::queue::consume::never_runs(channel);
    }
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
    running: Vec<roster::Loop>,
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
pub(super) const ABORT_WAIT: Duration = Duration::from_millis(500);

impl fmt::Debug for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("Host");
        debug
            .field("workers", &self.worker_names().collect::<Vec<_>>())
            .field("shutdown_timeout", &self.shutdown_timeout);
        #[cfg(feature = "http")]
        debug.field("metrics_addr", &self.metrics_addr());
        debug.finish_non_exhaustive()
    }
}
