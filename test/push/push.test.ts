// The push under Pulumi mocks: the registered Command graph for the prod
// stack (per-host and cross-host order), stability across two runs, change
// locality for one config value, and secrets kept out of non-secret inputs.
import { strict as assert } from "assert";
import { execFile } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { exampleModel, secretValues } from "../support/stacks";
import { offlineModel } from "../../components/offline";
import { renderAll } from "../../components/render";
import { planSteps } from "../../components/plan";
import type { GatewayModel } from "../../components/model";
import type { PushLoad, RecordedCommand } from "./load-push";
import { SECRET_SIG, SECRET_SIG_KEY } from "../mocks";

const LOADER = path.join(__dirname, "load-push.ts");

function loadPush(model: GatewayModel, extra: { user?: string; machineIds?: Record<string, string> } = {}): Promise<PushLoad> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ifbus-push-"));
    const inFile = path.join(dir, "in.json");
    const outFile = path.join(dir, "out.json");
    fs.writeFileSync(inFile, JSON.stringify({ model, user: extra.user ?? "admin", machineIds: extra.machineIds }), { mode: 0o600 });
    return new Promise((resolve, reject) =>
        execFile(process.execPath, ["--import", "tsx", LOADER, inFile, outFile], { cwd: path.resolve(__dirname, "..", ".."), timeout: 90_000 }, (err, _o, stderr) => {
            try {
                if (err || !fs.existsSync(outFile)) return reject(new Error(`load-push failed: ${err?.message}\n${stderr}`));
                resolve(JSON.parse(fs.readFileSync(outFile, "utf8")) as PushLoad);
            } finally {
                fs.rmSync(dir, { recursive: true, force: true });
            }
        }),
    );
}

const isSecret = (v: unknown): v is { value: unknown } => typeof v === "object" && v !== null && (v as Record<string, unknown>)[SECRET_SIG_KEY] === SECRET_SIG;
const unwrap = (v: unknown): unknown => (isSecret(v) ? unwrap(v.value) : Array.isArray(v) ? v.map(unwrap) : v && typeof v === "object" ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, unwrap(x)])) : v);

/** Every plain (not secret-wrapped) string inside a value. */
function plainStrings(v: unknown, out: string[] = []): string[] {
    if (isSecret(v)) return out;
    if (typeof v === "string") out.push(v);
    else if (Array.isArray(v)) v.forEach((x) => plainStrings(x, out));
    else if (v && typeof v === "object") Object.values(v).forEach((x) => plainStrings(x, out));
    return out;
}

const byName = (l: PushLoad) => new Map(l.commands.map((c) => [c.name, c]));
const stepName = (id: string) => `push-${id.replace(":", "-")}`;
function changedCommands(a: PushLoad, b: PushLoad): string[] {
    const old = byName(a);
    return b.commands.filter((c) => JSON.stringify(unwrap(c.inputs)) !== JSON.stringify(unwrap(old.get(c.name)?.inputs))).map((c) => c.name).sort();
}
/** hosts whose rendered files differ between two models */
function hostsWithChangedFiles(a: GatewayModel, b: GatewayModel): string[] {
    const fa = new Map(renderAll(a).map((h) => [h.host, JSON.stringify(h.files)]));
    return renderAll(b).filter((h) => fa.get(h.host) !== JSON.stringify(h.files)).map((h) => h.host).sort();
}

describe("push: the deployment plan as @pulumi/command resources (prod, mocks)", function () {
    this.timeout(180_000);
    let model: GatewayModel;
    let first: PushLoad;
    let second: PushLoad;

    before(async () => {
        model = exampleModel("prod");
        [first, second] = await Promise.all([loadPush(model), loadPush(model)]);
    });

    it("registers one Command per plan step, named after host and step", () => {
        const expected = planSteps(model.spec).map((s) => stepName(s.id)).sort();
        assert.deepEqual(first.commands.map((c) => c.name), expected);
        assert.equal(first.commands.length, 34);
    });

    it("runs each host's steps one after another: wait-ready, install, apply, then the Galera steps", () => {
        const c = byName(first);
        for (const h of model.hosts) {
            assert.deepEqual(c.get(stepName(`${h.name}:wait-ready`))!.dependsOn, []);
            assert.deepEqual(c.get(stepName(`${h.name}:install`))!.dependsOn, [stepName(`${h.name}:wait-ready`)]);
            assert.ok(c.get(stepName(`${h.name}:apply`))!.dependsOn.includes(stepName(`${h.name}:install`)));
        }
        assert.deepEqual(c.get("push-database-1-galera-bootstrap")!.dependsOn, ["push-database-1-apply"]);
    });

    it("bootstraps Galera on one node, joins the others one at a time, then loads the schema once", () => {
        const c = byName(first);
        assert.equal(first.commands.filter((x) => x.name.endsWith("galera-bootstrap")).length, 1);
        assert.equal(first.commands.filter((x) => x.name.endsWith("db-schema")).length, 1);
        assert.deepEqual(c.get("push-database-2-galera-join")!.dependsOn.sort(), ["push-database-1-galera-bootstrap", "push-database-2-apply"]);
        assert.deepEqual(c.get("push-database-3-galera-join")!.dependsOn.sort(), ["push-database-2-galera-join", "push-database-3-apply"]);
        assert.deepEqual(c.get("push-database-1-db-schema")!.dependsOn.sort(), ["push-database-1-galera-bootstrap", "push-database-3-galera-join"]);
    });

    it("rolls the proxies backup first, after Redis, every relay and the schema; TURN waits for nobody else", () => {
        const c = byName(first);
        assert.deepEqual(c.get("push-sip-proxy-2-apply")!.dependsOn.sort(), [
            "push-cache-1-apply",
            "push-database-1-db-schema",
            "push-media-relay-1-apply",
            "push-media-relay-2-apply",
            "push-sip-proxy-2-install",
        ]);
        assert.deepEqual(c.get("push-sip-proxy-1-apply")!.dependsOn.sort(), ["push-sip-proxy-1-install", "push-sip-proxy-2-apply"]);
        assert.deepEqual(c.get("push-media-relay-2-apply")!.dependsOn.sort(), ["push-cache-1-apply", "push-media-relay-1-apply", "push-media-relay-2-install"]);
        assert.deepEqual(c.get("push-turn-1-apply")!.dependsOn, ["push-turn-1-install"]);
        assert.deepEqual(c.get("push-turn-2-apply")!.dependsOn.sort(), ["push-turn-1-apply", "push-turn-2-install"]);
    });

    it("gives the first step unlimited dial errors and a per-dial timeout, every other step the default", () => {
        for (const cmd of first.commands) {
            const conn = unwrap(cmd.inputs.connection) as Record<string, unknown>;
            if (cmd.name.endsWith("wait-ready")) {
                assert.equal(conn.dialErrorLimit, -1, cmd.name);
                assert.ok(Number(conn.perDialTimeout) > 0, cmd.name);
            } else assert.equal(conn.dialErrorLimit, 10, cmd.name);
            assert.equal(conn.user, "admin");
            assert.ok(String(conn.privateKey).includes("MOCKDEPLOYKEY"), `${cmd.name} connects with the deploy key`);
            assert.ok(cmd.customTimeouts?.create && cmd.customTimeouts.update, `${cmd.name} has a bounded timeout`);
        }
    });

    it("two runs with the same config register identical Command inputs", () => {
        assert.deepEqual(
            second.commands.map((c) => [c.name, unwrap(c.inputs)]),
            first.commands.map((c) => [c.name, unwrap(c.inputs)]),
        );
        assert.deepEqual(changedCommands(first, second), []);
    });

    it("content changes update in place: no triggers unless the machine identity is given, which replaces every step of that host", async () => {
        assert.ok(first.commands.every((c) => c.inputs.triggers === undefined));
        const withIds = await loadPush(model, { machineIds: Object.fromEntries(model.hosts.map((h) => [h.name, `i-${h.name}`])) });
        for (const c of withIds.commands) assert.deepEqual(unwrap(c.inputs.triggers), [`i-${c.name.replace(/^push-/, "").replace(/-(wait-ready|install|apply|galera-bootstrap|galera-join|db-schema)$/, "")}`]);
    });

    it("changing the RTP port range changes only the Commands of hosts whose files change (the relays' apply)", async () => {
        const spec = { ...model.spec, rtpPorts: { min: 12000, max: 22000 } };
        const changed = offlineModel(spec, { secrets: model.secrets });
        const hosts = hostsWithChangedFiles(model, changed);
        assert.ok(hosts.includes("media-relay-1") && hosts.includes("media-relay-2"), `relays render the port range (changed: ${hosts})`);
        const after = await loadPush(changed);
        assert.deepEqual(changedCommands(first, after), hosts.map((h) => stepName(`${h}:apply`)).sort());
    });

    it("changing the TURN secret changes only the TURN servers' apply Commands", async () => {
        const changed: GatewayModel = { ...model, secrets: { ...model.secrets, turnSharedSecret: "rotated" + model.secrets.turnSharedSecret.slice(0, 10) } };
        assert.deepEqual(hostsWithChangedFiles(model, changed), ["turn-1", "turn-2"]);
        const after = await loadPush(changed);
        assert.deepEqual(changedCommands(first, after), ["push-turn-1-apply", "push-turn-2-apply"]);
    });

    it("keeps every secret out of non-secret inputs; steps carrying secrets are secret whole and log nothing", () => {
        const secrets = secretValues(model);
        for (const cmd of first.commands) {
            for (const s of plainStrings(cmd.inputs)) for (const v of secrets) assert.ok(!s.includes(v), `${cmd.name} has a secret in a plain input`);
            assert.equal(cmd.inputs.addPreviousOutputInEnv, false, cmd.name);
            assert.ok(!isSecret(cmd.inputs.create), `${cmd.name}: the command text stays readable in preview`);
            assert.ok(isSecret(cmd.inputs.connection), `${cmd.name}: the connection holds the private key`);
        }
        const planned = new Set(first.plannedSecretSteps.map(stepName));
        assert.ok(planned.size >= 10);
        for (const cmd of first.commands) {
            if (!planned.has(cmd.name)) continue;
            assert.ok(isSecret(cmd.inputs.stdin), `${cmd.name}: stdin is secret`);
            assert.equal(cmd.inputs.logging, "none", cmd.name);
            // the SDK itself adds "connection"
            assert.ok(["stdout", "stderr"].every((o) => cmd.additionalSecretOutputs.includes(o)), cmd.name);
        }
        const plain = first.commands.filter((c) => !planned.has(c.name));
        assert.ok(plain.some((c) => c.name.endsWith("install")) && plain.every((c) => !isSecret(c.inputs.stdin)), "steps without secrets stay readable");
    });

    it("runs the steps as root through sudo for the Debian login user, directly when the user is root", async () => {
        const cmd = (l: PushLoad, n: string) => String(unwrap(l.commands.find((c) => c.name === n)!.inputs.create));
        assert.match(cmd(first, "push-cache-1-apply"), /^sudo -n \/bin\/bash -c '/m);
        const asRoot = await loadPush(model, { user: "root" });
        assert.doesNotMatch(cmd(asRoot, "push-cache-1-apply"), /sudo/);
        assert.match(cmd(asRoot, "push-cache-1-apply"), /^# file \/etc\/redis\/redis\.conf 0640 redis:redis sha256:[0-9a-f]{16} -> redis-server$/m);
    });
});

export type { RecordedCommand };
