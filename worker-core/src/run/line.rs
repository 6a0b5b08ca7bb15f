//! The log line of an attempt that ended: at the run's span, or a span for the line alone when
//! the run's is not recorded; repeats within a window are counted, not written.

use std::time::Duration;

use tokio::time::Instant;
use tracing::Span;

use crate::error::Chain;
use crate::observe::{Outcome, quiet};
use crate::run::{Attempt, Runner, span};
use crate::worker::handler::Body;

/// How an attempt ended, as its log line says.
pub(super) struct Line<'a> {
    /// The attempt's span (recorded or not).
    pub(super) span: &'a Span,
    pub(super) fields: span::Fields<'a>,
    pub(super) outcome: Outcome,
    /// The delay before the retry, if there is one.
    pub(super) retry: Option<Duration>,
    pub(super) permanent: bool,
}

impl<B: Body> Runner<'_, B> {
    /// Logs how an attempt ended; a line identical to the worker's last one within
    /// [`REPEAT_WINDOW`](crate::observe::quiet::REPEAT_WINDOW) is counted instead (see `quiet`).
    pub(super) fn log_attempt(&self, result: &Attempt, line: &Line<'_>) {
        let Line {
            outcome,
            retry,
            permanent,
            ..
        } = *line;
        let kind = (outcome as u8) << 2 | u8::from(retry.is_some()) << 1 | u8::from(permanent);
        let key = match result {
            Attempt::Ok => {
                let _entered = line.span.enter();
                tracing::debug!("run succeeded");
                return;
            }
            Attempt::Err(err) => quiet::key(kind, format_args!("{}", Chain(&**err))),
            Attempt::Panic(caught) => quiet::key(
                kind,
                format_args!("{} {:?}", caught.message, caught.location),
            ),
            Attempt::Timeout(limit) => quiet::key(kind, format_args!("{limit:?}")),
        };
        let Some(repeated) = self.env.tracked.quiet.admit(key, Instant::now()) else {
            return;
        };
        let delay = retry.map(|d| worker_keys::show(d).to_string());
        let result_label = outcome.as_str();
        let span = span::for_line(line.span, line.fields, result_label);
        let _entered = span.enter();
        match result {
            Attempt::Ok => {}
            Attempt::Panic(caught) => tracing::error!(
                panic = %caught.message,
                location = caught.location.as_deref().unwrap_or("unknown"),
                backtrace = caught.backtrace.as_deref(),
                repeated,
                "worker panicked"
            ),
            Attempt::Err(err) if retry.is_some() => tracing::warn!(
                error = %Chain(&**err),
                retry_in = delay.as_deref(),
                repeated,
                "attempt failed; retrying"
            ),
            Attempt::Err(err) if permanent => tracing::error!(
                result = result_label,
                error = %Chain(&**err),
                repeated,
                "run failed with a permanent error; not retried"
            ),
            Attempt::Err(err) => tracing::error!(
                result = result_label,
                error = %Chain(&**err),
                repeated,
                "run failed"
            ),
            Attempt::Timeout(limit) if retry.is_some() => tracing::warn!(
                timeout = %worker_keys::show(*limit),
                retry_in = delay.as_deref(),
                repeated,
                "attempt timed out; retrying"
            ),
            Attempt::Timeout(limit) => tracing::error!(
                result = result_label,
                timeout = %worker_keys::show(*limit),
                repeated,
                "run timed out"
            ),
        }
    }
}
