//! The shutdown watchdog: an OS thread of its own that ends the process when a shutdown overruns
//! its deadline plus [`SHUTDOWN_GRACE`], whatever the workers' bodies do.
//!
//! The host's own deadline runs on tokio: it aborts the runs that overran, which ends every run
//! that yields. A body that never yields (`loop {}`, `std::thread::sleep`, a blocking call) keeps
//! its runtime thread: aborting it does nothing, and dropping the runtime then waits for that
//! thread; on a `current_thread` runtime the host itself is never polled again. Only a thread
//! outside the runtime can keep the promise, so this one waits on a clock of its own and, past
//! the deadline, logs the workers still running and exits with [`EXIT_FORCED`].

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::observe::board::Board;

/// How long past its shutdown timeout a host may take to end the process once it was asked to
/// stop: time for the runs aborted at the deadline to be dropped and for `main` to return. Past
/// it, the watchdog exits the process with [`EXIT_FORCED`].
pub(crate) const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// The exit code of a process ended by the watchdog: shutdown overran its timeout plus
/// [`SHUTDOWN_GRACE`]. The same code `main` returns with when shutdown timed out.
pub(crate) const EXIT_FORCED: i32 = 1;

/// How long the watchdog waits for its last log line before exiting anyway: the log's sink may
/// be what blocks (a full pipe).
const LAST_WORDS: Duration = Duration::from_millis(250);

/// One run of a host's watchdog. Cloning shares it.
#[derive(Debug, Clone)]
pub(crate) struct Watchdog {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    /// Off: [`Watchdog::arm`] does nothing (the board is still kept, for last log lines).
    enabled: bool,
    /// From the stop request to the end of the process: shutdown timeout plus grace.
    budget: Duration,
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct State {
    /// When the process must have ended; `None` until armed.
    deadline: Option<Instant>,
    /// The shutdown ended in time, nothing left behind: stand down.
    disarmed: bool,
    /// The thread was started.
    running: bool,
    /// Whose workers to name, once the host is built.
    board: Option<Arc<Board>>,
}

impl Watchdog {
    /// A watchdog that, when `enabled`, ends the process `budget` after it is armed.
    pub(crate) fn new(enabled: bool, budget: Duration) -> Self {
        Self {
            shared: Arc::new(Shared {
                enabled,
                budget,
                state: Mutex::default(),
                changed: Condvar::new(),
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// From a stop request to the end of the process, once armed.
    pub(crate) fn budget(&self) -> Duration {
        self.shared.budget
    }

    /// Names the workers of `board` when it fires.
    pub(crate) fn watch(&self, board: Arc<Board>) {
        self.state().board = Some(board);
    }

    /// The workers whose runs are still going, for a last log line.
    pub(crate) fn running(&self) -> String {
        let board = self.state().board.clone();
        running(board.as_deref())
    }

    /// A stop was asked for: ends the process its budget from now unless disarmed first.
    /// Arming again keeps the earlier deadline; a watchdog that is off does nothing.
    pub(crate) fn arm(&self) {
        if !self.shared.enabled {
            return;
        }
        let deadline = Instant::now().checked_add(self.shared.budget);
        let mut state = self.state();
        if state.disarmed {
            return;
        }
        state.deadline = match (state.deadline, deadline) {
            (Some(at), Some(new)) => Some(at.min(new)),
            (at, new) => at.or(new),
        };
        if !state.running && state.deadline.is_some() {
            state.running = true;
            let watchdog = self.clone();
            let spawned = std::thread::Builder::new()
                .name("worker-watchdog".to_owned())
                .spawn(move || watchdog.wait());
            if let Err(err) = spawned {
                state.running = false;
                drop(state);
                tracing::error!(error = %err, "cannot start the shutdown watchdog thread");
                return;
            }
        }
        drop(state);
        self.shared.changed.notify_all();
    }

    /// The shutdown ended in time: the process may live on.
    pub(crate) fn disarm(&self) {
        self.state().disarmed = true;
        self.shared.changed.notify_all();
    }

    fn wait(&self) {
        let mut state = self.state();
        loop {
            if state.disarmed {
                return;
            }
            let Some(deadline) = state.deadline else {
                return;
            };
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            state = self
                .shared
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        let board = state.board.clone();
        drop(state);
        let workers = running(board.as_deref());
        last_words(move || {
            tracing::error!(
                still_running = %workers,
                grace = %worker_keys::show(SHUTDOWN_GRACE),
                "shutdown overran its timeout and grace; exiting now"
            );
        });
        std::process::exit(EXIT_FORCED);
    }
}

/// `a, b` for the workers of `board` with a run in progress, or what is known instead.
pub(crate) fn running(board: Option<&Board>) -> String {
    let Some(board) = board else {
        return "none: the host was still being built".to_owned();
    };
    let workers = board.workers();
    let names: Vec<&str> = workers
        .iter()
        .filter(|worker| worker.metrics.active() > 0)
        .map(|worker| &*worker.name)
        .collect();
    if names.is_empty() {
        "no run in progress".to_owned()
    } else {
        names.join(", ")
    }
}

/// Runs `log` on a thread of its own and waits for it at most [`LAST_WORDS`]: a log line must
/// not keep a process that has to exit, should the log's sink block.
pub(crate) fn last_words(log: impl FnOnce() + Send + 'static) {
    let (done, finished) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("worker-last-words".to_owned())
        .spawn(move || {
            log();
            let _ = done.send(());
        });
    if spawned.is_ok() {
        let _ = finished.recv_timeout(LAST_WORDS);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_disarmed_watchdog_stands_down_and_stays_down() {
        let watchdog = Watchdog::new(true, Duration::ZERO);
        watchdog.disarm();
        watchdog.arm();
        assert!(watchdog.state().disarmed);
        // Had the second arm counted, the process would exit here.
        std::thread::sleep(Duration::from_millis(50));
    }

    #[test]
    fn arming_again_keeps_the_earlier_deadline() {
        let watchdog = Watchdog::new(true, Duration::from_hours(1));
        watchdog.arm();
        let first = watchdog.state().deadline.unwrap();
        std::thread::sleep(Duration::from_millis(5));
        watchdog.arm();
        assert_eq!(watchdog.state().deadline, Some(first));
        watchdog.disarm();
    }

    #[test]
    fn a_watchdog_that_is_off_never_arms() {
        let watchdog = Watchdog::new(false, Duration::ZERO);
        watchdog.arm();
        assert_eq!(watchdog.state().deadline, None);
        std::thread::sleep(Duration::from_millis(50));
    }
}
