-- Sync/Async API call-side settings DataFlux Func keeps (docs/INTERNALS.md,
-- docs/dff-compat.md "Sync/Async API calls") and API Auth configurations.
-- Idempotent: every statement may run twice.

ALTER TABLE sync_api ADD COLUMN IF NOT EXISTS api_auth_id VARCHAR(64) NULL;
ALTER TABLE sync_api ADD COLUMN IF NOT EXISTS expire_time DATETIME(3) NULL;
ALTER TABLE sync_api ADD COLUMN IF NOT EXISTS throttling_json TEXT NULL;
ALTER TABLE sync_api ADD COLUMN IF NOT EXISTS tags_json TEXT NULL;
ALTER TABLE sync_api ADD COLUMN IF NOT EXISTS note TEXT NULL;
ALTER TABLE sync_api ADD COLUMN IF NOT EXISTS show_in_doc TINYINT(1) NOT NULL DEFAULT 0;

ALTER TABLE async_api ADD COLUMN IF NOT EXISTS api_auth_id VARCHAR(64) NULL;
ALTER TABLE async_api ADD COLUMN IF NOT EXISTS expire_time DATETIME(3) NULL;
ALTER TABLE async_api ADD COLUMN IF NOT EXISTS throttling_json TEXT NULL;
ALTER TABLE async_api ADD COLUMN IF NOT EXISTS tags_json TEXT NULL;
ALTER TABLE async_api ADD COLUMN IF NOT EXISTS note TEXT NULL;
ALTER TABLE async_api ADD COLUMN IF NOT EXISTS show_in_doc TINYINT(1) NOT NULL DEFAULT 0;

-- type: fixedField | httpBasic | httpDigest | func (DFF's names). config_json:
--   fixedField {"fields":[{"location":"header"|"query"|"body","name","value"}]}
--   httpBasic / httpDigest {"users":[{"username","password"}]} (password plain or sealed)
--   func {"funcId":"<set>__<script>.<func>"}
CREATE TABLE IF NOT EXISTS api_auth (
  id          VARCHAR(64)  NOT NULL PRIMARY KEY,
  name        VARCHAR(256) NOT NULL DEFAULT '',
  type        VARCHAR(32)  NOT NULL,
  config_json TEXT         NOT NULL,
  note        TEXT         NULL,
  created_at  DATETIME(3)  NULL DEFAULT CURRENT_TIMESTAMP(3),
  updated_at  DATETIME(3)  NULL DEFAULT CURRENT_TIMESTAMP(3)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
