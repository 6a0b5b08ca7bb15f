//! The in-process queue between producers and a queue worker's slots: a buffer bounded by
//! `capacity` (jobs waiting to start, whether buffered or waiting out a retry backoff), closed
//! when the host stops, and drained by the worker's slots.
//!
//! Payloads are type-erased here (`Arc<dyn Any>`): the typed ends are [`Queue<T>`] and
//! [`Job<T>`], which check the type once, when the host is built.
//!
//! [`Queue<T>`]: crate::Queue
//! [`Job<T>`]: crate::Job

use std::any::Any;
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::queue::dead::DeadList;
use crate::queue::hooks::Hooks;
use crate::queue::metrics::QueueMetrics;
use crate::queue::status::{SAMPLES, Sample};

/// A job's payload, type-erased.
pub(crate) type Payload = Arc<dyn Any + Send + Sync>;

/// A job and what the queue knows about it.
#[derive(Debug)]
pub(crate) struct Envelope {
    /// Unique within the queue, from 1, in the order jobs were accepted.
    pub(crate) id: u64,
    /// Attempts made so far.
    pub(crate) attempts: u32,
    /// When it was accepted, on tokio's clock.
    pub(crate) enqueued: Instant,
    /// The run its attempts belong to, once it started.
    pub(crate) run: Option<(u64, Instant)>,
    pub(crate) payload: Payload,
}

/// Why a send was refused; the `reason` label of `worker_queue_rejected_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reject {
    Full,
    Closed,
}

impl Reject {
    pub(crate) const ALL: [Reject; 2] = [Self::Full, Self::Closed];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Closed => "closed",
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    /// Jobs waiting for a slot, oldest first (a retry goes first once its backoff ended).
    ready: VecDeque<Envelope>,
    /// Jobs waiting out a retry backoff, by when it ends.
    delayed: BTreeMap<(Instant, u64), Envelope>,
    /// No more sends: the host is stopping.
    closed: bool,
    /// No more jobs for the slots: the worker stopped taking them.
    finished: bool,
    /// Jobs that would have waited out a retry backoff after the queue finished (their attempt
    /// was in flight then): left over, handed over with the others once the runs ended.
    late: Vec<Envelope>,
    /// The worker is paused: jobs wait.
    paused: bool,
    /// Slots waiting for a job, and sends waiting for room: told only when someone waits.
    slots_waiting: usize,
    sends_waiting: usize,
}

/// One queue: its buffer, its metrics, its dead jobs and its worker's hooks.
pub(crate) struct Channel {
    /// The queue's name, as producers ask for it.
    pub(crate) name: Arc<str>,
    /// The worker that consumes it.
    pub(crate) worker: Arc<str>,
    /// The payload type's name, for errors.
    pub(crate) payload: &'static str,
    pub(crate) payload_type: std::any::TypeId,
    pub(crate) capacity: usize,
    pub(crate) concurrency: usize,
    inner: Mutex<Inner>,
    /// Woken when a job is ready, and when the queue finished.
    ready: Notify,
    /// Woken when a job left the buffer, so a waiting send may go on.
    space: Notify,
    /// Woken when a job went into backoff, or a slot finished a job while the queue is closed.
    changed: Notify,
    is_closed: AtomicBool,
    next_id: AtomicU64,
    pub(crate) metrics: QueueMetrics,
    pub(crate) dead: DeadList,
    pub(crate) hooks: Hooks,
    pub(super) history: Mutex<VecDeque<Sample>>,
    /// A durable queue's backend: its jobs are claimed from there, none is buffered here.
    pub(crate) durable: Option<crate::durable::consume::Durable>,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel")
            .field("name", &self.name)
            .field("worker", &self.worker)
            .field("payload", &self.payload)
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

/// A send registered as waiting for room, unregistered when it gives up or is dropped (a send
/// cancelled while it waits, by a timeout of the caller's, say).
struct Waiting<'a> {
    channel: &'a Channel,
    registered: bool,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if self.registered {
            self.channel.lock().sends_waiting -= 1;
        }
    }
}

/// What the buffer holds at one moment.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Depth {
    pub(crate) ready: usize,
    pub(crate) delayed: usize,
    /// When the oldest ready job was accepted.
    pub(crate) oldest: Option<Instant>,
}

impl Channel {
    pub(crate) fn new(
        name: Arc<str>,
        worker: Arc<str>,
        payload: (std::any::TypeId, &'static str),
        capacity: usize,
        concurrency: usize,
        hooks: Hooks,
    ) -> Self {
        Self {
            metrics: QueueMetrics::new(&worker),
            name,
            worker,
            payload: payload.1,
            payload_type: payload.0,
            capacity,
            concurrency,
            inner: Mutex::new(Inner::default()),
            ready: Notify::new(),
            space: Notify::new(),
            changed: Notify::new(),
            is_closed: AtomicBool::new(false),
            next_id: AtomicU64::new(1),
            dead: DeadList::default(),
            hooks,
            history: Mutex::new(VecDeque::with_capacity(SAMPLES)),
            durable: None,
        }
    }

    /// The channel of a durable queue: closed to in-process sends, its jobs in `durable`.
    pub(crate) fn durable(mut self, durable: crate::durable::consume::Durable) -> Self {
        self.durable = Some(durable);
        self.close();
        self
    }

    /// Pauses or resumes handing out jobs.
    pub(crate) fn set_paused(&self, paused: bool) {
        self.lock().paused = paused;
        if !paused {
            self.ready.notify_waiters();
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Accepts `payload` if there is room, waiting for room until `deadline` (`None`: as long
    /// as it takes; `Some(now)`: not at all). The payload comes back with the refusal.
    pub(crate) async fn send(
        &self,
        payload: Payload,
        deadline: Option<Instant>,
    ) -> Result<u64, (Payload, Reject)> {
        let mut payload = Some(payload);
        let mut waiting = Waiting {
            channel: self,
            registered: false,
        };
        loop {
            let space = self.space.notified();
            let mut space = std::pin::pin!(space);
            let waited = std::mem::take(&mut waiting.registered);
            match self.try_push(&mut payload, waited, Some(space.as_mut())) {
                Ok(id) => return Ok(id),
                Err(Reject::Closed) => {
                    return Err((payload.take().expect("kept on refusal"), Reject::Closed));
                }
                Err(Reject::Full) => {}
            }
            waiting.registered = true;
            let woken = match deadline {
                None => {
                    space.await;
                    true
                }
                Some(deadline) if deadline <= Instant::now() => false,
                Some(deadline) => tokio::time::timeout_at(deadline, space).await.is_ok(),
            };
            if !woken {
                // `waiting` unregisters it.
                self.metrics.rejected(Reject::Full);
                return Err((payload.take().expect("kept on refusal"), Reject::Full));
            }
        }
    }

    /// Pushes the payload if there is room; leaves it in `payload` otherwise, and then, when
    /// `wait` is given, registers it to be woken when room is made. `waited`: the caller was
    /// registered as waiting before.
    fn try_push(
        &self,
        payload: &mut Option<Payload>,
        waited: bool,
        wait: Option<std::pin::Pin<&mut tokio::sync::futures::Notified<'_>>>,
    ) -> Result<u64, Reject> {
        let mut inner = self.lock();
        if waited {
            inner.sends_waiting -= 1;
        }
        if inner.closed {
            drop(inner);
            self.metrics.rejected(Reject::Closed);
            return Err(Reject::Closed);
        }
        if inner.ready.len() + inner.delayed.len() >= self.capacity {
            if let Some(wait) = wait {
                // Registered under the lock: a slot that makes room after it is released
                // sees this send waiting, and wakes it.
                wait.enable();
                inner.sends_waiting += 1;
            }
            return Err(Reject::Full);
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        inner.ready.push_back(Envelope {
            id,
            attempts: 0,
            enqueued: Instant::now(),
            run: None,
            payload: payload.take().expect("a payload to push"),
        });
        let wake = inner.slots_waiting > 0;
        drop(inner);
        self.metrics.enqueued();
        if wake {
            self.ready.notify_one();
        }
        Ok(id)
    }

    /// The next ready job, waiting for one, counted in flight (with whether it is the only
    /// one); `None` once the queue finished.
    pub(crate) async fn next(&self) -> Option<(Envelope, bool)> {
        let mut waited = false;
        loop {
            let ready = self.ready.notified();
            let mut ready = std::pin::pin!(ready);
            {
                let mut inner = self.lock();
                if waited {
                    inner.slots_waiting -= 1;
                }
                if inner.finished {
                    return None;
                }
                if !inner.paused
                    && let Some(job) = inner.ready.pop_front()
                {
                    // Counted under the lock, so the queue is never seen drained meanwhile.
                    let alone = self.metrics.started() == 0;
                    let wake = inner.sends_waiting > 0;
                    drop(inner);
                    if wake {
                        self.space.notify_one();
                    }
                    return Some((job, alone));
                }
                // Registered under the lock: a job pushed after it is released wakes this slot.
                ready.as_mut().enable();
                inner.slots_waiting += 1;
                waited = true;
            }
            ready.await;
        }
    }

    /// A slot is done with a job: `finished`, or back in the queue for a retry (a slot whose
    /// job was aborted never calls it: its in-flight count is given back on drop, see
    /// `consume`).
    pub(crate) fn done(&self, finished: bool) {
        if finished {
            self.metrics.finished.fetch_add(1, Ordering::Relaxed);
        }
        if self.is_closed.load(Ordering::Acquire) {
            self.changed.notify_one();
        }
    }

    /// Puts a job back after a failed attempt, to be ready again in `delay`; it counts against
    /// the capacity meanwhile. Once the worker finished, the job is kept as a leftover instead
    /// (see [`take_late`](Self::take_late)).
    pub(crate) fn delay(&self, job: Envelope, delay: Duration) {
        let due = Instant::now() + delay;
        let mut inner = self.lock();
        if inner.finished {
            inner.late.push(job);
            return;
        }
        if delay.is_zero() {
            inner.ready.push_front(job);
            drop(inner);
            self.ready.notify_one();
        } else {
            inner.delayed.insert((due, job.id), job);
            drop(inner);
            self.changed.notify_one();
        }
    }

    /// The jobs whose retry came after the queue finished, for the one hand-over of every
    /// leftover once the runs ended.
    pub(crate) fn take_late(&self) -> Vec<Envelope> {
        std::mem::take(&mut self.lock().late)
    }

    /// Moves the jobs whose backoff ended by `now` to the front of the buffer; returns when the
    /// next backoff ends.
    pub(crate) fn promote(&self, now: Instant) -> Option<Instant> {
        let mut inner = self.lock();
        let mut moved = false;
        while let Some(entry) = inner.delayed.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let job = entry.remove();
            // Retries go first: they were accepted before anything still buffered.
            inner.ready.push_front(job);
            moved = true;
        }
        let next = inner.delayed.keys().next().map(|(due, _)| *due);
        drop(inner);
        if moved {
            self.ready.notify_waiters();
        }
        next
    }

    /// Completes when a job went into backoff or, once closed, a slot finished a job.
    pub(crate) fn changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.changed.notified()
    }

    /// Refuses sends from now on.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.is_closed.store(true, Ordering::Release);
        // Waiting sends see the queue closed.
        self.space.notify_waiters();
        self.changed.notify_one();
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.is_closed.load(Ordering::Acquire)
    }

    /// Whether nothing is buffered, in backoff or in flight.
    pub(crate) fn is_drained(&self) -> bool {
        let inner = self.lock();
        inner.ready.is_empty() && inner.delayed.is_empty() && self.metrics.in_flight() == 0
    }

    /// Stops handing out jobs and takes every job that never got a slot: buffered, or in
    /// backoff. Later calls take nothing.
    pub(crate) fn finish(&self) -> Vec<Envelope> {
        let mut inner = self.lock();
        inner.closed = true;
        inner.finished = true;
        self.is_closed.store(true, Ordering::Release);
        let mut left: Vec<Envelope> = std::mem::take(&mut inner.delayed).into_values().collect();
        left.extend(inner.ready.drain(..));
        drop(inner);
        left.sort_by_key(|job| job.id);
        self.ready.notify_waiters();
        self.space.notify_waiters();
        left
    }

    /// Jobs waiting to start now: buffered or in backoff.
    pub(crate) fn len(&self) -> usize {
        let inner = self.lock();
        inner.ready.len() + inner.delayed.len()
    }

    /// What is buffered now, and since when (for status and health, not for every send).
    pub(crate) fn depth(&self) -> Depth {
        let inner = self.lock();
        Depth {
            ready: inner.ready.len(),
            delayed: inner.delayed.len(),
            // Jobs are buffered in the order they came, but for retries put back in front once
            // their backoff ended: the oldest is among the first few.
            oldest: inner.ready.iter().take(64).map(|job| job.enqueued).min(),
        }
    }

    /// Since when the oldest job ready to start has waited: buffered here since it was
    /// accepted, or for a durable queue in the database since it was due (as its backend last
    /// reported).
    pub(crate) fn oldest_ready(&self) -> Option<Instant> {
        match self.durable {
            Some(_) => self.metrics.oldest_reported(),
            None => self.depth().oldest,
        }
    }

    /// Puts a dead job back at the end of the buffer as a new job, if there is room.
    pub(crate) fn requeue(&self, payload: Payload) -> Result<u64, Reject> {
        let mut payload = Some(payload);
        self.try_push(&mut payload, false, None)
    }
}

#[cfg(test)]
#[path = "channel_tests.rs"]
mod tests;
