// The embedded store's files: the write-ahead log and the snapshot.
//
// The log (`wal.log`) holds one JSON line per committed batch:
//   {"seq":12,"ops":[["put","task","<id>",{...}],["delete","node","<id>"]],"crc":"1a2b3c4d"}
// `seq` counts batches from 1 and never repeats; `crc` is the CRC-32 of the line's bytes before
// `,"crc"`, so a line cut short, padded with zeros or damaged in place is recognised. A group of
// batches is appended with one write and made durable with one fdatasync.
//
// The snapshot (`snapshot.json`) is the whole state as of batch `seq`, sealed the same way. It
// is written to `snapshot.json.tmp`, fsync'd, renamed over `snapshot.json`, and the directory
// fsync'd; only then is the log truncated. Recovery replays the log records with seq > the
// snapshot's and skips the others, so a crash between any two of those steps loses nothing.

import { constants as fsc } from "node:fs";
import { open, readFile, rename, rm, type FileHandle } from "node:fs/promises";
import { join } from "node:path";
import * as zlib from "node:zlib";
import { KINDS, State, deepFreeze, type Op } from "./state.js";
import type { Kind } from "./store.js";
import { StoreError } from "./errors.js";

export const WAL_FILE = "wal.log";
export const SNAPSHOT_FILE = "snapshot.json";
export const SNAPSHOT_TMP = "snapshot.json.tmp";
const SNAPSHOT_FORMAT = 1;

// ---- CRC-32 (IEEE), zlib's when this Node has it -----------------------------------------

let table: Uint32Array | null = null;

function jsCrc32(buf: Uint8Array): number {
  if (!table) {
    table = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      table[n] = c >>> 0;
    }
  }
  let c = 0xffffffff;
  for (let i = 0; i < buf.length; i++) c = table[(c ^ buf[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

const zlibCrc32 = (zlib as { crc32?: (data: Uint8Array) => number }).crc32;
export const crc32: (buf: Uint8Array) => number = zlibCrc32 ?? jsCrc32;

// ---- sealed records ------------------------------------------------------------------------

/** `,"crc":"xxxxxxxx"}` */
const SEAL_LEN = 18;
const SEAL_RE = /^,"crc":"([0-9a-f]{8})"\}$/;

/** Closes a JSON object text (given without its final `}`) with its checksum and a newline. */
export function seal(openObject: string): Buffer {
  const body = Buffer.from(openObject, "utf8");
  const crc = crc32(body).toString(16).padStart(8, "0");
  return Buffer.concat([body, Buffer.from(`,"crc":"${crc}"}\n`, "latin1")]);
}

/** Checks a sealed record (without its newline) and parses it; a string says what is wrong. */
export function unseal(rec: Buffer): { value: unknown } | string {
  if (rec.length <= SEAL_LEN) return rec.length === 0 ? "empty record" : "truncated record";
  const m = SEAL_RE.exec(rec.subarray(rec.length - SEAL_LEN).toString("latin1"));
  if (!m) return "truncated record (no checksum)";
  const want = parseInt(m[1]!, 16);
  if (crc32(rec.subarray(0, rec.length - SEAL_LEN)) !== want) return "checksum mismatch";
  try {
    return { value: JSON.parse(rec.toString("utf8")) as unknown };
  } catch (err) {
    return `invalid JSON: ${(err as Error).message}`;
  }
}

// ---- log records ---------------------------------------------------------------------------

export function encodeBatch(seq: number, ops: readonly Op[]): Buffer {
  const parts = ops.map((op) =>
    op.action === "put"
      ? `["put",${JSON.stringify(op.kind)},${JSON.stringify(op.id)},${op.json ?? JSON.stringify(op.value)}]`
      : `["delete",${JSON.stringify(op.kind)},${JSON.stringify(op.id)}]`,
  );
  return seal(`{"seq":${seq},"ops":[${parts.join(",")}]`);
}

function isKind(k: unknown): k is Kind {
  return typeof k === "string" && (KINDS as readonly string[]).includes(k);
}

/** A batch record's seq and operations, or a string saying what is wrong with it. */
function decodeBatch(v: unknown): { seq: number; ops: Op[] } | string {
  const r = v as { seq?: unknown; ops?: unknown };
  if (typeof r !== "object" || r === null) return "record is not an object";
  if (!Number.isSafeInteger(r.seq) || (r.seq as number) < 1) return "record has no valid seq";
  if (!Array.isArray(r.ops)) return "record has no ops";
  const ops: Op[] = [];
  for (const o of r.ops as unknown[]) {
    if (!Array.isArray(o) || !isKind(o[1]) || typeof o[2] !== "string") return "malformed op";
    if (o[0] === "put" && o.length === 4) {
      ops.push({ action: "put", kind: o[1], id: o[2], value: deepFreeze(o[3]) });
    } else if (o[0] === "delete" && o.length === 3) {
      ops.push({ action: "delete", kind: o[1], id: o[2], value: null });
    } else return "malformed op";
  }
  return { seq: r.seq as number, ops };
}

export interface WalReplay {
  /** Seq of the last batch applied (the snapshot's when the log adds nothing). */
  lastSeq: number;
  /** Valid records in the file (replayed or already in the snapshot). */
  records: number;
  /** Length of the valid prefix of the file; anything after it is a torn tail. */
  goodBytes: number;
  fileBytes: number;
  /** Set when a torn or corrupt last record was dropped. */
  warning: string | null;
}

/**
 * Replays the log at `path` into `state`: records with seq <= `afterSeq` are skipped (the
 * snapshot has them), the rest must follow on one by one. A bad last record is reported in
 * `warning` and left out of `goodBytes`; a bad record before the last throws ERR_CORRUPT.
 */
export async function replayWal(path: string, afterSeq: number, state: State): Promise<WalReplay> {
  let buf: Buffer;
  try {
    buf = await readFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") {
      return { lastSeq: afterSeq, records: 0, goodBytes: 0, fileBytes: 0, warning: null };
    }
    throw new StoreError("ERR_IO", `cannot read ${path}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  let pos = 0;
  let line = 0;
  let lastSeq = afterSeq;
  let records = 0;
  while (pos < buf.length) {
    line++;
    const nl = buf.indexOf(0x0a, pos);
    const end = nl === -1 ? buf.length : nl + 1;
    const last = end >= buf.length;
    let problem: string | null = null;
    let batch: { seq: number; ops: Op[] } | null = null;
    if (nl === -1) problem = "record not terminated (torn write)";
    else {
      const res = unseal(buf.subarray(pos, nl));
      const dec = typeof res === "string" ? res : decodeBatch(res.value);
      if (typeof dec === "string") problem = dec;
      else if (dec.seq <= afterSeq && lastSeq === afterSeq)
        batch = null; // in the snapshot
      else if (dec.seq !== lastSeq + 1) problem = `record seq ${dec.seq} follows seq ${lastSeq}`;
      else batch = dec;
    }
    if (problem !== null) {
      if (!last) throw new StoreError("ERR_CORRUPT", `${path} line ${line}: ${problem}`);
      const warning = `${path} line ${line}: ${problem}; ignored the last record (${buf.length - pos} bytes)`;
      return { lastSeq, records, goodBytes: pos, fileBytes: buf.length, warning };
    }
    if (batch) {
      for (const op of batch.ops) state.apply(op);
      lastSeq = batch.seq;
    }
    records++;
    pos = end;
  }
  return { lastSeq, records, goodBytes: pos, fileBytes: buf.length, warning: null };
}

/** The log file, open for appending. */
export class WalFile {
  private constructor(
    readonly path: string,
    private fh: FileHandle,
    /** Bytes in the file, all of them whole records. */
    public size: number,
  ) {}

  /** Opens (creating) the log and cuts it to `goodBytes`, its valid prefix. */
  static async open(path: string, goodBytes: number): Promise<WalFile> {
    const fh = await open(path, fsc.O_WRONLY | fsc.O_APPEND | fsc.O_CREAT, 0o600);
    try {
      const { size } = await fh.stat();
      if (size !== goodBytes) {
        await fh.truncate(goodBytes);
        await fh.datasync();
      }
      return new WalFile(path, fh, goodBytes);
    } catch (err) {
      await fh.close();
      throw err;
    }
  }

  /**
   * Appends whole records with one write and makes them durable. A failed write is undone
   * (ERR_IO: nothing committed, the log is as before); when it cannot be undone, or the sync
   * fails, the file's content is unknown: ERR_FAILED.
   */
  async append(buf: Buffer): Promise<void> {
    try {
      let done = 0;
      while (done < buf.length) {
        const { bytesWritten } = await this.fh.write(buf, done, buf.length - done);
        done += bytesWritten;
      }
    } catch (err) {
      try {
        await this.fh.truncate(this.size);
        await this.fh.datasync();
      } catch (err2) {
        throw new StoreError("ERR_FAILED", `${this.path}: write failed and could not be undone`, {
          cause: err2,
        });
      }
      throw new StoreError("ERR_IO", `${this.path}: write failed: ${(err as Error).message}`, {
        cause: err,
      });
    }
    try {
      await this.fh.datasync();
    } catch (err) {
      throw new StoreError("ERR_FAILED", `${this.path}: fsync failed: ${(err as Error).message}`, {
        cause: err,
      });
    }
    this.size += buf.length;
  }

  /** Empties the log (after a snapshot made its records redundant). */
  async reset(): Promise<void> {
    await this.fh.truncate(0);
    await this.fh.datasync();
    this.size = 0;
  }

  async close(): Promise<void> {
    await this.fh.close();
  }
}

// ---- snapshot ------------------------------------------------------------------------------

interface SnapshotDoc {
  format: number;
  seq: number;
  nodes: unknown[];
  services: unknown[];
  tasks: unknown[];
  meta: Array<[string, unknown]>;
}

export function encodeSnapshot(seq: number, state: State): Buffer {
  const doc: SnapshotDoc = {
    format: SNAPSHOT_FORMAT,
    seq,
    nodes: [...state.values("node")],
    services: [...state.values("service")],
    tasks: [...state.values("task")],
    meta: [...state.entries("meta")],
  };
  const text = JSON.stringify(doc);
  return seal(text.slice(0, -1));
}

/** Loads `snapshot.json` into `state`; returns its seq (0 when there is none). */
export async function loadSnapshot(dir: string, state: State): Promise<number> {
  const path = join(dir, SNAPSHOT_FILE);
  let buf: Buffer;
  try {
    buf = await readFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return 0;
    throw new StoreError("ERR_IO", `cannot read ${path}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  const corrupt = (why: string) => new StoreError("ERR_CORRUPT", `${path}: ${why}`);
  if (buf[buf.length - 1] !== 0x0a) throw corrupt("truncated (no final newline)");
  const res = unseal(buf.subarray(0, buf.length - 1));
  if (typeof res === "string") throw corrupt(res);
  const doc = res.value as SnapshotDoc;
  if (typeof doc !== "object" || doc === null) throw corrupt("not an object");
  if (doc.format !== SNAPSHOT_FORMAT) throw corrupt(`unknown format ${String(doc.format)}`);
  if (!Number.isSafeInteger(doc.seq) || doc.seq < 0) throw corrupt("no valid seq");
  const lists: Array<[Kind, unknown]> = [
    ["node", doc.nodes],
    ["service", doc.services],
    ["task", doc.tasks],
  ];
  for (const [kind, list] of lists) {
    if (!Array.isArray(list)) throw corrupt(`no ${kind} list`);
    for (const v of list) {
      const id = (v as { id?: unknown } | null)?.id;
      if (typeof id !== "string") throw corrupt(`a ${kind} without an id`);
      state.apply({ action: "put", kind, id, value: deepFreeze(v) });
    }
  }
  if (!Array.isArray(doc.meta)) throw corrupt("no meta list");
  for (const e of doc.meta) {
    if (!Array.isArray(e) || typeof e[0] !== "string") throw corrupt("malformed meta entry");
    state.apply({ action: "put", kind: "meta", id: e[0], value: deepFreeze(e[1]) });
  }
  return doc.seq;
}

/** Writes the snapshot crash-safely: tmp file, fsync, rename, fsync the directory. */
export async function writeSnapshot(dir: string, data: Buffer): Promise<void> {
  const tmp = join(dir, SNAPSHOT_TMP);
  const fh = await open(tmp, "w", 0o600);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } catch (err) {
    await fh.close();
    await rm(tmp, { force: true });
    throw err;
  }
  await fh.close();
  await rename(tmp, join(dir, SNAPSHOT_FILE));
  await fsyncDir(dir);
}

/** Makes a directory's entries (created, renamed files) durable. */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, "r");
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
