// Pulumi mocks for the stack tests. Mocks echo inputs only, so this file
// supplies what the providers compute (ids, EIP addresses, key material,
// random results) and answers the invokes the program makes. Everything it
// records is what the program registered, for policy-style assertions.
// Must be installed before the program constructs any resource.
import * as pulumi from "@pulumi/pulumi";

/** The marker Pulumi wraps a secret value in on the wire (sdk/nodejs/runtime/rpc.ts specialSigKey/specialSecretSig). */
export const SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d";
export const SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270";

export const MOCK_ACCOUNT = "123456789012";
export const MOCK_REGION = "eu-central-1";
export const MOCK_AMI = "ami-0123456789abcdef0";

export interface RegisteredResource {
    readonly type: string;
    readonly name: string;
    readonly custom: boolean;
    /** inputs as the engine received them; secrets still wrapped in the secret marker */
    readonly inputs: Record<string, unknown>;
    readonly id?: string;
}

export interface MockSubnet {
    readonly id: string;
    readonly vpcId: string;
    readonly cidrBlock: string;
    readonly availabilityZone: string;
}

export interface GatewayMockOptions {
    /** existing subnets the getSubnet invoke knows, by id */
    readonly subnets?: readonly MockSubnet[];
}

function secret(v: string): pulumi.Output<string> {
    return pulumi.secret(v);
}

/** A random-looking, unique token (letters and digits), so a leaked value is found by a plain substring search. */
function token(prefix: string, n: number): string {
    return `${prefix}${n.toString(36)}${Math.random().toString(36).slice(2, 12)}`.replace(/[^A-Za-z0-9]/g, "");
}

export class GatewayMocks implements pulumi.runtime.Mocks {
    readonly resources: RegisteredResource[] = [];
    readonly invokes: { token: string; inputs: unknown }[] = [];
    private seq = 0;

    constructor(private readonly options: GatewayMockOptions = {}) {}

    newResource(args: pulumi.runtime.MockResourceArgs): { id: string | undefined; state: Record<string, any> } {
        const n = ++this.seq;
        const hex = n.toString(16).padStart(8, "0");
        const computed = this.computed(args, n, hex);
        const id = args.custom ? (computed.id as string | undefined) ?? `${args.name}-id` : undefined;
        this.resources.push({ type: args.type, name: args.name, custom: args.custom ?? false, inputs: args.inputs, id });
        const { id: _ignored, ...state } = computed;
        return { id, state: { ...args.inputs, ...state } };
    }

    private computed(args: pulumi.runtime.MockResourceArgs, n: number, hex: string): Record<string, any> {
        const inputs = args.inputs as Record<string, any>;
        switch (args.type) {
            case "aws:ec2/vpc:Vpc":
                return { id: `vpc-${hex}`, arn: `arn:aws:ec2:${MOCK_REGION}:${MOCK_ACCOUNT}:vpc/vpc-${hex}` };
            case "aws:ec2/subnet:Subnet":
                return { id: `subnet-${hex}` };
            case "aws:ec2/internetGateway:InternetGateway":
                return { id: `igw-${hex}` };
            case "aws:ec2/routeTable:RouteTable":
                return { id: `rtb-${hex}` };
            case "aws:ec2/securityGroup:SecurityGroup":
                return { id: `sg-${hex}`, name: inputs.name ?? `${args.name}-${hex}` };
            case "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule":
            case "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule":
                return { id: `sgr-${hex}` };
            case "aws:ec2/eip:Eip":
                // TEST-NET-3 (RFC 5737): documentation addresses, never routed.
                return { id: `eipalloc-${hex}`, allocationId: `eipalloc-${hex}`, publicIp: `203.0.113.${n % 250}` };
            case "aws:ec2/eipAssociation:EipAssociation":
                return { id: `eipassoc-${hex}` };
            case "aws:ec2/instance:Instance":
                return {
                    id: `i-${hex}`,
                    arn: `arn:aws:ec2:${MOCK_REGION}:${MOCK_ACCOUNT}:instance/i-${hex}`,
                    primaryNetworkInterfaceId: `eni-${hex}`,
                    publicIp: inputs.associatePublicIpAddress ? `198.51.100.${n % 250}` : "",
                };
            case "aws:ebs/volume:Volume":
                return { id: `vol-${hex}`, arn: `arn:aws:ec2:${MOCK_REGION}:${MOCK_ACCOUNT}:volume/vol-${hex}` };
            case "aws:ec2/keyPair:KeyPair": {
                const keyName = inputs.keyName ?? `${args.name}-${hex}`;
                return { id: keyName, keyName };
            }
            case "aws:iam/role:Role": {
                const name = inputs.name ?? `${args.name}-${hex}`;
                return { id: name, name, arn: `arn:aws:iam::${MOCK_ACCOUNT}:role/${name}` };
            }
            case "aws:iam/instanceProfile:InstanceProfile": {
                const name = inputs.name ?? `${args.name}-${hex}`;
                return { id: name, name, arn: `arn:aws:iam::${MOCK_ACCOUNT}:instance-profile/${name}` };
            }
            case "tls:index/privateKey:PrivateKey": {
                const body = token("MOCKKEY", n);
                // The real provider marks these secret (additionalSecretOutputs, which mocks ignore).
                return {
                    id: `key-${hex}`,
                    privateKeyPem: secret(`-----BEGIN PRIVATE KEY-----\n${body}\n-----END PRIVATE KEY-----\n`),
                    privateKeyPemPkcs8: secret(`-----BEGIN PRIVATE KEY-----\n${body}pkcs8\n-----END PRIVATE KEY-----\n`),
                    privateKeyOpenssh: secret(`-----BEGIN OPENSSH PRIVATE KEY-----\n${body}ssh\n-----END OPENSSH PRIVATE KEY-----\n`),
                    publicKeyOpenssh: `ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI${hex}mock\n`,
                    publicKeyPem: `-----BEGIN PUBLIC KEY-----\nMOCKPUB${hex}\n-----END PUBLIC KEY-----\n`,
                };
            }
            case "tls:index/selfSignedCert:SelfSignedCert":
            case "tls:index/locallySignedCert:LocallySignedCert":
                return { id: `cert-${hex}`, certPem: `-----BEGIN CERTIFICATE-----\nMOCKCERT${hex}\n-----END CERTIFICATE-----\n` };
            case "tls:index/certRequest:CertRequest":
                return { id: `csr-${hex}`, certRequestPem: `-----BEGIN CERTIFICATE REQUEST-----\nMOCKCSR${hex}\n-----END CERTIFICATE REQUEST-----\n` };
            case "random:index/randomPassword:RandomPassword":
                return { id: `none-${hex}`, result: secret(token("MockPw", n).padEnd(inputs.length ?? 32, "x").slice(0, inputs.length ?? 32)), bcryptHash: secret(`$2a$10$${hex}`) };
            default:
                return { id: `${args.name}-${hex}` };
        }
    }

    call(args: pulumi.runtime.MockCallArgs): Record<string, any> {
        this.invokes.push({ token: args.token, inputs: args.inputs });
        switch (args.token) {
            case "aws:ec2/getAmi:getAmi":
                return { id: MOCK_AMI, imageId: MOCK_AMI, architecture: "x86_64", name: "debian-12-amd64-20261101-0000" };
            case "aws:index/getCallerIdentity:getCallerIdentity":
                return { id: MOCK_ACCOUNT, accountId: MOCK_ACCOUNT, arn: `arn:aws:iam::${MOCK_ACCOUNT}:user/test`, userId: "AIDAMOCK" };
            case "aws:index/getRegion:getRegion":
                return { id: MOCK_REGION, region: MOCK_REGION, name: MOCK_REGION, description: "Europe (Frankfurt)", endpoint: `ec2.${MOCK_REGION}.amazonaws.com` };
            case "aws:index/getPartition:getPartition":
                return { id: "aws", partition: "aws", dnsSuffix: "amazonaws.com", reverseDnsPrefix: "com.amazonaws" };
            case "aws:ec2/getVpc:getVpc":
                return { id: args.inputs.id, cidrBlock: "10.60.0.0/16" };
            case "aws:ec2/getSubnet:getSubnet": {
                const s = this.options.subnets?.find((x) => x.id === args.inputs.id);
                return s ? { ...s } : {};
            }
            default:
                // An unknown token gets {} rather than a throw (a throw becomes an empty error or a hang).
                return {};
        }
    }
}

/** Sets config (keys with the project prefix, values as strings) and installs the mocks. Call before constructing anything. */
export async function installMocks(project: string, stack: string, config: Record<string, string>, secretKeys: string[], options: GatewayMockOptions = {}): Promise<GatewayMocks> {
    process.env.PULUMI_ERROR_OUTPUT_STRING = "true";
    pulumi.runtime.setAllConfig(config, secretKeys);
    const mocks = new GatewayMocks(options);
    await pulumi.runtime.setMocks(mocks, project, stack, false);
    return mocks;
}

/** Replace every secret-wrapped value by "[secret]", so what is left is what would sit in plain text in state. */
export function stripSecrets(v: unknown): unknown {
    if (Array.isArray(v)) return v.map(stripSecrets);
    if (v && typeof v === "object") {
        const o = v as Record<string, unknown>;
        if (o[SECRET_SIG_KEY] === SECRET_SIG) return "[secret]";
        return Object.fromEntries(Object.entries(o).map(([k, x]) => [k, stripSecrets(x)]));
    }
    return v;
}

/** Remove the secret wrapper, keeping the value (for comparing strings). */
export function unwrapSecrets(v: unknown): unknown {
    if (Array.isArray(v)) return v.map(unwrapSecrets);
    if (v && typeof v === "object") {
        const o = v as Record<string, unknown>;
        if (o[SECRET_SIG_KEY] === SECRET_SIG) return unwrapSecrets(o.value);
        return Object.fromEntries(Object.entries(o).map(([k, x]) => [k, unwrapSecrets(x)]));
    }
    return v;
}
