// How `shoal join` keeps asking while the managers cannot answer yet. A 503 is the managers'
// side and passes in seconds: no leader at the moment, or the first manager moving its state to
// etcd to take a second manager (its join port closes while it restarts on etcd). A follower
// names the leader's join address ("join through the leader, at ADDR"), since leadership can
// move while a node joins: the next attempt goes there. Anything else is the answer.

import { JoinRefusedError } from "./join-refused.js";

const LEADER_AT = /join through the leader, at (\S+)$/;

export interface JoinRetryClock {
  now(): number;
  sleep(ms: number): Promise<void>;
}

export const realClock: JoinRetryClock = {
  now: () => Date.now(),
  sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
};

/**
 * Calls `attempt(target)` until it answers: on a 503 again after `intervalMs` (at the leader's
 * address when the refusal names one), and, once waiting, also after a connection error (the
 * manager restarting). Gives up with the last error after `retryMs`. Returns the answer and the
 * address that gave it.
 */
export async function joinFollowingLeader<T>(
  first: string,
  attempt: (target: string) => Promise<T>,
  opts: { retryMs: number; intervalMs: number; clock?: JoinRetryClock },
): Promise<{ answer: T; target: string }> {
  const clock = opts.clock ?? realClock;
  const until = clock.now() + opts.retryMs;
  let target = first;
  let waiting = false;
  for (;;) {
    try {
      return { answer: await attempt(target), target };
    } catch (err) {
      const busy = err instanceof JoinRefusedError && err.status === 503;
      const retryable = busy || (waiting && !(err instanceof JoinRefusedError));
      if (!retryable || clock.now() > until) throw err;
      const leader = busy ? LEADER_AT.exec(err.message)?.[1] : undefined;
      if (leader !== undefined) target = leader;
      waiting = true;
      await clock.sleep(opts.intervalMs);
    }
  }
}
