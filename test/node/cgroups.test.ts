// cgroup limits for the process driver: layout detection from mount tables (v1, v2, hybrid),
// the files written for each version, the refusal when limits cannot be enforced, and — only
// as root on Linux with cpu and memory controllers — the real thing: a task over its memory
// limit is killed, CPU quotas are written, the task runs inside its group from its first
// instruction, and destroy removes the group.

import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  cgroupSettings,
  detectCgroups,
  parseCgroupLayout,
  unsupportedReason,
  type CgroupLayout,
} from "../../src/node/drivers/cgroups.js";
import { ProcessDriver, type ProcessHandle } from "../../src/node/drivers/process.js";
import { defer, runSpec, tempDir, waitForLine, readLog } from "./helpers.js";

const MiB = 1024 * 1024;

const HYBRID = `tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0
cgroup /sys/fs/cgroup/cpu,cpuacct cgroup rw,nosuid,nodev,noexec,relatime,cpu,cpuacct 0 0
cgroup /sys/fs/cgroup/memory cgroup rw,nosuid,nodev,noexec,relatime,memory 0 0
cgroup /sys/fs/cgroup/systemd cgroup rw,relatime,name=systemd 0 0
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0
`;
const PURE_V2 = `proc /proc proc rw 0 0
cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nodev,noexec,relatime,nsdelegate 0 0
`;

describe("cgroup layout", () => {
  test("a hybrid host uses its v1 hierarchies, combined mounts included", () => {
    const layout = parseCgroupLayout(HYBRID, () => []);
    assert.deepEqual(layout, {
      cpu: { version: 1, mount: "/sys/fs/cgroup/cpu,cpuacct" },
      memory: { version: 1, mount: "/sys/fs/cgroup/memory" },
    });
  });

  test("a v2 host uses the controllers its cgroup.controllers lists", () => {
    const all = parseCgroupLayout(PURE_V2, () => ["cpuset", "cpu", "io", "memory", "pids"]);
    assert.deepEqual(all, {
      cpu: { version: 2, mount: "/sys/fs/cgroup" },
      memory: { version: 2, mount: "/sys/fs/cgroup" },
    });
    assert.deepEqual(
      parseCgroupLayout(PURE_V2, () => ["memory"]),
      {
        cpu: null,
        memory: { version: 2, mount: "/sys/fs/cgroup" },
      },
    );
    assert.deepEqual(
      parseCgroupLayout(PURE_V2, () => null),
      { cpu: null, memory: null },
    );
    assert.deepEqual(
      parseCgroupLayout("", () => []),
      { cpu: null, memory: null },
    );
  });

  test("escaped mount paths are decoded", () => {
    const text = "cgroup /mnt/my\\040cgroups cgroup rw,memory 0 0\n";
    assert.equal(parseCgroupLayout(text, () => [])?.memory?.mount, "/mnt/my cgroups");
  });

  test("the files written per version", () => {
    const v1: CgroupLayout = {
      cpu: { version: 1, mount: "/c" },
      memory: { version: 1, mount: "/m" },
    };
    const v2: CgroupLayout = {
      cpu: { version: 2, mount: "/u" },
      memory: { version: 2, mount: "/u" },
    };
    const row = (s: { mount: string; file: string; value: string }): string =>
      `${s.mount}/${s.file}=${s.value}`;
    assert.deepEqual(cgroupSettings({ cpus: 1.5, memoryBytes: 64 * MiB }, v1).map(row), [
      "/c/cpu.cfs_period_us=100000",
      "/c/cpu.cfs_quota_us=150000",
      "/m/memory.limit_in_bytes=67108864",
      "/m/memory.memsw.limit_in_bytes=67108864",
    ]);
    assert.deepEqual(cgroupSettings({ cpus: 0.25, memoryBytes: 64 * MiB }, v2).map(row), [
      "/u/cpu.max=25000 100000",
      "/u/memory.max=67108864",
      "/u/memory.swap.max=0",
    ]);
    assert.deepEqual(cgroupSettings({ cpus: 0.001, memoryBytes: 0 }, v2).map(row), [
      "/u/cpu.max=1000 100000",
    ]);
    assert.deepEqual(cgroupSettings({ cpus: 0, memoryBytes: 0 }, v1), []);
  });
});

describe("limits that cannot be enforced are refused", () => {
  const layout: CgroupLayout = {
    cpu: { version: 1, mount: "/c" },
    memory: null,
  };
  const limits = { cpus: 0.5, memoryBytes: 64 * MiB };

  test("the reasons", () => {
    assert.equal(unsupportedReason({ cpus: 0, memoryBytes: 0 }, layout, "darwin", 501), null);
    assert.equal(
      unsupportedReason(limits, layout, "darwin", 0),
      "cannot enforce resource limits (cpus=0.5, memory=64MiB): the process driver needs " +
        "Linux cgroups, and this node runs darwin",
    );
    assert.match(unsupportedReason(limits, layout, "linux", 1000) ?? "", /needs root .* uid 1000/);
    assert.match(
      unsupportedReason(limits, layout, "linux", 0) ?? "",
      /no memory cgroup controller on this node/,
    );
    assert.equal(unsupportedReason({ cpus: 2, memoryBytes: 0 }, layout, "linux", 0), null);
  });

  test("start rejects with ERR_LIMITS_UNSUPPORTED and starts nothing", async (t) => {
    const dir = tempDir(t);
    const empty = join(dir, "mounts");
    writeFileSync(empty, "");
    const cases = [
      new ProcessDriver({ platform: "darwin" }),
      new ProcessDriver({ uid: 1000 }),
      new ProcessDriver({ mountsFile: empty, platform: "linux", uid: 0 }),
    ];
    for (const d of cases) {
      const task = join(dir, `task-${cases.indexOf(d)}`);
      await assert.rejects(
        d.start(runSpec(task, ["sh", "-c", "echo ran"], { limits })),
        (err: Error & { code?: string }) => {
          assert.equal(err.code, "ERR_LIMITS_UNSUPPORTED");
          assert.match(err.message, /^cannot enforce resource limits \(cpus=0\.5, memory=64MiB\)/);
          return true;
        },
      );
      assert.equal(existsSync(join(task, "stdout.log")), false);
    }
  });
});

const layout = detectCgroups();
const uid = process.getuid?.() ?? -1;
const skip =
  process.platform !== "linux"
    ? "cgroups need Linux"
    : uid !== 0
      ? `cgroups need root (uid ${uid})`
      : layout.cpu === null || layout.memory === null
        ? "no cpu and memory cgroup controllers"
        : false;
if (skip) console.log(`# skipping real cgroup tests: ${skip}`);

describe("cgroups on this host", { skip }, () => {
  const parent = `shoal-test-${process.pid}`;
  const driver = (): ProcessDriver => new ProcessDriver({ cgroupParent: parent });
  after(() => {
    for (const c of [layout.cpu, layout.memory]) {
      try {
        if (c) rmdirSync(join(c.mount, parent));
      } catch {
        // already gone, or shared by both controllers
      }
    }
  });

  test("a task over its memory limit is killed (SIGKILL)", async (t) => {
    const d = driver();
    const dir = join(tempDir(t), "task");
    const grow = "const a = []; for (;;) a.push(Buffer.alloc(1 << 20, 1));";
    const h = (await d.start(
      runSpec(dir, [process.execPath, "-e", grow], { limits: { cpus: 0, memoryBytes: 64 * MiB } }),
    )) as ProcessHandle;
    defer(t, () => d.destroy(h));
    const memDir = h.cgroup?.dirs.find((x) => x.startsWith(layout.memory!.mount));
    assert.ok(memDir, "a memory group was made");
    const limitFile = layout.memory!.version === 1 ? "memory.limit_in_bytes" : "memory.max";
    assert.equal(readFileSync(join(memDir, limitFile), "utf8").trim(), String(64 * MiB));
    const st = await d.wait(h);
    assert.deepEqual(st, { exitCode: null, signal: "SIGKILL", error: null });
  });

  test("cpu quota is written, the task is in its groups from the start, destroy removes them", async (t) => {
    const d = driver();
    const dir = join(tempDir(t), "task");
    const h = (await d.start(
      runSpec(dir, ["sh", "-c", "cat /proc/self/cgroup; echo ready; exec sleep 60"], {
        limits: { cpus: 0.5, memoryBytes: 128 * MiB },
      }),
    )) as ProcessHandle;
    defer(t, () => d.destroy(h));
    await waitForLine(dir, "ready");
    const dirs = h.cgroup?.dirs ?? [];
    assert.ok(dirs.length > 0);
    const cpuDir = dirs.find((x) => x.startsWith(layout.cpu!.mount))!;
    if (layout.cpu!.version === 1) {
      assert.equal(readFileSync(join(cpuDir, "cpu.cfs_period_us"), "utf8").trim(), "100000");
      assert.equal(readFileSync(join(cpuDir, "cpu.cfs_quota_us"), "utf8").trim(), "50000");
    } else {
      assert.equal(readFileSync(join(cpuDir, "cpu.max"), "utf8").trim(), "50000 100000");
    }
    // The command's first child already saw itself inside the task's group.
    const own = readLog(dir);
    assert.match(own, new RegExp(`/${parent}/${h.taskId}\\n`));
    for (const g of dirs) {
      const procs = readFileSync(join(g, "cgroup.procs"), "utf8").split("\n").filter(Boolean);
      assert.ok(procs.includes(String(h.pid)), `wrapper in ${g}`);
      assert.ok(procs.length >= 2, `command in ${g}`);
    }
    await d.stop(h, 5000);
    await d.destroy(h);
    for (const g of dirs) assert.equal(existsSync(g), false, `${g} removed`);
  });

  test("recover of a gone task removes its groups", async (t) => {
    const d = driver();
    const dir = join(tempDir(t), "task");
    const h = (await d.start(
      runSpec(dir, ["sh", "-c", "exit 0"], { limits: { cpus: 1, memoryBytes: 0 } }),
    )) as ProcessHandle;
    assert.equal((await d.wait(h)).exitCode, 0);
    const dirs = h.cgroup?.dirs ?? [];
    assert.ok(dirs.length > 0 && dirs.every((g) => existsSync(g)));
    assert.equal(await driver().recover(JSON.parse(JSON.stringify(h)) as ProcessHandle), null);
    for (const g of dirs) assert.equal(existsSync(g), false);
  });
});
