//! The per-worker circuit breaker: after too many failed runs it stops triggering the worker for
//! a while, then lets a single probe run decide whether to close again.
//!
//! ```text
//!            failure ratio ≥ threshold over the sampling window
//!            (with at least `min_throughput` runs in it)
//!   closed ───────────────────────────────────────────────▶ open
//!     ▲                                                      │ break duration elapsed:
//!     │ probe succeeds                                       ▼ the next trigger is a probe
//!     └──────────────────────────── half_open ◀──────────────┘
//!                                    │ probe fails: open again
//! ```

use std::time::Duration;

use tokio::time::Instant;

use crate::schedule::clock::{later, saturating_nanos};

/// Circuit-breaker settings of one worker (the `circuit_*` keys).
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct CircuitBreaker {
    /// Opens when at least this share of the runs in the window (counted in slices of a tenth
    /// of it) failed (`circuit_failure_ratio`,
    /// in `(0, 1]`); default 0.5.
    pub failure_ratio: f64,
    /// ... and the window holds at least this many runs (`circuit_min_throughput`); default 5.
    pub min_throughput: u32,
    /// How far back runs are counted (`circuit_window`); default 1 min.
    pub window: Duration,
    /// How long the circuit stays open before a probe (`circuit_break`); default 30 s.
    pub break_for: Duration,
}

impl Default for CircuitBreaker {
    fn default() -> Self {
        Self {
            failure_ratio: 0.5,
            min_throughput: 5,
            window: Duration::from_mins(1),
            break_for: Duration::from_secs(30),
        }
    }
}

/// The state of a worker's circuit breaker; the `state` label of `worker_circuit_state`, and
/// [`WorkerStatus::circuit`](crate::WorkerStatus::circuit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum CircuitState {
    /// Runs go ahead (also the state of a worker without a breaker).
    Closed,
    /// Triggers are skipped (`circuit_open`) until `circuit_break` has passed.
    Open,
    /// One probe run is let through; its result closes or reopens the circuit.
    HalfOpen,
}

impl CircuitState {
    /// Every state, in label order.
    pub const ALL: [CircuitState; 3] = [Self::Closed, Self::Open, Self::HalfOpen];

    /// The `state` label value.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }
}

/// What the breaker says about a trigger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admit {
    /// Run normally.
    Run,
    /// Run as the single half-open probe.
    Probe,
    /// Skip: the circuit is open (or a probe is already out).
    Reject,
}

/// The sampling window is counted in this many slices: memory stays the same whatever the run
/// rate, and runs leave the window a slice at a time (as Polly's sliding window does).
const SLICES: usize = 10;

/// The runs that ended in one slice of the window.
#[derive(Debug, Clone, Copy, Default)]
struct Slice {
    /// Which slice since the breaker was made; `u64::MAX` for none yet.
    index: u64,
    runs: u32,
    failures: u32,
}

/// A circuit breaker's state machine, driven by the supervisor on tokio's clock.
#[derive(Debug)]
pub(crate) struct Breaker {
    config: CircuitBreaker,
    state: CircuitState,
    /// Outcomes of recent runs while closed, by slice of the window.
    slices: [Slice; SLICES],
    /// Slices are counted from here.
    epoch: Instant,
    opened_at: Instant,
    probing: bool,
}

impl Breaker {
    pub(crate) fn new(config: CircuitBreaker) -> Self {
        let now = Instant::now();
        Self {
            config,
            state: CircuitState::Closed,
            slices: [Slice {
                index: u64::MAX,
                ..Slice::default()
            }; SLICES],
            epoch: now,
            opened_at: now,
            probing: false,
        }
    }

    pub(crate) fn state(&self) -> CircuitState {
        self.state
    }

    /// Whether a trigger at `now` may run. Moves an open circuit whose break has elapsed to
    /// half-open and hands out its one probe.
    pub(crate) fn admit(&mut self, now: Instant) -> Admit {
        match self.state {
            CircuitState::Closed => Admit::Run,
            CircuitState::Open if now >= later(self.opened_at, self.config.break_for) => {
                self.state = CircuitState::HalfOpen;
                self.probing = true;
                Admit::Probe
            }
            CircuitState::HalfOpen if !self.probing => {
                self.probing = true;
                Admit::Probe
            }
            CircuitState::Open | CircuitState::HalfOpen => Admit::Reject,
        }
    }

    /// Records a finished run. `failed` is true for failure, timeout and panic.
    pub(crate) fn record(&mut self, now: Instant, failed: bool) {
        match self.state {
            CircuitState::HalfOpen => {
                self.probing = false;
                if failed {
                    self.open(now);
                } else {
                    self.state = CircuitState::Closed;
                    self.clear();
                }
            }
            // A run admitted while closed may end after the circuit opened; it changes nothing.
            CircuitState::Open => {}
            CircuitState::Closed => {
                let slice = self.slice_of(now);
                let current = &mut self.slices[slot(slice)];
                if current.index != slice {
                    *current = Slice {
                        index: slice,
                        runs: 0,
                        failures: 0,
                    };
                }
                current.runs = current.runs.saturating_add(1);
                current.failures = current.failures.saturating_add(u32::from(failed));
                let (runs, failures) = self
                    .slices
                    .iter()
                    .filter(|s| s.index != u64::MAX && s.index + SLICES as u64 > slice)
                    .fold((0_u64, 0_u64), |(runs, failures), s| {
                        (runs + u64::from(s.runs), failures + u64::from(s.failures))
                    });
                #[allow(clippy::cast_precision_loss, reason = "run counts are far below 2^52")]
                let ratio = failures as f64 / runs as f64;
                if runs >= u64::from(self.config.min_throughput)
                    && ratio >= self.config.failure_ratio
                {
                    self.open(now);
                }
            }
        }
    }

    /// The index of the slice `now` falls in.
    fn slice_of(&self, now: Instant) -> u64 {
        let width = (saturating_nanos(self.config.window) / SLICES as u64).max(1);
        saturating_nanos(now.saturating_duration_since(self.epoch)) / width
    }

    fn clear(&mut self) {
        for slice in &mut self.slices {
            slice.index = u64::MAX;
        }
    }

    fn open(&mut self, now: Instant) {
        self.state = CircuitState::Open;
        self.opened_at = now;
        self.clear();
    }
}

fn slot(slice: u64) -> usize {
    usize::try_from(slice % SLICES as u64).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> Breaker {
        Breaker::new(CircuitBreaker {
            failure_ratio: 0.5,
            min_throughput: 4,
            window: Duration::from_mins(1),
            break_for: Duration::from_secs(30),
        })
    }

    #[test]
    fn opens_at_the_ratio_once_the_throughput_is_reached() {
        let mut b = breaker();
        let t = Instant::now();
        for failed in [true, true, true] {
            b.record(t, failed);
        }
        assert_eq!(b.state(), CircuitState::Closed, "below min throughput");
        b.record(t, false);
        assert_eq!(b.state(), CircuitState::Open, "3 of 4 failed");
        assert_eq!(b.admit(t + Duration::from_secs(29)), Admit::Reject);
    }

    #[test]
    fn old_samples_leave_the_window() {
        let mut b = breaker();
        let t = Instant::now();
        for _ in 0..3 {
            b.record(t, true);
        }
        b.record(t + Duration::from_secs(61), false);
        assert_eq!(
            b.state(),
            CircuitState::Closed,
            "the three failures left the window"
        );
    }

    #[test]
    fn half_open_lets_one_probe_through_and_it_decides() {
        let mut b = breaker();
        let t = Instant::now();
        for _ in 0..4 {
            b.record(t, true);
        }
        let later = t + Duration::from_secs(30);
        assert_eq!(b.admit(later), Admit::Probe);
        assert_eq!(b.state(), CircuitState::HalfOpen);
        assert_eq!(b.admit(later), Admit::Reject, "one probe at a time");
        b.record(later, true);
        assert_eq!(b.state(), CircuitState::Open, "a failed probe opens again");
        let again = later + Duration::from_secs(30);
        assert_eq!(b.admit(again), Admit::Probe);
        b.record(again, false);
        assert_eq!(b.state(), CircuitState::Closed);
        assert_eq!(b.admit(again), Admit::Run);
    }
}
