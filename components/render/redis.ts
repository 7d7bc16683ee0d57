// Cache (Redis 7.0 from Debian 12): the whole redis.conf. Pure.
import type { GatewayModel, HostModel } from "../model";
import { PORTS } from "../ports";
import { MAX_HOSTS_PER_ROLE } from "../ipplan";
import { renderTemplate } from "./engine";
import type { RenderedFile } from "./types";
import { headerFor, requireRole, safeSecret } from "./common";

export const REDIS_CONF_PATH = "/etc/redis/redis.conf";
export const REDIS_SERVICE = "redis-server";
/** db 0 for OpenSIPS plus one per possible media relay (see rtpengineRedisDb) */
export const REDIS_DATABASES = Math.max(16, MAX_HOSTS_PER_ROLE + 1);

export function renderCache(model: GatewayModel, host: HostModel): RenderedFile[] {
    requireRole(host, "cache", "renderCache");
    const template = "redis/redis.conf";
    const content = renderTemplate(
        template,
        {
            privateIp: host.privateIp,
            port: PORTS.redis,
            databases: REDIS_DATABASES,
            password: safeSecret(template, "redisPassword", model.secrets.redisPassword),
        },
        headerFor(model, host),
    );
    // requirepass makes it secret; redis-server runs as User=redis and must read it
    return [{ path: REDIS_CONF_PATH, content, mode: "0640", owner: "redis", group: "redis", service: REDIS_SERVICE, secret: true }];
}
