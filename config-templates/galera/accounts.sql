-- The database cluster's own account: mariabackup SST (wsrep_sst_auth),
-- local only. Applied on the bootstrap node once it is Primary; Galera
-- replicates account statements to the others. Idempotent: re-running it
-- sets the password again. (OpenSIPS' accounts come with its seed SQL.)
-- SLAVE MONITOR keeps the donor from warning (DOMAIN-FACTS 12).
CREATE USER IF NOT EXISTS '{{sstUser}}'@'localhost' IDENTIFIED BY '{{sstPassword}}';
ALTER USER '{{sstUser}}'@'localhost' IDENTIFIED BY '{{sstPassword}}';
GRANT RELOAD, PROCESS, LOCK TABLES, BINLOG MONITOR, SLAVE MONITOR ON *.* TO '{{sstUser}}'@'localhost';
