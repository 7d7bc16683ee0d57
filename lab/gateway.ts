// The whole gateway on one machine: one VM-like lab host per host of the
// stack's model, at the model's private addresses, behind a lab VPC router
// that maps lab public addresses 1:1 (lab/network.ts), with EC2's metadata
// and Elastic IP move stood in by the lab controller (lab/controller.ts);
// then the plan's steps over real SSH, as `pulumi up` runs them
// (lab/runner.ts). State lives in /run/ifbus-lab/<id>/ so `status`, `down`
// and a second `up` work from another process.
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { spawn } from "child_process";
import type { GatewayModel, HostModel } from "../components/model";
import { sipPublicIp } from "../components/model";
import { loadSpec, makeTestTls, offlineModel, randomSecrets } from "../components/offline";
import { planDeployment, DeploymentPlan } from "../components/plan";
import { renderAll } from "../components/render";
import { PORTS } from "../components/ports";
import { BASE_PACKAGES, ensureBase } from "./base";
import { Lab, LAB_PREFIX, cleanupLab, pollUntil } from "./host";
import { runPlan, PlanRun, StepEvent } from "./runner";
import { CONTROLLER_CONFIG, ControllerConfig, readVipState, VipState } from "./controller";
import {
    ADMIN_IP,
    CLIENT_IPS,
    IMDS_IP,
    LabAddresses,
    NFT_TABLE,
    applySecurityGroup,
    checkLabFitsSpec,
    ec2Identity,
    hostRoutes,
    internetNs,
    labAddresses,
    privateIpsOf,
    setupLabNetwork,
} from "./network";
import { SoftphoneExtras, openCommand, startSoftphoneExtras, withSoftphoneUsers } from "../softphone/lab";
import { buildLabDebs, findLocalOpensips, installLabDebs, isLocalOpensips, labProvidedPackages, loadedModules, LocalOpensips, missingLibraryPackages, noOpensipsMessage, opensipsBindMounts } from "./opensips";

export const RUN_ROOT = "/run/ifbus-lab";

export interface UpOptions {
    readonly stack: string;
    /** lab id (namespace names ifbt-<id>-...); default: the stack name */
    readonly id?: string;
    /** local OpenSIPS prefix; default IFBUS_OPENSIPS_PREFIX */
    readonly opensipsPrefix?: string;
    /** run every step even when its hash is unchanged */
    readonly force?: boolean;
    /** progress lines */
    readonly log?: (line: string) => void;
    /** health check bound per service, seconds */
    readonly healthSeconds?: number;
}

export interface GatewayLab {
    readonly id: string;
    readonly dir: string;
    readonly lab: Lab;
    readonly model: GatewayModel;
    readonly addrs: LabAddresses;
    readonly plan: DeploymentPlan;
}

export interface UpResult extends GatewayLab {
    /** true when this call created the hosts */
    readonly created: boolean;
    readonly run: PlanRun;
    readonly timings: { readonly hostsMs: number; readonly pushMs: number; readonly totalMs: number };
    /** the softphone page and test endpoint on the lab's internet (softphone/lab.ts), or why they did not start */
    readonly softphone?: SoftphoneExtras | { readonly error: string };
}

const modelFile = (dir: string) => path.join(dir, "model.json");
const stepsFile = (dir: string) => path.join(dir, "steps.json");
const controllerPidFile = (dir: string) => path.join(dir, "controller.pid");

export function labDir(id: string): string {
    return path.join(RUN_ROOT, id);
}

function writeSecretJson(file: string, v: unknown): void {
    fs.writeFileSync(`${file}.new`, JSON.stringify(v), { mode: 0o600 });
    fs.renameSync(`${file}.new`, file);
}

function planFor(model: GatewayModel, healthSeconds?: number): DeploymentPlan {
    return planDeployment(model, renderAll(model), { remoteUser: "root", healthSeconds });
}

/** The lab's model: the stack's spec (plus the softphone's test users), the fixed IP plan, TEST-NET public addresses, random lab-only secrets. */
export function labModel(stack: string): GatewayModel {
    const spec = withSoftphoneUsers(loadSpec(stack));
    return offlineModel(spec, { secrets: randomSecrets(spec, makeTestTls(spec.sipDomain)) });
}

function controllerConfig(model: GatewayModel): ControllerConfig {
    return {
        listenIp: IMDS_IP,
        port: 80,
        nftTable: NFT_TABLE,
        vip: model.vip ? { publicIp: model.vip.publicIp, allocationId: model.vip.allocationId } : undefined,
        hosts: model.hosts.map((h) => ({ name: h.name, privateIps: privateIpsOf(h), ...ec2Identity(h) })),
    };
}

function controllerRunning(dir: string): boolean {
    const f = controllerPidFile(dir);
    if (!fs.existsSync(f)) return false;
    const pid = Number(fs.readFileSync(f, "utf8"));
    return pid > 0 && fs.existsSync(`/proc/${pid}`);
}

/** Start the controller inside the lan namespace (detached: it outlives `lab up`); resolves once it listens. */
async function startController(lab: Lab, dir: string, model: GatewayModel): Promise<void> {
    fs.writeFileSync(path.join(dir, CONTROLLER_CONFIG), JSON.stringify(controllerConfig(model)));
    const logFile = path.join(dir, "controller.log");
    const fd = fs.openSync(logFile, "a");
    const repo = path.resolve(__dirname, "..");
    const child = spawn("nsenter", [`--net=/run/netns/${lab.lanNs}`, "--", process.execPath, "--import", "tsx", path.join(__dirname, "controller.ts"), dir], {
        cwd: repo,
        detached: true,
        stdio: ["ignore", fd, fd],
    });
    fs.closeSync(fd);
    child.unref();
    fs.writeFileSync(controllerPidFile(dir), String(child.pid));
    await pollUntil("the lab controller to listen", 30_000, () => {
        if (child.exitCode !== null) throw new Error(`the lab controller exited: ${fs.readFileSync(logFile, "utf8").slice(-1000)}`);
        return fs.readFileSync(logFile, "utf8").includes("listening on") ? true : undefined;
    });
}

async function createHosts(lab: Lab, model: GatewayModel, addrs: LabAddresses, plan: DeploymentPlan, opensips: LocalOpensips | undefined, log: (l: string) => void): Promise<void> {
    const t0 = Date.now();
    for (const h of model.hosts) {
        const install = plan.steps.find((s) => s.host === h.name && s.kind === "install");
        const provided = labProvidedPackages(install?.packages ?? []);
        const debs = provided.length ? buildLabDebs(provided, opensips) : [];
        const booted = await lab.addHost(
            { name: h.name, privateIp: h.privateIp, subnetCidr: h.subnetCidr, sshIp: addrs.publicIps[h.name] },
            {
                routes: hostRoutes(h),
                bindMounts: h.role === "sip-proxy" && opensips ? opensipsBindMounts(opensips) : [],
                prepare: ({ root, netns }) => {
                    applySecurityGroup(netns, model, h);
                    installLabDebs(root, debs);
                },
            },
        );
        log(`[${secs(Date.now() - t0)}] ${h.name.padEnd(15)} host up (${h.privateIp}, public ${addrs.publicIps[h.name]}), booted in ${secs(booted.bootMs)}${provided.length ? `; lab packages: ${provided.join(" ")}` : ""}`);
    }
}

function secs(ms: number): string {
    return `${(ms / 1000).toFixed(1)}s`;
}

function progress(log: (l: string) => void, t0: number): (e: StepEvent) => void {
    return (e) => {
        const at = `[${secs(Date.now() - t0).padStart(6)}]`;
        const who = `${e.step.host.padEnd(15)} ${e.step.kind.padEnd(16)}`;
        if (e.type === "start") log(`${at} ${who} ...`);
        else if (e.type === "skip") log(`${at} ${who} unchanged, not run`);
        else {
            const out = e.run.stdout.trim().split("\n").filter(Boolean).pop() ?? "";
            if (e.run.code === 0) log(`${at} ${who} ok in ${secs(e.run.ms)}${out ? `: ${out.replace(/^ifbus [^:]+:[a-z-]+: /, "")}` : ""}`);
            else log(`${at} ${who} FAILED after ${secs(e.run.ms)}:\n${(e.run.stdout + e.run.stderr).trim()}`);
        }
    };
}

/** Attach to a lab that is up (another process created it). */
export function attachGatewayLab(id: string, healthSeconds?: number): GatewayLab {
    if (!Lab.exists(id) || !fs.existsSync(modelFile(labDir(id)))) throw new Error(`no lab "${id}" is up (run: npm run lab -- up)`);
    const lab = Lab.attach(id);
    const model = JSON.parse(fs.readFileSync(modelFile(labDir(id)), "utf8")) as GatewayModel;
    return { id, dir: labDir(id), lab, model, addrs: labAddresses(model), plan: planFor(model, healthSeconds) };
}

/**
 * `lab up`: create the lab if it does not exist, then converge it with the
 * plan (steps whose hash is unchanged since their last success are skipped,
 * as `pulumi up` skips unchanged Commands).
 */
export async function labUp(opts: UpOptions): Promise<UpResult> {
    const log = opts.log ?? (() => undefined);
    const id = opts.id ?? opts.stack;
    if (!/^[a-z0-9]{1,8}$/.test(id)) throw new Error(`lab id "${id}" must be 1-8 lower-case letters or digits (it names network namespaces)`);
    const dir = labDir(id);
    const t0 = Date.now();
    let gl: GatewayLab;
    let created = false;
    if (Lab.exists(id)) {
        gl = attachGatewayLab(id, opts.healthSeconds);
        if (gl.model.stack !== opts.stack) throw new Error(`lab "${id}" runs stack ${gl.model.stack}, not ${opts.stack}; run \`npm run lab -- down --id ${id}\` first`);
        const dead = [...gl.lab.hosts.keys()].filter((h) => !gl.lab.isRunning(h));
        if (dead.length) throw new Error(`lab "${id}" has hosts that are not running (${dead.join(", ")}); run \`npm run lab -- down\` and up again`);
        if (!controllerRunning(dir)) await startController(gl.lab, dir, gl.model);
        log(`lab "${id}" (stack ${opts.stack}) is up with ${gl.lab.hosts.size} hosts: converging`);
    } else {
        const model = labModel(opts.stack);
        let opensips: LocalOpensips | undefined;
        if (model.hosts.some((h) => h.role === "sip-proxy")) {
            const o = findLocalOpensips(opts.opensipsPrefix);
            if (!isLocalOpensips(o)) throw new Error(`${noOpensipsMessage()}\n(${o.reason})`);
            opensips = o;
        }
        checkLabFitsSpec(model);
        const addrs = labAddresses(model);
        const plan = planFor(model, opts.healthSeconds);
        log(`building or reusing the lab's Debian base root (cached under /var/cache/ifbus-lab)`);
        let base = ensureBase();
        if (opensips) {
            const modules = renderAll(model).flatMap((hf) => hf.files.filter((f) => f.service === "opensips" && f.path.endsWith(".cfg")).flatMap((f) => loadedModules(f.content)));
            const extra = missingLibraryPackages(opensips, [...new Set(modules)], base.rootfs);
            if (extra.length) {
                log(`the local OpenSIPS needs ${extra.join(" ")}: building a base root with them`);
                base = ensureBase([...BASE_PACKAGES, ...extra]);
            }
        }
        const subnets = [...new Set(model.hosts.map((h) => h.subnetCidr))];
        const lab = Lab.create({ id, subnets, vpcCidr: model.spec.vpcCidr, base });
        try {
            writeSecretJson(modelFile(dir), model);
            fs.writeFileSync(path.join(dir, "ca.pem"), model.secrets.tls.caPem);
            lab.sshNetns = internetNs(id);
            lab.save();
            setupLabNetwork(id, lab.lanNs, model, addrs);
            await startController(lab, dir, model);
            created = true;
            gl = { id, dir, lab, model, addrs, plan };
            await createHosts(lab, model, addrs, plan, opensips, log);
        } catch (e) {
            labDown(id);
            throw e;
        }
    }
    const hostsMs = Date.now() - t0;
    const state = new Map<string, string>(fs.existsSync(stepsFile(dir)) ? (JSON.parse(fs.readFileSync(stepsFile(dir), "utf8")) as [string, string][]) : []);
    const tp = Date.now();
    let run: PlanRun;
    try {
        run = await runPlan(gl.plan, gl.lab, { state, force: opts.force, onEvent: progress(log, tp) });
    } finally {
        fs.writeFileSync(stepsFile(dir), JSON.stringify([...state.entries()]));
    }
    const pushMs = Date.now() - tp;
    let softphone: UpResult["softphone"];
    if (!run.failed && gl.model.hosts.some((h) => h.role === "sip-proxy")) {
        // a client on the lab's internet, like a person's browser: the page server and the echo/callback endpoint
        softphone = await startSoftphoneExtras({
            netnsPath: `/run/netns/${internetNs(id)}`,
            runDir: path.join(dir, "softphone"),
            model: gl.model,
            proxyIp: sipPublicIp(gl.model),
            pageIp: CLIENT_IPS[3],
            endpointIp: CLIENT_IPS[3],
        }).catch((e: Error) => ({ error: e.message }));
        log("error" in softphone ? `softphone NOT started: ${softphone.error}` : `softphone page and test endpoint up on ${CLIENT_IPS[3]}`);
    }
    return { ...gl, created, run, softphone, timings: { hostsMs, pushMs, totalMs: Date.now() - t0 } };
}

/** `lab down`: every process, mount, namespace, cgroup and file of the lab; returns what was left (empty when clean). */
export function labDown(id: string): string[] {
    const dir = labDir(id);
    if (Lab.exists(id)) {
        const lab = Lab.attach(id);
        cleanupLab(id);
        return lab.leftovers();
    }
    cleanupLab(id);
    return fs.existsSync(dir) ? [`directory ${dir}`] : [];
}

/** Labs that are up (their state files), by id. */
export function listGatewayLabs(): string[] {
    return fs.existsSync(RUN_ROOT) ? fs.readdirSync(RUN_ROOT).filter((id) => fs.existsSync(modelFile(labDir(id)))) : [];
}

export function vipState(gl: GatewayLab): VipState {
    return readVipState(gl.dir);
}

/** TURN REST API credentials (coturn use-auth-secret): `expiry:user`, HMAC-SHA1 of it with the shared secret, base64. */
export function turnRestCredentials(secret: string, user: string, ttlSeconds = 86400, now = Date.now()): { username: string; password: string } {
    const username = `${Math.floor(now / 1000) + ttlSeconds}:${user}`;
    return { username, password: crypto.createHmac("sha1", secret).update(username).digest("base64") };
}

/** What `lab up` prints at the end: how to use the gateway and reach each host. */
export function summary(gl: GatewayLab & { readonly softphone?: UpResult["softphone"] }): string {
    const { model, addrs, id } = gl;
    const sipIp = sipPublicIp(model);
    const turns = model.hosts.filter((h) => h.role === "turn");
    const turn = turnRestCredentials(model.secrets.turnSharedSecret, "lab");
    const net = `/run/netns/${internetNs(id)}`;
    const row = (h: HostModel) => `    ${h.name.padEnd(15)} ${h.role.padEnd(12)} private ${h.privateIp.padEnd(12)} public ${addrs.publicIps[h.name].padEnd(14)}${h.vipPrivateIp ? ` vip-private ${h.vipPrivateIp}` : ""}`;
    return [
        `IF.bus gateway lab "${id}" (stack ${model.stack}, SIP domain ${model.spec.sipDomain})`,
        `  Lab addresses exist only inside the lab: run clients in its internet namespace,`,
        `  e.g. sudo nsenter --net=${net} <client>  (the CA of the TLS certificate: ${path.join(gl.dir, "ca.pem")})`,
        `  WSS URL:   wss://${sipIp}:${PORTS.wss}/   (TLS name ${model.spec.sipDomain}; Origin header required)`,
        ...(model.spec.devAllowPlainWs ? [`  WS URL:    ws://${sipIp}:${PORTS.ws}/   (dev only)`] : []),
        `  SIP URI:   sip:<user>@${model.spec.sipDomain}, proxy ${sipIp}:${PORTS.sip} (UDP/TCP), ${sipIp}:${PORTS.sipTls} (TLS)`,
        ...(turns.length
            ? [
                  `  TURN URIs: ${turns.map((t) => `turn:${addrs.publicIps[t.name]}:${PORTS.turn}?transport=udp`).join(", ")}`,
                  `             credentials (REST API, valid 24 h): username ${turn.username}  password ${turn.password}`,
              ]
            : []),
        `  Subscribers (lab-only random passwords): ${Object.entries(model.secrets.subscriberPasswords).map(([u, p]) => `${u} / ${p}`).join(", ")}`,
        ...(gl.softphone && "pageUrl" in gl.softphone
            ? [...gl.softphone.summary.map((l) => `  ${l}`), `  Open the page in the lab: ${openCommand(internetNs(id), gl.softphone.pageUrl)}`]
            : gl.softphone
              ? [`  Softphone: not started (${gl.softphone.error})`]
              : []),
        `  Hosts (SSH from the admin address ${ADMIN_IP}: npm run lab -- ssh <host> [command]):`,
        ...model.hosts.map(row),
        `  Tear down: npm run lab -- down${id !== model.stack ? ` --id ${id}` : ""}`,
    ].join("\n");
}

export { LAB_PREFIX };
