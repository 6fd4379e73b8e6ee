// goTimeString: Go's time.Time String() in UTC and in local time (TZ set for the test).

import { test } from "node:test";
import assert from "node:assert/strict";
import { goTimeString } from "../../src/lib/gotime.js";

test("goTimeString prints Go's time.Time String() in UTC", () => {
  const rows: Array<[number, string]> = [
    [Date.UTC(2017, 2, 24, 8, 15, 9, 730), "2017-03-24 08:15:09.73 +0000 UTC"],
    [Date.UTC(2017, 2, 24, 8, 15, 9, 735), "2017-03-24 08:15:09.735 +0000 UTC"],
    [Date.UTC(2026, 11, 7, 23, 16, 7), "2026-12-07 23:16:07 +0000 UTC"],
    [Date.UTC(2026, 0, 1, 0, 0, 0, 100), "2026-01-01 00:00:00.1 +0000 UTC"],
  ];
  for (const [ms, want] of rows) assert.equal(goTimeString(ms), want);
});

test("goTimeString prints local time with the zone's offset and name", (t) => {
  const before = process.env["TZ"];
  t.after(() => {
    if (before === undefined) delete process.env["TZ"];
    else process.env["TZ"] = before;
  });
  process.env["TZ"] = "America/New_York";
  assert.equal(
    goTimeString(Date.UTC(2026, 11, 7, 23, 16, 7), "local"),
    "2026-12-07 18:16:07 -0500 EST",
  );
  assert.equal(
    goTimeString(Date.UTC(2026, 6, 1, 12, 0, 0, 500), "local"),
    "2026-07-01 08:00:00.5 -0400 EDT",
  );
  process.env["TZ"] = "UTC";
  assert.equal(
    goTimeString(Date.UTC(2026, 11, 7, 23, 16, 7), "local"),
    "2026-12-07 23:16:07 +0000 UTC",
  );
});
