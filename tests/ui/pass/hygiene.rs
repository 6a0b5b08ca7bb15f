// The expansion names everything by absolute path: shadowing std's names at the call site
// changes nothing.
#![allow(dead_code, unused_macros)]

struct Result;
struct Option;
struct Box;
struct Pin;
struct Future;
struct Send;
struct Sync;
struct Clone;
struct Copy;
struct Debug;
struct Deref;
struct Duration;
struct String;
struct Vec;
struct Ok;
struct Err;
struct Into;
struct From;
struct CALL;
mod core {}
mod std {}
mod alloc {}
mod worker_core_private {}
macro_rules! format {
    ($($t:tt)*) => {
        compile_error!("the expansion used the caller's `format!`")
    };
}
macro_rules! unreachable {
    ($($t:tt)*) => {
        compile_error!("the expansion used the caller's `unreachable!`")
    };
}

#[worker_core::worker(every = "10s", retry = 1, timeout = "1s", missed = skip)]
async fn sync_orders(
    ctx: worker_core::Ctx,
    db: worker_core::State<u8>,
) -> ::std::result::Result<(), ::std::io::Error> {
    let _ = (ctx, db);
    ::std::result::Result::Ok(())
}

fn main() {
    let host = worker_core::Host::builder()
        .state(0_u8)
        .worker(sync_orders)
        .build();
    ::std::assert!(host.is_ok());
}
