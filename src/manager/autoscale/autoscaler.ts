// The autoscaler: every evaluation period (per service, default 15 s) it takes each service with
// an autoscaling policy, joins its live tasks (from the store) with their latest figures (from an
// AutoscaleMetrics source: what the nodes measured, and what the router and mesh counted), runs
// the pure HPA rules (hpa.ts) and, when the count changes, writes it through the manager's
// `scaleService`, the path `service scale` takes. Its last decision is kept on the service
// (`service.autoscaleStatus`, shown by `service inspect`); every decision is logged (info when it
// scales, debug otherwise) and handed to `onDecision`. A manual `service scale` just changes the
// count the next evaluation starts from. Time and timers are injected: tests drive `tick(now)`.

import type { Manager, ManagerLogger } from "../manager.js";
import { ManagerError } from "../errors.js";
import {
  autoscaleOf,
  isTerminal,
  servesTraffic,
  type AutoscaleStatus,
  type Service,
  type Task,
} from "../../api/types.js";
import {
  basisOf,
  decide,
  emptyHpaState,
  recordScale,
  type HpaDecision,
  type HpaState,
  type TaskSample,
} from "./hpa.js";

/** A task's latest figures, as the metrics book keeps them. */
export interface TaskUsage {
  /** CPU used, in cores. */
  cpuCores?: number;
  /** Memory used (resident), bytes. */
  memoryBytes?: number;
  /** Requests per second the task received. */
  rps?: number;
  /** When it was measured (ms since epoch); figures older than `sampleMaxAgeMs` are not used. */
  at?: number;
}

/** Where the autoscaler reads figures (the manager's metrics book implements it). */
export interface AutoscaleMetrics {
  /** The latest figures of one task (undefined: none yet). */
  taskUsage(taskId: string): TaskUsage | undefined;
  /**
   * Requests per second the whole service received, when they are counted per service (router,
   * mesh) rather than per task: spread evenly over its running tasks that have no rps of their
   * own. Optional.
   */
  serviceRps?(serviceId: string): number | undefined;
}

/** A decision as it is published: the service, when, and whether the count changed. */
export interface AutoscaleEvent extends HpaDecision {
  serviceId: string;
  serviceName: string;
  at: number;
  /** The new count was written (false: kept, or a manual scale came first). */
  scaled: boolean;
}

export interface AutoscalerOptions {
  metrics: AutoscaleMetrics;
  log: ManagerLogger;
  now?: () => number;
  /** Runs `fn` every `ms`; returns what stops it (default: an unref'd setInterval). */
  every?: (ms: number, fn: () => void) => () => void;
  /** How often services are looked at; each is evaluated once per its own period. */
  tickMs?: number;
  /** Figures older than this count as missing (a node that stopped reporting). */
  sampleMaxAgeMs?: number;
  /** Called with every decision (the events stream publishes them). */
  onDecision?: (e: AutoscaleEvent) => void;
}

const defaultEvery = (ms: number, fn: () => void): (() => void) => {
  const t = setInterval(fn, ms);
  t.unref();
  return () => clearInterval(t);
};

interface ServiceState {
  lastEvalAt: number;
  hpa: HpaState;
  lastScaleAt?: number;
}

export class Autoscaler {
  private readonly states = new Map<string, ServiceState>();
  private stopTimer: (() => void) | null = null;
  private busy = false;
  private readonly now: () => number;

  constructor(
    private readonly manager: Manager,
    private readonly opts: AutoscalerOptions,
  ) {
    this.now = opts.now ?? Date.now;
  }

  start(): void {
    if (this.stopTimer) return;
    const every = this.opts.every ?? defaultEvery;
    this.stopTimer = every(this.opts.tickMs ?? 1000, () => void this.tick());
  }

  stop(): void {
    this.stopTimer?.();
    this.stopTimer = null;
  }

  /**
   * Evaluates every autoscaled service whose period has passed; returns the decisions made.
   * Ticks never overlap (one still running makes this one return nothing).
   */
  async tick(now = this.now()): Promise<AutoscaleEvent[]> {
    if (this.busy) return [];
    this.busy = true;
    try {
      return await this.pass(now);
    } catch (err) {
      this.opts.log.error(`autoscaler pass failed: ${(err as Error).stack ?? String(err)}`);
      return [];
    } finally {
      this.busy = false;
    }
  }

  private async pass(now: number): Promise<AutoscaleEvent[]> {
    const { services, tasks } = this.manager.store.view((tx) => ({
      services: tx.listServices(),
      tasks: tx.listTasks(),
    }));
    const byService = new Map<string, Task[]>();
    for (const t of tasks) {
      if (isTerminal(t.status.state) || t.desiredState !== "running") continue;
      const list = byService.get(t.serviceId);
      if (list) list.push(t);
      else byService.set(t.serviceId, [t]);
    }
    const events: AutoscaleEvent[] = [];
    const statuses = new Map<string, AutoscaleStatus | null>();
    const autoscaled = new Set<string>();
    for (const s of services) {
      const policy = autoscaleOf(s.spec);
      if (!policy || !("replicated" in s.spec.mode)) {
        if (s.autoscaleStatus) statuses.set(s.id, null);
        continue;
      }
      autoscaled.add(s.id);
      const st = this.states.get(s.id) ?? { lastEvalAt: -Infinity, hpa: emptyHpaState() };
      if (now - st.lastEvalAt < policy.evaluationMs) continue;
      const e = await this.evaluate(s, policy, byService.get(s.id) ?? [], st, now);
      this.states.set(s.id, st);
      if (!e) continue;
      events.push(e);
      statuses.set(s.id, {
        lastDecisionAt: now,
        metric: e.metric,
        value: e.value,
        target: e.target,
        current: e.current,
        desired: e.desired,
        reason: e.reason,
        ...(st.lastScaleAt !== undefined ? { lastScaleAt: st.lastScaleAt } : {}),
      });
    }
    for (const id of this.states.keys()) if (!autoscaled.has(id)) this.states.delete(id);
    if (statuses.size > 0) {
      await this.manager.store.update((tx) => {
        for (const [id, status] of statuses) {
          const cur = tx.getService(id);
          if (cur) tx.putService({ ...cur, autoscaleStatus: status });
        }
      });
    }
    for (const e of events) this.opts.onDecision?.(e);
    return events;
  }

  /** One service's decision, applied; undefined when a manual scale came in between. */
  private async evaluate(
    s: Service,
    policy: NonNullable<ReturnType<typeof autoscaleOf>>,
    tasks: Task[],
    st: ServiceState,
    now: number,
  ): Promise<AutoscaleEvent | undefined> {
    const name = s.spec.name;
    const current = "replicated" in s.spec.mode ? s.spec.mode.replicated.replicas : 0;
    const samples = this.samples(s.id, tasks, now);
    const { decision, state } = decide(
      { policy, current, samples, basis: basisOf(s.spec), now },
      st.hpa,
    );
    st.lastEvalAt = now;
    st.hpa = state;
    const event: AutoscaleEvent = {
      ...decision,
      serviceId: s.id,
      serviceName: name,
      at: now,
      scaled: false,
    };
    if (decision.desired === current) {
      this.opts.log.debug(`service ${name}: ${current} replicas kept: ${decision.reason}`);
      return event;
    }
    try {
      await this.manager.scaleService(s.id, decision.desired, {
        ifReplicas: current,
        keepPrevious: true,
      });
    } catch (err) {
      if (
        err instanceof ManagerError &&
        (err.code === "ERR_CONFLICT" || err.code === "ERR_NOT_FOUND")
      ) {
        this.opts.log.debug(`service ${name}: not scaled (${err.message})`);
        return undefined;
      }
      this.opts.log.warn(
        `service ${name}: scaling ${current} -> ${decision.desired} failed: ${(err as Error).message}`,
      );
      return { ...event, reason: `${decision.reason}; scaling failed: ${(err as Error).message}` };
    }
    st.hpa = recordScale(st.hpa, now, current, decision.desired);
    st.lastScaleAt = now;
    this.opts.log.info(
      `service ${name}: scaled ${current} -> ${decision.desired} replicas: ${decision.reason}`,
    );
    return { ...event, scaled: true };
  }

  /** The service's live tasks with their latest figures (stale figures dropped). */
  private samples(serviceId: string, tasks: Task[], now: number): TaskSample[] {
    const maxAge = this.opts.sampleMaxAgeMs ?? 60_000;
    const m = this.opts.metrics;
    const running = tasks.filter(servesTraffic).length;
    const total = m.serviceRps?.(serviceId);
    const spread = total !== undefined && running > 0 ? total / running : undefined;
    return tasks.map((t) => {
      const u = m.taskUsage(t.id);
      const fresh = u && (u.at === undefined || now - u.at <= maxAge) ? u : undefined;
      const sample: TaskSample = { taskId: t.id, running: servesTraffic(t) };
      if (fresh?.cpuCores !== undefined) sample.cpuCores = fresh.cpuCores;
      if (fresh?.memoryBytes !== undefined) sample.memoryBytes = fresh.memoryBytes;
      const rps = fresh?.rps ?? (sample.running ? spread : undefined);
      if (rps !== undefined) sample.rps = rps;
      return sample;
    });
  }
}
