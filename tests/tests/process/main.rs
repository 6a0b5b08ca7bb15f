//! The tests that run real processes (the example binaries, Prometheus, Chromium and
//! chromedriver), one module per concern, in one test binary.
//!
//! They time real processes on a machine that may have two cores, so the tests of one module
//! run in parallel as they did when each module was a binary of its own, but two modules never
//! run at once: every test holds [`support::module_turn`] for its module.

mod support;

mod abuse;
mod browser;
mod process;
mod prometheus;
mod replicas;
