// Registers the push (components/push.ts Deployment) under Pulumi mocks in a
// fresh process, for one model given as JSON, and writes every Command's
// inputs (secrets still marked) and the steps each one waits for. A fresh
// process per run: mocks share one global runtime, and "two runs" should
// mean two programs.
// Usage: tsx test/push/load-push.ts <in.json> <out.json>
//   in: {"model": GatewayModel, "user": "admin", "machineIds": {host: id}}
import * as fs from "fs";
import * as pulumi from "@pulumi/pulumi";
import type { GatewayModel } from "../../components/model";

export interface RecordedCommand {
    readonly name: string;
    /** inputs as the engine received them; secret values wrapped in Pulumi's secret marker */
    readonly inputs: Record<string, unknown>;
    /** the names of the Commands it waits for */
    readonly dependsOn: string[];
    readonly additionalSecretOutputs: string[];
    readonly customTimeouts?: { create?: string; update?: string };
}

export interface PushLoad {
    readonly commands: RecordedCommand[];
    readonly plannedSecretSteps: string[];
}

async function main(): Promise<void> {
    const [inFile, outFile] = process.argv.slice(2);
    const input = JSON.parse(fs.readFileSync(inFile, "utf8")) as { model: GatewayModel; user: string; machineIds?: Record<string, string> };
    const recorded = new Map<string, Record<string, unknown>>();
    await pulumi.runtime.setMocks(
        {
            newResource: (args) => {
                if (args.type === "command:remote:Command") recorded.set(args.name, args.inputs);
                return { id: `${args.name}-id`, state: { ...args.inputs, stdout: "", stderr: "" } };
            },
            call: () => ({}),
        },
        "ifbus-gateway",
        input.model.stack,
        false,
    );
    const { Deployment } = await import("../../components/push");
    const { planDeployment } = await import("../../components/plan");
    const { renderAll } = await import("../../components/render");

    const opts = new Map<string, pulumi.ResourceOptions>();
    const model = input.model;
    const connections = Object.fromEntries(
        model.hosts.map((h) => [
            h.name,
            {
                host: h.publicIp ?? h.privateIp,
                user: input.user,
                privateKey: pulumi.secret("-----BEGIN OPENSSH PRIVATE KEY-----\nMOCKDEPLOYKEY\n-----END OPENSSH PRIVATE KEY-----\n"),
                machineId: input.machineIds?.[h.name],
            },
        ]),
    );
    const dep = new Deployment(
        "push",
        { spec: model.spec, model: pulumi.secret(pulumi.output(model)) as pulumi.Output<GatewayModel>, connections },
        {
            transformations: [
                (a) => {
                    opts.set(a.name, a.opts);
                    return undefined;
                },
            ],
        },
    );
    const names = new Map(Object.values(dep.commands).map((c) => [c, ""]));
    const urns = await new Promise<string[]>((r) => pulumi.all(Object.values(dep.commands).map((c) => c.urn)).apply(r));
    for (const [id, c] of Object.entries(dep.commands)) names.set(c, urns[Object.keys(dep.commands).indexOf(id)].split("::").pop()!);
    const commands: RecordedCommand[] = [...recorded.entries()].map(([name, inputs]) => {
        const o = opts.get(name) ?? {};
        const deps = (Array.isArray(o.dependsOn) ? o.dependsOn : o.dependsOn ? [o.dependsOn] : []) as pulumi.Resource[];
        return {
            name,
            inputs,
            dependsOn: deps.map((d) => names.get(d as never) ?? "?"),
            additionalSecretOutputs: (o as pulumi.CustomResourceOptions).additionalSecretOutputs ?? [],
            customTimeouts: o.customTimeouts as RecordedCommand["customTimeouts"],
        };
    });
    const plan = planDeployment(model, renderAll(model), { remoteUser: input.user });
    const out: PushLoad = { commands: commands.sort((a, b) => a.name.localeCompare(b.name)), plannedSecretSteps: plan.steps.filter((s) => s.secret).map((s) => s.id) };
    fs.writeFileSync(outFile, JSON.stringify(out));
}

main().catch((e) => {
    console.error(e);
    process.exit(1);
});
