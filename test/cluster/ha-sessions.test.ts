// Issue 13's walkthrough, examples/ha-sessions/ as its README runs it, on three machines of the
// namespace test bed: Redis on the manager, the web app on a worker behind the HTTP router
// (host name goweb.example.url). A user logs in and counts page views; a load through the router
// makes the autoscaler add web tasks up to its max on both workers, each answering, and they go
// back to the min once the load stops; then the machine that serves the web task dies without
// warning (network cut, every process killed), and the page answers again from the other
// worker, with the same session and the count going on.

import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { netnsSwarm } from "../helpers/swarm.js";
import {
  EXAMPLE,
  WEB_MAX,
  backToMin,
  deployExample,
  failover,
  login,
  loadStep,
  redisAvailable,
  view,
} from "../helpers/ha-sessions.js";

test("ha-sessions: the web task's machine dies, the page comes back elsewhere with the same session", async (t) => {
  if (!redisAvailable()) {
    if (process.env["CI"]) assert.fail("redis-server is missing (.ci/run installs it)");
    return t.skip("needs redis-server");
  }
  const swarm = await netnsSwarm(t, 3, 2, { prefix: "has" });
  if (swarm === undefined) return;
  assert.ok(existsSync(join(EXAMPLE, "docker-compose.yml")));

  // As the README says: from the example's folder, on a manager; the autoscaler's window
  // shortened from 1m so the test need not wait as long.
  const { entry, cleanup } = await deployExample(swarm, { stabilization: "15s" });
  t.after(cleanup);
  const cookie = await login(entry, "ada");
  let views = 0;
  let servedBy = "";
  for (let i = 1; i <= 3; i++) {
    const v = await view(entry, cookie);
    assert.ok(v, "the page answers");
    assert.equal(v.user, "ada");
    assert.equal(v.views, i);
    views = v.views;
    servedBy = v.nodeId;
  }

  // Load through the router: the autoscaler (20 requests a second per task) adds tasks up to
  // its max, 4, spread over both workers; every one answers.
  const load = await loadStep(swarm, entry, cookie);
  views += load.views;
  assert.equal(load.tasks.length, WEB_MAX);
  assert.equal(new Set(load.tasks.map((x) => x.nodeId)).size, 2, "on both workers");
  t.diagnostic(
    `a new task answered ${load.firstNewMs} ms after the load began, all ${WEB_MAX} after ${load.allMs} ms (${load.reason})`,
  );
  // The load is over: back to the min once the window has passed.
  await backToMin(swarm, 90_000);
  const now = await view(entry, cookie);
  assert.ok(now, "the page answers at the min");
  views = now.views;
  servedBy = now.nodeId;

  // Pull the plug on the worker that serves the page.
  const f = await failover(swarm, entry, cookie);
  t.diagnostic(
    `the page answered again ${f.outageMs} ms after the machine died (${Object.entries(f.steps)
      .map(([k, v]) => `${k} at ${v} ms`)
      .join(", ")})`,
  );
  assert.equal(f.victimNodeId, servedBy, "the page says where it runs: that machine died");
  assert.equal(f.back.user, "ada", "same session");
  assert.equal(f.back.views, views + 1, "the count goes on");
  assert.notEqual(f.back.nodeId, f.victimNodeId, "served from another machine");
});
