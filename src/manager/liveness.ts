// Node liveness: when each node was last heard from. Kept in memory, like Swarm's dispatcher
// keeps its heartbeat timers: a heartbeat costs a map write, not a durable store write (with
// ten nodes on a one-second period that was ten fsyncs and ten orchestrator passes a second).
// The store only learns of a change of status (ready → down → ready).
//
// Two rules keep a busy manager from blaming its nodes:
// - a node the manager has not heard from since it started counts from the first time it is
//   asked about (a restarted manager gives every node a full grace period);
// - time the manager itself was stalled (its event loop blocked, so heartbeats sat unread in
//   a socket) is credited to every node;
// - a new leader gives every node a full grace period from its election (`restart`);
// - a node keeps the silence it was allowed when it last beat (3 periods then): when the
//   period shrinks (`swarm update --heartbeat-period`), a node still on the old period is not
//   blamed before its next beat, as swarmkit sets each node's expiry at its heartbeat.

export class Liveness {
  private readonly seen = new Map<string, number>();
  private readonly allowed = new Map<string, number>();
  /** When `restart` last ran, and when each node had been heard from before it. */
  private restartedAt = Number.NEGATIVE_INFINITY;
  private beforeRestart = new Map<string, number>();

  /** A heartbeat (or any message) from the node arrived at `at`; `allowMs` is the silence the
   * node may keep after it (the down-after period in effect now). */
  heard(nodeId: string, at: number, allowMs = 0): void {
    const prev = this.seen.get(nodeId);
    if (prev === undefined || at > prev) {
      this.seen.set(nodeId, at);
      this.allowed.set(nodeId, allowMs);
    }
  }

  /** The silence the node was allowed at its last heartbeat (0 when none was given). */
  allowance(nodeId: string): number {
    return this.allowed.get(nodeId) ?? 0;
  }

  /** How long the node has been silent at `now` (0 the first time it is asked about). */
  silentFor(nodeId: string, now: number): number {
    const at = this.seen.get(nodeId);
    if (at === undefined) {
      this.seen.set(nodeId, now);
      return 0;
    }
    return Math.max(0, now - at);
  }

  /** The manager could not read messages for `ms`: nobody is blamed for that time. */
  credit(ms: number): void {
    if (!(ms > 0)) return;
    for (const [id, at] of this.seen) this.seen.set(id, at + ms);
  }

  /** This manager has just become the leader: every node counts its silence from `at` at the
   * latest, as swarmkit's dispatcher gives every node a grace period when it starts. A node
   * whose bus connection was on the dead leader's machine needs that time to reach another
   * manager's message server. */
  restart(at: number): void {
    this.restartedAt = at;
    this.beforeRestart = new Map(this.seen);
    for (const [id, seen] of this.seen) if (seen < at) this.seen.set(id, at);
  }

  /**
   * The node's grace from the last `restart` ends: the manager that led before, found silent
   * for good (dead or cut off), has no bus connection to move. Unless it was heard since, it
   * counts from when it was last heard: its heartbeat before the restart, or `heardAt`.
   */
  endGrace(nodeId: string, heardAt: number): void {
    const seen = this.seen.get(nodeId);
    if (seen !== undefined && seen > this.restartedAt) return; // heard since the election
    const last = Math.max(heardAt, this.beforeRestart.get(nodeId) ?? Number.NEGATIVE_INFINITY);
    this.seen.set(nodeId, Math.min(last, this.restartedAt));
  }

  /** The node was removed from the cluster. */
  forget(nodeId: string): void {
    this.seen.delete(nodeId);
    this.allowed.delete(nodeId);
  }
}

/**
 * Measures how late a repeating timer fires: the time the event loop was blocked. `onStall`
 * gets each stall longer than `thresholdMs` (the whole lateness, not the excess).
 */
export function watchStalls(
  everyMs: number,
  thresholdMs: number,
  onStall: (ms: number) => void,
  now: () => number = Date.now,
): () => void {
  let expected = now() + everyMs;
  const timer = setInterval(() => {
    const t = now();
    const late = t - expected;
    expected = t + everyMs;
    if (late > thresholdMs) onStall(late);
  }, everyMs);
  timer.unref();
  return () => clearInterval(timer);
}
