// What the render stage produces: plain files per host.
import type { Role } from "../ports";

export interface RenderedFile {
    /** absolute path on the host */
    readonly path: string;
    readonly content: string;
    /** octal mode, e.g. "0640" */
    readonly mode: string;
    readonly owner: string;
    readonly group: string;
    /**
     * systemd unit that must be restarted (or reloaded) when this file
     * changes; "none" for files no service reads directly (SQL, scripts run
     * on demand).
     */
    readonly service: string;
    /** true when the content holds a secret: it must stay a Pulumi secret and never be printed */
    readonly secret: boolean;
}

export interface HostFiles {
    readonly host: string;
    readonly role: Role;
    readonly files: readonly RenderedFile[];
}
