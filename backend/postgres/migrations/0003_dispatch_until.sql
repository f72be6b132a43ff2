-- 0003_dispatch_until: an external-dispatch reservation becomes data.
--
-- A record reserved for an external dispatch used to be recognised by the
-- text of its execution_ref (a marker "__queues_dispatching__:<unix
-- deadline>:<uuid>"); it is now the record's dispatch_until, the
-- reservation's deadline, set by ReserveDispatch and cleared when the
-- reservation is finalized or released. The marker stays in execution_ref
-- as the token that fences the hand-off, but the store no longer reads it.
--
-- Existing reserved records (non-terminal, holding a marker) get the
-- deadline their marker carries. A marker whose deadline cannot be read
-- (earlier builds released such a reservation at the next reconcile) gets
-- the Unix epoch: still reserved, already past its deadline.

ALTER TABLE {{table "queue_task"}} ADD COLUMN dispatch_until timestamptz;

UPDATE {{table "queue_task"}} SET dispatch_until = CASE
        WHEN execution_ref ~ '^__queues_dispatching__:[0-9]{1,11}:'
        THEN to_timestamp(split_part(execution_ref, ':', 2)::bigint)
        ELSE to_timestamp(0) END
WHERE starts_with(execution_ref, '__queues_dispatching__:')
  AND status IN ('pending', 'scheduled', 'running');
