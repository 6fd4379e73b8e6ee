// The node's network builds, in order: each assignment message carries the node's full set of
// networks (NodeNetwork, bus.ts), and every one that differs from the last is built (the overlay
// driver's sync) after the builds before it. Two rules keep a stack's tasks from waiting on
// builds they do not need:
//
//   - coalescing: a set that arrives while a build is queued and not yet started replaces that
//     build's set (the sync is idempotent and makes exactly the set it is given), so a burst of
//     messages is one build after the running one, not one build each;
//   - ready at once: a set whose networks all exist already, as the same links (id, driver, VNI,
//     subnet, internal, this node's address) — only their VIP backends or peers differ, which
//     change with every task of a stack that starts — and that no build running now takes
//     away, is ready at once: a task on those networks is wired beside the build, as it would
//     be with no build queued. A set with a network not built yet is ready once the build that
//     makes it settled: the running one when it makes them all, else the queued one.

import type { NodeNetwork } from "../api/bus.js";

/** What makes a network's links on a node: a change here is a new build, not a detail. */
export function linksKey(n: NodeNetwork): string {
  return JSON.stringify([n.id, n.driver, n.vni, n.subnet, n.internal, n.nodeAddr]);
}

interface Queued {
  nets: NodeNetwork[];
  done: Promise<void>;
}

export class NetworkSyncs {
  /** The build queued and not started yet (later sets replace its networks). */
  private queued: Queued | null = null;
  /** The build running now (the links it makes), null when none runs. */
  private running: { keys: Set<string>; done: Promise<void> } | null = null;
  /** The links the last build that succeeded made (exactly these exist). */
  private built = new Set<string>();
  /** Settles when every build queued so far has. */
  private tail: Promise<void> = Promise.resolve();

  /**
   * `build` makes exactly the networks it is given (idempotent) and rejects when it could not;
   * `onError` hears why (the tasks waiting start anyway, and their wiring fails by name).
   */
  constructor(
    private readonly build: (nets: NodeNetwork[]) => Promise<void>,
    private readonly onError: (err: Error) => void,
  ) {}

  /**
   * Queues a build of exactly `nets`; returns a promise that settles once they exist (at once
   * when they do and no running build takes one away). Never rejects.
   */
  set(nets: NodeNetwork[]): Promise<void> {
    let q = this.queued;
    if (q !== null) {
      q.nets = nets;
    } else {
      const entry: Queued = { nets, done: Promise.resolve() };
      entry.done = this.tail.then(() => this.run(entry));
      this.queued = q = entry;
      this.tail = entry.done;
    }
    const keys = nets.map(linksKey);
    const running = this.running;
    if (keys.every((k) => this.built.has(k) && (running === null || running.keys.has(k))))
      return Promise.resolve();
    // The build running now makes them: no need to wait for the one after it too.
    if (running !== null && keys.every((k) => running.keys.has(k))) return running.done;
    return q.done;
  }

  /** Settles when every build queued so far has. */
  idle(): Promise<void> {
    return this.tail;
  }

  private async run(entry: Queued): Promise<void> {
    if (this.queued === entry) this.queued = null;
    const nets = entry.nets;
    const keys = new Set(nets.map(linksKey));
    // entry.done settles when this call has.
    this.running = { keys, done: entry.done };
    try {
      await this.build(nets);
      this.built = keys;
    } catch (err) {
      // What exists now is not known: every later set waits for a build.
      this.built = new Set();
      this.onError(err instanceof Error ? err : new Error(String(err)));
    } finally {
      this.running = null;
    }
  }
}
