// The restart policy, as a pure decision about one slot whose newest task has just ended: start a
// replacement or leave the slot empty. Swarm's rules: condition "none" never restarts,
// "on-failure" restarts unless the task completed (exit 0), "any" always does. With maxAttempts
// > 0, the slot's earlier ends of the same spec version within the window (all of them when the
// window is 0) are the restarts already made; a crashing task with max 3 gives 1 + 3 = 4 failed
// tasks and then stops. A task lost with its node (orphaned) did not fail on its own: it is
// replaced whatever the condition (Swarm keeps "none" tasks of a dead node dead; shoal does not),
// and counts as an attempt. The replacement may start `delayMs` after the end — except after an
// orphaned task: the delay keeps a crashing task from looping, and a task lost with its machine
// did not crash, so its replacement starts at once (Swarm waits the delay there too; shoal puts
// the service back on its feet seconds sooner).

import type { RestartPolicy, Task } from "../../api/types.js";

export type RestartDecision =
  { restart: true; notBefore: number } | { restart: false; reason: string };

export interface RestartInput {
  /** The slot's newest task; terminal. */
  last: Task;
  /** The slot's other terminal tasks. */
  earlier: readonly Task[];
  policy: RestartPolicy;
  /** The service's current spec version: ends of older versions are not this spec's attempts. */
  version: number;
  now: number;
}

/** The earlier ends that count as restarts already made. */
export function restartsMade(i: RestartInput): number {
  const since = i.policy.windowMs > 0 ? i.now - i.policy.windowMs : -Infinity;
  return i.earlier.filter(
    (t) =>
      t.specVersion === i.version && t.status.state !== "shutdown" && t.status.timestamp > since,
  ).length;
}

export function restartDecision(i: RestartInput): RestartDecision {
  const { last, policy } = i;
  const state = last.status.state;
  if (state !== "orphaned") {
    if (policy.condition === "none") {
      return { restart: false, reason: "restart condition is none" };
    }
    if (policy.condition === "on-failure" && state === "complete") {
      return { restart: false, reason: "task completed and restart condition is on-failure" };
    }
  }
  if (policy.maxAttempts > 0 && restartsMade(i) >= policy.maxAttempts) {
    return { restart: false, reason: `max restart attempts (${policy.maxAttempts}) reached` };
  }
  const delay = state === "orphaned" ? 0 : policy.delayMs;
  return { restart: true, notBefore: last.status.timestamp + delay };
}
