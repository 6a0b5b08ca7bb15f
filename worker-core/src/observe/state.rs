//! What a worker is doing: [`WorkerState`], the `state` label of `worker_state`.

use std::fmt;

/// What a worker is doing; the `state` label of `worker_state`.
///
/// `stale` is never stored: it is how an `idle`, `running` or `backoff` worker shows when it
/// has not succeeded within its `stale_after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
#[non_exhaustive]
pub enum WorkerState {
    /// Built, not started yet.
    Starting,
    /// Waiting for its next trigger.
    Idle,
    /// A run is in progress.
    Running,
    /// A run is waiting before its next attempt.
    Backoff,
    /// Paused by an admin action: triggers are skipped until it is resumed.
    Paused,
    /// No success within `stale_after`.
    Stale,
    /// Stopped by its escalation policy after too many restarts.
    Failed,
    /// Stopped with the host, or disabled by configuration.
    Stopped,
    /// A singleton whose lease another replica holds: that replica runs its ticks.
    Follower,
}

impl WorkerState {
    /// Every state, in label order.
    pub const ALL: [WorkerState; 9] = [
        Self::Starting,
        Self::Idle,
        Self::Running,
        Self::Backoff,
        Self::Paused,
        Self::Stale,
        Self::Failed,
        Self::Stopped,
        Self::Follower,
    ];

    /// The `state` label value.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Idle => "idle",
            Self::Running => "running",
            Self::Backoff => "backoff",
            Self::Paused => "paused",
            Self::Stale => "stale",
            Self::Failed => "failed",
            Self::Stopped => "stopped",
            Self::Follower => "follower",
        }
    }

    pub(crate) fn from_index(index: u8) -> Self {
        Self::ALL
            .get(usize::from(index))
            .copied()
            .unwrap_or(Self::Starting)
    }
}

impl fmt::Display for WorkerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
