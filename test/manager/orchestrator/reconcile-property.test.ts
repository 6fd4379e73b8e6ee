// Property test of the reconciler: seeded random sequences of events (scale, task exits, node
// down, node back with stale tasks revived, drain/activate, spec updates with random rolling-update
// settings) on a small cluster, each followed by convergence. Invariants: after every pass no slot
// has two live tasks (start-first: two, during its update) and a replicated service never has
// more live tasks of a version than replicas; at every fixed point the update is complete and each
// replicated service has exactly one live task per slot 1..N (running when some node can take
// it), each active ready node has exactly one live task of the global service, history per slot
// stays within the limit, and reconciling again yields nothing.

import { test } from "node:test";
import assert from "node:assert/strict";
import { isLive } from "../../../src/manager/orchestrator/reconcile.js";
import {
  defaultUpdateConfig,
  replicasOf,
  updateConfigOf,
  type UpdateConfig,
} from "../../../src/api/types.js";
import { node, service, Sim } from "./sim.js";
import { prng } from "../../helpers/prng.js";

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

const SEEDS = 40;
const EVENTS = 40;

test(`random events converge to the desired state (${SEEDS} seeds × ${EVENTS} events)`, () => {
  for (let seed = 1; seed <= SEEDS; seed++) {
    const rnd = prng(seed);
    const pick = <T>(xs: readonly T[]): T | undefined => xs[Math.floor(rnd() * xs.length)];
    const sim = new Sim(
      [
        service("web", { replicas: 3, restart: { delayMs: 5000 } }),
        service("api", { replicas: 2, restart: { delayMs: 0 } }),
        service("mon", { global: true, restart: { delayMs: 1000 } }),
      ],
      [node("n1"), node("n2"), node("n3"), node("n4")],
    );
    sim.onPass = checkPass;
    sim.converge();
    const log: string[] = [];
    for (let e = 0; e < EVENTS; e++) {
      sim.now += 1000;
      const kind = pick(["scale", "exit", "down", "up", "drain", "activate", "update"])!;
      const n = pick(sim.nodes)!;
      switch (kind) {
        case "scale": {
          const id = pick(["web", "api"])!;
          const replicas = Math.floor(rnd() * 6);
          sim.setReplicas(id, replicas);
          log.push(`scale ${id}=${replicas}`);
          break;
        }
        case "exit": {
          const t = pick(sim.tasks.filter((x) => x.status.state === "running"));
          if (t) sim.exit(t, pick([0, 1, 137])!);
          log.push(`exit ${t?.serviceId}.${t?.slot}`);
          break;
        }
        case "down":
          sim.setNode(n.id, { status: "down" });
          log.push(`down ${n.id}`);
          break;
        case "up":
          // The node returns; its agent still runs what it ran, and some stale reports get in.
          if (n.status === "down" && rnd() < 0.5) {
            sim.tasks = sim.tasks.map((t) =>
              t.nodeId === n.id && t.status.state === "orphaned"
                ? { ...t, desiredState: "running", status: { ...t.status, state: "running" } }
                : t,
            );
          }
          sim.setNode(n.id, { status: "ready" });
          log.push(`up ${n.id}`);
          break;
        case "drain":
          sim.setNode(n.id, { availability: pick(["drain", "pause"] as const)! });
          log.push(`drain/pause ${n.id}`);
          break;
        case "activate":
          sim.setNode(n.id, { availability: "active" });
          log.push(`activate ${n.id}`);
          break;
        case "update": {
          const update: UpdateConfig = {
            ...defaultUpdateConfig(),
            parallelism: pick([0, 1, 2])!,
            delayMs: pick([0, 0, 2000])!,
            order: pick(["stop-first", "start-first"] as const)!,
          };
          const id = pick(["web", "api", "mon"])!;
          sim.updateSpec(id, { env: { E: String(e) }, update });
          log.push(`update ${id} ${JSON.stringify(update)}`);
          break;
        }
      }
      const where = `seed ${seed}, after ${log.join(", ")}`;
      try {
        sim.converge();
        checkFixedPoint(sim, where);
      } catch (err) {
        (err as Error).message = `${where}: ${(err as Error).message}`;
        throw err;
      }
    }
  }
});
