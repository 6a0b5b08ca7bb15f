//! Singleton schedules on real hosts sharing a real PostgreSQL server (the one `scripts/test`
//! starts, `WORKER_TEST_DATABASE_URL`): one host runs each tick and the other follows; a
//! graceful stop hands the lease over at once; a crashed holder's successor takes over within
//! the lease and replays what nobody ran; no instant ever runs twice (a primary key says so).

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sqlx::AssertSqlSafe;
use worker_core::{BoxError, Ctx, Host, HostHandle, IntoWorker, State, WorkerState, worker};
use worker_postgres::{FenceCheck as _, Postgres};

mod common;
use common::{database_url, promtool};

/// A migrated schema of this test's own, with a table of the ticks run.
async fn pg() -> Postgres {
    let pg = common::schema("s").await;
    let schema = pg.schema_name().to_owned();
    sqlx::query(AssertSqlSafe(format!(
        "CREATE TABLE {schema}.ticks (at timestamptz PRIMARY KEY, replica text NOT NULL, \
         fence bigint NOT NULL)"
    )))
    .execute(pg.pool())
    .await
    .expect("creates the ticks table");
    pg
}

/// Which host a run ran on.
#[derive(Debug, Clone)]
struct Replica(&'static str);

/// Records its tick under the primary key `at`, in a transaction fenced by the lease: a second
/// run of one instant would fail on the key, and a run whose lease was taken over commits
/// nothing.
async fn record(ctx: Ctx, pg: State<Postgres>, replica: State<Replica>) -> Result<(), BoxError> {
    let fence = ctx.fence().ok_or("a singleton's tick has a fence")?;
    let mut tx = pg.pool().begin().await?;
    fence.check(&mut *tx).await?;
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO {}.ticks (at, replica, fence) VALUES ($1, $2, $3)",
        pg.schema_name()
    )))
    .bind(DateTime::<Utc>::from(ctx.scheduled_time()))
    .bind((*replica).0)
    .bind(fence.token())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

#[worker(every = "1s", singleton, lease = "2s")]
async fn rollup(ctx: Ctx, pg: State<Postgres>, replica: State<Replica>) -> Result<(), BoxError> {
    record(ctx, pg, replica).await
}

#[worker(every = "1s", singleton, lease = "2s", missed = burst)]
async fn ledger(ctx: Ctx, pg: State<Postgres>, replica: State<Replica>) -> Result<(), BoxError> {
    record(ctx, pg, replica).await
}

fn host(pg: &Postgres, replica: &'static str, worker: impl IntoWorker) -> Host {
    Host::builder()
        .backend(pg.clone())
        .state(pg.clone())
        .state(Replica(replica))
        .worker(worker)
        .env_overrides(false)
        .build()
        .expect("builds")
}

fn start(
    host: Host,
) -> (
    HostHandle,
    tokio::task::JoinHandle<Result<(), worker_core::Error>>,
) {
    let handle = host.handle();
    (handle, tokio::spawn(host.run_until(std::future::pending())))
}

/// The ticks run, oldest first: (instant, replica).
async fn ticks(pg: &Postgres) -> Vec<(DateTime<Utc>, String)> {
    sqlx::query_as(AssertSqlSafe(format!(
        "SELECT at, replica FROM {}.ticks ORDER BY at",
        pg.schema_name()
    )))
    .fetch_all(pg.pool())
    .await
    .expect("reads the ticks")
}

/// Waits (on the real clock: leases run on the database's time) until `done` holds.
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

fn status(handle: &HostHandle) -> worker_core::WorkerStatus {
    handle.workers().into_iter().next().expect("one worker")
}

fn metric(handle: &HostHandle, line: &str) -> bool {
    handle.render_metrics().lines().any(|l| l == line)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_replica_runs_each_tick_the_other_follows_and_takes_over_at_a_graceful_stop() {
    let pg = pg().await;
    let (a, running_a) = start(host(&pg, "a", rollup));
    until("a to hold the lease", async || {
        status(&a).lease.is_some_and(|l| l.held)
    })
    .await;
    let (b, running_b) = start(host(&pg, "b", rollup));
    until("three ticks", async || ticks(&pg).await.len() >= 3).await;

    let (lease_a, lease_b) = (status(&a).lease.unwrap(), status(&b).lease.unwrap());
    assert!(lease_a.held && !lease_b.held, "{lease_a:?} {lease_b:?}");
    until("b to show a as the holder", async || {
        status(&b).lease.unwrap().holder == lease_a.holder
    })
    .await;
    assert_eq!(status(&b).state, WorkerState::Follower);
    assert!(metric(
        &b,
        "worker_state{worker=\"rollup\",state=\"follower\"} 1"
    ));
    assert!(metric(&a, "worker_lease_held{worker=\"rollup\"} 1"));
    assert!(metric(&b, "worker_lease_held{worker=\"rollup\"} 0"));
    assert!(ticks(&pg).await.iter().all(|(_, r)| r == "a"));
    // The lease's series pass Prometheus's own check, on the holder's page and a follower's.
    promtool(&a.render_metrics());
    promtool(&b.render_metrics());

    // A graceful stop gives the lease up: b takes over within its next ask (a second), not
    // after the lease.
    let before = ticks(&pg).await.len();
    a.shutdown();
    running_a.await.expect("no panic").expect("stops cleanly");
    let stopped = Instant::now();
    until("b to hold the lease", async || {
        status(&b).lease.is_some_and(|l| l.held)
    })
    .await;
    assert!(
        stopped.elapsed() < Duration::from_millis(1500),
        "{:?}",
        stopped.elapsed()
    );
    until("b's ticks", async || {
        ticks(&pg).await.iter().skip(before).any(|(_, r)| r == "b")
    })
    .await;
    assert!(metric(
        &b,
        "worker_lease_acquired_total{worker=\"rollup\"} 1"
    ));
    assert!(metric(&b, "worker_lease_fence{worker=\"rollup\"} 2"));
    b.shutdown();
    running_b.await.expect("no panic").expect("stops cleanly");

    // Each instant once (the key), on whole seconds, and every run succeeded.
    let all = ticks(&pg).await;
    assert!(
        all.iter().all(|(at, _)| at.timestamp_subsec_micros() == 0),
        "{all:?}"
    );
    for handle in [&a, &b] {
        let runs = status(handle).runs;
        assert_eq!(runs["failure"], 0, "{runs:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_holders_successor_takes_over_within_the_lease_and_replays_what_nobody_ran() {
    let pg = pg().await;
    // a runs on a runtime of its own, with a pool of its own, so that dropping the runtime
    // drops everything a holds at once, as a crash would: nothing is given up.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime");
    let (url, schema) = (database_url(), pg.schema_name().to_owned());
    let (started, a) = tokio::sync::oneshot::channel();
    runtime.spawn(async move {
        let pool = sqlx::PgPool::connect(&url).await.expect("connects");
        let pg = Postgres::new(pool).schema(&schema).expect("a valid name");
        let host = host(&pg, "a", ledger);
        let _ = started.send(host.handle());
        host.run_until(std::future::pending()).await
    });
    let a = a.await.expect("a started");
    until("a to hold the lease", async || {
        status(&a).lease.is_some_and(|l| l.held)
    })
    .await;
    let (b, running_b) = start(host(&pg, "b", ledger));
    until("two ticks", async || ticks(&pg).await.len() >= 2).await;
    // Crash a just after a tick.
    let seen = ticks(&pg).await.len();
    until("a's next tick", async || ticks(&pg).await.len() > seen).await;
    runtime.shutdown_background();
    let crashed = Instant::now();
    let last_of_a = ticks(&pg).await.last().expect("a tick").0;
    until("b to hold the lease", async || {
        status(&b).lease.is_some_and(|l| l.held)
    })
    .await;
    // Within the lease (2 s) and a second.
    assert!(
        crashed.elapsed() < Duration::from_secs(3),
        "{:?}",
        crashed.elapsed()
    );
    until("b's ticks to catch up", async || {
        let all = ticks(&pg).await;
        all.iter().filter(|(_, r)| r == "b").count() >= 4
    })
    .await;
    b.shutdown();
    running_b.await.expect("no panic").expect("stops cleanly");

    // `burst` replays every instant nobody ran: one row per second, no gap, none twice.
    let all = ticks(&pg).await;
    for pair in all.windows(2) {
        assert_eq!(
            (pair[1].0 - pair[0].0).num_milliseconds(),
            1000,
            "a gap or a repeat in {all:?}"
        );
    }
    let replayed = all
        .iter()
        .filter(|(at, r)| r == "b" && *at > last_of_a)
        .count();
    assert!(replayed >= 4, "{all:?}");
    assert_eq!(status(&b).runs["failure"], 0);
}

#[tokio::test]
async fn a_singleton_without_a_backend_that_keeps_leases_refuses_to_build() {
    let err = Host::builder()
        .worker(rollup)
        .env_overrides(false)
        .build()
        .expect_err("no backend");
    assert!(err.is_lease_backend(), "{err}");
    assert_eq!(err.worker(), Some("rollup"));
    assert!(err.to_string().contains("singleton"), "{err}");
}
