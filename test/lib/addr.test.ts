// host:port parsing as a table: IPv4, bracketed and bare IPv6, names, bare ports, URLs, and the
// errors for what is not an address.

import { test } from "node:test";
import assert from "node:assert/strict";
import {
  cidrHost,
  storeUsesTls,
  formatHost,
  isLoopback,
  isWildcard,
  joinHostPort,
  parseHostPort,
} from "../../src/lib/addr.js";

const ok: Array<[string, string, number | undefined]> = [
  ["10.0.0.1:2377", "10.0.0.1", 2377],
  ["10.0.0.1", "10.0.0.1", undefined],
  ["[::1]:2377", "::1", 2377],
  ["[fe80::1%eth0]:80", "fe80::1%eth0", 80],
  ["[::1]", "::1", undefined],
  ["::1", "::1", undefined],
  ["fe80::a:b", "fe80::a:b", undefined],
  ["manager-1:2377", "manager-1", 2377],
  ["manager-1", "manager-1", undefined],
  [":4222", "", 4222],
  ["4222", "", 4222],
  ["-1", "", -1],
  ["nats://user:pass@[::1]:4222", "::1", 4222],
  ["nats://10.0.0.1:4222/", "10.0.0.1", 4222],
  ["tcp://127.0.0.1:0", "127.0.0.1", 0],
];

for (const [text, host, port] of ok) {
  test(`parseHostPort(${JSON.stringify(text)})`, () => {
    assert.deepEqual(parseHostPort(text), { host, port });
  });
}

const bad: Array<[string, RegExp]> = [
  ["[::1", /missing '\]'/],
  ["[::1]x", /invalid address/],
  ["host:port", /invalid port/],
  ["host:70000", /invalid port 70000/],
];

for (const [text, message] of bad) {
  test(`parseHostPort(${JSON.stringify(text)}) is refused`, () => {
    assert.throws(() => parseHostPort(text), message);
  });
}

test("joinHostPort brackets IPv6 hosts, and round-trips with parseHostPort", () => {
  assert.equal(joinHostPort("::1", 2377), "[::1]:2377");
  assert.equal(joinHostPort("10.0.0.1", 2377), "10.0.0.1:2377");
  assert.equal(formatHost("[::1]"), "[::1]");
  for (const [host, port] of [
    ["::1", 1],
    ["10.1.2.3", 65535],
    ["name", 80],
  ] as const) {
    assert.deepEqual(parseHostPort(joinHostPort(host, port)), { host, port });
  }
});

test("wildcard and loopback hosts", () => {
  assert.deepEqual(["", "0.0.0.0", "::", "127.0.0.1"].map(isWildcard), [true, true, true, false]);
  assert.deepEqual(["127.0.0.1", "127.9.9.9", "::1", "localhost", "10.0.0.1"].map(isLoopback), [
    true,
    true,
    true,
    true,
    false,
  ]);
});

test("cidrHost: the address part of an address with its prefix length", () => {
  assert.equal(cidrHost("10.0.1.5/24"), "10.0.1.5");
  assert.equal(cidrHost("10.0.1.5"), "10.0.1.5");
  assert.equal(cidrHost("fd00::1/64"), "fd00::1");
});

test("storeUsesTls: any https:// endpoint means etcd with TLS", () => {
  assert.equal(storeUsesTls(["https://10.0.0.1:2379"]), true);
  assert.equal(storeUsesTls(["http://10.0.0.1:2379", "https://10.0.0.2:2379"]), true);
  assert.equal(storeUsesTls(["http://10.0.0.1:2379"]), false);
  assert.equal(storeUsesTls([]), false);
});
