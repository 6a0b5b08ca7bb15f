//! Declaring a worker in code: [`Worker::builder`]. `#[worker]` expands to the same builder.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{BoxError, Error};
use crate::extract::FromScope;
use crate::handler::{Body, Handler, HandlerBody, RawBody, Requirement};
use crate::scope::Scope;
use crate::supervisor::{self, Launch};

/// What a schedule does with ticks that came due while the previous run was still going, or
/// while the process could not keep up.
///
/// Whatever the policy, two runs of one worker never overlap, and every tick is either a run or
/// a skip counted in `worker_runs_skipped_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Missed {
    /// Ticks that came due during a run are skipped (reason `overlap`), ticks the process woke
    /// up too late for are skipped (reason `missed`) but the latest, and the schedule stays on
    /// its grid. The default.
    #[default]
    Skip,
    /// Every tick runs: missed ticks run back to back, as fast as the runs allow, until the
    /// schedule has caught up with its grid.
    Burst,
    /// A late tick runs at once, and the grid is shifted to start from that run: runs stay at
    /// least one period apart and nothing is skipped.
    Delay,
}

impl Missed {
    /// The name used in configuration and in the `#[worker(missed = ..)]` key.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Skip => "skip",
            Self::Burst => "burst",
            Self::Delay => "delay",
        }
    }
}

/// Default base delay before the first retry.
pub const DEFAULT_BACKOFF: Duration = Duration::from_secs(1);
/// Default upper bound of the delay between retries.
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_mins(1);

/// The declared configuration of one worker.
#[derive(Debug, Clone)]
pub(crate) struct Spec {
    pub(crate) name: Arc<str>,
    pub(crate) every: Option<Duration>,
    pub(crate) after: Duration,
    pub(crate) missed: Missed,
    pub(crate) retry: u32,
    pub(crate) backoff: Duration,
    pub(crate) backoff_max: Duration,
    pub(crate) timeout: Option<Duration>,
}

impl Spec {
    /// Checks what the type system cannot: the builder path has no compile-time checks.
    pub(crate) fn validate(&self) -> Result<(), Error> {
        let name = &*self.name;
        if name.trim().is_empty() {
            return Err(Error::config(
                name,
                "name",
                format!("{name:?}"),
                "a non-empty name",
            ));
        }
        match self.every {
            None => {
                return Err(Error::config(
                    name,
                    "every",
                    "nothing",
                    "a schedule: call `.every(..)` on the worker builder",
                ));
            }
            Some(Duration::ZERO) => {
                return Err(Error::config(
                    name,
                    "every",
                    "0s",
                    "a period greater than zero",
                ));
            }
            Some(_) => {}
        }
        if self.timeout == Some(Duration::ZERO) {
            return Err(Error::config(
                name,
                "timeout",
                "0s",
                "a timeout greater than zero",
            ));
        }
        if self.backoff > self.backoff_max {
            return Err(Error::config(
                name,
                "backoff",
                humantime::format_duration(self.backoff),
                format!(
                    "at most `backoff_max` ({})",
                    humantime::format_duration(self.backoff_max)
                ),
            ));
        }
        Ok(())
    }
}

/// A worker's supervisor loop, ready to be spawned.
pub(crate) type Supervisor = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A worker ready to be registered with [`HostBuilder::worker`](crate::HostBuilder::worker).
///
/// Made by [`Worker::builder`] or by `#[worker]`.
pub struct Worker {
    pub(crate) spec: Spec,
    pub(crate) requirements: Vec<Requirement>,
    pub(crate) launch: Box<dyn FnOnce(Launch) -> Supervisor + Send>,
}

impl Worker {
    /// Starts declaring a worker named `name` in code, for workers known only at run time (one
    /// per tenant, N shards, a period read from a database).
    ///
    /// ```
    /// use std::time::Duration;
    /// use worker_core::{BoxError, Ctx, Host, Worker};
    ///
    /// let shards = (0..4).map(|shard| {
    ///     Worker::builder(format!("reindex-{shard}"))
    ///         .every(Duration::from_secs(30))
    ///         .retry(2)
    ///         .handler(move |ctx: Ctx| async move {
    ///             tracing::info!(shard, run = ctx.run_id(), "reindexing");
    ///             Ok::<(), BoxError>(())
    ///         })
    /// });
    /// let host = Host::builder().workers(shards).build().unwrap();
    /// ```
    pub fn builder(name: impl Into<String>) -> WorkerBuilder {
        WorkerBuilder {
            spec: Spec {
                name: name.into().into(),
                every: None,
                after: Duration::ZERO,
                missed: Missed::Skip,
                retry: 0,
                backoff: DEFAULT_BACKOFF,
                backoff_max: DEFAULT_BACKOFF_MAX,
                timeout: None,
            },
            requirements: Vec::new(),
        }
    }

    /// The worker's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.spec.name
    }
}

impl fmt::Debug for Worker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Worker")
            .field("spec", &self.spec)
            .finish_non_exhaustive()
    }
}

/// Declares a worker in code; finish with [`WorkerBuilder::handler`].
///
/// Every method matches a key of `#[worker(...)]`.
#[derive(Debug, Clone)]
#[must_use = "a worker builder does nothing until `.handler(..)` makes a `Worker` and it is registered"]
pub struct WorkerBuilder {
    spec: Spec,
    requirements: Vec<Requirement>,
}

impl WorkerBuilder {
    /// Runs every `period`, on a fixed grid: a slow run does not shift later runs (`every`).
    pub fn every(mut self, period: Duration) -> Self {
        self.spec.every = Some(period);
        self
    }

    /// Waits `delay` after the host starts before the first run; default: run at once (`after`).
    pub fn after(mut self, delay: Duration) -> Self {
        self.spec.after = delay;
        self
    }

    /// What to do with ticks that could not run on time (`missed`); default [`Missed::Skip`].
    pub fn missed(mut self, policy: Missed) -> Self {
        self.spec.missed = policy;
        self
    }

    /// Retries a failed or timed-out attempt up to `retries` times, so a run makes at most
    /// `retries + 1` attempts (`retry`); default 0. Panics are never retried.
    pub fn retry(mut self, retries: u32) -> Self {
        self.spec.retry = retries;
        self
    }

    /// The delay before the first retry; each later retry doubles it, up to
    /// [`backoff_max`](Self::backoff_max), and each delay is drawn at random from its upper half
    /// (`backoff`); default 1 s.
    pub fn backoff(mut self, base: Duration) -> Self {
        self.spec.backoff = base;
        self
    }

    /// The longest delay between two attempts (`backoff_max`); default 60 s.
    pub fn backoff_max(mut self, max: Duration) -> Self {
        self.spec.backoff_max = max;
        self
    }

    /// Fails an attempt that takes longer than `limit` (`timeout`); a timed-out attempt is
    /// retried like a failed one. Default: no limit.
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.spec.timeout = Some(limit);
        self
    }

    /// Finishes the worker with its body: an async fn or closure whose arguments are
    /// extractors ([`FromScope`]) and whose output is `()` or `Result<(), E>`.
    pub fn handler<H, Args>(mut self, handler: H) -> Worker
    where
        H: Handler<Args>,
        Args: 'static,
    {
        self.requirements = H::requirements();
        self.finish(HandlerBody(handler, PhantomData))
    }

    #[doc(hidden)]
    pub fn __argument<T: FromScope>(mut self, argument: String) -> Self {
        self.requirements.push(Requirement::of::<T>(argument));
        self
    }

    #[doc(hidden)]
    pub fn __body<F, Fut>(self, body: F) -> Worker
    where
        F: Fn(Scope) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), BoxError>> + Send,
    {
        self.finish(RawBody(body))
    }

    fn finish<B: Body>(self, body: B) -> Worker {
        Worker {
            spec: self.spec,
            requirements: self.requirements,
            launch: Box::new(move |launch| Box::pin(supervisor::run(body, launch))),
        }
    }
}

/// Anything [`HostBuilder::worker`](crate::HostBuilder::worker) accepts: a [`Worker`], or the
/// name of a function annotated with `#[worker]`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a worker",
    label = "not a worker",
    note = "pass the name of an `async fn` annotated with `#[worker(...)]`, or a `Worker` made with `Worker::builder(..)`"
)]
pub trait IntoWorker {
    /// Makes the worker.
    fn into_worker(self) -> Worker;
}

impl IntoWorker for Worker {
    fn into_worker(self) -> Worker {
        self
    }
}
