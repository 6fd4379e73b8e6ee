// The CLI's client of the daemon's HTTP API: a unix socket under the data dir by default, or
// SHOAL_HOST (unix:///path/to/sock or tcp://host:port, IPv6 as tcp://[::1]:2375), like DOCKER_HOST.

import { request, type IncomingMessage } from "node:http";
import { request as tlsRequest } from "node:https";
import { readFileSync } from "node:fs";
import { clientCertPaths, defaultDataDir, socketPath } from "../api/paths.js";
import { AddressError, formatHost, parseHostPort } from "../lib/addr.js";
import { CliError } from "./errors.js";

/** An error answer of the daemon: its message, HTTP status and error code. */
export class ApiError extends CliError {
  constructor(
    message: string,
    readonly status: number,
    apiCode: string,
  ) {
    super(apiCode || "ERR_API", message);
  }
}

/** No daemon answers at the target. */
export class NoDaemonError extends CliError {
  constructor(target: ApiTarget, cause: unknown) {
    super(
      "ERR_NO_DAEMON",
      `Cannot connect to the shoal daemon at ${describeTarget(target)}. Is the daemon running? (shoal init / shoal daemon)`,
      { cause },
    );
  }
}

/** A client certificate and the CA that signed the server's (PEM). */
export interface ApiTls {
  ca: string;
  cert: string;
  key: string;
}

export type ApiTarget = { socketPath: string } | { host: string; port: number; tls?: ApiTls };

/** The API the CLI talks to: SHOAL_HOST, else the socket in SHOAL_DATA_DIR (or ~/.shoal). With
 * SHOAL_TLS_VERIFY (Docker's DOCKER_TLS_VERIFY), a TCP host is spoken to with mutual TLS, with
 * the certificate SHOAL_CERT_PATH names (see clientCertPaths). */
export function apiTarget(env: NodeJS.ProcessEnv = process.env): ApiTarget {
  const h = env["SHOAL_HOST"];
  if (!h) return { socketPath: socketPath(env["SHOAL_DATA_DIR"] || defaultDataDir()) };
  if (h.startsWith("unix://")) return { socketPath: h.slice("unix://".length) };
  const bad = () =>
    new CliError(
      "ERR_SHOAL_HOST",
      `invalid SHOAL_HOST "${h}": use unix:///path/to/shoal.sock or tcp://host:port`,
    );
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(h) && !h.startsWith("tcp://")) throw bad();
  try {
    const { host, port } = parseHostPort(h);
    if (!host || port === undefined || port <= 0) throw bad();
    const verify = env["SHOAL_TLS_VERIFY"];
    return verify && verify !== "0" ? { host, port, tls: clientTls(env) } : { host, port };
  } catch (err) {
    if (err instanceof AddressError) throw bad();
    throw err;
  }
}

/** The client certificate files for SHOAL_TLS_VERIFY, read now; a missing one is named. */
function clientTls(env: NodeJS.ProcessEnv): ApiTls {
  const paths = clientCertPaths(env);
  const read = (file: string) => {
    try {
      return readFileSync(file, "utf8");
    } catch (err) {
      throw new CliError(
        "ERR_TLS",
        `cannot read ${file} for SHOAL_TLS_VERIFY (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): set SHOAL_CERT_PATH to a directory with ca.pem, cert.pem and key.pem`,
      );
    }
  };
  return { ca: read(paths.ca), cert: read(paths.cert), key: read(paths.key) };
}

/** The socket of a data dir, whatever SHOAL_HOST says (init, join and leave talk to this node). */
export function localTarget(dataDir: string): ApiTarget {
  return { socketPath: socketPath(dataDir) };
}

export function describeTarget(t: ApiTarget): string {
  return "socketPath" in t ? `unix://${t.socketPath}` : `tcp://${formatHost(t.host)}:${t.port}`;
}

function errorOf(res: IncomingMessage, text: string): ApiError {
  let message = text;
  let code = "";
  try {
    const e = JSON.parse(text) as { message?: string; code?: string };
    message = e.message ?? `HTTP ${res.statusCode}`;
    code = e.code ?? "";
  } catch {
    // plain text
  }
  return new ApiError(message || `HTTP ${res.statusCode}`, res.statusCode ?? 500, code);
}

function send(
  target: ApiTarget,
  method: string,
  path: string,
  body: unknown,
  onResponse: (res: IncomingMessage) => void,
  reject: (err: unknown) => void,
  signal?: AbortSignal,
): void {
  const headers = { "Content-Type": "application/json" };
  const req =
    "tls" in target && target.tls
      ? tlsRequest(
          { host: target.host, port: target.port, ...target.tls, method, path, headers, signal },
          onResponse,
        )
      : request({ ...target, method, path, headers, signal }, onResponse);
  req.on("error", (err: NodeJS.ErrnoException) => {
    if (signal?.aborted) return; // the caller ended it
    if (err.code === "ENOENT" || err.code === "ECONNREFUSED")
      reject(new NoDaemonError(target, err));
    else if ("host" in target && !target.tls && err.code === "ECONNRESET") {
      // What a TLS listener does to a plain HTTP request.
      reject(
        new CliError(
          "ERR_TLS",
          `the daemon at ${describeTarget(target)} closed the connection: if its API has mutual TLS (--api-addr off loopback, or --api-tls), set SHOAL_TLS_VERIFY=1`,
          { cause: err },
        ),
      );
    } else reject(err);
  });
  if (body !== undefined) req.write(JSON.stringify(body));
  req.end();
}

export function callAt<T>(
  target: ApiTarget,
  method: string,
  path: string,
  body?: unknown,
): Promise<T> {
  return new Promise((resolve, reject) => {
    send(
      target,
      method,
      path,
      body,
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          if ((res.statusCode ?? 500) >= 400) return reject(errorOf(res, text));
          try {
            resolve((text ? JSON.parse(text) : null) as T);
          } catch {
            reject(
              new ApiError(`unexpected answer from the daemon: ${text.slice(0, 200)}`, 500, ""),
            );
          }
        });
      },
      reject,
    );
  });
}

/** One request to the daemon (SHOAL_HOST or the local socket), its JSON answer. */
export function call<T>(method: string, path: string, body?: unknown): Promise<T> {
  return callAt<T>(apiTarget(), method, path, body);
}

/**
 * Docker's inspect of several objects: GETs each in order; one that fails is reported as
 * `Error: <message>` on stderr and left out.
 */
export async function getEach<T>(
  refs: string[],
  pathOf: (ref: string) => string,
): Promise<{ found: T[]; failed: boolean }> {
  const found: T[] = [];
  let failed = false;
  for (const ref of refs) {
    try {
      found.push(await call<T>("GET", pathOf(ref)));
    } catch (err) {
      if (!(err instanceof CliError)) throw err;
      process.stderr.write(`Error: ${err.message}\n`);
      failed = true;
    }
  }
  return { found, failed };
}

/**
 * Docker's rm of several objects: DELETEs each in order, printing its reference; one that fails
 * is reported as the daemon's error. The exit code: 1 if any failed.
 */
export async function deleteEach(refs: string[], pathOf: (ref: string) => string): Promise<number> {
  let failed = false;
  for (const ref of refs) {
    try {
      await call("DELETE", pathOf(ref));
      process.stdout.write(ref + "\n");
    } catch (err) {
      if (!(err instanceof CliError)) throw err;
      process.stderr.write(`Error response from daemon: ${err.message}\n`);
      failed = true;
    }
  }
  return failed ? 1 : 0;
}

/** Streams a text response chunk by chunk (service logs -f); `signal` ends it (resolved). */
export function stream(
  path: string,
  onData: (chunk: string) => void,
  signal?: AbortSignal,
): Promise<void> {
  const target = apiTarget();
  return new Promise((resolve, reject) => {
    send(
      target,
      "GET",
      path,
      undefined,
      (res) => {
        if ((res.statusCode ?? 500) >= 400) {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => reject(errorOf(res, Buffer.concat(chunks).toString())));
          return;
        }
        res.setEncoding("utf8");
        res.on("data", onData);
        res.on("end", () => resolve());
        res.on("error", (err) => (signal?.aborted ? resolve() : reject(err)));
      },
      reject,
      signal,
    );
    signal?.addEventListener("abort", () => resolve(), { once: true });
  });
}
