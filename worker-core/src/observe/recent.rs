//! The last runs of a worker, for `/workers` and the dashboard: a ring written by every
//! finished run without a lock.
//!
//! A run claims a slot with one atomic addition and fills it with plain stores, which a core
//! buffers without waiting; a mutex and a queue of records cost three or four cache misses per
//! run instead, which measured at about 15 % of an empty run at 1000 workers. Readers re-check a
//! slot's end time after reading it and skip a slot being rewritten.

use std::sync::atomic::{
    AtomicU64,
    Ordering::{Acquire, Relaxed, Release},
};
use std::time::{Duration, UNIX_EPOCH};

use crate::observe::metrics::Outcome;
use crate::observe::status::{RunRecord, Trigger};

/// Runs the ring keeps.
pub(crate) const RECENT_RUNS: usize = 20;

/// One run, packed in four words; `ended` is 0 in a slot never written.
#[derive(Debug, Default)]
struct Slot {
    run_id: AtomicU64,
    /// Unix microseconds.
    scheduled: AtomicU64,
    /// Unix microseconds.
    ended: AtomicU64,
    /// Duration in microseconds (40 bits), outcome (3), trigger (1), attempts (20).
    packed: AtomicU64,
}

/// The ring. Its writer is the worker's loop, which polls every run of the worker: one run
/// finishes at a time, so the slot index is the number of runs finished before, which the
/// caller has at hand (`worker_runs_total`), and no counter of its own is needed.
#[derive(Debug, Default)]
pub(crate) struct RecentRuns {
    slots: [Slot; RECENT_RUNS],
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

const DURATION_BITS: u32 = 40;
const ATTEMPT_BITS: u32 = 20;

/// `d` in microseconds, without 128-bit arithmetic; saturates after 584,000 years.
fn micros(d: Duration) -> u64 {
    d.as_secs()
        .saturating_mul(1_000_000)
        .saturating_add(u64::from(d.subsec_micros()))
}

fn pack(entry: &Entry) -> u64 {
    let duration = micros(entry.duration).min((1 << DURATION_BITS) - 1);
    let attempts = u64::from(entry.attempts).min((1 << ATTEMPT_BITS) - 1);
    let trigger = u64::from(entry.trigger == Trigger::Manual);
    duration
        | (entry.result as u64) << DURATION_BITS
        | trigger << (DURATION_BITS + 3)
        | attempts << (DURATION_BITS + 4)
}

fn slot(index: u64) -> usize {
    usize::try_from(index % RECENT_RUNS as u64).unwrap_or_default()
}

impl RecentRuns {
    /// Writes the run finished `index`-th (from 0).
    pub(crate) fn push(&self, index: u64, entry: &Entry) {
        let slot = &self.slots[slot(index)];
        // Marks the slot as being written, so a reader skips it.
        slot.ended.store(0, Relaxed);
        slot.run_id.store(entry.run_id, Relaxed);
        slot.scheduled.store(micros(entry.scheduled), Relaxed);
        slot.packed.store(pack(entry), Relaxed);
        slot.ended.store(micros(entry.ended).max(1), Release);
    }

    /// The runs kept, oldest first, of the `finished` written so far.
    pub(crate) fn entries(&self, finished: u64) -> Vec<Entry> {
        let first = finished.saturating_sub(RECENT_RUNS as u64);
        (first..finished)
            .filter_map(|index| {
                let slot = &self.slots[slot(index)];
                let ended = slot.ended.load(Acquire);
                let (run_id, scheduled, packed) = (
                    slot.run_id.load(Relaxed),
                    slot.scheduled.load(Relaxed),
                    slot.packed.load(Relaxed),
                );
                if ended == 0 || slot.ended.load(Acquire) != ended {
                    return None;
                }
                let outcome = usize::try_from((packed >> DURATION_BITS) & 0b111).ok()?;
                Some(Entry {
                    run_id,
                    trigger: if (packed >> (DURATION_BITS + 3)) & 1 == 1 {
                        Trigger::Manual
                    } else {
                        Trigger::Schedule
                    },
                    scheduled: Duration::from_micros(scheduled),
                    ended: Duration::from_micros(ended),
                    duration: Duration::from_micros(packed & ((1 << DURATION_BITS) - 1)),
                    result: *Outcome::ALL.get(outcome)?,
                    attempts: u32::try_from(packed >> (DURATION_BITS + 4)).unwrap_or(u32::MAX),
                })
            })
            .collect()
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
        assert!(ring.entries(0).is_empty());
        let written: Vec<Entry> = (0..25).map(entry).collect();
        for (index, entry) in written.iter().enumerate() {
            ring.push(u64::try_from(index).unwrap(), entry);
        }
        let read = ring.entries(25);
        assert_eq!(read.len(), RECENT_RUNS);
        for (read, written) in read.iter().zip(&written[5..]) {
            assert_eq!(read.record(None), written.record(None));
        }
    }
}
