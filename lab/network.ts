// The gateway lab's network, shaped like the VPC it stands in for:
// - the lan namespace (lab/host.ts) is the VPC router and internet gateway:
//   it maps each lab "public" address 1:1 onto a private one, statelessly, as
//   EC2 maps an Elastic IP (nftables in the lan: a public->private map for
//   what comes in, private->public for what leaves the VPC or hairpins back
//   through a public address); an unassociated public address drops;
// - an "internet" namespace holds the clients (browsers, phones, the admin's
//   SSH) on TEST-NET-2 addresses, routed only to the public range;
// - each host's namespace gets its security group, generated from the port
//   matrix (components/matrix.ts), as stateful iptables INPUT rules;
// - 169.254.169.254 on the lan answers instance metadata (lab/controller.ts).
// Nothing is routed out of the lab: hosts get routes to the public and
// client ranges through their subnet's router, never a default route.
import { execFileSync } from "child_process";
import type { GatewayModel, HostModel } from "../components/model";
import { ANY_IPV4, firewallRules, FirewallRule } from "../components/matrix";
import { cidrContains, intToIp, ipToInt, parseCidr } from "../components/ipplan";
import { LAB_PREFIX, routerAddress } from "./host";

/** TEST-NET-3 (RFC 5737): the lab's public addresses (offlineModel's EIPs and VIP are in it). */
export const LAB_PUBLIC_NET = "203.0.113.0/24";
/** TEST-NET-2 (RFC 5737): the lab's internet, where clients and the admin live. */
export const LAB_INTERNET_NET = "198.51.100.0/24";
/** the internet side of the lab's gateway */
export const INTERNET_ROUTER = "198.51.100.1";
/** the admin's address: SSH to every host comes from here (inside the example stacks' adminCidrs) */
export const ADMIN_IP = "198.51.100.2";
/** clients: browsers, sipp, TURN probes (inside the example stacks' sipPeerCidrs, outside their trunks) */
export const CLIENT_IPS = ["198.51.100.10", "198.51.100.11", "198.51.100.12", "198.51.100.13"] as const;
/** EC2's instance metadata address */
export const IMDS_IP = "169.254.169.254";
/** lab-only public addresses of hosts whose role has no Elastic IP (EC2 gives them an auto-assigned one) */
const AUTO_PUBLIC_BASE = 100;
export const NFT_TABLE = "ifbus_lab";

export function internetNs(labId: string): string {
    return `${LAB_PREFIX}${labId}-net`;
}

export interface LabAddresses {
    /** host name -> its lab public address (EIP, or an auto-assigned one for internal roles) */
    readonly publicIps: Readonly<Record<string, string>>;
    readonly vip?: { readonly publicIp: string; readonly allocationId: string };
}

/** Every host's public address in the lab: the model's where it has one, the next free TEST-NET-3 address otherwise. */
export function labAddresses(model: GatewayModel): LabAddresses {
    const publicIps: Record<string, string> = {};
    let next = AUTO_PUBLIC_BASE;
    for (const h of model.hosts) {
        const ip = h.publicIp ?? `203.0.113.${next++}`;
        if (!cidrContains(LAB_PUBLIC_NET, `${ip}/32`)) throw new Error(`host ${h.name}'s public address ${ip} is outside the lab's public range ${LAB_PUBLIC_NET}`);
        publicIps[h.name] = ip;
    }
    if (model.vip && !cidrContains(LAB_PUBLIC_NET, `${model.vip.publicIp}/32`)) throw new Error(`the VIP ${model.vip.publicIp} is outside the lab's public range ${LAB_PUBLIC_NET}`);
    return { publicIps, vip: model.vip };
}

/** Refuse a stack whose admin or SIP peer networks leave out the lab's admin and client addresses. */
export function checkLabFitsSpec(model: GatewayModel): void {
    const inAny = (ip: string, cidrs: readonly string[]) => cidrs.some((c) => cidrContains(c, `${ip}/32`));
    if (!inAny(ADMIN_IP, model.spec.adminCidrs)) throw new Error(`the lab's admin address ${ADMIN_IP} is outside adminCidrs (${model.spec.adminCidrs.join(", ")}): the security groups would refuse its SSH`);
    const trunkCidrs = model.spec.sipTrunks.flatMap((t) => t.cidrs);
    for (const ip of CLIENT_IPS) {
        if (inAny(ip, trunkCidrs)) throw new Error(`the lab's client address ${ip} is inside a trunk's cidrs: calls from it would pass as a carrier's`);
    }
}

function sh(args: string[], input?: string): string {
    try {
        return execFileSync(args[0], args.slice(1), { input, stdio: ["pipe", "pipe", "pipe"], encoding: "utf8" });
    } catch (e) {
        const err = e as { stderr?: string; message: string };
        throw new Error(`${args.join(" ")} failed: ${err.stderr?.trim() || err.message}`);
    }
}

const inNs = (ns: string, ...cmd: string[]) => ["nsenter", `--net=/run/netns/${ns}`, "--", ...cmd];

/** The stateless 1:1 NAT of the lan, with the VIP unassociated (as Pulumi leaves it: keepalived owns the association). */
export function natRuleset(model: GatewayModel, addrs: LabAddresses): string {
    const vpc = model.spec.vpcCidr;
    const pairs = model.hosts.map((h) => [addrs.publicIps[h.name], h.privateIp] as const);
    const elems = (xs: readonly (readonly [string, string])[]) => (xs.length ? `elements = { ${xs.map(([a, b]) => `${a} : ${b}`).join(", ")} }` : "");
    return [
        `table ip ${NFT_TABLE} {`,
        `    map pub_to_priv { type ipv4_addr : ipv4_addr; ${elems(pairs)} }`,
        `    map priv_to_pub { type ipv4_addr : ipv4_addr; ${elems(pairs.map(([p, q]) => [q, p] as const))} }`,
        "    chain pre {",
        "        type filter hook prerouting priority raw; policy accept;",
        // stateless, as EC2's mapping: a moved VIP takes effect with the next packet, no stale connection state
        "        notrack",
        `        ip daddr ${LAB_PUBLIC_NET} meta mark set 0x1`,
        `        ip daddr ${LAB_PUBLIC_NET} ip daddr set ip daddr map @pub_to_priv`,
        // a public address mapped to nothing (an unassociated EIP) goes nowhere
        `        ip daddr ${LAB_PUBLIC_NET} drop`,
        "    }",
        "    chain post {",
        "        type filter hook postrouting priority srcnat; policy accept;",
        `        ip saddr ${vpc} ip daddr != ${vpc} ip saddr set ip saddr map @priv_to_pub`,
        // hairpin: a host that reached another through its public address sees the reply come from it
        `        meta mark 0x1 ip saddr ${vpc} ip saddr set ip saddr map @priv_to_pub`,
        "    }",
        "}",
        "",
    ].join("\n");
}

/**
 * Turn the lan into the VPC's router and internet gateway and create the
 * internet namespace with the clients' and the admin's addresses.
 */
export function setupLabNetwork(labId: string, lanNs: string, model: GatewayModel, addrs: LabAddresses): void {
    const net = internetNs(labId);
    sh(["ip", "netns", "exec", lanNs, "sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    sh(["ip", "-n", lanNs, "addr", "add", `${IMDS_IP}/32`, "dev", "br0"]);
    sh(["ip", "netns", "add", net]);
    sh(["ip", "-n", net, "link", "set", "lo", "up"]);
    sh(["ip", "-n", lanNs, "link", "add", "inet0", "type", "veth", "peer", "name", "eth0", "netns", net]);
    sh(["ip", "-n", lanNs, "addr", "add", `${INTERNET_ROUTER}/${parseCidr(LAB_INTERNET_NET).prefix}`, "dev", "inet0"]);
    sh(["ip", "-n", lanNs, "link", "set", "inet0", "up"]);
    for (const ip of [ADMIN_IP, ...CLIENT_IPS]) sh(["ip", "-n", net, "addr", "add", `${ip}/${parseCidr(LAB_INTERNET_NET).prefix}`, "dev", "eth0"]);
    sh(["ip", "-n", net, "link", "set", "eth0", "up"]);
    // the internet reaches the lab's public addresses only; private ones stay unroutable from here
    sh(["ip", "-n", net, "route", "add", LAB_PUBLIC_NET, "via", INTERNET_ROUTER]);
    sh(inNs(lanNs, "nft", "-f", "-"), natRuleset(model, addrs));
}

/** Routes a host needs besides its subnet: the public and client ranges and the metadata address, via its router. */
export function hostRoutes(host: HostModel): string[][] {
    const router = routerAddress(host.subnetCidr);
    return [LAB_PUBLIC_NET, LAB_INTERNET_NET, `${IMDS_IP}/32`].map((dst) => [dst, "via", router]);
}

/** A rule's sources as IPv4 CIDRs: a role is every private address of that role's hosts (what an SG reference matches). */
function sourcesOf(rule: FirewallRule, model: GatewayModel): string[] {
    const s = rule.source;
    if ("cidrIpv6" in s) return [];
    if ("cidr" in s) return [s.cidr];
    return model.hosts.filter((h) => h.role === s.role).flatMap((h) => [h.privateIp, ...(h.vipPrivateIp ? [h.vipPrivateIp] : [])].map((ip) => `${ip}/32`));
}

/** The host's security group as an iptables-restore ruleset: stateful, inbound from the matrix only, outbound open. */
export function securityGroupRules(model: GatewayModel, host: HostModel): string {
    const lines = ["*filter", ":INPUT DROP [0:0]", ":FORWARD DROP [0:0]", ":OUTPUT ACCEPT [0:0]", "-A INPUT -i lo -j ACCEPT", "-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT"];
    for (const rule of firewallRules(model.spec).filter((r) => r.role === host.role)) {
        for (const src of sourcesOf(rule, model)) {
            const from = src === ANY_IPV4 ? [] : ["-s", src];
            const comment = ["-m", "comment", "--comment", rule.id];
            if (rule.protocol === "tcp" || rule.protocol === "udp") {
                const ports = rule.fromPort === rule.toPort ? String(rule.fromPort) : `${rule.fromPort}:${rule.toPort}`;
                lines.push(["-A", "INPUT", "-p", rule.protocol, ...from, "--dport", ports, ...comment, "-j", "ACCEPT"].join(" "));
            } else {
                lines.push(["-A", "INPUT", "-p", rule.protocol, ...from, ...comment, "-j", "ACCEPT"].join(" "));
            }
        }
    }
    lines.push("COMMIT", "");
    return lines.join("\n");
}

/** Load a host's security group into its namespace (before it boots). */
export function applySecurityGroup(netns: string, model: GatewayModel, host: HostModel): void {
    sh(inNs(netns, "iptables-restore"), securityGroupRules(model, host));
}

/** A host's addresses as EC2 sees them: primary, then the secondary that carries the VIP. */
export function privateIpsOf(host: HostModel): string[] {
    return [host.privateIp, ...(host.vipPrivateIp ? [host.vipPrivateIp] : [])];
}

/** A made-up but stable MAC and ENI id per host, for the metadata service. */
export function ec2Identity(host: HostModel): { mac: string; eni: string } {
    const n = ipToInt(host.privateIp);
    const mac = `0e:${[n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255, 1].map((b) => b.toString(16).padStart(2, "0")).join(":")}`;
    return { mac, eni: `eni-0lab${n.toString(16).padStart(8, "0")}` };
}

export { intToIp };
