// The rendered TURN files under Debian's real coturn 4.6.1, in a namespace
// holding the TURN host's planned private address; a minimal STUN/TURN client
// (test/support/stun.ts) speaks to it from inside the namespace.
import { strict as assert } from "assert";
import * as path from "path";
import fc from "fast-check";
import type { GatewayModel, HostModel } from "../../components/model";
import { hostsOf } from "../../components/model";
import { PORTS } from "../../components/ports";
import { renderTurn, TURN_CERT_PATH, TURN_CONF_PATH, TURN_KEY_PATH } from "../../components/render/coturn";
import { TestNetns, requireTools } from "../support/netns";
import { startTurn } from "../support/daemons";
import { restCredentials, turnProbeInNetns } from "../support/stun";
import { waitFor } from "../support/wait";
import { EXAMPLE_STACKS, exampleModel, modelFor, secretValues, specArbitrary, writeTree } from "../support/stacks";

const SUCCESS = { binding: 0x0101, allocate: 0x0103, refresh: 0x0104, createPermission: 0x0108 };
const ERROR = { allocate: 0x0113, createPermission: 0x0118 };
/** a documentation address (TEST-NET-2) stands for a browser's public address: permitted, and no packet is sent to it */
const PUBLIC_PEER = "198.51.100.77";
/** the test client's own address inside the namespace (TEST-NET-1), distinct from the server's */
const CLIENT_IP = "192.0.2.200";

async function checkTurn(model: GatewayModel, turn: HostModel): Promise<void> {
    const secrets = secretValues(model);
    const ns = await TestNetns.create("turn", { addresses: [turn.privateIp, CLIENT_IP] });
    try {
        const at = writeTree(path.join(ns.workDir, "root"), renderTurn(model, turn));
        const daemon = await startTurn(ns, at(TURN_CONF_PATH), at(TURN_CERT_PATH), at(TURN_KEY_PATH), turn.privateIp, secrets);
        // coturn starts despite unknown options and only logs them: what the deploy check fails on
        const log = await waitFor(() => (daemon.log(secrets).includes("Total General servers") ? daemon.log(secrets) : undefined), { what: "coturn's startup summary", timeoutMs: 10000 });
        assert.doesNotMatch(log, /Bad configuration format|CONFIG ERROR|CONFIGURATION ALERT/);

        // only the STUN/TURN and TURN-over-TLS ports: no CLI (5766), no RFC 5780 alternative ports
        const tcp = await ns.listeningSockets("tcp");
        assert.deepEqual([...new Set(tcp)].sort(), [`${turn.privateIp}:${PORTS.turn}`, `${turn.privateIp}:${PORTS.turnTls}`].sort());

        const creds = restCredentials(model.secrets.turnSharedSecret, "alice");
        const privatePeers = [hostsOf(model, "media-relay")[0].privateIp, "169.254.169.254", "172.16.5.5", "192.168.1.1", "100.64.0.1"];
        const r = await turnProbeInNetns(ns, {
            server: turn.privateIp,
            port: PORTS.turn,
            bind: CLIENT_IP,
            username: creds.username,
            password: creds.password,
            wrongPassword: restCredentials("not-the-secret", "alice").password,
            peers: [PUBLIC_PEER, ...privatePeers],
        });

        assert.equal(r.binding.type, SUCCESS.binding, "STUN binding was not answered with success");
        assert.equal(r.binding.mapped?.ip, CLIENT_IP);
        assert.ok(r.binding.fingerprint, "responses carry no valid FINGERPRINT although `fingerprint` is set");
        assert.equal(r.challenge.code, 401, "an unauthenticated Allocate was not challenged");
        assert.equal(r.challenge.realm, model.spec.sipDomain);
        assert.ok(r.challenge.hasNonce);
        assert.equal(r.wrongPassword.code, 401, "an Allocate with a password not derived from the secret was accepted");
        assert.equal(r.allocate.type, SUCCESS.allocate, `authenticated Allocate failed with ${r.allocate.code}`);
        assert.ok(r.allocate.integrity, "the Allocate success carries no valid MESSAGE-INTEGRITY");
        // the relayed address is the public one (external-ip mapping), from the stack's relay range
        assert.equal(r.allocate.relayed?.ip, turn.publicIp);
        const range = model.spec.turnRelayPorts;
        assert.ok(r.allocate.relayed!.port >= range.min && r.allocate.relayed!.port <= range.max, `relay port ${r.allocate.relayed!.port} outside ${range.min}-${range.max}`);

        const byPeer = new Map(r.permissions.map((p) => [p.peer, p]));
        assert.equal(byPeer.get(PUBLIC_PEER)?.type, SUCCESS.createPermission, "a permission for a public peer was refused");
        for (const peer of privatePeers) {
            assert.equal(byPeer.get(peer)?.type, ERROR.createPermission, `relaying to ${peer} was permitted`);
            assert.equal(byPeer.get(peer)?.code, 403);
        }
        assert.equal(r.release?.type, SUCCESS.refresh);

        // TLS listener serves the rendered certificate with TLS 1.2+
        const tls = await ns.run("openssl", ["s_client", "-connect", `${turn.privateIp}:${PORTS.turnTls}`, "-tls1_2"], { input: "", timeoutMs: 10000 });
        assert.match(tls.stdout, new RegExp(`subject=CN ?= ?${model.spec.sipDomain.replace(/\./g, "\\.")}`));
        assert.match(tls.stdout, /Protocol\s*: TLSv1\.2/);
    } finally {
        await ns.destroy();
    }
}

describe("TURN config under the real coturn 4.6.1", function () {
    this.timeout(180000);
    before(function () {
        requireTools(this, "turnserver", "openssl");
    });

    for (const stack of EXAMPLE_STACKS) {
        it(`answers STUN, grants a REST-credential allocation on the public address and refuses private peers on the ${stack} stack's TURN servers`, async () => {
            const model = exampleModel(stack);
            for (const turn of hostsOf(model, "turn")) await checkTurn(model, turn);
        });
    }

    it("grants allocations from the configured relay range for generated stacks", async () => {
        await fc.assert(
            fc.asyncProperty(
                specArbitrary.filter((s) => s.turnCount > 0),
                async (spec) => {
                    const model = modelFor(spec);
                    const turns = hostsOf(model, "turn");
                    await checkTurn(model, turns[turns.length - 1]);
                },
            ),
            { numRuns: 3 },
        );
    });
});
