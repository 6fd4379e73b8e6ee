// The `process` driver: runs a task as a plain OS process group on this node.
//
// A task is started through a tiny `/bin/sh` wrapper, detached in its own session and process
// group (pgid = the wrapper's pid = Handle.pid), so it survives a `kill -9` of the agent and a
// restarted agent can re-adopt it. The wrapper's descriptors: 0 = /dev/null, 1 = taskDir/
// stdout.log, 2 = /dev/null (the shell's own messages, like "Terminated", go nowhere),
// 3 = taskDir/stderr.log, 4 = a control socket to the driver. The logs are O_APPEND descriptors
// the task writes directly (nothing passes through the agent, so the task keeps logging while
// the agent is down). The wrapper:
//   1. traps every catchable terminating signal (remembering one that arrives early);
//   2. waits for "go" on the control socket — the driver first moves the wrapper into the task's
//      cgroup, so the command never runs a moment without its limits;
//   3. forks a subshell that says "started" on the socket and execs the command with stdin
//      /dev/null, stdout and stderr the logs, and default signal dispositions; start() resolves
//      only after "started", so a stop() that follows start() always reaches the command;
//   4. writes the command's status ($?) to taskDir/exit_code and exits with it.
// That file is how a restarted agent learns the real exit status of a task that was not its
// child. Signals are not forwarded: stop() signals the whole process group, so the command gets
// the stop signal directly (once), while the wrapper's trap merely keeps it alive to record the
// status. A status above 128 is read back as "killed by signal status-128" (the shell's
// convention), so a task killed by SIGKILL reports signal SIGKILL, whether or not the agent was
// its parent. Only a SIGKILL of the wrapper itself leaves no file; that is reported as SIGKILL.
// dash sets PWD, so the wrapper unsets it unless the task's environment had it.
//
// A task is its process group: when the wrapper ends, whatever is left in the group is killed
// (like a container whose init died), so a later cgroup removal does not block on stragglers.
//
// With bridge networking (RunSpec.network "bridge", Linux and root only) the driver first makes
// the task's network namespace (netns.ts) and spawns the wrapper through `ip netns exec NS`,
// which execs it in place: the wrapper's pid is still Handle.pid. The namespace, its veth and
// its address reservation are removed by destroy(), or by recover() for a task that ended while
// the agent was down.
//
// With mounts (RunSpec.mounts, Linux and root only) the wrapper is spawned through `unshare`
// (mountns.ts) inside that: a mount namespace of its own where the binds, volumes and tmpfs are
// made before the wrapper is exec'd in place (same pid again). A mount that cannot be made leaves
// its reason in taskDir/mount_error and the wrapper never runs: start() rejects with it. With a
// user (RunSpec.user) the wrapper execs the command through `setpriv`, so only the command (and
// each exec beside it) runs as that user; the wrapper stays root and records the exit status.
//
// Before spawning, the driver checks the working directory and looks command[0] up on the task's
// PATH itself, to fail with Docker-like messages (`exec: "nope": executable file not found in
// $PATH`) instead of a task that starts and exits 127.

import { spawn, type ChildProcess } from "node:child_process";
import {
  accessSync,
  closeSync,
  constants as fsConstants,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
} from "node:fs";
import { delimiter, isAbsolute, join, resolve } from "node:path";
import { constants as osConstants } from "node:os";
import type { Duplex } from "node:stream";
import {
  DriverError,
  DriverErrorCode,
  normalizeSignal,
  signalName,
  type Driver,
  type ExitStatus,
  type Handle,
  type RunSpec,
  type StartIntent,
  type TaskStats,
  type LimitSupport,
  type Reaper,
  type OverlayWiring,
  type Executor,
  type ExecRequest,
  type ExecResult,
  type UsageReader,
  EXEC_OUTPUT_MAX,
} from "./driver.js";
import { cgroupUsage, processGroupUsage, type ProcSnapshot, type TaskUsage } from "./usage.js";
import {
  createTaskCgroup,
  detectCgroups,
  hasLimits,
  joinTaskCgroup,
  removeTaskCgroup,
  unsupportedReason,
  type CgroupLayout,
  type TaskCgroup,
} from "./cgroups.js";
import { capLogsEvery, capTaskLogs, logPath } from "./logs.js";
import {
  asTaskNet,
  bridgeUnsupportedReason,
  teardownLeftoverNet,
  findIp,
  setupTaskNet,
  createTaskNamespace,
  ensureOutboundNat,
  teardownTaskNet,
  type TaskNet,
} from "./netns.js";
import { cidrHost } from "../../lib/addr.js";
import {
  findMountTools,
  inMountNamespace,
  mountOrder,
  mountUnsupportedReason,
  type MountTools,
  type NsMount,
} from "./mountns.js";
import { resolveUser, systemLookup, type DbLookup } from "./users.js";
import { findTool } from "./netns.js";
import { randomBytes } from "node:crypto";

export interface ProcessDriverOptions {
  /** The POSIX shell that runs the wrapper. */
  shell: string;
  /** How long the wrapper may take to fork the command before start() gives up, ms. */
  startTimeoutMs: number;
  /** How often running tasks' logs are checked against their cap, ms. */
  logCheckIntervalMs: number;
  /** How often an adopted task (not our child) is checked for exit, ms. */
  pollIntervalMs: number;
  /** Groups are made at `<mount>/<cgroupParent>/<taskId>`. */
  cgroupParent: string;
  /** Where the cgroup mounts are read from. */
  mountsFile: string;
  /** Who we are, for the limits and bridge networking checks (tests override them). */
  platform: string;
  uid: number;
  /** iproute2's `ip`, for bridge networking ("" = not available). */
  ipPath: string;
  /** Told about things worth a log line that do not fail a task (no NAT for bridge tasks). */
  warn: (msg: string) => void;
  /** Set up outbound NAT so bridge tasks reach other machines (tests on the real machine's
   * own namespace turn it off, so they change no firewall or sysctl of the machine). */
  outboundNat: boolean;
  /** Wires tasks into user-defined networks; null where this node cannot (RunSpec.overlay). */
  overlays: OverlayWiring | null;
  /** util-linux's tools for a task's mount namespace (RunSpec.mounts). */
  mountTools: MountTools;
  /** util-linux's `setpriv`, which switches to the task's user (RunSpec.user); "" = none. */
  setprivPath: string;
  /** The user and group databases (tests give their own). */
  userLookup: DbLookup;
}

export function defaultProcessDriverOptions(): ProcessDriverOptions {
  return {
    shell: "/bin/sh",
    startTimeoutMs: 10_000,
    logCheckIntervalMs: 1000,
    pollIntervalMs: 200,
    cgroupParent: "shoal",
    mountsFile: "/proc/self/mounts",
    platform: process.platform,
    uid: process.getuid?.() ?? -1,
    ipPath: findIp(),
    warn: () => {},
    outboundNat: true,
    overlays: null,
    mountTools: findMountTools(),
    setprivPath: findTool("setpriv"),
    userLookup: systemLookup(),
  };
}

/** Where the mount namespace's setup writes why it failed (then the task never runs). */
const MOUNT_ERROR_FILE = "mount_error";

/** A local volume's name, as Docker's local driver allows it (never a path). */
const VOLUME_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;

/** Who a task runs as, once resolved (kept in the handle: a health check runs as the task). */
interface UserSwitch {
  uid: number;
  gid: number;
  groups: number[];
}

/** The exit status file the wrapper writes in the task directory. */
export const EXIT_CODE_FILE = "exit_code";

/** The PATH a task gets when its environment has none (Docker's default). */
export const DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

const TRAPPED = "HUP INT QUIT ABRT USR1 USR2 PIPE ALRM TERM XCPU XFSZ VTALRM PROF SYS TRAP";

/** The wrapper's $0: with the exit status file after it, how reap() knows a task's wrapper. */
const WRAPPER_NAME = "shoal-task";

// $1 exit status file, $2 "1" to keep PWD, then the command (argv, command[0] resolved).
const WRAPPER = [
  "f=$1; keep=$2; shift 2; got=",
  `for s in ${TRAPPED}; do trap "got=$s" "$s"; done`,
  "IFS= read -r go <&4",
  'if [ "$go" != go ] || [ -n "$got" ]; then',
  '  if [ -n "$got" ]; then trap - "$got"; kill -s "$got" $$; fi',
  "  exit 125",
  "fi",
  '[ "$keep" = 1 ] || unset PWD',
  '( echo started >&4; exec "$@" 2>&3 3>&- 4>&- )',
  "rc=$?",
  'echo "$rc" > "$f"',
  'exit "$rc"',
].join("\n");

/** What the process driver keeps in a Handle. */
export interface ProcessHandle extends Handle {
  driver: "process";
  /** Start time of the pid in clock ticks since boot (/proc/PID/stat field 22); null off Linux. */
  startTicks: number | null;
  taskDir: string;
  logMaxBytes: number;
  stopSignal: string;
  cgroup: TaskCgroup | null;
  /** The task's network namespace (bridge networking), or null (host networking). */
  net: TaskNet | null;
  /** Whether the task runs in a mount namespace of its own (it has mounts). */
  mountNs?: boolean;
  /** The user the task runs as, when it is switched to (RunSpec.user). */
  user?: UserSwitch | null;
}

interface Run {
  h: ProcessHandle;
  /** Our child, or null for a task adopted from an earlier agent. */
  child: ChildProcess | null;
  exited: Promise<ExitStatus>;
  status: ExitStatus | null;
  logTimer: NodeJS.Timeout | null;
  pollTimer: NodeJS.Timeout | null;
  /** Set when stop() escalated to SIGKILL (for adopted tasks whose wrapper left no status). */
  killed: boolean;
}

interface ProcStat {
  state: string;
  pgrp: number;
  /** utime + stime + cutime + cstime, clock ticks. */
  cpuTicks: number;
  startTicks: number;
}

/** USER_HZ: the unit of /proc/PID/stat times; 100 on every Linux architecture node runs on. */
const CLOCK_TICKS = 100;

function procStat(pid: number): ProcStat | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return null;
  }
  // Field 2 (comm) may hold spaces and parentheses: fields 3.. follow the last ")".
  const f = text.slice(text.lastIndexOf(")") + 2).split(" ");
  const n = (i: number): number => Number(f[i - 3]);
  return {
    state: f[0] ?? "",
    pgrp: n(5),
    cpuTicks: n(14) + n(15) + n(16) + n(17),
    startTicks: n(22),
  };
}

function rssBytes(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

const onLinux = process.platform === "linux";

/** Whether the handle's process is still the one we started (not exited, not a reused pid). */
function isAlive(h: ProcessHandle): boolean {
  if (onLinux) {
    const st = procStat(h.pid);
    if (st === null || st.state === "Z" || st.state === "X") return false;
    return h.startTicks === null || st.startTicks === h.startTicks;
  }
  try {
    process.kill(h.pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Reads a status above 128 as "killed by signal status-128", as the shell reports it. */
export function statusFromCode(rc: number): ExitStatus {
  if (rc > 128) {
    const sig = signalName(rc - 128);
    if (sig !== null) return { exitCode: null, signal: sig, error: null };
  }
  return { exitCode: rc, signal: null, error: null };
}

function readExitFile(taskDir: string): ExitStatus | null {
  try {
    const text = readFileSync(join(taskDir, EXIT_CODE_FILE), "utf8").trim();
    if (!/^\d+$/.test(text)) return null;
    return statusFromCode(Number(text));
  } catch {
    return null;
  }
}

function killGroup(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-pid, sig);
  } catch {
    // The group is gone.
  }
}

/**
 * Kills what is left of a task's process group after its leader (the wrapper) ended. On Linux the
 * group's members are found in /proc first: a pid is never reused while it names a live group,
 * so if the leader's pid shows up as a process again it was reused and is left alone. Elsewhere
 * only our own child's group is signalled (its exit was just reaped; no reuse window to speak of).
 */
function killStragglers(pgid: number, startTicks: number | null, ownChild: boolean): void {
  if (!onLinux) {
    if (ownChild) killGroup(pgid, "SIGKILL");
    return;
  }
  let members = 0;
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    const st = procStat(pid);
    if (st === null || st.pgrp !== pgid) continue;
    if (pid === pgid) {
      // Our own leader, dead but not yet reaped (adopted tasks are reaped by init)?
      if (st.state === "Z" && st.startTicks === startTicks) continue;
      return; // reused by someone else's group leader
    }
    members++;
  }
  if (members > 0) killGroup(pgid, "SIGKILL");
}

/** The pids of live wrappers whose exit status file is `exitFile` (their process groups). */
function wrapperGroups(exitFile: string): number[] {
  const found: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    if (pid === process.pid) continue;
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    } catch {
      continue; // gone, or not ours to read
    }
    const at = argv.indexOf(WRAPPER_NAME);
    if (at < 0 || argv[at + 1] !== exitFile) continue;
    const st = procStat(pid);
    if (st !== null && st.pgrp === pid && st.state !== "Z") found.push(pid);
  }
  return found;
}

/** Whether any process but a zombie is left in the process group. */
function groupAlive(pgid: number): boolean {
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const st = procStat(Number(name));
    if (st !== null && st.pgrp === pgid && st.state !== "Z" && st.state !== "X") return true;
  }
  return false;
}

function isExecutableFile(p: string): boolean {
  try {
    if (!statSync(p).isFile()) return false;
    accessSync(p, fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Resolves command[0] as exec would: a name with a "/" relative to the working directory,
 * anything else on PATH. Throws DriverError with Docker's wording when there is nothing to run.
 */
export function resolveCommand(cmd: string, path: string, workdir: string): string {
  if (cmd.includes("/")) {
    const p = resolve(workdir, cmd);
    let isFile: boolean;
    try {
      isFile = statSync(p).isFile();
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const why = code === "ENOTDIR" ? "not a directory" : "no such file or directory";
      throw new DriverError(
        DriverErrorCode.CommandNotFound,
        `exec: ${JSON.stringify(cmd)}: stat ${cmd}: ${why}`,
        { cause: err },
      );
    }
    if (!isFile || !isExecutableFile(p)) {
      throw new DriverError(
        DriverErrorCode.PermissionDenied,
        `exec: ${JSON.stringify(cmd)}: permission denied`,
      );
    }
    return p;
  }
  if (cmd !== "") {
    for (const dir of path.split(delimiter)) {
      const p = resolve(workdir, dir === "" ? "." : dir, cmd);
      if (isExecutableFile(p)) return p;
    }
  }
  throw new DriverError(
    DriverErrorCode.CommandNotFound,
    `exec: ${JSON.stringify(cmd)}: executable file not found in $PATH`,
  );
}

function checkWorkdir(dir: string): void {
  let why: string | null = null;
  try {
    if (!statSync(dir).isDirectory()) why = "not a directory";
  } catch (err) {
    why =
      (err as NodeJS.ErrnoException).code === "EACCES"
        ? "permission denied"
        : "no such file or directory";
  }
  if (why !== null) {
    throw new DriverError(
      DriverErrorCode.BadWorkdir,
      `chdir to cwd (${JSON.stringify(dir)}) failed: ${why}`,
    );
  }
}

/** Validates a handle read back from JSON. */
function asProcessHandle(h: Handle): ProcessHandle | null {
  const x = h as Partial<ProcessHandle>;
  if (
    typeof x.taskId !== "string" ||
    typeof x.pid !== "number" ||
    !Number.isInteger(x.pid) ||
    x.pid <= 1 ||
    typeof x.taskDir !== "string"
  ) {
    return null;
  }
  const cg = x.cgroup as TaskCgroup | null | undefined;
  const net = asTaskNet(x.net);
  const u = x.user as Partial<UserSwitch> | null | undefined;
  const user =
    u &&
    Number.isInteger(u.uid) &&
    Number.isInteger(u.gid) &&
    Array.isArray(u.groups) &&
    u.groups.every((g) => Number.isInteger(g))
      ? { uid: u.uid!, gid: u.gid!, groups: [...u.groups] }
      : null;
  return {
    driver: "process",
    taskId: x.taskId,
    pid: x.pid,
    startedAt: typeof x.startedAt === "number" ? x.startedAt : 0,
    startTicks: typeof x.startTicks === "number" ? x.startTicks : null,
    taskDir: x.taskDir,
    logMaxBytes: typeof x.logMaxBytes === "number" ? x.logMaxBytes : 0,
    stopSignal: typeof x.stopSignal === "string" ? x.stopSignal : "SIGTERM",
    cgroup:
      cg && Array.isArray(cg.dirs) && cg.dirs.every((d) => typeof d === "string")
        ? { dirs: [...cg.dirs] }
        : null,
    net,
    ...(net ? { address: net.address } : {}),
    ...(x.mountNs === true ? { mountNs: true } : {}),
    ...(user ? { user } : {}),
  };
}

/**
 * Tells the wrapper to run the command and waits until it has forked it (the "started" line) or
 * the wrapper ended. Then closes our end of the control socket.
 */
function goAhead(
  child: ChildProcess,
  exited: Promise<ExitStatus>,
  timeoutMs: number,
): Promise<boolean> {
  const ctl = child.stdio[4] as Duplex;
  return new Promise<boolean>((done) => {
    let buf = "";
    const finish = (ok: boolean): void => {
      clearTimeout(timer);
      ctl.destroy();
      done(ok);
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    ctl.on("error", () => finish(true));
    ctl.on("close", () => finish(true));
    ctl.on("data", (b: Buffer) => {
      buf += b.toString();
      if (buf.includes("started\n")) finish(true);
    });
    void exited.then(() => finish(true));
    ctl.write("go\n");
  });
}

/** Whether `p` settles within ms (the timer is cleared either way). */
async function settlesWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((r) => (timer = setTimeout(() => r(false), ms)));
  try {
    return await Promise.race([p.then(() => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export class ProcessDriver implements Driver, Reaper, Executor, UsageReader {
  readonly name = "process";
  readonly opts: Readonly<ProcessDriverOptions>;
  private readonly runs = new Map<string, Run>();
  private layout: CgroupLayout | null = null;

  /** Outbound NAT for bridge tasks, set up once per driver. */
  private nat: Promise<void> | null = null;

  constructor(opts: Partial<ProcessDriverOptions> = {}) {
    this.opts = Object.freeze({ ...defaultProcessDriverOptions(), ...opts });
  }

  private cgroupLayout(): CgroupLayout {
    this.layout ??= detectCgroups(this.opts.mountsFile);
    return this.layout;
  }

  /** Limits need Linux, root and the cpu / memory cgroup controllers. */
  limitSupport(): LimitSupport {
    const can = (limits: { cpus: number; memoryBytes: number }) =>
      unsupportedReason(limits, this.cgroupLayout(), this.opts.platform, this.opts.uid) === null;
    return { cpu: can({ cpus: 1, memoryBytes: 0 }), memory: can({ cpus: 0, memoryBytes: 1 }) };
  }

  async start(spec: RunSpec): Promise<Handle> {
    const stopSignal = normalizeSignal(spec.stopSignal || "SIGTERM");
    if (spec.command.length === 0) {
      throw new DriverError(DriverErrorCode.NoCommand, "no command specified");
    }
    if (hasLimits(spec.limits)) {
      const why = unsupportedReason(
        spec.limits,
        this.cgroupLayout(),
        this.opts.platform,
        this.opts.uid,
      );
      if (why !== null) throw new DriverError(DriverErrorCode.LimitsUnsupported, why);
    }
    const overlay = spec.overlay ?? [];
    const bridge = spec.network === "bridge" && overlay.length === 0;
    if (bridge || overlay.length > 0) {
      const why = bridgeUnsupportedReason(this.opts.platform, this.opts.uid, this.opts.ipPath);
      if (why !== null) throw new DriverError(DriverErrorCode.NetworkUnsupported, why);
    }
    if (overlay.length > 0 && this.opts.overlays === null) {
      throw new DriverError(
        DriverErrorCode.NetworkUnsupported,
        "this node cannot join overlay networks (see the daemon's log for why)",
      );
    }
    const mounts = spec.mounts ?? [];
    if (mounts.length > 0) {
      const why = mountUnsupportedReason(this.opts.platform, this.opts.uid, this.opts.mountTools);
      if (why !== null) throw new DriverError(DriverErrorCode.MountsUnsupported, why);
    }
    const user = spec.user ? await this.userSwitch(spec.user) : null;
    mkdirSync(spec.taskDir, { recursive: true });
    const workdir = spec.workdir === "" ? spec.taskDir : resolve(spec.taskDir, spec.workdir);
    const nsMounts = planMounts(spec, mounts);
    // With mounts, the working directory is looked for once they are made (it may be inside one).
    if (nsMounts.length === 0) checkWorkdir(workdir);
    const file = resolveCommand(spec.command[0]!, spec.env["PATH"] ?? DEFAULT_PATH, workdir);
    rmSync(join(spec.taskDir, EXIT_CODE_FILE), { force: true });
    rmSync(join(spec.taskDir, MOUNT_ERROR_FILE), { force: true });

    let cgroup: TaskCgroup | null = null;
    if (hasLimits(spec.limits)) {
      cgroup = createTaskCgroup(
        this.cgroupLayout(),
        this.opts.cgroupParent,
        spec.taskId,
        spec.limits,
      );
    }
    let net: TaskNet | null = null;
    let child: ChildProcess;
    try {
      if (overlay.length > 0) {
        try {
          await spec.overlayReady;
          net = await createTaskNamespace(this.opts.ipPath, spec.taskId);
          await this.opts.overlays!.attach(net.ns, overlay);
          net = { ...net, address: cidrHost(overlay[0]!.addr) };
        } catch (err) {
          throw new DriverError(
            DriverErrorCode.Network,
            `setting up the task's networks: ${(err as Error).message}`,
            { cause: err },
          );
        }
      } else if (bridge) {
        try {
          net = await setupTaskNet(this.opts.ipPath, spec.taskId);
          if (this.opts.outboundNat)
            this.nat ??= ensureOutboundNat().then((why) => {
              if (why !== null) {
                this.opts.warn(
                  `bridge tasks can reach only this machine (no outbound NAT: ${why})`,
                );
              }
            });
          await this.nat;
        } catch (err) {
          throw new DriverError(
            DriverErrorCode.Network,
            `setting up the task's network: ${(err as Error).message}`,
            { cause: err },
          );
        }
      }
      child = await this.spawnWrapper(spec, workdir, file, net, nsMounts, user);
    } catch (err) {
      if (net) await this.teardownNet(spec.taskId, net);
      if (cgroup) await removeTaskCgroup(cgroup);
      throw err;
    }
    const pid = child.pid!;
    const h: ProcessHandle = {
      driver: "process",
      taskId: spec.taskId,
      pid,
      startedAt: Date.now(),
      startTicks: onLinux ? (procStat(pid)?.startTicks ?? null) : null,
      taskDir: spec.taskDir,
      logMaxBytes: spec.logMaxBytes,
      stopSignal,
      cgroup,
      net,
      ...(net ? { address: net.address } : {}),
      ...(nsMounts.length > 0 ? { mountNs: true } : {}),
      ...(user ? { user } : {}),
    };
    const run = this.track(h, child);
    try {
      if (cgroup) joinTaskCgroup(cgroup, pid);
    } catch (err) {
      killGroup(pid, "SIGKILL");
      await run.exited;
      await this.destroy(h);
      throw err;
    }
    if (!(await goAhead(child, run.exited, this.opts.startTimeoutMs))) {
      killGroup(pid, "SIGKILL");
      await run.exited;
      await this.destroy(h);
      throw new DriverError(
        DriverErrorCode.Spawn,
        `the task wrapper (${this.opts.shell}) did not start within ${this.opts.startTimeoutMs} ms`,
      );
    }
    if (nsMounts.length > 0) {
      // The namespace's setup failed: the command never ran.
      let why: string | null = null;
      try {
        why = readFileSync(join(spec.taskDir, MOUNT_ERROR_FILE), "utf8").trim();
      } catch {
        // no error
      }
      if (why !== null) {
        await run.exited;
        await this.destroy(h);
        const code = why.startsWith("chdir to cwd")
          ? DriverErrorCode.BadWorkdir
          : DriverErrorCode.Mount;
        throw new DriverError(code, why || "the task's mounts failed");
      }
    }
    return h;
  }

  /**
   * The uid, gid and groups a task's user resolves to, or null when there is nothing to switch
   * (the agent is that user already). Switching needs root and setpriv.
   */
  private async userSwitch(spec: string): Promise<UserSwitch | null> {
    if (this.opts.platform !== "linux") {
      throw new DriverError(
        DriverErrorCode.User,
        `running a task as user ${spec} needs Linux (this is ${this.opts.platform})`,
      );
    }
    const u = await resolveUser(spec, this.opts.userLookup);
    if (this.opts.uid !== 0) {
      if (u.uid === this.opts.uid && u.gid === (process.getgid?.() ?? -1)) return null;
      throw new DriverError(
        DriverErrorCode.User,
        `running a task as user ${spec} needs root (the agent runs as uid ${this.opts.uid})`,
      );
    }
    if (this.opts.setprivPath === "") {
      throw new DriverError(
        DriverErrorCode.User,
        `running a task as user ${spec} needs util-linux's \`setpriv\` command, which was not found`,
      );
    }
    return { uid: u.uid, gid: u.gid, groups: u.groups };
  }

  /** The argv prefix that runs a command as the task's user. */
  private asUser(user: UserSwitch | null | undefined): string[] {
    if (!user) return [];
    return [
      this.opts.setprivPath,
      "--reuid",
      String(user.uid),
      "--regid",
      String(user.gid),
      ...(user.groups.length > 0 ? ["--groups", user.groups.join(",")] : ["--clear-groups"]),
      "--",
    ];
  }

  /** Spawns the wrapper, which waits for "go" on fd 4; resolves once the OS started it. */
  private spawnWrapper(
    spec: RunSpec,
    workdir: string,
    file: string,
    net: TaskNet | null,
    mounts: NsMount[],
    user: UserSwitch | null,
  ): Promise<ChildProcess> {
    let out: number;
    let err: number;
    try {
      out = openSync(logPath(spec.taskDir, "stdout"), "a");
    } catch (e) {
      throw new DriverError(DriverErrorCode.Logs, `cannot open log: ${(e as Error).message}`, {
        cause: e,
      });
    }
    try {
      err = openSync(logPath(spec.taskDir, "stderr"), "a");
    } catch (e) {
      closeSync(out);
      throw new DriverError(DriverErrorCode.Logs, `cannot open log: ${(e as Error).message}`, {
        cause: e,
      });
    }
    const keepPwd = Object.hasOwn(spec.env, "PWD") ? "1" : "0";
    const args = ["-c", WRAPPER, WRAPPER_NAME, join(spec.taskDir, EXIT_CODE_FILE), keepPwd];
    args.push(...this.asUser(user), file, ...spec.command.slice(1));
    // `ip netns exec` enters the namespace and execs the next in place, as `unshare` does (the
    // mount namespace): the wrapper's pid is the one spawned.
    let chain = [this.opts.shell, ...args];
    if (mounts.length > 0) {
      const errFile = join(spec.taskDir, MOUNT_ERROR_FILE);
      chain = inMountNamespace(
        this.opts.mountTools,
        this.opts.shell,
        mounts,
        errFile,
        workdir,
        chain,
      );
    }
    if (net) chain = [this.opts.ipPath, "netns", "exec", net.ns, ...chain];
    const [cmd, ...argv] = chain as [string, ...string[]];
    return new Promise<ChildProcess>((resolveSpawn, reject) => {
      let child: ChildProcess;
      try {
        child = spawn(cmd, argv, {
          cwd: mounts.length > 0 ? "/" : workdir,
          env: spec.env,
          detached: true,
          stdio: ["ignore", out, "ignore", err, "pipe"],
        });
      } catch (e) {
        reject(new DriverError(DriverErrorCode.Spawn, (e as Error).message, { cause: e }));
        return;
      } finally {
        // The child has its own copies of the descriptors.
        closeSync(out);
        closeSync(err);
      }
      child.once("spawn", () => resolveSpawn(child));
      child.once("error", (e) => {
        reject(new DriverError(DriverErrorCode.Spawn, e.message, { cause: e }));
      });
    });
  }

  /** Removes a task's network: its overlay wiring (if any), then its namespace. */
  private async teardownNet(taskId: string, net: TaskNet): Promise<void> {
    await this.opts.overlays?.detach(net.ns).catch((err: Error) => this.opts.warn(err.message));
    // An overlay task's address is the manager's, not a reservation of this node.
    const own = net.veth === "" ? { ...net, address: "" } : net;
    await teardownTaskNet(this.opts.ipPath, taskId, own);
  }

  private key(h: Handle): string {
    return `${h.taskId}/${h.pid}`;
  }

  /** Starts watching a task: our child's exit event, or polling /proc for an adopted one. */
  private track(h: ProcessHandle, child: ChildProcess | null): Run {
    let settle!: (s: ExitStatus) => void;
    const run: Run = {
      h,
      child,
      exited: new Promise<ExitStatus>((r) => (settle = r)),
      status: null,
      logTimer: null,
      pollTimer: null,
      killed: false,
    };
    this.runs.set(this.key(h), run);
    const finish = (status: ExitStatus): void => {
      if (run.status !== null) return;
      this.clearTimers(run);
      // The task is its process group: leftovers go with it.
      killStragglers(h.pid, h.startTicks, child !== null);
      capTaskLogs(h.taskDir, h.logMaxBytes);
      run.status = status;
      settle(status);
    };
    if (child !== null) {
      child.once("exit", (code, sig) => {
        if (sig !== null) finish({ exitCode: null, signal: sig, error: null });
        else finish(statusFromCode(code ?? 0));
      });
    } else if (!isAlive(h)) {
      finish(
        readExitFile(h.taskDir) ?? {
          exitCode: null,
          signal: null,
          error: "task process exited while the agent was down",
        },
      );
      return run;
    } else {
      run.pollTimer = setInterval(() => {
        if (isAlive(h)) return;
        // No status file: the wrapper itself was killed, which only SIGKILL can do.
        finish(readExitFile(h.taskDir) ?? { exitCode: null, signal: "SIGKILL", error: null });
      }, this.opts.pollIntervalMs);
    }
    run.logTimer = capLogsEvery(h.taskDir, h.logMaxBytes, this.opts.logCheckIntervalMs);
    return run;
  }

  private clearTimers(run: Run): void {
    if (run.logTimer) clearInterval(run.logTimer);
    if (run.pollTimer) clearInterval(run.pollTimer);
    run.logTimer = null;
    run.pollTimer = null;
  }

  /** The run for a handle; a handle this driver has not seen is watched from now on. */
  private runFor(h: Handle): Run | null {
    const known = this.runs.get(this.key(h));
    if (known) return known;
    const ph = asProcessHandle(h);
    return ph ? this.track(ph, null) : null;
  }

  wait(h: Handle): Promise<ExitStatus> {
    const run = this.runFor(h);
    if (run === null) {
      return Promise.resolve({ exitCode: null, signal: null, error: "invalid task handle" });
    }
    return run.exited;
  }

  async stop(h: Handle, timeoutMs: number, signal?: string): Promise<void> {
    const run = this.runFor(h);
    if (run === null || run.status !== null) return;
    const sig = normalizeSignal(signal ?? run.h.stopSignal);
    // Never signal a pid that is no longer ours.
    if (run.child === null && !isAlive(run.h)) {
      await run.exited;
      return;
    }
    killGroup(run.h.pid, sig);
    if (sig === "SIGKILL") run.killed = true;
    if (await settlesWithin(run.exited, Math.max(0, timeoutMs))) return;
    if (run.status === null && (run.child !== null || isAlive(run.h))) {
      run.killed = true;
      killGroup(run.h.pid, "SIGKILL");
    }
    await run.exited;
  }

  async destroy(h: Handle): Promise<void> {
    const run = this.runs.get(this.key(h));
    const ph = run?.h ?? asProcessHandle(h);
    if (ph === null) return;
    if (run && run.status === null) {
      if (run.child !== null || isAlive(ph)) killGroup(ph.pid, "SIGKILL");
      await run.exited;
    } else if (!run && isAlive(ph)) {
      killGroup(ph.pid, "SIGKILL");
    }
    if (run) this.clearTimers(run);
    this.runs.delete(this.key(h));
    capTaskLogs(ph.taskDir, ph.logMaxBytes);
    if (ph.cgroup) await removeTaskCgroup(ph.cgroup);
    if (ph.net) await this.teardownNet(ph.taskId, ph.net);
  }

  async inspect(h: Handle): Promise<TaskStats> {
    const run = this.runs.get(this.key(h));
    const ph = run?.h ?? asProcessHandle(h);
    if (ph === null) return { running: false, pid: h.pid };
    const running = (run === undefined || run.status === null) && isAlive(ph);
    if (!running || !onLinux) return { running, pid: ph.pid };
    // Everything in the task's process group.
    let rss = 0;
    let ticks = 0;
    for (const name of readdirSync("/proc")) {
      if (!/^\d+$/.test(name)) continue;
      const pid = Number(name);
      const st = procStat(pid);
      if (st === null || st.pgrp !== ph.pid) continue;
      ticks += st.cpuTicks;
      rss += rssBytes(pid);
    }
    return { running, pid: ph.pid, rssBytes: rss, cpuSeconds: ticks / CLOCK_TICKS };
  }

  /**
   * What the task uses: its cgroup's figures where it has a group (tasks with limits), the rest
   * summed over its process group from /proc; its network namespace's counters when it has one.
   */
  async usage(h: Handle, snap: ProcSnapshot): Promise<TaskUsage | null> {
    const run = this.runs.get(this.key(h));
    const ph = run?.h ?? asProcessHandle(h);
    if (ph === null || !onLinux || (run !== undefined && run.status !== null)) return null;
    if (!isAlive(ph)) return null;
    const u: TaskUsage = {
      ...processGroupUsage(snap, ph.pid),
      ...cgroupUsage(ph.cgroup?.dirs ?? []),
    };
    if (ph.net) {
      const net = snap.netDev(ph.pid);
      if (net) [u.netRxBytes, u.netTxBytes] = [net.rx, net.tx];
    }
    return u;
  }

  async recover(h: Handle): Promise<Handle | null> {
    const ph = asProcessHandle(h);
    if (ph === null) return null;
    const known = this.runs.get(this.key(ph));
    if (known) return known.status === null ? known.h : null;
    if (!isAlive(ph)) {
      if (ph.cgroup) await removeTaskCgroup(ph.cgroup);
      if (ph.net) await this.teardownNet(ph.taskId, ph.net);
      return null;
    }
    this.track(ph, null);
    return ph;
  }

  /**
   * Runs a command as the task sees the world: in its mount namespace (`nsenter`) and network
   * namespace (`ip netns exec`), as its user, with the environment and working directory given,
   * in its cgroups (the command waits on stdin for a "go" until it has joined them, so it never
   * runs a moment outside its limits), in a process group of its own that is killed at the
   * timeout.
   */
  async exec(h: Handle, req: ExecRequest): Promise<ExecResult> {
    const ph = this.runs.get(this.key(h))?.h ?? asProcessHandle(h);
    if (ph === null) return { exitCode: -1, output: "invalid task handle", timedOut: false };
    if (req.argv.length === 0) return { exitCode: -1, output: "no command", timedOut: false };
    const workdir = req.workdir === "" ? ph.taskDir : resolve(ph.taskDir, req.workdir);
    const gate = [
      "-c",
      'IFS= read -r go || exit 125; exec "$@"',
      "shoal-exec",
      ...this.asUser(ph.user),
      ...req.argv,
    ];
    let chain = [this.opts.shell, ...gate];
    if (ph.net) chain = [this.opts.ipPath, "netns", "exec", ph.net.ns, ...chain];
    // Into the task's mount namespace (its mounts), in its working directory there.
    if (ph.mountNs) {
      const enter = [this.opts.mountTools.nsenter, "--target", String(ph.pid), "--mount"];
      chain = [...enter, `--wd=${workdir}`, "--", ...chain];
    }
    const [cmd, ...argv] = chain as [string, ...string[]];
    return new Promise<ExecResult>((done) => {
      const chunks: Buffer[] = [];
      let size = 0;
      let timedOut = false;
      let timer: NodeJS.Timeout | undefined;
      let child: ChildProcess;
      const fail = (why: string) => {
        clearTimeout(timer);
        done({ exitCode: -1, output: why, timedOut: false });
      };
      try {
        child = spawn(cmd, argv, {
          cwd: ph.mountNs ? "/" : workdir,
          env: req.env,
          detached: true,
          stdio: ["pipe", "pipe", "pipe"],
        });
      } catch (e) {
        fail((e as Error).message);
        return;
      }
      const keep = (b: Buffer) => {
        if (size >= EXEC_OUTPUT_MAX) return;
        chunks.push(b.subarray(0, EXEC_OUTPUT_MAX - size));
        size += Math.min(b.length, EXEC_OUTPUT_MAX - size);
      };
      child.stdout!.on("data", keep);
      child.stderr!.on("data", keep);
      child.stdin!.on("error", () => {}); // the command may not read its stdin
      child.once("error", (e) => fail(e.message));
      child.once("spawn", () => {
        const pid = child.pid!;
        timer = setTimeout(() => {
          timedOut = true;
          killGroup(pid, "SIGKILL");
        }, req.timeoutMs);
        try {
          if (ph.cgroup) joinTaskCgroup(ph.cgroup, pid);
        } catch (e) {
          killGroup(pid, "SIGKILL");
          chunks.push(Buffer.from((e as Error).message));
          size = EXEC_OUTPUT_MAX;
        }
        child.stdin!.end("go\n");
      });
      child.once("close", (code, signal) => {
        clearTimeout(timer);
        const exitCode = timedOut
          ? -1
          : (code ??
            (signal ? 128 + ((osConstants.signals as Record<string, number>)[signal] ?? 0) : -1));
        done({ exitCode, output: Buffer.concat(chunks).toString("utf8"), timedOut });
      });
    });
  }

  /**
   * Ends what an interrupted start() of the task may have left: every process group whose
   * leader is this task's wrapper (found by its argv, which names the task's own exit status
   * file), then the task's cgroups and network namespace. Resolves once the groups are gone.
   */
  async reap(intent: StartIntent): Promise<number> {
    const groups = onLinux ? wrapperGroups(join(intent.taskDir, EXIT_CODE_FILE)) : [];
    for (const pgid of groups) killGroup(pgid, "SIGKILL");
    const deadline = Date.now() + 5000;
    while (groups.some(groupAlive) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    if (onLinux) {
      const layout = this.cgroupLayout();
      const dirs = [...new Set([layout.cpu?.mount, layout.memory?.mount])]
        .filter((m): m is string => m !== undefined)
        .map((m) => join(m, this.opts.cgroupParent, intent.taskId))
        .filter((d) => existsSync(d));
      if (dirs.length > 0) await removeTaskCgroup({ dirs });
    }
    if (this.opts.ipPath !== "" && onLinux && this.opts.uid === 0) {
      await teardownLeftoverNet(this.opts.ipPath, intent.taskId);
    }
    return groups.length;
  }
}

/**
 * What a task's mount namespace is to hold: each bind's source checked (Docker's message when it
 * is missing), each named volume's directory made (`<volumesDir>/<name>/_data`), in an order
 * that makes a mount before any inside it.
 */
function planMounts(spec: RunSpec, mounts: NonNullable<RunSpec["mounts"]>): NsMount[] {
  const out: NsMount[] = [];
  for (const m of mountOrder(mounts)) {
    if (!isAbsolute(m.target)) {
      throw new DriverError(
        DriverErrorCode.Mount,
        `invalid mount config for type "${m.type}": invalid mount path: '${m.target}' mount path must be absolute`,
      );
    }
    if (m.type === "tmpfs") {
      out.push({ kind: "tmpfs", source: "", target: m.target, readOnly: m.readOnly });
    } else if (m.type === "bind") {
      let isDir: boolean;
      try {
        isDir = statSync(m.source).isDirectory();
      } catch (err) {
        throw new DriverError(
          DriverErrorCode.Mount,
          `invalid mount config for type "bind": bind source path does not exist: ${m.source}`,
          { cause: err },
        );
      }
      const kind = isDir ? "dir" : "file";
      out.push({ kind, source: m.source, target: m.target, readOnly: m.readOnly });
    } else {
      const name = m.source === "" ? randomBytes(32).toString("hex") : m.source;
      if (!VOLUME_NAME.test(name)) {
        throw new DriverError(
          DriverErrorCode.Mount,
          `"${name}" includes invalid characters for a local volume name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed`,
        );
      }
      if (!spec.volumesDir) {
        throw new DriverError(DriverErrorCode.Mount, "this node keeps no volumes (no volumesDir)");
      }
      const dir = join(spec.volumesDir, name, "_data");
      mkdirSync(dir, { recursive: true });
      out.push({ kind: "dir", source: dir, target: m.target, readOnly: m.readOnly });
    }
  }
  return out;
}

/** Whether a handle came from the process driver. */
export function isProcessHandle(h: Handle): h is ProcessHandle {
  return h["driver"] === "process" && isAbsolute(String(h["taskDir"] ?? ""));
}
