//! [`HttpLimits`]: the limits of the built-in HTTP listener.

use std::time::Duration;

use crate::error::{Error, Kind};

/// Limits of the built-in HTTP listener; see [`HostBuilder::http_limits`](crate::HostBuilder::http_limits).
///
/// ```
/// use std::time::Duration;
/// use worker_core::{Host, HttpLimits};
///
/// let builder = Host::builder()
///     .serve("127.0.0.1:9464")
///     .http_limits(HttpLimits::default().max_connections(64).idle_timeout(Duration::from_secs(30)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    pub(super) max_connections: u32,
    pub(super) header_timeout: Duration,
    pub(super) idle_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            max_connections: 256,
            header_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_mins(1),
        }
    }
}

impl HttpLimits {
    /// How many connections may be open at once (`http_max_connections`, 1 to 65536); default
    /// 256. One more closes the connection that has been quiet the longest.
    #[must_use]
    pub fn max_connections(mut self, max: u32) -> Self {
        self.max_connections = max;
        self
    }

    /// How long a client may take to send a request's headers, counted from when the
    /// connection is ready for a request: when it opens, and after each answer, so an idle
    /// keep-alive connection is closed after this long too (`http_header_timeout`, 1 ms to 365
    /// days); default 5 s.
    #[must_use]
    pub fn header_timeout(mut self, timeout: Duration) -> Self {
        self.header_timeout = timeout;
        self
    }

    /// How long a connection may stay open with no byte sent or received, whatever it is
    /// doing: a client that stopped reading a long answer (`http_idle_timeout`, 1 ms to 365
    /// days); default 1 min.
    #[must_use]
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    pub(crate) fn check(&self) -> Result<(), Error> {
        let host = |key, value: String, range: worker_keys::Range| {
            Err(Error::new(Kind::Host {
                key,
                value,
                expected: range.expected().to_string(),
            }))
        };
        let range = |key| worker_keys::range(key).unwrap_or_else(|| unreachable!("{key}"));
        let show = |d: Duration| format!("\"{}\"", worker_keys::show(d));
        let max = range("http_max_connections");
        if !max.contains_count(u64::from(self.max_connections)) {
            return host(
                "http_max_connections",
                self.max_connections.to_string(),
                max,
            );
        }
        for (key, value) in [
            ("http_header_timeout", self.header_timeout),
            ("http_idle_timeout", self.idle_timeout),
        ] {
            if !range(key).contains_duration(value) {
                return host(key, show(value), range(key));
            }
        }
        Ok(())
    }
}
