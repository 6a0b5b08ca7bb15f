//! What the integration tests against the server share.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::SystemTime;

use worker_postgres::Postgres;

/// The server the tests use: the one `scripts/test` starts.
pub(crate) fn database_url() -> String {
    std::env::var("WORKER_TEST_DATABASE_URL").unwrap_or_else(|_| {
        panic!(
            "WORKER_TEST_DATABASE_URL is not set: run scripts/test, which starts a throw-away \
             PostgreSQL, or point it at a database the tests may create schemas in"
        )
    })
}

/// A migrated schema of the calling test's own, named `<prefix>_<process>_<n>_<nanos>`.
pub(crate) async fn schema(prefix: &str) -> Postgres {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(8)
        .connect(&database_url())
        .await
        .expect("the test database accepts connections");
    let schema = format!(
        "{prefix}_{}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .expect("after 1970")
            .subsec_nanos()
    );
    let pg = Postgres::new(pool).schema(&schema).expect("a valid name");
    pg.migrate().await.expect("migrates");
    pg
}

/// `promtool check metrics` accepts `page` (installed by scripts/test).
#[allow(dead_code, reason = "not every test binary checks a page")]
pub(crate) fn promtool(page: &str) {
    use std::io::Write as _;
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("`promtool` is on PATH: run the suite with scripts/test, which installs it");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(page.as_bytes())
        .expect("writes");
    let output = child.wait_with_output().expect("promtool ends");
    assert!(
        output.status.success(),
        "promtool refused the page: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
