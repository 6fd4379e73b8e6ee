// Small pure helpers on the state model (task states, defaults, spec accessors). They live apart
// from the schemas (types.ts, which re-exports them) so a caller that needs only these — the CLI —
// does not load TypeBox.

import type {
  AutoscalePolicy,
  NetworkMode,
  RestartPolicy,
  RollbackConfig,
  Service,
  ServiceSpec,
  Task,
  TaskState,
  UpdateConfig,
} from "./types.js";

/** The stack a service, network, secret or config belongs to (Docker's label). */
export const NAMESPACE_LABEL = "com.docker.stack.namespace";

/**
 * Labels by which a service shares subjects between the message server's accounts of stacks
 * (src/manager/bus-users.ts): exports from its own account, `<subject>[,<subject>...]`; imports
 * into it, `<stack>:<subject>[,...]` (`apps`: the account of services outside stacks).
 */
export const NATS_EXPORT_STREAM_LABEL = "shoal.nats.export.stream";
export const NATS_EXPORT_SERVICE_LABEL = "shoal.nats.export.service";
export const NATS_IMPORT_STREAM_LABEL = "shoal.nats.import.stream";
export const NATS_IMPORT_SERVICE_LABEL = "shoal.nats.import.service";

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

/** A spec's network mode (host unless it says otherwise). */
export function networkOf(spec: ServiceSpec): NetworkMode {
  return spec.network ?? "host";
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

/** A spec's update settings (specs stored before they existed get Swarm's defaults). */
export function updateConfigOf(spec: ServiceSpec): UpdateConfig {
  return { ...defaultUpdateConfig(), ...(spec.update ?? {}) };
}

/** Swarm's rollback defaults (the same as an update's, pausing on failure). */
export function defaultRollbackConfig(): RollbackConfig {
  return {
    parallelism: 1,
    delayMs: 0,
    order: "stop-first",
    failureAction: "pause",
    monitorMs: 5000,
    maxFailureRatio: 0,
  };
}

/** A spec's rollback settings, with Swarm's defaults for what it does not say. */
export function rollbackConfigOf(spec: ServiceSpec): RollbackConfig {
  return { ...defaultRollbackConfig(), ...(spec.rollback ?? {}) };
}

/**
 * The settings the orchestrator rolls a service's tasks with now: its rollback settings while a
 * rollback to its current version is under way (started or paused), else its update settings.
 * As swarmkit, the spec is the one rolled back to, so these are that spec's rollback settings.
 */
export function activeUpdateConfig(s: Service): UpdateConfig | RollbackConfig {
  const st = s.updateStatus;
  const rollingBack =
    !!st &&
    st.version === s.version &&
    (st.state === "rollback_started" || st.state === "rollback_paused");
  return rollingBack ? rollbackConfigOf(s.spec) : updateConfigOf(s.spec);
}

/** Kubernetes' HPA defaults: scale down to the highest recommendation of 5 min; every 15 s. */
export const AUTOSCALE_DEFAULTS = { stabilizationMs: 300_000, evaluationMs: 15_000 } as const;

/** A spec's autoscaling policy with the defaults filled in (null: the service has none). */
export function autoscaleOf(
  spec: ServiceSpec,
): (AutoscalePolicy & Required<Pick<AutoscalePolicy, "stabilizationMs" | "evaluationMs">>) | null {
  if (!spec.autoscale) return null;
  return { ...AUTOSCALE_DEFAULTS, ...spec.autoscale };
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

/**
 * Whether a task may be sent traffic (DNS answers, VIP backends, the routing mesh): it runs, is
 * meant to, and its health check (if any) has not found it unhealthy. A task with a health
 * check is `starting`, not running, until its first healthy result.
 */
export function servesTraffic(t: Task): boolean {
  return (
    t.status.state === "running" &&
    t.desiredState === "running" &&
    t.status.health?.status !== "unhealthy"
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
