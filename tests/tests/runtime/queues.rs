//! Queue consumers on the paused clock: the concurrency limit, back-pressure, retries that free
//! their slot, panics isolated per job, dead jobs, shutdown with jobs in every state, a
//! scheduled worker feeding a queue, and the checks of a queue worker's declaration.
#![allow(clippy::float_cmp, reason = "gauges counting whole jobs are exact")]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::{Instant, timeout};
use worker_core::testing::TestHost;
use worker_core::{
    BoxError, DeadJob, Health, Host, Job, OnPanic, Outcome, Permanent, Queue, SendError, State,
    Trigger, Worker, worker,
};

use crate::common::{Metrics, Running, ms, secs};

/// Counts the jobs running at once, and the most ever.
#[derive(Debug, Default)]
struct Gauge {
    now: AtomicUsize,
    most: AtomicUsize,
}

impl Gauge {
    fn enter(&self) -> Leave<'_> {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        Leave(self)
    }
}

struct Leave<'a>(&'a Gauge);

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::SeqCst);
    }
}

#[worker(queue = "work", concurrency = 3, capacity = 100)]
async fn three_at_a_time(job: Job<u64>, gauge: State<Arc<Gauge>>) {
    let _in = gauge.enter();
    tokio::time::sleep(Duration::from_millis(100 * *job)).await;
}

#[tokio::test(start_paused = true)]
async fn no_more_jobs_run_at_once_than_the_concurrency() {
    let gauge = Arc::new(Gauge::default());
    let host =
        TestHost::start(Host::builder().state(gauge.clone()).worker(three_at_a_time)).unwrap();
    let work = host.queue::<u64>("work");
    for n in 0..30 {
        work.send(n % 7 + 1).await.unwrap();
    }
    host.advance(Duration::ZERO).await;
    assert_eq!(gauge.most.load(Ordering::SeqCst), 3);
    let runs = host.runs("three_at_a_time");
    assert_eq!(runs.len(), 30);
    assert!(
        runs.iter()
            .all(|r| r.result == Outcome::Success && r.trigger == Trigger::Queue)
    );
    let mut ids: Vec<u64> = runs.iter().map(|r| r.job_id.unwrap()).collect();
    ids.sort_unstable();
    assert_eq!(ids, (1..=30).collect::<Vec<_>>());
    let queue = host.handle().workers().remove(0).queue.unwrap();
    assert_eq!(
        (queue.enqueued, queue.finished, queue.depth, queue.in_flight),
        (30, 30, 0, 0)
    );
    host.stop().await.unwrap();
}

#[worker(queue = "held", capacity = 2)]
async fn held(job: Job<String>, gate: State<Arc<Semaphore>>) {
    let _pass = gate.acquire().await.unwrap();
    tracing::info!(job = %*job, "released");
}

#[tokio::test(start_paused = true)]
async fn a_full_queue_makes_send_wait_and_try_send_refuse() {
    let gate = Arc::new(Semaphore::new(0));
    let metrics = Metrics::new();
    let host = metrics
        .build(Host::builder().state(gate.clone()).worker(held))
        .unwrap();
    let handle = host.handle();
    let running = Running::start(host);
    let queue = handle.queue::<String>("held").unwrap();
    // One in flight, two buffered: the capacity.
    for n in 0..3 {
        queue.send(format!("job {n}")).await.unwrap();
        tokio::time::sleep(ms(1)).await;
    }
    assert_eq!((queue.len(), queue.capacity()), (2, 2));
    match queue.try_send("one more".to_owned()) {
        Err(SendError::Full(value)) => assert_eq!(value, "one more"),
        other => panic!("expected Full, got {other:?}"),
    }
    let refused = queue.send_timeout("late".to_owned(), secs(5)).await;
    assert!(
        matches!(&refused, Err(SendError::Full(v)) if v == "late"),
        "{refused:?}"
    );
    // `send` waits while the queue is full.
    let waiting = tokio::spawn({
        let queue = queue.clone();
        async move { queue.send("patient".to_owned()).await }
    });
    tokio::time::sleep(secs(60)).await;
    assert!(!waiting.is_finished());
    let snapshot = metrics.snapshot();
    let worker = [("worker", "held")];
    assert_eq!(
        snapshot.counter(
            "worker_queue_rejected_total",
            &[("worker", "held"), ("reason", "full")]
        ),
        2
    );
    assert_eq!(snapshot.gauge("worker_queue_depth", &worker), 2.0);
    assert_eq!(snapshot.gauge("worker_queue_in_flight", &worker), 1.0);
    assert_eq!(snapshot.gauge("worker_run_active", &worker), 1.0);
    // One job done: the waiting send goes in.
    gate.add_permits(1);
    let id = timeout(secs(1), waiting).await.unwrap().unwrap().unwrap();
    assert_eq!(id, 4);
    assert_eq!(
        metrics
            .snapshot()
            .counter("worker_jobs_enqueued_total", &worker),
        4
    );
    gate.add_permits(100);
    tokio::time::sleep(secs(1)).await;
    running.stop().await.result.unwrap();
    // After shutdown, a send gets its value back.
    match queue.send("after".to_owned()).await {
        Err(SendError::Closed(value)) => assert_eq!(value, "after"),
        other => panic!("expected Closed, got {other:?}"),
    }
    assert!(queue.is_closed());
    let snapshot = metrics.snapshot();
    assert_eq!(
        snapshot.counter(
            "worker_queue_rejected_total",
            &[("worker", "held"), ("reason", "closed")]
        ),
        1
    );
    assert_eq!(snapshot.runs("held", "success"), 4);
}

/// When each job's attempts started, by payload.
type Starts = Arc<Mutex<Vec<(&'static str, u32, Instant)>>>;

#[worker(queue = "flaky", retry = 2, backoff = "10s", backoff_kind = constant, capacity = 2)]
async fn flaky(job: Job<&'static str>, starts: State<Starts>) -> Result<(), BoxError> {
    starts
        .lock()
        .unwrap()
        .push((*job, job.attempt(), Instant::now()));
    if *job == "fails once" && job.attempt() == 1 {
        return Err("not yet".into());
    }
    tokio::time::sleep(secs(1)).await;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn a_job_in_backoff_frees_its_slot_but_counts_against_the_capacity() {
    let starts = Starts::default();
    let host = TestHost::start(Host::builder().state(starts.clone()).worker(flaky)).unwrap();
    let queue = host.queue::<&'static str>("flaky");
    queue.send("fails once").await.unwrap();
    tokio::time::sleep(ms(1)).await;
    // In backoff: the slot is free, the capacity is not.
    queue.send("next").await.unwrap();
    assert!(matches!(queue.try_send("third"), Err(SendError::Full(_))));
    host.advance(Duration::ZERO).await;
    let starts = starts.lock().unwrap().clone();
    let at = |payload, attempt| {
        starts
            .iter()
            .find(|(p, a, _)| *p == payload && *a == attempt)
            .map(|(.., at)| *at)
            .unwrap()
    };
    let t0 = at("fails once", 1);
    // The second job ran while the first waited out its backoff.
    assert_eq!(at("next", 1), t0 + ms(1));
    let retry = at("fails once", 2).duration_since(t0);
    assert!(retry >= secs(5) && retry <= secs(10), "{retry:?}");
    let runs = host.runs("flaky");
    assert_eq!(runs.len(), 2);
    let first = runs.iter().find(|r| r.job_id == Some(1)).unwrap();
    assert_eq!((first.result, first.attempts), (Outcome::Success, 2));
    host.stop().await.unwrap();
}

#[worker(queue = "risky", retry = 1, backoff = "0s", concurrency = 2)]
async fn risky(job: Job<u32>) {
    assert!(
        !(*job == 1 && job.attempt() == 1),
        "job 1 panics on its first attempt"
    );
    assert!(*job != 2, "job 2 always panics");
}

#[tokio::test(start_paused = true)]
async fn a_panic_fails_only_its_job_and_is_retried_by_default() {
    let host = TestHost::start(Host::builder().worker(risky)).unwrap();
    let queue = host.queue::<u32>("risky");
    for n in 0..4 {
        queue.send(n).await.unwrap();
    }
    host.advance(Duration::ZERO).await;
    let mut runs = host.runs("risky");
    runs.sort_by_key(|r| r.job_id);
    let seen: Vec<(Outcome, u32)> = runs.iter().map(|r| (r.result, r.attempts)).collect();
    assert_eq!(
        seen,
        [
            (Outcome::Success, 1),
            (Outcome::Success, 2),
            (Outcome::Panic, 2),
            (Outcome::Success, 1)
        ]
    );
    let status = host.handle().workers().remove(0);
    let queue = status.queue.unwrap();
    assert_eq!(queue.dead, 1);
    assert_eq!(queue.dead_jobs[0].id, 3);
    assert_eq!(queue.dead_jobs[0].payload.as_deref(), Some("2"));
    assert!(queue.dead_jobs[0].error.contains("job 2 always panics"));
    assert_eq!(status.health, Health::Degraded);
    host.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn with_on_panic_discard_a_panicking_job_is_dead_at_once() {
    let dead = Arc::new(Mutex::new(Vec::new()));
    let seen = dead.clone();
    let worker = Worker::builder("discarding")
        .queue::<u32>("discarding")
        .retry(5)
        .on_panic(OnPanic::Discard)
        .on_dead(move |job: DeadJob<u32>| seen.lock().unwrap().push(job))
        .handler(|job: Job<u32>| async move {
            assert!(*job != 7, "seven is unlucky");
        });
    let host = TestHost::start(Host::builder().worker(worker)).unwrap();
    let queue = host.queue::<u32>("discarding");
    queue.send(7).await.unwrap();
    queue.send(8).await.unwrap();
    host.advance(Duration::ZERO).await;
    let dead = dead.lock().unwrap().clone();
    assert_eq!(dead.len(), 1);
    assert_eq!((dead[0].id, dead[0].attempts, dead[0].payload), (1, 1, 7));
    assert!(
        dead[0].error.contains("seven is unlucky"),
        "{}",
        dead[0].error
    );
    // Without `#[worker]` and `describe_jobs`, the payload is not shown.
    let record = host.handle().workers().remove(0).queue.unwrap().dead_jobs;
    assert_eq!(record[0].payload, None);
    host.stop().await.unwrap();
}

#[derive(Debug, Clone, PartialEq)]
struct Invoice {
    order: u64,
}

#[worker(queue = "invoices", retry = 2, backoff = "1s")]
async fn render_invoice(job: Job<Invoice>) -> Result<(), BoxError> {
    match job.order {
        13 => Err(Permanent::new("order 13 was deleted").into()),
        n if n >= 100 => Err("the renderer is down".into()),
        _ => Ok(()),
    }
}

#[tokio::test(start_paused = true)]
async fn jobs_that_exhaust_their_retries_or_fail_permanently_are_dead() {
    let metrics = Metrics::new();
    let host = metrics
        .build(
            Host::builder()
                .worker(render_invoice)
                .shutdown_timeout(secs(5)),
        )
        .unwrap();
    let handle = host.handle();
    let running = Running::start(host);
    let queue = handle.queue::<Invoice>("invoices").unwrap();
    for order in [1, 13, 100] {
        queue.send(Invoice { order }).await.unwrap();
    }
    tokio::time::sleep(secs(10)).await;
    let snapshot = metrics.snapshot();
    assert_eq!(
        snapshot.counter("worker_jobs_dead_total", &[("worker", "render_invoice")]),
        2
    );
    assert_eq!(snapshot.runs("render_invoice", "failure"), 2);
    assert_eq!(snapshot.retries("render_invoice"), 2);
    let status = handle.workers().remove(0);
    let dead = status.queue.unwrap().dead_jobs;
    let summary: Vec<(u64, u32, Option<&str>)> = dead
        .iter()
        .map(|d| (d.id, d.attempts, d.payload.as_deref()))
        .collect();
    assert_eq!(
        summary,
        [
            (2, 1, Some("Invoice { order: 13 }")),
            (3, 3, Some("Invoice { order: 100 }"))
        ]
    );
    assert!(
        status
            .reason
            .unwrap()
            .starts_with("jobs going dead: 2 so far")
    );
    // A dead job re-enqueued is a new job.
    let again = handle.requeue("render_invoice", 2).unwrap();
    assert_eq!(again, 4);
    assert!(
        handle
            .requeue("render_invoice", 2)
            .unwrap_err()
            .to_string()
            .contains("no such job")
    );
    tokio::time::sleep(secs(1)).await;
    let dead = handle.workers().remove(0).queue.unwrap().dead_jobs;
    assert_eq!(dead.iter().map(|d| d.id).collect::<Vec<_>>(), [3, 4]);
    // Five minutes without a dead job: healthy again.
    tokio::time::sleep(secs(301)).await;
    assert_eq!(handle.workers().remove(0).health, Health::Healthy);
    running.stop().await.result.unwrap();
}

/// What became of the jobs at shutdown.
#[derive(Debug, Default)]
struct Outcomes {
    left: Mutex<Vec<u32>>,
}

/// Job 1 runs for ever (ignoring cancellation), job 2 fails into a long backoff, jobs 3 and 4
/// take a second each, job 5 three seconds, the rest a minute each.
async fn slow(job: Job<u32>) -> Result<(), BoxError> {
    match *job {
        1 => std::future::pending().await,
        2 => Err("try again in a while".into()),
        3 | 4 => {
            tokio::time::sleep(secs(1)).await;
            Ok(())
        }
        5 => {
            tokio::time::sleep(secs(3)).await;
            Ok(())
        }
        _ => {
            tokio::time::sleep(secs(60)).await;
            Ok(())
        }
    }
}

fn stopping(left: Option<Arc<Outcomes>>) -> Worker {
    let builder = Worker::builder("stopping")
        .queue::<u32>("stopping")
        .concurrency(2)
        .retry(1)
        .backoff(secs(60))
        .backoff_max(secs(600))
        .stop_budget(secs(10));
    let builder = match left {
        Some(left) => {
            builder.on_leftovers(move |jobs: Vec<u32>| left.left.lock().unwrap().extend(jobs))
        }
        None => builder,
    };
    builder.handler(slow)
}

async fn shut_down_with_jobs_in_every_state(hook: bool) {
    let outcomes = Arc::new(Outcomes::default());
    let metrics = Metrics::new();
    let host = metrics
        .build(
            Host::builder()
                .worker(stopping(hook.then(|| outcomes.clone())))
                .shutdown_timeout(secs(30)),
        )
        .unwrap();
    let handle = host.handle();
    let running = Running::start(host);
    let queue = handle.queue::<u32>("stopping").unwrap();
    for n in 1..=10 {
        queue.send(n).await.unwrap();
    }
    // Job 1 in flight, job 2 in backoff, jobs 3 and 4 done, job 5 in flight, 6..=10 buffered.
    // Shutdown at 2.5 s: job 5 ends during the drain (at 5 s) and job 6 starts; at the stop
    // budget (12.5 s) job 2 and 7..=10 are left over and the runs' token is cancelled; jobs 1
    // and 6 ignore it, and are aborted at the host's deadline less its margin (29 s later).
    tokio::time::sleep(ms(2500)).await;
    let stopped = running.stop().await;
    // Jobs 1 and 6 overran the deadline: the worker reports it.
    let err = stopped.result.unwrap_err();
    assert!(err.is_shutdown_timeout(), "{err}");
    assert_eq!(err.overran(), ["stopping"]);
    assert_eq!(stopped.took, secs(29));
    let snapshot = metrics.snapshot();
    let worker = [("worker", "stopping")];
    let finished = snapshot.runs("stopping", "success") + snapshot.runs("stopping", "failure");
    let cancelled = snapshot.runs("stopping", "cancelled");
    let left = snapshot.counter("worker_jobs_left_over_total", &worker);
    let dropped = snapshot.counter(
        "worker_jobs_dropped_total",
        &[("worker", "stopping"), ("reason", "shutdown")],
    );
    // Jobs 3, 4 and 5 finished (5 during the drain), 1 and 6 were cancelled in flight (6
    // started during the drain), 2 (in backoff) and 7..=10 never got a slot.
    assert_eq!((finished, cancelled, left), (3, 2, 5));
    assert_eq!(finished + cancelled + left, 10);
    assert_eq!(snapshot.gauge("worker_queue_depth", &worker), 0.0);
    assert_eq!(snapshot.gauge("worker_queue_in_flight", &worker), 0.0);
    if hook {
        assert_eq!(dropped, 0);
        // Handed over at the stop budget, not at the end.
        assert_eq!(*outcomes.left.lock().unwrap(), [2, 7, 8, 9, 10]);
    } else {
        assert_eq!(dropped, 5);
    }
    assert!(matches!(queue.try_send(11), Err(SendError::Closed(11))));
}

#[tokio::test(start_paused = true)]
async fn at_shutdown_every_job_is_finished_cancelled_or_handed_to_on_leftovers() {
    shut_down_with_jobs_in_every_state(true).await;
}

#[tokio::test(start_paused = true)]
async fn at_shutdown_without_on_leftovers_the_jobs_never_started_are_counted_as_dropped() {
    shut_down_with_jobs_in_every_state(false).await;
}

#[worker(every = "10s")]
async fn feed(orders: Queue<u64>, ctx: worker_core::Ctx) -> Result<(), SendError<u64>> {
    orders.send(ctx.run_id()).await.map(drop)
}

#[worker(queue = "orders", concurrency = 4)]
async fn ship(job: Job<u64>, shipped: State<Arc<Mutex<Vec<u64>>>>) {
    shipped.lock().unwrap().push(*job);
}

#[tokio::test(start_paused = true)]
async fn a_scheduled_worker_feeds_a_queue_worker() {
    let shipped = Arc::new(Mutex::new(Vec::<u64>::new()));
    let host = TestHost::start(
        Host::builder()
            .state(shipped.clone())
            .worker(feed)
            .worker(ship),
    )
    .unwrap();
    host.advance(secs(35)).await;
    assert_eq!(host.runs("feed").len(), 4);
    let ship_runs = host.runs("ship");
    assert_eq!(ship_runs.len(), 4);
    let feed_ids: Vec<u64> = host.runs("feed").iter().map(|r| r.run_id).collect();
    assert_eq!(*shipped.lock().unwrap(), feed_ids);
    host.stop().await.unwrap();
}

#[tokio::test]
async fn producers_ask_for_a_queue_by_its_name_and_payload_type() {
    let host = Host::builder()
        .state(Arc::new(Mutex::new(Vec::<u64>::new())))
        .worker(ship)
        .worker(feed)
        .build()
        .unwrap();
    let handle = host.handle();
    assert!(handle.queue::<u64>("orders").is_ok());
    let unknown = handle.queue::<u64>("order").unwrap_err();
    assert!(unknown.is_unknown_queue());
    assert_eq!(
        unknown.to_string(),
        "no worker consumes a queue named `order`: the host's queues are `orders`"
    );
    let wrong = handle.queue::<String>("orders").unwrap_err();
    assert!(wrong.is_unknown_queue());
    assert_eq!(
        wrong.to_string(),
        "the queue `orders` carries `u64` (its consumer `ship` takes `Job<u64>`), not \
         `alloc::string::String`"
    );
    let run = handle.run_now("ship").unwrap_err();
    assert!(run.is_not_running(), "{run}");
}

#[test]
fn a_queue_worker_s_declaration_is_checked_when_the_host_is_built() {
    let build = |worker: Worker| Host::builder().worker(worker).build().unwrap_err();
    let no_job = build(Worker::builder("w").queue::<u64>("q").handler(|| async {}));
    assert!(no_job.is_queue_declaration());
    assert_eq!(
        no_job.to_string(),
        "worker `w`: it consumes the queue `q` but its body takes no `Job<u64>` argument: add \
         one to receive each job"
    );
    let wrong_job = build(
        Worker::builder("w")
            .queue::<u64>("q")
            .handler(|_: Job<u32>| async {}),
    );
    assert!(
        wrong_job
            .to_string()
            .contains("takes `Job<u32>`, but the queue `q` carries `u64`"),
        "{wrong_job}"
    );
    let scheduled = build(
        Worker::builder("w")
            .every(secs(1))
            .handler(|_: Job<u32>| async {}),
    );
    assert!(
        scheduled
            .to_string()
            .contains("but the worker runs on a schedule (every 1s)"),
        "{scheduled}"
    );
    let hook = build(
        Worker::builder("w")
            .queue::<u64>("q")
            .on_leftovers(|_: Vec<u32>| {})
            .handler(|_: Job<u64>| async {}),
    );
    assert!(
        hook.to_string()
            .contains("`on_leftovers` takes `u32`, but the queue `q` carries `u64`"),
        "{hook}"
    );
    let both = build(
        Worker::builder("w")
            .queue::<u64>("q")
            .every(secs(1))
            .handler(|_: Job<u64>| async {}),
    );
    assert!(both.is_config());
    assert!(
        both.to_string().contains(
            "invalid `every` = \"1s\": expected a single trigger, and `queue` sets one already"
        ),
        "{both}"
    );
}

#[test]
fn the_keys_of_a_queue_worker_and_of_a_scheduled_one_do_not_mix() {
    let build = |worker: Worker| Host::builder().worker(worker).build().unwrap_err();
    let schedule_key = build(
        Worker::builder("w")
            .queue::<u64>("q")
            .missed(worker_core::Missed::Burst)
            .handler(|_: Job<u64>| async {}),
    );
    assert_eq!(
        schedule_key.to_string(),
        "worker `w`: invalid `missed` = burst: expected no `missed`: it only applies to workers \
         on a schedule, and this worker consumes the queue \"q\""
    );
    let queue_key = build(
        Worker::builder("w")
            .every(secs(1))
            .concurrency(4)
            .handler(|| async {}),
    );
    assert_eq!(
        queue_key.to_string(),
        "worker `w`: invalid `concurrency` = 4: expected no `concurrency`: it only applies to \
         queue workers (`queue = \"name\"`), and this worker runs on `every`"
    );
    let zero = build(
        Worker::builder("w")
            .queue::<u64>("q")
            .concurrency(0)
            .handler(|_: Job<u64>| async {}),
    );
    assert_eq!(
        zero.to_string(),
        "worker `w`: invalid `concurrency` = 0: expected a whole number from 1 to 10000"
    );
}

#[test]
fn a_queue_has_one_consumer_and_a_queue_argument_needs_one() {
    let two = Host::builder()
        .worker(
            Worker::builder("a")
                .queue::<u64>("q")
                .handler(|_: Job<u64>| async {}),
        )
        .worker(
            Worker::builder("b")
                .queue::<u64>("q")
                .handler(|_: Job<u64>| async {}),
        )
        .build()
        .unwrap_err();
    assert!(
        two.to_string()
            .starts_with("worker `b`: the queue `q` is already consumed by the worker `a`"),
        "{two}"
    );
    // A `Queue<T>` argument needs a queue of `T`.
    let nobody = Host::builder().worker(feed).build().unwrap_err();
    assert!(nobody.is_missing_dependency(), "{nobody}");
    assert!(
        nobody.to_string().ends_with(
            "needs a queue of `u64`, but no worker consumes one: declare a worker with \
             `#[worker(queue = \"..\")]` taking a `Job<u64>`"
        ),
        "{nobody}"
    );
}

#[worker(queue = "polite", stop_budget = "2s")]
async fn polite(job: Job<u32>, ctx: worker_core::Ctx) -> Result<(), BoxError> {
    tokio::select! {
        () = tokio::time::sleep(secs(60 * u64::from(*job))) => Ok(()),
        () = ctx.cancelled() => Err("stopped by shutdown".into()),
    }
}

#[tokio::test(start_paused = true)]
async fn a_run_that_heeds_its_token_ends_at_the_stop_budget_and_the_host_stops_cleanly() {
    let metrics = Metrics::new();
    let host = metrics.build(Host::builder().worker(polite)).unwrap();
    let handle = host.handle();
    let running = Running::start(host);
    let queue = handle.queue::<u32>("polite").unwrap();
    queue.send(1).await.unwrap();
    queue.send(2).await.unwrap();
    tokio::time::sleep(secs(1)).await;
    let stopped = running.stop().await;
    stopped.result.unwrap();
    assert_eq!(stopped.took, secs(2));
    let snapshot = metrics.snapshot();
    assert_eq!(snapshot.runs("polite", "cancelled"), 1);
    assert_eq!(
        snapshot.counter(
            "worker_jobs_dropped_total",
            &[("worker", "polite"), ("reason", "shutdown")]
        ),
        1
    );
}

/// Without a `stop_budget`, a queue drains until shortly before the host's deadline, so a run
/// that ends when its token is cancelled has the time to, and a worker with no run in flight
/// (its one job waiting out a retry backoff) has nothing to abort: either way the host stops
/// cleanly, before its deadline.
#[tokio::test(start_paused = true)]
async fn without_a_stop_budget_runs_that_heed_their_token_still_let_the_host_stop_cleanly() {
    let heeding = Worker::builder("heeding").queue::<u32>("heeding").handler(
        |_job: Job<u32>, ctx: worker_core::Ctx| async move {
            ctx.cancelled().await;
            Err::<(), BoxError>("stopped by shutdown".into())
        },
    );
    let waiting = Worker::builder("waiting")
        .queue::<u32>("waiting")
        .retry(1)
        .backoff(secs(60))
        .handler(|_job: Job<u32>| async { Err::<(), BoxError>("not yet".into()) });
    let metrics = Metrics::new();
    let host = metrics
        .build(
            Host::builder()
                .shutdown_timeout(secs(3))
                .worker(heeding)
                .worker(waiting),
        )
        .unwrap();
    let handle = host.handle();
    let running = Running::start(host);
    handle
        .queue::<u32>("heeding")
        .unwrap()
        .send(1)
        .await
        .unwrap();
    handle
        .queue::<u32>("waiting")
        .unwrap()
        .send(2)
        .await
        .unwrap();
    tokio::time::sleep(secs(1)).await;
    let stopped = running.stop().await;
    stopped.result.expect("no worker overran the deadline");
    assert!(stopped.took < secs(3), "stopped after {:?}", stopped.took);
    let snapshot = metrics.snapshot();
    assert_eq!(snapshot.runs("heeding", "cancelled"), 1);
    assert_eq!(
        snapshot.counter(
            "worker_jobs_dropped_total",
            &[("worker", "waiting"), ("reason", "shutdown")]
        ),
        1,
        "the job in backoff is left over"
    );
}

#[test]
fn every_queue_series_exists_at_zero_once_the_host_is_built() {
    let metrics = Metrics::new();
    let _host = metrics.build(Host::builder().worker(polite)).unwrap();
    let snapshot = metrics.snapshot();
    let worker = [("worker", "polite")];
    for gauge in ["worker_queue_depth", "worker_queue_in_flight"] {
        assert_eq!(snapshot.gauge(gauge, &worker), 0.0, "{gauge}");
        assert!(snapshot.is_described(gauge));
    }
    for counter in [
        "worker_jobs_enqueued_total",
        "worker_jobs_dead_total",
        "worker_jobs_left_over_total",
    ] {
        assert_eq!(snapshot.counter(counter, &worker), 0, "{counter}");
    }
    for reason in ["full", "closed"] {
        let labels = [("worker", "polite"), ("reason", reason)];
        assert_eq!(snapshot.counter("worker_queue_rejected_total", &labels), 0);
    }
    let labels = [("worker", "polite"), ("reason", "shutdown")];
    assert_eq!(snapshot.counter("worker_jobs_dropped_total", &labels), 0);
    let wait = snapshot.histogram("worker_queue_wait_seconds", &worker);
    assert_eq!((wait.at_most(3600.0), wait.count), (0, 0));
    // A host without queue workers has no queue families.
    let none = Metrics::new();
    let _host = none.build(Host::builder().worker(feed_nothing)).unwrap();
    assert!(!none.snapshot().is_described("worker_queue_depth"));
}

#[worker(every = "1h")]
async fn feed_nothing() {}

#[tokio::test(start_paused = true)]
async fn jobs_sent_to_a_disabled_queue_worker_are_left_over_not_lost() {
    let left = Arc::new(Mutex::new(Vec::new()));
    let kept = left.clone();
    let worker = Worker::builder("off")
        .queue::<u32>("off")
        .enabled(false)
        .on_leftovers(move |jobs: Vec<u32>| kept.lock().unwrap().extend(jobs))
        .handler(|job: Job<u32>| async move { drop(job) });
    let metrics = Metrics::new();
    let host = metrics.build(Host::builder().worker(worker)).unwrap();
    let queue = host.handle().queue::<u32>("off").unwrap();
    // Sent before the host runs: buffered.
    queue.send(1).await.unwrap();
    queue.send(2).await.unwrap();
    let running = Running::start(host);
    tokio::time::sleep(ms(10)).await;
    assert_eq!(*left.lock().unwrap(), [1, 2]);
    assert!(matches!(queue.try_send(3), Err(SendError::Closed(3))));
    running.stop().await.result.unwrap();
    let snapshot = metrics.snapshot();
    assert_eq!(
        snapshot.counter("worker_jobs_left_over_total", &[("worker", "off")]),
        2
    );
}

#[tokio::test(start_paused = true)]
async fn a_paused_queue_worker_holds_its_jobs_until_resumed() {
    let host = TestHost::start(Host::builder().worker(ship_alone)).unwrap();
    host.handle().pause("ship_alone").unwrap();
    host.advance(Duration::ZERO).await;
    let queue = host.queue::<u64>("alone");
    queue.send(1).await.unwrap();
    host.advance(secs(60)).await;
    assert!(host.runs("ship_alone").is_empty());
    assert_eq!(queue.len(), 1);
    host.handle().resume("ship_alone").unwrap();
    host.advance(Duration::ZERO).await;
    assert_eq!(host.runs("ship_alone").len(), 1);
    host.stop().await.unwrap();
}

#[worker(queue = "alone")]
async fn ship_alone(job: Job<u64>) {
    let _ = job;
}

#[tokio::test(start_paused = true)]
async fn hooks_that_panic_take_down_neither_the_slots_nor_the_shutdown() {
    let worker = Worker::builder("hooked")
        .queue::<u32>("hooked")
        .stop_budget(secs(1))
        .on_dead(|_: DeadJob<u32>| panic!("on_dead broke"))
        .on_leftovers(|_: Vec<u32>| panic!("on_leftovers broke"))
        .describe_jobs(|_: &u32| panic!("describe broke"))
        .handler(|job: Job<u32>| async move {
            if *job == 0 {
                return Err(BoxError::from("zero"));
            }
            tokio::time::sleep(secs(60)).await;
            Ok(())
        });
    let metrics = Metrics::new();
    let host = metrics.build(Host::builder().worker(worker)).unwrap();
    let handle = host.handle();
    let running = Running::start(host);
    let queue = handle.queue::<u32>("hooked").unwrap();
    for n in [0, 0, 1, 2] {
        queue.send(n).await.unwrap();
    }
    tokio::time::sleep(ms(10)).await;
    // Both zeros went dead (the slot survived the first hook's panic); 1 is running.
    let status = handle.workers().remove(0).queue.unwrap();
    assert_eq!(status.dead, 2);
    assert_eq!(
        status.dead_jobs[0].payload.as_deref(),
        Some("(the description panicked)")
    );
    assert_eq!(status.in_flight, 1);
    let stopped = running.stop().await;
    // Job 1 ran past the deadline less its margin (29 s): aborted; job 2 left over.
    assert!(stopped.result.unwrap_err().is_shutdown_timeout());
    let snapshot = metrics.snapshot();
    let worker = [("worker", "hooked")];
    assert_eq!(snapshot.counter("worker_jobs_left_over_total", &worker), 1);
    assert_eq!(snapshot.runs("hooked", "cancelled"), 1);
}

#[test]
fn a_queue_s_name_cannot_be_overridden_by_configuration() {
    let refused = Host::builder()
        .worker(ship_alone)
        .config_env([("WORKER__SHIP_ALONE__QUEUE", "other")])
        .build()
        .unwrap_err();
    assert!(refused.is_config(), "{refused}");
    assert!(
        refused
            .to_string()
            .contains("unknown key `QUEUE` (a queue's name cannot be overridden"),
        "{refused}"
    );
    // A schedule from the environment on a queue worker is refused, blaming the schedule.
    let schedule = Host::builder()
        .worker(ship_alone)
        .config_env([("WORKER__SHIP_ALONE__EVERY", "1s")])
        .build()
        .unwrap_err();
    assert!(
        schedule
            .to_string()
            .contains("expected a single trigger, and `queue` sets one already"),
        "{schedule}"
    );
}

/// `on_leftovers` is called once, after the runs in flight ended: a run that ended between the
/// stop and its cancellation with a failure would have retried, so its job is a leftover too
/// and must be in that one call (in the quickstart, one such job used to make a second call).
#[tokio::test(start_paused = true)]
async fn on_leftovers_is_called_once_after_the_runs_in_flight_ended() {
    let events = Arc::new(Mutex::new(Vec::<String>::new()));
    let (kept, ran) = (events.clone(), events.clone());
    let worker = Worker::builder("late")
        .queue::<u32>("late")
        .concurrency(1)
        .retry(3)
        .stop_budget(ms(100))
        .on_leftovers(move |jobs: Vec<u32>| kept.lock().unwrap().push(format!("left {jobs:?}")))
        // The attempt outlives the stop budget and ignores the cancellation.
        .handler(move |job: Job<u32>| {
            let ran = ran.clone();
            async move {
                tokio::time::sleep(ms(500)).await;
                ran.lock().unwrap().push(format!("ended {}", *job));
                Err::<(), BoxError>("failed".into())
            }
        });
    let metrics = Metrics::new();
    let host = metrics.build(Host::builder().worker(worker)).unwrap();
    let queue = host.handle().queue::<u32>("late").unwrap();
    let running = Running::start(host);
    for job in 1..=3 {
        queue.send(job).await.unwrap();
    }
    tokio::time::sleep(ms(10)).await;
    running.stop().await.result.unwrap();
    assert_eq!(*events.lock().unwrap(), ["ended 1", "left [2, 3]"]);
    let snapshot = metrics.snapshot();
    let count = |name| snapshot.counter(name, &[("worker", "late")]);
    assert_eq!(count("worker_jobs_left_over_total"), 2);
    assert_eq!(
        snapshot.counter(
            "worker_runs_total",
            &[("worker", "late"), ("result", "cancelled")]
        ),
        1
    );
}

/// A value whose `Drop` panics, as a guard that finds its invariant broken does.
struct PanicsOnDrop;

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        panic!("the lock guard found its file gone");
    }
}

#[worker(queue = "guarded", timeout = "1s", retry = 1, backoff = "0s")]
async fn guarded(job: Job<u32>) {
    if *job == 1 {
        let _guard = PanicsOnDrop;
        tokio::time::sleep(secs(60)).await;
    }
}

/// A job whose timed-out attempt panics while it is dropped has panicked: it is retried, then
/// dead, and its slot goes on to the next job.
#[tokio::test(start_paused = true)]
async fn a_job_that_panics_while_dropped_at_its_timeout_is_retried_then_dead_and_its_slot_goes_on()
{
    let host = TestHost::start(Host::builder().worker(guarded)).unwrap();
    let queue = host.queue::<u32>("guarded");
    queue.send(1).await.unwrap();
    queue.send(2).await.unwrap();
    host.advance(secs(3)).await;

    let mut runs = host.runs("guarded");
    runs.sort_by_key(|r| r.job_id);
    let seen: Vec<(Outcome, u32)> = runs.iter().map(|r| (r.result, r.attempts)).collect();
    assert_eq!(seen, [(Outcome::Panic, 2), (Outcome::Success, 1)]);
    let queue = host.handle().workers().remove(0).queue.unwrap();
    assert_eq!((queue.dead, queue.finished, queue.in_flight), (1, 2, 0));
    assert!(
        queue.dead_jobs[0]
            .error
            .contains("the lock guard found its file gone (while dropped at its timeout of 1s)"),
        "{}",
        queue.dead_jobs[0].error
    );
    host.stop().await.unwrap();
}

/// Jobs handed to an `on_leftovers` hook that panics are lost with it: they are counted as
/// dropped, as they would be with no hook.
#[tokio::test(start_paused = true)]
async fn jobs_handed_to_a_panicking_on_leftovers_hook_are_counted_as_dropped() {
    let metrics = Metrics::new();
    let worker = Worker::builder("spooling")
        .queue::<u32>("spooling")
        .stop_budget(secs(1))
        .on_leftovers(|_: Vec<u32>| panic!("the spool is full"))
        .handler(|_: Job<u32>, ctx: worker_core::Ctx| async move { ctx.cancelled().await });
    let host = metrics.build(Host::builder().worker(worker)).unwrap();
    let handle = host.handle();
    let running = Running::start(host);
    let queue = handle.queue::<u32>("spooling").unwrap();
    for n in 1..=3 {
        queue.send(n).await.unwrap();
    }
    tokio::time::sleep(ms(100)).await;
    running.stop().await.result.unwrap();

    let snapshot = metrics.snapshot();
    let worker = [("worker", "spooling")];
    assert_eq!(snapshot.counter("worker_jobs_left_over_total", &worker), 2);
    assert_eq!(
        snapshot.counter(
            "worker_jobs_dropped_total",
            &[("worker", "spooling"), ("reason", "shutdown")]
        ),
        2
    );
}
