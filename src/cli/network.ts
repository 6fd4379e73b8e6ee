// `shoal network create|ls|inspect|rm`: the swarm's networks, in Docker's words and columns.

import { call, deleteEach, getEach } from "./api-client.js";
import { UsageError } from "./errors.js";
import { applyFilters, labelMatches, parseFilters, type FilterKeys } from "./filter.js";
import { parseKeyValues } from "./args.js";
import { rowPrinter, type ListOptions } from "./service.js";
import { execute, parseTemplate, type ListFormat, type Row } from "./template.js";
import type { NetworkCreate, NetworkInspect } from "../api/http.js";
import type { Network } from "../api/types.js";

export const NETWORK_LS_FORMAT: ListFormat = {
  defaultTable: "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}",
  headers: {
    ID: "NETWORK ID",
    Name: "NAME",
    Driver: "DRIVER",
    Scope: "SCOPE",
    IPv6: "IPV6",
    Internal: "INTERNAL",
    Labels: "LABELS",
    CreatedAt: "CREATED AT",
  },
};

const BUILTIN = new Set(["bridge", "host", "ingress"]);

export const NETWORK_FILTERS: FilterKeys<NetworkInspect> = {
  driver: (n, v) => n.Driver === v,
  id: (n, v) => n.Id.startsWith(v),
  label: (n, v) => labelMatches(n.Labels ?? {}, v),
  name: (n, v) => n.Name.includes(v),
  scope: (n, v) => {
    if (v !== "swarm" && v !== "local" && v !== "global")
      throw new UsageError(`invalid filter 'scope=${v}': swarm, local or global`);
    return n.Scope === v;
  },
  type: (n, v) => {
    if (v !== "custom" && v !== "builtin")
      throw new UsageError(`invalid filter 'type=${v}': custom or builtin`);
    return BUILTIN.has(n.Name) === (v === "builtin");
  },
};

/** `network ls` rows with Docker's fields, sorted by name. */
export function networkRows(list: NetworkInspect[], o: { noTrunc?: boolean } = {}): Row[] {
  return [...list]
    .sort((a, b) => (a.Name < b.Name ? -1 : a.Name > b.Name ? 1 : 0))
    .map((n) => ({
      ID: o.noTrunc ? n.Id : n.Id.slice(0, 12),
      Name: n.Name,
      Driver: n.Driver,
      Scope: n.Scope,
      IPv6: String(n.EnableIPv6),
      Internal: String(n.Internal),
      Labels: Object.entries(n.Labels ?? {})
        .map(([k, v]) => `${k}=${v}`)
        .join(","),
      CreatedAt: n.Created,
    }));
}

export interface NetworkCreateOptions {
  driver?: string;
  subnet?: string;
  gateway?: string;
  attachable?: boolean;
  internal?: boolean;
  label?: string[];
}

/** The body `network create` sends. */
export function createBody(name: string, o: NetworkCreateOptions): NetworkCreate {
  const driver = o.driver ?? "overlay";
  if (driver !== "overlay" && driver !== "bridge") {
    throw new UsageError(`invalid driver "${driver}": overlay or bridge`);
  }
  if (o.gateway !== undefined && o.subnet === undefined) {
    throw new UsageError("every ip-range or gateway must have a corresponding subnet");
  }
  return {
    name,
    driver,
    ...(o.subnet !== undefined ? { subnet: o.subnet } : {}),
    ...(o.gateway !== undefined ? { gateway: o.gateway } : {}),
    attachable: !!o.attachable,
    internal: !!o.internal,
    labels: parseKeyValues(o.label ?? [], "label"),
  };
}

export async function create(name: string, o: NetworkCreateOptions): Promise<number> {
  const n = await call<Network>("POST", "/v1/networks", createBody(name, o));
  process.stdout.write(n.id + "\n");
  return 0;
}

export async function ls(o: ListOptions & { noTrunc?: boolean }): Promise<number> {
  const filters = parseFilters(o.filter ?? [], NETWORK_FILTERS, "network ls");
  const print = rowPrinter(o, NETWORK_LS_FORMAT);
  const list = await call<NetworkInspect[]>("GET", "/v1/networks");
  print(networkRows(applyFilters(list, filters, NETWORK_FILTERS), o));
  return 0;
}

const networkPath = (ref: string) => `/v1/networks/${encodeURIComponent(ref)}`;

export async function inspect(refs: string[], o: { format?: string }): Promise<number> {
  const { found: out, failed } = await getEach<NetworkInspect>(refs, networkPath);
  if (o.format !== undefined) {
    const t = parseTemplate(o.format);
    for (const n of out) process.stdout.write(execute(t, n as unknown as Row) + "\n");
  } else {
    process.stdout.write(JSON.stringify(out, null, 4) + "\n");
  }
  return failed ? 1 : 0;
}

/** Removes each network, printing its name; an error per name, exit 1 if any failed. */
export function rm(refs: string[]): Promise<number> {
  return deleteEach(refs, networkPath);
}
