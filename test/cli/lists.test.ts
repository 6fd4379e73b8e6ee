// Unit tests of the list commands' rows, Docker's field names, and --filter.

import { test } from "node:test";
import assert from "node:assert/strict";
import { applyFilters, parseFilters, labelMatches } from "../../src/cli/filter.js";
import {
  serviceRows,
  taskRows,
  SERVICE_FILTERS,
  TASK_FILTERS,
  SERVICE_LS_FORMAT,
  SERVICE_PS_FORMAT,
  type TaskWithNode,
} from "../../src/cli/service.js";
import { nodeRows, NODE_FILTERS, NODE_LS_FORMAT, roleChangeLine } from "../../src/cli/node.js";
import { renderRows } from "../../src/cli/template.js";
import { UsageError } from "../../src/cli/errors.js";
import {
  defaultServiceSpec,
  type Node,
  type Service,
  type ServiceSpec,
  type Task,
} from "../../src/api/types.js";

type Summary = Service & { running: number; desired: number };

function svc(id: string, name: string, patch: Partial<ServiceSpec> = {}, running = 1): Summary {
  const spec = { ...defaultServiceSpec(name), command: ["sleep", "100"], ...patch };
  return {
    id,
    spec,
    version: 1,
    previousSpec: null,
    createdAt: 0,
    updatedAt: 0,
    running,
    desired: "replicated" in spec.mode ? spec.mode.replicated.replicas : 1,
  };
}

const services = [
  svc("bbbbbbbbbbbbbbbbbbbbbbbbb", "web", {
    labels: { tier: "front" },
    ports: [{ published: 8080, target: 8000, protocol: "tcp", mode: "ingress" }],
  }),
  svc("aaaaaaaaaaaaaaaaaaaaaaaaa", "db", { mode: { global: {} } }, 2),
  svc("ccccccccccccccccccccccccc", "web-admin", { labels: { tier: "back" } }),
];

test("service ls rows: Docker's fields, sorted by name", () => {
  const rows = serviceRows(services);
  assert.deepEqual(rows[0], {
    ID: "aaaaaaaaaaaa",
    Name: "db",
    Mode: "global",
    Replicas: "2/1",
    Image: "sleep 100",
    Ports: "",
  });
  assert.deepEqual(
    rows.map((r) => r["Name"]),
    ["db", "web", "web-admin"],
  );
  assert.equal(rows[1]!["Ports"], "*:8080->8000/tcp");
  const table = renderRows(rows, undefined, SERVICE_LS_FORMAT);
  assert.match(table, /^ID\s+NAME\s+MODE\s+REPLICAS\s+IMAGE\/COMMAND\s+PORTS\n/);
  assert.match(table, /^bbbbbbbbbbbb\s+web\s+replicated\s+1\/1\s+sleep 100\s+\*:8080->8000\/tcp$/m);
  assert.equal(
    renderRows(rows, "{{.Name}} {{.Mode}}", SERVICE_LS_FORMAT),
    "db global\nweb replicated\nweb-admin replicated\n",
  );
});

test("service ls filters: id and name prefixes, label, mode; one key ORs, keys AND", () => {
  const names = (...f: string[]) =>
    applyFilters(services, parseFilters(f, SERVICE_FILTERS, "service ls"), SERVICE_FILTERS).map(
      (s) => s.spec.name,
    );
  assert.deepEqual(names(), ["web", "db", "web-admin"]);
  assert.deepEqual(names("name=web"), ["web", "web-admin"]);
  assert.deepEqual(names("name=db", "name=web-"), ["db", "web-admin"]);
  assert.deepEqual(names("name=web", "label=tier=back"), ["web-admin"]);
  assert.deepEqual(names("label=tier"), ["web", "web-admin"]);
  assert.deepEqual(names("mode=global"), ["db"]);
  assert.deepEqual(names("id=bbb"), ["web"]);
  assert.throws(
    () => names("mode=sometimes"),
    /invalid filter 'mode=sometimes': replicated or global/,
  );
  assert.throws(
    () => names("colour=red"),
    (e: unknown) =>
      e instanceof UsageError &&
      e.message === "Invalid filter 'colour' (service ls filters by id, name, label, mode)",
  );
  assert.throws(() => names("name"), /bad format of filter \(expected name=value\)/);
});

test("labelMatches: key alone, key=value, an empty value", () => {
  assert.ok(labelMatches({ a: "1" }, "a"));
  assert.ok(labelMatches({ a: "1" }, "a=1"));
  assert.ok(!labelMatches({ a: "1" }, "a=2"));
  assert.ok(!labelMatches({ a: "1" }, "b"));
  assert.ok(labelMatches({ a: "" }, "a="));
});

const NOW = 1_000_000_000;

function task(
  id: string,
  slot: number,
  p: Partial<Task> & { state?: Task["status"]["state"]; err?: string; age?: number } = {},
): Task {
  const { state = "running", err = "", age = 120_000, ...rest } = p;
  return {
    id,
    serviceId: "s1",
    serviceName: "web",
    slot,
    nodeId: "nodeaaaaaaaaaaaaaaaaaaaaa",
    specVersion: 1,
    spec: { ...defaultServiceSpec("web"), command: ["sleep", "100"] },
    desiredState: "running",
    status: {
      state,
      timestamp: NOW - age,
      message: "",
      err,
      exitCode: null,
      pid: null,
      containerId: null,
    },
    hostPorts: {},
    notBefore: 0,
    createdAt: NOW - age,
    updatedAt: NOW - age,
    ...rest,
  };
}

const n1 = { id: "nodeaaaaaaaaaaaaaaaaaaaaa", hostname: "vm1" } as Node;
const tasks: TaskWithNode[] = [
  { task: task("t1aaaaaaaaaaaaaaaaaaaaaaa", 1), node: n1 },
  {
    task: task("t0aaaaaaaaaaaaaaaaaaaaaaa", 1, {
      state: "failed",
      desiredState: "shutdown",
      err: "task: non-zero exit (137) because it was killed",
      age: 300_000,
    }),
    node: n1,
  },
  { task: task("t2aaaaaaaaaaaaaaaaaaaaaaa", 2, { hostPorts: { "8000": 31000 } }), node: n1 },
];

test("service ps rows: newest per slot, history as \\_, errors quoted and truncated", () => {
  const rows = taskRows(tasks, { now: NOW });
  assert.deepEqual(
    rows.map((r) => [r["ID"], r["Name"], r["DesiredState"], r["CurrentState"], r["Error"]]),
    [
      ["t1aaaaaaaaaa", "web.1", "Running", "Running 2 minutes ago", ""],
      [
        "t0aaaaaaaaaa",
        " \\_ web.1",
        "Shutdown",
        "Failed 5 minutes ago",
        '"task: non-zero exit (137) b…"',
      ],
      ["t2aaaaaaaaaa", "web.2", "Running", "Running 2 minutes ago", ""],
    ],
  );
  assert.equal(rows[2]!["Ports"], "*:31000->8000/tcp");
  assert.equal(rows[0]!["Node"], "vm1");
  const full = taskRows(tasks, { now: NOW, noTrunc: true });
  assert.equal(full[1]!["ID"], "t0aaaaaaaaaaaaaaaaaaaaaaa");
  assert.equal(full[1]!["Error"], '"task: non-zero exit (137) because it was killed"');
  assert.match(
    renderRows(rows, undefined, SERVICE_PS_FORMAT),
    /^ID\s+NAME\s+IMAGE\/COMMAND\s+NODE\s+DESIRED STATE\s+CURRENT STATE\s+ERROR\s+PORTS\n/,
  );
});

test("service ps filters: id, name, node (id or hostname), desired-state", () => {
  const ids = (...f: string[]) =>
    applyFilters(tasks, parseFilters(f, TASK_FILTERS, "service ps"), TASK_FILTERS).map((x) =>
      x.task.id.slice(0, 2),
    );
  assert.deepEqual(ids("desired-state=running"), ["t1", "t2"]);
  assert.deepEqual(ids("desired-state=shutdown"), ["t0"]);
  assert.deepEqual(ids("name=web.2"), ["t2"]);
  assert.deepEqual(ids("id=t0"), ["t0"]);
  assert.deepEqual(ids("node=vm1", "name=web.1"), ["t1", "t0"]);
  assert.deepEqual(ids("node=nodeaaa"), ["t1", "t0", "t2"]);
  assert.deepEqual(ids("node=vm2"), []);
  assert.throws(
    () => ids("desired-state=asleep"),
    /invalid filter 'desired-state=asleep': running, shutdown, accepted/,
  );
});

function node(
  p: Pick<Node, "id" | "hostname" | "role" | "availability" | "status" | "labels">,
): Node {
  return {
    ...p,
    addr: "10.0.0.1",
    resources: { nanoCpus: 1, memoryBytes: 1 },
    engineVersion: "0.1.0",
    lastSeen: 0,
    createdAt: 0,
    updatedAt: 0,
  };
}

const nodes: Node[] = [
  node({
    id: "m1aaaaaaaaaaaaaaaaaaaaaaa",
    hostname: "manager-1",
    role: "manager",
    availability: "active",
    status: "ready",
    labels: { zone: "a" },
  }),
  node({
    id: "w1aaaaaaaaaaaaaaaaaaaaaaa",
    hostname: "worker-1",
    role: "worker",
    availability: "drain",
    status: "down",
    labels: {},
  }),
];

test("node ls rows, the self marker in the default table, and filters", () => {
  const rows = nodeRows(nodes, nodes[0]!.id);
  assert.deepEqual(rows[1], {
    ID: "w1aaaaaaaaaaaaaaaaaaaaaaa",
    Self: false,
    Hostname: "worker-1",
    Status: "Down",
    Availability: "Drain",
    ManagerStatus: "",
    EngineVersion: "0.1.0",
    TLSStatus: "Ready",
  });
  const table = renderRows(rows, undefined, NODE_LS_FORMAT);
  assert.match(table, /^ID\s+HOSTNAME\s+STATUS\s+AVAILABILITY\s+MANAGER STATUS\s+ENGINE VERSION\n/);
  assert.match(table, /^m1a{23} \*\s+manager-1\s+Ready\s+Active\s+Leader\s+0\.1\.0$/m);
  assert.match(table, /^w1a{23} {2}\s+worker-1\s+Down\s+Drain\s+0\.1\.0$/m);
  assert.equal(
    renderRows(rows, "{{.Hostname}}:{{.ManagerStatus}}", NODE_LS_FORMAT),
    "manager-1:Leader\nworker-1:\n",
  );
  const host = (...f: string[]) =>
    applyFilters(nodes, parseFilters(f, NODE_FILTERS, "node ls"), NODE_FILTERS).map(
      (n) => n.hostname,
    );
  assert.deepEqual(host("role=worker"), ["worker-1"]);
  assert.deepEqual(host("name=manager"), ["manager-1"]);
  assert.deepEqual(host("label=zone=a"), ["manager-1"]);
  assert.deepEqual(host("membership=accepted"), ["manager-1", "worker-1"]);
  assert.deepEqual(host("membership=pending"), []);
  assert.deepEqual(host("id=w1"), ["worker-1"]);
  assert.throws(() => host("role=boss"), /invalid filter 'role=boss': manager or worker/);
});

test("service ps: a task's health in CURRENT STATE as docker ps shows it", () => {
  const withHealth = (
    id: string,
    state: "starting" | "running" | "failed",
    status: "starting" | "healthy" | "unhealthy",
  ): TaskWithNode => {
    const t = task(id, 1, { state });
    t.status.health = { status, failingStreak: 0, log: [] };
    return { task: t, node: n1 };
  };
  const table: Array<[TaskWithNode, string]> = [
    [withHealth("h1", "starting", "starting"), "Starting 2 minutes ago (health: starting)"],
    [withHealth("h2", "running", "healthy"), "Running 2 minutes ago (healthy)"],
    [withHealth("h3", "running", "unhealthy"), "Running 2 minutes ago (unhealthy)"],
    [withHealth("h4", "failed", "unhealthy"), "Failed 2 minutes ago"],
    [{ task: task("h5", 1), node: n1 }, "Running 2 minutes ago"],
  ];
  for (const [x, want] of table) {
    assert.equal(taskRows([x], { now: NOW })[0]!["CurrentState"], want, x.task.id);
  }
});

test("node promote/demote print docker/cli's lines; a node already in the role is left alone", () => {
  const cases: [
    string,
    { id: string; role: "manager" | "worker" },
    "manager" | "worker",
    boolean,
    string,
  ][] = [
    [
      "w1",
      { id: "abc123", role: "worker" },
      "manager",
      true,
      "Node w1 promoted to a manager in the swarm.\n",
    ],
    [
      "m1",
      { id: "def456", role: "manager" },
      "manager",
      false,
      "Node def456 is already a manager.\n",
    ],
    ["m1", { id: "def456", role: "manager" }, "worker", true, "Manager m1 demoted in the swarm.\n"],
    ["w1", { id: "abc123", role: "worker" }, "worker", false, "Node abc123 is already a worker.\n"],
  ];
  for (const [ref, node, role, change, line] of cases) {
    assert.deepEqual(roleChangeLine(ref, node, role), { change, line }, `${ref} → ${role}`);
  }
});
