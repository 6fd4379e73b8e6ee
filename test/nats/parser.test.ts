// Unit tests of the protocol parser with a recording sink (no sockets): every operation parsed
// whole, one byte at a time and split into two or three chunks at every (or many) offsets must
// give the same sequence of (op, argument, payload); the argument helpers; malformed input and
// the ProtocolError texts nats-server sends for it; and that payloads and control lines fully
// inside one read are handed over as views of it, not copies.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  Op,
  Parser,
  parseSize,
  splitArgs,
  type OpCode,
  type ParserOptions,
  type ParserSink,
} from "../../src/nats/parser.js";
import { ErrText, ProtocolError } from "../../src/nats/errors.js";
import fc from "fast-check";
import { propertyParams } from "../helpers/property.js";

const OP_NAMES = new Map<number, string>(Object.entries(Op).map(([k, v]) => [v, k]));

/** What the sink saw: [op name, argument text] for a control line, ["payload", bytes] for a payload. */
type Event = [string, string];

/** Operations followed by a payload whose size is the last argument. */
const WITH_PAYLOAD = new Set<number>([Op.PUB, Op.HPUB, Op.MSG, Op.HMSG, Op.RMSG]);

/** Records everything, copying the bytes (they are only valid during the call). */
class Recorder implements ParserSink {
  readonly events: Event[] = [];
  readonly args: Buffer[] = [];
  readonly payloads: Buffer[] = [];
  private readonly out = new Int32Array(16);

  control(op: OpCode, arg: Buffer): number {
    this.events.push([OP_NAMES.get(op)!, arg.toString("latin1")]);
    this.args.push(arg);
    if (!WITH_PAYLOAD.has(op)) return -1;
    const n = splitArgs(arg, this.out);
    assert.ok(n > 0, `no size in ${JSON.stringify(arg.toString("latin1"))}`);
    return parseSize(arg, this.out[2 * n - 2]!, this.out[2 * n - 1]!);
  }

  payload(data: Buffer): void {
    this.events.push(["payload", data.toString("latin1")]);
    this.payloads.push(data);
  }
}

/**
 * The same record through the allocation-free sink methods a real client or route has (pubAt,
 * payloadAt, and argsAt, the parser's one-pass path for canonical PUB and RMSG lines). argsAt
 * checks that the parser's split agrees with the line, and counts how often it was taken.
 */
class FastRecorder extends Recorder {
  fastLines = 0;

  pubAt(buf: Buffer, start: number, end: number): number {
    return this.control(Op.PUB, buf.subarray(start, end));
  }

  payloadAt(buf: Buffer, start: number, end: number): void {
    this.payload(buf.subarray(start, end));
  }

  argsAt(
    op: OpCode,
    buf: Buffer,
    start: number,
    end: number,
    toks: Int32Array,
    n: number,
    size: number,
  ): number {
    this.fastLines++;
    const parts = buf.toString("latin1", start, end).split(" ");
    const split = Array.from({ length: n }, (_, i) =>
      buf.toString("latin1", toks[2 * i]!, toks[2 * i + 1]!),
    );
    assert.deepEqual(split, parts);
    assert.equal(this.control(op, buf.subarray(start, end)), size);
    return size;
  }
}

/** Which sink the tests feed: switched on for a second pass over the same tables. */
let fastSink = false;
const newSink = (): Recorder => (fastSink ? new FastRecorder() : new Recorder());

/** Runs a group of tests with the plain sink, then again with the fast one. */
function withBothSinks(name: string, body: () => void): void {
  describe(name, body);
  describe(`${name} (client sink with the fast PUB path)`, () => {
    before(() => (fastSink = true));
    after(() => (fastSink = false));
    body();
  });
}

/** A buffer with its own memory (never Node's shared pool), so view checks mean something. */
function own(s: string | Buffer): Buffer {
  const src = typeof s === "string" ? Buffer.from(s, "latin1") : s;
  const b = Buffer.alloc(src.length);
  src.copy(b);
  return b;
}

function feed(chunks: Buffer[], opts: ParserOptions): Recorder {
  const rec = newSink();
  const p = new Parser(rec, opts);
  for (const c of chunks) p.parse(c);
  return rec;
}

/** Splits input at the given offsets (ascending). */
function split(input: Buffer, at: number[]): Buffer[] {
  const out: Buffer[] = [];
  let from = 0;
  for (const i of at) {
    out.push(own(input.subarray(from, i)));
    from = i;
  }
  out.push(own(input.subarray(from)));
  return out;
}

/**
 * Feeds input whole, one byte at a time, split in two at every offset, and split in three at
 * every pair of offsets (or, when the input is long, `triples` random pairs: a fast-check property
 * whose failure shrinks to the smallest offsets that break), checking that the sink sees
 * `expected` every time.
 */
function checkAllSplits(
  text: string,
  opts: ParserOptions,
  expected: Event[],
  triples = Infinity,
): void {
  const input = Buffer.from(text, "latin1");
  const n = input.length;
  const label = JSON.stringify(text.length > 80 ? text.slice(0, 80) + "..." : text);
  assert.deepEqual(feed([own(input)], opts).events, expected, `whole ${label}`);
  const bytes = [...input].map((b) => own(Buffer.from([b])));
  assert.deepEqual(feed(bytes, opts).events, expected, `byte by byte ${label}`);
  for (let i = 0; i <= n; i++) {
    assert.deepEqual(feed(split(input, [i]), opts).events, expected, `split at ${i} ${label}`);
  }
  const pairs = ((n + 1) * (n + 2)) / 2;
  if (pairs <= triples) {
    for (let i = 0; i <= n; i++) {
      for (let j = i; j <= n; j++) {
        const got = feed(split(input, [i, j]), opts).events;
        assert.deepEqual(got, expected, `split at ${i},${j} ${label}`);
      }
    }
  } else {
    const offset = fc.integer({ min: 0, max: n });
    fc.assert(
      fc.property(offset, offset, (a, b) => {
        const at = [Math.min(a, b), Math.max(a, b)];
        assert.deepEqual(feed(split(input, at), opts).events, expected, `split at ${at} ${label}`);
      }),
      propertyParams(triples),
    );
  }
}

const HDR = "NATS/1.0\r\nA: b\r\n\r\n"; // 18 bytes

// [input, expected events] — valid for clients (and for routes too).
const clientCases: [string, Event[]][] = [
  ['CONNECT {"verbose":false}\r\n', [["CONNECT", '{"verbose":false}']]],
  ["connect\t{}\r\n", [["CONNECT", "{}"]]],
  ["CONNECT{}\r\n", [["CONNECT", "{}"]]],
  ['CoNnEcT  \t {"a": 1}\n', [["CONNECT", '{"a": 1}']]],
  ['INFO {"server_id":"x","max_payload":1}\r\n', [["INFO", '{"server_id":"x","max_payload":1}']]],
  ["info{}\n", [["INFO", "{}"]]],
  [
    "PUB foo 5\r\nhello\r\n",
    [
      ["PUB", "foo 5"],
      ["payload", "hello"],
    ],
  ],
  [
    "PUB foo bar 5\r\nhello\r\n",
    [
      ["PUB", "foo bar 5"],
      ["payload", "hello"],
    ],
  ],
  [
    "pub foo  \t bar\t5\r\nhello\r\n",
    [
      ["PUB", "foo  \t bar\t5"],
      ["payload", "hello"],
    ],
  ],
  [
    "Pub\t\tfoo 5\nhello\r\n",
    [
      ["PUB", "foo 5"],
      ["payload", "hello"],
    ],
  ],
  [
    "PUB foo 6\r\nab\r\ncd\r\n",
    [
      ["PUB", "foo 6"],
      ["payload", "ab\r\ncd"],
    ],
  ],
  [
    "PUB foo 4\r\n\r\n\r\n\r\n",
    [
      ["PUB", "foo 4"],
      ["payload", "\r\n\r\n"],
    ],
  ],
  [
    "PUB foo 0\r\n\r\n",
    [
      ["PUB", "foo 0"],
      ["payload", ""],
    ],
  ],
  [
    "PUB foo r 0\n\r\n",
    [
      ["PUB", "foo r 0"],
      ["payload", ""],
    ],
  ],
  [
    "PUB foo 3\r\n\x00\xff\n\r\n",
    [
      ["PUB", "foo 3"],
      ["payload", "\x00\xff\n"],
    ],
  ],
  [
    `HPUB foo 18 20\r\n${HDR}hi\r\n`,
    [
      ["HPUB", "foo 18 20"],
      ["payload", `${HDR}hi`],
    ],
  ],
  [
    `HPUB foo reply 18 20\r\n${HDR}hi\r\n`,
    [
      ["HPUB", "foo reply 18 20"],
      ["payload", `${HDR}hi`],
    ],
  ],
  [
    `hpub foo 18 18\n${HDR}\r\n`,
    [
      ["HPUB", "foo 18 18"],
      ["payload", HDR],
    ],
  ],
  ["SUB foo 1\r\n", [["SUB", "foo 1"]]],
  ["SUB foo q 1\r\n", [["SUB", "foo q 1"]]],
  ["sUb foo\tq\t\t1\n", [["SUB", "foo\tq\t\t1"]]],
  ["UNSUB 1\r\n", [["UNSUB", "1"]]],
  ["UNSUB 1 5\r\n", [["UNSUB", "1 5"]]],
  ["unsub  1   5\n", [["UNSUB", "1   5"]]],
  ["PING\r\n", [["PING", ""]]],
  ["ping\n", [["PING", ""]]],
  ["PING anything\r\n", [["PING", ""]]],
  ["PONG\r\n", [["PONG", ""]]],
  ["pOnG\n", [["PONG", ""]]],
  ["+OK\r\n", [["OK", ""]]],
  ["+ok\n", [["OK", ""]]],
  ["-ERR 'Unknown Protocol Operation'\r\n", [["ERR", "'Unknown Protocol Operation'"]]],
  ["-err\t'Stale Connection'\n", [["ERR", "'Stale Connection'"]]],
];

// Server-to-server operations, only accepted with {route: true}.
const routeCases: [string, Event[]][] = [
  ["RS+ $G foo\r\n", [["RS_PLUS", "$G foo"]]],
  ["RS+ $G foo q 1\r\n", [["RS_PLUS", "$G foo q 1"]]],
  ["rs+\t$G foo\n", [["RS_PLUS", "$G foo"]]],
  ["RS- $G foo\r\n", [["RS_MINUS", "$G foo"]]],
  ["RS- $G foo q\r\n", [["RS_MINUS", "$G foo q"]]],
  [
    "RMSG $G foo 5\r\nhello\r\n",
    [
      ["RMSG", "$G foo 5"],
      ["payload", "hello"],
    ],
  ],
  [
    "RMSG $G foo reply 6\r\nab\r\ncd\r\n",
    [
      ["RMSG", "$G foo reply 6"],
      ["payload", "ab\r\ncd"],
    ],
  ],
  [
    "rmsg $G foo + reply q1 q2 0\r\n\r\n",
    [
      ["RMSG", "$G foo + reply q1 q2 0"],
      ["payload", ""],
    ],
  ],
  [
    "MSG foo 1 5\r\nhello\r\n",
    [
      ["MSG", "foo 1 5"],
      ["payload", "hello"],
    ],
  ],
  [
    "MSG foo 1 reply 5\nhello\r\n",
    [
      ["MSG", "foo 1 reply 5"],
      ["payload", "hello"],
    ],
  ],
  [
    `HMSG foo 1 18 20\r\n${HDR}hi\r\n`,
    [
      ["HMSG", "foo 1 18 20"],
      ["payload", `${HDR}hi`],
    ],
  ],
  [
    `hmsg foo 1 r 18 18\r\n${HDR}\r\n`,
    [
      ["HMSG", "foo 1 r 18 18"],
      ["payload", HDR],
    ],
  ],
];

const CLIENT: ParserOptions = { maxControlLine: 4096 };
const ROUTE: ParserOptions = { maxControlLine: 4096, route: true };

withBothSinks("Parser: every operation, however the reads split it", () => {
  for (const [input, expected] of clientCases) {
    test(`client ${JSON.stringify(input)}`, () => {
      checkAllSplits(input, CLIENT, expected);
      checkAllSplits(input, ROUTE, expected);
    });
  }
  for (const [input, expected] of routeCases) {
    test(`route ${JSON.stringify(input)}`, () => {
      checkAllSplits(input, ROUTE, expected);
    });
  }

  test("a whole client session (every case back to back)", () => {
    const input = clientCases.map(([i]) => i).join("");
    const expected = clientCases.flatMap(([, e]) => e);
    checkAllSplits(input, CLIENT, expected, 1000);
  });

  test("a whole route session (every case back to back)", () => {
    const cases = [...routeCases, ...clientCases];
    const input = cases.map(([i]) => i).join("");
    const expected = cases.flatMap(([, e]) => e);
    checkAllSplits(input, ROUTE, expected, 1000);
  });

  test("a large payload arrives whole however it is split", () => {
    const body = Buffer.alloc(70_000);
    for (let i = 0; i < body.length; i++) body[i] = (i * 7 + 3) & 0xff;
    const input = `PUB big 70000\r\n${body.toString("latin1")}\r\nPING\r\n`;
    const expected: Event[] = [
      ["PUB", "big 70000"],
      ["payload", body.toString("latin1")],
      ["PING", ""],
    ];
    const buf = Buffer.from(input, "latin1");
    assert.deepEqual(feed([own(buf)], CLIENT).events, expected);
    for (const size of [1, 2, 3, 1000, 4096, 65536]) {
      const chunks: Buffer[] = [];
      for (let i = 0; i < buf.length; i += size) chunks.push(own(buf.subarray(i, i + size)));
      assert.deepEqual(feed(chunks, CLIENT).events, expected, `chunks of ${size}`);
    }
  });

  test("a long control line below a large limit survives splitting (the holder grows)", () => {
    const opts = { maxControlLine: 20_000 };
    const subject = "a.".repeat(6000) + "b"; // 12001 bytes
    const input = `SUB ${subject} 1\r\nPING\r\n`;
    const expected: Event[] = [
      ["SUB", `${subject} 1`],
      ["PING", ""],
    ];
    const buf = Buffer.from(input);
    assert.deepEqual(feed([own(buf)], opts).events, expected);
    assert.deepEqual(
      feed(
        [...buf].map((b) => own(Buffer.from([b]))),
        opts,
      ).events,
      expected,
    );
    for (const at of [5, 4000, 4100, 8200, 12000, 12005]) {
      assert.deepEqual(feed(split(buf, [at]), opts).events, expected, `split at ${at}`);
    }
  });
});

describe("splitArgs", () => {
  const cases: [string, string[] | null][] = [
    ["", []],
    [" ", []],
    ["\t \t", []],
    ["foo", ["foo"]],
    ["foo bar", ["foo", "bar"]],
    ["  foo \t bar\t\t", ["foo", "bar"]],
    ["foo\tbar\tbaz", ["foo", "bar", "baz"]],
    ["a b c d", ["a", "b", "c", "d"]],
    ["a b c d ", ["a", "b", "c", "d"]],
    ["a b c d e", null], // more than out.length / 2
    ["a b c d e ", null],
    ["foo\r", ["foo\r"]], // only blanks and tabs separate
    ["foo\nbar", ["foo\nbar"]],
  ];
  for (const [input, want] of cases) {
    test(JSON.stringify(input), () => {
      const arg = Buffer.from(input);
      const out = new Int32Array(8);
      const n = splitArgs(arg, out);
      if (want === null) {
        assert.equal(n, -1);
        return;
      }
      const got: string[] = [];
      for (let i = 0; i < n; i++) got.push(arg.toString("latin1", out[2 * i], out[2 * i + 1]));
      assert.deepEqual(got, want);
    });
  }
});

describe("parseSize", () => {
  const cases: [string, number][] = [
    ["0", 0],
    ["5", 5],
    ["007", 7],
    ["1048576", 1048576],
    ["999999999", 999999999], // nine digits: the longest accepted, as in nats-server
    ["000000001", 1],
    ["1000000000", -1], // ten digits
    ["999999999999", -1],
    ["", -1],
    ["-1", -1],
    ["+1", -1],
    ["12a", -1],
    ["a12", -1],
    [" 1", -1],
    ["1 ", -1],
    ["1.5", -1],
    ["0x10", -1],
  ];
  for (const [input, want] of cases) {
    test(JSON.stringify(input), () => {
      const b = Buffer.from(input);
      assert.equal(parseSize(b, 0, b.length), want);
    });
  }

  test("reads only the given range", () => {
    const b = Buffer.from("PUB foo 123 x");
    assert.equal(parseSize(b, 8, 11), 123);
    assert.equal(parseSize(b, 8, 10), 12);
    assert.equal(parseSize(b, 8, 8), -1);
    assert.equal(parseSize(b, 4, 11), -1);
  });
});

/** Feeds chunks and returns the ProtocolError thrown (failing if none is) and what the sink saw. */
function expectError(chunks: Buffer[], opts: ParserOptions): [ProtocolError, Event[]] {
  const rec = newSink();
  const p = new Parser(rec, opts);
  try {
    for (const c of chunks) p.parse(c);
  } catch (err) {
    assert.ok(err instanceof ProtocolError, `not a ProtocolError: ${String(err)}`);
    return [err, rec.events];
  }
  assert.fail(`no error; sink saw ${JSON.stringify(rec.events)}`);
}

/**
 * Checks that input fails with errText whole, byte by byte and split in two at every offset,
 * and that the sink saw `before` first.
 */
function checkFails(text: string, opts: ParserOptions, errText: string, before: Event[]): void {
  const input = Buffer.from(text, "latin1");
  const label = JSON.stringify(text.length > 60 ? text.slice(0, 60) + "..." : text);
  const splits: Buffer[][] = [[own(input)], [...input].map((b) => own(Buffer.from([b])))];
  if (input.length <= 200) for (let i = 0; i <= input.length; i++) splits.push(split(input, [i]));
  else
    for (const i of [1, 100, input.length >> 1, input.length - 1]) splits.push(split(input, [i]));
  for (const chunks of splits) {
    const [err, events] = expectError(chunks, opts);
    const how = `${label} in ${chunks.length} chunks`;
    assert.equal(err.errText, errText, how);
    assert.deepEqual(events, before, how);
  }
}

withBothSinks("Parser: malformed input", () => {
  const U = ErrText.UnknownOp;
  // [input, route, text, events before the error]
  const cases: [string, boolean, string, Event[]][] = [
    ["FOO\r\n", false, U, []],
    ["\r\n", false, U, []],
    ["\n", false, U, []],
    [" PING\r\n", false, U, []],
    ["PUBX foo 1\r\n", false, U, []],
    ["PUB\r\n", false, U, []],
    ["SUB\r\n", false, U, []],
    ["SUBfoo 1\r\n", false, U, []],
    ["UNSUBX\r\n", false, U, []],
    ["PINX\r\n", false, U, []],
    ["PONX\r\n", false, U, []],
    ["+OX\r\n", false, U, []],
    ["CONNEXT {}\r\n", false, U, []],
    ["INFX {}\r\n", false, U, []],
    ["HPUX foo 1 1\r\n", false, U, []],
    ["PING\r\nFOO\r\n", false, U, [["PING", ""]]],
    ["-ERR\r\n", false, U, []],
    ["-ERR'x'\r\n", false, U, []],
    ["-EXX 'x'\r\n", false, U, []],
    // the payload must be followed by CRLF
    ["PUB foo 5\r\nhelloX\r\n", false, U, [["PUB", "foo 5"]]],
    ["PUB foo 5\r\nhello\n", false, U, [["PUB", "foo 5"]]],
    ["PUB foo 5\r\nhello\rX", false, U, [["PUB", "foo 5"]]],
    ["PUB foo 5\r\nhello world\r\n", false, U, [["PUB", "foo 5"]]],
    ["PUB foo 0\r\nX", false, U, [["PUB", "foo 0"]]],
    ["PUB foo 0\r\n\rX", false, U, [["PUB", "foo 0"]]],
    [`HPUB foo 18 18\r\n${HDR}x\r\n`, false, U, [["HPUB", "foo 18 18"]]],
    // server-to-server operations from a client
    ["MSG foo 1 5\r\nhello\r\n", false, U, []],
    ["msg foo 1 5\r\nhello\r\n", false, U, []],
    [`HMSG foo 1 18 18\r\n${HDR}\r\n`, false, U, []],
    ["RS+ $G foo\r\n", false, U, []],
    ["RS- $G foo\r\n", false, U, []],
    ["RMSG $G foo 5\r\nhello\r\n", false, U, []],
    // malformed server-to-server operations
    ["RS* $G foo\r\n", true, U, []],
    ["RS+$G foo\r\n", true, U, []],
    ["RX\r\n", true, U, []],
    ["MSX foo 1 1\r\n", true, U, []],
    ["HMX foo 1 1 1\r\n", true, U, []],
    ["RMSG $G foo 1\r\nab\r\n", true, U, [["RMSG", "$G foo 1"]]],
  ];
  for (const [input, route, text, before] of cases) {
    test(`${route ? "route" : "client"} ${JSON.stringify(input)} → ${text}`, () => {
      checkFails(input, { maxControlLine: 4096, route }, text, before);
    });
  }
});

withBothSinks("Parser: maximum control line", () => {
  const M = ErrText.MaxControlLine;

  for (const max of [16, 100, 4096]) {
    describe(`max_control_line ${max}`, () => {
      const opts = { maxControlLine: max };
      const arg = (n: number) => "x".repeat(n - 2) + " 1"; // SUB <subject> 1

      test("a line exactly at the limit is accepted, with CRLF or a bare LF", () => {
        for (const eol of ["\r\n", "\n"]) {
          const input = `SUB ${arg(max)}${eol}PING\r\n`;
          const expected: Event[] = [
            ["SUB", arg(max)],
            ["PING", ""],
          ];
          checkAllSplits(input, opts, expected, 200);
        }
        checkAllSplits(
          `PUB ${arg(max)}\r\na\r\nPING\r\n`,
          opts,
          [
            ["PUB", arg(max)],
            ["payload", "a"],
            ["PING", ""],
          ],
          200,
        );
        checkAllSplits(
          `CONNECT ${"{}".padEnd(max, " ")}\r\n`,
          opts,
          [["CONNECT", "{}".padEnd(max, " ")]],
          200,
        );
      });

      test("one byte over the limit fails, with CRLF or a bare LF", () => {
        for (const eol of ["\r\n", "\n"]) {
          checkFails(`SUB ${arg(max + 1)}${eol}`, opts, M, []);
          checkFails(`PING\r\nPUB ${arg(max + 1)}${eol}`, opts, M, [["PING", ""]]);
          checkFails(`UNSUB ${arg(max + 1)}${eol}`, opts, M, []);
          checkFails(`CONNECT ${"{}".padEnd(max + 1, " ")}${eol}`, opts, M, []);
          checkFails(`-ERR ${"'x'".padEnd(max + 1, " ")}${eol}`, opts, M, []);
        }
      });

      test("a line that never ends fails once it is past the limit", () => {
        checkFails(`SUB ${"x".repeat(max + 2)}`, opts, M, []);
        checkFails(`PUB ${"x".repeat(max * 3)}`, opts, M, []);
        checkFails(`CONNECT {${" ".repeat(max * 3)}`, opts, M, []);
      });
    });
  }

  test("a huge line without a line end fails without buffering it all", () => {
    const chunk = own(Buffer.alloc(64 * 1024, "x"));
    const rec = new Recorder();
    const p = new Parser(rec, { maxControlLine: 4096 });
    p.parse(own("PUB "));
    assert.throws(
      () => {
        for (let i = 0; i < 16; i++) p.parse(chunk);
      },
      (err: unknown) => err instanceof ProtocolError && err.errText === M,
    );
    assert.deepEqual(rec.events, []);
  });
});

describe("Parser: no copies when a read holds the whole thing", () => {
  test("a payload inside one read is a view of it; a split one is a copy", () => {
    const first = "PUB foo 5\r\nhello\r\n";
    const input = own(`${first}PUB foo 5\r\nhel`);
    const rest = own("lo\r\n");
    const rec = feed([input, rest], CLIENT);
    assert.deepEqual(rec.events, [
      ["PUB", "foo 5"],
      ["payload", "hello"],
      ["PUB", "foo 5"],
      ["payload", "hello"],
    ]);
    const [whole, split] = rec.payloads as [Buffer, Buffer];
    assert.equal(whole.buffer, input.buffer);
    assert.equal(whole.byteOffset, input.byteOffset + first.indexOf("hello"));
    assert.notEqual(split.buffer, input.buffer);
    assert.notEqual(split.buffer, rest.buffer);
    // The copy must not change when the reads' memory is reused after the call.
    input.fill(0);
    rest.fill(0);
    assert.equal(split.toString(), "hello");
  });

  test("a control line inside one read is a view of it; a split one is not", () => {
    const input = own("SUB foo 1\r\nSUB bar ");
    const rest = own("2\r\n");
    const rec = feed([input, rest], CLIENT);
    assert.deepEqual(rec.events, [
      ["SUB", "foo 1"],
      ["SUB", "bar 2"],
    ]);
    const [whole, joined] = rec.args as [Buffer, Buffer];
    assert.equal(whole.buffer, input.buffer);
    assert.equal(whole.byteOffset, input.byteOffset + 4);
    assert.notEqual(joined.buffer, input.buffer);
    assert.notEqual(joined.buffer, rest.buffer);
  });

  test("many messages in one read are all views of it", () => {
    let text = "";
    for (let i = 0; i < 100; i++) text += `PUB s.${i} ${String(i).length}\r\n${i}\r\n`;
    const input = own(text);
    const rec = feed([input], CLIENT);
    assert.equal(rec.payloads.length, 100);
    for (const [i, p] of rec.payloads.entries()) {
      assert.equal(p.buffer, input.buffer);
      assert.equal(p.toString(), String(i));
    }
  });

  test("canonical PUB lines in one read take the one-pass path; others the state machine", () => {
    const canonical = "PUB a 1\r\nx\r\nPUB a.b r.1 2\r\nxy\r\nPUB c 0\r\n\r\n";
    const unusual =
      "PUB  a 1\r\nx\r\nPUB a\t1\r\nx\r\nPUB a 1\nx\r\nPUB a 1 \r\nx\r\npub a 1\r\nx\r\n";
    fastSink = true;
    try {
      const fast = feed([own(canonical)], CLIENT) as FastRecorder;
      assert.equal(fast.fastLines, 3);
      assert.deepEqual(fast.events, [
        ["PUB", "a 1"],
        ["payload", "x"],
        ["PUB", "a.b r.1 2"],
        ["payload", "xy"],
        ["PUB", "c 0"],
        ["payload", ""],
      ]);
      const slow = feed([own(unusual)], CLIENT) as FastRecorder;
      assert.equal(slow.fastLines, 0);
      assert.equal(slow.events.filter(([op]) => op === "PUB").length, 5);
      assert.deepEqual(
        slow.events.filter(([op]) => op === "payload"),
        Array(5).fill(["payload", "x"]),
      );
    } finally {
      fastSink = false;
    }
  });

  test("canonical RMSG lines on a route take it too; queue forms and HMSG do not", () => {
    const canonical = "RMSG $G a 1\r\nx\r\nRMSG $G a.b r.1 2\r\nxy\r\n";
    const general = `RMSG $G a + r q1 1\r\nx\r\nRMSG $G a | q1 q2 1\r\nx\r\nRMSG $G a | 1\r\nx\r\nHMSG $G a 18 18\r\n${HDR}\r\n`;
    fastSink = true;
    try {
      const fast = feed([own(canonical + general)], ROUTE) as FastRecorder;
      assert.equal(fast.fastLines, 3, "the third is `RMSG $G a | 1`, handed on to control()");
      assert.deepEqual(fast.events, [
        ["RMSG", "$G a 1"],
        ["payload", "x"],
        ["RMSG", "$G a.b r.1 2"],
        ["payload", "xy"],
        ["RMSG", "$G a + r q1 1"],
        ["payload", "x"],
        ["RMSG", "$G a | q1 q2 1"],
        ["payload", "x"],
        ["RMSG", "$G a | 1"],
        ["payload", "x"],
        ["HMSG", "$G a 18 18"],
        ["payload", HDR],
      ]);
      assert.throws(() => feed([own(canonical)], CLIENT), ProtocolError, "clients: no RMSG");
    } finally {
      fastSink = false;
    }
  });
});

describe("Parser: requireConnect", () => {
  test("any operation but CONNECT is an Authorization Violation", () => {
    for (const input of ["PING\r\n", "PUB foo 1\r\nx\r\n", "SUB foo 1\r\n", "+OK\r\n", "x"]) {
      const p = new Parser(new Recorder(), CLIENT);
      p.requireConnect = true;
      assert.throws(
        () => p.parse(own(input)),
        (err: unknown) => err instanceof ProtocolError && err.errText === ErrText.AuthViolation,
        JSON.stringify(input),
      );
    }
  });

  test("CONNECT is parsed as usual, whole or split", () => {
    const rec = new Recorder();
    const p = new Parser(rec, CLIENT);
    p.requireConnect = true;
    p.parse(own("conn"));
    p.parse(own('ect {"user":"a"}\r'));
    p.requireConnect = false;
    p.parse(own("\nPING\r\n"));
    assert.deepEqual(rec.events, [
      ["CONNECT", '{"user":"a"}'],
      ["PING", ""],
    ]);
  });
});

describe("Parser: release", () => {
  test("drops a held payload and control line, and refuses further input", () => {
    for (const held of ["PUB foo 10\r\nhello", "SUB foo.bar"]) {
      const rec = new Recorder();
      const p = new Parser(rec, CLIENT);
      p.parse(own(held));
      const fields = p as unknown as { msgBuf: Buffer | null; argBuf: Buffer | null };
      assert.ok(fields.msgBuf !== null || fields.argBuf !== null, "nothing held");
      p.release();
      assert.equal(fields.msgBuf, null);
      assert.equal(fields.argBuf, null);
      assert.throws(
        () => p.parse(own("PING\r\n")),
        (err: unknown) => err instanceof ProtocolError,
      );
      assert.ok(!rec.events.some(([op]) => op === "PING" || op === "payload"));
    }
  });
});

// Keep OpCode values distinct: the recorder maps them back to names.
test("operation codes are distinct", () => {
  assert.equal(OP_NAMES.size, Object.keys(Op).length);
});
