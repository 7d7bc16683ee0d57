// OpenSIPS 3.6 (sip-proxy role): opensips.cfg, /etc/default/opensips, TLS
// files, a systemd drop-in, and keepalived's files when the stack has a VIP.
// Pure: plain model in, plain files out.
import type { GatewayModel, HostModel } from "../model";
import { hostsOf, sipPublicIp } from "../model";
import { PORTS } from "../ports";
import { RenderError, renderTemplate } from "./engine";
import type { RenderedFile } from "./types";
import { headerFor, requireRole } from "./common";
import { renderKeepalived } from "./keepalived";
import { OPENSIPS_DB_NAME, OPENSIPS_DB_USER, TRUNK_ADDRESS_GROUP, TRUNK_DISPATCHER_SET } from "./opensips-schema";

/** clusterer cluster shared by usrloc, dialog, dispatcher and nathelper */
export const OPENSIPS_CLUSTER_ID = 1;
/** sharing tag that follows the VIP: keepalived's notify runs `clusterer_shtag_set_active vip/1` */
export const OPENSIPS_SHARING_TAG = "vip";
/** what keepalived's notify script passes to `opensips-cli -x mi clusterer_shtag_set_active` */
export const OPENSIPS_SHARING_TAG_REF = `${OPENSIPS_SHARING_TAG}/${OPENSIPS_CLUSTER_ID}`;
/** the MI FIFO; opensips-cli 0.4 looks at /var/run/opensips/opensips_fifo by default (same file via /run) */
export const OPENSIPS_FIFO = "/run/opensips/opensips_fifo";

/** tag of every SIP socket: replicated dialogs and contacts name sockets by it, not by the node's IP */
export const SIP_SOCKET_TAG = "public";

export const OPENSIPS_CFG = "/etc/opensips/opensips.cfg";
export const OPENSIPS_DEFAULTS = "/etc/default/opensips";
export const OPENSIPS_TLS_DIR = "/etc/opensips/tls";
export const OPENSIPS_UNIT_DROPIN = "/etc/systemd/system/opensips.service.d/ifbus.conf";
/** public CA bundle (Debian ca-certificates) used to verify carriers' TLS certificates */
export const SYSTEM_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt";

/**
 * rtpengine flags per SDP RECIPIENT (DOMAIN-FACTS 9, verified end to end with
 * rtpengine 10.5 and Chromium). Never DTLS=passive toward a browser: it races
 * the browser's ClientHello and DTLS never completes.
 */
export const RTPENGINE_FLAGS_TOWARD_BROWSER = "UDP/TLS/RTP/SAVPF ICE=force rtcp-mux-offer rtcp-mux-require generate-mid SDES-off";
export const RTPENGINE_FLAGS_TOWARD_SIP = "RTP/AVP ICE=remove DTLS=off rtcp-mux-demux replace-origin replace-session-connection";

// Characters that survive inside a mysql:// URL and a double-quoted cfg string unescaped.
const DB_URL_SAFE = /^[A-Za-z0-9._~+=!*-]+$/;

function dbUrls(model: GatewayModel): string[] {
    const pw = model.secrets.databasePassword;
    if (!DB_URL_SAFE.test(pw))
        throw new RenderError(
            "opensips/opensips.cfg",
            'secret "databasePassword" holds characters that cannot go into an OpenSIPS mysql:// URL unescaped; use letters, digits and . _ ~ + = ! * - only',
        );
    // FAILOVER order = database host order: every proxy writes to the same single node (DOMAIN-FACTS 10).
    return hostsOf(model, "database").map((db) => `mysql://${OPENSIPS_DB_USER}:${pw}@${db.privateIp}:${PORTS.mysql}/${OPENSIPS_DB_NAME}`);
}

function rtpengineSock(model: GatewayModel): string {
    // One weighted set: the module fails over inside a set on timeout or "Ran out of ports".
    return hostsOf(model, "media-relay")
        .map((r) => `udp:${r.privateIp}:${PORTS.rtpengineNg}=1`)
        .join(" ");
}

interface ClusterVars {
    readonly id: number;
    readonly nodeId: number;
    readonly myNodeInfo: string;
    readonly neighbors: readonly string[];
    readonly sharingTag: string;
    readonly sharingTagInitial: string;
}

function clusterVars(model: GatewayModel, host: HostModel): ClusterVars | false {
    const proxies = hostsOf(model, "sip-proxy");
    if (proxies.length < 2) return false;
    const url = (h: HostModel) => `bin:${h.privateIp}:${PORTS.bin}`;
    const seed = host.index === 0;
    return {
        id: OPENSIPS_CLUSTER_ID,
        nodeId: host.index + 1,
        // exactly one seed node, or usrloc/dialog sync never starts (usrloc README, location_cluster)
        myNodeInfo: `cluster_id=${OPENSIPS_CLUSTER_ID},url=${url(host)}${seed ? ",flags=seed" : ""}`,
        neighbors: proxies.filter((p) => p.name !== host.name).map((p) => `cluster_id=${OPENSIPS_CLUSTER_ID},node_id=${p.index + 1},url=${url(p)}`),
        sharingTag: OPENSIPS_SHARING_TAG,
        // proxy-1 starts as keepalived's preferred master; notify_master flips the tag afterwards
        sharingTagInitial: `${OPENSIPS_SHARING_TAG_REF}=${seed ? "active" : "backup"}`,
    };
}

/**
 * Where the client-facing SIP sockets bind: with a VIP, the proxy's secondary
 * private address that the VIP Elastic IP lands on; else the primary one.
 */
export function sipListenIp(host: HostModel): string {
    return host.vipPrivateIp ?? host.privateIp;
}

/** Variables of config-templates/opensips/opensips.cfg (exported for tests). */
export function opensipsCfgVars(model: GatewayModel, host: HostModel): Record<string, unknown> {
    requireRole(host, "sip-proxy", "renderSipProxy");
    const { spec } = model;
    return {
        sipDomain: spec.sipDomain,
        privateIp: host.privateIp,
        sipListenIp: sipListenIp(host),
        publicIp: sipPublicIp(model),
        ports: { sip: PORTS.sip, sipTls: PORTS.sipTls, wss: PORTS.wss, ws: PORTS.ws, bin: PORTS.bin, http: PORTS.opensipsHttp },
        plainWs: spec.devAllowPlainWs,
        socketTag: SIP_SOCKET_TAG,
        cluster: clusterVars(model, host),
        dbUrls: dbUrls(model),
        rtpengineSock: rtpengineSock(model),
        flagsTowardBrowser: RTPENGINE_FLAGS_TOWARD_BROWSER,
        flagsTowardSip: RTPENGINE_FLAGS_TOWARD_SIP,
        hasTrunks: spec.sipTrunks.length > 0,
        trunkSet: TRUNK_DISPATCHER_SET,
        trunkGroup: TRUNK_ADDRESS_GROUP,
        fifo: OPENSIPS_FIFO,
        tls: {
            cert: `${OPENSIPS_TLS_DIR}/server.pem`,
            key: `${OPENSIPS_TLS_DIR}/server.key`,
            ca: `${OPENSIPS_TLS_DIR}/ca.pem`,
            systemCa: SYSTEM_CA_BUNDLE,
        },
    };
}

function pem(what: string, value: string): string {
    if (!/-----BEGIN [A-Z ]+-----/.test(value)) throw new Error(`TLS ${what} is not PEM`);
    return value.endsWith("\n") ? value : `${value}\n`;
}

export function renderSipProxy(model: GatewayModel, host: HostModel): RenderedFile[] {
    const header = headerFor(model, host);
    const { spec, secrets } = model;
    const files: RenderedFile[] = [
        {
            path: OPENSIPS_CFG,
            content: renderTemplate("opensips/opensips.cfg", opensipsCfgVars(model, host), header),
            mode: "0640",
            owner: "root",
            group: "opensips",
            service: "opensips",
            // the db_url carries the database password
            secret: true,
        },
        {
            path: OPENSIPS_DEFAULTS,
            content: renderTemplate(
                "opensips/default-opensips",
                { sharedMemoryMb: spec.opensipsSharedMemoryMb, privateMemoryMb: spec.opensipsPrivateMemoryMb },
                header,
            ),
            mode: "0644",
            owner: "root",
            group: "root",
            service: "opensips",
            secret: false,
        },
        {
            path: OPENSIPS_UNIT_DROPIN,
            content: renderTemplate("opensips/opensips.service.d-ifbus.conf", { wssPort: PORTS.wss }, header),
            mode: "0644",
            owner: "root",
            group: "root",
            service: "opensips",
            secret: false,
        },
        // PEM readers skip text outside BEGIN/END, but keep key material byte-exact anyway: no header line.
        { path: `${OPENSIPS_TLS_DIR}/server.pem`, content: pem("certificate", secrets.tls.certificatePem), mode: "0644", owner: "root", group: "opensips", service: "opensips", secret: false },
        { path: `${OPENSIPS_TLS_DIR}/ca.pem`, content: pem("CA certificate", secrets.tls.caPem), mode: "0644", owner: "root", group: "opensips", service: "opensips", secret: false },
        { path: `${OPENSIPS_TLS_DIR}/server.key`, content: pem("private key", secrets.tls.privateKeyPem), mode: "0640", owner: "root", group: "opensips", service: "opensips", secret: true },
    ];
    if (model.vip) files.push(...renderKeepalived(model, host));
    return files;
}
