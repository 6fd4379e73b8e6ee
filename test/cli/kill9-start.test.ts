// kill -9 of the daemon while it starts tasks, at the worst moment: a task's process runs and its
// handle is not recorded yet (no handle.json in its directory). The restarted
// daemon must neither double a slot nor leave an orphan after `service rm`. The census counts
// real processes by the service name in their environment, per slot (a slot's task is one
// process group).

import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { apiAt, startDaemon, checkFor } from "../helpers/daemon.js";
import type { Task } from "../../src/api/types.js";
import { envCensus, killGroups, processGroups } from "../node/helpers.js";

const linux = process.platform === "linux";
const REPLICAS = 8;
/** Rounds: at least MIN, and more (up to MAX) until one killed the daemon inside a start. */
const MIN_ROUNDS = 3;
const MAX_ROUNDS = 8;

/** Process groups of the service's tasks, by slot. */
function slots(service: string): Map<string, Set<number>> {
  const pids = envCensus("SHOAL_SERVICE_NAME", [service]).get(service) ?? [];
  const bySlot = new Map<string, Set<number>>();
  for (const pid of pids) {
    let slot = "?";
    try {
      slot = /(?:^|\0)SHOAL_TASK_SLOT=([^\0]*)/.exec(
        readFileSync(`/proc/${pid}/environ`, "utf8"),
      )![1]!;
    } catch {
      continue;
    }
    const groups = bySlot.get(slot) ?? new Set<number>();
    for (const g of processGroups([pid])) groups.add(g);
    bySlot.set(slot, groups);
  }
  return bySlot;
}

/** The processes of the service's tasks whose handle is not recorded yet (the wrapper waiting
 * for "go", which ends by itself without a daemon, or past it: the command's start). */
function unrecorded(dataDir: string, service: string): number {
  let n = 0;
  const pids = envCensus("SHOAL_SERVICE_NAME", [service]).get(service) ?? [];
  for (const pid of pids) {
    let id: string | undefined;
    try {
      id = /(?:^|\0)SHOAL_TASK_ID=([^\0]*)/.exec(readFileSync(`/proc/${pid}/environ`, "utf8"))?.[1];
    } catch {
      continue;
    }
    if (id === undefined) continue;
    const dir = join(dataDir, "agent", "tasks", id);
    if (!existsSync(join(dir, "handle.json"))) n++;
  }
  return n;
}

test(
  "kill -9 of the daemon while a task starts: no slot doubled, no orphan after service rm",
  { skip: !linux && "needs /proc", timeout: 300_000 },
  async (t) => {
    const d = await startDaemon();
    const names: string[] = [];
    t.after(async () => {
      await d.cleanup();
      for (const pids of envCensus("SHOAL_SERVICE_NAME", names).values()) killGroups(pids);
    });
    let hits = 0;
    for (let round = 0; round < MAX_ROUNDS && (round < MIN_ROUNDS || hits === 0); round++) {
      const name = `crashy${round}x${Math.random().toString(36).slice(2, 8)}`;
      names.push(name);
      const create = d.cli(
        "service",
        "create",
        "--detach",
        "--name",
        name,
        "--replicas",
        String(REPLICAS),
        "--",
        "sleep",
        "1000",
      );
      // Kill the daemon once every slot has a process: most of them are then being started.
      await checkFor(20_000, () => slots(name).size === REPLICAS, 1);
      await d.kill9();
      await create;
      // Processes the dead daemon left without a record: it died during their start.
      const left = unrecorded(d.dataDir, name);
      if (left > 0) hits++;
      t.diagnostic(`round ${round}: ${left} task(s) starting at the kill`);
      await d.restart();
      // The manager sees every slot running (the restarted agent started what it had to).
      await checkFor(
        30_000,
        async () => {
          const tasks = await apiAt<Task[]>(d.dataDir, `/v1/tasks?service=${name}`);
          const up = tasks.filter(
            (x) => x.status.state === "running" && x.desiredState === "running",
          );
          return up.length === REPLICAS || undefined;
        },
        50,
      );
      const census = slots(name);
      assert.equal(census.size, REPLICAS, `${name}: every slot runs`);
      for (const [slot, groups] of census) {
        assert.equal(groups.size, 1, `${name}.${slot} runs once, not ${groups.size} times`);
      }
    }
    // The kill is a race: say so when no round hit the window (the census still held).
    if (hits === 0) t.diagnostic("no round killed the daemon inside a task's start");
    for (const name of names) {
      const r = await d.cli("service", "rm", name);
      assert.equal(r.code, 0, r.stderr);
    }
    await checkFor(
      30_000,
      () => envCensus("SHOAL_SERVICE_NAME", names).size === 0 || undefined,
      50,
    ).catch(() => {
      throw new Error(
        `orphans after service rm: ${JSON.stringify([...envCensus("SHOAL_SERVICE_NAME", names)])}`,
      );
    });
  },
);
