// Runs load-stack.ts in a child process per scenario (a Pulumi program
// module runs once per process) and caches the result for every test file
// of this mocha process.
import { execFile } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import type { LoadedResource, LoadedStack, Scenario } from "./load-stack";
import { stripSecrets } from "../mocks";

const LOADER = path.join(__dirname, "load-stack.ts");
const LOAD_TIMEOUT_MS = 60_000;
const cache = new Map<string, Promise<LoadedStack & { processMs: number }>>();

export function loadStack(scenario: Scenario): Promise<LoadedStack & { processMs: number }> {
    const key = JSON.stringify(scenario);
    let p = cache.get(key);
    if (!p) {
        p = new Promise((resolve, reject) => {
            const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ifbus-stack-"));
            const out = path.join(dir, "loaded.json");
            const started = Date.now();
            execFile(
                process.execPath,
                ["--import", "tsx", LOADER, key, out],
                { cwd: path.resolve(__dirname, "..", ".."), timeout: LOAD_TIMEOUT_MS, env: { ...process.env, PULUMI_ERROR_OUTPUT_STRING: "true" } },
                (err, _stdout, stderr) => {
                    try {
                        // A program error is reported in the file; Pulumi's exit hook may still set a failing exit code.
                        if (!fs.existsSync(out)) return reject(new Error(`loading ${key} failed: ${err?.message}\n${stderr}`));
                        resolve({ ...(JSON.parse(fs.readFileSync(out, "utf8")) as LoadedStack), processMs: Date.now() - started });
                    } finally {
                        fs.rmSync(dir, { recursive: true, force: true });
                    }
                },
            );
        });
        cache.set(key, p);
    }
    return p;
}

export function ofType(s: LoadedStack, type: string): LoadedResource[] {
    return s.resources.filter((r) => r.type === type);
}

export const T = {
    instance: "aws:ec2/instance:Instance",
    eip: "aws:ec2/eip:Eip",
    eipAssociation: "aws:ec2/eipAssociation:EipAssociation",
    sg: "aws:ec2/securityGroup:SecurityGroup",
    ingress: "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
    egress: "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule",
    volume: "aws:ebs/volume:Volume",
    rolePolicy: "aws:iam/rolePolicy:RolePolicy",
    randomPassword: "random:index/randomPassword:RandomPassword",
    tlsKey: "tls:index/privateKey:PrivateKey",
    keyPair: "aws:ec2/keyPair:KeyPair",
    vpc: "aws:ec2/vpc:Vpc",
    subnet: "aws:ec2/subnet:Subnet",
} as const;

export function tagsOf(r: LoadedResource): Record<string, string> {
    return (r.inputs.tags ?? {}) as Record<string, string>;
}

/** The plain-text view of a resource's inputs: secret-wrapped values replaced by "[secret]". */
export function plainInputs(r: LoadedResource): string {
    return JSON.stringify(stripSecrets(r.inputs));
}

/** Resources whose plain-text inputs contain any of `needles`, with the needle found. */
export function plainLeaks(resources: readonly LoadedResource[], needles: readonly string[]): string[] {
    const leaks: string[] = [];
    for (const r of resources) {
        const text = plainInputs(r);
        // Compare in JSON-escaped form: a PEM's newlines are \n inside the serialized inputs.
        for (const n of needles) if (n && text.includes(JSON.stringify(n).slice(1, -1))) leaks.push(`${r.type} ${r.name} holds ${n.slice(0, 12)}... in plain text`);
    }
    return leaks;
}
