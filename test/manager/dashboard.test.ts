// The dashboard's server without a browser: the events it derives from store changes (a table
// of batches and what the feed says), when it asks for a login token and how the session cookie
// works, its actions and their validation, and the live state stream (a change reaches an open
// stream, bursts coalesced, every message matching DashStateSchema).

import { test, describe, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { request, type IncomingMessage } from "node:http";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openEmbeddedStore } from "../../src/store/embedded.js";
import type { Store } from "../../src/store/store.js";
import { Manager, defaultManagerOptions } from "../../src/manager/manager.js";
import { Dashboard } from "../../src/manager/dashboard/server.js";
import {
  cookieValue,
  hasSession,
  needsToken,
  SESSION_COOKIE,
  sessionCookie,
} from "../../src/manager/dashboard/auth.js";
import { dashboardToken } from "../../src/manager/dashboard/token.js";
import { dashService } from "../../src/manager/dashboard/view.js";
import { AutoscaleHistory, HISTORY_MS } from "../../src/manager/dashboard/history.js";
import { DashStateSchema, type DashState } from "../../src/api/dashboard.js";
import { matches, problems } from "../../src/api/schema.js";
import type { Asset } from "../../src/manager/dashboard/assets.js";
import { quietLog } from "../helpers/bus.js";
import { defer } from "../helpers/defer.js";
import { checkFor } from "../helpers/servers.js";
import { node, service, task } from "../store/helpers.js";
import { defaultServiceSpec, type Service } from "../../src/api/types.js";

test("a service's autoscale section is shown only when its spec has one", () => {
  const plain = service("s1", "web");
  assert.equal("autoscale" in dashService(plain, []), false);
  const auto = { min: 1, max: 5, metric: "cpu", target: 70 };
  const scaled = { ...plain, spec: { ...plain.spec, autoscale: auto } } as Service;
  const v = dashService(scaled, []);
  assert.deepEqual(v.autoscale, auto);
  assert.ok(matches(DashStateSchema, { revision: 1, nodes: [], services: [v], tasks: [] }));
});

test("the autoscaler's last hour: one point per decision, an hour kept, gone with the policy", () => {
  const policy = { min: 1, max: 5, cpuPercent: 70 };
  const at = (n: number, desired: number, value: number | null) =>
    ({
      ...service("s1", "web"),
      spec: { ...service("s1", "web").spec, autoscale: policy },
      autoscaleStatus: {
        lastDecisionAt: n,
        metric: "cpu",
        value,
        target: 70,
        current: desired,
        desired,
        reason: "r",
      },
    }) as Service;
  const h = new AutoscaleHistory();
  h.observe([at(1000, 1, 10)]);
  h.onEvents([{ kind: "service", action: "put", id: "s1", value: at(1000, 1, 10) }]);
  h.onEvents([{ kind: "service", action: "put", id: "s1", value: at(16_000, 2, 140) }]);
  assert.deepEqual(
    h.of("s1"),
    [
      { at: 1000, replicas: 1, value: 10 },
      { at: 16_000, replicas: 2, value: 140 },
    ],
    "the same decision seen twice is one point",
  );
  h.onEvents([
    { kind: "service", action: "put", id: "s1", value: at(16_000 + HISTORY_MS, 3, null) },
  ]);
  assert.deepEqual(
    h.of("s1").map((p) => p.at),
    [16_000, 16_000 + HISTORY_MS],
    "an hour kept",
  );
  const v = dashService(at(16_000 + HISTORY_MS, 3, null), [], h);
  assert.equal(v.autoscaleStatus?.desired, 3);
  assert.equal(v.autoscaleHistory?.length, 2);
  assert.ok(matches(DashStateSchema, { revision: 1, nodes: [], services: [v], tasks: [] }));
  const off = { ...at(20_000 + HISTORY_MS, 3, 1), spec: service("s1", "web").spec } as Service;
  h.onEvents([{ kind: "service", action: "put", id: "s1", value: off }]);
  assert.deepEqual(h.of("s1"), [], "autoscaling turned off: no chart");
  assert.equal("autoscaleHistory" in dashService(off, [], h), false);
});

describe("the login", () => {
  test("asked for on every address but loopback", () => {
    for (const h of ["127.0.0.1", "127.0.0.5", "::1", "localhost"])
      assert.equal(needsToken(h), false, h);
    for (const h of ["", "0.0.0.0", "::", "10.1.2.3", "fe80::1", "192.168.0.1"])
      assert.equal(needsToken(h), true, h);
  });

  test("the session cookie: HttpOnly, SameSite=Strict, derived from the token, not the token", () => {
    const c = sessionCookie("tok-1");
    assert.match(c, /; HttpOnly/);
    assert.match(c, /; SameSite=Strict/);
    const value = cookieValue(c.split(";")[0], SESSION_COOKIE)!;
    assert.ok(!value.includes("tok-1"));
    assert.ok(hasSession(`a=b; ${SESSION_COOKIE}=${value}`, "tok-1"));
    assert.ok(!hasSession(`${SESSION_COOKIE}=${value}`, "tok-2"));
    assert.ok(!hasSession(undefined, "tok-1"));
    assert.ok(!hasSession(`${SESSION_COOKIE}=`, "tok-1"));
  });
});

interface Reply {
  status: number;
  headers: IncomingMessage["headers"];
  json: unknown;
}

function send(
  port: number,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const h = body !== undefined ? { "Content-Type": "application/json", ...headers } : headers;
    const req = request({ host: "127.0.0.1", port, method, path, headers: h }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (text += c));
      res.on("end", () => {
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch {
          json = text;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, json });
      });
    });
    req.on("error", reject);
    if (body !== undefined) req.write(JSON.stringify(body));
    req.end();
  });
}

/** An open server-sent-events stream: its messages of one event name, as they come. */
function openStream(
  t: TestContext,
  port: number,
  path: string,
  event: string,
  headers: Record<string, string> = {},
): Promise<{ messages: unknown[] }> {
  return new Promise((resolve, reject) => {
    const out = { messages: [] as unknown[] };
    const req = request({ host: "127.0.0.1", port, path, headers }, (res) => {
      if (res.statusCode !== 200) return reject(new Error(`status ${res.statusCode}`));
      let buf = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => {
        buf += c;
        let end;
        while ((end = buf.indexOf("\n\n")) >= 0) {
          const block = buf.slice(0, end);
          buf = buf.slice(end + 2);
          const ev = /^event: (.*)$/m.exec(block)?.[1];
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (ev === event && data !== undefined) out.messages.push(JSON.parse(data));
        }
      });
      resolve(out);
    });
    req.on("error", reject);
    req.end();
    defer(t, () => req.destroy());
  });
}

const ASSETS = new Map<string, Asset>([
  ["/", { type: "text/html; charset=utf-8", body: Buffer.from("<!doctype html><p>page</p>") }],
]);

async function setup(
  t: TestContext,
  host = "127.0.0.1",
): Promise<{ store: Store; manager: Manager; port: number; dash: Dashboard }> {
  const dir = mkdtempSync(join(tmpdir(), "shoal-dash-"));
  defer(t, () => rmSync(dir, { recursive: true, force: true }));
  const store = await openEmbeddedStore(join(dir, "store"));
  defer(t, () => store.close());
  const manager = new Manager(store, quietLog, defaultManagerOptions());
  await store.update((tx) => {
    tx.putNode(node("n1", { role: "manager", hostname: "alpha" }));
    tx.putService(
      service("s1", "web", { spec: { ...defaultServiceSpec("web"), command: ["sleep", "100"] } }),
    );
  });
  const dash = new Dashboard(manager, {
    host,
    port: 0,
    assets: ASSETS,
    coalesceMs: 20,
    logs: async (tk, o, write) => write(`${tk.serviceName}.${tk.slot} tail=${o.tail}`),
  });
  defer(t, () => dash.close());
  const port = await dash.listen();
  return { store, manager, port, dash };
}

describe("the dashboard server", () => {
  test("on loopback: no token asked; the page, actions, and their checks", async (t) => {
    const { store, port } = await setup(t);
    assert.deepEqual((await send(port, "GET", "/api/session")).json, { required: false, ok: true });
    const page = await send(port, "GET", "/");
    assert.equal(page.status, 200);
    assert.match(String(page.headers["content-security-policy"]), /default-src 'self'/);
    assert.equal(page.headers["x-frame-options"], "DENY");

    const scaled = await send(port, "POST", "/api/services/web/scale", { replicas: 4 });
    assert.equal(scaled.status, 200, JSON.stringify(scaled.json));
    const spec = store.view((tx) => tx.getService("s1"))!.spec;
    assert.deepEqual(spec.mode, { replicated: { replicas: 4 } });
    for (const bad of [{ replicas: -1 }, { replicas: "3" }, { replicas: 2, extra: 1 }, {}]) {
      const r = await send(port, "POST", "/api/services/web/scale", bad);
      assert.equal(r.status, 400, JSON.stringify(bad));
      assert.equal((r.json as { code: string }).code, "ERR_INVALID");
    }
    assert.equal(
      (await send(port, "POST", "/api/services/nope/scale", { replicas: 1 })).status,
      404,
    );

    const drained = await send(port, "POST", "/api/nodes/alpha/availability", {
      availability: "drain",
    });
    assert.equal(drained.status, 200, JSON.stringify(drained.json));
    assert.equal(store.view((tx) => tx.getNode("n1"))!.availability, "drain");
    const bad = await send(port, "POST", "/api/nodes/alpha/availability", { availability: "off" });
    assert.equal(bad.status, 400);
    assert.match((bad.json as { message: string }).message, /availability/);

    // Rolling back: the scale left a previous spec.
    const rb = await send(port, "POST", "/api/services/web/rollback");
    assert.equal(rb.status, 200, JSON.stringify(rb.json));
    assert.deepEqual(store.view((tx) => tx.getService("s1"))!.spec.mode, {
      replicated: { replicas: 1 },
    });
  });

  test("the state stream: a snapshot at connect, then each change, coalesced", async (t) => {
    const { store, manager, port } = await setup(t);
    const s = await openStream(t, port, "/api/state", "state");
    await checkFor(5000, () => s.messages.length >= 1, 10);
    const first = s.messages[0] as DashState;
    assert.ok(matches(DashStateSchema, first), problems(DashStateSchema, first).join("; "));
    assert.deepEqual(
      first.nodes.map((n) => n.hostname),
      ["alpha"],
    );
    assert.deepEqual(
      first.services.map((x) => [x.name, x.desired]),
      [["web", 1]],
    );

    // A burst of ten commits: the stream sends far fewer messages, the last one with all of it.
    for (let i = 2; i <= 11; i++) {
      await manager.updateService("web", (spec) => ({
        ...spec,
        mode: { replicated: { replicas: i } },
      }));
    }
    await store.update((tx) => tx.putTask({ ...task("t1", "s1", "n1"), serviceName: "web" }));
    await checkFor(
      5000,
      () => {
        const last = s.messages.at(-1) as DashState;
        return last.services[0]!.desired === 11 && last.tasks.some((x) => x.id === "t1");
      },
      10,
    );
    assert.ok(s.messages.length <= 6, `${s.messages.length} messages for 11 commits`);
    for (const m of s.messages) assert.ok(matches(DashStateSchema, m));
  });

  test("the event stream: the recent history at connect, then live", async (t) => {
    const { manager, port } = await setup(t);
    // The manager's event log (what `shoal events` reads) feeds the stream.
    manager.events.start();
    defer(t, () => manager.events.stop());
    await manager.updateService("web", (spec) => ({
      ...spec,
      mode: { replicated: { replicas: 2 } },
    }));
    type Ev = { Type: string; Action: string; Actor: { Attributes: Record<string, string> } };
    await checkFor(5000, () => manager.events.recent().some((e) => e.Action === "scale"), 10);
    const s = await openStream(t, port, "/api/events", "event");
    const evs = s.messages as Ev[];
    await checkFor(5000, () => evs.some((e) => e.Action === "scale"), 10);
    const history = evs.length;
    const scale = evs.find((e) => e.Action === "scale")!;
    assert.equal(scale.Type, "service");
    assert.deepEqual(scale.Actor.Attributes, {
      name: "web",
      "replicas.old": "1",
      "replicas.new": "2",
    });
    await manager.updateNode("alpha", { availability: "drain" });
    await checkFor(5000, () => evs.some((e) => e.Type === "node"), 10);
    const drained = evs.findIndex((e) => e.Type === "node");
    assert.ok(drained >= history, "the node event comes live, after the history");
    assert.equal(evs[drained]!.Actor.Attributes["availability.new"], "drain");
  });

  test("the logs: the last lines of each placed task", async (t) => {
    const { store, port } = await setup(t);
    await store.update((tx) => {
      tx.putTask({ ...task("t1", "s1", "n1", { slot: 1 }), serviceName: "web" });
      tx.putTask({ ...task("t2", "s1", "", { slot: 2 }), serviceName: "web" }); // not placed
    });
    const r = await send(port, "GET", "/api/services/web/logs?tail=7");
    assert.deepEqual(r.json, { lines: ["web.1 tail=7"] });
    assert.equal((await send(port, "GET", "/api/services/web/logs?tail=x")).status, 400);
  });

  test("on another address: every API needs the token's session; login sets it", async (t) => {
    const { store, port, dash } = await setup(t, "0.0.0.0");
    assert.equal(dash.requireToken, true);
    const token = await dashboardToken(store);
    assert.deepEqual((await send(port, "GET", "/api/session")).json, { required: true, ok: false });
    // The page itself loads (it asks for the token); the data and the actions do not.
    assert.equal((await send(port, "GET", "/")).status, 200);
    for (const [method, path, body] of [
      ["GET", "/api/state", undefined],
      ["GET", "/api/events", undefined],
      ["POST", "/api/services/web/scale", { replicas: 5 }],
      ["POST", "/api/nodes/alpha/availability", { availability: "drain" }],
    ] as const) {
      const r = await send(port, method, path, body);
      assert.equal(r.status, 403, path);
      assert.equal((r.json as { code: string }).code, "ERR_TOKEN");
    }
    assert.deepEqual(store.view((tx) => tx.getService("s1"))!.spec.mode, {
      replicated: { replicas: 1 },
    });

    const wrong = await send(port, "POST", "/api/login", { token: "nope" });
    assert.equal(wrong.status, 403);
    assert.equal(wrong.headers["set-cookie"], undefined);
    const ok = await send(port, "POST", "/api/login", { token });
    assert.equal(ok.status, 200);
    const cookie = String(ok.headers["set-cookie"]).split(";")[0]!;
    assert.deepEqual(
      (await send(port, "GET", "/api/session", undefined, { Cookie: cookie })).json,
      {
        required: true,
        ok: true,
      },
    );
    const scaled = await send(
      port,
      "POST",
      "/api/services/web/scale",
      { replicas: 5 },
      { Cookie: cookie },
    );
    assert.equal(scaled.status, 200);
    // A bearer token works too (scripts); a rotated token ends the session.
    assert.equal(
      (
        await send(port, "GET", "/api/services/web/logs", undefined, {
          Authorization: `Bearer ${token}`,
        })
      ).status,
      200,
    );
    await dashboardToken(store, true);
    assert.equal(
      (await send(port, "POST", "/api/services/web/scale", { replicas: 6 }, { Cookie: cookie }))
        .status,
      403,
    );
  });
});
