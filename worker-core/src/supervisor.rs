//! A worker's loop: wait for the next tick, run it (attempts, retries, timeout, panics caught),
//! account for it, and go on until the host cancels the worker.

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::FutureExt as _;
use tokio::time::{Instant, sleep, sleep_until};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::error::{BoxError, Chain};
use crate::handler::Body;
use crate::metrics::{Clock, Outcome, SkipReason, WorkerMetrics, WorkerState};
use crate::retry::backoff;
use crate::schedule::Grid;
use crate::scope::{Ctx, Scope, WorkerEnv};
use crate::worker::{Missed, Spec};

/// Everything a worker's loop needs from the host.
pub(crate) struct Launch {
    pub(crate) env: Arc<WorkerEnv>,
    pub(crate) spec: Spec,
    pub(crate) metrics: WorkerMetrics,
    /// The worker's token, a child of the host's.
    pub(crate) token: CancellationToken,
    pub(crate) started: Instant,
    pub(crate) clock: Clock,
}

/// Run ids are unique within the process, so a log line or span names exactly one run.
static RUN_IDS: AtomicU64 = AtomicU64::new(1);

/// The worker's loop. Returns when the worker's token is cancelled and the run in progress, if
/// any, has ended.
pub(crate) async fn run<B: Body>(body: B, launch: Launch) {
    let Launch {
        env,
        spec,
        metrics,
        token,
        started,
        clock,
    } = launch;
    let period = spec.every.unwrap_or(Duration::MAX);
    let mut grid = Grid::new(started + spec.after, period);
    let mut index = 0;
    let runner = Runner {
        body: &body,
        env: &env,
        spec: &spec,
        metrics: &metrics,
        clock,
    };
    metrics.set_state(WorkerState::Idle);
    loop {
        let due = grid.at(index);
        metrics.next_run.set(clock.unix_seconds(due));
        tokio::select! {
            biased;
            () = token.cancelled() => break,
            () = sleep_until(due) => {}
        }
        let now = Instant::now();
        if spec.missed == Missed::Skip {
            let last = grid.last_due(now).max(index);
            metrics.skipped(SkipReason::Missed, last - index);
            index = last;
        }
        let scheduled = grid.at(index);
        // `delay`: a tick we woke up too late for (the following tick is already due, say after
        // the process was suspended) runs now and the grid restarts from now. Without this, the
        // run ends behind the grid and `after_run` shifts it to the end of the run, which runs a
        // second time at once. (Waking a little late, by less than a period, moves nothing.)
        if spec.missed == Missed::Delay && grid.at(index + 1) <= now {
            grid = Grid::new(now, period);
            index = 0;
        }
        metrics
            .lag
            .record(now.saturating_duration_since(scheduled).as_secs_f64());
        // While the run goes on, the next run is due on the following tick at the earliest.
        metrics.next_run.set(clock.unix_seconds(grid.at(index + 1)));
        runner.run(&token, scheduled, "schedule").await;
        let next = grid.after_run(spec.missed, index, Instant::now());
        metrics.skipped(SkipReason::Overlap, next.overlapped);
        grid = next.grid;
        index = next.index;
    }
    metrics.next_run.set(0.0);
    metrics.set_state(WorkerState::Stopped);
    tracing::debug!(worker = %env.name, "worker stopped");
}

/// How one attempt ended.
enum Attempt {
    Ok,
    Err(BoxError),
    Panic(String),
    Timeout(Duration),
}

struct Runner<'a, B> {
    body: &'a B,
    env: &'a Arc<WorkerEnv>,
    spec: &'a Spec,
    metrics: &'a WorkerMetrics,
    clock: Clock,
}

impl<B: Body> Runner<'_, B> {
    /// One run: attempts until one succeeds, panics, is cancelled, or retries run out.
    async fn run(&self, token: &CancellationToken, scheduled: Instant, trigger: &'static str) {
        let Self {
            env, spec, metrics, ..
        } = self;
        let run_id = RUN_IDS.fetch_add(1, Ordering::Relaxed);
        let run_token = token.child_token();
        let started = Instant::now();
        metrics.active.set(1.0);
        metrics.set_state(WorkerState::Running);
        let mut aborted = Aborted {
            metrics,
            started,
            armed: true,
        };
        let mut attempt = 1;
        let outcome = loop {
            let span = tracing::info_span!(
                "worker.run",
                worker = %env.name,
                run_id,
                attempt,
                trigger,
                result = tracing::field::Empty,
            );
            let ctx = Ctx::new(
                Arc::clone(env),
                run_id,
                attempt,
                scheduled,
                run_token.clone(),
            );
            let result = self.attempt(Scope::new(ctx)).instrument(span.clone()).await;
            let entered = span.enter();
            let outcome = match &result {
                Attempt::Ok => Outcome::Success,
                Attempt::Panic(_) => Outcome::Panic,
                _ if run_token.is_cancelled() => Outcome::Cancelled,
                Attempt::Err(_) => Outcome::Failure,
                Attempt::Timeout(_) => Outcome::Timeout,
            };
            span.record("result", outcome.as_str());
            let retry =
                matches!(outcome, Outcome::Failure | Outcome::Timeout) && attempt <= spec.retry;
            log_attempt(&result, outcome, retry);
            if !retry {
                break outcome;
            }
            let delay = backoff(spec.backoff, spec.backoff_max, attempt);
            tracing::info!(delay = %humantime::format_duration(delay), "retrying");
            drop(entered);
            metrics.retries.increment(1);
            metrics.set_state(WorkerState::Backoff);
            tokio::select! {
                biased;
                () = run_token.cancelled() => break Outcome::Cancelled,
                () = sleep(delay) => {}
            }
            metrics.set_state(WorkerState::Running);
            attempt += 1;
        };
        aborted.armed = false;
        metrics.finished(outcome, started.elapsed());
        if outcome == Outcome::Success {
            metrics
                .last_success
                .set(self.clock.unix_seconds(Instant::now()));
        }
        metrics.active.set(0.0);
        metrics.set_state(WorkerState::Idle);
    }

    /// One attempt, with its timeout, catching panics. The scope is dropped before this returns,
    /// whatever happened, which tears down the attempt's scoped resources.
    async fn attempt(&self, scope: Scope) -> Attempt {
        let call = AssertUnwindSafe(self.body.call(scope)).catch_unwind();
        let result = match self.spec.timeout {
            Some(limit) => match tokio::time::timeout(limit, call).await {
                Ok(result) => result,
                Err(_) => return Attempt::Timeout(limit),
            },
            None => call.await,
        };
        match result {
            Ok(Ok(())) => Attempt::Ok,
            Ok(Err(err)) => Attempt::Err(err),
            Err(payload) => Attempt::Panic(panic_message(&*payload)),
        }
    }
}

/// Accounts for a run whose future is dropped before it ends: the host aborts the workers still
/// running at the shutdown deadline. Without it such a run was never counted and the worker was
/// left showing `running` and an active run, although nothing is lost silently.
struct Aborted<'a> {
    metrics: &'a WorkerMetrics,
    started: Instant,
    armed: bool,
}

impl Drop for Aborted<'_> {
    fn drop(&mut self) {
        if self.armed {
            let metrics = self.metrics;
            metrics.finished(Outcome::Cancelled, self.started.elapsed());
            metrics.active.set(0.0);
            metrics.next_run.set(0.0);
            metrics.set_state(WorkerState::Stopped);
        }
    }
}

fn log_attempt(result: &Attempt, outcome: Outcome, retry: bool) {
    match result {
        Attempt::Ok => tracing::debug!("run succeeded"),
        Attempt::Panic(message) => {
            tracing::error!(panic = %message, "worker panicked; the schedule goes on");
        }
        Attempt::Err(err) if retry => {
            tracing::warn!(error = %Chain(&**err), "attempt failed");
        }
        Attempt::Err(err) => {
            tracing::error!(result = outcome.as_str(), error = %Chain(&**err), "run failed");
        }
        Attempt::Timeout(limit) if retry => {
            tracing::warn!(timeout = %humantime::format_duration(*limit), "attempt timed out");
        }
        Attempt::Timeout(limit) => tracing::error!(
            result = outcome.as_str(),
            timeout = %humantime::format_duration(*limit),
            "run timed out"
        ),
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(message) = payload.downcast_ref::<&'static str>() {
        (*message).to_owned()
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}
