// Database (MariaDB 10.11 + Galera 4 from Debian 12): the server/Galera
// option file and the SST account SQL, plus the OpenSIPS schema and seed SQL
// (opensips-schema.ts, which also creates the proxies' accounts). Pure.
import type { GatewayModel, HostModel } from "../model";
import { PORTS } from "../ports";
import { renderTemplate } from "./engine";
import type { RenderedFile } from "./types";
import { headerFor, privateIpsOf, requireRole, safeSecret } from "./common";
import { OPENSIPS_DB_NAME, OPENSIPS_DB_USER, renderDatabaseSchema } from "./opensips-schema";

export const GALERA_CNF_PATH = "/etc/mysql/mariadb.conf.d/60-galera.cnf";
/** beside the OpenSIPS schema SQL; the deploy plan runs them in path order on the bootstrap node */
export const ACCOUNTS_SQL_PATH = "/etc/ifbus/sql/accounts.sql";
export const MARIADB_SERVICE = "mariadb";
export { OPENSIPS_DB_NAME, OPENSIPS_DB_USER };
export const SST_DB_USER = "sst";
/** At or below the 20000 open-file hard limit seen in the lab (LAB-NOTES). */
export const OPEN_FILES_LIMIT = 16384;

export function galeraClusterName(model: GatewayModel): string {
    return `ifbus-${model.stack}`;
}

export function renderDatabase(model: GatewayModel, host: HostModel): RenderedFile[] {
    requireRole(host, "database", "renderDatabase");
    const header = headerFor(model, host);
    const dbIps = privateIpsOf(model, "database");
    const singleNode = dbIps.length === 1;
    const cnfTemplate = "galera/60-galera.cnf";
    const cnf = renderTemplate(
        cnfTemplate,
        {
            privateIp: host.privateIp,
            hostName: host.name,
            mysqlPort: PORTS.mysql,
            replicationPort: PORTS.galeraReplication,
            istPort: PORTS.galeraIst,
            sstPort: PORTS.galeraSst,
            openFilesLimit: OPEN_FILES_LIMIT,
            clusterName: galeraClusterName(model),
            singleNode,
            // one node: an empty gcomm:// forms a new cluster at every start, so a
            // dev database comes back after a reboot without a manual bootstrap
            clusterIps: singleNode ? [] : dbIps,
            gcacheSize: model.spec.galeraGcacheSize,
            sstUser: SST_DB_USER,
            sstPassword: safeSecret(cnfTemplate, "databaseSstPassword", model.secrets.databaseSstPassword),
        },
        header,
    );
    const sqlTemplate = "galera/accounts.sql";
    const sql = renderTemplate(
        sqlTemplate,
        {
            sstUser: SST_DB_USER,
            sstPassword: safeSecret(sqlTemplate, "databaseSstPassword", model.secrets.databaseSstPassword),
        },
        header,
        "--",
    );
    return [
        // wsrep_sst_auth makes it secret; mariadbd reads it as root, the SST scripts as mysql
        { path: GALERA_CNF_PATH, content: cnf, mode: "0640", owner: "root", group: "mysql", service: MARIADB_SERVICE, secret: true },
        // applied by the deploy step with the admin account; no daemon reads it
        { path: ACCOUNTS_SQL_PATH, content: sql, mode: "0600", owner: "root", group: "root", service: "none", secret: true },
        ...renderDatabaseSchema(model, host),
    ];
}
