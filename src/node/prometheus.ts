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
//   shoal_router_requests_total{service,service_id}            requests the HTTP router sent on
//   shoal_router_request_duration_seconds{service,service_id}  histogram: request head read to
//                                                              response head sent
//   shoal_mesh_connections_total{service,service_id}           connections the mesh forwarded
//   shoal_mesh_bytes_total{service,service_id,direction}       "in": clients to tasks, "out": back
//   process_*, nodejs_* (the daemon itself)

import {
  collectDefaultMetrics,
  Counter,
  Gauge,
  Histogram,
  Registry,
  type MetricObjectWithValues,
  type MetricType,
  type MetricValueWithName,
} from "prom-client";
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

/** The node's router and routing mesh figures per service, cumulative (the daemon's edge). */
export interface TrafficFigures {
  router: Array<{
    serviceId: string;
    service: string;
    requests: number;
    latency: {
      /** Upper bounds in seconds; `buckets` has one more entry (+Inf), not cumulative. */
      bounds: readonly number[];
      buckets: ArrayLike<number>;
      count: number;
      sumSeconds: number;
    };
  }>;
  mesh: Array<{
    serviceId: string;
    service: string;
    connections: number;
    bytesIn: number;
    bytesOut: number;
  }>;
}

type ServiceLabel = "service" | "service_id";
type HistogramValues = MetricObjectWithValues<MetricValueWithName<ServiceLabel | "le">>;

/**
 * A histogram whose observations are bucketed elsewhere (the router's, per request, without
 * prom-client's per-observation label hashing): a scrape reads the buckets as they are.
 */
class BucketedHistogram extends Histogram<ServiceLabel | "le"> {
  constructor(
    private readonly metricName: string,
    private readonly helpText: string,
    private readonly read: () => TrafficFigures["router"],
    registers: Registry[],
  ) {
    super({ name: metricName, help: helpText, labelNames: ["service", "service_id"], registers });
  }

  override get(): Promise<HistogramValues> {
    return this.getForPromString();
  }

  /** What the registry reads for the text format (prom-client's Histogram has one too). */
  getForPromString(): Promise<HistogramValues> {
    const name = this.metricName;
    const values: HistogramValues["values"] = [];
    for (const r of this.read()) {
      const labels = { service: r.service, service_id: r.serviceId };
      const { bounds, buckets, count, sumSeconds } = r.latency;
      let cum = 0;
      for (let i = 0; i < bounds.length; i++) {
        cum += buckets[i]!;
        values.push({
          labels: { ...labels, le: bounds[i]! },
          value: cum,
          metricName: `${name}_bucket`,
        });
      }
      values.push({
        labels: { ...labels, le: "+Inf" },
        value: count,
        metricName: `${name}_bucket`,
      });
      values.push({ labels, value: sumSeconds, metricName: `${name}_sum` });
      values.push({ labels, value: count, metricName: `${name}_count` });
    }
    return Promise.resolve({
      name,
      help: this.helpText,
      // The registry writes `# TYPE <name> <type>` from it: the string prom-client's own
      // histograms carry (its typings call the field an enum).
      type: "histogram" as unknown as MetricType,
      values,
      aggregator: "sum",
      collect: () => {},
    });
  }
}

export interface NodeMetricsOptions {
  nodeId: string;
  hostname: string;
  /** The tasks' latest figures (the sampler's). */
  latest: () => SampledStats[];
  /** What the node offers: CPUs and memory bytes. */
  resources: { nanoCpus: number; memoryBytes: number };
  /** The router's and the mesh's figures (none: the series are not listed). */
  traffic?: () => TrafficFigures;
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
    this.trafficMetrics(registers);
    collectDefaultMetrics({ register: this.registry });
  }

  /** The router's and the mesh's series, read from `traffic` at every scrape. */
  private trafficMetrics(registers: Registry[]): void {
    const traffic = this.opts.traffic;
    if (traffic === undefined) return;
    const labelNames = ["service", "service_id"] as const;
    const requests = new Counter({
      name: "shoal_router_requests_total",
      help: "Requests the HTTP router sent on to the service's tasks.",
      labelNames,
      registers,
      collect: () => {
        requests.reset();
        for (const r of traffic().router) {
          requests.inc({ service: r.service, service_id: r.serviceId }, r.requests);
        }
      },
    });
    new BucketedHistogram(
      "shoal_router_request_duration_seconds",
      "Time from a request's head read by the HTTP router to the response head sent to the client.",
      () => traffic().router,
      registers,
    );
    const connections = new Counter({
      name: "shoal_mesh_connections_total",
      help: "Connections the routing mesh forwarded to the service's tasks.",
      labelNames,
      registers,
      collect: () => {
        connections.reset();
        for (const m of traffic().mesh) {
          connections.inc({ service: m.service, service_id: m.serviceId }, m.connections);
        }
      },
    });
    const bytes = new Counter({
      name: "shoal_mesh_bytes_total",
      help: 'Bytes through the routing mesh: "in" from clients to tasks, "out" back.',
      labelNames: [...labelNames, "direction"] as const,
      registers,
      collect: () => {
        bytes.reset();
        for (const m of traffic().mesh) {
          const l = { service: m.service, service_id: m.serviceId };
          bytes.inc({ ...l, direction: "in" }, m.bytesIn);
          bytes.inc({ ...l, direction: "out" }, m.bytesOut);
        }
      },
    });
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
