// Throw-away network namespaces for daemon tests: each holds the planned
// private addresses of a host on a veth interface, has no default route and
// no link to the machine's own network, so daemons bind the addresses their
// rendered configs name and nothing leaves the namespace.
//
// Commands run inside with `nsenter --net=` (not `ip netns exec`, which
// remounts /sys: LAB-NOTES). Needs root and iproute2. Every namespace and
// daemon created here is removed by destroy(), and by an exit hook as a last
// resort, so a failing test leaves nothing behind.
import { ChildProcess, execFile, execFileSync, spawn } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { FatalWait, waitFor } from "./wait";

export const NETNS_PREFIX = "ifbt-";

export interface RunResult {
    readonly code: number;
    readonly stdout: string;
    readonly stderr: string;
}

export interface RunOptions {
    readonly env?: NodeJS.ProcessEnv;
    readonly input?: string;
    /** default 30000 */
    readonly timeoutMs?: number;
    readonly cwd?: string;
}

export function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
    return new Promise((resolve, reject) => {
        const child = execFile(
            cmd,
            args as string[],
            { env: opts.env ?? process.env, timeout: opts.timeoutMs ?? 30000, maxBuffer: 16 * 1024 * 1024, cwd: opts.cwd, killSignal: "SIGKILL" },
            (err, stdout, stderr) => {
                if (err && typeof (err as NodeJS.ErrnoException).code === "string") return reject(err);
                if (err && err.killed) return reject(new Error(`${cmd} timed out after ${opts.timeoutMs ?? 30000} ms`));
                resolve({ code: err ? (typeof err.code === "number" ? err.code : 1) : 0, stdout: String(stdout), stderr: String(stderr) });
            },
        );
        // a child that exits before reading its input must not crash the test with EPIPE
        child.stdin?.on("error", () => undefined);
        if (opts.input !== undefined) child.stdin?.end(opts.input);
    });
}

/** Run and insist on exit 0; the error names the command and its stderr (callers keep secrets out of argv). */
export async function runOk(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
    const r = await run(cmd, args, opts);
    if (r.code !== 0) throw new Error(`${cmd} ${args.join(" ")} exited ${r.code}: ${r.stderr.trim() || r.stdout.trim()}`);
    return r;
}

/** Replace every secret by *** (for log tails shown on failure). */
export function redact(text: string, secrets: readonly string[]): string {
    let out = text;
    for (const s of secrets) if (s.length >= 4) out = out.split(s).join("***");
    return out;
}

export interface InterfaceSpec {
    /** interface name inside the namespace (default eth0) */
    readonly ifname?: string;
    /** addresses to hold, plain (a /32 is used) or with a prefix */
    readonly addresses: readonly string[];
}

export interface DaemonOptions {
    readonly env?: NodeJS.ProcessEnv;
    readonly cwd?: string;
}

export class Daemon {
    private exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
    private readonly exitPromise: Promise<void>;

    constructor(
        readonly name: string,
        readonly child: ChildProcess,
        readonly logFile: string,
    ) {
        this.exitPromise = new Promise((resolve) => {
            child.on("exit", (code, signal) => {
                this.exited = { code, signal };
                resolve();
            });
            child.on("error", () => {
                this.exited = { code: -1, signal: null };
                resolve();
            });
        });
    }

    get pid(): number {
        if (this.child.pid === undefined) throw new Error(`${this.name} has no pid (did it start?)`);
        return this.child.pid;
    }

    get running(): boolean {
        return this.exited === undefined;
    }

    exitStatus(): { code: number | null; signal: NodeJS.Signals | null } | undefined {
        return this.exited;
    }

    log(secrets: readonly string[] = []): string {
        try {
            return redact(fs.readFileSync(this.logFile, "utf8"), secrets);
        } catch {
            return "";
        }
    }

    logTail(secrets: readonly string[] = [], lines = 40): string {
        return this.log(secrets).split("\n").slice(-lines).join("\n");
    }

    /** Throw (FatalWait) when the daemon has exited, with its log tail. */
    assertRunning(secrets: readonly string[] = []): void {
        if (this.exited)
            throw new FatalWait(`${this.name} exited (code ${this.exited.code}, signal ${this.exited.signal}); log tail:\n${this.logTail(secrets)}`);
    }

    /** Wait for the process to exit by itself, bounded. */
    async waitExit(timeoutMs = 10000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
        await waitFor(() => this.exited !== undefined, { what: `${this.name} to exit`, timeoutMs });
        return this.exited!;
    }

    /** SIGTERM, then SIGKILL after `graceMs`; resolves when the process is gone. */
    async stop(graceMs = 10000): Promise<void> {
        if (this.exited || this.child.pid === undefined) return;
        try {
            process.kill(this.child.pid, "SIGTERM");
        } catch {
            /* already gone */
        }
        const t = setTimeout(() => {
            try {
                if (!this.exited && this.child.pid !== undefined) process.kill(this.child.pid, "SIGKILL");
            } catch {
                /* already gone */
            }
        }, graceMs);
        await this.exitPromise;
        clearTimeout(t);
    }
}

const live = new Set<string>();
let hookInstalled = false;
function installExitHook(): void {
    if (hookInstalled) return;
    hookInstalled = true;
    process.on("exit", () => {
        for (const name of live) {
            try {
                execFileSync("ip", ["netns", "del", name], { stdio: "ignore" });
            } catch {
                /* best effort */
            }
        }
    });
}

export class TestNetns {
    private readonly daemons: Daemon[] = [];
    readonly workDir: string;

    private constructor(readonly name: string) {
        this.workDir = fs.mkdtempSync(path.join(os.tmpdir(), `${name}-`));
        // daemons that drop privileges (mysql, redis) must reach their files below it
        fs.chmodSync(this.workDir, 0o755);
    }

    /** /run/netns/<name>, for nsenter --net= */
    get path(): string {
        return `/run/netns/${this.name}`;
    }

    private static async add(label: string): Promise<TestNetns> {
        const safe = label.replace(/[^a-z0-9]/gi, "").slice(0, 6) || "ns";
        const name = `${NETNS_PREFIX}${safe}-${crypto.randomBytes(3).toString("hex")}`;
        await runOk("ip", ["netns", "add", name]);
        live.add(name);
        installExitHook();
        const ns = new TestNetns(name);
        await runOk("ip", ["-n", name, "link", "set", "lo", "up"]);
        return ns;
    }

    /**
     * A namespace whose interface (one end of a veth pair whose other end
     * stays inside, unconfigured) holds `addresses`. `dummy` interfaces would
     * be simpler but need a kernel module this machine cannot load.
     */
    static async create(label: string, iface: InterfaceSpec): Promise<TestNetns> {
        const ns = await TestNetns.add(label);
        try {
            const ifname = iface.ifname ?? "eth0";
            await runOk("ip", ["-n", ns.name, "link", "add", ifname, "type", "veth", "peer", "name", `${ifname}-end`]);
            await runOk("ip", ["-n", ns.name, "link", "set", `${ifname}-end`, "up"]);
            await ns.configure(ifname, iface.addresses);
            return ns;
        } catch (e) {
            await ns.destroy();
            throw e;
        }
    }

    /**
     * Two namespaces joined by one veth pair (interface `ifname` on both
     * sides), each holding its addresses, with host routes to the other's
     * addresses only (no default route): like two hosts in different subnets
     * of a VPC that can reach each other.
     */
    static async createPair(label: string, a: InterfaceSpec, b: InterfaceSpec): Promise<[TestNetns, TestNetns]> {
        const na = await TestNetns.add(`${label}a`);
        let nb: TestNetns | undefined;
        try {
            nb = await TestNetns.add(`${label}b`);
            const ifa = a.ifname ?? "eth0";
            const ifb = b.ifname ?? "eth0";
            await runOk("ip", ["-n", na.name, "link", "add", ifa, "type", "veth", "peer", "name", ifb, "netns", nb.name]);
            await na.configure(ifa, a.addresses);
            await nb.configure(ifb, b.addresses);
            for (const addr of b.addresses) await runOk("ip", ["-n", na.name, "route", "add", `${addr.split("/")[0]}/32`, "dev", ifa]);
            for (const addr of a.addresses) await runOk("ip", ["-n", nb.name, "route", "add", `${addr.split("/")[0]}/32`, "dev", ifb]);
            return [na, nb];
        } catch (e) {
            await na.destroy();
            await nb?.destroy();
            throw e;
        }
    }

    private async configure(ifname: string, addresses: readonly string[]): Promise<void> {
        await runOk("ip", ["-n", this.name, "link", "set", ifname, "up"]);
        for (const a of addresses) await runOk("ip", ["-n", this.name, "addr", "add", a.includes("/") ? a : `${a}/32`, "dev", ifname]);
    }

    /** Cut or restore the link (both veth ends go down with one). */
    async setLink(ifname: string, up: boolean): Promise<void> {
        await runOk("ip", ["-n", this.name, "link", "set", ifname, up ? "up" : "down"]);
    }

    /** Run a command inside the namespace and collect its output. */
    run(cmd: string, args: readonly string[] = [], opts: RunOptions = {}): Promise<RunResult> {
        return run("nsenter", [`--net=${this.path}`, "--", cmd, ...args], opts);
    }

    runOk(cmd: string, args: readonly string[] = [], opts: RunOptions = {}): Promise<RunResult> {
        return runOk("nsenter", [`--net=${this.path}`, "--", cmd, ...args], opts);
    }

    /** Start a long-running process inside the namespace (it must stay in the foreground); output goes to a log file. */
    spawnDaemon(name: string, cmd: string, args: readonly string[], opts: DaemonOptions = {}): Daemon {
        const logFile = path.join(this.workDir, `${name}.log`);
        const fd = fs.openSync(logFile, "a");
        try {
            // nsenter without --fork execs the command: the child's pid is the daemon's
            const child = spawn("nsenter", [`--net=${this.path}`, "--", cmd, ...args], {
                stdio: ["ignore", fd, fd],
                env: opts.env ?? process.env,
                cwd: opts.cwd,
                detached: true,
            });
            const d = new Daemon(name, child, logFile);
            this.daemons.push(d);
            return d;
        } finally {
            fs.closeSync(fd);
        }
    }

    /** Sockets listening (tcp) or bound (udp) on ip:port inside the namespace. */
    async isListening(proto: "tcp" | "udp", ip: string, port: number): Promise<boolean> {
        const r = await this.run("ss", ["-Hn", proto === "tcp" ? "-lt" : "-lu", "src", `${ip}:${port}`]);
        return r.code === 0 && r.stdout.trim() !== "";
    }

    /** Every listening tcp / bound udp local address:port in the namespace. */
    async listeningSockets(proto: "tcp" | "udp"): Promise<string[]> {
        const r = await this.runOk("ss", ["-Hn", proto === "tcp" ? "-lt" : "-lua"]);
        return r.stdout
            .split("\n")
            .filter((l) => l.trim())
            .map((l) => l.trim().split(/\s+/)[3]);
    }

    /** Wait (bounded) until `daemon` listens on ip:port; fails at once if it exits. */
    async waitForPort(daemon: Daemon, proto: "tcp" | "udp", ip: string, port: number, timeoutMs = 20000, secrets: readonly string[] = []): Promise<void> {
        await waitFor(
            async () => {
                daemon.assertRunning(secrets);
                return this.isListening(proto, ip, port);
            },
            { what: `${daemon.name} to listen on ${proto} ${ip}:${port}`, timeoutMs, intervalMs: 100 },
        );
    }

    /** Stop every daemon started here, delete the namespace and its work dir. */
    async destroy(): Promise<void> {
        await Promise.all(this.daemons.map((d) => d.stop()));
        await run("ip", ["netns", "del", this.name]);
        live.delete(this.name);
        fs.rmSync(this.workDir, { recursive: true, force: true });
    }
}

/** Namespaces left by an earlier crashed run (for a leftover check). */
export function leftoverNamespaces(): string[] {
    try {
        return execFileSync("ip", ["netns", "list"], { encoding: "utf8" })
            .split("\n")
            .map((l) => l.split(" ")[0])
            .filter((n) => n.startsWith(NETNS_PREFIX));
    } catch {
        return [];
    }
}

/** True when the tests can create namespaces (root + iproute2 + nsenter). */
export function canUseNetns(): boolean {
    if (typeof process.getuid === "function" && process.getuid() !== 0) return false;
    return hasCommand("ip") && hasCommand("nsenter") && hasCommand("ss");
}

export function hasCommand(cmd: string): boolean {
    const dirs = (process.env.PATH ?? "").split(":").concat(["/usr/sbin", "/sbin", "/usr/bin", "/bin"]);
    return dirs.some((d) => {
        try {
            fs.accessSync(path.join(d, cmd), fs.constants.X_OK);
            return true;
        } catch {
            return false;
        }
    });
}

/**
 * Skip a daemon test when its tool is missing on a developer's machine, but
 * fail in CI (CI=true), where a missing package is a broken install step.
 */
export function requireTools(ctx: Mocha.Context, ...cmds: string[]): void {
    const missing = cmds.filter((c) => !hasCommand(c));
    const noNetns = !canUseNetns();
    if (!missing.length && !noNetns) return;
    const why = noNetns ? "needs root, ip, nsenter and ss for network namespaces" : `needs ${missing.join(", ")}`;
    if (process.env.CI) throw new Error(`daemon test ${why} (install it in scripts/install-deps.sh)`);
    ctx.skip();
}
