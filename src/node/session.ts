// The agent's session with the managers over the control bus (a worker node). It connects to
// the managers' message servers as a NATS client (any manager; it learns the others from
// connect_urls and fails over like any NATS client), receives the node's full assignment set,
// sends status changes as they happen and its full task list on every heartbeat.
//
// Fencing: the managers send every node its assignments once per heartbeat period. A node that
// has heard none for longer than the managers' node-down grace (3 periods) plus a margin has
// been declared down and its tasks replaced elsewhere; so it stops its tasks (reported failed
// once the bus returns) rather than run them twice over. It logs when it loses the control bus
// (disconnected, or no assignments for the grace) and when the managers are back; their next
// assignment starts again whatever is still wanted here.

import type { RouteTable } from "../api/routes.js";
import { connect, JSONCodec, type NatsConnection } from "nats";
import type { Agent, TaskReport } from "./agent.js";
import {
  type BusCredentials,
  type NodeNetwork,
  assignSubject,
  hbSubject,
  statusSubject,
  type Endpoint,
  type Heartbeat,
  type TaskStats,
  type ServiceRequests,
  type LogsReply,
  type LogsRequest,
  logsSubject,
  logControlSubject,
  logFollowSubject,
  FOLLOW_LEASE_MS,
  AssignmentsSchema,
  LogsRequestSchema,
  LogControlSchema,
} from "../api/bus.js";
import { decode, DroppedMessages } from "../api/schema.js";
import type { DnsTable } from "../api/dns.js";
import { readLogs } from "./drivers/logs.js";
import { isTerminal, type NodeFacts, type NodeTlsInfo } from "../api/types.js";

const codec = JSONCodec<unknown>();

export interface SessionOptions {
  nodeId: string;
  hostname: string;
  natsUrls: string[];
  /** The node's credentials on the bus (a worker's own user; a manager's agent user). */
  bus: BusCredentials;
  heartbeatMs: number;
  onEndpoints: (endpoints: Record<string, Endpoint[]>) => void;
  /** The HTTP router's table (every node gets the same one). */
  onRoutes?: (table: RouteTable) => void;
  /** The networks of the node's tasks and its DNS table, told before the tasks themselves. */
  onNetworks?: (networks: NodeNetwork[], dns: DnsTable | undefined) => void;
  /** What the node reports about itself with every heartbeat (drivers, resources, limits). */
  facts?: NodeFacts;
  /** Who issued the node's certificate and which roots it trusts, read at every heartbeat
   * (it changes with a renewal). */
  tlsInfo?: () => NodeTlsInfo | undefined;
  /** The roots the managers want nodes to trust (assignments' trustRoots), the signing one
   * first. */
  onTrustRoots?: (digests: string[]) => void;
  /** The managers say this node is a manager (assignments' role): a worker was promoted. */
  onPromoted?: () => void;
  /** A followed log not renewed for this long is ended (default FOLLOW_LEASE_MS). */
  followLeaseMs?: number;
  /** Stop the tasks after losing the managers for the node-down grace plus a margin (default
   * true). */
  fencing?: boolean;
  /** The margin, ms (default: 2 heartbeat periods, at least 1 s). */
  fenceMarginMs?: number;
  /** The clock (ms); tests inject one. */
  now?: () => number;
  /** Task figures sampled since the last heartbeat, or null when none are new (metrics.ts). */
  stats?: () => TaskStats[] | null;
  /** The port of the node's /metrics, once it serves one. */
  metricsPort?: () => number | undefined;
  /** Requests the node's HTTP router sent to each service since the last heartbeat. */
  requests?: () => ServiceRequests[];
  log: { info(m: string): void; warn(m: string): void };
}

export class AgentSession {
  private nc: NatsConnection | null = null;
  private timer: NodeJS.Timeout | null = null;
  /** The latest report per task, resent with every heartbeat (level-triggered). */
  private readonly latest = new Map<string, TaskReport & { sentTerminal?: number }>();
  agent: Agent | null = null;
  /** Malformed messages (not JSON, or not their schema): counted, dropped, logged at most once
   * per 5 s. */
  readonly dropped = new DroppedMessages((m) => this.opts.log.warn(m));

  private readonly now: () => number;
  /** When the last assignment message arrived (or the session started). */
  private lastContact = 0;
  /** When the loss of the managers was noticed; null while they are there. */
  private lostAt: number | null = null;
  /** Tasks stopped by fencing during the current loss. */
  private fencedTasks: number | null = null;
  /** When the last heartbeat tick ran (0 before the first). */
  private lastTick = 0;
  /** How many times this session fenced its tasks (tests wait on it). */
  fences = 0;

  constructor(private readonly opts: SessionOptions) {
    this.now = opts.now ?? Date.now;
  }

  /** Reports not sent yet: the latest per task, flushed as one message per event-loop turn. */
  private readonly unsent = new Map<string, TaskReport>();
  private flushQueued = false;

  /** The agent's report callback: remember, and send on this turn of the event loop (a burst
   * of task starts becomes one status message instead of three per task). */
  report = (reports: TaskReport[]): void => {
    for (const r of reports) {
      const merged = { ...(this.latest.get(r.taskId) ?? {}), ...r };
      this.latest.set(r.taskId, merged);
      this.unsent.set(r.taskId, { ...(this.unsent.get(r.taskId) ?? {}), ...r });
    }
    if (this.flushQueued) return;
    this.flushQueued = true;
    setImmediate(() => this.flush());
  };

  private flush(): void {
    this.flushQueued = false;
    const nc = this.nc;
    if (!nc || nc.isClosed() || this.unsent.size === 0) return;
    const reports = [...this.unsent.values()];
    this.unsent.clear();
    nc.publish(
      statusSubject(this.opts.nodeId),
      codec.encode({ nodeId: this.opts.nodeId, reports }),
    );
  }

  async start(agent: Agent): Promise<void> {
    this.agent = agent;
    this.nc = await connect({
      servers: this.opts.natsUrls,
      ...(this.opts.bus.tls
        ? { tls: this.opts.bus.tls }
        : { user: this.opts.bus.user, pass: this.opts.bus.pass }),
      name: `shoal-agent-${this.opts.nodeId}`,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
      // A manager whose machine vanished (no FIN, no RST) is noticed in 1-1.5 heartbeat
      // periods (not the client's default 4 minutes), and a dial to it (the client tries it
      // first again) gives up after one period (not 20 s), so the agent reaches another
      // manager's server before the new leader's node-down grace and its own fencing run out.
      pingInterval: Math.max(Math.round(this.opts.heartbeatMs / 2), 250),
      maxPingOut: 2,
      timeout: Math.max(this.opts.heartbeatMs, 1000),
      waitOnFirstConnect: true,
    });
    this.opts.log.info(`connected to the control bus at ${this.nc.getServer()}`);
    this.lastContact = this.now();
    void this.watchStatus(this.nc);
    this.nc.subscribe(assignSubject(this.opts.nodeId), {
      callback: (err, msg) => {
        if (err) return;
        const decoded = decode(AssignmentsSchema, msg.data, "assignments");
        if (!decoded.ok) return this.dropped.drop(msg.subject, decoded.error);
        const a = decoded.value;
        this.contact();
        if (a.heartbeatMs > 0 && a.heartbeatMs !== this.period) this.setPeriod(a.heartbeatMs);
        this.opts.onNetworks?.(a.networks ?? [], a.dns);
        if (a.trustRoots) this.opts.onTrustRoots?.(a.trustRoots);
        if (a.role === "manager") this.opts.onPromoted?.();
        this.agent?.assign(a.tasks, {
          secrets: a.secrets ?? [],
          configs: a.configs ?? [],
          appCredentials: a.appCredentials ?? [],
        });
        this.opts.onEndpoints(a.endpoints);
        this.opts.onRoutes?.(a.routes ?? { routes: [] });
      },
    });
    this.nc.subscribe(logsSubject(this.opts.nodeId), {
      callback: (err, msg) => {
        if (err || !this.agent) return;
        const decoded = decode(LogsRequestSchema, msg.data, "logs request");
        if (!decoded.ok) {
          this.dropped.drop(msg.subject, decoded.error);
          const refused: LogsReply = { lines: [], error: decoded.error.message };
          if (msg.reply) msg.respond(codec.encode(refused));
          return;
        }
        const req = decoded.value;
        if (req.follow !== undefined) {
          const ok = this.follow(req);
          const reply: LogsReply = ok ? { lines: [] } : { lines: [], error: "refused" };
          msg.respond(codec.encode(reply));
          return;
        }
        void this.readLogs(req).then((lines) =>
          msg.respond(codec.encode({ lines } satisfies LogsReply)),
        );
      },
    });
    this.nc.subscribe(logControlSubject(this.opts.nodeId), {
      callback: (err, msg) => {
        if (err) return;
        const decoded = decode(LogControlSchema, msg.data, "log control");
        if (!decoded.ok) return this.dropped.drop(msg.subject, decoded.error);
        const c = decoded.value;
        if (c.op === "cancel") this.followers.get(c.stream)?.ac.abort();
      },
    });
    this.setPeriod(this.opts.heartbeatMs);
    this.heartbeat();
  }

  private period = 0;

  /** The manager owns heartbeat timing: each assignment message carries the period it wants. */
  private setPeriod(ms: number): void {
    this.period = ms;
    if (this.timer) clearInterval(this.timer);
    this.timer = setInterval(() => this.heartbeat(), ms);
  }

  /** Followed logs by stream subject; each ends when cancelled or its lease runs out. */
  private readonly followers = new Map<string, { ac: AbortController; renewedAt: number }>();

  /** Starts streaming a task's log (tail, then new lines) to `req.follow`, in batches; a
   * request for a stream already running renews it. */
  private follow(req: LogsRequest): boolean {
    const stream = req.follow!;
    if (
      !/^[0-9a-z]+$/.test(req.taskId) ||
      !stream.startsWith(logFollowSubject(this.opts.nodeId, ""))
    )
      return false;
    const known = this.followers.get(stream);
    if (known) {
      // The follower resends its request to renew the lease.
      known.renewedAt = this.now();
      return true;
    }
    const ac = new AbortController();
    this.followers.set(stream, { ac, renewedAt: this.now() });
    let batch: string[] = [];
    let timer: NodeJS.Timeout | null = null;
    const flush = () => {
      timer = null;
      if (batch.length === 0 || !this.nc || this.nc.isClosed()) return;
      this.nc.publish(stream, codec.encode({ lines: batch } satisfies LogsReply));
      batch = [];
    };
    void (async () => {
      try {
        for await (const l of readLogs(this.agent!.taskDir(req.taskId), {
          tail: req.tail >= 0 ? req.tail : undefined,
          follow: true,
          signal: ac.signal,
        })) {
          batch.push(l.line);
          if (batch.length >= 1000) flush();
          else timer ??= setTimeout(flush, 50);
        }
      } catch (err) {
        this.opts.log.warn(`following logs of task ${req.taskId}: ${(err as Error).message}`);
      } finally {
        if (timer) clearTimeout(timer);
        flush();
        this.followers.delete(stream);
      }
    })();
    return true;
  }

  /** How many task logs are being followed now. */
  followedLogs(): number {
    return this.followers.size;
  }

  /** Ends followed logs whose follower stopped renewing them. */
  private expireFollowers(now: number): void {
    for (const f of this.followers.values()) {
      if (now - f.renewedAt > (this.opts.followLeaseMs ?? FOLLOW_LEASE_MS)) f.ac.abort();
    }
  }

  private async readLogs(req: LogsRequest): Promise<string[]> {
    const lines: string[] = [];
    if (!/^[0-9a-z]+$/.test(req.taskId)) return lines;
    for await (const l of readLogs(this.agent!.taskDir(req.taskId), {
      tail: req.tail >= 0 ? req.tail : undefined,
    })) {
      lines.push(l.line);
      if (lines.length >= 100_000) break;
    }
    return lines;
  }

  /** The connection's disconnects, noticed at once (a loss by silence waits for the grace). */
  private async watchStatus(nc: NatsConnection): Promise<void> {
    for await (const s of nc.status()) {
      if (s.type === "disconnect" && this.lostAt === null) {
        this.lostAt = this.now();
        this.opts.log.warn(`lost the control bus: disconnected from ${String(s.data)}`);
      }
    }
  }

  /** The managers' node-down grace: 3 heartbeat periods. */
  private downAfterMs(): number {
    return 3 * this.period;
  }

  /** After the grace plus this margin, the node fences itself. */
  private fenceAfterMs(): number {
    const margin = this.opts.fenceMarginMs ?? Math.max(2 * this.period, 1000);
    return this.downAfterMs() + margin;
  }

  /** An assignment message: the managers are there. */
  private contact(): void {
    const now = this.now();
    this.lastContact = now;
    if (this.lostAt === null) return;
    const secs = ((now - this.lostAt) / 1000).toFixed(1);
    const fenced =
      this.fencedTasks !== null ? `; ${this.fencedTasks} task(s) were stopped meanwhile` : "";
    this.opts.log.info(`control bus back after ${secs} s${fenced}`);
    this.lostAt = null;
    this.fencedTasks = null;
  }

  /** On every heartbeat tick: notices a silent loss of the managers, and fences after it. */
  private checkManagers(now: number): void {
    // A tick that comes late means this process was stalled (its event loop blocked): the
    // assignments that arrived meanwhile sit unread in the socket, so the stall is not counted
    // as the managers' silence (the managers credit their own stalls the same way).
    const late = this.lastTick > 0 ? now - this.lastTick - this.period : 0;
    if (late > this.period) this.lastContact = Math.min(now, this.lastContact + late);
    this.lastTick = now;
    const silent = now - this.lastContact;
    if (this.lostAt === null && silent > this.downAfterMs()) {
      this.lostAt = now;
      this.opts.log.warn(
        `lost the control bus: no assignments from the managers for ${(silent / 1000).toFixed(1)} s`,
      );
    }
    if (this.opts.fencing === false || this.fencedTasks !== null || !this.agent) return;
    if (silent <= this.fenceAfterMs()) return;
    const why = `fenced: no word from the managers for ${(silent / 1000).toFixed(1)} s`;
    this.fencedTasks = this.agent.fence(why);
    this.fences++;
    if (this.fencedTasks > 0) {
      this.opts.log.warn(`${why}: stopping ${this.fencedTasks} task(s), which run elsewhere now`);
    }
  }

  private heartbeat(): void {
    const now = this.now();
    this.expireFollowers(now);
    this.checkManagers(now);
    const nc = this.nc;
    if (!nc || nc.isClosed()) return;
    const tasks: TaskReport[] = [];
    for (const [id, r] of this.latest) {
      tasks.push(r);
      // Terminal states are repeated a few times, then forgotten.
      if (isTerminal(r.state)) {
        r.sentTerminal = (r.sentTerminal ?? 0) + 1;
        if (r.sentTerminal > 5) this.latest.delete(id);
      }
    }
    const stats = this.opts.stats?.() ?? null;
    const tls = this.opts.tlsInfo?.();
    const metricsPort = this.opts.metricsPort?.();
    const requests = this.opts.requests?.() ?? [];
    const hb: Heartbeat = {
      nodeId: this.opts.nodeId,
      hostname: this.opts.hostname,
      tasks,
      ...(this.opts.facts ?? {}),
      ...(tls ? { tls } : {}),
      ...(stats ? { stats } : {}),
      ...(metricsPort !== undefined ? { metricsPort } : {}),
      ...(requests.length > 0 ? { requests } : {}),
    };
    nc.publish(hbSubject(this.opts.nodeId), codec.encode(hb));
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    for (const f of this.followers.values()) f.ac.abort();
    await this.nc?.close().catch(() => {});
  }
}
