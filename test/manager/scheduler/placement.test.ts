// Placement preferences (spread over a label's values, nested, nodes without the label as one
// more group) and max replicas per node, as tables and as properties of random clusters.

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { schedule } from "../../../src/manager/scheduler/index.js";
import type { Node, PlacementPreference, Service, Task } from "../../../src/api/types.js";
import { node, service, task } from "../orchestrator/sim.js";
import { propertyParams } from "../../helpers/property.js";

function pending(s: Service, n: number): Task[] {
  return Array.from({ length: n }, (_, i) => task(s, { slot: i + 1, state: "new" }));
}

function placed(s: Service, nodeId: string, n: number): Task[] {
  return Array.from({ length: n }, (_, i) => task(s, { slot: 100 + i, nodeId }));
}

function perNode(result: ReturnType<typeof schedule>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const a of result.assignments) out[a.nodeId] = (out[a.nodeId] ?? 0) + 1;
  return out;
}

const zoned = (id: string, zone?: string, more: Record<string, string> = {}): Node =>
  node(id, { labels: { ...(zone === undefined ? {} : { zone }), ...more } });

const spread = (...labels: string[]): PlacementPreference[] =>
  labels.map((l) => ({ spread: `node.labels.${l}` }));

describe("schedule: placement preferences", () => {
  const cases: Array<{
    name: string;
    nodes: Node[];
    prefs: PlacementPreference[];
    live?: (s: Service) => Task[];
    n: number;
    expect: Record<string, number>;
  }> = [
    {
      name: "zones a (2 nodes) and b (1 node), 6 replicas: 3 in a, 3 in b",
      nodes: [zoned("n1", "a"), zoned("n2", "a"), zoned("n3", "b")],
      prefs: spread("zone"),
      n: 6,
      expect: { n1: 2, n2: 1, n3: 3 },
    },
    {
      name: "without the preference the same cluster gets 2/2/2",
      nodes: [zoned("n1", "a"), zoned("n2", "a"), zoned("n3", "b")],
      prefs: [],
      n: 6,
      expect: { n1: 2, n2: 2, n3: 2 },
    },
    {
      name: "nodes without the label are one more group",
      nodes: [zoned("n1", "a"), zoned("n2"), zoned("n3")],
      prefs: spread("zone"),
      n: 4,
      expect: { n1: 2, n2: 1, n3: 1 },
    },
    {
      name: "the service's tasks already in a group count",
      nodes: [zoned("n1", "a"), zoned("n2", "b")],
      prefs: spread("zone"),
      live: (s) => placed(s, "n1", 2),
      n: 2,
      expect: { n2: 2 },
    },
    {
      name: "a group whose nodes take no task gives its share to the others",
      nodes: [node("n1", { labels: { zone: "a" }, availability: "drain" }), zoned("n2", "b")],
      prefs: spread("zone"),
      n: 3,
      expect: { n2: 3 },
    },
    {
      name: "tasks on a node that takes no new task still count for its group",
      nodes: [
        node("n1", { labels: { zone: "a" }, availability: "pause" }),
        zoned("n2", "a"),
        zoned("n3", "b"),
      ],
      prefs: spread("zone"),
      live: (s) => placed(s, "n1", 2),
      n: 2,
      expect: { n3: 2 },
    },
    {
      name: "preferences nest: datacenters first, then racks inside each",
      nodes: [
        zoned("n1", undefined, { dc: "x", rack: "r1" }),
        zoned("n2", undefined, { dc: "x", rack: "r2" }),
        zoned("n3", undefined, { dc: "y", rack: "r1" }),
      ],
      prefs: spread("dc", "rack"),
      n: 4,
      expect: { n1: 1, n2: 1, n3: 2 },
    },
    {
      name: "engine.labels and a label name in any case of the prefix",
      nodes: [zoned("n1", "a"), zoned("n2", "a"), zoned("n3", "b")],
      prefs: [{ spread: "Engine.Labels.zone" }],
      n: 2,
      expect: { n1: 1, n3: 1 },
    },
    {
      name: "inside a group the least-loaded node is chosen",
      nodes: [zoned("n1", "a"), zoned("n2", "a"), zoned("n3", "b")],
      prefs: spread("zone"),
      live: () => placed(service("other"), "n1", 3),
      n: 2,
      expect: { n2: 1, n3: 1 },
    },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const s = service("web", { replicas: c.n, spec: { preferences: c.prefs } });
      const r = schedule(pending(s, c.n), c.nodes, c.live?.(s) ?? []);
      assert.deepEqual(r.unschedulable, []);
      assert.deepEqual(perNode(r), c.expect);
    });
  }

  test("a global task keeps its node whatever the preferences say", () => {
    const s = service("g", { global: true, spec: { preferences: spread("zone") } });
    const t = task(s, { slot: 0, nodeId: "n2", state: "new" });
    const r = schedule([t], [zoned("n1", "a"), zoned("n2", "a"), zoned("n3", "b")], []);
    assert.deepEqual(r.assignments, [{ taskId: t.id, nodeId: "n2" }]);
  });
});

describe("schedule: max replicas per node", () => {
  const cases: Array<{
    name: string;
    nodes: Node[];
    max: number;
    constraints?: string[];
    live?: (s: Service) => Task[];
    n: number;
    expect: Record<string, number>;
    reason?: string;
  }> = [
    {
      name: "one per node on 3 nodes, 4 replicas: the fourth stays pending",
      nodes: [node("n1"), node("n2"), node("n3")],
      max: 1,
      n: 4,
      expect: { n1: 1, n2: 1, n3: 1 },
      reason: "no suitable node (max replicas per node limit exceed)",
    },
    {
      name: "tasks already on a node count",
      nodes: [node("n1"), node("n2")],
      max: 2,
      live: (s) => placed(s, "n1", 2),
      n: 2,
      expect: { n2: 2 },
    },
    {
      name: "a task being stopped does not count",
      nodes: [node("n1")],
      max: 1,
      live: (s) => placed(s, "n1", 1).map((t) => ({ ...t, desiredState: "shutdown" as const })),
      n: 1,
      expect: { n1: 1 },
    },
    {
      name: "with constraints, both reasons are given",
      nodes: [node("n1"), node("n2"), node("n3")],
      max: 1,
      constraints: ["node.hostname==n1"],
      n: 2,
      expect: { n1: 1 },
      reason:
        "no suitable node (scheduling constraints not satisfied on 2 nodes; max replicas per node limit exceed)",
    },
    {
      name: "0 is no limit",
      nodes: [node("n1")],
      max: 0,
      n: 3,
      expect: { n1: 3 },
    },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const s = service("web", {
        replicas: c.n,
        spec: { maxReplicasPerNode: c.max, constraints: c.constraints ?? [] },
      });
      const r = schedule(pending(s, c.n), c.nodes, c.live?.(s) ?? []);
      assert.deepEqual(perNode(r), c.expect);
      assert.deepEqual(
        r.unschedulable.map((u) => u.reason),
        c.reason === undefined ? [] : [c.reason],
      );
    });
  }

  test("with preferences: a full group gives its share to the others", () => {
    const s = service("web", {
      replicas: 4,
      spec: { maxReplicasPerNode: 1, preferences: spread("zone") },
    });
    const nodes = [zoned("n1", "a"), zoned("n2", "b"), zoned("n3", "b"), zoned("n4", "b")];
    const r = schedule(pending(s, 4), nodes, []);
    assert.deepEqual(perNode(r), { n1: 1, n2: 1, n3: 1, n4: 1 });
  });
});

// ---- properties -------------------------------------------------------------------------------

const ZONES = ["a", "b", "c", undefined] as const;

/** A random cluster: each node in a zone (or none), some with tasks of the service already. */
const clusterArb = fc.record({
  zones: fc.array(fc.constantFrom(...ZONES), { minLength: 1, maxLength: 7 }),
  existing: fc.array(fc.nat({ max: 3 }), { minLength: 7, maxLength: 7 }),
  replicas: fc.nat({ max: 25 }),
  max: fc.integer({ min: 1, max: 4 }),
});

describe("schedule: placement properties", () => {
  test("max replicas per node: no node goes over, and a task is left only when all are full", () => {
    fc.assert(
      fc.property(clusterArb, ({ zones, existing, replicas, max }) => {
        const s = service("web", { replicas, spec: { maxReplicasPerNode: max } });
        const nodes = zones.map((z, i) => zoned(`n${i}`, z));
        const live = nodes.flatMap((n, i) => placed(s, n.id, Math.min(existing[i]!, max)));
        const r = schedule(pending(s, replicas), nodes, live);
        const count = new Map(nodes.map((n, i) => [n.id, Math.min(existing[i]!, max)]));
        for (const a of r.assignments) count.set(a.nodeId, count.get(a.nodeId)! + 1);
        for (const [id, c] of count) assert.ok(c <= max, `${id} has ${c} tasks, max ${max}`);
        if (r.unschedulable.length > 0) {
          assert.ok(
            [...count.values()].every((c) => c === max),
            "a node had room left",
          );
        }
        assert.equal(r.assignments.length + r.unschedulable.length, replicas);
      }),
      propertyParams(200),
    );
  });

  test("spread over zones on an empty cluster: the groups differ by at most one task", () => {
    fc.assert(
      fc.property(clusterArb, ({ zones, replicas }) => {
        const s = service("web", { replicas, spec: { preferences: spread("zone") } });
        const nodes = zones.map((z, i) => zoned(`n${i}`, z));
        const r = schedule(pending(s, replicas), nodes, []);
        assert.deepEqual(r.unschedulable, []);
        const zoneOf = new Map(nodes.map((n) => [n.id, n.labels["zone"] ?? ""]));
        const byZone = new Map<string, number>([...zoneOf.values()].map((z) => [z, 0]));
        const byNode = new Map<string, number>(nodes.map((n) => [n.id, 0]));
        for (const a of r.assignments) {
          const z = zoneOf.get(a.nodeId)!;
          byZone.set(z, byZone.get(z)! + 1);
          byNode.set(a.nodeId, byNode.get(a.nodeId)! + 1);
        }
        const counts = [...byZone.values()];
        assert.ok(Math.max(...counts) - Math.min(...counts) <= 1, `zones ${[...byZone]}`);
        // Inside each zone the usual spread: its nodes differ by at most one task too.
        for (const z of byZone.keys()) {
          const mine = nodes.filter((n) => zoneOf.get(n.id) === z).map((n) => byNode.get(n.id)!);
          assert.ok(Math.max(...mine) - Math.min(...mine) <= 1, `zone ${z}: ${mine}`);
        }
      }),
      propertyParams(200),
    );
  });
});
