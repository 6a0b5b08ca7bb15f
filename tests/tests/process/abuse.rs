//! The promises under abuse, with real processes, real signals and real sockets: the shutdown
//! deadline holds whatever a body does (blocking, spinning, deaf to cancellation, on both
//! runtime flavours, with as many blocking bodies as runtime threads), a second signal ends the
//! process at once, SIGHUP stops it gracefully, a signal during a slow start-up is acted on,
//! `/healthz` answers while every worker thread is blocked, concurrent scrapes of 10,000 workers
//! share one page, and a panic storm costs almost no log and no memory.
//!
//! Times are bounded generously (a loaded CI machine is slow); what is asserted is that the
//! process ends long before a blocked body would have let it (two minutes), with the exit code
//! and the log naming the workers.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use crate::support::{Scratch, example, free_addr, get};

/// `bytes` in MiB, for the figures the tests print.
#[allow(clippy::cast_precision_loss, reason = "figures far below 2^52")]
fn mib(bytes: u64) -> f64 {
    bytes as f64 / f64::from(1 << 20)
}

/// The shutdown timeout the misbehaving example is given, and the grace after it.
const TIMEOUT: Duration = Duration::from_secs(1);
const GRACE: Duration = worker_core::Host::SHUTDOWN_GRACE;
/// What a loaded machine may add to the exit: starting threads, writing logs.
const SLACK: Duration = Duration::from_secs(8);

struct Process {
    child: Child,
    addr: String,
    log: PathBuf,
    _scratch: Scratch,
}

impl Process {
    fn start(name: &str, example_name: &str, env: &[(&str, &str)]) -> Self {
        let scratch = Scratch::new(name, &["child"]);
        let addr = free_addr();
        let (stdout, stderr) = scratch.log("child");
        let mut command = Command::new(example(example_name));
        command
            .env("METRICS_ADDR", &addr)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .env("SHUTDOWN_TIMEOUT_MS", TIMEOUT.as_millis().to_string())
            .env_remove("RUST_BACKTRACE")
            .stdout(stdout)
            .stderr(stderr);
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command.spawn().expect("start the example");
        Self {
            child,
            addr,
            log: scratch.dir.join("child.log"),
            _scratch: scratch,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log holds `needle` `times` times.
    fn wait_for_log(&mut self, needle: &str, times: usize) {
        let deadline = Instant::now() + Duration::from_mins(2);
        while self.log().matches(needle).count() < times {
            if let Some(status) = self.child.try_wait().expect("poll the child") {
                panic!("exited early with {status}:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in the log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args(["-s", signal, &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// Waits for the exit, at most `limit`; returns the status and how long it took.
    fn exit_within(&mut self, limit: Duration) -> (ExitStatus, Duration) {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("poll the child") {
                return (status, start.elapsed());
            }
            if start.elapsed() > limit {
                self.child.kill().ok();
                panic!("still running {limit:?} after the signal:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The process's peak resident memory (`VmHWM`), in bytes.
    fn peak_memory(&self) -> u64 {
        status_kib(self.child.id(), "VmHWM:") * 1024
    }

    /// The process's resident memory (`VmRSS`), in bytes.
    fn memory(&self) -> u64 {
        status_kib(self.child.id(), "VmRSS:") * 1024
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Bodies that hold their thread, on a runtime flavour: SIGTERM ends the process within the
/// deadline plus grace, with [`worker_core::Host::EXIT_FORCED`], naming every worker still running;
/// meanwhile `/healthz` answers.
fn stuck_bodies_end_within_the_deadline(body: &str, flavor: &str, bodies: usize) {
    let name = format!("{body}-{flavor}");
    let count = bodies.to_string();
    let mut process = Process::start(
        &name,
        "misbehaving",
        &[("BODY", body), ("BODIES", &count), ("FLAVOR", flavor)],
    );
    process.wait_for_log("misbehaving now", bodies);
    // Every runtime thread is held by a body; the listener has a thread of its own.
    let asked = Instant::now();
    let (status, health) = get(&process.addr, "/healthz").expect("/healthz answers");
    assert_eq!(status, 200, "{health}");
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "/healthz took {:?}",
        asked.elapsed()
    );

    process.signal("TERM");
    let (status, took) = process.exit_within(TIMEOUT + GRACE + SLACK);
    let log = process.log();
    assert_eq!(
        status.code(),
        Some(worker_core::Host::EXIT_FORCED),
        "{status} after {took:?}:\n{log}"
    );
    assert!(log.contains("received SIGTERM"), "{log}");
    for i in 0..bodies {
        let worker = format!("{body}-{i}");
        let named = log
            .lines()
            .any(|line| line.contains("still_running") && line.contains(&worker));
        assert!(named, "the last words name {worker}:\n{log}");
    }
    eprintln!("{name}: exited {took:?} after SIGTERM (timeout {TIMEOUT:?} + grace {GRACE:?})");
}

#[test]
fn blocking_bodies_on_every_thread_of_a_multi_thread_runtime() {
    let _turn = crate::support::module_turn(module_path!());
    stuck_bodies_end_within_the_deadline("block", "multi_thread", 2);
}

#[test]
fn a_blocking_body_on_a_current_thread_runtime() {
    let _turn = crate::support::module_turn(module_path!());
    stuck_bodies_end_within_the_deadline("block", "current_thread", 1);
}

#[test]
fn spinning_bodies_on_a_multi_thread_runtime() {
    let _turn = crate::support::module_turn(module_path!());
    stuck_bodies_end_within_the_deadline("spin", "multi_thread", 2);
}

#[test]
fn a_spinning_body_on_a_current_thread_runtime() {
    let _turn = crate::support::module_turn(module_path!());
    stuck_bodies_end_within_the_deadline("spin", "current_thread", 1);
}

/// A body deaf to cancellation but yielding is aborted at the deadline by the host itself:
/// `main` returns the error, the process exits 1 before the watchdog would.
#[test]
fn a_body_deaf_to_cancellation_is_aborted_at_the_deadline() {
    let _turn = crate::support::module_turn(module_path!());
    for flavor in ["multi_thread", "current_thread"] {
        let mut process = Process::start(
            &format!("ignore-{flavor}"),
            "misbehaving",
            &[("BODY", "ignore"), ("FLAVOR", flavor)],
        );
        process.wait_for_log("misbehaving now", 1);
        process.signal("TERM");
        let (status, took) = process.exit_within(TIMEOUT + GRACE + SLACK);
        let log = process.log();
        assert_eq!(status.code(), Some(1), "{status} after {took:?}:\n{log}");
        assert!(
            log.contains("aborted workers that were still running: ignore-0"),
            "{log}"
        );
        assert!(
            !log.contains("exiting now"),
            "the watchdog had nothing to do:\n{log}"
        );
    }
}

#[test]
fn a_second_sigterm_or_sigint_while_stopping_exits_at_once_naming_the_workers() {
    let _turn = crate::support::module_turn(module_path!());
    for (second, code) in [("INT", 130), ("TERM", 143)] {
        let mut process = Process::start(
            &format!("second-{second}"),
            "misbehaving",
            &[("BODY", "block"), ("SHUTDOWN_TIMEOUT_MS", "60000")],
        );
        process.wait_for_log("misbehaving now", 1);
        process.signal("TERM");
        process.wait_for_log("received SIGTERM", 1);
        process.signal(second);
        // Long before the 60 s timeout.
        let (status, took) = process.exit_within(SLACK);
        let log = process.log();
        assert_eq!(status.code(), Some(code), "{status} after {took:?}:\n{log}");
        assert!(
            log.contains(&format!("received a second SIG{second} while stopping")),
            "{log}"
        );
        assert!(
            log.lines()
                .any(|line| line.contains("still_running") && line.contains("block-0")),
            "{log}"
        );
    }
}

#[test]
fn sighup_stops_gracefully() {
    let _turn = crate::support::module_turn(module_path!());
    let mut process = Process::start("sighup", "misbehaving", &[("BODY", "polite")]);
    process.wait_for_log("misbehaving now", 1);
    process.signal("HUP");
    let (status, took) = process.exit_within(TIMEOUT + GRACE + SLACK);
    let log = process.log();
    assert!(status.success(), "{status} after {took:?}:\n{log}");
    assert!(log.contains("received SIGHUP"), "{log}");
    assert!(log.contains("all workers stopped"), "{log}");
}

#[test]
fn sigterm_during_a_slow_start_up_stops_the_host_gracefully() {
    let _turn = crate::support::module_turn(module_path!());
    let mut process = Process::start(
        "slow-start",
        "misbehaving",
        &[
            ("BODIES", "0"),
            ("WORKERS", "200000"),
            ("SHUTDOWN_TIMEOUT_MS", "10000"),
        ],
    );
    // Logged by `HostBuilder::run` once its signal handlers are in place, before it builds.
    process.wait_for_log("building the host", 1);
    let before = process.log();
    process.signal("TERM");
    let (status, took) = process.exit_within(TIMEOUT + GRACE + Duration::from_mins(1));
    let log = process.log();
    assert!(status.success(), "{status} after {took:?}:\n{log}");
    assert!(log.contains("received SIGTERM"), "{log}");
    assert!(
        log.contains("all workers stopped") || log.contains("no worker started"),
        "{log}"
    );
    eprintln!(
        "slow start: signal {} the host started; exit {took:?} after it",
        if before.contains("host started") {
            "after"
        } else {
            "before"
        }
    );
}

/// Sends `request` one byte at a time, one every `pause`, until the server closes the
/// connection; returns how long the server kept it.
fn trickle(addr: &str, request: &[u8], pause: Duration) -> Duration {
    let start = Instant::now();
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_millis(1)))
        .expect("timeout");
    for byte in request.iter().cycle().take(10_000) {
        if stream.write_all(&[*byte]).is_err() {
            break;
        }
        let mut buf = [0; 256];
        match stream.read(&mut buf) {
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {}
            // Closed, with or without an error answer (408) first.
            _ => break,
        }
        std::thread::sleep(pause);
    }
    start.elapsed()
}

#[test]
fn slow_and_idle_clients_past_the_connection_cap_do_not_stop_probes() {
    let _turn = crate::support::module_turn(module_path!());
    let process = Process::start("slow-clients", "misbehaving", &[("BODY", "polite")]);
    let addr = process.addr.clone();
    wait_for_listener(&addr);
    // The default cap is 256 connections: 300 slow-header clients and 300 idle ones.
    let slow: Vec<_> = (0..300)
        .map(|_| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                trickle(
                    &addr,
                    b"GET /healthz HTTP/1.1\r\nHost: x\r\n",
                    Duration::from_millis(500),
                )
            })
        })
        .collect();
    let idle: Vec<TcpStream> = (0..300)
        .filter_map(|_| TcpStream::connect(&addr).ok())
        .collect();
    let mut slowest = Duration::ZERO;
    for _ in 0..20 {
        let asked = Instant::now();
        let (status, body) = get(&addr, "/healthz").expect("/healthz answers");
        slowest = slowest.max(asked.elapsed());
        assert_eq!(status, 200, "{body}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        slowest < Duration::from_secs(1),
        "/healthz took {slowest:?} with 600 hostile connections"
    );
    // Every slow client was closed: by the header timeout (5 s), or to make room.
    for client in slow {
        let kept = client.join().expect("the client thread");
        assert!(
            kept < Duration::from_secs(30),
            "a slow client kept {kept:?}"
        );
    }
    drop(idle);
    eprintln!("slowest /healthz among 600 hostile connections: {slowest:?}");
}

fn wait_for_listener(addr: &str) {
    let deadline = Instant::now() + Duration::from_mins(1);
    while get(addr, "/healthz").is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {addr}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn concurrent_scrapes_of_ten_thousand_workers_share_one_page() {
    let _turn = crate::support::module_turn(module_path!());
    let mut process = Process::start(
        "scrapes",
        "misbehaving",
        &[("BODIES", "0"), ("WORKERS", "10000")],
    );
    process.wait_for_log("host started", 1);
    let addr = process.addr.clone();
    let (status, page) = get(&addr, "/metrics").expect("one scrape");
    assert_eq!(status, 200);
    assert!(page.contains("worker_runs_total{worker=\"idle-9999\",result=\"success\"} 0"));
    let one = process.peak_memory();
    let scrapes: Vec<_> = (0..20)
        .map(|_| {
            let addr = addr.clone();
            std::thread::spawn(move || get(&addr, "/metrics").expect("a scrape"))
        })
        .collect();
    for scrape in scrapes {
        let (status, body) = scrape.join().expect("the scrape thread");
        assert_eq!(status, 200);
        assert_eq!(body.len(), page.len(), "every scrape gets the whole page");
    }
    let twenty = process.peak_memory();
    let page_mib = mib(page.len() as u64);
    let grew_mib = mib(twenty.saturating_sub(one));
    eprintln!(
        "page {page_mib:.1} MiB ({} B per worker); peak memory after 1 scrape {:.1} MiB, after 20 \
         concurrent scrapes {:.1} MiB (+{grew_mib:.1} MiB)",
        page.len() / 10_000,
        mib(one),
        mib(twenty),
    );
    // Twenty pages rendered apart would add twenty pages; shared, one or two at most.
    assert!(
        grew_mib < 3.0 * page_mib,
        "20 concurrent scrapes added {grew_mib:.1} MiB for a page of {page_mib:.1} MiB"
    );
}

#[test]
fn a_panic_storm_costs_little_log_and_no_memory() {
    let _turn = crate::support::module_turn(module_path!());
    let seconds: u64 = std::env::var("STORM_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let mut process = Process::start("storm", "panic_storm", &[("STORM_WORKERS", "50")]);
    process.wait_for_log("host started", 1);
    std::thread::sleep(Duration::from_secs(1));
    let rss_start = process.memory();
    let log_start = process.log().len();
    let panics_start = panics(&process.addr);
    std::thread::sleep(Duration::from_secs(seconds));
    let rss_end = process.memory();
    let log_end = process.log().len();
    let panics_end = panics(&process.addr);
    let caught = panics_end - panics_start;
    let logged = (log_end - log_start) as u64;
    #[allow(clippy::cast_precision_loss, reason = "counts far below 2^52")]
    let (per_panic, rate) = (
        logged as f64 / caught as f64,
        caught as f64 / seconds as f64,
    );
    eprintln!(
        "panic storm, {seconds} s: {caught} panics ({rate:.0}/s), {logged} log bytes \
         ({per_panic:.3} B per panic), RSS {:.1} -> {:.1} MiB",
        mib(rss_start),
        mib(rss_end),
    );
    assert!(caught > 1000, "the storm raged: {caught} panics");
    assert!(per_panic < 1.0, "{per_panic} log bytes per panic");
    assert!(
        rss_end < rss_start + (8 << 20),
        "RSS grew from {rss_start} to {rss_end}"
    );
    let log = process.log();
    assert!(
        !log.contains("thread '"),
        "Rust's default panic hook stayed quiet:\n{}",
        &log[..log.len().min(4000)]
    );
    assert!(
        log.contains("repeated="),
        "the suppressed lines are counted"
    );
}

/// `worker_runs_total{result="panic"}`, summed over every worker.
fn panics(addr: &str) -> u64 {
    let (status, page) = get(addr, "/metrics").expect("a scrape");
    assert_eq!(status, 200);
    page.lines()
        .filter(|line| line.starts_with("worker_runs_total{") && line.contains("result=\"panic\""))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// At its file-descriptor limit, with idle clients holding every descriptor, the process
/// still answers probes: an accept that fails for want of a descriptor frees the quietest
/// connection and tries again.
#[test]
fn at_the_file_descriptor_limit_probes_are_still_answered() {
    let _turn = crate::support::module_turn(module_path!());
    let scratch = Scratch::new("emfile", &["child"]);
    let addr = free_addr();
    let (stdout, stderr) = scratch.log("child");
    let mut child = Command::new("prlimit")
        .arg("--nofile=64:64")
        .arg(example("misbehaving"))
        .env("BODY", "polite")
        .env("METRICS_ADDR", &addr)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .expect("prlimit runs the example");
    wait_for_listener(&addr);
    // More idle clients than the process has descriptors.
    let idle: Vec<TcpStream> = (0..120)
        .filter_map(|_| TcpStream::connect(&addr).ok())
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let mut slowest = Duration::ZERO;
    for _ in 0..10 {
        let asked = Instant::now();
        let (status, body) = get(&addr, "/healthz").expect("/healthz answers");
        slowest = slowest.max(asked.elapsed());
        assert_eq!(status, 200, "{body}");
    }
    let log = std::fs::read_to_string(scratch.dir.join("child.log")).unwrap_or_default();
    child.kill().ok();
    child.wait().ok();
    drop(idle);
    assert!(
        log.contains("the HTTP listener cannot accept a connection"),
        "the limit was reached and logged:\n{log}"
    );
    assert!(
        slowest < Duration::from_secs(1),
        "/healthz took {slowest:?} at the descriptor limit"
    );
    eprintln!("slowest /healthz at the descriptor limit, 120 idle clients: {slowest:?}");
}

/// A log sink that blocks (a pipe nobody reads) stops the threads that log, not the listener,
/// and not the shutdown deadline.
#[test]
fn a_blocked_log_sink_stops_neither_the_probes_nor_the_deadline() {
    let _turn = crate::support::module_turn(module_path!());
    let addr = free_addr();
    let mut child = Command::new(example("misbehaving"))
        .env("BODY", "chatty")
        .env("METRICS_ADDR", &addr)
        .env("SHUTDOWN_TIMEOUT_MS", TIMEOUT.as_millis().to_string())
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        // Pipes never read: once full, every write to them blocks.
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start the example");
    wait_for_listener(&addr);
    std::thread::sleep(Duration::from_secs(1));
    for _ in 0..5 {
        let asked = Instant::now();
        let (status, body) = get(&addr, "/healthz").expect("/healthz answers");
        assert_eq!(status, 200, "{body}");
        assert!(
            asked.elapsed() < Duration::from_secs(1),
            "{:?}",
            asked.elapsed()
        );
    }
    let (status, page) = get(&addr, "/metrics").expect("/metrics answers");
    assert_eq!(status, 200);
    assert!(
        page.contains("worker_run_active{worker=\"chatty-0\"} 1"),
        "the chatty run goes on"
    );
    let signalled = Instant::now();
    let kill = Command::new("kill")
        .args(["-s", "TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(kill.success());
    let status = loop {
        if let Some(status) = child.try_wait().expect("poll the child") {
            break status;
        }
        assert!(
            signalled.elapsed() < TIMEOUT + GRACE + SLACK,
            "still running with a blocked log sink"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(
        status.code(),
        Some(worker_core::Host::EXIT_FORCED),
        "{status}"
    );
    eprintln!(
        "blocked log sink: exited {:?} after SIGTERM",
        signalled.elapsed()
    );
}
