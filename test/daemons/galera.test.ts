// The rendered Galera option file and accounts SQL under Debian's real
// MariaDB 10.11 + Galera 4, each node with its own datadir (made by
// mariadb-install-db) in a namespace holding the planned private addresses of
// the database nodes and the proxies.
import { strict as assert } from "assert";
import * as fs from "fs";
import * as path from "path";
import fc from "fast-check";
import type { GatewayModel, HostModel } from "../../components/model";
import { hostsOf } from "../../components/model";
import { PORTS } from "../../components/ports";
import { ACCOUNTS_SQL_PATH, GALERA_CNF_PATH, OPENSIPS_DB_USER, SST_DB_USER, galeraClusterName, renderDatabase } from "../../components/render/galera";
import { TestNetns, requireTools } from "../support/netns";
import { MariadbInstance, mariadbQuery, prepareMariadb, startMariadb, wsrepStatus } from "../support/daemons";
import { EXAMPLE_STACKS, exampleModel, modelFor, secretValues, specArbitrary, writeTree } from "../support/stacks";

/** Rendered files of a database node, written under the namespace's work dir; SQL in the order the deploy plan applies it (by path). */
function writeNode(ns: TestNetns, model: GatewayModel, db: HostModel): { cnf: string; sql: string[] } {
    const files = renderDatabase(model, db);
    const at = writeTree(path.join(ns.workDir, `root-${db.name}`), files);
    const sql = files.map((f) => f.path).filter((p) => p.endsWith(".sql")).sort();
    assert.ok(sql.includes(ACCOUNTS_SQL_PATH));
    return { cnf: at(GALERA_CNF_PATH), sql: sql.map(at) };
}

async function applySql(ns: TestNetns, node: MariadbInstance, files: readonly string[]): Promise<void> {
    for (const f of files) await mariadbQuery(ns, node, fs.readFileSync(f, "utf8"));
}

/** Log in as OpenSIPS from `sourceIp` (a socat forwarder bound to it: the mariadb client cannot choose its source address). */
async function loginAsOpensips(ns: TestNetns, model: GatewayModel, db: HostModel, sourceIp: string, localPort: number): Promise<{ code: number; out: string }> {
    const fwd = ns.spawnDaemon(`fwd-${localPort}`, "socat", [`TCP-LISTEN:${localPort},bind=127.0.0.1,reuseaddr,fork`, `TCP:${db.privateIp}:${PORTS.mysql},bind=${sourceIp}`]);
    try {
        await ns.waitForPort(fwd, "tcp", "127.0.0.1", localPort, 10000);
        const r = await ns.run("mariadb", ["--no-defaults", "-h", "127.0.0.1", "-P", String(localPort), "-u", OPENSIPS_DB_USER, "--batch", "--skip-column-names", "-e", "SELECT CURRENT_USER()"], {
            env: { ...process.env, MYSQL_PWD: model.secrets.databasePassword },
            timeoutMs: 15000,
        });
        return { code: r.code, out: (r.stdout + r.stderr).trim() };
    } finally {
        await fwd.stop();
    }
}

async function assertNodeSettings(ns: TestNetns, model: GatewayModel, db: HostModel, node: MariadbInstance, clusterSize: number): Promise<void> {
    const s = await wsrepStatus(ns, node);
    assert.equal(s.wsrep_ready, "ON");
    assert.equal(s.wsrep_cluster_status, "Primary");
    assert.equal(s.wsrep_cluster_size, String(clusterSize));
    const [row] = await mariadbQuery(
        ns,
        node,
        "SELECT @@wsrep_cluster_name, @@bind_address, @@binlog_format, @@innodb_flush_log_at_trx_commit, @@innodb_autoinc_lock_mode, @@wsrep_sst_method, @@default_storage_engine;",
    );
    assert.deepEqual(row, [galeraClusterName(model), db.privateIp, "ROW", "1", "2", "mariabackup", "InnoDB"]);
    // client and replication ports on the private address only
    const tcp = await ns.listeningSockets("tcp");
    assert.ok(tcp.includes(`${db.privateIp}:${PORTS.mysql}`), `no MariaDB listener on ${db.privateIp}:${PORTS.mysql}: ${tcp.join(" ")}`);
    assert.ok(tcp.includes(`${db.privateIp}:${PORTS.galeraReplication}`), `no Galera listener on ${db.privateIp}:${PORTS.galeraReplication}: ${tcp.join(" ")}`);
    assert.ok(!tcp.some((a) => a.startsWith("0.0.0.0:") || a.startsWith("*:")), `a wildcard listener: ${tcp.join(" ")}`);
}

async function assertAccounts(ns: TestNetns, model: GatewayModel, db: HostModel, portBase: number): Promise<void> {
    let port = portBase;
    for (const proxy of hostsOf(model, "sip-proxy")) {
        const r = await loginAsOpensips(ns, model, db, proxy.privateIp, port++);
        assert.equal(r.code, 0, `opensips could not log in from ${proxy.privateIp}: ${r.out}`);
        assert.equal(r.out, `${OPENSIPS_DB_USER}@${proxy.privateIp}`);
    }
    // any other address (here the database's own) is refused
    const other = await loginAsOpensips(ns, model, db, db.privateIp, port++);
    assert.notEqual(other.code, 0, "opensips logged in from an address that is not a proxy");
    assert.match(other.out, /not allowed to connect|Access denied/);
}

/** One node, bootstrapped as a new cluster: ready, rendered settings live, accounts apply (twice) and work. */
async function checkSingleNode(model: GatewayModel, withBackup: boolean): Promise<void> {
    const db = hostsOf(model, "database")[0];
    const secrets = secretValues(model);
    const ns = await TestNetns.create("galera", { addresses: [db.privateIp, ...hostsOf(model, "sip-proxy").map((p) => p.privateIp)] });
    try {
        const files = writeNode(ns, model, db);
        const node = await prepareMariadb(ns, db.name, files.cnf, true);
        const daemon = await startMariadb(ns, node, true, secrets);
        await assertNodeSettings(ns, model, db, node, 1);

        // all of the role's SQL, twice: it must be idempotent
        await applySql(ns, node, files.sql);
        await applySql(ns, node, files.sql);
        await assertAccounts(ns, model, db, 41000);

        if (withBackup) {
            // what the SST donor runs, as the rendered SST account: proves its grants suffice
            const extra = path.join(ns.workDir, "sst.cnf");
            fs.writeFileSync(extra, `!include ${node.cnf}\n[mariabackup]\nuser = ${SST_DB_USER}\npassword = ${model.secrets.databaseSstPassword}\n`, { mode: 0o600 });
            const r = await ns.run("mariabackup", [`--defaults-file=${extra}`, "--backup", "--galera-info", `--target-dir=${path.join(ns.workDir, "backup")}`], { timeoutMs: 120000 });
            assert.equal(r.code, 0, `mariabackup as the SST account failed:\n${r.stderr.split("\n").slice(-15).join("\n")}`);
            assert.doesNotMatch(r.stderr, /missing required privilege/i);
        }

        if (hostsOf(model, "database").length === 1) {
            // a one-node cluster comes back after a restart without a manual bootstrap
            await daemon.stop(60000);
            await startMariadb(ns, node, false, secrets);
        }
    } finally {
        await ns.destroy();
    }
}

describe("database config under the real MariaDB 10.11 + Galera 4", function () {
    this.timeout(600000);
    before(function () {
        requireTools(this, "mariadbd", "mariadb", "mariadb-install-db", "mariabackup", "socat");
    });

    for (const stack of EXAMPLE_STACKS) {
        it(`bootstraps database-1 of the ${stack} stack as a ready Galera node with the rendered settings, and the role's SQL applies twice and lets OpenSIPS in from the proxies only`, async () => {
            await checkSingleNode(exampleModel(stack), stack === "dev");
        });
    }

    it("forms the prod stack's three-node cluster: the others join by mariabackup SST with the rendered account and replicate writes", async () => {
        const model = exampleModel("prod");
        const dbs = hostsOf(model, "database");
        const secrets = secretValues(model);
        // all nodes in one namespace: only the rendered per-address binds keep their ports apart
        const ns = await TestNetns.create("galera3", { addresses: [...dbs.map((d) => d.privateIp), ...hostsOf(model, "sip-proxy").map((p) => p.privateIp)] });
        try {
            const files = dbs.map((db) => writeNode(ns, model, db));
            const nodes: MariadbInstance[] = [];
            for (const [i, db] of dbs.entries()) nodes.push(await prepareMariadb(ns, db.name, files[i].cnf, i === 0));
            await startMariadb(ns, nodes[0], true, secrets);
            await applySql(ns, nodes[0], files[0].sql);
            // start joiners one after another (the lab's advice: the cores are the limit)
            for (const node of nodes.slice(1)) await startMariadb(ns, node, false, secrets, 180000);
            for (const [i, db] of dbs.entries()) await assertNodeSettings(ns, model, db, nodes[i], dbs.length);

            await mariadbQuery(ns, nodes[2], "CREATE TABLE opensips.ifbt (id INT PRIMARY KEY, v VARCHAR(20)); INSERT INTO opensips.ifbt VALUES (1, 'replicated');");
            const rows = await mariadbQuery(ns, nodes[0], "SELECT v FROM opensips.ifbt WHERE id = 1;");
            assert.deepEqual(rows, [["replicated"]]);
            // accounts reached the joiners too
            await assertAccounts(ns, model, dbs[1], 42000);
        } finally {
            await ns.destroy();
        }
    });

    it("bootstraps database-1 for generated stacks", async () => {
        await fc.assert(fc.asyncProperty(specArbitrary, async (spec) => checkSingleNode(modelFor(spec), false)), { numRuns: 3 });
    });
});
