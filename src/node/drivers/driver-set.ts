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
  type RunSpec,
  type StartIntent,
  type TaskStats,
  reaps,
} from "./driver.js";

export class DriverSet implements Driver, Reaper {
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

  /** The intent's driver reaps (a driver without the ability leaves nothing to reap). */
  async reap(intent: StartIntent): Promise<number> {
    const d = this.drivers[intent.driver];
    return d && reaps(d) ? d.reap(intent) : 0;
  }
}
