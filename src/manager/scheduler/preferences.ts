// Placement preferences, as swarmkit's spread: `spread=node.labels.zone` groups the nodes by the
// label's value (nodes without the label form one more group, value "") and keeps the service's
// tasks even over the groups; the next preference does the same inside the chosen group, and so
// on; inside the last group the scheduler's usual least-loaded choice applies. A group's count is
// the service's active tasks on all of its nodes (usable or not), but only a group with a node
// that passes the filters can be chosen, so a group with no room gives its share to the others.
// Placing one task at a time into the group with the fewest tasks evens the groups out as
// swarmkit's tree does; ties go to the smaller value, so results are deterministic.

import type { Node, PlacementPreference } from "../../api/types.js";
import type { NodeInfo } from "./filters.js";

const LABEL_PREFIXES = ["node.labels.", "engine.labels."];

/** The label a spread descriptor names, or null when it names none (swarmkit knows no other). */
function labelOf(descriptor: string): string | null {
  const lower = descriptor.toLowerCase();
  const prefix = LABEL_PREFIXES.find((p) => lower.startsWith(p) && descriptor.length > p.length);
  return prefix === undefined ? null : descriptor.slice(prefix.length);
}

/** What is wrong with a preference (null: nothing). */
export function preferenceProblem(p: PlacementPreference): string | null {
  if (labelOf(p.spread.trim()) !== null) return null;
  return (
    `invalid placement preference "spread=${p.spread}": ` +
    "spread over node.labels.<name> or engine.labels.<name>"
  );
}

/** The node's value for a spread descriptor ("" when the label is missing). */
export function spreadValue(descriptor: string, node: Node): string {
  const label = labelOf(descriptor.trim());
  // shoal nodes carry one label set: engine labels and node labels are the same map.
  return label === null ? "" : (node.labels[label] ?? "");
}

/**
 * The passing nodes in the group the preferences choose for the next task of `serviceId`.
 * `all` is every node the scheduler knows (their tasks count for their group), `passing` those
 * that passed the filters for this task. Preferences that name no label are skipped.
 */
export function preferredNodes(
  prefs: readonly PlacementPreference[],
  serviceId: string,
  all: readonly NodeInfo[],
  passing: readonly NodeInfo[],
): NodeInfo[] {
  let everyNode = all;
  let usable = passing;
  for (const p of prefs) {
    if (usable.length === 0) break;
    if (labelOf(p.spread.trim()) === null) continue;
    const value = (i: NodeInfo) => spreadValue(p.spread, i.node);
    const count = new Map<string, number>();
    for (const i of everyNode) {
      const v = value(i);
      count.set(v, (count.get(v) ?? 0) + (i.activeByService.get(serviceId) ?? 0));
    }
    let best: string | undefined;
    for (const v of new Set(usable.map(value))) {
      if (best === undefined) best = v;
      else {
        const d = count.get(v)! - count.get(best)!;
        if (d < 0 || (d === 0 && v < best)) best = v;
      }
    }
    everyNode = everyNode.filter((i) => value(i) === best);
    usable = usable.filter((i) => value(i) === best);
  }
  return [...usable];
}
