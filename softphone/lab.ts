// The softphone pieces a lab runs next to its gateway: the page server and the
// test endpoint, started detached inside one of the lab's network namespaces
// (where a browser can reach the proxy and the relay), with pid files so a
// later `lab down` can stop them. Used by the lab CLI and by the browser tests,
// so the tests prove the same start-up the lab does.
import { spawn } from "child_process";
import * as fs from "fs";
import * as path from "path";
import type { GatewayModel } from "../components/model";
import { PORTS } from "../components/ports";
import type { GatewaySpec } from "../components/spec";
import type { EndpointConfig } from "./endpoint";
import type { PageConfig } from "./page-logic";
import { ensureSoftphoneBuilt } from "./build";

/** The lab's test users: subscribers the endpoint registers as (added to the lab's spec). */
export const LAB_TEST_USERS = { echo: "echo", callback: "callme" } as const;

/** How long the echo user rings before answering (an instant answer hides the DTLS race, DOMAIN-FACTS 9). */
export const ECHO_RING_MS = 1500;
export const CALLBACK_DELAY_MS = 2000;

/** The spec with the test users added as subscribers (they need passwords like any user). */
export function withSoftphoneUsers(spec: GatewaySpec): GatewaySpec {
    return { ...spec, subscribers: [...new Set([...spec.subscribers, LAB_TEST_USERS.echo, LAB_TEST_USERS.callback])] };
}

export interface SoftphoneExtrasOptions {
    /** /run/netns/<name> of the namespace to run in */
    readonly netnsPath: string;
    /** a private directory for configs (they hold passwords), logs and pid files */
    readonly runDir: string;
    readonly model: GatewayModel;
    /** the user the page logs in as (default: the spec's first subscriber that is not a test user) */
    readonly browserUser?: string;
    /** the address of the proxy the browser and the endpoint talk to */
    readonly proxyIp: string;
    /** an address of the namespace for the page server */
    readonly pageIp: string;
    /** an address of the namespace for the endpoint (may equal pageIp) */
    readonly endpointIp: string;
    /** TURN servers for the page, if the lab runs one */
    readonly iceServers?: PageConfig["iceServers"];
    readonly ringMs?: number;
    readonly callbackDelayMs?: number;
    /** bound on each start-up (default 30 s) */
    readonly timeoutMs?: number;
}

export interface SoftphoneExtras {
    readonly pageUrl: string;
    readonly wssUrl: string;
    readonly browserUser: string;
    /** lines for the lab summary (no secrets) */
    readonly summary: readonly string[];
}

const REPO = path.resolve(__dirname, "..");
const PROCESSES = ["softphone-page", "softphone-endpoint"] as const;

function writePrivate(file: string, text: string): string {
    fs.writeFileSync(file, text, { mode: 0o600 });
    fs.chmodSync(file, 0o600);
    return file;
}

function spawnDetached(netnsPath: string, runDir: string, name: string, args: readonly string[]): number {
    const log = fs.openSync(path.join(runDir, `${name}.log`), "a", 0o600);
    try {
        // nsenter without --fork execs node: the pid written is the service's own
        const child = spawn("nsenter", [`--net=${netnsPath}`, "--", process.execPath, "--import", "tsx", ...args], { cwd: REPO, detached: true, stdio: ["ignore", log, log] });
        if (child.pid === undefined) throw new Error(`could not start ${name}`);
        child.unref();
        fs.writeFileSync(path.join(runDir, `${name}.pid`), `${child.pid}\n`);
        return child.pid;
    } finally {
        fs.closeSync(log);
    }
}

const alive = (pid: number) => {
    try {
        process.kill(pid, 0);
        return true;
    } catch {
        return false;
    }
};

async function waitForLine(runDir: string, name: string, pid: number, pattern: RegExp, timeoutMs: number): Promise<void> {
    const file = path.join(runDir, `${name}.log`);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
        const text = fs.existsSync(file) ? fs.readFileSync(file, "utf8") : "";
        if (pattern.test(text)) return;
        if (!alive(pid)) throw new Error(`${name} exited during start-up:\n${text.split("\n").slice(-15).join("\n")}`);
        if (Date.now() > deadline) throw new Error(`${name} not ready after ${timeoutMs} ms:\n${text.split("\n").slice(-15).join("\n")}`);
        await new Promise((r) => setTimeout(r, 100));
    }
}

/** Start the page server and the endpoint; they keep running after this process exits. */
export async function startSoftphoneExtras(o: SoftphoneExtrasOptions): Promise<SoftphoneExtras> {
    const spec = o.model.spec;
    const passwords = o.model.secrets.subscriberPasswords;
    const testUsers: readonly string[] = Object.values(LAB_TEST_USERS);
    const browserUser = o.browserUser ?? spec.subscribers.find((u) => !testUsers.includes(u));
    if (!browserUser) throw new Error("the lab's spec has no subscriber for the browser besides the test users");
    for (const u of [browserUser, ...testUsers])
        if (!passwords[u]) throw new Error(`subscriber ${u} is missing from the lab's spec: build it with withSoftphoneUsers(spec)`);
    const timeoutMs = o.timeoutMs ?? 30000;
    fs.mkdirSync(o.runDir, { recursive: true, mode: 0o700 });
    await ensureSoftphoneBuilt();

    const wssUrl = `wss://${o.proxyIp}:${PORTS.wss}/`;
    const ringMs = o.ringMs ?? ECHO_RING_MS;
    const callbackDelayMs = o.callbackDelayMs ?? CALLBACK_DELAY_MS;
    const page: PageConfig = {
        wssUrl,
        domain: spec.sipDomain,
        user: browserUser,
        password: passwords[browserUser],
        iceServers: o.iceServers ?? [],
        numbers: [
            { number: LAB_TEST_USERS.echo, what: `answers after ${ringMs / 1000} s and plays your voice back` },
            { number: LAB_TEST_USERS.callback, what: `says it will call back, then calls you ${callbackDelayMs / 1000} s later` },
        ],
    };
    const endpoint: EndpointConfig = {
        proxyIp: o.proxyIp,
        proxyPort: PORTS.sip,
        domain: spec.sipDomain,
        localIp: o.endpointIp,
        echo: { user: LAB_TEST_USERS.echo, password: passwords[LAB_TEST_USERS.echo] },
        callback: { user: LAB_TEST_USERS.callback, password: passwords[LAB_TEST_USERS.callback] },
        ringMs,
        callbackDelayMs,
    };
    const tls = o.model.secrets.tls;
    const cert = writePrivate(path.join(o.runDir, "softphone-cert.pem"), tls.certificatePem);
    const key = writePrivate(path.join(o.runDir, "softphone-key.pem"), tls.privateKeyPem);
    const pageCfg = writePrivate(path.join(o.runDir, "softphone-config.json"), JSON.stringify(page, null, 2));
    const endpointCfg = writePrivate(path.join(o.runDir, "softphone-endpoint.json"), JSON.stringify(endpoint, null, 2));

    await stopSoftphoneExtras(o.runDir);
    const pagePid = spawnDetached(o.netnsPath, o.runDir, "softphone-page", [
        path.join(REPO, "softphone", "server.ts"),
        "--listen",
        `${o.pageIp}:${PORTS.softphonePage}`,
        "--cert",
        cert,
        "--key",
        key,
        "--config",
        pageCfg,
    ]);
    const endpointPid = spawnDetached(o.netnsPath, o.runDir, "softphone-endpoint", [path.join(REPO, "softphone", "endpoint.ts"), endpointCfg]);
    try {
        await waitForLine(o.runDir, "softphone-page", pagePid, /^softphone page: https:/m, timeoutMs);
        await waitForLine(o.runDir, "softphone-endpoint", endpointPid, /endpoint-ready/, timeoutMs);
    } catch (e) {
        await stopSoftphoneExtras(o.runDir);
        throw e;
    }
    const pageUrl = `https://${o.pageIp}:${PORTS.softphonePage}/`;
    return {
        pageUrl,
        wssUrl,
        browserUser,
        summary: [
            `softphone page   ${pageUrl} (logs in as ${browserUser}; certificate: the stack's own)`,
            `echo number      ${LAB_TEST_USERS.echo}: rings ${ringMs / 1000} s, then plays your voice back`,
            `callback number  ${LAB_TEST_USERS.callback}: answers "480 Will Call You Back", then calls you ${callbackDelayMs / 1000} s later`,
        ],
    };
}

/** Stop what startSoftphoneExtras started in `runDir` (SIGTERM, then SIGKILL after `graceMs`). */
export async function stopSoftphoneExtras(runDir: string, graceMs = 5000): Promise<void> {
    for (const name of PROCESSES) {
        const pidFile = path.join(runDir, `${name}.pid`);
        if (!fs.existsSync(pidFile)) continue;
        const pid = Number(fs.readFileSync(pidFile, "utf8").trim());
        // only a process we started: its command line runs our script
        const cmdline = (() => {
            try {
                return fs.readFileSync(`/proc/${pid}/cmdline`, "utf8");
            } catch {
                return "";
            }
        })();
        if (pid > 0 && cmdline.includes(path.join(REPO, "softphone"))) {
            try {
                process.kill(pid, "SIGTERM");
            } catch {
                /* gone */
            }
            const deadline = Date.now() + graceMs;
            while (alive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
            if (alive(pid)) process.kill(pid, "SIGKILL");
        }
        fs.rmSync(pidFile, { force: true });
    }
}

/**
 * How a person opens the page from the lab machine: a Chromium window inside
 * the lab namespace (the only place its addresses are reachable), on a fresh
 * profile that accepts the lab's self-signed certificate.
 */
export function openCommand(netnsName: string, pageUrl: string): string {
    return `sudo ip netns exec ${netnsName} chromium --no-sandbox --user-data-dir=$(mktemp -d) --ignore-certificate-errors --no-first-run --disable-features=WebRtcHideLocalIpsWithMdns ${pageUrl}`;
}
