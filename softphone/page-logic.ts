// The softphone page's decisions that need no browser: settings from the
// lab's config.json and the URL, SIP targets, what a failure means to the
// person in front of the page, and packet counters out of getStats().
// Imported by app.ts (bundled for the browser) and by unit tests.

/** What the page server hands out at /config.json (the lab's values). */
export interface PageConfig {
    /** e.g. wss://10.40.1.10:443/ */
    readonly wssUrl?: string;
    /** SIP domain (the digest realm) */
    readonly domain?: string;
    readonly user?: string;
    readonly password?: string;
    readonly iceServers?: readonly RTCIceServerLike[];
    readonly autoAnswer?: boolean;
    /** give up connecting the WebSocket after this long (JsSIP itself retries forever) */
    readonly connectTimeoutMs?: number;
    /** numbers worth calling in this lab, shown under the dial field */
    readonly numbers?: readonly { readonly number: string; readonly what: string }[];
}

export interface RTCIceServerLike {
    readonly urls: string | readonly string[];
    readonly username?: string;
    readonly credential?: string;
}

export interface Settings {
    readonly wssUrl: string;
    readonly domain: string;
    readonly user: string;
    readonly password: string;
    readonly iceServers: readonly RTCIceServerLike[];
    readonly autoAnswer: boolean;
    readonly connectTimeoutMs: number;
    readonly numbers: readonly { readonly number: string; readonly what: string }[];
}

export const DEFAULT_CONNECT_TIMEOUT_MS = 10000;

/**
 * The lab's config, overridden by URL parameters (`?wss=&domain=&user=&password=&autoanswer=1&connect_timeout=ms`),
 * so a link can pre-fill another account or make the page answer by itself.
 */
export function resolveSettings(config: PageConfig, search: URLSearchParams): Settings {
    const flag = (v: string | null, dflt: boolean) => (v === null ? dflt : ["1", "true", "yes", "on"].includes(v.toLowerCase()));
    const timeout = Number(search.get("connect_timeout") ?? config.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS);
    return {
        wssUrl: search.get("wss") ?? config.wssUrl ?? "",
        domain: search.get("domain") ?? config.domain ?? "",
        user: search.get("user") ?? config.user ?? "",
        password: search.get("password") ?? config.password ?? "",
        iceServers: config.iceServers ?? [],
        autoAnswer: flag(search.get("autoanswer"), config.autoAnswer ?? false),
        connectTimeoutMs: Number.isFinite(timeout) && timeout > 0 ? timeout : DEFAULT_CONNECT_TIMEOUT_MS,
        numbers: config.numbers ?? [],
    };
}

/** Problems with the fields, before anything is sent. */
export function settingsProblems(s: Pick<Settings, "wssUrl" | "domain" | "user" | "password">): string[] {
    const out: string[] = [];
    if (!/^wss?:\/\/[^/\s]+/i.test(s.wssUrl)) out.push("the WebSocket URL must start with wss:// (or ws://)");
    if (!/^[A-Za-z0-9.-]+$/.test(s.domain)) out.push("the SIP domain is empty or not a host name");
    if (!/^[A-Za-z0-9._-]+$/.test(s.user)) out.push("the user name is empty or has characters SIP user names cannot have here");
    if (!s.password) out.push("the password is empty");
    return out;
}

/** A dialled number or name as a SIP URI in the user's domain; full URIs pass through. */
export function sipTarget(dialled: string, domain: string): string {
    const d = dialled.trim();
    if (/^sips?:/i.test(d)) return d;
    if (d.includes("@")) return `sip:${d}`;
    return `sip:${d.replace(/[\s()/-]/g, "")}@${domain}`;
}

// JsSIP's cause strings (JsSIP.C.causes); repeated here so this file needs no JsSIP import
const AUTHENTICATION_ERROR = "Authentication Error";
const REJECTED = "Rejected";
const CONNECTION_ERROR = "Connection Error";
const REQUEST_TIMEOUT = "Request Timeout";

/** What a registrationFailed event means, in words a person can act on. */
export function registrationFailureMessage(cause: string, status?: number, reason?: string): string {
    const sip = status ? ` (SIP ${status}${reason ? ` ${reason}` : ""})` : "";
    if (cause === AUTHENTICATION_ERROR || status === 401 || status === 407)
        return `Registration refused: wrong user name or password${sip}. Check the credentials and register again.`;
    if (cause === REJECTED || status === 403) return `Registration refused by the proxy${sip}: the user may not register this address.`;
    if (cause === CONNECTION_ERROR) return "Registration failed: the WebSocket connection broke.";
    if (cause === REQUEST_TIMEOUT) return "Registration failed: the proxy did not answer.";
    return `Registration failed: ${cause}${sip}.`;
}

/** Shown when the WebSocket never opened within the timeout. */
export function connectTimeoutMessage(wssUrl: string, ms: number): string {
    let page = "";
    try {
        const u = new URL(wssUrl);
        page = ` If the certificate is not trusted yet, open https://${u.host}/ in this browser once, accept it, and register again.`;
    } catch {
        /* an unparsable URL was already reported by settingsProblems */
    }
    return `No SIP WebSocket connection to ${wssUrl} within ${Math.round(ms / 1000)} s; stopped trying.${page}`;
}

/** Why a call did not start or ended, from JsSIP's failed/ended event. */
export function callEndMessage(originator: string, cause: string, status?: number, reason?: string): string {
    const sip = status ? ` (SIP ${status}${reason ? ` ${reason}` : ""})` : "";
    if (cause === "Terminated" || cause === "Bye") return originator === "local" ? "You hung up." : "The other side hung up.";
    if (cause === "Canceled") return originator === "local" ? "You cancelled the call." : "The caller gave up.";
    return `Call ended: ${cause}${sip}.`;
}

/** A stats report as getStats() returns it (only the fields used here). */
export interface StatLike {
    readonly type: string;
    readonly kind?: string;
    readonly mediaType?: string;
    readonly packetsSent?: number;
    readonly packetsReceived?: number;
    readonly packetsLost?: number;
    readonly audioLevel?: number;
    readonly dtlsState?: string;
    readonly iceState?: string;
    readonly selectedCandidatePairId?: string;
    readonly id: string;
    readonly state?: string;
    readonly remoteCandidateId?: string;
    readonly address?: string;
    readonly ip?: string;
    readonly port?: number;
}

export interface MediaCounters {
    readonly packetsSent: number;
    readonly packetsReceived: number;
    readonly packetsLost: number;
    /** 0..1, what is heard (inbound-rtp audioLevel) */
    readonly levelIn: number;
    /** 0..1, what the microphone gives (media-source audioLevel) */
    readonly levelOut: number;
    readonly dtlsState: string;
    readonly iceState: string;
    /** address:port of the relay the selected ICE pair talks to */
    readonly remote: string;
}

export function mediaCounters(reports: Iterable<StatLike>): MediaCounters {
    const all = [...reports];
    const audio = (r: StatLike) => (r.kind ?? r.mediaType) === "audio";
    const sum = (type: string, f: (r: StatLike) => number | undefined) => all.filter((r) => r.type === type && audio(r)).reduce((a, r) => a + (f(r) ?? 0), 0);
    const inbound = all.find((r) => r.type === "inbound-rtp" && audio(r));
    const source = all.find((r) => r.type === "media-source" && audio(r));
    const transport = all.find((r) => r.type === "transport");
    const pair = all.find((r) => r.type === "candidate-pair" && r.id === transport?.selectedCandidatePairId);
    const remote = all.find((r) => r.id === pair?.remoteCandidateId);
    return {
        packetsSent: sum("outbound-rtp", (r) => r.packetsSent),
        packetsReceived: sum("inbound-rtp", (r) => r.packetsReceived),
        packetsLost: sum("inbound-rtp", (r) => r.packetsLost),
        levelIn: inbound?.audioLevel ?? 0,
        levelOut: source?.audioLevel ?? 0,
        dtlsState: transport?.dtlsState ?? "new",
        iceState: transport?.iceState ?? "new",
        remote: remote ? `${remote.address ?? remote.ip}:${remote.port}` : "",
    };
}

/** Inbound over outbound packets between two samples (an echo returns what it gets). */
export function echoRatio(before: MediaCounters, after: MediaCounters): { sent: number; received: number; ratio: number } {
    const sent = after.packetsSent - before.packetsSent;
    const received = after.packetsReceived - before.packetsReceived;
    return { sent, received, ratio: sent > 0 ? received / sent : 0 };
}

// ---------------------------------------------------------------- what the page shows (window.softphone.state)

export type RegState = "unregistered" | "connecting" | "registered" | "failed";
export type CallState = "idle" | "calling" | "ringing" | "incoming" | "answering" | "connecting" | "connected" | "ended" | "failed";

/** Milliseconds (performance.now()) of each step of the current or last call. */
export interface CallTimes {
    invite?: number;
    ringing?: number;
    answered?: number;
    dtlsConnected?: number;
    ended?: number;
}

export interface PageState {
    registration: RegState;
    registrationMessage: string;
    call: CallState;
    callMessage: string;
    direction?: "outgoing" | "incoming";
    /** SIP Call-ID of the current or last call */
    callId?: string;
    peer?: string;
    /** SIP status of the last final response to our INVITE or REGISTER */
    lastStatus?: number;
    times: CallTimes;
    /** the SDP the other side sent (offer or answer) */
    remoteSdp?: string;
    /** WebSocket connection attempts since the last Register click */
    connectAttempts: number;
    uaRunning: boolean;
    counters?: MediaCounters;
    calls: number;
}
