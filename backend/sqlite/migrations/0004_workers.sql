-- 0004_workers: the registry of live workers (driver.WorkerRegistry).
--
-- One row per worker, written by the worker itself when it starts and on
-- every heartbeat tick, deleted when it stops. A row whose expires_at has
-- passed belongs to a worker that stopped refreshing it (killed, or cut off
-- from the store): it is no longer listed, and ListWorkers deletes it.
--
--   queues      the worker's queue filter as a JSON array of strings
--               ('[]' = every queue)
--   started_at  when the worker started, as the worker saw it
--   seen_at     the store's clock at the last registration
--   expires_at  seen_at + the ttl the worker asked for
--
-- Times are Unix microseconds, like every time in queue_task. The task
-- records are not touched.

CREATE TABLE queue_worker (
    id                TEXT    NOT NULL PRIMARY KEY,
    host              TEXT    NOT NULL,
    pid               INTEGER NOT NULL,
    queues            TEXT    NOT NULL DEFAULT '[]',
    execution_backend TEXT    NOT NULL,
    concurrency       INTEGER NOT NULL,
    running           INTEGER NOT NULL,
    started_at        INTEGER NOT NULL,
    version           TEXT    NOT NULL,
    seen_at           INTEGER NOT NULL,
    expires_at        INTEGER NOT NULL
) WITHOUT ROWID;

CREATE INDEX queue_worker_expiry ON queue_worker (expires_at);
