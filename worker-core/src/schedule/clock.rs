//! Tokio's clock mapped to wall-clock time, so timestamps agree with the (possibly paused)
//! clock the schedules run on.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

/// Maps tokio's clock to wall-clock time, anchored once when the host starts, so timestamps
/// agree with the (possibly paused) clock the schedules run on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    instant: Instant,
    /// The wall-clock time of `instant`, in nanoseconds since the Unix epoch.
    unix_nanos: u64,
}

impl Clock {
    /// Anchors tokio's current instant to `wall`, the wall-clock time it stands for.
    pub(crate) fn starting_at(wall: SystemTime) -> Self {
        Self {
            instant: Instant::now(),
            unix_nanos: saturating_nanos(wall.duration_since(UNIX_EPOCH).unwrap_or_default()),
        }
    }

    /// The wall-clock time of `at`, as time since the Unix epoch.
    pub(crate) fn unix(&self, at: Instant) -> Duration {
        Duration::from_nanos(self.unix_nanos(at))
    }

    /// The wall-clock time of `at`, in nanoseconds since the Unix epoch: one subtraction of
    /// instants, the rest in integers (every tick converts a few instants).
    pub(crate) fn unix_nanos(&self, at: Instant) -> u64 {
        match at.checked_duration_since(self.instant) {
            Some(after) => self.unix_nanos.saturating_add(saturating_nanos(after)),
            None => self
                .unix_nanos
                .saturating_sub(saturating_nanos(self.instant - at)),
        }
    }

    /// The wall-clock time of `at`.
    pub(crate) fn system_time(&self, at: Instant) -> SystemTime {
        UNIX_EPOCH + self.unix(at)
    }

    /// The instant on tokio's clock of the wall-clock time `at`.
    pub(crate) fn instant(&self, at: SystemTime) -> Instant {
        let unix = saturating_nanos(at.duration_since(UNIX_EPOCH).unwrap_or_default());
        if unix >= self.unix_nanos {
            later(self.instant, Duration::from_nanos(unix - self.unix_nanos))
        } else {
            self.instant
                .checked_sub(Duration::from_nanos(self.unix_nanos - unix))
                .unwrap_or(self.instant)
        }
    }

    pub(crate) fn unix_seconds(&self, at: Instant) -> f64 {
        self.unix(at).as_secs_f64()
    }
}

/// `d` in nanoseconds, saturating at `u64::MAX` (in the year 2554 for a time since 1970).
pub(crate) fn saturating_nanos(d: Duration) -> u64 {
    d.as_secs()
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::from(d.subsec_nanos()))
}

/// `at + d`, or, should that not be representable, the latest instant within
/// [`worker_keys::MAX_DURATION`] of `at` that is: schedules never panic on time arithmetic.
pub(crate) fn later(at: Instant, d: Duration) -> Instant {
    at.checked_add(d)
        .or_else(|| at.checked_add(worker_keys::MAX_DURATION))
        .unwrap_or(at)
}
