//! Fixed-rate schedules: a grid of ticks, `anchor + k * period`, on tokio's clock.
//!
//! Tick times are computed from their index rather than by adding periods one after another, so
//! the grid never drifts however long the host runs.

pub(crate) mod clock;
#[cfg(feature = "cron")]
pub mod cron;
mod shared;

use std::time::Duration;

use tokio::time::Instant;

use crate::schedule::clock::{Clock, later, saturating_nanos};
#[cfg(feature = "cron")]
use crate::schedule::cron::CronSchedule;
use crate::worker::spec::Schedule;

/// What a schedule does with ticks that could not run on time (`missed`): the host woke up too
/// late (the process was suspended or starved), or, with `burst` and `delay`, the worker was
/// still running. With the default `skip`, ticks that come due during a run are the business of
/// [`Overlap`].
///
/// Whatever the policy, every tick is either a run or a skip counted in
/// `worker_runs_skipped_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Missed {
    /// Only the latest late tick runs; the earlier ones are skipped (reason `missed`) and the
    /// schedule stays on its grid. The default, as .NET's `PeriodicTimer`.
    #[default]
    Skip,
    /// Every tick runs: a tick that comes due while the worker has no free run slot waits for
    /// one (instead of going through [`Overlap`]), and late ticks run back to back until the
    /// schedule has caught up with its grid. Nothing is skipped.
    Burst,
    /// A tick that comes due while the worker has no free run slot waits for one; a late tick
    /// runs at once and an `every` grid restarts from that run, so runs stay at least one period
    /// apart and nothing is skipped: the instants the stall passed over are no longer ticks of
    /// the new grid, and are not counted. For `cron`, the latest late fire runs, the others are
    /// absorbed.
    Delay,
}

impl Missed {
    /// The name used in configuration and in the `#[worker(missed = ..)]` key.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Skip => "skip",
            Self::Burst => "burst",
            Self::Delay => "delay",
        }
    }
}

/// What a trigger does when the worker's previous run is still going (`overlap`).
///
/// Skipped triggers are counted in `worker_runs_skipped_total{reason="overlap"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Overlap {
    /// The trigger is skipped: never two runs at once. The default.
    #[default]
    Skip,
    /// One trigger is kept and runs as soon as the current run ends; further ones are skipped.
    Queue,
    /// Up to `n` runs at once; a trigger beyond that is skipped.
    Allow(u32),
}

impl Overlap {
    /// How many runs may be in progress at once.
    #[must_use]
    pub fn limit(self) -> usize {
        match self {
            Self::Skip | Self::Queue => 1,
            Self::Allow(n) => usize::try_from(n).unwrap_or(usize::MAX),
        }
    }
}

impl std::fmt::Display for Overlap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Skip => f.write_str("skip"),
            Self::Queue => f.write_str("queue"),
            Self::Allow(n) => write!(f, "allow({n})"),
        }
    }
}

/// The ticks of a fixed-rate schedule.
///
/// Offsets are computed in `u64` nanoseconds (about 584 years), which keeps 128-bit divisions,
/// which cost tens of cycles each, off the path every tick takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Grid {
    anchor: Instant,
    /// The period in nanoseconds, at least 1.
    period: u64,
}

impl Grid {
    pub(crate) fn new(anchor: Instant, period: Duration) -> Self {
        debug_assert!(!period.is_zero(), "validated when the host is built");
        Self {
            anchor,
            period: saturating_nanos(period).max(1),
        }
    }

    /// When tick `index` is due.
    pub(crate) fn at(&self, index: u64) -> Instant {
        later(
            self.anchor,
            Duration::from_nanos(self.period.saturating_mul(index)),
        )
    }

    /// The index of the last tick due at or before `now` (0 if none is due yet).
    pub(crate) fn last_due(&self, now: Instant) -> u64 {
        saturating_nanos(now.saturating_duration_since(self.anchor)) / self.period
    }

    fn period(&self) -> Duration {
        Duration::from_nanos(self.period)
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
    }
}

/// The ticks due when the ticker was woken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fired {
    /// When the tick that runs was due.
    pub(crate) scheduled: Instant,
    /// Late ticks dropped by `skip` (reason `missed`).
    pub(crate) missed: u64,
}

/// Late cron fires counted one by one stop being counted past this many.
#[cfg(feature = "cron")]
pub(crate) const MAX_COUNTED_FIRES: u64 = 100_000;

/// The sequence of due times of one trigger.
#[derive(Debug)]
pub(crate) enum Ticker {
    Every {
        grid: Grid,
        /// The next tick, and when it is due (`grid.at(index)`, kept: every wake-up asks).
        index: u64,
        due: Instant,
    },
    FixedDelay {
        delay: Duration,
        next: Option<Instant>,
    },
    #[cfg(feature = "cron")]
    Cron {
        cron: Box<CronSchedule>,
        clock: Clock,
        next: Option<Instant>,
    },
    Once {
        at: Option<Instant>,
    },
}

impl Ticker {
    /// The ticker of `trigger` for a host started at `started`, first due after `after`.
    #[cfg_attr(
        not(feature = "cron"),
        allow(unused_variables, reason = "only a cron schedule reads the wall clock")
    )]
    pub(crate) fn new(trigger: &Schedule, started: Instant, after: Duration, clock: Clock) -> Self {
        let first = later(started, after);
        match trigger {
            Schedule::Every(period) => Self::Every {
                grid: Grid::new(first, *period),
                index: 0,
                due: first,
            },
            Schedule::FixedDelay(delay) => Self::FixedDelay {
                delay: *delay,
                next: Some(first),
            },
            #[cfg(feature = "cron")]
            Schedule::Cron(cron) => {
                // The first fire at or after `first`.
                let from = first.checked_sub(Duration::from_nanos(1)).unwrap_or(first);
                let next = cron
                    .next_after(clock.system_time(from))
                    .map(|at| clock.instant(at));
                Self::Cron {
                    cron: cron.clone(),
                    clock,
                    next,
                }
            }
            Schedule::Once => Self::Once { at: Some(first) },
            // A queue worker's loop has no ticker; it never fires.
            Schedule::Queue(_) => Self::Once { at: None },
        }
    }

    /// When the next tick is due; `None` when no tick will come (or, for `fixed_delay`, until
    /// the run in progress ends).
    pub(crate) fn due(&self) -> Option<Instant> {
        match self {
            Self::Every { due, .. } => Some(*due),
            Self::FixedDelay { next, .. } => *next,
            #[cfg(feature = "cron")]
            Self::Cron { next, .. } => *next,
            Self::Once { at } => *at,
        }
    }

    /// Takes the ticks due at `now` (`now >= due()`), applying the missed-tick policy, and moves
    /// on to the next one.
    pub(crate) fn fire(&mut self, now: Instant, missed: Missed) -> Option<Fired> {
        let due = self.due()?;
        let fired = match self {
            Self::Every { grid, index, due } => {
                let scheduled = *due;
                let next = grid.at(*index + 1);
                if now < next {
                    // On time, as almost every tick is: no division.
                    *index += 1;
                    *due = next;
                    return Some(Fired {
                        scheduled,
                        missed: 0,
                    });
                }
                let last = grid.last_due(now).max(*index);
                let late = last - *index;
                let fired = match missed {
                    Missed::Skip => {
                        *index = last + 1;
                        Fired {
                            scheduled: grid.at(last),
                            missed: late,
                        }
                    }
                    // One late tick at a time; the loop fires the next when a run slot is free.
                    Missed::Burst => {
                        *index += 1;
                        Fired {
                            scheduled,
                            missed: 0,
                        }
                    }
                    Missed::Delay => {
                        *grid = Grid::new(now, grid.period());
                        *index = 1;
                        Fired {
                            scheduled,
                            missed: 0,
                        }
                    }
                };
                *due = grid.at(*index);
                fired
            }
            Self::FixedDelay { next, .. } => {
                *next = None;
                Fired {
                    scheduled: due,
                    missed: 0,
                }
            }
            Self::Once { at } => {
                *at = None;
                Fired {
                    scheduled: due,
                    missed: 0,
                }
            }
            #[cfg(feature = "cron")]
            Self::Cron { cron, clock, next } if missed == Missed::Burst => {
                *next = cron
                    .next_after(clock.system_time(due))
                    .map(|at| clock.instant(at));
                Fired {
                    scheduled: due,
                    missed: 0,
                }
            }
            #[cfg(feature = "cron")]
            Self::Cron { cron, clock, next } => {
                let mut latest = due;
                let mut late = 0;
                *next = None;
                while let Some(at) = cron.next_after(clock.system_time(latest)) {
                    let at = clock.instant(at);
                    if at > now || late >= MAX_COUNTED_FIRES {
                        *next = Some(at);
                        break;
                    }
                    latest = at;
                    late += 1;
                }
                Fired {
                    scheduled: latest,
                    missed: if missed == Missed::Skip { late } else { 0 },
                }
            }
        };
        Some(fired)
    }

    /// A run ended at `now`: `fixed_delay` schedules its next tick from here.
    pub(crate) fn run_ended(&mut self, now: Instant) {
        if let Self::FixedDelay { delay, next } = self {
            *next = Some(later(now, *delay));
        }
    }
}
