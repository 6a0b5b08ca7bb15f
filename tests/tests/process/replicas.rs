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

use crate::support::{Scratch, example, free_addr, get, module_turn, replicas_tables};

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

fn start(scratch: &Scratch, url: &str, schema: &str, name: &str, work_ms: u64) -> Replica {
    let addr = free_addr();
    let (out, err) = scratch.log(name);
    let child = Command::new(example("replicas"))
        .env("DATABASE_URL", url)
        .env("WORKER_SCHEMA", schema)
        .env("REPLICA", name)
        .env("METRICS_ADDR", &addr)
        .env("RUST_LOG", "warn")
        .env("REPLICAS_WORK_MS", work_ms.to_string())
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
        sqlx::raw_sql(sqlx::AssertSqlSafe(replicas_tables(schema)))
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

/// What the replicas' pages counted, summed.
struct Counted {
    /// Leases that expired and were taken back.
    rescued: u64,
    /// Attempts after a failed one.
    retries: u64,
    /// Results refused as stale.
    stale: u64,
    /// Outcomes the database did not record (it was restarting): those jobs run again.
    unrecorded: u64,
}

impl Counted {
    fn of(live: &[Replica]) -> Self {
        let sum = |name| live.iter().map(|r| metric(r, name)).sum();
        Self {
            rescued: sum("worker_jobs_rescued_total"),
            retries: sum("worker_run_retries_total"),
            stale: sum("worker_jobs_stale_total"),
            unrecorded: sum("worker_jobs_unrecorded_total"),
        }
    }
}

/// Every committed order's effect once, no rolled-back order run, every order run twice run
/// again in a later attempt, and, when `bounded`, each such rerun counted by the replicas (a
/// rescue, a retry or an unrecorded outcome) and no result refused as stale; returns how many
/// ran twice.
fn check(
    rt: &tokio::runtime::Runtime,
    pg: &Postgres,
    committed: &BTreeSet<i64>,
    counted: &Counted,
    bounded: bool,
) -> usize {
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
    let Counted {
        rescued,
        retries,
        stale,
        unrecorded,
    } = counted;
    // Through a database restart the replicas' counts fall short of the reruns (a response lost
    // with its connection leaves no trace on either side): every rerun is still a later
    // attempt, and each effect is written once.
    assert!(
        !bounded || twice.len() as u64 <= rescued + retries + unrecorded,
        "{} orders ran twice, but only {rescued} leases were rescued, {retries} attempts retried \
         and {unrecorded} outcomes unrecorded: {:?}",
        twice.len(),
        twice.iter().take(10).collect::<Vec<_>>()
    );
    assert!(!bounded || *stale == 0, "{stale} completions were refused");
    eprintln!(
        "replicas: {} effects, {} orders ran twice, {rescued} leases rescued, {retries} attempts \
         retried, {unrecorded} outcomes unrecorded",
        effects.len(),
        twice.len()
    );
    twice.len()
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

    // Orders of up to 40 ms, so that the killed replica has orders in flight.
    let r1 = start(&scratch, &url, &schema, "r1", 40);
    let r2 = start(&scratch, &url, &schema, "r2", 40);
    let r3 = start(&scratch, &url, &schema, "r3", 40);
    let deadline = Instant::now() + Duration::from_mins(3);
    while count("SELECT count(*) FROM {schema}.effects WHERE replica = 'r1'") < 300 {
        assert!(Instant::now() < deadline, "r1 processed too little");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Killed mid-run: its jobs in flight keep their leases until they expire.
    let Replica { mut child, .. } = r1;
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    let r1 = start(&scratch, &url, &schema, "r1-again", 40);

    while count("SELECT count(*) FROM {schema}.jobs") > 0 {
        assert!(
            Instant::now() < deadline,
            "not every job finished: {} left",
            count("SELECT count(*) FROM {schema}.jobs")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let live = [r1, r2, r3];
    let counted = Counted::of(&live);
    for replica in live {
        terminate(replica);
    }
    let twice = check(&rt, &pg, &committed, &counted, true);
    // No attempt failed: every later attempt is the rerun of a job whose lease r1 held when
    // it was killed, taken back by a rescue.
    assert!(
        counted.retries <= counted.rescued,
        "{} retries, {} rescued",
        counted.retries,
        counted.rescued
    );
    assert!(
        twice <= 8,
        "more orders ran twice than r1 had slots: {twice}"
    );
    rt.block_on(
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
            .execute(pg.pool()),
    )
    .expect("drops");
}

/// `scripts/postgres` with `args`; returns what it printed.
fn postgres_script(args: &[&str]) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/postgres");
    let output = Command::new(script)
        .args(args)
        .output()
        .expect("scripts/postgres runs");
    assert!(
        output.status.success(),
        "scripts/postgres {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// Stops the test's own server, however the test ends.
struct Server(String);

impl Drop for Server {
    fn drop(&mut self) {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/postgres");
        let _ = Command::new(script).args(["stop", &self.0]).output();
    }
}

#[test]
fn replicas_reconnect_after_the_database_restarts_and_lose_nothing() {
    let _turn = module_turn(module_path!());
    let scratch = Scratch::new("restart", &["s1", "s2"]);
    // A server of this test's own, since it restarts it.
    let data = scratch.dir.join("pg");
    let data = data.to_str().expect("a UTF-8 path").to_owned();
    let url = postgres_script(&["start", &data, "56432"]);
    let _server = Server(data.clone());
    let schema = "restart";
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let (pg, committed) = setup(&rt, &url, schema);
    let count = |sql: &str| -> Option<i64> {
        rt.block_on(
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql.replace("{schema}", schema)))
                .fetch_one(pg.pool()),
        )
        .ok()
    };
    let s1 = start(&scratch, &url, schema, "s1", 5);
    let s2 = start(&scratch, &url, schema, "s2", 5);
    let deadline = Instant::now() + Duration::from_mins(3);
    while count("SELECT count(*) FROM {schema}.effects").unwrap_or(0) < 2_000 {
        assert!(
            Instant::now() < deadline,
            "the replicas processed too little"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    postgres_script(&["restart", &data]);
    // Every connection of every pool, the test's included, was cut; each reconnects.
    while count("SELECT count(*) FROM {schema}.jobs") != Some(0) {
        assert!(
            Instant::now() < deadline,
            "not every job finished after the restart"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let live = [s1, s2];
    let counted = Counted::of(&live);
    for replica in live {
        terminate(replica);
    }
    check(&rt, &pg, &committed, &counted, false);
}

/// The value of the one series `series` (name and labels) on a replica's page; `None` while
/// the replica does not serve it yet.
fn try_series(replica: &Replica, series: &str) -> Option<u64> {
    let (status, page) = get(&replica.addr, "/metrics").ok()?;
    assert_eq!(status, 200);
    page.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

fn series(replica: &Replica, series: &str) -> u64 {
    try_series(replica, series).unwrap_or_else(|| panic!("no {series} on the page"))
}

/// The holder of the roll-up's lease among `live`, by its page.
fn holder(live: &[Option<Replica>]) -> Option<usize> {
    live.iter().position(|r| {
        r.as_ref()
            .and_then(|r| try_series(r, "worker_lease_held{worker=\"rollup\"}"))
            == Some(1)
    })
}

#[test]
#[allow(
    clippy::too_many_lines,
    reason = "one scenario, read top to bottom: start, two kills, the checks"
)]
fn a_singleton_runs_each_instant_once_while_its_holder_is_killed_twice() {
    let _turn = module_turn(module_path!());
    let scratch = Scratch::new("singleton", &["t1", "t2", "t3", "t4", "t5"]);
    let url = database_url();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .subsec_nanos();
    let schema = format!("singleton_{}_{nanos}", std::process::id());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let pg = rt.block_on(async {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(2)
            .connect(&url)
            .await
            .expect("connects");
        let pg = Postgres::new(pool).schema(&schema).expect("valid");
        pg.migrate().await.expect("migrates");
        sqlx::raw_sql(sqlx::AssertSqlSafe(replicas_tables(&schema)))
            .execute(pg.pool())
            .await
            .expect("creates");
        pg
    });
    let query = |sql: &str| -> Vec<(f64, String)> {
        rt.block_on(
            sqlx::query_as(sqlx::AssertSqlSafe(sql.replace("{schema}", &schema)))
                .fetch_all(pg.pool()),
        )
        .expect("reads")
    };
    let now = || -> f64 {
        rt.block_on(
            sqlx::query_scalar("SELECT extract(epoch FROM clock_timestamp())::float8")
                .fetch_one(pg.pool()),
        )
        .expect("reads the time")
    };

    // Built before the clock starts.
    example("replicas");
    let started = Instant::now();
    let mut live: Vec<Option<Replica>> = ["t1", "t2", "t3"]
        .iter()
        .map(|name| Some(start(&scratch, &url, &schema, name, 5)))
        .collect();
    let mut names = ["t1", "t2", "t3"];
    let mut failovers = Vec::new();
    for (kill_at, again) in [
        (Duration::from_secs(8), "t4"),
        (Duration::from_secs(18), "t5"),
    ] {
        while started.elapsed() < kill_at {
            std::thread::sleep(Duration::from_millis(50));
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        let index = loop {
            if let Some(index) = holder(&live) {
                break index;
            }
            assert!(Instant::now() < deadline, "no replica holds the lease");
            std::thread::sleep(Duration::from_millis(50));
        };
        let Replica { mut child, .. } = live[index].take().expect("live");
        let killed = names[index];
        child.kill().expect("SIGKILL");
        child.wait().expect("reaped");
        let killed_at = now();
        // Another replica runs a tick within the lease (3 s) and a second.
        let deadline = Instant::now() + Duration::from_secs(10);
        let first = loop {
            let after = query(&format!(
                "SELECT extract(epoch FROM min(ran_at))::float8, min(replica) FROM {{schema}}.tick_runs \
                 WHERE ran_at > to_timestamp({killed_at}) AND replica <> '{killed}' HAVING count(*) > 0"
            ));
            if let Some((at, _)) = after.first() {
                break *at;
            }
            assert!(Instant::now() < deadline, "no replica took over");
            std::thread::sleep(Duration::from_millis(50));
        };
        failovers.push(first - killed_at);
        live[index] = Some(start(&scratch, &url, &schema, again, 5));
        names[index] = again;
    }
    while started.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let skipped: u64 = live
        .iter()
        .flatten()
        .map(|r| {
            series(
                r,
                "worker_runs_skipped_total{worker=\"rollup\",reason=\"missed\"}",
            )
        })
        .sum();
    let nobody: u64 = live
        .iter()
        .flatten()
        .map(|r| series(r, "worker_lease_missed_ticks_total{worker=\"rollup\"}"))
        .sum();
    let acquired: u64 = live
        .iter()
        .flatten()
        .map(|r| series(r, "worker_lease_acquired_total{worker=\"rollup\"}"))
        .sum();
    for replica in live.into_iter().flatten() {
        terminate(replica);
    }

    // No instant ran twice: every run of a tick is recorded before its fenced write.
    let seconds_of = |sql: &str| -> Vec<i64> {
        rt.block_on(
            sqlx::query_scalar(sqlx::AssertSqlSafe(sql.replace("{schema}", &schema)))
                .fetch_all(pg.pool()),
        )
        .expect("reads")
    };
    let runs =
        query("SELECT extract(epoch FROM at)::float8, replica FROM {schema}.tick_runs ORDER BY at");
    let mut instants =
        seconds_of("SELECT extract(epoch FROM at)::bigint FROM {schema}.tick_runs ORDER BY at");
    let total = instants.len();
    instants.dedup();
    assert_eq!(instants.len(), total, "an instant ran twice: {runs:?}");
    // Each run of a tick wrote once, on whole seconds, and the instants nobody ran while the
    // lease changed hands were replayed (`missed = burst`): the only instants missing are at
    // most one per kill, claimed by the killed holder as it died.
    let ticks =
        query("SELECT extract(epoch FROM at)::float8, replica FROM {schema}.ticks ORDER BY at");
    let seconds =
        seconds_of("SELECT extract(epoch FROM at)::bigint FROM {schema}.ticks ORDER BY at");
    let (first, last) = (seconds[0], seconds[seconds.len() - 1]);
    let missing = usize::try_from(last - first + 1).expect("ordered") - seconds.len();
    assert!(missing <= 2, "{missing} instants missing: {seconds:?}");
    assert!(seconds.len() >= 25, "{} ticks in 30 s", seconds.len());
    for failover in &failovers {
        assert!(
            *failover < 4.0,
            "failover took {failover:.2} s: {failovers:?}"
        );
    }
    // Three holders wrote, each under a fence of its own: the first and two successors.
    let holders = query("SELECT count(DISTINCT fence)::float8, '' FROM {schema}.ticks");
    assert!(holders[0].0 >= 3.0, "{holders:?} fences in {ticks:?}");
    assert!(
        acquired >= 1,
        "the survivors took the lease over {acquired} times"
    );
    // The survivor that took over from the second killed holder found the instants it missed.
    assert!(nobody >= 1, "no missed instant counted");
    eprintln!(
        "singleton: {} ticks from {first} to {last}, {missing} lost with a killed holder, \
         failovers {failovers:.2?} s, {nobody} found missed at takeovers and replayed, {skipped} skipped as missed, \
         {acquired} takeovers by the survivors",
        seconds.len()
    );
    rt.block_on(
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
            .execute(pg.pool()),
    )
    .expect("drops");
}
