//! Scoped resources with a finish step: built for one attempt, held by the body alone
//! ([`ScopedMut<T>`]), and handed back after the attempt to an async finish step that receives
//! the attempt's outcome. A per-run transaction that commits on success and rolls back
//! otherwise is the model case.
//!
//! Each resource lives in a slot of the attempt. The body's handle takes the value out of the
//! slot and puts it back when it is dropped, which happens when the body returns, panics, times
//! out or is cancelled. When the attempt has ended, the runner closes every slot, newest first,
//! and runs the finish step on each value that came back. A value the body consumed with
//! [`ScopedMut::into_inner`] is the body's to finish. A handle that is still out at that point
//! (moved into a spawned task) is not finished: its value is dropped with the handle, and the
//! close is logged.

use std::any::{Any, TypeId, type_name};
use std::fmt;
use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};

use crate::error::BoxError;
use crate::observe::Outcome;
use crate::worker::extract::FromScope;
use crate::worker::registry::Registry;
use crate::worker::scope::{Ctx, Scope};

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
type Create<T> = dyn Fn(Ctx) -> BoxFuture<Result<T, BoxError>> + Send + Sync;
type Finish<T> = dyn Fn(T, Outcome) -> BoxFuture<Result<(), BoxError>> + Send + Sync;

/// How to build and how to finish a resource of type `T`; registered with
/// [`HostBuilder::scoped_mut`](crate::HostBuilder::scoped_mut).
pub(crate) struct Factory<T> {
    create: Box<Create<T>>,
    finish: Arc<Finish<T>>,
}

impl<T: Send + 'static> Factory<T> {
    pub(crate) fn new<C, CFut, CE, F, FFut, FE>(create: C, finish: F) -> Self
    where
        C: Fn(Ctx) -> CFut + Send + Sync + 'static,
        CFut: Future<Output = Result<T, CE>> + Send + 'static,
        CE: Into<BoxError>,
        F: Fn(T, Outcome) -> FFut + Send + Sync + 'static,
        FFut: Future<Output = Result<(), FE>> + Send + 'static,
        FE: Into<BoxError>,
    {
        Self {
            create: Box::new(move |ctx| {
                let fut = create(ctx);
                Box::pin(async move { fut.await.map_err(Into::into) })
            }),
            finish: Arc::new(move |value, outcome| {
                let fut = finish(value, outcome);
                Box::pin(async move { fut.await.map_err(Into::into) })
            }),
        }
    }
}

/// Where one resource of one attempt is.
enum Held<T> {
    /// In the slot: built, and not held by any handle now.
    Here(T),
    /// Held by a [`ScopedMut`].
    Out,
    /// Consumed by [`ScopedMut::into_inner`].
    Taken,
    /// The attempt has ended.
    Closed,
}

struct Slot<T> {
    held: Mutex<Held<T>>,
    finish: Arc<Finish<T>>,
}

impl<T> Slot<T> {
    fn held(&self) -> std::sync::MutexGuard<'_, Held<T>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A slot, seen by the runner when the attempt ends.
trait Close: Send + Sync {
    fn close(&self, outcome: Outcome) -> Closed;
}

/// A slot of an attempt that has ended.
pub(crate) struct Closing(Arc<dyn Close>);

impl Closing {
    /// Closes the slot: what it held is finished with `outcome`, or was not there.
    pub(crate) fn close(&self, outcome: Outcome) -> Closed {
        self.0.close(outcome)
    }
}

/// What closing a slot found.
pub(crate) enum Closed {
    /// The value was back: its finish step.
    Finish(&'static str, BoxFuture<Result<(), BoxError>>),
    /// A handle was still out: moved somewhere that outlives the attempt.
    Leaked(&'static str),
    /// The body consumed the value.
    Nothing,
}

impl<T: Send + 'static> Close for Slot<T> {
    fn close(&self, outcome: Outcome) -> Closed {
        let held = std::mem::replace(&mut *self.held(), Held::Closed);
        match held {
            Held::Here(value) => Closed::Finish(type_name::<T>(), (self.finish)(value, outcome)),
            Held::Out => Closed::Leaked(type_name::<T>()),
            Held::Taken | Held::Closed => Closed::Nothing,
        }
    }
}

/// One slot, by type for the extractor and as a [`Close`] for the runner.
struct Entry {
    id: TypeId,
    any: Arc<dyn Any + Send + Sync>,
    close: Arc<dyn Close>,
}

/// The finishing resources of one attempt, in the order they were built. Shared by the
/// attempt's [`Scope`] and the runner, which closes it after the body's future is gone.
#[derive(Default)]
pub(crate) struct Finishing {
    entries: Mutex<Vec<Entry>>,
}

impl Finishing {
    /// Every slot, newest first, to close one after the other: each with the outcome the
    /// attempt has once the newer ones are finished (a failed commit fails it).
    pub(crate) fn slots(&self) -> Vec<Closing> {
        let entries =
            std::mem::take(&mut *self.entries.lock().unwrap_or_else(PoisonError::into_inner));
        entries
            .into_iter()
            .rev()
            .map(|entry| Closing(entry.close))
            .collect()
    }

    /// The attempt's `T`, built on first use: out of its slot and into a handle.
    pub(crate) async fn take<T: Send + 'static>(
        &self,
        scope: &Scope,
    ) -> Result<ScopedMut<T>, BoxError> {
        let id = TypeId::of::<T>();
        let found = self
            .entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .find(|entry| entry.id == id)
            .map(|entry| Arc::clone(&entry.any));
        if let Some(any) = found {
            let slot = downcast::<T>(any);
            let mut held = slot.held();
            let why = match &*held {
                Held::Here(_) => None,
                Held::Out => Some("is held by another `ScopedMut` of this attempt"),
                Held::Taken => Some("was consumed by `ScopedMut::into_inner`"),
                Held::Closed => Some("belongs to an attempt that has ended"),
            };
            if let Some(why) = why {
                return Err(
                    format!("the scoped `{}` of this attempt {why}", type_name::<T>()).into(),
                );
            }
            let Held::Here(value) = std::mem::replace(&mut *held, Held::Out) else {
                unreachable!("checked above");
            };
            drop(held);
            return Ok(ScopedMut {
                value: Some(value),
                slot: Some(slot),
            });
        }
        let Some(factory) = scope.ctx().registry().finishing::<T>() else {
            return Err(format!(
                "no `scoped_mut` factory registered for `{}`",
                type_name::<T>()
            )
            .into());
        };
        let value = (factory.create)(scope.ctx().clone()).await?;
        let slot = Arc::new(Slot {
            held: Mutex::new(Held::Out),
            finish: Arc::clone(&factory.finish),
        });
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Entry {
                id,
                any: slot.clone(),
                close: slot.clone(),
            });
        Ok(ScopedMut {
            value: Some(value),
            slot: Some(slot),
        })
    }
}

fn downcast<T: Send + 'static>(any: Arc<dyn Any + Send + Sync>) -> Arc<Slot<T>> {
    match any.downcast::<Slot<T>>() {
        Ok(slot) => slot,
        // Entries are keyed by `TypeId::of::<T>()` and hold a `Slot<T>`.
        Err(_) => unreachable!("finishing resource stored under the wrong type id"),
    }
}

/// A resource built for one attempt by the factory registered with
/// [`HostBuilder::scoped_mut`](crate::HostBuilder::scoped_mut), held by the body alone, and
/// handed to the factory's finish step with the attempt's [`Outcome`] once the attempt ends,
/// whatever that outcome (success, error, panic, timeout or cancellation).
///
/// Dereferences mutably to `T`. Take the value out with [`into_inner`](Self::into_inner) to
/// finish it yourself (`tx.into_inner().commit().await?`); the finish step then does not run
/// for it.
///
/// The rule for handles that leave the body: a `ScopedMut` moved into a task that is still
/// holding it when the attempt ends is not finished. Its value is dropped when that task drops
/// the handle (an sqlx `Transaction` dropped uncommitted rolls back), and the host logs a
/// warning in the attempt's span. Nothing the body leaked is ever committed.
pub struct ScopedMut<T> {
    /// `Some` until the handle is dropped or consumed.
    value: Option<T>,
    /// `None` for a handle made with [`ScopedMut::new`].
    slot: Option<Arc<Slot<T>>>,
}

impl<T> ScopedMut<T> {
    /// Wraps a value outside any host, for calling a worker function directly in a unit test;
    /// no finish step runs for it.
    pub fn new(value: T) -> Self {
        Self {
            value: Some(value),
            slot: None,
        }
    }

    /// Takes the value: the finish step will not run for it.
    #[must_use]
    pub fn into_inner(mut self) -> T {
        if let Some(slot) = &self.slot {
            let mut held = slot.held();
            if matches!(*held, Held::Out) {
                *held = Held::Taken;
            }
        }
        self.value
            .take()
            .unwrap_or_else(|| unreachable!("a live handle holds its value"))
    }
}

impl<T> Deref for ScopedMut<T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.value
            .as_ref()
            .unwrap_or_else(|| unreachable!("a live handle holds its value"))
    }
}

impl<T> DerefMut for ScopedMut<T> {
    fn deref_mut(&mut self) -> &mut T {
        self.value
            .as_mut()
            .unwrap_or_else(|| unreachable!("a live handle holds its value"))
    }
}

impl<T> Drop for ScopedMut<T> {
    fn drop(&mut self) {
        let (Some(value), Some(slot)) = (self.value.take(), &self.slot) else {
            return;
        };
        let mut held = slot.held();
        if matches!(*held, Held::Out) {
            *held = Held::Here(value);
        } else {
            // The attempt has ended without it: dropped here, outside the lock.
            drop(held);
            drop(value);
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for ScopedMut<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ScopedMut").field(&self.value).finish()
    }
}

impl<T: Send + 'static> FromScope for ScopedMut<T> {
    async fn from_scope(scope: &Scope) -> Result<Self, BoxError> {
        scope.scoped_mut::<T>().await
    }

    fn check(registry: &Registry) -> Result<(), String> {
        if registry.finishing::<T>().is_some() {
            Ok(())
        } else if registry.has_scoped::<T>() {
            Err(format!(
                "needs a `ScopedMut<{0}>`, but `{0}` is registered with `.scoped(..)`, which \
                 shares it as `Scoped<{0}>`: register it with `.scoped_mut(create, finish)` to \
                 hand it to one body and finish it after the attempt",
                type_name::<T>()
            ))
        } else {
            Err(format!(
                "needs a `ScopedMut<{}>`, but no factory builds one: add \
                 `.scoped_mut(|ctx| async {{ .. }}, |value, outcome| async {{ .. }})` to the \
                 host builder",
                type_name::<T>()
            ))
        }
    }
}
