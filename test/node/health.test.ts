// The health check state machine as tables, time injected: Docker's defaults, the start period
// (failures do not count, checks come every start interval), retries, one success heals at
// once, timeouts, and the log of the last 5 results with output cut to 4 KiB.

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  HEALTH_OUTPUT_MAX,
  cutOutput,
  healthCheckOf,
  initialHealth,
  nextCheckDelay,
  recordResult,
  timedOut,
  type HealthCheck,
} from "../../src/node/health.js";
import type { HealthConfig, TaskHealth } from "../../src/api/types.js";

const cfg = (over: Partial<HealthConfig> = {}): HealthConfig => ({
  test: ["CMD-SHELL", "true"],
  intervalMs: 1000,
  timeoutMs: 500,
  retries: 3,
  startPeriodMs: 0,
  startIntervalMs: 100,
  ...over,
});

describe("healthCheckOf", () => {
  test("Docker's forms and defaults", () => {
    assert.deepEqual(healthCheckOf(undefined), null);
    assert.deepEqual(healthCheckOf(cfg({ test: ["NONE"] })), null);
    assert.deepEqual(healthCheckOf(cfg({ test: [] })), null);
    assert.deepEqual(healthCheckOf(cfg({ test: ["CMD"] })), null);
    assert.deepEqual(healthCheckOf(cfg({ test: ["CMD", "curl", "-f", "x"] }))?.argv, [
      "curl",
      "-f",
      "x",
    ]);
    assert.deepEqual(healthCheckOf(cfg({ test: ["CMD-SHELL", "test -f ready"] }))?.argv, [
      "/bin/sh",
      "-c",
      "test -f ready",
    ]);
    const zero = healthCheckOf(
      cfg({ intervalMs: 0, timeoutMs: 0, retries: 0, startPeriodMs: 0, startIntervalMs: 0 }),
    );
    assert.deepEqual(
      { ...zero, argv: [] },
      {
        argv: [],
        intervalMs: 30_000,
        timeoutMs: 30_000,
        retries: 3,
        startPeriodMs: 0,
        startIntervalMs: 5_000,
      },
    );
  });
});

/** Runs results (exit codes at times since the start) through the machine; every state. */
function run(check: HealthCheck, results: Array<[at: number, exitCode: number]>): TaskHealth[] {
  let h = initialHealth();
  const out: TaskHealth[] = [];
  for (const [at, exitCode] of results) {
    h = recordResult(check, h, { start: at, end: at + 1, exitCode, output: `r${at}` }, 0);
    out.push(h);
  }
  return out;
}

describe("recordResult", () => {
  const cases: Array<{
    name: string;
    over?: Partial<HealthConfig>;
    results: Array<[number, number]>;
    /** status/failingStreak after each result */
    expect: string[];
  }> = [
    {
      name: "one success makes a starting task healthy at once",
      results: [[1000, 0]],
      expect: ["healthy/0"],
    },
    {
      name: "retries failures in a row make it unhealthy",
      results: [
        [1000, 1],
        [2000, 1],
        [3000, 1],
      ],
      expect: ["starting/1", "starting/2", "unhealthy/3"],
    },
    {
      name: "a success in between resets the streak",
      results: [
        [1000, 1],
        [2000, 1],
        [3000, 0],
        [4000, 1],
        [5000, 1],
        [6000, 1],
      ],
      expect: ["starting/1", "starting/2", "healthy/0", "healthy/1", "healthy/2", "unhealthy/3"],
    },
    {
      name: "failures inside the start period do not count while starting",
      over: { startPeriodMs: 2500 },
      results: [
        [100, 1],
        [1000, 1],
        [2000, 1],
        [3000, 1],
        [4000, 1],
        [5000, 1],
      ],
      expect: ["starting/0", "starting/0", "starting/0", "starting/1", "starting/2", "unhealthy/3"],
    },
    {
      name: "once healthy, failures inside the start period count",
      over: { startPeriodMs: 10_000 },
      results: [
        [100, 0],
        [200, 1],
        [300, 1],
        [400, 1],
      ],
      expect: ["healthy/0", "healthy/1", "healthy/2", "unhealthy/3"],
    },
    {
      name: "retries 1: the first counted failure is unhealthy",
      over: { retries: 1 },
      results: [[1000, 2]],
      expect: ["unhealthy/1"],
    },
    {
      name: "a timed-out check (-1) fails like any other",
      over: { retries: 2 },
      results: [
        [1000, -1],
        [2000, -1],
      ],
      expect: ["starting/1", "unhealthy/2"],
    },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const check = healthCheckOf(cfg(c.over))!;
      const got = run(check, c.results).map((h) => `${h.status}/${h.failingStreak}`);
      assert.deepEqual(got, c.expect);
    });
  }

  test("the log keeps the last 5 results, oldest first, and the input is not changed", () => {
    const check = healthCheckOf(cfg())!;
    const states = run(
      check,
      [1, 2, 3, 4, 5, 6, 7].map((i) => [i * 1000, 0]),
    );
    const last = states.at(-1)!;
    assert.deepEqual(
      last.log.map((r) => r.output),
      ["r3000", "r4000", "r5000", "r6000", "r7000"],
    );
    assert.equal(states[0]!.log.length, 1, "earlier states keep their own log");
  });

  test("timedOut: exit -1 with Docker's message", () => {
    const check = healthCheckOf(cfg({ timeoutMs: 2000 }))!;
    assert.deepEqual(timedOut(check, 10, 2010), {
      start: 10,
      end: 2010,
      exitCode: -1,
      output: "Health check exceeded timeout (2s)",
    });
  });

  test("output is cut to 4 KiB, never inside a character", () => {
    assert.equal(cutOutput("ok"), "ok");
    assert.equal(Buffer.byteLength(cutOutput("x".repeat(10_000))), HEALTH_OUTPUT_MAX);
    const cut = cutOutput("é".repeat(3000)); // 2 bytes each
    assert.equal(Buffer.byteLength(cut), HEALTH_OUTPUT_MAX);
    const odd = cutOutput("x" + "é".repeat(3000));
    assert.equal(Buffer.byteLength(odd), HEALTH_OUTPUT_MAX - 1);
    assert.ok(!odd.includes("\uFFFD"));
    const h = recordResult(
      healthCheckOf(cfg())!,
      initialHealth(),
      { start: 1, end: 2, exitCode: 0, output: "y".repeat(5000) },
      0,
    );
    assert.equal(h.log[0]!.output.length, HEALTH_OUTPUT_MAX);
  });
});

describe("nextCheckDelay", () => {
  const check = healthCheckOf(
    cfg({ startPeriodMs: 2000, intervalMs: 1000, startIntervalMs: 100 }),
  )!;
  const starting = initialHealth();
  const healthy: TaskHealth = { status: "healthy", failingStreak: 0, log: [] };
  const table: Array<[string, TaskHealth, number, number]> = [
    ["starting, inside the start period: the start interval", starting, 500, 100],
    ["starting, after the start period: the interval", starting, 2500, 1000],
    ["healthy inside the start period: the interval", healthy, 500, 1000],
  ];
  for (const [name, h, now, want] of table) {
    test(name, () => assert.equal(nextCheckDelay(check, h, 0, now), want));
  }
  test("no start period: always the interval", () => {
    const c = healthCheckOf(cfg({ startPeriodMs: 0 }))!;
    assert.equal(nextCheckDelay(c, starting, 0, 0), 1000);
  });
});
