// sipp as a SIP phone on the lab's internet: register with digest auth over
// UDP, answer one call and send RTP (rtp_stream), or place one call. Scenario
// files, the credentials (an injection file, never argv) and a silent G.711
// WAV are written to a private work directory; every message sipp sent or
// received goes to a trace file the tests read.
import * as fs from "fs";
import * as path from "path";
import { spawn } from "child_process";

const HEAD = `<?xml version="1.0" encoding="ISO-8859-1" ?>\n<!DOCTYPE scenario SYSTEM "sipp.dtd">`;

const REGISTER = `${HEAD}
<scenario name="register">
  <send retrans="500"><![CDATA[
REGISTER sip:[field2] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
From: <sip:[field0]@[field2]>;tag=[pid]reg[call_number]
To: <sip:[field0]@[field2]>
Call-ID: [call_id]
CSeq: 1 REGISTER
Contact: <sip:[field0]@[local_ip]:[local_port]>
Max-Forwards: 70
Expires: 3600
Content-Length: 0

]]></send>
  <recv response="401" auth="true"/>
  <send retrans="500"><![CDATA[
REGISTER sip:[field2] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
From: <sip:[field0]@[field2]>;tag=[pid]reg[call_number]
To: <sip:[field0]@[field2]>
Call-ID: [call_id]
CSeq: 2 REGISTER
Contact: <sip:[field0]@[local_ip]:[local_port]>
[field1]
Max-Forwards: 70
Expires: 3600
Content-Length: 0

]]></send>
  <recv response="200"/>
</scenario>
`;

const SDP = `v=0
o=sipp 53655765 2353687637 IN IP[local_ip_type] [media_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=sendrecv`;

const answer = (wav: string) => `${HEAD}
<scenario name="answer one call, send RTP">
  <recv request="INVITE"/>
  <send><![CDATA[
SIP/2.0 180 Ringing
[last_Via:]
[last_From:]
[last_To:];tag=[pid]uas[call_number]
[last_Call-ID:]
[last_CSeq:]
[last_Record-Route:]
Contact: <sip:[field0]@[local_ip]:[local_port]>
Content-Length: 0

]]></send>
  <send retrans="500"><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]uas[call_number]
[last_Call-ID:]
[last_CSeq:]
[last_Record-Route:]
Contact: <sip:[field0]@[local_ip]:[local_port]>
Content-Type: application/sdp
Content-Length: [len]

${SDP}
]]></send>
  <recv request="ACK"/>
  <nop><action><exec rtp_stream="${wav},-1,0"/></action></nop>
  <recv request="BYE"/>
  <nop><action><exec rtp_stream="pause"/></action></nop>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
</scenario>
`;

const call = (wav: string) => `${HEAD}
<scenario name="place one call, send RTP, hang up">
  <send retrans="500"><![CDATA[
INVITE sip:[service]@[field2] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
From: <sip:[field0]@[field2]>;tag=[pid]uac[call_number]
To: <sip:[service]@[field2]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:[field0]@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

${SDP}
]]></send>
  <recv response="100" optional="true"/>
  <recv response="407" auth="true"/>
  <send><![CDATA[
ACK sip:[service]@[field2] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
From: <sip:[field0]@[field2]>;tag=[pid]uac[call_number]
To: <sip:[service]@[field2]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 1 ACK
Max-Forwards: 70
Content-Length: 0

]]></send>
  <send retrans="500"><![CDATA[
INVITE sip:[service]@[field2] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
From: <sip:[field0]@[field2]>;tag=[pid]uac[call_number]
To: <sip:[service]@[field2]>
Call-ID: [call_id]
CSeq: 2 INVITE
Contact: <sip:[field0]@[local_ip]:[local_port]>
[field1]
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

${SDP}
]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="200" rrs="true"/>
  <send><![CDATA[
ACK [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
[routes]
From: <sip:[field0]@[field2]>;tag=[pid]uac[call_number]
To: <sip:[service]@[field2]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 2 ACK
Max-Forwards: 70
Content-Length: 0

]]></send>
  <nop><action><exec rtp_stream="${wav},-1,0"/></action></nop>
  <pause milliseconds="1500"/>
  <nop><action><exec rtp_stream="pause"/></action></nop>
  <send retrans="500"><![CDATA[
BYE [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
[routes]
From: <sip:[field0]@[field2]>;tag=[pid]uac[call_number]
To: <sip:[service]@[field2]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 3 BYE
Max-Forwards: 70
Content-Length: 0

]]></send>
  <recv response="200"/>
</scenario>
`;

/** One second of G.711 u-law silence in a WAV container (sipp's rtp_stream reads the data chunk). */
function silenceWav(): Buffer {
    const data = Buffer.alloc(8000, 0xff);
    const h = Buffer.alloc(44);
    h.write("RIFF", 0);
    h.writeUInt32LE(36 + data.length, 4);
    h.write("WAVE", 8);
    h.write("fmt ", 12);
    h.writeUInt32LE(16, 16);
    h.writeUInt16LE(7, 20); // WAVE_FORMAT_MULAW
    h.writeUInt16LE(1, 22);
    h.writeUInt32LE(8000, 24);
    h.writeUInt32LE(8000, 28);
    h.writeUInt16LE(1, 32);
    h.writeUInt16LE(8, 34);
    h.write("data", 36);
    h.writeUInt32LE(data.length, 40);
    return Buffer.concat([h, data]);
}

export interface SippResult {
    readonly code: number;
    /** every message sipp sent or received, as traced */
    readonly messages: string;
    readonly errors: string;
}

export interface SippPhone {
    readonly user: string;
    readonly password: string;
    readonly domain: string;
    /** address and SIP port sipp binds (its Contact) */
    readonly ip: string;
    readonly port: number;
    /** the RTP port it advertises */
    readonly mediaPort: number;
}

/** sipp runs in `netns`; `run` resolves when it exits (bounded), `done` is the same promise for background use. */
export class Sipp {
    private constructor(
        private readonly dir: string,
        private readonly netns: string,
    ) {}

    static create(workDir: string, netns: string): Sipp {
        fs.mkdirSync(workDir, { recursive: true, mode: 0o700 });
        fs.writeFileSync(path.join(workDir, "silence.wav"), silenceWav());
        fs.writeFileSync(path.join(workDir, "register.xml"), REGISTER);
        fs.writeFileSync(path.join(workDir, "answer.xml"), answer(path.join(workDir, "silence.wav")));
        fs.writeFileSync(path.join(workDir, "call.xml"), call(path.join(workDir, "silence.wav")));
        return new Sipp(workDir, netns);
    }

    private run(name: string, scenario: string, phone: SippPhone, target: string, extra: string[], timeoutMs: number): Promise<SippResult> {
        const inf = path.join(this.dir, `${name}.csv`);
        // an injection field may hold the whole [authentication] keyword (sipp docs), so the password never reaches argv
        fs.writeFileSync(inf, `SEQUENTIAL\n${phone.user};[authentication username=${phone.user} password=${phone.password}];${phone.domain};\n`, { mode: 0o600 });
        const msgs = path.join(this.dir, `${name}.messages.log`);
        const errs = path.join(this.dir, `${name}.errors.log`);
        for (const f of [msgs, errs]) fs.rmSync(f, { force: true });
        const args = [
            `--net=/run/netns/${this.netns}`, "--", "sipp", "-sf", path.join(this.dir, scenario), "-inf", inf, "-i", phone.ip, "-p", String(phone.port),
            "-mi", phone.ip, "-mp", String(phone.mediaPort), "-m", "1", "-nostdin", "-trace_msg", "-message_file", msgs, "-trace_err", "-error_file", errs,
            "-timeout", `${Math.ceil(timeoutMs / 1000)}s`, "-timeout_error", ...extra, target,
        ];
        return new Promise((resolve) => {
            const p = spawn("nsenter", args, { stdio: ["ignore", "ignore", "pipe"], cwd: this.dir });
            let stderr = "";
            p.stderr.on("data", (d) => (stderr += d.toString()));
            const t = setTimeout(() => p.kill("SIGKILL"), timeoutMs + 5000);
            p.on("close", (code) => {
                clearTimeout(t);
                const read = (f: string) => (fs.existsSync(f) ? fs.readFileSync(f, "utf8") : "");
                resolve({ code: code ?? 1, messages: read(msgs), errors: `${read(errs)}${stderr}` });
            });
        });
    }

    register(phone: SippPhone, proxy: string, timeoutMs = 15_000): Promise<SippResult> {
        return this.run("register", "register.xml", phone, proxy, [], timeoutMs);
    }

    /** Answer the next call (sending RTP from the answer until the BYE); start it before the call is placed. */
    answer(phone: SippPhone, proxy: string, timeoutMs = 30_000): Promise<SippResult> {
        return this.run("answer", "answer.xml", phone, proxy, [], timeoutMs);
    }

    call(phone: SippPhone, proxy: string, callee: string, timeoutMs = 30_000): Promise<SippResult> {
        return this.run("call", "call.xml", phone, proxy, ["-s", callee], timeoutMs);
    }
}

/** The messages of a sipp trace whose first line matches `startLine` (received or sent). */
export function tracedMessages(trace: string, startLine: RegExp): string[] {
    return trace
        .split(/^-{10,}.*$/m)
        .map((block) => block.replace(/^\s*(UDP|TCP) message (received|sent)[^\n]*\n/m, "").replace(/^\s+/, ""))
        .filter((m) => startLine.test(m.split(/\r?\n/)[0] ?? ""));
}

/** The SDP body of a traced message. */
export function sdpOf(message: string): string {
    const i = message.search(/\r?\n\r?\n/);
    return i < 0 ? "" : message.slice(i).trim();
}
