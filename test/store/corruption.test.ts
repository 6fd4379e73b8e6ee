// The write-ahead log and snapshot corruption table: each kind of damage to a store's files, and
// what opening the store makes of it — loaded with how many batches (and a warning when
// something was dropped or replaced), or refused with ERR_CORRUPT / ERR_NO_STATE and a message
// naming the file, the line and byte, and the repair command. Only an incomplete last record (a
// torn append) may be dropped. Then `repairStore` on refused stores, and the node-identity rule.

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  existsSync,
  readFileSync,
  readdirSync,
  rmSync,
  truncateSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { openEmbeddedStore, type EmbeddedStore } from "../../src/store/embedded.js";
import { repairStore } from "../../src/store/repair.js";
import { StoreError } from "../../src/store/store.js";
import { encodeBatch, seal } from "../../src/store/wal.js";
import { task, tmpStoreDir, warnings } from "./helpers.js";

const WAL = "wal.log";
const SNAP = "snapshot.json";

/**
 * A store with `n` batches; batch i puts task t<i> and sets meta "last" to i. With `compactAt`,
 * a snapshot is forced after each of those batch numbers.
 */
async function fill(dir: string, n: number, compactAt: number[] = []): Promise<void> {
  const s = await openEmbeddedStore(dir, { onWarning: () => {} });
  for (let i = 1; i <= n; i++) {
    await s.update((tx) => {
      tx.putTask(task(`t${i}`, "s1", `n${i % 3}`));
      tx.putMeta("last", i);
    });
    if (compactAt.includes(i)) await s.compact();
  }
  await s.close();
}

/** Byte offsets of each line of a file: [start, end) without the newline. */
function lines(path: string): Array<[number, number]> {
  const buf = readFileSync(path);
  const out: Array<[number, number]> = [];
  let pos = 0;
  while (pos < buf.length) {
    const nl = buf.indexOf(0x0a, pos);
    const end = nl === -1 ? buf.length : nl;
    out.push([pos, end]);
    pos = end + 1;
  }
  return out;
}

function edit(path: string, fn: (buf: Buffer) => Buffer): void {
  writeFileSync(path, fn(readFileSync(path)));
}

/** Flips one bit in the middle of line `i` (0 = the header) of a file. */
function flipInLine(path: string, i: number): void {
  const [a, b] = lines(path)[i]!;
  edit(path, (buf) => {
    const at = a + Math.floor((b - a) / 2);
    buf[at] = buf[at]! ^ 0x04;
    return buf;
  });
}

/** Replaces the newline that ends line `i` with another byte. */
function damageSeparator(path: string, i: number): void {
  const [, end] = lines(path)[i]!;
  edit(path, (buf) => {
    buf[end] = 0x20;
    return buf;
  });
}

type Expect =
  | { loaded: number; warn?: RegExp; tasks?: number }
  | { refused: RegExp; code?: "ERR_CORRUPT" | "ERR_NO_STATE" };

interface Case {
  name: string;
  /** Batches written, and after which ones a snapshot was forced. */
  batches: number;
  compactAt?: number[];
  damage: (dir: string) => void;
  requireExisting?: boolean;
  expect: Expect;
}

const REPAIR = /shoal store repair \S+/;
const wal = (dir: string) => join(dir, WAL);

const cases: Case[] = [
  { name: "an undamaged log", batches: 5, damage: () => {}, expect: { loaded: 5 } },
  // A flipped bit in each record of the log, the last one included, is refused.
  ...[1, 2, 3, 4, 5].map((k): Case => ({
    name: `a bit flipped in record ${k} of 5`,
    batches: 5,
    damage: (dir) => flipInLine(wal(dir), k),
    expect: { refused: new RegExp(`wal\\.log line ${k + 1} \\(byte \\d+\\): checksum mismatch`) },
  })),
  {
    name: "a bit flipped in the log's header",
    batches: 3,
    damage: (dir) => flipInLine(wal(dir), 0),
    expect: { refused: /wal\.log line 1 \(byte 0\): (checksum mismatch|truncated record)/ },
  },
  // A damaged line separator, after each record.
  ...[1, 2, 3, 4].map((k): Case => ({
    name: `the separator after record ${k} of 5 damaged`,
    batches: 5,
    damage: (dir) => damageSeparator(wal(dir), k),
    expect: { refused: new RegExp(`wal\\.log line ${k + 1} \\(byte \\d+\\): checksum mismatch`) },
  })),
  {
    name: "the separator after the last record damaged",
    batches: 5,
    damage: (dir) => damageSeparator(wal(dir), 5),
    expect: { refused: /wal\.log line 6 \(byte \d+\): the line separator after the last record/ },
  },
  {
    name: "a record missing in the middle (a gap in the sequence)",
    batches: 5,
    damage: (dir) => {
      const buf = readFileSync(wal(dir));
      const [a] = lines(wal(dir))[3]!;
      const [, b] = lines(wal(dir))[3]!;
      writeFileSync(wal(dir), Buffer.concat([buf.subarray(0, a), buf.subarray(b + 1)]));
    },
    expect: { refused: /wal\.log line 4 \(byte \d+\): record seq 4 follows seq 2/ },
  },
  // Torn final appends: dropped with a warning.
  {
    name: "the last record cut in the middle (torn append)",
    batches: 5,
    damage: (dir) => {
      const [a, b] = lines(wal(dir))[5]!;
      truncateSync(wal(dir), a + Math.floor((b - a) / 2));
    },
    expect: { loaded: 4, warn: /wal\.log line 6 .*record not terminated.*ignored the incomplete/ },
  },
  {
    name: "the last record without its final newline",
    batches: 5,
    damage: (dir) => truncateSync(wal(dir), lines(wal(dir))[5]![1]),
    expect: { loaded: 4, warn: /ignored the incomplete last record/ },
  },
  {
    name: "zeros after the last record (the size grew, the data never came)",
    batches: 5,
    damage: (dir) => edit(wal(dir), (buf) => Buffer.concat([buf, Buffer.alloc(4096)])),
    expect: { loaded: 5, warn: /ignored the incomplete last record \(4096 bytes\)/ },
  },
  // A missing or emptied log.
  {
    name: "wal.log emptied, no snapshot",
    batches: 5,
    damage: (dir) => writeFileSync(wal(dir), ""),
    expect: { refused: /wal\.log is empty or missing/ },
  },
  {
    name: "wal.log emptied after a snapshot",
    batches: 5,
    compactAt: [3],
    damage: (dir) => writeFileSync(wal(dir), ""),
    expect: { refused: /wal\.log is empty or missing/ },
  },
  {
    name: "wal.log deleted after a snapshot",
    batches: 5,
    compactAt: [3],
    damage: (dir) => rmSync(wal(dir)),
    expect: { refused: /wal\.log is missing, but the store has snapshot\.json \(seq 3\)/ },
  },
  {
    name: "wal.log deleted, no snapshot, node without an identity: a new store",
    batches: 5,
    damage: (dir) => rmSync(wal(dir)),
    expect: { loaded: 0 },
  },
  {
    name: "wal.log deleted, no snapshot, node with an identity",
    batches: 5,
    damage: (dir) => rmSync(wal(dir)),
    requireExisting: true,
    expect: {
      refused: /holds no state, but this node already belongs to a swarm/,
      code: "ERR_NO_STATE",
    },
  },
  {
    name: "the whole store gone, node with an identity",
    batches: 0,
    damage: (dir) => rmSync(wal(dir)),
    requireExisting: true,
    expect: { refused: /refusing to start a new, empty cluster/, code: "ERR_NO_STATE" },
  },
  // Snapshots: a damaged newest one falls back to the previous generation.
  {
    name: "two generations, undamaged",
    batches: 9,
    compactAt: [3, 6],
    damage: () => {},
    expect: { loaded: 9 },
  },
  {
    name: "the newest snapshot damaged: the previous one and both logs",
    batches: 9,
    compactAt: [3, 6],
    damage: (dir) => flipInLine(join(dir, SNAP), 0),
    expect: {
      loaded: 9,
      warn: /snapshot\.json: checksum mismatch; recovered from the previous generation instead: snapshot\.1\.json \(seq 3\) \+ 3 records of wal\.1\.log \+ 3 records of wal\.log, up to seq 9/,
    },
  },
  {
    name: "the newest snapshot deleted",
    batches: 9,
    compactAt: [3, 6],
    damage: (dir) => rmSync(join(dir, SNAP)),
    expect: {
      loaded: 9,
      warn: /snapshot\.json is missing; recovered from the previous generation/,
    },
  },
  {
    name: "the only snapshot deleted: the empty state and both logs",
    batches: 5,
    compactAt: [3],
    damage: (dir) => rmSync(join(dir, SNAP)),
    expect: { loaded: 5, warn: /snapshot\.json is missing; recovered from .*the empty state/ },
  },
  {
    name: "the only snapshot damaged: the empty state and both logs",
    batches: 5,
    compactAt: [3],
    damage: (dir) => flipInLine(join(dir, SNAP), 0),
    expect: { loaded: 5, warn: /recovered from the previous generation instead: the empty state/ },
  },
  {
    name: "the newest snapshot damaged and the previous log gone",
    batches: 9,
    compactAt: [3, 6],
    damage: (dir) => {
      flipInLine(join(dir, SNAP), 0);
      rmSync(join(dir, "wal.1.log"));
    },
    expect: {
      refused:
        /snapshot\.json: checksum mismatch; the previous generation \(snapshot\.1\.json, seq 3, and the logs after it\) cannot replace it: .*records 4\.\.6 are missing/,
    },
  },
  {
    name: "both snapshots damaged",
    batches: 9,
    compactAt: [3, 6],
    damage: (dir) => {
      flipInLine(join(dir, SNAP), 0);
      flipInLine(join(dir, "snapshot.1.json"), 0);
    },
    expect: {
      refused: /and the previous snapshot is damaged too: .*snapshot\.1\.json: checksum mismatch/,
    },
  },
  {
    name: "a bit flipped in the previous log, newest snapshot fine (not needed)",
    batches: 9,
    compactAt: [3, 6],
    damage: (dir) => flipInLine(join(dir, "wal.1.log"), 2),
    expect: { loaded: 9 },
  },
];

async function open(dir: string, c: Case): Promise<{ s: EmbeddedStore; warned: string[] }> {
  const w = warnings();
  const s = await openEmbeddedStore(dir, {
    onWarning: w.onWarning,
    requireExisting: c.requireExisting ?? false,
  });
  return { s, warned: w.list };
}

describe("store corruption table", () => {
  for (const c of cases) {
    test(c.name, async (t) => {
      const dir = tmpStoreDir(t);
      await fill(dir, c.batches, c.compactAt);
      c.damage(dir);
      const e = c.expect;
      if ("refused" in e) {
        await assert.rejects(open(dir, c), (err: unknown) => {
          assert.ok(err instanceof StoreError, String(err));
          assert.equal(err.code, e.code ?? "ERR_CORRUPT");
          assert.match(err.message, e.refused);
          if (err.code === "ERR_CORRUPT") assert.match(err.message, REPAIR);
          assert.ok(err.message.includes(dir), "the message names the directory");
          return true;
        });
        assert.equal(existsSync(join(dir, "LOCK")), false, "lock released after a failed open");
        return;
      }
      const { s, warned } = await open(dir, c);
      try {
        assert.equal(s.stats().seq, e.loaded);
        assert.equal(
          s.view((tx) => tx.getMeta<number>("last") ?? 0),
          e.loaded,
        );
        assert.equal(
          s.view((tx) => tx.listTasks().length),
          e.loaded,
        );
        if (e.warn) {
          assert.equal(warned.length, 1, warned.join("\n"));
          assert.match(warned[0]!, e.warn);
        } else assert.deepEqual(warned, []);
        // The store goes on: a new batch, compaction, and a clean reopen.
        await s.update((tx) => tx.putMeta("last", e.loaded + 1));
        await s.compact();
      } finally {
        await s.close();
      }
      const r = await openEmbeddedStore(dir, { onWarning: () => {} });
      assert.deepEqual(r.warnings, []);
      assert.equal(r.stats().seq, e.loaded + 1);
      await r.close();
    });
  }
});

describe("repairStore", () => {
  test("keeps the state up to the damage and moves the files aside; the store then opens", async (t) => {
    const dir = tmpStoreDir(t);
    await fill(dir, 9, [3]);
    flipInLine(wal(dir), 4); // record 7 (the log follows seq 3)
    await assert.rejects(openEmbeddedStore(dir), /line 5 .*checksum mismatch/);
    const report = await repairStore(dir, { now: new Date(0) });
    assert.equal(report.repaired, true);
    assert.equal(report.seq, 6);
    assert.match(report.damage!, /wal\.log line 5 \(byte \d+\): checksum mismatch/);
    assert.match(report.message, /kept the state up to seq 6 .*changes after seq 6 are lost/s);
    const aside = join(dir, "damaged-1970-01-01T00-00-00-000Z");
    assert.equal(report.movedTo, aside);
    assert.deepEqual(readdirSync(aside).sort(), ["snapshot.json", "wal.1.log", "wal.log"]);
    const s = await openEmbeddedStore(dir);
    t.after(() => s.close());
    assert.deepEqual(s.warnings, []);
    assert.equal(s.stats().seq, 6);
    assert.equal(
      s.view((tx) => tx.getMeta("last")),
      6,
    );
    await s.update((tx) => tx.putMeta("last", 7));
  });

  test("a store that opens is left alone", async (t) => {
    const dir = tmpStoreDir(t);
    await fill(dir, 4);
    const before = readFileSync(wal(dir));
    const report = await repairStore(dir);
    assert.equal(report.repaired, false);
    assert.equal(report.seq, 4);
    assert.match(report.message, /nothing to repair/);
    assert.deepEqual(readFileSync(wal(dir)), before);
  });

  test("refused while the store is open", async (t) => {
    const dir = tmpStoreDir(t);
    const s = await openEmbeddedStore(dir);
    t.after(() => s.close());
    await assert.rejects(repairStore(dir), (err: unknown) => {
      return err instanceof StoreError && err.code === "ERR_LOCKED";
    });
  });

  test("a missing log after a snapshot: the snapshot's state is kept", async (t) => {
    const dir = tmpStoreDir(t);
    await fill(dir, 5, [3]);
    rmSync(wal(dir));
    const report = await repairStore(dir);
    assert.equal(report.seq, 3);
    assert.match(report.damage!, /wal\.log is empty or missing/);
    const s = await openEmbeddedStore(dir);
    assert.equal(s.stats().seq, 3);
    await s.close();
  });
});

test("repairStore: both snapshots damaged, the logs reach back to seq 0", async (t) => {
  const dir = tmpStoreDir(t);
  await fill(dir, 5, [3]);
  flipInLine(join(dir, SNAP), 0);
  writeFileSync(join(dir, "snapshot.1.json"), "{damaged");
  await assert.rejects(openEmbeddedStore(dir), /the previous snapshot is damaged too/);
  const report = await repairStore(dir);
  assert.equal(report.seq, 5, report.message);
  assert.equal(report.damage, null);
  assert.match(report.message, /rebuilding from the logs alone/);
  const s = await openEmbeddedStore(dir);
  assert.equal(
    s.view((tx) => tx.listTasks().length),
    5,
  );
  await s.close();
});

describe("previous snapshot generation after a fallback", () => {
  test("the damaged snapshot is set aside, never kept as the previous generation", async (t) => {
    const dir = tmpStoreDir(t);
    await fill(dir, 9, [3, 6]);
    flipInLine(join(dir, SNAP), 0);
    const s = await openEmbeddedStore(dir, { onWarning: () => {} });
    assert.equal(s.warnings.length, 1);
    await s.update((tx) => tx.putMeta("last", 10));
    await s.compact();
    await s.close();
    assert.ok(existsSync(join(dir, "snapshot.json.damaged")));
    // The previous generation is still the good snapshot at seq 3, not the damaged one.
    const prev = readFileSync(join(dir, "snapshot.1.json"), "utf8");
    assert.match(prev, /"seq":3,/);
    const r = await openEmbeddedStore(dir);
    assert.deepEqual(r.warnings, []);
    assert.equal(r.stats().seq, 10);
    await r.close();
  });
});

describe("files written before logs had headers", () => {
  test("a log without a header, and an empty log after a format 1 snapshot, still open", async (t) => {
    const dir = tmpStoreDir(t);
    const put = (i: number) =>
      encodeBatch(i, [{ action: "put", kind: "meta", id: "last", value: i }]);
    writeFileSync(wal(dir), Buffer.concat([put(1), put(2), put(3)]));
    const s = await openEmbeddedStore(dir);
    assert.deepEqual(s.warnings, []);
    assert.equal(s.stats().seq, 3);
    await s.update((tx) => tx.putMeta("last", 4));
    await s.close();
    const r = await openEmbeddedStore(dir);
    assert.equal(
      r.view((tx) => tx.getMeta("last")),
      4,
    );
    await r.close();

    const dir2 = tmpStoreDir(t);
    const doc = { format: 1, seq: 7, nodes: [], services: [], tasks: [], meta: [["last", 7]] };
    writeFileSync(join(dir2, SNAP), seal(JSON.stringify(doc).slice(0, -1)));
    writeFileSync(wal(dir2), "");
    const s2 = await openEmbeddedStore(dir2);
    assert.equal(s2.stats().seq, 7);
    await s2.update((tx) => tx.putMeta("last", 8));
    await s2.close();
    const r2 = await openEmbeddedStore(dir2);
    assert.equal(r2.stats().seq, 8);
    await r2.close();
    // The same empty log after a snapshot of today's format is damage.
    const dir3 = tmpStoreDir(t);
    writeFileSync(join(dir3, SNAP), seal(JSON.stringify({ ...doc, format: 2 }).slice(0, -1)));
    writeFileSync(wal(dir3), "");
    await assert.rejects(openEmbeddedStore(dir3), /wal\.log is empty or missing/);
  });
});
