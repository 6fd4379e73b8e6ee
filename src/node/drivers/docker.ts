// The `docker` driver: runs a task as a container on the Docker Engine of this node, through the
// Engine API (dockerode). Images must already be on the node: shoal never pulls.
//
// The task contract is the process driver's, as far as a container allows:
//   - host networking (NetworkMode "host"), so a task listens on $PORT of the node as a process
//     would; bridge networking is refused for now (ERR_NETWORK_UNSUPPORTED);
//   - a task on shoal's networks (RunSpec.overlay) is wired the way CNI plugins do it: the
//     container is created without a network (NetworkMode "none") and with the node's address on
//     its first network as its DNS server; once it runs, its network namespace gets a name
//     (`ip netns attach`, nsName(taskId)) and the overlay wiring adds its veths, addresses and
//     route, as for a process task. The name is kept in the handle; when the container ends
//     (stop, destroy, an exit seen by a recovered driver) the veths and the name go (the name
//     holds the namespace, so it must). The container's network comes up a moment after its
//     process starts: a task must not count on it at its very first instruction. Only a local
//     engine's containers can be wired (their namespaces must be on this machine);
//   - mounts are the engine's (HostConfig.Mounts: a bind, a named local volume the engine makes
//     when missing, a tmpfs), and spec.user the container's User;
//   - the task's environment is exactly spec.env (the engine adds HOSTNAME, and HOME when absent);
//   - command (when non-empty) replaces the image's Cmd (its Entrypoint stays); an absolute
//     workdir becomes WorkingDir, "" keeps the image's;
//   - the container runs under the engine's init (tini, HostConfig.Init), so the task is not pid 1:
//     the stop signal reaches it, and a task that dies of a signal is reported as that signal
//     (the init exits 128 + n, read back like the process driver's shell status);
//   - stdout and stderr are streamed (demultiplexed) from the engine into taskDir/stdout.log and
//     stderr.log, capped like the process driver's logs, so readLogs() and `service logs` work.
//
// The engine would create a missing working directory and the init would only say "exec failed"
// after starting: so, between creating and starting the container, the driver looks the working
// directory and command[0] up in the container's filesystem (the archive API) and refuses with
// the process driver's Docker-like messages.
//
// Logs: the engine keeps a container's output in its json-file log (capped by engineLogMaxBytes);
// the driver follows it from the beginning right after start, so nothing is lost between start
// and the first read. After an agent restart, recover() resumes streaming from that moment on:
// what the task printed while no agent was there stays only in the engine's log (`docker logs`).
// wait() resolves once the exit is known and the log stream has drained, so the log files are
// complete when a task's status is reported.

import Docker from "dockerode";
import { closeSync, existsSync, mkdirSync, openSync, writeSync } from "node:fs";
import { isAbsolute, join, posix } from "node:path";
import type { Readable } from "node:stream";
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
  type LimitReporter,
  type LimitSupport,
  type OverlayWiring,
  type Reaper,
  type Executor,
  type ExecRequest,
  type ExecResult,
  type UsageReader,
  EXEC_OUTPUT_MAX,
} from "./driver.js";
import { engineStatsUsage, type EngineStats, type TaskUsage } from "./usage.js";
import { capLogsEvery, capTaskLogs, logPath } from "./logs.js";
import { findIp, ipQuiet, ipRun, nsName } from "./netns.js";
import { cidrHost } from "../../lib/addr.js";

export interface DockerDriverOptions {
  /** The engine's unix socket; "" = DOCKER_HOST if set, else /var/run/docker.sock. */
  socketPath: string;
  /** How often running tasks' logs are checked against their cap, ms. */
  logCheckIntervalMs: number;
  /** Run the engine's init as pid 1 of every container (signals then reach the task). */
  init: boolean;
  /** Cap of the engine's own copy of a container's output (its json-file log), bytes. */
  engineLogMaxBytes: number;
  /** How long wait() waits for the log stream to drain after the container exited, ms. */
  logDrainMs: number;
  /** The image of a spec that names none ("" = such a spec is refused). */
  defaultImage: string;
  /** Wires containers into shoal's networks; null where this node cannot (RunSpec.overlay). */
  overlays: OverlayWiring | null;
  /** iproute2's `ip` (names a container's network namespace). */
  ipPath: string;
}

export function defaultDockerDriverOptions(): DockerDriverOptions {
  return {
    socketPath: "",
    logCheckIntervalMs: 1000,
    init: true,
    engineLogMaxBytes: 10 * 1024 * 1024,
    logDrainMs: 2000,
    defaultImage: "",
    overlays: null,
    ipPath: findIp(),
  };
}

/** Labels every container the driver makes carries. */
export const DockerLabels = {
  task: "com.shoal.task.id",
  service: "com.shoal.service.name",
  slot: "com.shoal.task.slot",
  node: "com.shoal.node.id",
} as const;

/** What the docker driver keeps in a Handle. */
export interface DockerHandle extends Handle {
  driver: "docker";
  containerId: string;
  /** The engine's State.StartedAt: a container restarted since is not the task we started. */
  containerStartedAt: string;
  taskDir: string;
  logMaxBytes: number;
  stopSignal: string;
  /** The name (under /run/netns) of the container's network namespace, when it is on shoal's
   * networks. */
  netns?: string;
}

/** Where `ip netns` keeps its names. */
const NETNS_DIR = "/run/netns";

interface Run {
  h: DockerHandle;
  exited: Promise<ExitStatus>;
  status: ExitStatus | null;
  logTimer: NodeJS.Timeout | null;
}

/** Go's os.FileMode bits, as the archive API reports them. */
const MODE_DIR = 2 ** 31;
const MODE_SYMLINK = 2 ** 27;

interface PathStat {
  mode: number;
}

interface EngineError {
  statusCode?: number;
  message?: string;
  json?: { message?: string } | null;
}

function statusOf(err: unknown): number | undefined {
  return (err as EngineError | null)?.statusCode;
}

/** The engine's own message for a failed call, without dockerode's "(HTTP code …)" prefix. */
function engineMessage(err: unknown): string {
  const e = err as EngineError | null;
  const m = e?.json?.message ?? e?.message ?? String(err);
  return m.replace(/^\(HTTP code \d+\) [^-]*- /, "").trim();
}

function settlesWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    void p.then(() => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

/** An engine status read back like a shell status: above 128 = killed by signal status-128. */
function exitStatusOf(code: number): ExitStatus {
  if (code > 128) {
    const sig = signalName(code - 128);
    if (sig !== null) return { exitCode: null, signal: sig, error: null };
  }
  return { exitCode: code, signal: null, error: null };
}

/**
 * Writes the engine's multiplexed stream (8-byte frame headers: stream type, 3 zero bytes,
 * big-endian length) to the two log descriptors. Resolves when the stream ends or fails.
 */
function pumpLogs(stream: Readable, outFd: number, errFd: number): Promise<void> {
  let pending: Buffer = Buffer.alloc(0);
  const write = (fd: number, buf: Buffer): void => {
    try {
      let off = 0;
      while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
    } catch {
      // A full disk or a removed task directory must not take the agent down.
    }
  };
  stream.on("data", (chunk: Buffer) => {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    while (pending.length >= 8) {
      const size = pending.readUInt32BE(4);
      if (pending.length < 8 + size) break;
      const kind = pending[0];
      const payload = pending.subarray(8, 8 + size);
      if (kind === 1) write(outFd, payload);
      else if (kind === 2) write(errFd, payload);
      pending = pending.subarray(8 + size);
    }
  });
  return new Promise((resolve) => {
    stream.once("end", resolve);
    stream.once("close", resolve);
    stream.once("error", () => resolve());
  });
}

/** The payload of the engine's multiplexed stream (stdout and stderr together), cut to
 * EXEC_OUTPUT_MAX bytes. Resolves when the stream ends. */
function collectFrames(stream: Readable): Promise<string> {
  let pending: Buffer = Buffer.alloc(0);
  const out: Buffer[] = [];
  let size = 0;
  stream.on("data", (chunk: Buffer) => {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    while (pending.length >= 8) {
      const n = pending.readUInt32BE(4);
      if (pending.length < 8 + n) break;
      if (size < EXEC_OUTPUT_MAX) {
        const payload = pending.subarray(8, 8 + Math.min(n, EXEC_OUTPUT_MAX - size));
        out.push(Buffer.from(payload));
        size += payload.length;
      }
      pending = pending.subarray(8 + n);
    }
  });
  return new Promise((resolve) => {
    const end = () => resolve(Buffer.concat(out).toString("utf8"));
    stream.once("end", end);
    stream.once("close", end);
    stream.once("error", end);
  });
}

export class DockerDriver implements Driver, LimitReporter, Reaper, Executor, UsageReader {
  readonly name = "docker";

  /** The engine enforces NanoCpus and Memory itself. */
  limitSupport(): LimitSupport {
    return { cpu: true, memory: true };
  }
  private readonly opts: DockerDriverOptions;
  private readonly docker: Docker;
  /** Where the engine is, for messages. */
  readonly address: string;
  private readonly runs = new Map<string, Run>();
  /** (image id, workdir, command, PATH, mounts) whose workdir and command were found. */
  private readonly lookedUp = new Set<string>();

  constructor(opts: Partial<DockerDriverOptions> = {}) {
    this.opts = { ...defaultDockerDriverOptions(), ...opts };
    if (this.opts.socketPath !== "") {
      this.docker = new Docker({ socketPath: this.opts.socketPath });
      this.address = `unix://${this.opts.socketPath}`;
    } else {
      // dockerode reads DOCKER_HOST (unix://, tcp://) itself.
      this.docker = new Docker();
      this.address = process.env["DOCKER_HOST"] || "unix:///var/run/docker.sock";
    }
  }

  /** Whether an engine answers (for callers deciding to offer the driver at all). */
  async available(): Promise<boolean> {
    try {
      await this.docker.ping();
      return true;
    } catch {
      return false;
    }
  }

  private async ping(): Promise<void> {
    try {
      await this.docker.ping();
    } catch (err) {
      throw new DriverError(
        DriverErrorCode.DriverUnavailable,
        `no Docker Engine reachable at ${this.address}: ${engineMessage(err)}`,
        { cause: err },
      );
    }
  }

  /** The archive API's stat of a path in a (created) container, or null when it is missing. */
  private async statPath(c: Docker.Container, path: string): Promise<PathStat | null> {
    let res: { headers?: Record<string, string | string[] | undefined>; resume?: () => void };
    try {
      res = (await c.infoArchive({ path })) as typeof res;
    } catch (err) {
      if (statusOf(err) === 404) return null;
      throw err;
    }
    res.resume?.();
    const raw = res.headers?.["x-docker-container-path-stat"];
    if (typeof raw !== "string") return { mode: 0 };
    try {
      const st = JSON.parse(Buffer.from(raw, "base64").toString("utf8")) as { mode?: number };
      return { mode: Number(st.mode ?? 0) };
    } catch {
      return { mode: 0 };
    }
  }

  /** Refuses, with the process driver's messages, a workdir or command the container lacks. */
  private async checkContainer(
    c: Docker.Container,
    spec: RunSpec,
    image: Docker.ImageInspectInfo,
  ): Promise<void> {
    const workdir = spec.workdir || image.Config.WorkingDir || "/";
    const wd = await this.statPath(c, workdir);
    if (wd === null || (wd.mode !== 0 && (wd.mode & MODE_DIR) === 0)) {
      const why = wd === null ? "no such file or directory" : "not a directory";
      throw new DriverError(
        DriverErrorCode.BadWorkdir,
        `chdir to cwd ("${workdir}") failed: ${why}`,
      );
    }
    // With an entrypoint, command is its arguments: nothing to look up.
    const entrypoint = image.Config.Entrypoint;
    if (spec.command.length === 0 || (Array.isArray(entrypoint) && entrypoint.length > 0)) return;
    const cmd = spec.command[0]!;
    let candidates: string[];
    if (cmd.includes("/")) {
      candidates = [posix.resolve(workdir, cmd)];
    } else {
      const imagePath = (image.Config.Env ?? [])
        .find((e) => e.startsWith("PATH="))
        ?.slice("PATH=".length);
      const path =
        spec.env["PATH"] ??
        imagePath ??
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
      candidates = path
        .split(":")
        .filter((d) => d !== "")
        .map((d) => posix.resolve(workdir, d, cmd));
    }
    let denied: string | null = null;
    for (const p of candidates) {
      const st = await this.statPath(c, p);
      if (st === null) continue;
      // A symlink (busybox applets) is taken as found; a regular file needs an x bit.
      if (st.mode === 0 || (st.mode & MODE_SYMLINK) !== 0) return;
      if ((st.mode & MODE_DIR) === 0 && (st.mode & 0o111) !== 0) return;
      denied ??= p;
    }
    if (denied !== null) {
      throw new DriverError(
        DriverErrorCode.PermissionDenied,
        `exec: "${cmd}": permission denied (${denied})`,
      );
    }
    throw new DriverError(
      DriverErrorCode.CommandNotFound,
      cmd.includes("/")
        ? `exec: "${cmd}": no such file or directory`
        : `exec: "${cmd}": executable file not found in $PATH`,
    );
  }

  async start(spec: RunSpec): Promise<Handle> {
    const stopSignal = normalizeSignal(spec.stopSignal);
    const overlay = spec.overlay ?? [];
    if (overlay.length > 0) this.checkOverlay();
    if (spec.network === "bridge" && overlay.length === 0) {
      throw new DriverError(
        DriverErrorCode.NetworkUnsupported,
        "the docker driver runs tasks with host networking only (bridge is not supported yet)",
      );
    }
    if (spec.workdir !== "" && !isAbsolute(spec.workdir)) {
      throw new DriverError(
        DriverErrorCode.BadWorkdir,
        `a docker task's workdir must be an absolute path in its image (got "${spec.workdir}")`,
      );
    }
    const imageName = spec.image || this.opts.defaultImage;
    if (imageName === "") {
      throw new DriverError(DriverErrorCode.ImageNotFound, "a docker task needs an image");
    }
    await this.ping();
    let image: Docker.ImageInspectInfo;
    try {
      image = await this.docker.getImage(imageName).inspect();
    } catch (err) {
      if (statusOf(err) === 404) {
        throw new DriverError(
          DriverErrorCode.ImageNotFound,
          `image "${imageName}" is not on this node (shoal does not pull images: ` +
            `load or build it on the node first)`,
          { cause: err },
        );
      }
      throw new DriverError(
        DriverErrorCode.DriverUnavailable,
        `inspecting image "${imageName}" at ${this.address}: ${engineMessage(err)}`,
        { cause: err },
      );
    }
    const imageCmd = image.Config.Cmd ?? [];
    const imageEntrypoint = image.Config.Entrypoint ?? [];
    if (spec.command.length === 0 && imageCmd.length === 0 && imageEntrypoint.length === 0) {
      throw new DriverError(
        DriverErrorCode.NoCommand,
        `no command given and image "${imageName}" has none`,
      );
    }

    let outFd: number;
    let errFd: number;
    try {
      mkdirSync(spec.taskDir, { recursive: true });
      outFd = openSync(logPath(spec.taskDir, "stdout"), "a");
      try {
        errFd = openSync(logPath(spec.taskDir, "stderr"), "a");
      } catch (err) {
        closeSync(outFd);
        throw err;
      }
    } catch (err) {
      throw new DriverError(DriverErrorCode.Logs, (err as Error).message, { cause: err });
    }

    const config: Docker.ContainerCreateOptions = {
      name: `shoal-${spec.taskId}`,
      Image: imageName,
      ...(spec.command.length > 0 ? { Cmd: spec.command } : {}),
      Env: Object.entries(spec.env).map(([k, v]) => `${k}=${v}`),
      StopSignal: stopSignal,
      ...(spec.user ? { User: spec.user } : {}),
      Labels: {
        [DockerLabels.task]: spec.taskId,
        [DockerLabels.service]: spec.serviceName,
        [DockerLabels.slot]: String(spec.slot),
        [DockerLabels.node]: spec.nodeId,
      },
      AttachStdin: false,
      AttachStdout: false,
      AttachStderr: false,
      Tty: false,
      OpenStdin: false,
      HostConfig: {
        NetworkMode: overlay.length > 0 ? "none" : "host",
        // shoal's resolver: the node's address on the task's first network.
        ...(overlay.length > 0
          ? { Dns: [cidrHost(overlay[0]!.network.nodeAddr)], DnsOptions: ["ndots:0"] }
          : {}),
        Init: this.opts.init,
        // The engine makes a named volume that is missing (a local one) and refuses a bind whose
        // source does not exist, in Docker's words. Secrets and configs: the node's files,
        // read-only (task-files.ts says why bind mounts).
        ...(spec.mounts?.length || spec.files?.length
          ? {
              Mounts: [
                ...(spec.mounts ?? []).map((m) => ({
                  Type: m.type,
                  Source: m.type === "tmpfs" ? "" : m.source,
                  Target: m.target,
                  ReadOnly: m.readOnly,
                })),
                ...(spec.files ?? []).map((f) => ({
                  Type: "bind" as const,
                  Source: f.source,
                  Target: f.target,
                  ReadOnly: true,
                })),
              ],
            }
          : {}),
        NanoCpus: Math.round(spec.limits.cpus * 1e9),
        Memory: spec.limits.memoryBytes,
        LogConfig: {
          Type: "json-file",
          Config: { "max-size": String(this.opts.engineLogMaxBytes), "max-file": "1" },
        },
      },
    };
    const create = async (withWorkdir: boolean): Promise<Docker.Container> => {
      try {
        return await this.docker.createContainer(
          withWorkdir ? { ...config, WorkingDir: spec.workdir } : config,
        );
      } catch (err) {
        // The engine's own words for a mount it refuses (Docker's "bind source path does not
        // exist"), as the process driver says them.
        const mount = /invalid mount config for type .*/.exec(engineMessage(err))?.[0];
        if (mount) throw new DriverError(DriverErrorCode.Mount, mount, { cause: err });
        throw new DriverError(
          DriverErrorCode.Spawn,
          `creating the container: ${engineMessage(err)}`,
          { cause: err },
        );
      }
    };

    let container: Docker.Container | null = null;
    try {
      // The engine creates a missing WorkingDir when it creates the container: so the workdir
      // and command are looked up in a container made without it, which is then replaced.
      // An image's files do not change: a lookup that passed once passes again, and the
      // container is made with its workdir at once (about eight engine calls fewer per task).
      const lookup = JSON.stringify([
        image.Id,
        spec.workdir,
        spec.command[0],
        spec.env["PATH"],
        spec.mounts ?? [], // a mount can hide or bring the command or the workdir
      ]);
      if (this.lookedUp.has(lookup)) {
        container = await create(spec.workdir !== "");
      } else {
        container = await create(false);
        await this.checkContainer(container, spec, image);
        this.lookedUp.add(lookup);
        if (spec.workdir !== "") {
          await container.remove({ force: true });
          container = null;
          container = await create(true);
        }
      }
      try {
        await container.start();
      } catch (err) {
        const msg = engineMessage(err);
        const exec = /exec: "[^"]*": [^:]*(?::[^:]*\$PATH)?/.exec(msg)?.[0];
        if (exec?.includes("not found") || exec?.includes("no such file")) {
          throw new DriverError(DriverErrorCode.CommandNotFound, exec, { cause: err });
        }
        if (exec?.includes("permission denied")) {
          throw new DriverError(DriverErrorCode.PermissionDenied, exec, { cause: err });
        }
        throw new DriverError(DriverErrorCode.Spawn, `starting the container: ${msg}`, {
          cause: err,
        });
      }
      let info = await container.inspect();
      let netns: string | undefined;
      if (overlay.length > 0) {
        netns = await this.wire(spec, info.State.Pid);
        // A container that ended before it could be wired has nothing to wire: its exit is
        // reported as the task's.
        if (netns === undefined) info = await container.inspect();
      }
      const h: DockerHandle = {
        driver: "docker",
        taskId: spec.taskId,
        // The engine reports no pid for a container that has already exited: then 0.
        pid: info.State.Pid,
        startedAt: Date.parse(info.State.StartedAt) || Date.now(),
        containerId: container.id,
        containerStartedAt: info.State.StartedAt,
        taskDir: spec.taskDir,
        logMaxBytes: spec.logMaxBytes,
        stopSignal,
        ...(netns !== undefined ? { netns, address: cidrHost(overlay[0]!.addr) } : {}),
      };
      this.track(h, outFd, errFd, 0);
      return h;
    } catch (err) {
      closeSync(outFd);
      closeSync(errFd);
      if (container !== null) await container.remove({ force: true }).catch(() => {});
      throw err;
    }
  }

  /** Refuses a task on shoal's networks where containers cannot join them. */
  private checkOverlay(): void {
    if (this.opts.overlays === null) {
      throw new DriverError(
        DriverErrorCode.NetworkUnsupported,
        "this node cannot join overlay networks (see the daemon's log for why)",
      );
    }
    if (!this.address.startsWith("unix://")) {
      throw new DriverError(
        DriverErrorCode.NetworkUnsupported,
        `containers join shoal's networks only on a local engine: the engine at ${this.address} ` +
          `is remote (its containers' network namespaces are not on this machine)`,
      );
    }
  }

  /**
   * Names the network namespace of the container whose init is `pid` and wires it into the
   * task's networks. Returns the name, or undefined when the container ended before (pid 0, or
   * gone while being named). Undoes what it made when a step fails.
   */
  private async wire(spec: RunSpec, pid: number): Promise<string | undefined> {
    const ns = nsName(spec.taskId);
    // A name an earlier, interrupted start of the task left would be taken. (Without the name,
    // what that start wired went with its container's namespace, or attach replaces it.)
    if (existsSync(join(NETNS_DIR, ns))) await this.release(ns);
    if (pid <= 0) return undefined;
    // The container was made and started while the node built its networks.
    await spec.overlayReady;
    try {
      await ipRun(this.opts.ipPath, ["netns", "attach", ns, String(pid)]);
    } catch (err) {
      if (!existsSync(`/proc/${pid}`)) return undefined;
      throw new DriverError(
        DriverErrorCode.Network,
        `naming the container's network namespace: ${(err as Error).message}`,
        { cause: err },
      );
    }
    try {
      await this.opts.overlays!.attach(ns, spec.overlay!);
    } catch (err) {
      await this.release(ns);
      throw new DriverError(
        DriverErrorCode.Network,
        `setting up the task's networks: ${(err as Error).message}`,
        { cause: err },
      );
    }
    return ns;
  }

  /** Removes a container's wiring and the name of its network namespace (which the name alone
   * would keep alive). Safe to call again, and for a name that is not there. */
  private async release(ns: string): Promise<void> {
    await this.opts.overlays?.detach(ns).catch(() => {});
    // Of a name made by `ip netns attach`, `ip netns delete` removes only the name.
    if (existsSync(join(NETNS_DIR, ns))) await ipQuiet(this.opts.ipPath, ["netns", "delete", ns]);
  }

  /**
   * Watches a container: follows its output into the log files (from `since`, seconds since the
   * epoch; 0 = from its start), caps them, and learns its exit status.
   */
  private track(h: DockerHandle, outFd: number, errFd: number, since: number): Run {
    const c = this.docker.getContainer(h.containerId);
    const logsDone = (async () => {
      try {
        const stream = (await c.logs({
          follow: true,
          stdout: true,
          stderr: true,
          ...(since > 0 ? { since } : {}),
        })) as unknown as Readable;
        await pumpLogs(stream, outFd, errFd);
      } catch {
        // No logs (the container is gone): the status still comes from wait.
      } finally {
        closeSync(outFd);
        closeSync(errFd);
      }
    })();
    const run: Run = { h, exited: Promise.resolve(null as never), status: null, logTimer: null };
    run.exited = (async () => {
      let status: ExitStatus;
      try {
        const res = (await c.wait({ condition: "not-running" })) as {
          StatusCode: number;
          Error?: { Message?: string } | null;
        };
        status = res.Error?.Message
          ? { exitCode: null, signal: null, error: res.Error.Message }
          : exitStatusOf(res.StatusCode);
      } catch (err) {
        status = { exitCode: null, signal: null, error: engineMessage(err) };
      }
      // The name holds the ended container's namespace (and its veths): both go now.
      if (h.netns !== undefined) await this.release(h.netns);
      await settlesWithin(logsDone, this.opts.logDrainMs);
      if (run.logTimer) clearInterval(run.logTimer);
      run.logTimer = null;
      capTaskLogs(h.taskDir, h.logMaxBytes);
      run.status = status;
      return status;
    })();
    run.logTimer = capLogsEvery(h.taskDir, h.logMaxBytes, this.opts.logCheckIntervalMs);
    this.runs.set(h.containerId, run);
    return run;
  }

  /** Opens the log files and watches an adopted container, streaming from now on. */
  private adopt(h: DockerHandle): Run {
    let outFd = -1;
    let errFd = -1;
    try {
      mkdirSync(h.taskDir, { recursive: true });
      outFd = openSync(logPath(h.taskDir, "stdout"), "a");
      errFd = openSync(logPath(h.taskDir, "stderr"), "a");
    } catch {
      if (outFd >= 0) closeSync(outFd);
      outFd = openSync("/dev/null", "a");
      if (errFd < 0) errFd = openSync("/dev/null", "a");
    }
    return this.track(h, outFd, errFd, Math.floor(Date.now() / 1000));
  }

  private runFor(h: Handle): Run | null {
    const dh = asDockerHandle(h);
    if (dh === null) return null;
    return this.runs.get(dh.containerId) ?? this.adopt(dh);
  }

  wait(h: Handle): Promise<ExitStatus> {
    const run = this.runFor(h);
    if (run === null) {
      return Promise.resolve({ exitCode: null, signal: null, error: "invalid task handle" });
    }
    return run.exited;
  }

  private async kill(h: DockerHandle, signal: string): Promise<void> {
    try {
      await this.docker.getContainer(h.containerId).kill({ signal });
    } catch (err) {
      // 409: not running (any more); 404: gone. Either way there is nothing to signal.
      const code = statusOf(err);
      if (code !== 409 && code !== 404) throw err;
    }
  }

  /**
   * Runs a command inside the task's container (`docker exec`): the container's own environment
   * and working directory, so `req.env` and `req.workdir` are not used. At the timeout the result
   * is a failure; the engine cannot kill an exec, so (as with Docker's own health checks) the
   * command is left to end on its own.
   */
  async exec(h: Handle, req: ExecRequest): Promise<ExecResult> {
    const dh = asDockerHandle(h);
    if (dh === null) return { exitCode: -1, output: "invalid task handle", timedOut: false };
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<ExecResult>((r) => {
      timer = setTimeout(() => r({ exitCode: -1, output: "", timedOut: true }), req.timeoutMs);
    });
    const run = (async (): Promise<ExecResult> => {
      try {
        const ex = await this.docker.getContainer(dh.containerId).exec({
          Cmd: req.argv,
          AttachStdout: true,
          AttachStderr: true,
        });
        const stream = (await ex.start({ hijack: true, stdin: false })) as unknown as Readable;
        const output = await collectFrames(stream);
        const info = await ex.inspect();
        return { exitCode: info.ExitCode ?? -1, output, timedOut: false };
      } catch (err) {
        return { exitCode: -1, output: engineMessage(err), timedOut: false };
      }
    })();
    try {
      return await Promise.race([run, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  async stop(h: Handle, timeoutMs: number, signal?: string): Promise<void> {
    const run = this.runFor(h);
    if (run === null || run.status !== null) return;
    const sig = normalizeSignal(signal ?? run.h.stopSignal);
    await this.kill(run.h, sig);
    if (await settlesWithin(run.exited, Math.max(0, timeoutMs))) return;
    await this.kill(run.h, "SIGKILL");
    await run.exited;
  }

  async destroy(h: Handle): Promise<void> {
    const dh = asDockerHandle(h);
    if (dh === null) return;
    const run = this.runs.get(dh.containerId);
    if (run) {
      if (run.status === null) {
        await this.kill(dh, "SIGKILL").catch(() => {});
        await run.exited;
      }
      this.runs.delete(dh.containerId);
    }
    try {
      await this.docker.getContainer(dh.containerId).remove({ force: true });
    } catch (err) {
      const code = statusOf(err);
      // 404: already gone; 409: removal already in progress.
      if (code !== 404 && code !== 409) throw err;
    }
    if (dh.netns !== undefined) await this.release(dh.netns);
    capTaskLogs(dh.taskDir, dh.logMaxBytes);
  }

  async inspect(h: Handle): Promise<TaskStats> {
    const dh = asDockerHandle(h);
    if (dh === null) return { running: false, pid: h.pid };
    const run = this.runs.get(dh.containerId);
    if (run && run.status !== null) return { running: false, pid: dh.pid };
    try {
      const info = await this.docker.getContainer(dh.containerId).inspect();
      const running = info.State.Running && info.State.StartedAt === dh.containerStartedAt;
      return { running, pid: info.State.Pid || dh.pid };
    } catch {
      return { running: false, pid: dh.pid };
    }
  }

  /** The engine's memory (what it reports as the limit of a container without one). */
  private engineMemory: Promise<number> | null = null;

  /**
   * What the container uses, from the Engine's stats API in one-shot mode (one answer, no wait
   * for a second sample): it works for an engine on another machine too, where the container's
   * cgroup files are out of reach.
   */
  async usage(h: Handle): Promise<TaskUsage | null> {
    const dh = asDockerHandle(h);
    if (dh === null) return null;
    const run = this.runs.get(dh.containerId);
    if (run && run.status !== null) return null;
    this.engineMemory ??= this.docker.info().then(
      (i: { MemTotal?: number }) => i.MemTotal ?? Number.MAX_SAFE_INTEGER,
      () => Number.MAX_SAFE_INTEGER,
    );
    try {
      const stats = await this.docker
        .getContainer(dh.containerId)
        .stats({ stream: false, "one-shot": true });
      return engineStatsUsage(stats as EngineStats, await this.engineMemory);
    } catch {
      return null;
    }
  }

  async recover(h: Handle): Promise<Handle | null> {
    const dh = asDockerHandle(h);
    if (dh === null) return null;
    const known = this.runs.get(dh.containerId);
    if (known) return known.status === null ? known.h : null;
    let info: Docker.ContainerInspectInfo;
    try {
      info = await this.docker.getContainer(dh.containerId).inspect();
    } catch (err) {
      // Gone: so is its namespace. (An engine that does not answer says nothing of it.)
      if (statusOf(err) === 404 && dh.netns !== undefined) await this.release(dh.netns);
      return null;
    }
    if (!info.State.Running || info.State.StartedAt !== dh.containerStartedAt) {
      if (dh.netns !== undefined) await this.release(dh.netns);
      // It ended (or was restarted behind our back) while no agent watched it: not our task.
      if (!info.State.Running) {
        await this.docker
          .getContainer(dh.containerId)
          .remove({ force: true })
          .catch(() => {});
      }
      return null;
    }
    const adopted: DockerHandle = { ...dh, pid: info.State.Pid };
    // Log streaming resumes from now on: what the task printed while no agent was there is only
    // in the engine's own log of the container.
    this.adopt(adopted);
    return adopted;
  }
  /** Removes the task's containers (by its label) that an interrupted start left, running or
   * not: a leftover would also hold the name the next start of the task needs. */
  async reap(intent: StartIntent): Promise<number> {
    const list = await this.docker.listContainers({
      all: true,
      filters: { label: [`${DockerLabels.task}=${intent.taskId}`] },
    });
    // One this very driver started is no leftover.
    const left = list.filter((c) => !this.runs.has(c.Id));
    for (const c of left) await this.docker.getContainer(c.Id).remove({ force: true });
    // The name an interrupted start gave the container's namespace (unless the task runs here).
    const mine = [...this.runs.values()].some((r) => r.h.taskId === intent.taskId);
    if (!mine) await this.release(nsName(intent.taskId));
    return left.length;
  }
}

/** The handle as a docker handle, or null when another driver made it. */
function asDockerHandle(h: Handle): DockerHandle | null {
  return isDockerHandle(h) ? h : null;
}

/** Whether a handle came from the docker driver. */
export function isDockerHandle(h: Handle): h is DockerHandle {
  return (
    h["driver"] === "docker" &&
    typeof h["containerId"] === "string" &&
    typeof h["containerStartedAt"] === "string" &&
    (h["netns"] === undefined ||
      (typeof h["netns"] === "string" && h["netns"].startsWith("shoal-"))) &&
    isAbsolute(String(h["taskDir"] ?? ""))
  );
}
