// Differential tests: the same raw protocol sessions are played against shoal's message server
// and against the Go nats-server (the reference), and the normalised transcripts must match.
//
// A session is a list of steps, each sending bytes on one of its connections and then waiting
// for the server to settle: a PING/PONG barrier while the connection should stay open, a bounded
// wait for the close where the server should hang up. Transcripts keep every +OK, -ERR, PONG,
// MSG and HMSG in order; INFO lines lose their volatile fields (ids, versions, ports); one
// message delivered to several subscriptions of a connection compares as a multiset, since
// nats-server's order among matching subscriptions is not part of the protocol. Sessions whose
// difference is deliberate carry `knownDifference`: the line where the two transcripts part, as
// each server writes it, is asserted, and the rest must match; so the test fails when either
// server changes its answer (then decide whether the difference is still wanted).
//
// Without the Go nats-server the suite skips, except in CI (CI set in the environment), where it
// fails and says to install it (.ci/run does).

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  goServerPath,
  RawConn,
  runGoServer,
  runServer,
  type RunningServer,
} from "../helpers/servers.js";

// ---- the session table --------------------------------------------------------------------

/** Which server configuration a session runs against (each started once per suite). */
const SERVER_KINDS = ["plain", "userpass", "token", "perms", "limits", "maxconn"] as const;
type ServerKind = (typeof SERVER_KINDS)[number];

interface Step {
  /** Which connection sends (opened on first use, after its INFO arrived). */
  conn: number;
  send: string;
  /**
   * "pong": append PING and wait for its PONG (or the close); "close": wait for the server to
   * close the connection; "none": don't wait (the next step continues the same bytes).
   */
  wait: "pong" | "close" | "none";
}

interface Session {
  name: string;
  server?: ServerKind;
  steps: Step[];
  /** Sids of one queue group: which member got a message is random, so they compare as one. */
  anySid?: string[];
  /** Set when shoal deliberately differs: where, and why. */
  knownDifference?: KnownDifference;
}

interface KnownDifference {
  /** Why shoal differs on purpose. */
  why: string;
  /** The connection (default 0) and the index of the line in its normalised transcript. */
  conn?: number;
  line: number;
  /** That line as nats-server writes it, and as shoal does. */
  natsServer: string;
  shoal: string;
}

/** Sends on a connection, then waits for the PONG of an appended PING. */
const ping = (send: string, conn = 0): Step => ({ conn, send, wait: "pong" });
/** Sends, then waits for the server to close the connection. */
const closes = (send: string, conn = 0): Step => ({ conn, send, wait: "close" });
/** Sends without waiting (a message split over several writes). */
const partial = (send: string, conn = 0): Step => ({ conn, send, wait: "none" });

const CONNECT = "CONNECT {}\r\n";
const QUIET = 'CONNECT {"verbose":false,"pedantic":false}\r\n';
const QUIET_H = 'CONNECT {"verbose":false,"pedantic":false,"headers":true}\r\n';
const HDR = "NATS/1.0\r\nA: 1\r\n\r\n"; // 19 bytes
const hpub = (subject: string, body: string, reply = ""): string =>
  `HPUB ${subject} ${reply ? reply + " " : ""}${HDR.length} ${HDR.length + body.length}\r\n${HDR}${body}\r\n`;
const pub = (subject: string, body: string, reply = ""): string =>
  `PUB ${subject} ${reply ? reply + " " : ""}${body.length}\r\n${body}\r\n`;

const ALICE_Q = '"user":"alice","pass":"pw"';
const ALICE = `CONNECT {${ALICE_Q}}\r\n`;
const ALICE_QUIET = `CONNECT {"verbose":false,${ALICE_Q}}\r\n`;
const BOB_QUIET = 'CONNECT {"verbose":false,"user":"bob","pass":"pw"}\r\n';

const WHITESPACE_IN_SUBJECT =
  "nats-server 2.9 checks only the token structure of a SUB subject or queue name; shoal's " +
  "subject rules (subject.ts, shared with permissions) refuse whitespace such as a form feed";

const SESSIONS: Session[] = [
  // -- CONNECT ------------------------------------------------------------------------------
  { name: "connect: empty object (verbose by default)", steps: [ping(CONNECT)] },
  { name: "connect: verbose false", steps: [ping('CONNECT {"verbose":false}\r\n')] },
  {
    name: "connect: verbose true, pedantic false",
    steps: [
      ping('CONNECT {"verbose":true,"pedantic":false}\r\n' + "SUB foo 1\r\n" + pub("foo", "x")),
    ],
  },
  {
    name: "connect: typical client fields",
    steps: [
      ping(
        'CONNECT {"verbose":false,"pedantic":false,"tls_required":false,"name":"t","lang":"node",' +
          '"version":"2.0.0","protocol":1,"echo":true,"headers":true,"no_responders":true}\r\n',
      ),
    ],
  },
  { name: "connect: unknown fields are ignored", steps: [ping('CONNECT {"foo":1,"bar":[1]}\r\n')] },
  { name: "connect: without arguments", steps: [closes("CONNECT\r\n")] },
  { name: "connect: blank argument", steps: [closes("CONNECT \r\n")] },
  { name: "connect: invalid JSON", steps: [closes("CONNECT {verbose:false\r\n")] },
  { name: "connect: JSON number", steps: [closes("CONNECT 42\r\n")] },
  { name: "connect: JSON array", steps: [closes("CONNECT []\r\n")] },
  { name: "connect: JSON null", steps: [ping("CONNECT null\r\n")] },
  { name: "connect: wrong field type", steps: [closes('CONNECT {"verbose":"yes"}\r\n')] },
  { name: "connect: no blank before JSON", steps: [ping('CONNECT{"verbose":false}\r\n')] },
  { name: "connect: tab before JSON", steps: [ping('CONNECT\t{"verbose":false}\r\n')] },
  { name: "connect: lowercase", steps: [ping('connect {"verbose":false}\r\n')] },
  { name: "connect: bare LF", steps: [ping('CONNECT {"verbose":false}\n')] },
  {
    name: "connect: second CONNECT changes verbose",
    steps: [ping(CONNECT), ping('CONNECT {"verbose":false}\r\n' + "SUB foo 1\r\n")],
  },
  { name: "connect: protocol 1", steps: [ping('CONNECT {"protocol":1}\r\n')] },
  { name: "connect: protocol 1.5", steps: [closes('CONNECT {"protocol":1.5}\r\n')] },
  { name: "connect: protocol as a string", steps: [closes('CONNECT {"protocol":"1"}\r\n')] },
  { name: "connect: field names ignore case", steps: [ping('CONNECT {"VERBOSE":false}\r\n')] },
  { name: "connect: null field keeps the default", steps: [ping('CONNECT {"verbose":null}\r\n')] },
  { name: "connect: name of the wrong type", steps: [closes('CONNECT {"name":5}\r\n')] },
  { name: "connect: trailing data after JSON", steps: [closes("CONNECT {} x\r\n")] },
  { name: "connect: account is refused", steps: [closes('CONNECT {"account":"A"}\r\n')] },
  { name: "connect: new_account is refused", steps: [closes('CONNECT {"new_account":true}\r\n')] },
  {
    name: "connect: second CONNECT asks no_responders without headers",
    steps: [ping(QUIET_H), closes('CONNECT {"no_responders":true}\r\n')],
  },
  { name: "connect: protocol 2 is refused", steps: [closes('CONNECT {"protocol":2}\r\n')] },
  { name: "connect: protocol -1 is refused", steps: [closes('CONNECT {"protocol":-1}\r\n')] },
  {
    name: "connect: no_responders without headers is refused",
    steps: [closes('CONNECT {"no_responders":true}\r\n')],
  },
  {
    name: "no connect: operations before CONNECT on an open server",
    steps: [ping("SUB foo 1\r\n" + pub("foo", "hi") + "UNSUB 1\r\n")],
  },
  {
    name: "connect: pedantic default flags a wildcard publish",
    steps: [ping(CONNECT + "SUB foo.* 1\r\n" + pub("foo.*", "x"))],
  },

  // -- PING / PONG and odd framing ---------------------------------------------------------------
  { name: "ping: plain", steps: [ping("")] },
  { name: "ping: trailing junk", steps: [ping("PING junk here\r\n")] },
  { name: "ping: lowercase", steps: [ping("ping\r\n")] },
  { name: "ping: mixed case", steps: [ping("PiNg\r\n")] },
  { name: "ping: bare LF", steps: [ping("PING\n")] },
  { name: "ping: tab before CRLF", steps: [ping("PING\t\r\n")] },
  { name: "ping: CR then more before LF", steps: [ping("PING\rjunk\r\n")] },
  { name: "pong: from the client", steps: [ping("PONG\r\n")] },
  { name: "pong: with junk", steps: [ping("PONG x y\r\n")] },
  { name: "ops: many in one write", steps: [ping(QUIET + "PING\r\nPING\r\nPONG\r\nPING\r\n")] },
  { name: "ops: empty line", steps: [closes("\r\n")] },
  { name: "ops: leading blank", steps: [closes(" PING\r\n")] },
  { name: "ops: unknown op", steps: [closes("FOO bar\r\n")] },
  { name: "ops: unknown op after valid ones", steps: [closes(QUIET + "SUB foo 1\r\nFOO\r\n")] },
  { name: "ops: truncated op name", steps: [closes("PIN\r\n")] },
  { name: "ops: PINGX", steps: [ping("PINGX\r\n")] },
  { name: "ops: client sends +OK", steps: [ping(QUIET + "+OK\r\n")] },
  { name: "ops: client sends +OK with junk", steps: [ping(QUIET + "+OK what\r\n")] },
  { name: "ops: client sends +O", steps: [closes(QUIET + "+O\r\n")] },
  { name: "ops: client sends -ERR", steps: [closes(QUIET + "-ERR 'oops'\r\n")] },
  { name: "ops: client sends -ERR without blank", steps: [closes(QUIET + "-ERR\r\n")] },
  { name: "ops: client sends MSG", steps: [closes(QUIET + "MSG foo 1 2\r\nhi\r\n")] },
  {
    name: "ops: client sends HMSG",
    steps: [closes(QUIET_H + "HMSG foo 1 12 12\r\nNATS/1.0\r\n\r\n\r\n")],
  },
  { name: "ops: client sends INFO {}", steps: [ping(QUIET + "INFO {}\r\n")] },
  { name: "ops: client sends INFO with bad JSON", steps: [closes(QUIET + "INFO {x\r\n")] },
  { name: "ops: client sends RS+", steps: [closes(QUIET + "RS+ $G foo\r\n")] },
  { name: "ops: client sends RMSG", steps: [closes(QUIET + "RMSG $G foo 2\r\nhi\r\n")] },
  { name: "ops: client sends LS+", steps: [closes(QUIET + "LS+ $G foo\r\n")] },
  { name: "ops: client sends A+", steps: [closes(QUIET + "A+ foo\r\n")] },
  { name: "ops: NUL byte", steps: [closes("\0PING\r\n")] },

  // -- PUB ---------------------------------------------------------------------------------------
  {
    name: "pub: delivered to a subscription (verbose)",
    steps: [ping(CONNECT + "SUB foo 1\r\n" + pub("foo", "hello"))],
  },
  {
    name: "pub: delivered to a subscription (quiet)",
    steps: [ping(QUIET + "SUB foo 1\r\n" + pub("foo", "hello"))],
  },
  {
    name: "pub: with reply subject",
    steps: [ping(QUIET + "SUB foo 1\r\n" + pub("foo", "hello", "bar.baz"))],
  },
  { name: "pub: empty payload", steps: [ping(QUIET + "SUB foo 1\r\nPUB foo 0\r\n\r\n")] },
  { name: "pub: no subscribers (verbose)", steps: [ping(CONNECT + pub("nobody", "x"))] },
  {
    name: "pub: payload containing CRLF",
    steps: [ping(QUIET + "SUB foo 1\r\nPUB foo 8\r\na\r\nb\r\nc\r\n\r\n")],
  },
  {
    name: "pub: payload that looks like protocol",
    steps: [ping(QUIET + "SUB foo 1\r\nPUB foo 16\r\nPING\r\nSUB bar 2\r\n\r\n")],
  },
  {
    name: "pub: split across writes",
    steps: [
      ping(QUIET + "SUB foo 1\r\n"),
      partial("PU"),
      partial("B fo"),
      partial("o 5\r"),
      partial("\nhel"),
      partial("lo\r"),
      ping("\n"),
    ],
  },
  { name: "pub: one argument", steps: [closes(QUIET + "PUB foo\r\n")] },
  { name: "pub: no arguments", steps: [closes(QUIET + "PUB\r\n")] },
  { name: "pub: blank only", steps: [closes(QUIET + "PUB \r\n")] },
  { name: "pub: four arguments", steps: [closes(QUIET + "PUB foo bar baz 2\r\nhi\r\n")] },
  { name: "pub: no blank after PUB", steps: [closes(QUIET + "PUBfoo 2\r\nhi\r\n")] },
  { name: "pub: non-numeric size", steps: [closes(QUIET + "PUB foo abc\r\n")] },
  { name: "pub: size with sign", steps: [closes(QUIET + "PUB foo +2\r\nhi\r\n")] },
  { name: "pub: negative size", steps: [closes(QUIET + "PUB foo -1\r\n")] },
  { name: "pub: size with trailing letter", steps: [closes(QUIET + "PUB foo 2x\r\nhi\r\n")] },
  { name: "pub: nine-digit size", steps: [closes(QUIET + "PUB foo 999999999\r\n")] },
  { name: "pub: ten-digit size", steps: [closes(QUIET + "PUB foo 1234567890\r\n")] },
  { name: "pub: size 2000000 over max payload", steps: [closes(QUIET + "PUB foo 2000000\r\n")] },
  {
    name: "pub: payload longer than size",
    steps: [closes(QUIET + "SUB foo 1\r\nPUB foo 3\r\nhello\r\n")],
  },
  {
    name: "pub: payload shorter than size",
    steps: [
      ping(QUIET + "SUB foo 1\r\n"),
      partial("PUB foo 10\r\nhi\r\n"),
      closes("PING\r\nPING\r\n"),
    ],
  },
  {
    name: "pub: payload ends with bare LF",
    steps: [closes(QUIET + "SUB foo 1\r\nPUB foo 2\r\nhi\nPING\r\n")],
  },
  {
    name: "pub: payload ends with CR and junk",
    steps: [closes(QUIET + "SUB foo 1\r\nPUB foo 2\r\nhi\rxPING\r\n")],
  },
  {
    name: "pub: bare LF control line",
    steps: [ping(QUIET + "SUB foo 1\nPUB foo 2\nhi\r\n")],
  },
  {
    name: "pub: tabs and repeated blanks",
    steps: [ping(QUIET + "SUB\tfoo\t1\r\nPUB \t foo  \t 2 \t\r\nhi\r\n")],
  },
  {
    name: "pub: lowercase",
    steps: [ping("connect {}\r\nsub foo 1\r\npub foo 2\r\nhi\r\nunsub 1\r\n")],
  },
  {
    name: "pub: invalid subject, pedantic",
    steps: [ping(CONNECT + "SUB > 1\r\n" + pub("foo..bar", "x"))],
  },
  {
    name: "pub: invalid subject, not pedantic",
    steps: [ping('CONNECT {"pedantic":false}\r\nSUB > 1\r\n' + pub("foo..bar", "x"))],
  },
  {
    name: "pub: wildcard subject, pedantic",
    steps: [
      ping(CONNECT + "SUB foo.* 1\r\nSUB foo.> 2\r\n" + pub("foo.*", "x") + pub("foo.>", "y")),
    ],
  },
  {
    name: "pub: wildcard subject, not pedantic",
    steps: [ping(QUIET + "SUB foo.* 1\r\n" + pub("foo.*", "x") + pub("foo.>", "y"))],
  },
  {
    name: "pub: to another connection",
    steps: [ping(QUIET + "SUB foo 1\r\n", 0), ping(QUIET + pub("foo", "hi"), 1)],
  },

  {
    name: "pub: invalid reply subject, pedantic",
    steps: [ping(CONNECT + "SUB foo 1\r\n" + pub("foo", "x", "bar..baz"))],
  },
  {
    name: "pub: wildcard reply subject",
    steps: [ping(CONNECT + "SUB foo 1\r\n" + pub("foo", "x", "bar.*"))],
  },
  {
    name: "pub: 200 pipelined messages keep their order",
    steps: [
      ping(
        QUIET +
          "SUB foo 1\r\n" +
          Array.from({ length: 200 }, (_, i) => pub("foo", String(i))).join(""),
      ),
    ],
  },
  {
    name: "pub: 300 KB payload in pieces",
    steps: [
      ping(QUIET + "SUB foo 1\r\n"),
      partial(`PUB foo ${300_000}\r\n` + "a".repeat(100_000)),
      partial("b".repeat(100_000)),
      ping("c".repeat(100_000) + "\r\n"),
    ],
  },
  {
    name: "pub: credentials in CONNECT on an open server",
    steps: [ping('CONNECT {"user":"x","pass":"y","auth_token":"z"}\r\n')],
  },

  // -- HPUB --------------------------------------------------------------------------------------
  {
    name: "hpub: delivered as HMSG",
    steps: [ping(QUIET_H + "SUB foo 1\r\n" + hpub("foo", "hello"))],
  },
  {
    name: "hpub: verbose",
    steps: [ping('CONNECT {"headers":true}\r\nSUB foo 1\r\n' + hpub("foo", "hello"))],
  },
  {
    name: "hpub: with reply subject",
    steps: [ping(QUIET_H + "SUB foo 1\r\n" + hpub("foo", "hello", "rep"))],
  },
  {
    name: "hpub: header size equals total",
    steps: [ping(QUIET_H + "SUB foo 1\r\n" + hpub("foo", ""))],
  },
  {
    name: "hpub: zero header size",
    steps: [ping(QUIET_H + "SUB foo 1\r\nHPUB foo 0 2\r\nhi\r\n")],
  },
  { name: "hpub: without headers enabled", steps: [closes(QUIET + hpub("foo", "hi"))] },
  {
    name: "hpub: without CONNECT",
    steps: [closes(hpub("foo", "hi"))],
  },
  { name: "hpub: header size over total", steps: [closes(QUIET_H + "HPUB foo 20 10\r\n")] },
  { name: "hpub: two arguments", steps: [closes(QUIET_H + "HPUB foo 5\r\nhello\r\n")] },
  { name: "hpub: five arguments", steps: [closes(QUIET_H + "HPUB foo a b 1 2\r\n")] },
  { name: "hpub: non-numeric header size", steps: [closes(QUIET_H + "HPUB foo x 2\r\nhi\r\n")] },
  { name: "hpub: negative total", steps: [closes(QUIET_H + "HPUB foo 1 -2\r\n")] },
  {
    name: "hpub: stripped for a client without headers",
    steps: [
      ping(QUIET + "SUB foo 1\r\n", 0),
      ping(QUIET_H + "SUB foo 2\r\n" + hpub("foo", "body"), 1),
    ],
  },
  {
    name: "hpub: stripped, header only",
    steps: [ping(QUIET + "SUB foo 1\r\n", 0), ping(QUIET_H + hpub("foo", ""), 1)],
  },
  {
    name: "hpub: stripped, with reply subject",
    steps: [ping(QUIET + "SUB foo 1\r\n", 0), ping(QUIET_H + hpub("foo", "body", "rep"), 1)],
  },
  {
    name: "pub: plain message to a headers client stays MSG",
    steps: [ping(QUIET_H + "SUB foo 1\r\n", 0), ping(QUIET + pub("foo", "x"), 1)],
  },

  // -- SUB ---------------------------------------------------------------------------------------
  { name: "sub: verbose", steps: [ping(CONNECT + "SUB foo 1\r\n")] },
  { name: "sub: one argument", steps: [closes(QUIET + "SUB foo\r\n")] },
  { name: "sub: four arguments", steps: [closes(QUIET + "SUB foo q 1 x\r\n")] },
  { name: "sub: no arguments", steps: [closes(QUIET + "SUB\r\n")] },
  { name: "sub: no blank after SUB", steps: [closes(QUIET + "SUBfoo 1\r\n")] },
  {
    name: "sub: wildcard *",
    steps: [
      ping(
        QUIET + "SUB foo.* 1\r\n" + pub("foo.bar", "1") + pub("foo.bar.baz", "2") + pub("foo", "3"),
      ),
    ],
  },
  {
    name: "sub: wildcard >",
    steps: [
      ping(
        QUIET + "SUB foo.> 1\r\n" + pub("foo.bar", "1") + pub("foo.bar.baz", "2") + pub("foo", "3"),
      ),
    ],
  },
  { name: "sub: > alone", steps: [ping(QUIET + "SUB > 1\r\n" + pub("a.b.c", "1"))] },
  { name: "sub: * in the middle", steps: [ping(QUIET + "SUB a.*.c 1\r\n" + pub("a.b.c", "1"))] },
  {
    name: "sub: partial-token wildcard is literal",
    steps: [ping(QUIET + "SUB foo.*x 1\r\n" + pub("foo.bx", "1") + pub("foo.*x", "2"))],
  },
  { name: "sub: invalid subject (empty token)", steps: [ping(CONNECT + "SUB foo..bar 1\r\n")] },
  { name: "sub: invalid subject (leading dot)", steps: [ping(CONNECT + "SUB .foo 1\r\n")] },
  { name: "sub: invalid subject (trailing dot)", steps: [ping(CONNECT + "SUB foo. 1\r\n")] },
  { name: "sub: invalid subject (> not last)", steps: [ping(CONNECT + "SUB foo.>.bar 1\r\n")] },
  {
    name: "sub: invalid subject then valid use of the sid",
    steps: [ping(QUIET + "SUB foo..bar 1\r\nSUB foo 1\r\n" + pub("foo", "x"))],
  },
  {
    name: "sub: queue group, one member gets it",
    anySid: ["1", "2"],
    steps: [ping(QUIET + "SUB foo q 1\r\nSUB foo q 2\r\n" + pub("foo", "x"))],
  },
  {
    name: "sub: two queue groups and a plain sub",
    steps: [ping(QUIET + "SUB foo q1 1\r\nSUB foo q2 2\r\nSUB foo 3\r\n" + pub("foo", "x"))],
  },
  {
    // Which connection of a group gets a message is random; leave one member on each side.
    name: "sub: queue group across connections",
    steps: [
      ping(QUIET + "SUB foo q 1\r\n", 0),
      ping(QUIET + "SUB foo q 2\r\nSUB foo p 3\r\nUNSUB 2\r\n", 1),
      ping(QUIET + pub("foo", "x") + pub("foo", "y"), 2),
    ],
  },
  {
    name: "sub: invalid subject with an existing sid",
    steps: [ping(CONNECT + "SUB foo 1\r\nSUB foo..bar 1\r\n" + pub("foo", "x"))],
  },
  {
    name: "sub: CR inside the control line",
    steps: [ping(QUIET + "SUB foo 1\rx\n" + pub("foo", "x"))],
  },
  {
    name: "sub: subject with a form feed",
    knownDifference: {
      why: WHITESPACE_IN_SUBJECT,
      line: 2,
      natsServer: "+OK",
      shoal: "-ERR 'Invalid Subject'",
    },
    steps: [ping(CONNECT + "SUB foo\fbar 1\r\n")],
  },
  {
    name: "unsub: CR inside the line",
    steps: [ping(QUIET + "SUB foo 1\r\nUNSUB 1\rx\n" + pub("foo", "x"))],
  },
  {
    name: "unsub: CR makes a third argument",
    steps: [closes(QUIET + "SUB foo 1\r\nUNSUB 1 1\rxyz\n")],
  },
  { name: "pub: CR inside the line", steps: [closes(QUIET + "SUB foo 1\r\nPUB foo 1\rx\nA\r\n")] },
  {
    name: "pub: CR inside the subject is not a blank",
    steps: [ping(QUIET + "SUB foo 1\r\nSUB > 2\r\n" + pub("foo\rbar", "x"))],
  },
  {
    name: "connect: CR inside the line",
    steps: [ping('CONNECT {"verbose":false}\rx\n')],
  },
  {
    name: "sub: queue with a form feed",
    knownDifference: {
      why: WHITESPACE_IN_SUBJECT,
      line: 2,
      natsServer: "+OK",
      shoal: "-ERR 'Invalid Subject'",
    },
    steps: [ping(CONNECT + "SUB foo q\f 1\r\n")],
  },
  {
    name: "sub: CR separates SUB arguments",
    steps: [ping(CONNECT + "SUB foo\rbar 1\r\n" + pub("foo", "x"))],
  },
  { name: "sub: queue group verbose", steps: [ping(CONNECT + "SUB foo q 1\r\n")] },
  {
    name: "sub: queue name with dots and wildcards",
    steps: [ping(CONNECT + "SUB foo q.* 1\r\nSUB bar > 2\r\n" + pub("foo", "x") + pub("bar", "y"))],
  },
  {
    name: "sub: several matching subscriptions (multiset)",
    steps: [
      ping(
        QUIET +
          "SUB foo 1\r\nSUB foo.> 2\r\nSUB > 3\r\nSUB foo.* 4\r\n" +
          pub("foo.bar", "x") +
          pub("foo.bar", "y"),
      ),
    ],
  },
  {
    name: "sub: duplicate sid keeps the first subscription",
    steps: [ping(CONNECT + "SUB foo 1\r\nSUB bar 1\r\n" + pub("foo", "x") + pub("bar", "y"))],
  },
  {
    name: "sub: same subject twice, two sids",
    steps: [ping(QUIET + "SUB foo 1\r\nSUB foo 2\r\n" + pub("foo", "x"))],
  },
  {
    name: "sub: long sid",
    steps: [ping(QUIET + "SUB foo abcdefghijklmnop\r\n" + pub("foo", "x"))],
  },

  // -- UNSUB -------------------------------------------------------------------------------------
  {
    name: "unsub: stops delivery",
    steps: [ping(CONNECT + "SUB foo 1\r\n" + pub("foo", "a") + "UNSUB 1\r\n" + pub("foo", "b"))],
  },
  {
    name: "unsub: auto-unsubscribe, verbose",
    steps: [ping(CONNECT + "SUB foo 1\r\nUNSUB 1 1\r\n" + pub("foo", "a") + pub("foo", "b"))],
  },
  {
    name: "unsub: sid reusable after auto-unsubscribe",
    steps: [
      ping(
        QUIET + "SUB foo 1\r\nUNSUB 1 1\r\n" + pub("foo", "a") + "SUB bar 1\r\n" + pub("bar", "b"),
      ),
    ],
  },
  { name: "unsub: unknown sid (verbose)", steps: [ping(CONNECT + "UNSUB 99\r\n")] },
  {
    name: "unsub: auto-unsubscribe after 2",
    steps: [
      ping(
        QUIET + "SUB foo 1\r\nUNSUB 1 2\r\n" + pub("foo", "a") + pub("foo", "b") + pub("foo", "c"),
      ),
    ],
  },
  {
    name: "unsub: max already reached",
    steps: [
      ping(
        QUIET +
          "SUB foo 1\r\n" +
          pub("foo", "a") +
          pub("foo", "b") +
          "UNSUB 1 1\r\n" +
          pub("foo", "c"),
      ),
    ],
  },
  {
    name: "unsub: max 0 unsubscribes now",
    steps: [ping(QUIET + "SUB foo 1\r\nUNSUB 1 0\r\n" + pub("foo", "a"))],
  },
  {
    name: "unsub: non-numeric max unsubscribes now",
    steps: [ping(CONNECT + "SUB foo 1\r\nUNSUB 1 x\r\n" + pub("foo", "a"))],
  },
  {
    name: "unsub: max raised after deliveries",
    steps: [
      ping(
        QUIET +
          "SUB foo 1\r\nUNSUB 1 1\r\nUNSUB 1 3\r\n" +
          pub("foo", "a") +
          pub("foo", "b") +
          pub("foo", "c") +
          pub("foo", "d"),
      ),
    ],
  },
  {
    name: "unsub: auto-unsubscribe of a queue member",
    steps: [ping(QUIET + "SUB foo q 1\r\nUNSUB 1 1\r\n" + pub("foo", "a") + pub("foo", "b"))],
  },
  { name: "unsub: no arguments", steps: [closes(QUIET + "UNSUB\r\n")] },
  { name: "unsub: blank only", steps: [closes(QUIET + "UNSUB \r\n")] },
  { name: "unsub: three arguments", steps: [closes(QUIET + "UNSUB 1 2 3\r\n")] },
  {
    name: "unsub: then resubscribe with the same sid",
    steps: [
      ping(QUIET + "SUB foo 1\r\nUNSUB 1\r\nSUB bar 1\r\n" + pub("foo", "a") + pub("bar", "b")),
    ],
  },

  // -- echo and no responders ---------------------------------------------------------------------
  {
    name: "echo: false skips own messages",
    steps: [
      ping('CONNECT {"verbose":false,"echo":false}\r\nSUB foo 1\r\n' + pub("foo", "own"), 0),
      ping(QUIET + pub("foo", "other"), 1),
    ],
  },
  {
    name: "echo: false with a queue group",
    steps: [ping('CONNECT {"verbose":false,"echo":false}\r\nSUB foo q 1\r\n' + pub("foo", "own"))],
  },
  {
    name: "echo: true delivers own messages",
    steps: [ping('CONNECT {"verbose":false,"echo":true}\r\nSUB foo 1\r\n' + pub("foo", "own"))],
  },
  {
    name: "no_responders: 503 when nobody listens",
    steps: [
      ping(
        'CONNECT {"verbose":false,"headers":true,"no_responders":true}\r\nSUB _INBOX.x 1\r\n' +
          pub("svc", "req", "_INBOX.x"),
      ),
    ],
  },
  {
    name: "no_responders: 503 to a wildcard reply subscription",
    steps: [
      ping(
        'CONNECT {"verbose":false,"headers":true,"no_responders":true}\r\nSUB _INBOX.* 1\r\n' +
          pub("svc", "req", "_INBOX.x"),
      ),
    ],
  },
  {
    name: "no_responders: nothing without a reply",
    steps: [
      ping(
        'CONNECT {"verbose":false,"headers":true,"no_responders":true}\r\nSUB _INBOX.x 1\r\n' +
          pub("svc", "req"),
      ),
    ],
  },
  {
    name: "no_responders: nothing when someone listens",
    steps: [
      ping(QUIET + "SUB svc 1\r\n", 1),
      ping(
        'CONNECT {"verbose":false,"headers":true,"no_responders":true}\r\nSUB _INBOX.x 1\r\n' +
          pub("svc", "req", "_INBOX.x"),
        0,
      ),
    ],
  },
  {
    name: "no_responders: off by default",
    steps: [ping(QUIET_H + "SUB _INBOX.x 1\r\n" + pub("svc", "req", "_INBOX.x"))],
  },
  {
    name: "no_responders: own subscription with echo off",
    steps: [
      ping(
        'CONNECT {"verbose":false,"headers":true,"no_responders":true,"echo":false}\r\n' +
          "SUB _INBOX.x 1\r\nSUB svc 2\r\n" +
          pub("svc", "req", "_INBOX.x"),
      ),
    ],
  },
  {
    name: "no_responders: HPUB request",
    steps: [
      ping(
        'CONNECT {"verbose":false,"headers":true,"no_responders":true}\r\nSUB _INBOX.x 1\r\n' +
          hpub("svc", "req", "_INBOX.x"),
      ),
    ],
  },

  // -- limits: max_payload 64, max_control_line 64, max_subscriptions 3 ---------------------------
  {
    name: "limits: INFO advertises max_payload",
    server: "limits",
    steps: [ping(QUIET)],
  },
  {
    name: "limits: payload at max_payload",
    server: "limits",
    steps: [ping(QUIET + "SUB foo 1\r\n" + pub("foo", "x".repeat(64)))],
  },
  {
    name: "limits: max payload exceeded",
    server: "limits",
    steps: [closes(QUIET + "SUB foo 1\r\n" + pub("foo", "x".repeat(65)))],
  },
  {
    name: "limits: max payload exceeded by HPUB",
    server: "limits",
    steps: [closes(QUIET_H + hpub("foo", "x".repeat(60)))],
  },
  {
    name: "limits: max payload exceeded, verbose",
    server: "limits",
    steps: [closes(CONNECT + "PUB foo 100\r\n")],
  },
  {
    name: "limits: control line at the limit",
    server: "limits",
    steps: [ping(QUIET + `SUB ${"a".repeat(62)} 1\r\n`)],
  },
  {
    name: "limits: control line one over the limit",
    server: "limits",
    steps: [closes(QUIET + `SUB ${"a".repeat(63)} 1\r\n`)],
  },
  {
    name: "limits: control line too long (PUB)",
    server: "limits",
    steps: [closes(QUIET + `PUB ${"a".repeat(100)} 1\r\nx\r\n`)],
  },
  {
    name: "limits: control line too long without CRLF",
    server: "limits",
    steps: [ping(QUIET), closes(`SUB ${"a".repeat(100)}`)],
  },
  {
    name: "limits: control line too long across writes",
    server: "limits",
    steps: [ping(QUIET), partial(`SUB ${"a".repeat(40)}`), closes(`${"b".repeat(40)} 1\r\n`)],
  },
  {
    name: "limits: long CONNECT",
    server: "limits",
    steps: [ping(`CONNECT {"verbose":false,"name":"${"n".repeat(100)}"}\r\n`)],
  },
  {
    name: "limits: long PING line",
    server: "limits",
    steps: [ping(QUIET + `PING ${"j".repeat(100)}\r\n`)],
  },
  {
    name: "limits: max_subscriptions exceeded",
    server: "limits",
    steps: [
      ping(
        CONNECT + "SUB a 1\r\nSUB b 2\r\nSUB c 3\r\nSUB d 4\r\n" + pub("d", "x") + pub("c", "y"),
      ),
    ],
  },
  {
    name: "limits: max_subscriptions, duplicate sid at the limit",
    server: "limits",
    steps: [ping(CONNECT + "SUB a 1\r\nSUB b 2\r\nSUB c 3\r\nSUB c 3\r\n")],
  },
  {
    name: "limits: max_subscriptions, invalid subject at the limit",
    server: "limits",
    steps: [ping(CONNECT + "SUB a 1\r\nSUB b 2\r\nSUB c 3\r\nSUB d..e 4\r\n")],
  },
  {
    name: "limits: max_subscriptions counts queue subscriptions",
    server: "limits",
    steps: [ping(CONNECT + "SUB a q 1\r\nSUB a q 2\r\nSUB a r 3\r\nSUB a q 4\r\n")],
  },
  {
    name: "limits: max_subscriptions frees a slot after UNSUB",
    server: "limits",
    steps: [
      ping(QUIET + "SUB a 1\r\nSUB b 2\r\nSUB c 3\r\nUNSUB 2\r\nSUB d 4\r\n" + pub("d", "x")),
    ],
  },
  {
    name: "limits: max_connections exceeded",
    server: "maxconn",
    steps: [ping(CONNECT, 0), closes("", 1), ping(pub("foo", "x"), 0)],
  },

  // -- auth: --user a --pass b ----------------------------------------------------------------
  { name: "auth: PING before CONNECT", server: "userpass", steps: [closes("PING\r\n")] },
  { name: "auth: SUB before CONNECT", server: "userpass", steps: [closes("SUB foo 1\r\n")] },
  { name: "auth: PUB before CONNECT", server: "userpass", steps: [closes(pub("foo", "x"))] },
  { name: "auth: unknown op before CONNECT", server: "userpass", steps: [closes("FOO\r\n")] },
  { name: "auth: bad op starting with C", server: "userpass", steps: [closes("CONNEX {}\r\n")] },
  { name: "auth: empty line before CONNECT", server: "userpass", steps: [closes("\r\n")] },
  { name: "auth: INFO before CONNECT", server: "userpass", steps: [closes("INFO {}\r\n")] },
  {
    name: "auth: CONNECT and SUB in one write",
    server: "userpass",
    steps: [
      ping('CONNECT {"verbose":false,"user":"a","pass":"b"}\r\nSUB foo 1\r\n' + pub("foo", "x")),
    ],
  },
  {
    name: "auth: lowercase connect",
    server: "userpass",
    steps: [ping('connect {"user":"a","pass":"b"}\r\n')],
  },
  { name: "auth: no credentials", server: "userpass", steps: [closes(CONNECT)] },
  {
    name: "auth: wrong password",
    server: "userpass",
    steps: [closes('CONNECT {"user":"a","pass":"x"}\r\n')],
  },
  {
    name: "auth: wrong user",
    server: "userpass",
    steps: [closes('CONNECT {"user":"z","pass":"b"}\r\n')],
  },
  {
    name: "auth: right password",
    server: "userpass",
    steps: [ping('CONNECT {"user":"a","pass":"b"}\r\n' + "SUB foo 1\r\n" + pub("foo", "x"))],
  },
  {
    name: "auth: right password, quiet",
    server: "userpass",
    steps: [ping('CONNECT {"verbose":false,"user":"a","pass":"b"}\r\n')],
  },
  {
    name: "auth: token given instead of user",
    server: "userpass",
    steps: [closes('CONNECT {"auth_token":"b"}\r\n')],
  },
  {
    name: "auth: invalid JSON CONNECT",
    server: "userpass",
    steps: [closes("CONNECT {user\r\n")],
  },
  {
    name: "auth: second CONNECT with wrong password",
    server: "userpass",
    steps: [
      ping('CONNECT {"verbose":false,"user":"a","pass":"b"}\r\n'),
      closes('CONNECT {"user":"a","pass":"x"}\r\n'),
    ],
  },
  {
    name: "token: right token",
    server: "token",
    steps: [ping('CONNECT {"auth_token":"tok"}\r\n')],
  },
  {
    name: "token: wrong token",
    server: "token",
    steps: [closes('CONNECT {"auth_token":"x"}\r\n')],
  },
  { name: "token: no token", server: "token", steps: [closes('CONNECT {"verbose":false}\r\n')] },
  {
    name: "token: user and password instead",
    server: "token",
    steps: [closes('CONNECT {"user":"tok","pass":"tok"}\r\n')],
  },
  { name: "token: PING before CONNECT", server: "token", steps: [closes("PING\r\n")] },

  // -- users with permissions (config) --------------------------------------------------------
  { name: "perms: auth timeout without CONNECT", server: "perms", steps: [closes("")] },
  {
    name: "perms: user without permissions",
    server: "perms",
    steps: [
      ping('CONNECT {"user":"bob","pass":"pw"}\r\nSUB any.thing 1\r\n' + pub("any.thing", "x")),
    ],
  },
  {
    name: "perms: unknown user",
    server: "perms",
    steps: [closes('CONNECT {"user":"eve","pass":"pw"}\r\n')],
  },
  {
    name: "perms: publish allowed",
    server: "perms",
    steps: [ping(ALICE + "SUB pub.a 1\r\n" + pub("pub.a", "x"))],
  },
  {
    name: "perms: publish denied (not allowed)",
    server: "perms",
    steps: [ping(ALICE + pub("other", "x") + pub("pub.a", "y"))],
  },
  {
    name: "perms: publish denied (deny list)",
    server: "perms",
    steps: [ping(ALICE + "SUB pub.> 1\r\n" + pub("pub.secret", "x"))],
  },
  {
    name: "perms: publish denied, quiet",
    server: "perms",
    steps: [ping(ALICE_QUIET + pub("other", "x"))],
  },
  {
    name: "perms: subscribe allowed",
    server: "perms",
    steps: [ping(ALICE + "SUB sub.a 1\r\nSUB sub.* 2\r\nSUB pub.> 3\r\n")],
  },
  {
    name: "perms: subscribe denied",
    server: "perms",
    steps: [ping(ALICE + "SUB other 1\r\nSUB sub.secret 2\r\n")],
  },
  {
    name: "perms: subscribe denied with queue",
    server: "perms",
    steps: [ping(ALICE + "SUB other q 1\r\nSUB sub.secret q 2\r\n")],
  },
  {
    name: "perms: subscribe allowed with queue",
    server: "perms",
    steps: [ping(ALICE + "SUB sub.a q 1\r\n")],
  },
  {
    name: "perms: wildcard subscription wider than allowed",
    server: "perms",
    steps: [ping(ALICE + "SUB > 1\r\nSUB sub.> 2\r\n")],
  },
  {
    name: "perms: wildcard subscription does not get denied subjects",
    server: "perms",
    steps: [
      ping(ALICE_QUIET + "SUB sub.* 1\r\n", 0),
      ping(BOB_QUIET + pub("sub.secret", "no") + pub("sub.ok", "yes"), 1),
    ],
  },
  {
    name: "perms: request-reply within permissions",
    server: "perms",
    steps: [
      ping(ALICE_QUIET + "SUB _INBOX.a 1\r\n", 0),
      ping(BOB_QUIET + "SUB pub.svc 1\r\n", 1),
      ping(pub("pub.svc", "req", "_INBOX.a"), 0),
      ping(pub("_INBOX.a", "resp"), 1),
    ],
  },
  {
    name: "perms: denied publish does not reach subscribers",
    server: "perms",
    steps: [ping(BOB_QUIET + "SUB other 1\r\n", 1), ping(ALICE_QUIET + pub("other", "x"), 0)],
  },
  {
    name: "perms: invalid subject in an allowed space",
    server: "perms",
    steps: [ping(ALICE + "SUB sub..x 1\r\n")],
  },
  {
    name: "perms: operations before CONNECT",
    server: "perms",
    steps: [closes("SUB sub.a 1\r\n")],
  },
];

// ---- server configurations ------------------------------------------------------------------

const PERMS_CONF = `
authorization {
  timeout: 0.5
  users = [
    {
      user: alice
      password: pw
      permissions: {
        publish: { allow: ["pub.>", "_INBOX.>"], deny: ["pub.secret"] }
        subscribe: { allow: ["sub.>", "pub.>", "_INBOX.>"], deny: ["sub.secret"] }
      }
    }
    { user: bob, password: pw }
  ]
}
`;

const LIMITS_CONF = `
max_payload: 64
max_control_line: 64
max_subscriptions: 3
`;

const MAXCONN_CONF = `
max_connections: 1
`;

function serverArgs(kind: ServerKind, dir: string): string[] {
  const conf = (name: string, text: string): string[] => {
    const path = join(dir, `${name}.conf`);
    writeFileSync(path, text);
    return ["-c", path, "-a", "127.0.0.1", "-p", "-1"];
  };
  switch (kind) {
    case "plain":
      return [];
    case "userpass":
      return ["--user", "a", "--pass", "b"];
    case "token":
      return ["--auth", "tok"];
    case "perms":
      return conf("perms", PERMS_CONF);
    case "limits":
      return conf("limits", LIMITS_CONF);
    case "maxconn":
      return conf("maxconn", MAXCONN_CONF);
  }
}

// ---- playing a session ----------------------------------------------------------------------

const WAIT_MS = 2000;

/** Resolves true once cond() holds, false when the connection closed first or ms passed. */
function until(c: RawConn, cond: () => boolean, ms = WAIT_MS): Promise<boolean> {
  if (cond()) return Promise.resolve(true);
  if (c.closed) return Promise.resolve(false);
  return new Promise((resolve) => {
    const check = () => {
      if (cond()) done(true);
      else if (c.closed) done(false);
    };
    const timer = setTimeout(() => done(false), ms);
    const done = (v: boolean) => {
      clearTimeout(timer);
      c.socket.off("data", check);
      c.socket.off("close", check);
      resolve(v);
    };
    c.socket.on("data", check);
    c.socket.on("close", check);
  });
}

function countPongs(data: string): number {
  return data.match(/(?<=^|\n)PONG\r\n/g)?.length ?? 0;
}

/** Sends PING and waits for its PONG or the close; false (and a note) if neither came. */
async function barrier(c: RawConn, send: string): Promise<boolean> {
  const n = countPongs(c.data);
  c.send(send + "PING\r\n");
  return until(c, () => countPongs(c.data) > n || c.closed);
}

interface ConnTranscript {
  lines: string[];
  closed: boolean;
  notes: string[];
}

async function play(port: number, session: Session): Promise<ConnTranscript[]> {
  const conns: RawConn[] = [];
  const notes: string[][] = [];
  const open = async (i: number): Promise<RawConn> => {
    let c = conns[i];
    if (c === undefined) {
      c = await RawConn.connect(port);
      conns[i] = c;
      notes[i] = [];
      const conn = c;
      if (!(await until(conn, () => conn.data.includes("\r\n")))) notes[i]!.push("no INFO");
    }
    return c;
  };
  try {
    for (const [k, step] of session.steps.entries()) {
      const c = await open(step.conn);
      if (c.closed) {
        notes[step.conn]!.push(`step ${k}: already closed`);
        continue;
      }
      if (step.wait === "pong") {
        if (!(await barrier(c, step.send))) notes[step.conn]!.push(`step ${k}: no PONG`);
      } else if (step.wait === "close") {
        if (step.send !== "") c.send(step.send);
        if (!(await until(c, () => c.closed))) notes[step.conn]!.push(`step ${k}: not closed`);
      } else {
        c.send(step.send);
      }
    }
    // Let deliveries to the other connections land before reading their transcripts.
    for (const [i, c] of conns.entries()) {
      if (!c.closed && !(await barrier(c, ""))) notes[i]!.push("final: no PONG");
    }
    return conns.map((c, i) => ({
      lines: normalise(c.data, session),
      closed: c.closed,
      notes: notes[i]!,
    }));
  } finally {
    // Hang up gracefully and wait for the server's side to close too, so the next session does
    // not race with subscriptions of this one (a queue member or a responder still registered).
    await Promise.all(
      conns.map(async (c) => {
        c.socket.end();
        await until(c, () => c.closed, 1000);
        c.close();
      }),
    );
  }
}

// ---- normalising transcripts ----------------------------------------------------------------

/** INFO fields that differ between runs or implementations and say nothing about the protocol. */
const VOLATILE_INFO = new Set([
  "server_id",
  "server_name",
  "version",
  "go",
  "git_commit",
  "host",
  "port",
  "client_id",
  "client_ip",
  "nonce",
  "connect_urls",
  "ws_connect_urls",
  "xkey",
]);

interface Item {
  text: string;
  /** For MSG/HMSG: the message without its sid, to group one message's deliveries. */
  key?: string;
}

function normalise(data: string, session: Session): string[] {
  const items: Item[] = [];
  let i = 0;
  while (i < data.length) {
    const eol = data.indexOf("\r\n", i);
    if (eol < 0) {
      items.push({ text: `<partial line ${JSON.stringify(data.slice(i))}>` });
      break;
    }
    const line = data.slice(i, eol);
    i = eol + 2;
    if (line.startsWith("INFO ")) {
      items.push({ text: normaliseInfo(line.slice(5)) });
      continue;
    }
    const parts = line.split(" ");
    const op = parts[0];
    const argc = parts.length - 1;
    if (
      (op === "MSG" && (argc === 3 || argc === 4)) ||
      (op === "HMSG" && (argc === 4 || argc === 5))
    ) {
      const size = Number(parts[parts.length - 1]);
      const payload = data.slice(i, i + size);
      i += size;
      if (data.startsWith("\r\n", i)) i += 2;
      else items.push({ text: "<payload not followed by CRLF>" });
      if (session.anySid?.includes(parts[2]!)) parts[2] = "<any>";
      const text = `${visible(parts.join(" "))} ${JSON.stringify(payload)}`;
      const key = [parts[0], parts[1], ...parts.slice(3), payload].join(" ");
      items.push({ text, key });
      continue;
    }
    items.push({ text: visible(line) });
  }
  // One message delivered to several subscriptions: compare its deliveries as a multiset.
  const out: string[] = [];
  for (let k = 0; k < items.length;) {
    const key = items[k]!.key;
    let end = k + 1;
    if (key !== undefined) while (end < items.length && items[end]!.key === key) end++;
    out.push(
      ...items
        .slice(k, end)
        .map((it) => it.text)
        .sort(),
    );
    k = end;
  }
  return out;
}

/** INFO without its volatile fields, as `INFO {json}` with sorted keys. */
function normaliseInfo(json: string): string {
  let info: Record<string, unknown>;
  try {
    info = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return `INFO <bad JSON> ${json}`;
  }
  const kept: Record<string, unknown> = {};
  for (const k of Object.keys(info).sort()) if (!VOLATILE_INFO.has(k)) kept[k] = info[k];
  return `INFO ${JSON.stringify(kept)}`;
}

function infoFields(line: string): Record<string, unknown> | null {
  if (!line.startsWith("INFO {")) return null;
  return JSON.parse(line.slice(5)) as Record<string, unknown>;
}

/**
 * Reduces the INFO lines at the same place in both transcripts to the fields both servers send
 * (whether the field sets themselves match is checked once per server kind).
 */
function commonInfo(a: ConnTranscript[], b: ConnTranscript[]): void {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const la = a[i]!.lines;
    const lb = b[i]!.lines;
    for (let j = 0; j < Math.min(la.length, lb.length); j++) {
      const fa = infoFields(la[j]!);
      const fb = infoFields(lb[j]!);
      if (fa === null || fb === null) continue;
      const keys = Object.keys(fa).filter((k) => k in fb);
      la[j] = `INFO ${JSON.stringify(Object.fromEntries(keys.map((k) => [k, fa[k]])))}`;
      lb[j] = `INFO ${JSON.stringify(Object.fromEntries(keys.map((k) => [k, fb[k]])))}`;
    }
  }
}

/** Shows control characters in a protocol line. */
function visible(line: string): string {
  let out = "";
  for (const ch of line) {
    const code = ch.charCodeAt(0);
    out += code < 0x20 || code === 0x7f ? `\\x${code.toString(16).padStart(2, "0")}` : ch;
  }
  return out;
}

function show(t: ConnTranscript[]): string {
  return t
    .map((c, i) => {
      const body = c.lines.map((l) => `      ${l}`).join("\n");
      const tail = `      <${c.closed ? "closed" : "open"}>${c.notes.length ? " " + c.notes.join("; ") : ""}`;
      return `    conn ${i}:\n${body}\n${tail}`;
    })
    .join("\n");
}

// ---- the suite --------------------------------------------------------------------------------

const GO_SERVER = goServerPath();
const MISSING =
  "the Go nats-server is not installed (apt-get install nats-server, or set NATS_SERVER)";
const CI = !["", "0", "false"].includes(process.env["CI"] ?? "");

describe(
  "differential: shoal vs nats-server",
  { skip: GO_SERVER !== null || CI ? false : MISSING },
  () => {
    if (GO_SERVER === null) {
      test("the Go nats-server is installed", () => {
        assert.fail(
          `${MISSING}; CI (set in the environment) runs the differential suite, so install ` +
            "nats-server on this machine: apt-get install -y nats-server (as .ci/run does)",
        );
      });
      return;
    }

    const servers = new Map<ServerKind, { go: RunningServer; shoal: RunningServer }>();
    let dir = "";

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), "shoal-diff-"));
      await Promise.all(
        SERVER_KINDS.map(async (kind) => {
          const args = serverArgs(kind, dir);
          const [go, shoal] = await Promise.all([runGoServer(args), runServer(args)]);
          servers.set(kind, { go, shoal });
        }),
      );
    });

    after(async () => {
      await Promise.all([...servers.values()].flatMap((p) => [p.go.stop(), p.shoal.stop()]));
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    for (const session of SESSIONS) {
      const known = session.knownDifference;
      const name = known ? `${session.name} (known difference)` : session.name;
      test(name, async () => {
        const pair = servers.get(session.server ?? "plain")!;
        const [goT, shoalT] = await Promise.all([
          play(pair.go.port, session),
          play(pair.shoal.port, session),
        ]);
        commonInfo(goT, shoalT);
        const both = `\n  nats-server:\n${show(goT)}\n  shoal:\n${show(shoalT)}`;
        if (known) {
          const c = known.conn ?? 0;
          const where = `conn ${c}, line ${known.line}`;
          assert.equal(
            goT[c]?.lines[known.line],
            known.natsServer,
            `nats-server's answer at ${where} changed; is the known difference (${known.why}) still right?${both}`,
          );
          assert.equal(
            shoalT[c]?.lines[known.line],
            known.shoal,
            `shoal's answer at ${where} changed; if it now matches nats-server, drop knownDifference (${known.why})${both}`,
          );
          shoalT[c]!.lines[known.line] = known.natsServer;
        }
        const view = (t: ConnTranscript[]) => t.map(({ lines, closed }) => ({ lines, closed }));
        assert.deepEqual(
          view(shoalT),
          view(goT),
          `transcripts differ${known ? ` beyond the known difference` : ""}${both}`,
        );
      });
    }

    for (const kind of SERVER_KINDS) {
      test(`info: the ${kind} server sends the same INFO fields`, async () => {
        const pair = servers.get(kind)!;
        const session: Session = { name: kind, server: kind, steps: [closes("")] };
        const first = async (port: number) => {
          const c = await RawConn.connect(port);
          try {
            await c.waitFor(/\r\n/);
            return normalise(c.data, session)[0]!;
          } finally {
            c.close();
          }
        };
        const [goInfo, shoalInfo] = await Promise.all([
          first(pair.go.port),
          first(pair.shoal.port),
        ]);
        assert.deepEqual(
          Object.keys(infoFields(shoalInfo) ?? {}),
          Object.keys(infoFields(goInfo) ?? {}),
          `INFO fields differ\n  nats-server: ${goInfo}\n  shoal:       ${shoalInfo}`,
        );
      });
    }
  },
);
