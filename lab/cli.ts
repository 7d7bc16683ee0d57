// npm run lab -- up [--stack dev|prod] [--id ID] [--force]
// npm run lab -- status [--id ID]
// npm run lab -- down [--id ID | --all]
// npm run lab -- ssh HOST [COMMAND...] [--id ID]
// The gateway on this machine, through the same plan `pulumi up` runs (lab/gateway.ts).
import { spawnSync } from "child_process";
import { attachGatewayLab, labDown, labUp, listGatewayLabs, summary, vipState } from "./gateway";
import { internetNs } from "./network";

interface Args {
    readonly cmd: string;
    readonly stack: string;
    readonly id?: string;
    readonly force: boolean;
    readonly all: boolean;
    readonly rest: string[];
}

function parse(argv: string[]): Args {
    const rest: string[] = [];
    let stack = "dev";
    let id: string | undefined;
    let force = false;
    let all = false;
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        if (a === "--stack") stack = argv[++i];
        else if (a === "--id") id = argv[++i];
        else if (a === "--force") force = true;
        else if (a === "--all") all = true;
        else rest.push(a);
    }
    return { cmd: rest.shift() ?? "help", stack, id, force, all, rest };
}

/** The lab to act on: --id, else the only one up. */
function pickId(a: Args): string {
    if (a.id) return a.id;
    const up = listGatewayLabs();
    if (up.length === 1) return up[0];
    if (!up.length) throw new Error("no lab is up (npm run lab -- up [--stack dev|prod])");
    throw new Error(`several labs are up (${up.join(", ")}): name one with --id`);
}

async function main(): Promise<number> {
    const a = parse(process.argv.slice(2));
    if (typeof process.getuid === "function" && process.getuid() !== 0 && a.cmd !== "help") throw new Error("the lab needs root (network namespaces, mounts, systemd hosts)");
    switch (a.cmd) {
        case "up": {
            const log = (l: string) => console.log(l);
            const r = await labUp({ stack: a.stack, id: a.id, force: a.force, log });
            const ran = r.run.runs.length;
            if (r.run.failed) {
                console.error(`\nlab "${r.id}": step ${r.run.failed.id} failed; the lab stays up for a look (npm run lab -- ssh ${r.run.failed.host}); fix and run up again`);
                return 1;
            }
            console.log(
                `\nconverged in ${(r.timings.totalMs / 1000).toFixed(1)} s (hosts ${(r.timings.hostsMs / 1000).toFixed(1)} s, push ${(r.timings.pushMs / 1000).toFixed(1)} s): ${ran} step(s) ran, ${r.run.skipped.length} unchanged\n`,
            );
            console.log(summary(r));
            return 0;
        }
        case "status": {
            const gl = attachGatewayLab(pickId(a));
            console.log(`lab "${gl.id}" (stack ${gl.model.stack})`);
            for (const h of gl.model.hosts) {
                const running = gl.lab.isRunning(h.name);
                let detail = "host down";
                if (running) {
                    const r = await gl.lab.ssh(h.name, "systemctl is-system-running; systemctl list-units --type=service --state=active --no-legend --plain 'opensips*' 'keepalived*' 'rtpengine*' 'mariadb*' 'redis*' 'coturn*' | cut -d' ' -f1 | paste -sd' '", { connectTimeout: 3, timeoutMs: 15_000 });
                    detail = r.code === 0 || r.stdout ? r.stdout.trim().split("\n").join(": ") : `unreachable over SSH (${r.stderr.trim()})`;
                }
                console.log(`  ${h.name.padEnd(15)} ${detail}`);
            }
            const v = vipState(gl);
            if (gl.model.vip) console.log(`  VIP ${gl.model.vip.publicIp} -> ${v.current ? `${v.current.host} (${v.current.privateIp}) since ${new Date(v.current.at).toISOString()}` : "not associated"}`);
            return 0;
        }
        case "down": {
            const ids = a.all ? listGatewayLabs() : [pickId(a)];
            let left = 0;
            for (const id of ids) {
                const rest = labDown(id);
                left += rest.length;
                console.log(rest.length ? `lab "${id}": left behind: ${rest.join(", ")}` : `lab "${id}" is down: no namespace, mount, process or cgroup left`);
            }
            return left ? 1 : 0;
        }
        case "ssh": {
            const gl = attachGatewayLab(pickId(a));
            const [host, ...cmd] = a.rest;
            const h = gl.model.hosts.find((x) => x.name === host);
            if (!h) throw new Error(`no host "${host}" in lab ${gl.id}; hosts: ${gl.model.hosts.map((x) => x.name).join(", ")}`);
            const r = spawnSync(
                "nsenter",
                [`--net=/run/netns/${internetNs(gl.id)}`, "ssh", "-i", gl.lab.keyFile, "-o", "IdentitiesOnly=yes", "-o", `UserKnownHostsFile=${gl.lab.knownHosts}`, "-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes", "-F", "/dev/null", `root@${gl.addrs.publicIps[h.name]}`, ...cmd],
                { stdio: "inherit" },
            );
            return r.status ?? 1;
        }
        default:
            console.log(
                [
                    "usage: npm run lab -- up [--stack dev|prod] [--id ID] [--force]",
                    "       npm run lab -- status [--id ID]",
                    "       npm run lab -- down [--id ID | --all]",
                    "       npm run lab -- ssh HOST [COMMAND...] [--id ID]",
                    "Needs root, debootstrap and, for stacks with proxies, IFBUS_OPENSIPS_PREFIX (a local OpenSIPS 3.6).",
                ].join("\n"),
            );
            return a.cmd === "help" ? 0 : 2;
    }
}

main().then(
    (code) => process.exit(code),
    (e) => {
        console.error(`lab: ${(e as Error).message}`);
        process.exit(1);
    },
);
