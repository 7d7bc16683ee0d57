// A tiny client for RTPEngine's ng control protocol: a random cookie, a
// space, then a bencoded dictionary, over UDP; the reply echoes the cookie.
// `replace` must be a list in rtpengine 10.5 (DOMAIN-FACTS 13), so values are
// passed through as given.
//
// A test process cannot enter a network namespace, so ngRequestInNetns() runs
// this file as a script inside the namespace (stdin: JSON request, stdout:
// JSON reply).
import * as crypto from "crypto";
import * as dgram from "dgram";
import * as path from "path";
import type { TestNetns } from "./netns";

export type BValue = string | number | BValue[] | { [k: string]: BValue };

export function bencode(v: BValue): Buffer {
    if (typeof v === "number") {
        if (!Number.isInteger(v)) throw new Error(`bencode: ${v} is not an integer`);
        return Buffer.from(`i${v}e`);
    }
    if (typeof v === "string") {
        const b = Buffer.from(v, "utf8");
        return Buffer.concat([Buffer.from(`${b.length}:`), b]);
    }
    if (Array.isArray(v)) return Buffer.concat([Buffer.from("l"), ...v.map(bencode), Buffer.from("e")]);
    // dictionary keys are sorted as raw strings (BEP 3)
    const keys = Object.keys(v).sort();
    return Buffer.concat([Buffer.from("d"), ...keys.flatMap((k) => [bencode(k), bencode(v[k])]), Buffer.from("e")]);
}

export function bdecode(buf: Buffer): BValue {
    let pos = 0;
    const parse = (): BValue => {
        const c = String.fromCharCode(buf[pos]);
        if (c === "i") {
            const end = buf.indexOf(0x65, pos);
            const n = Number(buf.subarray(pos + 1, end).toString());
            pos = end + 1;
            return n;
        }
        if (c === "l") {
            pos++;
            const out: BValue[] = [];
            while (buf[pos] !== 0x65) out.push(parse());
            pos++;
            return out;
        }
        if (c === "d") {
            pos++;
            const out: { [k: string]: BValue } = {};
            while (buf[pos] !== 0x65) {
                const k = parse();
                if (typeof k !== "string") throw new Error("bdecode: dictionary key is not a string");
                out[k] = parse();
            }
            pos++;
            return out;
        }
        if (c >= "0" && c <= "9") {
            const colon = buf.indexOf(0x3a, pos);
            const len = Number(buf.subarray(pos, colon).toString());
            const s = buf.subarray(colon + 1, colon + 1 + len).toString("utf8");
            pos = colon + 1 + len;
            return s;
        }
        throw new Error(`bdecode: unexpected byte ${JSON.stringify(c)} at ${pos}`);
    };
    const v = parse();
    if (pos !== buf.length) throw new Error(`bdecode: ${buf.length - pos} trailing bytes`);
    return v;
}

export type NgReply = { [k: string]: BValue };

/** Send one ng command; retries (same cookie) on silence, like OpenSIPS' rtpengine_retr. */
export function ngRequest(host: string, port: number, command: { [k: string]: BValue }, timeoutMs = 1000, tries = 3): Promise<NgReply> {
    const cookie = crypto.randomBytes(6).toString("hex");
    const msg = Buffer.concat([Buffer.from(`${cookie} `), bencode(command)]);
    return new Promise((resolve, reject) => {
        const sock = dgram.createSocket(host.includes(":") ? "udp6" : "udp4");
        let attempt = 0;
        let timer: NodeJS.Timeout | undefined;
        const done = (err: Error | undefined, reply?: NgReply) => {
            if (timer) clearTimeout(timer);
            sock.close();
            if (err) reject(err);
            else resolve(reply!);
        };
        const send = () => {
            attempt++;
            sock.send(msg, port, host, (err) => err && done(err));
            timer = setTimeout(() => (attempt < tries ? send() : done(new Error(`no ng reply from ${host}:${port} after ${tries} tries`))), timeoutMs);
        };
        sock.on("message", (data) => {
            const sp = data.indexOf(0x20);
            if (sp < 0 || data.subarray(0, sp).toString() !== cookie) return;
            try {
                const v = bdecode(data.subarray(sp + 1));
                if (typeof v !== "object" || Array.isArray(v)) throw new Error("ng reply is not a dictionary");
                done(undefined, v);
            } catch (e) {
                done(e as Error);
            }
        });
        sock.on("error", (e) => done(e));
        send();
    });
}

/** ngRequest from inside a test namespace. */
export async function ngRequestInNetns(ns: TestNetns, host: string, port: number, command: { [k: string]: BValue }): Promise<NgReply> {
    const repo = path.resolve(__dirname, "..", "..");
    const r = await ns.run(process.execPath, ["--import", "tsx", __filename, host, String(port)], { input: JSON.stringify(command), cwd: repo, timeoutMs: 20000 });
    if (r.code !== 0) throw new Error(`ng client in ${ns.name} failed: ${r.stderr.trim()}`);
    return JSON.parse(r.stdout) as NgReply;
}

/** A minimal plain-RTP audio offer from `ip`, PCMU only. */
export function plainAudioOffer(ip: string, port: number, sessionId = Date.now()): string {
    return [
        "v=0",
        `o=- ${sessionId} 1 IN IP4 ${ip}`,
        "s=ifbus-test",
        `c=IN IP4 ${ip}`,
        "t=0 0",
        `m=audio ${port} RTP/AVP 0 101`,
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:101 telephone-event/8000",
        "a=sendrecv",
        "",
    ].join("\r\n");
}

async function main(): Promise<void> {
    const [host, port] = process.argv.slice(2);
    const chunks: Buffer[] = [];
    for await (const c of process.stdin) chunks.push(c as Buffer);
    const command = JSON.parse(Buffer.concat(chunks).toString("utf8"));
    const reply = await ngRequest(host, Number(port), command);
    process.stdout.write(JSON.stringify(reply));
}

if (require.main === module) {
    main().catch((e) => {
        process.stderr.write(`${(e as Error).message}\n`);
        process.exit(1);
    });
}
