// Media relay (RTPEngine 10.5 from Debian 12): rtpengine.conf and the
// environment file of Debian's rtpengine-daemon unit. Pure.
import type { GatewayModel, HostModel } from "../model";
import { PORTS, maxCallsPerRelay } from "../ports";
import { renderTemplate } from "./engine";
import type { RenderedFile } from "./types";
import { cacheHost, headerFor, requirePublicIp, requireRole, safeSecret } from "./common";

export const RTPENGINE_CONF_PATH = "/etc/rtpengine/rtpengine.conf";
export const RTPENGINE_DEFAULTS_PATH = "/etc/default/rtpengine-daemon";
export const RTPENGINE_SERVICE = "rtpengine-daemon";

/**
 * Redis database of a relay: each relay keeps its own calls in its own
 * database (1, 2, ...), so a restarted relay restores only its calls; db 0
 * is left to OpenSIPS. A relay cannot take over another's calls anyway: the
 * media address is the other relay's Elastic IP.
 */
export function rtpengineRedisDb(relay: HostModel): number {
    return relay.index + 1;
}

export function renderMediaRelay(model: GatewayModel, host: HostModel): RenderedFile[] {
    requireRole(host, "media-relay", "renderMediaRelay");
    const header = headerFor(model, host);
    const spec = model.spec;
    const kernel = spec.rtpengineForwarding === "kernel";
    const cache = cacheHost(model);

    const conf = renderTemplate(
        "rtpengine/rtpengine.conf",
        {
            privateIp: host.privateIp,
            publicIp: requirePublicIp(host),
            ngPort: PORTS.rtpengineNg,
            cliPort: PORTS.rtpengineCli,
            httpPort: PORTS.rtpengineHttp,
            portMin: spec.rtpPorts.min,
            portMax: spec.rtpPorts.max,
            maxSessions: maxCallsPerRelay(spec.rtpPorts),
            table: kernel ? 0 : -1,
            kernel,
            redisIp: cache.privateIp,
            redisPort: PORTS.redis,
            redisDb: rtpengineRedisDb(host),
        },
        header,
    );
    const defaults = renderTemplate(
        "rtpengine/rtpengine-daemon.default",
        {
            manageIptables: kernel ? "yes" : "no",
            redisPassword: safeSecret("rtpengine/rtpengine-daemon.default", "redisPassword", model.secrets.redisPassword),
        },
        header,
    );
    return [
        // the unit drops to User=rtpengine, which only needs to read the conf; it holds no secret
        { path: RTPENGINE_CONF_PATH, content: conf, mode: "0644", owner: "root", group: "root", service: RTPENGINE_SERVICE, secret: false },
        // read by systemd (PID 1) and the root ExecStartPre helper only
        { path: RTPENGINE_DEFAULTS_PATH, content: defaults, mode: "0600", owner: "root", group: "root", service: RTPENGINE_SERVICE, secret: true },
    ];
}
