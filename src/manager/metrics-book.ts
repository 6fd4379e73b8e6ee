// The manager's book of what tasks use now: the latest figures each node sent with its
// heartbeat (src/node/metrics.ts samples them), kept in memory only — they are current
// figures, not history, and a new leader has them again after one sampling round.
//
// What reads it: `GET /v1/tasks/stats` (`shoal stats`), `service inspect`'s current figures,
// and the autoscaler (`forService`). The API is four calls:
//
//   record(nodeId, stats)   a node's latest round: replaces everything the book had of that
//                           node (a task missing from the round no longer runs there)
//   forService(serviceId)   the figures of the service's tasks, one entry per task
//   forTask(taskId)         one task's figures, or undefined
//   all()                   every task's figures
//   metricsPortOf(nodeId)   the port of the node's own /metrics, as its heartbeats tell it
//   recordRequests(nodeId, counts, at)   what a node's HTTP router sent to each service since
//                           its last heartbeat, plus the connections its routing mesh forwarded
//                           (one connection counts as one request: L4 sees no requests)
//   serviceRps(serviceId, now)   requests per second to the service, all routers together,
//                           over the last RPS_WINDOW_MS
//
// A figure is only kept for a task the store places on the node that sent it, and not in a
// terminal state; a task that stops, a node that goes down or is removed is forgotten at once
// (the store's watch), not at the node's next round.

import type { Store, StoreEvent } from "../store/store.js";
import type { ServiceRequests, TaskStats } from "../api/bus.js";

/** The window requests per second are averaged over. */
export const RPS_WINDOW_MS = 10_000;
import { isTerminal, type Node, type Task } from "../api/types.js";
import type { AutoscaleMetrics, TaskUsage } from "./autoscale/autoscaler.js";

/** One task's latest figures, with where it runs. */
export interface TaskFigures extends TaskStats {
  nodeId: string;
  serviceId: string;
  serviceName: string;
}

/** The book is the autoscaler's source of figures (AutoscaleMetrics, autoscale/autoscaler.ts). */
export class MetricsBook implements AutoscaleMetrics {
  private readonly byTask = new Map<string, TaskFigures>();
  private readonly byNode = new Map<string, Set<string>>();
  private readonly metricsPorts = new Map<string, number>();
  private unwatch: (() => void) | null = null;
  /** Per service, the request counts the routers reported, with when (oldest first). */
  private readonly requests = new Map<string, Array<{ at: number; count: number }>>();
  private readonly started = new Map<string, number>();
  /** When the manager received each task's figures (its own clock, unlike `sampledAt`). */
  private readonly receivedAt = new Map<string, number>();

  constructor(private readonly store: Store) {}

  /** Follows the store, forgetting tasks that stop and nodes that go down. */
  start(): void {
    this.unwatch ??= this.store.watch((events) => this.onEvents(events));
  }

  stop(): void {
    this.unwatch?.();
    this.unwatch = null;
  }

  /** A node's latest sampling round (see the file header). */
  record(nodeId: string, stats: TaskStats[], at = Date.now()): void {
    this.forgetNode(nodeId);
    const ids = new Set<string>();
    this.store.view((tx) => {
      const node = tx.getNode(nodeId);
      if (!node || node.status !== "ready") return;
      for (const s of stats) {
        const t = tx.getTask(s.taskId);
        if (!t || t.nodeId !== nodeId || isTerminal(t.status.state)) continue;
        this.byTask.set(s.taskId, {
          ...s,
          nodeId,
          serviceId: t.serviceId,
          serviceName: t.serviceName,
        });
        this.receivedAt.set(s.taskId, at);
        ids.add(s.taskId);
      }
    });
    if (ids.size > 0) this.byNode.set(nodeId, ids);
  }

  /** What a node's heartbeat says of its /metrics port (undefined: it serves none). */
  setMetricsPort(nodeId: string, port: number | undefined): void {
    if (port === undefined) this.metricsPorts.delete(nodeId);
    else this.metricsPorts.set(nodeId, port);
  }

  metricsPortOf(nodeId: string): number | undefined {
    return this.metricsPorts.get(nodeId);
  }

  /** Counts from a node's router (see the file header); `at` is the manager's clock. */
  recordRequests(_nodeId: string, counts: readonly ServiceRequests[], at: number): void {
    for (const c of counts) {
      if (c.count <= 0) continue;
      let list = this.requests.get(c.serviceId);
      if (list === undefined) {
        list = [];
        this.requests.set(c.serviceId, list);
        this.started.set(c.serviceId, at);
      }
      list.push({ at, count: c.count });
      // Kept to the window here too, not only when read: a routed service without autoscaling
      // is never asked for its rate.
      while (list[0]!.at <= at - RPS_WINDOW_MS) list.shift();
    }
  }

  /**
   * Requests per second to the service over the last RPS_WINDOW_MS (over the time since its first
   * request when that is shorter, so a load that just began counts at once); 0 when none came.
   */
  serviceRps(serviceId: string, now = Date.now()): number {
    const list = this.requests.get(serviceId);
    if (list === undefined) return 0;
    const from = now - RPS_WINDOW_MS;
    while (list.length > 0 && list[0]!.at <= from) list.shift();
    if (list.length === 0) {
      this.requests.delete(serviceId);
      this.started.delete(serviceId);
      return 0;
    }
    let sum = 0;
    for (const r of list) sum += r.count;
    const span = Math.min(RPS_WINDOW_MS, Math.max(1000, now - this.started.get(serviceId)!));
    return (sum * 1000) / span;
  }

  /** One task's CPU and memory for the autoscaler, stamped with when they arrived. */
  taskUsage(taskId: string): TaskUsage | undefined {
    const f = this.byTask.get(taskId);
    if (f === undefined) return undefined;
    const at = this.receivedAt.get(taskId);
    return {
      cpuCores: f.cpuCores,
      memoryBytes: f.memoryBytes,
      ...(at !== undefined ? { at } : {}),
    };
  }

  forService(serviceId: string): TaskFigures[] {
    return [...this.byTask.values()].filter((f) => f.serviceId === serviceId);
  }

  forTask(taskId: string): TaskFigures | undefined {
    return this.byTask.get(taskId);
  }

  all(): TaskFigures[] {
    return [...this.byTask.values()];
  }

  private forgetNode(nodeId: string): void {
    for (const id of this.byNode.get(nodeId) ?? []) {
      this.byTask.delete(id);
      this.receivedAt.delete(id);
    }
    this.byNode.delete(nodeId);
  }

  private forgetTask(taskId: string): void {
    const f = this.byTask.get(taskId);
    if (!f) return;
    this.byTask.delete(taskId);
    this.receivedAt.delete(taskId);
    this.byNode.get(f.nodeId)?.delete(taskId);
  }

  private onEvents(events: StoreEvent[]): void {
    for (const e of events) {
      if (e.kind === "task") {
        const t = e.value as Task | null;
        if (t === null || isTerminal(t.status.state) || t.desiredState !== "running") {
          this.forgetTask(e.id);
        }
      } else if (e.kind === "node") {
        const n = e.value as Node | null;
        if (n === null || n.status !== "ready") this.forgetNode(e.id);
        if (n === null) this.metricsPorts.delete(e.id);
      }
    }
  }
}
