// Process-driver specifics beyond the conformance suite: exec-like errors for paths, the
// wrapper's exit status file, the task's process group (stop reaches children, leftovers die
// with the task), stdin, inspect's numbers, and the real thing for recovery: an agent process
// killed with SIGKILL while its task keeps running, then adopted by a new driver.

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Handle } from "../../src/node/drivers/driver.js";
import { ProcessDriver, resolveCommand, statusFromCode } from "../../src/node/drivers/process.js";
import { checkFor, defer, pidAlive, readLog, runSpec, tempDir, waitForLine } from "./helpers.js";

const sh = (script: string): string[] => ["sh", "-c", script];
const fast = (): ProcessDriver => new ProcessDriver({ logCheckIntervalMs: 50, pollIntervalMs: 20 });

test("command paths fail like exec: missing, not executable, a directory", async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, "script.sh"), "#!/bin/sh\necho hi\n");
  chmodSync(join(dir, "script.sh"), 0o644);
  const d = fast();
  const cases: Array<[string, string, string]> = [
    ["./nope", "ERR_COMMAND_NOT_FOUND", 'exec: "./nope": stat ./nope: no such file or directory'],
    ["./script.sh", "ERR_PERMISSION_DENIED", 'exec: "./script.sh": permission denied'],
    [dir, "ERR_PERMISSION_DENIED", `exec: ${JSON.stringify(dir)}: permission denied`],
    ["nope-nope", "ERR_COMMAND_NOT_FOUND", 'exec: "nope-nope": executable file not found in $PATH'],
  ];
  for (const [cmd, code, message] of cases) {
    await assert.rejects(d.start(runSpec(join(dir, "task"), [cmd], { workdir: dir })), {
      code,
      message,
    });
  }
  // A file on PATH that is not executable is skipped, as exec does.
  assert.throws(() => resolveCommand("script.sh", dir, "/"), {
    message: 'exec: "script.sh": executable file not found in $PATH',
  });
  chmodSync(join(dir, "script.sh"), 0o755);
  assert.equal(resolveCommand("script.sh", `/nonexistent:${dir}`, "/"), join(dir, "script.sh"));
});

test("a relative command runs from the workdir; no PATH means the default PATH", async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, "hello.sh"), "#!/bin/sh\necho hello from $0\n");
  chmodSync(join(dir, "hello.sh"), 0o755);
  const d = fast();
  const a = await d.start(runSpec(join(dir, "a"), ["./hello.sh"], { workdir: dir }));
  assert.equal((await d.wait(a)).exitCode, 0);
  assert.equal(readLog(join(dir, "a")), `hello from ${join(dir, "hello.sh")}\n`);

  const b = await d.start(runSpec(join(dir, "b"), sh("exit 4"), { env: {} }));
  assert.equal((await d.wait(b)).exitCode, 4);
});

test("the wrapper records the exit status and its shell says nothing in the logs", async (t) => {
  const d = fast();
  const dir = join(tempDir(t), "task");
  const h = await d.start(runSpec(dir, sh("exit 9")));
  assert.equal((await d.wait(h)).exitCode, 9);
  assert.equal(readFileSync(join(dir, "exit_code"), "utf8"), "9\n");

  const dir2 = join(tempDir(t), "task");
  const h2 = await d.start(runSpec(dir2, sh("echo ready; exec sleep 60")));
  await waitForLine(dir2, "ready");
  await d.stop(h2, 5000);
  assert.equal((await d.wait(h2)).signal, "SIGTERM");
  assert.equal(readFileSync(join(dir2, "exit_code"), "utf8"), "143\n");
  assert.equal(readLog(dir2, "stderr"), "", "no 'Terminated' from the wrapper");
});

test("statusFromCode reads shell statuses", () => {
  assert.deepEqual(statusFromCode(0), { exitCode: 0, signal: null, error: null });
  assert.deepEqual(statusFromCode(128), { exitCode: 128, signal: null, error: null });
  assert.deepEqual(statusFromCode(137), { exitCode: null, signal: "SIGKILL", error: null });
  assert.deepEqual(statusFromCode(130), { exitCode: null, signal: "SIGINT", error: null });
  assert.deepEqual(statusFromCode(255), { exitCode: 255, signal: null, error: null });
});

test("the task's stdin is /dev/null", async (t) => {
  const d = fast();
  const dir = join(tempDir(t), "task");
  const h = await d.start(runSpec(dir, sh("cat; echo done")));
  assert.equal((await d.wait(h)).exitCode, 0);
  assert.equal(readLog(dir), "done\n");
});

test("stop reaches the task's children; leftovers die with the task", async (t) => {
  const d = fast();
  const dir = join(tempDir(t), "task");
  const h = await d.start(runSpec(dir, sh("sleep 60 & echo $! > bg.pid; echo ready; wait")));
  defer(t, () => d.destroy(h));
  await waitForLine(dir, "ready");
  const bg = Number(readFileSync(join(dir, "bg.pid"), "utf8"));
  assert.ok(pidAlive(bg));
  await d.stop(h, 5000);
  await checkFor(2000, () => !pidAlive(bg));

  const dir2 = join(tempDir(t), "task");
  const h2 = await d.start(runSpec(dir2, sh("sleep 60 & echo $! > bg.pid; exit 0")));
  defer(t, () => d.destroy(h2));
  assert.equal((await d.wait(h2)).exitCode, 0);
  const bg2 = Number(readFileSync(join(dir2, "bg.pid"), "utf8"));
  await checkFor(2000, () => !pidAlive(bg2));
});

test("a stop right after start still stops the task", async (t) => {
  const d = fast();
  const dir = join(tempDir(t), "task");
  const h = await d.start(runSpec(dir, ["sleep", "60"]));
  defer(t, () => d.destroy(h));
  await d.stop(h, 5000);
  const st = await d.wait(h);
  assert.equal(st.signal, "SIGTERM");
});

test("inspect reports the task group's memory and CPU", async (t) => {
  const d = fast();
  const dir = join(tempDir(t), "task");
  const h = await d.start(runSpec(dir, sh("echo ready; exec sleep 60")));
  defer(t, () => d.destroy(h));
  await waitForLine(dir, "ready");
  const st = await d.inspect(h);
  assert.equal(st.running, true);
  assert.equal(st.pid, h.pid);
  if (process.platform === "linux") {
    assert.ok((st.rssBytes ?? 0) > 0, `rss ${st.rssBytes}`);
    assert.ok((st.cpuSeconds ?? -1) >= 0);
  }
});

test("recover refuses a handle whose pid now belongs to another process", async () => {
  const d = fast();
  // Our own pid is alive, but it is not the process the handle was made for.
  const forged = { taskId: "x", pid: process.pid, startedAt: 0, startTicks: 1, taskDir: "/tmp" };
  assert.equal(await d.recover(forged as Handle), null);
  assert.equal(await d.recover({ taskId: "x", pid: "12" } as unknown as Handle), null);
  assert.ok(pidAlive(process.pid));
});

/** Runs a throwaway "agent" process that starts a task and prints its handle. */
async function agentThatStarts(
  dir: string,
  command: string[],
): Promise<{ pid: number; h: Handle }> {
  const driverUrl = new URL("../../src/node/drivers/process.js", import.meta.url).href;
  const script =
    `const { ProcessDriver } = await import(${JSON.stringify(driverUrl)});\n` +
    `const d = new ProcessDriver();\n` +
    `const h = await d.start(JSON.parse(process.argv[1]));\n` +
    `process.stdout.write(JSON.stringify(h) + "\\n");\n` +
    `setInterval(() => {}, 1000);\n`;
  const spec = runSpec(dir, command);
  const agent = spawn(
    process.execPath,
    ["--input-type=module", "-e", script, JSON.stringify(spec)],
    {
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  let out = "";
  agent.stdout.on("data", (b: Buffer) => (out += b.toString()));
  await checkFor(10_000, () => out.includes("\n"));
  return { pid: agent.pid!, h: JSON.parse(out) as Handle };
}

test("a task survives kill -9 of its agent and a new agent gets its real exit status", async (t) => {
  const root = tempDir(t);
  const dir = join(root, "task");
  mkdirSync(dir, { recursive: true });
  const program = sh("echo ready; while [ ! -e go ]; do sleep 0.02; done; exit 7");
  const { pid: agentPid, h } = await agentThatStarts(dir, program);
  defer(t, () => {
    try {
      process.kill(-h.pid, "SIGKILL");
    } catch {
      // gone
    }
  });
  await waitForLine(dir, "ready");
  process.kill(agentPid, "SIGKILL");
  await checkFor(5000, () => !pidAlive(agentPid));
  assert.ok(pidAlive(h.pid), "the task outlived its agent");

  const d = fast();
  const adopted = await d.recover(h);
  assert.ok(adopted);
  defer(t, () => d.destroy(adopted));
  assert.equal((await d.inspect(adopted)).running, true);
  writeFileSync(join(dir, "go"), "");
  assert.deepEqual(await d.wait(adopted), { exitCode: 7, signal: null, error: null });

  // One that ends while no agent runs: recover says it is gone, wait still finds its status.
  const dir2 = join(root, "task2");
  mkdirSync(dir2, { recursive: true });
  const second = await agentThatStarts(dir2, program);
  await waitForLine(dir2, "ready");
  process.kill(second.pid, "SIGKILL");
  await checkFor(5000, () => !pidAlive(second.pid));
  writeFileSync(join(dir2, "go"), "");
  await checkFor(5000, () => existsSync(join(dir2, "exit_code")) && !pidAlive(second.h.pid));
  const d2 = fast();
  assert.equal(await d2.recover(second.h), null);
  assert.deepEqual(await d2.wait(second.h), { exitCode: 7, signal: null, error: null });
});

test("a handle for a task that left no status reports the agent-down error", async (t) => {
  const dir = tempDir(t);
  const gone = { taskId: "x", pid: 2 ** 22 + 1, startedAt: 0, startTicks: 5, taskDir: dir };
  assert.deepEqual(await fast().wait(gone as Handle), {
    exitCode: null,
    signal: null,
    error: "task process exited while the agent was down",
  });
});

test("start gives up on a wrapper that never starts the command, and kills it", async (t) => {
  const dir = tempDir(t);
  const fakeShell = join(dir, "fake-sh");
  writeFileSync(fakeShell, `#!/bin/sh\necho $$ > ${join(dir, "fake.pid")}\nexec sleep 60\n`);
  chmodSync(fakeShell, 0o755);
  const d = new ProcessDriver({ shell: fakeShell, startTimeoutMs: 200 });
  await assert.rejects(d.start(runSpec(join(dir, "task"), ["true"])), {
    code: "ERR_SPAWN",
    message: `the task wrapper (${fakeShell}) did not start within 200 ms`,
  });
  const pid = Number(readFileSync(join(dir, "fake.pid"), "utf8"));
  await checkFor(2000, () => !pidAlive(pid));
});
