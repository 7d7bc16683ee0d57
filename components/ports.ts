// The port matrix: the ONE place where a port number is written down.
// Security groups, rendered configs and tests all read it from here.
// Pure: no Pulumi import.

export const ROLES = ["sip-proxy", "media-relay", "database", "cache", "turn"] as const;
export type Role = (typeof ROLES)[number];

export interface PortRange {
    /** first port, inclusive */
    readonly min: number;
    /** last port, inclusive */
    readonly max: number;
}

/** Fixed service ports. Ranges (RTP, TURN relay) come from the stack's spec. */
export const PORTS = {
    ssh: 22,
    /** SIP over UDP and TCP (RFC 3261) */
    sip: 5060,
    /** SIP over TLS (RFC 3261) */
    sipTls: 5061,
    /** SIP over secure WebSocket, what browsers use (RFC 7118) */
    wss: 443,
    /** SIP over plain WebSocket: dev stacks only, behind an explicit key */
    ws: 8080,
    /** OpenSIPS clusterer BIN replication between the two proxies (unauthenticated: proxies only) */
    bin: 5555,
    /** OpenSIPS httpd: /metrics (prometheus) and MI; private address only */
    opensipsHttp: 8888,
    /** RTPEngine ng control protocol (UDP, unauthenticated: proxies only) */
    rtpengineNg: 22222,
    /** RTPEngine CLI: loopback only, never in a security group */
    rtpengineCli: 9900,
    /** RTPEngine HTTP listener: /metrics and ng-over-HTTP, private address only */
    rtpengineHttp: 9901,
    /** MariaDB client protocol */
    mysql: 3306,
    /** Galera group communication (replication) */
    galeraReplication: 4567,
    /** Galera incremental state transfer */
    galeraIst: 4568,
    /** Galera full state transfer (mariabackup over socat) */
    galeraSst: 4444,
    redis: 6379,
    /** STUN/TURN over UDP and TCP */
    turn: 3478,
    /** TURN over TLS (and DTLS) */
    turnTls: 5349,
    /** the local lab's softphone page (HTTPS): lab and browser tests only, never in a security group */
    softphonePage: 8443,
} as const;

/** IP protocol number of VRRP (RFC 5798), used by keepalived's unicast adverts. */
export const VRRP_IP_PROTOCOL = 112;

export const DEFAULT_RTP_PORTS: PortRange = { min: 10000, max: 20000 };
export const DEFAULT_TURN_RELAY_PORTS: PortRange = { min: 49160, max: 49999 };

export function rangesOverlap(a: PortRange, b: PortRange): boolean {
    return a.min <= b.max && b.min <= a.max;
}

export function rangeSize(r: PortRange): number {
    return r.max - r.min + 1;
}

/**
 * Concurrent calls one relay can hold in a port range: every call takes
 * 4 ports (RTP + RTCP for each of its two legs).
 */
export function maxCallsPerRelay(r: PortRange): number {
    return Math.floor(rangeSize(r) / 4);
}

/** Every fixed port a host of a role listens on (for collision checks against ranges). */
export function fixedPortsOf(role: Role): number[] {
    switch (role) {
        case "sip-proxy":
            return [PORTS.ssh, PORTS.sip, PORTS.sipTls, PORTS.wss, PORTS.ws, PORTS.bin, PORTS.opensipsHttp];
        case "media-relay":
            return [PORTS.ssh, PORTS.rtpengineNg, PORTS.rtpengineCli, PORTS.rtpengineHttp];
        case "database":
            return [PORTS.ssh, PORTS.mysql, PORTS.galeraReplication, PORTS.galeraIst, PORTS.galeraSst];
        case "cache":
            return [PORTS.ssh, PORTS.redis];
        case "turn":
            return [PORTS.ssh, PORTS.turn, PORTS.turnTls];
    }
}
