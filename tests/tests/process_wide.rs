//! What belongs to the whole process: its environment and the `metrics` facade's global
//! recorder. A test binary of its own, so that no other test sees what these set.
//!
//! - Test hosts see only what the test says: `TestHost` and `run_once` ignore the `WORKER__*`
//!   variables and the `WORKER_CONFIG` file of the shell that runs the tests, which a host built
//!   for production reads. The test re-runs its own binary as a child with a hostile
//!   environment: the environment is the process's, and tests of one binary run in parallel
//!   threads.
//! - A host installs the global recorder only when asked (`install_recorder`), so an
//!   application installs its own after building a host that serves, and hands its handle over
//!   (`prometheus`) for one page.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use worker_core::testing::{TestHost, run_once};
use worker_core::{BoxError, Host, Job, Outcome, Worker};

const CHILD: &str = "HOSTILE_ENVIRONMENT_CHILD";
const TEST: &str = "test_hosts_ignore_the_environment_of_the_shell_that_runs_the_tests";

fn counting(every: Duration) -> (Worker, Arc<AtomicUsize>) {
    let runs = Arc::new(AtomicUsize::new(0));
    let counted = runs.clone();
    let worker = Worker::builder("sync_orders")
        .every(every)
        .handler(move || {
            let runs = counted.clone();
            async move {
                runs.fetch_add(1, Ordering::SeqCst);
            }
        });
    (worker, runs)
}

#[test]
fn test_hosts_ignore_the_environment_of_the_shell_that_runs_the_tests() {
    if std::env::var_os(CHILD).is_some() {
        return hostile();
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let output = Command::new(exe)
        .args(["--exact", TEST, "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .env("WORKER__SYNC_ORDERS__EVERY", "1s")
        .env("WORKER__SYNC_ORDERS__RETRY", "none")
        .env("WORKER__NOBODY__EVERY", "1s")
        .env("WORKER_CONFIG", "/nonexistent/workers.toml")
        .output()
        .expect("the test binary runs as a child");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("hostile environment: all checks passed"),
        "the child ran no check:\n{stdout}"
    );
}

/// In the child, with the hostile variables set.
fn hostile() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("a runtime");
    rt.block_on(async {
        // The control: a host built as in production reads the environment, and refuses it.
        let (worker, _) = counting(Duration::from_secs(10));
        let err = Host::builder()
            .worker(worker)
            .build()
            .expect_err("a production host reads the hostile environment");
        println!("a production host: {err}");

        // A test host keeps the declared schedule: 0, 10, .., 60 s.
        let (worker, runs) = counting(Duration::from_secs(10));
        let host = TestHost::start(Host::builder().worker(worker)).expect("a test host builds");
        host.advance(Duration::from_mins(1)).await;
        assert_eq!(
            runs.load(Ordering::SeqCst),
            7,
            "every 10s for 60 s, not every 1s"
        );
        host.stop().await.expect("stops");

        let (worker, _) = counting(Duration::from_secs(10));
        let run = run_once(worker, Host::builder())
            .await
            .expect("run_once builds its host");
        assert_eq!(run.result, Outcome::Success);

        // Asked for, the overrides apply: here the one that makes sense for this host.
        let (worker, runs) = counting(Duration::from_secs(10));
        let asked = std::env::vars().filter(|(name, _)| name == "WORKER__SYNC_ORDERS__EVERY");
        let host = TestHost::start(Host::builder().worker(worker).config_env(asked))
            .expect("a test host builds");
        host.advance(Duration::from_secs(10)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 11, "every 1s, as asked");
        host.stop().await.expect("stops");
    });
    println!("hostile environment: all checks passed");
}

#[test]
fn a_host_installs_the_global_recorder_only_when_asked_and_serves_the_applications_own() {
    use metrics_exporter_prometheus::PrometheusBuilder;

    let (worker, _) = counting(Duration::from_secs(10));
    let serving = Host::builder()
        .worker(worker)
        .serve("127.0.0.1:0")
        .build()
        .expect("a serving host builds");
    // The application installs its own recorder after building the host: the host took none.
    let recorder = worker_core::worker_buckets(PrometheusBuilder::new()).build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).expect("no recorder was installed by the host");
    let app_page = handle.clone();
    metrics::counter!("orders_shipped_total").increment(3);
    drop(serving);

    // Handed over, the application's page comes first on the host's, then the workers'.
    let (worker, _) = counting(Duration::from_secs(10));
    let host = Host::builder()
        .worker(worker)
        .prometheus(handle)
        .build()
        .expect("a host with the application's recorder builds");
    let page = host.handle().render_metrics();
    let user = page
        .find("orders_shipped_total 3")
        .expect("the application's series");
    assert_eq!(
        page.matches("# TYPE worker_runs_total counter").count(),
        1,
        "the workers' series once, though the bridge publishes them to the same recorder: {page}"
    );
    let workers = page
        .find("worker_runs_total{worker=\"sync_orders\",result=\"success\"} 0")
        .expect("the workers' series");
    assert!(user < workers, "{page}");

    // Asked to install one while another is installed, the build fails and says what to do.
    let (worker, _) = counting(Duration::from_secs(10));
    let err = Host::builder()
        .worker(worker)
        .install_recorder()
        .build()
        .expect_err("a second global recorder cannot be installed");
    assert!(err.is_recorder(), "{err}");
    assert!(
        err.to_string()
            .contains("pass its `PrometheusHandle` to `.prometheus(handle)`"),
        "{err}"
    );
    // The application serves its own page (its own `/metrics` route): the bridge published
    // every worker series there.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("a runtime");
    let host_page = rt.block_on(run_the_two_workers());
    assert_same_worker_series(&host_page, &app_page.render());
}

/// A scheduled worker that fails every third run, and a queue worker fed by the test.
fn a_scheduled_and_a_queue_worker() -> [Worker; 2] {
    let runs = Arc::new(AtomicUsize::new(0));
    let scheduled = Worker::builder("sync_orders")
        .every(Duration::from_secs(10))
        .handler(move || {
            let run = runs.fetch_add(1, Ordering::SeqCst);
            async move {
                if run % 3 == 2 {
                    Err::<(), BoxError>("upstream refused".into())
                } else {
                    Ok(())
                }
            }
        });
    let queue = Worker::builder("send_email")
        .queue::<u32>("emails")
        .handler(|job: Job<u32>| async move {
            let _ = *job;
        });
    [scheduled, queue]
}

/// Runs the two workers for 55 simulated seconds with 5 jobs sent, and a third one added once
/// the host runs, then stops; the host's own page at the end.
async fn run_the_two_workers() -> String {
    let host = Host::builder()
        .workers(a_scheduled_and_a_queue_worker())
        .metrics_facade()
        .build()
        .expect("builds");
    let handle = host.handle();
    let emails = handle.queue::<u32>("emails").expect("the queue");
    let running = tokio::spawn(host.run_until(tokio::time::sleep(Duration::from_secs(55))));
    for n in 0..5 {
        emails.send(n).await.expect("sent");
    }
    let added = Worker::builder("tenant_acme")
        .every(Duration::from_secs(10))
        .handler(|| async {});
    handle.add_worker(added).await.expect("added");
    running.await.expect("joins").expect("stops cleanly");
    handle.render_metrics()
}

/// Every sample of the `worker_*` families of a text exposition, by name and sorted labels.
fn worker_samples(page: &str) -> std::collections::BTreeMap<String, f64> {
    page.lines()
        .filter(|line| line.starts_with("worker_"))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (name, labels) = series.split_once('{').unwrap_or((series, "}"));
            // Bucket bounds written as numbers (`le="1"` and `le="1.0"` are one bound).
            let mut labels: Vec<String> = labels
                .trim_end_matches('}')
                .split(',')
                .filter(|l| !l.is_empty())
                .map(|l| match l.strip_prefix("le=\"") {
                    Some(le) => format!("le={:?}", number(le.trim_end_matches('"'))),
                    None => l.to_owned(),
                })
                .collect();
            labels.sort_unstable();
            Some((format!("{name}{{{}}}", labels.join(",")), number(value)?))
        })
        .collect()
}

fn number(text: &str) -> Option<f64> {
    if text == "+Inf" {
        Some(f64::INFINITY)
    } else {
        text.parse().ok()
    }
}

/// The application's page has every series of the host's: the same counters and gauges, and
/// every histogram that has samples, with the same buckets.
fn assert_same_worker_series(host_page: &str, app_page: &str) {
    let host = worker_samples(host_page);
    let app = worker_samples(app_page);
    assert!(host.len() > 150, "the host's page: {host_page}");
    let histogram = |series: &str| {
        let name = series.split('{').next().unwrap_or_default();
        ["_bucket", "_sum", "_count"]
            .iter()
            .any(|s| name.ends_with(s))
    };
    for (series, value) in &host {
        if histogram(series) && *value == 0.0 {
            continue;
        }
        assert_eq!(
            app.get(series),
            Some(value),
            "`{series}` on the application's page:\n{app_page}"
        );
    }
}

const RECORDER_CHILD: &str = "CUSTOM_RECORDER_CHILD";
const RECORDER_TEST: &str = "a_custom_metrics_recorder_sees_counters_gauges_and_histograms";

/// What a recorder of the application's own (`StatsD`, OpenTelemetry, ...) was handed.
#[derive(Default)]
struct Captured {
    counters:
        std::sync::Mutex<std::collections::BTreeMap<String, Arc<std::sync::atomic::AtomicU64>>>,
    gauges: std::sync::Mutex<std::collections::BTreeMap<String, Arc<std::sync::atomic::AtomicU64>>>,
    histograms: std::sync::Mutex<std::collections::BTreeMap<String, Arc<Samples>>>,
    described: std::sync::Mutex<Vec<String>>,
}

#[derive(Default)]
struct Samples(std::sync::Mutex<Vec<f64>>);

impl metrics::HistogramFn for Samples {
    fn record(&self, value: f64) {
        self.0.lock().unwrap().push(value);
    }
}

fn key_text(key: &metrics::Key) -> String {
    let labels: Vec<String> = key
        .labels()
        .map(|l| format!("{}={}", l.key(), l.value()))
        .collect();
    format!("{}{{{}}}", key.name(), labels.join(","))
}

struct CapturingRecorder(&'static Captured);

impl metrics::Recorder for CapturingRecorder {
    fn describe_counter(
        &self,
        key: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
        self.0
            .described
            .lock()
            .unwrap()
            .push(key.as_str().to_owned());
    }
    fn describe_gauge(
        &self,
        key: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
        self.0
            .described
            .lock()
            .unwrap()
            .push(key.as_str().to_owned());
    }
    fn describe_histogram(
        &self,
        key: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
        self.0
            .described
            .lock()
            .unwrap()
            .push(key.as_str().to_owned());
    }
    fn register_counter(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        let mut counters = self.0.counters.lock().unwrap();
        metrics::Counter::from_arc(counters.entry(key_text(key)).or_default().clone())
    }
    fn register_gauge(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        let mut gauges = self.0.gauges.lock().unwrap();
        metrics::Gauge::from_arc(gauges.entry(key_text(key)).or_default().clone())
    }
    fn register_histogram(
        &self,
        key: &metrics::Key,
        _: &metrics::Metadata<'_>,
    ) -> metrics::Histogram {
        let mut histograms = self.0.histograms.lock().unwrap();
        metrics::Histogram::from_arc(histograms.entry(key_text(key)).or_default().clone())
    }
}

#[test]
fn a_custom_metrics_recorder_sees_counters_gauges_and_histograms() {
    if std::env::var_os(RECORDER_CHILD).is_none() {
        // A process of its own: the global recorder is the other test's here.
        let exe = std::env::current_exe().expect("the test binary's path");
        let output = Command::new(exe)
            .args(["--exact", RECORDER_TEST, "--nocapture", "--test-threads=1"])
            .env(RECORDER_CHILD, "1")
            .output()
            .expect("the test binary runs as a child");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && stdout.contains("custom recorder: all checks passed"),
            "the child failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        return;
    }
    let captured: &'static Captured = Box::leak(Box::default());
    metrics::set_global_recorder(CapturingRecorder(captured)).expect("the first recorder");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("a runtime");
    rt.block_on(run_the_two_workers());
    check_captured(captured);
    println!("custom recorder: all checks passed");
}

/// What the recorder saw of [`run_the_two_workers`].
fn check_captured(captured: &Captured) {
    let counter = |series: &str| {
        let counters = captured.counters.lock().unwrap();
        counters.get(series).map(|c| c.load(Ordering::SeqCst))
    };
    // Runs at 0, 10, .., 50 s: the third and the sixth failed.
    assert_eq!(
        counter("worker_runs_total{worker=sync_orders,result=success}"),
        Some(4)
    );
    assert_eq!(
        counter("worker_runs_total{worker=sync_orders,result=failure}"),
        Some(2)
    );
    assert_eq!(
        counter("worker_runs_total{worker=send_email,result=success}"),
        Some(5)
    );
    assert_eq!(
        counter("worker_jobs_enqueued_total{worker=send_email}"),
        Some(5)
    );
    assert_eq!(
        counter("worker_admin_refused_total{reason=unauthorized}"),
        Some(0)
    );
    assert_eq!(
        counter("worker_runs_total{worker=tenant_acme,result=success}"),
        Some(6),
        "a worker added at run time reaches the recorder too"
    );
    assert_eq!(
        counter("worker_workers_changed_total{change=added}"),
        Some(1)
    );

    let gauge = |series: &str| {
        let gauges = captured.gauges.lock().unwrap();
        gauges
            .get(series)
            .map(|g| f64::from_bits(g.load(Ordering::SeqCst)))
    };
    assert_eq!(
        gauge("worker_state{worker=sync_orders,state=stopped}"),
        Some(1.0)
    );
    assert_eq!(
        gauge("worker_state{worker=sync_orders,state=idle}"),
        Some(0.0)
    );
    assert_eq!(gauge("worker_queue_depth{worker=send_email}"), Some(0.0));
    assert!(
        gauge("worker_last_success_timestamp_seconds{worker=sync_orders}")
            .is_some_and(|t| t > 1.0e9),
        "a Unix time"
    );
    assert_eq!(
        gauge("worker_info{worker=sync_orders,schedule=every 10s}"),
        Some(1.0)
    );

    let samples = |series: &str| {
        let histograms = captured.histograms.lock().unwrap();
        histograms.get(series).map(|h| h.0.lock().unwrap().len())
    };
    assert_eq!(
        samples("worker_run_duration_seconds{worker=sync_orders,result=success}"),
        Some(4)
    );
    assert_eq!(
        samples("worker_run_duration_seconds{worker=sync_orders,result=failure}"),
        Some(2)
    );
    assert_eq!(
        samples("worker_schedule_lag_seconds{worker=sync_orders}"),
        Some(6)
    );
    assert_eq!(
        samples("worker_queue_wait_seconds{worker=send_email}"),
        Some(5)
    );
    assert_eq!(
        samples("worker_run_duration_seconds{worker=tenant_acme,result=success}"),
        Some(6)
    );

    let described = captured.described.lock().unwrap();
    for family in [
        "worker_runs_total",
        "worker_state",
        "worker_run_duration_seconds",
    ] {
        assert!(
            described.iter().any(|d| d == family),
            "{family} described: {described:?}"
        );
    }
}
