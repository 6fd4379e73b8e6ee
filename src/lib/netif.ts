// The address a node advertises when the user gives none, chosen as Docker Swarm chooses it: the
// address of the interface that holds the default route; else the one address the machine has;
// and an error naming the candidates when it cannot choose.

import { networkInterfaces, type NetworkInterfaceInfo } from "node:os";
import { readFileSync } from "node:fs";

export class AdvertiseAddrError extends Error {
  readonly code = "ERR_ADVERTISE_ADDR";
}

export type Interfaces = Record<string, NetworkInterfaceInfo[] | undefined>;

/** The interface of the IPv4 default route (Linux /proc/net/route), if any. */
export function defaultRouteInterface(routeTable?: string): string | undefined {
  let text = routeTable;
  if (text === undefined) {
    try {
      text = readFileSync("/proc/net/route", "utf8");
    } catch {
      return undefined;
    }
  }
  for (const line of text.split("\n").slice(1)) {
    const [iface, dest, , , , , , mask] = line.trim().split(/\s+/);
    if (iface && dest === "00000000" && mask === "00000000") return iface;
  }
  return undefined;
}

/** Addresses worth advertising: not loopback, not link-local. */
function candidates(ifaces: Interfaces, family: "IPv4" | "IPv6"): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const [name, list] of Object.entries(ifaces)) {
    for (const a of list ?? []) {
      if (a.family !== family || a.internal) continue;
      if (family === "IPv4" && a.address.startsWith("169.254.")) continue;
      if (family === "IPv6" && /^fe80:/i.test(a.address)) continue;
      out.push([name, a.address]);
    }
  }
  return out;
}

/**
 * The machine's address to advertise. Throws AdvertiseAddrError with Docker's wording when there
 * is none, or several on different interfaces and no default route to choose between them.
 */
export function systemAddress(
  machine: { ifaces: Interfaces; routeIface: string | undefined } = {
    ifaces: networkInterfaces(),
    routeIface: defaultRouteInterface(),
  },
): string {
  const { ifaces, routeIface } = machine;
  for (const family of ["IPv4", "IPv6"] as const) {
    const found = candidates(ifaces, family);
    if (found.length === 0) continue;
    const onRoute = found.find(([name]) => name === routeIface);
    if (onRoute) return onRoute[1];
    const names = new Set(found.map(([name]) => name));
    if (names.size === 1) return found[0]![1];
    const [a, b] = found.filter(([n], i) => found.findIndex(([m]) => m === n) === i);
    throw new AdvertiseAddrError(
      `could not choose an IP address to advertise since this system has multiple addresses on different interfaces (${a![1]} on ${a![0]} and ${b![1]} on ${b![0]}) - specify one with --advertise-addr`,
    );
  }
  throw new AdvertiseAddrError(
    "could not find the system's IP address - specify one with --advertise-addr",
  );
}
