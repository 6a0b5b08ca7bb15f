-- worker-postgres, migration 1: the jobs table and the singleton leases.
-- `{schema}` stands for the configured schema (default `worker`), quoted.

CREATE TYPE {schema}.job_state AS ENUM
  ('available', 'scheduled', 'running', 'retryable', 'completed', 'cancelled', 'discarded');

CREATE TABLE {schema}.jobs (
  id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  queue             text               NOT NULL,
  args              jsonb              NOT NULL,
  state             {schema}.job_state NOT NULL DEFAULT 'available',
  priority          smallint           NOT NULL DEFAULT 0,   -- lower runs first
  run_at            timestamptz        NOT NULL DEFAULT now(),
  attempt           integer            NOT NULL DEFAULT 0,   -- incremented at claim: the fencing token
  -- Written by the consumer at each claim (its `retry` + 1), not by the producer: a producer
  -- need not know the consumer's policy, and a changed policy applies to jobs already queued.
  max_attempts      integer            NOT NULL DEFAULT 1,
  lease_expires_at  timestamptz,                             -- in no index, so renewals stay HOT
  locked_by         text,                                    -- "host/pid/boot": diagnostics only
  unique_key        text,
  errors            jsonb              NOT NULL DEFAULT '[]', -- the last 10 attempts, newest first
  cancel_requested  boolean            NOT NULL DEFAULT false,
  created_at        timestamptz        NOT NULL DEFAULT now(),
  attempted_at      timestamptz,
  finalized_at      timestamptz,
  CONSTRAINT queue_len   CHECK (char_length(queue) BETWEEN 1 AND 128),
  CONSTRAINT attempts_ok CHECK (max_attempts > 0 AND attempt >= 0),
  CONSTRAINT finalized   CHECK ((state IN ('completed', 'cancelled', 'discarded')) = (finalized_at IS NOT NULL)),
  CONSTRAINT leased      CHECK ((state = 'running') = (lease_expires_at IS NOT NULL))
) WITH (fillfactor = 80,
        autovacuum_vacuum_scale_factor = 0.0, autovacuum_vacuum_threshold = 1000,
        autovacuum_analyze_scale_factor = 0.0, autovacuum_analyze_threshold = 1000);

-- Fetch: runnable rows only, in claim order.
CREATE INDEX jobs_fetch ON {schema}.jobs (queue, priority, run_at, id) WHERE state = 'available';
-- Promotion of due scheduled and retryable jobs.
CREATE INDEX jobs_due ON {schema}.jobs (run_at) WHERE state IN ('scheduled', 'retryable');
-- Rescue scans running rows: at most the sum of every consumer's concurrency.
CREATE INDEX jobs_running ON {schema}.jobs (id) WHERE state = 'running';
-- Unique jobs: one live job per (queue, key).
CREATE UNIQUE INDEX jobs_unique ON {schema}.jobs (queue, unique_key)
  WHERE unique_key IS NOT NULL AND state IN ('available', 'scheduled', 'running', 'retryable');
-- Pruning and inspection of finished rows (those retained).
CREATE INDEX jobs_final ON {schema}.jobs (state, finalized_at) WHERE finalized_at IS NOT NULL;

-- Singleton leases. LOGGED on purpose: an unlogged table is emptied by a crash, which would
-- restart `fence` at 0 and reuse tokens.
CREATE TABLE {schema}.leases (
  name         text        PRIMARY KEY,
  holder       text,
  fence        bigint      NOT NULL DEFAULT 0,
  acquired_at  timestamptz,
  expires_at   timestamptz NOT NULL DEFAULT '-infinity',
  last_tick    timestamptz,                  -- scheduled instant of the last tick started
  last_done    timestamptz,                  -- scheduled instant of the last tick that succeeded
  updated_at   timestamptz NOT NULL DEFAULT now(),
  -- Makes `fence` a key column: an UPDATE that bumps it waits for FOR KEY SHARE holders, while
  -- renewals (which touch only expires_at) do not.
  CONSTRAINT leases_fence_key UNIQUE (name, fence)
);
