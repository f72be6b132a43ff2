-- 0002_task_policy: the task policy becomes a typed record field and the
-- shutdown-interruption count an integer column; both used to live in the
-- record's metadata.
--
--   policy         one JSON object, written by the engine at enqueue and
--                  never interpreted by the store ("{}" = no setting).
--   interruptions  shutdown interruptions: generations that ended without
--                  spending retry budget.
--
-- Existing records keep their policy: the legacy metadata keys (timeout,
-- retry_backoff, requeue_on_stale, requeue_on_shutdown, log_level,
-- log_success, description, _correlation_id, unique_by, unique_version,
-- unique_until) are moved into the policy object and metadata.interruptions
-- into the counter, with the rules of queuestype.PolicyFromMetadata: a key
-- of the wrong JSON type (or a non-positive duration, a multiplier below 1)
-- is dropped, requeue_on_stale=false becomes no_stale_requeue=true, and
-- numbers are copied as their original JSON text so that they decode to
-- exactly the same value. json_patch('{}', …) leaves out the null members
-- (the settings a record does not have). Then every legacy key is removed
-- from metadata. Records without any legacy key are not rewritten.

ALTER TABLE queue_task ADD COLUMN policy TEXT NOT NULL DEFAULT '{}';
ALTER TABLE queue_task ADD COLUMN interruptions INTEGER NOT NULL DEFAULT 0;

UPDATE queue_task SET
    policy = json_patch('{}', json_object(
        'timeout', CASE WHEN json_type(metadata, '$.timeout') IN ('integer', 'real') AND json_extract(metadata, '$.timeout') > 0
                        THEN json(metadata -> '$.timeout') END,
        'retry_backoff', CASE WHEN json_type(metadata, '$.retry_backoff') = 'object' THEN json_object(
            'initial_delay', CASE WHEN json_type(metadata, '$.retry_backoff.initial_delay') IN ('integer', 'real')
                                   AND json_extract(metadata, '$.retry_backoff.initial_delay') > 0
                                  THEN json(metadata -> '$.retry_backoff.initial_delay') END,
            'multiplier', CASE WHEN json_type(metadata, '$.retry_backoff.multiplier') IN ('integer', 'real')
                                AND json_extract(metadata, '$.retry_backoff.multiplier') >= 1
                               THEN json(metadata -> '$.retry_backoff.multiplier') END,
            'max_delay', CASE WHEN json_type(metadata, '$.retry_backoff.max_delay') IN ('integer', 'real')
                               AND json_extract(metadata, '$.retry_backoff.max_delay') > 0
                              THEN json(metadata -> '$.retry_backoff.max_delay') END) END,
        'no_stale_requeue', CASE WHEN json_type(metadata, '$.requeue_on_stale') = 'false' THEN json('true') END,
        'requeue_on_shutdown', CASE json_type(metadata, '$.requeue_on_shutdown')
                                   WHEN 'true' THEN json('true') WHEN 'false' THEN json('false') END,
        'log_level', CASE WHEN json_type(metadata, '$.log_level') = 'text' THEN metadata ->> '$.log_level' END,
        'log_success', CASE WHEN json_type(metadata, '$.log_success') = 'true' THEN json('true') END,
        'description', CASE WHEN json_type(metadata, '$.description') = 'text' THEN metadata ->> '$.description' END,
        'correlation_id', CASE WHEN json_type(metadata, '$._correlation_id') = 'text' THEN metadata ->> '$._correlation_id' END,
        'unique_by', CASE WHEN json_type(metadata, '$.unique_by') = 'text' THEN metadata ->> '$.unique_by' END,
        'unique_version', CASE WHEN json_type(metadata, '$.unique_version') = 'text' THEN metadata ->> '$.unique_version' END,
        'unique_until', CASE WHEN json_type(metadata, '$.unique_until') = 'text' THEN metadata ->> '$.unique_until' END)),
    interruptions = CASE WHEN json_type(metadata, '$.interruptions') IN ('integer', 'real')
                         THEN CAST(json_extract(metadata, '$.interruptions') AS INTEGER) ELSE 0 END,
    metadata = json_remove(metadata, '$.timeout', '$.retry_backoff', '$.requeue_on_stale', '$.requeue_on_shutdown',
        '$.log_level', '$.log_success', '$.description', '$._correlation_id', '$.unique_by', '$.unique_version',
        '$.unique_until', '$.interruptions')
WHERE json_type(metadata, '$.timeout') IS NOT NULL OR json_type(metadata, '$.retry_backoff') IS NOT NULL
   OR json_type(metadata, '$.requeue_on_stale') IS NOT NULL OR json_type(metadata, '$.requeue_on_shutdown') IS NOT NULL
   OR json_type(metadata, '$.log_level') IS NOT NULL OR json_type(metadata, '$.log_success') IS NOT NULL
   OR json_type(metadata, '$.description') IS NOT NULL OR json_type(metadata, '$._correlation_id') IS NOT NULL
   OR json_type(metadata, '$.unique_by') IS NOT NULL OR json_type(metadata, '$.unique_version') IS NOT NULL
   OR json_type(metadata, '$.unique_until') IS NOT NULL OR json_type(metadata, '$.interruptions') IS NOT NULL;

-- Stale recovery lists running records null heartbeats first, then oldest
-- heartbeat first, then by id. This index holds exactly that order (a null
-- heartbeat counts as the smallest integer, below any real time), so the
-- listing is one range scan that stops at the cut-off; it replaces the index
-- on coalesce(heartbeat_at, created_at). The CAST gives the key INTEGER
-- affinity: without it SQLite does not use the index for a range bounded by
-- CAST(? AS INTEGER), the form the statements use to stay compiled once.
DROP INDEX queue_task_heartbeat;
CREATE INDEX queue_task_stale ON queue_task (CAST(coalesce(heartbeat_at, -9223372036854775808) AS INTEGER), id)
    WHERE status = 'running';
