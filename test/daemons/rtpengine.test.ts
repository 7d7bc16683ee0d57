// The rendered media relay files under Debian's real rtpengine 10.5, with the
// rendered Redis behind it, in a namespace holding the planned private
// addresses of the relay and the cache host.
import { strict as assert } from "assert";
import * as fs from "fs";
import * as path from "path";
import fc from "fast-check";
import type { GatewayModel, HostModel } from "../../components/model";
import { hostsOf } from "../../components/model";
import { PORTS } from "../../components/ports";
import { renderMediaRelay, rtpengineRedisDb, RTPENGINE_CONF_PATH, RTPENGINE_DEFAULTS_PATH } from "../../components/render/rtpengine";
import { renderCache, REDIS_CONF_PATH } from "../../components/render/redis";
import { TestNetns, requireTools } from "../support/netns";
import { ngRequestInNetns, plainAudioOffer } from "../support/ng";
import { redisCli, startRedis, startRtpengine } from "../support/daemons";
import { EXAMPLE_STACKS, exampleModel, modelFor, secretValues, specArbitrary, writeTree } from "../support/stacks";
import { waitFor } from "../support/wait";

/** Start Redis and the relay from rendered files; ping, offer, and find the call in the relay's Redis db. */
async function checkRelay(model: GatewayModel, relay: HostModel): Promise<void> {
    const cache = hostsOf(model, "cache")[0];
    const secrets = secretValues(model);
    const ns = await TestNetns.create("rtpe", { addresses: [relay.privateIp, cache.privateIp] });
    try {
        const files = [...renderMediaRelay(model, relay), ...renderCache(model, cache)];
        const at = writeTree(path.join(ns.workDir, "root"), files);
        await startRedis(ns, at(REDIS_CONF_PATH), cache.privateIp, secrets);
        const rtpe = await startRtpengine(ns, at(RTPENGINE_CONF_PATH), at(RTPENGINE_DEFAULTS_PATH), relay.privateIp, secrets);

        const pong = await ngRequestInNetns(ns, relay.privateIp, PORTS.rtpengineNg, { command: "ping" });
        assert.equal(pong.result, "pong");

        const callId = `ifbt-${Date.now()}@test`;
        const offer = await ngRequestInNetns(ns, relay.privateIp, PORTS.rtpengineNg, {
            command: "offer",
            "call-id": callId,
            "from-tag": "caller-tag",
            sdp: plainAudioOffer("192.0.2.50", 40000),
            replace: ["origin", "session-connection"],
            ICE: "remove",
        });
        assert.equal(offer.result, "ok", `offer failed: ${JSON.stringify(offer)}`);
        const sdp = String(offer.sdp);
        // media is advertised on the relay's public address, from the stack's port range
        assert.match(sdp, new RegExp(`c=IN IP4 ${relay.publicIp!.replace(/\./g, "\\.")}\\r\\n`));
        const port = Number(/m=audio (\d+) /.exec(sdp)?.[1]);
        assert.ok(port >= model.spec.rtpPorts.min && port <= model.spec.rtpPorts.max, `media port ${port} outside ${model.spec.rtpPorts.min}-${model.spec.rtpPorts.max}`);
        assert.ok(await ns.isListening("udp", relay.privateIp, port), `rtpengine does not hold ${relay.privateIp}:${port}`);

        // the call state reached this relay's own Redis database, authenticated with the rendered password
        const db = String(rtpengineRedisDb(relay));
        const keys = await waitFor(
            async () => {
                rtpe.assertRunning(secrets);
                const r = await redisCli(ns, cache.privateIp, ["-n", db, "--scan"], model.secrets.redisPassword);
                return r.stdout.includes(callId) ? r.stdout : undefined;
            },
            { what: `call ${callId} in Redis db ${db}`, timeoutMs: 10000, intervalMs: 100 },
        );
        assert.ok(keys.includes(callId));

        const del = await ngRequestInNetns(ns, relay.privateIp, PORTS.rtpengineNg, { command: "delete", "call-id": callId, "from-tag": "caller-tag" });
        assert.equal(del.result, "ok");
        assert.ok(rtpe.running, `rtpengine died:\n${rtpe.logTail(secrets)}`);
    } finally {
        await ns.destroy();
    }
}

describe("media relay config under the real rtpengine 10.5", function () {
    this.timeout(180000);
    before(function () {
        requireTools(this, "rtpengine", "redis-server", "redis-cli");
    });

    for (const stack of EXAMPLE_STACKS) {
        it(`answers an ng ping and an offer on the ${stack} stack's relays and stores the call in the relay's own Redis database`, async () => {
            const model = exampleModel(stack);
            for (const relay of hostsOf(model, "media-relay")) await checkRelay(model, relay);
        });
    }

    it("answers an ng ping and an offer for generated stacks (CIDRs, counts, port ranges)", async () => {
        await fc.assert(
            fc.asyncProperty(specArbitrary, async (spec) => {
                const model = modelFor(spec);
                const relays = hostsOf(model, "media-relay");
                await checkRelay(model, relays[relays.length - 1]);
            }),
            { numRuns: 3 },
        );
    });

    it("refuses to start with kernel forwarding when the kernel module is missing, instead of silently forwarding in userspace", async function () {
        // a machine with xt_RTPENGINE loaded cannot show the refusal
        if (fs.existsSync("/proc/rtpengine")) this.skip();
        const model = modelFor({ ...exampleModel("dev").spec, rtpengineForwarding: "kernel" });
        const relay = hostsOf(model, "media-relay")[0];
        const ns = await TestNetns.create("rtpek", { addresses: [relay.privateIp] });
        try {
            const at = writeTree(path.join(ns.workDir, "root"), renderMediaRelay(model, relay));
            const d = ns.spawnDaemon("rtpengine", "rtpengine", ["-f", "-E", "--no-log-timestamps", "--pidfile", path.join(ns.workDir, "p"), "--config-file", at(RTPENGINE_CONF_PATH)]);
            const status = await d.waitExit(15000);
            assert.notEqual(status.code, 0, "rtpengine started although no kernel module is loaded");
            assert.match(d.log(secretValues(model)), /kernel/i);
        } finally {
            await ns.destroy();
        }
    });
});
