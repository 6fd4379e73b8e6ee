// The node runtime every daemon runs, manager or worker alike: the agent (tasks through the
// drivers) and its session on the control bus. A manager's own node is a client of the bus like
// any worker's, over loopback: one registration path (the node reports its drivers, CPUs, memory
// and enforceable limits in every heartbeat), one heartbeat path whose period the manager sets,
// and the dispatcher as the only sender of assignments.

import { cpus, totalmem } from "node:os";
import { join } from "node:path";
import { Agent } from "./agent.js";
import { AgentSession } from "./session.js";
import type { NodeDrivers } from "./node-drivers.js";
import type { BusCredentials, Endpoint } from "../api/bus.js";
import type { NodeFacts, NodeResources } from "../api/types.js";
import type { Logger } from "../lib/log.js";
import { SHOAL_VERSION } from "../lib/version.js";

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
  /** Published port → endpoints of its service anywhere in the cluster (for the routing mesh). */
  onEndpoints: (endpoints: Record<string, Endpoint[]>) => void;
  log: Logger;
}

/** The machine's CPUs and memory, unless the user said otherwise. */
export function nodeResources(o: { cpus?: number; memoryBytes?: number }): NodeResources {
  return {
    nanoCpus: o.cpus ?? cpus().length,
    memoryBytes: o.memoryBytes ?? totalmem(),
  };
}

export class NodeRuntime {
  readonly agent: Agent;
  readonly session: AgentSession;

  constructor(readonly opts: NodeRuntimeOptions) {
    const facts: NodeFacts = {
      engineVersion: SHOAL_VERSION,
      drivers: opts.drivers.names,
      resources: nodeResources(opts),
      limits: opts.drivers.limits,
    };
    this.session = new AgentSession({
      nodeId: opts.nodeId,
      hostname: opts.hostname,
      natsUrls: opts.busUrls,
      bus: opts.bus,
      heartbeatMs: opts.heartbeatMs,
      facts,
      onEndpoints: opts.onEndpoints,
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
      report: this.session.report,
    });
  }

  /** Adopts the tasks still running from before, then joins the control bus. */
  async start(): Promise<void> {
    await this.agent.recover();
    await this.session.start(this.agent);
  }

  /** Leaves the bus; `stopTasks` also stops every task (leave), otherwise they are adopted at
   * the next start. */
  async stop(stopTasks: boolean): Promise<void> {
    await this.session.stop();
    await this.agent.stop(stopTasks);
  }
}
