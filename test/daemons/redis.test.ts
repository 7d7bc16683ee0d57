// The rendered redis.conf under Debian's real redis-server 7.0, in a
// namespace holding the cache host's planned private address.
import { strict as assert } from "assert";
import * as path from "path";
import fc from "fast-check";
import type { GatewayModel } from "../../components/model";
import { hostsOf } from "../../components/model";
import { PORTS } from "../../components/ports";
import { renderCache, REDIS_CONF_PATH } from "../../components/render/redis";
import { TestNetns, requireTools } from "../support/netns";
import { redisCli, startRedis } from "../support/daemons";
import { EXAMPLE_STACKS, exampleModel, modelFor, secretValues, specArbitrary, writeTree } from "../support/stacks";

async function checkCache(model: GatewayModel): Promise<void> {
    const cache = hostsOf(model, "cache")[0];
    const secrets = secretValues(model);
    const pw = model.secrets.redisPassword;
    const ns = await TestNetns.create("redis", { addresses: [cache.privateIp] });
    try {
        const at = writeTree(path.join(ns.workDir, "root"), renderCache(model, cache));
        await startRedis(ns, at(REDIS_CONF_PATH), cache.privateIp, secrets);

        const anonymous = await redisCli(ns, cache.privateIp, ["PING"]);
        assert.match(anonymous.stdout + anonymous.stderr, /NOAUTH/, "a client without the password was served");
        const wrong = await redisCli(ns, cache.privateIp, ["PING"], `${pw}x`);
        assert.match(wrong.stdout + wrong.stderr, /WRONGPASS|invalid password/i, "a wrong password was accepted");
        const ok = await redisCli(ns, cache.privateIp, ["PING"], pw);
        assert.equal(ok.stdout.trim(), "PONG");
        // loopback too, for health checks on the box
        const local = await redisCli(ns, "127.0.0.1", ["PING"], pw);
        assert.equal(local.stdout.trim(), "PONG");

        const get = async (key: string) => (await redisCli(ns, cache.privateIp, ["CONFIG", "GET", key], pw)).stdout.trim().split("\n")[1];
        assert.equal(await get("maxmemory-policy"), "noeviction");
        assert.equal(await get("appendonly"), "no");
        assert.equal(await get("protected-mode"), "yes");
        assert.notEqual(await get("save"), "", "RDB snapshots are off");
        // db 0 for OpenSIPS plus one per media relay
        assert.ok(Number(await get("databases")) >= hostsOf(model, "media-relay").length + 1);

        // [::1] only where IPv6 is on ("-::1" in bind)
        const tcp = [...new Set(await ns.listeningSockets("tcp"))].filter((a) => a !== `[::1]:${PORTS.redis}`).sort();
        assert.deepEqual(tcp, [`${cache.privateIp}:${PORTS.redis}`, `127.0.0.1:${PORTS.redis}`].sort());
    } finally {
        await ns.destroy();
    }
}

describe("cache config under the real redis-server 7.0", function () {
    this.timeout(120000);
    before(function () {
        requireTools(this, "redis-server", "redis-cli");
    });

    for (const stack of EXAMPLE_STACKS) {
        it(`refuses clients without the password and serves those with it on the ${stack} stack's cache host`, async () => {
            await checkCache(exampleModel(stack));
        });
    }

    it("refuses clients without the password for generated stacks", async () => {
        await fc.assert(fc.asyncProperty(specArbitrary, async (spec) => checkCache(modelFor(spec))), { numRuns: 3 });
    });
});
