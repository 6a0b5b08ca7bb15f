//! Queue workers as users write them: the payload's `Debug` shows in dead jobs, a scheduled
//! worker feeds a queue through a `Queue<T>` argument, and every queue key is accepted.

use worker_core::{BoxError, Ctx, Host, Job, OnPanic, Queue, SendError, State, Worker, worker};

#[derive(Debug, Clone)]
struct Email {
    to: String,
}

/// Without `Debug`: dead jobs do not show it.
#[derive(Clone)]
struct Secret(#[allow(dead_code)] String);

struct Mailer;

#[worker(queue = "emails", concurrency = 8, capacity = 1024, retry = 3, timeout = "30s", on_panic = discard)]
async fn send_email(job: Job<Email>, _mailer: State<Mailer>, ctx: Ctx) -> Result<(), BoxError> {
    let _ = (job.id(), job.attempt(), job.enqueued_at(), ctx.run_id());
    if job.to.is_empty() {
        return Err("no recipient".into());
    }
    let _owned: Email = job.into_inner();
    Ok(())
}

#[worker(queue = "secrets", stop_budget = "5s", stale_after = "1m", gates_readiness = true)]
async fn keep_secret(job: Job<Secret>) {
    let _ = job;
}

#[worker(every = "1m")]
async fn digest(emails: Queue<Email>) -> Result<(), SendError<Email>> {
    emails.send(Email { to: "ops@example.com".into() }).await.map(drop)
}

fn main() {
    let built = Worker::builder("built")
        .queue::<u64>("numbers")
        .concurrency(2)
        .capacity(10)
        .on_panic(OnPanic::Retry)
        .on_dead(|dead: worker_core::DeadJob<u64>| assert!(dead.attempts > 0))
        .on_leftovers(|jobs: Vec<u64>| drop(jobs))
        .describe_jobs(|n: &u64| format!("number {n}"))
        .handler(|job: Job<u64>| async move { drop(job) });
    let host = Host::builder()
        .state(Mailer)
        .worker(send_email)
        .worker(keep_secret)
        .worker(digest)
        .worker(built)
        .build()
        .unwrap();
    let _ = host.handle().queue::<Email>("emails").unwrap();
}
