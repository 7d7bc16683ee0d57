// VM-like local hosts for tests and the lab: each host is its own network
// namespace on a lab bridge, an overlay root over the cached Debian base, and
// systemd as PID 1 with sshd, reached with a per-lab deploy key and a lab-only
// known_hosts. The bridge lives in a namespace of its own (the "lan"), so the
// machine's own routing never sees lab addresses, hosts have no default
// route, and two labs with the same IP plan do not collide. Hosts carry the
// model's private addresses; the lan holds each subnet's first address (the
// one AWS keeps for its router) so the SSH client can reach them.
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { spawn, execFileSync } from "child_process";
import { intToIp, ipToInt, parseCidr } from "../components/ipplan";
import { ensureBase, LabBase } from "./base";

export const LAB_PREFIX = "ifbt-";
const RUN_ROOT = "/run/ifbus-lab";

export interface LabHostSpec {
    /** host name from the model, e.g. cache-1 */
    readonly name: string;
    readonly privateIp: string;
    /** the CIDR of the host's subnet */
    readonly subnetCidr: string;
    /** where SSH reaches the host from the lab's SSH namespace (default: privateIp, from the lan) */
    readonly sshIp?: string;
}

/**
 * The host's network interface: Debian 12 on EC2 Nitro instances names it
 * ens5, and the rendered keepalived.conf names it so (components/render/keepalived.ts).
 */
export const HOST_INTERFACE = "ens5";

export interface AddHostOptions {
    readonly bootTimeoutMs?: number;
    /** machine paths bind-mounted read-only at the same path inside the host */
    readonly bindMounts?: readonly string[];
    /** extra routes inside the host, as `ip route add` arguments (never a default route) */
    readonly routes?: readonly string[][];
    /** called with the host's root and namespace after both exist, before PID 1 starts */
    readonly prepare?: (ctx: { readonly root: string; readonly netns: string }) => void;
}

export interface RunResult {
    readonly code: number;
    readonly stdout: string;
    readonly stderr: string;
}

export interface LabHost extends LabHostSpec {
    readonly netns: string;
    /** the host's veth end on the lan bridge */
    readonly bridgePort: string;
    /** PID of the host's systemd, seen from the machine */
    readonly pid1: number;
    readonly rundir: string;
    /** milliseconds from starting PID 1 to a successful SSH command */
    readonly bootMs: number;
}

function run(cmd: string, args: string[], opts: { input?: string; allowFail?: boolean } = {}): string {
    try {
        return execFileSync(cmd, args, { input: opts.input, stdio: ["pipe", "pipe", "pipe"], encoding: "utf8" });
    } catch (e) {
        if (opts.allowFail) return "";
        const err = e as { stderr?: string; message: string };
        throw new Error(`${cmd} ${args.join(" ")} failed: ${err.stderr?.trim() || err.message}`);
    }
}

/** Where the unified (v2) cgroup hierarchy is mounted: hybrid hosts put it under /sys/fs/cgroup/unified. */
function cgroup2Root(): string {
    for (const p of ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]) if (fs.existsSync(path.join(p, "cgroup.procs")) && fs.existsSync(path.join(p, "cgroup.subtree_control"))) return p;
    throw new Error("no cgroup v2 hierarchy found (needed for systemd as PID 1 in lab hosts)");
}

/** Remove a cgroup subtree, deepest first; a cgroup empties a moment after its last process is reaped, so retry briefly. */
function rmCgroupTree(dir: string, deadline = Date.now() + 5000): void {
    if (!fs.existsSync(dir)) return;
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) rmCgroupTree(path.join(dir, e.name), deadline);
    for (;;) {
        try {
            fs.rmdirSync(dir);
            return;
        } catch {
            if (Date.now() > deadline) return; // still populated: leftovers() reports it
            execFileSync("sleep", ["0.05"]);
        }
    }
}

function sleep(ms: number): Promise<void> {
    return new Promise((r) => setTimeout(r, ms));
}

/** Poll `probe` until it returns a value, at most `timeoutMs`. */
export async function pollUntil<T>(what: string, timeoutMs: number, probe: () => T | undefined | Promise<T | undefined>, intervalMs = 100): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
        const v = await probe();
        if (v !== undefined) return v;
        if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
        await sleep(intervalMs);
    }
}

/** Poll a yes/no `probe` until it says yes, at most `timeoutMs`. */
export async function waitUntil(what: string, timeoutMs: number, probe: () => boolean | Promise<boolean>, intervalMs = 100): Promise<void> {
    await pollUntil(what, timeoutMs, async () => ((await probe()) ? true : undefined), intervalMs);
}

export class Lab {
    readonly lanNs: string;
    readonly dir: string;
    readonly keyFile: string;
    readonly knownHosts: string;
    readonly hosts = new Map<string, LabHost>();
    private readonly cgroupDir: string;
    private vethCount = 0;
    /** namespace the SSH client runs in (default: the lan) */
    sshNetns: string;

    private constructor(
        readonly id: string,
        readonly base: LabBase,
        readonly subnets: readonly string[],
        readonly vpcCidr: string,
    ) {
        this.sshNetns = `${LAB_PREFIX}${id}-lan`;
        this.lanNs = `${LAB_PREFIX}${id}-lan`;
        this.dir = path.join(RUN_ROOT, id);
        this.keyFile = path.join(this.dir, "deploy_key");
        this.knownHosts = path.join(this.dir, "known_hosts");
        this.cgroupDir = path.join(cgroup2Root(), `ifbus-lab-${id}`);
    }

    /** The public half of the lab's deploy key (OpenSSH line). */
    get publicKey(): string {
        return fs.readFileSync(`${this.keyFile}.pub`, "utf8").trim();
    }

    /** The private half (for a Pulumi-style connection). */
    get privateKey(): string {
        return fs.readFileSync(this.keyFile, "utf8");
    }

    /**
     * A lab network for the given subnets (all inside `vpcCidr`): builds or
     * reuses the base root, creates the lan namespace with its bridge and a
     * fresh deploy key.
     */
    static create(opts: { subnets: readonly string[]; vpcCidr: string; id?: string; base?: LabBase }): Lab {
        const id = opts.id ?? crypto.randomBytes(3).toString("hex");
        const lab = new Lab(id, opts.base ?? ensureBase(), opts.subnets, opts.vpcCidr);
        try {
            fs.mkdirSync(lab.dir, { recursive: true, mode: 0o700 });
            run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", `ifbus-lab-${id}`, "-f", lab.keyFile]);
            fs.writeFileSync(lab.knownHosts, "");
            fs.mkdirSync(lab.cgroupDir, { recursive: true });
            run("ip", ["netns", "add", lab.lanNs]);
            run("ip", ["-n", lab.lanNs, "link", "set", "lo", "up"]);
            run("ip", ["-n", lab.lanNs, "link", "add", "br0", "type", "bridge"]);
            run("ip", ["-n", lab.lanNs, "link", "set", "br0", "up"]);
            for (const s of opts.subnets) {
                const c = parseCidr(s);
                run("ip", ["-n", lab.lanNs, "addr", "add", `${intToIp(c.base + 1)}/${c.prefix}`, "dev", "br0"]);
            }
        } catch (e) {
            lab.destroy();
            throw e;
        }
        lab.save();
        return lab;
    }

    /** Where a lab keeps its state for later commands (`lab status`, `lab down`, a second `lab up`). */
    static stateFile(id: string): string {
        return path.join(RUN_ROOT, id, "lab.json");
    }

    static exists(id: string): boolean {
        return fs.existsSync(Lab.stateFile(id));
    }

    /** A lab another process created, from its state file. */
    static attach(id: string): Lab {
        const st = JSON.parse(fs.readFileSync(Lab.stateFile(id), "utf8")) as {
            base: LabBase;
            subnets: string[];
            vpcCidr: string;
            sshNetns: string;
            vethCount: number;
            hosts: LabHost[];
        };
        const lab = new Lab(id, st.base, st.subnets, st.vpcCidr);
        lab.sshNetns = st.sshNetns;
        lab.vethCount = st.vethCount;
        for (const h of st.hosts) lab.hosts.set(h.name, h);
        return lab;
    }

    /** Write the lab's state (no secret in it: the deploy key stays in its own 0600 file). */
    save(): void {
        if (!fs.existsSync(this.dir)) return;
        const st = { base: this.base, subnets: this.subnets, vpcCidr: this.vpcCidr, sshNetns: this.sshNetns, vethCount: this.vethCount, hosts: [...this.hosts.values()] };
        fs.writeFileSync(`${Lab.stateFile(this.id)}.new`, JSON.stringify(st, null, 1));
        fs.renameSync(`${Lab.stateFile(this.id)}.new`, Lab.stateFile(this.id));
    }

    /** The cgroup (v2) directory of a host: its systemd's tree, with cpu.stat per unit. */
    cgroupOf(hostName: string): string {
        return path.join(this.cgroupDir, hostName);
    }

    /** The veth end on the lan bridge that carries a host's link (down = the host's cable is cut). */
    bridgePortOf(hostName: string): string {
        const h = this.hosts.get(hostName);
        if (!h) throw new Error(`lab ${this.id} has no host ${hostName}`);
        return h.bridgePort;
    }

    /** Boot a host: namespace, veth on the bridge, overlay root, sshd with the deploy key; resolves once SSH works. */
    async addHost(spec: LabHostSpec, opts: AddHostOptions = {}): Promise<LabHost> {
        if (this.hosts.has(spec.name)) throw new Error(`lab ${this.id} already has a host ${spec.name}`);
        const netns = `${LAB_PREFIX}${this.id}-${spec.name}`;
        const rundir = path.join(this.dir, "hosts", spec.name);
        const root = path.join(rundir, "root");
        const prefix = parseCidr(spec.subnetCidr).prefix;
        const veth = `h${++this.vethCount}`;
        // registered before anything is created so destroy() cleans up a half-built host too
        const partial: LabHost = { ...spec, netns, pid1: 0, rundir, bootMs: 0, bridgePort: veth };
        this.hosts.set(spec.name, partial);
        this.save();

        run("ip", ["netns", "add", netns]);
        run("ip", ["-n", this.lanNs, "link", "add", veth, "type", "veth", "peer", "name", HOST_INTERFACE, "netns", netns]);
        run("ip", ["-n", this.lanNs, "link", "set", veth, "master", "br0", "up"]);
        run("ip", ["-n", netns, "link", "set", "lo", "up"]);
        run("ip", ["-n", netns, "addr", "add", `${spec.privateIp}/${prefix}`, "dev", HOST_INTERFACE]);
        run("ip", ["-n", netns, "link", "set", HOST_INTERFACE, "up"]);
        // the other subnets of the VPC are on the same bridge: on-link, never a default route
        if (this.vpcCidr !== spec.subnetCidr) run("ip", ["-n", netns, "route", "add", this.vpcCidr, "dev", HOST_INTERFACE]);
        for (const r of opts.routes ?? []) {
            if (r.includes("default") || r[0] === "0.0.0.0/0") throw new Error(`lab host ${spec.name}: no default route in the lab (${r.join(" ")})`);
            run("ip", ["-n", netns, "route", "add", ...r]);
        }

        fs.mkdirSync(rundir, { recursive: true });
        run("mount", ["-t", "tmpfs", "-o", "mode=0700,size=2g", "tmpfs", rundir]);
        for (const d of ["upper", "work", "root"]) fs.mkdirSync(path.join(rundir, d));
        run("mount", ["-t", "overlay", "overlay", "-o", `lowerdir=${this.base.rootfs},upperdir=${rundir}/upper,workdir=${rundir}/work`, root]);
        for (const m of opts.bindMounts ?? []) {
            fs.mkdirSync(path.join(root, m), { recursive: true });
            run("mount", ["--bind", "-o", "ro", m, path.join(root, m)]);
        }

        fs.writeFileSync(path.join(root, "etc/hostname"), `${spec.name}\n`);
        fs.writeFileSync(path.join(root, "etc/hosts"), `127.0.0.1 localhost\n${spec.privateIp} ${spec.name}\n`);
        fs.mkdirSync(path.join(root, "root/.ssh"), { recursive: true, mode: 0o700 });
        fs.writeFileSync(path.join(root, "root/.ssh/authorized_keys"), `${this.publicKey}\n`, { mode: 0o600 });
        fs.mkdirSync(path.join(root, "etc/ssh/sshd_config.d"), { recursive: true });
        fs.writeFileSync(path.join(root, "etc/ssh/sshd_config.d/ifbus-lab.conf"), "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUseDNS no\n");
        run("ssh-keygen", ["-A", "-f", root]);
        const hostKey = fs.readFileSync(path.join(root, "etc/ssh/ssh_host_ed25519_key.pub"), "utf8").trim().split(" ").slice(0, 2).join(" ");
        fs.appendFileSync(this.knownHosts, `${spec.privateIp} ${hostKey}\n`);
        if (spec.sshIp && spec.sshIp !== spec.privateIp) fs.appendFileSync(this.knownHosts, `${spec.sshIp} ${hostKey}\n`);
        opts.prepare?.({ root, netns });
        const console = path.join(rundir, "console.log");
        fs.writeFileSync(console, "");

        const t0 = Date.now();
        const pid1 = await this.startInit(spec.name);
        await this.waitBooted(spec.name, pid1, opts.bootTimeoutMs ?? 60_000);
        const booted: LabHost = { ...this.hosts.get(spec.name)!, bootMs: Date.now() - t0 };
        this.hosts.set(spec.name, booted);
        this.save();
        return booted;
    }

    /** Start (or start again, after a kill) a host's PID 1 on its existing root and namespace. */
    private async startInit(name: string): Promise<number> {
        const h = this.hosts.get(name)!;
        const root = path.join(h.rundir, "root");
        const console = path.join(h.rundir, "console.log");
        const cg = path.join(this.cgroupDir, name);
        fs.mkdirSync(cg, { recursive: true });
        const child = spawn(
            "bash",
            [
                "-c",
                'echo $$ >"$1/cgroup.procs" && exec nsenter --net="/run/netns/$2" unshare --mount --pid --uts --ipc --cgroup --fork --propagation private bash "$3" "$4" "$5"',
                "lab-host",
                cg,
                h.netns,
                path.join(__dirname, "host-init.sh"),
                root,
                console,
            ],
            { detached: true, stdio: ["ignore", "ignore", "pipe"] },
        );
        let spawnErr = "";
        child.stderr?.on("data", (d) => (spawnErr += d.toString()));
        child.unref();
        const unsharePid = child.pid!;
        const pid1 = await pollUntil(`PID 1 of ${name}`, 10_000, () => {
            if (child.exitCode !== null) throw new Error(`lab host ${name} did not start: ${spawnErr.trim()}`);
            const f = `/proc/${unsharePid}/task/${unsharePid}/children`;
            const kids = fs.existsSync(f) ? fs.readFileSync(f, "utf8").trim() : "";
            return kids ? Number(kids.split(/\s+/)[0]) : undefined;
        });
        this.hosts.set(name, { ...h, pid1 });
        this.save();
        return pid1;
    }

    private async waitBooted(name: string, pid1: number, timeoutMs: number): Promise<void> {
        const h = this.hosts.get(name)!;
        const console = path.join(h.rundir, "console.log");
        await pollUntil(`SSH on ${name} (${h.sshIp ?? h.privateIp}); console: ${console}`, timeoutMs, async () => {
            if (!fs.existsSync(`/proc/${pid1}`)) throw new Error(`lab host ${name} died while booting; console:\n${fs.readFileSync(console, "utf8").slice(-2000)}`);
            const r = await this.ssh(name, "true", { connectTimeout: 2 });
            return r.code === 0 ? true : undefined;
        }, 200);
    }

    /** Is the host's PID 1 running? */
    isRunning(hostName: string): boolean {
        const h = this.hosts.get(hostName);
        return !!h && h.pid1 > 0 && fs.existsSync(`/proc/${h.pid1}`);
    }

    /** Crash a host: SIGKILL to its PID 1 takes every process of the host along (like pulling the power). */
    async killHost(hostName: string): Promise<void> {
        const h = this.hosts.get(hostName);
        if (!h) throw new Error(`lab ${this.id} has no host ${hostName}`);
        try {
            process.kill(h.pid1, "SIGKILL");
        } catch {
            /* already gone */
        }
        await pollUntil(`PID 1 of ${hostName} to exit`, 10_000, () => (fs.existsSync(`/proc/${h.pid1}`) ? undefined : true), 50);
    }

    /** Boot a killed host again on the root it had (its disk survives, as on a rebooted instance). */
    async rebootHost(hostName: string, timeoutMs = 60_000): Promise<void> {
        if (this.isRunning(hostName)) throw new Error(`lab host ${hostName} is still running`);
        const pid1 = await this.startInit(hostName);
        await this.waitBooted(hostName, pid1, timeoutMs);
    }

    /** Cut (false) or restore (true) a host's link on the bridge: the host runs on, unreachable. */
    setLink(hostName: string, up: boolean): void {
        run("ip", ["-n", this.lanNs, "link", "set", this.bridgePortOf(hostName), up ? "up" : "down"]);
    }

    private sshArgs(ip: string, connectTimeout: number): string[] {
        return [
            `--net=/run/netns/${this.sshNetns}`,
            "ssh",
            "-i", this.keyFile,
            "-o", "IdentitiesOnly=yes",
            "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=yes",
            "-o", `UserKnownHostsFile=${this.knownHosts}`,
            "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", `ConnectTimeout=${connectTimeout}`,
            "-o", "LogLevel=ERROR",
            "-F", "/dev/null",
            `root@${ip}`,
        ];
    }

    /** Run `command` on a host over real SSH, as the remote shell sees it (the way @pulumi/command runs `create`). */
    ssh(hostName: string, command: string, opts: { stdin?: string; connectTimeout?: number; timeoutMs?: number } = {}): Promise<RunResult> {
        const host = this.hosts.get(hostName);
        if (!host) throw new Error(`lab ${this.id} has no host ${hostName}`);
        return new Promise((resolve, reject) => {
            const p = spawn("nsenter", [...this.sshArgs(host.sshIp ?? host.privateIp, opts.connectTimeout ?? 5), command], { stdio: ["pipe", "pipe", "pipe"] });
            let stdout = "";
            let stderr = "";
            p.stdout.on("data", (d) => (stdout += d.toString()));
            p.stderr.on("data", (d) => (stderr += d.toString()));
            const timer = opts.timeoutMs ? setTimeout(() => p.kill("SIGKILL"), opts.timeoutMs) : undefined;
            p.on("error", reject);
            p.on("close", (code, signal) => {
                if (timer) clearTimeout(timer);
                resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr });
            });
            p.stdin.on("error", () => undefined);
            p.stdin.end(opts.stdin ?? "");
        });
    }

    /** ssh() that throws on a non-zero exit; returns trimmed stdout. */
    async sh(hostName: string, command: string): Promise<string> {
        const r = await this.ssh(hostName, command);
        if (r.code !== 0) throw new Error(`${hostName}: \`${command}\` exited ${r.code}: ${r.stderr.trim()}`);
        return r.stdout.trim();
    }

    /** Tear everything down: kill each host's PID 1 (its whole PID namespace dies), unmount, delete namespaces. */
    destroy(): void {
        for (const h of this.hosts.values()) {
            if (h.pid1) {
                try {
                    process.kill(h.pid1, "SIGKILL");
                } catch {
                    /* already gone */
                }
                const deadline = Date.now() + 5000;
                while (fs.existsSync(`/proc/${h.pid1}`) && Date.now() < deadline) execFileSync("sleep", ["0.05"]);
            }
            run("umount", ["-R", path.join(h.rundir, "root")], { allowFail: true });
            run("umount", [h.rundir], { allowFail: true });
            run("ip", ["netns", "del", h.netns], { allowFail: true });
        }
        this.hosts.clear();
        run("ip", ["netns", "del", this.lanNs], { allowFail: true });
        rmCgroupTree(this.cgroupDir);
        fs.rmSync(this.dir, { recursive: true, force: true });
    }

    /** What a teardown left behind (namespaces, mounts, cgroups of this lab): empty when clean. */
    leftovers(): string[] {
        const out: string[] = [];
        const ns = run("ip", ["netns", "list"], { allowFail: true });
        for (const l of ns.split("\n")) if (l.startsWith(`${LAB_PREFIX}${this.id}-`)) out.push(`netns ${l.split(" ")[0]}`);
        for (const l of fs.readFileSync("/proc/self/mountinfo", "utf8").split("\n")) if (l.includes(this.dir)) out.push(`mount ${l.split(" ")[4]}`);
        if (fs.existsSync(this.cgroupDir)) out.push(`cgroup ${this.cgroupDir}`);
        return out;
    }
}

/**
 * Tear down a lab left behind by a killed process, from what is on disk and
 * in the kernel: every process inside its host namespaces, their mounts,
 * namespaces and cgroups. `npx tsx lab/cleanup.ts` runs it for every lab.
 */
export function cleanupLab(id: string): void {
    const dir = path.join(RUN_ROOT, id);
    const names = fs.existsSync(path.join(dir, "hosts")) ? fs.readdirSync(path.join(dir, "hosts")) : [];
    for (const name of names) {
        const ns = `${LAB_PREFIX}${id}-${name}`;
        for (const pid of run("ip", ["netns", "pids", ns], { allowFail: true }).split(/\s+/).filter(Boolean)) {
            try {
                process.kill(Number(pid), "SIGKILL");
            } catch {
                /* gone */
            }
        }
        const deadline = Date.now() + 5000;
        while (run("ip", ["netns", "pids", ns], { allowFail: true }).trim() && Date.now() < deadline) execFileSync("sleep", ["0.05"]);
        run("umount", ["-R", path.join(dir, "hosts", name, "root")], { allowFail: true });
        run("umount", [path.join(dir, "hosts", name)], { allowFail: true });
        run("ip", ["netns", "del", ns], { allowFail: true });
    }
    // the lan and any other namespace of this lab (e.g. the internet), with whatever runs inside
    const rest = run("ip", ["netns", "list"], { allowFail: true })
        .split("\n")
        .map((l) => l.split(" ")[0])
        .filter((n) => n.startsWith(`${LAB_PREFIX}${id}-`));
    for (const ns of rest) {
        for (const pid of run("ip", ["netns", "pids", ns], { allowFail: true }).split(/\s+/).filter(Boolean)) {
            try {
                process.kill(Number(pid), "SIGKILL");
            } catch {
                /* gone */
            }
        }
        run("ip", ["netns", "del", ns], { allowFail: true });
    }
    rmCgroupTree(path.join(cgroup2Root(), `ifbus-lab-${id}`));
    fs.rmSync(dir, { recursive: true, force: true });
}

export function listLabs(): string[] {
    return fs.existsSync(RUN_ROOT) ? fs.readdirSync(RUN_ROOT) : [];
}

/** The first address of a subnet: the lab's stand-in for the AWS router, never a host. */
export function routerAddress(subnetCidr: string): string {
    return intToIp(parseCidr(subnetCidr).base + 1);
}

export { ipToInt };
