// The node runtime every daemon runs, manager or worker alike: the agent (tasks through the
// drivers) and its session on the control bus. A manager's own node is a client of the bus like
// any worker's, over loopback: one registration path (the node reports its drivers, CPUs, memory
// and enforceable limits in every heartbeat), one heartbeat path whose period the manager sets,
// and the dispatcher as the only sender of assignments.

import type { RouteTable } from "../api/routes.js";
import { cpus, totalmem } from "node:os";
import { join } from "node:path";
import { Agent } from "./agent.js";
import { AgentSession, type SessionOptions } from "./session.js";
import type { NodeDrivers } from "./node-drivers.js";
import type { BusCredentials, Endpoint, NodeNetwork, ServiceRequests } from "../api/bus.js";
import type { DnsTable } from "../api/dns.js";
import type { NodeFacts, NodeResources } from "../api/types.js";
import type { Logger } from "../lib/log.js";
import { SHOAL_VERSION } from "../lib/version.js";
import { cidrHost } from "../lib/addr.js";
import { TaskSampler } from "./metrics.js";
import { NetworkSyncs } from "./network-syncs.js";
import { NodeMetrics, type TrafficFigures } from "./prometheus.js";

export interface NodeRuntimeOptions {
  nodeId: string;
  hostname: string;
  /** The node's data dir; the agent keeps its tasks under `agent/`. */
  dataDir: string;
  /** The control bus (managers' message servers) and the node's credentials there. */
  busUrls: string[];
  bus: BusCredentials;
  /** The first heartbeat period; the manager's assignment messages set it from then on. */
  heartbeatMs: number;
  /** The NATS URL tasks get in NATS_URL. */
  natsUrl: string;
  drivers: NodeDrivers;
  /** Overrides of what the node reports (`--cpus`, `--memory`). */
  cpus?: number;
  memoryBytes?: number;
  /** Fencing (session.ts): stop the tasks after losing the managers for their node-down grace
   * plus a margin; on unless false. */
  fencing?: boolean;
  fenceMarginMs?: number;
  /** The DNS servers of the node's tasks (the daemon's, on src/net/dns.ts). */
  dns?: TaskDns;
  /** Time between two samples of what the tasks use, ms (metrics.ts; default 2 s). */
  sampleIntervalMs?: number;
  /** Published port → endpoints of its service anywhere in the cluster (for the routing mesh). */
  onEndpoints: (endpoints: Record<string, Endpoint[]>) => void;
  /** The HTTP router's table, from every assignment message. */
  onRoutes?: (table: RouteTable) => void;
  /** The node's certificates (session.ts): reported with heartbeats; the roots managers want. */
  tlsInfo?: SessionOptions["tlsInfo"];
  onTrustRoots?: SessionOptions["onTrustRoots"];
  onPromoted?: SessionOptions["onPromoted"];
  /** Requests the node's HTTP router sent to each service, and new connections its routing
   * mesh forwarded, since the last call (heartbeats). */
  requests?: () => ServiceRequests[];
  /** The router's and the mesh's figures per service (/metrics). */
  traffic?: () => TrafficFigures;
  log: Logger;
}

/** The machine's CPUs and memory, unless the user said otherwise. */
export function nodeResources(o: { cpus?: number; memoryBytes?: number }): NodeResources {
  return {
    nanoCpus: o.cpus ?? cpus().length,
    memoryBytes: o.memoryBytes ?? totalmem(),
  };
}

/** The DNS servers a node runs for its tasks on networks. */
export interface TaskDns {
  /** Serve on exactly these addresses (this node's own on its networks). */
  listenOn(addrs: string[]): Promise<void>;
  /** Answer from this table from now on. */
  setTable(table: DnsTable): void;
  close(): Promise<void>;
}

export class NodeRuntime {
  readonly agent: Agent;
  readonly session: AgentSession;
  /** What the tasks use, sampled every few seconds (sent with heartbeats, shown on /metrics). */
  readonly sampler: TaskSampler;
  /** The node's /metrics registry (prometheus.ts). */
  readonly metrics: NodeMetrics;
  /** The port the daemon serves this node's /metrics on (told to the managers). */
  metricsPort: number | undefined;
  private networksSig = "";
  /** Network changes are applied one after the other (network-syncs.ts). */
  private readonly networkSyncs: NetworkSyncs;

  constructor(readonly opts: NodeRuntimeOptions) {
    const overlays = opts.drivers.overlays;
    this.networkSyncs = new NetworkSyncs(
      async (nets) => {
        if (overlays) await overlays.sync(nets);
        else if (nets.length > 0) opts.log.warn("this node cannot have overlay networks");
        await opts.dns?.listenOn(nets.map((n) => cidrHost(n.nodeAddr)));
      },
      (err) => opts.log.warn(`setting up networks: ${err.message}`),
    );
    const facts: NodeFacts = {
      engineVersion: SHOAL_VERSION,
      drivers: opts.drivers.names,
      resources: nodeResources(opts),
      limits: opts.drivers.limits,
      networks: opts.drivers.overlays
        ? { overlay: true }
        : { overlay: false, reason: opts.drivers.overlayUnsupported ?? "not reported" },
    };
    let sentRound = 0;
    this.session = new AgentSession({
      nodeId: opts.nodeId,
      hostname: opts.hostname,
      natsUrls: opts.busUrls,
      bus: opts.bus,
      heartbeatMs: opts.heartbeatMs,
      facts,
      onEndpoints: opts.onEndpoints,
      ...(opts.onRoutes ? { onRoutes: opts.onRoutes } : {}),
      ...(opts.tlsInfo ? { tlsInfo: opts.tlsInfo } : {}),
      ...(opts.onTrustRoots ? { onTrustRoots: opts.onTrustRoots } : {}),
      ...(opts.onPromoted ? { onPromoted: opts.onPromoted } : {}),
      onNetworks: (nets, dns) => this.onNetworks(nets, dns),
      metricsPort: () => this.metricsPort,
      ...(opts.requests ? { requests: opts.requests } : {}),
      // Each round's figures go with the next heartbeat, once.
      stats: () => {
        if (this.sampler.rounds === sentRound) return null;
        sentRound = this.sampler.rounds;
        return this.sampler.latest().map(({ serviceId: _s, serviceName: _n, name: _m, ...t }) => t);
      },
      ...(opts.fencing !== undefined ? { fencing: opts.fencing } : {}),
      ...(opts.fenceMarginMs !== undefined ? { fenceMarginMs: opts.fenceMarginMs } : {}),
      log: opts.log.child("agent"),
    });
    this.agent = new Agent(opts.drivers.set, opts.log.child("agent"), {
      nodeId: opts.nodeId,
      hostname: opts.hostname,
      dataDir: join(opts.dataDir, "agent"),
      natsUrl: opts.natsUrl,
      logMaxBytes: 10 * 1024 * 1024,
      // This very shoal, on every task's PATH.
      ...(process.argv[1]
        ? { shoalCommand: [process.execPath, process.argv[1]] as [string, string] }
        : {}),
      report: this.session.report,
    });
    const set = opts.drivers.set;
    this.sampler = new TaskSampler({
      tasks: () =>
        this.agent.handles().map(({ task, handle }) => ({
          taskId: task.id,
          serviceId: task.serviceId,
          serviceName: task.serviceName,
          name: `${task.serviceName}.${task.slot || opts.nodeId}.${task.id}`,
          handle,
        })),
      usage: (h, snap) => set.usage(h, snap),
      ...(opts.sampleIntervalMs !== undefined ? { intervalMs: opts.sampleIntervalMs } : {}),
    });
    this.metrics = new NodeMetrics({
      nodeId: opts.nodeId,
      hostname: opts.hostname,
      latest: () => this.sampler.latest(),
      resources: facts.resources!,
      ...(opts.traffic ? { traffic: opts.traffic } : {}),
    });
  }

  /**
   * The managers' view of this node's networks: the overlay driver builds them (then the tasks
   * waiting for them start), and the node's DNS servers listen on its address on each and
   * answer from the latest table.
   */
  private onNetworks(nets: NodeNetwork[], table: DnsTable | undefined): void {
    const dns = this.opts.dns;
    if (table) dns?.setTable(table);
    const sig = JSON.stringify(nets);
    if (sig === this.networksSig) return;
    this.networksSig = sig;
    this.agent.setNetworks(nets, this.networkSyncs.set(nets));
  }

  /** Adopts the tasks still running from before, then joins the control bus. */
  async start(): Promise<void> {
    await this.agent.recover();
    await this.session.start(this.agent);
    this.sampler.start();
  }

  /** Leaves the bus; `stopTasks` also stops every task (leave), otherwise they are adopted at
   * the next start. */
  async stop(stopTasks: boolean): Promise<void> {
    this.sampler.stop();
    await this.session.stop();
    await this.agent.stop(stopTasks);
    await this.networkSyncs.idle();
    await this.opts.dns?.close();
    if (stopTasks) await this.opts.drivers.overlays?.removeAll();
  }
}
