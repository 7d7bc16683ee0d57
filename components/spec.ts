// Stack config -> GatewaySpec: read and validated once, every problem named by
// its config key. Pure: no Pulumi import (index.ts and tools/render.ts feed it).
import { z } from "zod";
import { DEFAULT_RTP_PORTS, DEFAULT_TURN_RELAY_PORTS, PortRange, Role, fixedPortsOf, rangesOverlap, ROLES } from "./ports";
import { parseCidr, cidrContains, cidrsOverlap } from "./ipplan";

/** Config keys that hold secrets. Supplied with `pulumi config set --secret`, else generated. */
export const SECRET_KEYS = [
    "databasePassword",
    "databaseSstPassword",
    "redisPassword",
    "turnSharedSecret",
    "tlsPrivateKey",
] as const;
export type SecretKey = (typeof SECRET_KEYS)[number];

const HOSTNAME_RE = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$/;
const AZ_RE = /^[a-z]{2}(-gov)?-[a-z]+-\d[a-z]$/;
const SUBSCRIBER_RE = /^[a-zA-Z0-9._-]{1,64}$/;

const cidr4 = z.string().superRefine((s, ctx) => {
    try {
        parseCidr(s);
    } catch (e) {
        ctx.addIssue({ code: z.ZodIssueCode.custom, message: `expected an IPv4 CIDR such as 203.0.113.0/24 (${(e as Error).message})` });
    }
});

const port = z.number({ invalid_type_error: "expected a port number" }).int("expected an integer port").min(1024, "expected a port >= 1024").max(65535, "expected a port <= 65535");
const portRange = z
    .object({ min: port, max: port }, { invalid_type_error: "expected an object {min, max}" })
    .strict()
    .refine((r) => r.min < r.max, { message: "expected min < max" });

const count = (lo: number, hi: number) =>
    z.number({ invalid_type_error: "expected a whole number" }).int("expected a whole number").min(lo, `expected at least ${lo}`).max(hi, `expected at most ${hi}`);

const instanceType = z
    .string({ invalid_type_error: "expected an EC2 instance type such as t3.small" })
    .regex(/^[a-z][a-z0-9-]*\.[a-z0-9]+$/, "expected an EC2 instance type such as t3.small");

const trunk = z
    .object({
        /** dispatcher destination, a SIP URI of the carrier or PBX */
        uri: z.string().regex(/^sips?:[^\s@]+(:\d{1,5})?(;transport=(udp|tcp|tls))?$/, "expected a SIP URI such as sip:pbx.example.com:5060;transport=udp"),
        /** dispatcher weight (relative) */
        weight: count(1, 100).default(1),
        /** the carrier's source addresses, for calls coming in from it */
        cidrs: z.array(cidr4).min(1, "expected at least one source CIDR of the trunk"),
    })
    .strict();

const schema = z
    .object({
        sipDomain: z
            .string({ required_error: "required: the SIP domain, e.g. sip.example.com" })
            .regex(HOSTNAME_RE, "expected a lower-case DNS name with at least one dot, e.g. sip.example.com"),
        availabilityZones: z
            .array(z.string().regex(AZ_RE, "expected an AWS availability zone name such as eu-central-1a"), { required_error: "required: the availability zones to use, e.g. [\"eu-central-1a\", \"eu-central-1b\"]" })
            .min(1, "expected at least one availability zone")
            .refine((a) => new Set(a).size === a.length, "expected distinct availability zones"),
        vpcCidr: cidr4.default("10.40.0.0/16"),
        subnetPrefixLength: count(16, 26).default(24),
        existingVpcId: z.string().regex(/^vpc-[0-9a-f]{8,17}$/, "expected a VPC id such as vpc-0abc1234").optional(),
        existingSubnetIds: z.array(z.string().regex(/^subnet-[0-9a-f]{8,17}$/, "expected subnet ids such as subnet-0abc1234")).optional(),
        existingSubnetCidrs: z.array(cidr4).optional(),

        sipProxyCount: count(1, 2).default(1),
        mediaRelayCount: count(1, 9).default(1),
        databaseCount: count(1, 9).default(1),
        turnCount: count(0, 9).default(1),
        vipFailover: z.boolean({ invalid_type_error: "expected true or false" }).default(false),

        instanceTypes: z
            .object({
                "sip-proxy": instanceType.default("t3.small"),
                "media-relay": instanceType.default("c6i.large"),
                database: instanceType.default("t3.medium"),
                cache: instanceType.default("t3.micro"),
                turn: instanceType.default("t3.small"),
            })
            .strict()
            .default({}),
        amiId: z.string().regex(/^ami-[0-9a-f]{8,17}$/, "expected an AMI id such as ami-0abc12345678").optional(),
        amiOwner: z.string().regex(/^\d{12}$/, "expected a 12-digit AWS account id").default("136693071363"),
        amiNamePattern: z.string().min(1, "expected a non-empty AMI name pattern").default("debian-12-amd64-*"),
        rootVolumeGb: count(8, 1024).default(16),
        databaseVolumeGb: count(10, 16384).default(50),

        adminCidrs: z.array(cidr4, { required_error: "required: the CIDRs allowed to SSH to the hosts, e.g. [\"198.51.100.7/32\"]" }).min(1, "expected at least one admin CIDR"),
        allowSshFromAnywhere: z.boolean({ invalid_type_error: "expected true or false" }).default(false),
        monitoringCidrs: z.array(cidr4).default([]),
        sipPeerCidrs: z.array(cidr4, { required_error: "required: the CIDRs allowed to send SIP to 5060/5061 (phones, PBXs, carriers)" }).min(1, "expected at least one CIDR"),

        rtpPorts: portRange.default(DEFAULT_RTP_PORTS),
        turnRelayPorts: portRange.default(DEFAULT_TURN_RELAY_PORTS),
        rtpengineForwarding: z.enum(["userspace", "kernel"], { errorMap: () => ({ message: "expected \"userspace\" or \"kernel\"" }) }).default("userspace"),
        rtpengineRedis: z.boolean({ invalid_type_error: "expected true or false" }).default(true),
        devAllowPlainWs: z.boolean({ invalid_type_error: "expected true or false" }).default(false),
        opensipsSharedMemoryMb: count(64, 65536).default(1024),
        opensipsPrivateMemoryMb: count(4, 4096).default(32),
        galeraGcacheSize: z.string().regex(/^\d+[MG]$/, "expected a size such as 512M or 2G").default("512M"),

        sipTrunks: z.array(trunk).default([]),
        subscribers: z
            .array(z.string().regex(SUBSCRIBER_RE, "expected a SIP user name of letters, digits, '.', '_' or '-'"))
            .refine((a) => new Set(a).size === a.length, "expected distinct subscriber names")
            .default([]),
        packageVersions: z
            .object({
                opensips: z.string().min(1).optional(),
                rtpengine: z.string().min(1).optional(),
                keepalived: z.string().min(1).optional(),
                coturn: z.string().min(1).optional(),
                mariadb: z.string().min(1).optional(),
                redis: z.string().min(1).optional(),
            })
            .strict()
            .default({}),
        sshPublicKey: z.string().regex(/^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp256) [A-Za-z0-9+/=]+( .*)?$/, "expected an OpenSSH public key line").optional(),
        tlsCertificate: z.string().includes("-----BEGIN CERTIFICATE-----", { message: "expected a PEM certificate" }).optional(),
        protectStateful: z.boolean({ invalid_type_error: "expected true or false" }).default(false),
    })
    .strict();

export type GatewaySpec = z.infer<typeof schema> & {
    /** stack name (dev, staging, prod) */
    readonly stack: string;
    /** which secret keys the operator supplied; the others are generated */
    readonly suppliedSecrets: readonly SecretKey[];
};

export class SpecError extends Error {
    constructor(
        readonly stack: string,
        readonly problems: readonly string[],
    ) {
        super(`stack "${stack}" has ${problems.length} config problem(s):\n` + problems.map((p) => `  - ${p}`).join("\n"));
        this.name = "SpecError";
    }
}

function keyName(path: readonly (string | number)[]): string {
    return path.reduce<string>((acc, p) => (typeof p === "number" ? `${acc}[${p}]` : acc ? `${acc}.${p}` : p), "");
}

/**
 * Parse raw stack config (keys without the project prefix; secret keys only
 * tell whether they are present) into a GatewaySpec. Throws SpecError listing
 * every problem, each starting with the config key.
 */
export function parseSpec(raw: Record<string, unknown>, stack: string, project = "ifbus-gateway"): GatewaySpec {
    const problems: string[] = [];
    const plain: Record<string, unknown> = {};
    const suppliedSecrets: SecretKey[] = [];
    for (const [k, v] of Object.entries(raw)) {
        if ((SECRET_KEYS as readonly string[]).includes(k)) {
            if (v !== undefined && v !== null && v !== "") suppliedSecrets.push(k as SecretKey);
        } else {
            plain[k] = v;
        }
    }
    const parsed = schema.safeParse(plain);
    if (!parsed.success) {
        for (const issue of parsed.error.issues) {
            if (issue.code === z.ZodIssueCode.unrecognized_keys) {
                for (const k of issue.keys) problems.push(`${project}:${keyName([...issue.path, k])}: unknown config key`);
            } else {
                problems.push(`${project}:${keyName(issue.path) || "(root)"}: ${issue.message}`);
            }
        }
        throw new SpecError(stack, problems);
    }
    const spec = { ...parsed.data, stack, suppliedSecrets } as GatewaySpec;
    for (const [key, msg] of crossFieldProblems(spec, raw)) problems.push(`${project}:${key}: ${msg}`);
    if (problems.length) throw new SpecError(stack, problems);
    return spec;
}

export function hostCount(spec: GatewaySpec, role: Role): number {
    switch (role) {
        case "sip-proxy":
            return spec.sipProxyCount;
        case "media-relay":
            return spec.mediaRelayCount;
        case "database":
            return spec.databaseCount;
        case "cache":
            return 1;
        case "turn":
            return spec.turnCount;
    }
}

/** HA stacks: anything with failover or more than one node of a replicated role. */
export function isHighlyAvailable(spec: GatewaySpec): boolean {
    return spec.vipFailover || spec.sipProxyCount > 1 || spec.databaseCount > 1 || spec.mediaRelayCount > 1;
}

function crossFieldProblems(spec: GatewaySpec, raw: Record<string, unknown>): [string, string][] {
    const out: [string, string][] = [];
    const ANY = "0.0.0.0/0";

    if (spec.databaseCount !== 1 && (spec.databaseCount < 3 || spec.databaseCount % 2 === 0))
        out.push(["databaseCount", `expected 1 (dev) or an odd number >= 3 for Galera quorum, got ${spec.databaseCount}`]);
    if (spec.vipFailover && spec.sipProxyCount !== 2) out.push(["sipProxyCount", `expected 2 when vipFailover is true, got ${spec.sipProxyCount}`]);
    if (!spec.vipFailover && spec.sipProxyCount === 2) out.push(["vipFailover", "expected true when sipProxyCount is 2 (the second proxy only serves through the floating VIP)"]);
    if (rangesOverlap(spec.rtpPorts, spec.turnRelayPorts))
        out.push(["rtpPorts", `range ${fmt(spec.rtpPorts)} overlaps turnRelayPorts ${fmt(spec.turnRelayPorts)}; expected disjoint ranges`]);
    for (const [key, range, role] of [["rtpPorts", spec.rtpPorts, "media-relay"], ["turnRelayPorts", spec.turnRelayPorts, "turn"]] as const) {
        const clash = fixedPortsOf(role as Role).filter((p) => p >= range.min && p <= range.max);
        if (clash.length) out.push([key, `range ${fmt(range)} contains the ${role} service port(s) ${clash.join(", ")}; expected a range clear of them`]);
    }
    if (spec.rtpPorts.max - spec.rtpPorts.min + 1 < 100) out.push(["rtpPorts", `expected at least 100 ports (4 per call), got ${spec.rtpPorts.max - spec.rtpPorts.min + 1}`]);
    if (spec.adminCidrs.includes(ANY) && !spec.allowSshFromAnywhere)
        out.push(["adminCidrs", "0.0.0.0/0 opens SSH to the whole internet; set allowSshFromAnywhere: true to mean it"]);
    if (spec.monitoringCidrs.includes(ANY)) out.push(["monitoringCidrs", "0.0.0.0/0 would publish unauthenticated metrics and MI; expected the monitoring network's CIDRs"]);
    if (isHighlyAvailable(spec) && spec.availabilityZones.length < 2)
        out.push(["availabilityZones", `expected at least 2 availability zones for an HA stack (vipFailover or several proxies, relays or database nodes), got ${spec.availabilityZones.length}`]);
    if (spec.devAllowPlainWs && spec.protectStateful) out.push(["devAllowPlainWs", "plain WebSocket is for dev stacks only; expected false on a protected (production) stack"]);

    const existing = [spec.existingVpcId, spec.existingSubnetIds, spec.existingSubnetCidrs];
    if (existing.some((x) => x !== undefined) && existing.some((x) => x === undefined))
        out.push(["existingVpcId", "expected existingVpcId, existingSubnetIds and existingSubnetCidrs together (one subnet id and CIDR per availability zone)"]);
    if (spec.existingSubnetIds && spec.existingSubnetIds.length !== spec.availabilityZones.length)
        out.push(["existingSubnetIds", `expected one subnet per availability zone (${spec.availabilityZones.length}), got ${spec.existingSubnetIds.length}`]);
    if (spec.existingSubnetCidrs) {
        if (spec.existingSubnetCidrs.length !== spec.availabilityZones.length)
            out.push(["existingSubnetCidrs", `expected one CIDR per availability zone (${spec.availabilityZones.length}), got ${spec.existingSubnetCidrs.length}`]);
        spec.existingSubnetCidrs.forEach((c, i) => {
            if (parseCidr(c).prefix > 26) out.push([`existingSubnetCidrs[${i}]`, `expected a /26 or larger subnet to hold the fixed IP plan, got ${c}`]);
        });
    } else {
        const vpc = parseCidr(spec.vpcCidr);
        if (vpc.prefix > 24) out.push(["vpcCidr", `expected a /24 or larger VPC, got ${spec.vpcCidr}`]);
        else if (spec.subnetPrefixLength <= vpc.prefix)
            out.push(["subnetPrefixLength", `expected a prefix longer than the VPC's /${vpc.prefix}, got /${spec.subnetPrefixLength}`]);
        else if (2 ** (spec.subnetPrefixLength - vpc.prefix) < spec.availabilityZones.length)
            out.push(["subnetPrefixLength", `a ${spec.vpcCidr} VPC holds only ${2 ** (spec.subnetPrefixLength - vpc.prefix)} /${spec.subnetPrefixLength} subnets, fewer than the ${spec.availabilityZones.length} availability zones`]);
        if (!cidrsOverlap(spec.vpcCidr, "10.0.0.0/8") && !cidrsOverlap(spec.vpcCidr, "172.16.0.0/12") && !cidrsOverlap(spec.vpcCidr, "192.168.0.0/16"))
            out.push(["vpcCidr", `expected a private (RFC 1918) range, got ${spec.vpcCidr}`]);
    }
    spec.adminCidrs.forEach((c, i) => {
        if (!spec.existingSubnetCidrs && cidrContains(c, spec.vpcCidr) && c !== ANY) out.push([`adminCidrs[${i}]`, `${c} covers the whole VPC ${spec.vpcCidr}; expected the admins' own networks`]);
    });
    if (spec.turnCount === 0 && raw.turnRelayPorts !== undefined) out.push(["turnRelayPorts", "set but turnCount is 0; remove it or add a TURN server"]);
    if ((raw.tlsCertificate === undefined) !== !spec.suppliedSecrets.includes("tlsPrivateKey"))
        out.push(["tlsCertificate", "expected tlsCertificate and the secret tlsPrivateKey together, or neither (then the stack issues its own CA and certificate)"]);
    if (spec.rtpengineRedis && spec.mediaRelayCount < 1) out.push(["rtpengineRedis", "expected at least one media relay"]);
    return out;
}

function fmt(r: PortRange): string {
    return `${r.min}-${r.max}`;
}

/** The config schema's keys, for Pulumi.yaml and the README table (kept in step by a test). */
export const SPEC_KEYS: readonly string[] = [...Object.keys(schema.shape), ...SECRET_KEYS];
export { ROLES };

function baseType(t: z.ZodTypeAny): z.ZodTypeAny {
    if (t instanceof z.ZodOptional || t instanceof z.ZodDefault) return baseType(t._def.innerType);
    if (t instanceof z.ZodEffects) return baseType(t._def.schema);
    return t;
}

/**
 * Non-secret keys whose value is a plain string in stack config. Pulumi hands
 * every value to the program as a string, so index.ts reads these with
 * config.get (a numeric-looking amiOwner stays a string) and JSON-parses the rest.
 */
export const STRING_KEYS: readonly string[] = Object.entries(schema.shape)
    .filter(([, t]) => {
        const b = baseType(t as z.ZodTypeAny);
        return b instanceof z.ZodString || b instanceof z.ZodEnum;
    })
    .map(([k]) => k);
