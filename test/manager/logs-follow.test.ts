// `service logs -f` across nodes, over a real (in-process) message server: the dispatcher's
// followLogs against an agent session. The tail comes first, then new lines as they are
// written; a cancel ends the agent's stream; a follower that vanishes without a cancel is ended
// by the lease; a malformed request is refused.

import { test, describe, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { appendFileSync, mkdirSync, writeFileSync } from "node:fs";
import { connect, JSONCodec, nuid } from "nats";
import { createMemoryStore } from "../../src/store/memory.js";
import { Manager, defaultManagerOptions } from "../../src/manager/manager.js";
import { Dispatcher } from "../../src/manager/dispatcher.js";
import {
  AGENT_USER,
  logFollowSubject,
  logsSubject,
  nodeInbox,
  type LogsReply,
  type LogsRequest,
} from "../../src/api/bus.js";
import { logPath } from "../../src/node/drivers/logs.js";
import { checkFor } from "../helpers/servers.js";
import {
  BUS_AGENT_PASSWORD,
  BUS_SECRET,
  quietLog,
  startBus,
  startWorkerSession,
} from "../helpers/bus.js";

const codec = JSONCodec<unknown>();
/** A request to w1, answered on w1's own inbox (the only replies it may publish). */
const toW1 = () => ({ timeout: 3000, noMux: true, reply: nodeInbox("w1", nuid.next()) });

async function setup(t: TestContext) {
  const url = await startBus(t);
  const manager = new Manager(createMemoryStore(), quietLog, defaultManagerOptions());
  const dispatcher = new Dispatcher(manager, { natsUrl: url, clusterSecret: BUS_SECRET });
  await dispatcher.start();
  t.after(() => dispatcher.stop());
  const { session, agent } = await startWorkerSession(t, url, "w1", { followLeaseMs: 500 });
  const dir = agent.taskDir("t1");
  mkdirSync(dir, { recursive: true });
  writeFileSync(logPath(dir, "stdout"), "one\ntwo\nthree\n");
  return { url, dispatcher, session, stdout: logPath(dir, "stdout") };
}

describe("logs -f across nodes", () => {
  test("the tail, then new lines; a cancel ends the agent's stream", async (t) => {
    const { dispatcher, session, stdout } = await setup(t);
    const lines: string[] = [];
    const ac = new AbortController();
    // A failed check must not leave the follow running (it would keep the test process alive).
    t.after(() => ac.abort());
    const following = dispatcher.followLogs("w1", "t1", 2, ac.signal, (l) => lines.push(l));
    await checkFor(15_000, () => lines.length >= 2 || undefined);
    assert.deepEqual(lines, ["two", "three"]);
    appendFileSync(stdout, "four\n");
    await checkFor(15_000, () => lines.length >= 3 || undefined);
    appendFileSync(stdout, "five\nsix\n");
    await checkFor(15_000, () => lines.length >= 5 || undefined);
    assert.deepEqual(lines, ["two", "three", "four", "five", "six"]);
    assert.equal(session.followedLogs(), 1);

    ac.abort();
    await following;
    await checkFor(15_000, () => session.followedLogs() === 0 || undefined);
  });

  test("a follower that vanishes without a cancel is ended by the lease", async (t) => {
    const { url, session } = await setup(t);
    const raw = await connect({ servers: url, user: AGENT_USER, pass: BUS_AGENT_PASSWORD });
    t.after(() => raw.close());
    const got: string[] = [];
    const stream = logFollowSubject("w1", "vanishing");
    raw.subscribe(stream, {
      callback: (_e, m) => got.push(...(codec.decode(m.data) as LogsReply).lines),
    });
    const req: LogsRequest = { taskId: "t1", tail: -1, follow: stream };
    const ack = codec.decode(
      (await raw.request(logsSubject("w1"), codec.encode(req), toW1())).data,
    );
    assert.deepEqual(ack, { lines: [] });
    await checkFor(5000, () => got.length === 3 || undefined);
    assert.deepEqual(got, ["one", "two", "three"]);
    assert.equal(session.followedLogs(), 1);
    // Never renewed: gone after the 500 ms lease (checked on the 100 ms heartbeat).
    await checkFor(5000, () => session.followedLogs() === 0 || undefined);
  });

  test("a follow subject outside $SHOAL.logfollow.<its node>. or a malformed task id is refused", async (t) => {
    const { url, session } = await setup(t);
    const raw = await connect({ servers: url, user: AGENT_USER, pass: BUS_AGENT_PASSWORD });
    t.after(() => raw.close());
    for (const req of [
      { taskId: "t1", tail: -1, follow: "elsewhere.x" },
      { taskId: "../etc", tail: -1, follow: logFollowSubject("w2", "x") },
    ] satisfies LogsRequest[]) {
      const reply = codec.decode(
        (await raw.request(logsSubject("w1"), codec.encode(req), toW1())).data,
      );
      assert.deepEqual(reply, { lines: [], error: "refused" }, JSON.stringify(req));
    }
    assert.equal(session.followedLogs(), 0);
  });
});
