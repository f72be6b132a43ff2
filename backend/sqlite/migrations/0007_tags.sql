-- 0007_tags: record tags and their index.
--
-- tags is the record's tags as a JSON array of strings, sorted without
-- duplicates (NULL: no tags; every record written before this migration).
-- queue_task_tag indexes them for ListTasks by tag: one row per (tag,
-- record), keyed by (tag, task_id) so a tag's records are one range scan.
-- Triggers keep it in step with queue_task inside the statement that
-- inserts or deletes the record (enqueue, terminal cleanup and any later
-- deletion path alike), so the index can never outlive its record or miss
-- one; tags are fixed at enqueue, so no update needs it. Records without
-- tags skip both triggers.

ALTER TABLE queue_task ADD COLUMN tags TEXT;

CREATE TABLE queue_task_tag (
    tag     TEXT NOT NULL,
    task_id TEXT NOT NULL,
    PRIMARY KEY (tag, task_id)
) WITHOUT ROWID;

CREATE TRIGGER queue_task_tag_insert AFTER INSERT ON queue_task
WHEN new.tags IS NOT NULL
BEGIN
    INSERT OR IGNORE INTO queue_task_tag (tag, task_id)
    SELECT value, new.id FROM json_each(new.tags);
END;

CREATE TRIGGER queue_task_tag_delete AFTER DELETE ON queue_task
WHEN old.tags IS NOT NULL
BEGIN
    DELETE FROM queue_task_tag
    WHERE tag IN (SELECT value FROM json_each(old.tags)) AND task_id = old.id;
END;
