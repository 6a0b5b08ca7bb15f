//! What one scrape of `/metrics` costs with 10,000 workers: the time to render the page and its
//! size per worker, against `metrics-exporter-prometheus` rendering the same series (the same
//! names, labels and histogram buckets, registered through the `metrics` facade), which is what
//! a service would otherwise publish them with. Both in one run, alternating.
//!
//! ```text
//! cargo bench -p worker-core --bench scrape
//! ```
//!
//! `SCRAPE_WORKERS` (default 10000) and `SCRAPE_SAMPLES` (default 5) change the run. Medians are
//! printed with the range of the samples; nothing is asserted.

use std::time::{Duration, Instant};

use metrics::{Key, Label, Recorder as _};
use metrics_exporter_prometheus::PrometheusBuilder;
use worker_core::{Host, Outcome, RUN_DURATION_BUCKETS, SCHEDULE_LAG_BUCKETS, SkipReason, Worker};

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(mut values: Vec<Duration>) -> (Duration, Duration, Duration) {
    values.sort();
    (
        values[values.len() / 2],
        values[0],
        values[values.len() - 1],
    )
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A `metrics-exporter-prometheus` recorder holding the series a host publishes for `workers`
/// workers, each touched once so it is rendered.
fn baseline(workers: usize) -> metrics_exporter_prometheus::PrometheusHandle {
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Full("worker_run_duration_seconds".to_owned()),
            RUN_DURATION_BUCKETS,
        )
        .and_then(|b| {
            b.set_buckets_for_metric(
                metrics_exporter_prometheus::Matcher::Full(
                    "worker_schedule_lag_seconds".to_owned(),
                ),
                SCHEDULE_LAG_BUCKETS,
            )
        })
        .expect("valid buckets")
        .build_recorder();
    let handle = recorder.handle();
    let meta = metrics::Metadata::new("bench", metrics::Level::INFO, None);
    let key = |name: &'static str, worker: &str, extra: Option<(&'static str, &'static str)>| {
        let mut labels = vec![Label::new("worker", worker.to_owned())];
        if let Some((k, v)) = extra {
            labels.push(Label::new(k, v));
        }
        Key::from_parts(name, labels)
    };
    for w in 0..workers {
        let worker = format!("idle-{w}");
        for outcome in Outcome::ALL {
            let result = Some(("result", outcome.as_str()));
            recorder
                .register_counter(&key("worker_runs_total", &worker, result), &meta)
                .absolute(0);
            recorder
                .register_histogram(&key("worker_run_duration_seconds", &worker, result), &meta)
                .record(0.0);
        }
        for reason in SkipReason::ALL {
            let reason = Some(("reason", reason.as_str()));
            recorder
                .register_counter(&key("worker_runs_skipped_total", &worker, reason), &meta)
                .absolute(0);
        }
        for reason in ["panic", "crash"] {
            recorder
                .register_counter(
                    &key("worker_restarts_total", &worker, Some(("reason", reason))),
                    &meta,
                )
                .absolute(0);
        }
        for state in [
            "starting", "idle", "running", "backoff", "paused", "stale", "failed", "stopped",
        ] {
            recorder
                .register_gauge(&key("worker_state", &worker, Some(("state", state))), &meta)
                .set(0.0);
        }
        for state in ["closed", "open", "half_open"] {
            recorder
                .register_gauge(
                    &key("worker_circuit_state", &worker, Some(("state", state))),
                    &meta,
                )
                .set(0.0);
        }
        for action in ["run", "pause", "resume"] {
            recorder
                .register_counter(
                    &key(
                        "worker_admin_actions_total",
                        &worker,
                        Some(("action", action)),
                    ),
                    &meta,
                )
                .absolute(0);
        }
        recorder
            .register_histogram(&key("worker_schedule_lag_seconds", &worker, None), &meta)
            .record(0.0);
        for gauge in [
            "worker_run_active",
            "worker_last_success_timestamp_seconds",
            "worker_next_run_timestamp_seconds",
        ] {
            recorder
                .register_gauge(&key(gauge, &worker, None), &meta)
                .set(0.0);
        }
        recorder
            .register_counter(&key("worker_run_retries_total", &worker, None), &meta)
            .absolute(0);
    }
    handle
}

fn main() {
    let workers = setting("SCRAPE_WORKERS", 10_000);
    let samples = setting("SCRAPE_SAMPLES", 5);
    let host = Host::builder()
        .workers((0..workers).map(|w| {
            Worker::builder(format!("idle-{w}"))
                .every(Duration::from_hours(1))
                .handler(|| async {})
        }))
        .build()
        .expect("a valid host");
    let handle = host.handle();
    let exporter = baseline(workers);
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    let (mut our_bytes, mut their_bytes) = (0, 0);
    for _ in 0..samples {
        let start = Instant::now();
        our_bytes = handle.render_metrics().len();
        ours.push(start.elapsed());
        let start = Instant::now();
        their_bytes = exporter.render().len();
        theirs.push(start.elapsed());
    }
    let (ours, our_min, our_max) = median(ours);
    let (theirs, their_min, their_max) = median(theirs);
    println!("The /metrics page of {workers} workers, medians of {samples} renders (min..max)");
    println!(
        "  worker-core:                 {:7.1} ms ({:.1}..{:.1}), {} B per worker",
        ms(ours),
        ms(our_min),
        ms(our_max),
        our_bytes / workers
    );
    println!(
        "  metrics-exporter-prometheus: {:7.1} ms ({:.1}..{:.1}), {} B per worker",
        ms(theirs),
        ms(their_min),
        ms(their_max),
        their_bytes / workers
    );
    println!("  ratio: {:.2}", ours.as_secs_f64() / theirs.as_secs_f64());
    drop(host);
}
