//! What a worker does when it panics too often: [`Escalation`].

use crate::supervise::HostLink;
use crate::worker::spec::Spec;

/// What happens when a worker panics more than `max_restarts` times within `restart_window`
/// (`escalate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Escalation {
    /// The worker stops and shows `failed`; the other workers keep running. The default.
    #[default]
    StopWorker,
    /// The whole host stops gracefully and [`Host::run`](crate::Host::run) returns an error, so
    /// the process exits non-zero.
    StopHost,
}

impl Escalation {
    /// The name used in `#[worker(escalate = ..)]` and in configuration.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::StopWorker => "stop_worker",
            Self::StopHost => "stop_host",
        }
    }
}

pub(super) fn escalate(spec: &Spec, host: &HostLink) {
    let name = &*spec.name;
    let limit = spec.max_restarts.unwrap_or_default();
    let window = worker_keys::show(spec.restart_window);
    match spec.escalate {
        Escalation::StopWorker => tracing::error!(
            worker = name,
            "more than {limit} restarts within {window}: stopping the worker (escalate = stop_worker)"
        ),
        Escalation::StopHost => {
            tracing::error!(
                worker = name,
                "more than {limit} restarts within {window}: stopping the host (escalate = stop_host)"
            );
            host.report().escalated.push(name.to_owned());
            host.shutdown.cancel();
            if let Some(watchdog) = &host.watchdog {
                watchdog.arm();
            }
        }
    }
}
