//! The restart policy of a worker's loop: the circuit breaker fed with every finished run,
//! the restart backoff after a panic, and the restart intensity that escalates.

use std::panic::AssertUnwindSafe;

use futures_util::FutureExt as _;
use tokio::time::Instant;

use crate::observe::Outcome;
use crate::observe::SkipReason;
use crate::observe::metrics::{RestartReason, WorkerMetrics};
use crate::observe::status::Trigger;
use crate::observe::tracked::Tracked;
use crate::run::Runner;
use crate::run::circuit::CircuitState;
use crate::run::panics::message as panic_message;
use crate::run::retry::BackoffKind;
use crate::schedule::clock::later;
use crate::supervise::control::Control;
use crate::supervise::escalation::escalate;
use crate::supervise::pass::Loop;
use crate::supervise::{End, HostLink, resting};
use crate::worker::handler::Body;
use crate::worker::spec::Spec;

impl Loop {
    /// Runs passes of the loop until one ends, restarting a pass that crashed, up to the
    /// restart intensity.
    pub(super) async fn passes<B: Body>(
        &mut self,
        runner: &Runner<'_, B>,
        control: &Control,
        host: &HostLink,
        tracked: &Tracked,
    ) -> End {
        let (metrics, spec) = (runner.metrics, runner.spec);
        loop {
            let result = AssertUnwindSafe(self.run(runner, control, host))
                .catch_unwind()
                .await;
            let payload = match result {
                Ok(end) => return end,
                Err(payload) => payload,
            };
            tracing::error!(
                worker = %runner.env.name,
                panic = %panic_message(&*payload),
                "the worker's loop crashed; restarting it"
            );
            // The runs of the crashed pass were dropped (and counted as cancelled).
            self.active = 0;
            metrics.set_active(0);
            if self.pending.take().is_some() {
                metrics.skipped(SkipReason::Restarting, 1);
            }
            metrics.restarted(RestartReason::Crash);
            if self.restarts_exhausted(Instant::now(), spec) {
                escalate(spec, host);
                control.stop();
                let unanswered = tracked.replies.close();
                metrics.skipped(SkipReason::ShuttingDown, unanswered);
                return End::Failed;
            }
            metrics.set_state(resting(control));
        }
    }

    /// Feeds a finished run to the breaker and the restart policy; true when the worker must
    /// escalate.
    pub(super) fn after_run(
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
    pub(super) fn restarts_exhausted(&mut self, now: Instant, spec: &Spec) -> bool {
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
