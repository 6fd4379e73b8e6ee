// Malformed bus messages, on a real in-process message server: the dispatcher (heartbeats,
// status) and an agent's session (assignments, log requests and controls) count a message that
// is not JSON or not its schema, log it at most once per few seconds, drop it, and keep their
// subscriptions: the next good message is handled.

import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { connect, JSONCodec, StringCodec, nuid } from "nats";
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
  type Assignments,
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
import { node, task } from "../store/helpers.js";

const codec = JSONCodec<unknown>();
const text = StringCodec();

function capture() {
  const warnings: string[] = [];
  return { warnings, log: { ...quietLog, warn: (m: string) => warnings.push(m) } };
}

describe("malformed bus messages", () => {
  test("the dispatcher drops bad heartbeats and status messages and keeps listening", async (t) => {
    const url = await startBus(t);
    const store = createMemoryStore();
    const { warnings, log } = capture();
    const manager = new Manager(store, log, defaultManagerOptions());
    await store.update((tx) => {
      tx.putNode(node("w1"));
      tx.putTask(
        task("t1", "s1", "w1", { status: { ...task("x", "s1").status, state: "assigned" } }),
      );
    });
    const dispatcher = new Dispatcher(manager, {
      natsUrl: url,
      clusterSecret: BUS_SECRET,
    });
    await dispatcher.start();
    defer(t, () => dispatcher.stop());
    const agent = await connect({ servers: url, user: AGENT_USER, pass: BUS_AGENT_PASSWORD });
    defer(t, () => agent.close());

    agent.publish(hbSubject("w1"), text.encode("not json {"));
    agent.publish(hbSubject("w1"), codec.encode({ nodeId: "w1" }));
    agent.publish(
      statusSubject("w1"),
      codec.encode({ nodeId: "w1", reports: [{ taskId: "t1", state: "exploded", message: "" }] }),
    );
    // Good messages after the bad ones are still handled (messages keep their order).
    agent.publish(
      statusSubject("w1"),
      codec.encode({ nodeId: "w1", reports: [{ taskId: "t1", state: "running", message: "" }] }),
    );
    agent.publish(hbSubject("w1"), codec.encode({ nodeId: "w1", hostname: "h", tasks: [] }));
    await agent.flush();
    await checkFor(
      5000,
      () =>
        (store.view((tx) => tx.getTask("t1")!.status.state) === "running" &&
          manager.liveness.silentFor("w1", Date.now()) < 5000) ||
        undefined,
    );
    assert.equal(dispatcher.dropped.count, 3);
    assert.equal(warnings.length, 1, "logged once, not once per message");
    assert.match(
      warnings[0]!,
      /^dropped a malformed message on \$SHOAL\.hb\.w1: heartbeat is not JSON/,
    );
  });

  test("a session drops bad assignments and log messages and keeps listening", async (t) => {
    const url = await startBus(t);
    const { warnings, log } = capture();
    const manager = await connect({ servers: url, user: AGENT_USER, pass: BUS_AGENT_PASSWORD });
    defer(t, () => manager.close());
    const { session, kernel } = await startWorkerSession(t, url, "w1", { log });

    manager.publish(assignSubject("w1"), text.encode("]]"));
    manager.publish(
      assignSubject("w1"),
      codec.encode({ nodeId: "w1", tasks: "all of them", endpoints: {}, heartbeatMs: 100 }),
    );
    manager.publish(logControlSubject("w1"), codec.encode({ stream: 5, op: "cancel" }));
    // A malformed log request is answered with the reason, not left to time out.
    const reply = await manager.request(logsSubject("w1"), codec.encode({ tail: 1 }), {
      timeout: 3000,
      noMux: true,
      reply: nodeInbox("w1", nuid.next()),
    });
    const refused = codec.decode(reply.data) as LogsReply;
    assert.deepEqual(refused.lines, []);
    assert.equal(refused.error, "logs request.taskId is required");

    const x = task("t1", "s1", "w1");
    const good: Assignments = {
      nodeId: "w1",
      tasks: [
        {
          ...x,
          spec: { ...x.spec, command: ["mock", "sleep"] },
          status: { ...x.status, state: "assigned" },
        },
      ],
      endpoints: {},
      heartbeatMs: 100,
    };
    manager.publish(assignSubject("w1"), codec.encode(good));
    await checkFor(5000, () => kernel.procs.size === 1 || undefined);
    assert.equal(session.dropped.count, 4);
    assert.equal(warnings.filter((w) => w.startsWith("dropped a malformed message")).length, 1);
  });
});
