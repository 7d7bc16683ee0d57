import { strict as assert } from "assert";
import fc from "fast-check";
import { cidrContains, ipToInt, parseCidr, proxyVipPrivateIp } from "../../components/ipplan";
import { planHosts } from "../../components/model";
import { parseSpec } from "../../components/spec";

describe("VIP secondary addresses in the IP plan", () => {
    const specArb = fc
        .record({ second: fc.integer({ min: 0, max: 255 }), subnetPrefix: fc.integer({ min: 18, max: 26 }), zones: fc.integer({ min: 2, max: 3 }), turn: fc.integer({ min: 0, max: 9 }) })
        .map((g) =>
            parseSpec(
                {
                    sipDomain: "sip.example.com",
                    availabilityZones: ["eu-central-1a", "eu-central-1b", "eu-central-1c"].slice(0, g.zones),
                    vpcCidr: `10.${g.second}.0.0/16`,
                    subnetPrefixLength: g.subnetPrefix,
                    adminCidrs: ["198.51.100.0/28"],
                    sipPeerCidrs: ["0.0.0.0/0"],
                    sipProxyCount: 2,
                    vipFailover: true,
                    mediaRelayCount: 9,
                    databaseCount: 9,
                    turnCount: g.turn,
                },
                "prop",
            ),
        );

    it("gives each proxy of a VIP stack its own secondary address inside its subnet, clear of every host and the AWS-reserved ones", () => {
        fc.assert(
            fc.property(specArb, (spec) => {
                const hosts = planHosts(spec);
                const primary = new Set(hosts.map((h) => h.privateIp));
                const proxies = hosts.filter((h) => h.role === "sip-proxy");
                assert.equal(proxies.length, 2);
                for (const p of proxies) {
                    assert.ok(p.vipPrivateIp, `${p.name} has no VIP address`);
                    assert.ok(!primary.has(p.vipPrivateIp), `${p.vipPrivateIp} is a host's primary address`);
                    assert.ok(cidrContains(p.subnetCidr, `${p.vipPrivateIp}/32`));
                    const s = parseCidr(p.subnetCidr);
                    const offset = ipToInt(p.vipPrivateIp) - s.base;
                    assert.ok(offset >= 4 && offset < 2 ** (32 - s.prefix) - 1, `reserved offset ${offset}`);
                }
                assert.notEqual(proxies[0].vipPrivateIp, proxies[1].vipPrivateIp);
                for (const h of hosts) if (h.role !== "sip-proxy") assert.equal(h.vipPrivateIp, undefined);
            }),
        );
    });

    it("has no VIP address on a single-proxy stack", () => {
        const spec = parseSpec({ sipDomain: "sip.example.com", availabilityZones: ["eu-central-1a"], adminCidrs: ["198.51.100.0/28"], sipPeerCidrs: ["0.0.0.0/0"] }, "one");
        assert.ok(planHosts(spec).every((h) => h.vipPrivateIp === undefined));
    });

    it("refuses a third proxy index (a VIP is shared by two proxies)", () => {
        assert.throws(() => proxyVipPrivateIp("10.0.0.0/24", 2), /outside 0\.\.1/);
    });
});
