// Database (MariaDB 10.11 + Galera 4 from Debian 12): the server/Galera
// option file and the accounts SQL. Pure.
import type { GatewayModel, HostModel } from "../model";
import { PORTS } from "../ports";
import { renderTemplate } from "./engine";
import type { RenderedFile } from "./types";
import { headerFor, privateIpsOf, requireRole, safeSecret } from "./common";

export const GALERA_CNF_PATH = "/etc/mysql/mariadb.conf.d/60-galera.cnf";
export const ACCOUNTS_SQL_PATH = "/etc/mysql/ifbus-accounts.sql";
export const MARIADB_SERVICE = "mariadb";
/** The database and account OpenSIPS uses (db_url mysql://opensips:...@.../opensips). */
export const OPENSIPS_DB_NAME = "opensips";
export const OPENSIPS_DB_USER = "opensips";
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
            sstPassword: safeSecret(cnfTemplate, "databaseSstPassword", model.secrets.databaseSstPassword),
        },
        header,
    );
    const sqlTemplate = "galera/accounts.sql";
    const sql = renderTemplate(
        sqlTemplate,
        {
            sstPassword: safeSecret(sqlTemplate, "databaseSstPassword", model.secrets.databaseSstPassword),
            dbUser: OPENSIPS_DB_USER,
            dbName: OPENSIPS_DB_NAME,
            dbPassword: safeSecret(sqlTemplate, "databasePassword", model.secrets.databasePassword),
            proxyIps: privateIpsOf(model, "sip-proxy"),
        },
        header,
        "--",
    );
    return [
        // wsrep_sst_auth makes it secret; mariadbd reads it as root, the SST scripts as mysql
        { path: GALERA_CNF_PATH, content: cnf, mode: "0640", owner: "root", group: "mysql", service: MARIADB_SERVICE, secret: true },
        // applied by the deploy step with the admin account; no daemon reads it
        { path: ACCOUNTS_SQL_PATH, content: sql, mode: "0600", owner: "root", group: "root", service: "none", secret: true },
    ];
}
