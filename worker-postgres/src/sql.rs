//! Every statement on the job tables, rendered once per schema. Durations are bound as whole
//! microseconds (`$n * interval '1 microsecond'`) and every timestamp is the database's `now()`,
//! so no two replicas' clocks are ever compared.
//!
//! The states: `available` (due, waiting for a consumer), `scheduled` (due later),
//! `running` (claimed, under a lease), `retryable` (failed, waiting out its backoff), and the
//! final `completed` (only with retention; completed jobs are deleted by default), `cancelled`
//! and `discarded` (failed permanently or out of attempts), kept for their retention period.
//! Every change to a claimed job names its `attempt` and requires `state = 'running'`: a consumer
//! whose lease expired and whose job was claimed again can no longer change it.

use sqlx::{AssertSqlSafe, SqlSafeStr as _, SqlStr};

use crate::schema::Schema;

/// The live states: those a unique key is unique among.
const LIVE: &str = "('available', 'scheduled', 'running', 'retryable')";

#[derive(Debug)]
pub(crate) struct Sql {
    pub(crate) enqueue: SqlStr,
    pub(crate) claim: SqlStr,
    pub(crate) complete: SqlStr,
    pub(crate) complete_keep: SqlStr,
    pub(crate) fail: SqlStr,
    pub(crate) heartbeat: SqlStr,
    pub(crate) release: SqlStr,
    pub(crate) rescue: SqlStr,
    pub(crate) promote: SqlStr,
    pub(crate) prune: SqlStr,
    pub(crate) cancel: SqlStr,
    pub(crate) counts: SqlStr,
    pub(crate) job: SqlStr,
    pub(crate) acquire: SqlStr,
    pub(crate) renew: SqlStr,
    pub(crate) claim_tick: SqlStr,
    pub(crate) finish_tick: SqlStr,
    pub(crate) resign: SqlStr,
    pub(crate) fence: SqlStr,
    pub(crate) lease: SqlStr,
    pub(crate) hazards: SqlStr,
    pub(crate) queue_counts: SqlStr,
    pub(crate) discarded: SqlStr,
    pub(crate) retry: SqlStr,
    pub(crate) discard: SqlStr,
    pub(crate) job_state: SqlStr,
}

impl Sql {
    pub(crate) fn new(schema: &Schema) -> Self {
        let sql =
            |text: &str| AssertSqlSafe(schema.render(&text.replace("{live}", LIVE))).into_sql_str();
        Self {
            enqueue: sql(ENQUEUE),
            claim: sql(CLAIM),
            complete: sql(COMPLETE),
            complete_keep: sql(COMPLETE_KEEP),
            fail: sql(FAIL),
            heartbeat: sql(HEARTBEAT),
            release: sql(RELEASE),
            rescue: sql(RESCUE),
            promote: sql(PROMOTE),
            prune: sql(PRUNE),
            cancel: sql(CANCEL),
            counts: sql(COUNTS),
            job: sql(JOB),
            acquire: sql(ACQUIRE),
            renew: sql(RENEW),
            claim_tick: sql(CLAIM_TICK),
            finish_tick: sql(FINISH_TICK),
            resign: sql(RESIGN),
            fence: sql(FENCE),
            lease: sql(LEASE),
            hazards: sql(HAZARDS),
            queue_counts: sql(QUEUE_COUNTS),
            discarded: sql(DISCARDED),
            retry: sql(RETRY),
            discard: sql(DISCARD),
            job_state: sql(JOB_STATE),
        }
    }
}

/// One statement for one job or many (`unnest`); `ORDER BY n` inserts them in the
/// caller's order, so their identity values rise in that order. A duplicate of a
/// live unique job updates nothing of it but makes RETURNING yield it, flagged by
/// `xmax` (set by the no-op update, zero for a fresh insert). When `$8` and a job is due now,
/// it notifies `$7` on the `worker_jobs` channel: PostgreSQL folds identical notifications of
/// one transaction into one, delivered at commit (never for a rollback).
const ENQUEUE: &str = "
WITH input AS (
  SELECT x.n, x.a, x.p, x.u,
         coalesce(x.r, now() + coalesce(x.d, 0) * interval '1 microsecond') AS at
  FROM unnest($2::jsonb[], $3::smallint[], $4::timestamptz[], $5::bigint[], $6::text[])
       WITH ORDINALITY AS x(a, p, r, d, u, n)
), ins AS (
  INSERT INTO {schema}.jobs AS j (queue, args, priority, run_at, state, unique_key)
  SELECT $1, a, p, at,
         (CASE WHEN at <= now() THEN 'available' ELSE 'scheduled' END)::{schema}.job_state, u
  FROM input ORDER BY n
  ON CONFLICT (queue, unique_key) WHERE unique_key IS NOT NULL AND state IN {live}
  DO UPDATE SET unique_key = EXCLUDED.unique_key
  RETURNING j.id, j.unique_key, (j.xmax::text <> '0') AS duplicate, j.state
), ping AS (
  SELECT pg_notify('worker_jobs', $7)
  WHERE $8 AND EXISTS (SELECT 1 FROM ins WHERE state = 'available' AND NOT duplicate)
)
SELECT ins.id, ins.unique_key, ins.duplicate FROM ins LEFT JOIN ping ON true";

/// MATERIALIZED keeps the planner from re-running the locking subquery or updating
/// more rows than it locked.
const CLAIM: &str = "
WITH picked AS MATERIALIZED (
  SELECT id FROM {schema}.jobs
  WHERE state = 'available' AND queue = $1
  ORDER BY priority, run_at, id
  LIMIT $2
  FOR UPDATE SKIP LOCKED
)
UPDATE {schema}.jobs j
SET state = 'running', attempt = j.attempt + 1, attempted_at = now(),
    lease_expires_at = now() + $3 * interval '1 microsecond',
    locked_by = $4, max_attempts = $5
FROM picked
WHERE j.id = picked.id
RETURNING j.id, j.args, j.attempt, j.created_at, j.cancel_requested";

const COMPLETE: &str = "
DELETE FROM {schema}.jobs j
USING unnest($1::bigint[], $2::int[]) AS d(id, attempt)
WHERE j.id = d.id AND j.attempt = d.attempt AND j.state = 'running'
RETURNING j.id";

const COMPLETE_KEEP: &str = "
UPDATE {schema}.jobs j
SET state = 'completed', finalized_at = now(), lease_expires_at = NULL, locked_by = NULL
FROM unnest($1::bigint[], $2::int[]) AS d(id, attempt)
WHERE j.id = d.id AND j.attempt = d.attempt AND j.state = 'running'
RETURNING j.id";

/// $3: the backoff before the next attempt, or NULL to discard the job. A job whose
/// cancellation was requested while it ran ends cancelled instead.
const FAIL: &str = "
UPDATE {schema}.jobs j
SET state = (CASE WHEN j.cancel_requested THEN 'cancelled'
                  WHEN $3::bigint IS NULL THEN 'discarded'
                  ELSE 'retryable' END)::{schema}.job_state,
    run_at = CASE WHEN $3::bigint IS NULL OR j.cancel_requested THEN j.run_at
                  ELSE now() + $3 * interval '1 microsecond' END,
    finalized_at = CASE WHEN $3::bigint IS NULL OR j.cancel_requested THEN now() END,
    lease_expires_at = NULL, locked_by = NULL,
    errors = (jsonb_build_array(jsonb_build_object(
               'attempt', j.attempt, 'at', now(), 'error', $4::text)) || j.errors) - 10
WHERE j.id = $1 AND j.attempt = $2 AND j.state = 'running'
RETURNING j.state::text";

const HEARTBEAT: &str = "
UPDATE {schema}.jobs j
SET lease_expires_at = now() + $3 * interval '1 microsecond'
FROM unnest($1::bigint[], $2::int[]) AS h(id, attempt)
WHERE j.id = h.id AND j.attempt = h.attempt AND j.state = 'running'
RETURNING j.id, j.cancel_requested";

/// $3: the job never started, so its attempt is given back.
const RELEASE: &str = "
UPDATE {schema}.jobs j
SET state = (CASE WHEN j.cancel_requested THEN 'cancelled' ELSE 'available' END)::{schema}.job_state,
    finalized_at = CASE WHEN j.cancel_requested THEN now() END,
    run_at = now(), lease_expires_at = NULL, locked_by = NULL,
    attempt = CASE WHEN r.refund THEN j.attempt - 1 ELSE j.attempt END
FROM unnest($1::bigint[], $2::int[], $3::bool[]) AS r(id, attempt, refund)
WHERE j.id = r.id AND j.attempt = r.attempt AND j.state = 'running'
RETURNING j.id";

/// The expiry is checked again inside the UPDATE, on the row as it is when locked,
/// so a job completed or renewed since the scan is left alone.
const RESCUE: &str = "
WITH expired AS MATERIALIZED (
  SELECT id FROM {schema}.jobs
  WHERE state = 'running' AND lease_expires_at < now()
  LIMIT $1
  FOR UPDATE SKIP LOCKED
)
UPDATE {schema}.jobs j
SET state = (CASE WHEN j.cancel_requested THEN 'cancelled'
                  WHEN j.attempt >= j.max_attempts THEN 'discarded'
                  ELSE 'available' END)::{schema}.job_state,
    finalized_at = CASE WHEN j.cancel_requested OR j.attempt >= j.max_attempts THEN now() END,
    run_at = now(), lease_expires_at = NULL, locked_by = NULL,
    errors = (jsonb_build_array(jsonb_build_object(
               'attempt', j.attempt, 'at', now(), 'error', 'lease expired',
               'by', j.locked_by)) || j.errors) - 10
FROM expired
WHERE j.id = expired.id AND j.state = 'running' AND j.lease_expires_at < now()
RETURNING j.id, j.queue, j.state::text";

const PROMOTE: &str = "
WITH due AS MATERIALIZED (
  SELECT id FROM {schema}.jobs
  WHERE state IN ('scheduled', 'retryable') AND run_at <= now()
  ORDER BY run_at
  LIMIT $1
  FOR UPDATE SKIP LOCKED
)
UPDATE {schema}.jobs j SET state = 'available'
FROM due
WHERE j.id = due.id
RETURNING j.queue";

const PRUNE: &str = "
WITH old AS MATERIALIZED (
  SELECT id FROM {schema}.jobs
  WHERE (state = 'completed' AND finalized_at < now() - $1 * interval '1 microsecond')
     OR (state = 'discarded' AND finalized_at < now() - $2 * interval '1 microsecond')
     OR (state = 'cancelled' AND finalized_at < now() - $3 * interval '1 microsecond')
  LIMIT $4
  FOR UPDATE SKIP LOCKED
)
DELETE FROM {schema}.jobs j USING old WHERE j.id = old.id";

/// A queued job is cancelled at once; a running one is flagged, and its consumer
/// learns of it with the next heartbeat.
const CANCEL: &str = "
UPDATE {schema}.jobs
SET state = CASE WHEN state = 'running' THEN state ELSE 'cancelled' END,
    finalized_at = CASE WHEN state = 'running' THEN NULL ELSE now() END,
    cancel_requested = true
WHERE id = $1 AND state IN {live}
RETURNING state::text";

const COUNTS: &str = "
SELECT queue, state::text, count(*) FROM {schema}.jobs GROUP BY 1, 2 ORDER BY 1, 2";

const JOB: &str = "
SELECT id, queue, state::text, attempt, max_attempts, priority, run_at, unique_key,
       errors, cancel_requested, created_at, attempted_at, finalized_at
FROM {schema}.jobs WHERE id = $1";

/// Takes the lease `$1` for holder `$2` when it is free or expired, bumping its fence (a row
/// only if acquired). The fence is a key column: this waits for every open fenced transaction of
/// the previous holder (see `FENCE`).
const ACQUIRE: &str = "
INSERT INTO {schema}.leases AS l (name, holder, fence, acquired_at, expires_at, updated_at)
VALUES ($1, $2, 1, now(), now() + $3 * interval '1 microsecond', now())
ON CONFLICT (name) DO UPDATE
  SET holder = EXCLUDED.holder, fence = l.fence + 1, acquired_at = now(),
      expires_at = EXCLUDED.expires_at, updated_at = now()
  WHERE l.expires_at < now()
RETURNING fence, last_tick, last_done, now()";

/// Extends the holder's lease; no row when it was lost. Touches no key column, so fenced
/// transactions never hold it up.
const RENEW: &str = "
UPDATE {schema}.leases SET expires_at = now() + $4 * interval '1 microsecond', updated_at = now()
WHERE name = $1 AND holder = $2 AND fence = $3 AND expires_at > now()
RETURNING now()";

/// Claims the scheduled instant `$3` for the holder of fence `$2`: a compare-and-set on the
/// last instant claimed, so no instant runs twice, whoever holds the lease.
const CLAIM_TICK: &str = "
UPDATE {schema}.leases SET last_tick = $3, updated_at = now()
WHERE name = $1 AND fence = $2 AND expires_at > now() AND (last_tick IS NULL OR last_tick < $3)";

/// Records the scheduled instant `$3` as done.
const FINISH_TICK: &str = "
UPDATE {schema}.leases SET last_done = $3, updated_at = now()
WHERE name = $1 AND fence = $2 AND (last_done IS NULL OR last_done < $3)";

/// Gives the lease up at once (graceful shutdown), so a successor need not wait for it to
/// expire.
const RESIGN: &str = "
UPDATE {schema}.leases SET expires_at = '-infinity', holder = NULL, updated_at = now()
WHERE name = $1 AND fence = $2";

/// Inside the caller's transaction: the lease is still held with this fence. `FOR KEY SHARE`
/// makes a takeover (which changes the key column `fence`) wait for the transaction to end,
/// while renewals (which change no key column) go on. `clock_timestamp()`, not `now()`, which
/// is the start of the caller's transaction.
const FENCE: &str = "
SELECT 1 FROM {schema}.leases
WHERE name = $1 AND fence = $2 AND expires_at > clock_timestamp()
FOR KEY SHARE";

/// The database's time, for a follower's clock.
pub(crate) const NOW: &str = "SELECT now()";

const LEASE: &str = "
SELECT holder, fence, nullif(expires_at, '-infinity'), expires_at > now(), last_tick, last_done
FROM {schema}.leases WHERE name = $1";

/// The database hazards that break queues in production: dead tuples piling up in the jobs
/// table (vacuum cannot keep up, or is held back), the age of the oldest snapshot that holds
/// vacuum back (a forgotten transaction, or a prepared one), and how full the NOTIFY queue is.
/// `$1` is the schema's name. Sessions of other roles show no start time without the
/// `pg_read_all_stats` role, so they count only with it. The age is taken on
/// `clock_timestamp()`: `now()`, this statement's start, may precede a transaction it sees.
const HAZARDS: &str = "
SELECT
  coalesce((SELECT n_dead_tup FROM pg_stat_user_tables WHERE schemaname = $1 AND relname = 'jobs'), 0),
  coalesce((SELECT n_live_tup FROM pg_stat_user_tables WHERE schemaname = $1 AND relname = 'jobs'), 0),
  greatest(coalesce(extract(epoch FROM clock_timestamp() - least(
    (SELECT min(xact_start) FROM pg_stat_activity
     WHERE backend_xmin IS NOT NULL AND pid <> pg_backend_pid()),
    (SELECT min(prepared) FROM pg_prepared_xacts))), 0), 0)::float8,
  pg_notification_queue_usage()";

/// One queue's jobs by state (states with none are left out).
/// Per state, with how long the state's oldest job has been due, in seconds, on the database's
/// clock (read for `available`: the backlog's age); one pass over the queue's jobs.
const QUEUE_COUNTS: &str = "
SELECT state::text, count(*), extract(epoch FROM now() - min(run_at))::float8
FROM {schema}.jobs WHERE queue = $1 GROUP BY 1";

/// A queue's latest discarded jobs, newest first, with their last error and the start of
/// their payload.
const DISCARDED: &str = "
SELECT id, attempt, coalesce(errors->0->>'error', ''), finalized_at, left(args::text, 500)
FROM {schema}.jobs WHERE queue = $1 AND state = 'discarded'
ORDER BY finalized_at DESC, id DESC LIMIT $2";

/// An admin's retry: the discarded or cancelled job `$1` of queue `$2` is deleted and a new
/// job with its payload and priority enqueued in the same statement, due now (with a
/// notification at commit). A new job, so a stale consumer of the old one can change nothing
/// of it, and its attempts start afresh.
const RETRY: &str = "
WITH old AS (
  DELETE FROM {schema}.jobs WHERE id = $1 AND queue = $2 AND state IN ('discarded', 'cancelled')
  RETURNING queue, args, priority
), new AS (
  INSERT INTO {schema}.jobs (queue, args, priority) SELECT queue, args, priority FROM old
  RETURNING id
)
SELECT id, pg_notify('worker_jobs', $3) IS NULL FROM new";

/// An admin's discard of a waiting job, recorded among its errors.
const DISCARD: &str = "
UPDATE {schema}.jobs
SET state = 'discarded', finalized_at = now(), lease_expires_at = NULL, locked_by = NULL,
    errors = (jsonb_build_array(jsonb_build_object(
               'attempt', attempt, 'at', now(), 'error', 'discarded by an admin')) || errors) - 10
WHERE id = $1 AND queue = $2 AND state IN ('available', 'scheduled', 'retryable')
RETURNING id";

/// A job's state, if queue `$2` has a job `$1`.
const JOB_STATE: &str = "SELECT state::text FROM {schema}.jobs WHERE id = $1 AND queue = $2";
