// The Consul catalog as shoal's state shows it (pure): Consul's nodes, service instances and
// health checks, computed from the store's nodes, services, tasks and networks plus the services
// registered through the agent endpoint.
//
// - A node is a shoal node (Node = its hostname, or hostname-<id> when two nodes share one), with
//   a `serfHealth` check: passing when the node is ready, critical otherwise.
// - An instance is a task its service still wants running (not yet finished): ID = the task id,
//   Service = the service name. Its address is the task's overlay address when it has one (the
//   task listens on its target port there), else its node's address with the port the node
//   serves it on: the first published port, else the port the agent chose for the first target
//   (host networking), else the first target port; no ports: 0.
// - Its check `service:<task id>` is passing when the task runs and is not unhealthy (the
//   traffic rule of src/api/model.ts: a task with a health check runs only once healthy), and
//   critical otherwise (starting, unhealthy, not running yet).
// - Tags come from the service label `consul.tags` (comma-separated), meta from the labels
//   `consul.meta.<key>`.
// - A registered (external) service is an instance on the manager node that took it, without a
//   service check of its own (its node's check decides).

import type { Node, Service, Task } from "../../api/types.js";
import { isTerminal, servesTraffic } from "../../api/model.js";
import type {
  AgentService,
  CatalogNode,
  CatalogService,
  CheckStatus,
  ExternalService,
  HealthCheck,
  ServiceEntry,
} from "../../api/consul.js";

export const DATACENTER = "dc1";
/** The service label that lists an instance's Consul tags: `consul.tags=a,b`. */
export const TAGS_LABEL = "consul.tags";
/** The service label prefix of an instance's Consul meta: `consul.meta.version=2`. */
export const META_LABEL_PREFIX = "consul.meta.";

export interface CatalogInput {
  nodes: readonly Node[];
  services: readonly Service[];
  tasks: readonly Task[];
  external: readonly ExternalService[];
}

/** The Consul indexes entries carry: per service name, and for the node list. */
export interface EntryIndexes {
  service(name: string): number;
  nodes(): number;
}

/** One service instance, before it is written in one of Consul's shapes. */
export interface Instance {
  id: string;
  service: string;
  nodeId: string;
  tags: string[];
  meta: Record<string, string>;
  address: string;
  port: number;
  /** The service check; undefined for a registered service (no check of its own). */
  check: { status: CheckStatus; output: string } | undefined;
}

export interface Catalog {
  /** Consul node names by shoal node id. */
  names: Map<string, string>;
  nodes: Map<string, Node>;
  instances: Instance[];
}

/** Consul node names: the hostname, made unique with the id where hostnames repeat. */
export function nodeNames(nodes: readonly Node[]): Map<string, string> {
  const count = new Map<string, number>();
  for (const n of nodes) count.set(n.hostname, (count.get(n.hostname) ?? 0) + 1);
  return new Map(
    nodes.map((n) => [n.id, count.get(n.hostname)! > 1 ? `${n.hostname}-${n.id}` : n.hostname]),
  );
}

export function tagsOf(labels: Record<string, string>): string[] {
  const text = labels[TAGS_LABEL];
  if (text === undefined) return [];
  return [
    ...new Set(
      text
        .split(",")
        .map((t) => t.trim())
        .filter((t) => t !== ""),
    ),
  ];
}

export function metaOf(labels: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(labels)) {
    if (k.startsWith(META_LABEL_PREFIX) && k.length > META_LABEL_PREFIX.length) {
      out[k.slice(META_LABEL_PREFIX.length)] = v;
    }
  }
  return out;
}

/** Where a task is reached: its overlay address and target port, else its node's (see top). */
export function taskEndpoint(t: Task, node: Node | undefined): { address: string; port: number } {
  const first = t.spec.ports[0];
  const overlay = t.spec.network === "host" ? undefined : t.networks?.find((n) => n.addr !== "");
  if (overlay) return { address: overlay.addr.split("/")[0]!, port: first?.target ?? 0 };
  const port =
    first === undefined
      ? 0
      : (t.hostPorts[String(first.target)] ?? first.published ?? first.target);
  return { address: node?.addr ?? "", port };
}

export function taskCheck(t: Task): { status: CheckStatus; output: string } {
  if (servesTraffic(t)) {
    return {
      status: "passing",
      output: t.status.health ? "task running, healthy" : "task running",
    };
  }
  const h = t.status.health;
  if (t.status.state === "running" && h?.status === "unhealthy") {
    const last = h.log[h.log.length - 1]?.output ?? "";
    return { status: "critical", output: `task unhealthy${last ? `: ${last}` : ""}` };
  }
  return { status: "critical", output: `task ${t.status.state}` };
}

/** A task is an instance while its service wants it running and it has not finished. */
export function isInstance(t: Task): boolean {
  return t.desiredState === "running" && t.nodeId !== "" && !isTerminal(t.status.state);
}

export function buildCatalog(input: CatalogInput): Catalog {
  const nodes = new Map(input.nodes.map((n) => [n.id, n]));
  const services = new Map(input.services.map((s) => [s.id, s]));
  const instances: Instance[] = [];
  for (const t of input.tasks) {
    if (!isInstance(t)) continue;
    const labels = services.get(t.serviceId)?.spec.labels ?? t.spec.labels;
    instances.push({
      id: t.id,
      service: t.serviceName,
      nodeId: t.nodeId,
      tags: tagsOf(labels),
      meta: metaOf(labels),
      ...taskEndpoint(t, nodes.get(t.nodeId)),
      check: taskCheck(t),
    });
  }
  for (const e of input.external) {
    instances.push({
      id: e.id,
      service: e.name,
      nodeId: e.nodeId,
      tags: [...e.tags],
      meta: { ...e.meta },
      address: e.address || (nodes.get(e.nodeId)?.addr ?? ""),
      port: e.port,
      check: undefined,
    });
  }
  instances.sort((a, b) => cmp(a.service, b.service) || cmp(a.nodeId, b.nodeId) || cmp(a.id, b.id));
  return { names: nodeNames(input.nodes), nodes, instances };
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

// ---- Consul's shapes ---------------------------------------------------------------------------

export function catalogNode(c: Catalog, nodeId: string, idx: EntryIndexes): CatalogNode {
  const n = c.nodes.get(nodeId);
  const addr = n?.addr ?? "";
  return {
    ID: nodeId,
    Node: c.names.get(nodeId) ?? nodeId,
    Address: addr,
    Datacenter: DATACENTER,
    TaggedAddresses: { lan: addr, wan: addr },
    Meta: n ? { "shoal-role": n.role } : {},
    CreateIndex: idx.nodes(),
    ModifyIndex: idx.nodes(),
  };
}

/** Every node, sorted by name. */
export function catalogNodes(c: Catalog, idx: EntryIndexes): CatalogNode[] {
  return [...c.nodes.keys()]
    .map((id) => catalogNode(c, id, idx))
    .sort((a, b) => cmp(a.Node, b.Node));
}

/** Every service name with the union of its instances' tags (`/v1/catalog/services`). */
export function catalogServices(c: Catalog): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const i of c.instances) {
    const tags = (out[i.service] ??= []);
    for (const t of i.tags) if (!tags.includes(t)) tags.push(t);
  }
  for (const tags of Object.values(out)) tags.sort();
  return out;
}

export function nodeCheck(c: Catalog, nodeId: string, idx: EntryIndexes): HealthCheck {
  const ready = c.nodes.get(nodeId)?.status === "ready";
  return {
    Node: c.names.get(nodeId) ?? nodeId,
    CheckID: "serfHealth",
    Name: "Serf Health Status",
    Status: ready ? "passing" : "critical",
    Notes: "",
    Output: ready ? "Agent alive and reachable" : "Agent not live or unreachable",
    ServiceID: "",
    ServiceName: "",
    ServiceTags: [],
    Type: "",
    CreateIndex: idx.nodes(),
    ModifyIndex: idx.nodes(),
  };
}

function serviceCheck(c: Catalog, i: Instance, idx: EntryIndexes): HealthCheck | undefined {
  if (!i.check) return undefined;
  return {
    Node: c.names.get(i.nodeId) ?? i.nodeId,
    CheckID: `service:${i.id}`,
    Name: `Service '${i.service}' check`,
    Status: i.check.status,
    Notes: "",
    Output: i.check.output,
    ServiceID: i.id,
    ServiceName: i.service,
    ServiceTags: i.tags,
    Type: "",
    CreateIndex: idx.service(i.service),
    ModifyIndex: idx.service(i.service),
  };
}

function agentService(i: Instance, idx: EntryIndexes): AgentService {
  return {
    ID: i.id,
    Service: i.service,
    Tags: i.tags,
    Address: i.address,
    Meta: i.meta,
    Port: i.port,
    Weights: { Passing: 1, Warning: 1 },
    EnableTagOverride: false,
    CreateIndex: idx.service(i.service),
    ModifyIndex: idx.service(i.service),
  };
}

export interface ServiceFilter {
  /** Only instances with every one of these tags. */
  tags?: readonly string[];
  /** Only instances whose checks (the node's included) all pass. */
  passing?: boolean;
}

function selected(c: Catalog, name: string, f: ServiceFilter): Instance[] {
  return c.instances.filter(
    (i) => i.service === name && (f.tags ?? []).every((t) => i.tags.includes(t)),
  );
}

/** `/v1/health/service/<name>`. */
export function healthService(
  c: Catalog,
  name: string,
  f: ServiceFilter,
  idx: EntryIndexes,
): ServiceEntry[] {
  const out: ServiceEntry[] = [];
  for (const i of selected(c, name, f)) {
    const checks = [nodeCheck(c, i.nodeId, idx)];
    const own = serviceCheck(c, i, idx);
    if (own) checks.push(own);
    if (f.passing && checks.some((k) => k.Status !== "passing")) continue;
    out.push({
      Node: catalogNode(c, i.nodeId, idx),
      Service: agentService(i, idx),
      Checks: checks,
    });
  }
  return out;
}

/** `/v1/catalog/service/<name>`. */
export function catalogService(
  c: Catalog,
  name: string,
  f: ServiceFilter,
  idx: EntryIndexes,
): CatalogService[] {
  return selected(c, name, f).map((i) => {
    const n = catalogNode(c, i.nodeId, idx);
    return {
      ID: n.ID,
      Node: n.Node,
      Address: n.Address,
      Datacenter: n.Datacenter,
      TaggedAddresses: n.TaggedAddresses,
      NodeMeta: n.Meta,
      ServiceID: i.id,
      ServiceName: i.service,
      ServiceAddress: i.address,
      ServicePort: i.port,
      ServiceTags: i.tags,
      ServiceMeta: i.meta,
      ServiceWeights: { Passing: 1, Warning: 1 },
      ServiceEnableTagOverride: false,
      CreateIndex: idx.service(i.service),
      ModifyIndex: idx.service(i.service),
    };
  });
}

export const CHECK_STATES = ["any", "passing", "warning", "critical"] as const;
export type CheckState = (typeof CHECK_STATES)[number];

/** `/v1/health/state/<state>`: every check (nodes' and instances') in that state. */
export function healthState(c: Catalog, state: CheckState, idx: EntryIndexes): HealthCheck[] {
  const all: HealthCheck[] = [...c.nodes.keys()].sort().map((id) => nodeCheck(c, id, idx));
  for (const i of c.instances) {
    const k = serviceCheck(c, i, idx);
    if (k) all.push(k);
  }
  return state === "any" ? all : all.filter((k) => k.Status === state);
}

/** What a service's answers depend on, without indexes: it changes exactly when they do. */
export function serviceSignature(c: Catalog, name: string): string {
  const zero: EntryIndexes = { service: () => 0, nodes: () => 0 };
  return JSON.stringify(healthService(c, name, {}, zero));
}

/** What the node list depends on. */
export function nodesSignature(c: Catalog): string {
  const zero: EntryIndexes = { service: () => 0, nodes: () => 0 };
  return (
    JSON.stringify([...c.nodes.keys()].sort().map((id) => nodeCheck(c, id, zero))) +
    JSON.stringify(catalogNodes(c, zero))
  );
}
