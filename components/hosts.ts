// One EC2 host per planned host: fixed private address from the IP plan,
// IMDSv2 only, encrypted disks, an Elastic IP for roles that face the
// internet, and an encrypted data volume on database nodes.
import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import type { HostPlan } from "./model";
import { rolesWithPublicIp } from "./model";
import type { GatewaySpec } from "./spec";
import { tagsFor } from "./tags";

/** Device name the Galera data volume is attached as (NVMe instances expose it by volume id instead). */
export const DATA_VOLUME_DEVICE = "/dev/xvdf";
/** Where the Galera data volume is mounted. */
export const DATA_VOLUME_MOUNT = "/var/lib/mysql";
/** Login user of the Debian cloud images. */
export const DEBIAN_AMI_USER = "admin";

/** AMI for every host: spec.amiId, else the newest image of amiOwner matching amiNamePattern (x86_64). */
export function lookupAmi(spec: GatewaySpec, opts: pulumi.InvokeOutputOptions): pulumi.Output<string> {
    if (spec.amiId) return pulumi.output(spec.amiId);
    return aws.ec2.getAmiOutput(
        {
            owners: [spec.amiOwner],
            mostRecent: true,
            filters: [
                { name: "name", values: [spec.amiNamePattern] },
                { name: "architecture", values: ["x86_64"] },
                { name: "virtualization-type", values: ["hvm"] },
            ],
        },
        opts,
    ).id;
}

/**
 * First-boot script of a database node: wait (bounded) for the data volume,
 * give it a filesystem only if it has none (a rebuilt host keeps its data),
 * mount it by UUID. No secrets: userData is stored in clear text.
 */
export function dataVolumeUserData(volumeId: string): string {
    const serial = volumeId.replace("-", "");
    return `#!/bin/sh
# IF.bus: mount the Galera data volume ${volumeId} at ${DATA_VOLUME_MOUNT}; format it only when it holds no filesystem.
set -eu
dev=""
for i in $(seq 1 300); do
  for d in /dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_${serial} ${DATA_VOLUME_DEVICE}; do
    if [ -b "$d" ]; then dev=$(readlink -f "$d"); break 2; fi
  done
  sleep 1
done
[ -n "$dev" ] || { echo "data volume ${volumeId} not attached after 300 s" >&2; exit 1; }
fresh=0
blkid "$dev" >/dev/null 2>&1 || { mkfs.ext4 -q -L galera-data "$dev"; fresh=1; }
uuid=$(blkid -s UUID -o value "$dev")
mkdir -p ${DATA_VOLUME_MOUNT}
grep -q "UUID=$uuid" /etc/fstab || echo "UUID=$uuid ${DATA_VOLUME_MOUNT} ext4 defaults,noatime,nofail 0 2" >> /etc/fstab
mountpoint -q ${DATA_VOLUME_MOUNT} || mount ${DATA_VOLUME_MOUNT}
# MariaDB would list lost+found as a database; e2fsck recreates it when needed.
if [ "$fresh" = 1 ]; then rmdir ${DATA_VOLUME_MOUNT}/lost+found; fi
`;
}

export interface GatewayHostArgs {
    /** stack name, for tags */
    readonly stack: string;
    /** the host's place in the IP plan (name, role, zone, private address) */
    readonly plan: HostPlan;
    /** EC2 instance type */
    readonly instanceType: string;
    /** AMI id */
    readonly ami: pulumi.Input<string>;
    /** keep the running instance when the AMI lookup finds a newer image (a rebuild takes the new one); default false */
    readonly ignoreAmiChanges?: boolean;
    /** subnet of plan.zoneIndex */
    readonly subnetId: pulumi.Input<string>;
    /** the role's security group */
    readonly securityGroupId: pulumi.Input<string>;
    /** EC2 key pair for the deploy user */
    readonly keyName: pulumi.Input<string>;
    /** instance profile name (proxies with vipFailover); default none */
    readonly iamInstanceProfile?: pulumi.Input<string>;
    /** encrypted gp3 root volume, GiB */
    readonly rootVolumeGb: number;
    /** encrypted gp3 data volume mounted at /var/lib/mysql, GiB; database nodes only */
    readonly dataVolumeGb?: number;
    /** protect the data volume from deletion; default false */
    readonly protectData?: boolean;
    /** resources to wait for before launching (routes to the internet) */
    readonly dependsOn?: pulumi.Input<pulumi.Resource>[];
}

export class GatewayHost extends pulumi.ComponentResource {
    readonly plan: HostPlan;
    readonly instance: aws.ec2.Instance;
    /** the fixed private address */
    readonly privateIp: string;
    /** the host's own Elastic IP (proxies, relays, TURN); undefined for internal roles */
    readonly publicIp?: pulumi.Output<string>;
    /** Elastic IP allocation of publicIp */
    readonly eip?: aws.ec2.Eip;
    /** address an operator or the push reaches SSH on: the EIP, else the instance's own public address */
    readonly sshHost: pulumi.Output<string>;
    /** everything that must exist before software is pushed (instance, EIP association, data volume attachment) */
    readonly ready: pulumi.Resource[];

    constructor(name: string, args: GatewayHostArgs, opts?: pulumi.ComponentResourceOptions) {
        super("ifbus:hosts:GatewayHost", name, {}, opts);
        const { plan, stack } = args;
        const tags = tagsFor(stack, name, plan.role);
        const hasEip = rolesWithPublicIp().includes(plan.role);

        let dataVolume: aws.ebs.Volume | undefined;
        if (args.dataVolumeGb !== undefined) {
            dataVolume = new aws.ebs.Volume(
                `${name}-data`,
                { availabilityZone: plan.zone, size: args.dataVolumeGb, type: "gp3", encrypted: true, tags: tagsFor(stack, `${name}-data`, plan.role) },
                { parent: this, protect: args.protectData ?? false },
            );
        }

        this.instance = new aws.ec2.Instance(
            name,
            {
                ami: args.ami,
                instanceType: args.instanceType,
                subnetId: args.subnetId,
                privateIp: plan.privateIp,
                secondaryPrivateIps: plan.vipPrivateIp ? [plan.vipPrivateIp] : undefined,
                vpcSecurityGroupIds: [args.securityGroupId],
                keyName: args.keyName,
                iamInstanceProfile: args.iamInstanceProfile,
                // Internal roles have no EIP; an ephemeral public address gives them apt and SSH without a NAT gateway.
                associatePublicIpAddress: !hasEip,
                // IMDSv2 only, one hop: a container on the host cannot reach the instance role's credentials.
                metadataOptions: { httpEndpoint: "enabled", httpTokens: "required", httpPutResponseHopLimit: 1 },
                rootBlockDevice: { volumeType: "gp3", volumeSize: args.rootVolumeGb, encrypted: true, deleteOnTermination: true, tags: tagsFor(stack, `${name}-root`, plan.role) },
                userData: dataVolume ? dataVolume.id.apply(dataVolumeUserData) : undefined,
                tags,
            },
            {
                parent: this,
                dependsOn: args.dependsOn,
                // The fixed private address can only be taken once the old instance is gone.
                deleteBeforeReplace: true,
                ignoreChanges: args.ignoreAmiChanges ? ["ami"] : [],
            },
        );
        this.plan = plan;
        this.privateIp = plan.privateIp;
        this.ready = [this.instance];

        if (dataVolume) {
            this.ready.push(
                new aws.ec2.VolumeAttachment(
                    `${name}-data`,
                    // Stop the instance before detaching so MariaDB shuts down cleanly on a replacement.
                    { instanceId: this.instance.id, volumeId: dataVolume.id, deviceName: DATA_VOLUME_DEVICE, stopInstanceBeforeDetaching: true },
                    { parent: this, deleteBeforeReplace: true },
                ),
            );
        }

        if (hasEip) {
            this.eip = new aws.ec2.Eip(`${name}-eip`, { domain: "vpc", tags: tagsFor(stack, `${name}-eip`, plan.role) }, { parent: this });
            this.ready.push(
                new aws.ec2.EipAssociation(
                    `${name}-eip`,
                    // On the primary address explicitly: a proxy's secondary address is reserved for the VIP.
                    { allocationId: this.eip.allocationId, networkInterfaceId: this.instance.primaryNetworkInterfaceId, privateIpAddress: plan.privateIp },
                    { parent: this, deleteBeforeReplace: true },
                ),
            );
            this.publicIp = this.eip.publicIp;
            this.sshHost = this.eip.publicIp;
        } else {
            this.sshHost = this.instance.publicIp;
        }
        this.registerOutputs({ privateIp: this.privateIp, publicIp: this.publicIp, sshHost: this.sshHost });
    }
}
