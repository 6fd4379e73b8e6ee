// Crash-safe small files: a reader after a crash (kill -9, power loss) finds either the old
// content or the new, never a torn or empty file. The agent's task records and the store's
// snapshots and logs are written through these.

import { open, rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";

/** Writes `path` and fsyncs it; on failure the partial file is removed. */
export async function writeFileSynced(
  path: string,
  data: string | Uint8Array,
  mode = 0o600,
): Promise<void> {
  const fh = await open(path, "w", mode);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } catch (err) {
    await fh.close();
    await rm(path, { force: true });
    throw err;
  }
  await fh.close();
}

/** Replaces `path` through a temporary file (`tmp`, default `.<name>.tmp` beside it): write,
 * fsync, rename over `path`, fsync the directory. */
export async function writeFileDurable(
  path: string,
  data: string | Uint8Array,
  opts: { mode?: number; tmp?: string } = {},
): Promise<void> {
  const tmp = opts.tmp ?? join(dirname(path), `.${basename(path)}.tmp`);
  await writeFileSynced(tmp, data, opts.mode);
  await rename(tmp, path);
  await fsyncDir(dirname(path));
}

/** Makes a directory's entries (created, renamed, removed files) durable. */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, "r");
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
