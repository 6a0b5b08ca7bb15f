//! The last runs of a worker, for `/workers` and the dashboard: a ring of the last
//! [`RECENT_RUNS`] finished runs.
//!
//! Each slot is a small lock over one run packed in four words, on a cache line of its own: a
//! finished run touches that line only, and a reader copies each slot under its lock, so no
//! record is ever seen half written. The slot a run goes to is given by the caller (the count of
//! runs finished before it, which the worker's metrics hold); should two runs ever write one
//! slot, the later one wins and the reader still sees whole records, newest last.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, UNIX_EPOCH};

use crate::observe::Outcome;
use crate::observe::status::{RunRecord, Trigger};

/// Runs the ring keeps.
pub(crate) const RECENT_RUNS: usize = 20;

/// The ring.
#[derive(Debug, Default)]
pub(crate) struct RecentRuns {
    slots: [Slot; RECENT_RUNS],
}

/// One run, packed: `None` in a slot never written.
#[derive(Debug, Default)]
#[repr(align(64))]
struct Slot(Mutex<Option<Packed>>);

/// A run in five words: its id, its job's (0 for none), times in Unix microseconds, and the
/// duration (40 bits), outcome (3), trigger (2) and attempts (19) in the last.
#[derive(Debug, Clone, Copy)]
struct Packed {
    run_id: u64,
    job_id: u64,
    scheduled: u64,
    ended: u64,
    bits: u64,
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
    /// The job of a queue worker's run.
    pub(crate) job_id: Option<u64>,
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
            job_id: self.job_id,
        }
    }
}

const DURATION_BITS: u32 = 40;
const ATTEMPT_BITS: u32 = 19;
const TRIGGERS: [Trigger; 3] = [Trigger::Schedule, Trigger::Manual, Trigger::Queue];

/// `d` in microseconds, without 128-bit arithmetic; saturates after 584,000 years.
fn micros(d: Duration) -> u64 {
    d.as_secs()
        .saturating_mul(1_000_000)
        .saturating_add(u64::from(d.subsec_micros()))
}

impl Packed {
    fn new(entry: &Entry) -> Self {
        let duration = micros(entry.duration).min((1 << DURATION_BITS) - 1);
        let attempts = u64::from(entry.attempts).min((1 << ATTEMPT_BITS) - 1);
        let trigger = TRIGGERS
            .iter()
            .position(|t| *t == entry.trigger)
            .unwrap_or(0) as u64;
        Self {
            run_id: entry.run_id,
            job_id: entry.job_id.unwrap_or(0),
            scheduled: micros(entry.scheduled),
            ended: micros(entry.ended),
            bits: duration
                | (entry.result as u64) << DURATION_BITS
                | trigger << (DURATION_BITS + 3)
                | attempts << (DURATION_BITS + 5),
        }
    }

    fn entry(self) -> Entry {
        let bits = self.bits;
        let outcome = usize::try_from((bits >> DURATION_BITS) & 0b111).unwrap_or_default();
        let trigger = usize::try_from((bits >> (DURATION_BITS + 3)) & 0b11).unwrap_or_default();
        Entry {
            run_id: self.run_id,
            job_id: Some(self.job_id).filter(|&id| id > 0),
            trigger: TRIGGERS.get(trigger).copied().unwrap_or(Trigger::Schedule),
            scheduled: Duration::from_micros(self.scheduled),
            ended: Duration::from_micros(self.ended),
            duration: Duration::from_micros(bits & ((1 << DURATION_BITS) - 1)),
            result: Outcome::ALL
                .get(outcome)
                .copied()
                .unwrap_or(Outcome::Failure),
            attempts: u32::try_from(bits >> (DURATION_BITS + 5)).unwrap_or(u32::MAX),
        }
    }
}

impl RecentRuns {
    /// Keeps the run finished `index`-th (from 0), in place of the one `RECENT_RUNS` before it.
    pub(crate) fn push(&self, index: u64, entry: &Entry) {
        let slot = usize::try_from(index % RECENT_RUNS as u64).unwrap_or_default();
        *self.slots[slot]
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Packed::new(entry));
    }

    /// The runs kept, oldest first.
    pub(crate) fn entries(&self) -> Vec<Entry> {
        let mut entries: Vec<Entry> = self
            .slots
            .iter()
            .filter_map(|slot| *slot.0.lock().unwrap_or_else(PoisonError::into_inner))
            .map(Packed::entry)
            .collect();
        entries.sort_by_key(|entry| (entry.ended, entry.run_id));
        entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: u64) -> Entry {
        let ended = Duration::from_secs(1_800_000_000 + n);
        Entry {
            run_id: n,
            trigger: TRIGGERS[usize::try_from(n % 3).unwrap()],
            job_id: Some(n).filter(|n| n % 3 == 2),
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
        for (index, entry) in (0..).zip(&written[..3]) {
            ring.push(index, entry);
        }
        assert_eq!(ring.entries().len(), 3);
        for (index, entry) in (3..).zip(&written[3..]) {
            ring.push(index, entry);
        }
        let read = ring.entries();
        assert_eq!(read.len(), RECENT_RUNS);
        for (read, written) in read.iter().zip(&written[5..]) {
            assert_eq!(read.record(None), written.record(None));
        }
    }
}
