//! What a queue shows: its status for `/workers` and the dashboard, and the samples of its depth
//! and throughput taken every [`SAMPLE_EVERY`](crate::queue::consume::SAMPLE_EVERY).

use std::sync::PoisonError;
use std::sync::atomic::Ordering;

use tokio::time::Instant;

use crate::queue::channel::{Channel, Reject};

/// The queue at one moment, for the dashboard's chart.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub(crate) struct Sample {
    /// Unix seconds.
    pub(crate) at: f64,
    /// Jobs waiting to start.
    pub(crate) depth: usize,
    /// Jobs finished so far.
    pub(crate) finished: u64,
}

/// Samples kept: ten minutes, one every [`SAMPLE_EVERY`](crate::queue::consume::SAMPLE_EVERY).
pub(crate) const SAMPLES: usize = 120;

impl Channel {
    /// The jobs waiting to start, and of those the ones in a retry backoff: buffered here, or
    /// for a durable queue in the database (as its backend last reported).
    pub(crate) fn waiting(&self) -> (usize, usize) {
        if self.durable.is_some() {
            let stats = self.metrics.stats();
            let count = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
            (
                count(stats.available + stats.scheduled + stats.retryable),
                count(stats.retryable),
            )
        } else {
            let depth = self.depth();
            (depth.ready + depth.delayed, depth.delayed)
        }
    }

    /// Records the depth and the jobs finished at `at` (Unix seconds).
    pub(crate) fn sample(&self, at: f64) {
        let sample = Sample {
            at,
            depth: self.waiting().0,
            finished: self.metrics.finished.load(Ordering::Relaxed),
        };
        let mut history = self.history.lock().unwrap_or_else(PoisonError::into_inner);
        if history.len() == SAMPLES {
            history.pop_front();
        }
        history.push_back(sample);
    }

    /// The samples kept, oldest first.
    pub(crate) fn history(&self) -> Vec<Sample> {
        let history = self.history.lock().unwrap_or_else(PoisonError::into_inner);
        history.iter().copied().collect()
    }
    /// The queue as `/workers` shows it, at `now` on tokio's clock (`unix`: the same instant in
    /// Unix seconds).
    pub(crate) fn status(&self, now: Instant, unix: f64) -> crate::observe::status::QueueStatus {
        let (waiting, in_backoff) = self.waiting();
        let history = self.history();
        let finished = self.metrics.finished.load(Ordering::Relaxed);
        // Over the last minute, or what the samples cover of it.
        let throughput = history
            .iter()
            .find(|s| unix - s.at <= 60.0 + 1e-6)
            .filter(|s| unix - s.at > 1e-6)
            .map_or(0.0, |s| {
                #[allow(clippy::cast_precision_loss, reason = "job counts far below 2^52")]
                let jobs = finished.saturating_sub(s.finished) as f64;
                jobs / (unix - s.at)
            });
        crate::observe::status::QueueStatus {
            name: self.name.to_string(),
            payload: self.payload,
            depth: waiting,
            in_backoff,
            in_flight: self.metrics.in_flight(),
            concurrency: self.concurrency,
            capacity: self.capacity,
            oldest_wait_seconds: self
                .oldest_ready()
                .map(|at| now.saturating_duration_since(at).as_secs_f64()),
            // A durable queue's jobs are enqueued in the database, which never refuses them.
            closed: self.durable.is_none() && self.is_closed(),
            enqueued: self.metrics.total_enqueued(),
            finished,
            dead: self.metrics.dead.load(Ordering::Relaxed),
            rejected: Reject::ALL
                .iter()
                .map(|&r| {
                    (
                        r.as_str(),
                        self.metrics.rejected[r as usize].load(Ordering::Relaxed),
                    )
                })
                .collect(),
            throughput_per_second: throughput,
            depth_history: history.iter().map(|s| (s.at, s.depth)).collect(),
            dead_jobs: match &self.durable {
                None => self.dead.records(),
                Some(_) => self
                    .metrics
                    .discarded
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .clone(),
            },
            states: self
                .durable
                .as_ref()
                .map(|_| self.metrics.stats().states().into_iter().collect()),
        }
    }
}
