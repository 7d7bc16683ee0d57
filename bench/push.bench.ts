// How many remote commands a deploy of the prod stack issues: a fresh
// converge, a no-op run and one-value changes. One step = one SSH session
// running one command; a step runs when its hash differs from the last
// successful run (what `pulumi up` does with the Command resources).
// Usage: npx tsx bench/push.bench.ts [stack]
import { loadSpec, makeTestTls, offlineModel, randomSecrets } from "../components/offline";
import { changedSteps, planDeployment, DeploymentPlan } from "../components/plan";
import { renderAll } from "../components/render";
import type { GatewayModel } from "../components/model";

const stack = process.argv[2] ?? "prod";
const spec = loadSpec(stack);
const secrets = randomSecrets(spec, makeTestTls(spec.sipDomain));
const model = offlineModel(spec, { secrets });

function plan(m: GatewayModel): { plan: DeploymentPlan; ms: number } {
    const t0 = process.hrtime.bigint();
    const p = planDeployment(m, renderAll(m));
    return { plan: p, ms: Number(process.hrtime.bigint() - t0) / 1e6 };
}

const base = plan(model);
const rows: [string, string[]][] = [
    ["fresh converge", changedSteps(undefined, base.plan)],
    ["no-op run (same config)", changedSteps(base.plan, plan(model).plan)],
    ["rtpPorts 10000-20000 -> 12000-22000", changedSteps(base.plan, plan(offlineModel({ ...spec, rtpPorts: { min: 12000, max: 22000 } }, { secrets })).plan)],
    ["turnSharedSecret rotated", changedSteps(base.plan, plan({ ...model, secrets: { ...secrets, turnSharedSecret: `${secrets.turnSharedSecret}x` } }).plan)],
    ["redisPassword rotated", changedSteps(base.plan, plan({ ...model, secrets: { ...secrets, redisPassword: `${secrets.redisPassword}x` } }).plan)],
];

const bytes = base.plan.steps.reduce((n, s) => n + s.command.length + s.stdin.length, 0);
console.log(`stack ${stack}: ${model.hosts.length} hosts, ${base.plan.steps.length} steps, render+plan ${base.ms.toFixed(0)} ms, ${(bytes / 1024).toFixed(0)} KiB sent on a fresh converge`);
for (const [what, ids] of rows) console.log(`${what.padEnd(40)} ${String(ids.length).padStart(3)} remote command(s)${ids.length && ids.length < 10 ? `: ${ids.join(", ")}` : ""}`);
