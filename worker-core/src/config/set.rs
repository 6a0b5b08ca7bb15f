//! An override's value written into a worker's declaration: the inverse of `Spec::settings`.

use worker_keys::{Key, Value};

use crate::queue::OnPanic;
use crate::run::retry::BackoffKind;
use crate::run::span::SpanLevel;
use crate::schedule::{Missed, Overlap};
use crate::supervise::Escalation;
use crate::worker::spec::{DeclaredSchedule, Spec};

impl Spec {
    /// Sets one key from a parsed value (a configuration override): the inverse of
    /// [`settings`](Self::settings). A value of another kind than the key's is ignored; the
    /// shared parser never makes one.
    pub(crate) fn set(&mut self, key: &'static Key, value: &Value) {
        let d = match value {
            Value::Duration(d) => Some(*d),
            _ => None,
        };
        let n = match value {
            Value::Count(n) => Some(*n),
            _ => None,
        };
        let b = match value {
            Value::Bool(b) => Some(*b),
            _ => None,
        };
        let text = match value {
            Value::Text(text) => Some(text.clone()),
            _ => None,
        };
        let option = match value {
            Value::Choice(option) => Some(*option),
            _ => None,
        };
        match key.name {
            "every" => self.trigger = d.map(DeclaredSchedule::Every).or(self.trigger.take()),
            "fixed_delay" => {
                self.trigger = d.map(DeclaredSchedule::FixedDelay).or(self.trigger.take());
            }
            #[cfg(feature = "cron")]
            "cron" => self.trigger = text.map(DeclaredSchedule::Cron).or(self.trigger.take()),
            "once" => self.trigger = Some(DeclaredSchedule::Once),
            "time_zone" => self.time_zone = text.or(self.time_zone.take()),
            "after" => self.after = d.unwrap_or(self.after),
            "jitter" => self.jitter = d.unwrap_or(self.jitter),
            "overlap" => {
                self.overlap = match value {
                    Value::Allow(n) => Overlap::Allow(*n),
                    Value::Choice("queue") => Overlap::Queue,
                    Value::Choice("skip") => Overlap::Skip,
                    _ => self.overlap,
                }
            }
            "enabled" => self.enabled = b.unwrap_or(self.enabled),
            "retry" => self.retry = n.unwrap_or(self.retry),
            "backoff" => self.backoff = d.unwrap_or(self.backoff),
            "backoff_max" => self.backoff_max = d.unwrap_or(self.backoff_max),
            "timeout" => self.timeout = d.or(self.timeout),
            "circuit_failure_ratio" => {
                if let Value::Ratio(x) = value {
                    self.circuit_mut().failure_ratio = *x;
                }
            }
            "circuit_min_throughput" => {
                if let Some(n) = n {
                    self.circuit_mut().min_throughput = n;
                }
            }
            "circuit_window" => {
                if let Some(d) = d {
                    self.circuit_mut().window = d;
                }
            }
            "circuit_break" => {
                if let Some(d) = d {
                    self.circuit_mut().break_for = d;
                }
            }
            "restart_backoff" => self.restart_backoff = d.unwrap_or(self.restart_backoff),
            "max_restarts" => self.max_restarts = n.or(self.max_restarts),
            "restart_window" => self.restart_window = d.unwrap_or(self.restart_window),
            "stop_budget" => self.stop_budget = d.or(self.stop_budget),
            "stale_after" => self.stale_after = d.or(self.stale_after),
            "gates_readiness" => self.gates_readiness = b.unwrap_or(self.gates_readiness),
            "gates_liveness" => self.gates_liveness = b.unwrap_or(self.gates_liveness),
            "concurrency" => self.concurrency = n.or(self.concurrency),
            "capacity" => self.capacity = n.or(self.capacity),
            "lease" => self.lease = d.or(self.lease),
            "catch_up" => self.catch_up = n.or(self.catch_up),
            "missed" | "backoff_kind" | "escalate" | "on_panic" | "span_level" => {
                if let Some(option) = option {
                    self.set_policy(key.name, option);
                }
            }
            // `name`, `queue`, `durable` and `singleton` are not overridable; a new key gets its
            // arm here and in `Spec::settings` (`worker/spec.rs`).
            _ => {}
        }
    }

    /// Sets the policy `key` to `option`, one of its choices (checked by the shared parser).
    fn set_policy(&mut self, key: &str, option: &str) {
        let option = Some(option);
        match key {
            "missed" => {
                let all = [Missed::Skip, Missed::Burst, Missed::Delay];
                self.missed = choose(&all, Missed::as_str, option).unwrap_or(self.missed);
            }
            "backoff_kind" => {
                let all = [
                    BackoffKind::Constant,
                    BackoffKind::Linear,
                    BackoffKind::Exponential,
                ];
                self.backoff_kind =
                    choose(&all, BackoffKind::as_str, option).unwrap_or(self.backoff_kind);
            }
            "escalate" => {
                let all = [Escalation::StopWorker, Escalation::StopHost];
                self.escalate = choose(&all, Escalation::as_str, option).unwrap_or(self.escalate);
            }
            "on_panic" => {
                let all = [OnPanic::Retry, OnPanic::Discard];
                self.on_panic = choose(&all, OnPanic::as_str, option).or(self.on_panic);
            }
            "span_level" => {
                let all = [SpanLevel::Info, SpanLevel::Debug, SpanLevel::Trace];
                self.span_level =
                    choose(&all, SpanLevel::as_str, option).unwrap_or(self.span_level);
            }
            _ => {}
        }
    }
}

/// The option of `options` named `option`.
fn choose<T: Copy>(options: &[T], name: fn(T) -> &'static str, option: Option<&str>) -> Option<T> {
    options.iter().copied().find(|o| Some(name(*o)) == option)
}
