-- DataFlux Func's task-record fields of a task's scheduling (issue 9): the
-- cron expression a cron run was fired by (the effective one: a func's
-- fixed_cron_expr wins over the job's own), the delay of a delayed call or
-- delayed cron run, the timeout it ran under and its expiry, all in seconds
-- as DFF keeps them (cronExpr, delay, timeout, expires). expires_s is the
-- time from acceptance within which the task had to start; NULL = never.
-- Written by the worker (worker_record.c); records written before this
-- migration, and the beat's skip/missed records, leave them NULL.
ALTER TABLE task_record
  ADD COLUMN IF NOT EXISTS cron_expr VARCHAR(128) NULL,
  ADD COLUMN IF NOT EXISTS delay_s   INT          NULL,
  ADD COLUMN IF NOT EXISTS timeout_s INT          NULL,
  ADD COLUMN IF NOT EXISTS expires_s INT          NULL;
