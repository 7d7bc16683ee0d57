// Properties of every rendered file of every host, for the example stacks and
// generated ones: header line, secrets only in files marked secret (and not
// world-readable), no key without a value, deterministic output, and the
// ports and ranges of the spec in the role configs.
import { strict as assert } from "assert";
import fc from "fast-check";
import type { GatewayModel, HostModel } from "../../components/model";
import { hostsOf } from "../../components/model";
import { PORTS, maxCallsPerRelay } from "../../components/ports";
import { renderAll, renderHost } from "../../components/render";
import type { RenderedFile } from "../../components/render/types";
import { RenderError } from "../../components/render/engine";
import { renderMediaRelay, RTPENGINE_CONF_PATH, RTPENGINE_DEFAULTS_PATH } from "../../components/render/rtpengine";
import { renderTurn, TURN_CONF_PATH, DENIED_PEER_RANGES } from "../../components/render/coturn";
import { renderCache, REDIS_CONF_PATH } from "../../components/render/redis";
import { renderDatabase, GALERA_CNF_PATH } from "../../components/render/galera";
import { renderDatabaseSchema } from "../../components/render/opensips-schema";
import { renderKeepalived, KEEPALIVED_CONF_PATH, virtualRouterId } from "../../components/render/keepalived";
import { EXAMPLE_STACKS, exampleModel, modelFor, secretValues, specArbitrary, fileAt } from "../support/stacks";

/** Pieces of each secret to look for: whole passwords, and a line from the middle of the private key's body. */
function secretNeedles(model: GatewayModel): { name: string; value: string }[] {
    const s = model.secrets;
    const keyLines = s.tls.privateKeyPem.split("\n").filter((l) => l && !l.startsWith("-----"));
    return [
        { name: "databasePassword", value: s.databasePassword },
        { name: "databaseSstPassword", value: s.databaseSstPassword },
        { name: "redisPassword", value: s.redisPassword },
        { name: "turnSharedSecret", value: s.turnSharedSecret },
        ...Object.entries(s.subscriberPasswords).map(([u, v]) => ({ name: `subscriber ${u}`, value: v })),
        { name: "tls private key", value: keyLines[Math.floor(keyLines.length / 2)] },
    ];
}

/** `key =` / `key=` with nothing after it, in the formats that use '=' (ini, cnf, env, turnserver.conf, sysctl). */
const EMPTY_ASSIGNMENT = /^\s*[A-Za-z_][\w.-]*\s*=\s*$/;
/** What a missing value leaves behind in a template. */
const LEFTOVERS = /\bundefined\b|\[object Object\]|\bNaN\b|\{\{|\}\}/;

/** Secrets stay in files marked secret, which are not world-readable: for every file of every role. */
function checkSecrets(model: GatewayModel, host: string, f: RenderedFile): void {
    const where = `${host}:${f.path}`;
    if (f.secret) assert.equal(parseInt(f.mode, 8) & 0o004, 0, `${where} is secret but world-readable (${f.mode})`);
    else for (const n of secretNeedles(model)) assert.ok(!f.content.includes(n.value), `${where} holds the ${n.name} but is not marked secret`);
}

/** Header, modes, no leftovers and no empty values: for the files of the roles rendered here (OpenSIPS' own files have their own tests). */
function checkFile(model: GatewayModel, host: string, role: string, f: RenderedFile): void {
    const where = `${host}:${f.path}`;
    const lines = f.content.split("\n");
    const headerLine = lines[0].startsWith("#!") ? lines[1] : lines[0];
    assert.match(headerLine, new RegExp(`Rendered by the IF\\.bus gateway stack for stack=${model.stack} role=${role} host=${host} from `), `${where} has no header line`);
    assert.match(f.mode, /^0[0-7]{3}$/, `${where} mode ${f.mode}`);
    for (const field of [f.owner, f.group, f.service]) assert.match(field, /^[a-z][a-z0-9_.-]*$/, `${where}: owner/group/service "${field}"`);
    // PEM bodies are base64: neither key=value nor free of chance "NaN"s
    if (f.content.includes("-----BEGIN ")) return;
    assert.doesNotMatch(f.content, LEFTOVERS, `${where} holds a template leftover`);
    const body = lines.filter((l) => !/^\s*(#|;|--)/.test(l));
    // systemd's reset idiom: "ExecStart=" directly followed by a new "ExecStart=..." (systemd.unit(5))
    const isReset = (l: string, i: number) => f.path.startsWith("/etc/systemd/") && (body[i + 1] ?? "").startsWith(l.trim()) && body[i + 1].trim().length > l.trim().length;
    const empty = body.find((l, i) => EMPTY_ASSIGNMENT.test(l) && !isReset(l, i));
    assert.equal(empty, undefined, `${where} has a key without a value: "${empty}"`);
    if (f.path === REDIS_CONF_PATH) {
        // every redis.conf directive takes at least one argument
        const bare = body.find((l) => l.trim() && l.trim().split(/\s+/).length < 2);
        assert.equal(bare, undefined, `${where}: directive without argument "${bare}"`);
    }
}

/** The files of a host that this stage's role renderers write (not OpenSIPS' config, TLS files or schema SQL). */
function roleFiles(model: GatewayModel, host: HostModel): RenderedFile[] {
    switch (host.role) {
        case "sip-proxy":
            return model.vip ? renderKeepalived(model, host) : [];
        case "media-relay":
            return renderMediaRelay(model, host);
        case "database": {
            const schema = new Set(renderDatabaseSchema(model, host).map((f) => f.path));
            return renderDatabase(model, host).filter((f) => !schema.has(f.path));
        }
        case "cache":
            return renderCache(model, host);
        case "turn":
            return renderTurn(model, host);
    }
}

function checkModel(model: GatewayModel): void {
    for (const hf of renderAll(model)) {
        assert.ok(hf.files.length > 0, `${hf.host} has no files`);
        for (const f of hf.files) checkSecrets(model, hf.host, f);
    }
    for (const host of model.hosts) for (const f of roleFiles(model, host)) checkFile(model, host.name, host.role, f);
}

function kv(content: string, key: string, sep: "=" | " " = "="): string[] {
    const re = sep === "=" ? new RegExp(`^\\s*${key}\\s*=\\s*(.*?)\\s*$`) : new RegExp(`^\\s*${key}\\s+(.*?)\\s*$`);
    return content
        .split("\n")
        .map((l) => re.exec(l)?.[1])
        .filter((v): v is string => v !== undefined);
}

describe("rendered files of every role", function () {
    this.timeout(120000);

    for (const stack of EXAMPLE_STACKS) {
        it(`keep secrets in secret files only (all roles), carry the header line and leave no key empty (${stack} stack)`, () => {
            checkModel(exampleModel(stack));
        });
    }

    it("keep secrets in secret files only (all roles), carry the header line and leave no key empty (generated stacks)", () => {
        fc.assert(
            fc.property(specArbitrary, (spec) => checkModel(modelFor(spec))),
            { numRuns: 40 },
        );
    });

    it("are byte-identical when rendered twice from the same model (a rebuild renders the same configs)", () => {
        fc.assert(
            fc.property(specArbitrary, (spec) => {
                const model = modelFor(spec);
                assert.deepEqual(renderAll(model), renderAll(model));
            }),
            { numRuns: 20 },
        );
    });

    it("put the spec's port ranges and the port matrix into the relay, TURN, cache and database configs", () => {
        fc.assert(
            fc.property(specArbitrary, (spec) => {
                const model = modelFor(spec);
                const cache = hostsOf(model, "cache")[0];
                for (const relay of hostsOf(model, "media-relay")) {
                    const conf = fileAt(renderMediaRelay(model, relay), RTPENGINE_CONF_PATH).content;
                    assert.deepEqual(kv(conf, "port-min"), [String(spec.rtpPorts.min)]);
                    assert.deepEqual(kv(conf, "port-max"), [String(spec.rtpPorts.max)]);
                    assert.deepEqual(kv(conf, "max-sessions"), [String(maxCallsPerRelay(spec.rtpPorts))]);
                    assert.deepEqual(kv(conf, "listen-ng"), [`${relay.privateIp}:${PORTS.rtpengineNg}`]);
                    assert.deepEqual(kv(conf, "listen-cli"), [`127.0.0.1:${PORTS.rtpengineCli}`]);
                    assert.deepEqual(kv(conf, "interface"), [`${relay.privateIp}!${relay.publicIp}`]);
                    assert.deepEqual(kv(conf, "redis"), [`${cache.privateIp}:${PORTS.redis}/${relay.index + 1}`]);
                    assert.deepEqual(kv(conf, "log-level"), ["6"], "log level 7 logs SRTP keys");
                    assert.deepEqual(kv(conf, "table"), [spec.rtpengineForwarding === "kernel" ? "0" : "-1"]);
                }
                for (const turn of hostsOf(model, "turn")) {
                    const conf = fileAt(renderTurn(model, turn), TURN_CONF_PATH).content;
                    assert.deepEqual(kv(conf, "min-port"), [String(spec.turnRelayPorts.min)]);
                    assert.deepEqual(kv(conf, "max-port"), [String(spec.turnRelayPorts.max)]);
                    assert.deepEqual(kv(conf, "listening-port"), [String(PORTS.turn)]);
                    assert.deepEqual(kv(conf, "tls-listening-port"), [String(PORTS.turnTls)]);
                    assert.deepEqual(kv(conf, "external-ip"), [`${turn.publicIp}/${turn.privateIp}`]);
                    assert.deepEqual(kv(conf, "realm"), [spec.sipDomain]);
                    assert.deepEqual(kv(conf, "denied-peer-ip"), [...DENIED_PEER_RANGES]);
                }
                const redis = fileAt(renderCache(model, cache), REDIS_CONF_PATH).content;
                assert.deepEqual(kv(redis, "port", " "), [String(PORTS.redis)]);
                assert.deepEqual(kv(redis, "bind", " "), [`${cache.privateIp} 127.0.0.1 -::1`]);
                const dbs = hostsOf(model, "database");
                for (const db of dbs) {
                    const cnf = fileAt(renderDatabase(model, db), GALERA_CNF_PATH).content;
                    assert.deepEqual(kv(cnf, "wsrep_cluster_address"), [dbs.length === 1 ? "gcomm://" : `gcomm://${dbs.map((d) => d.privateIp).join(",")}`]);
                    assert.deepEqual(kv(cnf, "bind-address"), [db.privateIp]);
                    assert.deepEqual(kv(cnf, "innodb_flush_log_at_trx_commit"), ["1"]);
                    assert.ok(kv(cnf, "wsrep_provider_options")[0].includes(`gcache.size=${spec.galeraGcacheSize};`));
                }
            }),
            { numRuns: 40 },
        );
    });

    it("give the two VIP proxies the same VRRP router id and address list, each the other as unicast peer and proxy-1 the higher priority", () => {
        fc.assert(
            fc.property(
                specArbitrary.filter((s) => s.vipFailover),
                (spec) => {
                    const model = modelFor(spec);
                    const [p1, p2] = hostsOf(model, "sip-proxy");
                    const [c1, c2] = [p1, p2].map((p) => fileAt(renderKeepalived(model, p), KEEPALIVED_CONF_PATH).content);
                    const vrid = (c: string) => kv(c, "virtual_router_id", " ");
                    assert.deepEqual(vrid(c1), [String(virtualRouterId(model.stack))]);
                    assert.deepEqual(vrid(c1), vrid(c2));
                    const block = (c: string, name: string) => new RegExp(`${name} \\{\\n([^}]*)\\}`).exec(c)?.[1].trim().split(/\s*\n\s*/);
                    assert.deepEqual(block(c1, "virtual_ipaddress"), block(c2, "virtual_ipaddress"));
                    assert.deepEqual(block(c1, "unicast_peer"), [p2.privateIp]);
                    assert.deepEqual(block(c2, "unicast_peer"), [p1.privateIp]);
                    assert.ok(Number(kv(c1, "priority", " ")[0]) > Number(kv(c2, "priority", " ")[0]));
                },
            ),
            { numRuns: 20 },
        );
    });

    it("leave keepalived out of stacks without a VIP", () => {
        const model = exampleModel("dev");
        const proxy = renderHost(model, hostsOf(model, "sip-proxy")[0]);
        assert.ok(!proxy.files.some((f) => f.service === "keepalived"));
    });

    it("refuse a secret that would need quoting, naming it but not showing it", () => {
        const model = exampleModel("dev");
        const bad = { ...model, secrets: { ...model.secrets, redisPassword: "pa ss'word#1" } };
        assert.throws(
            () => renderCache(bad, hostsOf(bad, "cache")[0]),
            (e: Error) => e instanceof RenderError && /redisPassword/.test(e.message) && !e.message.includes("pa ss'word#1"),
        );
    });

    it("refuse to render a host of another role", () => {
        const model = exampleModel("dev");
        assert.throws(() => renderMediaRelay(model, hostsOf(model, "cache")[0]), /media-relay/);
        assert.throws(() => renderKeepalived(exampleModel("prod"), hostsOf(model, "turn")[0]), /sip-proxy/);
    });

    it("keep the Redis password out of rtpengine.conf (it travels in the unit's environment file)", () => {
        const model = exampleModel("prod");
        for (const relay of hostsOf(model, "media-relay")) {
            const files = renderMediaRelay(model, relay);
            assert.ok(!fileAt(files, RTPENGINE_CONF_PATH).content.includes(model.secrets.redisPassword));
            const env = fileAt(files, RTPENGINE_DEFAULTS_PATH);
            assert.ok(env.secret && env.content.includes(`RTPENGINE_REDIS_AUTH_PW='${model.secrets.redisPassword}'`));
        }
        assert.ok(secretValues(model).length > 4);
    });
});
