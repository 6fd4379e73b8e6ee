// `shoal node ls|inspect|update|rm|promote|demote`: the cluster's machines, in Docker's words.

import { call } from "./api-client.js";
import { UsageError } from "./errors.js";
import { applyFilters, labelMatches, parseFilters, type FilterKeys } from "./filter.js";
import { capitalize } from "./format.js";
import { rowPrinter, type ListOptions } from "./service.js";
import type { ListFormat, Row } from "./template.js";
import type { Node } from "../api/types.js";
import { joinHostPort } from "../lib/addr.js";

interface Info {
  nodeId: string;
  leaderId?: string;
}

export const NODE_LS_FORMAT: ListFormat = {
  defaultTable:
    "table {{.ID}} {{if .Self}}*{{else}} {{end}}\t{{.Hostname}}\t{{.Status}}\t{{.Availability}}\t{{.ManagerStatus}}\t{{.EngineVersion}}",
  headers: {
    ID: "ID",
    Hostname: "HOSTNAME",
    Status: "STATUS",
    Availability: "AVAILABILITY",
    ManagerStatus: "MANAGER STATUS",
    EngineVersion: "ENGINE VERSION",
    TLSStatus: "TLS STATUS",
  },
};

export const NODE_FILTERS: FilterKeys<Node> = {
  id: (n, v) => n.id.startsWith(v),
  label: (n, v) => labelMatches(n.labels, v),
  membership: (_n, v) => {
    if (v !== "accepted" && v !== "pending")
      throw new UsageError(`invalid filter 'membership=${v}': accepted or pending`);
    return v === "accepted"; // a node is in the store once its join was accepted
  },
  name: (n, v) => n.hostname.startsWith(v),
  role: (n, v) => {
    if (v !== "manager" && v !== "worker")
      throw new UsageError(`invalid filter 'role=${v}': manager or worker`);
    return n.role === v;
  },
};

/** A manager's MANAGER STATUS as Docker prints it: the leader, or whether it is reachable (a
 * manager whose heartbeats stopped is down: Unreachable). */
export function managerStatus(n: Node, leaderId: string | undefined): string {
  if (n.role !== "manager") return "";
  if (n.id === leaderId) return "Leader";
  return n.status === "down" ? "Unreachable" : "Reachable";
}

/** `node ls` rows with Docker's fields; `Self` marks the node the CLI talks to; the leader is
 * `leaderId` (the node the CLI talks to when the daemon does not say: one manager). */
export function nodeRows(
  nodes: Node[],
  selfId: string,
  leaderId: string | undefined = selfId,
): Row[] {
  return nodes.map((n) => ({
    ID: n.id,
    Self: n.id === selfId,
    Hostname: n.hostname,
    Status: capitalize(n.status),
    Availability: capitalize(n.availability),
    ManagerStatus: managerStatus(n, leaderId),
    EngineVersion: n.engineVersion,
    TLSStatus: "Ready",
  }));
}

export async function ls(o: ListOptions): Promise<number> {
  const filters = parseFilters(o.filter ?? [], NODE_FILTERS, "node ls");
  const print = rowPrinter(o, NODE_LS_FORMAT);
  const info = await call<Info>("GET", "/v1/info");
  const nodes = await call<Node[]>("GET", "/v1/nodes");
  print(nodeRows(applyFilters(nodes, filters, NODE_FILTERS), info.nodeId, info.leaderId));
  return 0;
}

export async function inspect(refs: string[], o: { pretty?: boolean }): Promise<number> {
  const nodes: Node[] = [];
  for (const ref of refs) {
    const id = ref === "self" ? (await call<Info>("GET", "/v1/info")).nodeId : ref;
    nodes.push(await call<Node>("GET", `/v1/nodes/${encodeURIComponent(id)}`));
  }
  if (!o.pretty) {
    process.stdout.write(JSON.stringify(nodes, null, 4) + "\n");
    return 0;
  }
  for (const n of nodes) process.stdout.write(prettyNode(n) + "\n\n");
  return 0;
}

function prettyNode(n: Node): string {
  return [
    `ID:\t\t\t${n.id}`,
    ...(Object.keys(n.labels).length
      ? ["Labels:", ...Object.entries(n.labels).map(([k, v]) => ` - ${k}=${v}`)]
      : []),
    `Hostname:\t\t${n.hostname}`,
    `Status:`,
    ` State:\t\t\t${capitalize(n.status)}`,
    ` Availability:\t\t${capitalize(n.availability)}`,
    ` Address:\t\t${n.addr}`,
    ...(n.role === "manager"
      ? [
          "Manager Status:",
          ` Address:\t\t${joinHostPort(n.addr, 2377)}`,
          ` Raft Status:\t\tReachable`,
          ` Leader:\t\tYes`,
        ]
      : []),
    ...(n.drivers ? ["Plugins:", ` Task drivers:\t\t${n.drivers.join(", ")}`] : []),
    `Engine Version:\t\t${n.engineVersion}`,
  ].join("\n");
}

export interface NodeUpdateOptions {
  availability?: string;
  labelAdd?: string[];
  labelRm?: string[];
  role?: string;
}

export async function update(ref: string, o: NodeUpdateOptions): Promise<number> {
  const labelAdd: Record<string, string> = {};
  for (const l of o.labelAdd ?? []) {
    const eq = l.indexOf("=");
    labelAdd[eq < 0 ? l : l.slice(0, eq)] = eq < 0 ? "" : l.slice(eq + 1);
  }
  await call("POST", `/v1/nodes/${encodeURIComponent(ref)}/update`, {
    availability: o.availability,
    labelAdd,
    labelRm: o.labelRm ?? [],
    role: o.role,
  });
  process.stdout.write(ref + "\n");
  return 0;
}

/** What `node promote`/`demote` prints for a node (docker/cli's promote.go and demote.go): a
 * node already in the role is named by its id and left alone; otherwise by the name given. */
export function roleChangeLine(
  ref: string,
  node: Pick<Node, "id" | "role">,
  role: "manager" | "worker",
): { change: boolean; line: string } {
  if (node.role === role) {
    return { change: false, line: `Node ${node.id} is already a ${role}.\n` };
  }
  return {
    change: true,
    line:
      role === "manager"
        ? `Node ${ref} promoted to a manager in the swarm.\n`
        : `Manager ${ref} demoted in the swarm.\n`,
  };
}

/** `node promote` / `node demote`: the role change, in Docker's words, node by node. */
export async function setRole(refs: string[], role: "manager" | "worker"): Promise<number> {
  for (const ref of refs) {
    const node = await call<Node>("GET", `/v1/nodes/${encodeURIComponent(ref)}`);
    const r = roleChangeLine(ref, node, role);
    if (r.change) {
      await call("POST", `/v1/nodes/${encodeURIComponent(node.id)}/update`, { role });
    }
    process.stdout.write(r.line);
  }
  return 0;
}

export async function rm(refs: string[], o: { force?: boolean }): Promise<number> {
  for (const ref of refs) {
    await call("DELETE", `/v1/nodes/${encodeURIComponent(ref)}${o.force ? "?force=1" : ""}`);
    process.stdout.write(ref + "\n");
  }
  return 0;
}
