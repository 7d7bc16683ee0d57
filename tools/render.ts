// npm run render -- --stack <name> --out <dir>
// Writes every host's files under <dir>/<host>/<absolute path on the host>,
// from Pulumi.<name>.yaml, with the fixed private IP plan, TEST-NET public
// addresses and clearly marked placeholder secrets (no cloud, no Pulumi).
import * as fs from "fs";
import * as path from "path";
import { loadSpec, makeTestTls, offlineModel, placeholderSecrets, OFFLINE_VIP, listStacks } from "../components/offline";
import { SpecError } from "../components/spec";
import { renderAll } from "../components/render";

function usage(msg?: string): never {
    if (msg) console.error(`render: ${msg}`);
    console.error(`usage: npm run render -- --stack <${listStacks().join("|")}> --out <dir>`);
    process.exit(2);
}

function parseArgs(argv: string[]): { stack: string; out: string } {
    let stack: string | undefined;
    let out: string | undefined;
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        if (a === "--stack") stack = argv[++i];
        else if (a === "--out") out = argv[++i];
        else if (a === "-h" || a === "--help") usage();
        else usage(`unknown argument ${a}`);
    }
    if (!stack) usage("--stack is required");
    if (!out) usage("--out is required");
    return { stack, out };
}

export function renderStackToDir(stack: string, out: string): { hosts: number; files: number } {
    const spec = loadSpec(stack);
    const model = offlineModel(spec, { secrets: placeholderSecrets(spec, makeTestTls(spec.sipDomain)) });
    const all = renderAll(model);
    let files = 0;
    for (const h of all) {
        for (const f of h.files) {
            const dest = path.join(out, h.host, f.path);
            fs.mkdirSync(path.dirname(dest), { recursive: true });
            fs.writeFileSync(dest, f.content, { mode: parseInt(f.mode, 8) });
            files++;
        }
    }
    return { hosts: all.length, files };
}

if (require.main === module) {
    const { stack, out } = parseArgs(process.argv.slice(2));
    try {
        const r = renderStackToDir(stack, out);
        console.log(`rendered ${r.files} files for ${r.hosts} hosts of stack "${stack}" into ${out}`);
        console.log(`public addresses are documentation placeholders (TEST-NET-3, VIP ${OFFLINE_VIP}); secrets are RENDER-PLACEHOLDER-* values; the TLS certificate is a throw-away self-signed one.`);
    } catch (e) {
        if (e instanceof SpecError) {
            console.error(e.message);
            process.exit(2);
        }
        console.error(`render: ${(e as Error).message}`);
        process.exit(1);
    }
}
