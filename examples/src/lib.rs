//! Runnable examples of `worker-core`: see `examples/`.
