// A worker restarted as a user restarts one (`shoal daemon --data-dir D`, no other flags) comes
// back as the same node on the same address: before, it re-registered as 127.0.0.1 and the
// routing mesh of every other node dropped the requests it sent to that worker's tasks.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { startSwarm } from "../helpers/swarm.js";
import { checkFor, httpGet } from "../helpers/servers.js";
import { pidAlive } from "./netns.js";
import type { Node } from "../../src/api/types.js";

test("a restarted worker keeps its address, and the mesh reaches its tasks on every request", async (t) => {
  const s = await startSwarm(3);
  t.after(() => s.cleanup());
  const ready = async () =>
    (await s.api<Node[]>("/v1/nodes")).filter((n) => n.status === "ready").length === 3;
  await checkFor(10_000, ready);
  // A global service: one task per node, so one runs on the restarted worker whatever happened
  // to its old one while it was away.
  const server =
    "require('http').createServer((q,r)=>r.end(process.env.SHOAL_TASK_ID)).listen(+process.env.PORT,'0.0.0.0')";
  const created = await s.cli(
    "service",
    "create",
    "--name",
    "web",
    "--mode",
    "global",
    "-p",
    "8080:8000",
    "--",
    "node",
    "-e",
    server,
  );
  assert.equal(created.code, 0, created.stderr + created.stdout);
  const worker = s.workers[0]!;
  const before = (await s.api<Node[]>("/v1/nodes")).find((n) => n.addr === worker.addr);
  assert.ok(before, `the worker registered with its address ${worker.addr}`);

  // Stop the worker's daemon (its tasks keep running), then start it again with no flags.
  const pid = Number(readFileSync(join(s.dirs[1]!, "daemon.pid"), "utf8"));
  process.kill(pid, "SIGTERM");
  await checkFor(15_000, () => !pidAlive(pid), 50);
  s.restartWorker(0);
  await checkFor(15_000, async () => {
    const n = (await s.api<Node[]>("/v1/nodes")).find((x) => x.id === before!.id);
    return n?.status === "ready" && n.updatedAt > before!.updatedAt;
  });
  const after = (await s.api<Node[]>("/v1/nodes")).find((n) => n.id === before!.id)!;
  assert.equal(after.addr, worker.addr, "the same address after the restart");
  assert.equal((await s.api<Node[]>("/v1/nodes")).length, 3, "the same node, not a new one");

  // Its task was replaced meanwhile if the restart took longer than the down-after period:
  // wait for three running tasks, one on each node; then every request through the manager's
  // published port is answered, by all three.
  await checkFor(30_000, async () => {
    const ts = await s.running("web");
    return ts.length === 3 && new Set(ts.map((x) => x.nodeId)).size === 3;
  });
  await checkFor(10_000, async () => {
    const seen = new Set<string>();
    for (let i = 0; i < 9; i++) seen.add(await httpGet(s.manager.addr, 8080));
    return seen.size === 3;
  });
  const seen = new Map<string, number>();
  for (let i = 0; i < 30; i++) {
    const body = await httpGet(s.manager.addr, 8080);
    seen.set(body, (seen.get(body) ?? 0) + 1);
  }
  const ids = (await s.running("web")).map((x) => x.id).sort();
  assert.deepEqual([...seen.keys()].sort(), ids, JSON.stringify([...seen]));
});
