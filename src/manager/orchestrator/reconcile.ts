// The orchestrator's reconciler: a pure function from (services, tasks, nodes, now) to the
// actions that move the observed tasks toward the desired services, in Swarm's manner. It runs in
// two ordered rule tables, first match wins, over a working copy (`Plan`) so that later rules see
// what earlier ones decided:
//
//  1. TASK_RULES look at each task alone: tasks no agent will report on (never started, node
//     down or gone), tasks of removed services, tasks outside the service's slots (scale-down,
//     deleted outright once ended: no history row), tasks on nodes they may no longer stay on
//     (drained, constraints no longer met), and restart delays that are over (desired ready →
//     running).
//  2. SLOT_RULES look at each slot (replicated: 1..N; global: one per node): the rolling update
//     of a slot whose task was made from an older spec, keep the newest of several live tasks,
//     fill an empty slot (fresh, or per the restart policy when its newest task ended), then mark
//     ended tasks as handled and trim the slot's history. A service that has never had a task
//     and waits for its dependencies (depends.ts) gets no slots yet.
//
// A task is live when it is not terminal and its desired state is running or ready. An ended
// task whose desired state is still running or ready has not been handled yet: the slot rules
// decide about it exactly once (restart or leave the slot empty) and set its desired state to
// shutdown, which is also what `service ps` shows for it (Swarm's "Shutdown  Failed"). That makes
// the decision stable across passes even when the restart window slides or history is trimmed.
//
// Rolling updates follow Swarm's updater: `parallelism` workers each take an outdated slot,
// replace its task (stop-first: stop the old one, start the new one once it has ended;
// start-first: start the new one, stop the old one once the new one runs), then wait `delay`
// after the new task runs before taking the next slot. The workers are not remembered between
// passes: a slot counts as a busy worker while its replacement is under way or cooling down
// (its new task has run for less than the delay), read off the slot's tasks each pass. While a
// rollback is under way the service's rollback settings take the place of its update settings.
//
// Idempotent: a Plan records only changes, so reconciling a converged state yields no actions.

import {
  activeUpdateConfig,
  isTerminal,
  replicasOf,
  stateIndex,
  type DesiredState,
  type Node,
  type Service,
  type Task,
} from "../../api/types.js";
import { constraintsAllow } from "../scheduler/constraint.js";
import { Plan, type Action } from "./actions.js";
import { restartDecision } from "./restart.js";
import { startBlocker } from "./depends.js";

export { applyActions, applyAction, type Action } from "./actions.js";

export interface ReconcileInput {
  services: Service[];
  tasks: Task[];
  nodes: Node[];
  now: number;
  /**
   * Every service and task of the cluster, for the services' dependencies (depends_on) when
   * `services` and `tasks` hold only part of it; by default those two.
   */
  cluster?: { services: readonly Service[]; tasks: readonly Task[] };
}

export interface ReconcileOptions {
  /** Ended tasks kept per slot (Swarm's task history retention limit, 5). At least 1 is kept. */
  historyLimit: number;
  newTaskId: () => string;
}

interface Ctx {
  now: number;
  services: Map<string, Service>;
  nodes: Map<string, Node>;
  opts: ReconcileOptions;
  /** Per service: how many more outdated slots this pass may start replacing. */
  updateBudget: Map<string, number>;
}

// ---- predicates -----------------------------------------------------------------------------

function stopping(t: Task): boolean {
  return t.desiredState === "shutdown" || t.desiredState === "remove";
}

/** Not terminal, and meant to run (now, or after its restart delay). */
export function isLive(t: Task): boolean {
  return !isTerminal(t.status.state) && !stopping(t);
}

function ended(t: Task): boolean {
  return isTerminal(t.status.state);
}

/** Ended, and the orchestrator has not acted on the end yet. */
function unhandled(t: Task): boolean {
  return ended(t) && !stopping(t);
}

function isGlobal(s: Service): boolean {
  return replicasOf(s.spec) === null;
}

/** Why the task's node will not report on it any more, or null. */
function nodeLost(t: Task, c: Ctx): string | null {
  if (t.nodeId === "") return null;
  const n = c.nodes.get(t.nodeId);
  if (!n) return "node removed";
  return n.status === "down" ? "node is down" : null;
}

/** Whether the task belongs to one of the service's current slots. */
function inSlots(t: Task, s: Service, c: Ctx): boolean {
  const replicas = replicasOf(s.spec);
  if (replicas === null) return t.slot === 0 && c.nodes.has(t.nodeId);
  return Number.isInteger(t.slot) && t.slot >= 1 && t.slot <= replicas;
}

function outOfSlotsReason(s: Service): string {
  return isGlobal(s) ? "not a task of the global service" : "scaled down";
}

/** Why a task may not stay on its node, or null. */
function evictReason(t: Task, s: Service, c: Ctx): string | null {
  const n = c.nodes.get(t.nodeId);
  if (!n) return null;
  if (n.availability === "drain") return "node drained";
  if (!constraintsAllow(s.spec.constraints, n)) return "placement constraints no longer satisfied";
  return null;
}

/** Whether a global service may start a new task on the node. */
function takesNewTasks(s: Service, n: Node): boolean {
  return (
    n.status === "ready" &&
    n.availability === "active" &&
    constraintsAllow(s.spec.constraints, n) &&
    hasDriver(n, s.spec.driver)
  );
}

/** Whether the node can run the driver (a node that never said which drivers it has: yes). */
function hasDriver(n: Node, driver: string): boolean {
  return driver === "process" || n.drivers === undefined || n.drivers.includes(driver);
}

function newestFirst(a: Task, b: Task): number {
  return b.createdAt - a.createdAt || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0);
}

// ---- rule table 1: each task alone ----------------------------------------------------------

interface TaskRule {
  name: string;
  when(t: Task, s: Service | undefined, c: Ctx): boolean;
  then(t: Task, s: Service | undefined, c: Ctx, p: Plan): void;
}

export const TASK_RULES: readonly TaskRule[] = [
  {
    name: "stopped before it started: no agent will report it",
    when: (t) => !ended(t) && stopping(t) && stateIndex(t.status.state) < stateIndex("preparing"),
    then: (t, _s, _c, p) => p.setStatus(t, "shutdown", "shut down before it started"),
  },
  {
    name: "its node is down or gone: orphaned",
    when: (t, _s, c) => !ended(t) && nodeLost(t, c) !== null,
    then: (t, _s, c, p) => p.setStatus(t, "orphaned", nodeLost(t, c) ?? ""),
  },
  {
    name: "service removed, task ended: delete",
    when: (t, s) => !s && ended(t),
    then: (t, _s, _c, p) => p.delete(t, "service removed"),
  },
  {
    name: "service removed: shut down",
    when: (t, s) => !s && isLive(t),
    then: (t, _s, _c, p) => p.setDesired(t, "shutdown", "service removed"),
  },
  {
    name: "outside the service's slots, ended: delete (no history row)",
    when: (t, s, c) => !!s && ended(t) && !inSlots(t, s, c),
    then: (t, s, _c, p) => p.delete(t, outOfSlotsReason(s!)),
  },
  {
    name: "outside the service's slots: shut down",
    when: (t, s, c) => !!s && isLive(t) && !inSlots(t, s, c),
    then: (t, s, _c, p) => p.setDesired(t, "shutdown", outOfSlotsReason(s!)),
  },
  {
    name: "may not stay on its node: shut down (the slot is refilled elsewhere)",
    when: (t, s, c) => !!s && isLive(t) && evictReason(t, s, c) !== null,
    then: (t, s, c, p) => p.setDesired(t, "shutdown", evictReason(t, s!, c) ?? ""),
  },
  {
    name: "restart delay over: ready → running",
    when: (t, s, c) => !!s && isLive(t) && t.desiredState === "ready" && c.now >= t.notBefore,
    then: (t, _s, _c, p) => p.setDesired(t, "running", "restart delay elapsed"),
  },
];

// ---- rule table 2: each slot ----------------------------------------------------------------

interface Slot {
  service: Service;
  /** Replicated: 1..N. Global: 0. */
  slot: number;
  /** Global: the node the slot belongs to. */
  node: Node | undefined;
  /** The slot's tasks, newest first. */
  tasks: Task[];
  live: Task[];
  newest: Task | undefined;
}

interface SlotRule {
  name: string;
  when(sl: Slot, c: Ctx): boolean;
  then(sl: Slot, c: Ctx, p: Plan): void;
  /** Leave ended tasks unhandled: the decision about them waits (a global slot's node is paused). */
  defer?: true;
}

function createTask(sl: Slot, c: Ctx, p: Plan, desired: DesiredState, notBefore: number): void {
  const s = sl.service;
  p.create({
    id: c.opts.newTaskId(),
    serviceId: s.id,
    serviceName: s.spec.name,
    slot: sl.slot,
    nodeId: sl.node?.id ?? "",
    specVersion: s.version,
    spec: structuredClone(s.spec),
    desiredState: desired,
    status: {
      state: "new",
      timestamp: c.now,
      message: "created",
      err: "",
      exitCode: null,
      pid: null,
      containerId: null,
    },
    hostPorts: {},
    notBefore,
    createdAt: c.now,
    updatedAt: c.now,
  });
}

function fresh(sl: Slot, c: Ctx, p: Plan): void {
  createTask(sl, c, p, "running", 0);
}

const nothing = (): void => {};

const outdated = (t: Task, s: Service) => t.specVersion < s.version;

/**
 * Where a slot is in the rolling update to its service's current version: "pending" (its live
 * task is outdated and nobody is replacing it), "busy" (a worker is replacing it, or waiting
 * out the update delay after its new task started running), or "none".
 */
function updateState(sl: Slot, now: number): "pending" | "busy" | "none" {
  const s = sl.service;
  // A global slot on a node that takes no new tasks (paused) keeps what it runs.
  if (sl.node !== undefined && !takesNewTasks(s, sl.node)) return "none";
  const old = sl.tasks.filter((t) => outdated(t, s));
  if (old.length === 0) return "none";
  const newer = sl.tasks.filter((t) => !outdated(t, s));
  if (old.some(isLive) && !newer.some(isLive)) return "pending";
  const next = newer[0];
  if (next === undefined) {
    // Stop-first: the old task is stopping and the new one waits for it, or it has stopped and
    // the new one is created in this pass.
    const stopped = old[0]!.status.state === "shutdown";
    return stopped || old.some((t) => !ended(t) && stopping(t)) ? "busy" : "none";
  }
  if (isLive(next) && next.status.state !== "running") return "busy";
  const delay = activeUpdateConfig(s).delayMs;
  if (next.status.state === "running" && now < next.status.timestamp + delay) return "busy";
  return "none";
}

export const SLOT_RULES: readonly SlotRule[] = [
  {
    name: "outdated, and an update worker is free: replace it (stop-first or start-first)",
    when: (sl, c) =>
      updateState(sl, c.now) === "pending" && (c.updateBudget.get(sl.service.id) ?? 0) > 0,
    then: (sl, c, p) => {
      const s = sl.service;
      c.updateBudget.set(s.id, c.updateBudget.get(s.id)! - 1);
      if (activeUpdateConfig(s).order === "start-first" && sl.live.length === 1) {
        fresh(sl, c, p);
        return;
      }
      for (const t of sl.live) if (outdated(t, s)) p.setDesired(t, "shutdown", "service updated");
    },
  },
  {
    name: "outdated, every update worker busy: keep it running for now",
    when: (sl, c) => updateState(sl, c.now) === "pending" && sl.live.length === 1,
    then: nothing,
  },
  {
    name: "start-first: the new task does not run yet, keep the old one",
    when: (sl) =>
      activeUpdateConfig(sl.service).order === "start-first" &&
      sl.live.length === 2 &&
      !outdated(sl.live[0]!, sl.service) &&
      sl.live[0]!.status.state !== "running" &&
      outdated(sl.live[1]!, sl.service),
    then: nothing,
  },
  {
    name: "stop-first: the outdated task is stopping, start the new one once it has ended",
    when: (sl) =>
      sl.live.length === 0 &&
      sl.newest !== undefined &&
      !ended(sl.newest) &&
      stopping(sl.newest) &&
      outdated(sl.newest, sl.service) &&
      activeUpdateConfig(sl.service).order === "stop-first",
    then: nothing,
  },
  {
    name: "several live tasks (a node came back): keep the newest, shut down the others",
    when: (sl) => sl.live.length > 1,
    then: (sl, _c, p) => {
      for (const t of sl.live.slice(1)) p.setDesired(t, "shutdown", "duplicate task for the slot");
    },
  },
  { name: "one live task: nothing to do", when: (sl) => sl.live.length === 1, then: nothing },
  {
    name: "global slot on a node that takes no new tasks: wait",
    when: (sl) => sl.node !== undefined && !takesNewTasks(sl.service, sl.node),
    then: nothing,
    defer: true,
  },
  { name: "never ran: start one", when: (sl) => sl.newest === undefined, then: fresh },
  {
    name: "newest was stopped on purpose (update, drain, scale): start one now",
    when: (sl) => !ended(sl.newest!) || sl.newest!.status.state === "shutdown",
    then: fresh,
  },
  {
    name: "spec changed since the slot last ran: start one now",
    when: (sl) => sl.newest!.specVersion < sl.service.version,
    then: fresh,
  },
  {
    name: "end already handled (restart policy said stop): leave it",
    when: (sl) => !unhandled(sl.newest!),
    then: nothing,
  },
  {
    name: "newest ended: restart per the restart policy",
    when: () => true,
    then: (sl, c, p) => {
      const last = sl.newest!;
      const d = restartDecision({
        last,
        earlier: sl.tasks.filter((t) => t !== last && ended(t)),
        policy: last.spec.restartPolicy,
        version: sl.service.version,
        now: c.now,
      });
      if (!d.restart) return;
      // Swarm's restart: the replacement is created at once and waits in Ready for the delay.
      createTask(sl, c, p, c.now >= d.notBefore ? "running" : "ready", d.notBefore);
    },
  },
];

function slotOf(service: Service, slot: number, node: Node | undefined, tasks: Task[]): Slot {
  const sorted = [...tasks].sort(newestFirst);
  return { service, slot, node, tasks: sorted, live: sorted.filter(isLive), newest: sorted[0] };
}

/** The service's slots over the working copy: replicated 1..N, global one per usable node. */
function slotsOf(s: Service, tasks: Task[], c: Ctx): Slot[] {
  const replicas = replicasOf(s.spec);
  const mine = tasks.filter((t) => t.serviceId === s.id && inSlots(t, s, c));
  if (replicas !== null) {
    const bySlot = new Map<number, Task[]>();
    for (const t of mine) bySlot.set(t.slot, [...(bySlot.get(t.slot) ?? []), t]);
    return Array.from({ length: replicas }, (_, i) =>
      slotOf(s, i + 1, undefined, bySlot.get(i + 1) ?? []),
    );
  }
  const byNode = new Map<string, Task[]>();
  for (const n of c.nodes.values()) if (takesNewTasks(s, n)) byNode.set(n.id, []);
  for (const t of mine) byNode.set(t.nodeId, [...(byNode.get(t.nodeId) ?? []), t]);
  return [...byNode.keys()].sort().map((id) => slotOf(s, 0, c.nodes.get(id), byNode.get(id)!));
}

function reconcileSlot(sl: Slot, c: Ctx, p: Plan): void {
  const rule = SLOT_RULES.find((r) => r.when(sl, c))!;
  rule.then(sl, c, p);
  const ids = sl.tasks.map((t) => t.id);
  const current = () => ids.map((id) => p.get(id)).filter((t): t is Task => t !== undefined);
  if (!rule.defer) {
    for (const t of current()) if (unhandled(t)) p.setDesired(t, "shutdown", "task ended");
  }
  const history = current().filter(ended);
  for (const t of history.slice(Math.max(1, c.opts.historyLimit))) {
    p.delete(t, "task history retention limit");
  }
}

// ---- entry points ---------------------------------------------------------------------------

export function reconcile(input: ReconcileInput, opts: ReconcileOptions): Action[] {
  const c: Ctx = {
    now: input.now,
    services: new Map(input.services.map((s) => [s.id, s])),
    nodes: new Map(input.nodes.map((n) => [n.id, n])),
    opts,
    updateBudget: new Map(),
  };
  const p = new Plan(input.tasks, input.now);

  const ordered = [...input.tasks].sort(
    (a, b) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : 1),
  );
  for (const { id } of ordered) {
    const t = p.get(id);
    if (!t) continue;
    const s = c.services.get(t.serviceId);
    TASK_RULES.find((r) => r.when(t, s, c))?.then(t, s, c, p);
  }

  for (const s of input.services) {
    // A service waiting for its dependencies before its first start gets no tasks yet.
    const own = p.all();
    if (!own.some((t) => t.serviceId === s.id)) {
      const { services, tasks } = input.cluster ?? { services: input.services, tasks: own };
      if (startBlocker(s, services, tasks) !== null) continue;
    }
    const slots = slotsOf(s, p.all(), c);
    const parallelism = activeUpdateConfig(s).parallelism;
    const busy = slots.filter((sl) => updateState(sl, c.now) === "busy").length;
    const st = s.updateStatus;
    const paused =
      !!st && st.version === s.version && (st.state === "paused" || st.state === "rollback_paused");
    const budget = paused ? 0 : parallelism === 0 ? Infinity : Math.max(0, parallelism - busy);
    c.updateBudget.set(s.id, budget);
    for (const sl of slots) reconcileSlot(sl, c, p);
  }
  return p.actions;
}

/**
 * The earliest future time a restart delay or an update delay ends (when the manager should
 * reconcile again even if nothing else changes).
 */
export function nextWakeup(input: ReconcileInput): number | null {
  let next: number | null = null;
  const at = (when: number) => {
    if (when > input.now) next = next === null ? when : Math.min(next, when);
  };
  const versions = new Map(input.services.map((s) => [s.id, s]));
  for (const t of input.tasks) {
    if (isLive(t) && t.desiredState === "ready") at(t.notBefore);
    // A replacement running for less than its service's update delay: the worker's wait ends.
    const s = versions.get(t.serviceId);
    if (s && t.specVersion === s.version && t.status.state === "running" && isLive(t)) {
      const delay = activeUpdateConfig(s).delayMs;
      if (delay > 0) at(t.status.timestamp + delay);
    }
  }
  return next;
}
