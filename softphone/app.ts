// The lab's softphone: JsSIP over the gateway's WSS socket, one call at a
// time, with what a person (or a test) needs to see that a call works: the
// registration and call state, ICE/DTLS state, packet counters, audio levels.
// Bundled with JsSIP by softphone/build.ts; state is also exposed on
// window.softphone for the browser tests.
import * as JsSIP from "jssip";
import type { RTCSession } from "jssip/lib/RTCSession";
import type { RTCSessionEvent } from "jssip/lib/UA";
import {
    CallState,
    MediaCounters,
    PageConfig,
    PageState,
    RegState,
    Settings,
    callEndMessage,
    connectTimeoutMessage,
    mediaCounters,
    registrationFailureMessage,
    resolveSettings,
    settingsProblems,
    sipTarget,
    StatLike,
} from "./page-logic";

const $ = <T extends HTMLElement>(id: string) => {
    const el = document.getElementById(id);
    if (!el) throw new Error(`page has no #${id}`);
    return el as T;
};

const ui = {
    wss: $<HTMLInputElement>("wss"),
    domain: $<HTMLInputElement>("domain"),
    user: $<HTMLInputElement>("user"),
    password: $<HTMLInputElement>("password"),
    register: $<HTMLButtonElement>("register"),
    unregister: $<HTMLButtonElement>("unregister"),
    regState: $("reg-state"),
    regMessage: $("reg-message"),
    number: $<HTMLInputElement>("number"),
    numbers: $("numbers"),
    call: $<HTMLButtonElement>("call"),
    answer: $<HTMLButtonElement>("answer"),
    hangup: $<HTMLButtonElement>("hangup"),
    autoAnswer: $<HTMLInputElement>("autoanswer"),
    callState: $("call-state"),
    peer: $("peer"),
    callMessage: $("call-message"),
    iceState: $("ice-state"),
    dtlsState: $("dtls-state"),
    relay: $("relay"),
    sent: $("packets-sent"),
    received: $("packets-received"),
    setupTime: $("setup-time"),
    levelIn: $<HTMLMeterElement>("level-in"),
    levelOut: $<HTMLMeterElement>("level-out"),
    audio: $<HTMLAudioElement>("remote-audio"),
};

const state: PageState = { registration: "unregistered", registrationMessage: "", call: "idle", callMessage: "", times: {}, connectAttempts: 0, uaRunning: false, calls: 0 };
let settings: Settings;
let ua: JsSIP.UA | undefined;
let session: RTCSession | undefined;
let connectTimer: number | undefined;
let statsTimer: number | undefined;

const REG_LABEL: Record<RegState, string> = { unregistered: "not registered", connecting: "connecting…", registered: "registered", failed: "failed" };

function render(): void {
    ui.regState.textContent = REG_LABEL[state.registration];
    ui.regState.dataset.state = state.registration;
    ui.regMessage.textContent = state.registrationMessage;
    ui.regMessage.classList.toggle("error", state.registration === "failed");
    ui.callState.textContent = state.call;
    ui.callState.dataset.state = state.call;
    ui.peer.textContent = state.peer ? `${state.direction === "incoming" ? "from" : "to"} ${state.peer}` : "";
    ui.callMessage.textContent = state.callMessage;
    ui.callMessage.classList.toggle("error", state.call === "failed");
    const busy = !!session && !["ended", "failed", "idle"].includes(state.call);
    ui.register.disabled = state.uaRunning;
    ui.unregister.disabled = !state.uaRunning;
    ui.call.disabled = state.registration !== "registered" || busy;
    ui.answer.disabled = state.call !== "incoming";
    ui.hangup.disabled = !busy;
    const c = state.counters;
    ui.iceState.textContent = c?.iceState ?? "-";
    ui.dtlsState.textContent = c?.dtlsState ?? "-";
    ui.relay.textContent = c?.remote || "-";
    ui.sent.textContent = String(c?.packetsSent ?? 0);
    ui.received.textContent = String(c?.packetsReceived ?? 0);
    ui.levelIn.value = c?.levelIn ?? 0;
    ui.levelOut.value = c?.levelOut ?? 0;
    const t = state.times;
    ui.setupTime.textContent = t.invite !== undefined && t.dtlsConnected !== undefined ? `${Math.round(t.dtlsConnected - t.invite)} ms` : "-";
}

function setReg(s: RegState, message = state.registrationMessage): void {
    state.registration = s;
    state.registrationMessage = message;
    render();
}

function setCall(s: CallState, message = state.callMessage): void {
    state.call = s;
    state.callMessage = message;
    render();
}

function pcConfig(): RTCConfiguration {
    return {
        iceServers: settings.iceServers.map((s) => ({ urls: typeof s.urls === "string" ? s.urls : [...s.urls], username: s.username, credential: s.credential })),
        // rtpengine does rtcp-mux toward browsers (rtcp-mux-require); max-bundle fails: rtpengine 10.5 drops a=group:BUNDLE (DOMAIN-FACTS 11)
        rtcpMuxPolicy: "require",
        bundlePolicy: "balanced",
    };
}

const mediaConstraints = { audio: true, video: false };

function stopUa(): void {
    if (connectTimer !== undefined) window.clearTimeout(connectTimer);
    connectTimer = undefined;
    if (ua) {
        const old = ua;
        ua = undefined;
        old.removeAllListeners();
        old.stop();
    }
    state.uaRunning = false;
}

function startUa(): void {
    const current = { wssUrl: ui.wss.value.trim(), domain: ui.domain.value.trim(), user: ui.user.value.trim(), password: ui.password.value };
    const problems = settingsProblems(current);
    if (problems.length) {
        setReg("failed", `Cannot register: ${problems.join("; ")}.`);
        return;
    }
    stopUa();
    state.connectAttempts = 0;
    const socket = new JsSIP.WebSocketInterface(current.wssUrl);
    ua = new JsSIP.UA({
        sockets: [socket],
        uri: `sip:${current.user}@${current.domain}`,
        password: current.password,
        register: true,
        // the proxy and the lab's test endpoint do not refresh sessions with UPDATE (DOMAIN-FACTS 11)
        session_timers: false,
        user_agent: "IF.bus lab softphone (JsSIP)",
    });
    const me = ua;
    me.on("connecting", () => {
        state.connectAttempts++;
        if (state.registration !== "registered") setReg("connecting", `Connecting to ${current.wssUrl} (attempt ${state.connectAttempts})…`);
    });
    me.on("connected", () => {
        if (connectTimer !== undefined) window.clearTimeout(connectTimer);
        connectTimer = undefined;
        setReg("connecting", "Connected; registering…");
    });
    me.on("disconnected", () => {
        if (ua !== me) return;
        if (state.registration === "registered") setReg("connecting", "Connection lost; reconnecting…");
    });
    me.on("registered", () => setReg("registered", `Registered as ${current.user}@${current.domain}.`));
    me.on("unregistered", () => {
        if (ua === me && state.registration === "registered") setReg("unregistered", "Unregistered.");
    });
    me.on("registrationFailed", (e) => {
        const response = e.response as { status_code?: number; reason_phrase?: string } | null;
        state.lastStatus = response?.status_code;
        // JsSIP would keep its connection and retry later: stop, so a wrong password is one clear failure
        stopUa();
        setReg("failed", registrationFailureMessage(String(e.cause ?? ""), response?.status_code, response?.reason_phrase));
    });
    me.on("newRTCSession", (e: RTCSessionEvent) => {
        const req = e.request as { body?: string; call_id?: string };
        onSession(e.session as RTCSession, e.originator === "remote" ? "incoming" : "outgoing", req.body, req.call_id);
    });
    // JsSIP reconnects for ever when the WebSocket never opens (untrusted certificate, wrong port): give up visibly
    connectTimer = window.setTimeout(() => {
        if (ua !== me || me.isConnected()) return;
        stopUa();
        setReg("failed", connectTimeoutMessage(current.wssUrl, settings.connectTimeoutMs));
    }, settings.connectTimeoutMs);
    state.uaRunning = true;
    setReg("connecting", `Connecting to ${current.wssUrl}…`);
    me.start();
}

function onSession(s: RTCSession, direction: "outgoing" | "incoming", body: string | undefined, callId: string | undefined): void {
    if (session && !["ended", "failed", "idle"].includes(state.call)) {
        // one call at a time: a second caller hears busy
        if (direction === "incoming") s.terminate({ status_code: 486, reason_phrase: "Busy Here" });
        return;
    }
    session = s;
    state.calls++;
    state.direction = direction;
    state.callId = callId;
    state.peer = s.remote_identity?.uri?.user ?? "";
    state.times = direction === "incoming" ? { invite: performance.now() } : {};
    state.remoteSdp = undefined;
    state.counters = undefined;
    state.lastStatus = undefined;
    const own = () => session === s;

    // JsSIP creates an outgoing call's RTCPeerConnection before announcing the session; incoming ones come later
    if (s.connection) watchPeerConnection(s, s.connection as RTCPeerConnection);
    else s.on("peerconnection", (e) => watchPeerConnection(s, e.peerconnection as RTCPeerConnection));
    s.on("sending", () => {
        if (own()) state.times.invite = performance.now();
    });
    s.on("progress", (e: unknown) => {
        if (!own() || direction !== "outgoing") return;
        const r = (e as { response?: { status_code?: number } }).response;
        if (r?.status_code === 180 || r?.status_code === 183) {
            state.times.ringing ??= performance.now();
            setCall("ringing", "Ringing…");
        }
    });
    s.on("accepted", (e: unknown) => {
        if (!own()) return;
        state.times.answered = performance.now();
        const r = (e as { response?: { status_code?: number; body?: string } }).response;
        if (r?.status_code) state.lastStatus = r.status_code;
        if (direction === "outgoing" && r?.body) state.remoteSdp = r.body;
        setCall("connecting", "Answered; connecting media…");
    });
    s.on("confirmed", () => {
        if (own() && state.call !== "connected") setCall("connecting", "Answered; connecting media…");
    });
    const end = (kind: "ended" | "failed") => (e: { originator: string; cause: string; message?: unknown }) => {
        if (!own()) return;
        state.times.ended = performance.now();
        const m = e.message as { status_code?: number; reason_phrase?: string } | undefined;
        if (m?.status_code) state.lastStatus = m.status_code;
        stopStats();
        void sampleStats(s);
        setCall(kind, callEndMessage(e.originator, e.cause, m?.status_code, m?.reason_phrase));
    };
    s.on("ended", end("ended"));
    s.on("failed", end("failed"));

    if (direction === "incoming") {
        state.remoteSdp = body;
        if (ui.autoAnswer.checked) {
            setCall("answering", `Incoming call from ${state.peer}; answering…`);
            answer();
        } else setCall("incoming", `Incoming call from ${state.peer}.`);
    } else setCall("calling", `Calling ${state.peer}…`);
}

function watchPeerConnection(s: RTCSession, pc: RTCPeerConnection): void {
    pc.addEventListener("track", (e) => {
        ui.audio.srcObject = e.streams[0] ?? new MediaStream([e.track]);
        void ui.audio.play().catch(() => undefined);
    });
    // connectionState "connected" = ICE connected and DTLS done (the state that deadlocked with DTLS=passive, DOMAIN-FACTS 9)
    pc.addEventListener("connectionstatechange", () => {
        if (session !== s) return;
        if (pc.connectionState === "connected" && state.times.dtlsConnected === undefined) {
            state.times.dtlsConnected = performance.now();
            setCall("connected", `In a call with ${state.peer}.`);
        } else if (pc.connectionState === "failed") setCall(state.call, "Media failed: ICE or DTLS did not connect.");
        void sampleStats(s);
    });
    startStats(s);
}

async function sampleStats(s: RTCSession): Promise<MediaCounters | undefined> {
    const pc = s.connection as RTCPeerConnection | undefined;
    if (!pc) return undefined;
    const reports: StatLike[] = [];
    (await pc.getStats()).forEach((r: StatLike) => reports.push(r));
    const c = mediaCounters(reports);
    if (session === s) {
        state.counters = c;
        render();
    }
    return c;
}

function startStats(s: RTCSession): void {
    stopStats();
    statsTimer = window.setInterval(() => void sampleStats(s), 250);
}

function stopStats(): void {
    if (statsTimer !== undefined) window.clearInterval(statsTimer);
    statsTimer = undefined;
}

function answer(): void {
    if (!session) return;
    session.answer({ mediaConstraints, pcConfig: pcConfig() });
}

function call(): void {
    if (!ua) return;
    const number = ui.number.value.trim();
    if (!number) {
        setCall("idle", "Type a number or user name to call.");
        return;
    }
    ua.call(sipTarget(number, ui.domain.value.trim()), { mediaConstraints, pcConfig: pcConfig(), rtcOfferConstraints: { offerToReceiveAudio: true } });
}

function showNumbers(): void {
    ui.numbers.replaceChildren(
        ...settings.numbers.map((n) => {
            const li = document.createElement("li");
            const b = document.createElement("button");
            b.type = "button";
            b.textContent = n.number;
            b.addEventListener("click", () => {
                ui.number.value = n.number;
            });
            li.append(b, ` ${n.what}`);
            return li;
        }),
    );
}

async function loadConfig(): Promise<PageConfig> {
    try {
        const r = await fetch("config.json", { cache: "no-store" });
        return r.ok ? ((await r.json()) as PageConfig) : {};
    } catch {
        return {};
    }
}

async function main(): Promise<void> {
    JsSIP.debug.disable();
    settings = resolveSettings(await loadConfig(), new URLSearchParams(location.search));
    ui.wss.value = settings.wssUrl;
    ui.domain.value = settings.domain;
    ui.user.value = settings.user;
    ui.password.value = settings.password;
    ui.autoAnswer.checked = settings.autoAnswer;
    showNumbers();
    ui.register.addEventListener("click", startUa);
    ui.unregister.addEventListener("click", () => {
        stopUa();
        setReg("unregistered", "Stopped.");
    });
    ui.call.addEventListener("click", call);
    ui.number.addEventListener("keydown", (e) => {
        if (e.key === "Enter" && !ui.call.disabled) call();
    });
    ui.answer.addEventListener("click", () => {
        setCall("answering", "Answering…");
        answer();
    });
    ui.hangup.addEventListener("click", () => session?.terminate());
    window.addEventListener("beforeunload", () => stopUa());
    render();
    document.body.dataset.ready = "1";
}

declare global {
    interface Window {
        softphone: { readonly state: PageState; readonly settings: () => Settings; sample(): Promise<MediaCounters | undefined>; localSdp(): string | undefined };
    }
}

window.softphone = {
    get state() {
        return state;
    },
    // the password stays in its field; tests and logs get the rest
    settings: () => ({ ...settings, password: settings.password ? "***" : "" }),
    sample: async () => (session ? sampleStats(session) : undefined),
    localSdp: () => (session?.connection as RTCPeerConnection | undefined)?.localDescription?.sdp,
};

void main();
