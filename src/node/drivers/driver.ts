// The task driver contract: what the agent needs from anything that can run a task (a local
// process, a container). A driver starts a task from a RunSpec and hands back a Handle — a small
// JSON-serialisable record the agent persists, so that an agent restarted after a crash can
// re-adopt the task with recover() instead of starting it twice. Every driver passes the same
// conformance suite (test/agent/conformance.ts); optional abilities belong in separate
// interfaces checked with type guards, not in this one.

import type { NodeNetwork } from "../../api/bus.js";
import { constants } from "node:os";
import { signalOf } from "../../lib/signals.js";
import type { ProcSnapshot, TaskUsage } from "./usage.js";

export interface RunSpec {
  /** Which driver runs it (a DriverSet picks by this; "process" when absent). */
  driver?: string;
  /** The image to run (the docker driver); `command` then overrides the image's command. */
  image?: string;
  taskId: string;
  serviceName: string;
  slot: number;
  nodeId: string;
  nodeHostname: string;
  /** argv; command[0] is resolved on the PATH of `env` (or relative to workdir if it has a "/"). */
  command: string[];
  /** The full environment of the task; nothing of the agent's own environment leaks in. */
  env: Record<string, string>;
  /** "" = the task's own directory (taskDir); a relative path is taken relative to taskDir. */
  workdir: string;
  /** A directory owned by this task: logs (stdout.log, stderr.log) and driver state. */
  taskDir: string;
  /** 0 = no limit. Any non-zero limit the driver cannot enforce makes start() reject. */
  limits: { cpus: number; memoryBytes: number };
  /** "SIGTERM", "TERM" or "15"; stop() uses it unless given another. */
  stopSignal: string;
  /** Cap per log file; 0 = no cap. */
  logMaxBytes: number;
  /**
   * "host" (the default): the task shares the node's network. "bridge": the task runs in a
   * network namespace of its own on the node's task bridge; the handle then carries its address.
   * A driver that cannot do bridge networking rejects with ERR_NETWORK_UNSUPPORTED.
   */
  network?: "host" | "bridge";
  /**
   * The user-defined networks the task joins, in order (its interfaces eth0, eth1...): the task
   * runs in a network namespace of its own wired into each; the handle carries its first
   * address. A driver that cannot rejects with ERR_NETWORK_UNSUPPORTED.
   */
  overlay?: OverlayAttachment[];
  /**
   * Settles once the node has built those networks (never rejects): a driver wires the task
   * after it, and may do what needs no network before (a container is created and started
   * meanwhile). Absent: built already.
   */
  overlayReady?: Promise<void>;
  /**
   * What the task sees at some of its paths (Docker's mounts). A bind's source is a path on the
   * node, a volume's the name of a volume kept on the node (created on first use, kept after the
   * task; "" = a new anonymous one). A driver that cannot rejects with ERR_MOUNTS_UNSUPPORTED; a
   * bind source that does not exist fails the start with ERR_MOUNT.
   */
  mounts?: TaskMount[];
  /** Where the process driver keeps named volumes (`<volumesDir>/<name>/_data`). */
  volumesDir?: string;
  /** Who the task runs as: "name", "uid", "uid:gid", "name:group" (absent: the agent's user or
   * the image's). An unknown name fails the start with ERR_USER. */
  user?: string;
  /**
   * The task's secrets and configs: files the node wrote (`source`) and the absolute path a
   * container sees each at (`target`), mounted read-only. A process task is given their
   * directories in its environment instead, so the process driver ignores this.
   */
  files?: Array<{ source: string; target: string }>;
}

/** One mount of a task (the spec's Mount). */
export interface TaskMount {
  type: "bind" | "volume" | "tmpfs";
  source: string;
  target: string;
  readOnly: boolean;
}

/** A task's place on one of its networks: the network as the node knows it, the task's address
 * with its prefix (`10.0.1.5/24`). */
export interface OverlayAttachment {
  network: NodeNetwork;
  addr: string;
}

/** What wires a task's network namespace into its networks (drivers/overlay.ts). */
export interface OverlayWiring {
  attach(ns: string, nets: OverlayAttachment[]): Promise<void>;
  detach(ns: string): Promise<void>;
}

/** The node's side of its networks (drivers/overlay.ts): built to match the managers' view. */
export interface OverlayNetworks extends OverlayWiring {
  /** Makes exactly these networks exist on this node (and removes the others it made). */
  sync(nets: NodeNetwork[]): Promise<void>;
  /** Removes everything it made (the node leaves the swarm). */
  removeAll(): Promise<void>;
}

export interface Handle {
  taskId: string;
  /** The task's main process (for the process driver: its process group leader). */
  pid: number;
  /** ms since epoch. */
  startedAt: number;
  /** The task's own IP address, when it runs in a network namespace of its own (bridge). */
  address?: string;
  /** Driver-specific fields needed to re-adopt the task; all JSON-serialisable. */
  [key: string]: unknown;
}

/**
 * How a task ended. Exactly one of the three is set: an exit code, the signal that killed it
 * (node's convention: then exitCode is null; the agent shows 128 + signal number), or an error
 * when the task could not run or its end could not be observed.
 */
export interface ExitStatus {
  exitCode: number | null;
  signal: string | null;
  /** OS error when the process could not start, e.g. `exec: "nope": executable file not found in $PATH`. */
  error: string | null;
}

export interface TaskStats {
  running: boolean;
  pid: number;
  rssBytes?: number;
  cpuSeconds?: number;
}

export interface Driver {
  readonly name: string;
  /** Starts the task; rejects with DriverError (code, OS message) when it cannot start. */
  start(spec: RunSpec): Promise<Handle>;
  /** Resolves when the task exits (works for adopted handles too). Never rejects. */
  wait(h: Handle): Promise<ExitStatus>;
  /** Sends signal (default: the spec's stop signal), then SIGKILL after timeoutMs; resolves when gone. */
  stop(h: Handle, timeoutMs: number, signal?: string): Promise<void>;
  /** Frees what start made (cgroup, timers); kills the task first if it still runs. Logs stay. */
  destroy(h: Handle): Promise<void>;
  inspect(h: Handle): Promise<TaskStats>;
  /** Re-adopts a task still running from a persisted Handle; null if it is gone or was replaced. */
  recover(h: Handle): Promise<Handle | null>;
}

/**
 * What the agent records, durably, before it asks a driver to start a task: enough for a
 * restarted agent to find what that start may have left behind when the agent died before it
 * could record the handle.
 */
export interface StartIntent {
  taskId: string;
  /** The driver the start was asked of ("process" when the spec named none). */
  driver: string;
  taskDir: string;
  /** ms since epoch, just before the start. */
  at: number;
}

/**
 * An optional ability: ends whatever start() may have left of a task whose handle was never
 * recorded (the agent died while starting it): processes, containers, cgroups, namespaces.
 * Resolves, once they are gone, with how many processes or containers it ended.
 */
export interface Reaper {
  reap(intent: StartIntent): Promise<number>;
}

export function reaps(d: Driver): d is Driver & Reaper {
  return typeof (d as Partial<Reaper>).reap === "function";
}

/** A command to run beside a running task, as the task sees the world (a health check). */
export interface ExecRequest {
  argv: string[];
  /** The task's environment (the process driver; a container has its own). */
  env: Record<string, string>;
  /** The task's working directory as its spec gives it ("" = its own; relative to taskDir). */
  workdir: string;
  /** Killed after this long; the result is then `timedOut`. */
  timeoutMs: number;
}

export interface ExecResult {
  /** The command's exit status; -1 when it could not run, was killed or timed out. */
  exitCode: number;
  /** stdout and stderr together, cut to maxOutput bytes. */
  output: string;
  timedOut: boolean;
}

/**
 * An optional ability: runs a command inside a running task's world — its network namespace,
 * environment, working directory and limits (process driver), or inside its container (docker).
 * Never rejects for the command's own failure: that is the result's exit code.
 */
export interface Executor {
  exec(h: Handle, req: ExecRequest): Promise<ExecResult>;
}

export function execs(d: Driver): d is Driver & Executor {
  return typeof (d as Partial<Executor>).exec === "function";
}

/** Bytes of a command's output an exec keeps. */
export const EXEC_OUTPUT_MAX = 4096;

/**
 * An optional ability: what a running task uses now (cumulative CPU time, memory, network and
 * block I/O; drivers/usage.ts), or null when it does not run or cannot be read. `snap` is the
 * machine's process table for this sampling round, shared by every task of the round.
 */
export interface UsageReader {
  usage(h: Handle, snap: ProcSnapshot): Promise<TaskUsage | null>;
}

export function readsUsage(d: Driver): d is Driver & UsageReader {
  return typeof (d as Partial<UsageReader>).usage === "function";
}

/** Which resource limits a driver can enforce on this node (the scheduler's limits filter). */
export interface LimitSupport {
  cpu: boolean;
  memory: boolean;
}

/** An optional ability: a driver that knows which limits it can enforce here. */
export interface LimitReporter {
  limitSupport(): LimitSupport;
}

export function reportsLimits(d: Driver): d is Driver & LimitReporter {
  return typeof (d as Partial<LimitReporter>).limitSupport === "function";
}

/** Error codes a driver rejects with. */
export const DriverErrorCode = {
  /** The spec has no command. */
  NoCommand: "ERR_NO_COMMAND",
  /** command[0] was not found on PATH, or the path does not exist. */
  CommandNotFound: "ERR_COMMAND_NOT_FOUND",
  /** command[0] exists but is not an executable file. */
  PermissionDenied: "ERR_PERMISSION_DENIED",
  /** The working directory does not exist or is not a directory. */
  BadWorkdir: "ERR_WORKDIR",
  /** Limits were asked for and this driver/host cannot enforce them. */
  LimitsUnsupported: "ERR_LIMITS_UNSUPPORTED",
  /** Creating or joining the task's cgroup failed. */
  Cgroup: "ERR_CGROUP",
  /** Unknown signal name. */
  BadSignal: "ERR_BAD_SIGNAL",
  /** The OS refused to spawn the process (EAGAIN, ENOMEM, ...). */
  Spawn: "ERR_SPAWN",
  /** The log files could not be opened. */
  Logs: "ERR_LOGS",
  /** Bridge networking was asked for and this driver/host cannot do it (not Linux, not root, no `ip`). */
  NetworkUnsupported: "ERR_NETWORK_UNSUPPORTED",
  /** Setting up the task's network namespace failed. */
  Network: "ERR_NETWORK",
  /** The spec names a driver this node does not have (no Docker Engine reachable, say). */
  DriverUnavailable: "ERR_DRIVER_UNAVAILABLE",
  /** The image the spec names is not on this node (shoal does not pull images). */
  ImageNotFound: "ERR_IMAGE_NOT_FOUND",
  /** Mounts were asked for and this driver/host cannot make them (not Linux, not root). */
  MountsUnsupported: "ERR_MOUNTS_UNSUPPORTED",
  /** A mount could not be made (a bind source that does not exist, a failed mount). */
  Mount: "ERR_MOUNT",
  /** The task's user is unknown, or this host cannot switch to it. */
  User: "ERR_USER",
} as const;
export type DriverErrorCode = (typeof DriverErrorCode)[keyof typeof DriverErrorCode];

export class DriverError extends Error {
  override name = "DriverError";
  readonly code: DriverErrorCode;

  constructor(code: DriverErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/**
 * Normalises a signal given as "SIGTERM", "TERM", "sigterm" or "15" to its name ("SIGTERM").
 * Throws DriverError ERR_BAD_SIGNAL for anything this OS does not know.
 */
export function normalizeSignal(sig: string): NodeJS.Signals {
  const name = signalOf(sig);
  if (name === null) throw new DriverError(DriverErrorCode.BadSignal, `invalid signal: ${sig}`);
  return name;
}

/** The signal name for a number, or null (for example for real-time signals). */
export function signalName(n: number): NodeJS.Signals | null {
  for (const [name, num] of Object.entries(constants.signals as Record<string, number>)) {
    // SIGIOT and SIGABRT, SIGPOLL and SIGIO share numbers: prefer the first listed (the POSIX one).
    if (num === n) return name as NodeJS.Signals;
  }
  return null;
}
