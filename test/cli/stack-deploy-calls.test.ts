// `shoal stack deploy`'s API calls against a stand-in API: the stack's services are created in
// one go (all their calls in flight together), not one call after the other; a service with
// depends_on is created after them; the output keeps the file's order.

import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import type { ServerResponse } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fakeApi, shoal } from "./fake-api.js";

const FILE = `services:
  a:
    command: ["sleep", "100"]
  b:
    command: ["sleep", "100"]
  c:
    command: ["sleep", "100"]
  d:
    command: ["sleep", "100"]
    depends_on: [a]
`;

test("stack deploy creates the services in one go, a dependent one after them", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "shoal-stack-calls-"));
  // Creations held until the three independent ones are all in flight (or, so that a CLI that
  // sends them one by one fails instead of hanging, until 5 s after the first).
  let held: Array<{ res: ServerResponse; name: string }> = [];
  let most = 0;
  let guard: NodeJS.Timeout | undefined;
  const created: string[] = [];
  const answer = () => {
    clearTimeout(guard);
    guard = undefined;
    for (const h of held.splice(0)) {
      created.push(h.name);
      h.res.setHeader("Content-Type", "application/json");
      h.res.end(JSON.stringify({ id: `id-${h.name}` }));
    }
  };
  const api = await fakeApi((r) => {
    if (r.method === "GET" && (r.path === "/v1/networks" || r.path === "/v1/services"))
      return { json: [] };
    if (r.method === "POST" && r.path === "/v1/networks") return { json: { id: "net1" } };
    if (r.method === "POST" && r.path === "/v1/services") {
      const name = (r.body as { spec: { name: string } }).spec.name;
      return (res) => {
        held.push({ res, name });
        most = Math.max(most, held.length);
        if (name === "st_d" || held.length === 3) answer();
        else guard ??= setTimeout(answer, 5000);
      };
    }
    return undefined;
  });
  t.after(async () => {
    clearTimeout(guard);
    held = [];
    await api.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const file = join(dir, "stack.yml");
  writeFileSync(file, FILE);

  const r = await shoal(["stack", "deploy", "-c", file, "st"], api.env);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(
    r.stdout,
    "Creating network st_default\nCreating service st_a\nCreating service st_b\n" +
      "Creating service st_c\nCreating service st_d\n",
  );
  assert.equal(most, 3, "the three independent services' creations were in flight together");
  // d, which depends on a, was sent only once the others were made.
  assert.equal(created.at(-1), "st_d");
  assert.deepEqual(created.slice(0, 3).sort(), ["st_a", "st_b", "st_c"]);
});
