//! Extractors: how a worker's arguments are drawn from its [`Scope`].

use std::any::type_name;
use std::fmt;
use std::future::Future;
use std::ops::Deref;
use std::sync::Arc;

use crate::error::BoxError;
use crate::worker::registry::Registry;
use crate::worker::scope::{Ctx, Scope};

/// A type that can be a worker argument, drawn from the attempt's [`Scope`].
///
/// This is axum's `FromRequestParts` for workers. Built in: [`Ctx`], [`State<T>`],
/// [`Scoped<T>`] and `Option<T>` of any of them. Implement it for your own types, for example
/// a client that carries the run id:
///
/// ```
/// use worker_core::{BoxError, FromScope, Registry, Scope};
///
/// struct Tagged(String);
///
/// impl FromScope for Tagged {
///     async fn from_scope(scope: &Scope) -> Result<Self, BoxError> {
///         let ctx = scope.ctx();
///         Ok(Tagged(format!("{}#{}", ctx.worker(), ctx.run_id())))
///     }
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a worker argument",
    label = "not an extractor",
    note = "worker arguments implement `FromScope`: use `Ctx`, `State<T>`, `Scoped<T>`, `Option<T>` of one of them, or implement `FromScope` for your type"
)]
pub trait FromScope: Sized + Send + 'static {
    /// Draws the argument from the scope. An error fails the attempt (and is retried like any
    /// other failure).
    fn from_scope(scope: &Scope) -> impl Future<Output = Result<Self, BoxError>> + Send;

    /// Checks, when the host is built, that what this extractor needs was registered.
    ///
    /// Return `Err` with a sentence saying what is missing and how to register it; the host
    /// refuses to start and names the worker and the argument. The default needs nothing.
    fn check(registry: &Registry) -> Result<(), String> {
        let _ = registry;
        Ok(())
    }

    /// The payload type of a [`Job<T>`](crate::Job): how the host checks that a queue worker
    /// takes its queue's jobs. Not public API.
    #[doc(hidden)]
    #[must_use]
    fn __job_payload() -> Option<(std::any::TypeId, &'static str)> {
        None
    }
}

impl FromScope for Ctx {
    async fn from_scope(scope: &Scope) -> Result<Self, BoxError> {
        Ok(scope.ctx().clone())
    }
}

/// Shared state registered once on the host with [`HostBuilder::state`](crate::HostBuilder::state),
/// or [`HostBuilder::state_arc`](crate::HostBuilder::state_arc) for an `Arc` the application
/// already holds or a trait object (`State<dyn Mailer>`).
///
/// Dereferences to `T`. State lives as long as the host; wrap what you mutate in a lock or an
/// atomic.
pub struct State<T: ?Sized>(pub Arc<T>);

impl<T> State<T> {
    /// Wraps a value, for calling a worker function directly in a unit test.
    pub fn new(value: T) -> Self {
        Self(Arc::new(value))
    }
}

impl<T: ?Sized> Clone for State<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T: ?Sized> Deref for State<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for State<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("State").field(&self.0).finish()
    }
}

impl<T: ?Sized + Send + Sync + 'static> FromScope for State<T> {
    async fn from_scope(scope: &Scope) -> Result<Self, BoxError> {
        scope
            .state::<T>()
            .ok_or_else(|| format!("no state of type `{}` registered", type_name::<T>()).into())
    }

    fn check(registry: &Registry) -> Result<(), String> {
        if registry.has_state::<T>() {
            Ok(())
        } else {
            Err(format!(
                "needs state of type `{}`, which was never registered: add `.state(..)` with a \
                 value of that type to the host builder (`.state_arc(..)` for an `Arc` you \
                 already hold, or a `dyn Trait`)",
                type_name::<T>()
            ))
        }
    }
}

/// A resource built for one attempt by the factory registered with
/// [`HostBuilder::scoped`](crate::HostBuilder::scoped), and dropped when the attempt ends,
/// whatever its outcome (success, error, panic, timeout or cancellation).
///
/// Built on first use; later uses within the same attempt share it. Dereferences to `T`; use
/// interior mutability for what the body changes. A clone the body keeps past the attempt (in
/// a spawned task) keeps the value alive until it is dropped. For a resource the body must hold
/// alone and that is finished with the attempt's outcome (a transaction), see
/// [`ScopedMut`](crate::ScopedMut).
pub struct Scoped<T: ?Sized>(pub Arc<T>);

impl<T: ?Sized> Clone for Scoped<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T: ?Sized> Deref for Scoped<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for Scoped<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Scoped").field(&self.0).finish()
    }
}

impl<T: Send + Sync + 'static> FromScope for Scoped<T> {
    async fn from_scope(scope: &Scope) -> Result<Self, BoxError> {
        scope.scoped::<T>().await
    }

    fn check(registry: &Registry) -> Result<(), String> {
        if registry.has_scoped::<T>() {
            Ok(())
        } else if registry.finishing::<T>().is_some() {
            Err(format!(
                "needs a `Scoped<{0}>`, but `{0}` is registered with `.scoped_mut(..)`, which \
                 hands it to one body at a time: take it as `ScopedMut<{0}>`",
                type_name::<T>()
            ))
        } else {
            Err(format!(
                "needs a scoped `{}`, but no factory builds one: add `.scoped(|ctx| async {{ .. }})` \
                 returning that type to the host builder",
                type_name::<T>()
            ))
        }
    }
}

/// `None` when what `T` needs was not registered; otherwise `T`, whose errors still fail the
/// attempt.
impl<T: FromScope> FromScope for Option<T> {
    async fn from_scope(scope: &Scope) -> Result<Self, BoxError> {
        if T::check(scope.ctx().registry()).is_err() {
            return Ok(None);
        }
        T::from_scope(scope).await.map(Some)
    }

    fn __job_payload() -> Option<(std::any::TypeId, &'static str)> {
        T::__job_payload()
    }
}

/// What a worker function may return: `()` or `Result<(), E>` where `E` converts into
/// [`BoxError`] (`anyhow::Error`, `std::io::Error`, your own error type, ...).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a valid worker return type",
    label = "workers return `()` or `Result<(), E>`",
    note = "a worker returns `()` or `Result<(), E>` where `E` converts into `Box<dyn std::error::Error + Send + Sync>`"
)]
pub trait IntoRunResult {
    /// Converts into the framework's view of an attempt's result.
    fn into_run_result(self) -> Result<(), BoxError>;
}

impl IntoRunResult for () {
    fn into_run_result(self) -> Result<(), BoxError> {
        Ok(())
    }
}

impl<E: Into<BoxError>> IntoRunResult for Result<(), E> {
    fn into_run_result(self) -> Result<(), BoxError> {
        self.map_err(Into::into)
    }
}
