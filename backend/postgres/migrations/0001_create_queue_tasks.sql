-- 0001_create_queue_tasks: the task table and its indexes, identity
-- reservations, maintenance locks and the event-history table. The
-- migration ledger is created by the migrator itself.
--
-- {{table "x"}} renders a schema-qualified, quoted table name and
-- {{index "x"}} an unqualified, quoted index name (indexes live in their
-- table's schema); both carry the configured table prefix and are shortened
-- with an 8-hex SHA-1 suffix past PostgreSQL's 63-byte limit.

CREATE TABLE {{table "queue_task"}} (
    id                uuid        NOT NULL PRIMARY KEY,
    task_name         text        NOT NULL,
    args              jsonb,
    queue             text        NOT NULL,
    execution_backend text        NOT NULL,
    execution_profile text,
    execution_ref     text,
    worker_id         text,
    status            text        NOT NULL CHECK (status IN ('pending', 'scheduled', 'running', 'completed', 'failed', 'cancelled', 'expired')),
    priority          integer     NOT NULL DEFAULT 0,
    max_retries       integer     NOT NULL DEFAULT 0,
    retry_count       integer     NOT NULL DEFAULT 0,
    scheduled_at      timestamptz,
    expires_at        timestamptz,
    created_at        timestamptz NOT NULL,
    queued_at         timestamptz NOT NULL,
    started_at        timestamptz,
    completed_at      timestamptz,
    heartbeat_at      timestamptz,
    result            jsonb,
    error             text,
    task_key          text,
    metadata          jsonb       NOT NULL DEFAULT '{}'
);

-- task_key is unique among the records holding one. A partial index keeps
-- the (usual) unkeyed record versions out of it entirely.
CREATE UNIQUE INDEX {{index "queue_task_key"}} ON {{table "queue_task"}} (task_key) WHERE task_key IS NOT NULL;

-- Claim order within one execution backend and queue (queue-filtered claims,
-- one LATERAL probe per queue).
CREATE INDEX {{index "queue_task_claim"}} ON {{table "queue_task"}} (execution_backend, queue, priority DESC, queued_at, created_at, id)
    WHERE status IN ('pending', 'scheduled');

-- Claim order within one execution backend across every queue (a worker
-- without a queue filter): an ordered index scan, never a sort.
CREATE INDEX {{index "queue_task_claim_all"}} ON {{table "queue_task"}} (execution_backend, priority DESC, queued_at, created_at, id)
    WHERE status IN ('pending', 'scheduled');

-- Stale recovery: running records, oldest heartbeat first (null = created_at).
-- Also counts running records for statistics.
CREATE INDEX {{index "queue_task_heartbeat"}} ON {{table "queue_task"}} ((coalesce(heartbeat_at, created_at)), id)
    WHERE status = 'running';

-- Expiry sweep and the expired-at-claim fence.
CREATE INDEX {{index "queue_task_expiry"}} ON {{table "queue_task"}} (expires_at, created_at)
    WHERE status IN ('pending', 'scheduled') AND execution_ref IS NULL AND expires_at IS NOT NULL;

-- Terminal cleanup, oldest completed_at first.
CREATE INDEX {{index "queue_task_terminal"}} ON {{table "queue_task"}} (completed_at, id)
    WHERE status IN ('completed', 'failed', 'cancelled', 'expired');

-- Completed records of a task, newest first.
CREATE INDEX {{index "queue_task_completed_by_task"}} ON {{table "queue_task"}} (task_name, completed_at DESC)
    WHERE status = 'completed';

-- Non-terminal records holding an execution ref.
CREATE INDEX {{index "queue_task_external"}} ON {{table "queue_task"}} ((coalesce(started_at, created_at)), id)
    WHERE execution_ref IS NOT NULL AND status IN ('pending', 'scheduled', 'running');

-- Earliest future due time (DueTimer).
CREATE INDEX {{index "queue_task_due"}} ON {{table "queue_task"}} (scheduled_at)
    WHERE status IN ('pending', 'scheduled') AND scheduled_at IS NOT NULL;

-- Deliberately no (created_at, id) index for the inspector's newest-first
-- listing: claim and settle writes are not HOT updates (status is in the
-- partial-index predicates), so every full index takes an entry per record
-- version; this one cost about 20% of the database CPU per job in the
-- end-to-end benchmark. ListTasks sorts the filtered rows (top-N) instead.

CREATE TABLE {{table "queue_task_reservation"}} (
    identity_key text        NOT NULL PRIMARY KEY,
    task_id      uuid        NOT NULL,
    task_name    text        NOT NULL,
    created_at   timestamptz NOT NULL
);

CREATE TABLE {{table "queue_maintenance"}} (
    name       text        NOT NULL PRIMARY KEY,
    token      text        NOT NULL,
    expires_at timestamptz NOT NULL
);

-- Durable event history. Written by the event history of the
-- PostgreSQL backend; this migration only creates it.
CREATE TABLE {{table "queue_task_event_history"}} (
    event_id          text             NOT NULL PRIMARY KEY,
    event_type        text             NOT NULL,
    task_id           uuid,
    task_name         text,
    queue             text,
    worker_id         text,
    execution_backend text,
    execution_profile text,
    actor_type        text,
    actor_id          text,
    stage             text,
    level             text,
    message           text,
    detail            jsonb            NOT NULL DEFAULT '{}',
    progress_current  double precision,
    progress_total    double precision,
    progress_percent  double precision,
    duration_ms       double precision,
    sequence          bigint,
    occurred_at       timestamptz      NOT NULL,
    created_at        timestamptz      NOT NULL DEFAULT now(),
    scope             text,
    scope_key         text,
    actor             text,
    entity            text,
    extra             jsonb            NOT NULL DEFAULT '{}'
);

CREATE INDEX {{index "queue_task_event_history_task"}} ON {{table "queue_task_event_history"}} (task_id, sequence, occurred_at);
CREATE INDEX {{index "queue_task_event_history_stage"}} ON {{table "queue_task_event_history"}} (task_name, stage, occurred_at);
CREATE INDEX {{index "queue_task_event_history_actor"}} ON {{table "queue_task_event_history"}} (actor_id, occurred_at);
CREATE INDEX {{index "queue_task_event_history_occurred"}} ON {{table "queue_task_event_history"}} (occurred_at);
CREATE INDEX {{index "queue_task_event_history_scope"}} ON {{table "queue_task_event_history"}} (scope_key, occurred_at);
CREATE INDEX {{index "queue_task_event_history_entity"}} ON {{table "queue_task_event_history"}} (entity, occurred_at);
