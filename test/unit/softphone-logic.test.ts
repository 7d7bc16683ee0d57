// The softphone page's decisions and the endpoint's SIP helpers, without a
// browser or a network.
import { strict as assert } from "assert";
import * as crypto from "crypto";
import { callEndMessage, connectTimeoutMessage, echoRatio, mediaCounters, registrationFailureMessage, resolveSettings, settingsProblems, sipTarget } from "../../softphone/page-logic";
import { digestAnswer, echoAnswer, nameAddrs, parseSip, plainOffer, serialize, userOf } from "../../softphone/sip";

const md5 = (s: string) => crypto.createHash("md5").update(s).digest("hex");

describe("softphone page logic", () => {
    it("takes the lab's config and lets URL parameters override each field", () => {
        const cfg = { wssUrl: "wss://10.0.0.1:443/", domain: "sip.example.com", user: "alice", password: "pw", autoAnswer: false, connectTimeoutMs: 8000 };
        const plain = resolveSettings(cfg, new URLSearchParams(""));
        assert.deepEqual(
            { wss: plain.wssUrl, user: plain.user, auto: plain.autoAnswer, timeout: plain.connectTimeoutMs, ice: plain.iceServers },
            { wss: cfg.wssUrl, user: "alice", auto: false, timeout: 8000, ice: [] },
        );
        const over = resolveSettings(cfg, new URLSearchParams("user=bob&password=x&autoanswer=1&connect_timeout=3000&wss=wss%3A%2F%2Fh%3A443%2F"));
        assert.deepEqual([over.user, over.password, over.autoAnswer, over.connectTimeoutMs, over.wssUrl], ["bob", "x", true, 3000, "wss://h:443/"]);
    });

    it("falls back to the default connect timeout for a nonsense value", () => {
        assert.equal(resolveSettings({}, new URLSearchParams("connect_timeout=soon")).connectTimeoutMs, 10000);
        assert.equal(resolveSettings({}, new URLSearchParams("connect_timeout=-5")).connectTimeoutMs, 10000);
    });

    it("names every empty or malformed field before anything is sent", () => {
        assert.deepEqual(settingsProblems({ wssUrl: "wss://h/", domain: "sip.example.com", user: "alice", password: "p" }), []);
        const p = settingsProblems({ wssUrl: "https://h/", domain: "", user: "al ice", password: "" });
        assert.equal(p.length, 4);
        assert.match(p.join("\n"), /wss:\/\//);
        assert.match(p.join("\n"), /password is empty/);
    });

    it("dials names and numbers in the user's domain and passes full URIs through", () => {
        assert.equal(sipTarget("echo", "sip.example.com"), "sip:echo@sip.example.com");
        assert.equal(sipTarget(" +49 (30) 123-45 ", "d"), "sip:+493012345@d");
        assert.equal(sipTarget("bob@other.example", "d"), "sip:bob@other.example");
        assert.equal(sipTarget("sips:carol@x", "d"), "sips:carol@x");
    });

    it("explains a refused registration by its SIP status, naming the status", () => {
        assert.match(registrationFailureMessage("Authentication Error", 401, "Unauthorized"), /^Registration refused: wrong user name or password \(SIP 401 Unauthorized\)/);
        assert.match(registrationFailureMessage("Rejected", 403, "Forbidden"), /refused by the proxy \(SIP 403 Forbidden\)/);
        assert.match(registrationFailureMessage("Request Timeout"), /did not answer/);
        assert.match(registrationFailureMessage("SIP Failure Code", 500, "Server Error"), /SIP 500 Server Error/);
    });

    it("tells how to get past an untrusted certificate when the WebSocket never opens", () => {
        const m = connectTimeoutMessage("wss://10.40.0.10:443/", 10000);
        assert.match(m, /within 10 s; stopped trying/);
        assert.match(m, /open https:\/\/10\.40\.0\.10\/ in this browser once/);
    });

    it("says who ended a call", () => {
        assert.equal(callEndMessage("local", "Terminated"), "You hung up.");
        assert.equal(callEndMessage("remote", "Terminated"), "The other side hung up.");
        assert.match(callEndMessage("remote", "Unavailable", 480, "Will Call You Back"), /SIP 480 Will Call You Back/);
    });

    it("counts audio packets from getStats() and finds the relay of the selected ICE pair", () => {
        const reports = [
            { id: "o", type: "outbound-rtp", kind: "audio", packetsSent: 300 },
            { id: "i", type: "inbound-rtp", kind: "audio", packetsReceived: 290, packetsLost: 2, audioLevel: 0.2 },
            { id: "v", type: "inbound-rtp", kind: "video", packetsReceived: 999 },
            { id: "t", type: "transport", dtlsState: "connected", iceState: "connected", selectedCandidatePairId: "p" },
            { id: "p", type: "candidate-pair", remoteCandidateId: "rc" },
            { id: "rc", type: "remote-candidate", address: "10.40.0.20", port: 10014 },
        ];
        const c = mediaCounters(reports);
        assert.deepEqual(
            { sent: c.packetsSent, received: c.packetsReceived, lost: c.packetsLost, dtls: c.dtlsState, remote: c.remote },
            { sent: 300, received: 290, lost: 2, dtls: "connected", remote: "10.40.0.20:10014" },
        );
        const before = mediaCounters([{ id: "o", type: "outbound-rtp", kind: "audio", packetsSent: 50 }, { id: "i", type: "inbound-rtp", kind: "audio", packetsReceived: 45 }]);
        assert.deepEqual(echoRatio(before, c), { sent: 250, received: 245, ratio: 0.98 });
        assert.equal(echoRatio(c, c).ratio, 0, "nothing sent is no echo");
    });
});

describe("the test endpoint's SIP helpers", () => {
    it("answers a digest challenge as RFC 2617 computes it (MD5, qop=auth)", () => {
        const challenge = 'Digest realm="sip.example.com", nonce="abc123", qop="auth", opaque="op"';
        const answer = digestAnswer(challenge, "alice", "secret", "REGISTER", "sip:sip.example.com");
        const p = Object.fromEntries([...answer.matchAll(/(\w+)="?([^",]*)"?/g)].map((m) => [m[1], m[2]]));
        const ha1 = md5("alice:sip.example.com:secret");
        const ha2 = md5("REGISTER:sip:sip.example.com");
        assert.equal(p.response, md5(`${ha1}:abc123:${p.nc}:${p.cnonce}:auth:${ha2}`));
        assert.equal(p.opaque, "op");
        assert.equal(p.qop, "auth");
    });

    it("parses what it serializes, with folded headers and several Record-Routes in one header", () => {
        const text = serialize("INVITE sip:bob@h SIP/2.0", [
            ["Via", "SIP/2.0/UDP 1.2.3.4:5060;branch=z9hG4bK1"],
            ["From", '"Alice" <sip:alice@h>;tag=1'],
            ["Record-Route", "<sip:10.0.0.1;lr>, <sip:10.0.0.2;lr>"],
        ], "v=0\r\n");
        const m = parseSip(text.replace("Via: SIP/2.0/UDP", "Via: SIP/2.0/UDP\r\n "))!;
        assert.equal(m.method, "INVITE");
        assert.equal(m.body, "v=0\r\n");
        assert.deepEqual(nameAddrs(m, "record-route"), ["<sip:10.0.0.1;lr>", "<sip:10.0.0.2;lr>"]);
        assert.equal(userOf('"Alice" <sip:alice@h>;tag=1'), "alice");
        assert.equal(parseSip("SIP/2.0 480 Will Call You Back\r\n\r\n")!.reason, "Will Call You Back");
        assert.equal(parseSip("garbage"), undefined);
    });

    it("answers with G.711 from a browser's offer (opus first) and keeps DTMF events", () => {
        const offer = "v=0\r\nm=audio 4000 RTP/AVP 111 9 0 8 101\r\na=rtpmap:111 opus/48000/2\r\na=rtpmap:9 G722/8000\r\na=rtpmap:101 telephone-event/8000\r\n";
        const a = echoAnswer(offer, "192.0.2.5", 5000);
        assert.match(a, /^m=audio 5000 RTP\/AVP 0 101\r$/m);
        assert.match(a, /^a=rtpmap:0 PCMU\/8000\r$/m);
        assert.match(a, /^c=IN IP4 192\.0\.2\.5\r$/m);
        // without G.711 the echo takes the offer's first codec: it sends back what it gets
        assert.match(echoAnswer("m=audio 1 RTP/AVP 111\r\na=rtpmap:111 opus/48000/2\r\n", "h", 2), /^m=audio 2 RTP\/AVP 111\r\na=rtpmap:111 opus\/48000\/2\r$/m);
        assert.match(plainOffer("192.0.2.5", 6000), /^m=audio 6000 RTP\/AVP 0 8 101\r$/m);
    });
});
