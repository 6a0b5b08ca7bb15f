//! What the host and its admin actions tell a worker's loop: stop, pause, resume, run now.
//!
//! The loop checks this on every poll, two or three times per tick, so a check is one atomic
//! load and parking registers one waker: polling a `CancellationToken::cancelled()` future
//! instead takes the token's lock and its waiter list's lock each time, which measured as the
//! largest single cost of an empty run at 1000 workers.

use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::Poll;

use futures_util::task::AtomicWaker;
use tokio_util::sync::CancellationToken;

/// The control signals of one worker; laid out with what every poll reads last, next to the
/// worker's metrics (see `Tracked`).
#[derive(Debug, Default)]
#[repr(C)]
pub(crate) struct Control {
    /// Given to the worker's runs (`Ctx::cancelled`) and to their resources.
    token: CancellationToken,
    /// The worker's loop, parked.
    waker: AtomicWaker,
    /// Run-now requests made so far.
    run_requests: AtomicU64,
    stopped: AtomicBool,
    paused: AtomicBool,
}

/// What the loop has seen of its [`Control`], to tell what changed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Seen {
    pub(crate) paused: bool,
    pub(crate) run_requests: u64,
}

/// What [`Control::changed`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signal {
    Stop,
    /// Paused, resumed, or asked to run now; see [`Control::seen`].
    Changed,
}

impl Control {
    pub(crate) fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// Stops the worker: cancels its runs' token and wakes its loop. Idempotent.
    pub(crate) fn stop(&self) {
        self.token.cancel();
        self.stopped.store(true, Ordering::Release);
        self.waker.wake();
    }

    pub(crate) fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    /// Pauses or resumes the worker; says whether that changed anything.
    pub(crate) fn set_paused(&self, paused: bool) -> bool {
        let changed = self.paused.swap(paused, Ordering::AcqRel) != paused;
        if changed {
            self.waker.wake();
        }
        changed
    }

    pub(crate) fn is_paused(&self) -> bool {
        self.paused.load(Ordering::Acquire)
    }

    /// Asks the worker to start a run now.
    pub(crate) fn request_run(&self) {
        self.run_requests.fetch_add(1, Ordering::AcqRel);
        self.waker.wake();
    }

    /// The current pause flag and request count.
    pub(crate) fn seen(&self) -> Seen {
        Seen {
            paused: self.is_paused(),
            run_requests: self.run_requests.load(Ordering::Acquire),
        }
    }

    /// Completes when the worker is stopped, or when its pause flag or run requests differ from
    /// `seen`. Cancellation safe.
    pub(crate) async fn changed(&self, seen: Seen) -> Signal {
        let check = || {
            if self.is_stopped() {
                Some(Signal::Stop)
            } else if self.seen() != seen {
                Some(Signal::Changed)
            } else {
                None
            }
        };
        poll_fn(|cx| {
            if let Some(signal) = check() {
                return Poll::Ready(signal);
            }
            self.waker.register(cx.waker());
            // A signal may have come between the check and the registration.
            check().map_or(Poll::Pending, Poll::Ready)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn each_signal_wakes_a_parked_loop() {
        let control = Arc::new(Control::default());
        let parked = |seen| {
            let control = control.clone();
            tokio::spawn(async move { control.changed(seen).await })
        };

        let waiting = parked(control.seen());
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        control.request_run();
        assert_eq!(waiting.await.unwrap(), Signal::Changed);

        let waiting = parked(control.seen());
        assert!(control.set_paused(true));
        assert!(!control.set_paused(true), "already paused");
        assert_eq!(waiting.await.unwrap(), Signal::Changed);

        let waiting = parked(control.seen());
        control.stop();
        assert_eq!(waiting.await.unwrap(), Signal::Stop);
        assert!(control.token().is_cancelled());
    }
}
