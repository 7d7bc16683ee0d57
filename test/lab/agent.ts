// A client on the lab's internet: browsers (SIP over WSS, or WS), phones
// (SIP over UDP), a TURN client and a REGISTER load generator, driven by the
// lab tests and the bench. A test process cannot enter a network namespace,
// so Agent.start() runs this file as a script inside the lab's internet
// namespace; requests and answers are JSON lines on stdin/stdout, and the
// script reports unsolicited events (a browser's connection closed, it
// re-registered, a call arrived) as JSON lines too. Reuses the SIP UA of the
// OpenSIPS tests (test/opensips/sip-ua.ts).
import { ChildProcessWithoutNullStreams, spawn } from "child_process";
import * as path from "path";
import * as readline from "readline";
import type WebSocket from "ws";
import { SipMessage, UdpTransport, UserAgent, WsTransport, Dialog, hdr, plainSdp, webrtcSdp } from "../opensips/sip-ua";
import { turnProbe, TurnProbePlan } from "../support/stun";

export interface Endpoint {
    readonly name: string;
    readonly user: string;
    readonly password: string;
    readonly domain: string;
    readonly localAddress: string;
}

export type Request =
    | ({ op: "wss"; url: string; ca: string; reconnect?: boolean } & Endpoint)
    | ({ op: "udp"; proxyIp: string; proxyPort: number; localPort?: number } & Endpoint)
    | { op: "register"; name: string; expires?: number }
    | { op: "call"; from: string; toUser: string; sdp: "webrtc" | "plain"; mediaIp: string; mediaPort: number }
    | { op: "answer"; name: string; sdp: "webrtc" | "plain"; mediaIp: string; mediaPort: number }
    | { op: "bye"; dialog: string }
    | { op: "turn"; plan: TurnProbePlan }
    | { op: "regload"; users: readonly { user: string; password: string }[]; domain: string; proxyIp: string; proxyPort: number; localAddress: string; registrations: number; concurrency: number }
    | { op: "close"; name: string };

export interface AgentEvent {
    readonly event: string;
    readonly name?: string;
    readonly at: number;
    readonly [k: string]: unknown;
}

// ---------------------------------------------------------------- the script side

interface Client {
    ua: UserAgent;
    ep: Endpoint & { url?: string; ca?: string };
    reconnect: boolean;
    closing: boolean;
    /** the INVITE answered last by "answer" */
    answered?: SipMessage;
}

const clients = new Map<string, Client>();
const dialogs = new Map<string, { ua: UserAgent; d: Dialog }>();
const emit = (o: object) => process.stdout.write(`${JSON.stringify(o)}\n`);
const sdpOf = (kind: "webrtc" | "plain", ip: string, port: number, answer: boolean) => (kind === "webrtc" ? webrtcSdp(ip, port, answer ? "active" : "actpass") : plainSdp(ip, port));

async function openWs(ep: Client["ep"]): Promise<WsTransport> {
    return WsTransport.open(ep.url!, { ca: ep.ca!, servername: ep.domain, localAddress: ep.localAddress, origin: `https://${ep.domain}` });
}

/** The ws socket under a WsTransport (sip-ua keeps it private; the agent watches it for close and pings). */
const socketOf = (t: WsTransport) => (t as unknown as { ws: WebSocket }).ws;

/** Keep a browser's connection checked (WebSocket ping every 500 ms, 1.5 s to answer) and, when it drops, reconnect and re-register. */
function watch(name: string, t: WsTransport): void {
    const ws = socketOf(t);
    let lastPong = Date.now();
    ws.on("pong", () => (lastPong = Date.now()));
    const timer = setInterval(() => {
        if (Date.now() - lastPong > 1500) return ws.terminate();
        try {
            ws.ping();
        } catch {
            /* closing */
        }
    }, 500);
    ws.once("close", () => {
        clearInterval(timer);
        const c = clients.get(name);
        if (!c || c.closing || c.ua.t !== t) return;
        const closedAt = Date.now();
        emit({ event: "closed", name, at: closedAt });
        if (!c.reconnect) return;
        void (async () => {
            const deadline = Date.now() + 60_000;
            for (let attempt = 1; Date.now() < deadline && !c.closing; attempt++) {
                try {
                    const nt = await openWs(c.ep);
                    c.ua = new UserAgent(c.ep.user, c.ep.password, c.ep.domain, nt);
                    watch(name, nt);
                    const r = await c.ua.register();
                    emit({ event: "reregistered", name, at: Date.now(), closedAt, attempt, statuses: r.statuses });
                    return;
                } catch {
                    await new Promise((res) => setTimeout(res, 200));
                }
            }
            emit({ event: "gave-up", name, at: Date.now() });
        })();
    });
}

async function handle(req: Request): Promise<unknown> {
    switch (req.op) {
        case "wss": {
            const t = await openWs(req);
            clients.set(req.name, { ua: new UserAgent(req.user, req.password, req.domain, t), ep: req, reconnect: !!req.reconnect, closing: false });
            watch(req.name, t);
            return {};
        }
        case "udp": {
            const t = await UdpTransport.open(req.localAddress, req.proxyIp, req.proxyPort, req.localPort ?? 0);
            clients.set(req.name, { ua: new UserAgent(req.user, req.password, req.domain, t), ep: req, reconnect: false, closing: false });
            return { contact: t.contactHostPort };
        }
        case "register": {
            const r = await client(req.name).ua.register({ expires: req.expires });
            return { statuses: r.statuses, contact: hdr(r.final, "Contact") ?? null };
        }
        case "call": {
            const c = client(req.from);
            const r = await c.ua.invite(`sip:${req.toUser}@${c.ep.domain}`, sdpOf(req.sdp, req.mediaIp, req.mediaPort, false));
            let dialog: string | null = null;
            if (r.dialog) {
                dialog = r.dialog.callId;
                dialogs.set(dialog, { ua: c.ua, d: r.dialog });
            }
            return { statuses: r.statuses, final: r.final.status, answer: r.final.body, dialog };
        }
        case "answer": {
            // arm: the next INVITE is answered; its SDP arrives as an "invite" event
            const c = client(req.name);
            void (async () => {
                const inv = await c.ua.answerNextCall(sdpOf(req.sdp, req.mediaIp, req.mediaPort, true));
                c.answered = inv;
                emit({ event: "invite", name: req.name, at: Date.now(), sdp: inv.body, from: hdr(inv, "From") });
                // the caller hangs up: answer its BYE
                await c.ua.answerBye(inv);
                emit({ event: "bye", name: req.name, at: Date.now() });
            })().catch((e) => emit({ event: "answer-failed", name: req.name, at: Date.now(), error: (e as Error).message }));
            return {};
        }
        case "bye": {
            const d = dialogs.get(req.dialog);
            if (!d) throw new Error(`no dialog ${req.dialog}`);
            dialogs.delete(req.dialog);
            return { status: (await d.ua.bye(d.d)).status };
        }
        case "turn":
            return turnProbe(req.plan);
        case "regload":
            return regload(req);
        case "close": {
            const c = clients.get(req.name);
            if (c) {
                c.closing = true;
                c.ua.t.close();
                clients.delete(req.name);
            }
            return {};
        }
    }
}

function client(name: string): Client {
    const c = clients.get(name);
    if (!c) throw new Error(`no client ${name}`);
    return c;
}

/**
 * REGISTER load: `concurrency` UDP phones spread over `users` (each phone a
 * contact of its user: keep it within the registrar's max_contacts), each
 * registering (challenge + answer) in a loop until `registrations` are done.
 */
async function regload(req: Extract<Request, { op: "regload" }>): Promise<{ ok: number; failed: number; seconds: number; failures: string[] }> {
    const uas = await Promise.all(
        Array.from({ length: req.concurrency }, async (_, i) => {
            const u = req.users[i % req.users.length];
            return new UserAgent(u.user, u.password, req.domain, await UdpTransport.open(req.localAddress, req.proxyIp, req.proxyPort));
        }),
    );
    let next = 0;
    let ok = 0;
    const failures: string[] = [];
    const t0 = Date.now();
    await Promise.all(
        uas.map(async (ua) => {
            while (next < req.registrations) {
                next++;
                try {
                    const r = await ua.register({ expires: 60 });
                    if (r.final.status === 200) ok++;
                    else failures.push(r.statuses.join(","));
                } catch (e) {
                    failures.push((e as Error).message.slice(0, 120));
                }
            }
        }),
    );
    const seconds = (Date.now() - t0) / 1000;
    for (const ua of uas) ua.t.close();
    return { ok, failed: failures.length, seconds, failures: failures.slice(0, 5) };
}

async function main(): Promise<void> {
    const rl = readline.createInterface({ input: process.stdin });
    for await (const line of rl) {
        if (!line.trim()) continue;
        const { id, ...req } = JSON.parse(line) as { id: number } & Request;
        handle(req as Request).then(
            (result) => emit({ id, ok: true, result }),
            (e) => emit({ id, ok: false, error: (e as Error).message }),
        );
    }
    process.exit(0);
}

// ---------------------------------------------------------------- the test side

/** The agent process inside a namespace, with request/answer and event waiting (all bounded). */
export class Agent {
    private nextId = 1;
    private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
    readonly events: AgentEvent[] = [];
    private stderr = "";

    private constructor(private readonly child: ChildProcessWithoutNullStreams) {
        readline.createInterface({ input: child.stdout }).on("line", (line) => {
            const m = JSON.parse(line) as { id?: number; ok?: boolean; result?: unknown; error?: string } & AgentEvent;
            if (m.id !== undefined) {
                const p = this.pending.get(m.id);
                this.pending.delete(m.id);
                if (m.ok) p?.resolve(m.result);
                else p?.reject(new Error(m.error));
            } else this.events.push(m);
        });
        child.stderr.on("data", (d) => (this.stderr += d.toString()));
        child.on("exit", () => {
            for (const p of this.pending.values()) p.reject(new Error(`the lab agent exited: ${this.stderr.slice(-2000)}`));
            this.pending.clear();
        });
    }

    static start(netns: string): Agent {
        const repo = path.resolve(__dirname, "..", "..");
        const child = spawn("nsenter", [`--net=/run/netns/${netns}`, "--", process.execPath, "--import", "tsx", __filename], { cwd: repo, stdio: ["pipe", "pipe", "pipe"] });
        return new Agent(child);
    }

    request<T = Record<string, unknown>>(req: Request, timeoutMs = 30_000): Promise<T> {
        const id = this.nextId++;
        return new Promise<T>((resolve, reject) => {
            const t = setTimeout(() => {
                this.pending.delete(id);
                reject(new Error(`lab agent: no answer to ${req.op} within ${timeoutMs} ms`));
            }, timeoutMs);
            this.pending.set(id, {
                resolve: (v) => {
                    clearTimeout(t);
                    resolve(v as T);
                },
                reject: (e) => {
                    clearTimeout(t);
                    reject(e);
                },
            });
            this.child.stdin.write(`${JSON.stringify({ id, ...req })}\n`);
        });
    }

    /** The first event (after index `from`) that matches, bounded. */
    async waitEvent(pred: (e: AgentEvent) => boolean, what: string, timeoutMs = 30_000, from = 0): Promise<AgentEvent> {
        const deadline = Date.now() + timeoutMs;
        for (;;) {
            const e = this.events.slice(from).find(pred);
            if (e) return e;
            if (Date.now() > deadline) throw new Error(`lab agent: no ${what} within ${timeoutMs} ms; events: ${JSON.stringify(this.events.slice(from))}`);
            await new Promise((r) => setTimeout(r, 50));
        }
    }

    stop(): void {
        this.child.stdin.end();
        this.child.kill("SIGKILL");
    }
}

if (require.main === module) {
    main().catch((e) => {
        process.stderr.write(`${(e as Error).stack ?? e}\n`);
        process.exit(1);
    });
}
