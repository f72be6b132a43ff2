-- 0004_workers: the registry of live workers (driver.WorkerRegistry).
--
-- One row per worker, written by the worker itself when it starts and on
-- every heartbeat tick, deleted when it stops. A row whose expires_at has
-- passed belongs to a worker that stopped refreshing it (killed, or cut off
-- from the database): it is no longer listed, and ListWorkers deletes it.
-- seen_at and expires_at come from the database clock, so workers whose
-- clocks disagree still agree on which entries are live.
--
--   id          COLLATE "C": listed in byte order, the order every store
--               lists in, straight from the primary-key index
--   queues      the worker's queue filter ('{}' = every queue)
--   started_at  when the worker started, as the worker saw it
--
-- The task records are not touched.

CREATE TABLE {{table "queue_worker"}} (
    id                text        COLLATE "C" NOT NULL PRIMARY KEY,
    host              text        NOT NULL,
    pid               bigint      NOT NULL,
    queues            text[]      NOT NULL DEFAULT '{}',
    execution_backend text        NOT NULL,
    concurrency       integer     NOT NULL,
    running           integer     NOT NULL,
    started_at        timestamptz NOT NULL,
    version           text        NOT NULL,
    seen_at           timestamptz NOT NULL,
    expires_at        timestamptz NOT NULL
);

CREATE INDEX {{index "queue_worker_expiry"}} ON {{table "queue_worker"}} (expires_at);
