// `npm run bench -- orchestrator`: how fast an orchestrator converges on one node — create 1
// replica until it runs, scale 1→30, 30→3, kill -9 of a task until its replacement runs (restart
// delay 0), and a rolling update of 6 replicas — for Docker Swarm and shoal, measured in the same
// run, with the same steps and the same polling:
//
//   - Swarm: one Docker engine of bench/swarm-docker.ts (its own namespace, data root and socket)
//     made a single-node swarm; `sleep 100000` tasks from the busybox image bb:local, --init (so
//     SIGTERM reaches sleep), host network, driven and polled through the Engine API;
//   - shoal, process driver: a `shoal daemon` on a temporary data dir, `sleep 100000` processes;
//   - shoal, docker driver: a second `shoal daemon` whose docker driver uses that same engine
//     (DOCKER_HOST) and image; the driver runs every container under the engine's init too.
//
// A column that cannot be measured in this run (no engine here, --skip-docker, a failure) says so
// in its cells; nothing is filled in from earlier runs.

import type { Row, Suite, SuiteContext, SuiteResult } from "./report.js";
import { serviceSpec, startShoalDaemon, type ShoalDaemon } from "./shoal-daemon.js";
import {
  IMAGE,
  SKIP_DOCKER,
  dockerUnavailable,
  startSwarmNode,
  type DockerBed,
  type DockerEngine,
} from "./swarm-docker.js";
import type { ServiceSpec } from "../src/api/types.js";

const POLL_MS = 10;
const SERVICE = "bench";

/** A task as the scenarios see it: running now, in a slot, with a pid to kill. */
interface RunningTask {
  id: string;
  slot: number;
  pid: number;
  /** Whether the task runs the spec of the last update(). */
  updated: boolean;
}

/** One orchestrator under test, driven through its API. */
interface Target {
  name: string;
  create(replicas: number): Promise<void>;
  /** Tasks whose current state is running (whatever their desired state, as Swarm counts). */
  running(): Promise<RunningTask[]>;
  scale(replicas: number): Promise<void>;
  /** env FOO=bar, parallelism 2, delay 2 s, stop-first, monitor 5 s, failure action pause. */
  update(): Promise<void>;
  /** Removes the service and waits (bounded) until none of its tasks runs. */
  remove(): Promise<void>;
}

const ROWS: Array<[string, string]> = [
  ["create", "service create --replicas 1 → 1/1 running"],
  ["scale-up", "scale 1 → 30 until 30/30 running"],
  ["scale-down", "scale 30 → 3 until 3 run"],
  ["kill-replace", "kill -9 a task → replacement running (restart delay 0)"],
  ["rolling-update", "update 6 replicas, parallelism 2, delay 2 s → all 6 updated"],
];

async function until(fn: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s: ${what}`);
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

interface Outcome {
  /** Row id → seconds. */
  values: Record<string, number>;
  /** Seconds from the update call until each updated task was first seen running. */
  updateTimeline: number[];
}

/** The five measurements on one target. */
async function scenario(ctx: SuiteContext, t: Target): Promise<Outcome> {
  const count = async () => (await t.running()).length;
  const out: Record<string, number> = {};
  const log = (what: string) => ctx.log(`orchestrator (${t.name}): ${what}`);

  log("create --replicas 1");
  let t0 = performance.now();
  await t.create(1);
  await until(async () => (await count()) === 1, 60_000, "1 running");
  out["create"] = (performance.now() - t0) / 1000;

  log("scale 1 -> 30");
  t0 = performance.now();
  await t.scale(30);
  await until(async () => (await count()) === 30, 180_000, "30 running");
  out["scale-up"] = (performance.now() - t0) / 1000;

  log("scale 30 -> 3");
  t0 = performance.now();
  await t.scale(3);
  await until(async () => (await count()) === 3, 120_000, "3 running");
  out["scale-down"] = (performance.now() - t0) / 1000;

  log("kill -9 a task until its replacement runs");
  const victim = (await t.running()).find((r) => r.pid > 0);
  if (!victim) throw new Error("no running task with a pid to kill");
  t0 = performance.now();
  process.kill(victim.pid, "SIGKILL");
  await until(
    async () => (await t.running()).some((r) => r.slot === victim.slot && r.id !== victim.id),
    60_000,
    "a replacement running",
  );
  out["kill-replace"] = (performance.now() - t0) / 1000;

  log("rolling update of 6 replicas, parallelism 2, delay 2 s");
  await t.scale(6);
  await until(async () => (await count()) === 6, 120_000, "6 running");
  t0 = performance.now();
  await t.update();
  // When each updated task was first seen running: shows the batches and the delays between.
  const seen = new Map<string, number>();
  await until(
    async () => {
      const updated = (await t.running()).filter((r) => r.updated);
      for (const r of updated) if (!seen.has(r.id)) seen.set(r.id, performance.now() - t0);
      return updated.length === 6;
    },
    180_000,
    "6 updated tasks running",
  );
  out["rolling-update"] = (performance.now() - t0) / 1000;
  const updateTimeline = [...seen.values()].map((ms) => ms / 1000);
  log(`updated tasks first seen running after (s): ${seconds(updateTimeline)}`);

  log("remove");
  await t.remove();
  return { values: out, updateTimeline };
}

const seconds = (xs: number[]) => xs.map((x) => x.toFixed(2)).join(", ");

// ---------------------------------------------------------------------------------------------
// shoal, through its API socket.

interface ShoalTaskView {
  id: string;
  slot: number;
  specVersion: number;
  status: { state: string; pid: number | null };
}

function shoalTarget(name: string, d: ShoalDaemon, base: Partial<ServiceSpec>): Target {
  let id = "";
  let spec = serviceSpec({ name: SERVICE, ...base });
  let version = -1;
  const tasks = () => d.api<ShoalTaskView[]>("GET", `/v1/tasks?service=${id}`);
  return {
    name,
    async create(replicas) {
      spec = { ...spec, mode: { replicated: { replicas } } };
      id = (await d.api<{ id: string }>("POST", "/v1/services", { spec })).id;
    },
    async running() {
      return (await tasks())
        .filter((t) => t.status.state === "running")
        .map((t) => ({
          id: t.id,
          slot: t.slot,
          pid: t.status.pid ?? 0,
          updated: t.specVersion === version,
        }));
    },
    async scale(replicas) {
      spec = { ...spec, mode: { replicated: { replicas } } };
      await d.api("POST", `/v1/services/${id}/scale`, { replicas });
    },
    async update() {
      spec = {
        ...spec,
        env: { FOO: "bar" },
        update: {
          parallelism: 2,
          delayMs: 2000,
          order: "stop-first",
          failureAction: "pause",
          monitorMs: 5000,
          maxFailureRatio: 0,
        },
      };
      const r = await d.api<{ version: number }>("POST", `/v1/services/${id}/update`, { spec });
      version = r.version;
    },
    async remove() {
      await d.api("DELETE", `/v1/services/${id}`);
      await until(
        async () => (await tasks()).every((t) => t.status.state !== "running"),
        60_000,
        "no task running",
      ).catch(() => undefined);
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Docker Swarm, through the Engine API.

interface SwarmTask {
  ID: string;
  Slot?: number;
  Spec: { ContainerSpec?: { Env?: string[] } };
  Status: { State: string; ContainerStatus?: { PID?: number } };
}

interface SwarmService {
  ID: string;
  Version: { Index: number };
  Spec: {
    Mode: { Replicated?: { Replicas: number } };
    TaskTemplate: { ContainerSpec: { Env?: string[] } };
    UpdateConfig?: Record<string, unknown>;
  };
}

function swarmTarget(e: DockerEngine): Target {
  const filters = encodeURIComponent(JSON.stringify({ service: [SERVICE] }));
  const inspect = () => e.api<SwarmService>(`/services/${SERVICE}`);
  const change = async (edit: (spec: SwarmService["Spec"]) => void) => {
    const s = await inspect();
    edit(s.Spec);
    await e.api(`/services/${s.ID}/update?version=${s.Version.Index}`, "POST", s.Spec);
  };
  return {
    name: "Swarm",
    async create(replicas) {
      await e.api("/services/create", "POST", {
        Name: SERVICE,
        TaskTemplate: {
          ContainerSpec: {
            Image: IMAGE,
            Command: ["sleep", "100000"],
            Init: true,
            StopGracePeriod: 10e9,
          },
          RestartPolicy: { Condition: "any", Delay: 0, MaxAttempts: 0 },
          Networks: [{ Target: "host" }],
        },
        Mode: { Replicated: { Replicas: replicas } },
      });
    },
    async running() {
      return (await e.api<SwarmTask[]>(`/tasks?filters=${filters}`))
        .filter((t) => t.Status.State === "running")
        .map((t) => ({
          id: t.ID,
          slot: t.Slot ?? 0,
          pid: t.Status.ContainerStatus?.PID ?? 0,
          updated: (t.Spec.ContainerSpec?.Env ?? []).includes("FOO=bar"),
        }));
    },
    async scale(replicas) {
      await change((spec) => {
        spec.Mode = { Replicated: { Replicas: replicas } };
      });
    },
    async update() {
      await change((spec) => {
        spec.TaskTemplate.ContainerSpec.Env = ["FOO=bar"];
        spec.UpdateConfig = {
          Parallelism: 2,
          Delay: 2e9,
          Order: "stop-first",
          FailureAction: "pause",
          Monitor: 5e9,
          MaxFailureRatio: 0,
        };
      });
    },
    async remove() {
      await e.api(`/services/${SERVICE}`, "DELETE");
      const label = encodeURIComponent(
        JSON.stringify({ label: [`com.docker.swarm.service.name=${SERVICE}`] }),
      );
      await until(
        async () =>
          (await e.api<unknown[]>(`/containers/json?all=1&filters=${label}`)).length === 0,
        60_000,
        "no container left",
      ).catch(() => undefined);
    },
  };
}

// ---------------------------------------------------------------------------------------------

const errorText = (err: unknown) => (err instanceof Error ? err.message : String(err));

/** The best value of each row over `repeat` runs, or why there is none. */
type Measured = { best: Record<string, number>; updateTimeline: number[] } | string;

/** Runs the scenario `repeat` times on a target and keeps the best value of each row. */
async function measure(ctx: SuiteContext, target: Target): Promise<Measured> {
  const best: Record<string, number> = {};
  let updateTimeline: number[] = [];
  try {
    for (let i = 0; i < ctx.repeat; i++) {
      const r = await scenario(ctx, target);
      for (const [k, v] of Object.entries(r.values)) best[k] = Math.min(best[k] ?? Infinity, v);
      updateTimeline = r.updateTimeline;
    }
    return { best, updateTimeline };
  } catch (err) {
    ctx.log(`orchestrator (${target.name}): failed: ${errorText(err)}`);
    await target.remove().catch(() => undefined);
    return `failed: ${errorText(err).split("\n")[0]!.slice(0, 60)}`;
  }
}

async function withShoal(
  ctx: SuiteContext,
  name: string,
  env: Record<string, string>,
  base: Partial<ServiceSpec>,
): Promise<Measured> {
  let d: ShoalDaemon;
  try {
    d = await startShoalDaemon(env);
  } catch (err) {
    ctx.log(`orchestrator (${name}): ${errorText(err)}`);
    return `failed: ${errorText(err).split("\n")[0]!.slice(0, 60)}`;
  }
  try {
    return await measure(ctx, shoalTarget(name, d, base));
  } finally {
    await d.stop();
  }
}

async function run(ctx: SuiteContext): Promise<SuiteResult> {
  const notes: string[] = [];
  const params: Record<string, unknown> = {
    tasks: "sleep 100000",
    replicas: [1, 30, 3, 6],
    pollMs: POLL_MS,
    repeat: ctx.repeat,
  };

  const proc = await withShoal(ctx, "shoal process", {}, { driver: "process" });

  let swarm: Measured;
  let docker: Measured;
  const why = ctx.options["skip-docker"] === true ? "--skip-docker" : dockerUnavailable();
  if (why !== null) {
    swarm = docker = `not run: ${why}`;
    notes.push(`Swarm and shoal's docker driver not measured in this run: ${why}.`);
  } else {
    let bed: DockerBed | null = null;
    try {
      bed = await startSwarmNode(ctx);
      const engine = bed.engines[0]!;
      const v = engine.versions;
      params["docker"] = v;
      ctx.log(`orchestrator: single-node swarm on dockerd ${v["dockerd"] ?? "?"} ready`);
      swarm = await measure(ctx, swarmTarget(engine));
      docker = await withShoal(
        ctx,
        "shoal docker",
        { DOCKER_HOST: `unix://${engine.sock}` },
        { driver: "docker", image: IMAGE },
      );
      notes.push(
        `Swarm: dockerd ${v["dockerd"] ?? "?"} (API ${v["api"] ?? "?"}), containerd ${v["containerd"] ?? "?"}, ` +
          `runc ${v["runc"] ?? "?"}, in its own network namespace (bench/swarm-docker.ts), single-node swarm ` +
          `(swarm init --advertise-addr 127.0.0.1); service of \`sleep 100000\` from ${IMAGE} ` +
          `(a static busybox), --init, --network host, restart delay 0, driven through the Engine API.`,
      );
      notes.push(
        `shoal docker: the docker driver on that same engine and image (host network, the engine's init).`,
      );
    } catch (err) {
      ctx.log(`orchestrator: docker: ${errorText(err)}`);
      const text = `failed: ${errorText(err).split("\n")[0]!.slice(0, 60)}`;
      swarm = docker = text;
      notes.push(`The Docker engine did not start: ${errorText(err).split("\n").join(" | ")}`);
    } finally {
      await bed?.stop();
    }
  }
  notes.push(
    `shoal process: \`sleep 100000\` processes (SIGTERM honoured). Every column: one node, polled ` +
      `every ${POLL_MS} ms through its API; time from the API call until the condition holds.`,
  );
  const timelines: string[] = [];
  for (const [name, m] of [
    ["Swarm", swarm],
    ["shoal process", proc],
    ["shoal docker", docker],
  ] as const) {
    if (typeof m !== "string") timelines.push(`${name} ${seconds(m.updateTimeline)}`);
  }
  if (timelines.length > 0) {
    notes.push(
      `rolling update, updated tasks first seen running after (s): ${timelines.join("; ")}`,
    );
    params["updateTimeline"] = timelines;
  }
  if (ctx.repeat > 1) notes.push(`best of ${ctx.repeat} runs per row and column`);

  const cell = (m: Measured, id: string): number | string =>
    typeof m === "string" ? m : (m.best[id] ?? "not measured");
  const rows: Row[] = ROWS.map(([id, label]) => ({
    id,
    label,
    unit: "s",
    better: "lower",
    values: {
      swarm: cell(swarm, id),
      "shoal-process": cell(proc, id),
      "shoal-docker": cell(docker, id),
    },
  }));
  return {
    suite: "orchestrator",
    title: "orchestrator, one node (seconds; ratio < 1 means shoal is faster)",
    columns: [
      { id: "swarm", label: "Swarm" },
      { id: "shoal-process", label: "shoal process" },
      { id: "shoal-docker", label: "shoal docker" },
    ],
    rows,
    notes,
    params,
  };
}

export const orchestratorSuite: Suite = {
  name: "orchestrator",
  description:
    "one node: create, scale up/down, kill -9 → replacement, rolling update (Swarm, shoal process and docker drivers)",
  options: { ...SKIP_DOCKER },
  run,
};
