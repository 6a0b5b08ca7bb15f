//! Workers added to and removed from a running host through its handle, as tenants come and
//! go: an added worker is checked as the builder checks, runs on its schedule from when it was
//! added, and shows on every page, probe and list; a removed one stops as at shutdown (its runs
//! cancelled, its queue drained, an overrun aborted) and leaves them all.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use worker_core::testing::TestHost;
use worker_core::{
    BoxError, Ctx, Health, Host, HostHandle, Job, ProbeStatus, SendError, State, Worker,
    WorkerState,
};

use crate::common::{Snapshot, secs, work};

/// A worker that counts its runs.
fn counting(name: &str, every: Duration, runs: &Arc<AtomicU64>) -> Worker {
    let runs = Arc::clone(runs);
    Worker::builder(name).every(every).handler(move || {
        let runs = Arc::clone(&runs);
        async move {
            runs.fetch_add(1, Ordering::SeqCst);
        }
    })
}

/// The workers every list and probe of `handle` shows: `/workers`, readiness, and the
/// `worker` labels of the metrics page.
fn shown(handle: &HostHandle) -> [Vec<String>; 3] {
    let mut listed: Vec<String> = handle.workers().into_iter().map(|w| w.name).collect();
    let mut probed: Vec<String> = handle
        .readiness()
        .workers
        .into_iter()
        .map(|w| w.name)
        .collect();
    let mut labelled: Vec<String> = Snapshot::parse(&handle.render_metrics())
        .series()
        .into_iter()
        .filter_map(|series| series.labels.get("worker").cloned())
        .collect();
    for names in [&mut listed, &mut probed, &mut labelled] {
        names.sort();
        names.dedup();
    }
    [listed, probed, labelled]
}

fn names(names: &[&str]) -> [Vec<String>; 3] {
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    [names.clone(), names.clone(), names]
}

fn changed(handle: &HostHandle, change: &str) -> u64 {
    Snapshot::parse(&handle.render_metrics())
        .counter("worker_workers_changed_total", &[("change", change)])
}

#[tokio::test(start_paused = true)]
async fn a_worker_added_to_a_running_host_runs_from_then_and_shows_everywhere() {
    let base = Arc::new(AtomicU64::new(0));
    let host = TestHost::start(Host::builder().worker(counting("base", secs(10), &base))).unwrap();
    let handle = host.handle().clone();
    host.advance(secs(25)).await;
    assert_eq!(base.load(Ordering::SeqCst), 3, "at 0 s, 10 s and 20 s");
    assert_eq!(shown(&handle), names(&["base"]));

    let acme = Arc::new(AtomicU64::new(0));
    handle
        .add_worker(counting("acme", secs(10), &acme))
        .await
        .unwrap();
    host.advance(Duration::ZERO).await;
    assert_eq!(
        acme.load(Ordering::SeqCst),
        1,
        "an added worker runs at once, as every worker does when its host starts"
    );
    host.advance(secs(21)).await;
    assert_eq!(acme.load(Ordering::SeqCst), 3, "at 25 s, 35 s and 45 s");
    assert_eq!(base.load(Ordering::SeqCst), 5, "the others are untouched");
    let runs = host.runs("acme");
    let gaps: Vec<Duration> = runs
        .windows(2)
        .map(|w| w[1].scheduled_at.duration_since(w[0].scheduled_at).unwrap())
        .collect();
    assert_eq!(
        gaps,
        [secs(10), secs(10)],
        "its schedule counts from when it was added"
    );

    assert_eq!(shown(&handle), names(&["acme", "base"]));
    let page = Snapshot::parse(&handle.render_metrics());
    assert_eq!(page.runs("acme", "success"), 3);
    assert_eq!(changed(&handle, "added"), 1);
    assert_eq!(changed(&handle, "removed"), 0);
    let status = handle
        .workers()
        .into_iter()
        .find(|w| w.name == "acme")
        .unwrap();
    assert_eq!(
        (status.state, status.health, status.schedule.as_str()),
        (WorkerState::Idle, Health::Healthy, "every 10s")
    );
    // The admin actions reach it like any other worker.
    handle.pause("acme").unwrap();
    host.advance(secs(10)).await;
    assert_eq!(acme.load(Ordering::SeqCst), 3, "paused");
    host.stop().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_removed_worker_has_its_run_cancelled_and_leaves_every_page_probe_and_list() {
    let host = Host::builder().build().unwrap();
    let handle = host.handle();
    let running = tokio::spawn(host.run_until(std::future::pending()));
    let cancelled = Arc::new(AtomicBool::new(false));
    let seen = Arc::clone(&cancelled);
    let acme = Worker::builder("acme")
        .every(secs(10))
        .handler(move |ctx: Ctx| {
            let seen = Arc::clone(&seen);
            async move {
                if work(&ctx, secs(3600)).await {
                    seen.store(true, Ordering::SeqCst);
                }
            }
        });
    handle.add_worker(acme).await.unwrap();
    tokio::time::sleep(secs(1)).await;
    assert_eq!(shown(&handle), names(&["acme"]));
    let state = |handle: &HostHandle| handle.workers().first().map(|w| w.state);
    assert_eq!(state(&handle), Some(WorkerState::Running));

    handle.remove_worker("acme").await.unwrap();
    assert!(
        cancelled.load(Ordering::SeqCst),
        "its run saw the cancellation"
    );
    assert_eq!(shown(&handle), names(&[]));
    assert_eq!(changed(&handle, "removed"), 1);
    assert!(handle.runs("acme").unwrap_err().is_unknown_worker());
    assert!(handle.run_now("acme").unwrap_err().is_unknown_worker());
    assert!(
        handle
            .remove_worker("acme")
            .await
            .unwrap_err()
            .is_unknown_worker()
    );

    // The name is free again: a worker added under it starts afresh.
    let again = Arc::new(AtomicU64::new(0));
    handle
        .add_worker(counting("acme", secs(10), &again))
        .await
        .unwrap();
    tokio::time::sleep(secs(15)).await;
    assert_eq!(again.load(Ordering::SeqCst), 2);
    let page = Snapshot::parse(&handle.render_metrics());
    assert_eq!(page.runs("acme", "success"), 2);
    assert_eq!(page.runs("acme", "cancelled"), 0, "counted afresh");
    assert_eq!(changed(&handle, "added"), 2);
    handle.shutdown();
    running.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_removal_whose_runs_overrun_aborts_them_and_leaves_the_hosts_shutdown_clean() {
    let host = Host::builder().shutdown_timeout(secs(5)).build().unwrap();
    let handle = host.handle();
    let running = tokio::spawn(host.run_until(std::future::pending()));
    let deaf = |name: &str| {
        Worker::builder(name).every(secs(60)).handler(|| async {
            // Deaf to cancellation.
            tokio::time::sleep(secs(3600)).await;
        })
    };
    handle.add_worker(deaf("deaf")).await.unwrap();
    let budgeted = Worker::builder("budgeted")
        .every(secs(60))
        .stop_budget(secs(2))
        .handler(|| async { tokio::time::sleep(secs(3600)).await });
    handle.add_worker(budgeted).await.unwrap();
    tokio::time::sleep(secs(1)).await;

    let asked = Instant::now();
    let err = handle.remove_worker("deaf").await.unwrap_err();
    assert_eq!(asked.elapsed(), secs(5), "the host's shutdown timeout");
    assert!(err.is_shutdown_timeout(), "{err}");
    assert_eq!(err.overran(), ["deaf"]);
    assert_eq!(err.worker(), Some("deaf"));
    assert_eq!(
        err.to_string(),
        "removed the worker `deaf` after aborting its runs: they overran its stop budget or \
         the host's shutdown timeout (5s)"
    );
    let asked = Instant::now();
    let err = handle.remove_worker("budgeted").await.unwrap_err();
    assert_eq!(asked.elapsed(), secs(2), "its own stop budget");
    assert_eq!(err.overran(), ["budgeted"]);
    assert_eq!(shown(&handle), names(&[]), "removed all the same");

    // What the removals aborted is theirs: the host's own stop is clean.
    handle.shutdown();
    running.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_removal_goes_on_when_its_future_is_dropped_and_the_shutdown_waits_for_it() {
    let host = Host::builder().build().unwrap();
    let handle = host.handle();
    let running = tokio::spawn(host.run_until(std::future::pending()));
    let finished = Arc::new(AtomicBool::new(false));
    let done = Arc::clone(&finished);
    let slow = Worker::builder("slow")
        .every(secs(60))
        .handler(move |ctx: Ctx| {
            let done = Arc::clone(&done);
            async move {
                ctx.cancelled().await;
                // Three seconds of clean-up once cancelled.
                tokio::time::sleep(secs(3)).await;
                done.store(true, Ordering::SeqCst);
            }
        });
    handle.add_worker(slow).await.unwrap();
    tokio::time::sleep(secs(1)).await;
    let dropped = tokio::time::timeout(secs(1), handle.remove_worker("slow")).await;
    assert!(dropped.is_err(), "the caller gave up after a second");
    assert!(
        handle
            .remove_worker("slow")
            .await
            .unwrap_err()
            .is_not_running(),
        "it is being removed already"
    );
    let err = handle
        .add_worker(counting("slow", secs(1), &Arc::new(AtomicU64::new(0))))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("is being removed: add it once"),
        "{err}"
    );
    handle.shutdown();
    running.await.unwrap().unwrap();
    assert!(
        finished.load(Ordering::SeqCst),
        "its clean-up ran to the end"
    );
    assert_eq!(shown(&handle), names(&[]));
}

#[tokio::test(start_paused = true)]
async fn a_queue_worker_added_at_run_time_takes_jobs_and_drains_its_queue_when_removed() {
    let host = TestHost::start(
        Host::builder().worker(
            Worker::builder("emails")
                .queue::<u32>("emails")
                .handler(|_: Job<u32>| async {}),
        ),
    )
    .unwrap();
    let handle = host.handle().clone();
    let done = Arc::new(Mutex::new(Vec::new()));
    let sent = Arc::clone(&done);
    let acme = Worker::builder("emails-acme")
        .queue::<u32>("emails-acme")
        .handler(move |job: Job<u32>| {
            let sent = Arc::clone(&sent);
            async move {
                tokio::time::sleep(secs(1)).await;
                sent.lock().unwrap().push(*job);
            }
        });
    handle.add_worker(acme).await.unwrap();
    let queue = handle.queue::<u32>("emails-acme").unwrap();
    for job in 0..5 {
        queue.send(job).await.unwrap();
    }
    handle.remove_worker("emails-acme").await.unwrap();
    assert_eq!(
        *done.lock().unwrap(),
        [0, 1, 2, 3, 4],
        "the jobs sent before the removal were run"
    );
    assert!(matches!(queue.send(5).await, Err(SendError::Closed(5))));
    assert!(
        handle
            .queue::<u32>("emails-acme")
            .unwrap_err()
            .is_unknown_queue()
    );

    // A queue the host was built with stays the one its `Queue<T>` arguments hold: once its
    // worker is removed, no other may consume a queue of that name.
    handle.remove_worker("emails").await.unwrap();
    let again = Worker::builder("emails")
        .queue::<u32>("emails")
        .handler(|_: Job<u32>| async {});
    let err = handle.add_worker(again).await.unwrap_err();
    assert!(err.is_queue_declaration(), "{err}");
    assert!(
        err.to_string()
            .contains("was consumed by a worker the host was built with"),
        "{err}"
    );
    let built = TestHost::start(
        Host::builder().worker(
            Worker::builder("emails")
                .queue::<u32>("emails")
                .handler(|_: Job<u32>| async {}),
        ),
    )
    .unwrap();
    let handle_built = built.handle().clone();

    // A second consumer of a queue is refused, as by the builder.
    let second = Worker::builder("emails-2")
        .queue::<u32>("emails")
        .handler(|_: Job<u32>| async {});
    let err = handle_built.add_worker(second).await.unwrap_err();
    assert!(err.is_queue_declaration(), "{err}");
    assert!(
        err.to_string()
            .contains("the queue `emails` is already consumed by the worker `emails`"),
        "{err}"
    );
    built.stop().await.unwrap();
    host.stop().await.unwrap();
}

struct Billing;

#[tokio::test(start_paused = true)]
async fn adding_refuses_what_the_builder_refuses_and_nothing_comes_or_goes_once_the_host_stopped() {
    let base = Arc::new(AtomicU64::new(0));
    let host = TestHost::start(Host::builder().state(Billing).worker(counting(
        "base",
        secs(10),
        &base,
    )))
    .unwrap();
    let handle = host.handle().clone();
    let add = |worker: Worker| {
        let handle = handle.clone();
        async move { handle.add_worker(worker).await.unwrap_err() }
    };
    let err = add(counting("base", secs(1), &base)).await;
    assert!(err.is_duplicate_name(), "{err}");
    let err = add(counting("zero", Duration::ZERO, &base)).await;
    assert!(err.is_config(), "{err}");
    assert_eq!(err.worker(), Some("zero"));
    let needs = Worker::builder("needs")
        .every(secs(1))
        .handler(|_: State<String>| async {});
    let err = add(needs).await;
    assert!(err.is_missing_dependency(), "{err}");
    let durable = Worker::builder("durable")
        .durable_queue::<u32>("durable")
        .handler(|_: Job<u32>| async {});
    assert!(add(durable).await.is_queue_declaration());
    let singleton = Worker::builder("singleton")
        .every(secs(1))
        .singleton()
        .handler(|| async {});
    assert!(add(singleton).await.is_lease_backend());
    assert!(
        handle
            .remove_worker("nobody")
            .await
            .unwrap_err()
            .is_unknown_worker()
    );
    assert_eq!(shown(&handle), names(&["base"]), "nothing refused shows");
    assert_eq!(changed(&handle, "added"), 0);

    // The host's state reaches added workers.
    let billed = Worker::builder("billed")
        .every(secs(1))
        .handler(|_: State<Billing>| async { Ok::<_, BoxError>(()) });
    handle.add_worker(billed).await.unwrap();

    host.stop().await.unwrap();
    let err = handle
        .add_worker(counting("late", secs(1), &base))
        .await
        .unwrap_err();
    assert!(err.is_not_running(), "{err}");
    assert_eq!(
        err.to_string(),
        "cannot add the worker `late`: the host is not running (it stopped, or stops)"
    );
    assert!(
        handle
            .remove_worker("base")
            .await
            .unwrap_err()
            .is_not_running()
    );
}

#[tokio::test(start_paused = true)]
async fn a_worker_added_before_the_host_runs_starts_with_it_and_a_host_never_run_answers() {
    let host = Host::builder().build().unwrap();
    let handle = host.handle();
    let runs = Arc::new(AtomicU64::new(0));
    let adding = tokio::spawn({
        let (handle, worker) = (handle.clone(), counting("early", secs(10), &runs));
        async move { handle.add_worker(worker).await }
    });
    tokio::time::sleep(secs(1)).await;
    assert!(!adding.is_finished(), "it waits for the host to run");
    let running = tokio::spawn(host.run_until(std::future::pending()));
    adding.await.unwrap().unwrap();
    tokio::time::sleep(secs(15)).await;
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    handle.shutdown();
    running.await.unwrap().unwrap();

    let never = Host::builder().build().unwrap();
    let handle = never.handle();
    let waiting = tokio::spawn({
        let (handle, worker) = (handle.clone(), counting("never", secs(10), &runs));
        async move { handle.add_worker(worker).await }
    });
    tokio::time::sleep(secs(1)).await;
    drop(never);
    assert!(waiting.await.unwrap().unwrap_err().is_not_running());
}

#[tokio::test(start_paused = true)]
async fn removing_a_stale_worker_that_gates_readiness_makes_the_host_ready_again() {
    let host = TestHost::start(Host::builder()).unwrap();
    let handle = host.handle().clone();
    let failing = Worker::builder("failing")
        .every(secs(1))
        .stale_after(secs(5))
        .gates_readiness(true)
        .handler(|| async { Err::<(), BoxError>("the tenant's API is down".into()) });
    handle.add_worker(failing).await.unwrap();
    host.advance(secs(10)).await;
    assert_eq!(handle.readiness().status, ProbeStatus::Fail);
    handle.remove_worker("failing").await.unwrap();
    assert_eq!(handle.readiness().status, ProbeStatus::Ok);
    host.stop().await.unwrap();
}
