// The manager's HTTP JSON API (what the CLI and, later, the dashboard use). It listens on a
// unix socket by default and on TCP on request. Every error is JSON `{ "message", "code" }` with
// a status derived from the error code. Documented in docs/api.md.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { rmSync } from "node:fs";
import type { Manager, NodeUpdate } from "./manager.js";
import { ManagerError, httpStatusOf } from "./errors.js";
import { isTerminal, replicasOf, type ServiceSpec, type Task } from "../api/types.js";

export interface ApiHooks {
  info(): Record<string, unknown>;
  joinToken(role: "worker" | "manager", rotate: boolean): Promise<string>;
  /** Streams a task's log lines (local tasks), calling write per line until done or aborted. */
  logs(
    task: Task,
    opts: { tail: number; follow: boolean; signal: AbortSignal },
    write: (line: string) => void,
  ): Promise<void>;
  /** Checks that published ports can be bound on this node (not taken by another program). */
  checkPortsFree(spec: ServiceSpec, serviceId: string): Promise<void>;
  leave(force: boolean): Promise<void>;
}

type Handler = (req: IncomingMessage, params: string[], url: URL) => Promise<unknown>;

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > 1024 * 1024) throw new ManagerError("ERR_INVALID", "request body too large");
    chunks.push(c as Buffer);
  }
  if (chunks.length === 0) return {};
  try {
    return JSON.parse(Buffer.concat(chunks).toString("utf8"));
  } catch (err) {
    throw new ManagerError("ERR_INVALID", `invalid JSON body: ${(err as Error).message}`);
  }
}

export class Api {
  private readonly servers: Server[] = [];
  private readonly routes: Array<[string, RegExp, Handler]> = [];

  constructor(
    private readonly manager: Manager,
    private readonly hooks: ApiHooks,
  ) {
    const m = manager;
    const view = () =>
      m.store.view((tx) => ({
        services: tx.listServices(),
        tasks: tx.listTasks(),
        nodes: tx.listNodes(),
      }));
    this.route("GET", /^\/v1\/info$/, async () => hooks.info());
    this.route("GET", /^\/v1\/nodes$/, async () => m.store.view((tx) => tx.listNodes()));
    this.route("GET", /^\/v1\/nodes\/([^/]+)$/, async (_req, [ref]) =>
      m.store.view((tx) => m.findNode(tx, ref!)),
    );
    this.route("POST", /^\/v1\/nodes\/([^/]+)\/update$/, async (req, [ref]) => {
      const body = (await readJson(req)) as NodeUpdate;
      return m.updateNode(ref!, body);
    });
    this.route("DELETE", /^\/v1\/nodes\/([^/]+)$/, async (_req, [ref], url) =>
      m.removeNode(ref!, url.searchParams.get("force") === "1"),
    );
    this.route("GET", /^\/v1\/services$/, async () => {
      const v = view();
      return v.services.map((s) => summary(s.id, s, v.tasks));
    });
    this.route("POST", /^\/v1\/services$/, async (req) => {
      const body = (await readJson(req)) as { spec?: ServiceSpec };
      if (!body.spec) throw new ManagerError("ERR_INVALID", "missing spec");
      await hooks.checkPortsFree(body.spec, "");
      return m.createService(body.spec);
    });
    this.route("GET", /^\/v1\/services\/([^/]+)$/, async (_req, [ref]) => {
      const v = view();
      const s = m.store.view((tx) => m.findService(tx, ref!));
      return summary(s.id, s, v.tasks);
    });
    this.route("POST", /^\/v1\/services\/([^/]+)\/update$/, async (req, [ref]) => {
      const body = (await readJson(req)) as { spec?: ServiceSpec };
      if (!body.spec) throw new ManagerError("ERR_INVALID", "missing spec");
      const cur = m.store.view((tx) => m.findService(tx, ref!));
      await hooks.checkPortsFree(body.spec, cur.id);
      return m.updateService(ref!, () => body.spec!);
    });
    this.route("POST", /^\/v1\/services\/([^/]+)\/rollback$/, async (_req, [ref]) =>
      m.rollbackService(ref!),
    );
    this.route("POST", /^\/v1\/services\/([^/]+)\/scale$/, async (req, [ref]) => {
      const body = (await readJson(req)) as { replicas?: unknown };
      const n = body.replicas;
      if (typeof n !== "number" || !Number.isInteger(n) || n < 0) {
        throw new ManagerError(
          "ERR_INVALID",
          `invalid replicas value ${JSON.stringify(n)}: must be a non-negative integer`,
        );
      }
      return m.updateService(ref!, (spec) => {
        if (!("replicated" in spec.mode)) {
          throw new ManagerError("ERR_INVALID", `scale can only be used with replicated mode`);
        }
        return { ...spec, mode: { replicated: { replicas: n } } };
      });
    });
    this.route("DELETE", /^\/v1\/services\/([^/]+)$/, async (_req, [ref]) => m.removeService(ref!));
    this.route("GET", /^\/v1\/tasks$/, async (_req, _p, url) => {
      const ref = url.searchParams.get("service");
      return m.store.view((tx) => {
        if (!ref) return tx.listTasks();
        const s = m.findService(tx, ref);
        return tx.listTasks({ serviceId: s.id });
      });
    });
    this.route("GET", /^\/v1\/swarm\/join-token\/(worker|manager)$/, async (_req, [role], url) => ({
      token: await hooks.joinToken(
        role as "worker" | "manager",
        url.searchParams.get("rotate") === "1",
      ),
    }));
    this.route("POST", /^\/v1\/swarm\/update$/, async (req) => {
      const body = (await readJson(req)) as { heartbeatMs?: number };
      return m.updateSwarm(body);
    });
    this.route("POST", /^\/v1\/swarm\/leave$/, async (_req, _p, url) => {
      await hooks.leave(url.searchParams.get("force") === "1");
      return { ok: true };
    });
  }

  private route(method: string, re: RegExp, h: Handler): void {
    this.routes.push([method, re, h]);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://shoal");
    const logs = /^\/v1\/services\/([^/]+)\/logs$/.exec(url.pathname);
    if (req.method === "GET" && logs) return this.streamLogs(res, logs[1]!, url);
    for (const [method, re, h] of this.routes) {
      const m = re.exec(url.pathname);
      if (!m || method !== req.method) continue;
      try {
        const body = await h(req, m.slice(1).map(decodeURIComponent), url);
        res.writeHead(200, { "Content-Type": "application/json" });
        res.end(JSON.stringify(body));
      } catch (err) {
        const code =
          err instanceof ManagerError
            ? err.code
            : ((err as { code?: string }).code ?? "ERR_INTERNAL");
        const status = httpStatusOf(code);
        res.writeHead(status, { "Content-Type": "application/json" });
        res.end(JSON.stringify({ message: (err as Error).message, code }));
      }
      return;
    }
    res.writeHead(404, { "Content-Type": "application/json" });
    res.end(
      JSON.stringify({
        message: `no such endpoint: ${req.method} ${url.pathname}`,
        code: "ERR_NOT_FOUND",
      }),
    );
  }

  private async streamLogs(res: ServerResponse, ref: string, url: URL): Promise<void> {
    const m = this.manager;
    let tasks: Task[];
    try {
      tasks = m.store.view((tx) => tx.listTasks({ serviceId: m.findService(tx, ref).id }));
    } catch (err) {
      res.writeHead(404, { "Content-Type": "application/json" });
      res.end(JSON.stringify({ message: (err as Error).message, code: "ERR_NOT_FOUND" }));
      return;
    }
    const tail = Number(url.searchParams.get("tail") ?? "-1");
    const follow = url.searchParams.get("follow") === "1";
    const ac = new AbortController();
    res.on("close", () => ac.abort());
    res.writeHead(200, { "Content-Type": "text/plain; charset=utf-8" });
    tasks.sort((a, b) => a.slot - b.slot || a.createdAt - b.createdAt);
    await Promise.all(
      tasks.map((t) =>
        this.hooks
          .logs(
            t,
            { tail: Number.isInteger(tail) ? tail : -1, follow, signal: ac.signal },
            (line) => res.write(line + "\n"),
          )
          .catch(() => {}),
      ),
    );
    res.end();
  }

  async listenUnix(path: string): Promise<void> {
    rmSync(path, { force: true });
    await this.listen((s, cb) => s.listen(path, cb));
  }

  async listenTcp(host: string, port: number): Promise<number> {
    const s = await this.listen((srv, cb) => srv.listen({ host, port }, cb));
    const a = s.address();
    return typeof a === "object" && a ? a.port : port;
  }

  private async listen(fn: (s: Server, cb: () => void) => void): Promise<Server> {
    const s = createServer((req, res) => void this.handle(req, res));
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
    await Promise.all(
      this.servers.map(
        (s) =>
          new Promise<void>((r) => {
            s.closeAllConnections();
            s.close(() => r());
          }),
      ),
    );
  }
}

/** A service with its task counts (REPLICAS running/desired, as Swarm counts them). */
export function summary(
  id: string,
  s: { spec: ServiceSpec },
  tasks: Task[],
): Record<string, unknown> {
  const mine = tasks.filter((t) => t.serviceId === id);
  const running = mine.filter((t) => t.status.state === "running").length;
  const desiredGlobal = mine.filter(
    (t) => !isTerminal(t.status.state) && t.desiredState === "running",
  ).length;
  return { ...s, running, desired: replicasOf(s.spec) ?? desiredGlobal };
}
