// Rebuilding the embedded store's state from its files (see wal.ts for the files and embedded.ts
// for when they are written). The rule: acknowledged changes are never dropped silently. Only an
// incomplete last record of `wal.log` — a crash in the middle of an append, which was never
// acknowledged — is dropped, with a warning. Everything else is refused with ERR_CORRUPT naming
// the file and what is wrong, and the repair command (repair.ts):
//   - a damaged record, line separator or header, or a gap in the sequence, in either log;
//   - a missing or empty `wal.log` when a snapshot or an older log exists (a log is never
//     created empty or removed by the store);
//   - a log that does not continue the snapshot (its base is after the snapshot's seq).
// A damaged (or missing) `snapshot.json` falls back to the previous generation: `snapshot.1.json`
// (or the empty state when there was none) plus `wal.1.log` plus `wal.log`, as long as those
// follow on without a gap; if they do not, the open is refused.
// With `requireExisting` (the daemon of a node that already belongs to a swarm), a store with no
// state at all is refused too (ERR_NO_STATE), instead of starting a new, empty cluster.

import { existsSync } from "node:fs";
import { join } from "node:path";
import { StoreError } from "./errors.js";
import { State } from "./state.js";
import {
  SNAPSHOT_FILE,
  SNAPSHOT_PREV,
  WAL_FILE,
  WAL_PREV,
  loadSnapshot,
  readIfExists,
  repairHint,
  scanWal,
  type WalScan,
} from "./wal.js";

export interface RecoverOptions {
  requireExisting?: boolean;
  /** Stop at the first damage instead of throwing, and report it (repair.ts). */
  salvage?: boolean;
}

export interface Recovered {
  state: State;
  /** Seq of the last batch in the state. */
  seq: number;
  /** `wal.log` as found: null when absent (a new store), else its valid prefix. */
  wal: WalScan | null;
  /** Whether `snapshot.json` was damaged or missing, so the previous generation was used. */
  fellBack: boolean;
  /** What was dropped or used instead, for the log. */
  warnings: string[];
  /** Salvage mode: the damage the state stops at, null when there was none. */
  damage: string | null;
  /** Where the state came from, for messages: "snapshot.json (seq 10) + 4 log records". */
  source: string;
}

interface Base {
  name: string;
  state: State;
  seq: number;
  format: number;
}

/** Rebuilds the state of the store in `dir` from its files; see the header for what is refused. */
export async function recover(dir: string, opts: RecoverOptions = {}): Promise<Recovered> {
  const walPath = join(dir, WAL_FILE);
  const prevWalPath = join(dir, WAL_PREV);
  const prevWalBuf = await readIfExists(prevWalPath);
  let walBuf = await readIfExists(walPath);
  const warnings: string[] = [];

  // The newest snapshot, or why it cannot be used.
  let newest: Base | null = null;
  let newestError: StoreError | null = null;
  const snapPath = join(dir, SNAPSHOT_FILE);
  const prevSnapPath = join(dir, SNAPSHOT_PREV);
  try {
    const state = new State();
    const snap = await loadSnapshot(snapPath, state);
    if (snap) newest = { name: SNAPSHOT_FILE, state, seq: snap.seq, format: snap.format };
  } catch (err) {
    if (!(err instanceof StoreError) || err.code !== "ERR_CORRUPT") throw err;
    newestError = err;
  }
  const prevSnapExists = existsSync(prevSnapPath);

  if (walBuf === null && opts.salvage) walBuf = Buffer.alloc(0); // reported as missing or empty
  if (walBuf === null) {
    if (newest === null && newestError === null && !prevSnapExists && prevWalBuf === null) {
      return fresh(dir, opts, warnings);
    }
    throw corrupt(
      dir,
      `${walPath} is missing, but the store has ${existing(newest, newestError, prevSnapExists, prevWalBuf)}: ` +
        `the changes logged since the last snapshot would be lost`,
    );
  }

  if (newest !== null) return replayChain(dir, newest, walBuf, prevWalBuf, opts, warnings);
  if (newestError === null && !prevSnapExists && prevWalBuf === null) {
    // No snapshot was ever written: the logs alone.
    return replayChain(dir, emptyBase(), walBuf, prevWalBuf, opts, warnings);
  }

  // snapshot.json is damaged, or missing while an older generation exists: fall back.
  const why = newestError ? newestError.message : `${snapPath} is missing`;
  let prev: Base = emptyBase();
  try {
    const state = new State();
    const snap = await loadSnapshot(prevSnapPath, state);
    if (snap) prev = { name: SNAPSHOT_PREV, state, seq: snap.seq, format: snap.format };
  } catch (err) {
    if (!(err instanceof StoreError) || err.code !== "ERR_CORRUPT") throw err;
    const both = `${why}; and the previous snapshot is damaged too: ${err.message}`;
    if (!opts.salvage) throw corrupt(dir, both);
    warnings.push(`${stripHint(both, dir)}; rebuilding from the logs alone`);
  }
  let rec: Recovered;
  try {
    rec = replayChain(dir, prev, walBuf, prevWalBuf, opts, warnings);
  } catch (err) {
    if (!(err instanceof StoreError) || err.code !== "ERR_CORRUPT") throw err;
    throw corrupt(
      dir,
      `${why}; the previous generation (${prev.name}, seq ${prev.seq}, and the logs after it) ` +
        `cannot replace it: ${stripHint(err.message, dir)}`,
    );
  }
  const note =
    `${why}; recovered from the previous generation instead: ${rec.source}, up to seq ` +
    `${rec.seq}`;
  rec.warnings.unshift(note);
  rec.fellBack = true;
  return rec;
}

function emptyBase(): Base {
  return { name: "the empty state", state: new State(), seq: 0, format: 0 };
}

function fresh(dir: string, opts: RecoverOptions, warnings: string[]): Recovered {
  if (opts.requireExisting) throw noState(dir);
  return {
    state: new State(),
    seq: 0,
    wal: null,
    fellBack: false,
    warnings,
    damage: null,
    source: "a new store",
  };
}

/** The state `base` plus `wal.1.log` (when `wal.log` starts after `base`) plus `wal.log`. */
function replayChain(
  dir: string,
  base: Base,
  walBuf: Buffer,
  prevWalBuf: Buffer | null,
  opts: RecoverOptions,
  warnings: string[],
): Recovered {
  const walPath = join(dir, WAL_FILE);
  const state = base.state;
  let seq = base.seq;
  let source = base.seq > 0 || base.format > 0 ? `${base.name} (seq ${base.seq})` : base.name;
  if (walBuf.length === 0) {
    // Before logs had headers, compaction left an empty log after a (format 1) snapshot.
    if (base.format !== 1) {
      return failOrSalvage(
        dir,
        opts,
        `${walPath} is empty or missing: its header and records are gone`,
        {
          state,
          seq,
          source,
          warnings,
        },
      );
    }
    return done(dir, opts, { state, seq, wal: null, warnings, source, damage: null });
  }
  let damage: string | null = null;
  if (prevWalBuf !== null && walBase(walBuf) > seq) {
    const prevPath = join(dir, WAL_PREV);
    const scan = scanWal(prevPath, prevWalBuf, seq, state, {
      allowTorn: false,
      salvage: opts.salvage,
    });
    seq = scan.lastSeq;
    source += ` + ${scan.records} records of ${WAL_PREV}`;
    damage = scan.damage;
  }
  if (damage !== null) {
    return done(dir, opts, { state, seq, wal: null, warnings, source, damage });
  }
  const scan = scanWal(walPath, walBuf, seq, state, { allowTorn: true, salvage: opts.salvage });
  if (scan.warning) warnings.push(scan.warning);
  source += ` + ${scan.records} records of ${WAL_FILE}`;
  if (scan.goodBytes === 0 && scan.damage === null && base.format !== 1 && !scan.header) {
    // Nothing valid in the log, not even its header, and no legacy snapshot to explain it.
    return failOrSalvage(dir, opts, `${walPath} holds no valid header or record`, {
      state,
      seq,
      source,
      warnings,
    });
  }
  return done(dir, opts, {
    state,
    seq: scan.lastSeq,
    wal: scan,
    warnings,
    source,
    damage: scan.damage,
  });
}

function done(dir: string, opts: RecoverOptions, r: Omit<Recovered, "fellBack">): Recovered {
  if (opts.requireExisting && r.seq === 0 && r.damage === null) throw noState(dir);
  return { ...r, fellBack: false };
}

function failOrSalvage(
  dir: string,
  opts: RecoverOptions,
  problem: string,
  r: { state: State; seq: number; source: string; warnings: string[] },
): Recovered {
  if (!opts.salvage) throw corrupt(dir, problem);
  return { ...r, wal: null, fellBack: false, damage: problem };
}

/** The base a log declares (its header's, or its first record's seq - 1); 0 when unreadable. */
function walBase(buf: Buffer): number {
  const nl = buf.indexOf(0x0a);
  const m = /^\{"(wal|seq)":(\d+)(?:,"base":(\d+))?/.exec(
    buf.subarray(0, nl === -1 ? Math.min(buf.length, 64) : nl).toString("latin1"),
  );
  if (!m) return 0;
  return m[1] === "wal" ? Number(m[3] ?? 0) : Number(m[2]) - 1;
}

function existing(
  newest: Base | null,
  newestError: StoreError | null,
  prevSnap: boolean,
  prevWal: Buffer | null,
): string {
  const have: string[] = [];
  if (newest) have.push(`${SNAPSHOT_FILE} (seq ${newest.seq})`);
  else if (newestError) have.push(`a damaged ${SNAPSHOT_FILE}`);
  if (prevSnap) have.push(SNAPSHOT_PREV);
  if (prevWal) have.push(WAL_PREV);
  return have.join(" and ");
}

function stripHint(message: string, dir: string): string {
  const hint = repairHint(dir);
  return message.endsWith(hint) ? message.slice(0, -hint.length).replace(/\.\s*$/, "") : message;
}

function corrupt(dir: string, problem: string): StoreError {
  return new StoreError("ERR_CORRUPT", `${stripHint(problem, dir)}. ${repairHint(dir)}`);
}

function noState(dir: string): StoreError {
  return new StoreError(
    "ERR_NO_STATE",
    `the store ${dir} holds no state, but this node already belongs to a swarm: refusing to ` +
      `start a new, empty cluster (its running tasks would be stopped as unwanted). Restore ` +
      `${dir} from a backup; to really start over, delete ${dir} and the node-id file next to it.`,
  );
}
