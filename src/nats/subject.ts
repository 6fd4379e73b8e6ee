// Subject helpers for the message server: validation of subjects and queue
// names, and wildcard matching for permissions.
//
// Semantics follow nats-server. A subject is one or more non-empty tokens
// separated by '.', with no whitespace. '*' (exactly one token) and '>' (one
// or more trailing tokens) are wildcards only when they are a whole token, and
// '>' only as the last token; "foo.*x" is the literal token "*x". Publish
// subjects must be literal (no wildcard tokens).
//
// These run for every PUB and SUB, so they scan character codes in place and
// never split or slice the subject.

const DOT = 0x2e; // '.'
const STAR = 0x2a; // '*'
const GT = 0x3e; // '>'

function isWhitespace(c: number): boolean {
  // The same set nats-server rejects: space, \t, \n, \f, \r.
  return c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0c || c === 0x0d;
}

/** Validates `s` as a subject; with `literal` set, wildcard tokens are rejected too. */
function checkSubject(s: string, literal: boolean): boolean {
  const len = s.length;
  if (len === 0) return false;
  let start = 0;
  let sawFwc = false;
  for (let i = 0; i <= len; i++) {
    const c = i < len ? s.charCodeAt(i) : DOT;
    if (c === DOT) {
      const tlen = i - start;
      // Empty token ("foo..bar", ".foo", "foo.") or anything after '>'.
      if (tlen === 0 || sawFwc) return false;
      if (tlen === 1) {
        const t = s.charCodeAt(start);
        if (t === GT) {
          if (literal) return false;
          sawFwc = true;
        } else if (t === STAR && literal) {
          return false;
        }
      }
      start = i + 1;
    } else if (isWhitespace(c)) {
      return false;
    }
  }
  return true;
}

/** A subject usable for SUB: non-empty tokens, no whitespace, '>' only as the last token. */
export function isValidSubject(s: string): boolean {
  return checkSubject(s, false);
}

/** A subject usable for PUB: valid and without wildcard tokens. */
export function isValidLiteralSubject(s: string): boolean {
  return checkSubject(s, true);
}

/** A queue group name: non-empty, no whitespace. */
export function isValidQueueName(s: string): boolean {
  const len = s.length;
  if (len === 0) return false;
  for (let i = 0; i < len; i++) {
    if (isWhitespace(s.charCodeAt(i))) return false;
  }
  return true;
}

/** True if some token of `s` is exactly '*' or '>'. */
export function subjectHasWildcard(s: string): boolean {
  const len = s.length;
  for (let i = 0; i < len; i++) {
    const c = s.charCodeAt(i);
    if (
      (c === STAR || c === GT) &&
      (i === 0 || s.charCodeAt(i - 1) === DOT) &&
      (i + 1 === len || s.charCodeAt(i + 1) === DOT)
    ) {
      return true;
    }
  }
  return false;
}

function sameToken(a: string, ai: number, b: string, bi: number, len: number): boolean {
  for (let k = 0; k < len; k++) {
    if (a.charCodeAt(ai + k) !== b.charCodeAt(bi + k)) return false;
  }
  return true;
}

function tokenEnd(s: string, from: number): number {
  const e = s.indexOf(".", from);
  return e < 0 ? s.length : e;
}

/**
 * Whether the literal `subject` matches `pattern`, where '*' in the pattern
 * matches one token and a trailing '>' matches one or more tokens.
 */
export function subjectMatchesPattern(subject: string, pattern: string): boolean {
  const slen = subject.length;
  const plen = pattern.length;
  if (slen === 0 || plen === 0) return false;
  let si = 0;
  let pi = 0;
  while (true) {
    const se = tokenEnd(subject, si);
    const pe = tokenEnd(pattern, pi);
    const stl = se - si;
    const ptl = pe - pi;
    if (stl === 0) return false;
    if (ptl === 1 && pattern.charCodeAt(pi) === GT) return true;
    if (!(ptl === 1 && pattern.charCodeAt(pi) === STAR)) {
      if (stl !== ptl || !sameToken(subject, si, pattern, pi, ptl)) return false;
    }
    const sDone = se === slen;
    const pDone = pe === plen;
    if (sDone || pDone) return sDone && pDone;
    si = se + 1;
    pi = pe + 1;
  }
}

/**
 * Whether every subject matched by `pattern` is also matched by `of` (both
 * may hold wildcards). nats-server uses this to allow a wildcard SUB under a
 * subscribe permission: "foo.*" is a subset of "foo.>" and of "*.*", but
 * "foo.>" is not a subset of "foo.*".
 */
export function patternIsSubsetOf(pattern: string, of: string): boolean {
  const plen = pattern.length;
  const olen = of.length;
  if (plen === 0 || olen === 0) return false;
  let pi = 0;
  let oi = 0;
  while (true) {
    const pe = tokenEnd(pattern, pi);
    const oe = tokenEnd(of, oi);
    const ptl = pe - pi;
    const otl = oe - oi;
    if (ptl === 0 || otl === 0) return false;
    const oc = of.charCodeAt(oi);
    const pc = pattern.charCodeAt(pi);
    if (otl === 1 && oc === GT) return true;
    if (ptl === 1 && pc === GT) return false;
    const oStar = otl === 1 && oc === STAR;
    if (ptl === 1 && pc === STAR) {
      if (!oStar) return false;
    } else if (!oStar && (ptl !== otl || !sameToken(pattern, pi, of, oi, ptl))) {
      return false;
    }
    const pDone = pe === plen;
    const oDone = oe === olen;
    if (pDone || oDone) return pDone && oDone;
    pi = pe + 1;
    oi = oe + 1;
  }
}

/** Whether some literal subject matches both `a` and `b` (both may hold wildcards). */
export function subjectsOverlap(a: string, b: string): boolean {
  const at = a.split(".");
  const bt = b.split(".");
  for (let i = 0; i < at.length && i < bt.length; i++) {
    const x = at[i]!;
    const y = bt[i]!;
    if (x === ">" || y === ">") return true;
    if (x !== "*" && y !== "*" && x !== y) return false;
  }
  return at.length === bt.length;
}
