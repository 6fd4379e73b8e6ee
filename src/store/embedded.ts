// The embedded store: the whole state in memory, made durable in one directory on the local disk
// (one manager). Files in the directory:
//   LOCK               the owning process's pid (lock.ts)
//   wal.log            one checksummed JSON line per committed batch (wal.ts)
//   snapshot.json      the state as of some batch, replaced atomically (wal.ts)
// Opening takes the lock, loads the snapshot, replays the log (a torn last record — the process
// was killed mid-write — is dropped with a warning and cut off the file; damage anywhere else is
// an ERR_CORRUPT error naming the file and line), and then appends. After `compactEvery`
// records the state is snapshotted and the log emptied.

import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { StoreEngine, type Journal } from "./engine.js";
import { acquireLock, type DirLock } from "./lock.js";
import { State, type Op } from "./state.js";
import {
  SNAPSHOT_TMP,
  WAL_FILE,
  WalFile,
  encodeBatch,
  encodeSnapshot,
  fsyncDir,
  loadSnapshot,
  replayWal,
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
}

export const DEFAULT_COMPACT_EVERY = 10_000;

class DiskJournal implements Journal {
  /** Records in the log (its records since the last snapshot, plus any already in it). */
  records: number;
  snapshots = 0;

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
   * Writes a snapshot of `state` (as of `seq`) and empties the log. Until the snapshot is in
   * place, a failure only costs a warning (the log still has everything); once it is, the log's
   * records are redundant (recovery skips them by seq), and only a failed truncate is fatal.
   */
  async compact(state: State, seq: number): Promise<void> {
    try {
      await writeSnapshot(this.dir, encodeSnapshot(seq, state));
    } catch (err) {
      this.onWarning(`snapshot in ${this.dir} failed, log kept: ${(err as Error).message}`);
      this.records = 0; // try again after another compactEvery records
      return;
    }
    this.snapshots++;
    try {
      await this.wal.reset();
    } catch (err) {
      throw new StoreError(
        "ERR_FAILED",
        `${this.wal.path}: cannot empty the log after a snapshot`,
        {
          cause: err,
        },
      );
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
    await rm(join(dir, SNAPSHOT_TMP), { force: true }); // an interrupted snapshot
    const state = new State();
    const snapSeq = await loadSnapshot(dir, state);
    const walPath = join(dir, WAL_FILE);
    const replay = await replayWal(walPath, snapSeq, state);
    if (replay.warning) warn(replay.warning);
    const created = replay.fileBytes === 0;
    const wal = await WalFile.open(walPath, replay.goodBytes);
    if (created) await fsyncDir(dir);
    const journal = new DiskJournal(dir, wal, replay.records, compactEvery, onWarning);
    return new EmbeddedStore(dir, state, replay.lastSeq, journal, lock, warnings, onWarning);
  } catch (err) {
    lock.release();
    throw err;
  }
}
