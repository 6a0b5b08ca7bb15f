//! Tokio's clock mapped to wall-clock time, so timestamps agree with the (possibly paused)
//! clock the schedules run on.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

/// Maps tokio's clock to wall-clock time, anchored once when the host starts, so timestamps
/// agree with the (possibly paused) clock the schedules run on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    instant: Instant,
    unix: Duration,
}

impl Clock {
    /// Anchors tokio's current instant to `wall`, the wall-clock time it stands for.
    pub(crate) fn starting_at(wall: SystemTime) -> Self {
        Self {
            instant: Instant::now(),
            unix: wall.duration_since(UNIX_EPOCH).unwrap_or_default(),
        }
    }

    /// The wall-clock time of `at`, as time since the Unix epoch.
    pub(crate) fn unix(&self, at: Instant) -> Duration {
        if at >= self.instant {
            self.unix + (at - self.instant)
        } else {
            self.unix.saturating_sub(self.instant - at)
        }
    }

    /// The wall-clock time of `at`.
    pub(crate) fn system_time(&self, at: Instant) -> SystemTime {
        UNIX_EPOCH + self.unix(at)
    }

    /// The instant on tokio's clock of the wall-clock time `at`.
    pub(crate) fn instant(&self, at: SystemTime) -> Instant {
        let unix = at.duration_since(UNIX_EPOCH).unwrap_or_default();
        if unix >= self.unix {
            self.instant + unix.saturating_sub(self.unix)
        } else {
            self.instant
                .checked_sub(self.unix.saturating_sub(unix))
                .unwrap_or(self.instant)
        }
    }

    pub(crate) fn unix_seconds(&self, at: Instant) -> f64 {
        self.unix(at).as_secs_f64()
    }
}
