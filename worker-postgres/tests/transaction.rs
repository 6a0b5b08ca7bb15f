//! A per-attempt sqlx `Transaction` as a `ScopedMut` resource, against the real server
//! (`WORKER_TEST_DATABASE_URL`, started by `scripts/test`): the body writes through it, the
//! finish step commits it after a successful attempt and rolls it back after any other, and a
//! commit the server refuses fails the attempt.

use sqlx::{AssertSqlSafe, Postgres as Pg, Transaction};
use worker_core::testing::run_once;
use worker_core::{BoxError, Ctx, Host, HostBuilder, Outcome, ScopedMut, State, worker};
use worker_postgres::Postgres;

mod common;

type Tx = Transaction<'static, Pg>;

/// A schema of the test's own with an `orders` table whose key is checked at commit, so a
/// duplicate fails the commit rather than the insert.
async fn pg() -> Postgres {
    let pg = common::schema("tx").await;
    sqlx::query(AssertSqlSafe(format!(
        "CREATE TABLE {}.orders (id int NOT NULL, attempt int NOT NULL, \
         UNIQUE (id) DEFERRABLE INITIALLY DEFERRED)",
        pg.schema_name()
    )))
    .execute(pg.pool())
    .await
    .expect("creates the orders table");
    pg
}

/// A host builder whose attempts each begin a transaction, committed after a success and
/// rolled back otherwise.
fn transactional(pg: &Postgres) -> HostBuilder {
    let pool = pg.pool().clone();
    Host::builder().state(pg.clone()).scoped_mut(
        move |_ctx: Ctx| {
            let pool = pool.clone();
            async move { pool.begin().await }
        },
        |tx: Tx, outcome: Outcome| async move {
            match outcome {
                Outcome::Success => tx.commit().await,
                _ => tx.rollback().await,
            }
        },
    )
}

async fn insert(tx: &mut Tx, pg: &Postgres, id: i32, ctx: &Ctx) -> Result<(), BoxError> {
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO {}.orders (id, attempt) VALUES ($1, $2)",
        pg.schema_name()
    )))
    .bind(id)
    .bind(i32::try_from(ctx.attempt())?)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The orders committed, as `(id, attempt)`.
async fn orders(pg: &Postgres) -> Vec<(i32, i32)> {
    sqlx::query_as(AssertSqlSafe(format!(
        "SELECT id, attempt FROM {}.orders ORDER BY id, attempt",
        pg.schema_name()
    )))
    .fetch_all(pg.pool())
    .await
    .expect("reads the orders")
}

#[worker(every = "1h")]
async fn books(mut tx: ScopedMut<Tx>, pg: State<Postgres>, ctx: Ctx) -> Result<(), BoxError> {
    insert(&mut tx, &pg, 1, &ctx).await?;
    insert(&mut tx, &pg, 2, &ctx).await
}

#[worker(every = "1h", retry = 1, backoff = "10ms")]
async fn books_then_fails(
    mut tx: ScopedMut<Tx>,
    pg: State<Postgres>,
    ctx: Ctx,
) -> Result<(), BoxError> {
    insert(&mut tx, &pg, 3, &ctx).await?;
    Err("the payment provider refused".into())
}

#[worker(every = "1h")]
async fn books_then_panics(mut tx: ScopedMut<Tx>, pg: State<Postgres>, ctx: Ctx) {
    insert(&mut tx, &pg, 4, &ctx).await.expect("inserts");
    panic!("a bug after the insert");
}

/// Books order 1 again: the insert passes, the deferred key check fails the commit.
#[worker(every = "1h")]
async fn books_a_duplicate(
    mut tx: ScopedMut<Tx>,
    pg: State<Postgres>,
    ctx: Ctx,
) -> Result<(), BoxError> {
    insert(&mut tx, &pg, 1, &ctx).await
}

#[tokio::test]
async fn a_transaction_per_attempt_commits_on_success_and_rolls_back_otherwise() {
    let pg = pg().await;

    let run = run_once(books, transactional(&pg)).await.unwrap();
    assert_eq!(run.result, Outcome::Success, "{:?}", run.error);
    assert_eq!(orders(&pg).await, [(1, 1), (2, 1)], "committed");

    let run = run_once(books_then_fails, transactional(&pg))
        .await
        .unwrap();
    assert_eq!((run.result, run.attempts), (Outcome::Failure, 2));
    let run = run_once(books_then_panics, transactional(&pg))
        .await
        .unwrap();
    assert_eq!(run.result, Outcome::Panic);
    assert_eq!(orders(&pg).await, [(1, 1), (2, 1)], "both rolled back");

    let run = run_once(books_a_duplicate, transactional(&pg))
        .await
        .unwrap();
    assert_eq!(run.result, Outcome::Failure);
    let error = run.error.unwrap_or_default();
    assert!(
        error.starts_with("finishing the scoped `sqlx_core::transaction::Transaction<")
            && error.contains("duplicate key value violates unique constraint"),
        "the commit's failure fails the attempt: {error}"
    );
    assert_eq!(orders(&pg).await, [(1, 1), (2, 1)]);

    let open: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
         AND state LIKE 'idle in transaction%'",
    )
    .fetch_one(pg.pool())
    .await
    .unwrap();
    assert_eq!(open, 0, "no transaction left open");
}
