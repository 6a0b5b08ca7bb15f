//! Durable queue workers on a real host against a real PostgreSQL server (the one
//! `scripts/test` starts, `WORKER_TEST_DATABASE_URL`): jobs enqueued in committed transactions
//! run, rolled-back ones never do; failures are retried with the worker's backoff and then
//! discarded with their errors; panics stay with their job; shutdown hands unfinished jobs back.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use worker_core::{BoxError, Ctx, Host, HostHandle, Job, Permanent, State, Worker, worker};
use worker_postgres::{JobState, Postgres};

mod common;
use common::promtool;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Invoice {
    order: i64,
}

/// The orders the workers saw, in the order they saw them.
#[derive(Debug, Clone, Default)]
struct Seen(Arc<Mutex<Vec<i64>>>);

impl Seen {
    fn push(&self, order: i64) {
        self.0.lock().expect("not poisoned").push(order);
    }

    fn orders(&self) -> Vec<i64> {
        self.0.lock().expect("not poisoned").clone()
    }
}

/// A migrated schema of this test's own.
async fn pg() -> Postgres {
    common::schema("d").await
}

/// Waits (on the real clock: the database's time is real) until `done` holds, for at most
/// 30 s.
async fn until(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !done().await {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs `host` until the returned handle's shutdown, on a task of its own.
fn start(
    host: Host,
) -> (
    HostHandle,
    tokio::task::JoinHandle<Result<(), worker_core::Error>>,
) {
    let handle = host.handle();
    let running = tokio::spawn(host.run_until(std::future::pending()));
    (handle, running)
}

#[worker(queue = "invoices", durable, concurrency = 4)]
async fn render(job: Job<Invoice>, seen: State<Seen>) {
    seen.push(job.order);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_jobs_run_once_and_rolled_back_ones_never() {
    let pg = pg().await;
    let invoices = pg.queue::<Invoice>("invoices").expect("valid");
    let committed: Vec<i64> = (0..40).collect();
    let mut tx = pg.pool().begin().await.expect("begins");
    for &order in &committed {
        invoices
            .enqueue(&mut *tx, &Invoice { order })
            .await
            .expect("enqueues");
    }
    tx.commit().await.expect("commits");
    let mut tx = pg.pool().begin().await.expect("begins");
    for order in 100..120 {
        invoices
            .enqueue(&mut *tx, &Invoice { order })
            .await
            .expect("enqueues");
    }
    tx.rollback().await.expect("rolls back");

    let seen = Seen::default();
    let host = Host::builder()
        .backend(pg.clone())
        .state(seen.clone())
        .worker(render)
        .env_overrides(false)
        .build()
        .expect("builds");
    let (handle, running) = start(host);
    until("every committed job to run", async || {
        seen.orders().len() >= committed.len()
    })
    .await;
    // Completions are batched: wait for the table to empty.
    until("the completions", async || {
        pg.counts().await.expect("counts").is_empty()
    })
    .await;
    handle.shutdown();
    running.await.expect("no panic").expect("stops cleanly");

    let mut orders = seen.orders();
    orders.sort_unstable();
    assert_eq!(
        orders, committed,
        "each committed job once, no rolled-back one"
    );
    let metrics = handle.render_metrics();
    assert!(
        metrics.contains("worker_jobs_stale_total{worker=\"render\"} 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("worker_runs_total{worker=\"render\",result=\"success\"} 40"),
        "{metrics}"
    );
    // Every claim was timed, and none failed.
    let claims: u64 = metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix("worker_jobs_fetch_duration_seconds_count{worker=\"render\"} ")
        })
        .and_then(|n| n.parse().ok())
        .expect("the fetch histogram");
    assert!(claims >= 1, "{metrics}");
    assert!(
        metrics.contains("worker_jobs_fetch_failed_total{worker=\"render\"} 0"),
        "{metrics}"
    );
}

#[worker(queue = "flaky", durable, retry = 2, backoff = "0s")]
async fn flaky(job: Job<Invoice>, seen: State<Seen>) -> Result<(), BoxError> {
    seen.push(job.order);
    match job.order {
        1 if job.attempt() < 3 => Err(format!("attempt {} failed", job.attempt()).into()),
        0 | 1 => Ok(()),
        2 => Err(Permanent::new("no such order").into()),
        3 => panic!("the renderer fell over"),
        _ => Err("always fails".into()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_retry_with_the_workers_policy_and_end_discarded_with_their_errors() {
    let pg = pg().await;
    let queue = pg.queue::<Invoice>("flaky").expect("valid");
    let mut ids = Vec::new();
    for order in 0..5 {
        ids.push(
            queue
                .enqueue(pg.pool(), &Invoice { order })
                .await
                .expect("enqueues")
                .id,
        );
    }
    let seen = Seen::default();
    let host = Host::builder()
        .backend(pg.clone())
        .state(seen.clone())
        .worker(flaky)
        .env_overrides(false)
        .build()
        .expect("builds");
    let (handle, running) = start(host);
    // 0: once; 1: three attempts, then done; 2: once (permanent); 3: three (panics retried);
    // 4: three, then discarded.
    until("every attempt", async || {
        seen.orders().len() >= 1 + 3 + 1 + 3 + 3
    })
    .await;
    until("the final states", async || {
        let counts = pg.counts().await.expect("counts");
        counts.len() == 1 && counts[0].state == JobState::Discarded && counts[0].count == 3
    })
    .await;
    // The database's counts reach `/metrics` within a few seconds.
    until("the counts on /metrics", async || {
        handle
            .render_metrics()
            .contains("worker_jobs{worker=\"flaky\",state=\"discarded\"} 3")
    })
    .await;
    let page = handle.render_metrics();
    assert!(
        page.contains("worker_queue_depth{worker=\"flaky\"} 0"),
        "{page}"
    );
    assert!(
        page.contains("worker_pg_jobs_dead_tuples{worker=\"flaky\"}"),
        "{page}"
    );
    assert!(
        page.contains("worker_pg_oldest_xmin_age_seconds{worker=\"flaky\"}"),
        "{page}"
    );
    assert!(
        page.contains("worker_pg_notify_queue_usage{worker=\"flaky\"} 0"),
        "{page}"
    );
    promtool(&page);
    handle.shutdown();
    running.await.expect("no panic").expect("stops cleanly");

    let mut attempts = std::collections::BTreeMap::new();
    for order in seen.orders() {
        *attempts.entry(order).or_insert(0) += 1;
    }
    assert_eq!(
        attempts.into_iter().collect::<Vec<_>>(),
        [(0, 1), (1, 3), (2, 1), (3, 3), (4, 3)]
    );
    for id in [ids[0], ids[1]] {
        assert!(
            pg.job(id).await.expect("reads").is_none(),
            "completed and deleted"
        );
    }
    let permanent = pg.job(ids[2]).await.expect("reads").expect("kept");
    assert_eq!(
        (permanent.state, permanent.attempt),
        (JobState::Discarded, 1)
    );
    assert!(
        permanent.errors[0].error.contains("no such order"),
        "{:?}",
        permanent.errors
    );
    let panicked = pg.job(ids[3]).await.expect("reads").expect("kept");
    assert_eq!((panicked.state, panicked.attempt), (JobState::Discarded, 3));
    assert!(
        panicked.errors[0].error.contains("the renderer fell over"),
        "{:?}",
        panicked.errors
    );
    let failed = pg.job(ids[4]).await.expect("reads").expect("kept");
    let errors: Vec<i32> = failed.errors.iter().map(|e| e.attempt).collect();
    assert_eq!((failed.state, errors), (JobState::Discarded, vec![3, 2, 1]));
    let dead = &handle.workers()[0];
    assert_eq!(dead.name, "flaky");
    let metrics = handle.render_metrics();
    assert!(
        metrics.contains("worker_jobs_dead_total{worker=\"flaky\"} 3"),
        "{metrics}"
    );
}

#[worker(queue = "slow", durable, concurrency = 2, stop_budget = "1s")]
async fn slow(job: Job<Invoice>, ctx: Ctx, seen: State<Seen>) -> anyhow::Result<()> {
    seen.push(job.order);
    ctx.cancelled().await;
    anyhow::bail!("cancelled by shutdown")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_hands_unfinished_jobs_back_at_once() {
    let pg = pg().await;
    let queue = pg.queue::<Invoice>("slow").expect("valid");
    let mut ids = BTreeSet::new();
    for order in 0..3 {
        ids.insert(
            queue
                .enqueue(pg.pool(), &Invoice { order })
                .await
                .expect("enqueues")
                .id,
        );
    }
    let seen = Seen::default();
    let host = Host::builder()
        .backend(pg.clone())
        .state(seen.clone())
        .worker(slow)
        .shutdown_timeout(Duration::from_secs(5))
        .env_overrides(false)
        .build()
        .expect("builds");
    let (handle, running) = start(host);
    until("both slots to take a job", async || {
        seen.orders().len() == 2
    })
    .await;
    // `/workers` shows the third waiting in the database, and the two in flight.
    until("the database's depth on /workers", async || {
        let status = handle
            .workers()
            .pop()
            .and_then(|w| w.queue)
            .expect("a queue worker");
        status.depth == 1 && status.in_flight == 2 && !status.closed
    })
    .await;
    handle.shutdown();
    running
        .await
        .expect("no panic")
        .expect("stops within its budget");

    // The two that ran are available again at once (their attempt used), the third never
    // left the queue.
    let mut attempts = Vec::new();
    for &id in &ids {
        let job = pg.job(id).await.expect("reads").expect("kept");
        assert_eq!(job.state, JobState::Available, "{job:?}");
        attempts.push(job.attempt);
    }
    attempts.sort_unstable();
    assert_eq!(attempts, [0, 1, 1]);
    let metrics = handle.render_metrics();
    assert!(
        metrics.contains("worker_jobs_released_total{worker=\"slow\"} 2"),
        "{metrics}"
    );
}

/// A tenant's durable consumer whose runs wait for their cancellation, which comes at its stop
/// budget; each tells `seen`.
fn waiting_for_cancellation(seen: &Seen) -> Worker {
    Worker::builder("invoices-acme")
        .durable_queue::<Invoice>("tenant-acme")
        .concurrency(2)
        .stop_budget(Duration::from_secs(1))
        .state(seen.clone())
        .handler(
            |job: Job<Invoice>, ctx: Ctx, seen: State<Seen>| async move {
                seen.push(job.order);
                ctx.cancelled().await;
                Err::<(), BoxError>("cancelled by the removal".into())
            },
        )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_worker_added_at_run_time_runs_jobs_and_hands_them_back_when_removed() {
    let pg = pg().await;
    let queue = pg.queue::<Invoice>("tenant-acme").expect("valid");
    let mut ids = BTreeSet::new();
    for order in 0..3 {
        let enqueued = queue
            .enqueue(pg.pool(), &Invoice { order })
            .await
            .expect("enqueues");
        ids.insert(enqueued.id);
    }
    let host = Host::builder()
        .backend(pg.clone())
        .env_overrides(false)
        .build()
        .expect("builds");
    let (handle, running) = start(host);
    let seen = Seen::default();
    handle
        .add_worker(waiting_for_cancellation(&seen))
        .await
        .expect("added");
    until("both slots to take a job", async || {
        seen.orders().len() == 2
    })
    .await;
    handle
        .remove_worker("invoices-acme")
        .await
        .expect("removed");
    assert!(handle.workers().is_empty());
    assert!(!handle.render_metrics().contains("invoices-acme"));
    // The two that ran are available again (their attempt used), the third never left.
    let mut attempts = Vec::new();
    for &id in &ids {
        let job = pg.job(id).await.expect("reads").expect("kept");
        assert_eq!(job.state, JobState::Available, "{job:?}");
        attempts.push(job.attempt);
    }
    attempts.sort_unstable();
    assert_eq!(attempts, [0, 1, 1]);

    // The tenant comes back: every job runs, none was lost.
    let done = Seen::default();
    let finishing = Worker::builder("invoices-acme")
        .durable_queue::<Invoice>("tenant-acme")
        .state(done.clone())
        .handler(|job: Job<Invoice>, done: State<Seen>| async move { done.push(job.order) });
    handle.add_worker(finishing).await.expect("added again");
    until("the three jobs to run", async || done.orders().len() == 3).await;
    let mut orders = done.orders();
    orders.sort_unstable();
    assert_eq!(orders, [0, 1, 2]);
    handle.shutdown();
    running.await.expect("no panic").expect("stops cleanly");
}

#[tokio::test]
async fn a_durable_worker_needs_a_backend_and_has_no_in_process_producer() {
    let err = Host::builder()
        .worker(render)
        .env_overrides(false)
        .build()
        .expect_err("no backend");
    assert_eq!(
        err.to_string(),
        "worker `render`: it consumes the durable queue `invoices`, but the host has no durable \
         backend: add one with `Host::builder().backend(worker_postgres::Postgres::new(pool))`"
    );

    let pg = pg().await;
    let host = Host::builder()
        .backend(pg)
        .state(Seen::default())
        .worker(render)
        .env_overrides(false)
        .build()
        .expect("builds");
    let err = host
        .handle()
        .queue::<Invoice>("invoices")
        .expect_err("durable");
    assert!(
        err.to_string().contains("the queue `invoices` is durable"),
        "{err}"
    );
}

#[worker(queue = "effects", durable, concurrency = 4)]
async fn effect(job: Job<Invoice>, pg: State<Postgres>) -> Result<(), BoxError> {
    let schema = pg.schema_name();
    let mut tx = pg.pool().begin().await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {schema}.effects VALUES ($1)"
    )))
    .bind(job.order)
    .execute(&mut *tx)
    .await?;
    if job.order == 7 {
        // Another consumer took the job over meanwhile (as after a lost lease).
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE {schema}.jobs SET attempt = attempt + 1 WHERE id = $1"
        )))
        .bind(i64::try_from(job.id())?)
        .execute(pg.pool())
        .await?;
    }
    pg.complete_in(&mut *tx, &job).await?;
    tx.commit().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complete_in_commits_each_effect_with_its_completion_exactly_once() {
    let pg = pg().await;
    let schema = pg.schema_name().to_owned();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE {schema}.effects (order_id bigint PRIMARY KEY)"
    )))
    .execute(pg.pool())
    .await
    .expect("creates");
    let queue = pg.queue::<Invoice>("effects").expect("valid");
    let jobs: Vec<Invoice> = (0..30).map(|order| Invoice { order }).collect();
    let ids = queue
        .enqueue_many(pg.pool(), &jobs)
        .await
        .expect("enqueues");
    let host = Host::builder()
        .backend(pg.clone())
        .state(pg.clone())
        .worker(effect)
        .env_overrides(false)
        .build()
        .expect("builds");
    let (handle, running) = start(host);
    until("every job but the superseded one to finish", async || {
        let counts = pg.counts().await.expect("counts");
        counts.iter().map(|c| c.count).sum::<i64>() == 1
    })
    .await;
    handle.shutdown();
    running.await.expect("no panic").expect("stops cleanly");

    let effects: Vec<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT order_id FROM {schema}.effects ORDER BY 1"
    )))
    .fetch_all(pg.pool())
    .await
    .expect("reads");
    let expected: Vec<i64> = (0..30).filter(|&order| order != 7).collect();
    assert_eq!(
        effects, expected,
        "each effect once; the superseded attempt's rolled back"
    );
    // The superseded job belongs to whoever took it over: its record is theirs to finish.
    let superseded = pg.job(ids[7].id).await.expect("reads").expect("kept");
    assert_eq!(
        (superseded.state, superseded.attempt),
        (JobState::Running, 2)
    );
    let metrics = handle.render_metrics();
    assert!(
        metrics.contains("worker_jobs_stale_total{worker=\"effect\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("worker_runs_total{worker=\"effect\",result=\"success\"} 29"),
        "{metrics}"
    );
}

#[worker(queue = "patient", durable, lease = "2s", stop_budget = "1s")]
async fn patient(job: Job<Invoice>, ctx: Ctx, seen: State<Seen>) -> Result<(), BoxError> {
    seen.push(job.order);
    tokio::select! {
        () = ctx.cancelled() => Err("stopped: cancelled".into()),
        () = tokio::time::sleep(Duration::from_mins(1)) => Ok(()),
    }
}

/// A host running `patient` on `pg`, with one job enqueued and running; its id.
async fn patient_running(
    pg: &Postgres,
    seen: &Seen,
) -> (
    i64,
    HostHandle,
    tokio::task::JoinHandle<Result<(), worker_core::Error>>,
) {
    let id = pg
        .queue::<Invoice>("patient")
        .expect("valid")
        .enqueue(pg.pool(), &Invoice { order: 1 })
        .await
        .expect("enqueues")
        .id;
    let host = Host::builder()
        .backend(pg.clone())
        .state(seen.clone())
        .worker(patient)
        .env_overrides(false)
        .build()
        .expect("builds");
    let (handle, running) = start(host);
    until("the job to run", async || !seen.orders().is_empty()).await;
    (id, handle, running)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_running_job_cancels_its_run_and_only_its_run() {
    let pg = pg().await;
    let seen = Seen::default();
    let (id, handle, running) = patient_running(&pg, &seen).await;
    assert_eq!(
        pg.cancel(pg.pool(), id).await.expect("cancels"),
        worker_postgres::Cancelled::Requested
    );
    // The next heartbeat (a third of the lease) sees the request and cancels the run's token.
    let requested = Instant::now();
    until("the job to end cancelled", async || {
        pg.job(id)
            .await
            .expect("reads")
            .is_some_and(|job| job.state == JobState::Cancelled)
    })
    .await;
    assert!(
        requested.elapsed() < Duration::from_secs(5),
        "{:?}",
        requested.elapsed()
    );
    let metrics = handle.render_metrics();
    assert!(
        metrics.contains("worker_runs_total{worker=\"patient\",result=\"cancelled\"} 1"),
        "{metrics}"
    );
    // The worker goes on: another job runs.
    pg.queue::<Invoice>("patient")
        .expect("valid")
        .enqueue(pg.pool(), &Invoice { order: 2 })
        .await
        .expect("enqueues");
    until("the next job", async || seen.orders().len() == 2).await;
    // At shutdown, the stop budget's end cancels the running job's token too; it is released.
    let stopping = Instant::now();
    handle.shutdown();
    running.await.expect("no panic").expect("stops cleanly");
    assert!(
        stopping.elapsed() < Duration::from_secs(5),
        "{:?}",
        stopping.elapsed()
    );
    let released = handle.render_metrics();
    assert!(
        released.contains("worker_jobs_released_total{worker=\"patient\"} 1"),
        "{released}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_lease_cancels_the_run_and_its_result_is_stale() {
    let pg = pg().await;
    let seen = Seen::default();
    let (id, handle, running) = patient_running(&pg, &seen).await;
    // Another consumer's claim, as after a rescue: the attempt moves on.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE {}.jobs SET attempt = attempt + 1 WHERE id = $1",
        pg.schema_name()
    )))
    .bind(id)
    .execute(pg.pool())
    .await
    .expect("updates");
    until("the lost lease to cancel the run", async || {
        let page = handle.render_metrics();
        page.contains("worker_jobs_lease_lost_total{worker=\"patient\"} 1")
            && page.contains("worker_runs_total{worker=\"patient\",result=\"cancelled\"} 1")
            && page.contains("worker_jobs_stale_total{worker=\"patient\"} 1")
    })
    .await;
    // The newer attempt's job is untouched: still running, as the other consumer left it.
    let job = pg.job(id).await.expect("reads").expect("kept");
    assert_eq!((job.state, job.attempt), (JobState::Running, 2));
    handle.shutdown();
    running.await.expect("no panic").expect("stops cleanly");
}

#[worker(queue = "unreachable", durable, gates_readiness = true)]
async fn unreachable(job: Job<Invoice>) {
    let _ = job;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_out_of_reach_makes_the_durable_worker_unhealthy_and_the_host_not_ready() {
    // Nothing listens on port 1.
    let pool = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(Duration::from_millis(200))
        .connect_lazy("postgres://worker@127.0.0.1:1/postgres")
        .expect("a lazy pool");
    let host = Host::builder()
        .backend(Postgres::new(pool))
        .worker(unreachable)
        .env_overrides(false)
        .build()
        .expect("builds");
    let (handle, running) = start(host);
    // Healthy while the grace (5 s) lasts, as through a database restart; unhealthy after.
    until("the worker unhealthy", async || {
        let status = handle.workers().pop().expect("one worker");
        status
            .reason
            .is_some_and(|r| r.starts_with("no claim from the database has succeeded for "))
    })
    .await;
    assert!(!handle.readiness().ok(), "{:?}", handle.readiness());
    let page = handle.render_metrics();
    let failed: u64 = page
        .lines()
        .find_map(|l| l.strip_prefix("worker_jobs_fetch_failed_total{worker=\"unreachable\"} "))
        .and_then(|n| n.parse().ok())
        .expect("the failed claims");
    assert!(failed >= 2, "{page}");
    handle.shutdown();
    running.await.expect("no panic").expect("stops cleanly");
}

/// Where a job waits until the test opens it.
#[derive(Debug, Clone)]
struct Door(Arc<tokio::sync::Semaphore>);

impl Door {
    fn closed() -> Self {
        Self(Arc::new(tokio::sync::Semaphore::new(0)))
    }

    async fn pass(&self) {
        let _open = self.0.acquire().await;
    }

    fn open(&self) {
        self.0.add_permits(1);
    }
}

#[worker(queue = "backlog", durable, concurrency = 1, stale_after = "10m")]
async fn backlogged(job: Job<Invoice>, seen: State<Seen>, door: State<Door>) {
    seen.push(job.order);
    if job.order == 1 {
        door.pass().await;
    }
}

/// The value of a `worker="backlogged"` series on the page.
fn backlogged_series(page: &str, name: &str) -> f64 {
    let prefix = format!("{name}{{worker=\"backlogged\"}} ");
    page.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{name} in {page}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_backlog_s_age_comes_from_the_database_and_makes_its_worker_stale() {
    let pg = pg().await;
    let backlog = pg.queue::<Invoice>("backlog").expect("valid");
    let (seen, door) = (Seen::default(), Door::closed());
    let host = Host::builder()
        .backend(pg.clone())
        .state(seen.clone())
        .state(door.clone())
        .worker(backlogged)
        .env_overrides(false)
        .build()
        .expect("builds");
    let (handle, running) = start(host);
    let status = || handle.workers().pop().expect("one worker");
    // Job 1 takes the only slot and holds it; job 2 has been due for an hour.
    backlog
        .enqueue(pg.pool(), &Invoice { order: 1 })
        .await
        .expect("enqueues");
    until("job 1 running", async || seen.orders() == [1]).await;
    let due = std::time::SystemTime::now() - Duration::from_hours(1);
    backlog
        .enqueue_with(
            pg.pool(),
            &Invoice { order: 2 },
            worker_postgres::Opts::new().run_at(due),
        )
        .await
        .expect("enqueues");
    // Read with the queue's counts (every 5 s), on the database's clock.
    until("the backlog's age", async || {
        status().queue.and_then(|q| q.oldest_wait_seconds).is_some()
    })
    .await;
    let worker = status();
    let waited = worker.queue.as_ref().and_then(|q| q.oldest_wait_seconds);
    assert!(
        waited.is_some_and(|w| (3600.0..3700.0).contains(&w)),
        "{worker:?}"
    );
    assert_eq!(worker.state, worker_core::WorkerState::Stale, "{worker:?}");
    assert_eq!(worker.health, worker_core::Health::Unhealthy, "{worker:?}");
    let reason = worker.reason.as_deref().unwrap_or_default();
    assert!(
        reason.starts_with("the oldest job has waited 1h") && reason.ends_with("(stale_after 10m)"),
        "{reason}"
    );
    let page = handle.render_metrics();
    let gauge = backlogged_series(&page, "worker_queue_oldest_wait_seconds");
    assert!((3600.0..3700.0).contains(&gauge), "{page}");
    promtool(&page);

    // Once job 2 ran, nothing waits: the next read says so, and the worker is healthy again.
    door.open();
    until("job 2 to run", async || seen.orders() == [1, 2]).await;
    until("the backlog gone", async || {
        let worker = status();
        worker
            .queue
            .is_some_and(|q| q.oldest_wait_seconds.is_none())
            && worker.health == worker_core::Health::Healthy
    })
    .await;
    let page = handle.render_metrics();
    assert!(
        backlogged_series(&page, "worker_queue_oldest_wait_seconds") == 0.0,
        "{page}"
    );
    handle.shutdown();
    running.await.expect("no panic").expect("stops cleanly");
}
