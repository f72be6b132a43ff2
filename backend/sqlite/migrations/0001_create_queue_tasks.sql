-- 0001_create_queue_tasks: the task table, its indexes, identity reservations,
-- maintenance locks and the migration ledger (with SQLite types:
-- UUIDs as canonical TEXT, times as INTEGER Unix microseconds, JSON as TEXT).
--
-- Partial-index predicates and CHECK constraints never use an IN list of more
-- than two constants: SQLite evaluates those with a temporary b-tree per
-- statement, which tripled the cost of every single-row settle write in
-- measurements. Terminal records are the ones with completed_at set (every
-- terminal write stamps it, every requeue clears it).

CREATE TABLE queue_task (
    id                TEXT    NOT NULL PRIMARY KEY,
    task_name         TEXT    NOT NULL,
    args              TEXT,
    queue             TEXT    NOT NULL,
    execution_backend TEXT    NOT NULL,
    execution_profile TEXT,
    execution_ref     TEXT,
    worker_id         TEXT,
    status            TEXT    NOT NULL CHECK (status = 'pending' OR status = 'scheduled' OR status = 'running'
                                              OR status = 'completed' OR status = 'failed' OR status = 'cancelled'
                                              OR status = 'expired'),
    priority          INTEGER NOT NULL DEFAULT 0,
    max_retries       INTEGER NOT NULL DEFAULT 0,
    retry_count       INTEGER NOT NULL DEFAULT 0,
    scheduled_at      INTEGER,
    expires_at        INTEGER,
    created_at        INTEGER NOT NULL,
    queued_at         INTEGER NOT NULL,
    started_at        INTEGER,
    completed_at      INTEGER,
    heartbeat_at      INTEGER,
    result            TEXT,
    error             TEXT,
    task_key          TEXT,
    metadata          TEXT    NOT NULL DEFAULT '{}'
);

-- task_key UNIQUE (NULL keys are not indexed at all).
CREATE UNIQUE INDEX queue_task_key ON queue_task (task_key) WHERE task_key IS NOT NULL;

-- Claim order within one execution backend and queue. A claim over several
-- (or all) queues takes one range of it per queue and merges them; the
-- queues are found by skipping through it (one seek per queue).
CREATE INDEX queue_task_claim ON queue_task (execution_backend, queue, priority DESC, queued_at, created_at, id)
    WHERE status IN ('pending', 'scheduled');

-- Stale recovery: running records by heartbeat (a null heartbeat counts as created_at).
CREATE INDEX queue_task_heartbeat ON queue_task (coalesce(heartbeat_at, created_at), id)
    WHERE status = 'running';

-- Expiry sweep.
CREATE INDEX queue_task_expiry ON queue_task (expires_at, created_at, id)
    WHERE status IN ('pending', 'scheduled') AND execution_ref IS NULL AND expires_at IS NOT NULL;

-- Terminal cleanup, oldest completed_at first.
CREATE INDEX queue_task_terminal ON queue_task (completed_at, id)
    WHERE completed_at IS NOT NULL;

-- Completed records of a task, read newest first by scanning backwards.
-- Ascending, so each completion appends at the end of its task's range
-- (SQLite's cheap right-edge insert) instead of splitting pages at the front.
CREATE INDEX queue_task_completed_by_task ON queue_task (task_name, completed_at, id)
    WHERE status = 'completed';

-- Non-terminal records holding an execution ref.
CREATE INDEX queue_task_external ON queue_task (coalesce(started_at, created_at), id)
    WHERE execution_ref IS NOT NULL AND completed_at IS NULL;

-- Earliest future due time (DueTimer). The predicate leaves out status on
-- purpose: claims and settles do not change scheduled_at, so they never
-- touch this index; NextDue filters the status.
CREATE INDEX queue_task_due ON queue_task (scheduled_at)
    WHERE scheduled_at IS NOT NULL;

-- Inspector listing, newest first.
CREATE INDEX queue_task_created ON queue_task (created_at, id);

CREATE TABLE queue_task_reservation (
    identity_key TEXT    NOT NULL PRIMARY KEY,
    task_id      TEXT    NOT NULL,
    task_name    TEXT    NOT NULL,
    created_at   INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE queue_maintenance (
    name       TEXT    NOT NULL PRIMARY KEY,
    token      TEXT    NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE queue_migration (
    version    TEXT    NOT NULL PRIMARY KEY,
    applied_at INTEGER NOT NULL
) WITHOUT ROWID;
