// Small helpers shared by the role renderers (not OpenSIPS-specific). Pure.
import type { GatewayModel, HostModel } from "../model";
import { hostsOf } from "../model";
import type { Role } from "../ports";
import type { HeaderInfo } from "./engine";
import { RenderError } from "./engine";

export function headerFor(model: GatewayModel, host: HostModel): HeaderInfo {
    return { stack: model.stack, role: host.role, host: host.name };
}

export function requireRole(host: HostModel, role: Role, renderer: string): void {
    if (host.role !== role) throw new Error(`${renderer} renders ${role} hosts, got ${host.name} (${host.role})`);
}

/**
 * Secrets are written into ini, redis, cnf, SQL and shell files: refuse
 * characters that would need quoting in any of them (quotes, whitespace, '#',
 * ';', '@' which rtpengine's PW@IP form splits on, backslash). The stack
 * generates alphanumeric passwords, so this only trips on hand-set values.
 */
const SAFE_SECRET = /^[A-Za-z0-9._~+/=-]+$/;
export function safeSecret(template: string, name: string, value: string): string {
    if (!SAFE_SECRET.test(value))
        throw new RenderError(template, `secret "${name}" holds characters that need quoting in config files; use letters, digits and . _ ~ + / = - only`);
    return value;
}

/** The single cache host (Redis); every stack has exactly one. */
export function cacheHost(model: GatewayModel): HostModel {
    const caches = hostsOf(model, "cache");
    if (caches.length !== 1) throw new Error(`expected exactly one cache host in stack ${model.stack}, got ${caches.length}`);
    return caches[0];
}

/** Private addresses of every host of a role, in host order. */
export function privateIpsOf(model: GatewayModel, role: Role): string[] {
    return hostsOf(model, role).map((h) => h.privateIp);
}

export function requirePublicIp(host: HostModel): string {
    if (!host.publicIp) throw new Error(`host ${host.name} (${host.role}) has no public address in the model`);
    return host.publicIp;
}
