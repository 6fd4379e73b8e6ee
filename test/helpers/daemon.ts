// Test helpers for the orchestrator: run a real `shoal daemon` in a temporary data dir with a
// random NATS port, drive it with the real CLI, and clean up (daemon, tasks, files) afterwards.

import { spawn, execFile, type ChildProcess } from "node:child_process";
import { chownSync, mkdtempSync, rmSync, readFileSync, existsSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { request } from "node:http";
import { SHOAL_BIN, checkFor } from "./servers.js";

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface TestDaemon {
  dataDir: string;
  proc: ChildProcess;
  /** Runs `shoal ARGS` against this daemon. */
  cli(...args: string[]): Promise<CliResult>;
  /** The daemon's log so far. */
  log(): string;
  /** kill -9 the daemon (tasks keep running). */
  kill9(): Promise<void>;
  /** Starts the daemon again on the same data dir. */
  restart(): Promise<void>;
  /** Stops the daemon and every task, removes the data dir. */
  cleanup(): Promise<void>;
  /** With `consul`: the Consul API's and DNS's ports on 127.0.0.1 (from the log). */
  consulPort?: number;
  consulDnsPort?: number;
  /** With `http`: the HTTP router's port on 127.0.0.1 (from the log). */
  httpPort?: number;
  /** With `metrics`: the port of its /metrics on 127.0.0.1 (from the log). */
  metricsPort?: number;
  /** With `dashboard` (an address to bind, e.g. 127.0.0.1:0): the dashboard's URL (from the log). */
  dashboardUrl?: string | undefined;
}

export function runCli(dataDir: string, args: string[], timeoutMs = 60_000): Promise<CliResult> {
  return runCliEnv({ SHOAL_DATA_DIR: dataDir, SHOAL_HOST: "" }, args, timeoutMs);
}

/** Runs `shoal ARGS` with `env` over this process's environment (SHOAL_HOST, SHOAL_TLS_VERIFY...). */
export function runCliEnv(
  env: NodeJS.ProcessEnv,
  args: string[],
  timeoutMs = 60_000,
): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [SHOAL_BIN, ...args],
      { env: { ...process.env, ...env }, timeout: timeoutMs },
      (err, stdout, stderr) => {
        const code = err
          ? typeof (err as { code?: unknown }).code === "number"
            ? (err as { code: number }).code
            : 1
          : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** Daemon flags for a daemon of a test: loopback, random ports, nothing on fixed ports. */
export const isolatedFlags = (dir: string): string[] => [
  "--data-dir",
  dir,
  "--nats-port",
  "-1",
  "--listen-addr",
  "127.0.0.1:0",
  "--advertise-addr",
  "127.0.0.1",
  "--publish-addr",
  "127.0.0.1",
  "--consul-addr",
  "",
  "--consul-dns-addr",
  "",
  "--http-addr",
  "",
  "--metrics-addr",
  "",
  "--dashboard-addr",
  "",
];

/**
 * A daemon on a fresh data dir; with `uid`, run as that user (it owns the data dir). The
 * Consul-compatible API and DNS are off unless `consul`, /metrics unless `metrics` (then on
 * 127.0.0.1, free ports): tests never bind the fixed defaults.
 */
export async function startDaemon(
  opts: {
    uid?: number;
    consul?: boolean;
    http?: boolean;
    metrics?: boolean;
    dashboard?: string;
    args?: string[];
    /** How long the daemon may take to be ready (default 15 s). */
    readyMs?: number;
    /** Added to the daemon's environment. */
    env?: Record<string, string>;
  } = {},
): Promise<TestDaemon> {
  const dataDir = mkdtempSync(join(tmpdir(), "shoal-test-"));
  const as = opts.uid === undefined ? {} : { uid: opts.uid, gid: opts.uid, env: { HOME: dataDir } };
  if (opts.uid !== undefined) chownSync(dataDir, opts.uid, opts.uid);
  let out = "";
  let proc: ChildProcess;
  const launch = async () => {
    proc = spawn(
      process.execPath,
      [
        SHOAL_BIN,
        "daemon",
        "--data-dir",
        dataDir,
        "--nats-port",
        "-1",
        "--listen-addr",
        "127.0.0.1:0",
        "--publish-addr",
        "127.0.0.1",
        "--consul-addr",
        opts.consul ? "127.0.0.1:0" : "",
        "--consul-dns-addr",
        opts.consul ? "127.0.0.1:0" : "",
        "--http-addr",
        opts.http ? "127.0.0.1:0" : "",
        "--metrics-addr",
        opts.metrics ? "127.0.0.1:0" : "",
        "--dashboard-addr",
        opts.dashboard ?? "",
        ...(opts.args ?? []),
      ],
      {
        stdio: ["ignore", "pipe", "pipe"],
        uid: as.uid,
        gid: as.gid,
        env: { ...process.env, ...as.env, ...opts.env, SHOAL_DATA_DIR: dataDir },
      },
    );
    proc.stdout!.on("data", (d: Buffer) => (out += d.toString()));
    proc.stderr!.on("data", (d: Buffer) => (out += d.toString()));
    await checkFor(opts.readyMs ?? 15_000, () => /shoal daemon .* ready/.test(out), 50);
    if (opts.consul) {
      d.consulPort = Number(/Consul API listening on http:\/\/[^ ]*:(\d+)/.exec(out)?.[1]);
      d.consulDnsPort = Number(/Consul DNS listening on [^ ]*:(\d+)/.exec(out)?.[1]);
    }
    if (opts.http) d.httpPort = Number(/HTTP router listening on [^ ]*:(\d+)/.exec(out)?.[1]);
    if (opts.metrics) {
      d.metricsPort = Number(/metrics: listening on http:\/\/[^ ]*:(\d+)\/metrics/.exec(out)?.[1]);
    }
    if (opts.dashboard) {
      d.dashboardUrl = /Dashboard listening on (http:\/\/\S+)/.exec(out)?.[1];
    }
  };
  const d: TestDaemon = {
    dataDir,
    get proc() {
      return proc;
    },
    cli: (...args) => runCli(dataDir, args),
    log: () => out,
    async kill9() {
      const exited = new Promise((r) => proc.once("exit", r));
      proc.kill("SIGKILL");
      await exited;
    },
    async restart() {
      out = "";
      await launch();
    },
    async cleanup() {
      if (proc.exitCode === null && proc.signalCode === null) {
        await runCli(dataDir, ["leave", "--force"], 30_000);
        await checkFor(30_000, () => proc.exitCode !== null || proc.signalCode !== null, 50).catch(
          () => proc.kill("SIGKILL"),
        );
      }
      killTaskProcesses(dataDir);
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
  await launch();
  return d;
}

/** Kills whatever task processes a (possibly killed) daemon left in its data dir. */
export function killTaskProcesses(dataDir: string): void {
  const tasksDir = join(dataDir, "agent", "tasks");
  if (!existsSync(tasksDir)) return;
  for (const pid of pidsUnder(tasksDir)) {
    try {
      process.kill(-pid, "SIGKILL");
    } catch {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // gone
      }
    }
  }
}

function pidsUnder(tasksDir: string): number[] {
  const out: number[] = [];
  for (const id of readdirSync(tasksDir)) {
    const f = join(tasksDir, id, "handle.json");
    if (!existsSync(f)) continue;
    try {
      const h = JSON.parse(readFileSync(f, "utf8")) as { handle?: { pid?: number } };
      if (h.handle?.pid) out.push(h.handle.pid);
    } catch {
      // a torn file: nothing to kill
    }
  }
  return out;
}

/** GET on the daemon API socket of a data dir, as JSON. */
export function apiAt<T>(dataDir: string, path: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: join(dataDir, "shoal.sock"), path }, (res) => {
      let body = "";
      res.on("data", (c: Buffer) => (body += c.toString()));
      res.on("end", () => resolve(JSON.parse(body) as T));
    });
    req.on("error", reject);
    req.end();
  });
}

/** Waits until the daemon API of a data dir stops answering (its daemon has exited). */
export async function waitApiGone(dataDir: string, ms: number): Promise<void> {
  await checkFor(ms, () =>
    apiAt(dataDir, "/v1/info").then(
      () => false,
      () => true,
    ),
  );
}

/** A tiny HTTP server for tasks: answers its slot number on $PORT. */
export const HTTP_TASK = [
  "node",
  "-e",
  "require('http').createServer((q,s)=>s.end(process.env.SHOAL_TASK_SLOT+' '+process.pid)).listen(+process.env.PORT,'127.0.0.1')",
];

export { checkFor };

/**
 * Waits until the daemon of `dataDir` has finished `passes` more reconcile passes (and, with
 * `heartbeats`, received that many more heartbeats) than when called, running `check` on every
 * poll: how a test shows that something does not happen, without sleeping.
 */
export async function watchCounters(
  dataDir: string,
  want: { passes?: number; heartbeats?: number },
  check: () => Promise<void> | void = () => {},
): Promise<void> {
  type Counters = { passes: number; heartbeats: number };
  const start = await apiAt<Counters>(dataDir, "/v1/info");
  await checkFor(
    30_000,
    async () => {
      await check();
      const now = await apiAt<Counters>(dataDir, "/v1/info");
      return (
        now.passes >= start.passes + (want.passes ?? 0) &&
        now.heartbeats >= start.heartbeats + (want.heartbeats ?? 0)
      );
    },
    100,
  );
}
