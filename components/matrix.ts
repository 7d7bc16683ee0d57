// The port matrix as data: which role's security group admits what, from
// where. firewall.ts turns each rule into one aws.vpc.SecurityGroupIngressRule;
// the stack tests compare what was registered against this list.
// Pure: no Pulumi import. Port numbers come from ports.ts only.
import { PORTS, Role, VRRP_IP_PROTOCOL } from "./ports";
import type { GatewaySpec } from "./spec";
import { hostCount } from "./spec";

export const ANY_IPV4 = "0.0.0.0/0";
export const ANY_IPV6 = "::/0";

/** "tcp", "udp", or an IP protocol number as a string (VRRP is "112"). */
export type FirewallProtocol = "tcp" | "udp" | `${typeof VRRP_IP_PROTOCOL}`;

export type FirewallSource = { readonly cidr: string } | { readonly cidrIpv6: string } | { readonly role: Role };

export interface FirewallRule {
    /** stable, readable id, also the Pulumi resource name suffix: `<role>-<service>[-<proto>]-<source>` */
    readonly id: string;
    /** the role whose security group gets the rule */
    readonly role: Role;
    readonly protocol: FirewallProtocol;
    /** first port, inclusive; -1 for protocols without ports (VRRP) */
    readonly fromPort: number;
    /** last port, inclusive; -1 for protocols without ports (VRRP) */
    readonly toPort: number;
    readonly source: FirewallSource;
    /** shown in the AWS console next to the rule */
    readonly description: string;
}

/** Ports that must never be reachable from the whole internet (ng, DB, Galera, Redis, BIN, metrics, VRRP). */
export const INTERNAL_PORTS: readonly number[] = [
    PORTS.rtpengineNg,
    PORTS.rtpengineCli,
    PORTS.rtpengineHttp,
    PORTS.mysql,
    PORTS.galeraReplication,
    PORTS.galeraIst,
    PORTS.galeraSst,
    PORTS.redis,
    PORTS.bin,
    PORTS.opensipsHttp,
];

/** The source as one readable token for ids: `any-ipv4`, `any-ipv6`, `from-sip-proxy`, `198-51-100-0-24`. */
export function sourceLabel(s: FirewallSource): string {
    if ("role" in s) return `from-${s.role}`;
    if ("cidr" in s) return s.cidr === ANY_IPV4 ? "any-ipv4" : s.cidr.replace(/[./]/g, "-");
    return s.cidrIpv6 === ANY_IPV6 ? "any-ipv6" : s.cidrIpv6.replace(/[:/]/g, "-").replace(/-+/g, "-");
}

export function isOpenToInternet(rule: FirewallRule): boolean {
    return ("cidr" in rule.source && rule.source.cidr === ANY_IPV4) || ("cidrIpv6" in rule.source && rule.source.cidrIpv6 === ANY_IPV6);
}

/** Roles that have at least one host in this stack (only they get a security group). */
export function presentRoles(spec: GatewaySpec): Role[] {
    return (["sip-proxy", "media-relay", "database", "cache", "turn"] as const).filter((r) => hostCount(spec, r) > 0);
}

function dedupe(xs: readonly string[]): string[] {
    return [...new Set(xs)];
}

/** Every ingress rule of the stack, in a stable order. Egress is one all-traffic rule per group (firewall.ts). */
export function firewallRules(spec: GatewaySpec): FirewallRule[] {
    const rules: FirewallRule[] = [];
    const roles = presentRoles(spec);
    const has = (r: Role) => roles.includes(r);
    const add = (role: Role, service: string, protocol: FirewallProtocol, fromPort: number, toPort: number, sources: FirewallSource[], description: string) => {
        for (const source of sources) {
            rules.push({ id: `${role}-${service}-${sourceLabel(source)}`, role, protocol, fromPort, toPort, source, description });
        }
    };
    const anywhere: FirewallSource[] = [{ cidr: ANY_IPV4 }, { cidrIpv6: ANY_IPV6 }];
    const cidrs = (xs: readonly string[]): FirewallSource[] => dedupe(xs).map((cidr) => ({ cidr }));
    const sipPeers = cidrs([...spec.sipPeerCidrs, ...spec.sipTrunks.flatMap((t) => t.cidrs)]);
    const monitoring = cidrs(spec.monitoringCidrs);
    const one = (p: number): [number, number] => [p, p];

    // SIP proxy: browsers over WSS from anywhere; SIP peers and trunks only from their CIDRs.
    add("sip-proxy", "wss", "tcp", ...one(PORTS.wss), anywhere, "SIP over secure WebSocket from browsers (RFC 7118)");
    add("sip-proxy", "sip-udp", "udp", ...one(PORTS.sip), sipPeers, "SIP over UDP from phones, PBXs and trunks");
    add("sip-proxy", "sip-tcp", "tcp", ...one(PORTS.sip), sipPeers, "SIP over TCP from phones, PBXs and trunks");
    add("sip-proxy", "sip-tls", "tcp", ...one(PORTS.sipTls), sipPeers, "SIP over TLS from phones, PBXs and trunks");
    if (spec.devAllowPlainWs) add("sip-proxy", "ws", "tcp", ...one(PORTS.ws), anywhere, "DEV ONLY: SIP over plain WebSocket (devAllowPlainWs)");
    if (spec.sipProxyCount > 1) {
        // BIN and VRRP are unauthenticated: only the other proxy may send them (DOMAIN-FACTS 2, 4).
        add("sip-proxy", "bin", "tcp", ...one(PORTS.bin), [{ role: "sip-proxy" }], "OpenSIPS clusterer BIN replication between proxies");
        add("sip-proxy", "vrrp", `${VRRP_IP_PROTOCOL}`, -1, -1, [{ role: "sip-proxy" }], "keepalived unicast VRRP adverts between proxies");
    }
    add("sip-proxy", "metrics", "tcp", ...one(PORTS.opensipsHttp), monitoring, "OpenSIPS httpd /metrics for monitoring");

    // Media relay: RTP from anywhere (browsers, phones, TURN via its public address); ng only from proxies.
    add("media-relay", "rtp", "udp", spec.rtpPorts.min, spec.rtpPorts.max, anywhere, "RTPEngine media ports");
    add("media-relay", "ng", "udp", ...one(PORTS.rtpengineNg), [{ role: "sip-proxy" }], "RTPEngine ng control (unauthenticated: proxies only)");
    add("media-relay", "metrics", "tcp", ...one(PORTS.rtpengineHttp), monitoring, "RTPEngine HTTP /metrics for monitoring");

    // Database: clients are the proxies; Galera replication and state transfer between database nodes only.
    add("database", "mysql", "tcp", ...one(PORTS.mysql), [{ role: "sip-proxy" }], "MariaDB from the OpenSIPS proxies");
    if (spec.databaseCount > 1) {
        add("database", "galera-replication", "tcp", ...one(PORTS.galeraReplication), [{ role: "database" }], "Galera group communication between database nodes");
        add("database", "galera-ist", "tcp", ...one(PORTS.galeraIst), [{ role: "database" }], "Galera incremental state transfer between database nodes");
        add("database", "galera-sst", "tcp", ...one(PORTS.galeraSst), [{ role: "database" }], "Galera full state transfer (mariabackup) between database nodes");
    }

    // Cache: proxies (counters) and relays (call state).
    add("cache", "redis", "tcp", ...one(PORTS.redis), [{ role: "sip-proxy" }, { role: "media-relay" }], "Redis from proxies and relays");

    if (has("turn")) {
        add("turn", "turn-udp", "udp", ...one(PORTS.turn), anywhere, "STUN/TURN over UDP");
        add("turn", "turn-tcp", "tcp", ...one(PORTS.turn), anywhere, "STUN/TURN over TCP");
        add("turn", "turn-tls", "tcp", ...one(PORTS.turnTls), anywhere, "TURN over TLS");
        add("turn", "relay", "udp", spec.turnRelayPorts.min, spec.turnRelayPorts.max, anywhere, "coturn relay ports");
    }

    for (const role of roles) add(role, "ssh", "tcp", ...one(PORTS.ssh), cidrs(spec.adminCidrs), "SSH from the admin networks");

    const seen = new Set<string>();
    for (const r of rules) {
        if (seen.has(r.id)) throw new Error(`firewall rule id ${r.id} is not unique`);
        seen.add(r.id);
    }
    return rules;
}
