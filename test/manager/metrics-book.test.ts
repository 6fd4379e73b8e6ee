// The manager's book of current task figures: a node's round replaces what the book had of it;
// figures of tasks the store does not place on that node, or that ended, are not kept; a task
// that stops and a node that goes down or is removed are forgotten at once.

import { test } from "node:test";
import assert from "node:assert/strict";
import { createMemoryStore } from "../../src/store/memory.js";
import { MetricsBook, RPS_WINDOW_MS } from "../../src/manager/metrics-book.js";
import type { TaskStats } from "../../src/api/bus.js";
import { node, service, task } from "../store/helpers.js";

const running = (id: string, serviceId: string, nodeId: string) =>
  task(id, serviceId, nodeId, { status: { ...task("x", serviceId).status, state: "running" } });

const stat = (taskId: string, cpuCores: number): TaskStats => ({
  taskId,
  cpuCores,
  memoryBytes: 1000,
  sampledAt: 1,
});

async function setup() {
  const store = createMemoryStore();
  await store.update((tx) => {
    tx.putNode(node("n1"));
    tx.putNode(node("n2"));
    tx.putService(service("s1", "web"));
    tx.putService(service("s2", "db"));
    tx.putTask(running("a", "s1", "n1"));
    tx.putTask(running("b", "s1", "n2"));
    tx.putTask(running("c", "s2", "n1"));
  });
  const book = new MetricsBook(store);
  book.start();
  return { store, book };
}

const ids = (list: Array<{ taskId: string }>) => list.map((f) => f.taskId).sort();

test("record keeps a node's round per task, with the task's service; forService and forTask read it", async () => {
  const { book } = await setup();
  book.record("n1", [stat("a", 1.5), stat("c", 0.1)]);
  book.record("n2", [stat("b", 0.5)]);
  assert.deepEqual(ids(book.forService("s1")), ["a", "b"]);
  assert.deepEqual(ids(book.forService("s2")), ["c"]);
  assert.deepEqual(book.forTask("a"), {
    ...stat("a", 1.5),
    nodeId: "n1",
    serviceId: "s1",
    serviceName: "svc-s1",
  });
  assert.equal(book.forTask("zz"), undefined);
  // The next round of n1 no longer has c: it does not run there any more.
  book.record("n1", [stat("a", 2)]);
  assert.deepEqual(ids(book.all()), ["a", "b"]);
  assert.equal(book.forTask("a")?.cpuCores, 2);
});

test("figures a node sends of tasks it does not run, or of unknown tasks, are dropped", async () => {
  const { book } = await setup();
  book.record("n1", [stat("b", 1), stat("nope", 1)]);
  assert.deepEqual(book.all(), []);
  book.record("n9", [stat("a", 1)]);
  assert.deepEqual(book.all(), []);
});

test("a task that stops, a node that goes down or is removed are forgotten at once", async () => {
  const { store, book } = await setup();
  book.record("n1", [stat("a", 1), stat("c", 1)]);
  book.record("n2", [stat("b", 1)]);
  await store.update((tx) => {
    const c = tx.getTask("c")!;
    tx.putTask({ ...c, desiredState: "shutdown" });
  });
  assert.deepEqual(ids(book.all()), ["a", "b"]);
  await store.update((tx) => tx.putNode({ ...tx.getNode("n2")!, status: "down" }));
  assert.deepEqual(ids(book.all()), ["a"]);
  // A down node's heartbeat figures are not taken until it is ready again.
  book.record("n2", [stat("b", 1)]);
  assert.deepEqual(ids(book.all()), ["a"]);
  await store.update((tx) => tx.deleteNode("n1"));
  assert.deepEqual(book.all(), []);
  book.stop();
});

test("taskUsage gives the autoscaler a task's CPU and memory, stamped with the manager's clock", async () => {
  const { book } = await setup();
  book.record("n1", [stat("a", 0.75)], 5000);
  assert.deepEqual(book.taskUsage("a"), { cpuCores: 0.75, memoryBytes: 1000, at: 5000 });
  assert.equal(book.taskUsage("b"), undefined, "no figures yet");
});

test("serviceRps: the routers' counts of every node, per second over the window", async () => {
  const { book } = await setup();
  assert.equal(book.serviceRps("s1", 0), 0, "no requests yet");
  // Two nodes' routers, one heartbeat a second each, for 20 s: 30 requests a second in all.
  for (let t = 1000; t <= 20_000; t += 1000) {
    book.recordRequests("n1", [{ serviceId: "s1", count: 20 }], t);
    book.recordRequests("n2", [{ serviceId: "s1", count: 10 }], t);
    book.recordRequests("n2", [{ serviceId: "s2", count: 0 }], t);
  }
  assert.equal(book.serviceRps("s1", 20_000), 30);
  assert.equal(book.serviceRps("s2", 20_000), 0);
  // A load that just began counts over the time since it began (at least a second).
  book.recordRequests("n1", [{ serviceId: "s2", count: 50 }], 21_000);
  assert.equal(book.serviceRps("s2", 21_000), 50);
  book.recordRequests("n1", [{ serviceId: "s2", count: 50 }], 22_000);
  assert.equal(book.serviceRps("s2", 23_000), 50);
  // Counts older than the window are dropped as new ones come, whether or not anyone reads the
  // rate (a routed service without autoscaling): a day of heartbeats keeps 10 s of them.
  for (let t = 30_000; t <= 30_000 + 86_400_000; t += 1000) {
    book.recordRequests("n1", [{ serviceId: "s3", count: 1 }], t);
  }
  const kept = (book as unknown as { requests: Map<string, unknown[]> }).requests.get("s3")!;
  assert.equal(kept.length, RPS_WINDOW_MS / 1000);
  // The load stops: once the window has passed, nothing is left.
  assert.equal(book.serviceRps("s1", 20_000 + RPS_WINDOW_MS), 0);
});
