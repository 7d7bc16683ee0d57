// Runs a DeploymentPlan over real SSH against lab hosts, with the semantics
// `pulumi up` gives the Command resources: a step runs when every step it
// waits for has succeeded; steps of one host run one after another, hosts in
// parallel; a step whose hash equals the last successful run is skipped
// (unless forced); the first failure stops new steps from starting.
import type { DeploymentPlan, PlanStep } from "../components/plan";
import type { Lab, RunResult } from "./host";

export interface StepRun extends RunResult {
    readonly id: string;
    readonly host: string;
    readonly ms: number;
}

export interface PlanRun {
    /** steps that ran, in completion order */
    readonly runs: readonly StepRun[];
    /** steps skipped because their hash was unchanged */
    readonly skipped: readonly string[];
    /** the failed step, if any */
    readonly failed?: StepRun;
}

export interface RunOptions {
    /** last successful hash per step id (updated in place on success), like Pulumi's state */
    readonly state?: Map<string, string>;
    /** run even when the hash is unchanged (to prove the scripts themselves are idempotent) */
    readonly force?: boolean;
    /** a remote-command bound per step, default the step's own */
    readonly timeoutMs?: number;
    /** progress: a step starts, ends, or is skipped as unchanged */
    readonly onEvent?: (e: StepEvent) => void;
}

export type StepEvent =
    | { readonly type: "start"; readonly step: PlanStep }
    | { readonly type: "skip"; readonly step: PlanStep }
    | { readonly type: "end"; readonly step: PlanStep; readonly run: StepRun };

export async function runPlan(plan: DeploymentPlan, lab: Lab, opts: RunOptions = {}): Promise<PlanRun> {
    const steps = plan.steps.filter((s) => lab.hosts.has(s.host));
    const known = new Set(steps.map((s) => s.id));
    const done = new Set<string>();
    const busy = new Set<string>();
    const runs: StepRun[] = [];
    const skipped: string[] = [];
    let failed: StepRun | undefined;
    const pending = new Set(steps);
    const inflight = new Set<Promise<void>>();

    // steps on hosts outside the lab count as done: a one-role lab still runs its own steps in order
    const ready = (s: PlanStep) => s.dependsOn.every((d) => done.has(d) || !known.has(d));
    const start = (s: PlanStep) => {
        pending.delete(s);
        if (!opts.force && opts.state?.get(s.id) === s.hash) {
            skipped.push(s.id);
            done.add(s.id);
            opts.onEvent?.({ type: "skip", step: s });
            return;
        }
        busy.add(s.host);
        opts.onEvent?.({ type: "start", step: s });
        const t0 = Date.now();
        const p = lab
            .ssh(s.host, s.command, { stdin: s.stdin, timeoutMs: opts.timeoutMs ?? s.timeoutSeconds * 1000 })
            .then((r) => {
                const run: StepRun = { ...r, id: s.id, host: s.host, ms: Date.now() - t0 };
                runs.push(run);
                opts.onEvent?.({ type: "end", step: s, run });
                if (r.code === 0) {
                    done.add(s.id);
                    opts.state?.set(s.id, s.hash);
                } else if (!failed) failed = run;
            })
            .finally(() => {
                busy.delete(s.host);
                inflight.delete(p);
            });
        inflight.add(p);
    };

    for (;;) {
        if (!failed)
            for (const s of [...pending]) {
                if (busy.has(s.host) || !ready(s)) continue;
                start(s);
            }
        if (inflight.size === 0) {
            // skipped steps may have unblocked others
            if (!failed && [...pending].some((s) => !busy.has(s.host) && ready(s))) continue;
            break;
        }
        await Promise.race(inflight);
    }
    if (!failed && pending.size) throw new Error(`steps never became ready: ${[...pending].map((s) => s.id).join(", ")}`);
    return { runs, skipped, failed };
}
