//! Tests of `worker-core`: see `tests/tests/` and `tests/ui/`.
