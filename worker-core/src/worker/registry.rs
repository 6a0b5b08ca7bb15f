//! The registry a host's builder fills: shared state, scoped-resource factories and queues, by
//! type; a worker's own state layered over the host's.

use std::any::{Any, TypeId, type_name};
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::error::BoxError;
use crate::queue::channel::Channel;
use crate::worker::extract::State;
use crate::worker::finish::Factory;
use crate::worker::scope::Ctx;

/// A value of any type, shared.
pub(crate) type AnyArc = Arc<dyn Any + Send + Sync>;
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
    /// The factories of [`ScopedMut`](crate::ScopedMut) resources, by type: each value is an `Arc<Factory<T>>`.
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

    /// The factory of a [`ScopedMut<T>`](crate::ScopedMut) resource, if one was registered.
    pub(crate) fn finishing<T: Send + 'static>(&self) -> Option<Arc<Factory<T>>> {
        let found = self.root().finishing.get(&TypeId::of::<T>())?;
        Arc::clone(found).downcast::<Factory<T>>().ok()
    }

    /// Whether any [`ScopedMut`](crate::ScopedMut) factory was registered: attempts then keep a list of the
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

    pub(crate) fn state<T: ?Sized + Send + Sync + 'static>(&self) -> Option<State<T>> {
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
