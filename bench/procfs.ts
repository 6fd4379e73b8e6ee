// Readings from Linux /proc for the benchmarks: a process tree's resident memory (VmRSS), and how
// much CPU the rest of the machine used while a scenario ran. The latter matters because the
// bench shares a small machine: a compiler running next to it halves every number, so the suite
// measures that interference and says so next to the results instead of printing them silently.
import { readdirSync, readFileSync } from "node:fs";

/** pid → parent pid for every process we can see, from /proc/<pid>/stat. */
function parentMap(): Map<number, number> {
  const parents = new Map<number, number>();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const fields = statFields(Number(name));
    if (fields) parents.set(Number(name), Number(fields[1]));
  }
  return parents;
}

/** The fields of /proc/<pid>/stat after the command name: [state, ppid, ...], or null. */
function statFields(pid: number): string[] | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  } catch {
    return null; // the process ended while we looked
  }
}

/**
 * CPU seconds (user + system) the process and its descendants have used so far (clock ticks of
 * 1/100 s, as on Linux): a server's cost per message whatever else the machine runs meanwhile.
 */
export function processCpuSeconds(pid: number): number {
  let ticks = 0;
  for (const p of processTree(pid)) {
    const f = statFields(p);
    if (f) ticks += Number(f[11]) + Number(f[12]);
  }
  return ticks / 100;
}

/** The pid and all its descendants. */
export function processTree(pid: number): number[] {
  const parents = parentMap();
  const tree = new Set([pid]);
  let grew = true;
  while (grew) {
    grew = false;
    for (const [child, parent] of parents) {
      if (tree.has(parent) && !tree.has(child)) {
        tree.add(child);
        grew = true;
      }
    }
  }
  return [...tree];
}

function vmRss(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, "latin1"));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/**
 * Resident memory in bytes of the process and its descendants (VmRSS from /proc), so a server
 * started through a wrapper or running helper processes is counted whole.
 */
export function residentBytes(pid: number): number {
  return processTree(pid).reduce((sum, p) => sum + vmRss(p), 0);
}

/** Samples residentBytes(pid) every intervalMs until stop(), which returns the peak. */
export function sampleRss(pid: number, intervalMs = 100): { stop(): number } {
  let peak = residentBytes(pid);
  const timer = setInterval(() => {
    peak = Math.max(peak, residentBytes(pid));
  }, intervalMs);
  return {
    stop() {
      clearInterval(timer);
      return Math.max(peak, residentBytes(pid));
    },
  };
}

export interface CpuSnapshot {
  /** Busy jiffies of the whole machine (all CPUs). */
  busy: number;
  /** Busy + idle jiffies of the whole machine. */
  total: number;
  /**
   * utime + stime jiffies of this process and all its descendants (the bench and its load), plus
   * their cutime + cstime: what their children that have exited and been waited for used.
   */
  ours: number;
}

/** Reads machine-wide CPU counters and the CPU used so far by this bench's own process tree. */
export function cpuSnapshot(): CpuSnapshot {
  const line = readFileSync("/proc/stat", "latin1").split("\n")[0];
  // cpu user nice system idle iowait irq softirq steal guest guest_nice
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  // irq and softirq time is left out: the loopback traffic of the bench itself lands there.
  const idle = v[3] + v[4];
  const busy = v[0] + v[1] + v[2] + v[7];
  let ours = 0;
  for (const pid of processTree(process.pid)) {
    const f = statFields(pid);
    // Fields 14-17 of /proc/<pid>/stat: utime stime cutime cstime.
    if (f) ours += Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
  }
  return { busy, total: busy + idle, ours };
}

/**
 * The share (0..1) of the machine's CPU time between two snapshots that went to processes other
 * than the bench's own. A descendant that exited between the snapshots counts as ours once its
 * parent (still in the tree) has waited for it; one that was reparented to init, or whose parent
 * exited too, does not: so take the second snapshot before stopping anything.
 */
export function otherLoad(a: CpuSnapshot, b: CpuSnapshot): number {
  const total = b.total - a.total;
  if (total <= 0) return 0;
  return Math.max(0, (b.busy - a.busy - (b.ours - a.ours)) / total);
}
