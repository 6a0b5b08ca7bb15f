//! What a worker is checked against when a host is built or a worker is added: its declaration,
//! its name, its queue, its lease and the state its arguments need.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use crate::durable::Backend;
use crate::durable::consume::Durable;
use crate::error::{Error, Kind};
use crate::host::Prepared;
use crate::observe::tracked::{Declared, Tracked};
use crate::queue::channel::Channel;
use crate::supervise::singleton::Singleton;
use crate::worker::handler::Requirement;
use crate::worker::registry::{Registry, StateMap};
use crate::worker::scope::WorkerEnv;
use crate::worker::spec::Checked;
use crate::worker::{QueueBinding, Spawn, Worker};

/// What [`HostBuilder::build`] made of each worker.
pub(super) type CheckedWorker = (
    Checked,
    Vec<Requirement>,
    Spawn,
    Option<Arc<Channel>>,
    Option<Arc<Singleton>>,
    StateMap,
);

/// A checked worker with its registry.
pub(super) type ReadyWorker = (
    Checked,
    Spawn,
    Option<Arc<Channel>>,
    Option<Arc<Singleton>>,
    Arc<Registry>,
);

/// Gives each worker its registry (its own state first, then the host's) and checks that
/// every argument finds there what it needs.
pub(super) fn check_requirements(
    checked: Vec<CheckedWorker>,
    registry: &Arc<Registry>,
) -> Result<Vec<ReadyWorker>, Error> {
    let mut with_registries = Vec::with_capacity(checked.len());
    for (spec, requirements, launch, queue, lease, states) in checked {
        let own = own_registry(&spec, &requirements, states, registry)?;
        with_registries.push((spec, launch, queue, lease, own));
    }
    Ok(with_registries)
}

/// A worker's registry, its own state first and then the host's, after checking that every
/// argument finds there what it needs.
pub(super) fn own_registry(
    checked: &Checked,
    requirements: &[Requirement],
    states: StateMap,
    registry: &Arc<Registry>,
) -> Result<Arc<Registry>, Error> {
    let own = if states.is_empty() {
        Arc::clone(registry)
    } else {
        Arc::new(Registry::layered(registry, states))
    };
    for requirement in requirements {
        (requirement.check)(&own).map_err(|message| {
            Error::new(Kind::Missing {
                worker: checked.spec.name.to_string(),
                argument: requirement.argument.clone(),
                message,
            })
        })?;
    }
    Ok(own)
}

/// A checked worker with what it is tracked by, ready to start.
pub(super) fn prepare(
    checked: Checked,
    launch: Spawn,
    queue: Option<Arc<Channel>>,
    lease: Option<Arc<Singleton>>,
    registry: Arc<Registry>,
    keep_runs: usize,
    now: SystemTime,
) -> Prepared {
    let tracked = Arc::new(Tracked::new(Declared {
        name: &checked.spec.name,
        schedule: checked.trigger.to_string(),
        gates_readiness: checked.spec.gates_readiness,
        gates_liveness: checked.spec.gates_liveness,
        stale_after: checked.stale_after(now),
        keep: keep_runs,
        queue: queue.clone(),
        lease,
    }));
    Prepared {
        env: Arc::new(WorkerEnv {
            name: checked.spec.name.clone(),
            registry,
            tracked: tracked.clone(),
        }),
        tracked,
        checked,
        launch,
        queue,
    }
}

/// Checks each worker's declaration and makes its queue, registered in `registry`; `None` when
/// `shutdown` (if given) was cancelled meanwhile.
pub(super) fn check_workers(
    workers: Vec<Worker>,
    now: SystemTime,
    registry: &mut Registry,
    shutdown: Option<&CancellationToken>,
    backend: Option<&Arc<dyn Backend>>,
) -> Result<Option<Vec<CheckedWorker>>, Error> {
    let mut names = HashSet::new();
    let mut checked = Vec::with_capacity(workers.len());
    let mut queues: Vec<Arc<Channel>> = Vec::new();
    for (i, worker) in workers.into_iter().enumerate() {
        if i % 256 == 0 && shutdown.is_some_and(CancellationToken::is_cancelled) {
            return Ok(None);
        }
        let Worker {
            spec,
            requirements,
            launch,
            queue,
            states,
        } = worker;
        let spec = spec.check(now)?;
        if !names.insert(spec.spec.name.clone()) {
            return Err(Error::new(Kind::DuplicateName(spec.spec.name.to_string())));
        }
        let channel = channel(&spec, &requirements, queue, &queues, backend)?;
        if let Some(channel) = &channel {
            registry.insert_queue(channel.clone());
            queues.push(channel.clone());
        }
        let lease = lease(&spec, backend)?;
        checked.push((spec, requirements, launch, channel, lease, states));
    }
    Ok(Some(checked))
}

/// The queue of a queue worker, after checking that its body takes the queue's jobs, that its
/// hooks take its payload type, and that no other worker consumes a queue of that name; `None`
/// for a worker on a schedule, which must take no job.
pub(super) fn channel(
    checked: &Checked,
    requirements: &[Requirement],
    binding: QueueBinding,
    queues: &[Arc<Channel>],
    backend: Option<&Arc<dyn Backend>>,
) -> Result<Option<Arc<Channel>>, Error> {
    let spec = &checked.spec;
    let worker = spec.name.to_string();
    let jobs = requirements
        .iter()
        .filter_map(|r| r.job.map(|job| (r, job)));
    let invalid = |message: String| {
        Error::new(Kind::Queue {
            worker: worker.clone(),
            message,
        })
    };
    let Some(name) = &spec.queue else {
        if let Some((argument, (_, payload))) = jobs.clone().next() {
            return Err(invalid(format!(
                "argument {} takes `Job<{payload}>`, but the worker runs on a schedule \
                 ({}): a job comes from a queue, `queue = \"..\"`",
                argument.argument, checked.trigger
            )));
        }
        return Ok(None);
    };
    let Some((payload, payload_name)) = binding.payload else {
        return Err(invalid(format!(
            "it consumes the queue `{name}` but declares no payload type: use \
             `.queue::<T>(\"{name}\")`"
        )));
    };
    match jobs.clone().find(|(_, (ty, _))| *ty != payload) {
        Some((argument, (_, other))) => {
            return Err(invalid(format!(
                "argument {} takes `Job<{other}>`, but the queue `{name}` carries \
                 `{payload_name}`",
                argument.argument
            )));
        }
        None if jobs.clone().next().is_none() => {
            return Err(invalid(format!(
                "it consumes the queue `{name}` but its body takes no `Job<{payload_name}>` \
                 argument: add one to receive each job"
            )));
        }
        None => {}
    }
    if let Some((hook, other)) = binding.hooks.mismatch(payload) {
        return Err(invalid(format!(
            "`{hook}` takes `{other}`, but the queue `{name}` carries `{payload_name}`"
        )));
    }
    if let Some(other) = queues.iter().find(|c| c.name == *name) {
        return Err(invalid(format!(
            "the queue `{name}` is already consumed by the worker `{}`: a queue has one \
             consumer (raise its `concurrency` to run more jobs at once)",
            other.worker
        )));
    }
    let channel = Channel::new(
        name.clone(),
        spec.name.clone(),
        (payload, payload_name),
        spec.capacity(),
        spec.concurrency(),
        binding.hooks,
    );
    if !spec.durable {
        return Ok(Some(Arc::new(channel)));
    }
    let (Some(backend), Some(decode)) = (backend, binding.decode) else {
        return Err(invalid(format!(
            "it consumes the durable queue `{name}`, but the host has no durable backend: \
             add one with `Host::builder().backend(worker_postgres::Postgres::new(pool))`"
        )));
    };
    Ok(Some(Arc::new(channel.durable(Durable {
        backend: Arc::clone(backend),
        decode,
    }))))
}

/// The lease of a singleton worker, in the host's backend; `None` for other workers.
pub(super) fn lease(
    checked: &Checked,
    backend: Option<&Arc<dyn Backend>>,
) -> Result<Option<Arc<Singleton>>, Error> {
    let spec = &checked.spec;
    if !spec.singleton {
        return Ok(None);
    }
    let backend = match backend {
        Some(backend) if backend.keeps_leases() => backend,
        Some(backend) => {
            return Err(Error::new(Kind::Lease {
                worker: spec.name.to_string(),
                message: format!(
                    "it is a singleton, but the host's backend ({backend:?}) keeps no leases: \
                     use one that does, such as `worker_postgres::Postgres`"
                ),
            }));
        }
        None => {
            return Err(Error::new(Kind::Lease {
                worker: spec.name.to_string(),
                message: "it is a singleton, but the host has no backend to keep its lease in: \
                          add one with `Host::builder().backend(worker_postgres::Postgres::new(pool))`"
                    .to_owned(),
            }));
        }
    };
    Ok(Some(Arc::new(Singleton::new(
        Arc::clone(backend),
        spec.name.clone(),
        spec.lease(),
        spec.catch_up(),
    ))))
}

/// Checks a host setting against its range.
pub(super) fn check_host(key: &'static str, value: Duration) -> Result<(), Error> {
    let range = worker_keys::range(key).unwrap_or_else(|| unreachable!("`{key}` has a range"));
    if range.contains_duration(value) {
        Ok(())
    } else {
        Err(Error::new(Kind::Host {
            key,
            value: format!("\"{}\"", worker_keys::show(value)),
            expected: range.expected().to_string(),
        }))
    }
}
