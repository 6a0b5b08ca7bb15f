//! What the host and its admin actions tell a worker's loop: stop, pause, resume, run now.
//!
//! The loop checks this on every pass, two or three times per tick, so a check is one atomic
//! load, and parking registers a waker only when the last registration was used up: polling a `CancellationToken::cancelled()` future
//! instead takes the token's lock and its waiter list's lock each time, which measured as the
//! largest single cost of an empty run at 1000 workers.

use std::future::{Future, poll_fn};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Poll, Waker};

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};

use futures_util::task::AtomicWaker;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::observe::SkipReason;
use crate::supervise::requested::Requested;

/// The control signals of one worker.
#[derive(Debug, Default)]
pub(crate) struct Control {
    /// Given to the worker's runs (`Ctx::cancelled`) and to their resources.
    token: CancellationToken,
    /// The worker's loop, parked.
    waker: AtomicWaker,
    /// Every signal in one word, so one load tells whether anything changed: [`STOPPED`], the
    /// number of pauses and resumes (paused when odd), and the run-now requests made so far.
    /// It only ever counts up (modulo wrapping), so a word the loop has seen never comes back.
    word: AtomicU64,
    /// `stop` leaves the token alone (a queue worker's).
    keep_runs: bool,
    /// A singleton whose lease another replica holds: it rests as `follower`.
    follower: AtomicBool,
}

/// Where to answer each run-now request, oldest first; touched only when a run is requested,
/// never by a tick.
#[derive(Debug, Default)]
pub(crate) struct Replies(Mutex<Queue>);

#[derive(Debug, Default)]
struct Queue {
    waiting: VecDeque<oneshot::Sender<Requested>>,
    /// The worker's loop has ended (or never starts): a new request is answered at once.
    closed: bool,
}

const STOPPED: u64 = 1;
/// One pause or resume.
const TOGGLE: u64 = 1 << 1;
/// The bits counting pauses and resumes.
const TOGGLES: u64 = (REQUEST - 1) & !STOPPED;
/// One run-now request, counted in the upper 32 bits.
const REQUEST: u64 = 1 << 32;

/// What the loop has seen of its [`Control`], to tell what changed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Seen(u64);

impl Seen {
    pub(crate) fn is_stopped(self) -> bool {
        self.0 & STOPPED != 0
    }

    fn is_paused(self) -> bool {
        self.0 & TOGGLE != 0
    }

    /// Run-now requests made between `earlier` and `self`.
    pub(crate) fn requests_since(self, earlier: Self) -> u64 {
        let requests = |seen: Self| (seen.0 >> 32) as u32;
        u64::from(requests(self).wrapping_sub(requests(earlier)))
    }
}

impl Replies {
    /// The replies of the `requests` oldest run-now requests: each request queues its reply
    /// before it is counted, so there is one for every request seen.
    pub(crate) fn take(&self, requests: u64) -> Vec<oneshot::Sender<Requested>> {
        let mut replies = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let waiting = replies.waiting.len();
        let taken = usize::try_from(requests).map_or(waiting, |n| n.min(waiting));
        replies.waiting.drain(..taken).collect()
    }

    /// The worker takes no more requests: answers every one waiting with `shutting_down` (and
    /// every later one at once); returns how many were waiting.
    pub(crate) fn close(&self) -> u64 {
        let waiting: Vec<_> = {
            let mut replies = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            replies.closed = true;
            replies.waiting.drain(..).collect()
        };
        let count = waiting.len() as u64;
        for reply in waiting {
            let _ = reply.send(Requested::Skipped(SkipReason::ShuttingDown));
        }
        count
    }
}

/// The loop's registration with its [`Control`], kept across polls.
///
/// The loop parks on its control signals two or three times per tick; registering a waker each
/// time costs two locked instructions, for a registration that is almost always still in place:
/// it is only consumed by a wake-up, and every wake-up follows a change of the word. So while
/// the word is what it was at registration, and the task's waker is the same, there is nothing
/// to do.
#[derive(Debug, Default)]
pub(crate) struct Registration(Option<(Seen, Waker)>);

impl Control {
    pub(crate) fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// Stops the worker: cancels its runs' token (unless [`keeps_runs`](Self::keeps_runs))
    /// and wakes its loop. Idempotent.
    pub(crate) fn stop(&self) {
        if !self.keep_runs {
            self.token.cancel();
        }
        self.word.fetch_or(STOPPED, Ordering::AcqRel);
        self.waker.wake();
    }

    /// A control whose [`stop`](Self::stop) leaves the runs' token alone: a queue worker's
    /// runs go on while it drains its queue, and it cancels them itself at its stop budget.
    pub(crate) fn keeping_runs() -> Self {
        Self {
            keep_runs: true,
            ..Self::default()
        }
    }

    /// Cancels the runs' token.
    pub(crate) fn cancel_runs(&self) {
        self.token.cancel();
    }

    pub(crate) fn is_stopped(&self) -> bool {
        self.seen().is_stopped()
    }

    /// Pauses or resumes the worker; says whether that changed anything.
    pub(crate) fn set_paused(&self, paused: bool) -> bool {
        let toggled = self
            .word
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |word| {
                // The count wraps within its bits, never into the requests'.
                let toggles = (word & TOGGLES).wrapping_add(TOGGLE) & TOGGLES;
                (Seen(word).is_paused() != paused).then_some((word & !TOGGLES) | toggles)
            })
            .is_ok();
        if toggled {
            self.waker.wake();
        }
        toggled
    }

    pub(crate) fn is_paused(&self) -> bool {
        self.seen().is_paused()
    }

    /// Marks a singleton as following (another replica holds its lease) or holding.
    pub(crate) fn set_follower(&self, follower: bool) {
        self.follower.store(follower, Ordering::Relaxed);
    }

    pub(crate) fn is_follower(&self) -> bool {
        self.follower.load(Ordering::Relaxed)
    }

    /// Asks the worker to start a run now; the answer comes on the receiver (which fails when
    /// the worker ended without answering).
    pub(crate) fn request_run(&self, replies: &Replies) -> oneshot::Receiver<Requested> {
        let (reply, answer) = oneshot::channel();
        {
            // Queued before it is counted, so the loop finds a reply for every request it sees.
            let mut replies = replies.0.lock().unwrap_or_else(PoisonError::into_inner);
            if replies.closed {
                let _ = reply.send(Requested::Skipped(SkipReason::ShuttingDown));
                return answer;
            }
            replies.waiting.push_back(reply);
            self.word.fetch_add(REQUEST, Ordering::AcqRel);
        }
        self.waker.wake();
        answer
    }

    /// The signals as they stand.
    pub(crate) fn seen(&self) -> Seen {
        Seen(self.word.load(Ordering::Acquire))
    }

    /// Completes with the signals when they differ from `seen`. Cancellation safe.
    pub(crate) fn changed<'a>(
        &'a self,
        seen: Seen,
        registration: &'a mut Registration,
    ) -> impl Future<Output = Seen> + 'a {
        let check = move || Some(self.seen()).filter(|&now| now != seen);
        poll_fn(move |cx| {
            if let Some(now) = check() {
                return Poll::Ready(now);
            }
            let current = matches!(
                &registration.0,
                Some((at, waker)) if *at == seen && waker.will_wake(cx.waker())
            );
            if !current {
                self.waker.register(cx.waker());
                registration.0 = Some((seen, cx.waker().clone()));
                // A signal may have come between the check and the registration.
                if let Some(now) = check() {
                    return Poll::Ready(now);
                }
            }
            Poll::Pending
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use tokio::sync::mpsc;
    use tokio::time::timeout;

    use super::*;

    /// A loop as the worker's: parks on its signals with one registration kept across polls,
    /// reports every change it sees, and is also re-polled with nothing changed whenever the
    /// test nudges it, the way a timer re-polls the worker's loop.
    struct Parked {
        nudge: mpsc::UnboundedSender<()>,
        changes: mpsc::UnboundedReceiver<Seen>,
    }

    impl Parked {
        fn spawn(control: &Arc<Control>) -> Self {
            let (nudge, mut nudged) = mpsc::unbounded_channel();
            let (report, changes) = mpsc::unbounded_channel();
            let control = control.clone();
            tokio::spawn(async move {
                let mut registration = Registration::default();
                let mut seen = control.seen();
                loop {
                    tokio::select! {
                        now = control.changed(seen, &mut registration) => {
                            seen = now;
                            report.send(now).unwrap();
                        }
                        Some(()) = nudged.recv() => {}
                    }
                }
            });
            Self { nudge, changes }
        }

        /// Re-polls the loop with nothing changed.
        async fn nudge(&self) {
            self.nudge.send(()).unwrap();
            tokio::task::yield_now().await;
            tokio::task::yield_now().await;
        }

        /// The next change the loop saw; fails if it was never woken.
        async fn next(&mut self) -> Seen {
            timeout(Duration::from_mins(1), self.changes.recv())
                .await
                .expect("the parked loop was woken")
                .unwrap()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_kept_registration_still_wakes_the_loop_for_every_signal() {
        let control = Arc::new(Control::default());
        let replies = Replies::default();
        let mut parked = Parked::spawn(&control);
        let start = control.seen();
        parked.nudge().await;
        control.request_run(&replies);
        let seen = parked.next().await;
        assert_eq!(seen.requests_since(start), 1);

        // Paused and resumed before the loop runs: one wake-up, and a word that still differs
        // from the one the loop registered with.
        assert!(control.set_paused(true));
        assert!(!control.set_paused(true), "already paused");
        assert!(control.is_paused());
        assert!(control.set_paused(false));
        let resumed = parked.next().await;
        assert_ne!(resumed, seen);
        assert!(!resumed.is_paused());

        parked.nudge().await;
        parked.nudge().await;
        control.request_run(&replies);
        control.request_run(&replies);
        let seen = parked.next().await;
        assert_eq!(seen.requests_since(resumed), 2);

        parked.nudge().await;
        control.stop();
        assert!(parked.next().await.is_stopped());
        assert!(control.token().is_cancelled());
    }

    #[test]
    fn the_pause_count_wraps_without_touching_the_requests() {
        let control = Control::default();
        let replies = Replies::default();
        control.request_run(&replies);
        // The last count before wrapping: odd, so paused.
        control.word.fetch_or(TOGGLES, Ordering::AcqRel);
        let before = control.seen();
        assert!(control.is_paused());
        assert!(control.set_paused(false));
        let after = control.seen();
        assert!(!control.is_paused() && !after.is_stopped());
        assert_eq!(after.requests_since(Seen::default()), 1);
        assert_ne!(after, before);
    }
}
