// The plan's step scripts, run for real: one VM-like lab host (network
// namespace, overlay root, systemd, sshd) with the cache role, driven over
// OpenSSH with the lab's deploy key and pinned host key, exactly as the
// Command resources send them (command + stdin bundle).
import { strict as assert } from "assert";
import { createHash } from "crypto";
import { exampleModel } from "../support/stacks";
import { planDeployment, DeploymentPlan } from "../../components/plan";
import { renderCache } from "../../components/render/redis";
import type { HostFiles } from "../../components/render/types";
import type { GatewayModel } from "../../components/model";
import { Lab } from "../../lab/host";
import { ensureBase } from "../../lab/base";
import { runPlan, PlanRun } from "../../lab/runner";

const HOST = "cache-1";
const sha256 = (s: string) => createHash("sha256").update(s).digest("hex");
const CONF = "/etc/redis/redis.conf";

describe("deploy steps over real SSH on a lab cache host", function () {
    this.timeout(120_000);
    let lab: Lab | undefined;
    let model: GatewayModel;
    let files: HostFiles;

    const plan = (m: GatewayModel, hf: HostFiles): DeploymentPlan => planDeployment(m, [hf], { remoteUser: "root", hosts: [HOST], healthSeconds: 10 });
    const sh = (cmd: string) => lab!.sh(HOST, cmd);
    const invocation = () => sh("systemctl show -p InvocationID --value redis-server");
    const liveSha = () => sh(`sha256sum ${CONF} | cut -d' ' -f1`);
    /** redis logs one "Ready to accept connections" per start of the daemon */
    const starts = async () => Number(await sh("grep -c 'Ready to accept connections' /var/log/redis/redis-server.log || true"));
    const allOutput = (r: PlanRun) => r.runs.map((x) => x.stdout + x.stderr).join("\n");
    const withConf = (edit: (c: string) => string): HostFiles => ({ ...files, files: files.files.map((f) => (f.path === CONF ? { ...f, content: edit(f.content) } : f)) });

    before(async function () {
        // the base root is built once per machine (about a minute) and cached
        this.timeout(20 * 60_000);
        const base = ensureBase();
        model = exampleModel("dev");
        const host = model.hosts.find((h) => h.name === HOST)!;
        files = { host: HOST, role: "cache", files: renderCache(model, host) };
        lab = Lab.create({ subnets: [host.subnetCidr], vpcCidr: model.spec.vpcCidr, base });
        await lab.addHost({ name: HOST, privateIp: host.privateIp, subnetCidr: host.subnetCidr });
    });

    after(() => {
        if (!lab) return;
        lab.destroy();
        assert.deepEqual(lab.leftovers(), [], "the lab left namespaces, mounts or cgroups behind");
    });

    it("converges a bare host: packages present, config live, redis answers PING with the password", async () => {
        assert.equal(await sh("systemctl is-active redis-server || true"), "inactive", "a bare host has no running redis");
        const r = await runPlan(plan(model, files), lab!);
        assert.equal(r.failed, undefined, r.failed && `${r.failed.id} failed:\n${r.failed.stdout}\n${r.failed.stderr}`);
        assert.deepEqual(r.runs.map((x) => x.id), [`${HOST}:wait-ready`, `${HOST}:install`, `${HOST}:apply`]);
        assert.match(allOutput(r), /all packages present, apt not touched/);
        assert.match(allOutput(r), /restarted: redis-server/);
        assert.equal(await liveSha(), sha256(files.files.find((f) => f.path === CONF)!.content));
        assert.equal(await sh(`stat -c '%a %U %G' ${CONF}`), "640 redis redis");
        const host = model.hosts.find((h) => h.name === HOST)!;
        const pong = await lab!.ssh(HOST, `REDISCLI_AUTH="$(awk '$1=="requirepass"{print $2}' ${CONF})" redis-cli --no-auth-warning -h ${host.privateIp} ping`);
        assert.equal(pong.stdout.trim(), "PONG");
        assert.equal(await sh("systemctl is-enabled redis-server"), "enabled");
        assert.ok(!allOutput(r).includes(model.secrets.redisPassword), "no step printed the Redis password");
    });

    it("re-running every step on the converged host changes nothing and restarts nothing", async () => {
        const before = { id: await invocation(), starts: await starts(), sha: await liveSha() };
        const r = await runPlan(plan(model, files), lab!, { force: true });
        assert.equal(r.failed, undefined, r.failed && r.failed.stderr);
        assert.equal(r.runs.length, 3);
        assert.match(allOutput(r), /no file changed/);
        assert.doesNotMatch(allOutput(r), /restarted:|started \(was not running\)/);
        assert.deepEqual({ id: await invocation(), starts: await starts(), sha: await liveSha() }, before);
    });

    it("with Pulumi's semantics an unchanged plan sends no remote command at all", async () => {
        const state = new Map<string, string>();
        const p = plan(model, files);
        await runPlan(p, lab!, { state, force: true });
        const again = await runPlan(plan(model, files), lab!, { state });
        assert.equal(again.runs.length, 0);
        assert.equal(again.skipped.length, p.steps.length);
    });

    it("refuses an invalid redis.conf with the checker's message: live file and running redis unchanged", async () => {
        const before = { id: await invocation(), starts: await starts(), sha: await liveSha() };
        const bad = withConf((c) => c.replace(/^maxmemory-policy .*$/m, "maxmemory-policy keep-everything-forever"));
        const r = await runPlan(plan(model, bad), lab!, { force: true });
        assert.ok(r.failed, "the apply step must fail");
        assert.equal(r.failed!.id, `${HOST}:apply`);
        assert.match(r.failed!.stderr, /FATAL CONFIG FILE ERROR/, "redis-server's own message reaches the operator");
        assert.match(r.failed!.stderr, /rejected by redis-conf check; live files unchanged, nothing restarted/);
        assert.ok(!(r.failed!.stdout + r.failed!.stderr).includes(model.secrets.redisPassword));
        assert.deepEqual({ id: await invocation(), starts: await starts(), sha: await liveSha() }, before);
        assert.equal(await sh("systemctl is-active redis-server"), "active");
        assert.equal(await sh("ls /var/lib/ifbus/staging 2>/dev/null | wc -l"), "0", "nothing left staged");
    });

    it("a change that passes the checker but fails the health check is rolled back and the step fails", async () => {
        const before = { sha: await liveSha(), starts: await starts() };
        // valid for redis-server, but the proxies expect the port matrix's port: health PING goes unanswered
        const moved = withConf((c) => c.replace(/^port \d+$/m, "port 6390"));
        const r = await runPlan(plan(model, moved), lab!, { force: true });
        assert.ok(r.failed);
        assert.match(r.failed!.stderr, /health check of redis-server failed: redis at .* did not answer PING/);
        assert.match(r.failed!.stderr, /previous files restored/);
        assert.equal(await liveSha(), before.sha);
        // one start with the bad file, one with the restored file
        assert.equal(await starts(), before.starts + 2);
        const again = await runPlan(plan(model, files), lab!, { force: true });
        assert.equal(again.failed, undefined);
        assert.match(allOutput(again), /no file changed/);
    });

    it("a valid one-value change (a new Redis password) restarts redis exactly once and it serves with the new password", async () => {
        const before = { id: await invocation(), starts: await starts() };
        const rotated: GatewayModel = { ...model, secrets: { ...model.secrets, redisPassword: "rotated-" + model.secrets.redisPassword.slice(0, 12) } };
        const newFiles: HostFiles = { host: HOST, role: "cache", files: renderCache(rotated, rotated.hosts.find((h) => h.name === HOST)!) };
        const state = new Map<string, string>();
        for (const s of plan(model, files).steps) state.set(s.id, s.hash);
        const r = await runPlan(plan(rotated, newFiles), lab!, { state });
        assert.equal(r.failed, undefined, r.failed && r.failed.stderr);
        assert.deepEqual(r.runs.map((x) => x.id), [`${HOST}:apply`], "only the apply step's inputs changed");
        assert.match(allOutput(r), /restarted: redis-server/);
        assert.equal(await starts(), before.starts + 1);
        assert.notEqual(await invocation(), before.id);
        assert.ok(!allOutput(r).includes(rotated.secrets.redisPassword));
        model = rotated;
        files = newFiles;
    });
});
