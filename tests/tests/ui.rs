//! Compile-time behaviour of `#[worker]`: every mistake in `ui/fail` is reported where it was
//! made, with the message in its `.stderr` snapshot, and every case in `ui/pass` builds.
//!
//! Regenerate the snapshots with `TRYBUILD=overwrite cargo test -p worker-tests --test ui`, then
//! read each `.stderr` as a user would before committing it.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("ui/fail/*.rs");
    t.pass("ui/pass/*.rs");
}
