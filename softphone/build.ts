// Bundles the softphone page's script (app.ts + JsSIP) into softphone/dist/
// with esbuild: the jssip npm package ships CommonJS only, no browser bundle
// (DOMAIN-FACTS 11). Run by `npm run build:softphone`, and on demand by the
// page server and the browser tests when the bundle is missing or older than
// its sources, so the page itself needs no build step when it is served.
import * as fs from "fs";
import * as path from "path";
import { build } from "esbuild";

export const SOFTPHONE_DIR = __dirname;
export const SOFTPHONE_DIST = path.join(__dirname, "dist");
export const SOFTPHONE_BUNDLE = path.join(SOFTPHONE_DIST, "app.js");
const ENTRY = path.join(__dirname, "app.ts");

/** Files whose change makes the bundle stale. */
function sources(): string[] {
    const jssip = path.dirname(require.resolve("jssip/package.json"));
    return [ENTRY, path.join(__dirname, "page-logic.ts"), path.join(jssip, "package.json")];
}

export function bundleIsFresh(): boolean {
    if (!fs.existsSync(SOFTPHONE_BUNDLE)) return false;
    const built = fs.statSync(SOFTPHONE_BUNDLE).mtimeMs;
    return sources().every((s) => fs.statSync(s).mtimeMs <= built);
}

export interface BuildResult {
    readonly file: string;
    readonly bytes: number;
    readonly ms: number;
}

export async function buildSoftphone(): Promise<BuildResult> {
    const t0 = Date.now();
    fs.mkdirSync(SOFTPHONE_DIST, { recursive: true });
    await build({
        entryPoints: [ENTRY],
        outfile: SOFTPHONE_BUNDLE,
        bundle: true,
        minify: true,
        sourcemap: false,
        format: "iife",
        platform: "browser",
        // Chromium 120+ and current Firefox/Safari: no down-levelling needed
        target: ["es2020"],
        legalComments: "eof",
        logLevel: "warning",
        // JsSIP's `debug` dependency reads process.env in a browser build
        define: { "process.env.NODE_ENV": '"production"', "process.env.DEBUG": "undefined" },
    });
    return { file: SOFTPHONE_BUNDLE, bytes: fs.statSync(SOFTPHONE_BUNDLE).size, ms: Date.now() - t0 };
}

/** Build unless the bundle is already newer than its sources. */
export async function ensureSoftphoneBuilt(): Promise<BuildResult | undefined> {
    return bundleIsFresh() ? undefined : buildSoftphone();
}

if (require.main === module) {
    buildSoftphone().then(
        (r) => console.log(`softphone bundle: ${path.relative(process.cwd(), r.file)}, ${Math.round(r.bytes / 1024)} KiB in ${r.ms} ms`),
        (e) => {
            console.error(e instanceof Error ? e.message : e);
            process.exit(1);
        },
    );
}
