//! The `worker.run` span of each attempt, at the worker's [`SpanLevel`].
//!
//! At the default level (`debug`), a service whose subscriber logs at INFO pays nothing per
//! run for the span: the callsite is disabled, and a disabled span costs a load of its
//! interest. The attempt's failure lines must still say which run they are about, so when the
//! span is disabled they are logged in a span of the same name and fields opened for them
//! alone, at ERROR (enabled wherever the line is).

use tracing::Span;

use crate::observe::status::Trigger;

/// The level of a worker's `worker.run` spans (`span_level`).
///
/// A `tracing` subscriber records a span only when its filter enables the span's level, as
/// with events: at `debug` (the default), a service logging at INFO does not pay for a span
/// per run, and the lines a body logs carry no `worker.run{..}` context; at `info`, they do.
/// Their target is `worker_core::span`: `worker_core::span=debug` in an `EnvFilter` enables
/// them without any other DEBUG line.
/// Failures are logged with the run's fields either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SpanLevel {
    /// Recorded by subscribers at INFO and below, as most services run.
    Info,
    /// Recorded by subscribers at DEBUG and TRACE (the default).
    #[default]
    Debug,
    /// Recorded by subscribers at TRACE only.
    Trace,
}

impl SpanLevel {
    /// The option's name, as the key is written.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Debug => "debug",
            Self::Trace => "trace",
        }
    }
}

/// The target of every `worker.run` span, so a filter can enable the spans alone
/// (`worker_core::span=debug`) without the rest of the crate's DEBUG lines.
pub(crate) const TARGET: &str = "worker_core::span";

/// What a `worker.run` span says about its attempt.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fields<'a> {
    pub(crate) worker: &'a str,
    pub(crate) run_id: u64,
    pub(crate) attempt: u32,
    pub(crate) trigger: Trigger,
    /// A queue job's id; empty for scheduled runs.
    pub(crate) job_id: Option<u64>,
}

/// One callsite per level: a span's level is part of its static metadata.
macro_rules! run_span {
    ($level:expr, $fields:expr, $result:expr) => {{
        let Fields {
            worker,
            run_id,
            attempt,
            trigger,
            job_id,
        } = $fields;
        tracing::span!(
            target: TARGET,
            $level,
            "worker.run",
            worker = %worker,
            run_id,
            attempt,
            trigger = trigger.as_str(),
            // Set at creation (empty for scheduled runs): a later `record` costs a subscriber
            // like fmt's a second formatting pass.
            job_id,
            result = $result,
        )
    }};
}

/// The span of an attempt, at `level`; its `result` is recorded when the attempt ends.
pub(crate) fn attempt(level: SpanLevel, fields: Fields<'_>) -> Span {
    let empty = tracing::field::Empty;
    match level {
        SpanLevel::Info => run_span!(tracing::Level::INFO, fields, empty),
        SpanLevel::Debug => run_span!(tracing::Level::DEBUG, fields, empty),
        SpanLevel::Trace => run_span!(tracing::Level::TRACE, fields, empty),
    }
}

/// The span an attempt's failure is logged in: its own span when a subscriber records it,
/// else a span of the same name and fields for the line alone.
pub(crate) fn for_line(span: &Span, fields: Fields<'_>, result: &str) -> Span {
    if span.is_disabled() {
        run_span!(tracing::Level::ERROR, fields, result)
    } else {
        span.clone()
    }
}
