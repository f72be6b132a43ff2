-- 0006_snooze_errors: handler snoozes and the error history.
--
-- snooze_count counts the generations a handler ended with a snooze, which
-- spend no retry budget (the engine reads retry_count - interruptions -
-- snooze_count as the attempts consumed). errors is the error history, a
-- JSON array of {attempt, at, error, trace, worker}, oldest first, bounded
-- by the engine; NULL (every record written before this migration) reads
-- as no history. Only Settle writes either column.

ALTER TABLE queue_task ADD COLUMN snooze_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE queue_task ADD COLUMN errors TEXT;
