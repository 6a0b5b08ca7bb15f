//! The in-process behaviour tests of `worker-core`, one module per concern, in one test binary
//! rather than one binary per file, each linking axum, tokio and the rest on its own. Tests of
//! different modules run in parallel threads, so nothing here installs process-wide state: the tests that must have binaries of their own, `panic_hook.rs` (the
//! process's panic hook), `spans.rs` (tracing caches per process which callsites are enabled)
//! and `expansion_lints.rs` (lint levels for a whole crate).

mod common;

mod cancellation;
mod circuit;
mod config;
mod cron;
mod finish;
mod hardening;
mod health;
mod keys;
mod metrics;
mod overlap;
mod panics;
mod policies;
mod properties;
mod queues;
mod registration;
mod retry;
mod roster;
mod run_ids;
mod schedule;
mod scope;
mod supervision;
