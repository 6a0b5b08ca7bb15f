//! The line each worker's effective configuration is logged with, once, at start-up.

use std::time::Duration;

use crate::worker::spec::Checked;

/// Logs the effective configuration of a worker, once, at start-up.
pub(super) fn log_worker(Checked { spec, trigger }: &Checked) {
    let show = |d: Duration| worker_keys::show(d).to_string();
    // What every worker has, scheduled or consuming a queue.
    let backoff = format!(
        "{} {}..{}",
        spec.backoff_kind.as_str(),
        show(spec.backoff),
        show(spec.backoff_max)
    );
    let timeout = spec.timeout.map_or_else(|| "none".to_owned(), show);
    let stop_budget = spec.stop_budget.map_or_else(|| "host".to_owned(), show);
    if spec.queue.is_some() {
        tracing::info!(
            worker = %spec.name,
            schedule = %trigger,
            enabled = spec.enabled,
            concurrency = spec.concurrency(),
            capacity = spec.capacity(),
            on_panic = spec.on_panic.unwrap_or_default().as_str(),
            retry = spec.retry,
            backoff = %backoff,
            timeout = %timeout,
            stop_budget = %stop_budget,
            span_level = spec.span_level.as_str(),
            "worker configured"
        );
        return;
    }
    let circuit = spec.circuit.map_or_else(
        || "off".to_owned(),
        |c| {
            format!(
                "ratio {} over {} (min {} runs), break {}",
                c.failure_ratio,
                show(c.window),
                c.min_throughput,
                show(c.break_for)
            )
        },
    );
    let restarts = spec.max_restarts.map_or_else(
        || "unlimited".to_owned(),
        |n| format!("{n} in {}", show(spec.restart_window)),
    );
    tracing::info!(
        worker = %spec.name,
        schedule = %trigger,
        enabled = spec.enabled,
        after = %show(spec.after),
        jitter = %show(spec.jitter),
        missed = spec.missed.as_str(),
        overlap = %spec.overlap,
        retry = spec.retry,
        backoff = %backoff,
        timeout = %timeout,
        circuit = %circuit,
        max_restarts = %restarts,
        escalate = spec.escalate.as_str(),
        stop_budget = %stop_budget,
        span_level = spec.span_level.as_str(),
        "worker configured"
    );
}
