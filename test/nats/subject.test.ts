// Tables for the subject helpers: validity, literal checks, wildcard
// detection, pattern matching and pattern subsets, following nats-server.

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  isValidLiteralSubject,
  isValidQueueName,
  isValidSubject,
  patternIsSubsetOf,
  subjectHasWildcard,
  subjectMatchesPattern,
} from "../../src/nats/subject.js";

// [subject, valid (SUB), literal (PUB)]
const subjects: [string, boolean, boolean][] = [
  ["foo", true, true],
  ["foo.bar", true, true],
  ["foo.bar.baz", true, true],
  ["_INBOX.abc123.1", true, true],
  ["$SYS.ACCOUNT.>", true, false],
  ["a-b_c:d/e", true, true],
  ["*", true, false],
  [">", true, false],
  ["foo.*", true, false],
  ["*.bar", true, false],
  ["foo.*.baz", true, false],
  ["foo.>", true, false],
  ["*.>", true, false],
  ["foo.*x", true, true], // "*x" is a literal token
  ["foo.x*", true, true],
  ["foo.>x", true, true],
  ["foo.x>", true, true],
  ["**", true, true],
  [">>", true, true],
  ["*.*.*", true, false],
  ["", false, false],
  [".", false, false],
  ["..", false, false],
  ["foo..bar", false, false],
  ["foo.", false, false],
  [".foo", false, false],
  ["foo bar", false, false],
  [" foo", false, false],
  ["foo ", false, false],
  ["foo\tbar", false, false],
  ["foo\nbar", false, false],
  ["foo\rbar", false, false],
  ["foo\fbar", false, false],
  ["foo. .bar", false, false],
  ["foo.>.bar", false, false],
  [">.foo", false, false],
  [">.>", false, false],
  ["foo.>.", false, false],
  ["foo.*.", false, false],
];

describe("subject validity", () => {
  for (const [s, valid, literal] of subjects) {
    test(`${JSON.stringify(s)}: valid=${valid} literal=${literal}`, () => {
      assert.equal(isValidSubject(s), valid);
      assert.equal(isValidLiteralSubject(s), literal);
    });
  }
});

describe("queue names", () => {
  const table: [string, boolean][] = [
    ["workers", true],
    ["q.1", true],
    ["*", true],
    ["", false],
    ["a b", false],
    ["a\tb", false],
    ["ab\r", false],
  ];
  for (const [q, ok] of table) {
    test(`${JSON.stringify(q)} → ${ok}`, () => assert.equal(isValidQueueName(q), ok));
  }
});

describe("subjectHasWildcard", () => {
  const table: [string, boolean][] = [
    ["foo", false],
    ["foo.bar", false],
    ["*", true],
    [">", true],
    ["foo.*", true],
    ["*.foo", true],
    ["foo.*.bar", true],
    ["foo.>", true],
    ["foo.*x", false],
    ["foo.x*", false],
    ["foo.>x", false],
    ["**", false],
    ["a*.b", false],
  ];
  for (const [s, want] of table) {
    test(`${JSON.stringify(s)} → ${want}`, () => assert.equal(subjectHasWildcard(s), want));
  }
});

describe("subjectMatchesPattern", () => {
  // [subject, pattern, matches]
  const table: [string, string, boolean][] = [
    ["foo", "foo", true],
    ["foo", "bar", false],
    ["foo", "fo", false],
    ["fo", "foo", false],
    ["foo.bar", "foo.bar", true],
    ["foo.bar", "foo", false],
    ["foo", "foo.bar", false],
    ["foo.bar", "foo.*", true],
    ["foo.bar", "*.bar", true],
    ["foo.bar", "*.*", true],
    ["foo.bar", "*", false],
    ["foo", "*", true],
    ["foo.bar.baz", "foo.*", false],
    ["foo.bar.baz", "foo.*.baz", true],
    ["foo.bar.baz", "foo.*.bax", false],
    ["foo.bar", "foo.>", true],
    ["foo.bar.baz", "foo.>", true],
    ["foo", "foo.>", false],
    ["foo", ">", true],
    ["foo.bar.baz", ">", true],
    ["foo.bar.baz", "*.>", true],
    ["foo", "*.>", false],
    ["foo.bar.baz", "*.*.>", true],
    ["foo.bar.baz", "*.*.*.>", false],
    ["foo.bar", "foo.*x", false], // "*x" is literal
    ["foo.*x", "foo.*x", true],
    ["foo.bar", "fo.>", false],
    ["foobar.baz", "foo.>", false],
    ["$SHOAL.node.1", "$SHOAL.>", true],
    ["$SHOALX.node", "$SHOAL.>", false],
    ["", "foo", false],
    ["foo", "", false],
  ];
  for (const [subject, pattern, want] of table) {
    test(`${subject} ~ ${pattern} → ${want}`, () => {
      assert.equal(subjectMatchesPattern(subject, pattern), want);
    });
  }
});

describe("patternIsSubsetOf", () => {
  // [pattern, of, subset]
  const table: [string, string, boolean][] = [
    ["foo", "foo", true],
    ["foo", "bar", false],
    ["foo.bar", "foo.*", true],
    ["foo.bar", "foo.>", true],
    ["foo.bar", ">", true],
    ["foo.*", "foo.*", true],
    ["foo.*", "foo.>", true],
    ["foo.*", "*.*", true],
    ["foo.*", ">", true],
    ["foo.*", "foo.bar", false],
    ["foo.*", "*.bar", false],
    ["foo.*", "foo", false],
    ["foo.*", "foo.*.*", false],
    ["foo.>", "foo.>", true],
    ["foo.>", ">", true],
    ["foo.>", "*.>", true],
    ["foo.>", "foo.*", false],
    ["foo.>", "foo.*.>", false],
    ["foo.*.>", "foo.>", true],
    ["foo.*.>", "foo.*.>", true],
    [">", ">", true],
    [">", "*", false],
    [">", "foo.>", false],
    ["*", ">", true],
    ["*", "*", true],
    ["*", "foo", false],
    ["*.*", "*", false],
    ["foo", "foo.>", false],
    ["foo.bar.baz", "foo.*.baz", true],
    ["foo.*.baz", "foo.bar.baz", false],
    ["foo.*x", "foo.*", true], // literal token "*x"
    ["foo.*", "foo.*x", false],
    ["$SHOAL.>", "$SHOAL.>", true],
    ["$SHOAL.*", "$SHOAL.>", true],
    [">", "$SHOAL.>", false],
  ];
  for (const [pattern, of, want] of table) {
    test(`${pattern} ⊆ ${of} → ${want}`, () => assert.equal(patternIsSubsetOf(pattern, of), want));
  }

  test("agrees with subjectMatchesPattern on literal patterns", () => {
    const lits = ["foo", "foo.bar", "foo.bar.baz", "bar.baz", "a.b.c.d"];
    const pats = ["foo", "foo.*", "foo.>", "*.bar", "*.*", ">", "*.*.>", "foo.bar.baz"];
    for (const l of lits) {
      for (const p of pats) {
        assert.equal(patternIsSubsetOf(l, p), subjectMatchesPattern(l, p), `${l} vs ${p}`);
      }
    }
  });
});
