// Stack entry: stack config -> GatewaySpec -> Gateway -> stack outputs.
import * as pulumi from "@pulumi/pulumi";
import { SECRET_KEYS, SPEC_KEYS, STRING_KEYS, SecretKey, parseSpec } from "./components/spec";
import { Gateway } from "./components/gateway";
import { SERVICE_SECRET_KEYS, ServiceSecretKey } from "./components/secrets";
import { PORTS } from "./components/ports";

const project = pulumi.getProject();
const config = new pulumi.Config();
const isSecretKey = (k: string): k is SecretKey => (SECRET_KEYS as readonly string[]).includes(k);

/**
 * Raw config for parseSpec: every key of this project's namespace (unknown
 * ones included, so a typo is refused by name). Secret keys only say that
 * they are present; their values stay Outputs below.
 */
function rawConfig(): Record<string, unknown> {
    const prefix = `${project}:`;
    const keys = new Set([...SPEC_KEYS, ...Object.keys(pulumi.runtime.allConfig()).filter((k) => k.startsWith(prefix)).map((k) => k.slice(prefix.length))]);
    const raw: Record<string, unknown> = {};
    for (const key of keys) {
        if (isSecretKey(key)) {
            if (config.getSecret(key) !== undefined) raw[key] = "(supplied as a secret)";
            continue;
        }
        const value = config.get(key);
        if (value === undefined) continue;
        if (STRING_KEYS.includes(key)) {
            raw[key] = value;
            continue;
        }
        try {
            raw[key] = JSON.parse(value);
        } catch {
            // Not JSON: hand the text to parseSpec, whose error names the key and the expected type.
            raw[key] = value;
        }
    }
    return raw;
}

const spec = parseSpec(rawConfig(), pulumi.getStack(), project);
const suppliedSecrets: Partial<Record<ServiceSecretKey, pulumi.Output<string>>> = {};
for (const key of SERVICE_SECRET_KEYS) {
    const value = config.getSecret(key);
    if (value !== undefined) suppliedSecrets[key] = value;
}
const gateway = new Gateway("gw", { spec, suppliedSecrets, tlsPrivateKey: config.getSecret("tlsPrivateKey") });

export const sipDomain = spec.sipDomain;
export const wssUrl = `wss://${spec.sipDomain}:${PORTS.wss}`;
export const sipUri = `sip:${spec.sipDomain}`;
/** point the sipDomain's DNS A record here */
export const vipAddress = gateway.sipAddress;
export const turnUris = gateway.turnUris;
export const hosts = pulumi.all(
    Object.fromEntries(
        Object.entries(gateway.hosts).map(([name, h]) => [
            name,
            pulumi.all([h.publicIp, h.sshHost]).apply(([publicIp, sshHost]) => ({
                role: h.plan.role,
                privateIp: h.privateIp,
                publicIp: publicIp ?? null,
                ssh: `ssh ${gateway.connections[name].user}@${sshHost}`,
            })),
        ]),
    ),
);
export const subscriberPasswords = gateway.subscriberPasswords;
export const deployPrivateKey = gateway.deployPrivateKey;
