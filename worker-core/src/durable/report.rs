//! What a durable consumer tells its backend besides claims: failed attempts, releases,
//! completions in batches, lease renewals, maintenance passes and the queue's counts; and what
//! it does when the backend says an attempt was stale.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::PoisonError;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::durable::consume::{COMPLETE_BATCH, Consumer};
use crate::durable::{Attempt, Backend};
use crate::queue::DeadJobRecord;
use crate::queue::channel::Channel;
use crate::worker::handler::Body;

impl<B: Body> Consumer<B> {
    /// Reports a failed attempt; returns whether the backend took it (it was not stale).
    pub(super) async fn fail(
        &self,
        attempt: Attempt,
        retry_in: Option<Duration>,
        error: String,
    ) -> bool {
        match self.durable.backend.fail(attempt, retry_in, error).await {
            Ok(true) => true,
            Ok(false) => {
                self.stale(attempt);
                false
            }
            Err(err) => {
                self.channel.metrics.unrecorded.fetch_add(1, Relaxed);
                tracing::warn!(
                    worker = %self.env.name,
                    job_id = attempt.id,
                    error = %crate::error::Chain(&*err),
                    "could not record a failed attempt; the job runs again when its lease expires"
                );
                false
            }
        }
    }

    pub(super) async fn release(&self, attempts: Vec<(Attempt, bool)>) {
        if attempts.is_empty() {
            return;
        }
        let count = attempts.len() as u64;
        match self.durable.backend.release(attempts).await {
            Ok(released) => {
                self.channel.metrics.released.fetch_add(released, Relaxed);
            }
            Err(err) => {
                self.channel.metrics.unrecorded.fetch_add(count, Relaxed);
                tracing::warn!(
                    worker = %self.env.name,
                    jobs = count,
                    error = %crate::error::Chain(&*err),
                    "could not release jobs at shutdown; they run again when their leases expire"
                );
            }
        }
    }

    fn stale(&self, attempt: Attempt) {
        self.channel.metrics.stale.fetch_add(1, Relaxed);
        tracing::warn!(
            worker = %self.env.name,
            job_id = attempt.id,
            attempt = attempt.attempt,
            "stale attempt: its lease expired and the job was claimed again, so its result was not recorded"
        );
    }

    /// Renews the leases of the jobs claimed more than a third of a lease ago.
    pub(super) async fn heartbeat(&self) {
        let lease = self.spec.lease();
        let now = Instant::now();
        let due: Vec<Attempt> = self
            .in_flight()
            .iter()
            .filter(|(_, job)| now.saturating_duration_since(job.renewed) >= lease / 3)
            .map(|(&id, job)| Attempt {
                id,
                attempt: job.attempt,
            })
            .collect();
        if due.is_empty() {
            return;
        }
        match self.durable.backend.heartbeat(due.clone(), lease).await {
            Ok(renewed) => {
                let mut in_flight = self.in_flight();
                let (mut cancelled, mut lost) = (0, 0);
                for &(id, cancel) in &renewed {
                    if let Some(job) = in_flight.get_mut(&id) {
                        job.renewed = now;
                        if cancel && !job.token.is_cancelled() {
                            job.token.cancel();
                            cancelled += 1;
                        }
                    }
                }
                // Not renewed and still running here: lost (a job that ended meanwhile is
                // not). Its run is cancelled: whatever it does now is stale.
                let renewed: HashSet<u64> = renewed.iter().map(|&(id, _)| id).collect();
                for attempt in &due {
                    if let Some(job) = in_flight.get(&attempt.id)
                        && job.attempt == attempt.attempt
                        && !renewed.contains(&attempt.id)
                    {
                        job.token.cancel();
                        lost += 1;
                    }
                }
                drop(in_flight);
                self.channel.metrics.lost.fetch_add(lost, Relaxed);
                if cancelled > 0 {
                    tracing::info!(
                        worker = %self.env.name,
                        jobs = cancelled,
                        "cancellation requested: these jobs' runs are cancelled"
                    );
                }
                if lost > 0 {
                    tracing::warn!(
                        worker = %self.env.name,
                        jobs = lost,
                        "leases lost: these jobs' runs are cancelled, may run again elsewhere, \
                         and their results are stale"
                    );
                }
            }
            Err(err) => tracing::warn!(
                worker = %self.env.name,
                error = %crate::error::Chain(&*err),
                "could not renew leases"
            ),
        }
    }

    pub(super) async fn maintain(&self) {
        match self.durable.backend.maintain().await {
            Ok(done) => {
                self.channel
                    .metrics
                    .rescued
                    .fetch_add(done.rescued, Relaxed);
            }
            Err(err) => tracing::warn!(
                worker = %self.env.name,
                error = %crate::error::Chain(&*err),
                "queue maintenance failed"
            ),
        }
    }

    /// Keeps what the backend says of the queue, for `/metrics`.
    pub(super) async fn stats(&self) {
        refresh(&*self.durable.backend, &self.channel, &self.env.name).await;
        self.channel.sample(self.clock.unix_seconds(Instant::now()));
    }
}

/// Discarded jobs `/workers` shows for a durable queue.
const DISCARDED_SHOWN: u32 = 20;

/// Reads a durable queue's counts by state, the database's hazards and its latest discarded
/// jobs from the backend, for `/metrics`, `/workers` and the dashboard.
pub(crate) async fn refresh(backend: &dyn Backend, channel: &Channel, worker: &str) {
    match backend.discarded(&channel.name, DISCARDED_SHOWN).await {
        Ok(jobs) => {
            let records = jobs
                .into_iter()
                .rev()
                .map(|job| DeadJobRecord {
                    id: job.id,
                    attempts: job.attempts,
                    error: job.error,
                    at: job
                        .at
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap_or_default()
                        .as_secs_f64(),
                    payload: Some(job.payload),
                })
                .collect();
            *channel
                .metrics
                .discarded
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = records;
        }
        Err(err) => tracing::warn!(
            worker,
            error = %crate::error::Chain(&*err),
            "could not read the queue's discarded jobs"
        ),
    }
    {
        match backend.stats(&channel.name).await {
            // The wait it reports is as of its reply: counted back from now.
            Ok(Some(stats)) => channel.metrics.set_stats(stats, Instant::now()),
            Ok(None) => {}
            Err(err) => tracing::warn!(
                worker,
                error = %crate::error::Chain(&*err),
                "could not read the queue's counts"
            ),
        }
    }
}

/// Sends the completions in batches until every sender is gone.
pub(super) async fn complete(
    backend: Arc<dyn Backend>,
    channel: Arc<Channel>,
    worker: Arc<str>,
    mut done: mpsc::UnboundedReceiver<Attempt>,
) {
    let mut batch = Vec::with_capacity(COMPLETE_BATCH);
    while done.recv_many(&mut batch, COMPLETE_BATCH).await > 0 {
        let sent: Vec<Attempt> = std::mem::take(&mut batch);
        match backend.complete(sent.clone()).await {
            Ok(completed) => {
                let stale = sent.len().saturating_sub(completed.len()) as u64;
                if stale > 0 {
                    channel.metrics.stale.fetch_add(stale, Relaxed);
                    tracing::warn!(
                        worker = %worker,
                        jobs = stale,
                        "stale completions: these jobs' leases expired and they were claimed again"
                    );
                }
            }
            Err(err) => {
                channel
                    .metrics
                    .unrecorded
                    .fetch_add(sent.len() as u64, Relaxed);
                tracing::warn!(
                    worker = %worker,
                    jobs = sent.len(),
                    error = %crate::error::Chain(&*err),
                    "could not record completions; these jobs run again when their leases expire"
                );
            }
        }
    }
}
