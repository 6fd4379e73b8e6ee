// The message server's log time stamps: local time, read from UTC fields when local time is known
// to be UTC without asking the time zone database (src/nats/log.ts, localTimeIsUtc).

import { test } from "node:test";
import assert from "node:assert/strict";
import { localTimeIsUtc, logTimestamp } from "../../src/nats/log.js";

const noLink = () => {
  throw Object.assign(new Error("EINVAL: invalid argument, readlink '/etc/localtime'"), {
    code: "EINVAL",
  });
};

test("localTimeIsUtc: TZ when set, else where /etc/localtime links to", () => {
  const cases: [string | undefined, () => string, boolean][] = [
    ["UTC", noLink, true],
    [":UTC", noLink, true],
    ["Etc/UTC", noLink, true],
    [":Etc/UTC", noLink, true],
    ["GMT", noLink, true],
    ["Etc/GMT+0", noLink, true],
    ["Zulu", noLink, true],
    ["Europe/Berlin", () => "/usr/share/zoneinfo/Etc/UTC", false],
    ["Etc/GMT+1", noLink, false],
    ["UTC+1", noLink, false],
    ["", () => "/usr/share/zoneinfo/Etc/UTC", false],
    [undefined, () => "/usr/share/zoneinfo/Etc/UTC", true],
    [undefined, () => "../usr/share/zoneinfo/UTC", true],
    [undefined, () => "/usr/share/zoneinfo/Europe/Berlin", false],
    [undefined, () => "/usr/share/zoneinfo/America/UTC-Like", false],
    [undefined, noLink, false],
  ];
  for (const [tz, link, want] of cases) {
    assert.equal(localTimeIsUtc(tz, link), want, `TZ=${String(tz)}`);
  }
});

test("logTimestamp: nats-server's format, from the UTC fields when local time is UTC", () => {
  const d = new Date(Date.UTC(2026, 10, 5, 9, 7, 3, 250));
  assert.equal(logTimestamp(d, 250_123, true), "2026/11/05 09:07:03.250123");
  const pad = (n: number) => String(n).padStart(2, "0");
  const local =
    `${d.getFullYear()}/${pad(d.getMonth() + 1)}/${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.000007`;
  assert.equal(logTimestamp(d, 7), local);
});
