//! Why a trigger did not produce a run: [`SkipReason`], the `reason` label of
//! `worker_runs_skipped_total`.

/// Why a trigger did not produce a run; the `reason` label of `worker_runs_skipped_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
#[non_exhaustive]
pub enum SkipReason {
    /// The tick came due while the previous run was still going.
    Overlap,
    /// The host woke up too late for the tick and a later one was already due.
    Missed,
    /// The worker's circuit breaker was open.
    CircuitOpen,
    /// The worker was waiting out its restart backoff after a panic.
    Restarting,
    /// The worker was paused by an admin action.
    Paused,
    /// The host was stopping; a trigger kept by `overlap = queue` is dropped.
    ShuttingDown,
    /// A singleton's tick could not be claimed: another holder of the lease ran it already,
    /// the lease was lost, or the database did not answer.
    NotClaimed,
}

impl SkipReason {
    /// Every reason, in label order.
    pub const ALL: [SkipReason; 7] = [
        Self::Overlap,
        Self::Missed,
        Self::CircuitOpen,
        Self::Restarting,
        Self::Paused,
        Self::ShuttingDown,
        Self::NotClaimed,
    ];

    /// The `reason` label value.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Overlap => "overlap",
            Self::Missed => "missed",
            Self::CircuitOpen => "circuit_open",
            Self::Restarting => "restarting",
            Self::Paused => "paused",
            Self::ShuttingDown => "shutting_down",
            Self::NotClaimed => "not_claimed",
        }
    }
}
