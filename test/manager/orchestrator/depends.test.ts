// depends_on as tables: when a service's first start waits (each condition, replicas, a missing
// dependency required or not, a service that already has tasks), and the reconciler following it
// to a fixed point: the dependent gets tasks only after its dependency got there.

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { startBlocker } from "../../../src/manager/orchestrator/depends.js";
import { reconcile } from "../../../src/manager/orchestrator/reconcile.js";
import type { ServiceDependency, Service, Task, TaskState } from "../../../src/api/types.js";
import { node, service, Sim, task } from "./sim.js";

const dependent = (deps: Array<Partial<ServiceDependency> & { service: string }>) =>
  service("web", {
    spec: {
      dependsOn: deps.map((d) => ({ condition: "service_started", required: true, ...d })),
    },
  });

const db2 = service("db", { replicas: 2 });
const dbTask = (state: TaskState, over: Partial<Task> = {}) => task(db2, { state, ...over });
const healthy = { status: "healthy" as const, failingStreak: 0, log: [] };

describe("startBlocker", () => {
  const cases: Array<{
    name: string;
    web: Service;
    services?: Service[];
    tasks: Task[];
    expect: string | null;
  }> = [
    { name: "no dependencies", web: service("web"), tasks: [], expect: null },
    {
      name: "started: no task of db yet",
      web: dependent([{ service: "db" }]),
      tasks: [],
      expect: 'waiting for service "db" to start',
    },
    {
      name: "started: one of two replicas runs",
      web: dependent([{ service: "db" }]),
      tasks: [dbTask("running"), dbTask("assigned", { slot: 2 })],
      expect: 'waiting for service "db" to start',
    },
    {
      name: "started: both run (one still starting its health checks)",
      web: dependent([{ service: "db" }]),
      tasks: [dbTask("running"), dbTask("starting", { slot: 2 })],
      expect: null,
    },
    {
      name: "healthy: a starting task is not healthy yet",
      web: dependent([{ service: "db", condition: "service_healthy" }]),
      tasks: [dbTask("running"), dbTask("starting", { slot: 2 })],
      expect: 'waiting for service "db" to be healthy',
    },
    {
      name: "healthy: both running",
      web: dependent([{ service: "db", condition: "service_healthy" }]),
      tasks: [
        dbTask("running"),
        dbTask("running", {
          slot: 2,
          status: { ...dbTask("running").status, health: healthy },
        }),
      ],
      expect: null,
    },
    {
      name: "healthy: a running task being stopped does not count",
      web: dependent([{ service: "db", condition: "service_healthy" }]),
      tasks: [dbTask("running"), dbTask("running", { slot: 2, desiredState: "shutdown" })],
      expect: 'waiting for service "db" to be healthy',
    },
    {
      name: "completed: exit 0 of both",
      web: dependent([{ service: "db", condition: "service_completed_successfully" }]),
      tasks: [
        dbTask("complete", { status: { ...dbTask("complete").status, exitCode: 0 } }),
        dbTask("complete", { slot: 2, status: { ...dbTask("complete").status, exitCode: 0 } }),
      ],
      expect: null,
    },
    {
      name: "completed: a failed task does not count",
      web: dependent([{ service: "db", condition: "service_completed_successfully" }]),
      tasks: [
        dbTask("complete", { status: { ...dbTask("complete").status, exitCode: 0 } }),
        dbTask("failed", { slot: 2, status: { ...dbTask("failed").status, exitCode: 1 } }),
      ],
      expect: 'waiting for service "db" to complete successfully',
    },
    {
      name: "a missing required dependency waits",
      web: dependent([{ service: "cache" }]),
      tasks: [],
      expect: 'waiting for service "cache", which does not exist',
    },
    {
      name: "a missing optional dependency does not",
      web: dependent([{ service: "cache", required: false }]),
      tasks: [],
      expect: null,
    },
    {
      name: "the first unmet one is named",
      web: dependent([{ service: "db" }, { service: "cache" }]),
      tasks: [dbTask("running"), dbTask("running", { slot: 2 })],
      expect: 'waiting for service "cache", which does not exist',
    },
    {
      name: "a service that already has tasks never waits again",
      web: dependent([{ service: "db", condition: "service_healthy" }]),
      tasks: [task(dependent([]), { state: "failed" })],
      expect: null,
    },
  ];
  for (const c of cases) {
    test(c.name, () => {
      assert.equal(startBlocker(c.web, c.services ?? [c.web, db2], c.tasks), c.expect);
    });
  }
});

describe("reconcile with depends_on", () => {
  test("web's tasks are created only after db's run; a later db failure leaves web alone", () => {
    const db = service("db", { replicas: 1 });
    const web = service("web", {
      replicas: 2,
      spec: { dependsOn: [{ service: "db", condition: "service_started", required: true }] },
    });
    const sim = new Sim([db, web], [node("n1")]);
    // First pass: db gets its task, web none.
    sim.reconcile();
    assert.equal(sim.tasks.filter((t) => t.serviceId === "db").length, 1);
    assert.equal(sim.tasks.filter((t) => t.serviceId === "web").length, 0);
    // The next pass, with db still unplaced, still gives web nothing.
    sim.reconcile();
    assert.equal(sim.tasks.filter((t) => t.serviceId === "web").length, 0);
    // Converged: db runs, then web's two tasks run.
    sim.converge();
    const webTasks = sim.tasks.filter((t) => t.serviceId === "web");
    assert.equal(webTasks.length, 2);
    assert.ok(webTasks.every((t) => t.status.state === "running"));
    const dbRun = sim.tasks.find((t) => t.serviceId === "db")!;
    assert.ok(webTasks.every((t) => t.createdAt >= dbRun.status.timestamp));
    // db fails: web keeps its tasks (only the first start waits).
    sim.now += 1000;
    sim.setState(dbRun, "failed", { exitCode: 1 });
    sim.reconcile();
    assert.equal(
      sim.tasks.filter((t) => t.serviceId === "web" && t.desiredState === "running").length,
      2,
    );
  });
});

describe("reconcile one service at a time (as the manager does)", () => {
  const db = service("db", { replicas: 1 });
  const web = service("web", {
    spec: { dependsOn: [{ service: "db", condition: "service_healthy", required: true }] },
  });
  const opts = { historyLimit: 5, newTaskId: () => "n" };
  const alone = (dbTasks: Task[]) =>
    reconcile(
      {
        services: [web],
        tasks: [],
        nodes: [node("n1")],
        now: 0,
        cluster: { services: [db, web], tasks: dbTasks },
      },
      opts,
    );
  test("the dependency is looked up in the cluster, not in the service's own input", () => {
    assert.deepEqual(alone([]), []);
    assert.equal(
      alone([task(db, { state: "running" })]).filter((a) => a.type === "create").length,
      1,
    );
  });
});
