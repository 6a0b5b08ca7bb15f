//! Singleton schedules: the lease that makes one replica, its holder, run each tick.
//!
//! The keeper ([`Singleton::keep`]) runs beside the worker's loop: a follower asks for the
//! lease every second (or every third of the lease, if shorter); the holder renews it every
//! third of the lease. The holder trusts its lease only within a window on its own monotonic
//! clock that starts when the renewal was *sent* and ends a second before the lease would: the
//! database extends the lease from when it runs the renewal, later, so the window always ends
//! before the lease does, whatever the wall clocks say. Past the window (the database did not
//! answer) the replica runs no tick until a renewal succeeds.
//!
//! Each tick is claimed in the database before it runs, with a compare-and-set on the last
//! instant claimed, so no instant runs twice, whoever holds the lease and whatever the clocks.
//! A replica that takes the lease over rewinds its schedule to the first instant after the last
//! one claimed, at most `catch_up` ticks back, and the `missed` policy does the rest: `skip`
//! runs the latest and counts the others, `burst` runs each. Ticks come from the database's
//! clock, so replicas agree on them.

use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, SystemTime};

use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::durable::{Backend, Fence, identity};
use crate::error::Chain;
use crate::observe::status::LeaseStatus;
use crate::schedule::Ticker;
use crate::schedule::clock::{Clock, later};
use crate::worker::spec::Schedule;

/// How long a follower waits between asking for the lease, at most.
const ASK_EVERY: Duration = Duration::from_secs(1);
/// How much sooner than the lease the holder stops trusting it.
const MARGIN: Duration = Duration::from_secs(1);
/// Ticks claimed remembered for [`Singleton::fence_of`]: more than runs can overlap.
const CLAIMS_KEPT: usize = 16;

/// One singleton worker's lease, shared by its loop, its keeper, and what reads its status.
#[derive(Debug)]
pub(crate) struct Singleton {
    backend: Arc<dyn Backend>,
    name: Arc<str>,
    /// This replica's identity as a holder.
    pub(crate) holder: String,
    lease: Duration,
    pub(crate) catch_up: u32,
    held: Mutex<Held>,
    /// The database's clock, mapped to tokio's, from the first answer.
    clock: OnceLock<Clock>,
    /// Wakes the loop: the lease was taken or lost.
    changed: Notify,
    /// Wakes what waits for the first answer.
    answered: Notify,
    pub(crate) metrics: LeaseMetrics,
}

#[derive(Debug, Default)]
struct Held {
    fence: Option<Fence>,
    /// The holder trusts the lease until then.
    trusted_until: Option<Instant>,
    /// Who holds it, when another replica does.
    other: Option<String>,
    /// A takeover the loop has not applied yet.
    takeover: Option<Takeover<SystemTime>>,
    /// The ticks claimed lately, with the fence each was claimed under.
    claimed: VecDeque<(Instant, Fence)>,
}

/// A takeover of the lease by this replica: the last instant claimed before it, if any was.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Takeover<T> {
    pub(crate) last_tick: Option<T>,
}

/// The lease's series on `/metrics`.
#[derive(Debug, Default)]
pub(crate) struct LeaseMetrics {
    pub(crate) held: AtomicBool,
    pub(crate) fence: AtomicI64,
    pub(crate) acquired: AtomicU64,
    pub(crate) lost: AtomicU64,
    /// Instants nobody ran, found at takeovers.
    pub(crate) missed: AtomicU64,
}

impl Singleton {
    pub(crate) fn new(
        backend: Arc<dyn Backend>,
        name: Arc<str>,
        lease: Duration,
        catch_up: u32,
    ) -> Self {
        Self {
            backend,
            holder: identity(&name),
            name,
            lease,
            catch_up,
            held: Mutex::default(),
            clock: OnceLock::new(),
            changed: Notify::new(),
            answered: Notify::new(),
            metrics: LeaseMetrics::default(),
        }
    }

    fn held(&self) -> MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The fence, when this replica holds the lease and may trust it at `now`.
    pub(crate) fn trusted(&self, now: Instant) -> Option<Fence> {
        let held = self.held();
        match (&held.fence, held.trusted_until) {
            (Some(fence), Some(until)) if now < until => Some(fence.clone()),
            _ => None,
        }
    }

    /// Whether this replica took the lease and has not found it lost, trusted or not.
    pub(crate) fn has_fence(&self) -> bool {
        self.held().fence.is_some()
    }

    /// Whether this replica holds the lease now.
    pub(crate) fn is_holder(&self) -> bool {
        self.trusted(Instant::now()).is_some()
    }

    /// A takeover not applied yet, on tokio's clock.
    pub(crate) fn take_takeover(&self) -> Option<Takeover<Instant>> {
        let takeover = self.held().takeover.take()?;
        let clock = self.clock.get()?;
        Some(Takeover {
            last_tick: takeover.last_tick.map(|at| clock.instant(at)),
        })
    }

    /// The singleton's ticker, on the database's clock once it answered (the keeper asks for
    /// the lease meanwhile); `None` when the worker was stopped first.
    pub(crate) async fn ticker(
        &self,
        trigger: &Schedule,
        after: Duration,
        stopped: &CancellationToken,
    ) -> Option<(Ticker, Clock)> {
        let clock = tokio::select! {
            clock = self.clock() => clock,
            () = self.keep() => return None,
            () = stopped.cancelled() => return None,
        };
        Some((Ticker::shared(trigger, after, clock, self.catch_up), clock))
    }

    /// Resolves when the lease was taken or lost since the last call.
    pub(crate) async fn changed(&self) {
        self.changed.notified().await;
    }

    /// The database's clock, once it answered.
    pub(crate) async fn clock(&self) -> Clock {
        loop {
            let answered = self.answered.notified();
            if let Some(clock) = self.clock.get() {
                return *clock;
            }
            answered.await;
        }
    }

    /// Claims the tick scheduled at `scheduled` under `fence`; `Some(scheduled)` when it is
    /// this replica's to run.
    pub(crate) async fn claim(&self, fence: Fence, scheduled: Instant) -> Option<Instant> {
        let clock = *self.clock.get()?;
        let tick = clock.system_time(scheduled);
        match self.backend.claim_tick(&fence, tick).await {
            Ok(true) => {
                let mut held = self.held();
                if held.claimed.len() == CLAIMS_KEPT {
                    held.claimed.pop_front();
                }
                held.claimed.push_back((scheduled, fence));
                Some(scheduled)
            }
            Ok(false) => {
                tracing::info!(
                    worker = %self.name,
                    tick = %humantime::format_rfc3339_micros(tick),
                    "the tick was claimed already, or the lease was lost: not run here"
                );
                None
            }
            Err(err) => {
                tracing::warn!(
                    worker = %self.name,
                    error = %Chain(&*err),
                    "could not claim the tick: not run"
                );
                None
            }
        }
    }

    /// The fence the tick scheduled at `scheduled` was claimed under.
    pub(crate) fn fence_of(&self, scheduled: Instant) -> Option<Fence> {
        let held = self.held();
        let claimed = held.claimed.iter().rev();
        claimed
            .filter(|(at, _)| *at == scheduled)
            .map(|(_, fence)| fence.clone())
            .next()
    }

    pub(crate) fn status(&self) -> LeaseStatus {
        let held = self.is_holder();
        let state = self.held();
        LeaseStatus {
            held,
            holder: if held {
                Some(self.holder.clone())
            } else {
                state.other.clone()
            },
            fence: state.fence.as_ref().map(Fence::token),
            acquired: self.metrics.acquired.load(Relaxed),
            lost: self.metrics.lost.load(Relaxed),
        }
    }

    /// Keeps the lease, or asks for it, until dropped.
    pub(crate) async fn keep(&self) {
        let renew_every = self.lease / 3;
        let ask_every = renew_every.min(ASK_EVERY);
        loop {
            let fence = self.held().fence.clone();
            let sent = Instant::now();
            let wait = match fence {
                Some(fence) => self.renew(fence, sent).await,
                None => self.ask(sent).await,
            };
            let holder = self.is_holder();
            self.metrics.held.store(holder, Relaxed);
            tokio::time::sleep(if holder { renew_every } else { ask_every }.min(wait)).await;
        }
    }

    /// Renews the lease; how long to wait before the next try, at most.
    async fn renew(&self, fence: Fence, sent: Instant) -> Duration {
        match self
            .backend
            .renew_lease(&fence, &self.holder, self.lease)
            .await
        {
            Ok(Some(now)) => {
                self.answered_at(now, sent);
                self.held().trusted_until = Some(self.window(sent));
                Duration::MAX
            }
            Ok(None) => {
                self.metrics.lost.fetch_add(1, Relaxed);
                tracing::warn!(
                    worker = %self.name,
                    fence = fence.token(),
                    "the singleton's lease was lost (it expired and another replica took it): \
                     this replica runs no tick until it holds it again"
                );
                let mut held = self.held();
                held.fence = None;
                held.trusted_until = None;
                drop(held);
                self.changed.notify_one();
                Duration::ZERO
            }
            Err(err) => {
                let until = self.held().trusted_until;
                tracing::warn!(
                    worker = %self.name,
                    error = %Chain(&*err),
                    trusted_for = ?until.map(|u| u.saturating_duration_since(Instant::now())),
                    "could not renew the singleton's lease; trying again"
                );
                if until.is_some_and(|until| until <= Instant::now()) {
                    // Ticks are not run past the window; the loop shows it.
                    self.changed.notify_one();
                }
                ASK_EVERY
            }
        }
    }

    /// Asks for the lease; how long to wait before the next try, at most.
    async fn ask(&self, sent: Instant) -> Duration {
        match self
            .backend
            .acquire_lease(&self.name, &self.holder, self.lease)
            .await
        {
            Ok(lease) => {
                self.answered_at(lease.now, sent);
                let mut held = self.held();
                match lease.fence {
                    Some(fence) => {
                        self.metrics.acquired.fetch_add(1, Relaxed);
                        self.metrics.fence.store(fence.token(), Relaxed);
                        tracing::info!(
                            worker = %self.name,
                            fence = fence.token(),
                            holder = %self.holder,
                            "took the singleton's lease: this replica runs its ticks"
                        );
                        held.fence = Some(fence);
                        held.trusted_until = Some(self.window(sent));
                        held.other = None;
                        held.takeover = Some(Takeover {
                            last_tick: lease.last_tick,
                        });
                        drop(held);
                        self.changed.notify_one();
                    }
                    None => held.other = lease.holder,
                }
                Duration::MAX
            }
            Err(err) => {
                tracing::warn!(
                    worker = %self.name,
                    error = %Chain(&*err),
                    "could not ask for the singleton's lease; trying again"
                );
                ASK_EVERY
            }
        }
    }

    /// The end of the window a lease renewed by a request sent at `sent` is trusted in.
    fn window(&self, sent: Instant) -> Instant {
        later(sent, self.lease.saturating_sub(MARGIN))
    }

    /// The first answer fixes the database's clock: its time, half the round trip ago.
    fn answered_at(&self, now: SystemTime, sent: Instant) {
        if self.clock.get().is_none() {
            let half = Instant::now().saturating_duration_since(sent) / 2;
            let _ = self.clock.set(Clock::starting_at(now + half));
            self.answered.notify_waiters();
        }
    }

    /// Gives the lease up, if held, so another replica takes over at once.
    pub(crate) async fn resign(&self) {
        let fence = self.held().fence.take();
        self.metrics.held.store(false, Relaxed);
        let Some(fence) = fence else { return };
        match tokio::time::timeout(ASK_EVERY, self.backend.resign_lease(&fence)).await {
            Ok(Ok(())) => tracing::info!(
                worker = %self.name,
                fence = fence.token(),
                "gave the singleton's lease up"
            ),
            Ok(Err(err)) => tracing::warn!(
                worker = %self.name,
                error = %Chain(&*err),
                "could not give the singleton's lease up: another replica takes over when it expires"
            ),
            Err(_) => tracing::warn!(
                worker = %self.name,
                "the database did not answer in time: another replica takes over when the lease expires"
            ),
        }
    }
}
