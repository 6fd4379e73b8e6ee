// A node that cannot enforce limits is never chosen for a limited task: a daemon run by an
// unprivileged user (no cgroups for it) reports that its process driver cannot enforce CPU or
// memory limits, and a service with --limit-memory stays Pending with a reason `service ps`
// shows, instead of crash-looping for ever.

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { chownSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SHOAL_BIN } from "../helpers/servers.js";
import { apiAt, checkFor, killTaskProcesses, runCli } from "../helpers/daemon.js";
import type { Node, Task } from "../../src/api/types.js";

const NOBODY = 65534;

test("limits on a node that cannot enforce them: Pending with the reason, never started", async (t) => {
  if (process.getuid?.() !== 0) return t.skip("needs root to start a daemon as another user");
  const dataDir = mkdtempSync(join(tmpdir(), "shoal-limits-"));
  chownSync(dataDir, NOBODY, NOBODY);
  let out = "";
  const proc = spawn(
    process.execPath,
    [
      SHOAL_BIN,
      "daemon",
      "--data-dir",
      dataDir,
      "--nats-port",
      "-1",
      "--listen-addr",
      "127.0.0.1:0",
      "--publish-addr",
      "127.0.0.1",
    ],
    {
      uid: NOBODY,
      gid: NOBODY,
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, HOME: dataDir, SHOAL_DATA_DIR: dataDir },
    },
  );
  proc.stdout.on("data", (d: Buffer) => (out += d.toString()));
  proc.stderr.on("data", (d: Buffer) => (out += d.toString()));
  t.after(async () => {
    if (proc.exitCode === null) {
      const exited = new Promise((r) => proc.once("exit", r));
      proc.kill("SIGTERM");
      await exited;
    }
    killTaskProcesses(dataDir);
    rmSync(dataDir, { recursive: true, force: true });
  });
  await checkFor(15_000, () => /shoal daemon .* ready/.test(out), 50);
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
