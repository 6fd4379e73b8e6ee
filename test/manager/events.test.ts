// Cluster events: derivation from the store feed (a table), Docker's filters, the event log's
// batching, bounded history and restart, the stream's query checks, and the CLI's time flags and
// line format. Time is injected everywhere.

import { test } from "node:test";
import assert from "node:assert/strict";
import {
  deriveEvents,
  autoscaleEvent,
  type DeriveContext,
} from "../../src/manager/events/derive.js";
import { EventLog } from "../../src/manager/events/log.js";
import { parseEventFilters } from "../../src/manager/events/stream.js";
import {
  eventFiltersProblem,
  eventMatches,
  eventSubject,
  eventTimes,
  type ClusterEvent,
  type EventInput,
} from "../../src/api/events.js";
import { NAMESPACE_LABEL } from "../../src/api/model.js";
import type { Kind, StoreEvent } from "../../src/store/store.js";
import { createMemoryStore } from "../../src/store/memory.js";
import { openEmbeddedStore } from "../../src/store/embedded.js";
import { ManagerError } from "../../src/manager/errors.js";
import { formatEvent, parseTimeFlag, unixSeconds, eventsQuery } from "../../src/cli/events.js";
import { UsageError } from "../../src/cli/errors.js";
import { network, node, service, task, tmpStoreDir } from "../store/helpers.js";
import type { Service, Task } from "../../src/api/types.js";

const ctx = (stacks: Record<string, number> = {}): DeriveContext => ({
  nodeName: (id) => (id === "n1" ? "host-n1" : undefined),
  stackSize: (ns) => stacks[ns] ?? 0,
});

const put = (kind: Kind, id: string, value: unknown): StoreEvent => ({
  kind,
  action: "put",
  id,
  value,
});
const del = (kind: Kind, id: string): StoreEvent => ({ kind, action: "delete", id, value: null });

/** Type, Action and Attributes of each derived event. */
function derive(
  event: StoreEvent,
  prev: unknown,
  c = ctx(),
): Array<[string, string, Record<string, string>]> {
  return deriveEvents({ event, prev }, c).map((e) => [e.Type, e.Action, e.Actor.Attributes]);
}

const web = service("s1", "web");
const scaled = (s: Service, n: number): Service => ({
  ...s,
  spec: { ...s.spec, mode: { replicated: { replicas: n } } },
});
const inStack = (s: Service, ns: string): Service => ({
  ...s,
  spec: { ...s.spec, labels: { [NAMESPACE_LABEL]: ns } },
});
const withState = (
  t: Task,
  state: Task["status"]["state"],
  over: Partial<Task["status"]> = {},
) => ({
  ...t,
  status: { ...t.status, state, ...over },
});
const t1 = { ...task("t1", "s1", "n1"), serviceName: "web" };

test("derivation: services", () => {
  const cases: Array<[string, StoreEvent, unknown, DeriveContext, unknown]> = [
    [
      "create",
      put("service", "s1", web),
      undefined,
      ctx(),
      [["service", "create", { name: "web" }]],
    ],
    [
      "an env change is an update",
      put("service", "s1", { ...web, spec: { ...web.spec, env: { A: "1" } } }),
      web,
      ctx(),
      [["service", "update", { name: "web" }]],
    ],
    [
      "a replica change is an update (Docker's) and a scale, both with the counts",
      put("service", "s1", scaled(web, 3)),
      web,
      ctx(),
      [
        ["service", "update", { name: "web", "replicas.new": "3", "replicas.old": "1" }],
        ["service", "scale", { name: "web", "replicas.new": "3", "replicas.old": "1" }],
      ],
    ],
    [
      "an update state change is an update",
      put("service", "s1", {
        ...web,
        updateStatus: { state: "completed", version: 2, startedAt: 1, completedAt: 2, message: "" },
      }),
      {
        ...web,
        updateStatus: {
          state: "updating",
          version: 2,
          startedAt: 1,
          completedAt: null,
          message: "",
        },
      },
      ctx(),
      [
        [
          "service",
          "update",
          { name: "web", "updatestate.new": "completed", "updatestate.old": "updating" },
        ],
      ],
    ],
    [
      "a virtual IP given is no event",
      put("service", "s1", { ...web, virtualIps: [{ networkId: "x", addr: "10.0.0.9" }] }),
      web,
      ctx(),
      [],
    ],
    ["remove", del("service", "s1"), web, ctx(), [["service", "remove", { name: "web" }]]],
    [
      "the first service of a stack creates it",
      put("service", "s1", inStack(web, "demo")),
      undefined,
      ctx({ demo: 1 }),
      [
        ["service", "create", { name: "web", [NAMESPACE_LABEL]: "demo" }],
        ["stack", "create", { name: "demo" }],
      ],
    ],
    [
      "a second one does not",
      put("service", "s1", inStack(web, "demo")),
      undefined,
      ctx({ demo: 2 }),
      [["service", "create", { name: "web", [NAMESPACE_LABEL]: "demo" }]],
    ],
    [
      "the last one gone removes the stack",
      del("service", "s1"),
      inStack(web, "demo"),
      ctx({}),
      [
        ["service", "remove", { name: "web", [NAMESPACE_LABEL]: "demo" }],
        ["stack", "remove", { name: "demo" }],
      ],
    ],
  ];
  for (const [name, ev, prev, c, want] of cases) {
    assert.deepEqual(derive(ev, prev, c), want, name);
  }
});

test("derivation: tasks (state changes only, health verdicts)", () => {
  const attrs = {
    name: "web.1",
    node: "host-n1",
    "node.id": "n1",
    service: "web",
    "service.id": "s1",
  };
  const healthy = { status: "healthy" as const, failingStreak: 0, log: [] };
  const cases: Array<[string, StoreEvent, unknown, unknown]> = [
    [
      "a new task",
      put("task", "t1", { ...t1, nodeId: "" }),
      undefined,
      [["task", "new", { name: "web.1", service: "web", "service.id": "s1" }]],
    ],
    [
      "running",
      put("task", "t1", withState(t1, "running")),
      withState(t1, "starting"),
      [["task", "running", attrs]],
    ],
    [
      "the same state again is no event",
      put("task", "t1", withState(t1, "running", { pid: 7 })),
      withState(t1, "running"),
      [],
    ],
    [
      "failed, with the error and exit code",
      put("task", "t1", withState(t1, "failed", { err: "task: non-zero exit (1)", exitCode: 1 })),
      withState(t1, "running"),
      [["task", "failed", { ...attrs, error: "task: non-zero exit (1)", exitCode: "1" }]],
    ],
    [
      "healthy",
      put("task", "t1", withState(t1, "running", { health: healthy })),
      withState(t1, "running", { health: { ...healthy, status: "starting" } }),
      [["task", "health_status: healthy", attrs]],
    ],
    [
      "unhealthy and failed in one write",
      put(
        "task",
        "t1",
        withState(t1, "failed", { err: "unhealthy", health: { ...healthy, status: "unhealthy" } }),
      ),
      withState(t1, "running", { health: healthy }),
      [
        ["task", "failed", { ...attrs, error: "unhealthy" }],
        ["task", "health_status: unhealthy", { ...attrs, error: "unhealthy" }],
      ],
    ],
    ["a deleted task is no event", del("task", "t1"), t1, []],
  ];
  for (const [name, ev, prev, want] of cases) assert.deepEqual(derive(ev, prev), want, name);
});

test("derivation: nodes and networks", () => {
  const n = node("n1");
  const base = { name: "host-n1", role: "worker" };
  const cases: Array<[string, StoreEvent, unknown, unknown]> = [
    ["join", put("node", "n1", n), undefined, [["node", "join", base]]],
    [
      "down",
      put("node", "n1", { ...n, status: "down" }),
      n,
      [["node", "down", { ...base, "state.new": "down", "state.old": "ready" }]],
    ],
    [
      "drain",
      put("node", "n1", { ...n, availability: "drain" }),
      n,
      [["node", "drain", { ...base, "availability.new": "drain", "availability.old": "active" }]],
    ],
    ["a label is no event", put("node", "n1", { ...n, labels: { a: "b" } }), n, []],
    ["remove", del("node", "n1"), n, [["node", "remove", base]]],
    [
      "network create",
      put("network", "x1", network("x1", "backend")),
      undefined,
      [["network", "create", { name: "backend", type: "overlay" }]],
    ],
    [
      "node addresses are no event",
      put("network", "x1", network("x1", "backend", { nodeAddrs: { n1: "10.0.1.2" } })),
      network("x1", "backend"),
      [],
    ],
    [
      "network remove",
      del("network", "x1"),
      network("x1", "backend"),
      [["network", "remove", { name: "backend", type: "overlay" }]],
    ],
    ["other kinds are no event", put("meta", "settings", {}), undefined, []],
  ];
  for (const [name, ev, prev, want] of cases) assert.deepEqual(derive(ev, prev), want, name);
});

function ev(input: EventInput, seq = 1): ClusterEvent {
  return { ...input, scope: "swarm", ...eventTimes(1_700_000_000_000), seq };
}

test("filters: Docker's semantics (values of a key: any; keys: all); unknown keys refused", () => {
  const svc = ev({
    Type: "service",
    Action: "create",
    Actor: { ID: "s1", Attributes: { name: "web" } },
  });
  const tsk = ev({
    Type: "task",
    Action: "running",
    Actor: {
      ID: "t1",
      Attributes: {
        name: "web.1",
        service: "web",
        "service.id": "s1",
        node: "h1",
        "node.id": "n1",
      },
    },
  });
  const nod = ev({ Type: "node", Action: "down", Actor: { ID: "n1", Attributes: { name: "h1" } } });
  const other = ev({
    Type: "service",
    Action: "remove",
    Actor: { ID: "s2", Attributes: { name: "db" } },
  });
  const all = [svc, tsk, nod, other];
  const pick = (f: Record<string, string[]>) => all.filter((e) => eventMatches(e, f));
  assert.deepEqual(pick({}), all);
  assert.deepEqual(pick({ type: ["service"] }), [svc, other]);
  assert.deepEqual(pick({ type: ["service", "node"] }), [svc, nod, other]);
  assert.deepEqual(pick({ service: ["web"] }), [svc, tsk], "by name: the service and its tasks");
  assert.deepEqual(pick({ service: ["s1"] }), [svc, tsk], "by id");
  assert.deepEqual(pick({ service: ["web"], type: ["task"] }), [tsk]);
  assert.deepEqual(pick({ node: ["h1"] }), [tsk, nod]);
  assert.deepEqual(pick({ event: ["remove", "down"] }), [nod, other]);
  assert.equal(eventFiltersProblem({ type: ["task"], service: ["x"] }), null);
  assert.match(eventFiltersProblem({ foo: ["x"] })!, /^invalid filter 'foo'/);
  assert.match(eventFiltersProblem({ type: ["container"] })!, /^invalid filter 'type=container'/);
  // The API's query: Docker's JSON, or its older map form.
  assert.deepEqual(parseEventFilters('{"type":["task"]}'), { type: ["task"] });
  assert.deepEqual(parseEventFilters('{"type":{"task":true,"node":false}}'), { type: ["task"] });
  assert.throws(
    () => parseEventFilters('{"image":["x"]}'),
    (e: unknown) => {
      return (
        e instanceof ManagerError &&
        e.code === "ERR_INVALID" &&
        /invalid filter 'image'/.test(e.message)
      );
    },
  );
  assert.throws(() => parseEventFilters("{"), /invalid filters/);
});

test("event fields: Docker's times (timeNano exact as JSON text), a token-safe subject", () => {
  const t = eventTimes(1_765_081_275_123);
  assert.equal(t.time, 1_765_081_275);
  assert.equal(JSON.stringify(t.timeNano), "1765081275123000000");
  assert.equal(
    eventSubject({ Type: "stack", Actor: { ID: "a.b*c", Attributes: {} } }),
    "$SHOAL.events.stack.a_b_c",
  );
  assert.deepEqual(autoscaleEvent({ id: "s1", name: "web" }, 2, 5, "cpu 91%").Action, "scale-up");
  assert.deepEqual(autoscaleEvent({ id: "s1", name: "web" }, 5, 2).Action, "scale-down");
});

/** How many committed batches wrote events, and the events they wrote. */
function eventBatches(store: ReturnType<typeof createMemoryStore>) {
  const batches: StoreEvent[][] = [];
  store.watch((events) => {
    const mine = events.filter((e) => e.kind === "event");
    if (mine.length > 0) batches.push(mine);
  });
  return batches;
}

test("event log: one store batch per turn, history bounded, listeners in order", async (t) => {
  const store = createMemoryStore();
  const batches = eventBatches(store);
  let now = 1_000_000;
  const log = new EventLog(store, { limit: 5, now: () => now, log: { warn: assert.fail } });
  t.after(() => log.stop());
  log.start();
  const heard: number[] = [];
  log.listen((e) => heard.push(e.seq));
  // Three services in three batches within one turn of the event loop: one write of events.
  await Promise.all(["a", "b", "c"].map((n) => store.update((tx) => tx.putService(service(n, n)))));
  await log.flushed();
  assert.equal(batches.length, 1);
  assert.equal(batches[0]!.length, 3);
  now += 1000;
  for (let i = 0; i < 4; i++) log.emit(autoscaleEvent({ id: "a", name: "a" }, i, i + 1));
  await log.flushed();
  assert.equal(batches.length, 2);
  assert.deepEqual(heard, [1, 2, 3, 4, 5, 6, 7]);
  const kept = store.view((tx) => tx.listEvents());
  assert.deepEqual(
    kept.map((e) => e.seq),
    [3, 4, 5, 6, 7],
    "the two oldest were deleted in the same batch",
  );
  assert.deepEqual(log.recent(), kept);
  assert.equal(kept[0]!.Action, "create");
  assert.equal(kept[1]!.time, 1001);
});

test("event log: a subscription gets the history and then the live events, each once", async (t) => {
  const store = createMemoryStore();
  const log = new EventLog(store, { log: { warn: assert.fail } });
  t.after(() => log.stop());
  log.start();
  await store.update((tx) => tx.putNode(node("n1")));
  await log.flushed();
  const live: number[] = [];
  const sub = log.subscribe((e) => live.push(e.seq));
  await store.update((tx) => tx.putNode({ ...node("n1"), status: "down" }));
  await log.flushed();
  sub.close();
  await store.update((tx) => tx.deleteNode("n1"));
  await log.flushed();
  assert.deepEqual(
    sub.history.map((e) => [e.seq, e.Action]),
    [[1, "join"]],
  );
  assert.deepEqual(live, [2]);
  assert.deepEqual(
    log.subscribe(() => {}, 1).history.map((e) => e.Action),
    ["down", "remove"],
    "after a seq",
  );
});

test("event log: the history survives a restart (snapshot and log) and seq goes on", async (t) => {
  const dir = tmpStoreDir(t);
  const open = () => openEmbeddedStore(dir, { onWarning: assert.fail });
  let store = await open();
  let log = new EventLog(store, { limit: 3, log: { warn: assert.fail } });
  log.start();
  await store.update((tx) => tx.putService(service("s1", "web")));
  await log.flushed();
  await store.compact(); // the first events are in the snapshot, later ones in the log
  await store.update((tx) => tx.putService(scaled(service("s1", "web"), 4)));
  await log.flushed();
  await log.stop();
  await store.close();

  store = await open();
  t.after(() => store.close());
  log = new EventLog(store, { limit: 3, log: { warn: assert.fail } });
  t.after(() => log.stop());
  log.start();
  assert.deepEqual(
    log.recent().map((e) => [e.seq, e.Action]),
    [
      [1, "create"],
      [2, "update"],
      [3, "scale"],
    ],
  );
  // The old value came back from the store too: removing it is a remove, with its name.
  await store.update((tx) => tx.deleteService("s1"));
  await log.flushed();
  assert.deepEqual(
    log.recent().map((e) => [e.seq, e.Action, e.Actor.Attributes["name"]]),
    [
      [2, "update", "web"],
      [3, "scale", "web"],
      [4, "remove", "web"],
    ],
  );
});

test("CLI: --since/--until as Docker reads them, Docker's line format, the query", () => {
  const now = Date.UTC(2026, 11, 7, 4, 30, 0);
  assert.equal(parseTimeFlag("--since", "10m", now), now - 600_000);
  assert.equal(parseTimeFlag("--since", "1h30m", now), now - 5_400_000);
  assert.equal(parseTimeFlag("--since", "1765081275", now), 1_765_081_275_000);
  assert.equal(parseTimeFlag("--since", "1765081275.5", now), 1_765_081_275_500);
  assert.equal(parseTimeFlag("--since", "0", now), 0, "0 is a timestamp, not a duration");
  assert.equal(
    parseTimeFlag("--since", "2026-12-07T04:21:15.123Z", now),
    Date.UTC(2026, 11, 7, 4, 21, 15, 123),
  );
  assert.equal(
    parseTimeFlag("--since", "2026-12-07T06:21:15+02:00", now),
    Date.UTC(2026, 11, 7, 4, 21, 15),
  );
  assert.equal(
    parseTimeFlag("--until", "2026-12-07", now),
    new Date(2026, 11, 7).getTime(),
    "no zone: local time",
  );
  assert.throws(
    () => parseTimeFlag("--since", "yesterday", now),
    (e: unknown) =>
      e instanceof UsageError &&
      e.message ===
        'invalid argument "yesterday" for "--since" flag: failed to parse value as time or duration: "yesterday"',
  );
  assert.equal(unixSeconds(1_765_081_275_005), "1765081275.005");
  const e = ev(
    { Type: "service", Action: "create", Actor: { ID: "s1", Attributes: { name: "web", a: "b" } } },
    9,
  );
  assert.equal(
    formatEvent({ ...e, ...eventTimes(1_765_081_275_123) }),
    "2025-12-07T04:21:15.123000000Z service create s1 (a=b, name=web)",
  );
  assert.equal(
    formatEvent({ ...e, Actor: { ID: "s1", Attributes: {} } }).endsWith("service create s1"),
    true,
  );
  const q = eventsQuery({ since: "1m", filter: ["type=task", "Service=web", "type=node"] }, now);
  assert.equal(q.get("since"), unixSeconds(now - 60_000));
  assert.equal(q.get("until"), null);
  assert.deepEqual(JSON.parse(q.get("filters")!), { type: ["task", "node"], service: ["web"] });
  assert.throws(() => eventsQuery({ filter: ["type"] }, now), /bad format of filter/);
});
