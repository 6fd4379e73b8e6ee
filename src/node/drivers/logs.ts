// A task's logs: `stdout.log` and `stderr.log` in its task directory, written directly by the
// task through O_APPEND file descriptors (so it keeps logging while the agent is down), capped
// by rotation, and read back line by line for `service logs`.
//
// Rotation (capLogFile) keeps the tail: when a file grows above the cap, its last half-cap of
// bytes (cut at a line start where possible) is copied to `<name>.1`, replacing the previous
// one, and the file is truncated in place. The task's O_APPEND descriptor keeps working: its next
// write lands at the new end. Bytes the task writes between the copy and the truncation are lost;
// that window is one copy of at most half a cap. On disk a task's stream uses at most
// 1.5 × cap plus what it writes between two checks.

import { closeSync, openSync, readSync, statSync, truncateSync, writeFileSync } from "node:fs";
import { open } from "node:fs/promises";
import { join } from "node:path";

export type LogStream = "stdout" | "stderr";
export const LOG_STREAMS: readonly LogStream[] = ["stdout", "stderr"];

export function logPath(taskDir: string, stream: LogStream): string {
  return join(taskDir, `${stream}.log`);
}

function readRange(fd: number, start: number, length: number): Buffer {
  const buf = Buffer.alloc(length);
  let got = 0;
  while (got < length) {
    const n = readSync(fd, buf, got, length - got, start + got);
    if (n === 0) break;
    got += n;
  }
  return buf.subarray(0, got);
}

/**
 * Rotates `file` when it is larger than maxBytes. Returns true when it rotated. A missing file
 * or maxBytes <= 0 does nothing.
 */
export function capLogFile(file: string, maxBytes: number): boolean {
  if (maxBytes <= 0) return false;
  let size: number;
  try {
    size = statSync(file).size;
  } catch {
    return false;
  }
  if (size <= maxBytes) return false;
  const keep = Math.max(1, Math.floor(maxBytes / 2));
  const fd = openSync(file, "r");
  let tail: Buffer;
  try {
    tail = readRange(fd, size - keep, keep);
  } finally {
    closeSync(fd);
  }
  // Start at a line boundary unless that would throw away most of what we keep.
  const nl = tail.indexOf(0x0a);
  if (nl >= 0 && nl < tail.length - 1 && nl < keep / 2) tail = tail.subarray(nl + 1);
  writeFileSync(`${file}.1`, tail);
  truncateSync(file, 0);
  return true;
}

/** Caps both streams of a task. */
export function capTaskLogs(taskDir: string, maxBytes: number): void {
  for (const s of LOG_STREAMS) {
    try {
      capLogFile(logPath(taskDir, s), maxBytes);
    } catch {
      // A log we cannot rotate (removed directory, full disk) must not take the agent down.
    }
  }
}

/**
 * Caps a running task's logs every `everyMs` (when it has a cap): the timer to clear when the
 * task ends (the driver caps once more then), or null.
 */
export function capLogsEvery(taskDir: string, maxBytes: number, everyMs: number) {
  if (maxBytes <= 0) return null;
  const timer = setInterval(() => capTaskLogs(taskDir, maxBytes), everyMs);
  timer.unref();
  return timer;
}

export interface LogLine {
  stream: LogStream;
  line: string;
}

export interface ReadLogsOptions {
  /** Only the last N lines of each stream (rotated `.1` content included). */
  tail?: number;
  /** Keep yielding new lines as they are written, until `signal` aborts. */
  follow?: boolean;
  signal?: AbortSignal;
  /** How often follow mode looks for new data, ms. */
  pollMs?: number;
}

function fileSize(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
}

async function readFileFrom(file: string, start: number, end: number): Promise<Buffer> {
  if (end <= start) return Buffer.alloc(0);
  let fh;
  try {
    fh = await open(file, "r");
  } catch {
    return Buffer.alloc(0);
  }
  try {
    const buf = Buffer.alloc(end - start);
    let got = 0;
    while (got < buf.length) {
      const { bytesRead } = await fh.read(buf, got, buf.length - got, start + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    return buf.subarray(0, got);
  } finally {
    await fh.close();
  }
}

/** Splits at "\n" (safe for UTF-8: the byte never occurs inside a multi-byte character). */
function splitLines(buf: Buffer): { lines: string[]; rest: Buffer } {
  const lines: string[] = [];
  let start = 0;
  for (let i = buf.indexOf(0x0a); i >= 0; i = buf.indexOf(0x0a, start)) {
    lines.push(buf.toString("utf8", start, i));
    start = i + 1;
  }
  return { lines, rest: buf.subarray(start) };
}

/**
 * The last `n` complete-or-final lines of the concatenation rotated + current, reading backwards
 * in chunks so a large file is not read whole for a short tail.
 */
async function tailLines(files: string[], n: number, ends: number[]): Promise<string[]> {
  if (n <= 0) return [];
  const CHUNK = 64 * 1024;
  let acc = Buffer.alloc(0);
  for (let f = files.length - 1; f >= 0; f--) {
    let pos = ends[f]!;
    while (pos > 0) {
      const start = Math.max(0, pos - CHUNK);
      acc = Buffer.concat([await readFileFrom(files[f]!, start, pos), acc]);
      pos = start;
      let count = 0;
      // n lines need n newlines before the last line's end (a final unterminated line counts).
      const body = acc[acc.length - 1] === 0x0a ? acc.subarray(0, acc.length - 1) : acc;
      for (let i = body.indexOf(0x0a); i >= 0; i = body.indexOf(0x0a, i + 1)) count++;
      if (count >= n) {
        const { lines, rest } = splitLines(acc);
        if (rest.length > 0) lines.push(rest.toString("utf8"));
        return lines.slice(-n);
      }
    }
  }
  const { lines, rest } = splitLines(acc);
  if (rest.length > 0) lines.push(rest.toString("utf8"));
  return lines.slice(-n);
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });
}

/**
 * Yields the task's log lines: stdout first, then stderr (each in order, rotated content before
 * current). With `follow`, then yields lines as they are written to either stream, until the
 * signal aborts. An unterminated last line is yielded at the end without follow; with follow it
 * waits for its newline. If a file is rotated between two polls, lines written just before the
 * rotation may be skipped (they are in `.1`).
 */
export async function* readLogs(
  taskDir: string,
  opts: ReadLogsOptions = {},
): AsyncGenerator<LogLine, void, undefined> {
  const { tail, follow = false, signal, pollMs = 200 } = opts;
  const offsets = new Map<LogStream, number>();
  const partial = new Map<LogStream, Buffer>();
  for (const stream of LOG_STREAMS) {
    const cur = logPath(taskDir, stream);
    const files = [`${cur}.1`, cur];
    const ends = files.map(fileSize);
    offsets.set(stream, ends[1]!);
    let lines: string[];
    if (tail !== undefined) {
      lines = await tailLines(files, tail, ends);
      if (follow && ends[1]! > 0) {
        // An unterminated last line is finished by the follow loop, not printed twice.
        const last = await readFileFrom(cur, ends[1]! - 1, ends[1]!);
        if (last[0] !== 0x0a) {
          const { rest } = splitLines(await readFileFrom(cur, 0, ends[1]!));
          partial.set(stream, rest);
          lines.pop();
        }
      }
    } else {
      const buf = Buffer.concat([
        await readFileFrom(files[0]!, 0, ends[0]!),
        await readFileFrom(cur, 0, ends[1]!),
      ]);
      const split = splitLines(buf);
      lines = split.lines;
      if (split.rest.length > 0) {
        if (follow) partial.set(stream, split.rest);
        else lines.push(split.rest.toString("utf8"));
      }
    }
    for (const line of lines) {
      if (signal?.aborted) return;
      yield { stream, line };
    }
  }
  if (!follow) return;
  while (!signal?.aborted) {
    let any = false;
    for (const stream of LOG_STREAMS) {
      const cur = logPath(taskDir, stream);
      const size = fileSize(cur);
      let off = offsets.get(stream) ?? 0;
      if (size < off) {
        // Rotated (truncated in place): start over at the beginning of the new content.
        off = 0;
        partial.delete(stream);
      }
      if (size === off) continue;
      any = true;
      const buf = Buffer.concat([
        partial.get(stream) ?? Buffer.alloc(0),
        await readFileFrom(cur, off, size),
      ]);
      offsets.set(stream, size);
      const { lines, rest } = splitLines(buf);
      partial.set(stream, rest);
      for (const line of lines) {
        if (signal?.aborted) return;
        yield { stream, line };
      }
    }
    if (!any) await sleep(pollMs, signal);
  }
}
