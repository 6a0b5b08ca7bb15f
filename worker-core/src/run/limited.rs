//! An attempt's body as it runs: its panics caught, within the worker's timeout if it has one.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

use crate::error::BoxError;
use crate::run::Attempt;
use crate::run::panics::Guarded;

pin_project_lite::pin_project! {
    /// A future type rather than an `async fn`: an `async fn` would hold the body's future
    /// once as its argument and again in what it awaits, which every idle worker's loop
    /// would reserve room for. The timer is boxed for the same reason, allocated only by the
    /// attempts of workers with a `timeout`.
    #[project = Projected]
    pub(super) enum Limited<F> {
        Unlimited {
            #[pin]
            body: Guarded<F>,
        },
        Timed {
            #[pin]
            body: Guarded<F>,
            timer: Pin<Box<Sleep>>,
            began: Instant,
            limit: Duration,
        },
    }
}

impl<F: Future> Limited<F> {
    pub(super) fn new(body: F, timeout: Option<Duration>) -> Self {
        let body = Guarded::new(body);
        match timeout {
            None => Self::Unlimited { body },
            Some(limit) => {
                let began = Instant::now();
                Self::Timed {
                    body,
                    timer: Box::pin(tokio::time::sleep_until(began + limit)),
                    began,
                    limit,
                }
            }
        }
    }
}

impl<F: Future<Output = Result<(), BoxError>>> Future for Limited<F> {
    type Output = Attempt;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Attempt> {
        let result = match self.project() {
            Projected::Unlimited { body } => ready!(body.poll(cx)),
            Projected::Timed {
                mut body,
                timer,
                began,
                limit,
            } => match body.as_mut().poll(cx) {
                // A body that blocked its thread past the timeout (and so was never
                // interrupted) ended late: it timed out, whatever it returned. A panic is a
                // panic, however late.
                Poll::Ready(Ok(_)) if began.elapsed() > *limit => {
                    return Poll::Ready(Attempt::Timeout(*limit));
                }
                Poll::Ready(result) => result,
                Poll::Pending => {
                    ready!(timer.as_mut().poll(cx));
                    // Dropped now, as a run: a panic in its drop is the attempt's panic.
                    return Poll::Ready(match body.discard() {
                        None => Attempt::Timeout(*limit),
                        Some(mut caught) => {
                            caught.message = format!(
                                "{} (while dropped at its timeout of {})",
                                caught.message,
                                worker_keys::show(*limit)
                            );
                            Attempt::Panic(Box::new(caught))
                        }
                    });
                }
            },
        };
        Poll::Ready(match result {
            Ok(Ok(())) => Attempt::Ok,
            Ok(Err(err)) => Attempt::Err(err),
            Err(caught) => Attempt::Panic(caught),
        })
    }
}
