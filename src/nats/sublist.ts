// The subject index: which subscriptions does a published subject reach?
//
// As in nats-server, subscriptions live in a trie of levels keyed by token.
// Each level has literal children plus two special ones, `pwc` ('*') and
// `fwc` ('>'); each node holds its plain subscriptions and its queue
// subscriptions grouped by queue name. `match` walks the literal, '*' and '>'
// branches for the subject's tokens and collects a result.
//
// Results are cached by literal subject in a bounded map. A cache hit returns
// the very same result object, so the per-message path allocates nothing.
// Invariant: a result handed out (or cached) is never mutated again; insert
// patches cached results copy-on-write and remove drops the cached results
// the subscription appeared in. Callers must treat results as read-only.
// When the cache grows past `cacheSize` it is swept down to 3/4 of that,
// oldest entries first. Empty nodes are pruned on remove, so churn does not
// grow memory.

import {
  isValidQueueName,
  isValidSubject,
  subjectHasWildcard,
  subjectMatchesPattern,
} from "./subject.js";

export interface SubLike {
  readonly subject: string;
  readonly queue: string | null;
}

export interface SublistResult<T extends SubLike> {
  /** Plain subscriptions that match. */
  readonly psubs: readonly T[];
  /** One array per matching queue group name, holding that group's matching members. */
  readonly qsubs: readonly (readonly T[])[];
}

export interface SublistOptions {
  /** Cache match results by subject (default true). */
  cache?: boolean;
  /** Maximum number of cached subjects (default 1024). */
  cacheSize?: number;
}

/** Mirrors nats-server's /subsz fields. */
export interface SublistStats {
  numSubs: number;
  numCache: number;
  numInserts: number;
  numRemoves: number;
  numMatches: number;
  cacheHitRate: number;
  maxFanout: number;
  avgFanout: number;
}

export class SublistError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "SublistError";
    this.code = code;
  }
}

export const DEFAULT_CACHE_SIZE = 1024;

/** Past this many elements, insert drops a cached result instead of copying it. */
const PATCH_LIMIT = 256;

class Node<T extends SubLike> {
  next: Level<T> | null = null;
  psubs: Set<T> | null = null;
  qsubs: Map<string, Set<T>> | null = null;
}

class Level<T extends SubLike> {
  readonly nodes = new Map<string, Node<T>>();
  pwc: Node<T> | null = null;
  fwc: Node<T> | null = null;

  isEmpty(): boolean {
    return this.nodes.size === 0 && this.pwc === null && this.fwc === null;
  }
}

/** Internal mutable form; mutated only while `match` builds it, before anyone sees it. */
class Result<T extends SubLike> implements SublistResult<T> {
  constructor(
    readonly psubs: T[],
    readonly qsubs: T[][],
  ) {}
}

/** Shared result for "no interest"; never mutated. */
const EMPTY: Result<never> = new Result<never>([], []);

function isEmptyResult(r: SublistResult<SubLike>): boolean {
  return r.psubs.length === 0 && r.qsubs.length === 0;
}

function findQueueSlot<T extends SubLike>(qsubs: readonly (readonly T[])[], queue: string): number {
  for (let i = 0; i < qsubs.length; i++) {
    if (qsubs[i][0].queue === queue) return i;
  }
  return -1;
}

/** Appends a node's subscriptions to a result under construction. */
function addNodeToResult<T extends SubLike>(n: Node<T>, r: Result<T>): void {
  if (n.psubs !== null) {
    for (const s of n.psubs) r.psubs.push(s);
  }
  if (n.qsubs !== null) {
    for (const [queue, members] of n.qsubs) {
      const i = findQueueSlot(r.qsubs, queue);
      const group = i >= 0 ? r.qsubs[i] : [];
      if (i < 0) r.qsubs.push(group);
      for (const s of members) group.push(s);
    }
  }
}

/**
 * A copy of `r` with `sub` added, sharing whatever did not change; null when
 * the copy would be large (the caller drops the cache entry instead).
 */
function withSub<T extends SubLike>(r: Result<T>, sub: T): Result<T> | null {
  const queue = sub.queue;
  if (queue === null) {
    if (r.psubs.length >= PATCH_LIMIT) return null;
    const psubs = r.psubs.slice();
    psubs.push(sub);
    return new Result(psubs, r.qsubs);
  }
  const i = findQueueSlot(r.qsubs, queue);
  const qsubs = r.qsubs.slice();
  if (i < 0) {
    qsubs.push([sub]);
  } else {
    if (qsubs[i].length >= PATCH_LIMIT) return null;
    const group = qsubs[i].slice();
    group.push(sub);
    qsubs[i] = group;
  }
  return new Result(r.psubs, qsubs);
}

function nodeHasSubs(n: Node<SubLike>): boolean {
  return n.psubs !== null || n.qsubs !== null;
}

/** Takes `sub` out of node `n`'s own subscriptions; false if it was not there. */
function removeFromNode<T extends SubLike>(n: Node<T>, sub: T): boolean {
  const queue = sub.queue;
  if (queue === null) {
    const set = n.psubs;
    if (set === null || !set.delete(sub)) return false;
    if (set.size === 0) n.psubs = null;
    return true;
  }
  const groups = n.qsubs;
  const set = groups === null ? undefined : groups.get(queue);
  if (groups === null || set === undefined || !set.delete(sub)) return false;
  if (set.size === 0) {
    groups.delete(queue);
    if (groups.size === 0) n.qsubs = null;
  }
  return true;
}

export class Sublist<T extends SubLike> {
  private readonly root = new Level<T>();
  private cache: Map<string, Result<T>> | null;
  private readonly cacheSize: number;
  /** Scratch token array for `match`; valid for the first `ntoks` entries. */
  private readonly toks: string[] = [];

  private numSubs = 0;
  private numInserts = 0;
  private numRemoves = 0;
  private numMatches = 0;
  private cacheHits = 0;

  constructor(opts: SublistOptions = {}) {
    const size = opts.cacheSize ?? DEFAULT_CACHE_SIZE;
    if (!Number.isInteger(size) || size < 1) {
      throw new SublistError("ERR_INVALID_OPTION", `invalid cacheSize ${size}`);
    }
    this.cacheSize = size;
    this.cache = opts.cache === false ? null : new Map();
  }

  /** Adds a subscription. Inserting an object already present is a no-op. */
  insert(sub: T): void {
    const subject = sub.subject;
    if (!isValidSubject(subject)) {
      throw new SublistError("ERR_INVALID_SUBJECT", `invalid subject "${subject}"`);
    }
    const queue = sub.queue;
    if (queue !== null && !isValidQueueName(queue)) {
      throw new SublistError("ERR_INVALID_QUEUE", `invalid queue group "${queue}"`);
    }

    let l = this.root;
    let n: Node<T> | null = null;
    let start = 0;
    while (true) {
      let end = subject.indexOf(".", start);
      if (end < 0) end = subject.length;
      const t = subject.substring(start, end);
      if (t === "*") {
        n = l.pwc ??= new Node<T>();
      } else if (t === ">") {
        n = l.fwc ??= new Node<T>();
      } else {
        n = l.nodes.get(t) ?? null;
        if (n === null) {
          n = new Node<T>();
          l.nodes.set(t, n);
        }
      }
      if (end === subject.length) break;
      l = n.next ??= new Level<T>();
      start = end + 1;
    }

    if (queue === null) {
      const set = (n.psubs ??= new Set());
      if (set.has(sub)) return;
      set.add(sub);
    } else {
      const groups = (n.qsubs ??= new Map());
      let set = groups.get(queue);
      if (set === undefined) {
        set = new Set();
        groups.set(queue, set);
      } else if (set.has(sub)) {
        return;
      }
      set.add(sub);
    }
    this.numSubs++;
    this.numInserts++;
    if (this.cache !== null) this.addToCache(this.cache, sub);
  }

  /** Removes a subscription (by identity). Returns false if it was not present. */
  remove(sub: T): boolean {
    const subject = sub.subject;
    const ntoks = this.tokenize(subject);
    if (ntoks === 0 || !this.removeFrom(this.root, 0, ntoks, sub)) return false;
    this.numSubs--;
    this.numRemoves++;
    if (this.cache !== null) this.removeFromCache(this.cache, subject);
    return true;
  }

  /** Removes many subscriptions (e.g. when a connection closes); absent ones are ignored. */
  removeBatch(subs: Iterable<T>): void {
    // As nats-server does: switch the cache off for the batch and start it
    // afresh, rather than scanning it once per wildcard subscription.
    const cache = this.cache;
    this.cache = null;
    let removed = false;
    try {
      for (const s of subs) {
        if (this.remove(s)) removed = true;
      }
    } finally {
      if (cache !== null && removed) cache.clear();
      this.cache = cache;
    }
  }

  /** The subscriptions a message published on the literal `subject` reaches. */
  match(subject: string): SublistResult<T> {
    this.numMatches++;
    const cache = this.cache;
    if (cache !== null) {
      const hit = cache.get(subject);
      if (hit !== undefined) {
        this.cacheHits++;
        return hit;
      }
    }
    const ntoks = this.tokenize(subject);
    if (ntoks === 0) return EMPTY;
    let r = new Result<T>([], []);
    this.matchLevel(this.root, 0, ntoks, r);
    if (isEmptyResult(r)) r = EMPTY;
    if (cache !== null) {
      cache.set(subject, r);
      if (cache.size > this.cacheSize) this.sweepCache(cache);
    }
    return r;
  }

  /** Whether any subscription matches the literal `subject`; does not fill the cache. */
  hasInterest(subject: string): boolean {
    if (this.cache !== null) {
      const hit = this.cache.get(subject);
      if (hit !== undefined) return !isEmptyResult(hit);
    }
    const ntoks = this.tokenize(subject);
    return ntoks > 0 && this.interestLevel(this.root, 0, ntoks);
  }

  /** Number of subscriptions. */
  count(): number {
    return this.numSubs;
  }

  /** Every subscription, in no particular order. */
  all(): T[] {
    const out: T[] = [];
    collectLevel(this.root, out);
    return out;
  }

  /** Number of trie nodes; for tests that check pruning. */
  nodeCount(): number {
    return countLevel(this.root);
  }

  stats(): SublistStats {
    let numCache = 0;
    let maxFanout = 0;
    let avgFanout = 0;
    if (this.cache !== null && this.cache.size > 0) {
      let total = 0;
      for (const r of this.cache.values()) {
        const fanout = r.psubs.length + r.qsubs.length;
        total += fanout;
        if (fanout > maxFanout) maxFanout = fanout;
      }
      numCache = this.cache.size;
      avgFanout = total / numCache;
    }
    return {
      numSubs: this.numSubs,
      numCache,
      numInserts: this.numInserts,
      numRemoves: this.numRemoves,
      numMatches: this.numMatches,
      cacheHitRate: this.numMatches === 0 ? 0 : this.cacheHits / this.numMatches,
      maxFanout,
      avgFanout,
    };
  }

  /**
   * Splits `subject` into `this.toks` and returns the token count, or 0 when
   * a token is empty (such a subject matches nothing and is not cached).
   */
  private tokenize(subject: string): number {
    const toks = this.toks;
    const len = subject.length;
    let n = 0;
    let start = 0;
    for (let i = 0; i <= len; i++) {
      if (i === len || subject.charCodeAt(i) === 0x2e) {
        if (i === start) return 0;
        toks[n++] = subject.substring(start, i);
        start = i + 1;
      }
    }
    return n;
  }

  /** Collects into `r` every node matching tokens i..n-1 below level `l`. */
  private matchLevel(l: Level<T> | null, i: number, n: number, r: Result<T>): void {
    const toks = this.toks;
    let pwc: Node<T> | null = null;
    let node: Node<T> | null = null;
    for (; i < n; i++) {
      if (l === null) return;
      if (l.fwc !== null) addNodeToResult(l.fwc, r);
      pwc = l.pwc;
      if (pwc !== null) this.matchLevel(pwc.next, i + 1, n, r);
      node = l.nodes.get(toks[i]) ?? null;
      l = node === null ? null : node.next;
    }
    if (node !== null) addNodeToResult(node, r);
    if (pwc !== null) addNodeToResult(pwc, r);
  }

  /** Like matchLevel, but stops at the first node holding a subscription. */
  private interestLevel(l: Level<T> | null, i: number, n: number): boolean {
    const toks = this.toks;
    let pwc: Node<T> | null = null;
    let node: Node<T> | null = null;
    for (; i < n; i++) {
      if (l === null) return false;
      if (l.fwc !== null && nodeHasSubs(l.fwc)) return true;
      pwc = l.pwc;
      if (pwc !== null && this.interestLevel(pwc.next, i + 1, n)) return true;
      node = l.nodes.get(toks[i]) ?? null;
      l = node === null ? null : node.next;
    }
    return (node !== null && nodeHasSubs(node)) || (pwc !== null && nodeHasSubs(pwc));
  }

  /**
   * Removes `sub` from the node for tokens i..n-1 below level `l`, pruning
   * nodes and levels left empty on the way back up. Returns false if absent.
   */
  private removeFrom(l: Level<T>, i: number, n: number, sub: T): boolean {
    const t = this.toks[i];
    const node = t === "*" ? l.pwc : t === ">" ? l.fwc : (l.nodes.get(t) ?? null);
    if (node === null) return false;
    if (i + 1 < n) {
      const next = node.next;
      if (next === null || !this.removeFrom(next, i + 1, n, sub)) return false;
      if (next.isEmpty()) node.next = null;
    } else if (!removeFromNode(node, sub)) {
      return false;
    }
    if (node.next === null && !nodeHasSubs(node)) {
      if (t === "*") l.pwc = null;
      else if (t === ">") l.fwc = null;
      else l.nodes.delete(t);
    }
    return true;
  }

  /** Patches cached results for subjects that the new `sub` matches. */
  private addToCache(cache: Map<string, Result<T>>, sub: T): void {
    const subject = sub.subject;
    if (!subjectHasWildcard(subject)) {
      const r = cache.get(subject);
      if (r !== undefined) this.patchEntry(cache, subject, r, sub);
      return;
    }
    for (const [key, r] of cache) {
      if (subjectMatchesPattern(key, subject)) this.patchEntry(cache, key, r, sub);
    }
  }

  private patchEntry(cache: Map<string, Result<T>>, key: string, r: Result<T>, sub: T): void {
    const patched = withSub(r, sub);
    if (patched === null) cache.delete(key);
    else cache.set(key, patched);
  }

  /** Drops cached results for subjects that the removed subscription's `subject` matches. */
  private removeFromCache(cache: Map<string, Result<T>>, subject: string): void {
    if (!subjectHasWildcard(subject)) {
      cache.delete(subject);
      return;
    }
    for (const key of cache.keys()) {
      if (subjectMatchesPattern(key, subject)) cache.delete(key);
    }
  }

  /** Deletes the oldest entries until the cache is 3/4 of its bound. */
  private sweepCache(cache: Map<string, Result<T>>): void {
    const target = Math.floor((this.cacheSize * 3) / 4);
    for (const key of cache.keys()) {
      if (cache.size <= target) break;
      cache.delete(key);
    }
  }
}

function collectNode<T extends SubLike>(n: Node<T>, out: T[]): void {
  if (n.psubs !== null) for (const s of n.psubs) out.push(s);
  if (n.qsubs !== null) {
    for (const members of n.qsubs.values()) for (const s of members) out.push(s);
  }
  if (n.next !== null) collectLevel(n.next, out);
}

function collectLevel<T extends SubLike>(l: Level<T>, out: T[]): void {
  for (const n of l.nodes.values()) collectNode(n, out);
  if (l.pwc !== null) collectNode(l.pwc, out);
  if (l.fwc !== null) collectNode(l.fwc, out);
}

function countLevel(l: Level<SubLike>): number {
  let c = 0;
  for (const n of l.nodes.values()) c += 1 + (n.next === null ? 0 : countLevel(n.next));
  if (l.pwc !== null) c += 1 + (l.pwc.next === null ? 0 : countLevel(l.pwc.next));
  if (l.fwc !== null) c += 1 + (l.fwc.next === null ? 0 : countLevel(l.fwc.next));
  return c;
}
