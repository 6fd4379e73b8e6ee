// The scheduler's limits filter as a table: a task with CPU or memory limits goes only to nodes
// whose driver can enforce them, and "no suitable node (...)" says which limits and how many
// nodes. Nodes that never reported what they can enforce are not filtered.

import { test } from "node:test";
import assert from "node:assert/strict";
import { schedule } from "../../../src/manager/scheduler/index.js";
import { defaultServiceSpec, type LimitSupport, type Node } from "../../../src/api/types.js";
import { node, service, task } from "../orchestrator/sim.js";

const can = (cpu: boolean, memory: boolean): Record<string, LimitSupport> => ({
  process: { cpu, memory },
  docker: { cpu: true, memory: true },
});

const cases: Array<{
  name: string;
  limits: { cpus: number; memoryBytes: number };
  driver?: "process" | "docker";
  nodes: Node[];
  placedOn?: string;
  reason?: string;
}> = [
  {
    name: "memory limit: only the node with the memory controller",
    limits: { cpus: 0, memoryBytes: 64 << 20 },
    nodes: [node("n1", { limits: can(true, false) }), node("n2", { limits: can(false, true) })],
    placedOn: "n2",
  },
  {
    name: "cpu limit: only the node with the cpu controller",
    limits: { cpus: 0.5, memoryBytes: 0 },
    nodes: [node("n1", { limits: can(false, true) }), node("n2", { limits: can(true, false) })],
    placedOn: "n2",
  },
  {
    name: "no node can: pending, and the reason names the limits and the count",
    limits: { cpus: 0, memoryBytes: 64 << 20 },
    nodes: [node("n1", { limits: can(true, false) }), node("n2", { limits: can(false, false) })],
    reason: "no suitable node (the process driver cannot enforce memory limits on 2 nodes)",
  },
  {
    name: "both limits name both",
    limits: { cpus: 1, memoryBytes: 64 << 20 },
    nodes: [node("n1", { limits: can(true, false) })],
    reason: "no suitable node (the process driver cannot enforce CPU and memory limits on 1 node)",
  },
  {
    name: "the docker driver enforces them where the process driver cannot",
    limits: { cpus: 1, memoryBytes: 64 << 20 },
    driver: "docker",
    nodes: [node("n1", { limits: can(false, false), drivers: ["process", "docker"] })],
    placedOn: "n1",
  },
  {
    name: "a node that never reported is not filtered",
    limits: { cpus: 1, memoryBytes: 64 << 20 },
    nodes: [node("n1")],
    placedOn: "n1",
  },
  {
    name: "a task without limits goes anywhere",
    limits: { cpus: 0, memoryBytes: 0 },
    nodes: [node("n1", { limits: can(false, false) })],
    placedOn: "n1",
  },
];

for (const c of cases) {
  test(`limits filter: ${c.name}`, () => {
    const s = service("svc", {
      spec: {
        ...defaultServiceSpec("svc"),
        command: ["sleep", "1"],
        driver: c.driver ?? "process",
        image: c.driver === "docker" ? "busybox" : "",
        limits: c.limits,
      },
    });
    const r = schedule([task(s, { state: "new" })], c.nodes, []);
    if (c.placedOn) {
      assert.deepEqual(
        r.assignments.map((a) => a.nodeId),
        [c.placedOn],
      );
      assert.deepEqual(r.unschedulable, []);
    } else {
      assert.deepEqual(r.assignments, []);
      assert.deepEqual(
        r.unschedulable.map((u) => u.reason),
        [c.reason],
      );
    }
  });
}
