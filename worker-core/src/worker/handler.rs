//! Worker bodies: async functions and closures whose arguments are extractors.

use std::any::type_name;
use std::future::Future;

use crate::error::BoxError;
use crate::worker::extract::{FromScope, IntoRunResult};
use crate::worker::registry::Registry;
use crate::worker::scope::Scope;

/// An async function or closure usable as a worker body: every argument implements
/// [`FromScope`] and it returns `()` or `Result<(), E>` (see [`IntoRunResult`]).
///
/// Implemented for functions of up to 12 arguments; `Args` is the tuple of their types. You do
/// not implement it; you pass a function to [`WorkerBuilder::handler`](crate::WorkerBuilder::handler).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a worker body",
    label = "not an async fn whose arguments are extractors",
    note = "a worker body is an async fn or a closure returning a future, of at most 12 arguments; each argument implements `FromScope` and the output is `()` or `Result<(), E>`",
    note = "more than 12 arguments: group them in a struct that implements `FromScope`, or in one `State<T>`"
)]
pub trait Handler<Args>: Send + Sync + 'static {
    /// Extracts the arguments from the scope and runs the body.
    fn call(&self, scope: Scope) -> impl Future<Output = Result<(), BoxError>> + Send;

    /// What each argument needs registered on the host.
    fn requirements() -> Vec<Requirement>;
}

/// What one argument of a worker needs registered on the host, checked when the host is built.
#[derive(Debug, Clone)]
pub struct Requirement {
    pub(crate) argument: String,
    pub(crate) check: fn(&Registry) -> Result<(), String>,
    /// The payload type, for a `Job<T>`.
    pub(crate) job: Option<(std::any::TypeId, &'static str)>,
}

impl Requirement {
    /// The requirement of an argument of type `T`, described by `argument` in errors.
    #[must_use]
    pub fn of<T: FromScope>(argument: String) -> Self {
        Self {
            argument,
            check: T::check,
            job: T::__job_payload(),
        }
    }
}

/// The one shape the supervisor runs: a scope in, a result out.
pub(crate) trait Body: Send + Sync + 'static {
    fn call(&self, scope: Scope) -> impl Future<Output = Result<(), BoxError>> + Send;
}

/// A body given as a closure over the scope; what `#[worker]` expands to.
pub(crate) struct RawBody<F>(pub(crate) F);

impl<F, Fut> Body for RawBody<F>
where
    F: Fn(Scope) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), BoxError>> + Send,
{
    fn call(&self, scope: Scope) -> impl Future<Output = Result<(), BoxError>> + Send {
        (self.0)(scope)
    }
}

/// A body given as a [`Handler`].
pub(crate) struct HandlerBody<H, Args>(
    pub(crate) H,
    pub(crate) std::marker::PhantomData<fn() -> Args>,
);

impl<H: Handler<Args>, Args: 'static> Body for HandlerBody<H, Args> {
    fn call(&self, scope: Scope) -> impl Future<Output = Result<(), BoxError>> + Send {
        self.0.call(scope)
    }
}

macro_rules! impl_handler {
    ($($ty:ident $arg:ident $n:literal),*) => {
        impl<F, Fut, $($ty,)*> Handler<($($ty,)*)> for F
        where
            F: Fn($($ty),*) -> Fut + Send + Sync + 'static,
            Fut: Future + Send,
            Fut::Output: IntoRunResult,
            $($ty: FromScope,)*
        {
            #[allow(unused_variables, reason = "`scope` is unused by the zero-argument impl")]
            fn call(&self, scope: Scope) -> impl Future<Output = Result<(), BoxError>> + Send {
                async move {
                    $(let $arg = <$ty as FromScope>::from_scope(&scope).await?;)*
                    (self)($($arg),*).await.into_run_result()
                }
            }

            fn requirements() -> Vec<Requirement> {
                vec![$(Requirement::of::<$ty>(format!("#{} (`{}`)", $n, type_name::<$ty>()))),*]
            }
        }
    };
}

impl_handler!();
impl_handler!(T1 a1 1);
impl_handler!(T1 a1 1, T2 a2 2);
impl_handler!(T1 a1 1, T2 a2 2, T3 a3 3);
impl_handler!(T1 a1 1, T2 a2 2, T3 a3 3, T4 a4 4);
impl_handler!(T1 a1 1, T2 a2 2, T3 a3 3, T4 a4 4, T5 a5 5);
impl_handler!(T1 a1 1, T2 a2 2, T3 a3 3, T4 a4 4, T5 a5 5, T6 a6 6);
impl_handler!(T1 a1 1, T2 a2 2, T3 a3 3, T4 a4 4, T5 a5 5, T6 a6 6, T7 a7 7);
impl_handler!(T1 a1 1, T2 a2 2, T3 a3 3, T4 a4 4, T5 a5 5, T6 a6 6, T7 a7 7, T8 a8 8);
impl_handler!(T1 a1 1, T2 a2 2, T3 a3 3, T4 a4 4, T5 a5 5, T6 a6 6, T7 a7 7, T8 a8 8, T9 a9 9);
impl_handler!(T1 a1 1, T2 a2 2, T3 a3 3, T4 a4 4, T5 a5 5, T6 a6 6, T7 a7 7, T8 a8 8, T9 a9 9, T10 a10 10);
impl_handler!(T1 a1 1, T2 a2 2, T3 a3 3, T4 a4 4, T5 a5 5, T6 a6 6, T7 a7 7, T8 a8 8, T9 a9 9, T10 a10 10, T11 a11 11);
impl_handler!(T1 a1 1, T2 a2 2, T3 a3 3, T4 a4 4, T5 a5 5, T6 a6 6, T7 a7 7, T8 a8 8, T9 a9 9, T10 a10 10, T11 a11 11, T12 a12 12);
