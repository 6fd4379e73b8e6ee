// A rolling update to a command that never becomes healthy, on a real daemon: the new task stays
// Starting and turns unhealthy, so the update never counts it done. With failure action pause
// the update pauses; with rollback the previous spec comes back and runs healthy again.

import { test } from "node:test";
import assert from "node:assert/strict";
import { apiAt, startDaemon, checkFor, type TestDaemon } from "../helpers/daemon.js";
import type { Service, Task } from "../../src/api/types.js";

const tasksOf = (d: TestDaemon, service: string) =>
  apiAt<Task[]>(d.dataDir, `/v1/tasks?service=${service}`);
const serviceOf = (d: TestDaemon, service: string) =>
  apiAt<Service>(d.dataDir, `/v1/services/${service}`);

// The check passes while the marker says so; the update makes it look for a file never written.
const HEALTHY = ["--health-cmd", "true"];
const NEVER_HEALTHY = ["--health-cmd", "test -f /nonexistent/shoal-never-there"];
const FAST_CHECKS = [
  "--health-interval",
  "100ms",
  "--health-retries",
  "2",
  "--health-start-period",
  "0s",
];

async function createHealthy(d: TestDaemon, name: string, failureAction: string): Promise<void> {
  const created = await d.cli(
    "service",
    "create",
    "--name",
    name,
    "-d",
    "--replicas",
    "2",
    "--restart-delay",
    "0s",
    "--stop-grace-period",
    "1s",
    "--update-failure-action",
    failureAction,
    "--update-monitor",
    "30s",
    ...HEALTHY,
    ...FAST_CHECKS,
    "--",
    "sleep",
    "600",
  );
  assert.equal(created.code, 0, created.stderr + created.stdout);
  assert.ok(
    await checkFor(20_000, async () => {
      const running = (await tasksOf(d, name)).filter(
        (t) => t.status.state === "running" && t.desiredState === "running",
      );
      return running.length === 2 && running.every((t) => t.status.health?.status === "healthy");
    }),
    "two healthy running tasks before the update",
  );
}

test("an update that never becomes healthy pauses (failure action pause)", async (t) => {
  const d = await startDaemon();
  t.after(() => d.cleanup());
  await createHealthy(d, "hp", "pause");
  const before = await tasksOf(d, "hp");

  const upd = await d.cli("service", "update", "-d", ...NEVER_HEALTHY, "hp");
  assert.equal(upd.code, 0, upd.stderr + upd.stdout);

  let svc: Service | undefined;
  assert.ok(
    await checkFor(30_000, async () => {
      svc = await serviceOf(d, "hp");
      return svc.updateStatus?.state === "paused";
    }),
    "the update pauses",
  );
  assert.match(svc!.updateStatus!.message, /update paused due to failure or early termination/);
  const tasks = await tasksOf(d, "hp");
  // The replacement failed unhealthy and was never counted as running.
  const replacement = tasks.filter((x) => x.specVersion === svc!.version);
  assert.ok(replacement.length >= 1);
  assert.ok(
    replacement.some((x) => x.status.err === "unhealthy"),
    JSON.stringify(replacement.map((x) => x.status)),
  );
  assert.ok(replacement.every((x) => x.status.state !== "running"));
  // Parallelism 1: the second slot was never touched, its old task still runs.
  const untouched = before.filter((b) =>
    tasks.some(
      (x) => x.id === b.id && x.status.state === "running" && x.desiredState === "running",
    ),
  );
  assert.equal(untouched.length, 1);
  const ps = await d.cli("service", "inspect", "--pretty", "hp");
  assert.match(ps.stdout, /UpdateStatus:\n State:\t\tpaused/);
});

test("an update that never becomes healthy rolls back (failure action rollback)", async (t) => {
  const d = await startDaemon();
  t.after(() => d.cleanup());
  await createHealthy(d, "hr", "rollback");

  const upd = await d.cli("service", "update", "-d", ...NEVER_HEALTHY, "hr");
  assert.equal(upd.code, 0, upd.stderr + upd.stdout);

  let svc: Service | undefined;
  assert.ok(
    await checkFor(40_000, async () => {
      svc = await serviceOf(d, "hr");
      return svc.updateStatus?.state === "rollback_completed";
    }),
    `the update rolls back (status ${JSON.stringify(svc?.updateStatus)})`,
  );
  // The spec is the one from before the update, and its tasks run healthy.
  assert.deepEqual(svc!.spec.healthcheck?.test, ["CMD-SHELL", "true"]);
  assert.ok(
    await checkFor(20_000, async () => {
      const live = (await tasksOf(d, "hr")).filter((x) => x.desiredState === "running");
      return (
        live.length === 2 &&
        live.every((x) => x.status.state === "running" && x.status.health?.status === "healthy")
      );
    }),
    "two healthy tasks after the rollback",
  );
});
