// The lab's stand-in for the parts of EC2 a host talks to, run by `lab up`
// inside the lan namespace (so only lab hosts reach it) at the instance
// metadata address:
// - IMDSv2: PUT /latest/api/token, then GET /latest/meta-data/mac and
//   /latest/meta-data/network/interfaces/macs/<mac>/interface-id with the
//   token, answered for the host the request comes from;
// - POST /lab/ec2/associate-address (the lab's `aws` stand-in): moves the
//   VIP, i.e. re-points the lan's 1:1 NAT of the VIP to the caller's private
//   address, with EC2's checks (allocation, the caller's own ENI, an address
//   of that ENI, reassociation allowed).
// Every association is appended to vip.json in the lab directory (with the
// time), which `lab status`, the tests and the bench read.
// Usage: node --import tsx lab/controller.ts <lab dir>   (in the lan namespace)
import * as crypto from "crypto";
import * as fs from "fs";
import * as http from "http";
import * as path from "path";
import { execFileSync } from "child_process";

export interface ControllerHost {
    readonly name: string;
    readonly privateIps: readonly string[];
    readonly mac: string;
    readonly eni: string;
}

export interface ControllerConfig {
    readonly listenIp: string;
    readonly port: number;
    readonly nftTable: string;
    readonly vip?: { readonly publicIp: string; readonly allocationId: string };
    readonly hosts: readonly ControllerHost[];
}

export interface VipAssociation {
    readonly host: string;
    readonly privateIp: string;
    /** ms since the epoch */
    readonly at: number;
}

export interface VipState {
    readonly current: VipAssociation | null;
    readonly history: readonly VipAssociation[];
}

export const CONTROLLER_CONFIG = "controller.json";
export const VIP_STATE = "vip.json";

export function readVipState(labDir: string): VipState {
    const f = path.join(labDir, VIP_STATE);
    return fs.existsSync(f) ? (JSON.parse(fs.readFileSync(f, "utf8")) as VipState) : { current: null, history: [] };
}

function main(): void {
    const dir = process.argv[2];
    const cfg = JSON.parse(fs.readFileSync(path.join(dir, CONTROLLER_CONFIG), "utf8")) as ControllerConfig;
    let state = readVipState(dir);
    const tokens = new Map<string, number>();
    const writeState = () => {
        fs.writeFileSync(path.join(dir, `${VIP_STATE}.new`), JSON.stringify(state));
        fs.renameSync(path.join(dir, `${VIP_STATE}.new`), path.join(dir, VIP_STATE));
    };
    const log = (msg: string) => process.stdout.write(`${new Date().toISOString()} ${msg}\n`);
    const hostOf = (ip: string | undefined) => cfg.hosts.find((h) => ip && h.privateIps.includes(ip.replace(/^::ffff:/, "")));

    const associate = (caller: ControllerHost, form: URLSearchParams): [number, string] => {
        const vip = cfg.vip;
        if (!vip || form.get("AllocationId") !== vip.allocationId) return [400, `InvalidAllocationID.NotFound: ${form.get("AllocationId")}`];
        if (form.get("NetworkInterfaceId") !== caller.eni) return [403, `UnauthorizedOperation: ${caller.name} may only associate with its own interface`];
        const ip = form.get("PrivateIpAddress") ?? "";
        if (!caller.privateIps.includes(ip)) return [400, `InvalidParameterValue: ${ip} is not an address of ${caller.eni}`];
        const cur = state.current;
        if (cur && cur.privateIp !== ip && form.get("AllowReassociation") !== "true") return [400, `Resource.AlreadyAssociated: ${vip.publicIp} is associated with ${cur.privateIp}`];
        if (!cur || cur.privateIp !== ip) {
            const t = cfg.nftTable;
            const batch = [
                ...(cur ? [`delete element ip ${t} pub_to_priv { ${vip.publicIp} }`, `delete element ip ${t} priv_to_pub { ${cur.privateIp} }`] : []),
                `add element ip ${t} pub_to_priv { ${vip.publicIp} : ${ip} }`,
                `add element ip ${t} priv_to_pub { ${ip} : ${vip.publicIp} }`,
                "",
            ].join("\n");
            // one nft transaction: the VIP points to one address at every instant
            execFileSync("nft", ["-f", "-"], { input: batch, stdio: ["pipe", "pipe", "pipe"] });
        }
        const a: VipAssociation = { host: caller.name, privateIp: ip, at: Date.now() };
        state = { current: a, history: [...state.history, a] };
        writeState();
        log(`associated ${vip.publicIp} with ${caller.name} ${ip}`);
        return [200, `eipassoc-0lab${crypto.createHash("sha256").update(`${ip}${a.at}`).digest("hex").slice(0, 12)}\n`];
    };

    const server = http.createServer((req, res) => {
        const send = (code: number, body: string) => {
            res.writeHead(code, { "Content-Type": "text/plain" });
            res.end(body);
        };
        const caller = hostOf(req.socket.remoteAddress);
        if (!caller) return send(403, "not a lab host\n");
        const url = new URL(req.url ?? "/", "http://imds");
        let body = "";
        req.on("data", (d) => (body += d));
        req.on("end", () => {
            try {
                if (req.method === "PUT" && url.pathname === "/latest/api/token") {
                    const ttl = Number(req.headers["x-aws-ec2-metadata-token-ttl-seconds"]);
                    if (!(ttl >= 1 && ttl <= 21600)) return send(400, "missing or invalid X-aws-ec2-metadata-token-ttl-seconds\n");
                    const token = crypto.randomBytes(24).toString("base64url");
                    tokens.set(token, Date.now() + ttl * 1000);
                    return send(200, token);
                }
                if (req.method === "GET" && url.pathname.startsWith("/latest/meta-data/")) {
                    const token = String(req.headers["x-aws-ec2-metadata-token"] ?? "");
                    if ((tokens.get(token) ?? 0) < Date.now()) return send(401, "");
                    const p = url.pathname.slice("/latest/meta-data/".length);
                    if (p === "mac") return send(200, caller.mac);
                    if (p === `network/interfaces/macs/${caller.mac}/interface-id`) return send(200, caller.eni);
                    if (p === "local-ipv4") return send(200, caller.privateIps[0]);
                    return send(404, "");
                }
                if (req.method === "POST" && url.pathname === "/lab/ec2/associate-address") {
                    const [code, text] = associate(caller, new URLSearchParams(body));
                    if (code !== 200) log(`refused associate-address from ${caller.name}: ${text}`);
                    return send(code, code === 200 ? text : `${text}\n`);
                }
                return send(404, "");
            } catch (e) {
                log(`error: ${(e as Error).message}`);
                return send(500, "internal error\n");
            }
        });
    });
    server.listen(cfg.port, cfg.listenIp, () => {
        writeState();
        log(`listening on ${cfg.listenIp}:${cfg.port}`);
    });
    for (const sig of ["SIGTERM", "SIGINT"] as const) process.on(sig, () => server.close(() => process.exit(0)));
}

if (require.main === module) main();
