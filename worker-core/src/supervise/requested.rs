//! [`Requested`]: what a run-now request came to.

use crate::observe::SkipReason;

/// What a run-now request ([`HostHandle::run_now`](crate::HostHandle::run_now)) came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Requested {
    /// A run started at once, with this id (as in its spans, its record and `Ctx::run_id`).
    Started {
        /// The run's id.
        run_id: u64,
    },
    /// The worker is running and its policy is `overlap = queue`: the run starts as soon as
    /// the current one ends.
    Queued,
    /// No run: the worker's runs are at their overlap limit (`overlap`), or the worker ended
    /// before it could start one: the host stopped, or the worker failed or is disabled
    /// (`shutting_down`). Counted in `worker_runs_skipped_total` while the worker runs.
    Skipped(SkipReason),
}
