// A tiny SIP user agent for the proxy tests: UDP and secure WebSocket
// transports (RFC 7118), MD5 digest (RFC 2617/3261), INVITE/ACK/BYE dialogs,
// and a few SDP builders (a browser-like WebRTC offer/answer, plain RTP).
//
// A test process cannot enter a network namespace, so runInNetns() runs this
// file as a script inside one (stdin: JSON scenario, stdout: JSON result),
// like test/support/ng.ts.
import * as crypto from "crypto";
import * as dgram from "dgram";
import * as fs from "fs";
import * as net from "net";
import * as path from "path";
import * as tls from "tls";
import WebSocket from "ws";
import type { TestNetns } from "../support/netns";
import { SipMessage, parseSip as parseSipOrUndefined, hdrs, hdr, tagOf, uriOf, serialize, randomToken as rand, digestAnswer } from "../../softphone/sip";

// ---------------------------------------------------------------- messages
// Parsing, headers, serialization and digest answers are the lab endpoint's (softphone/sip.ts).

export type { SipMessage };
export { hdrs, hdr, digestAnswer };

export function parseSip(text: string): SipMessage {
    const m = parseSipOrUndefined(text);
    if (!m) throw new Error(`not a SIP message: ${JSON.stringify(text.split("\r\n")[0])}`);
    return m;
}

// ---------------------------------------------------------------- transports

abstract class Transport {
    private readonly queue: SipMessage[] = [];
    private waiters: { pred: (m: SipMessage) => boolean; resolve: (m: SipMessage) => void }[] = [];
    /** every message received, for the test's evidence */
    readonly received: SipMessage[] = [];

    abstract readonly viaProto: string;
    abstract readonly sentBy: string;
    abstract readonly contactHostPort: string;
    abstract readonly contactParams: string;
    abstract send(text: string): void;
    abstract close(): void;

    protected deliver(text: string): void {
        let m: SipMessage;
        try {
            m = parseSip(text);
        } catch {
            return;
        }
        this.received.push(m);
        const w = this.waiters.find((x) => x.pred(m));
        if (w) {
            this.waiters = this.waiters.filter((x) => x !== w);
            w.resolve(m);
            return;
        }
        this.queue.push(m);
    }

    /** The next message matching `pred` (already queued or still to come), bounded. */
    next(pred: (m: SipMessage) => boolean, what: string, timeoutMs = 8000): Promise<SipMessage> {
        const i = this.queue.findIndex(pred);
        if (i >= 0) return Promise.resolve(this.queue.splice(i, 1)[0]);
        return new Promise((resolve, reject) => {
            const entry = {
                pred,
                resolve: (m: SipMessage) => {
                    clearTimeout(t);
                    resolve(m);
                },
            };
            const t = setTimeout(() => {
                this.waiters = this.waiters.filter((x) => x !== entry);
                reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; received so far: ${this.received.map((m) => m.startLine).join(" | ")}`));
            }, timeoutMs);
            this.waiters.push(entry);
        });
    }
}

export class UdpTransport extends Transport {
    readonly viaProto = "UDP";
    private constructor(
        private readonly sock: dgram.Socket,
        private readonly localIp: string,
        private readonly localPort: number,
        private readonly proxyIp: string,
        private readonly proxyPort: number,
    ) {
        super();
        sock.on("message", (buf) => this.deliver(buf.toString("utf8")));
    }
    static open(localIp: string, proxyIp: string, proxyPort: number, localPort = 0): Promise<UdpTransport> {
        return new Promise((resolve, reject) => {
            const s = dgram.createSocket("udp4");
            s.once("error", reject);
            s.bind(localPort, localIp, () => resolve(new UdpTransport(s, localIp, s.address().port, proxyIp, proxyPort)));
        });
    }
    get sentBy(): string {
        return `${this.localIp}:${this.localPort}`;
    }
    get contactHostPort(): string {
        return this.sentBy;
    }
    readonly contactParams = "";
    send(text: string): void {
        // an outbound-proxy UA: everything goes to the proxy's private address
        this.sock.send(Buffer.from(text), this.proxyPort, this.proxyIp);
    }
    close(): void {
        this.sock.close();
    }
}

/** SIP over TLS (RFC 3261 18.3: a byte stream framed by Content-Length). */
export class TlsTransport extends Transport {
    readonly viaProto = "TLS";
    readonly contactParams = ";transport=tls";
    private buf = "";
    private constructor(
        private readonly sock: tls.TLSSocket,
        readonly sentBy: string,
    ) {
        super();
        sock.setEncoding("utf8");
        sock.on("data", (d: string) => {
            this.buf += d;
            for (;;) {
                const end = this.buf.indexOf("\r\n\r\n");
                if (end < 0) return;
                const len = Number(/\r\nContent-Length:\s*(\d+)/i.exec(this.buf.slice(0, end + 2))?.[1] ?? 0);
                if (this.buf.length < end + 4 + len) return;
                this.deliver(this.buf.slice(0, end + 4 + len));
                this.buf = this.buf.slice(end + 4 + len);
            }
        });
    }
    get contactHostPort(): string {
        return this.sentBy;
    }
    static open(host: string, port: number, opts: { ca: string; servername: string; localAddress: string }): Promise<TlsTransport> {
        return new Promise((resolve, reject) => {
            // bind the client address first: tls.connect has no localAddress of its own
            const tcp = net.connect({ host, port, localAddress: opts.localAddress });
            tcp.once("error", reject);
            const sock = tls.connect({ socket: tcp, ca: opts.ca, servername: opts.servername }, () => resolve(new TlsTransport(sock, `${tcp.localAddress}:${tcp.localPort}`)));
            sock.once("error", reject);
        });
    }
    send(text: string): void {
        this.sock.write(text);
    }
    close(): void {
        this.sock.end();
    }
}

export class WsTransport extends Transport {
    readonly viaProto = "WSS";
    // RFC 7118: browsers cannot learn their address, so Via and Contact carry a made-up .invalid host
    readonly sentBy = `${rand(4)}.invalid`;
    readonly contactHostPort = this.sentBy;
    readonly contactParams = ";transport=ws";
    private constructor(private readonly ws: WebSocket) {
        super();
        ws.on("message", (data) => this.deliver(data.toString()));
    }
    static open(url: string, opts: { ca: string; servername: string; localAddress: string; origin: string }): Promise<WsTransport> {
        return new Promise((resolve, reject) => {
            // proto_wss refuses a handshake without Origin (require_origin, DOMAIN-FACTS 9)
            // servername: SNI and the name the certificate is checked against (we dial the private IP)
            const options: WebSocket.ClientOptions & { servername: string } = {
                ca: opts.ca,
                servername: opts.servername,
                localAddress: opts.localAddress,
                headers: { Origin: opts.origin },
                handshakeTimeout: 5000,
            };
            const ws = new WebSocket(url, "sip", options);
            ws.once("open", () => resolve(new WsTransport(ws)));
            ws.once("error", reject);
            ws.once("unexpected-response", (_req, res) => reject(new Error(`WebSocket handshake refused: HTTP ${res.statusCode}`)));
        });
    }
    send(text: string): void {
        this.ws.send(text);
    }
    close(): void {
        this.ws.close();
    }
}

// ---------------------------------------------------------------- user agent

export interface Dialog {
    readonly callId: string;
    readonly localTag: string;
    readonly remoteTag: string;
    readonly localUri: string;
    readonly remoteUri: string;
    readonly remoteTarget: string;
    /** Route set, in the order this side puts it into requests */
    readonly routes: readonly string[];
    cseq: number;
}

export interface RequestResult {
    readonly final: SipMessage;
    readonly provisional: readonly SipMessage[];
    /** status of every final response, challenges included, in order */
    readonly statuses: readonly number[];
}

export class UserAgent {
    cseq = 1;
    constructor(
        readonly user: string,
        readonly password: string,
        readonly domain: string,
        readonly t: Transport,
    ) {}

    get aor(): string {
        return `sip:${this.user}@${this.domain}`;
    }
    get contact(): string {
        return `<sip:${this.user}@${this.t.contactHostPort}${this.t.contactParams}>`;
    }
    private via(): [string, string] {
        return ["Via", `SIP/2.0/${this.t.viaProto} ${this.t.sentBy};branch=z9hG4bK${rand(8)};rport`];
    }

    /** Send a request and collect responses up to a final one (1xx skipped, returned as provisional). */
    async transaction(method: string, ruri: string, headers: [string, string][], body = "", timeoutMs = 8000): Promise<{ final: SipMessage; provisional: SipMessage[] }> {
        const callId = headers.find(([n]) => n === "Call-ID")![1];
        const cseq = headers.find(([n]) => n === "CSeq")![1];
        this.t.send(serialize(`${method} ${ruri} SIP/2.0`, headers, body));
        const provisional: SipMessage[] = [];
        for (;;) {
            const r = await this.t.next((m) => m.status !== undefined && hdr(m, "Call-ID") === callId && hdr(m, "CSeq") === cseq, `a response to ${method} ${cseq}`, timeoutMs);
            if (r.status! >= 200) return { final: r, provisional };
            provisional.push(r);
        }
    }

    /** REGISTER, answering one digest challenge with `password` (default: the UA's own). */
    async register(opts: { password?: string; toUser?: string; expires?: number; authUser?: string } = {}): Promise<RequestResult> {
        const callId = `${rand(8)}@ifbt`;
        const fromTag = rand(4);
        const to = `sip:${opts.toUser ?? this.user}@${this.domain}`;
        const ruri = `sip:${this.domain}`;
        const statuses: number[] = [];
        let auth: [string, string] | undefined;
        for (let attempt = 0; attempt < 2; attempt++) {
            const h: [string, string][] = [
                this.via(),
                ["Max-Forwards", "70"],
                ["From", `<${to}>;tag=${fromTag}`],
                ["To", `<${to}>`],
                ["Call-ID", callId],
                ["CSeq", `${this.cseq++} REGISTER`],
                ["Contact", `${this.contact};expires=${opts.expires ?? 600}`],
                ["Expires", String(opts.expires ?? 600)],
            ];
            if (auth) h.push(auth);
            const { final, provisional } = await this.transaction("REGISTER", ruri, h);
            statuses.push(final.status!);
            const challenge = hdr(final, "WWW-Authenticate");
            if (final.status === 401 && challenge && !auth) {
                auth = ["Authorization", digestAnswer(challenge, opts.authUser ?? this.user, opts.password ?? this.password, "REGISTER", ruri)];
                continue;
            }
            return { final, provisional, statuses };
        }
        throw new Error("unreachable");
    }

    /** OPTIONS to `ruri`, no authentication. */
    async options(ruri: string): Promise<SipMessage> {
        const h: [string, string][] = [
            this.via(),
            ["Max-Forwards", "70"],
            ["From", `<${this.aor}>;tag=${rand(4)}`],
            ["To", `<${ruri}>`],
            ["Call-ID", `${rand(8)}@ifbt`],
            ["CSeq", `${this.cseq++} OPTIONS`],
        ];
        return (await this.transaction("OPTIONS", ruri, h)).final;
    }

    /**
     * INVITE `target` with `sdp`, answering one proxy challenge when
     * `authenticate`; on 2xx send the ACK and return the dialog.
     */
    async invite(target: string, sdp: string, authenticate = true): Promise<RequestResult & { dialog?: Dialog }> {
        const callId = `${rand(8)}@ifbt`;
        const fromTag = rand(4);
        const statuses: number[] = [];
        const provisionals: SipMessage[] = [];
        let auth: [string, string] | undefined;
        for (let attempt = 0; attempt < 2; attempt++) {
            const cseq = this.cseq++;
            const via = this.via();
            const h: [string, string][] = [
                via,
                ["Max-Forwards", "70"],
                ["From", `<${this.aor}>;tag=${fromTag}`],
                ["To", `<${target}>`],
                ["Call-ID", callId],
                ["CSeq", `${cseq} INVITE`],
                ["Contact", this.contact],
                ["Content-Type", "application/sdp"],
            ];
            if (auth) h.push(auth);
            const { final, provisional } = await this.transaction("INVITE", target, h, sdp, 15000);
            provisionals.push(...provisional);
            statuses.push(final.status!);
            if (final.status! >= 300) {
                // ACK for a negative final response: same branch, hop by hop (RFC 3261 17.1.1.3)
                this.t.send(
                    serialize(`ACK ${target} SIP/2.0`, [via, ["Max-Forwards", "70"], ["From", `<${this.aor}>;tag=${fromTag}`], ["To", hdr(final, "To")!], ["Call-ID", callId], ["CSeq", `${cseq} ACK`]]),
                );
                const challenge = hdr(final, "Proxy-Authenticate");
                if (final.status === 407 && challenge && authenticate && !auth) {
                    auth = ["Proxy-Authorization", digestAnswer(challenge, this.user, this.password, "INVITE", target)];
                    continue;
                }
                return { final, provisional: provisionals, statuses };
            }
            const dialog: Dialog = {
                callId,
                localTag: fromTag,
                remoteTag: tagOf(hdr(final, "To"))!,
                localUri: this.aor,
                remoteUri: target,
                remoteTarget: uriOf(hdr(final, "Contact")!),
                // a UAC uses the Record-Route of the 2xx in reverse order (RFC 3261 12.1.2)
                routes: hdrs(final, "Record-Route").flatMap((v) => v.split(/,(?=\s*<)/)).map((v) => v.trim()).reverse(),
                cseq,
            };
            this.sendInDialog(dialog, "ACK", cseq);
            return { final, provisional: provisionals, statuses, dialog };
        }
        throw new Error("unreachable");
    }

    private inDialogHeaders(d: Dialog, method: string, cseq: number): [string, string][] {
        const h: [string, string][] = [
            this.via(),
            ["Max-Forwards", "70"],
            ["From", `<${d.localUri}>;tag=${d.localTag}`],
            ["To", `<${d.remoteUri}>;tag=${d.remoteTag}`],
            ["Call-ID", d.callId],
            ["CSeq", `${cseq} ${method}`],
        ];
        for (const r of d.routes) h.push(["Route", r]);
        return h;
    }

    private sendInDialog(d: Dialog, method: string, cseq: number): void {
        this.t.send(serialize(`${method} ${d.remoteTarget} SIP/2.0`, this.inDialogHeaders(d, method, cseq)));
    }

    async bye(d: Dialog): Promise<SipMessage> {
        d.cseq++;
        return (await this.transaction("BYE", d.remoteTarget, this.inDialogHeaders(d, "BYE", d.cseq))).final;
    }

    /** Wait for an incoming request. */
    waitRequest(method: string, timeoutMs = 8000): Promise<SipMessage> {
        return this.t.next((m) => m.method === method, `an incoming ${method} at ${this.user}`, timeoutMs);
    }

    /** Answer `req`; for INVITE the To tag is kept per request (pass the same `toTag`). */
    respond(req: SipMessage, status: number, reason: string, opts: { toTag?: string; body?: string } = {}): void {
        const h: [string, string][] = [];
        for (const v of hdrs(req, "Via")) h.push(["Via", v]);
        // a UAS copies Record-Route into its dialog-creating responses (RFC 3261 12.1.1)
        if (req.method === "INVITE" && status > 100 && status < 300) for (const v of hdrs(req, "Record-Route")) h.push(["Record-Route", v]);
        h.push(["From", hdr(req, "From")!]);
        const to = hdr(req, "To")!;
        h.push(["To", status > 100 && !tagOf(to) && opts.toTag ? `${to};tag=${opts.toTag}` : to]);
        h.push(["Call-ID", hdr(req, "Call-ID")!], ["CSeq", hdr(req, "CSeq")!]);
        if (req.method === "INVITE" && status > 100 && status < 300) h.push(["Contact", this.contact]);
        if (opts.body) h.push(["Content-Type", "application/sdp"]);
        this.t.send(serialize(`SIP/2.0 ${status} ${reason}`, h, opts.body ?? ""));
    }

    /**
     * Callee side of a call: wait for the INVITE, ring (180) for `ringMs`
     * (an instant answer hides the DTLS role race, DOMAIN-FACTS 9), answer
     * 200 with `sdp`, wait for the ACK. Returns the INVITE as received.
     */
    async answerNextCall(sdp: string, ringMs = 300): Promise<SipMessage> {
        const inv = await this.waitRequest("INVITE");
        const toTag = rand(4);
        this.respond(inv, 100, "Trying");
        this.respond(inv, 180, "Ringing", { toTag });
        await new Promise((r) => setTimeout(r, ringMs));
        this.respond(inv, 200, "OK", { toTag, body: sdp });
        await this.t.next((m) => m.method === "ACK" && hdr(m, "Call-ID") === hdr(inv, "Call-ID"), `the ACK at ${this.user}`);
        return inv;
    }

    /** Answer the BYE of the call `inv` started. */
    async answerBye(inv: SipMessage): Promise<void> {
        const bye = await this.t.next((m) => m.method === "BYE" && hdr(m, "Call-ID") === hdr(inv, "Call-ID"), `the BYE at ${this.user}`);
        this.respond(bye, 200, "OK");
    }
}

// ---------------------------------------------------------------- SDP

function fingerprint(): string {
    return crypto
        .randomBytes(32)
        .toString("hex")
        .toUpperCase()
        .match(/../g)!
        .join(":");
}

/** What a browser (Chrome) offers or answers: ICE, DTLS-SRTP, rtcp-mux, mid. */
export function webrtcSdp(ip: string, port: number, setup: "actpass" | "active"): string {
    const id = Date.now();
    return [
        "v=0",
        `o=- ${id} 2 IN IP4 127.0.0.1`,
        "s=-",
        "t=0 0",
        "a=msid-semantic: WMS",
        `m=audio ${port} UDP/TLS/RTP/SAVPF 111 0 8 126`,
        `c=IN IP4 ${ip}`,
        `a=rtcp:${port} IN IP4 ${ip}`,
        `a=candidate:1 1 udp 2122260223 ${ip} ${port} typ host generation 0`,
        `a=ice-ufrag:${rand(2)}`,
        `a=ice-pwd:${rand(12)}`,
        "a=ice-options:trickle",
        `a=fingerprint:sha-256 ${fingerprint()}`,
        `a=setup:${setup}`,
        "a=mid:0",
        "a=sendrecv",
        "a=rtcp-mux",
        "a=rtpmap:111 opus/48000/2",
        "a=fmtp:111 minptime=10;useinbandfec=1",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:8 PCMA/8000",
        "a=rtpmap:126 telephone-event/8000",
        "",
    ].join("\r\n");
}

/** A SIP phone or PBX: plain RTP, G.711. */
export function plainSdp(ip: string, port: number): string {
    return [
        "v=0",
        `o=- ${Date.now()} 1 IN IP4 ${ip}`,
        "s=-",
        `c=IN IP4 ${ip}`,
        "t=0 0",
        `m=audio ${port} RTP/AVP 0 8 101`,
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:8 PCMA/8000",
        "a=rtpmap:101 telephone-event/8000",
        "a=sendrecv",
        "",
    ].join("\r\n");
}

// ---------------------------------------------------------------- scenarios (run inside the namespace)

export interface ScenarioInput {
    readonly proxyIp: string;
    readonly sipPort: number;
    readonly wssPort: number;
    readonly domain: string;
    /** the stack's CA: the WSS client verifies the proxy's certificate against it */
    readonly caPem: string;
    readonly clientIp: string;
    readonly trunkIp?: string;
    readonly users: Readonly<Record<string, string>>;
    readonly sipTlsPort: number;
    /** "trunks": trunk destinations listening on <ip>:sipPort; the first answers 503, the second 200 */
    readonly trunkDestinations?: readonly string[];
    /** "hold": the call stays up until this file exists (bounded), so the test can look at it meanwhile */
    readonly releaseFile?: string;
    readonly scenario: "options" | "register" | "calls" | "flood" | "trunks" | "fork" | "hold";
}

export interface ObservedCall {
    readonly statuses: readonly number[];
    readonly final: number;
    /** the SDP the callee received in the INVITE */
    readonly offerAtCallee: string;
    /** the SDP the caller received in the 200 */
    readonly answerAtCaller: string;
    readonly byeStatus: number;
}

async function scenario(inp: ScenarioInput): Promise<unknown> {
    const opened: Transport[] = [];
    const udp = async (ip = inp.clientIp, port = 0) => {
        const t = await UdpTransport.open(ip, inp.proxyIp, inp.sipPort, port);
        opened.push(t);
        return t;
    };
    const wss = async () => {
        const t = await WsTransport.open(`wss://${inp.proxyIp}:${inp.wssPort}/`, {
            ca: inp.caPem,
            servername: inp.domain,
            localAddress: inp.clientIp,
            origin: `https://${inp.domain}`,
        });
        opened.push(t);
        return t;
    };
    const [alice, bob] = Object.keys(inp.users);
    try {
        if (inp.scenario === "options") {
            const ua = new UserAgent("probe", "", inp.domain, await udp());
            const r = await ua.options(`sip:${inp.proxyIp}:${inp.sipPort}`);
            // SIP over TLS: the proxy's certificate is checked against the stack CA, no client certificate
            const t = await TlsTransport.open(inp.proxyIp, inp.sipTlsPort, { ca: inp.caPem, servername: inp.domain, localAddress: inp.clientIp });
            opened.push(t);
            const overTls = await new UserAgent("probe", "", inp.domain, t).options(`sip:${inp.proxyIp}:${inp.sipTlsPort};transport=tls`);
            return { status: r.status, server: hdr(r, "Server") ?? null, overTls: overTls.status };
        }
        if (inp.scenario === "trunks") {
            const [failingIp, workingIp] = inp.trunkDestinations!;
            const failing = new UserAgent("trunk", "", failingIp, await udp(failingIp, inp.sipPort));
            const working = new UserAgent("trunk", "", workingIp, await udp(workingIp, inp.sipPort));
            const browser = new UserAgent(alice, inp.users[alice], inp.domain, await wss());
            const registered = (await browser.register()).final.status;
            // the failing trunk refuses whatever reaches it; it may not be tried first
            const refused = failing.waitRequest("INVITE", 10000).then(
                async (inv) => {
                    failing.respond(inv, 503, "Service Unavailable", { toTag: rand(4) });
                    await failing.t.next((m) => m.method === "ACK", "the ACK of the 503");
                    return true;
                },
                () => false,
            );
            const answered = working.answerNextCall(plainSdp(workingIp, 40010));
            const r = await browser.invite(`sip:4930123456@${inp.domain}`, webrtcSdp(inp.clientIp, 50010, "actpass"));
            const inv = await answered;
            let byeStatus = 0;
            if (r.dialog) {
                const byeSeen = working.answerBye(inv);
                byeStatus = (await browser.bye(r.dialog)).status!;
                await byeSeen;
            }
            return { registered, statuses: r.statuses, failingTried: await refused, offerAtTrunk: inv.body, answerAtCaller: r.final.body, byeStatus };
        }
        if (inp.scenario === "hold") {
            const browser = new UserAgent(alice, inp.users[alice], inp.domain, await wss());
            const phone = new UserAgent(bob, inp.users[bob], inp.domain, await udp());
            const registrations = [await browser.register(), await phone.register()].map((r) => r.final.status);
            const answered = phone.answerNextCall(plainSdp(inp.clientIp, 40030));
            const r = await browser.invite(`sip:${bob}@${inp.domain}`, webrtcSdp(inp.clientIp, 50030, "actpass"));
            const inv = await answered;
            const deadline = Date.now() + 20000;
            while (!fs.existsSync(inp.releaseFile!) && Date.now() < deadline) await new Promise((res) => setTimeout(res, 50));
            const released = fs.existsSync(inp.releaseFile!);
            let byeStatus = 0;
            if (r.dialog) {
                const byeSeen = phone.answerBye(inv);
                byeStatus = (await browser.bye(r.dialog)).status!;
                await byeSeen;
            }
            for (const ua of [browser, phone]) await ua.register({ expires: 0 });
            return { registrations, final: r.final.status, released, byeStatus };
        }
        if (inp.scenario === "fork") {
            // bob on a phone (UDP) and in a browser (WSS) at once; alice's call forks to both
            const caller = new UserAgent(alice, inp.users[alice], inp.domain, await wss());
            const phone = new UserAgent(bob, inp.users[bob], inp.domain, await udp());
            const bobsBrowser = new UserAgent(bob, inp.users[bob], inp.domain, await wss());
            const registrations = [await caller.register(), await phone.register(), await bobsBrowser.register()].map((r) => r.final.status);
            // the browser only rings; the phone answers, so the proxy cancels the browser's branch
            const ringing = bobsBrowser.waitRequest("INVITE").then(async (inv) => {
                const tag = rand(4);
                bobsBrowser.respond(inv, 180, "Ringing", { toTag: tag });
                const cancel = await bobsBrowser.waitRequest("CANCEL");
                bobsBrowser.respond(cancel, 200, "OK");
                bobsBrowser.respond(inv, 487, "Request Terminated", { toTag: tag });
                return inv;
            });
            const answered = phone.answerNextCall(plainSdp(inp.clientIp, 40020), 500);
            const r = await caller.invite(`sip:${bob}@${inp.domain}`, webrtcSdp(inp.clientIp, 50020, "actpass"));
            const [atPhone, atBrowser] = [await answered, await ringing];
            let byeStatus = 0;
            if (r.dialog) {
                const byeSeen = phone.answerBye(atPhone);
                byeStatus = (await caller.bye(r.dialog)).status!;
                await byeSeen;
            }
            // leave no contact behind for later scenarios
            for (const ua of [caller, phone, bobsBrowser]) await ua.register({ expires: 0 });
            return { registrations, statuses: r.statuses, offerAtPhone: atPhone.body, offerAtBrowser: atBrowser.body, answerAtCaller: r.final.body, byeStatus };
        }
        if (inp.scenario === "flood") {
            // far above pike's density (30 requests per 2 s per source): the source gets blocked
            const flooder = await udp();
            const n = 300;
            for (let i = 0; i < n; i++)
                flooder.send(
                    serialize(`OPTIONS sip:${inp.proxyIp}:${inp.sipPort} SIP/2.0`, [
                        ["Via", `SIP/2.0/UDP ${flooder.sentBy};branch=z9hG4bKflood${i};rport`],
                        ["Max-Forwards", "70"],
                        ["From", `<sip:flood@${inp.domain}>;tag=f${i}`],
                        ["To", `<sip:${inp.proxyIp}>`],
                        ["Call-ID", `flood-${i}-${rand(4)}@ifbt`],
                        ["CSeq", "1 OPTIONS"],
                    ]),
                );
            // then one more, from a new port of the same address: no answer while blocked
            const after = new UserAgent("probe", "", inp.domain, await udp());
            let blockedAnswer: number | null = null;
            try {
                blockedAnswer = (await after.transaction("OPTIONS", `sip:${inp.proxyIp}:${inp.sipPort}`, [
                    ["Via", `SIP/2.0/UDP ${after.t.sentBy};branch=z9hG4bK${rand(8)};rport`],
                    ["Max-Forwards", "70"],
                    ["From", `<sip:probe@${inp.domain}>;tag=${rand(4)}`],
                    ["To", `<sip:${inp.proxyIp}>`],
                    ["Call-ID", `${rand(8)}@ifbt`],
                    ["CSeq", "1 OPTIONS"],
                ], "", 2000)).final.status!;
            } catch {
                blockedAnswer = null;
            }
            let trunk: number | null = null;
            if (inp.trunkIp) trunk = (await new UserAgent("carrier", "", inp.trunkIp, await udp(inp.trunkIp)).options(`sip:${inp.proxyIp}:${inp.sipPort}`)).status!;
            await new Promise((r) => setTimeout(r, 200));
            const answered = flooder.received.length;
            return { sent: n, answered, blockedAnswer, trunk };
        }
        if (inp.scenario === "register") {
            const ua = new UserAgent(alice, inp.users[alice], inp.domain, await udp());
            const good = await ua.register();
            const wrongPassword = await ua.register({ password: `${inp.users[alice]}-wrong` });
            const otherUsersAor = await ua.register({ toUser: bob });
            const unknownUser = await new UserAgent("nobody", "x", inp.domain, await udp()).register();
            const browser = new UserAgent(bob, inp.users[bob], inp.domain, await wss());
            const overWss = await browser.register();
            // leave no contact behind: a later call to these users would fork to it
            const removed = [(await ua.register({ expires: 0 })).final.status, (await browser.register({ expires: 0 })).final.status];
            const firstChallenge = ua.t.received.find((m) => m.status === 401);
            return {
                good: { statuses: good.statuses, contact: hdr(good.final, "Contact") ?? null, challenge: firstChallenge ? (hdr(firstChallenge, "WWW-Authenticate") ?? null) : null },
                wrongPassword: wrongPassword.statuses,
                otherUsersAor: otherUsersAor.statuses,
                unknownUser: unknownUser.statuses,
                overWss: overWss.statuses,
                removed,
            };
        }
        // calls: alice on WSS (a browser), bob on UDP (a phone), both registered
        const browser = new UserAgent(alice, inp.users[alice], inp.domain, await wss());
        const phone = new UserAgent(bob, inp.users[bob], inp.domain, await udp());
        const regs = [await browser.register(), await phone.register()].map((r) => r.final.status);
        const call = async (caller: UserAgent, callee: UserAgent, offer: string, answer: string, authenticate = true): Promise<ObservedCall> => {
            const answered = callee.answerNextCall(answer);
            const r = await caller.invite(`sip:${callee.user}@${inp.domain}`, offer, authenticate);
            const inv = await answered;
            let byeStatus = 0;
            if (r.dialog) {
                const byeSeen = callee.answerBye(inv);
                byeStatus = (await caller.bye(r.dialog)).status!;
                await byeSeen;
            }
            return { statuses: r.statuses, final: r.final.status!, offerAtCallee: inv.body, answerAtCaller: r.final.body, byeStatus };
        };
        const browserToPhone = await call(browser, phone, webrtcSdp(inp.clientIp, 50000, "actpass"), plainSdp(inp.clientIp, 40000));
        const phoneToBrowser = await call(phone, browser, plainSdp(inp.clientIp, 40002), webrtcSdp(inp.clientIp, 50002, "active"));
        let trunkToBrowser: ObservedCall | null = null;
        if (inp.trunkIp) {
            const carrier = new UserAgent("carrier", "", inp.trunkIp, await udp(inp.trunkIp));
            trunkToBrowser = await call(carrier, browser, plainSdp(inp.trunkIp, 40004), webrtcSdp(inp.clientIp, 50004, "active"), false);
        }
        let unauthenticated: number[] = [];
        {
            const stranger = new UserAgent(bob, "", inp.domain, await udp());
            unauthenticated = (await stranger.invite(`sip:${alice}@${inp.domain}`, plainSdp(inp.clientIp, 40006), false)).statuses as number[];
        }
        return { registrations: regs, browserToPhone, phoneToBrowser, trunkToBrowser, unauthenticated };
    } finally {
        for (const t of opened) t.close();
    }
}

/** Run a scenario inside `ns` (this file as a script); returns its JSON result. */
export async function runInNetns<T>(ns: TestNetns, input: ScenarioInput, timeoutMs = 60000): Promise<T> {
    const repo = path.resolve(__dirname, "..", "..");
    const r = await ns.run(process.execPath, ["--import", "tsx", __filename], { input: JSON.stringify(input), cwd: repo, timeoutMs });
    if (r.code !== 0) throw new Error(`SIP scenario "${input.scenario}" in ${ns.name} failed: ${r.stderr.trim()}`);
    return JSON.parse(r.stdout) as T;
}

async function main(): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of process.stdin) chunks.push(c as Buffer);
    const input = JSON.parse(Buffer.concat(chunks).toString("utf8")) as ScenarioInput;
    process.stdout.write(JSON.stringify(await scenario(input)));
}

if (require.main === module) {
    main().catch((e) => {
        process.stderr.write(`${(e as Error).stack ?? e}\n`);
        process.exit(1);
    });
}
