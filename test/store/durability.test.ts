// The embedded store on disk: what resolved survives a restart and a kill -9 (from a child
// process killed in the middle of a stream of updates); a torn last record is dropped with a
// warning; snapshots and compaction round-trip, also when a crash lands between their steps.
// The table of damage and what recovery makes of it is in corruption.test.ts.

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { appendFileSync, existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { openEmbeddedStore } from "../../src/store/embedded.js";
import type { Task } from "../../src/api/types.js";
import { ids, network, node, service, task, tmpStoreDir, warnings, Writer } from "./helpers.js";

const WAL = "wal.log";

async function fill(dir: string, n: number, compactEvery = 10_000): Promise<void> {
  const s = await openEmbeddedStore(dir, { compactEvery, onWarning: () => {} });
  for (let i = 1; i <= n; i++) {
    await s.update((tx) => {
      tx.putTask(task(`t${i}`, "s1", `n${i % 3}`));
      tx.putMeta("last", i);
    });
  }
  await s.close();
}

/** The log's records (its header line left out). */
function walLines(dir: string): string[] {
  return readFileSync(join(dir, WAL), "utf8")
    .split("\n")
    .filter((l) => l.startsWith('{"seq"'));
}

describe("embedded store durability", () => {
  test("state survives close and reopen, indexes rebuilt", async (t) => {
    const dir = tmpStoreDir(t);
    const s = await openEmbeddedStore(dir);
    await s.update((tx) => {
      tx.putNode(node("n1"));
      tx.putService(service("s1", "web"));
      tx.putTask(task("t1", "s1", "n1"));
      tx.putTask(task("t2", "s1", ""));
      tx.putMeta("cluster", { secret: "abc" });
    });
    await s.update((tx) => {
      tx.putService(service("s1", "www"));
      tx.deleteTask("t2");
    });
    await s.close();
    assert.equal(existsSync(join(dir, "LOCK")), false, "LOCK removed on close");
    assert.equal(walLines(dir).length, 2, "one line per batch");
    const r = await openEmbeddedStore(dir);
    t.after(() => r.close());
    assert.deepEqual(r.warnings, []);
    r.view((tx) => {
      assert.equal(tx.getServiceByName("www")?.id, "s1");
      assert.equal(tx.getServiceByName("web"), undefined);
      assert.deepEqual(ids(tx.listTasks({ nodeId: "n1" })), ["t1"]);
      assert.deepEqual(tx.listTasks({ nodeId: "" }), []);
      assert.deepEqual(tx.getMeta("cluster"), { secret: "abc" });
      assert.deepEqual(tx.getNode("n1"), node("n1"));
    });
    assert.equal(r.stats().seq, 2);
  });

  test("kill -9 in the middle of a stream loses no acknowledged update and halves none", async (t) => {
    const dir = tmpStoreDir(t);
    const acked = new Set<number>();
    let torn = 0;
    // Several rounds on one directory: each writer recovers what the last one left.
    for (let round = 0; round < 6; round++) {
      const concurrency = round % 2 === 0 ? 1 : 6;
      const w = new Writer(["stream", dir, String(concurrency), "37"]);
      await w.waitFor((l) => l.length > 0 && l[0]!.startsWith("ready"));
      const start = Number(w.lines[0]!.split(" ")[1]);
      const target = 10 + Math.floor(Math.random() * 150);
      await w.waitFor((l) => l.length > target);
      const { signal } = await w.kill9();
      assert.equal(signal, "SIGKILL", `writer should die by the kill; stderr: ${w.stderr}`);
      for (const line of w.lines.slice(1)) {
        const m = /^ack (\d+)$/.exec(line);
        assert.ok(m, `unexpected writer line ${line}`);
        const i = Number(m[1]);
        assert.ok(i >= start, `ack ${i} before the round's start ${start}`);
        acked.add(i);
      }
      if (w.stderr.includes("ignored the incomplete last record")) torn++;

      const wn = warnings();
      const s = await openEmbeddedStore(dir, { onWarning: wn.onWarning });
      try {
        const { last, a, b } = s.view((tx) => ({
          last: tx.getMeta<number>("last") ?? 0,
          a: tx.listTasks({ serviceId: "svc-a" }),
          b: tx.listTasks({ serviceId: "svc-b" }),
        }));
        if (wn.list.some((m) => m.includes("ignored the incomplete last record"))) torn++;
        for (const i of acked) assert.ok(i <= last, `acknowledged batch ${i} lost (last ${last})`);
        // Batches commit in order, whole: exactly batches 1..last are present, both halves.
        const slots = (list: Task[]) => list.map((x) => x.slot).sort((x, y) => x - y);
        const want = Array.from({ length: last }, (_, i) => i + 1);
        assert.deepEqual(slots(a), want);
        assert.deepEqual(slots(b), want);
      } finally {
        await s.close();
      }
    }
    assert.ok(acked.size > 60);
    t.diagnostic(`${acked.size} acknowledged batches over 6 kills; ${torn} torn tails seen`);
  });

  test("a torn last record is dropped with a warning and cut off the log", async (t) => {
    const dir = tmpStoreDir(t);
    await fill(dir, 3);
    const good = statSync(join(dir, WAL)).size;
    const whole = walLines(dir)[2]!;
    // A record cut short (the process died mid-write), as the log's last line.
    appendFileSync(join(dir, WAL), whole.replace('"seq":3', '"seq":4').slice(0, 40));
    const w = warnings();
    const s = await openEmbeddedStore(dir, { onWarning: w.onWarning });
    assert.equal(s.warnings.length, 1);
    assert.match(
      s.warnings[0]!,
      /wal\.log line 5 \(byte \d+\): record not terminated.*ignored the incomplete last record/,
    );
    assert.deepEqual(w.list, s.warnings);
    assert.equal(statSync(join(dir, WAL)).size, good, "torn tail truncated");
    assert.equal(
      s.view((tx) => tx.getMeta("last")),
      3,
    );
    // Appending after recovery leaves a clean log: the next open has nothing to say.
    await s.update((tx) => tx.putMeta("last", 4));
    await s.close();
    const r = await openEmbeddedStore(dir);
    assert.deepEqual(r.warnings, []);
    assert.equal(
      r.view((tx) => tx.getMeta("last")),
      4,
    );
    await r.close();
  });

  test("snapshots and compaction round-trip", async (t) => {
    const dir = tmpStoreDir(t);
    const s = await openEmbeddedStore(dir, { compactEvery: 10 });
    for (let i = 1; i <= 35; i++) {
      await s.update((tx) => {
        tx.putTask(task(`t${i}`, `s${i % 4}`, `n${i % 3}`));
        if (i % 5 === 0) tx.deleteTask(`t${i - 1}`);
        tx.putService(service(`s${i % 4}`, `name-${i % 4}`, { version: i }));
        tx.putMeta("last", i);
        if (i % 7 === 0) tx.putNetwork(network(`w${i % 2}`, `net-${i}`, { vni: 4096 + i }));
      });
    }
    assert.deepEqual(s.stats(), { seq: 35, walRecords: 5, snapshots: 3 });
    assert.equal(walLines(dir).length, 5, "the log holds only what followed the snapshot");
    const before = s.view((tx) => ({
      tasks: tx.listTasks(),
      services: tx.listServices(),
      byNode: ids(tx.listTasks({ nodeId: "n1" })),
      byName: tx.getServiceByName("name-2")?.version,
      networks: tx.listNetworks(),
      netByName: tx.getNetworkByName("net-35")?.id,
    }));
    assert.equal(before.networks.length, 2);
    assert.equal(before.netByName, "w1");
    await s.close();
    const r = await openEmbeddedStore(dir, { compactEvery: 10 });
    const after = r.view((tx) => ({
      tasks: tx.listTasks(),
      services: tx.listServices(),
      byNode: ids(tx.listTasks({ nodeId: "n1" })),
      byName: tx.getServiceByName("name-2")?.version,
      networks: tx.listNetworks(),
      netByName: tx.getNetworkByName("net-35")?.id,
    }));
    assert.deepEqual(after, before);
    assert.equal(after.tasks.length, 28);
    // A forced snapshot leaves a log with no records and the same state.
    await r.compact();
    assert.deepEqual(walLines(dir), []);
    await r.close();
    const r2 = await openEmbeddedStore(dir);
    assert.deepEqual(
      r2.view((tx) => tx.listTasks()),
      before.tasks,
    );
    assert.equal(r2.stats().seq, 35);
    await r2.close();
  });

  test("a crash between snapshot and log truncation replays nothing twice", async (t) => {
    const dir = tmpStoreDir(t);
    await fill(dir, 6);
    const oldLog = readFileSync(join(dir, WAL));
    const s = await openEmbeddedStore(dir);
    await s.compact();
    await s.close();
    // As if the process died after renaming the snapshot but before emptying the log, and
    // an earlier snapshot attempt left its temporary file behind.
    writeFileSync(join(dir, WAL), oldLog);
    writeFileSync(join(dir, "snapshot.json.tmp"), "{garbage");
    const r = await openEmbeddedStore(dir);
    assert.deepEqual(r.warnings, []);
    assert.equal(existsSync(join(dir, "snapshot.json.tmp")), false);
    assert.equal(r.stats().seq, 6);
    assert.equal(
      r.view((tx) => tx.listTasks().length),
      6,
    );
    await r.update((tx) => {
      tx.deleteTask("t1");
      tx.putMeta("last", 7);
    });
    await r.close();
    const r2 = await openEmbeddedStore(dir);
    t.after(() => r2.close());
    assert.equal(r2.stats().seq, 7);
    assert.deepEqual(
      r2.view((tx) => ids(tx.listTasks())),
      ["t2", "t3", "t4", "t5", "t6"],
    );
  });
});
