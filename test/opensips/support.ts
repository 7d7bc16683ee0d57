// Running the rendered OpenSIPS config under the real binary: find it, point
// it at its modules, move run-time paths into the test's work dir, start it
// with a real MariaDB holding the rendered schema and seed.
import * as fs from "fs";
import * as path from "path";
import { PORTS } from "../../components/ports";
import type { RenderedFile } from "../../components/render/types";
import { OPENSIPS_CFG, OPENSIPS_DEFAULTS, OPENSIPS_FIFO, OPENSIPS_TLS_DIR } from "../../components/render/opensips";
import { parseEnvFile } from "../support/daemons";
import { Daemon, RunResult, TestNetns, hasCommand, run, runOk } from "../support/netns";
import { waitFor } from "../support/wait";

export const SKIP_NO_OPENSIPS =
    "SKIPPED: no opensips binary on PATH (install OpenSIPS 3.6 from the official apt repository, apt.opensips.org <codename> 3.6-releases)";

export function opensipsBinary(): string | undefined {
    for (const d of (process.env.PATH ?? "").split(":")) {
        const p = path.join(d, "opensips");
        try {
            fs.accessSync(p, fs.constants.X_OK);
            return p;
        } catch {
            /* next */
        }
    }
    return undefined;
}

/**
 * Module directory to inject as `mpath`, or undefined when the binary has a
 * usable compiled-in default (the official packages). A binary installed
 * under a custom prefix has none (DOMAIN-FACTS 9). OPENSIPS_MPATH overrides.
 */
export function opensipsModuleDir(binary: string): string | undefined {
    if (process.env.OPENSIPS_MPATH) return process.env.OPENSIPS_MPATH;
    const real = fs.realpathSync(binary);
    if (real === "/usr/sbin/opensips") return undefined;
    const prefix = path.dirname(path.dirname(real));
    for (const sub of ["lib64/opensips/modules", "lib/opensips/modules", "lib/x86_64-linux-gnu/opensips/modules"]) {
        const dir = path.join(prefix, sub);
        if (fs.existsSync(path.join(dir, "tm.so"))) return `${dir}/`;
    }
    throw new Error(`cannot find the OpenSIPS module directory under ${prefix}; set OPENSIPS_MPATH`);
}

export interface TestConfig {
    /** the config to run: the rendered one with only run-time paths, logging and mpath changed */
    readonly cfg: string;
    readonly fifo: string;
    /** absolute path on the host -> path of the rendered copy */
    readonly at: (hostPath: string) => string;
}

/**
 * Write the rendered files under `dir`, then derive the config to run:
 * TLS files and the MI FIFO move into `dir` (absolute paths on a real host),
 * logs go to stderr (no syslog daemon here), mpath goes first when needed.
 */
export function prepareConfig(files: readonly RenderedFile[], dir: string, moduleDir: string | undefined): TestConfig {
    const root = path.join(dir, "root");
    for (const f of files) {
        const dest = path.join(root, f.path);
        fs.mkdirSync(path.dirname(dest), { recursive: true });
        fs.writeFileSync(dest, f.content, { mode: parseInt(f.mode, 8) });
    }
    const at = (p: string) => {
        if (!files.some((f) => f.path === p)) throw new Error(`no rendered file ${p}`);
        return path.join(root, p);
    };
    const fifo = path.join(dir, "opensips_fifo");
    let text = fs.readFileSync(at(OPENSIPS_CFG), "utf8");
    const swap = (from: string, to: string) => {
        if (!text.includes(from)) throw new Error(`rendered opensips.cfg has no "${from}" to move for the test`);
        text = text.split(from).join(to);
    };
    swap(`${OPENSIPS_TLS_DIR}/`, path.join(root, OPENSIPS_TLS_DIR) + "/");
    swap(`"${OPENSIPS_FIFO}"`, `"${fifo}"`);
    swap("\nstderror_enabled=no\n", "\nstderror_enabled=yes\n");
    swap("\nsyslog_enabled=yes\n", "\nsyslog_enabled=no\n");
    // OPENSIPS_TEST_LOG_LEVEL=4 shows rtp_relay's flags and SIP routing when a test needs explaining
    if (process.env.OPENSIPS_TEST_LOG_LEVEL) swap("\nlog_level=3\n", `\nlog_level=${Number(process.env.OPENSIPS_TEST_LOG_LEVEL)}\n`);
    if (moduleDir) text = `mpath="${moduleDir}"\n${text}`;
    const cfg = path.join(dir, "opensips.test.cfg");
    fs.writeFileSync(cfg, text, { mode: 0o600 });
    return { cfg, fifo, at };
}

/** `opensips -C -f cfg`: syntax, module parameters and function arguments (not module init). */
export function checkConfig(binary: string, cfg: string): Promise<RunResult> {
    return run(binary, ["-C", "-f", cfg], { timeoutMs: 60000 });
}

/** Start OpenSIPS in the foreground (-F) with the memory sizes of the rendered /etc/default/opensips. */
export async function startOpensips(ns: TestNetns, binary: string, tc: TestConfig, name: string, listen: readonly [proto: "tcp" | "udp", ip: string, port: number][], secrets: readonly string[]): Promise<Daemon> {
    const env = parseEnvFile(fs.readFileSync(tc.at(OPENSIPS_DEFAULTS), "utf8"));
    if (!env.S_MEMORY || !env.P_MEMORY) throw new Error(`${OPENSIPS_DEFAULTS} sets no S_MEMORY / P_MEMORY`);
    const d = ns.spawnDaemon(name, binary, ["-F", "-f", tc.cfg, "-m", env.S_MEMORY, "-M", env.P_MEMORY]);
    for (const [proto, ip, port] of listen) await ns.waitForPort(d, proto, ip, port, 30000, secrets);
    // the FIFO appears once the MI process runs; from then on requests are served
    await waitFor(
        () => {
            d.assertRunning(secrets);
            return fs.existsSync(tc.fifo);
        },
        { what: `${name}'s MI FIFO`, timeoutMs: 15000, intervalMs: 100 },
    );
    return d;
}

/** An MI command through the real opensips-cli (JSON result). */
export async function mi(fifo: string, command: string, ...args: string[]): Promise<unknown> {
    const r = await runOk("opensips-cli", ["-o", `fifo_file=${fifo}`, "-x", "mi", command, ...args], { timeoutMs: 15000 });
    return JSON.parse(r.stdout);
}

export function hasOpensipsCli(): boolean {
    return hasCommand("opensips-cli");
}

/** A throw-away MariaDB bound to `ip` in `ns`; root over the unix socket only. */
export class TestMariadb {
    private constructor(
        readonly daemon: Daemon,
        readonly socket: string,
    ) {}

    static async start(ns: TestNetns, ip: string, secrets: readonly string[]): Promise<TestMariadb> {
        const dir = path.join(ns.workDir, "mariadb");
        fs.mkdirSync(dir, { recursive: true });
        await runOk("mariadb-install-db", ["--no-defaults", `--datadir=${dir}/data`, "--user=root", "--auth-root-authentication-method=socket", "--skip-test-db"], { timeoutMs: 60000 });
        const socket = path.join(dir, "mysqld.sock");
        const d = ns.spawnDaemon("mariadbd", "mariadbd", [
            "--no-defaults",
            `--datadir=${dir}/data`,
            `--socket=${socket}`,
            `--pid-file=${dir}/mysqld.pid`,
            `--bind-address=${ip}`,
            `--port=${PORTS.mysql}`,
            "--user=root",
            // grants name the proxies by address; no reverse DNS in a namespace
            "--skip-name-resolve",
            "--innodb-buffer-pool-size=32M",
            // the machine's open-file hard limit is 20000 (LAB-NOTES)
            "--open-files-limit=4096",
        ]);
        await ns.waitForPort(d, "tcp", ip, PORTS.mysql, 30000, secrets);
        return new TestMariadb(d, socket);
    }

    /** Run SQL as root (input on stdin, so secrets stay out of argv). */
    async sql(text: string): Promise<string> {
        const r = await run("mariadb", [`--socket=${this.socket}`, "--batch", "--skip-column-names"], { input: text, timeoutMs: 30000 });
        if (r.code !== 0) throw new Error(`mariadb exited ${r.code}: ${r.stderr.trim()}`);
        return r.stdout;
    }
}

/** The first usable host address of a CIDR (the address itself for a /32). */
export function firstHost(cidr: string): string {
    const [ip, prefix] = cidr.split("/");
    if (prefix === "32") return ip;
    const o = ip.split(".").map(Number);
    o[3] += 1;
    return o.join(".");
}
