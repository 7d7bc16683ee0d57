-- Accounts of the gateway's database cluster. Applied on one node (the
-- bootstrap node) after it is Primary; Galera replicates account statements
-- to the others. Idempotent: re-running it sets the passwords again.

-- mariabackup SST (wsrep_sst_auth), local only; SLAVE MONITOR keeps the
-- donor from warning (DOMAIN-FACTS 12).
CREATE USER IF NOT EXISTS 'sst'@'localhost' IDENTIFIED BY '{{sstPassword}}';
ALTER USER 'sst'@'localhost' IDENTIFIED BY '{{sstPassword}}';
GRANT RELOAD, PROCESS, LOCK TABLES, BINLOG MONITOR, SLAVE MONITOR ON *.* TO 'sst'@'localhost';

-- OpenSIPS, from each proxy's private address only; data rights on its own
-- database (the schema is created with the admin account).
{{#each proxyIps}}
CREATE USER IF NOT EXISTS '{{../dbUser}}'@'{{this}}' IDENTIFIED BY '{{../dbPassword}}';
ALTER USER '{{../dbUser}}'@'{{this}}' IDENTIFIED BY '{{../dbPassword}}';
GRANT SELECT, INSERT, UPDATE, DELETE ON `{{../dbName}}`.* TO '{{../dbUser}}'@'{{this}}';
{{/each}}
