// OpenSIPS for lab proxies. OpenSIPS is not in Debian, and lab hosts have no
// route out of the lab, so a proxy's packages come from a local OpenSIPS
// installation (IFBUS_OPENSIPS_PREFIX, e.g. /opt/opensips) bind-mounted
// read-only into the host, packaged the Debian way: small local .deb packages
// named like the official ones (opensips, opensips-*-module, opensips-cli)
// carry /usr/sbin/opensips, the systemd unit and the opensips user, so the
// plan's install step finds them with dpkg-query and the apply step drives
// them through systemd exactly as on a VM with the official packages. The
// same goes for `awscli`, whose lab package is a stand-in that hands
// `aws ec2 associate-address` to the lab's controller (lab/controller.ts).
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { execFileSync } from "child_process";
import { LAB_CACHE_DIR } from "./base";
import { IMDS_IP } from "./network";

export const OPENSIPS_PREFIX_ENV = "IFBUS_OPENSIPS_PREFIX";
export const OPENSIPS_CLI_ENV = "IFBUS_OPENSIPS_CLI";

export interface LocalOpensips {
    /** installation prefix, bind-mounted at the same path */
    readonly prefix: string;
    readonly binary: string;
    /** module directory with a trailing slash (the build has no default: DOMAIN-FACTS 9) */
    readonly moduleDir: string;
    /** e.g. 3.6.8 */
    readonly version: string;
    /** the opensips-cli executable and the venv it lives in (bind-mounted too) */
    readonly cli?: { readonly executable: string; readonly venv: string };
}

function onPath(cmd: string): string | undefined {
    for (const d of (process.env.PATH ?? "").split(":")) {
        const p = path.join(d, cmd);
        try {
            fs.accessSync(p, fs.constants.X_OK);
            return p;
        } catch {
            /* next */
        }
    }
    return undefined;
}

/** The prefix of an `opensips` found on PATH (for the refusal message and the tests). */
export function opensipsPrefixOnPath(): string | undefined {
    const bin = onPath("opensips");
    if (!bin) return undefined;
    const real = fs.realpathSync(bin);
    if (real === "/usr/sbin/opensips") return undefined;
    return path.dirname(path.dirname(real));
}

/** What `lab up` says when a stack has proxies and no OpenSIPS can be had. */
export function noOpensipsMessage(): string {
    const found = opensipsPrefixOnPath();
    return [
        "the lab cannot deploy the sip-proxy role: OpenSIPS is not in Debian, lab hosts have no route to the official",
        "OpenSIPS apt repository, and no local OpenSIPS installation was given.",
        `Set ${OPENSIPS_PREFIX_ENV} to the prefix of an OpenSIPS 3.6 installation (holding sbin/opensips and its modules)${found ? `, e.g. ${OPENSIPS_PREFIX_ENV}=${found} (found on PATH)` : ""},`,
        `and put opensips-cli on PATH (or set ${OPENSIPS_CLI_ENV}), then run the command again.`,
    ].join("\n");
}

/** The local OpenSIPS named by IFBUS_OPENSIPS_PREFIX (or `prefix`), or a reason why there is none. */
export function findLocalOpensips(prefix = process.env[OPENSIPS_PREFIX_ENV]): LocalOpensips | { readonly reason: string } {
    if (!prefix) return { reason: `${OPENSIPS_PREFIX_ENV} is not set` };
    const binary = path.join(prefix, "sbin", "opensips");
    if (!fs.existsSync(binary)) return { reason: `${OPENSIPS_PREFIX_ENV}=${prefix} holds no sbin/opensips` };
    const moduleDir = ["lib64/opensips/modules", "lib/opensips/modules", "lib/x86_64-linux-gnu/opensips/modules"].map((d) => path.join(prefix, d)).find((d) => fs.existsSync(path.join(d, "tm.so")));
    if (!moduleDir) return { reason: `no OpenSIPS module directory (with tm.so) under ${prefix}` };
    const v = /^version: opensips (\S+)/m.exec(execFileSync(binary, ["-V"], { encoding: "utf8" }));
    if (!v) return { reason: `${binary} -V names no version` };
    let cli: LocalOpensips["cli"];
    const cliBin = process.env[OPENSIPS_CLI_ENV] ?? [path.join(prefix, "bin", "opensips-cli")].find((p) => fs.existsSync(p)) ?? onPath("opensips-cli");
    if (cliBin) {
        const real = fs.realpathSync(cliBin);
        const venv = path.dirname(path.dirname(real));
        // a venv over the system Python (the base root's python3) travels as one directory
        if (fs.existsSync(path.join(venv, "pyvenv.cfg"))) cli = { executable: real, venv };
        else if (real.startsWith(`${prefix}/`)) cli = { executable: real, venv: prefix };
    }
    return { prefix, binary, moduleDir: `${moduleDir}/`, version: v[1], cli };
}

export function isLocalOpensips(x: LocalOpensips | { reason: string }): x is LocalOpensips {
    return "prefix" in x;
}

/** Directories to bind-mount read-only into a lab proxy. */
export function opensipsBindMounts(o: LocalOpensips): string[] {
    return [o.prefix, ...(o.cli && o.cli.venv !== o.prefix ? [o.cli.venv] : [])];
}

// ---------------------------------------------------------------- the lab's local packages

interface DebFile {
    readonly path: string;
    readonly mode: number;
    readonly content: string;
}

interface Deb {
    readonly name: string;
    readonly version: string;
    readonly description: string;
    readonly depends?: string;
    readonly files: readonly DebFile[];
    readonly postinst?: string;
}

/**
 * /usr/sbin/opensips: the local build takes each `-f CONFIG` through a
 * two-line config on stdin that sets mpath and includes CONFIG unchanged, so
 * the rendered opensips.cfg is byte for byte what production runs.
 */
function opensipsWrapper(o: LocalOpensips): string {
    return `#!/bin/bash
# IF.bus lab: OpenSIPS ${o.version} from the local installation at ${o.prefix} (bind-mounted read-only).
# That build has no default module directory, so every -f CONFIG is read through
# a config on stdin that sets mpath and includes CONFIG unchanged.
set -euo pipefail
args=()
cfg=""
while [ $# -gt 0 ]; do
    if [ "$1" = -f ] && [ $# -ge 2 ]; then
        cfg=$(readlink -f -- "$2")
        args+=(-f /dev/stdin)
        shift 2
        continue
    fi
    args+=("$1")
    shift
done
if [ -z "$cfg" ]; then exec ${o.binary} "\${args[@]}"; fi
[ -r "$cfg" ] || { echo "opensips: cannot read $cfg" >&2; exit 1; }
exec ${o.binary} "\${args[@]}" <<EOF
mpath="${o.moduleDir}"
include_file "$cfg"
EOF
`;
}

/** The unit of the official Debian package (packaging/debian/opensips.service of 3.6), without the m4 preprocessor step. */
const OPENSIPS_UNIT = `[Unit]
Description=OpenSIPS SIP Server
After=network.target mysqld.service postgresql.service rtpproxy.service

[Service]
Type=forking
User=opensips
Group=opensips
RuntimeDirectory=opensips
RuntimeDirectoryMode=775
Environment=P_MEMORY=32 S_MEMORY=32
EnvironmentFile=-/etc/default/opensips
PIDFile=%t/opensips/opensips.pid
ExecStart=/usr/sbin/opensips -P %t/opensips/opensips.pid -f /etc/opensips/opensips.cfg -m $S_MEMORY -M $P_MEMORY $OPTIONS
Restart=always
TimeoutStopSec=30s

[Install]
WantedBy=multi-user.target
`;

/** `aws` in a lab proxy: the one call the VIP notify script makes, answered by the lab controller at the IMDS address. */
const AWS_STANDIN = `#!/bin/sh
# IF.bus lab stand-in for the AWS CLI: only \`aws ec2 associate-address\`, which
# the lab controller (reached at the instance metadata address) performs on the
# lab's 1:1 NAT, as EC2 would move the Elastic IP.
set -eu
if [ "\${1:-}" != ec2 ] || [ "\${2:-}" != associate-address ]; then
    echo "aws (IF.bus lab stand-in): only 'aws ec2 associate-address' exists here" >&2
    exit 252
fi
shift 2
alloc="" eni="" ip="" reassoc=false
while [ $# -gt 0 ]; do
    case $1 in
        --allocation-id) alloc=$2; shift ;;
        --network-interface-id) eni=$2; shift ;;
        --private-ip-address) ip=$2; shift ;;
        --allow-reassociation) reassoc=true ;;
        --region | --cli-connect-timeout | --cli-read-timeout | --output) shift ;;
    esac
    shift
done
exec curl -sSf --max-time 10 -X POST \\
    --data-urlencode "AllocationId=$alloc" --data-urlencode "NetworkInterfaceId=$eni" \\
    --data-urlencode "PrivateIpAddress=$ip" --data-urlencode "AllowReassociation=$reassoc" \\
    http://${IMDS_IP}/lab/ec2/associate-address
`;

/** The lab's stand-in for each package the plan installs that Debian does not have. */
function labDeb(name: string, o: LocalOpensips | undefined): Deb | undefined {
    const ver = o ? `${o.version}-0iflab1` : "0";
    if (name === "awscli")
        return { name, version: "2.0.0-0iflab1", description: "IF.bus lab stand-in for the AWS CLI (ec2 associate-address only)", files: [{ path: "/usr/bin/aws", mode: 0o755, content: AWS_STANDIN }] };
    if (!o) return undefined;
    if (name === "opensips")
        return {
            name,
            version: ver,
            description: `OpenSIPS ${o.version} from the local installation at ${o.prefix} (IF.bus lab)`,
            files: [
                { path: "/usr/sbin/opensips", mode: 0o755, content: opensipsWrapper(o) },
                { path: "/lib/systemd/system/opensips.service", mode: 0o644, content: OPENSIPS_UNIT },
                { path: "/usr/lib/tmpfiles.d/opensips.conf", mode: 0o644, content: "d /run/opensips 0775 opensips opensips -\n" },
            ],
            // as the official postinst: a system user and group named opensips
            postinst: "#!/bin/sh\nset -e\nif [ \"$1\" = configure ]; then\n    getent group opensips >/dev/null || groupadd --system opensips\n    getent passwd opensips >/dev/null || useradd --system --gid opensips --home-dir /run/opensips --shell /bin/false opensips\n    install -d -m 0755 /etc/opensips\nfi\n",
        };
    if (name === "opensips-cli") {
        if (!o.cli) return undefined;
        return {
            name,
            version: ver,
            description: "opensips-cli from the local installation (IF.bus lab)",
            files: [{ path: "/usr/bin/opensips-cli", mode: 0o755, content: `#!/bin/sh\nexec ${o.cli.executable} "$@"\n` }],
        };
    }
    // the module packages: the local installation holds every module
    if (name.startsWith("opensips-")) return { name, version: ver, description: `OpenSIPS modules (${name}) from the local installation (IF.bus lab)`, depends: "opensips", files: [] };
    return undefined;
}

/** Package names (no version pins) the plan installs that the lab must provide itself. */
export function labProvidedPackages(packages: readonly string[]): string[] {
    return [...new Set(packages.map((p) => p.split("=")[0]).filter((p) => p === "awscli" || p.startsWith("opensips")))].sort();
}

/**
 * Build (or reuse from the cache) the lab's .deb for each of `names`; throws
 * naming what cannot be provided (e.g. no opensips-cli found).
 */
export function buildLabDebs(names: readonly string[], o: LocalOpensips | undefined): string[] {
    const out: string[] = [];
    for (const name of names) {
        const deb = labDeb(name, o);
        if (!deb) throw new Error(name.startsWith("opensips") ? (o ? `no local ${name}: put opensips-cli on PATH or set ${OPENSIPS_CLI_ENV}` : noOpensipsMessage()) : `the lab has no stand-in for package ${name}`);
        const key = crypto.createHash("sha256").update(JSON.stringify(deb)).digest("hex").slice(0, 12);
        const file = path.join(LAB_CACHE_DIR, "debs", `${deb.name}_${deb.version}_${key}.deb`);
        if (!fs.existsSync(file)) {
            const tmp = fs.mkdtempSync(path.join(LAB_CACHE_DIR, "deb-build-"));
            try {
                fs.mkdirSync(path.join(tmp, "DEBIAN"), { recursive: true });
                const control = [`Package: ${deb.name}`, `Version: ${deb.version}`, "Architecture: all", "Maintainer: IF.bus lab <lab@localhost>", ...(deb.depends ? [`Depends: ${deb.depends}`] : []), `Description: ${deb.description}`, ""].join("\n");
                fs.writeFileSync(path.join(tmp, "DEBIAN", "control"), control);
                if (deb.postinst) fs.writeFileSync(path.join(tmp, "DEBIAN", "postinst"), deb.postinst, { mode: 0o755 });
                for (const f of deb.files) {
                    const dest = path.join(tmp, f.path);
                    fs.mkdirSync(path.dirname(dest), { recursive: true, mode: 0o755 });
                    fs.writeFileSync(dest, f.content, { mode: f.mode });
                    fs.chmodSync(dest, f.mode);
                }
                fs.mkdirSync(path.dirname(file), { recursive: true });
                execFileSync("dpkg-deb", ["--root-owner-group", "-Zgzip", "--build", tmp, `${file}.tmp`], { stdio: ["ignore", "pipe", "pipe"] });
                fs.renameSync(`${file}.tmp`, file);
            } finally {
                fs.rmSync(tmp, { recursive: true, force: true });
            }
        }
        out.push(file);
    }
    return out;
}

/** Install the lab's packages into a host's root before it boots (dpkg in a chroot, nothing started). */
export function installLabDebs(root: string, debs: readonly string[]): void {
    if (!debs.length) return;
    const dir = path.join(root, "var/cache/ifbus-lab-debs");
    fs.mkdirSync(dir, { recursive: true });
    const inRoot = debs.map((d) => {
        fs.copyFileSync(d, path.join(dir, path.basename(d)));
        return `/var/cache/ifbus-lab-debs/${path.basename(d)}`;
    });
    try {
        execFileSync("chroot", [root, "dpkg", "--install", ...inRoot], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, DEBIAN_FRONTEND: "noninteractive", PATH: "/usr/sbin:/usr/bin:/sbin:/bin" } });
    } catch (e) {
        const err = e as { stderr?: Buffer; message: string };
        throw new Error(`installing the lab packages into ${root} failed: ${err.stderr?.toString().trim() || err.message}`);
    } finally {
        fs.rmSync(dir, { recursive: true, force: true });
    }
}

/**
 * Debian packages holding the shared libraries that `modules` of the local
 * OpenSIPS link and that the base root lacks (ldd on this machine, dpkg -S
 * to name the package): the lab then builds a base with them.
 */
export function missingLibraryPackages(o: LocalOpensips, modules: readonly string[], rootfs: string): string[] {
    const libs = new Set<string>();
    for (const file of [o.binary, ...modules.map((m) => path.join(o.moduleDir, `${m}.so`))]) {
        if (!fs.existsSync(file)) continue;
        for (const line of execFileSync("ldd", [file], { encoding: "utf8" }).split("\n")) {
            const m = /=>\s+(\/\S+)/.exec(line);
            if (m) libs.add(fs.realpathSync(m[1]));
        }
    }
    const pkgs = new Set<string>();
    for (const lib of libs) {
        if (fs.existsSync(path.join(rootfs, lib))) continue;
        const owner = execFileSync("dpkg", ["-S", lib], { encoding: "utf8" }).split(":")[0].trim();
        if (!owner) throw new Error(`no Debian package on this machine holds ${lib}, which the local OpenSIPS needs`);
        pkgs.add(owner);
    }
    return [...pkgs].sort();
}

/** The modules a rendered opensips.cfg loads. */
export function loadedModules(cfg: string): string[] {
    return [...cfg.matchAll(/^\s*loadmodule\s+"([a-z0-9_]+)(\.so)?"/gm)].map((m) => m[1]);
}
