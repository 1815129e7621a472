-- Tandem schema, version 1. Applied by `tandemctl db migrate` (db_migrate()),
-- statements separated by ";" at end of line. All times are UTC DATETIME(3).

CREATE TABLE IF NOT EXISTS script_set (
  id          VARCHAR(64)  NOT NULL PRIMARY KEY,
  title       VARCHAR(256) NOT NULL DEFAULT '',
  created_at  DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  updated_at  DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS script (
  id              VARCHAR(128) NOT NULL PRIMARY KEY,   -- "<set>__<name>"
  script_set_id   VARCHAR(64)  NOT NULL,
  title           VARCHAR(256) NOT NULL DEFAULT '',
  code            MEDIUMTEXT   NULL,                   -- published code, NULL = never published
  code_draft      MEDIUMTEXT   NOT NULL,
  publish_version BIGINT       NOT NULL DEFAULT 0,
  published_at    DATETIME(3)  NULL,
  created_at      DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  updated_at      DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  KEY (script_set_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS func (
  id              VARCHAR(256) NOT NULL PRIMARY KEY,   -- "<set>__<script>.<func>"
  script_id       VARCHAR(128) NOT NULL,
  name            VARCHAR(128) NOT NULL,
  title           VARCHAR(256) NOT NULL DEFAULT '',
  timeout         INT          NOT NULL DEFAULT 30,
  cache_result    INT          NOT NULL DEFAULT 0,     -- seconds, 0 = off
  fixed_cron_expr VARCHAR(128) NULL,
  args_json       TEXT         NOT NULL,               -- ["x","y"] argument names
  extra_json      TEXT         NOT NULL,               -- other @DFF.API arguments
  created_at      DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  KEY (script_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS sync_api (
  id          VARCHAR(64)  NOT NULL PRIMARY KEY,       -- "sapi-..."
  func_id     VARCHAR(256) NOT NULL,
  title       VARCHAR(256) NOT NULL DEFAULT '',
  kwargs_json TEXT         NOT NULL,                   -- fixed kwargs merged under the caller's
  need_key    TINYINT(1)   NOT NULL DEFAULT 0,         -- 1 = caller needs an access key
  enabled     TINYINT(1)   NOT NULL DEFAULT 1,
  timeout     INT          NULL,                       -- NULL = func's / server default
  created_at  DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  KEY (func_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS async_api (
  id          VARCHAR(64)  NOT NULL PRIMARY KEY,       -- "aapi-..."
  func_id     VARCHAR(256) NOT NULL,
  title       VARCHAR(256) NOT NULL DEFAULT '',
  kwargs_json TEXT         NOT NULL,
  need_key    TINYINT(1)   NOT NULL DEFAULT 0,
  enabled     TINYINT(1)   NOT NULL DEFAULT 1,
  timeout     INT          NULL,
  created_at  DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  KEY (func_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS cron_job (
  id            VARCHAR(64)  NOT NULL PRIMARY KEY,     -- "cron-..."
  func_id       VARCHAR(256) NOT NULL,
  title         VARCHAR(256) NOT NULL DEFAULT '',
  expr          VARCHAR(128) NOT NULL,
  timezone      VARCHAR(64)  NOT NULL DEFAULT 'UTC',
  kwargs_json   TEXT         NOT NULL,
  enabled       TINYINT(1)   NOT NULL DEFAULT 1,       -- 0 = paused
  overlap       VARCHAR(8)   NOT NULL DEFAULT 'skip',  -- 'skip' | 'allow'
  misfire_grace INT          NULL,                     -- NULL = beat.misfire_grace
  expires_at    DATETIME(3)  NULL,
  fixed         TINYINT(1)   NOT NULL DEFAULT 0,       -- created from fixed_cron_expr
  created_at    DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  updated_at    DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  KEY (func_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS env_variable (
  id          VARCHAR(128) NOT NULL PRIMARY KEY,
  value       TEXT         NOT NULL,
  created_at  DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  updated_at  DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS access_key (
  id            VARCHAR(64)  NOT NULL PRIMARY KEY,     -- "ak-..."
  name          VARCHAR(128) NOT NULL DEFAULT '',
  secret_sha256 CHAR(64)     NOT NULL,
  created_at    DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  revoked_at    DATETIME(3)  NULL,
  UNIQUE KEY (secret_sha256)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS task_record (
  seq         BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
  id          VARCHAR(64)  NOT NULL,                   -- "task-..."
  func_id     VARCHAR(256) NOT NULL,
  origin      VARCHAR(16)  NOT NULL,                   -- func|sync-api|async-api|cron|subtask|system
  origin_id   VARCHAR(64)  NOT NULL DEFAULT '',
  queue       VARCHAR(16)  NOT NULL DEFAULT '',
  status      VARCHAR(16)  NOT NULL,                   -- success|failure|timeout|crashed|expired|skipped|missed
  reason      VARCHAR(64)  NOT NULL DEFAULT '',        -- EFuncFailed, EFuncTimeout, ...
  message     TEXT         NULL,
  traceback   TEXT         NULL,
  output      MEDIUMTEXT   NULL,                       -- print/logging, capped
  node        VARCHAR(64)  NOT NULL DEFAULT '',
  epoch       BIGINT       NOT NULL DEFAULT 0,
  nominal_at  DATETIME(3)  NULL,                       -- cron slot
  enqueued_at DATETIME(3)  NULL,
  started_at  DATETIME(3)  NULL,
  ended_at    DATETIME(3)  NOT NULL,
  cost_ms     INT          NOT NULL DEFAULT 0,
  KEY (id),
  KEY (func_id, ended_at),
  KEY (status, ended_at),
  KEY (ended_at),
  KEY (origin_id, nominal_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS failover_event (
  id          BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
  node        VARCHAR(64)  NOT NULL,
  from_state  VARCHAR(16)  NOT NULL,
  to_state    VARCHAR(16)  NOT NULL,
  cause       VARCHAR(255) NOT NULL,
  epoch       BIGINT       NOT NULL DEFAULT 0,
  at          DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  KEY (at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS setting (
  k           VARCHAR(64)  NOT NULL PRIMARY KEY,       -- e.g. 'cron.paused' = '1'
  v           TEXT         NOT NULL,
  updated_at  DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
