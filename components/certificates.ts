// Key material: the WSS/TLS certificate for the SIP domain (the stack's own
// CA, or the operator's certificate) and the SSH deploy key the push uses.
import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import * as tls from "@pulumi/tls";
import type { TlsMaterial } from "./model";
import { tagsFor } from "./tags";

const HOURS_PER_DAY = 24;

export interface SipCertificateArgs {
    /** the SIP domain: subject CN and first DNS SAN */
    readonly sipDomain: string;
    /** public addresses browsers may dial by IP (VIP, proxies, TURN servers), added as IP SANs; default none */
    readonly ipAddresses?: pulumi.Input<pulumi.Input<string>[]>;
    /** PEM certificate (chain after the leaf) supplied by the operator; default: issue one from the stack's CA */
    readonly suppliedCertificatePem?: string;
    /** secret PEM private key of suppliedCertificatePem; required with it */
    readonly suppliedPrivateKeyPem?: pulumi.Input<string>;
    /** server certificate lifetime, days; default 365 (re-issued on `pulumi up` in the last 30) */
    readonly validityDays?: number;
}

/** Every PEM CERTIFICATE block of a bundle, in order. */
export function pemCertificates(bundle: string): string[] {
    return bundle.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g) ?? [];
}

export class SipCertificate extends pulumi.ComponentResource {
    /** certificate, key (secret) and CA, ready for the model */
    readonly material: pulumi.Output<TlsMaterial>;

    constructor(name: string, args: SipCertificateArgs, opts?: pulumi.ComponentResourceOptions) {
        super("ifbus:certificates:SipCertificate", name, {}, opts);
        if (args.suppliedCertificatePem !== undefined) {
            if (args.suppliedPrivateKeyPem === undefined) throw new Error("tlsCertificate needs the secret tlsPrivateKey");
            const chain = pemCertificates(args.suppliedCertificatePem);
            // With a chain, the CA list is what follows the leaf; a lone certificate is its own trust anchor.
            const caPem = chain.length > 1 ? chain.slice(1).join("") : args.suppliedCertificatePem;
            this.material = pulumi.secret(
                pulumi.output(args.suppliedPrivateKeyPem).apply((privateKeyPem) => ({ certificatePem: args.suppliedCertificatePem as string, privateKeyPem, caPem })),
            );
        } else {
            const validityDays = args.validityDays ?? 365;
            const caKey = new tls.PrivateKey(`${name}-ca-key`, { algorithm: "ECDSA", ecdsaCurve: "P256" }, { parent: this });
            const ca = new tls.SelfSignedCert(
                `${name}-ca`,
                {
                    privateKeyPem: caKey.privateKeyPem,
                    isCaCertificate: true,
                    subject: { commonName: `${args.sipDomain} gateway CA`, organization: "IF.bus" },
                    validityPeriodHours: 10 * 365 * HOURS_PER_DAY,
                    allowedUses: ["cert_signing", "crl_signing"],
                },
                { parent: this },
            );
            const serverKey = new tls.PrivateKey(`${name}-key`, { algorithm: "ECDSA", ecdsaCurve: "P256" }, { parent: this });
            const request = new tls.CertRequest(
                `${name}-csr`,
                { privateKeyPem: serverKey.privateKeyPem, subject: { commonName: args.sipDomain }, dnsNames: [args.sipDomain], ipAddresses: args.ipAddresses ?? [] },
                { parent: this },
            );
            const cert = new tls.LocallySignedCert(
                `${name}-cert`,
                {
                    certRequestPem: request.certRequestPem,
                    caPrivateKeyPem: caKey.privateKeyPem,
                    caCertPem: ca.certPem,
                    validityPeriodHours: validityDays * HOURS_PER_DAY,
                    earlyRenewalHours: 30 * HOURS_PER_DAY,
                    allowedUses: ["digital_signature", "key_encipherment", "server_auth"],
                },
                { parent: this },
            );
            this.material = pulumi.secret(
                pulumi.all([cert.certPem, serverKey.privateKeyPem, ca.certPem]).apply(([certificatePem, privateKeyPem, caPem]) => ({ certificatePem, privateKeyPem, caPem })),
            );
        }
        this.registerOutputs({});
    }
}

export interface DeployKeyArgs {
    /** stack name, for tags */
    readonly stack: string;
    /** operator's OpenSSH public key line; default: generate an ed25519 pair whose private half stays a secret in state */
    readonly publicKey?: string;
}

export class DeployKey extends pulumi.ComponentResource {
    /** EC2 key pair name for the instances */
    readonly keyName: pulumi.Output<string>;
    readonly publicKeyOpenssh: pulumi.Output<string>;
    /**
     * secret OpenSSH private key of a generated pair; undefined when the
     * operator supplied sshPublicKey (the push then uses the operator's ssh-agent)
     */
    readonly privateKeyOpenssh?: pulumi.Output<string>;

    constructor(name: string, args: DeployKeyArgs, opts?: pulumi.ComponentResourceOptions) {
        super("ifbus:certificates:DeployKey", name, {}, opts);
        if (args.publicKey !== undefined) {
            this.publicKeyOpenssh = pulumi.output(args.publicKey);
        } else {
            const key = new tls.PrivateKey(`${name}-ed25519`, { algorithm: "ED25519" }, { parent: this });
            this.publicKeyOpenssh = key.publicKeyOpenssh;
            this.privateKeyOpenssh = pulumi.secret(key.privateKeyOpenssh);
        }
        const pair = new aws.ec2.KeyPair(`${name}-keypair`, { publicKey: this.publicKeyOpenssh, tags: tagsFor(args.stack, `${name}-keypair`, "shared") }, { parent: this });
        this.keyName = pair.keyName;
        this.registerOutputs({ keyName: this.keyName });
    }
}
