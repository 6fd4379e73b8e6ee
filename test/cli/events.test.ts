// `shoal events` against a real daemon (issue 16): a service's create, scale and rm with its
// tasks' states, filters, --since/--until over the history, the history after the daemon is
// killed and started again, following live events until Ctrl-C, and the read-only events user
// on the bus with the official NATS client.

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { connect, JSONCodec, type NatsConnection } from "nats";
import { SHOAL_BIN } from "../helpers/servers.js";
import { checkFor, startDaemon, type TestDaemon } from "../helpers/daemon.js";
import { defer } from "../helpers/defer.js";
import { unixSeconds } from "../../src/cli/events.js";
import type { ClusterEvent, EventCredentials } from "../../src/api/events.js";

const SLEEP = ["--", "sleep", "1000"];

/** The recorded events (`--until 0s`: history only), as printed lines. */
async function history(d: TestDaemon, ...args: string[]): Promise<string[]> {
  const r = await d.cli("events", "--since", "1h", "--until", "0s", ...args);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.split("\n").filter((l) => l !== "");
}

const count = (lines: string[], re: RegExp) => lines.filter((l) => re.test(l)).length;

test("events: a service's create, scale and rm with its tasks; filters; since/until; restart", async (t) => {
  const d = await startDaemon();
  defer(t, () => d.cleanup());
  const web = await d.cli("service", "create", "--name", "web", "--replicas", "2", "-d", ...SLEEP);
  assert.equal(web.code, 0, web.stderr);
  const webId = web.stdout.trim();
  await checkFor(30_000, async () => count(await history(d), /task running .*service=web/) === 2);
  assert.equal((await d.cli("service", "scale", "-d", "web=3")).code, 0);
  await checkFor(30_000, async () => count(await history(d), /task running .*service=web/) === 3);
  const t1 = Date.now();
  await checkFor(1000, () => Date.now() > t1 + 1); // events after this are stamped later
  const db = await d.cli("service", "create", "--name", "db", "-d", ...SLEEP);
  assert.equal(db.code, 0, db.stderr);
  assert.equal((await d.cli("service", "rm", "web")).code, 0);
  await checkFor(30_000, async () => count(await history(d), /task shutdown .*service=web/) === 3);

  const all = await history(d);
  const line =
    /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z (service|task|node|network|stack|manager|autoscale) \S+/;
  for (const l of all) assert.match(l, line);
  assert.equal(count(all, new RegExp(`service create ${webId} \\(name=web\\)$`)), 1);
  assert.equal(
    count(
      all,
      new RegExp(`service update ${webId} \\(name=web, replicas.new=3, replicas.old=2\\)`),
    ),
    1,
  );
  assert.equal(count(all, new RegExp(`service scale ${webId} .*replicas.new=3`)), 1);
  assert.equal(count(all, new RegExp(`service remove ${webId} \\(name=web\\)$`)), 1);
  assert.equal(count(all, / task running .*name=web\.\d.*node=/), 3, "tasks name their node");

  // Filters: one type; one service's events and its tasks'; unknown keys refused.
  const services = await history(d, "--filter", "type=service");
  assert.ok(services.length >= 5);
  assert.ok(
    services.every((l) => / service (create|update|scale|remove) /.test(l)),
    services.join("\n"),
  );
  const webTasks = await history(d, "--filter", "service=web", "--filter", "type=task");
  assert.equal(count(webTasks, /task running/), 3);
  assert.ok(
    webTasks.every((l) => / task .*service=web/.test(l)),
    webTasks.join("\n"),
  );
  const byId = await history(d, "--filter", `service=${webId}`, "--filter", "event=create");
  assert.deepEqual(byId.length, 1);
  const bad = await d.cli("events", "--until", "0s", "--filter", "image=x");
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /invalid filter 'image'/);
  const badTime = await d.cli("events", "--since", "soon");
  assert.equal(badTime.code, 1);
  assert.match(badTime.stderr, /failed to parse value as time or duration: "soon"/);

  // --since and --until over the history.
  const after = await history(d, "--since", unixSeconds(t1), "--filter", "event=create");
  assert.equal(count(after, /service create .*name=db/), 1);
  assert.equal(count(after, /service create .*name=web/), 0);
  const before = await d.cli("events", "--until", unixSeconds(t1), "--filter", "type=service");
  assert.equal(before.code, 0, before.stderr);
  assert.equal(count(before.stdout.split("\n"), /service create .*name=web/), 1);
  assert.equal(count(before.stdout.split("\n"), /name=db/), 0);

  // JSON: Docker's fields, seq only grows.
  const json = (await history(d, "--format", "json")).map((l) => JSON.parse(l) as ClusterEvent);
  assert.deepEqual(Object.keys(json[0]!), [
    "Type",
    "Action",
    "Actor",
    "scope",
    "time",
    "timeNano",
    "seq",
  ]);
  json.forEach((e, i) => i > 0 && assert.ok(e.seq > json[i - 1]!.seq));
  const tmpl = await history(d, "--format", "{{.Type}}/{{.Action}}", "--filter", "type=manager");
  assert.deepEqual(tmpl, ["manager/leader"]);

  // The history survives the daemon killed and started again; seq goes on.
  await d.kill9();
  await d.restart();
  const again = (await history(d, "--format", "json")).map((l) => JSON.parse(l) as ClusterEvent);
  assert.deepEqual(again.slice(0, json.length), json);
  const leaders = again.filter((e) => e.Type === "manager" && e.Action === "leader");
  assert.equal(leaders.length, 2, "a leader event per start");
  assert.ok(leaders[1]!.seq > json.at(-1)!.seq);
});

test("events: follow live until Ctrl-C; the events user on the bus only reads events", async (t) => {
  const d = await startDaemon();
  defer(t, () => d.cleanup());
  // Follow: the leader event from the history first, so the stream is on before the create.
  const child = spawn(
    process.execPath,
    [SHOAL_BIN, "events", "--since", "1h", "--filter", "type=manager", "--filter", "type=service"],
    { env: { ...process.env, SHOAL_DATA_DIR: d.dataDir, SHOAL_HOST: "" } },
  );
  let out = "";
  child.stdout.on("data", (c: Buffer) => (out += c.toString()));
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  defer(t, () => child.kill("SIGKILL"));
  await checkFor(15_000, () => / manager leader /.test(out));
  const live = await d.cli("service", "create", "--name", "live", "-d", ...SLEEP);
  assert.equal(live.code, 0, live.stderr);
  await checkFor(15_000, () => out.includes(`service create ${live.stdout.trim()} (name=live)`));
  child.kill("SIGINT");
  assert.equal(await exited, 0, "Ctrl-C ends it cleanly");

  // The events user: events arrive on $SHOAL.events.<type>.<id>; nothing else is allowed.
  const creds = await d.cli("events", "credentials");
  assert.equal(creds.code, 0, creds.stderr);
  const c = JSON.parse(creds.stdout) as EventCredentials;
  assert.equal(c.subject, "$SHOAL.events.>");
  const nc: NatsConnection = await connect({
    servers: c.urls,
    user: c.user,
    pass: c.password,
    reconnect: false,
  });
  defer(t, () => nc.close());
  const seen: string[] = [];
  void (async () => {
    for await (const s of nc.status()) {
      const ctx = s.permissionContext;
      if (s.type === "error" && ctx) seen.push(`${ctx.operation} ${ctx.subject}`);
    }
  })();
  const got: Array<{ subject: string; e: ClusterEvent }> = [];
  const codec = JSONCodec<ClusterEvent>();
  nc.subscribe("$SHOAL.events.>", {
    callback: (err, msg) => {
      if (!err) got.push({ subject: msg.subject, e: codec.decode(msg.data) });
    },
  });
  await nc.flush();
  const bus = await d.cli("service", "create", "--name", "bus1", "-d", ...SLEEP);
  assert.equal(bus.code, 0, bus.stderr);
  const id = bus.stdout.trim();
  await checkFor(15_000, () =>
    got.some((g) => g.subject === `$SHOAL.events.service.${id}` && g.e.Action === "create"),
  );
  await checkFor(15_000, () => got.some((g) => g.subject.startsWith("$SHOAL.events.task.")));
  nc.publish("$SHOAL.events.service.forged", codec.encode(got[0]!.e));
  nc.publish("hello");
  nc.subscribe("$SHOAL.assign.>");
  nc.subscribe("hello");
  await checkFor(10_000, () => seen.length >= 4);
  assert.deepEqual(seen.sort(), [
    "publish $SHOAL.events.service.forged",
    "publish hello",
    "subscription $SHOAL.assign.>",
    "subscription hello",
  ]);
});
