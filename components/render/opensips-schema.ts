// The OpenSIPS database on the Galera nodes: the tables of the modules the
// proxy uses (version, subscriber, dispatcher, address) and the rows the stack
// owns (the proxies' account, subscribers, trunks). Both files are idempotent:
// applying them again converges. Pure: plain model in, plain files out.
import * as crypto from "crypto";
import type { GatewayModel, HostModel } from "../model";
import { hostsOf } from "../model";
import { parseCidr, intToIp } from "../ipplan";
import { renderTemplate } from "./engine";
import type { RenderedFile } from "./types";
import { headerFor, requireRole } from "./common";

export const OPENSIPS_DB_NAME = "opensips";
export const OPENSIPS_DB_USER = "opensips";
/** dispatcher setid of the stack's trunks */
export const TRUNK_DISPATCHER_SET = 1;
/** permissions address group of the trunks' source CIDRs */
export const TRUNK_ADDRESS_GROUP = 1;
/**
 * Rows the stack owns get fixed ids from this block, so re-applying updates
 * them in place and operator rows (auto-increment from 1) are never touched.
 */
export const MANAGED_ID_BASE = 1_000_000;
export const MANAGED_ID_MAX = 1_999_999;

export const OPENSIPS_SCHEMA_SQL = "/etc/ifbus/sql/opensips-schema.sql";
export const OPENSIPS_SEED_SQL = "/etc/ifbus/sql/opensips-seed.sql";

/** A MariaDB string literal (backslash and quote escaped: default sql_mode). */
export function sqlString(s: string): string {
    return `'${s.replace(/\\/g, "\\\\").replace(/'/g, "\\'").replace(/\0/g, "\\0").replace(/\n/g, "\\n").replace(/\r/g, "\\r")}'`;
}

/** RFC 7616 / RFC 8760 HA1 values: H(user:realm:password) for each digest algorithm OpenSIPS reads. */
export function digestHa1(user: string, realm: string, password: string): { md5: string; sha256: string; sha512t256: string } {
    const a1 = `${user}:${realm}:${password}`;
    const h = (alg: string) => crypto.createHash(alg).update(a1, "utf8").digest("hex");
    return { md5: h("md5"), sha256: h("sha256"), sha512t256: h("sha512-256") };
}

export function renderDatabaseSchema(model: GatewayModel, host: HostModel): RenderedFile[] {
    requireRole(host, "database", "renderDatabaseSchema");
    const header = headerFor(model, host);
    const { spec, secrets } = model;
    const realm = spec.sipDomain;

    const accounts = hostsOf(model, "sip-proxy").map((p) => ({
        account: `${sqlString(OPENSIPS_DB_USER)}@${sqlString(p.privateIp)}`,
        password: sqlString(secrets.databasePassword),
    }));
    const subscribers = spec.subscribers.map((user) => {
        const pw = secrets.subscriberPasswords[user];
        if (pw === undefined) throw new Error(`subscriber "${user}" has no password in the model's secrets`);
        const ha1 = digestHa1(user, realm, pw);
        return [sqlString(user), sqlString(realm), sqlString(ha1.md5), sqlString(ha1.sha256), sqlString(ha1.sha512t256)].join(", ");
    });
    const dispatcherRows = spec.sipTrunks.map((t, i) =>
        [MANAGED_ID_BASE + i + 1, TRUNK_DISPATCHER_SET, sqlString(t.uri), t.weight, sqlString(`sipTrunks[${i}]`)].join(", "),
    );
    const addressRows: string[] = [];
    spec.sipTrunks.forEach((t, i) =>
        t.cidrs.forEach((c, j) => {
            const { base, prefix } = parseCidr(c);
            addressRows.push(
                [MANAGED_ID_BASE + addressRows.length + 1, TRUNK_ADDRESS_GROUP, sqlString(intToIp(base)), prefix, sqlString(`sipTrunks[${i}].cidrs[${j}]`)].join(", "),
            );
        }),
    );

    const vars = {
        db: OPENSIPS_DB_NAME,
        accounts,
        subscribers,
        dispatcherRows,
        dispatcherStaleFrom: MANAGED_ID_BASE + dispatcherRows.length + 1,
        addressRows,
        addressStaleFrom: MANAGED_ID_BASE + addressRows.length + 1,
        managedMax: MANAGED_ID_MAX,
        trunkSet: TRUNK_DISPATCHER_SET,
        trunkGroup: TRUNK_ADDRESS_GROUP,
    };
    return [
        {
            path: OPENSIPS_SCHEMA_SQL,
            content: renderTemplate("opensips/opensips-schema.sql", { db: OPENSIPS_DB_NAME }, header, "--"),
            mode: "0644",
            owner: "root",
            group: "root",
            service: "none",
            secret: false,
        },
        {
            path: OPENSIPS_SEED_SQL,
            content: renderTemplate("opensips/opensips-seed.sql", vars, header, "--"),
            mode: "0600",
            owner: "root",
            group: "root",
            service: "none",
            // the proxies' database password and the subscribers' HA1 hashes
            secret: true,
        },
    ];
}
