// `shoal store repair <dir>`: what to do when the embedded store refuses to open because its
// files are damaged (recovery.ts). It keeps the longest valid state it can rebuild — the newest
// snapshot that loads, plus the log records that follow it up to the first damage — moves every
// snapshot and log aside into `damaged-<time>/` in the store directory (nothing is deleted), and
// writes that state as a new snapshot with a new, empty log. It says what it kept and where the
// damage was, so an operator knows which changes after it were lost. It takes the store's lock,
// so it refuses to run while a daemon uses the directory.

import { mkdir, rename } from "node:fs/promises";
import { join } from "node:path";
import { StoreError } from "./errors.js";
import { acquireLock } from "./lock.js";
import { recover } from "./recovery.js";
import {
  SNAPSHOT_FILE,
  SNAPSHOT_PREV,
  WAL_FILE,
  WAL_PREV,
  WalFile,
  encodeSnapshot,
  fsyncDir,
  readIfExists,
  writeSnapshot,
} from "./wal.js";

export interface RepairReport {
  /** False when the store opened as it was: nothing was changed. */
  repaired: boolean;
  /** Seq of the state kept. */
  seq: number;
  /** Where the damage was (null when there was none). */
  damage: string | null;
  /** Where the old files went. */
  movedTo: string | null;
  /** A few lines for a person. */
  message: string;
}

/** Repairs the store in `dir` (see the header); `now` names the folder the old files go to. */
export async function repairStore(
  dir: string,
  opts: { now?: Date; onWarning?: (msg: string) => void } = {},
): Promise<RepairReport> {
  const onWarning = opts.onWarning ?? (() => {});
  const lock = acquireLock(dir, onWarning);
  try {
    try {
      const ok = await recover(dir);
      return {
        repaired: false,
        seq: ok.seq,
        damage: null,
        movedTo: null,
        message:
          `The store ${dir} opens as it is (${ok.source}, up to seq ${ok.seq}); nothing to repair.` +
          ok.warnings.map((w) => `\nnote: ${w}`).join(""),
      };
    } catch (err) {
      if (!(err instanceof StoreError) || err.code !== "ERR_CORRUPT") throw err;
    }
    const rec = await recover(dir, { salvage: true });
    const stamp = (opts.now ?? new Date()).toISOString().replace(/[:.]/g, "-");
    const aside = join(dir, `damaged-${stamp}`);
    await mkdir(aside, { recursive: true, mode: 0o700 });
    for (const name of [SNAPSHOT_FILE, SNAPSHOT_PREV, WAL_FILE, WAL_PREV]) {
      if ((await readIfExists(join(dir, name))) === null) continue;
      await rename(join(dir, name), join(aside, name));
    }
    await fsyncDir(dir);
    await writeSnapshot(dir, encodeSnapshot(rec.seq, rec.state), false);
    const wal = await WalFile.create(join(dir, WAL_FILE), rec.seq);
    await wal.close();
    const lines = [
      `Repaired the store ${dir}: kept the state up to seq ${rec.seq} (${rec.source}).`,
      ...rec.warnings.map((w) => `note: ${w}`),
      rec.damage
        ? `Damage: ${rec.damage}; changes after seq ${rec.seq} are lost.`
        : `No damage was found in the logs.`,
      `The old files are in ${aside}.`,
    ];
    return {
      repaired: true,
      seq: rec.seq,
      damage: rec.damage,
      movedTo: aside,
      message: lines.join("\n"),
    };
  } finally {
    lock.release();
  }
}
