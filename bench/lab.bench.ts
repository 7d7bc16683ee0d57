// npm run bench:lab: the lab's figures on this machine.
// - converge time of a fresh dev lab and a fresh prod lab (hosts, push), and
//   the ratio of their push phases (target: prod at most 2x dev);
// - VIP failover: the active proxy's link cut until the VIP points to the
//   other proxy (median of 3; target: at most 5 s);
// - REGISTER rate through the VIP (digest auth: challenge + answer per
//   registration) with the number of failures, and the CPU share OpenSIPS
//   used on each proxy meanwhile (its systemd unit's cgroup).
// Load goes only to the lab's own addresses, bounded in count and time.
import { execFileSync } from "child_process";
import * as crypto from "crypto";
import { PORTS } from "../components/ports";
import { hostsOf } from "../components/model";
import { intToIp, parseCidr } from "../components/ipplan";
import { labDown, labUp, UpResult, vipState } from "../lab/gateway";
import { internetNs } from "../lab/network";
import { waitUntil } from "../lab/host";
import { Agent } from "../test/lab/agent";
import { labOpensips, labUnavailable, on, unitCpuMicros } from "../test/lab/support";
import type { LocalOpensips } from "../lab/opensips";

const REGISTRATIONS = Number(process.env.BENCH_REGISTRATIONS ?? 20000);
// the registrar keeps at most 10 contacts per user (opensips.cfg max_contacts): 10 phones for each of the 2 subscribers
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 20);
const s = (ms: number) => (ms / 1000).toFixed(1);

async function converge(stack: string, o: LocalOpensips): Promise<UpResult> {
    const id = `b${crypto.randomBytes(3).toString("hex")}`;
    const r = await labUp({ stack, id, opensipsPrefix: o.prefix, healthSeconds: 30 });
    if (r.run.failed) {
        labDown(id);
        throw new Error(`${stack}: ${r.run.failed.id} failed:\n${r.run.failed.stderr}`);
    }
    console.log(`${stack.padEnd(5)} lab converge: ${s(r.timings.totalMs)} s (hosts ${s(r.timings.hostsMs)} s, push ${s(r.timings.pushMs)} s, ${r.run.runs.length} steps)`);
    return r;
}

async function failover(up: UpResult): Promise<number> {
    const active = vipState(up).current?.host;
    if (!active) throw new Error("the VIP is not associated");
    const other = hostsOf(up.model, "sip-proxy").find((h) => h.name !== active)!.name;
    const t0 = Date.now();
    up.lab.setLink(active, false);
    try {
        await waitUntil("the VIP to move", 30_000, () => vipState(up).current?.host === other, 50);
        return (vipState(up).current!.at - t0) / 1000;
    } finally {
        up.lab.setLink(active, true);
        // the restored proxy hears the new master and steps down: it holds no VIP address any more
        await waitUntil(`${active} to step down`, 30_000, async () => !(await on(up, active, "ip -o -4 addr show ens5")).includes("/32"), 250);
    }
}

async function main(): Promise<void> {
    const why = labUnavailable({ opensips: true });
    if (why) {
        console.log(`bench:lab skipped: ${why}`);
        return;
    }
    const o = labOpensips() as LocalOpensips;
    const dev = await converge("dev", o);
    labDown(dev.id);
    const prod = await converge("prod", o);
    try {
        console.log(`push phase prod/dev: ${(prod.timings.pushMs / dev.timings.pushMs).toFixed(2)}x (target <= 2x); whole converge ${(prod.timings.totalMs / dev.timings.totalMs).toFixed(2)}x`);
        const longest = [...prod.run.runs].sort((a, b) => b.ms - a.ms).slice(0, 4);
        console.log(`  prod's longest steps: ${longest.map((r) => `${r.id} ${s(r.ms)} s`).join(", ")}`);

        const moves: number[] = [];
        for (let i = 0; i < 3; i++) moves.push(await failover(prod));
        moves.sort((a, b) => a - b);
        console.log(`VIP failover (link cut to EIP moved): median ${moves[1].toFixed(2)} s, runs ${moves.map((m) => m.toFixed(2)).join(" / ")} s (target <= 5 s)`);

        // from a trunk source address: pike exempts trunks (a single browser address is held to 15 requests/s)
        const trunkCidr = parseCidr(prod.model.spec.sipTrunks[0].cidrs[0]);
        const trunkIp = intToIp(trunkCidr.base + (trunkCidr.prefix === 32 ? 0 : 1));
        execFileSync("ip", ["-n", internetNs(prod.id), "addr", "add", `${trunkIp}/32`, "dev", "eth0"]);
        const agent = Agent.start(internetNs(prod.id));
        try {
            const proxies = hostsOf(prod.model, "sip-proxy").map((h) => h.name);
            const cpu0 = proxies.map((p) => unitCpuMicros(prod, p, "opensips.service"));
            const t0 = Date.now();
            const r = await agent.request<{ ok: number; failed: number; seconds: number; failures: string[] }>(
                {
                    op: "regload",
                    users: Object.entries(prod.model.secrets.subscriberPasswords).map(([user, password]) => ({ user, password })),
                    domain: prod.model.spec.sipDomain,
                    proxyIp: prod.model.vip!.publicIp,
                    proxyPort: PORTS.sip,
                    localAddress: trunkIp,
                    registrations: REGISTRATIONS,
                    concurrency: CONCURRENCY,
                },
                10 * 60_000,
            );
            const wall = (Date.now() - t0) / 1000;
            const cores = Number(execFileSync("nproc", { encoding: "utf8" }).trim());
            const shares = proxies.map((p, i) => `${p} ${((100 * (unitCpuMicros(prod, p, "opensips.service") - cpu0[i])) / (wall * 1e6 * cores)).toFixed(1)}%`);
            console.log(
                `REGISTER through the VIP: ${r.ok} registrations in ${r.seconds.toFixed(1)} s = ${(r.ok / r.seconds).toFixed(0)}/s (each a 401 challenge and an authenticated REGISTER), ${r.failed} failures${r.failures.length ? ` (${r.failures.join("; ")})` : ""}, ${CONCURRENCY} UDP phones (contacts) over ${Object.keys(prod.model.secrets.subscriberPasswords).length} subscribers, from ${trunkIp}`,
            );
            console.log(`OpenSIPS CPU meanwhile (share of the machine's ${cores} cores): ${shares.join(", ")}`);
        } finally {
            agent.stop();
        }
    } finally {
        const left = labDown(prod.id);
        if (left.length) console.log(`left behind: ${left.join(", ")}`);
    }
}

main().catch((e) => {
    console.error(e);
    process.exit(1);
});
