// Helpers for the store tests: temporary store directories that are always removed, small
// node/service/task values, and a child process running the writer fixture (fixtures/writer.ts)
// whose output lines the test can wait for.

import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import type { TestContext } from "node:test";
import {
  defaultServiceSpec,
  type Network,
  type Node,
  type Service,
  type Task,
} from "../../src/api/types.js";

const here = dirname(fileURLToPath(import.meta.url));
export const WRITER = join(here, "fixtures", "writer.js");

/** A fresh directory under the OS temp dir, removed when the test ends. */
export function tmpStoreDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), "shoal-store-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Collects warnings instead of printing them. */
export function warnings(): { list: string[]; onWarning: (msg: string) => void } {
  const list: string[] = [];
  return { list, onWarning: (msg) => list.push(msg) };
}

export function node(id: string, over: Partial<Node> = {}): Node {
  return {
    id,
    hostname: `host-${id}`,
    role: "worker",
    availability: "active",
    status: "ready",
    addr: "10.0.0.1",
    labels: {},
    resources: { nanoCpus: 2, memoryBytes: 1 << 30 },
    engineVersion: "test",
    lastSeen: 1,
    createdAt: 1,
    updatedAt: 1,
    ...over,
  };
}

export function service(id: string, name: string, over: Partial<Service> = {}): Service {
  return {
    id,
    spec: defaultServiceSpec(name),
    version: 1,
    previousSpec: null,
    createdAt: 1,
    updatedAt: 1,
    ...over,
  };
}

export function task(id: string, serviceId: string, nodeId = "", over: Partial<Task> = {}): Task {
  return {
    id,
    serviceId,
    serviceName: `svc-${serviceId}`,
    slot: 1,
    nodeId,
    specVersion: 1,
    spec: defaultServiceSpec(`svc-${serviceId}`),
    desiredState: "running",
    status: {
      state: "new",
      timestamp: 1,
      message: "created",
      err: "",
      exitCode: null,
      pid: null,
      containerId: null,
    },
    hostPorts: {},
    notBefore: 0,
    createdAt: 1,
    updatedAt: 1,
    ...over,
  };
}

export function ids(list: Array<{ id: string }>): string[] {
  return list.map((x) => x.id).sort();
}

/** A child process running the writer fixture, with its stdout as lines. */
export class Writer {
  readonly child: ChildProcess;
  readonly lines: string[] = [];
  stderr = "";
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private waiters: Array<() => void> = [];

  constructor(args: string[]) {
    this.child = spawn(process.execPath, [WRITER, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    this.child.stderr!.on("data", (d: Buffer) => (this.stderr += d.toString()));
    createInterface({ input: this.child.stdout! }).on("line", (line) => {
      this.lines.push(line);
      for (const w of this.waiters.splice(0)) w();
    });
    // Resolves once the process is gone and its stdout has been read to the end.
    this.exited = new Promise((resolve) => {
      this.child.on("close", (code, signal) => {
        for (const w of this.waiters.splice(0)) w();
        resolve({ code, signal });
      });
    });
  }

  /** Waits until `pred` holds over the lines so far; fails if the child exits first. */
  async waitFor(pred: (lines: string[]) => boolean, ms = 20_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!pred(this.lines)) {
      if (this.child.exitCode !== null || this.child.signalCode !== null) {
        throw new Error(
          `writer exited (${this.child.exitCode ?? this.child.signalCode}): ${this.stderr}`,
        );
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for the writer; stderr: ${this.stderr}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  kill9(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    this.child.kill("SIGKILL");
    return this.exited;
  }
}

export function network(id: string, name: string, over: Partial<Network> = {}): Network {
  return {
    id,
    name,
    driver: "overlay",
    subnet: "10.0.1.0/24",
    gateway: "10.0.1.1",
    vni: 4096,
    internal: false,
    attachable: false,
    labels: {},
    nodeAddrs: {},
    createdAt: 1,
    updatedAt: 1,
    ...over,
  };
}
