// `node promote` against a real manager daemon on its embedded store (the promoted machine is
// played by the test, with the certificate the join endpoint signed for it): the node is a
// manager in the store at once, its worker certificate still reaches the bus (it learns of the
// promotion there: its assignments say `role: "manager"`) until its manager daemon takes over,
// and it can be demoted again before it does;
// a manager without etcd refuses the promotion at once, naming what to install, and the node
// stays a worker (the move to etcd could never happen, and only etcd can demote).

import { test } from "node:test";
import assert from "node:assert/strict";
import { connect, JSONCodec } from "nats";
import { assignSubject } from "../../src/api/bus.js";
import type { Node } from "../../src/api/types.js";
import { joinManager, managerIdentity } from "../../src/daemon/worker-daemon.js";
import { apiAt, startDaemon, type TestDaemon } from "../helpers/daemon.js";
import { defer } from "../helpers/defer.js";

const codec = JSONCodec<{ role?: string }>();

async function joinWorker(d: TestDaemon) {
  const jt = await d.cli("swarm", "join-token", "worker");
  const [, token, addr] = /--token (\S+) (\S+)/.exec(jt.stdout) ?? [];
  assert.ok(token && addr, jt.stdout);
  return joinManager(addr, { token, hostname: "w1", addr: "127.0.0.1" });
}

test("a promoted worker keeps its bus user and hears of its promotion there", async (t) => {
  const d = await startDaemon();
  defer(t, () => d.cleanup());
  const j = await joinWorker(d);
  const id = j.answer.nodeId;
  const tls = {
    ca: j.answer.caCert,
    cert: j.answer.cert,
    key: j.keyPem,
    checkServerIdentity: managerIdentity,
  };
  const nc = await connect({ servers: j.answer.natsUrls, tls, reconnect: false });
  defer(t, () => nc.close());
  const roles: (string | undefined)[] = [];
  let promoted: () => void;
  const heard = new Promise<void>((r) => (promoted = r));
  nc.subscribe(assignSubject(id), {
    callback: (_err, msg) => {
      const role = codec.decode(msg.data).role;
      roles.push(role);
      if (role === "manager") promoted();
    },
  });
  await nc.flush();

  const r = await d.cli("node", "promote", id);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `Node ${id} promoted to a manager in the swarm.\n`);
  assert.equal((await apiAt<Node>(d.dataDir, `/v1/nodes/${id}`)).role, "manager");
  // A cut connection (no user for the worker certificate any more) ends the wait too.
  await Promise.race([
    heard,
    nc.closed().then(() => assert.fail("the worker certificate's connection was cut")),
  ]);
  assert.ok(!roles.slice(0, -1).includes("manager"), `roles heard: ${roles.join()}`);
  // Again: docker/cli's words, nothing changed.
  const again = await d.cli("node", "promote", id);
  assert.equal(again.stdout, `Node ${id} is already a manager.\n`);
  // It never took over: the embedded store's manager can demote it (only unmarked: it keeps
  // its worker's secret and bus user).
  const demote = await d.cli("node", "demote", id);
  assert.equal(demote.code, 0, demote.stderr);
  assert.equal(demote.stdout, `Manager ${id} demoted in the swarm.\n`);
  assert.equal((await apiAt<Node>(d.dataDir, `/v1/nodes/${id}`)).role, "worker");
  await nc.flush();
  assert.equal(nc.isClosed(), false);
});

test("without etcd on the manager a promotion is refused at once, naming what to install", async (t) => {
  const d = await startDaemon({ env: { ETCD: "/nonexistent/etcd" } });
  defer(t, () => d.cleanup());
  const j = await joinWorker(d);
  const id = j.answer.nodeId;
  const r = await d.cli("node", "promote", id);
  assert.equal(r.code, 1, r.stdout);
  assert.match(r.stderr, /etcd is not installed on the manager/);
  assert.match(r.stderr, /apt-get install etcd-server/);
  assert.equal((await apiAt<Node>(d.dataDir, `/v1/nodes/${id}`)).role, "worker");
});
