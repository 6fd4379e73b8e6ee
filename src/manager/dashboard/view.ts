// What the dashboard shows, read from one consistent view of the store: its nodes, services
// (with their running/desired counts as `service ls` counts them) and tasks, trimmed to the
// fields the pages use (src/api/dashboard.ts).

import type { ReadTx } from "../../store/store.js";
import type { DashNode, DashService, DashState, DashTask } from "../../api/dashboard.js";
import type { Node, Service, Task } from "../../api/types.js";
import { summary } from "../api.js";
import type { AutoscaleHistory } from "./history.js";

/** What the dashboard shows; `history` adds the autoscaler's last hour per service. */
export function dashState(tx: ReadTx, history?: AutoscaleHistory): DashState {
  const tasks = tx.listTasks();
  return {
    revision: tx.revision(),
    nodes: tx
      .listNodes()
      .map(dashNode)
      .sort((a, b) => a.hostname.localeCompare(b.hostname) || a.id.localeCompare(b.id)),
    services: tx
      .listServices()
      .map((s) => dashService(s, tasks, history))
      .sort((a, b) => a.name.localeCompare(b.name)),
    tasks: tasks
      .map(dashTask)
      .sort(
        (a, b) =>
          a.serviceName.localeCompare(b.serviceName) ||
          a.slot - b.slot ||
          a.timestamp - b.timestamp,
      ),
  };
}

export function dashNode(n: Node): DashNode {
  return {
    id: n.id,
    hostname: n.hostname,
    role: n.role,
    availability: n.availability,
    status: n.status,
    addr: n.addr,
    nanoCpus: n.resources.nanoCpus,
    memoryBytes: n.resources.memoryBytes,
    engineVersion: n.engineVersion,
    labels: { ...n.labels },
  };
}

export function dashService(s: Service, tasks: Task[], history?: AutoscaleHistory): DashService {
  const { running, desired } = summary(s.id, s, tasks);
  // `autoscale` is a spec section another part of shoal adds; shown when a spec has it.
  const autoscale = (s.spec as { autoscale?: unknown }).autoscale;
  return {
    id: s.id,
    name: s.spec.name,
    mode: "replicated" in s.spec.mode ? "replicated" : "global",
    desired,
    running,
    ports: s.spec.ports.map((p) => ({ ...p })),
    image: s.spec.driver === "docker" ? s.spec.image : s.spec.command.join(" "),
    version: s.version,
    updateStatus: s.updateStatus ? { ...s.updateStatus } : null,
    canRollback: s.previousSpec !== null,
    ...(autoscale !== undefined ? { autoscale } : {}),
    ...(autoscale !== undefined && s.autoscaleStatus
      ? { autoscaleStatus: { ...s.autoscaleStatus } }
      : {}),
    ...(autoscale !== undefined && history
      ? { autoscaleHistory: history.of(s.id).map((p) => ({ ...p })) }
      : {}),
  };
}

export function dashTask(t: Task): DashTask {
  return {
    id: t.id,
    serviceId: t.serviceId,
    serviceName: t.serviceName,
    slot: t.slot,
    nodeId: t.nodeId,
    state: t.status.state,
    desiredState: t.desiredState,
    ...(t.status.health ? { health: t.status.health.status } : {}),
    message: t.status.message,
    err: t.status.err,
    timestamp: t.status.timestamp,
  };
}
