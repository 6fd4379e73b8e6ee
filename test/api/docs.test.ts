// docs/api.md is generated from the route schemas (tools/api-docs.ts, `npm run docs:api`): this
// fails when the file in the repository is not what the schemas give.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { API_DOC, apiDocs } from "../../tools/api-docs.js";

test("docs/api.md is what the route schemas generate (npm run docs:api)", async () => {
  const expected = await apiDocs();
  assert.ok(expected.includes("| POST   | `/v1/services`"), "the route table is generated");
  assert.equal(readFileSync(API_DOC, "utf8"), expected, "docs/api.md is out of date");
});
