-- 0002_task_policy: the typed task policy and the interruption counter.
--
-- A record's policy (attempt timeout, retry backoff, stale and shutdown
-- behaviour, success logging, description, correlation ID and how its key
-- was derived) used to live in metadata keys next to the caller's own; the
-- engine now writes it at enqueue as one JSON value the store keeps in the
-- policy column without reading it. The count of shutdown interruptions
-- moves from metadata.interruptions to the interruptions column.
--
-- Existing records of every status keep their policy: the keys an earlier
-- build wrote into metadata are read exactly as the engine read them (a key
-- of the wrong JSON type, or out of range, is ignored), written into policy
-- in its stored form, and removed from metadata. Numbers are copied as they
-- were stored, so the policy reads back to the same durations.

ALTER TABLE {{table "queue_task"}}
    ADD COLUMN policy        jsonb   NOT NULL DEFAULT '{}',
    ADD COLUMN interruptions integer NOT NULL DEFAULT 0;

WITH legacy AS (
    SELECT x.id, x.metadata AS m, x.metadata->'retry_backoff' AS rb
    FROM {{table "queue_task"}} x
    WHERE jsonb_typeof(x.metadata) = 'object'
      AND x.metadata ?| ARRAY['timeout', 'retry_backoff', 'requeue_on_stale', 'requeue_on_shutdown', 'log_level',
                              'log_success', 'description', '_correlation_id', 'unique_by', 'unique_version',
                              'unique_until', 'interruptions']
    FOR UPDATE
)
UPDATE {{table "queue_task"}} t SET
    policy = jsonb_strip_nulls(jsonb_build_object(
        'timeout', CASE WHEN jsonb_typeof(l.m->'timeout') = 'number' AND (l.m->>'timeout')::numeric > 0
            THEN l.m->'timeout' END,
        'retry_backoff', CASE WHEN jsonb_typeof(l.rb) = 'object' THEN nullif(jsonb_strip_nulls(jsonb_build_object(
            'initial_delay', CASE WHEN jsonb_typeof(l.rb->'initial_delay') = 'number' AND (l.rb->>'initial_delay')::numeric > 0
                THEN l.rb->'initial_delay' END,
            'multiplier', CASE WHEN jsonb_typeof(l.rb->'multiplier') = 'number' AND (l.rb->>'multiplier')::numeric >= 1
                THEN l.rb->'multiplier' END,
            'max_delay', CASE WHEN jsonb_typeof(l.rb->'max_delay') = 'number' AND (l.rb->>'max_delay')::numeric > 0
                THEN l.rb->'max_delay' END)), '{}'::jsonb) END,
        'no_stale_requeue', CASE WHEN l.m->'requeue_on_stale' = 'false'::jsonb THEN true END,
        'requeue_on_shutdown', CASE WHEN jsonb_typeof(l.m->'requeue_on_shutdown') = 'boolean' THEN l.m->'requeue_on_shutdown' END,
        'log_level', CASE WHEN jsonb_typeof(l.m->'log_level') = 'string' THEN nullif(l.m->'log_level', '""') END,
        'log_success', CASE WHEN l.m->'log_success' = 'true'::jsonb THEN true END,
        'description', CASE WHEN jsonb_typeof(l.m->'description') = 'string' THEN nullif(l.m->'description', '""') END,
        'correlation_id', CASE WHEN jsonb_typeof(l.m->'_correlation_id') = 'string' THEN nullif(l.m->'_correlation_id', '""') END,
        'unique_by', CASE WHEN jsonb_typeof(l.m->'unique_by') = 'string' THEN nullif(l.m->'unique_by', '""') END,
        'unique_version', CASE WHEN jsonb_typeof(l.m->'unique_version') = 'string' THEN nullif(l.m->'unique_version', '""') END,
        'unique_until', CASE WHEN jsonb_typeof(l.m->'unique_until') = 'string' THEN nullif(l.m->'unique_until', '""') END)),
    interruptions = CASE WHEN jsonb_typeof(l.m->'interruptions') = 'number'
            AND abs((l.m->>'interruptions')::numeric) < 2147483648
        THEN trunc((l.m->>'interruptions')::numeric)::integer ELSE 0 END,
    metadata = l.m - ARRAY['timeout', 'retry_backoff', 'requeue_on_stale', 'requeue_on_shutdown', 'log_level',
                           'log_success', 'description', '_correlation_id', 'unique_by', 'unique_version',
                           'unique_until', 'interruptions']
FROM legacy l
WHERE t.id = l.id;

-- Stale listing takes running records without a heartbeat first. Few
-- records match (a claim stamps the heartbeat; only a worker shutting down
-- clears it), so this index costs nothing on the claim and settle writes
-- and saves the listing from reading every running record to find them.
CREATE INDEX {{index "queue_task_stale_null"}} ON {{table "queue_task"}} (created_at, id)
    WHERE status = 'running' AND heartbeat_at IS NULL;
