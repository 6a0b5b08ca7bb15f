//! Property tests: the fixed-rate schedule against a model for random periods, initial delays
//! and run lengths (each case on a fresh paused-time runtime), and the fire times of random cron
//! expressions in several time zones.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use crate::common::{Metrics, Runs, ms, run_for, work};
use proptest::prelude::*;
use worker_core::cron::CronSchedule;
use worker_core::{Ctx, Host, Worker};

/// What a fixed-rate worker did in one case.
struct Observed {
    starts: Vec<Duration>,
    scheduled: Vec<Duration>,
    overlap: u64,
    missed: u64,
}

/// Runs an `every = period, after = after` worker whose run `n` takes `takes[n % len]` until
/// `end`, on a fresh paused-time runtime.
fn observe(period: Duration, after: Duration, takes: &[Duration], end: Duration) -> Observed {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a runtime");
    let takes: Arc<[Duration]> = takes.into();
    runtime.block_on(async move {
        let runs = Runs::new();
        let metrics = Metrics::new();
        let worker = {
            let runs = runs.clone();
            Worker::builder("fixed_rate")
                .every(period)
                .after(after)
                .handler(move |ctx: Ctx| {
                    let runs = runs.clone();
                    let takes = takes.clone();
                    async move {
                        let n = runs.len();
                        let _run = runs.enter(&ctx);
                        work(&ctx, takes[n % takes.len()]).await;
                    }
                })
        };
        let host = metrics.build(Host::builder().worker(worker)).unwrap();
        run_for(host, end).await.result.unwrap();
        let snapshot = metrics.snapshot();
        Observed {
            starts: runs.starts(),
            scheduled: runs.scheduled(),
            overlap: snapshot.skipped("fixed_rate", "overlap"),
            missed: snapshot.skipped("fixed_rate", "missed"),
        }
    })
}

/// The model: the tick after a run is the first one at or after its end (a tick due the instant
/// a run ends runs), on the grid `after + k * period`; ticks during a run are skipped.
fn model(period: Duration, after: Duration, takes: &[Duration], end: Duration) -> Vec<Duration> {
    let period_ms = period.as_millis();
    let mut starts = Vec::new();
    let mut k: u32 = 0;
    loop {
        let start = after + period * k;
        if start >= end {
            return starts;
        }
        let ends = start + takes[starts.len() % takes.len()];
        starts.push(start);
        let first_free = ends.saturating_sub(after).as_millis().div_ceil(period_ms);
        k = (k + 1).max(u32::try_from(first_free).unwrap());
    }
}

/// `cases` cases, without regression files (an integration test has no `lib.rs` to put them by).
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config(32))]

    #[test]
    fn fixed_rate_runs_exactly_on_its_grid(
        period_ms in 2_u64..10_000,
        after_ms in 0_u64..5_000,
        ticks in 5_u32..40,
        // Run lengths up to three periods, in thousandths of a period.
        lengths in prop::collection::vec(0_u64..3_000, 1..8),
    ) {
        let period = ms(period_ms);
        let after = ms(after_ms);
        let takes: Vec<Duration> = lengths.iter().map(|l| ms(period_ms * l / 1000)).collect();
        // Half a period after a tick, so shutdown never coincides with one.
        let end = after + period * ticks + ms(period_ms / 2);

        let seen = observe(period, after, &takes, end);

        let expected = model(period, after, &takes, end);
        prop_assert_eq!(&seen.starts, &expected);
        prop_assert_eq!(&seen.scheduled, &expected, "scheduled_at is on the grid");
        prop_assert!(seen.scheduled.windows(2).all(|w| w[0] < w[1]), "strictly increasing");
        for at in &seen.scheduled {
            let offset = at.checked_sub(after).expect("not before the first tick");
            prop_assert_eq!(offset.as_nanos() % period.as_nanos(), 0, "{:?} is off the grid", at);
        }
        // Every tick up to the end is a run or a counted skip.
        let due = u64::from(ticks) + 1;
        prop_assert_eq!(seen.overlap + seen.starts.len() as u64, due);
        prop_assert_eq!(seen.missed, 0);
    }
}

/// A random simple cron expression: seconds, then minutes and hours as `*`, `*/n` or a value.
fn expression() -> impl Strategy<Value = (String, u32, Option<u32>, Option<u32>)> {
    let field = |max: u32| {
        prop_oneof![
            Just((String::from("*"), None)),
            (1..max / 2).prop_map(|n| (format!("*/{n}"), None)),
            (0..max).prop_map(|v| (v.to_string(), Some(v))),
        ]
    };
    (0_u32..60, field(60), field(24)).prop_map(|(second, (minute, m), (hour, h))| {
        (format!("{second} {minute} {hour} * * *"), second, m, h)
    })
}

const ZONES: [&str; 6] = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",
    "Asia/Kolkata",
    "America/Santiago",
];

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn cron_fire_times_strictly_increase(
        (expr, second, minute, hour) in expression(),
        zone in prop::sample::select(&ZONES[..]),
        // 2020-01-01 to 2030-12-31.
        from in 1_577_836_800_u64..1_924_905_600,
        nanos in 0_u32..1_000_000_000,
    ) {
        let cron = CronSchedule::parse(&expr, zone).unwrap();
        let mut at = UNIX_EPOCH + Duration::new(from, nanos);
        for _ in 0..24 {
            let next = cron
                .next_after(at)
                .unwrap_or_else(|| panic!("{expr} in {zone} stopped firing after {at:?}"));
            prop_assert!(next > at, "{} in {}: {:?} is not after {:?}", expr, zone, next, at);
            // A daily expression fires at least once in a day, give or take a DST shift; but
            // minutes of an hour skipped by a spring-forward transition (`0 */6 2 * * *`) do not
            // exist that day (croner runs a time of day after the gap, not an interval).
            let gap = next.duration_since(at).unwrap();
            let days = if hour.is_some() && minute.is_none() { 2 } else { 1 };
            let most = Duration::from_secs(days * 24 * 3600 + 3600);
            prop_assert!(gap <= most, "{} in {}: gap {:?}", expr, zone, gap);
            // Nothing fires between `at` and `next`.
            let just_before = next - Duration::from_nanos(1);
            if just_before > at {
                prop_assert_eq!(cron.next_after(just_before), Some(next));
                let midway = at + (next.duration_since(at).unwrap() / 2);
                prop_assert_eq!(cron.next_after(midway), Some(next));
            }
            if zone == "UTC" {
                let secs = next.duration_since(UNIX_EPOCH).unwrap();
                prop_assert_eq!(secs.subsec_nanos(), 0);
                let secs = secs.as_secs();
                prop_assert_eq!(secs % 60, u64::from(second));
                if let Some(minute) = minute {
                    prop_assert_eq!(secs / 60 % 60, u64::from(minute));
                }
                if let Some(hour) = hour {
                    prop_assert_eq!(secs / 3600 % 24, u64::from(hour));
                }
            }
            at = next;
        }
    }
}

/// A duration literal as users write it, with the duration it must mean.
fn duration_literal() -> impl Strategy<Value = (String, Duration)> {
    // Up to 365 days, the longest period a key accepts, in each unit.
    (0..4_usize)
        .prop_flat_map(|unit| {
            let max = [31_536_000_000_u64, 31_536_000, 525_600, 8_760][unit];
            (1..=max, Just(unit))
        })
        .prop_map(|(n, unit)| {
            let (suffix, duration) = match unit {
                0 => ("ms", Duration::from_millis(n)),
                1 => ("s", Duration::from_secs(n)),
                2 => ("m", Duration::from_secs(n * 60)),
                _ => ("h", Duration::from_secs(n * 3600)),
            };
            (format!("{n}{suffix}"), duration)
        })
}

proptest! {
    #![proptest_config(config(64))]

    /// The run-time duration parser (configuration overrides) reads every `"<n><unit>"` literal
    /// as the duration it names: the effective schedule (`worker_info{schedule}`) says so.
    #[test]
    fn duration_overrides_mean_what_they_say((literal, duration) in duration_literal()) {
        let metrics = Metrics::new();
        let worker = Worker::builder("w").every(Duration::from_secs(1)).handler(|| async {});
        let built = metrics.build(
            Host::builder()
                .worker(worker)
                .config_env([("WORKER__W__EVERY".to_owned(), literal.clone())]),
        );
        prop_assert!(built.is_ok(), "{literal}: {:?}", built.err());
        let info = metrics
            .snapshot()
            .series()
            .into_iter()
            .find(|s| s.name == "worker_info")
            .expect("worker_info is registered");
        let schedule = info.labels.get("schedule").expect("a schedule label");
        let shown = schedule.strip_prefix("every ").expect("an `every` schedule");
        // Written as the keys are: days and smaller units, never months or years.
        prop_assert!(!shown.contains("month") && !shown.contains("year"), "{}", shown);
        prop_assert_eq!(humantime::parse_duration(shown).ok(), Some(duration), "{}", literal);
    }
}
