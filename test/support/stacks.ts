// Models for render and daemon tests: the two example stacks with random
// secrets and a throw-away TLS certificate, and generated spec variations.
import * as fs from "fs";
import * as path from "path";
import fc from "fast-check";
import { loadSpec, makeTestTls, offlineModel, randomSecrets } from "../../components/offline";
import { GatewaySpec, parseSpec } from "../../components/spec";
import type { GatewayModel, TlsMaterial } from "../../components/model";
import type { RenderedFile } from "../../components/render/types";

export const EXAMPLE_STACKS = ["dev", "prod"] as const;

const tlsCache = new Map<string, TlsMaterial>();
/** One certificate per SIP domain per test run (openssl is slow-ish). */
export function testTls(domain: string): TlsMaterial {
    let t = tlsCache.get(domain);
    if (!t) {
        t = makeTestTls(domain);
        tlsCache.set(domain, t);
    }
    return t;
}

export function modelFor(spec: GatewaySpec): GatewayModel {
    return offlineModel(spec, { secrets: randomSecrets(spec, testTls(spec.sipDomain)) });
}

export function exampleModel(stack: string): GatewayModel {
    return modelFor(loadSpec(stack));
}

/** Every secret value of a model (TLS certificate excluded: it is public). */
export function secretValues(model: GatewayModel): string[] {
    const s = model.secrets;
    return [s.databasePassword, s.databaseSstPassword, s.redisPassword, s.turnSharedSecret, ...Object.values(s.subscriberPasswords), s.tls.privateKeyPem];
}

/**
 * Valid stack configs that vary what the renderers turn into addresses and
 * ports: VPC CIDR and subnet size, zone count, node counts, media and relay
 * port ranges (kept clear of each other and of the fixed service ports).
 */
export const specArbitrary: fc.Arbitrary<GatewaySpec> = fc
    .record({
        privateBlock: fc.constantFrom("10", "172", "192"),
        second: fc.integer({ min: 0, max: 255 }),
        zones: fc.integer({ min: 1, max: 3 }),
        proxies: fc.integer({ min: 1, max: 2 }),
        relays: fc.integer({ min: 1, max: 4 }),
        databases: fc.constantFrom(1, 3, 5),
        turns: fc.integer({ min: 0, max: 3 }),
        rtpMin: fc.integer({ min: 23000, max: 38000 }),
        rtpSize: fc.integer({ min: 100, max: 5000 }),
        turnMin: fc.integer({ min: 44000, max: 60000 }),
        turnSize: fc.integer({ min: 50, max: 3000 }),
        gcache: fc.constantFrom("64M", "128M", "1G"),
    })
    .map((v) => {
        const ha = v.proxies === 2 || v.relays > 1 || v.databases > 1;
        const zones = ha ? Math.max(2, v.zones) : v.zones;
        let vpcCidr: string;
        let subnetPrefixLength: number;
        if (v.privateBlock === "10") [vpcCidr, subnetPrefixLength] = [`10.${v.second}.0.0/16`, 24];
        else if (v.privateBlock === "172") [vpcCidr, subnetPrefixLength] = [`172.${16 + (v.second % 16)}.0.0/16`, 20];
        else [vpcCidr, subnetPrefixLength] = [`192.168.${v.second}.0/24`, 26];
        const raw: Record<string, unknown> = {
            sipDomain: `sip${v.second}.example.org`,
            availabilityZones: ["eu-west-1a", "eu-west-1b", "eu-west-1c"].slice(0, zones),
            vpcCidr,
            subnetPrefixLength,
            sipProxyCount: v.proxies,
            vipFailover: v.proxies === 2,
            mediaRelayCount: v.relays,
            databaseCount: v.databases,
            turnCount: v.turns,
            adminCidrs: ["198.51.100.0/28"],
            sipPeerCidrs: ["198.51.100.0/24"],
            rtpPorts: { min: v.rtpMin, max: v.rtpMin + v.rtpSize - 1 },
            galeraGcacheSize: v.gcache,
            subscribers: ["alice"],
        };
        if (v.turns > 0) raw.turnRelayPorts = { min: v.turnMin, max: Math.min(65535, v.turnMin + v.turnSize - 1) };
        return parseSpec(raw, `gen${v.second}`);
    });

function idOf(dbFile: string, name: string): number | undefined {
    const line = fs
        .readFileSync(dbFile, "utf8")
        .split("\n")
        .find((l) => l.startsWith(`${name}:`));
    return line ? Number(line.split(":")[2]) : undefined;
}

/**
 * Write rendered files under `root` at their absolute paths, with their
 * mode, and (as root, when the account exists here) their owner and group,
 * so a daemon that drops privileges reads them as it would on the host.
 * Directories are made traversable (0755). Returns a lookup by path.
 */
export function writeTree(root: string, files: readonly RenderedFile[]): (p: string) => string {
    const asRoot = typeof process.getuid === "function" && process.getuid() === 0;
    for (const f of files) {
        const dest = path.join(root, f.path);
        fs.mkdirSync(path.dirname(dest), { recursive: true, mode: 0o755 });
        fs.writeFileSync(dest, f.content, { mode: parseInt(f.mode, 8) });
        fs.chmodSync(dest, parseInt(f.mode, 8));
        if (asRoot) {
            const uid = idOf("/etc/passwd", f.owner);
            const gid = idOf("/etc/group", f.group);
            if (uid !== undefined && gid !== undefined) fs.chownSync(dest, uid, gid);
        }
    }
    return (p: string) => {
        if (!files.some((f) => f.path === p)) throw new Error(`no rendered file ${p}; have: ${files.map((f) => f.path).join(", ")}`);
        return path.join(root, p);
    };
}

export function fileAt(files: readonly RenderedFile[], p: string): RenderedFile {
    const f = files.find((x) => x.path === p);
    if (!f) throw new Error(`no rendered file ${p}; have: ${files.map((x) => x.path).join(", ")}`);
    return f;
}
