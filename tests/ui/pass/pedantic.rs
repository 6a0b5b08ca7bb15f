// The expansion is clean under the strictest lints rustc knows here (clippy's own run is
// `tests/tests/expansion_lints.rs`).
#![deny(warnings, clippy::pedantic)]

use worker_core::{Ctx, Host, Scoped, State, worker};

struct Db;
struct Conn;

/// Uses every key and several extractors.
#[worker(
    every = "10s",
    after = "1s",
    missed = delay,
    retry = 3,
    backoff = "200ms",
    backoff_max = "5s",
    timeout = "30s",
    name = "pedantic"
)]
async fn sync_orders(db: State<Db>, conn: Scoped<Conn>, ctx: Ctx) -> anyhow::Result<()> {
    let _ = (&*db, &*conn, ctx.run_id());
    Ok(())
}

#[worker(every = "1s")]
async fn heartbeat() {}

fn main() {
    let host = Host::builder()
        .state(Db)
        .scoped(|_: Ctx| async { Ok::<_, std::io::Error>(Conn) })
        .worker(sync_orders)
        .worker(heartbeat)
        .build();
    assert!(host.is_ok());
}
