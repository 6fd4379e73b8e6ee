// The dashboard end to end: a real daemon serving it, driven by headless Chromium. The grid
// shows each task on its node; a change made with the CLI appears without a reload; scale, roll
// back and drain from the page change the cluster (checked with the CLI), each after a
// confirmation, and each shows in the event feed; bound off loopback it asks for the token.
// With SHOAL_DASHBOARD_SHOTS=1 it also saves the screenshots docs/dashboard-*.png (the grid's
// come from test/cluster/dashboard.test.ts, on three machines).

import { test, describe, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:net";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { resolveDaemonOptions } from "../../src/daemon/run.js";
import type { Page } from "playwright-core";
import { startDaemon, type TestDaemon } from "../helpers/daemon.js";
import { checkFor } from "../helpers/servers.js";
import { defer } from "../helpers/defer.js";
import { browserSkip, openPage, waitForPage } from "../helpers/browser.js";

const SHOTS = process.env["SHOAL_DASHBOARD_SHOTS"] === "1";
const TICK = `setInterval(()=>console.log('tick', Date.now()),500)`;

async function daemon(t: TestContext, dashboard: string): Promise<TestDaemon> {
  const d = await startDaemon({ dashboard });
  defer(t, () => d.cleanup());
  assert.ok(d.dashboardUrl, `no dashboard URL in the log:\n${d.log()}`);
  return d;
}

async function cli(d: TestDaemon, ...args: string[]): Promise<string> {
  const r = await d.cli(...args);
  assert.equal(r.code, 0, `shoal ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

/** What the CLI says: task id → node hostname, for the running tasks of a service. */
async function runningTasks(d: TestDaemon, svc: string): Promise<Map<string, string>> {
  const out = await cli(
    d,
    "service",
    "ps",
    svc,
    "--no-trunc",
    "--format",
    "{{.ID}} {{.Node}} {{.CurrentState}}",
  );
  const m = new Map<string, string>();
  for (const line of out.trim().split("\n")) {
    const [id, nodeName, state] = line.split(" ");
    if (state === "Running") m.set(id!, nodeName!);
  }
  return m;
}

async function desired(d: TestDaemon, svc: string): Promise<number> {
  const [s] = JSON.parse(await cli(d, "service", "inspect", svc)) as Array<{
    Spec?: { Mode?: { Replicated?: { Replicas?: number } } };
    spec?: { mode: { replicated?: { replicas: number } } };
  }>;
  return s!.Spec?.Mode?.Replicated?.Replicas ?? s!.spec!.mode.replicated!.replicas;
}

/** The running task cards of a service in the grid: task id → node column. (Page code is
 * given as text: the tests compile without the DOM's types.) */
function gridCards(page: Page, svc: string): Promise<Array<[string, string]>> {
  return page.evaluate(
    `[...document.querySelectorAll('.column li.task[data-service="${svc}"][data-state="running"]')]
      .map((e) => [e.dataset.task, e.closest(".column").dataset.node])`,
  );
}

/** Waits until the grid shows `n` running tasks of a service. */
function waitRunning(page: Page, svc: string, n: number): Promise<void> {
  return waitForPage(
    page,
    `document.querySelectorAll('li.task[data-service="${svc}"][data-state="running"]').length === ${n}`,
  );
}

async function confirm(page: Page, expect: RegExp): Promise<void> {
  const dialog = page.locator("dialog#confirm");
  await dialog.waitFor({ state: "visible" });
  assert.match((await page.locator("#confirm-text").textContent()) ?? "", expect);
  await page.locator("#confirm-ok").click();
  await dialog.waitFor({ state: "hidden" });
}

async function shot(page: Page, name: string): Promise<void> {
  if (SHOTS) await page.screenshot({ path: `docs/dashboard-${name}.png`, fullPage: false });
}

describe("dashboard in a browser", { skip: browserSkip }, () => {
  test("grid, live updates, scale, roll back, drain and the event feed", async (t) => {
    const d = await daemon(t, "127.0.0.1:0");
    await cli(d, "service", "create", "--name", "web", "--replicas", "2", "--", "node", "-e", TICK);
    await cli(
      d,
      "service",
      "create",
      "--name",
      "api",
      "--replicas",
      "1",
      "-p",
      "18080:8000",
      "--",
      "node",
      "-e",
      TICK,
    );
    const { page } = await openPage(t);
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(d.dashboardUrl!);
    // No reload from here on: a marker on the window survives only within one page load.
    await page.evaluate("window.marker = 42");

    // The grid: each running task on the node the CLI says it runs on.
    await waitRunning(page, "web", 2);
    const want = await runningTasks(d, "web");
    assert.equal(want.size, 2);
    const cards = await gridCards(page, "web");
    assert.deepEqual(new Map(cards), want);
    await page.waitForSelector('li.task[data-service="api"][data-state="running"]');

    // A change made with the CLI appears without a reload.
    await cli(d, "service", "scale", "web=3");
    await waitRunning(page, "web", 3);

    // Scale from the page (keyboard: type, Enter), confirmed; the CLI sees it.
    await page.click('nav a[href="#/services"]');
    await page.waitForSelector('tr[data-service="web"] td[data-replicas="3/3"]');
    await shot(page, "services");
    await page.fill("#scale-web", "1");
    await page.press("#scale-web", "Enter");
    await confirm(page, /Scale web from 3 to 1 replicas/);
    await checkFor(10_000, async () => (await desired(d, "web")) === 1, 100);
    await page.waitForSelector('tr[data-service="web"] td[data-replicas="1/1"]');

    // Cancelling changes nothing.
    await page.fill("#scale-web", "5");
    await page.click("#scale-web-go");
    await page.locator("dialog#confirm").waitFor({ state: "visible" });
    await page.locator("#confirm-cancel").click();
    await page.locator("dialog#confirm").waitFor({ state: "hidden" });
    // The dialog's "close" event, which puts the service's count back in the field, is fired in
    // a task of its own after the dialog is hidden.
    await waitForPage(page, `document.querySelector("#scale-web").value === "1"`);
    assert.equal(await page.inputValue("#scale-web"), "1");
    assert.equal(await desired(d, "web"), 1);

    // Roll back (to 3 replicas, the spec before the scale) from the service page.
    await page.click('tr[data-service="web"] a');
    await page.waitForSelector("h2:has-text('Service web')");
    await page.click("#rollback-web");
    await confirm(page, /Roll web back/);
    await checkFor(10_000, async () => (await desired(d, "web")) === 3, 100);
    await page.waitForSelector('dd[data-replicas="3/3"]');
    await waitForPage(page, `/tick/.test(document.querySelector("pre.logs")?.textContent ?? "")`);
    await shot(page, "service");

    // Drain the node from the page; its tasks stop (one node: nowhere else to go); activate.
    await page.click('nav a[href="#/nodes"]');
    const row = page.locator("tr[data-node]").first();
    await row.locator('button[data-action="drain"]').click();
    await confirm(page, /Drain node/);
    await checkFor(
      10_000,
      async () =>
        (
          JSON.parse(await cli(d, "node", "inspect", "self")) as Array<{
            Spec?: { Availability?: string };
            availability?: string;
          }>
        ).map((n) => n.Spec?.Availability ?? n.availability)[0] === "drain",
      100,
    );
    await page.waitForSelector('td[data-availability="drain"]');
    await row.locator('button[data-action="activate"]').click();
    await confirm(page, /Activate node/);
    await page.waitForSelector('td[data-availability="active"]');
    await shot(page, "nodes");

    // The event feed shows each step.
    await page.click('nav a[href="#/events"]');
    for (const text of [
      "service web created",
      "service web scaled 2 → 3",
      "service web scaled 3 → 1",
      "service web update rollback started",
      "availability active → drain",
      "availability drain → active",
    ]) {
      await page.waitForSelector(`ol.feed li:has-text("${text}")`);
    }
    await page.waitForSelector('ol.feed li:has-text("running on")');
    await shot(page, "events");

    assert.equal(await page.evaluate("window.marker"), 42);
    assert.deepEqual(errors, []);
  });

  test("bound off loopback: the page asks for the token once, then keeps the session", async (t) => {
    const d = await daemon(t, "0.0.0.0:0");
    const url = d.dashboardUrl!.replace("0.0.0.0", "127.0.0.1");
    const token = (await cli(d, "dashboard", "token")).trim();
    assert.match(token, /^shoal-dash-[0-9a-z]{50}$/);
    const { page } = await openPage(t);
    await page.goto(url);
    await page.locator("#login").waitFor({ state: "visible" });
    assert.equal(await page.locator("li.task").count(), 0);
    await page.fill("#login-token", "wrong");
    await page.press("#login-token", "Enter");
    await page.waitForSelector("#login-error:has-text('not the token')");
    await page.fill("#login-token", token);
    await page.press("#login-token", "Enter");
    await page.waitForSelector(".column[data-node]");
    const cookies = await page.context().cookies();
    const c = cookies.find((x) => x.name === "shoal_dashboard");
    assert.ok(c && c.httpOnly && c.sameSite === "Strict", JSON.stringify(cookies));
    assert.ok(!c.value.includes(token));
    // A reload keeps the session: no login form again.
    await page.reload();
    await page.waitForSelector(".column[data-node]");
    assert.equal(await page.locator("#login").isVisible(), false);
  });
});

test("a dashboard port that is taken: a warning, and the daemon runs without it", async (t) => {
  const blocker = createServer();
  await new Promise<void>((r) => blocker.listen(0, "127.0.0.1", r));
  defer(t, () => new Promise((r) => blocker.close(r)));
  const port = (blocker.address() as { port: number }).port;
  const d = await startDaemon({ dashboard: `127.0.0.1:${port}` });
  defer(t, () => d.cleanup());
  assert.match(
    d.log(),
    new RegExp(`dashboard: cannot listen on 127.0.0.1:${port} .*going on without it`),
  );
  assert.equal(d.dashboardUrl, undefined);
  // The setting is kept for the next start, like the other addresses.
  const saved = JSON.parse(readFileSync(join(d.dataDir, "daemon.json"), "utf8")) as {
    dashboardAddr?: string;
  };
  assert.equal(saved.dashboardAddr, `127.0.0.1:${port}`);
  assert.match(await cli(d, "node", "ls"), /Ready/);
});

test("the dashboard's default address is loopback, 127.0.0.1:8080, saved in daemon.json", (t) => {
  const dir = mkdtempSync(join(tmpdir(), "shoal-dash-opts-"));
  defer(t, () => rmSync(dir, { recursive: true, force: true }));
  const quiet = { warn() {} } as unknown as Parameters<typeof resolveDaemonOptions>[1];
  const o = resolveDaemonOptions({ dataDir: dir, advertiseAddr: "127.0.0.1:2377" }, quiet);
  assert.equal(o.dashboardAddr, "127.0.0.1:8080");
  const again = resolveDaemonOptions({ dataDir: dir, dashboardAddr: "" }, quiet);
  assert.equal(again.dashboardAddr, "");
  assert.equal(resolveDaemonOptions({ dataDir: dir }, quiet).dashboardAddr, "", "kept");
});
