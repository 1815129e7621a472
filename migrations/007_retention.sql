-- Task-record retention (src/worker/worker_purge.c): the newest N records of
-- each origin are found through this index, so trimming a busy Sync API reads
-- only the rows it deletes.
CREATE INDEX IF NOT EXISTS purge_origin ON task_record (origin, origin_id, func_id, seq);
