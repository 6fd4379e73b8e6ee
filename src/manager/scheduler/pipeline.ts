// A pipeline runs a task's applicable filters over a node, stopping at the first failure and
// counting it against that filter, so that after every node has been tried the counts explain
// why none was suitable: "no suitable node (2 nodes not available for new tasks; ...)", most
// frequent reason first, as Swarm words it.

import type { Task } from "../../api/types.js";
import type { Filter, NodeInfo } from "./filters.js";

export class Pipeline {
  private active: Filter[] = [];
  private readonly failures = new Map<Filter, number>();

  constructor(private readonly filters: Filter[]) {}

  /** Prepares the pipeline for a task and resets the failure counts. */
  setTask(t: Task): void {
    this.active = this.filters.filter((f) => f.setTask(t));
    this.failures.clear();
  }

  /** True when the node passes every applicable filter. */
  process(info: NodeInfo): boolean {
    for (const f of this.active) {
      if (!f.check(info)) {
        this.failures.set(f, (this.failures.get(f) ?? 0) + 1);
        return false;
      }
    }
    return true;
  }

  /** The failure reasons so far, most frequent first ("" when nothing failed). */
  explain(): string {
    return [...this.failures]
      .map(([f, n], order) => ({ f, n, order }))
      .sort((a, b) => b.n - a.n || a.order - b.order)
      .map(({ f, n }) => f.explain(n))
      .join("; ");
  }

  /** The message for a task that fits nowhere. */
  noSuitableNode(): string {
    const why = this.explain();
    return why ? `no suitable node (${why})` : "no suitable node";
  }
}
