//! Telling a worker to stop: its runs see their cancellation token cancelled, and its loop sees
//! a flag it can check on every poll without taking a lock.
//!
//! A worker's loop is polled two or three times per tick; polling a
//! `CancellationToken::cancelled()` future each time takes the token's lock and its waiter
//! list's lock, which measured as the largest single cost of an empty run at 1000 workers.

use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Poll;

use futures_util::task::AtomicWaker;
use tokio_util::sync::CancellationToken;

/// The stop signal of one worker.
#[derive(Debug, Default)]
pub(crate) struct Stop {
    /// Given to the worker's runs (`Ctx::cancelled`) and to their resources.
    token: CancellationToken,
    stopped: AtomicBool,
    /// The worker's loop, parked.
    waker: AtomicWaker,
}

impl Stop {
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

    /// Completes once [`stop`](Self::stop) was called. Cancellation safe.
    pub(crate) async fn stopped(&self) {
        poll_fn(|cx| {
            if self.is_stopped() {
                return Poll::Ready(());
            }
            self.waker.register(cx.waker());
            // `stop` may have run between the check and the registration.
            if self.is_stopped() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stopping_wakes_a_parked_loop_and_cancels_the_token() {
        let stop = std::sync::Arc::new(Stop::default());
        let parked = tokio::spawn({
            let stop = stop.clone();
            async move { stop.stopped().await }
        });
        tokio::task::yield_now().await;
        assert!(!parked.is_finished());
        stop.stop();
        parked.await.expect("the parked loop ends");
        assert!(stop.token().is_cancelled());
        stop.stopped().await;
    }
}
