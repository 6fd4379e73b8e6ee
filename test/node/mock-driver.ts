// An in-memory driver for tests: it "runs" a few scripted programs (`mock exit 3`, `mock sleep`,
// ...) against a fake process table (MockKernel) instead of the OS. Log files are real files in
// the task directory, capped with the same code the process driver uses. Several MockDriver
// instances sharing one kernel behave like successive agents on one machine: a new instance can
// recover() a task a previous one started. It passes the same conformance suite as the real
// drivers, so agent tests can use it to script task behaviour precisely.
//
// Programs (argv):
//   mock exit N          exit with status N
//   mock sleep           print "ready", run until a signal ends it
//   mock ignore-term     print "ready", ignore SIGTERM (only SIGKILL or another signal ends it)
//   mock env             print the environment as KEY=VALUE lines, exit 0
//   mock pwd             print the working directory, exit 0
//   mock spew N [stay]   print N numbered lines and "err" on stderr; exit 0 unless "stay"

import { appendFileSync, mkdirSync, statSync } from "node:fs";
import { resolve } from "node:path";
import {
  DriverError,
  DriverErrorCode,
  normalizeSignal,
  type Driver,
  type ExitStatus,
  type Handle,
  type RunSpec,
  type TaskStats,
} from "../../src/node/drivers/driver.js";
import { capTaskLogs, logPath } from "../../src/node/drivers/logs.js";

export interface MockProc {
  pid: number;
  /** Stands in for the process start time: a recovered handle must match it. */
  epoch: number;
  taskId: string;
  taskDir: string;
  argv: string[];
  env: Record<string, string>;
  workdir: string;
  ignored: Set<string>;
  status: ExitStatus | null;
  exited: Promise<ExitStatus>;
  settle: (s: ExitStatus) => void;
  /** Keeps the event loop alive while the fake process "runs", as a real child would. */
  keepAlive: NodeJS.Timeout | null;
  logMaxBytes: number;
  logTimer: NodeJS.Timeout | null;
}

/** The fake process table shared by the MockDriver instances of one "machine". */
export class MockKernel {
  readonly procs = new Map<number, MockProc>();
  private nextPid = 40_000;
  private nextEpoch = 1;

  spawn(
    spec: Pick<RunSpec, "taskId" | "taskDir" | "command" | "env" | "logMaxBytes">,
    workdir: string,
  ): MockProc {
    let settle!: (s: ExitStatus) => void;
    const p: MockProc = {
      pid: this.nextPid++,
      epoch: this.nextEpoch++,
      taskId: spec.taskId,
      taskDir: spec.taskDir,
      argv: spec.command,
      env: { ...spec.env },
      workdir,
      ignored: new Set(),
      status: null,
      exited: new Promise<ExitStatus>((r) => (settle = r)),
      settle,
      keepAlive: setInterval(() => {}, 1 << 30),
      logMaxBytes: spec.logMaxBytes,
      logTimer: null,
    };
    this.procs.set(p.pid, p);
    return p;
  }

  /** Ends a fake process, the way the kernel would on exit or a fatal signal. */
  exit(p: MockProc, status: ExitStatus): void {
    if (p.status !== null) return;
    p.status = status;
    if (p.keepAlive) clearInterval(p.keepAlive);
    if (p.logTimer) clearInterval(p.logTimer);
    p.keepAlive = null;
    p.logTimer = null;
    capTaskLogs(p.taskDir, p.logMaxBytes);
    p.settle(status);
  }

  /** Delivers a signal: ignored ones do nothing, any other ends the process (asynchronously). */
  kill(pid: number, sig: string): void {
    const p = this.procs.get(pid);
    if (!p || p.status !== null) return;
    const name = normalizeSignal(sig);
    if (name !== "SIGKILL" && p.ignored.has(name)) return;
    setImmediate(() => this.exit(p, { exitCode: null, signal: name, error: null }));
  }

  alive(pid: number, epoch: unknown): MockProc | null {
    const p = this.procs.get(pid);
    return p && p.status === null && p.epoch === epoch ? p : null;
  }
}

/** The kernel used when none is given. */
export const defaultKernel = new MockKernel();

interface MockHandle extends Handle {
  driver: "mock";
  epoch: number;
  stopSignal: string;
}

export class MockDriver implements Driver {
  readonly name = "mock";

  constructor(
    readonly kernel: MockKernel = defaultKernel,
    readonly opts: { logCheckIntervalMs: number } = { logCheckIntervalMs: 50 },
  ) {}

  async start(spec: RunSpec): Promise<Handle> {
    const stopSignal = normalizeSignal(spec.stopSignal || "SIGTERM");
    if (spec.command.length === 0) {
      throw new DriverError(DriverErrorCode.NoCommand, "no command specified");
    }
    if (spec.limits.cpus > 0 || spec.limits.memoryBytes > 0) {
      throw new DriverError(
        DriverErrorCode.LimitsUnsupported,
        "cannot enforce resource limits: the mock driver has none",
      );
    }
    if (spec.network === "bridge") {
      throw new DriverError(
        DriverErrorCode.NetworkUnsupported,
        "bridge networking is not supported by the mock driver",
      );
    }
    mkdirSync(spec.taskDir, { recursive: true });
    const workdir = spec.workdir === "" ? spec.taskDir : resolve(spec.taskDir, spec.workdir);
    let isDir = false;
    try {
      isDir = statSync(workdir).isDirectory();
    } catch {
      // reported below
    }
    if (!isDir) {
      throw new DriverError(
        DriverErrorCode.BadWorkdir,
        `chdir to cwd (${JSON.stringify(workdir)}) failed: no such file or directory`,
      );
    }
    if (spec.command[0] !== "mock") {
      throw new DriverError(
        DriverErrorCode.CommandNotFound,
        `exec: ${JSON.stringify(spec.command[0])}: executable file not found in $PATH`,
      );
    }
    appendFileSync(logPath(spec.taskDir, "stdout"), "");
    appendFileSync(logPath(spec.taskDir, "stderr"), "");
    const p = this.kernel.spawn(spec, workdir);
    if (spec.logMaxBytes > 0) {
      p.logTimer = setInterval(
        () => capTaskLogs(p.taskDir, p.logMaxBytes),
        this.opts.logCheckIntervalMs,
      );
    }
    this.run(p);
    const h: MockHandle = {
      driver: "mock",
      taskId: spec.taskId,
      pid: p.pid,
      startedAt: Date.now(),
      epoch: p.epoch,
      stopSignal,
    };
    return h;
  }

  /** Plays the program. */
  private run(p: MockProc): void {
    const out = (s: string): void => appendFileSync(logPath(p.taskDir, "stdout"), s);
    const err = (s: string): void => appendFileSync(logPath(p.taskDir, "stderr"), s);
    const [, verb = "", arg = ""] = p.argv;
    const exit = (code: number): void => {
      setImmediate(() => this.kernel.exit(p, { exitCode: code, signal: null, error: null }));
    };
    switch (verb) {
      case "exit":
        exit(Number(arg));
        break;
      case "sleep":
        out("ready\n");
        break;
      case "ignore-term":
        p.ignored.add("SIGTERM");
        out("ready\n");
        break;
      case "env":
        out(
          Object.entries(p.env)
            .map(([k, v]) => `${k}=${v}\n`)
            .join(""),
        );
        exit(0);
        break;
      case "pwd":
        out(`${p.workdir}\n`);
        exit(0);
        break;
      case "spew": {
        const n = Number(arg);
        for (let i = 0; i < n; i++) out(spewLine(i));
        err("err\n");
        if (p.argv[3] !== "stay") exit(0);
        break;
      }
      default:
        err(`mock: unknown program ${verb}\n`);
        exit(127);
    }
  }

  private proc(h: Handle): MockProc | null {
    const p = this.kernel.procs.get(h.pid);
    return p && p.epoch === h["epoch"] ? p : null;
  }

  wait(h: Handle): Promise<ExitStatus> {
    const p = this.proc(h);
    if (p === null) {
      return Promise.resolve({
        exitCode: null,
        signal: null,
        error: "task process exited while the agent was down",
      });
    }
    return p.exited;
  }

  async stop(h: Handle, timeoutMs: number, signal?: string): Promise<void> {
    const p = this.proc(h);
    if (p === null || p.status !== null) return;
    this.kernel.kill(p.pid, normalizeSignal(signal ?? String(h["stopSignal"] ?? "SIGTERM")));
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      p.exited.then(() => false),
      new Promise<boolean>((r) => (timer = setTimeout(() => r(true), timeoutMs))),
    ]);
    clearTimeout(timer);
    if (timedOut) this.kernel.kill(p.pid, "SIGKILL");
    await p.exited;
  }

  async destroy(h: Handle): Promise<void> {
    const p = this.proc(h);
    if (p === null) return;
    if (p.status === null) {
      this.kernel.kill(p.pid, "SIGKILL");
      await p.exited;
    }
  }

  async inspect(h: Handle): Promise<TaskStats> {
    const p = this.proc(h);
    return { running: p !== null && p.status === null, pid: h.pid };
  }

  async recover(h: Handle): Promise<Handle | null> {
    return this.kernel.alive(h.pid, h["epoch"]) ? h : null;
  }
}

/** The line `mock spew` and the process driver's spew program print for index i (100 bytes). */
export function spewLine(i: number): string {
  return `line ${String(i).padStart(6, "0")} ${"x".repeat(88)}\n`;
}
