// A node that cannot enforce limits is never chosen for a limited task: a daemon run by an
// unprivileged user (no cgroups for it) reports that its process driver cannot enforce CPU or
// memory limits, and a service with --limit-memory stays Pending with a reason `service ps`
// shows, instead of crash-looping for ever.

import { test } from "node:test";
import assert from "node:assert/strict";
import { apiAt, checkFor, runCli, startDaemon } from "../helpers/daemon.js";
import type { Node, Task } from "../../src/api/types.js";

const NOBODY = 65534;

test("limits on a node that cannot enforce them: Pending with the reason, never started", async (t) => {
  if (process.getuid?.() !== 0) return t.skip("needs root to start a daemon as another user");
  const d = await startDaemon({ uid: NOBODY });
  t.after(() => d.cleanup());
  const dataDir = d.dataDir;
  const node = await checkFor(10_000, async () => {
    const [n] = await apiAt<Node[]>(dataDir, "/v1/nodes");
    return n?.limits?.["process"] ? n : undefined;
  });
  assert.deepEqual(node!.limits!["process"], { cpu: false, memory: false });

  const created = await runCli(dataDir, [
    "service",
    "create",
    "--detach",
    "--name",
    "limited",
    "--limit-memory",
    "64m",
    "--",
    "sleep",
    "600",
  ]);
  assert.equal(created.code, 0, created.stderr);
  const reason = "no suitable node (the process driver cannot enforce memory limits on 1 node)";
  const task = await checkFor(15_000, async () => {
    const ts = await apiAt<Task[]>(dataDir, "/v1/tasks?service=limited");
    return ts.length === 1 && ts[0]!.status.err === reason ? ts[0] : undefined;
  });
  assert.equal(task!.status.state, "pending");
  assert.equal(task!.nodeId, "", "never assigned to the node");
  const ps = await runCli(dataDir, ["service", "ps", "--no-trunc", "limited"]);
  assert.match(ps.stdout, /Pending/);
  assert.ok(ps.stdout.includes(reason), ps.stdout);
});

test("a node that cannot have overlay networks says why; network create gives the reason", async (t) => {
  if (process.getuid?.() !== 0) return t.skip("needs root to start a daemon as another user");
  const d = await startDaemon({ uid: NOBODY });
  t.after(() => d.cleanup());
  const node = await checkFor(10_000, async () => {
    const [n] = await apiAt<Node[]>(d.dataDir, "/v1/nodes");
    return n?.networks ? n : undefined;
  });
  assert.deepEqual(node!.networks, {
    overlay: false,
    reason: `overlay networks need root (the agent runs as uid ${NOBODY})`,
  });
  const r = await runCli(d.dataDir, ["network", "create", "--driver", "overlay", "web"]);
  assert.notEqual(r.code, 0);
  assert.match(
    r.stderr,
    /no node of the swarm can have overlay networks: overlay networks need root \(the agent runs as uid 65534\)/,
  );
});
