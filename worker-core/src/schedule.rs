//! Fixed-rate schedules: a grid of ticks, `anchor + k * period`, on tokio's clock.
//!
//! Tick times are computed from their index rather than by adding periods one after another, so
//! the grid never drifts however long the host runs.

use std::time::Duration;

use tokio::time::Instant;

use crate::worker::Missed;

/// The ticks of a fixed-rate schedule.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Grid {
    anchor: Instant,
    period: Duration,
}

/// What to do after tick `k` ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Next {
    /// The grid to go on with (a `delay` policy moves it).
    pub(crate) grid: Grid,
    /// The index of the next tick to run.
    pub(crate) index: u64,
    /// Ticks that came due while the run was going and will not run.
    pub(crate) overlapped: u64,
}

impl PartialEq for Grid {
    fn eq(&self, other: &Self) -> bool {
        self.anchor == other.anchor && self.period == other.period
    }
}
impl Eq for Grid {}

impl Grid {
    pub(crate) fn new(anchor: Instant, period: Duration) -> Self {
        debug_assert!(!period.is_zero(), "validated when the host is built");
        Self { anchor, period }
    }

    /// When tick `index` is due.
    pub(crate) fn at(&self, index: u64) -> Instant {
        let nanos = self.period.as_nanos().saturating_mul(u128::from(index));
        let offset = Duration::new(
            u64::try_from(nanos / 1_000_000_000).unwrap_or(u64::MAX),
            u32::try_from(nanos % 1_000_000_000).unwrap_or(0),
        );
        self.anchor + offset
    }

    /// The index of the last tick due at or before `now` (0 if none is due yet).
    pub(crate) fn last_due(&self, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(self.anchor).as_nanos();
        u64::try_from(elapsed / self.period.as_nanos()).unwrap_or(u64::MAX)
    }

    /// The index of the first tick due at or after `now`.
    pub(crate) fn first_at_or_after(&self, now: Instant) -> u64 {
        let index = self.last_due(now);
        if self.at(index) < now {
            index + 1
        } else {
            index
        }
    }

    /// Where the schedule goes on after tick `ran` ran and the run ended at `now`.
    pub(crate) fn after_run(self, policy: Missed, ran: u64, now: Instant) -> Next {
        let following = ran + 1;
        match policy {
            Missed::Delay if self.at(following) < now => Next {
                grid: Grid::new(now, self.period),
                index: 0,
                overlapped: 0,
            },
            Missed::Burst | Missed::Delay => Next {
                grid: self,
                index: following,
                overlapped: 0,
            },
            Missed::Skip => {
                let index = self.first_at_or_after(now).max(following);
                Next {
                    grid: self,
                    index,
                    overlapped: index - following,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid() -> (Instant, Grid) {
        let start = Instant::now();
        (start, Grid::new(start, Duration::from_secs(10)))
    }

    #[test]
    fn ticks_are_multiples_of_the_period() {
        let (start, grid) = grid();
        assert_eq!(grid.at(0), start);
        assert_eq!(grid.at(360), start + Duration::from_hours(1));
        assert_eq!(grid.last_due(start + Duration::from_secs(25)), 2);
        assert_eq!(grid.first_at_or_after(start + Duration::from_secs(25)), 3);
        assert_eq!(grid.first_at_or_after(start + Duration::from_secs(30)), 3);
    }

    #[test]
    fn skip_drops_ticks_that_came_due_during_the_run() {
        let (start, grid) = grid();
        let next = grid.after_run(Missed::Skip, 0, start + Duration::from_secs(25));
        assert_eq!((next.index, next.overlapped), (3, 2));
        // A run that ends exactly on the next tick overlaps nothing.
        let next = grid.after_run(Missed::Skip, 0, start + Duration::from_secs(10));
        assert_eq!((next.index, next.overlapped), (1, 0));
    }

    #[test]
    fn burst_keeps_every_tick_and_delay_moves_the_grid() {
        let (start, grid) = grid();
        let end = start + Duration::from_secs(25);
        let next = grid.after_run(Missed::Burst, 0, end);
        assert_eq!((next.index, next.overlapped, next.grid), (1, 0, grid));
        let next = grid.after_run(Missed::Delay, 0, end);
        assert_eq!((next.index, next.overlapped), (0, 0));
        assert_eq!(next.grid.at(0), end);
        assert_eq!(next.grid.at(1), end + Duration::from_secs(10));
    }
}
