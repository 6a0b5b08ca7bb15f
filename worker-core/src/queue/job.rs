//! [`Job<T>`]: the job a queue worker's attempt runs, as an extractor.

use std::any::{TypeId, type_name};
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;
use std::time::SystemTime;

use crate::error::BoxError;
use crate::queue::channel::Payload;
use crate::worker::extract::FromScope;
use crate::worker::scope::Scope;

/// What an attempt's scope knows of its job.
#[derive(Debug, Clone)]
pub(crate) struct JobInfo {
    pub(crate) id: u64,
    pub(crate) attempt: u32,
    pub(crate) enqueued_at: SystemTime,
    pub(crate) payload: Payload,
    /// A durable job's own token; `None` for an in-process job.
    pub(crate) token: Option<tokio_util::sync::CancellationToken>,
}

/// The job an attempt of a queue worker runs: its payload (`Job<T>` dereferences to `T`), its
/// id, which attempt this is, and when it was enqueued.
///
/// A queue worker (`#[worker(queue = "..")]`) takes exactly one `Job<T>` argument, where `T`
/// is the payload its producers send; a worker on a schedule takes none. Both are checked:
/// by `#[worker]` at compile time, and for [`Worker::builder`](crate::Worker::builder) when the
/// host is built.
///
/// Each attempt gets the same payload: it is shared, not copied, until
/// [`into_inner`](Self::into_inner) takes it by value.
pub struct Job<T> {
    id: u64,
    attempt: u32,
    enqueued_at: SystemTime,
    payload: Arc<T>,
}

impl<T> Job<T> {
    /// A job outside any host, for calling a worker function directly in a unit test: id 1,
    /// attempt 1, enqueued now.
    pub fn new(payload: T) -> Self {
        Self {
            id: 1,
            attempt: 1,
            enqueued_at: SystemTime::now(),
            payload: Arc::new(payload),
        }
    }

    /// The job's id, unique within its queue, in the order jobs were accepted.
    #[must_use]
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Which attempt this is: 1 for the first, 2 for the first retry, ...
    #[must_use]
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// When the job was accepted by its queue, on the host's clock.
    #[must_use]
    pub fn enqueued_at(&self) -> SystemTime {
        self.enqueued_at
    }

    /// The payload, by value: cloned when the queue still holds it for a retry.
    #[must_use]
    pub fn into_inner(self) -> T
    where
        T: Clone,
    {
        Arc::unwrap_or_clone(self.payload)
    }
}

impl<T> Deref for Job<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.payload
    }
}

impl<T: fmt::Debug> fmt::Debug for Job<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Job")
            .field("id", &self.id)
            .field("attempt", &self.attempt)
            .field("payload", &self.payload)
            .finish_non_exhaustive()
    }
}

impl<T: Send + Sync + 'static> FromScope for Job<T> {
    async fn from_scope(scope: &Scope) -> Result<Self, BoxError> {
        let Some(job) = scope.job() else {
            return Err(format!(
                "`Job<{}>` outside a queue worker: only a worker with `queue = \"..\"` has a job",
                type_name::<T>()
            )
            .into());
        };
        let payload = job.payload.clone().downcast::<T>().map_err(|_| {
            format!(
                "`Job<{}>` on a queue of another payload type",
                type_name::<T>()
            )
        })?;
        Ok(Self {
            id: job.id,
            attempt: job.attempt,
            enqueued_at: job.enqueued_at,
            payload,
        })
    }

    fn __job_payload() -> Option<(TypeId, &'static str)> {
        Some((TypeId::of::<T>(), type_name::<T>()))
    }
}
