// When the managers depose a silent leader (src/daemon/leader-silence.ts): the verdict as a
// table, and the tracker on an injected clock.

import { test } from "node:test";
import assert from "node:assert/strict";
import {
  deposeVerdict,
  LeaderSilence,
  type SilenceView,
  type Witness,
} from "../../src/daemon/leader-silence.js";

const w = (
  nodeId: string,
  leaderId: string | undefined,
  leaderSilentMs: number,
  receivedAt: number,
): Witness => ({
  beat: { nodeId, ...(leaderId !== undefined ? { leaderId } : {}), leaderSilentMs },
  receivedAt,
});

const base: SilenceView = {
  self: "a",
  leaderId: "L",
  now: 10_000,
  leaderHeardAt: 6_000,
  witnesses: [w("b", "L", 3_800, 9_800)],
  thresholdMs: 3_500,
  freshMs: 1_500,
};

test("deposeVerdict: a leader silent here and for a witness heard lately is deposed; otherwise not", () => {
  const rows: Array<[string, Partial<SilenceView>, boolean]> = [
    ["silent here, a fresh witness agrees", {}, true],
    ["heard here lately", { leaderHeardAt: 7_000 }, false],
    ["exactly the threshold", { leaderHeardAt: 6_500 }, true],
    ["no leader", { leaderId: undefined }, false],
    ["this manager leads", { leaderId: "a" }, false],
    ["no witness (two managers, or this one's bus cut)", { witnesses: [] }, false],
    ["the witness's beat is old", { witnesses: [w("b", "L", 3_800, 8_000)] }, false],
    [
      "the witness heard the leader lately (only our route is cut)",
      { witnesses: [w("b", "L", 400, 9_900)] },
      false,
    ],
    [
      "the witness not silent for half the threshold",
      { witnesses: [w("b", "L", 1_700, 9_900)] },
      false,
    ],
    ["the witness silent for half the threshold", { witnesses: [w("b", "L", 1_750, 9_900)] }, true],
    ["the witness sees another leader", { witnesses: [w("b", "M", 3_800, 9_900)] }, false],
    ["the witness sees no leader", { witnesses: [w("b", undefined, 0, 9_900)] }, false],
    ["a beat from the leader itself is no witness", { witnesses: [w("L", "L", 0, 9_900)] }, false],
    [
      "one witness agrees, another heard the leader: vetoed",
      { witnesses: [w("b", "L", 3_800, 9_900), w("c", "L", 100, 9_900)] },
      false,
    ],
    [
      "one agrees, a stale one heard the leader long ago",
      { witnesses: [w("b", "L", 3_800, 9_900), w("c", "L", 100, 5_000)] },
      true,
    ],
  ];
  for (const [name, change, want] of rows) {
    const got = deposeVerdict({ ...base, ...change });
    assert.equal(got.depose, want, name);
    if (got.depose) assert.equal(got.leaderId, "L", name);
  }
});

test("deposeVerdict names every witness that agrees, sorted", () => {
  const got = deposeVerdict({
    ...base,
    witnesses: [w("d", "L", 4_000, 9_900), w("b", "L", 3_800, 9_900), w("c", "M", 0, 9_900)],
  });
  assert.deepEqual(got, { depose: true, leaderId: "L", witnesses: ["b", "d"] });
});

/** Three managers a, b and leader L on one clock; a's tracker, ticking every 500 ms. */
function run(
  steps: (now: number, s: LeaderSilence) => void,
  untilMs: number,
): { deposedAt?: number } {
  const s = new LeaderSilence("a", 3_500, 1_500);
  for (let now = 0; now <= untilMs; now += 500) {
    steps(now, s);
    if (s.tick("L", now).depose) return { deposedAt: now };
  }
  return {};
}

test("LeaderSilence: L beats until 2 s then dies; b also stops hearing it: deposed at 5.5 s", () => {
  const got = run((now, s) => {
    if (now <= 2_000) s.beat({ nodeId: "L", leaderId: "L", leaderSilentMs: 0 }, now);
    const bSilence = now <= 2_000 ? 0 : now - 2_000;
    s.beat({ nodeId: "b", leaderId: "L", leaderSilentMs: bSilence }, now);
  }, 20_000);
  assert.equal(got.deposedAt, 5_500);
});

test("LeaderSilence: only a's route to L is cut, b hears L: never deposed", () => {
  const got = run((now, s) => {
    if (now <= 2_000) s.beat({ nodeId: "L", leaderId: "L", leaderSilentMs: 0 }, now);
    s.beat({ nodeId: "b", leaderId: "L", leaderSilentMs: 0 }, now);
  }, 20_000);
  assert.equal(got.deposedAt, undefined);
});

test("LeaderSilence: a new leader, and any leader after this manager stalled, get a full grace", () => {
  const s = new LeaderSilence("a", 3_500, 1_500);
  const tick = (now: number) => {
    // b has never heard L either.
    s.beat({ nodeId: "b", leaderId: "L", leaderSilentMs: now }, now);
    return s.tick("L", now).depose;
  };
  // L never beats, but a sees it first at 10 s: silent from then.
  let deposedAt: number | undefined;
  for (let now = 10_000; deposedAt === undefined && now <= 20_000; now += 500) {
    if (tick(now)) deposedAt = now;
  }
  assert.equal(deposedAt, 13_500);
  assert.equal(s.silentFor("L", 13_500), 3_500);
  // a stalls for 5 s (no tick): what it heard meanwhile may sit unread, L gets a new grace.
  assert.equal(tick(18_500), false);
  assert.equal(s.silentFor("L", 18_500), 0);
  for (let now = 19_000; now < 22_000; now += 500) assert.equal(tick(now), false, `at ${now}`);
  assert.equal(tick(22_000), true); // 3.5 s after the stall
  // A new leader M seen: silent from when it was first seen.
  assert.equal(s.silentFor("M", 23_000), 0);
  assert.equal(s.silentFor("M", 24_000), 1_000);
  // This manager's own beats are not the leader's, and it never deposes itself.
  s.beat({ nodeId: "a", leaderId: "a", leaderSilentMs: 0 }, 24_000);
  assert.equal(s.silentFor("a", 24_000), 0);
  assert.equal(s.tick("a", 24_000).depose, false);
});
