// Just enough SIP for the lab's test endpoint (RFC 3261 over UDP): parse and
// build messages, MD5 digest answers (RFC 2617), and the SDP of a plain RTP
// phone. Kept apart from the endpoint's call logic so both stay readable.
import * as crypto from "crypto";

export interface SipMessage {
    readonly startLine: string;
    readonly method?: string;
    readonly ruri?: string;
    readonly status?: number;
    readonly reason?: string;
    readonly headers: readonly (readonly [string, string])[];
    readonly body: string;
}

export function parseSip(text: string): SipMessage | undefined {
    const sep = text.indexOf("\r\n\r\n");
    const head = sep < 0 ? text : text.slice(0, sep);
    const body = sep < 0 ? "" : text.slice(sep + 4);
    const lines = head.split("\r\n");
    const headers: [string, string][] = [];
    for (const l of lines.slice(1)) {
        if (/^[ \t]/.test(l) && headers.length) headers[headers.length - 1][1] += ` ${l.trim()}`;
        else {
            const c = l.indexOf(":");
            if (c > 0) headers.push([l.slice(0, c).trim(), l.slice(c + 1).trim()]);
        }
    }
    const resp = /^SIP\/2\.0 (\d{3}) ?(.*)$/.exec(lines[0]);
    if (resp) return { startLine: lines[0], status: Number(resp[1]), reason: resp[2], headers, body };
    const req = /^([A-Z]+) (\S+) SIP\/2\.0$/.exec(lines[0]);
    return req ? { startLine: lines[0], method: req[1], ruri: req[2], headers, body } : undefined;
}

const COMPACT: Record<string, string> = { v: "via", f: "from", t: "to", i: "call-id", m: "contact", l: "content-length", c: "content-type" };
const norm = (n: string) => COMPACT[n.toLowerCase()] ?? n.toLowerCase();

export function hdrs(m: SipMessage, name: string): string[] {
    return m.headers.filter(([n]) => norm(n) === norm(name)).map(([, v]) => v);
}

export function hdr(m: SipMessage, name: string): string | undefined {
    return hdrs(m, name)[0];
}

/** Header values that may hold several comma-separated name-addrs (Record-Route). */
export function nameAddrs(m: SipMessage, name: string): string[] {
    return hdrs(m, name).flatMap((v) => v.split(/,(?=\s*<)/)).map((v) => v.trim());
}

export function tagOf(v: string | undefined): string | undefined {
    return v ? /;tag=([^;>\s]+)/.exec(v)?.[1] : undefined;
}

/** The URI inside `<...>`, or a bare addr-spec without header parameters. */
export function uriOf(v: string): string {
    const m = /<([^>]+)>/.exec(v);
    return m ? m[1] : v.split(";")[0].trim();
}

/** The user part of a SIP URI or name-addr. */
export function userOf(v: string): string {
    return /^sips?:([^@;>]+)@/.exec(uriOf(v))?.[1] ?? "";
}

export function serialize(startLine: string, headers: readonly (readonly [string, string])[], body = ""): string {
    const lines = [startLine, ...headers.filter(([n]) => n.toLowerCase() !== "content-length").map(([n, v]) => `${n}: ${v}`)];
    lines.push(`Content-Length: ${Buffer.byteLength(body)}`);
    return `${lines.join("\r\n")}\r\n\r\n${body}`;
}

export const randomToken = (bytes = 8) => crypto.randomBytes(bytes).toString("hex");

/** Authorization / Proxy-Authorization value answering a Digest challenge (MD5, qop=auth when offered). */
export function digestAnswer(challenge: string, user: string, password: string, method: string, uri: string): string {
    const p: Record<string, string> = {};
    for (const m of challenge.replace(/^Digest\s+/i, "").matchAll(/(\w+)=("([^"]*)"|[^,\s]+)/g)) p[m[1].toLowerCase()] = m[3] ?? m[2];
    const md5 = (s: string) => crypto.createHash("md5").update(s).digest("hex");
    const ha1 = md5(`${user}:${p.realm}:${password}`);
    const ha2 = md5(`${method}:${uri}`);
    const qop = p.qop?.split(",").map((q) => q.trim()).includes("auth") ? "auth" : undefined;
    const cnonce = randomToken(8);
    const nc = "00000001";
    const response = qop ? md5(`${ha1}:${p.nonce}:${nc}:${cnonce}:${qop}:${ha2}`) : md5(`${ha1}:${p.nonce}:${ha2}`);
    const parts = [`username="${user}"`, `realm="${p.realm}"`, `nonce="${p.nonce}"`, `uri="${uri}"`, `response="${response}"`, "algorithm=MD5"];
    if (p.opaque) parts.push(`opaque="${p.opaque}"`);
    if (qop) parts.push(`qop=${qop}`, `nc=${nc}`, `cnonce="${cnonce}"`);
    return `Digest ${parts.join(", ")}`;
}

const RTPMAP: Record<number, string> = { 0: "PCMU/8000", 8: "PCMA/8000" };

/** A phone's plain RTP offer: G.711 and DTMF events. */
export function plainOffer(ip: string, port: number): string {
    return sdp(ip, port, [0, 8, 101], { 101: "telephone-event/8000" });
}

/**
 * The answer of an echo: one audio codec from the offer (G.711 first, else
 * the offer's first) plus telephone-event if offered. Since the echo sends
 * back what it gets, any codec the offer names works.
 */
export function echoAnswer(offer: string, ip: string, port: number): string {
    const m = /^m=audio \d+ \S+ ([\d ]+)/m.exec(offer);
    const offered = (m?.[1] ?? "0").trim().split(/\s+/).map(Number);
    const maps: Record<number, string> = {};
    for (const r of offer.matchAll(/^a=rtpmap:(\d+) (\S+)/gm)) maps[Number(r[1])] = r[2];
    const isDtmf = (pt: number) => /^telephone-event\//i.test(maps[pt] ?? "");
    const audio = offered.find((pt) => pt === 0 || pt === 8) ?? offered.find((pt) => !isDtmf(pt)) ?? 0;
    const dtmf = offered.find((pt) => isDtmf(pt) && /\/8000$/.test(maps[pt]));
    const pts = dtmf !== undefined ? [audio, dtmf] : [audio];
    const names: Record<number, string> = {};
    for (const pt of pts) names[pt] = maps[pt] ?? RTPMAP[pt] ?? "PCMU/8000";
    return sdp(ip, port, pts, names);
}

function sdp(ip: string, port: number, pts: readonly number[], names: Record<number, string>): string {
    const id = Date.now();
    return [
        "v=0",
        `o=ifbus-lab ${id} ${id} IN IP4 ${ip}`,
        "s=IF.bus lab endpoint",
        `c=IN IP4 ${ip}`,
        "t=0 0",
        `m=audio ${port} RTP/AVP ${pts.join(" ")}`,
        ...pts.map((pt) => `a=rtpmap:${pt} ${names[pt] ?? RTPMAP[pt]}`),
        "a=sendrecv",
        "",
    ].join("\r\n");
}
