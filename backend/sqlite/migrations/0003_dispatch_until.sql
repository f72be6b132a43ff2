-- 0003_dispatch_until: a dispatch reservation becomes record data.
--
--   dispatch_until  the deadline (Unix microseconds) of an external dispatch
--                   in progress; NULL when the record is not reserved. A
--                   record holding one is neither claimed, expired, listed
--                   as due nor listed as stale. execution_ref still holds the
--                   reservation marker, an opaque fencing token.
--
-- The previous code recognised a reservation by its marker text in
-- execution_ref, "__queues_dispatching__:<unix-seconds>:<uuid>". Every record
-- holding such a marker gets its deadline (seconds → microseconds); a marker
-- whose deadline does not parse as 1 to 12 digits gets 0 (the Unix epoch): it
-- stays reserved and is already due for release. substr, not LIKE: LIKE
-- would treat the underscores as wildcards and ignore case.

ALTER TABLE queue_task ADD COLUMN dispatch_until INTEGER;

-- The deadline digits: between the prefix (23 characters) and the next ':'
-- (without a ':', substr's negative length yields the prefix's last ':',
-- which is not a digit).
UPDATE queue_task SET dispatch_until = CASE
        WHEN substr(execution_ref, 24, instr(substr(execution_ref, 24), ':') - 1) <> ''
         AND substr(execution_ref, 24, instr(substr(execution_ref, 24), ':') - 1) NOT GLOB '*[^0-9]*'
         AND length(substr(execution_ref, 24, instr(substr(execution_ref, 24), ':') - 1)) <= 12
        THEN CAST(substr(execution_ref, 24, instr(substr(execution_ref, 24), ':') - 1) AS INTEGER) * 1000000
        ELSE 0 END
WHERE execution_ref IS NOT NULL AND substr(execution_ref, 1, 23) = '__queues_dispatching__:';
