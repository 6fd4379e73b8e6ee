// IP address management for user-defined networks, as pure functions: subnets from the default
// address pool (Swarm's 10.0.0.0/8 in /24s unless `init --default-addr-pool` says otherwise),
// explicit subnets checked for overlap, gateways, VXLAN ids, and addresses inside a subnet.
// Nothing here reads the store or the clock: callers pass what is in use and get allocations.
//
// The split of a subnet (the node side relies on it):
//   - the LOWER half holds the addresses of tasks and of nodes (each node's bridge address);
//   - the UPPER half holds the services' virtual IPs, which the node routes via itself (one
//     route for the upper half) so that a VIP is never a neighbour on the bridge.
// Neither half ever hands out the network address, the gateway or the broadcast address, and no
// address is given twice: `used` is everything taken on the network (non-terminal tasks, node
// addresses, VIPs), computed by the caller from the current state.

import { ManagerError } from "./errors.js";

/** Docker's swarm default address pool and subnet size. */
export const DEFAULT_ADDR_POOL = "10.0.0.0/8";
export const DEFAULT_POOL_MASK_LENGTH = 24;
/** The first VXLAN id given to a network (Docker's overlay driver starts at 4096 too). */
export const FIRST_VNI = 4096;
export const MAX_VNI = 16_777_215;
/** The smallest network: a /29 has 3 task/node addresses and 3 VIPs. */
export const MAX_PREFIX = 29;

export interface Cidr {
  /** The network address as an unsigned 32-bit integer. */
  base: number;
  prefix: number;
}

export interface AddrPool {
  pool: string;
  maskLength: number;
}

export function parseIPv4(s: string): number | null {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (!m) return null;
  let n = 0;
  for (let i = 1; i <= 4; i++) {
    const b = Number(m[i]);
    if (b > 255 || (m[i]!.length > 1 && m[i]!.startsWith("0"))) return null;
    n = n * 256 + b;
  }
  return n;
}

export function formatIPv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join(".");
}

function size(prefix: number): number {
  return 2 ** (32 - prefix);
}

/** Parses `a.b.c.d/p`; the address must be the network's own (no host bits), as Docker wants. */
export function parseCidr(s: string): Cidr {
  const slash = s.indexOf("/");
  const ip = slash < 0 ? null : parseIPv4(s.slice(0, slash));
  const pstr = slash < 0 ? "" : s.slice(slash + 1);
  const prefix = /^\d{1,2}$/.test(pstr) ? Number(pstr) : NaN;
  if (s.includes(":")) {
    throw new ManagerError("ERR_INVALID", `invalid subnet ${s}: only IPv4 subnets are supported`);
  }
  if (ip === null || !(prefix >= 0 && prefix <= 32)) {
    throw new ManagerError("ERR_INVALID", `invalid CIDR address: ${s}`);
  }
  if (ip % size(prefix) !== 0) {
    throw new ManagerError(
      "ERR_INVALID",
      `invalid subnet ${s}: it has host bits set (the network is ${formatIPv4(ip - (ip % size(prefix)))}/${prefix})`,
    );
  }
  return { base: ip, prefix };
}

export function formatCidr(c: Cidr): string {
  return `${formatIPv4(c.base)}/${c.prefix}`;
}

export function overlaps(a: Cidr, b: Cidr): boolean {
  return a.base < b.base + size(b.prefix) && b.base < a.base + size(a.prefix);
}

export function contains(c: Cidr, ip: number): boolean {
  return ip >= c.base && ip < c.base + size(c.prefix);
}

/** Checks an explicit subnet: a usable IPv4 network that overlaps none of `taken`. */
export function checkSubnet(subnet: string, taken: readonly string[]): Cidr {
  const c = parseCidr(subnet);
  if (c.prefix > MAX_PREFIX || c.prefix < 8) {
    throw new ManagerError(
      "ERR_INVALID",
      `invalid subnet ${subnet}: the prefix length must be between /8 and /${MAX_PREFIX}`,
    );
  }
  if (taken.some((t) => overlaps(c, parseCidr(t)))) {
    throw new ManagerError("ERR_CONFLICT", "Pool overlaps with other one on this address space");
  }
  return c;
}

/** Checks an address pool setting (`init --default-addr-pool`). */
export function checkPool(p: AddrPool): void {
  const c = parseCidr(p.pool);
  if (
    !Number.isInteger(p.maskLength) ||
    p.maskLength < c.prefix ||
    p.maskLength > MAX_PREFIX ||
    c.prefix < 8
  ) {
    throw new ManagerError(
      "ERR_INVALID",
      `invalid default address pool ${p.pool} with mask length ${p.maskLength}: the pool must be /8 or longer and the mask length between its prefix and ${MAX_PREFIX}`,
    );
  }
}

/** The pool's subnets in order (the first one is the ingress network's). */
export function poolSubnet(p: AddrPool, index: number): string | null {
  const c = parseCidr(p.pool);
  const count = 2 ** (p.maskLength - c.prefix);
  if (index < 0 || index >= count) return null;
  return formatCidr({ base: c.base + index * size(p.maskLength), prefix: p.maskLength });
}

/** The first subnet of the pool that overlaps none of `taken`; null when the pool is full. */
export function allocateSubnet(p: AddrPool, taken: readonly string[]): string | null {
  const c = parseCidr(p.pool);
  const step = size(p.maskLength);
  const end = c.base + size(c.prefix);
  const used = taken.map(parseCidr);
  let cand = c.base;
  // Each jump moves past one taken range, so this ends after at most `taken.length` jumps.
  for (;;) {
    if (cand + step > end) return null;
    const hit = used.find((u) => overlaps({ base: cand, prefix: p.maskLength }, u));
    if (!hit) break;
    cand = Math.ceil((hit.base + size(hit.prefix)) / step) * step;
  }
  if (cand + step > end) return null;
  return formatCidr({ base: cand, prefix: p.maskLength });
}

/** The gateway: the given one (inside the subnet, not its network or broadcast address), or
 * the subnet's first address. */
export function gatewayFor(subnet: string, given?: string): string {
  const c = parseCidr(subnet);
  if (given === undefined || given === "") return formatIPv4(c.base + 1);
  const ip = parseIPv4(given);
  if (ip === null) throw new ManagerError("ERR_INVALID", `invalid gateway address ${given}`);
  if (!contains(c, ip) || ip === c.base || ip === c.base + size(c.prefix) - 1) {
    throw new ManagerError(
      "ERR_INVALID",
      `gateway ${given} is not a usable address of subnet ${subnet}`,
    );
  }
  return given;
}

/** The lowest free VXLAN id from FIRST_VNI up. */
export function allocateVni(taken: readonly number[]): number {
  const set = new Set(taken);
  let v = FIRST_VNI;
  while (set.has(v)) v++;
  if (v > MAX_VNI) throw new ManagerError("ERR_CONFLICT", "no VXLAN ids left");
  return v;
}

export type Half = "lower" | "upper";

/** The first and last address (inclusive) a half may hand out, before excluding the gateway. */
export function halfRange(subnet: string, half: Half): [number, number] {
  const c = parseCidr(subnet);
  const n = size(c.prefix);
  return half === "lower" ? [c.base + 1, c.base + n / 2 - 1] : [c.base + n / 2, c.base + n - 2];
}

/** Strips a prefix length (`10.0.1.5/24` → `10.0.1.5`). */
export function bareAddr(a: string): string {
  const i = a.indexOf("/");
  return i < 0 ? a : a.slice(0, i);
}

/**
 * The lowest free address of `half` (never the gateway, never one in `used`, which holds bare
 * addresses or addresses with a prefix); null when the half is full. With `withPrefix`, the
 * address comes with the subnet's prefix length (`10.0.1.2/24`).
 */
export function allocateAddr(
  subnet: string,
  gateway: string,
  used: ReadonlySet<string>,
  half: Half,
  withPrefix = false,
): string | null {
  const prefix = parseCidr(subnet).prefix;
  const [lo, hi] = halfRange(subnet, half);
  const taken = new Set<number>();
  for (const u of used) {
    const ip = parseIPv4(bareAddr(u));
    if (ip !== null && ip >= lo && ip <= hi) taken.add(ip);
  }
  const gw = parseIPv4(gateway);
  for (let ip = lo; ip <= hi; ip++) {
    if (ip === gw || taken.has(ip)) continue;
    return withPrefix ? `${formatIPv4(ip)}/${prefix}` : formatIPv4(ip);
  }
  return null;
}
