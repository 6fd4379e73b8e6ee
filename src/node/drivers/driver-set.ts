// Several drivers behind the one Driver interface the agent speaks: a task starts on the driver
// its spec names, and every later call goes to the driver that made its handle (a handle
// records its driver's name), so an agent runs process and docker tasks side by side and
// adopts both after a restart.

import {
  DriverError,
  DriverErrorCode,
  type Driver,
  type ExitStatus,
  type Handle,
  type Reaper,
  type Executor,
  type ExecRequest,
  type ExecResult,
  type RunSpec,
  type StartIntent,
  type TaskStats,
  type UsageReader,
  reaps,
  execs,
  readsUsage,
} from "./driver.js";
import type { ProcSnapshot, TaskUsage } from "./usage.js";

export class DriverSet implements Driver, Reaper, Executor, UsageReader {
  readonly name = "set";

  constructor(private readonly drivers: Record<string, Driver>) {}

  private byName(name: string): Driver {
    const d = this.drivers[name];
    if (!d) {
      const known = Object.keys(this.drivers).join(", ");
      throw new DriverError(
        DriverErrorCode.DriverUnavailable,
        `the ${name} driver is not available on this node (it has: ${known})`,
      );
    }
    return d;
  }

  /** The driver that made a handle (handles without a name are the process driver's). */
  private of(h: Handle): Driver {
    return this.byName(typeof h["driver"] === "string" ? h["driver"] : "process");
  }

  start(spec: RunSpec): Promise<Handle> {
    try {
      return this.byName(spec.driver ?? "process").start(spec);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  wait(h: Handle): Promise<ExitStatus> {
    try {
      return this.of(h).wait(h);
    } catch (err) {
      return Promise.resolve({ exitCode: null, signal: null, error: (err as Error).message });
    }
  }

  async stop(h: Handle, timeoutMs: number, signal?: string): Promise<void> {
    return this.of(h).stop(h, timeoutMs, signal);
  }

  async destroy(h: Handle): Promise<void> {
    return this.of(h).destroy(h);
  }

  async inspect(h: Handle): Promise<TaskStats> {
    return this.of(h).inspect(h);
  }

  async recover(h: Handle): Promise<Handle | null> {
    return this.of(h).recover(h);
  }

  /** The handle's driver runs it; one without the ability gives a failed result. */
  async exec(h: Handle, req: ExecRequest): Promise<ExecResult> {
    let d: Driver;
    try {
      d = this.of(h);
    } catch (err) {
      return { exitCode: -1, output: (err as Error).message, timedOut: false };
    }
    if (!execs(d)) {
      return { exitCode: -1, output: `the ${d.name} driver cannot run commands`, timedOut: false };
    }
    return d.exec(h, req);
  }

  /** What the task uses, from the driver that runs it (null for a driver that cannot tell). */
  async usage(h: Handle, snap: ProcSnapshot): Promise<TaskUsage | null> {
    let d: Driver;
    try {
      d = this.of(h);
    } catch {
      return null;
    }
    return readsUsage(d) ? d.usage(h, snap) : null;
  }

  /** The intent's driver reaps (a driver without the ability leaves nothing to reap). */
  async reap(intent: StartIntent): Promise<number> {
    const d = this.drivers[intent.driver];
    return d && reaps(d) ? d.reap(intent) : 0;
  }
}
