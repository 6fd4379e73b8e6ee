// `shoal stats`: Docker's units and columns from task figures, the rows arguments select, and
// a service's current figures for `service inspect`.

import { test } from "node:test";
import assert from "node:assert/strict";
import {
  bytesSize,
  humanSize,
  selectRows,
  serviceFigures,
  statsRow,
  STATS_FORMAT,
} from "../../src/cli/stats.js";
import { rowFormatter } from "../../src/cli/template.js";
import type { TaskStatsRow } from "../../src/api/http.js";

const MiB = 1024 * 1024;

function row(over: Partial<TaskStatsRow> = {}): TaskStatsRow {
  return {
    taskId: "abcdefghijklmnopqrstuvwxy",
    name: "web.1.abcdefghijklmnopqrstuvwxy",
    serviceId: "s1",
    serviceName: "web",
    nodeId: "n1",
    node: "host1",
    nodeMemoryBytes: 8 * 1024 * MiB,
    cpuCores: 1.5,
    memoryBytes: 1.5 * MiB,
    sampledAt: 1,
    ...over,
  };
}

test("go-units sizes: binary with 4 digits, decimal with 3", () => {
  const cases: Array<[number, string, string]> = [
    [0, "0B", "0B"],
    [726, "726B", "726B"],
    [1024, "1KiB", "1.02kB"],
    [1050, "1.025KiB", "1.05kB"],
    [1.5 * MiB, "1.5MiB", "1.57MB"],
    [1617981, "1.543MiB", "1.62MB"],
    [8 * 1024 * MiB, "8GiB", "8.59GB"],
  ];
  for (const [n, bin, dec] of cases) {
    assert.equal(bytesSize(n), bin, `bytesSize(${n})`);
    assert.equal(humanSize(n), dec, `humanSize(${n})`);
  }
});

test("a row in Docker's columns: CPU % of one core, the node's memory as the limit when none", () => {
  const text = rowFormatter(
    undefined,
    STATS_FORMAT,
  )([
    statsRow(row()),
    statsRow(
      row({
        taskId: "zzzzzzzzzzzzzzz",
        name: "db.2.zzzzzzzzzzzzzzz",
        cpuCores: 0.0025,
        memoryBytes: 32 * MiB,
        memoryLimitBytes: 64 * MiB,
        netRxBytes: 1050,
        netTxBytes: 0,
        blockReadBytes: 4096,
        blockWriteBytes: 2_000_000,
        pids: 3,
      }),
    ),
  ]);
  assert.equal(
    text,
    [
      "CONTAINER ID   NAME                              CPU %     MEM USAGE / LIMIT   MEM %     NET I/O       BLOCK I/O     PIDS",
      "abcdefghijkl   web.1.abcdefghijklmnopqrstuvwxy   150.00%   1.5MiB / 8GiB       0.02%     --            --            --",
      "zzzzzzzzzzzz   db.2.zzzzzzzzzzzzzzz              0.25%     32MiB / 64MiB       50.00%    1.05kB / 0B   4.1kB / 2MB   3",
      "",
    ].join("\n"),
  );
  assert.equal(statsRow(row(), true)["ID"], "abcdefghijklmnopqrstuvwxy");
});

test("arguments select tasks by id prefix, name, slot name, service name or id; unknown ones fail", () => {
  const all = [
    row({ taskId: "t1", name: "web.1.t1" }),
    row({ taskId: "t2", name: "web.2.t2" }),
    row({ taskId: "u1", name: "db.1.u1", serviceName: "db", serviceId: "s2" }),
  ];
  const ids = (args: string[]) => selectRows(all, args).map((r) => r.taskId);
  assert.deepEqual(ids([]), ["u1", "t1", "t2"]);
  assert.deepEqual(ids(["web"]), ["t1", "t2"]);
  assert.deepEqual(ids(["s2"]), ["u1"]);
  assert.deepEqual(ids(["web.2"]), ["t2"]);
  assert.deepEqual(ids(["db.1.u1", "t"]), ["u1", "t1", "t2"]);
  assert.throws(() => ids(["nope"]), /No such task or service: nope/);
});

test("a service's current figures: sums and averages over its tasks; none without figures", () => {
  assert.equal(serviceFigures([]), null);
  assert.deepEqual(
    serviceFigures([
      row({ cpuCores: 1, memoryBytes: 100 }),
      row({ cpuCores: 0.5, memoryBytes: 301 }),
    ]),
    { tasks: 2, cpuCores: 1.5, cpuCoresAvg: 0.75, memoryBytes: 401, memoryBytesAvg: 201 },
  );
});
