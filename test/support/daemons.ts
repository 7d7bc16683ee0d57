// Start the real daemons on rendered files inside a test namespace, with
// only the run-time paths (data dir, pid file, log) moved into the test's
// work dir through command-line flags, so the config under test is the
// rendered file itself.
import * as fs from "fs";
import * as path from "path";
import { PORTS } from "../../components/ports";
import type { Daemon, RunResult, TestNetns } from "./netns";
import { runOk } from "./netns";
import { waitFor } from "./wait";

/** KEY=VALUE lines of a shell-style environment file (as systemd's EnvironmentFile= reads them). */
export function parseEnvFile(text: string): Record<string, string> {
    const out: Record<string, string> = {};
    for (const line of text.split("\n")) {
        const m = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line.trim());
        if (!m) continue;
        let v = m[2];
        if ((v.startsWith("'") && v.endsWith("'")) || (v.startsWith('"') && v.endsWith('"'))) v = v.slice(1, -1);
        out[m[1]] = v;
    }
    return out;
}

export async function startRedis(ns: TestNetns, confPath: string, bindIp: string, secrets: readonly string[]): Promise<Daemon> {
    const data = path.join(ns.workDir, "redis-data");
    fs.mkdirSync(data, { recursive: true });
    const d = ns.spawnDaemon("redis-server", "redis-server", [
        confPath,
        "--dir",
        data,
        "--pidfile",
        path.join(data, "redis.pid"),
        // empty logfile = stdout, into the daemon's log file
        "--logfile",
        "",
        "--supervised",
        "no",
    ]);
    await ns.waitForPort(d, "tcp", bindIp, PORTS.redis, 15000, secrets);
    return d;
}

/** redis-cli inside the namespace; the password goes through REDISCLI_AUTH, never argv. */
export function redisCli(ns: TestNetns, host: string, args: readonly string[], password?: string): Promise<RunResult> {
    const env: NodeJS.ProcessEnv = { ...process.env };
    delete env.REDISCLI_AUTH;
    if (password !== undefined) env.REDISCLI_AUTH = password;
    return ns.run("redis-cli", ["--no-auth-warning", "-h", host, "-p", String(PORTS.redis), ...args], { env, timeoutMs: 10000 });
}

export async function startRtpengine(ns: TestNetns, confPath: string, defaultsPath: string, ngIp: string, secrets: readonly string[]): Promise<Daemon> {
    const env = parseEnvFile(fs.readFileSync(defaultsPath, "utf8"));
    const d = ns.spawnDaemon(
        "rtpengine",
        "rtpengine",
        // what Debian's unit runs, with the pid file moved
        ["-f", "-E", "--no-log-timestamps", "--pidfile", path.join(ns.workDir, "rtpengine.pid"), "--config-file", confPath],
        { env: { ...process.env, ...env } },
    );
    await ns.waitForPort(d, "udp", ngIp, PORTS.rtpengineNg, 20000, secrets);
    return d;
}

/** turnserver as Debian's unit runs it, with the certificate paths moved to the rendered copies. */
export async function startTurn(ns: TestNetns, confPath: string, certPath: string, keyPath: string, ip: string, secrets: readonly string[]): Promise<Daemon> {
    const d = ns.spawnDaemon("turnserver", "turnserver", ["-c", confPath, "--cert", certPath, "--pkey", keyPath, "--pidfile", path.join(ns.workDir, "turnserver.pid")]);
    await ns.waitForPort(d, "udp", ip, PORTS.turn, 15000, secrets);
    await ns.waitForPort(d, "tcp", ip, PORTS.turnTls, 15000, secrets);
    return d;
}

export interface MariadbInstance {
    readonly name: string;
    /** option file: run-time paths, then !include of the rendered option file */
    readonly cnf: string;
    readonly datadir: string;
}

/**
 * A node's own datadir, socket and pid file under the namespace's work dir,
 * and an option file that includes the rendered one (as Debian's my.cnf
 * includes mariadb.conf.d/), so the rendered settings are what the server runs.
 */
export async function prepareMariadb(ns: TestNetns, name: string, renderedCnf: string, install: boolean): Promise<MariadbInstance> {
    const dir = path.join(ns.workDir, name);
    const datadir = path.join(dir, "data");
    fs.mkdirSync(datadir, { recursive: true, mode: 0o755 });
    fs.chmodSync(dir, 0o755);
    const cnf = path.join(dir, "my.cnf");
    fs.writeFileSync(
        cnf,
        [
            "[mysqld]",
            `datadir = ${datadir}`,
            `socket = ${path.join(dir, "mysqld.sock")}`,
            `pid-file = ${path.join(dir, "mysqld.pid")}`,
            "user = mysql",
            `!include ${renderedCnf}`,
            "[client]",
            `socket = ${path.join(dir, "mysqld.sock")}`,
            "",
        ].join("\n"),
        { mode: 0o644 },
    );
    // socket and pid file live beside the datadir: mysql must own the directory
    await runOk("chown", ["-R", "mysql:mysql", dir]);
    if (install) await ns.runOk("mariadb-install-db", ["--no-defaults", `--datadir=${datadir}`, "--user=mysql", "--skip-test-db"], { timeoutMs: 60000 });
    return { name, cnf, datadir };
}

/** SQL through the node's socket as root; rows as tab-separated lines. */
export async function mariadbQuery(ns: TestNetns, node: MariadbInstance, sql: string): Promise<string[][]> {
    const r = await ns.runOk("mariadb", [`--defaults-file=${node.cnf}`, "--batch", "--skip-column-names"], { input: sql, timeoutMs: 30000 });
    return r.stdout
        .split("\n")
        .filter((l) => l !== "")
        .map((l) => l.split("\t"));
}

export async function wsrepStatus(ns: TestNetns, node: MariadbInstance): Promise<Record<string, string>> {
    const rows = await mariadbQuery(ns, node, "SHOW GLOBAL STATUS LIKE 'wsrep_%';");
    return Object.fromEntries(rows.map(([k, v]) => [k, v ?? ""]));
}

/** Start mariadbd on the prepared node; wait (bounded) until it is Primary, Synced and ready. */
export async function startMariadb(ns: TestNetns, node: MariadbInstance, newCluster: boolean, secrets: readonly string[], timeoutMs = 120000): Promise<Daemon> {
    const args = [`--defaults-file=${node.cnf}`];
    if (newCluster) args.push("--wsrep-new-cluster");
    const d = ns.spawnDaemon(`mariadbd-${node.name}-${Date.now()}`, "mariadbd", args);
    await waitFor(
        async () => {
            d.assertRunning(secrets);
            const s = await wsrepStatus(ns, node);
            return s.wsrep_ready === "ON" && s.wsrep_cluster_status === "Primary" && s.wsrep_local_state_comment === "Synced";
        },
        { what: `${node.name} to be Primary, Synced and ready`, timeoutMs, intervalMs: 200 },
    );
    return d;
}
