// The rendered OpenSIPS config under the real opensips binary: `opensips -C`
// for every proxy of the example stacks and of generated stacks, then a real
// start (opensips -C checks only syntax and parameters, DOMAIN-FACTS 9) with
// MariaDB holding the rendered schema and seed, the rendered relays and
// Redis, and SIP traffic: OPTIONS, digest REGISTER over UDP and WSS, and
// calls whose media flags are checked per direction.
//
// Two namespaces joined by a veth pair: one holds the proxy's private address,
// the other the database, relays, cache, a client and a trunk address, so the
// database sees the proxy's own address (its grant is per proxy address).
import { strict as assert } from "assert";
import * as fs from "fs";
import * as path from "path";
import fc from "fast-check";
import type { GatewayModel, HostModel } from "../../components/model";
import { hostsOf, sipPublicIp } from "../../components/model";
import { PORTS } from "../../components/ports";
import { renderSipProxy, sipListenIp } from "../../components/render/opensips";
import { OPENSIPS_SCHEMA_SQL, OPENSIPS_SEED_SQL, renderDatabaseSchema } from "../../components/render/opensips-schema";
import { RTPENGINE_CONF_PATH, RTPENGINE_DEFAULTS_PATH, renderMediaRelay } from "../../components/render/rtpengine";
import { REDIS_CONF_PATH, renderCache } from "../../components/render/redis";
import { cidrContains } from "../../components/ipplan";
import { startRedis, startRtpengine } from "../support/daemons";
import { Daemon, TestNetns, requireTools } from "../support/netns";
import { EXAMPLE_STACKS, exampleModel, modelFor, secretValues, specArbitrary, writeTree } from "../support/stacks";
import { loadSpec } from "../../components/offline";
import { waitFor } from "../support/wait";
import { SKIP_NO_OPENSIPS, TestConfig, TestMariadb, checkConfig, firstHost, mi, opensipsBinary, opensipsModuleDir, prepareConfig, startOpensips } from "./support";
import { ObservedCall, ScenarioInput, runInNetns } from "./sip-ua";

const binary = opensipsBinary();

function skipWithoutOpensips(ctx: Mocha.Context): string {
    if (!binary) {
        console.warn(`\n    ${SKIP_NO_OPENSIPS}\n`);
        ctx.skip();
    }
    return binary!;
}

/** A client address outside every trunk CIDR (TEST-NET-1), and a trunk source address inside the first one. */
function clientAndTrunk(model: GatewayModel): { clientIp: string; trunkIp?: string } {
    const trunkCidrs = model.spec.sipTrunks.flatMap((t) => t.cidrs);
    const clientIp = ["192.0.2.77", "192.0.2.177", "198.18.0.77"].find((ip) => !trunkCidrs.some((c) => cidrContains(c, `${ip}/32`)));
    if (!clientIp) throw new Error("no client address outside the trunk CIDRs");
    return { clientIp, trunkIp: trunkCidrs.length ? firstHost(trunkCidrs[0]) : undefined };
}

interface RunningProxy {
    readonly model: GatewayModel;
    readonly proxy: HostModel;
    readonly nsProxy: TestNetns;
    readonly nsRest: TestNetns;
    readonly db: TestMariadb;
    readonly opensips: Daemon;
    readonly tc: TestConfig;
    /** further proxies started next to the first one (same namespace), for cluster tests */
    readonly peers: readonly { readonly proxy: HostModel; readonly opensips: Daemon; readonly tc: TestConfig }[];
    readonly clientIp: string;
    readonly trunkIp?: string;
    readonly secrets: readonly string[];
}

/** Start `proxies` (the first one is the one clients talk to) with everything they need around them. */
async function startProxies(model: GatewayModel, proxies: readonly HostModel[], bin: string): Promise<RunningProxy> {
    const proxy = proxies[0];
    const secrets = secretValues(model);
    const database = hostsOf(model, "database")[0];
    const cache = hostsOf(model, "cache")[0];
    const relays = hostsOf(model, "media-relay");
    const { clientIp, trunkIp } = clientAndTrunk(model);
    // every trunk's first source address, so tests can play any trunk
    const trunkSources = [...new Set(model.spec.sipTrunks.flatMap((t) => t.cidrs.map(firstHost)))];
    const rest = [database.privateIp, cache.privateIp, relays[0].privateIp, clientIp, ...trunkSources];
    const [nsProxy, nsRest] = await TestNetns.createPair("osp", { addresses: proxies.flatMap((p) => [p.privateIp, ...(p.vipPrivateIp ? [p.vipPrivateIp] : [])]) }, { addresses: rest });
    try {
        const db = await TestMariadb.start(nsRest, database.privateIp, secrets);
        const sql = renderDatabaseSchema(model, database);
        const sqlAt = writeTree(path.join(nsRest.workDir, "db-root"), sql);
        // applied twice: both files must be idempotent (every deploy re-applies them)
        for (let i = 0; i < 2; i++) for (const f of [OPENSIPS_SCHEMA_SQL, OPENSIPS_SEED_SQL]) await db.sql(fs.readFileSync(sqlAt(f), "utf8"));

        const cacheAt = writeTree(path.join(nsRest.workDir, "cache-root"), renderCache(model, cache));
        await startRedis(nsRest, cacheAt(REDIS_CONF_PATH), cache.privateIp, secrets);
        // one relay only: two rtpengines in one namespace would share the loopback CLI port; the
        // others' addresses stay unrouted, so OpenSIPS marks them down at once and uses this one
        for (const relay of relays.slice(0, 1)) {
            const at = writeTree(path.join(nsRest.workDir, `${relay.name}-root`), renderMediaRelay(model, relay));
            await startRtpengine(nsRest, at(RTPENGINE_CONF_PATH), at(RTPENGINE_DEFAULTS_PATH), relay.privateIp, secrets);
        }

        const started = [];
        for (const p of proxies) {
            const tc = prepareConfig(renderSipProxy(model, p), path.join(nsProxy.workDir, p.name), opensipsModuleDir(bin));
            const ip = p.privateIp;
            const sipIp = sipListenIp(p);
            const listen: [("tcp" | "udp"), string, number][] = [
                ["udp", sipIp, PORTS.sip],
                ["tcp", sipIp, PORTS.sip],
                ["tcp", sipIp, PORTS.sipTls],
                ["tcp", sipIp, PORTS.wss],
                ["tcp", ip, PORTS.opensipsHttp],
            ];
            if (model.spec.devAllowPlainWs) listen.push(["tcp", sipIp, PORTS.ws]);
            if (hostsOf(model, "sip-proxy").length > 1) listen.push(["tcp", ip, PORTS.bin]);
            started.push({ proxy: p, tc, opensips: await startOpensips(nsProxy, bin, tc, p.name, listen, secrets) });
        }
        const [first, ...peers] = started;
        return { model, proxy, nsProxy, nsRest, db, opensips: first.opensips, tc: first.tc, peers, clientIp, trunkIp, secrets };
    } catch (e) {
        await nsProxy.destroy();
        await nsRest.destroy();
        throw e;
    }
}

function scenarioInput(rp: RunningProxy, scenario: ScenarioInput["scenario"]): ScenarioInput {
    const { model } = rp;
    const [a, b] = model.spec.subscribers;
    return {
        proxyIp: sipListenIp(rp.proxy),
        sipPort: PORTS.sip,
        sipTlsPort: PORTS.sipTls,
        wssPort: PORTS.wss,
        domain: model.spec.sipDomain,
        caPem: model.secrets.tls.caPem,
        clientIp: rp.clientIp,
        trunkIp: rp.trunkIp,
        users: { [a]: model.secrets.subscriberPasswords[a], [b]: model.secrets.subscriberPasswords[b] },
        scenario,
    };
}

const lines = (sdp: string) => sdp.split(/\r?\n/).filter(Boolean);
const mLine = (sdp: string) => lines(sdp).find((l) => l.startsWith("m=audio ")) ?? "";

/** What a browser must receive: DTLS-SRTP with ICE and rtcp-mux, media on a relay. */
function assertBrowserSdp(sdp: string, relayIps: readonly string[], rtp: { min: number; max: number }, what: string): void {
    const m = /^m=audio (\d+) (\S+) /.exec(mLine(sdp));
    assert.ok(m, `${what}: no audio m-line in\n${sdp}`);
    assert.equal(m[2], "UDP/TLS/RTP/SAVPF", `${what}: transport`);
    const port = Number(m[1]);
    assert.ok(port >= rtp.min && port <= rtp.max, `${what}: media port ${port} outside ${rtp.min}-${rtp.max}`);
    for (const a of ["a=ice-ufrag:", "a=ice-pwd:", "a=fingerprint:sha-256 ", "a=rtcp-mux", "a=candidate:"])
        assert.ok(lines(sdp).some((l) => l.startsWith(a)), `${what}: missing ${a}\n${sdp}`);
    const conn = /c=IN IP4 (\S+)/.exec(sdp)?.[1];
    assert.ok(conn && relayIps.includes(conn), `${what}: connection address ${conn} is not a relay's (${relayIps.join(", ")})`);
    const cand = lines(sdp).find((l) => l.startsWith("a=candidate:"))!;
    assert.ok(relayIps.some((ip) => cand.includes(` ${ip} `)), `${what}: ICE candidate is not on a relay: ${cand}`);
    assert.ok(!lines(sdp).includes("a=crypto"), `${what}: SDES keys sent to a browser (SDES-off)`);
}

/** What a SIP phone or trunk must receive: plain RTP, no ICE, no DTLS, media on a relay. */
function assertPlainSdp(sdp: string, relayIps: readonly string[], what: string): void {
    assert.match(mLine(sdp), /^m=audio \d+ RTP\/AVP /, `${what}: transport\n${sdp}`);
    for (const a of ["a=ice-ufrag:", "a=ice-pwd:", "a=candidate:", "a=fingerprint:", "a=setup:", "a=rtcp-mux"])
        assert.ok(!lines(sdp).some((l) => l.startsWith(a)), `${what}: ${a} must not reach plain SIP\n${sdp}`);
    for (const c of [...sdp.matchAll(/c=IN IP4 (\S+)/g)].map((x) => x[1])) assert.ok(relayIps.includes(c), `${what}: connection address ${c} is not a relay's`);
}

describe("rendered OpenSIPS config under the real opensips binary", function () {
    this.timeout(240000);

    before(function () {
        skipWithoutOpensips(this);
    });

    for (const stack of EXAMPLE_STACKS) {
        it(`passes opensips -C for every proxy of the ${stack} stack`, async function () {
            const bin = skipWithoutOpensips(this);
            const model = exampleModel(stack);
            const tmp = fs.mkdtempSync("/tmp/ifbt-osc-");
            try {
                for (const proxy of hostsOf(model, "sip-proxy")) {
                    const tc = prepareConfig(renderSipProxy(model, proxy), path.join(tmp, proxy.name), opensipsModuleDir(bin));
                    const r = await checkConfig(bin, tc.cfg);
                    assert.equal(r.code, 0, `${proxy.name}: opensips -C refused the config:\n${r.stderr.slice(-3000)}`);
                    assert.match(r.stderr, /config file ok/);
                }
            } finally {
                fs.rmSync(tmp, { recursive: true, force: true });
            }
        });
    }

    it("passes opensips -C for the proxies of generated stacks (addresses, counts, one or two proxies)", async function () {
        const bin = skipWithoutOpensips(this);
        await fc.assert(
            fc.asyncProperty(specArbitrary, fc.boolean(), async (spec, plainWs) => {
                const model = modelFor({ ...spec, devAllowPlainWs: plainWs });
                const tmp = fs.mkdtempSync("/tmp/ifbt-osg-");
                try {
                    for (const proxy of hostsOf(model, "sip-proxy")) {
                        const tc = prepareConfig(renderSipProxy(model, proxy), path.join(tmp, proxy.name), opensipsModuleDir(bin));
                        const r = await checkConfig(bin, tc.cfg);
                        assert.equal(r.code, 0, `${model.stack}/${proxy.name}: opensips -C refused the config:\n${r.stderr.slice(-3000)}`);
                    }
                } finally {
                    fs.rmSync(tmp, { recursive: true, force: true });
                }
            }),
            { numRuns: 6 },
        );
    });

    describe("the prod stack's two proxies as one cluster", function () {
        let rp: RunningProxy | undefined;
        const linksUp = async (fifo: string) => {
            const l = (await mi(fifo, "clusterer_list")) as { Clusters: { Nodes: { link_state: string }[] }[] };
            return l.Clusters.flatMap((c) => c.Nodes).filter((n) => n.link_state === "Up").length;
        };
        const vipState = async (fifo: string) => {
            const tags = (await mi(fifo, "clusterer_list_shtags")) as { Tag: string; Cluster: number; State: string }[];
            return tags.find((t) => t.Tag === "vip" && t.Cluster === 1)?.State;
        };

        before(async function () {
            const bin = skipWithoutOpensips(this);
            requireTools(this, "mariadbd", "mariadb-install-db", "mariadb", "rtpengine", "redis-server", "opensips-cli");
            const model = exampleModel("prod");
            // both in one namespace: each binds its own private address, BIN connects between them
            rp = await startProxies(model, hostsOf(model, "sip-proxy"), bin);
        });

        after(async function () {
            if (!rp) return;
            if (process.env.OPENSIPS_TEST_LOG_DIR)
                for (const d of [rp.opensips, ...rp.peers.map((p) => p.opensips)]) fs.writeFileSync(path.join(process.env.OPENSIPS_TEST_LOG_DIR, `cluster-${d.name}.log`), d.log(rp.secrets));
            await rp.nsProxy.destroy();
            await rp.nsRest.destroy();
        });

        afterEach(function () {
            if (this.currentTest?.state === "failed" && rp)
                for (const d of [rp.opensips, ...rp.peers.map((p) => p.opensips)]) console.warn(`${d.name} log tail:\n${d.logTail(rp.secrets, 40)}`);
        });

        it("links the two nodes over BIN, with the VIP's sharing tag active on proxy-1 and backup on proxy-2", async () => {
            const [p1, p2] = [rp!.tc.fifo, rp!.peers[0].tc.fifo];
            await waitFor(async () => (await linksUp(p1)) === 1 && (await linksUp(p2)) === 1, { what: "the BIN link between the proxies", timeoutMs: 30000, intervalMs: 500 });
            assert.equal(await vipState(p1), "active");
            assert.equal(await vipState(p2), "backup");
        });

        it("replicates a call's dialog and both registrations from the active proxy to the backup while the call is up", async () => {
            const backup = rp!.peers[0].tc.fifo;
            const releaseFile = path.join(rp!.nsRest.workDir, "release-call");
            const call = runInNetns<{ registrations: number[]; final: number; released: boolean; byeStatus: number }>(rp!.nsRest, { ...scenarioInput(rp!, "hold"), releaseFile }, 90000);
            try {
                const seen = await waitFor(
                    async () => {
                        const dlg = (await mi(backup, "dlg_list")) as { Dialogs: { state: number; callid: string }[] };
                        const ul = JSON.stringify(await mi(backup, "ul_dump"));
                        const users = rp!.model.spec.subscribers.filter((u) => ul.includes(`"AOR":"${u}"`));
                        return dlg.Dialogs.length === 1 && users.length === 2 ? { dlg, users } : undefined;
                    },
                    { what: "the call's dialog and both registrations on the backup proxy", timeoutMs: 15000, intervalMs: 200 },
                );
                assert.equal(seen.dlg.Dialogs.length, 1);
            } finally {
                fs.writeFileSync(releaseFile, "");
            }
            const r = await call;
            assert.deepEqual(r.registrations, [200, 200]);
            assert.equal(r.final, 200);
            assert.ok(r.released, "the call was held until the backup had been checked");
            assert.equal(r.byeStatus, 200);
            // the BYE on the active proxy removes the replica too
            await waitFor(async () => ((await mi(backup, "dlg_list")) as { Dialogs: unknown[] }).Dialogs.length === 0, {
                what: "the replicated dialog to go away after the BYE",
                timeoutMs: 15000,
                intervalMs: 200,
            });
        });

        it("moves the sharing tag to proxy-2 with the MI command keepalived's notify runs, and proxy-1 steps down", async () => {
            const [p1, p2] = [rp!.tc.fifo, rp!.peers[0].tc.fifo];
            await mi(p2, "clusterer_shtag_set_active", "vip/1");
            await waitFor(async () => (await vipState(p1)) === "backup", { what: "proxy-1 to step down to backup", timeoutMs: 10000, intervalMs: 200 });
            assert.equal(await vipState(p2), "active");
        });
    });

    describe("outgoing calls to trunks (dispatcher set, failover in the failure route)", function () {
        // two trunks played by the test: the first refuses with 503, the second answers
        const failingTrunk = "198.51.100.101";
        const workingTrunk = "198.51.100.102";
        let rp: RunningProxy | undefined;

        before(async function () {
            const bin = skipWithoutOpensips(this);
            requireTools(this, "mariadbd", "mariadb-install-db", "mariadb", "rtpengine", "redis-server", "opensips-cli");
            const spec = loadSpec("dev");
            const model = modelFor({
                ...spec,
                sipTrunks: [failingTrunk, workingTrunk].map((ip) => ({ uri: `sip:${ip}:${PORTS.sip};transport=udp`, weight: 1, cidrs: [`${ip}/32`] })),
            });
            rp = await startProxies(model, hostsOf(model, "sip-proxy").slice(0, 1), bin);
        });

        after(async function () {
            if (!rp) return;
            if (process.env.OPENSIPS_TEST_LOG_DIR) fs.writeFileSync(path.join(process.env.OPENSIPS_TEST_LOG_DIR, "opensips-trunks.log"), rp.opensips.log(rp.secrets));
            await rp.nsProxy.destroy();
            await rp.nsRest.destroy();
        });

        afterEach(function () {
            if (this.currentTest?.state === "failed" && rp) console.warn(`opensips log tail:\n${rp.opensips.logTail(rp.secrets, 60)}`);
        });

        it("sends a browser's call for an unregistered number to a trunk with plain RTP, failing over from a trunk that answers 503", async () => {
            interface TrunkCall {
                registered: number;
                statuses: number[];
                failingTried: boolean;
                offerAtTrunk: string;
                answerAtCaller: string;
                byeStatus: number;
            }
            const relayIps = hostsOf(rp!.model, "media-relay").map((r) => r.publicIp!);
            const r = await runInNetns<TrunkCall>(rp!.nsRest, { ...scenarioInput(rp!, "trunks"), trunkDestinations: [failingTrunk, workingTrunk] }, 90000);
            assert.equal(r.registered, 200);
            assert.deepEqual(r.statuses, [407, 200]);
            assertPlainSdp(r.offerAtTrunk, relayIps, "INVITE at the trunk");
            assertBrowserSdp(r.answerAtCaller, relayIps, rp!.model.spec.rtpPorts, "200 at the browser");
            assert.equal(r.byeStatus, 200);
            // (one 503 does not take a trunk out of rotation: ds_probing_threshold is 3)
            assert.ok(r.failingTried, "the weighted round robin started at the working trunk: failover not exercised");
        });
    });

    for (const stack of EXAMPLE_STACKS) {
        describe(`the ${stack} stack's first proxy, started with MariaDB, RTPEngine and Redis`, function () {
            let rp: RunningProxy | undefined;

            before(async function () {
                const bin = skipWithoutOpensips(this);
                requireTools(this, "mariadbd", "mariadb-install-db", "mariadb", "rtpengine", "redis-server", "opensips-cli");
                const model = exampleModel(stack);
                rp = await startProxies(model, hostsOf(model, "sip-proxy").slice(0, 1), bin);
            });

            after(async function () {
                if (!rp) return;
                // OPENSIPS_TEST_LOG_DIR keeps the whole (redacted) log for reading after the run
                if (process.env.OPENSIPS_TEST_LOG_DIR) fs.writeFileSync(path.join(process.env.OPENSIPS_TEST_LOG_DIR, `opensips-${stack}.log`), rp.opensips.log(rp.secrets));
                const tail = rp.opensips.running ? "" : rp.opensips.logTail(rp.secrets, 60);
                await rp.nsProxy.destroy();
                await rp.nsRest.destroy();
                if (tail) console.warn(`opensips log tail:\n${tail}`);
            });

            afterEach(function () {
                if (this.currentTest?.state === "failed" && rp) console.warn(`opensips log tail:\n${rp.opensips.logTail(rp.secrets, 60)}`);
            });

            it("keeps exactly the stack's subscribers, trunks and trunk CIDRs after the seed is applied twice", async () => {
                const { model, db } = rp!;
                const count = async (q: string) => Number((await db.sql(`SELECT COUNT(*) FROM opensips.${q};`)).trim());
                assert.equal(await count("subscriber"), model.spec.subscribers.length);
                assert.equal(await count("dispatcher"), model.spec.sipTrunks.length);
                assert.equal(await count("address"), model.spec.sipTrunks.flatMap((t) => t.cidrs).length);
                const grants = (await db.sql("SELECT host FROM mysql.user WHERE user = 'opensips' ORDER BY host;")).trim().split("\n");
                assert.deepEqual(grants, hostsOf(model, "sip-proxy").map((p) => p.privateIp).sort());
            });

            it("answers an OPTIONS to the proxy itself with 200 over UDP and over SIP-TLS without a client certificate", async () => {
                const r = await runInNetns<{ status: number; overTls: number }>(rp!.nsRest, scenarioInput(rp!, "options"));
                assert.equal(r.status, 200);
                assert.equal(r.overTls, 200, "TLS on 5061 with the rendered certificate, checked against the stack CA");
            });

            it("challenges a REGISTER with an MD5 digest 401, accepts the right password over UDP and WSS, and refuses a wrong password, another user's AOR and an unknown user", async () => {
                interface Reg {
                    good: { statuses: number[]; contact: string | null; challenge: string | null };
                    wrongPassword: number[];
                    otherUsersAor: number[];
                    unknownUser: number[];
                    overWss: number[];
                    removed: number[];
                }
                const r = await runInNetns<Reg>(rp!.nsRest, scenarioInput(rp!, "register"));
                const realm = rp!.model.spec.sipDomain;
                assert.deepEqual(r.good.statuses, [401, 200]);
                assert.match(r.good.challenge ?? "", new RegExp(`^Digest realm="${realm.replace(/\./g, "\\.")}", nonce="[^"]+", qop="auth"`));
                assert.match(r.good.contact ?? "", /;expires=\d+/);
                assert.deepEqual(r.overWss, [401, 200], "a browser registering over WSS (certificate checked against the stack CA)");
                for (const [what, s] of [["wrong password", r.wrongPassword], ["another user's AOR", r.otherUsersAor], ["unknown user", r.unknownUser]] as const) {
                    assert.equal(s[0], 401, `${what}: first answer`);
                    assert.ok([401, 403].includes(s[1]), `${what}: expected 401 or 403 after credentials, got ${s[1]}`);
                }
                assert.equal(r.otherUsersAor[1], 403);
                assert.deepEqual(r.removed, [200, 200], "de-registration (Expires: 0) is accepted");
            });

            describe("calls through RTPEngine", function () {
                interface Calls {
                    registrations: number[];
                    browserToPhone: ObservedCall;
                    phoneToBrowser: ObservedCall;
                    trunkToBrowser: ObservedCall | null;
                    unauthenticated: number[];
                }
                let calls: Calls;
                let relayIps: string[];

                before(async function () {
                    if (!rp) this.skip();
                    relayIps = hostsOf(rp!.model, "media-relay").map((r) => r.publicIp!);
                    calls = await runInNetns<Calls>(rp!.nsRest, scenarioInput(rp!, "calls"), 90000);
                    assert.deepEqual(calls.registrations, [200, 200]);
                });

                it("gives a phone called from a browser plain RTP without ICE or DTLS, and the browser a DTLS-SRTP answer with ICE on a relay and setup:active (never passive)", () => {
                    const c = calls.browserToPhone;
                    assert.deepEqual(c.statuses, [407, 200], "a subscriber's INVITE is challenged, then connected");
                    assertPlainSdp(c.offerAtCallee, relayIps, "INVITE at the phone");
                    assertBrowserSdp(c.answerAtCaller, relayIps, rp!.model.spec.rtpPorts, "200 at the browser");
                    assert.ok(lines(c.answerAtCaller).includes("a=setup:active"), "rtpengine answers a browser's actpass as active: DTLS=passive races the ClientHello (DOMAIN-FACTS 9)");
                    assert.equal(c.byeStatus, 200);
                });

                it("gives a browser called from a phone a DTLS-SRTP offer with ICE and rtcp-mux (setup:actpass), and the phone a plain RTP answer", () => {
                    const c = calls.phoneToBrowser;
                    assert.deepEqual(c.statuses, [407, 200]);
                    assertBrowserSdp(c.offerAtCallee, relayIps, rp!.model.spec.rtpPorts, "INVITE at the browser");
                    assert.ok(lines(c.offerAtCallee).includes("a=setup:actpass"));
                    assertPlainSdp(c.answerAtCaller, relayIps, "200 at the phone");
                    assert.equal(c.byeStatus, 200);
                });

                it("connects a call from a trunk's source address to a registered browser without a challenge, and challenges the same call from elsewhere", function () {
                    if (!calls.trunkToBrowser) this.skip();
                    const c = calls.trunkToBrowser!;
                    assert.deepEqual(c.statuses, [200]);
                    assertBrowserSdp(c.offerAtCallee, relayIps, rp!.model.spec.rtpPorts, "INVITE from the trunk at the browser");
                    assertPlainSdp(c.answerAtCaller, relayIps, "200 at the trunk");
                    assert.deepEqual(calls.unauthenticated, [407]);
                });

                it("forks a call to a user on a phone and in a browser at once, giving each branch the SDP its transport needs", async () => {
                    interface Fork {
                        registrations: number[];
                        statuses: number[];
                        offerAtPhone: string;
                        offerAtBrowser: string;
                        answerAtCaller: string;
                        byeStatus: number;
                    }
                    const r = await runInNetns<Fork>(rp!.nsRest, scenarioInput(rp!, "fork"), 90000);
                    assert.deepEqual(r.registrations, [200, 200, 200]);
                    assert.deepEqual(r.statuses, [407, 200]);
                    assertBrowserSdp(r.offerAtBrowser, relayIps, rp!.model.spec.rtpPorts, "INVITE at the ringing browser branch");
                    assertPlainSdp(r.offerAtPhone, relayIps, "INVITE at the answering phone branch");
                    assertBrowserSdp(r.answerAtCaller, relayIps, rp!.model.spec.rtpPorts, "200 at the calling browser");
                    assert.equal(r.byeStatus, 200);
                });

                it("holds no dialog and no RTP relay session once the calls are hung up", async () => {
                    const fifo = rp!.tc.fifo;
                    const dialogs = await waitFor(
                        async () => {
                            const d = (await mi(fifo, "dlg_list")) as { Dialogs: unknown[] };
                            return d.Dialogs.length === 0 ? d : undefined;
                        },
                        { what: "no dialogs left", timeoutMs: 10000, intervalMs: 200 },
                    );
                    assert.deepEqual(dialogs.Dialogs, []);
                    assert.deepEqual(await mi(fifo, "rtp_relay_list"), []);
                });

                it("keeps the browser's registration on WSS and the phone's on UDP, flagged and bound to the advertised public sockets", async () => {
                    interface Contact { Contact: string; Socket: string; Cflags: string }
                    const ul = (await mi(rp!.tc.fifo, "ul_dump")) as { Domains: { AORs: { AOR: string; Contacts: Contact[] }[] }[] };
                    const byAor = new Map(ul.Domains[0].AORs.map((a) => [a.AOR, a.Contacts]));
                    const [browser, phone] = rp!.model.spec.subscribers;
                    const pub = sipPublicIp(rp!.model);
                    assert.deepEqual(byAor.get(browser)?.map((c) => c.Socket), [`wss:${pub}:${PORTS.wss}`]);
                    assert.deepEqual(byAor.get(phone)?.map((c) => c.Socket), [`udp:${pub}:${PORTS.sip}`]);
                    // the branch flag that picks the browser's media flags when it is called
                    assert.match(byAor.get(browser)![0].Cflags, /WEBRTC/);
                    assert.doesNotMatch(byAor.get(phone)![0].Cflags, /WEBRTC/);
                });
            });

            // last: it blocks the client address for pike's remove_latency (nested suites run after the tests above)
            describe("flood protection", function () {
                it("stops answering a source that floods, and keeps answering the trunk's source", async function () {
                    if (!rp) this.skip();
                    const r = await runInNetns<{ sent: number; answered: number; blockedAnswer: number | null; trunk: number | null }>(rp!.nsRest, scenarioInput(rp!, "flood"));
                    assert.ok(r.answered < r.sent / 2, `pike let ${r.answered} of ${r.sent} requests through`);
                    assert.equal(r.blockedAnswer, null, "a blocked source got an answer");
                    if (rp!.trunkIp) assert.equal(r.trunk, 200, "trunk sources are exempt from pike");
                });
            });

            it("serves Prometheus metrics on the private address only", async () => {
                const r = await rp!.nsRest.run("curl", ["-sS", "--max-time", "5", `http://${rp!.proxy.privateIp}:${PORTS.opensipsHttp}/metrics`]);
                assert.equal(r.code, 0, r.stderr);
                assert.match(r.stdout, /^opensips_\w+ \d+/m);
                const sockets = await rp!.nsProxy.listeningSockets("tcp");
                assert.ok(sockets.includes(`${rp!.proxy.privateIp}:${PORTS.opensipsHttp}`), `httpd sockets: ${sockets.join(", ")}`);
                assert.ok(!sockets.some((s) => s.endsWith(`:${PORTS.opensipsHttp}`) && !s.startsWith(rp!.proxy.privateIp)), "httpd must not listen on every address");
            });

            it("binds its SIP, WebSocket, cluster and metrics ports on the private address only", async () => {
                const servicePorts: number[] = [PORTS.sip, PORTS.sipTls, PORTS.wss, PORTS.ws, PORTS.bin, PORTS.opensipsHttp];
                const sockets = [...(await rp!.nsProxy.listeningSockets("tcp")), ...(await rp!.nsProxy.listeningSockets("udp"))].filter((s) =>
                    servicePorts.includes(Number(s.slice(s.lastIndexOf(":") + 1))),
                );
                assert.ok(sockets.length >= 5, `sockets: ${sockets.join(", ")}`);
                const own = [rp!.proxy.privateIp, sipListenIp(rp!.proxy)];
                assert.ok(sockets.every((s) => own.some((ip) => s.startsWith(`${ip}:`))), `sockets: ${sockets.join(", ")}`);
                rp!.opensips.assertRunning(rp!.secrets);
            });
        });
    }
});
