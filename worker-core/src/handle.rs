//! [`HostHandle`]: reaching a host from anywhere, before and while it runs.

use std::fmt;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::status::Board;

/// A handle to a [`Host`](crate::Host), made by [`Host::handle`](crate::Host::handle); cloning is
/// cheap.
#[derive(Clone)]
pub struct HostHandle {
    shutdown: CancellationToken,
    board: Arc<Board>,
}

impl HostHandle {
    pub(crate) fn new(shutdown: CancellationToken, board: Arc<Board>) -> Self {
        Self { shutdown, board }
    }

    /// Asks the host to stop gracefully; returns at once.
    pub fn shutdown(&self) {
        self.shutdown.cancel();
    }

    /// The page `/metrics` serves, in the Prometheus text format (version 0.0.4): every
    /// worker's series, after the metrics your code records through the `metrics` facade when
    /// the host installed its recorder (see [`HostBuilder::serve`](crate::HostBuilder::serve)).
    #[must_use]
    pub fn render_metrics(&self) -> String {
        self.board.render_metrics()
    }
}

impl fmt::Debug for HostHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostHandle")
            .field("shutdown_requested", &self.shutdown.is_cancelled())
            .finish_non_exhaustive()
    }
}
