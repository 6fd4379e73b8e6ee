// A shoal daemon for the benchmarks that need one (orchestrator, cli): `shoal daemon` on a fresh
// temporary data dir, with a random NATS port and a join listener on a free loopback port, so it
// collides with no other daemon on the machine; its API is the unix socket in the data dir. stop()
// ends the daemon and whatever task processes it left, and removes the data dir. It runs in the
// root namespace, or in a host of a test bed (then what it sets up for overlay networks — links,
// iptables chains, named task namespaces — stays inside that host's namespace).

import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { socketPath } from "../src/api/paths.js";
import { defaultUpdateConfig, type ServiceSpec } from "../src/api/types.js";
import type { Host } from "../test/cluster/netns.js";
import { track, waitExit } from "./procs.js";
import { freePort } from "./servers.js";

const ROOT = resolve(import.meta.dirname ?? new URL(".", import.meta.url).pathname, "../..");
/** The CLI the benchmarks run: whatever bin/shoal.js is in this checkout. */
export const SHOAL_BIN = join(ROOT, "bin/shoal.js");

export interface ShoalDaemon {
  dataDir: string;
  /** The API socket (the CLI finds it through SHOAL_DATA_DIR=dataDir). */
  sock: string;
  /** One call of the daemon's API, JSON in and out; a status ≥ 400 rejects with the body. */
  api<T>(method: string, path: string, body?: unknown): Promise<T>;
  /** The daemon's output so far. */
  log(): string;
  stop(): Promise<void>;
}

function call<T>(sock: string, method: string, path: string, body?: unknown): Promise<T> {
  return new Promise((res, rej) => {
    const req = request(
      { socketPath: sock, method, path, headers: { "Content-Type": "application/json" } },
      (r) => {
        let text = "";
        r.on("data", (c: Buffer) => (text += c.toString()));
        r.on("end", () => {
          if ((r.statusCode ?? 500) >= 400) rej(new Error(`${method} ${path}: ${text}`));
          else res((text === "" ? null : JSON.parse(text)) as T);
        });
      },
    );
    req.on("error", rej);
    if (body !== undefined) req.write(JSON.stringify(body));
    req.end();
  });
}

/** Kills the process groups of the tasks a daemon left in its data dir. */
function killLeftovers(dataDir: string): void {
  const tasksDir = join(dataDir, "agent", "tasks");
  if (!existsSync(tasksDir)) return;
  for (const id of readdirSync(tasksDir)) {
    try {
      const h = JSON.parse(readFileSync(join(tasksDir, id, "handle.json"), "utf8")) as {
        handle: { driver?: string; pid: number };
      };
      // A docker task's pid is the engine's; the engine's owner removes those.
      if (h.handle.driver !== "docker") process.kill(-h.handle.pid, "SIGKILL");
    } catch {
      // gone already
    }
  }
}

/**
 * Starts `shoal daemon` and waits until it says it is ready. env is added to the daemon's
 * environment (e.g. DOCKER_HOST for its docker driver); with `host`, the daemon runs inside that
 * test-bed host's network namespace (its API socket is still reached from here).
 */
export async function startShoalDaemon(
  env: Record<string, string> = {},
  host?: Pick<Host, "spawn">,
): Promise<ShoalDaemon> {
  const dataDir = mkdtempSync(join(tmpdir(), "shoal-bench-"));
  const sock = socketPath(dataDir);
  let out = "";
  let proc: ChildProcess | null = null;
  const stop = async (): Promise<void> => {
    if (proc && proc.exitCode === null && proc.signalCode === null) {
      proc.kill("SIGTERM");
      await waitExit(proc, 5000);
      proc.kill("SIGKILL");
      await waitExit(proc, 5000);
    }
    killLeftovers(dataDir);
    rmSync(dataDir, { recursive: true, force: true });
  };
  try {
    const port = await freePort();
    const args = [
      SHOAL_BIN,
      "daemon",
      "--data-dir",
      dataDir,
      "--nats-port",
      "-1",
      "--listen-addr",
      `127.0.0.1:${port}`,
      // Several daemons may run at once: none binds the Consul defaults.
      "--consul-addr",
      "",
      "--consul-dns-addr",
      "",
      "--http-addr",
      "",
    ];
    const ours = { SHOAL_DATA_DIR: dataDir, SHOAL_HOST: "", ...env };
    const stdio: ["ignore", "pipe", "pipe"] = ["ignore", "pipe", "pipe"];
    // host.spawn adds process.env; `ip netns exec` execs the command, so the child's pid is the
    // daemon's either way.
    proc = track(
      host
        ? host.spawn(process.execPath, args, { stdio, env: ours })
        : spawn(process.execPath, args, { stdio, env: { ...process.env, ...ours } }),
    );
    const p = proc;
    p.stdout!.on("data", (d: Buffer) => (out += d.toString()));
    p.stderr!.on("data", (d: Buffer) => (out += d.toString()));
    const deadline = Date.now() + 30_000;
    while (!/shoal daemon .*ready/.test(out)) {
      if (p.exitCode !== null || p.signalCode !== null || Date.now() > deadline) {
        const tail = out.trimEnd().split("\n").slice(-8).join("\n");
        throw new Error(`shoal daemon did not become ready:\n${tail}`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    dataDir,
    sock,
    api: (method, path, body) => call(sock, method, path, body),
    log: () => out,
    stop,
  };
}

/** A replicated service spec with every field given (the API's defaults spelled out). */
export function serviceSpec(over: Partial<ServiceSpec> & Pick<ServiceSpec, "name">): ServiceSpec {
  return {
    driver: "process",
    image: "",
    command: ["sleep", "100000"],
    env: {},
    workdir: "",
    labels: {},
    mode: { replicated: { replicas: 1 } },
    ports: [],
    restartPolicy: { condition: "any", delayMs: 0, maxAttempts: 0, windowMs: 0 },
    limits: { cpus: 0, memoryBytes: 0 },
    reservations: { cpus: 0, memoryBytes: 0 },
    constraints: [],
    stopGracePeriodMs: 10_000,
    stopSignal: "SIGTERM",
    update: defaultUpdateConfig(),
    ...over,
  };
}
