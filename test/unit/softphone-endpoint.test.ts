// The lab's test endpoint and page server on 127.0.0.1, against a scripted
// registrar/proxy: digest registration, the echo user's ring-then-answer with
// RTP echoed under its own SSRC, CANCEL during the ring, the callback user's
// refusal and call back with proxy authentication; and what the page server
// serves (and refuses).
import { strict as assert } from "assert";
import * as crypto from "crypto";
import * as dgram from "dgram";
import * as https from "https";
import { makeTestTls } from "../../components/offline";
import { RunningEndpoint, startEndpoint } from "../../softphone/endpoint";
import { SoftphoneServer, startSoftphoneServer } from "../../softphone/server";
import { SipMessage, hdr, hdrs, parseSip, serialize } from "../../softphone/sip";
import { waitFor } from "../support/wait";

const DOMAIN = "sip.test";
const PASSWORDS: Record<string, string> = { echo: "echo-pw", callme: "callme-pw" };
const md5 = (s: string) => crypto.createHash("md5").update(s).digest("hex");

/** A registrar and proxy stand-in: challenges, checks digests, records every message. */
class FakeProxy {
    readonly got: { m: SipMessage; from: dgram.RemoteInfo }[] = [];
    readonly contacts = new Map<string, { ip: string; port: number }>();
    private constructor(
        readonly sock: dgram.Socket,
        readonly port: number,
    ) {
        sock.on("message", (buf, from) => {
            const m = parseSip(buf.toString("utf8"));
            if (!m) return;
            this.got.push({ m, from });
            if (m.method === "REGISTER") this.onRegister(m, from);
            if (m.method === "BYE") this.reply(m, from, "200 OK");
        });
    }
    static open(): Promise<FakeProxy> {
        return new Promise((resolve) => {
            const s = dgram.createSocket("udp4");
            s.bind(0, "127.0.0.1", () => resolve(new FakeProxy(s, s.address().port)));
        });
    }
    /** Does `auth` prove `user` knows its password for `method`? */
    static digestOk(auth: string | undefined, method: string): boolean {
        if (!auth) return false;
        const p = Object.fromEntries([...auth.matchAll(/(\w+)="?([^",]*)"?/g)].map((x) => [x[1], x[2]]));
        const ha1 = md5(`${p.username}:${DOMAIN}:${PASSWORDS[p.username]}`);
        return p.response === md5(`${ha1}:${p.nonce}:${p.nc}:${p.cnonce}:${p.qop}:${md5(`${method}:${p.uri}`)}`);
    }
    reply(req: SipMessage, to: dgram.RemoteInfo, status: string, extra: [string, string][] = [], body = ""): void {
        const h: [string, string][] = [...hdrs(req, "Via").map((v) => ["Via", v] as [string, string]), ["From", hdr(req, "From")!], ["To", `${hdr(req, "To")!}${status.startsWith("1") || /tag=/.test(hdr(req, "To")!) ? "" : ";tag=px"}`], ["Call-ID", hdr(req, "Call-ID")!], ["CSeq", hdr(req, "CSeq")!], ...extra];
        this.sock.send(serialize(`SIP/2.0 ${status}`, h, body), to.port, to.address);
    }
    private onRegister(m: SipMessage, from: dgram.RemoteInfo): void {
        if (!FakeProxy.digestOk(hdr(m, "Authorization"), "REGISTER")) {
            this.reply(m, from, "401 Unauthorized", [["WWW-Authenticate", `Digest realm="${DOMAIN}", nonce="n${Date.now()}", qop="auth"`]]);
            return;
        }
        const c = /<sip:([^@]+)@([\d.]+):(\d+)>;expires=(\d+)/.exec(hdr(m, "Contact")!)!;
        if (c[4] === "0") this.contacts.delete(c[1]);
        else this.contacts.set(c[1], { ip: c[2], port: Number(c[3]) });
        this.reply(m, from, "200 OK", [["Contact", hdr(m, "Contact")!]]);
    }
    /** The next message matching `pred` (already received or still to come), bounded. */
    next(what: string, pred: (m: SipMessage) => boolean, after = 0): Promise<{ m: SipMessage; from: dgram.RemoteInfo; index: number }> {
        return waitFor(
            () => {
                const i = this.got.findIndex((g, idx) => idx >= after && pred(g.m));
                return i >= 0 ? { ...this.got[i], index: i } : undefined;
            },
            { what, timeoutMs: 8000, intervalMs: 10 },
        );
    }
    sendTo(user: string, text: string): void {
        const c = this.contacts.get(user)!;
        this.sock.send(text, c.port, c.ip);
    }
    close(): void {
        this.sock.close();
    }
}

function inviteTo(user: string, callId: string, sdp: string, port: number): string {
    return serialize(`INVITE sip:${user}@127.0.0.1 SIP/2.0`, [
        ["Via", `SIP/2.0/UDP 127.0.0.1:${port};branch=z9hG4bK${callId}`],
        ["From", `<sip:alice@${DOMAIN}>;tag=a1`],
        ["To", `<sip:${user}@${DOMAIN}>`],
        ["Call-ID", callId],
        ["CSeq", "1 INVITE"],
        ["Contact", `<sip:alice@127.0.0.1:${port}>`],
        ["Record-Route", `<sip:127.0.0.1:${port};lr>`],
        ["Content-Type", "application/sdp"],
    ], sdp);
}

describe("the lab's test endpoint against a scripted proxy on loopback", function () {
    this.timeout(30000);
    let proxy: FakeProxy;
    let ep: RunningEndpoint | undefined;
    const endpointLog: string[] = [];

    before(async () => {
        proxy = await FakeProxy.open();
        ep = await startEndpoint({
            proxyIp: "127.0.0.1",
            proxyPort: proxy.port,
            domain: DOMAIN,
            localIp: "127.0.0.1",
            echo: { user: "echo", password: PASSWORDS.echo },
            callback: { user: "callme", password: PASSWORDS.callme },
            ringMs: 400,
            callbackDelayMs: 100,
        }, (line) => endpointLog.push(line));
    });

    after(async () => {
        await ep?.stop();
        proxy.close();
    });

    afterEach(function () {
        if (this.currentTest?.state === "failed") console.warn(`endpoint log:\n${endpointLog.join("\n")}`);
    });

    it("registers both users with digest authentication, each with its own contact", () => {
        assert.deepEqual([...proxy.contacts.keys()].sort(), ["callme", "echo"]);
        const registers = proxy.got.filter((g) => g.m.method === "REGISTER");
        assert.equal(registers.length, 4, "a challenged and an authenticated REGISTER per user");
        assert.notEqual(proxy.contacts.get("echo")!.port, proxy.contacts.get("callme")!.port);
    });

    it("rings before answering as the echo user, then sends every RTP packet back under its own SSRC", async () => {
        const start = proxy.got.length;
        const sdp = "v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 4000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n";
        proxy.sendTo("echo", inviteTo("echo", "call-echo", sdp, proxy.port));
        const ringing = await proxy.next("180 Ringing", (m) => m.status === 180, start);
        const ok = await proxy.next("200 OK to the INVITE", (m) => m.status === 200 && hdr(m, "CSeq") === "1 INVITE", start);
        assert.ok(ok.index > ringing.index, "180 before 200");
        assert.match(hdr(ok.m, "Record-Route") ?? "", /lr/, "Record-Route copied into the 200");
        const media = /m=audio (\d+) RTP\/AVP 0 101/.exec(ok.m.body);
        assert.ok(media, ok.m.body);
        // RTP from a phone: version 2, PCMU, our SSRC 0x11223344
        const rtp = dgram.createSocket("udp4");
        await new Promise<void>((r) => rtp.bind(0, "127.0.0.1", () => r()));
        const back: Buffer[] = [];
        rtp.on("message", (b) => back.push(b));
        for (let i = 0; i < 10; i++) {
            // a buffer per packet: send() may read it after this loop goes on
            const pkt = Buffer.alloc(172);
            pkt[0] = 0x80;
            pkt.writeUInt32BE(0x11223344, 8);
            pkt.writeUInt16BE(i, 2);
            rtp.send(pkt, Number(media[1]), "127.0.0.1");
        }
        await waitFor(() => back.length === 10, { what: "10 echoed packets", timeoutMs: 3000 });
        rtp.close();
        assert.deepEqual(back.map((b) => b.readUInt16BE(2)).sort((a, b) => a - b), [...Array(10).keys()], "sequence numbers kept");
        assert.ok(back.every((b) => b.readUInt32BE(8) !== 0x11223344), "the echo has its own SSRC");
        const bye = serialize(`BYE sip:echo@127.0.0.1 SIP/2.0`, [
            ["Via", `SIP/2.0/UDP 127.0.0.1:${proxy.port};branch=z9hG4bKbye1`],
            ["From", `<sip:alice@${DOMAIN}>;tag=a1`],
            ["To", `${hdr(ok.m, "To")}`],
            ["Call-ID", "call-echo"],
            ["CSeq", "2 BYE"],
        ]);
        proxy.sendTo("echo", bye);
        await proxy.next("200 OK to the BYE", (m) => m.status === 200 && hdr(m, "CSeq") === "2 BYE", start);
        assert.ok(endpointLog.some((l) => /^call-ended role=echo peer=alice why="hung up by alice" .*rtp_received=10 rtp_echoed=10$/.test(l)), endpointLog.join("\n"));
    });

    it("waits the configured ring time before the 200", async () => {
        const start = proxy.got.length;
        const t0 = Date.now();
        proxy.sendTo("echo", inviteTo("echo", "call-timed", "v=0\r\nm=audio 4002 RTP/AVP 0\r\n", proxy.port));
        await proxy.next("180 Ringing", (m) => m.status === 180 && hdr(m, "Call-ID") === "call-timed", start);
        const t180 = Date.now();
        await proxy.next("200 OK", (m) => m.status === 200 && hdr(m, "Call-ID") === "call-timed", start);
        assert.ok(Date.now() - t180 >= 350, `answered ${Date.now() - t180} ms after ringing (configured 400)`);
        assert.ok(Date.now() - t0 >= 350);
        proxy.sendTo("echo", serialize(`BYE sip:echo@127.0.0.1 SIP/2.0`, [["Via", `SIP/2.0/UDP 127.0.0.1:${proxy.port};branch=z9hG4bKbye2`], ["From", `<sip:alice@${DOMAIN}>;tag=a1`], ["To", `<sip:echo@${DOMAIN}>;tag=x`], ["Call-ID", "call-timed"], ["CSeq", "2 BYE"]]));
        await proxy.next("200 OK to the BYE", (m) => m.status === 200 && hdr(m, "Call-ID") === "call-timed" && /BYE/.test(hdr(m, "CSeq")!), start);
    });

    it("stops ringing on CANCEL with 200 to the CANCEL and 487 to the INVITE", async () => {
        const start = proxy.got.length;
        proxy.sendTo("echo", inviteTo("echo", "call-cancel", "v=0\r\nm=audio 4004 RTP/AVP 0\r\n", proxy.port));
        await proxy.next("180 Ringing", (m) => m.status === 180 && hdr(m, "Call-ID") === "call-cancel", start);
        proxy.sendTo("echo", serialize(`CANCEL sip:echo@127.0.0.1 SIP/2.0`, [["Via", `SIP/2.0/UDP 127.0.0.1:${proxy.port};branch=z9hG4bKcall-cancel`], ["From", `<sip:alice@${DOMAIN}>;tag=a1`], ["To", `<sip:echo@${DOMAIN}>`], ["Call-ID", "call-cancel"], ["CSeq", "1 CANCEL"]]));
        await proxy.next("200 to the CANCEL", (m) => m.status === 200 && hdr(m, "CSeq") === "1 CANCEL", start);
        await proxy.next("487 to the INVITE", (m) => m.status === 487 && hdr(m, "Call-ID") === "call-cancel", start);
        const answered = proxy.got.slice(start).some((g) => g.m.status === 200 && hdr(g.m, "Call-ID") === "call-cancel" && hdr(g.m, "CSeq") === "1 INVITE");
        assert.ok(!answered, "a cancelled call is never answered");
    });

    it("turns a call to the callback user down with 480, then calls the caller, answering the proxy's challenge", async () => {
        const start = proxy.got.length;
        proxy.sendTo("callme", inviteTo("callme", "call-cb", "v=0\r\nm=audio 4006 RTP/AVP 0\r\n", proxy.port));
        const refused = await proxy.next("the 480", (m) => m.status === 480, start);
        assert.equal(refused.m.reason, "Will Call You Back");
        const first = await proxy.next("the call back", (m) => m.method === "INVITE" && m.ruri === `sip:alice@${DOMAIN}`, start);
        assert.match(hdr(first.m, "From")!, /^<sip:callme@sip\.test>;tag=/);
        assert.match(first.m.body, /m=audio \d+ RTP\/AVP 0 8 101/);
        proxy.reply(first.m, first.from, "407 Proxy Authentication Required", [["Proxy-Authenticate", `Digest realm="${DOMAIN}", nonce="cb1", qop="auth"`]]);
        await proxy.next("the ACK of the 407", (m) => m.method === "ACK" && hdr(m, "Call-ID") === hdr(first.m, "Call-ID"), first.index);
        const second = await proxy.next("the authenticated INVITE", (m) => m.method === "INVITE" && !!hdr(m, "Proxy-Authorization"), first.index + 1);
        assert.ok(FakeProxy.digestOk(hdr(second.m, "Proxy-Authorization"), "INVITE"), "the digest proves callme's password");
        proxy.reply(second.m, second.from, "200 OK", [["Contact", `<sip:alice@127.0.0.1:${proxy.port};transport=udp>`], ["Record-Route", `<sip:127.0.0.1:${proxy.port};lr>`]], "v=0\r\nc=IN IP4 127.0.0.1\r\nm=audio 4008 RTP/AVP 0\r\n");
        const ack = await proxy.next("the ACK of the 200", (m) => m.method === "ACK" && hdr(m, "CSeq") === hdr(second.m, "CSeq")!.replace("INVITE", "ACK"), second.index);
        assert.equal(hdr(ack.m, "Route"), `<sip:127.0.0.1:${proxy.port};lr>`, "in-dialog requests follow the Record-Route");
    });
});

describe("the softphone page server", function () {
    this.timeout(30000);
    let server: SoftphoneServer;
    const tls = makeTestTls("sip.test", ["127.0.0.1"]);

    before(async () => {
        server = await startSoftphoneServer({ host: "127.0.0.1", port: 0, certPem: tls.certificatePem, keyPem: tls.privateKeyPem, config: { wssUrl: "wss://127.0.0.1:443/", user: "alice", password: "pw" } });
    });
    after(() => server.close());

    const get = (p: string, method = "GET") =>
        new Promise<{ status: number; type: string; body: string }>((resolve, reject) => {
            const req = https.request(new URL(p, server.url), { method, ca: tls.caPem }, (res) => {
                let body = "";
                res.on("data", (d) => (body += d));
                res.on("end", () => resolve({ status: res.statusCode!, type: String(res.headers["content-type"] ?? ""), body }));
            });
            req.on("error", reject);
            req.end();
        });

    it("serves the page, its style, the bundled script and the config over TLS checked against the stack CA", async () => {
        const page = await get("/");
        assert.equal(page.status, 200);
        assert.match(page.body, /<script src="app.js"><\/script>/);
        assert.doesNotMatch(page.body, /https?:\/\/(?!www\.w3\.org)/, "no outside URL in the page");
        const js = await get("/app.js");
        assert.equal(js.status, 200);
        assert.match(js.type, /javascript/);
        assert.ok(js.body.length > 50000, "JsSIP is in the bundle");
        assert.match((await get("/style.css")).type, /text\/css/);
        const cfg = await get("/config.json");
        assert.deepEqual(JSON.parse(cfg.body), { wssUrl: "wss://127.0.0.1:443/", user: "alice", password: "pw" });
    });

    it("refuses other paths and methods", async () => {
        assert.equal((await get("/../package.json")).status, 404);
        assert.equal((await get("/softphone/server.ts")).status, 404);
        assert.equal((await get("/config.json", "POST")).status, 405);
    });
});
