// The deployment plan as @pulumi/command resources: one remote Command per
// plan step. The step graph comes from the spec (plain values, known before
// any host exists), so every resource is registered up front; what each step
// sends comes from the model Output. Pitfalls handled (provider source):
// - `triggers` forces replacement: content changes go through `create` and
//   `stdin` (update in place); triggers only carry the instance identity.
// - file contents travel on stdin, never CopyToRemote (it fails at preview on
//   unknown contents) and never `environment` (needs sshd AcceptEnv).
// - a failed command's error text holds the whole `create` and the output:
//   `create` never holds a secret and the scripts mask secrets in what they print.
// - no timestamps, random values or unordered maps in any input, so a second
//   `pulumi up` plans no Command change.
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import type { GatewayModel } from "./model";
import type { GatewaySpec } from "./spec";
import type { HostFiles } from "./render/types";
import { renderAll } from "./render";
import { DeploymentPlan, STEP_TIMEOUT_SECONDS, StepKind, planDeployment, planSteps } from "./plan";

/** How the push reaches one host over SSH (the Gateway's HostConnection fits). */
export interface PushConnection {
    /** address SSH listens on */
    readonly host: pulumi.Input<string>;
    /** login user; anything but root runs the steps with `sudo -n` */
    readonly user: string;
    /** secret OpenSSH private key; undefined when an ssh-agent holds it */
    readonly privateKey?: pulumi.Input<string>;
    /** the host's SSH public key when the stack knows it (pinned) */
    readonly hostKey?: pulumi.Input<string>;
    /** resources that must exist before anything is pushed to the host */
    readonly dependsOn?: pulumi.Resource[];
    /** changes when the machine is replaced (e.g. the instance id): every step of the host then runs again */
    readonly machineId?: pulumi.Input<string>;
}

export interface DeploymentArgs {
    readonly spec: GatewaySpec;
    /** the model, a secret Output (it holds passwords and keys) */
    readonly model: pulumi.Output<GatewayModel>;
    /** per host name */
    readonly connections: Readonly<Record<string, PushConnection>>;
    /** the render stage; the default is components/render renderAll */
    readonly render?: (model: GatewayModel) => HostFiles[];
}

/** Steps whose stdin carries the rendered files: kept secret whole, output never logged. */
export const SECRET_STEP_KINDS: readonly StepKind[] = ["apply", "db-schema"];

/** Dial retries the provider makes without delay: the first step waits out a slow boot instead. */
const WAIT_READY_PER_DIAL_SECONDS = 10;

export class Deployment extends pulumi.ComponentResource {
    /** per plan step id (`<host>:<kind>`) */
    readonly commands: Readonly<Record<string, command.remote.Command>>;

    constructor(name: string, args: DeploymentArgs, opts?: pulumi.ComponentResourceOptions) {
        super("ifbus:push:Deployment", name, {}, opts);
        const skeleton = planSteps(args.spec);
        const missing = [...new Set(skeleton.map((s) => s.host))].filter((h) => !args.connections[h]);
        if (missing.length) throw new Error(`no SSH connection for host(s) ${missing.join(", ")}`);

        const render = args.render ?? renderAll;
        const users = [...new Set(Object.values(args.connections).map((c) => c.user))];
        // one plan per login user (only the sudo prefix differs); computed once, shared by every step
        const plans = new Map<string, pulumi.Output<DeploymentPlan>>(
            users.map((u) => [u, args.model.apply((m) => planDeployment(m, render(m), { remoteUser: u }))]),
        );

        const commands: Record<string, command.remote.Command> = {};
        for (const sk of skeleton) {
            const conn = args.connections[sk.host];
            const step = plans.get(conn.user)!.apply((p) => {
                const s = p.steps.find((x) => x.id === sk.id);
                if (!s) throw new Error(`the plan has no step ${sk.id}`);
                if (s.secret && !SECRET_STEP_KINDS.includes(s.kind)) throw new Error(`step ${s.id} carries a secret but its kind (${s.kind}) is not kept secret`);
                return s;
            });
            const secret = SECRET_STEP_KINDS.includes(sk.kind);
            const waitReady = sk.kind === "wait-ready";
            commands[sk.id] = new command.remote.Command(
                `${name}-${sk.host}-${sk.kind}`,
                {
                    connection: {
                        host: conn.host,
                        user: conn.user,
                        privateKey: conn.privateKey,
                        hostKey: conn.hostKey,
                        // a booting host refuses connections for a while: unlimited dials, each bounded
                        dialErrorLimit: waitReady ? -1 : 10,
                        perDialTimeout: waitReady ? WAIT_READY_PER_DIAL_SECONDS : undefined,
                    },
                    // the plan guarantees no secret in the command text (it throws otherwise)
                    create: pulumi.unsecret(step.apply((s) => s.command)),
                    stdin: secret ? step.apply((s) => s.stdin) : pulumi.unsecret(step.apply((s) => s.stdin)),
                    logging: secret ? "none" : "stdoutAndStderr",
                    addPreviousOutputInEnv: false,
                    triggers: conn.machineId ? [conn.machineId] : undefined,
                },
                {
                    parent: this,
                    dependsOn: [...sk.dependsOn.map((d) => commands[d]), ...(conn.dependsOn ?? [])],
                    additionalSecretOutputs: secret ? ["stdout", "stderr"] : [],
                    customTimeouts: { create: `${STEP_TIMEOUT_SECONDS[sk.kind]}s`, update: `${STEP_TIMEOUT_SECONDS[sk.kind]}s` },
                },
            );
        }
        this.commands = commands;
        this.registerOutputs({});
    }
}

/** Convenience for the Gateway: `pushDeployment(name, spec, gateway.model, gateway.connections, { parent })`. */
export function pushDeployment(
    name: string,
    spec: GatewaySpec,
    model: pulumi.Output<GatewayModel>,
    connections: Readonly<Record<string, PushConnection>>,
    opts?: pulumi.ComponentResourceOptions,
): Deployment {
    return new Deployment(name, { spec, model, connections }, opts);
}
