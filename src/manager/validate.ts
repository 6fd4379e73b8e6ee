// Validation of service specs: before the manager stores one, and on every reconcile pass for
// the ones already stored. First the spec's schema with its bounds (types, ranges, enums, sizes
// and counts — ServiceSpecInputSchema in src/api/types.ts), then what a schema cannot say: a
// command or an image for the chosen driver, a stop signal this system knows, environment
// variable names, the command's total length, a published port given once, placement
// constraints and preferences that parse, max replicas per node only for replicated services,
// the swarm's replica limit, and the message server's export and import labels (bus-users.ts).
// A bad spec is refused with a message that names the field, and nothing is stored; a stored
// spec that no longer passes is reported by the manager and left alone, never fatal.

import { parseConstraint, preferenceProblem } from "./scheduler/index.js";
import { closed, problems, schemaError } from "../api/schema.js";
import {
  DEFAULT_MAX_REPLICAS,
  SPEC_LIMITS,
  ServiceSpecInputSchema,
  type ServiceSpec,
} from "../api/types.js";
import { signalOf } from "../lib/signals.js";
import { shareLabelProblems } from "./bus-users.js";

const SpecInput = closed(ServiceSpecInputSchema);

export interface SpecLimits {
  /** The swarm's `maxReplicas`. */
  maxReplicas: number;
}

/**
 * What is wrong with a spec, one sentence per problem naming its field (empty: nothing).
 * `stored` checks a spec already in the store: fields it does not know are not problems (a
 * newer version may have written them).
 */
export function specProblems(
  spec: unknown,
  limits: SpecLimits = { maxReplicas: DEFAULT_MAX_REPLICAS },
  opts: { stored?: boolean } = {},
): string[] {
  const found = problems(opts.stored ? ServiceSpecInputSchema : SpecInput, spec, "spec");
  if (found.length > 0) return found;
  const s = spec as ServiceSpec;
  const out: string[] = [];
  if (s.driver === "process" && s.command.length === 0) {
    out.push("a command is required: shoal service create [OPTIONS] -- COMMAND [ARG...]");
  }
  if (s.driver === "docker" && !s.image) out.push("the docker driver needs an image");
  const total = s.command.reduce((n, a) => n + a.length, 0);
  if (total > SPEC_LIMITS.commandLength) {
    out.push(`spec.command must be at most ${SPEC_LIMITS.commandLength} characters in all`);
  }
  if ("replicated" in s.mode && s.mode.replicated.replicas > limits.maxReplicas) {
    out.push(
      `spec.mode.replicated.replicas must be <= ${limits.maxReplicas} (the swarm's maxReplicas)`,
    );
  }
  if (signalOf(s.stopSignal) === null) {
    out.push(`spec.stopSignal ${JSON.stringify(s.stopSignal)} is not a known signal`);
  }
  for (const name of Object.keys(s.env)) {
    const label = `spec.env[${JSON.stringify(name)}]`;
    if (name === "") out.push("spec.env has a variable with an empty name");
    else if (name.includes("=")) out.push(`${label}: a variable name must not contain '='`);
    else if (name.includes("\0")) out.push(`${label}: a variable name must not contain NUL`);
    else if (name.length > SPEC_LIMITS.envNameLength) {
      out.push(`${label}: a variable name must be at most ${SPEC_LIMITS.envNameLength} characters`);
    }
  }
  for (const key of Object.keys(s.labels)) {
    if (key === "") out.push("spec.labels has a label with an empty key");
    else if (key.length > SPEC_LIMITS.labelKeyLength) {
      out.push(`spec.labels: a key must be at most ${SPEC_LIMITS.labelKeyLength} characters`);
    }
  }
  // A stored spec's bad share labels are only left out of its account (bus-users.ts warns):
  // labels that once meant nothing must not stop a service's orchestration.
  if (!opts.stored) out.push(...shareLabelProblems(s.labels));
  const seen = new Set<string>();
  for (const p of s.ports) {
    const key = `${p.published}/${p.protocol}`;
    if (seen.has(key)) out.push(`published port ${key} is given twice`);
    seen.add(key);
  }
  out.push(...healthProblems(s));
  for (const d of s.dependsOn ?? []) {
    if (d.service === s.name)
      out.push(`spec.dependsOn: service "${s.name}" cannot depend on itself`);
  }
  out.push(...mountProblems(s));
  for (const c of s.constraints) {
    try {
      parseConstraint(c);
    } catch (err) {
      out.push((err as Error).message);
    }
  }
  for (const p of s.preferences ?? []) {
    const problem = preferenceProblem(p);
    if (problem !== null) out.push(problem);
  }
  if ((s.maxReplicasPerNode ?? 0) > 0 && !("replicated" in s.mode)) {
    out.push("spec.maxReplicasPerNode can only be used with replicated mode");
  }
  out.push(...autoscaleProblems(s, limits));
  return out;
}

/** What the autoscaling policy's schema cannot say: bounds in order, a target, a basis for %. */
export function autoscaleProblems(s: ServiceSpec, limits: SpecLimits): string[] {
  const a = s.autoscale;
  if (!a) return [];
  const out: string[] = [];
  if (!("replicated" in s.mode)) out.push("spec.autoscale can only be used with replicated mode");
  if (a.min > a.max) {
    out.push(`spec.autoscale: min (${a.min}) must not be above max (${a.max})`);
  }
  if (a.max > limits.maxReplicas) {
    out.push(`spec.autoscale.max must be <= ${limits.maxReplicas} (the swarm's maxReplicas)`);
  }
  if (a.cpuPercent === undefined && a.memoryPercent === undefined && a.rps === undefined) {
    out.push("spec.autoscale needs a target: cpuPercent, memoryPercent or rps");
  }
  if (a.memoryPercent !== undefined && !s.limits.memoryBytes && !s.reservations.memoryBytes) {
    out.push(
      "spec.autoscale.memoryPercent needs a memory limit or reservation (--limit-memory or --reserve-memory): the percent is of it",
    );
  }
  return out;
}

/** Docker's rules for a health check: its test's form, and durations of 0 or at least 1 ms. */
function healthProblems(s: ServiceSpec): string[] {
  const h = s.healthcheck;
  if (!h) return [];
  const out: string[] = [];
  const [kind, ...rest] = h.test;
  if (kind !== undefined && kind !== "CMD" && kind !== "CMD-SHELL" && kind !== "NONE") {
    out.push(
      `spec.healthcheck.test must start with "CMD", "CMD-SHELL" or "NONE", not ${JSON.stringify(kind)}`,
    );
  } else if ((kind === "CMD" || kind === "CMD-SHELL") && rest.length === 0) {
    out.push(`spec.healthcheck.test: ${kind} needs a command`);
  } else if (kind === "NONE" && rest.length > 0) {
    out.push('spec.healthcheck.test: "NONE" takes no command');
  }
  const names = {
    intervalMs: "Interval",
    timeoutMs: "Timeout",
    startPeriodMs: "StartPeriod",
    startIntervalMs: "StartInterval",
  } as const;
  for (const [k, name] of Object.entries(names) as Array<[keyof typeof names, string]>) {
    if (h[k] > 0 && h[k] < 1) out.push(`spec.healthcheck: ${name} cannot be less than 1ms`);
  }
  return out;
}

/** A local volume's name, as Docker's local driver allows it. */
const VOLUME_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;

/** Swarm's rules for mounts (its daemon's and manager's words): paths, sources, one per target. */
function mountProblems(s: ServiceSpec): string[] {
  const out: string[] = [];
  const targets = new Set<string>();
  for (const m of s.mounts ?? []) {
    if (!m.target.startsWith("/")) {
      out.push(`invalid mount target, must be an absolute path: ${m.target}`);
    } else if (targets.has(m.target)) {
      out.push(`duplicate mount point: ${m.target}`);
    }
    targets.add(m.target);
    if (m.type === "bind" && !m.source.startsWith("/")) {
      out.push(`invalid bind mount source, must be an absolute path: ${m.source}`);
    } else if (m.type === "volume" && m.source.startsWith("/")) {
      out.push(`invalid volume mount source, must not be an absolute path: ${m.source}`);
    } else if (m.type === "volume" && m.source !== "" && !VOLUME_NAME.test(m.source)) {
      out.push(
        `"${m.source}" includes invalid characters for a local volume name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, use absolute path`,
      );
    } else if (m.type === "tmpfs" && m.source !== "") {
      out.push("invalid tmpfs source, source must be empty");
    }
  }
  return out;
}

/** Throws a SchemaError (ERR_INVALID) naming every problem of a spec a client sent (see specProblems). */
export function validateSpec(spec: ServiceSpec, limits?: SpecLimits): void {
  const found = specProblems(spec, limits);
  if (found.length > 0) throw schemaError(found);
}
