// Servers under test for the benchmarks. A server is nothing but a command line that takes a
// listen address and port; startServer() runs it on a free port, waits until the port answers
// with a NATS INFO line, and hands back its pid (for memory readings) and the version it reports.
// If the command exits or never answers, the start fails with the command's last output, so the
// bench can say why a server was not measured.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import net from "node:net";
import { fileURLToPath } from "node:url";
import { killAll, track, waitExit } from "./procs.js";

export interface ServerSpec {
  /** Short id used in JSON output and on the command line (`go`, `shoal`). */
  id: string;
  /** Column heading. */
  label: string;
  /** The full command line for a server listening on 127.0.0.1:port. */
  command(port: number): string[];
}

export interface RunningServer {
  spec: ServerSpec;
  port: number;
  pid: number;
  /** The WebSocket port (0 unless started with `websocket`). */
  wsPort: number;
  /** The `version` field of the server's INFO. */
  version: string;
  child: ChildProcess;
}

export class ServerStartError extends Error {
  readonly code = "SERVER_START";
}

/** The Go nats-server: `--go-server`, else $NATS_SERVER, else /usr/bin, /usr/sbin or PATH. */
export function goServer(bin?: string): ServerSpec {
  const path =
    bin ??
    process.env.NATS_SERVER ??
    ["/usr/bin/nats-server", "/usr/sbin/nats-server"].find((p) => existsSync(p)) ??
    "nats-server";
  return {
    id: "go",
    label: "Go nats-server",
    command: (port) => [path, "-a", "127.0.0.1", "-p", String(port)],
  };
}

/** shoal's message server; `base` replaces `node bin/shoal.js nats-server` if given. */
export function shoalServer(base?: string[]): ServerSpec {
  const shoalJs = fileURLToPath(new URL("../../bin/shoal.js", import.meta.url));
  const cmd = base ?? [process.execPath, shoalJs, "nats-server"];
  return {
    id: "shoal",
    label: "shoal",
    command: (port) => [...cmd, "-a", "127.0.0.1", "-p", String(port)],
  };
}

/** A port that was free a moment ago (the usual listen-on-0 trick). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      srv.close(() => {
        if (addr && typeof addr === "object") resolve(addr.port);
        else reject(new Error("could not get a free port"));
      });
    });
  });
}

/** Connects once; resolves with the INFO JSON if the server greets, rejects otherwise. */
function probe(port: number): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ port, host: "127.0.0.1" });
    let buf = "";
    const timer = setTimeout(() => done(new Error("no INFO within 2 s")), 2000);
    const done = (err: Error | null, info?: Record<string, unknown>) => {
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err);
      else resolve(info ?? {});
    };
    sock.on("error", (err) => done(err));
    sock.on("close", () => done(new Error("closed before INFO")));
    sock.on("data", (chunk) => {
      buf += chunk.toString("latin1");
      const nl = buf.indexOf("\r\n");
      if (nl < 0) return;
      const line = buf.slice(0, nl);
      if (!line.startsWith("INFO ")) return done(new Error(`unexpected greeting: ${line}`));
      try {
        done(null, JSON.parse(line.slice(5)) as Record<string, unknown>);
      } catch {
        done(new Error(`bad INFO: ${line}`));
      }
    });
  });
}

/**
 * Starts the server on a free port and waits (up to timeoutMs) until it greets clients. With
 * `websocket`, a config file also opens a WebSocket listener (no TLS) on another free port.
 */
export async function startServer(
  spec: ServerSpec,
  timeoutMs = 10_000,
  opts: { websocket?: boolean } = {},
): Promise<RunningServer> {
  const port = await freePort();
  const [cmd, ...args] = spec.command(port);
  let wsPort = 0;
  if (opts.websocket) {
    wsPort = await freePort();
    const conf = join(mkdtempSync(join(tmpdir(), "shoal-bench-")), "ws.conf");
    writeFileSync(conf, `websocket { host: "127.0.0.1", port: ${wsPort}, no_tls: true }\n`);
    args.push("-c", conf);
  }
  const child = track(spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] }));
  let output = "";
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString("utf8")).slice(-4000);
  };
  // Always drain the pipes: a server blocked on a full stderr pipe would skew every number.
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  let spawnError: Error | null = null;
  child.once("error", (err) => (spawnError = err));

  const why = (what: string) => {
    const tail = output.trim().split("\n").slice(-6).join("\n    ");
    return new ServerStartError(
      `${spec.label}: ${what}\n  command: ${[cmd, ...args].join(" ")}` +
        (tail ? `\n  output:\n    ${tail}` : ""),
    );
  };

  const deadline = Date.now() + timeoutMs;
  let lastErr = "";
  while (Date.now() < deadline) {
    if (spawnError) throw why(`could not start (${(spawnError as Error).message})`);
    if (child.exitCode !== null || child.signalCode !== null) {
      throw why(`exited during start (${child.signalCode ?? `code ${child.exitCode}`})`);
    }
    try {
      const info = await probe(port);
      return {
        spec,
        port,
        wsPort,
        pid: child.pid ?? -1,
        version: typeof info.version === "string" ? info.version : "?",
        child,
      };
    } catch (err) {
      lastErr = err instanceof Error ? err.message : String(err);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  child.kill("SIGKILL");
  await waitExit(child, 2000);
  throw why(`did not accept clients within ${timeoutMs} ms (${lastErr})`);
}

/** Stops the server and every other bench process (load generators) still running. */
export async function stopAll(): Promise<void> {
  await killAll();
}
