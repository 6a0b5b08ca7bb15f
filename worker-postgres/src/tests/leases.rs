//! Singleton leases: taking, renewing, resigning and taking over, ticks claimed once, and the
//! fence a holder's own transaction checks.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use super::{LEASE, past, pg};
use crate::{Error, Postgres};

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + secs, 0).expect("in range")
}

#[tokio::test]
async fn one_holder_at_a_time_and_every_takeover_bumps_the_fence() {
    let pg = pg().await;
    assert_eq!(pg.lease("rollup").await.expect("reads"), None);
    let a = pg
        .acquire("rollup", "a", LEASE)
        .await
        .expect("runs")
        .expect("free");
    assert_eq!(a.fence.token(), 1);
    assert!(
        pg.acquire("rollup", "b", LEASE)
            .await
            .expect("runs")
            .is_none(),
        "held by a"
    );
    assert!(
        pg.renew(&a.fence, "a", LEASE)
            .await
            .expect("renews")
            .is_some()
    );
    assert!(
        pg.renew(&a.fence, "b", LEASE)
            .await
            .expect("runs")
            .is_none(),
        "not b's"
    );
    let record = pg.lease("rollup").await.expect("reads").expect("exists");
    assert_eq!(
        (record.holder.as_deref(), record.fence, record.held),
        (Some("a"), 1, true)
    );

    // Resigned: free at once.
    assert!(pg.resign(&a.fence).await.expect("resigns"));
    let record = pg.lease("rollup").await.expect("reads").expect("exists");
    assert_eq!(
        (record.holder, record.held, record.expires_at),
        (None, false, None)
    );
    let b = pg
        .acquire("rollup", "b", LEASE)
        .await
        .expect("runs")
        .expect("free");
    assert_eq!(b.fence.token(), 2);
    assert!(
        pg.renew(&a.fence, "a", LEASE)
            .await
            .expect("runs")
            .is_none(),
        "a's fence is stale"
    );
    assert!(
        !pg.resign(&a.fence).await.expect("runs"),
        "nor can a resign b's lease"
    );

    // Expired: taken over.
    let short = Duration::from_millis(1);
    assert!(
        pg.renew(&b.fence, "b", short)
            .await
            .expect("renews")
            .is_some()
    );
    past(short).await;
    assert!(
        pg.renew(&b.fence, "b", LEASE)
            .await
            .expect("runs")
            .is_none(),
        "expired leases are not renewed"
    );
    let c = pg
        .acquire("rollup", "c", LEASE)
        .await
        .expect("runs")
        .expect("expired");
    assert_eq!(c.fence.token(), 3);
    // Other names are other leases.
    assert_eq!(
        pg.acquire("other", "a", LEASE)
            .await
            .expect("runs")
            .expect("free")
            .fence
            .token(),
        1
    );
}

#[tokio::test]
async fn each_scheduled_instant_is_claimed_once_across_holders() {
    let pg = pg().await;
    let a = pg
        .acquire("tick", "a", LEASE)
        .await
        .expect("runs")
        .expect("free");
    assert_eq!((a.last_tick, a.last_done), (None, None));
    assert!(pg.claim_tick(&a.fence, at(60)).await.expect("claims"));
    assert!(
        !pg.claim_tick(&a.fence, at(60)).await.expect("runs"),
        "claimed already"
    );
    assert!(
        !pg.claim_tick(&a.fence, at(0)).await.expect("runs"),
        "earlier than the last"
    );
    assert!(pg.finish_tick(&a.fence, at(60)).await.expect("finishes"));
    assert!(pg.claim_tick(&a.fence, at(120)).await.expect("claims"));

    // The next holder learns where its predecessor was, and cannot claim what it claimed.
    pg.resign(&a.fence).await.expect("resigns");
    let b = pg
        .acquire("tick", "b", LEASE)
        .await
        .expect("runs")
        .expect("free");
    assert_eq!((b.last_tick, b.last_done), (Some(at(120)), Some(at(60))));
    assert!(!pg.claim_tick(&b.fence, at(120)).await.expect("runs"));
    assert!(
        !pg.claim_tick(&a.fence, at(180)).await.expect("runs"),
        "a lost the lease"
    );
    assert!(pg.claim_tick(&b.fence, at(180)).await.expect("claims"));
    let record = pg.lease("tick").await.expect("reads").expect("exists");
    assert_eq!(record.last_tick, Some(at(180).into()));
}

/// The same schema through connections that give up waiting for a lock after 500 ms, so a
/// statement that would wait on a lock fails with `lock_not_available` instead.
async fn impatient(pg: &Postgres) -> Postgres {
    let url = std::env::var("WORKER_TEST_DATABASE_URL").expect("set, as pg() checked");
    let options: PgConnectOptions = url.parse().expect("a URL");
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .connect_with(options.options([("lock_timeout", "500ms")]))
        .await
        .expect("connects");
    Postgres::new(pool).schema(pg.schema_name()).expect("valid")
}

fn is_lock_timeout(err: &Error) -> bool {
    matches!(err, Error::Database(sqlx::Error::Database(db)) if db.code().as_deref() == Some("55P03"))
}

#[tokio::test]
async fn a_fenced_transaction_blocks_a_takeover_but_not_the_holders_renewals() {
    let pg = pg().await;
    let other = impatient(&pg).await;
    let a = pg
        .acquire("fenced", "a", LEASE)
        .await
        .expect("runs")
        .expect("free");

    let mut tx = pg.pool().begin().await.expect("begins");
    a.fence.check(&mut *tx).await.expect("a holds the lease");

    // While the fenced transaction is open, the holder renews, claims and finishes ticks
    // without waiting for it (a wait would fail with a lock timeout here)…
    assert!(
        other
            .renew(&a.fence, "a", LEASE)
            .await
            .expect("not blocked")
            .is_some()
    );
    assert!(
        other
            .claim_tick(&a.fence, at(60))
            .await
            .expect("not blocked")
    );
    assert!(
        other
            .finish_tick(&a.fence, at(60))
            .await
            .expect("not blocked")
    );
    // … and even lets the lease run out,
    assert!(
        other
            .renew(&a.fence, "a", Duration::ZERO)
            .await
            .expect("not blocked")
            .is_some()
    );
    past(Duration::ZERO).await;
    // but a takeover of the expired lease waits for the transaction.
    let err = other
        .acquire("fenced", "b", LEASE)
        .await
        .expect_err("blocked");
    assert!(is_lock_timeout(&err), "{err:?}");
    tx.commit().await.expect("commits");

    let b = other
        .acquire("fenced", "b", LEASE)
        .await
        .expect("runs")
        .expect("expired and free");
    assert_eq!(b.fence.token(), 2);
    let mut tx = pg.pool().begin().await.expect("begins");
    let err = a.fence.check(&mut *tx).await.expect_err("a lost it");
    assert!(
        matches!(&err, Error::LeaseLost { name, fence: 1 } if name == "fenced"),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "the lease `fenced` is no longer held with fence 1"
    );
    tx.rollback().await.expect("rolls back");
    let mut tx = pg.pool().begin().await.expect("begins");
    b.fence.check(&mut *tx).await.expect("b holds it");
    tx.commit().await.expect("commits");
}
