//! A queue worker's loop: `concurrency` slots take jobs from the queue and run them, each job's
//! attempts under the run machinery; failed attempts wait out their backoff back in the queue
//! (freeing their slot); dead jobs are kept and handed to `on_dead`. At shutdown the queue
//! closes, the slots drain it until the worker's stop budget, in-flight runs still going then
//! are cancelled, and every job that never got a slot goes to `on_leftovers` or is counted as
//! dropped.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::{Instant, sleep_until};

use crate::observe::Outcome;
use crate::observe::WorkerState;
use crate::observe::metrics::RestartReason;
use crate::observe::tracked::Tracked;
use crate::queue::OnPanic;
use crate::queue::channel::{Channel, Envelope};
use crate::queue::dead::DeadJobRecord;
use crate::run::Runner;
use crate::run::job::JobEnd;
use crate::schedule::clock::Clock;
use crate::supervise::control::{Registration, Seen};
use crate::supervise::{Alive, HostLink, Launch};
use crate::worker::handler::Body;
use crate::worker::scope::WorkerEnv;
use crate::worker::spec::{Checked, Spec};

/// How often the depth and throughput of the queue are sampled for the dashboard.
pub(crate) const SAMPLE_EVERY: Duration = Duration::from_secs(5);

/// What every slot of one queue worker shares.
struct Shared<B> {
    body: B,
    env: Arc<WorkerEnv>,
    spec: Spec,
    tracked: Arc<Tracked>,
    clock: Clock,
    channel: Arc<Channel>,
}

impl<B: Body> Shared<B> {
    /// A slot's runner; `env` is the slot's own copy of the worker's, so the slots' runs do not
    /// all count references on one shared line.
    fn runner<'a>(&'a self, env: &'a Arc<WorkerEnv>) -> Runner<'a, B> {
        Runner {
            body: &self.body,
            env,
            spec: &self.spec,
            metrics: &self.tracked.metrics,
            clock: self.clock,
            retry_panics: self.spec.on_panic.unwrap_or_default() == OnPanic::Retry,
        }
    }
}

/// The worker's loop; returns once every job is accounted for.
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
        if !spec.enabled {
            tracing::info!(
                worker = %env.name,
                queue = %channel.name,
                "worker disabled by configuration: its queue refuses every job"
            );
            never_runs(&channel);
            metrics.set_state(WorkerState::Stopped);
            return;
        }
        tracked.started(clock.unix_seconds(started));
        let _alive = Alive(&tracked);
        metrics.set_state(WorkerState::Idle);
        let budget = spec.stop_budget;
        let shared = Arc::new(Shared {
            body,
            env: env.clone(),
            spec,
            tracked: tracked.clone(),
            clock,
            channel: channel.clone(),
        });
        let mut slots = JoinSet::new();
        for _ in 0..channel.concurrency {
            slots.spawn(slot(shared.clone()));
        }
        let control = &tracked.control;
        let mut seen = Seen::default();
        let mut registration = Registration::default();
        let mut sample = tokio::time::interval_at(started + SAMPLE_EVERY, SAMPLE_EVERY);
        sample.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        channel.sample(clock.unix_seconds(Instant::now()));
        // Running: promote jobs whose backoff ended, follow pause and resume, sample.
        loop {
            let changed = channel.changed();
            let mut changed = std::pin::pin!(changed);
            changed.as_mut().enable();
            let signals = control.seen();
            if signals.is_stopped() {
                break;
            }
            if signals != seen {
                seen = signals;
                channel.set_paused(control.is_paused());
                metrics.set_state(if control.is_paused() {
                    WorkerState::Paused
                } else {
                    WorkerState::Idle
                });
            }
            let due = channel.promote(Instant::now());
            tokio::select! {
                biased;
                _ = control.changed(seen, &mut registration) => {}
                () = &mut changed => {}
                () = sleep_until(due.unwrap_or_else(far_future)), if due.is_some() => {}
                _ = sample.tick() => channel.sample(clock.unix_seconds(Instant::now())),
                Some(ended) = slots.join_next() => {
                    // A slot ends only when the queue closes; one that crashed (a bug: the
                    // body's panics and the hooks' are caught) is replaced, so the queue never
                    // loses its capacity silently.
                    if let Err(crash) = ended {
                        tracing::error!(
                            worker = %env.name,
                            queue = %channel.name,
                            error = %crash,
                            "a slot of the queue worker crashed; starting another"
                        );
                        metrics.restarted(RestartReason::Crash);
                        slots.spawn(slot(shared.clone()));
                    }
                }
            }
        }
        let left_over = stop(&channel, &mut slots, &tracked, &host, budget).await;
        debug_assert_eq!(channel.metrics.in_flight(), 0);
        log_stopped(&channel, &env.name, left_over);
        metrics.set_active(0);
        metrics.set_state(WorkerState::Stopped);
    }
}

/// Stops the worker: sends are refused, the slots drain the queue until the stop budget, what
/// never got a slot is handed over, and the runs in flight get until the host's deadline (less
/// a margin) to end before they are aborted. Says where the jobs left over went.
async fn stop(
    channel: &Channel,
    slots: &mut JoinSet<()>,
    tracked: &Tracked,
    host: &HostLink,
    budget: Option<Duration>,
) -> &'static str {
    let control = &tracked.control;
    // Stopping: sends are refused; the slots drain what is left until the stop budget.
    channel.close();
    channel.set_paused(false);
    let (deadline, hard) = host.queue_stop(Instant::now(), budget);
    loop {
        let changed = channel.changed();
        let mut changed = std::pin::pin!(changed);
        changed.as_mut().enable();
        let due = channel.promote(Instant::now());
        if channel.is_drained() {
            break;
        }
        tokio::select! {
            biased;
            () = &mut changed => {}
            () = sleep_until(deadline) => break,
            () = sleep_until(due.unwrap_or(deadline)), if due.is_some() => {}
        }
    }
    // No more jobs start; the runs in flight see their token cancelled and get until the
    // host's deadline (less a margin) to end. Then what never got a slot, and what a run in
    // flight put back for a retry meanwhile, is handed over in one call.
    let mut left = channel.finish();
    control.cancel_runs();
    let ended =
        tokio::time::timeout_at(hard, async { while slots.join_next().await.is_some() {} }).await;
    let aborted = channel.metrics.in_flight();
    if ended.is_err() {
        slots.abort_all();
        while slots.join_next().await.is_some() {}
    }
    // Slots with no run in flight lose nothing when aborted: the worker did not overrun.
    if ended.is_err() && aborted > 0 {
        tracing::warn!(
            worker = %tracked.name,
            runs = aborted,
            "the worker's runs overran the shutdown deadline; they are aborted"
        );
        host.report().forced.push(tracked.name.to_string());
        channel
            .metrics
            .cancelled
            .fetch_add(aborted, Ordering::Relaxed);
    }
    left.extend(channel.take_late());
    left.sort_by_key(|job| job.id);
    hand_over(channel, left, &tracked.name)
}

/// An instant no schedule reaches.
fn far_future() -> Instant {
    Instant::now() + Duration::from_hours(24 * 365 * 30)
}

/// Accounts for a queue whose worker never runs (disabled, or the host stopped before it
/// started): sends are refused, and what was sent before is left over.
pub(crate) fn never_runs(channel: &Channel) {
    let left = channel.finish();
    let left_over = hand_over(channel, left, &channel.worker);
    log_stopped(channel, &channel.worker, left_over);
}

/// Hands the jobs that never got a slot to `on_leftovers`, or counts them as dropped; says
/// where they went.
fn hand_over(channel: &Channel, left: Vec<Envelope>, worker: &str) -> &'static str {
    let count = left.len() as u64;
    if count == 0 {
        return "none";
    }
    let metrics = &channel.metrics;
    metrics.left_over.fetch_add(count, Ordering::Relaxed);
    if channel.hooks.has_on_leftovers() {
        let payloads = left.into_iter().map(|job| job.payload).collect();
        if channel.hooks.call_on_leftovers(payloads) {
            return "on_leftovers";
        }
        // The hook panicked (and was logged): what it was handed is lost with it.
        metrics.dropped.fetch_add(count, Ordering::Relaxed);
        tracing::warn!(
            worker,
            queue = %channel.name,
            jobs = count,
            "jobs that never started were dropped at shutdown: the `on_leftovers` hook panicked"
        );
        return "dropped";
    }
    metrics.dropped.fetch_add(count, Ordering::Relaxed);
    tracing::warn!(
        worker,
        queue = %channel.name,
        jobs = count,
        "jobs that never started were dropped at shutdown (register `on_leftovers` to keep them)"
    );
    "dropped"
}

/// Logs what became of every job the queue accepted: finished (dead ones included), cancelled
/// in flight, or left over.
fn log_stopped(channel: &Channel, worker: &str, left_over_to: &str) {
    let metrics = &channel.metrics;
    tracing::info!(
        worker,
        queue = %channel.name,
        enqueued = metrics.total_enqueued(),
        finished = metrics.finished.load(Ordering::Relaxed),
        dead = metrics.dead.load(Ordering::Relaxed),
        cancelled = metrics.cancelled.load(Ordering::Relaxed),
        left_over = metrics.left_over.load(Ordering::Relaxed),
        left_over_to,
        "queue stopped"
    );
}

/// One slot: takes the next job, makes its attempt, and puts it back for a retry, records it as
/// dead, or is done with it.
async fn slot<B: Body>(shared: Arc<Shared<B>>) {
    let channel = &shared.channel;
    let env = Arc::new(WorkerEnv {
        name: shared.env.name.clone(),
        registry: shared.env.registry.clone(),
        tracked: shared.env.tracked.clone(),
    });
    let runner = shared.runner(&env);
    let metrics = &shared.tracked.metrics;
    while let Some((mut job, alone)) = channel.next().await {
        // Given back however the job ends, aborted included.
        let busy = Busy(&shared);
        if alone {
            metrics.set_state(WorkerState::Running);
        }
        let now = Instant::now();
        if job.attempts == 0 {
            channel
                .metrics
                .waited(now.saturating_duration_since(job.enqueued));
        }
        let end = runner.job(&mut job, now, None).await;
        let end_kind = match end {
            JobEnd::Retry(..) => Finished::No,
            JobEnd::Ended(..) => Finished::Yes,
        };
        match end {
            // Once the queue finished, the job is a leftover, handed over with the others.
            JobEnd::Retry(delay, _) => channel.delay(job, delay),
            JobEnd::Ended(outcome, error) => {
                if matches!(
                    outcome,
                    Outcome::Failure | Outcome::Panic | Outcome::Timeout
                ) {
                    dead(
                        channel,
                        shared.clock,
                        &shared.env.name,
                        job,
                        error.unwrap_or_default(),
                    );
                }
            }
        }
        drop(busy);
        channel.done(matches!(end_kind, Finished::Yes));
    }
}

/// A slot with a job: what it counts in flight, given back when it is dropped.
struct Busy<'a, B>(&'a Shared<B>);

impl<B> Drop for Busy<'_, B> {
    fn drop(&mut self) {
        let shared = self.0;
        let control = &shared.tracked.control;
        if shared.channel.metrics.ended() == 1 && !control.is_stopped() {
            shared.tracked.metrics.set_state(if control.is_paused() {
                WorkerState::Paused
            } else {
                WorkerState::Idle
            });
        }
    }
}

/// Whether a slot finished its job, or put it back for a retry.
enum Finished {
    Yes,
    No,
}

/// Keeps a dead job, counts it, and hands it to `on_dead`.
pub(crate) fn dead(channel: &Channel, clock: Clock, worker: &str, job: Envelope, error: String) {
    let now = Instant::now();
    let at = std::time::SystemTime::UNIX_EPOCH + clock.unix(now);
    let unix = clock.unix_nanos(now);
    channel.metrics.went_dead();
    let record = DeadJobRecord {
        id: job.id,
        attempts: job.attempts,
        error: crate::observe::message::truncated(&error).into_owned(),
        at: clock.unix_seconds(now),
        payload: channel.hooks.describe_payload(&job.payload),
    };
    tracing::error!(
        worker,
        queue = %channel.name,
        job_id = job.id,
        attempts = job.attempts,
        error = %record.error,
        "job dead: kept in the dead list"
    );
    channel.dead.push(record, job.payload.clone(), unix);
    channel
        .hooks
        .call_on_dead(job.id, job.attempts, error, at, job.payload);
}

impl HostLink {
    /// How long a queue worker may take to stop, from when it is asked: the host's shutdown
    /// timeout, less a tenth of it (at most a second) for the rest of the shutdown.
    pub(crate) fn queue_deadline(&self) -> Duration {
        let timeout = self.shutdown_timeout;
        timeout.saturating_sub(tenth(timeout))
    }

    /// When a queue worker asked to stop at `stopping` stops draining its queue, and when its
    /// runs in flight, cancelled then, are aborted: the drain ends at its `budget`, and at the
    /// latest a tenth of the deadline (at most a second) before it, so that a run which ends
    /// when it is cancelled always has the time to.
    pub(crate) fn queue_stop(
        &self,
        stopping: Instant,
        budget: Option<Duration>,
    ) -> (Instant, Instant) {
        let deadline = self.queue_deadline();
        let drain = deadline.saturating_sub(tenth(deadline));
        let drain = budget.map_or(drain, |budget| budget.min(drain));
        (stopping + drain, stopping + deadline)
    }
}

/// A tenth of `timeout`, at most a second.
fn tenth(timeout: Duration) -> Duration {
    (timeout / 10).min(Duration::from_secs(1))
}
