// The rendered keepalived notify and health scripts, run by /bin/sh with
// stand-in aws, curl (metadata service) and opensips-cli commands: no cloud
// exists here, so the test asserts the exact calls the scripts make.
import { strict as assert } from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { hostsOf } from "../../components/model";
import { ASSOCIATE_ATTEMPTS, OPENSIPS_HEALTH_SCRIPT, VIP_NOTIFY_SCRIPT, renderKeepalived } from "../../components/render/keepalived";
import { OPENSIPS_SHARING_TAG_REF } from "../../components/render/opensips";
import { run } from "../support/netns";
import { FAKE_ENI, FAKE_MAC, FAKE_TOKEN, Fakes, makeFakes } from "../support/fakes";
import { exampleModel } from "../support/stacks";

describe("keepalived notify and health scripts (with stand-in aws, IMDS and opensips-cli)", function () {
    this.timeout(30000);
    const model = exampleModel("prod");
    const proxies = hostsOf(model, "sip-proxy");
    let dir: string;
    let fakes: Fakes;

    beforeEach(() => {
        dir = fs.mkdtempSync(path.join(os.tmpdir(), "ifbus-ka-scripts-"));
        fakes = makeFakes(path.join(dir, "fakes"));
    });
    afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

    function script(proxyIndex: number, p: string): string {
        const f = renderKeepalived(model, proxies[proxyIndex]).find((x) => x.path === p);
        assert.ok(f, `no ${p} rendered`);
        const dest = path.join(dir, path.basename(p));
        fs.writeFileSync(dest, f.content, { mode: 0o755 });
        return dest;
    }
    const notify = (proxyIndex: number, state: string) => run("/bin/sh", [script(proxyIndex, VIP_NOTIFY_SCRIPT), state], { env: fakes.env });

    const expectedAssociate = (vipPrivateIp: string) => [
        "ec2",
        "associate-address",
        "--region",
        model.region,
        "--allocation-id",
        model.vip!.allocationId,
        "--network-interface-id",
        FAKE_ENI,
        "--private-ip-address",
        vipPrivateIp,
        "--allow-reassociation",
        "--cli-connect-timeout",
        "5",
        "--cli-read-timeout",
        "10",
        "--output",
        "text",
    ];

    it("on MASTER activates the OpenSIPS sharing tag, finds the ENI with an IMDSv2 token and associates the VIP with this proxy's VIP address", async () => {
        for (const [i, proxy] of proxies.entries()) {
            fakes = makeFakes(path.join(dir, `fakes-${i}`));
            const r = await notify(i, "MASTER");
            assert.equal(r.code, 0, r.stderr);
            assert.deepEqual(fakes.calls("opensips-cli"), [["-x", "mi", "clusterer_shtag_set_active", OPENSIPS_SHARING_TAG_REF]]);
            const curl = fakes.calls("curl");
            assert.equal(curl.length, 3);
            assert.ok(curl[0].includes("PUT") && curl[0].includes("http://169.254.169.254/latest/api/token"), `first IMDS call is not the token PUT: ${curl[0]}`);
            assert.ok(curl[1].includes(`X-aws-ec2-metadata-token: ${FAKE_TOKEN}`) && curl[1].includes("http://169.254.169.254/latest/meta-data/mac"));
            assert.ok(curl[2].includes(`http://169.254.169.254/latest/meta-data/network/interfaces/macs/${FAKE_MAC}/interface-id`));
            assert.deepEqual(fakes.calls("aws"), [expectedAssociate(proxy.vipPrivateIp!)]);
        }
    });

    it("retries a failed association and stops once it succeeds", async () => {
        fakes.failAws(2);
        const r = await notify(0, "MASTER");
        assert.equal(r.code, 0, r.stderr);
        assert.equal(fakes.calls("aws").length, 3);
    });

    it(`gives up with a non-zero exit after ${ASSOCIATE_ATTEMPTS} failed associations`, async () => {
        fakes.failAws(100);
        const r = await notify(0, "MASTER");
        assert.notEqual(r.code, 0);
        assert.equal(fakes.calls("aws").length, ASSOCIATE_ATTEMPTS);
        assert.match(r.stderr, /giving up/);
    });

    it("never calls the EC2 API without an ENI when the metadata service fails", async () => {
        fakes.failImds();
        const r = await notify(0, "MASTER");
        assert.notEqual(r.code, 0);
        assert.deepEqual(fakes.calls("aws"), []);
        assert.equal(fakes.calls("curl").length, ASSOCIATE_ATTEMPTS);
    });

    for (const state of ["BACKUP", "FAULT", "STOP"]) {
        it(`does nothing on ${state}: the new master moves the address and the tag`, async () => {
            const r = await notify(0, state);
            assert.equal(r.code, 0, r.stderr);
            assert.deepEqual([fakes.calls("aws"), fakes.calls("curl"), fakes.calls("opensips-cli")], [[], [], []]);
        });
    }

    it("refuses an unknown state", async () => {
        const r = await notify(0, "PROMOTE");
        assert.equal(r.code, 2);
        assert.deepEqual(fakes.calls("aws"), []);
    });

    it("health check passes while OpenSIPS answers MI uptime and fails when it does not", async () => {
        const health = script(0, OPENSIPS_HEALTH_SCRIPT);
        assert.equal((await run("/bin/sh", [health], { env: fakes.env })).code, 0);
        fakes.setOpensipsHealthy(false);
        assert.notEqual((await run("/bin/sh", [health], { env: fakes.env })).code, 0);
        assert.deepEqual(fakes.calls("opensips-cli"), [
            ["-x", "mi", "uptime"],
            ["-x", "mi", "uptime"],
        ]);
    });
});
