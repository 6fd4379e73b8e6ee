// The manager's reconcile-pass counter, and how a test shows that something does not happen:
// not by sleeping, but by waiting for passes that began after it looked. Here: a task that keeps
// failing is restarted as often as its policy allows, and no later pass starts another.

import { test } from "node:test";
import assert from "node:assert/strict";
import { createMemoryStore } from "../../src/store/memory.js";
import { Manager, defaultManagerOptions } from "../../src/manager/manager.js";
import { defaultServiceSpec, type Task } from "../../src/api/types.js";
import { checkFor } from "../helpers/servers.js";
import { quietLog } from "../helpers/bus.js";
import { node } from "../store/helpers.js";

test("a tick that finds something dirty is a pass; one after stop() is not", async () => {
  const m = new Manager(createMemoryStore(), quietLog); // not started: no timer
  assert.equal(m.passes, 0);
  m.markDirty(); // also queues a tick for the next turn
  await m.tick();
  assert.equal(m.passes, 1);
  await new Promise((r) => setImmediate(r)); // the queued tick: nothing is dirty any more
  await m.tick();
  assert.equal(m.passes, 1);
  await m.stop();
  m.markDirty();
  await m.tick();
  assert.equal(m.passes, 1);
});

test("passes keep coming on the timer while the manager runs", async (t) => {
  const m = new Manager(createMemoryStore(), quietLog, { ...defaultManagerOptions(), tickMs: 10 });
  m.start();
  t.after(() => m.stop());
  await checkFor(5000, () => m.passes >= 3);
});

test("a task that keeps failing is restarted max-attempts times, then no pass starts another", async (t) => {
  const store = createMemoryStore();
  await store.update((tx) => tx.putNode(node("w1")));
  const m = new Manager(store, quietLog, { ...defaultManagerOptions(), tickMs: 10 });
  m.start();
  t.after(() => m.stop());
  await m.createService({
    ...defaultServiceSpec("crash"),
    command: ["false"],
    restartPolicy: { condition: "on-failure", delayMs: 0, maxAttempts: 3, windowMs: 0 },
  });
  const tasks = () => store.view((tx) => tx.listTasks());
  /** The agent of w1: it beats, and every task assigned to it fails at once. */
  const agent = async () => {
    await m.heartbeat("w1");
    const assigned = tasks().filter(
      (x: Task) => x.nodeId === "w1" && x.status.state === "assigned",
    );
    await m.reportStatus(
      "w1",
      assigned.map((x) => ({ taskId: x.id, state: "failed", message: "exit 1", exitCode: 1 })),
    );
  };
  // The first task and three restarts.
  await checkFor(5000, async () => {
    await agent();
    return tasks().filter((x) => x.status.state === "failed").length === 4;
  });
  // Three passes later (the last two began after the count was seen), still no fifth task.
  const seen = m.passes;
  await checkFor(5000, async () => {
    await agent();
    return m.passes >= seen + 3;
  });
  const all = tasks();
  assert.equal(all.length, 4, JSON.stringify(all.map((x) => [x.slot, x.status.state])));
  assert.ok(all.every((x) => x.status.state === "failed"));
});
