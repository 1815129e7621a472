-- The accept journal clustered by time (issue 14): the primary key was the
-- task id, which is random, so every accepted task's row (the whole task
-- JSON) went into the middle of the table and every prune took rows out of
-- the middle. Rows now go in (accepted_ms, id) order, appended at the end
-- and pruned from the front; the id stays unique (INSERT IGNORE of a replay
-- adds nothing) and indexed (the reconciler's statements by id). On this
-- project's 2-CPU machine a batch of 8 rows took 670-750 us of MariaDB CPU
-- this way against 940-1,260 us with the random key (bench/RESULTS.md).
-- Safe to run again: the end state is the same.
ALTER TABLE task_accept
  ADD UNIQUE KEY IF NOT EXISTS id (id),
  DROP PRIMARY KEY,
  ADD PRIMARY KEY (accepted_ms, id),
  DROP INDEX IF EXISTS accepted;
