// The HTTP router wired into a daemon: services claim host names with Traefik's or interlock's
// labels; the router on --http-addr sends each request to a task that serves traffic, round
// robin or pinned by a sticky cookie; a task change reaches it within a second; WebSocket
// upgrades pass through; a compose file written for Traefik on Swarm deploys and routes.

import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import WebSocket from "ws";
import { apiAt, checkFor, startDaemon, type TestDaemon } from "../helpers/daemon.js";
import {
  routedGet as get,
  routerTaskScript as taskScript,
  type Answer,
} from "../helpers/router.js";
import type { Task } from "../../src/api/types.js";

async function running(d: TestDaemon, service: string): Promise<Task[]> {
  const ts = await apiAt<Task[]>(d.dataDir, `/v1/tasks?service=${service}`);
  return ts.filter((t) => t.status.state === "running" && t.desiredState === "running");
}

/** Task ids the router answers with for `host` over `n` requests. */
async function seen(port: number, host: string, n: number): Promise<Map<string, number>> {
  const ids = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const a = await get(port, host);
    if (a.status !== 200) continue;
    const id = a.body.split(" ")[0]!;
    ids.set(id, (ids.get(id) ?? 0) + 1);
  }
  return ids;
}

test("HTTP router in the daemon: host names, round robin, sticky cookies, WebSocket, 1 s updates, compose labels", async (t) => {
  const d = await startDaemon({ http: true });
  const dir = mkdtempSync(join(tmpdir(), "shoal-router-"));
  t.after(async () => {
    await d.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });
  const port = d.httpPort!;
  assert.ok(port > 0, `the router's port is in the log:\n${d.log()}`);
  const script = taskScript(dir);
  const ok = async (...args: string[]) => {
    const r = await d.cli(...args);
    assert.equal(r.code, 0, `shoal ${args.join(" ")}: ${r.stdout}${r.stderr}`);
    return r;
  };

  const web = await ok(
    "service",
    "create",
    "--name",
    "web",
    "--replicas",
    "3",
    "--label",
    "traefik.http.routers.web.rule=Host(`web.test`)",
    "--label",
    "traefik.http.services.web.loadbalancer.server.port=8000",
    "--label",
    "traefik.http.routers.web.middlewares=auth",
    "--",
    "node",
    script,
  );
  assert.match(
    web.stderr,
    /WARNING: service web: traefik\.http\.routers\.web\.middlewares: not supported/,
    "a label the router does not act on is named at deploy",
  );
  await ok(
    "service",
    "create",
    "--name",
    "shop",
    "--replicas",
    "2",
    "--label",
    "com.docker.lb.hosts=shop.test,www.shop.test",
    "--label",
    "com.docker.lb.port=9000",
    "--label",
    "com.docker.lb.sticky_session_cookie=shopid",
    "--",
    "node",
    script,
  );

  await t.test("round robin reaches every task of the service the host names", async () => {
    await checkFor(30_000, async () => (await running(d, "web")).length === 3, 100);
    const tasks = (await running(d, "web")).map((x) => x.id).sort();
    let ids = new Map<string, number>();
    await checkFor(10_000, async () => {
      ids = await seen(port, "web.test", 9);
      return ids.size === 3;
    });
    assert.deepEqual([...ids.keys()].sort(), tasks);
    for (const n of ids.values()) assert.equal(n, 3, `round robin: ${[...ids.values()]}`);
    const a = await get(port, "WEB.test:80");
    assert.equal(a.status, 200, "host names match without case and port");
    assert.match(a.body, / WEB\.test:80$/, "X-Forwarded-Host is the client's Host");
    const none = await get(port, "nobody.test");
    assert.equal(none.status, 404);
  });

  await t.test("a sticky cookie pins a client, and moves it when its task dies", async () => {
    await checkFor(30_000, async () => (await running(d, "shop")).length === 2, 100);
    await checkFor(10_000, async () => (await seen(port, "www.shop.test", 2)).size === 2);
    const first = await get(port, "shop.test");
    assert.equal(first.status, 200);
    const cookie = first.setCookie.find((c) => c.startsWith("shopid="));
    assert.ok(cookie, `the router sets the interlock cookie: ${first.setCookie.join(" | ")}`);
    const pair = cookie.split(";")[0]!;
    const [pinned, pid] = first.body.split(" ");
    for (let i = 0; i < 6; i++) {
      const a = await get(port, "shop.test", pair);
      assert.equal(a.body.split(" ")[0], pinned, "the cookie pins the task");
      assert.deepEqual(a.setCookie, [], "a valid cookie is not set again");
    }
    process.kill(Number(pid), "SIGKILL");
    let moved: Answer | undefined;
    await checkFor(15_000, async () => {
      const a = await get(port, "shop.test", pair);
      if (a.status === 200 && a.body.split(" ")[0] !== pinned) moved = a;
      return moved !== undefined;
    });
    const rewritten = moved!.setCookie.find((c) => c.startsWith("shopid="));
    assert.ok(rewritten, "the cookie is rewritten to the task that now serves the client");
    const again = await get(port, "shop.test", rewritten.split(";")[0]!);
    assert.equal(again.body.split(" ")[0], moved!.body.split(" ")[0]);
  });

  await t.test("WebSocket upgrades pass through to a task", async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/`, { headers: { Host: "web.test" } });
    const answer = await new Promise<string>((resolve, reject) => {
      ws.once("open", () => ws.send("hello"));
      ws.once("message", (m: Buffer) => resolve(m.toString()));
      ws.once("error", reject);
    });
    ws.close();
    const ids = (await running(d, "web")).map((x) => x.id);
    const m = /^echo (\S+) hello$/.exec(answer);
    assert.ok(m && ids.includes(m[1]!), `echoed by a task of web: ${answer}`);
  });

  await t.test("a new task takes requests within a second of running", async () => {
    const before = new Set((await running(d, "web")).map((x) => x.id));
    await ok("service", "scale", "--detach", "web=4");
    let runningAt = 0;
    let routedAt = 0;
    let fresh = "";
    const poller = (async () => {
      while (runningAt === 0) {
        const now = (await running(d, "web")).find((x) => !before.has(x.id));
        if (now) {
          fresh = now.id;
          runningAt = Date.now();
        } else await new Promise((r) => setTimeout(r, 20));
      }
    })();
    await checkFor(
      30_000,
      async () => {
        const a = await get(port, "web.test");
        const id = a.body.split(" ")[0]!;
        if (a.status === 200 && !before.has(id)) routedAt ||= Date.now();
        return routedAt !== 0;
      },
      10,
    );
    await poller;
    const lag = routedAt - runningAt;
    assert.ok(lag < 1000, `routed ${lag} ms after the API showed ${fresh} running`);
  });

  await t.test("a compose file with Traefik's labels deploys and routes", async () => {
    const file = join(dir, "stack.yml");
    writeFileSync(
      file,
      `services:
  api:
    command: ["node", ${JSON.stringify(script)}]
    deploy:
      replicas: 2
      labels:
        - traefik.enable=true
        - traefik.http.routers.api.rule=Host(\`api.test\`) && PathPrefix(\`/v1\`)
        - traefik.http.services.api.loadbalancer.server.port=7000
        - traefik.http.services.api.loadbalancer.sticky.cookie=true
`,
    );
    await ok("stack", "deploy", "-c", file, "demo");
    await checkFor(30_000, async () => (await running(d, "demo_api")).length === 2, 100);
    const tasks = (await running(d, "demo_api")).map((x) => x.id);
    let a: Answer | undefined;
    await checkFor(10_000, async () => {
      a = await get(port, "api.test", undefined, "/v1/x");
      return a.status === 200;
    });
    assert.ok(tasks.includes(a!.body.split(" ")[0]!), a!.body);
    assert.match(a!.setCookie[0] ?? "", /^_[0-9a-f]{5}=/, "Traefik's default cookie name");
    assert.equal((await get(port, "api.test")).status, 404, "outside the path prefix");
    await ok("stack", "rm", "demo");
    await checkFor(
      15_000,
      async () => (await get(port, "api.test", undefined, "/v1/x")).status === 404,
    );
  });
});
