// The node's figures in Prometheus' text format (prom-client), as its `/metrics` serves them
// (src/daemon/metrics-server.ts): per task, what it uses at the last sampling round (labels:
// task id and name, service, node); the node's totals; and the daemon's own process and Node.js
// figures (prom-client's default metrics). A registry per node runtime, never the global one, so
// several daemons in one process (tests) do not mix their series.
//
//   shoal_task_cpu_cores{task_id,task_name,service_id,service_name,node_id,node}
//   shoal_task_memory_bytes, shoal_task_memory_limit_bytes (tasks with a limit)
//   shoal_task_network_receive_bytes, shoal_task_network_transmit_bytes (own netns; cumulative)
//   shoal_task_block_read_bytes, shoal_task_block_write_bytes (cumulative), shoal_task_pids
//   shoal_node_tasks, shoal_node_cpu_cores_used, shoal_node_memory_used_bytes (sums over tasks)
//   shoal_node_cpus, shoal_node_memory_bytes (what the node offers)
//   process_*, nodejs_* (the daemon itself)

import { collectDefaultMetrics, Gauge, Registry } from "prom-client";
import type { SampledStats } from "./metrics.js";

const TASK_LABELS = [
  "task_id",
  "task_name",
  "service_id",
  "service_name",
  "node_id",
  "node",
] as const;
type TaskLabel = (typeof TASK_LABELS)[number];

export interface NodeMetricsOptions {
  nodeId: string;
  hostname: string;
  /** The tasks' latest figures (the sampler's). */
  latest: () => SampledStats[];
  /** What the node offers: CPUs and memory bytes. */
  resources: { nanoCpus: number; memoryBytes: number };
}

export class NodeMetrics {
  readonly registry = new Registry();
  private readonly task: Record<
    "cpu" | "memory" | "memoryLimit" | "netRx" | "netTx" | "blockRead" | "blockWrite" | "pids",
    Gauge<TaskLabel>
  >;
  private readonly node: Record<"tasks" | "cpu" | "memory", Gauge<"node_id" | "node">>;

  constructor(private readonly opts: NodeMetricsOptions) {
    const registers = [this.registry];
    const taskGauge = (name: string, help: string) =>
      new Gauge({ name, help, labelNames: TASK_LABELS, registers });
    this.task = {
      cpu: taskGauge(
        "shoal_task_cpu_cores",
        "CPU the task used over the last sampling interval, in cores.",
      ),
      memory: taskGauge("shoal_task_memory_bytes", "Resident memory of the task."),
      memoryLimit: taskGauge("shoal_task_memory_limit_bytes", "The task's memory limit."),
      netRx: taskGauge(
        "shoal_task_network_receive_bytes",
        "Bytes the task received on its own network namespace (cumulative).",
      ),
      netTx: taskGauge(
        "shoal_task_network_transmit_bytes",
        "Bytes the task sent on its own network namespace (cumulative).",
      ),
      blockRead: taskGauge(
        "shoal_task_block_read_bytes",
        "Bytes the task read from block devices (cumulative).",
      ),
      blockWrite: taskGauge(
        "shoal_task_block_write_bytes",
        "Bytes the task wrote to block devices (cumulative).",
      ),
      pids: taskGauge("shoal_task_pids", "Processes in the task."),
    };
    const nodeGauge = (name: string, help: string) =>
      new Gauge({ name, help, labelNames: ["node_id", "node"] as const, registers });
    this.node = {
      tasks: nodeGauge("shoal_node_tasks", "Tasks sampled on this node."),
      cpu: nodeGauge("shoal_node_cpu_cores_used", "CPU the node's tasks used, in cores."),
      memory: nodeGauge("shoal_node_memory_used_bytes", "Resident memory of the node's tasks."),
    };
    const n = { node_id: opts.nodeId, node: opts.hostname };
    new Gauge({
      name: "shoal_node_cpus",
      help: "CPUs the node offers to tasks.",
      labelNames: ["node_id", "node"] as const,
      registers,
    }).set(n, opts.resources.nanoCpus);
    new Gauge({
      name: "shoal_node_memory_bytes",
      help: "Memory the node offers to tasks.",
      labelNames: ["node_id", "node"] as const,
      registers,
    }).set(n, opts.resources.memoryBytes);
    collectDefaultMetrics({ register: this.registry });
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The text of a scrape: the latest round's figures (tasks gone since are not listed). */
  async render(): Promise<string> {
    for (const g of Object.values(this.task)) g.reset();
    const n = { node_id: this.opts.nodeId, node: this.opts.hostname };
    let cpu = 0;
    let memory = 0;
    const latest = this.opts.latest();
    for (const s of latest) {
      const l = {
        task_id: s.taskId,
        task_name: s.name,
        service_id: s.serviceId,
        service_name: s.serviceName,
        ...n,
      };
      this.task.cpu.set(l, s.cpuCores);
      this.task.memory.set(l, s.memoryBytes);
      if (s.memoryLimitBytes !== undefined) this.task.memoryLimit.set(l, s.memoryLimitBytes);
      if (s.netRxBytes !== undefined) this.task.netRx.set(l, s.netRxBytes);
      if (s.netTxBytes !== undefined) this.task.netTx.set(l, s.netTxBytes);
      if (s.blockReadBytes !== undefined) this.task.blockRead.set(l, s.blockReadBytes);
      if (s.blockWriteBytes !== undefined) this.task.blockWrite.set(l, s.blockWriteBytes);
      if (s.pids !== undefined) this.task.pids.set(l, s.pids);
      cpu += s.cpuCores;
      memory += s.memoryBytes;
    }
    this.node.tasks.set(n, latest.length);
    this.node.cpu.set(n, Math.round(cpu * 10_000) / 10_000);
    this.node.memory.set(n, memory);
    return this.registry.metrics();
  }
}
