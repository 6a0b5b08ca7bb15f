//! A durable queue worker's loop: it claims up to its free slots from the backend, runs each
//! job in a slot task under the run machinery, and reports how each attempt ended; a heartbeat
//! renews the leases of the jobs in flight, and a maintenance pass runs every second. At
//! shutdown it claims no more, lets the slots finish until the stop budget, cancels what still
//! runs, and releases what is left at once, so another consumer need not wait for the leases.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::durable::report::complete;
use crate::durable::{Attempt, Backend, Claimed, identity};
use crate::observe::Outcome;
use crate::observe::WorkerState;
use crate::observe::tracked::Tracked;
use crate::queue::OnPanic;
use crate::queue::channel::{Channel, Envelope, Payload};
use crate::queue::consume::dead;
use crate::run::Runner;
use crate::run::job::JobEnd;
use crate::schedule::clock::Clock;
use crate::supervise::control::{Registration, Seen};
use crate::supervise::{Alive, HostLink, Launch};
use crate::worker::handler::Body;
use crate::worker::scope::WorkerEnv;
use crate::worker::spec::{Checked, Spec};

/// How often a consumer runs the backend's maintenance pass.
const MAINTAIN_EVERY: Duration = Duration::from_secs(1);
/// How often a consumer asks the backend for its queue's counts and the database's hazards.
const STATS_EVERY: Duration = Duration::from_secs(5);
/// How often a consumer with free slots asks for jobs when the last claim found none.
pub(crate) const POLL_EVERY: Duration = Duration::from_millis(250);
/// Completions sent in one statement, at most.
pub(super) const COMPLETE_BATCH: usize = 100;

/// Decodes a durable payload into the worker's payload type.
pub(crate) type Decode = fn(serde_json::Value) -> Result<Payload, String>;

/// What the host gives a durable queue's channel: where its jobs live, and how to read them.
#[derive(Debug, Clone)]
pub(crate) struct Durable {
    pub(crate) backend: Arc<dyn Backend>,
    pub(crate) decode: Decode,
}

/// `T` from its JSON.
pub(crate) fn decode<T: serde::de::DeserializeOwned + Send + Sync + 'static>(
    value: serde_json::Value,
) -> Result<Payload, String> {
    serde_json::from_value::<T>(value)
        .map(|payload| Arc::new(payload) as Payload)
        .map_err(|err| err.to_string())
}

/// One claimed job running here.
#[derive(Debug)]
pub(super) struct InFlight {
    pub(super) attempt: u32,
    /// When its lease was last renewed (or claimed).
    pub(super) renewed: Instant,
    /// The job's own token: cancelled when its cancellation is requested or its lease lost,
    /// and with the worker's.
    pub(super) token: CancellationToken,
}

/// What every slot of one durable consumer shares.
pub(super) struct Consumer<B> {
    pub(super) body: B,
    pub(super) env: Arc<WorkerEnv>,
    pub(super) spec: Spec,
    pub(super) tracked: Arc<Tracked>,
    pub(super) clock: Clock,
    pub(super) channel: Arc<Channel>,
    pub(super) durable: Durable,
    /// This consumer, as the backend records who holds a job: host, process, worker.
    pub(super) by: String,
    /// The attempts in flight, by job id.
    pub(super) in_flight: Mutex<HashMap<u64, InFlight>>,
    pub(super) completions: mpsc::UnboundedSender<Attempt>,
}

impl<B: Body> Consumer<B> {
    fn runner(&self) -> Runner<'_, B> {
        Runner {
            body: &self.body,
            env: &self.env,
            spec: &self.spec,
            metrics: &self.tracked.metrics,
            clock: self.clock,
            retry_panics: self.spec.on_panic.unwrap_or_default() == OnPanic::Retry,
        }
    }

    pub(super) fn in_flight(&self) -> std::sync::MutexGuard<'_, HashMap<u64, InFlight>> {
        self.in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs one claimed job's attempt and reports how it ended.
    async fn run(self: Arc<Self>, job: Claimed, token: CancellationToken) {
        let attempt = job.attempt;
        let metrics = &self.channel.metrics;
        if metrics.started() == 0 {
            self.tracked.metrics.set_state(WorkerState::Running);
        }
        let dead_job = match (self.durable.decode)(job.payload) {
            Ok(payload) => self.attempt(attempt, payload, job.enqueued_at, token).await,
            Err(err) => {
                let error = format!(
                    "the payload does not decode as `{}`: {err}",
                    self.channel.payload
                );
                tracing::error!(worker = %self.env.name, job_id = attempt.id, %error, "job dead");
                metrics.went_dead();
                self.fail(attempt, None, error).await;
                None
            }
        };
        if let Some((envelope, error)) = dead_job {
            dead(&self.channel, self.clock, &self.env.name, envelope, error);
        }
        self.in_flight().remove(&attempt.id);
        if metrics.ended() == 1 && !self.tracked.control.is_stopped() {
            self.tracked
                .metrics
                .set_state(if self.tracked.control.is_paused() {
                    WorkerState::Paused
                } else {
                    WorkerState::Idle
                });
        }
    }

    /// The attempt, and its report to the backend. Returns the job and its error when it went
    /// dead.
    async fn attempt(
        &self,
        attempt: Attempt,
        payload: Payload,
        enqueued_at: SystemTime,
        token: CancellationToken,
    ) -> Option<(Envelope, String)> {
        let now = Instant::now();
        let age = SystemTime::now()
            .duration_since(enqueued_at)
            .unwrap_or_default();
        if attempt.attempt == 1 {
            self.channel.metrics.waited(age);
        }
        let mut envelope = Envelope {
            id: attempt.id,
            attempts: attempt.attempt.saturating_sub(1),
            enqueued: now.checked_sub(age).unwrap_or(now),
            run: None,
            payload,
        };
        let end = self
            .runner()
            .job(&mut envelope, now, Some(token.clone()))
            .await;
        match end {
            JobEnd::Retry(delay, error) => {
                self.fail(attempt, Some(delay), error.unwrap_or_default())
                    .await;
                None
            }
            JobEnd::Ended(Outcome::Success, _) => {
                self.channel.metrics.finished.fetch_add(1, Relaxed);
                // Sent with the next batch; if the process dies first, the lease runs out and
                // the job runs again (at least once).
                let _ = self.completions.send(attempt);
                None
            }
            JobEnd::Ended(Outcome::Cancelled, _) if self.tracked.control.is_stopped() => {
                // Cancelled at shutdown: someone else runs it.
                self.channel.metrics.cancelled.fetch_add(1, Relaxed);
                self.release(vec![(attempt, false)]).await;
                None
            }
            JobEnd::Ended(Outcome::Cancelled, error) => {
                // Its own token: its cancellation was requested (the job ends cancelled), or
                // its lease was lost (the report is stale, and counted so).
                self.channel.metrics.cancelled.fetch_add(1, Relaxed);
                let error = error.unwrap_or_else(|| "cancelled".to_owned());
                self.fail(attempt, None, error).await;
                None
            }
            JobEnd::Ended(_, error) => {
                let error = error.unwrap_or_default();
                self.channel.metrics.finished.fetch_add(1, Relaxed);
                let fresh = self.fail(attempt, None, error.clone()).await;
                fresh.then_some((envelope, error))
            }
        }
    }

    /// Claims and runs jobs, renews leases and maintains the queue until the worker is stopped.
    async fn consume(self: &Arc<Self>, slots: &mut JoinSet<()>) {
        let control = &self.tracked.control;
        let metrics = &self.tracked.metrics;
        let mut seen = Seen::default();
        let mut registration = Registration::default();
        let mut heartbeat = tokio::time::interval(self.spec.lease() / 3);
        let mut maintain = tokio::time::interval(MAINTAIN_EVERY);
        let mut stats = tokio::time::interval(STATS_EVERY);
        for timer in [&mut heartbeat, &mut maintain, &mut stats] {
            timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        }
        let mut wake = Wake::Poll;
        let mut drained = false;
        let mut next_poll = Instant::now() + POLL_EVERY;
        loop {
            let signals = control.seen();
            if signals.is_stopped() {
                return;
            }
            if signals != seen {
                seen = signals;
                if slots.is_empty() {
                    metrics.set_state(if control.is_paused() {
                        WorkerState::Paused
                    } else {
                        WorkerState::Idle
                    });
                }
            }
            let free = self.channel.concurrency.saturating_sub(slots.len());
            // Claims are sized to the free slots and made when half of them are free: one
            // round trip per half a batch, not per job. Once a claim finds no job, the queue is
            // drained (or every due job is claimed by others), and the next claim waits for a
            // notification or the poll.
            let due = match wake {
                Wake::Poll => true,
                Wake::Slot | Wake::Control => !drained && free * 2 >= self.channel.concurrency,
            };
            if free > 0 && due && !control.is_paused() {
                let now = Instant::now();
                let jobs = self.claim(free).await;
                drained = jobs.is_empty();
                let mut in_flight = self.in_flight();
                for job in jobs {
                    let token = control.token().child_token();
                    if job.cancel_requested {
                        token.cancel();
                    }
                    let entry = InFlight {
                        attempt: job.attempt.attempt,
                        renewed: now,
                        token: token.clone(),
                    };
                    in_flight.insert(job.attempt.id, entry);
                    slots.spawn(Arc::clone(self).run(job, token));
                }
            }
            let poll = tokio::time::sleep_until(next_poll);
            let notified = self.durable.backend.notified(&self.channel.name);
            wake = tokio::select! {
                biased;
                _ = control.changed(seen, &mut registration) => Wake::Control,
                () = notified => Wake::Poll,
                Some(_) = slots.join_next(), if !slots.is_empty() => {
                    while slots.try_join_next().is_some() {}
                    Wake::Slot
                }
                _ = heartbeat.tick() => {
                    self.heartbeat().await;
                    Wake::Control
                }
                _ = maintain.tick() => {
                    self.maintain().await;
                    Wake::Control
                }
                _ = stats.tick() => {
                    self.stats().await;
                    Wake::Control
                }
                () = poll => {
                    next_poll = Instant::now() + POLL_EVERY;
                    Wake::Poll
                }
            };
        }
    }

    /// Claims up to `free` jobs; returns them, or none when the claim failed (logged).
    async fn claim(&self, free: usize) -> Vec<Claimed> {
        let free = u32::try_from(free).unwrap_or(u32::MAX);
        let began = Instant::now();
        let claimed = self
            .durable
            .backend
            .claim(
                &self.channel.name,
                free,
                self.spec.lease(),
                &self.by,
                self.spec.retry.saturating_add(1),
            )
            .await;
        let failed = claimed
            .is_err()
            .then(|| self.clock.unix_seconds(Instant::now()));
        self.channel.metrics.fetched(began.elapsed(), failed);
        match claimed {
            Ok(jobs) => jobs,
            Err(err) => {
                tracing::warn!(
                    worker = %self.env.name,
                    queue = %self.channel.name,
                    error = %crate::error::Chain(&*err),
                    "could not claim jobs; trying again"
                );
                Vec::new()
            }
        }
    }
}

/// What woke the consumer's loop.
#[derive(Debug, Clone, Copy)]
enum Wake {
    /// The poll interval passed (or the loop just started): claim whatever is free.
    Poll,
    /// Slots finished their jobs.
    Slot,
    /// A control signal, a heartbeat or a maintenance pass.
    Control,
}

/// Stopping: no more claims; the slots finish until the stop budget, then are cancelled, and
/// at the host's deadline (less a margin) aborted.
async fn stop(
    slots: &mut JoinSet<()>,
    tracked: &Tracked,
    host: &HostLink,
    channel: &Channel,
    budget: Option<Duration>,
) {
    let (deadline, hard) = host.queue_stop(Instant::now(), budget);
    if drain(slots, deadline).await {
        return;
    }
    tracked.control.cancel_runs();
    if drain(slots, hard).await {
        return;
    }
    let aborted = slots.len();
    slots.abort_all();
    while slots.join_next().await.is_some() {}
    tracing::warn!(
        worker = %tracked.name,
        runs = aborted,
        "the worker's runs overran the shutdown deadline; they are aborted"
    );
    host.report().forced.push(tracked.name.to_string());
    channel.metrics.cancelled.fetch_add(aborted as u64, Relaxed);
    // Their in-flight counts were never given back.
    channel.metrics.in_flight.0.store(0, Relaxed);
}

/// Waits until every slot ended, or `until`; whether they all ended.
async fn drain(slots: &mut JoinSet<()>, until: Instant) -> bool {
    tokio::time::timeout_at(until, async { while slots.join_next().await.is_some() {} })
        .await
        .is_ok()
}

/// The worker's loop; returns once every claimed job is finished or released.
pub(crate) fn run<B: Body>(
    body: B,
    launch: Launch,
    channel: Arc<Channel>,
) -> impl Future<Output = ()> + Send {
    let Launch {
        env,
        checked: Checked { spec, .. },
        tracked,
        started,
        clock,
        host,
        queue: _,
    } = launch;
    async move {
        let metrics = &tracked.metrics;
        tracked.replies.close();
        let Some(durable) = channel.durable.clone() else {
            unreachable!("a durable worker's channel has its backend")
        };
        if !spec.enabled {
            tracing::info!(
                worker = %env.name,
                queue = %channel.name,
                "worker disabled by configuration: it claims no job"
            );
            metrics.set_state(WorkerState::Stopped);
            return;
        }
        tracked.started(clock.unix_seconds(started));
        let _alive = Alive(&tracked);
        metrics.set_state(WorkerState::Idle);
        let (completions, done) = mpsc::unbounded_channel();
        let completer = tokio::spawn(complete(
            durable.backend.clone(),
            channel.clone(),
            env.name.clone(),
            done,
        ));
        let budget = spec.stop_budget;
        let consumer = Arc::new(Consumer {
            by: identity(&env.name),
            body,
            env: env.clone(),
            spec,
            tracked: tracked.clone(),
            clock,
            channel: channel.clone(),
            durable,
            in_flight: Mutex::new(HashMap::new()),
            completions,
        });
        let mut slots = JoinSet::new();
        consumer.consume(&mut slots).await;
        stop(&mut slots, &tracked, &host, &channel, budget).await;
        let left: Vec<(Attempt, bool)> = consumer
            .in_flight()
            .drain()
            .map(|(id, job)| {
                let attempt = job.attempt;
                (Attempt { id, attempt }, false)
            })
            .collect();
        consumer.release(left).await;
        let stale = channel.metrics.stale.load(Relaxed);
        drop(consumer);
        let _ = completer.await;
        tracing::info!(
            worker = %env.name,
            queue = %channel.name,
            finished = channel.metrics.finished.load(Relaxed),
            dead = channel.metrics.dead.load(Relaxed),
            cancelled = channel.metrics.cancelled.load(Relaxed),
            released = channel.metrics.released.load(Relaxed),
            stale,
            "durable queue stopped"
        );
        metrics.set_active(0);
        metrics.set_state(WorkerState::Stopped);
    }
}
