//! Queue consumers: work that arrives rather than work on a clock.
//!
//! A worker declared with `queue = "name"` consumes the jobs producers send to the queue of that
//! name through a [`Queue<T>`] (from [`HostHandle::queue`](crate::HostHandle::queue), or as an
//! extractor in another worker); each job's attempts run under the same machinery as a
//! scheduled run (span, panic isolation, timeout, retries with backoff, cancellation, metrics),
//! up to `concurrency` jobs at once. See [`Job<T>`] for the consumer's side.

pub(crate) mod channel;
pub(crate) mod consume;
pub(crate) mod dead;
pub(crate) mod hooks;
pub(crate) mod job;
pub(crate) mod metrics;
pub(crate) mod status;

use std::any::TypeId;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::error::BoxError;
use crate::queue::channel::{Channel, Payload, Reject};
use crate::worker::extract::FromScope;
use crate::worker::registry::Registry;
use crate::worker::scope::Scope;

pub use self::dead::{DeadJob, DeadJobRecord};
pub use self::job::Job;
pub use self::metrics::QUEUE_WAIT_BUCKETS;

/// What a queue worker does with a job whose attempt panicked (`on_panic`).
///
/// A scheduled worker never retries a panic (its next trigger is the retry, after
/// `restart_backoff`); a queue worker's job has no next trigger, so by default a panic is
/// retried like a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OnPanic {
    /// Retried like a failed attempt, within `retry` (the default).
    #[default]
    Retry,
    /// The job is dead at once.
    Discard,
}

impl OnPanic {
    /// The option's name, as the key is written.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Retry => "retry",
            Self::Discard => "discard",
        }
    }
}

/// A send refused; the value comes back with it.
#[non_exhaustive]
pub enum SendError<T> {
    /// The queue holds `capacity` jobs waiting to start ([`Queue::try_send`]), or still did
    /// when [`Queue::send_timeout`]'s timeout passed.
    Full(T),
    /// The host is stopping (or stopped), or the queue's worker was removed from it: the queue
    /// takes no more jobs.
    Closed(T),
}

impl<T> SendError<T> {
    /// The value that was not sent.
    pub fn into_inner(self) -> T {
        match self {
            Self::Full(value) | Self::Closed(value) => value,
        }
    }

    /// Whether the queue was full.
    pub fn is_full(&self) -> bool {
        matches!(self, Self::Full(_))
    }

    /// Whether the queue was closed.
    pub fn is_closed(&self) -> bool {
        matches!(self, Self::Closed(_))
    }
}

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full(_) => f.write_str("Full(..)"),
            Self::Closed(_) => f.write_str("Closed(..)"),
        }
    }
}

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full(_) => f.write_str("the queue is full"),
            Self::Closed(_) => {
                f.write_str("the queue is closed: the host is stopping, or its worker was removed")
            }
        }
    }
}

impl<T> std::error::Error for SendError<T> {}

/// The producer's end of a queue whose jobs carry a `T`; cloning is cheap.
///
/// Get one from [`HostHandle::queue`](crate::HostHandle::queue), or take it as a worker
/// argument (one worker feeding another). Sends wait while the queue is full (back-pressure)
/// and are refused once the host stops; a refused value always comes back in the
/// [`SendError`].
pub struct Queue<T> {
    channel: Arc<Channel>,
    _payload: PhantomData<fn(T)>,
}

impl<T> Clone for Queue<T> {
    fn clone(&self) -> Self {
        Self {
            channel: self.channel.clone(),
            _payload: PhantomData,
        }
    }
}

impl<T> fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("name", &self.channel.name)
            .field("payload", &self.channel.payload)
            .field("capacity", &self.channel.capacity)
            .finish_non_exhaustive()
    }
}

fn typed<T: Send + Sync + 'static>(payload: Payload) -> T {
    match payload.downcast::<T>() {
        Ok(value) => Arc::into_inner(value)
            .unwrap_or_else(|| unreachable!("a refused payload is not shared")),
        Err(_) => unreachable!("a refused payload has the queue's type"),
    }
}

impl<T: Send + Sync + 'static> Queue<T> {
    pub(crate) fn new(channel: Arc<Channel>) -> Self {
        debug_assert_eq!(channel.payload_type, TypeId::of::<T>());
        Self {
            channel,
            _payload: PhantomData,
        }
    }

    async fn push(&self, value: T, deadline: Option<Instant>) -> Result<u64, SendError<T>> {
        self.channel
            .send(Arc::new(value), deadline)
            .await
            .map_err(|(payload, reason)| match reason {
                Reject::Full => SendError::Full(typed(payload)),
                Reject::Closed => SendError::Closed(typed(payload)),
            })
    }

    /// Sends `value`, waiting while the queue is full; returns the job's id.
    ///
    /// Cancellation safe: dropped while it waits, nothing was sent (and the value is dropped).
    ///
    /// # Errors
    ///
    /// [`SendError::Closed`] once the host stops, with the value.
    pub async fn send(&self, value: T) -> Result<u64, SendError<T>> {
        self.push(value, None).await
    }

    /// Sends `value` if the queue has room now; returns the job's id.
    ///
    /// # Errors
    ///
    /// [`SendError::Full`] when it has none, [`SendError::Closed`] once the host stops; both
    /// with the value.
    pub fn try_send(&self, value: T) -> Result<u64, SendError<T>> {
        let result = futures_util::FutureExt::now_or_never(
            self.channel.send(Arc::new(value), Some(Instant::now())),
        );
        match result {
            Some(Ok(id)) => Ok(id),
            Some(Err((payload, Reject::Full))) => Err(SendError::Full(typed(payload))),
            Some(Err((payload, Reject::Closed))) => Err(SendError::Closed(typed(payload))),
            None => unreachable!("a send with a deadline of now never waits"),
        }
    }

    /// Sends `value`, waiting at most `timeout` for room; returns the job's id.
    ///
    /// # Errors
    ///
    /// [`SendError::Full`] when the queue was still full after `timeout`,
    /// [`SendError::Closed`] once the host stops; both with the value.
    pub async fn send_timeout(&self, value: T, timeout: Duration) -> Result<u64, SendError<T>> {
        let deadline = Instant::now().checked_add(timeout);
        match deadline {
            Some(deadline) => self.push(value, Some(deadline)).await,
            None => self.push(value, None).await,
        }
    }

    /// The queue's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.channel.name
    }

    /// Jobs waiting to start now: buffered, or waiting out a retry backoff.
    #[must_use]
    pub fn len(&self) -> usize {
        self.channel.len()
    }

    /// Whether no job is waiting to start.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many jobs may wait before sends wait (`capacity`).
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.channel.capacity
    }

    /// Whether the queue refuses sends: the host is stopping or stopped.
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.channel.is_closed()
    }
}

/// The queue whose jobs carry a `T`: one worker feeding another. The host must have exactly one
/// queue of `T`; with several, register the one you mean as state, from
/// [`HostHandle::queue`](crate::HostHandle::queue).
impl<T: Send + Sync + 'static> FromScope for Queue<T> {
    async fn from_scope(scope: &Scope) -> Result<Self, BoxError> {
        scope
            .ctx()
            .registry()
            .queue_of::<T>()
            .map(Queue::new)
            .map_err(Into::into)
    }

    fn check(registry: &Registry) -> Result<(), String> {
        registry.queue_of::<T>().map(drop)
    }
}
