// The manager: owns the desired state in the store and drives it toward what is observed.
// Store events only mark the manager dirty; `tick()` (debounced, and on a timer for restart
// delays and heartbeats) runs the pure reconciler and scheduler over one consistent view and
// writes their actions back in one batch. Agents report task status through `reportStatus`.

import { changesState, type Store, type WriteTx } from "../store/store.js";
import { reconcile, applyAction, applyActions, type Action } from "./orchestrator/reconcile.js";
import { schedule } from "./scheduler/index.js";
import { NODE_SECRETS, newId, type NodeSecrets } from "./ids.js";
import {
  DEFAULT_MAX_REPLICAS,
  isTerminal,
  replicasOf,
  stateIndex,
  type Node,
  type NodeFacts,
  type Service,
  type ServiceSpec,
  type Task,
  type TaskReport,
  type TaskStatus,
} from "../api/types.js";
import type { NodeUpdate, SwarmSettings } from "../api/http.js";
import { CA_META, type CaMeta } from "./ca.js";
import { specProblems, validateSpec, type SpecLimits } from "./validate.js";
import { ManagerError } from "./errors.js";
import { Liveness, watchStalls } from "./liveness.js";
import { updateVerdict } from "./orchestrator/update-status.js";
import { allocateNodeAddrs, allocateTasks, needsAddrs, usedAddrs } from "./allocator.js";
import { createNetworkIn, removeNetworkIn, resolveSpecNetworks, withVips } from "./networks.js";
import type { NetworkCreate } from "../api/http.js";
import type { Network } from "../api/types.js";
import { createFileIn, removeFileIn, resolveSpecFiles, type FileKind } from "./secrets.js";
import type { SecretCreate } from "../api/http.js";
import type { Logger } from "../lib/log.js";
import { EventLog } from "./events/log.js";
import { MetricsBook } from "./metrics-book.js";

/** What this component logs through (the one Logger interface, src/lib/log.ts). */
export type ManagerLogger = Pick<Logger, "info" | "warn" | "error" | "debug">;

export interface ManagerOptions {
  /** How often the reconciler runs even without changes (restart delays, heartbeats). */
  tickMs: number;
  /** A node missing heartbeats this long is marked down (when no heartbeat period is set in
   * the cluster settings; otherwise 3 periods). */
  nodeDownAfterMs: number;
  historyLimit: number;
}

export function defaultManagerOptions(): ManagerOptions {
  return { tickMs: 250, nodeDownAfterMs: 3000, historyLimit: 5 };
}

/** Cluster-wide settings (`shoal swarm update`) and a `node update`: the API's schemas. */
export type { SwarmSettings, NodeUpdate } from "../api/http.js";

/** A status report from an agent about one task (the agent's TaskReport). */
export type StatusReport = TaskReport;

/** The nodes' heartbeat period when the swarm settings give none. */
export const DEFAULT_HEARTBEAT_MS = 1000;

/** swarmkit's words when a demotion would cost the store's cluster its quorum. */
export const DEMOTE_QUORUM_LOSS =
  "rpc error: code = FailedPrecondition desc = can't remove member from the raft: this would result in a loss of quorum";

/**
 * swarmkit's quorum safeguard on demote (raft's CanRemoveMember): once `id` is out, the members
 * still up must be a majority of the members left. `members` are the managers holding a member
 * of the store's cluster; a manager marked down counts as unreachable.
 */
export function demoteKeepsQuorum(
  members: readonly Pick<Node, "id" | "status">[],
  id: string,
): boolean {
  const left = members.filter((m) => m.id !== id);
  const quorum = Math.floor(left.length / 2) + 1;
  return left.filter((m) => m.status !== "down").length >= quorum;
}

export class Manager {
  private dirty = true;
  private running = false;
  private again = false;
  private timer: NodeJS.Timeout | null = null;
  private unwatch: (() => void) | null = null;
  private stopped = false;
  private unwatchStalls: (() => void) | null = null;
  private passCount = 0;
  /** When each node was last heard from (in memory; the store only gets status changes). */
  readonly liveness = new Liveness();
  /** What running tasks use now, as their nodes last sampled it (metrics-book.ts). */
  readonly metrics: MetricsBook;
  /** Stored services the last pass left alone, and why (see invalidServices). */
  private invalid = new Map<string, { name: string; problem: string }>();
  /** The problem last logged per service (each is logged once, not every pass). */
  private readonly reported = new Map<string, string>();
  /** Cluster events: derived from the store, and `events.emit(...)` for the others. */
  readonly events: EventLog;
  /**
   * Whether this manager leads (always, with one manager). Only the leader reconciles and
   * records events; the daemon sets this with leader election (several managers).
   */
  leading: () => boolean = () => true;
  /**
   * Set by the daemon when managers can be demoted (managed etcd members): called inside the
   * demoting batch, with the node already a worker in `tx`. Absent: role changes are refused.
   */
  onDemote: ((tx: WriteTx, node: Node) => void) | undefined;
  /**
   * Called once the demoting batch committed, with the node as it committed (a worker now),
   * before `updateNode` answers: the daemon takes a down manager's etcd member out.
   */
  afterDemote: ((node: Node) => Promise<void>) | undefined;
  /**
   * Set by the manager daemon (it can turn a worker into a manager): called inside the promoting
   * batch, with the node already a manager in `tx`. Absent: promotion is refused.
   */
  onPromote: ((tx: WriteTx, node: Node) => void) | undefined;
  /**
   * Whether a manager is still a member of the store's cluster (its etcd member, swarmkit's raft
   * member): `node rm` refuses such a manager, even with --force. Absent: every manager is.
   */
  storeMember: ((node: Node) => Promise<boolean>) | undefined;
  /** Called inside the batch that removes a manager no longer a member (forced leave). */
  onRemoveManager: ((tx: WriteTx, node: Node) => void) | undefined;

  constructor(
    readonly store: Store,
    readonly log: ManagerLogger,
    readonly opts: ManagerOptions = defaultManagerOptions(),
  ) {
    this.events = new EventLog(store, { log, recording: () => this.leading() });
    this.metrics = new MetricsBook(store);
  }

  start(): void {
    this.events.start();
    this.unwatch = this.store.watch((events) => {
      if (changesState(events)) this.markDirty();
    });
    this.metrics.start();
    this.unwatchStalls = watchStalls(100, 250, (ms) => {
      this.liveness.credit(ms);
      this.log.debug(`manager event loop stalled for ${ms} ms: credited to every node`);
    });
    this.timer = setInterval(() => {
      this.dirty = true;
      void this.tick();
    }, this.opts.tickMs);
    this.timer.unref();
    void this.tick();
  }

  /** The heartbeat period agents are asked to keep (`shoal swarm update --heartbeat-period`). */
  heartbeatMs(): number {
    return (
      this.store.view((tx) => tx.getMeta<SwarmSettings>("settings"))?.heartbeatMs ??
      DEFAULT_HEARTBEAT_MS
    );
  }

  /** The limits a service spec is checked against (the swarm settings'). */
  specLimits(): SpecLimits {
    const set = this.store.view((tx) => tx.getMeta<Partial<SwarmSettings>>("settings"));
    return { maxReplicas: set?.maxReplicas ?? DEFAULT_MAX_REPLICAS };
  }

  /**
   * Stored services that no longer validate (written by an older version, or before a limit):
   * the orchestrator leaves them and their tasks alone, and reports them here and in the log.
   */
  invalidServices(): Array<{ id: string; name: string; problem: string }> {
    return [...this.invalid].map(([id, v]) => ({ id, ...v }));
  }

  nodeDownAfterMs(): number {
    const set = this.store.view((tx) => tx.getMeta<SwarmSettings>("settings"));
    return set ? set.heartbeatMs * 3 : this.opts.nodeDownAfterMs;
  }

  async updateSwarm(u: Partial<SwarmSettings>): Promise<SwarmSettings> {
    if (
      u.heartbeatMs !== undefined &&
      (!Number.isFinite(u.heartbeatMs) || u.heartbeatMs < 100 || u.heartbeatMs > 60_000)
    ) {
      throw new ManagerError(
        "ERR_INVALID",
        `invalid heartbeat period ${u.heartbeatMs} ms: 100 ms to 60 s`,
      );
    }
    return this.store.update((tx) => {
      const next: SwarmSettings = {
        heartbeatMs: 1000,
        maxReplicas: DEFAULT_MAX_REPLICAS,
        ...(tx.getMeta<SwarmSettings>("settings") ?? {}),
        ...u,
      };
      if (u.maxReplicas !== undefined) {
        const over = tx
          .listServices()
          .find(
            (s) =>
              "replicated" in s.spec.mode && s.spec.mode.replicated.replicas > next.maxReplicas,
          );
        if (over) {
          throw new ManagerError(
            "ERR_INVALID",
            `maxReplicas ${next.maxReplicas} is below the ${replicasOf(over.spec)} replicas of service ${over.spec.name}: scale it down first`,
          );
        }
      }
      if (u.certExpiryMs !== undefined) {
        const ca = tx.getMeta<CaMeta>(CA_META);
        if (ca) tx.putMeta(CA_META, { ...ca, certExpiryMs: u.certExpiryMs });
      }
      const ca = tx.getMeta<CaMeta>(CA_META);
      const { certExpiryMs: _set, ...keep } = next;
      tx.putMeta("settings", keep);
      return ca ? { ...keep, certExpiryMs: ca.certExpiryMs } : keep;
    });
  }

  /**
   * Reconcile passes finished so far (one that found nothing to do, or failed, counts too). To
   * show that something does not happen, wait until this is two past what you saw: the second
   * of those passes began after you looked.
   */
  get passes(): number {
    return this.passCount;
  }

  markDirty(): void {
    this.dirty = true;
    setImmediate(() => void this.tick());
  }

  /** One reconcile + schedule pass; passes never overlap. */
  async tick(): Promise<void> {
    if (this.stopped || !this.leading()) return;
    if (this.running) {
      this.again = true;
      return;
    }
    if (!this.dirty) return;
    this.running = true;
    this.dirty = false;
    try {
      await this.pass(Date.now());
    } catch (err) {
      this.log.error(`orchestrator pass failed: ${(err as Error).stack ?? String(err)}`);
    } finally {
      this.running = false;
      this.passCount++;
      if (this.again) {
        this.again = false;
        this.dirty = true;
        setImmediate(() => void this.tick());
      }
    }
  }

  private async pass(now: number): Promise<void> {
    const stored = this.store.view((tx) => ({
      services: tx.listServices(),
      tasks: tx.listTasks(),
      nodes: tx.listNodes(),
      networks: tx.listNetworks(),
    }));
    // A stored service that no longer validates, or that breaks the reconciler, is left alone
    // with its tasks (reported, not fatal); the others go on.
    this.checkStored(stored.services);
    const input = this.withoutInvalid(stored);
    // Nodes that stopped sending heartbeats are down (level-triggered: decided every pass).
    const downAfter = this.nodeDownAfterMs();
    const downNodes = input.nodes.filter(
      (n) =>
        n.status === "ready" &&
        this.liveness.silentFor(n.id, now) > Math.max(downAfter, this.liveness.allowance(n.id)),
    );
    if (downNodes.length > 0) {
      await this.store.update((tx) => {
        for (const n of downNodes) {
          const cur = tx.getNode(n.id);
          if (cur && cur.status === "ready") {
            this.log.warn(`node ${cur.hostname} (${cur.id}) missed heartbeats: marked down`);
            tx.putNode({ ...cur, status: "down", updatedAt: now });
          }
        }
      });
      return this.markDirty();
    }
    // Rolling updates: completed, paused on a failure, or rolled back (a write, then a new pass).
    const verdicts = input.services
      .flatMap((s) => this.guard(s, () => [{ s, v: updateVerdict(s, input.tasks, now) }]) ?? [])
      .filter(({ s, v }) => v.status !== s.updateStatus || v.rollback);
    if (verdicts.length > 0) {
      await this.store.update((tx) => {
        for (const { s, v } of verdicts) {
          const cur = tx.getService(s.id);
          if (!cur || cur.version !== s.version) continue;
          if (v.rollback) {
            this.log.warn(`service ${s.spec.name}: ${v.status?.message ?? "rolling back"}`);
            this.rollback(tx, cur, now, v.status?.message ?? "rollback");
          } else {
            if (v.status?.state.endsWith("paused")) {
              this.log.warn(`service ${s.spec.name}: ${v.status.message}`);
            }
            tx.putService({ ...cur, updateStatus: v.status ?? null });
          }
        }
      });
      return this.markDirty();
    }
    const actions = this.reconcileEach(input, now);
    // Schedule against the state as it will be once the actions apply (a task shut down in this
    // pass must not be assigned in the same batch).
    const after = applyActions(input, actions, now);
    const waiting = (t: Task) =>
      (t.status.state === "new" || t.status.state === "pending") &&
      (t.desiredState === "running" || t.desiredState === "ready");
    // Network addresses first (swarmkit's allocator): a task that needs addresses and cannot
    // get them is not scheduled; it stays pending with the reason.
    const used = usedAddrs(stored.networks, [...after, ...input.skipped], input.services);
    const alloc = allocateTasks(after.filter(waiting), stored.networks, used);
    const pending = after.filter(
      (t) => waiting(t) && (!needsAddrs(t) || alloc.allocated.has(t.id)),
    );
    const placed =
      pending.length > 0
        ? schedule(
            pending,
            input.nodes,
            [...after, ...input.skipped].filter((t) => !isTerminal(t.status.state) && !waiting(t)),
          )
        : null;
    // The nodes' own addresses follow where the tasks of each network are (after this pass).
    const placedOn = new Map(placed?.assignments.map((a) => [a.taskId, a.nodeId]) ?? []);
    const final = [...after, ...input.skipped].map((t) => {
      const nodeId = placedOn.get(t.id);
      const networks = alloc.allocated.get(t.id);
      return nodeId === undefined && networks === undefined
        ? t
        : { ...t, ...(nodeId !== undefined ? { nodeId } : {}), ...(networks ? { networks } : {}) };
    });
    const nodeAddrs = allocateNodeAddrs(
      stored.networks,
      final,
      new Set(input.nodes.map((n) => n.id)),
      used,
    );
    const failedNew = [...alloc.failed].some(([id, reason]) => {
      const t = after.find((x) => x.id === id);
      return !t || t.status.state !== "pending" || t.status.err !== reason;
    });
    if (
      actions.length === 0 &&
      alloc.allocated.size === 0 &&
      !failedNew &&
      nodeAddrs.size === 0 &&
      (!placed ||
        (placed.assignments.length === 0 && !this.hasNewReasons(input.tasks, placed.unschedulable)))
    ) {
      return;
    }
    await this.store.update((tx) => {
      for (const a of actions) this.apply(tx, a, now);
      for (const [taskId, networks] of alloc.allocated) {
        const t = tx.getTask(taskId);
        if (!t || !waiting(t) || !needsAddrs(t)) continue;
        tx.putTask({ ...t, networks, updatedAt: now });
      }
      for (const [taskId, reason] of alloc.failed) {
        const t = tx.getTask(taskId);
        if (!t || !waiting(t) || !needsAddrs(t)) continue;
        if (t.status.state === "pending" && t.status.err === reason) continue;
        tx.putTask({
          ...t,
          status: { ...t.status, state: "pending", timestamp: now, message: reason, err: reason },
          updatedAt: now,
        });
      }
      for (const [networkId, addrs] of nodeAddrs) {
        const n = tx.getNetwork(networkId);
        if (n) tx.putNetwork({ ...n, nodeAddrs: addrs, updatedAt: now });
      }
      if (placed) {
        for (const { taskId, nodeId } of placed.assignments) {
          const t = tx.getTask(taskId);
          if (!t || !waiting(t) || (t.nodeId !== "" && t.nodeId !== nodeId)) continue;
          tx.putTask({
            ...t,
            nodeId,
            status: {
              ...t.status,
              state: "assigned",
              timestamp: now,
              message: "assigned",
              err: "",
            },
            updatedAt: now,
          });
        }
        for (const { taskId, reason } of placed.unschedulable) {
          const t = tx.getTask(taskId);
          if (!t || !waiting(t)) continue;
          if (t.status.state === "pending" && t.status.err === reason) continue;
          tx.putTask({
            ...t,
            status: {
              ...t.status,
              state: "pending",
              timestamp: now,
              message: "pending task scheduling",
              err: reason,
            },
            updatedAt: now,
          });
        }
      }
    });
  }

  /** Records which stored services fail validation; logs each new or changed problem once. */
  private checkStored(services: Service[]): void {
    const limits = this.specLimits();
    const next = new Map<string, { name: string; problem: string }>();
    for (const s of services) {
      const found = specProblems(s.spec, limits, { stored: true });
      if (found.length === 0) continue;
      next.set(s.id, { name: String(s.spec?.name), problem: found.join("; ") });
    }
    const ids = new Set(services.map((s) => s.id));
    for (const id of this.reported.keys()) if (!ids.has(id)) this.reported.delete(id);
    this.replaceInvalid(next);
  }

  private replaceInvalid(next: Map<string, { name: string; problem: string }>): void {
    for (const [id, v] of next) {
      if (this.reported.get(id) === v.problem) continue;
      this.reported.set(id, v.problem);
      this.log.error(
        `service ${v.name} (${id}) is invalid and left alone until it is updated or removed: ${v.problem}`,
      );
    }
    this.invalid = next;
  }

  /** The pass's input without invalid services; their tasks are kept apart (`skipped`). */
  private withoutInvalid(input: { services: Service[]; tasks: Task[]; nodes: Node[] }) {
    if (this.invalid.size === 0) return { ...input, skipped: [] as Task[] };
    return {
      services: input.services.filter((s) => !this.invalid.has(s.id)),
      tasks: input.tasks.filter((t) => !this.invalid.has(t.serviceId)),
      nodes: input.nodes,
      skipped: input.tasks.filter((t) => this.invalid.has(t.serviceId)),
    };
  }

  /** Runs `fn` for one service; a throw marks the service invalid (reported) instead of
   * failing the whole pass. */
  private guard<T>(s: Service, fn: () => T): T | undefined {
    try {
      return fn();
    } catch (err) {
      const next = new Map(this.invalid);
      next.set(s.id, {
        name: s.spec.name,
        problem: `the orchestrator failed on it: ${String(err)}`,
      });
      this.replaceInvalid(next);
      return undefined;
    }
  }

  /** The reconciler's actions, one service at a time (services are independent), so that one
   * service it cannot handle does not stop the others. */
  private reconcileEach(input: { services: Service[]; tasks: Task[]; nodes: Node[] }, now: number) {
    const opts = { historyLimit: this.opts.historyLimit, newTaskId: newId };
    const byService = new Map<string, Task[]>();
    for (const t of input.tasks) {
      const list = byService.get(t.serviceId);
      if (list) list.push(t);
      else byService.set(t.serviceId, [t]);
    }
    const actions: Action[] = [];
    for (const s of input.services) {
      const tasks = byService.get(s.id) ?? [];
      byService.delete(s.id);
      const mine = this.guard(s, () =>
        reconcile({ services: [s], tasks, nodes: input.nodes, now, cluster: input }, opts),
      );
      if (mine) actions.push(...mine);
    }
    // Tasks of removed services.
    const orphans = [...byService.values()].flat();
    if (orphans.length > 0) {
      actions.push(...reconcile({ services: [], tasks: orphans, nodes: input.nodes, now }, opts));
    }
    return actions;
  }

  private hasNewReasons(
    tasks: Task[],
    unschedulable: Array<{ taskId: string; reason: string }>,
  ): boolean {
    const byId = new Map(tasks.map((t) => [t.id, t]));
    return unschedulable.some((u) => {
      const t = byId.get(u.taskId);
      return !t || t.status.state !== "pending" || t.status.err !== u.reason;
    });
  }

  private apply(tx: WriteTx, a: Action, now: number): void {
    applyAction(
      { get: (id) => tx.getTask(id), put: (t) => tx.putTask(t), remove: (id) => tx.deleteTask(id) },
      a,
      now,
    );
  }

  // ---- agent reports ----------------------------------------------------------------------

  /** Applies task status reports from a node's agent; states only move forward. */
  async reportStatus(nodeId: string, reports: StatusReport[]): Promise<void> {
    if (reports.length === 0) return;
    const now = Date.now();
    await this.store.update((tx) => {
      for (const r of reports) {
        const t = tx.getTask(r.taskId);
        if (!t || t.nodeId !== nodeId) continue;
        if (stateIndex(r.state) < stateIndex(t.status.state) && !isTerminal(r.state)) continue;
        // A finished task stays finished; an orphaned one (its node was down) may only be
        // confirmed stopped, never brought back to life.
        if (isTerminal(t.status.state) && (t.status.state !== "orphaned" || !isTerminal(r.state)))
          continue;
        const health = r.health ?? t.status.health;
        if (
          r.state === t.status.state &&
          r.pid === t.status.pid &&
          JSON.stringify(health) === JSON.stringify(t.status.health)
        )
          continue;
        const status: TaskStatus = {
          ...t.status,
          state: r.state,
          message: r.message,
          err: r.err ?? "",
          timestamp: r.state === t.status.state ? t.status.timestamp : now,
          exitCode: r.exitCode ?? t.status.exitCode,
          pid: r.pid ?? t.status.pid,
          ...(health ? { health } : {}),
        };
        tx.putTask({ ...t, status, hostPorts: r.hostPorts ?? t.hostPorts, updatedAt: now });
      }
    });
  }

  /**
   * Records a heartbeat in memory; only a node coming back (down → ready) or reporting other
   * facts (drivers, resources, enforceable limits) than before is a store write.
   */
  async heartbeat(nodeId: string, now = Date.now(), facts: Partial<NodeFacts> = {}): Promise<void> {
    this.liveness.heard(nodeId, now, this.nodeDownAfterMs());
    const changed = (n: Node) =>
      n.status !== "ready" ||
      (facts.engineVersion !== undefined && n.engineVersion !== facts.engineVersion) ||
      (facts.drivers !== undefined && (n.drivers ?? []).join() !== facts.drivers.join()) ||
      (facts.resources !== undefined &&
        (n.resources.nanoCpus !== facts.resources.nanoCpus ||
          n.resources.memoryBytes !== facts.resources.memoryBytes)) ||
      (facts.limits !== undefined && JSON.stringify(n.limits) !== JSON.stringify(facts.limits)) ||
      (facts.networks !== undefined &&
        JSON.stringify(n.networks) !== JSON.stringify(facts.networks)) ||
      (facts.tls !== undefined && JSON.stringify(n.tls) !== JSON.stringify(facts.tls));
    const known = this.store.view((tx) => tx.getNode(nodeId));
    if (!known || !changed(known)) return;
    await this.store.update((tx) => {
      const n = tx.getNode(nodeId);
      if (!n || !changed(n)) return;
      const back = n.status !== "ready";
      tx.putNode({
        ...n,
        ...(back ? { lastSeen: now, status: "ready" as const } : {}),
        ...(facts.engineVersion !== undefined ? { engineVersion: facts.engineVersion } : {}),
        ...(facts.drivers !== undefined ? { drivers: facts.drivers } : {}),
        ...(facts.resources !== undefined ? { resources: facts.resources } : {}),
        ...(facts.limits !== undefined ? { limits: facts.limits } : {}),
        ...(facts.networks !== undefined ? { networks: facts.networks } : {}),
        ...(facts.tls !== undefined ? { tls: facts.tls } : {}),
        updatedAt: now,
      });
    });
  }

  // ---- the API's operations ---------------------------------------------------------------

  async createService(spec: ServiceSpec): Promise<Service> {
    validateSpec(spec, this.specLimits());
    const now = Date.now();
    return this.store.update((tx) => {
      if (tx.getServiceByName(spec.name)) {
        throw new ManagerError("ERR_NAME_IN_USE", `service name "${spec.name}" is already in use`);
      }
      this.checkPublishedPorts(tx.listServices(), spec, "");
      const s: Service = withVips(tx, {
        id: newId(),
        spec: resolveSpecFiles(tx, resolveSpecNetworks(tx, spec)),
        version: 1,
        previousSpec: null,
        createdAt: now,
        updatedAt: now,
      });
      tx.putService(s);
      return s;
    });
  }

  async updateService(ref: string, change: (spec: ServiceSpec) => ServiceSpec): Promise<Service> {
    const now = Date.now();
    return this.store.update((tx) => {
      const cur = this.findService(tx, ref);
      const changed = change(structuredClone(cur.spec));
      validateSpec(changed, this.specLimits());
      const next = resolveSpecFiles(tx, resolveSpecNetworks(tx, changed));
      if (next.name !== cur.spec.name)
        throw new ManagerError("ERR_INVALID", "a service cannot be renamed");
      this.checkPublishedPorts(tx.listServices(), next, cur.id);
      if (JSON.stringify(next) === JSON.stringify(cur.spec)) return cur;
      const version = versionAfter(cur, next);
      const s: Service = withVips(tx, {
        ...cur,
        spec: next,
        version,
        previousSpec: cur.spec,
        updateStatus:
          version === cur.version
            ? cur.updateStatus
            : {
                state: "updating",
                version,
                startedAt: now,
                completedAt: null,
                message: "update in progress",
              },
        updatedAt: now,
      });
      tx.putService(s);
      return s;
    });
  }

  /**
   * `service scale` (and the autoscaler): a replicated service's replica count; nothing else
   * changes, so no task is replaced. `ifReplicas`: only while the count is still this (the
   * autoscaler decided from it; a `service scale` in between wins: ERR_CONFLICT). `keepPrevious`:
   * the spec a rollback returns to stays (with this count), so the autoscaler's steps never make a
   * rollback go back to the spec being rolled out.
   */
  async scaleService(
    ref: string,
    replicas: number,
    opts: { ifReplicas?: number; keepPrevious?: boolean } = {},
  ): Promise<Service> {
    const now = Date.now();
    return this.store.update((tx) => {
      const cur = this.findService(tx, ref);
      if (!("replicated" in cur.spec.mode)) {
        throw new ManagerError("ERR_INVALID", `scale can only be used with replicated mode`);
      }
      const had = cur.spec.mode.replicated.replicas;
      if (opts.ifReplicas !== undefined && had !== opts.ifReplicas) {
        throw new ManagerError(
          "ERR_CONFLICT",
          `service ${cur.spec.name} has ${had} replicas now, not ${opts.ifReplicas}`,
        );
      }
      const mode = { replicated: { replicas } };
      const spec: ServiceSpec = { ...cur.spec, mode };
      validateSpec(spec, this.specLimits());
      if (replicas === had) return cur;
      const prev = cur.previousSpec;
      const previousSpec = !opts.keepPrevious
        ? cur.spec
        : prev && "replicated" in prev.mode
          ? { ...prev, mode }
          : prev;
      const s: Service = { ...cur, spec, previousSpec, updatedAt: now };
      tx.putService(s);
      return s;
    });
  }

  /** `service rollback`: the previous spec back, rolled out like an update. */
  async rollbackService(ref: string): Promise<Service> {
    const now = Date.now();
    return this.store.update((tx) => {
      const cur = this.findService(tx, ref);
      if (!cur.previousSpec) {
        throw new ManagerError(
          "ERR_INVALID",
          `service ${cur.spec.name} does not have a previous spec to roll back to`,
        );
      }
      return this.rollback(tx, cur, now, "manually requested rollback");
    });
  }

  private rollback(tx: WriteTx, cur: Service, now: number, message: string): Service {
    const spec = cur.previousSpec!;
    const version = versionAfter(cur, spec);
    const s: Service = withVips(tx, {
      ...cur,
      spec,
      previousSpec: cur.spec,
      version,
      updateStatus: {
        state: "rollback_started",
        version,
        startedAt: now,
        completedAt: null,
        message,
      },
      updatedAt: now,
    });
    tx.putService(s);
    return s;
  }

  async removeService(ref: string): Promise<Service> {
    return this.store.update((tx) => {
      const cur = this.findService(tx, ref);
      tx.deleteService(cur.id);
      return cur;
    });
  }

  findService(
    tx: {
      getService(id: string): Service | undefined;
      getServiceByName(n: string): Service | undefined;
      listServices(): Service[];
    },
    ref: string,
  ): Service {
    const s =
      tx.getService(ref) ??
      tx.getServiceByName(ref) ??
      (ref.length >= 3 ? uniquePrefix(tx.listServices(), ref) : undefined);
    if (!s) throw new ManagerError("ERR_NOT_FOUND", `service ${ref} not found`);
    return s;
  }

  private checkPublishedPorts(services: Service[], spec: ServiceSpec, selfId: string): void {
    for (const p of spec.ports) {
      for (const other of services) {
        if (other.id === selfId) continue;
        if (
          other.spec.ports.some((o) => o.published === p.published && o.protocol === p.protocol)
        ) {
          throw new ManagerError(
            "ERR_PORT_IN_USE",
            `port '${p.published}' is already in use by service '${other.spec.name}' (${other.id})`,
          );
        }
      }
    }
  }

  findNode(tx: { getNode(id: string): Node | undefined; listNodes(): Node[] }, ref: string): Node {
    const n =
      tx.getNode(ref) ??
      tx.listNodes().find((x) => x.hostname === ref) ??
      (() => {
        const found = tx.listNodes().filter((x) => x.id.startsWith(ref));
        return found.length === 1 ? found[0] : undefined;
      })();
    if (!n) throw new ManagerError("ERR_NOT_FOUND", `node ${ref} not found`);
    return n;
  }

  /** `node update`: availability, labels and role (`node promote`/`demote`, with the daemon's
   * hooks, which make the node's machine follow). */
  async updateNode(ref: string, u: NodeUpdate): Promise<Node> {
    if (u.availability !== undefined && !["active", "pause", "drain"].includes(u.availability)) {
      throw new ManagerError(
        "ERR_INVALID",
        `invalid availability "${u.availability}": active, pause or drain`,
      );
    }
    if (u.role !== undefined && u.role !== "worker" && u.role !== "manager") {
      throw new ManagerError("ERR_INVALID", `invalid role "${String(u.role)}": worker or manager`);
    }
    // Set by the run of the batch's function that committed (the store may run it again).
    let demoted = false;
    const updated = await this.store.update((tx) => {
      const n = this.findNode(tx, ref);
      const labels = { ...n.labels, ...(u.labelAdd ?? {}) };
      for (const k of u.labelRm ?? []) delete labels[k];
      const role = u.role ?? n.role;
      const promote = role === "manager" && n.role === "worker";
      if (promote && !this.onPromote) {
        throw new ManagerError(
          "ERR_UNSUPPORTED",
          "promoting a worker needs a manager daemon that can make it one: join the machine with the manager token instead (shoal swarm join-token manager)",
        );
      }
      const demote = role === "worker" && n.role === "manager";
      if (demote) {
        // swarmkit's words.
        if (tx.listNodes().filter((x) => x.role === "manager").length <= 1) {
          throw new ManagerError(
            "ERR_INVALID",
            "rpc error: code = FailedPrecondition desc = attempting to demote the last manager of the swarm",
          );
        }
        if (!this.onDemote) {
          throw new ManagerError(
            "ERR_UNSUPPORTED",
            "demoting a manager needs several managers on an etcd store (managers that joined with the manager token)",
          );
        }
      }
      const next: Node = {
        ...n,
        role,
        availability: u.availability ?? n.availability,
        labels,
        updatedAt: Date.now(),
      };
      tx.putNode(next);
      if (demote) this.onDemote!(tx, next);
      if (promote) this.onPromote!(tx, next);
      demoted = demote;
      return next;
    });
    if (demoted) await this.afterDemote?.(updated);
    return updated;
  }

  /**
   * `node rm`: as swarmkit's RemoveNode, a manager that is still a member of the store's cluster
   * is refused even with --force (demote it first); one that left it (`swarm leave --force`) is
   * removed as a worker is: when down, or with --force.
   */
  async removeNode(ref: string, force: boolean): Promise<Node> {
    const found = this.store.view((tx) => this.findNode(tx, ref));
    const member =
      found.role === "manager" ? await (this.storeMember?.(found) ?? Promise.resolve(true)) : false;
    return this.store.update((tx) => {
      const n = this.findNode(tx, ref);
      if (n.role === "manager" && (member || found.role !== "manager")) {
        // swarmkit's words (a manager holds a member of the store's cluster).
        throw new ManagerError(
          "ERR_INVALID",
          `rpc error: code = FailedPrecondition desc = node ${n.id} is a cluster manager and is a member of the raft cluster. It must be demoted to worker before removal`,
        );
      }
      if (n.status === "ready" && !force) {
        throw new ManagerError(
          "ERR_INVALID",
          `node ${n.id} is not down and can't be removed (use --force to remove it anyway)`,
        );
      }
      tx.deleteNode(n.id);
      if (n.role === "manager") this.onRemoveManager?.(tx, n);
      const secrets = tx.getMeta<NodeSecrets>(NODE_SECRETS);
      if (secrets?.[n.id] !== undefined) {
        const { [n.id]: _gone, ...rest } = secrets;
        tx.putMeta(NODE_SECRETS, rest);
      }
      this.liveness.forget(n.id);
      return n;
    });
  }

  // ---- networks ---------------------------------------------------------------------------

  async createNetwork(req: NetworkCreate): Promise<Network> {
    const now = Date.now();
    return this.store.update((tx) => createNetworkIn(tx, req, newId(), now));
  }

  async removeNetwork(ref: string): Promise<Network> {
    return this.store.update((tx) => removeNetworkIn(tx, ref));
  }

  // ---- secrets and configs ----------------------------------------------------------------

  async createFile(kind: FileKind, req: SecretCreate) {
    const now = Date.now();
    return this.store.update((tx) => createFileIn(tx, kind, req, newId(), now));
  }

  async removeFile(kind: FileKind, ref: string) {
    return this.store.update((tx) => removeFileIn(tx, kind, ref));
  }

  async registerNode(node: Node): Promise<void> {
    await this.store.update((tx) => tx.putNode(node));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.unwatch?.();
    this.unwatchStalls?.();
    await this.events.stop();
    this.metrics.stop();
  }
}

/**
 * The version a service has with `next` as its spec: bumped only by a change that affects its
 * tasks (scaling, and the update, rollback and autoscale settings themselves replace nothing).
 */
function versionAfter(cur: Service, next: ServiceSpec): number {
  // Without the fields that replace nothing (removed, not nulled: a field given on one side
  // only must not change the key order and so the text).
  const strip = ({ mode, update: _u, rollback: _r, autoscale: _a, ...rest }: ServiceSpec) =>
    JSON.stringify({ ...rest, mode: "replicated" in mode ? "replicated" : "global" });
  return strip(next) === strip(cur.spec) ? cur.version : cur.version + 1;
}

function uniquePrefix(services: Service[], ref: string): Service | undefined {
  const found = services.filter((s) => s.id.startsWith(ref));
  return found.length === 1 ? found[0] : undefined;
}
