// The CLI's client of the daemon's HTTP API: a unix socket under the data dir by default, or
// SHOAL_HOST (unix:///path/to/sock or tcp://host:port), like DOCKER_HOST.

import { request } from "node:http";
import { defaultDataDir, socketPath } from "../api/paths.js";

export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly code: string,
  ) {
    super(message);
  }
}

interface Target {
  socketPath?: string;
  host?: string;
  port?: number;
}

export function apiTarget(): Target {
  const h = process.env["SHOAL_HOST"];
  if (h) {
    if (h.startsWith("unix://")) return { socketPath: h.slice("unix://".length) };
    const m = /^(?:tcp:\/\/)?([^:/]+):(\d+)$/.exec(h);
    if (!m) throw new Error(`invalid SHOAL_HOST "${h}": use unix:///path or tcp://host:port`);
    return { host: m[1]!, port: Number(m[2]) };
  }
  return { socketPath: socketPath(defaultDataDir()) };
}

function describe(t: Target): string {
  return t.socketPath ? `unix://${t.socketPath}` : `tcp://${t.host}:${t.port}`;
}

export function call<T>(method: string, path: string, body?: unknown): Promise<T> {
  const target = apiTarget();
  return new Promise((resolve, reject) => {
    const req = request(
      { ...target, method, path, headers: { "Content-Type": "application/json" } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          let json: unknown;
          try {
            json = text ? JSON.parse(text) : null;
          } catch {
            json = { message: text };
          }
          if ((res.statusCode ?? 500) >= 400) {
            const e = json as { message?: string; code?: string };
            reject(
              new ApiError(
                e.message ?? `HTTP ${res.statusCode}`,
                res.statusCode ?? 500,
                e.code ?? "",
              ),
            );
          } else {
            resolve(json as T);
          }
        });
      },
    );
    req.on("error", (err: NodeJS.ErrnoException) => {
      if (err.code === "ENOENT" || err.code === "ECONNREFUSED") {
        reject(
          new Error(
            `Cannot connect to the shoal daemon at ${describe(target)}. Is the daemon running? (shoal init / shoal daemon)`,
          ),
        );
      } else reject(err);
    });
    if (body !== undefined) req.write(JSON.stringify(body));
    req.end();
  });
}

/** Streams a text response line by line (service logs -f). */
export function stream(path: string, onData: (chunk: string) => void): Promise<void> {
  const target = apiTarget();
  return new Promise((resolve, reject) => {
    const req = request({ ...target, method: "GET", path }, (res) => {
      if ((res.statusCode ?? 500) >= 400) {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          let msg = Buffer.concat(chunks).toString();
          try {
            msg = (JSON.parse(msg) as { message: string }).message;
          } catch {
            // plain text
          }
          reject(new ApiError(msg, res.statusCode ?? 500, ""));
        });
        return;
      }
      res.setEncoding("utf8");
      res.on("data", onData);
      res.on("end", () => resolve());
    });
    req.on("error", reject);
    req.end();
  });
}
