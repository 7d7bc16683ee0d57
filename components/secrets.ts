// Service secrets: taken from secret stack config when the operator set
// them, generated otherwise. Every value leaves this component as a Pulumi
// secret, never as plain text.
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import type { SecretKey } from "./spec";

/** The generated (or operator-supplied) service secrets; tlsPrivateKey is handled by certificates.ts. */
export type ServiceSecretKey = Exclude<SecretKey, "tlsPrivateKey">;
export const SERVICE_SECRET_KEYS: readonly ServiceSecretKey[] = ["databasePassword", "databaseSstPassword", "redisPassword", "turnSharedSecret"];

export interface ServiceSecretsArgs {
    /** secrets the operator set with `pulumi config set --secret`; the others are generated (32 letters and digits) */
    readonly supplied: Readonly<Partial<Record<ServiceSecretKey, pulumi.Input<string>>>>;
    /** SIP user names that get a generated digest password each; default none */
    readonly subscribers: readonly string[];
}

export class ServiceSecrets extends pulumi.ComponentResource {
    /** one secret Output per key */
    readonly values: Readonly<Record<ServiceSecretKey, pulumi.Output<string>>>;
    /** secret digest password per subscriber user name */
    readonly subscriberPasswords: pulumi.Output<Record<string, string>>;

    constructor(name: string, args: ServiceSecretsArgs, opts?: pulumi.ComponentResourceOptions) {
        super("ifbus:secrets:ServiceSecrets", name, {}, opts);
        // Letters and digits only: the values go into opensips.cfg, my.cnf, redis.conf and turnserver.conf unquoted.
        const generate = (id: string) => pulumi.secret(new random.RandomPassword(`${name}-${id}`, { length: 32, special: false }, { parent: this }).result);
        const values = {} as Record<ServiceSecretKey, pulumi.Output<string>>;
        for (const key of SERVICE_SECRET_KEYS) {
            const supplied = args.supplied[key];
            values[key] = supplied !== undefined ? pulumi.secret(supplied) : generate(key);
        }
        this.values = values;
        const users = [...args.subscribers];
        const passwords = users.map((u) => generate(`subscriber-${u}`));
        this.subscriberPasswords = pulumi.secret(pulumi.all(passwords).apply((pw) => Object.fromEntries(users.map((u, i) => [u, pw[i]]))));
        this.registerOutputs({});
    }
}
