// Fuzzing the control bus (issue 9): random bytes, random JSON and mutated valid messages on
// every $SHOAL subject a node may publish to or receive on — heartbeats and status for the
// dispatcher, assignments, log requests and log control for a node's session. Nothing crashes,
// no subscription ends (a good heartbeat and a good log request are still answered after each
// run), and no message registers a node or changes one's role or address.

import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { connect, JSONCodec, nuid } from "nats";
import { createMemoryStore } from "../../src/store/memory.js";
import { Manager, defaultManagerOptions } from "../../src/manager/manager.js";
import { Dispatcher } from "../../src/manager/dispatcher.js";
import {
  AGENT_USER,
  assignSubject,
  hbSubject,
  logControlSubject,
  logsSubject,
  statusSubject,
  type LogsReply,
  nodeInbox,
} from "../../src/api/bus.js";
import { checkFor } from "../helpers/servers.js";
import { defer } from "../helpers/defer.js";
import {
  BUS_AGENT_PASSWORD,
  BUS_SECRET,
  quietLog,
  startBus,
  startWorkerSession,
} from "../helpers/bus.js";
import { propertyParams } from "../helpers/property.js";
import { node, task } from "../store/helpers.js";

const codec = JSONCodec<unknown>();

const SUBJECTS = [
  hbSubject("w1"),
  hbSubject("stranger"),
  statusSubject("w1"),
  statusSubject("stranger"),
  assignSubject("w1"),
  logsSubject("w1"),
  logControlSubject("w1"),
];

/** Valid-looking messages to mutate: one field replaced by any JSON value. */
const VALID: Record<string, unknown>[] = [
  { nodeId: "w1", hostname: "h", tasks: [] },
  { nodeId: "w1", reports: [{ taskId: "t1", state: "running", message: "" }] },
  { nodeId: "w1", tasks: [], endpoints: {}, heartbeatMs: 100 },
  { taskId: "t1", tail: 1 },
  { stream: "$SHOAL.logfollow.x", op: "cancel" },
];

const payload = fc.oneof(
  fc.uint8Array({ maxLength: 64 }),
  fc.jsonValue({ maxDepth: 3 }).map((v) => codec.encode(v)),
  fc
    .tuple(fc.constantFrom(...VALID), fc.string({ maxLength: 12 }), fc.jsonValue({ maxDepth: 2 }))
    .map(([base, key, value]) => {
      const keys = Object.keys(base);
      const k = keys[key.length % keys.length]!;
      return codec.encode({ ...base, [key.length % 3 === 0 ? key : k]: value });
    }),
);

test("random and mutated messages on every $SHOAL subject hurt nothing", async (t) => {
  const url = await startBus(t);
  const store = createMemoryStore();
  await store.update((tx) => {
    tx.putNode(node("w1", { addr: "10.0.0.2" }));
    tx.putTask(task("t1", "s1", "w1", { status: { ...task("x", "s1").status, state: "running" } }));
  });
  const manager = new Manager(store, quietLog, defaultManagerOptions());
  const dispatcher = new Dispatcher(manager, { natsUrl: url, clusterSecret: BUS_SECRET });
  await dispatcher.start();
  defer(t, () => dispatcher.stop());
  await startWorkerSession(t, url, "w1");
  const peer = await connect({ servers: url, user: AGENT_USER, pass: BUS_AGENT_PASSWORD });
  defer(t, () => peer.close());
  const before = store.view((tx) => tx.getNode("w1"))!;

  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.tuple(fc.constantFrom(...SUBJECTS), payload), { maxLength: 20 }),
      async (msgs) => {
        for (const [subject, data] of msgs) peer.publish(subject, data);
        // The dispatcher still handles heartbeats...
        const seen = dispatcher.heartbeats;
        peer.publish(hbSubject("w1"), codec.encode({ nodeId: "w1", hostname: "w1", tasks: [] }));
        await checkFor(5000, () => dispatcher.heartbeats > seen);
        // ...and the node's session still answers a log request.
        const reply = await peer.request(
          logsSubject("w1"),
          codec.encode({ taskId: "t1", tail: 1 }),
          { timeout: 3000, noMux: true, reply: nodeInbox("w1", nuid.next()) },
        );
        assert.equal((codec.decode(reply.data) as LogsReply).error, undefined);
        const nodes = store.view((tx) => tx.listNodes());
        assert.deepEqual(
          nodes.map((n) => n.id),
          ["w1"],
          "no message registers a node",
        );
        assert.equal(nodes[0]!.role, before.role);
        assert.equal(nodes[0]!.addr, before.addr);
      },
    ),
    propertyParams(40),
  );
});

test("an assignment asking for a heartbeat period outside 100 ms – 60 s is dropped", async (t) => {
  const url = await startBus(t);
  const { session } = await startWorkerSession(t, url, "w1");
  const peer = await connect({ servers: url, user: AGENT_USER, pass: BUS_AGENT_PASSWORD });
  defer(t, () => peer.close());
  const before = session.dropped.count;
  for (const heartbeatMs of [0.001, 99, 60_001]) {
    peer.publish(
      assignSubject("w1"),
      codec.encode({ nodeId: "w1", tasks: [], endpoints: {}, heartbeatMs }),
    );
  }
  await checkFor(5000, () => session.dropped.count === before + 3);
});
