//! Scoped resources with a finish step (`scoped_mut` and `ScopedMut<T>`): the body holds the
//! attempt's resource alone, and the finish step receives it back with the attempt's outcome,
//! whatever that was; a failed commit fails the attempt; a body can take the value and finish
//! it itself; a handle that leaks past the attempt is never finished, only dropped.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use worker_core::testing::{TestHost, run_once};
use worker_core::{BoxError, Ctx, Host, HostBuilder, Outcome, ScopedMut, worker};

/// What the fake database saw.
#[derive(Debug, Default)]
struct Ledger {
    events: Mutex<Vec<String>>,
    committed: Mutex<Vec<String>>,
    /// Commits still to fail.
    failing_commits: AtomicU32,
    /// Finish steps called.
    finished: AtomicU32,
}

impl Ledger {
    fn event(&self, event: String) {
        self.events.lock().unwrap().push(event);
    }

    fn events(&self) -> Vec<String> {
        self.events.lock().unwrap().clone()
    }

    fn committed(&self) -> Vec<String> {
        self.committed.lock().unwrap().clone()
    }
}

/// A transaction of the fake database: its writes become visible only on commit; dropped
/// unfinished, it says so.
#[derive(Debug)]
struct Tx {
    ledger: Arc<Ledger>,
    attempt: u32,
    writes: Vec<String>,
    done: bool,
}

impl Tx {
    fn write(&mut self, row: &str) {
        self.writes.push(row.to_owned());
    }

    async fn commit(mut self) -> Result<(), BoxError> {
        tokio::task::yield_now().await;
        self.done = true;
        let failing = &self.ledger.failing_commits;
        if failing
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            self.ledger
                .event(format!("a{} commit failed", self.attempt));
            return Err("could not serialize access".into());
        }
        self.ledger.event(format!("a{} commit", self.attempt));
        let rows = std::mem::take(&mut self.writes);
        self.ledger.committed.lock().unwrap().extend(rows);
        Ok(())
    }

    async fn rollback(mut self, outcome: Outcome) -> Result<(), BoxError> {
        tokio::task::yield_now().await;
        self.done = true;
        self.ledger.event(format!(
            "a{} rollback after {}",
            self.attempt,
            outcome.as_str()
        ));
        Ok(())
    }
}

impl Drop for Tx {
    fn drop(&mut self) {
        if !self.done {
            self.ledger
                .event(format!("a{} dropped unfinished", self.attempt));
        }
    }
}

/// A host builder whose attempts begin a [`Tx`], committed on success and rolled back otherwise.
fn transactional(ledger: &Arc<Ledger>) -> HostBuilder {
    let begin = Arc::clone(ledger);
    let finish = Arc::clone(ledger);
    Host::builder().scoped_mut(
        move |ctx: Ctx| {
            let ledger = Arc::clone(&begin);
            async move {
                Ok::<_, BoxError>(Tx {
                    ledger,
                    attempt: ctx.attempt(),
                    writes: Vec::new(),
                    done: false,
                })
            }
        },
        move |tx: Tx, outcome: Outcome| {
            finish.finished.fetch_add(1, Ordering::SeqCst);
            async move {
                match outcome {
                    Outcome::Success => tx.commit().await,
                    other => tx.rollback(other).await,
                }
            }
        },
    )
}

#[worker(every = "1h")]
async fn writes(mut tx: ScopedMut<Tx>) {
    tx.write("order 1");
}

#[tokio::test(start_paused = true)]
async fn a_successful_attempt_commits() {
    let ledger = Arc::new(Ledger::default());
    let run = run_once(writes, transactional(&ledger)).await.unwrap();
    assert_eq!(run.result, Outcome::Success);
    assert_eq!(ledger.events(), ["a1 commit"]);
    assert_eq!(ledger.committed(), ["order 1"]);
}

#[worker(every = "1h", retry = 1, backoff = "1s")]
async fn fails(mut tx: ScopedMut<Tx>) -> Result<(), BoxError> {
    tx.write("order 1");
    Err("upstream refused".into())
}

#[tokio::test(start_paused = true)]
async fn each_failed_attempt_rolls_back_its_own_transaction() {
    let ledger = Arc::new(Ledger::default());
    let run = run_once(fails, transactional(&ledger)).await.unwrap();
    assert_eq!((run.result, run.attempts), (Outcome::Failure, 2));
    assert_eq!(run.error.as_deref(), Some("upstream refused"));
    assert_eq!(
        ledger.events(),
        ["a1 rollback after failure", "a2 rollback after failure"]
    );
    assert!(ledger.committed().is_empty());
}

#[worker(every = "1h")]
async fn panics(mut tx: ScopedMut<Tx>) {
    tx.write("order 1");
    panic!("index out of bounds");
}

#[tokio::test(start_paused = true)]
async fn a_panicked_attempt_rolls_back() {
    let ledger = Arc::new(Ledger::default());
    let run = run_once(panics, transactional(&ledger)).await.unwrap();
    assert_eq!(run.result, Outcome::Panic);
    assert_eq!(ledger.events(), ["a1 rollback after panic"]);
    assert!(ledger.committed().is_empty());
}

#[worker(every = "1h", timeout = "1s")]
async fn hangs(mut tx: ScopedMut<Tx>) {
    tx.write("order 1");
    tokio::time::sleep(Duration::from_mins(1)).await;
}

#[tokio::test(start_paused = true)]
async fn a_timed_out_attempt_rolls_back() {
    let ledger = Arc::new(Ledger::default());
    let run = run_once(hangs, transactional(&ledger)).await.unwrap();
    assert_eq!(run.result, Outcome::Timeout);
    assert_eq!(ledger.events(), ["a1 rollback after timeout"]);
    assert!(ledger.committed().is_empty());
}

#[worker(every = "1h")]
async fn waits_for_shutdown(mut tx: ScopedMut<Tx>, ctx: Ctx) -> Result<(), BoxError> {
    tx.write("order 1");
    ctx.cancelled().await;
    Err("stopped before the batch was complete".into())
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_attempt_rolls_back() {
    let ledger = Arc::new(Ledger::default());
    let host = TestHost::start(transactional(&ledger).worker(waits_for_shutdown)).unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert!(ledger.events().is_empty(), "the run is going");
    host.stop().await.unwrap();
    assert_eq!(ledger.events(), ["a1 rollback after cancelled"]);
    assert!(ledger.committed().is_empty());
}

#[worker(every = "1h", retry = 1, backoff = "1s")]
async fn commits_on_retry(mut tx: ScopedMut<Tx>) {
    tx.write("order 1");
}

#[tokio::test(start_paused = true)]
async fn a_failed_commit_fails_the_attempt_and_is_retried() {
    let ledger = Arc::new(Ledger::default());
    ledger.failing_commits.store(1, Ordering::SeqCst);
    let run = run_once(commits_on_retry, transactional(&ledger))
        .await
        .unwrap();
    assert_eq!((run.result, run.attempts), (Outcome::Success, 2));
    assert_eq!(ledger.events(), ["a1 commit failed", "a2 commit"]);
    assert_eq!(
        ledger.committed(),
        ["order 1"],
        "written once, by the retry"
    );

    let ledger = Arc::new(Ledger::default());
    ledger.failing_commits.store(2, Ordering::SeqCst);
    let run = run_once(commits_on_retry, transactional(&ledger))
        .await
        .unwrap();
    assert_eq!((run.result, run.attempts), (Outcome::Failure, 2));
    assert_eq!(
        run.error.as_deref(),
        Some("finishing the scoped `runtime::finish::Tx` failed: could not serialize access")
    );
    assert!(ledger.committed().is_empty());
}

#[worker(every = "1h")]
async fn commits_itself(mut tx: ScopedMut<Tx>) -> Result<(), BoxError> {
    tx.write("order 1");
    tx.into_inner().commit().await
}

#[tokio::test(start_paused = true)]
async fn a_body_that_takes_the_value_finishes_it_itself() {
    let ledger = Arc::new(Ledger::default());
    let run = run_once(commits_itself, transactional(&ledger))
        .await
        .unwrap();
    assert_eq!(run.result, Outcome::Success);
    assert_eq!(ledger.finished.load(Ordering::SeqCst), 0);
    assert_eq!(ledger.events(), ["a1 commit"]);
    assert_eq!(ledger.committed(), ["order 1"]);
}

#[worker(every = "1h")]
async fn leaks(mut tx: ScopedMut<Tx>) {
    tx.write("order 1");
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(5)).await;
        tx.write("order 2");
        drop(tx);
    });
}

#[tokio::test(start_paused = true)]
async fn a_handle_that_outlives_its_attempt_is_never_finished_only_dropped() {
    let ledger = Arc::new(Ledger::default());
    let host = TestHost::start(transactional(&ledger).worker(leaks)).unwrap();
    host.handle().pause("leaks").unwrap();
    let run = host.run_once("leaks").await;
    assert_eq!(run.result, Outcome::Success);
    assert_eq!(ledger.finished.load(Ordering::SeqCst), 0, "not finished");
    assert!(ledger.events().is_empty(), "still held by the task");
    host.advance(Duration::from_secs(6)).await;
    assert_eq!(ledger.events(), ["a1 dropped unfinished"]);
    assert!(ledger.committed().is_empty(), "nothing leaked is committed");
    host.stop().await.unwrap();
}

#[worker(every = "1h")]
async fn takes_it_twice(_first: ScopedMut<Tx>, _second: ScopedMut<Tx>) {}

#[tokio::test(start_paused = true)]
async fn one_attempt_hands_its_resource_to_one_handle_at_a_time() {
    let ledger = Arc::new(Ledger::default());
    let run = run_once(takes_it_twice, transactional(&ledger))
        .await
        .unwrap();
    assert_eq!(run.result, Outcome::Failure);
    assert_eq!(
        run.error.as_deref(),
        Some(
            "the scoped `runtime::finish::Tx` of this attempt is held by another `ScopedMut` \
             of this attempt"
        )
    );
    assert_eq!(ledger.events(), ["a1 rollback after failure"]);
}

#[tokio::test]
async fn a_host_without_the_factory_refuses_to_build_and_says_which_registration_is_missing() {
    let err = Host::builder()
        .worker(writes)
        .build()
        .unwrap_err()
        .to_string();
    assert!(err.contains("writes"), "{err}");
    assert!(
        err.contains("needs a `ScopedMut<runtime::finish::Tx>`, but no factory builds one"),
        "{err}"
    );

    let ledger = Arc::new(Ledger::default());
    let err = Host::builder()
        .scoped(move |ctx: Ctx| {
            let ledger = Arc::clone(&ledger);
            async move {
                Ok::<_, BoxError>(Tx {
                    ledger,
                    attempt: ctx.attempt(),
                    writes: Vec::new(),
                    done: false,
                })
            }
        })
        .worker(writes)
        .build()
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("is registered with `.scoped(..)`, which shares it as `Scoped<"),
        "{err}"
    );
}

/// A second transactional resource of the same fake database, built after [`Tx`].
#[derive(Debug)]
struct Outbox(Tx);

#[worker(every = "1h")]
async fn writes_twice(mut tx: ScopedMut<Tx>, mut outbox: ScopedMut<Outbox>) {
    tx.write("order 1");
    outbox.0.write("order 1 shipped");
}

#[tokio::test(start_paused = true)]
async fn a_failed_commit_rolls_back_the_resources_finished_after_it() {
    let ledger = Arc::new(Ledger::default());
    ledger.failing_commits.store(1, Ordering::SeqCst);
    let begin = Arc::clone(&ledger);
    let builder = transactional(&ledger).scoped_mut(
        move |ctx: Ctx| {
            let ledger = Arc::clone(&begin);
            async move {
                Ok::<_, BoxError>(Outbox(Tx {
                    ledger,
                    attempt: ctx.attempt(),
                    writes: Vec::new(),
                    done: false,
                }))
            }
        },
        |outbox: Outbox, outcome: Outcome| async move {
            match outcome {
                Outcome::Success => outbox.0.commit().await,
                other => outbox.0.rollback(other).await,
            }
        },
    );
    let run = run_once(writes_twice, builder).await.unwrap();
    assert_eq!(run.result, Outcome::Failure);
    assert_eq!(
        ledger.events(),
        ["a1 commit failed", "a1 rollback after failure"],
        "the newest first; the older one sees the failed commit"
    );
    assert!(ledger.committed().is_empty());
}
