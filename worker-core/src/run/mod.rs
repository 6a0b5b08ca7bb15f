//! One run of one worker: attempts, retries with backoff, the per-attempt timeout, panics caught,
//! a `worker.run` span per attempt, and the run's metrics.

pub(crate) mod circuit;
pub(crate) mod job;
mod limited;
mod line;
pub(crate) mod panics;
pub(crate) mod retry;
pub(crate) mod span;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::{Instant, sleep};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument as _, Span};

use crate::error::{BoxError, Chain};
use crate::observe::metrics::WorkerMetrics;
use crate::observe::recent::Entry;
use crate::observe::status::Trigger;
use crate::observe::{Outcome, WorkerState};
use crate::queue::job::JobInfo;
use crate::run::limited::Limited;
use crate::run::line::Line;
use crate::run::panics::Caught;
use crate::run::retry::{Permanent, backoff};
use crate::schedule::clock::Clock;
use crate::worker::finish::{Closed, Finishing};
use crate::worker::handler::Body;
use crate::worker::scope::{Ctx, Scope, WorkerEnv};
use crate::worker::spec::Spec;

/// Run ids are unique within the process and increase in the order runs start, so a log line
/// or span names exactly one run, and a worker's runs read in time order.
static RUN_IDS: AtomicU64 = AtomicU64::new(1);

pub(crate) fn next_run_id() -> u64 {
    RUN_IDS.fetch_add(1, Ordering::Relaxed)
}

/// How one attempt ended.
enum Attempt {
    Ok,
    Err(BoxError),
    Panic(Box<Caught>),
    Timeout(Duration),
}

/// Runs a worker's body; shared by every run of the worker.
pub(crate) struct Runner<'a, B> {
    pub(crate) body: &'a B,
    pub(crate) env: &'a Arc<WorkerEnv>,
    pub(crate) spec: &'a Spec,
    pub(crate) metrics: &'a WorkerMetrics,
    pub(crate) clock: Clock,
    /// Whether a panicked attempt is retried like a failed one (`on_panic = retry` of a queue
    /// worker); a scheduled worker's never is.
    pub(crate) retry_panics: bool,
}

/// What a run carries from start to end.
struct Run {
    id: u64,
    trigger: Trigger,
    scheduled: Instant,
    started: Instant,
    /// Attempts begun so far.
    attempts: u32,
}

/// What an attempt's outcome calls for.
enum Next {
    Done(Outcome, Attempt),
    Retry(Duration, Attempt),
}

impl<B: Body> Runner<'_, B> {
    /// One run, started at `started`: attempts until one succeeds, panics, is cancelled, fails
    /// permanently, or retries run out. Runs are only ever cancelled with their worker. Returns
    /// how the run ended, when, and what started it.
    ///
    /// Its state is kept small, as every tick writes it afresh: the run's facts once (in the
    /// guard that accounts for a dropped run), the attempt, and a boxed backoff only retries
    /// need.
    pub(crate) fn run(
        &self,
        id: u64,
        trigger: Trigger,
        scheduled: Instant,
        started: Instant,
    ) -> impl Future<Output = (Outcome, Instant, Trigger)> {
        let mut guard = Aborted {
            runner: self,
            run: Run {
                id,
                trigger,
                scheduled,
                started,
                attempts: 1,
            },
            armed: true,
        };
        // A block, not an `async fn`, which would also keep the arguments.
        async move {
            let (outcome, last) = loop {
                let (result, span) = self.attempt(&guard.run, None).await;
                let (delay, failed) = match self.judge(&guard.run, result, &span, None, None) {
                    Next::Done(outcome, result) => break (outcome, result),
                    Next::Retry(delay, result) => (delay, result),
                };
                self.metrics.set_state(WorkerState::Backoff);
                let token = self.env.tracked.control.token();
                let waited = Box::pin(async move {
                    tokio::select! {
                        biased;
                        () = token.cancelled() => false,
                        () = sleep(delay) => true,
                    }
                })
                .await;
                if !waited {
                    break (Outcome::Cancelled, failed);
                }
                // Counted when the attempt starts: a retry cancelled in its backoff was never made.
                self.metrics.retried();
                self.metrics.set_state(WorkerState::Running);
                guard.run.attempts += 1;
            };
            guard.armed = false;
            let ended = Instant::now();
            self.finish(&guard.run, outcome, ended, last.error(), None);
            (outcome, ended, guard.run.trigger)
        }
    }

    /// How an attempt ended, and whether to retry it after which delay; logged in its span.
    fn judge(
        &self,
        run: &Run,
        result: Attempt,
        span: &Span,
        job: Option<&CancellationToken>,
        job_id: Option<u64>,
    ) -> Next {
        let outcome = self.outcome(&result, job);
        span.record("result", outcome.as_str());
        let permanent = matches!(&result, Attempt::Err(err) if Permanent::is_permanent(&**err));
        let spec = self.spec;
        let retried = match outcome {
            Outcome::Failure | Outcome::Timeout => true,
            Outcome::Panic => self.retry_panics,
            _ => false,
        };
        let retry = retried && !permanent && run.attempts <= spec.retry;
        let delay = retry.then(|| {
            backoff(
                spec.backoff_kind,
                spec.backoff,
                spec.backoff_max,
                run.attempts,
            )
        });
        let line = Line {
            span,
            fields: self.fields(run, job_id),
            outcome,
            retry: delay,
            permanent,
        };
        self.log_attempt(&result, &line);
        match delay {
            Some(delay) => Next::Retry(delay, result),
            None => Next::Done(outcome, result),
        }
    }

    /// Accounts for a run that ended at `ended`: metrics, and the worker's history.
    fn finish(
        &self,
        run: &Run,
        outcome: Outcome,
        ended: Instant,
        error: Option<String>,
        job: Option<u64>,
    ) {
        let took = ended.saturating_duration_since(run.started);
        self.metrics.finished(outcome, took);
        let ended_unix = self.clock.unix_nanos(ended);
        if outcome == Outcome::Success {
            self.metrics.set_last_success(ended_unix);
        }
        let entry = Entry {
            run_id: run.id,
            trigger: run.trigger,
            scheduled: self.clock.unix(run.scheduled),
            ended: Duration::from_nanos(ended_unix),
            duration: took,
            result: outcome,
            attempts: run.attempts,
            job_id: job,
        };
        self.env.tracked.record(&entry, error);
    }

    /// What the `worker.run` span of `run`'s attempt says.
    fn fields(&self, run: &Run, job_id: Option<u64>) -> span::Fields<'_> {
        span::Fields {
            worker: &self.env.name,
            run_id: run.id,
            attempt: run.attempts,
            trigger: run.trigger,
            job_id,
        }
    }

    /// One attempt in its `worker.run` span, with its timeout, catching panics. The attempt's
    /// scope is dropped before this returns, whatever happened, which tears down its scoped
    /// resources.
    async fn attempt(&self, run: &Run, job: Option<JobInfo>) -> (Attempt, Span) {
        let fields = self.fields(run, job.as_ref().map(|job| job.id));
        let span = span::attempt(self.spec.span_level, fields);
        let token = job.as_ref().and_then(|job| job.token.clone());
        let ctx = Ctx::new(
            Arc::clone(self.env),
            run.id,
            run.attempts,
            run.scheduled,
            self.clock.system_time(run.scheduled),
        )
        .with_token(token.clone());
        let finishing = self
            .env
            .registry
            .has_finishing()
            .then(|| Arc::new(Finishing::default()));
        let body = self.body.call(Scope::new(ctx, job, finishing.clone()));
        let attempt = self.limited(body).instrument(span.clone()).await;
        let attempt = match finishing {
            None => attempt,
            // Boxed: only the attempts of workers with finish steps hold its state.
            Some(finishing) => {
                let finish =
                    self.finish_resources(&finishing, token.as_ref(), attempt, (&span, fields));
                Box::pin(finish.instrument(span.clone())).await
            }
        };
        (attempt, span)
    }

    /// Runs `body` catching its panics, within the worker's timeout if it has one. The body's
    /// future is dropped before this returns, whatever happened.
    fn limited<F: Future<Output = Result<(), BoxError>>>(&self, body: F) -> Limited<F> {
        Limited::new(body, self.spec.timeout)
    }

    /// Hands the attempt's [`ScopedMut`](crate::ScopedMut) resources to their finish steps,
    /// newest first. After a success, the first finish step that does not succeed decides the
    /// attempt (a failed commit fails it), and the older resources are finished with that
    /// outcome; the failures of later finish steps are only logged, like a leaked handle, in
    /// the span [`span::for_line`] gives.
    async fn finish_resources(
        &self,
        finishing: &Finishing,
        job: Option<&CancellationToken>,
        mut attempt: Attempt,
        (span, fields): (&Span, span::Fields<'_>),
    ) -> Attempt {
        for slot in finishing.slots() {
            let outcome = self.outcome(&attempt, job);
            let (resource, finish) = match slot.close(outcome) {
                Closed::Nothing => continue,
                Closed::Leaked(resource) => {
                    let _entered = span::for_line(span, fields, outcome.as_str()).entered();
                    tracing::warn!(
                        resource,
                        "a `ScopedMut` outlived its attempt (moved into a task?): it is not \
                         finished, and its value is dropped with the handle"
                    );
                    continue;
                }
                Closed::Finish(resource, finish) => (resource, finish),
            };
            let finished = self.limited(finish).await;
            match (&attempt, finished) {
                (_, Attempt::Ok) => {}
                (Attempt::Ok, Attempt::Err(err)) => {
                    attempt = Attempt::Err(Box::new(FinishFailed {
                        resource,
                        source: err,
                    }));
                }
                (Attempt::Ok, failed) => attempt = failed,
                (_, failed) => {
                    let _entered = span::for_line(span, fields, outcome.as_str()).entered();
                    tracing::warn!(
                        resource,
                        result = outcome.as_str(),
                        error = failed.error().as_deref().unwrap_or_default(),
                        "finishing a resource after the attempt failed"
                    );
                }
            }
        }
        attempt
    }

    /// The outcome of an attempt, before retries: a failure while the run's token is
    /// cancelled is a cancellation.
    fn outcome(&self, attempt: &Attempt, job: Option<&CancellationToken>) -> Outcome {
        match attempt {
            Attempt::Ok => Outcome::Success,
            Attempt::Panic(_) => Outcome::Panic,
            _ if job
                .unwrap_or_else(|| self.env.tracked.control.token())
                .is_cancelled() =>
            {
                Outcome::Cancelled
            }
            Attempt::Err(_) => Outcome::Failure,
            Attempt::Timeout(_) => Outcome::Timeout,
        }
    }
}

/// Accounts for a run whose future is dropped before it ends (the worker's stop budget or the
/// host's shutdown deadline ran out): the run counts as `cancelled`, so nothing is lost silently.
struct Aborted<'r, 'a, B: Body> {
    runner: &'r Runner<'a, B>,
    run: Run,
    armed: bool,
}

impl<B: Body> Drop for Aborted<'_, '_, B> {
    fn drop(&mut self) {
        if self.armed {
            let runner = self.runner;
            let error = if std::thread::panicking() {
                "aborted: the worker's loop crashed while the run was going"
            } else {
                "aborted: still running when the stop budget or shutdown deadline ran out"
            };
            runner.finish(
                &self.run,
                Outcome::Cancelled,
                Instant::now(),
                Some(error.to_owned()),
                None,
            );
            if !std::thread::panicking() {
                let metrics = runner.metrics;
                metrics.set_active(0);
                metrics.set_next_run(0);
                metrics.set_state(WorkerState::Stopped);
            }
        }
    }
}

impl Attempt {
    /// What went wrong, for the run's record; `None` for a success.
    fn error(&self) -> Option<String> {
        match self {
            Self::Ok => None,
            Self::Err(err) => Some(Chain(&**err).to_string()),
            Self::Panic(caught) => Some(format!("panicked: {}", caught.message)),
            Self::Timeout(limit) => Some(format!("timed out after {}", worker_keys::show(*limit))),
        }
    }
}

/// A finish step that failed after a successful body: the attempt's error, naming the
/// resource; its source is the finish step's error, so a `Permanent` one is not retried.
#[derive(Debug)]
struct FinishFailed {
    resource: &'static str,
    source: BoxError,
}

impl std::fmt::Display for FinishFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "finishing the scoped `{}` failed", self.resource)
    }
}

impl std::error::Error for FinishFailed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
}
