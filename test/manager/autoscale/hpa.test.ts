// The autoscaling rules (src/manager/autoscale/hpa.ts), pure: tables of Kubernetes' HPA cases
// (desired = ceil(current x metric / target), the 10 % tolerance, the highest target wins,
// missing tasks counted conservatively, the scale-up limit, the scale-down stabilization window,
// min/max), and properties over random policies and loads (fast-check): never outside
// [min, max], never more than max(2x, +4) within 15 s, and a steady load converges and stays.

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  basisOf,
  decide,
  emptyHpaState,
  recordScale,
  targetReplicas,
  type HpaPolicy,
  type HpaState,
  type TaskBasis,
  type TaskSample,
} from "../../../src/manager/autoscale/hpa.js";
import { defaultServiceSpec } from "../../../src/api/types.js";
import { propertyParams } from "../../helpers/property.js";

const ONE_CORE: TaskBasis = { cpuCores: 1, memoryBytes: 1000 };
const MIN5 = 300_000;

function policy(over: Partial<HpaPolicy> = {}): HpaPolicy {
  return { min: 1, max: 20, cpuPercent: 70, stabilizationMs: MIN5, ...over };
}

/** n running tasks with these figures. */
function tasks(n: number, fig: Omit<TaskSample, "taskId" | "running">): TaskSample[] {
  return Array.from({ length: n }, (_, i) => ({ taskId: `t${i}`, running: true, ...fig }));
}

function once(
  p: HpaPolicy,
  current: number,
  samples: TaskSample[],
  basis: TaskBasis = ONE_CORE,
  state: HpaState = emptyHpaState(),
  now = 1_000_000,
) {
  return decide({ policy: p, current, samples, basis, now }, state);
}

describe("one target (HPA's replica calculator)", () => {
  const cases: Array<{
    name: string;
    metric: "cpu" | "memory" | "rps";
    target: number;
    current: number;
    samples: TaskSample[];
    basis?: TaskBasis;
    replicas: number | null;
    reason: RegExp;
  }> = [
    {
      name: "above target: ceil(3 x 95/70) = 5",
      metric: "cpu",
      target: 70,
      current: 3,
      samples: tasks(3, { cpuCores: 0.95 }),
      replicas: 5,
      reason: /^cpu 95% above target 70%$/,
    },
    {
      name: "below target: ceil(4 x 20/70) = 2",
      metric: "cpu",
      target: 70,
      current: 4,
      samples: tasks(4, { cpuCores: 0.2 }),
      replicas: 2,
      reason: /^cpu 20% below target 70%$/,
    },
    {
      name: "within the 10% tolerance: kept",
      metric: "cpu",
      target: 70,
      current: 3,
      samples: tasks(3, { cpuCores: 0.76 }),
      replicas: 3,
      reason: /within tolerance/,
    },
    {
      name: "just outside the tolerance: scales",
      metric: "cpu",
      target: 50,
      current: 10,
      samples: tasks(10, { cpuCores: 0.56 }),
      replicas: 12,
      reason: /above/,
    },
    {
      name: "cpu percent of the limit (0.5 core)",
      metric: "cpu",
      target: 50,
      current: 2,
      samples: tasks(2, { cpuCores: 0.5 }),
      basis: { cpuCores: 0.5, memoryBytes: 0 },
      replicas: 4,
      reason: /^cpu 100% above target 50%$/,
    },
    {
      name: "memory percent of the limit",
      metric: "memory",
      target: 80,
      current: 2,
      samples: tasks(2, { memoryBytes: 960 }),
      replicas: 3,
      reason: /^memory 96% above target 80%$/,
    },
    {
      name: "memory without a limit or reservation: no recommendation",
      metric: "memory",
      target: 80,
      current: 2,
      samples: tasks(2, { memoryBytes: 960 }),
      basis: { cpuCores: 1, memoryBytes: 0 },
      replicas: null,
      reason: /no limit or reservation/,
    },
    {
      name: "rps per task",
      metric: "rps",
      target: 100,
      current: 3,
      samples: tasks(3, { rps: 150 }),
      replicas: 5,
      reason: /^rps 150 above target 100$/,
    },
    {
      name: "no figures: no recommendation",
      metric: "cpu",
      target: 70,
      current: 3,
      samples: tasks(3, {}),
      replicas: null,
      reason: /^no cpu figures yet$/,
    },
    {
      name: "scale-up: tasks not running count as 0% (200% on 2 of 4 is 100% of 4: within tolerance)",
      metric: "cpu",
      target: 100,
      current: 4,
      samples: [
        ...tasks(2, { cpuCores: 2 }),
        ...tasks(2, {}).map((t) => ({ ...t, running: false })),
      ],
      replicas: 4,
      reason: /within tolerance with 2 tasks without figures counted as 0%/,
    },
    {
      name: "scale-up: missing tasks as 0% (300% on 2 of 4: ceil(4 x 600/400) = 6)",
      metric: "cpu",
      target: 100,
      current: 4,
      samples: [
        ...tasks(2, { cpuCores: 3 }),
        ...tasks(2, {}).map((t) => ({ ...t, running: false })),
      ],
      replicas: 6,
      reason: /2 tasks without figures counted as 0%/,
    },
    {
      name: "scale-down: missing tasks as 100% (ceil(10 x (8x7 + 2x100)/700) = 4, not 1)",
      metric: "cpu",
      target: 70,
      current: 10,
      samples: [...tasks(8, { cpuCores: 0.07 }), ...tasks(2, {})],
      replicas: 4,
      reason: /counted as 100%/,
    },
    {
      name: "scale-down: replicas the count has without a task count as missing",
      metric: "rps",
      target: 100,
      current: 4,
      samples: tasks(2, { rps: 10 }),
      replicas: 3,
      reason: /2 tasks without figures counted as 100/,
    },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const r = targetReplicas(c.metric, c.target, c.current, c.samples, c.basis ?? ONE_CORE);
      assert.equal(r.replicas, c.replicas);
      assert.match(r.reason, c.reason);
    });
  }

  test("a task's basis: limit, else reservation, else one core; memory only from the spec", () => {
    const spec = defaultServiceSpec("web");
    assert.deepEqual(basisOf(spec), { cpuCores: 1, memoryBytes: 0 });
    spec.reservations = { cpus: 2, memoryBytes: 512 };
    assert.deepEqual(basisOf(spec), { cpuCores: 2, memoryBytes: 512 });
    spec.limits = { cpus: 0.5, memoryBytes: 1024 };
    assert.deepEqual(basisOf(spec), { cpuCores: 0.5, memoryBytes: 1024 });
  });
});

describe("the decision", () => {
  test("scales up with the metric, value and target that decided", () => {
    const { decision } = once(policy(), 3, tasks(3, { cpuCores: 0.95 }));
    assert.equal(decision.desired, 5);
    assert.equal(decision.metric, "cpu");
    assert.equal(decision.target, 70);
    assert.ok(Math.abs(decision.value! - 95) < 1e-9);
    assert.equal(decision.reason, "cpu 95% above target 70%");
  });

  test("the highest of several targets wins", () => {
    const p = policy({ cpuPercent: 70, rps: 100 });
    const { decision } = once(p, 3, tasks(3, { cpuCores: 0.9, rps: 200 }));
    assert.equal(decision.metric, "rps");
    assert.equal(decision.desired, 6);
    assert.equal(decision.targets.length, 2);
    assert.equal(decision.targets[0]!.replicas, 4);
  });

  test("a target without figures forbids a scale-down, not a scale-up", () => {
    const p = policy({ cpuPercent: 70, rps: 100 });
    const down = once(p, 4, tasks(4, { cpuCores: 0.1 })).decision;
    assert.equal(down.desired, 4);
    assert.match(down.reason, /not scaling down: no rps figures yet/);
    const up = once(p, 4, tasks(4, { cpuCores: 1.4 })).decision;
    assert.equal(up.desired, 8);
  });

  test("no figures at all: the count stays", () => {
    const { decision } = once(policy(), 3, tasks(3, {}));
    assert.equal(decision.desired, 3);
    assert.equal(decision.reason, "no cpu figures yet");
    assert.equal(decision.recommendation, null);
  });

  test("within [min, max]", () => {
    const atMax = once(policy({ max: 6 }), 4, tasks(4, { cpuCores: 1.4 })).decision;
    assert.equal(atMax.desired, 6);
    assert.match(atMax.reason, /at max 6$/);
    const atMin = once(policy({ min: 2 }), 3, tasks(3, { cpuCores: 0.01 })).decision;
    assert.equal(atMin.desired, 2);
    assert.match(atMin.reason, /at min 2$/);
    // A count outside the bounds (a manual scale) is brought back whatever the figures.
    assert.equal(once(policy({ min: 3 }), 1, tasks(1, {})).decision.reason, "1 below min 3");
    assert.equal(once(policy({ min: 3 }), 1, tasks(1, {})).decision.desired, 3);
    assert.equal(once(policy({ max: 5 }), 9, tasks(9, {})).decision.desired, 5);
    // Zero (scaled to zero by hand) is left alone, as HPA leaves it.
    assert.equal(once(policy(), 0, []).decision.desired, 0);
  });

  test("scale-up at most max(2x, +4) of the count 15 s ago", () => {
    const p = policy({ max: 100, cpuPercent: 50 });
    const hot = (n: number) => tasks(n, { cpuCores: 10 });
    let r = once(p, 2, hot(2), ONE_CORE, emptyHpaState(), 0);
    assert.equal(r.decision.recommendation, 40);
    assert.equal(r.decision.desired, 6);
    assert.match(r.decision.reason, /scale-up limited to 6 \(2x or \+4 per 15s\)/);
    let state = recordScale(r.state, 0, 2, 6);
    // 5 s later the period still counts from 2: no more.
    r = once(p, 6, hot(6), ONE_CORE, state, 5_000);
    assert.equal(r.decision.desired, 6);
    state = r.state;
    // 15 s after the scale-up the period starts from 6: 12.
    r = once(p, 6, hot(6), ONE_CORE, state, 15_000);
    assert.equal(r.decision.desired, 12);
    state = recordScale(r.state, 15_000, 6, 12);
    r = once(p, 12, hot(12), ONE_CORE, state, 30_000);
    assert.equal(r.decision.desired, 24);
  });

  test("scale-down only to the highest recommendation of the window", () => {
    const p = policy({ cpuPercent: 50 });
    let r = once(p, 4, tasks(4, { cpuCores: 0.5 }), ONE_CORE, emptyHpaState(), 0);
    assert.equal(r.decision.desired, 4);
    // The load drops: the recommendation is 1, but 4 was recommended within 5 min.
    r = once(p, 4, tasks(4, { cpuCores: 0.1 }), ONE_CORE, r.state, 60_000);
    assert.equal(r.decision.recommendation, 1);
    assert.equal(r.decision.desired, 4);
    assert.equal(
      r.decision.reason,
      "cpu 10% below target 50%; stabilizing: highest recommendation in 5m0s is 4",
    );
    // A smaller peak within the window holds at its level.
    r = once(p, 4, tasks(4, { cpuCores: 0.3 }), ONE_CORE, r.state, 120_000);
    assert.equal(r.decision.recommendation, 3);
    assert.equal(r.decision.desired, 4);
    // 5 min after the 4: the highest left is the 3.
    r = once(p, 4, tasks(4, { cpuCores: 0.1 }), ONE_CORE, r.state, 300_000);
    assert.equal(r.decision.desired, 3);
    assert.match(r.decision.reason, /highest recommendation in 5m0s is 3/);
    r = once(p, 3, tasks(3, { cpuCores: 0.1 }), ONE_CORE, r.state, 420_001);
    assert.equal(r.decision.desired, 1);
    assert.equal(r.decision.reason, "cpu 10% below target 50%");
  });

  test("a window of 0 scales down at once", () => {
    const p = policy({ cpuPercent: 50, stabilizationMs: 0 });
    let r = once(p, 4, tasks(4, { cpuCores: 0.5 }), ONE_CORE, emptyHpaState(), 0);
    r = once(p, 4, tasks(4, { cpuCores: 0.1 }), ONE_CORE, r.state, 1);
    assert.equal(r.decision.desired, 1);
  });
});

// ---- properties -----------------------------------------------------------------------------

const policyArb = fc
  .record({
    min: fc.integer({ min: 1, max: 10 }),
    span: fc.integer({ min: 0, max: 30 }),
    cpu: fc.option(fc.integer({ min: 10, max: 200 }), { nil: undefined }),
    rps: fc.option(fc.integer({ min: 1, max: 500 }), { nil: undefined }),
    stabilizationMs: fc.constantFrom(0, 15_000, 60_000, 300_000),
  })
  .map(({ min, span, cpu, rps, stabilizationMs }) => {
    const p: HpaPolicy = { min, max: min + span, stabilizationMs };
    if (cpu !== undefined || rps === undefined) p.cpuPercent = cpu ?? 70;
    if (rps !== undefined) p.rps = rps;
    return p;
  });

/** A step: time passes, the load per task is some figure, some tasks may not run. */
const stepArb = fc.record({
  dtMs: fc.integer({ min: 1, max: 40_000 }),
  cpuCores: fc.option(fc.double({ min: 0, max: 8, noNaN: true }), { nil: undefined }),
  rps: fc.option(fc.double({ min: 0, max: 2000, noNaN: true }), { nil: undefined }),
  notRunning: fc.nat({ max: 3 }),
});

type Step = {
  dtMs: number;
  cpuCores?: number | undefined;
  rps?: number | undefined;
  notRunning: number;
};

/** Runs decisions as the Autoscaler applies them; returns (time, before, after) per step. */
function simulate(
  p: HpaPolicy,
  start: number,
  steps: Step[],
): Array<{ at: number; before: number; after: number }> {
  let state = emptyHpaState();
  let current = start;
  let now = 0;
  const log: Array<{ at: number; before: number; after: number }> = [];
  for (const s of steps) {
    now += s.dtMs;
    const samples = tasks(current, {
      ...(s.cpuCores !== undefined ? { cpuCores: s.cpuCores } : {}),
      ...(s.rps !== undefined ? { rps: s.rps } : {}),
    }).map((t, i) => (i < s.notRunning ? { ...t, running: false } : t));
    const r = decide({ policy: p, current, samples, basis: ONE_CORE, now }, state);
    state = recordScale(r.state, now, current, r.decision.desired);
    log.push({ at: now, before: current, after: r.decision.desired });
    current = r.decision.desired;
  }
  return log;
}

test("property: never outside [min, max], whatever the count and the figures", () => {
  fc.assert(
    fc.property(
      policyArb,
      fc.integer({ min: 1, max: 60 }),
      fc.array(stepArb, { minLength: 1, maxLength: 30 }),
      (p, start, steps) => {
        for (const e of simulate(p, start, steps)) {
          assert.ok(
            e.after >= p.min && e.after <= p.max,
            `${e.after} outside [${p.min}, ${p.max}]`,
          );
        }
      },
    ),
    propertyParams(300),
  );
});

test("property: never more than max(2x, +4) of the count 15 s before", () => {
  fc.assert(
    fc.property(
      policyArb,
      fc.integer({ min: 0, max: 30 }),
      fc.array(stepArb, { minLength: 1, maxLength: 30 }),
      (p, offset, steps) => {
        const start = Math.min(p.min + offset, p.max);
        const log = simulate(p, start, steps);
        for (let i = 0; i < log.length; i++) {
          for (let j = i; j < log.length && log[j]!.at - log[i]!.at < 15_000; j++) {
            const c = log[i]!.before;
            const limit = Math.max(2 * c, c + 4);
            assert.ok(
              log[j]!.after <= limit,
              `step ${j}: ${log[j]!.after} replicas within 15 s of ${c} (limit ${limit})`,
            );
          }
        }
      },
    ),
    propertyParams(300),
  );
});

test("property: a steady load converges and stays (no flapping)", () => {
  fc.assert(
    fc.property(
      policyArb,
      fc.integer({ min: 1, max: 40 }),
      // The service's total load: cores in all and requests per second in all.
      fc.double({ min: 0, max: 20, noNaN: true }),
      fc.double({ min: 0, max: 5000, noNaN: true }),
      (p, start, cores, totalRps) => {
        let state = emptyHpaState();
        let current = Math.min(Math.max(start, p.min), p.max);
        const history: number[] = [];
        // Enough evaluations (every 15 s) for the window to pass and the scale-up to get there.
        const n = Math.ceil(p.stabilizationMs / 15_000) + 20;
        for (let i = 1; i <= n + 10; i++) {
          const samples = tasks(current, { cpuCores: cores / current, rps: totalRps / current });
          const r = decide(
            { policy: p, current, samples, basis: ONE_CORE, now: i * 15_000 },
            state,
          );
          state = recordScale(r.state, i * 15_000, current, r.decision.desired);
          current = r.decision.desired;
          history.push(current);
        }
        const tail = history.slice(n);
        assert.ok(
          tail.every((x) => x === tail[0]),
          `still changing after ${n} evaluations: ${history.join(" ")}`,
        );
      },
    ),
    propertyParams(300),
  );
});

test("property: a load that swings every evaluation does not flap once the window covers it", () => {
  fc.assert(
    fc.property(
      policyArb,
      fc.constantFrom(60_000, 300_000),
      fc.integer({ min: 1, max: 40 }),
      fc.double({ min: 0, max: 20, noNaN: true }),
      fc.double({ min: 0, max: 20, noNaN: true }),
      (base, stabilizationMs, start, low, high) => {
        const p = { ...base, stabilizationMs };
        let state = emptyHpaState();
        let current = Math.min(Math.max(start, p.min), p.max);
        const history: number[] = [];
        const n = Math.ceil(stabilizationMs / 15_000) + 20;
        for (let i = 1; i <= n + 10; i++) {
          const cores = i % 2 === 0 ? low : high;
          const samples = tasks(current, {
            cpuCores: cores / current,
            rps: (cores * 10) / current,
          });
          const r = decide(
            { policy: p, current, samples, basis: ONE_CORE, now: i * 15_000 },
            state,
          );
          state = recordScale(r.state, i * 15_000, current, r.decision.desired);
          current = r.decision.desired;
          history.push(current);
        }
        const tail = history.slice(n);
        assert.ok(
          tail.every((x) => x === tail[0]),
          `flaps: ${history.join(" ")}`,
        );
      },
    ),
    propertyParams(200),
  );
});
