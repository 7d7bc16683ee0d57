// plan(model, files) -> ordered steps per host, as data. Pure: no Pulumi
// import. The same steps run as @pulumi/command resources (push.ts) and over
// plain SSH in the local lab (lab/runner.ts).
//
// A step is one remote command: `command` is what the remote shell runs (a
// commented header naming every file and hash, then a loader), `stdin` is a
// bundle the loader unpacks: the deploy scripts of config-templates/scripts/deploy,
// the host's facts and, for apply and db-schema, the files. `hash` covers both,
// so a step re-runs exactly when something it sends changed.
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import type { GatewayModel, HostModel, HostPlan } from "./model";
import { planHosts } from "./model";
import type { GatewaySpec } from "./spec";
import { PORTS, Role } from "./ports";
import type { HostFiles, RenderedFile } from "./render/types";

export type StepKind = "wait-ready" | "install" | "apply" | "galera-bootstrap" | "galera-join" | "db-schema";

/** A step's place in the graph: known from the spec alone, before any host exists. */
export interface StepSkeleton {
    /** `<host>:<kind>`, unique in the stack */
    readonly id: string;
    readonly host: string;
    readonly role: Role;
    readonly kind: StepKind;
    /** ids of the steps that must finish first (same host and cross-host order) */
    readonly dependsOn: readonly string[];
}

export interface StepFile {
    readonly path: string;
    readonly sha256: string;
    readonly service: string;
    readonly secret: boolean;
}

export interface PlanStep extends StepSkeleton {
    /** what the remote shell runs; never holds a secret */
    readonly command: string;
    /** the bundle sent on standard input */
    readonly stdin: string;
    /** sha256 over command and stdin: equal hash, nothing to do */
    readonly hash: string;
    /** stdin holds a secret: keep it and the step's output secret, log nothing */
    readonly secret: boolean;
    /** files the step deploys (apply) or loads (db-schema) */
    readonly files: readonly StepFile[];
    /** apt packages (install) */
    readonly packages: readonly string[];
    /** a bound for the whole step */
    readonly timeoutSeconds: number;
}

export interface DeploymentPlan {
    readonly stack: string;
    readonly steps: readonly PlanStep[];
}

export interface PlanOptions {
    /** SSH user the commands run as; anything but root wraps them in `sudo -n` (default "admin", Debian's cloud user) */
    readonly remoteUser?: string;
    /** plan only these hosts (the lab's one-role runs); edges to other hosts are dropped */
    readonly hosts?: readonly string[];
    /** bound of each health check poll, seconds (default 60) */
    readonly healthSeconds?: number;
}

export const DEPLOY_SCRIPT_DIR = path.resolve(__dirname, "..", "config-templates", "scripts", "deploy");
const DEPLOY_SCRIPTS = ["lib.sh", "install.sh", "validate.sh", "health.sh", "galera.sh", "apply.sh"];

/** The official OpenSIPS apt repository (DOMAIN-FACTS 1). */
export const OPENSIPS_APT = {
    keyring: "opensips-org",
    keyUrl: "https://apt.opensips.org/opensips-org.gpg",
    uri: "https://apt.opensips.org",
    releaseSuite: "3.6-releases",
    cliSuite: "cli-releases",
} as const;

/** OpenSIPS modules shipped outside the core `opensips` package (packaging/debian of 3.6). */
export const OPENSIPS_MODULE_PACKAGES: Readonly<Record<string, string>> = {
    auth: "opensips-auth-modules",
    uac_auth: "opensips-auth-modules",
    auth_aka: "opensips-auth-modules",
    proto_tls: "opensips-tls-module",
    proto_wss: "opensips-wss-module",
    tls_mgm: "opensips-tlsmgm-module",
    tls_openssl: "opensips-tls-openssl-module",
    tls_wolfssl: "opensips-tls-wolfssl-module",
    httpd: "opensips-http-modules",
    mi_http: "opensips-http-modules",
    prometheus: "opensips-prometheus-module",
    db_mysql: "opensips-mysql-module",
    cachedb_redis: "opensips-redis-module",
};

/** A bound for each kind of step, seconds (the Command's custom timeout too). */
export const STEP_TIMEOUT_SECONDS: Readonly<Record<StepKind, number>> = {
    "wait-ready": 20 * 60,
    install: 20 * 60,
    apply: 15 * 60,
    "galera-bootstrap": 20 * 60,
    "galera-join": 30 * 60,
    "db-schema": 10 * 60,
};

export function stepId(host: string, kind: StepKind): string {
    return `${host}:${kind}`;
}

// ---------------------------------------------------------------------------
// The graph (spec only)

/**
 * Every step of the stack and what it waits for. Per host: wait-ready, then
 * install, then apply (then the Galera steps on database hosts), one after
 * another. Across hosts: apply rolls through replicated roles one host at a
 * time; Galera bootstraps the first node, joins the others one by one, then
 * loads the schema; proxies wait for Redis, the relays and the schema, the
 * backup proxy (index 1) goes before the active one; TURN waits for nothing.
 */
export function planSteps(spec: GatewaySpec): StepSkeleton[] {
    const hosts = planHosts(spec);
    const byRole = (role: Role) => hosts.filter((h) => h.role === role).sort((a, b) => a.index - b.index);
    const apply = (h: HostPlan) => stepId(h.name, "apply");
    const steps: StepSkeleton[] = [];
    const add = (h: HostPlan, kind: StepKind, dependsOn: string[]) => steps.push({ id: stepId(h.name, kind), host: h.name, role: h.role, kind, dependsOn });

    const databases = byRole("database");
    const relays = byRole("media-relay");
    const caches = byRole("cache");
    // backup first: the active proxy (index 0, sharing tag "active") goes last, so one proxy always serves
    const proxies = byRole("sip-proxy").sort((a, b) => b.index - a.index);
    const schema = databases.length ? [stepId(databases[0].name, "db-schema")] : [];

    for (const h of hosts) {
        add(h, "wait-ready", []);
        add(h, "install", [stepId(h.name, "wait-ready")]);
        const deps = [stepId(h.name, "install")];
        const sameRole = h.role === "sip-proxy" ? proxies : byRole(h.role);
        const prev = sameRole[sameRole.indexOf(h) - 1];
        if (prev) deps.push(apply(prev));
        if (h.role === "media-relay" && spec.rtpengineRedis) deps.push(...caches.map(apply));
        if (h.role === "sip-proxy" && !prev) deps.push(...caches.map(apply), ...relays.map(apply), ...schema);
        add(h, "apply", deps);
    }
    databases.forEach((h, i) => {
        if (i === 0) add(h, "galera-bootstrap", [apply(h)]);
        else add(h, "galera-join", [apply(h), i === 1 ? stepId(databases[0].name, "galera-bootstrap") : stepId(databases[i - 1].name, "galera-join")]);
    });
    if (databases.length) {
        const lastJoin = databases.length > 1 ? [stepId(databases[databases.length - 1].name, "galera-join")] : [];
        add(databases[0], "db-schema", [stepId(databases[0].name, "galera-bootstrap"), ...lastJoin]);
    }
    return topoSort(steps);
}

/** Dependencies first, otherwise host order then kind order; throws on a cycle or a dangling edge. */
function topoSort(steps: StepSkeleton[]): StepSkeleton[] {
    const byId = new Map(steps.map((s) => [s.id, s]));
    const out: StepSkeleton[] = [];
    const state = new Map<string, "visiting" | "done">();
    const visit = (s: StepSkeleton, trail: string[]) => {
        if (state.get(s.id) === "done") return;
        if (state.get(s.id) === "visiting") throw new Error(`deployment plan has a cycle: ${[...trail, s.id].join(" -> ")}`);
        state.set(s.id, "visiting");
        for (const d of s.dependsOn) {
            const dep = byId.get(d);
            if (!dep) throw new Error(`step ${s.id} waits for unknown step ${d}`);
            visit(dep, [...trail, s.id]);
        }
        state.set(s.id, "done");
        out.push(s);
    };
    steps.forEach((s) => visit(s, []));
    return out;
}

// ---------------------------------------------------------------------------
// The contents (model + rendered files)

function sha256(s: string): string {
    return crypto.createHash("sha256").update(s, "utf8").digest("hex");
}

const scriptCache = new Map<string, string>();
function deployScript(name: string): string {
    let s = scriptCache.get(name);
    if (s === undefined) {
        s = fs.readFileSync(path.join(DEPLOY_SCRIPT_DIR, name), "utf8");
        scriptCache.set(name, s);
    }
    return s;
}

/** Which of the host's own checkers vets a file before it goes live (see config-templates/scripts/deploy/validate.sh). */
export function validatorFor(f: RenderedFile): string {
    const p = f.path;
    if (f.service === "opensips" && /\/opensips\.cfg$/.test(p)) return "opensips-cfg";
    if (f.service === "keepalived" && /\/keepalived\.conf$/.test(p)) return "keepalived-conf";
    if (f.service === "redis-server" && /\/redis\.conf$/.test(p)) return "redis-conf";
    if (f.service === "rtpengine-daemon" && /\/rtpengine\.conf$/.test(p)) return "rtpengine-conf";
    if (f.service === "coturn" && /\/turnserver\.conf$/.test(p)) return "coturn-conf";
    if (f.service === "mariadb" && /\.cnf$/.test(p)) return "mariadb-cnf";
    if (/\.sh$/.test(p) || /^#!\s*\/(usr\/)?bin\/(env\s+)?(ba)?sh\b/.test(f.content)) return "shell";
    if (f.content.includes("-----BEGIN CERTIFICATE-----")) return "x509";
    if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(f.content)) return "private-key";
    return "none";
}

interface ServiceRule {
    readonly action: "restart" | "reload" | "galera";
    readonly health: (host: HostModel, files: readonly RenderedFile[]) => string;
}

/** How a changed config reaches each daemon, and how its health is checked (Debian unit names). */
const SERVICE_RULES: Readonly<Record<string, ServiceRule>> = {
    // SIP sockets bind the VIP secondary address when the stack has one (render/opensips.ts sipListenIp);
    // on the backup proxy keepalived holds that address down, so its check falls back to MI
    opensips: { action: "restart", health: (h) => `opensips ${h.vipPrivateIp ?? h.privateIp} ${PORTS.sip}` },
    // reload keeps the VRRP state: a restart of the master would move the VIP for nothing
    keepalived: { action: "reload", health: () => "active keepalived" },
    "rtpengine-daemon": { action: "restart", health: (h) => `ng ${h.privateIp} ${PORTS.rtpengineNg}` },
    "redis-server": {
        action: "restart",
        health: (h, files) => {
            const conf = files.find((f) => f.service === "redis-server" && /^\s*requirepass\s/m.test(f.content))?.path ?? "/etc/redis/redis.conf";
            return `redis ${conf} ${h.privateIp} ${PORTS.redis}`;
        },
    },
    coturn: { action: "restart", health: (h) => `stun ${h.privateIp} ${PORTS.turn}` },
    mariadb: { action: "galera", health: () => "galera" },
};

/**
 * The order changed services are (re)started in: kernel settings first
 * (OpenSIPS binds the VIP address through ip_nonlocal_bind), keepalived last
 * (its health check asks OpenSIPS, which must be up with its new config).
 */
function serviceRank(unit: string): number {
    if (unit === "systemd-sysctl") return 0;
    if (unit === "keepalived") return 2;
    return 1;
}

/** apt packages a host needs, pinned where the stack pins them. */
export function packagesFor(spec: GatewaySpec, host: HostPlan, files: readonly RenderedFile[]): string[] {
    const pins = spec.packageVersions;
    const pin = (name: string, version?: string) => (version ? `${name}=${version}` : name);
    const pkgs = new Set<string>();
    const mentions = (re: RegExp) => files.some((f) => re.test(f.content));
    switch (host.role) {
        case "sip-proxy": {
            pkgs.add(pin("opensips", pins.opensips));
            for (const f of files.filter((x) => x.service === "opensips"))
                for (const m of f.content.matchAll(/^\s*loadmodule\s+"([a-z0-9_]+)(\.so)?"/gm)) {
                    const pkg = OPENSIPS_MODULE_PACKAGES[m[1]];
                    if (pkg) pkgs.add(pin(pkg, pins.opensips));
                }
            if (files.some((f) => f.service === "keepalived")) pkgs.add(pin("keepalived", pins.keepalived));
            if (mentions(/\bopensips-cli\b/)) pkgs.add("opensips-cli");
            // the VIP notify script moves the EIP with the AWS CLI when it uses it
            if (mentions(/^\s*[^#\n]*\baws\s+ec2\b/m)) pkgs.add("awscli");
            ["ca-certificates", "curl", "socat"].forEach((p) => pkgs.add(p));
            break;
        }
        case "media-relay":
            pkgs.add(pin("rtpengine-daemon", pins.rtpengine));
            if (spec.rtpengineForwarding === "kernel") {
                pkgs.add(pin("rtpengine-kernel-dkms", pins.rtpengine));
                pkgs.add(pin("rtpengine-iptables", pins.rtpengine));
            }
            pkgs.add("socat");
            break;
        case "database":
            ["mariadb-server", "mariadb-client", "mariadb-backup"].forEach((p) => pkgs.add(pin(p, pins.mariadb)));
            ["galera-4", "socat"].forEach((p) => pkgs.add(p));
            break;
        case "cache":
            ["redis-server", "redis-tools"].forEach((p) => pkgs.add(pin(p, pins.redis)));
            break;
        case "turn":
            pkgs.add(pin("coturn", pins.coturn));
            break;
    }
    return [...pkgs].sort();
}

function reposFor(packages: readonly string[]): string[] {
    const rows: string[] = [];
    const tsv = (...c: string[]) => c.join("\t");
    if (packages.some((p) => p.startsWith("opensips") && !p.startsWith("opensips-cli")))
        rows.push(tsv("opensips", OPENSIPS_APT.keyring, OPENSIPS_APT.keyUrl, OPENSIPS_APT.uri, OPENSIPS_APT.releaseSuite));
    if (packages.some((p) => p.startsWith("opensips-cli"))) rows.push(tsv("opensips-cli", OPENSIPS_APT.keyring, OPENSIPS_APT.keyUrl, OPENSIPS_APT.uri, OPENSIPS_APT.cliSuite));
    return rows;
}

/** Every secret value of the model, as the strings that could show up in a file or an error message. */
export function secretValues(model: GatewayModel): string[] {
    const s = model.secrets;
    const keyLines = s.tls.privateKeyPem
        .split("\n")
        .map((l) => l.trim())
        .filter((l) => l.length >= 16 && !l.startsWith("-----"));
    const all = [s.databasePassword, s.databaseSstPassword, s.redisPassword, s.turnSharedSecret, ...Object.values(s.subscriberPasswords), s.tls.privateKeyPem, ...keyLines];
    return [...new Set(all.filter((v) => v.length > 0))].sort();
}

const ENTRY_RE = /^[A-Za-z0-9._\/-]+$/;
const SAFE_FIELD_RE = /^[^\t\n]+$/;

/** The stdin bundle: a header line, then per entry "sha256 name" and its content as one base64 line, then "end". */
export function encodeBundle(entries: ReadonlyArray<readonly [string, string]>): string {
    const lines = ["ifbus-bundle 1"];
    for (const [name, content] of entries) {
        if (!ENTRY_RE.test(name) || name.startsWith("/") || name.includes("..")) throw new Error(`bundle entry name "${name}" is not a safe relative path`);
        lines.push(`${sha256(content)} ${name}`, Buffer.from(content, "utf8").toString("base64"));
    }
    lines.push("end", "");
    return lines.join("\n");
}

/** Decode a bundle (tests and tools): entries in order. */
export function decodeBundle(stdin: string): Map<string, string> {
    const lines = stdin.split("\n");
    if (lines[0] !== "ifbus-bundle 1") throw new Error("not an ifbus bundle v1");
    const out = new Map<string, string>();
    for (let i = 1; lines[i] !== "end"; i += 2) {
        const name = lines[i].split(" ")[1];
        out.set(name, Buffer.from(lines[i + 1], "base64").toString("utf8"));
    }
    return out;
}

/** The loader the remote shell runs: unpack stdin into a private directory under /run, verify, hand over. No single quotes (it is wrapped in them). */
function loader(kind: StepKind): string {
    return [
        "set -euo pipefail",
        "umask 077",
        "w=$(mktemp -d /run/ifbus-step.XXXXXX)",
        'trap "rm -rf -- $w" EXIT',
        "read -r magic version",
        '[ "$magic" = ifbus-bundle ] && [ "$version" = 1 ] || { echo "stdin is not an ifbus bundle v1" >&2; exit 2; }',
        'while read -r sum name; do',
        '  [ "$sum" = end ] && break',
        "  IFS= read -r data",
        '  case $name in */*) mkdir -p "$w/${name%/*}" ;; esac',
        '  printf %s "$data" | base64 -d >"$w/$name"',
        '  printf "%s  %s\\n" "$sum" "$w/$name" | sha256sum -c --status || { echo "bundle entry $name is corrupt" >&2; exit 2; }',
        "done",
        '. "$w/lib/lib.sh"',
        `ifbus_main "$w" ${kind}`,
    ].join("\n");
}

const KIND_TITLES: Record<StepKind, string> = {
    "wait-ready": "wait for SSH and the end of boot (cloud-init)",
    install: "install packages",
    apply: "stage, validate, swap, restart what changed, health check (rollback on failure)",
    "galera-bootstrap": "bootstrap a brand-new Galera cluster on this node (never over existing data)",
    "galera-join": "join the Galera cluster",
    "db-schema": "load the OpenSIPS schema and seed data",
};

function hostFacts(model: GatewayModel, host: HostModel, healthSeconds: number): string {
    const dbs = model.hosts.filter((h) => h.role === "database");
    const facts: [string, string][] = [
        ["stack", model.stack],
        ["host", host.name],
        ["role", host.role],
        ["private_ip", host.privateIp],
        ["health_seconds", String(healthSeconds)],
    ];
    if (host.role === "database") {
        facts.push(["galera_peers", dbs.filter((h) => h.name !== host.name).map((h) => h.privateIp).join(",") || "-"]);
        facts.push(["galera_size", String(dbs.length)]);
        facts.push(["galera_port", String(PORTS.galeraReplication)]);
    }
    return facts.map(([k, v]) => `${k}=${v}`).join("\n") + "\n";
}

function sq(s: string): string {
    if (s.includes("'")) throw new Error("internal: the step loader must not contain a single quote");
    return `'${s}'`;
}

/**
 * The plan: the spec's step graph filled with what each step sends. Every
 * input is a pure function of the model and files (no time, no randomness),
 * so the same inputs give byte-identical steps.
 */
export function planDeployment(model: GatewayModel, hostFiles: readonly HostFiles[], opts: PlanOptions = {}): DeploymentPlan {
    const user = opts.remoteUser ?? "admin";
    const filesOf = new Map(hostFiles.map((hf) => [hf.host, hf.files]));
    const secrets = secretValues(model);
    const scripts: [string, string][] = DEPLOY_SCRIPTS.map((n) => [`lib/${n}`, deployScript(n)]);
    const scriptsHeader = `# scripts sha256:${sha256(scripts.map(([n, c]) => `${n}\0${c}`).join("\0")).slice(0, 16)}`;

    const only = opts.hosts ? new Set(opts.hosts) : undefined;
    const skeletons = planSteps(model.spec)
        .filter((s) => !only || only.has(s.host))
        .map((s) => (only ? { ...s, dependsOn: s.dependsOn.filter((d) => only.has(d.split(":")[0])) } : s));
    const steps = skeletons.map((sk): PlanStep => {
        const host = model.hosts.find((h) => h.name === sk.host);
        if (!host) throw new Error(`plan step ${sk.id}: host ${sk.host} is not in the model`);
        const all = filesOf.get(host.name);
        if (!all) throw new Error(`plan step ${sk.id}: no rendered files for host ${host.name}`);
        for (const f of all) {
            for (const [field, v] of [["path", f.path], ["mode", f.mode], ["owner", f.owner], ["group", f.group], ["service", f.service]] as const)
                if (!SAFE_FIELD_RE.test(v) || /\s/.test(v)) throw new Error(`${host.name}: file ${f.path}: ${field} "${v}" is empty or holds whitespace`);
            if (!f.path.startsWith("/")) throw new Error(`${host.name}: file path ${f.path} is not absolute`);
            if (!/^0?[0-7]{3,4}$/.test(f.mode)) throw new Error(`${host.name}: file ${f.path}: mode "${f.mode}" is not octal`);
        }
        const sqlFiles = all.filter((f) => f.path.endsWith(".sql"));
        const deployFiles = all.filter((f) => !f.path.endsWith(".sql"));
        const entries: [string, string][] = [...scripts, ["facts", hostFacts(model, host, opts.healthSeconds ?? 60)]];
        const header = [`# ifbus-gateway deploy step ${sk.id} (stack ${model.stack}): ${KIND_TITLES[sk.kind]}`, scriptsHeader];
        let files: RenderedFile[] = [];
        let packages: string[] = [];

        switch (sk.kind) {
            case "install":
                packages = packagesFor(model.spec, host, all);
                entries.push(["packages", packages.join("\n") + "\n"], ["repos", reposFor(packages).map((r) => r + "\n").join("")]);
                header.push(...packages.map((p) => `# package ${p}`));
                break;
            case "apply": {
                files = deployFiles;
                const services = [...new Set(files.map((f) => f.service).filter((s) => s !== "none"))].sort((a, b) => serviceRank(a) - serviceRank(b) || a.localeCompare(b));
                const manifest = files.map((f, i) => [f.path, f.mode, f.owner, f.group, f.service, validatorFor(f), sha256(f.content), `files/${i}`].join("\t"));
                const table = services.map((u) => {
                    const rule = SERVICE_RULES[u] ?? { action: "restart", health: () => `active ${u}` };
                    return [u, rule.action, rule.health(host, files)].join("\t");
                });
                files.forEach((f, i) => entries.push([`files/${i}`, f.content]));
                entries.push(["manifest", manifest.map((l) => l + "\n").join("")], ["services", table.map((l) => l + "\n").join("")]);
                break;
            }
            case "db-schema": {
                // the schema goes through the first node only; Galera replicates it
                files = [...sqlFiles].sort((a, b) => a.path.localeCompare(b.path));
                files.forEach((f, i) => entries.push([`sql/${i}.sql`, f.content]));
                entries.push(["sql-order", files.map((_, i) => `sql/${i}.sql\n`).join("")]);
                break;
            }
            default:
                break;
        }
        header.push(...files.map((f) => `# file ${f.path} ${f.mode} ${f.owner}:${f.group} sha256:${sha256(f.content).slice(0, 16)} -> ${f.service}`));

        const payload = entries.map(([, c]) => c).join("\0");
        const present = secrets.filter((s) => payload.includes(s));
        const secret = files.some((f) => f.secret) || present.length > 0;
        if (secret) entries.push(["masks", present.map((s) => Buffer.from(s, "utf8").toString("base64") + "\n").join("")]);
        const stdin = encodeBundle(entries);
        header.push(`# bundle sha256:${sha256(stdin)}`);
        const run = `/bin/bash -c ${sq(loader(sk.kind))} ifbus-step`;
        const command = [...header, user === "root" ? run : `sudo -n ${run}`, ""].join("\n");
        for (const s of secrets) if (command.includes(s)) throw new Error(`plan step ${sk.id}: a secret would appear in the command text`);
        return {
            ...sk,
            command,
            stdin,
            hash: sha256(`${command}\0${stdin}`),
            secret,
            files: files.map((f) => ({ path: f.path, sha256: sha256(f.content), service: f.service, secret: f.secret })),
            packages,
            timeoutSeconds: STEP_TIMEOUT_SECONDS[sk.kind],
        };
    });
    return { stack: model.stack, steps };
}

/** Ids of the steps that would run after `before` was applied: new steps and steps whose hash changed. */
export function changedSteps(before: DeploymentPlan | undefined, after: DeploymentPlan): string[] {
    const old = new Map((before?.steps ?? []).map((s) => [s.id, s.hash]));
    return after.steps.filter((s) => old.get(s.id) !== s.hash).map((s) => s.id);
}
