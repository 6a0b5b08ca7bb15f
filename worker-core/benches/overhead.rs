//! What `worker-core` costs over bare tokio, measured in one run against a bare baseline. Every
//! ratio is framework over bare measured in the same run under the same conditions: the same
//! runtime (multi-thread, 2 worker threads), the same number of tasks, the same period, the same
//! body, the same subscriber installed or not. The bare variant is tasks looping on
//! `tokio::time::interval` (`MissedTickBehavior::Skip`) and awaiting the body after each tick.
//!
//! CPU rows: process CPU time (user + sys, every thread) per tick executed.
//!
//! - `cpu`: an empty body on `every = "10ms"`, at 1, 100 and 1000 concurrent workers, no tracing
//!   subscriber installed.
//! - `subscriber`: 1000 workers on `every = "10ms"`, empty body, with an INFO
//!   `tracing_subscriber::fmt()` subscriber writing to `std::io::sink()` as the global default.
//!   A global default cannot be removed once set, so this row runs in a child process of the
//!   benchmark binary (re-executed with `OVERHEAD_CHILD=subscriber`), bare and framework alike.
//!   It runs twice: with the workers at the default `span_level` (debug: the span does not reach
//!   the INFO subscriber; the target's row) and at `span_level = info` (it does: what opting in
//!   costs). The child first checks whether the framework's `worker.run` span is the current
//!   span inside the body, and the report says whether that is as the level says.
//! - `ten_thousand`: 10,000 workers on `every = "1s"`, empty body: 10,000 ticks a second, in
//!   bursts of 10,000 (the bare tasks share one start instant, as the framework's workers share
//!   one grid anchor). The warm-up starts once every worker has ticked once, so neither the
//!   start of 10,000 tasks nor their first, cold burst is measured; the window is a whole number
//!   of periods, one more than `OVERHEAD_WINDOW_MS` rounds up to and at least two (3 s by
//!   default), so every window holds the same number of bursts whatever its phase.
//! - `big_body`: 1000 workers on `every = "10ms"` whose body's future holds a 4 KiB buffer
//!   across one await (`tokio::task::yield_now`); the size of the body's future is printed.
//!
//! Other rows:
//!
//! - `memory`: live heap bytes per idle worker at 10,000 workers (`every = 1h, after = 1h`),
//!   against tasks parked on `interval.tick()`; bytes allocated minus bytes freed through the
//!   global allocator (`stats_alloc`, which folds reallocations into both), from before the
//!   tasks start until every one of them is parked.
//! - `shutdown`: the time from `HostHandle::shutdown()` to `run_until` returning with 10,000
//!   idle workers, against cancelling 10,000 bare tasks and waiting for them.
//!
//! ```text
//! cargo bench -p worker-core --bench overhead
//! OVERHEAD_SAMPLES=1 OVERHEAD_WINDOW_MS=300 cargo bench -p worker-core --bench overhead
//! OVERHEAD_ROWS=subscriber,memory cargo bench -p worker-core --bench overhead
//! ```
//!
//! A Prometheus recorder is installed globally at the start (in the child too), as `.serve(..)`
//! installs it for the metrics a service records itself; the hosts keep their workers' series in
//! their own block of atomics per worker and render them on a scrape, and the benchmark scrapes
//! each host once per measured window (every 2 to 3 s), inside the window, and measures that
//! scrape's CPU apart: the ratios the targets read charge one scrape every 15 s, as Prometheus
//! is usually set up (a page of 10,000 workers takes about 0.4 s of CPU to render). The allocator counts every allocation for the whole run (a few atomic adds per
//! allocation, on both variants; the allocations per tick are printed beside the CPU).
//!
//! `OVERHEAD_FACADE=on` runs the hosts with the bridge to the `metrics` facade
//! (`.metrics_facade()`): every second it publishes the workers' counters and gauges into that
//! recorder, and each run records its duration and lag there too. The difference with a run
//! without it is what the bridge costs. Its first publication fetches every series' handle
//! from the recorder, once in a host's life: the warm-up is then 2.5 s, so windows measure the
//! steady state.
//!
//! `OVERHEAD_SAMPLES` (default 5) and `OVERHEAD_WINDOW_MS` (default 2000) shorten a run, for
//! example under a profiler; `OVERHEAD_ROWS` (default all: `cpu,subscriber,ten_thousand,
//! big_body,memory,shutdown`) picks rows. The targets are printed as PASS/FAIL, never asserted: a
//! benchmark is not a test.

use std::alloc::System;
use std::future::{Future, pending};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use cpu_time::{ProcessTime, ThreadTime};
use metrics_exporter_prometheus::PrometheusBuilder;
use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;
use tokio::time::{MissedTickBehavior, interval_at};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use worker_core::{Handler, Host, IntoWorker as _, SpanLevel, Worker, WorkerBuilder, worker};

const PERIOD: Duration = Duration::from_millis(10);
const CONCURRENCY: [usize; 3] = [1, 100, 1000];
const MANY_WORKERS: usize = 10_000;
const MANY_PERIOD: Duration = Duration::from_secs(1);
const IDLE_WORKERS: usize = 10_000;
const SHUTDOWN_REPETITIONS: usize = 5;
const WARM_UP: Duration = Duration::from_millis(500);
/// The warm-up with `OVERHEAD_FACADE=on`: past the bridge's first publication, at 1 s.
const FACADE_WARM_UP: Duration = Duration::from_millis(2500);

/// Whether the hosts run the bridge to the `metrics` facade (`OVERHEAD_FACADE=on`).
fn facade_on() -> bool {
    std::env::var("OVERHEAD_FACADE").as_deref() == Ok("on")
}
const BIG_BODY_BYTES: usize = 4096;

const TARGET_CPU_RATIO: f64 = 1.5;
const TARGET_SUBSCRIBER_RATIO: f64 = 2.0;
const TARGET_MANY_RATIO: f64 = 2.5;
const TARGET_BYTES_PER_WORKER: f64 = 4096.0;
const TARGET_SHUTDOWN: Duration = Duration::from_millis(30);

/// Selects the row a child process of the benchmark measures.
const CHILD_ENV: &str = "OVERHEAD_CHILD";
/// Starts the child's result line on its standard output.
/// The `span_level` of the subscriber child's workers: `info`, or the default.
const SPAN_LEVEL_ENV: &str = "OVERHEAD_SPAN_LEVEL";
const CHILD_RESULT: &str = "OVERHEAD_RESULT";

const ROWS: [&str; 6] = [
    "cpu",
    "subscriber",
    "ten_thousand",
    "big_body",
    "memory",
    "shutdown",
];

/// Ticks executed by every body of every variant; read before and after each window.
static TICKS: AtomicU64 = AtomicU64::new(0);

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Live bytes allocated through the global allocator since the start: `stats_alloc` adds a
/// reallocation's growth to the bytes allocated and its shrinkage to the bytes freed.
fn live_bytes() -> i64 {
    let stats = GLOBAL.stats();
    let signed = |bytes: usize| i64::try_from(bytes).expect("fewer than 2^63 bytes allocated");
    signed(stats.bytes_allocated) - signed(stats.bytes_deallocated)
}

// ---------------------------------------------------------------------------------------------
// The workloads

/// The empty body: counts the tick.
async fn empty_body() {
    TICKS.fetch_add(1, Ordering::Relaxed);
}

/// A body whose future holds `BIG_BODY_BYTES` across one await.
async fn big_body() {
    let buffer = [0u8; BIG_BODY_BYTES];
    tokio::task::yield_now().await;
    std::hint::black_box(&buffer);
    TICKS.fetch_add(1, Ordering::Relaxed);
}

/// The one worker declared with the attribute; the others come from `Worker::builder`.
#[worker(every = "10ms")]
async fn attribute_tick() {
    TICKS.fetch_add(1, Ordering::Relaxed);
}

/// The Prometheus recorder of the `metrics` facade, installed globally once, as a service that
/// calls `.serve(..)` has it.
fn install_recorder() {
    let recorder = PrometheusBuilder::new().build_recorder();
    metrics::set_global_recorder(recorder).expect("no other global recorder in this process");
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// A running framework host and what stops it.
struct RunningHost {
    stop: worker_core::HostHandle,
    join: JoinHandle<Result<(), worker_core::Error>>,
}

impl RunningHost {
    /// Builds a host of `workers` and spawns `run_until` on the runtime.
    fn start(rt: &Runtime, workers: impl IntoIterator<Item = Worker>) -> Self {
        let mut builder = Host::builder()
            .workers(workers)
            .shutdown_timeout(Duration::from_secs(10));
        if facade_on() {
            builder = builder.metrics_facade();
        }
        let host = builder.build().expect("the benchmark's host is valid");
        let stop = host.handle();
        let join = rt.spawn(host.run_until(pending()));
        Self { stop, join }
    }

    /// Asks the host to stop and returns how long `run_until` took to return.
    fn shut_down(self, rt: &Runtime) -> Duration {
        let started = Instant::now();
        self.stop.shutdown();
        rt.block_on(self.join)
            .expect("the host task does not panic")
            .expect("idle workers stop before the deadline");
        started.elapsed()
    }
}

/// What a CPU row runs, on both variants.
#[derive(Clone, Copy)]
enum Body {
    Empty,
    Big,
}

/// `n` framework workers on `every(period)`. The empty body at 10 ms has one worker declared
/// with the attribute, as before; the others are built.
fn ticking_workers(n: usize, period: Duration, body: Body) -> Vec<Worker> {
    fn built<H: Handler<()> + Clone>(n: usize, period: Duration, body: &H) -> Vec<Worker> {
        (0..n)
            .map(|i| {
                with_span_level(Worker::builder(format!("w{i}")).every(period))
                    .handler(body.clone())
            })
            .collect()
    }
    match body {
        Body::Empty if period == PERIOD && n > 0 && span_level().is_none() => {
            std::iter::once(attribute_tick.into_worker())
                .chain(built(n - 1, period, &empty_body))
                .collect()
        }
        Body::Empty => built(n, period, &empty_body),
        Body::Big => built(n, period, &big_body),
    }
}

/// The `span_level` the subscriber child gives its workers (`OVERHEAD_SPAN_LEVEL=info`);
/// `None`: the default.
fn span_level() -> Option<SpanLevel> {
    match std::env::var(SPAN_LEVEL_ENV).ok()?.as_str() {
        "info" => Some(SpanLevel::Info),
        _ => None,
    }
}

fn with_span_level(builder: WorkerBuilder) -> WorkerBuilder {
    match span_level() {
        Some(level) => builder.span_level(level),
        None => builder,
    }
}

fn idle_workers(n: usize) -> Vec<Worker> {
    (0..n)
        .map(|i| {
            Worker::builder(format!("idle{i}"))
                .every(Duration::from_hours(1))
                .after(Duration::from_hours(1))
                .handler(empty_body)
        })
        .collect()
}

/// `n` bare tasks ticking on `interval(period)` with `MissedTickBehavior::Skip`, first tick
/// after `first`, each awaiting `body()` after its tick. They share one start instant, as the
/// framework's workers share one grid anchor, so neither variant gets its timers batched more
/// than the other.
fn spawn_bare_with<F, Fut>(
    rt: &Runtime,
    n: usize,
    first: Duration,
    period: Duration,
    body: F,
) -> Vec<JoinHandle<()>>
where
    F: Fn() -> Fut + Copy + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let start = tokio::time::Instant::now() + first;
    (0..n)
        .map(|_| {
            rt.spawn(async move {
                let mut every = interval_at(start, period);
                every.set_missed_tick_behavior(MissedTickBehavior::Skip);
                loop {
                    every.tick().await;
                    body().await;
                }
            })
        })
        .collect()
}

fn spawn_bare(
    rt: &Runtime,
    n: usize,
    first: Duration,
    period: Duration,
    body: Body,
) -> Vec<JoinHandle<()>> {
    match body {
        Body::Empty => spawn_bare_with(rt, n, first, period, empty_body),
        Body::Big => spawn_bare_with(rt, n, first, period, big_body),
    }
}

fn stop_bare(rt: &Runtime, tasks: Vec<JoinHandle<()>>) {
    for task in &tasks {
        task.abort();
    }
    rt.block_on(async {
        for task in tasks {
            let _ = task.await;
        }
    });
}

// ---------------------------------------------------------------------------------------------
// Measurements

#[derive(Clone)]
struct Settings {
    samples: usize,
    window: Duration,
    rows: Vec<String>,
}

impl Settings {
    fn from_env() -> Self {
        let read = |name: &str, default: u64| {
            std::env::var(name)
                .ok()
                .and_then(|value| value.parse::<u64>().ok())
                .filter(|&value| value > 0)
                .unwrap_or(default)
        };
        let rows: Vec<String> = std::env::var("OVERHEAD_ROWS")
            .ok()
            .filter(|rows| !rows.trim().is_empty())
            .map_or_else(
                || ROWS.iter().map(ToString::to_string).collect(),
                |rows| rows.split(',').map(|row| row.trim().to_owned()).collect(),
            );
        for row in &rows {
            assert!(
                ROWS.contains(&row.as_str()),
                "OVERHEAD_ROWS: unknown row {row:?}; rows are {}",
                ROWS.join(",")
            );
        }
        Self {
            samples: usize::try_from(read("OVERHEAD_SAMPLES", 5)).unwrap_or(5),
            window: Duration::from_millis(read("OVERHEAD_WINDOW_MS", 2000)),
            rows,
        }
    }

    fn runs(&self, row: &str) -> bool {
        self.rows.iter().any(|r| r == row)
    }

    /// The window of the 10,000 x 1 s row: whole periods, one more than the window rounds up
    /// to, at least two.
    fn many_window(&self) -> Duration {
        let periods = self.window.as_nanos().div_ceil(MANY_PERIOD.as_nanos()) + 1;
        MANY_PERIOD * u32::try_from(periods.max(2)).unwrap_or(u32::MAX)
    }
}

/// One window: CPU nanoseconds per executed tick, ticks per second, allocations per tick.
#[derive(Clone, Copy)]
struct Sample {
    ns_per_tick: f64,
    ticks_per_sec: f64,
    allocs_per_tick: f64,
    scrape_ns_per_tick: f64,
    /// What the scrape costs per tick when the host is scraped once every [`SCRAPE_INTERVAL`].
    scrape_interval_ns_per_tick: f64,
}

/// How often Prometheus scrapes a service, in the setting most deployments use (its default is
/// one minute): the ratios the targets read charge the framework one scrape per this interval.
const SCRAPE_INTERVAL: Duration = Duration::from_secs(15);

impl Sample {
    /// The sample as five numbers, for the child's result line.
    fn fields(&self) -> String {
        format!(
            "{} {} {} {} {}",
            self.ns_per_tick,
            self.ticks_per_sec,
            self.allocs_per_tick,
            self.scrape_ns_per_tick,
            self.scrape_interval_ns_per_tick
        )
    }

    /// The sample from the five numbers of `fields`.
    fn parse(fields: &[&str]) -> Self {
        let number = |i: usize| fields[i].parse::<f64>().expect("a number");
        Self {
            ns_per_tick: number(0),
            ticks_per_sec: number(1),
            allocs_per_tick: number(2),
            scrape_ns_per_tick: number(3),
            scrape_interval_ns_per_tick: number(4),
        }
    }
}

/// Measures one window of `load`, running: waits for the first tick of every worker if the
/// load asks for it (`TICKS` was `base` before the tasks started), scrapes once outside the
/// window, warms up, then reads process CPU time, the allocation count and the tick counter
/// around `window` and a second scrape at its end (inside it), so each window pays for one
/// scrape.
#[allow(
    clippy::cast_precision_loss,
    reason = "tick counts and nanoseconds of a few seconds fit an f64 exactly enough"
)]
fn sample_cpu(load: &Load, base: u64, scrape: &dyn Fn()) -> Sample {
    if load.after_first_ticks {
        let first = base + u64::try_from(load.workers).expect("a count fits u64");
        let deadline = Instant::now() + Duration::from_secs(30);
        while TICKS.load(Ordering::Relaxed) < first {
            assert!(Instant::now() < deadline, "the workers never ticked");
            thread::sleep(Duration::from_millis(1));
        }
    }
    scrape();
    // With the bridge, its first publication (which fetches every series' handle from the
    // recorder, once in a host's life) stays out of the window: the row measures the steady
    // state.
    thread::sleep(if facade_on() { FACADE_WARM_UP } else { WARM_UP });
    let allocs = GLOBAL.stats().allocations;
    let (cpu, ticks, wall) = (
        ProcessTime::now(),
        TICKS.load(Ordering::Relaxed),
        Instant::now(),
    );
    thread::sleep(load.window);
    let scraping = ThreadTime::now();
    scrape();
    let scrape_cpu = scraping.elapsed();
    let ticks = TICKS.load(Ordering::Relaxed) - ticks;
    let cpu = cpu.elapsed();
    let wall = wall.elapsed();
    let allocs = GLOBAL.stats().allocations - allocs;
    let per_tick = ticks.max(1) as f64;
    Sample {
        ns_per_tick: cpu.as_nanos() as f64 / per_tick,
        ticks_per_sec: ticks as f64 / wall.as_secs_f64(),
        allocs_per_tick: allocs as f64 / per_tick,
        scrape_ns_per_tick: scrape_cpu.as_nanos() as f64 / per_tick,
        scrape_interval_ns_per_tick: scrape_cpu.as_nanos() as f64
            / (ticks as f64 / wall.as_secs_f64() * SCRAPE_INTERVAL.as_secs_f64()).max(1.0),
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn median_duration(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

fn summarize(samples: &[Sample]) -> Sample {
    Sample {
        ns_per_tick: median(samples.iter().map(|s| s.ns_per_tick).collect()),
        ticks_per_sec: median(samples.iter().map(|s| s.ticks_per_sec).collect()),
        allocs_per_tick: median(samples.iter().map(|s| s.allocs_per_tick).collect()),
        scrape_ns_per_tick: median(samples.iter().map(|s| s.scrape_ns_per_tick).collect()),
        scrape_interval_ns_per_tick: median(
            samples
                .iter()
                .map(|s| s.scrape_interval_ns_per_tick)
                .collect(),
        ),
    }
}

/// What one CPU row runs.
#[derive(Clone, Copy)]
struct Load {
    workers: usize,
    period: Duration,
    body: Body,
    window: Duration,
    /// Whether the warm-up starts once every worker has ticked once: with a long period, the
    /// first burst of ticks and the start of the tasks stay out of the window.
    after_first_ticks: bool,
}

struct CpuRow {
    label: String,
    bare: Sample,
    framework: Sample,
}

impl CpuRow {
    fn ratio(&self) -> f64 {
        self.framework.ns_per_tick / self.bare.ns_per_tick
    }

    /// The ratio with the framework scraped once every [`SCRAPE_INTERVAL`] rather than once
    /// per window: what the targets read.
    fn ratio_at_interval(&self) -> f64 {
        (self.framework.ns_per_tick - self.framework.scrape_ns_per_tick
            + self.framework.scrape_interval_ns_per_tick)
            / self.bare.ns_per_tick
    }
}

/// Alternates bare and framework samples, each on a freshly started set of tasks, so a change
/// in machine speed during the run (a noisy neighbour on a VM) hits both variants alike.
fn measure_cpu(rt: &Runtime, samples: usize, load: Load, label: String) -> CpuRow {
    let mut bare = Vec::with_capacity(samples);
    let mut framework = Vec::with_capacity(samples);
    for _ in 0..samples {
        let ticks = TICKS.load(Ordering::Relaxed);
        let tasks = spawn_bare(rt, load.workers, Duration::ZERO, load.period, load.body);
        bare.push(sample_cpu(&load, ticks, &|| {}));
        stop_bare(rt, tasks);

        let ticks = TICKS.load(Ordering::Relaxed);
        let host = RunningHost::start(rt, ticking_workers(load.workers, load.period, load.body));
        framework.push(sample_cpu(&load, ticks, &|| {
            std::hint::black_box(host.stop.render_metrics());
        }));
        host.shut_down(rt);
    }
    eprintln!("  measured {label}");
    CpuRow {
        label,
        bare: summarize(&bare),
        framework: summarize(&framework),
    }
}

/// Whether the body of a framework worker runs inside the `worker.run` span, as the installed
/// subscriber sees it (none installed: no span).
fn span_reaches_subscriber(rt: &Runtime) -> bool {
    static SEEN: AtomicBool = AtomicBool::new(false);
    SEEN.store(false, Ordering::SeqCst);
    let probe = with_span_level(Worker::builder("span-probe").every(PERIOD)).handler(|| async {
        let current = tracing::Span::current();
        if current.metadata().map(tracing::Metadata::name) == Some("worker.run") {
            SEEN.store(true, Ordering::SeqCst);
        }
    });
    let host = RunningHost::start(rt, [probe]);
    thread::sleep(Duration::from_millis(100));
    host.shut_down(rt);
    SEEN.load(Ordering::SeqCst)
}

/// The subscriber row, in this process (the child): installs the INFO fmt subscriber as the
/// global default, checks that `worker.run` spans reach it, measures 1000 x 10 ms and prints
/// the result on one line of standard output.
fn child_subscriber(settings: &Settings) {
    install_recorder();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_writer(std::io::sink)
        .finish();
    tracing::subscriber::set_global_default(subscriber).expect("no other global subscriber");
    let rt = runtime();
    let levels =
        tracing::enabled!(tracing::Level::INFO) && !tracing::enabled!(tracing::Level::DEBUG);
    let span = span_reaches_subscriber(&rt);
    let load = Load {
        workers: 1000,
        period: PERIOD,
        body: Body::Empty,
        window: settings.window,
        after_first_ticks: false,
    };
    let row = measure_cpu(&rt, settings.samples, load, subscriber_label(span_level()));
    println!(
        "{CHILD_RESULT} {} {} {}",
        row.bare.fields(),
        row.framework.fields(),
        levels && span
    );
}

fn subscriber_label(level: Option<SpanLevel>) -> String {
    match level {
        Some(level) => format!("1000 x 10ms, INFO fmt, span {}", level.as_str()),
        None => "1000 x 10ms, INFO fmt subscriber".to_owned(),
    }
}

/// Runs the subscriber row in a child process of this binary, its workers at `level`, and
/// reads its result: the row, and whether the `worker.run` span reached the subscriber.
fn measure_subscriber(level: Option<SpanLevel>) -> SubscriberRow {
    let exe = std::env::current_exe().expect("the benchmark binary's path");
    let output = Command::new(exe)
        .env(CHILD_ENV, "subscriber")
        .env(SPAN_LEVEL_ENV, level.map_or("default", SpanLevel::as_str))
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .expect("the benchmark binary runs as a child");
    assert!(output.status.success(), "the subscriber child failed");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find_map(|line| line.strip_prefix(CHILD_RESULT))
        .expect("the subscriber child prints its result");
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(fields.len(), 11, "the subscriber child's result: {line}");
    let row = CpuRow {
        label: subscriber_label(level),
        bare: Sample::parse(&fields[0..5]),
        framework: Sample::parse(&fields[5..10]),
    };
    SubscriberRow {
        row,
        level,
        reached: fields[10] == "true",
    }
}

/// A subscriber row: at the default `span_level` (the target's row: the span does not reach an
/// INFO subscriber), or at `span_level = info` (it does: what opting in costs).
struct SubscriberRow {
    row: CpuRow,
    level: Option<SpanLevel>,
    reached: bool,
}

impl SubscriberRow {
    /// Whether the span reached the subscriber as the level says it should.
    fn as_expected(&self) -> bool {
        self.reached == (self.level == Some(SpanLevel::Info))
    }
}

/// Waits until at least `tasks` tasks are alive and the runtime has gone quiet: nothing queued,
/// no worker thread busy and the heap unchanged for three checks in a row. That is when every
/// worker has been polled once and is parked on its first sleep.
fn wait_until_parked(rt: &Runtime, tasks: usize) {
    let metrics = rt.metrics();
    let deadline = Instant::now() + Duration::from_secs(30);
    while metrics.num_alive_tasks() < tasks {
        assert!(Instant::now() < deadline, "the tasks never started");
        thread::sleep(Duration::from_millis(10));
    }
    let state = || {
        let busy: Duration = (0..metrics.num_workers())
            .map(|worker| metrics.worker_total_busy_duration(worker))
            .sum();
        (busy, live_bytes(), metrics.global_queue_depth())
    };
    let mut last = state();
    let mut steady = 0;
    while steady < 3 {
        assert!(Instant::now() < deadline, "the runtime never went idle");
        thread::sleep(Duration::from_millis(50));
        let now = state();
        steady = if now == last && now.2 == 0 {
            steady + 1
        } else {
            0
        };
        last = now;
    }
}

#[allow(
    clippy::cast_precision_loss,
    reason = "byte counts of a few hundred MiB fit an f64 exactly enough"
)]
fn per_task(before: i64, after: i64, tasks: usize) -> f64 {
    (after - before) as f64 / tasks as f64
}

/// Live heap bytes per idle task.
struct Memory {
    bare: f64,
    framework: f64,
}

/// Live bytes per idle task, bare and framework.
fn measure_memory(rt: &Runtime) -> Memory {
    thread::sleep(Duration::from_millis(100));

    let before = live_bytes();
    let tasks = spawn_bare(
        rt,
        IDLE_WORKERS,
        Duration::from_hours(1),
        Duration::from_hours(1),
        Body::Empty,
    );
    wait_until_parked(rt, IDLE_WORKERS);
    let bare = per_task(before, live_bytes(), IDLE_WORKERS);
    stop_bare(rt, tasks);
    thread::sleep(Duration::from_millis(100));

    let before = live_bytes();
    let host = RunningHost::start(rt, idle_workers(IDLE_WORKERS));
    wait_until_parked(rt, IDLE_WORKERS);
    let framework = per_task(before, live_bytes(), IDLE_WORKERS);
    host.shut_down(rt);

    eprintln!("  measured idle memory");
    Memory { bare, framework }
}

/// Median shutdown time of 10,000 idle workers: (bare, framework).
fn measure_shutdown(rt: &Runtime) -> (Duration, Duration) {
    let bare = (0..SHUTDOWN_REPETITIONS)
        .map(|_| {
            let root = CancellationToken::new();
            let tracker = TaskTracker::new();
            let start = tokio::time::Instant::now() + Duration::from_hours(1);
            for _ in 0..IDLE_WORKERS {
                let token = root.child_token();
                tracker.spawn_on(
                    async move {
                        let mut every = interval_at(start, Duration::from_hours(1));
                        every.set_missed_tick_behavior(MissedTickBehavior::Skip);
                        loop {
                            tokio::select! {
                                biased;
                                () = token.cancelled() => break,
                                _ = every.tick() => empty_body().await,
                            }
                        }
                    },
                    rt.handle(),
                );
            }
            tracker.close();
            wait_until_parked(rt, IDLE_WORKERS);
            let started = Instant::now();
            root.cancel();
            rt.block_on(tracker.wait());
            started.elapsed()
        })
        .collect();

    let framework = (0..SHUTDOWN_REPETITIONS)
        .map(|_| {
            let host = RunningHost::start(rt, idle_workers(IDLE_WORKERS));
            wait_until_parked(rt, IDLE_WORKERS);
            host.shut_down(rt)
        })
        .collect();

    eprintln!("  measured shutdown");
    (median_duration(bare), median_duration(framework))
}

// ---------------------------------------------------------------------------------------------
// Report

/// Everything a run measured; `None` for a row not selected.
#[derive(Default)]
struct Report {
    cpu: Vec<CpuRow>,
    subscriber: Vec<SubscriberRow>,
    many: Option<CpuRow>,
    big: Option<CpuRow>,
    memory: Option<Memory>,
    shutdown: Option<(Duration, Duration)>,
}

fn verdict(pass: bool) -> &'static str {
    if pass { "PASS" } else { "FAIL" }
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn print_cpu_row(row: &CpuRow) {
    println!(
        "  {:<34} | {:>7.0} {:>7.0} {:>5.2} | {:>7.0} {:>7.0} {:>5.2} {:>7.0} | {:>6.2} {:>7.2}",
        row.label,
        row.bare.ns_per_tick,
        row.bare.ticks_per_sec,
        row.bare.allocs_per_tick,
        row.framework.ns_per_tick,
        row.framework.ticks_per_sec,
        row.framework.allocs_per_tick,
        row.framework.scrape_ns_per_tick,
        row.ratio(),
        row.ratio_at_interval()
    );
}

fn print_target(what: &str, value: Option<String>, pass: Option<bool>) {
    match (value, pass) {
        (Some(value), Some(pass)) => println!("  {what:<52} {value:>12}   {}", verdict(pass)),
        _ => println!("  {what:<52} {:>12}   -", "not run"),
    }
}

fn print_report(settings: &Settings, report: &Report) {
    println!();
    println!(
        "1. CPU per tick: process user+sys ns / ticks executed; median of {} samples, bare and \
         framework alternating",
        settings.samples
    );
    println!(
        "  ns: CPU ns per tick; alloc: allocations per tick; scrape: the part of fw ns spent \
         rendering the host's metrics once in the window; ratio: fw ns / bare ns with that \
         scrape, and @15s with one scrape every 15 s instead (the targets read @15s)"
    );
    println!(
        "  {:<34} | {:>7} {:>7} {:>5} | {:>7} {:>7} {:>5} {:>7} | {:>6} {:>7}",
        "workers x period, body",
        "bare ns",
        "ticks/s",
        "alloc",
        "fw ns",
        "ticks/s",
        "alloc",
        "scrape",
        "ratio",
        "@15s"
    );
    let rows = report
        .cpu
        .iter()
        .chain(report.subscriber.iter().map(|s| &s.row))
        .chain(&report.many)
        .chain(&report.big);
    for row in rows {
        print_cpu_row(row);
    }
    for subscriber in &report.subscriber {
        println!(
            "  {}: worker.run span current in the body: {}{}",
            subscriber.row.label,
            if subscriber.reached { "yes" } else { "no" },
            if subscriber.as_expected() {
                ""
            } else {
                " (NOT as its span_level says: the row measures the wrong thing)"
            }
        );
    }
    if let Some(memory) = &report.memory {
        println!();
        println!(
            "2. Idle memory, {IDLE_WORKERS} workers (every = 1h, after = 1h), live heap bytes"
        );
        println!(
            "  bare {:>8.0} B/task | framework {:>8.0} B/worker | ratio {:.2}",
            memory.bare,
            memory.framework,
            memory.framework / memory.bare
        );
    }
    if let Some((bare, framework)) = report.shutdown {
        println!();
        println!(
            "3. Shutdown of {IDLE_WORKERS} idle workers, median of {SHUTDOWN_REPETITIONS}, \
             shutdown() to run_until returning"
        );
        println!(
            "  bare {:>8.2} ms | framework {:>8.2} ms",
            millis(bare),
            millis(framework)
        );
    }
    println!();
    print_targets(report);
}

fn print_targets(report: &Report) {
    let ratio = |row: Option<&CpuRow>, target: f64| {
        (
            row.map(|row| format!("{:.2}", row.ratio_at_interval())),
            row.map(|row| row.ratio_at_interval() <= target),
        )
    };
    println!("Targets (framework / bare in the same run)");
    let at_1000 = report.cpu.iter().find(|row| row.label.starts_with("1000 "));
    let (value, pass) = ratio(at_1000, TARGET_CPU_RATIO);
    print_target(
        &format!("CPU 1000 x 10ms, no subscriber <= {TARGET_CPU_RATIO:.1}"),
        value,
        pass,
    );
    let (value, pass) = ratio(report.big.as_ref(), TARGET_CPU_RATIO);
    print_target(
        &format!("CPU 1000 x 10ms, 4 KiB body, no subscriber <= {TARGET_CPU_RATIO:.1}"),
        value,
        pass,
    );
    let subscriber = report.subscriber.iter().find(|s| s.level.is_none());
    let (value, pass) = ratio(subscriber.map(|s| &s.row), TARGET_SUBSCRIBER_RATIO);
    let expected = subscriber.is_some_and(SubscriberRow::as_expected);
    print_target(
        &format!("CPU 1000 x 10ms, INFO fmt subscriber <= {TARGET_SUBSCRIBER_RATIO:.1}"),
        value,
        pass.map(|pass| pass && expected),
    );
    let (value, pass) = ratio(report.many.as_ref(), TARGET_MANY_RATIO);
    print_target(
        &format!("CPU {MANY_WORKERS} x 1s <= {TARGET_MANY_RATIO:.1}"),
        value,
        pass,
    );
    let memory = report.memory.as_ref();
    print_target(
        &format!("idle memory per worker <= {TARGET_BYTES_PER_WORKER:.0} B"),
        memory.map(|m| format!("{:.0} B", m.framework)),
        memory.map(|m| m.framework <= TARGET_BYTES_PER_WORKER),
    );
    let shutdown = report.shutdown.map(|(_, framework)| framework);
    print_target(
        &format!(
            "shutdown of {IDLE_WORKERS} idle workers < {} ms",
            TARGET_SHUTDOWN.as_millis()
        ),
        shutdown.map(|d| format!("{:.2} ms", millis(d))),
        shutdown.map(|d| d < TARGET_SHUTDOWN),
    );
}

fn main() {
    let settings = Settings::from_env();
    if std::env::var(CHILD_ENV).as_deref() == Ok("subscriber") {
        child_subscriber(&settings);
        return;
    }
    let started = Instant::now();
    install_recorder();
    let rt = runtime();

    println!(
        "worker-core overhead against bare tokio: multi-thread runtime, 2 worker threads, \
         Prometheus recorder installed; no tracing subscriber but in the subscriber row"
    );
    println!(
        "CPU windows: {} samples of {} ms ({} ms at {MANY_WORKERS} x 1s), each after {} ms of \
         warm-up (at {MANY_WORKERS} x 1s, once every worker has ticked once); rows: {}",
        settings.samples,
        settings.window.as_millis(),
        settings.many_window().as_millis(),
        WARM_UP.as_millis(),
        settings.rows.join(",")
    );
    println!(
        "4 KiB body: its future is {} bytes; worker.run span current in a body without \
         subscriber: {}",
        std::mem::size_of_val(&big_body()),
        if span_reaches_subscriber(&rt) {
            "yes"
        } else {
            "no"
        }
    );

    let mut report = Report::default();
    let cpu = |load: Load, label: String| measure_cpu(&rt, settings.samples, load, label);
    if settings.runs("cpu") {
        report.cpu = CONCURRENCY
            .iter()
            .map(|&workers| {
                let load = Load {
                    workers,
                    period: PERIOD,
                    body: Body::Empty,
                    window: settings.window,
                    after_first_ticks: false,
                };
                cpu(load, format!("{workers} x 10ms"))
            })
            .collect();
    }
    if settings.runs("subscriber") {
        report.subscriber = vec![
            measure_subscriber(None),
            measure_subscriber(Some(SpanLevel::Info)),
        ];
    }
    if settings.runs("ten_thousand") {
        let load = Load {
            workers: MANY_WORKERS,
            period: MANY_PERIOD,
            body: Body::Empty,
            window: settings.many_window(),
            after_first_ticks: true,
        };
        report.many = Some(cpu(load, format!("{MANY_WORKERS} x 1s")));
    }
    if settings.runs("big_body") {
        let load = Load {
            workers: 1000,
            period: PERIOD,
            body: Body::Big,
            window: settings.window,
            after_first_ticks: false,
        };
        report.big = Some(cpu(load, "1000 x 10ms, 4 KiB body".into()));
    }
    if settings.runs("memory") {
        report.memory = Some(measure_memory(&rt));
    }
    if settings.runs("shutdown") {
        report.shutdown = Some(measure_shutdown(&rt));
    }
    print_report(&settings, &report);
    println!();
    println!("total {:.1} s", started.elapsed().as_secs_f64());
}
