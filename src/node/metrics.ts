// The node's sampler of what its tasks use: every few seconds (not on any task's path) it asks
// each running task's driver for its counters (drivers/usage.ts: cgroup files, /proc, or the
// Docker Engine's stats), turns the CPU time into cores used since the previous sample, and
// keeps the latest figures per task. The session sends them with the next heartbeat; the
// node's /metrics exposes them (metrics-http.ts).
//
// Cores used = ΔCPU time / Δwall time: 2 s of CPU time over 1 s is 2 cores. A task's first
// sample has no predecessor and shows 0 cores; a counter that went back (a process of the group
// ended and took its time with it) shows 0, never a negative figure.

import type { Handle } from "./drivers/driver.js";
import { ProcSnapshot, type TaskUsage } from "./drivers/usage.js";
import type { TaskStats } from "../api/bus.js";

/** Default time between two samples, ms. */
export const SAMPLE_INTERVAL_MS = 2000;

/** A running task as the sampler needs it. */
export interface SampledTask {
  taskId: string;
  serviceId: string;
  serviceName: string;
  /** The task's name as `docker stats` shows a container's: `<service>.<slot>.<task id>`. */
  name: string;
  handle: Handle;
}

/** A task's latest figures with what names it. */
export type SampledStats = TaskStats & { serviceId: string; serviceName: string; name: string };

/** Cores used between two readings of a CPU counter (ns) taken `ms` apart; 0 when not known. */
export function coresBetween(
  prev: { cpuNanos: number; at: number } | undefined,
  cur: { cpuNanos: number; at: number },
): number {
  if (!prev) return 0;
  const wallNs = (cur.at - prev.at) * 1e6;
  const used = cur.cpuNanos - prev.cpuNanos;
  if (wallNs <= 0 || used <= 0) return 0;
  return used / wallNs;
}

/** The wire form of one sample. */
export function toTaskStats(taskId: string, u: TaskUsage, cores: number, at: number): TaskStats {
  return {
    taskId,
    cpuCores: Math.round(cores * 10_000) / 10_000,
    memoryBytes: u.memoryBytes,
    ...(u.memoryLimitBytes !== undefined ? { memoryLimitBytes: u.memoryLimitBytes } : {}),
    ...(u.netRxBytes !== undefined ? { netRxBytes: u.netRxBytes } : {}),
    ...(u.netTxBytes !== undefined ? { netTxBytes: u.netTxBytes } : {}),
    ...(u.blockReadBytes !== undefined ? { blockReadBytes: u.blockReadBytes } : {}),
    ...(u.blockWriteBytes !== undefined ? { blockWriteBytes: u.blockWriteBytes } : {}),
    ...(u.pids !== undefined ? { pids: u.pids } : {}),
    sampledAt: at,
  };
}

export interface TaskSamplerOptions {
  /** The tasks running now. */
  tasks: () => SampledTask[];
  /** Reads a task's counters (the agent's driver set); null when it cannot. */
  usage: (h: Handle, snap: ProcSnapshot) => Promise<TaskUsage | null>;
  /** Called after every round with the latest figures (the /metrics gauges). */
  onSample?: (stats: SampledStats[]) => void;
  intervalMs?: number;
  /** The clock (ms); tests inject one. */
  now?: () => number;
  /** Where processes are read (tests point it at a fixture tree). */
  procDir?: string;
}

export class TaskSampler {
  private readonly prev = new Map<string, { cpuNanos: number; at: number }>();
  private latestStats: SampledStats[] = [];
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private readonly now: () => number;
  /** Completed rounds (tests wait on it). */
  rounds = 0;

  constructor(private readonly opts: TaskSamplerOptions) {
    this.now = opts.now ?? Date.now;
  }

  start(): void {
    if (this.timer) return;
    void this.sample();
    this.timer = setInterval(() => void this.sample(), this.opts.intervalMs ?? SAMPLE_INTERVAL_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** The latest figures of every task that ran at the last round. */
  latest(): SampledStats[] {
    return this.latestStats;
  }

  /** One round; a round still running is not started twice. */
  sample(): Promise<void> {
    this.running ??= this.round().finally(() => (this.running = null));
    return this.running;
  }

  private async round(): Promise<void> {
    const snap = new ProcSnapshot(this.opts.procDir);
    const tasks = this.opts.tasks();
    const out: SampledStats[] = [];
    const seen = new Set<string>();
    for (const t of tasks) {
      let u: TaskUsage | null;
      try {
        u = await this.opts.usage(t.handle, snap);
      } catch {
        u = null;
      }
      if (u === null) continue;
      const at = this.now();
      const cur = { cpuNanos: u.cpuNanos, at };
      const cores = coresBetween(this.prev.get(t.taskId), cur);
      this.prev.set(t.taskId, cur);
      seen.add(t.taskId);
      out.push({
        ...toTaskStats(t.taskId, u, cores, at),
        serviceId: t.serviceId,
        serviceName: t.serviceName,
        name: t.name,
      });
    }
    for (const id of this.prev.keys()) if (!seen.has(id)) this.prev.delete(id);
    this.latestStats = out;
    this.rounds++;
    this.opts.onSample?.(out);
  }
}
