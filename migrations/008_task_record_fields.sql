-- DataFlux Func's task-record fields (issue 9 section 6): what a func was
-- called with, what it returned, the call chain of DFF.FUNC subtasks, the
-- root task of that chain and the trigger time. Written by the worker
-- (worker_record.c); JSON texts are capped there (a huge value is cut with a
-- marker, never a failed batch). root_task_id is 'ROOT' for a task nobody
-- called (DFF's value); a subtask names the first task of its chain.
ALTER TABLE task_record
  ADD COLUMN IF NOT EXISTS kwargs_json       MEDIUMTEXT  NULL,
  ADD COLUMN IF NOT EXISTS return_value_json MEDIUMTEXT  NULL,
  ADD COLUMN IF NOT EXISTS call_chain_json   TEXT        NULL,
  ADD COLUMN IF NOT EXISTS root_task_id      VARCHAR(64) NULL,
  ADD COLUMN IF NOT EXISTS trigger_at        DATETIME(3) NULL;
-- DFF's task list of a chain: id = X OR root_task_id = X.
CREATE INDEX IF NOT EXISTS root_task ON task_record (root_task_id);
