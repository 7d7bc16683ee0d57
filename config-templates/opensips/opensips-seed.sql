-- Rows the stack owns in the OpenSIPS database: the proxies' account,
-- subscribers (HA1 hashes only) and trunks. Idempotent; apply after
-- opensips-schema.sql. Holds secrets: never print it.

USE {{db}};

-- one account per proxy private address, password kept in step with the stack
{{#each accounts}}
CREATE USER IF NOT EXISTS {{this.account}} IDENTIFIED BY {{this.password}};
ALTER USER {{this.account}} IDENTIFIED BY {{this.password}};
GRANT SELECT, INSERT, UPDATE, DELETE ON {{../db}}.* TO {{this.account}};
{{/each}}

START TRANSACTION;

-- subscribers from the stack config; ones removed from it are left in place
-- (they may carry operator data): delete them by hand if intended
{{#each subscribers}}
INSERT INTO subscriber (username, domain, ha1, ha1_sha256, ha1_sha512t256) VALUES ({{this}})
    ON DUPLICATE KEY UPDATE ha1 = VALUES(ha1), ha1_sha256 = VALUES(ha1_sha256), ha1_sha512t256 = VALUES(ha1_sha512t256), password = '';
{{/each}}

-- trunks: dispatcher set {{trunkSet}}; ids {{dispatcherStaleFrom}}..{{managedMax}} are trunks that left the config
DELETE FROM dispatcher WHERE id BETWEEN {{dispatcherStaleFrom}} AND {{managedMax}};
{{#each dispatcherRows}}
INSERT INTO dispatcher (id, setid, destination, weight, description) VALUES ({{this}})
    ON DUPLICATE KEY UPDATE setid = VALUES(setid), destination = VALUES(destination), weight = VALUES(weight), description = VALUES(description);
{{/each}}

-- trunk source CIDRs: address group {{trunkGroup}} (calls from them skip authentication)
DELETE FROM address WHERE id BETWEEN {{addressStaleFrom}} AND {{managedMax}};
{{#each addressRows}}
INSERT INTO address (id, grp, ip, mask, context_info) VALUES ({{this}})
    ON DUPLICATE KEY UPDATE grp = VALUES(grp), ip = VALUES(ip), mask = VALUES(mask), context_info = VALUES(context_info);
{{/each}}

COMMIT;
