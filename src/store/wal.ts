// The embedded store's files: the write-ahead log and the snapshot, each kept in two generations.
//
// The log (`wal.log`) begins with a header naming the seq of the snapshot it follows, then holds
// one JSON line per committed batch:
//   {"wal":1,"base":10,"crc":"0badcafe"}
//   {"seq":11,"ops":[["put","task","<id>",{...}],["delete","node","<id>"]],"crc":"1a2b3c4d"}
// `seq` counts batches from 1 and never repeats; `crc` is the CRC-32 of the line's bytes before
// `,"crc"`, so a line cut short, padded with zeros or damaged in place is recognised. A group of
// batches is appended with one write and made durable with one fdatasync. A log is created whole
// (header written to a temporary file, fsync'd, renamed), so an empty or missing `wal.log` is
// never a state the store leaves behind: it is damage.
//
// The snapshot (`snapshot.json`) is the whole state as of batch `seq`, sealed the same way.
// Compaction (embedded.ts) writes it to `snapshot.json.tmp`, fsyncs it, keeps the previous one as
// `snapshot.1.json` (a hard link, so `snapshot.json` always exists), renames the new one into
// place, then starts a new log the same way, keeping the previous log as `wal.1.log`. So
// `snapshot.1.json` + `wal.1.log` + `wal.log` can rebuild the state when `snapshot.json` is
// damaged. Recovery (recovery.ts) replays log records with seq > the snapshot's and skips the
// others, so a crash between any two of those steps loses nothing.

import { constants as fsc } from "node:fs";
import { link, open, readFile, rename, rm, type FileHandle } from "node:fs/promises";
import { dirname, join } from "node:path";
import * as zlib from "node:zlib";
import { KINDS, State, deepFreeze, type Op } from "./state.js";
import type { Kind } from "./store.js";
import { StoreError } from "./errors.js";
import { fsyncDir, writeFileDurable, writeFileSynced } from "../lib/durable.js";

export const WAL_FILE = "wal.log";
export const SNAPSHOT_FILE = "snapshot.json";
export const SNAPSHOT_TMP = "snapshot.json.tmp";
/** The previous generation: the snapshot before the newest, and the log that followed it. */
export const SNAPSHOT_PREV = "snapshot.1.json";
export const WAL_PREV = "wal.1.log";
export const WAL_TMP = "wal.log.tmp";
/** Format 1 (before logs had headers, so an empty log could be valid) is still read. */
const SNAPSHOT_FORMAT = 2;
const WAL_FORMAT = 1;

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

// ---- log header -----------------------------------------------------------------------------

/** The first line of every log: the seq of the snapshot it follows (its records start after). */
export function encodeHeader(base: number): Buffer {
  return seal(`{"wal":${WAL_FORMAT},"base":${base}`);
}

function decodeHeader(v: unknown): number | null {
  const r = v as { wal?: unknown; base?: unknown };
  if (typeof r !== "object" || r === null || r.wal === undefined) return null;
  if (r.wal !== WAL_FORMAT || !Number.isSafeInteger(r.base) || (r.base as number) < 0) return -1;
  return r.base as number;
}

/** The command that sets damaged files aside and keeps what is valid (see repair.ts). */
export function repairHint(dir: string): string {
  return (
    `The store refuses to open rather than lose acknowledged changes. ` +
    `"shoal store repair ${dir}" keeps the valid part and moves the damaged files aside ` +
    `(stop the daemon first).`
  );
}

export interface WalScan {
  /** The log's header base (for a log without a header: its first record's seq - 1). */
  base: number;
  /** Seq of the state after the log (the `fromSeq` given when the log adds nothing). */
  lastSeq: number;
  /** Complete, valid records in the file (replayed or already in the state). */
  records: number;
  /** Length of the valid prefix of the file; anything after it is a torn tail. */
  goodBytes: number;
  fileBytes: number;
  /** Whether the file begins with a header. */
  header: boolean;
  /** Set when a torn final append was dropped. */
  warning: string | null;
  /** Salvage mode only: what stopped the scan (the damage), null when the file is whole. */
  damage: string | null;
}

export interface ScanOptions {
  /** Whether an incomplete last record (a torn append) may be dropped: the newest log only. */
  allowTorn: boolean;
  /** Stop at the first damage and report it in `damage` instead of throwing (repair). */
  salvage?: boolean;
}

/**
 * Whether the bytes from `pos` to the end are an incomplete last record, as a crash in the middle
 * of an append leaves: no complete line (no newline anywhere). A whole sealed record followed by
 * one stray byte is a damaged line separator, not a torn write.
 */
function isTornTail(buf: Buffer, pos: number): boolean {
  const rest = buf.subarray(pos);
  if (rest.includes(0x0a)) return false;
  return rest.length < 2 || typeof unseal(rest.subarray(0, rest.length - 1)) === "string";
}

/**
 * Scans the log `buf` (the file at `path`) and applies to `state` its records with seq >
 * `fromSeq`, the seq `state` is at. The log must continue the state: its base must not be after
 * `fromSeq` (else records are missing), and its records must follow on one by one. Any damage
 * throws ERR_CORRUPT naming the file, line and byte offset and the repair command, except an
 * incomplete last record when `allowTorn` is set, which is reported in `warning` and left out of
 * `goodBytes`.
 */
export function scanWal(
  path: string,
  buf: Buffer,
  fromSeq: number,
  state: State,
  opts: ScanOptions,
): WalScan {
  const dir = dirname(path);
  let pos = 0;
  let line = 0;
  let seq = fromSeq;
  let prev: number | null = null; // seq of the file's previous record (or its base)
  let base = fromSeq;
  let header = false;
  let records = 0;
  const scan = (warning: string | null, damage: string | null): WalScan => ({
    base,
    lastSeq: seq,
    records,
    goodBytes: pos,
    fileBytes: buf.length,
    header,
    warning,
    damage,
  });
  while (pos < buf.length) {
    line++;
    const nl = buf.indexOf(0x0a, pos);
    let problem: string | null = null;
    let batch: { seq: number; ops: Op[] } | null = null;
    if (nl === -1) {
      problem = isTornTail(buf, pos)
        ? "record not terminated (torn write)"
        : "the line separator after the last record is damaged";
    } else {
      const res = unseal(buf.subarray(pos, nl));
      const hdr = typeof res === "string" || line !== 1 ? null : decodeHeader(res.value);
      if (hdr !== null) {
        if (hdr < 0) problem = "unknown log header";
        else if (hdr > fromSeq) {
          problem =
            `the log starts after seq ${hdr}, but the state before it is at seq ${fromSeq}: ` +
            `records ${fromSeq + 1}..${hdr} are missing`;
        } else {
          base = prev = hdr;
          header = true;
          pos = nl + 1;
          continue;
        }
      } else {
        const dec = typeof res === "string" ? res : decodeBatch(res.value);
        if (typeof dec === "string") problem = dec;
        else if (prev === null && dec.seq - 1 > fromSeq) {
          problem =
            `the log's first record is seq ${dec.seq}, but the state before it is at seq ` +
            `${fromSeq}: records ${fromSeq + 1}..${dec.seq - 1} are missing`;
        } else if (prev !== null && dec.seq !== prev + 1) {
          problem = `record seq ${dec.seq} follows seq ${prev} (a gap in the sequence)`;
        } else batch = dec;
      }
    }
    if (problem !== null || batch === null) {
      const where = `${path} line ${line} (byte ${pos})`;
      if (opts.allowTorn && isTornTail(buf, pos)) {
        const warning = `${where}: ${problem}; ignored the incomplete last record (${buf.length - pos} bytes)`;
        return scan(warning, null);
      }
      if (opts.salvage) return scan(null, `${where}: ${problem}`);
      throw new StoreError("ERR_CORRUPT", `${where}: ${problem}. ${repairHint(dir)}`);
    }
    if (prev === null) base = batch.seq - 1;
    prev = batch.seq;
    if (batch.seq > seq) {
      for (const op of batch.ops) state.apply(op);
      seq = batch.seq;
    }
    records++;
    pos = nl + 1;
  }
  return scan(null, null);
}

/** Reads a file, or null when it does not exist. */
export async function readIfExists(path: string): Promise<Buffer | null> {
  try {
    return await readFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw new StoreError("ERR_IO", `cannot read ${path}: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

/** The log file, open for appending. */
export class WalFile {
  private constructor(
    readonly path: string,
    private fh: FileHandle,
    /** Bytes in the file, all of them whole records. */
    public size: number,
  ) {}

  /** Creates a new log holding only its header (replacing any log at `path`) and opens it. */
  static async create(path: string, base: number): Promise<WalFile> {
    await writeWhole(path, `${path}.tmp`, encodeHeader(base));
    return WalFile.open(path, null);
  }

  /** Opens an existing log and cuts it to `goodBytes`, its valid prefix (null: keep all). */
  static async open(path: string, goodBytes: number | null): Promise<WalFile> {
    const fh = await open(path, fsc.O_WRONLY | fsc.O_APPEND, 0o600);
    try {
      const { size } = await fh.stat();
      if (goodBytes !== null && size !== goodBytes) {
        await fh.truncate(goodBytes);
        await fh.datasync();
      }
      return new WalFile(path, fh, goodBytes ?? size);
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

  /**
   * Starts a new log after a snapshot at `base`, keeping this one as `wal.1.log`: the new log is
   * written whole under a temporary name, this one hard-linked to `wal.1.log`, and the new one
   * renamed over `wal.log`. Until that rename this log stays in use (a failure throws ERR_IO and
   * changes nothing that matters); a failure after it is ERR_FAILED.
   */
  async rotate(base: number): Promise<void> {
    const dir = dirname(this.path);
    const tmp = join(dir, WAL_TMP);
    const prev = join(dir, WAL_PREV);
    try {
      await writeFileSynced(tmp, encodeHeader(base));
      await rm(prev, { force: true });
      await link(this.path, prev);
      await rename(tmp, this.path);
    } catch (err) {
      await rm(tmp, { force: true }).catch(() => {});
      throw new StoreError(
        "ERR_IO",
        `${this.path}: cannot start a new log: ${(err as Error).message}`,
        {
          cause: err,
        },
      );
    }
    try {
      await fsyncDir(dir);
      const fh = await open(this.path, fsc.O_WRONLY | fsc.O_APPEND, 0o600);
      await this.fh.close().catch(() => {});
      this.fh = fh;
      this.size = (await fh.stat()).size;
    } catch (err) {
      throw new StoreError("ERR_FAILED", `${this.path}: cannot open the new log`, { cause: err });
    }
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
  /** Absent in snapshots written before networks existed. */
  networks?: unknown[];
  /** Absent in snapshots written before secrets and configs existed. */
  secrets?: unknown[];
  configs?: unknown[];
  /** Consul KV entries (each has its `key`); absent in snapshots written before them. */
  kv?: unknown[];
  /** Cluster events (each has its `seq`); absent in snapshots written before them. */
  events?: unknown[];
  meta: Array<[string, unknown]>;
}

export function encodeSnapshot(seq: number, state: State): Buffer {
  const doc: SnapshotDoc = {
    format: SNAPSHOT_FORMAT,
    seq,
    nodes: [...state.values("node")],
    services: [...state.values("service")],
    tasks: [...state.values("task")],
    networks: [...state.values("network")],
    secrets: [...state.values("secret")],
    configs: [...state.values("config")],
    kv: [...state.values("kv")],
    events: [...state.values("event")],
    meta: [...state.entries("meta")],
  };
  const text = JSON.stringify(doc);
  return seal(text.slice(0, -1));
}

export interface LoadedSnapshot {
  seq: number;
  /** Format 1 snapshots come from before logs had headers. */
  format: number;
}

/** Loads the snapshot at `path` into `state` (throws ERR_CORRUPT); null when there is none. */
export async function loadSnapshot(path: string, state: State): Promise<LoadedSnapshot | null> {
  const buf = await readIfExists(path);
  if (buf === null) return null;
  const corrupt = (why: string) => new StoreError("ERR_CORRUPT", `${path}: ${why}`);
  if (buf[buf.length - 1] !== 0x0a) throw corrupt("truncated (no final newline)");
  const res = unseal(buf.subarray(0, buf.length - 1));
  if (typeof res === "string") throw corrupt(res);
  const doc = res.value as SnapshotDoc;
  if (typeof doc !== "object" || doc === null) throw corrupt("not an object");
  if (doc.format !== SNAPSHOT_FORMAT && doc.format !== 1) {
    throw corrupt(`unknown format ${String(doc.format)}`);
  }
  if (!Number.isSafeInteger(doc.seq) || doc.seq < 0) throw corrupt("no valid seq");
  const lists: Array<[Kind, unknown]> = [
    ["node", doc.nodes],
    ["service", doc.services],
    ["task", doc.tasks],
    ["network", doc.networks ?? []],
    ["secret", doc.secrets ?? []],
    ["config", doc.configs ?? []],
  ];
  for (const [kind, list] of lists) {
    if (!Array.isArray(list)) throw corrupt(`no ${kind} list`);
    for (const v of list) {
      const id = (v as { id?: unknown } | null)?.id;
      if (typeof id !== "string") throw corrupt(`a ${kind} without an id`);
      state.apply({ action: "put", kind, id, value: deepFreeze(v) });
    }
  }
  if (!Array.isArray(doc.kv ?? [])) throw corrupt("no kv list");
  for (const v of doc.kv ?? []) {
    const key = (v as { key?: unknown } | null)?.key;
    if (typeof key !== "string") throw corrupt("a kv entry without a key");
    state.apply({ action: "put", kind: "kv", id: key, value: deepFreeze(v) });
  }
  if (!Array.isArray(doc.events ?? [])) throw corrupt("no event list");
  for (const v of doc.events ?? []) {
    const seq = (v as { seq?: unknown } | null)?.seq;
    if (!Number.isSafeInteger(seq)) throw corrupt("an event without a seq");
    state.apply({ action: "put", kind: "event", id: String(seq), value: deepFreeze(v) });
  }
  if (!Array.isArray(doc.meta)) throw corrupt("no meta list");
  for (const e of doc.meta) {
    if (!Array.isArray(e) || typeof e[0] !== "string") throw corrupt("malformed meta entry");
    state.apply({ action: "put", kind: "meta", id: e[0], value: deepFreeze(e[1]) });
  }
  return { seq: doc.seq, format: doc.format };
}

/**
 * Writes the snapshot crash-safely: tmp file, fsync; then the current `snapshot.json` becomes
 * `snapshot.1.json` (a hard link; with `keepPrevious` false — the current one is damaged — it
 * is moved aside as `snapshot.json.damaged` and `snapshot.1.json` is left as it is); rename;
 * fsync the directory.
 */
export async function writeSnapshot(dir: string, data: Buffer, keepPrevious = true): Promise<void> {
  const path = join(dir, SNAPSHOT_FILE);
  await writeFileSynced(join(dir, SNAPSHOT_TMP), data);
  if (keepPrevious) {
    const prev = join(dir, SNAPSHOT_PREV);
    await rm(prev, { force: true });
    await link(path, prev).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== "ENOENT") throw err;
    });
  } else {
    await rename(path, `${path}.damaged`).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== "ENOENT") throw err;
    });
  }
  await rename(join(dir, SNAPSHOT_TMP), path);
  await fsyncDir(dir);
}

/** Replaces `path` with `data` as one step: written to `tmp`, fsync'd, renamed, dir fsync'd. */
export async function writeWhole(path: string, tmp: string, data: Buffer): Promise<void> {
  await writeFileDurable(path, data, { tmp });
}

export { fsyncDir };
