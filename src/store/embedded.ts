// The embedded store: the whole state in memory, made durable in one directory on the local disk
// (one manager). Files in the directory:
//   LOCK               the owning process's pid (lock.ts)
//   wal.log            a header, then one checksummed JSON line per committed batch (wal.ts)
//   snapshot.json      the state as of some batch, replaced atomically (wal.ts)
//   snapshot.1.json    the previous snapshot, and wal.1.log the log that followed it
// Opening takes the lock and rebuilds the state (recovery.ts: a torn last record — the process
// was killed mid-write — is dropped with a warning and cut off the file; a damaged newest
// snapshot falls back to the previous generation; any other damage is an ERR_CORRUPT error
// naming the file, the line and byte, and the repair command, repair.ts), and then appends.
// After `compactEvery` records the state is snapshotted and a new log started, the old ones
// kept as the previous generation.

import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { StoreEngine, type Journal } from "./engine.js";
import { acquireLock, type DirLock } from "./lock.js";
import { recover } from "./recovery.js";
import { State, type Op } from "./state.js";
import {
  SNAPSHOT_TMP,
  WAL_FILE,
  WAL_TMP,
  WalFile,
  encodeBatch,
  encodeSnapshot,
  writeSnapshot,
} from "./wal.js";
import { StoreError } from "./errors.js";

export interface EmbeddedStoreOptions {
  /** Snapshot and empty the log once it holds this many records (default 10000). */
  compactEvery?: number;
  /**
   * Hears recovery warnings (a dropped torn record, a stale lock taken over), failed snapshots
   * and watchers that threw. Default: process.emitWarning.
   */
  onWarning?: (msg: string) => void;
  /**
   * Refuse (ERR_NO_STATE) to open a store that holds no state, instead of starting empty: set by
   * a daemon whose node already belongs to a swarm, so a lost store never becomes a new cluster.
   */
  requireExisting?: boolean;
}

export const DEFAULT_COMPACT_EVERY = 10_000;

class DiskJournal implements Journal {
  /** Records in the log (its records since the last snapshot, plus any already in it). */
  records: number;
  snapshots = 0;
  /** Set when recovery found `snapshot.json` damaged: it must not become the previous one. */
  snapshotDamaged = false;

  constructor(
    readonly dir: string,
    private readonly wal: WalFile,
    records: number,
    private readonly compactEvery: number,
    private readonly onWarning: (msg: string) => void,
  ) {
    this.records = records;
  }

  encode(seq: number, ops: readonly Op[]): Buffer {
    return encodeBatch(seq, ops);
  }

  async append(records: Buffer[]): Promise<void> {
    await this.wal.append(records.length === 1 ? records[0]! : Buffer.concat(records));
    this.records += records.length;
  }

  async afterCommit(state: State, seq: number): Promise<void> {
    if (this.records >= this.compactEvery) await this.compact(state, seq);
  }

  /**
   * Writes a snapshot of `state` (as of `seq`) and starts a new log, the old ones kept as the
   * previous generation. A failure before the new log is in place only costs a warning (the log
   * in use still continues the snapshots: recovery skips its records by seq); a failure after
   * it is ERR_FAILED (from WalFile.rotate).
   */
  async compact(state: State, seq: number): Promise<void> {
    try {
      await writeSnapshot(this.dir, encodeSnapshot(seq, state), !this.snapshotDamaged);
      this.snapshotDamaged = false;
      this.snapshots++;
      await this.wal.rotate(seq);
    } catch (err) {
      if (err instanceof StoreError && err.code === "ERR_FAILED") throw err;
      this.onWarning(`snapshot in ${this.dir} failed, log kept: ${(err as Error).message}`);
      this.records = 0; // try again after another compactEvery records
      return;
    }
    this.records = 0;
  }

  async close(): Promise<void> {
    await this.wal.close();
  }
}

/** The embedded store, with its recovery report and a way to force a snapshot. */
export class EmbeddedStore extends StoreEngine {
  constructor(
    readonly dir: string,
    state: State,
    seq: number,
    private readonly disk: DiskJournal,
    private readonly lock: DirLock,
    /** What recovery had to say when the store was opened (a dropped torn record...). */
    readonly warnings: readonly string[],
    onWarning: (msg: string) => void,
  ) {
    super(state, seq, disk, { onWarning });
  }

  /** Snapshots the state and empties the log now, after every update queued before. */
  compact(): Promise<void> {
    return this.runInLoop(() => this.disk.compact(this.state, this.seq));
  }

  /** Counters for tests and monitoring. */
  stats(): { seq: number; walRecords: number; snapshots: number } {
    return { seq: this.seq, walRecords: this.disk.records, snapshots: this.disk.snapshots };
  }

  protected override afterClose(): void {
    this.lock.release();
  }
}

function defaultWarning(msg: string): void {
  process.emitWarning(msg, "ShoalStoreWarning");
}

export async function openEmbeddedStore(
  dir: string,
  opts: EmbeddedStoreOptions = {},
): Promise<EmbeddedStore> {
  const onWarning = opts.onWarning ?? defaultWarning;
  const compactEvery = opts.compactEvery ?? DEFAULT_COMPACT_EVERY;
  if (!Number.isSafeInteger(compactEvery) || compactEvery < 1) {
    throw new StoreError(
      "ERR_INVALID",
      `compactEvery must be a positive integer, not ${compactEvery}`,
    );
  }
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const warnings: string[] = [];
  const warn = (msg: string) => {
    warnings.push(msg);
    onWarning(msg);
  };
  const lock = acquireLock(dir, warn);
  try {
    // An interrupted snapshot or log rotation.
    await rm(join(dir, SNAPSHOT_TMP), { force: true });
    await rm(join(dir, WAL_TMP), { force: true });
    const rec = await recover(dir, { requireExisting: opts.requireExisting ?? false });
    for (const w of rec.warnings) warn(w);
    const walPath = join(dir, WAL_FILE);
    const wal =
      rec.wal && rec.wal.goodBytes > 0
        ? await WalFile.open(walPath, rec.wal.goodBytes)
        : await WalFile.create(walPath, rec.seq); // a new store, or an empty log of format 1
    const records = rec.wal?.records ?? 0;
    const journal = new DiskJournal(dir, wal, records, compactEvery, onWarning);
    journal.snapshotDamaged = rec.fellBack;
    return new EmbeddedStore(dir, rec.state, rec.seq, journal, lock, warnings, onWarning);
  } catch (err) {
    lock.release();
    throw err;
  }
}
