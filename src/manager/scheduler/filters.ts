// The scheduler's node filters and the per-node bookkeeping they read. Each filter follows
// Swarm's shape: `setTask(t)` says whether it applies to the task (and remembers what it needs),
// `check(info)` says whether the node passes, and `explain(n)` turns a failure count into the
// words of "no suitable node (...)". Filters are stateful per task, so a pipeline gets fresh ones.

import { isTerminal, type Node, type Task } from "../../api/types.js";
import { constraintMatches, parseConstraint, type Constraint } from "./constraint.js";

/** What the scheduler knows about one node while it places a batch of tasks. */
export interface NodeInfo {
  node: Node;
  /** Live (non-terminal) tasks on the node, including those placed earlier in this call. */
  tasks: number;
  tasksByService: Map<string, number>;
  /**
   * Per service, its live tasks that are meant to run (desired running or ready): a task being
   * stopped still holds its resources but no longer counts against max replicas per node or a
   * spread preference, as in swarmkit.
   */
  activeByService: Map<string, number>;
  /** Host-mode published ports in use: `tcp/8080`. */
  hostPorts: Set<string>;
  /** The node's resources minus the reservations of its live tasks. */
  available: { cpus: number; memoryBytes: number };
}

export function newNodeInfo(node: Node): NodeInfo {
  return {
    node,
    tasks: 0,
    tasksByService: new Map(),
    activeByService: new Map(),
    hostPorts: new Set(),
    available: { cpus: node.resources.nanoCpus, memoryBytes: node.resources.memoryBytes },
  };
}

function hostPortKeys(t: Task): string[] {
  return t.spec.ports.filter((p) => p.mode === "host").map((p) => `${p.protocol}/${p.published}`);
}

/** Accounts a task to the node (an existing live task, or one just placed there). */
export function addTask(info: NodeInfo, t: Task): void {
  if (isTerminal(t.status.state)) return;
  info.tasks++;
  info.tasksByService.set(t.serviceId, (info.tasksByService.get(t.serviceId) ?? 0) + 1);
  if (t.desiredState === "running" || t.desiredState === "ready") {
    info.activeByService.set(t.serviceId, (info.activeByService.get(t.serviceId) ?? 0) + 1);
  }
  for (const k of hostPortKeys(t)) info.hostPorts.add(k);
  info.available.cpus -= t.spec.reservations.cpus;
  info.available.memoryBytes -= t.spec.reservations.memoryBytes;
}

export interface Filter {
  readonly name: string;
  /** Whether the filter applies to this task; remembers the task for `check`. */
  setTask(t: Task): boolean;
  check(info: NodeInfo): boolean;
  explain(failures: number): string;
}

function nodes(n: number): string {
  return n === 1 ? "1 node" : `${n} nodes`;
}

/** Ready and active: down, unknown, paused and drained nodes take no new tasks. */
export class ReadyFilter implements Filter {
  readonly name = "ready";
  setTask(): boolean {
    return true;
  }
  check(info: NodeInfo): boolean {
    return info.node.status === "ready" && info.node.availability === "active";
  }
  explain(failures: number): string {
    return `${nodes(failures)} not available for new tasks`;
  }
}

/** CPU and memory reservations must fit in what the node has left. */
export class ResourceFilter implements Filter {
  readonly name = "resources";
  private cpus = 0;
  private memoryBytes = 0;
  setTask(t: Task): boolean {
    this.cpus = t.spec.reservations.cpus;
    this.memoryBytes = t.spec.reservations.memoryBytes;
    return this.cpus > 0 || this.memoryBytes > 0;
  }
  check(info: NodeInfo): boolean {
    return this.cpus <= info.available.cpus && this.memoryBytes <= info.available.memoryBytes;
  }
  explain(failures: number): string {
    return `insufficient resources on ${nodes(failures)}`;
  }
}

/** Placement constraints; a task whose constraints do not parse is not constrained. */
export class ConstraintFilter implements Filter {
  readonly name = "constraints";
  private constraints: Constraint[] = [];
  setTask(t: Task): boolean {
    if (t.spec.constraints.length === 0) return false;
    try {
      this.constraints = t.spec.constraints.map(parseConstraint);
    } catch {
      return false;
    }
    return true;
  }
  check(info: NodeInfo): boolean {
    return this.constraints.every((c) => constraintMatches(c, info.node));
  }
  explain(failures: number): string {
    return `scheduling constraints not satisfied on ${nodes(failures)}`;
  }
}

/** The task's driver must be one the node has (nodes that never said which have them all). */
export class DriverFilter implements Filter {
  readonly name = "driver";
  private driver = "process";
  setTask(t: Task): boolean {
    this.driver = t.spec.driver;
    return this.driver !== "process";
  }
  check(info: NodeInfo): boolean {
    const have = info.node.drivers;
    return have === undefined || have.includes(this.driver);
  }
  explain(failures: number): string {
    return `the ${this.driver} driver is not available on ${nodes(failures)}`;
  }
}

/** A task on networks goes only to a node that can have them (nodes that never said are not
 * filtered). */
export class NetworkFilter implements Filter {
  readonly name = "network";
  private reason = "";
  setTask(t: Task): boolean {
    this.reason = "";
    return (t.spec.networks?.length ?? 0) > 0;
  }
  check(info: NodeInfo): boolean {
    const n = info.node.networks;
    if (n === undefined || n.overlay) return true;
    this.reason ||= n.reason ?? "";
    return false;
  }
  explain(failures: number): string {
    const why = this.reason ? ` (${this.reason})` : "";
    return `overlay networks are not available on ${nodes(failures)}${why}`;
  }
}

/**
 * A task with CPU or memory limits goes only where its driver can enforce them (a node without
 * the cgroup controllers would start it, fail it, and restart it for ever). Nodes that never
 * said what they can enforce are not filtered.
 */
export class LimitsFilter implements Filter {
  readonly name = "limits";
  private driver = "process";
  private cpu = false;
  private memory = false;
  setTask(t: Task): boolean {
    this.driver = t.spec.driver;
    this.cpu = t.spec.limits.cpus > 0;
    this.memory = t.spec.limits.memoryBytes > 0;
    return this.cpu || this.memory;
  }
  check(info: NodeInfo): boolean {
    const all = info.node.limits;
    if (all === undefined) return true;
    const can = all[this.driver];
    return can !== undefined && (!this.cpu || can.cpu) && (!this.memory || can.memory);
  }
  explain(failures: number): string {
    const what = this.cpu && this.memory ? "CPU and memory" : this.cpu ? "CPU" : "memory";
    return `the ${this.driver} driver cannot enforce ${what} limits on ${nodes(failures)}`;
  }
}

/** A host-mode published port can be held by one task per node. */
export class HostPortFilter implements Filter {
  readonly name = "host-ports";
  private ports: string[] = [];
  setTask(t: Task): boolean {
    this.ports = hostPortKeys(t);
    return this.ports.length > 0;
  }
  check(info: NodeInfo): boolean {
    return this.ports.every((p) => !info.hostPorts.has(p));
  }
  explain(failures: number): string {
    return `host-mode port already in use on ${nodes(failures)}`;
  }
}

/**
 * Max replicas per node (`--replicas-max-per-node`): a node takes a task only while it has fewer
 * active tasks of the service. Swarm's words name no count: "max replicas per node limit exceed".
 */
export class MaxReplicasFilter implements Filter {
  readonly name = "max-replicas";
  private serviceId = "";
  private max = 0;
  setTask(t: Task): boolean {
    this.serviceId = t.serviceId;
    this.max = "replicated" in t.spec.mode ? (t.spec.maxReplicasPerNode ?? 0) : 0;
    return this.max > 0;
  }
  check(info: NodeInfo): boolean {
    return (info.activeByService.get(this.serviceId) ?? 0) < this.max;
  }
  explain(): string {
    return "max replicas per node limit exceed";
  }
}

/**
 * The default filters, in the order they run. A node is counted against the first filter it
 * fails, so the structural reasons (availability, constraints, ports) come before the one that
 * depends on load (resources).
 */
export function defaultFilters(): Filter[] {
  return [
    new ReadyFilter(),
    new DriverFilter(),
    new NetworkFilter(),
    new LimitsFilter(),
    new ConstraintFilter(),
    new HostPortFilter(),
    new MaxReplicasFilter(),
    new ResourceFilter(),
  ];
}
