-- OpenSIPS 3.6 tables used by the proxies: version, subscriber (auth_db),
-- dispatcher, address (permissions). Column definitions follow OpenSIPS
-- 3.6 scripts/mysql/{standard,auth_db,dispatcher,permissions}-create.sql.
-- Idempotent: safe to apply on every deploy. Registrations and dialogs are
-- kept in the proxies' memory, not here.

CREATE DATABASE IF NOT EXISTS {{db}};
USE {{db}};

-- Upstream declares only UNIQUE (table_name); a PRIMARY KEY instead keeps
-- Galera's row-based replication certifying by key (every table has one).
CREATE TABLE IF NOT EXISTS version (
    table_name CHAR(32) NOT NULL PRIMARY KEY,
    table_version INT UNSIGNED DEFAULT 0 NOT NULL
) ENGINE=InnoDB;

CREATE TABLE IF NOT EXISTS subscriber (
    id INT(10) UNSIGNED AUTO_INCREMENT PRIMARY KEY NOT NULL,
    username CHAR(64) DEFAULT '' NOT NULL,
    domain CHAR(64) DEFAULT '' NOT NULL,
    password CHAR(25) DEFAULT '' NOT NULL,
    ha1 CHAR(64) DEFAULT '' NOT NULL,
    ha1_sha256 CHAR(64) DEFAULT '' NOT NULL,
    ha1_sha512t256 CHAR(64) DEFAULT '' NOT NULL,
    CONSTRAINT account_idx UNIQUE (username, domain)
) ENGINE=InnoDB;
CREATE INDEX IF NOT EXISTS username_idx ON subscriber (username);

CREATE TABLE IF NOT EXISTS dispatcher (
    id INT(10) UNSIGNED AUTO_INCREMENT PRIMARY KEY NOT NULL,
    setid INT DEFAULT 0 NOT NULL,
    destination CHAR(192) DEFAULT '' NOT NULL,
    socket CHAR(128) DEFAULT NULL,
    state INT DEFAULT 0 NOT NULL,
    probe_mode INT(11) UNSIGNED DEFAULT 0 NOT NULL,
    weight CHAR(64) DEFAULT 1 NOT NULL,
    priority INT DEFAULT 0 NOT NULL,
    attrs CHAR(128) DEFAULT NULL,
    description CHAR(64) DEFAULT NULL
) ENGINE=InnoDB;

CREATE TABLE IF NOT EXISTS address (
    id INT(10) UNSIGNED AUTO_INCREMENT PRIMARY KEY NOT NULL,
    grp SMALLINT(5) UNSIGNED DEFAULT 0 NOT NULL,
    ip CHAR(50) NOT NULL,
    mask SMALLINT UNSIGNED DEFAULT 32 NOT NULL,
    port SMALLINT(5) UNSIGNED DEFAULT 0 NOT NULL,
    proto CHAR(4) DEFAULT 'any' NOT NULL,
    pattern CHAR(64) DEFAULT NULL,
    context_info CHAR(32) DEFAULT NULL
) ENGINE=InnoDB;

-- the modules refuse to start when these versions differ from what they expect
INSERT INTO version (table_name, table_version) VALUES
    ('subscriber', 8),
    ('dispatcher', 9),
    ('address', 5)
ON DUPLICATE KEY UPDATE table_version = VALUES(table_version);
