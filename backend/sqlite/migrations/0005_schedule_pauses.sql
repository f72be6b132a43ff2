-- 0005_schedule_pauses: the schedules paused fleet-wide
-- (driver.SchedulePauser).
--
-- One row per paused schedule, by the schedule's name ("<task>" or
-- "<task>:<schedule name>"); resuming deletes the row. since is when the
-- pause was first recorded, by the store's clock, in Unix microseconds like
-- every time in queue_task; pausing a paused schedule keeps it. The name's
-- BINARY collation lists the rows in byte order. The task records are not
-- touched.

CREATE TABLE queue_schedule_pause (
    name  TEXT    NOT NULL PRIMARY KEY,
    since INTEGER NOT NULL
) WITHOUT ROWID;
