// `npm run bench -- dispatcher`: the dispatcher's scale. One manager (drained, so it only
// manages) and 10 worker daemons sharing this host, joined with the real `shoal join`; a service
// of 1,000 `sleep` tasks: time until all run, then a worker killed outright (its daemon and its
// tasks) and the time until 1,000 run again on the other nine. The manager's CPU time and RSS
// are read from /proc.

import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SHOAL_BIN } from "../test/helpers/servers.js";
import { runCli } from "../test/helpers/daemon.js";
import { apiAt } from "../test/helpers/swarm.js";
import type { Suite, SuiteContext, SuiteResult } from "./report.js";
import type { Node, Task } from "../src/api/types.js";

const WORKERS = 10;
const TASKS = Number(process.env["SHOAL_BENCH_TASKS"] ?? 1000);

async function until(fn: () => Promise<boolean>, timeoutMs: number, everyMs = 100): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn().catch(() => false))) {
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** CPU seconds (user + system) and RSS bytes of a process. */
function procStats(pid: number): { cpu: number; rss: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = Number(fields[11]) + Number(fields[12]);
  const rssPages = Number(fields[21]);
  return { cpu: ticks / 100, rss: rssPages * 4096 };
}

/** kill -9 a daemon and every task process it started (as if the machine died). */
function killNode(dir: string): void {
  const pidFile = join(dir, "daemon.pid");
  if (existsSync(pidFile)) {
    try {
      process.kill(Number(readFileSync(pidFile, "utf8")), "SIGKILL");
    } catch {
      // already gone
    }
  }
  // Every task process writes its stdout into the node's data dir: find them by that, which
  // also catches tasks whose handle file is gone (stopped, moved, or mid-start).
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readlinkSync(`/proc/${entry}/fd/1`).startsWith(dir + "/")) {
        process.kill(Number(entry), "SIGKILL");
      }
    } catch {
      // not ours, or gone
    }
  }
}

async function run(ctx: SuiteContext): Promise<SuiteResult> {
  const mdir = mkdtempSync(join(tmpdir(), "shoal-bench-mgr-"));
  const wdirs = Array.from({ length: WORKERS }, () =>
    mkdtempSync(join(tmpdir(), "shoal-bench-w-")),
  );
  let manager: ChildProcess | null = null;
  const values: Record<string, number | string> = {};
  try {
    let out = "";
    manager = spawn(
      process.execPath,
      [
        SHOAL_BIN,
        "daemon",
        "--data-dir",
        mdir,
        "--listen-addr",
        "127.0.0.1:0",
        "--advertise-addr",
        "127.0.0.1:2377",
        "--nats-port",
        "-1",
        "--consul-addr",
        "",
        "--consul-dns-addr",
        "",
        "--http-addr",
        "",
      ],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    manager.stderr!.on("data", (d: Buffer) => (out += d.toString()));
    await until(async () => /ready/.test(out), 20_000, 50);
    const joinPort = /Listening for joins on [^\s]*:(\d+)/.exec(out)![1]!;
    const api = <T>(path: string) => apiAt<T>(mdir, path);
    const info = await api<{ nodeId: string }>("/v1/info");
    await runCli(mdir, ["node", "update", "--availability", "drain", info.nodeId]);
    const token = (await runCli(mdir, ["swarm", "join-token", "-q", "worker"])).stdout.trim();
    ctx.log(`dispatcher: joining ${WORKERS} workers`);
    for (const dir of wdirs) {
      const r = await runCli(dir, [
        "join",
        "--token",
        token,
        "--data-dir",
        dir,
        "--advertise-addr",
        "127.0.0.1",
        `127.0.0.1:${joinPort}`,
      ]);
      if (r.code !== 0) throw new Error(`join failed: ${r.stderr}`);
    }
    await until(
      async () =>
        (await api<Node[]>("/v1/nodes")).filter((n) => n.status === "ready").length === WORKERS + 1,
      20_000,
    );
    const running = async () =>
      (await api<Task[]>("/v1/tasks?service=load")).filter(
        (t) => t.status.state === "running" && t.desiredState === "running",
      );

    ctx.log(`dispatcher: service create --replicas ${TASKS}`);
    const before = procStats(manager.pid!);
    let t0 = performance.now();
    await runCli(mdir, [
      "service",
      "create",
      "-d",
      "--name",
      "load",
      "--replicas",
      String(TASKS),
      "--restart-delay",
      "0s",
      "--",
      "sleep",
      "100000",
    ]);
    await until(async () => (await running()).length === TASKS, 120_000, 250).catch(
      async (err: Error) => {
        const states = new Map<string, number>();
        for (const t of await api<Task[]>("/v1/tasks?service=load")) {
          const k = `${t.desiredState}/${t.status.state}${t.status.err ? ` (${t.status.err})` : ""}`;
          states.set(k, (states.get(k) ?? 0) + 1);
        }
        throw new Error(`${err.message}; tasks: ${JSON.stringify(Object.fromEntries(states))}`);
      },
    );
    values["create"] = (performance.now() - t0) / 1000;
    const afterCreate = procStats(manager.pid!);
    values["cpu-create"] = afterCreate.cpu - before.cpu;
    values["rss"] = afterCreate.rss;
    // A node marked down while nothing failed is a false alarm: heartbeats arrived late.
    values["flaps"] = (out.match(/missed heartbeats: marked down/g) ?? []).length;
    // The manager's cost at rest: every task running, heartbeats and the assignment timer only.
    const idleFrom = procStats(manager.pid!);
    const idleMs = 5000;
    await new Promise((r) => setTimeout(r, idleMs));
    const idleCpu = (procStats(manager.pid!).cpu - idleFrom.cpu) / (idleMs / 1000);
    values["cpu-idle"] = Math.round(idleCpu * 1000) / 10;

    const nodes = await api<Node[]>("/v1/nodes");
    const victimDir = wdirs[0]!;
    const victimId = JSON.parse(readFileSync(join(victimDir, "join.json"), "utf8")).answer
      .nodeId as string;
    const lost = (await running()).filter((t) => t.nodeId === victimId).length;
    ctx.log(`dispatcher: killing a worker with ${lost} tasks`);
    t0 = performance.now();
    killNode(victimDir);
    await until(
      async () => {
        const r = await running();
        return r.length === TASKS && r.every((t) => t.nodeId !== victimId);
      },
      120_000,
      100,
    );
    values["node-loss"] = (performance.now() - t0) / 1000;
    values["lost"] = lost;
    values["rss-after"] = procStats(manager.pid!).rss;
    void nodes;
  } finally {
    for (const d of wdirs) killNode(d);
    await runCli(mdir, ["service", "rm", "load"]).catch(() => {});
    if (manager) manager.kill("SIGKILL");
    killNode(mdir);
    for (const d of [mdir, ...wdirs]) rmSync(d, { recursive: true, force: true });
  }
  const row = (
    id: string,
    label: string,
    unit: "s" | "bytes" | "text",
    better: "lower" | null,
  ) => ({
    id,
    label,
    unit,
    better,
    values: { shoal: values[id] ?? "not run" },
  });
  return {
    suite: "dispatcher",
    title: `dispatcher scale: ${WORKERS} worker daemons on one host, ${TASKS} tasks`,
    columns: [{ id: "shoal", label: "shoal" }],
    rows: [
      row("create", `service create --replicas ${TASKS} → all running`, "s", "lower"),
      row("cpu-create", "manager CPU time during that", "s", "lower"),
      row("flaps", "nodes falsely marked down during that", "text", "lower"),
      row("cpu-idle", "manager CPU at rest, all running (% of a core)", "text", "lower"),
      row(
        "node-loss",
        `kill -9 a worker (${values["lost"] ?? "?"} tasks) → ${TASKS} running again`,
        "s",
        "lower",
      ),
      row("rss", `manager RSS with ${TASKS} tasks`, "bytes", "lower"),
      row("rss-after", "manager RSS after the node loss", "bytes", "lower"),
    ],
    notes: [
      "the manager node is drained (it only manages); workers share the host, so task start-up competes with the manager for 2 CPUs",
    ],
    params: { workers: WORKERS, tasks: TASKS },
  };
}

export const dispatcherSuite: Suite = {
  name: "dispatcher",
  description: `dispatcher scale: ${WORKERS} worker daemons, ${TASKS} tasks, node loss`,
  options: {},
  run,
};
