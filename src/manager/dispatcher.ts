// The dispatcher: the manager's side of the control bus. It turns heartbeats into node liveness,
// node facts and task status, and is the only sender of assignments: every node, the manager's
// own included, gets its full assignment set when the store changes and on a timer (so a lost
// message is repaired by the next one).

import { connect, JSONCodec, nuid, type NatsConnection, type Subscription } from "nats";
import type { Manager } from "./manager.js";
import {
  AGENT_USER,
  INBOX_PREFIX,
  assignSubject,
  nodeInbox,
  SUBJECT_PREFIX,
  type Assignments,
  type Endpoint,
  type Heartbeat,
  type LogsRequest,
  logsSubject,
  logControlSubject,
  logFollowSubject,
  FOLLOW_RENEW_MS,
  type LogControl,
  HeartbeatSchema,
  StatusMessageSchema,
  LogsReplySchema,
} from "../api/bus.js";
import { decode, DroppedMessages } from "../api/schema.js";
import { changesState } from "../store/store.js";
import { eventSubject } from "../api/events.js";
import { dnsTableOf, nodeNetworksOf } from "./network-view.js";
import { agentPassword, appCredentials } from "./bus-users.js";
import { filesForTasks } from "./secrets.js";
import { routeTableOf } from "./route-table.js";
import { isTerminal, servesTraffic, type Node, type Service, type Task } from "../api/types.js";

const codec = JSONCodec<unknown>();

/** Published port → running endpoints of its service, cluster-wide. */
export function endpointsOf(
  services: Service[],
  tasks: Task[],
  nodes: Node[],
): Record<string, Endpoint[]> {
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const out: Record<string, Endpoint[]> = {};
  for (const s of services) {
    for (const p of s.spec.ports) {
      if (p.mode !== "ingress" || p.protocol !== "tcp") continue;
      const list: Endpoint[] = [];
      for (const t of tasks) {
        if (t.serviceId !== s.id || !servesTraffic(t)) continue;
        const hp = t.hostPorts[String(p.target)];
        if (!hp) continue;
        const node = byId.get(t.nodeId);
        if (!node || node.status !== "ready") continue;
        list.push({ host: node.addr, port: hp, serviceId: s.id, service: s.spec.name });
      }
      out[String(p.published)] = list;
    }
  }
  return out;
}

export class Dispatcher {
  private nc: NatsConnection | null = null;
  private subs: Subscription[] = [];
  private timer: NodeJS.Timeout | null = null;
  private unwatch: (() => void) | null = null;
  private unlisten: (() => void) | null = null;
  private pending = false;
  /** What each node was last sent, as a signature of what its agent acts on. */
  private readonly sent = new Map<string, string>();
  /** Malformed messages (not JSON, or not their schema): counted, dropped, logged at most once
   * per 5 s. */
  readonly dropped = new DroppedMessages((m) => this.manager.log.warn(m));

  constructor(
    private readonly manager: Manager,
    private readonly opts: {
      natsUrl: string;
      clusterSecret: string;
      /** Whether this manager leads (default: always). Every manager's dispatcher hears every
       * heartbeat (its liveness stays current for when it leads), but only the leader's writes
       * what they report and sends assignments. */
      leading?: () => boolean;
      /** The digests of the roots nodes should trust, the signing one first (ca.ts
       * trustDigests): sent with the assignments, so nodes renew during a root CA rotation. */
      trustRoots?: () => string[];
    },
  ) {}

  private leads(): boolean {
    return this.opts.leading ? this.opts.leading() : true;
  }

  /** This manager became the leader: every node gets its assignments now. */
  lead(): void {
    this.sent.clear();
    this.publishAll(true);
  }

  async start(): Promise<void> {
    this.nc = await connect({
      servers: this.opts.natsUrl,
      user: AGENT_USER,
      pass: agentPassword(this.opts.clusterSecret),
      name: "shoal-dispatcher",
      inboxPrefix: INBOX_PREFIX,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
    });
    this.subs.push(
      this.nc.subscribe(`${SUBJECT_PREFIX}.hb.*`, {
        callback: (err, msg) => {
          if (err) return;
          const hb = decode(HeartbeatSchema, msg.data, "heartbeat");
          if (!hb.ok) return this.dropped.drop(msg.subject, hb.error);
          if (!this.fromItsNode(msg.subject, hb.value.nodeId)) return;
          void this.onHeartbeat(hb.value);
        },
      }),
      this.nc.subscribe(`${SUBJECT_PREFIX}.status.*`, {
        callback: (err, msg) => {
          if (err) return;
          const m = decode(StatusMessageSchema, msg.data, "status");
          if (!m.ok) return this.dropped.drop(msg.subject, m.error);
          if (!this.fromItsNode(msg.subject, m.value.nodeId)) return;
          if (!this.leads()) return;
          void this.manager.reportStatus(m.value.nodeId, m.value.reports).catch(() => {});
        },
      }),
    );
    // Cluster events on the bus, for any NATS client with the events user (bus-users.ts).
    // Only the leader's: every manager hears the events, the bus must carry each once.
    this.unlisten = this.manager.events.listen((e) => {
      if (this.leads()) this.nc?.publish(eventSubject(e), codec.encode(e));
    });
    this.unwatch = this.manager.store.watch((events) => {
      if (changesState(events)) this.schedulePublish();
    });
    this.arm();
  }

  private period = 0;

  /**
   * Is a message about the node whose subject it came on? The bus lets a worker publish only on
   * its own subjects, so the subject names the sender; a body naming another node is forged
   * (or from a confused peer) and is dropped.
   */
  private fromItsNode(subject: string, nodeId: string): boolean {
    if (subject.slice(subject.lastIndexOf(".") + 1) === nodeId) return true;
    this.dropped.drop(subject, new Error(`the message names node ${nodeId}, not its sender`));
    return false;
  }

  /** (Re)starts the assignment timer at the cluster's heartbeat period. */
  private arm(): void {
    const period = this.manager.heartbeatMs();
    if (period === this.period && this.timer) return;
    this.period = period;
    if (this.timer) clearInterval(this.timer);
    this.timer = setInterval(() => this.publishAll(true), period);
    this.timer.unref();
  }

  /** Heartbeats received from known nodes since the start (diagnostics: `/v1/info`). */
  heartbeats = 0;

  private async onHeartbeat(hb: Heartbeat): Promise<void> {
    const known = this.manager.store.view((tx) => tx.getNode(hb.nodeId));
    if (!known) return; // removed or never joined: ignore it
    this.heartbeats++;
    if (!this.leads()) {
      this.manager.liveness.heard(hb.nodeId, Date.now(), this.manager.nodeDownAfterMs());
      return this.recordMetrics(hb);
    }
    await this.manager
      .heartbeat(hb.nodeId, Date.now(), {
        engineVersion: hb.engineVersion,
        drivers: hb.drivers,
        resources: hb.resources,
        limits: hb.limits,
        ...(hb.networks ? { networks: hb.networks } : {}),
        ...(hb.tls ? { tls: hb.tls } : {}),
      })
      .catch(() => {});
    await this.manager.reportStatus(hb.nodeId, hb.tasks).catch(() => {});
    this.recordMetrics(hb);
  }

  /** What the node measured, into the metrics book (in memory, on every manager). */
  private recordMetrics(hb: Heartbeat): void {
    if (hb.stats) this.manager.metrics.record(hb.nodeId, hb.stats);
    this.manager.metrics.setMetricsPort(hb.nodeId, hb.metricsPort);
    if (hb.requests) this.manager.metrics.recordRequests(hb.nodeId, hb.requests, Date.now());
  }

  private schedulePublish(): void {
    if (this.pending) return;
    this.pending = true;
    setImmediate(() => {
      this.pending = false;
      this.publishAll(false);
    });
  }

  /**
   * Sends nodes their full assignment set: every node on the timer (`all`), and on a
   * store change only the nodes whose set changed in what the agent acts on (task ids, desired
   * states, endpoints). A status change alone (a task reported running) is not resent: with a
   * thousand tasks starting, that resent the whole set thousands of times.
   */
  publishAll(all: boolean): void {
    const nc = this.nc;
    if (!nc || nc.isClosed() || !this.leads()) return;
    this.arm();
    const byNode = new Map<string, Task[]>();
    const { nodes, tasks, services, networks, files } = this.manager.store.view((tx) => {
      const tasks = tx.listTasks();
      for (const t of tasks) {
        if (isTerminal(t.status.state)) continue;
        const list = byNode.get(t.nodeId);
        if (list) list.push(t);
        else byNode.set(t.nodeId, [t]);
      }
      // The data of the secrets and configs each node's tasks use: sent to that node only.
      const files = new Map<string, ReturnType<typeof filesForTasks>>();
      for (const [nodeId, mine] of byNode) files.set(nodeId, filesForTasks(tx, mine));
      return {
        nodes: tx.listNodes(),
        tasks,
        services: tx.listServices(),
        networks: tx.listNetworks(),
        files,
      };
    });
    const view = { nodes, tasks, services, networks };
    const endpoints = endpointsOf(services, tasks, nodes);
    const routes = routeTableOf(services, tasks, nodes);
    const edgeSig = JSON.stringify([endpoints, routes]);
    const trustRoots = this.opts.trustRoots?.() ?? [];
    for (const n of nodes) {
      const mine = byNode.get(n.id) ?? [];
      // A node's networks and DNS table change with tasks anywhere on its networks (a task
      // that stops leaves the answers with the next message).
      const nets = networks.length > 0 ? nodeNetworksOf(n.id, view) : [];
      const dns = nets.length > 0 ? dnsTableOf(n.id, view) : undefined;
      const netSig = nets.length > 0 ? JSON.stringify([nets, dns]) : "";
      const f = files.get(n.id);
      const fileSig = f ? [...f.secrets, ...f.configs].map((x) => x.id).join(",") : "";
      const sig = `${this.period} ${n.role} ${trustRoots.join()} ${edgeSig} ${netSig} ${fileSig} ${mine.map((t) => `${t.id}:${t.desiredState}`).join(",")}`;
      if (!all && this.sent.get(n.id) === sig) continue;
      this.sent.set(n.id, sig);
      // The message server's user of each service with a task here (its tasks' NATS_URL).
      const creds = [...new Set(mine.map((t) => t.serviceId))]
        .sort()
        .map((id) => appCredentials(this.opts.clusterSecret, id));
      const msg: Assignments = {
        nodeId: n.id,
        tasks: mine,
        endpoints,
        ...(routes.routes.length > 0 ? { routes } : {}),
        heartbeatMs: this.period,
        networks: nets,
        ...(dns ? { dns } : {}),
        ...(f && f.secrets.length > 0 ? { secrets: f.secrets } : {}),
        ...(f && f.configs.length > 0 ? { configs: f.configs } : {}),
        ...(creds.length > 0 ? { appCredentials: creds } : {}),
        ...(trustRoots.length > 0 ? { trustRoots } : {}),
        ...(n.role === "manager" ? { role: "manager" as const } : {}),
      };
      try {
        nc.publish(assignSubject(n.id), codec.encode(msg));
      } catch (err) {
        // Too large for the bus (many big secrets on one node): the other nodes still get theirs.
        // The error names the size, never the content.
        this.sent.delete(n.id);
        this.manager.log.error(`assignments for node ${n.id} not sent: ${(err as Error).message}`);
      }
    }
  }

  /** A task's log lines from the node that ran it ([] when the node does not answer). */
  async fetchLogs(nodeId: string, taskId: string, tail: number): Promise<string[]> {
    const nc = this.nc;
    if (!nc) return [];
    try {
      const msg = await nc.request(
        logsSubject(nodeId),
        codec.encode({ taskId, tail } satisfies LogsRequest),
        { timeout: 3000, noMux: true, reply: nodeInbox(nodeId, nuid.next()) },
      );
      const reply = decode(LogsReplySchema, msg.data, "logs reply");
      if (reply.ok) return reply.value.lines;
      this.dropped.drop(msg.subject, reply.error);
      return [];
    } catch {
      return [];
    }
  }

  /**
   * Follows a task's log on the node that runs it: the last `tail` lines, then every new line,
   * until `signal` aborts. The request is resent every FOLLOW_RENEW_MS (the agent's lease);
   * a node that does not answer yet is asked again, so following starts when it comes back.
   */
  async followLogs(
    nodeId: string,
    taskId: string,
    tail: number,
    signal: AbortSignal,
    write: (line: string) => void,
  ): Promise<void> {
    const nc = this.nc;
    if (!nc || signal.aborted) return;
    const stream = logFollowSubject(nodeId, nuid.next());
    const sub = nc.subscribe(stream, {
      callback: (err, msg) => {
        if (err || signal.aborted) return;
        const batch = decode(LogsReplySchema, msg.data, "logs");
        if (!batch.ok) return this.dropped.drop(msg.subject, batch.error);
        for (const l of batch.value.lines) write(l);
      },
    });
    let acked = false;
    const ask = async () => {
      const req: LogsRequest = { taskId, tail: acked ? 0 : tail, follow: stream };
      try {
        const reply = await nc.request(logsSubject(nodeId), codec.encode(req), {
          timeout: 3000,
          noMux: true,
          reply: nodeInbox(nodeId, nuid.next()),
        });
        const r = decode(LogsReplySchema, reply.data, "logs reply");
        if (!r.ok) this.dropped.drop(reply.subject, r.error);
        else if (!r.value.error) acked = true;
      } catch {
        // not answering (down, or restarting): asked again on the next renewal
      }
    };
    void ask();
    const renew = setInterval(() => void ask(), FOLLOW_RENEW_MS);
    await new Promise<void>((resolve) => {
      if (signal.aborted) resolve();
      else signal.addEventListener("abort", () => resolve(), { once: true });
    });
    clearInterval(renew);
    sub.unsubscribe();
    if (!nc.isClosed()) {
      const cancel: LogControl = { stream, op: "cancel" };
      nc.publish(logControlSubject(nodeId), codec.encode(cancel));
    }
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.unwatch?.();
    this.unlisten?.();
    for (const s of this.subs) s.unsubscribe();
    await this.nc?.close().catch(() => {});
  }
}
