//! Helpers shared by the tests that run real processes (the example binaries, Prometheus,
//! chromedriver): building and locating the examples, free loopback ports, a minimal HTTP
//! client, a scratch directory for the children's logs, and the turns the modules take.

use std::fs::File;
use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Condvar, Mutex, OnceLock, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The quickstart's workers, in registration order.
pub(crate) const QUICKSTART_WORKERS: &[&str] = &[
    "queue_digests",
    "send_email",
    "heartbeat",
    "sync_orders",
    "flaky_report",
    "digest",
    "inventory_feed",
    "cache_cleanup",
];

/// Builds the examples once per test binary and returns the path of `name`. The command is the
/// one `scripts/test` runs before the tests, so cargo finds them fresh there and builds nothing.
pub(crate) fn example(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let status = Command::new(env!("CARGO"))
            .args([
                "build",
                "--quiet",
                "--workspace",
                "--examples",
                "--all-features",
            ])
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building the examples failed");
    });
    // target/<profile>/deps/<test>-<hash> -> target/<profile>/examples/<name>
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe.parent().and_then(Path::parent).expect("target dir");
    profile_dir.join("examples").join(name)
}

/// The tables `examples/replicas.rs` writes, in `schema`: made before its replicas start, which
/// would otherwise race to make them.
pub(crate) fn replicas_tables(schema: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {schema}.effects (order_id bigint PRIMARY KEY, replica text NOT NULL);
         CREATE TABLE IF NOT EXISTS {schema}.runs (order_id bigint NOT NULL, replica text NOT NULL, attempt int NOT NULL);
         CREATE TABLE IF NOT EXISTS {schema}.ticks (at timestamptz PRIMARY KEY, replica text NOT NULL, fence bigint NOT NULL);
         CREATE TABLE IF NOT EXISTS {schema}.tick_runs (at timestamptz NOT NULL, replica text NOT NULL, ran_at timestamptz NOT NULL DEFAULT clock_timestamp());"
    )
}

/// A loopback address with a port that was free a moment ago.
pub(crate) fn free_addr() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").to_string()
}

/// `GET path` over HTTP/1.1; returns the status code and body. The body is read up to its
/// `Content-Length` when there is one (chromedriver keeps the connection open whatever the
/// request asks), else to the end of the connection.
pub(crate) fn get(addr: &str, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = Vec::new();
    let mut chunk = vec![0; 1 << 16];
    // The length of the head and the body's `Content-Length`, once the head is in.
    let mut expected: Option<(usize, Option<usize>)> = None;
    loop {
        let read = stream.read(&mut chunk)?;
        response.extend_from_slice(&chunk[..read]);
        if expected.is_none()
            && let Some(end) = response.windows(4).position(|w| w == b"\r\n\r\n")
        {
            let head = String::from_utf8_lossy(&response[..end]);
            let length = head
                .lines()
                .filter_map(|line| line.split_once(':'))
                .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
                .and_then(|(_, length)| length.trim().parse::<usize>().ok());
            expected = Some((end + 4, length));
        }
        let complete = matches!(
            expected,
            Some((head, Some(length))) if response.len() >= head + length
        );
        if read == 0 || complete {
            break;
        }
    }
    Ok(parse(&String::from_utf8_lossy(&response)))
}

/// `GET path` over HTTP/1.0, so that a server that would answer 1.1 with a chunked body (Go's,
/// in Prometheus) sends a plain one ending at close.
pub(crate) fn get_http10(addr: &str, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(parse(&response))
}

/// The status code and body of a whole response.
fn parse(response: &str) -> (u16, String) {
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((response, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    (status, body.to_owned())
}

/// A scratch directory, removed on drop; it prints the logs of `logs` in it first if the test
/// failed.
pub(crate) struct Scratch {
    pub(crate) dir: PathBuf,
    logs: &'static [&'static str],
}

impl Scratch {
    /// A fresh directory for the test `name`, whose children log as `logs`.
    pub(crate) fn new(name: &str, logs: &'static [&'static str]) -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .as_nanos();
        let dir = std::env::temp_dir().join(format!(
            "worker-tests-{name}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).expect("create the scratch directory");
        Self { dir, logs }
    }

    /// Stdout and stderr of a child, both appended to `<dir>/<name>.log`.
    pub(crate) fn log(&self, name: &str) -> (Stdio, Stdio) {
        let file = File::create(self.dir.join(format!("{name}.log"))).expect("create a log");
        let clone = file.try_clone().expect("clone the log handle");
        (file.into(), clone.into())
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for name in self.logs {
                let log = std::fs::read_to_string(self.dir.join(format!("{name}.log")));
                eprintln!("----- {name} log -----\n{}", log.unwrap_or_default());
            }
        }
        std::fs::remove_dir_all(&self.dir).ok();
    }
}

/// The module whose tests are running, and how many of them.
static TURN: Mutex<(Option<&'static str>, usize)> = Mutex::new((None, 0));
/// Signalled when the last test of a module ends.
static TURN_ENDED: Condvar = Condvar::new();

/// Waits until no test of another module runs, and keeps the tests of other modules waiting
/// until the returned guard drops. Tests of `module` (its `module_path!()`) may run together.
pub(crate) fn module_turn(module: &'static str) -> Turn {
    let mut turn = TURN.lock().unwrap_or_else(PoisonError::into_inner);
    while turn.0.is_some_and(|running| running != module) {
        turn = TURN_ENDED
            .wait(turn)
            .unwrap_or_else(PoisonError::into_inner);
    }
    turn.0 = Some(module);
    turn.1 += 1;
    Turn(())
}

/// A test's share of its module's turn; see [`module_turn`].
#[derive(Debug)]
pub(crate) struct Turn(());

impl Drop for Turn {
    fn drop(&mut self) {
        let mut turn = TURN.lock().unwrap_or_else(PoisonError::into_inner);
        turn.1 -= 1;
        if turn.1 == 0 {
            turn.0 = None;
            TURN_ENDED.notify_all();
        }
    }
}
