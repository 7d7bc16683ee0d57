// A minimal STUN/TURN client over UDP (RFC 5389 / RFC 5766): Binding,
// Allocate with long-term credentials (401 challenge, then MESSAGE-INTEGRITY),
// CreatePermission, and Refresh to release. Enough to check a rendered coturn
// config against the real server; runs as a script inside a test namespace
// (stdin: JSON plan, stdout: JSON results), see turnProbeInNetns().
import * as crypto from "crypto";
import * as dgram from "dgram";
import * as path from "path";
import type { TestNetns } from "./netns";

const MAGIC = 0x2112a442;
export const METHOD = { binding: 0x001, allocate: 0x003, refresh: 0x004, createPermission: 0x008 } as const;
export const ATTR = {
    username: 0x0006,
    messageIntegrity: 0x0008,
    errorCode: 0x0009,
    lifetime: 0x000d,
    xorPeerAddress: 0x0012,
    realm: 0x0014,
    nonce: 0x0015,
    xorRelayedAddress: 0x0016,
    requestedTransport: 0x0019,
    xorMappedAddress: 0x0020,
    software: 0x8022,
    fingerprint: 0x8028,
} as const;

export interface StunAttr {
    readonly type: number;
    readonly value: Buffer;
}

export interface StunMessage {
    /** method | class bits, e.g. 0x0101 for a Binding success */
    readonly type: number;
    readonly tid: Buffer;
    readonly attrs: StunAttr[];
    /** the raw bytes, for integrity checks */
    readonly raw: Buffer;
}

const CRC_TABLE = (() => {
    const t = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
        let c = n;
        for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
        t[n] = c >>> 0;
    }
    return t;
})();
function crc32(buf: Buffer): number {
    let c = 0xffffffff;
    for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
}

function pad4(n: number): number {
    return (n + 3) & ~3;
}

function attrBytes(a: StunAttr): Buffer {
    const b = Buffer.alloc(4 + pad4(a.value.length));
    b.writeUInt16BE(a.type, 0);
    b.writeUInt16BE(a.value.length, 2);
    a.value.copy(b, 4);
    return b;
}

/** Encode; with `key`, append MESSAGE-INTEGRITY (HMAC-SHA1 over the message with the length already counting it). */
export function encode(type: number, tid: Buffer, attrs: StunAttr[], key?: Buffer): Buffer {
    let body = Buffer.concat(attrs.map(attrBytes));
    const header = (len: number) => {
        const h = Buffer.alloc(20);
        h.writeUInt16BE(type, 0);
        h.writeUInt16BE(len, 2);
        h.writeUInt32BE(MAGIC, 4);
        tid.copy(h, 8);
        return h;
    };
    if (key) {
        const mac = crypto.createHmac("sha1", key).update(Buffer.concat([header(body.length + 24), body])).digest();
        body = Buffer.concat([body, attrBytes({ type: ATTR.messageIntegrity, value: mac })]);
    }
    return Buffer.concat([header(body.length), body]);
}

export function decode(raw: Buffer): StunMessage {
    if (raw.length < 20 || raw.readUInt32BE(4) !== MAGIC) throw new Error("not a STUN message");
    const len = raw.readUInt16BE(2);
    const attrs: StunAttr[] = [];
    let pos = 20;
    while (pos < 20 + len) {
        const type = raw.readUInt16BE(pos);
        const l = raw.readUInt16BE(pos + 2);
        attrs.push({ type, value: raw.subarray(pos + 4, pos + 4 + l) });
        pos += 4 + pad4(l);
    }
    return { type: raw.readUInt16BE(0), tid: raw.subarray(8, 20), attrs, raw };
}

export function attr(m: StunMessage, type: number): Buffer | undefined {
    return m.attrs.find((a) => a.type === type)?.value;
}

export function errorCode(m: StunMessage): number | undefined {
    const v = attr(m, ATTR.errorCode);
    return v ? (v[2] & 7) * 100 + v[3] : undefined;
}

export function xorAddress(v: Buffer, tid: Buffer): { ip: string; port: number } {
    const family = v[1];
    const port = v.readUInt16BE(2) ^ (MAGIC >>> 16);
    if (family === 1) {
        const ip = (v.readUInt32BE(4) ^ MAGIC) >>> 0;
        return { ip: [ip >>> 24, (ip >>> 16) & 255, (ip >>> 8) & 255, ip & 255].join("."), port };
    }
    const mask = Buffer.concat([Buffer.from([0x21, 0x12, 0xa4, 0x42]), tid]);
    const b = Buffer.alloc(16);
    for (let i = 0; i < 16; i++) b[i] = v[4 + i] ^ mask[i];
    return { ip: (b.toString("hex").match(/.{4}/g) ?? []).join(":"), port };
}

export function xorPeer(ip: string, port: number): Buffer {
    const b = Buffer.alloc(8);
    b[1] = 1;
    b.writeUInt16BE(port ^ (MAGIC >>> 16), 2);
    const n = ip.split(".").reduce((a, o) => ((a << 8) | Number(o)) >>> 0, 0);
    b.writeUInt32BE((n ^ MAGIC) >>> 0, 4);
    return b;
}

/** Does the message carry a valid FINGERPRINT (CRC-32 xor 0x5354554e over everything before it)? */
export function fingerprintValid(m: StunMessage): boolean {
    const idx = m.raw.length - 8;
    if (idx < 20 || m.raw.readUInt16BE(idx) !== ATTR.fingerprint) return false;
    return ((crc32(m.raw.subarray(0, idx)) ^ 0x5354554e) >>> 0) === m.raw.readUInt32BE(idx + 4);
}

/** Is the response's MESSAGE-INTEGRITY right for `key`? (FINGERPRINT, if any, follows it and is excluded.) */
export function integrityValid(m: StunMessage, key: Buffer): boolean {
    let pos = 20;
    while (pos < m.raw.length) {
        const type = m.raw.readUInt16BE(pos);
        const l = m.raw.readUInt16BE(pos + 2);
        if (type === ATTR.messageIntegrity) {
            const copy = Buffer.from(m.raw.subarray(0, pos));
            copy.writeUInt16BE(pos - 20 + 24, 2);
            const mac = crypto.createHmac("sha1", key).update(copy).digest();
            return mac.equals(m.raw.subarray(pos + 4, pos + 24));
        }
        pos += 4 + pad4(l);
    }
    return false;
}

/** TURN REST API credentials (coturn README.turnserver): "<expiry>:<user>", base64(HMAC-SHA1(secret, username)). */
export function restCredentials(secret: string, user: string, ttlSeconds = 3600, now = Date.now()): { username: string; password: string } {
    const username = `${Math.floor(now / 1000) + ttlSeconds}:${user}`;
    return { username, password: crypto.createHmac("sha1", secret).update(username).digest("base64") };
}

/** Long-term credential key: MD5(username ":" realm ":" password) (RFC 5389 15.4). */
export function longTermKey(username: string, realm: string, password: string): Buffer {
    return crypto.createHash("md5").update(`${username}:${realm}:${password}`).digest();
}

export class StunClient {
    private readonly sock: dgram.Socket;
    private readonly pending = new Map<string, (m: StunMessage) => void>();

    private readonly ready: Promise<void>;

    constructor(
        private readonly host: string,
        private readonly port: number,
        bindAddress?: string,
    ) {
        this.sock = dgram.createSocket("udp4");
        this.ready = new Promise((resolve) => this.sock.bind({ address: bindAddress, port: 0 }, () => resolve()));
        this.sock.on("message", (data) => {
            try {
                const m = decode(data);
                this.pending.get(m.tid.toString("hex"))?.(m);
            } catch {
                /* not STUN: ignore */
            }
        });
    }

    /** Send a request; retransmit on silence (RFC 5389 7.2.1, shortened). */
    async request(type: number, attrs: StunAttr[], key?: Buffer, timeoutMs = 500, tries = 4): Promise<StunMessage> {
        await this.ready;
        const tid = crypto.randomBytes(12);
        const msg = encode(type, tid, attrs, key);
        return new Promise((resolve, reject) => {
            let n = 0;
            let timer: NodeJS.Timeout;
            const send = () => {
                n++;
                this.sock.send(msg, this.port, this.host);
                timer = setTimeout(() => (n < tries ? send() : (this.pending.delete(tid.toString("hex")), reject(new Error(`no STUN answer from ${this.host}:${this.port}`)))), timeoutMs);
            };
            this.pending.set(tid.toString("hex"), (m) => {
                clearTimeout(timer);
                this.pending.delete(tid.toString("hex"));
                resolve(m);
            });
            send();
        });
    }

    close(): void {
        this.sock.close();
    }
}

export interface TurnProbePlan {
    readonly server: string;
    readonly port: number;
    /** local address to send from (the "client"), default: chosen by the kernel */
    readonly bind?: string;
    readonly username: string;
    readonly password: string;
    /** a password that must be refused */
    readonly wrongPassword: string;
    /** peers to ask a permission for */
    readonly peers: readonly string[];
}

export interface TurnProbeResult {
    readonly binding: { type: number; mapped?: { ip: string; port: number }; fingerprint: boolean };
    readonly challenge: { type: number; code?: number; realm?: string; hasNonce: boolean };
    readonly wrongPassword: { type: number; code?: number };
    readonly allocate: { type: number; code?: number; relayed?: { ip: string; port: number }; lifetime?: number; integrity: boolean };
    readonly permissions: { peer: string; type: number; code?: number }[];
    readonly release?: { type: number };
}

const S = (b?: Buffer) => b?.toString("utf8");

export async function turnProbe(plan: TurnProbePlan): Promise<TurnProbeResult> {
    const c = new StunClient(plan.server, plan.port, plan.bind);
    try {
        const b = await c.request(METHOD.binding, []);
        const mapped = attr(b, ATTR.xorMappedAddress);
        const binding = { type: b.type, mapped: mapped ? xorAddress(mapped, b.tid) : undefined, fingerprint: fingerprintValid(b) };

        const transport: StunAttr = { type: ATTR.requestedTransport, value: Buffer.from([17, 0, 0, 0]) };
        const ch = await c.request(METHOD.allocate, [transport]);
        const realm = S(attr(ch, ATTR.realm));
        const nonce = attr(ch, ATTR.nonce);
        const challenge = { type: ch.type, code: errorCode(ch), realm, hasNonce: !!nonce };
        if (!realm || !nonce) return { binding, challenge, wrongPassword: { type: 0 }, allocate: { type: 0, integrity: false }, permissions: [] };

        const creds = (password: string) => ({
            attrs: (extra: StunAttr[]) => [
                ...extra,
                { type: ATTR.username, value: Buffer.from(plan.username) },
                { type: ATTR.realm, value: Buffer.from(realm) },
                { type: ATTR.nonce, value: nonce },
            ],
            key: longTermKey(plan.username, realm, password),
        });
        const bad = creds(plan.wrongPassword);
        const w = await c.request(METHOD.allocate, bad.attrs([transport]), bad.key);
        const wrongPassword = { type: w.type, code: errorCode(w) };

        const good = creds(plan.password);
        const a = await c.request(METHOD.allocate, good.attrs([transport]), good.key);
        const relayed = attr(a, ATTR.xorRelayedAddress);
        const lifetime = attr(a, ATTR.lifetime);
        const allocate = {
            type: a.type,
            code: errorCode(a),
            relayed: relayed ? xorAddress(relayed, a.tid) : undefined,
            lifetime: lifetime?.readUInt32BE(0),
            integrity: integrityValid(a, good.key),
        };
        const permissions: { peer: string; type: number; code?: number }[] = [];
        if (relayed) {
            for (const peer of plan.peers) {
                const p = await c.request(METHOD.createPermission, good.attrs([{ type: ATTR.xorPeerAddress, value: xorPeer(peer, 9) }]), good.key);
                permissions.push({ peer, type: p.type, code: errorCode(p) });
            }
            const r = await c.request(METHOD.refresh, good.attrs([{ type: ATTR.lifetime, value: Buffer.from([0, 0, 0, 0]) }]), good.key);
            return { binding, challenge, wrongPassword, allocate, permissions, release: { type: r.type } };
        }
        return { binding, challenge, wrongPassword, allocate, permissions };
    } finally {
        c.close();
    }
}

/** Run turnProbe inside a test namespace. */
export async function turnProbeInNetns(ns: TestNetns, plan: TurnProbePlan): Promise<TurnProbeResult> {
    const repo = path.resolve(__dirname, "..", "..");
    const r = await ns.run(process.execPath, ["--import", "tsx", __filename], { input: JSON.stringify(plan), cwd: repo, timeoutMs: 30000 });
    if (r.code !== 0) throw new Error(`TURN probe in ${ns.name} failed: ${r.stderr.trim()}`);
    return JSON.parse(r.stdout) as TurnProbeResult;
}

async function main(): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of process.stdin) chunks.push(c as Buffer);
    const plan = JSON.parse(Buffer.concat(chunks).toString("utf8")) as TurnProbePlan;
    process.stdout.write(JSON.stringify(await turnProbe(plan)));
}

if (require.main === module) {
    main().catch((e) => {
        process.stderr.write(`${(e as Error).message}\n`);
        process.exit(1);
    });
}
