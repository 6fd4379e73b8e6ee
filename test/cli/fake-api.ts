// A stand-in for the daemon's API on a unix socket, for process-level tests of the CLI: it
// answers from a route function and records every request; plus `shoal()`, which runs
// bin/shoal.js against it (SHOAL_HOST) and collects its output and exit code.

import { spawn, type SpawnOptions } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type RequestListener, type ServerResponse } from "node:http";
import { createServer as createTlsServer } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SHOAL_BIN } from "../helpers/servers.js";

export interface FakeRequest {
  method: string;
  path: string;
  body: unknown;
}

/** JSON to answer (status 200 unless given), or a function that writes the answer itself. */
export type FakeAnswer =
  { status?: number; json: unknown } | ((res: ServerResponse) => void) | undefined;

export interface FakeApi {
  socket: string;
  requests: FakeRequest[];
  /** The environment that points the CLI at this API. */
  env: NodeJS.ProcessEnv;
  close(): Promise<void>;
}

/** Serves on a unix socket, or on TCP when `tcp` names the host (then `port` is set). */
export async function fakeApi(
  route: (req: FakeRequest) => FakeAnswer,
  tcp?: { host: string; tls?: { cert: string; key: string } },
): Promise<FakeApi & { port: number }> {
  const dir = mkdtempSync(join(tmpdir(), "shoal-fake-api-"));
  const socket = join(dir, "shoal.sock");
  const requests: FakeRequest[] = [];
  const handler: RequestListener = (req, res) => {
    let text = "";
    req.on("data", (c: Buffer) => (text += c.toString()));
    req.on("end", () => {
      const r: FakeRequest = {
        method: req.method ?? "GET",
        path: req.url ?? "/",
        body: text ? (JSON.parse(text) as unknown) : undefined,
      };
      requests.push(r);
      const answer = route(r);
      if (typeof answer === "function") return answer(res);
      res.statusCode = answer?.status ?? (answer ? 200 : 404);
      res.setHeader("Content-Type", "application/json");
      res.end(JSON.stringify(answer ? answer.json : { message: `no route ${r.method} ${r.path}` }));
    });
  };
  const server = tcp?.tls ? createTlsServer(tcp.tls, handler) : createServer(handler);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    if (tcp) server.listen({ host: tcp.host, port: 0 }, resolve);
    else server.listen(socket, resolve);
  });
  const a = server.address();
  const port = typeof a === "object" && a ? a.port : 0;
  return {
    socket,
    port,
    requests,
    env: { ...process.env, SHOAL_HOST: `unix://${socket}`, SHOAL_DATA_DIR: dir },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `node [nodeArgs] bin/shoal.js args` to completion (killed after 30 s). */
export function shoal(
  args: string[],
  env: NodeJS.ProcessEnv,
  opts: { nodeArgs?: string[] } & SpawnOptions = {},
): Promise<Run> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [...(opts.nodeArgs ?? []), SHOAL_BIN, ...args], {
      stdio: ["ignore", "pipe", "pipe"],
      env,
    });
    let stdout = "";
    let stderr = "";
    p.stdout!.on("data", (d: Buffer) => (stdout += d.toString()));
    p.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => p.kill("SIGKILL"), 30_000);
    p.once("error", reject);
    p.once("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}
