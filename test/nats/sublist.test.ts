// Tests for the subject index: tables of subscriptions × published subject →
// expected matches, removal and pruning, cache patching/invalidation/bound,
// and a property test (fast-check) against a brute-force matcher. Every
// behavioural test runs with the cache on and off.

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Sublist, SublistError, type SublistResult } from "../../src/nats/sublist.js";
import { subjectMatchesPattern } from "../../src/nats/subject.js";
import fc from "fast-check";
import { propertyParams, steps } from "../helpers/property.js";

interface TSub {
  readonly id: string;
  readonly subject: string;
  readonly queue: string | null;
}

function sub(id: string, subject: string, queue: string | null = null): TSub {
  return { id, subject, queue };
}

interface Shape {
  psubs: string[];
  qsubs: Record<string, string[]>;
}

/** Sorted ids per kind; also checks the grouping invariants of a result. */
function shape(r: SublistResult<TSub>): Shape {
  const qsubs: Record<string, string[]> = {};
  for (const group of r.qsubs) {
    assert.ok(group.length > 0, "queue group arrays are never empty");
    const name = group[0].queue;
    assert.ok(name !== null);
    assert.ok(!(name in qsubs), `queue group ${name} appears once`);
    for (const s of group) assert.equal(s.queue, name, "group members share the queue name");
    qsubs[name] = group.map((s) => s.id).sort();
  }
  for (const s of r.psubs) assert.equal(s.queue, null);
  return { psubs: r.psubs.map((s) => s.id).sort(), qsubs };
}

/** Freezes a result deeply, so any later mutation by the Sublist throws. */
function deepFreeze(r: SublistResult<TSub>): SublistResult<TSub> {
  Object.freeze(r.psubs);
  for (const g of r.qsubs) Object.freeze(g);
  Object.freeze(r.qsubs);
  return Object.freeze(r);
}

interface Case {
  name: string;
  subs: [id: string, subject: string, queue?: string][];
  publish: string;
  psubs: string[];
  qsubs?: Record<string, string[]>;
}

const cases: Case[] = [
  { name: "no subs", subs: [], publish: "foo", psubs: [] },
  { name: "literal", subs: [["a", "foo"]], publish: "foo", psubs: ["a"] },
  { name: "literal miss", subs: [["a", "foo"]], publish: "bar", psubs: [] },
  { name: "prefix is not a match", subs: [["a", "foo"]], publish: "foo.bar", psubs: [] },
  { name: "longer sub is not a match", subs: [["a", "foo.bar"]], publish: "foo", psubs: [] },
  {
    name: "multi-token literal",
    subs: [
      ["a", "foo.bar.baz"],
      ["b", "foo.bar"],
      ["c", "foo.bar.baz.qux"],
    ],
    publish: "foo.bar.baz",
    psubs: ["a"],
  },
  {
    name: "pwc",
    subs: [
      ["a", "foo.*"],
      ["b", "*.bar"],
      ["c", "*.*"],
      ["d", "*"],
      ["e", "foo.*.baz"],
    ],
    publish: "foo.bar",
    psubs: ["a", "b", "c"],
  },
  {
    name: "pwc single token",
    subs: [
      ["a", "*"],
      ["b", "*.*"],
      ["c", ">"],
    ],
    publish: "foo",
    psubs: ["a", "c"],
  },
  {
    name: "pwc in the middle",
    subs: [
      ["a", "foo.*.baz"],
      ["b", "foo.*.bax"],
      ["c", "*.*.baz"],
      ["d", "*.bar.*"],
    ],
    publish: "foo.bar.baz",
    psubs: ["a", "c", "d"],
  },
  {
    name: "fwc",
    subs: [
      ["a", "foo.>"],
      ["b", ">"],
      ["c", "foo.bar.>"],
      ["d", "foo.bar.baz.>"],
      ["e", "bar.>"],
    ],
    publish: "foo.bar.baz",
    psubs: ["a", "b", "c"],
  },
  {
    name: "fwc needs at least one token",
    subs: [
      ["a", "foo.>"],
      ["b", "foo"],
    ],
    publish: "foo",
    psubs: ["b"],
  },
  {
    name: "mixed wildcards",
    subs: [
      ["a", "*.>"],
      ["b", "*.bar.>"],
      ["c", "foo.*.>"],
      ["d", "*.*.*"],
      ["e", "*.*.*.*"],
      ["f", "foo.bar.baz"],
      ["g", "*.baz.>"],
    ],
    publish: "foo.bar.baz",
    psubs: ["a", "b", "c", "d", "f"],
  },
  {
    name: "literal star-ish tokens are not wildcards",
    subs: [
      ["a", "foo.*x"],
      ["b", "foo.>x"],
      ["c", "foo.*"],
    ],
    publish: "foo.*x",
    psubs: ["a", "c"],
  },
  {
    name: "duplicates: same subject, different subs",
    subs: [
      ["a", "foo"],
      ["b", "foo"],
      ["c", "foo"],
      ["d", "foo.*"],
      ["e", "foo.*"],
    ],
    publish: "foo",
    psubs: ["a", "b", "c"],
  },
  {
    name: "queue group",
    subs: [
      ["a", "foo", "q1"],
      ["b", "foo", "q1"],
      ["c", "foo", "q2"],
      ["d", "foo"],
    ],
    publish: "foo",
    psubs: ["d"],
    qsubs: { q1: ["a", "b"], q2: ["c"] },
  },
  {
    name: "queue group merged across wildcard nodes",
    subs: [
      ["a", "foo.bar", "q1"],
      ["b", "foo.*", "q1"],
      ["c", "foo.>", "q1"],
      ["d", "*.bar", "q2"],
      ["e", "foo.baz", "q1"],
      ["f", ">", "q3"],
    ],
    publish: "foo.bar",
    psubs: [],
    qsubs: { q1: ["a", "b", "c"], q2: ["d"], q3: ["f"] },
  },
  {
    name: "queue names are case sensitive",
    subs: [
      ["a", "foo", "Q"],
      ["b", "foo", "q"],
    ],
    publish: "foo",
    psubs: [],
    qsubs: { Q: ["a"], q: ["b"] },
  },
  {
    name: "dollar subjects",
    subs: [
      ["a", "$SHOAL.>"],
      ["b", "$SHOAL.node.*"],
      ["c", ">"],
    ],
    publish: "$SHOAL.node.n1",
    psubs: ["a", "b", "c"],
  },
  {
    name: "invalid publish subject matches nothing",
    subs: [
      ["a", ">"],
      ["b", "foo.*.bar"],
    ],
    publish: "foo..bar",
    psubs: [],
  },
  { name: "empty publish subject matches nothing", subs: [["a", ">"]], publish: "", psubs: [] },
];

const modes = [{ cache: true }, { cache: false }];

for (const mode of modes) {
  describe(`Sublist (cache: ${mode.cache})`, () => {
    describe("match table", () => {
      for (const c of cases) {
        test(c.name, () => {
          const sl = new Sublist<TSub>(mode);
          for (const [id, subject, queue] of c.subs) sl.insert(sub(id, subject, queue ?? null));
          assert.equal(sl.count(), c.subs.length);
          const want: Shape = { psubs: [...c.psubs].sort(), qsubs: c.qsubs ?? {} };
          // Twice: the second call is served from the cache when it is on.
          assert.deepEqual(shape(sl.match(c.publish)), want);
          assert.deepEqual(shape(sl.match(c.publish)), want);
          const interested = want.psubs.length > 0 || Object.keys(want.qsubs).length > 0;
          assert.equal(sl.hasInterest(c.publish), interested);
        });
      }
    });

    test("insert rejects invalid subjects and queue names", () => {
      const sl = new Sublist<TSub>(mode);
      for (const bad of ["", "foo..bar", "foo.", ".foo", "foo bar", "foo.>.bar", "\t"]) {
        assert.throws(
          () => sl.insert(sub("x", bad)),
          (e: unknown) => e instanceof SublistError && e.code === "ERR_INVALID_SUBJECT",
          JSON.stringify(bad),
        );
      }
      for (const bad of ["", "a b"]) {
        assert.throws(
          () => sl.insert(sub("x", "foo", bad)),
          (e: unknown) => e instanceof SublistError && e.code === "ERR_INVALID_QUEUE",
        );
      }
      assert.equal(sl.count(), 0);
      assert.equal(sl.nodeCount(), 0);
    });

    test("inserting the same object twice adds it once", () => {
      const sl = new Sublist<TSub>(mode);
      const a = sub("a", "foo.*");
      const q = sub("q", "foo.*", "g");
      sl.insert(a);
      sl.insert(a);
      sl.insert(q);
      sl.insert(q);
      assert.equal(sl.count(), 2);
      assert.deepEqual(shape(sl.match("foo.bar")), { psubs: ["a"], qsubs: { g: ["q"] } });
      assert.equal(sl.remove(a), true);
      assert.equal(sl.remove(a), false);
    });

    test("remove by identity", () => {
      const sl = new Sublist<TSub>(mode);
      const a = sub("a", "foo");
      const b = sub("b", "foo");
      const q1 = sub("q1", "foo", "g");
      const q2 = sub("q2", "foo", "g");
      for (const s of [a, b, q1, q2]) sl.insert(s);
      sl.match("foo");
      assert.equal(sl.remove(sub("a", "foo")), false, "an equal but different object");
      assert.equal(sl.remove(sub("zz", "nope.*")), false);
      assert.equal(sl.remove(sub("zz", "foo", "other")), false);
      assert.equal(sl.remove(sub("zz", "foo.bar")), false);
      assert.equal(sl.count(), 4);
      assert.equal(sl.remove(a), true);
      assert.deepEqual(shape(sl.match("foo")), { psubs: ["b"], qsubs: { g: ["q1", "q2"] } });
      assert.equal(sl.remove(q1), true);
      assert.deepEqual(shape(sl.match("foo")), { psubs: ["b"], qsubs: { g: ["q2"] } });
      assert.equal(sl.remove(q2), true);
      assert.deepEqual(shape(sl.match("foo")), { psubs: ["b"], qsubs: {} });
      assert.equal(sl.remove(b), true);
      assert.deepEqual(shape(sl.match("foo")), { psubs: [], qsubs: {} });
      assert.equal(sl.hasInterest("foo"), false);
      assert.equal(sl.count(), 0);
    });

    test("removing everything prunes every node", () => {
      const sl = new Sublist<TSub>(mode);
      const subjects = [
        "foo",
        "foo.bar",
        "foo.bar.baz",
        "foo.*",
        "foo.*.baz",
        "foo.>",
        "*",
        "*.>",
        ">",
        "a.b.c.d.e.f",
        "a.*.c.*.e",
      ];
      const subs: TSub[] = [];
      for (const [i, s] of subjects.entries()) {
        subs.push(sub(`p${i}`, s), sub(`p${i}b`, s), sub(`q${i}`, s, "g"), sub(`r${i}`, s, "h"));
      }
      for (const s of subs) sl.insert(s);
      assert.equal(sl.count(), subs.length);
      assert.ok(sl.nodeCount() > 0);
      assert.equal(sl.all().length, subs.length);
      sl.match("foo.bar.baz");
      // Remove in an order different from insertion.
      for (let i = subs.length - 1; i >= 0; i -= 2) assert.equal(sl.remove(subs[i]), true);
      for (let i = subs.length - 2; i >= 0; i -= 2) assert.equal(sl.remove(subs[i]), true);
      assert.equal(sl.count(), 0);
      assert.equal(sl.nodeCount(), 0);
      assert.deepEqual(sl.all(), []);
      assert.deepEqual(shape(sl.match("foo.bar.baz")), { psubs: [], qsubs: {} });
    });

    test("pruning keeps shared prefixes that still hold subscriptions", () => {
      const sl = new Sublist<TSub>(mode);
      const long = sub("long", "a.b.c.d");
      const short = sub("short", "a.b");
      sl.insert(long);
      sl.insert(short);
      assert.equal(sl.nodeCount(), 4);
      sl.remove(long);
      assert.equal(sl.nodeCount(), 2);
      assert.deepEqual(shape(sl.match("a.b")), { psubs: ["short"], qsubs: {} });
      sl.insert(long);
      sl.remove(short);
      assert.equal(sl.nodeCount(), 4);
      assert.deepEqual(shape(sl.match("a.b.c.d")), { psubs: ["long"], qsubs: {} });
      sl.remove(long);
      assert.equal(sl.nodeCount(), 0);
    });

    test("churn does not grow the trie", () => {
      const sl = new Sublist<TSub>(mode);
      const keep = sub("keep", "_INBOX.>");
      sl.insert(keep);
      const base = sl.nodeCount();
      for (let i = 0; i < 2000; i++) {
        const s = sub(`r${i}`, `_INBOX.${i}.reply`);
        sl.insert(s);
        assert.equal(sl.match(`_INBOX.${i}.reply`).psubs.length, 2);
        sl.remove(s);
      }
      assert.equal(sl.nodeCount(), base);
      assert.equal(sl.count(), 1);
    });

    test("removeBatch removes all given and ignores absent ones", () => {
      const sl = new Sublist<TSub>(mode);
      const mine = [sub("a", "foo"), sub("b", "foo.*"), sub("c", "foo.>", "q"), sub("d", ">")];
      const other = sub("o", "foo");
      for (const s of mine) sl.insert(s);
      sl.insert(other);
      const before = sl.match("foo.bar");
      assert.deepEqual(shape(before), { psubs: ["b", "d"], qsubs: { q: ["c"] } });
      sl.removeBatch([...mine, sub("zz", "nope")]);
      assert.equal(sl.count(), 1);
      assert.deepEqual(shape(sl.match("foo.bar")), { psubs: [], qsubs: {} });
      assert.deepEqual(shape(sl.match("foo")), { psubs: ["o"], qsubs: {} });
      sl.removeBatch([]);
      sl.removeBatch(new Set([other]));
      assert.equal(sl.count(), 0);
      assert.equal(sl.nodeCount(), 0);
    });

    test("a result is updated by later inserts and removes, and old results are unchanged", () => {
      const sl = new Sublist<TSub>(mode);
      const lit = sub("lit", "foo.bar");
      sl.insert(lit);
      const r1 = deepFreeze(sl.match("foo.bar"));
      assert.deepEqual(shape(r1), { psubs: ["lit"], qsubs: {} });

      const steps: [string, () => void, Shape][] = [];
      const pwc = sub("pwc", "foo.*");
      const fwc = sub("fwc", ">");
      const q1 = sub("q1", "*.bar", "g");
      const q2 = sub("q2", "foo.bar", "g");
      const q3 = sub("q3", "foo.>", "h");
      const lit2 = sub("lit2", "foo.bar");
      const other = sub("other", "foo.baz");
      const otherQ = sub("otherQ", "foo.bar.>", "g");
      steps.push(
        ["insert pwc", () => sl.insert(pwc), { psubs: ["lit", "pwc"], qsubs: {} }],
        ["insert fwc", () => sl.insert(fwc), { psubs: ["fwc", "lit", "pwc"], qsubs: {} }],
        [
          "insert non-matching",
          () => sl.insert(other),
          { psubs: ["fwc", "lit", "pwc"], qsubs: {} },
        ],
        [
          "insert non-matching queue",
          () => sl.insert(otherQ),
          { psubs: ["fwc", "lit", "pwc"], qsubs: {} },
        ],
        ["insert q1", () => sl.insert(q1), { psubs: ["fwc", "lit", "pwc"], qsubs: { g: ["q1"] } }],
        [
          "insert q2",
          () => sl.insert(q2),
          { psubs: ["fwc", "lit", "pwc"], qsubs: { g: ["q1", "q2"] } },
        ],
        [
          "insert q3",
          () => sl.insert(q3),
          { psubs: ["fwc", "lit", "pwc"], qsubs: { g: ["q1", "q2"], h: ["q3"] } },
        ],
        [
          "insert lit2",
          () => sl.insert(lit2),
          { psubs: ["fwc", "lit", "lit2", "pwc"], qsubs: { g: ["q1", "q2"], h: ["q3"] } },
        ],
        [
          "remove pwc",
          () => sl.remove(pwc),
          { psubs: ["fwc", "lit", "lit2"], qsubs: { g: ["q1", "q2"], h: ["q3"] } },
        ],
        [
          "remove non-matching",
          () => sl.remove(other),
          { psubs: ["fwc", "lit", "lit2"], qsubs: { g: ["q1", "q2"], h: ["q3"] } },
        ],
        [
          "remove q1",
          () => sl.remove(q1),
          { psubs: ["fwc", "lit", "lit2"], qsubs: { g: ["q2"], h: ["q3"] } },
        ],
        ["remove q3", () => sl.remove(q3), { psubs: ["fwc", "lit", "lit2"], qsubs: { g: ["q2"] } }],
        ["remove lit", () => sl.remove(lit), { psubs: ["fwc", "lit2"], qsubs: { g: ["q2"] } }],
        ["remove fwc", () => sl.remove(fwc), { psubs: ["lit2"], qsubs: { g: ["q2"] } }],
        ["remove q2", () => sl.remove(q2), { psubs: ["lit2"], qsubs: {} }],
        ["remove lit2", () => sl.remove(lit2), { psubs: [], qsubs: {} }],
      );
      const held: [SublistResult<TSub>, Shape][] = [[r1, shape(r1)]];
      for (const [name, step, want] of steps) {
        step();
        const r = deepFreeze(sl.match("foo.bar"));
        assert.deepEqual(shape(r), want, name);
        assert.equal(
          sl.hasInterest("foo.bar"),
          want.psubs.length + Object.keys(want.qsubs).length > 0,
        );
        held.push([r, shape(r)]);
        // Every result handed out earlier still reads as it did.
        for (const [old, was] of held) assert.deepEqual(shape(old), was, `after ${name}`);
      }
    });

    test("all() lists every subscription", () => {
      const sl = new Sublist<TSub>(mode);
      const subs = [sub("a", "foo"), sub("b", "foo"), sub("c", "*.x", "q"), sub("d", ">")];
      for (const s of subs) sl.insert(s);
      assert.deepEqual(
        sl
          .all()
          .map((s) => s.id)
          .sort(),
        ["a", "b", "c", "d"],
      );
    });

    test("stats count inserts, removes and matches", () => {
      const sl = new Sublist<TSub>(mode);
      const a = sub("a", "foo");
      const b = sub("b", "foo.*");
      const c = sub("c", "foo.*", "q");
      for (const s of [a, b, c]) sl.insert(s);
      sl.remove(a);
      sl.match("foo.bar");
      sl.match("foo.bar");
      sl.match("foo.baz");
      sl.match("nothing");
      const st = sl.stats();
      assert.equal(st.numSubs, 2);
      assert.equal(st.numInserts, 3);
      assert.equal(st.numRemoves, 1);
      assert.equal(st.numMatches, 4);
      if (mode.cache) {
        assert.equal(st.numCache, 3);
        assert.equal(st.cacheHitRate, 1 / 4);
        assert.equal(st.maxFanout, 2); // one plain sub + one queue group
        assert.equal(st.avgFanout, (2 + 2 + 0) / 3);
      } else {
        assert.equal(st.numCache, 0);
        assert.equal(st.cacheHitRate, 0);
        assert.equal(st.maxFanout, 0);
        assert.equal(st.avgFanout, 0);
      }
    });

    test("random operations agree with a brute-force matcher", () => {
      randomizedCheck(mode.cache);
      randomizedCheck(mode.cache, 8);
    });
  });
}

describe("Sublist cache", () => {
  test("a cache hit returns the same result object", () => {
    const sl = new Sublist<TSub>({ cache: true });
    sl.insert(sub("a", "foo.*"));
    const r1 = sl.match("foo.bar");
    const r2 = sl.match("foo.bar");
    assert.equal(r1, r2);
    assert.equal(sl.match("foo.baz"), sl.match("foo.baz"));
    const none1 = sl.match("nope");
    assert.equal(none1, sl.match("nope"));
    // A subject string built at run time hits the same entry.
    assert.equal(sl.match(["foo", "bar"].join(".")), r1);
    assert.equal(sl.stats().cacheHitRate, 4 / 7);
  });

  test("without the cache, results are still correct and nothing is cached", () => {
    const sl = new Sublist<TSub>({ cache: false });
    sl.insert(sub("a", "foo.*"));
    sl.match("foo.bar");
    sl.match("foo.bar");
    assert.equal(sl.stats().numCache, 0);
  });

  test("cacheSize is respected after many distinct subjects", () => {
    const sl = new Sublist<TSub>({ cache: true, cacheSize: 16 });
    sl.insert(sub("a", "s.*"));
    sl.insert(sub("b", ">"));
    for (let i = 0; i < 1000; i++) {
      assert.equal(sl.match(`s.${i}`).psubs.length, 2);
      assert.ok(sl.stats().numCache <= 16);
    }
    assert.ok(sl.stats().numCache >= 12, "sweeps down to about 3/4, not to empty");
    // Entries that survived the sweep are still correct.
    sl.insert(sub("c", "s.999"));
    assert.equal(sl.match("s.999").psubs.length, 3);
    assert.equal(sl.match("s.998").psubs.length, 2);
  });

  test("default cacheSize is 1024", () => {
    const sl = new Sublist<TSub>();
    sl.insert(sub("a", ">"));
    for (let i = 0; i < 3000; i++) sl.match(`x.${i}`);
    const n = sl.stats().numCache;
    assert.ok(n <= 1024 && n >= 768, `numCache ${n}`);
  });

  test("large cached fan-outs stay correct when patched", () => {
    const sl = new Sublist<TSub>({ cache: true });
    const ids: string[] = [];
    const qids: string[] = [];
    const check = (): void => {
      const r = shape(sl.match("big"));
      assert.deepEqual(r.psubs, ids.slice().sort());
      assert.deepEqual(r.qsubs, qids.length === 0 ? {} : { g: qids.slice().sort() });
    };
    // Plain subscribers first, then queue members, matching as they grow.
    for (let i = 0; i < 600; i++) {
      sl.insert(sub(`p${i}`, i % 2 === 0 ? "big" : "*"));
      ids.push(`p${i}`);
      if (i % 50 === 0) check();
    }
    for (let i = 0; i < 600; i++) {
      sl.insert(sub(`q${i}`, i % 2 === 0 ? "big" : ">", "g"));
      qids.push(`q${i}`);
      if (i % 50 === 0) check();
    }
    check();
  });

  test("invalid cacheSize is rejected", () => {
    assert.throws(() => new Sublist<TSub>({ cacheSize: 0 }), SublistError);
    assert.throws(() => new Sublist<TSub>({ cacheSize: 1.5 }), SublistError);
  });
});

function bruteForce(subs: Iterable<TSub>, subject: string): Shape {
  const psubs: string[] = [];
  const qsubs: Record<string, string[]> = {};
  for (const s of subs) {
    if (!subjectMatchesPattern(subject, s.subject)) continue;
    if (s.queue === null) psubs.push(s.id);
    else (qsubs[s.queue] ??= []).push(s.id);
  }
  for (const k of Object.keys(qsubs)) qsubs[k].sort();
  return { psubs: psubs.sort(), qsubs };
}

const LITERALS = ["a", "b", "c", "foo", "bar"];
const QUEUES = ["q1", "q2", "q3"];
const literalArb = fc
  .array(fc.constantFrom(...LITERALS), { minLength: 1, maxLength: 4 })
  .map((t) => t.join("."));
/** 1 to 4 tokens, a third of them `*`; the last is `>` one time in seven. */
const patternArb = fc
  .tuple(
    fc.array(
      fc.oneof(
        { weight: 35, arbitrary: fc.constant("*") },
        { weight: 65, arbitrary: fc.constantFrom(...LITERALS) },
      ),
      { minLength: 1, maxLength: 4 },
    ),
    fc.integer({ min: 0, max: 99 }),
  )
  .map(([toks, x]) => (x < 15 ? [...toks.slice(0, -1), ">"] : toks).join("."));
/** An operation; `pick` and `every`/`offset` choose among the live subscriptions at that time. */
const sublistOpArb = fc.oneof(
  {
    weight: 30,
    arbitrary: fc.record({
      op: fc.constant("insert" as const),
      pattern: patternArb,
      queue: fc.oneof(
        { weight: 7, arbitrary: fc.constant(null) },
        { weight: 3, arbitrary: fc.constantFrom(...QUEUES) },
      ),
    }),
  },
  { weight: 20, arbitrary: fc.record({ op: fc.constant("remove" as const), pick: fc.nat() }) },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant("removeBatch" as const),
      every: fc.integer({ min: 2, max: 8 }),
      offset: fc.nat({ max: 7 }),
    }),
  },
  {
    weight: 48,
    arbitrary: fc.record({
      op: fc.constant("match" as const),
      subject: literalArb,
      hold: fc.oneof({ weight: 19, arbitrary: fc.constant(false) }, fc.constant(true)),
    }),
  },
);

const RUNS = 8;
const STEPS = 1000;

/**
 * RUNS random sequences of STEPS inserts, removals, batch removals and matches: every match and
 * hasInterest agrees with a brute-force matcher, results held by callers never change, and
 * removing everything leaves an empty trie.
 */
function randomizedCheck(cache: boolean, cacheSize = 1024): void {
  fc.assert(
    fc.property(steps(sublistOpArb, STEPS), (ops) => {
      const sl = new Sublist<TSub>({ cache, cacheSize });
      const live = new Set<TSub>();
      const held: [SublistResult<TSub>, Shape][] = [];
      let next = 0;
      for (const [step, o] of ops.entries()) {
        if (o === null) continue;
        if (o.op === "insert") {
          const s = sub(`s${next++}`, o.pattern, o.queue);
          sl.insert(s);
          live.add(s);
        } else if (o.op === "remove") {
          const victim = [...live][o.pick % Math.max(1, live.size)];
          if (victim !== undefined) {
            assert.equal(sl.remove(victim), true, `step ${step}: remove ${victim.subject}`);
            live.delete(victim);
          }
        } else if (o.op === "removeBatch") {
          const batch = [...live].filter((_, i) => (i + o.offset) % o.every === 0);
          sl.removeBatch(batch);
          for (const s of batch) live.delete(s);
        } else {
          const r = deepFreeze(sl.match(o.subject));
          const want = bruteForce(live, o.subject);
          assert.deepEqual(shape(r), want, `step ${step}: match ${o.subject}`);
          assert.equal(
            sl.hasInterest(o.subject),
            want.psubs.length + Object.keys(want.qsubs).length > 0,
            `step ${step}: hasInterest ${o.subject}`,
          );
          if (o.hold) held.push([r, want]);
        }
        assert.equal(sl.count(), live.size, `step ${step}: count`);
      }
      for (const [r, was] of held) assert.deepEqual(shape(r), was, "held results never change");
      sl.removeBatch([...live]);
      assert.equal(sl.count(), 0);
      assert.equal(sl.nodeCount(), 0);
    }),
    propertyParams(RUNS),
  );
}
