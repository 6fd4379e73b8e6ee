// The agent's side of health checks, with the mock driver and scripted check results: the task
// is reported starting (with its health) until the first success, then running; a result that
// changes nothing is not reported; `retries` failures get the task reported unhealthy at once
// (so it leaves the backends while it stops), stopped, and failed "unhealthy". The check runs
// with the task's environment and working directory.

import { test } from "node:test";
import assert from "node:assert/strict";
import { Agent, type TaskReport } from "../../src/node/agent.js";
import type { ExecRequest, ExecResult, Handle } from "../../src/node/drivers/driver.js";
import type { Task, TaskState } from "../../src/api/types.js";
import { MockDriver, MockKernel } from "./mock-driver.js";
import { checkFor, taskId, tempDir } from "./helpers.js";
import { quietLog } from "../helpers/bus.js";
import { task } from "../store/helpers.js";

/** A mock driver whose checks exit with the scripted codes, in order (then 0). */
class CheckedDriver extends MockDriver {
  readonly calls: ExecRequest[] = [];
  constructor(readonly codes: number[]) {
    super(new MockKernel());
  }
  async exec(_h: Handle, req: ExecRequest): Promise<ExecResult> {
    this.calls.push(req);
    const exitCode = this.codes.shift() ?? 0;
    return { exitCode, output: `check ${this.calls.length}`, timedOut: false };
  }
}

function checked(id: string, workdir = ""): Task {
  const x = task(id, "s1", "n1");
  return {
    ...x,
    spec: {
      ...x.spec,
      command: ["mock", "sleep"],
      env: { COLOR: "blue" },
      workdir,
      healthcheck: {
        test: ["CMD-SHELL", "check"],
        intervalMs: 10,
        timeoutMs: 1000,
        retries: 2,
        startPeriodMs: 0,
        startIntervalMs: 0,
      },
    },
    status: { ...x.status, state: "assigned" as TaskState },
  };
}

test("starting until healthy, then running; unhealthy is reported, stopped and failed", async (t) => {
  // fail, ok (healthy), ok, ok, fail, fail (unhealthy)
  const d = new CheckedDriver([1, 0, 0, 0, 1, 1]);
  const reports: TaskReport[] = [];
  const agent = new Agent(d, quietLog, {
    nodeId: "n1",
    hostname: "n1",
    dataDir: tempDir(t),
    natsUrl: "nats://127.0.0.1:4222",
    logMaxBytes: 0,
    report: (r) => reports.push(...r),
  });
  t.after(() => agent.stop(true));
  const id = taskId();
  const wd = tempDir(t);
  agent.assign([checked(id, wd)]);
  assert.ok(await checkFor(10_000, () => reports.some((r) => r.state === "failed")));
  const seen = reports
    .filter((r) => r.health || r.state === "failed")
    .map((r) => `${r.state}/${r.health?.status}/${r.health?.failingStreak}`);
  assert.deepEqual(seen, [
    "starting/starting/0", // started, no result yet
    "starting/starting/1",
    "running/healthy/0",
    "running/healthy/1",
    "running/unhealthy/2", // at once, before the stop
    "failed/unhealthy/2",
  ]);
  const failed = reports.find((r) => r.state === "failed")!;
  assert.equal(failed.err, "unhealthy");
  assert.deepEqual(
    failed.health!.log.map((r) => [r.exitCode, r.output]),
    [
      [0, "check 2"],
      [0, "check 3"],
      [0, "check 4"],
      [1, "check 5"],
      [1, "check 6"],
    ],
  );
  assert.equal(d.calls.length, 6, "no check after the task was found unhealthy");
  assert.deepEqual(d.calls[0]!.argv, ["/bin/sh", "-c", "check"]);
  assert.equal(d.calls[0]!.env["COLOR"], "blue");
  assert.equal(d.calls[0]!.env["SHOAL_TASK_ID"], id);
  assert.equal(d.calls[0]!.workdir, wd);
  assert.equal(d.calls[0]!.timeoutMs, 1000);
});

test("a task without a check (or with NONE) is running once started, never checked", async (t) => {
  const d = new CheckedDriver([]);
  const reports: TaskReport[] = [];
  const agent = new Agent(d, quietLog, {
    nodeId: "n1",
    hostname: "n1",
    dataDir: tempDir(t),
    natsUrl: "nats://127.0.0.1:4222",
    logMaxBytes: 0,
    report: (r) => reports.push(...r),
  });
  t.after(() => agent.stop(true));
  const none = checked(taskId());
  none.spec.healthcheck = { ...none.spec.healthcheck!, test: ["NONE"] };
  agent.assign([none]);
  assert.ok(await checkFor(10_000, () => reports.some((r) => r.state === "running")));
  assert.ok(reports.every((r) => r.health === undefined));
  assert.equal(d.calls.length, 0);
});
