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
//
// A figure is only kept for a task the store places on the node that sent it, and not in a
// terminal state; a task that stops, a node that goes down or is removed is forgotten at once
// (the store's watch), not at the node's next round.

import type { Store, StoreEvent } from "../store/store.js";
import type { TaskStats } from "../api/bus.js";
import { isTerminal, type Node, type Task } from "../api/types.js";

/** One task's latest figures, with where it runs. */
export interface TaskFigures extends TaskStats {
  nodeId: string;
  serviceId: string;
  serviceName: string;
}

export class MetricsBook {
  private readonly byTask = new Map<string, TaskFigures>();
  private readonly byNode = new Map<string, Set<string>>();
  private readonly metricsPorts = new Map<string, number>();
  private unwatch: (() => void) | null = null;

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
  record(nodeId: string, stats: TaskStats[]): void {
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
    for (const id of this.byNode.get(nodeId) ?? []) this.byTask.delete(id);
    this.byNode.delete(nodeId);
  }

  private forgetTask(taskId: string): void {
    const f = this.byTask.get(taskId);
    if (!f) return;
    this.byTask.delete(taskId);
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
