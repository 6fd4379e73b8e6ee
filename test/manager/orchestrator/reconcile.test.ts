// The reconciler as tables: one pass from a given state → the actions it emits (by count), then
// scenarios iterated to a fixed point with a simulated scheduler and agents: the seed's scale
// transitions, restart policies and delays, max attempts, the window, spec updates, global
// services following nodes, node loss and return, service removal and the history limit.

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  applyActions,
  isLive,
  reconcile,
  type Action,
} from "../../../src/manager/orchestrator/reconcile.js";
import {
  defaultUpdateConfig,
  type Node,
  type Service,
  type ServiceSpec,
  type Task,
  type UpdateConfig,
} from "../../../src/api/types.js";
import { countActions, ids, node, service, Sim, T0, task } from "./sim.js";

function pass(services: Service[], tasks: Task[], nodes: Node[], now = T0): Action[] {
  return reconcile({ services, tasks, nodes, now }, { historyLimit: 5, newTaskId: ids() });
}

/** A spec with these rolling-update settings (the rest Swarm's defaults). */
const upd = (u: Partial<UpdateConfig>): Partial<ServiceSpec> => ({
  update: { ...defaultUpdateConfig(), ...u },
});

describe("reconcile: one pass", () => {
  const web3 = service("web", { replicas: 3 });
  const n1 = node("n1");
  const running = (s: Service, slot: number, over: Parameters<typeof task>[1] = {}) =>
    task(s, { slot, nodeId: "n1", ...over });
  // A rolling update of two slots from version 1 to 2.
  const old2 = service("web", { replicas: 2 });
  const new2 = service("web", { replicas: 2, version: 2 });
  const oldStopped = (slot: number) =>
    running(old2, slot, { desiredState: "shutdown", state: "shutdown" });

  const cases: Array<{
    name: string;
    services: Service[];
    tasks: Task[];
    nodes?: Node[];
    now?: number;
    expect: Record<string, number>;
  }> = [
    {
      name: "converged: nothing",
      services: [web3],
      tasks: [1, 2, 3].map((i) => running(web3, i)),
      expect: {},
    },
    { name: "creation: 3 replicas", services: [web3], tasks: [], expect: { create: 3 } },
    {
      name: "scale 3→1: shut down slots 2 and 3",
      services: [service("web", { replicas: 1 })],
      tasks: [1, 2, 3].map((i) => running(web3, i)),
      expect: { "setDesired:shutdown": 2 },
    },
    {
      name: "scale 2→4: two new slots",
      services: [service("web", { replicas: 4 })],
      tasks: [1, 2].map((i) => running(web3, i)),
      expect: { create: 2 },
    },
    {
      name: "scaled-down tasks that ended are deleted (no history row)",
      services: [service("web", { replicas: 1 })],
      tasks: [
        running(web3, 1),
        running(web3, 2, { desiredState: "shutdown", state: "shutdown" }),
        running(web3, 3, { desiredState: "shutdown", state: "failed" }),
      ],
      expect: { delete: 2 },
    },
    {
      name: "a pending task asked to stop is shut down by the manager",
      services: [service("web", { replicas: 0 })],
      tasks: [task(web3, { slot: 1, desiredState: "shutdown", state: "pending" })],
      expect: { "setStatus:shutdown": 1 },
    },
    {
      name: "restart none: a failed task is not replaced",
      services: [service("web", { restart: { condition: "none" } })],
      tasks: [running(service("web", { restart: { condition: "none" } }), 1, { state: "failed" })],
      expect: { "setDesired:shutdown": 1 },
    },
    {
      name: "on-failure: exit 0 is not restarted",
      services: [service("web", { restart: { condition: "on-failure" } })],
      tasks: [
        running(service("web", { restart: { condition: "on-failure" } }), 1, { state: "complete" }),
      ],
      expect: { "setDesired:shutdown": 1 },
    },
    {
      name: "on-failure: exit 1 is restarted",
      services: [service("web", { restart: { condition: "on-failure" } })],
      tasks: [
        running(service("web", { restart: { condition: "on-failure" } }), 1, { state: "failed" }),
      ],
      expect: { create: 1, "setDesired:shutdown": 1 },
    },
    {
      name: "any: exit 0 is restarted",
      services: [service("web")],
      tasks: [running(service("web"), 1, { state: "complete" })],
      expect: { create: 1, "setDesired:shutdown": 1 },
    },
    {
      name: "restart delay not over: the ready task waits",
      services: [service("web")],
      tasks: [
        running(service("web"), 1, {
          desiredState: "ready",
          notBefore: T0 + 5000,
          state: "assigned",
        }),
      ],
      now: T0 + 4999,
      expect: {},
    },
    {
      name: "restart delay over: ready → running",
      services: [service("web")],
      tasks: [
        running(service("web"), 1, {
          desiredState: "ready",
          notBefore: T0 + 5000,
          state: "assigned",
        }),
      ],
      now: T0 + 5000,
      expect: { "setDesired:running": 1 },
    },
    {
      name: "spec update, defaults (parallelism 1, stop-first): one slot's task is stopped first",
      services: [service("web", { replicas: 2, version: 2 })],
      tasks: [1, 2].map((i) => running(service("web", { replicas: 2 }), i)),
      expect: { "setDesired:shutdown": 1 },
    },
    {
      name: "spec update, parallelism 0: every outdated task is stopped at once",
      services: [service("web", { replicas: 3, version: 2, spec: upd({ parallelism: 0 }) })],
      tasks: [1, 2, 3].map((i) => running(service("web", { replicas: 3 }), i)),
      expect: { "setDesired:shutdown": 3 },
    },
    {
      name: "spec update, parallelism 2, start-first: two new tasks start beside the old ones",
      services: [
        service("web", {
          replicas: 3,
          version: 2,
          spec: upd({ parallelism: 2, order: "start-first" }),
        }),
      ],
      tasks: [1, 2, 3].map((i) => running(service("web", { replicas: 3 }), i)),
      expect: { create: 2 },
    },
    {
      name: "stop-first: the old task is still stopping: the new one waits, no other slot starts",
      services: [new2],
      tasks: [running(old2, 1, { desiredState: "shutdown" }), running(old2, 2)],
      expect: {},
    },
    {
      name: "stop-first: the old task has ended: its replacement is created",
      services: [new2],
      tasks: [oldStopped(1), running(old2, 2)],
      expect: { create: 1 },
    },
    {
      name: "the replacement is starting: the next slot waits for the worker",
      services: [new2],
      tasks: [
        oldStopped(1),
        running(new2, 1, {
          state: "starting",
          createdAt: T0 + 1,
        }),
        running(old2, 2),
      ],
      expect: {},
    },
    {
      name: "health check: the replacement runs but is not healthy yet (starting): the next slot waits",
      services: [new2],
      tasks: [
        oldStopped(1),
        running(new2, 1, {
          state: "starting",
          createdAt: T0 + 1,
          status: {
            ...running(new2, 1).status,
            state: "starting",
            pid: 42,
            health: { status: "starting", failingStreak: 2, log: [] },
          },
        }),
        running(old2, 2),
      ],
      now: T0 + 3_600_000,
      expect: {},
    },
    {
      name: "health check: start-first, the new task is not healthy yet: the old one keeps running",
      services: [service("web", { version: 2, spec: upd({ order: "start-first" }) })],
      tasks: [
        running(service("web"), 1),
        running(service("web", { version: 2 }), 1, {
          createdAt: T0 + 1,
          status: {
            ...running(new2, 1).status,
            state: "starting",
            health: { status: "starting", failingStreak: 0, log: [] },
          },
        }),
      ],
      expect: {},
    },
    {
      name: "the replacement runs, no delay: the worker takes the next slot",
      services: [new2],
      tasks: [oldStopped(1), running(new2, 1, { createdAt: T0 + 1 }), running(old2, 2)],
      expect: { "setDesired:shutdown": 1 },
    },
    {
      name: "update delay 10 s: the next slot waits until 10 s after the replacement ran",
      services: [service("web", { replicas: 2, version: 2, spec: upd({ delayMs: 10_000 }) })],
      tasks: [oldStopped(1), running(new2, 1, { createdAt: T0 + 1 }), running(old2, 2)],
      now: T0 + 9_999,
      expect: {},
    },
    {
      name: "update delay over: the next slot",
      services: [service("web", { replicas: 2, version: 2, spec: upd({ delayMs: 10_000 }) })],
      tasks: [oldStopped(1), running(new2, 1, { createdAt: T0 + 1 }), running(old2, 2)],
      now: T0 + 10_000,
      expect: { "setDesired:shutdown": 1 },
    },
    {
      name: "start-first: the new task does not run yet: the old one keeps running",
      services: [service("web", { version: 2, spec: upd({ order: "start-first" }) })],
      tasks: [
        running(service("web"), 1),
        running(service("web", { version: 2 }), 1, { state: "starting", createdAt: T0 + 1 }),
      ],
      expect: {},
    },
    {
      name: "start-first: the new task runs: the old one is stopped",
      services: [service("web", { version: 2, spec: upd({ order: "start-first" }) })],
      tasks: [
        running(service("web"), 1),
        running(service("web", { version: 2 }), 1, { createdAt: T0 + 1 }),
      ],
      expect: { "setDesired:shutdown": 1 },
    },
    {
      name: "node down: orphan, handle the end, replace",
      services: [service("web")],
      tasks: [running(service("web"), 1)],
      nodes: [node("n1", { status: "down" })],
      expect: { "setStatus:orphaned": 1, "setDesired:shutdown": 1, create: 1 },
    },
    {
      name: "node removed from the cluster: orphan and replace",
      services: [service("web")],
      tasks: [running(service("web"), 1, { nodeId: "gone" })],
      expect: { "setStatus:orphaned": 1, "setDesired:shutdown": 1, create: 1 },
    },
    {
      name: "two live tasks in a slot: the older is shut down",
      services: [service("web")],
      tasks: [running(service("web"), 1), running(service("web"), 1, { createdAt: T0 + 1 })],
      expect: { "setDesired:shutdown": 1 },
    },
    {
      name: "drained node: shut down and replace",
      services: [service("web")],
      tasks: [running(service("web"), 1)],
      nodes: [node("n1", { availability: "drain" })],
      expect: { "setDesired:shutdown": 1, create: 1 },
    },
    {
      name: "paused node: keep",
      services: [service("web")],
      tasks: [running(service("web"), 1)],
      nodes: [node("n1", { availability: "pause" })],
      expect: {},
    },
    {
      name: "service removed: live shut down, ended deleted",
      services: [],
      tasks: [running(web3, 1), running(web3, 2, { state: "failed" })],
      expect: { "setDesired:shutdown": 1, delete: 1 },
    },
    {
      name: "history limit 5: the two oldest of 7 ended tasks are deleted",
      services: [service("web")],
      tasks: [
        ...[1, 2, 3, 4, 5, 6, 7].map((i) =>
          running(service("web"), 1, {
            createdAt: T0 + i,
            desiredState: "shutdown",
            state: "failed",
          }),
        ),
        running(service("web"), 1, { createdAt: T0 + 8 }),
      ],
      expect: { delete: 2 },
    },
  ];

  for (const c of cases) {
    test(c.name, () => {
      const actions = pass(c.services, c.tasks, c.nodes ?? [n1], c.now);
      assert.deepEqual(countActions(actions), c.expect);
      // Applying the actions and reconciling again never repeats them.
      const after = applyActions({ tasks: c.tasks }, actions, c.now ?? T0);
      const again = pass(c.services, after, c.nodes ?? [n1], c.now ?? T0);
      for (const a of again) {
        assert.ok(
          !actions.some((b) => b.type !== "create" && JSON.stringify(b) === JSON.stringify(a)),
          `repeated action ${JSON.stringify(a)}`,
        );
      }
    });
  }

  test("created tasks: replicated ones unplaced with desired running, slots 1..N", () => {
    const actions = pass([web3], [], [n1]);
    const created = actions.flatMap((a) => (a.type === "create" ? [a.task] : []));
    assert.deepEqual(
      created.map((t) => [t.slot, t.nodeId, t.desiredState, t.status.state, t.specVersion]),
      [
        [1, "", "running", "new", 1],
        [2, "", "running", "new", 1],
        [3, "", "running", "new", 1],
      ],
    );
  });

  test("scale-down stops the highest slots", () => {
    const tasks = [1, 2, 3, 4, 5].map((i) => running(web3, i));
    const actions = pass([service("web", { replicas: 2 })], tasks, [n1]);
    const stopped = actions.map((a) =>
      a.type === "setDesired" ? tasks.find((t) => t.id === a.taskId)!.slot : 0,
    );
    assert.deepEqual(stopped.sort(), [3, 4, 5]);
  });

  test("a restart replacement waits in ready until lastEnd + delay", () => {
    const s = service("web", { restart: { delayMs: 5000 } });
    const failed = running(s, 1, { state: "failed" });
    failed.status.timestamp = T0 - 1000;
    const created = pass([s], [failed], [n1]).flatMap((a) => (a.type === "create" ? [a.task] : []));
    assert.equal(created.length, 1);
    assert.equal(created[0]!.desiredState, "ready");
    assert.equal(created[0]!.notBefore, T0 + 4000);
    assert.equal(created[0]!.slot, 1);
  });

  test("applyActions is pure", () => {
    const tasks = [running(web3, 1)];
    const frozen = JSON.stringify(tasks);
    const out = applyActions(
      { tasks },
      [{ type: "setDesired", taskId: tasks[0]!.id, desired: "shutdown", reason: "x" }],
      T0,
    );
    assert.equal(JSON.stringify(tasks), frozen);
    assert.equal(out[0]!.desiredState, "shutdown");
  });
});

describe("reconcile: scenarios to a fixed point", () => {
  const nodes3 = () => [node("n1"), node("n2"), node("n3")];

  test("the seed's transitions: 3→1 and 2→4 at once, then 1→2 and 4→0", () => {
    const sim = new Sim([service("a", { replicas: 3 }), service("b", { replicas: 2 })], nodes3());
    sim.converge();
    assert.equal(sim.running("a").length, 3);
    assert.equal(sim.running("b").length, 2);

    const table: Array<[a: number, b: number]> = [
      [1, 4],
      [2, 0],
      [3, 2],
    ];
    for (const [a, b] of table) {
      sim.setReplicas("a", a);
      sim.setReplicas("b", b);
      sim.converge();
      assert.equal(sim.running("a").length, a, `a=${a}`);
      assert.equal(sim.running("b").length, b, `b=${b}`);
      // Scaled-down tasks leave no history rows: every task left is live.
      assert.equal(sim.of("a").length, a);
      assert.equal(sim.of("b").length, b);
      assert.deepEqual(
        sim
          .live("a")
          .map((t) => t.slot)
          .sort(),
        Array.from({ length: a }, (_, i) => i + 1),
      );
    }
  });

  test("creation spreads over the nodes", () => {
    const sim = new Sim([service("web", { replicas: 6 })], nodes3());
    sim.converge();
    const per = new Map<string, number>();
    for (const t of sim.running("web")) per.set(t.nodeId, (per.get(t.nodeId) ?? 0) + 1);
    assert.deepEqual([...per.values()], [2, 2, 2]);
  });

  const policies: Array<{
    condition: "none" | "on-failure" | "any";
    code: number;
    restarts: boolean;
  }> = [
    { condition: "none", code: 1, restarts: false },
    { condition: "none", code: 0, restarts: false },
    { condition: "on-failure", code: 0, restarts: false },
    { condition: "on-failure", code: 1, restarts: true },
    { condition: "any", code: 0, restarts: true },
    { condition: "any", code: 1, restarts: true },
  ];
  for (const p of policies) {
    test(`restart condition ${p.condition}, exit ${p.code}: ${p.restarts ? "restarted" : "not restarted"}`, () => {
      const sim = new Sim(
        [service("job", { restart: { condition: p.condition, delayMs: 0 } })],
        nodes3(),
      );
      sim.converge();
      const first = sim.running("job")[0]!;
      sim.exit(first, p.code);
      sim.converge();
      assert.equal(sim.running("job").length, p.restarts ? 1 : 0);
      assert.equal(sim.of("job").length, p.restarts ? 2 : 1);
      // The ended task shows desired Shutdown, as Swarm's `service ps` does.
      assert.equal(sim.get(first.id).desiredState, "shutdown");
      // Much later, still the same: the decision is made once.
      sim.now += 3_600_000;
      assert.deepEqual(sim.reconcile(), []);
    });
  }

  test("restart delay: ready while waiting, running once it passes", () => {
    const sim = new Sim([service("web", { restart: { delayMs: 5000 } })], nodes3());
    sim.converge();
    const first = sim.running("web")[0]!;
    sim.now += 1000;
    sim.exit(first, 137);
    const end = sim.now;
    sim.reconcile();
    sim.schedule();
    sim.agents();
    const repl = sim.live("web")[0]!;
    assert.equal(repl.desiredState, "ready");
    assert.equal(repl.notBefore, end + 5000);
    assert.equal(repl.status.state, "assigned", "placed but not started");
    sim.now = end + 4999;
    assert.deepEqual(sim.reconcile(), []);
    sim.now = end + 5000;
    assert.deepEqual(countActions(sim.reconcile()), { "setDesired:running": 1 });
    sim.agents();
    assert.equal(sim.get(repl.id).status.state, "running");
  });

  test("on-failure with max attempts 3: exactly 4 failed tasks, then nothing", () => {
    const sim = new Sim(
      [service("crash", { restart: { condition: "on-failure", maxAttempts: 3, delayMs: 5000 } })],
      nodes3(),
    );
    sim.converge();
    for (let i = 0; i < 10; i++) {
      const t = sim.running("crash")[0];
      if (!t) break;
      sim.now += 1000;
      sim.exit(t, 1);
      sim.converge();
    }
    const all = sim.of("crash");
    assert.equal(all.length, 4);
    assert.ok(all.every((t) => t.status.state === "failed" && t.desiredState === "shutdown"));
    assert.equal(sim.live("crash").length, 0);
    sim.now += 86_400_000;
    assert.deepEqual(sim.reconcile(), [], "a day later: still given up");
  });

  test("a spec update gives a given-up slot a fresh start", () => {
    const sim = new Sim([service("crash", { restart: { condition: "none" } })], nodes3());
    sim.converge();
    sim.exit(sim.running("crash")[0]!, 1);
    sim.converge();
    assert.equal(sim.live("crash").length, 0);
    sim.updateSpec("crash", { env: { FORCE: "1" } });
    sim.converge();
    assert.equal(sim.running("crash").length, 1);
    assert.equal(sim.running("crash")[0]!.specVersion, 2);
  });

  test("window: attempts only count within it", () => {
    const policy = { condition: "any" as const, maxAttempts: 2, windowMs: 10_000, delayMs: 0 };
    // Failures 20 s apart: never more than one in the window, restarted every time.
    const slow = new Sim([service("slow", { restart: policy })], nodes3());
    slow.converge();
    for (let i = 0; i < 6; i++) {
      slow.now += 20_000;
      slow.exit(slow.running("slow")[0]!, 1);
      slow.converge();
      assert.equal(slow.running("slow").length, 1, `failure ${i + 1} restarted`);
    }
    // Failures 1 s apart: 1 + 2 tasks, then it stops.
    const fast = new Sim([service("fast", { restart: policy })], nodes3());
    fast.converge();
    for (let i = 0; i < 6; i++) {
      const t = fast.running("fast")[0];
      if (!t) break;
      fast.now += 1000;
      fast.exit(t, 1);
      fast.converge();
    }
    assert.equal(fast.of("fast").length, 3);
    assert.equal(fast.live("fast").length, 0);
  });

  test("spec update replaces every task, the old ones stay as history", () => {
    const sim = new Sim([service("web", { replicas: 3 })], nodes3());
    sim.converge();
    const old = sim.running("web").map((t) => t.id);
    sim.updateSpec("web", { env: { V: "2" } });
    sim.converge();
    assert.equal(sim.running("web").length, 3);
    assert.ok(sim.running("web").every((t) => t.specVersion === 2 && !old.includes(t.id)));
    assert.deepEqual(
      old.map((id) => [sim.get(id).desiredState, sim.get(id).status.state]),
      old.map(() => ["shutdown", "shutdown"]),
    );
    assert.deepEqual(
      sim
        .running("web")
        .map((t) => t.slot)
        .sort(),
      [1, 2, 3],
    );
  });

  test("global: follows node join, drain, pause, constraints and leave", () => {
    const sim = new Sim(
      [service("agent", { global: true, spec: { constraints: ["node.role!=manager"] } })],
      [node("n1"), node("n2"), node("m1", { role: "manager" })],
    );
    const liveOn = () =>
      sim
        .live("agent")
        .map((t) => t.nodeId)
        .sort();
    sim.converge();
    assert.deepEqual(liveOn(), ["n1", "n2"]);

    sim.nodes = [...sim.nodes, node("n3")];
    sim.converge();
    assert.deepEqual(liveOn(), ["n1", "n2", "n3"], "join");

    sim.setNode("n3", { availability: "drain" });
    sim.converge();
    assert.deepEqual(liveOn(), ["n1", "n2"], "drain moves away");

    sim.setNode("n2", { availability: "pause" });
    sim.converge();
    assert.deepEqual(liveOn(), ["n1", "n2"], "pause keeps");

    sim.nodes = [...sim.nodes, node("n4", { availability: "pause" })];
    sim.converge();
    assert.deepEqual(liveOn(), ["n1", "n2"], "pause places nothing new");

    sim.setNode("n3", { availability: "active" });
    sim.setNode("n4", { availability: "active" });
    sim.converge();
    assert.deepEqual(liveOn(), ["n1", "n2", "n3", "n4"], "back to active");

    sim.setNode("n1", { labels: {}, role: "manager" });
    sim.converge();
    assert.deepEqual(liveOn(), ["n2", "n3", "n4"], "constraint no longer met");

    sim.nodes = sim.nodes.filter((n) => n.id !== "n4");
    sim.converge();
    assert.deepEqual(liveOn(), ["n2", "n3"], "leave");
    assert.equal(sim.of("agent").filter((t) => t.nodeId === "n4").length, 0, "its tasks are gone");
    assert.ok(sim.running("agent").every((t) => t.slot === 0));
  });

  test("global with the docker driver: only on nodes that have it, following them", () => {
    const sim = new Sim(
      [service("boxed", { global: true, spec: { driver: "docker", image: "busybox" } })],
      [node("n1", { drivers: ["process", "docker"] }), node("n2", { drivers: ["process"] })],
    );
    const liveOn = () =>
      sim
        .live("boxed")
        .map((t) => t.nodeId)
        .sort();
    sim.converge();
    assert.deepEqual(liveOn(), ["n1"]);
    sim.setNode("n2", { drivers: ["process", "docker"] });
    sim.converge();
    assert.deepEqual(liveOn(), ["n1", "n2"], "an engine appeared on n2");
  });

  test("global: a failed task on its node is restarted there after the delay", () => {
    const sim = new Sim(
      [service("agent", { global: true, restart: { delayMs: 5000 } })],
      [node("n1")],
    );
    sim.converge();
    const t = sim.running("agent")[0]!;
    sim.exit(t, 1);
    sim.converge();
    const [r] = sim.running("agent");
    assert.ok(r && r.id !== t.id && r.nodeId === "n1");
    assert.equal(sim.now, t.status.timestamp + 5000);
  });

  test("node down: orphaned and replaced; node back: duplicates shut down", () => {
    const sim = new Sim([service("web", { replicas: 3, restart: { delayMs: 5000 } })], nodes3());
    let maxLive = 0;
    sim.onPass = (s) => (maxLive = Math.max(maxLive, s.live("web").length));
    sim.converge();
    const lost = sim.running("web").find((t) => t.nodeId === "n1")!;

    sim.setNode("n1", { status: "down" });
    sim.reconcile();
    const next = sim.tasks.find((t) => t.slot === lost.slot && t.id !== lost.id)!;
    assert.equal(next.desiredState, "running", "no restart delay for a task lost with its node");
    sim.converge();
    assert.equal(sim.get(lost.id).status.state, "orphaned");
    assert.equal(sim.get(lost.id).status.message, "node is down");
    assert.equal(sim.running("web").length, 3);
    assert.ok(sim.running("web").every((t) => t.nodeId !== "n1"));
    const repl = sim.running("web").find((t) => t.slot === lost.slot)!;

    // The node returns and its agent still runs the old task; suppose its report gets through
    // and revives it: the slot now has two live tasks.
    sim.setNode("n1", { status: "ready" });
    sim.tasks = sim.tasks.map((t) =>
      t.id === lost.id
        ? { ...t, desiredState: "running", status: { ...t.status, state: "running" } }
        : t,
    );
    assert.deepEqual(countActions(sim.reconcile()), { "setDesired:shutdown": 1 });
    assert.equal(sim.get(lost.id).desiredState, "shutdown", "the older one goes");
    assert.equal(sim.get(repl.id).desiredState, "running", "the newest stays");
    sim.converge();
    assert.equal(sim.running("web").length, 3);
    assert.ok(maxLive <= 3, `never more live than desired after a pass (saw ${maxLive})`);
  });

  test("service removed: tasks shut down, then deleted", () => {
    const sim = new Sim([service("web", { replicas: 3 }), service("other")], nodes3());
    sim.converge();
    sim.services = sim.services.filter((s) => s.id !== "web");
    sim.converge();
    assert.equal(sim.of("web").length, 0);
    assert.equal(sim.running("other").length, 1);
  });

  test("history limit: a crash loop keeps 5 ended tasks per slot", () => {
    const sim = new Sim([service("loop", { replicas: 2, restart: { delayMs: 0 } })], nodes3());
    sim.converge();
    for (let i = 0; i < 12; i++) {
      sim.now += 100;
      sim.exit(
        sim.running("loop").find((t) => t.slot === 1)!,
        1,
      );
      sim.converge();
    }
    const slot1 = sim.of("loop").filter((t) => t.slot === 1);
    assert.equal(slot1.filter((t) => isLive(t)).length, 1);
    const history = slot1.filter((t) => !isLive(t));
    assert.equal(history.length, 5);
    // The newest five were kept.
    const newest = Math.max(...history.map((t) => t.createdAt));
    assert.ok(history.every((t) => t.createdAt >= newest - 4 * 100));
    assert.equal(sim.of("loop").filter((t) => t.slot === 2).length, 1);
  });
});
