//! The per-attempt scope: the run's context, the host's shared state and the scoped resources
//! built for this attempt alone.

use std::any::{TypeId, type_name};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::durable::Fence;
use crate::error::BoxError;
use crate::observe::tracked::{Declared, Tracked};
use crate::queue::job::JobInfo;
use crate::worker::extract::{Scoped, State};
use crate::worker::finish::{Finishing, ScopedMut};
use crate::worker::registry::{AnyArc, Registry};

/// What every attempt of one worker shares: its name, the host's registry, and the worker's live
/// record, whose control signals hold the token that cancels its runs.
pub(crate) struct WorkerEnv {
    pub(crate) name: Arc<str>,
    pub(crate) registry: Arc<Registry>,
    pub(crate) tracked: Arc<Tracked>,
}

/// The context of one attempt of one run: who is running, which run and attempt this is, when it
/// was scheduled, and whether the host asked it to stop.
///
/// Take it as a worker argument (`ctx: Ctx`). Cloning is cheap (a reference count).
#[derive(Clone)]
pub struct Ctx {
    env: Arc<WorkerEnv>,
    run_id: u64,
    attempt: u32,
    scheduled_at: Instant,
    scheduled_time: SystemTime,
    /// A durable job's own token (a child of the worker's), cancelled when the job's
    /// cancellation is requested or its lease is lost; `None`: the worker's.
    token: Option<CancellationToken>,
}

impl Ctx {
    pub(crate) fn new(
        env: Arc<WorkerEnv>,
        run_id: u64,
        attempt: u32,
        scheduled_at: Instant,
        scheduled_time: SystemTime,
    ) -> Self {
        Self {
            env,
            run_id,
            attempt,
            scheduled_at,
            scheduled_time,
            token: None,
        }
    }

    /// The context of a durable job's attempt, with the job's own token.
    pub(crate) fn with_token(mut self, token: Option<CancellationToken>) -> Self {
        self.token = token;
        self
    }

    /// A context outside any host, for calling a worker function directly in a unit test.
    ///
    /// It has run id 0, attempt 1, is scheduled now, and sees no state; cancel it through
    /// [`Ctx::cancellation_token`].
    #[must_use]
    pub fn for_test(worker: &str) -> Self {
        let name: Arc<str> = worker.into();
        let tracked = Tracked::new(Declared {
            name: &name,
            schedule: String::new(),
            gates_readiness: false,
            gates_liveness: false,
            stale_after: None,
            keep: 0,
            queue: None,
            lease: None,
        });
        let env = WorkerEnv {
            name,
            registry: Arc::new(Registry::new()),
            tracked: Arc::new(tracked),
        };
        Self::new(Arc::new(env), 0, 1, Instant::now(), SystemTime::now())
    }

    /// The worker's name, as in the `worker` metric label.
    #[must_use]
    pub fn worker(&self) -> &str {
        &self.env.name
    }

    /// The id of this run, unique within the process; every attempt of one run shares it.
    #[must_use]
    pub fn run_id(&self) -> u64 {
        self.run_id
    }

    /// The attempt number within the run: 1 for the first, 2 for the first retry, ...
    #[must_use]
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// When the trigger that started this run was due, on tokio's clock.
    #[must_use]
    pub fn scheduled_at(&self) -> Instant {
        self.scheduled_at
    }

    /// When the trigger that started this run was due, by the wall clock: for a singleton, the
    /// database's, and the instant its tick was claimed as, which every replica agrees on (a
    /// nightly report can name its day by it).
    #[must_use]
    pub fn scheduled_time(&self) -> SystemTime {
        self.scheduled_time
    }

    /// Whether the host asked this run to stop (shutdown). Check it between units of work.
    ///
    /// A body that stops early should return an error: the run then counts as `cancelled`. A
    /// body that returns `Ok` counts as a `success`, cancelled or not.
    #[must_use]
    pub fn is_cancelled(&self) -> bool {
        self.cancellation_token().is_cancelled()
    }

    /// Completes when the host asks this run to stop.
    ///
    /// Cancellation safe: dropping it before it completes loses nothing.
    pub async fn cancelled(&self) {
        self.cancellation_token().cancelled().await;
    }

    /// For a singleton's run, the fence of the lease its tick was claimed under: check it inside
    /// the transaction of the run's writes (`worker_postgres::FenceCheck`), so they commit only
    /// while this replica holds the lease, and a new holder's takeover waits for them. `None`
    /// for other workers, and for a singleton's run-now requests, which no tick claimed.
    #[must_use]
    pub fn fence(&self) -> Option<Fence> {
        self.env.tracked.lease.as_ref()?.fence_of(self.scheduled_at)
    }

    /// The run's cancellation token, to hand to libraries or child tasks. A durable job's is
    /// also cancelled when its cancellation is requested (`Postgres::cancel`, the dashboard) or
    /// its lease is lost to another consumer.
    #[must_use]
    pub fn cancellation_token(&self) -> &CancellationToken {
        self.token
            .as_ref()
            .unwrap_or_else(|| self.env.tracked.control.token())
    }

    /// Shared state registered on the host builder, if any of type `T` was.
    #[must_use]
    pub fn state<T: ?Sized + Send + Sync + 'static>(&self) -> Option<State<T>> {
        self.env.registry.state()
    }

    pub(crate) fn registry(&self) -> &Registry {
        &self.env.registry
    }
}

impl fmt::Debug for Ctx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ctx")
            .field("worker", &self.worker())
            .field("run_id", &self.run_id)
            .field("attempt", &self.attempt)
            .field("cancelled", &self.is_cancelled())
            .finish_non_exhaustive()
    }
}

/// Everything one attempt can draw its arguments from; created before the attempt and dropped
/// after it, whatever its outcome.
///
/// Extractors ([`FromScope`](crate::FromScope)) receive it by reference.
pub struct Scope {
    ctx: Ctx,
    resources: Mutex<Vec<(TypeId, AnyArc)>>,
    /// The job of a queue worker's attempt.
    job: Option<JobInfo>,
    /// The attempt's [`ScopedMut`] resources, which the runner finishes after the attempt;
    /// `None` when the host registered no factory for one.
    finishing: Option<Arc<Finishing>>,
}

impl Scope {
    pub(crate) fn new(ctx: Ctx, job: Option<JobInfo>, finishing: Option<Arc<Finishing>>) -> Self {
        Self {
            ctx,
            resources: Mutex::new(Vec::new()),
            job,
            finishing,
        }
    }

    pub(crate) fn job(&self) -> Option<&JobInfo> {
        self.job.as_ref()
    }

    /// The attempt's context.
    #[must_use]
    pub fn ctx(&self) -> &Ctx {
        &self.ctx
    }

    /// Shared state of type `T`, if it was registered.
    #[must_use]
    pub fn state<T: ?Sized + Send + Sync + 'static>(&self) -> Option<State<T>> {
        self.ctx.state()
    }

    /// The scoped resource of type `T` for this attempt, built by its factory on first use and
    /// shared by later calls within the same attempt.
    ///
    /// Cancellation safe: if dropped before completion, nothing is cached and the next call
    /// builds the resource again.
    pub async fn scoped<T: Send + Sync + 'static>(&self) -> Result<Scoped<T>, BoxError> {
        let id = TypeId::of::<T>();
        if let Some(found) = self.cached(id) {
            return Ok(Scoped(downcast(found)));
        }
        let Some(create) = self.ctx.env.registry.factory(id) else {
            return Err(format!("no factory registered for `{}`", type_name::<T>()).into());
        };
        let value = create(self.ctx.clone()).await?;
        self.resources
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((id, value.clone()));
        Ok(Scoped(downcast(value)))
    }

    /// The [`ScopedMut`] resource of type `T` for this attempt, built by its factory on first
    /// use. Fails while another handle of this attempt holds it, and after the body consumed
    /// it with [`ScopedMut::into_inner`].
    pub async fn scoped_mut<T: Send + 'static>(&self) -> Result<ScopedMut<T>, BoxError> {
        match &self.finishing {
            Some(finishing) => finishing.take(self).await,
            None => Err(format!(
                "no `scoped_mut` factory registered for `{}`",
                type_name::<T>()
            )
            .into()),
        }
    }

    fn cached(&self, id: TypeId) -> Option<AnyArc> {
        let resources = self
            .resources
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        resources
            .iter()
            .find(|(found, _)| *found == id)
            .map(|(_, value)| value.clone())
    }
}

fn downcast<T: Send + Sync + 'static>(value: AnyArc) -> Arc<T> {
    match value.downcast::<T>() {
        Ok(value) => value,
        // Entries are keyed by `TypeId::of::<T>()` and hold a `T`.
        Err(_) => unreachable!("scoped resource stored under the wrong type id"),
    }
}

impl fmt::Debug for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scope")
            .field("ctx", &self.ctx)
            .finish_non_exhaustive()
    }
}
