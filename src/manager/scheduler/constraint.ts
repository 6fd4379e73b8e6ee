// Placement constraints, in Swarm's syntax: `key==value` or `key!=value`, where the key is one of
// node.id, node.hostname, node.role, node.labels.<name> or engine.labels.<name>. Values compare
// case-insensitively; a missing label compares as the empty string (so `!=` matches it and `==`
// does not). Parsing is strict so a bad constraint is refused when the service is created, with
// a message that names the problem, instead of silently matching no node.

import type { Node } from "../../api/types.js";

export type ConstraintOperator = "==" | "!=";

export interface Constraint {
  /** The key as written, trimmed (e.g. `node.labels.zone`). */
  key: string;
  operator: ConstraintOperator;
  /** The value as written, trimmed. */
  value: string;
}

export class ConstraintError extends Error {
  readonly code = "ERR_INVALID";
  constructor(message: string) {
    super(message);
    this.name = "ConstraintError";
  }
}

const OPERATORS: readonly ConstraintOperator[] = ["==", "!="];
const KEY = /^[a-z_][a-z0-9\-_.]*$/i;
const VALUE = /^[a-z0-9:\-_\s.*()?+[\]\\^$|/@]+$/i;
const LABEL_PREFIXES = ["node.labels.", "engine.labels."];
const PLAIN_KEYS = ["node.id", "node.hostname", "node.role"];

/** Parses one constraint; throws a ConstraintError naming what is wrong. */
export function parseConstraint(s: string): Constraint {
  const op = OPERATORS.find((o) => s.includes(o));
  if (!op) {
    throw new ConstraintError(
      `invalid constraint "${s}": expected one operator from ${OPERATORS.join(", ")}`,
    );
  }
  const at = s.indexOf(op);
  const key = s.slice(0, at).trim();
  const value = s.slice(at + op.length).trim();
  if (!KEY.test(key))
    throw new ConstraintError(`invalid constraint "${s}": key '${key}' is invalid`);
  if (!VALUE.test(value)) {
    throw new ConstraintError(`invalid constraint "${s}": value '${value}' is invalid`);
  }
  const lower = key.toLowerCase();
  const prefix = LABEL_PREFIXES.find((p) => lower.startsWith(p));
  if (!PLAIN_KEYS.includes(lower) && !(prefix && key.length > prefix.length)) {
    throw new ConstraintError(
      `invalid constraint "${s}": unknown key '${key}' (use node.id, node.hostname, node.role, ` +
        `node.labels.<name> or engine.labels.<name>)`,
    );
  }
  return { key, operator: op, value };
}

/** The node's value for a constraint key ("" when a label is missing). */
function nodeValue(key: string, node: Node): string {
  const lower = key.toLowerCase();
  switch (lower) {
    case "node.id":
      return node.id;
    case "node.hostname":
      return node.hostname;
    case "node.role":
      return node.role;
  }
  // shoal nodes carry one label set: engine labels and node labels are the same map.
  const prefix = LABEL_PREFIXES.find((p) => lower.startsWith(p)) ?? "";
  return node.labels[key.slice(prefix.length)] ?? "";
}

export function constraintMatches(c: Constraint, node: Node): boolean {
  const equal = nodeValue(c.key, node).toLowerCase() === c.value.toLowerCase();
  return c.operator === "==" ? equal : !equal;
}

/** True when the node satisfies every constraint. Throws on a malformed constraint. */
export function matchConstraints(constraints: string[], node: Node): boolean {
  return constraints.map(parseConstraint).every((c) => constraintMatches(c, node));
}

/**
 * The lenient form used while placing and keeping tasks: constraints were validated when the
 * service was created, so one that does not parse here disables the check (as Swarm does)
 * rather than evicting every task.
 */
export function constraintsAllow(constraints: string[], node: Node): boolean {
  try {
    return matchConstraints(constraints, node);
  } catch {
    return true;
  }
}
