// render(model) -> files per host. Pure: plain values in, plain files out.
import type { GatewayModel, HostModel } from "../model";
import type { HostFiles, RenderedFile } from "./types";
import { renderSipProxy } from "./opensips";
import { renderMediaRelay } from "./rtpengine";
import { renderDatabase } from "./galera";
import { renderCache } from "./redis";
import { renderTurn } from "./coturn";

export type { HostFiles, RenderedFile } from "./types";

export function renderHost(model: GatewayModel, host: HostModel): HostFiles {
    let files: RenderedFile[];
    switch (host.role) {
        case "sip-proxy":
            files = renderSipProxy(model, host);
            break;
        case "media-relay":
            files = renderMediaRelay(model, host);
            break;
        case "database":
            files = renderDatabase(model, host);
            break;
        case "cache":
            files = renderCache(model, host);
            break;
        case "turn":
            files = renderTurn(model, host);
            break;
    }
    const seen = new Set<string>();
    for (const f of files) {
        if (seen.has(f.path)) throw new Error(`host ${host.name}: two rendered files share the path ${f.path}`);
        seen.add(f.path);
    }
    return { host: host.name, role: host.role, files: [...files].sort((a, b) => a.path.localeCompare(b.path)) };
}

export function renderAll(model: GatewayModel): HostFiles[] {
    return model.hosts.map((h) => renderHost(model, h));
}
