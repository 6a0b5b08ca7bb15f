//! The queue half of declaring a worker: [`WorkerBuilder::queue`] and its keys, the hooks, and
//! the same hooks on a [`Worker`] made by `#[worker]`.

use std::any::{TypeId, type_name};

use crate::durable::consume::{Decode, decode};
use crate::queue::hooks::Hooks;
use crate::queue::{DeadJob, OnPanic};
use crate::worker::{Worker, WorkerBuilder};

/// What a queue worker declares besides its keys: the payload type (from
/// [`WorkerBuilder::queue`]) and its hooks.
#[derive(Debug, Clone, Default)]
pub(crate) struct QueueBinding {
    pub(crate) payload: Option<(TypeId, &'static str)>,
    pub(crate) hooks: Hooks,
    /// How a durable queue's payloads are read.
    pub(crate) decode: Option<Decode>,
}

impl Worker {
    /// [`WorkerBuilder::on_dead`], for a worker made by `#[worker]`:
    /// `.worker(send_email.into_worker().on_dead(|dead: DeadJob<Email>| ..))`.
    #[must_use]
    pub fn on_dead<T, F>(mut self, hook: F) -> Self
    where
        T: Clone + Send + Sync + 'static,
        F: Fn(DeadJob<T>) + Send + Sync + 'static,
    {
        self.queue.hooks.on_dead(hook);
        self
    }

    /// [`WorkerBuilder::on_leftovers`], for a worker made by `#[worker]`.
    #[must_use]
    pub fn on_leftovers<T, F>(mut self, hook: F) -> Self
    where
        T: Clone + Send + Sync + 'static,
        F: Fn(Vec<T>) + Send + Sync + 'static,
    {
        self.queue.hooks.on_leftovers(hook);
        self
    }

    /// [`WorkerBuilder::describe_jobs`], for a worker made by `#[worker]` (replacing the
    /// payload's `Debug`).
    #[must_use]
    pub fn describe_jobs<T, F>(mut self, describe: F) -> Self
    where
        T: Send + Sync + 'static,
        F: Fn(&T) -> String + Send + Sync + 'static,
    {
        self.queue.hooks.describe(describe);
        self
    }
}

impl WorkerBuilder {
    /// Consumes the jobs sent to the in-process queue `name`, whose payloads are `T` (`queue`):
    /// a run per job, up to [`concurrency`](Self::concurrency) at once. The body takes the job
    /// as a [`Job<T>`](crate::Job) argument; producers send with
    /// [`HostHandle::queue`](crate::HostHandle::queue) or a [`Queue<T>`](crate::Queue)
    /// argument. Payloads are cloned only when a body takes one by value
    /// ([`Job::into_inner`](crate::Job::into_inner)) or a hook receives one.
    ///
    /// ```
    /// use worker_core::{Host, Job, Worker};
    ///
    /// #[derive(Debug, Clone)]
    /// struct Email { to: String }
    ///
    /// let mailer = Worker::builder("send-email")
    ///     .queue::<Email>("emails")
    ///     .concurrency(8)
    ///     .retry(3)
    ///     .handler(|job: Job<Email>| async move {
    ///         tracing::info!(to = %job.to, "sent");
    ///     });
    /// let host = Host::builder().worker(mailer).build().unwrap();
    /// ```
    pub fn queue<T: Clone + Send + Sync + 'static>(mut self, name: impl Into<String>) -> Self {
        self.spec.queue = Some(name.into().into());
        self.queue.payload = Some((TypeId::of::<T>(), type_name::<T>()));
        self
    }

    /// Consumes the durable queue `name` (`queue = "name", durable`): its jobs live in the
    /// host's [`Backend`](crate::durable::Backend) (`worker-postgres`), so they survive a crash
    /// and every replica's consumer shares them. Its payloads `T` are stored as JSON.
    /// Producers enqueue through the backend (`worker_postgres::DurableQueue`), inside their
    /// own transactions if they like. The host needs a backend
    /// ([`HostBuilder::backend`](crate::HostBuilder::backend)), or refuses to build.
    pub fn durable_queue<T>(mut self, name: impl Into<String>) -> Self
    where
        T: serde::Serialize + serde::de::DeserializeOwned + Clone + Send + Sync + 'static,
    {
        self = self.queue::<T>(name);
        self.spec.durable = true;
        self.queue.decode = Some(decode::<T>);
        self
    }

    /// How long a durable job stays claimed without a heartbeat before another consumer may
    /// take it (`lease`), from 2 s to a day; default 30 s. The consumer renews the leases of its
    /// jobs every third of it, so only a consumer that died (or stalled) loses them. For a
    /// [`singleton`](Self::singleton), how long its lease lasts without a renewal: a successor
    /// takes over within the lease and a second of the holder's crash.
    pub fn lease(mut self, lease: std::time::Duration) -> Self {
        self.spec.lease = Some(lease);
        self
    }

    /// How many jobs of the queue run at once (`concurrency`), from 1 to 10,000; default 1.
    /// A job waiting out a retry backoff frees its slot.
    pub fn concurrency(mut self, jobs: u32) -> Self {
        self.spec.concurrency = Some(jobs);
        self
    }

    /// How many jobs may wait to start, buffered or in a retry backoff, before
    /// [`Queue::send`](crate::Queue::send) waits (`capacity`), from 1 to 10,000,000; default
    /// 1024.
    pub fn capacity(mut self, jobs: u32) -> Self {
        self.spec.capacity = Some(jobs);
        self
    }

    /// What a job whose attempt panicked does (`on_panic`); default [`OnPanic::Retry`].
    pub fn on_panic(mut self, on_panic: OnPanic) -> Self {
        self.spec.on_panic = Some(on_panic);
        self
    }

    /// Called with each job that goes dead (retries exhausted, a permanent error, or a panic
    /// with `on_panic = discard`), after it was counted and kept in the dead list. It runs on
    /// the worker's slot: keep it quick (log, store, forward to a queue of your own).
    pub fn on_dead<T, F>(mut self, hook: F) -> Self
    where
        T: Clone + Send + Sync + 'static,
        F: Fn(DeadJob<T>) + Send + Sync + 'static,
    {
        self.queue.hooks.on_dead(hook);
        self
    }

    /// Called once at shutdown, after the runs in flight ended, with every job that never got
    /// a slot (buffered, waiting out a retry backoff, or put back for a retry by a run that
    /// failed as the worker stopped), oldest first; without it they are counted in
    /// `worker_jobs_dropped_total{reason="shutdown"}` and logged. Keep it quick: it runs
    /// within the shutdown deadline (write them to a file or a durable store).
    pub fn on_leftovers<T, F>(mut self, hook: F) -> Self
    where
        T: Clone + Send + Sync + 'static,
        F: Fn(Vec<T>) + Send + Sync + 'static,
    {
        self.queue.hooks.on_leftovers(hook);
        self
    }

    /// How a dead job's payload is shown in `/workers` and on the dashboard. `#[worker]` uses
    /// the payload's `Debug` when it has one; use this to redact what should not be shown, or
    /// to show a payload without `Debug`.
    pub fn describe_jobs<T, F>(mut self, describe: F) -> Self
    where
        T: Send + Sync + 'static,
        F: Fn(&T) -> String + Send + Sync + 'static,
    {
        self.queue.hooks.describe(describe);
        self
    }

    /// The `Debug` description `#[worker]` gives a payload that has one, unless one was set.
    pub(crate) fn describe_by_default<T: Send + Sync + 'static>(
        self,
        describe: Option<fn(&T) -> String>,
    ) -> Self {
        match describe {
            Some(describe) if !self.queue.hooks.describes() => self.describe_jobs(describe),
            _ => self,
        }
    }
}
