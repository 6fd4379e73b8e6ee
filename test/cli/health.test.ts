// Health checks end to end on one machine: a real daemon and CLI, real task processes. A task
// whose check fails stays Starting (inside its start period), turns Running once the check
// passes, and — when the check starts failing — is failed "unhealthy" and replaced. The CLI
// shows the check (`inspect --pretty`) and the task's health (`service ps`, the task's status).

import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { apiAt, startDaemon, checkFor, watchCounters, type TestDaemon } from "../helpers/daemon.js";
import type { Task } from "../../src/api/types.js";

const tasksOf = (d: TestDaemon, service: string) =>
  apiAt<Task[]>(d.dataDir, `/v1/tasks?service=${service}`);

test("a health check: Starting until it passes, then Running; unhealthy is failed and replaced", async (t) => {
  const d = await startDaemon();
  t.after(() => d.cleanup());
  const wd = mkdtempSync(join(tmpdir(), "shoal-health-"));
  t.after(() => rmSync(wd, { recursive: true, force: true }));

  const created = await d.cli(
    "service",
    "create",
    "--name",
    "hc",
    "-d",
    "--restart-delay",
    "0s",
    "--stop-grace-period",
    "1s",
    "-w",
    wd,
    "--health-cmd",
    "test -f ready",
    "--health-interval",
    "200ms",
    "--health-retries",
    "2",
    "--health-start-period",
    "1h",
    "--health-start-interval",
    "200ms",
    "--",
    "sleep",
    "600",
  );
  assert.equal(created.code, 0, created.stderr + created.stdout);

  const pretty = await d.cli("service", "inspect", "--pretty", "hc");
  assert.match(
    pretty.stdout,
    / Healthcheck:\n {2}Interval = 200ms\n {2}Retries = 2\n {2}StartPeriod =\t1h0m0s\n {2}Timeout =\t0s\n {2}Tests:\n\t Test = CMD-SHELL\n\t Test = test -f ready/,
  );

  // Started, and starting: the check fails but inside the start period that does not count.
  let first: Task | undefined;
  assert.ok(
    await checkFor(20_000, async () => {
      first = (await tasksOf(d, "hc")).find((x) => x.status.state === "starting" && x.status.pid);
      return first?.status.health?.status === "starting";
    }),
    "the task reports starting",
  );
  // Several heartbeats (and checks) later it is still starting: never running while unhealthy.
  await watchCounters(d.dataDir, { heartbeats: 3 }, async () => {
    const now = (await tasksOf(d, "hc")).find((x) => x.id === first!.id)!;
    assert.equal(now.status.state, "starting");
    assert.equal(now.status.health?.status, "starting");
  });
  const ps1 = await d.cli("service", "ps", "hc");
  assert.match(ps1.stdout, /Starting .* ago \(health: starting\)/);

  writeFileSync(join(wd, "ready"), "");
  assert.ok(
    await checkFor(20_000, async () => {
      const now = (await tasksOf(d, "hc")).find((x) => x.id === first!.id)!;
      return now.status.state === "running" && now.status.health?.status === "healthy";
    }),
    "the first healthy result makes it running",
  );
  const ps2 = await d.cli("service", "ps", "hc");
  assert.match(ps2.stdout, /Running .* ago \(healthy\)/);
  // `service inspect` shows each live task's health with its last results.
  const inspected = await d.cli("service", "inspect", "hc");
  const [svc] = JSON.parse(inspected.stdout) as Array<{
    taskHealth: Array<{
      id: string;
      name: string;
      state: string;
      health: Task["status"]["health"];
    }>;
  }>;
  assert.equal(svc!.taskHealth.length, 1);
  assert.equal(svc!.taskHealth[0]!.name, "hc.1");
  assert.equal(svc!.taskHealth[0]!.state, "running");
  assert.equal(svc!.taskHealth[0]!.health?.status, "healthy");
  assert.equal(svc!.taskHealth[0]!.health?.log.at(-1)?.exitCode, 0);
  const [running] = (await tasksOf(d, "hc")).filter((x) => x.id === first!.id);
  const last = running!.status.health!.log.at(-1)!;
  assert.equal(last.exitCode, 0);
  assert.ok(last.end >= last.start);

  // The check starts failing: after 2 failures in a row the task is failed "unhealthy" and a
  // new one takes its slot.
  rmSync(join(wd, "ready"));
  let tasks: Task[] = [];
  assert.ok(
    await checkFor(30_000, async () => {
      tasks = await tasksOf(d, "hc");
      const old = tasks.find((x) => x.id === first!.id)!;
      const fresh = tasks.find((x) => x.id !== first!.id && x.desiredState === "running");
      return old.status.state === "failed" && fresh !== undefined && fresh.status.pid !== null;
    }),
    "the unhealthy task is failed and replaced",
  );
  const old = tasks.find((x) => x.id === first!.id)!;
  assert.equal(old.status.err, "unhealthy");
  assert.equal(old.status.health?.status, "unhealthy");
  assert.equal(old.status.health?.failingStreak, 2);
  assert.deepEqual(
    old.status.health?.log.slice(-2).map((r) => r.exitCode),
    [1, 1],
  );
  const ps3 = await d.cli("service", "ps", "hc");
  assert.match(ps3.stdout, /Failed .* ago +"unhealthy"/);
});
