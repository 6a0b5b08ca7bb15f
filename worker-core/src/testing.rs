//! Driving workers deterministically in tests, on tokio's paused clock.
//!
//! [`TestHost`] runs a host whose [`advance`](TestHost::advance) moves the clock and waits until
//! every run it triggered has finished, and keeps every run's record for assertions;
//! [`run_once`] runs one worker once, now, with the state and resources you register.
//!
//! Use them in a test whose runtime starts paused (`#[tokio::test(start_paused = true)]`): time
//! then only moves when every task waits, so a run of a schedule and its retries are exact.
//!
//! ```
//! use std::time::Duration;
//! use worker_core::testing::TestHost;
//! use worker_core::{BoxError, Ctx, Host, Outcome, State, worker};
//!
//! struct Limit {
//!     orders: u32,
//! }
//!
//! /// Fails its first attempt of every run; retried once.
//! #[worker(every = "10s", retry = 1, backoff = "1s")]
//! async fn sync_orders(ctx: Ctx, limit: State<Limit>) -> Result<(), BoxError> {
//!     if ctx.attempt() == 1 {
//!         return Err(format!("upstream refused {} orders", limit.orders).into());
//!     }
//!     Ok(())
//! }
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! // In a test: #[tokio::test(start_paused = true)]
//! let host = TestHost::start(Host::builder().state(Limit { orders: 5 }).worker(sync_orders)).unwrap();
//! host.advance(Duration::from_secs(25)).await;
//!
//! let runs = host.runs("sync_orders");
//! assert_eq!(runs.len(), 3); // at 0, 10 and 20 s
//! assert!(runs.iter().all(|run| run.result == Outcome::Success && run.attempts == 2));
//! assert_eq!(runs[1].scheduled_at, runs[0].scheduled_at + Duration::from_secs(10));
//! host.stop().await.unwrap();
//! # }
//! ```

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::error::Error;
use crate::host::HostBuilder;
use crate::host::handle::HostHandle;
use crate::observe::SkipReason;
use crate::observe::status::{RunRecord, Trigger};
use crate::observe::tracked::Tracked;
use crate::supervise::Requested;
use crate::worker::IntoWorker;

/// How long [`TestHost::advance`] lets runs go on past its target before it gives up.
const SETTLE_LIMIT: Duration = Duration::from_hours(24);
/// The first clock step while waiting for runs to finish; each step with nothing changed is
/// twice the last, up to [`MAX_STEP`], so a long run is waited for in few steps (the runs'
/// own timers still fire at their instants: only when `advance` returns moves).
const STEP: Duration = Duration::from_millis(1);
/// The longest clock step while waiting for runs to finish, or a hundredth of the wait so far
/// if that is longer: how much later than the last run's end `advance` may return.
const MAX_STEP: Duration = Duration::from_millis(100);

/// Lets every task woken at this instant run: a few turns of the runtime.
async fn yield_all() {
    for _ in 0..8 {
        tokio::task::yield_now().await;
    }
}

/// A host running in a task on the paused clock; see the [module](self) docs.
#[derive(Debug)]
pub struct TestHost {
    handle: HostHandle,
    task: JoinHandle<Result<(), Error>>,
}

impl TestHost {
    /// Builds the host (every run of every worker is kept) and starts it in a task on the current
    /// tokio runtime. Runs due at start have not happened yet: call [`advance`](Self::advance),
    /// even by zero. Stop it with [`stop`](Self::stop); dropping it leaves the host running
    /// until the runtime ends.
    ///
    /// A test host sees only what the test says: it ignores the process's environment, the
    /// `WORKER__*` overrides and the file named by `WORKER_CONFIG`, so a variable in the shell
    /// that runs the tests changes nothing. To test overrides, give them to the builder with
    /// [`config_env`](HostBuilder::config_env) or [`config_file`](HostBuilder::config_file).
    ///
    /// # Errors
    ///
    /// What [`HostBuilder::build`] fails with.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn start(builder: HostBuilder) -> Result<Self, Error> {
        let mut builder = builder;
        builder.keep_runs = usize::MAX;
        #[cfg(feature = "config")]
        if builder.config.env.is_none() {
            builder.config.env = Some(Vec::new());
        }
        let host = builder.build()?;
        let handle = host.handle();
        let task = tokio::spawn(host.run_until(std::future::pending()));
        Ok(Self { handle, task })
    }

    /// Moves the clock forward by `by`, then waits until every run started by then has
    /// finished, retries and backoff included, and every job sent to a queue worker is done;
    /// runs that later triggers start are not waited for. The clock moves on while runs are
    /// in progress, so it may end later than `by` from now: after the last of them ended, by
    /// up to 100 ms or a hundredth of the time waited for them (the runs themselves see every
    /// timer fire at its instant).
    ///
    /// # Panics
    ///
    /// When runs are still going a simulated day after the target: a body that never ends.
    pub async fn advance(&self, by: Duration) {
        let target = Instant::now() + by;
        tokio::time::sleep_until(target).await;
        self.settle(target + SETTLE_LIMIT).await;
    }

    /// Waits, moving the clock in steps, until the runs started by now have finished, and the
    /// queue workers have no job in flight, buffered, or waiting out a retry backoff (unless
    /// paused). Runs that later triggers start (a tick kept by `overlap = queue` for the end
    /// of a run, the next ticks of a worker that is never idle) are not waited for.
    async fn settle(&self, limit: Instant) {
        // Let the workers whose tick is due at this instant start their runs.
        for _ in 0..8 {
            yield_all().await;
            if !self.any_due() {
                break;
            }
        }
        let goals: Vec<(Arc<Tracked>, u64)> = self
            .handle
            .board
            .workers()
            .iter()
            .filter(|w| w.queue.is_none())
            .map(|w| {
                let started = w.metrics.finished_runs() + u64::from(w.metrics.active());
                (Arc::clone(w), started)
            })
            .collect();
        let from = Instant::now();
        let mut step = STEP;
        let mut last = Vec::new();
        loop {
            let busy = self.busy(&goals);
            if busy.is_empty() {
                return;
            }
            assert!(
                Instant::now() < limit,
                "runs still going a simulated day later: {}",
                busy.join(", ")
            );
            step = if busy == last {
                (step * 2).min(MAX_STEP.max(from.elapsed() / 100))
            } else {
                STEP
            };
            last = busy;
            tokio::time::sleep(step).await;
            yield_all().await;
        }
    }

    /// Whether a scheduled worker has a tick due now that has not started yet.
    fn any_due(&self) -> bool {
        let board = &self.handle.board;
        let now = board.now();
        board.workers().iter().any(|w| {
            w.queue.is_none()
                && !w.control.is_stopped()
                && w.metrics.active() == 0
                && w.metrics.next_run().is_some_and(|at| at <= now + 1e-6)
        })
    }

    /// The scheduled workers that have not finished `goals` runs yet; the queue workers with a
    /// job in flight, buffered, or waiting out a retry backoff (unless paused).
    fn busy(&self, goals: &[(Arc<Tracked>, u64)]) -> Vec<String> {
        let queues = self.handle.board.workers();
        let queues = queues.iter().filter_map(|w| {
            let queue = w.queue.as_ref()?;
            let depth = queue.depth();
            let idle = w.control.is_paused() || queue.is_closed() && !w.is_alive();
            // A job waiting out its backoff is a run not finished yet.
            let busy =
                queue.metrics.in_flight() > 0 || !idle && (depth.ready > 0 || depth.delayed > 0);
            busy.then(|| w.name.to_string())
        });
        let scheduled = goals
            .iter()
            .filter(|(w, started)| w.is_alive() && w.metrics.finished_runs() < *started)
            .map(|(w, _)| w.name.to_string());
        scheduled.chain(queues).collect()
    }

    /// Every finished run of `worker`, oldest first.
    ///
    /// # Panics
    ///
    /// When the host has no worker named `worker`.
    #[must_use]
    pub fn runs(&self, worker: &str) -> Vec<RunRecord> {
        self.handle
            .runs(worker)
            .unwrap_or_else(|err| panic!("{err}"))
    }

    /// The producer's end of the queue `name`, to enqueue jobs; [`advance`](Self::advance)
    /// then waits until the queues are idle, and [`runs`](Self::runs) lists each job's run.
    ///
    /// ```
    /// use std::time::Duration;
    /// use worker_core::testing::TestHost;
    /// use worker_core::{Host, Job, Outcome, worker};
    ///
    /// #[worker(queue = "emails", retry = 1, backoff = "1s")]
    /// async fn send_email(job: Job<String>) -> Result<(), String> {
    ///     if job.attempt() == 1 { Err(format!("{} bounced", *job)) } else { Ok(()) }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let host = TestHost::start(Host::builder().worker(send_email)).unwrap();
    /// host.queue::<String>("emails").send("ada@example.com".into()).await.unwrap();
    /// host.advance(Duration::ZERO).await;
    ///
    /// let runs = host.runs("send_email");
    /// assert_eq!(runs.len(), 1);
    /// assert_eq!((runs[0].result, runs[0].attempts, runs[0].job_id), (Outcome::Success, 2, Some(1)));
    /// host.stop().await.unwrap();
    /// # }
    /// ```
    ///
    /// # Panics
    ///
    /// When no worker consumes a queue `name` of `T`.
    #[must_use]
    pub fn queue<T: Send + Sync + 'static>(&self, name: &str) -> crate::Queue<T> {
        self.handle
            .queue(name)
            .unwrap_or_else(|err| panic!("{err}"))
    }

    /// The host's handle: admin actions, status, health, metrics.
    #[must_use]
    pub fn handle(&self) -> &HostHandle {
        &self.handle
    }

    /// Runs `worker` once, now (as the run-now admin action does), and waits for that run to
    /// end; runs of its schedule meanwhile are waited for too, and kept in [`runs`](Self::runs).
    ///
    /// # Panics
    ///
    /// When the host has no worker named `worker`, when it cannot run (failed, stopped, or
    /// disabled by configuration), or when the request was skipped because the worker's runs
    /// were at their overlap limit.
    pub async fn run_once(&self, worker: &str) -> RunRecord {
        let manual =
            |runs: &[RunRecord]| runs.iter().filter(|r| r.trigger == Trigger::Manual).count();
        let before = manual(&self.runs(worker));
        let request = self
            .handle
            .run_now(worker)
            .unwrap_or_else(|err| panic!("{err}"));
        let run_id = match request.await {
            Requested::Started { run_id } => Some(run_id),
            Requested::Queued => None,
            Requested::Skipped(SkipReason::Overlap) => {
                panic!("`{worker}` was at its overlap limit: the run was skipped")
            }
            Requested::Skipped(reason) => panic!(
                "`{worker}` cannot run: the request was skipped ({})",
                reason.as_str()
            ),
        };
        let limit = Instant::now() + SETTLE_LIMIT;
        loop {
            self.settle(limit).await;
            let runs = self.runs(worker);
            let found = match run_id {
                Some(id) => runs.iter().find(|r| r.run_id == id),
                None if manual(&runs) > before => {
                    runs.iter().rev().find(|r| r.trigger == Trigger::Manual)
                }
                None => None,
            };
            if let Some(run) = found {
                return run.clone();
            }
            assert!(
                Instant::now() < limit,
                "`{worker}`'s manual run did not end within a simulated day"
            );
            tokio::time::sleep(STEP).await;
        }
    }

    /// Stops the host gracefully and returns what [`Host::run_until`](crate::Host::run_until)
    /// returned.
    ///
    /// # Errors
    ///
    /// When shutdown had to abort runs, or a worker escalated with `stop_host`.
    ///
    /// # Panics
    ///
    /// When the host's task panicked.
    pub async fn stop(self) -> Result<(), Error> {
        self.handle.shutdown();
        self.task.await.expect("the host task does not panic")
    }
}

/// Runs `worker` once, now, in a host made from `builder` (register its state and resource
/// factories there), and returns the run's record. Its schedule is paused, so only this run
/// happens; retries, backoff and the timeout apply as declared.
///
/// ```
/// use worker_core::testing::run_once;
/// use worker_core::{Host, Outcome, State, worker};
///
/// struct Greeting {
///     text: &'static str,
/// }
///
/// #[worker(every = "1h")]
/// async fn greet(greeting: State<Greeting>) -> Result<(), String> {
///     if greeting.text.is_empty() { Err("nothing to say".into()) } else { Ok(()) }
/// }
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let run = run_once(greet, Host::builder().state(Greeting { text: "" })).await.unwrap();
/// assert_eq!(run.result, Outcome::Failure);
/// assert_eq!(run.error.as_deref(), Some("nothing to say"));
/// # }
/// ```
///
/// # Errors
///
/// What [`HostBuilder::build`] fails with (missing state, say), or what stopping it returns.
pub async fn run_once(worker: impl IntoWorker, builder: HostBuilder) -> Result<RunRecord, Error> {
    let worker = worker.into_worker();
    let name = worker.name().to_owned();
    let host = TestHost::start(builder.worker(worker))?;
    host.handle.pause(&name)?;
    let run = host.run_once(&name).await;
    host.stop().await?;
    Ok(run)
}
