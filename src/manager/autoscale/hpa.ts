// The autoscaling decision, pure: Kubernetes' Horizontal Pod Autoscaler rules (its replica
// calculator and its default scaling behaviour), which users know. Given a service's policy, its
// current replica count, one sample per task and the time, `decide` returns the replicas the
// service should have and why, plus the next state (the history the rules need). Nothing here
// reads a clock or the store: the Autoscaler (autoscaler.ts) feeds it.
//
// Per target (cpu %, memory %, rps per task):
//   ratio = average over the running tasks with figures / target;
//   within the tolerance (|ratio - 1| <= 0.1) the count stays; else ceil(ratio * those tasks).
//   Tasks not running yet or without figures (and tasks the count has but no task exists for)
//   are counted conservatively, as HPA counts missing pods: on a scale-up as using nothing, on a
//   scale-down as using max(100 %, target) (rps: the target); a recount that lands within the
//   tolerance or flips the direction keeps the count.
// Then: the highest recommendation of all targets wins (a target without figures forbids a
// scale-down); a scale-up is taken at once but limited to max(2 x, +4) of the count 15 s ago; a
// scale-down goes only to the highest recommendation of the stabilization window (default
// 5 min), so a dip does not remove tasks a peak needs again; the result stays within [min, max].
// A count below min or above max is brought back first; a count of 0 (scaled to zero by hand) is
// left alone, as HPA leaves it.

import type { AutoscalePolicy, ServiceSpec } from "../../api/types.js";
import { formatGoDuration } from "../../lib/duration.js";

export type MetricName = "cpu" | "memory" | "rps";

/** Relative difference from a target that changes nothing (HPA's default tolerance). */
export const TOLERANCE = 0.1;
/** The period of the scale-up limit (HPA's default policies: 100 % or 4 pods per 15 s). */
export const SCALE_UP_PERIOD_MS = 15_000;

/** One task's figures, as the nodes last measured them. */
export interface TaskSample {
  taskId: string;
  /** Whether the task runs; a task that does not is counted conservatively. */
  running: boolean;
  /** CPU used, in cores (1.5 = one and a half cores busy). */
  cpuCores?: number;
  /** Memory used (resident), bytes. */
  memoryBytes?: number;
  /** Requests per second the task received. */
  rps?: number;
}

/** What a task's percentages are of: its CPU limit, else reservation, else one core; memory
 * likewise, without a fallback (0: no memory percent can be computed). */
export interface TaskBasis {
  cpuCores: number;
  memoryBytes: number;
}

export function basisOf(spec: ServiceSpec): TaskBasis {
  return {
    cpuCores: spec.limits.cpus || spec.reservations.cpus || 1,
    memoryBytes: spec.limits.memoryBytes || spec.reservations.memoryBytes || 0,
  };
}

/** A policy with its stabilization window known (see autoscaleOf). */
export type HpaPolicy = AutoscalePolicy & { stabilizationMs: number };

/** What the rules remember between evaluations of one service. */
export interface HpaState {
  /** Recommendations (before stabilization, limits and bounds) of the stabilization window. */
  recommendations: ReadonlyArray<{ at: number; replicas: number }>;
  /** Scale-ups made in the last SCALE_UP_PERIOD_MS (recordScale), for the rate limit. */
  scaleUps: ReadonlyArray<{ at: number; from: number; to: number }>;
}

export function emptyHpaState(): HpaState {
  return { recommendations: [], scaleUps: [] };
}

/** One target's figures and recommendation. */
export interface TargetResult {
  metric: MetricName;
  target: number;
  /** The average per running task with figures (percent, or requests per second); null: none. */
  value: number | null;
  /** The replicas this target asks for; null: no figures. */
  replicas: number | null;
  reason: string;
}

export interface HpaDecision {
  current: number;
  desired: number;
  /** The target that decided (null: none had figures, or the bounds decided). */
  metric: MetricName | null;
  value: number | null;
  target: number | null;
  reason: string;
  /** The winning recommendation before stabilization, rate limit and bounds. */
  recommendation: number | null;
  targets: TargetResult[];
}

export interface HpaInput {
  policy: HpaPolicy;
  /** The service's replica count now. */
  current: number;
  /** One sample per task the service wants running. */
  samples: readonly TaskSample[];
  basis: TaskBasis;
  now: number;
}

const UNIT: Record<MetricName, string> = { cpu: "%", memory: "%", rps: "" };

function fmt(metric: MetricName, v: number): string {
  const n = metric === "rps" ? Math.round(v * 10) / 10 : Math.round(v);
  return `${n}${UNIT[metric]}`;
}

/** The targets a policy names, in the order ties are broken (cpu, memory, rps). */
function targetsOf(p: AutoscalePolicy): Array<{ metric: MetricName; target: number }> {
  const out: Array<{ metric: MetricName; target: number }> = [];
  if (p.cpuPercent !== undefined) out.push({ metric: "cpu", target: p.cpuPercent });
  if (p.memoryPercent !== undefined) out.push({ metric: "memory", target: p.memoryPercent });
  if (p.rps !== undefined) out.push({ metric: "rps", target: p.rps });
  return out;
}

/** A sample's figure for a metric in the target's unit, or undefined. */
function figure(s: TaskSample, metric: MetricName, basis: TaskBasis): number | undefined {
  const v = metric === "cpu" ? s.cpuCores : metric === "memory" ? s.memoryBytes : s.rps;
  if (v === undefined || !Number.isFinite(v) || v < 0) return undefined;
  if (metric === "cpu") return (v / basis.cpuCores) * 100;
  if (metric === "memory") return basis.memoryBytes > 0 ? (v / basis.memoryBytes) * 100 : undefined;
  return v;
}

/** HPA's replica calculator for one target. */
export function targetReplicas(
  metric: MetricName,
  target: number,
  current: number,
  samples: readonly TaskSample[],
  basis: TaskBasis,
): TargetResult {
  const values: number[] = [];
  for (const s of samples) {
    const v = s.running ? figure(s, metric, basis) : undefined;
    if (v !== undefined) values.push(v);
  }
  // Tasks without figures, and replicas the count has but no task yet.
  const missing = samples.length - values.length + Math.max(0, current - samples.length);
  if (metric === "memory" && basis.memoryBytes <= 0) {
    return {
      metric,
      target,
      value: null,
      replicas: null,
      reason: "memory has no limit or reservation to be a percent of",
    };
  }
  if (values.length === 0) {
    return { metric, target, value: null, replicas: null, reason: `no ${metric} figures yet` };
  }
  const sum = values.reduce((a, b) => a + b, 0);
  const value = sum / values.length;
  const ratio = value / target;
  const shown = `${metric} ${fmt(metric, value)}`;
  const of = `target ${fmt(metric, target)}`;
  const keep = (why: string): TargetResult => ({
    metric,
    target,
    value,
    replicas: current,
    reason: why,
  });
  if (Math.abs(ratio - 1) <= TOLERANCE) return keep(`${shown} within tolerance of ${of}`);
  const direction = ratio > 1 ? "above" : "below";
  if (missing === 0) {
    return {
      metric,
      target,
      value,
      replicas: Math.ceil(ratio * values.length),
      reason: `${shown} ${direction} ${of}`,
    };
  }
  // Missing tasks: as using nothing on a scale-up, as using at least the target on a scale-down.
  const fill = ratio > 1 ? 0 : metric === "rps" ? target : Math.max(100, target);
  const counted = values.length + missing;
  const recount = (sum + missing * fill) / (counted * target);
  const note = `${missing} task${missing === 1 ? "" : "s"} without figures counted as ${fmt(metric, fill)}`;
  if (Math.abs(recount - 1) <= TOLERANCE || ratio > 1 !== recount > 1) {
    return keep(`${shown} ${direction} ${of}, but within tolerance with ${note}`);
  }
  const replicas = Math.ceil(recount * counted);
  if ((recount < 1 && replicas > current) || (recount > 1 && replicas < current)) {
    return keep(`${shown} ${direction} ${of}, but not with ${note}`);
  }
  return { metric, target, value, replicas, reason: `${shown} ${direction} ${of} (${note})` };
}

/** The state after the autoscaler changed the count (a scale-up counts towards the limit). */
export function recordScale(state: HpaState, at: number, from: number, to: number): HpaState {
  if (to <= from) return state;
  return { ...state, scaleUps: [...state.scaleUps, { at, from, to }] };
}

/** One evaluation: the replicas the service should have, why, and the state to keep. */
export function decide(
  input: HpaInput,
  state: HpaState,
): { decision: HpaDecision; state: HpaState } {
  const { policy, current, samples, basis, now } = input;
  const window = policy.stabilizationMs;
  const kept: HpaState = {
    recommendations: state.recommendations.filter((r) => r.at > now - window && r.at <= now),
    scaleUps: state.scaleUps.filter((e) => e.at > now - SCALE_UP_PERIOD_MS && e.at <= now),
  };
  const targets = targetsOf(policy).map((t) =>
    targetReplicas(t.metric, t.target, current, samples, basis),
  );
  const base = { current, targets, recommendation: null, metric: null, value: null, target: null };
  const out = (desired: number, reason: string, extra: Partial<HpaDecision> = {}) => ({
    decision: { ...base, ...extra, desired, reason },
    state: kept,
  });

  // The count itself first, as HPA: zero means autoscaling is paused; outside the bounds, back in.
  if (current === 0) return out(0, "scaled to 0: autoscaling waits until the service is scaled up");
  if (current < policy.min) return out(policy.min, `${current} below min ${policy.min}`);
  if (current > policy.max) return out(policy.max, `${current} above max ${policy.max}`);

  // The highest recommendation wins (the first target on a tie).
  let best: TargetResult | null = null;
  for (const t of targets) {
    if (t.replicas !== null && (best === null || t.replicas > best.replicas!)) best = t;
  }
  if (best === null) {
    const why = targets.map((t) => t.reason).join("; ") || "no target";
    return out(current, why);
  }
  const chosen = { metric: best.metric, value: best.value, target: best.target };
  const blind = targets.filter((t) => t.replicas === null);
  if (best.replicas! < current && blind.length > 0) {
    return out(
      current,
      `${best.reason}; not scaling down: ${blind.map((t) => t.reason).join("; ")}`,
      {
        ...chosen,
        recommendation: best.replicas,
      },
    );
  }
  const recommendation = best.replicas!;
  const next: HpaState = {
    ...kept,
    recommendations: [...kept.recommendations, { at: now, replicas: recommendation }],
  };
  const reasons = [best.reason];
  let desired = recommendation;
  if (recommendation < current) {
    // Scale down only to the highest recommendation of the window.
    const highest = Math.max(...next.recommendations.map((r) => r.replicas));
    const held = Math.min(current, highest);
    if (held > recommendation) {
      reasons.push(
        `stabilizing: highest recommendation in ${formatGoDuration(window)} is ${highest}`,
      );
    }
    desired = held;
  } else if (recommendation > current) {
    // At most double, or 4 more, than the count at the start of the period.
    const start = current - kept.scaleUps.reduce((n, e) => n + (e.to - e.from), 0);
    const limit = Math.max(2 * start, start + 4, current);
    if (desired > limit) {
      desired = limit;
      reasons.push(`scale-up limited to ${limit} (2x or +4 per ${SCALE_UP_PERIOD_MS / 1000}s)`);
    }
  }
  if (desired > policy.max) {
    desired = policy.max;
    reasons.push(`at max ${policy.max}`);
  } else if (desired < policy.min) {
    desired = policy.min;
    reasons.push(`at min ${policy.min}`);
  }
  return {
    decision: { ...base, ...chosen, recommendation, desired, reason: reasons.join("; ") },
    state: next,
  };
}
