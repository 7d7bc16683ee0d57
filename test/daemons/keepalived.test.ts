// The rendered keepalived files under Debian's real keepalived 2.2: each proxy
// in its own namespace (interface named as on the AMI, holding the proxy's
// private address), the two joined by one link. The scripts are the rendered
// ones, copied beside the config (their absolute paths rewritten), with
// stand-in aws / metadata / opensips-cli commands (test/support/fakes.ts).
import { strict as assert } from "assert";
import * as fs from "fs";
import * as path from "path";
import fc from "fast-check";
import type { GatewayModel, HostModel } from "../../components/model";
import { hostsOf } from "../../components/model";
import { KEEPALIVED_CONF_PATH, OPENSIPS_HEALTH_SCRIPT, PROXY_INTERFACE, VIP_NOTIFY_SCRIPT, renderKeepalived } from "../../components/render/keepalived";
import { OPENSIPS_SHARING_TAG_REF } from "../../components/render/opensips";
import { Daemon, TestNetns, requireTools } from "../support/netns";
import { Fakes, makeFakes } from "../support/fakes";
import { modelFor, exampleModel, specArbitrary } from "../support/stacks";
import { waitFor } from "../support/wait";

interface Node {
    readonly host: HostModel;
    readonly ns: TestNetns;
    readonly conf: string;
    readonly fakes: Fakes;
    daemon?: Daemon;
}

/** Rendered files of one proxy under the namespace's work dir; the config points at the copied scripts. */
function stage(model: GatewayModel, host: HostModel, ns: TestNetns): Node {
    const dir = path.join(ns.workDir, "keepalived");
    fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
    const files = renderKeepalived(model, host);
    const content = (p: string) => files.find((f) => f.path === p)!.content;
    const local = (p: string) => path.join(dir, path.basename(p));
    for (const p of [OPENSIPS_HEALTH_SCRIPT, VIP_NOTIFY_SCRIPT]) fs.writeFileSync(local(p), content(p), { mode: 0o755 });
    let conf = content(KEEPALIVED_CONF_PATH);
    for (const p of [OPENSIPS_HEALTH_SCRIPT, VIP_NOTIFY_SCRIPT]) conf = conf.split(p).join(local(p));
    fs.writeFileSync(local(KEEPALIVED_CONF_PATH), conf, { mode: 0o644 });
    return { host, ns, conf: local(KEEPALIVED_CONF_PATH), fakes: makeFakes(path.join(ns.workDir, "fakes")) };
}

function start(node: Node): Daemon {
    const w = node.ns.workDir;
    // what the drop-in runs (--dont-fork --vrrp), with pid files and logs moved
    node.daemon = node.ns.spawnDaemon(`keepalived-${node.host.name}-${Date.now()}`, "keepalived", ["--dont-fork", "--vrrp", "--log-console", "--no-syslog", "-f", node.conf, "-p", path.join(w, "k.pid"), "-r", path.join(w, "v.pid")], {
        env: node.fakes.env,
    });
    return node.daemon;
}

/** Times this proxy's notify script associated the Elastic IP (once per MASTER transition). */
function masterCalls(node: Node): number {
    return node.fakes.calls("aws").filter((c) => c[1] === "associate-address").length;
}

async function holdsVip(node: Node): Promise<boolean> {
    const r = await node.ns.runOk("ip", ["-4", "-o", "addr", "show", "dev", PROXY_INTERFACE]);
    return r.stdout.includes(` ${node.host.vipPrivateIp}/32 `);
}

async function waitMaster(node: Node, calls: number, timeoutMs = 20000): Promise<void> {
    await waitFor(
        async () => {
            node.daemon?.assertRunning();
            return masterCalls(node) >= calls && (await holdsVip(node));
        },
        { what: `${node.host.name} to become master (notify MASTER #${calls} and ${node.host.vipPrivateIp} up)`, timeoutMs, intervalMs: 100 },
    );
}

const STATS_FILE = "/tmp/keepalived.stats";

/** VRRP counters of a running keepalived (SIGUSR2 makes it write them to /tmp/keepalived.stats). */
async function vrrpStats(node: Node): Promise<{ received: number; addressListErrors: number }> {
    fs.rmSync(STATS_FILE, { force: true });
    process.kill(node.daemon!.pid, "SIGUSR2");
    const text = await waitFor(
        () => {
            try {
                const t = fs.readFileSync(STATS_FILE, "utf8");
                return t.includes("Priority Zero") ? t : undefined;
            } catch {
                return undefined;
            }
        },
        { what: `${node.host.name}'s keepalived stats`, timeoutMs: 5000 },
    );
    const num = (re: RegExp) => Number(re.exec(text)?.[1] ?? NaN);
    return { received: num(/Advertisements:\s+Received: (\d+)/), addressListErrors: num(/Address List: (\d+)/) };
}

/** The backup has heard several adverts (and dropped none for its address list), yet never became master. */
async function assertStaysBackup(node: Node, adverts = 3): Promise<void> {
    // signal handlers are in place once the VRRP child has entered its first state (SIGUSR2 before that kills it)
    await waitFor(
        () => {
            node.daemon!.assertRunning();
            return node.daemon!.log().includes("Entering BACKUP STATE");
        },
        { what: `${node.host.name} to enter BACKUP`, timeoutMs: 15000 },
    );
    const stats = await waitFor(
        async () => {
            node.daemon!.assertRunning();
            const s = await vrrpStats(node);
            return s.received >= adverts ? s : undefined;
        },
        { what: `${node.host.name} to receive ${adverts} adverts`, timeoutMs: 15000, intervalMs: 300 },
    );
    assert.equal(stats.addressListErrors, 0, `${node.host.name} dropped adverts for a differing address list`);
    assert.ok(!(await holdsVip(node)), `${node.host.name} holds its VIP address as backup`);
}

async function withPair(model: GatewayModel, body: (a: Node, b: Node) => Promise<void>): Promise<void> {
    const [p1, p2] = hostsOf(model, "sip-proxy");
    const [ns1, ns2] = await TestNetns.createPair("ka", { ifname: PROXY_INTERFACE, addresses: [p1.privateIp] }, { ifname: PROXY_INTERFACE, addresses: [p2.privateIp] });
    try {
        await body(stage(model, p1, ns1), stage(model, p2, ns2));
    } finally {
        await ns1.destroy();
        await ns2.destroy();
    }
}

describe("proxy failover config under the real keepalived 2.2", function () {
    this.timeout(180000);
    before(function () {
        requireTools(this, "keepalived");
    });
    after(() => fs.rmSync(STATS_FILE, { force: true }));

    it("accepts both prod proxies' configs with keepalived --config-test", async () => {
        await withPair(exampleModel("prod"), async (a, b) => {
            for (const n of [a, b]) {
                const r = await n.ns.run("keepalived", ["--config-test", "-f", n.conf]);
                assert.equal(r.code, 0, `keepalived --config-test refused ${n.host.name}'s config:\n${r.stderr}${r.stdout}`);
            }
        });
    });

    it("elects proxy-1, moves the VIP to proxy-2 when proxy-1 stops, and never back when proxy-1 returns (nopreempt)", async () => {
        const model = exampleModel("prod");
        await withPair(model, async (a, b) => {
            start(a);
            start(b);
            await waitMaster(a, 1);
            await assertStaysBackup(b);
            assert.equal(masterCalls(b), 0, "both proxies became master");
            const aws = a.fakes.calls("aws")[0];
            assert.equal(aws[aws.indexOf("--private-ip-address") + 1], a.host.vipPrivateIp);
            assert.equal(aws[aws.indexOf("--allocation-id") + 1], model.vip!.allocationId);
            assert.deepEqual(a.fakes.calls("opensips-cli").find((c) => c.includes("clusterer_shtag_set_active")), ["-x", "mi", "clusterer_shtag_set_active", OPENSIPS_SHARING_TAG_REF]);

            // a graceful stop sends priority 0: the backup takes over at once
            const t0 = Date.now();
            await a.daemon!.stop();
            await waitMaster(b, 1, 10000);
            const tookMs = Date.now() - t0;
            assert.ok(tookMs < 10000, `failover took ${tookMs} ms`);
            const awsB = b.fakes.calls("aws")[0];
            assert.equal(awsB[awsB.indexOf("--private-ip-address") + 1], b.host.vipPrivateIp);

            // proxy-1 comes back with the higher priority but does not preempt:
            // a preempting proxy would take over on the first lower-priority advert
            start(a);
            await assertStaysBackup(a);
            assert.equal(masterCalls(a), 1, "proxy-1 took the VIP back although nopreempt is set");
            assert.ok(await holdsVip(b));
        });
    });

    it("gives up the VIP when OpenSIPS stops answering MI (track_script), and the peer takes it", async () => {
        await withPair(exampleModel("prod"), async (a, b) => {
            start(a);
            start(b);
            await waitMaster(a, 1);
            a.fakes.setOpensipsHealthy(false);
            await waitMaster(b, 1, 20000);
            await waitFor(async () => !(await holdsVip(a)), { what: "proxy-1 to drop its VIP address", timeoutMs: 10000 });
            assert.match(a.daemon!.log(), /FAULT/);
        });
    });

    it("elects one master for generated stacks with two proxies", async () => {
        await fc.assert(
            fc.asyncProperty(
                specArbitrary.filter((s) => s.vipFailover),
                async (spec) => {
                    await withPair(modelFor(spec), async (a, b) => {
                        start(a);
                        start(b);
                        await waitMaster(a, 1);
                        await assertStaysBackup(b);
                        assert.equal(masterCalls(b), 0);
                    });
                },
            ),
            { numRuns: 2 },
        );
    });
});
