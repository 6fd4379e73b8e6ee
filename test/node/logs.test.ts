// Task log files: rotation that keeps the tail and lets an O_APPEND writer carry on, and
// reading lines back (everything, a tail across the rotated file, follow until aborted).

import { test } from "node:test";
import assert from "node:assert/strict";
import {
  appendFileSync,
  closeSync,
  existsSync,
  openSync,
  readFileSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { join } from "node:path";
import { capLogFile, readLogs, type LogLine } from "../../src/node/drivers/logs.js";
import { checkFor, tempDir } from "./helpers.js";

async function collect(it: AsyncIterable<LogLine>): Promise<string[]> {
  const out: string[] = [];
  for await (const l of it) out.push(`${l.stream}:${l.line}`);
  return out;
}

const numbered = (from: number, to: number): string =>
  Array.from({ length: to - from }, (_, i) => `line ${from + i}\n`).join("");

test("capLogFile keeps the last half-cap from a line start and truncates in place", (t) => {
  const dir = tempDir(t);
  const f = join(dir, "stdout.log");
  writeFileSync(f, numbered(0, 100)); // "line N\n": 7-8 bytes each, 790 bytes
  assert.equal(capLogFile(f, 1000), false, "under the cap: untouched");
  assert.equal(existsSync(`${f}.1`), false);
  assert.equal(capLogFile(f, 200), true);
  assert.equal(readFileSync(f, "utf8"), "");
  const rotated = readFileSync(`${f}.1`, "utf8");
  assert.ok(rotated.length <= 100);
  assert.match(rotated, /^line \d+\n(line \d+\n)*line 99\n$/);
  assert.equal(capLogFile(join(dir, "missing.log"), 10), false);
  assert.equal(capLogFile(f, 0), false, "0 = no cap");
});

test("a writer with an O_APPEND descriptor keeps working across rotation", (t) => {
  const dir = tempDir(t);
  const f = join(dir, "stdout.log");
  const fd = openSync(f, "a");
  try {
    writeSync(fd, numbered(0, 50));
    assert.ok(capLogFile(f, 64));
    writeSync(fd, "after\n");
    assert.equal(readFileSync(f, "utf8"), "after\n", "no hole, no old bytes");
  } finally {
    closeSync(fd);
  }
});

test("readLogs yields stdout then stderr, rotated content first", async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, "stdout.log.1"), "old 1\nold 2\n");
  writeFileSync(join(dir, "stdout.log"), "new 1\nnew 2\nunterminated");
  writeFileSync(join(dir, "stderr.log"), "oops\n");
  assert.deepEqual(await collect(readLogs(dir)), [
    "stdout:old 1",
    "stdout:old 2",
    "stdout:new 1",
    "stdout:new 2",
    "stdout:unterminated",
    "stderr:oops",
  ]);
  assert.deepEqual(await collect(readLogs(tempDir(t))), [], "no logs yet");
});

test("readLogs tail reaches into the rotated file and spans read chunks", async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, "stdout.log.1"), "old 1\nold 2\n");
  writeFileSync(join(dir, "stdout.log"), "new 1\n");
  writeFileSync(join(dir, "stderr.log"), "e1\ne2\ne3\n");
  assert.deepEqual(await collect(readLogs(dir, { tail: 2 })), [
    "stdout:old 2",
    "stdout:new 1",
    "stderr:e2",
    "stderr:e3",
  ]);
  assert.deepEqual(await collect(readLogs(dir, { tail: 0 })), []);
  assert.equal((await collect(readLogs(dir, { tail: 100 }))).length, 6);

  // Long lines across the 64 KiB chunks of the backwards reader.
  const big = tempDir(t);
  const long = (i: number): string => `${i}:${"y".repeat(30_000)}\n`;
  writeFileSync(join(big, "stdout.log"), [0, 1, 2, 3, 4, 5].map(long).join(""));
  const got = await collect(readLogs(big, { tail: 4 }));
  assert.deepEqual(
    got.map((l) => l.slice(0, 9)),
    ["stdout:2:", "stdout:3:", "stdout:4:", "stdout:5:"],
  );
  assert.ok(got.every((l) => l.length === "stdout:0:".length + 30_000));
});

test("readLogs follow yields new lines, survives rotation and stops on abort", async (t) => {
  const dir = tempDir(t);
  const out = join(dir, "stdout.log");
  writeFileSync(out, "first\npart");
  const ac = new AbortController();
  const seen: string[] = [];
  const done = (async () => {
    for await (const l of readLogs(dir, { follow: true, tail: 5, signal: ac.signal, pollMs: 10 })) {
      seen.push(`${l.stream}:${l.line}`);
    }
  })();
  await checkFor(2000, () => seen.length === 1);
  assert.deepEqual(seen, ["stdout:first"], "an unterminated line waits for its newline");
  appendFileSync(out, "ial\n");
  appendFileSync(join(dir, "stderr.log"), "err\n");
  await checkFor(2000, () => seen.length === 3);
  assert.deepEqual(seen.slice(1).sort(), ["stderr:err", "stdout:partial"]);
  appendFileSync(out, numbered(0, 5));
  await checkFor(2000, () => seen.includes("stdout:line 4"));
  capLogFile(out, 10);
  appendFileSync(out, "after rotation\n");
  await checkFor(2000, () => seen.includes("stdout:after rotation"));
  ac.abort();
  await done;
});
