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
use worker_core::{Host, Outcome, Worker};

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
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).expect("no recorder was installed by the host");
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
}
