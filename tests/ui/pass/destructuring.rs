// Arguments may be patterns, as in any function.
use worker_core::{BoxError, Ctx, FromScope, Host, Scope, Scoped, State, worker};

struct Db {
    url: &'static str,
}

struct Conn(u64);

/// An extractor with named fields, to destructure with braces.
struct Tag {
    worker: String,
    attempt: u32,
}

impl FromScope for Tag {
    async fn from_scope(scope: &Scope) -> Result<Self, BoxError> {
        let ctx = scope.ctx();
        Ok(Tag {
            worker: ctx.worker().to_owned(),
            attempt: ctx.attempt(),
        })
    }
}

#[worker(every = "10s")]
async fn sync(
    State(db): State<Db>,
    Scoped(conn): Scoped<Conn>,
    Tag { worker, attempt: _ }: Tag,
    mut ctx: Ctx,
    _: Ctx,
) {
    assert!(!db.url.is_empty());
    assert_eq!(worker, "sync");
    let _ = conn.0;
    ctx = ctx.clone();
    let _ = ctx;
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let host = Host::builder()
        .state(Db { url: "postgres://" })
        .scoped(|ctx: Ctx| async move { Ok::<_, std::io::Error>(Conn(ctx.run_id())) })
        .worker(sync)
        .build();
    assert!(host.is_ok());
    sync(
        State::new(Db { url: "postgres://" }),
        Scoped(std::sync::Arc::new(Conn(0))),
        Tag {
            worker: "sync".to_owned(),
            attempt: 1,
        },
        Ctx::for_test("sync"),
        Ctx::for_test("sync"),
    )
    .await;
}
