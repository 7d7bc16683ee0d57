// A gateway for the browser tests, started like the OpenSIPS daemon tests do
// (test/opensips/support.ts): the dev stack's rendered OpenSIPS in one
// namespace; MariaDB with the rendered schema and seed, Redis, RTPEngine, the
// lab's test endpoint, the softphone page server and the browser in another.
//
// Public addresses are the hosts' private ones: the browser sits next to the
// relay, so the address RTPEngine advertises in its ICE candidates must be one
// the browser can reach (in AWS the Elastic IP maps 1:1 to it).
import * as fs from "fs";
import * as path from "path";
import type { GatewayModel, HostModel } from "../../components/model";
import { hostsOf } from "../../components/model";
import { loadSpec, offlineModel, randomSecrets } from "../../components/offline";
import { PORTS } from "../../components/ports";
import { renderSipProxy, sipListenIp } from "../../components/render/opensips";
import { OPENSIPS_SCHEMA_SQL, OPENSIPS_SEED_SQL, renderDatabaseSchema } from "../../components/render/opensips-schema";
import { REDIS_CONF_PATH, renderCache } from "../../components/render/redis";
import { RTPENGINE_CONF_PATH, RTPENGINE_DEFAULTS_PATH, renderMediaRelay } from "../../components/render/rtpengine";
import { LAB_TEST_USERS, startSoftphoneExtras, stopSoftphoneExtras, withSoftphoneUsers } from "../../softphone/lab";
import { parseEnvFile, startRedis } from "../support/daemons";
import { Daemon, TestNetns } from "../support/netns";
import { secretValues, testTls, writeTree } from "../support/stacks";
import { TestMariadb, opensipsModuleDir, prepareConfig, startOpensips } from "../opensips/support";

/** Who is who in the browser tests: the dev stack's first subscriber and the lab's test users. */
export const USERS = { browser: "alice", ...LAB_TEST_USERS } as const;

/**
 * Private addresses (RFC 1918, outside the dev VPC) for the browser with the page server, and the test
 * endpoint: a page on a public address may not open a WebSocket to the proxy's private one (Chromium's
 * Local Network Access checks, net::ERR_BLOCKED_BY_LOCAL_NETWORK_ACCESS_CHECKS).
 */
const BROWSER_IP = "192.168.77.77";
const ENDPOINT_IP = "192.168.77.78";

export interface BrowserGateway {
    readonly model: GatewayModel;
    readonly proxy: HostModel;
    readonly relay: HostModel;
    readonly nsProxy: TestNetns;
    /** the namespace of the browser, the relay, the endpoint and the page server */
    readonly nsClient: TestNetns;
    readonly opensips: Daemon;
    /** OpenSIPS' MI FIFO */
    readonly fifo: string;
    readonly rtpengine: Daemon;
    /** the test endpoint's log so far (its lines name no secret) */
    endpointLog(): string;
    readonly pageUrl: string;
    readonly wssUrl: string;
    readonly browserIp: string;
    readonly secrets: readonly string[];
    /** addresses the browser may talk to (host-resolver EXCLUDEs) */
    readonly labAddresses: readonly string[];
    destroy(): Promise<void>;
}

/** The dev stack with the endpoint's users added, reachable by its private addresses. */
export function browserTestModel(): GatewayModel {
    const spec = withSoftphoneUsers(loadSpec("dev"));
    const secrets = randomSecrets(spec, testTls(spec.sipDomain));
    const planned = offlineModel(spec, { secrets });
    const publicIps = Object.fromEntries(planned.hosts.filter((h) => h.publicIp).map((h) => [h.name, h.privateIp]));
    return offlineModel(spec, { secrets, publicIps });
}

/** RTPEngine on the rendered files, deleting calls at once (the rendered delete-delay keeps them listed 30 s, DOMAIN-FACTS 11). */
async function startRelay(ns: TestNetns, confPath: string, defaultsPath: string, ngIp: string, secrets: readonly string[]): Promise<Daemon> {
    const env = parseEnvFile(fs.readFileSync(defaultsPath, "utf8"));
    const d = ns.spawnDaemon("rtpengine", "rtpengine", ["-f", "-E", "--no-log-timestamps", "--pidfile", path.join(ns.workDir, "rtpengine.pid"), "--config-file", confPath, "--delete-delay=0"], {
        env: { ...process.env, ...env },
    });
    await ns.waitForPort(d, "udp", ngIp, PORTS.rtpengineNg, 20000, secrets);
    return d;
}

export async function startBrowserGateway(bin: string): Promise<BrowserGateway> {
    const model = browserTestModel();
    const secrets = secretValues(model);
    const proxy = hostsOf(model, "sip-proxy")[0];
    const relay = hostsOf(model, "media-relay")[0];
    const database = hostsOf(model, "database")[0];
    const cache = hostsOf(model, "cache")[0];
    const [nsProxy, nsClient] = await TestNetns.createPair(
        "brw",
        { addresses: [proxy.privateIp] },
        { addresses: [database.privateIp, cache.privateIp, relay.privateIp, BROWSER_IP, ENDPOINT_IP] },
    );
    let destroy = async () => {
        await nsProxy.destroy();
        await nsClient.destroy();
    };
    try {
        const db = await TestMariadb.start(nsClient, database.privateIp, secrets);
        const sqlAt = writeTree(path.join(nsClient.workDir, "db-root"), renderDatabaseSchema(model, database));
        for (const f of [OPENSIPS_SCHEMA_SQL, OPENSIPS_SEED_SQL]) await db.sql(fs.readFileSync(sqlAt(f), "utf8"));
        const cacheAt = writeTree(path.join(nsClient.workDir, "cache-root"), renderCache(model, cache));
        await startRedis(nsClient, cacheAt(REDIS_CONF_PATH), cache.privateIp, secrets);
        const relayAt = writeTree(path.join(nsClient.workDir, "relay-root"), renderMediaRelay(model, relay));
        const rtpengine = await startRelay(nsClient, relayAt(RTPENGINE_CONF_PATH), relayAt(RTPENGINE_DEFAULTS_PATH), relay.privateIp, secrets);

        const tc = prepareConfig(renderSipProxy(model, proxy), path.join(nsProxy.workDir, proxy.name), opensipsModuleDir(bin));
        const sipIp = sipListenIp(proxy);
        const opensips = await startOpensips(
            nsProxy,
            bin,
            tc,
            proxy.name,
            [
                ["udp", sipIp, PORTS.sip],
                ["tcp", sipIp, PORTS.wss],
            ],
            secrets,
        );

        // the page server and the endpoint exactly as the lab starts them
        const runDir = path.join(nsClient.workDir, "softphone");
        const extras = await startSoftphoneExtras({ netnsPath: nsClient.path, runDir, model, browserUser: USERS.browser, proxyIp: sipIp, pageIp: BROWSER_IP, endpointIp: ENDPOINT_IP });
        const stopExtras = destroy;
        destroy = async () => {
            await stopSoftphoneExtras(runDir);
            await stopExtras();
        };
        const endpointLogFile = path.join(runDir, "softphone-endpoint.log");

        return {
            model,
            proxy,
            relay,
            nsProxy,
            nsClient,
            opensips,
            fifo: tc.fifo,
            rtpengine,
            endpointLog: () => (fs.existsSync(endpointLogFile) ? fs.readFileSync(endpointLogFile, "utf8") : ""),
            pageUrl: extras.pageUrl,
            wssUrl: extras.wssUrl,
            browserIp: BROWSER_IP,
            secrets,
            labAddresses: [sipIp, relay.privateIp, BROWSER_IP],
            destroy: () => destroy(),
        };
    } catch (e) {
        await destroy();
        throw e;
    }
}

/** RTPEngine's own list of its calls (its CLI on the relay namespace's loopback), as text. */
export async function rtpengineSessions(gw: BrowserGateway): Promise<string> {
    const r = await gw.nsClient.runOk("rtpengine-ctl", ["-ip", "127.0.0.1", "-port", String(PORTS.rtpengineCli), "list", "sessions", "all"], { timeoutMs: 10000 });
    return r.stdout;
}
