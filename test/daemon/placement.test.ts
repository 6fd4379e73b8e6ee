// Max replicas per node end to end, on one daemon (one node): a service with 2 replicas and at
// most 1 per node runs one task; the other stays Pending with Swarm's reason, which `service ps`
// shows in ERROR; `service ls` and `service inspect --pretty` say the limit as Docker does.

import { test } from "node:test";
import assert from "node:assert/strict";
import { apiAt, checkFor, startDaemon } from "../helpers/daemon.js";
import type { Task } from "../../src/api/types.js";

const REASON = "no suitable node (max replicas per node limit exceed)";

test("--replicas-max-per-node 1 on one node: one task runs, the other is Pending with the reason", async (t) => {
  const d = await startDaemon();
  t.after(() => d.cleanup());
  const created = await d.cli(
    "service",
    "create",
    "--detach",
    "--name",
    "capped",
    "--replicas",
    "2",
    "--replicas-max-per-node",
    "1",
    "--",
    "sleep",
    "600",
  );
  assert.equal(created.code, 0, created.stderr);
  const tasks = await checkFor(15_000, async () => {
    const ts = await apiAt<Task[]>(d.dataDir, "/v1/tasks?service=capped");
    const running = ts.filter((x) => x.status.state === "running");
    const pending = ts.filter((x) => x.status.state === "pending" && x.status.err === REASON);
    return running.length === 1 && pending.length === 1 ? ts : undefined;
  });
  assert.equal(tasks!.length, 2);
  const ps = await d.cli("service", "ps", "--no-trunc", "capped");
  assert.match(ps.stdout, /Pending/);
  assert.ok(ps.stdout.includes(`"${REASON}"`), ps.stdout);
  const ls = await d.cli("service", "ls");
  assert.match(ls.stdout, /capped\s+replicated\s+1\/2 \(max 1 per node\)/);
  const pretty = await d.cli("service", "inspect", "--pretty", "capped");
  assert.match(pretty.stdout, /\nPlacement:\n Max Replicas Per Node: {3}1\nUpdateConfig:/);
  assert.match(pretty.stdout, /\nRollbackConfig:\n Parallelism:\t1\n/);
});
