// The floating SIP address (DOMAIN-FACTS 4, option A): an Elastic IP that
// keepalived's notify_master script moves to the new master's secondary
// private address with ec2:AssociateAddress. VRRP only elects the master;
// a VPC ignores gratuitous ARP.
import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import { tagsFor } from "./tags";

/** Every action the proxies' instance role may call; the tests hold the policy to this list. */
export const VIP_MOVE_ACTIONS = ["ec2:AssociateAddress", "ec2:DisassociateAddress"] as const;
export const VIP_DESCRIBE_ACTIONS = ["ec2:DescribeAddresses", "ec2:DescribeNetworkInterfaces"] as const;

export interface VipAddressArgs {
    /** stack name, for tags */
    readonly stack: string;
    /** protect the EIP from deletion (its address is in DNS and carriers' allow lists); default false */
    readonly protect?: boolean;
}

/**
 * The VIP Elastic IP plus the instance role and profile the proxies launch
 * with. The EIP is deliberately NOT associated by Pulumi: keepalived owns
 * the association, and a Pulumi-managed one would be re-created on the next
 * `pulumi up --refresh` after a failover, pulling the VIP back to proxy 1.
 */
export class VipAddress extends pulumi.ComponentResource {
    readonly eip: aws.ec2.Eip;
    readonly publicIp: pulumi.Output<string>;
    readonly allocationId: pulumi.Output<string>;
    readonly role: aws.iam.Role;
    /** instance profile name for the proxies */
    readonly instanceProfileName: pulumi.Output<string>;

    constructor(name: string, args: VipAddressArgs, opts?: pulumi.ComponentResourceOptions) {
        super("ifbus:failover:VipAddress", name, {}, opts);
        const tags = (n: string) => tagsFor(args.stack, n, "sip-proxy");
        this.eip = new aws.ec2.Eip(`${name}-eip`, { domain: "vpc", tags: tags(`${name}-eip`) }, { parent: this, protect: args.protect ?? false });
        this.role = new aws.iam.Role(
            `${name}-role`,
            {
                description: "IF.bus sip proxies: keepalived moves the VIP Elastic IP",
                assumeRolePolicy: JSON.stringify({
                    Version: "2012-10-17",
                    Statement: [{ Effect: "Allow", Principal: { Service: "ec2.amazonaws.com" }, Action: "sts:AssumeRole" }],
                }),
                tags: tags(`${name}-role`),
            },
            { parent: this },
        );
        const profile = new aws.iam.InstanceProfile(`${name}-profile`, { role: this.role.name, tags: tags(`${name}-profile`) }, { parent: this });
        this.publicIp = this.eip.publicIp;
        this.allocationId = this.eip.allocationId;
        this.instanceProfileName = profile.name;
        this.registerOutputs({ publicIp: this.publicIp, allocationId: this.allocationId });
    }
}

export interface VipMovePolicyArgs {
    /** the proxies' instance role (VipAddress.role) */
    readonly role: aws.iam.Role;
    /** allocation id of the VIP EIP */
    readonly allocationId: pulumi.Input<string>;
    /** primary network interface ids of the proxies */
    readonly networkInterfaceIds: pulumi.Input<string>[];
    /** instance ARNs of the proxies */
    readonly instanceArns: pulumi.Input<string>[];
}

/** Builds the policy document; pure, so the tests can read it. */
export function vipMovePolicyDocument(partition: string, region: string, accountId: string, allocationId: string, eniIds: string[], instanceArns: string[]): string {
    const arn = (type: string, id: string) => `arn:${partition}:ec2:${region}:${accountId}:${type}/${id}`;
    return JSON.stringify({
        Version: "2012-10-17",
        Statement: [
            {
                Sid: "MoveTheVipOnly",
                Effect: "Allow",
                Action: [...VIP_MOVE_ACTIONS],
                // AssociateAddress authorizes the elastic-ip, network-interface and instance resource types; scope all three.
                Resource: [arn("elastic-ip", allocationId), ...eniIds.map((id) => arn("network-interface", id)), ...instanceArns],
            },
            {
                Sid: "DescribeForFailover",
                Effect: "Allow",
                Action: [...VIP_DESCRIBE_ACTIONS],
                // Describe* calls do not support resource-level permissions (AWS service authorization reference for EC2).
                Resource: "*",
            },
        ],
    });
}

/**
 * The inline policy that lets the proxies move the VIP and nothing else.
 * Separate from VipAddress because it names the proxies' interfaces, which
 * exist only after the instances that already need the instance profile.
 */
export class VipMovePolicy extends pulumi.ComponentResource {
    readonly policy: aws.iam.RolePolicy;

    constructor(name: string, args: VipMovePolicyArgs, opts?: pulumi.ComponentResourceOptions) {
        super("ifbus:failover:VipMovePolicy", name, {}, opts);
        const invokeOpts = { parent: this };
        const account = aws.getCallerIdentityOutput({}, invokeOpts);
        const region = aws.getRegionOutput({}, invokeOpts);
        const partition = aws.getPartitionOutput({}, invokeOpts);
        const document = pulumi
            .all([partition.partition, region.region, account.accountId, args.allocationId, pulumi.all(args.networkInterfaceIds), pulumi.all(args.instanceArns)])
            .apply(([p, r, a, alloc, enis, arns]) => vipMovePolicyDocument(p, r, a, alloc, enis, arns));
        this.policy = new aws.iam.RolePolicy(`${name}-policy`, { role: args.role.id, policy: document }, { parent: this });
        this.registerOutputs({});
    }
}
