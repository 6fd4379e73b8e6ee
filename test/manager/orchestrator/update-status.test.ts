// The rolling update's status (src/manager/orchestrator/update-status.ts) as a table: from a
// service at version 2 with an update status and its tasks, the status it should have now and
// whether the manager must roll back.

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { updateVerdict } from "../../../src/manager/orchestrator/update-status.js";
import {
  defaultUpdateConfig,
  type Service,
  type Task,
  type UpdateConfig,
  type UpdateStatus,
} from "../../../src/api/types.js";
import { service, T0, task } from "./sim.js";

const NOW = T0 + 60_000;

function svc(state: UpdateStatus["state"] | null, u: Partial<UpdateConfig> = {}, version = 2) {
  const s = service("web", {
    replicas: 3,
    version,
    spec: { update: { ...defaultUpdateConfig(), ...u } },
  });
  const status: UpdateStatus | null =
    state === null
      ? null
      : { state, version: 2, startedAt: T0, completedAt: null, message: "update in progress" };
  return { ...s, updateStatus: status };
}

const v1 = service("web", { replicas: 3 });
const v2 = service("web", { replicas: 3, version: 2 });
const run = (s: Service, slot: number, over: Partial<Task> = {}) =>
  task(s, { slot, nodeId: "n1", ...over });
/** A new-version task that failed `after` ms after it was created. */
const failed = (slot: number, after: number) =>
  run(v2, slot, {
    desiredState: "shutdown",
    createdAt: T0 + 1000,
    status: { ...run(v2, slot).status, state: "failed", timestamp: T0 + 1000 + after },
  });

/** A new-version task failed "unhealthy" `after` ms after it was created, with these results. */
const unhealthy = (slot: number, after: number, codes: number[]) => {
  const t = failed(slot, after);
  t.status = {
    ...t.status,
    err: "unhealthy",
    health: {
      status: "unhealthy",
      failingStreak: codes.length - codes.lastIndexOf(0) - 1,
      log: codes.map((exitCode, i) => ({ start: i, end: i, exitCode, output: "" })),
    },
  };
  return t;
};

const cases: Array<{
  name: string;
  service: Service;
  tasks: Task[];
  state: UpdateStatus["state"] | null | "unchanged";
  rollback?: boolean;
  message?: RegExp;
}> = [
  {
    name: "never updated: no status",
    service: svc(null),
    tasks: [1, 2, 3].map((i) => run(v2, i)),
    state: "unchanged",
  },
  {
    name: "updating, two slots to go: still updating",
    service: svc("updating"),
    tasks: [run(v2, 1), run(v1, 2), run(v1, 3)],
    state: "unchanged",
  },
  {
    name: "every live task new and running: completed",
    service: svc("updating"),
    tasks: [1, 2, 3].map((i) => run(v2, i)),
    state: "completed",
    message: /^update completed$/,
  },
  {
    name: "a replacement not running yet: not completed",
    service: svc("updating"),
    tasks: [
      run(v2, 1),
      run(v2, 2),
      run(v2, 3, { status: { ...run(v2, 3).status, state: "starting" } }),
    ],
    state: "unchanged",
  },
  {
    name: "a replacement failed within the monitor period: paused, naming the task",
    service: svc("updating"),
    tasks: [failed(1, 300), run(v1, 2), run(v1, 3)],
    state: "paused",
    message: /^update paused due to failure or early termination of task \S+$/,
  },
  {
    name: "a replacement failed after the monitor period: not a failed update",
    service: svc("updating"),
    tasks: [failed(1, 6000), run(v2, 1, { createdAt: T0 + 8000 }), run(v1, 2), run(v1, 3)],
    state: "unchanged",
  },
  {
    name: "health check: a replacement that never became healthy fails the update, however late",
    service: svc("updating"),
    tasks: [unhealthy(1, 90_000, [1, 1, 1]), run(v1, 2), run(v1, 3)],
    state: "paused",
    message: /^update paused due to failure or early termination of task \S+$/,
  },
  {
    name: "health check, rollback: a replacement never healthy rolls the update back",
    service: svc("updating", { failureAction: "rollback" }),
    tasks: [unhealthy(1, 90_000, [1, 1, 1]), run(v1, 2), run(v1, 3)],
    state: "updating",
    rollback: true,
  },
  {
    name: "health check: a replacement healthy once, unhealthy after the monitor period: no failure",
    service: svc("updating"),
    tasks: [
      unhealthy(1, 90_000, [0, 1, 1, 1]),
      run(v2, 1, { createdAt: T0 + 95_000 }),
      run(v1, 2),
      run(v1, 3),
    ],
    state: "unchanged",
  },
  {
    name: "failure action continue: the failure is ignored",
    service: svc("updating", { failureAction: "continue" }),
    tasks: [failed(1, 300), run(v1, 2), run(v1, 3)],
    state: "unchanged",
  },
  {
    name: "failure action rollback: the manager must roll back",
    service: svc("updating", { failureAction: "rollback" }),
    tasks: [failed(1, 300), run(v1, 2), run(v1, 3)],
    state: "updating",
    rollback: true,
    message: /^update rolled back due to failure or early termination of task \S+$/,
  },
  {
    name: "max failure ratio 0.5: one failure in three is tolerated",
    service: svc("updating", { maxFailureRatio: 0.5 }),
    tasks: [failed(1, 300), run(v2, 2), run(v2, 3)],
    state: "unchanged",
  },
  {
    name: "a rollback that fails pauses (never rolls back again)",
    service: svc("rollback_started", { failureAction: "rollback" }),
    tasks: [failed(1, 300), run(v1, 2), run(v1, 3)],
    state: "rollback_paused",
    message: /^rollback paused due to failure/,
  },
  {
    name: "a rollback whose tasks all run: rollback completed",
    service: svc("rollback_started"),
    tasks: [1, 2, 3].map((i) => run(v2, i)),
    state: "rollback_completed",
  },
  {
    name: "paused stays paused",
    service: svc("paused"),
    tasks: [1, 2, 3].map((i) => run(v2, i)),
    state: "unchanged",
  },
  {
    name: "a status of an older version is left alone (the next update replaces it)",
    service: svc("updating", {}, 3),
    tasks: [1, 2, 3].map((i) => run(v2, i)),
    state: "unchanged",
  },
];

describe("update status", () => {
  for (const c of cases) {
    test(c.name, () => {
      const v = updateVerdict(c.service, c.tasks, NOW);
      assert.equal(v.rollback, c.rollback ?? false);
      if (c.state === "unchanged") {
        assert.equal(v.status, c.service.updateStatus, "the same object: nothing to write");
        return;
      }
      assert.equal(v.status?.state ?? null, c.state);
      if (c.message) assert.match(v.status!.message, c.message);
      if (c.state === "completed" || c.state === "rollback_completed") {
        assert.equal(v.status!.completedAt, NOW);
      }
    });
  }
});
