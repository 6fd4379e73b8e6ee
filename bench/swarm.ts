// `npm run bench -- swarm`: node loss on several machines. On the network-namespace test bed
// (test/cluster/netns.ts; needs root and iproute2), a manager and two workers run 6 replicas;
// a worker is killed outright (every process in its namespace) and the time until 6 replicas run
// again on the survivors is measured, several times, reporting the median. The same scenario
// with real Docker Swarm engines (bench/swarm-docker.ts) gives the first column, when dockerd is
// installed (`--skip-docker` leaves it out).

import { netnsAvailable } from "../test/cluster/netns.js";
import { startSwarm } from "../test/helpers/swarm.js";
import type { Suite, SuiteContext, SuiteResult } from "./report.js";
import { SKIP_DOCKER, dockerNodeLoss } from "./swarm-docker.js";
import type { Node } from "../src/api/types.js";

async function until(fn: () => Promise<boolean>, timeoutMs: number, everyMs = 20): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn().catch(() => false))) {
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** One run: returns ms from killing a worker to 6/6 running on the survivors. */
async function nodeLossOnce(ctx: SuiteContext): Promise<number> {
  const swarm = await startSwarm(3);
  try {
    await swarm.cli(
      "service",
      "create",
      "-d",
      "--name",
      "s",
      "--replicas",
      "6",
      "--restart-delay",
      "0s",
      "--",
      "sleep",
      "100000",
    );
    await until(async () => (await swarm.running("s")).length === 6, 20_000);
    const w2 = swarm.workers[1]!;
    const victim = (await swarm.api<Node[]>("/v1/nodes")).find((n) => n.addr === w2.addr)!;
    const t0 = performance.now();
    await w2.kill();
    await until(async () => {
      const r = await swarm.running("s");
      return r.length === 6 && r.every((t) => t.nodeId !== victim.id);
    }, 30_000);
    const ms = performance.now() - t0;
    ctx.log(`swarm: node loss → 6/6 elsewhere in ${(ms / 1000).toFixed(2)} s`);
    return ms;
  } finally {
    await swarm.cleanup();
  }
}

async function run(ctx: SuiteContext): Promise<SuiteResult> {
  const notes: string[] = [];
  const runs = Math.max(3, ctx.repeat);
  const params: Record<string, unknown> = { nodes: 3, replicas: 6, runs };

  let docker: number | string = "not run: --skip-docker";
  if (ctx.options["skip-docker"] !== true) {
    const d = await dockerNodeLoss(ctx, runs);
    docker = d.value;
    notes.push(...d.notes);
    params["docker"] = d.params;
  }

  let median: number | string = "not run";
  if (!netnsAvailable()) {
    notes.push("network namespaces are unavailable (needs root and iproute2): not measured");
  } else {
    const times: number[] = [];
    for (let i = 0; i < runs; i++) times.push(await nodeLossOnce(ctx));
    const sorted = [...times].sort((a, b) => a - b);
    median = sorted[Math.floor(sorted.length / 2)]! / 1000;
    notes.push(
      `shoal runs (s): ${times.map((t) => (t / 1000).toFixed(2)).join(", ")}; default heartbeat 1 s, node down after 3 s`,
    );
    params["shoalRunsMs"] = times.map((t) => Math.round(t));
  }
  return {
    suite: "swarm",
    title: "several machines (network namespaces): node loss",
    columns: [
      { id: "docker", label: "Docker Swarm" },
      { id: "shoal", label: "shoal" },
    ],
    rows: [
      {
        id: "node-loss",
        label: "kill -9 a worker → its 2 of 6 replicas running elsewhere, median",
        unit: "s",
        better: "lower",
        values: { docker, shoal: median },
      },
    ],
    notes,
    params,
  };
}

export const swarmSuite: Suite = {
  name: "swarm",
  description: "several machines on network namespaces: node loss to replacements running (median)",
  options: { ...SKIP_DOCKER },
  run,
};
