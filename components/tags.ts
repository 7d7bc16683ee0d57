// Tags every taggable AWS resource carries, so an operator can tell in the
// console which stack and role a thing belongs to. Pure: no Pulumi import.
import type { Role } from "./ports";

/** Role tag value: a host role, or "shared" for stack-wide resources (VPC, key pair). */
export type TagRole = Role | "shared";

export const TAG_STACK = "ifbus:stack";
export const TAG_ROLE = "ifbus:role";

export function tagsFor(stack: string, name: string, role: TagRole): Record<string, string> {
    return { Name: name, [TAG_STACK]: stack, [TAG_ROLE]: role };
}
