//! Dead jobs: jobs whose retries ran out, that failed permanently, or whose attempt panicked
//! with `on_panic = discard`. The last [`DEAD_KEPT`] of each queue are kept for `/workers`, the
//! dashboard and re-enqueueing.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::queue::channel::Payload;

/// Dead jobs a queue keeps.
pub(crate) const DEAD_KEPT: usize = 50;

/// A dead job, as the `on_dead` hook receives it: its payload back, and why it died.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DeadJob<T> {
    /// The job's id within its queue.
    pub id: u64,
    /// Attempts made.
    pub attempts: u32,
    /// The last attempt's error, panic message or timeout.
    pub error: String,
    /// When it went dead.
    pub at: SystemTime,
    /// The payload.
    pub payload: T,
}

/// A dead job as `/workers` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct DeadJobRecord {
    /// The job's id within its queue.
    pub id: u64,
    /// Attempts made.
    pub attempts: u32,
    /// The last attempt's error, panic message or timeout.
    pub error: String,
    /// When it went dead (Unix seconds).
    pub at: f64,
    /// The payload's `Debug` text (or what `describe_jobs` made of it); `None` when the
    /// payload type has no `Debug` and the worker set no `describe_jobs`.
    pub payload: Option<String>,
}

#[derive(Debug)]
struct Kept {
    record: DeadJobRecord,
    payload: Payload,
}

/// The last dead jobs of one queue.
#[derive(Debug, Default)]
pub(crate) struct DeadList {
    kept: Mutex<VecDeque<Kept>>,
    /// When the last job went dead, in Unix nanoseconds; 0 for never.
    last: AtomicU64,
}

impl DeadList {
    /// Keeps a dead job, forgetting the oldest beyond [`DEAD_KEPT`].
    pub(crate) fn push(&self, record: DeadJobRecord, payload: Payload, unix_nanos: u64) {
        let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        if kept.len() == DEAD_KEPT {
            kept.pop_front();
        }
        kept.push_back(Kept { record, payload });
        drop(kept);
        self.last.store(unix_nanos, Ordering::Relaxed);
    }

    /// The dead jobs kept, oldest first.
    pub(crate) fn records(&self) -> Vec<DeadJobRecord> {
        let kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        kept.iter().map(|k| k.record.clone()).collect()
    }

    /// Takes the dead job `id` out of the list, for re-enqueueing it.
    pub(crate) fn take(&self, id: u64) -> Option<(DeadJobRecord, Payload)> {
        let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        let at = kept.iter().position(|k| k.record.id == id)?;
        kept.remove(at).map(|k| (k.record, k.payload))
    }

    /// Puts a job taken with [`take`](Self::take) back, when it could not be re-enqueued.
    pub(crate) fn restore(&self, record: DeadJobRecord, payload: Payload) {
        let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        let at = kept
            .iter()
            .position(|k| k.record.id > record.id)
            .unwrap_or(kept.len());
        kept.insert(at, Kept { record, payload });
    }

    /// When the last job went dead (Unix seconds).
    pub(crate) fn last(&self) -> Option<f64> {
        let nanos = self.last.load(Ordering::Relaxed);
        (nanos > 0).then(|| {
            (UNIX_EPOCH + Duration::from_nanos(nanos))
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs_f64()
        })
    }
}
