// `shoal daemon`: the composition root. One process per machine runs the embedded message
// server (the control bus), the store and manager (on managers), the agent with its drivers, the
// routing mesh for published ports, and the HTTP API the CLI talks to.

import { hostname } from "node:os";
import { join } from "node:path";
import { mkdirSync, writeFileSync, rmSync, readFileSync, existsSync } from "node:fs";
import { createServer as createNetServer } from "node:net";
import { Server as NatsServer } from "../nats/server.js";
import { defaultOptions, validateOptions } from "../nats/options.js";
import { ServerLogger, type Logger } from "../nats/log.js";
import { openEmbeddedStore } from "../store/embedded.js";
import type { Store } from "../store/store.js";
import { Manager, defaultManagerOptions } from "../manager/manager.js";
import { Api } from "../manager/api.js";
import { Dispatcher, endpointsOf } from "../manager/dispatcher.js";
import { JoinServer, type ClusterMeta } from "../manager/join.js";
import { APP_USER } from "../api/bus.js";
import { busUsers } from "../manager/bus-users.js";
import { ManagerError } from "../manager/errors.js";
import { makeToken, newId, newSecret } from "../manager/ids.js";
import { isTerminal, type Node, type ServiceSpec, type Task } from "../api/types.js";
import { Agent } from "../node/agent.js";
import { nodeDrivers } from "./drivers.js";
import { readLogs } from "../node/drivers/logs.js";
import { RoutingMesh, type Backend } from "../net/mesh.js";
import { SHOAL_VERSION } from "../lib/version.js";
import { socketPath } from "../api/paths.js";

export interface DaemonOptions {
  dataDir: string;
  /** Address the join listener binds (Swarm's --listen-addr, default 0.0.0.0:2377). */
  listenAddr: string;
  /** Address other nodes reach this one on. */
  advertiseAddr: string;
  /** Client port of the embedded message server (-1 = random). */
  natsPort: number;
  /** Also serve the API on TCP host:port ("" = unix socket only). */
  apiTcp: string;
  /** Bind address of published ports. */
  publishHost: string;
  log: Logger;
}

function hostPort(h: string): string {
  return h.includes(":") ? `[${h}]` : h;
}

function hostOf(addr: string): string {
  const i = addr.lastIndexOf(":");
  return i > 0 ? addr.slice(0, i) : addr;
}

export class Daemon {
  store!: Store;
  manager!: Manager;
  agent!: Agent;
  nats!: NatsServer;
  api!: Api;
  dispatcher!: Dispatcher;
  joinPort = 0;
  join!: JoinServer;
  mesh!: RoutingMesh;
  nodeId = "";
  private timers: NodeJS.Timeout[] = [];
  private unwatch: (() => void) | null = null;
  private stopping = false;
  readonly done: Promise<void>;
  private resolveDone!: () => void;

  constructor(readonly opts: DaemonOptions) {
    this.done = new Promise((r) => (this.resolveDone = r));
  }

  async start(): Promise<void> {
    const { dataDir, log } = this.opts;
    mkdirSync(dataDir, { recursive: true });
    this.store = await openEmbeddedStore(join(dataDir, "store"), {
      onWarning: (msg: string) => log.warn(`store: ${msg}`),
    });
    const idFile = join(dataDir, "node-id");
    this.nodeId = existsSync(idFile) ? readFileSync(idFile, "utf8").trim() : newId();
    writeFileSync(idFile, this.nodeId);
    const now = Date.now();
    const drivers = await nodeDrivers(log);
    await this.store.update((tx) => {
      if (!tx.getMeta<ClusterMeta>("cluster")) {
        tx.putMeta("cluster", {
          secret: newSecret(),
          workerSecret: newSecret(),
          managerSecret: newSecret(),
          createdAt: now,
        });
      }
      const cur = tx.getNode(this.nodeId);
      const node: Node = {
        id: this.nodeId,
        hostname: hostname(),
        role: "manager",
        availability: cur?.availability ?? "active",
        status: "ready",
        addr: hostOf(this.opts.advertiseAddr),
        labels: cur?.labels ?? {},
        resources: { nanoCpus: 0, memoryBytes: 0 },
        engineVersion: SHOAL_VERSION,
        drivers: drivers.names,
        lastSeen: now,
        createdAt: cur?.createdAt ?? now,
        updatedAt: now,
      };
      tx.putNode(node);
    });

    const meta = this.store.view((tx) => tx.getMeta<ClusterMeta>("cluster"))!;
    // The control bus: reachable where joins are (other nodes' agents connect to it), with the
    // agent user for $SHOAL.> and applications as the default user, kept out of $SHOAL.>.
    const natsOpts = validateOptions({
      ...defaultOptions(),
      host: hostOf(this.opts.listenAddr) || "0.0.0.0",
      port: this.opts.natsPort,
      serverName: `shoal-${this.nodeId.slice(0, 12)}`,
      users: busUsers(meta.secret),
      noAuthUser: APP_USER,
    });
    this.nats = new NatsServer(natsOpts, log.debugEnabled ? log : quiet(log));
    await this.nats.startServer();

    this.manager = new Manager(this.store, log, defaultManagerOptions());
    this.dispatcher = new Dispatcher(this.manager, this.nodeId, {
      natsUrl: `${this.localNatsUrl()}`,
      clusterSecret: meta.secret,
    });
    this.join = new JoinServer(
      this.manager,
      () => [`nats://${hostOf(this.opts.advertiseAddr)}:${this.nats.port}`],
      () => this.manager.heartbeatMs(),
    );
    const joinPort = Number(this.opts.listenAddr.split(":").pop());
    const joinHost = hostOf(this.opts.listenAddr) || "0.0.0.0";
    this.joinPort = await this.join.listen(joinHost, joinPort);
    log.info(`Listening for joins on ${joinHost}:${this.joinPort}`);
    this.agent = new Agent(drivers.set, log, {
      nodeId: this.nodeId,
      hostname: hostname(),
      dataDir: join(dataDir, "agent"),
      natsUrl: `${this.localNatsUrl()}`,
      logMaxBytes: 10 * 1024 * 1024,
      report: (reports) =>
        void this.manager
          .reportStatus(this.nodeId, reports)
          .catch((e: Error) => log.error(e.message)),
    });
    await this.agent.recover();
    this.mesh = new RoutingMesh(log, this.opts.publishHost);

    // The local dispatcher: the agent gets this node's full assignment set after every change
    // (once per event-loop turn, however many store batches that turn committed).
    let dispatchQueued = false;
    const dispatchSoon = () => {
      if (dispatchQueued) return;
      dispatchQueued = true;
      setImmediate(() => {
        dispatchQueued = false;
        if (!this.stopping) dispatch();
      });
    };
    const dispatch = () => {
      const { tasks, services } = this.store.view((tx) => ({
        tasks: tx.listTasks({ nodeId: this.nodeId }),
        services: tx.listServices(),
      }));
      this.agent.assign(tasks.filter((t) => !isTerminal(t.status.state)));
      void this.syncMesh(services.length > 0);
    };
    this.unwatch = this.store.watch(dispatchSoon);
    const hb = setInterval(() => {
      void this.manager.heartbeat(this.nodeId).catch(() => {});
      dispatch();
    }, 1000);
    hb.unref();
    this.timers.push(hb);
    this.manager.start();
    await this.dispatcher.start();
    dispatch();

    this.api = new Api(this.manager, {
      info: () => this.info(),
      joinToken: (role, rotate) => this.joinToken(role, rotate),
      logs: (task, o, write) => this.taskLogs(task, o, write),
      checkPortsFree: (spec, id) => this.checkPortsFree(spec, id),
      leave: async (force) => {
        if (!force) {
          throw new ManagerError(
            "ERR_INVALID",
            "You are attempting to leave the swarm on a node that is participating as a manager. Use `--force` to ignore this message.",
          );
        }
        setImmediate(() => void this.stop(true));
      },
    });
    await this.api.listenUnix(socketPath(dataDir));
    if (this.opts.apiTcp) {
      const [h, p] = [hostOf(this.opts.apiTcp), Number(this.opts.apiTcp.split(":").pop())];
      const port = await this.api.listenTcp(h, p);
      log.info(`API listening on tcp://${h}:${port}`);
    }
    writeFileSync(join(dataDir, "daemon.pid"), String(process.pid));
    log.info(
      `shoal daemon ${SHOAL_VERSION} ready: node ${this.nodeId}, API unix://${socketPath(dataDir)}, NATS ${this.localNatsUrl()}`,
    );
  }

  /** The embedded message server as this machine reaches it. */
  localNatsUrl(): string {
    const h = this.nats.opts.host;
    return `nats://${h === "0.0.0.0" || h === "::" ? "127.0.0.1" : hostPort(h)}:${this.nats.port}`;
  }

  private info(): Record<string, unknown> {
    return this.store.view((tx) => {
      const tasks = tx.listTasks();
      return {
        nodeId: this.nodeId,
        version: SHOAL_VERSION,
        dataDir: this.opts.dataDir,
        natsUrl: `${this.localNatsUrl()}`,
        managers: tx.listNodes().filter((n) => n.role === "manager").length,
        nodes: tx.listNodes().length,
        services: tx.listServices().length,
        tasks: tasks.length,
        running: tasks.filter((t) => t.status.state === "running").length,
        pid: process.pid,
      };
    });
  }

  private async joinToken(role: "worker" | "manager", rotate: boolean): Promise<string> {
    const meta = await this.store.update((tx) => {
      const m = tx.getMeta<ClusterMeta>("cluster")!;
      if (!rotate) return m;
      const next = { ...m, [role === "worker" ? "workerSecret" : "managerSecret"]: newSecret() };
      tx.putMeta("cluster", next);
      return next;
    });
    return makeToken(meta.secret, role === "worker" ? meta.workerSecret : meta.managerSecret);
  }

  private async taskLogs(
    task: Task,
    o: { tail: number; follow: boolean; signal: AbortSignal },
    write: (l: string) => void,
  ): Promise<void> {
    if (task.nodeId !== this.nodeId) {
      // Another node ran it: its agent reads the files and sends the lines over the bus.
      const node = this.store.view((tx) => tx.getNode(task.nodeId));
      const prefix = `${task.serviceName}.${task.slot}.${task.id.slice(0, 12)}@${node?.hostname ?? task.nodeId}    | `;
      if (o.follow && !isTerminal(task.status.state)) {
        const w = (l: string) => write(prefix + l);
        return this.dispatcher.followLogs(task.nodeId, task.id, o.tail, o.signal, w);
      }
      const lines = await this.dispatcher.fetchLogs(task.nodeId, task.id, o.tail);
      for (const l of lines) write(prefix + l);
      return;
    }
    const prefix = `${task.serviceName}.${task.slot}.${task.id.slice(0, 12)}@${hostname()}    | `;
    for await (const line of readLogs(this.agent.taskDir(task.id), {
      tail: o.tail >= 0 ? o.tail : undefined,
      follow: o.follow && !isTerminal(task.status.state),
      signal: o.signal,
    })) {
      write(prefix + line.line);
    }
  }

  private async checkPortsFree(spec: ServiceSpec, serviceId: string): Promise<void> {
    const ours = this.store.view((tx) => {
      const s = serviceId ? tx.getService(serviceId) : undefined;
      return new Set(s?.spec.ports.map((p) => p.published) ?? []);
    });
    for (const p of spec.ports) {
      if (ours.has(p.published)) continue;
      const taken = this.store.view((tx) =>
        tx.listServices().some((s) => s.spec.ports.some((o) => o.published === p.published)),
      );
      if (taken) continue; // the manager reports which service holds it
      await new Promise<void>((resolve, reject) => {
        const s = createNetServer();
        s.once("error", (err: NodeJS.ErrnoException) =>
          reject(
            new ManagerError(
              "ERR_PORT_IN_USE",
              `published port ${p.published} is already in use on this node (${err.code ?? err.message})`,
            ),
          ),
        );
        s.listen({ host: this.opts.publishHost, port: p.published }, () =>
          s.close(() => resolve()),
        );
      });
    }
  }

  private async syncMesh(any: boolean): Promise<void> {
    if (!any && !this.meshOpen) return;
    const { services, tasks, nodes } = this.store.view((tx) => ({
      services: tx.listServices(),
      tasks: tx.listTasks(),
      nodes: tx.listNodes(),
    }));
    const map = new Map<number, Backend[]>();
    for (const [port, list] of Object.entries(endpointsOf(services, tasks, nodes, this.nodeId))) {
      map.set(Number(port), list);
    }
    this.meshOpen = map.size > 0;
    await this.mesh.sync(map);
  }
  private meshOpen = false;

  /** Stops the daemon; `stopTasks` also stops every task (leave), otherwise they are adopted next start. */
  async stop(stopTasks: boolean): Promise<void> {
    if (this.stopping) return this.done;
    this.stopping = true;
    for (const t of this.timers) clearInterval(t);
    this.unwatch?.();
    await this.dispatcher?.stop();
    await this.join?.close();
    await this.manager?.stop();
    await this.agent?.stop(stopTasks);
    await this.api?.close();
    await this.mesh?.close();
    await this.nats?.shutdown();
    await this.store?.close();
    rmSync(join(this.opts.dataDir, "daemon.pid"), { force: true });
    rmSync(socketPath(this.opts.dataDir), { force: true });
    if (stopTasks) rmSync(join(this.opts.dataDir, "node-id"), { force: true });
    this.opts.log.info("shoal daemon stopped");
    this.resolveDone();
  }
}

/** The embedded message server logs only warnings and errors unless the daemon debugs. */
function quiet(log: Logger): Logger {
  const q: Logger = {
    debugEnabled: false,
    traceEnabled: false,
    info() {},
    debug() {},
    trace() {},
    warn: (m) => log.warn(m),
    error: (m) => log.error(m),
    fatal: (m) => log.fatal(m),
    child: (name) => quiet(log.child(name)),
  };
  return q;
}

export { ServerLogger };
