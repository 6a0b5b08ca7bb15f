//! The host's error type.

use std::fmt;

/// A boxed error, as returned by worker bodies, extractors and resource factories.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why the host could not be built, could not start, or did not stop cleanly.
///
/// The type is opaque; ask it questions (`is_config()`, `is_shutdown_timeout()`, ...) instead of
/// matching on its shape, so new cases can be added without breaking callers. Its `Debug` output
/// is the same readable sentence as `Display` (plus the source chain), so `fn main() -> Result<(),
/// worker_core::Error>` prints something a person can act on and exits non-zero.
pub struct Error {
    kind: Kind,
}

#[derive(Debug)]
pub(crate) enum Kind {
    /// A worker's declaration or configuration is invalid.
    Config {
        worker: String,
        /// The key, the value and what was expected, worded by the shared key table.
        refusal: worker_keys::Refusal,
    },
    /// A host setting is out of its range.
    Host {
        key: &'static str,
        value: String,
        expected: String,
    },
    /// A configuration override (file or environment variable) is invalid, or the configuration
    /// file cannot be read.
    #[cfg(feature = "config")]
    Override {
        worker: Option<String>,
        /// Where: `path: workers.name.key`, `environment variable WORKER__NAME__KEY`, a path.
        location: String,
        /// The value as written in the source.
        value: Option<String>,
        message: String,
        /// Why the file could not be read.
        source: Option<std::io::Error>,
    },
    /// A worker's argument needs something that was never registered on the builder.
    Missing {
        worker: String,
        argument: String,
        message: String,
    },
    /// A queue worker's declaration does not hold together (its job argument, its hooks, a
    /// second consumer of its queue), or a worker on a schedule takes a job.
    Queue { worker: String, message: String },
    /// A singleton worker's host has no backend that keeps leases.
    Lease { worker: String, message: String },
    /// A producer asked for a queue nobody consumes.
    UnknownQueue { queue: String, known: Vec<String> },
    /// A producer asked for a queue with another payload type than its consumer's.
    QueueType {
        queue: String,
        asked: &'static str,
        carries: &'static str,
        worker: String,
    },
    /// A dead job to re-enqueue is not (or no longer) in the dead list, or the queue refused it.
    Requeue {
        worker: String,
        job: u64,
        why: String,
    },
    /// An admin action on a durable job could not be carried out.
    JobAction {
        worker: String,
        job: u64,
        action: &'static str,
        why: String,
    },
    /// Two workers share one name.
    DuplicateName(String),
    /// An admin action named a worker the host does not have.
    UnknownWorker(String),
    /// Run now was asked of a worker that cannot run: failed, stopped, or its host stopping.
    NotRunning { worker: String, why: String },
    /// A worker could not be added to or removed from its host: the host stopped, or the
    /// worker is being removed already.
    Roster {
        worker: String,
        action: &'static str,
        why: String,
    },
    /// A removed worker's runs were still going at the shutdown timeout and were aborted.
    RemoveTimeout {
        timeout: std::time::Duration,
        /// The one worker removed.
        overran: Vec<String>,
    },
    /// The HTTP listener could not be bound.
    #[cfg_attr(not(feature = "http"), allow(dead_code, reason = "only `serve` binds"))]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    /// Some workers did not stop within the shutdown timeout and were aborted.
    ShutdownTimeout {
        timeout: std::time::Duration,
        overran: Vec<String>,
    },
    /// Workers exceeded their restart intensity with `escalate = stop_host`.
    Escalated(Vec<String>),
    /// Installing a signal handler failed.
    Signal(std::io::Error),
    /// The `metrics` recorder asked for could not be installed.
    #[cfg_attr(
        not(feature = "prometheus"),
        allow(dead_code, reason = "only `install_recorder` installs")
    )]
    Recorder(String),
}

impl Error {
    pub(crate) fn new(kind: Kind) -> Self {
        Self { kind }
    }

    pub(crate) fn refused(worker: &str, refusal: worker_keys::Refusal) -> Self {
        Self::new(Kind::Config {
            worker: worker.to_owned(),
            refusal,
        })
    }

    #[cfg(feature = "config")]
    pub(crate) fn overridden(
        worker: Option<&str>,
        location: String,
        value: Option<String>,
        message: impl Into<String>,
    ) -> Self {
        Self::new(Kind::Override {
            worker: worker.map(str::to_owned),
            location,
            value,
            message: message.into(),
            source: None,
        })
    }

    /// The configuration file at `location` could not be read: `message`, because of `source`.
    #[cfg(feature = "config")]
    pub(crate) fn unreadable(location: String, message: String, source: std::io::Error) -> Self {
        Self::new(Kind::Override {
            worker: None,
            location,
            value: None,
            message,
            source: Some(source),
        })
    }

    #[cfg(feature = "config")]
    pub(crate) fn kind(&self) -> &Kind {
        &self.kind
    }

    /// The declaration or configuration of a worker is invalid (bad value, no trigger, ...), or
    /// a configuration override is (bad value, unknown key or worker, unreadable file, ...).
    #[must_use]
    pub fn is_config(&self) -> bool {
        matches!(self.kind, Kind::Config { .. } | Kind::Host { .. }) || self.is_override()
    }

    #[cfg(feature = "config")]
    fn is_override(&self) -> bool {
        matches!(self.kind, Kind::Override { .. })
    }

    #[cfg(not(feature = "config"))]
    #[allow(
        clippy::unused_self,
        reason = "the same call with or without the feature"
    )]
    fn is_override(&self) -> bool {
        false
    }

    /// A worker argument needs state or a scoped resource that was never registered.
    #[must_use]
    pub fn is_missing_dependency(&self) -> bool {
        matches!(self.kind, Kind::Missing { .. })
    }

    /// A queue worker's declaration does not hold together: no `Job<T>` argument, one of another
    /// payload type, a hook of another type, a second consumer of one queue; or a worker on a
    /// schedule takes a `Job<T>`.
    #[must_use]
    pub fn is_queue_declaration(&self) -> bool {
        matches!(self.kind, Kind::Queue { .. })
    }

    /// A singleton worker's host has no backend to keep its lease in.
    #[must_use]
    pub fn is_lease_backend(&self) -> bool {
        matches!(self.kind, Kind::Lease { .. })
    }

    /// A producer asked for a queue that no worker consumes, or with another payload type than
    /// its consumer's ([`HostHandle::queue`](crate::HostHandle::queue)).
    #[must_use]
    pub fn is_unknown_queue(&self) -> bool {
        matches!(
            self.kind,
            Kind::UnknownQueue { .. } | Kind::QueueType { .. }
        )
    }

    /// Two workers were registered under the same name.
    #[must_use]
    pub fn is_duplicate_name(&self) -> bool {
        matches!(self.kind, Kind::DuplicateName(_))
    }

    /// An admin action named a worker the host does not have.
    #[must_use]
    pub fn is_unknown_worker(&self) -> bool {
        matches!(self.kind, Kind::UnknownWorker(_))
    }

    /// Run now was asked of a worker that cannot run: it failed or stopped, or its host is
    /// stopping. Also: a worker was to be added to or removed from a host that stopped (or is
    /// stopping), or removed while it is being removed already.
    #[must_use]
    pub fn is_not_running(&self) -> bool {
        matches!(self.kind, Kind::NotRunning { .. } | Kind::Roster { .. })
    }

    /// Shutdown hit its deadline and aborted the workers named by [`Error::overran`]; or
    /// [`HostHandle::remove_worker`](crate::HostHandle::remove_worker) did, for the worker
    /// it removed.
    #[must_use]
    pub fn is_shutdown_timeout(&self) -> bool {
        matches!(
            self.kind,
            Kind::ShutdownTimeout { .. } | Kind::RemoveTimeout { .. }
        )
    }

    /// [`HostBuilder::install_recorder`](crate::HostBuilder::install_recorder) found a global
    /// `metrics` recorder installed already.
    #[must_use]
    pub fn is_recorder(&self) -> bool {
        matches!(self.kind, Kind::Recorder(_))
    }

    /// A worker escalated with `escalate = stop_host` and stopped the host; see
    /// [`Error::escalated`].
    #[must_use]
    pub fn is_escalation(&self) -> bool {
        matches!(self.kind, Kind::Escalated(_))
    }

    /// The workers whose `escalate = stop_host` policy stopped the host.
    #[must_use]
    pub fn escalated(&self) -> &[String] {
        match &self.kind {
            Kind::Escalated(workers) => workers,
            _ => &[],
        }
    }

    /// The names of the workers that were still running at the shutdown deadline.
    #[must_use]
    pub fn overran(&self) -> &[String] {
        match &self.kind {
            Kind::ShutdownTimeout { overran, .. } | Kind::RemoveTimeout { overran, .. } => overran,
            _ => &[],
        }
    }

    /// The worker this error is about, if it is about one.
    #[must_use]
    pub fn worker(&self) -> Option<&str> {
        match &self.kind {
            Kind::Config { worker, .. }
            | Kind::Queue { worker, .. }
            | Kind::Lease { worker, .. }
            | Kind::QueueType { worker, .. }
            | Kind::Requeue { worker, .. }
            | Kind::JobAction { worker, .. }
            | Kind::Missing { worker, .. }
            | Kind::DuplicateName(worker)
            | Kind::UnknownWorker(worker)
            | Kind::NotRunning { worker, .. }
            | Kind::Roster { worker, .. } => Some(worker),
            Kind::RemoveTimeout { overran, .. } => overran.first().map(String::as_str),
            #[cfg(feature = "config")]
            Kind::Override {
                worker: Some(worker),
                ..
            } => Some(worker),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Config { worker, refusal } => write!(f, "worker `{worker}`: {refusal}"),
            Kind::Host {
                key,
                value,
                expected,
            } => write!(f, "host: invalid `{key}` = {value}: expected {expected}"),
            #[cfg(feature = "config")]
            Kind::Override {
                location,
                value,
                message,
                ..
            } => {
                write!(f, "configuration: {location}")?;
                if let Some(value) = value {
                    write!(f, " = {value}")?;
                }
                write!(f, ": {message}")
            }
            Kind::Missing {
                worker,
                argument,
                message,
            } => write!(f, "worker `{worker}`: argument {argument}: {message}"),
            Kind::Queue { worker, message } | Kind::Lease { worker, message } => {
                write!(f, "worker `{worker}`: {message}")
            }
            Kind::UnknownQueue { queue, known } if known.is_empty() => write!(
                f,
                "no worker consumes a queue named `{queue}`: the host has no queue workers \
                 (declare one with `#[worker(queue = \"{queue}\")]`)"
            ),
            Kind::UnknownQueue { queue, known } => write!(
                f,
                "no worker consumes a queue named `{queue}`: the host's queues are {}",
                known
                    .iter()
                    .map(|q| format!("`{q}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Kind::QueueType {
                queue,
                asked,
                carries,
                worker,
            } => write!(
                f,
                "the queue `{queue}` carries `{carries}` (its consumer `{worker}` takes \
                 `Job<{carries}>`), not `{asked}`"
            ),
            Kind::JobAction {
                worker,
                job,
                action,
                why,
            } => write!(f, "worker `{worker}`: cannot {action} job {job}: {why}"),
            Kind::Requeue { worker, job, why } => {
                write!(
                    f,
                    "worker `{worker}`: cannot re-enqueue dead job {job}: {why}"
                )
            }
            Kind::DuplicateName(name) => write!(
                f,
                "two workers are named `{name}`: worker names must be unique within a host \
                 (set `name = \"...\"` on one of them)"
            ),
            Kind::UnknownWorker(name) => write!(f, "the host has no worker named `{name}`"),
            Kind::NotRunning { worker, why } => {
                write!(f, "worker `{worker}` cannot run now: {why}")
            }
            Kind::Roster {
                worker,
                action,
                why,
            } => write!(f, "cannot {action} the worker `{worker}`: {why}"),
            Kind::RemoveTimeout { timeout, overran } => write!(
                f,
                "removed the worker `{}` after aborting its runs: they overran its stop budget \
                 or the host's shutdown timeout ({})",
                overran.join(", "),
                worker_keys::show(*timeout)
            ),
            Kind::Bind { addr, .. } => write!(f, "cannot listen on {addr}"),
            Kind::Recorder(why) => write!(f, "cannot install the metrics recorder: {why}"),
            Kind::ShutdownTimeout { timeout, overran } => write!(
                f,
                "shutdown timed out after {}; aborted workers that were still running: {}",
                worker_keys::show(*timeout),
                overran.join(", ")
            ),
            Kind::Escalated(workers) => write!(
                f,
                "stopped the host: {} exceeded its restart limit (escalate = stop_host)",
                workers.join(", ")
            ),
            Kind::Signal(_) => f.write_str("cannot install the shutdown signal handlers"),
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if f.alternate() {
            return f.debug_struct("Error").field("kind", &self.kind).finish();
        }
        write!(f, "{self}")?;
        let mut source = std::error::Error::source(self);
        while let Some(err) = source {
            write!(f, ": {err}")?;
            source = err.source();
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            Kind::Bind { source, .. } | Kind::Signal(source) => Some(source),
            #[cfg(feature = "config")]
            Kind::Override {
                source: Some(source),
                ..
            } => Some(source),
            _ => None,
        }
    }
}

/// Displays an error followed by its `source()` chain, `outer: inner: root`.
pub(crate) struct Chain<'a>(pub(crate) &'a (dyn std::error::Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(err) = source {
            // A `Permanent`'s marker says nothing of what went wrong; the log line says
            // whether the error was permanent.
            if !crate::run::retry::Permanent::is_marker(err) {
                write!(f, ": {err}")?;
            }
            source = err.source();
        }
        Ok(())
    }
}
