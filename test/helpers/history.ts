// A small checker of histories in the manner of Jepsen, for the history test of several managers
// (test/cluster/history.test.ts): clients create, scale and remove services and record each
// operation with its result; `checkHistory` says whether the state found at the end is one that
// the acknowledged results allow, and names every operation that no order explains.
//
// The model: a key (a service name) is absent or present with a replica count. Each key belongs
// to one client, which runs its operations on it one after another, so a key's operations form
// one sequence in the order they were invoked. Results:
//   - ok: the operation took effect exactly once, between its invocation and its answer; its
//     precondition held then (create: absent; scale, remove: present);
//   - failed: it took no effect;
//   - unknown (a timeout, a lost answer): it may take effect at most once, at any moment after
//     its invocation, even after later operations of the same client (a write still in flight
//     at the leader when the client gave up), or never.
// The checker follows every configuration (the state and the unknown operations not yet
// applied) the history allows; a key with no configuration left, or whose found state is none
// of the final ones, is a violation. A pure function: tested with table cases in
// test/helpers/history.test.ts.

/** A key's state: null when absent, else its replica count. */
export type KeyState = number | null;

export type HistoryOp =
  | { kind: "create"; key: string; replicas: number }
  | { kind: "scale"; key: string; replicas: number }
  | { kind: "remove"; key: string };

export type Outcome = "ok" | "failed" | "unknown";

export interface HistoryEntry {
  /** The client that ran it (for messages). */
  client: number;
  op: HistoryOp;
  result: Outcome;
  /** Why it failed or is unknown (the error), for messages. */
  detail?: string;
  /** When it was invoked and answered (ms since the epoch), for messages. */
  start?: number;
  end?: number;
}

interface Config {
  state: KeyState;
  /** Indices (into the key's entries) of unknown operations that have not taken effect. */
  pending: number[];
}

/** The state after `op` when its precondition holds in `s`; undefined when it does not. */
export function applyOp(op: HistoryOp, s: KeyState): KeyState | undefined {
  switch (op.kind) {
    case "create":
      return s === null ? op.replicas : undefined;
    case "scale":
      return s === null ? undefined : op.replicas;
    case "remove":
      return s === null ? undefined : null;
  }
}

const keyOf = (c: Config) => `${c.state}|${c.pending.join(",")}`;

function dedupe(cs: Config[]): Config[] {
  const seen = new Map<string, Config>();
  for (const c of cs) seen.set(keyOf(c), c);
  return [...seen.values()];
}

/** Every configuration reachable by applying some of the pending operations (each at most once,
 * in any order; one whose precondition fails then takes no effect, as a refused write). */
function closure(cs: Config[], entries: HistoryEntry[]): Config[] {
  const out = new Map<string, Config>();
  const todo = [...cs];
  while (todo.length > 0) {
    const c = todo.pop()!;
    const k = keyOf(c);
    if (out.has(k)) continue;
    out.set(k, c);
    for (const i of c.pending) {
      const next = applyOp(entries[i]!.op, c.state);
      const pending = c.pending.filter((j) => j !== i);
      todo.push({ state: next === undefined ? c.state : next, pending });
    }
  }
  return [...out.values()];
}

function describe(e: HistoryEntry): string {
  const o = e.op;
  const what =
    o.kind === "remove" ? `remove ${o.key}` : `${o.kind} ${o.key} replicas=${o.replicas}`;
  return `client ${e.client}: ${what} -> ${e.result}${e.detail ? ` (${e.detail})` : ""}`;
}

const showState = (s: KeyState) => (s === null ? "absent" : `${s} replicas`);

/** The states a key may end in, or a violation (an acknowledged result no order explains). */
export function finalStates(entries: HistoryEntry[]): { states: KeyState[] } | { error: string } {
  let configs: Config[] = [{ state: null, pending: [] }];
  for (const [i, e] of entries.entries()) {
    if (e.result === "failed") continue;
    if (e.result === "unknown") {
      configs = dedupe(configs.map((c) => ({ state: c.state, pending: [...c.pending, i] })));
      continue;
    }
    const before = closure(configs, entries);
    const after: Config[] = [];
    for (const c of before) {
      const next = applyOp(e.op, c.state);
      if (next !== undefined) after.push({ state: next, pending: c.pending });
    }
    if (after.length === 0) {
      const states = [...new Set(before.map((c) => showState(c.state)))].join(" or ");
      return {
        error: `acknowledged "${describe(e)}" is impossible: before it the service was ${states}`,
      };
    }
    configs = dedupe(after);
  }
  const states = new Set(closure(configs, entries).map((c) => c.state));
  return { states: [...states] };
}

/**
 * The violations of a history, given the state found at the end for every key it names (a key
 * missing from `found` counts as absent); an empty list when the history is valid. Keys found
 * but never written by any operation are violations too (a service nobody created).
 */
export function checkHistory(
  history: HistoryEntry[],
  found: ReadonlyMap<string, KeyState>,
): string[] {
  const byKey = new Map<string, HistoryEntry[]>();
  for (const e of history) {
    const list = byKey.get(e.op.key) ?? [];
    list.push(e);
    byKey.set(e.op.key, list);
  }
  const problems: string[] = [];
  for (const [key, entries] of [...byKey].sort(([a], [b]) => a.localeCompare(b))) {
    const r = finalStates(entries);
    if ("error" in r) {
      problems.push(`${key}: ${r.error}`);
      continue;
    }
    const got = found.get(key) ?? null;
    if (!r.states.includes(got)) {
      const last = entries
        .filter((e) => e.result !== "failed")
        .slice(-3)
        .map(describe);
      problems.push(
        `${key}: found ${showState(got)}, but the history allows only ${r.states
          .map(showState)
          .join(" or ")} (last writes: ${last.join("; ")})`,
      );
    }
  }
  for (const [key, s] of found) {
    if (!byKey.has(key) && s !== null)
      problems.push(`${key}: found ${showState(s)}, never written`);
  }
  return problems;
}
