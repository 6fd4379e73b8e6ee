// Issue 13's walkthrough (examples/ha-sessions/) on a swarm of the namespace test bed, in steps
// that its cluster test (test/cluster/ha-sessions.test.ts) and its benchmark (bench/ha.ts) share:
// deploy the stack as the README does, log in and count page views through the router, a load
// step until the autoscaler's new instances take traffic, and a worker's death until the page
// answers again from another machine. Each step measures itself; the callers assert or report.

import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Node, Task } from "../../src/api/types.js";
import { killTaskProcesses } from "./daemon.js";
import { SHOAL_BIN, checkFor } from "./servers.js";
import type { Swarm } from "./swarm.js";

export const EXAMPLE = join(process.cwd(), "examples", "ha-sessions");
export const HOST = "goweb.example.url";
export const WEB = "goweb_web";
/** The example's autoscaling bounds (its compose file). */
export const WEB_MAX = 4;

export interface Reply {
  status: number;
  body: string;
  headers: Record<string, string | string[] | undefined>;
}

/** What the app's `/?json` says: who is logged in, their view count, which task answered (its
 * `SHOAL_TASK_NAME`, `<service>.<slot>`) on which node. */
export interface PageView {
  user: string;
  views: number;
  nodeId: string;
  task: string;
}

/** One request to the router on `addr`:80 with the example's host name. */
export function call(
  addr: string,
  method: string,
  path: string,
  headers: Record<string, string>,
  body = "",
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: addr,
        port: 80,
        method,
        path,
        headers: { Host: HOST, ...headers },
        agent: false,
        timeout: 2000,
      },
      (res) => {
        let b = "";
        res.on("data", (c: Buffer) => (b += c.toString()));
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, body: b, headers: res.headers }),
        );
      },
    );
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", reject);
    req.end(body);
  });
}

/** The page as the logged-in user sees it, or undefined when it does not answer 200. */
export async function view(entry: string, cookie: string): Promise<PageView | undefined> {
  const r = await call(entry, "GET", "/?json", { Cookie: cookie }).catch(() => undefined);
  return r?.status === 200 ? (JSON.parse(r.body) as PageView) : undefined;
}

export function redisAvailable(): boolean {
  try {
    execFileSync("redis-server", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/** A task as the page names it (`SHOAL_TASK_NAME`): a new slot is a new instance. */
const slotName = (t: Task) => `${t.serviceName}.${t.slot}`;

/** The web tasks that run and are past their health check's start. */
export async function serving(swarm: Swarm): Promise<Task[]> {
  return (await swarm.running(WEB)).filter((x) => x.status.health?.status !== "starting");
}

/**
 * Deploys the example as its README says (from its folder, on the manager), the autoscaler's
 * stabilization window set to `stabilization` (the file's 1m by default), and waits until the web
 * task serves and the router answers (401: not logged in). Returns the entry address (the
 * manager's router, which stays up) and a cleanup of the temporary compose file.
 */
export async function deployExample(
  swarm: Swarm,
  opts: { stabilization?: string } = {},
): Promise<{ entry: string; cleanup: () => void }> {
  const tmp = mkdtempSync(join(tmpdir(), "shoal-ha-"));
  const cleanup = () => rmSync(tmp, { recursive: true, force: true });
  try {
    const file = join(tmp, "docker-compose.yml");
    const compose = readFileSync(join(EXAMPLE, "docker-compose.yml"), "utf8");
    if (!/stabilization: 1m/.test(compose)) throw new Error("the example's window is not 1m");
    writeFileSync(
      file,
      compose.replace("stabilization: 1m", `stabilization: ${opts.stabilization ?? "1m"}`),
    );
    const deployed = await swarm.manager.exec(
      process.execPath,
      [SHOAL_BIN, "stack", "deploy", "-c", file, "goweb"],
      { cwd: EXAMPLE, env: { SHOAL_DATA_DIR: swarm.dirs[0]!, SHOAL_HOST: "", PWD: EXAMPLE } },
    );
    if (deployed.code !== 0) throw new Error(`stack deploy: ${deployed.stdout}${deployed.stderr}`);
    await checkFor(90_000, async () => (await serving(swarm)).length === 1, 250).catch(
      async (err: Error) => {
        const ts = await swarm.api<Task[]>(`/v1/tasks?service=${WEB}`).catch(() => []);
        const states = ts.map((t) => `${t.status.state}/${t.status.health?.status ?? "-"}`);
        throw new Error(`${err.message}: the web tasks are ${states.join(", ") || "none"}`);
      },
    );
    const entry = swarm.manager.addr;
    await checkFor(20_000, async () => {
      const page = await call(entry, "GET", "/?json", {}).catch(() => undefined);
      return page?.status === 401;
    });
    return { entry, cleanup };
  } catch (err) {
    cleanup();
    throw err;
  }
}

/** Logs `user` in; the session cookie (`name=value`). */
export async function login(entry: string, user: string): Promise<string> {
  const r = await call(
    entry,
    "POST",
    "/login",
    { "Content-Type": "application/x-www-form-urlencoded" },
    `user=${user}`,
  );
  if (r.status !== 303) throw new Error(`login: ${r.status} ${r.body}`);
  return String(r.headers["set-cookie"]).split(";")[0]!;
}

export interface LoadStep {
  /** From the load's start until a task of a slot that was not serving before answered the user. */
  firstNewMs: number;
  /** Until the service had run WEB_MAX tasks and as many slots had answered the user. */
  allMs: number;
  /** The tasks running when the count first reached WEB_MAX (else the most seen). */
  tasks: Task[];
  /** Pages the user got (200) while it waited: the view counter went up by as many. */
  views: number;
  /** The autoscaler's last reason, as `service inspect` shows it. */
  reason: string;
}

/**
 * A load step: `wrk` (4 connections) on the router's /health until the autoscaler (20 requests a
 * second per task) has added tasks up to the max and each has answered the logged-in user, who
 * asks for the page every `pollMs`. The load stops when it returns (or fails after `timeoutMs`).
 */
export async function loadStep(
  swarm: Swarm,
  entry: string,
  cookie: string,
  opts: { timeoutMs?: number; pollMs?: number } = {},
): Promise<LoadStep> {
  const before = new Set((await serving(swarm)).map(slotName));
  const wrk = spawn(
    "wrk",
    ["-t1", "-c4", "-d300s", "-H", `Host: ${HOST}`, `http://${entry}/health`],
    { stdio: "ignore" },
  );
  const started = Date.now();
  let firstNewMs = 0;
  let allMs = 0;
  let views = 0;
  let tasks: Task[] = [];
  const answered = new Set<string>();
  try {
    await checkFor(
      opts.timeoutMs ?? 120_000,
      async () => {
        const v = await view(entry, cookie);
        if (v !== undefined) {
          views++;
          answered.add(v.task);
          if (firstNewMs === 0 && !before.has(v.task)) firstNewMs = Date.now() - started;
        }
        // The count reached the max once (the tasks then are kept), and as many tasks answered:
        // on a machine this busy the count may move again before every one is seen at once.
        const now = await swarm.running(WEB);
        if (now.length >= WEB_MAX && tasks.length < WEB_MAX) tasks = now;
        if (tasks.length < WEB_MAX && now.length > tasks.length) tasks = now;
        if (tasks.length >= WEB_MAX && answered.size >= WEB_MAX) {
          allMs = Date.now() - started;
          return true;
        }
        return false;
      },
      opts.pollMs ?? 100,
    ).catch((err: Error) => {
      throw new Error(
        `${err.message}: ${tasks.length} of ${WEB_MAX} tasks running after ${Date.now() - started} ms (health: ${tasks.map((t) => t.status.health?.status ?? "-").join(", ")}), ${answered.size} answered the user`,
      );
    });
  } finally {
    wrk.kill("SIGKILL");
  }
  const web = (
    await swarm.api<Array<{ spec: { name: string }; autoscaleStatus?: { reason: string } }>>(
      "/v1/services",
    )
  ).find((x) => x.spec.name === WEB);
  return { firstNewMs, allMs, tasks, views, reason: web?.autoscaleStatus?.reason ?? "" };
}

/** Waits until the web service is back at its min, one task, after a load (the window). */
export async function backToMin(swarm: Swarm, timeoutMs = 180_000): Promise<void> {
  await checkFor(timeoutMs, async () => (await swarm.running(WEB)).length === 1, 500);
}

export interface Failover {
  /** From the machine's death until the user's page answered again. */
  outageMs: number;
  /** When the manager saw each step, ms after the death ("node down", "new task running"...). */
  steps: Record<string, number>;
  /** The page that answered. */
  back: PageView;
  /** The dead machine: its index in the bed's hosts, its node id. */
  victim: number;
  victimNodeId: string;
}

/**
 * Pulls the plug on the worker that serves the (one) web task: its network cut, every process
 * of it killed, without warning; then asks for the page every 100 ms until it answers again.
 */
export async function failover(
  swarm: Swarm,
  entry: string,
  cookie: string,
  timeoutMs = 60_000,
): Promise<Failover> {
  const [task] = await serving(swarm);
  if (task === undefined) throw new Error("no web task serves");
  const nodes = await swarm.api<Node[]>("/v1/nodes");
  const victimNode = nodes.find((n) => n.id === task.nodeId)!;
  const victim = swarm.bed.hosts.findIndex((h) => h.addr === victimNode.addr);
  if (victim <= 0) throw new Error("the web task does not run on a worker");
  const host = swarm.bed.hosts[victim]!;
  const died = Date.now();
  await host.cut();
  await host.kill();
  killTaskProcesses(swarm.dirs[victim]!);

  // When the manager saw each step (where the outage goes).
  const steps: Record<string, number> = {};
  let watching = true;
  const watcher = (async () => {
    while (watching) {
      const ns = await swarm.api<Node[]>("/v1/nodes").catch(() => []);
      if (ns.find((n) => n.id === victimNode.id)?.status === "down") {
        steps["node down"] ??= Date.now() - died;
      }
      const ts = await swarm.api<Task[]>(`/v1/tasks?service=${WEB}`).catch(() => []);
      const fresh = ts.find((x) => x.nodeId !== victimNode.id && x.desiredState === "running");
      if (fresh?.status.state === "running") steps["new task running"] ??= Date.now() - died;
      if (fresh?.status.state === "running" && fresh.status.health?.status === "healthy") {
        steps["new task healthy"] ??= Date.now() - died;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  let back: PageView | undefined;
  try {
    await checkFor(timeoutMs, async () => (back = await view(entry, cookie)) !== undefined, 100);
  } finally {
    watching = false;
    await watcher;
  }
  return { outageMs: Date.now() - died, steps, back: back!, victim, victimNodeId: victimNode.id };
}

/** Brings a dead worker back (network healed, its daemon started again) and waits until ready. */
export async function revive(swarm: Swarm, victim: number, nodeId: string): Promise<void> {
  await swarm.bed.hosts[victim]!.heal();
  swarm.restartWorker(victim - 1);
  await checkFor(
    60_000,
    async () => {
      const ns = await swarm.api<Node[]>("/v1/nodes").catch(() => []);
      return ns.find((n) => n.id === nodeId)?.status === "ready";
    },
    250,
  );
}
