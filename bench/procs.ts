// Process bookkeeping for the benchmarks. Every process a bench starts (a server under test, a
// forked load generator) is registered here, so a scenario can kill all of its processes when it
// ends — normally or by an error — and the bench kills whatever is left on exit or Ctrl-C.
// Processes are only ever signalled through their own ChildProcess handle (that is, by pid).
import { fork, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";

const live = new Set<ChildProcess>();

/** Registers a child so that killAll() and the exit hooks can reach it. */
export function track<T extends ChildProcess>(child: T): T {
  live.add(child);
  child.once("exit", () => live.delete(child));
  return child;
}

function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

/** Waits until the child has exited, or until timeoutMs has passed. */
export function waitExit(child: ChildProcess, timeoutMs: number): Promise<void> {
  if (exited(child)) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, timeoutMs);
    child.once("exit", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** SIGKILLs every tracked process and waits (bounded) until they are gone. */
export async function killAll(): Promise<void> {
  const children = [...live];
  for (const child of children) if (!exited(child)) child.kill("SIGKILL");
  await Promise.all(children.map((c) => waitExit(c, 5000)));
}

let hooked = false;

/** Makes sure nothing the bench started outlives it, whatever way it ends. */
export function installExitHooks(): void {
  if (hooked) return;
  hooked = true;
  process.on("exit", () => {
    for (const child of live) if (!exited(child)) child.kill("SIGKILL");
  });
  for (const [signal, code] of [
    ["SIGINT", 130],
    ["SIGTERM", 143],
  ] as const) {
    process.on(signal, () => {
      process.stderr.write(`\nbench: ${signal}, stopping all bench processes\n`);
      process.exit(code);
    });
  }
}

/** A message a worker sends back: a `type` tag plus whatever fields that type carries. */
export interface WorkerReport {
  type: string;
  [key: string]: unknown;
}

/**
 * A forked bench worker (a compiled bench file that talks over the IPC channel). Reports it sends
 * are queued until someone waits for them; an `error` report, the worker's exit or a timeout
 * fails the wait.
 */
export class Worker {
  readonly child: ChildProcess;
  private readonly queue: WorkerReport[] = [];
  private waiter: ((r: WorkerReport | Error) => void) | null = null;
  private failure: Error | null = null;

  constructor(
    file: URL,
    readonly name: string,
  ) {
    this.child = track(
      fork(fileURLToPath(file), [], { stdio: ["ignore", "inherit", "inherit", "ipc"] }),
    );
    this.child.on("message", (msg: WorkerReport) => this.deliver(msg));
    this.child.once("exit", (code, signal) => {
      this.fail(new Error(`${this.name} exited (${signal ?? `code ${code}`})`));
    });
    this.child.on("error", (err) => this.fail(err));
  }

  private deliver(msg: WorkerReport): void {
    if (msg.type === "error") {
      this.fail(new Error(`${this.name}: ${String(msg.message)}`));
      return;
    }
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = null;
      w(msg);
    } else this.queue.push(msg);
  }

  private fail(err: Error): void {
    this.failure ??= err;
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = null;
      w(this.failure);
    }
  }

  send(msg: object): void {
    if (this.child.connected) this.child.send(msg);
  }

  /** Resolves with the next report, which must have the given type. */
  next<T extends { type: string }>(type: string, timeoutMs: number): Promise<T> {
    const check = (r: WorkerReport): T => {
      if (r.type !== type) throw new Error(`${this.name}: expected "${type}", got "${r.type}"`);
      return r as unknown as T;
    };
    const queued = this.queue.shift();
    if (queued) return Promise.resolve(check(queued));
    if (this.failure) return Promise.reject(this.failure);
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = null;
        reject(new Error(`${this.name}: no "${type}" within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiter = (r) => {
        clearTimeout(timer);
        if (r instanceof Error) reject(r);
        else {
          try {
            resolve(check(r));
          } catch (err) {
            reject(err);
          }
        }
      };
    });
  }
}
