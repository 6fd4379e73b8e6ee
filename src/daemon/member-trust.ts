// The managed etcd members follow a root CA rotation (ca-rotation.ts). etcd reads its trusted
// CA file (the node's `ca.pem`, which holds the roots the swarm trusts now: `trustPem`) only
// when it starts, so a member must restart to trust a new root, and again to drop the old one.
//
// - Trust first: when the CA meta changes, a manager writes the roots the swarm trusts now into
//   its CA file and restarts its member on it, and only then takes a certificate from the new
//   root (`mayTakeCertFrom`). A rotation ends when every node's certificate is from the new root,
//   so by then every member trusts the new root, and no member meets a peer or client
//   certificate from a root it does not trust (during the rotation the certificates from the new
//   root carry the cross-signed root, which the members still on the old root verify).
// - One member at a time: a manager restarts its member only while it holds an etcd lock (etcd3's
//   lease-guarded key MEMBER_RESTART_LOCK) and every other member answers healthy
//   (`restartVerdict`), and keeps the lock until its store reads again and a leader is known
//   (`recovered`), so the swarm is never left without a leader by restarts in a row. The lock is
//   taken through every member's client URL, not only its own, so a member that cannot reach
//   its peers can still be restarted, and its lease lives on while this manager's own member
//   restarts; were it to lapse, the next manager would still find that member unhealthy and
//   wait.
// - A manager reports (its heartbeats' `Node.tls`) the roots its listeners trust and those its
//   member still trusts (`reportedTrustRoots`), so the rotation's second bar ("rotated CA
//   certificates") fills only once the members dropped the old root too.

import { EtcdLockFailedError } from "etcd3";
import { caDigest, splitPem } from "../manager/ca.js";
import { etcdClient, type EtcdTls } from "../store/etcd.js";
import type { Logger } from "../lib/log.js";
import { listEtcdMembers, memberHealthy, type EtcdMember } from "./etcd-member.js";

/** The etcd key of the lock a manager holds while it restarts its member. */
export const MEMBER_RESTART_LOCK = "/shoal-etcd-restart";
/** The lock's lease TTL, s: it lapses this long after a holder that died. */
const LOCK_TTL_S = 5;
/** How long a manager waits between two tries (the lock taken, a member unhealthy). */
const RETRY_MS = 1000;

/** The digests of the roots in a PEM bundle, once each, sorted (a trust is a set). */
function rootSet(pem: string): string[] {
  return [...new Set(splitPem(pem).map(caDigest))].sort();
}

/**
 * Whether a member that read `loadedPem` from its trusted CA file must restart to trust the
 * roots in `wantedPem` (the swarm's now): it trusts other roots, or not all of them.
 */
export function memberNeedsRestart(loadedPem: string, wantedPem: string): boolean {
  return rootSet(loadedPem).join() !== rootSet(wantedPem).join();
}

/**
 * Whether a manager may take a certificate from the root `signingRootPem`: always without a
 * managed member; with one, once its member trusts that root (trust first, see above).
 */
export function mayTakeCertFrom(signingRootPem: string, memberPem: string | undefined): boolean {
  return memberPem === undefined || rootSet(memberPem).includes(caDigest(signingRootPem));
}

/** What a manager reports it trusts: its listeners' roots, then those its member still trusts. */
export function reportedTrustRoots(own: string[], memberPem: string | undefined): string[] {
  if (memberPem === undefined) return own;
  return [...new Set([...own, ...rootSet(memberPem)])];
}

/** A member as the restart decision sees it (name "": added, not started). */
export interface MemberHealth {
  name: string;
  healthy: boolean;
}

export type RestartVerdict = { go: true } | { go: false; reason: string };

/**
 * Whether the manager `self` may restart its member now: it is a member, and every other member
 * answers healthy, so at most one member is ever down for a restart (with three or more members
 * etcd keeps its quorum; with one or two no majority is left without it, and the store waits for
 * it, as at any restart of a member).
 */
export function restartVerdict(members: readonly MemberHealth[], self: string): RestartVerdict {
  if (!members.some((m) => m.name === self)) {
    return { go: false, reason: `${self} is not an etcd member` };
  }
  const down = members.filter((m) => m.name !== self && !m.healthy);
  if (down.length > 0) {
    const names = down.map((m) => m.name || "(added, not started)").join(", ");
    return { go: false, reason: `waiting for the etcd members ${names} to be healthy` };
  }
  return { go: true };
}

export interface MemberTrustOptions {
  member: EtcdMember;
  /** This manager's node id (its member's name). */
  nodeId: string;
  /** The roots the member must trust now (PEM), asked at each try. */
  wanted: () => string;
  /** Every member's client URL (this manager's too), for the lock and the health checks. */
  endpoints: () => string[];
  /** The client TLS of this manager now (its certificate files). */
  tls: () => EtcdTls;
  /** Resolves once this manager works on etcd again after its member restarted (its store
   * reads, a leader is known), so that the next member restarts only then. */
  recovered?: () => Promise<void>;
  log: Logger;
  retryMs?: number;
}

/** Restarts this manager's member until it trusts the roots the swarm trusts (see above). */
export class MemberTrust {
  private running: Promise<void> | null = null;
  private stopped = false;
  private wake: (() => void) | null = null;

  constructor(private readonly opts: MemberTrustOptions) {}

  /**
   * Resolves once the member trusts `wanted()` (restarted if it had to be), or this was
   * stopped. Calls while one is under way share it (it reads `wanted()` at each try).
   */
  settle(): Promise<void> {
    this.wake?.();
    this.running ??= this.loop().finally(() => (this.running = null));
    return this.running;
  }

  /** Stops trying (a settle under way resolves). */
  stop(): void {
    this.stopped = true;
    this.wake?.();
  }

  private async loop(): Promise<void> {
    const { member, log } = this.opts;
    let said = "";
    while (!this.stopped && memberNeedsRestart(member.trustedPem, this.opts.wanted())) {
      let wait = "";
      try {
        wait = await this.tryRestart();
      } catch (err) {
        wait = `restarting the etcd member to trust the swarm's roots failed: ${(err as Error).message}`;
      }
      if (wait === "") continue;
      if (wait !== said) log.info(wait);
      said = wait;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, this.opts.retryMs ?? RETRY_MS);
        this.wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.wake = null;
    }
  }

  /** One try: "" when the member restarted, else why it waits. */
  private async tryRestart(): Promise<string> {
    const { member, nodeId, log } = this.opts;
    const tls = this.opts.tls();
    const client = etcdClient({ endpoints: this.opts.endpoints(), tls });
    try {
      const lock = client.lock(MEMBER_RESTART_LOCK).ttl(LOCK_TTL_S);
      try {
        await lock.acquire();
      } catch (err) {
        if (err instanceof EtcdLockFailedError) {
          return "waiting for another manager's etcd member to restart";
        }
        throw err;
      }
      try {
        const members = await listEtcdMembers(client);
        const health = await Promise.all(
          members.map(async (m) => ({
            name: m.name,
            healthy:
              m.name === nodeId ||
              (m.name !== "" &&
                m.clientURLs[0] !== undefined &&
                (await memberHealthy(m.clientURLs[0], tls))),
          })),
        );
        const verdict = restartVerdict(health, nodeId);
        if (!verdict.go) return verdict.reason;
        if (this.stopped) return "";
        log.info(`restarting etcd member ${nodeId} to trust the swarm's roots now`);
        await member.restart();
        log.info(`etcd member ${nodeId} restarted: it trusts the swarm's roots now`);
        // The lock is kept until then: the next member waits for this manager to be back.
        await this.opts.recovered?.();
        return "";
      } finally {
        // Else its lease lapses in LOCK_TTL_S.
        await lock.release().catch(() => {});
      }
    } finally {
      client.close();
    }
  }
}
