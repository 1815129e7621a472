-- DFF runtime: typed env variables, DFF.STORE, connectors (docs/dff-compat.md).

-- DFF's autoTypeCasting: string|password|integer|float|boolean|json|commaArray.
-- A password value is stored sealed (src/common/secret.h, "sealed:v1:...").
ALTER TABLE env_variable
  ADD COLUMN IF NOT EXISTS value_type  VARCHAR(32)  NOT NULL DEFAULT 'string',
  ADD COLUMN IF NOT EXISTS title       VARCHAR(256) NOT NULL DEFAULT '',
  ADD COLUMN IF NOT EXISTS description TEXT         NULL;

-- DFF.STORE: one row per (scope, key); id = "fnst-" + md5("<key>-<scope>")
-- as DFF computes it. expire_at: unix seconds, NULL = never.
CREATE TABLE IF NOT EXISTS func_store (
  id          VARCHAR(64)   NOT NULL PRIMARY KEY,
  scope       VARCHAR(256)  NOT NULL,
  store_key   VARCHAR(256)  NOT NULL,
  value_json  LONGTEXT      NOT NULL,
  expire_at   BIGINT        NULL,
  created_at  DATETIME(3)   NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  updated_at  DATETIME(3)   NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  KEY func_store_scope (scope(191)),
  KEY func_store_expire (expire_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Connectors (DFF.CONN): config_json is DFF's configJSON with its secret
-- fields (password, secretKey, guanceAPIKey) sealed.
CREATE TABLE IF NOT EXISTS connector (
  id          VARCHAR(64)   NOT NULL PRIMARY KEY,
  title       VARCHAR(256)  NOT NULL DEFAULT '',
  type        VARCHAR(32)   NOT NULL,
  config_json TEXT          NOT NULL,
  description TEXT          NULL,
  created_at  DATETIME(3)   NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  updated_at  DATETIME(3)   NOT NULL DEFAULT CURRENT_TIMESTAMP(3)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
