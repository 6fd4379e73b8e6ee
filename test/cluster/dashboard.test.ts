// The dashboard on the three-machine test bed (prefix "hda"), in headless Chromium: the grid
// shows each task on the node the CLI says it runs on; a worker killed outright goes down on
// the page and its tasks appear on the other nodes within seconds, with no reload. With
// SHOAL_DASHBOARD_SHOTS=1 it saves docs/dashboard-grid.png and docs/dashboard-grid-node-down.png.

import { test } from "node:test";
import assert from "node:assert/strict";
import type { Page } from "playwright-core";
import { startSwarm } from "../helpers/swarm.js";
import { browserSkip, openPage, waitForPage } from "../helpers/browser.js";
import { checkFor } from "../helpers/servers.js";
import type { Node, Task } from "../../src/api/types.js";

const DASH_PORT = 8080;
const SHOTS = process.env["SHOAL_DASHBOARD_SHOTS"] === "1";
const TICK = `setInterval(()=>console.log('tick'),1000)`;

/** The running task cards of a service: task id → the node id of their column (the bed's hosts
 * share one hostname). */
function gridCards(page: Page, svc: string): Promise<Array<[string, string]>> {
  return page.evaluate(
    `[...document.querySelectorAll('.column li.task[data-service="${svc}"][data-state="running"]')]
      .map((e) => [e.dataset.task, e.closest(".column").dataset.nodeId])`,
  );
}

test(
  "the grid follows a killed node's tasks to the other nodes, without a reload",
  { skip: browserSkip },
  async (t) => {
    const s = await startSwarm(3, 2, {
      prefix: "hda",
      managerArgs: (m) => ["--dashboard-addr", `${m.addr}:${DASH_PORT}`],
    });
    t.after(() => s.cleanup());
    await s.ok(
      "service",
      "create",
      "--name",
      "web",
      "--replicas",
      "6",
      "--",
      process.execPath,
      "-e",
      TICK,
    );
    await checkFor(30_000, async () => (await s.running("web")).length === 6, 200);
    const nodes = await s.api<Node[]>("/v1/nodes");
    assert.equal(nodes.length, 3);

    // Off loopback: log in with the token.
    const token = (await s.ok("dashboard", "token")).trim();
    const { page } = await openPage(t);
    await page.goto(`http://${s.manager.addr}:${DASH_PORT}/`);
    await page.fill("#login-token", token);
    await page.press("#login-token", "Enter");
    await page.evaluate("window.marker = 42");
    await waitForPage(
      page,
      `document.querySelectorAll('li.task[data-service="web"][data-state="running"]').length === 6`,
    );
    const want = new Map((await s.running("web")).map((x) => [x.id, x.nodeId]));
    assert.deepEqual(new Map(await gridCards(page, "web")), want);
    if (SHOTS) await page.screenshot({ path: "docs/dashboard-grid.png" });

    // Kill a worker with its tasks; its column goes down and its tasks come back elsewhere.
    const victim = s.workers[0]!;
    const victimNode = nodes.find((n) => n.addr === victim.addr)!;
    const onVictim = [...want.values()].filter((id) => id === victimNode.id).length;
    assert.ok(onVictim > 0, "the spread put tasks on the victim");
    const killedAt = Date.now();
    await victim.kill();
    await page.waitForSelector(`.column.node-down[data-node-id="${victimNode.id}"]`, {
      timeout: 20_000,
    });
    await waitForPage(
      page,
      `(() => {
      const cards = [...document.querySelectorAll('li.task[data-service="web"][data-state="running"]')];
      return cards.length === 6 &&
        cards.every((e) => e.closest(".column").dataset.nodeId !== ${JSON.stringify(victimNode.id)});
    })()`,
      20_000,
    );
    const tookMs = Date.now() - killedAt;
    if (SHOTS) await page.screenshot({ path: "docs/dashboard-grid-node-down.png" });
    // The page agrees with the CLI, and it never reloaded.
    const after = (await s.api<Task[]>("/v1/tasks?service=web")).filter(
      (x) => x.status.state === "running" && x.desiredState === "running",
    );
    assert.deepEqual(
      new Map(await gridCards(page, "web")),
      new Map(after.map((x) => [x.id, x.nodeId])),
    );
    assert.equal(await page.evaluate("window.marker"), 42);
    // The event feed tells the story.
    await page.click('nav a[href="#/events"]');
    await page.waitForSelector(`ol.feed li:has-text("node ${victimNode.hostname} down")`);
    t.diagnostic(
      `the grid showed ${onVictim} tasks moved off the killed node ${tookMs} ms after the kill`,
    );
  },
);
