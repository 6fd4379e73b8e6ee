// Several managers on one etcd store: what a manager daemon adds to the single-manager one.
//
// - The store is an EtcdStore fenced by this manager's leadership (LeaderElection on the same
//   etcd); before it campaigns, a manager registers itself unfenced (`bootstrapping`): that write
//   is serialized with the leader's by the store's rev-key guard, and decides nothing.
// - Only the leader reconciles, schedules, marks nodes down, sends assignments, autoscales and
//   records events (the Manager's, Dispatcher's and Autoscaler's `leading` predicates say so).
//   A new leader first brings its mirror up to etcd's latest commit (`store.sync()`).
// - A follower serves reads from its mirror and forwards every write of the API to the leader
//   over the control bus: the request (method, URL, JSON body) goes to `$SHOAL.mgr.<leader
//   id>.api`, which only managers may use (the agent user over loopback, a manager's
//   certificate), and the leader answers it by injecting it into its own API (the same routes,
//   schemas and errors as a local call). Without a leader a write fails with Swarm's words.
// - Each manager's entry in the meta key `managers` names its bus, client and route URLs: the
//   next manager's message server routes to those of the others (one NATS cluster), and joins
//   hand workers every manager's bus URL.
// - Every manager beats on the bus (`$SHOAL.mgr.beat`): a leader that the others stop hearing
//   has its lease revoked by them, so a new leader need not wait for etcd to expire it
//   (leader-silence.ts says when).

import type { NatsConnection, Subscription } from "nats";
import { connect, JSONCodec } from "nats";
import type { Etcd3 } from "etcd3";
import { LeaderElection } from "../store/leader.js";
import { openEtcdStore, type EtcdStore, type EtcdStoreOptions, type Fence } from "../store/etcd.js";
import { ManagerError } from "../manager/errors.js";
import {
  AGENT_USER,
  INBOX_PREFIX,
  SUBJECT_PREFIX,
  ForwardReplySchema,
  ForwardRequestSchema,
  ManagerBeatSchema,
  managerBeatSubject,
  type ForwardReply,
  type ForwardRequest,
  type ManagerBeat,
} from "../api/bus.js";
import { decode, DroppedMessages } from "../api/schema.js";
import { BEAT_MS, DEPOSE_AFTER_MS, LeaderSilence } from "./leader-silence.js";
import type { Logger } from "../lib/log.js";

/** Swarm's words when no manager leads. */
export const NO_LEADER =
  "The swarm does not have a leader. It's possible that too few managers are online. Make sure more than half of the managers are online.";

/** The meta key holding each manager's addresses. */
export const MANAGERS_META = "managers";

/** Where a manager's message server is reached. */
export interface ManagerAddrs {
  /** The nodes' listener (mutual TLS): workers' agents. */
  bus: string;
  /** The client port: applications. */
  app: string;
  /** The cluster port: routes from the other managers. */
  route: string;
  /** The join endpoint, host:port. */
  join: string;
}

export type ManagersMeta = Record<string, ManagerAddrs>;

/** Opens the etcd store; an etcd that cannot be reached is an error naming its endpoints. */
export async function openManagersStore(
  endpoints: string[],
  fence: () => Fence | null | undefined,
  log: Logger,
  /** Client TLS (an external etcd's files, or on managed members the node's certificate) and,
   * on managed members, their raised limits. */
  managed?: Pick<EtcdStoreOptions, "tls" | "maxTxnOps" | "maxTxnBytes">,
): Promise<EtcdStore> {
  try {
    return await openEtcdStore({
      endpoints,
      fence,
      onWarning: (m) => log.warn(`store: ${m}`),
      ...managed,
    });
  } catch (err) {
    throw new ManagerError(
      "ERR_INVALID",
      `cannot use the etcd store at ${endpoints.join(", ")}: ${(err as Error).message} (is etcd running there and reachable from this machine?${managed?.tls ? " Does --store-cacert name the CA of its certificates, and do --store-cert and --store-key name a certificate it accepts?" : ""})`,
      { cause: err },
    );
  }
}

export type { ForwardRequest, ForwardReply };

const codec = JSONCodec<unknown>();
const apiSubject = (nodeId: string) => `${SUBJECT_PREFIX}.mgr.${nodeId}.api`;
/** How long a follower waits for the leader's answer. */
const FORWARD_TIMEOUT_MS = 15_000;
/**
 * How long a write waits for an election under way (a leader lease is 3 s, and a new leader is
 * known about 2.5-7 s after the old one's death) before it fails for want of a leader.
 */
const LEADER_WAIT_MS = 8000;

export interface LeadershipOptions {
  client: Etcd3;
  store: EtcdStore;
  nodeId: string;
  /** The local message server (agent user). */
  natsUrl: string;
  agentPass: string;
  /** Answers a forwarded request (the leader's API, by injection). */
  answer: (req: ForwardRequest) => Promise<ForwardReply>;
  /** Called (serialized) when this manager starts or stops leading. */
  onLead: (leading: boolean) => Promise<void>;
  log: Logger;
  /** A monotonic clock in ms for the leader's silence (tests inject one). */
  now?: () => number;
  /** The leader lease's TTL in seconds (default: the election's, 3). */
  ttlSeconds?: number;
  /** While this manager leads: the manager that led before it went silent for good (once a
   * term; `silentPreviousLeader`). */
  onPreviousLeaderSilent?: (prev: { nodeId: string; heardAt: number }) => void;
}

/** Leader election, the leader's duties switched on and off, and writes forwarded to it. */
export class Leadership {
  private election!: LeaderElection;
  private nc: NatsConnection | null = null;
  private sub: Subscription | null = null;
  private leading = false;
  private chain: Promise<void> = Promise.resolve();
  private closed = false;
  private unlisten: (() => void) | null = null;
  private timer: NodeJS.Timeout | null = null;
  private beatSub: Subscription | null = null;
  private beatTimer: NodeJS.Timeout | null = null;
  private deposing = false;
  private otherLeader: string | undefined;
  /** Whether this term told `onPreviousLeaderSilent` already. */
  private toldSilent = false;
  private readonly silence: LeaderSilence;
  private readonly dropped: DroppedMessages;
  private readonly now: () => number;

  constructor(private readonly opts: LeadershipOptions) {
    this.now = opts.now ?? (() => performance.now());
    this.silence = new LeaderSilence(opts.nodeId);
    this.dropped = new DroppedMessages((m) => opts.log.warn(m));
  }

  async start(): Promise<void> {
    const { opts } = this;
    this.nc = await connect({
      servers: opts.natsUrl,
      user: AGENT_USER,
      pass: opts.agentPass,
      name: "shoal-manager-forward",
      inboxPrefix: INBOX_PREFIX,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
    });
    this.sub = this.nc.subscribe(apiSubject(opts.nodeId), {
      callback: (err, msg) => {
        if (err) return;
        void (async () => {
          let reply: ForwardReply;
          const req = decode(ForwardRequestSchema, msg.data, "forwarded request");
          try {
            if (!req.ok) throw req.error;
            reply = await opts.answer(req.value);
          } catch (e) {
            reply = {
              status: req.ok ? 500 : 400,
              contentType: "application/json",
              body: JSON.stringify({
                message: (e as Error).message,
                code: req.ok ? "ERR_INTERNAL" : "ERR_INVALID",
              }),
            };
          }
          msg.respond(codec.encode(reply));
        })();
      },
    });
    this.beatSub = this.nc.subscribe(managerBeatSubject, {
      callback: (err, msg) => {
        if (err) return;
        const beat = decode(ManagerBeatSchema, msg.data, "manager beat");
        if (beat.ok) this.silence.beat(beat.value, this.now());
        else this.dropped.drop(msg.subject, beat.error);
      },
    });
    this.election = await LeaderElection.start({
      client: opts.client,
      id: opts.nodeId,
      ...(opts.ttlSeconds !== undefined ? { ttlSeconds: opts.ttlSeconds } : {}),
      onWarning: (m) => opts.log.warn(`election: ${m}`),
    });
    this.unlisten = this.election.onChange(() => this.changed());
    // Level-triggered too: the standing is checked every second, whatever was heard.
    this.timer = setInterval(() => this.changed(), 1000);
    this.timer.unref();
    this.beatTimer = setInterval(() => this.beat(), BEAT_MS);
    this.beatTimer.unref();
    this.beat();
    this.changed();
  }

  /** Says to the other managers which leader this one sees, then checks that leader's silence. */
  private beat(): void {
    if (this.closed || !this.nc) return;
    const now = this.now();
    const leaderId = this.election.leaderId;
    if (leaderId !== undefined && leaderId !== this.opts.nodeId) this.otherLeader = leaderId;
    const beat: ManagerBeat = {
      nodeId: this.opts.nodeId,
      ...(leaderId !== undefined ? { leaderId } : {}),
      leaderSilentMs: this.silence.silentFor(leaderId, now),
    };
    this.nc.publish(managerBeatSubject, codec.encode(beat));
    if (this.leading && !this.toldSilent) {
      const prev = this.silentPreviousLeader();
      if (prev) {
        this.toldSilent = true;
        this.opts.onPreviousLeaderSilent?.(prev);
      }
    }
    const verdict = this.silence.tick(leaderId, now);
    if (verdict.depose && !this.deposing)
      void this.depose(verdict.leaderId, verdict.witnesses, now);
  }

  /** Whether a beat of manager `nodeId` was heard (since this one started, or last stalled). */
  heardFrom(nodeId: string): boolean {
    return this.silence.lastHeard(nodeId) !== undefined;
  }

  /**
   * The manager that led before this one (the last other leader it saw) and when its beat was
   * last heard (wall clock), when it has been silent as long as a deposed leader is
   * (DEPOSE_AFTER_MS): dead or cut off, not resigning (a demoted or restarting leader goes
   * silent for a moment, and its node keeps the grace every node gets).
   */
  silentPreviousLeader(): { nodeId: string; heardAt: number } | undefined {
    const nodeId = this.otherLeader;
    const heard = nodeId === undefined ? undefined : this.silence.lastHeard(nodeId);
    if (nodeId === undefined || heard === undefined) return undefined;
    const silentMs = this.now() - heard;
    if (silentMs < DEPOSE_AFTER_MS) return undefined;
    return { nodeId, heardAt: Date.now() - silentMs };
  }

  /** Ends the term of a leader nobody hears (revokes its lease): the next candidate leads. */
  private async depose(leaderId: string, witnesses: string[], now: number): Promise<void> {
    this.deposing = true;
    const silent = (this.silence.silentFor(leaderId, now) / 1000).toFixed(1);
    try {
      if (await this.election.depose(leaderId)) {
        this.opts.log.warn(
          `the leader (${leaderId}) was not heard for ${silent} s by this manager nor by ${witnesses.join(", ")}: its lease is revoked, a new leader will be elected`,
        );
      }
    } catch (err) {
      this.opts.log.warn(
        `revoking the silent leader's (${leaderId}) lease failed: ${(err as Error).message}`,
      );
    } finally {
      this.deposing = false;
    }
  }

  /** The leader's fence for the store (null while this manager does not lead). */
  fence(): Fence | null {
    return this.election ? this.election.fence() : null;
  }

  /** Whether this manager leads and its mirror caught up when it began to. */
  isLeader(): boolean {
    return this.leading && !!this.election?.isLeader;
  }

  /** The leader's node id, as this manager knows it (undefined: none now). */
  leaderId(): string | undefined {
    return this.election?.leaderId;
  }

  private settling = false;

  private changed(): void {
    if (this.settling) return; // the settle under way reads the standing when it runs
    this.settling = true;
    this.chain = this.chain.then(() => {
      this.settling = false;
      return this.settle();
    });
  }

  private async settle(): Promise<void> {
    if (this.closed) return;
    const want = this.election.isLeader;
    if (want === this.leading) return;
    if (want) {
      try {
        await this.opts.store.sync();
      } catch (err) {
        this.opts.log.warn(`cannot lead yet: ${(err as Error).message}`);
        setTimeout(() => this.changed(), 500).unref();
        return;
      }
      if (!this.election.isLeader) return;
      this.leading = true;
      this.toldSilent = false;
      this.opts.log.info(`this manager (${this.opts.nodeId}) is the leader`);
    } else {
      this.leading = false;
      this.opts.log.warn(`this manager (${this.opts.nodeId}) no longer leads`);
    }
    await this.opts.onLead(this.leading).catch((err: Error) => {
      this.opts.log.error(`switching the leader's duties failed: ${err.message}`);
    });
  }

  /**
   * Sends an API write to the leader; null when this manager leads (it handles it itself).
   * While an election is under way (no leader known, or this manager elected and taking up its
   * duties) it waits up to LEADER_WAIT_MS; then, still without a leader: ERR_NO_LEADER with
   * Swarm's words, nothing sent.
   */
  async forward(req: ForwardRequest): Promise<ForwardReply | null> {
    const deadline = Date.now() + LEADER_WAIT_MS;
    let leader: string | undefined;
    for (;;) {
      if (this.isLeader()) return null;
      leader = this.election.leaderId;
      if (leader !== undefined && leader !== this.opts.nodeId && this.nc) break;
      if (this.closed || Date.now() >= deadline) {
        throw new ManagerError("ERR_NO_LEADER", NO_LEADER);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    try {
      const msg = await this.nc.request(apiSubject(leader), codec.encode(req), {
        timeout: FORWARD_TIMEOUT_MS,
      });
      const reply = decode(ForwardReplySchema, msg.data, "the leader's answer");
      if (!reply.ok) throw reply.error;
      return reply.value;
    } catch (err) {
      throw new ManagerError(
        "ERR_NO_LEADER",
        `the leader (${leader}) did not answer (${(err as Error).message}). ${NO_LEADER}`,
        { cause: err },
      );
    }
  }

  /** Resigns (the next manager leads at once) and stops. */
  async stop(): Promise<void> {
    await this.halt(false);
  }

  /** Stops without resigning and goes silent, as a manager whose machine died (tests). */
  async abandon(): Promise<void> {
    await this.halt(true);
  }

  private async halt(crash: boolean): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    if (this.beatTimer) clearInterval(this.beatTimer);
    this.beatSub?.unsubscribe();
    this.unlisten?.();
    await this.chain;
    if (crash) await this.election?.abandon();
    else await this.election?.close();
    this.leading = false;
    this.sub?.unsubscribe();
    await this.nc?.close().catch(() => {});
  }
}

/** Whether an API request writes, so that a follower forwards it to the leader. */
export function isApiWrite(method: string, url: string): boolean {
  const [path, query = ""] = url.split("?", 2);
  if (method === "GET" || method === "HEAD") {
    return path === "/v1/dashboard/token" || /(^|&)rotate=(1|true)(&|$)/.test(query);
  }
  return path !== "/v1/swarm/leave";
}
