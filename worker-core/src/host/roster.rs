//! Workers added to and removed from a running host, through
//! [`HostHandle::add_worker`](crate::HostHandle::add_worker) and
//! [`HostHandle::remove_worker`](crate::HostHandle::remove_worker).
//!
//! The board lists the host's workers for every page, probe and admin action; the roster holds
//! what starting and stopping one more takes: what the builder checked the others against (the
//! host's registry and backend), the task tracker the loops run on, the host's link and clock,
//! and the join handle of every loop, which the shutdown aborts past its deadline.
//!
//! A removal runs as a task of its own on the host's tracker: the caller's future may be
//! dropped, the worker is stopped and taken off the board all the same, and the host's
//! shutdown waits for it like for any worker.

use std::pin::pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::task::TaskTracker;

use crate::durable::Backend;
use crate::error::{Error, Kind};
use crate::host::checks::{channel, lease, own_registry, prepare};
use crate::host::{ABORT_WAIT, start};
use crate::observe::board::Board;
use crate::observe::tracked::Tracked;
use crate::queue::channel::Channel;
use crate::schedule::clock::Clock;
use crate::supervise::HostLink;
use crate::worker::Worker;
use crate::worker::registry::Registry;

/// A worker's loop on the host's tracker.
pub(super) type Loop = (Arc<str>, JoinHandle<()>);

/// What checking a worker added at run time takes, kept from the builder.
pub(crate) struct Checks {
    pub(crate) registry: Arc<Registry>,
    pub(crate) backend: Option<Arc<dyn Backend>>,
    pub(crate) keep_runs: usize,
    /// The host publishes to the `metrics` facade: an added worker's histograms need handles.
    pub(crate) facade: bool,
}

/// Starts and stops workers on a host that runs.
pub(crate) struct Roster {
    phase: Mutex<Phase>,
    /// Woken when the phase changes: adds and removes asked for before the host runs wait.
    changed: Notify,
    checks: Checks,
}

enum Phase {
    /// Built, not running yet.
    Built,
    Running(Live),
    /// Stopping or stopped, or dropped without running: no worker comes or goes any more.
    Ended,
}

/// A running host's means of starting and stopping a worker.
pub(super) struct Live {
    pub(super) tracker: TaskTracker,
    pub(super) link: HostLink,
    pub(super) clock: Clock,
    /// Every worker's loop but those being removed.
    pub(super) loops: Vec<Loop>,
}

impl Roster {
    pub(crate) fn new(checks: Checks) -> Self {
        Self {
            phase: Mutex::new(Phase::Built),
            changed: Notify::new(),
            checks,
        }
    }

    fn phase(&self) -> MutexGuard<'_, Phase> {
        self.phase.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The host runs its workers: from now on workers come and go.
    pub(super) fn run(&self, live: Live) {
        *self.phase() = Phase::Running(live);
        self.changed.notify_waiters();
    }

    /// The host stops (or was dropped): returns the loops of its workers, for the shutdown to
    /// abort those that overrun its deadline.
    pub(super) fn end(&self) -> Vec<Loop> {
        let phase = std::mem::replace(&mut *self.phase(), Phase::Ended);
        self.changed.notify_waiters();
        match phase {
            Phase::Running(live) => live.loops,
            Phase::Built | Phase::Ended => Vec::new(),
        }
    }

    /// Waits until the host runs; an error when it ended first.
    async fn running(&self, worker: &str, action: &'static str) -> Result<(), Error> {
        loop {
            let mut changed = pin!(self.changed.notified());
            changed.as_mut().enable();
            match &*self.phase() {
                Phase::Running(_) => return Ok(()),
                Phase::Ended => return Err(ended(worker, action)),
                Phase::Built => {}
            }
            changed.await;
        }
    }

    /// Checks `worker` as the builder checks the workers it is given, then starts it and
    /// shows it on the board; once the host runs.
    pub(crate) async fn add(&self, worker: Worker, board: &Board) -> Result<(), Error> {
        let name = worker.spec.name.clone();
        self.running(&name, "add").await?;
        let mut phase = self.phase();
        let Phase::Running(live) = &mut *phase else {
            return Err(ended(&name, "add"));
        };
        // Asked to stop, and not yet stopping its workers: one more would only be stopped.
        if live.link.shutdown.is_cancelled() {
            return Err(ended(&name, "add"));
        }
        let Worker {
            spec,
            requirements,
            launch,
            queue,
            states,
        } = worker;
        let started = Instant::now();
        let now = live.clock.system_time(started);
        let checked = spec.check(now)?;
        let workers = board.workers();
        if workers.iter().any(|w| *w.name == *name) {
            if !live.loops.iter().any(|(n, _)| **n == *name) {
                return Err(Error::new(Kind::Roster {
                    worker: name.to_string(),
                    action: "add",
                    why: "a worker of that name is being removed: add it once `remove_worker` \
                          returned"
                        .to_owned(),
                }));
            }
            return Err(Error::new(Kind::DuplicateName(name.to_string())));
        }
        // The host's `Queue<T>` arguments hold the queues it was built with, for good.
        if let Some(queue) = &checked.spec.queue
            && self.checks.registry.has_queue(queue)
            && !workers
                .iter()
                .any(|w| w.queue.as_ref().is_some_and(|q| *q.name == **queue))
        {
            return Err(Error::new(Kind::Queue {
                worker: name.to_string(),
                message: format!(
                    "the queue `{queue}` was consumed by a worker the host was built with, which \
                     was removed: the `Queue<T>` arguments of the other workers hold that \
                     queue, closed; consume a queue of another name"
                ),
            }));
        }
        let queues: Vec<Arc<Channel>> = workers.iter().filter_map(|w| w.queue.clone()).collect();
        let backend = self.checks.backend.as_ref();
        let queue = channel(&checked, &requirements, queue, &queues, backend)?;
        let lease = lease(&checked, backend)?;
        let registry = own_registry(&checked, &requirements, states, &self.checks.registry)?;
        let prepared = prepare(
            checked,
            launch,
            queue,
            lease,
            registry,
            self.checks.keep_runs,
            now,
        );
        if self.checks.facade {
            crate::observe::facade::register(&prepared.tracked);
        }
        board.add(Arc::clone(&prepared.tracked));
        let running = start(prepared, &live.tracker, &live.link, started, live.clock);
        live.loops.push(running);
        drop(phase);
        tracing::info!(worker = %name, "worker added");
        Ok(())
    }

    /// Stops the worker `name` as the host's shutdown would (no new runs, the runs in flight
    /// cancelled, a queue drained and handed over), within the host's shutdown timeout, past
    /// which its runs are aborted; then takes it off the board. Once the host runs.
    pub(crate) async fn remove(&self, name: &str, board: &Arc<Board>) -> Result<(), Error> {
        self.running(name, "remove").await?;
        let removal = {
            let mut phase = self.phase();
            let Phase::Running(live) = &mut *phase else {
                return Err(ended(name, "remove"));
            };
            let Some(tracked) = board.worker(name) else {
                return Err(Error::new(Kind::UnknownWorker(name.to_owned())));
            };
            let Some(at) = live.loops.iter().position(|(n, _)| **n == *name) else {
                return Err(Error::new(Kind::Roster {
                    worker: name.to_owned(),
                    action: "remove",
                    why: "it is being removed already".to_owned(),
                }));
            };
            let (_, running) = live.loops.remove(at);
            live.tracker.spawn(removal(
                tracked,
                running,
                live.link.clone(),
                Arc::clone(board),
            ))
        };
        removal.await.unwrap_or_else(|err| {
            // The removal catches nothing a worker could throw: only a runtime shutting down
            // cancels it.
            Err(Error::new(Kind::Roster {
                worker: name.to_owned(),
                action: "remove",
                why: format!("the removal did not finish: {err}"),
            }))
        })
    }
}

/// The host's end of a [`Roster`]: dropped, with the host or once it ran, it ends the roster,
/// so that nothing waits for a host that will never run.
pub(crate) struct Ended(pub(crate) Arc<Roster>);

impl Drop for Ended {
    fn drop(&mut self) {
        self.0.end();
    }
}

fn ended(worker: &str, action: &'static str) -> Error {
    Error::new(Kind::Roster {
        worker: worker.to_owned(),
        action,
        why: "the host is not running (it stopped, or stops)".to_owned(),
    })
}

/// Stops a worker and takes it off the board; an error when its runs had to be aborted.
async fn removal(
    tracked: Arc<Tracked>,
    mut running: JoinHandle<()>,
    link: HostLink,
    board: Arc<Board>,
) -> Result<(), Error> {
    let timeout = link.shutdown_timeout;
    tracing::info!(
        worker = %tracked.name,
        timeout = %worker_keys::show(timeout),
        "removing the worker: no new runs start, in-flight runs are cancelled"
    );
    tracked.control.stop();
    let mut aborted = false;
    if tokio::time::timeout(timeout, &mut running).await.is_err() {
        running.abort();
        let _ = tokio::time::timeout(ABORT_WAIT, running).await;
        aborted = true;
    }
    // A run the worker's loop aborted at its own stop budget is this removal's to report,
    // not the host's shutdown's.
    {
        let mut report = link.report();
        let before = report.forced.len();
        report.forced.retain(|worker| *worker != *tracked.name);
        aborted |= report.forced.len() != before;
    }
    board.remove(&tracked);
    if aborted {
        tracing::warn!(
            worker = %tracked.name,
            "worker removed; its runs overran and were aborted"
        );
        return Err(Error::new(Kind::RemoveTimeout {
            timeout,
            overran: vec![tracked.name.to_string()],
        }));
    }
    tracing::info!(worker = %tracked.name, "worker removed");
    Ok(())
}
