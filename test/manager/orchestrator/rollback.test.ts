// The rollback settings (spec.rollback, Swarm's RollbackConfig) as tables: while a rollback to
// the service's version is under way, the reconciler's workers, order and delay and the update
// status's monitor, ratio and failure action come from them, not from the update settings; at
// any other time the update settings apply. Swarm's defaults when the spec has none.

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { nextWakeup, reconcile } from "../../../src/manager/orchestrator/reconcile.js";
import { updateVerdict } from "../../../src/manager/orchestrator/update-status.js";
import {
  activeUpdateConfig,
  defaultRollbackConfig,
  defaultUpdateConfig,
  type RollbackConfig,
  type Service,
  type Task,
  type UpdateConfig,
  type UpdateStatus,
} from "../../../src/api/types.js";
import { countActions, ids, node, service, T0, task } from "./sim.js";

type State = UpdateStatus["state"];

/** Version 2 of a 3-replica service, in this update state, with these settings. */
function svc(
  state: State | null,
  o: { update?: Partial<UpdateConfig>; rollback?: Partial<RollbackConfig> | null } = {},
  statusVersion = 2,
): Service {
  const s = service("web", {
    replicas: 3,
    version: 2,
    spec: {
      update: { ...defaultUpdateConfig(), ...o.update },
      ...(o.rollback === null ? {} : { rollback: { ...defaultRollbackConfig(), ...o.rollback } }),
    },
  });
  const updateStatus: UpdateStatus | null =
    state === null
      ? null
      : { state, version: statusVersion, startedAt: T0, completedAt: null, message: "" };
  return { ...s, updateStatus };
}

const v1 = service("web", { replicas: 3 });
const v2 = service("web", { replicas: 3, version: 2 });
const run = (s: Service, slot: number, over: Parameters<typeof task>[1] = {}) =>
  task(s, { slot, nodeId: "n1", ...over });
const oldTasks = () => [1, 2, 3].map((i) => run(v1, i));

describe("rollback settings: which settings apply", () => {
  const cases: Array<{ name: string; service: Service; expect: UpdateConfig | RollbackConfig }> = [
    {
      name: "no spec.rollback while rolling back: Swarm's defaults, not the update settings",
      service: svc("rollback_started", { update: { parallelism: 4 }, rollback: null }),
      expect: defaultRollbackConfig(),
    },
    {
      name: "rollback_paused: still the rollback settings",
      service: svc("rollback_paused", { rollback: { delayMs: 7 } }),
      expect: { ...defaultRollbackConfig(), delayMs: 7 },
    },
    {
      name: "updating: the update settings",
      service: svc("updating", { update: { parallelism: 4 }, rollback: { parallelism: 9 } }),
      expect: { ...defaultUpdateConfig(), parallelism: 4 },
    },
    {
      name: "a rollback status of an older version: the update settings",
      service: svc("rollback_started", { update: { parallelism: 4 } }, 1),
      expect: { ...defaultUpdateConfig(), parallelism: 4 },
    },
  ];
  for (const c of cases) {
    test(c.name, () => assert.deepEqual(activeUpdateConfig(c.service), c.expect));
  }
});

describe("rollback settings: the reconciler", () => {
  const cases: Array<{
    name: string;
    service: Service;
    tasks: Task[];
    expect: Record<string, number>;
  }> = [
    {
      name: "rolling back with rollback parallelism 0: every slot at once (update says 1)",
      service: svc("rollback_started", { rollback: { parallelism: 0 } }),
      tasks: oldTasks(),
      expect: { "setDesired:shutdown": 3 },
    },
    {
      name: "rolling back with the default rollback parallelism 1 (update says 0): one slot",
      service: svc("rollback_started", { update: { parallelism: 0 } }),
      tasks: oldTasks(),
      expect: { "setDesired:shutdown": 1 },
    },
    {
      name: "rolling back start-first, parallelism 2: two new tasks beside the old ones",
      service: svc("rollback_started", { rollback: { parallelism: 2, order: "start-first" } }),
      tasks: oldTasks(),
      expect: { create: 2 },
    },
    {
      name: "updating: the rollback settings do not apply",
      service: svc("updating", { rollback: { parallelism: 0, order: "start-first" } }),
      tasks: oldTasks(),
      expect: { "setDesired:shutdown": 1 },
    },
    {
      name: "rolling back with a rollback delay: the worker waits after its task runs",
      service: svc("rollback_started", { rollback: { delayMs: 10_000 } }),
      tasks: [
        run(v1, 1, { desiredState: "shutdown", state: "shutdown" }),
        run(v2, 1, { createdAt: T0 + 1, status: { ...run(v2, 1).status, timestamp: T0 + 500 } }),
        run(v1, 2),
        run(v1, 3),
      ],
      expect: {},
    },
    {
      name: "updating with the same tasks: no update delay, the next slot is taken",
      service: svc("updating", { rollback: { delayMs: 10_000 } }),
      tasks: [
        run(v1, 1, { desiredState: "shutdown", state: "shutdown" }),
        run(v2, 1, { createdAt: T0 + 1, status: { ...run(v2, 1).status, timestamp: T0 + 500 } }),
        run(v1, 2),
        run(v1, 3),
      ],
      expect: { "setDesired:shutdown": 1 },
    },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const input = { services: [c.service], tasks: c.tasks, nodes: [node("n1")], now: T0 + 1000 };
      const actions = reconcile(input, { historyLimit: 5, newTaskId: ids() });
      assert.deepEqual(countActions(actions), c.expect);
    });
  }

  test("the wake-up after a rollback delay comes from the rollback settings", () => {
    const tasks = [run(v2, 1, { status: { ...run(v2, 1).status, timestamp: T0 + 500 } })];
    const input = (s: Service) => ({ services: [s], tasks, nodes: [node("n1")], now: T0 + 1000 });
    assert.equal(
      nextWakeup(input(svc("rollback_started", { rollback: { delayMs: 10_000 } }))),
      T0 + 10_500,
    );
    assert.equal(nextWakeup(input(svc("updating", { rollback: { delayMs: 10_000 } }))), null);
  });
});

describe("rollback settings: the rollback's status", () => {
  /** A new-version task that failed `after` ms after it was created. */
  const failed = (slot: number, after: number) =>
    run(v2, slot, {
      desiredState: "shutdown",
      createdAt: T0 + 1000,
      status: { ...run(v2, slot).status, state: "failed", timestamp: T0 + 1000 + after },
    });
  const cases: Array<{ name: string; service: Service; tasks: Task[]; state: State | null }> = [
    {
      name: "a failed task pauses the rollback (default failure action pause)",
      service: svc("rollback_started", { update: { failureAction: "continue" } }),
      tasks: [failed(1, 300), run(v1, 2), run(v1, 3)],
      state: "rollback_paused",
    },
    {
      name: "rollback failure action continue: the failure is ignored (update says pause)",
      service: svc("rollback_started", { rollback: { failureAction: "continue" } }),
      tasks: [failed(1, 300), run(v1, 2), run(v1, 3)],
      state: null,
    },
    {
      name: "rollback monitor 100ms: a task failing after 300ms is no failure of the rollback",
      service: svc("rollback_started", { rollback: { monitorMs: 100 } }),
      tasks: [failed(1, 300), run(v2, 1, { createdAt: T0 + 2000 }), run(v1, 2), run(v1, 3)],
      state: null,
    },
    {
      name: "rollback max failure ratio 0.5: one failure in three is tolerated",
      service: svc("rollback_started", { rollback: { maxFailureRatio: 0.5 } }),
      tasks: [failed(1, 300), run(v2, 2), run(v2, 3)],
      state: null,
    },
    {
      name: "updating: the rollback's monitor does not apply (the update's 5s does)",
      service: svc("updating", { rollback: { monitorMs: 100 } }),
      tasks: [failed(1, 300), run(v1, 2), run(v1, 3)],
      state: "paused",
    },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const v = updateVerdict(c.service, c.tasks, T0 + 60_000);
      assert.equal(v.rollback, false);
      if (c.state === null) assert.equal(v.status, c.service.updateStatus, "unchanged");
      else assert.equal(v.status?.state, c.state);
    });
  }
});
