// The IPAM functions (src/manager/ipam.ts): tables of subnets, gateways, VNIs and addresses,
// and properties (fast-check): a pool never gives a subnet that overlaps one taken; addresses
// are never the network, gateway or broadcast address, never given twice, tasks and nodes stay
// in the lower half and VIPs in the upper one.

import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  DEFAULT_ADDR_POOL,
  DEFAULT_POOL_MASK_LENGTH,
  allocateAddr,
  allocateSubnet,
  allocateVni,
  checkPool,
  checkSubnet,
  gatewayFor,
  overlaps,
  parseCidr,
  parseIPv4,
  poolSubnet,
} from "../../src/manager/ipam.js";
import { ManagerError } from "../../src/manager/errors.js";
import { propertyParams } from "../helpers/property.js";

const POOL = { pool: DEFAULT_ADDR_POOL, maskLength: DEFAULT_POOL_MASK_LENGTH };

function isError(code: string, re: RegExp) {
  return (err: unknown) =>
    err instanceof ManagerError && err.code === code && re.test((err as Error).message);
}

test("parseCidr accepts networks and refuses the rest with the problem named", () => {
  assert.deepEqual(parseCidr("10.0.1.0/24"), { base: 0x0a000100, prefix: 24 });
  assert.deepEqual(parseCidr("0.0.0.0/0"), { base: 0, prefix: 0 });
  const bad: Array<[string, RegExp]> = [
    ["10.0.1.0", /invalid CIDR address: 10\.0\.1\.0/],
    ["10.0.1.0/33", /invalid CIDR/],
    ["10.0.256.0/24", /invalid CIDR/],
    ["10.0.01.0/24", /invalid CIDR/],
    ["10.0.1.5/24", /host bits set \(the network is 10\.0\.1\.0\/24\)/],
    ["fd00::/64", /only IPv4/],
  ];
  for (const [s, re] of bad) assert.throws(() => parseCidr(s), isError("ERR_INVALID", re), s);
});

test("allocateSubnet: the pool's first free /24, skipping every taken range", () => {
  const rows: Array<[string[], string | null]> = [
    [[], "10.0.0.0/24"],
    [["10.0.0.0/24"], "10.0.1.0/24"],
    [["10.0.0.0/24", "10.0.1.0/24", "10.0.3.0/24"], "10.0.2.0/24"],
    [["10.0.0.0/23"], "10.0.2.0/24"],
    [["10.0.1.128/25", "10.0.0.0/24"], "10.0.2.0/24"],
    [["192.168.0.0/16", "10.0.0.0/24"], "10.0.1.0/24"],
    [["10.0.0.0/8"], null],
  ];
  for (const [taken, want] of rows) assert.equal(allocateSubnet(POOL, taken), want, taken.join());
  // A small pool runs out.
  const small = { pool: "192.168.0.0/23", maskLength: 24 };
  assert.equal(allocateSubnet(small, ["192.168.0.0/24"]), "192.168.1.0/24");
  assert.equal(allocateSubnet(small, ["192.168.0.0/24", "192.168.1.0/24"]), null);
  assert.equal(poolSubnet(small, 0), "192.168.0.0/24");
  assert.equal(poolSubnet(small, 2), null);
});

test("checkSubnet refuses an overlap with Docker's words, and unusable sizes", () => {
  assert.deepEqual(checkSubnet("10.0.5.0/24", ["10.0.0.0/24"]), parseCidr("10.0.5.0/24"));
  for (const taken of [["10.0.5.0/24"], ["10.0.0.0/16"], ["10.0.5.128/25"]]) {
    assert.throws(
      () => checkSubnet("10.0.5.0/24", taken),
      isError("ERR_CONFLICT", /^Pool overlaps with other one on this address space$/),
    );
  }
  assert.throws(() => checkSubnet("10.0.5.0/30", []), isError("ERR_INVALID", /\/8 and \/29/));
  assert.throws(() => checkSubnet("10.0.0.0/7", []), isError("ERR_INVALID", /\/8 and \/29/));
});

test("checkPool refuses a mask shorter than the pool", () => {
  checkPool({ pool: "172.20.0.0/16", maskLength: 26 });
  assert.throws(
    () => checkPool({ pool: "172.20.0.0/16", maskLength: 12 }),
    isError("ERR_INVALID", /mask length/),
  );
  assert.throws(() => checkPool({ pool: "172.20.0.1/16", maskLength: 24 }), /host bits/);
});

test("gatewayFor: the first address, or a given usable one", () => {
  assert.equal(gatewayFor("10.0.1.0/24"), "10.0.1.1");
  assert.equal(gatewayFor("10.0.1.0/24", "10.0.1.254"), "10.0.1.254");
  for (const g of ["10.0.1.0", "10.0.1.255", "10.0.2.1", "x"]) {
    assert.throws(() => gatewayFor("10.0.1.0/24", g), isError("ERR_INVALID", /gateway/), g);
  }
});

test("allocateVni: the lowest free id from 4096", () => {
  assert.equal(allocateVni([]), 4096);
  assert.equal(allocateVni([4096, 4097, 4099]), 4098);
  assert.equal(allocateVni([1, 2]), 4096);
});

test("allocateAddr: lower half for tasks and nodes, upper half for VIPs", () => {
  const sub = "10.0.1.0/24";
  assert.equal(allocateAddr(sub, "10.0.1.1", new Set(), "lower"), "10.0.1.2");
  assert.equal(allocateAddr(sub, "10.0.1.1", new Set(), "lower", true), "10.0.1.2/24");
  assert.equal(allocateAddr(sub, "10.0.1.1", new Set(["10.0.1.2/24"]), "lower"), "10.0.1.3");
  assert.equal(allocateAddr(sub, "10.0.1.1", new Set(), "upper"), "10.0.1.128");
  assert.equal(allocateAddr(sub, "10.0.1.128", new Set(), "upper"), "10.0.1.129");
  // A /29: tasks get .2 and .3; VIPs .4 to .6 (never .7, the broadcast).
  const tiny = "10.0.9.0/29";
  const used = new Set<string>();
  const got: Array<string | null> = [];
  for (let i = 0; i < 3; i++) {
    const a = allocateAddr(tiny, "10.0.9.1", used, "lower");
    got.push(a);
    if (a) used.add(a);
  }
  assert.deepEqual(got, ["10.0.9.2", "10.0.9.3", null]);
  const vips: Array<string | null> = [];
  for (let i = 0; i < 4; i++) {
    const a = allocateAddr(tiny, "10.0.9.1", used, "upper");
    vips.push(a);
    if (a) used.add(a);
  }
  assert.deepEqual(vips, ["10.0.9.4", "10.0.9.5", "10.0.9.6", null]);
});

test("property: a subnet from the pool never overlaps a taken one", () => {
  const arbTaken = fc.array(
    fc.tuple(fc.integer({ min: 0, max: 40 }), fc.integer({ min: 20, max: 28 })).map(([i, p]) => {
      const step = 2 ** (32 - p);
      const base = 0x0a000000 + i * step;
      return `${[base >>> 24, (base >>> 16) & 255, (base >>> 8) & 255, base & 255].join(".")}/${p}`;
    }),
    { maxLength: 12 },
  );
  fc.assert(
    fc.property(arbTaken, fc.integer({ min: 20, max: 28 }), (taken, mask) => {
      const pool = { pool: "10.0.0.0/16", maskLength: mask };
      const got = allocateSubnet(pool, taken);
      if (got === null) {
        // Full only when every candidate overlaps something.
        for (let i = 0; ; i++) {
          const cand = poolSubnet(pool, i);
          if (cand === null) break;
          assert.ok(
            taken.some((t) => overlaps(parseCidr(t), parseCidr(cand))),
            `${cand} was free`,
          );
        }
        return;
      }
      const c = parseCidr(got);
      assert.equal(c.prefix, mask);
      assert.ok(overlaps(parseCidr("10.0.0.0/16"), c));
      for (const t of taken) assert.ok(!overlaps(parseCidr(t), c), `${got} overlaps ${t}`);
    }),
    propertyParams(300),
  );
});

test("property: addresses are unique, in their half, never network/gateway/broadcast", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 24, max: 29 }),
      fc.array(fc.constantFrom<"lower" | "upper">("lower", "upper"), { maxLength: 80 }),
      fc.boolean(),
      (prefix, halves, highGateway) => {
        const subnet = `10.1.0.0/${prefix}`;
        const n = 2 ** (32 - prefix);
        const base = parseIPv4("10.1.0.0")!;
        const gw = highGateway ? "10.1.0." + String(n - 2) : gatewayFor(subnet);
        const used = new Set<string>();
        for (const half of halves) {
          const a = allocateAddr(subnet, gw, used, half, half === "lower");
          if (a === null) {
            // Full: every address of that half is taken (or the gateway).
            const cap = n / 2 - 1; // either half: minus the network or the broadcast address
            const inHalf = [...used].filter((u) => {
              const off = parseIPv4(u.split("/")[0]!)! - base;
              return half === "lower" ? off < n / 2 : off >= n / 2;
            }).length;
            const gwIn =
              half === "lower"
                ? parseIPv4(gw)! - base < n / 2
                : parseIPv4(gw)! - base >= n / 2 && parseIPv4(gw)! - base < n - 1;
            assert.equal(inHalf + (gwIn ? 1 : 0), cap);
            continue;
          }
          const bare = a.split("/")[0]!;
          const off = parseIPv4(bare)! - base;
          assert.ok(off > 0 && off < n - 1, `${a} is the network or broadcast address`);
          assert.notEqual(bare, gw);
          assert.ok(half === "lower" ? off < n / 2 : off >= n / 2, `${a} not in the ${half} half`);
          assert.ok(![...used].some((u) => u.split("/")[0] === bare), `${a} given twice`);
          used.add(a);
        }
      },
    ),
    propertyParams(200),
  );
});
