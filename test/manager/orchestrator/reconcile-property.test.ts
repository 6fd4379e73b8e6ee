// Property test of the reconciler (fast-check): random sequences of events (scale, task exits,
// node down, node back with stale tasks revived, drain/activate, spec updates with random
// rolling-update settings) on a small cluster, each followed by convergence. Invariants: after
// every pass no slot has two live tasks (start-first: two, during its update) and a replicated
// service never has more live tasks of a version than replicas; at every fixed point the update is
// complete and each replicated service has exactly one live task per slot 1..N (running when some
// node can take it), each active ready node has exactly one live task of the global service,
// history per slot stays within the limit, and reconciling again yields nothing. A failure
// shrinks to the events it needs (test/helpers/property.ts says how to replay it).

import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { isLive } from "../../../src/manager/orchestrator/reconcile.js";
import {
  defaultUpdateConfig,
  replicasOf,
  updateConfigOf,
  type UpdateConfig,
} from "../../../src/api/types.js";
import { node, service, Sim } from "./sim.js";
import { propertyParams, steps } from "../../helpers/property.js";

function checkPass(sim: Sim): void {
  for (const s of sim.services) {
    const replicas = replicasOf(s.spec);
    if (replicas === null) continue;
    // start-first: a slot may run its new task beside the outdated one it replaces.
    const startFirst = updateConfigOf(s.spec).order === "start-first";
    const live = sim.live(s.id).filter((t) => !startFirst || t.specVersion === s.version);
    assert.ok(live.length <= replicas, `${s.id}: ${live.length} live > ${replicas} replicas`);
    for (const [slot, n] of sim.liveBySlot(s.id)) {
      const most = startFirst ? 2 : 1;
      assert.ok(n <= most, `${s.id}.${slot} has ${n} live`);
    }
  }
}

function checkFixedPoint(sim: Sim, where: string): void {
  const usable = sim.nodes.filter((n) => n.status === "ready" && n.availability === "active");
  for (const s of sim.services) {
    const replicas = replicasOf(s.spec);
    const live = sim.live(s.id);
    // Where start-first cannot finish (no usable node) a slot keeps its old task beside the new
    // one, or only its old one while the update's workers wait: count each slot once.
    const startFirst = updateConfigOf(s.spec).order === "start-first";
    const slots = live.map((t) => t.slot);
    const liveSlots = startFirst && usable.length === 0 ? [...new Set(slots)] : slots;
    // A rolling update completes wherever new tasks can run (a paused node keeps its global
    // task as it is; with no usable node, start-first keeps the old tasks running).
    for (const t of live) {
      if (usable.length === 0) break;
      if (replicas === null && !usable.some((n) => n.id === t.nodeId)) continue;
      assert.equal(t.specVersion, s.version, `${where}: ${t.id} outdated`);
    }
    if (replicas !== null) {
      assert.deepEqual(
        liveSlots.sort((a, b) => a - b),
        Array.from({ length: replicas }, (_, i) => i + 1),
        `${where}: ${s.id} slots`,
      );
      if (usable.length > 0) {
        assert.equal(sim.running(s.id).length, replicas, `${where}: ${s.id} running`);
      }
    } else {
      const on = live.map((t) => t.nodeId).sort();
      assert.equal(new Set(on).size, on.length, `${where}: ${s.id} one per node`);
      for (const n of usable) assert.ok(on.includes(n.id), `${where}: ${s.id} on ${n.id}`);
      for (const id of on) {
        const n = sim.nodes.find((x) => x.id === id);
        assert.ok(
          n && n.status !== "down" && n.availability !== "drain",
          `${where}: ${s.id} on ${id}`,
        );
      }
    }
    const perSlot = new Map<string, number>();
    for (const t of sim
      .of(s.id)
      .filter(
        (t) => !isLive(t) && !["new", "pending", "assigned", "running"].includes(t.status.state),
      )) {
      const k = `${t.slot}/${replicas === null ? t.nodeId : ""}`;
      perSlot.set(k, (perSlot.get(k) ?? 0) + 1);
    }
    for (const [k, n] of perSlot)
      assert.ok(n <= sim.historyLimit, `${where}: ${s.id} ${k} history ${n}`);
  }
}

const RUNS = 40;
const EVENTS = 40;

const NODES = ["n1", "n2", "n3", "n4"] as const;
const nodeArb = fc.constantFrom(...NODES);

/** One event; `task` picks among the running tasks at that moment (modulo their count). */
const eventArb = fc.oneof(
  fc.record({
    kind: fc.constant("scale" as const),
    id: fc.constantFrom("web", "api"),
    replicas: fc.integer({ min: 0, max: 5 }),
  }),
  fc.record({
    kind: fc.constant("exit" as const),
    task: fc.nat(),
    code: fc.constantFrom(0, 1, 137),
  }),
  fc.record({ kind: fc.constant("down" as const), node: nodeArb }),
  // The node returns; its agent still runs what it ran, and (revive) some stale reports get in.
  fc.record({ kind: fc.constant("up" as const), node: nodeArb, revive: fc.boolean() }),
  fc.record({
    kind: fc.constant("drain" as const),
    node: nodeArb,
    availability: fc.constantFrom("drain", "pause"),
  }),
  fc.record({ kind: fc.constant("activate" as const), node: nodeArb }),
  fc.record({
    kind: fc.constant("update" as const),
    id: fc.constantFrom("web", "api", "mon"),
    parallelism: fc.constantFrom(0, 1, 2),
    delayMs: fc.constantFrom(0, 0, 2000),
    order: fc.constantFrom("stop-first", "start-first"),
  }),
);
type Event = typeof eventArb extends fc.Arbitrary<infer E> ? E : never;

/** Applies one event to the cluster; returns how it reads in a failure's log. */
function apply(sim: Sim, ev: Event, e: number): string {
  switch (ev.kind) {
    case "scale":
      sim.setReplicas(ev.id, ev.replicas);
      return `scale ${ev.id}=${ev.replicas}`;
    case "exit": {
      const running = sim.tasks.filter((x) => x.status.state === "running");
      const t = running[ev.task % Math.max(1, running.length)];
      if (t) sim.exit(t, ev.code);
      return `exit ${t?.serviceId}.${t?.slot} (${ev.code})`;
    }
    case "down":
      sim.setNode(ev.node, { status: "down" });
      return `down ${ev.node}`;
    case "up": {
      const n = sim.nodes.find((x) => x.id === ev.node)!;
      if (n.status === "down" && ev.revive) {
        sim.tasks = sim.tasks.map((t) =>
          t.nodeId === n.id && t.status.state === "orphaned"
            ? { ...t, desiredState: "running", status: { ...t.status, state: "running" } }
            : t,
        );
      }
      sim.setNode(ev.node, { status: "ready" });
      return `up ${ev.node}${ev.revive ? " (stale tasks revived)" : ""}`;
    }
    case "drain":
      sim.setNode(ev.node, { availability: ev.availability });
      return `${ev.availability} ${ev.node}`;
    case "activate":
      sim.setNode(ev.node, { availability: "active" });
      return `activate ${ev.node}`;
    case "update": {
      const update: UpdateConfig = {
        ...defaultUpdateConfig(),
        parallelism: ev.parallelism,
        delayMs: ev.delayMs,
        order: ev.order,
      };
      sim.updateSpec(ev.id, { env: { E: String(e) }, update });
      return `update ${ev.id} ${JSON.stringify(update)}`;
    }
  }
}

test(`random events converge to the desired state (${RUNS} runs × ${EVENTS} events)`, () => {
  fc.assert(
    fc.property(steps(eventArb, EVENTS), (events) => {
      const sim = new Sim(
        [
          service("web", { replicas: 3, restart: { delayMs: 5000 } }),
          service("api", { replicas: 2, restart: { delayMs: 0 } }),
          service("mon", { global: true, restart: { delayMs: 1000 } }),
        ],
        NODES.map((id) => node(id)),
      );
      sim.onPass = checkPass;
      sim.converge();
      const log: string[] = [];
      for (const [e, ev] of events.entries()) {
        if (ev === null) continue;
        sim.now += 1000;
        log.push(apply(sim, ev, e));
        const where = `after ${log.join(", ")}`;
        try {
          sim.converge();
          checkFixedPoint(sim, where);
        } catch (err) {
          throw new Error(`${where}: ${(err as Error).message}`, { cause: err });
        }
      }
    }),
    propertyParams(RUNS),
  );
});
