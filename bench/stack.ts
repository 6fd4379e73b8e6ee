// `npm run bench -- stack`: `stack deploy` of a 10-service compose file until every service has
// its task running, and a redeploy that changes one service until its new task runs (the other
// nine keeping theirs), on Docker Swarm and on shoal, in the same run, with the docker driver on
// both sides:
//
//   - Swarm: one Docker engine of bench/swarm-docker.ts (its own namespace, data root and socket)
//     made a single-node swarm; `docker stack deploy --resolve-image never -c FILE NAME` with the
//     installed docker CLI of the engine's version;
//   - shoal: a `shoal daemon` running in a network namespace of its own (a one-host test bed, so
//     the stack's overlay network, its links and iptables chains stay there; not the engine's
//     namespace, where Swarm's ingress network already holds VXLAN id 4096), its docker driver on
//     the same engine (DOCKER_HOST); `node bin/shoal.js stack deploy -c FILE NAME`.
//
// The compose file (written into a temporary directory) is the same for both: services svc0 …
// svc9, each one replica of `sleep 3600` from the engine's busybox image, `init: true` (Swarm's
// containers then stop on SIGTERM as shoal's docker driver's always do), on the stack's default
// network. The redeploy adds an environment variable to svc0. A time runs from spawning the CLI
// until the condition holds, polled through each side's API; after every run the stack is removed
// (`stack rm`) and the bench waits until its containers and network are gone. Each row shows the
// median over --stack-runs runs; the two sides take turns going first. After each round, the
// engine alone: the ten containers created and started at once through its API (a note: the
// floor under both sides).

import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Task } from "../src/api/types.js";
import type { NetworkInspect } from "../src/api/http.js";
import { createTestBed, type TestBed } from "../test/cluster/netns.js";
import { track } from "./procs.js";
import type { Row, Suite, SuiteContext, SuiteResult } from "./report.js";
import { SHOAL_BIN, startShoalDaemon, type ShoalDaemon } from "./shoal-daemon.js";
import {
  IMAGE,
  SKIP_DOCKER,
  dockerUnavailable,
  engineClient,
  startSwarmNode,
  type DockerBed,
  type DockerEngine,
} from "./swarm-docker.js";

const SERVICES = 10;
const CHANGED = "svc0";
const POLL_MS = 25;
const NAMESPACE = "com.docker.stack.namespace";

/** The stack's compose file; rev > 0 gives svc0 the environment REV=rev. */
function composeFile(rev: number): string {
  const lines = ['version: "3.8"', "services:"];
  for (let i = 0; i < SERVICES; i++) {
    const name = `svc${i}`;
    lines.push(`  ${name}:`, `    image: ${IMAGE}`, `    command: ["sleep", "3600"]`);
    lines.push("    init: true");
    if (name === CHANGED && rev > 0) lines.push("    environment:", `      REV: "${rev}"`);
    lines.push("    deploy:", "      replicas: 1");
  }
  return `${lines.join("\n")}\n`;
}

/** One side under test. */
interface Target {
  name: string;
  /** Runs the side's `stack deploy -c file stack` to completion. */
  deploy(file: string, stack: string): Promise<void>;
  /** Service name → ids of its tasks that should run and do, for the stack's services. */
  running(stack: string): Promise<Map<string, string[]>>;
  /** `stack rm`, then waits until the stack's containers and network are gone. */
  remove(stack: string): Promise<void>;
}

async function until(fn: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s: ${what}`);
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

/** Runs a command to completion; resolves its stdout, rejects with its stderr. */
function command(
  argv: string[],
  env: Record<string, string>,
  timeoutMs = 120_000,
): Promise<string> {
  return new Promise((resolve, reject) => {
    track(
      execFile(argv[0]!, argv.slice(1), { env, timeout: timeoutMs }, (err, stdout, stderr) => {
        if (err) reject(new Error(`${argv.slice(1).join(" ")}: ${stderr.trim() || err.message}`));
        else resolve(stdout);
      }),
    );
  });
}

/** A minimal environment, the same for both clients apart from where their daemon is. */
function baseEnv(): Record<string, string> {
  return {
    PATH: process.env["PATH"] ?? "/usr/bin:/bin",
    HOME: process.env["HOME"] ?? "/root",
    LANG: "C.UTF-8",
  };
}

const enc = (filters: Record<string, string[]>) => encodeURIComponent(JSON.stringify(filters));

// ---------------------------------------------------------------------------------------------
// Docker Swarm: the CLI for the commands, the Engine API for polling.

interface SwarmTask {
  ID: string;
  ServiceID: string;
  DesiredState: string;
  Status: { State: string };
}

function swarmTarget(e: DockerEngine, client: string, configDir: string): Target {
  mkdirSync(configDir, { recursive: true });
  const env = { ...baseEnv(), DOCKER_HOST: `unix://${e.sock}`, DOCKER_CONFIG: configDir };
  const docker = (args: string[]) => command([client, ...args], env);
  return {
    name: "Swarm",
    async deploy(file, stack) {
      await docker(["stack", "deploy", "--resolve-image", "never", "-c", file, stack]);
    },
    async running(stack) {
      const [services, tasks] = await Promise.all([
        e.api<Array<{ ID: string; Spec: { Name: string } }>>(
          `/services?filters=${enc({ label: [`${NAMESPACE}=${stack}`] })}`,
        ),
        e.api<SwarmTask[]>(`/tasks?filters=${enc({ "desired-state": ["running"] })}`),
      ]);
      const out = new Map<string, string[]>(services.map((s) => [s.Spec.Name, []]));
      const names = new Map(services.map((s) => [s.ID, s.Spec.Name]));
      for (const t of tasks) {
        const name = names.get(t.ServiceID);
        if (name !== undefined && t.DesiredState === "running" && t.Status.State === "running")
          out.get(name)!.push(t.ID);
      }
      return out;
    },
    async remove(stack) {
      await docker(["stack", "rm", stack]);
      const label = enc({ label: [`${NAMESPACE}=${stack}`] });
      await until(
        async () => {
          const [containers, networks] = await Promise.all([
            e.api<unknown[]>(`/containers/json?all=1&filters=${label}`),
            e.api<unknown[]>(`/networks?filters=${label}`),
          ]);
          return containers.length === 0 && networks.length === 0;
        },
        120_000,
        `stack ${stack}'s containers and network gone`,
      );
    },
  };
}

// ---------------------------------------------------------------------------------------------
// shoal: its CLI for the commands, its API for polling; the containers are the engine's.

function shoalTarget(d: ShoalDaemon, e: DockerEngine): Target {
  const env = { ...baseEnv(), SHOAL_DATA_DIR: d.dataDir };
  const shoal = (args: string[]) => command([process.execPath, SHOAL_BIN, ...args], env);
  return {
    name: "shoal",
    async deploy(file, stack) {
      await shoal(["stack", "deploy", "-c", file, stack]);
    },
    async running(stack) {
      const out = new Map<string, string[]>();
      for (const t of await d.api<Task[]>("GET", "/v1/tasks")) {
        if (!t.serviceName.startsWith(`${stack}_`)) continue;
        const ids = out.get(t.serviceName) ?? [];
        out.set(t.serviceName, ids);
        if (t.desiredState === "running" && t.status.state === "running") ids.push(t.id);
      }
      return out;
    },
    async remove(stack) {
      await shoal(["stack", "rm", stack]);
      const label = enc({ label: ["com.shoal.service.name"] });
      await until(
        async () => {
          const [containers, networks] = await Promise.all([
            e.api<unknown[]>(`/containers/json?all=1&filters=${label}`),
            d.api<NetworkInspect[]>("GET", "/v1/networks"),
          ]);
          return containers.length === 0 && !networks.some((n) => n.Name.startsWith(`${stack}_`));
        },
        120_000,
        `stack ${stack}'s containers and network gone`,
      );
    },
  };
}

// ---------------------------------------------------------------------------------------------

interface Run {
  deploy: number;
  redeploy: number;
  /** Seconds until the deploy / redeploy command itself returned. */
  deployCli: number;
  redeployCli: number;
}

/** One run on one side: deploy, redeploy, remove. Seconds. */
async function once(ctx: SuiteContext, t: Target, dir: string, stack: string): Promise<Run> {
  const file = join(dir, `${t.name}-${stack}.yml`);
  const full = (short: string) => `${stack}_${short}`;
  const log = (what: string) => ctx.log(`stack (${t.name}): ${stack}: ${what}`);
  try {
    writeFileSync(file, composeFile(0));
    let t0 = performance.now();
    await t.deploy(file, stack);
    const deployCli = (performance.now() - t0) / 1000;
    let before = new Map<string, string[]>();
    await until(
      async () => {
        before = await t.running(stack);
        return before.size === SERVICES && [...before.values()].every((ids) => ids.length === 1);
      },
      120_000,
      `${SERVICES} services with their task running`,
    );
    const deploy = (performance.now() - t0) / 1000;
    log(`deploy ${deploy.toFixed(2)} s`);

    writeFileSync(file, composeFile(1));
    const old = before.get(full(CHANGED))![0]!;
    let after = new Map<string, string[]>();
    t0 = performance.now();
    await t.deploy(file, stack);
    const redeployCli = (performance.now() - t0) / 1000;
    await until(
      async () => {
        after = await t.running(stack);
        const ids = after.get(full(CHANGED)) ?? [];
        return ids.length === 1 && ids[0] !== old;
      },
      120_000,
      `${full(CHANGED)}'s new task running`,
    );
    const redeploy = (performance.now() - t0) / 1000;
    const replaced = [...before]
      .filter(([name]) => name !== full(CHANGED))
      .filter(([name, ids]) => (after.get(name) ?? []).join() !== ids.join())
      .map(([name]) => name);
    if (replaced.length > 0)
      throw new Error(`the redeploy also replaced the tasks of ${replaced.join(", ")}`);
    log(`redeploy ${redeploy.toFixed(2)} s (the other ${SERVICES - 1} kept their tasks)`);
    return { deploy, redeploy, deployCli, redeployCli };
  } finally {
    log("stack rm");
    await t.remove(stack);
  }
}

/**
 * The engine alone, as a floor: the stack's ten containers created and started at once through
 * the Engine API (`NetworkMode: none`, as shoal's docker driver asks; the engine makes each its
 * network namespace), without shoal or Swarm. Seconds until every one started; they are removed.
 */
async function engineFloor(e: DockerEngine, k: number): Promise<number> {
  const made: string[] = [];
  try {
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: SERVICES }, async (_, i) => {
        const c = await e.api<{ Id: string }>(`/containers/create?name=floor${k}-${i}`, "POST", {
          Image: IMAGE,
          Cmd: ["sleep", "3600"],
          HostConfig: { NetworkMode: "none", Init: true },
        });
        made.push(c.Id);
        await e.api(`/containers/${c.Id}/start`, "POST");
      }),
    );
    return (performance.now() - t0) / 1000;
  } finally {
    // A removal the engine is slow to answer does not lose the figure (the bed removes it).
    await Promise.all(
      made.map((id) => e.api(`/containers/${id}?force=1`, "DELETE").catch(() => undefined)),
    );
  }
}

const errorText = (err: unknown) => (err instanceof Error ? err.message : String(err));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const list = (xs: number[]) => xs.map((x) => x.toFixed(2)).join(", ");

async function run(ctx: SuiteContext): Promise<SuiteResult> {
  const runs = ctx.options["stack-runs"] === undefined ? 5 : Number(ctx.options["stack-runs"]);
  if (!(Number.isInteger(runs) && runs >= 1 && runs <= 50)) {
    throw new Error("--stack-runs must be an integer from 1 to 50");
  }
  const notes: string[] = [];
  const params: Record<string, unknown> = { services: SERVICES, runs, pollMs: POLL_MS };
  const results: Record<string, Run[] | string> = { swarm: [], shoal: [] };
  const floor: number[] = [];

  const why = ctx.options["skip-docker"] === true ? "--skip-docker" : dockerUnavailable();
  if (why !== null) {
    results["swarm"] = results["shoal"] = `not run: ${why}`;
    notes.push(`Neither side measured: both need a Docker engine (${why}).`);
  } else {
    const dir = mkdtempSync(join(tmpdir(), "shoal-bench-stack-"));
    let bed: DockerBed | null = null;
    let shoalBed: TestBed | null = null;
    let daemon: ShoalDaemon | null = null;
    try {
      bed = await startSwarmNode(ctx);
      const engine = bed.engines[0]!;
      const v = engine.versions;
      params["docker"] = v;
      const client = engineClient(v["dockerd"] ?? "");
      params["dockerCli"] = client;
      shoalBed = await createTestBed(1, { mode: "netns" });
      daemon = await startShoalDaemon({ DOCKER_HOST: `unix://${engine.sock}` }, shoalBed.hosts[0]);
      const targets = [
        swarmTarget(engine, client.path, join(dir, "docker")),
        shoalTarget(daemon, engine),
      ];
      for (let k = 1; k <= runs; k++) {
        // The sides take turns going first.
        for (const t of k % 2 === 1 ? targets : [...targets].reverse()) {
          const id = t === targets[0] ? "swarm" : "shoal";
          const sofar = results[id]!;
          if (typeof sofar === "string") continue;
          try {
            sofar.push(await once(ctx, t, dir, `bench${k}`));
          } catch (err) {
            ctx.log(`stack (${t.name}): failed: ${errorText(err)}`);
            notes.push(`${t.name} failed in run ${k}: ${errorText(err).split("\n").join(" | ")}`);
            results[id] = `failed: ${errorText(err).split("\n")[0]!.slice(0, 60)}`;
          }
        }
        try {
          floor.push(await engineFloor(engine, k));
        } catch (err) {
          ctx.log(`stack (engine): failed: ${errorText(err)}`);
        }
      }
      notes.push(
        `Swarm: dockerd ${v["dockerd"] ?? "?"} (API ${v["api"] ?? "?"}), containerd ${v["containerd"] ?? "?"}, ` +
          `runc ${v["runc"] ?? "?"}, in its own network namespace (bench/swarm-docker.ts), single-node swarm; ` +
          `\`docker stack deploy --resolve-image never\` with the docker CLI ${client.version} (${client.path}).`,
      );
      notes.push(
        `shoal: \`node bin/shoal.js stack deploy\` against a shoal daemon in a network namespace of ` +
          `its own, its docker driver on that same engine and image.`,
      );
    } catch (err) {
      ctx.log(`stack: ${errorText(err)}`);
      const text = `failed: ${errorText(err).split("\n")[0]!.slice(0, 60)}`;
      for (const id of ["swarm", "shoal"]) if (typeof results[id] !== "string") results[id] = text;
      notes.push(`Setup failed: ${errorText(err).split("\n").join(" | ")}`);
    } finally {
      await daemon?.stop();
      await shoalBed?.cleanup().catch((err: unknown) => ctx.log(`stack: bed: ${errorText(err)}`));
      await bed?.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  }

  notes.push(
    `${SERVICES} services of one replica each (\`sleep 3600\` from ${IMAGE}, init: true) on the ` +
      `stack's default overlay network; the redeploy adds an environment variable to ${CHANGED}. ` +
      `A time runs from spawning the CLI until the condition holds, polled every ${POLL_MS} ms ` +
      `through the side's API; the stack is removed and gone after every run.`,
  );
  const value = (id: string, row: keyof Run): number | string => {
    const r = results[id]!;
    return typeof r === "string"
      ? r
      : r.length === 0
        ? "not measured"
        : median(r.map((x) => x[row]));
  };
  for (const [id, label] of [
    ["swarm", "Swarm"],
    ["shoal", "shoal"],
  ] as const) {
    const r = results[id]!;
    if (typeof r === "string" || r.length === 0) continue;
    notes.push(
      `${label} runs (s): deploy ${list(r.map((x) => x.deploy))} (the CLI returned after ` +
        `${list(r.map((x) => x.deployCli))}); redeploy ${list(r.map((x) => x.redeploy))} ` +
        `(the CLI returned after ${list(r.map((x) => x.redeployCli))})`,
    );
    params[`${id}Runs`] = r;
  }
  if (floor.length > 0) {
    notes.push(
      `The engine alone (a floor for both): ${SERVICES} containers like the stack's created and ` +
        `started at once through the Engine API (NetworkMode none, as shoal's docker driver ` +
        `asks), all started after ${median(floor).toFixed(2)} s (median; runs ${list(floor)})`,
    );
    params["engineFloor"] = floor;
  }
  const speedUps: string[] = [];
  for (const row of ["deploy", "redeploy"] as const) {
    const a = value("swarm", row);
    const b = value("shoal", row);
    if (typeof a === "number" && typeof b === "number" && b > 0)
      speedUps.push(`${row} ${(a / b).toFixed(2)}×`);
  }
  if (speedUps.length > 0)
    notes.push(`speed-up of shoal over Swarm (Swarm/shoal): ${speedUps.join(", ")} (goal ≥ 3×)`);

  const rows: Row[] = [
    {
      id: "deploy",
      label: `stack deploy of ${SERVICES} services → all running, median of ${runs}`,
      unit: "s",
      better: "lower",
      values: { swarm: value("swarm", "deploy"), shoal: value("shoal", "deploy") },
    },
    {
      id: "redeploy",
      label: `redeploy changing 1 service → its new task running, median of ${runs}`,
      unit: "s",
      better: "lower",
      values: { swarm: value("swarm", "redeploy"), shoal: value("shoal", "redeploy") },
    },
  ];
  return {
    suite: "stack",
    title: "stack deploy, one node, docker driver (seconds; ratio < 1 means shoal is faster)",
    columns: [
      { id: "swarm", label: "Swarm" },
      { id: "shoal", label: "shoal" },
    ],
    rows,
    notes,
    params,
  };
}

export const stackSuite: Suite = {
  name: "stack",
  description:
    "stack deploy of 10 services and a redeploy changing one (Swarm vs shoal, docker driver on both)",
  options: {
    "stack-runs": { type: "string", description: "stack: runs per side (default 5), median shown" },
    ...SKIP_DOCKER,
  },
  run,
};
