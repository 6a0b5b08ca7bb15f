//! The backend against a real PostgreSQL server. Each test works in a schema of its own, on the
//! server that `scripts/test` starts (`WORKER_TEST_DATABASE_URL`).

mod jobs;
mod leases;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::{JobState, Postgres};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Invoice {
    order: i64,
}

const LEASE: Duration = Duration::from_secs(30);
const BY: &str = "test/1";

/// A migrated schema of this test's own.
pub(super) async fn pg() -> Postgres {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let url = std::env::var("WORKER_TEST_DATABASE_URL").unwrap_or_else(|_| {
        panic!(
            "WORKER_TEST_DATABASE_URL is not set: run scripts/test, which starts a throw-away \
             PostgreSQL, or point it at a database the tests may create schemas in"
        )
    });
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(8)
        .connect(&url)
        .await
        .expect("the test database accepts connections");
    let schema = format!(
        "t_{}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .expect("after 1970")
            .subsec_nanos()
    );
    let pg = Postgres::new(pool).schema(&schema).expect("a valid name");
    assert_eq!(pg.migrate().await.expect("migrates"), vec![1]);
    pg
}

pub(super) async fn state(pg: &Postgres, id: i64) -> Option<JobState> {
    pg.job(id).await.expect("reads").map(|job| job.state)
}

/// Waits until the database's clock has passed every lease granted so far with `lease`.
pub(super) async fn past(lease: Duration) {
    tokio::time::sleep(lease + Duration::from_millis(20)).await;
}
