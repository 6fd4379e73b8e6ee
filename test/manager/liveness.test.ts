// Node liveness (src/manager/liveness.ts) as a table of events and expected silences, and the
// stall watcher on a real event loop that is blocked on purpose.

import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { Liveness, watchStalls } from "../../src/manager/liveness.js";

type Step =
  | { heard: string; at: number }
  | { credit: number }
  | { forget: string }
  | { ask: string; at: number; silent: number };

const cases: Array<{ name: string; steps: Step[] }> = [
  {
    name: "silence is measured from the last heartbeat",
    steps: [
      { heard: "a", at: 1000 },
      { ask: "a", at: 1500, silent: 500 },
      { heard: "a", at: 2000 },
      { ask: "a", at: 5100, silent: 3100 },
    ],
  },
  {
    name: "a node never heard from starts counting when first asked about (restart grace)",
    steps: [
      { ask: "b", at: 10_000, silent: 0 },
      { ask: "b", at: 12_500, silent: 2500 },
    ],
  },
  {
    name: "an older heartbeat delivered late does not move the clock back",
    steps: [
      { heard: "a", at: 3000 },
      { heard: "a", at: 2000 },
      { ask: "a", at: 4000, silent: 1000 },
    ],
  },
  {
    name: "a manager stall is credited to every node",
    steps: [
      { heard: "a", at: 1000 },
      { heard: "b", at: 1500 },
      { credit: 2000 },
      { ask: "a", at: 4000, silent: 1000 },
      { ask: "b", at: 4000, silent: 500 },
    ],
  },
  {
    name: "credit never makes a node look heard from in the future",
    steps: [{ heard: "a", at: 1000 }, { credit: 5000 }, { ask: "a", at: 2000, silent: 0 }],
  },
  {
    name: "a forgotten node starts over",
    steps: [
      { heard: "a", at: 1000 },
      { forget: "a" },
      { ask: "a", at: 9000, silent: 0 },
      { ask: "a", at: 9300, silent: 300 },
    ],
  },
  {
    name: "nodes are independent",
    steps: [
      { heard: "a", at: 1000 },
      { heard: "b", at: 4000 },
      { ask: "a", at: 5000, silent: 4000 },
      { ask: "b", at: 5000, silent: 1000 },
    ],
  },
  {
    name: "zero, negative and NaN credits change nothing",
    steps: [
      { heard: "a", at: 1000 },
      { credit: 0 },
      { credit: -500 },
      { credit: Number.NaN },
      { ask: "a", at: 1800, silent: 800 },
    ],
  },
];

describe("liveness", () => {
  for (const c of cases) {
    test(c.name, () => {
      const l = new Liveness();
      c.steps.forEach((s, i) => {
        if ("heard" in s) l.heard(s.heard, s.at);
        else if ("credit" in s) l.credit(s.credit);
        else if ("forget" in s) l.forget(s.forget);
        else assert.equal(l.silentFor(s.ask, s.at), s.silent, `step ${i}: ${JSON.stringify(s)}`);
      });
    });
  }

  test("watchStalls reports a blocked event loop, and nothing while it is idle", async () => {
    const stalls: number[] = [];
    const stop = watchStalls(20, 150, (ms) => stalls.push(ms));
    try {
      await new Promise((r) => setTimeout(r, 120));
      assert.deepEqual(stalls, [], "an idle loop is never late by 150 ms");
      const until = Date.now() + 400;
      while (Date.now() < until); // block the loop on purpose
      const deadline = Date.now() + 2000;
      while (stalls.length === 0 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 10));
      }
      assert.equal(stalls.length, 1, JSON.stringify(stalls));
      assert.ok(stalls[0]! >= 300 && stalls[0]! < 1000, `stall of ${stalls[0]} ms`);
    } finally {
      stop();
    }
  });
});
