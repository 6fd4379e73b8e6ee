// Issue 13's walkthrough, examples/ha-sessions/ as its README runs it, on three machines of the
// namespace test bed: Redis on the manager, the web app on a worker behind the HTTP router
// (host name goweb.example.url). A user logs in and counts page views; a load through the router
// makes the autoscaler add web tasks up to its max on both workers, each answering, and they go
// back to the min once the load stops; then the machine that serves the web task dies without
// warning (network cut, every process killed), and the page answers again from the other
// worker, with the same session and the count going on.

import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { spawn } from "node:child_process";
import { join } from "node:path";
import { request } from "node:http";
import { execFileSync } from "node:child_process";
import { startSwarm, type Swarm } from "../helpers/swarm.js";
import { SHOAL_BIN, checkFor } from "../helpers/servers.js";
import { killTaskProcesses } from "../helpers/daemon.js";
import type { Node, Task } from "../../src/api/types.js";

const EXAMPLE = join(process.cwd(), "examples", "ha-sessions");
const HOST = "goweb.example.url";

interface Reply {
  status: number;
  body: string;
  headers: Record<string, string | string[] | undefined>;
}

function call(
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

function redisAvailable(): boolean {
  try {
    execFileSync("redis-server", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

test("ha-sessions: the web task's machine dies, the page comes back elsewhere with the same session", async (t) => {
  if (!redisAvailable()) {
    if (process.env["CI"]) assert.fail("redis-server is missing (.ci/run installs it)");
    return t.skip("needs redis-server");
  }
  let swarm: Swarm;
  try {
    swarm = await startSwarm(3, 2, { prefix: "has" });
  } catch (err) {
    return t.skip(`no test bed: ${(err as Error).message}`);
  }
  t.after(async () => {
    for (const d of swarm.dirs) killTaskProcesses(d);
    await swarm.cleanup();
  });
  if (swarm.bed.mode !== "netns") return t.skip("needs network namespaces");
  assert.ok(existsSync(join(EXAMPLE, "docker-compose.yml")));

  // As the README says: from the example's folder, on a manager; the autoscaler's window
  // shortened from 1m so the test need not wait as long.
  const tmp = mkdtempSync(join(tmpdir(), "shoal-ha-"));
  t.after(() => rmSync(tmp, { recursive: true, force: true }));
  const file = join(tmp, "docker-compose.yml");
  const compose = readFileSync(join(EXAMPLE, "docker-compose.yml"), "utf8");
  assert.match(compose, /stabilization: 1m/);
  writeFileSync(file, compose.replace("stabilization: 1m", "stabilization: 15s"));
  const deployed = await swarm.manager.exec(
    process.execPath,
    [SHOAL_BIN, "stack", "deploy", "-c", file, "goweb"],
    { cwd: EXAMPLE, env: { SHOAL_DATA_DIR: swarm.dirs[0]!, SHOAL_HOST: "", PWD: EXAMPLE } },
  );
  assert.equal(deployed.code, 0, deployed.stdout + deployed.stderr);

  const serving = async () =>
    (await swarm.running("goweb_web")).filter((x) => x.status.health?.status !== "starting");
  await checkFor(90_000, async () => (await serving()).length === 1, 250);
  const entry = swarm.manager.addr; // the manager's router; it stays up
  let page: Reply | undefined;
  await checkFor(20_000, async () => {
    page = await call(entry, "GET", "/?json", {}).catch(() => undefined);
    return page?.status === 401;
  });

  const login = await call(
    entry,
    "POST",
    "/login",
    { "Content-Type": "application/x-www-form-urlencoded" },
    "user=ada",
  );
  assert.equal(login.status, 303, login.body);
  const cookie = String(login.headers["set-cookie"]).split(";")[0]!;
  let views = 0;
  let servedBy = "";
  for (let i = 1; i <= 3; i++) {
    const r = await call(entry, "GET", "/?json", { Cookie: cookie });
    assert.equal(r.status, 200, r.body);
    const v = JSON.parse(r.body) as { user: string; views: number; nodeId: string };
    assert.equal(v.user, "ada");
    assert.equal(v.views, i);
    views = v.views;
    servedBy = v.nodeId;
  }

  // Load through the router: the autoscaler (20 requests a second per task) adds tasks up to
  // its max, 4, spread over both workers; every one answers.
  const wrk = spawn(
    "wrk",
    ["-t1", "-c4", "-d120s", "-H", `Host: ${HOST}`, `http://${entry}/health`],
    {
      stdio: "ignore",
    },
  );
  const loadStarted = Date.now();
  let upAfter = 0;
  try {
    await checkFor(
      90_000,
      async () => (await serving()).length === 4 && (upAfter = Date.now() - loadStarted) > 0,
      500,
    );
  } finally {
    wrk.kill("SIGKILL");
  }
  const four = await serving();
  assert.equal(new Set(four.map((x) => x.nodeId)).size, 2, "on both workers");
  const answered = new Set<string>();
  await checkFor(
    20_000,
    async () => {
      const r = await call(entry, "GET", "/?json", { Cookie: cookie }).catch(() => undefined);
      if (r?.status === 200) answered.add((JSON.parse(r.body) as { task: string }).task);
      views += r?.status === 200 ? 1 : 0;
      return answered.size === 4;
    },
    50,
  );
  const web = (
    await swarm.api<Array<{ spec: { name: string }; autoscaleStatus?: { reason: string } }>>(
      "/v1/services",
    )
  ).find((x) => x.spec.name === "goweb_web");
  t.diagnostic(
    `scaled to 4 tasks ${upAfter} ms after the load began (${web?.autoscaleStatus?.reason ?? ""})`,
  );
  // The load is over: back to the min once the window has passed.
  await checkFor(90_000, async () => (await swarm.running("goweb_web")).length === 1, 500);

  // Pull the plug on the worker that serves the page.
  const [task] = (await serving()) as Task[];
  const nodes = await swarm.api<Node[]>("/v1/nodes");
  const victimNode = nodes.find((n) => n.id === task!.nodeId)!;
  assert.equal(victimNode.id, servedBy, "the task says where it runs");
  const i = swarm.bed.hosts.findIndex((h) => h.addr === victimNode.addr);
  assert.ok(i > 0, "the web task runs on a worker");
  const victim = swarm.bed.hosts[i]!;
  const died = Date.now();
  await victim.cut();
  await victim.kill();
  killTaskProcesses(swarm.dirs[i]!);

  // When the manager saw each step (for the diagnostic: where the outage goes).
  const steps: Record<string, number> = {};
  let watching = true;
  const watcher = (async () => {
    while (watching) {
      const ns = await swarm.api<Node[]>("/v1/nodes").catch(() => []);
      if (ns.find((n) => n.id === victimNode.id)?.status === "down")
        steps["node down"] ??= Date.now() - died;
      const ts = await swarm.api<Task[]>("/v1/tasks?service=goweb_web").catch(() => []);
      const fresh = ts.find((x) => x.nodeId !== victimNode.id && x.desiredState === "running");
      if (fresh?.status.state === "running") steps["new task running"] ??= Date.now() - died;
      if (fresh?.status.state === "running" && fresh.status.health?.status === "healthy")
        steps["new task healthy"] ??= Date.now() - died;
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  let back: { user: string; views: number; nodeId: string } | undefined;
  await checkFor(
    60_000,
    async () => {
      const r = await call(entry, "GET", "/?json", { Cookie: cookie }).catch(() => undefined);
      if (r?.status === 200) back = JSON.parse(r.body) as typeof back;
      return back !== undefined;
    },
    100,
  );
  const outage = Date.now() - died;
  watching = false;
  await watcher;
  t.diagnostic(
    `the page answered again ${outage} ms after the machine died (${Object.entries(steps)
      .map(([k, v]) => `${k} at ${v} ms`)
      .join(", ")})`,
  );
  assert.equal(back!.user, "ada", "same session");
  assert.equal(back!.views, views + 1, "the count goes on");
  assert.notEqual(back!.nodeId, victimNode.id, "served from another machine");
});
