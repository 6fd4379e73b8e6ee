// Each worker has a bus user of its own (issue 9 item 1), and its certificate is its identity
// on the bus (issue 14). Before, every worker shared the agent user: with one worker's password
// a forged `$SHOAL.assign.<other node>` ran a command as root on another node, forged status
// failed another node's task, and forged heartbeats kept a cut-off node Ready. Against a real
// daemon, with the certificate its join endpoint signs for a worker: every forgery is refused by
// the message server, a body naming another node is dropped by the dispatcher, and `node rm`
// cuts the node's connection off at once and refuses its certificate from then on.

import { test } from "node:test";
import assert from "node:assert/strict";
import { connect, ErrorCode, JSONCodec, type NatsConnection, type NatsError } from "nats";
import {
  AGENT_USER,
  assignSubject,
  hbSubject,
  logsSubject,
  statusSubject,
} from "../../src/api/bus.js";
import type { Info } from "../../src/api/http.js";
import type { Node } from "../../src/api/types.js";
import { joinManager } from "../../src/daemon/worker-daemon.js";
import { nodeTls } from "../helpers/pki.js";
import { apiAt, checkFor, startDaemon } from "../helpers/daemon.js";
import { defer } from "../helpers/defer.js";

const codec = JSONCodec<unknown>();

interface Violation {
  op: string;
  subject: string;
}

/** The permission violations the server reported to this connection. */
function violations(nc: NatsConnection): Violation[] {
  const seen: Violation[] = [];
  void (async () => {
    for await (const s of nc.status()) {
      const ctx = s.permissionContext;
      if (s.type === "error" && ctx) seen.push({ op: ctx.operation, subject: ctx.subject });
    }
  })();
  return seen;
}

test("a worker's bus user reaches its own subjects only and dies with its node", async (t) => {
  const d = await startDaemon();
  defer(t, () => d.cleanup());
  const info = await apiAt<Info>(d.dataDir, "/v1/info");
  const jt = await d.cli("swarm", "join-token", "worker");
  const [, token, addr] = /--token (\S+) (\S+)/.exec(jt.stdout) ?? [];
  assert.ok(token && addr, jt.stdout);

  const j1 = await joinManager(addr, { token, hostname: "attacker", addr: "127.0.0.1" });
  const j2 = await joinManager(addr, { token, hostname: "victim", addr: "127.0.0.2" });
  const [mine, victim] = [j1.answer, j2.answer];
  const asNode = (j: typeof j1) => ({
    servers: j.answer.natsUrls,
    tls: nodeTls({ ca: j.answer.caCert, cert: j.answer.cert, key: j.keyPem }),
    reconnect: false,
  });
  assert.ok(!("agentPassword" in mine), "the agent user's password is not handed to workers");
  assert.notEqual(mine.busUser, victim.busUser);
  // The node's user cannot be used without its certificate (on the plain port).
  await assert.rejects(
    connect({ servers: info.natsUrl, user: mine.busUser, pass: "", reconnect: false }),
    (e: NatsError) => e.code === ErrorCode.AuthorizationViolation,
  );
  await assert.rejects(
    connect({ servers: info.natsUrl, user: AGENT_USER, pass: "", reconnect: false }),
    (e: NatsError) => e.code === ErrorCode.AuthorizationViolation,
  );

  const nc = await connect(asNode(j1));
  defer(t, () => nc.close());
  const seen = violations(nc);

  // Its own heartbeat reaches the dispatcher.
  const beats = (await apiAt<Info>(d.dataDir, "/v1/info")).heartbeats;
  nc.publish(
    hbSubject(mine.nodeId),
    codec.encode({ nodeId: mine.nodeId, hostname: "a", tasks: [] }),
  );
  await checkFor(10_000, async () => (await apiAt<Info>(d.dataDir, "/v1/info")).heartbeats > beats);

  // Every forgery on another node's subject is refused by the server...
  const forged = [
    assignSubject(victim.nodeId),
    assignSubject(info.nodeId),
    statusSubject(victim.nodeId),
    hbSubject(victim.nodeId),
    logsSubject(victim.nodeId),
    `$SHOAL.inbox.${victim.nodeId}.x`,
    // A manager's work: a write forwarded to the leader's API (managers.ts).
    `$SHOAL.mgr.${info.nodeId}.api`,
  ];
  const task = { taskId: "t1", state: "failed", message: "forged" };
  for (const s of forged) {
    nc.publish(
      s,
      codec.encode({ nodeId: victim.nodeId, hostname: "v", tasks: [task], reports: [task] }),
    );
  }
  // ...and so is listening to another node's or the whole control plane.
  const subs = [assignSubject(victim.nodeId), "$SHOAL.>", "$SHOAL.hb.*", "_INBOX.>"];
  for (const s of subs) nc.subscribe(s);
  await checkFor(10_000, () => seen.length >= forged.length + subs.length);
  assert.deepEqual(
    seen.map((v) => `${v.op} ${v.subject}`).sort(),
    [...forged.map((s) => `publish ${s}`), ...subs.map((s) => `subscription ${s}`)].sort(),
  );

  // A heartbeat on its own subject naming the victim is dropped by the dispatcher, so nothing
  // keeps the silent victim Ready: it goes down like any node that stopped beating.
  const keepAlive = setInterval(
    () =>
      nc.publish(
        hbSubject(mine.nodeId),
        codec.encode({ nodeId: victim.nodeId, hostname: "v", tasks: [] }),
      ),
    200,
  );
  defer(t, () => clearInterval(keepAlive));
  await checkFor(30_000, async () => {
    const nodes = await apiAt<Node[]>(d.dataDir, "/v1/nodes");
    return nodes.find((n) => n.id === victim.nodeId)?.status === "down";
  });
  clearInterval(keepAlive);

  // Removing the node cuts its connection off at once and its credentials stop working.
  const closed = nc.closed();
  const rm = await d.cli("node", "rm", "--force", mine.nodeId);
  assert.equal(rm.code, 0, rm.stderr);
  const err = (await closed) as NatsError | undefined;
  assert.equal(err?.code, ErrorCode.AuthorizationViolation, String(err));
  // A new connection with its certificate maps to no user any more.
  await assert.rejects(
    connect(asNode(j1)),
    (e: NatsError) => e.code === ErrorCode.AuthorizationViolation,
  );
  // The victim's certificate still works.
  const other = await connect(asNode(j2));
  await other.close();
});
