-- Worker durability (issue 10, defect 1): a task record is written at least
-- once (the keeper replays a batch whose commit it cannot confirm, and
-- adopts the batch of a keeper that died mid-flush), so the table keeps one
-- row per task id and status; the keeper's INSERT ... ON DUPLICATE KEY
-- UPDATE turns a replay into a no-op. IGNORE drops duplicates an older
-- keeper may already have written.
ALTER IGNORE TABLE task_record ADD UNIQUE KEY IF NOT EXISTS id_status (id, status);
