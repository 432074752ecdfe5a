-- Flashpods SQLite schema.
--
-- This file is the single source of the schema and its history: each `-- migration N: title`
-- section is applied once, in order, inside a transaction, and PRAGMA user_version records the
-- last one applied. An existing database is migrated forward on start, never dropped.
-- Never edit a section that has shipped; append a new one.
--
-- Times are integer milliseconds since the Unix epoch (UTC); the API formats them as ISO 8601.

-- migration 1: the tables of the storage contract
CREATE TABLE jobs (
  id              TEXT PRIMARY KEY CHECK (id LIKE 'job\_%' ESCAPE '\'),
  user_id         TEXT NOT NULL DEFAULT 'default',
  job_type        TEXT NOT NULL CHECK (job_type IN ('worker', 'agent')),
  status          TEXT NOT NULL CHECK (status IN ('pending', 'starting', 'running', 'completed', 'failed',
                                                  'timed_out', 'cancelled', 'cleaning', 'cleaned')),
  command         TEXT,
  task            TEXT,
  context         TEXT,
  git_branch      TEXT,
  files_id        TEXT,
  image           TEXT NOT NULL,
  cpus            INTEGER NOT NULL CHECK (cpus >= 1),
  memory_gb       INTEGER NOT NULL CHECK (memory_gb >= 1),
  timeout_minutes INTEGER NOT NULL CHECK (timeout_minutes BETWEEN 1 AND 120),
  container_id    TEXT,
  exit_code       INTEGER,
  error           TEXT,
  created_at      INTEGER NOT NULL,
  started_at      INTEGER,
  completed_at    INTEGER,
  CHECK (job_type <> 'worker' OR command IS NOT NULL),
  CHECK (job_type <> 'agent' OR (task IS NOT NULL AND git_branch IS NOT NULL))
);
CREATE INDEX jobs_by_status ON jobs (status);
CREATE INDEX jobs_by_user_created ON jobs (user_id, created_at DESC);

-- The contract names client_job_id the key of this table, but a key is reused once its job is
-- cleaned, so history is kept with a surrogate key and "one active job per key" is enforced by
-- the partial unique index instead.
CREATE TABLE idempotency_keys (
  id            INTEGER PRIMARY KEY,
  client_job_id TEXT NOT NULL CHECK (client_job_id = lower(client_job_id) AND length(client_job_id) <= 36),
  job_id        TEXT NOT NULL REFERENCES jobs (id),
  active        INTEGER NOT NULL DEFAULT 1 CHECK (active IN (0, 1)),
  created_at    INTEGER NOT NULL
);
CREATE UNIQUE INDEX idempotency_keys_active ON idempotency_keys (client_job_id) WHERE active = 1;

CREATE TABLE uploads (
  id           TEXT PRIMARY KEY CHECK (id LIKE 'upload\_%' ESCAPE '\'),
  user_id      TEXT NOT NULL DEFAULT 'default',
  state        TEXT NOT NULL CHECK (state IN ('uploading', 'finalized', 'consumed', 'expired')),
  size_bytes   INTEGER,
  file_count   INTEGER,
  created_at   INTEGER NOT NULL,
  finalized_at INTEGER,
  consumed_at  INTEGER,
  expires_at   INTEGER NOT NULL,
  job_id       TEXT REFERENCES jobs (id)
);
CREATE INDEX uploads_by_state_expiry ON uploads (state, expires_at);

CREATE TABLE artifacts (
  id         INTEGER PRIMARY KEY,
  job_id     TEXT NOT NULL REFERENCES jobs (id),
  name       TEXT NOT NULL,
  path       TEXT NOT NULL,
  size_bytes INTEGER NOT NULL CHECK (size_bytes >= 0),
  created_at INTEGER NOT NULL,
  UNIQUE (job_id, name)
);
CREATE INDEX artifacts_by_job ON artifacts (job_id);

-- migration 2: what the runtime needs to kill, recover and account for jobs
ALTER TABLE jobs ADD COLUMN log_truncated INTEGER NOT NULL DEFAULT 0 CHECK (log_truncated IN (0, 1));
-- Set by DELETE /jobs/:id or the timeout clock; the kill sequence is driven from these.
ALTER TABLE jobs ADD COLUMN kill_requested_at INTEGER;
ALTER TABLE jobs ADD COLUMN kill_reason TEXT CHECK (kill_reason IN ('cancel', 'timeout'));
-- Admission counts a job's resources until its container is really gone, whatever its status.
ALTER TABLE jobs ADD COLUMN resources_released_at INTEGER;
CREATE INDEX jobs_holding_resources ON jobs (resources_released_at) WHERE resources_released_at IS NULL;
UPDATE jobs SET resources_released_at = coalesce(completed_at, created_at)
  WHERE status IN ('completed', 'failed', 'timed_out', 'cancelled', 'cleaning', 'cleaned');

-- migration 3: artifact indexing and cleanup progress
-- NULL until the indexer has recorded the job's artifacts; listings say copy_in_progress meanwhile.
ALTER TABLE jobs ADD COLUMN artifacts_indexed_at INTEGER;
-- Artifacts go 1 h after the job ended, logs 24 h after; the job is `cleaned` once both are gone.
ALTER TABLE jobs ADD COLUMN artifacts_deleted_at INTEGER;
ALTER TABLE jobs ADD COLUMN logs_deleted_at INTEGER;
UPDATE jobs SET artifacts_indexed_at = coalesce(completed_at, created_at)
  WHERE status IN ('completed', 'failed', 'timed_out', 'cancelled', 'cleaning', 'cleaned');
UPDATE jobs SET artifacts_deleted_at = coalesce(completed_at, created_at), logs_deleted_at = coalesce(completed_at, created_at)
  WHERE status = 'cleaned';
CREATE INDEX jobs_by_completed ON jobs (completed_at) WHERE completed_at IS NOT NULL;

-- migration 4: the instance id that labels this database's containers
CREATE TABLE meta (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
INSERT INTO meta (key, value) VALUES ('instance_id', lower(hex(randomblob(8))));

-- migration 5: how a job ended, recorded before its container is removed
-- A job is reported terminal only once its container is gone (so its resources are free when a
-- client sees it finish). In between, the exit is kept here, so a crash after removal still
-- finishes the job with its real exit code rather than as lost.
ALTER TABLE jobs ADD COLUMN pending_finish TEXT;

-- migration 6: workers that trade a JWT-SVID for GITHUB_TOKEN
-- POST /jobs `need_github_token: true` (workers): the container gets FLASHPODS_NEED_GITHUB_TOKEN=true,
-- and its exit codes 90/91 mean spire_attestation_timeout / token_exchange_failed.
ALTER TABLE jobs ADD COLUMN need_github_token INTEGER NOT NULL DEFAULT 0 CHECK (need_github_token IN (0, 1));

-- migration 7: one owner for the job lifecycle (actors/scheduler/lifecycle.ts)
-- The code of a job's error (contract/jobs.ts JobError), beside the text the API shows in `error`;
-- NULL for jobs that ended before this migration.
ALTER TABLE jobs ADD COLUMN error_code TEXT;
-- The terminal status a job reached, kept when cleanup moves it on to `cleaning` and `cleaned`,
-- so counts of failed jobs stay true for cleaned ones. Rows cleaned before this migration get it
-- from what they kept: the kill reason, else the exit code.
ALTER TABLE jobs ADD COLUMN outcome TEXT CHECK (outcome IN ('completed', 'failed', 'timed_out', 'cancelled'));
-- JSON of a JobError Flashpods decided while the container still ran (the disk watch's kill): the
-- job fails with it whatever its exit code.
ALTER TABLE jobs ADD COLUMN failure TEXT;
UPDATE jobs SET outcome = status WHERE status IN ('completed', 'failed', 'timed_out', 'cancelled');
UPDATE jobs SET outcome = CASE
    WHEN kill_reason = 'cancel' THEN 'cancelled'
    WHEN kill_reason = 'timeout' THEN 'timed_out'
    WHEN exit_code = 0 THEN 'completed'
    ELSE 'failed' END
  WHERE status IN ('cleaning', 'cleaned');

-- migration 8: a FIFO job queue (issue 15)
-- A job that does not fit waits as `queued` and may end `expired`. SQLite cannot change a CHECK
-- constraint in place, so jobs is rebuilt under its own name (a rename would carry the foreign
-- keys of uploads, artifacts and idempotency_keys along): its rows wait in a copy, and the
-- references into it are checked at commit, when every id is back.
PRAGMA defer_foreign_keys = ON;
CREATE TEMP TABLE jobs_before_queue AS SELECT * FROM jobs;
DROP TABLE jobs;
CREATE TABLE jobs (
  id              TEXT PRIMARY KEY CHECK (id LIKE 'job\_%' ESCAPE '\'),
  user_id         TEXT NOT NULL DEFAULT 'default',
  job_type        TEXT NOT NULL CHECK (job_type IN ('worker', 'agent')),
  status          TEXT NOT NULL CHECK (status IN ('queued', 'pending', 'starting', 'running', 'completed', 'failed',
                                                  'timed_out', 'cancelled', 'expired', 'cleaning', 'cleaned')),
  command         TEXT,
  task            TEXT,
  context         TEXT,
  git_branch      TEXT,
  files_id        TEXT,
  image           TEXT NOT NULL,
  cpus            INTEGER NOT NULL CHECK (cpus >= 1),
  memory_gb       INTEGER NOT NULL CHECK (memory_gb >= 1),
  timeout_minutes INTEGER NOT NULL CHECK (timeout_minutes BETWEEN 1 AND 120),
  container_id    TEXT,
  exit_code       INTEGER,
  error           TEXT,
  created_at      INTEGER NOT NULL,
  started_at      INTEGER,
  completed_at    INTEGER,
  log_truncated   INTEGER NOT NULL DEFAULT 0 CHECK (log_truncated IN (0, 1)),
  kill_requested_at INTEGER,
  kill_reason     TEXT CHECK (kill_reason IN ('cancel', 'timeout')),
  resources_released_at INTEGER,
  artifacts_indexed_at INTEGER,
  artifacts_deleted_at INTEGER,
  logs_deleted_at INTEGER,
  pending_finish  TEXT,
  need_github_token INTEGER NOT NULL DEFAULT 0 CHECK (need_github_token IN (0, 1)),
  error_code      TEXT,
  outcome         TEXT CHECK (outcome IN ('completed', 'failed', 'timed_out', 'cancelled', 'expired')),
  failure         TEXT,
  -- The queue: FIFO order is queue_seq, one more than the largest ever given, so it survives
  -- restarts and never ties (two jobs can share a queued_at millisecond).
  queued_at       INTEGER,
  queue_seq       INTEGER,
  queue_timeout_minutes INTEGER CHECK (queue_timeout_minutes BETWEEN 1 AND 1440),
  -- When it was given resources: created_at for a job never queued, else when it left the queue
  -- (wait = admitted_at - queued_at). Admission's startup allowance counts from here; a row
  -- written without it (older code, tests) counts from created_at.
  admitted_at     INTEGER,
  backfilled      INTEGER NOT NULL DEFAULT 0 CHECK (backfilled IN (0, 1)),
  CHECK (job_type <> 'worker' OR command IS NOT NULL),
  CHECK (job_type <> 'agent' OR (task IS NOT NULL AND git_branch IS NOT NULL)),
  CHECK (status <> 'queued' OR (queued_at IS NOT NULL AND queue_seq IS NOT NULL AND queue_timeout_minutes IS NOT NULL
                                AND admitted_at IS NULL AND resources_released_at IS NULL))
);
INSERT INTO jobs (id, user_id, job_type, status, command, task, context, git_branch, files_id, image, cpus, memory_gb,
    timeout_minutes, container_id, exit_code, error, created_at, started_at, completed_at, log_truncated, kill_requested_at,
    kill_reason, resources_released_at, artifacts_indexed_at, artifacts_deleted_at, logs_deleted_at, pending_finish,
    need_github_token, error_code, outcome, failure, admitted_at)
  SELECT id, user_id, job_type, status, command, task, context, git_branch, files_id, image, cpus, memory_gb,
    timeout_minutes, container_id, exit_code, error, created_at, started_at, completed_at, log_truncated, kill_requested_at,
    kill_reason, resources_released_at, artifacts_indexed_at, artifacts_deleted_at, logs_deleted_at, pending_finish,
    need_github_token, error_code, outcome, failure, created_at
  FROM jobs_before_queue;
DROP TABLE jobs_before_queue;
CREATE INDEX jobs_by_status ON jobs (status);
CREATE INDEX jobs_by_user_created ON jobs (user_id, created_at DESC);
CREATE INDEX jobs_holding_resources ON jobs (resources_released_at) WHERE resources_released_at IS NULL;
CREATE INDEX jobs_by_completed ON jobs (completed_at) WHERE completed_at IS NOT NULL;
CREATE UNIQUE INDEX jobs_by_queue_seq ON jobs (queue_seq) WHERE queue_seq IS NOT NULL;
