// The fixed private IP plan: every host's address is known from the spec
// alone, before any instance exists, so peers can be rendered up front and a
// disaster-recovery rebuild reproduces the same addresses. Pure.
import type { Role } from "./ports";

export interface Cidr {
    /** network address as an unsigned 32-bit integer */
    readonly base: number;
    readonly prefix: number;
}

export function ipToInt(ip: string): number {
    const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(ip);
    if (!m) throw new Error(`"${ip}" is not an IPv4 address`);
    const octets = m.slice(1).map(Number);
    if (octets.some((o) => o > 255)) throw new Error(`"${ip}" has an octet above 255`);
    return ((octets[0] << 24) | (octets[1] << 16) | (octets[2] << 8) | octets[3]) >>> 0;
}

export function intToIp(n: number): string {
    return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join(".");
}

function mask(prefix: number): number {
    return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

export function parseCidr(s: string): Cidr {
    const m = /^([^/]+)\/(\d{1,2})$/.exec(s);
    if (!m) throw new Error(`"${s}" is not in address/prefix form`);
    const prefix = Number(m[2]);
    if (prefix > 32) throw new Error(`prefix /${prefix} is above 32`);
    const addr = ipToInt(m[1]);
    if ((addr & mask(prefix)) >>> 0 !== addr) throw new Error(`"${s}" has host bits set; the network is ${intToIp((addr & mask(prefix)) >>> 0)}/${prefix}`);
    return { base: addr, prefix };
}

export function formatCidr(c: Cidr): string {
    return `${intToIp(c.base)}/${c.prefix}`;
}

export function cidrSize(c: Cidr): number {
    return 2 ** (32 - c.prefix);
}

/** true when `outer` contains all of `inner` */
export function cidrContains(outer: string, inner: string): boolean {
    const o = parseCidr(outer);
    const i = parseCidr(inner);
    return o.prefix <= i.prefix && ((i.base & mask(o.prefix)) >>> 0) === o.base;
}

export function cidrsOverlap(a: string, b: string): boolean {
    return cidrContains(a, b) || cidrContains(b, a);
}

/** The n-th subnet of length `prefix` inside `vpc` (like Terraform's cidrsubnet). */
export function nthSubnet(vpc: string, prefix: number, n: number): string {
    const v = parseCidr(vpc);
    if (prefix <= v.prefix) throw new Error(`subnet /${prefix} is not inside ${vpc}`);
    const count = 2 ** (prefix - v.prefix);
    if (n < 0 || n >= count) throw new Error(`${vpc} holds ${count} /${prefix} subnets; index ${n} is out of range`);
    return formatCidr({ base: (v.base + n * 2 ** (32 - prefix)) >>> 0, prefix });
}

/**
 * Offset of a role's first host inside its subnet. AWS reserves the first
 * four addresses and the last one of every subnet; each role gets a block of
 * ten, so a /26 (64 addresses) is the smallest subnet that holds the plan.
 */
export const ROLE_OFFSET: Record<Role, number> = {
    "sip-proxy": 10,
    "media-relay": 20,
    database: 30,
    cache: 40,
    turn: 50,
};
export const MAX_HOSTS_PER_ROLE = 9;

/** Which availability zone (subnet index) the i-th host of a role lives in: round robin. */
export function subnetIndexFor(hostIndex: number, zoneCount: number): number {
    return hostIndex % zoneCount;
}

/** The fixed private address of the i-th host of a role, in its subnet. */
export function hostPrivateIp(subnetCidr: string, role: Role, hostIndex: number): string {
    if (hostIndex < 0 || hostIndex >= MAX_HOSTS_PER_ROLE) throw new Error(`host index ${hostIndex} of ${role} is outside 0..${MAX_HOSTS_PER_ROLE - 1}`);
    const s = parseCidr(subnetCidr);
    const offset = ROLE_OFFSET[role] + hostIndex;
    if (offset >= cidrSize(s) - 1) throw new Error(`subnet ${subnetCidr} is too small for ${role} #${hostIndex + 1} (offset ${offset})`);
    return intToIp((s.base + offset) >>> 0);
}

/**
 * Offset of the proxies' secondary private addresses that carry the floating
 * VIP Elastic IP (proxy i gets offset 60 + i). A private address holds one EIP
 * only (AssociateAddress moves away an EIP already there), and each proxy keeps
 * its own admin EIP on its primary address, so the VIP needs a second one.
 */
export const VIP_SECONDARY_OFFSET = 60;

/** The secondary private address of the i-th proxy, where the VIP EIP lands when that proxy is master. */
export function proxyVipPrivateIp(subnetCidr: string, proxyIndex: number): string {
    if (proxyIndex < 0 || proxyIndex > 1) throw new Error(`proxy index ${proxyIndex} is outside 0..1 (at most two proxies share a VIP)`);
    const s = parseCidr(subnetCidr);
    const offset = VIP_SECONDARY_OFFSET + proxyIndex;
    if (offset >= cidrSize(s) - 1) throw new Error(`subnet ${subnetCidr} is too small for the VIP address of proxy #${proxyIndex + 1} (offset ${offset})`);
    return intToIp((s.base + offset) >>> 0);
}
