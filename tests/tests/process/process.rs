//! Process-level tests: the real example binaries, real signals, a real HTTP scrape, and
//! Prometheus's own `promtool` on the exposition.

use crate::support::{QUICKSTART_WORKERS, example, free_addr, get};
use std::io::Write as _;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// Every metric of DESIGN.md that the core emits, present from start-up.
const METRICS: &[&str] = &[
    "worker_runs_total",
    "worker_run_duration_seconds_bucket",
    "worker_run_duration_seconds_sum",
    "worker_run_duration_seconds_count",
    "worker_run_retries_total",
    "worker_runs_skipped_total",
    "worker_schedule_lag_seconds_bucket",
    "worker_run_active",
    "worker_last_success_timestamp_seconds",
    "worker_next_run_timestamp_seconds",
    "worker_state",
    "worker_restarts_total",
    "worker_circuit_state",
    "worker_info",
];

fn spawn(name: &str, addr: &str) -> Child {
    spawn_with(name, addr, &[])
}

fn spawn_with(name: &str, addr: &str, env: &[(&str, &str)]) -> Child {
    Command::new(example(name))
        .envs(env.iter().copied())
        .env("METRICS_ADDR", addr)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .env_remove("RUST_BACKTRACE")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the example")
}

/// Polls until `pred(body)` holds for `/metrics`, or panics after a generous limit (the limit
/// only keeps a broken build from hanging the suite; nothing asserts on how fast it is).
fn scrape_until(child: &mut Child, addr: &str, pred: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_mins(1);
    loop {
        if let Some(status) = child.try_wait().expect("poll child") {
            panic!("the example exited early with {status}");
        }
        if let Ok((200, body)) = get(addr, "/metrics")
            && pred(&body)
        {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "no matching /metrics page on {addr}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn terminate(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
}

/// Waits for the child to exit (bounded, so a hung shutdown fails instead of hanging).
fn wait(mut child: Child) -> (ExitStatus, String) {
    let deadline = Instant::now() + Duration::from_mins(1);
    while child.try_wait().expect("poll child").is_none() {
        if Instant::now() > deadline {
            child.kill().ok();
            panic!("the example did not exit within 60 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let Output {
        status,
        stdout,
        stderr,
        ..
    } = child.wait_with_output().expect("collect output");
    let log = String::from_utf8_lossy(&stdout).into_owned() + &String::from_utf8_lossy(&stderr);
    (status, log)
}

fn promtool(exposition: &str) -> Output {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("`promtool` is on PATH: run the suite with scripts/test, which installs it");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(exposition.as_bytes())
        .expect("write exposition");
    child.wait_with_output().expect("promtool output")
}

#[test]
fn quickstart_serves_valid_metrics_and_stops_gracefully_on_sigterm() {
    let _turn = crate::support::module_turn(module_path!());
    let addr = free_addr();
    let mut child = spawn("quickstart", &addr);

    // Every series of every worker exists from the first scrape, before any run finished.
    let first = scrape_until(&mut child, &addr, |body| body.contains("worker_runs_total"));
    for metric in METRICS {
        for worker in QUICKSTART_WORKERS {
            let series = format!("{metric}{{worker=\"{worker}\"");
            assert!(first.contains(&series), "missing {series} in:\n{first}");
        }
    }
    for result in ["success", "failure", "panic", "timeout", "cancelled"] {
        assert!(first.contains(&format!("worker=\"heartbeat\",result=\"{result}\"")));
    }

    // Wait until the heartbeat has succeeded at least twice, then check the page as Prometheus would.
    let body = scrape_until(&mut child, &addr, |body| {
        counter(
            body,
            "worker_runs_total{worker=\"heartbeat\",result=\"success\"}",
        ) >= 2.0
    });
    assert!(body.contains("# HELP worker_runs_total"));
    assert!(body.contains("# TYPE worker_run_duration_seconds histogram"));
    // What the quickstart's own code records through the `metrics` facade is on the same page.
    let body = scrape_until(&mut child, &addr, |body| {
        counter(body, "orders_shipped_total") >= 1.0
    });
    let checked = promtool(&body);
    assert!(
        checked.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );

    let (status, unknown) = get(&addr, "/nope").expect("request");
    assert_eq!(status, 404, "{unknown}");

    terminate(&child);
    let (status, log) = wait(child);
    // The quickstart's shutdown timeout is 10 s: an exit code of 0 means nothing overran it.
    assert!(status.success(), "exit status {status}, log:\n{log}");
    assert!(log.contains("received SIGTERM"), "{log}");
    assert!(log.contains("all workers stopped"), "{log}");
}

/// The `key=value` fields of the first log line holding `message`.
fn fields<'a>(log: &'a str, message: &str) -> std::collections::HashMap<&'a str, &'a str> {
    let line = log
        .lines()
        .find(|line| line.contains(message))
        .unwrap_or_else(|| panic!("no `{message}` line in:\n{log}"));
    line.split_whitespace()
        .filter_map(|field| field.split_once('='))
        .map(|(key, value)| (key, value.trim_matches('"')))
        .collect()
}

#[test]
fn quickstart_under_sigterm_with_a_full_queue_accounts_for_every_job() {
    let _turn = crate::support::module_turn(module_path!());
    let addr = free_addr();
    // Far more emails than the queue holds (64), so `queue_digests` waits on a full queue; a
    // short stop budget (from the environment, as an operator would set it) leaves jobs over.
    let mut child = spawn_with(
        "quickstart",
        &addr,
        &[
            ("QUICKSTART_EMAILS", "100000"),
            ("WORKER__SEND_EMAIL__STOP_BUDGET", "300ms"),
        ],
    );
    let first = scrape_until(&mut child, &addr, |body| {
        body.contains("worker_queue_depth")
    });
    for metric in [
        "worker_queue_depth",
        "worker_queue_in_flight",
        "worker_queue_wait_seconds_bucket",
        "worker_queue_rejected_total",
        "worker_jobs_enqueued_total",
        "worker_jobs_dead_total",
        "worker_jobs_left_over_total",
        "worker_jobs_dropped_total",
    ] {
        let series = format!("{metric}{{worker=\"send_email\"");
        assert!(first.contains(&series), "missing {series} in:\n{first}");
    }
    let full = scrape_until(&mut child, &addr, |body| {
        counter(body, "worker_queue_depth{worker=\"send_email\"}") >= 60.0
    });
    let enqueued_before = counter(&full, "worker_jobs_enqueued_total{worker=\"send_email\"}");
    let checked = promtool(&full);
    assert!(
        checked.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );

    terminate(&child);
    let (status, log) = wait(child);
    assert!(status.success(), "exit status {status}, log:\n{log}");
    let stopped = fields(&log, "queue stopped");
    let count = |key: &str| -> u64 {
        stopped
            .get(key)
            .and_then(|value| value.parse().ok())
            .unwrap_or_else(|| panic!("no `{key}` in the `queue stopped` line:\n{log}"))
    };
    let (enqueued, finished, cancelled, left) = (
        count("enqueued"),
        count("finished"),
        count("cancelled"),
        count("left_over"),
    );
    // Every job accepted is accounted for, once.
    assert_eq!(enqueued, finished + cancelled + left, "{log}");
    #[allow(clippy::cast_precision_loss, reason = "job counts far below 2^52")]
    let grew = enqueued_before <= enqueued as f64;
    assert!(grew, "{enqueued_before} then {enqueued}");
    assert!(
        left > 0,
        "a full queue and a 300 ms budget leave jobs over:\n{log}"
    );
    assert_eq!(stopped.get("left_over_to"), Some(&"on_leftovers"), "{log}");
    // The quickstart's `on_leftovers` hook received exactly those.
    let unsent = fields(&log, "emails left unsent at shutdown");
    assert_eq!(
        unsent.get("emails"),
        Some(&left.to_string().as_str()),
        "{log}"
    );
    // The feeder, waiting on the full queue, got its email back when sends closed.
    assert!(log.contains("the host is stopping"), "{log}");
    assert!(log.contains("all workers stopped"), "{log}");
}

#[test]
fn a_worker_ignoring_cancellation_is_aborted_at_the_deadline_and_the_exit_code_is_non_zero() {
    let _turn = crate::support::module_turn(module_path!());
    let addr = free_addr();
    let mut child = spawn("shutdown_deadline", &addr);
    // Both workers are running (the stubborn one is inside its hour-long sleep).
    scrape_until(&mut child, &addr, |body| {
        counter(body, "worker_run_active{worker=\"stubborn\"}") > 0.5
            && counter(body, "worker_run_active{worker=\"polite\"}") > 0.5
    });

    terminate(&child);
    let (status, log) = wait(child);
    assert_eq!(status.code(), Some(1), "log:\n{log}");
    assert!(
        log.contains("aborted workers that were still running: stubborn"),
        "the error names the worker that overran:\n{log}"
    );
    assert!(!log.contains("still running: stubborn, polite"), "{log}");
}

#[test]
fn a_worker_beyond_its_restart_limit_with_stop_host_stops_the_process_non_zero() {
    let _turn = crate::support::module_turn(module_path!());
    let addr = free_addr();
    // Its worker panics every 200 ms with `max_restarts = 2, escalate = stop_host`; nobody
    // signals it: it must exit by itself.
    let child = spawn("escalation", &addr);

    let (status, log) = wait(child);
    assert_eq!(status.code(), Some(1), "log:\n{log}");
    assert!(
        log.contains("stopping the host (escalate = stop_host)"),
        "the supervisor logs the escalation:\n{log}"
    );
    assert!(
        log.contains("stopped the host: broken_import exceeded its restart limit"),
        "the error `main` returns names the worker:\n{log}"
    );
    // Three panics: two restarts, then the third escalates. The identical second and third
    // are not logged but counted, and the count is logged when the worker stops.
    assert_eq!(
        log.matches("worker panicked").count(),
        1,
        "identical panics are logged once:\n{log}"
    );
    assert!(
        log.contains("identical log lines of this worker were not logged before it stopped")
            && log.contains("repeated=2"),
        "the two others are counted:\n{log}"
    );
}

/// The value of one series in a Prometheus text exposition (`-1` when absent).
fn counter(body: &str, series: &str) -> f64 {
    body.lines()
        .find_map(|line| line.strip_prefix(series))
        .and_then(|rest| rest.trim().parse().ok())
        .unwrap_or(-1.0)
}
