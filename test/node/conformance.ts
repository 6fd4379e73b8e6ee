// The driver conformance suite: one set of tests every driver must pass (the process driver,
// the mock driver, later the docker driver). A harness says how to make a driver and which argv
// runs each of a few small programs on it; the tests only speak the Driver interface.

import { describe, test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { DriverError, type Driver, type Handle } from "../../src/node/drivers/driver.js";
import { readLogs } from "../../src/node/drivers/logs.js";
import { checkFor, defer, readLog, runSpec, tempDir, waitForLine } from "./helpers.js";

/** argv for the programs the suite runs, in the driver's own terms. */
export interface Programs {
  /** Exits at once with this status. */
  exit(code: number): string[];
  /** Prints "ready", then runs until a signal ends it (SIGTERM and SIGINT kill it). */
  sleep(): string[];
  /** Prints "ready", ignores SIGTERM; only SIGKILL ends it. */
  ignoreTerm(): string[];
  /** Prints its environment as KEY=VALUE lines, exits 0. */
  env(): string[];
  /** Prints its working directory, exits 0. */
  pwd(): string[];
  /** Prints `lines` lines `spewLine(i)` on stdout and "err" on stderr; exits 0 unless `stay`. */
  spew(lines: number, stay: boolean): string[];
}

/**
 * The programs as POSIX shell scripts (`sh -c`), for drivers that run real commands. `beforeExit`
 * is run before the exit program exits (a container must live a moment for its pid to be seen).
 */
export function shellPrograms(beforeExit = ""): Programs {
  const sh = (script: string): string[] => ["sh", "-c", script];
  return {
    exit: (code) => sh(`${beforeExit}exit ${code}`),
    sleep: () => sh("echo ready; exec sleep 60"),
    ignoreTerm: () => sh('trap "" TERM; echo ready; exec sleep 60'),
    env: () => ["env"],
    pwd: () => ["pwd"],
    spew: (n, stay) =>
      sh(
        `i=0; while [ $i -lt ${n} ]; do printf 'line %06d %s\\n' $i ${"x".repeat(88)}; ` +
          `i=$((i+1)); done; echo err >&2; ${stay ? "exec sleep 60" : "exit 0"}`,
      ),
  };
}

export interface DriverHarness {
  name: string;
  /** A new driver instance on the same machine (a restarted agent gets a fresh one). */
  create(): Driver;
  programs: Programs;
  /** The environment the programs need (PATH). */
  baseEnv(): Record<string, string>;
  /** Cases this driver does not meet by design, by test name, with the reason (shown as a skip). */
  skip?: Record<string, string>;
}

/** Registers the suite for one driver. */
export function conformance(h: DriverHarness): void {
  const p = h.programs;
  const it = (name: string, fn: (t: TestContext) => Promise<void>) =>
    test(name, { skip: h.skip?.[name] ?? false }, fn);

  /** Starts a task and makes sure it is gone when the test ends. */
  async function startTask(
    t: TestContext,
    d: Driver,
    command: string[],
    over: Parameters<typeof runSpec>[2] = {},
  ): Promise<{ handle: Handle; dir: string }> {
    const dir = over.taskDir ?? join(tempDir(t), "task");
    const handle = await d.start(runSpec(dir, command, { env: h.baseEnv(), ...over }));
    defer(t, () => d.destroy(handle));
    return { handle, dir };
  }

  describe(`driver conformance: ${h.name}`, () => {
    it("exit codes are reported", async (t) => {
      const d = h.create();
      for (const code of [0, 3, 42]) {
        const { handle } = await startTask(t, d, p.exit(code));
        assert.ok(handle.pid > 0);
        assert.deepEqual(await d.wait(handle), { exitCode: code, signal: null, error: null });
      }
    });

    it("wait can be called again and gives the same status", async (t) => {
      const d = h.create();
      const { handle } = await startTask(t, d, p.exit(5));
      const a = await d.wait(handle);
      const b = await d.wait(handle);
      assert.deepEqual(a, b);
      assert.equal(a.exitCode, 5);
    });

    it("stop sends the stop signal and the task honours it", async (t) => {
      const d = h.create();
      const { handle, dir } = await startTask(t, d, p.sleep());
      await waitForLine(dir, "ready");
      assert.equal((await d.inspect(handle)).running, true);
      const t0 = Date.now();
      await d.stop(handle, 10_000);
      assert.ok(Date.now() - t0 < 5000, "stopped well before the grace period");
      assert.deepEqual(await d.wait(handle), { exitCode: null, signal: "SIGTERM", error: null });
      assert.equal((await d.inspect(handle)).running, false);
    });

    it("stop uses the spec's stop signal, or the one given", async (t) => {
      const d = h.create();
      const a = await startTask(t, d, p.sleep(), { stopSignal: "INT" });
      await waitForLine(a.dir, "ready");
      await d.stop(a.handle, 10_000);
      assert.equal((await d.wait(a.handle)).signal, "SIGINT");

      const b = await startTask(t, d, p.sleep());
      await waitForLine(b.dir, "ready");
      await d.stop(b.handle, 10_000, "SIGINT");
      assert.equal((await d.wait(b.handle)).signal, "SIGINT");
    });

    it("stop escalates to SIGKILL when the task ignores SIGTERM", async (t) => {
      const d = h.create();
      const { handle, dir } = await startTask(t, d, p.ignoreTerm());
      await waitForLine(dir, "ready");
      const t0 = Date.now();
      await d.stop(handle, 300);
      const took = Date.now() - t0;
      assert.ok(took >= 290, `waited the grace period (${took} ms)`);
      assert.ok(took < 5000, `then killed it (${took} ms)`);
      assert.deepEqual(await d.wait(handle), { exitCode: null, signal: "SIGKILL", error: null });
    });

    it("stop of a task that already exited resolves at once", async (t) => {
      const d = h.create();
      const { handle } = await startTask(t, d, p.exit(0));
      await d.wait(handle);
      await d.stop(handle, 10_000);
      assert.equal((await d.wait(handle)).exitCode, 0);
    });

    it("destroy kills a task still running", async (t) => {
      const d = h.create();
      const { handle, dir } = await startTask(t, d, p.sleep());
      await waitForLine(dir, "ready");
      const exited = d.wait(handle);
      await d.destroy(handle);
      assert.equal((await d.inspect(handle)).running, false);
      assert.equal((await exited).signal, "SIGKILL");
      assert.ok(statSync(join(dir, "stdout.log")).isFile(), "logs stay");
    });

    it("a missing command is refused with exec's error", async (t) => {
      const d = h.create();
      const dir = join(tempDir(t), "task");
      await assert.rejects(
        d.start(runSpec(dir, ["shoal-no-such-command"], { env: h.baseEnv() })),
        (err: unknown) => {
          assert.ok(err instanceof DriverError);
          assert.equal(err.code, "ERR_COMMAND_NOT_FOUND");
          assert.equal(
            err.message,
            'exec: "shoal-no-such-command": executable file not found in $PATH',
          );
          return true;
        },
      );
    });

    it("an empty command, a bad workdir and a bad stop signal are refused", async (t) => {
      const d = h.create();
      const dir = join(tempDir(t), "task");
      const env = h.baseEnv();
      await assert.rejects(d.start(runSpec(dir, [], { env })), { code: "ERR_NO_COMMAND" });
      await assert.rejects(d.start(runSpec(dir, p.exit(0), { env, workdir: "/no/such/dir" })), {
        code: "ERR_WORKDIR",
        message: 'chdir to cwd ("/no/such/dir") failed: no such file or directory',
      });
      await assert.rejects(d.start(runSpec(dir, p.exit(0), { env, stopSignal: "SIGNOPE" })), {
        code: "ERR_BAD_SIGNAL",
      });
    });

    it("the task runs in its workdir, by default its task directory", async (t) => {
      const d = h.create();
      const a = await startTask(t, d, p.pwd());
      assert.equal((await d.wait(a.handle)).exitCode, 0);
      assert.equal(readLog(a.dir).trim(), a.dir);

      const wd = tempDir(t);
      const b = await startTask(t, d, p.pwd(), { workdir: wd });
      assert.equal((await d.wait(b.handle)).exitCode, 0);
      assert.equal(readLog(b.dir).trim(), wd);
    });

    it("the task gets exactly the environment it was given", async (t) => {
      const d = h.create();
      process.env["SHOAL_TEST_AGENT_ONLY"] = "leak";
      defer(t, () => delete process.env["SHOAL_TEST_AGENT_ONLY"]);
      const env = { ...h.baseEnv(), SHOAL_TASK_SLOT: "3", SPACED: "a b=c", EMPTY: "" };
      const { handle, dir } = await startTask(t, d, p.env(), { env });
      assert.equal((await d.wait(handle)).exitCode, 0);
      const got = readLog(dir)
        .split("\n")
        .filter((l) => l !== "");
      assert.deepEqual(
        got.sort(),
        Object.entries(env)
          .map(([k, v]) => `${k}=${v}`)
          .sort(),
      );
    });

    it("stdout and stderr go to the task's log files", async (t) => {
      const d = h.create();
      const { handle, dir } = await startTask(t, d, p.spew(3, false));
      assert.equal((await d.wait(handle)).exitCode, 0);
      assert.match(readLog(dir), /^line 000000 x+\nline 000001 x+\nline 000002 x+\n$/);
      assert.equal(readLog(dir, "stderr"), "err\n");
      const lines = [];
      for await (const l of readLogs(dir)) lines.push(`${l.stream}:${l.line.slice(0, 11)}`);
      assert.deepEqual(lines, [
        "stdout:line 000000",
        "stdout:line 000001",
        "stdout:line 000002",
        "stderr:err",
      ]);
    });

    it("logs are capped while the task runs and when it exits", async (t) => {
      const d = h.create();
      const cap = 16 * 1024;
      // 2000 lines of 101 bytes: ~200 KB, a dozen caps.
      const a = await startTask(t, d, p.spew(2000, true), { logMaxBytes: cap });
      // Everything written: the last line of each stream is there. (The two streams are not
      // ordered against each other: a container's stderr may arrive before its stdout ends.)
      await checkFor(10_000, async () => {
        const tail = [];
        for await (const l of readLogs(a.dir, { tail: 1 })) tail.push(l);
        assert.deepEqual(
          tail.map((l) => `${l.stream}:${l.line.slice(0, 11)}`),
          ["stdout:line 001999", "stderr:err"],
        );
        return true;
      });
      const size = (f: string): number => statSync(join(a.dir, f)).size;
      await checkFor(10_000, () => size("stdout.log") <= cap);
      assert.ok(size("stdout.log.1") <= cap / 2);
      await d.stop(a.handle, 5000);

      const b = await startTask(t, d, p.spew(2000, false), { logMaxBytes: cap });
      assert.equal((await d.wait(b.handle)).exitCode, 0);
      assert.ok(statSync(join(b.dir, "stdout.log")).size <= cap, "capped at exit");
      const last = readFileSync(join(b.dir, "stdout.log.1"), "utf8");
      assert.ok(last.length > 0 && last.length <= cap / 2);
      assert.match(last, /^line \d{6} x+\n/, "the rotated file starts at a line");
    });

    it("a restarted agent recovers a running task from its persisted handle", async (t) => {
      const first = h.create();
      const { handle, dir } = await startTask(t, first, p.sleep());
      await waitForLine(dir, "ready");
      const saved = JSON.stringify(handle);

      const second = h.create();
      const adopted = await second.recover(JSON.parse(saved) as Handle);
      assert.ok(adopted, "recovered");
      defer(t, () => second.destroy(adopted));
      assert.equal(adopted.pid, handle.pid);
      assert.equal(adopted.taskId, handle.taskId);
      assert.equal((await second.inspect(adopted)).running, true);
      await second.stop(adopted, 10_000);
      assert.deepEqual(await second.wait(adopted), {
        exitCode: null,
        signal: "SIGTERM",
        error: null,
      });
      assert.equal((await second.inspect(adopted)).running, false);
    });

    it("a recovered task's exit status is its own", async (t) => {
      const first = h.create();
      const { handle, dir } = await startTask(t, first, p.ignoreTerm());
      await waitForLine(dir, "ready");
      const second = h.create();
      const adopted = await second.recover(JSON.parse(JSON.stringify(handle)) as Handle);
      assert.ok(adopted);
      defer(t, () => second.destroy(adopted));
      await second.stop(adopted, 200);
      assert.equal((await second.wait(adopted)).signal, "SIGKILL");
    });

    it("recover refuses a task that is gone", async (t) => {
      const first = h.create();
      const { handle } = await startTask(t, first, p.exit(0));
      await first.wait(handle);
      const second = h.create();
      assert.equal(await second.recover(JSON.parse(JSON.stringify(handle)) as Handle), null);
    });
  });
}
