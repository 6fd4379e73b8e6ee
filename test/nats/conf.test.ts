// Tests for the nats-server configuration format parser (src/nats/conf.ts): each syntax form,
// size suffixes and the `2m` / `3s` rule, variables, includes, the nats-server documentation
// examples, every error with its line:column, the duration and size helpers, and, when the Go
// binary is installed, that the real nats-server accepts the same fixture files.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, dirname, join } from "node:path";
import {
  ConfigError,
  type ConfObject,
  type ConfValue,
  isUsedVariable,
  parseConfig,
  parseConfigFile,
  parseDuration,
  parseSize,
} from "../../src/nats/conf.js";
import { applyConfig, defaultOptions, validateOptions } from "../../src/nats/options.js";
import { parseFlags } from "../../src/nats/flags.js";
import { unsupportedChange } from "../../src/nats/reload.js";

// The Go server, to check that it accepts what we accept: $NATS_SERVER, else the first on $PATH.
const NATS_SERVER = [
  process.env.NATS_SERVER,
  ...(process.env.PATH ?? "").split(delimiter).map((d) => d && join(d, "nats-server")),
  "/usr/bin/nats-server",
].find((p): p is string => !!p && existsSync(p));
const noEnv = { env: {} };

describe("syntax forms", () => {
  const cases: Array<[string, string, ConfObject]> = [
    ["colon", "port: 4222", { port: 4222 }],
    ["equals", "port = 4222", { port: 4222 }],
    ["space", "port 4222", { port: 4222 }],
    ["no spaces", "port:4222\nhost=localhost", { port: 4222, host: "localhost" }],
    ["tabs", "port\t\t4222", { port: 4222 }],
    ["keys keep their case", "Port: 1\nport: 2", { Port: 1, port: 2 }],
    ["double-quoted key", '"my key": 1', { "my key": 1 }],
    ["single-quoted key", "'a.b' = 2", { "a.b": 2 }],
    ["later key wins", "a: 1\na: 2", { a: 2 }],
    ["__proto__ is an ordinary key", "__proto__: 1", JSON.parse('{"__proto__": 1}')],
    ["negative", "port: -1", { port: -1 }],
    ["zero", "port: 0", { port: 0 }],
    ["float", "ratio: 1.5\nneg: -0.25", { ratio: 1.5, neg: -0.25 }],
    [
      "booleans, any case",
      "a: true\nb: FALSE\nc: yes\nd: No\ne: on\nf: OFF",
      { a: true, b: false, c: true, d: false, e: true, f: false },
    ],
    ["quoted boolean stays a string", 'a: "true"', { a: "true" }],
    ["double-quoted", 'name: "hello world"', { name: "hello world" }],
    ["escapes", String.raw`s: "a\tb\nc\rd\"e\\f"`, { s: 'a\tb\nc\rd"e\\f' }],
    ["\\x bytes are UTF-8", String.raw`s: "\x41\xe2\x82\xac"`, { s: "A€" }],
    ["\\u escape", String.raw`s: "caf\u00e9"`, { s: "café" }],
    ["double-quoted over lines", 's: "a\nb"', { s: "a\nb" }],
    ["single-quoted is raw", String.raw`s: 'C:\path\n "x"'`, { s: String.raw`C:\path\n "x"` }],
    ["empty strings", "a: \"\"\nb: ''", { a: "", b: "" }],
    ["bare host", "host: 0.0.0.0", { host: "0.0.0.0" }],
    ["bare host:port", "listen: 127.0.0.1:4222", { listen: "127.0.0.1:4222" }],
    ["bare word", "user: derek", { user: "derek" }],
    ["bare host name:port", "listen: localhost:4222", { listen: "localhost:4222" }],
    ["bare url", "url: nats://user:pw@host:4222", { url: "nats://user:pw@host:4222" }],
    ["bare subject", "subject: foo.*.>", { subject: "foo.*.>" }],
    ["# inside a bare word is not a comment", "a: b#c", { a: "b#c" }],
    ["escape in a bare word", String.raw`a: x\ty`, { a: "x\ty" }],
    ["bcrypt hash is not a variable", "password: $2a$11$abc", { password: "$2a$11$abc" }],
    ["datetime", "at: 2023-01-02T03:04:05Z", { at: "2023-01-02T03:04:05Z" }],
    [
      "block string",
      "text: (\nline 1\n  line 2 )\n)\nnext: 1",
      { text: "\nline 1\n  line 2 )\n", next: 1 },
    ],
    ["block string at end of file", "text: (\nx\n)", { text: "\nx\n" }],
    ["block", "cluster {\n  port: 4248\n}", { cluster: { port: 4248 } }],
    ["block with colon", "cluster: { port: 4248 }", { cluster: { port: 4248 } }],
    ["block with equals", "cluster = {port = 4248}", { cluster: { port: 4248 } }],
    ["block without space", "cluster{port: 1}", { cluster: { port: 1 } }],
    ["empty block", "a {}\nb: {\n}", { a: {}, b: {} }],
    ["block value on next line", "a {\n  b =\n    1\n}", { a: { b: 1 } }],
    ["nested blocks", "a { b { c { d: 1 } } }", { a: { b: { c: { d: 1 } } } }],
    ["separators in a block", "a { b: 1, c: 2; d: 3\n e: 4, }", { a: { b: 1, c: 2, d: 3, e: 4 } }],
    ["separators at top level", "a: 1; b: 2, c: 3\nd: 4;", { a: 1, b: 2, c: 3, d: 4 }],
    ["array with commas", "a: [1, 2, 3]", { a: [1, 2, 3] }],
    ["array with new lines", "a: [\n  1\n  2\n  3\n]", { a: [1, 2, 3] }],
    ["array mixed separators", "a: [1,\n 2\n 3, 4,\n]", { a: [1, 2, 3, 4] }],
    ["array with one number", "a: [1]", { a: [1] }],
    ["empty array", "a: []\nb: [\n]", { a: [], b: [] }],
    [
      "array of mixed values",
      'a: [1, "two", three, true, 4k]',
      { a: [1, "two", "three", true, 4000] },
    ],
    [
      "unquoted urls in an array",
      "routes: [ nats://localhost:5248, nats://127.0.0.1:6248 ]",
      { routes: ["nats://localhost:5248", "nats://127.0.0.1:6248"] },
    ],
    ["nested arrays", "a: [[1, 2], [], [[3]]]", { a: [[1, 2], [], [[3]]] }],
    [
      "objects in arrays in objects",
      "a { list: [ {x: 1}, { y: [ {z: 2} ] } ] }",
      { a: { list: [{ x: 1 }, { y: [{ z: 2 }] }] } },
    ],
    ["hash comments", "# top\na: 1 # end of line\n  # indented\nb: 2", { a: 1, b: 2 }],
    ["slash comments", "// top\na: 1 // end of line\nb: 2", { a: 1, b: 2 }],
    ["a comment after a bare value needs a space", "a: 2//x\nb: c#d", { a: "2//x", b: "c#d" }],
    [
      "comments in blocks and arrays",
      "a { # c1\n  b: [ # c2\n    1, // c3\n    # c4\n    2 ] # c5\n  // c6\n}",
      { a: { b: [1, 2] } },
    ],
    ["url is not a comment", "a: nats://host:1 // comment", { a: "nats://host:1" }],
    ["whole file in braces", "{\n  port: 4222\n  debug: true\n}\n", { port: 4222, debug: true }],
    ["CRLF line endings", "a: 1\r\nb {\r\n  c: [1,\r\n 2]\r\n}\r\n", { a: 1, b: { c: [1, 2] } }],
    ["byte order mark", "\uFEFFa: 1", { a: 1 }],
    [
      "include with a separator is an ordinary key",
      "include: x\nInclude = y",
      { include: "x", Include: "y" },
    ],
    ["empty file", "", {}],
    ["only comments", "# nothing\n// here\n", {}],
  ];
  for (const [name, text, expected] of cases) {
    test(name, () => assert.deepEqual(parseConfig(text, noEnv), expected));
  }
});

describe("numbers and size suffixes", () => {
  const sizes: Array<[string, number]> = [
    ["1k", 1000],
    ["1K", 1000],
    ["1kb", 1024],
    ["1KB", 1024],
    ["1ki", 1024],
    ["1Kib", 1024],
    ["1KiB", 1024],
    ["2m", 2_000_000],
    ["2M", 2_000_000],
    ["2mb", 2 * 1024 ** 2],
    ["2MB", 2 * 1024 ** 2],
    ["2mi", 2 * 1024 ** 2],
    ["2MiB", 2 * 1024 ** 2],
    ["3g", 3e9],
    ["3gb", 3 * 1024 ** 3],
    ["3GiB", 3 * 1024 ** 3],
    ["1t", 1e12],
    ["1tb", 1024 ** 4],
    ["1p", 1e15],
    ["1pb", 1024 ** 5],
    ["-2k", -2000],
    ["-1MB", -(1024 ** 2)],
    ["0k", 0],
  ];
  for (const [text, expected] of sizes) {
    test(`size ${text}`, () => assert.deepEqual(parseConfig(`v: ${text}`, noEnv), { v: expected }));
  }

  // Verified against nats-server 2.9: a size suffix makes a number, any other letter a string.
  const rule: Array<[string, ConfValue]> = [
    ["2m", 2_000_000],
    ["3s", "3s"],
    ["500ms", "500ms"],
    ["2ms", "2ms"],
    ["1h", "1h"],
    ["1h30m", "1h30m"],
    ["10us", "10us"],
    ["4x", "4x"],
    ["42", 42],
    ["007", 7],
  ];
  for (const [text, expected] of rule) {
    test(`unquoted ${text} is ${typeof expected} ${JSON.stringify(expected)}`, () => {
      assert.deepEqual(parseConfig(`ping_interval: ${text}`, noEnv), { ping_interval: expected });
    });
  }

  test("quoted values are always strings", () => {
    assert.deepEqual(parseConfig('a: "2m"\nb: "42"', noEnv), { a: "2m", b: "42" });
  });

  test("64-bit integer limits are accepted (as the nearest JS number)", () => {
    const conf = parseConfig("max: 9223372036854775807\nmin: -9223372036854775808", noEnv);
    assert.deepEqual(conf, { max: Number(2n ** 63n - 1n), min: Number(-(2n ** 63n)) });
    assert.throws(
      () => parseConfig("v: 9223372036854775808", noEnv),
      /1:4: integer .* out of range/,
    );
  });
});

describe("variables", () => {
  test("defined at top level, used at top level and in blocks", () => {
    const conf = parseConfig("PORT = 4222\nport: $PORT\na { b { c: $PORT } }", noEnv);
    assert.deepEqual(conf, { PORT: 4222, port: 4222, a: { b: { c: 4222 } } });
  });

  test("inner definitions shadow outer ones and stay in their block", () => {
    const text = "v = outer\na {\n  v = inner\n  x: $v\n}\ny: $v";
    assert.deepEqual(parseConfig(text, noEnv), {
      v: "outer",
      a: { v: "inner", x: "inner" },
      y: "outer",
    });
  });

  test("blocks and arrays as values, used inside arrays", () => {
    const text = [
      'ADMIN = { publish: ">", subscribe: ">" }',
      "HOSTS = [a, b]",
      "users = [ { user: x, permissions: $ADMIN, hosts: $HOSTS } ]",
    ].join("\n");
    assert.deepEqual(parseConfig(text, noEnv), {
      ADMIN: { publish: ">", subscribe: ">" },
      HOSTS: ["a", "b"],
      users: [{ user: "x", permissions: { publish: ">", subscribe: ">" }, hosts: ["a", "b"] }],
    });
  });

  test("falls back to the environment; its text is parsed as a value", () => {
    const env = { P: "4222", B: "true", U: "nats://h:1", L: "[1, 2]", S: "2m", Q: '"quoted"' };
    const text = "p: $P\nb: $B\nu: $U\nl: $L\ns: $S\nq: $Q";
    assert.deepEqual(parseConfig(text, { env }), {
      p: 4222,
      b: true,
      u: "nats://h:1",
      l: [1, 2],
      s: 2_000_000,
      q: "quoted",
    });
  });

  test("a definition in the file wins over the environment", () => {
    assert.deepEqual(parseConfig("P = 1\nport: $P", { env: { P: "2" } }), { P: 1, port: 1 });
  });

  test("environment values may refer to other environment variables", () => {
    const conf = parseConfig("a: $A", { env: { A: "$B", B: "5" } });
    assert.deepEqual(conf, { a: 5 });
  });

  test("process.env is the default environment", () => {
    process.env.SHOAL_CONF_TEST_PORT = "6222";
    try {
      assert.deepEqual(parseConfig("port: $SHOAL_CONF_TEST_PORT"), { port: 6222 });
    } finally {
      delete process.env.SHOAL_CONF_TEST_PORT;
    }
  });

  test("isUsedVariable tells referenced keys from unused ones", () => {
    const conf = parseConfig("V = 1\nU = 2\nport: $V\na { W = 3, x: $W }", noEnv);
    assert.equal(isUsedVariable(conf, "V"), true);
    assert.equal(isUsedVariable(conf, "U"), false);
    assert.equal(isUsedVariable(conf, "port"), false);
    assert.equal(isUsedVariable(conf.a as ConfObject, "W"), true);
  });
});

describe("errors name line and column", () => {
  // [name, text, line, column, what the message says, env]
  const cases: Array<[string, string, number, number, RegExp, Record<string, string>?]> = [
    ["unterminated double-quoted string", 'a: 1\nport: "abc', 2, 7, /unterminated string/],
    ["unterminated single-quoted string", "a: 'abc", 1, 4, /unterminated string/],
    ["unterminated quoted key", '"abc: 1', 1, 1, /unterminated quoted key/],
    ["unterminated block", "a {\n  b: 1\n", 1, 3, /unterminated block: missing '}'/],
    ["unterminated nested block", "a {\n  b {\n  }\n", 1, 3, /unterminated block/],
    ["unterminated array", "x: 1\na: [1, 2\n", 2, 4, /unterminated array: missing '\]'/],
    ["unterminated block string", "a: (\nfoo\n", 1, 4, /unterminated block string/],
    ["missing value before new line", "a:\nb: 1", 1, 3, /missing value for key 'a'/],
    ["missing value at end of file", "a =", 1, 4, /missing value for key 'a'/],
    ["missing value in block", "a { b }", 1, 7, /missing value for key 'b'/],
    ["missing value after key alone", "x: 1\nport", 2, 5, /missing value for key 'port'/],
    ["invalid key: separator", "= 5", 1, 1, /invalid key: unexpected '='/],
    ["invalid key: bracket", "a: 1\n  ]", 2, 3, /invalid key: unexpected '\]'/],
    ["invalid key: double separator", "a: 1,, b: 2", 1, 6, /invalid key: unexpected ','/],
    ["stray closing brace", "a: 1\n}", 2, 1, /unexpected '}'/],
    ["text after a file wrapped in braces", "{ a: 1 }\nb: 2", 2, 1, /unexpected 'b'/],
    ["two values on a line", "a: 1 2", 1, 6, /unexpected '2' after value/],
    ["two words on a line", "user: derek smith", 1, 13, /unexpected 's' after value/],
    ["entries on one line without separator", "a { b: 1 } c: 2", 1, 12, /unexpected 'c'/],
    ["unexpected character in a block", "a { b: 1 ] }", 1, 10, /unexpected '\]' after value/],
    [
      "semicolon in an array",
      "a: [1; 2]",
      1,
      6,
      /unexpected ';' after value, expected ',' or '\]'/,
    ],
    ["double comma in an array", "a: [1,,2]", 1, 7, /unexpected ',' in array/],
    ["leading comma in an array", "a: [,1]", 1, 5, /unexpected ','/],
    ["invalid escape", String.raw`a: "x\qy"`, 1, 6, /invalid escape '\\q'/],
    ["bad \\x escape", String.raw`a: "\xZZ"`, 1, 5, /2 hexadecimal digits after '\\x'/],
    ["unknown variable", "a: $nope", 1, 4, /variable reference for 'nope' can not be found/],
    ["variable in another block", "a { b: 1 }\nc: $b", 2, 4, /'b' can not be found/],
    ["variable defined later", "c: [1, $later]\nlater: 1", 1, 8, /'later' can not be found/],
    ["duration-like with digits after m", "a: 1m30s", 1, 6, /unexpected '3' after number/],
    ["float with a unit", "a: 1.5s", 1, 7, /unexpected 's' after number/],
    ["minus without digit", "a: -x", 1, 5, /expected a digit after '-'/],
    ["float starting with dot", "a: .5", 1, 4, /floats must start with a digit/],
    ["float without fraction", "a: 1.x", 1, 6, /floats must have a digit after the '.'/],
    ["partial date", "a: 12-3", 1, 6, /dates must be in full Zulu form/],
    ["date without time", "a: 2023-01-02", 1, 4, /invalid date/],
    ["integer out of range", "a: 99999999999999999999", 1, 4, /out of range/],
    ["size out of range", "a: 9000PB", 1, 4, /out of range/],
    ["missing include path", "include\nport: 1", 1, 8, /missing include path/],
    ["CRLF positions", 'a: 1\r\nb: "x', 2, 4, /unterminated string/],
    [
      "environment value that does not parse",
      "a: $X",
      1,
      4,
      /'X' could not be parsed/,
      { X: "a b" },
    ],
    ["environment cycle", "a: $X", 1, 4, /'X' refers to itself/, { X: "$Y", Y: "$X" }],
  ];
  for (const [name, text, line, column, what, env] of cases) {
    test(name, () => {
      const err = catchError(() => parseConfig(text, { file: "t.conf", env: env ?? {} }));
      assert.equal(err.code, "ERR_CONFIG");
      assert.deepEqual([err.line, err.column], [line, column], err.message);
      assert.ok(err.message.startsWith(`t.conf:${line}:${column}: `), err.message);
      assert.match(err.reason, what);
    });
  }

  test("without a file name the message starts with line:column", () => {
    const err = catchError(() => parseConfig("a: [1", noEnv));
    assert.equal(err.file, undefined);
    assert.equal(err.message, "1:4: unterminated array: missing ']'");
  });

  test("ConfigError formats its message", () => {
    const err = new ConfigError("bad thing", "x.conf", 3, 7);
    assert.equal(err.message, "x.conf:3:7: bad thing");
    assert.ok(err instanceof Error);
  });

  test("parseConfigFile on a missing file", () => {
    const err = catchError(() => parseConfigFile("/nonexistent/shoal.conf"));
    assert.equal(err.file, "/nonexistent/shoal.conf");
    assert.match(err.message, /^\/nonexistent\/shoal\.conf: error opening config file: .*ENOENT/);
  });
});

describe("files and includes", () => {
  let dir = "";
  const write = (name: string, text: string): string => {
    const path = join(dir, name);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, text);
    return path;
  };
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "shoal-conf-"));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test("include at top level and in blocks, bare and quoted, relative to the including file", () => {
    write("inc/top.conf", "max_connections: 100\nTOP_VAR = 7");
    write("inc/block.conf", "user: a\ninclude 'deeper/pass.conf'");
    write("inc/deeper/pass.conf", "password: b");
    const main = write(
      "main.conf",
      'include ./inc/top.conf\nauthorization {\n  include "inc/block.conf"\n  timeout: $TOP_VAR\n}\n',
    );
    assert.deepEqual(parseConfigFile(main, noEnv), {
      max_connections: 100,
      TOP_VAR: 7,
      authorization: { user: "a", password: "b", timeout: 7 },
    });
  });

  test("included entries override earlier ones and later ones override them", () => {
    write("over.conf", "a: 2\nb: 2");
    const main = write("over-main.conf", "a: 1\nb: 1\ninclude over.conf\nb: 3");
    assert.deepEqual(parseConfigFile(main, noEnv), { a: 2, b: 3 });
  });

  test("parseConfig with a file option resolves includes next to it", () => {
    write("sub/part.conf", "x: 1");
    assert.deepEqual(parseConfig("include part.conf", { file: join(dir, "sub", "virtual.conf") }), {
      x: 1,
    });
  });

  test("include file not found names the including file and position", () => {
    const main = write("missing.conf", "port: 1\n  include ./nope.conf\n");
    const err = catchError(() => parseConfigFile(main, noEnv));
    assert.equal(err.file, main);
    assert.deepEqual([err.line, err.column], [2, 11]);
    assert.match(err.message, /include file '\.\/nope\.conf' \(.*nope\.conf\) not found$/);
  });

  test("an error inside an included file names that file", () => {
    const broken = write("broken.conf", "x: 1\ny: [1,\n");
    const main = write("uses-broken.conf", "a: 1\ninclude broken.conf\n");
    const err = catchError(() => parseConfigFile(main, noEnv));
    assert.equal(err.file, broken);
    assert.deepEqual([err.line, err.column], [2, 4]);
    assert.equal(err.message, `${broken}:2:4: unterminated array: missing ']'`);
  });

  test("include cycles are reported", () => {
    write("cyc-a.conf", "a: 1\ninclude cyc-b.conf");
    const b = write("cyc-b.conf", "b: 1\ninclude ./cyc-a.conf");
    const err = catchError(() => parseConfigFile(join(dir, "cyc-a.conf"), noEnv));
    assert.equal(err.file, b);
    assert.deepEqual([err.line, err.column], [2, 1]);
    assert.match(err.message, /include cycle: .*cyc-a\.conf -> .*cyc-b\.conf -> .*cyc-a\.conf$/);
  });

  test("a file including itself", () => {
    const self = write("self.conf", "include self.conf");
    assert.match(catchError(() => parseConfigFile(self, noEnv)).message, /include cycle/);
  });

  test("variables of the including file are not seen by the included file", () => {
    write("needs-var.conf", "port: $P");
    const main = write("defines-var.conf", "P = 1\ninclude needs-var.conf");
    const err = catchError(() => parseConfigFile(main, noEnv));
    assert.match(err.message, /needs-var\.conf:1:7: variable reference for 'P' can not be found/);
  });

  // The nats-server documentation examples, as one server configuration spread over files.
  const files: Record<string, string> = {
    "server.conf": [
      "# shoal test fixture: a complete server configuration",
      "listen: 127.0.0.1:4222 # client port",
      "http = 8222            // monitoring port",
      'server_name: "shoal-1"',
      "max_payload: 1MB",
      "max_pending: 64MB",
      "max_control_line = 4KB",
      'ping_interval: "2m"',
      "ping_max: 3",
      'write_deadline: "10s"',
      "debug: false; trace: no",
      "logtime on",
      "",
      "include ./limits.conf",
      "",
      "ADMIN = {",
      '  publish = ">"',
      '  subscribe = ">"',
      "}",
      "PASS: 'pa$$word'",
      "authorization {",
      "  timeout: 2.5",
      "  users = [",
      "    {user: admin, password: $PASS, permissions: $ADMIN}",
      '    {user: a, password: b, permissions: { publish: { allow: ["foo.>"], deny: ["foo.bar"] }, subscribe: "_INBOX.>" } }',
      "  ]",
      "}",
      "cluster {",
      "  name: c1",
      "  listen: 0.0.0.0:4248",
      '  include "auth/cluster.conf"',
      "  routes: [",
      "    nats://localhost:5248",
      "    nats://127.0.0.1:6248   # second seed",
      "  ]",
      "}",
      "",
    ].join("\n"),
    "limits.conf": "max_connections: 100\nmax_subscriptions: 1k\n",
    "auth/cluster.conf": "authorization {\n  include ./route-user.conf\n  timeout: 1\n}\n",
    "auth/route-user.conf": "user: route\npassword: pwd\n",
  };
  const expected: ConfObject = {
    listen: "127.0.0.1:4222",
    http: 8222,
    server_name: "shoal-1",
    max_payload: 1024 * 1024,
    max_pending: 64 * 1024 * 1024,
    max_control_line: 4096,
    ping_interval: "2m",
    ping_max: 3,
    write_deadline: "10s",
    debug: false,
    trace: false,
    logtime: true,
    max_connections: 100,
    max_subscriptions: 1000,
    ADMIN: { publish: ">", subscribe: ">" },
    PASS: "pa$$word",
    authorization: {
      timeout: 2.5,
      users: [
        { user: "admin", password: "pa$$word", permissions: { publish: ">", subscribe: ">" } },
        {
          user: "a",
          password: "b",
          permissions: {
            publish: { allow: ["foo.>"], deny: ["foo.bar"] },
            subscribe: "_INBOX.>",
          },
        },
      ],
    },
    cluster: {
      name: "c1",
      listen: "0.0.0.0:4248",
      authorization: { user: "route", password: "pwd", timeout: 1 },
      routes: ["nats://localhost:5248", "nats://127.0.0.1:6248"],
    },
  };

  test("the documentation example server configuration", () => {
    for (const [name, text] of Object.entries(files)) write(name, text);
    assert.deepEqual(parseConfigFile(join(dir, "server.conf"), noEnv), expected);
  });

  test(
    "the real nats-server accepts the same files",
    {
      skip: NATS_SERVER === undefined && "nats-server is not installed (not on $PATH nor /usr/bin)",
    },
    () => {
      for (const [name, text] of Object.entries(files)) write(name, text);
      const inline = write(
        "inline.conf",
        'authorization {\n  users = [ {user: a, password: b, permissions: { publish: { allow: ["foo.>"], deny: ["foo.bar"] }, subscribe: "_INBOX.>" } } ]\n}\ncluster { name: c1, listen: 0.0.0.0:4248, routes: [ nats://localhost:5248 ] }\n',
      );
      for (const file of [join(dir, "server.conf"), inline]) {
        parseConfigFile(file, noEnv);
        const run = spawnSync(NATS_SERVER!, ["-c", file, "-t"], {
          encoding: "utf8",
          timeout: 10_000,
        });
        assert.equal(run.status, 0, `${file}: ${run.stdout}${run.stderr}`);
        assert.match(run.stdout + run.stderr, /is valid/);
      }
    },
  );
});

describe("parseDuration", () => {
  const ok: Array<[ConfValue, number]> = [
    ["2m", 120_000],
    ["500ms", 500],
    ["1h30m", 5_400_000],
    ["1.5s", 1500],
    [".5s", 500],
    ["10us", 0.01],
    ["10µs", 0.01],
    ["1000000ns", 1],
    ["0", 0],
    ["-1s", -1000],
    ["+3s", 3000],
    ["1h2m3s4ms", 3_723_004],
    [2, 2000], // a number is seconds
    [0.5, 500],
    [2_000_000, 2_000_000_000], // what an unquoted `2m` becomes
  ];
  for (const [v, ms] of ok) {
    test(`${JSON.stringify(v)} is ${ms}ms`, () =>
      assert.equal(parseDuration(v, "ping_interval"), ms));
  }

  const bad: ConfValue[] = ["", "abc", "1", "1x", "s", "1.5", "--1s", true, [], {}];
  for (const v of bad) {
    test(`${JSON.stringify(v)} is rejected naming the key`, () => {
      assert.throws(() => parseDuration(v, "ping_interval"), /^Error: ping_interval: /);
    });
  }
});

describe("parseSize", () => {
  const ok: Array<[ConfValue, number]> = [
    [1048576, 1048576],
    [-1, -1],
    ["512", 512],
    ["1MB", 1024 * 1024],
    ["64KB", 64 * 1024],
    ["1GB", 1024 ** 3],
    ["1k", 1000],
    ["1 mb", 1024 * 1024],
    ["2MiB", 2 * 1024 * 1024],
    ["1.5KB", 1536],
    ["10b", 10],
  ];
  for (const [v, bytes] of ok) {
    test(`${JSON.stringify(v)} is ${bytes} bytes`, () =>
      assert.equal(parseSize(v, "max_payload"), bytes));
  }

  const bad: ConfValue[] = ["", "abc", "1XB", "MB", true, [1], { a: 1 }];
  for (const v of bad) {
    test(`${JSON.stringify(v)} is rejected naming the key`, () => {
      assert.throws(() => parseSize(v, "max_payload"), /^Error: max_payload: /);
    });
  }
});

function catchError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    return err;
  }
  assert.fail("expected an error");
}

describe("options from a config (applyConfig)", () => {
  const load = (text: string) => {
    const opts = defaultOptions();
    const warnings: string[] = [];
    applyConfig(opts, parseConfig(text, { env: {} }), (w) => warnings.push(w));
    return { opts, warnings };
  };

  test("server_tags: a list or one string, lower-cased, trimmed, without repeats", () => {
    assert.deepEqual(load(`server_tags [ "ID:abc", " id:ABC ", "b,c" ]`).opts.serverTags, [
      "id:abc",
      "b,c",
    ]);
    assert.deepEqual(load(`server_tags: "a,b"`).opts.serverTags, ["a,b"]);
  });

  test("ports_file_dir", () => {
    assert.equal(load(`ports_file_dir: /tmp/x`).opts.portsFileDir, "/tmp/x");
  });

  test("jetstream and leafnodes are accepted with a warning; jetstream: disabled is silent", () => {
    for (const text of [`jetstream: enabled`, `jetstream {}`, `jetstream { store_dir: /x }`]) {
      assert.deepEqual(load(text).warnings, [
        "JetStream is not supported by shoal: the jetstream settings are ignored",
      ]);
    }
    assert.deepEqual(load(`jetstream: disabled`).warnings, []);
    assert.deepEqual(load(`leafnodes { listen: "127.0.0.1:-1" }`).warnings, [
      "Leaf nodes are not supported by shoal: the leafnodes block is ignored",
    ]);
  });

  test("the monitor listens on the client host unless told otherwise (as nats-server)", (t) => {
    const dir = mkdtempSync(join(tmpdir(), "shoal-http-"));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const host = (text: string) => {
      writeFileSync(join(dir, "m.conf"), text);
      return parseFlags(["-c", join(dir, "m.conf")], () => {}).options.httpHost;
    };
    assert.equal(host(`listen: "127.0.0.1:-1"\nhttp: 8222`), "127.0.0.1");
    assert.equal(host(`http: 8222\nhost: 127.0.0.1`), "127.0.0.1");
    assert.equal(host(`host: 127.0.0.1\nhttp_port: 8222`), "127.0.0.1");
    assert.equal(host(`host: 127.0.0.1\nhttp: "0.0.0.0:8222"`), "0.0.0.0");
    assert.equal(host(`http: 8222`), "0.0.0.0");
    assert.equal(
      parseFlags(["-a", "127.0.0.1", "-m", "8222"], () => {}).options.httpHost,
      "127.0.0.1",
    );
  });

  test("authorization { timeout } in seconds", () => {
    assert.equal(load(`authorization { timeout: 3 }`).opts.authTimeoutMs, 3000);
    assert.equal(load(`authorization { timeout: 0.5 }`).opts.authTimeoutMs, 500);
  });
});

describe("reload: options that cannot change (nats-server's words)", () => {
  test("the first fixed option that differs is named with old and new values", () => {
    const cur = validateOptions({ ...defaultOptions(), port: 4222 });
    const same = validateOptions({ ...defaultOptions(), port: 4222, debug: true, users: [] });
    assert.equal(unsupportedChange(cur, same), null);
    const port = validateOptions({ ...defaultOptions(), port: 4223 });
    assert.equal(
      unsupportedChange(cur, port),
      "config reload not supported for Port: old=4222, new=4223",
    );
    // nats-server 2.9 reloads ping_interval, not max_subscriptions.
    const ping = validateOptions({ ...defaultOptions(), port: 4222, pingIntervalMs: 60_000 });
    assert.equal(unsupportedChange(cur, ping), null);
    const subs = validateOptions({ ...defaultOptions(), port: 4222, maxSubscriptions: 100 });
    assert.equal(
      unsupportedChange(cur, subs),
      "config reload not supported for MaxSubs: old=0, new=100",
    );
  });
});
