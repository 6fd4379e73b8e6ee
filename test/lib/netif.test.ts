// The address to advertise when none is given, as a table over made-up interface lists.

import { test } from "node:test";
import assert from "node:assert/strict";
import type { NetworkInterfaceInfo } from "node:os";
import { defaultRouteInterface, systemAddress, type Interfaces } from "../../src/lib/netif.js";

function v4(address: string, internal = false): NetworkInterfaceInfo {
  return { address, family: "IPv4", internal, netmask: "255.255.255.0", mac: "", cidr: null };
}
function v6(address: string): NetworkInterfaceInfo {
  return {
    address,
    family: "IPv6",
    internal: false,
    netmask: "ffff:ffff:ffff:ffff::",
    mac: "",
    cidr: null,
    scopeid: 0,
  };
}

const lo = { lo: [v4("127.0.0.1", true)] };

const cases: Array<{ name: string; ifaces: Interfaces; route?: string; expect: string | RegExp }> =
  [
    { name: "one interface", ifaces: { ...lo, eth0: [v4("10.0.0.5")] }, expect: "10.0.0.5" },
    {
      name: "several: the default route's",
      ifaces: { ...lo, eth0: [v4("10.0.0.5")], eth1: [v4("192.168.1.9")] },
      route: "eth1",
      expect: "192.168.1.9",
    },
    {
      name: "several, no default route: Docker's error naming two",
      ifaces: { ...lo, eth0: [v4("10.0.0.5")], eth1: [v4("192.168.1.9")] },
      expect:
        /multiple addresses on different interfaces \(10\.0\.0\.5 on eth0 and 192\.168\.1\.9 on eth1\)/,
    },
    {
      name: "two addresses on one interface: the first",
      ifaces: { ...lo, eth0: [v4("10.0.0.5"), v4("10.0.0.6")] },
      expect: "10.0.0.5",
    },
    {
      name: "link-local is skipped",
      ifaces: { ...lo, eth0: [v4("169.254.1.1")], eth1: [v4("10.0.0.7")] },
      expect: "10.0.0.7",
    },
    {
      name: "IPv6 only",
      ifaces: { ...lo, eth0: [v6("fe80::1"), v6("2001:db8::5")] },
      expect: "2001:db8::5",
    },
    { name: "loopback only", ifaces: lo, expect: /could not find the system's IP address/ },
  ];

for (const c of cases) {
  test(`systemAddress: ${c.name}`, () => {
    if (typeof c.expect === "string")
      assert.equal(systemAddress({ ifaces: c.ifaces, routeIface: c.route }), c.expect);
    else assert.throws(() => systemAddress({ ifaces: c.ifaces, routeIface: c.route }), c.expect);
  });
}

test("defaultRouteInterface reads /proc/net/route's default entry", () => {
  const table =
    "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT\n" +
    "eth1\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n" +
    "eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n";
  assert.equal(defaultRouteInterface(table), "eth0");
  assert.equal(defaultRouteInterface(table.split("\n").slice(0, 2).join("\n")), undefined);
});
