// Crash-safe small files: a reader after a crash (kill -9, power loss) finds either the old
// content or the new, never a torn or empty file.

import { open, rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";

/** Writes `path` through a temporary file: write, fsync, rename over `path`, fsync the dir. */
export async function writeFileDurable(
  path: string,
  data: string | Uint8Array,
  mode = 0o600,
): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.tmp`);
  const fh = await open(tmp, "w", mode);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } catch (err) {
    await fh.close();
    await rm(tmp, { force: true });
    throw err;
  }
  await fh.close();
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
