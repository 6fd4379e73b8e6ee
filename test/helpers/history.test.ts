// The history checker of the several-managers test (test/helpers/history.ts), as a pure
// function: table cases of histories and found states, valid ones and ones it must reject.

import { test } from "node:test";
import assert from "node:assert/strict";
import {
  checkHistory,
  finalStates,
  type HistoryEntry,
  type KeyState,
  type Outcome,
} from "./history.js";

const c = (key: string, replicas: number, result: Outcome): HistoryEntry => ({
  client: 0,
  op: { kind: "create", key, replicas },
  result,
});
const s = (key: string, replicas: number, result: Outcome): HistoryEntry => ({
  client: 0,
  op: { kind: "scale", key, replicas },
  result,
});
const rm = (key: string, result: Outcome): HistoryEntry => ({
  client: 0,
  op: { kind: "remove", key },
  result,
});

interface Case {
  name: string;
  history: HistoryEntry[];
  found: Record<string, KeyState>;
  /** Substrings of the problems expected; [] for a valid history. */
  problems: string[];
}

const cases: Case[] = [
  { name: "nothing", history: [], found: {}, problems: [] },
  { name: "a create", history: [c("a", 2, "ok")], found: { a: 2 }, problems: [] },
  {
    name: "an acknowledged create lost",
    history: [c("a", 2, "ok")],
    found: {},
    problems: ["a: found absent, but the history allows only 2 replicas"],
  },
  {
    name: "an acknowledged scale lost",
    history: [c("a", 2, "ok"), s("a", 3, "ok")],
    found: { a: 2 },
    problems: ["a: found 2 replicas, but the history allows only 3 replicas"],
  },
  {
    name: "an acknowledged remove undone",
    history: [c("a", 1, "ok"), rm("a", "ok")],
    found: { a: 1 },
    problems: ["allows only absent"],
  },
  {
    name: "a failed write took effect",
    history: [c("a", 1, "ok"), s("a", 4, "failed")],
    found: { a: 4 },
    problems: ["allows only 1 replicas"],
  },
  {
    name: "a failed create took effect",
    history: [c("a", 1, "failed")],
    found: { a: 1 },
    problems: ["a: found 1 replicas, but the history allows only absent"],
  },
  {
    name: "an unknown scale: either is fine",
    history: [c("a", 1, "ok"), s("a", 5, "unknown")],
    found: { a: 5 },
    problems: [],
  },
  {
    name: "an unknown scale not applied",
    history: [c("a", 1, "ok"), s("a", 5, "unknown")],
    found: { a: 1 },
    problems: [],
  },
  {
    name: "an unknown scale applied after a later acknowledged one",
    history: [c("a", 1, "ok"), s("a", 5, "unknown"), s("a", 2, "ok")],
    found: { a: 5 },
    problems: [],
  },
  {
    name: "an unknown scale cannot make up another count",
    history: [c("a", 1, "ok"), s("a", 5, "unknown"), s("a", 2, "ok")],
    found: { a: 3 },
    problems: ["allows only"],
  },
  {
    name: "an unknown remove, then a create acknowledged: the remove came first",
    history: [c("a", 1, "ok"), rm("a", "unknown"), c("a", 2, "ok")],
    found: { a: 2 },
    problems: [],
  },
  {
    name: "an unknown remove that made room for a re-create cannot land after it",
    history: [c("a", 1, "ok"), rm("a", "unknown"), c("a", 2, "ok")],
    found: {},
    problems: ["a: found absent, but the history allows only 2 replicas"],
  },
  {
    name: "a create acknowledged twice with nothing between",
    history: [c("a", 1, "ok"), c("a", 2, "ok")],
    found: { a: 2 },
    problems: ['acknowledged "client 0: create a replicas=2 -> ok" is impossible'],
  },
  {
    name: "a scale acknowledged on a removed service",
    history: [c("a", 1, "ok"), rm("a", "ok"), s("a", 3, "ok")],
    found: { a: 3 },
    problems: ["impossible: before it the service was absent"],
  },
  {
    name: "a remove acknowledged on a service never created",
    history: [c("a", 1, "failed"), rm("a", "ok")],
    found: {},
    problems: ["impossible"],
  },
  {
    name: "an unknown create explains a later acknowledged remove",
    history: [c("a", 1, "unknown"), rm("a", "ok")],
    found: {},
    problems: [],
  },
  {
    name: "an unknown create applies at most once",
    history: [c("a", 1, "unknown"), rm("a", "ok"), s("a", 2, "ok")],
    found: { a: 2 },
    problems: ["impossible"],
  },
  {
    name: "a service nobody created",
    history: [c("a", 1, "ok")],
    found: { a: 1, ghost: 2 },
    problems: ["ghost: found 2 replicas, never written"],
  },
  {
    name: "keys are checked apart",
    history: [c("a", 1, "ok"), c("b", 2, "ok"), s("b", 1, "ok"), rm("a", "ok")],
    found: { b: 2 },
    problems: ["b: found 2 replicas, but the history allows only 1 replicas"],
  },
];

for (const k of cases) {
  test(`checkHistory: ${k.name}`, () => {
    const got = checkHistory(k.history, new Map(Object.entries(k.found)));
    assert.equal(got.length, k.problems.length, `problems: ${JSON.stringify(got)}`);
    for (const [i, want] of k.problems.entries()) assert.ok(got[i]!.includes(want), got[i]);
  });
}

test("finalStates: every state an unknown write may leave", () => {
  const r = finalStates([c("a", 1, "ok"), s("a", 2, "unknown"), rm("a", "unknown")]);
  assert.ok("states" in r);
  assert.deepEqual([...r.states].sort(), [1, 2, null].sort());
});
