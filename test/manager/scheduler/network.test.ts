// The network filter (issue 10): a task on a network goes only to a node that can have overlay
// networks; nodes that never said are not filtered; with none, the task is pending and says why.

import { test } from "node:test";
import assert from "node:assert/strict";
import { schedule } from "../../../src/manager/scheduler/index.js";
import { defaultServiceSpec, type Node } from "../../../src/api/types.js";
import { node, service, task } from "../orchestrator/sim.js";

const able = { overlay: true };
const unable = { overlay: false, reason: "overlay networks need root" };

const cases: Array<{
  name: string;
  onNetwork: boolean;
  nodes: Node[];
  placedOn?: string;
  reason?: string;
}> = [
  {
    name: "only the node that can",
    onNetwork: true,
    nodes: [node("n1", { networks: unable }), node("n2", { networks: able })],
    placedOn: "n2",
  },
  {
    name: "a node that never said is not filtered",
    onNetwork: true,
    nodes: [node("n1", { networks: unable }), node("n2")],
    placedOn: "n2",
  },
  {
    name: "none can: pending, with the count and the reason",
    onNetwork: true,
    nodes: [node("n1", { networks: unable }), node("n2", { networks: unable })],
    reason:
      "no suitable node (overlay networks are not available on 2 nodes (overlay networks need root))",
  },
  {
    name: "a task on no network goes anywhere",
    onNetwork: false,
    nodes: [node("n1", { networks: unable })],
    placedOn: "n1",
  },
];

for (const c of cases) {
  test(`network filter: ${c.name}`, () => {
    const s = service("svc", {
      spec: {
        ...defaultServiceSpec("svc"),
        command: ["sleep", "1"],
        ...(c.onNetwork ? { networks: [{ target: "net1" }] } : {}),
      },
    });
    const r = schedule([task(s, { state: "new" })], c.nodes, []);
    if (c.placedOn) {
      assert.deepEqual(
        r.assignments.map((a) => a.nodeId),
        [c.placedOn],
      );
    } else {
      assert.deepEqual(r.assignments, []);
      assert.deepEqual(
        r.unschedulable.map((u) => u.reason),
        [c.reason],
      );
    }
  });
}
