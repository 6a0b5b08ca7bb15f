//! The README's Rust blocks, compiled and run as the doctests of this crate (`cargo test -p
//! worker-tests --doc`), so that what a new user copies from it builds as written.
#![doc = include_str!("../../README.md")]
