//! How a run ended: [`Outcome`], the `result` label of the run metrics.

/// How a run ended; the `result` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
#[repr(u8)]
pub enum Outcome {
    /// The body returned `Ok` (or `()`).
    Success,
    /// Every attempt returned an error, or the last one did and no retry was left.
    Failure,
    /// The body panicked; panics are not retried.
    Panic,
    /// The last attempt hit the worker's `timeout`.
    Timeout,
    /// The host asked the run to stop (shutdown) before it succeeded.
    Cancelled,
}

impl Outcome {
    /// Every outcome, in label order.
    pub const ALL: [Outcome; 5] = [
        Self::Success,
        Self::Failure,
        Self::Panic,
        Self::Timeout,
        Self::Cancelled,
    ];

    /// The `result` label value.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
            Self::Panic => "panic",
            Self::Timeout => "timeout",
            Self::Cancelled => "cancelled",
        }
    }
}
