// The prod stack end to end in the local lab: ten VM-like hosts converged by
// the plan's steps over real SSH (as `pulumi up` runs them), clients on the
// lab's internet reaching the gateway only through its public addresses, and
// the faults the stack promises to survive, each with its measured figure.
import { strict as assert } from "assert";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { PORTS } from "../../components/ports";
import { hostsOf } from "../../components/model";
import { planDeployment } from "../../components/plan";
import { renderAll } from "../../components/render";
import { labDown, labUp, UpResult, vipState } from "../../lab/gateway";
import { CLIENT_IPS, internetNs } from "../../lab/network";
import { runPlan } from "../../lab/runner";
import { waitUntil } from "../../lab/host";
import { LocalOpensips } from "../../lab/opensips";
import { restCredentials, METHOD } from "../support/stun";
import { Agent, AgentEvent } from "./agent";
import { Sipp, SippPhone, sdpOf, tracedMessages } from "./sipp";
import { labOpensips, labUnavailable, ngDict, ngFrom, on, rtpPacketsOf } from "./support";

const SUCCESS = (method: number) => method | 0x0100;
const mLine = (sdp: string) => sdp.split(/\r?\n/).find((l) => l.startsWith("m=audio")) ?? "";
const cAddr = (sdp: string) => /^c=IN IP4 (\S+)/m.exec(sdp)?.[1];
const figure = (what: string, value: string) => console.log(`      figure: ${what}: ${value}`);

describe("the prod stack in the local lab (VM-like hosts, the plan's steps over real SSH)", function () {
    this.timeout(5 * 60_000);
    const id = `t${crypto.randomBytes(3).toString("hex")}`;
    let up: UpResult | undefined;
    let started = false;
    let agent: Agent | undefined;
    let sipp: Sipp;
    let work: string;
    let phone: SippPhone;
    let domain: string;
    let vip: string;

    const proxy = () => `${vip}:${PORTS.sip}`;
    const gl = () => up!;
    const activeProxy = () => vipState(gl()).current?.host;
    const hostByPublicIp = (ip: string | undefined) => gl().model.hosts.find((h) => gl().addrs.publicIps[h.name] === ip);
    const openBrowser = async (name: string, user: string, localAddress: string) => {
        await agent!.request({ op: "wss", name, user, password: gl().model.secrets.subscriberPasswords[user], domain, localAddress, url: `wss://${vip}:${PORTS.wss}/`, ca: gl().model.secrets.tls.caPem, reconnect: true });
        return agent!.request<{ statuses: number[] }>({ op: "register", name });
    };

    /** The browser (alice, WSS) calls the sipp phone (bob); resolves with both sides' SDP and the relay's RTP count from the phone. */
    async function browserCallsPhone(): Promise<{ statuses: number[]; answer: string; offerAtPhone: string; relay: string; rtpFromPhone: number; dialog: string; setupMs: number }> {
        const answering = sipp.answer(phone, proxy());
        // sipp binds its port at start: wait until it listens before the call is placed
        await waitForUdp(internetNs(id), phone.ip, phone.port);
        const t0 = Date.now();
        const c = await agent!.request<{ statuses: number[]; answer: string; dialog: string }>({ op: "call", from: "alice", toUser: "bob", sdp: "webrtc", mediaIp: CLIENT_IPS[0], mediaPort: 50000 });
        const setupMs = Date.now() - t0;
        const relay = hostByPublicIp(cAddr(c.answer));
        assert.ok(relay, `the answer's media address ${cAddr(c.answer)} is no relay's public address`);
        // sipp streams RTP after the ACK: poll the relay's counters (ng query, sent from a proxy) until packets arrived
        const query = ngDict({ command: "query", "call-id": c.dialog });
        let rtp = 0;
        const deadline = Date.now() + 10_000;
        while (rtp === 0 && Date.now() < deadline) rtp = rtpPacketsOf(await ngFrom(gl(), "sip-proxy-1", relay!.privateIp, query));
        const bye = await agent!.request<{ status: number }>({ op: "bye", dialog: c.dialog });
        assert.equal(bye.status, 200);
        const r = await answering;
        assert.equal(r.code, 0, `sipp answering: ${r.errors}`);
        const inv = tracedMessages(r.messages, /^INVITE /);
        return { statuses: c.statuses, answer: c.answer, offerAtPhone: sdpOf(inv[0] ?? ""), relay: relay!.name, rtpFromPhone: rtp, dialog: c.dialog, setupMs };
    }

    before(async function () {
        this.timeout(25 * 60_000);
        const why = labUnavailable({ opensips: true });
        if (why) {
            console.log(`      SKIPPED: ${why}`);
            this.skip();
        }
        const o = labOpensips() as LocalOpensips;
        const t0 = Date.now();
        started = true;
        up = await labUp({ stack: "prod", id, opensipsPrefix: o.prefix, healthSeconds: 30 });
        if (up.run.failed) throw new Error(`${up.run.failed.id} failed:\n${up.run.failed.stdout}\n${up.run.failed.stderr}`);
        figure("prod lab converge (hosts + push)", `${((Date.now() - t0) / 1000).toFixed(1)} s (hosts ${(up.timings.hostsMs / 1000).toFixed(1)} s, push ${(up.timings.pushMs / 1000).toFixed(1)} s)`);
        domain = up.model.spec.sipDomain;
        vip = up.model.vip!.publicIp;
        work = fs.mkdtempSync(path.join(os.tmpdir(), `ifbt-lab-${id}-`));
        sipp = Sipp.create(path.join(work, "sipp"), internetNs(id));
        phone = { user: "bob", password: up.model.secrets.subscriberPasswords.bob, domain, ip: CLIENT_IPS[1], port: 5070, mediaPort: 40000 };
        agent = Agent.start(internetNs(id));
    });

    after(function () {
        this.timeout(60_000);
        agent?.stop();
        if (work) fs.rmSync(work, { recursive: true, force: true });
        // also when up failed half way: labDown clears whatever of this lab exists
        if (started) assert.deepEqual(labDown(id), [], "the lab left namespaces, mounts or cgroups behind");
    });

    describe("services", () => {
        it("converged every host from bare through the plan: each step ran once and succeeded", () => {
            assert.equal(up!.run.failed, undefined);
            assert.equal(up!.run.runs.length, up!.plan.steps.length);
            assert.ok(up!.run.runs.every((r) => r.code === 0));
        });

        it("forms one Galera cluster: three nodes, each a Synced member of the Primary component", async () => {
            for (const db of hostsOf(gl().model, "database")) {
                const st = await on(gl(), db.name, `mariadb -N -B -e "SHOW GLOBAL STATUS WHERE Variable_name IN ('wsrep_cluster_size','wsrep_cluster_status','wsrep_local_state_comment')" | cut -f2 | paste -sd' '`);
                assert.deepEqual(st.split(" ").sort(), ["3", "Primary", "Synced"], db.name);
            }
        });

        it("Redis refuses a client without the password and answers one with it", async () => {
            const cache = hostsOf(gl().model, "cache")[0];
            // from a relay, which the security group admits (the lab's base root has redis-cli on every host)
            const anon = await on(gl(), "media-relay-1", `redis-cli -h ${cache.privateIp} -p ${PORTS.redis} ping 2>&1 || true`);
            assert.match(anon, /NOAUTH/);
            const authed = await on(gl(), cache.name, `REDISCLI_AUTH="$(awk '$1=="requirepass"{print $2}' /etc/redis/redis.conf)" redis-cli --no-auth-warning -h ${cache.privateIp} ping`);
            assert.equal(authed, "PONG");
        });

        it("rtpengine answers ng from the proxies only (security group), not from other hosts or the internet", async () => {
            const ping = ngDict({ command: "ping" });
            for (const relay of hostsOf(gl().model, "media-relay")) {
                assert.match(await ngFrom(gl(), "sip-proxy-1", relay.privateIp, ping), /d6:result4:ponge/, `${relay.name} from sip-proxy-1`);
                assert.match(await ngFrom(gl(), "sip-proxy-2", relay.privateIp, ping), /d6:result4:ponge/, `${relay.name} from sip-proxy-2`);
                assert.equal(await ngFrom(gl(), "cache-1", relay.privateIp, ping), "", `${relay.name} answered ng from cache-1`);
                const fromNet = await runIn(internetNs(id), "sh", ["-c", `printf 'x1 %s' '${ping}' | timeout 4 socat -T2 - UDP:${gl().addrs.publicIps[relay.name]}:${PORTS.rtpengineNg} || true`]);
                assert.equal(fromNet, "", `${relay.name} answered ng from the internet`);
            }
        });

        it("TURN grants an allocation with REST API credentials and refuses to relay to a private lab address", async () => {
            const turn = hostsOf(gl().model, "turn")[0];
            const relay = hostsOf(gl().model, "media-relay")[0];
            const creds = restCredentials(gl().model.secrets.turnSharedSecret, "lab-test");
            const r = await agent!.request<{ allocate: { type: number; relayed?: { ip: string } }; wrongPassword: { code?: number }; permissions: { peer: string; type: number; code?: number }[] }>({
                op: "turn",
                plan: { server: gl().addrs.publicIps[turn.name], port: PORTS.turn, bind: CLIENT_IPS[2], ...creds, wrongPassword: `${creds.password}x`, peers: [gl().addrs.publicIps[relay.name], relay.privateIp] },
            });
            assert.equal(r.allocate.type, SUCCESS(METHOD.allocate), "allocation granted");
            assert.equal(r.allocate.relayed?.ip, gl().addrs.publicIps[turn.name], "relayed address is the TURN server's public one");
            assert.equal(r.wrongPassword.code, 401);
            assert.equal(r.permissions[0].type, SUCCESS(METHOD.createPermission), "permission to a relay's public address");
            assert.equal(r.permissions[1].code, 403, "no permission to a private lab address");
        });
    });

    describe("signaling and media through the VIP", () => {
        it("registers a browser over WSS with digest auth (401, then 200)", async () => {
            const r = await openBrowser("alice", "alice", CLIENT_IPS[0]);
            assert.deepEqual(r.statuses, [401, 200]);
        });

        it("registers a sipp phone over UDP with digest auth", async () => {
            const r = await sipp.register(phone, proxy());
            assert.equal(r.code, 0, r.errors);
            assert.equal(tracedMessages(r.messages, /^SIP\/2\.0 200 /).length, 1);
        });

        it("bridges the browser's call to the phone: RTP/AVP without ICE at sipp, DTLS-SRTP with ICE on the relay at the browser, sipp's RTP reaches the relay, BYE releases the relay session", async () => {
            const c = await browserCallsPhone();
            assert.deepEqual(c.statuses, [407, 200]);
            assert.match(mLine(c.offerAtPhone), /^m=audio \d+ RTP\/AVP /, c.offerAtPhone);
            assert.doesNotMatch(c.offerAtPhone, /a=(ice-ufrag|candidate|fingerprint)/);
            const relayIps = hostsOf(gl().model, "media-relay").map((r) => gl().addrs.publicIps[r.name]);
            assert.ok(relayIps.includes(cAddr(c.offerAtPhone)!), "the phone's media goes to a relay");
            assert.match(mLine(c.answer), /^m=audio \d+ UDP\/TLS\/RTP\/SAVPF /);
            assert.match(c.answer, /^a=ice-ufrag:/m);
            assert.match(c.answer, /^a=fingerprint:sha-256 /m);
            assert.match(c.answer, new RegExp(`^a=candidate:.* ${cAddr(c.answer)!.replace(/\./g, "\\.")} \\d+ typ host`, "m"));
            assert.ok(c.rtpFromPhone > 0, `RTP from sipp counted at ${c.relay}`);
            figure(`RTP packets from sipp counted at ${c.relay}`, String(c.rtpFromPhone));
            const list = await on(gl(), activeProxy()!, "opensips-cli -x mi rtp_relay_list");
            assert.deepEqual(JSON.parse(list), [], "no rtp_relay session left after the BYE");
        });

        it("bridges the phone's call to the browser: DTLS-SRTP with ICE at the browser, RTP/AVP back at sipp", async () => {
            const from = agent!.events.length;
            await agent!.request({ op: "answer", name: "alice", sdp: "webrtc", mediaIp: CLIENT_IPS[0], mediaPort: 50002 });
            const r = await sipp.call(phone, proxy(), "alice");
            assert.equal(r.code, 0, r.errors);
            const inv = await agent!.waitEvent((e) => e.event === "invite" && e.name === "alice", "the INVITE at the browser", 10_000, from);
            const offer = String(inv.sdp);
            assert.match(mLine(offer), /^m=audio \d+ UDP\/TLS\/RTP\/SAVPF /);
            assert.match(offer, /^a=ice-ufrag:/m);
            assert.match(offer, /^a=fingerprint:sha-256 /m);
            assert.match(offer, /^a=setup:actpass/m);
            const ok = tracedMessages(r.messages, /^SIP\/2\.0 200 /).map(sdpOf).find((b) => b.includes("m=audio"))!;
            assert.match(mLine(ok), /^m=audio \d+ RTP\/AVP /);
            assert.doesNotMatch(ok, /a=(ice-ufrag|candidate|fingerprint)/);
            await agent!.waitEvent((e) => e.event === "bye" && e.name === "alice", "the BYE at the browser", 10_000, from);
        });
    });

    describe("faults, each with its figure", () => {
        it("refuses an invalid opensips.cfg for the VIP holder: the step fails with opensips' own message, the proxy keeps serving with the old config", async () => {
            const host = activeProxy()!;
            const unit = () => on(gl(), host, "systemctl show -p InvocationID --value opensips; sha256sum /etc/opensips/opensips.cfg");
            const before = await unit();
            const files = renderAll(gl().model).map((hf) =>
                hf.host !== host ? hf : { ...hf, files: hf.files.map((f) => (f.path.endsWith("/opensips.cfg") ? { ...f, content: f.content.replace("loadmodule \"sl.so\"", "loadmodule \"sl.so\"\nloadmodule \"no_such_module.so\"") } : f)) },
            );
            const plan = planDeployment(gl().model, files, { remoteUser: "root", hosts: [host] });
            const r = await runPlan({ ...plan, steps: plan.steps.filter((s) => s.kind === "apply").map((s) => ({ ...s, dependsOn: [] })) }, gl().lab, { force: true });
            assert.ok(r.failed, "the apply step must fail");
            assert.match(r.failed!.stderr, /no_such_module/);
            assert.match(r.failed!.stderr, /rejected by opensips-cfg check; live files unchanged, nothing restarted/);
            assert.equal(await unit(), before, "same OpenSIPS process, same live config");
            const reg = await agent!.request<{ statuses: number[] }>({ op: "register", name: "alice" });
            assert.deepEqual(reg.statuses, [401, 200], "still registering through the VIP");
        });

        it("re-running up converges without restarting anything (every step forced, then none run)", async () => {
            const units = async () =>
                Promise.all(gl().model.hosts.map((h) => on(gl(), h.name, "systemctl show -p InvocationID --value opensips keepalived rtpengine-daemon mariadb redis-server coturn | paste -sd,")));
            const before = await units();
            const forced = await labUp({ stack: "prod", id, force: true, healthSeconds: 30 });
            assert.equal(forced.run.failed, undefined, forced.run.failed && forced.run.failed.stderr);
            assert.equal(forced.run.runs.length, forced.plan.steps.length);
            const out = forced.run.runs.map((x) => x.stdout).join("\n");
            assert.doesNotMatch(out, /restarted:|started \(was not running\)/);
            assert.deepEqual(await units(), before);
            const again = await labUp({ stack: "prod", id, healthSeconds: 30 });
            assert.equal(again.run.runs.length, 0, "no remote command for an unchanged plan");
            figure("no-op re-run of up", `${(again.timings.totalMs / 1000).toFixed(2)} s, 0 steps; forced re-run ${(forced.timings.pushMs / 1000).toFixed(1)} s, 0 restarts`);
        });

        it("with one relay killed, new calls use the other relay", async () => {
            const first = await browserCallsPhone();
            await gl().lab.killHost(first.relay);
            try {
                const second = await browserCallsPhone();
                assert.deepEqual(second.statuses, [407, 200]);
                assert.notEqual(second.relay, first.relay);
                assert.ok(second.rtpFromPhone > 0);
                figure(`call setup with ${first.relay} dead`, `${(second.setupMs / 1000).toFixed(2)} s (first call ${(first.setupMs / 1000).toFixed(2)} s), media on ${second.relay}`);
            } finally {
                await gl().lab.rebootHost(first.relay);
            }
        });

        it("with one Galera node killed, writes continue, no committed row is lost, and the node rejoins", async () => {
            const [db1, db2, db3] = hostsOf(gl().model, "database").map((h) => h.name);
            await on(gl(), db2, "mariadb -e 'CREATE DATABASE IF NOT EXISTS labprobe; CREATE TABLE IF NOT EXISTS labprobe.rows (n INT PRIMARY KEY, at BIGINT)'");
            // a writer on db2 commits one row per statement and logs each acknowledged one
            await on(gl(), db2, `setsid -f bash -c 'for i in $(seq 1 400); do if mariadb -e "INSERT INTO labprobe.rows VALUES ($i, $(date +%s%3N))"; then echo "$i $(date +%s%3N)"; fi; done >/root/acked; echo done >/root/writer.done' </dev/null >/dev/null 2>&1`);
            const acked = async () => (await on(gl(), db2, "cat /root/acked")).split("\n").filter(Boolean).map((l) => l.split(" ").map(Number));
            await waitUntil("100 acknowledged rows", 60_000, async () => (await acked()).length >= 100, 250);
            const killedAt = Date.now();
            await gl().lab.killHost(db1);
            await waitUntil("the writer to finish", 120_000, async () => (await gl().lab.ssh(db2, "test -f /root/writer.done")).code === 0, 250);
            const rows = await acked();
            const after = rows.filter(([, at]) => at > killedAt);
            assert.ok(after.length > 0, "writes continued after the kill");
            const stall = Math.max(...rows.slice(1).map(([, at], i) => at - rows[i][1]));
            for (const db of [db2, db3]) {
                const have = new Set((await on(gl(), db, "mariadb -N -e 'SELECT n FROM labprobe.rows'")).split("\n").map(Number));
                assert.deepEqual(rows.filter(([n]) => !have.has(n)).map(([n]) => n), [], `acknowledged rows missing on ${db}`);
            }
            const t0 = Date.now();
            await gl().lab.rebootHost(db1);
            await waitUntil(`${db1} to rejoin as Synced`, 180_000, async () => {
                const r = await gl().lab.ssh(db1, "mariadb -N -B -e \"SHOW GLOBAL STATUS WHERE Variable_name IN ('wsrep_cluster_size','wsrep_local_state_comment')\" | cut -f2 | paste -sd' '");
                return r.stdout.trim().split(" ").sort().join(" ") === "3 Synced";
            }, 250);
            const rejoin = (Date.now() - t0) / 1000;
            const have1 = Number(await on(gl(), db1, "mariadb -N -e 'SELECT COUNT(*) FROM labprobe.rows'"));
            assert.equal(have1, Number(await on(gl(), db2, "mariadb -N -e 'SELECT COUNT(*) FROM labprobe.rows'")), "the rejoined node holds every row");
            figure("Galera node kill", `${rows.length} rows acknowledged (${after.length} after the kill), 0 lost; longest pause between commits ${(stall / 1000).toFixed(2)} s; rejoined (boot + IST) in ${rejoin.toFixed(1)} s`);
        });

        it("with the active proxy's link cut, the VIP moves, the browser reconnects and re-registers, the phone's registration is still found", async () => {
            const active = activeProxy();
            assert.ok(active, "the VIP is associated");
            const other = hostsOf(gl().model, "sip-proxy").find((h) => h.name !== active)!.name;
            const from = agent!.events.length;
            const t0 = Date.now();
            gl().lab.setLink(active!, false);
            try {
                await waitUntil("the VIP to move", 30_000, async () => activeProxy() === other, 50);
                const moved = (vipState(gl()).current!.at - t0) / 1000;
                const rereg = await agent!.waitEvent((e: AgentEvent) => e.event === "reregistered" && e.name === "alice", "alice re-registered", 30_000, from);
                assert.deepEqual(rereg.statuses, [401, 200]);
                const contacts = await on(gl(), other, `opensips-cli -x mi ul_show_contact location bob@${domain}`);
                assert.match(contacts, new RegExp(`${phone.ip.replace(/\./g, "\\.")}:${phone.port}`), "bob's UDP contact is on the new master");
                figure("VIP failover (link cut to EIP moved)", `${moved.toFixed(2)} s (target <= 5 s)`);
                figure("browser back (link cut to re-registered)", `${((rereg.at - t0) / 1000).toFixed(2)} s`);
                // and the gateway still bridges calls through the new master
                const c = await browserCallsPhone();
                assert.deepEqual(c.statuses, [407, 200]);
            } finally {
                gl().lab.setLink(active!, true);
            }
        });
    });
});

/** Run a command inside a namespace; its stdout. */
async function runIn(netns: string, cmd: string, args: string[]): Promise<string> {
    const { run } = await import("../support/netns");
    const r = await run("nsenter", [`--net=/run/netns/${netns}`, "--", cmd, ...args], { timeoutMs: 15_000 });
    return r.stdout;
}

/** Wait until something listens on udp ip:port in the namespace. */
async function waitForUdp(netns: string, ip: string, port: number): Promise<void> {
    await waitUntil(`udp ${ip}:${port} in ${netns}`, 10_000, async () => (await runIn(netns, "ss", ["-Hnlu", "src", `${ip}:${port}`])).trim() !== "", 50);
}
