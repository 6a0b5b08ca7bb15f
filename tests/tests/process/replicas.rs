//! Three replicas of `examples/replicas.rs` on one PostgreSQL database (the one `scripts/test`
//! starts, `WORKER_TEST_DATABASE_URL`): 10,000 orders, a tenth of them enqueued in transactions
//! that roll back, one replica killed (`SIGKILL`) mid-run and restarted. Every committed order's effect is
//! written exactly once (the effects table's primary key would refuse a second), no rolled-back
//! order ever runs, and every order that ran twice is one whose lease expired with the killed
//! replica, as the survivors' `worker_jobs_rescued_total` counts.

use std::collections::{BTreeSet, HashMap};
use std::process::{Child, Command};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use worker_postgres::Postgres;

use crate::support::{Scratch, example, free_addr, get, module_turn};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Order {
    id: i64,
}

const ORDERS: i64 = 10_000;

fn database_url() -> String {
    std::env::var("WORKER_TEST_DATABASE_URL").unwrap_or_else(|_| {
        panic!(
            "WORKER_TEST_DATABASE_URL is not set: run scripts/test, which starts a throw-away \
             PostgreSQL, or point it at a database the tests may create schemas in"
        )
    })
}

struct Replica {
    child: Child,
    addr: String,
}

fn start(scratch: &Scratch, url: &str, schema: &str, name: &str) -> Replica {
    let addr = free_addr();
    let (out, err) = scratch.log(name);
    let child = Command::new(example("replicas"))
        .env("DATABASE_URL", url)
        .env("WORKER_SCHEMA", schema)
        .env("REPLICA", name)
        .env("METRICS_ADDR", &addr)
        .env("RUST_LOG", "warn")
        .env_remove("REPLICAS_ENQUEUE")
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("the replicas example starts");
    Replica { child, addr }
}

/// The sum of `name`'s series on a replica's page.
fn metric(replica: &Replica, name: &str) -> u64 {
    let (status, page) = get(&replica.addr, "/metrics").expect("the replica serves /metrics");
    assert_eq!(status, 200);
    page.lines()
        .filter(|line| line.starts_with(name) && line[name.len()..].starts_with('{'))
        .filter_map(|line| line.rsplit_once(' ')?.1.parse::<u64>().ok())
        .sum()
}

fn terminate(replica: Replica) {
    let Replica { mut child, .. } = replica;
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().expect("polls") {
            assert!(status.success(), "a replica stopped with {status}");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "a replica did not stop within 30 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The schema, the example's tables, and the orders: every tenth batch rolled back. Returns
/// the orders committed.
fn setup(rt: &tokio::runtime::Runtime, url: &str, schema: &str) -> (Postgres, BTreeSet<i64>) {
    let pg = rt.block_on(async {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            .connect(url)
            .await
            .expect("connects");
        let pg = Postgres::new(pool).schema(schema).expect("valid");
        pg.migrate().await.expect("migrates");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE TABLE IF NOT EXISTS {schema}.effects (order_id bigint PRIMARY KEY, replica text NOT NULL);
             CREATE TABLE IF NOT EXISTS {schema}.runs (order_id bigint NOT NULL, replica text NOT NULL, attempt int NOT NULL);"
        )))
        .execute(pg.pool())
        .await
        .expect("creates");
        pg
    });
    let mut committed = BTreeSet::new();
    rt.block_on(async {
        let orders = pg.queue::<Order>("orders").expect("valid");
        for (batch, start) in (0..ORDERS).step_by(100).enumerate() {
            let jobs: Vec<Order> = (start..start + 100).map(|id| Order { id }).collect();
            let mut tx = pg.pool().begin().await.expect("begins");
            orders
                .enqueue_many(&mut *tx, &jobs)
                .await
                .expect("enqueues");
            if batch % 10 == 3 {
                tx.rollback().await.expect("rolls back");
            } else {
                tx.commit().await.expect("commits");
                committed.extend(start..start + 100);
            }
        }
    });
    (pg, committed)
}

/// Every committed order's effect once, no rolled-back order run, and every order run twice
/// a rescued one.
fn check(
    rt: &tokio::runtime::Runtime,
    pg: &Postgres,
    committed: &BTreeSet<i64>,
    rescued: u64,
    stale: u64,
) {
    let schema = pg.schema_name();
    let effects: Vec<i64> = rt
        .block_on(
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT order_id FROM {schema}.effects ORDER BY 1"
            )))
            .fetch_all(pg.pool()),
        )
        .expect("reads");
    assert_eq!(
        effects.len(),
        committed.len(),
        "one effect per committed order"
    );
    assert!(
        effects.iter().copied().eq(committed.iter().copied()),
        "exactly the committed orders"
    );
    let runs: Vec<(i64, i32)> = rt
        .block_on(
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT order_id, attempt FROM {schema}.runs"
            )))
            .fetch_all(pg.pool()),
        )
        .expect("reads");
    assert!(
        runs.iter().all(|(id, _)| committed.contains(id)),
        "a rolled-back order ran"
    );
    let mut per_order: HashMap<i64, Vec<i32>> = HashMap::new();
    for (id, attempt) in runs {
        per_order.entry(id).or_default().push(attempt);
    }
    let twice: Vec<(&i64, &Vec<i32>)> = per_order.iter().filter(|(_, a)| a.len() > 1).collect();
    // A second run is a later attempt: the first lost its lease with the killed replica.
    for (id, attempts) in &twice {
        let mut attempts = (*attempts).clone();
        attempts.sort_unstable();
        attempts.dedup();
        assert!(
            attempts.len() > 1,
            "order {id} ran twice in one attempt: {attempts:?}"
        );
    }
    assert!(
        twice.len() as u64 <= rescued,
        "{} orders ran twice, but only {rescued} leases were rescued",
        twice.len()
    );
    assert!(
        twice.len() <= 8,
        "more orders ran twice than r1 had slots: {}",
        twice.len()
    );
    assert_eq!(stale, 0, "no completion was refused");
    eprintln!(
        "replicas: {} effects, {} orders ran twice, {rescued} leases rescued",
        effects.len(),
        twice.len()
    );
}

#[test]
fn three_replicas_run_every_committed_job_once_through_a_sigkill() {
    let _turn = module_turn(module_path!());
    let scratch = Scratch::new("replicas", &["r1", "r2", "r3", "r1-again"]);
    let url = database_url();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .subsec_nanos();
    let schema = format!("replicas_{}_{nanos}", std::process::id());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");

    let (pg, committed) = setup(&rt, &url, &schema);
    assert_eq!(committed.len(), 9_000);
    let count = |sql: &str| -> i64 {
        rt.block_on(
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql.replace("{schema}", &schema)))
                .fetch_one(pg.pool()),
        )
        .expect("counts")
    };

    let r1 = start(&scratch, &url, &schema, "r1");
    let r2 = start(&scratch, &url, &schema, "r2");
    let r3 = start(&scratch, &url, &schema, "r3");
    let deadline = Instant::now() + Duration::from_mins(3);
    while count("SELECT count(*) FROM {schema}.effects WHERE replica = 'r1'") < 300 {
        assert!(Instant::now() < deadline, "r1 processed too little");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Killed mid-run: its jobs in flight keep their leases until they expire.
    let Replica { mut child, .. } = r1;
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    let r1 = start(&scratch, &url, &schema, "r1-again");

    while count("SELECT count(*) FROM {schema}.jobs") > 0 {
        assert!(
            Instant::now() < deadline,
            "not every job finished: {} left",
            count("SELECT count(*) FROM {schema}.jobs")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let live = [r1, r2, r3];
    let rescued: u64 = live
        .iter()
        .map(|r| metric(r, "worker_jobs_rescued_total"))
        .sum();
    let stale: u64 = live
        .iter()
        .map(|r| metric(r, "worker_jobs_stale_total"))
        .sum();
    for replica in live {
        terminate(replica);
    }

    check(&rt, &pg, &committed, rescued, stale);
    rt.block_on(
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
            .execute(pg.pool()),
    )
    .expect("drops");
}
