//! A singleton's schedule: ticks every replica agrees on, and the rewind a replica makes when
//! it takes the lease over, to the instants nobody ran.

use std::time::{Duration, UNIX_EPOCH};

use tokio::time::Instant;

#[cfg(feature = "cron")]
use crate::schedule::MAX_COUNTED_FIRES;
use crate::schedule::clock::{Clock, later, saturating_nanos};
use crate::schedule::{Grid, Ticker};
use crate::worker::spec::Schedule;

impl Ticker {
    /// The ticker of a singleton's `trigger` on `clock` (the database's): an `every` grid of
    /// whole periods since the Unix epoch, first due at least `after` from now, which can be
    /// rewound up to `back` ticks before that; a cron schedule as any other.
    pub(crate) fn shared(trigger: &Schedule, after: Duration, clock: Clock, back: u32) -> Self {
        let now = Instant::now();
        let Schedule::Every(period) = trigger else {
            return Self::new(trigger, now, after, clock);
        };
        let step = saturating_nanos(*period).max(1);
        let from = clock.unix_nanos(later(now, after));
        let first = clock.instant(UNIX_EPOCH + Duration::from_nanos(from.div_ceil(step) * step));
        // As far back as tokio's clock goes (it starts near the machine's boot).
        let mut back = u64::from(back);
        let anchor = loop {
            match first.checked_sub(Duration::from_nanos(step.saturating_mul(back))) {
                Some(anchor) => break anchor,
                None if back == 0 => break first,
                None => back /= 2,
            }
        };
        Self::Every {
            grid: Grid::new(anchor, *period),
            index: back,
            due: first,
        }
    }

    /// The lease was taken over, and `last` is the last instant claimed before (`None`: none
    /// ever was): the next tick moves back to the first one after `last`, at most `cap` ticks
    /// back, and the `missed` policy then runs them (`burst`) or the latest of them (`skip`).
    /// Returns how many instants nobody ran, and how many of them the cap left out (to be
    /// counted as missed).
    pub(crate) fn rewind(&mut self, last: Option<Instant>, cap: u32) -> (u64, u64) {
        let Some(last) = last else { return (0, 0) };
        match self {
            Self::Every { grid, index, due } => {
                // The first tick after `last`, and the instants before the grid begins.
                let (after_last, before) = if last < grid.anchor {
                    let gap = saturating_nanos(grid.anchor - last);
                    (0, gap.div_ceil(grid.period).saturating_sub(1))
                } else {
                    (grid.last_due(last) + 1, 0)
                };
                if after_last >= *index {
                    return (before, before);
                }
                let from = after_last.max(index.saturating_sub(u64::from(cap)));
                let nobody = before + (*index - after_last);
                *index = from;
                *due = grid.at(from);
                (nobody, before + (from - after_last))
            }
            #[cfg(feature = "cron")]
            Self::Cron { cron, clock, next } => {
                let Some(upcoming) = *next else {
                    return (0, 0);
                };
                let mut kept = std::collections::VecDeque::new();
                let mut dropped = 0;
                let mut at = clock.system_time(last);
                while let Some(fire) = cron.next_after(at) {
                    let instant = clock.instant(fire);
                    if instant >= upcoming || dropped >= MAX_COUNTED_FIRES {
                        break;
                    }
                    kept.push_back(instant);
                    if kept.len() > cap as usize {
                        kept.pop_front();
                        dropped += 1;
                    }
                    at = fire;
                }
                if let Some(first) = kept.front() {
                    *next = Some(*first);
                }
                (dropped + kept.len() as u64, dropped)
            }
            _ => (0, 0),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::schedule::Missed;

    fn every(secs: u64, back: u32) -> (Clock, Ticker) {
        let clock = Clock::starting_at(SystemTime::now());
        let ticker = Ticker::shared(
            &Schedule::Every(Duration::from_secs(secs)),
            Duration::ZERO,
            clock,
            back,
        );
        (clock, ticker)
    }

    #[tokio::test(start_paused = true)]
    async fn every_ticks_on_whole_periods_since_the_epoch() {
        let (clock, ticker) = every(10, 5);
        let due = ticker.due().unwrap();
        let unix = clock.unix(due);
        assert_eq!(unix.as_nanos() % 10_000_000_000, 0, "{unix:?}");
        assert!(due >= Instant::now() && due < Instant::now() + Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn a_takeover_replays_what_nobody_ran_up_to_the_cap() {
        let (_, mut ticker) = every(1, 10);
        let first = ticker.due().unwrap();
        // The last tick claimed was 4 s before the next one: 3 were missed.
        let rewound = ticker.rewind(Some(first - Duration::from_secs(4)), 10);
        assert_eq!(rewound, (3, 0));
        assert_eq!(ticker.due(), Some(first - Duration::from_secs(3)));
        tokio::time::advance(first - Instant::now()).await;
        let now = Instant::now();
        // `burst` runs them one by one, oldest first.
        let fired = ticker.fire(now, Missed::Burst).unwrap();
        assert_eq!(fired.scheduled, first - Duration::from_secs(3));

        // A cap of 2 leaves out the oldest missed tick, counted.
        let (_, mut ticker) = every(1, 10);
        let first = ticker.due().unwrap();
        assert_eq!(
            ticker.rewind(Some(first - Duration::from_secs(4)), 2),
            (3, 1)
        );
        assert_eq!(ticker.due(), Some(first - Duration::from_secs(2)));
        // `skip` runs the latest and counts the other.
        let fired = ticker
            .fire(first - Duration::from_millis(500), Missed::Skip)
            .unwrap();
        assert_eq!(fired.scheduled, first - Duration::from_secs(1));
        assert_eq!(fired.missed, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn nothing_is_replayed_when_the_last_tick_is_recent_or_unknown() {
        let (_, mut ticker) = every(1, 10);
        let first = ticker.due().unwrap();
        assert_eq!(ticker.rewind(None, 10), (0, 0));
        assert_eq!(
            ticker.rewind(Some(first - Duration::from_secs(1)), 10),
            (0, 0)
        );
        assert_eq!(ticker.due(), Some(first));
    }

    #[tokio::test(start_paused = true)]
    async fn instants_before_the_grid_are_counted_as_missed() {
        let (_, mut ticker) = every(1, 0);
        let first = ticker.due().unwrap();
        // 5 instants between: 4 before the grid begins, and `first` itself is not missed.
        assert_eq!(
            ticker.rewind(Some(first - Duration::from_secs(5)), 10),
            (4, 4)
        );
        assert_eq!(ticker.due(), Some(first));
    }
}
