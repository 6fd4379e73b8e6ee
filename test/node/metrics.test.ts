// What a task uses: the parsers of /proc and cgroup files and of the Docker Engine's stats,
// table-tested with fixture strings; the readers on fixture trees (a fake /proc, a fake cgroup
// v2 and v1 directory); the sampler's cores-from-deltas with an injected clock; and, on Linux,
// the process driver on a real task that burns CPU.

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { cpus, loadavg } from "node:os";
import {
  cgroupUsage,
  engineStatsUsage,
  parseFlatKeyed,
  parseIoStat,
  parseMemoryLimit,
  parseNetDev,
  parseProcStat,
  parseVmRss,
  processGroupUsage,
  ProcSnapshot,
  type TaskUsage,
} from "../../src/node/drivers/usage.js";
import { coresBetween, TaskSampler, toTaskStats } from "../../src/node/metrics.js";
import { ProcessDriver } from "../../src/node/drivers/process.js";
import type { Handle } from "../../src/node/drivers/driver.js";
import { checkFor, defer, runSpec, tempDir } from "./helpers.js";

/** A /proc/<pid>/stat line: pid, comm, state, ppid, pgrp, then the rest (utime at 14). */
function statLine(pid: number, comm: string, o: { ppid: number; pgrp: number; ticks: number[] }) {
  // fields 6..13: session tty tpgid flags minflt cminflt majflt cmajflt
  const [ut, st, cut, cst] = o.ticks;
  const rest = [0, 0, 0, 0, 0, 0, 0, 0, ut, st, cut, cst, 20, 0, 1, 0, 4242, 1000, 100];
  return `${pid} (${comm}) S ${o.ppid} ${o.pgrp} ${rest.join(" ")} 0 0 0\n`;
}

describe("parsers", () => {
  test("parseProcStat reads state, ppid, pgrp, CPU ticks and start time", () => {
    const cases: Array<[string, ReturnType<typeof parseProcStat>]> = [
      [
        statLine(10, "node", { ppid: 1, pgrp: 10, ticks: [5, 3, 2, 1] }),
        { state: "S", ppid: 1, pgrp: 10, cpuTicks: 11, startTicks: 4242 },
      ],
      // comm with spaces and parentheses
      [
        statLine(11, "a) (b c", { ppid: 10, pgrp: 10, ticks: [100, 0, 0, 0] }),
        { state: "S", ppid: 10, pgrp: 10, cpuTicks: 100, startTicks: 4242 },
      ],
      ["garbage", null],
      ["1 (x) S 0", null],
    ];
    for (const [text, want] of cases) assert.deepEqual(parseProcStat(text), want, text);
  });

  test("parseVmRss: kB to bytes; none for kernel threads", () => {
    assert.equal(parseVmRss("Name:\tnode\nVmRSS:\t   2048 kB\nVmSwap:\t0 kB\n"), 2048 * 1024);
    assert.equal(parseVmRss("Name:\tkthreadd\nState:\tS\n"), 0);
  });

  test("parseNetDev sums every interface but loopback", () => {
    const text = `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:  999999     10    0    0    0     0          0         0   999999      10    0    0    0     0       0          0
  eth0:    1500     12    0    0    0     0          0         0      700       8    0    0    0     0       0          0
  eth1:     500      2    0    0    0     0          0         0      300       1    0    0    0     0       0          0
`;
    assert.deepEqual(parseNetDev(text), { rx: 2000, tx: 1000 });
    assert.deepEqual(parseNetDev(""), { rx: 0, tx: 0 });
  });

  test("parseMemoryLimit: bytes, or none for max / the v1 unlimited value", () => {
    const cases: Array<[string, number | undefined]> = [
      ["max\n", undefined],
      ["67108864\n", 67108864],
      ["9223372036854771712\n", undefined],
      ["", undefined],
    ];
    for (const [text, want] of cases) assert.equal(parseMemoryLimit(text), want, text);
  });

  test("parseFlatKeyed and parseIoStat", () => {
    const m = parseFlatKeyed("usage_usec 1234\nuser_usec 1000\nsystem_usec 234\n");
    assert.equal(m.get("usage_usec"), 1234);
    assert.equal(m.size, 3);
    assert.deepEqual(
      parseIoStat("8:0 rbytes=100 wbytes=20 rios=1 wios=1\n253:0 rbytes=5 wbytes=0 rios=1\n"),
      { read: 105, write: 20 },
    );
  });

  test("engineStatsUsage: docker stats' figures from the Engine's answer", () => {
    const GiB = 1024 ** 3;
    const base = {
      cpu_stats: { cpu_usage: { total_usage: 5e9 } },
      memory_stats: { usage: 300, limit: 8 * GiB, stats: { inactive_file: 100 } },
      networks: { eth0: { rx_bytes: 10, tx_bytes: 20 }, eth1: { rx_bytes: 1, tx_bytes: 2 } },
      blkio_stats: {
        io_service_bytes_recursive: [
          { op: "read", value: 7 },
          { op: "write", value: 9 },
          { op: "Read", value: 1 },
        ],
      },
      pids_stats: { current: 4 },
    };
    const cases: Array<[string, Parameters<typeof engineStatsUsage>[0], number, TaskUsage | null]> =
      [
        [
          "no limit: the engine reports the host's memory",
          base,
          8 * GiB,
          {
            cpuNanos: 5e9,
            memoryBytes: 200,
            netRxBytes: 11,
            netTxBytes: 22,
            blockReadBytes: 8,
            blockWriteBytes: 9,
            pids: 4,
          },
        ],
        [
          "a limit, cgroup v1 names",
          {
            cpu_stats: { cpu_usage: { total_usage: 1 } },
            memory_stats: { usage: 50, limit: 64, stats: { total_inactive_file: 10 } },
          },
          8 * GiB,
          { cpuNanos: 1, memoryBytes: 40, memoryLimitBytes: 64 },
        ],
        ["a stopped container", { cpu_stats: {}, memory_stats: {} }, 8 * GiB, null],
      ];
    for (const [what, s, host, want] of cases)
      assert.deepEqual(engineStatsUsage(s, host), want, what);
  });
});

describe("readers on fixture trees", () => {
  test("a process group's usage from a fake /proc (zombies and other groups left out)", (t) => {
    const proc = tempDir(t);
    const put = (pid: number, stat: string, rssKb: number) => {
      mkdirSync(join(proc, String(pid), "net"), { recursive: true });
      writeFileSync(join(proc, String(pid), "stat"), stat);
      writeFileSync(join(proc, String(pid), "status"), `Name:\tx\nVmRSS:\t${rssKb} kB\n`);
    };
    put(100, statLine(100, "sh", { ppid: 1, pgrp: 100, ticks: [10, 10, 0, 0] }), 1000);
    put(101, statLine(101, "burn", { ppid: 100, pgrp: 100, ticks: [150, 30, 0, 0] }), 3000);
    put(
      102,
      statLine(102, "z", { ppid: 100, pgrp: 100, ticks: [500, 0, 0, 0] }).replace(" S ", " Z "),
      0,
    );
    put(200, statLine(200, "other", { ppid: 1, pgrp: 200, ticks: [999, 0, 0, 0] }), 9999);
    writeFileSync(join(proc, "100", "net", "dev"), "  eth0: 10 0 0 0 0 0 0 0 20 0 0 0 0 0 0 0\n");
    const snap = new ProcSnapshot(proc);
    assert.deepEqual(processGroupUsage(snap, 100), {
      cpuNanos: 2e9, // 200 ticks at 100 Hz
      memoryBytes: 4000 * 1024,
      pids: 2,
    });
    assert.deepEqual(processGroupUsage(snap, 300), { cpuNanos: 0, memoryBytes: 0, pids: 0 });
    assert.deepEqual(snap.netDev(100), { rx: 10, tx: 20 });
    assert.equal(snap.netDev(999), null);
  });

  test("a cgroup v2 directory: cpu.stat, memory.current less inactive_file, memory.max, io.stat", (t) => {
    const dir = tempDir(t);
    writeFileSync(join(dir, "cpu.stat"), "usage_usec 2500000\nuser_usec 2000000\n");
    writeFileSync(join(dir, "memory.current"), "10485760\n");
    writeFileSync(join(dir, "memory.stat"), "anon 8000000\ninactive_file 485760\n");
    writeFileSync(join(dir, "memory.max"), "67108864\n");
    writeFileSync(join(dir, "io.stat"), "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2\n");
    assert.deepEqual(cgroupUsage([dir]), {
      cpuNanos: 2.5e9,
      memoryBytes: 10_000_000,
      memoryLimitBytes: 67108864,
      blockReadBytes: 4096,
      blockWriteBytes: 8192,
    });
  });

  test("cgroup v1: one directory per hierarchy; what none has is left out", (t) => {
    const cpu = tempDir(t);
    const mem = tempDir(t);
    writeFileSync(join(cpu, "cpu.cfs_quota_us"), "50000\n"); // the cpu hierarchy: no usage here
    writeFileSync(join(mem, "memory.usage_in_bytes"), "5000\n");
    writeFileSync(join(mem, "memory.limit_in_bytes"), "9223372036854771712\n");
    assert.deepEqual(cgroupUsage([cpu, mem]), { memoryBytes: 5000 });
    writeFileSync(join(cpu, "cpuacct.usage"), "123456789\n");
    assert.deepEqual(cgroupUsage([cpu, mem]), { cpuNanos: 123456789, memoryBytes: 5000 });
    assert.deepEqual(cgroupUsage([]), {});
  });
});

describe("sampler", () => {
  test("coresBetween: CPU time over wall time, never negative", () => {
    const cases: Array<
      [Parameters<typeof coresBetween>[0], { cpuNanos: number; at: number }, number]
    > = [
      [undefined, { cpuNanos: 5e9, at: 1000 }, 0],
      [{ cpuNanos: 0, at: 0 }, { cpuNanos: 2e9, at: 1000 }, 2],
      [{ cpuNanos: 1e9, at: 0 }, { cpuNanos: 1.5e9, at: 2000 }, 0.25],
      [{ cpuNanos: 3e9, at: 0 }, { cpuNanos: 1e9, at: 1000 }, 0], // a counter that went back
      [{ cpuNanos: 0, at: 1000 }, { cpuNanos: 1e9, at: 1000 }, 0], // no time passed
    ];
    for (const [prev, cur, want] of cases) assert.equal(coresBetween(prev, cur), want);
  });

  test("toTaskStats leaves out what was not read", () => {
    assert.deepEqual(toTaskStats("t1", { cpuNanos: 1, memoryBytes: 2 }, 0.123456, 7), {
      taskId: "t1",
      cpuCores: 0.1235,
      memoryBytes: 2,
      sampledAt: 7,
    });
  });

  test("rounds turn counters into cores, forget tasks that went, and skip unreadable ones", async () => {
    let now = 10_000;
    const counters = new Map<string, TaskUsage | null>([
      ["a", { cpuNanos: 0, memoryBytes: 100 }],
      ["b", null],
    ]);
    const tasks = ["a", "b"];
    const handle = (id: string): Handle => ({ taskId: id, pid: 1, startedAt: 0 });
    const s = new TaskSampler({
      tasks: () =>
        tasks.map((id) => ({
          taskId: id,
          serviceId: "s",
          serviceName: "web",
          name: `web.1.${id}`,
          handle: handle(id),
        })),
      usage: async (h) => counters.get(h.taskId) ?? null,
      now: () => now,
    });
    await s.sample();
    assert.deepEqual(
      s.latest().map((x) => [x.taskId, x.cpuCores, x.memoryBytes]),
      [["a", 0, 100]],
    );
    now += 2000;
    counters.set("a", { cpuNanos: 3e9, memoryBytes: 200 });
    await s.sample();
    assert.deepEqual(
      s.latest().map((x) => [x.taskId, x.cpuCores, x.memoryBytes, x.serviceName]),
      [["a", 1.5, 200, "web"]],
    );
    tasks.splice(0, 1);
    await s.sample();
    assert.deepEqual(s.latest(), []);
    assert.equal(s.rounds, 3);
  });
});

describe("process driver usage", { skip: process.platform !== "linux" }, () => {
  test("a task that burns CPU uses most of a core; its memory is resident bytes", async (t) => {
    const d = new ProcessDriver();
    const h = await d.start(runSpec(tempDir(t), [process.execPath, "-e", "for(;;){}"]));
    defer(t, () => d.destroy(h));
    // Cores over 1 s windows, until one shows most of a core — or, on a machine busier than its
    // CPUs (other tests share it), most of the share of a core the machine can give.
    const want = 0.5 * Math.min(1, cpus().length / Math.max(1, loadavg()[0]!));
    let cores = 0;
    await checkFor(
      15_000,
      async () => {
        const a = { cpuNanos: (await d.usage(h, new ProcSnapshot()))!.cpuNanos, at: Date.now() };
        await new Promise((r) => setTimeout(r, 1000));
        const b = { cpuNanos: (await d.usage(h, new ProcSnapshot()))!.cpuNanos, at: Date.now() };
        cores = coresBetween(a, b);
        return cores > want;
      },
      0,
    ).catch(() => {});
    assert.ok(cores > want, `cores ${cores}, wanted more than ${want}`);
    const u = await d.usage(h, new ProcSnapshot());
    assert.ok(u!.memoryBytes > 1024 * 1024, `memory ${u!.memoryBytes}`);
    assert.ok((u!.pids ?? 0) >= 1);
    await d.stop(h, 1000);
    assert.equal(await d.usage(h, new ProcSnapshot()), null);
  });
});
