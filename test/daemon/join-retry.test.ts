import { test } from "node:test";
import assert from "node:assert/strict";
import { joinFollowingLeader, type JoinRetryClock } from "../../src/daemon/join-retry.js";
import { JoinRefusedError } from "../../src/daemon/worker-daemon.js";

/** A clock that moves only when the code under test sleeps. */
function fakeClock(): JoinRetryClock & { slept: number[] } {
  let t = 0;
  const slept: number[] = [];
  return {
    slept,
    now: () => t,
    sleep: async (ms) => {
      slept.push(ms);
      t += ms;
    },
  };
}

type Answer = string | Error;

/** An attempt that answers from a per-address script, and records where it was sent. */
function scripted(script: Record<string, Answer[]>) {
  const calls: string[] = [];
  const attempt = async (to: string): Promise<string> => {
    calls.push(to);
    const next = script[to]?.shift();
    if (next === undefined) throw new Error(`unexpected attempt at ${to}`);
    if (next instanceof Error) throw next;
    return next;
  };
  return { calls, attempt };
}

const busy = (why = "no leader") => new JoinRefusedError(why, 503);
const follower = (addr: string) =>
  new JoinRefusedError(`this manager is not the leader: join through the leader, at ${addr}`, 503);
const refused = new JoinRefusedError("invalid join token", 401);
const unreachable = Object.assign(new Error("connect ECONNREFUSED 10.0.0.1:2377"), {
  code: "ECONNREFUSED",
});

const cases: {
  name: string;
  script: Record<string, Answer[]>;
  result: { answer: string; target: string } | RegExp;
  calls: string[];
}[] = [
  {
    name: "an answer at once",
    script: { a: ["ok"] },
    result: { answer: "ok", target: "a" },
    calls: ["a"],
  },
  {
    name: "a follower names the leader: the next attempt goes there",
    script: { a: [follower("b:2377")], "b:2377": ["ok"] },
    result: { answer: "ok", target: "b:2377" },
    calls: ["a", "b:2377"],
  },
  {
    name: "leadership moves again: it follows each named leader",
    script: { a: [follower("b")], b: [follower("c")], c: ["ok"] },
    result: { answer: "ok", target: "c" },
    calls: ["a", "b", "c"],
  },
  {
    name: "a 503 without an address: the same manager again",
    script: { a: [busy(), busy(), "ok"] },
    result: { answer: "ok", target: "a" },
    calls: ["a", "a", "a"],
  },
  {
    name: "a refusal that is not a 503 is the answer, not retried",
    script: { a: [refused] },
    result: /invalid join token/,
    calls: ["a"],
  },
  {
    name: "a connection error on the first attempt is the answer",
    script: { a: [unreachable] },
    result: /ECONNREFUSED/,
    calls: ["a"],
  },
  {
    name: "once waiting, a connection error (the manager restarting) is retried",
    script: { a: [busy("moving to etcd"), unreachable, "ok"] },
    result: { answer: "ok", target: "a" },
    calls: ["a", "a", "a"],
  },
  {
    name: "once waiting, a 4xx still ends it",
    script: { a: [busy(), refused] },
    result: /invalid join token/,
    calls: ["a", "a"],
  },
];

for (const c of cases) {
  test(`join retry: ${c.name}`, async () => {
    const { calls, attempt } = scripted(c.script);
    const run = joinFollowingLeader("a", attempt, {
      retryMs: 60_000,
      intervalMs: 1000,
      clock: fakeClock(),
    });
    if (c.result instanceof RegExp) await assert.rejects(run, c.result);
    else assert.deepEqual(await run, c.result);
    assert.deepEqual(calls, c.calls);
  });
}

test("join retry: gives up with the last error once the time is over", async () => {
  const clock = fakeClock();
  let n = 0;
  const run = joinFollowingLeader(
    "a",
    async () => {
      n++;
      throw busy(`no leader (${n})`);
    },
    { retryMs: 5000, intervalMs: 1000, clock },
  );
  await assert.rejects(
    run,
    (err: Error) => err instanceof JoinRefusedError && /\(7\)/.test(err.message),
  );
  // Attempts at t = 0..6 s: the one at 6 s is past the 5 s and is thrown.
  assert.equal(n, 7);
  assert.deepEqual(clock.slept, [1000, 1000, 1000, 1000, 1000, 1000]);
});
