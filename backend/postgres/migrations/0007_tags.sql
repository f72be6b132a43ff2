-- 0007_tags: record tags and their index.
--
-- tags holds the record's tags, sorted without duplicates; records written
-- before this migration have none. Adding a column with a constant default
-- is metadata-only in PostgreSQL 11 and later: no table rewrite. The GIN
-- index serves ListTasks by tag (tags @> ARRAY[tag]); it lives and dies
-- with the rows, so every deletion path keeps it consistent.

ALTER TABLE {{table "queue_task"}} ADD COLUMN tags text[] NOT NULL DEFAULT '{}';
CREATE INDEX {{index "queue_task_tags"}} ON {{table "queue_task"}} USING gin (tags);
