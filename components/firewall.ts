// Security groups from the port matrix: one group per role without inline
// rules, one SecurityGroupIngressRule per matrix entry, one egress rule per
// group (the AWS provider removes the default egress; hosts need apt, the
// EC2 API and media).
import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import type { Role } from "./ports";
import { FirewallRule, firewallRules, presentRoles, ANY_IPV4 } from "./matrix";
import type { GatewaySpec } from "./spec";
import { tagsFor } from "./tags";

export interface FirewallArgs {
    /** the validated stack spec: rules come from firewallRules(spec) */
    readonly spec: GatewaySpec;
    /** VPC the groups belong to */
    readonly vpcId: pulumi.Input<string>;
}

export class Firewall extends pulumi.ComponentResource {
    /** security group id per role present in the stack */
    readonly groupIds: Readonly<Partial<Record<Role, pulumi.Output<string>>>>;
    /** the matrix these groups were built from */
    readonly rules: readonly FirewallRule[];

    constructor(name: string, args: FirewallArgs, opts?: pulumi.ComponentResourceOptions) {
        super("ifbus:firewall:Firewall", name, {}, opts);
        const { spec } = args;
        const groups: Partial<Record<Role, aws.ec2.SecurityGroup>> = {};
        for (const role of presentRoles(spec)) {
            const sgName = `${name}-${role}`;
            // No inline ingress/egress: the rule resources below own every rule.
            groups[role] = new aws.ec2.SecurityGroup(
                sgName,
                { vpcId: args.vpcId, description: `IF.bus ${spec.stack} ${role} hosts`, tags: tagsFor(spec.stack, sgName, role) },
                { parent: this },
            );
        }
        const groupOf = (role: Role): aws.ec2.SecurityGroup => {
            const g = groups[role];
            if (!g) throw new Error(`firewall rule refers to role ${role}, which has no hosts in stack ${spec.stack}`);
            return g;
        };

        this.rules = firewallRules(spec);
        for (const rule of this.rules) {
            const ruleName = `${name}-${rule.id}`;
            const ported = rule.fromPort >= 0;
            new aws.vpc.SecurityGroupIngressRule(
                ruleName,
                {
                    securityGroupId: groupOf(rule.role).id,
                    ipProtocol: rule.protocol,
                    // Ports only for tcp/udp: AWS ignores them for other protocols and reads them back as -1.
                    fromPort: ported ? rule.fromPort : undefined,
                    toPort: ported ? rule.toPort : undefined,
                    cidrIpv4: "cidr" in rule.source ? rule.source.cidr : undefined,
                    cidrIpv6: "cidrIpv6" in rule.source ? rule.source.cidrIpv6 : undefined,
                    referencedSecurityGroupId: "role" in rule.source ? groupOf(rule.source.role).id : undefined,
                    description: rule.description,
                    tags: tagsFor(spec.stack, ruleName, rule.role),
                },
                { parent: this },
            );
        }
        for (const [role, group] of Object.entries(groups) as [Role, aws.ec2.SecurityGroup][]) {
            const ruleName = `${name}-${role}-egress-all`;
            new aws.vpc.SecurityGroupEgressRule(
                ruleName,
                { securityGroupId: group.id, ipProtocol: "-1", cidrIpv4: ANY_IPV4, description: "All outbound: apt, EC2 API, media, TURN peers", tags: tagsFor(spec.stack, ruleName, role) },
                { parent: this },
            );
        }
        this.groupIds = Object.fromEntries(Object.entries(groups).map(([r, g]) => [r, g.id]));
        this.registerOutputs({ groupIds: this.groupIds });
    }
}
