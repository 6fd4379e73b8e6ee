// The manager's secret and config operations, inside a store transaction: create (Docker's size
// limit and name rule), find by id, name or id prefix, remove (refused while a service uses it,
// with swarmkit's words), a service spec's references resolved to id + name with Docker's
// defaults filled in, and the data a node is sent for the tasks it runs. A secret's data never
// leaves this file except toward the node that runs a task using it: the API shows `infoOf`.

import {
  FILE_DATA_MAX_BYTES,
  isTerminal,
  type Config,
  type ConfigReference,
  type Secret,
  type ServiceSpec,
  type Task,
} from "../api/types.js";
import type { SecretCreate } from "../api/http.js";
import type { TaskFileData } from "../api/bus.js";
import type { ReadTx, WriteTx } from "../store/store.js";
import { ManagerError } from "./errors.js";

export type FileKind = "secret" | "config";
/** A secret or a config (the same shape). */
export type FileObject = Secret | Config;

function listOf(tx: ReadTx, kind: FileKind): FileObject[] {
  return kind === "secret" ? tx.listSecrets() : tx.listConfigs();
}

function getOf(tx: ReadTx, kind: FileKind, id: string): FileObject | undefined {
  return kind === "secret" ? tx.getSecret(id) : tx.getConfig(id);
}

/** What the API shows of a secret or config: everything but the data. */
export function infoOf(x: FileObject): Omit<FileObject, "data"> {
  const { data: _data, ...info } = x;
  return info;
}

export function createFileIn(
  tx: WriteTx,
  kind: FileKind,
  req: SecretCreate,
  id: string,
  now: number,
): FileObject {
  const size = Buffer.byteLength(req.data, "base64");
  if (size < 1 || size >= FILE_DATA_MAX_BYTES) {
    throw new ManagerError(
      "ERR_INVALID",
      `rpc error: code = InvalidArgument desc = ${kind} data must be larger than 0 and less than ${FILE_DATA_MAX_BYTES} bytes`,
    );
  }
  if (listOf(tx, kind).some((x) => x.name === req.name)) {
    throw new ManagerError(
      "ERR_NAME_IN_USE",
      `rpc error: code = AlreadyExists desc = ${kind} ${req.name} already exists`,
    );
  }
  const x: FileObject = {
    id,
    name: req.name,
    labels: req.labels ?? {},
    data: req.data,
    createdAt: now,
    updatedAt: now,
  };
  if (kind === "secret") tx.putSecret(x);
  else tx.putConfig(x);
  return x;
}

/** A secret or config by id, name or unique id prefix (3 characters or more); undefined if none. */
export function lookupFile(tx: ReadTx, kind: FileKind, ref: string): FileObject | undefined {
  const byId = getOf(tx, kind, ref);
  if (byId) return byId;
  const all = listOf(tx, kind);
  const byName = all.find((x) => x.name === ref);
  if (byName) return byName;
  if (ref.length < 3) return undefined;
  const found = all.filter((x) => x.id.startsWith(ref));
  return found.length === 1 ? found[0] : undefined;
}

export function findFile(tx: ReadTx, kind: FileKind, ref: string): FileObject {
  const x = lookupFile(tx, kind, ref);
  if (!x) throw new ManagerError("ERR_NOT_FOUND", `${kind} ${ref} not found`);
  return x;
}

function refsOf(spec: ServiceSpec, kind: FileKind): readonly ConfigReference[] {
  return (kind === "secret" ? spec.secrets : spec.configs) ?? [];
}

export function removeFileIn(tx: WriteTx, kind: FileKind, ref: string): FileObject {
  const x = findFile(tx, kind, ref);
  const users = tx
    .listServices()
    .filter((s) => refsOf(s.spec, kind).some((r) => r.id === x.id))
    .map((s) => s.spec.name)
    .sort();
  if (users.length > 0) {
    throw new ManagerError(
      "ERR_CONFLICT",
      `rpc error: code = InvalidArgument desc = ${kind} '${x.name}' is in use by the following service${users.length > 1 ? "s" : ""}: ${users.join(", ")}`,
    );
  }
  if (kind === "secret") tx.deleteSecret(x.id);
  else tx.deleteConfig(x.id);
  return x;
}

/** Whether a target path climbs out of the directory it is put in (`..`) or is empty. */
export function badTarget(target: string): boolean {
  const parts = target.split("/").filter((p) => p !== "" && p !== ".");
  return parts.length === 0 || parts.includes("..");
}

/**
 * The spec with each secret and config reference resolved: `source` (a name, id or id prefix)
 * becomes the object's name and `id` its id. Refuses an unknown one (Docker's `secret not found:
 * NAME`), a target given twice, and a target with `..`.
 */
export function resolveSpecFiles(tx: ReadTx, spec: ServiceSpec): ServiceSpec {
  let out = spec;
  for (const kind of ["secret", "config"] as const) {
    const refs = refsOf(spec, kind);
    if (refs.length === 0) continue;
    const targets = new Set<string>();
    const resolved = refs.map((r) => {
      const x = lookupFile(tx, kind, r.source);
      if (!x) throw new ManagerError("ERR_NOT_FOUND", `${kind} not found: ${r.source}`);
      if (badTarget(r.target)) {
        throw new ManagerError(
          "ERR_INVALID",
          `${kind} ${x.name}: invalid target "${r.target}" (empty, or with "..")`,
        );
      }
      if (targets.has(r.target)) {
        throw new ManagerError(
          "ERR_INVALID",
          `${kind} reference target ${r.target} is used by more than one ${kind}`,
        );
      }
      targets.add(r.target);
      return { ...r, source: x.name, id: x.id };
    });
    out = kind === "secret" ? { ...out, secrets: resolved } : { ...out, configs: resolved };
  }
  return out;
}

/**
 * The data of the secrets and configs that `tasks` (one node's) use, by id, each once. A task
 * past its end needs none; one whose object is gone (removed after its service stopped using
 * it) is left out: the agent fails such a task's start.
 */
export function filesForTasks(
  tx: ReadTx,
  tasks: readonly Task[],
): { secrets: TaskFileData[]; configs: TaskFileData[] } {
  const out = { secrets: [] as TaskFileData[], configs: [] as TaskFileData[] };
  for (const kind of ["secret", "config"] as const) {
    const seen = new Set<string>();
    const list = kind === "secret" ? out.secrets : out.configs;
    for (const t of tasks) {
      if (isTerminal(t.status.state)) continue;
      for (const r of refsOf(t.spec, kind)) {
        if (r.id === undefined || seen.has(r.id)) continue;
        seen.add(r.id);
        const x = getOf(tx, kind, r.id);
        if (x) list.push({ id: x.id, data: x.data });
      }
    }
  }
  return out;
}
