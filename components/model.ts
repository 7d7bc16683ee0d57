// GatewayModel: every host, its role, addresses and peers, plus the secrets,
// as plain values. Built from the spec and the few facts only AWS knows
// (public addresses, the VIP allocation). Pure: no Pulumi import.
import type { GatewaySpec } from "./spec";
import { hostCount } from "./spec";
import { ROLES, Role } from "./ports";
import { hostPrivateIp, nthSubnet, proxyVipPrivateIp, subnetIndexFor } from "./ipplan";

export interface HostPlan {
    /** host name, unique in the stack: `<role>-<n>` (n from 1) */
    readonly name: string;
    readonly role: Role;
    /** 0-based index within the role */
    readonly index: number;
    /** availability zone index into spec.availabilityZones */
    readonly zoneIndex: number;
    readonly zone: string;
    readonly subnetCidr: string;
    /** the fixed private address from the IP plan */
    readonly privateIp: string;
    /**
     * sip proxies with vipFailover only: the secondary private address on the
     * proxy's interface that the VIP EIP is associated with while this proxy is
     * master (OpenSIPS listens on it, advertising the VIP)
     */
    readonly vipPrivateIp?: string;
}

export interface HostModel extends HostPlan {
    /** public address: EIP of a relay or TURN server, the proxy's own public address; absent for internal roles */
    readonly publicIp?: string;
}

export interface TlsMaterial {
    /** PEM server certificate for the SIP domain (chain included when user supplied) */
    readonly certificatePem: string;
    /** PEM private key (secret) */
    readonly privateKeyPem: string;
    /** PEM CA certificate that signed it (the stack's own CA, or the supplied chain) */
    readonly caPem: string;
}

export interface GatewaySecrets {
    /** password of the `opensips` MariaDB account */
    readonly databasePassword: string;
    /** password of the `sst` MariaDB account used by mariabackup SST */
    readonly databaseSstPassword: string;
    /** Redis requirepass */
    readonly redisPassword: string;
    /** coturn static-auth-secret (TURN REST API) */
    readonly turnSharedSecret: string;
    /** SIP digest passwords, by subscriber user name */
    readonly subscriberPasswords: Readonly<Record<string, string>>;
    readonly tls: TlsMaterial;
}

export interface VipModel {
    /** the floating public address browsers and trunks use */
    readonly publicIp: string;
    /** EIP allocation id the keepalived notify script re-associates */
    readonly allocationId: string;
}

export interface GatewayModel {
    readonly project: string;
    readonly stack: string;
    readonly region: string;
    readonly spec: GatewaySpec;
    readonly hosts: readonly HostModel[];
    /** present when spec.vipFailover */
    readonly vip?: VipModel;
    readonly secrets: GatewaySecrets;
}

/** Subnet CIDR for each availability zone, in zone order. */
export function subnetCidrs(spec: GatewaySpec): string[] {
    return spec.existingSubnetCidrs ?? spec.availabilityZones.map((_, i) => nthSubnet(spec.vpcCidr, spec.subnetPrefixLength, i));
}

/** Every host of the stack with its fixed placement and private address. */
export function planHosts(spec: GatewaySpec): HostPlan[] {
    const subnets = subnetCidrs(spec);
    const hosts: HostPlan[] = [];
    for (const role of ROLES) {
        for (let index = 0; index < hostCount(spec, role); index++) {
            const zoneIndex = subnetIndexFor(index, subnets.length);
            hosts.push({
                name: `${role}-${index + 1}`,
                role,
                index,
                zoneIndex,
                zone: spec.availabilityZones[zoneIndex],
                subnetCidr: subnets[zoneIndex],
                privateIp: hostPrivateIp(subnets[zoneIndex], role, index),
                ...(role === "sip-proxy" && spec.vipFailover ? { vipPrivateIp: proxyVipPrivateIp(subnets[zoneIndex], index) } : {}),
            });
        }
    }
    return hosts;
}

export interface InfraFacts {
    readonly region: string;
    /** public address by host name, for hosts that have one */
    readonly publicIps: Readonly<Record<string, string>>;
    readonly vip?: VipModel;
}

export function buildModel(spec: GatewaySpec, infra: InfraFacts, secrets: GatewaySecrets, project = "ifbus-gateway"): GatewayModel {
    if (spec.vipFailover && !infra.vip) throw new Error("vipFailover is on but no VIP address was provided to the model");
    for (const user of spec.subscribers)
        if (!(user in secrets.subscriberPasswords)) throw new Error(`subscriber "${user}" has no password in the model's secrets`);
    const hosts = planHosts(spec).map((h) => ({ ...h, publicIp: infra.publicIps[h.name] }));
    return { project, stack: spec.stack, region: infra.region, spec, hosts, vip: infra.vip, secrets };
}

export function hostsOf(model: GatewayModel, role: Role): HostModel[] {
    return model.hosts.filter((h) => h.role === role);
}

export function hostByName(model: GatewayModel, name: string): HostModel {
    const h = model.hosts.find((x) => x.name === name);
    if (!h) throw new Error(`no host named "${name}" in stack ${model.stack}`);
    return h;
}

/** The address SIP clients and trunks reach: the VIP, else the single proxy's public address. */
export function sipPublicIp(model: GatewayModel): string {
    if (model.vip) return model.vip.publicIp;
    const proxy = hostsOf(model, "sip-proxy")[0];
    if (!proxy.publicIp) throw new Error(`sip proxy ${proxy.name} has no public address in the model`);
    return proxy.publicIp;
}

/** Hosts with a public address of their own (EIP). */
export function rolesWithPublicIp(): Role[] {
    return ["sip-proxy", "media-relay", "turn"];
}
