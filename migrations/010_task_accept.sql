-- The accept journal (issue 10): every async task the server accepts, written
-- (group-committed) before its caller gets the id. Redis holds the queue; this
-- table is what survives a Redis restored from an older snapshot. The worker's
-- keeper (src/worker/worker_reconcile.c) deletes a row once task_record has
-- the task's outcome, and queues again (requeued = 1) a task found neither
-- there nor in Redis; one missing a second time is recorded lost.
CREATE TABLE IF NOT EXISTS task_accept (
  id          VARCHAR(64)  NOT NULL PRIMARY KEY,
  queue       VARCHAR(16)  NOT NULL,
  task        MEDIUMTEXT   NOT NULL,            -- the task JSON as enqueued
  accepted_ms BIGINT       NOT NULL,            -- unix ms
  requeued    INT          NOT NULL DEFAULT 0,
  KEY accepted (accepted_ms, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
