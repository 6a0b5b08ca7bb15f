//! The [`HostBuilder`] calls that say where overrides come from.

use std::path::PathBuf;

use crate::host::HostBuilder;

impl HostBuilder {
    /// Overrides the workers' declared configuration from the TOML file at `path`, read when
    /// the host is built; without this call, the file named by the `WORKER_CONFIG` environment
    /// variable is read, if it is set.
    ///
    /// The file sets keys per worker (`[workers.sync_orders]` then `every = "30s"`); environment
    /// variables override the file. See the [`config`](crate::config) module for the format,
    /// the keys and the precedence. A file that is missing or invalid, a bad value, an unknown
    /// key or an unknown worker makes [`build`](Self::build) fail, naming the file and the key.
    ///
    /// ```no_run
    /// # use worker_core::Host;
    /// let host = Host::builder().config_file("/etc/my-service/workers.toml").build()?;
    /// # Ok::<(), worker_core::Error>(())
    /// ```
    pub fn config_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.config.file = Some(path.into());
        self
    }

    /// Whether `WORKER__<NAME>__<KEY>` environment variables override the workers'
    /// configuration (`WORKER__SYNC_ORDERS__EVERY=30s`); default true. See the
    /// [`config`](crate::config) module. Turning them off does not affect `WORKER_CONFIG`.
    pub fn env_overrides(mut self, enabled: bool) -> Self {
        self.config.env_off = !enabled;
        self
    }

    /// Names this host's configuration variables after `stem` instead of `WORKER`:
    /// `<STEM>__<NAME>__<KEY>` for the overrides and `<STEM>_CONFIG` for the file. Give each
    /// host its own when a process runs several: every host fails to build on a variable that
    /// names a worker it does not have, so hosts that shared the `WORKER__` variables would
    /// refuse each other's.
    ///
    /// `stem` is capital letters, digits and `_`, starting with a letter; another stem makes
    /// [`build`](Self::build) fail.
    ///
    /// ```
    /// # use worker_core::{Host, Worker};
    /// # use std::time::Duration;
    /// let worker = || Worker::builder("sync_orders").every(Duration::from_secs(10)).handler(|| async {});
    /// let billing = Host::builder()
    ///     .env_prefix("BILLING")
    ///     .worker(worker())
    ///     // Not read by this host: it names another host's worker, `reports`.
    ///     .config_env([("BILLING__SYNC_ORDERS__EVERY", "30s"), ("WORKER__REPORTS__EVERY", "1h")])
    ///     .build()?;
    /// # Ok::<(), worker_core::Error>(())
    /// ```
    pub fn env_prefix(mut self, stem: impl Into<String>) -> Self {
        self.config.stem = Some(stem.into());
        self
    }

    /// Reads the configuration variables (`WORKER__<NAME>__<KEY>` and `WORKER_CONFIG`) from
    /// `vars` instead of the process environment; meant for tests, which should not change the
    /// environment of a process whose tests run in parallel.
    ///
    /// ```
    /// # use worker_core::{Host, Worker};
    /// # use std::time::Duration;
    /// let worker = Worker::builder("sync_orders")
    ///     .every(Duration::from_secs(10))
    ///     .handler(|| async {});
    /// let host = Host::builder()
    ///     .worker(worker)
    ///     .config_env([("WORKER__SYNC_ORDERS__EVERY", "30s")])
    ///     .build()?;
    /// # Ok::<(), worker_core::Error>(())
    /// ```
    pub fn config_env<K, V>(mut self, vars: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<String>,
        V: Into<String>,
    {
        self.config.env = Some(
            vars.into_iter()
                .map(|(name, value)| (name.into(), value.into()))
                .collect(),
        );
        self
    }
}
