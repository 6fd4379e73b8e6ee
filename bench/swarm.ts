// `npm run bench -- swarm`: node loss on several machines. On the network-namespace test bed
// (test/cluster/netns.ts; needs root and iproute2), a manager and two workers run 6 replicas;
// a worker is killed outright (every process in its namespace) and the time until 6 replicas run
// again on the survivors is measured, several times, reporting the median.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { request } from "node:http";
import { createTestBed, netnsAvailable, type Host } from "../test/cluster/netns.js";
import { SHOAL_BIN } from "../test/helpers/servers.js";
import { runCli } from "../test/helpers/daemon.js";
import type { Suite, SuiteContext, SuiteResult } from "./report.js";
import type { Node, Task } from "../src/manager/types.js";

function api<T>(dataDir: string, path: string): Promise<T> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: join(dataDir, "shoal.sock"), path }, (res) => {
      let body = "";
      res.on("data", (c: Buffer) => (body += c.toString()));
      res.on("end", () => resolve(JSON.parse(body) as T));
    });
    req.on("error", reject);
    req.end();
  });
}

async function until(fn: () => Promise<boolean>, timeoutMs: number, everyMs = 20): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn().catch(() => false))) {
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** One run: returns ms from killing a worker to 6/6 running on the survivors. */
async function nodeLossOnce(ctx: SuiteContext): Promise<number> {
  const bed = await createTestBed(3);
  const dirs = bed.hosts.map(() => mkdtempSync(join(tmpdir(), "shoal-bench-node-")));
  try {
    const [m, w1, w2] = bed.hosts as [Host, Host, Host];
    let out = "";
    const p = m.spawn(process.execPath, [
      SHOAL_BIN,
      "daemon",
      "--data-dir",
      dirs[0]!,
      "--listen-addr",
      `${m.addr}:2377`,
      "--advertise-addr",
      `${m.addr}:2377`,
      "--nats-port",
      "4222",
      "--publish-addr",
      m.addr,
    ]);
    p.stderr?.on("data", (d: Buffer) => (out += d.toString()));
    await until(async () => /ready/.test(out), 20_000);
    const token = (await runCli(dirs[0]!, ["swarm", "join-token", "-q", "worker"])).stdout.trim();
    for (const [h, dir] of [
      [w1, dirs[1]!],
      [w2, dirs[2]!],
    ] as const) {
      const r = await h.exec(
        process.execPath,
        [
          SHOAL_BIN,
          "join",
          "--token",
          token,
          "--data-dir",
          dir,
          "--advertise-addr",
          h.addr,
          `${m.addr}:2377`,
        ],
        { timeoutMs: 30_000 },
      );
      if (r.code !== 0) throw new Error(`join failed: ${r.stderr}`);
    }
    await runCli(dirs[0]!, [
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
    ]);
    const running = async () =>
      (await api<Task[]>(dirs[0]!, "/v1/tasks?service=s")).filter(
        (t) => t.status.state === "running" && t.desiredState === "running",
      );
    await until(async () => (await running()).length === 6, 20_000);
    const victim = (await api<Node[]>(dirs[0]!, "/v1/nodes")).find((n) => n.addr === w2.addr)!;
    const t0 = performance.now();
    await w2.kill();
    await until(async () => {
      const r = await running();
      return r.length === 6 && r.every((t) => t.nodeId !== victim.id);
    }, 30_000);
    const ms = performance.now() - t0;
    ctx.log(`swarm: node loss → 6/6 elsewhere in ${(ms / 1000).toFixed(2)} s`);
    return ms;
  } finally {
    for (const h of bed.hosts) await h.kill().catch(() => {});
    await bed.cleanup();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  }
}

async function run(ctx: SuiteContext): Promise<SuiteResult> {
  const notes: string[] = [];
  let median: number | string = "not run";
  if (!netnsAvailable()) {
    notes.push("network namespaces are unavailable (needs root and iproute2): not measured");
  } else {
    const times: number[] = [];
    const runs = Math.max(3, ctx.repeat);
    for (let i = 0; i < runs; i++) times.push(await nodeLossOnce(ctx));
    times.sort((a, b) => a - b);
    median = times[Math.floor(times.length / 2)]! / 1000;
    notes.push(
      `runs (s): ${times.map((t) => (t / 1000).toFixed(2)).join(", ")}; default heartbeat 1 s, node down after 3 s`,
    );
  }
  notes.push(
    "Docker Swarm column: not measured here (one Docker engine cannot simulate machines); Swarm's defaults are a 5 s heartbeat period and a node marked down after 3 missed periods, and the seed walkthrough saw 2–3 minutes with Swarm + Consul.",
  );
  return {
    suite: "swarm",
    title: "several machines (network namespaces): node loss",
    columns: [{ id: "shoal", label: "shoal" }],
    rows: [
      {
        id: "node-loss",
        label: "kill -9 a worker → its 2 of 6 replicas running elsewhere, median",
        unit: "s",
        better: "lower",
        values: { shoal: median },
      },
    ],
    notes,
    params: { nodes: 3, replicas: 6 },
  };
}

export const swarmSuite: Suite = {
  name: "swarm",
  description: "several machines on network namespaces: node loss to replacements running (median)",
  options: {},
  run,
};
