//! One attempt of a queue worker's job. A job's retries do not wait in place, as a scheduled
//! run's do: the attempt ends, the job goes back to its queue to wait out its backoff, and the
//! slot takes the next job.

use std::time::{Duration, SystemTime};

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::observe::Outcome;
use crate::observe::status::Trigger;
use crate::queue::channel::Envelope;
use crate::queue::job::JobInfo;
use crate::run::{Next, Run, Runner, next_run_id};
use crate::worker::handler::Body;

/// How a job's attempt ended.
pub(crate) enum JobEnd {
    /// The job's run ended, with this error unless it succeeded: counted and recorded.
    Ended(Outcome, Option<String>),
    /// Retried after this delay; the attempt's error.
    Retry(Duration, Option<String>),
}

impl<B: Body> Runner<'_, B> {
    /// Makes the next attempt of `job`, starting `now`. The run (its id, when it started) is the job's from its
    /// first attempt to its last; an attempt that is dropped before it ends (the worker's stop
    /// budget ran out) ends the run as `cancelled`.
    pub(crate) async fn job(
        &self,
        job: &mut Envelope,
        now: Instant,
        token: Option<CancellationToken>,
    ) -> JobEnd {
        let (id, started) = *job.run.get_or_insert_with(|| (next_run_id(), now));
        if job.attempts > 0 {
            // Counted when the attempt starts, as a scheduled run's retries are.
            self.metrics.retried();
        }
        job.attempts += 1;
        let run = Run {
            id,
            trigger: Trigger::Queue,
            scheduled: job.enqueued,
            started,
            attempts: job.attempts,
        };
        let info = JobInfo {
            id: job.id,
            attempt: job.attempts,
            enqueued_at: self.system_time(job.enqueued),
            payload: job.payload.clone(),
            token: token.clone(),
        };
        let mut guard = Dropped {
            runner: self,
            run: Some(run),
            job: job.id,
        };
        let run = guard
            .run
            .as_ref()
            .unwrap_or_else(|| unreachable!("set above"));
        let (result, span) = self.attempt(run, Some(info)).await;
        let next = self.judge(run, result, &span, token.as_ref(), Some(job.id));
        let run = guard
            .run
            .take()
            .unwrap_or_else(|| unreachable!("set above"));
        match next {
            Next::Retry(delay, last) => JobEnd::Retry(delay, last.error()),
            Next::Done(outcome, last) => {
                let error = last.error();
                self.finish(&run, outcome, Instant::now(), error.clone(), Some(job.id));
                JobEnd::Ended(outcome, error)
            }
        }
    }

    /// `at` on the host's wall clock.
    pub(crate) fn system_time(&self, at: Instant) -> SystemTime {
        SystemTime::UNIX_EPOCH + self.clock.unix(at)
    }
}

/// Ends a job's run as `cancelled` when its attempt is dropped before it ends.
struct Dropped<'r, 'a, B: Body> {
    runner: &'r Runner<'a, B>,
    run: Option<Run>,
    job: u64,
}

impl<B: Body> Drop for Dropped<'_, '_, B> {
    fn drop(&mut self) {
        if let Some(run) = self.run.take() {
            self.runner.finish(
                &run,
                Outcome::Cancelled,
                Instant::now(),
                Some(
                    "aborted: still running when the stop budget or shutdown deadline ran out"
                        .to_owned(),
                ),
                Some(self.job),
            );
        }
    }
}
