// Loads index.ts under mocks for one stack in a fresh process and writes
// what the program registered (resources with their inputs and options,
// stack outputs, the model) as JSON. A fresh process per stack because a
// Pulumi program module runs once per process and all mocks share one
// global runtime.
// Usage: tsx test/stack/load-stack.ts <scenario-json> <out-file>
//   scenario: {"stack": "dev", "set": {key: value}, "unset": [key], "secrets": {key: value}, "subnets": [...]}
import * as fs from "fs";
import * as path from "path";
import YAML from "yaml";
import { installMocks, MockSubnet } from "../mocks";

export interface Scenario {
    /** example stack file to start from: Pulumi.<stack>.yaml */
    readonly stack: string;
    /** stack name the program sees; default `stack` */
    readonly stackName?: string;
    /** plain config values to add or override (keys without the project prefix) */
    readonly set?: Record<string, unknown>;
    /** keys to drop from the stack file */
    readonly unset?: string[];
    /** secret config values (keys without the project prefix) */
    readonly secrets?: Record<string, string>;
    readonly subnets?: MockSubnet[];
}

export interface LoadedResource {
    readonly type: string;
    readonly name: string;
    readonly custom: boolean;
    readonly inputs: Record<string, unknown>;
    readonly id?: string;
    readonly protect: boolean;
    /** the resource type has a `tags` property */
    readonly taggable: boolean;
    readonly ignoreChanges: string[];
    readonly deleteBeforeReplace: boolean;
    readonly parentType?: string;
}

export interface LoadedStack {
    readonly scenario: Scenario;
    /** wall time of loading the program until every registration finished, ms */
    readonly loadMs: number;
    readonly resources: LoadedResource[];
    readonly outputs: Record<string, { value: unknown; secret: boolean }>;
    readonly model?: unknown;
    readonly modelSecret?: boolean;
    readonly connections?: Record<string, { host: string; user: string; hasPrivateKey: boolean }>;
    readonly invokes: string[];
    readonly error?: string;
}

const PROJECT = "ifbus-gateway";
const REPO = path.resolve(__dirname, "..", "..");

function configOf(scenario: Scenario): { config: Record<string, string>; secretKeys: string[] } {
    const doc = YAML.parse(fs.readFileSync(path.join(REPO, `Pulumi.${scenario.stack}.yaml`), "utf8")) ?? {};
    const values: Record<string, unknown> = { ...(doc.config ?? {}) };
    for (const k of scenario.unset ?? []) delete values[`${PROJECT}:${k}`];
    for (const [k, v] of Object.entries(scenario.set ?? {})) values[`${PROJECT}:${k}`] = v;
    const config: Record<string, string> = {};
    // Pulumi passes every config value to the program as a string; objects and arrays as JSON.
    for (const [k, v] of Object.entries(values)) config[k] = typeof v === "string" ? v : JSON.stringify(v);
    const secretKeys: string[] = [];
    for (const [k, v] of Object.entries(scenario.secrets ?? {})) {
        config[`${PROJECT}:${k}`] = v;
        secretKeys.push(`${PROJECT}:${k}`);
    }
    return { config, secretKeys };
}

async function main(): Promise<void> {
    const [scenarioJson, outFile] = process.argv.slice(2);
    const scenario = JSON.parse(scenarioJson) as Scenario;
    // An error thrown inside an apply surfaces as an unhandled rejection, as it does under `pulumi up`; report it as the result.
    const fail = (e: unknown) => {
        fs.writeFileSync(outFile, JSON.stringify({ scenario, error: e instanceof Error ? `${e.name}: ${e.message}` : String(e), resources: [], outputs: {}, invokes: [], loadMs: -1 }));
        process.exit(0);
    };
    process.on("unhandledRejection", fail);
    process.on("uncaughtException", fail);
    const { config, secretKeys } = configOf(scenario);
    const mocks = await installMocks(PROJECT, scenario.stackName ?? scenario.stack, config, secretKeys, { subnets: scenario.subnets });
    // Imported after the mocks so that nothing is constructed before them.
    const pulumi = await import("@pulumi/pulumi");
    const seen = new Map<string, { resource: any; opts: any; props: Record<string, unknown>; parentType?: string }>();
    let gateway: any;
    const started = Date.now();
    const result: { -readonly [K in keyof LoadedStack]?: LoadedStack[K] } & { scenario: Scenario } = { scenario };
    try {
        const outputs = await pulumi.runtime.runInPulumiStack(async () => {
            pulumi.runtime.registerStackTransformation((a) => {
                seen.set(`${a.type}::${a.name}`, { resource: a.resource, opts: a.opts, props: a.props as Record<string, unknown>, parentType: (a.opts.parent as any)?.__pulumiType });
                if (a.type === "ifbus:gateway:Gateway") gateway = a.resource;
                return undefined;
            });
            const program = await import("../../index");
            const out: Record<string, { value: unknown; secret: boolean }> = {};
            for (const [k, v] of Object.entries(program)) {
                if (pulumi.Output.isInstance(v)) {
                    const o = v as import("@pulumi/pulumi").Output<unknown>;
                    out[k] = { value: await new Promise((r) => o.apply(r)), secret: await pulumi.isSecret(o) };
                } else out[k] = { value: v, secret: false };
            }
            return out;
        });
        result.outputs = outputs as LoadedStack["outputs"];
        if (gateway) {
            result.model = await new Promise((r) => gateway.model.apply(r));
            result.modelSecret = await pulumi.isSecret(gateway.model);
            const connections: NonNullable<LoadedStack["connections"]> = {};
            for (const [name, c] of Object.entries(gateway.connections as Record<string, any>)) {
                connections[name] = { host: await new Promise<string>((r) => c.host.apply(r)), user: c.user, hasPrivateKey: c.privateKey !== undefined };
            }
            result.connections = connections;
        }
        // Registrations still in flight (internal SDK helper; present in 3.x).
        const wait = (pulumi.runtime as any).waitForRPCs;
        if (typeof wait === "function") await wait();
    } catch (e) {
        result.error = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
    }
    result.loadMs = Date.now() - started;
    result.invokes = mocks.invokes.map((i) => i.token);
    result.resources = mocks.resources.map((r) => {
        const s = seen.get(`${r.type}::${r.name}`);
        return {
            ...r,
            protect: !!s?.resource?.__protect,
            taggable: !!s && "tags" in s.props,
            ignoreChanges: s?.opts?.ignoreChanges ?? [],
            deleteBeforeReplace: !!s?.opts?.deleteBeforeReplace,
            parentType: s?.parentType,
        };
    });
    fs.writeFileSync(outFile, JSON.stringify(result));
}

main().then(
    () => process.exit(0),
    (e) => {
        process.stderr.write(`load-stack failed: ${e instanceof Error ? e.stack : e}\n`);
        process.exit(1);
    },
);
