// When the other managers may end a silent leader's term rather than wait for its lease.
//
// A leader's lease lapses TTL after its last keep-alive, but when its machine also held etcd's
// raft leader, the next raft leader renews every lease by the TTL plus its election timeout, the
// dead leader's too: the survivors then waited about 5.5 s for a new leader (docs/benchmarks.md,
// managers). So every manager beats on the control bus (`$SHOAL.mgr.beat`, every BEAT_MS) and
// says in each beat which leader it sees and how long it has not heard it. A follower revokes
// the leader's lease when:
// - it has not heard the leader for `thresholdMs` (longer than the lease could last unrenewed),
// - at least one other manager, heard lately, sees the same leader and has not heard it for half
//   that either (so a cut route between this manager and the leader alone deposes nobody), and
// - no manager heard lately has heard the leader within that half.
// A manager that hears no other manager (its own bus is cut, or there are only two managers)
// never deposes: the lease decides. Deposing is only about liveness: the store's writes are
// fenced by the leader key, so even a wrong deposal cannot let two leaders write.

import type { ManagerBeat } from "../api/bus.js";

/** How often a manager beats. */
export const BEAT_MS = 500;
/** How long a leader may be silent before the others depose it (the lease is 3 s). */
export const DEPOSE_AFTER_MS = 3500;
/** How old another manager's last beat may be for it to count as a witness. */
export const WITNESS_FRESH_MS = 1500;

/** What one manager said in its latest beat, and when that beat arrived here. */
export interface Witness {
  beat: ManagerBeat;
  receivedAt: number;
}

export interface SilenceView {
  /** This manager's id. */
  self: string;
  /** The leader this manager sees (undefined: none). */
  leaderId: string | undefined;
  now: number;
  /** When this manager last heard the leader (or began to wait for it). */
  leaderHeardAt: number;
  /** The latest beat of each other manager. */
  witnesses: Iterable<Witness>;
  thresholdMs: number;
  freshMs: number;
}

export type DeposeVerdict =
  { depose: true; leaderId: string; witnesses: string[] } | { depose: false };

/** Whether this manager should revoke the silent leader's lease now (see the header). */
export function deposeVerdict(v: SilenceView): DeposeVerdict {
  const leader = v.leaderId;
  if (leader === undefined || leader === v.self) return { depose: false };
  if (v.now - v.leaderHeardAt < v.thresholdMs) return { depose: false };
  const agree: string[] = [];
  for (const w of v.witnesses) {
    const { beat } = w;
    if (beat.nodeId === leader || beat.nodeId === v.self) continue;
    if (v.now - w.receivedAt > v.freshMs) continue; // not heard lately: says nothing
    if (beat.leaderId !== leader) continue; // sees another leader (or none): says nothing
    if (beat.leaderSilentMs < v.thresholdMs / 2) return { depose: false }; // it hears the leader
    agree.push(beat.nodeId);
  }
  return agree.length > 0
    ? { depose: true, leaderId: leader, witnesses: agree.sort() }
    : { depose: false };
}

/**
 * The beats one manager heard, and how long its leader has been silent. The clock is given to
 * each call (tests inject it). A leader newly seen, and every leader after this manager itself
 * stalled (its event loop blocked, beats left unread), gets a full `thresholdMs` from then.
 */
export class LeaderSilence {
  private readonly heard = new Map<string, number>();
  private readonly beats = new Map<string, Witness>();
  private leaderId: string | undefined;
  private waitingSince = 0;
  private lastTick: number | undefined;

  constructor(
    private readonly self: string,
    private readonly thresholdMs = DEPOSE_AFTER_MS,
    private readonly freshMs = WITNESS_FRESH_MS,
    /** A gap between ticks longer than this counts as a stall of this manager. */
    private readonly stallMs = 4 * BEAT_MS,
  ) {}

  /** A beat arrived (this manager's own beats are ignored). */
  beat(beat: ManagerBeat, at: number): void {
    if (beat.nodeId === this.self) return;
    this.heard.set(beat.nodeId, at);
    this.beats.set(beat.nodeId, { beat, receivedAt: at });
  }

  /** When a manager's beat last arrived (undefined: none since this manager started, or since
   * it last stalled). */
  lastHeard(nodeId: string): number | undefined {
    return this.heard.get(nodeId);
  }

  /** How long the leader seen now has been silent (0 for none, or this manager). */
  silentFor(leaderId: string | undefined, now: number): number {
    if (leaderId === undefined || leaderId === this.self) return 0;
    return Math.max(0, now - this.heardAt(leaderId, now));
  }

  /** The periodic check: whether to depose `leaderId`, the leader seen now. */
  tick(leaderId: string | undefined, now: number): DeposeVerdict {
    if (this.lastTick !== undefined && now - this.lastTick > this.stallMs) {
      this.waitingSince = now; // stalled: what arrived meanwhile may still sit unread
      this.heard.clear();
    }
    this.lastTick = now;
    return deposeVerdict({
      self: this.self,
      leaderId,
      now,
      leaderHeardAt: leaderId === undefined ? now : this.heardAt(leaderId, now),
      witnesses: this.beats.values(),
      thresholdMs: this.thresholdMs,
      freshMs: this.freshMs,
    });
  }

  private heardAt(leaderId: string, now: number): number {
    if (leaderId !== this.leaderId) {
      this.leaderId = leaderId;
      this.waitingSince = now;
    }
    return Math.max(this.heard.get(leaderId) ?? 0, this.waitingSince);
  }
}
