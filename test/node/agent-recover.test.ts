// An agent killed while a task starts (after the driver spawned it, before its handle was
// recorded) leaves an intent without a handle; the restarted agent ends what that start left, so
// the task's next start is its only copy, and nothing of it outlives its removal. The "crash" is
// a hook that never returns; the census counts real processes by SHOAL_TASK_ID in their
// environment.

import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { Agent, type TaskReport } from "../../src/node/agent.js";
import { ProcessDriver } from "../../src/node/drivers/process.js";
import type { Task, TaskState } from "../../src/api/types.js";
import { checkFor, killGroups, processGroups, taskCensus, taskId, tempDir } from "./helpers.js";
import { quietLog } from "../helpers/bus.js";
import { task } from "../store/helpers.js";

const linux = process.platform === "linux";

function sleeper(id: string): Task {
  const x = task(id, "s1", "n1");
  return {
    ...x,
    spec: { ...x.spec, command: ["sleep", "600"], stopGracePeriodMs: 1000 },
    status: { ...x.status, state: "assigned" as TaskState },
  };
}

function newAgent(dataDir: string, reports: TaskReport[], hook?: (id: string) => Promise<void>) {
  return new Agent(new ProcessDriver(), quietLog, {
    nodeId: "n1",
    hostname: "n1",
    dataDir,
    natsUrl: "nats://127.0.0.1:4222",
    logMaxBytes: 0,
    report: (r) => reports.push(...r),
    ...(hook ? { afterDriverStart: hook } : {}),
  });
}

describe("agent restarted during a task's start", { skip: !linux && "needs /proc" }, () => {
  test("the orphan of the interrupted start is ended; the task then runs once", async (t) => {
    const dataDir = tempDir(t);
    const ids = [taskId(), taskId(), taskId()];
    const tasks = ids.map(sleeper);
    t.after(async () => {
      // Whatever the outcome, no process of the test outlives it.
      for (const pids of taskCensus(ids).values()) killGroups(pids);
    });

    // The first agent "dies" right after each spawn: its hook never returns.
    let spawned = 0;
    const first = newAgent(dataDir, [], () => {
      spawned++;
      return new Promise<void>(() => {});
    });
    first.assign(tasks);
    await checkFor(10_000, () => spawned === ids.length || undefined);
    const before = taskCensus(ids);
    assert.equal(before.size, ids.length, "each task's process runs, untracked");

    const reports: TaskReport[] = [];
    const second = newAgent(dataDir, reports);
    t.after(() => second.stop(true));
    await second.recover();
    assert.deepEqual([...taskCensus(ids).keys()], [], "no orphan left after recover()");
    assert.equal(reports.length, 0, "nothing was adopted");

    second.assign(tasks);
    await checkFor(10_000, () => {
      const running = reports.filter((r) => r.state === "running").length;
      return running === ids.length || undefined;
    });
    const census = taskCensus(ids);
    for (const id of ids) {
      assert.equal(processGroups(census.get(id) ?? []).size, 1, `task ${id} runs exactly once`);
    }

    // Unassigned: every process is gone.
    second.assign([]);
    await checkFor(10_000, () => taskCensus(ids).size === 0 || undefined);
    await first.stop(false);
  });
});
