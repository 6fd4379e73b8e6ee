// The Autoscaler component over a memory store and a real Manager, with a fake metrics source and
// a fake clock (tick(now)): it evaluates once per period, writes the count through the manager's
// scale path, records its last decision on the service, logs and publishes every decision, goes
// on from a manual `service scale` (and never overwrites one made while it decided), keeps the
// rollback target, and forgets a service whose policy is removed. Also the spec's validation.

import { describe, test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { createMemoryStore } from "../../../src/store/memory.js";
import { Manager, defaultManagerOptions } from "../../../src/manager/manager.js";
import {
  Autoscaler,
  type AutoscaleEvent,
  type AutoscaleMetrics,
  type TaskUsage,
} from "../../../src/manager/autoscale/autoscaler.js";
import { specProblems } from "../../../src/manager/validate.js";
import {
  defaultServiceSpec,
  replicasOf,
  type AutoscalePolicy,
  type Service,
  type ServiceSpec,
} from "../../../src/api/types.js";
import { task } from "../../store/helpers.js";

interface Logged {
  level: "info" | "warn" | "error" | "debug";
  msg: string;
}

function spec(name: string, autoscale: AutoscalePolicy | undefined, replicas = 2): ServiceSpec {
  const s = { ...defaultServiceSpec(name), command: ["sleep", "1000"] };
  s.mode = { replicated: { replicas } };
  if (autoscale) s.autoscale = autoscale;
  return s;
}

/** A fake metrics book: a total load spread evenly over the running tasks (or set per task). */
class FakeMetrics implements AutoscaleMetrics {
  cores: number | undefined = undefined;
  at: number | undefined = undefined;
  perTask = new Map<string, TaskUsage>();
  running: string[] = [];
  total: number | undefined = undefined;
  onRead: (() => void) | null = null;
  taskUsage(taskId: string): TaskUsage | undefined {
    this.onRead?.();
    const own = this.perTask.get(taskId);
    if (own) return own;
    if (!this.running.includes(taskId) || this.cores === undefined) return undefined;
    return { cpuCores: this.cores / this.running.length, ...(this.at ? { at: this.at } : {}) };
  }
  serviceRps(): number | undefined {
    return this.total;
  }
}

async function setup(t: TestContext, autoscale: AutoscalePolicy | undefined, replicas = 2) {
  const store = createMemoryStore();
  const logged: Logged[] = [];
  const log = {
    info: (msg: string) => logged.push({ level: "info", msg }),
    warn: (msg: string) => logged.push({ level: "warn", msg }),
    error: (msg: string) => logged.push({ level: "error", msg }),
    debug: (msg: string) => logged.push({ level: "debug", msg }),
  };
  const manager = new Manager(store, log, defaultManagerOptions());
  t.after(() => manager.stop());
  const svc = await manager.createService(spec("web", autoscale, replicas));
  const metrics = new FakeMetrics();
  const events: AutoscaleEvent[] = [];
  const autoscaler = new Autoscaler(manager, {
    metrics,
    log,
    now: () => assert.fail("the tests give the time"),
    onDecision: (e) => events.push(e),
  });
  const get = (): Service => store.view((tx) => tx.getService(svc.id)!);
  /** The orchestrator's part, by hand: one running task per slot of the current count. */
  const syncTasks = async () => {
    const n = replicasOf(get().spec) ?? 0;
    await store.update((tx) => {
      for (const old of tx.listTasks({ serviceId: svc.id })) tx.deleteTask(old.id);
      for (let slot = 1; slot <= n; slot++) {
        const t = task(`${svc.id}.${slot}`, svc.id, "n1", { slot });
        tx.putTask({ ...t, status: { ...t.status, state: "running" } });
      }
    });
    metrics.running = Array.from({ length: n }, (_, i) => `${svc.id}.${i + 1}`);
  };
  await syncTasks();
  return { store, manager, svc, metrics, events, logged, autoscaler, get, syncTasks };
}

const POLICY: AutoscalePolicy = { min: 1, max: 10, cpuPercent: 50 };
const T0 = 1_000_000;

describe("the Autoscaler", () => {
  test("scales up through the store, records and logs the decision, once per period", async (t) => {
    const s = await setup(t, POLICY);
    s.metrics.cores = 2; // 100% per task of 2, target 50%: 4
    const [e] = await s.autoscaler.tick(T0);
    assert.ok(e);
    assert.equal(e.scaled, true);
    assert.equal(e.current, 2);
    assert.equal(e.desired, 4);
    assert.equal(replicasOf(s.get().spec), 4);
    assert.equal(s.get().version, 1, "scaling replaces no task");
    const st = s.get().autoscaleStatus!;
    assert.deepEqual(
      { ...st },
      {
        lastDecisionAt: T0,
        metric: "cpu",
        value: 100,
        target: 50,
        current: 2,
        desired: 4,
        reason: "cpu 100% above target 50%",
        lastScaleAt: T0,
      },
    );
    assert.deepEqual(s.events, [e]);
    assert.ok(
      s.logged.some(
        (l) =>
          l.level === "info" &&
          l.msg === "service web: scaled 2 -> 4 replicas: cpu 100% above target 50%",
      ),
    );
    // Within the period nothing is evaluated; after it, the next decision comes.
    await s.syncTasks();
    assert.deepEqual(await s.autoscaler.tick(T0 + 14_999), []);
    const [next] = await s.autoscaler.tick(T0 + 15_000);
    assert.ok(next);
    assert.equal(next.current, 4);
    assert.equal(next.desired, 4);
    assert.equal(next.scaled, false);
    assert.match(next.reason, /within tolerance/);
    assert.ok(s.logged.some((l) => l.level === "debug" && /4 replicas kept/.test(l.msg)));
    assert.equal(s.get().autoscaleStatus!.lastDecisionAt, T0 + 15_000);
    assert.equal(s.get().autoscaleStatus!.lastScaleAt, T0);
  });

  test("the service's own evaluation period", async (t) => {
    const s = await setup(t, { ...POLICY, evaluationMs: 60_000 });
    s.metrics.cores = 1;
    assert.equal((await s.autoscaler.tick(T0)).length, 1);
    assert.equal((await s.autoscaler.tick(T0 + 59_999)).length, 0);
    assert.equal((await s.autoscaler.tick(T0 + 60_000)).length, 1);
  });

  test("a manual scale sets the count the autoscaler goes on from", async (t) => {
    const s = await setup(t, POLICY);
    s.metrics.cores = 2;
    await s.autoscaler.tick(T0);
    assert.equal(replicasOf(s.get().spec), 4);
    // `service scale web=2` (the API's path): the next decision starts from 2.
    await s.manager.scaleService("web", 2);
    await s.syncTasks();
    const [e] = await s.autoscaler.tick(T0 + 15_000);
    assert.equal(e!.current, 2);
    assert.equal(e!.desired, 4);
    assert.equal(replicasOf(s.get().spec), 4);
    // Scaled up by hand past what the load needs: back to the window's highest recommendation.
    await s.manager.scaleService("web", 9);
    await s.syncTasks();
    const [down] = await s.autoscaler.tick(T0 + 30_000);
    assert.equal(down!.current, 9);
    assert.equal(down!.desired, 4);
    assert.equal(down!.reason, "cpu 22% below target 50%");
    // The load drops: down only to the window's highest recommendation.
    await s.syncTasks();
    s.metrics.cores = 0.4;
    const [held] = await s.autoscaler.tick(T0 + 45_000);
    assert.equal(held!.current, 4);
    assert.equal(held!.desired, 4);
    assert.match(held!.reason, /stabilizing: highest recommendation in 5m0s is 4/);
  });

  test("a manual scale made while it decides wins", async (t) => {
    const s = await setup(t, POLICY);
    s.metrics.cores = 2;
    let once = false;
    s.metrics.onRead = () => {
      if (once) return;
      once = true;
      void s.manager.scaleService("web", 7);
    };
    const events = await s.autoscaler.tick(T0);
    assert.deepEqual(events, []);
    assert.equal(replicasOf(s.get().spec), 7);
    assert.ok(s.logged.some((l) => l.level === "debug" && /has 7 replicas now, not 2/.test(l.msg)));
  });

  test("the count outside min/max is brought back without figures", async (t) => {
    const s = await setup(t, { ...POLICY, min: 3 }, 1);
    const [e] = await s.autoscaler.tick(T0);
    assert.equal(e!.desired, 3);
    assert.equal(e!.reason, "1 below min 3");
    assert.equal(replicasOf(s.get().spec), 3);
  });

  test("no figures, or stale ones: the count stays", async (t) => {
    const s = await setup(t, POLICY);
    let [e] = await s.autoscaler.tick(T0);
    assert.equal(e!.desired, 2);
    assert.equal(e!.reason, "no cpu figures yet");
    s.metrics.cores = 4;
    s.metrics.at = T0 + 15_000 - 60_001;
    [e] = await s.autoscaler.tick(T0 + 15_000);
    assert.equal(e!.reason, "no cpu figures yet");
    s.metrics.at = T0 + 30_000 - 60_000;
    [e] = await s.autoscaler.tick(T0 + 30_000);
    assert.equal(e!.desired, 6);
  });

  test("requests counted per service are spread over the running tasks", async (t) => {
    const s = await setup(t, { min: 1, max: 20, rps: 50 }, 3);
    s.metrics.total = 300;
    const [e] = await s.autoscaler.tick(T0);
    assert.equal(e!.metric, "rps");
    assert.equal(e!.value, 100);
    assert.equal(e!.desired, 6);
  });

  test("its steps keep the spec a rollback returns to", async (t) => {
    const s = await setup(t, POLICY);
    await s.manager.updateService("web", (sp) => ({ ...sp, command: ["sleep", "2000"] }));
    assert.equal(s.get().version, 2);
    s.metrics.cores = 2;
    await s.autoscaler.tick(T0);
    const after = s.get();
    assert.equal(replicasOf(after.spec), 4);
    assert.deepEqual(after.previousSpec!.command, ["sleep", "1000"]);
    assert.equal(replicasOf(after.previousSpec!), 4);
    assert.equal(after.version, 2);
  });

  test("removing the policy clears the status and stops the decisions", async (t) => {
    const s = await setup(t, POLICY);
    s.metrics.cores = 2;
    await s.autoscaler.tick(T0);
    assert.ok(s.get().autoscaleStatus);
    await s.manager.updateService("web", (sp) => {
      const { autoscale: _off, ...rest } = sp;
      return rest;
    });
    assert.equal(s.get().version, 1, "the policy alone replaces no task");
    assert.deepEqual(await s.autoscaler.tick(T0 + 15_000), []);
    assert.equal(s.get().autoscaleStatus, null);
    assert.equal(replicasOf(s.get().spec), 4);
  });

  test("start and stop use the injected timer", async (t) => {
    const s = await setup(t, POLICY);
    const timers: Array<{ ms: number; fn: () => void; stopped: boolean }> = [];
    let decided: (e: AutoscaleEvent) => void = () => {};
    const decision = new Promise<AutoscaleEvent>((resolve) => (decided = resolve));
    const a = new Autoscaler(s.manager, {
      metrics: s.metrics,
      log: { info() {}, warn() {}, error() {}, debug() {} },
      now: () => T0,
      tickMs: 500,
      every: (ms, fn) => {
        const timer = { ms, fn, stopped: false };
        timers.push(timer);
        return () => (timer.stopped = true);
      },
      onDecision: (e) => decided(e),
    });
    a.start();
    assert.equal(timers.length, 1);
    assert.equal(timers[0]!.ms, 500);
    timers[0]!.fn();
    // The tick runs on the injected clock (its decision comes after its status write).
    assert.equal((await decision).at, T0);
    assert.equal(s.get().autoscaleStatus!.lastDecisionAt, T0);
    a.stop();
    assert.equal(timers[0]!.stopped, true);
  });
});

describe("spec.autoscale validation", () => {
  const problemsOf = (a: unknown, over: Partial<ServiceSpec> = {}) =>
    specProblems({ ...spec("web", undefined), ...over, autoscale: a });
  const cases: Array<[string, unknown, Partial<ServiceSpec>, RegExp]> = [
    [
      "min above max",
      { min: 5, max: 2, cpuPercent: 70 },
      {},
      /min \(5\) must not be above max \(2\)/,
    ],
    ["no target", { min: 1, max: 2 }, {}, /needs a target: cpuPercent, memoryPercent or rps/],
    ["min below 1", { min: 0, max: 2, cpuPercent: 70 }, {}, /spec\.autoscale\.min must be >= 1/],
    ["a zero target", { min: 1, max: 2, rps: 0 }, {}, /spec\.autoscale\.rps must be > 0/],
    [
      "memory without a limit or reservation",
      { min: 1, max: 2, memoryPercent: 80 },
      {},
      /memoryPercent needs a memory limit or reservation/,
    ],
    [
      "global mode",
      { min: 1, max: 2, cpuPercent: 70 },
      { mode: { global: {} } },
      /can only be used with replicated mode/,
    ],
    [
      "an evaluation period under 1 s",
      { min: 1, max: 2, cpuPercent: 70, evaluationMs: 10 },
      {},
      /evaluationMs must be >= 1000/,
    ],
    [
      "an unknown field",
      { min: 1, max: 2, cpu: 70 },
      {},
      /spec\.autoscale\.cpu is not a known field/,
    ],
  ];
  for (const [name, a, over, re] of cases) {
    test(name, () => {
      const found = problemsOf(a, over);
      assert.ok(
        found.some((p) => re.test(p)),
        `${re} not in ${JSON.stringify(found)}`,
      );
    });
  }
  test("a good policy passes", () => {
    assert.deepEqual(problemsOf({ min: 1, max: 2, cpuPercent: 70 }), []);
    assert.deepEqual(
      problemsOf(
        { min: 2, max: 8, memoryPercent: 80, rps: 100, stabilizationMs: 0 },
        { limits: { cpus: 0, memoryBytes: 1 << 20 } },
      ),
      [],
    );
  });
});
