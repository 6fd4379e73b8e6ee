// Go durations, parsed and printed, as a table.

import { test } from "node:test";
import assert from "node:assert/strict";
import { formatGoDuration, formatGoNanos, parseGoDuration } from "../../src/lib/duration.js";

test("parseGoDuration", () => {
  const rows: Array<[string, number | undefined]> = [
    ["100ms", 100],
    ["1.5s", 1500],
    ["1m30s", 90_000],
    ["2h", 7_200_000],
    ["10us", 0.01],
    ["0", 0],
    ["-1s", -1000],
    ["", undefined],
    ["10", undefined],
    ["1x", undefined],
    ["s", undefined],
  ];
  assert.deepEqual(
    rows.map(([t]) => parseGoDuration(t)),
    rows.map(([, v]) => v),
  );
});

test("formatGoDuration", () => {
  assert.deepEqual([0, 100, 2000, 1500, 90_000, 3_600_000].map(formatGoDuration), [
    "0s",
    "100ms",
    "2s",
    "1.5s",
    "1m30s",
    "1h0m0s",
  ]);
});

test("formatGoNanos: as Go's time.Duration.String", () => {
  assert.deepEqual(
    [950, 1000, 1873, 38_863, 2_500_000, 1_234_567, 1_500_000_000].map(formatGoNanos),
    ["950ns", "1µs", "1.873µs", "38.863µs", "2.5ms", "1.234567ms", "1.5s"],
  );
});
