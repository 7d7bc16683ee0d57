// The deployment plan as data: graph, contents, determinism, secrets.
import { strict as assert } from "assert";
import fc from "fast-check";
import { exampleModel, secretValues } from "../support/stacks";
import { renderAll } from "../../components/render";
import { changedSteps, decodeBundle, encodeBundle, packagesFor, planDeployment, planSteps, validatorFor } from "../../components/plan";
import type { RenderedFile } from "../../components/render/types";

const file = (path: string, service: string, content: string): RenderedFile => ({ path, service, content, mode: "0644", owner: "root", group: "root", secret: false });

describe("deployment plan (pure)", () => {
    const dev = exampleModel("dev");
    const devFiles = renderAll(dev);

    it("gives every dev host wait-ready, install and apply, and the database the Galera steps, in dependency order", () => {
        const steps = planSteps(dev.spec);
        assert.equal(steps.length, 5 * 3 + 2);
        const seen = new Set<string>();
        for (const s of steps) {
            for (const d of s.dependsOn) assert.ok(seen.has(d), `${s.id} is listed before its dependency ${d}`);
            seen.add(s.id);
        }
        assert.deepEqual(steps.filter((s) => s.host === "database-1").map((s) => s.kind), ["wait-ready", "install", "apply", "galera-bootstrap", "db-schema"]);
    });

    it("is deterministic: the same model and files give byte-identical steps", () => {
        assert.deepEqual(planDeployment(dev, renderAll(dev)), planDeployment(dev, devFiles));
        assert.deepEqual(changedSteps(planDeployment(dev, devFiles), planDeployment(dev, devFiles)), []);
    });

    it("never puts a secret into a command text, and marks every step whose stdin holds one", () => {
        const plan = planDeployment(dev, devFiles);
        const secrets = secretValues(dev);
        for (const s of plan.steps) {
            for (const v of secrets) assert.ok(!s.command.includes(v), `${s.id} command`);
            const holds = secrets.some((v) => s.stdin.includes(Buffer.from(v).toString("base64")) || [...decodeBundle(s.stdin).values()].some((c) => c.includes(v)));
            if (holds) assert.ok(s.secret, `${s.id} carries a secret but is not marked secret`);
        }
        assert.ok(plan.steps.find((s) => s.id === "cache-1:apply")!.secret);
        assert.ok(!plan.steps.find((s) => s.id === "cache-1:install")!.secret);
    });

    it("sends SQL only to the first database node's db-schema step, never through apply", () => {
        const plan = planDeployment(dev, devFiles);
        assert.ok(plan.steps.find((s) => s.id === "database-1:apply")!.files.every((f) => !f.path.endsWith(".sql")));
        assert.deepEqual(plan.steps.find((s) => s.id === "database-1:db-schema")!.files.map((f) => f.path), devFiles.find((h) => h.host === "database-1")!.files.filter((f) => f.path.endsWith(".sql")).map((f) => f.path).sort());
    });

    it("round-trips any set of files through the stdin bundle", () => {
        fc.assert(
            fc.property(fc.array(fc.tuple(fc.stringMatching(/^[a-z0-9]{1,8}(\/[a-z0-9_-]{1,8}){0,2}(\.[a-z]{1,3})?$/), fc.fullUnicodeString()), { maxLength: 6 }), (entries) => {
                const unique = [...new Map(entries).entries()];
                assert.deepEqual([...decodeBundle(encodeBundle(unique)).entries()], unique);
            }),
        );
        assert.throws(() => encodeBundle([["../etc/passwd", "x"]]), /not a safe relative path/);
    });

    it("picks the daemon's own checker for each kind of file", () => {
        assert.equal(validatorFor(file("/etc/opensips/opensips.cfg", "opensips", "")), "opensips-cfg");
        assert.equal(validatorFor(file("/etc/keepalived/keepalived.conf", "keepalived", "")), "keepalived-conf");
        assert.equal(validatorFor(file("/etc/redis/redis.conf", "redis-server", "")), "redis-conf");
        assert.equal(validatorFor(file("/etc/rtpengine/rtpengine.conf", "rtpengine-daemon", "")), "rtpengine-conf");
        assert.equal(validatorFor(file("/etc/turnserver.conf", "coturn", "")), "coturn-conf");
        assert.equal(validatorFor(file("/etc/mysql/mariadb.conf.d/60-galera.cnf", "mariadb", "")), "mariadb-cnf");
        assert.equal(validatorFor(file("/usr/local/sbin/ifbus-vip-notify", "keepalived", "#!/bin/bash\n")), "shell");
        assert.equal(validatorFor(file("/etc/coturn/turn.pem", "coturn", "-----BEGIN CERTIFICATE-----\n")), "x509");
        assert.equal(validatorFor(file("/etc/coturn/turn.key", "coturn", "-----BEGIN EC PRIVATE KEY-----\n")), "private-key");
        assert.equal(validatorFor(file("/etc/default/opensips", "opensips", "S_MEMORY=64\n")), "none");
    });

    it("installs the OpenSIPS module packages the rendered config loads, pinned when the stack pins OpenSIPS", () => {
        const proxy = dev.hosts.find((h) => h.role === "sip-proxy")!;
        const cfg = file("/etc/opensips/opensips.cfg", "opensips", 'loadmodule "proto_wss.so"\nloadmodule "db_mysql.so"\nloadmodule "tm.so"\n');
        assert.deepEqual(packagesFor({ ...dev.spec, packageVersions: { opensips: "3.6.8-1" } }, proxy, [cfg]), [
            "ca-certificates",
            "curl",
            "opensips-mysql-module=3.6.8-1",
            "opensips-wss-module=3.6.8-1",
            "opensips=3.6.8-1",
            "socat",
        ]);
        const plan = planDeployment(dev, devFiles);
        assert.match(plan.steps.find((s) => s.id === "sip-proxy-1:install")!.stdin.split("\n").slice(1).join("\n"), /[0-9a-f]{64} repos/);
        assert.equal(decodeBundle(plan.steps.find((s) => s.id === "sip-proxy-1:install")!.stdin).get("repos"), "opensips\topensips-org\thttps://apt.opensips.org/opensips-org.gpg\thttps://apt.opensips.org\t3.6-releases\n");
    });
});
