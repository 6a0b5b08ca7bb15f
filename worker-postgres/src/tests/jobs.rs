//! The job state machine: every transition, the attempt fence, unique and scheduled jobs,
//! cancellation, retention, the transactional enqueue and the transactional completion.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use super::{BY, Invoice, LEASE, past, pg, state};
use crate::store::Retention;
use crate::{Cancelled, Enqueued, JobState, Opts, Postgres};

#[tokio::test]
async fn migrating_again_or_concurrently_applies_each_migration_once() {
    let pg = pg().await;
    assert_eq!(pg.migrate().await.expect("migrates"), Vec::<i32>::new());
    let other = Postgres::new(pg.pool().clone())
        .schema(&format!("{}_b", pg.schema_name()))
        .expect("valid");
    let (a, b) = tokio::join!(other.migrate(), other.migrate());
    let mut applied = [a.expect("migrates"), b.expect("migrates")];
    applied.sort();
    assert_eq!(applied, [vec![], vec![1]]);
    let text = crate::migrations::migrations("tenant_7").expect("valid");
    assert!(
        text[0].sql.contains("CREATE TABLE \"tenant_7\".jobs"),
        "{}",
        text[0].sql
    );
    assert!(!text[0].sql.contains("{schema}"));
    let err = crate::migrations::migrations("Tenant").expect_err("uppercase");
    assert!(
        err.to_string().contains("invalid schema name \"Tenant\""),
        "{err}"
    );
}

#[tokio::test]
async fn a_job_goes_from_available_through_running_to_completed_and_is_deleted() {
    let pg = pg().await;
    let queue = pg.queue::<Invoice>("invoices").expect("valid");
    let Enqueued { id, duplicate } = queue
        .enqueue(pg.pool(), &Invoice { order: 7 })
        .await
        .expect("enqueues");
    assert!(!duplicate);
    assert_eq!(state(&pg, id).await, Some(JobState::Available));

    let claimed = pg
        .claim("invoices", 10, LEASE, BY, 4)
        .await
        .expect("claims");
    assert_eq!(claimed.len(), 1);
    let job = &claimed[0];
    assert_eq!((job.id, job.attempt), (id, 1));
    assert_eq!(
        serde_json::from_value::<Invoice>(job.args.clone()).expect("decodes"),
        Invoice { order: 7 }
    );
    assert!(!job.cancel_requested);
    let age = SystemTime::now()
        .duration_since(job.created_at.into())
        .unwrap_or_default();
    assert!(age < Duration::from_mins(1), "enqueued just now: {age:?}");
    let record = pg.job(id).await.expect("reads").expect("exists");
    assert_eq!(
        (record.state, record.attempt, record.max_attempts),
        (JobState::Running, 1, 4)
    );
    assert!(
        pg.claim("invoices", 10, LEASE, BY, 4)
            .await
            .expect("claims")
            .is_empty(),
        "claimed once"
    );

    assert_eq!(
        pg.complete(&[(id, 1)], false).await.expect("completes"),
        vec![id]
    );
    assert_eq!(state(&pg, id).await, None, "completed jobs are deleted");
    assert!(
        pg.complete(&[(id, 1)], false)
            .await
            .expect("runs")
            .is_empty(),
        "completed once"
    );
}

#[tokio::test]
async fn retention_keeps_completed_jobs_when_asked_and_prunes_finished_ones_after_it() {
    let pg = pg().await;
    let queue = pg.queue::<Invoice>("q").expect("valid");
    let kept = queue
        .enqueue(pg.pool(), &Invoice { order: 1 })
        .await
        .expect("enqueues")
        .id;
    let dead = queue
        .enqueue(pg.pool(), &Invoice { order: 2 })
        .await
        .expect("enqueues")
        .id;
    let cancelled = queue
        .enqueue(pg.pool(), &Invoice { order: 3 })
        .await
        .expect("enqueues")
        .id;
    assert_eq!(
        pg.cancel(pg.pool(), cancelled).await.expect("cancels"),
        Cancelled::Cancelled
    );
    assert_eq!(
        pg.claim("q", 10, LEASE, BY, 1).await.expect("claims").len(),
        2
    );
    assert_eq!(
        pg.complete(&[(kept, 1)], true).await.expect("completes"),
        vec![kept]
    );
    assert_eq!(
        pg.fail(dead, 1, None, "boom").await.expect("fails"),
        Some(JobState::Discarded)
    );
    let record = pg.job(kept).await.expect("reads").expect("kept");
    assert_eq!(record.state, JobState::Completed);
    assert!(record.finalized_at.is_some());

    // Within their retention, nothing is pruned.
    let long = Retention {
        completed: Duration::from_hours(1),
        ..Retention::default()
    };
    assert_eq!(pg.prune(long, 100).await.expect("prunes"), 0);
    for id in [kept, dead, cancelled] {
        assert!(state(&pg, id).await.is_some());
    }
    // Past it, each goes.
    past(Duration::ZERO).await;
    let none = Retention {
        completed: Duration::ZERO,
        discarded: Duration::ZERO,
        cancelled: Duration::ZERO,
    };
    assert_eq!(pg.prune(none, 100).await.expect("prunes"), 3);
    for id in [kept, dead, cancelled] {
        assert_eq!(state(&pg, id).await, None);
    }
}

#[tokio::test]
async fn a_stale_attempt_can_change_nothing_once_its_job_is_claimed_again() {
    let pg = pg().await;
    let queue = pg.queue::<Invoice>("q").expect("valid");
    let id = queue
        .enqueue(pg.pool(), &Invoice { order: 1 })
        .await
        .expect("enqueues")
        .id;
    let short = Duration::from_millis(1);
    let first = pg.claim("q", 1, short, "old/1", 4).await.expect("claims");
    assert_eq!(first[0].attempt, 1);
    past(short).await;

    // The first consumer's lease expired: rescue hands the job back, and another claims it.
    let rescued = pg.rescue(100).await.expect("rescues");
    assert_eq!(rescued, vec![(id, "q".to_owned(), JobState::Available)]);
    let record = pg.job(id).await.expect("reads").expect("exists");
    assert_eq!(record.errors[0].error, "lease expired");
    assert_eq!(record.errors[0].by.as_deref(), Some("old/1"));
    let second = pg.claim("q", 1, LEASE, "new/1", 4).await.expect("claims");
    assert_eq!(second[0].attempt, 2);

    // Every change the first consumer attempts is refused.
    assert!(
        pg.complete(&[(id, 1)], false)
            .await
            .expect("runs")
            .is_empty()
    );
    assert_eq!(
        pg.fail(id, 1, Some(Duration::ZERO), "late")
            .await
            .expect("runs"),
        None
    );
    assert!(
        pg.heartbeat(&[(id, 1)], LEASE)
            .await
            .expect("runs")
            .is_empty()
    );
    assert!(
        pg.release(&[(id, 1, false)])
            .await
            .expect("runs")
            .is_empty()
    );
    let mut tx = pg.pool().begin().await.expect("begins");
    assert!(
        pg.complete_jobs_in(&mut *tx, &[(id, 1)], false)
            .await
            .expect("runs")
            .is_empty()
    );
    tx.rollback().await.expect("rolls back");
    let record = pg.job(id).await.expect("reads").expect("exists");
    assert_eq!((record.state, record.attempt), (JobState::Running, 2));

    // A renewed lease is not rescued; the current attempt finishes the job.
    assert_eq!(
        pg.heartbeat(&[(id, 2)], LEASE).await.expect("renews"),
        vec![(id, false)]
    );
    assert!(pg.rescue(100).await.expect("rescues").is_empty());
    assert_eq!(
        pg.complete(&[(id, 2)], false).await.expect("completes"),
        vec![id]
    );
}

#[tokio::test]
async fn failures_retry_after_their_backoff_and_are_discarded_when_permanent_or_out_of_attempts() {
    let pg = pg().await;
    let queue = pg.queue::<Invoice>("q").expect("valid");
    let id = queue
        .enqueue(pg.pool(), &Invoice { order: 1 })
        .await
        .expect("enqueues")
        .id;

    pg.claim("q", 1, LEASE, BY, 3).await.expect("claims");
    assert_eq!(
        pg.fail(id, 1, Some(Duration::from_hours(1)), "first")
            .await
            .expect("fails"),
        Some(JobState::Retryable)
    );
    assert!(
        pg.promote(100).await.expect("promotes").is_empty(),
        "not due for an hour"
    );
    assert!(
        pg.claim("q", 1, LEASE, BY, 3)
            .await
            .expect("claims")
            .is_empty()
    );

    let id2 = queue
        .enqueue(pg.pool(), &Invoice { order: 2 })
        .await
        .expect("enqueues")
        .id;
    pg.claim("q", 1, LEASE, BY, 3).await.expect("claims");
    assert_eq!(
        pg.fail(id2, 1, Some(Duration::ZERO), "again")
            .await
            .expect("fails"),
        Some(JobState::Retryable)
    );
    past(Duration::ZERO).await;
    assert_eq!(
        pg.promote(100).await.expect("promotes"),
        vec!["q".to_owned()]
    );
    let claimed = pg.claim("q", 1, LEASE, BY, 3).await.expect("claims");
    assert_eq!((claimed[0].id, claimed[0].attempt), (id2, 2));

    // A permanent failure (no retry) is discarded with its errors, newest first.
    assert_eq!(
        pg.fail(id2, 2, None, "permanent").await.expect("fails"),
        Some(JobState::Discarded)
    );
    let record = pg.job(id2).await.expect("reads").expect("kept");
    let errors: Vec<_> = record
        .errors
        .iter()
        .map(|e| (e.attempt, e.error.as_str()))
        .collect();
    assert_eq!(errors, [(2, "permanent"), (1, "again")]);
    assert!(record.finalized_at.is_some());

    // Out of attempts when its lease expires: discarded by the rescue.
    let id3 = queue
        .enqueue(pg.pool(), &Invoice { order: 3 })
        .await
        .expect("enqueues")
        .id;
    let short = Duration::from_millis(1);
    assert_eq!(
        pg.claim("q", 1, short, BY, 1).await.expect("claims")[0].id,
        id3
    );
    past(short).await;
    assert_eq!(
        pg.rescue(100).await.expect("rescues"),
        vec![(id3, "q".to_owned(), JobState::Discarded)]
    );
}

#[tokio::test]
async fn an_error_list_keeps_the_last_ten_attempts() {
    let pg = pg().await;
    let id = pg
        .queue::<Invoice>("q")
        .expect("valid")
        .enqueue(pg.pool(), &Invoice { order: 1 })
        .await
        .expect("enqueues")
        .id;
    for attempt in 1..=12 {
        let claimed = pg.claim("q", 1, LEASE, BY, 100).await.expect("claims");
        assert_eq!(claimed[0].attempt, attempt);
        pg.fail(
            id,
            attempt,
            Some(Duration::ZERO),
            &format!("failure {attempt}"),
        )
        .await
        .expect("fails");
        past(Duration::ZERO).await;
        pg.promote(10).await.expect("promotes");
    }
    let errors = pg.job(id).await.expect("reads").expect("exists").errors;
    let attempts: Vec<i32> = errors.iter().map(|e| e.attempt).collect();
    assert_eq!(attempts, (3..=12).rev().collect::<Vec<_>>());
}

#[tokio::test]
async fn unique_jobs_are_unique_among_live_jobs_of_their_queue() {
    let pg = pg().await;
    let queue = pg.queue::<Invoice>("q").expect("valid");
    let key = || Opts::new().unique_key("order:7");
    let first = queue
        .enqueue_with(pg.pool(), &Invoice { order: 7 }, key())
        .await
        .expect("enqueues");
    let again = queue
        .enqueue_with(pg.pool(), &Invoice { order: 7 }, key())
        .await
        .expect("enqueues");
    assert_eq!(
        again,
        Enqueued {
            id: first.id,
            duplicate: true
        }
    );
    let other = pg.queue::<Invoice>("other").expect("valid");
    assert!(
        !other
            .enqueue_with(pg.pool(), &Invoice { order: 7 }, key())
            .await
            .expect("enqueues")
            .duplicate
    );

    // Still unique while it runs; free once it completed.
    pg.claim("q", 1, LEASE, BY, 1).await.expect("claims");
    assert!(
        queue
            .enqueue_with(pg.pool(), &Invoice { order: 7 }, key())
            .await
            .expect("enqueues")
            .duplicate
    );
    pg.complete(&[(first.id, 1)], false)
        .await
        .expect("completes");
    let after = queue
        .enqueue_with(pg.pool(), &Invoice { order: 7 }, key())
        .await
        .expect("enqueues");
    assert!(!after.duplicate);
    assert_ne!(after.id, first.id);

    // In one batch: the key's later jobs are duplicates of its first; the others are inserted
    // in order.
    let jobs = [
        Invoice { order: 1 },
        Invoice { order: 2 },
        Invoice { order: 3 },
        Invoice { order: 4 },
    ];
    let opts = [
        Opts::new().unique_key("b"),
        Opts::new(),
        Opts::new().unique_key("b"),
        Opts::new(),
    ];
    let done = queue
        .enqueue_many_with(pg.pool(), jobs.iter().zip(opts))
        .await
        .expect("enqueues");
    assert_eq!(done.len(), 4);
    assert_eq!(
        done[2],
        Enqueued {
            id: done[0].id,
            duplicate: true
        }
    );
    assert!(!done[0].duplicate && !done[1].duplicate && !done[3].duplicate);
    assert!(done[1].id < done[3].id);
    let b = pg.job(done[0].id).await.expect("reads").expect("exists");
    assert_eq!(b.unique_key.as_deref(), Some("b"));
}

#[tokio::test]
async fn enqueue_many_returns_each_jobs_id_in_order() {
    let pg = pg().await;
    let queue = pg.queue::<Invoice>("q").expect("valid");
    let jobs: Vec<Invoice> = (0..500).map(|order| Invoice { order }).collect();
    let done = queue
        .enqueue_many(pg.pool(), &jobs)
        .await
        .expect("enqueues");
    let claimed = pg.claim("q", 1000, LEASE, BY, 1).await.expect("claims");
    assert_eq!(claimed.len(), 500);
    for job in claimed {
        let order = serde_json::from_value::<Invoice>(job.args)
            .expect("decodes")
            .order;
        assert_eq!(done[usize::try_from(order).expect("small")].id, job.id);
    }
}

#[tokio::test]
async fn scheduled_jobs_wait_until_due_and_priorities_order_due_jobs() {
    let pg = pg().await;
    let queue = pg.queue::<Invoice>("q").expect("valid");
    let later = queue
        .enqueue_with(
            pg.pool(),
            &Invoice { order: 1 },
            Opts::new().run_in(Duration::from_hours(1)),
        )
        .await
        .expect("enqueues")
        .id;
    let tomorrow = SystemTime::now() + Duration::from_hours(24);
    let at = queue
        .enqueue_with(
            pg.pool(),
            &Invoice { order: 2 },
            Opts::new().run_at(tomorrow),
        )
        .await
        .expect("enqueues")
        .id;
    let soon = queue
        .enqueue_with(
            pg.pool(),
            &Invoice { order: 3 },
            Opts::new().run_in(Duration::from_millis(1)),
        )
        .await
        .expect("enqueues")
        .id;
    for id in [later, at, soon] {
        assert_eq!(state(&pg, id).await, Some(JobState::Scheduled));
    }
    let stored = pg.job(at).await.expect("reads").expect("exists").run_at;
    let off = stored
        .duration_since(tomorrow)
        .unwrap_or_else(|e| e.duration());
    assert!(
        off < Duration::from_millis(1),
        "run_at kept to the microsecond: {off:?}"
    );
    assert!(
        pg.claim("q", 10, LEASE, BY, 1)
            .await
            .expect("claims")
            .is_empty()
    );
    past(Duration::from_millis(1)).await;
    assert_eq!(
        pg.promote(100).await.expect("promotes"),
        vec!["q".to_owned()]
    );
    assert_eq!(state(&pg, later).await, Some(JobState::Scheduled));
    assert_eq!(state(&pg, soon).await, Some(JobState::Available));

    // Due in the past: available at once. Lower priorities run first, then older jobs.
    let yesterday = SystemTime::now() - Duration::from_hours(24);
    let low = queue
        .enqueue_with(pg.pool(), &Invoice { order: 4 }, Opts::new().priority(5))
        .await
        .expect("enqueues")
        .id;
    let urgent = queue
        .enqueue_with(pg.pool(), &Invoice { order: 5 }, Opts::new().priority(-1))
        .await
        .expect("enqueues")
        .id;
    let overdue = queue
        .enqueue_with(
            pg.pool(),
            &Invoice { order: 6 },
            Opts::new().run_at(yesterday),
        )
        .await
        .expect("enqueues")
        .id;
    let order: Vec<i64> = pg
        .claim("q", 10, LEASE, BY, 1)
        .await
        .expect("claims")
        .iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(order, [urgent, overdue, soon, low]);
}

#[tokio::test]
async fn cancelling_stops_a_waiting_job_at_once_and_flags_a_running_one() {
    let pg = pg().await;
    let queue = pg.queue::<Invoice>("q").expect("valid");
    let waiting = queue
        .enqueue(pg.pool(), &Invoice { order: 1 })
        .await
        .expect("enqueues")
        .id;
    assert_eq!(
        pg.cancel(pg.pool(), waiting).await.expect("cancels"),
        Cancelled::Cancelled
    );
    assert_eq!(state(&pg, waiting).await, Some(JobState::Cancelled));
    assert_eq!(
        pg.cancel(pg.pool(), waiting).await.expect("runs"),
        Cancelled::NotLive
    );
    assert_eq!(
        pg.cancel(pg.pool(), 999_999).await.expect("runs"),
        Cancelled::NotLive
    );

    let running = queue
        .enqueue(pg.pool(), &Invoice { order: 2 })
        .await
        .expect("enqueues")
        .id;
    assert_eq!(
        pg.claim("q", 10, LEASE, BY, 5).await.expect("claims")[0].id,
        running
    );
    assert_eq!(
        pg.cancel(pg.pool(), running).await.expect("cancels"),
        Cancelled::Requested
    );
    assert_eq!(state(&pg, running).await, Some(JobState::Running));
    // Its consumer learns of it at the next heartbeat, and the failed attempt ends it cancelled
    // rather than retried.
    assert_eq!(
        pg.heartbeat(&[(running, 1)], LEASE).await.expect("renews"),
        vec![(running, true)]
    );
    assert_eq!(
        pg.fail(running, 1, Some(Duration::ZERO), "cancelled")
            .await
            .expect("fails"),
        Some(JobState::Cancelled)
    );

    // Released at shutdown, a flagged job is cancelled too.
    let released = queue
        .enqueue(pg.pool(), &Invoice { order: 3 })
        .await
        .expect("enqueues")
        .id;
    pg.claim("q", 10, LEASE, BY, 5).await.expect("claims");
    pg.cancel(pg.pool(), released).await.expect("cancels");
    assert_eq!(
        pg.release(&[(released, 1, false)]).await.expect("releases"),
        vec![released]
    );
    assert_eq!(state(&pg, released).await, Some(JobState::Cancelled));
}

#[tokio::test]
async fn release_hands_jobs_back_at_once_refunding_the_attempt_of_those_never_started() {
    let pg = pg().await;
    let queue = pg.queue::<Invoice>("q").expect("valid");
    let started = queue
        .enqueue(pg.pool(), &Invoice { order: 1 })
        .await
        .expect("enqueues")
        .id;
    let prefetched = queue
        .enqueue(pg.pool(), &Invoice { order: 2 })
        .await
        .expect("enqueues")
        .id;
    assert_eq!(
        pg.claim("q", 10, LEASE, BY, 5).await.expect("claims").len(),
        2
    );
    let mut released = pg
        .release(&[(started, 1, false), (prefetched, 1, true)])
        .await
        .expect("releases");
    released.sort_unstable();
    assert_eq!(released, [started, prefetched]);
    let a = pg.job(started).await.expect("reads").expect("exists");
    let b = pg.job(prefetched).await.expect("reads").expect("exists");
    assert_eq!((a.state, a.attempt), (JobState::Available, 1));
    assert_eq!((b.state, b.attempt), (JobState::Available, 0));
}

#[tokio::test]
async fn a_job_enqueued_in_a_rolled_back_transaction_never_exists() {
    let pg = pg().await;
    let queue = pg.queue::<Invoice>("q").expect("valid");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE {}.orders (id bigint PRIMARY KEY)",
        pg.schema_name()
    )))
    .execute(pg.pool())
    .await
    .expect("creates");
    let insert = format!("INSERT INTO {}.orders VALUES ($1)", pg.schema_name());

    let mut tx = pg.pool().begin().await.expect("begins");
    sqlx::query(sqlx::AssertSqlSafe(insert.clone()))
        .bind(1_i64)
        .execute(&mut *tx)
        .await
        .expect("inserts");
    let rolled_back = queue
        .enqueue(&mut *tx, &Invoice { order: 1 })
        .await
        .expect("enqueues")
        .id;
    tx.rollback().await.expect("rolls back");

    let mut tx = pg.pool().begin().await.expect("begins");
    sqlx::query(sqlx::AssertSqlSafe(insert))
        .bind(2_i64)
        .execute(&mut *tx)
        .await
        .expect("inserts");
    let committed = queue
        .enqueue(&mut *tx, &Invoice { order: 2 })
        .await
        .expect("enqueues")
        .id;
    // Not visible to consumers before the commit.
    assert!(
        pg.claim("q", 10, LEASE, BY, 1)
            .await
            .expect("claims")
            .is_empty()
    );
    tx.commit().await.expect("commits");

    assert_eq!(state(&pg, rolled_back).await, None);
    let claimed: Vec<i64> = pg
        .claim("q", 10, LEASE, BY, 1)
        .await
        .expect("claims")
        .iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(claimed, [committed]);
}

#[tokio::test]
async fn complete_in_commits_the_completion_with_the_side_effect_or_neither() {
    let pg = pg().await;
    let queue = pg.queue::<Invoice>("q").expect("valid");
    let schema = pg.schema_name().to_owned();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE {schema}.effects (job bigint PRIMARY KEY)"
    )))
    .execute(pg.pool())
    .await
    .expect("creates");
    let effect = format!("INSERT INTO {schema}.effects VALUES ($1)");
    let id = queue
        .enqueue(pg.pool(), &Invoice { order: 1 })
        .await
        .expect("enqueues")
        .id;
    pg.claim("q", 1, LEASE, BY, 3).await.expect("claims");

    // Rolled back: neither the effect nor the completion happened.
    let mut tx = pg.pool().begin().await.expect("begins");
    sqlx::query(sqlx::AssertSqlSafe(effect.clone()))
        .bind(id)
        .execute(&mut *tx)
        .await
        .expect("inserts");
    assert_eq!(
        pg.complete_jobs_in(&mut *tx, &[(id, 1)], false)
            .await
            .expect("completes"),
        vec![id]
    );
    tx.rollback().await.expect("rolls back");
    assert_eq!(state(&pg, id).await, Some(JobState::Running));

    // Committed: both.
    let mut tx = pg.pool().begin().await.expect("begins");
    sqlx::query(sqlx::AssertSqlSafe(effect))
        .bind(id)
        .execute(&mut *tx)
        .await
        .expect("inserts");
    assert_eq!(
        pg.complete_jobs_in(&mut *tx, &[(id, 1)], false)
            .await
            .expect("completes"),
        vec![id]
    );
    tx.commit().await.expect("commits");
    assert_eq!(state(&pg, id).await, None);
    let effects: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM {schema}.effects"
    )))
    .fetch_one(pg.pool())
    .await
    .expect("counts");
    assert_eq!(effects, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_consumers_never_claim_the_same_job() {
    let pg = pg().await;
    let queue = pg.queue::<Invoice>("q").expect("valid");
    let jobs: Vec<Invoice> = (0..400).map(|order| Invoice { order }).collect();
    queue
        .enqueue_many(pg.pool(), &jobs)
        .await
        .expect("enqueues");
    let consumers: Vec<_> = (0..4)
        .map(|n| {
            let pg = pg.clone();
            tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let claimed = pg
                        .claim("q", 7, LEASE, &format!("c/{n}"), 1)
                        .await
                        .expect("claims");
                    if claimed.is_empty() {
                        return mine;
                    }
                    let done: Vec<(i64, i32)> = claimed.iter().map(|j| (j.id, j.attempt)).collect();
                    assert_eq!(
                        pg.complete(&done, false).await.expect("completes").len(),
                        done.len()
                    );
                    mine.extend(done.iter().map(|&(id, _)| id));
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    for consumer in consumers {
        all.extend(consumer.await.expect("no panic"));
    }
    assert_eq!(all.len(), 400);
    assert_eq!(all.iter().collect::<HashSet<_>>().len(), 400);
    assert!(pg.counts().await.expect("counts").is_empty());
}

#[tokio::test]
async fn counts_report_each_queues_jobs_by_state() {
    let pg = pg().await;
    let a = pg.queue::<Invoice>("a").expect("valid");
    let b = pg.queue::<Invoice>("b").expect("valid");
    a.enqueue_many(pg.pool(), &[Invoice { order: 1 }, Invoice { order: 2 }])
        .await
        .expect("enqueues");
    b.enqueue_with(
        pg.pool(),
        &Invoice { order: 3 },
        Opts::new().run_in(Duration::from_mins(1)),
    )
    .await
    .expect("enqueues");
    pg.claim("a", 1, LEASE, BY, 1).await.expect("claims");
    let counts: Vec<(String, JobState, i64)> = pg
        .counts()
        .await
        .expect("counts")
        .into_iter()
        .map(|c| (c.queue, c.state, c.count))
        .collect();
    assert_eq!(
        counts,
        [
            ("a".to_owned(), JobState::Available, 1),
            ("a".to_owned(), JobState::Running, 1),
            ("b".to_owned(), JobState::Scheduled, 1),
        ]
    );
    assert!(pg.queue::<Invoice>("").is_err());
    assert!(pg.queue::<Invoice>(&"x".repeat(129)).is_err());
}

#[tokio::test]
async fn hazards_show_dead_tuples_and_a_snapshot_held_open() {
    let pg = pg().await;
    let calm = pg.hazards().await.expect("reads");
    assert!((0.0..=1.0).contains(&calm.notify_queue_usage), "{calm:?}");
    assert!(calm.oldest_xmin_age_seconds >= 0.0, "{calm:?}");

    // Completions leave dead row versions behind, until vacuum comes.
    let jobs: Vec<Invoice> = (0..200).map(|order| Invoice { order }).collect();
    pg.queue::<Invoice>("q")
        .expect("valid")
        .enqueue_many(pg.pool(), &jobs)
        .await
        .expect("enqueues");
    let mut conn = pg.pool().acquire().await.expect("connects");
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DELETE FROM {}.jobs; SELECT pg_stat_force_next_flush();",
        pg.schema_name()
    )))
    .execute(&mut *conn)
    .await
    .expect("deletes");
    sqlx::query("SELECT 1")
        .execute(&mut *conn)
        .await
        .expect("flushes its statistics");
    let mut dead = 0;
    for _ in 0..100 {
        dead = pg.hazards().await.expect("reads").dead_tuples;
        if dead >= 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(dead >= 200, "dead tuples: {dead}");

    // A transaction that holds a snapshot holds vacuum back, and ages.
    let mut tx = pg.pool().begin().await.expect("begins");
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        .execute(&mut *tx)
        .await
        .expect("sets");
    sqlx::query("SELECT 1")
        .execute(&mut *tx)
        .await
        .expect("takes a snapshot");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let held = pg.hazards().await.expect("reads");
    assert!(held.oldest_xmin_age_seconds >= 0.05, "{held:?}");
    tx.rollback().await.expect("rolls back");
}

#[tokio::test]
async fn a_committed_enqueue_wakes_its_queue_and_a_rolled_back_one_does_not() {
    use futures_util::FutureExt as _;
    let pg = pg().await;
    let schema = pg.schema_name().to_owned();
    let a = pg
        .listener
        .waiter(pg.pool(), crate::notify::payload(&schema, "a"));
    let b = pg
        .listener
        .waiter(pg.pool(), crate::notify::payload(&schema, "b"));
    // The first wake-up is the listener's own, once it listens.
    tokio::time::timeout(Duration::from_secs(30), a.notified())
        .await
        .expect("listening");
    tokio::time::timeout(Duration::from_secs(30), b.notified())
        .await
        .expect("listening");

    let mut tx = pg.pool().begin().await.expect("begins");
    let queue_a = pg.queue::<Invoice>("a").expect("valid");
    queue_a
        .enqueue(&mut *tx, &Invoice { order: 1 })
        .await
        .expect("enqueues");
    tx.rollback().await.expect("rolls back");
    let queue_b = pg.queue::<Invoice>("b").expect("valid");
    // Two jobs in one transaction: one notification.
    let mut tx = pg.pool().begin().await.expect("begins");
    queue_b
        .enqueue_many(&mut *tx, &[Invoice { order: 2 }, Invoice { order: 3 }])
        .await
        .expect("enqueues");
    tx.commit().await.expect("commits");
    tokio::time::timeout(Duration::from_secs(30), b.notified())
        .await
        .expect("b is woken");
    // Notifications arrive in commit order, so a's would have come first: it never was sent.
    assert!(
        a.notified().now_or_never().is_none(),
        "a rolled-back enqueue woke its queue"
    );
    // A job due later wakes nobody either; with notifications off, neither does a due one.
    queue_a
        .enqueue_with(
            pg.pool(),
            &Invoice { order: 4 },
            Opts::new().run_in(Duration::from_hours(1)),
        )
        .await
        .expect("enqueues");
    let quiet = pg
        .clone()
        .notify(false)
        .queue::<Invoice>("a")
        .expect("valid");
    quiet
        .enqueue(pg.pool(), &Invoice { order: 5 })
        .await
        .expect("enqueues");
    queue_b
        .enqueue(pg.pool(), &Invoice { order: 6 })
        .await
        .expect("enqueues");
    tokio::time::timeout(Duration::from_secs(30), b.notified())
        .await
        .expect("b is woken");
    assert!(a.notified().now_or_never().is_none(), "a was woken");
}
