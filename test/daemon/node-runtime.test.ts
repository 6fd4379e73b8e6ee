// Regression tests of the foundation issue's daemon defects, on one machine: a real `shoal
// daemon` driven by the real CLI. Each failed on the code before the one node runtime.

import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { apiAt, checkFor, runCli, startDaemon, killTaskProcesses } from "../helpers/daemon.js";
import type { Node, Task } from "../../src/api/types.js";

interface Info {
  nodeId: string;
  heartbeats: number;
  pid: number;
}

test("heartbeat period 100ms: the manager's own node stays Ready and its task is never replaced", async (t) => {
  const d = await startDaemon();
  t.after(() => d.cleanup());
  const created = await d.cli(
    "service",
    "create",
    "--detach",
    "--name",
    "sleeper",
    "--",
    "sleep",
    "600",
  );
  assert.equal(created.code, 0, created.stderr);
  const first = await checkFor(15_000, async () => {
    const ts = await apiAt<Task[]>(d.dataDir, "/v1/tasks?service=sleeper");
    return ts.find((x) => x.status.state === "running");
  });
  const updated = await d.cli("swarm", "update", "--heartbeat-period", "100ms");
  assert.equal(updated.code, 0, updated.stderr);
  // Watch 40 heartbeats (4 s at 100 ms, more than ten of the 300 ms down-after periods).
  const start = (await apiAt<Info>(d.dataDir, "/v1/info")).heartbeats;
  const seen = new Set<string>();
  await checkFor(30_000, async () => {
    const nodes = await apiAt<Node[]>(d.dataDir, "/v1/nodes");
    for (const n of nodes) seen.add(n.status);
    return (await apiAt<Info>(d.dataDir, "/v1/info")).heartbeats >= start + 40;
  });
  assert.deepEqual([...seen], ["ready"], "the node was never marked down");
  const tasks = await apiAt<Task[]>(d.dataDir, "/v1/tasks?service=sleeper");
  assert.deepEqual(
    tasks.map((x) => [x.id, x.status.state]),
    [[first!.id, "running"]],
    "the one task kept running, nothing was orphaned or replaced",
  );
});

test("the node reports its CPUs and memory: a memory reservation is placed and runs", async (t) => {
  const d = await startDaemon();
  t.after(() => d.cleanup());
  const node = await checkFor(10_000, async () => {
    const [n] = await apiAt<Node[]>(d.dataDir, "/v1/nodes");
    return n && n.resources.memoryBytes > 0 ? n : undefined;
  });
  assert.ok(node!.resources.nanoCpus >= 1, `CPUs reported: ${node!.resources.nanoCpus}`);
  assert.ok(node!.drivers?.includes("process"));
  assert.ok(node!.limits?.["process"], "the limits the process driver can enforce are reported");
  const created = await d.cli(
    "service",
    "create",
    "--detach",
    "--name",
    "reserved",
    "--reserve-memory",
    "1m",
    "--reserve-cpu",
    "0.5",
    "--",
    "sleep",
    "600",
  );
  assert.equal(created.code, 0, created.stderr);
  await checkFor(15_000, async () => {
    const ts = await apiAt<Task[]>(d.dataDir, "/v1/tasks?service=reserved");
    return ts.some((x) => x.status.state === "running");
  });
});

test("the API socket and the saved settings are the owner's only (0600)", async (t) => {
  const d = await startDaemon();
  t.after(() => d.cleanup());
  for (const f of ["shoal.sock", "daemon.json"]) {
    assert.equal(statSync(join(d.dataDir, f)).mode & 0o777, 0o600, f);
  }
});

test("a stopped daemon exits on the first SIGTERM", async (t) => {
  const d = await startDaemon();
  t.after(() => d.cleanup());
  const created = await d.cli("service", "create", "--detach", "--name", "s", "--", "sleep", "600");
  assert.equal(created.code, 0, created.stderr);
  await checkFor(15_000, async () =>
    (await apiAt<Task[]>(d.dataDir, "/v1/tasks?service=s")).some(
      (x) => x.status.state === "running",
    ),
  );
  const exited = new Promise<number | null>((r) => d.proc.once("exit", (code) => r(code)));
  d.proc.kill("SIGTERM");
  assert.equal(await exited, 0);
  assert.match(d.log(), /shoal daemon stopped/);
});

test("leave --force forgets the swarm: a new init has one node, Ready, and no ghost", async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), "shoal-leave-"));
  const flags = [
    ...["--data-dir", dataDir, "--listen-addr", "127.0.0.1:0", "--nats-port", "-1"],
    ...["--consul-addr", "", "--consul-dns-addr", "", "--http-addr", "", "--metrics-addr", ""],
  ];
  t.after(async () => {
    await runCli(dataDir, ["leave", "--force"], 30_000);
    killTaskProcesses(dataDir);
    rmSync(dataDir, { recursive: true, force: true });
  });
  const first = await runCli(dataDir, ["init", ...flags]);
  assert.equal(first.code, 0, first.stderr);
  const before = await apiAt<Info>(dataDir, "/v1/info");
  const left = await runCli(dataDir, ["leave", "--force"]);
  assert.equal(left.code, 0, left.stderr);
  assert.deepEqual(
    readdirSync(dataDir).filter((f) => ["store", "node-id", "daemon.json", "agent"].includes(f)),
    [],
    "leave removed the swarm state",
  );
  const second = await runCli(dataDir, ["init", ...flags]);
  assert.equal(second.code, 0, second.stderr);
  const nodes = await apiAt<Node[]>(dataDir, "/v1/nodes");
  assert.equal(nodes.length, 1, JSON.stringify(nodes));
  assert.notEqual(nodes[0]!.id, before.nodeId, "a new node, not the old one brought back");
  assert.equal(nodes[0]!.status, "ready");
  assert.equal(existsSync(join(dataDir, "store")), true);
});
