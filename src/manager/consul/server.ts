// The Consul-compatible HTTP API a manager serves (`--consul-addr`, default :8500): the subset of
// Consul's API that consul-template, Prometheus' consul_sd_configs and Traefik's consulcatalog
// provider call, in Consul's words — JSON field names, plain-text errors and status codes, and
// the headers its Go client insists on, on every answer: X-Consul-Index, X-Consul-KnownLeader:
// true, X-Consul-LastContact: 0.
//
//   GET    /v1/catalog/nodes | /v1/catalog/services | /v1/catalog/service/<name>[?tag=T]
//   GET    /v1/health/service/<name>[?passing][&tag=T] | /v1/health/state/<any|passing|warning|critical>
//   GET    /v1/agent/self | /v1/status/leader | /v1/status/peers
//   PUT    /v1/agent/service/register | /v1/agent/service/deregister/<id>
//   GET    /v1/kv/<key>[?recurse][?raw][?keys[&separator=/]]
//   PUT    /v1/kv/<key>[?flags=N][?cas=N]       (body: the value, at most 512 KiB) → true|false
//   DELETE /v1/kv/<key>[?recurse][?cas=N]                                          → true|false
//
// Every GET takes ?index=N&wait=D (blocking.ts): it answers once the index passes N, or after D
// (default 5m, at most 10m). ?dc, ?stale and ?consistent are accepted and change nothing (one
// datacenter, one store).

import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from "fastify";
import type { Store } from "../../store/store.js";
import type { Logger } from "../../lib/log.js";
import { parseGoDuration } from "../../lib/duration.js";
import { joinHostPort } from "../../lib/addr.js";
import { SHOAL_VERSION } from "../../lib/version.js";
import { problems } from "../../api/schema.js";
import {
  AgentServiceRegisterSchema,
  EXTERNAL_SERVICES_META,
  KV_MAX_VALUE_SIZE,
  type AgentServiceRegister,
  type ExternalService,
} from "../../api/consul.js";
import { HttpListeners } from "../http.js";
import { ConsulError } from "./errors.js";
import { ConsulIndexes, DEFAULT_WAIT_MS, MAX_WAIT_MS } from "./blocking.js";
import {
  CHECK_STATES,
  DATACENTER,
  catalogNodes,
  catalogService,
  catalogServices,
  healthService,
  healthState,
  type CheckState,
  type ServiceFilter,
} from "./catalog.js";
import { kvDelete, kvGet, kvPair, kvPut, listKeys } from "./kv.js";

export interface ConsulServerOptions {
  /** The manager's node: the agent's node, where registered services live. */
  nodeId: string;
  /** The manager's address (agent/self, status/leader). */
  advertiseHost: () => string;
  log: Logger;
}

/** The Consul version the agent endpoint reports (the API generation this subset follows). */
export const CONSUL_API_VERSION = "1.15.0";

type Query = Record<string, string | string[] | undefined>;

function last(q: Query, k: string): string | undefined {
  const v = q[k];
  return Array.isArray(v) ? v[v.length - 1] : v;
}

function every(q: Query, k: string): string[] {
  const v = q[k];
  return v === undefined ? [] : Array.isArray(v) ? v : [v];
}

/** A flag like ?recurse or ?passing: present, and not "false"/"0". */
function flag(q: Query, k: string): boolean {
  const v = last(q, k);
  return v !== undefined && v !== "false" && v !== "0";
}

function uint(q: Query, k: string, bad: string): number | undefined {
  const v = last(q, k);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!/^\d+$/.test(v) || !Number.isSafeInteger(n)) {
    throw new ConsulError("ERR_CONSUL_BAD_REQUEST", bad);
  }
  return n;
}

const bad = (msg: string) => new ConsulError("ERR_CONSUL_BAD_REQUEST", msg);

export class ConsulServer {
  readonly indexes: ConsulIndexes;
  private readonly app: FastifyInstance;
  private readonly listeners: HttpListeners;

  constructor(
    private readonly store: Store,
    private readonly opts: ConsulServerOptions,
  ) {
    this.indexes = new ConsulIndexes(store);
    // Bodies up to twice the limit are read whole and refused by the handler (a client still
    // sending when the answer comes would see the connection reset); larger ones by fastify.
    this.app = Fastify({ bodyLimit: 2 * KV_MAX_VALUE_SIZE });
    this.listeners = new HttpListeners(this.app);
    this.routes();
  }

  /** Serves on host:port (0: a free port); returns the port. Fails naming the address. */
  async listen(host: string, port: number): Promise<number> {
    try {
      return await this.listeners.listenTcp(host, port);
    } catch (err) {
      throw new ConsulError(
        "ERR_CONSUL_LISTEN",
        `consul: cannot listen on ${joinHostPort(host, port)}: ${(err as Error).message}`,
        { cause: err },
      );
    }
  }

  async close(): Promise<void> {
    this.indexes.close();
    await this.listeners.close();
  }

  // ---- plumbing ---------------------------------------------------------------------------------

  /** Waits as the request's ?index and ?wait say, on `index`. */
  private async block(req: FastifyRequest, reply: FastifyReply, index: () => number) {
    const q = req.query as Query;
    const after = uint(q, "index", "Invalid index") ?? 0;
    let waitMs = DEFAULT_WAIT_MS;
    const w = last(q, "wait");
    if (w !== undefined) {
      const ms = parseGoDuration(w);
      if (ms === undefined || ms < 0) throw bad("Invalid wait time");
      waitMs = Math.min(ms, MAX_WAIT_MS);
    }
    const gone = new AbortController();
    const onClose = () => gone.abort();
    reply.raw.once("close", onClose);
    try {
      await this.indexes.block(index, after, waitMs, gone.signal);
    } finally {
      reply.raw.off("close", onClose);
    }
    void reply.header("X-Consul-Index", String(index()));
  }

  private routes(): void {
    const app = this.app;
    // Every body is bytes (a KV value is whatever the client sends); JSON bodies are parsed by
    // their handler, with Consul's error text.
    app.removeAllContentTypeParsers();
    app.addContentTypeParser("*", { parseAs: "buffer" }, (_req, body, done) => done(null, body));
    app.addHook("onSend", async (_req, reply, payload) => {
      void reply.header("X-Consul-KnownLeader", "true");
      void reply.header("X-Consul-LastContact", "0");
      if (!reply.hasHeader("X-Consul-Index")) {
        void reply.header("X-Consul-Index", String(this.indexes.any()));
      }
      return payload;
    });
    app.setNotFoundHandler((_req, reply) => {
      void reply.code(404).type("text/plain; charset=utf-8").send("404 page not found\n");
    });
    app.setErrorHandler((err: unknown, req, reply) => {
      let status = 500;
      let text = err instanceof Error ? err.message : String(err);
      if (err instanceof ConsulError) status = err.status;
      else if ((err as { code?: unknown }).code === "FST_ERR_CTP_BODY_TOO_LARGE") {
        status = 413;
        text = `Value exceeds ${KV_MAX_VALUE_SIZE} byte limit`;
      } else {
        const s = (err as { statusCode?: unknown }).statusCode;
        if (typeof s === "number" && s >= 400 && s < 500) status = s;
        else this.opts.log.error(`${req.method} ${req.url}: ${(err as Error)?.stack ?? text}`);
      }
      void reply.code(status).type("text/plain; charset=utf-8").send(text);
    });

    // ---- catalog and health ----
    const ix = this.indexes;
    app.get("/v1/catalog/nodes", async (req, reply) => {
      await this.block(req, reply, () => ix.nodes());
      return catalogNodes(ix.current(), ix);
    });
    app.get("/v1/catalog/services", async (req, reply) => {
      await this.block(req, reply, () => ix.services());
      return catalogServices(ix.current());
    });
    app.get<{ Params: { name: string } }>("/v1/catalog/service/:name", async (req, reply) => {
      const name = req.params.name;
      await this.block(req, reply, () => ix.service(name));
      return catalogService(ix.current(), name, this.filter(req), ix);
    });
    app.get<{ Params: { name: string } }>("/v1/health/service/:name", async (req, reply) => {
      const name = req.params.name;
      await this.block(req, reply, () => ix.service(name));
      return healthService(ix.current(), name, this.filter(req), ix);
    });
    app.get<{ Params: { state: string } }>("/v1/health/state/:state", async (req, reply) => {
      const state = req.params.state;
      if (!(CHECK_STATES as readonly string[]).includes(state)) throw bad("Bad check state");
      await this.block(req, reply, () => ix.any());
      return healthState(ix.current(), state as CheckState, ix);
    });

    // ---- agent and status ----
    app.get("/v1/agent/self", async () => {
      const c = ix.current();
      const name = c.names.get(this.opts.nodeId) ?? this.opts.nodeId;
      const addr = this.opts.advertiseHost();
      return {
        Config: {
          Datacenter: DATACENTER,
          PrimaryDatacenter: DATACENTER,
          NodeName: name,
          NodeID: this.opts.nodeId,
          Server: true,
          Version: CONSUL_API_VERSION,
          Revision: "",
          Shoal: SHOAL_VERSION,
        },
        Member: {
          Name: name,
          Addr: addr,
          Port: 8301,
          Tags: { dc: DATACENTER, role: "consul", build: CONSUL_API_VERSION },
          Status: 1,
        },
        Meta: {},
      };
    });
    app.get("/v1/status/leader", async (_req, reply) =>
      reply.type("application/json").send(JSON.stringify(this.leader())),
    );
    app.get("/v1/status/peers", async () => [this.leader()]);
    app.put("/v1/agent/service/register", async (req) => {
      const reg = this.registration(req.body);
      const id = reg.ID || reg.Name;
      await this.store.update((tx) => {
        const all = {
          ...(tx.getMeta<Record<string, ExternalService>>(EXTERNAL_SERVICES_META) ?? {}),
        };
        all[id] = {
          id,
          name: reg.Name,
          tags: reg.Tags ?? [],
          address: reg.Address ?? "",
          port: reg.Port ?? 0,
          meta: reg.Meta ?? {},
          nodeId: this.opts.nodeId,
          createIndex: all[id]?.createIndex ?? tx.revision(),
        };
        tx.putMeta(EXTERNAL_SERVICES_META, all);
      });
      return "";
    });
    app.put<{ Params: { id: string } }>("/v1/agent/service/deregister/:id", async (req) => {
      const id = req.params.id;
      const found = await this.store.update((tx) => {
        const all = {
          ...(tx.getMeta<Record<string, ExternalService>>(EXTERNAL_SERVICES_META) ?? {}),
        };
        if (all[id] === undefined) return false;
        delete all[id];
        tx.putMeta(EXTERNAL_SERVICES_META, all);
        return true;
      });
      if (!found) {
        throw new ConsulError(
          "ERR_CONSUL_NOT_FOUND",
          `Unknown service ID "${id}". Ensure that the service ID is passed, not the service name.`,
        );
      }
      return "";
    });

    // ---- KV ----
    app.get<{ Params: { "*": string } }>("/v1/kv/*", async (req, reply) => {
      const key = req.params["*"];
      const q = req.query as Query;
      if (last(q, "keys") !== undefined) {
        const sep = last(q, "separator") ?? last(q, "seperator") ?? "";
        await this.block(req, reply, () => ix.kv);
        const keys = listKeys(
          this.store.view((tx) => tx.listKv(key).map((e) => e.key)),
          key,
          sep,
        );
        if (keys.length === 0 && key !== "") return reply.code(404).send("");
        return keys;
      }
      const recurse = last(q, "recurse") !== undefined;
      if (!recurse && key === "") throw bad("Missing key name");
      await this.block(req, reply, () => ix.kv);
      const entries = this.store.view((tx) => kvGet(tx, { key, recurse }));
      if (entries.length === 0) return reply.code(404).send("");
      if (last(q, "raw") !== undefined && !recurse) {
        return reply
          .type("application/octet-stream")
          .send(Buffer.from(entries[0]!.value, "base64"));
      }
      return entries.map(kvPair);
    });
    app.put<{ Params: { "*": string } }>("/v1/kv/*", async (req, reply) => {
      const key = req.params["*"];
      const q = req.query as Query;
      if (key === "") throw bad("Missing key name");
      if (last(q, "acquire") !== undefined || last(q, "release") !== undefined) {
        throw bad("sessions are not supported: ?acquire and ?release cannot be used");
      }
      const flags = uint(q, "flags", "Invalid flags");
      const cas = uint(q, "cas", "Invalid CAS index");
      const body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
      if (body.length > KV_MAX_VALUE_SIZE) {
        throw new ConsulError(
          "ERR_CONSUL_TOO_LARGE",
          `Value exceeds ${KV_MAX_VALUE_SIZE} byte limit`,
        );
      }
      const value = body.toString("base64");
      const ok = await this.store.update((tx) =>
        kvPut(tx, key, value, {
          ...(flags !== undefined ? { flags } : {}),
          ...(cas !== undefined ? { cas } : {}),
        }),
      );
      void reply.header("X-Consul-Index", String(ix.kv));
      return ok;
    });
    app.delete<{ Params: { "*": string } }>("/v1/kv/*", async (req, reply) => {
      const key = req.params["*"];
      const q = req.query as Query;
      const recurse = last(q, "recurse") !== undefined;
      const casGiven = last(q, "cas") !== undefined;
      if (recurse && casGiven) {
        throw bad(`Conflicting flags: ${new URLSearchParams(req.url.split("?")[1] ?? "")}`);
      }
      if (!recurse && key === "") throw bad("Missing key name");
      const cas = uint(q, "cas", "Invalid CAS index");
      const ok = await this.store.update((tx) =>
        kvDelete(tx, key, { recurse, ...(cas !== undefined ? { cas } : {}) }),
      );
      void reply.header("X-Consul-Index", String(ix.kv));
      return ok;
    });
  }

  private filter(req: FastifyRequest): ServiceFilter {
    const q = req.query as Query;
    return { tags: every(q, "tag"), passing: flag(q, "passing") };
  }

  private leader(): string {
    return joinHostPort(this.opts.advertiseHost(), 8300);
  }

  /** The register body, checked as Consul checks it. */
  private registration(body: unknown): AgentServiceRegister {
    let v: unknown;
    try {
      v = JSON.parse(Buffer.isBuffer(body) ? body.toString("utf8") : "");
    } catch (err) {
      throw bad(`Request decode failed: ${(err as Error).message}`);
    }
    const name = (v as { Name?: unknown } | null)?.Name;
    if (typeof name !== "string" || name === "") throw bad("Missing service name");
    const errs = problems(AgentServiceRegisterSchema, v, "", "body");
    if (errs.length > 0) throw bad(`Request decode failed: ${errs.join("; ")}`);
    return v as AgentServiceRegister;
  }
}
