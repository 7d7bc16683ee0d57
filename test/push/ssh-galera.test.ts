// The Galera steps for real: three VM-like lab hosts with the prod stack's
// database files, driven over SSH in the plan's order (bootstrap one node,
// join the others one at a time, load the schema once).
import { strict as assert } from "assert";
import { exampleModel } from "../support/stacks";
import { planDeployment, DeploymentPlan } from "../../components/plan";
import { renderAll } from "../../components/render";
import type { GatewayModel } from "../../components/model";
import { Lab } from "../../lab/host";
import { ensureBase } from "../../lab/base";
import { runPlan } from "../../lab/runner";

const NODES = ["database-1", "database-2", "database-3"];

describe("Galera steps over real SSH on three lab database hosts", function () {
    this.timeout(300_000);
    let lab: Lab | undefined;
    let model: GatewayModel;
    let plan: DeploymentPlan;
    const status = (h: string) =>
        lab!.sh(h, "mariadb -N -B -e \"SHOW GLOBAL STATUS WHERE Variable_name IN ('wsrep_cluster_size','wsrep_cluster_status','wsrep_local_state_comment')\" | cut -f2 | paste -sd' '");

    before(async function () {
        this.timeout(20 * 60_000);
        const base = ensureBase();
        model = exampleModel("prod");
        const hosts = model.hosts.filter((h) => NODES.includes(h.name));
        plan = planDeployment(model, renderAll(model).filter((f) => NODES.includes(f.host)), { remoteUser: "root", hosts: NODES });
        lab = Lab.create({ subnets: [...new Set(hosts.map((h) => h.subnetCidr))], vpcCidr: model.spec.vpcCidr, base });
        // one after another: the machine has two cores (LAB-NOTES)
        for (const h of hosts) await lab.addHost({ name: h.name, privateIp: h.privateIp, subnetCidr: h.subnetCidr });
    });

    after(() => {
        if (!lab) return;
        lab.destroy();
        assert.deepEqual(lab.leftovers(), []);
    });

    it("forms one three-node cluster from bare hosts: bootstrap, two joins in turn, schema once", async () => {
        const r = await runPlan(plan, lab!);
        assert.equal(r.failed, undefined, r.failed && `${r.failed.id}:\n${r.failed.stdout}\n${r.failed.stderr}`);
        const order = r.runs.map((x) => x.id).filter((id) => /galera|schema/.test(id));
        assert.deepEqual(order, ["database-1:galera-bootstrap", "database-2:galera-join", "database-3:galera-join", "database-1:db-schema"]);
        assert.match(r.runs.find((x) => x.id === "database-1:galera-bootstrap")!.stdout, /brand-new cluster: bootstrapping this node/);
        for (const h of NODES) assert.deepEqual((await status(h)).split(" ").sort(), ["3", "Primary", "Synced"], h);
        // the schema reached every node through replication
        for (const h of NODES) assert.ok(Number(await lab!.sh(h, "mariadb -N -B -e 'SELECT COUNT(*) FROM information_schema.tables WHERE table_schema=\"opensips\"'")) > 0, h);
    });

    it("re-running every Galera step on the formed cluster bootstraps nothing and restarts no node", async () => {
        const ids = async () => Promise.all(NODES.map((h) => lab!.sh(h, "systemctl show -p InvocationID --value mariadb")));
        const before = await ids();
        const r = await runPlan(plan, lab!, { force: true });
        assert.equal(r.failed, undefined, r.failed && r.failed.stderr);
        assert.match(r.runs.find((x) => x.id === "database-1:galera-bootstrap")!.stdout, /already a member of a Primary component/);
        assert.deepEqual(await ids(), before);
    });

    it("never bootstraps a second cluster over existing data: with every node stopped the bootstrap step refuses", async () => {
        for (const h of [...NODES].reverse()) await lab!.sh(h, "systemctl stop mariadb");
        const only = { ...plan, steps: plan.steps.filter((s) => s.id === "database-1:galera-bootstrap").map((s) => ({ ...s, dependsOn: [] })) };
        const r = await runPlan(only, lab!, { force: true });
        assert.ok(r.failed);
        assert.match(r.failed!.stderr, /refusing to bootstrap: this node holds cluster [0-9a-f-]{36} .* no peer is reachable/);
        assert.equal(await lab!.sh("database-1", "systemctl is-active mariadb || true"), "inactive");
    });
});
