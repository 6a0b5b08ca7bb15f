//! What operators do with durable jobs from `/workers` and the dashboard: the discarded jobs
//! with their errors, and retry, discard and cancel by id.

use std::fmt;
use std::time::SystemTime;

/// A discarded job of a durable queue, as its backend reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Discarded {
    /// The job's id.
    pub id: u64,
    /// Attempts made.
    pub attempts: u32,
    /// The last attempt's error.
    pub error: String,
    /// When it was discarded.
    pub at: SystemTime,
    /// The payload, as JSON (cut short when long).
    pub payload: String,
}

impl Discarded {
    /// A discarded job.
    #[must_use]
    pub fn new(id: u64, attempts: u32, error: String, at: SystemTime, payload: String) -> Self {
        Self {
            id,
            attempts,
            error,
            at,
            payload,
        }
    }
}

/// An admin action on one durable job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum JobAction {
    /// A discarded or cancelled job runs again, as a new job with the same payload and a full
    /// set of attempts; the old one is deleted.
    Retry,
    /// A waiting job (available, scheduled or retryable) is discarded without running.
    Discard,
    /// A waiting job is cancelled; a running one is asked to stop and ends cancelled.
    Cancel,
}

impl JobAction {
    /// Every action, in the order the routes list them.
    pub const ALL: [JobAction; 3] = [Self::Retry, Self::Discard, Self::Cancel];

    /// The action's name in `POST /workers/{name}/jobs/{id}/{action}`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Retry => "retry",
            Self::Discard => "discard",
            Self::Cancel => "cancel",
        }
    }
}

impl fmt::Display for JobAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an admin action on a durable job did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum JobActed {
    /// Retried as the new job `id`.
    Retried {
        /// The new job's id.
        id: u64,
    },
    /// Discarded without running.
    Discarded,
    /// Cancelled before it ran.
    Cancelled,
    /// It is running: its consumer was asked to stop it.
    CancelRequested,
    /// The queue has no such job.
    NotFound,
    /// The job is in a state the action does not apply to (its state is named).
    Refused(String),
}
