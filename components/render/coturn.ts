// TURN (coturn 4.6.1 from Debian 12): turnserver.conf and the TLS pair. Pure.
import type { GatewayModel, HostModel } from "../model";
import { PORTS, rangeSize } from "../ports";
import { renderTemplate } from "./engine";
import type { RenderedFile } from "./types";
import { headerFor, requirePublicIp, requireRole, safeSecret } from "./common";

export const TURN_CONF_PATH = "/etc/turnserver.conf";
export const TURN_CERT_PATH = "/etc/coturn/turn.pem";
export const TURN_KEY_PATH = "/etc/coturn/turn.key";
export const TURN_SERVICE = "coturn";

/**
 * Peers a TURN client may never reach through the relay (DOMAIN-FACTS 5):
 * "this network", RFC 1918, CGNAT, loopback, link-local (the EC2 metadata
 * service 169.254.169.254), IETF protocol assignments, benchmarking,
 * reserved; IPv6 ULA (covers fd00:ec2::254) and link-local, plus IPv4-mapped
 * IPv6 so the IPv4 list cannot be side-stepped. The relays then reach
 * RTPEngine only through its public address, as browsers do.
 */
export const DENIED_PEER_RANGES: readonly string[] = [
    "0.0.0.0-0.255.255.255",
    "10.0.0.0-10.255.255.255",
    "100.64.0.0-100.127.255.255",
    "127.0.0.0-127.255.255.255",
    "169.254.0.0-169.254.255.255",
    "172.16.0.0-172.31.255.255",
    "192.0.0.0-192.0.0.255",
    "192.168.0.0-192.168.255.255",
    "198.18.0.0-198.19.255.255",
    "240.0.0.0-255.255.255.255",
    "::ffff:0.0.0.0-::ffff:255.255.255.255",
    "fc00::-fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
    "fe80::-febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
];

/** Concurrent allocations one REST credential may hold (a browser needs one or two per call). */
export const TURN_USER_QUOTA = 12;

export function renderTurn(model: GatewayModel, host: HostModel): RenderedFile[] {
    requireRole(host, "turn", "renderTurn");
    const header = headerFor(model, host);
    const range = model.spec.turnRelayPorts;
    const template = "coturn/turnserver.conf";
    const conf = renderTemplate(
        template,
        {
            privateIp: host.privateIp,
            publicIp: requirePublicIp(host),
            turnPort: PORTS.turn,
            turnTlsPort: PORTS.turnTls,
            relayMin: range.min,
            relayMax: range.max,
            sharedSecret: safeSecret(template, "turnSharedSecret", model.secrets.turnSharedSecret),
            realm: model.spec.sipDomain,
            userQuota: TURN_USER_QUOTA,
            // every allocation may hold two ports of the range (even-port reservation)
            totalQuota: Math.floor(rangeSize(range) / 2),
            certPath: TURN_CERT_PATH,
            keyPath: TURN_KEY_PATH,
            deniedPeers: DENIED_PEER_RANGES,
        },
        header,
    );
    const tls = model.secrets.tls;
    const cert = renderTemplate("coturn/turn-cert.pem", { certificatePem: tls.certificatePem.trim() }, header);
    const key = renderTemplate("coturn/turn-key.pem", { privateKeyPem: tls.privateKeyPem.trim() }, header);
    return [
        // the secret is in the conf: readable by the turnserver group only
        { path: TURN_CONF_PATH, content: conf, mode: "0640", owner: "root", group: "turnserver", service: TURN_SERVICE, secret: true },
        { path: TURN_CERT_PATH, content: cert, mode: "0644", owner: "root", group: "root", service: TURN_SERVICE, secret: false },
        { path: TURN_KEY_PATH, content: key, mode: "0640", owner: "root", group: "turnserver", service: TURN_SERVICE, secret: true },
    ];
}
