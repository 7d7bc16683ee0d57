// keepalived for the two SIP proxies behind the floating Elastic IP (called by
// the proxy renderer when the stack has a VIP): keepalived.conf, the health
// and notify scripts, a unit drop-in and the non-local bind sysctl. Pure.
import type { GatewayModel, HostModel } from "../model";
import { hostsOf } from "../model";
import { renderTemplate } from "./engine";
import type { RenderedFile } from "./types";
import { headerFor, requireRole } from "./common";
// opensips.ts imports this module too; the constants are read at call time, after both loaded
import { OPENSIPS_SHARING_TAG_REF } from "./opensips";

export const KEEPALIVED_CONF_PATH = "/etc/keepalived/keepalived.conf";
export const KEEPALIVED_DROPIN_PATH = "/etc/systemd/system/keepalived.service.d/ifbus.conf";
export const OPENSIPS_HEALTH_SCRIPT = "/usr/local/sbin/ifbus-opensips-health";
export const VIP_NOTIFY_SCRIPT = "/usr/local/sbin/ifbus-vip-notify";
export const NONLOCAL_BIND_SYSCTL_PATH = "/etc/sysctl.d/60-ifbus-vip.conf";
export const KEEPALIVED_SERVICE = "keepalived";

/**
 * The proxies' network interface: Debian 12 AMIs on Nitro (ENA) instances
 * name the primary interface ens5 (predictable PCI naming); lab hosts must
 * name theirs the same.
 */
export const PROXY_INTERFACE = "ens5";
/** priority of proxy-1 / proxy-2: proxy-1 wins the first election */
export const VRRP_PRIORITIES: readonly [number, number] = [150, 100];
/** associate-address tries before the notify script gives up (pauses 1, 2, 3, 4 s between) */
export const ASSOCIATE_ATTEMPTS = 5;
/** seconds OpenSIPS has to answer the MI health check */
export const HEALTH_TIMEOUT_SECONDS = 3;

/** A VRID per stack (1..255, FNV-1a of the stack name): stacks sharing a VPC keep apart even if adverts stray. */
export function virtualRouterId(stack: string): number {
    let h = 0x811c9dc5;
    for (const c of Buffer.from(stack, "utf8")) h = Math.imul(h ^ c, 0x01000193) >>> 0;
    return (h % 255) + 1;
}

export function renderKeepalived(model: GatewayModel, host: HostModel): RenderedFile[] {
    requireRole(host, "sip-proxy", "renderKeepalived");
    if (!model.vip) throw new Error(`renderKeepalived: stack ${model.stack} has no VIP`);
    const proxies = hostsOf(model, "sip-proxy");
    if (proxies.length !== 2) throw new Error(`renderKeepalived: a VIP needs exactly 2 proxies, stack ${model.stack} has ${proxies.length}`);
    const peer = proxies.find((p) => p.name !== host.name)!;
    if (!host.vipPrivateIp) throw new Error(`renderKeepalived: proxy ${host.name} has no VIP private address in the model`);
    const header = headerFor(model, host);

    const conf = renderTemplate(
        "keepalived/keepalived.conf",
        {
            hostName: host.name,
            interface: PROXY_INTERFACE,
            virtualRouterId: virtualRouterId(model.stack),
            priority: VRRP_PRIORITIES[host.index],
            privateIp: host.privateIp,
            peerIp: peer.privateIp,
            vipPrivateIp: host.vipPrivateIp,
            vipPrivateIps: proxies.map((p) => {
                if (!p.vipPrivateIp) throw new Error(`renderKeepalived: proxy ${p.name} has no VIP private address in the model`);
                return p.vipPrivateIp;
            }),
            healthScript: OPENSIPS_HEALTH_SCRIPT,
            notifyScript: VIP_NOTIFY_SCRIPT,
        },
        header,
    );
    const notify = renderTemplate(
        "keepalived/ifbus-vip-notify",
        {
            attempts: ASSOCIATE_ATTEMPTS,
            region: model.region,
            allocationId: model.vip.allocationId,
            vipPrivateIp: host.vipPrivateIp,
            sharingTag: OPENSIPS_SHARING_TAG_REF,
        },
        header,
    );
    const health = renderTemplate("keepalived/ifbus-opensips-health", { timeoutSeconds: HEALTH_TIMEOUT_SECONDS }, header);
    const dropin = renderTemplate("keepalived/keepalived.service.d-ifbus.conf", {}, header);
    const sysctl = renderTemplate("keepalived/sysctl-ifbus-vip.conf", { vipPrivateIp: host.vipPrivateIp }, header);
    const file = (path: string, content: string, mode: string, service: string): RenderedFile => ({ path, content, mode, owner: "root", group: "root", service, secret: false });
    return [
        file(KEEPALIVED_CONF_PATH, conf, "0644", KEEPALIVED_SERVICE),
        // enable_script_security: root-owned and writable by root only
        file(VIP_NOTIFY_SCRIPT, notify, "0755", KEEPALIVED_SERVICE),
        file(OPENSIPS_HEALTH_SCRIPT, health, "0755", KEEPALIVED_SERVICE),
        file(KEEPALIVED_DROPIN_PATH, dropin, "0644", KEEPALIVED_SERVICE),
        // systemd-sysctl re-reads /etc/sysctl.d when restarted
        file(NONLOCAL_BIND_SYSCTL_PATH, sysctl, "0644", "systemd-sysctl"),
    ];
}
