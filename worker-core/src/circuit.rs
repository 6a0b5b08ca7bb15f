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

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// Circuit-breaker settings of one worker (the `circuit_*` keys).
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct CircuitBreaker {
    /// Opens when at least this share of the runs in the window failed (`circuit_failure_ratio`,
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

/// The state of a circuit; the `state` label of `worker_circuit_state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CircuitState {
    Closed,
    Open,
    HalfOpen,
}

impl CircuitState {
    pub(crate) const ALL: [CircuitState; 3] = [Self::Closed, Self::Open, Self::HalfOpen];

    pub(crate) fn as_str(self) -> &'static str {
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

/// A circuit breaker's state machine, driven by the supervisor on tokio's clock.
#[derive(Debug)]
pub(crate) struct Breaker {
    config: CircuitBreaker,
    state: CircuitState,
    /// Outcomes of recent runs while closed: when each ended and whether it failed.
    samples: VecDeque<(Instant, bool)>,
    opened_at: Instant,
    probing: bool,
}

impl Breaker {
    pub(crate) fn new(config: CircuitBreaker) -> Self {
        Self {
            config,
            state: CircuitState::Closed,
            samples: VecDeque::new(),
            opened_at: Instant::now(),
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
            CircuitState::Open if now >= self.opened_at + self.config.break_for => {
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
                    self.samples.clear();
                }
            }
            // A run admitted while closed may end after the circuit opened; it changes nothing.
            CircuitState::Open => {}
            CircuitState::Closed => {
                self.samples.push_back((now, failed));
                while let Some(&(at, _)) = self.samples.front() {
                    if now.saturating_duration_since(at) > self.config.window {
                        self.samples.pop_front();
                    } else {
                        break;
                    }
                }
                let total = self.samples.len();
                let failures = self.samples.iter().filter(|(_, failed)| *failed).count();
                #[allow(clippy::cast_precision_loss, reason = "run counts are far below 2^52")]
                let ratio = failures as f64 / total as f64;
                if total >= self.config.min_throughput as usize
                    && ratio >= self.config.failure_ratio
                {
                    self.open(now);
                }
            }
        }
    }

    fn open(&mut self, now: Instant) {
        self.state = CircuitState::Open;
        self.opened_at = now;
        self.samples.clear();
    }
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
