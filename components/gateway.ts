// The whole gateway: network, firewall, keys, secrets, hosts, the VIP and
// its IAM policy, the certificate, and the GatewayModel the render and push
// stages consume. Thin wiring only: decisions live in the pure modules.
import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import type { GatewaySpec } from "./spec";
import { GatewayModel, GatewaySecrets, VipModel, buildModel, planHosts, subnetCidrs } from "./model";
import type { Role } from "./ports";
import { PORTS } from "./ports";
import { Network } from "./network";
import { Firewall } from "./firewall";
import { DeployKey, SipCertificate } from "./certificates";
import { ServiceSecrets, ServiceSecretKey } from "./secrets";
import { DEBIAN_AMI_USER, GatewayHost, lookupAmi } from "./hosts";
import { VipAddress, VipMovePolicy } from "./failover";
import { Deployment } from "./push";

export interface GatewayArgs {
    /** the validated stack spec */
    readonly spec: GatewaySpec;
    /** service secrets the operator set in secret config; the others are generated */
    readonly suppliedSecrets: Readonly<Partial<Record<ServiceSecretKey, pulumi.Input<string>>>>;
    /** secret PEM key of spec.tlsCertificate; required with it */
    readonly tlsPrivateKey?: pulumi.Input<string>;
}

/** What the push needs to reach one host over SSH. */
export interface HostConnection {
    /** public address SSH listens on (EIP, or the instance's public address on internal roles) */
    readonly host: pulumi.Output<string>;
    /** login user of the Debian AMI */
    readonly user: string;
    /** secret OpenSSH private key; undefined when the operator's ssh-agent holds the key (sshPublicKey set) */
    readonly privateKey?: pulumi.Output<string>;
    /** resources that must exist before anything is pushed to the host */
    readonly dependsOn: pulumi.Resource[];
}

export class Gateway extends pulumi.ComponentResource {
    readonly spec: GatewaySpec;
    /** every host, its addresses and the secrets, as plain values (a secret Output: it holds passwords and keys) */
    readonly model: pulumi.Output<GatewayModel>;
    /** per host name */
    readonly hosts: Readonly<Record<string, GatewayHost>>;
    /** per host name: how the push connects */
    readonly connections: Readonly<Record<string, HostConnection>>;
    /** secret OpenSSH private key of the generated deploy key; undefined with sshPublicKey */
    readonly deployPrivateKey?: pulumi.Output<string>;
    /** the remote commands that deploy every host (plan steps) */
    readonly deployment: Deployment;
    /** the floating VIP (vipFailover stacks) */
    readonly vip?: VipAddress;
    /** the public address SIP clients and trunks use: the VIP, else the single proxy's EIP */
    readonly sipAddress: pulumi.Output<string>;
    /** TURN URIs for browsers' iceServers, over every TURN server */
    readonly turnUris: pulumi.Output<string[]>;
    /** secret SIP digest password per subscriber */
    readonly subscriberPasswords: pulumi.Output<Record<string, string>>;

    constructor(name: string, args: GatewayArgs, opts?: pulumi.ComponentResourceOptions) {
        super("ifbus:gateway:Gateway", name, {}, opts);
        const { spec } = args;
        this.spec = spec;
        const child = { parent: this };

        const network = new Network(
            `${name}-net`,
            {
                stack: spec.stack,
                availabilityZones: spec.availabilityZones,
                subnetCidrs: subnetCidrs(spec),
                vpcCidr: spec.vpcCidr,
                existingVpcId: spec.existingVpcId,
                existingSubnetIds: spec.existingSubnetIds,
            },
            child,
        );
        const firewall = new Firewall(`${name}-fw`, { spec, vpcId: network.vpcId }, child);
        const deployKey = new DeployKey(`${name}-deploy`, { stack: spec.stack, publicKey: spec.sshPublicKey }, child);
        const secrets = new ServiceSecrets(`${name}-secrets`, { supplied: args.suppliedSecrets, subscribers: spec.subscribers }, child);
        this.vip = spec.vipFailover ? new VipAddress(`${name}-vip`, { stack: spec.stack, protect: spec.protectStateful }, child) : undefined;
        const ami = lookupAmi(spec, child);

        const hosts: Record<string, GatewayHost> = {};
        for (const plan of planHosts(spec)) {
            const groupId = firewall.groupIds[plan.role];
            if (!groupId) throw new Error(`no security group for role ${plan.role}`);
            hosts[plan.name] = new GatewayHost(
                `${name}-${plan.name}`,
                {
                    stack: spec.stack,
                    plan,
                    instanceType: spec.instanceTypes[plan.role],
                    ami,
                    ignoreAmiChanges: spec.amiId === undefined,
                    subnetId: network.subnetIds[plan.zoneIndex],
                    securityGroupId: groupId,
                    keyName: deployKey.keyName,
                    iamInstanceProfile: plan.role === "sip-proxy" ? this.vip?.instanceProfileName : undefined,
                    rootVolumeGb: spec.rootVolumeGb,
                    dataVolumeGb: plan.role === "database" ? spec.databaseVolumeGb : undefined,
                    protectData: spec.protectStateful,
                    dependsOn: network.ready,
                },
                child,
            );
        }
        this.hosts = hosts;
        const ofRole = (role: Role) => Object.values(hosts).filter((h) => h.plan.role === role);
        const publicIpOf = (h: GatewayHost): pulumi.Output<string> => {
            if (!h.publicIp) throw new Error(`${h.plan.name} has no Elastic IP`);
            return h.publicIp;
        };

        if (this.vip) {
            const proxies = ofRole("sip-proxy");
            new VipMovePolicy(
                `${name}-vip-move`,
                {
                    role: this.vip.role,
                    allocationId: this.vip.allocationId,
                    networkInterfaceIds: proxies.map((p) => p.instance.primaryNetworkInterfaceId),
                    instanceArns: proxies.map((p) => p.instance.arn),
                },
                child,
            );
        }
        this.sipAddress = this.vip ? this.vip.publicIp : publicIpOf(ofRole("sip-proxy")[0]);

        // Browsers may reach the proxies and TURN servers by address as well as by name.
        const certificateIps = [...(this.vip ? [this.vip.publicIp] : []), ...ofRole("sip-proxy").map(publicIpOf), ...ofRole("turn").map(publicIpOf)];
        const certificate = new SipCertificate(
            `${name}-tls`,
            { sipDomain: spec.sipDomain, ipAddresses: certificateIps, suppliedCertificatePem: spec.tlsCertificate, suppliedPrivateKeyPem: args.tlsPrivateKey },
            child,
        );

        const region = aws.getRegionOutput({}, child).region;
        const publicHosts = Object.values(hosts).filter((h) => h.publicIp !== undefined);
        const publicIps = pulumi.all(Object.fromEntries(publicHosts.map((h) => [h.plan.name, publicIpOf(h)])));
        const vipFacts: pulumi.Output<VipModel | undefined> = this.vip
            ? pulumi.all([this.vip.publicIp, this.vip.allocationId]).apply(([publicIp, allocationId]) => ({ publicIp, allocationId }))
            : pulumi.output(undefined);
        const v = secrets.values;
        const secretValues: pulumi.Output<GatewaySecrets> = pulumi
            .all([v.databasePassword, v.databaseSstPassword, v.redisPassword, v.turnSharedSecret, secrets.subscriberPasswords, certificate.material])
            .apply(([databasePassword, databaseSstPassword, redisPassword, turnSharedSecret, subscriberPasswords, tls]) => ({
                databasePassword,
                databaseSstPassword,
                redisPassword,
                turnSharedSecret,
                subscriberPasswords,
                tls,
            }));
        this.model = pulumi.secret(
            pulumi.all([region, publicIps, vipFacts, secretValues]).apply(([r, ips, vip, s]) => buildModel(spec, { region: r, publicIps: ips, vip }, s, pulumi.getProject())),
        );

        this.deployPrivateKey = deployKey.privateKeyOpenssh;
        this.connections = Object.fromEntries(
            Object.entries(hosts).map(([hostName, h]) => [hostName, { host: h.sshHost, user: DEBIAN_AMI_USER, privateKey: deployKey.privateKeyOpenssh, dependsOn: h.ready }]),
        );
        this.turnUris = pulumi
            .all(ofRole("turn").map(publicIpOf))
            .apply((ips) => ips.flatMap((ip) => [`turn:${ip}:${PORTS.turn}?transport=udp`, `turn:${ip}:${PORTS.turn}?transport=tcp`, `turns:${ip}:${PORTS.turnTls}?transport=tcp`]));
        this.subscriberPasswords = secrets.subscriberPasswords;

        // render -> plan -> one @pulumi/command Command per plan step (components/push.ts)
        this.deployment = new Deployment(
            `${name}-push`,
            {
                spec,
                model: this.model,
                connections: Object.fromEntries(Object.entries(this.connections).map(([h, c]) => [h, { ...c, machineId: hosts[h].instance.id }])),
            },
            child,
        );

        this.registerOutputs({ sipAddress: this.sipAddress });
    }
}
