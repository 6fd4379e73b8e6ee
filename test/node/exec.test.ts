// The process driver's exec (what health checks run through): the task's environment and working
// directory, exit codes and output, a check killed (its whole group) at the timeout, and — as
// root with iproute2 — the task's network namespace.

import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, readlinkSync } from "node:fs";
import { join } from "node:path";
import type { Handle } from "../../src/node/drivers/driver.js";
import { findIp } from "../../src/node/drivers/netns.js";
import { ProcessDriver } from "../../src/node/drivers/process.js";
import { DriverSet } from "../../src/node/drivers/driver-set.js";
import { checkFor, defer, pidAlive, runSpec, taskId, tempDir } from "./helpers.js";

const fast = (): ProcessDriver => new ProcessDriver({ logCheckIntervalMs: 50, pollIntervalMs: 20 });
const env = { PATH: process.env["PATH"] ?? "/usr/bin:/bin" };

async function running(t: Parameters<typeof tempDir>[0], d: ProcessDriver): Promise<Handle> {
  const dir = join(tempDir(t), "task");
  mkdirSync(join(dir, "app"), { recursive: true });
  const h = await d.start(runSpec(dir, ["sh", "-c", "sleep 60"], { workdir: "app" }));
  defer(t, () => d.destroy(h));
  return h;
}

test("exec runs with the task's env and working dir; exit code and output", async (t) => {
  const d = fast();
  const h = await running(t, d);
  const r = await d.exec(h, {
    argv: ["/bin/sh", "-c", 'echo "$GREETING from $(pwd)"; exit 3'],
    env: { ...env, GREETING: "hello" },
    workdir: "app",
    timeoutMs: 5000,
  });
  assert.equal(r.exitCode, 3);
  assert.equal(r.timedOut, false);
  assert.match(r.output, /^hello from \/.*\/task\/app\n/);
  // stderr is kept too (a pipe of its own: in no set order with stdout, so on its own here).
  const err = await d.exec(h, {
    argv: ["/bin/sh", "-c", "echo oops >&2; exit 3"],
    env,
    workdir: "app",
    timeoutMs: 5000,
  });
  assert.deepEqual(err, { exitCode: 3, output: "oops\n", timedOut: false });
  const ok = await d.exec(h, { argv: ["true"], env, workdir: "app", timeoutMs: 5000 });
  assert.deepEqual(ok, { exitCode: 0, output: "", timedOut: false });
  // A missing command fails like the shell says (127), not as a thrown error.
  const missing = await d.exec(h, { argv: ["no-such-cmd"], env, workdir: "", timeoutMs: 5000 });
  assert.equal(missing.exitCode, 127);
  // Through a DriverSet, the handle's driver runs it.
  const set = new DriverSet({ process: d });
  assert.equal(
    (await set.exec(h, { argv: ["true"], env, workdir: "", timeoutMs: 5000 })).exitCode,
    0,
  );
});

test("a check that outlasts its timeout is killed, with its children", async (t) => {
  const d = fast();
  const h = await running(t, d);
  const dir = tempDir(t);
  const r = await d.exec(h, {
    argv: ["/bin/sh", "-c", `sleep 30 & echo $! > ${dir}/child; wait`],
    env,
    workdir: "",
    timeoutMs: 300,
  });
  assert.equal(r.timedOut, true);
  assert.equal(r.exitCode, -1);
  const child = Number(readFileSync(join(dir, "child"), "utf8"));
  assert.ok(await checkFor(5000, () => !pidAlive(child)), "the check's child was killed");
});

const IP = findIp();
const netnsSkip =
  process.platform !== "linux"
    ? "needs Linux"
    : process.getuid?.() !== 0
      ? "needs root"
      : IP === ""
        ? "needs iproute2's ip"
        : false;

test("exec runs in the task's network namespace", { skip: netnsSkip }, async (t) => {
  const d = fast();
  const h = await running(t, d);
  // A namespace of its own (not wired to any bridge), named as the driver names them.
  const ns = `shoal-${taskId().slice(-10)}`;
  execFileSync(IP, ["netns", "add", ns]);
  defer(t, () => execFileSync(IP, ["netns", "del", ns]));
  const own = { ...h, taskId: `${h.taskId}x`, net: { ns, address: "10.99.0.2", veth: "vx" } };
  const netOf = async (handle: Handle) =>
    (
      await d.exec(handle, {
        argv: ["/bin/sh", "-c", "readlink /proc/self/ns/net"],
        env,
        workdir: "",
        timeoutMs: 5000,
      })
    ).output.trim();
  const host = readlinkSync("/proc/self/ns/net");
  assert.equal(await netOf(h), host, "a host-network task's check sees the host's network");
  const inside = await netOf(own);
  assert.match(inside, /^net:\[\d+\]$/);
  assert.notEqual(inside, host, "the check ran in the task's namespace");
});
