// Integration tests of the orchestrator on one machine: a real `shoal daemon`, driven by the
// real CLI, running real task processes.

import { test } from "node:test";
import assert from "node:assert/strict";
import { request } from "node:http";
import {
  apiAt,
  startDaemon,
  checkFor,
  watchCounters,
  HTTP_TASK,
  type TestDaemon,
} from "../helpers/daemon.js";
import { freePort } from "../helpers/cluster.js";
import { execFileSync } from "node:child_process";
import { DockerDriver } from "../../src/node/drivers/docker.js";
import type { Service, Task } from "../../src/api/types.js";

function apiTasks(d: TestDaemon, service: string): Promise<Task[]> {
  return apiAt<Task[]>(d.dataDir, `/v1/tasks?service=${service}`);
}

function running(ts: Task[]): Task[] {
  return ts.filter((t) => t.status.state === "running" && t.desiredState === "running");
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function httpGet(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path: "/", agent: false }, (res) => {
      let body = "";
      res.on("data", (c: Buffer) => (body += c.toString()));
      res.on("end", () => resolve(body));
    });
    req.on("error", reject);
    req.end();
  });
}

test("replicated HTTP service: create 3, publish, scale to 10 and 2, kill -9 a task, update env", async (t) => {
  const d = await startDaemon();
  t.after(() => d.cleanup());
  const published = await freePort();
  const created = await d.cli(
    "service",
    "create",
    "--name",
    "web",
    "--replicas",
    "3",
    "--restart-delay",
    "0s",
    "-p",
    `${published}:8000`,
    "--",
    ...HTTP_TASK,
  );
  assert.equal(created.code, 0, created.stderr + created.stdout);
  assert.match(created.stdout, /overall progress: 3 out of 3 tasks/);
  assert.match(created.stdout, /verify: Service web converged/);
  let ts = await apiTasks(d, "web");
  assert.equal(running(ts).length, 3);
  assert.deepEqual(
    running(ts)
      .map((x) => x.slot)
      .sort(),
    [1, 2, 3],
  );

  // The routing mesh balances new connections across the tasks.
  const seen = new Set<string>();
  for (let i = 0; i < 9; i++) seen.add((await httpGet(published)).split(" ")[0]!);
  assert.deepEqual([...seen].sort(), ["1", "2", "3"]);

  const ls = await d.cli("service", "ls");
  assert.match(ls.stdout, /^ID\s+NAME\s+MODE\s+REPLICAS\s+IMAGE\/COMMAND\s+PORTS/);
  assert.match(ls.stdout, new RegExp(`web\\s+replicated\\s+3/3\\s+.*\\*:${published}->8000/tcp`));

  assert.equal((await d.cli("service", "scale", "web=10")).code, 0);
  ts = await apiTasks(d, "web");
  assert.equal(running(ts).length, 10);
  assert.equal((await d.cli("service", "scale", "web=2")).code, 0);
  await checkFor(
    20_000,
    async () => (await apiTasks(d, "web")).filter((x) => x.status.state === "running").length === 2,
  );
  ts = await apiTasks(d, "web");
  // Swarm deletes scaled-down tasks outright.
  assert.deepEqual(ts.map((x) => x.slot).sort(), [1, 2]);

  // kill -9 one task process: a replacement takes its slot.
  const victim = running(ts).find((x) => x.slot === 1)!;
  process.kill(victim.status.pid!, "SIGKILL");
  await checkFor(15_000, async () => {
    const now = await apiTasks(d, "web");
    return (
      running(now).some((x) => x.slot === 1 && x.id !== victim.id) && running(now).length === 2
    );
  });
  const afterKill = await apiTasks(d, "web");
  const old = afterKill.find((x) => x.id === victim.id)!;
  assert.equal(old.status.state, "failed");
  assert.equal(old.status.err, "task: non-zero exit (137)");
  const ps = await d.cli("service", "ps", "web");
  assert.match(ps.stdout, /\\_ web\.1/);
  assert.match(ps.stdout, /"task: non-zero exit \(137\)"/);

  // Updating an env var replaces every task.
  const before = new Set(running(afterKill).map((x) => x.id));
  const upd = await d.cli("service", "update", "--env-add", "GREETING=hi", "web");
  assert.equal(upd.code, 0, upd.stderr);
  await checkFor(20_000, async () => {
    const now = running(await apiTasks(d, "web"));
    return (
      now.length === 2 && now.every((x) => !before.has(x.id) && x.spec.env["GREETING"] === "hi")
    );
  });
});

test("rolling update: one slot at a time, stop-first, with the update delay between slots", async (t) => {
  const d = await startDaemon();
  t.after(() => d.cleanup());
  const created = await d.cli(
    "service",
    "create",
    "--name",
    "roll",
    "--replicas",
    "3",
    "--update-delay",
    "400ms",
    "--",
    "sleep",
    "100000",
  );
  assert.equal(created.code, 0, created.stderr + created.stdout);
  const pretty = await d.cli("service", "inspect", "--pretty", "roll");
  assert.match(
    pretty.stdout,
    /UpdateConfig:\n Parallelism:\t1\n Delay:\t\t400ms\n On failure:\tpause\n Monitoring Period: 5s\n Max failure ratio: 0\n Update order: {6}stop-first/,
  );

  const upd = await d.cli("service", "update", "--env-add", "V=2", "roll");
  assert.equal(upd.code, 0, upd.stderr + upd.stdout);
  assert.match(upd.stdout, /overall progress: 3 out of 3 tasks/);
  const ts = await apiTasks(d, "roll");
  const fresh = running(ts)
    .filter((x) => x.specVersion === 2)
    .sort((a, b) => a.createdAt - b.createdAt);
  assert.equal(fresh.length, 3);
  for (const [i, x] of fresh.entries()) {
    // stop-first: the slot's old task had ended before its replacement was created.
    const old = ts.find((o) => o.slot === x.slot && o.specVersion === 1)!;
    assert.equal(old.status.state, "shutdown");
    assert.ok(old.status.timestamp <= x.createdAt, `slot ${x.slot}: old ended after new created`);
    // One worker: the next slot starts no sooner than the delay after the previous one ran.
    if (i > 0) {
      const prev = fresh[i - 1]!;
      const oldNext = ts.find((o) => o.slot === x.slot && o.specVersion === 1)!;
      assert.ok(
        oldNext.updatedAt >= prev.status.timestamp + 400,
        `slot ${x.slot} was stopped ${oldNext.updatedAt - prev.status.timestamp} ms after slot ${prev.slot} ran`,
      );
    }
  }

  // Bad settings are refused and change nothing.
  const bad = await d.cli("service", "update", "--update-order", "sideways", "roll");
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /invalid update order "sideways": stop-first or start-first/);
  const neg = await d.cli("service", "update", "--update-parallelism", "-1", "roll");
  assert.notEqual(neg.code, 0);
  assert.match(neg.stderr, /spec\.update\.parallelism must be >= 0/);
});

test("a failing update pauses; service rollback; --update-failure-action rollback", async (t) => {
  const d = await startDaemon();
  t.after(() => d.cleanup());
  // The update delay keeps the worker waiting after a replacement runs, so the failure of the
  // first one is seen before a second slot is touched; the rollback delay (a rollback uses the
  // rollback settings of the spec it goes back to) keeps an automatic rollback in progress long
  // enough for the CLI, which polls, to see it started.
  const created = await d.cli(
    "service",
    "create",
    "--name",
    "flaky",
    "--replicas",
    "3",
    "--update-delay",
    "2s",
    "--rollback-delay",
    "2s",
    "--",
    "sleep",
    "100000",
  );
  assert.equal(created.code, 0, created.stderr + created.stdout);
  const svc = () => apiAt<Service>(d.dataDir, "/v1/services/flaky");

  // The new command exits at once: the first replacement fails, the update pauses, and the
  // two other slots keep their old tasks.
  const upd = await d.cli("service", "update", "flaky", "--", "sh", "-c", "exit 3");
  assert.equal(upd.code, 1, upd.stdout + upd.stderr);
  assert.match(upd.stderr, /update paused due to failure or early termination of task \w+/);
  const paused = await svc();
  assert.equal(paused.updateStatus?.state, "paused");
  assert.equal(paused.version, 2);
  let ts = await apiTasks(d, "flaky");
  assert.equal(running(ts).filter((x) => x.specVersion === 1).length, 2);
  const pretty = await d.cli("service", "inspect", "--pretty", "flaky");
  assert.match(pretty.stdout, /UpdateStatus:\n State:\t\tpaused\n/);

  // service rollback: the previous spec comes back everywhere.
  const rb = await d.cli("service", "rollback", "flaky");
  assert.equal(rb.code, 0, rb.stdout + rb.stderr);
  assert.match(rb.stdout, /rollback: rollback complete/);
  ts = await apiTasks(d, "flaky");
  assert.equal(running(ts).length, 3);
  assert.ok(running(ts).every((x) => x.spec.command.join(" ") === "sleep 100000"));
  await checkFor(5000, async () => (await svc()).updateStatus?.state === "rollback_completed");

  // With --update-failure-action rollback the manager rolls back by itself.
  const auto = await d.cli(
    "service",
    "update",
    "--update-failure-action",
    "rollback",
    "flaky",
    "--",
    "sh",
    "-c",
    "exit 4",
  );
  assert.equal(auto.code, 0, auto.stdout + auto.stderr);
  assert.match(
    auto.stdout,
    /rollback: update rolled back due to failure or early termination of task/,
  );
  await checkFor(10_000, async () => (await svc()).updateStatus?.state === "rollback_completed");
  ts = await apiTasks(d, "flaky");
  assert.equal(running(ts).length, 3);
  assert.ok(running(ts).every((x) => x.spec.command.join(" ") === "sleep 100000"));

  // Nothing to roll back to on a service never updated.
  await d.cli("service", "create", "-d", "--name", "fresh", "--", "sleep", "100000");
  const none = await d.cli("service", "rollback", "fresh");
  assert.notEqual(none.code, 0);
  assert.match(none.stderr, /service fresh does not have a previous spec to roll back to/);
});

test("a docker-driver service: containers from a local image, logs, replacement", async (t) => {
  const docker = new DockerDriver();
  if (!(await docker.available())) return t.skip("no Docker Engine reachable (run .ci/docker.sh)");
  const d = await startDaemon();
  t.after(() => d.cleanup());
  // The drivers arrive with the node's first heartbeat.
  let drivers: string[] | undefined;
  await checkFor(10_000, async () => {
    drivers = (await apiAt<Array<{ drivers?: string[] }>>(d.dataDir, "/v1/nodes"))[0]!.drivers;
    return drivers !== undefined;
  });
  assert.deepEqual(drivers, ["process", "docker"]);
  const nodeInspect = await d.cli("node", "inspect", "--pretty", "self");
  assert.match(nodeInspect.stdout, /Plugins:\n Task drivers:\t\tprocess, docker\n/);
  const created = await d.cli(
    "service",
    "create",
    "--name",
    "boxed",
    "--replicas",
    "2",
    "--restart-delay",
    "0s",
    "--image",
    "shoal-test/busybox:latest",
    "--",
    "sh",
    "-c",
    "echo hi from $SHOAL_TASK_SLOT; exec sleep 1000",
  );
  assert.equal(created.code, 0, created.stderr + created.stdout);
  const ls = await d.cli("service", "ls");
  assert.match(ls.stdout, /boxed\s+replicated\s+2\/2\s+shoal-test\/busybox:latest/);
  await checkFor(10_000, async () => {
    const out = (await d.cli("service", "logs", "boxed")).stdout;
    return /\| hi from 1$/m.test(out) && /\| hi from 2$/m.test(out);
  });
  // A container killed from outside is replaced, like a process.
  const victim = running(await apiTasks(d, "boxed"))[0]!;
  execFileSync("docker", ["kill", `shoal-${victim.id}`], { stdio: "ignore" });
  await checkFor(15_000, async () => {
    const ts = await apiTasks(d, "boxed");
    return running(ts).length === 2 && !running(ts).some((x) => x.id === victim.id);
  });
  // An image the node does not have: the task fails with the driver's message.
  await d.cli("service", "create", "-d", "--name", "nope", "--image", "no/such:image");
  await checkFor(10_000, async () =>
    (await apiTasks(d, "nope")).some((x) =>
      /image "no\/such:image" is not on this node/.test(x.status.err),
    ),
  );
  assert.equal((await d.cli("service", "rm", "boxed", "nope")).code, 0);
});

test("on-failure with max attempts 3: the first run and 3 restarts, then it stops", async (t) => {
  const d = await startDaemon();
  t.after(() => d.cleanup());
  const r = await d.cli(
    "service",
    "create",
    "-d",
    "--name",
    "crash",
    "--restart-condition",
    "on-failure",
    "--restart-max-attempts",
    "3",
    "--restart-delay",
    "0s",
    "--",
    "sh",
    "-c",
    "exit 1",
  );
  assert.equal(r.code, 0, r.stderr);
  await checkFor(
    20_000,
    async () =>
      (await apiTasks(d, "crash")).filter((x) => x.status.state === "failed").length === 4,
  );
  // Three more reconcile passes, none of which may start a fifth task.
  await watchCounters(d.dataDir, { passes: 3 });
  const ts = await apiTasks(d, "crash");
  assert.equal(ts.length, 4);
  assert.ok(
    ts.every((x) => x.status.state === "failed" && x.status.err === "task: non-zero exit (1)"),
  );
  const ls = await d.cli("service", "ls");
  assert.match(ls.stdout, /crash\s+replicated\s+0\/1/);
});

test("a command that does not exist fails with the OS error and keeps being retried", async (t) => {
  const d = await startDaemon();
  t.after(() => d.cleanup());
  const r = await d.cli(
    "service",
    "create",
    "-d",
    "--name",
    "nope",
    "--restart-delay",
    "0s",
    "--",
    "no-such-command-xyz",
  );
  assert.equal(r.code, 0, r.stderr);
  await checkFor(
    15_000,
    async () => (await apiTasks(d, "nope")).filter((x) => x.status.state === "failed").length >= 2,
  );
  const failed = (await apiTasks(d, "nope")).find((x) => x.status.state === "failed")!;
  assert.match(failed.status.err, /no-such-command-xyz/);
});

test("bad input is refused and changes nothing", async (t) => {
  const d = await startDaemon();
  t.after(() => d.cleanup());
  const bogus = await d.cli("service", "create", "--bogus", "x", "--", "sleep", "1");
  assert.notEqual(bogus.code, 0);
  assert.match(bogus.stderr, /unknown flag: --bogus/);
  const reps = await d.cli("service", "create", "--replicas", "three", "--", "sleep", "1");
  assert.notEqual(reps.code, 0);
  assert.match(reps.stderr, /invalid argument "three" for "--replicas"/);
  assert.equal(
    (await d.cli("service", "create", "-d", "--name", "a", "--", "sleep", "100")).code,
    0,
  );
  const dup = await d.cli("service", "create", "-d", "--name", "a", "--", "sleep", "100");
  assert.notEqual(dup.code, 0);
  assert.match(dup.stderr, /already in use/);
  const missing = await d.cli("service", "scale", "nosuch=2");
  assert.notEqual(missing.code, 0);
  assert.match(missing.stderr, /service nosuch not found/);
  const ls = await d.cli("service", "ls", "-q");
  assert.equal(ls.stdout.trim().split("\n").length, 1);
});

test("kill -9 of the daemon: restart loses nothing and duplicates nothing", async (t) => {
  const d = await startDaemon();
  t.after(() => d.cleanup());
  assert.equal(
    (await d.cli("service", "create", "--name", "sleepy", "--replicas", "3", "--", "sleep", "1000"))
      .code,
    0,
  );
  const before = running(await apiTasks(d, "sleepy"));
  assert.equal(before.length, 3);
  await d.kill9();
  // The task processes survive the daemon.
  assert.ok(before.every((x) => pidAlive(x.status.pid!)));
  await d.restart();
  await checkFor(10_000, async () => running(await apiTasks(d, "sleepy")).length === 3);
  // Three passes and a heartbeat of the restarted node: none may replace or duplicate a task.
  await watchCounters(d.dataDir, { passes: 3, heartbeats: 2 });
  const after = running(await apiTasks(d, "sleepy"));
  assert.equal(after.length, 3);
  // The same tasks and processes: adopted, not replaced, not duplicated.
  assert.deepEqual(after.map((x) => x.id).sort(), before.map((x) => x.id).sort());
  assert.deepEqual(after.map((x) => x.status.pid).sort(), before.map((x) => x.status.pid).sort());
  const all = await apiTasks(d, "sleepy");
  assert.equal(all.length, 3);
});

test("service logs: lines of every task with their task prefix, --tail", async (t) => {
  const d = await startDaemon();
  t.after(() => d.cleanup());
  const r = await d.cli(
    "service",
    "create",
    "--name",
    "talker",
    "--replicas",
    "2",
    "--",
    "sh",
    "-c",
    'echo "hello from $SHOAL_TASK_SLOT"; echo "second $SHOAL_TASK_SLOT"; sleep 1000',
  );
  assert.equal(r.code, 0, r.stderr);
  await checkFor(10_000, async () => {
    const out = (await d.cli("service", "logs", "talker")).stdout;
    return /second 1/.test(out) && /second 2/.test(out);
  });
  const logs = (await d.cli("service", "logs", "talker")).stdout;
  assert.match(logs, /^talker\.1\.[0-9a-z]{12}@\S+\s+\| hello from 1$/m);
  assert.match(logs, /^talker\.2\.[0-9a-z]{12}@\S+\s+\| hello from 2$/m);
  const tail = (await d.cli("service", "logs", "--tail", "1", "talker")).stdout.trim().split("\n");
  assert.equal(tail.length, 2);
  assert.ok(tail.every((l) => /\| second [12]$/.test(l)));
});

test("a published port already taken, node ls, info, join-token", async (t) => {
  const d = await startDaemon();
  t.after(() => d.cleanup());
  const { createServer } = await import("node:net");
  const blocker = createServer();
  const port = await new Promise<number>((resolve) =>
    blocker.listen(0, "127.0.0.1", () => {
      const a = blocker.address();
      resolve(typeof a === "object" && a ? a.port : 0);
    }),
  );
  t.after(() => blocker.close());
  const taken = await d.cli(
    "service",
    "create",
    "-d",
    "--name",
    "p",
    "-p",
    `${port}:80`,
    "--",
    "sleep",
    "100",
  );
  assert.notEqual(taken.code, 0);
  assert.match(taken.stderr, new RegExp(`published port ${port} is already in use`));
  assert.equal((await d.cli("service", "ls", "-q")).stdout.trim(), "");

  const nodes = await d.cli("node", "ls");
  assert.match(
    nodes.stdout,
    /^ID\s+HOSTNAME\s+STATUS\s+AVAILABILITY\s+MANAGER STATUS\s+ENGINE VERSION/,
  );
  assert.match(nodes.stdout, /^[0-9a-z]{25} \*\s+\S+\s+Ready\s+Active\s+Leader\s+/m);
  const info = await d.cli("info");
  assert.match(info.stdout, /Swarm: active/);
  const worker = await d.cli("swarm", "join-token", "-q", "worker");
  assert.match(worker.stdout.trim(), /^SHOAL-1-[0-9a-z]{50}-[0-9a-z]{25}$/);
  const manager = await d.cli("swarm", "join-token", "-q", "manager");
  // Same CA digest, different secret.
  assert.equal(manager.stdout.split("-")[2], worker.stdout.split("-")[2]);
  assert.notEqual(manager.stdout.trim(), worker.stdout.trim());
  const rotated = await d.cli("swarm", "join-token", "-q", "--rotate", "worker");
  assert.notEqual(rotated.stdout.trim(), worker.stdout.trim());
  const upd = await d.cli("swarm", "update", "--heartbeat-period", "2s");
  assert.equal(upd.code, 0, upd.stderr);
  assert.match(upd.stdout, /Swarm updated\./);
  const badUpd = await d.cli("swarm", "update", "--heartbeat-period", "1ms");
  assert.notEqual(badUpd.code, 0);
  assert.match(badUpd.stderr, /heartbeatMs must be between 100 ms and 60 s/);
});
