//! The last runs of a worker, for `/workers` and the dashboard: a ring of the last
//! [`RECENT_RUNS`] finished runs, behind a lock of its own that only a finished run and a
//! reader of the page ever take.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, UNIX_EPOCH};

use crate::observe::Outcome;
use crate::observe::status::{RunRecord, Trigger};

/// Runs the ring keeps.
pub(crate) const RECENT_RUNS: usize = 20;

/// The ring: the runs, and where the next one goes.
#[derive(Debug, Default)]
pub(crate) struct RecentRuns(Mutex<Ring>);

#[derive(Debug, Default)]
struct Ring {
    /// Runs written so far; the next goes to `written % RECENT_RUNS`.
    written: usize,
    slots: [Option<Entry>; RECENT_RUNS],
}

/// A finished run, as the ring keeps it: times since the Unix epoch.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Entry {
    pub(crate) run_id: u64,
    pub(crate) trigger: Trigger,
    pub(crate) scheduled: Duration,
    pub(crate) ended: Duration,
    pub(crate) duration: Duration,
    pub(crate) result: Outcome,
    pub(crate) attempts: u32,
}

impl Entry {
    /// The public record of this run.
    pub(crate) fn record(&self, error: Option<String>) -> RunRecord {
        RunRecord {
            run_id: self.run_id,
            trigger: self.trigger,
            scheduled_at: UNIX_EPOCH + self.scheduled,
            started_at: UNIX_EPOCH + self.ended.saturating_sub(self.duration),
            duration: self.duration,
            result: self.result,
            attempts: self.attempts,
            error,
        }
    }
}

impl RecentRuns {
    /// Keeps a finished run, in place of the oldest once the ring is full.
    pub(crate) fn push(&self, entry: Entry) {
        let mut ring = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let slot = ring.written % RECENT_RUNS;
        ring.slots[slot] = Some(entry);
        ring.written += 1;
    }

    /// The runs kept, oldest first.
    pub(crate) fn entries(&self) -> Vec<Entry> {
        let ring = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let start = ring.written % RECENT_RUNS;
        let (newer, older) = ring.slots.split_at(start);
        older.iter().chain(newer).flatten().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: u64) -> Entry {
        let ended = Duration::from_secs(1_800_000_000 + n);
        Entry {
            run_id: n,
            trigger: if n.is_multiple_of(2) {
                Trigger::Schedule
            } else {
                Trigger::Manual
            },
            scheduled: ended.saturating_sub(Duration::from_millis(30)),
            ended,
            duration: Duration::from_micros(1_500 * n),
            result: Outcome::ALL[usize::try_from(n % 5).unwrap()],
            attempts: u32::try_from(n % 4).unwrap() + 1,
        }
    }

    #[test]
    fn keeps_the_last_runs_oldest_first_and_reads_back_what_was_written() {
        let ring = RecentRuns::default();
        let written: Vec<Entry> = (0..25).map(entry).collect();
        assert!(ring.entries().is_empty());
        for entry in &written[..3] {
            ring.push(*entry);
        }
        assert_eq!(ring.entries().len(), 3);
        for entry in &written[3..] {
            ring.push(*entry);
        }
        let read = ring.entries();
        assert_eq!(read.len(), RECENT_RUNS);
        for (read, written) in read.iter().zip(&written[5..]) {
            assert_eq!(read.record(None), written.record(None));
        }
    }
}
