//! What `worker-core` costs over bare tokio, measured in one run against a bare baseline:
//!
//! 1. process CPU time per tick of an empty worker on `every = "10ms"`, at 1, 100 and 1000
//!    concurrent workers, against tasks looping on `tokio::time::interval`;
//! 2. live heap bytes per idle worker at 10,000 workers, against tasks parked on
//!    `interval.tick()`;
//! 3. the time from `HostHandle::shutdown()` to `run_until` returning with 10,000 idle
//!    workers, against cancelling 10,000 bare tasks and waiting for them.
//!
//! ```text
//! cargo bench -p worker-core --bench overhead
//! ```
//!
//! A Prometheus recorder is installed globally at the start, as `.serve(..)` installs it for the
//! metrics a service records itself; the hosts keep their workers' series in their own block
//! of atomics per worker and render them on a scrape, and the benchmark scrapes each host once
//! per measured window (every 2 s: more often than Prometheus would), inside the window. No
//! tracing subscriber is installed.
//!
//! `OVERHEAD_SAMPLES` (default 5) and `OVERHEAD_WINDOW_MS` (default 2000) shorten a run, for
//! example under a profiler. The targets are printed as PASS/FAIL, never asserted: a benchmark
//! is not a test.
#![allow(
    unsafe_code,
    reason = "a counting global allocator and `clock_gettime` cannot be written without it"
)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::future::pending;
use std::sync::atomic::{AtomicBool, AtomicIsize, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use metrics_exporter_prometheus::PrometheusBuilder;
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;
use tokio::time::{MissedTickBehavior, interval_at};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use worker_core::{Host, IntoWorker as _, Worker, worker};

const PERIOD: Duration = Duration::from_millis(10);
const CONCURRENCY: [usize; 3] = [1, 100, 1000];
const IDLE_WORKERS: usize = 10_000;
const SHUTDOWN_REPETITIONS: usize = 5;
const WARM_UP: Duration = Duration::from_millis(500);

const TARGET_CPU_RATIO: f64 = 1.5;
const TARGET_BYTES_PER_WORKER: f64 = 4096.0;
const TARGET_SHUTDOWN: Duration = Duration::from_millis(100);

/// Ticks executed by every body of every variant; read before and after each window.
static TICKS: AtomicU64 = AtomicU64::new(0);

// ---------------------------------------------------------------------------------------------
// Live heap bytes

/// Live bytes allocated through the global allocator while counting is on.
static LIVE: AtomicIsize = AtomicIsize::new(0);
/// Counting is switched on for the memory part only: a shared counter bumped by every
/// allocation on both runtime threads would add contention to the CPU part, and more of it to
/// whichever variant allocates more.
static COUNTING: AtomicBool = AtomicBool::new(false);

struct Counting;

fn count(delta: isize) {
    if COUNTING.load(Ordering::Relaxed) {
        LIVE.fetch_add(delta, Ordering::Relaxed);
    }
}

fn signed(size: usize) -> isize {
    isize::try_from(size).unwrap_or(isize::MAX)
}

// SAFETY: every call is forwarded to `System` unchanged; only a counter is updated besides.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which `System` shares.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            count(signed(layout.size()));
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            count(signed(layout.size()));
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout`, as the caller guarantees.
        unsafe { System.dealloc(ptr, layout) };
        count(-signed(layout.size()));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as for `dealloc`, and `new_size` is valid as the caller guarantees.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            count(signed(new_size) - signed(layout.size()));
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live_bytes() -> isize {
    LIVE.load(Ordering::Relaxed)
}

// ---------------------------------------------------------------------------------------------
// Process CPU time

/// User plus system CPU time of every thread of the process.
fn cpu_time() -> Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable `timespec` and the clock id is a constant libc knows.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &raw mut now) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_PROCESS_CPUTIME_ID) failed");
    Duration::new(
        u64::try_from(now.tv_sec).expect("CPU time is not negative"),
        u32::try_from(now.tv_nsec).expect("nanoseconds are below one second"),
    )
}

// ---------------------------------------------------------------------------------------------
// The workloads

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

/// A running framework host and what stops it.
struct RunningHost {
    stop: worker_core::HostHandle,
    join: JoinHandle<Result<(), worker_core::Error>>,
}

impl RunningHost {
    /// Builds a host of `workers` and spawns `run_until` on the runtime.
    fn start(rt: &Runtime, workers: impl IntoIterator<Item = Worker>) -> Self {
        let host = Host::builder()
            .workers(workers)
            .shutdown_timeout(Duration::from_secs(10))
            .build()
            .expect("the benchmark's host is valid");
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

fn ticking_workers(n: usize) -> Vec<Worker> {
    std::iter::once(attribute_tick.into_worker())
        .chain((1..n).map(|i| {
            Worker::builder(format!("w{i}"))
                .every(PERIOD)
                .handler(|| async {
                    TICKS.fetch_add(1, Ordering::Relaxed);
                })
        }))
        .collect()
}

fn idle_workers(n: usize) -> Vec<Worker> {
    (0..n)
        .map(|i| {
            Worker::builder(format!("idle{i}"))
                .every(Duration::from_hours(1))
                .after(Duration::from_hours(1))
                .handler(|| async {
                    TICKS.fetch_add(1, Ordering::Relaxed);
                })
        })
        .collect()
}

/// `n` bare tasks ticking on `interval(period)` with `MissedTickBehavior::Skip`, first tick
/// after `first`. They share one start instant, as the framework's workers share one grid
/// anchor, so neither variant gets its timers batched more than the other.
fn spawn_bare(rt: &Runtime, n: usize, first: Duration, period: Duration) -> Vec<JoinHandle<()>> {
    let start = tokio::time::Instant::now() + first;
    (0..n)
        .map(|_| {
            rt.spawn(async move {
                let mut every = interval_at(start, period);
                every.set_missed_tick_behavior(MissedTickBehavior::Skip);
                loop {
                    every.tick().await;
                    TICKS.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect()
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

#[derive(Clone, Copy)]
struct Settings {
    samples: usize,
    window: Duration,
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
        Self {
            samples: usize::try_from(read("OVERHEAD_SAMPLES", 5)).unwrap_or(5),
            window: Duration::from_millis(read("OVERHEAD_WINDOW_MS", 2000)),
        }
    }
}

/// One window: CPU nanoseconds per executed tick, and ticks per second.
#[derive(Clone, Copy)]
struct Sample {
    ns_per_tick: f64,
    ticks_per_sec: f64,
}

/// Measures one window of whatever is running: warms up, then reads process CPU time and the
/// tick counter around `window`. `scrape` runs at the end of the warm-up (outside the window)
/// and at the end of the window (inside it), so each window pays for one scrape.
#[allow(
    clippy::cast_precision_loss,
    reason = "tick counts and nanoseconds of a few seconds fit an f64 exactly enough"
)]
fn sample_cpu(window: Duration, scrape: &dyn Fn()) -> Sample {
    thread::sleep(WARM_UP);
    scrape();
    let (cpu, ticks, wall) = (cpu_time(), TICKS.load(Ordering::Relaxed), Instant::now());
    thread::sleep(window);
    scrape();
    let ticks = TICKS.load(Ordering::Relaxed) - ticks;
    let cpu = cpu_time().saturating_sub(cpu);
    let wall = wall.elapsed();
    Sample {
        ns_per_tick: cpu.as_nanos() as f64 / ticks.max(1) as f64,
        ticks_per_sec: ticks as f64 / wall.as_secs_f64(),
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

struct CpuRow {
    workers: usize,
    bare: Sample,
    framework: Sample,
}

impl CpuRow {
    fn ratio(&self) -> f64 {
        self.framework.ns_per_tick / self.bare.ns_per_tick
    }
}

fn summarize(samples: &[Sample]) -> Sample {
    Sample {
        ns_per_tick: median(samples.iter().map(|s| s.ns_per_tick).collect()),
        ticks_per_sec: median(samples.iter().map(|s| s.ticks_per_sec).collect()),
    }
}

/// Alternates bare and framework samples, each on a freshly started set of tasks, so a change
/// in machine speed during the run (a noisy neighbour on a VM) hits both variants alike.
fn measure_cpu(rt: &Runtime, settings: Settings, n: usize) -> CpuRow {
    let mut bare = Vec::with_capacity(settings.samples);
    let mut framework = Vec::with_capacity(settings.samples);
    for _ in 0..settings.samples {
        let tasks = spawn_bare(rt, n, Duration::ZERO, PERIOD);
        bare.push(sample_cpu(settings.window, &|| {}));
        stop_bare(rt, tasks);

        let host = RunningHost::start(rt, ticking_workers(n));
        framework.push(sample_cpu(settings.window, &|| {
            std::hint::black_box(host.stop.render_metrics());
        }));
        host.shut_down(rt);
    }
    CpuRow {
        workers: n,
        bare: summarize(&bare),
        framework: summarize(&framework),
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
fn per_task(before: isize, after: isize, tasks: usize) -> f64 {
    (after - before) as f64 / tasks as f64
}

/// Live heap bytes per idle task.
struct Memory {
    bare: f64,
    framework: f64,
}

/// Live bytes per idle task, bare and framework.
fn measure_memory(rt: &Runtime) -> Memory {
    COUNTING.store(true, Ordering::SeqCst);
    thread::sleep(Duration::from_millis(100));

    let before = live_bytes();
    let tasks = spawn_bare(
        rt,
        IDLE_WORKERS,
        Duration::from_hours(1),
        Duration::from_hours(1),
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

    COUNTING.store(false, Ordering::SeqCst);
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
                                _ = every.tick() => { TICKS.fetch_add(1, Ordering::Relaxed); }
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

    (median_duration(bare), median_duration(framework))
}

// ---------------------------------------------------------------------------------------------
// Report

fn verdict(pass: bool) -> &'static str {
    if pass { "PASS" } else { "FAIL" }
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let settings = Settings::from_env();
    install_recorder();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");

    println!(
        "worker-core overhead against bare tokio: multi-thread runtime, 2 worker threads, \
         Prometheus recorder installed, no tracing subscriber"
    );
    println!(
        "CPU: process user+sys time / ticks executed; {} samples of {} ms, each after {} ms of \
         warm-up, bare and framework alternating; median",
        settings.samples,
        settings.window.as_millis(),
        WARM_UP.as_millis()
    );
    println!();

    let rows: Vec<CpuRow> = CONCURRENCY
        .iter()
        .map(|&n| {
            let row = measure_cpu(&rt, settings, n);
            eprintln!("  measured CPU at {n} workers");
            row
        })
        .collect();
    let memory = measure_memory(&rt);
    eprintln!("  measured idle memory");
    let (bare_shutdown, framework_shutdown) = measure_shutdown(&rt);
    eprintln!("  measured shutdown");
    println!();

    println!("1. CPU per tick, every = 10ms, empty body");
    println!(
        "  {:>7} | {:>13} {:>13} | {:>13} {:>13} | {:>6}",
        "workers", "bare ns/tick", "bare ticks/s", "fw ns/tick", "fw ticks/s", "ratio"
    );
    for row in &rows {
        println!(
            "  {:>7} | {:>13.0} {:>13.0} | {:>13.0} {:>13.0} | {:>6.2}",
            row.workers,
            row.bare.ns_per_tick,
            row.bare.ticks_per_sec,
            row.framework.ns_per_tick,
            row.framework.ticks_per_sec,
            row.ratio()
        );
    }
    println!();
    println!("2. Idle memory, {IDLE_WORKERS} workers (every = 1h, after = 1h), live heap bytes");
    println!(
        "  bare {:>8.0} B/task | framework {:>8.0} B/worker | ratio {:.2}",
        memory.bare,
        memory.framework,
        memory.framework / memory.bare
    );
    println!();
    println!(
        "3. Shutdown of {IDLE_WORKERS} idle workers, median of {SHUTDOWN_REPETITIONS}, \
         shutdown() to run_until returning"
    );
    println!(
        "  bare {:>8.2} ms | framework {:>8.2} ms",
        millis(bare_shutdown),
        millis(framework_shutdown)
    );
    println!();

    let at_1000 = rows
        .iter()
        .find(|row| row.workers == 1000)
        .map_or(f64::NAN, CpuRow::ratio);
    println!("Targets");
    println!(
        "  CPU ratio framework/bare at 1000 workers <= {TARGET_CPU_RATIO:.1}   {at_1000:>10.2}      {}",
        verdict(at_1000 <= TARGET_CPU_RATIO)
    );
    println!(
        "  idle memory per worker <= {TARGET_BYTES_PER_WORKER:.0} B          {:>10.0} B    {}",
        memory.framework,
        verdict(memory.framework <= TARGET_BYTES_PER_WORKER)
    );
    println!(
        "  shutdown of {IDLE_WORKERS} idle workers < {} ms  {:>10.2} ms   {}",
        TARGET_SHUTDOWN.as_millis(),
        millis(framework_shutdown),
        verdict(framework_shutdown < TARGET_SHUTDOWN)
    );
}
