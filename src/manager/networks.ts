// The manager's network operations, inside a store transaction: create (subnet, gateway and
// VNI through ipam.ts), find by id, name or id prefix, remove (refused while a service or a live
// task uses it, and for the predefined networks), a service spec's network targets resolved to
// ids, its virtual IPs, and the Docker-shaped view `network ls`/`inspect` show.

import {
  PREDEFINED_NETWORKS,
  isTerminal,
  type Network,
  type Node,
  type Service,
  type ServiceSpec,
  type Task,
} from "../api/types.js";
import type { NetworkCreate, NetworkInspect } from "../api/http.js";
import type { ReadTx, WriteTx } from "../store/store.js";
import type { ClusterMeta } from "./join.js";
import { ManagerError } from "./errors.js";
import {
  DEFAULT_ADDR_POOL,
  DEFAULT_POOL_MASK_LENGTH,
  allocateSubnet,
  allocateVni,
  checkSubnet,
  gatewayFor,
  poolSubnet,
  type AddrPool,
} from "./ipam.js";
import { allocateVips, usedAddrs } from "./allocator.js";

/** The cluster's default address pool (`init --default-addr-pool`), Swarm's unless set. */
export function addrPoolOf(tx: ReadTx): AddrPool {
  const meta = tx.getMeta<ClusterMeta>("cluster");
  return meta?.addrPool ?? { pool: DEFAULT_ADDR_POOL, maskLength: DEFAULT_POOL_MASK_LENGTH };
}

/** The ingress network's subnet: the pool's first (reserved: never given to a user network). */
export function ingressSubnet(pool: AddrPool): string {
  return poolSubnet(pool, 0)!;
}

export function createNetworkIn(tx: WriteTx, req: NetworkCreate, id: string, now: number): Network {
  if (
    (PREDEFINED_NETWORKS as readonly string[]).includes(req.name) ||
    tx.getNetworkByName(req.name)
  ) {
    throw new ManagerError("ERR_NAME_IN_USE", `network with name ${req.name} already exists`);
  }
  // Where no node can have the network (every one reported why not), say so now rather than
  // leave its tasks pending.
  const nodes = tx.listNodes();
  const unable = nodes.filter((n) => n.networks?.overlay === false);
  if (nodes.length > 0 && unable.length === nodes.length) {
    throw new ManagerError(
      "ERR_INVALID",
      `no node of the swarm can have ${req.driver ?? "overlay"} networks: ${unable[0]!.networks!.reason ?? "not supported"}`,
    );
  }
  const pool = addrPoolOf(tx);
  const networks = tx.listNetworks();
  const taken = [ingressSubnet(pool), ...networks.map((n) => n.subnet)];
  let subnet: string;
  if (req.subnet !== undefined && req.subnet !== "") {
    checkSubnet(req.subnet, taken);
    subnet = req.subnet;
  } else {
    if (req.gateway) {
      throw new ManagerError("ERR_INVALID", "a gateway can only be given with a subnet (--subnet)");
    }
    const got = allocateSubnet(pool, taken);
    if (got === null) {
      throw new ManagerError(
        "ERR_CONFLICT",
        `could not find an available, non-overlapping IPv4 address pool among the defaults (${pool.pool} in /${pool.maskLength}s) to assign to the network`,
      );
    }
    subnet = got;
  }
  const n: Network = {
    id,
    name: req.name,
    driver: req.driver ?? "overlay",
    subnet,
    gateway: gatewayFor(subnet, req.gateway),
    vni: allocateVni(networks.map((x) => x.vni)),
    internal: req.internal ?? false,
    attachable: req.attachable ?? false,
    labels: req.labels ?? {},
    nodeAddrs: {},
    createdAt: now,
    updatedAt: now,
  };
  tx.putNetwork(n);
  return n;
}

/** A network by id, name or unique id prefix (3 characters or more). */
export function findNetwork(tx: ReadTx, ref: string): Network {
  const all = () => tx.listNetworks();
  const byPrefix = () => {
    if (ref.length < 3) return undefined;
    const found = all().filter((n) => n.id.startsWith(ref));
    return found.length === 1 ? found[0] : undefined;
  };
  const n = tx.getNetwork(ref) ?? tx.getNetworkByName(ref) ?? byPrefix();
  if (!n) throw new ManagerError("ERR_NOT_FOUND", `network ${ref} not found`);
  return n;
}

export function removeNetworkIn(tx: WriteTx, ref: string): Network {
  if ((PREDEFINED_NETWORKS as readonly string[]).includes(ref)) {
    throw new ManagerError(
      "ERR_FORBIDDEN",
      `${ref} is a pre-defined network and cannot be removed`,
    );
  }
  const n = findNetwork(tx, ref);
  const svc = tx.listServices().find((s) => s.spec.networks?.some((a) => a.target === n.id));
  if (svc) {
    throw new ManagerError("ERR_CONFLICT", `network ${n.id} is in use by service ${svc.id}`);
  }
  const task = tx
    .listTasks()
    .find(
      (t) =>
        !isTerminal(t.status.state) &&
        (t.networks?.some((x) => x.networkId === n.id) ||
          t.spec.networks?.some((a) => a.target === n.id)),
    );
  if (task) {
    throw new ManagerError("ERR_CONFLICT", `network ${n.id} is in use by task ${task.id}`);
  }
  tx.deleteNetwork(n.id);
  return n;
}

/**
 * The spec with its network targets (names, ids or id prefixes) replaced by ids; refuses an
 * unknown or predefined network, one given twice, and dnsrr mode with ingress-published ports.
 */
export function resolveSpecNetworks(tx: ReadTx, spec: ServiceSpec): ServiceSpec {
  if (spec.endpointMode === "dnsrr" && spec.ports.some((p) => p.mode === "ingress")) {
    throw new ManagerError(
      "ERR_INVALID",
      "EndpointSpec: port published with ingress mode can't be used with dnsrr mode",
    );
  }
  if (!spec.networks || spec.networks.length === 0) return spec;
  const seen = new Set<string>();
  const networks = spec.networks.map((a) => {
    if ((PREDEFINED_NETWORKS as readonly string[]).includes(a.target)) {
      throw new ManagerError(
        "ERR_INVALID",
        `network ${a.target} cannot be used with services: only networks created with \`shoal network create\` can`,
      );
    }
    const n = findNetwork(tx, a.target);
    if (seen.has(n.id)) {
      throw new ManagerError("ERR_INVALID", `network ${a.target} is given more than once`);
    }
    seen.add(n.id);
    return { ...a, target: n.id };
  });
  return { ...spec, networks };
}

/** The service with the virtual IPs its spec calls for (kept, given or dropped). */
export function withVips(tx: ReadTx, s: Service): Service {
  const networks = tx.listNetworks();
  const others = tx.listServices().filter((o) => o.id !== s.id);
  const used = usedAddrs(networks, tx.listTasks(), [...others, s]);
  const got = allocateVips(s.spec, s.virtualIps ?? [], networks, used);
  if ("problem" in got) throw new ManagerError("ERR_CONFLICT", got.problem);
  const { virtualIps: _old, ...rest } = s;
  return got.vips.length > 0 ? { ...rest, virtualIps: got.vips } : rest;
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

function base(
  id: string,
  name: string,
  driver: string,
  scope: string,
  created: number,
): NetworkInspect {
  return {
    Name: name,
    Id: id,
    Created: iso(created),
    Scope: scope,
    Driver: driver,
    EnableIPv6: false,
    IPAM: { Driver: "default", Options: null, Config: [] },
    Internal: false,
    Attachable: false,
    Ingress: false,
    ConfigFrom: { Network: "" },
    ConfigOnly: false,
    Containers: null,
    Options: null,
    Labels: null,
  };
}

/** Stable ids for the predefined networks (a digest of the cluster's creation and the name). */
function predefinedId(name: string, seed: number): string {
  let h = 0n;
  for (const ch of `${name}:${seed}`) h = (h * 131n + BigInt(ch.charCodeAt(0))) % 2n ** 128n;
  return h.toString(36).padStart(25, "0").slice(-25);
}

/** Docker's predefined networks as `network ls` shows them: bridge and host (local), ingress. */
export function predefinedNetworks(tx: ReadTx): NetworkInspect[] {
  const meta = tx.getMeta<ClusterMeta>("cluster");
  const created = meta?.createdAt ?? 0;
  const pool = addrPoolOf(tx);
  const ingress = base(predefinedId("ingress", created), "ingress", "overlay", "swarm", created);
  const sub = ingressSubnet(pool);
  ingress.IPAM.Config = [{ Subnet: sub, Gateway: gatewayFor(sub) }];
  ingress.Ingress = true;
  ingress.Options = { "com.docker.network.driver.overlay.vxlanid_list": "4096" };
  return [
    base(predefinedId("bridge", created), "bridge", "bridge", "local", created),
    base(predefinedId("host", created), "host", "host", "local", created),
    ingress,
  ];
}

export function scopeOf(n: Network): string {
  return n.driver === "overlay" ? "swarm" : "local";
}

/** A network as `docker network inspect` shows it; with `detail`, its tasks and peers. */
export function inspectNetwork(
  n: Network,
  detail?: { tasks: readonly Task[]; nodes: readonly Node[] },
): NetworkInspect {
  const v = base(n.id, n.name, n.driver, scopeOf(n), n.createdAt);
  v.IPAM.Config = [{ Subnet: n.subnet, Gateway: n.gateway }];
  v.Internal = n.internal;
  v.Attachable = n.attachable;
  v.Labels = { ...n.labels };
  if (n.driver === "overlay") {
    v.Options = { "com.docker.network.driver.overlay.vxlanid_list": String(n.vni) };
  }
  if (detail) {
    const containers: NonNullable<NetworkInspect["Containers"]> = {};
    for (const t of detail.tasks) {
      if (isTerminal(t.status.state)) continue;
      const on = t.networks?.find((x) => x.networkId === n.id);
      if (!on) continue;
      containers[t.id] = {
        Name: `${t.serviceName}.${t.slot}.${t.id}`,
        EndpointID: "",
        MacAddress: "",
        IPv4Address: on.addr,
        IPv6Address: "",
      };
    }
    v.Containers = containers;
    const byId = new Map(detail.nodes.map((x) => [x.id, x]));
    v.Peers = Object.keys(n.nodeAddrs)
      .sort()
      .flatMap((id) => {
        const node = byId.get(id);
        return node ? [{ Name: node.hostname, IP: node.addr }] : [];
      });
  }
  return v;
}
