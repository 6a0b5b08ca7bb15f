//! A worker's loop: wait for the next tick, start a run if the overlap policy and the circuit
//! breaker allow it, account for every tick, restart after panics up to an intensity limit and
//! escalate beyond it, and stop within the worker's budget when cancelled.

pub(crate) mod control;
mod escalation;
mod pass;
mod requested;
mod restart;
pub(crate) mod singleton;

pub use self::escalation::Escalation;
use self::pass::Loop;
pub use self::requested::Requested;

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::observe::WorkerState;
use crate::observe::tracked::Tracked;
use crate::run::Runner;
use crate::run::circuit::Breaker;
use crate::schedule::Ticker;
use crate::schedule::clock::Clock;
use crate::supervise::control::{Control, Registration, Seen};
use crate::worker::handler::Body;
use crate::worker::scope::WorkerEnv;
use crate::worker::spec::Checked;

/// What workers tell the host about how they ended.
#[derive(Debug, Default)]
pub(crate) struct Report {
    /// Workers that escalated with `stop_host`.
    pub(crate) escalated: Vec<String>,
    /// Workers whose runs were aborted at their stop budget.
    pub(crate) forced: Vec<String>,
}

/// A worker's line to its host.
#[derive(Debug, Clone, Default)]
pub(crate) struct HostLink {
    /// Cancelling it asks the host to shut down.
    pub(crate) shutdown: CancellationToken,
    pub(crate) report: Arc<Mutex<Report>>,
    /// Armed with the stop an escalation asks for.
    pub(crate) watchdog: Option<crate::host::watchdog::Watchdog>,
    /// The host's shutdown timeout.
    pub(crate) shutdown_timeout: std::time::Duration,
}

impl HostLink {
    pub(crate) fn report(&self) -> std::sync::MutexGuard<'_, Report> {
        self.report
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Everything a worker's loop needs from the host.
pub(crate) struct Launch {
    pub(crate) env: Arc<WorkerEnv>,
    /// The queue a queue worker consumes.
    pub(crate) queue: Option<Arc<crate::queue::channel::Channel>>,
    pub(crate) checked: Checked,
    pub(crate) tracked: Arc<Tracked>,
    pub(crate) started: Instant,
    pub(crate) clock: Clock,
    pub(crate) host: HostLink,
}

/// How a worker's loop ended.
pub(super) enum End {
    /// Cancelled by the host.
    Stopped,
    /// Stopped by its escalation policy.
    Failed,
}

/// The worker's loop. Returns when the worker is cancelled (or escalates) and its runs ended.
///
/// `launch` is taken apart before the loop's future is made, and the future is an `async`
/// block, which holds what it captures once (an `async fn` keeps its arguments twice), so the
/// future holds each part once and the trigger, used up by the ticker, not at all.
pub(crate) fn run<B: Body>(body: B, launch: Launch) -> impl Future<Output = ()> + Send {
    let Launch {
        env,
        checked: Checked { spec, trigger },
        tracked,
        started,
        clock,
        host,
        queue: _,
    } = launch;
    // The trigger is used up by the ticker: the loop's future does not hold it. A singleton's
    // ticker waits for the database's clock.
    let (ticker, shared) = match &tracked.lease {
        None => (
            Some(Ticker::new(&trigger, started, spec.after, clock)),
            None,
        ),
        Some(_) => (None, Some(Box::new(trigger))),
    };
    // Read at start-up, on failures and at shutdown, so kept out of the loop's memory.
    let spec = Box::new(spec);
    async move {
        let metrics = &tracked.metrics;
        if !spec.enabled {
            tracked.replies.close();
            tracing::info!(worker = %env.name, "worker disabled by configuration");
            metrics.set_state(WorkerState::Stopped);
            return;
        }
        // A singleton keeps its schedule and its timestamps on the database's clock.
        let (ticker, singleton, clock) = match (ticker, shared, &tracked.lease) {
            (Some(ticker), ..) => (ticker, None, clock),
            (None, Some(trigger), Some(singleton)) => {
                let control = &tracked.control;
                control.set_follower(true);
                metrics.set_state(resting(control));
                // Boxed, as every singleton-only future here: inline, they would make every
                // worker's loop future larger (idle memory), singleton or not.
                let Some((ticker, clock)) =
                    Box::pin(singleton.ticker(&trigger, spec.after, control.token())).await
                else {
                    Box::pin(singleton.resign()).await;
                    tracked.replies.close();
                    metrics.set_state(WorkerState::Stopped);
                    return;
                };
                (ticker, Some(singleton.clone()), clock)
            }
            _ => unreachable!("a ticker, or a singleton's trigger"),
        };
        let runner = Runner {
            body: &body,
            env: &env,
            spec: &spec,
            metrics,
            clock,
            retry_panics: false,
        };
        let mut state = Loop {
            ticker,
            breaker: spec.circuit.map(|config| Box::new(Breaker::new(config))),
            panics: VecDeque::new(),
            resume_at: None,
            pending: None,
            jitter: None,
            active: 0,
            seen: Seen::default(),
            registration: Registration::default(),
            singleton: singleton.clone(),
        };
        // Stopped with the host (shutdown) or by the worker's own escalation.
        let control = &tracked.control;
        let first = state.ticker.due().unwrap_or(started + spec.after);
        tracked.started(clock.unix_seconds(first));
        let _alive = Alive(&tracked);
        metrics.set_state(resting(control));
        let passes = state.passes(&runner, control, &host, &tracked);
        let end = match &singleton {
            None => passes.await,
            // Boxed, as the singleton's other futures above.
            Some(singleton) => Box::pin(holding(singleton, passes)).await,
        };
        metrics.set_next_run(0);
        let repeated = tracked.quiet.take_repeated();
        if repeated > 0 {
            tracing::warn!(
                worker = %env.name,
                repeated,
                "identical log lines of this worker were not logged before it stopped"
            );
        }
        match end {
            End::Stopped => {
                metrics.set_state(WorkerState::Stopped);
                tracing::debug!(worker = %env.name, "worker stopped");
            }
            End::Failed => metrics.set_state(WorkerState::Failed),
        }
    }
}
/// A singleton's passes, with its lease kept while they run, their runs included, and given
/// up after.
async fn holding(singleton: &singleton::Singleton, passes: impl Future<Output = End>) -> End {
    let end = tokio::select! {
        biased;
        end = passes => end,
        () = singleton.keep() => unreachable!("the keeper never ends"),
    };
    singleton.resign().await;
    end
}

/// The state of a worker with no run in progress.
pub(super) fn resting(control: &Control) -> WorkerState {
    if control.is_paused() {
        WorkerState::Paused
    } else if control.is_follower() {
        WorkerState::Follower
    } else {
        WorkerState::Idle
    }
}
/// Marks the worker's loop as gone when it ends, however it ends (aborted included).
pub(crate) struct Alive<'a>(pub(crate) &'a Tracked);

impl Drop for Alive<'_> {
    fn drop(&mut self) {
        self.0.ended();
    }
}
