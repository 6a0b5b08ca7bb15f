//! What a [`HostHandle`] asks of a worker or a job: run now, pause, resume, requeue a dead job,
//! act on a durable job; each is counted and logged with who asked.

use crate::durable::{JobActed, JobAction};
use crate::error::{Error, Kind};
use crate::host::handle::HostHandle;
use crate::observe::metrics::Action;
use crate::observe::status::HostState;
use crate::observe::{SkipReason, WorkerState};
use crate::supervise::Requested;

/// Who asked for an admin action, for its log line.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Origin {
    Handle,
    #[cfg_attr(
        not(feature = "http"),
        allow(dead_code, reason = "only the routes act over HTTP")
    )]
    Http,
}

impl Origin {
    fn as_str(self) -> &'static str {
        match self {
            Self::Handle => "handle",
            Self::Http => "http",
        }
    }
}

impl HostHandle {
    /// Starts a run of `name` now, whatever its schedule, even while it is paused, waiting out
    /// a restart backoff, or its circuit is open. The request is a trigger like any other for
    /// the worker's `overlap` policy: with a free run slot it starts at once; with `queue` and
    /// nothing kept yet it is kept for when the current run ends; otherwise it is skipped and
    /// counted (`overlap`). Asked before the host starts, it is answered when the worker starts.
    /// The run's spans say `trigger = "manual"`.
    ///
    /// Await the returned [`RunRequest`] for the answer ([`Requested`]), or drop it.
    ///
    /// # Errors
    ///
    /// When the host has no worker named `name`
    /// ([`is_unknown_worker`](Error::is_unknown_worker)), or it cannot run: it failed or
    /// stopped, or the host is stopping ([`is_not_running`](Error::is_not_running)).
    pub fn run_now(&self, name: &str) -> Result<RunRequest, Error> {
        self.act(name, Action::Run, Origin::Handle)
            .map(|request| request.unwrap_or_else(|| unreachable!("a run request answers")))
    }

    /// Pauses `name`: its triggers are skipped (counted as `paused`) until it is resumed; a run
    /// in progress goes on. Pausing a paused worker changes nothing.
    ///
    /// # Errors
    ///
    /// When the host has no worker named `name`.
    pub fn pause(&self, name: &str) -> Result<(), Error> {
        self.act(name, Action::Pause, Origin::Handle).map(drop)
    }

    /// Resumes a paused worker: its next trigger runs again.
    ///
    /// # Errors
    ///
    /// When the host has no worker named `name`.
    pub fn resume(&self, name: &str) -> Result<(), Error> {
        self.act(name, Action::Resume, Origin::Handle).map(drop)
    }

    /// Sends the dead job `job` of the queue worker `worker` to its queue again, as a new job
    /// (with its attempts from zero); returns the new job's id. It leaves the dead list.
    ///
    /// # Errors
    ///
    /// When the host has no worker `worker`, or it is no queue worker, or the job is not (or
    /// no longer) among its dead jobs, or the queue is full or closed.
    pub fn requeue(&self, worker: &str, job: u64) -> Result<u64, Error> {
        self.requeue_from(worker, job, Origin::Handle)
    }

    pub(crate) fn requeue_from(
        &self,
        worker: &str,
        job: u64,
        origin: Origin,
    ) -> Result<u64, Error> {
        let refused = |why: String| {
            Error::new(Kind::Requeue {
                worker: worker.to_owned(),
                job,
                why,
            })
        };
        let tracked = self.tracked(worker)?;
        let Some(channel) = &tracked.queue else {
            return Err(refused("it is no queue worker".to_owned()));
        };
        if channel.durable.is_some() {
            return Err(refused(
                "its queue is durable: its dead jobs are kept (discarded) in the backend, \
                 which retries them"
                    .to_owned(),
            ));
        }
        let Some((record, payload)) = channel.dead.take(job) else {
            return Err(refused("no such job among its dead jobs".to_owned()));
        };
        match channel.requeue(payload.clone()) {
            Ok(id) => {
                tracked.metrics.admin(Action::Requeue);
                let log = {
                    let worker = worker.to_owned();
                    move || {
                        tracing::info!(
                            worker,
                            action = "requeue",
                            dead_job = job,
                            job_id = id,
                            origin = origin.as_str(),
                            "admin action"
                        );
                    }
                };
                match origin {
                    Origin::Handle => log(),
                    Origin::Http => crate::observe::message::log_aside(log),
                }
                Ok(id)
            }
            Err(reason) => {
                channel.dead.restore(record, payload);
                Err(refused(format!("the queue is {}", reason.as_str())))
            }
        }
    }

    /// An admin action on the job `job` of the durable queue that `worker` consumes: retry a
    /// discarded or cancelled job (as a new job), discard a waiting one, or cancel one. Also
    /// `POST /workers/{worker}/jobs/{job}/{retry|discard|cancel}`.
    ///
    /// # Errors
    ///
    /// When the host has no worker `worker`, or it consumes no durable queue, or the queue has
    /// no job `job`, or the job's state does not allow the action, or the backend failed.
    pub async fn act_on_job(
        &self,
        worker: &str,
        job: u64,
        action: JobAction,
    ) -> Result<JobActed, Error> {
        self.act_on_job_from(worker, job, action, Origin::Handle)
            .await
    }

    pub(crate) async fn act_on_job_from(
        &self,
        worker: &str,
        job: u64,
        action: JobAction,
        origin: Origin,
    ) -> Result<JobActed, Error> {
        let refused = |why: String| {
            Error::new(Kind::JobAction {
                worker: worker.to_owned(),
                job,
                action: action.as_str(),
                why,
            })
        };
        let tracked = self.tracked(worker)?;
        let Some((channel, durable)) = tracked
            .queue
            .as_ref()
            .and_then(|channel| Some((channel, channel.durable.as_ref()?)))
        else {
            return Err(refused("it consumes no durable queue".to_owned()));
        };
        let acted = durable
            .backend
            .act_on_job(&channel.name, job, action)
            .await
            .map_err(|err| refused(crate::error::Chain(&*err).to_string()))?;
        match &acted {
            JobActed::NotFound => {
                return Err(refused(format!(
                    "the queue `{}` has no such job",
                    channel.name
                )));
            }
            JobActed::Refused(state) => {
                return Err(refused(format!("it is {state}")));
            }
            _ => {}
        }
        tracked.metrics.admin(Action::of(action));
        // `/workers` shows the change at once.
        crate::durable::refresh(&*durable.backend, channel, worker).await;
        let log = {
            let (worker, result) = (worker.to_owned(), format!("{acted:?}"));
            move || {
                tracing::info!(
                    worker,
                    action = action.as_str(),
                    job,
                    result,
                    origin = origin.as_str(),
                    "admin action"
                );
            }
        };
        match origin {
            Origin::Handle => log(),
            Origin::Http => crate::observe::message::log_aside(log),
        }
        Ok(acted)
    }

    /// Carries out an admin action; a run request comes back to be awaited.
    pub(crate) fn act(
        &self,
        name: &str,
        action: Action,
        origin: Origin,
    ) -> Result<Option<RunRequest>, Error> {
        let worker = self.tracked(name)?;
        let mut request = None;
        match action {
            Action::Run if worker.queue.is_some() => {
                return Err(Error::new(Kind::NotRunning {
                    worker: name.to_owned(),
                    why: "it runs the jobs of its queue: send it a job instead".to_owned(),
                }));
            }
            Action::Requeue | Action::Retry | Action::Discard | Action::Cancel => {
                unreachable!("job actions go through `requeue` and `act_on_job`")
            }
            Action::Run => {
                let host = self.board.state();
                let state = worker.metrics.state();
                let why = match (host, state) {
                    (HostState::Stopping | HostState::Stopped, _) => {
                        Some(format!("the host is {}", host.as_str()))
                    }
                    (_, WorkerState::Failed | WorkerState::Stopped) => {
                        Some(format!("it is {state}"))
                    }
                    _ => None,
                };
                if let Some(why) = why {
                    return Err(Error::new(Kind::NotRunning {
                        worker: name.to_owned(),
                        why,
                    }));
                }
                request = Some(RunRequest {
                    answer: worker.control.request_run(&worker.replies),
                });
            }
            Action::Pause => {
                worker.control.set_paused(true);
            }
            Action::Resume => {
                if worker.control.set_paused(false) {
                    // Staleness counts from the resume, not from before the pause.
                    worker.resumed(self.board.now());
                }
            }
        }
        worker.metrics.admin(action);
        let log = {
            let name = name.to_owned();
            move || {
                tracing::info!(
                    worker = name,
                    action = action.as_str(),
                    origin = origin.as_str(),
                    "admin action"
                );
            }
        };
        match origin {
            Origin::Handle => log(),
            Origin::Http => crate::observe::message::log_aside(log),
        }
        Ok(request)
    }
}

/// The answer to a run-now request, made by [`HostHandle::run_now`]: await it to learn whether
/// a run started (and its id), was queued or was skipped; drop it not to wait.
///
/// Awaiting it is cancellation safe. A request the worker never answered (the host stopped
/// first) comes to [`Requested::Skipped`] with [`SkipReason::ShuttingDown`].
#[derive(Debug)]
pub struct RunRequest {
    answer: tokio::sync::oneshot::Receiver<Requested>,
}

impl std::future::Future for RunRequest {
    type Output = Requested;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Requested> {
        std::pin::Pin::new(&mut self.answer)
            .poll(cx)
            .map(|answer| answer.unwrap_or(Requested::Skipped(SkipReason::ShuttingDown)))
    }
}
