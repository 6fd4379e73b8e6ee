// Private mount namespaces for process tasks: what a task sees at some paths of the node's file
// system, without touching what anything else sees. Used by the process driver for a task's
// mounts (bind mounts, named volumes, tmpfs), and general enough for anything else that must
// put files in front of a task (a directory of secrets, say).
//
// The task's start command is prefixed with
//   unshare --mount --propagation private -- SHELL -c SETUP shoal-mounts ERRFILE N MOUNT MKDIR WD
//     [KIND SRC DST RO]... -- CMD...
// unshare makes the new namespace (every mount in it private: nothing made inside propagates
// out) and execs SETUP in place, which makes each mount point (a directory, or an empty file for
// a file bind), mounts onto it (`mount --rbind`, or a tmpfs), remounts a read-only one `ro`, changes
// to the working directory WD (which may be inside a mount), and then execs CMD in place: the pid never changes, so the caller's process handle stays valid.
// When a step fails, SETUP writes why to ERRFILE and exits 125 before CMD ever runs, so the
// caller can fail the start with that text. The mount points are made on the node's own file
// system (a process task has no root file system of its own); the mounts are seen only inside.
//
// Tools are passed as absolute paths: SETUP runs with the task's environment, whose PATH is the
// task's business.

import { accessSync, constants as fsConstants } from "node:fs";
import { findTool } from "./netns.js";

/** One mount to make in the namespace. */
export interface NsMount {
  /** dir: bind a directory; file: bind a file; tmpfs: a new memory file system. */
  kind: "dir" | "file" | "tmpfs";
  /** An absolute path on the node ("" for tmpfs). */
  source: string;
  /** An absolute path; made if missing. */
  target: string;
  readOnly: boolean;
}

/** The commands a mount namespace needs (absolute paths; "" = not found). */
export interface MountTools {
  unshare: string;
  mount: string;
  mkdir: string;
  /** Enters a running task's namespaces (a command run beside it, such as a health check). */
  nsenter: string;
}

export function findMountTools(): MountTools {
  return {
    unshare: findTool("unshare"),
    mount: findTool("mount"),
    mkdir: findTool("mkdir"),
    nsenter: findTool("nsenter"),
  };
}

/** Why this machine cannot give a task a mount namespace of its own, or null when it can. */
export function mountUnsupportedReason(
  platform: string,
  uid: number,
  tools: MountTools,
): string | null {
  if (platform !== "linux") {
    return `mounts need Linux mount namespaces (this is ${platform})`;
  }
  if (uid !== 0) {
    return `mounts need root: the process driver gives the task a mount namespace of its own (the agent runs as uid ${uid})`;
  }
  for (const [name, path] of Object.entries(tools)) {
    let ok = path !== "";
    try {
      if (ok) accessSync(path, fsConstants.X_OK);
    } catch {
      ok = false;
    }
    if (!ok) return `mounts need util-linux's \`${name}\` command, which was not found`;
  }
  return null;
}

// $1 error file, $2 mount count, $3 mount, $4 mkdir, $5 the working directory, then 4 words per
// mount, "--" and the command.
const SETUP = [
  'f=$1; n=$2; mount=$3; mkdir=$4; wd=$5; shift 5; msg=""',
  'fail() { printf "%s\\n" "$1" > "$f"; exit 125; }',
  'while [ "$n" -gt 0 ]; do',
  "  kind=$1; src=$2; dst=$3; ro=$4; shift 4; n=$((n - 1))",
  '  if [ "$kind" = file ]; then',
  '    if [ ! -e "$dst" ]; then',
  '      msg=$("$mkdir" -p "${dst%/*}/" 2>&1) || fail "creating mount point $dst: $msg"',
  '      ( : > "$dst" ) 2>/dev/null || fail "creating mount point $dst: cannot create the file"',
  "    fi",
  '  elif [ ! -d "$dst" ]; then',
  '    msg=$("$mkdir" -p "$dst" 2>&1) || fail "creating mount point $dst: $msg"',
  "  fi",
  '  if [ "$kind" = tmpfs ]; then',
  '    msg=$("$mount" -t tmpfs -o mode=1777 tmpfs "$dst" 2>&1) || fail "mounting a tmpfs on $dst: $msg"',
  "  else",
  '    msg=$("$mount" --rbind "$src" "$dst" 2>&1) || fail "mounting $src on $dst: $msg"',
  "  fi",
  '  if [ "$ro" = 1 ]; then',
  '    msg=$("$mount" -o remount,bind,ro "$dst" 2>&1) || fail "making $dst read-only: $msg"',
  "  fi",
  "done",
  'cd "$wd" 2>/dev/null || fail "chdir to cwd (\\"$wd\\") failed: no such file or directory"',
  'shift; exec "$@"',
].join("\n");

/**
 * The argv that runs `command` (an argv) in a mount namespace of its own with `mounts` made,
 * in the order given (a mount under another's target comes after it), in the working directory
 * `workdir`. `errorFile` receives the reason when a mount cannot be made (then `command` never
 * runs).
 */
export function inMountNamespace(
  tools: MountTools,
  shell: string,
  mounts: NsMount[],
  errorFile: string,
  workdir: string,
  command: string[],
): string[] {
  const words = mounts.flatMap((m) => [m.kind, m.source, m.target, m.readOnly ? "1" : "0"]);
  return [
    tools.unshare,
    "--mount",
    "--propagation",
    "private",
    "--",
    shell,
    "-c",
    SETUP,
    "shoal-mounts",
    errorFile,
    String(mounts.length),
    tools.mount,
    tools.mkdir,
    workdir,
    ...words,
    "--",
    ...command,
  ];
}

/** Mounts in an order that makes a target before any target inside it (shallow paths first). */
export function mountOrder<T extends { target: string }>(mounts: T[]): T[] {
  const depth = (p: string) => p.split("/").filter(Boolean).length;
  return [...mounts].sort((a, b) => depth(a.target) - depth(b.target));
}
