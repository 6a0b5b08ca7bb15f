//! A real Prometheus server (Debian's `prometheus`, installed by scripts/test) scrapes the
//! quickstart example, and a `PromQL` query sees every worker's `worker_runs_total` series.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::support::{QUICKSTART_WORKERS, Scratch, example, free_addr, get_http10};
use serde_json::Value;

const PROMETHEUS: &str = "/usr/bin/prometheus";
const JOB: &str = "quickstart";
const RESULTS: &[&str] = &["success", "failure", "panic", "timeout", "cancelled"];

/// A child process that is killed on drop unless it has already exited, so a failed assertion
/// leaves nothing running.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            self.0.kill().ok();
            self.0.wait().ok();
        }
    }
}

impl Process {
    /// Panics with `what` if the process has exited.
    fn assert_running(&mut self, what: &str) {
        if let Some(status) = self.0.try_wait().expect("poll child") {
            panic!("{what} exited early with {status} (its log is below)");
        }
    }
}

/// Percent-encodes a `PromQL` expression for a query string.
fn encode(query: &str) -> String {
    query
        .bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(byte).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// The result vector of an instant query, or why there is none yet.
fn query(prometheus: &str, promql: &str) -> Result<Vec<Value>, String> {
    let path = format!("/api/v1/query?query={}", encode(promql));
    let (status, body) = get_http10(prometheus, &path).map_err(|err| err.to_string())?;
    if status != 200 {
        return Err(format!("HTTP {status}: {body}"));
    }
    let json: Value = serde_json::from_str(&body).map_err(|err| format!("{err}: {body}"))?;
    match json["data"]["result"].as_array() {
        Some(result) if json["status"] == "success" => Ok(result.clone()),
        _ => Err(format!("unexpected answer: {body}")),
    }
}

fn label<'a>(series: &'a Value, name: &str) -> &'a str {
    series["metric"][name].as_str().unwrap_or_default()
}

/// The `worker` label values and, for each, its `result` label values.
fn results_by_worker(vector: &[Value]) -> BTreeMap<&str, BTreeSet<&str>> {
    let mut workers = BTreeMap::<_, BTreeSet<_>>::new();
    for series in vector {
        workers
            .entry(label(series, "worker"))
            .or_default()
            .insert(label(series, "result"));
    }
    workers
}

/// Starts the quickstart on a free loopback port and waits for its `/metrics`; returns the
/// process and its address.
fn start_quickstart(scratch: &Scratch) -> (Process, String) {
    let addr = free_addr();
    let (stdout, stderr) = scratch.log("quickstart");
    let mut quickstart = Process(
        Command::new(example("quickstart"))
            .env("METRICS_ADDR", &addr)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .env_remove("RUST_BACKTRACE")
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .expect("start the quickstart"),
    );
    let deadline = Instant::now() + Duration::from_mins(1);
    while !matches!(get_http10(&addr, "/metrics"), Ok((200, _))) {
        quickstart.assert_running("the quickstart");
        assert!(Instant::now() < deadline, "no /metrics on {addr}");
        std::thread::sleep(Duration::from_millis(100));
    }
    (quickstart, addr)
}

/// Starts Prometheus on a free loopback port, scraping `target` every second as job [`JOB`];
/// returns the process and its address.
fn start_prometheus(scratch: &Scratch, target: &str) -> (Process, String) {
    let config = scratch.dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: {JOB}\n    static_configs:\n      \
             - targets: ['{target}']\n"
        ),
    )
    .expect("write the Prometheus config");
    let addr = free_addr();
    let (stdout, stderr) = scratch.log("prometheus");
    let prometheus = Process(
        Command::new(PROMETHEUS)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                scratch.dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .expect("start prometheus"),
    );
    (prometheus, addr)
}

/// Sends SIGTERM and waits (bounded) for the exit status.
fn terminate(mut process: Process) -> ExitStatus {
    let status = Command::new("kill")
        .args(["-TERM", &process.0.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -TERM failed");
    let deadline = Instant::now() + Duration::from_mins(1);
    loop {
        if let Some(status) = process.0.try_wait().expect("poll child") {
            return status;
        }
        assert!(Instant::now() < deadline, "no exit within 60 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_real_prometheus_scrapes_every_worker_of_the_quickstart() {
    let _turn = crate::support::module_turn(module_path!());
    assert!(
        Path::new(PROMETHEUS).is_file(),
        "{PROMETHEUS} is missing: run the suite with scripts/test, which installs Debian's \
         `prometheus` package (through scripts/install-test-deps)"
    );
    // Declared first, dropped last: the processes are gone before their logs are printed.
    let scratch = Scratch::new("prometheus", &["quickstart", "prometheus"]);
    let (mut quickstart, target) = start_quickstart(&scratch);
    let (mut prometheus, server) = start_prometheus(&scratch, &target);

    // Until a scrape has stored a series of every worker (the quickstart registers them all at
    // start-up, so the first scrape is enough).
    let started = Instant::now();
    let deadline = started + Duration::from_mins(1);
    let vector = loop {
        prometheus.assert_running("prometheus");
        quickstart.assert_running("the quickstart");
        match query(&server, "worker_runs_total") {
            Ok(vector)
                if QUICKSTART_WORKERS
                    .iter()
                    .all(|worker| results_by_worker(&vector).contains_key(worker)) =>
            {
                break vector;
            }
            answer => assert!(
                Instant::now() < deadline,
                "Prometheus on {server} has not scraped every worker of {target} within 60 s; \
                 last answer: {answer:?}"
            ),
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    eprintln!(
        "Prometheus answered with every worker {:.1?} after it started",
        started.elapsed()
    );

    let workers = results_by_worker(&vector);
    assert_eq!(
        workers.keys().copied().collect::<BTreeSet<_>>(),
        QUICKSTART_WORKERS.iter().copied().collect(),
        "the `worker` labels of worker_runs_total: {vector:#?}"
    );
    for (worker, results) in &workers {
        assert_eq!(
            *results,
            RESULTS.iter().copied().collect(),
            "the `result` labels of worker {worker}"
        );
    }
    for series in &vector {
        assert_eq!(label(series, "job"), JOB, "{series}");
        assert_eq!(label(series, "instance"), target, "{series}");
    }

    // The scrape itself is healthy.
    let up = query(&server, &format!("up{{job=\"{JOB}\"}}")).expect("query `up`");
    assert_eq!(up.len(), 1, "one target: {up:?}");
    assert_eq!(
        up[0]["value"][1], "1",
        "the scrape of {target} failed: {up:?}"
    );

    drop(prometheus);
    // The quickstart's shutdown timeout is 10 s: an exit code of 0 means nothing overran it.
    let status = terminate(quickstart);
    assert!(status.success(), "the quickstart exited with {status}");
}

/// The alerting rules the README documents for the database hazards (`docs/prometheus`) load
/// into Prometheus's own rule checker, and its unit tests show each one firing on the series
/// that should fire it and quiet on healthy ones.
#[test]
fn the_documented_alerting_rules_fire_when_they_should() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/prometheus");
    for args in [
        &["check", "rules", "rules.yml"][..],
        &["test", "rules", "rules_test.yml"][..],
    ] {
        let output = Command::new("promtool")
            .args(args)
            .current_dir(&dir)
            .output()
            .expect("`promtool` is on PATH: run the suite with scripts/test, which installs it");
        assert!(
            output.status.success(),
            "promtool {args:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
