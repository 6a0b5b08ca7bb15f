//! Singleton leases as the host sees them: the [`Fence`] a holder proves itself with, and
//! what a backend answers when asked for a lease ([`Lease`]).

use std::any::Any;
use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

/// The proof that this replica holds a singleton's lease: its name and fencing token, which
/// rises with every takeover. A backend attaches what its own checks need
/// (`worker_postgres::FenceCheck` checks one inside a transaction).
///
/// [`Ctx::fence`](crate::Ctx::fence) gives a singleton's run the fence its tick was claimed
/// under.
#[derive(Clone)]
pub struct Fence {
    name: Arc<str>,
    token: i64,
    backend: Option<Arc<dyn Any + Send + Sync>>,
}

impl Fence {
    /// The fence `token` of the lease `name`.
    #[must_use]
    pub fn new(name: impl Into<Arc<str>>, token: i64) -> Self {
        Self {
            name: name.into(),
            token,
            backend: None,
        }
    }

    /// Attaches the backend's own form of the fence, for [`backend`](Self::backend).
    #[must_use]
    pub fn with_backend(mut self, data: impl Any + Send + Sync) -> Self {
        self.backend = Some(Arc::new(data));
        self
    }

    /// The lease's name: the worker's.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The fencing token: it rises with every takeover of the lease.
    #[must_use]
    pub fn token(&self) -> i64 {
        self.token
    }

    /// The backend's own form of the fence, if it attached one of type `T`.
    #[must_use]
    pub fn backend<T: Any>(&self) -> Option<&T> {
        self.backend.as_deref()?.downcast_ref()
    }
}

impl fmt::Debug for Fence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fence")
            .field("name", &self.name)
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

impl PartialEq for Fence {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.token == other.token
    }
}

/// What a backend answers when a replica asks for a singleton's lease.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Lease {
    /// The fence, when the asking replica holds the lease now.
    pub fence: Option<Fence>,
    /// Who holds it, when another replica does.
    pub holder: Option<String>,
    /// The scheduled instant of the last tick claimed, by any holder.
    pub last_tick: Option<SystemTime>,
    /// The database's time when it answered: singletons keep their schedule on it.
    pub now: SystemTime,
}

impl Lease {
    /// The lease was taken: held with `fence`.
    #[must_use]
    pub fn taken(fence: Fence, last_tick: Option<SystemTime>, now: SystemTime) -> Self {
        Self {
            fence: Some(fence),
            holder: None,
            last_tick,
            now,
        }
    }

    /// Another replica, `holder` (when known), holds the lease.
    #[must_use]
    pub fn held_by(holder: Option<String>, now: SystemTime) -> Self {
        Self {
            fence: None,
            holder,
            last_tick: None,
            now,
        }
    }
}
