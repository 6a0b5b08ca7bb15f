//! SIGTERM, SIGINT and SIGHUP for [`Host::run`](crate::Host::run), received on an OS thread of
//! their own, so they are acted on when every runtime thread is blocked by a worker's body, and
//! from before the host is built.
//!
//! | signal | while a host runs | otherwise |
//! |---|---|---|
//! | SIGTERM, SIGINT | graceful stop, with the watchdog armed (see [`watchdog`](crate::host::watchdog)) | the default action |
//! | a second SIGTERM or SIGINT | exit at once with 128 + the signal's number, naming the workers still running | |
//! | SIGHUP | graceful stop, as SIGTERM (the terminal went away); repeated, ignored | the default action |
//!
//! Elsewhere than on Unix, Ctrl+C stops the host through tokio.
//!
//! The handlers stay installed for the life of the process (a handler cannot be removed without
//! leaving the signal ignored), so between hosts the thread carries out each signal's default
//! action itself.

use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Kind};
use crate::host::watchdog::{Watchdog, last_words};

/// What a signal stops: the host that is running, or being built to run.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) shutdown: CancellationToken,
    pub(crate) watchdog: Watchdog,
}

#[derive(Debug, Default)]
struct Listener {
    current: Mutex<Option<Current>>,
}

#[derive(Debug)]
struct Current {
    target: Target,
    id: u64,
    /// The first stopping signal received for this target.
    stopping: Option<&'static str>,
}

impl Listener {
    fn current(&self) -> MutexGuard<'_, Option<Current>> {
        self.current.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The process's listener, started once.
fn listener() -> Result<&'static Arc<Listener>, Error> {
    static LISTENER: OnceLock<Result<Arc<Listener>, String>> = OnceLock::new();
    LISTENER
        .get_or_init(start)
        .as_ref()
        .map_err(|message| Error::new(Kind::Signal(std::io::Error::other(message.clone()))))
}

/// Directs the process's stopping signals to `target` until the subscription is dropped.
pub(crate) fn subscribe(target: Target) -> Result<Subscription, Error> {
    static IDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let listener = listener()?;
    let id = IDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    #[cfg(not(unix))]
    {
        // No signal thread here: Ctrl+C through tokio, which needs the runtime to be polled.
        let token = target.shutdown.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                token.cancel();
            }
        });
    }
    *listener.current() = Some(Current {
        target,
        id,
        stopping: None,
    });
    Ok(Subscription { id })
}

/// Signals go to a target while this lives.
#[derive(Debug)]
pub(crate) struct Subscription {
    id: u64,
}

impl Subscription {
    /// Whether a stopping signal was received for this target, and which.
    pub(crate) fn received(&self) -> Option<&'static str> {
        let listener = listener().ok()?;
        let current = listener.current();
        current
            .as_ref()
            .filter(|c| c.id == self.id)
            .and_then(|c| c.stopping)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Ok(listener) = listener() {
            let mut current = listener.current();
            if current.as_ref().is_some_and(|c| c.id == self.id) {
                *current = None;
            }
        }
    }
}

#[cfg(unix)]
fn start() -> Result<Arc<Listener>, String> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP])
        .map_err(|err| err.to_string())?;
    let listener = Arc::new(Listener::default());
    let shared = listener.clone();
    std::thread::Builder::new()
        .name("worker-signals".to_owned())
        .spawn(move || {
            for signal in signals.forever() {
                shared.received(signal);
            }
        })
        .map_err(|err| err.to_string())?;
    Ok(listener)
}

#[cfg(not(unix))]
fn start() -> Result<Arc<Listener>, String> {
    Ok(Arc::new(Listener::default()))
}

#[cfg(unix)]
impl Listener {
    fn received(&self, signal: i32) {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

        let name = match signal {
            SIGTERM => "SIGTERM",
            SIGINT => "SIGINT",
            SIGHUP => "SIGHUP",
            _ => return,
        };
        let mut current = self.current();
        let Some(now) = current.as_mut() else {
            drop(current);
            // No host: what the signal would have done without the handler.
            let _ = signal_hook::low_level::emulate_default_handler(signal);
            return;
        };
        match now.stopping {
            None => {
                now.stopping = Some(name);
                let target = now.target.clone();
                drop(current);
                // Act first: the log's sink may block.
                target.shutdown.cancel();
                target.watchdog.arm();
                let budget = worker_keys::show(target.watchdog.budget());
                let why = if signal == SIGHUP {
                    " (the terminal went away)"
                } else {
                    ""
                };
                detached(move || {
                    tracing::info!(
                        "received {name}{why}: stopping gracefully; the process ends within \
                         {budget} (a second SIGTERM or SIGINT ends it at once)"
                    );
                });
            }
            Some(_) if signal == SIGHUP => {
                drop(current);
                detached(|| tracing::info!("received SIGHUP again while stopping; ignored"));
            }
            Some(_) => {
                let watchdog = now.target.watchdog.clone();
                drop(current);
                let workers = watchdog.running();
                last_words(move || {
                    tracing::error!(
                        still_running = %workers,
                        "received a second {name} while stopping: exiting now"
                    );
                });
                std::process::exit(128 + signal);
            }
        }
    }
}

/// Logs on a thread of its own, without waiting: the signal thread must stay free for the next
/// signal even when the log's sink blocks. [`flush_log`] waits for the line, briefly.
#[cfg(unix)]
fn detached(log: impl FnOnce() + Send + 'static) {
    let (logged, done) = std::sync::mpsc::channel();
    *PENDING_LOG
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(done);
    let _ = std::thread::Builder::new()
        .name("worker-signal-log".to_owned())
        .spawn(move || {
            log();
            let _ = logged.send(());
        });
}

/// The end of the last line [`detached`] logs.
#[cfg(unix)]
static PENDING_LOG: Mutex<Option<std::sync::mpsc::Receiver<()>>> = Mutex::new(None);

/// How long a stopping host waits for the signal's log line: its sink may block.
#[cfg(unix)]
const LOG_WAIT: std::time::Duration = std::time::Duration::from_millis(250);

/// Waits, at most [`LOG_WAIT`], for the line logged about the last signal, so a process that
/// ends right after its host stopped does not lose it.
pub(crate) fn flush_log() {
    #[cfg(unix)]
    {
        let pending = PENDING_LOG
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(done) = pending {
            let _ = done.recv_timeout(LOG_WAIT);
        }
    }
}
