// What a task uses, read from the kernel: its cgroup's files where it has a group of its own
// (cgroup v2 `cpu.stat`, `memory.current`, `memory.max`, `io.stat`; v1 `cpuacct.usage`,
// `memory.usage_in_bytes`, `memory.limit_in_bytes`), else /proc summed over its process group
// (/proc/<pid>/stat, /proc/<pid>/status); network bytes from /proc/<pid>/net/dev when it has a
// network namespace of its own. The parsers are pure (tested with fixture strings); the readers
// only open files. A figure that cannot be read is left out, never guessed.
//
// Counters are cumulative (CPU nanoseconds, bytes): the sampler (../metrics.ts) turns CPU time
// into cores used from the difference of two samples.

import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

/** One reading of a task's counters and gauges. */
export interface TaskUsage {
  /** CPU time used so far, ns (cumulative). */
  cpuNanos: number;
  /** Memory in use, bytes (resident; a cgroup's usage without its inactive page cache). */
  memoryBytes: number;
  /** The task's memory limit, bytes, when it has one. */
  memoryLimitBytes?: number;
  /** Bytes received and sent on its own network namespace (not loopback), cumulative. */
  netRxBytes?: number;
  netTxBytes?: number;
  /** Bytes read from and written to block devices, cumulative. */
  blockReadBytes?: number;
  blockWriteBytes?: number;
  /** Processes (or threads, for a container) in the task. */
  pids?: number;
}

/** USER_HZ: the unit of /proc/PID/stat times; 100 on every Linux architecture node runs on. */
export const CLOCK_TICKS = 100;

/** The fields of /proc/<pid>/stat the samplers need. */
export interface ProcStatFields {
  state: string;
  ppid: number;
  pgrp: number;
  /** utime + stime + cutime + cstime, clock ticks. */
  cpuTicks: number;
  startTicks: number;
}

/** Parses /proc/<pid>/stat; null when it is not one. */
export function parseProcStat(text: string): ProcStatFields | null {
  // Field 2 (comm) may hold spaces and parentheses: fields 3.. follow the last ")".
  const close = text.lastIndexOf(")");
  if (close < 0) return null;
  const f = text.slice(close + 2).split(" ");
  if (f.length < 20) return null;
  const n = (i: number): number => Number(f[i - 3]);
  const out = {
    state: f[0] ?? "",
    ppid: n(4),
    pgrp: n(5),
    cpuTicks: n(14) + n(15) + n(16) + n(17),
    startTicks: n(22),
  };
  return Number.isFinite(out.cpuTicks) && Number.isFinite(out.pgrp) ? out : null;
}

/** VmRSS of /proc/<pid>/status, bytes (0 for a kernel thread or zombie, which have none). */
export function parseVmRss(text: string): number {
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(text);
  return m ? Number(m[1]) * 1024 : 0;
}

/** Bytes received and sent over every interface but loopback, from /proc/<pid>/net/dev. */
export function parseNetDev(text: string): { rx: number; tx: number } {
  let rx = 0;
  let tx = 0;
  for (const line of text.split("\n")) {
    const colon = line.indexOf(":");
    if (colon < 0) continue;
    const name = line.slice(0, colon).trim();
    if (name === "lo" || name === "") continue;
    const f = line
      .slice(colon + 1)
      .trim()
      .split(/\s+/)
      .map(Number);
    if (f.length < 9 || !Number.isFinite(f[0]) || !Number.isFinite(f[8])) continue;
    rx += f[0]!;
    tx += f[8]!;
  }
  return { rx, tx };
}

/** A `key value` file (cgroup v2 cpu.stat, memory.stat) as a map. */
export function parseFlatKeyed(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    const [k, v] = line.trim().split(/\s+/);
    if (k && v !== undefined && /^\d+$/.test(v)) out.set(k, Number(v));
  }
  return out;
}

/** Limits at or above this are "no limit" (cgroup v1 writes PAGE_COUNTER_MAX × page size). */
const UNLIMITED = 2 ** 60;

/** A memory limit file (v2 memory.max "max" or bytes; v1 memory.limit_in_bytes); undefined:
 * no limit. */
export function parseMemoryLimit(text: string): number | undefined {
  const t = text.trim();
  if (!/^\d+$/.test(t)) return undefined;
  const n = Number(t);
  return n >= UNLIMITED ? undefined : n;
}

/** Bytes read and written, summed over devices, from cgroup v2 io.stat
 * (`8:0 rbytes=1 wbytes=2 rios=...`). */
export function parseIoStat(text: string): { read: number; write: number } {
  let read = 0;
  let write = 0;
  for (const m of text.matchAll(/\b([rw])bytes=(\d+)/g)) {
    if (m[1] === "r") read += Number(m[2]);
    else write += Number(m[2]);
  }
  return { read, write };
}

function readText(file: string): string | null {
  try {
    return readFileSync(file, "utf8");
  } catch {
    return null;
  }
}

/** One process as a sampling round sees it. */
export interface ProcEntry {
  pid: number;
  stat: ProcStatFields;
}

/**
 * Every process of the machine, read once per sampling round and shared by all its tasks (a
 * scan of /proc per task would cost tasks × processes reads). Lazy: a round with only
 * containers never reads /proc.
 */
export class ProcSnapshot {
  private byGroup: Map<number, ProcEntry[]> | null = null;

  constructor(private readonly procDir = "/proc") {}

  /** The live processes (not zombies) of a process group. */
  group(pgid: number): ProcEntry[] {
    if (this.byGroup === null) {
      this.byGroup = new Map();
      let names: string[] = [];
      try {
        names = readdirSync(this.procDir);
      } catch {
        // not Linux: no processes to tell of
      }
      for (const name of names) {
        if (!/^\d+$/.test(name)) continue;
        const text = readText(join(this.procDir, name, "stat"));
        const stat = text === null ? null : parseProcStat(text);
        if (stat === null || stat.state === "Z" || stat.state === "X") continue;
        const list = this.byGroup.get(stat.pgrp);
        const e = { pid: Number(name), stat };
        if (list) list.push(e);
        else this.byGroup.set(stat.pgrp, [e]);
      }
    }
    return this.byGroup.get(pgid) ?? [];
  }

  /** VmRSS of a process, bytes. */
  rss(pid: number): number {
    const text = readText(join(this.procDir, String(pid), "status"));
    return text === null ? 0 : parseVmRss(text);
  }

  /** The network counters of a process's namespace. */
  netDev(pid: number): { rx: number; tx: number } | null {
    const text = readText(join(this.procDir, String(pid), "net", "dev"));
    return text === null ? null : parseNetDev(text);
  }
}

/** What a process group uses (the process driver's tasks without a cgroup). */
export function processGroupUsage(snap: ProcSnapshot, pgid: number): TaskUsage {
  let ticks = 0;
  let rss = 0;
  const members = snap.group(pgid);
  for (const p of members) {
    ticks += p.stat.cpuTicks;
    rss += snap.rss(p.pid);
  }
  return { cpuNanos: (ticks / CLOCK_TICKS) * 1e9, memoryBytes: rss, pids: members.length };
}

/**
 * What a task's cgroup directories say (one directory on v2; one per hierarchy on v1, where
 * only the hierarchies its limits needed exist). Each figure comes from the first directory
 * that has its file; a figure none has is left out (the caller takes it from /proc).
 */
export function cgroupUsage(dirs: string[]): Partial<TaskUsage> {
  const out: Partial<TaskUsage> = {};
  for (const dir of dirs) {
    const file = (name: string) => readText(join(dir, name));
    if (out.cpuNanos === undefined) {
      const v2 = file("cpu.stat");
      const usec = v2 === null ? undefined : parseFlatKeyed(v2).get("usage_usec");
      if (usec !== undefined) out.cpuNanos = usec * 1000;
      else {
        const v1 = file("cpuacct.usage")?.trim();
        if (v1 && /^\d+$/.test(v1)) out.cpuNanos = Number(v1);
      }
    }
    if (out.memoryBytes === undefined) {
      const current = file("memory.current") ?? file("memory.usage_in_bytes");
      if (current !== null && /^\d+$/.test(current.trim())) {
        // As `docker stats` shows it: without the page cache the kernel may drop at once.
        const stat = parseFlatKeyed(file("memory.stat") ?? "");
        const inactive = stat.get("inactive_file") ?? stat.get("total_inactive_file") ?? 0;
        const used = Number(current.trim());
        out.memoryBytes = inactive < used ? used - inactive : used;
        const limit = file("memory.max") ?? file("memory.limit_in_bytes");
        const bytes = limit === null ? undefined : parseMemoryLimit(limit);
        if (bytes !== undefined) out.memoryLimitBytes = bytes;
      }
    }
    if (out.blockReadBytes === undefined) {
      const io = file("io.stat");
      if (io !== null) {
        const { read, write } = parseIoStat(io);
        out.blockReadBytes = read;
        out.blockWriteBytes = write;
      }
    }
  }
  return out;
}

/** The parts of the Docker Engine's stats answer (`GET /containers/<id>/stats`) read here. */
export interface EngineStats {
  cpu_stats?: { cpu_usage?: { total_usage?: number } };
  memory_stats?: { usage?: number; limit?: number; stats?: Record<string, number | undefined> };
  networks?: Record<string, { rx_bytes?: number; tx_bytes?: number } | undefined>;
  blkio_stats?: {
    io_service_bytes_recursive?: Array<{ op?: string; value?: number }> | null;
  };
  pids_stats?: { current?: number };
}

/**
 * A container's usage from the Engine's stats, as `docker stats` computes it: memory without
 * the inactive page cache (`inactive_file` on cgroup v2, `total_inactive_file` on v1), network
 * summed over interfaces, block I/O summed by direction. The limit the engine reports is the
 * host's memory when the container has none: `hostMemory` tells them apart.
 */
export function engineStatsUsage(s: EngineStats, hostMemory: number): TaskUsage | null {
  const cpu = s.cpu_stats?.cpu_usage?.total_usage;
  const mem = s.memory_stats?.usage;
  if (cpu === undefined || mem === undefined) return null; // a stopped container
  const st = s.memory_stats?.stats ?? {};
  const inactive = st["inactive_file"] ?? st["total_inactive_file"] ?? 0;
  const u: TaskUsage = { cpuNanos: cpu, memoryBytes: inactive < mem ? mem - inactive : mem };
  const limit = s.memory_stats?.limit;
  if (limit !== undefined && limit > 0 && limit < hostMemory && limit < UNLIMITED) {
    u.memoryLimitBytes = limit;
  }
  if (s.networks) {
    u.netRxBytes = 0;
    u.netTxBytes = 0;
    for (const n of Object.values(s.networks)) {
      u.netRxBytes += n?.rx_bytes ?? 0;
      u.netTxBytes += n?.tx_bytes ?? 0;
    }
  }
  const io = s.blkio_stats?.io_service_bytes_recursive;
  if (io) {
    u.blockReadBytes = 0;
    u.blockWriteBytes = 0;
    for (const e of io) {
      const op = (e.op ?? "").toLowerCase();
      if (op === "read") u.blockReadBytes += e.value ?? 0;
      else if (op === "write") u.blockWriteBytes += e.value ?? 0;
    }
  }
  if (s.pids_stats?.current !== undefined) u.pids = s.pids_stats.current;
  return u;
}
