// Where a service's rolling update stands, as Swarm's UpdateStatus: a pure function from the
// service and its tasks to the status it should have now, and what the manager must do about a
// failure. The manager writes the status back to the service; the reconciler gives a paused
// update no workers.
//
// A replacement fails when a task of the new version ends failed (or rejected) before it ran
// (a task whose health check never passed never ran), or within the monitor period after it
// started running. Once the failed share of the version's
// tasks is above maxFailureRatio, the failure action applies: pause (no further slots are
// replaced until the next update), rollback (the manager puts the previous spec back), or
// continue. A rollback is judged by the rollback settings (monitor, ratio, and its failure
// action: pause, the default, or continue). The update is completed when every live task of the
// service is of the new version and running.

import { isLive } from "./reconcile.js";
import {
  activeUpdateConfig,
  replicasOf,
  type Service,
  type Task,
  type UpdateStatus,
} from "../../api/types.js";

export interface UpdateVerdict {
  /** The status the service should have (the same object when nothing changes). */
  status: UpdateStatus | null | undefined;
  /** The failure action is a rollback: the manager must put the previous spec back. */
  rollback: boolean;
}

function neverHealthy(t: Task): boolean {
  const h = t.status.health;
  return h !== undefined && h.status === "unhealthy" && !h.log.some((r) => r.exitCode === 0);
}

/** The first replacement that failed in the monitor period, if any counts against the update. */
function failedReplacement(s: Service, tasks: Task[]): Task | null {
  const cfg = activeUpdateConfig(s);
  const mine = tasks.filter((t) => t.serviceId === s.id && t.specVersion === s.version);
  const failed = mine.filter((t) => {
    if (t.status.state !== "failed" && t.status.state !== "rejected") return false;
    // A task whose health check never passed never ran (it was `starting`), however long that
    // took: as Swarm, a replacement that never becomes healthy fails the update. (Its last 5
    // results tell; one that passed earlier and then failed more than 4 times looks the same.)
    if (neverHealthy(t)) return true;
    // runningSince is only known while it runs; a failed task's timestamp is when it failed,
    // and its createdAt bounds when it could have started.
    return t.status.timestamp - t.createdAt <= cfg.monitorMs;
  });
  if (failed.length === 0 || mine.length === 0) return null;
  if (failed.length / mine.length <= cfg.maxFailureRatio) return null;
  return failed.sort((a, b) => a.status.timestamp - b.status.timestamp)[0]!;
}

/** Every live task new and running, and (replicated) every slot has one. */
function complete(s: Service, tasks: Task[]): boolean {
  const live = tasks.filter((t) => t.serviceId === s.id && isLive(t));
  const replicas = replicasOf(s.spec);
  if (replicas !== null && live.length < replicas) return false;
  return live.every((t) => t.specVersion === s.version && t.status.state === "running");
}

export function updateVerdict(s: Service, tasks: Task[], now: number): UpdateVerdict {
  const cur = s.updateStatus;
  const same = { status: cur, rollback: false };
  if (!cur || cur.version !== s.version) return same;
  const rollingBack = cur.state === "rollback_started";
  if (cur.state !== "updating" && !rollingBack) return same;
  const bad = failedReplacement(s, tasks);
  const action = activeUpdateConfig(s).failureAction;
  if (bad && action !== "continue") {
    const id = bad.id;
    if (action === "rollback" && !rollingBack) {
      const message = `update rolled back due to failure or early termination of task ${id}`;
      return { status: { ...cur, message }, rollback: true };
    }
    const what = rollingBack ? "rollback" : "update";
    return {
      status: {
        ...cur,
        state: rollingBack ? "rollback_paused" : "paused",
        message: `${what} paused due to failure or early termination of task ${id}`,
      },
      rollback: false,
    };
  }
  if (complete(s, tasks)) {
    return {
      status: {
        ...cur,
        state: rollingBack ? "rollback_completed" : "completed",
        completedAt: now,
        message: rollingBack ? "rollback completed" : "update completed",
      },
      rollback: false,
    };
  }
  return same;
}
