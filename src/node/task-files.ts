// A task's secrets and configs on its node: the files are written before the task starts, into a
// private directory of that task (`<dataDir>/secrets/<taskId>/`, 0700, in a 0700 parent), and
// removed when the task ends. A process task finds them under $SHOAL_SECRETS_DIR and
// $SHOAL_CONFIGS_DIR; a container gets each file bind-mounted read-only at Docker's path
// (`/run/secrets/<target>` for a secret, `<target>` — `/<name>` by default — for a config).
//
// Bind mounts rather than the engine's archive copy: the value never enters the container's
// writable layer (so `docker commit`/`export` cannot carry it off), a read-only root filesystem
// still works, and removing the task's directory is all the cleanup there is.
//
// The data comes with the node's assignments (only the secrets its own tasks use). Nothing here
// logs or puts a value in an error message: errors name the secret and its target, never its data.

import { chmodSync, chownSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import type { ConfigReference, ServiceSpec } from "../api/types.js";

export type FileKind = "secret" | "config";

/** The data the node was last sent, by kind and id (base64). */
export interface FileData {
  secret: ReadonlyMap<string, string>;
  config: ReadonlyMap<string, string>;
}

export interface TaskFiles {
  /** The task's private directory (removed with removeTaskFiles). */
  root: string;
  /** Set when the task has secrets / configs: the directories a process task is given. */
  secretsDir?: string;
  configsDir?: string;
  /** Each file and where a container sees it. */
  mounts: Array<{ source: string; target: string }>;
}

/** The directory of a task's files under the node's data dir. */
export function taskFilesDir(dataDir: string, taskId: string): string {
  return join(dataDir, "secrets", taskId);
}

/** Where a container sees a secret or config (Docker's paths; absolute targets are kept). */
export function containerPath(kind: FileKind, target: string): string {
  if (target.startsWith("/")) return target;
  return kind === "secret" ? `/run/secrets/${target}` : `/${target}`;
}

/** A target as a path under a directory, or null when it would leave it (`..`) or is empty. */
export function relativeTarget(target: string): string | null {
  const parts = target.split("/").filter((p) => p !== "" && p !== ".");
  if (parts.length === 0 || parts.includes("..")) return null;
  return parts.join("/");
}

function refsOf(spec: ServiceSpec, kind: FileKind): readonly ConfigReference[] {
  return (kind === "secret" ? spec.secrets : spec.configs) ?? [];
}

/** Whether the spec gives the task any secret or config. */
export function hasTaskFiles(spec: ServiceSpec): boolean {
  return (spec.secrets?.length ?? 0) + (spec.configs?.length ?? 0) > 0;
}

/**
 * Writes the secrets and configs of a task (its spec's references, the data from `data`) under
 * `root`; throws (naming the secret, never its value) when one was not sent or its target is
 * bad. Files get the reference's mode; as root they are owned by its uid and gid.
 */
export function writeTaskFiles(
  root: string,
  spec: ServiceSpec,
  data: FileData,
  isRoot = process.getuid?.() === 0,
): TaskFiles {
  mkdirSync(dirname(root), { recursive: true, mode: 0o700 });
  chmodSync(dirname(root), 0o700);
  rmSync(root, { recursive: true, force: true });
  mkdirSync(root, { mode: 0o700 });
  chmodSync(root, 0o700);
  const out: TaskFiles = { root, mounts: [] };
  for (const kind of ["secret", "config"] as const) {
    const refs = refsOf(spec, kind);
    if (refs.length === 0) continue;
    const dir = join(root, `${kind}s`);
    mkdirSync(dir, { mode: 0o700 });
    if (kind === "secret") out.secretsDir = dir;
    else out.configsDir = dir;
    for (const r of refs) {
      const rel = relativeTarget(r.target);
      if (rel === null) throw new Error(`${kind} ${r.source}: invalid target "${r.target}"`);
      const b64 = r.id === undefined ? undefined : data[kind].get(r.id);
      if (b64 === undefined) {
        throw new Error(`${kind} ${r.source} (${r.id ?? "no id"}) was not sent to this node`);
      }
      const file = join(dir, rel);
      mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
      writeFileSync(file, Buffer.from(b64, "base64"), { mode: 0o600 });
      if (isRoot) chownSync(file, Number(r.uid), Number(r.gid));
      chmodSync(file, r.mode);
      out.mounts.push({ source: file, target: containerPath(kind, r.target) });
    }
  }
  return out;
}

/** Removes a task's files (nothing when it has none). */
export function removeTaskFiles(root: string): void {
  rmSync(root, { recursive: true, force: true });
}
