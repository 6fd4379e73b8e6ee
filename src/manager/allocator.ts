// The network allocator, as pure functions over the current state (swarmkit's allocator, done
// level-triggered): a task of a service with networks gets an address on each before it may be
// scheduled; a node that runs a task of a network gets its own address there; a service in vip
// endpoint mode gets one virtual IP per network. What is "used" on a network is always derived
// from the state: addresses of non-terminal tasks (a task that reached a terminal state frees
// its addresses), the nodes' addresses and the services' VIPs. IPAM is in ipam.ts.

import {
  isTerminal,
  type Network,
  type Service,
  type ServiceSpec,
  type Task,
  type TaskNetwork,
} from "../api/types.js";
import { allocateAddr, bareAddr } from "./ipam.js";

type VirtualIp = NonNullable<Service["virtualIps"]>[number];

/** Every address taken on each network (bare addresses), from tasks, nodes and VIPs. */
export function usedAddrs(
  networks: readonly Network[],
  tasks: readonly Task[],
  services: readonly Service[],
): Map<string, Set<string>> {
  const used = new Map<string, Set<string>>(networks.map((n) => [n.id, new Set<string>()]));
  for (const n of networks)
    for (const a of Object.values(n.nodeAddrs)) used.get(n.id)!.add(bareAddr(a));
  for (const t of tasks) {
    if (isTerminal(t.status.state)) continue;
    for (const tn of t.networks ?? []) used.get(tn.networkId)?.add(bareAddr(tn.addr));
  }
  for (const s of services) {
    for (const v of s.virtualIps ?? []) used.get(v.networkId)?.add(bareAddr(v.addr));
  }
  return used;
}

/** Whether a task needs addresses: its spec names networks and it has none yet. */
export function needsAddrs(t: Task): boolean {
  return (t.spec.networks?.length ?? 0) > 0 && t.networks === undefined;
}

export interface TaskAllocation {
  /** Task id → its addresses (one per network of its spec, in order). */
  allocated: Map<string, TaskNetwork[]>;
  /** Task id → why it cannot get its addresses (it stays pending). */
  failed: Map<string, string>;
}

/**
 * Addresses for `waiting` tasks (those that need them, see needsAddrs), in order, from the
 * lower half of each network. `used` (from usedAddrs) is updated with what is handed out.
 */
export function allocateTasks(
  waiting: readonly Task[],
  networks: readonly Network[],
  used: Map<string, Set<string>>,
): TaskAllocation {
  const byId = new Map(networks.map((n) => [n.id, n]));
  const out: TaskAllocation = { allocated: new Map(), failed: new Map() };
  for (const t of waiting) {
    if (!needsAddrs(t)) continue;
    const got: TaskNetwork[] = [];
    let problem: string | null = null;
    for (const att of t.spec.networks!) {
      const n = byId.get(att.target);
      if (!n) {
        problem = `network ${att.target} not found`;
        break;
      }
      const addr = allocateAddr(n.subnet, n.gateway, used.get(n.id)!, "lower", true);
      if (addr === null) {
        problem = `no addresses left on network ${n.name}`;
        break;
      }
      used.get(n.id)!.add(bareAddr(addr));
      got.push({
        networkId: n.id,
        addr,
        ...(att.aliases && att.aliases.length > 0 ? { aliases: [...att.aliases] } : {}),
      });
    }
    if (problem === null) out.allocated.set(t.id, got);
    else {
      // Give back what this task took before the failure.
      for (const g of got) used.get(g.networkId)!.delete(bareAddr(g.addr));
      out.failed.set(t.id, problem);
    }
  }
  return out;
}

/**
 * The nodes' addresses each network should have: a node keeps (or gets, from the lower half)
 * an address while it has a non-terminal task on the network; others lose theirs. Returns only
 * the networks whose map changes. `used` is updated.
 */
export function allocateNodeAddrs(
  networks: readonly Network[],
  tasks: readonly Task[],
  nodeIds: ReadonlySet<string>,
  used: Map<string, Set<string>>,
): Map<string, Record<string, string>> {
  const want = new Map<string, Set<string>>(networks.map((n) => [n.id, new Set<string>()]));
  for (const t of tasks) {
    if (t.nodeId === "" || isTerminal(t.status.state) || !nodeIds.has(t.nodeId)) continue;
    for (const tn of t.networks ?? []) want.get(tn.networkId)?.add(t.nodeId);
  }
  const changed = new Map<string, Record<string, string>>();
  for (const n of networks) {
    const nodes = want.get(n.id)!;
    const next: Record<string, string> = {};
    let diff = false;
    for (const [nodeId, addr] of Object.entries(n.nodeAddrs)) {
      if (nodes.has(nodeId)) next[nodeId] = addr;
      else {
        diff = true;
        used.get(n.id)!.delete(bareAddr(addr));
      }
    }
    for (const nodeId of [...nodes].sort()) {
      if (next[nodeId] !== undefined) continue;
      const addr = allocateAddr(n.subnet, n.gateway, used.get(n.id)!, "lower", true);
      // A full network leaves the node without an address; its tasks got theirs first, so this
      // only happens when the lower half is exactly full (the node side reports it).
      if (addr === null) continue;
      used.get(n.id)!.add(bareAddr(addr));
      next[nodeId] = addr;
      diff = true;
    }
    if (diff) changed.set(n.id, next);
  }
  return changed;
}

/**
 * The virtual IPs a service should have: one per network of its spec in vip mode (kept where it
 * already has one), none in dnsrr mode. Null when there is no address left on a network.
 * `used` must already hold the service's current VIPs; new ones are added to it.
 */
export function allocateVips(
  spec: ServiceSpec,
  current: readonly VirtualIp[],
  networks: readonly Network[],
  used: Map<string, Set<string>>,
): { vips: VirtualIp[] } | { problem: string } {
  if (spec.endpointMode === "dnsrr") return { vips: [] };
  const byId = new Map(networks.map((n) => [n.id, n]));
  const vips: VirtualIp[] = [];
  for (const att of spec.networks ?? []) {
    const have = current.find((v) => v.networkId === att.target);
    if (have) {
      vips.push(have);
      continue;
    }
    const n = byId.get(att.target);
    if (!n) return { problem: `network ${att.target} not found` };
    const addr = allocateAddr(n.subnet, n.gateway, used.get(n.id)!, "upper");
    if (addr === null) return { problem: `no virtual IPs left on network ${n.name}` };
    used.get(n.id)!.add(addr);
    vips.push({ networkId: n.id, addr });
  }
  return { vips };
}
