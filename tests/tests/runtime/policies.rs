//! Schedule kinds and retry policies declared with the builder: `fixed_delay` counts from the end
//! of the previous run, `once` runs exactly once, `jitter` delays ticks within its bound without
//! moving the grid, every backoff kind keeps its delays within `[nominal / 2, nominal]`, and a
//! `Permanent` error (directly or in the source chain) is never retried.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::common::{Entry, Metrics, Runs, assert_results, ms, run_for, secs, work};
use worker_core::{BackoffKind, BoxError, Ctx, Host, Permanent, State, Worker};

/// How long run `n` of the fixed-delay worker takes (cycled).
const TAKES: [Duration; 5] = [secs(1), secs(5), Duration::ZERO, secs(3), secs(12)];

#[tokio::test(start_paused = true)]
async fn fixed_delay_starts_each_run_a_delay_after_the_previous_one_ended() {
    let runs = Runs::new();
    let metrics = Metrics::new();
    let worker = Worker::builder("paced").fixed_delay(secs(10)).handler(
        |runs: State<Arc<Runs>>, ctx: Ctx| async move {
            let n = runs.len();
            let _run = runs.enter(&ctx);
            work(&ctx, TAKES[n % TAKES.len()]).await;
        },
    );
    let host = metrics
        .build(Host::builder().state(runs.clone()).worker(worker))
        .unwrap();

    run_for(host, ms(120_500)).await.result.unwrap();

    // 0, then 0 + 1 + 10, 11 + 5 + 10, 26 + 0 + 10, 36 + 3 + 10, 49 + 12 + 10, ...
    let expected: Vec<Duration> = [0, 11, 26, 36, 49, 71, 82, 97, 107, 120]
        .into_iter()
        .map(secs)
        .collect();
    assert_eq!(runs.starts(), expected);
    assert_eq!(runs.scheduled(), expected, "each run starts when it is due");
    let starts = runs.starts();
    for (n, pair) in starts.windows(2).enumerate() {
        assert_eq!(
            pair[1].saturating_sub(pair[0]),
            TAKES[n % TAKES.len()] + secs(10)
        );
    }
    let snapshot = metrics.snapshot();
    assert_results(&snapshot, "paced", &[("success", 10)]);
    assert_eq!(snapshot.skipped("paced", "overlap"), 0);
    assert_eq!(snapshot.skipped("paced", "missed"), 0);
}

#[tokio::test(start_paused = true)]
async fn once_runs_exactly_once_after_its_delay_and_never_again() {
    let later = Runs::new();
    let now = Runs::new();
    let metrics = Metrics::new();
    let journal = |runs: &Arc<Runs>| {
        let runs = runs.clone();
        move |ctx: Ctx| {
            let runs = runs.clone();
            async move {
                let _run = runs.enter(&ctx);
            }
        }
    };
    let host = metrics
        .build(
            Host::builder()
                .worker(
                    Worker::builder("warm_cache")
                        .once()
                        .after(secs(5))
                        .handler(journal(&later)),
                )
                .worker(Worker::builder("migrate").once().handler(journal(&now))),
        )
        .unwrap();

    run_for(host, ms(3_600_500)).await.result.unwrap();

    assert_eq!(later.starts(), [secs(5)], "one run, 5 s after start");
    assert_eq!(later.scheduled(), [secs(5)]);
    assert_eq!(now.starts(), [secs(0)], "one run, at start");
    let snapshot = metrics.snapshot();
    for worker in ["warm_cache", "migrate"] {
        assert_results(&snapshot, worker, &[("success", 1)]);
        let next = snapshot.gauge("worker_next_run_timestamp_seconds", &[("worker", worker)]);
        assert!(next.abs() < f64::EPSILON, "no next run, not {next}");
    }
}

#[tokio::test(start_paused = true)]
async fn jitter_delays_each_tick_within_its_bound_and_keeps_the_grid() {
    let runs = Runs::new();
    let worker = Worker::builder("spread")
        .every(secs(10))
        .jitter(secs(3))
        .handler(|runs: State<Arc<Runs>>, ctx: Ctx| async move {
            let _run = runs.enter(&ctx);
        });
    let host = Host::builder()
        .state(runs.clone())
        .worker(worker)
        .build()
        .unwrap();

    // The tick due at 3600 s may start as late as 3603 s.
    run_for(host, ms(3_603_500)).await.result.unwrap();

    let entries = runs.entries();
    let grid: Vec<Duration> = (0..=360).map(|k| secs(10 * k)).collect();
    assert_eq!(
        runs.scheduled(),
        grid,
        "every tick of the grid ran, scheduled on the grid"
    );
    let offsets: Vec<Duration> = entries
        .iter()
        .map(|e| {
            e.start
                .checked_sub(e.scheduled)
                .unwrap_or_else(|| panic!("a run started before it was due: {e:?}"))
        })
        .collect();
    assert!(
        offsets.iter().all(|offset| *offset <= secs(3)),
        "a tick was delayed by more than the jitter: {offsets:?}"
    );
    // Uniform on [0, 3 s]: the mean of 361 draws is 1.5 s give or take 0.05 s.
    let mean = offsets.iter().sum::<Duration>() / 361;
    assert!(mean > ms(1_200) && mean < ms(1_800), "mean delay {mean:?}");
    let mut distinct = offsets.clone();
    distinct.sort();
    distinct.dedup();
    assert!(distinct.len() > 300, "the delays are drawn at random");
}

/// Checks the delay before each retry of every run: within `[nominal / 2, nominal]`, with the
/// nominal delays `nominals` (seconds) in order. Attempts take no time.
#[track_caller]
fn assert_delays(kind: BackoffKind, runs: &[Vec<Entry>], nominals: &[u64]) {
    for run in runs {
        assert_eq!(
            run.len(),
            nominals.len() + 1,
            "{kind:?}: attempts of {run:?}"
        );
        for (pair, &nominal) in run.windows(2).zip(nominals) {
            let nominal = secs(nominal);
            let delay = pair[1]
                .start
                .checked_sub(pair[0].start)
                .expect("attempts in order");
            assert!(
                delay >= nominal / 2 && delay <= nominal,
                "{kind:?}: waited {delay:?} before attempt {}, expected within [{:?}, {nominal:?}]",
                pair[1].attempt,
                nominal / 2
            );
        }
    }
}

#[tokio::test(start_paused = true)]
async fn every_backoff_kind_waits_within_half_to_all_of_its_nominal_delay() {
    let kinds = [
        (BackoffKind::Constant, "constant", [1, 1, 1, 1]),
        (BackoffKind::Linear, "linear", [1, 2, 3, 4]),
        // 1, 2, 4, 8 capped at `backoff_max` = 5 s.
        (BackoffKind::Exponential, "exponential", [1, 2, 4, 5]),
    ];
    let metrics = Metrics::new();
    let mut builder = Host::builder();
    let mut journals = Vec::new();
    for (kind, name, _) in kinds {
        let runs = Runs::new();
        journals.push(runs.clone());
        builder = builder.worker(
            Worker::builder(name)
                .every(secs(60))
                .retry(4)
                .backoff_kind(kind)
                .backoff(secs(1))
                .backoff_max(secs(5))
                .handler(move |ctx: Ctx| {
                    let runs = runs.clone();
                    async move {
                        let _run = runs.enter(&ctx);
                        Err::<(), BoxError>("upstream is down".into())
                    }
                }),
        );
    }
    let host = metrics.build(builder).unwrap();

    // Runs at 0, 60, ..., 1800 s; the last one ends by 1812 s.
    run_for(host, ms(1_830_500)).await.result.unwrap();

    let snapshot = metrics.snapshot();
    for ((kind, name, nominals), runs) in kinds.into_iter().zip(journals) {
        let all = runs.runs();
        assert_eq!(all.len(), 31, "{name}");
        assert_delays(kind, &all, &nominals);
        assert_results(&snapshot, name, &[("failure", 31)]);
        assert_eq!(snapshot.retries(name), 31 * 4, "{name}");
    }
}

/// Wraps another error, as a library's error type would: the `Permanent` is its source.
#[derive(Debug)]
struct Import(Permanent);

impl fmt::Display for Import {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("import failed")
    }
}

impl std::error::Error for Import {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

#[tokio::test(start_paused = true)]
async fn a_permanent_error_is_not_retried_even_in_a_source_chain() {
    let metrics = Metrics::new();
    let failing = |name: &'static str, runs: &Arc<Runs>, error: fn() -> BoxError| {
        let runs = runs.clone();
        Worker::builder(name)
            .every(secs(60))
            .retry(5)
            .backoff(secs(1))
            .handler(move |ctx: Ctx| {
                let runs = runs.clone();
                async move {
                    let _run = runs.enter(&ctx);
                    Err::<(), BoxError>(error())
                }
            })
    };
    let direct = Runs::new();
    let wrapped = Runs::new();
    let transient = Runs::new();
    let host = metrics
        .build(
            Host::builder()
                .worker(failing("direct", &direct, || {
                    Permanent::new("bad input").into()
                }))
                .worker(failing("wrapped", &wrapped, || {
                    Box::new(Import(Permanent::new("bad input")))
                }))
                // The control: the same worker with an ordinary error uses all its retries.
                .worker(failing("transient", &transient, || "timeout".into())),
        )
        .unwrap();

    // One run each: the transient one ends within 1 + 2 + 4 + 8 + 16 = 31 s.
    run_for(host, ms(59_500)).await.result.unwrap();

    let snapshot = metrics.snapshot();
    for (name, runs) in [("direct", &direct), ("wrapped", &wrapped)] {
        assert_eq!(runs.runs().len(), 1, "{name}");
        assert_eq!(runs.len(), 1, "{name}: one attempt, although retry = 5");
        assert_results(&snapshot, name, &[("failure", 1)]);
        assert_eq!(snapshot.retries(name), 0, "{name}");
    }
    assert_eq!(transient.len(), 6, "retry = 5 makes six attempts");
    assert_results(&snapshot, "transient", &[("failure", 1)]);
    assert_eq!(snapshot.retries("transient"), 5);
}

/// A library's error type written with thiserror, forwarding to what it wraps.
#[derive(Debug, thiserror::Error)]
enum ShopError {
    #[error(transparent)]
    Permanent(#[from] Permanent),
    #[error("the shop refused the order")]
    Refused(#[source] Permanent),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

fn bad_input() -> Permanent {
    Permanent::new("order 7 does not exist")
}

/// The error shapes of the `Permanent` table: each is found, so the run makes one attempt of
/// its six; the control shapes (a plain error, a message copied from a `Permanent`) use all
/// six. The recorded error reads as the error does, without the marker.
#[tokio::test(start_paused = true)]
async fn a_permanent_error_is_found_in_every_shape_users_write_errors_in() {
    use anyhow::Context as _;
    use worker_core::Outcome;
    use worker_core::testing::run_once;

    type Shape = fn() -> BoxError;
    let shapes: [(&str, Shape, Option<&str>); 10] = [
        (
            "into a BoxError",
            || bad_input().into(),
            Some("order 7 does not exist"),
        ),
        (
            "into an anyhow::Error",
            || anyhow::Error::from(bad_input()).into(),
            Some("order 7 does not exist"),
        ),
        (
            "`?` in anyhow::Result",
            || {
                let run = || -> anyhow::Result<()> { Err(bad_input())? };
                run().unwrap_err().into()
            },
            Some("order 7 does not exist"),
        ),
        (
            "anyhow context",
            || {
                let run = || -> anyhow::Result<()> { Err(bad_input()).context("importing orders") };
                run().unwrap_err().into()
            },
            Some("importing orders: order 7 does not exist"),
        ),
        (
            "thiserror transparent",
            || ShopError::from(bad_input()).into(),
            Some("order 7 does not exist"),
        ),
        (
            "thiserror source",
            || ShopError::Refused(bad_input()).into(),
            Some("the shop refused the order: order 7 does not exist"),
        ),
        (
            "io::Error::other",
            || std::io::Error::other(bad_input()).into(),
            Some("order 7 does not exist"),
        ),
        (
            "transparent io::Error",
            || ShopError::from(std::io::Error::other(bad_input())).into(),
            Some("order 7 does not exist"),
        ),
        (
            "a plain error",
            || ShopError::from(std::io::Error::other("reset")).into(),
            None,
        ),
        (
            "only the message",
            || anyhow::anyhow!("{}", bad_input()).into(),
            None,
        ),
    ];
    for (shape, error, permanent) in shapes {
        let worker = Worker::builder("shaped")
            .every(secs(3600))
            .retry(5)
            .backoff(ms(10))
            .handler(move || async move { Err::<(), BoxError>(error()) });
        let run = run_once(worker, Host::builder()).await.unwrap();
        assert_eq!(run.result, Outcome::Failure, "{shape}");
        match permanent {
            Some(text) => {
                assert_eq!(run.attempts, 1, "{shape}: a Permanent is not retried");
                assert_eq!(run.error.as_deref(), Some(text), "{shape}");
            }
            None => assert_eq!(run.attempts, 6, "{shape}: retry = 5 makes six attempts"),
        }
    }
}
