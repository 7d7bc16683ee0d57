// The network the hosts live in: a new VPC with one public subnet per
// availability zone (CIDRs from the fixed IP plan), or an existing VPC whose
// subnets are checked against the plan.
import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import { tagsFor } from "./tags";

export interface NetworkArgs {
    /** stack name, for tags */
    readonly stack: string;
    /** availability zones, one subnet each, in spec order */
    readonly availabilityZones: readonly string[];
    /** subnet CIDR per zone, same order (model.subnetCidrs(spec)) */
    readonly subnetCidrs: readonly string[];
    /** CIDR of the new VPC; ignored with existingVpcId */
    readonly vpcCidr: string;
    /** use this VPC instead of creating one; default: create */
    readonly existingVpcId?: string;
    /** subnets of existingVpcId, one per zone in the same order */
    readonly existingSubnetIds?: readonly string[];
}

export class Network extends pulumi.ComponentResource {
    readonly vpcId: pulumi.Output<string>;
    /** subnet id per availability zone, in spec order */
    readonly subnetIds: pulumi.Output<string>[];
    /** resources hosts must wait for before they can reach the internet (routes) */
    readonly ready: pulumi.Resource[];

    constructor(name: string, args: NetworkArgs, opts?: pulumi.ComponentResourceOptions) {
        super("ifbus:network:Network", name, {}, opts);
        const tags = (n: string) => tagsFor(args.stack, n, "shared");

        if (args.existingVpcId) {
            const subnetIds = args.existingSubnetIds ?? [];
            this.vpcId = aws.ec2.getVpcOutput({ id: args.existingVpcId }, { parent: this }).id;
            // The fixed IP plan is computed from existingSubnetCidrs; refuse a subnet that is not what the stack file says.
            this.subnetIds = subnetIds.map((id, i) =>
                aws.ec2.getSubnetOutput({ id }, { parent: this }).apply((s) => {
                    const problems: string[] = [];
                    if (s.vpcId !== args.existingVpcId) problems.push(`is in ${s.vpcId}, not existingVpcId ${args.existingVpcId}`);
                    if (s.cidrBlock !== args.subnetCidrs[i]) problems.push(`has CIDR ${s.cidrBlock}, not existingSubnetCidrs[${i}] ${args.subnetCidrs[i]}`);
                    if (s.availabilityZone !== args.availabilityZones[i]) problems.push(`is in ${s.availabilityZone}, not availabilityZones[${i}] ${args.availabilityZones[i]}`);
                    if (problems.length) throw new Error(`existingSubnetIds[${i}] ${id} ${problems.join("; ")}`);
                    return s.id;
                }),
            );
            this.ready = [];
        } else {
            const vpc = new aws.ec2.Vpc(`${name}-vpc`, { cidrBlock: args.vpcCidr, enableDnsSupport: true, enableDnsHostnames: true, tags: tags(`${name}-vpc`) }, { parent: this });
            const igw = new aws.ec2.InternetGateway(`${name}-igw`, { vpcId: vpc.id, tags: tags(`${name}-igw`) }, { parent: this });
            const routes = new aws.ec2.RouteTable(`${name}-public`, { vpcId: vpc.id, tags: tags(`${name}-public`) }, { parent: this });
            // A separate Route resource, not an inline route: mixing the two fights over the table.
            const defaultRoute = new aws.ec2.Route(`${name}-default-route`, { routeTableId: routes.id, destinationCidrBlock: "0.0.0.0/0", gatewayId: igw.id }, { parent: this });
            const associations: pulumi.Resource[] = [];
            this.subnetIds = args.availabilityZones.map((zone, i) => {
                const subnet = new aws.ec2.Subnet(
                    `${name}-${zone}`,
                    {
                        vpcId: vpc.id,
                        cidrBlock: args.subnetCidrs[i],
                        availabilityZone: zone,
                        // Addresses are given per host (EIPs, or associatePublicIpAddress on internal roles).
                        mapPublicIpOnLaunch: false,
                        tags: tags(`${name}-${zone}`),
                    },
                    { parent: this },
                );
                associations.push(new aws.ec2.RouteTableAssociation(`${name}-${zone}`, { subnetId: subnet.id, routeTableId: routes.id }, { parent: this }));
                return subnet.id;
            });
            this.vpcId = vpc.id;
            this.ready = [defaultRoute, ...associations];
        }
        this.registerOutputs({ vpcId: this.vpcId, subnetIds: this.subnetIds });
    }
}
