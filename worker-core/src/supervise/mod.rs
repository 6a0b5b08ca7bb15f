//! A worker's loop: wait for the next tick, start a run if the overlap policy and the circuit
//! breaker allow it, account for every tick, restart after panics up to an intensity limit and
//! escalate beyond it, and stop within the worker's budget when cancelled.

pub(crate) mod control;

use std::collections::VecDeque;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::{Fuse, FusedFuture as _};
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt as _, StreamExt as _};
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

use crate::observe::metrics::{RestartReason, WorkerMetrics};
use crate::observe::status::Trigger;
use crate::observe::tracked::Tracked;
use crate::observe::{Outcome, SkipReason, WorkerState};
use crate::run::circuit::{Admit, Breaker, CircuitState};
use crate::run::panics::message as panic_message;
use crate::run::retry::BackoffKind;
use crate::run::{Runner, next_run_id};
use crate::schedule::clock::{Clock, later};
use crate::schedule::{Missed, Overlap, Ticker};
use crate::supervise::control::{Control, Registration, Requested, Seen};
use crate::worker::handler::Body;
use crate::worker::scope::WorkerEnv;
use crate::worker::spec::{Checked, Spec};

/// What happens when a worker panics more than `max_restarts` times within `restart_window`
/// (`escalate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Escalation {
    /// The worker stops and shows `failed`; the other workers keep running. The default.
    #[default]
    StopWorker,
    /// The whole host stops gracefully and [`Host::run`](crate::Host::run) returns an error, so
    /// the process exits non-zero.
    StopHost,
}

impl Escalation {
    /// The name used in `#[worker(escalate = ..)]` and in configuration.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::StopWorker => "stop_worker",
            Self::StopHost => "stop_host",
        }
    }
}

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
}

impl HostLink {
    fn report(&self) -> std::sync::MutexGuard<'_, Report> {
        self.report
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Everything a worker's loop needs from the host.
pub(crate) struct Launch {
    pub(crate) env: Arc<WorkerEnv>,
    pub(crate) checked: Checked,
    pub(crate) tracked: Arc<Tracked>,
    pub(crate) started: Instant,
    pub(crate) clock: Clock,
    pub(crate) host: HostLink,
}

/// How a worker's loop ended.
enum End {
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
    } = launch;
    let ticker = Ticker::new(&trigger, started, spec.after, clock);
    drop(trigger);
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
        let runner = Runner {
            body: &body,
            env: &env,
            spec: &spec,
            metrics,
            clock,
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
        };
        // Stopped with the host (shutdown) or by the worker's own escalation.
        let control = &tracked.control;
        let first = state.ticker.due().unwrap_or(started + spec.after);
        tracked.started(clock.unix_seconds(first));
        let _alive = Alive(&tracked);
        metrics.set_state(resting(control));
        let end = loop {
            let result = AssertUnwindSafe(state.run(&runner, control, &host))
                .catch_unwind()
                .await;
            match result {
                Ok(end) => break end,
                Err(payload) => {
                    tracing::error!(
                        worker = %env.name,
                        panic = %panic_message(&*payload),
                        "the worker's loop crashed; restarting it"
                    );
                    // The runs of the crashed pass were dropped (and counted as cancelled).
                    state.active = 0;
                    metrics.set_active(0);
                    if state.pending.take().is_some() {
                        metrics.skipped(SkipReason::Restarting, 1);
                    }
                    metrics.restarted(RestartReason::Crash);
                    if state.restarts_exhausted(Instant::now(), &spec) {
                        escalate(&spec, &host);
                        control.stop();
                        let unanswered = tracked.replies.close();
                        metrics.skipped(SkipReason::ShuttingDown, unanswered);
                        break End::Failed;
                    }
                    metrics.set_state(resting(control));
                }
            }
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

/// The state of a worker's loop that outlives one pass of it (a crash restarts the pass).
struct Loop {
    /// When the next ticks are due.
    ticker: Ticker,
    /// The jitter drawn for the tick due at `.0`.
    jitter: Option<(Instant, Duration)>,
    /// Runs in progress.
    active: usize,
    /// A trigger kept by `overlap = queue`: when it was due, and what it was.
    pending: Option<(Instant, Trigger)>,
    /// Boxed: most workers have none, and a tick only checks for one.
    breaker: Option<Box<Breaker>>,
    /// When recent panics happened, within `restart_window`.
    panics: VecDeque<Instant>,
    /// Triggers before this are skipped (restart backoff after a panic).
    resume_at: Option<Instant>,
    /// The control signals handled so far; a run requested before the worker started runs
    /// when it starts.
    seen: Seen,
    registration: Registration,
}

impl Loop {
    #[allow(
        clippy::too_many_lines,
        reason = "one select loop over the run slots it pins; split, the slots would have to travel"
    )]
    async fn run<B: Body>(
        &mut self,
        runner: &Runner<'_, B>,
        control: &Control,
        host: &HostLink,
    ) -> End {
        let spec = runner.spec;
        let metrics = runner.metrics;
        let (missed, overlap, jitter) = (spec.missed, spec.overlap, spec.jitter);
        let limit = overlap.limit();
        // One run at a time (the default) lives in a reused slot; `allow(n)` needs a set.
        let mut single = pin!(Fuse::terminated());
        let mut many = FuturesUnordered::new();
        let mut sleep = pin!(sleep_until(Instant::now()));
        // The deadline `sleep` is set to, if it has not fired yet: resetting a timer re-registers
        // it with the runtime's timer wheel, so it is only reset when the deadline changes.
        let mut armed = None;
        let mut shown_next = None;
        let mut failed = false;
        // A macro rather than a closure: it needs `single` and `many`, which the loop also polls.
        macro_rules! start {
            ($this:expr, $trigger:expr, $scheduled:expr, $now:expr) => {{
                let id = next_run_id();
                start!($this, $trigger, $scheduled, $now, id)
            }};
            ($this:expr, $trigger:expr, $scheduled:expr, $now:expr, $id:expr) => {{
                let scheduled: Instant = $scheduled;
                metrics.started($now.saturating_duration_since(scheduled));
                if $this.active == 0 {
                    metrics.set_state(WorkerState::Running);
                }
                $this.active += 1;
                metrics.set_active($this.active);
                if limit == 1 {
                    single.set(runner.run($id, $trigger, scheduled, $now).fuse());
                } else {
                    many.push(Box::pin(runner.run($id, $trigger, scheduled, $now)));
                }
            }};
        }
        loop {
            // The control signals, read once per pass with one load; the select below parks on
            // them only when nothing else is ready, so a busy pass registers no waker.
            let signals = control.seen();
            if signals.is_stopped() {
                break;
            }
            if signals != self.seen {
                let requested = signals.requests_since(self.seen);
                self.seen = signals;
                if requested > 0 {
                    // Run now, whatever the schedule, pause, restart backoff or circuit: each
                    // request is a trigger that the overlap policy admits, keeps or skips.
                    let now = Instant::now();
                    for reply in runner.env.tracked.replies.take(requested) {
                        let answer = if self.active < limit {
                            let id = next_run_id();
                            start!(self, Trigger::Manual, now, now, id);
                            Requested::Started { run_id: id }
                        } else if overlap == Overlap::Queue && self.pending.is_none() {
                            self.pending = Some((now, Trigger::Manual));
                            Requested::Queued
                        } else {
                            metrics.skipped(SkipReason::Overlap, 1);
                            Requested::Skipped(SkipReason::Overlap)
                        };
                        let _ = reply.send(answer);
                    }
                }
                if self.active == 0 {
                    metrics.set_state(resting(control));
                }
            }
            let wake = self.wake_at(jitter);
            if wake != shown_next {
                let unix = wake.map_or(0, |at| runner.clock.unix_nanos(at));
                metrics.set_next_run(unix);
                shown_next = wake;
            }
            if let Some(at) = wake
                && armed != Some(at)
            {
                sleep.as_mut().reset(at);
                armed = Some(at);
            }
            // `burst` and `delay` keep a tick that finds no free run slot for when one frees up.
            let defer = missed != Missed::Skip && self.active >= limit;
            let (ended, now, trigger) = tokio::select! {
                biased;
                outcome = &mut single, if !single.is_terminated() => outcome,
                Some(outcome) = many.next(), if !many.is_empty() => outcome,
                () = &mut sleep, if wake.is_some() && !defer => {
                    armed = None;
                    let now = Instant::now();
                    if let Some(fired) = self.ticker.fire(now, missed) {
                        metrics.skipped(SkipReason::Missed, fired.missed);
                        match self.offer(overlap, control, metrics, now) {
                            Offer::Start => start!(self, Trigger::Schedule, fired.scheduled, now),
                            Offer::Kept => {
                                self.pending = Some((fired.scheduled, Trigger::Schedule));
                            }
                            Offer::Skipped(reason) => metrics.skipped(reason, 1),
                            Offer::Dropped => {}
                        }
                    }
                    continue;
                }
                // Read again at the top of the loop.
                _ = control.changed(self.seen, &mut self.registration) => continue,
            };
            self.active -= 1;
            metrics.set_active(self.active);
            self.ticker.run_ended(now);
            if self.after_run(ended, trigger, now, spec, metrics) {
                escalate(spec, host);
                failed = true;
                control.stop();
                break;
            }
            // A kept trigger left when the worker is stopping counts as a `shutting_down` skip.
            if self.active == 0
                && !control.is_stopped()
                && let Some((scheduled, trigger)) = self.pending.take()
            {
                // A kept trigger obeys the restart backoff of a panic of the run it waited
                // for, as a new trigger would (it used to start at once); a kept run-now
                // request runs whatever the pause, backoff or circuit, as it would have.
                if trigger == Trigger::Manual {
                    start!(self, Trigger::Manual, now, now);
                } else if control.is_paused() {
                    metrics.skipped(SkipReason::Paused, 1);
                } else if self.resume_at.is_some_and(|resume| now < resume) {
                    metrics.skipped(SkipReason::Restarting, 1);
                } else if self.admit(metrics, now) {
                    start!(self, Trigger::Schedule, scheduled, now);
                }
            }
            if self.active == 0 {
                metrics.set_state(resting(control));
            }
        }
        // Triggers that were due or kept but never ran are dropped, and counted.
        let now = Instant::now();
        let due = match self.ticker.due() {
            Some(due) if due <= now && !failed => self
                .ticker
                .fire(now, Missed::Skip)
                .map_or(0, |f| f.missed + 1),
            _ => 0,
        };
        let kept = u64::from(self.pending.take().is_some());
        // Every run-now request not handled yet, and any that comes later, is answered now.
        let unanswered = runner.env.tracked.replies.close();
        self.seen = control.seen();
        metrics.skipped(SkipReason::ShuttingDown, due + kept + unanswered);
        // Stopping: no new runs; the runs in progress see their token cancelled and get the
        // worker's stop budget (or the host's deadline) to end.
        let drain = async {
            if !single.is_terminated() {
                (&mut single).await;
            }
            while many.next().await.is_some() {}
        };
        match spec.stop_budget {
            Some(budget) => {
                if tokio::time::timeout(budget, drain).await.is_err() {
                    tracing::warn!(
                        worker = %runner.env.name,
                        budget = %humantime::format_duration(budget),
                        "the worker overran its stop budget; its runs are aborted"
                    );
                    host.report().forced.push(runner.env.name.to_string());
                }
            }
            None => drain.await,
        }
        // Every run has ended or was aborted (and counted as cancelled).
        self.active = 0;
        metrics.set_active(0);
        if failed { End::Failed } else { End::Stopped }
    }

    /// When to wake up for the next tick, jitter included.
    fn wake_at(&mut self, jitter: Duration) -> Option<Instant> {
        let due = self.ticker.due()?;
        if jitter.is_zero() {
            return Some(due);
        }
        let offset = match self.jitter {
            Some((at, offset)) if at == due => offset,
            _ => {
                let nanos = u64::try_from(jitter.as_nanos()).unwrap_or(u64::MAX);
                let offset = Duration::from_nanos(fastrand::u64(0..=nanos));
                self.jitter = Some((due, offset));
                offset
            }
        };
        Some(later(due, offset))
    }

    /// What a tick at `now` does.
    fn offer(
        &mut self,
        overlap: Overlap,
        control: &Control,
        metrics: &WorkerMetrics,
        now: Instant,
    ) -> Offer {
        if control.is_paused() {
            return Offer::Skipped(SkipReason::Paused);
        }
        if let Some(resume) = self.resume_at {
            if now < resume {
                return Offer::Skipped(SkipReason::Restarting);
            }
            self.resume_at = None;
        }
        if self.active < overlap.limit() {
            return if self.admit(metrics, now) {
                Offer::Start
            } else {
                Offer::Dropped
            };
        }
        if overlap == Overlap::Queue && self.pending.is_none() {
            return Offer::Kept;
        }
        Offer::Skipped(SkipReason::Overlap)
    }

    /// Asks the circuit breaker; counts the skip when it says no.
    fn admit(&mut self, metrics: &WorkerMetrics, now: Instant) -> bool {
        let Some(breaker) = &mut self.breaker else {
            return true;
        };
        let before = breaker.state();
        let admit = breaker.admit(now);
        if breaker.state() != before {
            metrics.set_circuit(breaker.state());
            tracing::info!(state = breaker.state().as_str(), "circuit breaker");
        }
        if admit == Admit::Reject {
            metrics.skipped(SkipReason::CircuitOpen, 1);
            return false;
        }
        true
    }

    /// Feeds a finished run to the breaker and the restart policy; true when the worker must
    /// escalate.
    fn after_run(
        &mut self,
        outcome: Outcome,
        trigger: Trigger,
        now: Instant,
        spec: &Spec,
        metrics: &WorkerMetrics,
    ) -> bool {
        // A manual run bypasses the breaker, so it must not stand in for its half-open probe.
        if let Some(breaker) = &mut self.breaker
            && outcome != Outcome::Cancelled
            && !(trigger == Trigger::Manual && breaker.state() == CircuitState::HalfOpen)
        {
            let before = breaker.state();
            let failed = matches!(
                outcome,
                Outcome::Failure | Outcome::Timeout | Outcome::Panic
            );
            breaker.record(now, failed);
            if breaker.state() != before {
                metrics.set_circuit(breaker.state());
                tracing::warn!(state = breaker.state().as_str(), "circuit breaker");
            }
        }
        if outcome != Outcome::Panic {
            return false;
        }
        metrics.restarted(RestartReason::Panic);
        if self.restarts_exhausted(now, spec) {
            return true;
        }
        if !spec.restart_backoff.is_zero() {
            let streak = u32::try_from(self.panics.len()).unwrap_or(u32::MAX);
            // Doubling per panic in the window, up to the longer of the base and the window.
            let cap = spec.restart_backoff.max(spec.restart_window);
            let delay = BackoffKind::Exponential.nominal(spec.restart_backoff, cap, streak);
            self.resume_at = Some(later(now, delay));
        }
        false
    }

    /// Records a restart at `now`; true when `max_restarts` within `restart_window` is exceeded.
    ///
    /// Keeps only what the policy reads: the last `max_restarts + 1` panics (enough to tell
    /// whether more than `max_restarts` fell within the window), or, for the doubling of
    /// `restart_backoff`, the last [`BACKOFF_STREAK`]; nothing when neither is set.
    fn restarts_exhausted(&mut self, now: Instant, spec: &Spec) -> bool {
        let for_limit = spec.max_restarts.map_or(0, |max| {
            usize::try_from(max).unwrap_or(usize::MAX).saturating_add(1)
        });
        let for_backoff = if spec.restart_backoff.is_zero() {
            0
        } else {
            BACKOFF_STREAK
        };
        let keep = for_limit.max(for_backoff);
        if keep == 0 {
            return false;
        }
        self.panics.push_back(now);
        while self.panics.len() > keep {
            self.panics.pop_front();
        }
        while let Some(&at) = self.panics.front() {
            if now.saturating_duration_since(at) > spec.restart_window {
                self.panics.pop_front();
            } else {
                break;
            }
        }
        self.escalated(spec)
    }

    fn escalated(&self, spec: &Spec) -> bool {
        spec.max_restarts
            .is_some_and(|max| self.panics.len() > usize::try_from(max).unwrap_or(usize::MAX))
    }
}

/// Panics the doubling of `restart_backoff` counts at most: by then the delay has reached its
/// cap whatever the base (2^32 times the shortest backoff, 1 ms, is 50 days).
const BACKOFF_STREAK: usize = 33;

/// The state of a worker with no run in progress.
fn resting(control: &Control) -> WorkerState {
    if control.is_paused() {
        WorkerState::Paused
    } else {
        WorkerState::Idle
    }
}

/// Marks the worker's loop as gone when it ends, however it ends (aborted included).
struct Alive<'a>(&'a Tracked);

impl Drop for Alive<'_> {
    fn drop(&mut self) {
        self.0.ended();
    }
}

/// What a tick does, decided by [`Loop::offer`].
enum Offer {
    Start,
    Kept,
    Skipped(SkipReason),
    /// Refused by the circuit breaker, which counted it.
    Dropped,
}

fn escalate(spec: &Spec, host: &HostLink) {
    let name = &*spec.name;
    let limit = spec.max_restarts.unwrap_or_default();
    let window = humantime::format_duration(spec.restart_window);
    match spec.escalate {
        Escalation::StopWorker => tracing::error!(
            worker = name,
            "more than {limit} restarts within {window}: stopping the worker (escalate = stop_worker)"
        ),
        Escalation::StopHost => {
            tracing::error!(
                worker = name,
                "more than {limit} restarts within {window}: stopping the host (escalate = stop_host)"
            );
            host.report().escalated.push(name.to_owned());
            host.shutdown.cancel();
            if let Some(watchdog) = &host.watchdog {
                watchdog.arm();
            }
        }
    }
}
