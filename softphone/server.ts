// Serves the softphone page over HTTPS with the stack's certificate: the
// page, its style, the JsSIP bundle and /config.json (the lab's WSS URL and
// credentials, so the fields come pre-filled). Nothing else: the page loads
// no outside asset.
//
//   tsx softphone/server.ts --listen IP[:PORT] --cert FILE --key FILE --config FILE
//
// The config file holds a password: keep it mode 0600. It is served only
// over TLS, and never printed.
import * as fs from "fs";
import * as https from "https";
import * as path from "path";
import { PORTS } from "../components/ports";
import { SOFTPHONE_BUNDLE, SOFTPHONE_DIR, ensureSoftphoneBuilt } from "./build";
import type { PageConfig } from "./page-logic";

export interface SoftphoneServerOptions {
    readonly host: string;
    /** default PORTS.softphonePage */
    readonly port?: number;
    readonly certPem: string;
    readonly keyPem: string;
    readonly config: PageConfig;
}

export interface SoftphoneServer {
    readonly url: string;
    close(): Promise<void>;
}

const STATIC: Record<string, { file: string; type: string }> = {
    "/": { file: path.join(SOFTPHONE_DIR, "index.html"), type: "text/html; charset=utf-8" },
    "/index.html": { file: path.join(SOFTPHONE_DIR, "index.html"), type: "text/html; charset=utf-8" },
    "/style.css": { file: path.join(SOFTPHONE_DIR, "style.css"), type: "text/css; charset=utf-8" },
    "/app.js": { file: SOFTPHONE_BUNDLE, type: "text/javascript; charset=utf-8" },
};

export async function startSoftphoneServer(opts: SoftphoneServerOptions): Promise<SoftphoneServer> {
    await ensureSoftphoneBuilt();
    const port = opts.port ?? PORTS.softphonePage;
    const config = JSON.stringify(opts.config);
    const server = https.createServer({ cert: opts.certPem, key: opts.keyPem, minVersion: "TLSv1.2" }, (req, res) => {
        const url = new URL(req.url ?? "/", "https://page.invalid");
        const common = { "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer" };
        if (req.method !== "GET" && req.method !== "HEAD") {
            res.writeHead(405, { ...common, Allow: "GET, HEAD" }).end();
            return;
        }
        if (url.pathname === "/config.json") {
            res.writeHead(200, { ...common, "Content-Type": "application/json", "Cache-Control": "no-store" }).end(req.method === "HEAD" ? undefined : config);
            return;
        }
        if (url.pathname === "/favicon.ico") {
            res.writeHead(204, common).end();
            return;
        }
        const s = STATIC[url.pathname];
        if (!s) {
            res.writeHead(404, { ...common, "Content-Type": "text/plain" }).end("not found\n");
            return;
        }
        fs.readFile(s.file, (err, data) => {
            if (err) {
                res.writeHead(500, { ...common, "Content-Type": "text/plain" }).end("page file missing: run npm run build:softphone\n");
                return;
            }
            res.writeHead(200, { ...common, "Content-Type": s.type, "Cache-Control": "no-cache" }).end(req.method === "HEAD" ? undefined : data);
        });
    });
    await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(port, opts.host, () => resolve());
    });
    const host = opts.host.includes(":") ? `[${opts.host}]` : opts.host;
    const bound = (server.address() as { port: number }).port;
    return {
        url: `https://${host}:${bound}/`,
        close: () =>
            new Promise<void>((resolve) => {
                server.close(() => resolve());
                // a browser keeps its connections open; close() alone would wait for them
                server.closeAllConnections();
            }),
    };
}

function parseArgs(argv: readonly string[]): Record<string, string> {
    const out: Record<string, string> = {};
    for (let i = 0; i < argv.length; i++) {
        const m = /^--([a-z-]+)$/.exec(argv[i]);
        if (!m || i + 1 >= argv.length) throw new Error(`usage: server.ts --listen IP[:PORT] --cert FILE --key FILE --config FILE (at ${argv[i]})`);
        out[m[1]] = argv[++i];
    }
    for (const k of ["listen", "cert", "key", "config"]) if (!out[k]) throw new Error(`missing --${k}`);
    return out;
}

async function main(): Promise<void> {
    const a = parseArgs(process.argv.slice(2));
    const m = /^(.*?)(?::(\d+))?$/.exec(a.listen)!;
    const server = await startSoftphoneServer({
        host: m[1],
        port: m[2] ? Number(m[2]) : undefined,
        certPem: fs.readFileSync(a.cert, "utf8"),
        keyPem: fs.readFileSync(a.key, "utf8"),
        config: JSON.parse(fs.readFileSync(a.config, "utf8")) as PageConfig,
    });
    console.log(`softphone page: ${server.url}`);
    const stop = () => void server.close().then(() => process.exit(0));
    process.on("SIGTERM", stop);
    process.on("SIGINT", stop);
}

if (require.main === module) {
    main().catch((e) => {
        console.error(e instanceof Error ? e.message : e);
        process.exit(1);
    });
}
