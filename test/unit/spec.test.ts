import { strict as assert } from "assert";
import { parseSpec, SpecError, SPEC_KEYS } from "../../components/spec";
import { readStackConfig, loadSpec } from "../../components/offline";
import * as fs from "fs";
import * as path from "path";
import YAML from "yaml";

const base = (): Record<string, unknown> => ({
    sipDomain: "sip.example.com",
    availabilityZones: ["eu-central-1a", "eu-central-1b"],
    adminCidrs: ["198.51.100.0/28"],
    sipPeerCidrs: ["203.0.113.0/24"],
});

function refuse(overrides: Record<string, unknown>, key: string, fragment?: RegExp, drop: string[] = []): void {
    const raw = { ...base(), ...overrides };
    for (const d of drop) delete raw[d];
    let err: unknown;
    try {
        parseSpec(raw, "t");
    } catch (e) {
        err = e;
    }
    assert.ok(err instanceof SpecError, `expected a SpecError for ${JSON.stringify(overrides)}, got ${err}`);
    const hit = err.problems.find((p) => p.startsWith(`ifbus-gateway:${key}:`) || p.startsWith(`ifbus-gateway:${key}.`) || p.startsWith(`ifbus-gateway:${key}[`));
    assert.ok(hit, `expected a problem naming ${key}, got:\n${err.message}`);
    if (fragment) assert.match(hit, fragment);
}

describe("stack config validation", () => {
    it("accepts the minimal config and fills the defaults", () => {
        const s = parseSpec(base(), "t");
        assert.equal(s.rtpPorts.min, 10000);
        assert.equal(s.rtpPorts.max, 20000);
        assert.equal(s.sipProxyCount, 1);
        assert.equal(s.instanceTypes["media-relay"], "c6i.large");
        assert.deepEqual(s.suppliedSecrets, []);
    });

    it("loads both example stacks", () => {
        const dev = loadSpec("dev");
        assert.equal(dev.databaseCount, 1);
        assert.equal(dev.availabilityZones.length, 1);
        const prod = loadSpec("prod");
        assert.equal(prod.sipProxyCount, 2);
        assert.equal(prod.vipFailover, true);
        assert.equal(prod.databaseCount, 3);
        assert.equal(prod.mediaRelayCount, 2);
        assert.equal(prod.protectStateful, true);
    });

    it("lists every problem at once, not only the first", () => {
        try {
            parseSpec({ ...base(), sipDomain: "nodot", databaseCount: "three", rtpPorts: { min: 80, max: 90 } }, "t");
            assert.fail("expected a SpecError");
        } catch (e) {
            assert.ok(e instanceof SpecError);
            assert.ok(e.problems.length >= 3, e.message);
            assert.match(e.message, /stack "t" has \d+ config problem/);
        }
    });

    it("records which secrets were supplied without keeping their values", () => {
        const s = parseSpec({ ...base(), redisPassword: "s3cret-value", turnSharedSecret: "" }, "t");
        assert.deepEqual(s.suppliedSecrets, ["redisPassword"]);
        assert.ok(!JSON.stringify(s).includes("s3cret-value"));
    });

    it("declares every spec key in Pulumi.yaml with a description", () => {
        const doc = YAML.parse(fs.readFileSync(path.join(__dirname, "..", "..", "Pulumi.yaml"), "utf8"));
        const declared = Object.keys(doc.config).map((k) => k.replace(/^ifbus-gateway:/, ""));
        assert.deepEqual([...declared].sort(), [...SPEC_KEYS].sort());
        for (const [k, v] of Object.entries<Record<string, unknown>>(doc.config)) assert.ok(typeof v.description === "string" && v.description.length > 10, `${k} lacks a description`);
    });

    it("example stack files use only declared keys", () => {
        for (const stack of ["dev", "prod"]) for (const k of Object.keys(readStackConfig(stack))) assert.ok(SPEC_KEYS.includes(k), `${stack}: ${k}`);
    });

    describe("refuses bad input, naming the key", () => {
        const cases: [string, Record<string, unknown>, string, RegExp?, string[]?][] = [
            ["a missing SIP domain", {}, "sipDomain", /required/, ["sipDomain"]],
            ["a SIP domain without a dot", { sipDomain: "localhost" }, "sipDomain", /DNS name/],
            ["a SIP domain with upper case or spaces", { sipDomain: "SIP example.com" }, "sipDomain"],
            ["missing availability zones", {}, "availabilityZones", /required/, ["availabilityZones"]],
            ["a malformed availability zone", { availabilityZones: ["mars-1"] }, "availabilityZones[0]", /availability zone/],
            ["duplicate availability zones", { availabilityZones: ["eu-central-1a", "eu-central-1a"] }, "availabilityZones", /distinct/],
            ["an HA stack in one availability zone", { availabilityZones: ["eu-central-1a"], databaseCount: 3 }, "availabilityZones", /at least 2/],
            ["two Galera nodes (no quorum after one fails)", { databaseCount: 2 }, "databaseCount", /odd/],
            ["four Galera nodes", { databaseCount: 4 }, "databaseCount", /odd number >= 3/],
            ["zero Galera nodes", { databaseCount: 0 }, "databaseCount", /at least 1/],
            ["a fractional node count", { mediaRelayCount: 1.5 }, "mediaRelayCount", /whole number/],
            ["a node count given as text", { databaseCount: "3" }, "databaseCount", /whole number/],
            ["VIP failover with one proxy", { vipFailover: true, sipProxyCount: 1 }, "sipProxyCount", /expected 2 when vipFailover/],
            ["two proxies without VIP failover", { sipProxyCount: 2 }, "vipFailover", /expected true/],
            ["three proxies", { sipProxyCount: 3, vipFailover: true }, "sipProxyCount", /at most 2/],
            ["an RTP range below 1024", { rtpPorts: { min: 80, max: 20000 } }, "rtpPorts.min", />= 1024/],
            ["an RTP range above 65535", { rtpPorts: { min: 10000, max: 70000 } }, "rtpPorts.max", /<= 65535/],
            ["an inverted RTP range", { rtpPorts: { min: 20000, max: 10000 } }, "rtpPorts", /min < max/],
            ["an RTP range overlapping the TURN relay range", { rtpPorts: { min: 40000, max: 50000 } }, "rtpPorts", /overlaps turnRelayPorts/],
            ["an RTP range covering the ng control port", { rtpPorts: { min: 20000, max: 30000 } }, "rtpPorts", /22222/],
            ["an RTP range too small for calls", { rtpPorts: { min: 10000, max: 10010 } }, "rtpPorts", /at least 100 ports/],
            ["an RTP range with unknown fields", { rtpPorts: { min: 10000, max: 20000, step: 2 } }, "rtpPorts.step", /unknown config key/],
            ["SSH open to the world without the opt-in", { adminCidrs: ["0.0.0.0/0"] }, "adminCidrs", /allowSshFromAnywhere/],
            ["no admin CIDRs", { adminCidrs: [] }, "adminCidrs", /at least one/],
            ["missing admin CIDRs", {}, "adminCidrs", /required/, ["adminCidrs"]],
            ["an admin CIDR with host bits set", { adminCidrs: ["198.51.100.7/24"] }, "adminCidrs[0]", /host bits/],
            ["an admin CIDR that is not a CIDR", { adminCidrs: ["example.com"] }, "adminCidrs[0]", /IPv4 CIDR/],
            ["metrics open to the world", { monitoringCidrs: ["0.0.0.0/0"] }, "monitoringCidrs", /unauthenticated/],
            ["missing SIP peer CIDRs", {}, "sipPeerCidrs", /required/, ["sipPeerCidrs"]],
            ["an empty instance type", { instanceTypes: { "sip-proxy": "" } }, "instanceTypes.sip-proxy", /instance type/],
            ["an instance type for an unknown role", { instanceTypes: { pbx: "t3.small" } }, "instanceTypes.pbx", /unknown config key/],
            ["an unknown config key (a typo)", { sipDomian: "sip.example.com" }, "sipDomian", /unknown config key/],
            ["a public VPC range", { vpcCidr: "8.8.0.0/16" }, "vpcCidr", /RFC 1918/],
            ["a VPC too small for the subnets", { vpcCidr: "10.0.0.0/24", subnetPrefixLength: 24 }, "subnetPrefixLength", /longer than the VPC/],
            ["an existing VPC without its subnets", { existingVpcId: "vpc-0abc12345" }, "existingVpcId", /together/],
            ["existing subnets that miss an availability zone", { existingVpcId: "vpc-0abc12345", existingSubnetIds: ["subnet-0abc12345"], existingSubnetCidrs: ["10.1.0.0/24"] }, "existingSubnetIds", /one subnet per availability zone/],
            ["an existing subnet too small for the IP plan", { availabilityZones: ["eu-central-1a"], existingVpcId: "vpc-0abc12345", existingSubnetIds: ["subnet-0abc12345"], existingSubnetCidrs: ["10.1.0.0/27"] }, "existingSubnetCidrs[0]", /\/26 or larger/],
            ["a certificate without its private key", { tlsCertificate: "-----BEGIN CERTIFICATE-----\nMII\n-----END CERTIFICATE-----" }, "tlsCertificate", /together/],
            ["a private key without its certificate", { tlsPrivateKey: "secret" }, "tlsCertificate", /together/],
            ["a certificate that is not PEM", { tlsCertificate: "hello", tlsPrivateKey: "x" }, "tlsCertificate", /PEM/],
            ["a trunk that is not a SIP URI", { sipTrunks: [{ uri: "http://pbx", cidrs: ["198.51.100.0/24"] }] }, "sipTrunks[0].uri", /SIP URI/],
            ["a trunk without source CIDRs", { sipTrunks: [{ uri: "sip:pbx.example.com", cidrs: [] }] }, "sipTrunks[0].cidrs", /source CIDR/],
            ["duplicate subscribers", { subscribers: ["alice", "alice"] }, "subscribers", /distinct/],
            ["a subscriber name with a space", { subscribers: ["al ice"] }, "subscribers[0]", /user name/],
            ["plain WebSocket on a protected stack", { devAllowPlainWs: true, protectStateful: true }, "devAllowPlainWs", /dev stacks only/],
            ["an unknown forwarding mode", { rtpengineForwarding: "ebpf" }, "rtpengineForwarding", /userspace/],
            ["a malformed gcache size", { galeraGcacheSize: "lots" }, "galeraGcacheSize", /512M/],
            ["a malformed AMI id", { amiId: "debian" }, "amiId", /AMI id/],
            ["a malformed SSH public key", { sshPublicKey: "not a key" }, "sshPublicKey", /OpenSSH/],
            ["a boolean given as text", { vipFailover: "yes" }, "vipFailover", /true or false/],
            ["too little shared memory for OpenSIPS", { opensipsSharedMemoryMb: 16 }, "opensipsSharedMemoryMb", /at least 64/],
            ["a TURN relay range on a TURN service port", { turnRelayPorts: { min: 3000, max: 4000 } }, "turnRelayPorts", /3478/],
        ];
        for (const [what, overrides, key, fragment, drop] of cases) {
            it(`refuses ${what} (${key})`, () => refuse(overrides, key, fragment, drop));
        }
        it("has at least 30 distinct refusals", () => assert.ok(cases.length >= 30));
    });
});
