// The dashboard a manager serves (`--dashboard-addr`, default 127.0.0.1:8080): the page and its
// scripts (web/), a live stream of the cluster's state and its event feed (server-sent events),
// and the few actions Swarm users do most — scale, roll back, drain/activate — each calling the
// manager's own functions, as the daemon API does. Every request body and parameter is checked
// against its schema (src/api/dashboard.ts) by the same fastify app the API uses.
//
// The state stream follows the store's watch: a burst of commits is coalesced into one message
// `coalesceMs` after the first (default 100 ms), so a change reaches the page well within a
// second and a rolling update does not send one message per task. The event feed is the
// manager's event log (src/manager/events/, what `shoal events` reads): its recent history at
// connect, then each event as it is recorded.

import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { ServerResponse } from "node:http";
import type { Manager } from "../manager.js";
import type { ApiHooks } from "../api.js";
import { ManagerError } from "../errors.js";
import { addRoute, createHttpApp, HttpListeners } from "../http.js";
import { dashRoutes as r } from "../../api/dashboard.js";
import type { ClusterEvent } from "../../api/events.js";
import { joinHostPort } from "../../lib/addr.js";
import { dashState } from "./view.js";
import { AutoscaleHistory } from "./history.js";
import { changesState } from "../../store/store.js";
import { hasSession, needsToken, sessionCookie, tokenMatches } from "./auth.js";
import { loadAssets, type Asset } from "./assets.js";
import { currentToken, dashboardToken } from "./token.js";

export interface DashboardOptions {
  host: string;
  port: number;
  /** A task's log lines (the daemon API's hook). */
  logs: ApiHooks["logs"];
  coalesceMs?: number;
  keepaliveMs?: number;
  /** The page's files (default: web/ of this package). */
  assets?: Map<string, Asset>;
}

/** How many recorded events a page gets when it connects. */
const HISTORY_AT_CONNECT = 500;

/** One open server-sent-events reply. */
class Stream {
  constructor(readonly res: ServerResponse) {
    res.writeHead(200, {
      "Content-Type": "text/event-stream; charset=utf-8",
      "Cache-Control": "no-store",
      Connection: "keep-alive",
      "X-Accel-Buffering": "no",
    });
    res.write(": shoal\n\n");
  }

  send(event: string, data: string, id?: number): void {
    this.res.write(`${id !== undefined ? `id: ${id}\n` : ""}event: ${event}\ndata: ${data}\n\n`);
  }
}

export class Dashboard {
  readonly app: FastifyInstance;
  readonly requireToken: boolean;
  private readonly listeners: HttpListeners;
  private readonly stateStreams = new Set<Stream>();
  private readonly eventStreams = new Set<Stream>();
  private readonly unlisten: () => void;
  private readonly history = new AutoscaleHistory();
  private readonly unwatch: () => void;
  private flushTimer: NodeJS.Timeout | null = null;
  private readonly keepalive: NodeJS.Timeout;

  constructor(
    private readonly manager: Manager,
    private readonly opts: DashboardOptions,
  ) {
    const m = manager;
    this.requireToken = needsToken(opts.host);
    this.unlisten = m.events.listen((e) => this.sendEvent(e));
    this.history.observe(m.store.view((tx) => tx.listServices()));
    this.unwatch = m.store.watch((batch) => {
      if (!changesState(batch)) return;
      this.history.onEvents(batch);
      if (this.stateStreams.size > 0 && !this.flushTimer) {
        this.flushTimer = setTimeout(() => this.flush(), opts.coalesceMs ?? 100);
      }
    });
    this.keepalive = setInterval(() => {
      for (const s of [...this.stateStreams, ...this.eventStreams]) s.res.write(": ping\n\n");
    }, opts.keepaliveMs ?? 15_000);
    this.keepalive.unref();

    const app = createHttpApp(m.log, { bodyLimit: 16 * 1024 });
    this.app = app;
    this.listeners = new HttpListeners(app);
    app.addHook("onRequest", async (req, reply) => {
      void reply
        .header("X-Content-Type-Options", "nosniff")
        .header("X-Frame-Options", "DENY")
        .header("Referrer-Policy", "no-referrer")
        .header(
          "Content-Security-Policy",
          "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
        );
      const path = req.url.split("?")[0]!;
      if (!path.startsWith("/api/") || path === r.session.url || path === r.login.url) return;
      if (!this.authorized(req)) {
        throw new ManagerError(
          "ERR_TOKEN",
          "this dashboard needs its login token (`shoal dashboard token` on a manager prints it)",
        );
      }
    });

    const assets = opts.assets ?? loadAssets().assets;
    for (const [url, a] of assets) {
      app.get(url, async (_req, reply) =>
        reply.type(a.type).header("Cache-Control", "no-cache").send(a.body),
      );
    }

    addRoute(app, r.session, async (_input, reply) => ({
      required: this.requireToken,
      ok: this.authorized(reply.request),
    }));
    addRoute(app, r.login, async ({ body }, reply) => {
      const token = await dashboardToken(m.store);
      if (!tokenMatches(body.token, token))
        throw new ManagerError("ERR_TOKEN", "wrong dashboard token");
      void reply.header("Set-Cookie", sessionCookie(token));
      return { ok: true as const };
    });
    addRoute(app, r.state, async (_input, reply) => {
      const s = this.open(reply, this.stateStreams);
      s.send("state", JSON.stringify(m.store.view((tx) => dashState(tx, this.history))));
    });
    addRoute(app, r.events, async (_input, reply) => {
      const s = this.open(reply, this.eventStreams);
      for (const e of m.events.recent().slice(-HISTORY_AT_CONNECT)) {
        s.send("event", JSON.stringify(e), e.seq);
      }
    });
    addRoute(app, r.scale, async ({ params, body }) => m.scaleService(params.ref, body.replicas));
    addRoute(app, r.rollback, async ({ params }) => m.rollbackService(params.ref));
    addRoute(app, r.availability, async ({ params, body }) =>
      m.updateNode(params.ref, { availability: body.availability }),
    );
    addRoute(app, r.logs, async ({ params, query }) => {
      const tasks = m.store.view((tx) =>
        tx.listTasks({ serviceId: m.findService(tx, params.ref).id }),
      );
      tasks.sort((a, b) => a.slot - b.slot || a.createdAt - b.createdAt);
      const tail = query.tail !== undefined ? Number(query.tail) : 50;
      const lines: string[] = [];
      const ac = new AbortController();
      for (const t of tasks.filter((t) => t.nodeId !== "")) {
        await opts
          .logs(t, { tail, follow: false, signal: ac.signal }, (l) => lines.push(l))
          .catch(() => {}); // a node that cannot answer has no lines to show
      }
      return { lines };
    });
  }

  /** Binds the dashboard; returns the port. */
  async listen(): Promise<number> {
    if (this.requireToken) await dashboardToken(this.manager.store);
    return this.listeners.listenTcp(this.opts.host, this.opts.port);
  }

  /** Where the dashboard is, for the log. */
  url(port: number): string {
    return `http://${joinHostPort(this.opts.host || "0.0.0.0", port)}/`;
  }

  async close(): Promise<void> {
    this.unwatch();
    this.unlisten();
    clearInterval(this.keepalive);
    if (this.flushTimer) clearTimeout(this.flushTimer);
    for (const s of [...this.stateStreams, ...this.eventStreams]) s.res.end();
    await this.listeners.close();
  }

  private authorized(req: FastifyRequest): boolean {
    if (!this.requireToken) return true;
    // Read at each request: a rotated token ends every session at once.
    const token = currentToken(this.manager.store);
    if (!token) return false;
    const auth = req.headers.authorization;
    if (auth?.startsWith("Bearer ") && tokenMatches(auth.slice(7), token)) return true;
    return hasSession(req.headers.cookie, token);
  }

  private open(reply: FastifyReply, set: Set<Stream>): Stream {
    reply.hijack();
    const s = new Stream(reply.raw);
    set.add(s);
    reply.raw.on("close", () => set.delete(s));
    return s;
  }

  private flush(): void {
    this.flushTimer = null;
    if (this.stateStreams.size === 0) return;
    const data = JSON.stringify(this.manager.store.view((tx) => dashState(tx, this.history)));
    for (const s of this.stateStreams) s.send("state", data);
  }

  private sendEvent(e: ClusterEvent): void {
    if (this.eventStreams.size === 0) return;
    const data = JSON.stringify(e);
    for (const s of this.eventStreams) s.send("event", data, e.seq);
  }
}
