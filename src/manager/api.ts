// The manager's HTTP JSON API (what the CLI and, later, the dashboard use), on fastify. It
// listens on a unix socket by default and on TCP on request. The routes and their schemas are
// the contract's (src/api/http.ts): a request is checked against them before a handler runs, so a
// bad one gets 400 naming the field and changes nothing. Every error is JSON
// `{ "message", "code" }` with a status derived from the error code. docs/api.md is generated
// from the route schemas (`npm run docs:api`).

import type { IncomingMessage } from "node:http";
import type { Server as TlsServer } from "node:https";
import type { SecureContextOptions } from "node:tls";
import type { FastifyInstance } from "fastify";
import type { Manager } from "./manager.js";
import { addRoute, createHttpApp, HttpListeners } from "./http.js";
import {
  apiRoutes as r,
  type ErrorBody,
  type Info,
  type ServiceSummary,
  type TaskStatsRow,
} from "../api/http.js";
import { isTerminal, replicasOf, type Node, type ServiceSpec, type Task } from "../api/types.js";
import type { TaskFigures } from "./metrics-book.js";
import { findNetwork, inspectNetwork, predefinedNetworks } from "./networks.js";
import { findFile, infoOf } from "./secrets.js";
import { streamEvents } from "./events/stream.js";
import type { EventCredentials } from "../api/events.js";
import { ManagerError } from "./errors.js";
import { rotateCa, swarmCa } from "./ca-rotation.js";
import { dashboardToken } from "./dashboard/token.js";

export interface ApiHooks {
  info(): Info;
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
  /** The events user's credentials on the bus (absent: the API has no bus). */
  eventCredentials?(): EventCredentials;
  /**
   * Several managers: a write to send to the leader. Resolves with the leader's answer, or null
   * when this manager leads (it handles the request itself); throws when none leads.
   */
  forward?(req: { method: string; url: string; body?: unknown }): Promise<{
    status: number;
    contentType: string;
    body: string;
  } | null>;
  /** Whether a request writes (is forwarded to the leader); default: none is. */
  isWrite?(method: string, url: string): boolean;
}

/** The header a forwarded request carries, so the leader never forwards it again. */
export const FORWARDED_HEADER = "x-shoal-forwarded";

export class Api {
  readonly app: FastifyInstance;
  private readonly listeners: HttpListeners;

  constructor(manager: Manager, hooks: ApiHooks) {
    const m = manager;
    const app = createHttpApp(m.log);
    this.app = app;
    this.listeners = new HttpListeners(app);
    const allTasks = () => m.store.view((tx) => tx.listTasks());
    const { forward, isWrite } = hooks;
    if (forward && isWrite) {
      // A follower's writes go to the leader, after the body parsed (its own schema checks run
      // at the leader, which answers as a local call would).
      app.addHook("preValidation", async (req, reply) => {
        if (req.headers[FORWARDED_HEADER] || !isWrite(req.method, req.url)) return;
        const res = await forward({ method: req.method, url: req.url, body: req.body });
        if (!res) return;
        return reply.code(res.status).type(res.contentType).send(res.body);
      });
    }

    addRoute(app, r.info, async () => hooks.info());
    addRoute(app, r.listNodes, async () => m.store.view((tx) => tx.listNodes()));
    addRoute(app, r.getNode, async ({ params }) =>
      m.store.view((tx) => m.findNode(tx, params.ref)),
    );
    addRoute(app, r.updateNode, async ({ params, body }) => m.updateNode(params.ref, body));
    addRoute(app, r.removeNode, async ({ params, query }) =>
      m.removeNode(params.ref, query.force === "1"),
    );
    addRoute(app, r.listServices, async () => {
      const { services, tasks } = m.store.view((tx) => ({
        services: tx.listServices(),
        tasks: tx.listTasks(),
      }));
      return services.map((s) => summary(s.id, s, tasks));
    });
    addRoute(app, r.createService, async ({ body }) => {
      await hooks.checkPortsFree(body.spec, "");
      return m.createService(body.spec);
    });
    addRoute(app, r.getService, async ({ params }) => {
      const s = m.store.view((tx) => m.findService(tx, params.ref));
      return summary(s.id, s, allTasks());
    });
    addRoute(app, r.updateService, async ({ params, body }) => {
      const cur = m.store.view((tx) => m.findService(tx, params.ref));
      await hooks.checkPortsFree(body.spec, cur.id);
      return m.updateService(params.ref, () => body.spec);
    });
    addRoute(app, r.rollbackService, async ({ params }) => m.rollbackService(params.ref));
    addRoute(app, r.scaleService, async ({ params, body }) =>
      m.scaleService(params.ref, body.replicas),
    );
    addRoute(app, r.removeService, async ({ params }) => m.removeService(params.ref));
    addRoute(app, r.serviceLogs, async ({ params, query }, reply) => {
      const tasks = m.store.view((tx) =>
        tx.listTasks({ serviceId: m.findService(tx, params.ref).id }),
      );
      const tail = query.tail === undefined || query.tail === "all" ? -1 : Number(query.tail);
      const follow = query.follow === "1";
      // From here on the reply is a text stream written by hand.
      reply.hijack();
      const res = reply.raw;
      const ac = new AbortController();
      res.on("close", () => ac.abort());
      res.writeHead(200, { "Content-Type": "text/plain; charset=utf-8" });
      tasks.sort((a, b) => a.slot - b.slot || a.createdAt - b.createdAt);
      await Promise.all(
        tasks.map((t) =>
          hooks
            .logs(t, { tail, follow, signal: ac.signal }, (line) => res.write(line + "\n"))
            .catch(() => {}),
        ),
      );
      res.end();
    });
    addRoute(app, r.listNetworks, async () =>
      m.store.view((tx) => [
        ...predefinedNetworks(tx),
        ...tx
          .listNetworks()
          .sort((a, b) => a.createdAt - b.createdAt || a.name.localeCompare(b.name))
          .map((n) => inspectNetwork(n)),
      ]),
    );
    addRoute(app, r.createNetwork, async ({ body }) => m.createNetwork(body));
    addRoute(app, r.getNetwork, async ({ params }) =>
      m.store.view((tx) => {
        const pre = predefinedNetworks(tx).find(
          (n) => n.Name === params.ref || n.Id === params.ref,
        );
        if (pre) return pre;
        const n = findNetwork(tx, params.ref);
        return inspectNetwork(n, { tasks: tx.listTasks(), nodes: tx.listNodes() });
      }),
    );
    addRoute(app, r.removeNetwork, async ({ params }) => m.removeNetwork(params.ref));
    const byName = (a: { name: string }, b: { name: string }) => a.name.localeCompare(b.name);
    addRoute(app, r.listSecrets, async () =>
      m.store.view((tx) => tx.listSecrets().sort(byName).map(infoOf)),
    );
    addRoute(app, r.createSecret, async ({ body }) => infoOf(await m.createFile("secret", body)));
    addRoute(app, r.getSecret, async ({ params }) =>
      m.store.view((tx) => infoOf(findFile(tx, "secret", params.ref))),
    );
    addRoute(app, r.removeSecret, async ({ params }) =>
      infoOf(await m.removeFile("secret", params.ref)),
    );
    addRoute(app, r.listConfigs, async () =>
      m.store.view((tx) => tx.listConfigs().sort(byName).map(infoOf)),
    );
    addRoute(app, r.createConfig, async ({ body }) => infoOf(await m.createFile("config", body)));
    addRoute(app, r.getConfig, async ({ params }) =>
      m.store.view((tx) => findFile(tx, "config", params.ref)),
    );
    addRoute(app, r.removeConfig, async ({ params }) =>
      infoOf(await m.removeFile("config", params.ref)),
    );
    addRoute(app, r.listTasks, async ({ query }) =>
      m.store.view((tx) => {
        if (!query.service) return tx.listTasks();
        const s = m.findService(tx, query.service);
        return tx.listTasks({ serviceId: s.id });
      }),
    );
    addRoute(app, r.events, async ({ query }, reply) => {
      const open = streamEvents(m.events, query); // a bad query throws here: a 400
      reply.hijack();
      open(reply.raw);
    });
    addRoute(app, r.eventCredentials, async () => {
      if (!hooks.eventCredentials) {
        throw new ManagerError("ERR_UNSUPPORTED", "this API serves no message bus");
      }
      return hooks.eventCredentials();
    });
    addRoute(app, r.taskStats, async ({ query }) =>
      m.store.view((tx) => {
        const figures = query.service
          ? m.metrics.forService(m.findService(tx, query.service).id)
          : m.metrics.all();
        return figures.map((f) => taskStatsRow(f, tx.getTask(f.taskId), tx.getNode(f.nodeId)));
      }),
    );
    addRoute(app, r.joinToken, async ({ params, query }) => ({
      token: await hooks.joinToken(params.role, query.rotate === "1"),
    }));
    addRoute(app, r.dashboardToken, async ({ query }) => ({
      token: await dashboardToken(m.store, query.rotate === "1"),
    }));
    addRoute(app, r.updateSwarm, async ({ body }) => m.updateSwarm(body));
    addRoute(app, r.swarmCa, async () => m.store.view(swarmCa));
    addRoute(app, r.rotateCa, async ({ body }) => rotateCa(m.store, new Date(), body));
    addRoute(app, r.leave, async ({ query }) => {
      await hooks.leave(query.force === "1");
      return { ok: true as const };
    });
  }

  listenUnix(path: string): Promise<void> {
    return this.listeners.listenUnix(path);
  }

  listenTcp(host: string, port: number): Promise<number> {
    return this.listeners.listenTcp(host, port);
  }

  /** The API on TCP with mutual TLS: `authorize` decides who may call it (api-tls.ts). */
  listenTls(
    host: string,
    port: number,
    tls: SecureContextOptions & { requestCert?: boolean },
    authorize: (req: IncomingMessage) => { status: number; body: ErrorBody } | null,
  ): Promise<TlsServer> {
    return this.listeners.listenTls(host, port, tls, authorize);
  }

  close(): Promise<void> {
    return this.listeners.close();
  }
}

/** `service scale`: the spec with another replica count (replicated services only). */
/** A service with its task counts (REPLICAS running/desired, as Swarm counts them). */
export function summary<S extends { spec: ServiceSpec }>(
  id: string,
  s: S,
  tasks: Task[],
): S & Pick<ServiceSummary, "running" | "desired"> {
  const mine = tasks.filter((t) => t.serviceId === id);
  const running = mine.filter((t) => t.status.state === "running").length;
  const desiredGlobal = mine.filter(
    (t) => !isTerminal(t.status.state) && t.desiredState === "running",
  ).length;
  return { ...s, running, desired: replicasOf(s.spec) ?? desiredGlobal };
}

/** A task's figures as `GET /v1/tasks/stats` gives them. */
function taskStatsRow(f: TaskFigures, t: Task | undefined, n: Node | undefined): TaskStatsRow {
  const { nodeId, serviceId, serviceName, ...stats } = f;
  const slot = t && t.slot > 0 ? String(t.slot) : nodeId;
  return {
    ...stats,
    name: `${serviceName}.${slot}.${f.taskId}`,
    serviceId,
    serviceName,
    nodeId,
    node: n?.hostname ?? nodeId,
    nodeMemoryBytes: n?.resources.memoryBytes ?? 0,
  };
}
