// The agent: runs the tasks the manager assigned to this node through a driver, and reports
// what it observes. It is level-triggered: every assignment set it receives is the full set for
// the node; whatever runs here and is not wanted is stopped, whatever is wanted and not running
// is started. Handles are persisted so that a restarted agent adopts the tasks still running
// instead of starting them twice.
//
// Nothing runs untracked: before a driver may start anything for a task, the agent records the
// task's start intent (intent.json: task id, driver, task dir) durably; the handle follows
// (handle.json, also durably) once the driver returns it, and only then is the intent removed. An
// agent killed in between leaves an intent without a handle: the restarted agent has the driver
// reap whatever that start left (Reaper, drivers/driver.ts) before it starts anything, so the
// manager's next assignment starts the task once, not twice.
//
// Networking: with host networking (the default) the agent picks a free host port per published
// target and passes it as PORT / SHOAL_PORT_<target>. With bridge networking the task runs in a
// network namespace of its own (the driver makes it) and listens on the target ports itself; the
// agent still owns a host port per target (so the routing mesh is the same for both modes) and
// forwards it to the task's address with a PortForwarder, re-created when a task is adopted.

import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createServer } from "node:net";
import { constants } from "node:os";
import {
  execs,
  reaps,
  type Driver,
  type Handle,
  type ExitStatus,
  type StartIntent,
} from "./drivers/driver.js";
import { expandTemplate } from "./template.js";
import { routedPorts } from "../api/route-labels.js";
import { BRIDGE_GATEWAY, natsUrlForBridge, natsUrlWithUser } from "./drivers/netns.js";
import { PortForwarder } from "./forward.js";
import { isTerminal, networkOf, type Task, type TaskReport, type TaskState } from "../api/types.js";
import type { Logger } from "../lib/log.js";
import { cidrHost } from "../lib/addr.js";
import type { AppCredentials, NodeNetwork } from "../api/bus.js";
import type { OverlayAttachment } from "./drivers/driver.js";
import { writeFileDurable } from "../lib/durable.js";
import {
  healthCheckOf,
  initialHealth,
  nextCheckDelay,
  recordResult,
  timedOut,
  type HealthCheck,
} from "./health.js";
import type { TaskHealth } from "../api/types.js";
import type { TaskFileData } from "../api/bus.js";
import {
  hasTaskFiles,
  removeTaskFiles,
  taskFilesDir,
  writeTaskFiles,
  type FileData,
} from "./task-files.js";

export type { TaskReport } from "../api/types.js";

/** What this component logs through (the one Logger interface, src/lib/log.ts). */
export type AgentLogger = Pick<Logger, "info" | "warn" | "error" | "debug">;

export interface AgentOptions {
  nodeId: string;
  hostname: string;
  dataDir: string;
  /** The NATS URL applications get (the node's message server). */
  natsUrl: string;
  logMaxBytes: number;
  report: (reports: TaskReport[]) => void;
  /** Test hook: runs after the driver started a task and before its handle is recorded (a
   * test stands in for a crash there with a promise that never settles). */
  afterDriverStart?: (taskId: string) => Promise<void>;
  /** How this node runs `shoal` ([node, script]): tasks find it on their PATH (so
   * `shoal nats-server` is the process driver's "nats image"). */
  shoalCommand?: [string, string];
}

/** Writes `<dir>/shoal`, a launcher of this shoal; returns the directory (for a task's PATH). */
function writeShoalLauncher(dir: string, [node, script]: [string, string]): string {
  mkdirSync(dir, { recursive: true });
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  writeFileSync(join(dir, "shoal"), `#!/bin/sh\nexec ${q(node)} ${q(script)} "$@"\n`, {
    mode: 0o755,
  });
  return dir;
}

/** Where a task's handle and start intent are recorded, in its directory. */
const HANDLE_FILE = "handle.json";
const INTENT_FILE = "intent.json";

/** A JSON file's content, or null when it is missing or unreadable. */
function readJson(file: string): unknown {
  try {
    return JSON.parse(readFileSync(file, "utf8")) as unknown;
  } catch {
    return null;
  }
}

function asIntent(x: unknown, taskId: string): StartIntent | null {
  const i = x as Partial<StartIntent> | null;
  if (
    i === null ||
    typeof i !== "object" ||
    i.taskId !== taskId ||
    typeof i.driver !== "string" ||
    typeof i.taskDir !== "string"
  ) {
    return null;
  }
  return { taskId, driver: i.driver, taskDir: i.taskDir, at: typeof i.at === "number" ? i.at : 0 };
}

interface Local {
  task: Task;
  handle: Handle | null;
  stopping: boolean;
  /** Set once the process has exited and the exit was reported. */
  done: boolean;
  hostPorts: Record<string, number>;
  /** Bridge networking: host port → task address forwarders, one per target. */
  forwarders: PortForwarder[];
  /** Why the agent stopped it on its own (fencing, a failed health check): reported as a
   * failure. */
  fenced?: string;
  /** The task's environment as it was started (its health check runs with it). */
  env: Record<string, string>;
  /** The task's health check and what it found so far (tasks whose spec has one). */
  health?: { check: HealthCheck; state: TaskHealth; timer: NodeJS.Timeout | null };
}

/** A free TCP port on this host, picked by the OS. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "0.0.0.0", () => {
      const addr = s.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      s.close(() => resolve(port));
    });
  });
}

/** Task starts in flight at once; more wait their turn (see `startSlot`). A docker task's start
 * is mostly waiting on its engine: a stack of ten services starts in one go. */
const CONCURRENT_STARTS = 16;

export class Agent {
  private readonly local = new Map<string, Local>();
  /** The networks of this node's tasks as the managers last described them, and a promise that
   * settles once the node has built them (a task on a network starts after that). */
  private networks = new Map<string, NodeNetwork>();
  private networksReady: Promise<void> = Promise.resolve();
  /** Where the `shoal` launcher of tasks' PATH is, once written. */
  private launcherDir: string | undefined;

  /** The managers' latest view of this node's networks; `ready` settles once they are built. */
  setNetworks(nets: NodeNetwork[], ready: Promise<void>): void {
    this.networks = new Map(nets.map((n) => [n.id, n]));
    this.networksReady = ready;
  }

  /**
   * A task's networks as its driver wires them, and a promise that settles once the node has
   * built them (the driver waits for it only to wire the task); throws while one is not known
   * here yet, after the networks being built.
   */
  private async overlayOf(
    t: Task,
  ): Promise<{ overlay: OverlayAttachment[]; ready: Promise<void> }> {
    const attached = t.networks ?? [];
    if (attached.length === 0) return { overlay: [], ready: Promise.resolve() };
    const find = () => attached.map((a) => this.networks.get(a.networkId));
    let found = find();
    if (found.some((n) => n === undefined)) {
      await this.networksReady;
      found = find();
    }
    const overlay = attached.map((a, i) => {
      const network = found[i];
      if (!network) throw new Error(`network ${a.networkId} is not set up on this node yet`);
      return { network, addr: a.addr };
    });
    return { overlay, ready: this.networksReady };
  }
  /** The data of the secrets and configs this node's tasks use, as last sent (task-files.ts). */
  private fileData: FileData = { secret: new Map(), config: new Map() };
  /** Each service's user on the message server, by service id, as last sent. */
  private appCredentials = new Map<string, AppCredentials>();
  private starting = 0;
  private readonly startWaiters: Array<() => void> = [];
  private readonly tasksDir: string;
  private stopped = false;

  constructor(
    readonly driver: Driver,
    readonly log: AgentLogger,
    readonly opts: AgentOptions,
  ) {
    this.tasksDir = join(opts.dataDir, "tasks");
    mkdirSync(this.tasksDir, { recursive: true });
  }

  taskDir(taskId: string): string {
    return join(this.tasksDir, taskId);
  }

  /** Re-adopts tasks left running by a previous agent (after a crash or kill -9), and ends
   * what its interrupted starts left. */
  async recover(): Promise<void> {
    for (const id of readdirSync(this.tasksDir)) {
      const file = join(this.tasksDir, id, HANDLE_FILE);
      const intentFile = join(this.tasksDir, id, INTENT_FILE);
      const saved = readJson(file) as {
        handle: Handle;
        task: Task;
        hostPorts: Record<string, number>;
        env?: Record<string, string>;
      } | null;
      if (saved === null || typeof saved !== "object" || !saved.handle || !saved.task) {
        const intent = asIntent(readJson(intentFile), id);
        if (intent !== null) await this.reapInterrupted(intent);
        rmSync(intentFile, { force: true });
        continue;
      }
      rmSync(intentFile, { force: true });
      const h = await this.driver.recover(saved.handle);
      if (h === null) {
        rmSync(file, { force: true });
        this.opts.report([
          {
            taskId: id,
            state: "failed",
            message: "exited while the agent was down",
            err: "task process exited while the agent was down",
          },
        ]);
        continue;
      }
      this.log.info(
        `adopted task ${saved.task.serviceName}.${saved.task.slot} (${id}) pid ${h.pid}`,
      );
      const l: Local = {
        task: saved.task,
        handle: h,
        stopping: false,
        done: false,
        hostPorts: saved.hostPorts,
        forwarders: [],
        env: saved.env ?? {},
      };
      this.local.set(id, l);
      if (typeof h.address === "string") await this.forwardAgain(l, h.address);
      this.watchExit(l, h);
      // A task with a health check is checked again from the start (the manager keeps a task
      // it knew running as running until a check says otherwise).
      const health = this.watchHealth(l, h);
      this.opts.report([
        {
          taskId: id,
          state: health ? "starting" : "running",
          message: "adopted",
          pid: h.pid,
          hostPorts: l.hostPorts,
          ...(health ? { health } : {}),
        },
      ]);
    }
    this.removeStaleFiles();
  }

  /** Removes the secret and config files of tasks that do not run here (any more). */
  private removeStaleFiles(): void {
    let ids: string[] = [];
    try {
      ids = readdirSync(join(this.opts.dataDir, "secrets"));
    } catch {
      return; // none written yet
    }
    for (const id of ids) {
      if (!this.local.has(id)) removeTaskFiles(taskFilesDir(this.opts.dataDir, id));
    }
  }

  /** A start the previous agent did not see through: its driver ends what it left. */
  private async reapInterrupted(intent: StartIntent): Promise<void> {
    let n = 0;
    try {
      n = reaps(this.driver) ? await this.driver.reap(intent) : 0;
    } catch (err) {
      this.log.error(
        `task ${intent.taskId}: reaping an interrupted start: ${(err as Error).message}`,
      );
      return;
    }
    this.log.warn(
      `task ${intent.taskId}: the agent stopped while starting it; ended ${n} process group(s) ` +
        `that start left (the task starts again if it is still wanted)`,
    );
  }

  /** The full set of tasks assigned to this node. */
  assign(
    tasks: Task[],
    files?: {
      secrets?: TaskFileData[];
      configs?: TaskFileData[];
      appCredentials?: AppCredentials[];
    },
  ): void {
    if (this.stopped) return;
    if (files) {
      this.fileData = {
        secret: new Map((files.secrets ?? []).map((x) => [x.id, x.data])),
        config: new Map((files.configs ?? []).map((x) => [x.id, x.data])),
      };
      this.appCredentials = new Map((files.appCredentials ?? []).map((c) => [c.serviceId, c]));
    }
    const wanted = new Map<string, Task>();
    for (const t of tasks) if (t.nodeId === this.opts.nodeId) wanted.set(t.id, t);
    // Stop what runs here and is no longer wanted.
    for (const [id, l] of this.local) {
      const t = wanted.get(id);
      if (!t || t.desiredState === "shutdown" || t.desiredState === "remove") {
        if (!l.stopping && !l.done) void this.stopTask(l, t ?? l.task);
      } else {
        l.task = t;
      }
    }
    // Start what is wanted and not running.
    for (const t of wanted.values()) {
      if (this.local.has(t.id) || isTerminal(t.status.state)) continue;
      if (t.desiredState !== "running") continue;
      if (t.status.state === "running") {
        // The manager believes it runs here but we have no such process: it is gone.
        this.opts.report([
          { taskId: t.id, state: "failed", message: "lost", err: "task process not found on node" },
        ]);
        continue;
      }
      void this.startTask(t);
    }
  }

  private async startTask(t: Task): Promise<void> {
    const l: Local = {
      task: t,
      handle: null,
      stopping: false,
      done: false,
      hostPorts: {},
      forwarders: [],
      env: {},
    };
    this.local.set(t.id, l);
    const dir = this.taskDir(t.id);
    mkdirSync(dir, { recursive: true });
    this.opts.report([{ taskId: t.id, state: "preparing", message: "preparing" }]);
    await this.startSlot();
    try {
      if (l.stopping || this.stopped) {
        // Unassigned (or the agent stopped) while it waited for its turn: never started.
        l.done = true;
        this.local.delete(t.id);
        this.opts.report([{ taskId: t.id, state: "shutdown", message: "shutdown" }]);
        return;
      }
      const spec = t.spec;
      const { overlay, ready } = await this.overlayOf(t);
      // Secrets and configs are on disk before the task starts (errors name them, never their data).
      const files = hasTaskFiles(spec)
        ? writeTaskFiles(taskFilesDir(this.opts.dataDir, t.id), spec, this.fileData)
        : null;
      const bridge = networkOf(spec) === "bridge" || overlay.length > 0;
      // A host port for each published target and each port the service's routes go to: the
      // routing mesh and the HTTP routers on every node reach the task there.
      const targets = new Set([...spec.ports.map((p) => p.target), ...routedPorts(spec)]);
      for (const port of targets) {
        const target = String(port);
        if (l.hostPorts[target] !== undefined) continue;
        if (bridge) {
          // Listening right away holds the port; connections are refused until the task runs.
          const fw = new PortForwarder();
          l.forwarders.push(fw);
          l.hostPorts[target] = await fw.listen(0);
        } else {
          l.hostPorts[target] = await freePort();
        }
      }
      const ctx = {
        Task: { ID: t.id, Slot: String(t.slot), Name: `${t.serviceName}.${t.slot}` },
        Service: { ID: t.serviceId, Name: t.serviceName },
        Node: { ID: this.opts.nodeId, Hostname: this.opts.hostname },
      };
      const env: Record<string, string> = {};
      for (const k of ["PATH", "HOME", "LANG", "TZ", "NODE_PATH"]) {
        const v = process.env[k];
        if (v !== undefined) env[k] = v;
      }
      if (this.opts.shoalCommand) {
        this.launcherDir ??= writeShoalLauncher(
          join(this.opts.dataDir, "bin"),
          this.opts.shoalCommand,
        );
        env["PATH"] = `${this.launcherDir}:${env["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"}`;
      }
      for (const [k, v] of Object.entries(spec.env)) env[k] = expandTemplate(v, ctx);
      env["SHOAL_TASK_ID"] = t.id;
      env["SHOAL_TASK_SLOT"] = String(t.slot);
      env["SHOAL_TASK_NAME"] = `${t.serviceName}.${t.slot}`;
      env["SHOAL_SERVICE_NAME"] = t.serviceName;
      env["SHOAL_SERVICE_ID"] = t.serviceId;
      env["SHOAL_NODE_ID"] = this.opts.nodeId;
      env["SHOAL_NODE_HOSTNAME"] = this.opts.hostname;
      // From its own namespace a task reaches this node at its gateway: the task bridge's
      // address, or this node's own address on the task's first network with a way out.
      const way = overlay.find((o) => !o.network.internal)?.network.nodeAddr;
      const gateway = overlay.length > 0 ? way && cidrHost(way) : BRIDGE_GATEWAY;
      const natsUrl =
        bridge && gateway ? natsUrlForBridge(this.opts.natsUrl, gateway) : this.opts.natsUrl;
      // The service's own user (its stack's account), in the URL as the Go client reads it and
      // apart for clients that take them as options (nats.js).
      const cred = this.appCredentials.get(t.serviceId);
      env["NATS_URL"] = cred ? natsUrlWithUser(natsUrl, cred.user, cred.password) : natsUrl;
      if (cred) {
        env["NATS_USER"] = cred.user;
        env["NATS_PASSWORD"] = cred.password;
      }
      // In its own namespace the task listens on the target ports themselves.
      const ports = Object.entries(l.hostPorts).map(
        ([target, host]) => [target, bridge ? target : String(host)] as const,
      );
      for (const [target, port] of ports) env[`SHOAL_PORT_${target}`] = port;
      if (ports.length > 0) env["PORT"] = ports[0]![1];
      if (files && (spec.driver ?? "process") !== "docker") {
        if (files.secretsDir) env["SHOAL_SECRETS_DIR"] = files.secretsDir;
        if (files.configsDir) env["SHOAL_CONFIGS_DIR"] = files.configsDir;
      }
      l.env = env;
      this.opts.report([
        { taskId: t.id, state: "starting", message: "starting", hostPorts: l.hostPorts },
      ]);
      const intent: StartIntent = {
        taskId: t.id,
        driver: spec.driver ?? "process",
        taskDir: dir,
        at: Date.now(),
      };
      await writeFileDurable(join(dir, INTENT_FILE), JSON.stringify(intent));
      const handle = await this.driver.start({
        driver: spec.driver,
        ...(spec.image ? { image: spec.image } : {}),
        taskId: t.id,
        serviceName: t.serviceName,
        slot: t.slot,
        nodeId: this.opts.nodeId,
        nodeHostname: this.opts.hostname,
        command: spec.command.map((a) => expandTemplate(a, ctx)),
        env,
        workdir: spec.workdir,
        taskDir: dir,
        limits: spec.limits,
        stopSignal: spec.stopSignal,
        logMaxBytes: this.opts.logMaxBytes,
        ...(bridge ? { network: "bridge" as const } : {}),
        ...(overlay.length > 0 ? { overlay, overlayReady: ready } : {}),
        ...(spec.mounts?.length
          ? { mounts: spec.mounts, volumesDir: join(this.opts.dataDir, "volumes") }
          : {}),
        ...(spec.user ? { user: spec.user } : {}),
        ...(files && files.mounts.length > 0 ? { files: files.mounts } : {}),
      });
      l.handle = handle;
      if (this.opts.afterDriverStart) await this.opts.afterDriverStart(t.id);
      if (bridge) {
        if (typeof handle.address !== "string") {
          await this.driver.destroy(handle).catch(() => {});
          throw new Error(`the ${this.driver.name} driver gave no address for a bridge task`);
        }
        this.setTargets(l, handle.address);
      }
      await writeFileDurable(
        join(dir, HANDLE_FILE),
        JSON.stringify({ handle, task: t, hostPorts: l.hostPorts, env }),
      );
      rmSync(join(dir, INTENT_FILE), { force: true });
      // With a health check the task is `starting` until its first healthy result.
      const health = this.watchHealth(l, handle);
      this.opts.report([
        {
          taskId: t.id,
          state: health ? "starting" : "running",
          message: "started",
          pid: handle.pid,
          hostPorts: l.hostPorts,
          ...(health ? { health } : {}),
        },
      ]);
      this.watchExit(l, handle);
      // It may have been unassigned while starting.
      if (l.stopping) void this.stopTask(l, l.task);
    } catch (err) {
      l.done = true;
      this.local.delete(t.id);
      // Started but not recorded (the handle could not be written): nothing may run untracked.
      if (l.handle) await this.driver.destroy(l.handle).catch(() => {});
      rmSync(join(dir, HANDLE_FILE), { force: true });
      rmSync(join(dir, INTENT_FILE), { force: true });
      removeTaskFiles(taskFilesDir(this.opts.dataDir, t.id));
      await this.closeForwarders(l);
      const msg = (err as Error).message;
      this.log.warn(`task ${t.serviceName}.${t.slot} (${t.id}) failed to start: ${msg}`);
      this.opts.report([{ taskId: t.id, state: "failed", message: "starting failed", err: msg }]);
    } finally {
      this.releaseStartSlot();
    }
  }

  /**
   * Waits for one of CONCURRENT_STARTS start slots. Spawning is synchronous work on this
   * thread; a hundred tasks assigned at once used to be spawned in one burst, which starved the
   * heartbeat timer long enough for the manager to mark the node down.
   */
  private startSlot(): Promise<void> {
    if (this.starting < CONCURRENT_STARTS) {
      this.starting++;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.startWaiters.push(resolve));
  }

  /** Hands the slot to the next waiter on a later turn of the event loop (timers run first). */
  private releaseStartSlot(): void {
    const next = this.startWaiters.shift();
    if (next) setImmediate(next);
    else this.starting--;
  }

  /** Points each forwarder at the task's address and its target port. */
  private setTargets(l: Local, address: string): void {
    const byPort = new Map(Object.entries(l.hostPorts).map(([tg, hp]) => [hp, Number(tg)]));
    for (const fw of l.forwarders) {
      const target = byPort.get(fw.port);
      if (target !== undefined) fw.target = { host: address, port: target };
    }
  }

  /** An adopted bridge task: listens on its host ports again (the old agent's are gone). */
  private async forwardAgain(l: Local, address: string): Promise<void> {
    for (const [target, hostPort] of Object.entries(l.hostPorts)) {
      const fw = new PortForwarder({ host: address, port: Number(target) });
      try {
        await fw.listen(hostPort);
        l.forwarders.push(fw);
      } catch (err) {
        await fw.close();
        this.log.warn(
          `task ${l.task.id}: cannot forward host port ${hostPort} again: ${(err as Error).message}`,
        );
      }
    }
  }

  private async closeForwarders(l: Local): Promise<void> {
    const fws = l.forwarders.splice(0);
    await Promise.all(fws.map((fw) => fw.close()));
  }

  /**
   * Starts checking a task's health when its spec has a check (health.ts has the rules);
   * returns its health before the first check, or null without a check. Each result that
   * changes the status or the failing streak is reported: `starting` until the first success,
   * then `running`; an unhealthy task is stopped and reported failed with error "unhealthy".
   */
  private watchHealth(l: Local, h: Handle): TaskHealth | null {
    const check = healthCheckOf(l.task.spec.healthcheck);
    if (check === null) return null;
    const health = { check, state: initialHealth(), timer: null as NodeJS.Timeout | null };
    l.health = health;
    const schedule = () => {
      const delay = nextCheckDelay(check, health.state, h.startedAt, Date.now());
      health.timer = setTimeout(() => void probe(), delay);
    };
    const probe = async () => {
      health.timer = null;
      if (l.done || l.stopping || this.stopped) return;
      const start = Date.now();
      const r = execs(this.driver)
        ? await this.driver.exec(h, {
            argv: check.argv,
            env: l.env,
            workdir: l.task.spec.workdir,
            timeoutMs: check.timeoutMs,
          })
        : {
            exitCode: -1,
            output: `the ${this.driver.name} driver cannot run checks`,
            timedOut: false,
          };
      const end = Date.now();
      if (l.done || l.stopping || this.stopped) return;
      const before = health.state;
      health.state = recordResult(
        check,
        before,
        r.timedOut
          ? timedOut(check, start, end)
          : { start, end, exitCode: r.exitCode, output: r.output },
        h.startedAt,
      );
      const now = health.state;
      if (now.status === "unhealthy") {
        this.log.warn(`task ${l.task.serviceName}.${l.task.slot} (${l.task.id}) is unhealthy`);
        // Reported at once, so that it leaves DNS, VIPs and the routing mesh while it stops.
        this.opts.report([
          {
            taskId: l.task.id,
            state: before.status === "starting" ? "starting" : "running",
            message: "unhealthy",
            pid: h.pid,
            hostPorts: l.hostPorts,
            health: now,
          },
        ]);
        l.fenced = "unhealthy";
        void this.stopTask(l, l.task);
        return;
      }
      if (now.status !== before.status || now.failingStreak !== before.failingStreak) {
        this.opts.report([
          {
            taskId: l.task.id,
            state: now.status === "starting" ? "starting" : "running",
            message: now.status === "starting" ? "starting" : "started",
            pid: h.pid,
            hostPorts: l.hostPorts,
            health: now,
          },
        ]);
      }
      schedule();
    };
    schedule();
    return health.state;
  }

  private stopHealth(l: Local): void {
    if (l.health?.timer) clearTimeout(l.health.timer);
    if (l.health) l.health.timer = null;
  }

  private watchExit(l: Local, h: Handle): void {
    void this.driver.wait(h).then(
      (status) => this.exited(l, h, status),
      (err: Error) => this.exited(l, h, { exitCode: null, signal: null, error: err.message }),
    );
  }

  private async exited(l: Local, h: Handle, status: ExitStatus): Promise<void> {
    if (l.done) return;
    l.done = true;
    this.stopHealth(l);
    const id = l.task.id;
    rmSync(join(this.taskDir(id), HANDLE_FILE), { force: true });
    await this.closeForwarders(l);
    await this.driver.destroy(h).catch(() => {});
    removeTaskFiles(taskFilesDir(this.opts.dataDir, id));
    this.local.delete(id);
    if (this.stopped) return;
    const code = status.exitCode ?? (status.signal ? 128 + signalNumber(status.signal) : null);
    let state: TaskState;
    let err = "";
    if (l.fenced !== undefined) {
      state = "failed";
      err = l.fenced;
    } else if (l.stopping) {
      state = "shutdown";
    } else if (status.error) {
      state = "failed";
      err = status.error;
    } else if (code === 0) {
      state = "complete";
    } else {
      state = "failed";
      err = `task: non-zero exit (${code ?? "unknown"})`;
    }
    this.opts.report([
      {
        taskId: id,
        state,
        message: state === "complete" ? "finished" : state,
        err,
        exitCode: code,
        ...(l.health ? { health: l.health.state } : {}),
      },
    ]);
  }

  private async stopTask(l: Local, t: Task): Promise<void> {
    l.stopping = true;
    if (!l.handle) return; // startTask stops it once started
    try {
      await this.driver.stop(l.handle, t.spec.stopGracePeriodMs, t.spec.stopSignal);
    } catch (err) {
      this.log.error(`stopping task ${t.id}: ${(err as Error).message}`);
    }
  }

  /**
   * Stops every task on the agent's own account (the node lost the managers, who run the tasks
   * elsewhere by now); each is reported failed with `why`. Returns how many it stops.
   */
  fence(why: string): number {
    let n = 0;
    for (const l of this.local.values()) {
      if (l.done || l.stopping) continue;
      l.fenced = why;
      n++;
      void this.stopTask(l, l.task);
    }
    return n;
  }

  /** Tasks this agent runs now (for heartbeats). */
  running(): Array<{ taskId: string; pid: number | null }> {
    return [...this.local.values()]
      .filter((l) => !l.done)
      .map((l) => ({ taskId: l.task.id, pid: l.handle?.pid ?? null }));
  }

  /** The tasks running here with their handles (the metrics sampler's list). */
  handles(): Array<{ task: Task; handle: Handle }> {
    const out: Array<{ task: Task; handle: Handle }> = [];
    for (const l of this.local.values()) {
      if (!l.done && !l.stopping && l.handle) out.push({ task: l.task, handle: l.handle });
    }
    return out;
  }

  /** Stops watching; tasks keep running (a restarted agent adopts them) unless `stopTasks`. */
  async stop(stopTasks: boolean): Promise<void> {
    if (stopTasks) {
      await Promise.all(
        [...this.local.values()].map((l) =>
          l.handle
            ? this.driver.stop(l.handle, l.task.spec.stopGracePeriodMs, l.task.spec.stopSignal)
            : undefined,
        ),
      );
    }
    this.stopped = true;
    for (const l of this.local.values()) this.stopHealth(l);
    // The host ports go with this agent; a restarted one listens on them again for the tasks
    // it adopts.
    await Promise.all([...this.local.values()].map((l) => this.closeForwarders(l)));
  }
}

/** The signal's number on this OS (the table the drivers use too), 0 when unknown. */
function signalNumber(sig: string): number {
  return (constants.signals as Record<string, number>)[sig] ?? 0;
}
