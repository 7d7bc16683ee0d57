// The whole program under Pulumi mocks, once per example stack: policy-style
// assertions over every resource it registers and over its stack outputs.
import { strict as assert } from "assert";
import { loadSpec } from "../../components/offline";
import { firewallRules, INTERNAL_PORTS, ANY_IPV4, ANY_IPV6, FirewallRule } from "../../components/matrix";
import { planHosts, GatewayModel } from "../../components/model";
import { ROLES, Role, VRRP_IP_PROTOCOL } from "../../components/ports";
import { VIP_DESCRIBE_ACTIONS, VIP_MOVE_ACTIONS } from "../../components/failover";
import { TAG_ROLE, TAG_STACK } from "../../components/tags";
import type { LoadedResource, LoadedStack, Scenario } from "./load-stack";
import { loadStack, ofType, plainLeaks, tagsOf, T } from "./harness";
import { unwrapSecrets } from "../mocks";

const SUPPLIED_REDIS_PASSWORD = "OperatorChosenRedisPassword42";

interface Case {
    readonly scenario: Scenario;
    readonly counts: Record<Role, number>;
    readonly protectedStateful: boolean;
    readonly vip: boolean;
}

const CASES: Case[] = [
    { scenario: { stack: "dev" }, counts: { "sip-proxy": 1, "media-relay": 1, database: 1, cache: 1, turn: 1 }, protectedStateful: false, vip: false },
    {
        // prod also exercises an operator-supplied secret
        scenario: { stack: "prod", secrets: { redisPassword: SUPPLIED_REDIS_PASSWORD } },
        counts: { "sip-proxy": 2, "media-relay": 2, database: 3, cache: 1, turn: 2 },
        protectedStateful: true,
        vip: true,
    },
];

const subnet = { id: "subnet-0abc1234", vpcId: "vpc-0abc1234", cidrBlock: "10.60.1.0/24", availabilityZone: "eu-central-1a" };
const cert = "-----BEGIN CERTIFICATE-----\nOPERATORLEAF\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\nOPERATORCA\n-----END CERTIFICATE-----\n";
const operatorKey = "-----BEGIN PRIVATE KEY-----\nOPERATORTLSKEY\n-----END PRIVATE KEY-----\n";
const sshKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOperatorKey ops@example";
const EXISTING: Scenario = {
    stack: "dev",
    stackName: "dev-existing",
    set: { existingVpcId: subnet.vpcId, existingSubnetIds: [subnet.id], existingSubnetCidrs: [subnet.cidrBlock], sshPublicKey: sshKey, tlsCertificate: cert },
    secrets: { tlsPrivateKey: operatorKey },
    subnets: [subnet],
};
const EXISTING_BAD: Scenario = { ...EXISTING, stackName: "dev-existing-bad", subnets: [{ ...subnet, cidrBlock: "10.60.2.0/24" }] };

type Loaded = LoadedStack & { processMs: number };

/** Start every scenario's child process at once (cached), so they load in parallel. */
function prefetch(): void {
    for (const c of CASES) void loadStack(c.scenario).catch(() => undefined);
    void loadStack(EXISTING).catch(() => undefined);
    void loadStack(EXISTING_BAD).catch(() => undefined);
}

/** A rule as one comparable line: `<role> <proto> <from>-<to> from <source>`. */
function ruleLine(role: string, protocol: string, from: number, to: number, source: string): string {
    return `${role} ${protocol} ${from}-${to} from ${source}`;
}

function expectedLines(rules: readonly FirewallRule[]): string[] {
    return rules
        .map((r) => ruleLine(r.role, r.protocol, r.fromPort, r.toPort, "cidr" in r.source ? r.source.cidr : "cidrIpv6" in r.source ? r.source.cidrIpv6 : `sg:${r.source.role}`))
        .sort();
}

function registeredLines(s: Loaded): string[] {
    const roleOfGroup = new Map(ofType(s, T.sg).map((g) => [g.id, tagsOf(g)[TAG_ROLE]]));
    return ofType(s, T.ingress)
        .map((r) => {
            const i = r.inputs as Record<string, any>;
            const source = i.cidrIpv4 ?? i.cidrIpv6 ?? `sg:${roleOfGroup.get(i.referencedSecurityGroupId)}`;
            return ruleLine(String(roleOfGroup.get(i.securityGroupId)), i.ipProtocol, i.fromPort ?? -1, i.toPort ?? -1, source);
        })
        .sort();
}

function roleOf(r: LoadedResource): string {
    return tagsOf(r)[TAG_ROLE];
}

/** Every secret value the stack holds (from the model and the outputs), plus the mocks' key-material markers. */
function secretNeedles(s: Loaded): string[] {
    const m = s.model as GatewayModel;
    const sec = m.secrets;
    const needles = [sec.databasePassword, sec.databaseSstPassword, sec.redisPassword, sec.turnSharedSecret, ...Object.values(sec.subscriberPasswords), sec.tls.privateKeyPem];
    const deployKey = s.outputs.deployPrivateKey?.value;
    if (typeof deployKey === "string") needles.push(deployKey);
    // Every private key the mocks issued (CA, server, deploy) carries this marker; random results carry MockPw.
    return [...needles, "MOCKKEY", "MockPw"];
}

for (const c of CASES) {
    const stack = c.scenario.stack;
    describe(`stack "${stack}" under Pulumi mocks`, function () {
        let s: Loaded;
        const spec = loadSpec(stack);

        before(async function () {
            prefetch();
            s = await loadStack(c.scenario);
            assert.equal(s.error, undefined, `program failed: ${s.error}`);
        });

        after(function () {
            if (s) console.log(`      (stack ${stack}: program load ${s.loadMs} ms under mocks, ${s.processMs} ms with process start; ${s.resources.length} resources)`);
        });

        it("registers exactly the security group rules of the port matrix", function () {
            assert.deepEqual(registeredLines(s), expectedLines(firewallRules(spec)));
        });

        it("opens no internal port (ng, MariaDB, Galera, Redis, BIN, metrics, VRRP) and not SSH to 0.0.0.0/0 or ::/0", function () {
            const open = ofType(s, T.ingress).filter((r) => r.inputs.cidrIpv4 === ANY_IPV4 || r.inputs.cidrIpv6 === ANY_IPV6);
            assert.ok(open.length > 0, "expected the public service ports to be open to anywhere");
            for (const r of open) {
                const i = r.inputs as Record<string, any>;
                assert.ok(i.ipProtocol === "tcp" || i.ipProtocol === "udp", `${r.name} opens protocol ${i.ipProtocol} to anywhere`);
                for (const p of [...INTERNAL_PORTS, 22]) assert.ok(p < i.fromPort || p > i.toPort, `${r.name} opens internal port ${p} to anywhere`);
            }
            const vrrp = ofType(s, T.ingress).filter((r) => r.inputs.ipProtocol === `${VRRP_IP_PROTOCOL}`);
            for (const r of vrrp) assert.ok(r.inputs.referencedSecurityGroupId, `${r.name}: VRRP only from the proxies' group`);
        });

        it("gives every security group exactly one all-traffic egress rule and no inline rules", function () {
            const groups = ofType(s, T.sg);
            assert.equal(groups.length, ROLES.filter((r) => c.counts[r] > 0).length);
            const egress = ofType(s, T.egress);
            assert.deepEqual(egress.map((e) => e.inputs.securityGroupId).sort(), groups.map((g) => g.id).sort());
            for (const e of egress) assert.deepEqual([e.inputs.ipProtocol, e.inputs.cidrIpv4], ["-1", ANY_IPV4]);
            for (const g of groups) assert.ok(g.inputs.ingress === undefined && g.inputs.egress === undefined, `${g.name} has inline rules`);
        });

        it("launches the planned number of instances per role at their fixed private addresses", function () {
            const instances = ofType(s, T.instance);
            for (const role of ROLES) assert.equal(instances.filter((i) => roleOf(i) === role).length, c.counts[role], `${role} count`);
            const byName = new Map(instances.map((i) => [tagsOf(i).Name, i]));
            for (const h of planHosts(spec)) {
                const i = byName.get(`gw-${h.name}`);
                assert.ok(i, `no instance for ${h.name}`);
                assert.equal(i.inputs.privateIp, h.privateIp);
                assert.equal(i.inputs.instanceType, spec.instanceTypes[h.role]);
            }
        });

        it("requires IMDSv2 with one hop and encrypts every root disk and data volume", function () {
            for (const i of ofType(s, T.instance)) {
                const md = i.inputs.metadataOptions as Record<string, unknown>;
                assert.equal(md.httpTokens, "required", `${i.name} allows IMDSv1`);
                assert.equal(md.httpPutResponseHopLimit, 1, `${i.name} hop limit`);
                const root = i.inputs.rootBlockDevice as Record<string, unknown>;
                assert.equal(root.encrypted, true, `${i.name} root disk not encrypted`);
                assert.equal(root.volumeType, "gp3");
            }
            const volumes = ofType(s, T.volume);
            assert.equal(volumes.length, c.counts.database, "one data volume per database node");
            for (const v of volumes) assert.equal(v.inputs.encrypted, true, `${v.name} not encrypted`);
        });

        it("tags every taggable AWS resource (root disks included) with Name, ifbus:stack and ifbus:role", function () {
            const taggable = s.resources.filter((r) => r.custom && r.type.startsWith("aws:") && r.taggable);
            assert.ok(taggable.length >= 20, `only ${taggable.length} taggable resources seen`);
            for (const r of taggable) {
                const t = tagsOf(r);
                assert.ok(t.Name, `${r.type} ${r.name} has no Name tag`);
                assert.equal(t[TAG_STACK], stack, `${r.type} ${r.name} ${TAG_STACK}`);
                assert.ok(t[TAG_ROLE] === "shared" || (ROLES as readonly string[]).includes(t[TAG_ROLE]), `${r.type} ${r.name} ${TAG_ROLE}=${t[TAG_ROLE]}`);
            }
            for (const i of ofType(s, T.instance)) {
                const rootTags = (i.inputs.rootBlockDevice as Record<string, any>).tags as Record<string, string>;
                assert.equal(rootTags[TAG_ROLE], roleOf(i), `${i.name} root disk tags`);
                assert.equal(rootTags[TAG_STACK], stack);
            }
        });

        it(c.protectedStateful ? "protects the Galera data volumes and the VIP address, and nothing else" : "protects nothing (dev stack)", function () {
            const protectedNames = s.resources.filter((r) => r.protect).map((r) => `${r.type} ${r.name}`).sort();
            const expected = c.protectedStateful
                ? [...ofType(s, T.volume).map((v) => `${v.type} ${v.name}`), `${T.eip} gw-vip-eip`].sort()
                : [];
            assert.deepEqual(protectedNames, expected);
        });

        it("replaces instances delete-first, since a fixed private address can be held by one instance only", function () {
            for (const i of ofType(s, T.instance)) assert.ok(i.deleteBeforeReplace, `${i.name}`);
        });

        it("never puts a secret value in plain text into any resource input", function () {
            const needles = secretNeedles(s);
            assert.deepEqual(plainLeaks(s.resources, needles), []);
            // The scan can see secrets: the CA key does reach the certificate signer, wrapped.
            const signer = s.resources.find((r) => r.type === "tls:index/locallySignedCert:LocallySignedCert");
            assert.ok(signer && JSON.stringify(unwrapSecrets(signer.inputs)).includes("MOCKKEY"), "expected the wrapped CA key in the signer's inputs");
        });

        it("keeps userData to the data-disk mount on database nodes, with no secret in it", function () {
            const needles = secretNeedles(s);
            for (const i of ofType(s, T.instance)) {
                const ud = i.inputs.userData;
                if (roleOf(i) !== "database") {
                    assert.equal(ud, undefined, `${i.name} has userData`);
                    continue;
                }
                assert.equal(typeof ud, "string", `${i.name} userData should be plain (and therefore secret-free)`);
                assert.match(ud as string, /mount \/var\/lib\/mysql/);
                assert.match(ud as string, /blkid "\$dev" .*\|\| \{ mkfs\.ext4/, "formats only a disk without a filesystem");
                for (const n of needles) assert.ok(!(ud as string).includes(n), `${i.name} userData holds a secret`);
            }
        });

        it("exports the SIP entry points, the hosts and the secrets (as secrets)", function () {
            const o = s.outputs;
            assert.equal(o.wssUrl.value, `wss://${spec.sipDomain}:443`);
            assert.equal(o.sipDomain.value, spec.sipDomain);
            assert.equal(o.sipUri.value, `sip:${spec.sipDomain}`);
            const eips = new Map(ofType(s, T.eip).map((e) => [e.name, e]));
            assert.ok(eips.size > 0);
            const model = s.model as GatewayModel;
            assert.equal(o.vipAddress.value, c.vip ? model.vip?.publicIp : model.hosts.find((h) => h.name === "sip-proxy-1")?.publicIp);
            assert.match(String(o.vipAddress.value), /^203\.0\.113\.\d+$/);
            assert.equal((o.turnUris.value as string[]).length, 3 * c.counts.turn);
            for (const u of o.turnUris.value as string[]) assert.match(u, /^turns?:203\.0\.113\.\d+:(3478|5349)\?transport=(udp|tcp)$/);
            const hosts = o.hosts.value as Record<string, { role: string; privateIp: string; publicIp: string | null; ssh: string }>;
            assert.deepEqual(Object.keys(hosts).sort(), planHosts(spec).map((h) => h.name).sort());
            for (const h of planHosts(spec)) {
                assert.equal(hosts[h.name].privateIp, h.privateIp);
                assert.equal(hosts[h.name].role, h.role);
                assert.match(hosts[h.name].ssh, /^ssh admin@\d+\.\d+\.\d+\.\d+$/);
                const internal = h.role === "database" || h.role === "cache";
                assert.equal(hosts[h.name].publicIp === null, internal, `${h.name} publicIp`);
            }
            assert.equal(o.subscriberPasswords.secret, true, "subscriberPasswords must be secret");
            assert.deepEqual(Object.keys(o.subscriberPasswords.value as object).sort(), [...spec.subscribers].sort());
            assert.equal(o.deployPrivateKey.secret, true, "deployPrivateKey must be secret");
            for (const [k, v] of Object.entries(o)) if (!["subscriberPasswords", "deployPrivateKey"].includes(k)) assert.ok(!JSON.stringify(v.value).includes("MockPw"), `${k} leaks a password`);
        });

        it("builds the model as a secret Output with every host and its public address", function () {
            assert.equal(s.modelSecret, true);
            const model = s.model as GatewayModel;
            assert.equal(model.region, "eu-central-1");
            assert.deepEqual(model.hosts.map((h) => h.name), planHosts(spec).map((h) => h.name));
            for (const h of model.hosts) {
                const hasEip = h.role === "sip-proxy" || h.role === "media-relay" || h.role === "turn";
                assert.equal(h.publicIp !== undefined, hasEip, `${h.name} publicIp`);
            }
            assert.equal(model.vip !== undefined, c.vip);
            assert.ok(model.secrets.tls.certificatePem.includes("BEGIN CERTIFICATE"));
        });

        it("gives the push an SSH address, the Debian user and the deploy key for every host", function () {
            const conns = s.connections ?? {};
            assert.deepEqual(Object.keys(conns).sort(), planHosts(spec).map((h) => h.name).sort());
            for (const [name, conn] of Object.entries(conns)) {
                assert.match(conn.host, /^\d+\.\d+\.\d+\.\d+$/, `${name} host`);
                assert.equal(conn.user, "admin");
                assert.equal(conn.hasPrivateKey, true);
            }
        });

        if (c.vip) {
            it("lets the proxies move only the VIP address: listed actions, scoped resources, Describe* on * only", function () {
                const policies = ofType(s, T.rolePolicy);
                assert.equal(policies.length, 1);
                const doc = JSON.parse(policies[0].inputs.policy as string) as { Statement: { Action: string[]; Resource: string | string[] }[] };
                const actions = doc.Statement.flatMap((st) => st.Action).sort();
                assert.deepEqual(actions, [...VIP_MOVE_ACTIONS, ...VIP_DESCRIBE_ACTIONS].sort());
                for (const a of actions) assert.ok(!a.includes("*"), `wildcard action ${a}`);
                const vipEip = ofType(s, T.eip).find((e) => e.name === "gw-vip-eip");
                assert.ok(vipEip);
                for (const st of doc.Statement) {
                    if (st.Action.some((a) => (VIP_MOVE_ACTIONS as readonly string[]).includes(a))) {
                        assert.ok(Array.isArray(st.Resource) && !st.Resource.includes("*"), "move actions must be resource-scoped");
                        const res = st.Resource as string[];
                        assert.ok(res.includes(`arn:aws:ec2:eu-central-1:123456789012:elastic-ip/${vipEip.id}`), "VIP EIP ARN");
                        assert.equal(res.filter((r) => r.includes(":network-interface/eni-")).length, 2, "both proxies' interfaces");
                        assert.equal(res.filter((r) => r.includes(":instance/i-")).length, 2, "both proxies' instances");
                        assert.ok(!res.some((r) => r.includes(":elastic-ip/") && !r.endsWith(vipEip.id as string)), "no other EIP");
                    } else {
                        assert.equal(st.Resource, "*");
                    }
                }
            });

            it("puts the VIP on a secondary private address of each proxy and leaves its association to keepalived", function () {
                const proxies = ofType(s, T.instance).filter((i) => roleOf(i) === "sip-proxy");
                const plans = new Map(planHosts(spec).map((h) => [`gw-${h.name}`, h]));
                for (const p of proxies) {
                    const plan = plans.get(p.name);
                    assert.ok(plan?.vipPrivateIp);
                    assert.deepEqual(p.inputs.secondaryPrivateIps, [plan.vipPrivateIp]);
                    assert.ok(p.inputs.iamInstanceProfile, `${p.name} has no instance profile`);
                }
                const vipEip = ofType(s, T.eip).find((e) => e.name === "gw-vip-eip");
                const assocs = ofType(s, T.eipAssociation);
                assert.ok(!assocs.some((a) => a.inputs.allocationId === vipEip?.id), "Pulumi must not own the VIP association");
                const hostIps = new Set(planHosts(spec).map((h) => h.privateIp));
                for (const a of assocs) assert.ok(hostIps.has(a.inputs.privateIpAddress as string), `${a.name} not on a primary address`);
            });

            it("uses the operator's secret instead of generating one", function () {
                assert.equal((s.model as GatewayModel).secrets.redisPassword, SUPPLIED_REDIS_PASSWORD);
                assert.ok(!ofType(s, T.randomPassword).some((r) => r.name.includes("redisPassword")), "redisPassword should not be generated");
                assert.deepEqual(plainLeaks(s.resources, [SUPPLIED_REDIS_PASSWORD]), []);
            });
        } else {
            it("creates no IAM role, policy or VIP on a single-proxy stack", function () {
                assert.deepEqual(s.resources.filter((r) => r.type.startsWith("aws:iam/")).map((r) => r.name), []);
                assert.ok(!ofType(s, T.eip).some((e) => e.name.includes("vip")));
                for (const i of ofType(s, T.instance)) assert.equal(i.inputs.iamInstanceProfile, undefined);
            });
        }
    });
}

describe("stack with an existing VPC, the operator's SSH key and certificate", function () {
    let s: Loaded;

    before(async function () {
        prefetch();
        s = await loadStack(EXISTING);
        assert.equal(s.error, undefined, `program failed: ${s.error}`);
    });

    it("creates no VPC or subnet and places hosts in the given subnet at plan addresses inside it", function () {
        assert.equal(ofType(s, T.vpc).length + ofType(s, T.subnet).length, 0);
        for (const i of ofType(s, T.instance)) {
            assert.equal(i.inputs.subnetId, subnet.id);
            assert.match(String(i.inputs.privateIp), /^10\.60\.1\.\d+$/);
        }
        assert.ok(ofType(s, T.sg).every((g) => g.inputs.vpcId === subnet.vpcId));
    });

    it("registers the operator's public key, generates no key material and exports no deploy key", function () {
        assert.equal(ofType(s, T.tlsKey).length, 0);
        assert.equal(ofType(s, T.keyPair)[0].inputs.publicKey, sshKey);
        assert.equal(s.outputs.deployPrivateKey?.value, undefined);
        for (const c of Object.values(s.connections ?? {})) assert.equal(c.hasPrivateKey, false);
    });

    it("serves the operator's certificate, with the chain after the leaf as CA list, and keeps its key secret", function () {
        const tlsModel = (s.model as GatewayModel).secrets.tls;
        assert.equal(tlsModel.certificatePem, cert);
        assert.equal(tlsModel.caPem.trim(), "-----BEGIN CERTIFICATE-----\nOPERATORCA\n-----END CERTIFICATE-----");
        assert.equal(tlsModel.privateKeyPem, operatorKey);
        assert.deepEqual(plainLeaks(s.resources, ["OPERATORTLSKEY"]), []);
    });

    it("refuses an existing subnet whose CIDR differs from existingSubnetCidrs, naming the key", async function () {
        const bad = await loadStack(EXISTING_BAD);
        assert.match(String(bad.error), /existingSubnetIds\[0\] subnet-0abc1234 has CIDR 10\.60\.2\.0\/24, not existingSubnetCidrs\[0\] 10\.60\.1\.0\/24/);
    });
});
