// Debian's Chromium, driven by playwright-core (which never downloads a
// browser here), started INSIDE a test namespace: playwright runs a wrapper
// that enters the namespace and execs chromium, keeping the DevTools pipe
// (fds 3 and 4) it passes. Flags from DOMAIN-FACTS 11 keep every lookup and
// packet on the lab's addresses and loopback.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { BrowserContext, chromium } from "playwright-core";
import type { TestNetns } from "../support/netns";

export const SKIP_NO_CHROMIUM = "SKIPPED: no Chromium (install Debian's `chromium` package; set CHROMIUM_PATH for another build)";

export function chromiumBinary(): string | undefined {
    for (const p of [process.env.CHROMIUM_PATH, "/usr/bin/chromium", "/usr/bin/chromium-browser"]) {
        if (!p) continue;
        try {
            fs.accessSync(p, fs.constants.X_OK);
            return p;
        } catch {
            /* next */
        }
    }
    return undefined;
}

/** Flags that worked and kept all traffic on loopback and the lab (DOMAIN-FACTS 11). */
export function chromiumFlags(labAddresses: readonly string[]): string[] {
    const excludes = ["127.0.0.1", ...labAddresses].map((a) => `EXCLUDE ${a}`).join(" , ");
    return [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",
        "--ignore-certificate-errors",
        "--allow-loopback-in-peer-connection",
        // no name resolves: nothing can be looked up outside the lab
        `--host-resolver-rules=MAP * ~NOTFOUND , ${excludes}`,
        // real host candidates instead of mDNS names, which nobody here resolves
        "--disable-features=WebRtcHideLocalIpsWithMdns",
    ];
}

export interface NetnsBrowser {
    readonly context: BrowserContext;
    /** chromium's stderr, for a failing test */
    readonly logFile: string;
    close(): Promise<void>;
}

/** A headless Chromium with a fresh profile, inside `ns`. */
export async function launchInNetns(ns: TestNetns, binary: string, labAddresses: readonly string[]): Promise<NetnsBrowser> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ifbt-chromium-"));
    const profile = path.join(dir, "profile");
    const logFile = path.join(dir, "chromium.log");
    const wrapper = path.join(dir, "chromium-in-netns");
    // exec twice (nsenter, then chromium): playwright's pid is chromium's, its pipes stay open
    fs.writeFileSync(wrapper, `#!/bin/sh\nexec nsenter --net=${ns.path} -- ${binary} "$@" 2>>${logFile}\n`, { mode: 0o755 });
    let context: BrowserContext;
    try {
        context = await chromium.launchPersistentContext(profile, {
            executablePath: wrapper,
            headless: true,
            args: chromiumFlags(labAddresses),
            ignoreHTTPSErrors: true,
            viewport: { width: 560, height: 900 },
            timeout: 60000,
        });
    } catch (e) {
        fs.rmSync(dir, { recursive: true, force: true });
        throw e;
    }
    return {
        context,
        logFile,
        close: async () => {
            await context.close().catch(() => undefined);
            fs.rmSync(dir, { recursive: true, force: true });
        },
    };
}
