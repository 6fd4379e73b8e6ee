// The store directory's lock: a `LOCK` file holding the owner's pid, so two processes never
// write the same log. The file is written in full under a temporary name and hard-linked into
// place (link fails if LOCK exists), so a LOCK is never seen half-written. A LOCK whose pid is
// no longer alive is stale (its owner was killed) and is taken over — a zombie (a process that
// has exited but whose parent has not reaped it yet, state Z in /proc/<pid>/stat) is not alive,
// so a restart right after a kill -9 is not refused. A stale LOCK is first renamed to a
// name only this process uses, so of two processes taking over at once only one can win, and a
// live lock renamed by mistake is put back.
//
// Limits: the pid is checked on this host only (a directory shared between hosts or pid
// namespaces is not protected), and a recycled pid keeps a stale lock "alive" — the error then
// says which file to delete.

import { linkSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { StoreError } from "./errors.js";

export const LOCK_FILE = "LOCK";

export interface DirLock {
  readonly path: string;
  /** Removes the LOCK if it is still ours. */
  release(): void;
}

/**
 * The state letter of a process from `/proc/<pid>/stat` (R, S, D, Z, X...), or null when it
 * cannot be read (no such process, or no /proc on this system). The command name is in
 * parentheses and may itself hold spaces and parentheses, so the state is the field after the
 * last `)`.
 */
export function procState(pid: number): string | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, "latin1");
  } catch {
    return null;
  }
  const close = text.lastIndexOf(")");
  const m = close === -1 ? null : /^ (\S)/.exec(text.slice(close + 1));
  return m ? m[1]! : null;
}

/**
 * Whether a process with this pid is alive: it exists (EPERM: it exists but belongs to another
 * user) and is not a zombie or dead (state Z or X), which can no longer use the directory.
 */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EPERM") return false;
  }
  const state = procState(pid);
  return state !== "Z" && state !== "X";
}

/** The pid in a lock file; null when it cannot be read or holds no pid; undefined when absent. */
function readPid(path: string): number | null | undefined {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "ENOENT" ? undefined : null;
  }
  const m = /^(\d+)\s*$/.exec(text);
  return m ? Number(m[1]) : null;
}

function lockedError(dir: string, path: string, pid: number): StoreError {
  const who = pid === process.pid ? "this process" : `process ${pid}`;
  return new StoreError(
    "ERR_LOCKED",
    `store directory ${dir} is in use by ${who} (lock file ${path}); stop it first, ` +
      `or delete ${path} if no shoal process is using this directory`,
  );
}

/** Takes the directory's lock or throws ERR_LOCKED; `onWarning` hears about stale locks taken over. */
export function acquireLock(dir: string, onWarning: (msg: string) => void): DirLock {
  const path = join(dir, LOCK_FILE);
  const tmp = join(dir, `${LOCK_FILE}.${process.pid}.tmp`);
  const mine = `${process.pid}\n`;
  writeFileSync(tmp, mine, { mode: 0o644 });
  try {
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        linkSync(tmp, path);
        return {
          path,
          release: () => {
            if (readPid(path) === process.pid) rmSync(path, { force: true });
          },
        };
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      }
      const pid = readPid(path);
      if (pid === undefined) continue; // released meanwhile
      if (pid !== null && pidAlive(pid)) throw lockedError(dir, path, pid);
      // Stale: move it aside under a name of our own, then make sure it was the stale one.
      const aside = join(dir, `${LOCK_FILE}.stale.${process.pid}`);
      try {
        renameSync(path, aside);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "ENOENT") continue; // someone else did
        throw err;
      }
      const moved = readPid(aside);
      if (moved !== pid && moved !== null && moved !== undefined && pidAlive(moved)) {
        // Another process took the lock over between our read and our rename: give it back.
        try {
          linkSync(aside, path);
        } finally {
          rmSync(aside, { force: true });
        }
        throw lockedError(dir, path, moved);
      }
      rmSync(aside, { force: true });
      onWarning(
        `took over the stale lock ${path} of process ${pid ?? "(unreadable)"}, which is gone`,
      );
    }
    throw new StoreError("ERR_LOCKED", `could not take the lock ${path}: it keeps changing`);
  } finally {
    rmSync(tmp, { force: true });
  }
}
