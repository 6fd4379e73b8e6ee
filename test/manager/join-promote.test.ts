// A promoted worker becomes a manager at the join endpoint (`POST /v1/swarm/promote`): it shows
// its worker certificate from this swarm's CA and gets a manager's certificate, only once the
// store says it is a manager (`node promote`). On the embedded store the daemon's move to etcd
// runs first (a 503: ask again); on managed etcd a member is added for it and named in the answer;
// a machine without etcd is refused before any member is added.

import { test } from "node:test";
import assert from "node:assert/strict";
import { JoinError, type JoinManagers } from "../../src/manager/join.js";
import { certInfo, newKeyAndCsr, signedBy } from "../../src/manager/ca.js";
import { JoinRefusedError, requestPromote } from "../../src/daemon/worker-daemon.js";
import { defer } from "../helpers/defer.js";
import { startJoinServer, testToken } from "../helpers/pki.js";

async function setup(t: Parameters<typeof defer>[0], managers: JoinManagers) {
  const { meta, ca, manager, server, addr } = await startJoinServer(t, {
    managers,
    setup: (m) => (m.onPromote = () => {}),
  });
  const key = await newKeyAndCsr();
  const joined = await server.join({
    token: await testToken(meta.workerSecret),
    hostname: "w1",
    addr: "10.0.0.7",
    csr: key.csrPem,
  });
  const tls = { caPem: ca.certPem, certPem: joined.cert, keyPem: key.keyPem };
  return { manager, addr, ca, joined, tls };
}

const refused = (status: number, re: RegExp) => (e: unknown) =>
  e instanceof JoinRefusedError && e.status === status && re.test(e.message);

test("managed etcd: a promoted worker gets a manager's certificate and its member's cluster", async (t) => {
  const added: string[] = [];
  let leading = true;
  const s = await setup(t, {
    store: () => ["https://10.0.0.1:4379"],
    // Any manager takes a promotion (it writes nothing to the store): this one does not lead.
    notLeader: () => (leading ? null : "this manager is not the leader"),
    addMember: async (id, addr) => {
      added.push(`${id}@${addr}`);
      return {
        initialCluster: `m0=https://10.0.0.1:4380,${id}=https://${addr}:4380`,
        memberId: "1234",
        endpoints: ["https://10.0.0.1:4379"],
      };
    },
  });
  leading = false;
  const csr = (await newKeyAndCsr()).csrPem;
  // Still a worker: refused, nothing added.
  await assert.rejects(
    requestPromote(s.addr, { csr, etcd: true }, s.tls),
    refused(409, /is a worker: promote it first/),
  );
  await s.manager.updateNode(s.joined.nodeId, { role: "manager" });
  // No etcd on the promoted machine: refused before a member is added.
  await assert.rejects(
    requestPromote(s.addr, { csr, etcd: false }, s.tls),
    refused(400, /etcd is not installed on the promoted machine/),
  );
  assert.deepEqual(added, []);
  // No certificate at all.
  await assert.rejects(
    requestPromote(s.addr, { csr }, { caPem: s.ca.certPem, certPem: "", keyPem: "" }),
    refused(403, /needs the node's certificate/),
  );
  const a = await requestPromote(s.addr, { csr, etcd: true }, s.tls);
  assert.equal(a.role, "manager");
  assert.equal(a.nodeId, s.joined.nodeId);
  assert.ok(signedBy(a.cert, s.ca.certPem));
  assert.equal(certInfo(a.cert).role, "manager");
  assert.equal(certInfo(a.cert).nodeId, s.joined.nodeId);
  // The member is added as a learner: the answer says where the promoted manager promotes it.
  assert.deepEqual(a.etcd, {
    initialCluster: `m0=https://10.0.0.1:4380,${s.joined.nodeId}=https://10.0.0.7:4380`,
    memberId: "1234",
    endpoints: ["https://10.0.0.1:4379"],
  });
  assert.deepEqual(added, [`${s.joined.nodeId}@10.0.0.7`]);
});

test("embedded store: a promotion moves the state first (ask again), as a manager's join does", async (t) => {
  let moves = 0;
  const s = await setup(t, {
    store: () => null,
    notLeader: () => null,
    moveToEtcd: async () => {
      moves++;
      throw new JoinError("moving: try again in a few seconds", 503);
    },
  });
  await s.manager.updateNode(s.joined.nodeId, { role: "manager" });
  const csr = (await newKeyAndCsr()).csrPem;
  await assert.rejects(
    requestPromote(s.addr, { csr, etcd: true }, s.tls),
    refused(503, /try again/),
  );
  assert.equal(moves, 1);
});

test("external etcd: the answer names the store, no member is added", async (t) => {
  const s = await setup(t, {
    store: () => ["http://10.0.0.9:2379"],
    notLeader: () => null,
  });
  await s.manager.updateNode(s.joined.nodeId, { role: "manager" });
  const a = await requestPromote(s.addr, { csr: (await newKeyAndCsr()).csrPem }, s.tls);
  assert.deepEqual(a.store, ["http://10.0.0.9:2379"]);
  assert.equal(a.etcd, undefined);
  assert.equal(certInfo(a.cert).role, "manager");
});
