// What one node needs to know about networks, computed from the cluster state (pure): the
// networks its tasks are on, as its overlay driver builds them (its own address there, the other
// nodes to tunnel to, the virtual IPs to balance), and the table its DNS server answers from.
// The dispatcher sends both with the node's assignments.
//
// Only running tasks (reported running, still wanted) are VIP backends and DNS answers: a task
// that stops leaves every answer with the next assignment message, not after a long TTL.

import type { NodeNetwork } from "../api/bus.js";
import type { DnsService, DnsTable } from "../api/dns.js";
import { cidrHost } from "../lib/addr.js";
import {
  isTerminal,
  servesTraffic,
  type Network,
  type Node,
  type Service,
  type Task,
} from "../api/types.js";

export interface ClusterView {
  networks: readonly Network[];
  services: readonly Service[];
  tasks: readonly Task[];
  nodes: readonly Node[];
}

const prefixOf = (cidr: string): string => cidr.split("/")[1] ?? "32";

const isRunning = (t: Task) => servesTraffic(t);

/** The DNS name of a task: `<service>.<slot>.<task id>` (global services: the node id). */
export function taskDnsName(t: Task): string {
  return `${t.serviceName}.${t.slot > 0 ? t.slot : t.nodeId}.${t.id}`;
}

/** Networks with a non-terminal task on `nodeId`, in the order first seen. */
function networksOfNode(nodeId: string, tasks: readonly Task[]): Set<string> {
  const ids = new Set<string>();
  for (const t of tasks) {
    if (t.nodeId !== nodeId || isTerminal(t.status.state)) continue;
    for (const a of t.networks ?? []) ids.add(a.networkId);
  }
  return ids;
}

/** The networks of `nodeId`'s tasks as its overlay driver needs them. */
export function nodeNetworksOf(nodeId: string, view: ClusterView): NodeNetwork[] {
  const mine = networksOfNode(nodeId, view.tasks);
  const nodes = new Map(view.nodes.map((n) => [n.id, n]));
  const out: NodeNetwork[] = [];
  for (const net of view.networks) {
    if (!mine.has(net.id)) continue;
    const own = net.nodeAddrs[nodeId];
    if (!own) continue; // not given an address yet: the next message brings it
    const peers = new Set<string>();
    for (const t of view.tasks) {
      if (t.nodeId === nodeId || t.nodeId === "" || isTerminal(t.status.state)) continue;
      if (!(t.networks ?? []).some((a) => a.networkId === net.id)) continue;
      const peer = nodes.get(t.nodeId);
      if (peer && peer.status === "ready") peers.add(peer.addr);
    }
    out.push({
      id: net.id,
      name: net.name,
      driver: net.driver,
      vni: net.vni,
      subnet: net.subnet,
      internal: net.internal,
      nodeAddr: `${cidrHost(own)}/${prefixOf(net.subnet)}`,
      peers: [...peers].sort(),
      vips: vipsOn(net.id, view),
    });
  }
  return out;
}

function vipsOn(networkId: string, view: ClusterView): NodeNetwork["vips"] {
  const vips: NodeNetwork["vips"] = [];
  for (const s of view.services) {
    if ((s.spec.endpointMode ?? "vip") !== "vip") continue;
    const vip = s.virtualIps?.find((v) => v.networkId === networkId);
    if (!vip) continue;
    vips.push({ addr: cidrHost(vip.addr), backends: addrsOn(s.id, networkId, view.tasks) });
  }
  return vips;
}

/** The addresses on a network of a service's running tasks. */
function addrsOn(serviceId: string, networkId: string, tasks: readonly Task[]): string[] {
  const out: string[] = [];
  for (const t of tasks) {
    if (t.serviceId !== serviceId || !isRunning(t)) continue;
    const a = (t.networks ?? []).find((x) => x.networkId === networkId);
    if (a) out.push(cidrHost(a.addr));
  }
  return out.sort();
}

/**
 * The table of `nodeId`'s DNS server: every network its tasks are on (by name) with the
 * services and running tasks there, and which networks each of its tasks' addresses sees.
 */
export function dnsTableOf(nodeId: string, view: ClusterView): DnsTable {
  const mine = networksOfNode(nodeId, view.tasks);
  const table: DnsTable = { networks: {}, clients: {} };
  const byId = new Map(view.networks.map((n) => [n.id, n]));
  for (const net of view.networks) {
    if (!mine.has(net.id)) continue;
    const services: Record<string, DnsService> = {};
    const tasks: Record<string, string> = {};
    for (const s of view.services) {
      const attached = (s.spec.networks ?? []).find((a) => a.target === net.id);
      if (!attached) continue;
      const mode = s.spec.endpointMode ?? "vip";
      const vip = s.virtualIps?.find((v) => v.networkId === net.id);
      services[s.spec.name] = {
        endpointMode: mode,
        ...(mode === "vip" && vip ? { vip: cidrHost(vip.addr) } : {}),
        taskAddrs: addrsOn(s.id, net.id, view.tasks),
        aliases: attached.aliases ?? [],
      };
    }
    for (const t of view.tasks) {
      if (!isRunning(t)) continue;
      const a = (t.networks ?? []).find((x) => x.networkId === net.id);
      if (a) tasks[taskDnsName(t)] = cidrHost(a.addr);
    }
    table.networks[net.name] = { services, tasks };
  }
  // Every non-terminal task of this node may ask (a starting task resolves its peers too).
  for (const t of view.tasks) {
    if (t.nodeId !== nodeId || isTerminal(t.status.state)) continue;
    const names = (t.networks ?? [])
      .map((a) => byId.get(a.networkId)?.name)
      .filter((n): n is string => n !== undefined);
    for (const a of t.networks ?? []) table.clients[cidrHost(a.addr)] = names;
  }
  return table;
}
