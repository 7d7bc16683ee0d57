// What the lab tests and the bench share: whether this machine can run a lab
// (and why not), the lab's OpenSIPS, small probes over SSH.
import * as fs from "fs";
import * as path from "path";
import { findLocalOpensips, isLocalOpensips, LocalOpensips, opensipsPrefixOnPath, OPENSIPS_PREFIX_ENV } from "../../lab/opensips";
import type { GatewayLab } from "../../lab/gateway";
import { hasCommand } from "../support/netns";
import { PORTS } from "../../components/ports";

/** The local OpenSIPS for lab proxies: IFBUS_OPENSIPS_PREFIX, else the prefix of an `opensips` on PATH. */
export function labOpensips(): LocalOpensips | { reason: string } {
    const prefix = process.env[OPENSIPS_PREFIX_ENV] ?? opensipsPrefixOnPath();
    if (!prefix)
        return {
            reason: `no OpenSIPS for the lab's proxies: ${OPENSIPS_PREFIX_ENV} is unset and no opensips is on PATH (the official apt repository is out of the lab's reach); install OpenSIPS 3.6 and set ${OPENSIPS_PREFIX_ENV}`,
        };
    const o = findLocalOpensips(prefix);
    if (isLocalOpensips(o) && !o.cli) return { reason: "no opensips-cli next to the local OpenSIPS (keepalived's scripts call it): put it on PATH or set IFBUS_OPENSIPS_CLI" };
    return o;
}

/** Why this machine cannot run a lab, or undefined when it can. */
export function labUnavailable(opts: { opensips: boolean }): string | undefined {
    if (typeof process.getuid === "function" && process.getuid() !== 0) return "the lab needs root (network namespaces, mounts, systemd hosts)";
    const missing = ["debootstrap", "ip", "nsenter", "unshare", "nft", "iptables-restore", "ssh", "ssh-keygen", "dpkg-deb", "sipp"].filter((c) => !hasCommand(c));
    if (missing.length) return `the lab needs ${missing.join(", ")} (scripts/install-deps.sh)`;
    if (!fs.existsSync("/sys/fs/cgroup/cgroup.controllers") && !fs.existsSync("/sys/fs/cgroup/unified/cgroup.procs")) return "the lab needs a cgroup v2 hierarchy for systemd hosts";
    if (opts.opensips) {
        const o = labOpensips();
        if (!isLocalOpensips(o)) return o.reason;
    }
    return undefined;
}

/** Run on a host, insist on exit 0, trimmed stdout. */
export async function on(gl: GatewayLab, host: string, cmd: string, timeoutMs = 30_000): Promise<string> {
    const r = await gl.lab.ssh(host, cmd, { timeoutMs });
    if (r.code !== 0) throw new Error(`${host}: \`${cmd}\` exited ${r.code}: ${r.stderr.trim() || r.stdout.trim()}`);
    return r.stdout.trim();
}

/** CPU time (µs) a systemd unit of a lab host has used, from the host's cgroup. */
export function unitCpuMicros(gl: GatewayLab, host: string, unit: string): number {
    const f = path.join(gl.lab.cgroupOf(host), "system.slice", unit, "cpu.stat");
    const m = /^usage_usec (\d+)$/m.exec(fs.readFileSync(f, "utf8"));
    if (!m) throw new Error(`no usage_usec in ${f}`);
    return Number(m[1]);
}

/** An rtpengine ng command sent from `fromHost` to a relay's ng port (socat on that host); raw bencoded reply or "" when unanswered. */
export async function ngFrom(gl: GatewayLab, fromHost: string, relayIp: string, dict: string): Promise<string> {
    const r = await gl.lab.ssh(fromHost, `printf 'lab%s %s' "$$" '${dict}' | timeout 4 socat -T2 - UDP:${relayIp}:${PORTS.rtpengineNg} || true`, { timeoutMs: 15_000 });
    return r.stdout;
}

/** Bencode a flat ng request with string values. */
export function ngDict(kv: Record<string, string>): string {
    const s = (v: string) => `${Buffer.byteLength(v)}:${v}`;
    return `d${Object.keys(kv)
        .sort()
        .map((k) => s(k) + s(kv[k]))
        .join("")}e`;
}

/** Every `packets` counter of an ng query reply, summed per RTP totals. */
export function rtpPacketsOf(reply: string): number {
    const m = /6:totalsd3:RTPd7:packetsi(\d+)e/.exec(reply);
    return m ? Number(m[1]) : 0;
}
