//! LISTEN/NOTIFY as a hint: an enqueue of a job due now notifies its queue at commit, and one
//! connection per [`Postgres`](crate::Postgres) listens and wakes that queue's consumer, which
//! claims at once instead of at its next poll. Consumers still poll, so a lost notification (a
//! dropped connection, a full notification queue) only delays a job. On every (re)connection
//! every consumer is woken, for the jobs enqueued while nobody listened.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::sync::Notify;

/// The channel every notification goes to; the payload names the schema and the queue.
pub(crate) const CHANNEL: &str = "worker_jobs";

/// The payload of `queue`'s notifications in `schema`.
pub(crate) fn payload(schema: &str, queue: &str) -> String {
    format!("{schema}:{queue}")
}

/// The listening connection of one backend and the consumers it wakes.
#[derive(Debug, Default)]
pub(crate) struct Listener {
    /// Each queue's consumer waits on its `Notify`; a wake-up with nobody waiting is kept.
    queues: Mutex<HashMap<String, Arc<Notify>>>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Some(task) = self
            .task
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            task.abort();
        }
    }
}

impl Listener {
    /// The `Notify` of `payload`'s consumer, starting the listening connection on first use.
    pub(crate) fn waiter(self: &Arc<Self>, pool: &sqlx::PgPool, payload: String) -> Arc<Notify> {
        let notify = Arc::clone(
            self.queues
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(payload)
                .or_default(),
        );
        let mut task = self.task.lock().unwrap_or_else(PoisonError::into_inner);
        if task.is_none() {
            *task = Some(tokio::spawn(listen(pool.clone(), Arc::downgrade(self))));
        }
        notify
    }

    fn wake(&self, payload: &str) {
        if let Some(notify) = self
            .queues
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(payload)
        {
            notify.notify_one();
        }
    }

    fn wake_all(&self) {
        for notify in self
            .queues
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
        {
            notify.notify_one();
        }
    }
}

/// Listens until the backend is dropped, reconnecting after a second when the connection fails.
async fn listen(pool: sqlx::PgPool, weak: Weak<Listener>) {
    loop {
        let connected = async {
            let mut connection = PgListener::connect_with(&pool).await?;
            connection.listen(CHANNEL).await?;
            Ok::<_, sqlx::Error>(connection)
        }
        .await;
        match connected {
            Ok(mut connection) => {
                let Some(listener) = weak.upgrade() else {
                    return;
                };
                listener.wake_all();
                drop(listener);
                loop {
                    match connection.try_recv().await {
                        Ok(Some(notification)) => {
                            let Some(listener) = weak.upgrade() else {
                                return;
                            };
                            listener.wake(notification.payload());
                        }
                        // Reconnected: what was sent meanwhile is lost, so look.
                        Ok(None) => {
                            let Some(listener) = weak.upgrade() else {
                                return;
                            };
                            listener.wake_all();
                        }
                        Err(err) => {
                            tracing::warn!(error = %err, "the LISTEN connection failed; consumers poll until it is back");
                            break;
                        }
                    }
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "could not LISTEN for new jobs; consumers poll until it works");
            }
        }
        if weak.strong_count() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
