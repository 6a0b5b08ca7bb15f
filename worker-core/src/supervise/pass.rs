//! One pass of a worker's loop (a crash of the loop restarts the pass): wait for the next
//! tick, start a run if the overlap policy and the circuit breaker allow it, account for every
//! tick, and stop within the worker's budget when cancelled.

use std::collections::VecDeque;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use futures_util::future::{Fuse, FusedFuture as _, OptionFuture};
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt as _, StreamExt as _};
use tokio::time::{Instant, sleep_until};

use crate::durable::Fence;
use crate::observe::metrics::WorkerMetrics;
use crate::observe::status::Trigger;
use crate::observe::{SkipReason, WorkerState};
use crate::run::circuit::{Admit, Breaker};
use crate::run::{Runner, next_run_id};
use crate::schedule::clock::later;
use crate::schedule::{Missed, Overlap, Ticker};
use crate::supervise::Requested;
use crate::supervise::control::{Control, Registration, Seen};
use crate::supervise::escalation::escalate;
use crate::supervise::singleton::Singleton;
use crate::supervise::{End, HostLink, resting};
use crate::worker::handler::Body;

/// The state of a worker's loop that outlives one pass of it (a crash restarts the pass).
pub(super) struct Loop {
    /// When the next ticks are due.
    pub(super) ticker: Ticker,
    /// The jitter drawn for the tick due at `.0`.
    pub(super) jitter: Option<(Instant, Duration)>,
    /// Runs in progress.
    pub(super) active: usize,
    /// A trigger kept by `overlap = queue`: when it was due, and what it was.
    pub(super) pending: Option<(Instant, Trigger)>,
    /// Boxed: most workers have none, and a tick only checks for one.
    pub(super) breaker: Option<Box<Breaker>>,
    /// When recent panics happened, within `restart_window`.
    pub(super) panics: VecDeque<Instant>,
    /// Triggers before this are skipped (restart backoff after a panic).
    pub(super) resume_at: Option<Instant>,
    /// The control signals handled so far; a run requested before the worker started runs
    /// when it starts.
    pub(super) seen: Seen,
    pub(super) registration: Registration,
    /// A singleton's lease: only its holder runs ticks, each claimed first.
    pub(super) singleton: Option<Arc<Singleton>>,
}

impl Loop {
    #[allow(
        clippy::too_many_lines,
        reason = "one select loop over the run slots it pins; split, the slots would have to travel"
    )]
    pub(super) async fn run<B: Body>(
        &mut self,
        runner: &Runner<'_, B>,
        control: &Control,
        host: &HostLink,
    ) -> End {
        let spec = runner.spec;
        let metrics = runner.metrics;
        let (missed, overlap, jitter) = (spec.missed, spec.overlap, spec.jitter);
        let limit = overlap.limit();
        // One run at a time (the default) lives in a reused slot; `allow(n)` needs a set,
        // allocated at its first run (an empty set holds two allocations).
        let mut single = pin!(Fuse::terminated());
        let mut many = None;
        let mut sleep = pin!(sleep_until(Instant::now()));
        // A singleton's tick being claimed in the database; it starts when the claim succeeds.
        let mut claiming = pin!(Fuse::terminated());
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
                    many.get_or_insert_with(FuturesUnordered::new)
                        .push(Box::pin(runner.run($id, $trigger, scheduled, $now)));
                }
            }};
        }
        // A scheduled tick: a singleton's holder claims it first; others start it at once.
        macro_rules! begin {
            ($this:expr, $scheduled:expr, $now:expr) => {{
                match &$this.singleton {
                    None => start!($this, Trigger::Schedule, $scheduled, $now),
                    Some(singleton) => match singleton.trusted($now) {
                        Some(fence) => {
                            let singleton = Arc::clone(singleton);
                            // Boxed: a claim's future would make every loop larger.
                            claiming.set(Box::pin(claim(singleton, fence, $scheduled)).fuse());
                        }
                        None => metrics.skipped(SkipReason::NotClaimed, 1),
                    },
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
            if let Some(singleton) = &self.singleton {
                let follower = !singleton.is_holder();
                if follower != control.is_follower() {
                    control.set_follower(follower);
                    if !follower {
                        // A new holder's staleness counts from its takeover, not from while
                        // it followed.
                        let now = runner.clock.unix_seconds(Instant::now());
                        runner.env.tracked.resumed(now);
                    }
                    if self.active == 0 {
                        metrics.set_state(resting(control));
                    }
                }
                if let Some(takeover) = singleton.take_takeover() {
                    let (nobody, dropped) =
                        self.ticker.rewind(takeover.last_tick, singleton.catch_up);
                    singleton.metrics.missed.fetch_add(nobody, Relaxed);
                    metrics.skipped(SkipReason::Missed, dropped);
                }
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
                Some(Some(outcome)) = OptionFuture::from(many.as_mut().map(|many| many.next())),
                    if many.as_ref().is_some_and(|many| !many.is_empty()) => outcome,
                claimed = &mut claiming, if !claiming.is_terminated() => {
                    let now = Instant::now();
                    match claimed {
                        // A run-now request may have taken the slot meanwhile.
                        Some(_) if self.active >= limit => metrics.skipped(SkipReason::Overlap, 1),
                        Some(scheduled) => start!(self, Trigger::Schedule, scheduled, now),
                        None => metrics.skipped(SkipReason::NotClaimed, 1),
                    }
                    continue;
                }
                () = &mut sleep, if wake.is_some() && !defer && claiming.is_terminated() => {
                    armed = None;
                    let now = Instant::now();
                    if let Some(fired) = self.ticker.fire(now, missed) {
                        if let Some(singleton) = &self.singleton
                            && singleton.trusted(now).is_none()
                        {
                            // A follower's ticks are the holder's to run and count; a holder
                            // past its trust window (the database did not answer) runs none,
                            // and counts them.
                            if singleton.has_fence() {
                                metrics.skipped(SkipReason::NotClaimed, 1 + fired.missed);
                            }
                            continue;
                        }
                        metrics.skipped(SkipReason::Missed, fired.missed);
                        match self.offer(overlap, control, metrics, now) {
                            Offer::Start => begin!(self, fired.scheduled, now),
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
                () = lease_changed(self.singleton.as_deref()) => continue,
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
                    begin!(self, scheduled, now);
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
        let kept = u64::from(self.pending.take().is_some()) + u64::from(!claiming.is_terminated());
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
            if let Some(many) = &mut many {
                while many.next().await.is_some() {}
            }
        };
        match spec.stop_budget {
            Some(budget) => {
                // Boxed, once in the loop's life: inline, its timer would make every idle
                // worker's future larger.
                if Box::pin(tokio::time::timeout(budget, drain)).await.is_err() {
                    tracing::warn!(
                        worker = %runner.env.name,
                        budget = %worker_keys::show(budget),
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
    pub(super) fn admit(&mut self, metrics: &WorkerMetrics, now: Instant) -> bool {
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
}

/// Claims a singleton's tick; `Some(scheduled)` when it is this replica's to run.
async fn claim(singleton: Arc<Singleton>, fence: Fence, scheduled: Instant) -> Option<Instant> {
    singleton.claim(fence, scheduled).await
}

/// Resolves when a singleton's lease was taken or lost; never for other workers.
async fn lease_changed(singleton: Option<&Singleton>) {
    match singleton {
        Some(singleton) => singleton.changed().await,
        None => std::future::pending().await,
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
