// Control-plane replies never travel where applications can read them: a task's log lines,
// fetched by the dispatcher from the node that ran it, answer on a $SHOAL. inbox, so an
// anonymous application subscribed to `>` sees none of them (before: `_INBOX.` replies).

import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { connect } from "nats";
import { createMemoryStore } from "../../src/store/memory.js";
import { Manager, defaultManagerOptions } from "../../src/manager/manager.js";
import { Dispatcher } from "../../src/manager/dispatcher.js";
import { logPath } from "../../src/node/drivers/logs.js";
import { BUS_SECRET, quietLog, startBus, startWorkerSession } from "../helpers/bus.js";

test("an application subscribed to > reads no log reply", async (t) => {
  const url = await startBus(t);
  const dispatcher = new Dispatcher(
    new Manager(createMemoryStore(), quietLog, defaultManagerOptions()),
    { natsUrl: url, clusterSecret: BUS_SECRET },
  );
  await dispatcher.start();
  t.after(() => dispatcher.stop());
  const { agent } = await startWorkerSession(t, url, "w1");
  const dir = agent.taskDir("t1");
  mkdirSync(dir, { recursive: true });
  writeFileSync(logPath(dir, "stdout"), "secret line\n");

  const app = await connect({ servers: url }); // no credentials: the application user
  t.after(() => app.close());
  const seen: string[] = [];
  app.subscribe(">", { callback: (_err, msg) => seen.push(msg.subject) });
  await app.flush();

  assert.deepEqual(await dispatcher.fetchLogs("w1", "t1", -1), ["secret line"]);
  // The reply was routed before fetchLogs resolved; a round trip on the app's connection
  // comes after anything the server sent it then.
  await app.flush();
  assert.deepEqual(
    seen.filter((s) => s.startsWith("_INBOX.") || s.startsWith("$SHOAL.")),
    [],
    `the application saw: ${seen.join(", ")}`,
  );
});
