//! Panics inside runs: reported once, by the run that caught them, through `tracing`, with the
//! worker, the run id, the message and where it happened, and not also by the process's panic
//! hook (Rust's default hook writes three lines to stderr, outside `tracing`, and with
//! `RUST_BACKTRACE` set a backtrace, for every panic).
//!
//! [`install`] wraps the hook in place once per process: a panic raised while a run's body is
//! being polled is noted for the run and goes no further; any other panic (the user's own
//! threads, a task the body spawned, the framework itself) reaches the previous hook as before.
//! With `RUST_BACKTRACE` (or `RUST_LIB_BACKTRACE`) set, a backtrace is captured for at most one
//! caught panic every [`BACKTRACE_EVERY`]: capturing one costs far more than the panic, and a
//! panic storm would otherwise spend its time there.

use std::any::Any;
use std::backtrace::{Backtrace, BacktraceStatus};
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Once;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// At most one backtrace of a caught panic per this period, when backtraces are enabled.
pub(crate) const BACKTRACE_EVERY: Duration = Duration::from_secs(10);

thread_local! {
    /// A run's body is being polled on this thread.
    static IN_RUN: Cell<bool> = const { Cell::new(false) };
    /// Where the last panic caught in a run on this thread happened, and its backtrace.
    static NOTED: RefCell<Option<(String, Option<String>)>> = const { RefCell::new(None) };
}

/// A panic caught by a run.
#[derive(Debug)]
pub(crate) struct Caught {
    pub(crate) message: String,
    /// `file:line:column`.
    pub(crate) location: Option<String>,
    pub(crate) backtrace: Option<String>,
}

/// Wraps the process's panic hook, once.
pub(crate) fn install() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            // With `panic = "abort"` nothing catches the panic: the hook must speak.
            if cfg!(panic = "unwind") && IN_RUN.with(Cell::get) {
                let location = info.location().map(ToString::to_string).unwrap_or_default();
                let backtrace = backtrace();
                NOTED.with(|noted| *noted.borrow_mut() = Some((location, backtrace)));
            } else {
                previous(info);
            }
        }));
    });
}

pin_project_lite::pin_project! {
    /// A run's body, polled as a run: a panic it raises is caught, noted by the hook instead
    /// of reported by it, and returned as [`Caught`]. Its future is dropped the same way,
    /// wherever that happens: a value whose `Drop` panics, held across an await, never
    /// unwinds into the worker's loop.
    pub(crate) struct Guarded<F> {
        // `None` once dropped.
        #[pin]
        body: Option<F>,
    }

    impl<F> PinnedDrop for Guarded<F> {
        fn drop(this: Pin<&mut Self>) {
            // A run cut short (its stop budget or the host's deadline ran out, its worker was
            // removed) is already counted `cancelled`; a panic in its drop is logged.
            if let Some(caught) = this.discard() {
                tracing::error!(
                    panic.message = %caught.message,
                    panic.location = caught.location.as_deref().unwrap_or("unknown"),
                    "a run's state panicked while it was dropped"
                );
            }
        }
    }
}

impl<F> Guarded<F> {
    pub(crate) fn new(body: F) -> Self {
        Self { body: Some(body) }
    }

    /// Drops the body's future now, as a run: the panic its drop raised, if it did.
    pub(crate) fn discard(self: Pin<&mut Self>) -> Option<Caught> {
        let mut body = self.project().body;
        if body.is_none() {
            return None;
        }
        let dropped = in_run(|| std::panic::catch_unwind(AssertUnwindSafe(|| body.set(None))));
        dropped.err().map(|payload| caught(&*payload))
    }
}

impl<F: Future> Future for Guarded<F> {
    type Output = Result<F::Output, Box<Caught>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(body) = self.as_mut().project().body.as_pin_mut() else {
            panic!("`Guarded` polled after its body was dropped");
        };
        match in_run(|| std::panic::catch_unwind(AssertUnwindSafe(|| body.poll(cx)))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(output)) => {
                // Dropped here, as a run: a panic in its drop is the run's.
                Poll::Ready(match self.discard() {
                    None => Ok(output),
                    Some(caught) => Err(Box::new(caught)),
                })
            }
            Err(payload) => {
                let caught = caught(&*payload);
                // What the unwinding left is dropped as a run too.
                let _ = self.discard();
                Poll::Ready(Err(Box::new(caught)))
            }
        }
    }
}

/// Polls a run's body (`poll`) as a run: a panic it raises is left for [`caught`].
pub(crate) fn in_run<T>(poll: impl FnOnce() -> T) -> T {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            IN_RUN.with(|flag| flag.set(self.0));
        }
    }
    // `NOTED` is not cleared here, on every poll: the hook writes it afresh for every panic
    // raised in a run, so the one a run catches always finds its own. (A payload re-raised
    // with `resume_unwind`, which skips the hook, may find an older one.)
    let _restore = Restore(IN_RUN.with(|flag| flag.replace(true)));
    poll()
}

/// The panic a run caught, with its payload: the message, and where it happened.
pub(crate) fn caught(payload: &(dyn Any + Send)) -> Caught {
    let (location, backtrace) = NOTED
        .with(|noted| noted.borrow_mut().take())
        .map_or((None, None), |(location, backtrace)| {
            (Some(location).filter(|l| !l.is_empty()), backtrace)
        });
    Caught {
        message: message(payload),
        location,
        backtrace,
    }
}

/// The message of a panic's payload.
pub(crate) fn message(payload: &(dyn Any + Send)) -> String {
    if let Some(message) = payload.downcast_ref::<&'static str>() {
        (*message).to_owned()
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}

/// A backtrace, when they are enabled and none was taken within [`BACKTRACE_EVERY`].
fn backtrace() -> Option<String> {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    /// Milliseconds since `EPOCH` of the last capture, plus one (0: never).
    static LAST: AtomicU64 = AtomicU64::new(0);
    static ENABLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let enabled = *ENABLED.get_or_init(|| {
        // `Backtrace::capture` reads the variables once; an unresolved capture is cheap.
        Backtrace::capture().status() == BacktraceStatus::Captured
    });
    if !enabled {
        return None;
    }
    let epoch = *EPOCH.get_or_init(Instant::now);
    let now = u64::try_from(epoch.elapsed().as_millis())
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    let last = LAST.load(Ordering::Relaxed);
    let every = u64::try_from(BACKTRACE_EVERY.as_millis()).unwrap_or(u64::MAX);
    if last != 0 && now.saturating_sub(last) < every {
        return None;
    }
    if LAST
        .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
        .is_err()
    {
        return None;
    }
    Some(Backtrace::force_capture().to_string())
}
