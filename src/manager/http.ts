// The manager's HTTP servers (the daemon API and the join endpoint) on fastify, with what both
// share: every request part checked against its route's schema by the contract's compiled
// validators (src/api/schema.ts) before a handler runs, one error shape for everything —
// `{ "message", "code" }`, including unknown routes (404), bad JSON and internal errors (500) —
// and listening on any number of unix sockets and TCP ports with one app.

import { createServer, type IncomingMessage, type Server } from "node:http";
import { createServer as createTlsServer, type Server as TlsServer } from "node:https";
import type { SecureContextOptions } from "node:tls";
import { chmodSync, rmSync } from "node:fs";
import Fastify, { type FastifyInstance, type FastifyReply } from "fastify";
import type { TSchema } from "@sinclair/typebox";
import { compiled, problems, schemaError } from "../api/schema.js";
import type { ErrorBody, RouteInput, RouteReply, RouteSchema } from "../api/http.js";
import { httpStatusOf } from "./errors.js";

/** The largest request body the API takes (a service spec's bounds fit well within it). */
export const BODY_LIMIT = 1024 * 1024;

export interface HttpLogger {
  error(msg: string): void;
}

/** An HTTP error as the one error shape: the status and the body. */
export function errorReply(err: unknown): { status: number; body: ErrorBody } {
  const e = err as { message?: unknown; code?: unknown; statusCode?: unknown };
  const message = typeof e.message === "string" ? e.message : String(err);
  const code = typeof e.code === "string" ? e.code : "";
  // fastify's own client errors (bad JSON, body too large, unsupported media type).
  if (code.startsWith("FST_") && typeof e.statusCode === "number" && e.statusCode < 500) {
    return {
      status: e.statusCode,
      body: { message, code: e.statusCode === 404 ? "ERR_NOT_FOUND" : "ERR_INVALID" },
    };
  }
  const known = code.startsWith("ERR_") ? code : "ERR_INTERNAL";
  return { status: httpStatusOf(known), body: { message, code: known } };
}

/** A fastify app with the contract's validators, a JSON parser and the one error shape. No
 * request can crash it: a URL it cannot parse is a 400, an unexpected error a 500 whose stack
 * and cause are logged. */
export function createHttpApp(log: HttpLogger, opts: { bodyLimit?: number } = {}): FastifyInstance {
  const bodyLimit = opts.bodyLimit ?? BODY_LIMIT;
  const app = Fastify({
    bodyLimit,
    // Errors fastify raises before routing (a path it cannot decode): the one error shape too.
    frameworkErrors: (err, req, reply) => {
      const { status, body } = errorReply(err);
      if (status >= 500) log.error(`${req.method} ${req.url}: ${describe(err)}`);
      void (reply as FastifyReply).code(status).type("application/json").send(body);
    },
  });
  app.setValidatorCompiler(({ schema, httpPart }) => {
    const s = schema as TSchema;
    const check = compiled(s);
    const name = httpPart === "body" ? "" : httpPart === "querystring" ? "query" : "path";
    return (data: unknown) => {
      // A request without a body is an empty one (fastify passes null).
      const value = httpPart === "body" && data == null ? {} : data;
      if (check.Check(value)) return { value };
      return { error: schemaError(problems(s, value, name, httpPart ?? "value")) };
    };
  });
  // Replies are JSON as the handlers return them (the reply schemas document them).
  app.setSerializerCompiler(() => (data: unknown) => JSON.stringify(data));
  app.removeContentTypeParser("application/json");
  app.addContentTypeParser(
    "application/json",
    { parseAs: "string", bodyLimit },
    (_req, text, done) => {
      const s = text as string;
      if (s.trim() === "") return done(null, undefined);
      try {
        done(null, JSON.parse(s));
      } catch (err) {
        done(schemaError([`invalid JSON body: ${(err as Error).message}`]), undefined);
      }
    },
  );
  app.setErrorHandler((err, req, reply) => {
    const { status, body } = errorReply(err);
    if (status >= 500) log.error(`${req.method} ${req.url}: ${describe(err)}`);
    void reply.code(status).type("application/json").send(body);
  });
  app.setNotFoundHandler((req, reply) => {
    const path = req.url.split("?")[0];
    void reply
      .code(404)
      .type("application/json")
      .send({ message: `no such endpoint: ${req.method} ${path}`, code: "ERR_NOT_FOUND" });
  });
  return app;
}

/** An error for the log: its stack and, if it has one, its cause's. */
function describe(err: unknown): string {
  const e = err as { stack?: unknown; cause?: unknown };
  const text = typeof e.stack === "string" ? e.stack : String(err);
  return e.cause === undefined ? text : `${text}\ncaused by: ${describe(e.cause)}`;
}

/** Attaches `handler` to `r` with its schemas: the handler gets only validated input. */
export function addRoute<R extends RouteSchema>(
  app: FastifyInstance,
  r: R,
  handler: (input: RouteInput<R>, reply: FastifyReply) => Promise<RouteReply<R>>,
): void {
  app.route({
    method: r.method,
    url: r.url,
    schema: {
      ...(r.params ? { params: r.params } : {}),
      ...(r.querystring ? { querystring: r.querystring } : {}),
      ...(r.body ? { body: r.body } : {}),
      ...(r.reply ? { response: { 200: r.reply } } : {}),
    },
    handler: async (req, reply) =>
      handler({ params: req.params, query: req.query, body: req.body } as RouteInput<R>, reply),
  });
}

/** Serves one fastify app on unix sockets and TCP ports. */
export class HttpListeners {
  private readonly servers: Server[] = [];

  constructor(private readonly app: FastifyInstance) {}

  async listenUnix(path: string): Promise<void> {
    rmSync(path, { force: true });
    await this.listen((s, cb) => s.listen(path, cb));
    chmodSync(path, 0o600); // the API is the daemon's owner's only: explicit, not the umask
  }

  /** Returns the port (useful with port 0). */
  async listenTcp(host: string, port: number): Promise<number> {
    const s = await this.listen((srv, cb) => srv.listen({ host, port }, cb));
    const a = s.address();
    return typeof a === "object" && a ? a.port : port;
  }

  /** HTTPS on a TCP port: `tls` (cert, key, ca; requestCert for client certificates, which
   * the handlers check themselves). Returns the server: its certificate can be replaced with
   * setSecureContext. */
  async listenTls(
    host: string,
    port: number,
    tls: SecureContextOptions & { requestCert?: boolean },
    /** Checks each request before routing: an error reply refuses it. */
    authorize?: (req: IncomingMessage) => { status: number; body: ErrorBody } | null,
  ): Promise<TlsServer> {
    const make = () =>
      createTlsServer({ ...tls, rejectUnauthorized: false, minVersion: "TLSv1.2" }, (req, res) => {
        const refused = authorize?.(req);
        if (!refused) return this.app.routing(req, res);
        res.writeHead(refused.status, { "Content-Type": "application/json" });
        res.end(JSON.stringify(refused.body));
      });
    return (await this.listen((srv, cb) => srv.listen({ host, port }, cb), make)) as TlsServer;
  }

  private async listen(
    fn: (s: Server, cb: () => void) => void,
    make: () => Server = () => createServer((req, res) => this.app.routing(req, res)),
  ): Promise<Server> {
    await this.app.ready();
    const s = make();
    await new Promise<void>((resolve, reject) => {
      s.once("error", reject);
      fn(s, () => {
        s.off("error", reject);
        resolve();
      });
    });
    this.servers.push(s);
    return s;
  }

  async close(): Promise<void> {
    const servers = this.servers.splice(0);
    await Promise.all(
      servers.map(
        (s) =>
          new Promise<void>((r) => {
            s.closeAllConnections();
            s.close(() => r());
          }),
      ),
    );
    await this.app.close();
  }
}
