//! The bridge to the `metrics` facade: every `worker_*` series also reaches whatever recorder
//! the application installed (its own Prometheus exporter, `StatsD`, OpenTelemetry), with the
//! names, labels and help texts of the host's page.
//!
//! The series stay in the workers' blocks of atomics, which the hot path writes; the bridge
//! reads them the way a scrape does, in the manner of tokio-metrics' reporter:
//!
//! - counters and gauges are published every [`DEFAULT_EVERY`] (or the builder's interval), from
//!   a thread of the bridge's own, and once more after the workers stopped, from the host's own exposition, so the two can never
//!   disagree: a counter with [`Counter::absolute`](metrics::Counter::absolute), a gauge with
//!   `set`;
//! - histograms cannot be rebuilt from bucket counts, so each sample is recorded as it happens
//!   through handles fetched when the host starts. Like every `metrics` handle, they record
//!   nothing when no recorder was installed by then.
//!
//! A recorder configured with [`worker_buckets`](crate::worker_buckets) has the page's bucket
//! bounds.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use metrics::{Histogram, Label, histogram};

use crate::observe::board::Board;
use crate::observe::outcome::Outcome;
use crate::observe::tracked::Tracked;

/// How often counters and gauges are published by default: 1 s.
pub(crate) const DEFAULT_EVERY: Duration = Duration::from_secs(1);

/// The bridge waits at least this many times as long as its last publication took, so it never
/// takes more than a twentieth of one core (with thousands of workers, publications are spaced
/// out beyond the interval asked for).
const MAX_SHARE: u32 = 20;

/// A worker's histogram handles: run durations by result, and the schedule's lag.
pub(crate) struct RunHistograms {
    pub(crate) durations: [Histogram; Outcome::ALL.len()],
    pub(crate) lag: Histogram,
}

impl std::fmt::Debug for RunHistograms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RunHistograms")
    }
}

impl std::fmt::Debug for QueueHistograms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("QueueHistograms")
    }
}

/// A queue's histogram handles: the wait before a job's first attempt, and a durable queue's
/// claims.
pub(crate) struct QueueHistograms {
    pub(crate) wait: Histogram,
    pub(crate) fetch: Histogram,
}

/// Fetches a worker's histogram handles from the current recorder: when the host starts, or
/// when the worker is added to the running host.
pub(crate) fn register(worker: &Tracked) {
    let name = worker.name.to_string();
    let _ = worker.metrics.facade.set(RunHistograms {
        durations: Outcome::ALL.map(|outcome| {
            histogram!(
                "worker_run_duration_seconds",
                "worker" => name.clone(),
                "result" => outcome.as_str()
            )
        }),
        lag: histogram!("worker_schedule_lag_seconds", "worker" => name.clone()),
    });
    if let Some(queue) = &worker.queue {
        let _ = queue.metrics.facade.set(QueueHistograms {
            wait: histogram!("worker_queue_wait_seconds", "worker" => name.clone()),
            fetch: histogram!("worker_jobs_fetch_duration_seconds", "worker" => name.clone()),
        });
    }
}

/// The running bridge: a thread of its own that publishes every `every`, so that neither a
/// paused test clock (which would tick it every simulated second) nor a runtime whose threads
/// the bodies block holds it back. Dropped, it stops the thread.
pub(crate) struct Bridge {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<std::thread::JoinHandle<Publisher>>,
}

/// Fetches the histograms' handles, then publishes the workers' series every `every` until
/// [`Bridge::finish`].
pub(crate) fn start(board: Arc<Board>, every: Duration) -> Bridge {
    for worker in board.workers().iter() {
        register(worker);
    }
    let stop = Arc::new((Mutex::new(false), Condvar::new()));
    let stopped = Arc::clone(&stop);
    let thread = std::thread::Builder::new()
        .name("worker-metrics-facade".into())
        .spawn(move || {
            let mut publisher = Publisher::default();
            let (flag, wake) = &*stopped;
            let mut flag = flag.lock().unwrap_or_else(PoisonError::into_inner);
            let mut wait = every;
            loop {
                flag = wake
                    .wait_timeout(flag, wait)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
                if *flag {
                    return publisher;
                }
                drop(flag);
                let began = std::time::Instant::now();
                publisher.publish(&board.render_workers(board.now()));
                wait = every.max(began.elapsed().saturating_mul(MAX_SHARE));
                flag = stopped.0.lock().unwrap_or_else(PoisonError::into_inner);
            }
        });
    match thread {
        Ok(thread) => Bridge {
            stop,
            thread: Some(thread),
        },
        Err(err) => {
            tracing::error!(error = %err, "could not start the thread of the metrics facade's bridge: only the final counts will be published");
            Bridge { stop, thread: None }
        }
    }
}

impl Bridge {
    /// Stops the thread and publishes once more, here: the counts after the last run ended.
    pub(crate) fn finish(mut self, board: &Board) {
        self.signal();
        let publisher = self
            .thread
            .take()
            .and_then(|thread| thread.join().ok())
            .unwrap_or_default();
        let mut publisher = publisher;
        publisher.publish(&board.render_workers(board.now()));
    }

    fn signal(&self) {
        let (flag, wake) = &*self.stop;
        *flag.lock().unwrap_or_else(PoisonError::into_inner) = true;
        wake.notify_all();
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.signal();
    }
}

/// Publishes pages of the text exposition to the facade.
#[derive(Default)]
struct Publisher {
    /// Families described to the recorder already.
    described: HashSet<String>,
    /// Every series' handle, by its text on the page (`name{labels}`): fetched from the
    /// recorder once, on the first publication that has the series, with the number of the
    /// last publication that had it.
    handles: HashMap<Box<str>, (Handle, u64)>,
    /// Publications so far.
    publications: u64,
}

enum Handle {
    Counter(metrics::Counter),
    Gauge(metrics::Gauge),
}

/// What a family's samples are published as.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    /// Recorded per sample instead.
    Histogram,
}

impl Publisher {
    fn publish(&mut self, page: &str) {
        self.publications += 1;
        let publication = self.publications;
        let mut published = 0_usize;
        let mut help = "";
        let mut kind = Kind::Histogram;
        for line in page.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                help = rest.split_once(' ').map_or("", |(_, text)| text);
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, type_name) = rest.split_once(' ').unwrap_or((rest, ""));
                kind = match type_name {
                    "counter" => Kind::Counter,
                    "gauge" => Kind::Gauge,
                    _ => Kind::Histogram,
                };
                self.describe(name, kind, help);
            } else if kind != Kind::Histogram
                && let Some((series, value)) = line.rsplit_once(' ')
                && let Ok(value) = value.parse::<f64>()
            {
                if !self.handles.contains_key(series) {
                    let Some(handle) = handle(kind, series) else {
                        continue;
                    };
                    self.handles.insert(series.into(), (handle, publication));
                }
                let Some((handle, last)) = self.handles.get_mut(series) else {
                    continue;
                };
                *last = publication;
                published += 1;
                match handle {
                    #[allow(
                        clippy::cast_possible_truncation,
                        clippy::cast_sign_loss,
                        reason = "counters are written as whole non-negative numbers"
                    )]
                    Handle::Counter(counter) => counter.absolute(value as u64),
                    Handle::Gauge(gauge) => gauge.set(value),
                }
            }
        }
        // The series of workers removed from the running host: their handles are let go (the
        // recorder keeps their last values for as long as it keeps idle series).
        if self.handles.len() > published {
            self.handles.retain(|_, (_, last)| *last == publication);
        }
    }

    fn describe(&mut self, name: &str, kind: Kind, help: &str) {
        if !self.described.insert(name.to_owned()) {
            return;
        }
        let (name, help) = (name.to_owned(), help.to_owned());
        match kind {
            Kind::Counter => metrics::describe_counter!(name, help),
            Kind::Gauge => metrics::describe_gauge!(name, help),
            Kind::Histogram => metrics::describe_histogram!(name, metrics::Unit::Seconds, help),
        }
    }
}

/// The recorder's handle of `series`, as written on the page.
fn handle(kind: Kind, series: &str) -> Option<Handle> {
    let (name, labels) = series_labels(series)?;
    Some(match kind {
        Kind::Counter => Handle::Counter(metrics::counter!(name.to_owned(), labels)),
        _ => Handle::Gauge(metrics::gauge!(name.to_owned(), labels)),
    })
}

/// A series as written on the page, `name{key="value",...}`, with its label values unescaped.
fn series_labels(series: &str) -> Option<(&str, Vec<Label>)> {
    let Some((name, mut rest)) = series.split_once('{') else {
        return Some((series, Vec::new()));
    };
    let mut labels = Vec::new();
    while let Some((key, after)) = rest.split_once("=\"") {
        let mut text = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next()? {
                (_, '\\') => match chars.next()?.1 {
                    'n' => text.push('\n'),
                    other => text.push(other),
                },
                (at, '"') => break at,
                (_, c) => text.push(c),
            }
        };
        labels.push(Label::new(key.to_owned(), text));
        rest = after[end + 1..].trim_start_matches(',');
    }
    Some((name, labels))
}

/// `page` without the families named `worker_*`: the application's page, when the bridge
/// also published the workers' series to its recorder, and the host writes them itself.
#[cfg(feature = "prometheus")]
pub(crate) fn without_worker_series(page: &str) -> std::borrow::Cow<'_, str> {
    if !page.contains("worker_") {
        return page.into();
    }
    let mut kept = String::with_capacity(page.len());
    for line in page.lines() {
        let name = line
            .strip_prefix("# HELP ")
            .or_else(|| line.strip_prefix("# TYPE "))
            .unwrap_or(line);
        if !name.starts_with("worker_") {
            kept.push_str(line);
            kept.push('\n');
        }
    }
    kept.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_are_read_back_with_their_labels_unescaped() {
        let (name, labels) =
            series_labels(r#"worker_runs_total{worker="a\"b\\c\nd",result="success"}"#).unwrap();
        assert_eq!(name, "worker_runs_total");
        let labels: Vec<(&str, &str)> = labels.iter().map(|l| (l.key(), l.value())).collect();
        assert_eq!(labels, [("worker", "a\"b\\c\nd"), ("result", "success")]);
        assert_eq!(
            series_labels("worker_up").map(|(n, l)| (n, l.len())),
            Some(("worker_up", 0))
        );
        assert!(series_labels("worker_runs_total{worker=\"open").is_none());
    }

    #[test]
    fn the_handles_of_series_gone_from_the_page_are_let_go() {
        let page = |workers: &[&str]| {
            let mut page = String::from("# HELP worker_up Up.\n# TYPE worker_up gauge\n");
            for worker in workers {
                page.push_str("worker_up{worker=\"");
                page.push_str(worker);
                page.push_str("\"} 1\n");
            }
            page
        };
        let mut publisher = Publisher::default();
        publisher.publish(&page(&["a", "b", "c"]));
        assert_eq!(publisher.handles.len(), 3);
        // `b` was removed from the running host.
        publisher.publish(&page(&["a", "c"]));
        let mut kept: Vec<&str> = publisher.handles.keys().map(|k| &**k).collect();
        kept.sort_unstable();
        assert_eq!(kept, ["worker_up{worker=\"a\"}", "worker_up{worker=\"c\"}"]);
        publisher.publish(&page(&["a", "c", "d"]));
        assert_eq!(publisher.handles.len(), 3);
    }

    #[cfg(feature = "prometheus")]
    #[test]
    fn the_applications_page_keeps_its_own_families_only() {
        let page = "# HELP orders_total Orders.\n# TYPE orders_total counter\norders_total 3\n\
                    # HELP worker_runs_total Runs.\n# TYPE worker_runs_total counter\n\
                    worker_runs_total{worker=\"a\",result=\"success\"} 1\n";
        assert_eq!(
            without_worker_series(page),
            "# HELP orders_total Orders.\n# TYPE orders_total counter\norders_total 3\n"
        );
    }
}
