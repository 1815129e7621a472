-- Management API in DataFlux Func's shapes: users, access keys that can sign
-- (X-Dff-Ak-*), and the descriptive columns DFF's resources carry. The
-- env_variable and api_auth/sync_api/async_api lines repeat 002/003 (the
-- runtime and calls helpers own them) so this file stands on its own; every
-- statement is idempotent.

CREATE TABLE IF NOT EXISTS user (
  id            VARCHAR(64)  NOT NULL PRIMARY KEY,     -- "u-..."
  username      VARCHAR(64)  NOT NULL,
  password_hash VARCHAR(255) NOT NULL,                 -- "pbkdf2-sha256$<iter>$<salt>$<hash>"
  name          VARCHAR(256) NOT NULL DEFAULT '',
  mobile        VARCHAR(64)  NOT NULL DEFAULT '',
  email         VARCHAR(256) NOT NULL DEFAULT '',
  roles_json    TEXT         NULL,                     -- DFF's roles, e.g. ["sa"]
  is_disabled   TINYINT(1)   NOT NULL DEFAULT 0,
  created_at    DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  updated_at    DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  UNIQUE KEY (username)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- The secret, sealed (secret.h), so HMAC signatures can be verified; keys
-- made before this migration have none and work as Bearer keys only.
ALTER TABLE access_key ADD COLUMN IF NOT EXISTS secret_sealed TEXT NULL;
-- admin | call (may call funcs and APIs only)
ALTER TABLE access_key ADD COLUMN IF NOT EXISTS scope VARCHAR(16) NOT NULL DEFAULT 'admin';

ALTER TABLE script_set ADD COLUMN IF NOT EXISTS description TEXT NULL;
ALTER TABLE script ADD COLUMN IF NOT EXISTS description TEXT NULL;

ALTER TABLE cron_job ADD COLUMN IF NOT EXISTS tags_json TEXT NULL;
ALTER TABLE cron_job ADD COLUMN IF NOT EXISTS note TEXT NULL;

-- same as 002 (runtime helper)
ALTER TABLE env_variable ADD COLUMN IF NOT EXISTS value_type VARCHAR(32) NOT NULL DEFAULT 'string';
ALTER TABLE env_variable ADD COLUMN IF NOT EXISTS title VARCHAR(256) NOT NULL DEFAULT '';
ALTER TABLE env_variable ADD COLUMN IF NOT EXISTS description TEXT NULL;

-- same as 003 (calls helper)
CREATE TABLE IF NOT EXISTS api_auth (
  id          VARCHAR(64)  NOT NULL PRIMARY KEY,
  name        VARCHAR(256) NOT NULL DEFAULT '',
  type        VARCHAR(32)  NOT NULL,
  config_json TEXT         NOT NULL,
  note        TEXT         NULL,
  created_at  DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  updated_at  DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
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
