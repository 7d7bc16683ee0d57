import { strict as assert } from "assert";
import fc from "fast-check";
import { cidrContains, cidrsOverlap, hostPrivateIp, intToIp, ipToInt, nthSubnet, parseCidr, MAX_HOSTS_PER_ROLE } from "../../components/ipplan";
import { planHosts } from "../../components/model";
import { parseSpec } from "../../components/spec";
import { maxCallsPerRelay, rangesOverlap, rangeSize, ROLES, PORTS, fixedPortsOf } from "../../components/ports";

const zoneNames = ["eu-central-1a", "eu-central-1b", "eu-central-1c"];

/** A valid HA or single-node spec from generated counts and addressing. */
const specArb = fc
    .record({
        zones: fc.integer({ min: 1, max: 3 }),
        second: fc.integer({ min: 0, max: 255 }),
        vpcPrefix: fc.integer({ min: 16, max: 22 }),
        subnetExtra: fc.integer({ min: 2, max: 4 }),
        relays: fc.integer({ min: 1, max: 9 }),
        db: fc.constantFrom(1, 3, 5, 7, 9),
        turn: fc.integer({ min: 0, max: 9 }),
        proxies: fc.constantFrom(1, 2),
    })
    .map((g) => {
        const prefix = g.vpcPrefix;
        const base = ipToInt(`10.${g.second}.0.0`);
        const vpc = `${intToIp(base)}/${prefix}`;
        const ha = g.proxies === 2 || g.db > 1 || g.relays > 1;
        const zones = ha ? Math.max(2, g.zones) : g.zones;
        return parseSpec(
            {
                sipDomain: "sip.example.com",
                availabilityZones: zoneNames.slice(0, zones),
                vpcCidr: vpc,
                subnetPrefixLength: Math.min(26, prefix + g.subnetExtra),
                adminCidrs: ["198.51.100.0/28"],
                sipPeerCidrs: ["0.0.0.0/0"],
                sipProxyCount: g.proxies,
                vipFailover: g.proxies === 2,
                mediaRelayCount: g.relays,
                databaseCount: g.db,
                turnCount: g.turn,
            },
            "prop",
        );
    });

describe("IP plan", () => {
    it("round-trips any IPv4 address through its integer form", () => {
        fc.assert(fc.property(fc.integer({ min: 0, max: 2 ** 32 - 1 }), (n) => ipToInt(intToIp(n)) === n));
    });

    it("carves subnets that lie inside the VPC and never overlap each other", () => {
        fc.assert(
            fc.property(fc.integer({ min: 8, max: 24 }), fc.integer({ min: 1, max: 6 }), (vpcPrefix, extra) => {
                const vpc = `10.0.0.0/${vpcPrefix}`;
                const prefix = Math.min(30, vpcPrefix + extra);
                const count = Math.min(8, 2 ** (prefix - vpcPrefix));
                const subnets = Array.from({ length: count }, (_, i) => nthSubnet(vpc, prefix, i));
                for (const s of subnets) assert.ok(cidrContains(vpc, s), `${s} outside ${vpc}`);
                for (let i = 0; i < subnets.length; i++) for (let j = i + 1; j < subnets.length; j++) assert.ok(!cidrsOverlap(subnets[i], subnets[j]), `${subnets[i]} overlaps ${subnets[j]}`);
            }),
        );
    });

    it("gives every host a unique address inside its own subnet, clear of the AWS-reserved ones", () => {
        fc.assert(
            fc.property(specArb, (spec) => {
                const hosts = planHosts(spec);
                const ips = hosts.map((h) => h.privateIp);
                assert.equal(new Set(ips).size, ips.length, `duplicate address in ${ips}`);
                for (const h of hosts) {
                    assert.ok(cidrContains(h.subnetCidr, `${h.privateIp}/32`), `${h.name} ${h.privateIp} outside ${h.subnetCidr}`);
                    const s = parseCidr(h.subnetCidr);
                    const offset = ipToInt(h.privateIp) - s.base;
                    // AWS reserves .0-.3 and the broadcast address of every subnet.
                    assert.ok(offset >= 4 && offset < 2 ** (32 - s.prefix) - 1, `${h.name} at reserved offset ${offset}`);
                }
            }),
            { numRuns: 200 },
        );
    });

    it("is deterministic: the same spec always yields the same plan (a rebuild reproduces it)", () => {
        fc.assert(fc.property(specArb, (spec) => assert.deepEqual(planHosts(spec), planHosts(JSON.parse(JSON.stringify(spec))))));
    });

    it("spreads replicated roles over the availability zones", () => {
        fc.assert(
            fc.property(specArb, (spec) => {
                for (const role of ROLES) {
                    const hosts = planHosts(spec).filter((h) => h.role === role);
                    if (hosts.length >= 2 && spec.availabilityZones.length >= 2) assert.ok(new Set(hosts.map((h) => h.zone)).size >= 2, `${role} all in one zone`);
                }
            }),
        );
    });

    it("keeps addresses stable when a role grows (existing hosts keep theirs)", () => {
        fc.assert(
            fc.property(specArb, fc.integer({ min: 1, max: 3 }), (spec, more) => {
                const grown = { ...spec, mediaRelayCount: Math.min(MAX_HOSTS_PER_ROLE, spec.mediaRelayCount + more) };
                const before = new Map(planHosts(spec).map((h) => [h.name, h.privateIp]));
                for (const h of planHosts(grown)) if (before.has(h.name)) assert.equal(h.privateIp, before.get(h.name));
            }),
        );
    });

    it("refuses a host index outside the plan", () => {
        assert.throws(() => hostPrivateIp("10.0.0.0/24", "turn", MAX_HOSTS_PER_ROLE), /outside/);
    });
});

describe("port range arithmetic", () => {
    const rangeArb = fc.tuple(fc.integer({ min: 1024, max: 65535 }), fc.integer({ min: 1024, max: 65535 })).map(([a, b]) => ({ min: Math.min(a, b), max: Math.max(a, b) }));

    it("treats overlap as symmetric and exactly as sharing a port", () => {
        fc.assert(
            fc.property(rangeArb, rangeArb, (a, b) => {
                assert.equal(rangesOverlap(a, b), rangesOverlap(b, a));
                const shared = Math.max(a.min, b.min) <= Math.min(a.max, b.max);
                assert.equal(rangesOverlap(a, b), shared);
            }),
        );
    });

    it("counts 4 ports per call and never more calls than a quarter of the range", () => {
        fc.assert(
            fc.property(rangeArb, (r) => {
                const calls = maxCallsPerRelay(r);
                assert.ok(calls * 4 <= rangeSize(r));
                assert.ok((calls + 1) * 4 > rangeSize(r));
            }),
        );
        assert.equal(maxCallsPerRelay({ min: 10000, max: 20000 }), 2500);
    });

    it("accepts any RTP range that is disjoint from TURN and service ports, and refuses any that is not", () => {
        fc.assert(
            fc.property(rangeArb, (rtp) => {
                const raw = { sipDomain: "sip.example.com", availabilityZones: ["eu-central-1a"], adminCidrs: ["198.51.100.0/28"], sipPeerCidrs: ["0.0.0.0/0"], rtpPorts: rtp };
                const clash = rtp.min === rtp.max || rangesOverlap(rtp, { min: 49160, max: 49999 }) || fixedPortsOf("media-relay").some((p) => p >= rtp.min && p <= rtp.max) || rangeSize(rtp) < 100;
                let ok = true;
                try {
                    parseSpec(raw, "prop");
                } catch {
                    ok = false;
                }
                assert.equal(ok, !clash, `range ${rtp.min}-${rtp.max}`);
            }),
            { numRuns: 300 },
        );
    });

    it("keeps every fixed port unique per role", () => {
        for (const role of ROLES) {
            const ports = fixedPortsOf(role);
            assert.equal(new Set(ports).size, ports.length, role);
        }
        assert.equal(PORTS.rtpengineNg, 22222);
    });
});
