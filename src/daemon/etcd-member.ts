// A managed etcd member: the etcd process a manager runs and supervises when the state lives in
// etcd on the managers themselves (issue 14, "managed"). Its data is under `<node data dir>/etcd`,
// its name is the node id, its client and peer URLs are on the manager's address (ports 4379 and
// 4380 by default, beside a user's own etcd on 2379/2380), and both clients and peers must
// present a manager's certificate from the cluster CA (the node's certificate files,
// `certPaths()`; a manager's names "swarm-manager" in its DNS SANs, a worker's does not): the
// member serves with the node certificate and trusts only the cluster CA.
//
// Three ways to start (`EtcdStart`):
//   - "new": the first member of a new cluster (--initial-cluster-state new);
//   - "join": a member the caller has added through the existing members' cluster API first
//     (`addEtcdMember`, which returns the initial cluster to start with);
//   - "restart": a member with data from an earlier run (etcd ignores the initial-cluster flags).
// A member is added as a raft learner, which does not count towards the quorum: a manager whose
// daemon never starts its member (a promotion or join that fails half way) leaves the others
// writing, even a cluster of one. Once the learner runs and has caught up, `start` promotes it to
// a voting member through the voting members' client URLs that `addEtcdMember` returned (a
// learner refuses every client request but its status).
// `removeEtcdMember` takes a member out (node demote, a forced leave), through any other member.
// A member removed while it was down exits when it starts again (its peers refuse it): the start
// fails with ERR_ETCD_REMOVED.
//
// etcd reads its certificate and key files at each handshake but its trusted CA file only when
// it starts: `restart()` restarts a member on purpose (the root CA rotation, member-trust.ts),
// and `trustedPem` is what the running member read from that file.
//
// The supervisor restarts a member that exits without being asked to, after a backoff that
// doubles from `restartMinMs` to `restartMaxMs` (reset once a run stayed up `restartResetMs`),
// logging each exit with etcd's last lines. `stop()` ends it by pid: SIGTERM, SIGKILL after a
// grace. The pid is kept in `<data dir>/etcd/shoal-etcd.pid`, so a daemon that died without
// stopping its member ends the orphan (checked by its command line) before starting again.
//
// The members run with raised transaction limits (`MANAGED_MAX_TXN_OPS`,
// `MANAGED_MAX_REQUEST_BYTES`); the etcd store on them is told `managedStoreLimits()`.

import { spawn, type ChildProcess } from "node:child_process";
import { EventEmitter } from "node:events";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { request } from "node:https";
import { createServer } from "node:net";
import { join } from "node:path";
import type { Etcd3, IMember } from "etcd3";
import { certPaths, roleOu } from "../manager/ca.js";
import { etcdClient, type EtcdTls } from "../store/etcd.js";
import { joinHostPort } from "../lib/addr.js";
import { silentLogger, type Logger } from "../lib/log.js";

export const DEFAULT_ETCD_CLIENT_PORT = 4379;
export const DEFAULT_ETCD_PEER_PORT = 4380;
/** --max-txn-ops of the managed members. */
export const MANAGED_MAX_TXN_OPS = 10_000;
/** --max-request-bytes of the managed members (10 MiB, etcd's advised ceiling). */
export const MANAGED_MAX_REQUEST_BYTES = 10 * 1024 * 1024;
export const ETCD_INSTALL_HINT = "apt-get install etcd-server (Debian/Ubuntu), or set ETCD";

/** The limits to give an etcd store on managed members (room left for the request's framing). */
export function managedStoreLimits(): { maxTxnOps: number; maxTxnBytes: number } {
  return { maxTxnOps: MANAGED_MAX_TXN_OPS, maxTxnBytes: MANAGED_MAX_REQUEST_BYTES - 512 * 1024 };
}

export type EtcdMemberErrorCode =
  /** No etcd binary. */
  | "ERR_ETCD_MISSING"
  /** A client or peer port is taken. */
  | "ERR_ETCD_PORT"
  /** Bad options, or a start mode that does not fit the data dir. */
  | "ERR_ETCD_INVALID"
  /** The member exited or did not become healthy while starting. */
  | "ERR_ETCD_START"
  /** The cluster API refused a member change. */
  | "ERR_ETCD_MEMBER"
  /** The member was removed from the cluster (its data is of no use any more). */
  | "ERR_ETCD_REMOVED";

export class EtcdMemberError extends Error {
  constructor(
    readonly code: EtcdMemberErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "EtcdMemberError";
  }
}

/** How a member starts: see the file's header. */
export type EtcdStart =
  | { mode: "new" }
  | ({ mode: "join"; initialCluster: string } & Partial<LearnerPromotion>)
  | ({ mode: "restart" } & Partial<LearnerPromotion>);

/** A member added as a learner, and where to promote it: the voting members' client URLs. */
export interface LearnerPromotion {
  memberId: string;
  endpoints: string[];
}

export interface EtcdMemberOptions {
  /** The node id: the member's name. */
  nodeId: string;
  /** The node's data dir: etcd's data goes under `<dataDir>/etcd`, certificates from `certPaths`. */
  dataDir: string;
  /** The manager's address (an IP): the member listens and advertises there. */
  addr: string;
  clientPort?: number;
  peerPort?: number;
  /** The etcd binary (default: $ETCD, then `etcd` on PATH, /usr/bin, /usr/sbin). */
  bin?: string;
  /** Certificate files (default: the node's, `certPaths(dataDir)`). */
  certFiles?: { ca: string; cert: string; key: string };
  /** The cluster's token (--initial-cluster-token), e.g. the cluster id. */
  clusterToken?: string;
  /** Extra etcd flags (tests: shorter heartbeats...). */
  extraArgs?: string[];
  log?: Logger;
  /** How long a start may take to answer healthy (default 30 s). */
  startTimeoutMs?: number;
  restartMinMs?: number;
  restartMaxMs?: number;
  restartResetMs?: number;
  /** SIGTERM → SIGKILL grace of `stop()` (default 10 s). */
  stopGraceMs?: number;
}

/** Finds the etcd binary, or null. $ETCD, when set, is the only place looked at. */
export function findEtcd(): string | null {
  const given = process.env["ETCD"];
  if (given) return existsSync(given) ? given : null;
  const candidates = [
    ...(process.env["PATH"] ?? "").split(":").map((d) => (d ? `${d}/etcd` : "")),
    "/usr/bin/etcd",
    "/usr/sbin/etcd",
  ];
  for (const c of candidates) if (c && existsSync(c)) return c;
  return null;
}

/** Whether etcd's output says its member was removed from the cluster: etcd 3.4 logs "the
 * member has been permanently removed from the cluster" (a removed member that starts again
 * hears it from its peers and exits, code 0), or "member has already been removed". */
export function wasRemoved(output: string): boolean {
  return /permanently removed from the cluster|member has already been removed/.test(output);
}

/** The client URL of the managed member of the manager at `addr` (every member listens on
 * the default client port). */
export function memberClientUrl(addr: string): string {
  return `https://${joinHostPort(addr, DEFAULT_ETCD_CLIENT_PORT)}`;
}

/** The peer URL of the managed member of the manager at `addr` (the default peer port). */
export function memberPeerUrl(addr: string): string {
  return `https://${joinHostPort(addr, DEFAULT_ETCD_PEER_PORT)}`;
}

/** The client TLS of a manager for its members (PEM contents of its certificate files). */
export function readEtcdTls(files: { ca: string; cert: string; key: string }): EtcdTls {
  return {
    ca: readFileSync(files.ca),
    cert: readFileSync(files.cert),
    key: readFileSync(files.key),
  };
}

export class EtcdMember extends EventEmitter<{
  /** The member exited without being asked to (code, signal). */
  exit: [number | null, NodeJS.Signals | null];
  /** A restarted member answered healthy (its new pid). */
  restart: [number];
  /** The member exited because it was removed from the cluster: it is not restarted. */
  removed: [];
}> {
  readonly clientUrl: string;
  readonly peerUrl: string;
  readonly etcdDir: string;
  readonly certFiles: { ca: string; cert: string; key: string };
  /** Restarts done by the supervisor. */
  restarts = 0;
  /** The trusted CA file's PEM as the running member read it (at its last spawn). */
  trustedPem = "";
  private proc: ChildProcess | null = null;
  private output = "";
  private stopping = false;
  private restartTimer: NodeJS.Timeout | null = null;
  private backoff: number;
  private startedAt = 0;
  private readonly log: Logger;
  private readonly clientPort: number;
  private readonly peerPort: number;

  private constructor(
    private readonly opts: EtcdMemberOptions,
    private readonly bin: string,
  ) {
    super();
    this.clientPort = opts.clientPort ?? DEFAULT_ETCD_CLIENT_PORT;
    this.peerPort = opts.peerPort ?? DEFAULT_ETCD_PEER_PORT;
    this.clientUrl = `https://${joinHostPort(opts.addr, this.clientPort)}`;
    this.peerUrl = `https://${joinHostPort(opts.addr, this.peerPort)}`;
    this.etcdDir = join(opts.dataDir, "etcd");
    this.certFiles = opts.certFiles ?? certPaths(opts.dataDir);
    this.log = opts.log ?? silentLogger;
    this.backoff = opts.restartMinMs ?? 500;
  }

  /**
   * Starts the member and resolves once it answers healthy (for "join": once it has caught up
   * with the cluster). Throws EtcdMemberError: no etcd binary, a port in use, a mode that does
   * not fit the data dir, or a member that exits or stays unhealthy.
   */
  static async start(opts: EtcdMemberOptions, how: EtcdStart): Promise<EtcdMember> {
    const bin = opts.bin ?? findEtcd();
    if (bin === null || !existsSync(bin)) {
      throw new EtcdMemberError(
        "ERR_ETCD_MISSING",
        `etcd is not installed${bin ? ` (no ${bin})` : ""}: the managed etcd store needs it on ` +
          `every manager; install it with ${ETCD_INSTALL_HINT}`,
      );
    }
    if (!opts.nodeId || !opts.addr || !opts.dataDir) {
      throw new EtcdMemberError(
        "ERR_ETCD_INVALID",
        "an etcd member needs a node id, address and data dir",
      );
    }
    const m = new EtcdMember(opts, bin);
    const hasData = existsSync(join(m.etcdDir, "member"));
    if (how.mode === "restart" && !hasData) {
      throw new EtcdMemberError(
        "ERR_ETCD_INVALID",
        `no etcd data in ${m.etcdDir} to restart from: start a new cluster or join one`,
      );
    }
    if (how.mode !== "restart" && hasData) {
      throw new EtcdMemberError(
        "ERR_ETCD_INVALID",
        `${m.etcdDir} already holds an etcd member's data: restart it, or remove it to ${how.mode === "new" ? "start a new cluster" : "join"}`,
      );
    }
    for (const f of Object.values(m.certFiles)) {
      if (!existsSync(f)) {
        throw new EtcdMemberError(
          "ERR_ETCD_INVALID",
          `the etcd member's certificate file ${f} is missing`,
        );
      }
    }
    mkdirSync(m.etcdDir, { recursive: true, mode: 0o700 });
    await m.endOrphan();
    for (const [what, port] of [
      ["client", m.clientPort],
      ["peer", m.peerPort],
    ] as const) {
      await checkPort(opts.addr, port, what);
    }
    m.spawn(m.args(how));
    try {
      await m.waitHealthy(opts.startTimeoutMs ?? 30_000);
      if (how.mode !== "new" && how.memberId !== undefined && how.endpoints !== undefined) {
        await m.promote({ memberId: how.memberId, endpoints: how.endpoints });
      }
    } catch (err) {
      await m.stop();
      throw err;
    }
    return m;
  }

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  /** Promotes this member, added as a learner, to a voting member (done already: fine). */
  private async promote(p: LearnerPromotion): Promise<void> {
    if (p.endpoints.length === 0) {
      throw new EtcdMemberError("ERR_ETCD_MEMBER", "no voting etcd member to promote through");
    }
    const client = etcdClient({ endpoints: p.endpoints, tls: this.clientTls() });
    try {
      await promoteEtcdMember(client, p.memberId, this.opts.startTimeoutMs ?? 30_000);
      this.log.info(`etcd member ${this.opts.nodeId} promoted from learner to voting member`);
    } finally {
      client.close();
    }
  }

  /** etcd's last output lines (diagnostics). */
  lastOutput(): string {
    return this.output;
  }

  /** The client TLS of this manager for the etcd store and the election. */
  clientTls(): EtcdTls {
    return readEtcdTls(this.certFiles);
  }

  /** Stops supervising and ends the member (SIGTERM, SIGKILL after the grace). */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.restartTimer = null;
    const proc = this.proc;
    if (proc) await endProcess(proc, this.opts.stopGraceMs ?? 10_000);
    rmSync(this.pidFile(), { force: true });
  }

  /**
   * Restarts the member on purpose (SIGTERM, then a start on its data) and resolves once it
   * answers healthy: it reads its trusted CA file again. Throws EtcdMemberError when it does not
   * come back healthy (the supervisor then deals with it as with any exit).
   */
  async restart(): Promise<void> {
    if (this.stopping) throw new EtcdMemberError("ERR_ETCD_START", "the etcd member was stopped");
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.restartTimer = null;
    const old = this.proc;
    // Its exit is not a crash: the supervisor ignores the exits of a process it no longer runs.
    this.proc = null;
    if (old) await endProcess(old, this.opts.stopGraceMs ?? 10_000);
    if (this.stopping) throw new EtcdMemberError("ERR_ETCD_START", "the etcd member was stopped");
    this.spawn(this.args({ mode: "restart" }));
    await this.waitHealthy(this.opts.startTimeoutMs ?? 30_000);
  }

  private pidFile(): string {
    return join(this.etcdDir, "shoal-etcd.pid");
  }

  private args(how: EtcdStart): string[] {
    const { ca, cert, key } = this.certFiles;
    const args = [
      "--name",
      this.opts.nodeId,
      "--data-dir",
      this.etcdDir,
      "--listen-client-urls",
      this.clientUrl,
      "--advertise-client-urls",
      this.clientUrl,
      "--listen-peer-urls",
      this.peerUrl,
      "--initial-advertise-peer-urls",
      this.peerUrl,
      "--cert-file",
      cert,
      "--key-file",
      key,
      "--trusted-ca-file",
      ca,
      "--client-cert-auth",
      // Only managers' certificates (their DNS SAN names the role, ca.ts): a worker's
      // certificate is from the same CA but must not reach the state.
      "--client-cert-allowed-hostname",
      roleOu("manager"),
      "--peer-cert-file",
      cert,
      "--peer-key-file",
      key,
      "--peer-trusted-ca-file",
      ca,
      "--peer-client-cert-auth",
      "--peer-cert-allowed-hostname",
      roleOu("manager"),
      "--max-txn-ops",
      String(MANAGED_MAX_TXN_OPS),
      "--max-request-bytes",
      String(MANAGED_MAX_REQUEST_BYTES),
      // A member back from a partition asks before it campaigns (etcd 3.5's default; 3.4's is
      // off): with a stale log it cannot win, and without this it forced an election at every
      // timeout, leaving the cluster without a leader for seconds (the history test).
      "--pre-vote=true", // a boolean flag of Go's: "--pre-vote true" would be an argument
      "--auto-compaction-mode",
      "periodic",
      "--auto-compaction-retention",
      "1h",
      "--logger",
      "zap",
      "--log-outputs",
      "stderr",
    ];
    if (this.opts.clusterToken) args.push("--initial-cluster-token", this.opts.clusterToken);
    if (how.mode === "new") {
      args.push(
        "--initial-cluster",
        `${this.opts.nodeId}=${this.peerUrl}`,
        "--initial-cluster-state",
        "new",
      );
    } else if (how.mode === "join") {
      args.push("--initial-cluster", how.initialCluster, "--initial-cluster-state", "existing");
    }
    return [...args, ...(this.opts.extraArgs ?? [])];
  }

  private spawn(args: string[]): void {
    try {
      this.trustedPem = readFileSync(this.certFiles.ca, "utf8");
    } catch {
      this.trustedPem = ""; // etcd fails to start without it, and says so
    }
    const proc = spawn(this.bin, args, { stdio: ["ignore", "pipe", "pipe"] });
    this.proc = proc;
    this.startedAt = Date.now();
    this.output = "";
    const keep = (d: Buffer) => {
      this.output += d.toString();
      if (this.output.length > 64_000) this.output = this.output.slice(-32_000);
    };
    proc.stdout!.on("data", keep);
    proc.stderr!.on("data", keep);
    proc.once("error", (err) => this.log.error(`etcd could not be started: ${err.message}`));
    if (proc.pid !== undefined) writeFileSync(this.pidFile(), `${proc.pid}\n`, { mode: 0o600 });
    // On a restart the same arguments serve: with data in the dir etcd ignores the
    // initial-cluster flags.
    proc.once("exit", (code, signal) => this.onExit(proc, args, code, signal));
  }

  private onExit(
    proc: ChildProcess,
    args: string[],
    code: number | null,
    signal: NodeJS.Signals | null,
  ): void {
    if (this.proc !== proc || this.stopping) return;
    this.emit("exit", code, signal);
    if (wasRemoved(this.output)) {
      this.log.info(`etcd member ${this.opts.nodeId} was removed from the cluster; not restarting`);
      this.stopping = true;
      rmSync(this.pidFile(), { force: true });
      this.emit("removed");
      return;
    }
    if (Date.now() - this.startedAt >= (this.opts.restartResetMs ?? 60_000)) {
      this.backoff = this.opts.restartMinMs ?? 500;
    }
    const delay = this.backoff;
    this.backoff = Math.min(this.backoff * 2, this.opts.restartMaxMs ?? 30_000);
    this.log.warn(
      `etcd member ${this.opts.nodeId} (pid ${proc.pid}) exited (${signal ?? `code ${code}`}); ` +
        `restarting in ${delay} ms; its last lines:\n${tail(this.output, 10)}`,
    );
    this.restartTimer = setTimeout(() => {
      this.restartTimer = null;
      if (this.stopping) return;
      this.spawn(args);
      this.restarts++;
      this.waitHealthy(this.opts.startTimeoutMs ?? 30_000).then(
        () => {
          this.log.info(`etcd member ${this.opts.nodeId} restarted (pid ${this.proc?.pid})`);
          if (this.proc?.pid !== undefined) this.emit("restart", this.proc.pid);
        },
        (err: Error) => this.log.warn(`the restarted etcd member is not healthy: ${err.message}`),
      );
    }, delay);
  }

  private async waitHealthy(ms: number): Promise<void> {
    const proc = this.proc!;
    const deadline = Date.now() + ms;
    const tls = this.clientTls();
    for (let delay = 50; ; delay = Math.min(delay * 2, 500)) {
      if (proc.exitCode !== null || proc.signalCode !== null) {
        const out = this.output;
        const inUse = /listen tcp ([^:]*:\d+|\[[^\]]*\]:\d+): bind: address already in use/.exec(
          out,
        );
        if (inUse) {
          throw new EtcdMemberError(
            "ERR_ETCD_PORT",
            `etcd could not listen on ${inUse[1]}: the port is in use`,
          );
        }
        if (wasRemoved(out)) {
          throw new EtcdMemberError(
            "ERR_ETCD_REMOVED",
            `etcd member ${this.opts.nodeId} has been removed from the cluster: its data in ${this.etcdDir} is of no use any more`,
          );
        }
        throw new EtcdMemberError(
          "ERR_ETCD_START",
          `etcd member ${this.opts.nodeId} exited while starting (${proc.signalCode ?? `code ${proc.exitCode}`}):\n${tail(out, 15)}`,
        );
      }
      if (this.stopping) throw new EtcdMemberError("ERR_ETCD_START", "the etcd member was stopped");
      if (await memberHealthy(this.clientUrl, tls)) return;
      if (Date.now() > deadline) {
        throw new EtcdMemberError(
          "ERR_ETCD_START",
          `etcd member ${this.opts.nodeId} not healthy at ${this.clientUrl} in ${ms} ms:\n${tail(this.output, 15)}`,
        );
      }
      await new Promise((r) => setTimeout(r, delay));
    }
  }

  /** Ends a member a dead daemon left running on this data dir (found by its pid file). */
  private async endOrphan(): Promise<void> {
    let pid: number;
    try {
      pid = Number(readFileSync(this.pidFile(), "utf8").trim());
    } catch {
      return;
    }
    let cmdline = "";
    try {
      cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8");
    } catch {
      // gone (or not Linux)
    }
    if (Number.isSafeInteger(pid) && pid > 0 && cmdline.includes(`\0${this.etcdDir}\0`)) {
      this.log.warn(`ending the etcd member (pid ${pid}) an earlier run left on ${this.etcdDir}`);
      try {
        process.kill(pid, "SIGTERM");
      } catch {
        // already gone
      }
      const deadline = Date.now() + (this.opts.stopGraceMs ?? 10_000);
      while (existsSync(`/proc/${pid}`) && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 50));
      }
      if (existsSync(`/proc/${pid}`)) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // gone
        }
      }
    }
    rmSync(this.pidFile(), { force: true });
  }
}

/**
 * Adds a member, as a learner, to the cluster `client` reaches (before it starts): returns its
 * etcd id, the --initial-cluster to start it with ("join") and the voting members' client URLs
 * to promote it through. While etcd answers "unhealthy cluster" (a member joined less than about
 * 5 s ago) or that it has a learner already (etcd 3.4 takes one at a time) it asks again, for up
 * to `waitMs`.
 */
export async function addEtcdMember(
  client: Etcd3,
  name: string,
  peerUrl: string,
  waitMs = 20_000,
): Promise<{ initialCluster: string } & LearnerPromotion> {
  const list = await client.cluster.memberList({});
  const clash = list.members.find((m) => m.name === name || m.peerURLs.includes(peerUrl));
  if (clash && isUnstartedAt(clash, peerUrl) && list.members.length > 1) {
    // Added for this node earlier, and never started (a promotion or join that failed after
    // the add and is tried again): taken out and added again.
    await reconfigure(`remove the unstarted member at ${peerUrl}`, waitMs, () =>
      client.cluster.memberRemove({ ID: clash.ID }),
    );
  } else if (clash) {
    throw new EtcdMemberError(
      "ERR_ETCD_MEMBER",
      `etcd already has a member ${clash.name || clash.ID} at ${clash.peerURLs.join(",")}: remove it first`,
    );
  }
  const res = await reconfigure(
    `add member ${name} (${peerUrl})`,
    waitMs,
    () => client.cluster.memberAdd({ peerURLs: [peerUrl], isLearner: true }),
    // etcd derives a new member's ID from its peer URLs and the current second: added again in
    // the second its unstarted member was removed, it gets that removed ID, refused as "member
    // not found"; the next second gives a new one.
    clash !== undefined ? /member not found|too many learner/ : /too many learner/,
  );
  const initialCluster = res.members
    .flatMap((m) => {
      const n = m.ID === res.member.ID ? name : m.name;
      return m.peerURLs.map((u) => `${n}=${u}`);
    })
    .join(",");
  const endpoints = res.members
    .filter((m) => m.ID !== res.member.ID && !m.isLearner)
    .flatMap((m) => m.clientURLs);
  return { memberId: res.member.ID, initialCluster, endpoints };
}

/**
 * Promotes a learner to a voting member through `client` (voting members), asking again while
 * etcd answers that it has not caught up (or has not started), for up to `waitMs`. A member that
 * votes already is fine.
 */
export async function promoteEtcdMember(
  client: Etcd3,
  memberId: string,
  waitMs = 30_000,
): Promise<void> {
  try {
    await reconfigure(
      `promote member ${memberId}`,
      waitMs,
      () => client.cluster.memberPromote({ ID: memberId }),
      /in sync with leader/,
    );
  } catch (err) {
    if (/can only promote a learner member$/.test(String((err as Error).cause))) return;
    throw err;
  }
}

/** Whether `m` was added at `peerUrl` alone and has not started (etcd names it once it has). */
export function isUnstartedAt(m: Pick<IMember, "name" | "peerURLs">, peerUrl: string): boolean {
  return m.name === "" && m.peerURLs.length === 1 && m.peerURLs[0] === peerUrl;
}

/** The cluster's members (names are empty for members added but not started yet). */
export async function listEtcdMembers(client: Etcd3): Promise<IMember[]> {
  return (await client.cluster.memberList({})).members;
}

/**
 * Removes the member named `name` (a node id) through `client` (which should reach another
 * member). Returns false when there is no such member (or it went while this was under way).
 * Waits out "unhealthy cluster" as `addEtcdMember` does.
 */
export async function removeEtcdMember(
  client: Etcd3,
  name: string,
  waitMs = 20_000,
): Promise<boolean> {
  const members = await listEtcdMembers(client);
  const m = members.find((x) => x.name === name);
  if (!m) return false;
  if (members.length === 1) {
    throw new EtcdMemberError(
      "ERR_ETCD_MEMBER",
      `${name} is the etcd cluster's last member: it cannot be removed`,
    );
  }
  return removeEtcdMemberId(client, m.ID, name, waitMs);
}

/**
 * Removes the member with etcd id `id` (`label` names it in errors), as removeEtcdMember does by
 * name: for a member added and never started, which has no name yet. Returns false when it went
 * meanwhile.
 */
export async function removeEtcdMemberId(
  client: Etcd3,
  id: string,
  label: string,
  waitMs = 20_000,
): Promise<boolean> {
  try {
    await reconfigure(`remove member ${label}`, waitMs, () =>
      client.cluster.memberRemove({ ID: id }),
    );
  } catch (err) {
    // Removed by someone else since the list (a demoted manager and the leader both take out
    // a member): gone, as asked.
    if (/member not found/.test(String((err as Error).cause))) return false;
    throw err;
  }
  return true;
}

/**
 * Runs a membership change, asking again while etcd answers "unhealthy cluster": it refuses a
 * change until every started member has been connected for a while (its strict
 * reconfiguration check), so a member that joined a moment ago makes the next change wait. The
 * etcd3 client's circuit breaker may open on those answers; it half-opens after 5 s. Answers
 * matching `alsoRetry` are asked again the same way.
 */
async function reconfigure<T>(
  what: string,
  waitMs: number,
  change: () => Promise<T>,
  alsoRetry?: RegExp,
): Promise<T> {
  const deadline = Date.now() + waitMs;
  for (let delay = 200; ; delay = Math.min(delay * 2, 2000)) {
    try {
      return await change();
    } catch (err) {
      const msg = (err as Error).message;
      const transient =
        /unhealthy cluster|circuit breaker is open/.test(msg) || alsoRetry?.test(msg) === true;
      if (transient && Date.now() + delay < deadline) {
        await new Promise((r) => setTimeout(r, delay));
        continue;
      }
      throw new EtcdMemberError("ERR_ETCD_MEMBER", `etcd refused to ${what}: ${msg}`, {
        cause: err,
      });
    }
  }
}

/** Fails naming the port when `addr:port` cannot be bound. */
async function checkPort(addr: string, port: number, what: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const srv = createServer();
    srv.once("error", (err: NodeJS.ErrnoException) => {
      const where = joinHostPort(addr, port);
      reject(
        new EtcdMemberError(
          err.code === "EADDRINUSE" ? "ERR_ETCD_PORT" : "ERR_ETCD_INVALID",
          err.code === "EADDRINUSE"
            ? `the etcd ${what} port ${where} is in use (choose another port)`
            : `the etcd ${what} address ${where} cannot be bound: ${err.message}`,
          { cause: err },
        ),
      );
    });
    srv.listen({ host: addr, port, exclusive: true }, () => srv.close(() => resolve()));
  });
}

/** GET /health over mutual TLS: whether the member answers {"health":"true"}. */
export function memberHealthy(clientUrl: string, tls: EtcdTls): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request(
      `${clientUrl}/health`,
      { ca: tls.ca, cert: tls.cert, key: tls.key, timeout: 2000 },
      (res) => {
        let body = "";
        res.on("data", (d: Buffer) => (body += d.toString()));
        res.on("end", () => {
          try {
            resolve((JSON.parse(body) as { health?: string }).health === "true");
          } catch {
            resolve(false);
          }
        });
        res.on("error", () => resolve(false));
      },
    );
    req.on("timeout", () => req.destroy());
    req.on("error", () => resolve(false));
    req.end();
  });
}

async function endProcess(proc: ChildProcess, graceMs: number): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null || proc.pid === undefined) return;
  const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
  process.kill(proc.pid, "SIGTERM");
  const t = setTimeout(() => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGKILL");
  }, graceMs);
  await exited;
  clearTimeout(t);
}

function tail(out: string, lines: number): string {
  return out.trimEnd().split("\n").slice(-lines).join("\n");
}
