//! Cron schedules end to end, on paused time through a host whose wall clock is anchored with
//! `HostBuilder::start_time`: fire times, the missed-tick policies after a clock stall, and
//! daylight-saving transitions in Europe/Berlin in both directions.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::common::{Metrics, Runs, assert_results, ms, run_for, secs};
use chrono::{DateTime, TimeZone as _, Utc};
use chrono_tz::Europe::Berlin;
use worker_core::{Ctx, Host, Missed, Worker, WorkerBuilder};

/// A worker that journals its runs (which take no time) in `runs`.
fn journaled(builder: WorkerBuilder, runs: &Arc<Runs>) -> Worker {
    let runs = runs.clone();
    builder.handler(move |ctx: Ctx| {
        let runs = runs.clone();
        async move {
            let _run = runs.enter(&ctx);
        }
    })
}

/// The wall-clock time `y-m-d h:min` in Berlin; the earlier one if it is ambiguous.
fn berlin(y: i32, m: u32, d: u32, h: u32, min: u32) -> SystemTime {
    Berlin
        .with_ymd_and_hms(y, m, d, h, min, 0)
        .earliest()
        .expect("a valid local time")
        .into()
}

/// `offset` after `start`, as Berlin local time (`"03-29 03:00 CEST"`).
fn local(start: SystemTime, offset: Duration) -> String {
    DateTime::<Utc>::from(start + offset)
        .with_timezone(&Berlin)
        .format("%m-%d %H:%M %Z")
        .to_string()
}

/// `offset` after `start`, as UTC time of day (`"12:05:00"`).
fn utc(start: SystemTime, offset: Duration) -> String {
    DateTime::<Utc>::from(start + offset)
        .format("%H:%M:%S")
        .to_string()
}

/// 2026-06-01 12:01:00 UTC.
fn one_past_noon() -> SystemTime {
    Utc.with_ymd_and_hms(2026, 6, 1, 12, 1, 0).unwrap().into()
}

#[tokio::test(start_paused = true)]
async fn cron_fires_on_the_wall_clock_from_the_start_time() {
    let runs = Runs::new();
    let metrics = Metrics::new();
    let start = one_past_noon();
    let host = metrics
        .build(Host::builder().start_time(start).worker(journaled(
            Worker::builder("five_minutes").cron("0 */5 * * * *"),
            &runs,
        )))
        .unwrap();

    run_for(host, ms(1_800_500)).await.result.unwrap();

    let fired: Vec<String> = runs.starts().into_iter().map(|t| utc(start, t)).collect();
    assert_eq!(
        fired,
        [
            "12:05:00", "12:10:00", "12:15:00", "12:20:00", "12:25:00", "12:30:00"
        ]
    );
    assert_eq!(runs.scheduled(), runs.starts(), "each run starts when due");
    assert_eq!(runs.starts()[0], secs(240));
    let snapshot = metrics.snapshot();
    assert_results(&snapshot, "five_minutes", &[("success", 6)]);
    assert_eq!(snapshot.skipped("five_minutes", "missed"), 0);
}

#[tokio::test(start_paused = true)]
async fn after_a_clock_stall_cron_skips_bursts_or_delays_the_missed_fires() {
    let skip = Runs::new();
    let burst = Runs::new();
    let delay = Runs::new();
    let metrics = Metrics::new();
    let start = one_past_noon();
    let cron = |name| Worker::builder(name).cron("0 */5 * * * *");
    let host = metrics
        .build(
            Host::builder()
                .start_time(start)
                .worker(journaled(cron("skip"), &skip))
                .worker(journaled(cron("burst").missed(Missed::Burst), &burst))
                .worker(journaled(cron("delay").missed(Missed::Delay), &delay)),
        )
        .unwrap();
    let handle = host.handle();
    let task = tokio::spawn(host.run_until(std::future::pending()));
    // 12:06, after the 12:05 fire; then the clock jumps 16 minutes at once, to 12:22, as if the
    // process had been suspended through the fires of 12:10, 12:15 and 12:20.
    tokio::time::sleep(secs(300)).await;
    tokio::time::advance(secs(16 * 60)).await;
    // On to 12:31.
    tokio::time::sleep(ms(540_500)).await;
    handle.shutdown();
    task.await.unwrap().unwrap();

    let show = |runs: &Runs| -> Vec<(String, String)> {
        runs.entries()
            .iter()
            .map(|e| (utc(start, e.start), utc(start, e.scheduled)))
            .collect()
    };
    let pairs = |expected: &[(&str, &str)]| -> Vec<(String, String)> {
        expected
            .iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    };
    // skip: only the latest missed fire runs when the process wakes up; two are counted.
    assert_eq!(
        show(&skip),
        pairs(&[
            ("12:05:00", "12:05:00"),
            ("12:22:00", "12:20:00"),
            ("12:25:00", "12:25:00"),
            ("12:30:00", "12:30:00"),
        ])
    );
    // burst: every missed fire runs, back to back, then the schedule is back on time.
    assert_eq!(
        show(&burst),
        pairs(&[
            ("12:05:00", "12:05:00"),
            ("12:22:00", "12:10:00"),
            ("12:22:00", "12:15:00"),
            ("12:22:00", "12:20:00"),
            ("12:25:00", "12:25:00"),
            ("12:30:00", "12:30:00"),
        ])
    );
    // delay: the latest missed fire runs at once; the earlier ones are absorbed (documented).
    assert_eq!(show(&delay), show(&skip));
    let snapshot = metrics.snapshot();
    assert_eq!(snapshot.skipped("skip", "missed"), 2);
    assert_eq!(snapshot.skipped("burst", "missed"), 0);
    assert_eq!(snapshot.skipped("delay", "missed"), 0);
    for worker in ["skip", "burst", "delay"] {
        assert_eq!(snapshot.skipped(worker, "overlap"), 0, "{worker}");
    }
    assert_results(&snapshot, "burst", &[("success", 6)]);
}

/// Runs one Berlin cron worker from `start` for `period` and returns when its runs started
/// (tokio time since `start`), checking that each run started when it was scheduled.
async fn berlin_fires(expression: &str, start: SystemTime, period: Duration) -> Vec<Duration> {
    let runs = Runs::new();
    let host = Host::builder()
        .start_time(start)
        .worker(journaled(
            Worker::builder("berlin")
                .cron(expression)
                .time_zone("Europe/Berlin"),
            &runs,
        ))
        .build()
        .unwrap();
    run_for(host, period).await.result.unwrap();
    assert_eq!(runs.scheduled(), runs.starts());
    runs.starts()
}

#[tokio::test(start_paused = true)]
async fn spring_forward_a_daily_job_in_the_skipped_hour_runs_once_after_the_gap() {
    // 2026-03-29: 02:00 CET jumps to 03:00 CEST, so 02:30 does not exist that day.
    let start = berlin(2026, 3, 29, 1, 0);
    let fires = berlin_fires("0 30 2 * * *", start, secs(26 * 3600)).await;

    let local_times: Vec<String> = fires.iter().map(|t| local(start, *t)).collect();
    assert_eq!(local_times, ["03-29 03:00 CEST", "03-30 02:30 CEST"]);
    // 01:00 CET to 03:00 CEST is one hour of real time.
    assert_eq!(fires[0], secs(3600));
}

#[tokio::test(start_paused = true)]
async fn fall_back_a_daily_job_in_the_repeated_hour_runs_once() {
    // 2026-10-25: 03:00 CEST falls back to 02:00 CET, so 02:30 happens twice that day.
    let start = berlin(2026, 10, 25, 1, 0);
    let fires = berlin_fires("0 30 2 * * *", start, secs(27 * 3600)).await;

    let local_times: Vec<String> = fires.iter().map(|t| local(start, *t)).collect();
    assert_eq!(local_times, ["10-25 02:30 CEST", "10-26 02:30 CET"]);
    // 01:00 CEST to 02:30 CEST, then a day and an hour of real time to 02:30 CET.
    assert_eq!(fires, [secs(5400), secs(5400 + 25 * 3600)]);
}

#[tokio::test(start_paused = true)]
async fn an_hourly_job_keeps_one_hour_of_real_time_across_both_transitions() {
    for (start, expected) in [
        (
            berlin(2026, 3, 29, 0, 30),
            [
                "03-29 01:00 CET",
                "03-29 03:00 CEST",
                "03-29 04:00 CEST",
                "03-29 05:00 CEST",
            ],
        ),
        (
            berlin(2026, 10, 25, 1, 30),
            [
                "10-25 02:00 CEST",
                "10-25 02:00 CET",
                "10-25 03:00 CET",
                "10-25 04:00 CET",
            ],
        ),
    ] {
        let fires = berlin_fires("0 0 * * * *", start, ms(4 * 3_600_000 + 500)).await;

        let local_times: Vec<String> = fires.iter().map(|t| local(start, *t)).collect();
        assert_eq!(local_times, expected);
        assert_eq!(
            fires,
            [0, 1, 2, 3].map(|k| secs(1800 + k * 3600)),
            "one hour of real time between runs"
        );
    }
}

/// The next three fire times of `expression` in UTC after Thursday 2026-01-01 00:00:30, as
/// `"Mon 01-05 00:00:00"`.
fn next_three(expression: &str) -> Vec<String> {
    let schedule = worker_core::cron::CronSchedule::parse(expression, "UTC")
        .unwrap_or_else(|err| panic!("{expression:?} is refused: {err}"));
    let mut at: SystemTime = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 30).unwrap().into();
    (0..3)
        .map(|_| {
            at = schedule.next_after(at).expect("a next fire time");
            DateTime::<Utc>::from(at)
                .format("%a %m-%d %H:%M:%S")
                .to_string()
        })
        .collect()
}

/// Expressions and their next three fire times after Thursday 2026-01-01 00:00:30 UTC.
const DIALECT_CASES: [(&str, [&str; 3]); 23] = [
    // Spring's documented examples.
    (
        "0 0 * * * *",
        [
            "Thu 01-01 01:00:00",
            "Thu 01-01 02:00:00",
            "Thu 01-01 03:00:00",
        ],
    ),
    (
        "*/10 * * * * *",
        [
            "Thu 01-01 00:00:40",
            "Thu 01-01 00:00:50",
            "Thu 01-01 00:01:00",
        ],
    ),
    (
        "0 0 8-10 * * *",
        [
            "Thu 01-01 08:00:00",
            "Thu 01-01 09:00:00",
            "Thu 01-01 10:00:00",
        ],
    ),
    (
        "0 0 6,19 * * *",
        [
            "Thu 01-01 06:00:00",
            "Thu 01-01 19:00:00",
            "Fri 01-02 06:00:00",
        ],
    ),
    (
        "0 0/30 8-10 * * *",
        [
            "Thu 01-01 08:00:00",
            "Thu 01-01 08:30:00",
            "Thu 01-01 09:00:00",
        ],
    ),
    (
        "0 0 9-17 * * MON-FRI",
        [
            "Thu 01-01 09:00:00",
            "Thu 01-01 10:00:00",
            "Thu 01-01 11:00:00",
        ],
    ),
    (
        "0 0 0 25 12 ?",
        [
            "Fri 12-25 00:00:00",
            "Sat 12-25 00:00:00",
            "Mon 12-25 00:00:00",
        ],
    ),
    (
        "0 0 0 L * *",
        [
            "Sat 01-31 00:00:00",
            "Sat 02-28 00:00:00",
            "Tue 03-31 00:00:00",
        ],
    ),
    (
        "0 0 0 L-3 * *",
        [
            "Wed 01-28 00:00:00",
            "Wed 02-25 00:00:00",
            "Sat 03-28 00:00:00",
        ],
    ),
    (
        "0 0 0 1W * *",
        [
            "Mon 02-02 00:00:00",
            "Mon 03-02 00:00:00",
            "Wed 04-01 00:00:00",
        ],
    ),
    (
        "0 0 0 LW * *",
        [
            "Fri 01-30 00:00:00",
            "Fri 02-27 00:00:00",
            "Tue 03-31 00:00:00",
        ],
    ),
    (
        "0 0 0 * * 5L",
        [
            "Fri 01-30 00:00:00",
            "Fri 02-27 00:00:00",
            "Fri 03-27 00:00:00",
        ],
    ),
    (
        "0 0 0 * * THUL",
        [
            "Thu 01-29 00:00:00",
            "Thu 02-26 00:00:00",
            "Thu 03-26 00:00:00",
        ],
    ),
    (
        "0 0 0 ? * 5#2",
        [
            "Fri 01-09 00:00:00",
            "Fri 02-13 00:00:00",
            "Fri 03-13 00:00:00",
        ],
    ),
    (
        "0 0 0 ? * MON#1",
        [
            "Mon 01-05 00:00:00",
            "Mon 02-02 00:00:00",
            "Mon 03-02 00:00:00",
        ],
    ),
    // `N/step` counts from N to the field's end.
    (
        "0/30 * * * * *",
        [
            "Thu 01-01 00:01:00",
            "Thu 01-01 00:01:30",
            "Thu 01-01 00:02:00",
        ],
    ),
    (
        "57/2 * * * * *",
        [
            "Thu 01-01 00:00:57",
            "Thu 01-01 00:00:59",
            "Thu 01-01 00:01:57",
        ],
    ),
    (
        "0 0 0 1 1/3 *",
        [
            "Wed 04-01 00:00:00",
            "Wed 07-01 00:00:00",
            "Thu 10-01 00:00:00",
        ],
    ),
    // Both day fields must match: Friday the 13th.
    (
        "0 0 0 13 * FRI",
        [
            "Fri 02-13 00:00:00",
            "Fri 03-13 00:00:00",
            "Fri 11-13 00:00:00",
        ],
    ),
    (
        "@midnight",
        [
            "Fri 01-02 00:00:00",
            "Sat 01-03 00:00:00",
            "Sun 01-04 00:00:00",
        ],
    ),
    // A day-of-week range from 7 starts on Sunday: Sunday to Friday.
    (
        "0 0 0 * * 7-5",
        [
            "Fri 01-02 00:00:00",
            "Sun 01-04 00:00:00",
            "Mon 01-05 00:00:00",
        ],
    ),
    // Unix cron, five fields: either day field.
    (
        "0 0 13 * 5",
        [
            "Fri 01-02 00:00:00",
            "Fri 01-09 00:00:00",
            "Tue 01-13 00:00:00",
        ],
    ),
    (
        "30 2 * * *",
        [
            "Thu 01-01 02:30:00",
            "Fri 01-02 02:30:00",
            "Sat 01-03 02:30:00",
        ],
    ),
];

/// Six fields mean what they mean in Spring's `CronExpression`: its documented examples, then
/// the forms Spring users write that a plain cron reading gets wrong (`N/step`, both day fields
/// together, `L-n`, `@midnight`, a day-of-week range from 7). Five fields keep Unix cron's
/// meaning.
#[test]
fn six_fields_read_as_spring_and_five_as_unix_cron() {
    for (expression, expected) in DIALECT_CASES {
        assert_eq!(next_three(expression), expected, "{expression:?}");
    }
    // `L` alone in the day of week names no day, as in Spring.
    let err = worker_core::cron::CronSchedule::parse("0 0 0 ? * L", "UTC").unwrap_err();
    assert!(
        err.to_string()
            .contains("`L` alone in the day-of-week field"),
        "{err}"
    );
}
