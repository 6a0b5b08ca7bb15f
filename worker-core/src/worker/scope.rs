//! The per-attempt scope: the run's context, the host's shared state and the scoped resources
//! built for this attempt alone.

use crate::durable::Fence;
use std::any::{Any, TypeId, type_name};
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::error::BoxError;
use crate::observe::tracked::{Declared, Tracked};
use crate::queue::channel::Channel;
use crate::queue::job::JobInfo;
use crate::worker::extract::{Scoped, State};
use crate::worker::finish::{Factory, Finishing, ScopedMut};

type AnyArc = Arc<dyn Any + Send + Sync>;
/// State by type: each value is the `Arc<T>` of its type `T`, which may be unsized
/// (`dyn Trait`).
pub(crate) type StateMap = HashMap<TypeId, AnyArc>;
type Create =
    dyn Fn(Ctx) -> Pin<Box<dyn Future<Output = Result<AnyArc, BoxError>> + Send>> + Send + Sync;

/// What the host builder registered: shared state and scoped-resource factories, by type.
///
/// Extractors read it at build time (through [`FromScope::check`](crate::FromScope::check)) to
/// refuse to start a host whose workers need something that was never registered.
pub struct Registry {
    states: StateMap,
    factories: HashMap<TypeId, Arc<Create>>,
    /// The factories of [`ScopedMut`] resources, by type: each value is an `Arc<Factory<T>>`.
    finishing: HashMap<TypeId, AnyArc>,
    /// Every queue of the host, by payload type.
    queues: HashMap<TypeId, Vec<Arc<Channel>>>,
    /// A worker's own registry (its `Worker::builder(..).state(..)`) has the host's as parent:
    /// its state comes first, and the host's factories and queues are the parent's.
    parent: Option<Arc<Registry>>,
}

impl Registry {
    pub(crate) fn new() -> Self {
        Self {
            states: HashMap::new(),
            factories: HashMap::new(),
            finishing: HashMap::new(),
            queues: HashMap::new(),
            parent: None,
        }
    }

    /// A worker's registry: its own `states` first, then everything of `host`.
    pub(crate) fn layered(host: &Arc<Registry>, states: StateMap) -> Self {
        Self {
            states,
            parent: Some(Arc::clone(host)),
            ..Self::new()
        }
    }

    /// The host's registry, which holds the factories and the queues.
    fn root(&self) -> &Registry {
        self.parent.as_deref().unwrap_or(self)
    }

    pub(crate) fn factory(&self, id: TypeId) -> Option<&Arc<Create>> {
        self.root().factories.get(&id)
    }

    /// The factory of a [`ScopedMut<T>`] resource, if one was registered.
    pub(crate) fn finishing<T: Send + 'static>(&self) -> Option<Arc<Factory<T>>> {
        let found = self.root().finishing.get(&TypeId::of::<T>())?;
        Arc::clone(found).downcast::<Factory<T>>().ok()
    }

    /// Whether any [`ScopedMut`] factory was registered: attempts then keep a list of the
    /// resources to finish.
    pub(crate) fn has_finishing(&self) -> bool {
        !self.root().finishing.is_empty()
    }

    pub(crate) fn insert_finishing<T: Send + 'static>(&mut self, factory: Factory<T>) {
        self.finishing
            .insert(TypeId::of::<T>(), Arc::new(factory) as AnyArc);
    }

    pub(crate) fn insert_queue(&mut self, channel: Arc<Channel>) {
        self.queues
            .entry(channel.payload_type)
            .or_default()
            .push(channel);
    }

    /// Whether the host was built with a queue named `name`.
    pub(crate) fn has_queue(&self, name: &str) -> bool {
        self.root()
            .queues
            .values()
            .flatten()
            .any(|channel| *channel.name == *name)
    }

    /// The one queue whose jobs carry a `T`, for the `Queue<T>` extractor.
    pub(crate) fn queue_of<T: 'static>(&self) -> Result<Arc<Channel>, String> {
        match self
            .root()
            .queues
            .get(&TypeId::of::<T>())
            .map(Vec::as_slice)
        {
            Some([one]) if one.durable.is_some() => {
                Err(crate::host::handle::durable_producer(&one.name))
            }
            Some([one]) => Ok(one.clone()),
            Some(several) if !several.is_empty() => Err(format!(
                "needs the queue of `{}`, but {} queues carry it ({}): take the one you mean \
                 from `HostHandle::queue::<T>(name)` and register it with `.state(..)`",
                type_name::<T>(),
                several.len(),
                several
                    .iter()
                    .map(|c| format!("`{}`", c.name))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            _ => Err(format!(
                "needs a queue of `{}`, but no worker consumes one: declare a worker with \
                 `#[worker(queue = \"..\")]` taking a `Job<{}>`",
                type_name::<T>(),
                type_name::<T>()
            )),
        }
    }

    pub(crate) fn insert_state<T: ?Sized + Send + Sync + 'static>(&mut self, value: Arc<T>) {
        insert_state(&mut self.states, value);
    }

    pub(crate) fn insert_factory<T, F, Fut, E>(&mut self, create: F)
    where
        T: Send + Sync + 'static,
        F: Fn(Ctx) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        E: Into<BoxError>,
    {
        let create: Arc<Create> = Arc::new(move |ctx| {
            let fut = create(ctx);
            Box::pin(async move {
                match fut.await {
                    Ok(value) => Ok(Arc::new(value) as AnyArc),
                    Err(err) => Err(err.into()),
                }
            })
        });
        self.factories.insert(TypeId::of::<T>(), create);
    }

    /// Whether state of type `T` was registered with [`HostBuilder::state`](crate::HostBuilder::state).
    #[must_use]
    pub fn has_state<T: ?Sized + Send + Sync + 'static>(&self) -> bool {
        self.states.contains_key(&TypeId::of::<T>())
            || self
                .parent
                .as_ref()
                .is_some_and(|host| host.has_state::<T>())
    }

    /// Whether a factory for `T` was registered with [`HostBuilder::scoped`](crate::HostBuilder::scoped).
    #[must_use]
    pub fn has_scoped<T: 'static>(&self) -> bool {
        self.root().factories.contains_key(&TypeId::of::<T>())
    }

    fn state<T: ?Sized + Send + Sync + 'static>(&self) -> Option<State<T>> {
        match self.states.get(&TypeId::of::<T>()) {
            Some(value) => value.downcast_ref::<Arc<T>>().cloned().map(State),
            None => self.parent.as_ref()?.state(),
        }
    }
}

/// Keeps `value` as the state of type `T`, replacing any earlier one.
pub(crate) fn insert_state<T: ?Sized + Send + Sync + 'static>(
    states: &mut StateMap,
    value: Arc<T>,
) {
    states.insert(TypeId::of::<T>(), Arc::new(value));
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("states", &self.states.len())
            .field("factories", &(self.factories.len() + self.finishing.len()))
            .field("queues", &self.queues.values().map(Vec::len).sum::<usize>())
            .field("host", &self.parent)
            .finish()
    }
}

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
