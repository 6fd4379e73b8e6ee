// CPU and memory limits for process-driver tasks through Linux control groups. Each limited task
// gets its own group `<mount>/<parent>/<taskId>` (parent defaults to "shoal") in every hierarchy
// it needs: with cgroup v1 that is one directory under the cpu hierarchy and one under the memory
// hierarchy; with cgroup v2 it is one directory in the unified tree. The layout is detected per
// controller from /proc/self/mounts, so hybrid hosts (v1 controllers, an empty v2 tree) work.
//
// Limits written:
//   cpu    v1: cpu.cfs_period_us = 100000, cpu.cfs_quota_us = cpus × period
//          v2: cpu.max = "<cpus × period> 100000"
//   memory v1: memory.limit_in_bytes, and memory.memsw.limit_in_bytes to the same value
//          v2: memory.max, and memory.swap.max = 0
// Swap is switched off for the group so a task over its limit is killed by the kernel (the
// agent then shows `non-zero exit (137)`) instead of slowly swapping — Swarm's --limit-memory.
//
// The process driver writes the task's pid into cgroup.procs before the task's command runs
// (the wrapper waits for a go-ahead), so a task never runs unlimited. Children inherit the group.

import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { DriverError, DriverErrorCode } from "./driver.js";

export type CgroupVersion = 1 | 2;

/** Where one controller lives. */
export interface ControllerMount {
  version: CgroupVersion;
  /** The hierarchy's mount directory, e.g. /sys/fs/cgroup/memory (v1) or /sys/fs/cgroup (v2). */
  mount: string;
}

export interface CgroupLayout {
  cpu: ControllerMount | null;
  memory: ControllerMount | null;
}

export interface Limits {
  cpus: number;
  memoryBytes: number;
}

/** CFS period used for CPU quotas, µs (the kernel's and Docker's default). */
export const CPU_PERIOD_US = 100_000;
/** Smallest quota the kernel accepts, µs. */
const MIN_CPU_QUOTA_US = 1_000;

/** Decodes the octal escapes /proc/self/mounts uses for spaces, tabs and backslashes. */
function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/**
 * Finds the cpu and memory controllers from the text of /proc/self/mounts. `controllersOf(dir)`
 * returns the words of a cgroup2 mount's cgroup.controllers (null when unreadable). A v1
 * hierarchy wins over v2 for the same controller (on hybrid hosts the kernel only lets a
 * controller be active in one of them, and v1 is where it is when it is mounted there).
 */
export function parseCgroupLayout(
  mounts: string,
  controllersOf: (dir: string) => string[] | null,
): CgroupLayout {
  const layout: CgroupLayout = { cpu: null, memory: null };
  const v2: string[] = [];
  for (const line of mounts.split("\n")) {
    const f = line.trim().split(/\s+/);
    if (f.length < 4) continue;
    const dir = unescapeMount(f[1]!);
    const type = f[2]!;
    if (type === "cgroup") {
      const opts = f[3]!.split(",");
      if (opts.includes("cpu") && layout.cpu === null) layout.cpu = { version: 1, mount: dir };
      if (opts.includes("memory") && layout.memory === null) {
        layout.memory = { version: 1, mount: dir };
      }
    } else if (type === "cgroup2") {
      v2.push(dir);
    }
  }
  for (const dir of v2) {
    const ctrls = controllersOf(dir) ?? [];
    if (ctrls.includes("cpu") && layout.cpu === null) layout.cpu = { version: 2, mount: dir };
    if (ctrls.includes("memory") && layout.memory === null) {
      layout.memory = { version: 2, mount: dir };
    }
  }
  return layout;
}

/** Reads the layout of this host (an empty layout off Linux or when nothing is mounted). */
export function detectCgroups(mountsFile = "/proc/self/mounts"): CgroupLayout {
  let text: string;
  try {
    text = readFileSync(mountsFile, "utf8");
  } catch {
    return { cpu: null, memory: null };
  }
  return parseCgroupLayout(text, (dir) => {
    try {
      return readFileSync(join(dir, "cgroup.controllers"), "utf8").trim().split(/\s+/);
    } catch {
      return null;
    }
  });
}

export function hasLimits(l: Limits): boolean {
  return l.cpus > 0 || l.memoryBytes > 0;
}

function describeLimits(l: Limits): string {
  const parts: string[] = [];
  if (l.cpus > 0) parts.push(`cpus=${l.cpus}`);
  if (l.memoryBytes > 0) {
    const mib = l.memoryBytes / (1024 * 1024);
    parts.push(`memory=${Number.isInteger(mib) ? `${mib}MiB` : `${l.memoryBytes}B`}`);
  }
  return parts.join(", ");
}

/**
 * Why the limits cannot be enforced here, or null when they can. `platform` and `uid` are
 * parameters so the refusal can be tested anywhere.
 */
export function unsupportedReason(
  limits: Limits,
  layout: CgroupLayout,
  platform: string = process.platform,
  uid: number = process.getuid?.() ?? -1,
): string | null {
  if (!hasLimits(limits)) return null;
  const head = `cannot enforce resource limits (${describeLimits(limits)})`;
  if (platform !== "linux") {
    return `${head}: the process driver needs Linux cgroups, and this node runs ${platform}`;
  }
  if (uid !== 0) {
    return `${head}: the process driver needs root to manage cgroups (the agent runs as uid ${uid})`;
  }
  const missing: string[] = [];
  if (limits.cpus > 0 && layout.cpu === null) missing.push("cpu");
  if (limits.memoryBytes > 0 && layout.memory === null) missing.push("memory");
  if (missing.length > 0) {
    return (
      `${head}: no ${missing.join(" or ")} cgroup controller on this node ` +
      `(neither a cgroup v1 hierarchy nor cgroup v2 cgroup.controllers offers it)`
    );
  }
  return null;
}

/** One file to write in a task's group. Optional files are skipped when the kernel lacks them. */
export interface CgroupSetting {
  /** The hierarchy's mount directory. */
  mount: string;
  file: string;
  value: string;
  optional: boolean;
}

/** The files to write for the limits, in order (v1 memsw must follow memory.limit_in_bytes). */
export function cgroupSettings(limits: Limits, layout: CgroupLayout): CgroupSetting[] {
  const out: CgroupSetting[] = [];
  if (limits.cpus > 0 && layout.cpu) {
    const quota = String(Math.max(MIN_CPU_QUOTA_US, Math.round(limits.cpus * CPU_PERIOD_US)));
    const mount = layout.cpu.mount;
    if (layout.cpu.version === 1) {
      out.push({ mount, file: "cpu.cfs_period_us", value: String(CPU_PERIOD_US), optional: false });
      out.push({ mount, file: "cpu.cfs_quota_us", value: quota, optional: false });
    } else {
      out.push({ mount, file: "cpu.max", value: `${quota} ${CPU_PERIOD_US}`, optional: false });
    }
  }
  if (limits.memoryBytes > 0 && layout.memory) {
    const bytes = String(Math.floor(limits.memoryBytes));
    const mount = layout.memory.mount;
    if (layout.memory.version === 1) {
      out.push({ mount, file: "memory.limit_in_bytes", value: bytes, optional: false });
      out.push({ mount, file: "memory.memsw.limit_in_bytes", value: bytes, optional: true });
    } else {
      out.push({ mount, file: "memory.max", value: bytes, optional: false });
      out.push({ mount, file: "memory.swap.max", value: "0", optional: true });
    }
  }
  return out;
}

/** A task's groups, as stored in its Handle (plain JSON). */
export interface TaskCgroup {
  /** One directory per hierarchy the task is in. */
  dirs: string[];
}

function errText(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  return e.code ? `${e.code}: ${e.message}` : String(err);
}

/** Makes sure the v2 controllers are delegated down to `dir`'s children. */
function enableV2Controllers(dir: string, controllers: string[]): void {
  const have = readFileSync(join(dir, "cgroup.subtree_control"), "utf8").trim().split(/\s+/);
  const add = controllers.filter((c) => !have.includes(c));
  if (add.length > 0) {
    writeFileSync(join(dir, "cgroup.subtree_control"), add.map((c) => `+${c}`).join(" "));
  }
}

/**
 * Creates `<mount>/<parent>/<taskId>` in every hierarchy the limits need and writes the limits.
 * On failure removes what it made and throws DriverError ERR_CGROUP.
 */
export function createTaskCgroup(
  layout: CgroupLayout,
  parent: string,
  taskId: string,
  limits: Limits,
): TaskCgroup {
  const settings = cgroupSettings(limits, layout);
  const mounts = [...new Set(settings.map((s) => s.mount))];
  const cg: TaskCgroup = { dirs: [] };
  try {
    for (const mount of mounts) {
      const dir = join(mount, parent, taskId);
      const v2 = [layout.cpu, layout.memory].filter(
        (c): c is ControllerMount => c !== null && c.version === 2 && c.mount === mount,
      );
      mkdirSync(join(mount, parent), { recursive: true });
      if (v2.length > 0) {
        const ctrls = [];
        if (limits.cpus > 0 && layout.cpu?.version === 2) ctrls.push("cpu");
        if (limits.memoryBytes > 0 && layout.memory?.version === 2) ctrls.push("memory");
        enableV2Controllers(mount, ctrls);
        enableV2Controllers(join(mount, parent), ctrls);
      }
      // An existing group (a start retried after a crash) is reused; its limits are rewritten.
      mkdirSync(dir, { recursive: true });
      cg.dirs.push(dir);
    }
    for (const s of settings) {
      const file = join(s.mount, parent, taskId, s.file);
      if (s.optional && !existsSync(file)) continue;
      try {
        writeFileSync(file, s.value);
      } catch (err) {
        throw new DriverError(
          DriverErrorCode.Cgroup,
          `cgroup: cannot write ${s.value} to ${file}: ${errText(err)}`,
          { cause: err },
        );
      }
    }
    return cg;
  } catch (err) {
    removeDirs(cg.dirs);
    if (err instanceof DriverError) throw err;
    throw new DriverError(
      DriverErrorCode.Cgroup,
      `cgroup: cannot create the group for task ${taskId}: ${errText(err)}`,
      { cause: err },
    );
  }
}

/** Moves a process (and so its future children) into the task's groups. */
export function joinTaskCgroup(cg: TaskCgroup, pid: number): void {
  for (const dir of cg.dirs) {
    try {
      writeFileSync(join(dir, "cgroup.procs"), String(pid));
    } catch (err) {
      throw new DriverError(
        DriverErrorCode.Cgroup,
        `cgroup: cannot move pid ${pid} into ${dir}: ${errText(err)}`,
        { cause: err },
      );
    }
  }
}

/** The pids in a group (empty when it is gone). */
export function cgroupPids(dir: string): number[] {
  try {
    return readFileSync(join(dir, "cgroup.procs"), "utf8")
      .split("\n")
      .filter((l) => l.trim() !== "")
      .map(Number);
  } catch {
    return [];
  }
}

function removeDirs(dirs: string[]): string[] {
  const left: string[] = [];
  for (const dir of dirs) {
    try {
      rmdirSync(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") left.push(dir);
    }
  }
  return left;
}

/**
 * Removes the task's groups. A group can only go once it is empty; processes still in it are
 * killed, and exiting ones get `timeoutMs` to be reaped. Resolves with the directories that could
 * not be removed (empty on success).
 */
export async function removeTaskCgroup(cg: TaskCgroup, timeoutMs = 2000): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  let left = cg.dirs;
  for (;;) {
    left = removeDirs(left);
    if (left.length === 0 || Date.now() > deadline) return left;
    for (const dir of left) {
      for (const pid of cgroupPids(dir)) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // already gone
        }
      }
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}
