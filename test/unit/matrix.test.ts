import { strict as assert } from "assert";
import fc from "fast-check";
import { firewallRules, isOpenToInternet, INTERNAL_PORTS, FirewallRule } from "../../components/matrix";
import { parseSpec, GatewaySpec } from "../../components/spec";
import { PORTS } from "../../components/ports";
import { loadSpec } from "../../components/offline";

const cidrArb = fc.tuple(fc.integer({ min: 1, max: 223 }), fc.integer({ min: 0, max: 255 })).map(([a, b]) => `${a}.${b}.0.0/16`);

/** Valid specs over the knobs that shape the firewall. */
const specArb: fc.Arbitrary<GatewaySpec> = fc
    .record({
        proxies: fc.constantFrom(1, 2),
        db: fc.constantFrom(1, 3, 5),
        turn: fc.integer({ min: 0, max: 3 }),
        ws: fc.boolean(),
        peers: fc.array(cidrArb, { minLength: 1, maxLength: 3 }),
        trunkCidrs: fc.array(fc.array(cidrArb, { minLength: 1, maxLength: 2 }), { maxLength: 2 }),
        monitoring: fc.array(fc.constantFrom("10.40.200.0/24", "10.40.201.0/24"), { maxLength: 2 }).map((a) => [...new Set(a)]),
        rtpMin: fc.integer({ min: 10000, max: 17000 }),
    })
    .map((g) =>
        parseSpec(
            {
                sipDomain: "sip.example.com",
                availabilityZones: ["eu-central-1a", "eu-central-1b"],
                adminCidrs: ["198.51.100.0/28"],
                sipPeerCidrs: g.peers,
                sipProxyCount: g.proxies,
                vipFailover: g.proxies === 2,
                databaseCount: g.db,
                turnCount: g.turn,
                devAllowPlainWs: g.ws,
                monitoringCidrs: g.monitoring,
                rtpPorts: { min: g.rtpMin, max: g.rtpMin + 5000 },
                sipTrunks: g.trunkCidrs.map((cidrs, i) => ({ uri: `sip:trunk${i}.example.net:5060`, cidrs })),
            },
            "prop",
        ),
    );

const covers = (r: FirewallRule, port: number) => r.fromPort <= port && port <= r.toPort;

describe("port matrix (firewall rules as data)", () => {
    it("never opens an internal port, SSH or a non-TCP/UDP protocol to the whole internet, for any valid stack", () => {
        fc.assert(
            fc.property(specArb, (spec) => {
                for (const r of firewallRules(spec).filter(isOpenToInternet)) {
                    assert.ok(r.protocol === "tcp" || r.protocol === "udp", `${r.id} protocol ${r.protocol}`);
                    for (const p of [...INTERNAL_PORTS, PORTS.ssh]) assert.ok(!covers(r, p), `${r.id} covers ${p}`);
                }
            }),
            { numRuns: 200 },
        );
    });

    it("gives every rule a unique id and only targets roles that have hosts", () => {
        fc.assert(
            fc.property(specArb, (spec) => {
                const rules = firewallRules(spec);
                assert.equal(new Set(rules.map((r) => r.id)).size, rules.length);
                if (spec.turnCount === 0) assert.ok(!rules.some((r) => r.role === "turn" || ("role" in r.source && r.source.role === "turn")));
            }),
        );
    });

    it("admits BIN and VRRP only between two proxies, and Galera ports only between database nodes", () => {
        fc.assert(
            fc.property(specArb, (spec) => {
                const rules = firewallRules(spec);
                const bin = rules.filter((r) => covers(r, PORTS.bin) || r.protocol === "112");
                assert.equal(bin.length, spec.sipProxyCount === 2 ? 2 : 0);
                for (const r of bin) assert.deepEqual([r.role, r.source], ["sip-proxy", { role: "sip-proxy" }]);
                const galera = rules.filter((r) => [PORTS.galeraReplication, PORTS.galeraIst, PORTS.galeraSst].some((p) => r.protocol === "tcp" && covers(r, p)));
                assert.equal(galera.length, spec.databaseCount > 1 ? 3 : 0);
                for (const r of galera) assert.deepEqual([r.role, r.source], ["database", { role: "database" }]);
            }),
        );
    });

    it("opens SIP 5060/5061 to exactly the SIP peers and the trunks' source CIDRs", () => {
        fc.assert(
            fc.property(specArb, (spec) => {
                const expected = [...new Set([...spec.sipPeerCidrs, ...spec.sipTrunks.flatMap((t) => t.cidrs)])].sort();
                for (const [proto, port] of [["udp", PORTS.sip], ["tcp", PORTS.sip], ["tcp", PORTS.sipTls]] as const) {
                    const sources = firewallRules(spec)
                        .filter((r) => r.protocol === proto && covers(r, port))
                        .map((r) => ("cidr" in r.source ? r.source.cidr : JSON.stringify(r.source)))
                        .sort();
                    assert.deepEqual(sources, expected, `${proto}/${port}`);
                }
            }),
        );
    });

    it("opens plain WebSocket only when devAllowPlainWs is set", () => {
        fc.assert(fc.property(specArb, (spec) => assert.equal(firewallRules(spec).some((r) => covers(r, PORTS.ws)), spec.devAllowPlainWs)));
    });

    it("opens the media and TURN relay ranges from the spec to anywhere over UDP, IPv4 and IPv6", () => {
        const spec = loadSpec("prod");
        const rtp = firewallRules(spec).filter((r) => r.role === "media-relay" && r.fromPort === spec.rtpPorts.min && r.toPort === spec.rtpPorts.max);
        assert.deepEqual(rtp.map((r) => [r.protocol, r.source]), [["udp", { cidr: "0.0.0.0/0" }], ["udp", { cidrIpv6: "::/0" }]]);
        const relay = firewallRules(spec).filter((r) => r.role === "turn" && r.fromPort === spec.turnRelayPorts.min && r.toPort === spec.turnRelayPorts.max);
        assert.deepEqual(relay.map((r) => [r.protocol, r.source]), [["udp", { cidr: "0.0.0.0/0" }], ["udp", { cidrIpv6: "::/0" }]]);
    });

    it("lets only the proxies reach the ng port and MariaDB, and only proxies and relays reach Redis", () => {
        const rules = firewallRules(loadSpec("prod"));
        const sourcesOf = (port: number) => rules.filter((r) => covers(r, port)).map((r) => r.source);
        assert.deepEqual(sourcesOf(PORTS.rtpengineNg), [{ role: "sip-proxy" }]);
        assert.deepEqual(sourcesOf(PORTS.mysql), [{ role: "sip-proxy" }]);
        assert.deepEqual(sourcesOf(PORTS.redis), [{ role: "sip-proxy" }, { role: "media-relay" }]);
    });

    it("keeps metrics ports closed when no monitoring network is configured", () => {
        const rules = firewallRules(loadSpec("dev"));
        for (const p of [PORTS.opensipsHttp, PORTS.rtpengineHttp]) assert.ok(!rules.some((r) => covers(r, p)), `${p} open`);
    });
});
