// `shoal swarm ca --rotate`'s progress as Docker prints it: two aligned bars of 50 columns with
// "current/total nodes", and a rotation done only when the old root is gone and every node has
// a certificate from the new root and trusts it alone.

import { test } from "node:test";
import assert from "node:assert/strict";
import { converged, progressBar, rotationLines } from "../../src/cli/swarm-ca.js";
import type { SwarmCa } from "../../src/api/http.js";

test("progress bars: empty, part way, full", () => {
  assert.equal(progressBar(0, 2), `[>${" ".repeat(49)}] 0/2 nodes`);
  assert.equal(progressBar(1, 2), `[${"=".repeat(25)}>${" ".repeat(24)}] 1/2 nodes`);
  assert.equal(progressBar(2, 2), `[${"=".repeat(50)}] 2/2 nodes`);
  assert.equal(progressBar(0, 0), `[>${" ".repeat(49)}] 0/0 nodes`);
});

test("the two lines line up, and the rotation converges only when all has moved", () => {
  const ca: SwarmCa = {
    certPem: "",
    digest: "d",
    rotating: true,
    nodes: 3,
    certsRotated: 3,
    rootsRotated: 0,
  };
  const [certs, roots] = rotationLines(ca);
  assert.match(certs!, /^ {2}rotated TLS certificates: \[/);
  assert.match(roots!, /^ {2}rotated CA certificates: {2}\[/);
  assert.equal(certs!.indexOf("["), roots!.indexOf("["));
  assert.equal(converged(ca), false);
  assert.equal(converged({ ...ca, rotating: false }), false);
  assert.equal(converged({ ...ca, rotating: false, rootsRotated: 3 }), true);
});
