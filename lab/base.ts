// The lab's base root filesystem: Debian bookworm with systemd, sshd and the
// gateway's distribution packages, built once with debootstrap and cached
// under /var/cache/ifbus-lab/ keyed by a hash of its package list. Hosts use
// it read-only as the lower layer of their overlay root.
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { execFileSync } from "child_process";

export const LAB_CACHE_DIR = process.env.IFBUS_LAB_CACHE ?? "/var/cache/ifbus-lab";

/** What every lab host needs to behave like a booted VM reachable over SSH. */
export const BOOT_PACKAGES = ["systemd", "systemd-sysv", "dbus", "openssh-server", "iproute2", "procps", "ca-certificates", "curl", "socat", "openssl"];

/**
 * The gateway's packages that come from Debian (OpenSIPS is not in Debian:
 * lab proxies get a local build bind-mounted, see IFBUS_OPENSIPS_PREFIX).
 * rtpengine-utils brings rtpengine-ctl; coturn brings turnutils_stunclient;
 * python3 runs a local opensips-cli (a venv on the system Python, which
 * keepalived's health and notify scripts call on the proxies); OpenSIPS'
 * httpd module links libmicrohttpd (the official opensips-http-modules
 * depends on it). Other libraries a local OpenSIPS needs are added by
 * lab/opensips.ts (a base of its own).
 */
export const SERVICE_PACKAGES = ["redis-server", "rtpengine-daemon", "rtpengine-utils", "keepalived", "coturn", "mariadb-server", "mariadb-client", "galera-4", "mariadb-backup", "python3", "libmicrohttpd12"];

export const BASE_PACKAGES: readonly string[] = [...BOOT_PACKAGES, ...SERVICE_PACKAGES];

export interface LabBase {
    /** directory holding rootfs/, complete, timings, packages */
    readonly dir: string;
    /** the read-only root filesystem */
    readonly rootfs: string;
    /** true when this call built it (false: taken from the cache) */
    readonly built: boolean;
    /** seconds the build took (debootstrap, packages), from its timings file */
    readonly timings: Record<string, number>;
}

export function baseKey(packages: readonly string[]): string {
    const list = [...new Set(packages)].sort().join("\n");
    return crypto.createHash("sha256").update(`bookworm minbase\n${list}`).digest("hex").slice(0, 12);
}

/** The Debian mirror apt on this machine already uses (deb822 or one-line sources). */
export function aptMirror(): string {
    const dir = "/etc/apt/sources.list.d";
    const files = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith(".sources") || f.endsWith(".list")).map((f) => path.join(dir, f)) : [];
    if (fs.existsSync("/etc/apt/sources.list")) files.push("/etc/apt/sources.list");
    for (const file of files) {
        const text = fs.readFileSync(file, "utf8");
        for (const stanza of text.split(/\n\s*\n/)) {
            const uris = /^URIs:\s*(\S+)/m.exec(stanza)?.[1];
            const suites = /^Suites:\s*(.+)$/m.exec(stanza)?.[1] ?? "";
            if (uris && /\bbookworm\b/.test(suites) && !uris.includes("security")) return uris;
        }
        const line = /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+bookworm\s/m.exec(text);
        if (line && !line[1].includes("security")) return line[1];
    }
    throw new Error("no Debian bookworm mirror found in /etc/apt/sources.list{,.d}: the lab builds its base from the mirror apt uses");
}

function readTimings(dir: string): Record<string, number> {
    const f = path.join(dir, "timings");
    if (!fs.existsSync(f)) return {};
    return Object.fromEntries(
        fs
            .readFileSync(f, "utf8")
            .split("\n")
            .filter((l) => l.includes("="))
            .map((l) => [l.split("=")[0], Number(l.split("=")[1])]),
    );
}

/**
 * Build the base (about 4 minutes) or reuse the cached one. Concurrent callers
 * serialise on a flock, so two test runs never build the same base twice.
 */
export function ensureBase(packages: readonly string[] = BASE_PACKAGES, timeoutMs = 15 * 60_000): LabBase {
    const dir = path.join(LAB_CACHE_DIR, `base-${baseKey(packages)}`);
    if (fs.existsSync(path.join(dir, "complete"))) return { dir, rootfs: path.join(dir, "rootfs"), built: false, timings: readTimings(dir) };
    fs.mkdirSync(LAB_CACHE_DIR, { recursive: true });
    const script = path.join(__dirname, "build-base.sh");
    try {
        execFileSync("flock", [path.join(LAB_CACHE_DIR, "build.lock"), "bash", script, dir, aptMirror(), ...[...new Set(packages)].sort()], {
            stdio: ["ignore", "pipe", "pipe"],
            timeout: timeoutMs,
        });
    } catch (e) {
        const err = e as { stderr?: Buffer; message: string };
        throw new Error(`building the lab base in ${dir} failed: ${err.stderr?.toString().trim() || err.message}`);
    }
    return { dir, rootfs: path.join(dir, "rootfs"), built: true, timings: readTimings(dir) };
}

/** Print where the base is (building it if needed): `npx tsx lab/base.ts`. */
if (require.main === module) {
    const t0 = Date.now();
    const base = ensureBase();
    console.log(JSON.stringify({ ...base, wallSeconds: Math.round((Date.now() - t0) / 1000) }));
    execFileSync("du", ["-sh", base.rootfs], { stdio: "inherit" });
}
