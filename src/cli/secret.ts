// `shoal secret create|ls|inspect|rm` (and, through config.ts, `shoal config ...`): the swarm's
// secrets and configs in Docker's words, columns and inspect shapes. A secret's value goes from
// the file (or stdin) to the API once; nothing here prints it, and the API never returns it.

import { readFileSync } from "node:fs";
import { call, deleteEach, getEach } from "./api-client.js";
import { UsageError } from "./errors.js";
import { applyFilters, labelMatches, parseFilters, type FilterKeys } from "./filter.js";
import { parseKeyValues } from "./args.js";
import { humanDuration } from "./format.js";
import { goTimeString } from "../lib/gotime.js";
import { rowPrinter, type ListOptions } from "./service.js";
import type { Row, ListFormat } from "./template.js";
import type { SecretCreate } from "../api/http.js";
import type { Config, ConfigInfo, SecretInfo } from "../api/types.js";

export type FileKind = "secret" | "config";

export const SECRET_LS_FORMAT: ListFormat = {
  defaultTable: "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.CreatedAt}}\t{{.UpdatedAt}}",
  headers: {
    ID: "ID",
    Name: "NAME",
    Driver: "DRIVER",
    CreatedAt: "CREATED",
    UpdatedAt: "UPDATED",
    Labels: "LABELS",
  },
};

export const CONFIG_LS_FORMAT: ListFormat = {
  defaultTable: "table {{.ID}}\t{{.Name}}\t{{.CreatedAt}}\t{{.UpdatedAt}}",
  headers: {
    ID: "ID",
    Name: "NAME",
    CreatedAt: "CREATED",
    UpdatedAt: "UPDATED",
    Labels: "LABELS",
  },
};

export const FILE_FILTERS: FilterKeys<SecretInfo> = {
  id: (x, v) => x.id.startsWith(v),
  label: (x, v) => labelMatches(x.labels, v),
  name: (x, v) => x.name.includes(v),
};

/** `secret ls` / `config ls` rows, sorted by name; times as Docker's "2 minutes ago". */
export function fileRows(list: SecretInfo[], now: number): Row[] {
  return [...list]
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .map((x) => ({
      ID: x.id,
      Name: x.name,
      Driver: "",
      CreatedAt: `${humanDuration(now - x.createdAt)} ago`,
      UpdatedAt: `${humanDuration(now - x.updatedAt)} ago`,
      Labels: Object.entries(x.labels)
        .map(([k, v]) => `${k}=${v}`)
        .join(","),
    }));
}

/** Docker's inspect shape; a config's carries its data (base64), a secret's never does. */
export function inspectShape(x: SecretInfo | Config): object {
  const data = "data" in x ? { Data: x.data } : {};
  return {
    ID: x.id,
    Version: { Index: 1 },
    CreatedAt: new Date(x.createdAt).toISOString(),
    UpdatedAt: new Date(x.updatedAt).toISOString(),
    Spec: { Name: x.name, Labels: { ...x.labels }, ...data },
  };
}

/** `inspect --pretty`, Docker's layout for each kind. */
export function prettyFile(kind: FileKind, x: SecretInfo | Config): string {
  const labels = Object.entries(x.labels);
  const lines = [`ID:              ${x.id}`, `Name:              ${x.name}`];
  if (labels.length > 0) {
    lines.push("Labels:");
    for (const [k, v] of labels.sort()) lines.push(` - ${k}${v ? `=${v}` : ""}`);
  }
  if (kind === "secret") {
    lines.push(
      "Driver:            ",
      `Created at:        ${goTimeString(x.createdAt)}`,
      `Updated at:        ${goTimeString(x.updatedAt)}`,
    );
  } else {
    lines.push(
      `Created at:        ${goTimeString(x.createdAt)}`,
      `Updated at:        ${goTimeString(x.updatedAt)}`,
      "Data:",
      "data" in x ? Buffer.from(x.data, "base64").toString("utf8") : "",
    );
  }
  return lines.join("\n");
}

/** The body `secret create NAME FILE|-` sends: the file's bytes (stdin for `-`), base64. */
export function createFileBody(
  kind: FileKind,
  name: string,
  file: string,
  o: { label?: string[] },
  read: (path: string | 0) => Buffer = (p) => readFileSync(p),
): SecretCreate {
  let bytes: Buffer;
  try {
    bytes = read(file === "-" ? 0 : file);
  } catch (err) {
    throw new UsageError(`error reading content from "${file}": ${(err as Error).message}`);
  }
  if (bytes.length === 0) throw new UsageError(`${kind} data must not be empty`);
  return { name, labels: parseKeyValues(o.label ?? [], "label"), data: bytes.toString("base64") };
}

const path = (kind: FileKind, ref?: string) =>
  `/v1/${kind}s${ref === undefined ? "" : `/${encodeURIComponent(ref)}`}`;

export async function create(
  kind: FileKind,
  name: string,
  file: string,
  o: { label?: string[] },
): Promise<number> {
  const x = await call<SecretInfo>("POST", path(kind), createFileBody(kind, name, file, o));
  process.stdout.write(x.id + "\n");
  return 0;
}

export async function ls(kind: FileKind, o: ListOptions): Promise<number> {
  const filters = parseFilters(o.filter ?? [], FILE_FILTERS, `${kind} ls`);
  const print = rowPrinter(o, kind === "secret" ? SECRET_LS_FORMAT : CONFIG_LS_FORMAT);
  const list = await call<Array<SecretInfo | ConfigInfo>>("GET", path(kind));
  print(fileRows(applyFilters(list, filters, FILE_FILTERS), Date.now()));
  return 0;
}

export async function inspect(
  kind: FileKind,
  refs: string[],
  o: { pretty?: boolean },
): Promise<number> {
  const { found: out, failed } = await getEach<SecretInfo | Config>(refs, (r) => path(kind, r));
  if (o.pretty) {
    for (const x of out) process.stdout.write(prettyFile(kind, x) + "\n\n");
  } else {
    process.stdout.write(JSON.stringify(out.map(inspectShape), null, 4) + "\n");
  }
  return failed ? 1 : 0;
}

/** Removes each one, printing its name; an error per name, exit 1 if any failed. */
export function rm(kind: FileKind, refs: string[]): Promise<number> {
  return deleteEach(refs, (r) => path(kind, r));
}
