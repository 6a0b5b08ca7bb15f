//! Retries within a run: how long to wait between attempts, and errors that say not to retry.
//!
//! The one retry model: a run makes up to `retry + 1` attempts. An attempt that returns an
//! error or times out is retried after a backoff delay, unless the error is [`Permanent`], the
//! run was cancelled, or no retry is left. A panic is never retried.

use std::fmt;
use std::time::Duration;

use crate::error::BoxError;

/// How the delay grows from one retry to the next (`backoff_kind`).
///
/// Every kind is capped at `backoff_max`, and each delay is drawn at random from the upper half
/// of its nominal value (equal jitter), so workers that failed together do not retry in lockstep
/// yet never wait less than half the nominal delay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum BackoffKind {
    /// `backoff` before every retry.
    Constant,
    /// `backoff × n` before retry `n`.
    Linear,
    /// `backoff × 2^(n-1)` before retry `n`. The default.
    #[default]
    Exponential,
}

impl BackoffKind {
    /// The name used in `#[worker(backoff_kind = ..)]` and in configuration.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Constant => "constant",
            Self::Linear => "linear",
            Self::Exponential => "exponential",
        }
    }

    /// The nominal delay before retry number `retry` (1 for the first), before jitter.
    #[must_use]
    pub fn nominal(self, base: Duration, max: Duration, retry: u32) -> Duration {
        let retry = retry.max(1);
        let delay = match self {
            Self::Constant => base,
            Self::Linear => base.saturating_mul(retry),
            Self::Exponential => base.saturating_mul(2_u32.saturating_pow(retry - 1)),
        };
        delay.min(max)
    }
}

/// The delay before retry number `retry`: the kind's nominal delay, with equal jitter.
pub(crate) fn backoff(kind: BackoffKind, base: Duration, max: Duration, retry: u32) -> Duration {
    let nominal = kind.nominal(base, max, retry);
    let half = nominal / 2;
    let spread = u64::try_from(nominal.saturating_sub(half).as_nanos()).unwrap_or(u64::MAX);
    half + Duration::from_nanos(fastrand::u64(0..=spread))
}

/// An error that retrying will not fix (bad input, a missing permission): the run fails at once
/// with result `failure`, whatever `retry` says.
///
/// ```
/// use worker_core::{BoxError, Permanent};
///
/// async fn import(payload: &str) -> Result<(), BoxError> {
///     if payload.is_empty() {
///         return Err(Permanent::new("empty payload").into());
///     }
///     Ok(())
/// }
/// ```
///
/// It is found wherever it sits in the error that the body returns, in every shape errors are
/// usually written in:
///
/// | the body returns | found |
/// |---|---|
/// | `Err(Permanent::new(e).into())`, into `BoxError`, `anyhow::Error` or your own type | yes |
/// | `Err(permanent)?` in a fn returning `anyhow::Result` | yes |
/// | an `anyhow::Error` with `.context(..)` around a `Permanent` | yes |
/// | your error type holding it as `source()` (thiserror's `#[source]` or `#[from]`) | yes |
/// | your error type forwarding to it (thiserror's `#[error(transparent)]`) | yes |
/// | `std::io::Error::other(permanent)` | yes |
/// | an error built from its text only (`anyhow!("{permanent}")`) | no: the error is gone |
///
/// Wrappers such as thiserror's `transparent`, `anyhow::Error` converted into a boxed error
/// and `std::io::Error` report the wrapped error's `source()` rather than the wrapped error,
/// so a `Permanent` gives a marker as its own source (displayed as `permanent`) for the check
/// to find. The run's logs and history leave the marker out of the error's text; other chain
/// printers, such as anyhow's `{:#}`, show it last: `empty payload: permanent`.
pub struct Permanent(Marker);

/// The source of every [`Permanent`]: what a wrapper that skips the `Permanent` itself still
/// hands on.
struct Marker(BoxError);

impl Permanent {
    /// Marks `error` as not worth retrying.
    pub fn new(error: impl Into<BoxError>) -> Self {
        Self(Marker(error.into()))
    }

    /// The wrapped error.
    #[must_use]
    pub fn into_inner(self) -> BoxError {
        self.0.0
    }

    /// Whether `error`, or any error in its `source()` chain, is [`Permanent`].
    #[must_use]
    pub fn is_permanent(error: &(dyn std::error::Error + 'static)) -> bool {
        let mut current = Some(error);
        while let Some(err) = current {
            if err.is::<Permanent>() || err.is::<Marker>() {
                return true;
            }
            current = err.source();
        }
        false
    }

    /// Whether `error` is the marker a `Permanent` gives as its source, which the run's logs
    /// leave out of an error's text.
    pub(crate) fn is_marker(error: &(dyn std::error::Error + 'static)) -> bool {
        error.is::<Marker>()
    }
}

impl fmt::Debug for Permanent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Permanent").field(&self.0.0).finish()
    }
}

impl fmt::Display for Permanent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.0, f)
    }
}

impl std::error::Error for Permanent {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

impl fmt::Debug for Marker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Permanent")
    }
}

impl fmt::Display for Marker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("permanent")
    }
}

impl std::error::Error for Marker {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_by_kind_within_bounds_and_stop_at_the_maximum() {
        let base = Duration::from_millis(100);
        let max = Duration::from_secs(1);
        let cases = [
            (BackoffKind::Exponential, [100, 200, 400, 800, 1000, 1000]),
            (BackoffKind::Linear, [100, 200, 300, 400, 500, 600]),
            (BackoffKind::Constant, [100, 100, 100, 100, 100, 100]),
        ];
        for (kind, nominals) in cases {
            for (retry, nominal) in (1..).zip(nominals) {
                let nominal = Duration::from_millis(nominal);
                assert_eq!(kind.nominal(base, max, retry), nominal, "{kind:?} {retry}");
                for _ in 0..200 {
                    let delay = backoff(kind, base, max, retry);
                    assert!(
                        delay >= nominal / 2 && delay <= nominal,
                        "{retry}: {delay:?}"
                    );
                }
            }
        }
        assert_eq!(BackoffKind::Exponential.nominal(base, max, 40), max);
    }

    #[test]
    fn permanent_is_found_in_the_source_chain() {
        #[derive(Debug)]
        struct Outer(Permanent);
        impl fmt::Display for Outer {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("outer")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let plain: BoxError = "transient".into();
        assert!(!Permanent::is_permanent(&*plain));
        let direct: BoxError = Permanent::new("bad input").into();
        assert!(Permanent::is_permanent(&*direct));
        let nested: BoxError = Box::new(Outer(Permanent::new("bad input")));
        assert!(Permanent::is_permanent(&*nested));
    }
}
