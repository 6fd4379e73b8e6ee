// depends_on on a real daemon (run as root: a stack's default network is an overlay): `web`
// waits for `db` to be healthy. While db's check fails, web has no task through several
// reconcile passes; once the check passes, db runs and web's task starts.

import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { apiAt, checkFor, startDaemon, watchCounters } from "../helpers/daemon.js";
import type { Task } from "../../src/api/types.js";

test("stack deploy: a service waits for its dependency to be healthy before its first start", async (t) => {
  if (process.getuid?.() !== 0) {
    t.skip("overlay networks need root");
    return;
  }
  const d = await startDaemon();
  const dir = mkdtempSync(join(tmpdir(), "shoal-stack-deps-"));
  t.after(async () => {
    await d.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });
  const file = join(dir, "stack.yml");
  const ready = join(dir, "ready");
  writeFileSync(
    file,
    `services:
  db:
    command: ["sleep", "600"]
    healthcheck:
      test: ["CMD", "test", "-f", "${ready}"]
      interval: 200ms
      start_period: 1h
      start_interval: 200ms
  web:
    command: ["sleep", "600"]
    depends_on:
      db:
        condition: service_healthy
`,
  );
  const deployed = await d.cli("stack", "deploy", "-c", file, "deps");
  assert.equal(deployed.code, 0, deployed.stderr);
  assert.match(deployed.stdout, /Creating service deps_db\nCreating service deps_web\n/);

  const tasks = (name: string) => apiAt<Task[]>(d.dataDir, `/v1/tasks?service=${name}`);
  assert.ok(
    await checkFor(20_000, async () =>
      (await tasks("deps_db")).some((x) => x.status.state === "starting"),
    ),
    "db starts, and waits for its check",
  );
  // Several heartbeats later db is still starting and web still has no task.
  await watchCounters(d.dataDir, { heartbeats: 5 }, async () => {
    assert.deepEqual(await tasks("deps_web"), []);
  });
  const waiting = await d.cli("stack", "services", "deps", "--format", "{{.Name}} {{.Replicas}}");
  assert.equal(waiting.stdout, "deps_db 0/1\ndeps_web 0/1\n");

  writeFileSync(ready, "");
  assert.ok(
    await checkFor(20_000, async () =>
      (await tasks("deps_web")).some((x) => x.status.state === "running"),
    ),
    "web starts once db is healthy",
  );
  const [db] = (await tasks("deps_db")).filter((x) => x.status.state === "running");
  const [web] = await tasks("deps_web");
  assert.ok(db && web && web.createdAt >= db.status.timestamp, "web was created after db ran");
});
