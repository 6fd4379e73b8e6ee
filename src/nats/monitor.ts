// HTTP monitoring (nats-server's -m port): /varz, /connz, /subsz, /routez, /healthz with
// nats-server's JSON field names. Each endpoint is a data function (varz(server), ...) kept
// apart from the HTTP handler that serves it, so tests and the CLI can call them directly.

import type { IncomingMessage, Server as HttpServer, ServerResponse } from "node:http";
import { cpus } from "node:os";
import type { Server } from "./server.js";
import type { Client } from "./client.js";
import { hostPort, NATS_VERSION } from "./server.js";
import { monotonicMs } from "../lib/lazy.js";

/** Go's time.Duration.String(): "1h2m3.5s", "311µs", "0s". */
export function goDuration(ms: number): string {
  if (ms === 0) return "0s";
  const ns = Math.round(ms * 1e6);
  if (ns < 1000) return `${ns}ns`;
  if (ns < 1e6) return `${trimFloat(ns / 1e3)}µs`;
  if (ns < 1e9) return `${trimFloat(ns / 1e6)}ms`;
  let s = ns / 1e9;
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  let out = "";
  if (h > 0) out += `${h}h`;
  if (h > 0 || m > 0) out += `${m}m`;
  return out + `${trimFloat(s)}s`;
}

function trimFloat(x: number): string {
  return String(Number(x.toFixed(9)));
}

/** nats-server's uptime format: "1d2h3m4s", "5s". */
export function uptime(ms: number): string {
  let s = Math.floor(ms / 1000);
  const d = Math.floor(s / 86400);
  s -= d * 86400;
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  if (d > 0) return `${d}d${h}h${m}m${s}s`;
  if (h > 0) return `${h}h${m}m${s}s`;
  if (m > 0) return `${m}m${s}s`;
  return `${s}s`;
}

let lastCpu = process.cpuUsage();
let lastCpuAt = monotonicMs();

function cpuPercent(): number {
  const now = monotonicMs();
  const usage = process.cpuUsage();
  const elapsedUs = (now - lastCpuAt) * 1000;
  const used = usage.user - lastCpu.user + (usage.system - lastCpu.system);
  lastCpu = usage;
  lastCpuAt = now;
  return elapsedUs > 0 ? Math.round((used / elapsedUs) * 1000) / 10 : 0;
}

export function varz(s: Server): Record<string, unknown> {
  const o = s.opts;
  const now = new Date();
  const cluster: Record<string, unknown> = {};
  if (o.cluster) {
    cluster["name"] = s.clusterName();
    cluster["addr"] = o.cluster.host;
    cluster["cluster_port"] = s.clusterPort();
    cluster["auth_timeout"] = o.cluster.authTimeoutMs / 1000;
    cluster["urls"] = o.cluster.routes.map((r) => r.replace(/^nats-route:\/\/|^nats:\/\//, ""));
    if (o.cluster.noAdvertise) cluster["no_advertise"] = true;
  }
  return {
    server_id: s.id,
    server_name: s.name,
    version: NATS_VERSION,
    proto: 1,
    go: `node${process.versions.node}`,
    host: o.host,
    port: s.port,
    auth_required: s.authRequired || undefined,
    max_connections: o.maxConnections,
    ping_interval: o.pingIntervalMs * 1e6,
    ping_max: o.pingMax,
    http_host: o.httpHost,
    http_port: s.monitor && !s.monitor.secure ? s.monitor.port : 0,
    http_base_path: "",
    https_port: s.monitor?.secure ? s.monitor.port : 0,
    auth_timeout: o.authTimeoutMs / 1000,
    max_control_line: o.maxControlLine,
    max_payload: o.maxPayload,
    max_pending: o.maxPending,
    cluster,
    gateway: {},
    leaf: {},
    mqtt: {},
    websocket: s.websocket?.varz() ?? {},
    jetstream: {},
    tls_required: s.tls && !o.allowNonTls ? true : undefined,
    tls_verify: s.tls?.cfg.verify || undefined,
    tls_timeout: (s.tls?.cfg.timeoutMs ?? 2000) / 1000,
    write_deadline: o.writeDeadlineMs * 1e6,
    start: s.start.toISOString(),
    now: now.toISOString(),
    uptime: uptime(now.getTime() - s.start.getTime()),
    mem: process.memoryUsage.rss(),
    cores: cpus().length,
    gomaxprocs: 1,
    cpu: cpuPercent(),
    connections: s.clients.size,
    total_connections: s.totalConnections,
    routes: s.numRoutes(),
    remotes: s.numRoutes(),
    leafnodes: 0,
    in_msgs: s.inMsgs,
    out_msgs: s.outMsgs,
    in_bytes: s.inBytes,
    out_bytes: s.outBytes,
    slow_consumers: s.slowConsumers,
    subscriptions: s.sublist.count(),
    http_req_stats: s.monitor ? Object.fromEntries(s.monitor.stats) : {},
    config_load_time: s.configLoadTime.toISOString(),
    // The URLs clients are told about in a cluster (INFO connect_urls).
    connect_urls: s.cluster && !s.cluster.opts.noAdvertise ? s.cluster.connectUrls() : undefined,
    tags: o.serverTags.length > 0 ? o.serverTags : undefined,
  };
}

export interface ConnzOptions {
  sort?: string;
  subs?: boolean | "detail";
  offset?: number;
  limit?: number;
  cid?: number;
  state?: "open" | "closed" | "any";
  auth?: boolean;
  /** Only the connections of this account. */
  acc?: string;
}

const SORTS: Record<string, (a: Client, b: Client) => number> = {
  cid: (a, b) => a.cid - b.cid,
  start: (a, b) => a.start.getTime() - b.start.getTime(),
  subs: (a, b) => b.subs.size - a.subs.size,
  pending: (a, b) =>
    b.out.queued + b.socket.writableLength - (a.out.queued + a.socket.writableLength),
  msgs_to: (a, b) => b.outMsgs - a.outMsgs,
  msgs_from: (a, b) => b.inMsgs - a.inMsgs,
  bytes_to: (a, b) => b.outBytes - a.outBytes,
  bytes_from: (a, b) => b.inBytes - a.inBytes,
  last: (a, b) => b.lastActivity.getTime() - a.lastActivity.getTime(),
  idle: (a, b) => a.lastActivity.getTime() - b.lastActivity.getTime(),
  uptime: (a, b) => a.start.getTime() - b.start.getTime(),
  stop: (a, b) => (b.stopTime?.getTime() ?? 0) - (a.stopTime?.getTime() ?? 0),
  reason: (a, b) => a.closeReason.localeCompare(b.closeReason),
};

export class MonitorError extends Error {
  readonly code = "ERR_MONITOR";
}

export function connz(s: Server, q: ConnzOptions = {}): Record<string, unknown> {
  const state = q.state ?? "open";
  const sortKey = q.sort ?? "cid";
  const cmp = SORTS[sortKey];
  if (!cmp) throw new MonitorError(`Invalid sorting option: ${sortKey}`);
  if ((sortKey === "stop" || sortKey === "reason") && state === "open") {
    throw new MonitorError(`Sort by ${sortKey} only valid on closed connections`);
  }
  let list: Client[] = [];
  if (state !== "closed") list.push(...s.clients.values());
  if (state !== "open") list.push(...s.closed.map((c) => c.client));
  if (q.cid !== undefined) list = list.filter((c) => c.cid === q.cid);
  if (q.acc) list = list.filter((c) => c.acc.name === q.acc);
  list.sort(cmp);
  const offset = Math.max(0, q.offset ?? 0);
  const limit = q.limit && q.limit > 0 ? q.limit : 1024;
  const total = list.length;
  const page = list.slice(offset, offset + limit);
  const now = new Date();
  return {
    server_id: s.id,
    now: now.toISOString(),
    num_connections: page.length,
    total,
    offset,
    limit,
    connections: page.map((c) => connInfo(c, now, q)),
  };
}

function connInfo(c: Client, now: Date, q: ConnzOptions): Record<string, unknown> {
  const end = c.stopTime ?? now;
  const info: Record<string, unknown> = {
    cid: c.cid,
    kind: "Client",
    type: "nats",
    ip: c.host,
    port: c.port,
    start: c.start.toISOString(),
    last_activity: c.lastActivity.toISOString(),
  };
  if (c.stopTime) {
    info["stop"] = c.stopTime.toISOString();
    info["reason"] = c.closeReason;
  }
  Object.assign(info, {
    rtt: goDuration(c.rtt),
    uptime: uptime(end.getTime() - c.start.getTime()),
    idle: uptime(end.getTime() - c.lastActivity.getTime()),
    pending_bytes: c.closed ? 0 : c.out.queued + c.socket.writableLength,
    in_msgs: c.inMsgs,
    out_msgs: c.outMsgs,
    in_bytes: c.inBytes,
    out_bytes: c.outBytes,
    subscriptions: c.subs.size,
  });
  if (c.opts.name) info["name"] = c.opts.name;
  if (c.opts.lang) info["lang"] = c.opts.lang;
  if (c.opts.version) info["version"] = c.opts.version;
  if (q.auth && c.user) info["authorized_user"] = c.user;
  if (q.auth) info["account"] = c.acc.name;
  if (q.subs === "detail") {
    info["subscriptions_list_detail"] = [...c.subs.values()].map((sub) => ({
      subject: sub.subject,
      ...(sub.queue !== null ? { qgroup: sub.queue } : {}),
      sid: sub.sid,
      msgs: sub.delivered,
      ...(sub.max > 0 ? { max: sub.max } : {}),
      cid: c.cid,
    }));
  } else if (q.subs) {
    info["subscriptions_list"] = [...c.subs.values()].map((sub) => sub.subject);
  }
  return info;
}

export function subsz(
  s: Server,
  q: { subs?: boolean; test?: string } = {},
): Record<string, unknown> {
  const st = s.sublist.stats();
  const out: Record<string, unknown> = {
    server_id: s.id,
    now: new Date().toISOString(),
    num_subscriptions: st.numSubs,
    num_cache: st.numCache,
    num_inserts: st.numInserts,
    num_removes: st.numRemoves,
    num_matches: st.numMatches,
    cache_hit_rate: st.cacheHitRate,
    max_fanout: st.maxFanout,
    avg_fanout: st.avgFanout,
  };
  if (q.subs) {
    let subs = s.sublist.all();
    if (q.test) subs = subs.filter((x) => s.subjectMatches(q.test!, x.subject));
    out["total"] = subs.length;
    out["subscriptions_list"] = subs.map((sub) => ({
      subject: sub.subject,
      ...(sub.queue !== null ? { qgroup: sub.queue } : {}),
      sid: sub.sid,
      msgs: sub.delivered,
      ...("cid" in sub.conn ? { cid: (sub.conn as Client).cid } : {}),
    }));
  }
  return out;
}

/** /accountz: the account names, or with `acc` one account's detail (nats-server's shape). */
export function accountz(s: Server, q: { acc?: string } = {}): Record<string, unknown> {
  const out: Record<string, unknown> = {
    server_id: s.id,
    now: new Date().toISOString(),
    system_account: s.opts.systemAccount,
  };
  if (!q.acc) {
    out["accounts"] = [...s.accounts.keys()];
    return out;
  }
  const acc = s.accounts.get(q.acc);
  if (acc === undefined) throw new MonitorError(`Account ${q.acc} does not exist`);
  const st = acc.sublist.stats();
  const detail: Record<string, unknown> = {
    account_name: acc.name,
    update_time: acc.updated.toISOString(),
  };
  if (acc.name === s.opts.systemAccount) detail["is_system"] = true;
  Object.assign(detail, {
    expired: false,
    complete: true,
    jetstream_enabled: false,
    leafnode_connections: 0,
    client_connections: [...s.clients.values()].filter((c) => c.acc === acc).length,
    subscriptions: st.numSubs,
  });
  const { exports, imports } = acc.config;
  if (exports.length > 0) {
    detail["exports"] = exports.map((e) => ({
      subject: e.subject,
      type: e.kind,
      ...(e.kind === "service" ? { response_type: "Singleton" } : {}),
      ...(e.tokenReq ? { token_req: true } : {}),
      ...(e.accounts.length > 0 ? { approved_accounts: e.accounts } : {}),
    }));
  }
  if (imports.length > 0) {
    detail["imports"] = imports
      .map((i) =>
        i.kind === "stream"
          ? { subject: i.subject, account: i.account, local_subject: i.to, type: "stream" }
          : { subject: i.to, account: i.account, to: i.subject, type: "service" },
      )
      .map((i) => ({ ...i, invalid: false, share: false, tracking: false }));
  }
  detail["sublist_stats"] = {
    num_subscriptions: st.numSubs,
    num_cache: st.numCache,
    num_inserts: st.numInserts,
    num_removes: st.numRemoves,
    num_matches: st.numMatches,
    cache_hit_rate: st.cacheHitRate,
    max_fanout: st.maxFanout,
    avg_fanout: st.avgFanout,
  };
  out["account_detail"] = detail;
  return out;
}

export function routez(s: Server, q: { subs?: boolean } = {}): Record<string, unknown> {
  const routes = s.routeInfos(q.subs ?? false);
  return {
    server_id: s.id,
    now: new Date().toISOString(),
    num_routes: routes.length,
    routes,
  };
}

export function healthz(s: Server): { status: string; error?: string } {
  return s.lameDuck ? { status: "unavailable", error: "lame duck mode" } : { status: "ok" };
}

function flag(v: string | null): boolean {
  return v === "1" || v === "true";
}

function intParam(u: URLSearchParams, key: string): number | undefined {
  const v = u.get(key);
  if (v === null || v === "") return undefined;
  const n = Number(v);
  if (!Number.isInteger(n)) throw new MonitorError(`invalid value for ${key}: ${v}`);
  return n;
}

export class Monitor {
  readonly stats = new Map<string, number>();
  private http: HttpServer | null = null;
  port = 0;

  constructor(private readonly server: Server) {}

  /** Served over https (https_port, with the client tls certificate). */
  get secure(): boolean {
    return this.server.opts.httpsPort !== 0;
  }

  async listen(): Promise<void> {
    const o = this.server.opts;
    const tls = this.server.tls;
    const handler = (req: IncomingMessage, res: ServerResponse) => this.handle(req, res);
    const secure = this.secure && tls !== null;
    const http = secure
      ? // node:http(s) loaded when first used: a server without -m does without them.
        process
          .getBuiltinModule("node:https")
          .createServer({ cert: tls.cert, key: tls.key }, handler)
      : process.getBuiltinModule("node:http").createServer(handler);
    this.http = http;
    const want = secure ? o.httpsPort : o.httpPort;
    await new Promise<void>((resolve, reject) => {
      http.once("error", reject);
      http.listen({ host: o.httpHost, port: want < 0 ? 0 : want }, () => {
        http.off("error", reject);
        resolve();
      });
    });
    const addr = http.address();
    this.port = typeof addr === "object" && addr !== null ? addr.port : want;
    const scheme = secure ? "https" : "http";
    this.server.log.info(`Starting ${scheme} monitor on ${hostPort(o.httpHost, this.port)}`);
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? "/", "http://localhost");
    const path = url.pathname.replace(/\/$/, "") || "/";
    const q = url.searchParams;
    const s = this.server;
    let body: unknown;
    let status = 200;
    try {
      switch (path) {
        case "/varz":
          body = varz(s);
          break;
        case "/connz": {
          const subs = q.get("subs");
          body = connz(s, {
            sort: q.get("sort") ?? undefined,
            subs: subs === "detail" ? "detail" : flag(subs),
            offset: intParam(q, "offset"),
            limit: intParam(q, "limit"),
            cid: intParam(q, "cid"),
            state: (q.get("state") as ConnzOptions["state"]) ?? undefined,
            auth: flag(q.get("auth")),
            acc: q.get("acc") ?? undefined,
          });
          break;
        }
        case "/accountz":
          body = accountz(s, { acc: q.get("acc") ?? undefined });
          break;
        case "/subsz":
        case "/subscriptionsz":
          body = subsz(s, { subs: flag(q.get("subs")), test: q.get("test") ?? undefined });
          break;
        case "/routez":
          body = routez(s, { subs: flag(q.get("subs")) });
          break;
        case "/healthz": {
          const h = healthz(s);
          if (h.status !== "ok") status = 503;
          body = h;
          break;
        }
        case "/":
          res.writeHead(200, { "Content-Type": "text/html" });
          res.end(
            `<html><body><h1>shoal nats-server</h1><ul>` +
              ["varz", "connz", "routez", "subsz", "accountz", "healthz"]
                .map((e) => `<li><a href="/${e}">${e}</a></li>`)
                .join("") +
              `</ul></body></html>`,
          );
          return;
        default:
          res.writeHead(404, { "Content-Type": "text/plain" });
          res.end("404 page not found\n");
          return;
      }
      this.stats.set(path, (this.stats.get(path) ?? 0) + 1);
    } catch (err) {
      status = 400;
      body = { error: (err as Error).message };
    }
    const json = JSON.stringify(body, null, 2);
    const cb = q.get("callback");
    res.writeHead(status, {
      "Content-Type": cb ? "application/javascript" : "application/json",
      "Access-Control-Allow-Origin": "*",
    });
    res.end(cb ? `${cb}(${json})` : json);
  }

  async close(): Promise<void> {
    const h = this.http;
    this.http = null;
    if (h) {
      h.closeAllConnections();
      await new Promise<void>((r) => h.close(() => r()));
    }
  }
}
