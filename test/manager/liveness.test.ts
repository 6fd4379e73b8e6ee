// Node liveness (src/manager/liveness.ts) as a table of events and expected silences, and the
// stall watcher: its arithmetic on a scripted clock, and once on a real event loop that is
// blocked on purpose.

import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { Liveness, watchStalls } from "../../src/manager/liveness.js";
import { checkFor } from "../helpers/servers.js";

type Step =
  | { heard: string; at: number }
  | { credit: number }
  | { forget: string }
  | { restart: number }
  | { endGrace: string; heardAt: number }
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
    name: "a new leader counts every node's silence from its election at the latest",
    steps: [
      { heard: "a", at: 1000 },
      { heard: "b", at: 6000 },
      { restart: 5000 },
      { ask: "a", at: 7000, silent: 2000 },
      { ask: "b", at: 7000, silent: 1000 },
      { heard: "a", at: 7500 },
      { ask: "a", at: 8000, silent: 500 },
    ],
  },
  {
    name: "the previous leader found silent for good loses its grace: counts from its last beat",
    steps: [
      { heard: "a", at: 1000 },
      { heard: "old", at: 1000 },
      { restart: 5000 },
      { ask: "old", at: 6000, silent: 1000 },
      // its manager's beats were last heard at 1500, its agent's heartbeat at 1000
      { endGrace: "old", heardAt: 1500 },
      { ask: "old", at: 7000, silent: 5500 },
      { ask: "a", at: 7000, silent: 2000 },
    ],
  },
  {
    name: "ending the grace: a later heartbeat before the election counts; one after it stands",
    steps: [
      { heard: "old", at: 2500 },
      { restart: 5000 },
      { endGrace: "old", heardAt: 1500 },
      { ask: "old", at: 6000, silent: 3500 },
      { restart: 8000 },
      { heard: "new", at: 8500 },
      { endGrace: "new", heardAt: 4000 },
      { ask: "new", at: 9000, silent: 500 },
    ],
  },
  {
    name: "ending the grace of a node never heard: from its last beat, never past the election",
    steps: [
      { restart: 5000 },
      { endGrace: "old", heardAt: 4000 },
      { ask: "old", at: 6000, silent: 2000 },
      { endGrace: "late", heardAt: 9000 },
      { ask: "late", at: 6000, silent: 1000 },
    ],
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
  test("a node keeps the allowance of its last heartbeat until it beats again", () => {
    const l = new Liveness();
    assert.equal(l.allowance("a"), 0);
    l.heard("a", 1000, 3000); // beat on a 1 s period: 3 s of silence allowed
    assert.equal(l.allowance("a"), 3000);
    l.heard("a", 900, 300); // an older message changes nothing
    assert.equal(l.allowance("a"), 3000);
    l.heard("a", 2000, 300); // the next beat, on the new 100 ms period
    assert.equal(l.allowance("a"), 300);
    l.forget("a");
    assert.equal(l.allowance("a"), 0);
  });

  for (const c of cases) {
    test(c.name, () => {
      const l = new Liveness();
      c.steps.forEach((s, i) => {
        if ("heard" in s) l.heard(s.heard, s.at);
        else if ("credit" in s) l.credit(s.credit);
        else if ("forget" in s) l.forget(s.forget);
        else if ("restart" in s) l.restart(s.restart);
        else if ("endGrace" in s) l.endGrace(s.endGrace, s.heardAt);
        else assert.equal(l.silentFor(s.ask, s.at), s.silent, `step ${i}: ${JSON.stringify(s)}`);
      });
    });
  }

  test("watchStalls reports each tick later than the threshold, with its whole lateness", async () => {
    // The timer is real, the clock is scripted: tick k reads the clock LATE[k] ms after it was
    // due, so what is reported depends only on the script, never on how busy the machine is.
    const LATE = [0, 0, 3, 400, 0, 150, 151, 0, 1000, 0];
    const EVERY = 5;
    let clock = 0;
    let due = 0;
    let reads = 0;
    let done!: () => void;
    const finished = new Promise<void>((r) => (done = r));
    const now = () => {
      // The first read (at the start) sets the first due time; each later one is a tick.
      const late = reads === 0 ? 0 : (LATE[reads - 1] ?? 0);
      if (reads === LATE.length) done();
      reads++;
      clock = due + late;
      due = clock + EVERY;
      return clock;
    };
    const stalls: number[] = [];
    const stop = watchStalls(EVERY, 150, (ms) => stalls.push(ms), now);
    const alive = setInterval(() => {}, 1000); // the watcher's timer does not hold the loop open
    try {
      await finished;
    } finally {
      clearInterval(alive);
      stop();
    }
    assert.deepEqual(stalls, [400, 151, 1000]);
  });

  test("watchStalls notices a real blocked event loop", async () => {
    const stalls: number[] = [];
    const stop = watchStalls(20, 150, (ms) => stalls.push(ms));
    try {
      const until = Date.now() + 400;
      while (Date.now() < until); // block the loop on purpose
      await checkFor(2000, () => stalls.some((ms) => ms >= 300));
    } finally {
      stop();
    }
  });
});
