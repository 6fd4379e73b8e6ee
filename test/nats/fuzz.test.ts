// Bounded-time robustness tests of the message server against malformed input, over real
// sockets to an in-process server: random byte streams, valid sessions with bytes flipped,
// inserted, deleted or cut off, and valid sessions split into random chunks. After every case the
// server still answers a fresh connection, the fuzzed connection is either still usable or closed
// (with a known -ERR text, or silently), its output is well-formed protocol, nothing logs an
// internal exception, and at the end no connection is left and memory growth stayed bounded.
//
// The cases are fast-check properties: every choice a generator makes is drawn through fc.gen(),
// so a failing case shrinks to a smaller one, and the report names the seed and path that replay
// it (test/helpers/property.ts: SHOAL_PROPERTY_SEED, SHOAL_PROPERTY_PATH). SHOAL_FUZZ_MS sets the
// time budget (default 5000 ms in all); shrinking a failure is not bound by it.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { Server } from "../../src/nats/server.js";
import { defaultOptions, validateOptions, type Options } from "../../src/nats/options.js";
import { ServerLogger } from "../../src/nats/log.js";
import { CloseReason, ErrText } from "../../src/nats/errors.js";
import { checkFor, RawConn, startServer } from "../helpers/servers.js";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import fc from "fast-check";
import { propertyParams, propertySeed } from "../helpers/property.js";

const BUDGET_MS = Number(process.env["SHOAL_FUZZ_MS"] ?? 5000);
const KNOWN_ERRORS = new Set<string>(Object.values(ErrText));

// Small limits, so that a probe can always push the parser out of whatever state a case left it
// in: past any payload (≤ MAX_PAYLOAD) and any control line (≤ MAX_CONTROL_LINE).
const MAX_PAYLOAD = 4096;
const MAX_CONTROL_LINE = 512;

// ---- generators -----------------------------------------------------------------------------

const INTERESTING = Buffer.from("\r\n \t\r\n0123456789-+{}\"'PSUBHIMGNOCRK>.*_$\x00\xff");

// fc.gen() finds the arbitrary of a call by its builder function (comparing arguments deeply
// when one builder serves several): one argument-free builder per shape keeps each draw cheap.
const memo = <T>(make: (n: number) => fc.Arbitrary<T>) => {
  const made = new Map<number, () => fc.Arbitrary<T>>();
  return (n: number): (() => fc.Arbitrary<T>) => {
    let builder = made.get(n);
    if (builder === undefined) {
      const arb = make(n);
      made.set(n, (builder = () => arb));
    }
    return builder;
  };
};
// Unbiased: fast-check's default bias towards small and extreme values would turn most chunks
// into single bytes and most sizes into 0 or the maximum.
const below = memo((n) => fc.noBias(fc.integer({ min: 0, max: n - 1 })));
/** n values, each a byte (0..255) or, about 30 % of the time, an index into INTERESTING. */
const byteCodes = memo((n) =>
  fc.noBias(
    fc.array(fc.integer({ min: 0, max: 255 + 3 * INTERESTING.length }), {
      minLength: n,
      maxLength: n,
    }),
  ),
);

/**
 * One case's choices, drawn through fast-check's fc.gen() so that a failing case shrinks
 * (integers towards 0, booleans towards false, bytes towards NUL).
 */
class Rng {
  constructor(private readonly g: fc.GeneratorValue) {}
  /** An integer in [0, n). */
  int(n: number): number {
    return n <= 1 ? 0 : this.g(below(n));
  }
  /** true with probability p. */
  bool(p = 0.5): boolean {
    return this.int(1000) >= 1000 * (1 - p);
  }
  pick<T>(a: readonly T[]): T {
    return a[this.int(a.length)]!;
  }
  /** n random bytes, about 30 % of them from INTERESTING. */
  bytes(n: number): Buffer {
    if (n === 0) return Buffer.alloc(0);
    const codes = this.g(byteCodes(n));
    return Buffer.from(
      codes.map((c) => (c < 256 ? c : INTERESTING[(c - 256) % INTERESTING.length]!)),
    );
  }
}

const TOKENS = [
  "PUB ",
  "HPUB ",
  "SUB ",
  "UNSUB ",
  "PING",
  "PONG",
  "CONNECT ",
  "INFO ",
  "+OK",
  "-ERR ",
  "MSG ",
  "HMSG ",
  "RS+ ",
  "RMSG ",
  "pub ",
  "sub ",
  "ping",
  "\r\n",
  "\r\n",
  "\r\n",
  "\n",
  "\r",
  " ",
  " ",
  "\t",
  "foo",
  "foo.bar",
  ">",
  "*",
  "q",
  "1",
  "0",
  "5",
  "12",
  "4096",
  "4097",
  "99999999",
  "{}",
  "{",
  '{"verbose":true}',
  '{"headers":true}',
  '"',
  "hello",
  "NATS/1.0\r\n",
];

/** Random bytes, a soup of protocol tokens, or a run of plausible, often wrong, commands. */
function randomStream(r: Rng): Buffer {
  const pick = r.int(10);
  if (pick < 2) return r.bytes(1 + r.int(512));
  if (pick < 5) {
    const parts: string[] = [];
    const n = 1 + r.int(60);
    for (let i = 0; i < n; i++) parts.push(r.pick(TOKENS));
    return Buffer.from(parts.join(""), "latin1");
  }
  const cmds: Buffer[] = [];
  const n = 1 + r.int(12);
  for (let i = 0; i < n; i++) cmds.push(command(r));
  return Buffer.concat(cmds);
}

const SUBJECTS = [
  "foo",
  "foo.bar",
  "foo.*",
  "foo.>",
  ">",
  "*",
  "*.*",
  "a..b",
  ".a",
  "a.",
  "foo.>.bar",
  "_INBOX.x.y",
  "$SYS.x",
  "\x00",
  "f\xf6\xf6",
  "a\rb",
  "x".repeat(300),
];
const CONNECTS = [
  "{}",
  '{"verbose":true}',
  '{"verbose":false,"pedantic":true}',
  '{"headers":true}',
  '{"headers":true,"no_responders":true}',
  '{"echo":false}',
  '{"protocol":1,"name":"fz"}',
  '{"user":"a","pass":"b"}',
  "{",
  "null",
  "[]",
  '"x"',
  "",
];

/**
 * One command of the client protocol, with arguments drawn from valid and invalid values: right
 * and wrong counts, subjects, sizes (and payloads that match them or not), blanks and line ends.
 */
function command(r: Rng): Buffer {
  const blank = () => r.pick([" ", " ", "\t", "  "]);
  const eol = () => r.pick(["\r\n", "\r\n", "\n"]);
  const subject = () => r.pick(SUBJECTS);
  const sid = () => r.pick(["1", "2", "5", "sid", "0", "-1"]);
  const maybe = (p: number, v: () => string) => (r.bool(p) ? [v()] : []);
  // Occasionally drop or add an argument.
  const fuzzArgs = (args: string[]) =>
    r.bool(0.1) ? args.slice(0, r.int(args.length + 1)) : r.bool(0.05) ? [...args, "x"] : args;
  const line = (op: string, args: string[]) => op + blank() + fuzzArgs(args).join(blank()) + eol();
  const body = (size: number) => {
    const n = r.bool(0.9) ? size : Math.max(0, size + r.pick([-1, 1, 2]));
    return r.bytes(n).toString("latin1") + (r.bool(0.95) ? "\r\n" : eol());
  };
  const sizeText = (size: number) =>
    r.bool(0.9) ? String(size) : r.pick(["x", "-1", "1e3", "99999999999", String(MAX_PAYLOAD + 1)]);
  let text: string;
  switch (r.int(9)) {
    case 0:
      text = "CONNECT" + blank() + r.pick(CONNECTS) + eol();
      break;
    case 1:
    case 2: {
      const size = r.pick([0, 1, 5, 100, r.int(MAX_PAYLOAD)]);
      text = line("PUB", [subject(), ...maybe(0.3, subject), sizeText(size)]) + body(size);
      break;
    }
    case 3: {
      const hdr = r.pick([
        "NATS/1.0\r\n\r\n",
        "NATS/1.0\r\nK: v\r\n\r\n",
        "NATS/1.0 503\r\n\r\n",
        "",
      ]);
      const size = hdr.length + r.int(50);
      const args = [subject(), ...maybe(0.3, subject), sizeText(hdr.length), sizeText(size)];
      text = line("HPUB", args) + hdr + body(size - hdr.length);
      break;
    }
    case 4:
    case 5:
      text = line("SUB", [subject(), ...maybe(0.3, () => r.pick(["q", "q.1", "q*", ""])), sid()]);
      break;
    case 6:
      text = line("UNSUB", [sid(), ...maybe(0.4, () => r.pick(["0", "1", "3", "x"]))]);
      break;
    case 7:
      text = r.pick(["PING", "PONG", "+OK", "ping", "INFO {}", "-ERR 'x'"]) + eol();
      break;
    default:
      text = r.pick(["PUB", "SUB", "UNSUB", "HPUB", "MSG", "RS+"]) + blank() + eol();
  }
  return Buffer.from(text, "latin1");
}

interface Delivery {
  subject: string;
  sid: string;
  reply: string;
  hdr: number;
  payload: string;
}

interface Session {
  bytes: Buffer;
  /** PINGs sent (the last operation is always a PING). */
  pings: number;
  oks: number;
  msgs: Delivery[];
}

/** A valid session with varied spelling: op case, blanks, bare LF line ends, odd payloads. */
function validSession(r: Rng, id: string): Session {
  const parts: Buffer[] = [];
  const opName = (op: string) =>
    r.bool(0.7)
      ? op
      : r.bool()
        ? op.toLowerCase()
        : [...op].map((c) => (r.bool() ? c.toLowerCase() : c)).join("");
  const blank = () => r.pick([" ", " ", " ", "\t", "  ", " \t "]);
  const eol = () => (r.bool(0.8) ? "\r\n" : "\n");
  const line = (op: string, ...args: string[]) =>
    parts.push(Buffer.from(opName(op) + blank() + args.join(blank()) + eol(), "latin1"));
  const verbose = r.bool();
  const s: Session = { bytes: Buffer.alloc(0), pings: 0, oks: 0, msgs: [] };
  const ok = () => {
    if (verbose) s.oks++;
  };

  line("CONNECT", JSON.stringify({ verbose, pedantic: r.bool(), headers: true, echo: true }));
  ok();
  const queue = r.bool(0.3) ? [`q${id}`] : [];
  line("SUB", `fz.${id}.>`, ...queue, "1");
  ok();
  const pubs = 1 + r.int(12);
  let limit = Infinity;
  if (r.bool(0.3)) {
    limit = 1 + r.int(pubs + 1);
    line("UNSUB", "1", String(limit));
    ok();
  }
  for (let i = 0; i < pubs; i++) {
    if (r.bool(0.2)) {
      parts.push(Buffer.from(opName("PING") + eol()));
      s.pings++;
    }
    const subject = `fz.${id}.${i}`;
    const reply = r.bool(0.3) ? `_INBOX.${id}.${i}` : "";
    const replyArg = reply === "" ? [] : [reply];
    const size = r.pick([0, 1, 2, 5, 100, r.int(MAX_PAYLOAD - 100)]);
    const body = r.bytes(size);
    if (r.bool(0.3)) {
      const hdr = Buffer.from(`NATS/1.0\r\nX-Case: ${id}\r\n\r\n`);
      const payload = Buffer.concat([hdr, body]);
      line("HPUB", subject, ...replyArg, String(hdr.length), String(payload.length));
      parts.push(payload, Buffer.from("\r\n"));
      if (s.msgs.length < limit) {
        s.msgs.push({
          subject,
          sid: "1",
          reply,
          hdr: hdr.length,
          payload: payload.toString("latin1"),
        });
      }
    } else {
      line("PUB", subject, ...replyArg, String(size));
      parts.push(body, Buffer.from("\r\n"));
      if (s.msgs.length < limit) {
        s.msgs.push({ subject, sid: "1", reply, hdr: -1, payload: body.toString("latin1") });
      }
    }
    ok();
  }
  if (r.bool(0.5)) {
    line("UNSUB", "1");
    ok();
    line("PUB", `fz.${id}.after`, "1");
    parts.push(Buffer.from("x\r\n"));
    ok();
  }
  parts.push(Buffer.from("PING\r\n"));
  s.pings++;
  s.bytes = Buffer.concat(parts);
  return s;
}

/** Flips, inserts, deletes, duplicates or cuts off bytes, one to four times. */
function mutate(r: Rng, input: Buffer): Buffer {
  const b = [...input];
  const n = 1 + r.int(4);
  for (let k = 0; k < n && b.length > 0; k++) {
    const i = r.int(b.length);
    switch (r.int(6)) {
      case 0:
        b[i] = r.int(256);
        break;
      case 1:
        b[i] = b[i]! ^ (1 << r.int(8));
        break;
      case 2:
        b.splice(i, 0, ...r.bytes(1 + r.int(4)));
        break;
      case 3:
        b.splice(i, 1 + r.int(8));
        break;
      case 4:
        b.splice(i, 0, ...b.slice(i, i + 1 + r.int(32)));
        break;
      default:
        b.length = i;
    }
  }
  return Buffer.from(b);
}

// ---- reading what the server sent -----------------------------------------------------------

interface Replies {
  infos: Record<string, unknown>[];
  msgs: Delivery[];
  pongs: number;
  oks: number;
  errs: string[];
}

/**
 * Reads everything the server sent on one connection, failing on anything that is not
 * well-formed protocol. An incomplete tail is ignored (a connection may be cut mid-write).
 */
function readReplies(data: string): Replies {
  const out: Replies = { infos: [], msgs: [], pongs: 0, oks: 0, errs: [] };
  let i = 0;
  while (i < data.length) {
    const eol = data.indexOf("\r\n", i);
    if (eol < 0) break;
    const line = data.slice(i, eol);
    const bad = () => new Error(`malformed server output at ${i}: ${JSON.stringify(line)}`);
    i = eol + 2;
    if (line === "PONG") out.pongs++;
    else if (line === "+OK") out.oks++;
    else if (line === "PING") continue;
    else if (line.startsWith("INFO "))
      out.infos.push(JSON.parse(line.slice(5)) as Record<string, unknown>);
    else if (line.startsWith("-ERR ")) {
      const m = /^-ERR '(.*)'$/.exec(line);
      if (!m) throw bad();
      out.errs.push(m[1]!);
    } else if (line.startsWith("MSG ") || line.startsWith("HMSG ")) {
      const a = line.split(" ");
      const headers = a[0] === "HMSG";
      const fixed = headers ? 5 : 4;
      if (a.length !== fixed && a.length !== fixed + 1) throw bad();
      const size = Number(a[a.length - 1]);
      const hdr = headers ? Number(a[a.length - 2]) : -1;
      if (!Number.isInteger(size) || (headers && !(hdr >= 0 && hdr <= size))) throw bad();
      if (i + size + 2 > data.length) break;
      if (data.slice(i + size, i + size + 2) !== "\r\n") throw bad();
      const reply = a.length === fixed + 1 ? a[3]! : "";
      out.msgs.push({ subject: a[1]!, sid: a[2]!, reply, hdr, payload: data.slice(i, i + size) });
      i += size + 2;
    } else {
      throw bad();
    }
  }
  return out;
}

// ---- driving connections --------------------------------------------------------------------

const CHUNK_SIZES = [1, 1, 2, 3, 5, 8, 13, 64, 100, 500, 1500, 4096];

/** What a case sends: its bytes, and the sizes of the writes that carry them. */
interface Sent {
  bytes: Buffer;
  chunks: number[];
}

/** bytes, to be written in chunks of random sizes. */
function chunked(r: Rng, bytes: Buffer): Sent {
  const chunks: number[] = [];
  for (let i = 0; i < bytes.length; i += chunks[chunks.length - 1]!)
    chunks.push(r.pick(CHUNK_SIZES));
  return { bytes, chunks };
}

/** Writes the chunks, letting the server read between them. */
async function send(conn: RawConn, { bytes, chunks }: Sent): Promise<void> {
  let i = 0;
  for (const n of chunks) {
    if (conn.closed) break;
    conn.send(bytes.subarray(i, i + n));
    i += n;
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** Pings, each ending any control line; enough of them to run past any payload, too. */
const FILLER = Buffer.from("PING\r\n".repeat(Math.ceil((MAX_PAYLOAD + MAX_CONTROL_LINE) / 6) + 8));

/**
 * Drives the connection out of whatever state a case left it in, then checks it still works:
 * resolves "usable" when it delivers a message to itself, "closed" when the server closed it.
 */
async function probe(conn: RawConn, id: string): Promise<"usable" | "closed"> {
  const marker = `MSG probe.${id} p${id} 2\r\nok\r\n`;
  if (!conn.closed) {
    conn.send(FILLER);
    conn.send(`CONNECT {"echo":true}\r\nSUB probe.${id} p${id}\r\nPUB probe.${id} 2\r\nok\r\n`);
  }
  await conn.waitFor(new RegExp(marker.replace(/\./g, "\\.")), 5000, true);
  return conn.data.includes(marker) ? "usable" : "closed";
}

async function connectReady(port: number): Promise<RawConn> {
  const c = await RawConn.connect(port);
  c.socket.setNoDelay(true);
  await c.waitFor(/^INFO .*\r\n/);
  return c;
}

/** A fresh connection still gets PONG for PING. */
async function assertAlive(port: number, what: string): Promise<void> {
  const c = await RawConn.connect(port);
  try {
    c.send("PING\r\n");
    await c.waitFor(/PONG\r\n/).catch((err: Error) => {
      throw new Error(`server unresponsive after ${what}: ${err.message}`);
    });
  } finally {
    c.close();
  }
}

/** A log line with a stack trace: the server caught an exception that is not a protocol error. */
function isInternalError(line: string): boolean {
  return /\n\s+at |TypeError|RangeError|ReferenceError/.test(line);
}

/** The garbage collector, for memory checks that must not depend on when V8 collects. */
function exposeGc(): () => void {
  setFlagsFromString("--expose-gc");
  return runInNewContext("gc") as () => void;
}

function show(b: Buffer): string {
  const s = JSON.stringify(b.toString("latin1"));
  return s.length > 400 ? s.slice(0, 400) + "..." : s;
}

/**
 * Runs cases as a fast-check property until the time budget or the count runs out, four at a
 * time: one run of the property draws the choices of four cases, one case after the other (so a
 * replay draws the same), then plays them concurrently. Returns how many cases ran. Once a case
 * failed, the property shrinks it regardless of the budget.
 */
async function runCases<C>(
  ms: number,
  max: number,
  make: (r: Rng, i: number) => C,
  play: (c: C, i: number) => Promise<void>,
  concurrency = 4,
): Promise<number> {
  const deadline = Date.now() + ms;
  let ran = 0;
  let failed = false;
  await fc.assert(
    fc.asyncProperty(fc.gen(), async (g) => {
      if (!failed && (Date.now() >= deadline || ran >= max)) return; // the budget is spent
      const r = new Rng(g);
      const batch = Array.from({ length: concurrency }, () => {
        const i = ran++;
        return { i, c: make(r, i) };
      });
      const results = await Promise.allSettled(batch.map(({ i, c }) => play(c, i)));
      const failure = results.find((x) => x.status === "rejected");
      if (failure) {
        failed = true;
        throw failure.reason;
      }
    }),
    propertyParams(Math.ceil(max / concurrency)),
  );
  return ran;
}

// ---- the tests ------------------------------------------------------------------------------

describe(`fuzz (seed ${propertySeed() ?? "random"})`, () => {
  let server: Server;
  const logs: string[] = [];
  let rssBefore = 0;
  /** Connections not yet closed by the test (all are closed in the end, whatever fails). */
  const open = new Set<RawConn>();

  before(async () => {
    rssBefore = process.memoryUsage().rss;
    const opts: Options = validateOptions({
      ...defaultOptions(),
      host: "127.0.0.1",
      port: -1,
      maxPayload: MAX_PAYLOAD,
      maxControlLine: MAX_CONTROL_LINE,
    });
    const log = new ServerLogger({ logtime: false, sink: (l) => logs.push(l) });
    server = new Server(opts, log);
    await server.startServer();
  });

  after(async () => {
    for (const c of open) c.close();
    await server.shutdown();
  });

  /** Sends one malformed case, probes the connection, and checks everything it received. */
  async function fuzzCase(kind: string, i: number, sent: Sent): Promise<"usable" | "closed"> {
    const what = `${kind} case ${i}: ${show(sent.bytes)}`;
    const conn = await connectReady(server.port);
    open.add(conn);
    await send(conn, sent);
    const state = await probe(conn, `${kind[0]}${i}`).catch((err: Error) =>
      assert.fail(`connection neither usable nor closed (${err.message}) after ${what}`),
    );
    let replies: Replies;
    try {
      replies = readReplies(conn.data);
    } catch (err) {
      assert.fail(`${(err as Error).message} after ${what}`);
    }
    for (const e of replies.errs) {
      assert.ok(KNOWN_ERRORS.has(e), `unknown -ERR '${e}' after ${what}`);
    }
    const tag = `cid:${String(replies.infos[0]?.["client_id"])} - `;
    const crashes = logs.filter((l) => l.includes(tag) && isInternalError(l));
    assert.deepEqual(crashes, [], `internal error after ${what}`);
    conn.close();
    open.delete(conn);
    await assertAlive(server.port, what);
    return state;
  }

  test("random byte streams", async () => {
    const seen = { usable: 0, closed: 0 };
    const n = await runCases(
      BUDGET_MS * 0.3,
      5000,
      (r) => chunked(r, randomStream(r)),
      async (sent, i) => {
        seen[await fuzzCase("random", i, sent)]++;
      },
    );
    assert.ok(n >= 10, `only ${n} cases ran`);
    assert.ok(seen.closed > 0, "no case was refused");
  });

  test("mutated valid sessions", async () => {
    const seen = { usable: 0, closed: 0 };
    const n = await runCases(
      BUDGET_MS * 0.4,
      5000,
      (r, i) => chunked(r, mutate(r, validSession(r, `m${i}`).bytes)),
      async (sent, i) => {
        seen[await fuzzCase("mutated", i, sent)]++;
      },
    );
    assert.ok(n >= 10, `only ${n} cases ran`);
    // Both outcomes must occur, or the mutations are too mild or too wild to test anything.
    // (Outcomes depend only on the seed, so with enough cases this cannot flake.)
    if (n >= 40) assert.ok(seen.usable > 0 && seen.closed > 0, JSON.stringify(seen));
  });

  test("valid sessions split into random chunks arrive intact", async () => {
    const make = (r: Rng, i: number) => {
      const s = validSession(r, `v${i}`);
      return { s, sent: chunked(r, s.bytes) };
    };
    const n = await runCases(BUDGET_MS * 0.3, 5000, make, async ({ s, sent }, i) => {
      const what = `valid case ${i}: ${show(s.bytes)}`;
      const conn = await connectReady(server.port);
      open.add(conn);
      await send(conn, sent);
      await checkFor(
        5000,
        () => {
          if (conn.closed) throw new Error(`closed: ${JSON.stringify(conn.data.slice(-200))}`);
          return readReplies(conn.data).pongs >= s.pings;
        },
        2,
      ).catch((err: Error) => assert.fail(`${err.message} in ${what}`));
      const got = readReplies(conn.data);
      assert.deepEqual(got.errs, [], what);
      assert.equal(got.pongs, s.pings, what);
      assert.equal(got.oks, s.oks, what);
      assert.equal(got.msgs.length, s.msgs.length, what);
      assert.deepEqual(got.msgs, s.msgs, what);
      conn.close();
      open.delete(conn);
    });
    assert.ok(n >= 10, `only ${n} cases ran`);
  });

  test("afterwards: no internal errors, no connections left, memory bounded", async () => {
    for (const c of open) c.close();
    await checkFor(5000, () => server.clients.size === 0);
    const internal = logs.filter(isInternalError);
    assert.deepEqual(internal, [], "internal errors were logged");
    const growth = process.memoryUsage().rss - rssBefore;
    assert.ok(growth < 200 * 1024 * 1024, `rss grew by ${Math.round(growth / 1048576)} MB`);
    // Every connection the server closed was closed for a protocol reason, never a crash.
    const allowed = new Set<string>([
      CloseReason.ClientClosed,
      CloseReason.ProtocolViolation,
      CloseReason.MaxPayload,
      CloseReason.MaxControlLine,
      CloseReason.ReadError, // a reset when the test closes with PONGs still in flight
    ]);
    for (const { reason } of server.closed) assert.ok(allowed.has(reason), reason);
  });
});

describe("limits, against a server with the default options", () => {
  let server: Server;

  before(async () => {
    server = await startServer();
  });

  after(() => server.shutdown());

  test("a 1 MB control line without a line end: rejected early, not buffered", async () => {
    const conn = await connectReady(server.port);
    try {
      const total = 1024 * 1024;
      const chunk = Buffer.alloc(16 * 1024, "x");
      conn.send("PUB ");
      let sent = 0;
      while (sent < total && !conn.closed && !conn.data.includes("-ERR")) {
        conn.send(chunk);
        sent += chunk.length;
        await new Promise((resolve) => setImmediate(resolve));
      }
      await conn.waitClosed();
      assert.equal(readReplies(conn.data).errs.join(), ErrText.MaxControlLine);
      // The server answered long before the line could have been held in full.
      assert.ok(sent <= total / 4, `server read ${sent} bytes before refusing`);
      await assertAlive(server.port, "a huge control line");
      const cid = readReplies(conn.data).infos[0]!["client_id"];
      const rec = server.closed.find((c) => c.client.cid === cid);
      assert.equal(rec?.reason, CloseReason.MaxControlLine);
    } finally {
      conn.close();
    }
  });

  test("a 1 MB control line in one write", async () => {
    const conn = await connectReady(server.port);
    try {
      conn.send(Buffer.concat([Buffer.from("SUB "), Buffer.alloc(1024 * 1024, "y")]));
      await conn.waitClosed();
      assert.deepEqual(readReplies(conn.data).errs, [ErrText.MaxControlLine]);
    } finally {
      conn.close();
    }
  });

  test("PUB announcing one byte over max_payload gets 'Maximum Payload Violation'", async () => {
    for (const op of [
      "PUB foo 1048577\r\n",
      "HPUB foo 12 1048577\r\n",
      "PUB foo bar 99999999\r\n",
    ]) {
      const conn = await connectReady(server.port);
      try {
        conn.send(`CONNECT {"verbose":false,"headers":true}\r\n${op}`);
        await conn.waitClosed();
        assert.deepEqual(readReplies(conn.data).errs, [ErrText.MaxPayload], op);
      } finally {
        conn.close();
      }
    }
  });

  test("a payload of exactly max_payload is accepted", async () => {
    const conn = await connectReady(server.port);
    try {
      const body = Buffer.alloc(1024 * 1024, "z");
      conn.send('CONNECT {"verbose":false}\r\nSUB big 1\r\nPUB big 1048576\r\n');
      conn.send(body);
      conn.send("\r\nPING\r\n");
      await conn.waitFor(/PONG\r\n/, 5000);
      const got = readReplies(conn.data);
      assert.deepEqual(got.errs, []);
      assert.equal(got.msgs.length, 1);
      assert.equal(got.msgs[0]!.payload.length, 1024 * 1024);
    } finally {
      conn.close();
    }
  });

  // nats-server closes these without a -ERR (the argument errors of processPub/Sub/Unsub and
  // an unparsable CONNECT only log).
  const silent = [
    "CONNECT {bad json\r\n",
    "CONNECT 42\r\n",
    "PUB foo\r\n",
    "PUB foo bar baz 1\r\n",
    "PUB foo x\r\n",
    "PUB foo -1\r\n",
    "SUB foo\r\n",
    "SUB foo q 1 extra\r\n",
    "UNSUB \r\n",
    "UNSUB 1 2 3\r\n",
  ];
  for (const input of silent) {
    test(`closed silently: ${JSON.stringify(input)}`, async () => {
      const conn = await connectReady(server.port);
      try {
        conn.send(input);
        await conn.waitClosed();
        assert.deepEqual(readReplies(conn.data).errs, []);
      } finally {
        conn.close();
      }
    });
  }

  test("connections closed mid-payload do not pin their buffers", {}, async () => {
    const gc = exposeGc();
    gc();
    const before = process.memoryUsage().arrayBuffers;
    const n = 40;
    for (let i = 0; i < n; i++) {
      const conn = await connectReady(server.port);
      conn.send("PUB held 1048576\r\n");
      conn.send(Buffer.alloc(1_000_000, "h"));
      await new Promise<void>((resolve) => conn.socket.write("", () => resolve()));
      conn.close();
    }
    // Wait until every server-side socket is gone too: bytes still in flight when a client
    // closed are read into buffers that are garbage only once the socket is destroyed.
    await checkFor(
      10_000,
      () => server.clients.size === 0 && server.closed.every((c) => c.client.socket.destroyed),
    );
    // Backing stores are released by the garbage collector's finalisation, possibly a few
    // collections later under load: collect until the growth is under the bound, or give up.
    let growth = Infinity;
    await checkFor(5000, () => {
      gc();
      growth = process.memoryUsage().arrayBuffers - before;
      return growth < (n * 1_000_000) / 4;
    }).catch(() => {});
    assert.ok(growth < (n * 1_000_000) / 4, `${Math.round(growth / 1048576)} MB still held`);
  });

  test("every connection is gone afterwards", async () => {
    await checkFor(3000, () => server.clients.size === 0);
  });
});
