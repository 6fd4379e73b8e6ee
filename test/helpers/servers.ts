// Test helpers that start message servers on ports they pick themselves and always clean up:
// `startServer()` runs shoal's server in this process; `runServer()` runs `shoal nats-server`
// as a child process; `runGoServer()` runs the Go nats-server (Debian package) when installed.

import { request } from "node:http";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { dirname, resolve } from "node:path";
import { createConnection, type Socket } from "node:net";
import { Server } from "../../src/nats/server.js";
import { defaultOptions, validateOptions, type Options } from "../../src/nats/options.js";
import { ServerLogger, silentLogger } from "../../src/nats/log.js";
import type { TestContext } from "node:test";
import { connect, type ConnectionOptions, type NatsConnection } from "nats";
import { defer } from "./defer.js";

const here = dirname(fileURLToPath(import.meta.url));
/** The repository root (tests run from dist/test/...). */
export const ROOT = resolve(here, "../../..");
export const SHOAL_BIN = resolve(ROOT, "bin/shoal.js");

/** Test logs are silent unless SHOAL_TEST_LOG=1. */
export function testLogger(debug = false) {
  return process.env["SHOAL_TEST_LOG"] ? new ServerLogger({ debug, trace: debug }) : silentLogger;
}

/** An in-process shoal server on 127.0.0.1 and a random port. */
export async function startServer(overrides: Partial<Options> = {}): Promise<Server> {
  const opts = validateOptions({
    ...defaultOptions(),
    host: "127.0.0.1",
    port: -1,
    httpHost: "127.0.0.1",
    ...overrides,
  });
  const s = new Server(opts, testLogger());
  await s.startServer();
  return s;
}

/** An in-process server (as startServer) that is shut down when the test ends. */
export async function useServer(t: TestContext, overrides: Partial<Options> = {}): Promise<Server> {
  const s = await startServer(overrides);
  defer(t, () => s.shutdown());
  return s;
}

/** An official-client connection to 127.0.0.1:port, closed when the test ends. */
export async function useClient(
  t: TestContext,
  port: number,
  opts: Partial<ConnectionOptions> = {},
): Promise<NatsConnection> {
  const nc = await connect({ servers: `127.0.0.1:${port}`, ...opts });
  defer(t, () => nc.close());
  return nc;
}

export interface RunningServer {
  port: number;
  httpPort: number;
  proc: ChildProcess;
  /** Everything the process wrote to stderr/stdout so far. */
  output(): string;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Finds the Go nats-server binary, or null when it is not installed. */
export function goServerPath(): string | null {
  const candidates = [
    process.env["NATS_SERVER"],
    ...(process.env["PATH"] ?? "").split(":").map((d) => `${d}/nats-server`),
    "/usr/sbin/nats-server",
    "/usr/bin/nats-server",
  ];
  for (const c of candidates) if (c && existsSync(c)) return c;
  return null;
}

/** Runs `shoal nats-server` with the given flags (port and monitoring random unless given). */
export function runServer(args: string[] = []): Promise<RunningServer> {
  return spawnServer(process.execPath, [SHOAL_BIN, "nats-server", ...defaults(args)]);
}

/** Runs the Go nats-server with the same flags. */
export function runGoServer(args: string[] = []): Promise<RunningServer> {
  const bin = goServerPath();
  if (!bin) throw new Error("Go nats-server is not installed (apt-get install nats-server)");
  return spawnServer(bin, defaults(args));
}

function defaults(args: string[]): string[] {
  const out = [...args];
  if (!args.some((a) => /^--?(a|addr|net)$/.test(a))) out.push("-a", "127.0.0.1");
  if (!args.some((a) => /^--?(p|port)$/.test(a)) && !args.some((a) => /^--?(c|config)$/.test(a))) {
    out.push("-p", "-1");
  }
  return out;
}

function spawnServer(cmd: string, args: string[]): Promise<RunningServer> {
  const proc = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let exited: number | null | undefined;
  const exit = new Promise<number | null>((r) =>
    proc.once("exit", (code, sig) => {
      exited = code ?? (sig ? -1 : null);
      r(exited);
    }),
  );
  return new Promise((resolveStart, reject) => {
    let port = 0;
    let httpPort = 0;
    const timer = setTimeout(() => {
      proc.kill("SIGKILL");
      reject(new Error(`server did not start in 10s:\n${out}`));
    }, 10_000);
    const onData = (d: Buffer) => {
      out += d.toString();
      const m = /Listening for client connections on [^\s]*:(\d+)/.exec(out);
      const h = /Starting http monitor on [^\s]*:(\d+)/.exec(out);
      if (m) port = Number(m[1]);
      if (h) httpPort = Number(h[1]);
      if (port && /Server is ready/.test(out)) {
        clearTimeout(timer);
        resolveStart({
          port,
          httpPort,
          proc,
          output: () => out,
          async stop(signal: NodeJS.Signals = "SIGTERM") {
            if (exited === undefined) proc.kill(signal);
            const t = setTimeout(() => proc.kill("SIGKILL"), 5000);
            const code = await exit;
            clearTimeout(t);
            return code;
          },
        });
      }
    };
    proc.stdout!.on("data", onData);
    proc.stderr!.on("data", onData);
    void exit.then((code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code} before it was ready:\n${out}`));
    });
  });
}

/** Polls fn until it returns a truthy value (or throws the last error) within ms. */
export async function checkFor<T>(ms: number, fn: () => T | Promise<T>, every = 20): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
      last = new Error("condition not met");
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw last;
    await new Promise((r) => setTimeout(r, every));
  }
}

/**
 * A raw protocol connection for byte-level tests: collects everything the server sends.
 * `waitFor(re)` resolves when the received text matches.
 */
export class RawConn {
  readonly socket: Socket;
  data = "";
  closed = false;
  private waiters: Array<() => void> = [];

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on("data", (d) => {
      this.data += d.toString("latin1");
      this.wake();
    });
    socket.on("close", () => {
      this.closed = true;
      this.wake();
    });
    socket.on("error", () => {});
  }

  static connect(port: number, host = "127.0.0.1"): Promise<RawConn> {
    return new Promise((resolveConn, reject) => {
      const s = createConnection({ port, host }, () => resolveConn(new RawConn(s)));
      s.once("error", reject);
    });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  send(s: string | Buffer): void {
    this.socket.write(s);
  }

  /** Waits until the received text matches re (or the connection closes, if `orClose`). */
  async waitFor(re: RegExp, ms = 3000, orClose = false): Promise<string> {
    const deadline = Date.now() + ms;
    while (!re.test(this.data)) {
      if (this.closed) {
        if (orClose) return this.data;
        throw new Error(`connection closed before ${re}; got ${JSON.stringify(this.data)}`);
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timeout waiting for ${re}; got ${JSON.stringify(this.data)}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
    return this.data;
  }

  /** Waits for the server to close the connection. */
  async waitClosed(ms = 3000): Promise<string> {
    return this.waitFor(/(?!)/, ms, true);
  }

  close(): void {
    this.socket.destroy();
  }
}

/** GET http://host:port/ on a fresh connection; the body, or an error after 2 s. */
export function httpGet(host: string, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ host, port, path: "/", agent: false, timeout: 2000 }, (res) => {
      let body = "";
      res.on("data", (c: Buffer) => (body += c.toString()));
      res.on("end", () => resolve(body));
    });
    req.on("timeout", () => req.destroy(new Error(`GET http://${host}:${port}/ timed out`)));
    req.on("error", reject);
    req.end();
  });
}
