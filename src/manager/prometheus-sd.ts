// Prometheus' HTTP service discovery (`http_sd_configs`) of a swarm: the answer a manager's
// metrics server gives on `GET /sd` — a list of target groups,
// `[{"targets": ["host:port"], "labels": {...}}]`.
//
// - Every node's own `/metrics` (the port its heartbeats report, `--metrics-addr`), one group
//   per node, down nodes included (Prometheus then shows them down).
// - Every running task of a service that declares a metrics port with the widespread
//   annotation convention, as service labels (`--label`, compose `deploy.labels`):
//     prometheus.io/port    the port the task serves metrics on (its target port) — required
//     prometheus.io/path    the path (default /metrics), given as `__metrics_path__`
//     prometheus.io/scrape  "false" leaves the service out
//   The address: the node's address and the host port the agent mapped the target port to
//   (a published port's target), else the node's address and the port itself (a task on the
//   host's network listening on a fixed port).
//
// Labels name what a target is: `shoal_kind` ("node" or "task"), `shoal_node_id`, `shoal_node`
// (hostname), and for tasks `shoal_service`, `shoal_service_id`, `shoal_task_id`,
// `shoal_task_slot`. Pure: it reads one store view.

import type { ReadTx } from "../store/store.js";
import { joinHostPort } from "../lib/addr.js";

export interface TargetGroup {
  targets: string[];
  labels: Record<string, string>;
}

export const SD_PORT_LABEL = "prometheus.io/port";
export const SD_PATH_LABEL = "prometheus.io/path";
export const SD_SCRAPE_LABEL = "prometheus.io/scrape";

/** The target groups of the swarm; `metricsPortOf` gives a node's /metrics port if known. */
export function prometheusTargets(
  tx: ReadTx,
  metricsPortOf: (nodeId: string) => number | undefined,
): TargetGroup[] {
  const out: TargetGroup[] = [];
  const nodes = new Map(tx.listNodes().map((n) => [n.id, n]));
  for (const n of nodes.values()) {
    const port = metricsPortOf(n.id);
    if (port === undefined) continue;
    out.push({
      targets: [joinHostPort(n.addr, port)],
      labels: {
        shoal_kind: "node",
        shoal_node_id: n.id,
        shoal_node: n.hostname,
        shoal_node_role: n.role,
      },
    });
  }
  for (const s of tx.listServices()) {
    const labels = s.spec.labels;
    const portText = labels[SD_PORT_LABEL];
    if (portText === undefined || labels[SD_SCRAPE_LABEL] === "false") continue;
    const port = Number(portText);
    if (!Number.isInteger(port) || port < 1 || port > 65535) continue;
    const path = labels[SD_PATH_LABEL];
    for (const t of tx.listTasks({ serviceId: s.id })) {
      if (t.status.state !== "running" || t.desiredState !== "running") continue;
      const node = nodes.get(t.nodeId);
      if (!node || node.status !== "ready") continue;
      const hostPort = t.hostPorts[String(port)] ?? port;
      out.push({
        targets: [joinHostPort(node.addr, hostPort)],
        labels: {
          shoal_kind: "task",
          shoal_service: s.spec.name,
          shoal_service_id: s.id,
          shoal_task_id: t.id,
          shoal_task_slot: String(t.slot),
          shoal_node_id: node.id,
          shoal_node: node.hostname,
          ...(path ? { __metrics_path__: path } : {}),
        },
      });
    }
  }
  return out;
}
