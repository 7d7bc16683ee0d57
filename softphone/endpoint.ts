// The lab's test SIP endpoint, a plain-RTP "phone" registered through the
// gateway over UDP like any subscriber:
//   - the echo user answers every call after ringing (default 1.5 s: an
//     instant answer hides the DTLS role race, DOMAIN-FACTS 9) and sends each
//     caller's audio back to them;
//   - the callback user turns a call down with "480 Will Call You Back", then
//     calls the caller (a browser) and echoes its audio too.
//
//   tsx softphone/endpoint.ts CONFIG.json     (config: EndpointConfig; holds passwords, keep it 0600)
//
// One line per event on stdout, never a password.
import * as dgram from "dgram";
import * as fs from "fs";
import { SipMessage, digestAnswer, echoAnswer, hdr, hdrs, nameAddrs, parseSip, plainOffer, randomToken, serialize, tagOf, uriOf, userOf } from "./sip";

export interface EndpointAccount {
    readonly user: string;
    readonly password: string;
}

export interface EndpointConfig {
    /** the gateway's SIP/UDP address */
    readonly proxyIp: string;
    readonly proxyPort: number;
    readonly domain: string;
    /** the address this endpoint binds (signalling and media) */
    readonly localIp: string;
    readonly echo?: EndpointAccount;
    readonly callback?: EndpointAccount;
    /** ring this long before answering (default 1500 ms) */
    readonly ringMs?: number;
    /** call back this long after turning the request down (default 2000 ms) */
    readonly callbackDelayMs?: number;
    /** hang up a call that is still up after this long (default 10 min) */
    readonly maxCallMs?: number;
    /** registration lifetime asked for (default 300 s; refreshed at half) */
    readonly registerExpires?: number;
}

export type EndpointLog = (line: string) => void;
const stdoutLog: EndpointLog = (line) => process.stdout.write(`${new Date().toISOString()} ${line}\n`);

/** Sends back every RTP packet it receives, under its own SSRC, to where it came from. */
class RtpEcho {
    private constructor(
        private readonly sock: dgram.Socket,
        readonly port: number,
    ) {
        const ssrc = Buffer.alloc(4);
        ssrc.writeUInt32BE(Math.floor(Math.random() * 0xffffffff));
        sock.on("message", (pkt, from) => {
            this.received++;
            // RTP version 2 only; keep sequence and timestamp, replace the SSRC (bytes 8-11, RFC 3550 5.1)
            if (pkt.length < 12 || pkt[0] >> 6 !== 2) return;
            ssrc.copy(pkt, 8);
            sock.send(pkt, from.port, from.address);
            this.sent++;
        });
    }
    received = 0;
    sent = 0;

    static open(ip: string): Promise<RtpEcho> {
        return new Promise((resolve, reject) => {
            const s = dgram.createSocket("udp4");
            s.once("error", reject);
            s.bind(0, ip, () => resolve(new RtpEcho(s, s.address().port)));
        });
    }

    close(): void {
        try {
            this.sock.close();
        } catch {
            /* already closed */
        }
    }
}

interface Call {
    readonly callId: string;
    readonly peer: string;
    readonly direction: "in" | "out";
    readonly echo: RtpEcho;
    readonly localTag: string;
    remoteTag: string;
    localUri: string;
    remoteUri: string;
    remoteTarget: string;
    /** Route headers for our in-dialog requests */
    routes: string[];
    cseq: number;
    /** the INVITE we received (incoming calls) */
    invite?: SipMessage;
    /** our last response to that INVITE, for retransmitted INVITEs */
    lastResponse?: string;
    ringTimer?: NodeJS.Timeout;
    maxTimer?: NodeJS.Timeout;
    answeredAt?: number;
    ended: boolean;
}

type ResponseWaiter = { resolve: (m: SipMessage) => void; provisional?: (m: SipMessage) => void };

/** One registered user on its own UDP socket. */
class Account {
    private readonly pending = new Map<string, ResponseWaiter>();
    private readonly calls = new Map<string, Call>();
    private cseq = 1;
    private refresh?: NodeJS.Timeout;
    private readonly regCallId = `${randomToken(8)}@ifbus-lab`;
    private readonly regTag = randomToken(4);

    private constructor(
        readonly role: "echo" | "callback",
        readonly account: EndpointAccount,
        private readonly cfg: EndpointConfig,
        private readonly sock: dgram.Socket,
        private readonly port: number,
        private readonly log: EndpointLog,
    ) {
        sock.on("message", (buf, from) => {
            const m = parseSip(buf.toString("utf8"));
            if (!m) return;
            if (m.status !== undefined) this.onResponse(m);
            else this.onRequest(m, from);
        });
    }

    static open(role: "echo" | "callback", account: EndpointAccount, cfg: EndpointConfig, log: EndpointLog): Promise<Account> {
        return new Promise((resolve, reject) => {
            const s = dgram.createSocket("udp4");
            s.once("error", reject);
            s.bind(0, cfg.localIp, () => resolve(new Account(role, account, cfg, s, s.address().port, log)));
        });
    }

    private get aor(): string {
        return `sip:${this.account.user}@${this.cfg.domain}`;
    }
    private get contact(): string {
        return `<sip:${this.account.user}@${this.cfg.localIp}:${this.port}>`;
    }
    private via(branch = `z9hG4bK${randomToken(8)}`): [string, string] {
        return ["Via", `SIP/2.0/UDP ${this.cfg.localIp}:${this.port};branch=${branch};rport`];
    }
    private sendToProxy(text: string): void {
        this.sock.send(Buffer.from(text), this.cfg.proxyPort, this.cfg.proxyIp);
    }

    /** Send a request to the proxy and wait (bounded) for its final response. */
    private request(method: string, ruri: string, headers: [string, string][], body = "", onProvisional?: (m: SipMessage) => void, timeoutMs = 32000): Promise<SipMessage> {
        const key = `${headers.find(([n]) => n === "Call-ID")![1]} ${headers.find(([n]) => n === "CSeq")![1]}`;
        return new Promise((resolve, reject) => {
            const t = setTimeout(() => {
                this.pending.delete(key);
                reject(new Error(`no final response to ${method} within ${timeoutMs} ms`));
            }, timeoutMs);
            this.pending.set(key, {
                resolve: (m) => {
                    clearTimeout(t);
                    resolve(m);
                },
                provisional: onProvisional,
            });
            this.sendToProxy(serialize(`${method} ${ruri} SIP/2.0`, headers, body));
        });
    }

    private onResponse(m: SipMessage): void {
        const key = `${hdr(m, "Call-ID")} ${hdr(m, "CSeq")}`;
        const w = this.pending.get(key);
        if (!w) {
            // a retransmitted 200 to our INVITE: ACK it again
            const call = this.calls.get(hdr(m, "Call-ID") ?? "");
            if (call && m.status === 200 && /INVITE$/.test(hdr(m, "CSeq") ?? "")) this.sendInDialog(call, "ACK", Number((hdr(m, "CSeq") ?? "0").split(" ")[0]));
            return;
        }
        if (m.status! < 200) {
            w.provisional?.(m);
            return;
        }
        this.pending.delete(key);
        w.resolve(m);
    }

    async register(expires = this.cfg.registerExpires ?? 300): Promise<number> {
        const ruri = `sip:${this.cfg.domain}`;
        let auth: [string, string] | undefined;
        for (let attempt = 0; attempt < 2; attempt++) {
            const h: [string, string][] = [
                this.via(),
                ["Max-Forwards", "70"],
                ["From", `<${this.aor}>;tag=${this.regTag}`],
                ["To", `<${this.aor}>`],
                ["Call-ID", this.regCallId],
                ["CSeq", `${this.cseq++} REGISTER`],
                ["Contact", `${this.contact};expires=${expires}`],
                ["Expires", String(expires)],
                ["User-Agent", "IF.bus lab endpoint"],
            ];
            if (auth) h.push(auth);
            const r = await this.request("REGISTER", ruri, h, "", undefined, 8000);
            const challenge = hdr(r, "WWW-Authenticate");
            if (r.status === 401 && challenge && !auth) {
                auth = ["Authorization", digestAnswer(challenge, this.account.user, this.account.password, "REGISTER", ruri)];
                continue;
            }
            if (r.status === 200 && expires > 0) {
                this.log(`registered ${this.role} user=${this.account.user} contact=${this.cfg.localIp}:${this.port} expires=${expires}`);
                clearTimeout(this.refresh);
                this.refresh = setTimeout(() => this.register().catch((e) => this.log(`register-refresh-failed user=${this.account.user} ${(e as Error).message}`)), (expires * 1000) / 2);
            } else if (r.status !== 200) this.log(`register-failed user=${this.account.user} status=${r.status} ${r.reason ?? ""}`);
            return r.status!;
        }
        return 0;
    }

    // ------------------------------------------------------------ requests we receive

    private respond(req: SipMessage, to: dgram.RemoteInfo, status: number, reason: string, opts: { toTag?: string; body?: string } = {}): string {
        const h: [string, string][] = hdrs(req, "Via").map((v) => ["Via", v] as [string, string]);
        const dialogCreating = req.method === "INVITE" && status > 100 && status < 300;
        // a UAS copies Record-Route into dialog-creating responses (RFC 3261 12.1.1)
        if (dialogCreating) for (const v of hdrs(req, "Record-Route")) h.push(["Record-Route", v]);
        h.push(["From", hdr(req, "From")!]);
        const toHdr = hdr(req, "To")!;
        h.push(["To", status > 100 && !tagOf(toHdr) && opts.toTag ? `${toHdr};tag=${opts.toTag}` : toHdr]);
        h.push(["Call-ID", hdr(req, "Call-ID")!], ["CSeq", hdr(req, "CSeq")!]);
        if (dialogCreating) h.push(["Contact", this.contact]);
        if (opts.body) h.push(["Content-Type", "application/sdp"]);
        const text = serialize(`SIP/2.0 ${status} ${reason}`, h, opts.body ?? "");
        this.sock.send(Buffer.from(text), to.port, to.address);
        return text;
    }

    private onRequest(m: SipMessage, from: dgram.RemoteInfo): void {
        const callId = hdr(m, "Call-ID") ?? "";
        const call = this.calls.get(callId);
        switch (m.method) {
            case "INVITE":
                if (call?.invite && hdr(call.invite, "CSeq") === hdr(m, "CSeq")) {
                    // retransmission: repeat our last answer
                    if (call.lastResponse) this.sock.send(Buffer.from(call.lastResponse), from.port, from.address);
                    return;
                }
                if (call) {
                    // re-INVITE (refresh or hold): keep the media as it is
                    this.respond(m, from, 200, "OK", { body: echoAnswer(m.body, this.cfg.localIp, call.echo.port) });
                    return;
                }
                void this.onInvite(m, from);
                return;
            case "ACK":
                return;
            case "CANCEL": {
                this.respond(m, from, 200, "OK");
                if (call?.invite && !call.answeredAt) {
                    call.lastResponse = this.respond(call.invite, from, 487, "Request Terminated", { toTag: call.localTag });
                    this.finish(call, "cancelled by the caller");
                }
                return;
            }
            case "BYE":
                this.respond(m, from, call ? 200 : 481, call ? "OK" : "Call/Transaction Does Not Exist");
                if (call) this.finish(call, `hung up by ${call.peer}`);
                return;
            case "OPTIONS":
                this.respond(m, from, 200, "OK");
                return;
            default:
                this.respond(m, from, 405, "Method Not Allowed");
        }
    }

    private async onInvite(inv: SipMessage, from: dgram.RemoteInfo): Promise<void> {
        const callId = hdr(inv, "Call-ID")!;
        const peer = userOf(hdr(inv, "From") ?? "") || "unknown";
        const localTag = randomToken(4);
        this.respond(inv, from, 100, "Trying");
        if (this.role === "callback") {
            // turn the request down at once, then call the caller back
            this.respond(inv, from, 480, "Will Call You Back", { toTag: localTag });
            const delay = this.cfg.callbackDelayMs ?? 2000;
            this.log(`callback-requested by=${peer} in_ms=${delay}`);
            setTimeout(() => void this.callOut(peer).catch((e) => this.log(`callback-failed to=${peer} ${(e as Error).message}`)), delay);
            return;
        }
        const echo = await RtpEcho.open(this.cfg.localIp);
        const call: Call = {
            callId,
            peer,
            direction: "in",
            echo,
            localTag,
            remoteTag: tagOf(hdr(inv, "From")) ?? "",
            localUri: uriOf(hdr(inv, "To")!),
            remoteUri: uriOf(hdr(inv, "From")!),
            remoteTarget: uriOf(hdr(inv, "Contact") ?? hdr(inv, "From")!),
            // a UAS uses the Record-Route in the order received (RFC 3261 12.1.1)
            routes: nameAddrs(inv, "Record-Route"),
            cseq: 0,
            invite: inv,
            ended: false,
        };
        this.calls.set(callId, call);
        call.lastResponse = this.respond(inv, from, 180, "Ringing", { toTag: localTag });
        const ringMs = this.cfg.ringMs ?? 1500;
        this.log(`call-ringing role=echo from=${peer} ring_ms=${ringMs}`);
        call.ringTimer = setTimeout(() => {
            if (call.ended) return;
            call.answeredAt = Date.now();
            call.lastResponse = this.respond(inv, from, 200, "OK", { toTag: localTag, body: echoAnswer(inv.body, this.cfg.localIp, echo.port) });
            this.log(`call-answered role=echo from=${peer} after_ms=${ringMs}`);
            this.armMaxDuration(call);
        }, ringMs);
    }

    // ------------------------------------------------------------ calls we place

    /** Call `user` (a browser), echo its audio until someone hangs up. */
    async callOut(user: string): Promise<void> {
        const target = `sip:${user}@${this.cfg.domain}`;
        const callId = `${randomToken(8)}@ifbus-lab`;
        const localTag = randomToken(4);
        const echo = await RtpEcho.open(this.cfg.localIp);
        const offer = plainOffer(this.cfg.localIp, echo.port);
        const call: Call = { callId, peer: user, direction: "out", echo, localTag, remoteTag: "", localUri: this.aor, remoteUri: target, remoteTarget: target, routes: [], cseq: 0, ended: false };
        this.calls.set(callId, call);
        this.log(`call-out to=${user}`);
        let auth: [string, string] | undefined;
        for (let attempt = 0; attempt < 2; attempt++) {
            const cseq = ++call.cseq;
            const via = this.via();
            const h: [string, string][] = [
                via,
                ["Max-Forwards", "70"],
                ["From", `<${this.aor}>;tag=${localTag}`],
                ["To", `<${target}>`],
                ["Call-ID", callId],
                ["CSeq", `${cseq} INVITE`],
                ["Contact", this.contact],
                ["User-Agent", "IF.bus lab endpoint"],
                ["Content-Type", "application/sdp"],
            ];
            if (auth) h.push(auth);
            const r = await this.request("INVITE", target, h, offer, (p) => {
                if (p.status === 180 || p.status === 183) this.log(`call-out-ringing to=${user}`);
            }, 90000);
            if (r.status! >= 300) {
                // ACK of a negative final response: same branch, hop by hop (RFC 3261 17.1.1.3)
                this.sendToProxy(serialize(`ACK ${target} SIP/2.0`, [via, ["Max-Forwards", "70"], ["From", `<${this.aor}>;tag=${localTag}`], ["To", hdr(r, "To")!], ["Call-ID", callId], ["CSeq", `${cseq} ACK`]]));
                const challenge = hdr(r, "Proxy-Authenticate");
                if (r.status === 407 && challenge && !auth) {
                    auth = ["Proxy-Authorization", digestAnswer(challenge, this.account.user, this.account.password, "INVITE", target)];
                    continue;
                }
                this.log(`call-out-failed to=${user} status=${r.status} ${r.reason ?? ""}`);
                this.finish(call, `refused with ${r.status}`);
                return;
            }
            call.remoteTag = tagOf(hdr(r, "To")) ?? "";
            call.remoteTarget = uriOf(hdr(r, "Contact") ?? target);
            // a UAC uses the Record-Route of the 2xx in reverse order (RFC 3261 12.1.2)
            call.routes = nameAddrs(r, "Record-Route").reverse();
            call.answeredAt = Date.now();
            this.sendInDialog(call, "ACK", cseq);
            this.log(`call-out-answered to=${user}`);
            this.armMaxDuration(call);
            return;
        }
    }

    private inDialogHeaders(call: Call, method: string, cseq: number): [string, string][] {
        const [fromTag, toTag] = [call.localTag, call.remoteTag];
        const h: [string, string][] = [
            this.via(),
            ["Max-Forwards", "70"],
            ["From", `<${call.localUri}>;tag=${fromTag}`],
            ["To", `<${call.remoteUri}>${toTag ? `;tag=${toTag}` : ""}`],
            ["Call-ID", call.callId],
            ["CSeq", `${cseq} ${method}`],
        ];
        for (const r of call.routes) h.push(["Route", r]);
        return h;
    }

    private sendInDialog(call: Call, method: string, cseq: number): void {
        this.sendToProxy(serialize(`${method} ${call.remoteTarget} SIP/2.0`, this.inDialogHeaders(call, method, cseq)));
    }

    private armMaxDuration(call: Call): void {
        const max = this.cfg.maxCallMs ?? 600000;
        call.maxTimer = setTimeout(() => void this.hangUp(call, "maximum call length reached"), max);
    }

    async hangUp(call: Call, why: string): Promise<void> {
        if (call.ended) return;
        // our own CSeq space: after our INVITE on calls we placed, from 1 on calls we answered
        const cseq = ++call.cseq;
        try {
            await this.request("BYE", call.remoteTarget, this.inDialogHeaders(call, "BYE", cseq), "", undefined, 8000);
        } finally {
            this.finish(call, why);
        }
    }

    private finish(call: Call, why: string): void {
        if (call.ended) return;
        call.ended = true;
        clearTimeout(call.ringTimer);
        clearTimeout(call.maxTimer);
        call.echo.close();
        this.calls.delete(call.callId);
        const secs = call.answeredAt ? ((Date.now() - call.answeredAt) / 1000).toFixed(1) : "0";
        this.log(`call-ended role=${this.role} peer=${call.peer} why="${why}" seconds=${secs} rtp_received=${call.echo.received} rtp_echoed=${call.echo.sent}`);
    }

    async close(): Promise<void> {
        clearTimeout(this.refresh);
        await Promise.allSettled([...this.calls.values()].map((c) => (c.answeredAt ? this.hangUp(c, "endpoint stopping") : Promise.resolve(this.finish(c, "endpoint stopping")))));
        await this.register(0).catch(() => 0);
        this.sock.close();
    }
}

export interface RunningEndpoint {
    readonly accounts: readonly Account[];
    stop(): Promise<void>;
}

export async function startEndpoint(cfg: EndpointConfig, log: EndpointLog = stdoutLog): Promise<RunningEndpoint> {
    const accounts: Account[] = [];
    for (const [role, acc] of [["echo", cfg.echo], ["callback", cfg.callback]] as const) {
        if (!acc) continue;
        const a = await Account.open(role, acc, cfg, log);
        const status = await a.register();
        if (status !== 200) throw new Error(`the ${role} user ${acc.user} could not register (SIP ${status})`);
        accounts.push(a);
    }
    if (!accounts.length) throw new Error("the endpoint config names neither an echo nor a callback user");
    return { accounts, stop: async () => void (await Promise.allSettled(accounts.map((a) => a.close()))) };
}

async function main(): Promise<void> {
    const file = process.argv[2];
    if (!file) throw new Error("usage: endpoint.ts CONFIG.json");
    const cfg = JSON.parse(fs.readFileSync(file, "utf8")) as EndpointConfig;
    const ep = await startEndpoint(cfg);
    stdoutLog(`endpoint-ready users=${ep.accounts.map((a) => `${a.role}:${a.account.user}`).join(",")}`);
    let stopping = false;
    const stop = () => {
        if (stopping) return;
        stopping = true;
        // unregister and hang up, bounded: a dead proxy must not keep the process alive
        const t = setTimeout(() => process.exit(0), 3000);
        void ep.stop().then(() => {
            clearTimeout(t);
            process.exit(0);
        });
    };
    process.on("SIGTERM", stop);
    process.on("SIGINT", stop);
}

if (require.main === module) {
    main().catch((e) => {
        stdoutLog(`endpoint-failed ${(e as Error).message}`);
        process.exit(1);
    });
}
