// Test fixtures for the orchestrator and scheduler, and `Sim`: a tiny deterministic cluster that
// runs reconcile → applyActions → schedule → "agents" until nothing changes, advancing the clock
// to the next restart delay when it has to. Agents are idealized: on a ready node an assigned task
// with desired running starts at once and a task asked to stop stops at once; on a down node
// nothing moves.

import assert from "node:assert/strict";
import {
  applyActions,
  isLive,
  nextWakeup,
  reconcile,
  type Action,
} from "../../../src/manager/orchestrator/reconcile.js";
import { schedule } from "../../../src/manager/scheduler/index.js";
import {
  defaultServiceSpec,
  isTerminal,
  type Node,
  type RestartPolicy,
  type Service,
  type ServiceSpec,
  type Task,
  type TaskState,
} from "../../../src/api/types.js";

export const T0 = 1_000_000;

export function node(id: string, over: Partial<Node> = {}): Node {
  return {
    id,
    hostname: id,
    role: "worker",
    availability: "active",
    status: "ready",
    addr: "127.0.0.1",
    labels: {},
    resources: { nanoCpus: 4, memoryBytes: 8 * 1024 ** 3 },
    engineVersion: "test",
    lastSeen: T0,
    createdAt: T0,
    updatedAt: T0,
    ...over,
  };
}

export interface ServiceOpts {
  replicas?: number;
  global?: boolean;
  restart?: Partial<RestartPolicy>;
  version?: number;
  spec?: Partial<ServiceSpec>;
}

export function service(id: string, o: ServiceOpts = {}): Service {
  const base = defaultServiceSpec(id);
  const spec: ServiceSpec = {
    ...base,
    command: ["sleep", "1000"],
    mode: o.global ? { global: {} } : { replicated: { replicas: o.replicas ?? 1 } },
    restartPolicy: { ...base.restartPolicy, ...o.restart },
    ...o.spec,
  };
  return { id, spec, version: o.version ?? 1, previousSpec: null, createdAt: T0, updatedAt: T0 };
}

let taskSeq = 0;
export function task(s: Service, over: Partial<Task> & { state?: TaskState } = {}): Task {
  const { state, ...rest } = over;
  const id = `x${++taskSeq}`;
  return {
    id,
    serviceId: s.id,
    serviceName: s.spec.name,
    slot: 1,
    nodeId: "",
    specVersion: s.version,
    spec: s.spec,
    desiredState: "running",
    status: {
      state: state ?? "running",
      timestamp: T0,
      message: "",
      err: "",
      exitCode: null,
      pid: null,
      containerId: null,
    },
    hostPorts: {},
    notBefore: 0,
    createdAt: T0,
    updatedAt: T0,
    ...rest,
  };
}

export function ids(prefix = "t"): () => string {
  let n = 0;
  return () => `${prefix}${String(++n).padStart(4, "0")}`;
}

/** Counts of actions by type (setDesired split by target state). */
export function countActions(actions: Action[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const a of actions) {
    const k =
      a.type === "setDesired"
        ? `setDesired:${a.desired}`
        : a.type === "setStatus"
          ? `setStatus:${a.state}`
          : a.type;
    out[k] = (out[k] ?? 0) + 1;
  }
  return out;
}

export class Sim {
  tasks: Task[] = [];
  now = T0;
  readonly newTaskId = ids();
  historyLimit = 5;
  /** Called after every reconcile pass with the tasks it produced (for invariants). */
  onPass: ((sim: Sim) => void) | null = null;

  constructor(
    public services: Service[],
    public nodes: Node[],
  ) {}

  input() {
    return { services: this.services, tasks: this.tasks, nodes: this.nodes, now: this.now };
  }

  /** One reconcile pass, applied; returns its actions. */
  reconcile(): Action[] {
    const actions = reconcile(this.input(), {
      historyLimit: this.historyLimit,
      newTaskId: this.newTaskId,
    });
    this.tasks = applyActions(this.input(), actions, this.now);
    this.onPass?.(this);
    return actions;
  }

  private put(t: Task): void {
    this.tasks = this.tasks.map((x) => (x.id === t.id ? t : x));
  }

  setState(t: Task, state: TaskState, extra: Partial<Task["status"]> = {}): void {
    this.put({
      ...t,
      status: { ...t.status, state, timestamp: this.now, ...extra },
      updatedAt: this.now,
    });
  }

  /** The scheduler's step, as the manager does it. Returns whether anything changed. */
  schedule(): boolean {
    const pending = this.tasks.filter(
      (t) =>
        (t.status.state === "new" || t.status.state === "pending") &&
        (t.desiredState === "running" || t.desiredState === "ready"),
    );
    if (pending.length === 0) return false;
    const live = this.tasks.filter((t) => t.nodeId !== "" && !isTerminal(t.status.state));
    const r = schedule(pending, this.nodes, live);
    let changed = false;
    for (const { taskId, nodeId } of r.assignments) {
      const t = this.get(taskId);
      this.put({
        ...t,
        nodeId,
        status: { ...t.status, state: "assigned", timestamp: this.now, err: "" },
      });
      changed = true;
    }
    for (const { taskId, reason } of r.unschedulable) {
      const t = this.get(taskId);
      if (t.status.state === "pending" && t.status.err === reason) continue;
      this.put({
        ...t,
        status: { ...t.status, state: "pending", timestamp: this.now, err: reason },
      });
      changed = true;
    }
    return changed;
  }

  /** The agents' step. Returns whether anything changed. */
  agents(): boolean {
    let changed = false;
    for (const t of this.tasks) {
      if (isTerminal(t.status.state) || t.nodeId === "") continue;
      const n = this.nodes.find((x) => x.id === t.nodeId);
      if (!n || n.status !== "ready") continue;
      if (t.desiredState === "shutdown" || t.desiredState === "remove") {
        this.setState(t, "shutdown", { message: "shutdown" });
        changed = true;
      } else if (t.desiredState === "running" && t.status.state !== "running") {
        if (t.status.state === "new" || t.status.state === "pending") continue; // not yet placed
        this.setState(t, "running", { message: "started" });
        changed = true;
      }
    }
    return changed;
  }

  /** Runs passes until nothing changes (jumping the clock over restart delays). */
  converge(maxPasses = 200): number {
    for (let pass = 1; pass <= maxPasses; pass++) {
      const actions = this.reconcile();
      const scheduled = this.schedule();
      const moved = this.agents();
      if (actions.length === 0 && !scheduled && !moved) {
        const wake = nextWakeup(this.input());
        if (wake === null) {
          assert.deepEqual(
            this.reconcileDryRun(),
            [],
            "reconcile is idempotent at the fixed point",
          );
          return pass;
        }
        this.now = wake;
      }
    }
    assert.fail(`did not converge in ${maxPasses} passes`);
  }

  reconcileDryRun(): Action[] {
    return reconcile(this.input(), { historyLimit: this.historyLimit, newTaskId: this.newTaskId });
  }

  get(id: string): Task {
    const t = this.tasks.find((x) => x.id === id);
    assert.ok(t, `task ${id}`);
    return t;
  }

  of(serviceId: string): Task[] {
    return this.tasks.filter((t) => t.serviceId === serviceId);
  }

  live(serviceId: string): Task[] {
    return this.of(serviceId).filter(isLive);
  }

  running(serviceId: string): Task[] {
    return this.live(serviceId).filter((t) => t.status.state === "running");
  }

  /** Ends a task as its process would: exit 0 → complete, otherwise failed. */
  exit(t: Task, code: number): void {
    this.setState(t, code === 0 ? "complete" : "failed", {
      exitCode: code,
      err: code === 0 ? "" : `task: non-zero exit (${code})`,
    });
  }

  setReplicas(serviceId: string, n: number): void {
    this.services = this.services.map((s) =>
      s.id === serviceId ? { ...s, spec: { ...s.spec, mode: { replicated: { replicas: n } } } } : s,
    );
  }

  updateSpec(serviceId: string, change: Partial<ServiceSpec>): void {
    this.services = this.services.map((s) =>
      s.id === serviceId ? { ...s, spec: { ...s.spec, ...change }, version: s.version + 1 } : s,
    );
  }

  setNode(id: string, change: Partial<Node>): void {
    this.nodes = this.nodes.map((n) => (n.id === id ? { ...n, ...change } : n));
  }

  /** Slot → live task count, for replicated services. */
  liveBySlot(serviceId: string): Map<number, number> {
    const m = new Map<number, number>();
    for (const t of this.live(serviceId)) m.set(t.slot, (m.get(t.slot) ?? 0) + 1);
    return m;
  }
}
