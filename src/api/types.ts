// The cluster's state model, in Swarm's words: nodes, services (a spec and a version) and
// tasks (one running instance of a service in a slot, with a desired and an observed state).
// Everything here is plain JSON so it can be stored, sent over the bus and shown by the API.

export type NodeRole = "manager" | "worker";
export type NodeAvailability = "active" | "pause" | "drain";
export type NodeStatus = "ready" | "down" | "unknown";

export interface NodeResources {
  /** CPUs (e.g. 2, or 0.5). */
  nanoCpus: number;
  memoryBytes: number;
}

/** Which resource limits a driver can enforce on a node. */
export interface LimitSupport {
  cpu: boolean;
  memory: boolean;
}

/** What a node's runtime reports about itself in every heartbeat (one registration path). */
export interface NodeFacts {
  /** The shoal version the node runs (node ls: ENGINE VERSION). */
  engineVersion: string;
  drivers: string[];
  resources: NodeResources;
  limits: Record<string, LimitSupport>;
}

export interface Node {
  id: string;
  hostname: string;
  role: NodeRole;
  availability: NodeAvailability;
  status: NodeStatus;
  /** Address other nodes reach it on. */
  addr: string;
  labels: Record<string, string>;
  resources: NodeResources;
  engineVersion: string;
  /** The task drivers the node's agent has (process, docker); absent = not reported. */
  drivers?: string[];
  /** Per driver, which resource limits it can enforce on the node; absent = not reported. */
  limits?: Record<string, LimitSupport>;
  /** The heartbeat that last made the node ready (ms since epoch); later heartbeats are kept
   * in the manager's memory (Liveness), not written here. */
  lastSeen: number;
  createdAt: number;
  updatedAt: number;
}

export type RestartCondition = "none" | "on-failure" | "any";

export interface RestartPolicy {
  condition: RestartCondition;
  /** Delay before a replacement starts, ms (Swarm's default 5 s). */
  delayMs: number;
  /** 0 = unlimited. */
  maxAttempts: number;
  /** Window in which attempts are counted, ms; 0 = forever. */
  windowMs: number;
}

export interface PortConfig {
  /** Published port on every node (routing mesh). */
  published: number;
  /** Port the task listens on. */
  target: number;
  protocol: "tcp" | "udp";
  /** "ingress" (routing mesh) or "host" (the node's own port, one task per node). */
  mode: "ingress" | "host";
}

export interface Resources {
  /** CPU limit in CPUs (0 = none). */
  cpus: number;
  /** Memory limit in bytes (0 = none). */
  memoryBytes: number;
}

export interface ServiceSpec {
  name: string;
  /** Driver: "process" runs a command on the node; "docker" runs an image. */
  driver: "process" | "docker";
  /** For the docker driver. */
  image: string;
  /** Command and arguments (process driver: required; docker: overrides the image's). */
  command: string[];
  env: Record<string, string>;
  workdir: string;
  labels: Record<string, string>;
  mode: { replicated: { replicas: number } } | { global: Record<string, never> };
  ports: PortConfig[];
  restartPolicy: RestartPolicy;
  limits: Resources;
  reservations: Resources;
  /** Placement constraints like "node.role==worker", "node.labels.zone==a". */
  constraints: string[];
  stopGracePeriodMs: number;
  stopSignal: string;
  /** How a spec change replaces running tasks (Swarm's UpdateConfig). */
  update: UpdateConfig;
  /**
   * host: the task shares the node's network and gets a free port per published target in
   * PORT / SHOAL_PORT_<target>. bridge: the task runs in a network namespace of its own, on the
   * node's task bridge, and listens on the target port itself (Linux, as root).
   */
  network?: NetworkMode;
}

export type NetworkMode = "host" | "bridge";

/** A spec's network mode (host unless it says otherwise). */
export function networkOf(spec: ServiceSpec): NetworkMode {
  return spec.network ?? "host";
}

/** Swarm's rolling update settings (`--update-parallelism`, `--update-delay`, `--update-order`). */
export interface UpdateConfig {
  /** Slots replaced at the same time; 0 = all at once. */
  parallelism: number;
  /** Wait after a slot's new task runs before that worker takes the next slot. */
  delayMs: number;
  /** stop-first: the old task stops, then the new one starts; start-first: the reverse. */
  order: "stop-first" | "start-first";
  /** What a failed replacement does to the update: pause it, ignore it, or roll back. */
  failureAction: "pause" | "continue" | "rollback";
  /** A replacement that fails within this long of running counts as a failure. */
  monitorMs: number;
  /** The share of replacements that may fail before the failure action (0: none may). */
  maxFailureRatio: number;
}

export function defaultUpdateConfig(): UpdateConfig {
  return {
    parallelism: 1,
    delayMs: 0,
    order: "stop-first",
    failureAction: "pause",
    monitorMs: 5000,
    maxFailureRatio: 0,
  };
}

/** Where the service's last update (or rollback) is, as Swarm's UpdateStatus. */
export interface UpdateStatus {
  state:
    | "updating"
    | "paused"
    | "completed"
    | "rollback_started"
    | "rollback_paused"
    | "rollback_completed";
  /** The service version this update moves to. */
  version: number;
  startedAt: number;
  completedAt: number | null;
  message: string;
}

/** A spec's update settings (specs stored before they existed get Swarm's defaults). */
export function updateConfigOf(spec: ServiceSpec): UpdateConfig {
  return { ...defaultUpdateConfig(), ...(spec.update ?? {}) };
}

export interface Service {
  id: string;
  spec: ServiceSpec;
  /** Incremented on every spec change; tasks carry the version they were made from. */
  version: number;
  previousSpec: ServiceSpec | null;
  /** Set by the first update; null (or absent) for a service never updated. */
  updateStatus?: UpdateStatus | null;
  createdAt: number;
  updatedAt: number;
}

/** What an agent reports about one of its tasks (on a change, and in every heartbeat). */
export interface TaskReport {
  taskId: string;
  state: TaskState;
  message: string;
  err?: string;
  exitCode?: number | null;
  pid?: number | null;
  hostPorts?: Record<string, number>;
}

/** Task states in order (Swarm's). A task only moves forward. */
export const TASK_STATES = [
  "new",
  "pending",
  "assigned",
  "accepted",
  "preparing",
  "ready",
  "starting",
  "running",
  "complete",
  "shutdown",
  "failed",
  "rejected",
  "orphaned",
] as const;
export type TaskState = (typeof TASK_STATES)[number];

/** What the orchestrator wants of a task: run it, keep it ready (restart delay), or stop it. */
export type DesiredState = "running" | "ready" | "shutdown" | "remove";

export interface TaskStatus {
  state: TaskState;
  /** When the state was entered (ms since epoch). */
  timestamp: number;
  message: string;
  /** Error text shown in `service ps` ERROR, e.g. `task: non-zero exit (1)`. */
  err: string;
  exitCode: number | null;
  /** OS process id (process driver) or container id (docker driver). */
  pid: number | null;
  containerId: string | null;
}

export interface Task {
  id: string;
  serviceId: string;
  serviceName: string;
  /** Replicated services: 1..N. Global services: 0 (one per node). */
  slot: number;
  /** Empty until scheduled. */
  nodeId: string;
  /** The service version this task was made from. */
  specVersion: number;
  spec: ServiceSpec;
  desiredState: DesiredState;
  status: TaskStatus;
  /** Ports the agent chose for this task (host networking): target → host port. */
  hostPorts: Record<string, number>;
  /** Earliest time the task may start (restart delay), ms since epoch; 0 = now. */
  notBefore: number;
  createdAt: number;
  updatedAt: number;
}

export function isTerminal(state: TaskState): boolean {
  return (
    state === "complete" ||
    state === "shutdown" ||
    state === "failed" ||
    state === "rejected" ||
    state === "orphaned"
  );
}

export function stateIndex(state: TaskState): number {
  return TASK_STATES.indexOf(state);
}

export function replicasOf(spec: ServiceSpec): number | null {
  return "replicated" in spec.mode ? spec.mode.replicated.replicas : null;
}

export function defaultRestartPolicy(): RestartPolicy {
  return { condition: "any", delayMs: 5000, maxAttempts: 0, windowMs: 0 };
}

export function defaultServiceSpec(name: string): ServiceSpec {
  return {
    name,
    driver: "process",
    image: "",
    command: [],
    env: {},
    workdir: "",
    labels: {},
    mode: { replicated: { replicas: 1 } },
    ports: [],
    restartPolicy: defaultRestartPolicy(),
    limits: { cpus: 0, memoryBytes: 0 },
    reservations: { cpus: 0, memoryBytes: 0 },
    constraints: [],
    stopGracePeriodMs: 10_000,
    stopSignal: "SIGTERM",
    update: defaultUpdateConfig(),
    network: "host",
  };
}
