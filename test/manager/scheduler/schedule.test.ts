// The scheduler as tables: spread (including its own decisions within one call and existing
// load), the node filters (availability, drivers, constraints with each operator and key,
// host-mode port conflicts, resource reservations) and the "no suitable node (...)" explanation text.

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  matchConstraints,
  parseConstraint,
  schedule,
} from "../../../src/manager/scheduler/index.js";
import type { Node, PortConfig, Service, Task } from "../../../src/api/types.js";
import { node, service, task } from "../orchestrator/sim.js";

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

const three = () => [node("n1"), node("n2"), node("n3")];
const web = service("web", { replicas: 6 });
const other = service("other");

describe("schedule: spread", () => {
  const cases: Array<{
    name: string;
    nodes: Node[];
    live: Task[];
    n: number;
    expect: Record<string, number>;
  }> = [
    {
      name: "6 tasks on 3 empty nodes: 2/2/2",
      nodes: three(),
      live: [],
      n: 6,
      expect: { n1: 2, n2: 2, n3: 2 },
    },
    { name: "1 task: the lowest node id", nodes: three(), live: [], n: 1, expect: { n1: 1 } },
    {
      name: "existing tasks of the service count",
      nodes: three(),
      live: [...placed(web, "n1", 2), ...placed(web, "n2", 1)],
      n: 3,
      expect: { n2: 1, n3: 2 },
    },
    {
      name: "then load of other services breaks ties",
      nodes: three(),
      live: [...placed(other, "n1", 3), ...placed(other, "n2", 1)],
      n: 2,
      expect: { n3: 1, n2: 1 },
    },
    {
      name: "ended tasks are not load",
      nodes: three(),
      live: placed(web, "n1", 3).map((t) => ({
        ...t,
        status: { ...t.status, state: "failed" as const },
      })),
      n: 3,
      expect: { n1: 1, n2: 1, n3: 1 },
    },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const r = schedule(pending(web, c.n), c.nodes, c.live);
      assert.deepEqual(r.unschedulable, []);
      assert.deepEqual(perNode(r), c.expect);
    });
  }

  test("deterministic", () => {
    const a = schedule(pending(web, 5), three(), []);
    const b = schedule(pending(web, 5), three().reverse(), []);
    assert.deepEqual(perNode(a), perNode(b));
  });
});

describe("schedule: filters and explanations", () => {
  const hostPort: PortConfig = { published: 8080, target: 80, protocol: "tcp", mode: "host" };
  const withSpec = (spec: Partial<Service["spec"]>) => service("svc", { spec });

  const cases: Array<{
    name: string;
    s: Service;
    nodes: Node[];
    live?: Task[];
    n: number;
    expect: Record<string, number>;
    reason?: string;
  }> = [
    {
      name: "drained, paused and down nodes take no new tasks",
      s: web,
      nodes: [
        node("n1", { availability: "drain" }),
        node("n2", { availability: "pause" }),
        node("n3", { status: "down" }),
        node("n4", { status: "unknown" }),
        node("n5"),
      ],
      n: 2,
      expect: { n5: 2 },
    },
    {
      name: "no node available",
      s: web,
      nodes: [node("n1", { availability: "drain" }), node("n2", { status: "down" })],
      n: 1,
      expect: {},
      reason: "no suitable node (2 nodes not available for new tasks)",
    },
    { name: "no nodes at all", s: web, nodes: [], n: 1, expect: {}, reason: "no suitable node" },
    {
      name: "reasons most frequent first",
      s: withSpec({ constraints: ["node.labels.zone==a"] }),
      nodes: [node("n1", { status: "down" }), node("n2", { availability: "drain" }), node("n3")],
      n: 1,
      expect: {},
      reason:
        "no suitable node (2 nodes not available for new tasks; scheduling constraints not satisfied on 1 node)",
    },
    {
      name: "docker tasks only on nodes with the docker driver (unreported: assumed)",
      s: withSpec({ driver: "docker", image: "busybox" }),
      nodes: [
        node("n1", { drivers: ["process"] }),
        node("n2", { drivers: ["process", "docker"] }),
        node("n3"),
      ],
      n: 4,
      expect: { n2: 2, n3: 2 },
    },
    {
      name: "no node with the docker driver",
      s: withSpec({ driver: "docker", image: "busybox" }),
      nodes: [node("n1", { drivers: ["process"] }), node("n2", { drivers: ["process"] })],
      n: 1,
      expect: {},
      reason: "no suitable node (the docker driver is not available on 2 nodes)",
    },
    {
      name: "process tasks ignore the drivers list",
      s: web,
      nodes: [node("n1", { drivers: [] })],
      n: 1,
      expect: { n1: 1 },
    },
    {
      name: "host-mode port: one task per node",
      s: withSpec({ ports: [hostPort] }),
      nodes: [node("n1"), node("n2")],
      n: 3,
      expect: { n1: 1, n2: 1 },
      reason: "no suitable node (host-mode port already in use on 2 nodes)",
    },
    {
      name: "host-mode port held by a live task of another service",
      s: withSpec({ ports: [hostPort] }),
      nodes: [node("n1"), node("n2")],
      live: [task(withSpec({ ports: [hostPort] }), { serviceId: "x", nodeId: "n1" })],
      n: 1,
      expect: { n2: 1 },
    },
    {
      name: "ingress ports do not conflict",
      s: withSpec({ ports: [{ ...hostPort, mode: "ingress" }] }),
      nodes: [node("n1")],
      n: 3,
      expect: { n1: 3 },
    },
    {
      name: "same port number, other protocol: no conflict",
      s: withSpec({ ports: [{ ...hostPort, protocol: "udp" }] }),
      nodes: [node("n1")],
      live: [task(withSpec({ ports: [hostPort] }), { serviceId: "x", nodeId: "n1" })],
      n: 1,
      expect: { n1: 1 },
    },
    {
      name: "cpu reservations fill nodes",
      s: withSpec({ reservations: { cpus: 0.6, memoryBytes: 0 } }),
      nodes: [
        node("n1", { resources: { nanoCpus: 1, memoryBytes: 1e9 } }),
        node("n2", { resources: { nanoCpus: 1, memoryBytes: 1e9 } }),
      ],
      n: 3,
      expect: { n1: 1, n2: 1 },
      reason: "no suitable node (insufficient resources on 2 nodes)",
    },
    {
      name: "memory reservations of live tasks count",
      s: withSpec({ reservations: { cpus: 0, memoryBytes: 600e6 } }),
      nodes: [
        node("n1", { resources: { nanoCpus: 1, memoryBytes: 1e9 } }),
        node("n2", { resources: { nanoCpus: 1, memoryBytes: 1e9 } }),
      ],
      live: [task(withSpec({ reservations: { cpus: 0, memoryBytes: 500e6 } }), { nodeId: "n1" })],
      n: 2,
      expect: { n2: 1 },
      reason: "no suitable node (insufficient resources on 2 nodes)",
    },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const r = schedule(pending(c.s, c.n), c.nodes, c.live ?? []);
      assert.deepEqual(perNode(r), c.expect);
      if (c.reason) {
        assert.ok(r.unschedulable.length > 0);
        for (const u of r.unschedulable) assert.equal(u.reason, c.reason);
      } else {
        assert.deepEqual(r.unschedulable, []);
      }
    });
  }

  test("a task that names its node (global) is only checked there", () => {
    const s = withSpec({ ports: [hostPort] });
    const r = schedule(
      [
        task(s, { nodeId: "n2", slot: 0, state: "new" }),
        task(s, { nodeId: "n1", slot: 0, state: "new" }),
      ],
      [node("n1"), node("n2")],
      [task(s, { serviceId: "x", nodeId: "n1" })],
    );
    assert.deepEqual(
      r.assignments.map((a) => a.nodeId),
      ["n2"],
    );
    assert.equal(
      r.unschedulable[0]!.reason,
      "no suitable node (host-mode port already in use on 1 node)",
    );
  });
});

describe("constraints", () => {
  const n = node("abc123", {
    hostname: "web-1",
    role: "manager",
    labels: { zone: "eu-West", ssd: "true" },
  });
  const table: Array<[constraint: string, matches: boolean]> = [
    ["node.id==abc123", true],
    ["node.id!=abc123", false],
    ["node.hostname==web-1", true],
    ["node.hostname != web-2", true],
    ["node.role==manager", true],
    ["node.role==worker", false],
    ["node.role!=worker", true],
    ["node.labels.zone==eu-west", true],
    ["node.labels.zone==us-east", false],
    ["node.labels.zone!=us-east", true],
    ["node.labels.ssd==true", true],
    ["node.labels.gpu==true", false],
    ["node.labels.gpu!=true", true],
    ["engine.labels.zone==eu-west", true],
    ["  node.role  ==  manager  ", true],
    ["NODE.ROLE==MANAGER", true],
  ];
  for (const [c, want] of table) {
    test(`${c} → ${want}`, () => assert.equal(matchConstraints([c], n), want));
  }

  test("all constraints must hold", () => {
    assert.equal(matchConstraints(["node.role==manager", "node.labels.ssd==true"], n), true);
    assert.equal(matchConstraints(["node.role==manager", "node.labels.ssd==false"], n), false);
    assert.equal(matchConstraints([], n), true);
  });

  test("parseConstraint", () => {
    assert.deepEqual(parseConstraint("node.labels.zone == a"), {
      key: "node.labels.zone",
      operator: "==",
      value: "a",
    });
    assert.deepEqual(parseConstraint("node.role!=worker").operator, "!=");
  });

  const bad: Array<[string, RegExp]> = [
    ["node.role=manager", /expected one operator from ==, !=/],
    ["node.role", /expected one operator from ==, !=/],
    ["node.foo==bar", /unknown key 'node.foo'/],
    ["node.labels.==x", /unknown key/],
    ["==x", /key '' is invalid/],
    ["node.role==", /value '' is invalid/],
    ["node.role==a&b", /value 'a&b' is invalid/],
  ];
  for (const [c, re] of bad) {
    test(`malformed: ${JSON.stringify(c)}`, () => {
      assert.throws(
        () => parseConstraint(c),
        (err: Error) => {
          assert.match(err.message, re);
          assert.match(err.message, /invalid constraint/);
          return true;
        },
      );
      assert.throws(() => matchConstraints([c], n), re);
    });
  }

  test("a task with a malformed constraint is not constrained (validated at create)", () => {
    const s = service("svc", { spec: { constraints: ["nonsense"] } });
    assert.deepEqual(perNode(schedule(pending(s, 1), [node("n1")], [])), { n1: 1 });
  });
});
