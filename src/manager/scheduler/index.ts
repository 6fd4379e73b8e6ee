// The scheduler: picks a node for each pending task. Every node goes through the filter
// pipeline (ready and active, constraints, host-mode ports, max replicas per node, resources);
// placement preferences (preferences.ts) narrow the nodes that pass to one group; among those,
// the spread score prefers the fewest live tasks of the same service, then the fewest live
// tasks overall, then the lowest node id, so results are deterministic. Decisions made earlier in
// the same call count as load, so 6 tasks on 3 empty nodes land 2/2/2. A task that already names
// a node (a global service's task) is only checked against that node. Pure: the caller writes
// the assignments.

import { isTerminal, type Node, type Task } from "../../api/types.js";
import { addTask, defaultFilters, newNodeInfo, type NodeInfo } from "./filters.js";
import { Pipeline } from "./pipeline.js";
import { preferredNodes } from "./preferences.js";

export {
  parseConstraint,
  matchConstraints,
  constraintsAllow,
  ConstraintError,
} from "./constraint.js";
export type { Constraint, ConstraintOperator } from "./constraint.js";
export { Pipeline } from "./pipeline.js";
export { preferenceProblem, spreadValue } from "./preferences.js";
export type { Filter, NodeInfo } from "./filters.js";

export interface ScheduleResult {
  assignments: Array<{ taskId: string; nodeId: string }>;
  unschedulable: Array<{ taskId: string; reason: string }>;
}

/** Negative when `a` is the better node for a task of `serviceId`. */
function spread(a: NodeInfo, b: NodeInfo, serviceId: string): number {
  const sa = a.tasksByService.get(serviceId) ?? 0;
  const sb = b.tasksByService.get(serviceId) ?? 0;
  if (sa !== sb) return sa - sb;
  if (a.tasks !== b.tasks) return a.tasks - b.tasks;
  return a.node.id < b.node.id ? -1 : a.node.id > b.node.id ? 1 : 0;
}

/**
 * Places `pending` tasks on `nodes`. `liveTasks` are the tasks already on nodes (terminal ones
 * and the pending tasks themselves are ignored); their load, ports and reservations count.
 */
export function schedule(pending: Task[], nodes: Node[], liveTasks: Task[]): ScheduleResult {
  const infos = new Map<string, NodeInfo>();
  for (const n of nodes) infos.set(n.id, newNodeInfo(n));
  const pendingIds = new Set(pending.map((t) => t.id));
  for (const t of liveTasks) {
    if (pendingIds.has(t.id) || isTerminal(t.status.state)) continue;
    const info = infos.get(t.nodeId);
    if (info) addTask(info, t);
  }

  const all = [...infos.values()];
  const result: ScheduleResult = { assignments: [], unschedulable: [] };
  const pipeline = new Pipeline(defaultFilters());
  for (const t of pending) {
    pipeline.setTask(t);
    const candidates = t.nodeId
      ? [infos.get(t.nodeId)].filter((i) => i !== undefined)
      : infos.values();
    let passing = [...candidates].filter((info) => pipeline.process(info));
    const prefs = t.spec.preferences ?? [];
    if (prefs.length > 0 && !t.nodeId) passing = preferredNodes(prefs, t.serviceId, all, passing);
    let best: NodeInfo | undefined;
    for (const info of passing) {
      if (!best || spread(info, best, t.serviceId) < 0) best = info;
    }
    if (best) {
      addTask(best, t);
      result.assignments.push({ taskId: t.id, nodeId: best.node.id });
    } else {
      result.unschedulable.push({ taskId: t.id, reason: pipeline.noSuitableNode() });
    }
  }
  return result;
}
