// A GatewayModel without AWS: for `npm run render`, the tests and the local
// lab. Reads Pulumi.<stack>.yaml, uses the fixed private IP plan and marks
// every address that only exists after `pulumi up` with documentation
// addresses (TEST-NET-3, RFC 5737). No Pulumi import.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as crypto from "crypto";
import { execFileSync } from "child_process";
import YAML from "yaml";
import { GatewaySpec, parseSpec } from "./spec";
import { GatewayModel, GatewaySecrets, TlsMaterial, buildModel, planHosts, rolesWithPublicIp } from "./model";

export const PROJECT = "ifbus-gateway";
export const REPO_ROOT = path.resolve(__dirname, "..");

/** Raw config of a stack file, keys without the project prefix; `secure:` values count as supplied secrets. */
export function readStackConfig(stack: string, dir = REPO_ROOT): Record<string, unknown> {
    const file = path.join(dir, `Pulumi.${stack}.yaml`);
    if (!fs.existsSync(file)) throw new Error(`no stack file ${file}; expected one of: ${listStacks(dir).join(", ") || "(none)"}`);
    const doc = YAML.parse(fs.readFileSync(file, "utf8")) ?? {};
    const config = (doc.config ?? {}) as Record<string, unknown>;
    const raw: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(config)) {
        if (!k.startsWith(`${PROJECT}:`)) continue;
        raw[k.slice(PROJECT.length + 1)] = v;
    }
    return raw;
}

export function listStacks(dir = REPO_ROOT): string[] {
    return fs
        .readdirSync(dir)
        .map((f) => /^Pulumi\.(.+)\.yaml$/.exec(f)?.[1])
        .filter((s): s is string => !!s)
        .sort();
}

export function loadSpec(stack: string, dir = REPO_ROOT): GatewaySpec {
    return parseSpec(readStackConfig(stack, dir), stack, PROJECT);
}

/** Documentation public addresses: 203.0.113.10 onwards, in host order; the VIP is 203.0.113.5. */
export const OFFLINE_VIP = "203.0.113.5";
export function offlinePublicIps(spec: GatewaySpec): Record<string, string> {
    const out: Record<string, string> = {};
    let next = 10;
    for (const h of planHosts(spec)) if (rolesWithPublicIp().includes(h.role)) out[h.name] = `203.0.113.${next++}`;
    return out;
}

/** Self-signed CA + server certificate for `domain` (openssl CLI), for offline renders and tests. */
export function makeTestTls(domain: string, altIps: string[] = []): TlsMaterial {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ifbus-tls-"));
    try {
        const run = (args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
        run(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "30", "-subj", `/CN=${domain} test CA`]);
        run(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "srv.key", "-out", "srv.csr", "-subj", `/CN=${domain}`]);
        const san = [`DNS:${domain}`, ...altIps.map((ip) => `IP:${ip}`)].join(",");
        fs.writeFileSync(path.join(dir, "ext.cnf"), `subjectAltName=${san}\nextendedKeyUsage=serverAuth\n`);
        run(["x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "srv.pem", "-days", "30", "-extfile", "ext.cnf"]);
        return {
            certificatePem: fs.readFileSync(path.join(dir, "srv.pem"), "utf8"),
            privateKeyPem: fs.readFileSync(path.join(dir, "srv.key"), "utf8"),
            caPem: fs.readFileSync(path.join(dir, "ca.pem"), "utf8"),
        };
    } finally {
        fs.rmSync(dir, { recursive: true, force: true });
    }
}

/** Random secrets of the same shape the stack generates (for tests and the lab). */
export function randomSecrets(spec: GatewaySpec, tls: TlsMaterial): GatewaySecrets {
    const pw = () => crypto.randomBytes(18).toString("base64url");
    return {
        databasePassword: pw(),
        databaseSstPassword: pw(),
        redisPassword: pw(),
        turnSharedSecret: pw(),
        subscriberPasswords: Object.fromEntries(spec.subscribers.map((u) => [u, pw()])),
        tls,
    };
}

/** Clearly marked placeholders: what `npm run render` writes where a secret goes. */
export function placeholderSecrets(spec: GatewaySpec, tls: TlsMaterial): GatewaySecrets {
    const ph = (k: string) => `RENDER-PLACEHOLDER-${k}`;
    return {
        databasePassword: ph("databasePassword"),
        databaseSstPassword: ph("databaseSstPassword"),
        redisPassword: ph("redisPassword"),
        turnSharedSecret: ph("turnSharedSecret"),
        subscriberPasswords: Object.fromEntries(spec.subscribers.map((u) => [u, ph(`subscriber-${u}`)])),
        tls,
    };
}

export interface OfflineOptions {
    readonly secrets?: GatewaySecrets;
    readonly publicIps?: Record<string, string>;
    readonly vipPublicIp?: string;
    readonly region?: string;
}

export function offlineModel(spec: GatewaySpec, opts: OfflineOptions = {}): GatewayModel {
    const secrets = opts.secrets ?? randomSecrets(spec, makeTestTls(spec.sipDomain));
    return buildModel(
        spec,
        {
            region: opts.region ?? "eu-central-1",
            publicIps: opts.publicIps ?? offlinePublicIps(spec),
            vip: spec.vipFailover ? { publicIp: opts.vipPublicIp ?? OFFLINE_VIP, allocationId: "eipalloc-0000000000offline" } : undefined,
        },
        secrets,
        PROJECT,
    );
}
