-- 0005_schedule_pauses: the schedules paused fleet-wide
-- (driver.SchedulePauser).
--
-- One row per paused schedule, by the schedule's name ("<task>" or
-- "<task>:<schedule name>"); resuming deletes the row. since is when the
-- pause was first recorded, by the database's clock; pausing a paused
-- schedule keeps it.
--
--   name  COLLATE "C": listed in byte order, the order every store lists
--         in, straight from the primary-key index
--
-- The task records are not touched.

CREATE TABLE {{table "queue_schedule_pause"}} (
    name  text        COLLATE "C" NOT NULL PRIMARY KEY,
    since timestamptz NOT NULL
);
