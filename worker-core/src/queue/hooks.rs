//! What a queue worker registers besides its body, type-erased once its payload type is known:
//! the `on_dead` and `on_leftovers` hooks and the payload's description for dead jobs.

use std::any::{TypeId, type_name};
use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use crate::queue::channel::Payload;
use crate::queue::dead::DeadJob;

type OnDead = Arc<dyn Fn(u64, u32, String, SystemTime, Payload) + Send + Sync>;
type OnLeftovers = Arc<dyn Fn(Vec<Payload>) + Send + Sync>;
type Describe = Arc<dyn Fn(&Payload) -> String + Send + Sync>;

/// One hook, with the payload type it was written for.
#[derive(Clone)]
struct Hook<F> {
    call: F,
    payload: TypeId,
    payload_name: &'static str,
}

/// A queue worker's hooks.
#[derive(Default, Clone)]
pub(crate) struct Hooks {
    on_dead: Option<Hook<OnDead>>,
    on_leftovers: Option<Hook<OnLeftovers>>,
    describe: Option<Hook<Describe>>,
}

impl fmt::Debug for Hooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hooks")
            .field("on_dead", &self.on_dead.is_some())
            .field("on_leftovers", &self.on_leftovers.is_some())
            .field("describe", &self.describe.is_some())
            .finish()
    }
}

/// The payload of a job of a queue of `T`; the queue's type was checked when the host was
/// built.
pub(crate) fn payload<T: Clone + Send + Sync + 'static>(payload: Payload) -> T {
    match payload.downcast::<T>() {
        Ok(value) => Arc::unwrap_or_clone(value),
        Err(_) => unreachable!(
            "a queue of `{}` holds a payload of another type",
            type_name::<T>()
        ),
    }
}

/// Runs a hook of the user's, logging a panic instead of letting it take down the worker's
/// slot or its shutdown; `None` when it panicked.
fn guarded<R>(hook: &str, call: impl FnOnce() -> R) -> Option<R> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(call)) {
        Ok(value) => Some(value),
        Err(panic) => {
            tracing::error!(
                hook,
                panic = %crate::run::panics::message(&*panic),
                "a queue hook panicked"
            );
            None
        }
    }
}

impl Hooks {
    pub(crate) fn on_dead<T, F>(&mut self, hook: F)
    where
        T: Clone + Send + Sync + 'static,
        F: Fn(DeadJob<T>) + Send + Sync + 'static,
    {
        self.on_dead = Some(Hook {
            call: Arc::new(move |id, attempts, error, at, value| {
                hook(DeadJob {
                    id,
                    attempts,
                    error,
                    at,
                    payload: payload::<T>(value),
                });
            }),
            payload: TypeId::of::<T>(),
            payload_name: type_name::<T>(),
        });
    }

    pub(crate) fn on_leftovers<T, F>(&mut self, hook: F)
    where
        T: Clone + Send + Sync + 'static,
        F: Fn(Vec<T>) + Send + Sync + 'static,
    {
        self.on_leftovers = Some(Hook {
            call: Arc::new(move |values| hook(values.into_iter().map(payload::<T>).collect())),
            payload: TypeId::of::<T>(),
            payload_name: type_name::<T>(),
        });
    }

    pub(crate) fn describe<T, F>(&mut self, describe: F)
    where
        T: Send + Sync + 'static,
        F: Fn(&T) -> String + Send + Sync + 'static,
    {
        self.describe = Some(Hook {
            call: Arc::new(move |value| match value.downcast_ref::<T>() {
                Some(value) => describe(value),
                None => String::new(),
            }),
            payload: TypeId::of::<T>(),
            payload_name: type_name::<T>(),
        });
    }

    /// Whether a description was set, by the worker or by `#[worker]` from `Debug`.
    pub(crate) fn describes(&self) -> bool {
        self.describe.is_some()
    }

    /// The hook registered for another payload type than `payload`, if any: its name and the
    /// type it takes.
    pub(crate) fn mismatch(&self, payload: TypeId) -> Option<(&'static str, &'static str)> {
        let named = [
            (
                "on_dead",
                self.on_dead.as_ref().map(|h| (h.payload, h.payload_name)),
            ),
            (
                "on_leftovers",
                self.on_leftovers
                    .as_ref()
                    .map(|h| (h.payload, h.payload_name)),
            ),
            (
                "describe_jobs",
                self.describe.as_ref().map(|h| (h.payload, h.payload_name)),
            ),
        ];
        named.into_iter().find_map(|(hook, found)| match found {
            Some((ty, name)) if ty != payload => Some((hook, name)),
            _ => None,
        })
    }

    pub(crate) fn call_on_dead(
        &self,
        id: u64,
        attempts: u32,
        error: String,
        at: SystemTime,
        value: Payload,
    ) {
        if let Some(hook) = &self.on_dead {
            guarded("on_dead", || (hook.call)(id, attempts, error, at, value));
        }
    }

    /// Hands `values` to `on_leftovers`; `false` when there is none or it panicked (the
    /// values are then lost with it).
    pub(crate) fn call_on_leftovers(&self, values: Vec<Payload>) -> bool {
        match &self.on_leftovers {
            Some(hook) => guarded("on_leftovers", || (hook.call)(values)).is_some(),
            None => false,
        }
    }

    pub(crate) fn has_on_leftovers(&self) -> bool {
        self.on_leftovers.is_some()
    }

    /// The payload's description, cut to what `/workers` shows; a description that panicked
    /// says so.
    pub(crate) fn describe_payload(&self, value: &Payload) -> Option<String> {
        let hook = self.describe.as_ref()?;
        let text = guarded("describe_jobs", || (hook.call)(value))
            .unwrap_or_else(|| "(the description panicked)".to_owned());
        Some(crate::observe::message::truncated(&text).into_owned())
    }
}
