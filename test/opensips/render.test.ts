// What the rendered OpenSIPS files say, without the binary: the fields that
// decide whether browsers, trunks, the cluster and the media work.
import { strict as assert } from "assert";
import * as crypto from "crypto";
import fc from "fast-check";
import type { GatewayModel } from "../../components/model";
import { hostsOf, sipPublicIp } from "../../components/model";
import { PORTS } from "../../components/ports";
import { RenderError } from "../../components/render/engine";
import {
    OPENSIPS_CFG,
    OPENSIPS_DEFAULTS,
    OPENSIPS_TLS_DIR,
    OPENSIPS_UNIT_DROPIN,
    RTPENGINE_FLAGS_TOWARD_BROWSER,
    RTPENGINE_FLAGS_TOWARD_SIP,
    renderSipProxy,
    sipListenIp,
} from "../../components/render/opensips";
import { MANAGED_ID_BASE, OPENSIPS_SCHEMA_SQL, OPENSIPS_SEED_SQL, digestHa1, renderDatabaseSchema, sqlString } from "../../components/render/opensips-schema";
import { EXAMPLE_STACKS, exampleModel, fileAt, modelFor, specArbitrary } from "../support/stacks";

const cfgOf = (model: GatewayModel, proxyIndex = 0) => fileAt(renderSipProxy(model, hostsOf(model, "sip-proxy")[proxyIndex]), OPENSIPS_CFG).content;
const directives = (cfg: string, re: RegExp) => cfg.split("\n").filter((l) => re.test(l));
const modparams = (cfg: string, mod: string, param: string) =>
    directives(cfg, new RegExp(`^modparam\\("${mod}", "${param}", `)).map((l) => l.replace(/^modparam\("[^"]+", "[^"]+", /, "").replace(/\)$/, ""));

/** Checks every proxy of any stack must pass. */
function checkProxies(model: GatewayModel): void {
    const proxies = hostsOf(model, "sip-proxy");
    const pub = sipPublicIp(model);
    const clustered = proxies.length > 1;
    const seeds: string[] = [];
    proxies.forEach((p, i) => {
        const cfg = cfgOf(model, i);
        const ip = sipListenIp(p);
        const expected = [
            `socket=udp:${ip}:${PORTS.sip} as ${pub}:${PORTS.sip} tag public`,
            `socket=tcp:${ip}:${PORTS.sip} as ${pub}:${PORTS.sip} tag public`,
            `socket=tls:${ip}:${PORTS.sipTls} as ${pub}:${PORTS.sipTls} tag public`,
            `socket=wss:${ip}:${PORTS.wss} as ${pub}:${PORTS.wss} tag public`,
            ...(model.spec.devAllowPlainWs ? [`socket=ws:${ip}:${PORTS.ws} as ${pub}:${PORTS.ws} tag public`] : []),
            ...(clustered ? [`socket=bin:${p.privateIp}:${PORTS.bin}`] : []),
        ];
        assert.deepEqual(directives(cfg, /^socket=/), expected, `${p.name} sockets`);

        // one Galera node at a time, in host order, every proxy the same order
        assert.deepEqual(modparams(cfg, "db_virtual", "db_urls"), [
            '"define galera FAILOVER"',
            ...hostsOf(model, "database").map((d) => `"mysql://opensips:${model.secrets.databasePassword}@${d.privateIp}:${PORTS.mysql}/opensips"`),
        ]);
        assert.deepEqual(modparams(cfg, "rtpengine", "rtpengine_sock"), [`"${hostsOf(model, "media-relay").map((r) => `udp:${r.privateIp}:${PORTS.rtpengineNg}=1`).join(" ")}"`]);
        assert.deepEqual(modparams(cfg, "httpd", "ip"), [`"${p.privateIp}"`]);

        if (clustered) {
            assert.deepEqual(modparams(cfg, "clusterer", "my_node_id"), [String(i + 1)]);
            const info = modparams(cfg, "clusterer", "my_node_info")[0];
            assert.match(info, new RegExp(`url=bin:${p.privateIp.replace(/\./g, "\\.")}:${PORTS.bin}`));
            if (info.includes("flags=seed")) seeds.push(p.name);
            const others = proxies.filter((o) => o !== p);
            assert.deepEqual(
                modparams(cfg, "clusterer", "neighbor_node_info"),
                others.map((o) => `"cluster_id=1,node_id=${o.index + 1},url=bin:${o.privateIp}:${PORTS.bin}"`),
            );
            assert.deepEqual(modparams(cfg, "clusterer", "sharing_tag"), [`"vip/1=${i === 0 ? "active" : "backup"}"`]);
            assert.deepEqual(modparams(cfg, "usrloc", "working_mode_preset"), ['"full-sharing-cluster"']);
            assert.deepEqual(modparams(cfg, "dialog", "dialog_replication_cluster"), ["1"]);
            assert.match(cfg, /set_dlg_sharing_tag\("vip"\);/);
            assert.match(cfg, /save\("location", , , "vip"\)/);
        } else {
            assert.deepEqual(directives(cfg, /clusterer|proto_bin|dialog_replication_cluster|set_dlg_sharing_tag/), []);
            assert.deepEqual(modparams(cfg, "usrloc", "working_mode_preset"), ['"single-instance-no-db"']);
        }
    });
    if (clustered) assert.deepEqual(seeds, [proxies[0].name], "exactly one seed node (usrloc and dialog sync need one)");
}

describe("rendered OpenSIPS proxy files", () => {
    for (const stack of EXAMPLE_STACKS) {
        it(`binds every ${stack} proxy SIP socket to its VIP secondary address when there is a VIP (BIN and metrics to the private one), advertises the SIP public address and clusters only two proxies`, () => {
            checkProxies(exampleModel(stack));
        });
    }

    it("holds for generated stacks (one or two proxies, any database and relay count, plain WS on or off)", () => {
        fc.assert(
            fc.property(specArbitrary, fc.boolean(), (spec, plainWs) => checkProxies(modelFor({ ...spec, devAllowPlainWs: plainWs }))),
            { numRuns: 40 },
        );
    });

    it("chooses rtpengine flags by who receives the SDP, with the verified lists and never DTLS=passive", () => {
        for (const stack of EXAMPLE_STACKS) {
            const cfg = cfgOf(exampleModel(stack));
            assert.equal(RTPENGINE_FLAGS_TOWARD_BROWSER, "UDP/TLS/RTP/SAVPF ICE=force rtcp-mux-offer rtcp-mux-require generate-mid SDES-off");
            assert.equal(RTPENGINE_FLAGS_TOWARD_SIP, "RTP/AVP ICE=remove DTLS=off rtcp-mux-demux replace-origin replace-session-connection");
            assert.doesNotMatch(cfg, /DTLS=passive/);
            // the caller by its transport in route[media]...
            const media = /route\[media\] \{([^}]*)\}/.exec(cfg)?.[1] ?? "";
            assert.match(media, /\$socket_in\(proto\) == "wss"\)\s*\$rtp_relay\(peer\) = "UDP\/TLS[^"]*";\s*else\s*\$rtp_relay\(peer\) = "RTP\/AVP[^"]*";/);
            // ...each branch's callee by the WEBRTC flag set at REGISTER, then engaged per branch (failover branches too)
            const branch = /branch_route\[per_branch\] \{([^}]*)\}/.exec(cfg)?.[1] ?? "";
            assert.match(branch, /if \(isbflagset\("WEBRTC"\)\)\s*\$rtp_relay\(peer\) = "UDP\/TLS[^"]*";\s*else\s*\$rtp_relay\(peer\) = "RTP\/AVP[^"]*";\s*(#[^\n]*\s*)*rtp_relay_engage\("rtpengine"\);\s*$/);
            assert.equal(cfg.match(/^\s*rtp_relay_engage\(/gm)?.length, 1, "engaged in one place: the branch route");
            assert.match(cfg, /ds_next_dst\(\)\) \{\s*t_on_branch\("per_branch"\);/);
            assert.deepEqual(modparams(cfg, "rtpengine", "rtpengine_tout"), ["1"], "seconds, not milliseconds");
            assert.deepEqual(modparams(cfg, "rtpengine", "rtpengine_retr"), ["2"]);
        }
    });

    it("lets browsers in without a client certificate on WSS and verifies carriers' certificates on outgoing TLS", () => {
        const model = exampleModel("prod");
        const cfg = cfgOf(model);
        const ip = sipListenIp(hostsOf(model, "sip-proxy")[0]);
        const tls = (p: string) => modparams(cfg, "tls_mgm", p);
        assert.deepEqual(tls("server_domain"), ['"wss"', '"sip_tls"']);
        assert.deepEqual(tls("client_domain"), ['"trunks"']);
        assert.ok(tls("match_ip_address").includes(`"[wss]${ip}:${PORTS.wss}"`), "matched on the LOCAL socket, not the advertised address");
        for (const v of ['"[wss]0"']) {
            assert.ok(tls("verify_cert").includes(v));
            assert.ok(tls("require_cert").includes(v));
        }
        assert.ok(tls("verify_cert").includes('"[trunks]1"'));
        assert.ok(tls("tls_method").every((m) => /TLSv1_2-"$/.test(m)), "TLS 1.2 minimum as a range");
        // tls_openssl before tls_mgm before the TLS transports
        const order = ["tls_openssl.so", "tls_mgm.so", "proto_tls.so", "proto_wss.so"].map((m) => cfg.indexOf(`loadmodule "${m}"`));
        assert.deepEqual([...order].sort((a, b) => a - b), order);
        assert.ok(order.every((i) => i >= 0));
    });

    it("marks the config and the private key as secrets readable by the opensips group only", () => {
        const model = exampleModel("dev");
        const files = renderSipProxy(model, hostsOf(model, "sip-proxy")[0]);
        const cfg = fileAt(files, OPENSIPS_CFG);
        assert.ok(cfg.content.includes(model.secrets.databasePassword));
        for (const f of [cfg, fileAt(files, `${OPENSIPS_TLS_DIR}/server.key`)]) {
            assert.equal(f.secret, true, f.path);
            assert.deepEqual([f.mode, f.owner, f.group], ["0640", "root", "opensips"], f.path);
        }
        for (const f of files.filter((x) => !x.secret)) assert.ok(!f.content.includes(model.secrets.databasePassword), `${f.path} holds the database password`);
        assert.equal(fileAt(files, `${OPENSIPS_TLS_DIR}/server.key`).content, model.secrets.tls.privateKeyPem.endsWith("\n") ? model.secrets.tls.privateKeyPem : `${model.secrets.tls.privateKeyPem}\n`);
    });

    it("sizes shared and private memory from the stack and lets the opensips user bind port 443", () => {
        for (const stack of EXAMPLE_STACKS) {
            const model = exampleModel(stack);
            const files = renderSipProxy(model, hostsOf(model, "sip-proxy")[0]);
            const env = fileAt(files, OPENSIPS_DEFAULTS).content;
            assert.match(env, new RegExp(`^S_MEMORY=${model.spec.opensipsSharedMemoryMb}$`, "m"));
            assert.match(env, new RegExp(`^P_MEMORY=${model.spec.opensipsPrivateMemoryMb}$`, "m"));
            assert.match(fileAt(files, OPENSIPS_UNIT_DROPIN).content, /^AmbientCapabilities=CAP_NET_BIND_SERVICE$/m);
            assert.equal(files.some((f) => f.path.startsWith("/etc/keepalived/")), !!model.vip, "keepalived files exactly when the stack has a VIP");
        }
    });

    it("renders byte-identical files for the same model (a rebuild reproduces the configs)", () => {
        const model = exampleModel("prod");
        for (const p of hostsOf(model, "sip-proxy")) assert.deepEqual(renderSipProxy(model, p), renderSipProxy(model, p));
    });

    it("refuses a database password that would break the mysql:// URL, naming the secret", () => {
        const model = exampleModel("dev");
        const bad = { ...model, secrets: { ...model.secrets, databasePassword: "pa@ss/word" } };
        assert.throws(() => renderSipProxy(bad, hostsOf(bad, "sip-proxy")[0]), (e: unknown) => e instanceof RenderError && /databasePassword/.test(e.message));
    });
});

describe("rendered OpenSIPS database schema and seed", () => {
    it("stores RFC 8760 HA1 hashes of every subscriber for the SIP domain, never the password", () => {
        const model = exampleModel("prod");
        const seed = fileAt(renderDatabaseSchema(model, hostsOf(model, "database")[0]), OPENSIPS_SEED_SQL);
        assert.equal(seed.secret, true);
        assert.equal(seed.mode, "0600");
        for (const user of model.spec.subscribers) {
            const pw = model.secrets.subscriberPasswords[user];
            const md5 = crypto.createHash("md5").update(`${user}:${model.spec.sipDomain}:${pw}`).digest("hex");
            const h = digestHa1(user, model.spec.sipDomain, pw);
            assert.equal(h.md5, md5);
            assert.ok(seed.content.includes(`('${user}', '${model.spec.sipDomain}', '${md5}', '${h.sha256}', '${h.sha512t256}')`), `no row for ${user}`);
            assert.ok(!seed.content.includes(pw), `the seed holds ${user}'s password`);
        }
    });

    it("grants the database account to each proxy's private address and seeds one dispatcher row per trunk and one address row per trunk CIDR", () => {
        const model = exampleModel("prod");
        const seed = fileAt(renderDatabaseSchema(model, hostsOf(model, "database")[0]), OPENSIPS_SEED_SQL).content;
        for (const p of hostsOf(model, "sip-proxy")) assert.match(seed, new RegExp(`GRANT SELECT, INSERT, UPDATE, DELETE ON opensips\\.\\* TO 'opensips'@'${p.privateIp.replace(/\./g, "\\.")}';`));
        model.spec.sipTrunks.forEach((t, i) => assert.ok(seed.includes(`VALUES (${MANAGED_ID_BASE + i + 1}, 1, '${t.uri}', ${t.weight}, 'sipTrunks[${i}]')`), t.uri));
        assert.ok(seed.includes(`VALUES (${MANAGED_ID_BASE + 1}, 1, '198.51.100.32', 28, 'sipTrunks[0].cidrs[0]')`));
        // trunks removed from the config are removed from the table, operator rows are not touched
        assert.match(seed, new RegExp(`DELETE FROM dispatcher WHERE id BETWEEN ${MANAGED_ID_BASE + model.spec.sipTrunks.length + 1} AND `));
    });

    it("creates the tables idempotently with the table versions OpenSIPS 3.6 checks", () => {
        const model = exampleModel("dev");
        const schema = fileAt(renderDatabaseSchema(model, hostsOf(model, "database")[0]), OPENSIPS_SCHEMA_SQL);
        assert.equal(schema.secret, false);
        for (const t of ["version", "subscriber", "dispatcher", "address"]) assert.match(schema.content, new RegExp(`CREATE TABLE IF NOT EXISTS ${t} \\(`));
        assert.doesNotMatch(schema.content, /CREATE TABLE (?!IF NOT EXISTS)/);
        assert.match(schema.content, /\('subscriber', 8\),\s*\('dispatcher', 9\),\s*\('address', 5\)/);
    });

    it("quotes SQL strings so a quote or backslash cannot end the literal", () => {
        assert.equal(sqlString("o'brien\\x"), "'o\\'brien\\\\x'");
        fc.assert(
            fc.property(fc.string(), (s) => {
                const lit = sqlString(s);
                // inside the literal every quote is escaped
                assert.ok(!/(^|[^\\])(\\\\)*'/.test(lit.slice(1, -1)));
            }),
        );
    });
});
