//! Repeated identical log lines of one worker, rate-limited: a worker that fails, times out or
//! panics the same way on every run logs the first line, then at most one identical line every
//! [`REPEAT_WINDOW`], which says how many were not logged in between (field `repeated`). The
//! metrics count every run all the same.

use std::hash::{DefaultHasher, Hasher as _};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// An identical line is logged at most once per this period.
pub(crate) const REPEAT_WINDOW: Duration = Duration::from_secs(10);

/// One worker's limiter.
#[derive(Debug, Default)]
pub(crate) struct Quiet(Mutex<State>);

#[derive(Debug, Default)]
struct State {
    /// The last line logged, hashed.
    key: u64,
    logged_at: Option<Instant>,
    /// Lines not logged since.
    repeated: u64,
}

impl Quiet {
    /// Whether the line `key` is logged at `now`: `Some(lines not logged since the last one)`,
    /// or `None` when it repeats the last line logged within [`REPEAT_WINDOW`].
    pub(crate) fn admit(&self, key: u64, now: Instant) -> Option<u64> {
        let mut state = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let recent = state
            .logged_at
            .is_some_and(|at| now.saturating_duration_since(at) < REPEAT_WINDOW);
        if recent && state.key == key {
            state.repeated += 1;
            return None;
        }
        state.key = key;
        state.logged_at = Some(now);
        Some(std::mem::take(&mut state.repeated))
    }

    /// Lines not logged since the last one, reset.
    pub(crate) fn take_repeated(&self) -> u64 {
        std::mem::take(
            &mut self
                .0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .repeated,
        )
    }
}

/// The key of a line: what kind it is and what it says.
pub(crate) fn key(kind: u8, text: std::fmt::Arguments<'_>) -> u64 {
    struct Hashing(DefaultHasher);
    impl std::fmt::Write for Hashing {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            self.0.write(s.as_bytes());
            Ok(())
        }
    }
    let mut hashing = Hashing(DefaultHasher::new());
    hashing.0.write_u8(kind);
    let _ = std::fmt::write(&mut hashing, text);
    hashing.0.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn identical_lines_are_logged_once_per_window_with_the_count_between() {
        let quiet = Quiet::default();
        let a = key(1, format_args!("{}", "connection refused"));
        let b = key(1, format_args!("timeout"));
        let t0 = Instant::now();
        assert_eq!(quiet.admit(a, t0), Some(0));
        assert_eq!(quiet.admit(a, t0 + Duration::from_secs(1)), None);
        assert_eq!(quiet.admit(a, t0 + Duration::from_secs(9)), None);
        assert_eq!(quiet.admit(a, t0 + REPEAT_WINDOW), Some(2));
        assert_eq!(quiet.admit(b, t0 + REPEAT_WINDOW), Some(0), "another line");
        assert_eq!(quiet.admit(b, t0 + REPEAT_WINDOW), None);
        assert_eq!(quiet.take_repeated(), 1);
        assert_eq!(quiet.take_repeated(), 0);
    }
}
